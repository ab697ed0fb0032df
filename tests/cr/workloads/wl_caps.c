// SPDX-License-Identifier: MIT
/*
 * wl_caps - privileges of a root process turned into a non-root one that keeps chosen
 * capabilities: securebits NOROOT|NOROOT_LOCKED|KEEP_CAPS, an inheritable set holding a
 * capability later dropped from the bounding set, four bounding-set drops, distinct real/
 * effective/saved/fs uids and gids, two supplementary groups, permitted != effective, one
 * ambient capability, dumpable set back to 1, a parent-death signal, child subreaper, THP
 * disabled, a timer slack and no_new_privs. After SIGTERM every value is compared with what
 * was set, and the effective set is exercised: binding a port below 1024 needs
 * CAP_NET_BIND_SERVICE, signalling pid 1 needs CAP_KILL, and a bounding-set drop must fail
 * because CAP_SETPCAP is permitted but not effective.
 * Usage: wl_caps SCRATCH_DIR   (must start as root)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wl_common.h"

#define BIT(c) (1ULL << (c))

static const uid_t uids[3] = {1000, 1001, 1002}; /* real, effective, saved; fs = saved */
static const gid_t gids[3] = {1234, 1235, 1236};
static const gid_t groups[2] = {4321, 5678};
static const uint64_t want_inh = BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_CHOWN) | BIT(CAP_MKNOD);
static const uint64_t want_prm = BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_NET_ADMIN) | BIT(CAP_KILL) |
				 BIT(CAP_SETPCAP) | BIT(CAP_CHOWN);
static const uint64_t want_eff = BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_KILL);
static const uint64_t want_amb = BIT(CAP_NET_BIND_SERVICE);
static const uint64_t dropped =
	BIT(CAP_SYS_BOOT) | BIT(CAP_MKNOD) | BIT(CAP_AUDIT_WRITE) | BIT(CAP_NET_RAW);
static const int want_secbits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_KEEP_CAPS;
#define PDEATHSIG  SIGWINCH /* ignored by default: a restorer that exits must not kill us */
#define TIMERSLACK 123456

static uint64_t want_bnd;

static int caps_get(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	*inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

static int caps_set(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {
		{(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
		{(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)},
	};

	return (int)syscall(SYS_capset, &h, d);
}

/* A hex mask line of /proc/self/status, or ~0 when missing. */
static uint64_t status_mask(const char *key)
{
	char buf[4096], *p;
	size_t kl = strlen(key);
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return ~0ULL;
	buf[n] = 0;
	for (p = buf; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, kl) && p[kl] == ':')
			return strtoull(p + kl + 1, NULL, 16);
	return ~0ULL;
}

static int setup(void)
{
#define TRY(call)                                                                                  \
	do {                                                                                       \
		if ((call) < 0) {                                                                  \
			wl_fail("setup: %s: %s", #call, strerror(errno));                          \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

	if (geteuid() != 0) {
		wl_fail("setup: must start as root (euid %u)", (unsigned)geteuid());
		return -1;
	}
	TRY(prctl(PR_SET_SECUREBITS, want_secbits, 0, 0, 0));
	/* The inheritable set first: capset refuses inheritable bits outside the bounding set,
	 * but keeps one the bounding set loses afterwards (CAP_MKNOD here). */
	uint64_t eff, prm, inh;
	TRY(caps_get(&eff, &prm, &inh));
	TRY(caps_set(eff, prm, want_inh));
	for (int cap = 0; cap < 64; cap++)
		if (dropped & BIT(cap))
			TRY(prctl(PR_CAPBSET_DROP, cap, 0, 0, 0));
	want_bnd = status_mask("CapBnd");
	TRY(setgroups(2, groups));
	TRY(setresgid(gids[0], gids[1], gids[2]));
	TRY(setresuid(uids[0], uids[1], uids[2]));
	setfsgid(gids[2]);
	setfsuid(uids[2]);
	/* KEEP_CAPS kept the permitted set across the uid change; effective was cleared. */
	TRY(caps_set(want_eff, want_prm, want_inh));
	TRY(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0));
	/* The uid change made us non-dumpable and cleared the parent-death signal. */
	TRY(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
	TRY(prctl(PR_SET_PDEATHSIG, PDEATHSIG, 0, 0, 0));
	TRY(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
	TRY(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0));
	TRY(prctl(PR_SET_TIMERSLACK, TIMERSLACK, 0, 0, 0));
	TRY(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
#undef TRY
	return 0;
}

static void check_mask(const char *what, uint64_t got, uint64_t want)
{
	if (got != want)
		wl_fail("%s set is %#llx, expected %#llx", what, (unsigned long long)got,
			(unsigned long long)want);
}

static void check_int(const char *what, long got, long want)
{
	if (got != want)
		wl_fail("%s is %ld, expected %ld", what, got, want);
}

static void verify(void)
{
	uint64_t eff = 0, prm = 0, inh = 0;
	uid_t r, e, s;
	gid_t gr, ge, gs, gl[8];
	int pd = -1, sub = -1;

	if (caps_get(&eff, &prm, &inh) < 0)
		wl_fail("capget: %s", strerror(errno));
	check_mask("effective", eff, want_eff);
	check_mask("permitted", prm, want_prm);
	check_mask("inheritable", inh, want_inh);
	check_mask("bounding", status_mask("CapBnd"), want_bnd);
	check_mask("ambient", status_mask("CapAmb"), want_amb);
	if (want_bnd & dropped)
		wl_fail("setup left dropped capabilities in the bounding set");

	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	if (r != uids[0] || e != uids[1] || s != uids[2])
		wl_fail("uids are %u/%u/%u, expected %u/%u/%u", r, e, s, uids[0], uids[1], uids[2]);
	if (gr != gids[0] || ge != gids[1] || gs != gids[2])
		wl_fail("gids are %u/%u/%u, expected %u/%u/%u", gr, ge, gs, gids[0], gids[1],
			gids[2]);
	check_int("fsuid", setfsuid((uid_t)-1), uids[2]);
	check_int("fsgid", setfsgid((gid_t)-1), gids[2]);
	int ng = getgroups(8, gl);
	if (ng != 2 || gl[0] != groups[0] || gl[1] != groups[1])
		wl_fail("supplementary groups differ (%d of them)", ng);

	check_int("securebits", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0), want_secbits);
	check_int("no_new_privs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1);
	check_int("dumpable", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
	prctl(PR_GET_PDEATHSIG, &pd, 0, 0, 0);
	check_int("parent-death signal", pd, PDEATHSIG);
	prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
	check_int("child subreaper", sub, 1);
	check_int("THP disable", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), 1);
	check_int("timer slack", prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), TIMERSLACK);

	/* The effective set must work, not only read back. EADDRINUSE still means the
	 * privilege check (EACCES) passed. */
	int sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0) {
		wl_fail("socket: %s", strerror(errno));
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1011)};
		if (bind(sfd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EADDRINUSE)
			wl_fail("bind to port 1011 with CAP_NET_BIND_SERVICE: %s", strerror(errno));
		close(sfd);
	}
	if (kill(1, 0) < 0)
		wl_fail("kill(1, 0) with CAP_KILL: %s", strerror(errno));
	/* CAP_SETPCAP is permitted only: the drop must be refused. */
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE, 0, 0, 0) == 0)
		wl_fail("PR_CAPBSET_DROP succeeded without CAP_SETPCAP effective");
	else if (errno != EPERM)
		wl_fail("PR_CAPBSET_DROP: %s, expected EPERM", strerror(errno));
}

int main(int argc, char **argv)
{
	(void)argv;
	return wl_main_checked(argc, "wl_caps", setup, verify);
}
