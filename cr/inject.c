// SPDX-License-Identifier: MIT
/* inject.c - run system calls inside a stopped tracee (see ptrace_priv.h). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/error.h"
#include "cr/ptrace_priv.h"

int wait_stopped(pid_t pid, int *ret_status)
{
	int status;

	for (;;) {
		pid_t w = waitpid(pid, &status, __WALL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		break;
	}
	if (!WIFSTOPPED(status)) {
		cr_error("pid %d %s while stopped for checkpoint/restore", pid,
			 WIFSIGNALED(status) ? "was killed by a signal" : "exited");
		return -ESRCH;
	}
	*ret_status = status;
	return 0;
}

/* Resumes to the next syscall stop; any other stop means something raced with us. */
static int step_to_syscall_stop(pid_t pid)
{
	int status = 0, ret;

	if (ptrace(PTRACE_SYSCALL, pid, 0, 0) < 0)
		return -errno;
	ret = wait_stopped(pid, &status);
	if (ret < 0)
		return ret;
	if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
		cr_error("pid %d stopped by signal %d during an injected system call", pid,
			 WSTOPSIG(status));
		return -EINTR;
	}
	return 0;
}

int inject_syscall(pid_t pid, uint64_t ip, const struct user_regs_struct *base, long nr,
		   const uint64_t a[6], int64_t *ret_val)
{
	struct user_regs_struct regs = *base;
	int ret;

	regs.rip = ip;
	regs.rax = (uint64_t)nr;
	/* orig_rax -1: the kernel must not apply syscall-restart fixups to these regs. */
	regs.orig_rax = (uint64_t)-1;
	regs.rdi = a[0];
	regs.rsi = a[1];
	regs.rdx = a[2];
	regs.r10 = a[3];
	regs.r8 = a[4];
	regs.r9 = a[5];
	if (ptrace(PTRACE_SETREGS, pid, 0, &regs) < 0)
		return -errno;
	ret = step_to_syscall_stop(pid); /* entry */
	if (ret < 0)
		return ret;
	ret = step_to_syscall_stop(pid); /* exit */
	if (ret < 0)
		return ret;
	if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
		return -errno;
	*ret_val = (int64_t)regs.rax;
	return 0;
}

int inject_call(pid_t pid, uint64_t ip, const struct user_regs_struct *base, int64_t *ret_val,
		long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
		uint64_t a6)
{
	const uint64_t a[6] = {a1, a2, a3, a4, a5, a6};
	return inject_syscall(pid, ip, base, nr, a, ret_val);
}

int mem_read(int memfd, uint64_t addr, void *buf, size_t len)
{
	int ret = pread_full(memfd, buf, len, addr);
	return ret == -EBADMSG ? -EIO : ret;
}

int mem_write(int memfd, uint64_t addr, const void *buf, size_t len)
{
	return pwrite_full(memfd, buf, len, addr);
}
