// SPDX-License-Identifier: MIT
/*
 * wl_sleep - a process that spends its life blocked in one system call, so that the dump
 * catches it inside that call. After restore the call must carry on as if nothing happened:
 * no EINTR the program did not cause, no early wake-up, no lost data. Modes:
 *   nanosleep   relative sleeps of 300 ms (ERESTART_RESTARTBLOCK in the kernel)
 *   clock_abs   clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) to deadlines 300 ms apart
 *   read        read() on an empty pipe; the SIGTERM handler (SA_RESTART) writes its byte
 *   poll        poll() without a timeout on that pipe
 *   pause       pause()
 *   sigsuspend  sigsuspend() with SIGTERM blocked outside it: the mask must come back
 * Every wake-up is checked: a sleep may end early only because SIGTERM arrived.
 * Usage: wl_sleep SCRATCH_DIR MODE
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wl_common.h"

#define NAP_NS 300000000LL

static int pipe_fds[2] = {-1, -1};

static void on_term(int sig)
{
	wl_stop = 1;
	if (pipe_fds[1] >= 0 && write(pipe_fds[1], "T", 1) != 1)
		wl_stop = 2;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void nap_relative(void)
{
	while (!wl_stop) {
		struct timespec req = {0, NAP_NS};
		long long t0 = now_ns();
		int ret = nanosleep(&req, NULL);

		if (ret < 0 && errno == EINTR && wl_stop)
			return;
		if (ret < 0) {
			wl_fail("nanosleep returned %s without SIGTERM", strerror(errno));
			return;
		}
		if (now_ns() - t0 < NAP_NS) {
			wl_fail("nanosleep of %lld ns returned after %lld ns", NAP_NS,
				now_ns() - t0);
			return;
		}
	}
}

static void nap_absolute(void)
{
	long long deadline = now_ns();

	while (!wl_stop) {
		struct timespec ts;
		int ret;

		deadline += NAP_NS;
		ts.tv_sec = deadline / 1000000000LL;
		ts.tv_nsec = deadline % 1000000000LL;
		ret = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		if (ret == EINTR && wl_stop)
			return;
		if (ret) {
			wl_fail("clock_nanosleep(TIMER_ABSTIME) returned %s without SIGTERM",
				strerror(ret));
			return;
		}
		if (now_ns() < deadline) {
			wl_fail("clock_nanosleep(TIMER_ABSTIME) woke %lld ns before its deadline",
				deadline - now_ns());
			return;
		}
	}
}

static void block_read(void)
{
	char c;
	ssize_t n = read(pipe_fds[0], &c, 1);

	/* SA_RESTART: the only way out is the handler's byte. */
	if (n != 1)
		wl_fail("read on the empty pipe returned %zd (%s)", n,
			n < 0 ? strerror(errno) : "");
	else if (c != 'T' || !wl_stop)
		wl_fail("read on the empty pipe returned '%c' before SIGTERM", c);
}

static void block_poll(void)
{
	struct pollfd pfd = {.fd = pipe_fds[0], .events = POLLIN};
	int ret = poll(&pfd, 1, -1);

	if (ret < 0 && errno == EINTR && wl_stop)
		return;
	if (ret != 1 || !(pfd.revents & POLLIN) || !wl_stop)
		wl_fail("poll without timeout returned %d revents %#x (%s) before SIGTERM", ret,
			pfd.revents, ret < 0 ? strerror(errno) : "");
}

static void block_pause(void)
{
	int ret = pause();

	if (ret != -1 || errno != EINTR || !wl_stop)
		wl_fail("pause returned %d (%s) without SIGTERM", ret, strerror(errno));
}

static void block_sigsuspend(void)
{
	sigset_t block, wait_mask, after;
	int ret;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&wait_mask);
	sigaddset(&wait_mask, SIGUSR2);
	ret = sigsuspend(&wait_mask);
	if (ret != -1 || errno != EINTR || !wl_stop)
		wl_fail("sigsuspend returned %d (%s) without SIGTERM", ret, strerror(errno));
	/* The mask in force before sigsuspend is back: SIGTERM and SIGUSR2 blocked again. */
	sigprocmask(SIG_BLOCK, NULL, &after);
	if (!sigismember(&after, SIGTERM) || !sigismember(&after, SIGUSR2))
		wl_fail("after sigsuspend the signal mask was not restored (SIGTERM %d, SIGUSR2 %d)",
			sigismember(&after, SIGTERM), sigismember(&after, SIGUSR2));
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_term, .sa_flags = SA_RESTART};
	const char *mode = argc == 3 ? argv[2] : "";

	sigemptyset(&sa.sa_mask);
	if (pipe2(pipe_fds, 0) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
		wl_fail("setup: %s", strerror(errno));
		return wl_finish();
	}
	if (!strcmp(mode, "nanosleep") || !strcmp(mode, "clock_abs") || !strcmp(mode, "read") ||
	    !strcmp(mode, "poll") || !strcmp(mode, "pause") || !strcmp(mode, "sigsuspend")) {
		wl_ready();
	} else {
		wl_fail("usage: wl_sleep SCRATCH_DIR nanosleep|clock_abs|read|poll|pause|sigsuspend");
		return wl_finish();
	}
	if (!strcmp(mode, "nanosleep"))
		nap_relative();
	else if (!strcmp(mode, "clock_abs"))
		nap_absolute();
	else if (!strcmp(mode, "read"))
		block_read();
	else if (!strcmp(mode, "poll"))
		block_poll();
	else if (!strcmp(mode, "pause"))
		block_pause();
	else
		block_sigsuspend();
	if (wl_stop == 2)
		wl_fail("the SIGTERM handler could not write to its pipe");
	return wl_finish();
}
