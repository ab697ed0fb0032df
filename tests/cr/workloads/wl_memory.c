// SPDX-License-Identifier: MIT
/*
 * wl_memory - memory of every kind a glibc program has: anonymous private regions of several
 * sizes (some pages never touched, some written with zeros), read-only and PROT_NONE regions,
 * a shared anonymous region, a memfd mapping, a private file mapping written in part (COW), a
 * brk heap of small allocations, mmap'd malloc chunks and the contents of stack frames.
 * Usage: wl_memory SCRATCH_DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wl_common.h"

#define PG	      4096UL
#define SPARSE_PAGES  16384UL /* 64 MiB */
#define SPARSE_STRIDE 97UL
#define HEAP_ALLOCS   20000
#define STACK_DEPTH   48
#define FILE_PAGES    16UL

struct region {
	const char *name;
	unsigned char *addr;
	size_t len;
};

static struct region anon1, anon17, sparse, huge, ro, none, guard, shared, memfd, fmap, fmap_ro;
static char file_path[PATH_MAX];
static void *heap_ptrs[HEAP_ALLOCS];
static size_t heap_sizes[HEAP_ALLOCS];
static void *heap_brk;
static unsigned char *chunks[3];
static const size_t chunk_sizes[3] = {3UL << 20, 5UL << 20, (1UL << 20) + 123};

static int map_anon(struct region *r, const char *name, size_t len, int flags)
{
	r->name = name;
	r->len = len;
	r->addr = mmap(NULL, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
	if (r->addr == MAP_FAILED) {
		wl_fail("mmap of %s (%zu bytes): %s", name, len, strerror(errno));
		return -1;
	}
	return 0;
}

/* Perms and path of the /proc/self/maps entry holding addr; -1 when none does. */
static int maps_lookup(const void *addr, char perms[5], char *path, size_t path_len)
{
	char line[PATH_MAX + 128];
	FILE *f = fopen("/proc/self/maps", "re");
	int ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		int off = 0;

		if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &off) < 3)
			continue;
		if ((unsigned long)addr < start || (unsigned long)addr >= end)
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(path, path_len, "%s", off ? line + off : "");
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

static void check_perms(const struct region *r, const char *want, const char *path_part)
{
	char perms[5] = "", path[PATH_MAX];

	if (maps_lookup(r->addr, perms, path, sizeof(path)) < 0) {
		wl_fail("%s at %p is not mapped any more", r->name, (void *)r->addr);
		return;
	}
	if (strcmp(perms, want))
		wl_fail("%s at %p has perms %s, expected %s", r->name, (void *)r->addr, perms,
			want);
	if (path_part && !strstr(path, path_part))
		wl_fail("%s at %p maps '%s', expected a path containing '%s'", r->name,
			(void *)r->addr, path, path_part);
}

static void check_pattern(const char *what, const void *p, size_t len, uint64_t seed)
{
	long bad = wl_find_mismatch(p, len, seed);

	if (bad >= 0)
		wl_fail("%s: byte %ld of %zu differs from the pattern", what, bad, len);
}

static void check_zero(const char *what, const void *p, size_t len)
{
	if (!wl_all_zero(p, len))
		wl_fail("%s: expected %zu zero bytes", what, len);
}

/* Pages never touched must not have become resident (the image holds only populated pages). */
static void check_not_resident(const struct region *r, const size_t *pages, size_t n)
{
	unsigned char vec[SPARSE_PAGES];
	size_t npages = r->len / PG;

	if (mincore(r->addr, r->len, vec) < 0) {
		wl_fail("mincore of %s: %s", r->name, strerror(errno));
		return;
	}
	for (size_t i = 0; i < n && pages[i] < npages; i++)
		if (vec[pages[i]] & 1) {
			wl_fail("%s: page %zu was never touched but is resident", r->name,
				pages[i]);
			return;
		}
}

static int setup_file_maps(const char *dir)
{
	unsigned char *buf;
	int fd;

	snprintf(file_path, sizeof(file_path), "%s/wl_memory.data", dir);
	fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		wl_fail("create '%s': %s", file_path, strerror(errno));
		return -1;
	}
	buf = malloc(FILE_PAGES * PG);
	wl_fill(buf, FILE_PAGES * PG, 8);
	if (pwrite(fd, buf, FILE_PAGES * PG, 0) != (ssize_t)(FILE_PAGES * PG) || fsync(fd) < 0) {
		wl_fail("write '%s': %s", file_path, strerror(errno));
		free(buf);
		close(fd);
		return -1;
	}
	free(buf);
	fmap = (struct region){"private file mapping", NULL, FILE_PAGES * PG};
	fmap.addr = mmap(NULL, fmap.len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	fmap_ro = (struct region){"read-only file mapping", NULL, FILE_PAGES * PG};
	fmap_ro.addr = mmap(NULL, fmap_ro.len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (fmap.addr == MAP_FAILED || fmap_ro.addr == MAP_FAILED) {
		wl_fail("mmap '%s': %s", file_path, strerror(errno));
		return -1;
	}
	/* Copy-on-write pages 2, 3 and 9; read the others so they are present file pages. */
	wl_fill(fmap.addr + 2 * PG, 2 * PG, 80);
	wl_fill(fmap.addr + 9 * PG, PG, 81);
	volatile unsigned char sum = 0;
	for (size_t i = 0; i < FILE_PAGES * PG; i += PG)
		sum += fmap.addr[i] + fmap_ro.addr[i];
	(void)sum;
	return 0;
}

static int setup(const char *dir)
{
	int fd;

	if (map_anon(&anon1, "anon 1 page", PG, MAP_PRIVATE) < 0 ||
	    map_anon(&anon17, "anon 17 pages", 17 * PG, MAP_PRIVATE) < 0 ||
	    map_anon(&sparse, "sparse anon 64 MiB", SPARSE_PAGES * PG, MAP_PRIVATE) < 0 ||
	    map_anon(&huge, "THP anon 4 MiB", 4UL << 20, MAP_PRIVATE) < 0 ||
	    map_anon(&ro, "read-only anon", 8 * PG, MAP_PRIVATE) < 0 ||
	    map_anon(&none, "PROT_NONE anon with data", 4 * PG, MAP_PRIVATE) < 0 ||
	    map_anon(&shared, "shared anon", 32 * PG, MAP_SHARED) < 0)
		return -1;
	madvise(anon17.addr, anon17.len, MADV_NOHUGEPAGE);
	madvise(sparse.addr, sparse.len, MADV_NOHUGEPAGE);
	madvise(huge.addr, huge.len, MADV_HUGEPAGE);

	wl_fill(anon1.addr, PG, 1);
	/* anon17: pages 5 and 11 never touched, page 8 written with zeros. */
	for (size_t i = 0; i < 17; i++)
		if (i == 8)
			memset(anon17.addr + i * PG, 0, PG);
		else if (i != 5 && i != 11)
			wl_fill(anon17.addr + i * PG, PG, 200 + i);
	for (size_t i = 0; i < SPARSE_PAGES; i += SPARSE_STRIDE)
		wl_fill(sparse.addr + i * PG, PG, 1000 + i);
	wl_fill(huge.addr, huge.len, 3);
	wl_fill(ro.addr, ro.len, 4);
	wl_fill(none.addr, none.len, 5);
	wl_fill(shared.addr, shared.len, 6);
	if (mprotect(ro.addr, ro.len, PROT_READ) < 0 ||
	    mprotect(none.addr, none.len, PROT_NONE) < 0) {
		wl_fail("mprotect: %s", strerror(errno));
		return -1;
	}
	guard = (struct region){"PROT_NONE guard", NULL, 16 * PG};
	guard.addr = mmap(NULL, guard.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard.addr == MAP_FAILED) {
		wl_fail("mmap guard: %s", strerror(errno));
		return -1;
	}

	/* memfd: only the mapping survives, the fd is closed. */
	memfd = (struct region){"memfd mapping", NULL, 64 * PG};
	fd = memfd_create("wl_memfd", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)memfd.len) < 0) {
		wl_fail("memfd: %s", strerror(errno));
		return -1;
	}
	memfd.addr = mmap(NULL, memfd.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (memfd.addr == MAP_FAILED) {
		wl_fail("mmap memfd: %s", strerror(errno));
		return -1;
	}
	wl_fill(memfd.addr, 50 * PG, 7); /* pages 50..63 stay holes */

	if (setup_file_maps(dir) < 0)
		return -1;

	for (int i = 0; i < HEAP_ALLOCS; i++) {
		heap_sizes[i] = 16 + (size_t)(wl_word(9, (uint64_t)i) % 500);
		heap_ptrs[i] = malloc(heap_sizes[i]);
		if (!heap_ptrs[i]) {
			wl_fail("malloc %zu", heap_sizes[i]);
			return -1;
		}
		wl_fill(heap_ptrs[i], heap_sizes[i], 10000 + (uint64_t)i);
	}
	/* Free every third one so the heap has holes, like a real one. */
	for (int i = 0; i < HEAP_ALLOCS; i += 3) {
		free(heap_ptrs[i]);
		heap_ptrs[i] = NULL;
	}
	heap_brk = sbrk(0);
	for (int i = 0; i < 3; i++) {
		chunks[i] = malloc(chunk_sizes[i]);
		if (!chunks[i]) {
			wl_fail("malloc %zu", chunk_sizes[i]);
			return -1;
		}
		wl_fill(chunks[i], chunk_sizes[i], 50 + (uint64_t)i);
	}
	return 0;
}

static void verify_file_maps(void)
{
	unsigned char *buf = malloc(FILE_PAGES * PG);
	int fd;

	check_perms(&fmap, "rw-p", file_path);
	check_perms(&fmap_ro, "r--p", file_path);
	/* COW pages hold what the process wrote; the rest, and the file itself, the original data.
	 */
	check_pattern("private file mapping pages 2-3 (COW)", fmap.addr + 2 * PG, 2 * PG, 80);
	check_pattern("private file mapping page 9 (COW)", fmap.addr + 9 * PG, PG, 81);
	wl_fill(buf, FILE_PAGES * PG, 8);
	for (size_t i = 0; i < FILE_PAGES; i++) {
		if (i == 2 || i == 3 || i == 9)
			continue;
		if (memcmp(fmap.addr + i * PG, buf + i * PG, PG))
			wl_fail("private file mapping page %zu differs from the file", i);
		if (memcmp(fmap_ro.addr + i * PG, buf + i * PG, PG))
			wl_fail("read-only file mapping page %zu differs from the file", i);
	}
	fd = open(file_path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		wl_fail("open '%s': %s", file_path, strerror(errno));
		goto out;
	}
	unsigned char *disk = malloc(FILE_PAGES * PG);
	if (pread(fd, disk, FILE_PAGES * PG, 0) != (ssize_t)(FILE_PAGES * PG) ||
	    memcmp(disk, buf, FILE_PAGES * PG))
		wl_fail("'%s' changed on disk: private writes leaked into the file", file_path);
	free(disk);
	/* An unwritten page of a private mapping is the page cache: a write to the file shows.
	 * The file is put back as it was, mtime included, so that an image taken of this process
	 * with --leave-running still matches it. */
	struct stat st;
	if (fstat(fd, &st) < 0)
		wl_fail("fstat '%s': %s", file_path, strerror(errno));
	wl_fill(buf, PG, 82);
	if (pwrite(fd, buf, PG, 12 * PG) != (ssize_t)PG)
		wl_fail("pwrite '%s': %s", file_path, strerror(errno));
	else if (memcmp(fmap_ro.addr + 12 * PG, buf, PG))
		wl_fail("read-only file mapping page 12 does not follow the file (copied, not mapped)");
	wl_fill(buf, FILE_PAGES * PG, 8);
	if (pwrite(fd, buf + 12 * PG, PG, 12 * PG) != (ssize_t)PG ||
	    futimens(fd, (struct timespec[]){st.st_atim, st.st_mtim}) < 0)
		wl_fail("cannot put '%s' back as it was: %s", file_path, strerror(errno));
	close(fd);
out:
	free(buf);
}

static void verify_memfd(void)
{
	char path[PATH_MAX];
	unsigned char page[PG];
	int fd;

	check_perms(&memfd, "rw-s", "/memfd:wl_memfd");
	check_pattern("memfd pages 0-49", memfd.addr, 50 * PG, 7);
	check_zero("memfd pages 50-63", memfd.addr + 50 * PG, 14 * PG);
	/* Through map_files the very same shmem object: both views must agree, both ways. */
	unsigned long start = (unsigned long)memfd.addr, end = start + (unsigned long)memfd.len;

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", start, end);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		wl_fail("open '%s': %s", path, strerror(errno));
		return;
	}
	if (pread(fd, page, PG, 3 * PG) != (ssize_t)PG || memcmp(page, memfd.addr + 3 * PG, PG))
		wl_fail("memfd object and mapping disagree on page 3");
	wl_fill(page, PG, 70);
	if (pwrite(fd, page, PG, 60 * PG) != (ssize_t)PG || memcmp(page, memfd.addr + 60 * PG, PG))
		wl_fail("a write to the memfd object does not show in the mapping (not shared)");
	close(fd);
}

static void verify_heap(void *brk_now)
{
	void *more[2048];

	for (int i = 0; i < HEAP_ALLOCS; i++) {
		char what[64];

		if (!heap_ptrs[i])
			continue;
		snprintf(what, sizeof(what), "heap allocation %d", i);
		check_pattern(what, heap_ptrs[i], heap_sizes[i], 10000 + (uint64_t)i);
	}
	for (int i = 0; i < 3; i++) {
		char what[64];

		snprintf(what, sizeof(what), "mmap'd malloc chunk %d", i);
		check_pattern(what, chunks[i], chunk_sizes[i], 50 + (uint64_t)i);
		free(chunks[i]);
	}
	/* The heap must still grow: 2048 x 2000 bytes do not fit in the holes. */
	for (int i = 0; i < 2048; i++) {
		more[i] = malloc(2000);
		if (!more[i]) {
			wl_fail("malloc after restore failed");
			return;
		}
		wl_fill(more[i], 2000, 90000 + (uint64_t)i);
	}
	if ((char *)sbrk(0) <= (char *)brk_now)
		wl_fail("the heap did not grow with brk after restore");
	for (int i = 0; i < 2048; i++) {
		check_pattern("heap allocation made after restore", more[i], 2000,
			      90000 + (uint64_t)i);
		free(more[i]);
	}
	for (int i = 0; i < HEAP_ALLOCS; i++)
		free(heap_ptrs[i]);
}

static void verify(void)
{
	static size_t untouched[SPARSE_PAGES];
	size_t n = 0;
	size_t anon17_holes[] = {5, 11};
	void *brk_now = sbrk(0);

	/* Before anything here allocates. */
	if (brk_now != heap_brk)
		wl_fail("program break moved from %p to %p", heap_brk, brk_now);

	/* Residency first: reading an untouched page would map the zero page. */
	for (size_t i = 0; i < SPARSE_PAGES; i++)
		if (i % SPARSE_STRIDE)
			untouched[n++] = i;
	check_not_resident(&sparse, untouched, n);
	check_not_resident(&anon17, anon17_holes, 2);

	check_perms(&anon1, "rw-p", NULL);
	check_pattern("anon 1 page", anon1.addr, PG, 1);
	for (size_t i = 0; i < 17; i++) {
		char what[64];

		snprintf(what, sizeof(what), "anon 17 pages, page %zu", i);
		if (i == 8 || i == 5 || i == 11)
			check_zero(what, anon17.addr + i * PG, PG);
		else
			check_pattern(what, anon17.addr + i * PG, PG, 200 + i);
	}
	for (size_t i = 0; i < SPARSE_PAGES; i++) {
		char what[64];

		snprintf(what, sizeof(what), "sparse region page %zu", i);
		if (i % SPARSE_STRIDE)
			check_zero(what, sparse.addr + i * PG, PG);
		else
			check_pattern(what, sparse.addr + i * PG, PG, 1000 + i);
	}
	check_pattern("THP anon 4 MiB", huge.addr, huge.len, 3);
	check_perms(&ro, "r--p", NULL);
	check_pattern("read-only anon", ro.addr, ro.len, 4);
	check_perms(&none, "---p", NULL);
	check_perms(&guard, "---p", NULL);
	check_perms(&shared, "rw-s", NULL);
	if (mprotect(none.addr, none.len, PROT_READ) < 0)
		wl_fail("mprotect PROT_NONE region readable: %s", strerror(errno));
	else
		check_pattern("PROT_NONE anon with data", none.addr, none.len, 5);
	check_pattern("shared anon", shared.addr, shared.len, 6);
	verify_memfd();
	verify_file_maps();
	verify_heap(brk_now);
}

/* Each frame keeps a buffer on the stack; the innermost one waits, then every frame checks. */
static int deep(int depth)
{
	unsigned char frame[4000];
	int ret;

	wl_fill(frame, sizeof(frame), 300 + (uint64_t)depth);
	if (depth == STACK_DEPTH) {
		wl_ready();
		wl_wait_sigterm();
		verify();
		ret = 0;
	} else {
		ret = deep(depth + 1);
	}
	if (wl_find_mismatch(frame, sizeof(frame), 300 + (uint64_t)depth) >= 0) {
		wl_fail("stack frame %d lost its contents", depth);
		ret = -1;
	}
	return ret;
}

int main(int argc, char **argv)
{
	unsigned char stackbuf[128 * 1024];

	if (argc != 2) {
		wl_fail("usage: wl_memory SCRATCH_DIR");
		return 2;
	}
	wl_catch_sigterm(0);
	wl_fill(stackbuf, sizeof(stackbuf), 11);
	if (setup(argv[1]) < 0) {
		wl_fail("setup failed");
		return wl_finish();
	}
	deep(0);
	check_pattern("main's stack buffer", stackbuf, sizeof(stackbuf), 11);
	return wl_finish();
}
