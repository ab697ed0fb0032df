// SPDX-License-Identifier: MIT
/*
 * wl_shm - shared anonymous and SysV memory mapped in more than one VMA.
 *
 *   split  one MAP_SHARED|MAP_ANONYMOUS region of 16 pages; its first 2 pages unmapped (the
 *          rest maps the object from offset 2 pages), pages 6-7 made read-only, so one object
 *          backs 3 VMAs at object offsets 2, 6 and 8 pages; only some pages are written, the
 *          last one among them. After restore every page holds its bytes (written pages) or
 *          zeros (never written), read-only stays read-only, and writes work. Also a SysV
 *          segment attached once, its middle page written.
 *   anon   one shared anonymous object mapped twice (mremap with old size 0): a write through
 *          one mapping shows in the other. `ckptfs dump` must refuse, naming both mappings.
 *   sysv   one SysV segment attached twice (shmat): the same, refused.
 *   sysv-live   a SysV segment attached once but not removed (reachable by its id): refused.
 *   peer-anon   a shared anonymous region also mapped by another process (a daemonized
 *               grandchild that inherited it): refused.
 *   peer-memfd  a memfd whose fd another process (such a grandchild) also holds: refused.
 * In the refused modes the workload keeps running and its checks pass after the refusal. The
 * grandchild leaves (and removes the sysv-live segment) when SCRATCH/done appears, when the
 * workload has been gone for 3 s, or after 120 s.
 * Usage: wl_shm SCRATCH_DIR MODE
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl_common.h"

#define PG	 4096UL
#define NPAGES	 16
#define HEAD	 2 /* pages unmapped at the start (split) */
#define RO_FIRST 6 /* object pages 6-7 read-only (split) */
#define RO_PAGES 2
#define ALIAS_PG 4

static const char *mode, *dir;
static int live_id = -1, peer_fd = -1;
static uint8_t *base; /* split: object page 0 would be here (unmapped below HEAD) */
static uint8_t *a, *b;

/* Object pages written in split mode: a scattered set including the last page. */
static bool written(unsigned int pg)
{
	return pg == 3 || pg == 6 || pg == 9 || pg == 10 || pg == NPAGES - 1;
}

static int setup_split(void)
{
	base = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		wl_fail("mmap: %s", strerror(errno));
		return -1;
	}
	for (unsigned int pg = 0; pg < NPAGES; pg++)
		if (written(pg))
			wl_fill(base + pg * PG, PG, 100 + pg);
	/* And a SysV segment attached once (removed: it lives while attached). */
	int id = shmget(IPC_PRIVATE, 3 * PG, IPC_CREAT | 0600);
	a = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
	if (id >= 0)
		shmctl(id, IPC_RMID, NULL);
	if (a == (void *)-1) {
		wl_fail("shmget/shmat: %s", strerror(errno));
		return -1;
	}
	wl_fill(a + PG, PG, 9);
	if (munmap(base, HEAD * PG) < 0 ||
	    mprotect(base + RO_FIRST * PG, RO_PAGES * PG, PROT_READ) < 0) {
		wl_fail("munmap/mprotect: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static sigjmp_buf segv_jmp;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_jmp, 1);
}

static void verify_split(void)
{
	for (unsigned int pg = HEAD; pg < NPAGES; pg++) {
		uint8_t *p = base + pg * PG;
		long k;
		if (written(pg) && (k = wl_find_mismatch(p, PG, 100 + pg)) >= 0)
			wl_fail("shared anon object page %u differs at byte %ld", pg, k);
		if (!written(pg) && !wl_all_zero(p, PG))
			wl_fail("shared anon object page %u was never written but is not zero", pg);
	}
	long k;
	if (!wl_all_zero(a, PG) || (k = wl_find_mismatch(a + PG, PG, 9)) >= 0 ||
	    !wl_all_zero(a + 2 * PG, PG))
		wl_fail("the SysV segment's pages differ");
	/* Writable pages take a write; the read-only ones fault. */
	volatile uint8_t *w = base + 12 * PG + 5;
	*w = (uint8_t)(*w + 1);
	*w = (uint8_t)(*w - 1);
	struct sigaction sa = {.sa_handler = on_segv}, old;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(segv_jmp, 1) == 0) {
		*(volatile uint8_t *)(base + RO_FIRST * PG) = 1;
		wl_fail("a write to the read-only part did not fault");
	}
	sigaction(SIGSEGV, &old, NULL);
}

/* A daemonized grandchild that keeps what fork gave it (mappings, keep_fd) until the end;
 * the child in between is reaped, so the workload has no children. */
static int spawn_peer(int keep_fd, int rm_id)
{
	pid_t target = getpid(), pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		setsid();
		if (fork() == 0) {
			for (int fd = 0; fd < 64; fd++)
				if (fd != keep_fd)
					close(fd);
			for (int i = 0, gone = 0; i < 1200 && gone < 30; i++) {
				struct timespec ts = {0, 100 * 1000 * 1000};
				if (wl_done_seen())
					break;
				gone = kill(target, 0) < 0 && errno == ESRCH ? gone + 1 : 0;
				nanosleep(&ts, NULL);
			}
			if (rm_id >= 0)
				shmctl(rm_id, IPC_RMID, NULL);
			_exit(0);
		}
		_exit(0);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

static int setup_peer(void)
{
	if (!strcmp(mode, "sysv-live")) {
		live_id = shmget(IPC_PRIVATE, ALIAS_PG * PG, IPC_CREAT | 0600);
		/* For the harness, which removes it if this process dies first (refuse.sh). */
		char path[4096 + 16];
		snprintf(path, sizeof(path), "%.4096s/shmid", dir);
		FILE *f = live_id < 0 ? NULL : fopen(path, "we");
		if (f) {
			fprintf(f, "%d\n", live_id);
			fclose(f);
		}
		a = live_id < 0 ? (void *)-1 : shmat(live_id, NULL, 0);
		if (a == (void *)-1 || spawn_peer(-1, live_id) < 0)
			return -1;
	} else if (!strcmp(mode, "peer-anon")) {
		a = mmap(NULL, ALIAS_PG * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			 -1, 0);
		if (a == MAP_FAILED || spawn_peer(-1, -1) < 0)
			return -1;
	} else {
		peer_fd = memfd_create("wl-shm-peer", 0);
		if (peer_fd < 0 || ftruncate(peer_fd, ALIAS_PG * PG) < 0)
			return -1;
		a = mmap(NULL, ALIAS_PG * PG, PROT_READ | PROT_WRITE, MAP_SHARED, peer_fd, 0);
		if (a == MAP_FAILED || spawn_peer(peer_fd, -1) < 0)
			return -1;
	}
	wl_fill(a, ALIAS_PG * PG, 8);
	return 0;
}

static void verify_peer(void)
{
	long k;

	if ((k = wl_find_mismatch(a, ALIAS_PG * PG, 8)) >= 0)
		wl_fail("the shared object differs at byte %ld", k);
}

static int setup_alias(void)
{
	if (!strcmp(mode, "anon")) {
		a = mmap(NULL, ALIAS_PG * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			 -1, 0);
		if (a == MAP_FAILED) {
			wl_fail("mmap: %s", strerror(errno));
			return -1;
		}
		/* Old size 0: a second mapping of the same shared object. */
		b = mremap(a, 0, ALIAS_PG * PG, MREMAP_MAYMOVE);
		if (b == MAP_FAILED) {
			wl_fail("mremap: %s", strerror(errno));
			return -1;
		}
	} else {
		int id = shmget(IPC_PRIVATE, ALIAS_PG * PG, IPC_CREAT | 0600);
		if (id < 0) {
			wl_fail("shmget: %s", strerror(errno));
			return -1;
		}
		a = shmat(id, NULL, 0);
		b = shmat(id, NULL, 0);
		/* Removed now: the segment lives as long as it is attached. */
		shmctl(id, IPC_RMID, NULL);
		if (a == (void *)-1 || b == (void *)-1) {
			wl_fail("shmat: %s", strerror(errno));
			return -1;
		}
	}
	wl_fill(a, ALIAS_PG * PG, 7);
	return 0;
}

static void verify_alias(void)
{
	long k;

	if ((k = wl_find_mismatch(b, ALIAS_PG * PG, 7)) >= 0)
		wl_fail("the second mapping differs from the first at byte %ld", k);
	a[PG + 3] ^= 0x5a;
	if (b[PG + 3] != a[PG + 3])
		wl_fail("a write through the first mapping is not seen through the second");
	a[PG + 3] ^= 0x5a;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		wl_fail("usage: wl_shm SCRATCH_DIR split|anon|sysv");
		return 2;
	}
	dir = argv[1];
	mode = argv[2];
	wl_done_init(dir);
	bool split = !strcmp(mode, "split");
	bool alias = !strcmp(mode, "anon") || !strcmp(mode, "sysv");
	bool peer = !strcmp(mode, "sysv-live") || !strcmp(mode, "peer-anon") ||
		    !strcmp(mode, "peer-memfd");
	if (!split && !alias && !peer) {
		wl_fail("unknown mode '%s'", mode);
		return 2;
	}
	if (wl_catch_sigterm(0) < 0)
		return 1;
	if ((split ? setup_split() : alias ? setup_alias() : setup_peer()) < 0) {
		wl_fail("setting up mode '%s': %s", mode, strerror(errno));
		return 1;
	}
	void (*verify)(void) = split ? verify_split : alias ? verify_alias : verify_peer;
	verify();
	wl_ready();
	wl_wait_sigterm();
	verify();
	wl_done_mark();
	if (live_id >= 0)
		shmctl(live_id, IPC_RMID, NULL);
	return wl_finish();
}
