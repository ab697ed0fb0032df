// SPDX-License-Identifier: MIT
/*
 * dump_creds.c - reads a frozen task's capability sets (/proc/PID/status) and the prctl
 * state that only the task itself can query (securebits, dumpable, parent-death signal, child
 * subreaper, THP disable), by system calls injected into it. Runs after dump.c has blocked
 * every signal of the target and mapped a scratch page there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "cr/creds_priv.h"
#include "cr/error.h"
#include "cr/ptrace_priv.h"

/* The hex mask after "Key:" in a /proc/PID/status text. */
static int status_hex(const char *status, const char *key, uint64_t *ret)
{
	size_t kl = strlen(key);

	for (const char *p = status; *p;) {
		if (!strncmp(p, key, kl) && p[kl] == ':') {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(p + kl + 1, &end, 16);
			if (errno || end == p + kl + 1)
				return -EIO;
			*ret = v;
			return 0;
		}
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	return -ENOENT;
}

static int read_caps(struct dump_ctx *c)
{
	static const char *keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	struct cr_task *t = c->t;
	uint64_t *dst[] = {&t->cap_inh, &t->cap_prm, &t->cap_eff, &t->cap_bnd, &t->cap_amb};
	char path[64], buf[8192];

	snprintf(path, sizeof(path), "/proc/%d/status", c->pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cr_error("pid %d: cannot open '%s': %s", c->pid, path, strerror(errno));
		return -errno;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		cr_error("pid %d: cannot read '%s': %s", c->pid, path, strerror(errno));
		return -errno;
	}
	buf[n] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		int ret = status_hex(buf, keys[i], dst[i]);
		if (ret < 0) {
			cr_error("pid %d: no readable '%s' line in '%s'", c->pid, keys[i], path);
			return ret;
		}
	}
	return 0;
}

/* prctl(option, ...) in the target; a getter that fails is a dump that cannot be trusted. */
static int target_prctl(struct dump_ctx *c, const char *what, int64_t *ret_val, uint64_t option,
			uint64_t arg2)
{
	int64_t rv;
	int ret = inject_call(c->pid, c->syscall_ip, &c->regs, &rv, SYS_prctl, option, arg2, 0, 0,
			      0, 0);
	if (ret < 0)
		return ret;
	if (rv < 0 && rv > -4096) {
		cr_error("pid %d: injected prctl(%s) failed: %s", c->pid, what, strerror((int)-rv));
		return (int)rv;
	}
	*ret_val = rv;
	return 0;
}

/* prctl(option, &int) in the target, reading the int back from the scratch page. */
static int target_prctl_int(struct dump_ctx *c, const char *what, uint32_t *ret_val,
			    uint64_t option, uint64_t scratch)
{
	int64_t rv;
	int32_t v = 0;
	int ret = mem_write(c->memfd, scratch, &v, sizeof(v));
	if (ret == 0)
		ret = target_prctl(c, what, &rv, option, scratch);
	if (ret == 0)
		ret = mem_read(c->memfd, scratch, &v, sizeof(v));
	if (ret < 0)
		return ret;
	*ret_val = (uint32_t)v;
	return 0;
}

int dump_creds_collect(struct dump_ctx *c, uint64_t scratch)
{
	struct cr_task *t = c->t;
	int64_t rv;
	int ret;

	ret = read_caps(c);
	if (ret < 0)
		return ret;
	ret = target_prctl(c, "PR_GET_SECUREBITS", &rv, PR_GET_SECUREBITS, 0);
	if (ret < 0)
		return ret;
	t->securebits = (uint32_t)rv;
	ret = target_prctl(c, "PR_GET_DUMPABLE", &rv, PR_GET_DUMPABLE, 0);
	if (ret < 0)
		return ret;
	t->dumpable = (uint32_t)rv;
	ret = target_prctl(c, "PR_GET_THP_DISABLE", &rv, PR_GET_THP_DISABLE, 0);
	if (ret < 0)
		return ret;
	t->thp_disable = (uint32_t)rv;
	ret = target_prctl_int(c, "PR_GET_PDEATHSIG", &t->pdeathsig, PR_GET_PDEATHSIG, scratch);
	if (ret < 0)
		return ret;
	ret = target_prctl_int(c, "PR_GET_CHILD_SUBREAPER", &t->child_subreaper,
			       PR_GET_CHILD_SUBREAPER, scratch);
	if (ret < 0)
		return ret;
	/* Values the image format cannot express would make the dump fail validation later,
	 * after the freeze; refuse them here with the reason instead. */
	if ((t->securebits & ~CR_SECUREBITS_KNOWN) || t->dumpable > 2 || t->thp_disable > 3 ||
	    t->pdeathsig > CR_NSIG) {
		cr_error("pid %d: unexpected prctl state (securebits %#x, dumpable %u, THP disable "
			 "%u, parent-death signal %u); not supported",
			 c->pid, t->securebits, t->dumpable, t->thp_disable, t->pdeathsig);
		return -EOPNOTSUPP;
	}
	t->has_caps = 1;
	log_debug("pid %d: caps inh %#llx prm %#llx eff %#llx bnd %#llx amb %#llx securebits %#x",
		  c->pid, (unsigned long long)t->cap_inh, (unsigned long long)t->cap_prm,
		  (unsigned long long)t->cap_eff, (unsigned long long)t->cap_bnd,
		  (unsigned long long)t->cap_amb, t->securebits);
	return 0;
}
