/* SPDX-License-Identifier: MIT */
/*
 * log.h - the one logger of ckptfs.
 *
 * Owns: the process-wide log level and the log sink (stderr, or syslog-free plain lines).
 * Libraries (index/, cr/, fs/) log at LOG_DEBUG only; the caller that decides what an error
 * means logs it once, at LOG_ERR, naming the object in quotes and the errno text.
 * Thread-safety: log_msg() is safe from any thread (one fprintf per message).
 */
#ifndef CKPTFS_COMMON_LOG_H
#define CKPTFS_COMMON_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_ERR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Prefix printed before every message ("ckptfs" by default). */
void log_set_prefix(const char *prefix);

__attribute__((format(printf, 2, 3))) void log_msg(enum log_level level, const char *fmt, ...);

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
