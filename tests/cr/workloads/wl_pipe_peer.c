// SPDX-License-Identifier: MIT
/*
 * wl_pipe_peer - pipes and a FIFO at fds >= 3 whose other end is, or is not, held by another
 * process. The other process is a daemonized grandchild (not a child of the workload, which
 * must have none to be dumped); it leaves when SCRATCH/done appears, when the workload's pid
 * has been gone for 3 s, or after 120 s.
 *
 *   closed        fd 5: read end holding 3000 bytes whose write end was closed everywhere
 *                 (also in the peer, which wrote them and exited); fd 6: write end whose read
 *                 end is closed. Supported: after restore fd 5 gives the bytes then end of
 *                 file, fd 6 gives EPIPE.
 *   outside-read  fd 5: read end; the peer holds the write end and wrote "hello".
 *   outside-write fd 5: write end; the peer holds the read end and reads.
 *   outside-both  fds 5/6: both ends of one pipe; the peer holds another write end.
 *                 The three outside-* modes must be refused by dump; afterwards the pipe
 *                 still talks to its peer.
 *   fifo          fd 5: the read end of SCRATCH/fifo; the peer keeps its write end open and
 *                 wrote "hello" (still buffered at the dump). Restore reopens the FIFO by
 *                 path, so it is the same FIFO as the peer's: the bytes must be there exactly
 *                 once and the peer still connected (no end of file).
 * Usage: wl_pipe_peer SCRATCH_DIR MODE
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl_common.h"

#define FD_A	   5
#define FD_B	   6
#define CLOSED_LEN 3000
#define HELLO	   "hello"

static const char *mode, *dir;
static char fifo_path[PATH_MAX + 8];

static int move_fd(int fd, int to)
{
	if (fd == to)
		return 0;
	if (dup2(fd, to) < 0)
		return -1;
	close(fd);
	return 0;
}

/* The peer: runs in a grandchild holding keep (if >= 0); reader drains keep. */
static void peer_main(pid_t target, int keep, bool reader, const char *msg)
{
	for (int fd = 0; fd < 64; fd++)
		if (fd != keep)
			close(fd);
	if (msg && write(keep, msg, strlen(msg)) < 0)
		_exit(1);
	int gone = 0;
	for (int i = 0; i < 1200; i++) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		if (wl_done_seen())
			break;
		gone = kill(target, 0) < 0 && errno == ESRCH ? gone + 1 : 0;
		if (gone >= 30)
			break;
		if (reader) {
			char buf[256];
			while (read(keep, buf, sizeof(buf)) > 0)
				;
		}
		nanosleep(&ts, NULL);
	}
	_exit(0);
}

/* Starts a grandchild running peer_main and reaps the child in between. */
static int spawn_peer(int keep, bool reader, const char *msg)
{
	pid_t target = getpid(), pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		setsid();
		if (fork() == 0)
			peer_main(target, keep, reader, msg);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

static int setup(void)
{
	int p[2], q[2];
	char buf[CLOSED_LEN];

	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "closed")) {
		/* The peer writes the bytes and exits: the write end is closed everywhere. */
		if (pipe(p) < 0 || pipe(q) < 0)
			return -1;
		wl_fill(buf, sizeof(buf), 5);
		if (write(p[1], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return -1;
		close(p[1]);
		close(q[0]);
		if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
			return -1;
		return move_fd(p[0], FD_A) < 0 || move_fd(q[1], FD_B) < 0 ? -1 : 0;
	}
	if (!strcmp(mode, "fifo")) {
		unlink(fifo_path);
		if (mkfifo(fifo_path, 0600) < 0)
			return -1;
		int rd = open(fifo_path, O_RDONLY | O_NONBLOCK);
		int wr = open(fifo_path, O_WRONLY | O_NONBLOCK);
		if (rd < 0 || wr < 0 || spawn_peer(wr, false, HELLO) < 0)
			return -1;
		close(wr);
		return move_fd(rd, FD_A);
	}
	if (pipe(p) < 0)
		return -1;
	if (!strcmp(mode, "outside-read")) {
		if (spawn_peer(p[1], false, HELLO) < 0)
			return -1;
		close(p[1]);
		return move_fd(p[0], FD_A);
	}
	if (!strcmp(mode, "outside-write")) {
		if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 || spawn_peer(p[0], true, NULL) < 0)
			return -1;
		close(p[0]);
		return move_fd(p[1], FD_A);
	}
	if (!strcmp(mode, "outside-both")) {
		if (spawn_peer(p[1], false, NULL) < 0)
			return -1;
		return move_fd(p[0], FD_A) < 0 || move_fd(p[1], FD_B) < 0 ? -1 : 0;
	}
	errno = EINVAL;
	return -1;
}

/* Reads what fd holds now (non-blocking); returns the count, -2 at end of file. */
static ssize_t drain(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n > 0) {
			got += (size_t)n;
			if (got == cap)
				return (ssize_t)got;
			continue;
		}
		if (n == 0)
			return got ? (ssize_t)got : -2;
		return errno == EAGAIN ? (ssize_t)got : -1;
	}
}

static bool verified_once;

static void verify(void)
{
	char buf[CLOSED_LEN + 16];

	if (!strcmp(mode, "closed")) {
		if (verified_once)
			return; /* the bytes were consumed by the first check */
		ssize_t n = drain(FD_A, buf, sizeof(buf));
		long k;
		if (n != CLOSED_LEN || (k = wl_find_mismatch(buf, CLOSED_LEN, 5)) >= 0)
			wl_fail("fd %d gave %zd bytes, expected the %d buffered ones", FD_A, n,
				CLOSED_LEN);
		if (read(FD_A, buf, 1) != 0)
			wl_fail("fd %d: no end of file after the buffered bytes", FD_A);
		if (write(FD_B, "x", 1) != -1 || errno != EPIPE)
			wl_fail("fd %d: a write to a pipe without reader did not give EPIPE", FD_B);
		return;
	}
	if (!strcmp(mode, "fifo") || !strcmp(mode, "outside-read")) {
		if (fcntl(FD_A, F_SETFL, O_NONBLOCK) < 0)
			wl_fail("fcntl: %s", strerror(errno));
		ssize_t n = drain(FD_A, buf, sizeof(buf));
		if (!verified_once && (n != (ssize_t)strlen(HELLO) || memcmp(buf, HELLO, 5)))
			wl_fail("fd %d gave %zd bytes ('%.*s'), expected '%s' once", FD_A, n,
				n > 0 ? (int)n : 0, buf, HELLO);
		if (verified_once && n != 0)
			wl_fail("fd %d gave %zd more bytes, expected none", FD_A, n);
		struct pollfd pfd = {.fd = FD_A, .events = POLLIN};
		if (poll(&pfd, 1, 0) < 0 || (pfd.revents & POLLHUP))
			wl_fail("fd %d no longer has its writer (the peer)", FD_A);
		verified_once = true;
		return;
	}
	if (!strcmp(mode, "outside-write")) {
		if (write(FD_A, "ping", 4) != 4)
			wl_fail("fd %d: write to the peer: %s", FD_A, strerror(errno));
		return;
	}
	/* outside-both */
	if (write(FD_B, "ab", 2) != 2 || read(FD_A, buf, 2) != 2 || memcmp(buf, "ab", 2))
		wl_fail("fds %d/%d no longer connect", FD_B, FD_A);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		wl_fail("usage: wl_pipe_peer SCRATCH_DIR MODE");
		return 2;
	}
	dir = argv[1];
	mode = argv[2];
	snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", dir);
	wl_done_init(dir);
	if (wl_catch_sigterm(0) < 0)
		return 1;
	if (setup() < 0) {
		wl_fail("setting up mode '%s': %s", mode, strerror(errno));
		return 1;
	}
	/* Let the peer write its bytes before the state is checked. */
	if (strcmp(mode, "closed") && strcmp(mode, "outside-write") &&
	    strcmp(mode, "outside-both")) {
		struct pollfd pfd = {.fd = FD_A, .events = POLLIN};
		poll(&pfd, 1, 5000);
	}
	wl_ready();
	wl_wait_sigterm();
	verify();
	wl_done_mark();
	return wl_finish();
}
