/* SPDX-License-Identifier: MIT */
/*
 * wl_common.h - the protocol every C/R test workload follows (zdtm style): set up some state,
 * print "READY", keep running until SIGTERM, then verify every piece of that state and print
 * "PASS" or one "FAIL: <what>" line per broken piece, exiting 0 or 1.
 *
 * Output goes to fd 1 with plain write(2) (no stdio buffers that a checkpoint could catch
 * half-flushed); the harness opens that file O_APPEND. Single-threaded, like the workloads.
 * These programs run inside restored processes, so they are built without sanitizers.
 */
#ifndef CKPTFS_TESTS_CR_WL_COMMON_H
#define CKPTFS_TESTS_CR_WL_COMMON_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Set by the handler wl_catch_sigterm() installs. */
extern volatile sig_atomic_t wl_stop;

/* One formatted line on fd 1 (a newline is appended). */
void wl_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Record a failed check: prints "FAIL: <text>". */
void wl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Exit code for main: prints "PASS" when nothing failed, else 1. */
int wl_finish(void);
/* Tell the harness the state is set up. */
void wl_ready(void);
/* Install a SIGTERM handler that sets wl_stop, with the given extra sa_flags. */
int wl_catch_sigterm(int sa_flags);
/* Block until SIGTERM has arrived; the signal mask is unchanged afterwards. */
void wl_wait_sigterm(void);
/* main() of a workload that sets its state up once and checks it before READY (a FAIL there
 * means the checks themselves are wrong) and again after SIGTERM: usage "NAME SCRATCH_DIR". */
int wl_main_checked(int argc, const char *name, int (*setup)(void), void (*verify)(void));

/* The "done" mark for workloads with a peer process (one that shares state with them and
 * must outlive the dump): SCRATCH/done, removed by wl_done_init(SCRATCH) at the start and
 * made by wl_done_mark() once the workload has checked its state; the peer polls
 * wl_done_seen() and then ends. */
void wl_done_init(const char *scratch);
void wl_done_mark(void);
int wl_done_seen(void);

/* Deterministic pseudo-random contents: word idx of the stream named seed. */
uint64_t wl_word(uint64_t seed, uint64_t idx);
void wl_fill(void *buf, size_t len, uint64_t seed);
/* Offset of the first byte that differs from wl_fill(seed), or -1 when all match. */
long wl_find_mismatch(const void *buf, size_t len, uint64_t seed);
/* Whether len bytes at buf are all zero. */
int wl_all_zero(const void *buf, size_t len);

#endif
