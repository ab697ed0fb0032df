// SPDX-License-Identifier: MIT
/*
 * restore_limits.c - the pre-check that every resource limit of an image can be restored
 * exactly, run before any process is created.
 *
 * The clone3 child starts with the restorer's limits and restore.c sets the image's with
 * prlimit(). Raising a hard limit above the current one needs CAP_SYS_RESOURCE (in the
 * restorer's user namespace), and RLIMIT_NOFILE can never go above fs.nr_open. Without this
 * check such a limit would be kept lower: a process that once could open 1M files (or dump
 * core) silently could not any more.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "common/util.h"
#include "cr/error.h"
#include "cr/restore_priv.h"

static const char *const limit_names[CR_NRLIMITS] = {
	"RLIMIT_CPU",	   "RLIMIT_FSIZE", "RLIMIT_DATA",   "RLIMIT_STACK",
	"RLIMIT_CORE",	   "RLIMIT_RSS",   "RLIMIT_NPROC",  "RLIMIT_NOFILE",
	"RLIMIT_MEMLOCK",  "RLIMIT_AS",	   "RLIMIT_LOCKS",  "RLIMIT_SIGPENDING",
	"RLIMIT_MSGQUEUE", "RLIMIT_NICE",  "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
};

static bool have_sys_resource(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};

	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return data[CAP_SYS_RESOURCE / 32].effective & (1u << (CAP_SYS_RESOURCE % 32));
}

static void fmt_limit(uint64_t v, char buf[32])
{
	if (v == (uint64_t)RLIM_INFINITY)
		snprintf(buf, 32, "unlimited");
	else
		snprintf(buf, 32, "%" PRIu64, v);
}

/* fs.nr_open, or 0 if it cannot be read. */
static uint64_t nr_open(void)
{
	char buf[32] = "";
	_cleanup_close_ int fd = open("/proc/sys/fs/nr_open", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

int restore_limits_check(const struct cr_task *t)
{
	bool cap = have_sys_resource();

	for (int i = 0; i < CR_NRLIMITS; i++) {
		uint64_t cur = t->rlimits[i][0], max = t->rlimits[i][1];
		char a[32], b[32];
		struct rlimit mine;

		if (cur > max) {
			fmt_limit(cur, a);
			fmt_limit(max, b);
			cr_error(
				"pid %u: %s in the image has soft limit %s above its hard limit %s",
				t->pid, limit_names[i], a, b);
			return -EBADMSG;
		}
		if (getrlimit(i, &mine) < 0)
			return -errno;
		if (max > (uint64_t)mine.rlim_max && !cap) {
			fmt_limit(max, a);
			fmt_limit(mine.rlim_max, b);
			cr_error(
				"pid %u: %s hard limit is %s in the image but %s for the restorer, "
				"which cannot raise it (no CAP_SYS_RESOURCE); restore refused rather "
				"than run with a lower limit",
				t->pid, limit_names[i], a, b);
			return -EPERM;
		}
		uint64_t nmax = i == RLIMIT_NOFILE ? nr_open() : 0;
		if (nmax && max > nmax) {
			fmt_limit(max, a);
			cr_error("pid %u: RLIMIT_NOFILE hard limit is %s in the image, above this "
				 "system's fs.nr_open %" PRIu64,
				 t->pid, a, nmax);
			return -EPERM;
		}
	}
	return 0;
}
