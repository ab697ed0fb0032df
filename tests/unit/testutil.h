/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - tiny helpers for the unit tests: CHECK macros that report file:line and the
 * store's last error, a temp directory that is removed at exit, and a seeded PRNG.
 * Thread-safety: single-threaded tests only.
 */
#ifndef CKPTFS_TESTS_UNIT_TESTUTIL_H
#define CKPTFS_TESTS_UNIT_TESTUTIL_H

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/store.h"

static int test_failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s (last store error: %s)\n",        \
				__FILE__, __LINE__, #cond, store_last_error());                    \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

/* Like CHECK but stops the test: later steps depend on this one. */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: REQUIRE failed: %s (last store error: %s)\n",      \
				__FILE__, __LINE__, #cond, store_last_error());                    \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld; %s)\n",      \
				__FILE__, __LINE__, #a, #b, _a, _b, store_last_error());           \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

static char test_dir[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void test_dir_cleanup(void)
{
	if (test_dir[0] && !getenv("KEEP_TEST_DIR"))
		nftw(test_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates a fresh temp dir and returns it; removed at exit. */
static inline const char *test_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	snprintf(test_dir, sizeof(test_dir), "%s/ckptfs-%s-XXXXXX", base, tag);
	if (!mkdtemp(test_dir)) {
		perror("mkdtemp");
		exit(1);
	}
	atexit(test_dir_cleanup);
	return test_dir;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static inline uint64_t rng_next(void)
{
	/* xorshift64*: reproducible from the seed printed by each test. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static inline void rng_seed(uint64_t seed)
{
	rng_state = seed ? seed : 1;
}

static inline int test_result(const char *name)
{
	if (test_failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
		return 1;
	}
	printf("%s: PASS\n", name);
	return 0;
}

#endif
