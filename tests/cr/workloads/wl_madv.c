// SPDX-License-Identifier: MIT
/*
 * wl_madv - the madvise/mlock state of each mapping must come back exactly.
 *
 * One mapping per flag (and a few combinations), each between PROT_NONE guard pages so that
 * no two of them merge:
 *
 *   dontfork      private anon   MADV_DONTFORK                          dc
 *   wipeonfork    private anon   MADV_WIPEONFORK                        wf
 *   dontdump      private anon   MADV_DONTDUMP                          dd
 *   hugepage      private anon   MADV_HUGEPAGE (2 MiB, 8 pages filled)  hg
 *   nohugepage    private anon   MADV_NOHUGEPAGE                        nh
 *   mergeable     private anon   MADV_MERGEABLE                         mg
 *   locked        private anon   mlock                                  lo
 *   onfault       private anon   mlock2(MLOCK_ONFAULT), half filled     lo lf
 *   wipe-combo    private anon   WIPEONFORK, DONTDUMP, NOHUGEPAGE,      wf dd nh mg
 *                                MERGEABLE
 *   file-shared   shared file    MADV_DONTFORK, MADV_DONTDUMP           dc dd
 *   file-private  private file   MADV_DONTDUMP, MADV_HUGEPAGE, 1 page   dd hg
 *                                written (copied on write)
 *   shmem         shared anon    mlock, MADV_DONTDUMP                   dd lo
 *   plain         private anon   nothing (none of the letters)
 *
 * Checks (before READY and after SIGTERM): first a fork, before the parent touches any of
 * these mappings (after a lazy restore their pages may not be filled yet): the child must not
 * have the DONTFORK mappings (absent from its /proc/self/smaps, mincore ENOMEM), must read
 * zeros in the WIPEONFORK ones and the parent's bytes in the others. Then, in the parent:
 * each mapping's VmFlags hold exactly its letters among dc wf dd hg nh mg lo lf, its bounds
 * are unchanged, and its bytes are the ones written at setup (zeros where none were).
 * Usage: wl_madv SCRATCH_DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl_common.h"

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

#define PG 4096UL

enum { M_DC = 1, M_WF = 2, M_DD = 4, M_HG = 8, M_NH = 16, M_MG = 32, M_LO = 64, M_LF = 128 };
static const char *const letters[] = {"dc", "wf", "dd", "hg", "nh", "mg", "lo", "lf"};

enum backing { B_ANON, B_SHMEM, B_FILE_SHARED, B_FILE_PRIVATE };

struct region {
	const char *name;
	enum backing backing;
	size_t pages;
	size_t filled; /* pages written at setup, from the start */
	unsigned int flags;
	uint8_t *m;
};

static struct region regions[] = {
	{"dontfork", B_ANON, 4, 4, M_DC, NULL},
	{"wipeonfork", B_ANON, 4, 4, M_WF, NULL},
	{"dontdump", B_ANON, 4, 4, M_DD, NULL},
	{"hugepage", B_ANON, 512, 8, M_HG, NULL},
	{"nohugepage", B_ANON, 4, 4, M_NH, NULL},
	{"mergeable", B_ANON, 4, 4, M_MG, NULL},
	{"locked", B_ANON, 4, 4, M_LO, NULL},
	{"onfault", B_ANON, 8, 4, M_LO | M_LF, NULL},
	{"wipe-combo", B_ANON, 4, 4, M_WF | M_DD | M_NH | M_MG, NULL},
	{"file-shared", B_FILE_SHARED, 4, 4, M_DC | M_DD, NULL},
	{"file-private", B_FILE_PRIVATE, 4, 1, M_DD | M_HG, NULL},
	{"shmem", B_SHMEM, 4, 4, M_DD | M_LO, NULL},
	{"plain", B_ANON, 4, 4, 0, NULL},
};
#define NR_REGIONS (sizeof(regions) / sizeof(regions[0]))

static const char *scratch;

static uint64_t seed_of(size_t i)
{
	return 0x6d616476ULL + i;
}

/* The madvise letters of the VMA that starts at p and its end, from /proc/self/smaps;
 * -ENOENT when no VMA starts there. */
static int vma_flags(const void *p, unsigned int *ret_flags, uintptr_t *ret_end)
{
	char line[1024];
	bool in = false, found = false;
	unsigned int flags = 0;
	uintptr_t end = 0;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		int n = 0;

		if (sscanf(line, "%lx-%lx %n", &a, &b, &n) == 2 && n > 0 && line[n - 1] == ' ') {
			in = a == (uintptr_t)p;
			if (in) {
				found = true;
				end = b;
			}
			continue;
		}
		if (!in || strncmp(line, "VmFlags:", 8))
			continue;
		for (char *tok = strtok(line + 8, " \n"); tok; tok = strtok(NULL, " \n"))
			for (unsigned int k = 0; k < 8; k++)
				if (!strcmp(tok, letters[k]))
					flags |= 1u << k;
	}
	fclose(f);
	if (!found)
		return -ENOENT;
	*ret_flags = flags;
	*ret_end = end;
	return 0;
}

static void flag_names(unsigned int flags, char *buf, size_t len)
{
	buf[0] = 0;
	for (unsigned int k = 0; k < 8; k++)
		if (flags & (1u << k))
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? " " : "",
				 letters[k]);
	if (!buf[0])
		snprintf(buf, len, "none");
}

/* In the forked child: what fork must have made of each mapping. Returns failures. */
static int child_checks(void)
{
	int bad = 0;

	for (size_t i = 0; i < NR_REGIONS; i++) {
		const struct region *r = &regions[i];
		size_t len = r->pages * PG;
		unsigned int flags;
		uintptr_t end;
		unsigned char vec;

		if (r->flags & M_DC) {
			if (vma_flags(r->m, &flags, &end) != -ENOENT) {
				wl_fail("child: DONTFORK mapping %s at %p is in its smaps", r->name,
					r->m);
				bad++;
			}
			if (mincore(r->m, PG, &vec) == 0 || errno != ENOMEM) {
				wl_fail("child: DONTFORK mapping %s at %p is mapped", r->name,
					r->m);
				bad++;
			}
			continue;
		}
		if (r->flags & M_WF) {
			if (!wl_all_zero(r->m, len)) {
				wl_fail("child: WIPEONFORK mapping %s holds the parent's bytes",
					r->name);
				bad++;
			}
			continue;
		}
		long at = wl_find_mismatch(r->m, r->filled * PG, seed_of(i));
		if (at >= 0) {
			wl_fail("child: mapping %s differs at byte %ld", r->name, at);
			bad++;
		}
	}
	return bad;
}

static void fork_check(void)
{
	pid_t pid = fork();
	int status;

	if (pid < 0) {
		wl_fail("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0)
		_exit(child_checks() ? 1 : 0);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			wl_fail("waitpid: %s", strerror(errno));
			return;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		wl_fail("the forked child's checks failed (status %#x)", status);
}

/* The pages of a private file mapping that were never written show the file's bytes. */
static void file_tail_check(const struct region *r, size_t i)
{
	size_t len = r->pages * PG, skip = r->filled * PG;
	uint8_t *want = malloc(len);

	if (!want) {
		wl_fail("out of memory");
		return;
	}
	wl_fill(want, len, seed_of(i) + 100);
	if (memcmp(r->m + skip, want + skip, len - skip))
		wl_fail("mapping %s: its unwritten pages are not the file's", r->name);
	free(want);
}

static void verify(void)
{
	char want[64], got[64];

	/* Before anything here touches the mappings: see the header. */
	fork_check();
	for (size_t i = 0; i < NR_REGIONS; i++) {
		const struct region *r = &regions[i];
		size_t len = r->pages * PG;
		unsigned int flags;
		uintptr_t end;

		if (vma_flags(r->m, &flags, &end) < 0) {
			wl_fail("mapping %s at %p is gone", r->name, r->m);
			continue;
		}
		if (end != (uintptr_t)r->m + len)
			wl_fail("mapping %s at %p ends at %#lx, not %p", r->name, r->m,
				(unsigned long)end, r->m + len);
		if (flags != r->flags) {
			flag_names(r->flags, want, sizeof(want));
			flag_names(flags, got, sizeof(got));
			wl_fail("mapping %s VmFlags: '%s', want '%s'", r->name, got, want);
		}
		long at = wl_find_mismatch(r->m, r->filled * PG, seed_of(i));
		if (at >= 0)
			wl_fail("mapping %s differs at byte %ld", r->name, at);
		if (r->backing == B_FILE_PRIVATE)
			file_tail_check(r, i);
		else if (!wl_all_zero(r->m + r->filled * PG, len - r->filled * PG))
			wl_fail("mapping %s: its unwritten pages are not zero", r->name);
	}
}

static int open_file(const struct region *r, size_t i)
{
	char path[512];
	uint8_t *buf = malloc(r->pages * PG);
	int fd;

	snprintf(path, sizeof(path), "%s/madv-%s", scratch, r->name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !buf) {
		wl_fail("open '%s': %s", path, strerror(errno));
		free(buf);
		return -1;
	}
	/* A private file mapping's written page is saved; the rest comes from the file, which
	 * holds its own bytes (seed + 100) so that a page from the wrong place shows. */
	wl_fill(buf, r->pages * PG, r->backing == B_FILE_PRIVATE ? seed_of(i) + 100 : seed_of(i));
	if (write(fd, buf, r->pages * PG) != (ssize_t)(r->pages * PG)) {
		wl_fail("write '%s': %s", path, strerror(errno));
		free(buf);
		close(fd);
		return -1;
	}
	free(buf);
	return fd;
}

static int apply(struct region *r)
{
	static const struct {
		unsigned int flag;
		int advice;
	} advs[] = {{M_DC, MADV_DONTFORK}, {M_WF, MADV_WIPEONFORK}, {M_DD, MADV_DONTDUMP},
		    {M_HG, MADV_HUGEPAGE}, {M_NH, MADV_NOHUGEPAGE}, {M_MG, MADV_MERGEABLE}};
	size_t len = r->pages * PG;

	for (size_t k = 0; k < sizeof(advs) / sizeof(advs[0]); k++)
		if ((r->flags & advs[k].flag) && madvise(r->m, len, advs[k].advice) < 0) {
			wl_fail("madvise %d on %s: %s", advs[k].advice, r->name, strerror(errno));
			return -1;
		}
	if ((r->flags & M_LO) && mlock2(r->m, len, (r->flags & M_LF) ? MLOCK_ONFAULT : 0) < 0) {
		wl_fail("mlock2 of %s: %s", r->name, strerror(errno));
		return -1;
	}
	return 0;
}

static int setup(void)
{
	size_t total = PG;

	for (size_t i = 0; i < NR_REGIONS; i++)
		total += regions[i].pages * PG + PG;
	/* A PROT_NONE reservation: each mapping replaces a part of it, a guard page apart. */
	uint8_t *base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		wl_fail("mmap of the reservation: %s", strerror(errno));
		return -1;
	}
	uint8_t *at = base + PG;
	for (size_t i = 0; i < NR_REGIONS; i++) {
		struct region *r = &regions[i];
		size_t len = r->pages * PG;
		int fd = -1, flags = MAP_FIXED;

		switch (r->backing) {
		case B_ANON:
			flags |= MAP_PRIVATE | MAP_ANONYMOUS;
			break;
		case B_SHMEM:
			flags |= MAP_SHARED | MAP_ANONYMOUS;
			break;
		case B_FILE_SHARED:
		case B_FILE_PRIVATE:
			fd = open_file(r, i);
			if (fd < 0)
				return -1;
			flags |= r->backing == B_FILE_SHARED ? MAP_SHARED : MAP_PRIVATE;
			break;
		}
		r->m = mmap(at, len, PROT_READ | PROT_WRITE, flags, fd, 0);
		if (fd >= 0)
			close(fd);
		if (r->m == MAP_FAILED) {
			wl_fail("mmap of %s: %s", r->name, strerror(errno));
			return -1;
		}
		/* Advice first: huge page advice decides what the first touch allocates. */
		if (apply(r) < 0)
			return -1;
		if (r->backing != B_FILE_SHARED) /* that one shows the file's bytes */
			wl_fill(r->m, r->filled * PG, seed_of(i));
		at += len + PG;
	}
	return 0;
}

int main(int argc, char **argv)
{
	scratch = argc > 1 ? argv[1] : ".";
	return wl_main_checked(argc, "wl_madv", setup, verify);
}
