// SPDX-License-Identifier: MIT
/*
 * restore_creds.c - gives a restored task its privileges back: capability sets, securebits,
 * uids/gids/groups, dumpable, parent-death signal, child subreaper, THP disable and
 * no_new_privs. Runs last in the injected rebuild, since the steps before it (mappings,
 * PR_SET_MM_MAP, chroot, rlimits) need the restorer's full privileges.
 *
 * Ordering, and why (the child starts as a copy of the restorer, normally root):
 *  1. inheritable set, while the bounding set is still whole: capset() refuses an inheritable
 *     capability outside the bounding set, but a task may keep one it dropped from there later;
 *  2. bounding set drops (PR_CAPBSET_DROP needs CAP_SETPCAP, still effective here);
 *  3. ambient set (a raise needs the capability permitted and inheritable, and must come before
 *     the dumped SECBIT_NO_CAP_AMBIENT_RAISE is set);
 *  4. SECBIT_NO_SETUID_FIXUP for the uid change only: otherwise leaving uid 0 clears the
 *     permitted, effective and ambient sets, whatever the dumped KEEP_CAPS says;
 *  5. setgroups, setresgid, setresuid, setfsgid, setfsuid;
 *  6. the dumped securebits (needs CAP_SETPCAP, still effective thanks to step 4);
 *  7. permitted and effective (and inheritable again): from here the task has only its own
 *     capabilities;
 *  8. dumpable and the parent-death signal: a credential change in 5 reset both;
 *     child subreaper and THP disable; no_new_privs last of all.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/securebits.h>
#include <stddef.h>
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

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1) /* Linux 6.18 */
#endif

static const char *const cap_names[] = {
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

unsigned int cr_cap_named(void)
{
	return ARRAY_SIZE(cap_names);
}

const char *cr_cap_name(unsigned int cap, char *buf, size_t size)
{
	if (cap < ARRAY_SIZE(cap_names))
		return cap_names[cap];
	snprintf(buf, size, "capability %u", cap);
	return buf;
}

struct caps {
	uint64_t inh, prm, eff, bnd, amb;
	uint32_t securebits;
	uint32_t thp_disable;
};

static int cap_last(unsigned int *ret)
{
	char buf[16] = {0};
	_cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EIO;
	unsigned long v = strtoul(buf, NULL, 10);
	if (v > 63)
		return -ERANGE;
	*ret = (unsigned int)v;
	return 0;
}

/* The restorer's own state: the restored child starts as a copy of it. */
static int read_own_caps(struct caps *ret, unsigned int last)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	struct caps c = {0};

	if (syscall(SYS_capget, &hdr, d) < 0)
		return -errno;
	c.inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	c.prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	c.eff = d[0].effective | (uint64_t)d[1].effective << 32;
	for (unsigned int i = 0; i <= last; i++) {
		int r = prctl(PR_CAPBSET_READ, i, 0, 0, 0);
		if (r < 0)
			return -errno;
		if (r)
			c.bnd |= 1ULL << i;
		r = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, i, 0, 0);
		if (r < 0)
			return -errno;
		if (r)
			c.amb |= 1ULL << i;
	}
	int r = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (r < 0)
		return -errno;
	c.securebits = (uint32_t)r;
	r = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	if (r < 0)
		return -errno;
	c.thp_disable = (uint32_t)r;
	*ret = c;
	return 0;
}

/* Reports the lowest capability in missing; returns -EPERM. */
static int refuse_cap(uint32_t pid, uint64_t missing, const char *set, const char *why)
{
	char nb[32];
	unsigned int cap = (unsigned int)__builtin_ctzll(missing);

	cr_error("pid %u: %s is in the image's %s set, but %s; cannot restore it with the same "
		 "privileges",
		 pid, cr_cap_name(cap, nb, sizeof(nb)), set, why);
	return -EPERM;
}

static bool ids_same(const struct cr_task *t)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;

	if (getresuid(&r, &e, &s) < 0 || getresgid(&gr, &ge, &gs) < 0)
		return false;
	return t->uids[0] == r && t->uids[1] == e && t->uids[2] == s && t->uids[3] == e &&
	       t->gids[0] == gr && t->gids[1] == ge && t->gids[2] == gs && t->gids[3] == ge;
}

int restore_creds_check(const struct cr_task *t, bool detach)
{
	const uint64_t setpcap = 1ULL << CAP_SETPCAP;
	struct caps my;
	unsigned int last;
	int ret;

	if (!t->has_caps) {
		log_warn("the image of pid %u records no capabilities (written by an older "
			 "ckptfs): the restored process keeps the restorer's",
			 t->pid);
		return 0;
	}
	ret = cap_last(&last);
	if (ret == 0)
		ret = read_own_caps(&my, last);
	if (ret < 0) {
		cr_error("pid %u: cannot read the restorer's own capabilities: %s", t->pid,
			 strerror(-ret));
		return ret;
	}
	uint64_t known = last == 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
	uint64_t unknown = (t->cap_inh | t->cap_prm | t->cap_bnd) & ~known;
	if (unknown)
		return refuse_cap(t->pid, unknown, "inheritable, permitted or bounding",
				  "this kernel does not know that capability");
	if (t->cap_bnd & ~my.bnd)
		return refuse_cap(t->pid, t->cap_bnd & ~my.bnd, "bounding",
				  "the restorer's bounding set lacks it (a bounding set only "
				  "shrinks)");
	if (t->cap_prm & ~my.prm)
		return refuse_cap(t->pid, t->cap_prm & ~my.prm, "permitted",
				  "the restorer does not have it (run the restore with that "
				  "capability)");
	uint64_t inh_ok = my.inh | ((my.eff & setpcap) ? my.bnd : my.prm);
	if (t->cap_inh & ~inh_ok)
		return refuse_cap(t->pid, t->cap_inh & ~inh_ok, "inheritable",
				  "the restorer may not grant it");

	/* Bounding drops, securebits and keeping capabilities across the uid change all need
	 * CAP_SETPCAP in the child, which is a copy of the restorer. */
	bool need_setpcap = (my.bnd & ~t->cap_bnd) || t->securebits != my.securebits ||
			    (!ids_same(t) && t->cap_prm);
	if (need_setpcap && !(my.eff & setpcap))
		return refuse_cap(t->pid, setpcap, "restorer's required",
				  "the restorer lacks it, and it is needed to set the bounding "
				  "set, securebits or keep capabilities across a uid change");

	if (detach && t->pdeathsig)
		log_warn("pid %u has parent-death signal %u: with --detach its parent (this "
			 "restorer) exits right away, so the signal will be delivered",
			 t->pid, t->pdeathsig);
	return 0;
}

/* ---- in the child ---- */

static int child_call(const struct creds_target *ct, const char *what, int64_t *ret_val, long nr,
		      uint64_t a1, uint64_t a2, uint64_t a3)
{
	int64_t rv;
	int ret = inject_call(ct->pid, ct->syscall_ip, ct->base, &rv, nr, a1, a2, a3, 0, 0, 0);
	if (ret < 0)
		return ret;
	if (rv < 0 && rv > -4096) {
		cr_error("restoring pid %d: %s failed: %s", ct->pid, what, strerror((int)-rv));
		return (int)rv;
	}
	if (ret_val)
		*ret_val = rv;
	return 0;
}

static int child_capset(const struct creds_target *ct, const char *what, uint64_t eff, uint64_t prm,
			uint64_t inh)
{
	struct {
		struct __user_cap_header_struct hdr;
		struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	} arg = {
		.hdr = {_LINUX_CAPABILITY_VERSION_3, 0},
		.d = {{(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
		      {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)}},
	};
	char msg[192];

	if (sizeof(arg) > ct->scratch_len)
		return -E2BIG;
	int ret = mem_write(ct->memfd, ct->scratch, &arg, sizeof(arg));
	if (ret < 0)
		return ret;
	snprintf(msg, sizeof(msg),
		 "setting %s (effective %#" PRIx64 ", permitted %#" PRIx64 ", inheritable %#" PRIx64
		 ")",
		 what, eff, prm, inh);
	return child_call(ct, msg, NULL, SYS_capset, ct->scratch,
			  ct->scratch + offsetof(typeof(arg), d), 0);
}

static int child_ids(const struct creds_target *ct, const struct cr_task *t)
{
	int64_t fs;
	int ret;

	if ((uint64_t)t->nr_groups * 4 > ct->scratch_len)
		return -E2BIG;
	ret = mem_write(ct->memfd, ct->scratch, t->groups, (size_t)t->nr_groups * 4);
	if (ret == 0)
		ret = child_call(ct, "setgroups", NULL, SYS_setgroups, t->nr_groups, ct->scratch,
				 0);
	if (ret == 0)
		ret = child_call(ct, "setresgid", NULL, SYS_setresgid, t->gids[0], t->gids[1],
				 t->gids[2]);
	if (ret == 0)
		ret = child_call(ct, "setresuid", NULL, SYS_setresuid, t->uids[0], t->uids[1],
				 t->uids[2]);
	if (ret < 0)
		return ret;
	/* setfs[ug]id never fail; they return the previous id. Asking again with -1 (not a
	 * valid id, so no change) reports whether the first call took. */
	if (t->gids[3] != t->gids[1]) {
		ret = child_call(ct, "setfsgid", NULL, SYS_setfsgid, t->gids[3], 0, 0);
		if (ret == 0)
			ret = child_call(ct, "setfsgid", &fs, SYS_setfsgid, (uint32_t)-1, 0, 0);
		if (ret == 0 && (uint32_t)fs != t->gids[3]) {
			cr_error("restoring pid %d: setfsgid(%u) did not take", ct->pid,
				 t->gids[3]);
			return -EPERM;
		}
	}
	if (t->uids[3] != t->uids[1]) {
		ret = child_call(ct, "setfsuid", NULL, SYS_setfsuid, t->uids[3], 0, 0);
		if (ret == 0)
			ret = child_call(ct, "setfsuid", &fs, SYS_setfsuid, (uint32_t)-1, 0, 0);
		if (ret == 0 && (uint32_t)fs != t->uids[3]) {
			cr_error("restoring pid %d: setfsuid(%u) did not take", ct->pid,
				 t->uids[3]);
			return -EPERM;
		}
	}
	return ret;
}

/* Images without a CAPS record: ids only, as before capabilities were recorded. */
static int apply_ids_only(const struct creds_target *ct, const struct cr_task *t)
{
	int ret = 0;

	if (!ids_same(t) || t->nr_groups)
		ret = child_ids(ct, t);
	if (ret == 0 && t->no_new_privs)
		ret = child_call(ct, "PR_SET_NO_NEW_PRIVS", NULL, SYS_prctl, PR_SET_NO_NEW_PRIVS, 1,
				 0);
	return ret;
}

int restore_creds_apply(const struct creds_target *ct, const struct cr_task *t)
{
	struct caps my;
	unsigned int last;
	uint32_t bits;
	char nb[32], what[96];
	int ret;

	if (!t->has_caps)
		return apply_ids_only(ct, t);
	ret = cap_last(&last);
	if (ret == 0)
		ret = read_own_caps(&my, last);
	if (ret < 0)
		return ret;
	bits = my.securebits;

	/* 1 */
	if (t->cap_inh != my.inh) {
		ret = child_capset(ct, "the inheritable set", my.eff, my.prm, t->cap_inh);
		if (ret < 0)
			return ret;
	}
	/* 2 */
	for (unsigned int cap = 0; cap <= last; cap++) {
		if (!(my.bnd & ~t->cap_bnd & (1ULL << cap)))
			continue;
		snprintf(what, sizeof(what), "dropping %s from the bounding set",
			 cr_cap_name(cap, nb, sizeof(nb)));
		ret = child_call(ct, what, NULL, SYS_prctl, PR_CAPBSET_DROP, cap, 0);
		if (ret < 0)
			return ret;
	}
	/* 3 */
	if (t->cap_amb != my.amb) {
		ret = child_call(ct, "clearing the ambient set", NULL, SYS_prctl, PR_CAP_AMBIENT,
				 PR_CAP_AMBIENT_CLEAR_ALL, 0);
		for (unsigned int cap = 0; ret == 0 && cap <= last; cap++) {
			if (!(t->cap_amb & (1ULL << cap)))
				continue;
			snprintf(what, sizeof(what), "raising %s in the ambient set",
				 cr_cap_name(cap, nb, sizeof(nb)));
			ret = child_call(ct, what, NULL, SYS_prctl, PR_CAP_AMBIENT,
					 PR_CAP_AMBIENT_RAISE, cap);
		}
		if (ret < 0)
			return ret;
	}
	/* 4, 5 */
	if (!ids_same(t) || t->nr_groups) {
		/* Also when the task ends with no capabilities: its securebits (step 6) still
		 * need CAP_SETPCAP after the uid change. */
		if (!(bits & SECBIT_NO_SETUID_FIXUP) && (my.eff & (1ULL << CAP_SETPCAP))) {
			bits |= SECBIT_NO_SETUID_FIXUP;
			ret = child_call(ct, "keeping capabilities across the uid change", NULL,
					 SYS_prctl, PR_SET_SECUREBITS, bits, 0);
			if (ret < 0)
				return ret;
		}
		ret = child_ids(ct, t);
		if (ret < 0)
			return ret;
	}
	/* 6 */
	if (t->securebits != bits) {
		snprintf(what, sizeof(what), "setting securebits %#x", t->securebits);
		ret = child_call(ct, what, NULL, SYS_prctl, PR_SET_SECUREBITS, t->securebits, 0);
		if (ret < 0)
			return ret;
	}
	/* 7: without SECBIT_NO_SETUID_FIXUP the uid change above may have cleared sets, so
	 * set them whenever they matter. */
	if (t->cap_prm != my.prm || t->cap_eff != my.eff || t->cap_inh != my.inh ||
	    !(bits & SECBIT_NO_SETUID_FIXUP)) {
		ret = child_capset(ct, "the capability sets", t->cap_eff, t->cap_prm, t->cap_inh);
		if (ret < 0)
			return ret;
	}
	/* 8 */
	if (t->dumpable <= 1) {
		ret = child_call(ct, "PR_SET_DUMPABLE", NULL, SYS_prctl, PR_SET_DUMPABLE,
				 t->dumpable, 0);
		if (ret < 0)
			return ret;
	} else {
		/* 2 (SUID_DUMP_ROOT) only comes from fs.suid_dumpable at a credential change;
		 * prctl cannot set it. */
		int64_t d;
		ret = child_call(ct, "PR_GET_DUMPABLE", &d, SYS_prctl, PR_GET_DUMPABLE, 0, 0);
		if (ret < 0)
			return ret;
		if (d != 2) {
			cr_error("restoring pid %d: it was dumpable mode 2 (suid_dumpable), which "
				 "this system does not give it (%" PRId64 ")",
				 ct->pid, d);
			return -EPERM;
		}
	}
	if (t->pdeathsig) {
		ret = child_call(ct, "PR_SET_PDEATHSIG", NULL, SYS_prctl, PR_SET_PDEATHSIG,
				 t->pdeathsig, 0);
		if (ret < 0)
			return ret;
	}
	if (t->child_subreaper) {
		ret = child_call(ct, "PR_SET_CHILD_SUBREAPER", NULL, SYS_prctl,
				 PR_SET_CHILD_SUBREAPER, 1, 0);
		if (ret < 0)
			return ret;
	}
	if (t->thp_disable != my.thp_disable) {
		ret = child_call(ct, "PR_SET_THP_DISABLE", NULL, SYS_prctl, PR_SET_THP_DISABLE,
				 t->thp_disable & 1,
				 (t->thp_disable & 2) ? PR_THP_DISABLE_EXCEPT_ADVISED : 0);
		if (ret < 0)
			return ret;
	}
	if (t->no_new_privs) {
		ret = child_call(ct, "PR_SET_NO_NEW_PRIVS", NULL, SYS_prctl, PR_SET_NO_NEW_PRIVS, 1,
				 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}
