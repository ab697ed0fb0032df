// SPDX-License-Identifier: MIT
/*
 * wl_timers - per-process state that is neither memory nor fds: interval timers
 * (ITIMER_REAL every 10 ms, shorter than any freeze, ITIMER_VIRTUAL every 20 ms of user CPU) that
 * must keep firing after restore, changed rlimits (soft RLIMIT_NOFILE and RLIMIT_CORE, a lowered
 * hard RLIMIT_MSGQUEUE), umask, cwd, the process name (PR_SET_NAME) and the personality (with
 * UNAME26, which changes what uname(2) reports). The process spins in user space so that
 * ITIMER_VIRTUAL runs.
 * Usage: wl_timers SCRATCH_DIR
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "wl_common.h"

#define REAL_US	   10000
#define VIRTUAL_US 20000
#define COMM	   "wl-timers-cr"
#define PERSONA	   (PER_LINUX | ADDR_NO_RANDOMIZE | UNAME26)

static volatile sig_atomic_t alarms, vtalarms;
static struct rlimit limits_before[RLIM_NLIMITS];
static char cwd_before[PATH_MAX];

static void on_alarm(int sig)
{
	alarms++;
}

static void on_vtalarm(int sig)
{
	vtalarms++;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void spin_until(double end)
{
	volatile unsigned long x = 0;

	while (now_s() < end)
		for (int i = 0; i < 100000; i++)
			x += (unsigned long)i;
	(void)x;
}

static int setup(const char *dir)
{
	struct sigaction sa = {.sa_flags = SA_RESTART};
	struct itimerval real = {{0, REAL_US}, {0, REAL_US}};
	struct itimerval virt = {{0, VIRTUAL_US}, {0, VIRTUAL_US}};
	struct rlimit rl;

	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_vtalarm;
	sigaction(SIGVTALRM, &sa, NULL);

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	rl.rlim_cur = rl.rlim_max < 777 ? rl.rlim_max : 777;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_max >= 4096000) {
		rl.rlim_cur = 4096000;
		setrlimit(RLIMIT_CORE, &rl);
	}
	/* Lowering a hard limit needs no privilege; raising it back would (no CAP_SYS_RESOURCE). */
	if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 && rl.rlim_max > 400000) {
		rl.rlim_max = 400000;
		rl.rlim_cur = rl.rlim_cur > 400000 ? 400000 : rl.rlim_cur;
		setrlimit(RLIMIT_MSGQUEUE, &rl);
	}
	for (int r = 0; r < RLIM_NLIMITS; r++)
		getrlimit(r, &limits_before[r]);

	umask(027);
	if (chdir(dir) < 0 || !getcwd(cwd_before, sizeof(cwd_before))) {
		wl_fail("chdir '%s': %s", dir, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NAME, COMM, 0, 0, 0) < 0 || personality(PERSONA) < 0) {
		wl_fail("prctl/personality: %s", strerror(errno));
		return -1;
	}
	if (setitimer(ITIMER_REAL, &real, NULL) < 0 || setitimer(ITIMER_VIRTUAL, &virt, NULL) < 0) {
		wl_fail("setitimer: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void verify_timers(void)
{
	struct itimerval real, virt;
	int a0, v0;

	/* A timer that has just fired reads as 0 until its signal is dequeued and it is rearmed:
	 * look a few times, 10 ms apart, before calling it disarmed. */
	for (int tries = 0; tries < 5; tries++) {
		if (getitimer(ITIMER_REAL, &real) < 0 || getitimer(ITIMER_VIRTUAL, &virt) < 0) {
			wl_fail("getitimer: %s", strerror(errno));
			return;
		}
		if ((real.it_value.tv_sec || real.it_value.tv_usec) &&
		    (virt.it_value.tv_sec || virt.it_value.tv_usec))
			break;
		spin_until(now_s() + 0.01);
	}
	wl_say("ITIMER_REAL %ld.%06ld/%ld.%06ld ITIMER_VIRTUAL %ld.%06ld/%ld.%06ld (value/interval)",
	       (long)real.it_value.tv_sec, (long)real.it_value.tv_usec,
	       (long)real.it_interval.tv_sec, (long)real.it_interval.tv_usec,
	       (long)virt.it_value.tv_sec, (long)virt.it_value.tv_usec,
	       (long)virt.it_interval.tv_sec, (long)virt.it_interval.tv_usec);
	if (real.it_interval.tv_sec != 0 || real.it_interval.tv_usec != REAL_US)
		wl_fail("ITIMER_REAL interval is %ld.%06ld s, expected 0.%06d",
			(long)real.it_interval.tv_sec, (long)real.it_interval.tv_usec, REAL_US);
	if (virt.it_interval.tv_sec != 0 || virt.it_interval.tv_usec != VIRTUAL_US)
		wl_fail("ITIMER_VIRTUAL interval is %ld.%06ld s, expected 0.%06d",
			(long)virt.it_interval.tv_sec, (long)virt.it_interval.tv_usec, VIRTUAL_US);
	if (!real.it_value.tv_sec && !real.it_value.tv_usec)
		wl_fail("ITIMER_REAL is disarmed");
	if (!virt.it_value.tv_sec && !virt.it_value.tv_usec)
		wl_fail("ITIMER_VIRTUAL is disarmed");
	/* Both must keep firing: at least 0.6 s of wall time (~60 periods of ITIMER_REAL) and
	 * 0.3 s of our own CPU time (~15 of ITIMER_VIRTUAL); CPU time, not wall time, because a
	 * busy machine may give us little of it. */
	a0 = alarms;
	v0 = vtalarms;
	double w0 = now_s(), c0 = cpu_s();
	while ((now_s() < w0 + 0.6 || cpu_s() < c0 + 0.3) && now_s() < w0 + 20)
		spin_until(now_s() + 0.01);
	if (alarms - a0 < 5)
		wl_fail("ITIMER_REAL fired %d times in %.2f s, expected about 60", alarms - a0,
			now_s() - w0);
	if (vtalarms - v0 < 5)
		wl_fail("ITIMER_VIRTUAL fired %d times in %.2f s of CPU time, expected about 15",
			vtalarms - v0, cpu_s() - c0);
}

static void verify_process(void)
{
	char name[17] = "", cwd[PATH_MAX];
	struct utsname u;
	mode_t mask = umask(0);
	int persona = personality(0xffffffff);

	umask(mask);
	if (mask != 027)
		wl_fail("umask is %03o, expected 027", (unsigned)mask);
	for (int r = 0; r < RLIM_NLIMITS; r++) {
		struct rlimit rl;

		if (getrlimit(r, &rl) < 0 || rl.rlim_cur != limits_before[r].rlim_cur ||
		    rl.rlim_max != limits_before[r].rlim_max)
			wl_fail("rlimit %d is %llu/%llu, expected %llu/%llu", r,
				(unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
				(unsigned long long)limits_before[r].rlim_cur,
				(unsigned long long)limits_before[r].rlim_max);
	}
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, cwd_before))
		wl_fail("cwd is '%s', expected '%s'", cwd, cwd_before);
	prctl(PR_GET_NAME, name, 0, 0, 0);
	if (strcmp(name, COMM))
		wl_fail("process name is '%s', expected '%s'", name, COMM);
	if (persona != PERSONA)
		wl_fail("personality is %#x, expected %#x", persona, PERSONA);
	if (uname(&u) < 0 || strncmp(u.release, "2.6.", 4))
		wl_fail("uname release '%s' under UNAME26, expected 2.6.x", u.release);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		wl_fail("usage: wl_timers SCRATCH_DIR");
		return wl_finish();
	}
	wl_catch_sigterm(SA_RESTART);
	if (setup(argv[1]) < 0) {
		wl_fail("setup failed");
		return wl_finish();
	}
	wl_ready();
	while (!wl_stop)
		spin_until(now_s() + 0.05);
	verify_process();
	verify_timers();
	return wl_finish();
}
