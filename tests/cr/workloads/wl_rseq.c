// SPDX-License-Identifier: MIT
/*
 * wl_rseq - glibc registers an rseq area for the main thread at startup (glibc >= 2.35). After
 * restore that registration must still be active: the kernel must keep the area's cpu_id up
 * to date when the process moves between CPUs, and registering the same area again must fail
 * with EBUSY (the kernel already has it).
 * Usage: wl_rseq SCRATCH_DIR
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wl_common.h"

static struct rseq *rseq_area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

static int raw_getcpu(void)
{
	unsigned int cpu = 0;

	if (syscall(SYS_getcpu, &cpu, NULL, NULL) < 0)
		return -1;
	return (int)cpu;
}

static int move_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

/* Pin to each CPU we may run on; the area must report it, as getcpu(2) does. */
static void check_tracking(const char *when)
{
	cpu_set_t allowed;
	int checked = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0) {
		wl_fail("sched_getaffinity: %s", strerror(errno));
		return;
	}
	for (int cpu = 0; cpu < CPU_SETSIZE && checked < 4; cpu++) {
		volatile struct rseq *rs = rseq_area();

		if (!CPU_ISSET(cpu, &allowed))
			continue;
		if (move_to(cpu) < 0) {
			wl_fail("sched_setaffinity to cpu %d: %s", cpu, strerror(errno));
			continue;
		}
		/* Migration happens by the time the syscall returns; the area is written on
		 * the way back to user space. */
		if (raw_getcpu() != cpu)
			wl_fail("%s: getcpu says %d after pinning to %d", when, raw_getcpu(), cpu);
		if ((int)rs->cpu_id != cpu || (int)rs->cpu_id_start != cpu)
			wl_fail("%s: rseq cpu_id %d cpu_id_start %u on cpu %d (not updated by the "
				"kernel)",
				when, (int)rs->cpu_id, rs->cpu_id_start, cpu);
		if (sched_getcpu() != cpu)
			wl_fail("%s: sched_getcpu says %d on cpu %d", when, sched_getcpu(), cpu);
		checked++;
	}
	sched_setaffinity(0, sizeof(allowed), &allowed);
}

int main(int argc, char **argv)
{
	long ret;

	wl_catch_sigterm(0);
	if (__rseq_size == 0) {
		wl_fail("glibc did not register rseq (__rseq_size is 0; GLIBC_TUNABLES?)");
		return wl_finish();
	}
	if ((int)rseq_area()->cpu_id < 0) {
		wl_fail("rseq cpu_id is %d before any checkpoint", (int)rseq_area()->cpu_id);
		return wl_finish();
	}
	check_tracking("before the checkpoint");
	wl_ready();
	wl_wait_sigterm();

	/* glibc registers sizeof(struct rseq) (32); __rseq_size is the size of the used part. */
	ret = syscall(SYS_rseq, rseq_area(), sizeof(struct rseq), 0, RSEQ_SIG);
	if (ret == 0)
		wl_fail("registering the glibc rseq area again succeeded: it was not registered");
	else if (errno != EBUSY)
		wl_fail("registering the glibc rseq area again failed with %s, expected EBUSY",
			strerror(errno));
	check_tracking("after SIGTERM");
	return wl_finish();
}
