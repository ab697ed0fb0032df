/* SPDX-License-Identifier: MIT */
/*
 * ptrace_priv.h - running system calls inside a ptrace-stopped task, and kernel definitions the
 * installed 6.1 headers lack.
 *
 * Owns no state: every helper acts on the pid it is given, which the caller must have stopped
 * (PTRACE_SEIZE+INTERRUPT at dump, PTRACE_TRACEME+SIGSTOP at restore) and traced with
 * PTRACE_O_TRACESYSGOOD. Injection needs the address of a `syscall` instruction in the target.
 * Not thread-safe with respect to one tracee (ptrace is per tracer thread anyway).
 */
#ifndef CKPTFS_CR_PTRACE_PRIV_H
#define CKPTFS_CR_PTRACE_PRIV_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#ifndef ARCH_MAP_VDSO_64
#define ARCH_MAP_VDSO_64 0x2003
#endif

struct cr_rseq_config {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

/* Kernel layout of struct sigaction for rt_sigaction (not glibc's). */
struct cr_ksigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

/* Kernel return codes of interrupted system calls (never seen by user space normally). */
#define CR_ERESTARTSYS		 512
#define CR_ERESTARTNOINTR	 513
#define CR_ERESTARTNOHAND	 514
#define CR_ERESTART_RESTARTBLOCK 516

/*
 * Runs syscall nr(a[0..5]) in pid, starting from the register set base with rip moved to ip.
 * On return the task sits at the syscall's exit stop; *ret_val is the raw return value.
 * Returns 0, or -errno if the task did not stop as expected (e.g. it was killed).
 */
int inject_syscall(pid_t pid, uint64_t ip, const struct user_regs_struct *base, long nr,
		   const uint64_t a[6], int64_t *ret_val);

/* Same, with up to six arguments spelled out. */
int inject_call(pid_t pid, uint64_t ip, const struct user_regs_struct *base, int64_t *ret_val,
		long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
		uint64_t a6);

/* Reads/writes the target's memory through /proc/PID/mem (works through page protection). */
int mem_read(int memfd, uint64_t addr, void *buf, size_t len);
int mem_write(int memfd, uint64_t addr, const void *buf, size_t len);

/* Waits for pid to stop; returns the raw wait status or -errno. */
int wait_stopped(pid_t pid, int *ret_status);

#endif
