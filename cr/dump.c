// SPDX-License-Identifier: MIT
/*
 * dump.c - freezes one process, inspects everything (refusing what cannot be restored before
 * anything is written), collects its CPU, signal and per-task state, writes the image and then
 * kills or releases the target.
 *
 * The freeze is kept short: memory is copied into a buffer of the dumper (dump_mm.c) while a
 * writer thread already streams it into pages.img; with --leave-running the target runs again
 * as soon as its state is read, and the image is completed from the copy.
 *
 * Ordering: the target is seized and interrupted first, so everything read afterwards is one
 * consistent snapshot. State only visible from inside the task (brk, clear_child_tid, signal
 * handlers, sigaltstack, itimers, securebits and other prctl state: dump_creds.c) is read by
 * running syscalls in it, with all signals blocked so nothing is delivered meanwhile; its
 * registers and mask are put back afterwards. On any
 * failure the partial image is removed (and inventory.img, the completeness marker, is never
 * written) and the target is detached exactly as it was.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "cr/cr.h"
#include "cr/creds_priv.h"
#include "cr/dump_priv.h"
#include "cr/error.h"
#include "cr/fuse_priv.h"
#include "cr/ptrace_priv.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int read_small_file(const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return (int)n;
}

/* Value of "Key:" in /proc/PID/status, or NULL. */
static const char *status_field(const char *status, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = status; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, kl) && p[kl] == ':')
			return p + kl + 1;
	return NULL;
}

/* Checks that need no ptrace: a refusal here leaves the target completely untouched. */
static int precheck(pid_t pid, char *status, size_t status_size, bool frozen)
{
	char path[64];
	const char *v;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	int ret = read_small_file(path, status, status_size);
	if (ret < 0) {
		cr_error("pid %d: no such process", pid);
		return -ESRCH;
	}
	if (pid == getpid() || pid == getppid()) {
		cr_error("pid %d: cannot dump the dumper or its parent", pid);
		return -EINVAL;
	}
	v = status_field(status, "State");
	if (v && (strstr(v, "zombie") || strstr(v, "dead"))) {
		cr_error("pid %d: is a zombie", pid);
		return -ESRCH;
	}
	if (!frozen && v && (strstr(v, "stopped") || strstr(v, "tracing stop"))) {
		cr_error("pid %d: is stopped; stopped processes are not supported yet", pid);
		return -EOPNOTSUPP;
	}
	v = status_field(status, "Threads");
	if (v && strtol(v, NULL, 10) != 1) {
		cr_error("pid %d: has %ld threads; only single-threaded processes are supported",
			 pid, strtol(v, NULL, 10));
		return -EOPNOTSUPP;
	}
	v = status_field(status, "TracerPid");
	if (!frozen && v && strtol(v, NULL, 10) != 0) {
		cr_error("pid %d: is already traced by pid %ld", pid, strtol(v, NULL, 10));
		return -EBUSY;
	}
	v = status_field(status, "Seccomp");
	if (v && strtol(v, NULL, 10) != 0) {
		/* Restoring without its filter would silently widen what it may do. */
		cr_error("pid %d: runs under a seccomp filter; not supported yet", pid);
		return -EOPNOTSUPP;
	}
	if (!status_field(status, "VmSize")) {
		cr_error("pid %d: is a kernel thread", pid);
		return -EOPNOTSUPP;
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	char kids[256];
	ret = read_small_file(path, kids, sizeof(kids));
	if (ret > 0 && kids[0] && kids[0] != '\n') {
		size_t kl = strcspn(kids, "\n");
		while (kl && kids[kl - 1] == ' ')
			kl--;
		cr_error("pid %d: has child processes (%.*s); process trees are not supported yet",
			 pid, (int)kl, kids);
		return -EOPNOTSUPP;
	}
	snprintf(path, sizeof(path), "/proc/%d/timers", pid);
	char timers[64];
	ret = read_small_file(path, timers, sizeof(timers));
	if (ret > 0) {
		cr_error("pid %d: has POSIX timers (timer_create); not supported yet", pid);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int parse_ids(const char *status, const char *key, uint32_t ids[4])
{
	const char *v = status_field(status, key);
	unsigned int a, b, c, d;
	if (!v || sscanf(v, "%u %u %u %u", &a, &b, &c, &d) != 4)
		return -EIO;
	ids[0] = a;
	ids[1] = b;
	ids[2] = c;
	ids[3] = d;
	return 0;
}

static int collect_proc(struct dump_ctx *c, const char *status)
{
	struct cr_task *t = c->t;
	char path[64], buf[4096];
	int ret;

	/* /proc/PID/stat: fields after the last ')' start at field 3 (state). */
	snprintf(path, sizeof(path), "/proc/%d/stat", c->pid);
	ret = read_small_file(path, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	unsigned long long f[53] = {0};
	int field = 3;
	for (char *tok = strtok(p + 2, " "); tok && field < 53; tok = strtok(NULL, " "), field++)
		f[field] = strtoull(tok, NULL, 10);
	if (field < 52)
		return -EIO;
	t->nice = (int32_t)(int64_t)f[19];
	t->ppid = (uint32_t)f[4];
	t->pgid = (uint32_t)f[5];
	t->sid = (uint32_t)f[6];
	t->mm.start_code = f[26];
	t->mm.end_code = f[27];
	t->mm.start_stack = f[28];
	t->mm.start_data = f[45];
	t->mm.end_data = f[46];
	t->mm.start_brk = f[47];
	t->mm.arg_start = f[48];
	t->mm.arg_end = f[49];
	t->mm.env_start = f[50];
	t->mm.env_end = f[51];

	snprintf(path, sizeof(path), "/proc/%d/comm", c->pid);
	ret = read_small_file(path, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	buf[strcspn(buf, "\n")] = 0;
	buf[sizeof(t->comm) - 1] = 0;
	memcpy(t->comm, buf, sizeof(t->comm));

	snprintf(path, sizeof(path), "/proc/%d/personality", c->pid);
	ret = read_small_file(path, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	t->personality = (uint32_t)strtoul(buf, NULL, 16);

	const char *nnp = status_field(status, "NoNewPrivs");
	t->no_new_privs = nnp && strtol(nnp, NULL, 10) == 1;
	const char *um = status_field(status, "Umask");
	t->umask = um ? (uint32_t)strtoul(um, NULL, 8) : 022;
	if (parse_ids(status, "Uid", t->uids) < 0 || parse_ids(status, "Gid", t->gids) < 0)
		return -EIO;
	const char *g = status_field(status, "Groups");
	t->groups = calloc(CR_MAX_GROUPS, sizeof(uint32_t));
	if (!t->groups)
		return -ENOMEM;
	for (char *end; g && t->nr_groups < CR_MAX_GROUPS; g = end) {
		unsigned long v = strtoul(g, &end, 10);
		if (end == g)
			break; /* end of the list (strtoul skips the blanks before a number) */
		t->groups[t->nr_groups++] = (uint32_t)v;
	}

	/* prlimit() on another user's process needs CAP_SYS_RESOURCE; /proc/PID/limits does
	 * not. Rows are in RLIMIT_* order; values sit at fixed columns 26 and 47. */
	snprintf(path, sizeof(path), "/proc/%d/limits", c->pid);
	ret = read_small_file(path, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	int row = -1;
	for (char *ln = buf; ln && *ln && row < CR_NRLIMITS; row++) {
		char *nl = strchr(ln, '\n');
		if (nl)
			*nl = 0;
		if (row >= 0) {
			if (strlen(ln) < 48)
				return -EIO;
			for (int k = 0; k < 2; k++) {
				const char *v = ln + (k ? 47 : 26);
				t->rlimits[row][k] = !strncmp(v, "unlimited", 9)
							     ? (uint64_t)RLIM_INFINITY
							     : strtoull(v, NULL, 10);
			}
		}
		ln = nl ? nl + 1 : NULL;
	}
	if (row != CR_NRLIMITS)
		return -EIO;

	static const char *links[] = {"exe", "cwd", "root"};
	char **dst[] = {&t->exe, &t->cwd, &t->root};
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", c->pid, links[i]);
		ssize_t n = readlink(path, buf, sizeof(buf) - 1);
		if (n < 0)
			return -errno;
		buf[n] = 0;
		if (i > 0 && !strcmp(buf + (n > 10 ? n - 10 : 0), " (deleted)")) {
			cr_error("pid %d: its %s '%s' was deleted", c->pid, links[i], buf);
			return -EOPNOTSUPP;
		}
		/* A deleted exe only loses the exe link at restore; keep mapping-based restore. */
		if (i == 0 && n > 10 && !strcmp(buf + n - 10, " (deleted)"))
			continue;
		*dst[i] = strdup(buf);
		if (!*dst[i])
			return -ENOMEM;
	}

	snprintf(path, sizeof(path), "/proc/%d/auxv", c->pid);
	t->auxv = malloc(CR_MAX_AUXV);
	if (!t->auxv)
		return -ENOMEM;
	ret = read_small_file(path, (char *)t->auxv, CR_MAX_AUXV);
	if (ret < 0)
		return ret;
	t->auxv_len = (uint32_t)ret & ~15u;
	return 0;
}

static int collect_ptrace(struct dump_ctx *c)
{
	struct cr_task *t = c->t;
	struct iovec iov;
	uint8_t *xs = malloc(CR_MAX_XSTATE);

	if (!xs)
		return -ENOMEM;
	t->xstate = xs;
	iov.iov_base = xs;
	iov.iov_len = CR_MAX_XSTATE;
	if (ptrace(PTRACE_GETREGSET, c->pid, NT_X86_XSTATE, &iov) < 0) {
		cr_error("pid %d: PTRACE_GETREGSET(xstate): %s", c->pid, strerror(errno));
		return -errno;
	}
	t->xstate_len = (uint32_t)iov.iov_len;
	memcpy(t->regs, &c->regs, sizeof(t->regs));

	struct cr_rseq_config rs = {0};
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, c->pid, sizeof(rs), &rs) < 0)
		return -errno;
	t->rseq_addr = rs.rseq_abi_pointer;
	t->rseq_len = rs.rseq_abi_size;
	t->rseq_sig = rs.signature;

	void *head = NULL;
	size_t len = 0;
	if (syscall(SYS_get_robust_list, c->pid, &head, &len) < 0)
		return -errno;
	t->robust_head = (uint64_t)(uintptr_t)head;
	t->robust_len = len;

	/* Pending signals: the thread's queue, then the process-wide one. */
	uint32_t cap = 0;
	for (int shared = 0; shared < 2; shared++) {
		for (uint64_t off = 0;; off++) {
			struct {
				uint64_t off;
				uint32_t flags;
				int32_t nr;
			} arg = {off, shared ? 1u : 0u, 1};
			uint8_t si[128];
			long n = ptrace(PTRACE_PEEKSIGINFO, c->pid, &arg, si);
			if (n < 0)
				return -errno;
			if (n == 0)
				break;
			if (t->nr_siginfos == cap) {
				cap = cap ? cap * 2 : 8;
				struct cr_siginfo *ns = realloc(t->siginfos, cap * sizeof(*ns));
				if (!ns)
					return -ENOMEM;
				t->siginfos = ns;
			}
			t->siginfos[t->nr_siginfos].shared = (uint32_t)shared;
			memcpy(t->siginfos[t->nr_siginfos].info, si, sizeof(si));
			t->nr_siginfos++;
		}
	}
	return 0;
}

/* State only readable from inside the task, read by running syscalls in it. */
static int collect_injected(struct dump_ctx *c)
{
	struct cr_task *t = c->t;
	int64_t rv, scratch;
	int ret;

	ret = inject_call(c->pid, c->syscall_ip, &c->regs, &scratch, SYS_mmap, 0, 4096,
			  PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
	if (ret < 0)
		return ret;
	if (scratch < 0 && scratch > -4096) {
		cr_error("pid %d: injected mmap failed: %s", c->pid, strerror((int)-scratch));
		return (int)scratch;
	}
	uint64_t s = (uint64_t)scratch;

#define INJ(...)                                                                                   \
	do {                                                                                       \
		ret = inject_call(c->pid, c->syscall_ip, &c->regs, &rv, __VA_ARGS__);              \
		if (ret < 0)                                                                       \
			goto out_unmap;                                                            \
		if (rv < 0 && rv > -4096) {                                                        \
			ret = (int)rv;                                                             \
			cr_error("pid %d: injected syscall failed at %s:%d: %s", c->pid, __FILE__, \
				 __LINE__, strerror((int)-rv));                                    \
			goto out_unmap;                                                            \
		}                                                                                  \
	} while (0)

	INJ(SYS_brk, 0, 0, 0, 0, 0, 0);
	t->mm.brk = (uint64_t)rv;
	INJ(SYS_prctl, PR_GET_TIMERSLACK, 0, 0, 0, 0, 0);
	t->timer_slack_ns = (uint64_t)rv;
	INJ(SYS_prctl, PR_GET_TID_ADDRESS, s, 0, 0, 0, 0);
	ret = mem_read(c->memfd, s, &t->clear_child_tid, 8);
	if (ret < 0)
		goto out_unmap;
	for (int sig = 1; sig <= CR_NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		struct cr_ksigaction ka;
		INJ(SYS_rt_sigaction, (uint64_t)sig, 0, s, 8, 0, 0);
		ret = mem_read(c->memfd, s, &ka, sizeof(ka));
		if (ret < 0)
			goto out_unmap;
		t->sigactions[sig - 1] =
			(struct cr_sigaction){ka.handler, ka.flags, ka.restorer, ka.mask};
	}
	stack_t ss;
	INJ(SYS_sigaltstack, 0, s, 0, 0, 0, 0);
	ret = mem_read(c->memfd, s, &ss, sizeof(ss));
	if (ret < 0)
		goto out_unmap;
	t->altstack_sp = (uint64_t)(uintptr_t)ss.ss_sp;
	t->altstack_size = ss.ss_size;
	t->altstack_flags = (uint32_t)ss.ss_flags;
	for (int w = 0; w < 3; w++) {
		struct itimerval it;
		INJ(SYS_getitimer, (uint64_t)w, s, 0, 0, 0, 0);
		ret = mem_read(c->memfd, s, &it, sizeof(it));
		if (ret < 0)
			goto out_unmap;
		t->itimers[w][0] = (uint64_t)it.it_interval.tv_sec;
		t->itimers[w][1] = (uint64_t)it.it_interval.tv_usec;
		t->itimers[w][2] = (uint64_t)it.it_value.tv_sec;
		t->itimers[w][3] = (uint64_t)it.it_value.tv_usec;
	}
	ret = dump_creds_collect(c, s);
	if (ret < 0)
		goto out_unmap;
#undef INJ
out_unmap:;
	int r2 = inject_call(c->pid, c->syscall_ip, &c->regs, &rv, SYS_munmap, s, 4096, 0, 0, 0, 0);
	if (ret == 0 && r2 < 0)
		ret = r2;
	return ret;
}

/*
 * Puts the task back as it was found. It sits at an injected syscall's exit stop, where the
 * kernel no longer applies its restart logic; do that here, as the kernel would have.
 */
static int release_target(struct dump_ctx *c, bool injected)
{
	struct user_regs_struct regs = c->regs;

	if (injected && (int64_t)regs.orig_rax >= 0) {
		int64_t rax = (int64_t)regs.rax;
		if (rax == -CR_ERESTARTSYS || rax == -CR_ERESTARTNOINTR ||
		    rax == -CR_ERESTARTNOHAND) {
			regs.rax = regs.orig_rax;
			regs.rip -= 2;
		} else if (rax == -CR_ERESTART_RESTARTBLOCK) {
			regs.rax = SYS_restart_syscall;
			regs.rip -= 2;
		}
		regs.orig_rax = (uint64_t)-1;
	}
	if (ptrace(PTRACE_SETREGS, c->pid, 0, &regs) < 0)
		return -errno;
	if (ptrace(PTRACE_SETSIGMASK, c->pid, sizeof(uint64_t), &c->t->sigmask) < 0)
		return -errno;
	if (ptrace(PTRACE_DETACH, c->pid, 0, 0) < 0)
		return -errno;
	return 0;
}

/*
 * A process restored with --lazy has memory that is not in memory yet: its page server holds
 * it until it has filled it (about a second per GiB). pagemap shows those pages as absent, so
 * a dump now would lose them; wait for the server to finish (its uffd unregisters the ranges),
 * up to CKPTFS_DUMP_LAZY_WAIT_S seconds (default 60), else refuse before touching the target.
 */
static int wait_lazy_fill(pid_t pid)
{
	const char *env = getenv("CKPTFS_DUMP_LAZY_WAIT_S");
	unsigned long wait_s = env ? strtoul(env, NULL, 10) : 60;
	uint64_t addr = 0, t0 = now_ns();
	bool said = false;

	for (;;) {
		int r = dump_mm_uffd_missing(pid, &addr);
		if (r <= 0)
			return r == -ENOENT ? -ESRCH : r < 0 ? r : 0;
		if (now_ns() - t0 >= wait_s * 1000000000ULL)
			break;
		if (!said)
			log_warn(
				"pid %d: a lazy restore is still filling its memory (mapping %#" PRIx64
				" registered with a userfaultfd); waiting up to %lu s",
				pid, addr, wait_s);
		said = true;
		usleep(20000);
	}
	cr_error("pid %d: mapping %#" PRIx64 " is still registered with a userfaultfd in missing "
		 "mode after %lu s (a lazy restore's page server still filling it?): its missing "
		 "pages are not in memory, so an image would lose them",
		 pid, addr, wait_s);
	return -EBUSY;
}

static int freeze(pid_t pid)
{
	int status, ret;

	if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD) < 0) {
		cr_error("pid %d: PTRACE_SEIZE: %s", pid, strerror(errno));
		return -errno;
	}
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) {
		ret = -errno;
		ptrace(PTRACE_DETACH, pid, 0, 0);
		return ret;
	}
	for (;;) {
		ret = wait_stopped(pid, &status);
		if (ret < 0)
			return ret;
		if (status >> 16 == PTRACE_EVENT_STOP)
			return 0;
		/* A signal was being delivered: let it go on, as it would have, and wait for our
		 * interrupt stop. */
		if (ptrace(PTRACE_CONT, pid, 0, WSTOPSIG(status)) < 0)
			return -errno;
	}
}

static void remove_tree(int parentfd, const char *name)
{
	_cleanup_close_ int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		DIR *d = fdopendir(fd);
		if (d) {
			fd = -1;
			struct dirent *de;
			while ((de = readdir(d)))
				if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
					unlinkat(dirfd(d), de->d_name, 0);
			closedir(d);
		}
	}
	unlinkat(parentfd, name, AT_REMOVEDIR);
}

static int prepare_dir(const char *dir, pid_t pid, int *ret_dirfd, bool *ret_created)
{
	*ret_created = mkdir(dir, 0755) == 0;
	if (!*ret_created && errno != EEXIST) {
		cr_error("cannot create image directory '%s': %s", dir, strerror(errno));
		return -errno;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		cr_error("cannot open image directory '%s': %s", dir, strerror(errno));
		return -errno;
	}
	_cleanup_close_ int dfd = fd;
	DIR *d = fdopendir(fcntl(fd, F_DUPFD_CLOEXEC, 0));
	if (!d)
		return -errno;
	struct dirent *de;
	int ret = 0;
	while ((de = readdir(d)))
		if (!strcmp(de->d_name, "inventory.img") || !strncmp(de->d_name, "task-", 5) ||
		    !strcmp(de->d_name, "files")) {
			cr_error(
				"'%s' already holds a checkpoint image ('%s'); refusing to overwrite",
				dir, de->d_name);
			ret = -EEXIST;
			break;
		}
	closedir(d);
	if (ret < 0)
		return ret;
	*ret_dirfd = TAKE_FD(dfd);
	return 0;
}

int cr_dump(const struct cr_dump_opts *opts, struct cr_dump_stats *ret_stats)
{
	struct dump_ctx c = {.pid = opts->pid,
			     .pidfd = -1,
			     .memfd = -1,
			     .dirfd = -1,
			     .taskdirfd = -1,
			     .filesdirfd = -1};
	_cleanup_free_ char *status = calloc(1, 65536);
	char path[64], taskdir[32], parent_note[sizeof(ret_stats->parent_note)] = "";
	_cleanup_free_ char *auto_parent = NULL;
	bool frozen = false, injected = false, wrote = false, created = false;
	uint64_t t_start = now_ns(), t0 = 0, t_capture = 0, t_resume = 0;
	int ret;

	cr_error_clear();
	if (!status)
		return -ENOMEM;
	if (opts->pid <= 0) {
		cr_error("pid %d: not a valid process id", opts->pid);
		return -EINVAL; /* cppcheck-suppress memleak ; status is a cleanup variable */
	}
	ret = precheck(c.pid, status, 65536, false);
	if (ret < 0)
		return ret;
	ret = wait_lazy_fill(c.pid);
	if (ret < 0)
		return ret;
	ret = prepare_dir(opts->dir, c.pid, &c.dirfd, &created);
	if (ret < 0)
		return ret;
	c.img = cr_image_new();
	if (!c.img) {
		ret = -ENOMEM;
		goto out;
	}
	c.img->root_pid = (uint32_t)c.pid;
	c.t = cr_image_add_task(c.img, (uint32_t)c.pid);
	if (!c.t) {
		ret = -ENOMEM;
		goto out;
	}
	c.pidfd = pidfd_open(c.pid, 0);
	if (c.pidfd < 0) {
		ret = -errno;
		cr_error("pid %d: pidfd_open: %s", c.pid, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", c.pid);
	c.memfd = open(path, O_RDWR | O_CLOEXEC);
	if (c.memfd < 0) {
		ret = -errno;
		cr_error("pid %d: cannot open '%s': %s", c.pid, path, strerror(errno));
		goto out;
	}

	/* The parent's digests are loaded before the freeze too. An unusable parent is not an
	 * error: every page is written, and the reason goes to the caller. */
	const char *parent = opts->parent;
	if (!parent && opts->auto_parent) {
		ret = dump_parent_auto(opts->dir, c.pid, &auto_parent);
		if (ret == -ENOMEM)
			goto out;
		if (ret < 0) {
			snprintf(parent_note, sizeof(parent_note),
				 "no parent, writing every page: %s", cr_error_last());
			cr_error_clear();
		}
		parent = auto_parent;
	}
	if (parent) {
		if (ret_stats)
			snprintf(ret_stats->parent_dir, sizeof(ret_stats->parent_dir), "%s",
				 parent);
		ret = dump_parent_open(parent, c.pid, &c.parent);
		if (ret == -ENOMEM)
			goto out;
		if (ret < 0) {
			snprintf(parent_note, sizeof(parent_note),
				 "parent not used, writing every page: %s", cr_error_last());
			cr_error_clear();
		} else {
			/* Recorded for `ckptfs show` only: nothing if it cannot be resolved. */
			c.img->parent = realpath(parent, NULL);
			if (dump_parent_pid(c.parent) != (uint32_t)c.pid)
				snprintf(parent_note, sizeof(parent_note),
					 "parent '%s' has no task %d; matching pages against its "
					 "task %u",
					 parent, c.pid, dump_parent_pid(c.parent));
		}
	}

	/* The capture buffer is allocated and faulted in before the freeze, not during it. */
	ret = dump_mm_reserve(&c);
	if (ret < 0) {
		cr_error("pid %d: cannot allocate the memory capture buffer: %s", c.pid,
			 strerror(-ret));
		goto out;
	}

	t0 = now_ns();
	ret = freeze(c.pid);
	if (ret < 0)
		goto out;
	frozen = true;
	if (ptrace(PTRACE_GETREGS, c.pid, 0, &c.regs) < 0 ||
	    ptrace(PTRACE_GETSIGMASK, c.pid, sizeof(uint64_t), &c.t->sigmask) < 0) {
		ret = -errno;
		cr_error("pid %d: reading registers: %s", c.pid, strerror(errno));
		/* Nothing was changed yet and there is nothing valid to put back. */
		ptrace(PTRACE_DETACH, c.pid, 0, 0);
		frozen = false;
		goto out;
	}
	/* Inspect everything before changing anything; re-check what may have raced. */
	ret = precheck(c.pid, status, 65536, true);
	if (ret < 0)
		goto out;
	ret = dump_fds_collect(&c);
	if (ret < 0)
		goto out;
	ret = dump_mm_collect(&c);
	if (ret < 0)
		goto out;
	ret = dump_shm_collect(&c);
	if (ret < 0)
		goto out;
	ret = collect_proc(&c, status);
	if (ret < 0)
		goto out;
	ret = collect_ptrace(&c);
	if (ret < 0)
		goto out;

	uint64_t all = ~0ULL;
	if (ptrace(PTRACE_SETSIGMASK, c.pid, sizeof(all), &all) < 0) {
		ret = -errno;
		goto out;
	}
	injected = true;
	ret = collect_injected(&c);
	if (ret < 0)
		goto out;
	/* Last inspection, and the keeper takes the FUSE connections before the kill below. */
	ret = dump_fuse_prepare(&c, opts->leave_running);
	if (ret < 0)
		goto out;

	/* The image directories first: the writer thread streams pages.img while the capture
	 * is still reading the target. */
	snprintf(taskdir, sizeof(taskdir), "task-%d", c.pid);
	wrote = true;
	if (mkdirat(c.dirfd, taskdir, 0755) < 0 || mkdirat(c.dirfd, "files", 0755) < 0) {
		ret = -errno;
		cr_error("creating directories in '%s': %s", opts->dir, strerror(errno));
		goto out;
	}
	c.taskdirfd = openat(c.dirfd, taskdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c.filesdirfd = openat(c.dirfd, "files", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.taskdirfd < 0 || c.filesdirfd < 0) {
		ret = -errno;
		goto out;
	}
	c.defer_writes = opts->leave_running;
	/* On a ckptfs mount the seal below flushes and syncs the whole checkpoint: one sync
	 * instead of one per file (each costs the store a pack fdatasync and an LMDB sync). */
	c.sync_by_seal = c.img->sync_by_seal = dump_dir_is_ckptfs(c.dirfd);
	ret = dump_mm_capture_pages(&c);
	if (ret < 0)
		goto out;
	/* Pipe buffers and unlinked files' contents are read from the live objects: while frozen.
	 */
	ret = dump_fds_write_data(&c);
	if (ret < 0)
		goto out;
	t_capture = now_ns();

	/*
	 * --leave-running: everything is read, so the target goes on now and the image is
	 * completed from the dumper's copy; a failure from here on removes the partial image
	 * and the target, already running, never notices. Killing is different: a target
	 * killed before its image is durable would be lost if the write then failed, so in
	 * that mode it stays frozen until the image is complete and fsynced.
	 */
	if (opts->leave_running) {
		ret = release_target(&c, injected);
		frozen = false;
		t_resume = now_ns();
		if (ret < 0) {
			cr_error("pid %d: could not be released after the dump: %s", c.pid,
				 strerror(-ret));
			goto out;
		}
	}
	ret = dump_mm_finish_pages(&c);
	if (ret < 0)
		goto out;
	ret = cr_image_validate_task(c.t, UINT64_MAX);
	if (ret < 0) {
		cr_error("pid %d: the collected state fails validation (%s)", c.pid,
			 cr_error_last());
		goto out;
	}
	ret = cr_image_write_task(c.dirfd, c.img, c.t, &c.bytes_written);
	if (ret < 0) {
		cr_error("writing the image of pid %d into '%s': %s", c.pid, opts->dir,
			 strerror(-ret));
		goto out;
	}
	ret = cr_image_write_inventory(c.dirfd, c.img, &c.bytes_written);
	if (ret < 0) {
		cr_error("writing '%s/inventory.img': %s", opts->dir, strerror(-ret));
		goto out;
	}
	if (!c.sync_by_seal && fsync(c.dirfd) < 0 && errno != EINVAL && errno != ENOTSUP) {
		ret = -errno;
		cr_error("fsync of '%s': %s", opts->dir, strerror(errno));
		goto out;
	}
	/* Sealing (on a ckptfs mount) is part of making the image durable: it comes before the
	 * kill, so a seal that fails (a full store) still leaves the target alive. */
	ret = dump_seal_if_ckptfs(c.dirfd, opts->dir);
	if (ret < 0)
		goto out;
	uint64_t t_done = now_ns();

	/* The image is complete and durable: now the target may end. */
	if (!opts->leave_running) {
		kill(c.pid, SIGKILL);
		frozen = false;
		t_resume = t_done;
	}
	if (ret_stats) {
		ret_stats->prepare_ns = t0 - t_start;
		ret_stats->frozen_ns = t_resume - t0;
		ret_stats->capture_ns = t_capture - t0;
		ret_stats->total_ns = t_done - t0;
		ret_stats->bytes_written = c.bytes_written;
		ret_stats->pages = c.t->pages_total;
		ret_stats->pages_spilled = c.pages_spilled;
		ret_stats->buffer_bytes = c.pages_buffer;
		ret_stats->pages_copied = c.pages_copied;
		snprintf(ret_stats->parent_note, sizeof(ret_stats->parent_note), "%s%s%s",
			 parent_note, parent_note[0] && c.copy_note[0] ? "; " : "", c.copy_note);
	}
	ret = 0;
	goto out_keep;

out:
	/* The writer stops before the target is let go: nothing reads the target after this. */
	dump_mm_free_pages(&c);
	dump_fuse_abort(&c);
	if (frozen) {
		int r2 = release_target(&c, injected);
		if (r2 < 0)
			log_debug("pid %d: release after failed dump: %s", c.pid, strerror(-r2));
	}
	if (wrote) {
		unlinkat(c.dirfd, "inventory.img", 0);
		remove_tree(c.dirfd, taskdir);
		remove_tree(c.dirfd, "files");
	}
	if (created)
		rmdir(opts->dir);
out_keep:
	dump_mm_free_pages(&c);
	closep(&c.taskdirfd);
	closep(&c.filesdirfd);
	closep(&c.memfd);
	closep(&c.pidfd);
	closep(&c.dirfd);
	dump_parent_free(c.parent);
	cr_image_free(c.img);
	return ret;
}
