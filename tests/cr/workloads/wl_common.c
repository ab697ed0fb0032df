// SPDX-License-Identifier: MIT
/* wl_common.c - READY/PASS/FAIL protocol and pattern helpers shared by the workloads. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wl_common.h"

volatile sig_atomic_t wl_stop;
static unsigned int failures;

static void say_va(const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s", prefix);

	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* A short write to the log is not worth a retry loop: the harness reads whole lines. */
	if (write(STDOUT_FILENO, line, (size_t)n) < 0)
		return;
}

void wl_say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say_va("", fmt, ap);
	va_end(ap);
}

void wl_fail(const char *fmt, ...)
{
	va_list ap;

	failures++;
	va_start(ap, fmt);
	say_va("FAIL: ", fmt, ap);
	va_end(ap);
}

int wl_finish(void)
{
	if (failures)
		return 1;
	wl_say("PASS");
	return 0;
}

void wl_ready(void)
{
	wl_say("READY");
}

static void on_sigterm(int sig)
{
	wl_stop = 1;
}

int wl_catch_sigterm(int sa_flags)
{
	struct sigaction sa = {.sa_handler = on_sigterm, .sa_flags = sa_flags};

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0)
		return -errno;
	return 0;
}

void wl_wait_sigterm(void)
{
	sigset_t block, old, wait_mask;

	/* Block SIGTERM around the test of wl_stop so it cannot slip in before the sleep. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	wait_mask = old;
	sigdelset(&wait_mask, SIGTERM);
	while (!wl_stop)
		sigsuspend(&wait_mask);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int wl_main_checked(int argc, const char *name, int (*setup)(void), void (*verify)(void))
{
	if (argc != 2) {
		wl_fail("usage: %s SCRATCH_DIR", name);
		return 2;
	}
	if (wl_catch_sigterm(0) < 0 || setup() < 0)
		return 1;
	verify();
	wl_ready();
	wl_wait_sigterm();
	verify();
	return wl_finish();
}

uint64_t wl_word(uint64_t seed, uint64_t idx)
{
	/* splitmix64 of (seed, idx): cheap, and no two streams or offsets look alike. */
	uint64_t z =
		seed * 0x9e3779b97f4a7c15ULL + idx * 0xbf58476d1ce4e5b9ULL + 0x94d049bb133111ebULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void wl_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t w = wl_word(seed, i / 8);
		memcpy(p + i, &w, 8);
	}
	if (i < len) {
		uint64_t w = wl_word(seed, i / 8);
		memcpy(p + i, &w, len - i);
	}
}

long wl_find_mismatch(const void *buf, size_t len, uint64_t seed)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = wl_word(seed, i / 8);
		size_t n = len - i < 8 ? len - i : 8;

		if (memcmp(p + i, &w, n)) {
			for (size_t j = 0; j < n; j++)
				if (p[i + j] != ((unsigned char *)&w)[j])
					return (long)(i + j);
		}
	}
	return -1;
}

int wl_all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

static char done_path[PATH_MAX];

void wl_done_init(const char *scratch)
{
	snprintf(done_path, sizeof(done_path), "%s/done", scratch);
	unlink(done_path);
}

void wl_done_mark(void)
{
	int fd = open(done_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd >= 0)
		close(fd);
}

int wl_done_seen(void)
{
	return access(done_path, F_OK) == 0;
}
