// SPDX-License-Identifier: MIT
/*
 * memsnap - stand-in memory dumper for the peers benchmark, used only while `ckptfs dump` cannot
 * dump the workload yet.
 *
 * Freezes every thread of PID with PTRACE_SEIZE + PTRACE_INTERRUPT (no SIGSTOP, so job control
 * state is untouched), then writes into OUTDIR, the way a C/R image keeps memory:
 *
 *   pages-PID.img    the dumped pages, 4 KiB each, back to back (page-aligned file offsets)
 *   pagemap-PID.img  where they belong:  "MSNAPMAP" | u32 version=1 | u32 0 |
 *                    then runs of { u64 vaddr, u64 nr_pages } (little-endian), in file order
 *   maps-PID.txt     a copy of /proc/PID/maps at the time of the dump
 *
 * Which pages: what a C/R engine must save because no file holds them — present or swapped
 * pages of private mappings that /proc/PID/pagemap reports as anonymous (bit 61 clear): the
 * heap, stacks, anonymous mmaps and copied-on-write pages of file mappings. Shared mappings and
 * the kernel's special mappings ([vvar], [vdso], [vsyscall]) are skipped.
 *
 * Then it detaches and the process runs on. Exit status 0 on success, 1 on failure.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/util.h"

#define PAGE_SZ		  4096u
#define PM_PRESENT	  (1ULL << 63)
#define PM_SWAPPED	  (1ULL << 62)
#define PM_FILE_OR_SHARED (1ULL << 61)
/* Pagemap entries read per pread; also the longest run of pages copied with one pread. */
#define PM_BATCH 1024u

struct frozen {
	pid_t *tids;
	size_t n, cap;
};

static void frozen_release(struct frozen *f)
{
	for (size_t i = 0; i < f->n; i++)
		if (ptrace(PTRACE_DETACH, f->tids[i], NULL, NULL) < 0)
			log_warn("detach from thread %d: %m", (int)f->tids[i]);
	free(f->tids);
	f->tids = NULL;
	f->n = f->cap = 0;
}

static bool frozen_has(const struct frozen *f, pid_t tid)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->tids[i] == tid)
			return true;
	return false;
}

static int frozen_add(struct frozen *f, pid_t tid)
{
	int status;

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		pid_t *t = realloc(f->tids, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		f->tids = t;
		f->cap = cap;
	}
	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0)
		return -errno;
	f->tids[f->n++] = tid;
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0)
		return -errno;
	/* A signal may be delivered first; wait until the thread reports the group-stop/interrupt
	 * trap, re-injecting anything else so the workload does not lose it. */
	for (;;) {
		if (waitpid(tid, &status, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!WIFSTOPPED(status))
			return -ESRCH;
		if ((status >> 16) == PTRACE_EVENT_STOP)
			return 0;
		if (ptrace(PTRACE_CONT, tid, NULL, (void *)(long)WSTOPSIG(status)) < 0)
			return -errno;
	}
}

/* Seize threads until a pass over /proc/PID/task finds none new (threads may spawn meanwhile). */
static int freeze_all(pid_t pid, struct frozen *f)
{
	char path[64];
	bool added;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	do {
		DIR *d = opendir(path);
		struct dirent *de;
		int r = 0;

		if (!d)
			return -errno;
		added = false;
		while ((de = readdir(d))) {
			if (!isdigit((unsigned char)de->d_name[0]))
				continue;
			pid_t tid = (pid_t)atoi(de->d_name);
			if (frozen_has(f, tid))
				continue;
			r = frozen_add(f, tid);
			if (r < 0) {
				log_err("freeze thread %d of %d: %s", (int)tid, (int)pid,
					strerror(-r));
				break;
			}
			added = true;
		}
		closedir(d);
		if (r < 0)
			return r;
	} while (added);
	return 0;
}

struct out {
	int pages_fd;
	int map_fd;
	uint64_t pages_off;
	uint64_t map_off;
	uint64_t run_start, run_pages; /* the run of pages not yet written to the pagemap file */
	uint64_t nr_pages;
};

static int out_flush_run(struct out *o)
{
	unsigned char rec[16];
	int r;

	if (!o->run_pages)
		return 0;
	le64_put(rec, o->run_start);
	le64_put(rec + 8, o->run_pages);
	r = pwrite_full(o->map_fd, rec, sizeof(rec), o->map_off);
	if (r < 0)
		return r;
	o->map_off += sizeof(rec);
	o->run_pages = 0;
	return 0;
}

/* Copy n pages at vaddr from the target's memory into the pages file. */
static int out_copy(struct out *o, int mem_fd, uint64_t vaddr, uint64_t n, void *buf)
{
	size_t len = (size_t)n * PAGE_SZ;
	int r;

	r = pread_full(mem_fd, buf, len, vaddr);
	if (r < 0)
		return r == -EBADMSG ? -EIO : r;
	r = pwrite_full(o->pages_fd, buf, len, o->pages_off);
	if (r < 0)
		return r;
	o->pages_off += len;
	o->nr_pages += n;
	if (o->run_pages && o->run_start + o->run_pages * PAGE_SZ == vaddr) {
		o->run_pages += n;
		return 0;
	}
	r = out_flush_run(o);
	if (r < 0)
		return r;
	o->run_start = vaddr;
	o->run_pages = n;
	return 0;
}

static int dump_vma(struct out *o, int pm_fd, int mem_fd, uint64_t start, uint64_t end, void *buf)
{
	_cleanup_free_ uint64_t *pm = malloc(PM_BATCH * sizeof(*pm));
	uint64_t va = start;
	int r;

	if (!pm)
		return -ENOMEM;
	while (va < end) {
		uint64_t n = MIN((end - va) / PAGE_SZ, (uint64_t)PM_BATCH);
		uint64_t i = 0;

		r = pread_full(pm_fd, pm, n * sizeof(*pm), va / PAGE_SZ * sizeof(*pm));
		if (r < 0)
			return r;
		while (i < n) {
			uint64_t j;

			if (!(pm[i] & (PM_PRESENT | PM_SWAPPED)) || (pm[i] & PM_FILE_OR_SHARED)) {
				i++;
				continue;
			}
			for (j = i + 1; j < n; j++)
				if (!(pm[j] & (PM_PRESENT | PM_SWAPPED)) ||
				    (pm[j] & PM_FILE_OR_SHARED))
					break;
			r = out_copy(o, mem_fd, va + i * PAGE_SZ, j - i, buf);
			if (r < 0)
				return r;
			i = j;
		}
		va += n * PAGE_SZ;
	}
	return 0;
}

static bool vma_skipped(const char *perms, const char *name)
{
	if (perms[0] != 'r' || perms[3] != 'p')
		return true;
	return !strcmp(name, "[vvar]") || !strcmp(name, "[vvar_vclock]") ||
	       !strcmp(name, "[vdso]") || !strcmp(name, "[vsyscall]");
}

static int dump_memory(pid_t pid, const char *outdir, uint64_t *ret_pages)
{
	char path[PATH_MAX];
	_cleanup_close_ int pm_fd = -1;
	_cleanup_close_ int mem_fd = -1;
	_cleanup_close_ int maps_copy_fd = -1;
	_cleanup_free_ char *line = NULL;
	void *buf = NULL;
	struct out o = {.pages_fd = -1, .map_fd = -1};
	unsigned char hdr[16] = "MSNAPMAP";
	size_t cap = 0;
	FILE *maps = NULL;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0) {
		r = -errno;
		log_err("open '%s': %s", path, strerror(-r));
		return r;
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (mem_fd < 0) {
		r = -errno;
		log_err("open '%s': %s", path, strerror(-r));
		return r;
	}
	buf = aligned_alloc(PAGE_SZ, (size_t)PM_BATCH * PAGE_SZ);
	if (!buf)
		return -ENOMEM;

	snprintf(path, sizeof(path), "%s/pages-%d.img", outdir, (int)pid);
	o.pages_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (o.pages_fd < 0) {
		r = -errno;
		log_err("create '%s': %m", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/pagemap-%d.img", outdir, (int)pid);
	o.map_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (o.map_fd < 0) {
		r = -errno;
		log_err("create '%s': %m", path);
		goto out;
	}
	le32_put(hdr + 8, 1);
	r = pwrite_full(o.map_fd, hdr, sizeof(hdr), 0);
	if (r < 0) {
		log_err("write '%s': %s", path, strerror(-r));
		goto out;
	}
	o.map_off = sizeof(hdr);

	snprintf(path, sizeof(path), "%s/maps-%d.txt", outdir, (int)pid);
	maps_copy_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (maps_copy_fd < 0) {
		r = -errno;
		log_err("create '%s': %m", path);
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "re");
	if (!maps) {
		r = -errno;
		log_err("open '%s': %m", path);
		goto out;
	}
	while (getline(&line, &cap, maps) > 0) {
		uint64_t start, end;
		char perms[8] = "";
		int name_at = 0;
		char *name;

		r = write_full(maps_copy_fd, line, strlen(line));
		if (r < 0) {
			log_err("write maps copy for %d: %s", (int)pid, strerror(-r));
			goto out;
		}
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %n", &start, &end, perms,
			   &name_at) < 3) {
			r = -EBADMSG;
			log_err("unparsable line in '%s': %s", path, line);
			goto out;
		}
		name = line + name_at;
		name[strcspn(name, "\n")] = '\0';
		if (vma_skipped(perms, name))
			continue;
		r = dump_vma(&o, pm_fd, mem_fd, start, end, buf);
		if (r < 0) {
			log_err("dump %" PRIx64 "-%" PRIx64 " '%s' of %d: %s", start, end, name,
				(int)pid, strerror(-r));
			goto out;
		}
	}
	r = out_flush_run(&o);
	if (r < 0) {
		log_err("write pagemap of %d: %s", (int)pid, strerror(-r));
		goto out;
	}
	*ret_pages = o.nr_pages;
	r = 0;
out:
	free(buf);
	if (maps)
		fclose(maps);
	closep(&o.pages_fd);
	closep(&o.map_fd);
	return r;
}

int main(int argc, char **argv)
{
	struct frozen f = {0};
	uint64_t pages = 0;
	char *end;
	pid_t pid;
	int r;

	log_set_prefix("memsnap");
	if (argc != 3) {
		fprintf(stderr, "usage: memsnap PID OUTDIR\n");
		return 2;
	}
	pid = (pid_t)strtol(argv[1], &end, 10);
	if (*end || pid <= 0) {
		fprintf(stderr, "memsnap: bad PID '%s'\n", argv[1]);
		return 2;
	}
	if (mkdir(argv[2], 0700) < 0 && errno != EEXIST) {
		log_err("mkdir '%s': %m", argv[2]);
		return 1;
	}
	r = freeze_all(pid, &f);
	if (r >= 0)
		r = dump_memory(pid, argv[2], &pages);
	frozen_release(&f);
	if (r < 0)
		return 1;
	printf("%" PRIu64 "\n", pages);
	return 0;
}
