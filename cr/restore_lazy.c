// SPDX-License-Identifier: MIT
/*
 * restore_lazy.c - page-lazy restore through userfaultfd (see restore_lazy.h): the plan of lazy
 * runs, the uffd made in the new process, and the page server.
 *
 * The server's view of one address space (a "target"): segments {va, nr pages, first page in
 * pages.img}, sorted by address, and a bitmap over pages.img of the pages still to be filled.
 * A fault on a pending page gets a window around it read and copied in (UFFDIO_COPY wakes the
 * thread); a fault anywhere else in registered memory is a page that was never saved or was
 * dropped since, and gets the zero page. The process's own changes arrive as events that block
 * it until read, so the segments are always updated before a later fault is seen:
 * REMOVE/UNMAP drop pages (never filled: the process wants zeros or nothing), REMAP moves
 * them, FORK adds a target with a copy of the parent's state (the child inherited its missing
 * pages). Copies racing such changes fail with EAGAIN (the kernel's mmap_changing) and are
 * retried after the event has been read; EEXIST means the page is there already.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "cr/error.h"
#include "cr/ptrace_priv.h"
#include "cr/restore_lazy.h"

#define PG CR_PAGE_SIZE
/* Bytes read for one fault: a neighbourhood is usually touched next. */
#define LZ_WINDOW (64u << 10)
/* One background read: large enough that a FUSE mount splits it over its threads (O_DIRECT:
 * 8 requests of 128 KiB), small enough that a fault queued behind it in the daemon waits
 * ~0.5 ms. 1 and 4 MiB measured the same for the whole fill. */
#define LZ_PREFETCH (1u << 20)
/* After a fault, background reads are held to one in flight for this long: a process that
 * just started runs through its working set, and each of its faults would otherwise queue
 * behind LZ_SLOTS reads in the daemon. */
#define LZ_QUIET_NS (2ULL * 1000 * 1000)
/* Background reads in flight or waiting to be copied: reader threads read the next ones
 * while the server copies the last. Two reads at once keep a mount's daemon threads busy
 * across the gap between one read's last request and the next read's first. */
#define LZ_SLOTS     4
#define LZ_READERS   2
#define LZ_MSGS	     64
#define LZ_MAX_STRAY 256
/* The top page of a 47-bit address space: a valid destination for a probe copy. */
#define LZ_PROBE_VA 0x7fffffffe000ULL
#define LZ_FEATURES                                                                                \
	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |          \
	 UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_THREAD_ID)
/* FUSE_SUPER_MAGIC of linux/magic.h. */
#define LZ_FUSE_MAGIC 0x65735546
/* Test hook: CKPTFS_LAZY_NO_EVENTS=1 ignores the process's memory events (the tests must then
 * fail; never set it otherwise). */
#define LZ_ENV_NO_EVENTS "CKPTFS_LAZY_NO_EVENTS"
/* Test hook: CKPTFS_LAZY_FAIL_FORK=1 makes no background reads (so a fork always finds pages
 * missing), fails the handling of a fork event as if memory ran out and waits 0.3 s after
 * closing the uffds before exiting: the server must kill the process and its child before
 * either can run on with missing pages. Never set it otherwise. */
#define LZ_ENV_FAIL_FORK "CKPTFS_LAZY_FAIL_FORK"
/* Test hook: CKPTFS_LAZY_HOLD_MS=N starts background reads N ms after the commit (a dump of
 * the process meanwhile must wait for the fill, tests/cr/lazy.sh dump-during-fill). */
#define LZ_ENV_HOLD_MS "CKPTFS_LAZY_HOLD_MS"

struct lz_seg {
	uint64_t va;
	uint64_t nr;
	uint64_t page;	  /* index in pages.img of its first page */
	uint64_t pending; /* of its pages */
};

struct lz_target {
	uint64_t id; /* stable while the array moves: background reads name their target */
	int uffd;
	int pidfd; /* -1 when not known */
	pid_t pid; /* 0 until known (a forked child: its first fault says) */
	struct lz_seg *segs;
	size_t nr_segs, cap_segs;
	uint64_t *pending; /* bitmap over pages.img */
	uint64_t nr_pending;
	size_t cursor;	      /* next segment to prefetch */
	uint64_t cursor_page; /* and in it, the first page not yet planned */
	bool gone;
};

enum { LZ_FREE, LZ_QUEUED, LZ_READING, LZ_READY };

/* One background read of pages.img pages [first, end) for target tid. */
struct lz_slot {
	uint8_t *buf; /* LZ_PREFETCH bytes, page aligned (O_DIRECT) */
	uint64_t tid;
	uint64_t first, end;
	uint64_t seq; /* reads are done and copied in planning order */
	int state;    /* under lz_server.lock */
	int err;
};

/* A process served, held by a pidfd so that the kill on failure never hits a pid reused by
 * an unrelated process meanwhile (-1 only if the pidfd could not be had: then by number). */
struct lz_known {
	pid_t pid;
	int pidfd;
};

struct lz_server {
	const char *path;
	int fd;
	uint64_t nr_pages; /* of pages.img */
	uint8_t *buf;	   /* LZ_WINDOW bytes, page aligned (O_DIRECT): fault reads */
	struct lz_target *tg;
	size_t nr_tg, cap_tg;
	struct lz_known *known; /* every process served, for the kill on failure */
	size_t nr_known, cap_known;
	int ctl;
	uint64_t last_fault_ns; /* CLOCK_MONOTONIC */
	uint64_t hold_ns;	/* test hook: background reads start this long after the commit */
	uint64_t hold_until_ns;
	size_t rr;
	bool no_events;
	bool fail_fork;
	/* uffds of forked children that are no target (their fork event came with or after a
	 * failure): kept open until their processes are gone (lz_drain). */
	int stray[LZ_MAX_STRAY];
	int nr_stray;
	uint64_t next_id;
	/* The reader threads and their slots. */
	struct lz_slot slot[LZ_SLOTS];
	uint64_t seq;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int efd; /* eventfd: a read is done (or the holes are known) */
	/* The image's big holes, found by a reader thread off the restore's path (a few hundred
	 * SEEK_DATA round trips to a FUSE daemon per GiB: ~2.5 ms the process would wait). */
	struct cr_hole *holes; /* under lock until holes_ready */
	size_t nr_holes;
	bool holes_claimed, holes_ready; /* under lock */
	bool committed;	    /* the restorer committed: set by the main thread under lock */
	bool holes_applied; /* main thread only */
	bool stop;
	int nr_readers;
	pthread_t reader[LZ_READERS];
};

bool restore_lazy_vma(const struct cr_vma *v)
{
	/*
	 * A WIPEONFORK mapping is filled eagerly. A child forked during the fill keeps the
	 * parent's userfaultfd registration of the mapping (the FORK event gives the server a
	 * copy of the parent's pending pages), but the kernel copies none of its pages: every
	 * page of it in the child is missing, and the server would answer the child's faults
	 * with the saved bytes instead of the zeros WIPEONFORK promises (RNG state copied into
	 * a child). A locked (not on-fault) mapping is eager too: its mlock after the fill
	 * faults in every page anyway, and waiting there for the server gains nothing.
	 */
	if (v->madv & CR_VMA_MADV_WIPEONFORK)
		return false;
	if ((v->madv & CR_VMA_MADV_LOCKED) && !(v->madv & CR_VMA_MADV_LOCKONFAULT))
		return false;
	return v->kind == CR_VMA_ANON && !(v->flags & CR_VMA_F_SHARED);
}

int restore_lazy_plan(const struct cr_task *t, uint8_t **ret_lazy_runs, uint64_t *ret_nr_lazy)
{
	uint8_t *lazy = calloc(t->nr_runs ? t->nr_runs : 1, 1);
	uint64_t n = 0;
	uint32_t vi = 0;

	if (!lazy)
		return -ENOMEM;
	for (uint64_t r = 0; r < t->nr_runs; r++) {
		while (vi < t->nr_vmas && t->vmas[vi].end <= t->runs[r].vaddr)
			vi++;
		if (vi < t->nr_vmas && t->vmas[vi].start <= t->runs[r].vaddr &&
		    restore_lazy_vma(&t->vmas[vi])) {
			lazy[r] = 1;
			n += t->runs[r].nr_pages;
		}
	}
	*ret_lazy_runs = lazy;
	*ret_nr_lazy = n;
	return 0;
}

/* ---- the page server ---- */

static uint64_t lz_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool lz_pending(const struct lz_target *tg, uint64_t page)
{
	return tg->pending[page / 64] & (1ULL << (page % 64));
}

static void lz_clear(struct lz_target *tg, struct lz_seg *s, uint64_t page)
{
	if (!lz_pending(tg, page))
		return;
	tg->pending[page / 64] &= ~(1ULL << (page % 64));
	tg->nr_pending--;
	s->pending--;
}

/* Index of the segment holding va, or -1. */
static ssize_t lz_find(const struct lz_target *tg, uint64_t va)
{
	size_t lo = 0, hi = tg->nr_segs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct lz_seg *s = &tg->segs[mid];

		if (va < s->va)
			hi = mid;
		else if (va >= s->va + s->nr * PG)
			lo = mid + 1;
		else
			return (ssize_t)mid;
	}
	return -1;
}

static int lz_seg_room(struct lz_target *tg, size_t more)
{
	if (tg->nr_segs + more <= tg->cap_segs)
		return 0;
	size_t cap = MAX(tg->cap_segs * 2, tg->nr_segs + more);
	struct lz_seg *n = realloc(tg->segs, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	tg->segs = n;
	tg->cap_segs = cap;
	return 0;
}

static uint64_t lz_count_pending(const struct lz_target *tg, uint64_t page, uint64_t nr)
{
	uint64_t n = 0;

	for (uint64_t p = page; p < page + nr; p++)
		n += lz_pending(tg, p);
	return n;
}

/* No segment crosses va afterwards. */
static int lz_split(struct lz_target *tg, uint64_t va)
{
	ssize_t i = lz_find(tg, va);

	if (i < 0 || tg->segs[i].va == va)
		return 0;
	int ret = lz_seg_room(tg, 1);
	if (ret < 0)
		return ret;
	struct lz_seg *s = &tg->segs[i];
	uint64_t head = (va - s->va) / PG;
	struct lz_seg tail = {va, s->nr - head, s->page + head, 0};

	tail.pending = lz_count_pending(tg, tail.page, tail.nr);
	s->nr = head;
	s->pending -= tail.pending;
	memmove(s + 2, s + 1, (tg->nr_segs - (size_t)i - 1) * sizeof(*s));
	s[1] = tail;
	tg->nr_segs++;
	return 0;
}

/* Pages of [start, end) are never to be filled: unmapped, or discarded (they read as zeros). */
static int lz_drop(struct lz_target *tg, uint64_t start, uint64_t end)
{
	size_t w = 0;
	int ret;

	if (end <= start)
		return 0;
	ret = lz_split(tg, start);
	if (ret == 0)
		ret = lz_split(tg, end);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < tg->nr_segs; i++) {
		struct lz_seg *s = &tg->segs[i];

		if (s->va >= start && s->va < end) {
			for (uint64_t p = s->page; p < s->page + s->nr; p++)
				lz_clear(tg, s, p);
			continue;
		}
		tg->segs[w++] = *s;
	}
	tg->nr_segs = w;
	tg->cursor = 0;
	tg->cursor_page = 0;
	return 0;
}

static int lz_seg_cmp(const void *a, const void *b)
{
	const struct lz_seg *x = a, *y = b;

	return x->va < y->va ? -1 : x->va > y->va;
}

/* mremap moved [from, from + len) to to: its pages, filled or not, now live there. */
static int lz_remap(struct lz_target *tg, uint64_t from, uint64_t to, uint64_t len)
{
	int ret = lz_drop(tg, to, to + len);

	if (ret == 0)
		ret = lz_split(tg, from);
	if (ret == 0)
		ret = lz_split(tg, from + len);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < tg->nr_segs; i++)
		if (tg->segs[i].va >= from && tg->segs[i].va < from + len)
			tg->segs[i].va = tg->segs[i].va - from + to;
	qsort(tg->segs, tg->nr_segs, sizeof(*tg->segs), lz_seg_cmp);
	tg->cursor = 0;
	tg->cursor_page = 0;
	return 0;
}

/*
 * Copies the pending pages among nr pages of segment si starting at page index first (bytes
 * at src). Returns 0, -ESRCH (the address space is gone), -EAGAIN (it is changing: read the
 * events first) or another -errno.
 */
static int lz_copy(struct lz_target *tg, size_t si, uint64_t first, uint64_t nr, const uint8_t *src)
{
	uint64_t i = 0, cap = UINT64_MAX;

	while (i < nr) {
		struct lz_seg *s = &tg->segs[si];
		uint64_t page = first + i, n = 0;

		if (!lz_pending(tg, page)) {
			i++;
			continue;
		}
		while (i + n < nr && n < cap && lz_pending(tg, page + n))
			n++;
		struct uffdio_copy uc = {
			.dst = s->va + (page - s->page) * PG,
			.src = (uint64_t)(uintptr_t)(src + i * PG),
			.len = n * PG,
		};
		uint64_t adv;

		if (ioctl(tg->uffd, UFFDIO_COPY, &uc) == 0) {
			adv = n;
		} else if (uc.copy > 0) {
			adv = (uint64_t)uc.copy / PG;
		} else if (uc.copy == -EEXIST) {
			adv = 1; /* a fault or the fork's copy put it there */
		} else if (uc.copy == -ENOENT && n > 1) {
			/* The range crosses the end of a VMA (the process split it since): halve
			 * until the part before that point goes in. */
			cap = n / 2;
			continue;
		} else if (uc.copy == -ENOENT) {
			adv = 1; /* not mapped there any more, nor registered: nobody wants it */
		} else if (uc.copy == -ESRCH || uc.copy == -EAGAIN) {
			return (int)uc.copy;
		} else {
			return uc.copy < 0 ? (int)uc.copy : -errno;
		}
		cap = UINT64_MAX;
		for (uint64_t k = 0; k < adv; k++)
			lz_clear(tg, s, page + k);
		i += adv;
	}
	return 0;
}

/* Reads len bytes at off into buf; -EBADMSG at the end of the file. */
static int lz_pread(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EBADMSG;
		done += (size_t)n;
	}
	return 0;
}

/* A read of [off, off + len) failed: find the first page that fails on its own (one failed
 * piece fails a whole direct read on FUSE), for the message. */
static uint64_t lz_bad_page(struct lz_server *srv, uint64_t off, uint64_t len, int *ret_err)
{
	for (uint64_t p = off; p < off + len; p += PG) {
		int ret = lz_pread(srv->fd, srv->buf, PG, p);

		if (ret < 0) {
			*ret_err = ret;
			return p;
		}
	}
	return off;
}

static bool lz_known_has(const struct lz_server *srv, pid_t pid)
{
	for (size_t i = 0; i < srv->nr_known; i++)
		if (srv->known[i].pid == pid)
			return true;
	return false;
}

/* Records pid as served. It must be ours when called (a thread of it waits in a fault, or it
 * was just found as a child of one of ours and checked again once its pidfd was open). */
static void lz_note_pid(struct lz_server *srv, pid_t pid, int pidfd)
{
	if (lz_known_has(srv, pid)) {
		if (pidfd >= 0)
			close(pidfd);
		return;
	}
	if (srv->nr_known == srv->cap_known) {
		size_t cap = MAX(srv->cap_known * 2, 8);
		struct lz_known *n = realloc(srv->known, cap * sizeof(*n));
		if (!n) {
			if (pidfd >= 0)
				close(pidfd);
			return;
		}
		srv->known = n;
		srv->cap_known = cap;
	}
	if (pidfd < 0)
		pidfd = pidfd_open(pid, 0);
	srv->known[srv->nr_known++] = (struct lz_known){pid, pidfd};
}

/* Parent pid of pid from /proc, or -1. */
static pid_t lz_ppid(const char *pid)
{
	char path[64], buf[512];
	int ppid;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

/* Adds to srv->known everything below the processes served (what they forked meanwhile,
 * whose pid a fault has not told yet), found by parent pid and repeated until nothing new
 * turns up. */
static void lz_find_tree(struct lz_server *srv)
{
	for (bool more = true; more;) {
		more = false;
		DIR *d = opendir("/proc");
		struct dirent *de;

		if (!d)
			break;
		while ((de = readdir(d))) {
			pid_t pid = atoi(de->d_name), ppid;
			int pidfd;

			if (pid <= 0 || (ppid = lz_ppid(de->d_name)) <= 0 ||
			    !lz_known_has(srv, ppid) || lz_known_has(srv, pid))
				continue;
			/* Still that child once the pidfd holds it (not a reused pid)? */
			pidfd = pidfd_open(pid, 0);
			if (pidfd < 0 || lz_ppid(de->d_name) != ppid) {
				if (pidfd >= 0)
					close(pidfd);
				continue;
			}
			lz_note_pid(srv, pid, pidfd);
			more = true;
		}
		closedir(d);
	}
}

/*
 * SIGKILLs every process served and what they forked. The tree is found first: a killed
 * parent's children are reparented at once and no longer found by parent pid, and one whose
 * uffd still waits for us would run on with zero pages once this server exits. Also done
 * while every uffd is still open, for the same reason. A served process cannot fork after
 * the walk: its fork waits for us to read the fork event, and the SIGKILL ends it.
 */
static void lz_kill(struct lz_server *srv)
{
	lz_find_tree(srv);
	for (size_t i = 0; i < srv->nr_tg; i++)
		if (srv->tg[i].pidfd >= 0)
			pidfd_send_signal(srv->tg[i].pidfd, SIGKILL, NULL, 0);
	for (size_t i = 0; i < srv->nr_known; i++) {
		if (srv->known[i].pidfd >= 0)
			pidfd_send_signal(srv->known[i].pidfd, SIGKILL, NULL, 0);
		else
			kill(srv->known[i].pid, SIGKILL);
	}
}

/* A page cannot be read: the process must not run on with zeros there, nor hang. */
static int lz_fail(struct lz_server *srv, struct lz_target *tg, uint64_t off, uint64_t len,
		   uint64_t va, int err)
{
	uint64_t bad = off;

	if (err != -EBADMSG)
		bad = lz_bad_page(srv, off, len, &err);
	va += bad - off;
	log_err("lazy restore of pid %d: reading '%s' at offset %" PRIu64 " (address %#" PRIx64
		"): %s; killing the restored process",
		tg->pid, srv->path, bad, va, err == -EBADMSG ? "truncated" : strerror(-err));
	lz_kill(srv);
	return -EIO;
}

/* Reads the file pages [first, first + nr) of segment si and copies the pending ones in. */
static int lz_fill(struct lz_server *srv, struct lz_target *tg, size_t si, uint64_t first,
		   uint64_t nr)
{
	uint64_t off = first * PG;
	uint64_t va = tg->segs[si].va + (first - tg->segs[si].page) * PG;
	int ret = lz_pread(srv->fd, srv->buf, (size_t)(nr * PG), off);

	if (ret < 0)
		return lz_fail(srv, tg, off, nr * PG, va, ret);
	return lz_copy(tg, si, first, nr, srv->buf);
}

static void lz_wake(struct lz_target *tg, uint64_t va)
{
	struct uffdio_range r = {va, PG};

	ioctl(tg->uffd, UFFDIO_WAKE, &r);
}

static int lz_fault(struct lz_server *srv, struct lz_target *tg, const struct uffd_msg *m)
{
	uint64_t va = m->arg.pagefault.address & ~(PG - 1);
	ssize_t si = lz_find(tg, va);
	int ret = 0;

	srv->last_fault_ns = lz_now_ns();
	if (!tg->pid && m->arg.pagefault.feat.ptid) {
		tg->pid = (pid_t)m->arg.pagefault.feat.ptid;
		lz_note_pid(srv, tg->pid, -1);
	}
	if (si >= 0 && lz_pending(tg, tg->segs[si].page + (va - tg->segs[si].va) / PG)) {
		const struct lz_seg *s = &tg->segs[si];
		uint64_t lo = MAX(s->va, va & ~(uint64_t)(LZ_WINDOW - 1));
		uint64_t hi =
			MIN(s->va + s->nr * PG, (va & ~(uint64_t)(LZ_WINDOW - 1)) + LZ_WINDOW);

		ret = lz_fill(srv, tg, (size_t)si, s->page + (lo - s->va) / PG, (hi - lo) / PG);
	} else {
		struct uffdio_zeropage z = {.range = {va, PG}};

		if (ioctl(tg->uffd, UFFDIO_ZEROPAGE, &z) < 0 && z.zeropage == -ESRCH)
			ret = -ESRCH;
	}
	if (ret == -EIO)
		return ret;
	/* A copy that found the page present (or EAGAIN) did not wake the thread; if the page
	 * is still missing it simply faults again. */
	lz_wake(tg, va);
	if (ret == -ESRCH)
		tg->gone = true;
	else if (ret < 0 && ret != -EAGAIN)
		return ret;
	return 0;
}

static void lz_target_free(struct lz_target *tg);

/* A forked child's uffd that no target takes: closing it would let the child run on with
 * zero pages, so it stays open until the child is gone (lz_drain). */
static void lz_keep_stray(struct lz_server *srv, int uffd)
{
	if (srv->nr_stray < LZ_MAX_STRAY)
		srv->stray[srv->nr_stray++] = uffd;
	/* else it stays open, unwatched, until the server exits */
}

/* A fork made a copy of target parent's address space, served through uffd. On failure uffd
 * is kept as a stray one. */
static int lz_fork(struct lz_server *srv, size_t parent, int uffd)
{
	if (srv->fail_fork) {
		lz_keep_stray(srv, uffd);
		return -ENOMEM;
	}
	if (srv->nr_tg == srv->cap_tg) {
		size_t cap = MAX(srv->cap_tg * 2, 4);
		struct lz_target *n = realloc(srv->tg, cap * sizeof(*n));
		if (!n) {
			lz_keep_stray(srv, uffd);
			return -ENOMEM;
		}
		srv->tg = n;
		srv->cap_tg = cap;
	}
	const struct lz_target *p = &srv->tg[parent];
	size_t words = (srv->nr_pages + 63) / 64;
	struct lz_target c = {
		.id = ++srv->next_id, .uffd = uffd, .pidfd = -1, .nr_pending = p->nr_pending};

	c.segs = malloc(MAX(p->nr_segs, 1) * sizeof(*c.segs));
	c.pending = malloc(MAX(words, 1) * sizeof(uint64_t));
	if (!c.segs || !c.pending) {
		lz_keep_stray(srv, uffd);
		c.uffd = -1;
		lz_target_free(&c);
		return -ENOMEM;
	}
	memcpy(c.segs, p->segs, p->nr_segs * sizeof(*c.segs));
	memcpy(c.pending, p->pending, words * sizeof(uint64_t));
	c.nr_segs = c.cap_segs = p->nr_segs;
	srv->tg[srv->nr_tg++] = c;
	return 0;
}

/* Reads and handles what the uffd of target ti has; *ret_any: there was something. */
static int lz_read(struct lz_server *srv, size_t ti, bool *ret_any)
{
	struct uffd_msg msgs[LZ_MSGS];
	ssize_t n = read(srv->tg[ti].uffd, msgs, sizeof(msgs));

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	*ret_any = n > 0;
	for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
		const struct uffd_msg *m = &msgs[i];
		struct lz_target *tg = &srv->tg[ti]; /* lz_fork may move the array */
		int ret = 0;

		switch (m->event) {
		case UFFD_EVENT_PAGEFAULT:
			ret = lz_fault(srv, tg, m);
			break;
		case UFFD_EVENT_FORK:
			ret = lz_fork(srv, ti, (int)m->arg.fork.ufd);
			break;
		case UFFD_EVENT_REMAP:
			if (!srv->no_events)
				ret = lz_remap(tg, m->arg.remap.from, m->arg.remap.to,
					       m->arg.remap.len);
			break;
		case UFFD_EVENT_REMOVE:
		case UFFD_EVENT_UNMAP:
			if (!srv->no_events)
				ret = lz_drop(tg, m->arg.remove.start, m->arg.remove.end);
			break;
		default:
			break;
		}
		if (ret < 0) {
			/* Later fork events of this read installed uffds too. */
			for (size_t j = i + 1; j < (size_t)n / sizeof(msgs[0]); j++)
				if (msgs[j].event == UFFD_EVENT_FORK)
					lz_keep_stray(srv, (int)msgs[j].arg.fork.ufd);
			return ret;
		}
	}
	return 0;
}

/* Whether the address space behind uffd is gone. The probe copies from address 0, which
 * always fails (EFAULT) without putting anything in place; only a dead address space makes
 * it fail with ESRCH instead, which the kernel checks first. */
static bool lz_mm_gone(int uffd)
{
	struct uffdio_copy uc = {
		.dst = LZ_PROBE_VA, .src = 0, .len = PG, .mode = UFFDIO_COPY_MODE_DONTWAKE};

	return ioctl(uffd, UFFDIO_COPY, &uc) < 0 && errno == ESRCH;
}

/* Of the watched uffds, the readable ones: a fault there is a process the kill missed (a
 * fork that became visible in /proc only after the walk); it is killed by its thread id. A
 * fork event adds a stray uffd. */
static void lz_drain_read(struct lz_server *srv, int uffd)
{
	struct uffd_msg msgs[LZ_MSGS];
	ssize_t n = read(uffd, msgs, sizeof(msgs));

	for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT && msgs[i].arg.pagefault.feat.ptid > 0)
			kill((pid_t)msgs[i].arg.pagefault.feat.ptid, SIGKILL);
		else if (msgs[i].event == UFFD_EVENT_FORK)
			lz_keep_stray(srv, (int)msgs[i].arg.fork.ufd);
	}
}

/*
 * After the kill: every uffd held stays open until its address space is gone. Closing one
 * earlier would let a process that escaped the kill run on with zero pages; while it is open
 * such a process can only wait on a fault, which names it, and it is killed then.
 */
static void lz_drain(struct lz_server *srv)
{
	for (;;) {
		struct pollfd pfd[srv->nr_tg + LZ_MAX_STRAY];
		nfds_t np = 0;

		for (size_t i = 0; i < srv->nr_tg; i++)
			if (!lz_mm_gone(srv->tg[i].uffd))
				pfd[np++] = (struct pollfd){srv->tg[i].uffd, POLLIN, 0};
		for (int i = 0; i < srv->nr_stray; i++)
			if (!lz_mm_gone(srv->stray[i]))
				pfd[np++] = (struct pollfd){srv->stray[i], POLLIN, 0};
		if (!np)
			return;
		if (poll(pfd, np, 50) < 0 && errno != EINTR)
			return;
		for (nfds_t i = 0; i < np; i++)
			if (pfd[i].revents)
				lz_drain_read(srv, pfd[i].fd);
	}
}

/* Wakes the main thread; called and returns with srv->lock held, but writes without it: at
 * normal priority the main thread would preempt this idle reader and then wait for the lock
 * until the reader runs again. */
static void lz_wake_main(struct lz_server *srv)
{
	const uint64_t one = 1;

	pthread_mutex_unlock(&srv->lock);
	if (write(srv->efd, &one, sizeof(one)) < 0)
		log_debug("page server: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&srv->lock);
}

/* The first reader to get here finds the image's holes for the main thread (lz_apply_holes),
 * once the restore has committed: before that, the restorer's own reads would queue behind
 * these requests in a FUSE daemon. Under srv->lock. */
static void lz_reader_find_holes(struct lz_server *srv)
{
	struct cr_hole *holes = NULL;
	size_t n = 0;

	while (!srv->committed && !srv->stop)
		pthread_cond_wait(&srv->cond, &srv->lock);
	if (srv->holes_claimed || srv->stop)
		return;
	srv->holes_claimed = true;
	pthread_mutex_unlock(&srv->lock);
	if (restore_find_holes(srv->fd, &holes, &n) < 0)
		n = 0; /* then every page is read, as without holes */
	pthread_mutex_lock(&srv->lock);
	srv->holes = holes;
	srv->nr_holes = n;
	srv->holes_ready = true;
	lz_wake_main(srv);
}

static void *lz_reader(void *arg)
{
	struct lz_server *srv = arg;
	const struct sched_param idle = {0};

	/* Background reads use only CPU nobody else wants: the restored process must not wait
	 * for the CPU behind its own prefetch (faults are read by the main thread, at normal
	 * priority). A ckptfs mount decodes each read at the priority of the thread asking
	 * (fs/read_prio.h), so this reaches the daemon's decoding too. */
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0)
		log_debug("page server: background reads at normal priority (SCHED_IDLE refused)");

	pthread_mutex_lock(&srv->lock);
	lz_reader_find_holes(srv);
	while (!srv->stop) {
		struct lz_slot *s = NULL;

		for (int i = 0; i < LZ_SLOTS; i++)
			if (srv->slot[i].state == LZ_QUEUED && (!s || srv->slot[i].seq < s->seq))
				s = &srv->slot[i];
		if (!s) {
			pthread_cond_wait(&srv->cond, &srv->lock);
			continue;
		}
		s->state = LZ_READING;
		pthread_mutex_unlock(&srv->lock);
		int err = lz_pread(srv->fd, s->buf, (size_t)((s->end - s->first) * PG),
				   s->first * PG);
		pthread_mutex_lock(&srv->lock);
		s->err = err;
		s->state = LZ_READY;
		lz_wake_main(srv);
	}
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* Whether file page p of target tid is in a read already planned. Under lock. */
static bool lz_planned(const struct lz_server *srv, uint64_t tid, uint64_t p)
{
	for (int i = 0; i < LZ_SLOTS; i++) {
		const struct lz_slot *s = &srv->slot[i];
		if (s->state != LZ_FREE && s->tid == tid && p >= s->first && p < s->end)
			return true;
	}
	return false;
}

/* Plans the next background read into slot: the next pending pages in address order of the
 * next target, and the segments after them that continue in the file. Under lock. */
static bool lz_plan(struct lz_server *srv, struct lz_slot *slot)
{
	struct lz_target *tg = NULL;

	for (size_t k = 0; k < srv->nr_tg && !tg; k++) {
		struct lz_target *c = &srv->tg[(srv->rr + k) % srv->nr_tg];
		if (c->nr_pending && !c->gone && c->nr_segs)
			tg = c;
	}
	srv->rr++;
	if (!tg)
		return false;
	size_t i = tg->cursor % tg->nr_segs;
	uint64_t first = UINT64_MAX;
	for (size_t k = 0; k <= tg->nr_segs && first == UINT64_MAX; k++) {
		const struct lz_seg *s = &tg->segs[i];
		uint64_t p = i == tg->cursor ? MAX(s->page, tg->cursor_page) : s->page;

		for (; s->pending && p < s->page + s->nr; p++)
			if (lz_pending(tg, p)) {
				first = p;
				break;
			}
		if (first == UINT64_MAX) {
			i = (i + 1) % tg->nr_segs;
			tg->cursor = i;
			tg->cursor_page = 0;
		}
	}
	if (first == UINT64_MAX || lz_planned(srv, tg->id, first))
		return false; /* all that is left is being read */
	uint64_t end = first;
	size_t j = i;
	bool cut = false;
	for (; j < tg->nr_segs && !cut; j++) {
		const struct lz_seg *sj = &tg->segs[j];
		if (j > i && sj->page != end)
			break;
		end = MIN(sj->page + sj->nr, first + LZ_PREFETCH / PG);
		cut = end < sj->page + sj->nr;
	}
	/* The next read starts after this one: inside the segment it cut, or at the next. */
	tg->cursor = cut ? j - 1 : j;
	tg->cursor_page = cut ? end : 0;
	*slot = (struct lz_slot){.buf = slot->buf,
				 .tid = tg->id,
				 .first = first,
				 .end = end,
				 .seq = srv->seq++,
				 .state = LZ_QUEUED};
	return true;
}

/* Keeps the readers busy: plans reads into free slots, up to max reads planned at once. */
static void lz_queue(struct lz_server *srv, int max)
{
	bool queued = false;
	int busy = 0;

	pthread_mutex_lock(&srv->lock);
	for (int i = 0; i < LZ_SLOTS; i++)
		busy += srv->slot[i].state != LZ_FREE;
	for (int i = 0; i < LZ_SLOTS && busy < max; i++)
		if (srv->slot[i].state == LZ_FREE && lz_plan(srv, &srv->slot[i])) {
			queued = true;
			busy++;
		}
	if (queued)
		pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

/* The oldest read that is done, or NULL. */
static struct lz_slot *lz_ready(struct lz_server *srv)
{
	struct lz_slot *s = NULL;

	pthread_mutex_lock(&srv->lock);
	for (int i = 0; i < LZ_SLOTS; i++)
		if (srv->slot[i].state == LZ_READY && (!s || srv->slot[i].seq < s->seq))
			s = &srv->slot[i];
	pthread_mutex_unlock(&srv->lock);
	return s;
}

static void lz_slot_free(struct lz_server *srv, struct lz_slot *s)
{
	pthread_mutex_lock(&srv->lock);
	s->state = LZ_FREE;
	pthread_mutex_unlock(&srv->lock);
}

/* Copies a finished background read into its target: the pending pages of every segment it
 * covers now (events may have moved them since it was planned). */
static int lz_consume(struct lz_server *srv, struct lz_slot *slot)
{
	struct lz_target *tg = NULL;

	for (size_t i = 0; i < srv->nr_tg; i++)
		if (srv->tg[i].id == slot->tid)
			tg = &srv->tg[i];
	if (tg && !tg->gone && slot->err) {
		uint64_t va = 0;
		for (size_t k = 0; k < tg->nr_segs; k++) {
			const struct lz_seg *sk = &tg->segs[k];
			if (slot->first >= sk->page && slot->first < sk->page + sk->nr)
				va = sk->va + (slot->first - sk->page) * PG;
		}
		return lz_fail(srv, tg, slot->first * PG, (slot->end - slot->first) * PG, va,
			       slot->err);
	}
	for (size_t k = 0; tg && !tg->gone && k < tg->nr_segs; k++) {
		const struct lz_seg *sk = &tg->segs[k];
		uint64_t a = MAX(sk->page, slot->first), b = MIN(sk->page + sk->nr, slot->end);

		if (a >= b || !sk->pending)
			continue;
		int ret = lz_copy(tg, k, a, b - a, slot->buf + (a - slot->first) * PG);
		if (ret == -EAGAIN)
			return 0; /* an event is waiting: the loop reads it, then comes back here */
		if (ret == -ESRCH)
			tg->gone = true;
		else if (ret < 0)
			return ret;
	}
	lz_slot_free(srv, slot);
	return 0;
}

static void lz_target_free(struct lz_target *tg)
{
	closep(&tg->uffd);
	closep(&tg->pidfd);
	free(tg->segs);
	free(tg->pending);
}

/* Drops targets that are done or gone; closing a uffd unregisters its ranges (anything left
 * there was never saved: zeros, as the kernel fills it). */
static void lz_reap_targets(struct lz_server *srv)
{
	size_t w = 0;

	for (size_t i = 0; i < srv->nr_tg; i++) {
		struct lz_target *tg = &srv->tg[i];

		if (tg->gone || !tg->nr_pending) {
			log_debug("page server: pid %d %s", tg->pid,
				  tg->gone ? "is gone" : "has all its pages");
			lz_target_free(tg);
			continue;
		}
		srv->tg[w++] = *tg;
	}
	srv->nr_tg = w;
}

/* The image's big holes are not pending: private anonymous memory reads zeros unfilled, so
 * a fault there gets the zero page and the prefetch passes them by (as the eager fill does).
 * Pages of them already filled meanwhile are simply no longer pending. */
static void lz_drop_holes(struct lz_target *tg, const struct cr_hole *h, size_t nr_h)
{
	for (size_t k = 0; k < tg->nr_segs; k++) {
		struct lz_seg *s = &tg->segs[k];
		uint64_t first = s->page * PG, end = (s->page + s->nr) * PG;

		for (size_t i = 0; i < nr_h; i++) {
			uint64_t a = MAX(first, h[i].start), b = MIN(end, h[i].end);

			for (uint64_t p = (a + PG - 1) / PG; a < b && p < b / PG; p++)
				lz_clear(tg, s, p);
		}
	}
}

/* Once a reader has found the holes: no target keeps them pending. */
static void lz_apply_holes(struct lz_server *srv)
{
	if (srv->holes_applied)
		return;
	pthread_mutex_lock(&srv->lock);
	if (srv->holes_ready) {
		for (size_t i = 0; i < srv->nr_tg; i++)
			lz_drop_holes(&srv->tg[i], srv->holes, srv->nr_holes);
		srv->holes_applied = true;
	}
	pthread_mutex_unlock(&srv->lock);
}

static int lz_serve(struct lz_server *srv)
{
	/* srv->committed: written only here (under the lock, for the readers). */
	int ret = 0;

	/* Done or not, it waits for the restorer's word: a pid file names a live server, and
	 * a failed restore still counts as failed. */
	while (srv->nr_tg || !srv->committed) {
		struct pollfd pfd[2 + 2 * srv->nr_tg];
		size_t np = 0;
		bool any = false;
		uint64_t cnt;

		/* Background reads wait for the restore's commit: until then the restorer's own
		 * reads of the eager pages would queue behind them in a FUSE daemon (measured:
		 * 2-5 ms per small read, ~20 ms more until the process runs). Faults are served
		 * from the start. */
		uint64_t now = lz_now_ns(), since = now - srv->last_fault_ns;
		bool quiet = since >= LZ_QUIET_NS, held = now < srv->hold_until_ns;
		/* ... and once the holes are known, so that none is prefetched. */
		if (srv->committed && !srv->fail_fork && !held && srv->holes_applied)
			lz_queue(srv, quiet ? LZ_SLOTS : 1);
		struct lz_slot *ready = lz_ready(srv);
		int timeout = -1;
		if (ready)
			timeout = 0;
		else if (srv->committed && held)
			timeout = (int)((srv->hold_until_ns - now) / 1000000) + 1;
		else if (srv->committed && !quiet)
			timeout = (int)((LZ_QUIET_NS - since) / 1000000) + 1;
		pfd[np++] = (struct pollfd){srv->efd, POLLIN, 0};
		if (!srv->committed)
			pfd[np++] = (struct pollfd){srv->ctl, POLLIN, 0};
		for (size_t i = 0; i < srv->nr_tg; i++) {
			pfd[np++] = (struct pollfd){srv->tg[i].uffd, POLLIN, 0};
			pfd[np++] = (struct pollfd){srv->tg[i].pidfd, POLLIN, 0};
		}
		/* Sleep only with nothing to copy (a finished read wakes us through efd), and
		 * not past the end of a quiet period. */
		if (poll(pfd, np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		size_t k = 0;
		if (pfd[k++].revents && read(srv->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			return -errno;
		lz_apply_holes(srv);
		if (!srv->committed) {
			char b = 0;
			if (pfd[k++].revents && (read(srv->ctl, &b, 1) != 1 || b != 'C')) {
				log_debug("page server: the restore failed; leaving");
				return -ECANCELED;
			}
			if (b == 'C') {
				srv->hold_until_ns = lz_now_ns() + srv->hold_ns;
				pthread_mutex_lock(&srv->lock);
				srv->committed = true;
				pthread_cond_broadcast(&srv->cond);
				pthread_mutex_unlock(&srv->lock);
			}
		}
		size_t nr = srv->nr_tg; /* targets a fork adds now are polled next time */
		for (size_t i = 0; i < nr; i++, k += 2) {
			if (pfd[k + 1].revents & POLLIN)
				srv->tg[i].gone = true;
			else if (pfd[k].revents)
				ret = lz_read(srv, i, &any);
			if (ret < 0)
				return ret;
		}
		if (!any && ready) {
			ret = lz_consume(srv, ready);
			if (ret < 0)
				return ret;
		}
		lz_reap_targets(srv);
	}
	return 0;
}

/* Closes every fd of this process except stderr and the ones in keep[] (n of them). */
static void lz_close_others(const int *keep, int n)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	close_fds_except(keep, (size_t)n, 3);
}

static int lz_reader_start(struct lz_server *srv)
{
	int ret;

	srv->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->efd < 0)
		return -errno;
	for (int i = 0; i < LZ_SLOTS; i++) {
		ret = -posix_memalign((void **)&srv->slot[i].buf, PG, LZ_PREFETCH);
		if (ret < 0)
			return ret;
	}
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->cond, NULL);
	for (; srv->nr_readers < LZ_READERS; srv->nr_readers++) {
		ret = -pthread_create(&srv->reader[srv->nr_readers], NULL, lz_reader, srv);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* A read in progress is waited for (on an unmounted store it fails at once). */
static void lz_reader_stop(struct lz_server *srv)
{
	if (srv->nr_readers) {
		pthread_mutex_lock(&srv->lock);
		srv->stop = true;
		pthread_cond_broadcast(&srv->cond);
		pthread_mutex_unlock(&srv->lock);
		for (int i = 0; i < srv->nr_readers; i++)
			pthread_join(srv->reader[i], NULL);
		srv->nr_readers = 0;
	}
	for (int i = 0; i < LZ_SLOTS; i++)
		free(srv->slot[i].buf);
	free(srv->holes);
	srv->holes = NULL;
	closep(&srv->efd);
}

static int lz_server_main(struct lz_server *srv, struct lz_target *root)
{
	const char *ev = getenv(LZ_ENV_NO_EVENTS);
	int keep[] = {srv->fd, srv->ctl, root->uffd, root->pidfd};

	/* Its own session: no terminal signals. A server that dies early unregisters the
	 * process's missing pages, which then read as zeros: only SIGKILL may end it. */
	setsid();
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	prctl(PR_SET_NAME, "ckptfs-pages", 0, 0, 0);
	/* Pin no directory (a mount the restorer ran in) beyond pages.img itself. */
	if (chdir("/") < 0)
		log_debug("page server: chdir /: %s", strerror(errno));
	lz_close_others(keep, (int)ARRAY_SIZE(keep));
	srv->no_events = ev && !strcmp(ev, "1");
	ev = getenv(LZ_ENV_FAIL_FORK);
	srv->fail_fork = ev && !strcmp(ev, "1");
	ev = getenv(LZ_ENV_HOLD_MS);
	srv->hold_ns = ev ? strtoull(ev, NULL, 10) * 1000000ULL : 0;
	srv->tg = malloc(4 * sizeof(*srv->tg));
	if (!srv->tg)
		return 1;
	srv->tg[0] = *root;
	srv->tg[0].id = ++srv->next_id;
	srv->nr_tg = 1;
	srv->cap_tg = 4;
	lz_note_pid(srv, root->pid, -1);
	int ret = lz_reader_start(srv);
	if (ret == 0)
		ret = lz_serve(srv);
	if (ret < 0 && ret != -EIO && ret != -ECANCELED) {
		log_err("lazy restore of pid %d: the page server failed: %s; killing it", root->pid,
			strerror(-ret));
		lz_kill(srv);
	}
	if (ret < 0 && ret != -ECANCELED)
		lz_drain(srv);
	lz_reader_stop(srv);
	for (size_t i = 0; i < srv->nr_tg; i++)
		lz_target_free(&srv->tg[i]);
	for (int i = 0; i < srv->nr_stray; i++)
		close(srv->stray[i]);
	if (srv->fail_fork) /* test hook: time for a process left running to show it */
		usleep(300 * 1000);
	return ret < 0 ? 1 : 0;
}

/* ---- the restorer's side ---- */

static int lz_inject(const struct lazy_target *lt, const char *what, int64_t *ret_val, long nr,
		     uint64_t a1)
{
	int64_t rv;
	int ret = inject_call(lt->pid, lt->syscall_ip, lt->base, &rv, nr, a1, 0, 0, 0, 0, 0);

	if (ret < 0)
		return ret;
	if (rv < 0 && rv > -4096) {
		cr_error("restoring pid %d: %s failed: %s", lt->pid, what, strerror((int)-rv));
		return (int)rv;
	}
	if (ret_val)
		*ret_val = rv;
	return 0;
}

/* userfaultfd() acts on the calling process's mm: the new process makes it, we take it. */
static int lz_make_uffd(const struct lazy_target *lt, int pidfd, int *ret_uffd)
{
	int64_t cfd;
	int ret = lz_inject(lt, "userfaultfd", &cfd, SYS_userfaultfd,
			    (uint64_t)(O_CLOEXEC | O_NONBLOCK));
	if (ret < 0)
		return ret;
	int fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)cfd, 0);
	int err = errno;
	ret = lz_inject(lt, "close of the userfaultfd", NULL, SYS_close, (uint64_t)cfd);
	if (fd < 0) {
		cr_error("restoring pid %d: taking its userfaultfd: %s", lt->pid, strerror(err));
		return -err;
	}
	if (ret < 0) {
		close(fd);
		return ret;
	}
	struct uffdio_api api = {.api = UFFD_API, .features = LZ_FEATURES};
	ret = ioctl(fd, UFFDIO_API, &api) < 0 ? -errno : 0;
	if (ret < 0 || (api.features & LZ_FEATURES) != LZ_FEATURES) {
		ret = ret < 0 ? ret : -EOPNOTSUPP;
		cr_error("restoring pid %d: userfaultfd lacks fork/remap/remove/unmap events "
			 "(features %#llx): %s",
			 lt->pid, (unsigned long long)api.features, strerror(-ret));
		close(fd);
		return ret;
	}
	*ret_uffd = fd;
	return 0;
}

static int lz_register(int uffd, const struct cr_task *t, const uint8_t *lazy_runs, pid_t pid)
{
	uint32_t vi = 0;

	for (uint64_t r = 0; r < t->nr_runs; r++) {
		if (!lazy_runs[r])
			continue;
		while (t->vmas[vi].end <= t->runs[r].vaddr)
			vi++;
		const struct cr_vma *v = &t->vmas[vi];
		struct uffdio_register reg = {
			.range = {v->start, v->end - v->start},
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
			int ret = -errno;
			cr_error("restoring pid %d: registering %#" PRIx64 "-%#" PRIx64
				 " with userfaultfd: %s",
				 pid, v->start, v->end, strerror(errno));
			return ret;
		}
		if (!(reg.ioctls & (1ULL << _UFFDIO_COPY))) {
			cr_error("restoring pid %d: userfaultfd cannot copy into %#" PRIx64, pid,
				 v->start);
			return -EOPNOTSUPP;
		}
		/* Every later run of this VMA is covered. */
		while (r + 1 < t->nr_runs && t->runs[r + 1].vaddr < v->end)
			r++;
	}
	return 0;
}

/* No lazy page may be present once its range is registered: one touched before would have
 * been zero-filled, and UFFDIO_COPY would skip it (EEXIST) for ever. Checked in pagemap. */
static int lz_check_unpopulated(const struct cr_task *t, const uint8_t *lazy_runs, pid_t pid)
{
	/* Large reads: 4 KiB of entries per read cost ~16 ms per GiB of lazy memory. */
	const uint64_t nr_ent = 32768;
	_cleanup_free_ uint64_t *ent = calloc(nr_ent, sizeof(*ent));
	char path[64];

	if (!ent)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int ret = -errno;
		cr_error("restoring pid %d: '%s': %s", pid, path, strerror(errno));
		return ret; /* cppcheck-suppress memleak ; ent is a cleanup variable */
	}
	for (uint64_t r = 0; r < t->nr_runs; r++) {
		for (uint64_t p = 0; lazy_runs[r] && p < t->runs[r].nr_pages; p += nr_ent) {
			uint64_t n = MIN(nr_ent, t->runs[r].nr_pages - p);
			uint64_t va = t->runs[r].vaddr + p * PG;
			int ret = pread_full(fd, ent, n * sizeof(ent[0]), va / PG * sizeof(ent[0]));

			if (ret < 0) {
				cr_error("restoring pid %d: reading '%s': %s", pid, path,
					 strerror(-ret));
				return ret;
			}
			for (uint64_t k = 0; k < n; k++)
				if (ent[k] & (3ULL << 62)) {
					cr_error("restoring pid %d: lazy page %#" PRIx64
						 " was populated before userfaultfd covered it",
						 pid, (uint64_t)(va + k * PG));
					return -EEXIST;
				}
		}
	}
	return 0;
}

static int lz_plan_segments(struct lz_server *srv, struct lz_target *root, const struct cr_task *t,
			    const uint8_t *lazy_runs)
{
	uint64_t page = 0;
	size_t words = (t->pages_total + 63) / 64;

	srv->nr_pages = t->pages_total;
	root->pending = calloc(MAX(words, 1), sizeof(uint64_t));
	root->segs = calloc(MAX(t->nr_runs, 1), sizeof(*root->segs));
	if (!root->pending || !root->segs)
		return -ENOMEM;
	for (uint64_t r = 0; r < t->nr_runs; page += t->runs[r].nr_pages, r++) {
		if (!lazy_runs[r])
			continue;
		root->segs[root->nr_segs++] = (struct lz_seg){t->runs[r].vaddr, t->runs[r].nr_pages,
							      page, t->runs[r].nr_pages};
		for (uint64_t p = page; p < page + t->runs[r].nr_pages; p++)
			root->pending[p / 64] |= 1ULL << (p % 64);
		root->nr_pending += t->runs[r].nr_pages;
	}
	root->cap_segs = t->nr_runs;
	return 0;
}

int restore_lazy_start(const struct lazy_target *lt, const struct cr_task *t,
		       const uint8_t *lazy_runs, const char *pages_path, struct lazy_server *ret)
{
	struct lz_server srv = {.path = pages_path, .fd = -1, .ctl = -1, .efd = -1};
	struct lz_target root = {.uffd = -1, .pidfd = -1, .pid = lt->pid};
	int sv[2] = {-1, -1}, r;
	struct statfs sfs;
	pid_t spid;

	r = lz_plan_segments(&srv, &root, t, lazy_runs);
	if (r < 0)
		goto out;
	if (!root.nr_pending) {
		*ret = (struct lazy_server){.pidfd = -1, .ctl = -1};
		goto out;
	}
	root.pidfd = pidfd_open(lt->pid, 0);
	if (root.pidfd < 0) {
		r = -errno;
		cr_error("restoring pid %d: pidfd_open: %s", lt->pid, strerror(errno));
		goto out;
	}
	r = lz_make_uffd(lt, root.pidfd, &root.uffd);
	if (r < 0)
		goto out;
	r = lz_register(root.uffd, t, lazy_runs, lt->pid);
	if (r == 0)
		r = lz_check_unpopulated(t, lazy_runs, lt->pid);
	if (r < 0)
		goto out;
	srv.fd = open(pages_path, O_RDONLY | O_CLOEXEC);
	if (srv.fd >= 0 && fstatfs(srv.fd, &sfs) == 0 && sfs.f_type == LZ_FUSE_MAGIC) {
		/* Direct reads go out as parallel requests: every daemon thread decodes. */
		closep(&srv.fd);
		srv.fd = open(pages_path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	}
	if (srv.fd < 0) {
		r = -errno;
		cr_error("image file '%s': %s", pages_path, strerror(errno));
		goto out;
	}
	r = posix_memalign((void **)&srv.buf, PG, LZ_WINDOW);
	if (r) {
		r = -r;
		goto out;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto out;
	}
	srv.ctl = sv[1];
	fflush(NULL);
	spid = fork();
	if (spid < 0) {
		r = -errno;
		cr_error("restoring pid %d: cannot start the page server: %s", lt->pid,
			 strerror(errno));
		goto out;
	}
	if (spid == 0)
		_exit(lz_server_main(&srv, &root));
	int spidfd = pidfd_open(spid, 0);
	if (spidfd < 0) {
		r = -errno;
		kill(spid, SIGKILL);
		waitpid(spid, NULL, 0);
		goto out;
	}
	*ret = (struct lazy_server){
		.pid = spid, .pidfd = spidfd, .ctl = TAKE_FD(sv[0]), .lazy = true};
	r = 0;
out:
	closep(&sv[0]);
	closep(&sv[1]);
	closep(&srv.fd);
	free(srv.buf);
	lz_target_free(&root);
	return r;
}

int restore_lazy_commit(struct lazy_server *s)
{
	int status;

	if (!s->pid || s->ctl < 0)
		return 0;
	ssize_t n = send(s->ctl, "C", 1, MSG_NOSIGNAL);
	closep(&s->ctl);
	s->ctl = -1;
	if (n == 1)
		return 0;
	/* It is gone already: fine if it had finished its work. */
	if (waitpid(s->pid, &status, 0) == s->pid) {
		s->pid = 0;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			return 0;
	}
	cr_error("the page server of the restore failed (see its message above)");
	return -EIO;
}

void restore_lazy_abort(struct lazy_server *s)
{
	if (s->pid) {
		pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
		s->pid = 0;
	}
	restore_lazy_release(s);
}

void restore_lazy_release(struct lazy_server *s)
{
	if (s->pid && waitpid(s->pid, NULL, WNOHANG) == s->pid)
		s->pid = 0;
	if (s->ctl >= 0)
		closep(&s->ctl);
	s->ctl = -1;
	if (s->pidfd >= 0)
		closep(&s->pidfd);
	s->pidfd = -1;
}
