// SPDX-License-Identifier: MIT
/*
 * wl_lazy - memory a lazy restore (`ckptfs restore --lazy`) must get right while its page
 * server is still filling it: ~240 MiB of patterned private anonymous memory in several
 * mappings, a brk heap of small allocations and stack frames with data.
 *
 * It notices the restore by itself, without a signal: its parent changes (the original's is the
 * harness, a restored process's is the restorer or a subreaper). Then at once, before the
 * background prefetch (which goes in address order) reaches the first mappings made (they sit
 * highest), it:
 *   (a) mremap()s mapping A to a reserved address (MREMAP_MAYMOVE|MREMAP_FIXED) and checks its
 *       content there;
 *   (b) madvise(MADV_DONTNEED)s mapping B: it must read as zeros, now and after the prefetch;
 *   (c) munmap()s mapping C, and makes a part of mapping D read-only (its VMA splits);
 *   (d) fork()s a child that checks all the remaining memory and exits with its verdict;
 *   (e) checks every page itself.
 * It prints "EARLY resident A=n/N B=n/N C=n/N D=n/N" (pages present when it woke up: the harness
 * wants some missing, so the events really raced the server) and "EARLY done". On SIGTERM it
 * checks everything once more (B still zeros) and prints PASS or FAIL. Without a restore (the
 * plain run) the same steps run when SIGTERM arrives.
 * Usage: wl_lazy SCRATCH_DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl_common.h"

#define PG	    4096UL
#define MIB	    (1UL << 20)
#define SMALL_LEN   (16 * MIB)
#define BULK_LEN    (48 * MIB)
#define NR_BULK	    4
#define HEAP_ALLOCS 2000
#define HEAP_SIZE   4000
#define STACK_DEPTH 32

struct region {
	const char *name;
	unsigned char *addr;
	size_t len;
	uint64_t seed;
};

static struct region ra = {"A (mremapped)", NULL, SMALL_LEN, 101};
static struct region rb = {"B (MADV_DONTNEED)", NULL, SMALL_LEN, 102};
static struct region rc = {"C (unmapped)", NULL, SMALL_LEN, 103};
static struct region rd = {"D (split by mprotect)", NULL, SMALL_LEN, 104};
static struct region bulk[NR_BULK];
static unsigned char *reserve; /* where A moves to */
static unsigned char *heap[HEAP_ALLOCS];

static int map_region(struct region *r)
{
	r->addr = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->addr == MAP_FAILED) {
		wl_fail("mmap of %s (%zu bytes): %s", r->name, r->len, strerror(errno));
		return -1;
	}
	madvise(r->addr, r->len, MADV_NOHUGEPAGE);
	wl_fill(r->addr, r->len, r->seed);
	return 0;
}

static int setup(void)
{
	static char names[NR_BULK][32];

	/* The first mappings get the highest addresses: the prefetch reaches them last. */
	if (map_region(&rd) < 0 || map_region(&ra) < 0 || map_region(&rb) < 0 ||
	    map_region(&rc) < 0)
		return -1;
	reserve = mmap(NULL, SMALL_LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (reserve == MAP_FAILED) {
		wl_fail("mmap of the reserved range: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < NR_BULK; i++) {
		snprintf(names[i], sizeof(names[i]), "bulk %d", i);
		bulk[i] = (struct region){names[i], NULL, BULK_LEN, 200 + (uint64_t)i};
		if (map_region(&bulk[i]) < 0)
			return -1;
	}
	for (int i = 0; i < HEAP_ALLOCS; i++) {
		heap[i] = malloc(HEAP_SIZE);
		if (!heap[i]) {
			wl_fail("malloc %d", HEAP_SIZE);
			return -1;
		}
		wl_fill(heap[i], HEAP_SIZE, 5000 + (uint64_t)i);
	}
	return 0;
}

static unsigned int resident(const struct region *r)
{
	static unsigned char vec[SMALL_LEN / PG];
	unsigned int n = 0;

	if (mincore(r->addr, r->len, vec) < 0)
		return ~0U;
	for (size_t i = 0; i < r->len / PG; i++)
		n += vec[i] & 1;
	return n;
}

static int check_pattern(const char *what, const void *p, size_t len, uint64_t seed)
{
	long bad = wl_find_mismatch(p, len, seed);

	if (bad >= 0)
		wl_fail("%s: byte %ld of %zu differs from the pattern", what, bad, len);
	return bad >= 0;
}

/* Everything that must still be there: A at its new place, B zeros, D, the bulk, the heap.
 * Returns how many pieces are wrong. */
static int check_memory(const char *who)
{
	char what[96];
	int bad = 0;

	snprintf(what, sizeof(what), "%s: %s", who, ra.name);
	bad += check_pattern(what, ra.addr, ra.len, ra.seed);
	snprintf(what, sizeof(what), "%s: %s", who, rd.name);
	bad += check_pattern(what, rd.addr, rd.len, rd.seed);
	if (!wl_all_zero(rb.addr, rb.len)) {
		wl_fail("%s: %s does not read as zeros", who, rb.name);
		bad++;
	}
	for (int i = 0; i < NR_BULK; i++) {
		snprintf(what, sizeof(what), "%s: %s", who, bulk[i].name);
		bad += check_pattern(what, bulk[i].addr, bulk[i].len, bulk[i].seed);
	}
	for (int i = 0; i < HEAP_ALLOCS; i++) {
		snprintf(what, sizeof(what), "%s: heap allocation %d", who, i);
		bad += check_pattern(what, heap[i], HEAP_SIZE, 5000 + (uint64_t)i);
	}
	return bad;
}

/* The steps right after the restore (or SIGTERM, without one). */
static void early(void)
{
	unsigned int na = resident(&ra), nb = resident(&rb), nc = resident(&rc), nd = resident(&rd);
	void *to;
	pid_t child;
	int status;

	/* The changes first, all at once (each takes microseconds); checks after. */
	/* A part of D read-only: its VMA splits in three while its pages are missing. */
	if (mprotect(rd.addr + 4 * MIB + 3 * PG, 8 * MIB, PROT_READ) < 0)
		wl_fail("mprotect of a part of %s: %s", rd.name, strerror(errno));
	/* (a) */
	to = mremap(ra.addr, ra.len, ra.len, MREMAP_MAYMOVE | MREMAP_FIXED, reserve);
	if (to != reserve) {
		wl_fail("mremap of %s: %s", ra.name, strerror(errno));
		return;
	}
	ra.addr = to;
	/* (b) */
	if (madvise(rb.addr, rb.len, MADV_DONTNEED) < 0)
		wl_fail("madvise(MADV_DONTNEED) of %s: %s", rb.name, strerror(errno));
	/* (c) */
	if (munmap(rc.addr, rc.len) < 0)
		wl_fail("munmap of %s: %s", rc.name, strerror(errno));
	check_pattern("D right after mprotect", rd.addr, rd.len, rd.seed);
	check_pattern("A right after mremap", ra.addr, ra.len, ra.seed);
	if (!wl_all_zero(rb.addr, rb.len))
		wl_fail("%s does not read as zeros right after MADV_DONTNEED", rb.name);
	/* (d) */
	child = fork();
	if (child < 0) {
		wl_fail("fork: %s", strerror(errno));
	} else if (child == 0) {
		/* Its FAIL lines go to the shared log; its PASS would be one too many. */
		_exit(check_memory("forked child") ? 1 : 0);
	} else {
		/* (e) meanwhile */
		check_memory("right after restore");
		if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			wl_fail("the forked child found wrong memory (status %#x)", status);
	}
	wl_say("EARLY resident A=%u/%lu B=%u/%lu C=%u/%lu D=%u/%lu", na, SMALL_LEN / PG, nb,
	       SMALL_LEN / PG, nc, SMALL_LEN / PG, nd, SMALL_LEN / PG);
	wl_say("EARLY done");
}

static int deep(int depth, pid_t ppid)
{
	unsigned char frame[4000];
	int ret = 0;

	wl_fill(frame, sizeof(frame), 300 + (uint64_t)depth);
	if (depth == STACK_DEPTH) {
		struct timespec ms = {0, 1000000};

		wl_ready();
		/* A restored process has another parent: that is how it knows, at once. */
		while (getppid() == ppid && !wl_stop)
			nanosleep(&ms, NULL);
		early();
		wl_wait_sigterm();
		check_memory("after SIGTERM");
	} else {
		ret = deep(depth + 1, ppid);
	}
	if (wl_find_mismatch(frame, sizeof(frame), 300 + (uint64_t)depth) >= 0) {
		wl_fail("stack frame %d lost its contents", depth);
		ret = -1;
	}
	return ret;
}

int main(int argc, char **argv)
{
	unsigned char stackbuf[256 * 1024];

	if (argc != 2) {
		wl_fail("usage: wl_lazy SCRATCH_DIR");
		return 2;
	}
	wl_catch_sigterm(0);
	wl_fill(stackbuf, sizeof(stackbuf), 11);
	if (setup() < 0) {
		wl_fail("setup failed");
		return wl_finish();
	}
	deep(0, getppid());
	check_pattern("main's stack buffer", stackbuf, sizeof(stackbuf), 11);
	return wl_finish();
}
