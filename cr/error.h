/* SPDX-License-Identifier: MIT */
/*
 * error.h - the message that goes with a cr/ error code.
 *
 * cr/ functions return 0 or -errno; where the errno alone cannot say which object failed and why
 * (a pid, an fd number, an image file and offset), they also record one sentence here. The tool
 * that decides what to print shows it. Also logged at debug level when recorded; errno is
 * preserved, so `cr_error(...); return -errno;` is safe.
 * Thread-safety: one message per thread (thread-local).
 */
#ifndef CKPTFS_CR_ERROR_H
#define CKPTFS_CR_ERROR_H

__attribute__((format(printf, 1, 2))) void cr_error(const char *fmt, ...);
/* The last recorded message, or "" if none. */
const char *cr_error_last(void);
void cr_error_clear(void);

#endif
