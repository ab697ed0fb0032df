// SPDX-License-Identifier: MIT
/*
 * restore_child.c - the first instructions of a restored process: clone3() with the old pid,
 * then plain preparation with raw system calls until it stops itself for the tracer.
 *
 * Built without sanitizers and without the stack protector (see cr/meson.build); uses no libc
 * function after clone3, because glibc's cached tid is stale in a raw clone child and the
 * sanitizer runtime is not prepared for it.
 */
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "cr/restore_priv.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static inline long rsys(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

__attribute__((noreturn)) static void child_die(int step)
{
	for (;;)
		rsys(SYS_exit_group, CHILD_FAIL_BASE + step, 0, 0, 0, 0, 0);
}

__attribute__((noreturn)) static void child_main(const struct child_plan *p)
{
	struct child_fd *fds = p->fds;
	int base = p->max_fd + 1;

	/* Die with the restorer until the restore is complete (cleared by injection). */
	if (rsys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0, 0) < 0)
		child_die(CHILD_STEP_PDEATHSIG);

	/* Move every source above all numbers in use, then drop everything below and place
	 * each one at its number: no source can be clobbered by an earlier placement. */
	for (int i = 0; i < p->nr_fds; i++) {
		long r = rsys(SYS_fcntl, fds[i].src, F_DUPFD_CLOEXEC, base, 0, 0, 0);
		if (r < 0)
			child_die(CHILD_STEP_FDS_UP);
		fds[i].tmp = (int)r;
	}
	if (base > 0 && rsys(SYS_close_range, 0, base - 1, 0, 0, 0, 0) < 0)
		child_die(CHILD_STEP_FDS_UP);
	for (int i = 0; i < p->nr_fds; i++)
		if (rsys(SYS_dup3, fds[i].tmp, fds[i].target, fds[i].cloexec ? O_CLOEXEC : 0, 0, 0,
			 0) < 0)
			child_die(CHILD_STEP_FDS_PLACE);
	if (rsys(SYS_close_range, base, ~0U, 0, 0, 0, 0) < 0)
		child_die(CHILD_STEP_FDS_PLACE);

	if (p->setsid && rsys(SYS_setsid, 0, 0, 0, 0, 0, 0) < 0)
		child_die(CHILD_STEP_SETSID);
	if (p->setpgid && rsys(SYS_setpgid, 0, 0, 0, 0, 0, 0) < 0)
		child_die(CHILD_STEP_SETPGID);
	if (p->cwd && rsys(SYS_chdir, (long)p->cwd, 0, 0, 0, 0, 0) < 0)
		child_die(CHILD_STEP_CWD);
	rsys(SYS_umask, p->umask, 0, 0, 0, 0, 0);
	rsys(SYS_personality, p->personality, 0, 0, 0, 0, 0);
	rsys(SYS_prctl, PR_SET_NAME, (long)p->comm, 0, 0, 0, 0);

	long t = rsys(SYS_mmap, (long)p->tramp_addr, (long)p->tramp_len,
		      PROT_READ | PROT_WRITE | PROT_EXEC,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (t != (long)p->tramp_addr)
		child_die(CHILD_STEP_TRAMPOLINE);
	volatile uint8_t *code = (volatile uint8_t *)(uintptr_t)p->tramp_addr;
	code[0] = 0x0f; /* syscall */
	code[1] = 0x05;
	code[2] = 0xcc; /* int3: never reached, the tracer sets rip at each exit stop */

	if (rsys(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0, 0, 0) < 0)
		child_die(CHILD_STEP_TRACEME);
	rsys(SYS_kill, rsys(SYS_getpid, 0, 0, 0, 0, 0, 0), SIGSTOP, 0, 0, 0, 0);
	child_die(CHILD_STEP_NOT_TRACED);
}

pid_t restore_child_spawn(const struct child_plan *plan)
{
	uint64_t tid = (uint64_t)plan->pid;
	struct clone_args args = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&tid,
		.set_tid_size = 1,
	};

	long r = rsys(SYS_clone3, (long)&args, sizeof(args), 0, 0, 0, 0);
	if (r == 0)
		child_main(plan);
	return (pid_t)r;
}

const char *child_step_name(int step)
{
	switch (step) {
	case CHILD_STEP_PDEATHSIG:
		return "setting the parent-death signal";
	case CHILD_STEP_FDS_UP:
	case CHILD_STEP_FDS_PLACE:
		return "placing file descriptors";
	case CHILD_STEP_SETSID:
		return "creating its session";
	case CHILD_STEP_SETPGID:
		return "creating its process group";
	case CHILD_STEP_CWD:
		return "changing to its working directory";
	case CHILD_STEP_TRAMPOLINE:
		return "mapping the syscall trampoline";
	case CHILD_STEP_TRACEME:
	case CHILD_STEP_NOT_TRACED:
		return "attaching to the restorer";
	}
	return "unknown step";
}
