// SPDX-License-Identifier: MIT
/*
 * wl_signals - signal state: handlers with SA_SIGINFO / SA_RESTART / SA_ONSTACK / SA_NODEFER /
 * SA_RESETHAND and sa_mask, SIG_IGN entries, a blocked mask, pending blocked signals (one
 * standard, two queued real-time ones with values) and an alternate signal stack.
 * After restore every disposition must match the one recorded before, the pending signals must
 * still be pending and be delivered with their values once unblocked, and each handler must
 * run the way its flags say.
 * Usage: wl_signals SCRATCH_DIR
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wl_common.h"

#define ALTSTACK_SIZE (64 * 1024)

static struct sigaction before[NSIG];
static int have_before[NSIG];
static void *altstack;

static volatile sig_atomic_t usr1_ran, usr1_code, usr1_mask_ok, usr2_ran, usr2_on_altstack, rt3_ran,
	rt3_nodefer_ok, urg_ran;
static volatile int rt1_values[4];
static volatile sig_atomic_t rt1_count, rt1_code_ok;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	sigset_t cur;

	usr1_ran++;
	usr1_code = si->si_code;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	usr1_mask_ok = sigismember(&cur, SIGUSR2) && sigismember(&cur, SIGHUP) &&
		       sigismember(&cur, SIGUSR1);
}

static void on_usr2(int sig)
{
	char here;

	usr2_ran++;
	usr2_on_altstack = (uintptr_t)&here >= (uintptr_t)altstack &&
			   (uintptr_t)&here < (uintptr_t)altstack + ALTSTACK_SIZE;
}

static void on_rt3(int sig, siginfo_t *si, void *uc)
{
	sigset_t cur;

	rt3_ran++;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	rt3_nodefer_ok = !sigismember(&cur, sig);
}

static void on_urg(int sig)
{
	urg_ran++;
}

static void on_rt1(int sig, siginfo_t *si, void *uc)
{
	if (rt1_count < 4)
		rt1_values[rt1_count] = si->si_value.sival_int;
	rt1_count++;
	rt1_code_ok = si->si_code == SI_QUEUE && si->si_pid == getpid();
}

static int install(int sig, void *handler, int flags, const int *mask_sigs)
{
	struct sigaction sa = {.sa_flags = flags};

	if (flags & SA_SIGINFO)
		sa.sa_sigaction = handler;
	else
		sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	for (; mask_sigs && *mask_sigs; mask_sigs++)
		sigaddset(&sa.sa_mask, *mask_sigs);
	if (sigaction(sig, &sa, NULL) < 0) {
		wl_fail("sigaction(%d): %s", sig, strerror(errno));
		return -1;
	}
	return 0;
}

static int setup(void)
{
	stack_t ss;
	sigset_t block;
	union sigval v;

	altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	if (altstack == MAP_FAILED)
		return -1;
	ss = (stack_t){.ss_sp = altstack, .ss_size = ALTSTACK_SIZE};
	if (sigaltstack(&ss, NULL) < 0) {
		wl_fail("sigaltstack: %s", strerror(errno));
		return -1;
	}
	if (wl_catch_sigterm(SA_RESTART) < 0 ||
	    install(SIGUSR1, on_usr1, SA_SIGINFO | SA_RESTART, (const int[]){SIGUSR2, SIGHUP, 0}) ||
	    install(SIGUSR2, on_usr2, SA_ONSTACK, NULL) ||
	    install(SIGRTMIN + 3, on_rt3, SA_SIGINFO | SA_NODEFER | SA_RESETHAND, NULL) ||
	    install(SIGURG, on_urg, 0, (const int[]){SIGALRM, 0}) ||
	    install(SIGRTMIN + 1, on_rt1, SA_SIGINFO | SA_RESTART, NULL) ||
	    install(SIGHUP, SIG_IGN, 0, NULL) || install(SIGINT, SIG_IGN, 0, NULL) ||
	    install(SIGPIPE, SIG_IGN, 0, NULL))
		return -1;

	sigemptyset(&block);
	sigaddset(&block, SIGURG);
	sigaddset(&block, SIGRTMIN + 1);
	sigaddset(&block, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &block, NULL) < 0)
		return -1;
	/* One standard signal and two queued real-time ones stay pending across the dump. */
	raise(SIGURG);
	v.sival_int = 42;
	sigqueue(getpid(), SIGRTMIN + 1, v);
	v.sival_int = 43;
	sigqueue(getpid(), SIGRTMIN + 1, v);

	for (int sig = 1; sig < NSIG; sig++)
		have_before[sig] = sigaction(sig, NULL, &before[sig]) == 0;
	return 0;
}

static void verify_dispositions(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction now;

		if (!have_before[sig])
			continue;
		if (sigaction(sig, NULL, &now) < 0) {
			wl_fail("sigaction(%d) query: %s", sig, strerror(errno));
			continue;
		}
		if (now.sa_handler != before[sig].sa_handler)
			wl_fail("signal %d: handler %p, expected %p", sig, (void *)now.sa_handler,
				(void *)before[sig].sa_handler);
		if (now.sa_flags != before[sig].sa_flags)
			wl_fail("signal %d: flags %#x, expected %#x", sig, (unsigned)now.sa_flags,
				(unsigned)before[sig].sa_flags);
		for (int m = 1; m < NSIG; m++)
			if (sigismember(&now.sa_mask, m) != sigismember(&before[sig].sa_mask, m)) {
				wl_fail("signal %d: sa_mask differs at signal %d", sig, m);
				break;
			}
	}
}

static void verify_masks(void)
{
	sigset_t cur, pend;
	stack_t ss;

	sigprocmask(SIG_BLOCK, NULL, &cur);
	for (int sig = 1; sig < 65; sig++) {
		int want = sig == SIGURG || sig == SIGRTMIN + 1 || sig == SIGWINCH;

		if (sig == 32 || sig == 33) /* glibc's internal signals: not ours to judge */
			continue;
		if (sigismember(&cur, sig) != want)
			wl_fail("signal %d is %sblocked, expected %sblocked", sig,
				sigismember(&cur, sig) ? "" : "not ", want ? "" : "not ");
	}
	sigpending(&pend);
	for (int sig = 1; sig < 65; sig++) {
		int want = sig == SIGURG || sig == SIGRTMIN + 1;

		if (sigismember(&pend, sig) != want)
			wl_fail("signal %d is %spending, expected %spending", sig,
				sigismember(&pend, sig) ? "" : "not ", want ? "" : "not ");
	}
	if (sigaltstack(NULL, &ss) < 0 || ss.ss_sp != altstack || ss.ss_size != ALTSTACK_SIZE ||
	    ss.ss_flags != 0)
		wl_fail("sigaltstack is %p+%zu flags %d, expected %p+%d flags 0", ss.ss_sp,
			ss.ss_size, ss.ss_flags, altstack, ALTSTACK_SIZE);
}

static void verify_delivery(void)
{
	sigset_t unblock;
	struct sigaction sa;

	if (urg_ran || rt1_count)
		wl_fail("blocked signals were delivered while blocked (urg %d, rt %d)",
			(int)urg_ran, (int)rt1_count);
	sigemptyset(&unblock);
	sigaddset(&unblock, SIGURG);
	sigaddset(&unblock, SIGRTMIN + 1);
	sigprocmask(SIG_UNBLOCK, &unblock, NULL);
	if (urg_ran != 1)
		wl_fail("pending SIGURG ran its handler %d times after unblocking, expected 1",
			(int)urg_ran);
	if (rt1_count != 2 || rt1_values[0] != 42 || rt1_values[1] != 43)
		wl_fail("queued SIGRTMIN+1 delivered %d times with values %d,%d; expected 2: 42,43",
			(int)rt1_count, rt1_values[0], rt1_values[1]);
	else if (!rt1_code_ok)
		wl_fail("queued SIGRTMIN+1 lost its siginfo (si_code/si_pid)");

	raise(SIGUSR1);
	if (usr1_ran != 1 || usr1_code != SI_TKILL || !usr1_mask_ok)
		wl_fail("SIGUSR1 handler: ran %d, si_code %d, mask ok %d", (int)usr1_ran,
			(int)usr1_code, (int)usr1_mask_ok);
	raise(SIGUSR2);
	if (usr2_ran != 1 || !usr2_on_altstack)
		wl_fail("SIGUSR2 handler: ran %d, on the alternate stack %d", (int)usr2_ran,
			(int)usr2_on_altstack);
	raise(SIGHUP); /* ignored: we must still be here */
	raise(SIGRTMIN + 3);
	if (rt3_ran != 1 || !rt3_nodefer_ok)
		wl_fail("SIGRTMIN+3 handler: ran %d, unblocked inside (SA_NODEFER) %d",
			(int)rt3_ran, (int)rt3_nodefer_ok);
	if (sigaction(SIGRTMIN + 3, NULL, &sa) < 0 || sa.sa_handler != SIG_DFL)
		wl_fail("SIGRTMIN+3 has SA_RESETHAND but its handler was not reset");
}

int main(int argc, char **argv)
{
	if (setup() < 0) {
		wl_fail("setup failed");
		return wl_finish();
	}
	wl_ready();
	wl_wait_sigterm();
	verify_dispositions();
	verify_masks();
	verify_delivery();
	return wl_finish();
}
