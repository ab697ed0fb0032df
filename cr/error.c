// SPDX-License-Identifier: MIT
/* error.c - last-error message of cr/ (see error.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "common/log.h"
#include "cr/error.h"

static _Thread_local char errbuf[1024];

void cr_error(const char *fmt, ...)
{
	int saved = errno; /* callers often return -errno right after */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	log_debug("%s", errbuf);
	errno = saved;
}

const char *cr_error_last(void)
{
	return errbuf;
}

void cr_error_clear(void)
{
	errbuf[0] = 0;
}
