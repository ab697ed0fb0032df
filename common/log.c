// SPDX-License-Identifier: MIT
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum log_level cur_level = LOG_WARN;
static const char *cur_prefix = "ckptfs";

void log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_set_prefix(const char *prefix)
{
	cur_prefix = prefix;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char buf[2048];
	va_list ap;
	int n;

	if (level > cur_level)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* One write per message so lines from several threads do not interleave. */
	fprintf(stderr, "%s: %s: %s\n", cur_prefix, names[level], buf);
}
