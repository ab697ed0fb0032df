// SPDX-License-Identifier: MIT
#include "fs/read_prio.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

/* The first version of the kernel's struct sched_attr (SCHED_ATTR_SIZE_VER0, 48 bytes); its
 * uapi header cannot be included next to <sched.h>. The size field tells the kernel which. */
struct sched_attr {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime;
	uint64_t sched_deadline;
	uint64_t sched_period;
};

/* Set by read_prio_init before the workers start; cleared if a worker cannot get back. */
static atomic_bool prio_usable;
static struct sched_attr daemon_attr;

static int get_attr(pid_t tid, struct sched_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->size = sizeof(*a);
	return syscall(SYS_sched_getattr, tid, a, (unsigned int)sizeof(*a), 0U) < 0 ? -errno : 0;
}

static int set_attr(const struct sched_attr *a)
{
	struct sched_attr c = *a;

	c.size = sizeof(c);
	return syscall(SYS_sched_setattr, 0, &c, 0U) < 0 ? -errno : 0;
}

/* Tries the round trip in a throwaway thread: a worker stuck at idle priority would serve
 * everybody at that priority from then on. */
static void *probe(void *arg)
{
	struct sched_attr idle = daemon_attr;
	bool *ok = arg;

	idle.sched_policy = SCHED_IDLE;
	idle.sched_nice = 19;
	*ok = set_attr(&idle) == 0 && set_attr(&daemon_attr) == 0;
	return NULL;
}

void read_prio_init(void)
{
	pthread_t t;
	bool ok = false;

	if (get_attr(0, &daemon_attr) < 0 ||
	    (daemon_attr.sched_policy != SCHED_OTHER && daemon_attr.sched_policy != SCHED_BATCH)) {
		log_debug(
			"reads are served at the daemon's priority (its policy cannot be read or is "
			"real-time)");
		return;
	}
	if (pthread_create(&t, NULL, probe, &ok) != 0)
		return;
	pthread_join(t, NULL);
	atomic_store(&prio_usable, ok);
	if (!ok)
		log_debug("reads are served at the daemon's priority: a thread cannot raise its "
			  "priority back (no CAP_SYS_NICE)");
}

void read_prio_enter(void *arg)
{
	struct read_prio *rp = arg;
	struct sched_attr want;

	rp->lowered = false;
	if (!atomic_load_explicit(&prio_usable, memory_order_relaxed) || rp->requester <= 0 ||
	    get_attr(rp->requester, &want) < 0)
		return;
	if (want.sched_policy == SCHED_IDLE) {
		if (daemon_attr.sched_policy == SCHED_IDLE)
			return;
	} else if (want.sched_policy != SCHED_OTHER && want.sched_policy != SCHED_BATCH) {
		return; /* real-time or deadline requesters get the daemon's (lower) priority */
	} else if (want.sched_nice <= daemon_attr.sched_nice) {
		return;
	}
	want.sched_flags = 0;
	want.sched_priority = 0;
	rp->lowered = set_attr(&want) == 0;
}

void read_prio_leave(void *arg)
{
	struct read_prio *rp = arg;
	int r;

	if (!rp->lowered)
		return;
	r = set_attr(&daemon_attr);
	if (r < 0) {
		/* One worker stays lowered; lower no more of them. */
		atomic_store_explicit(&prio_usable, false, memory_order_relaxed);
		log_warn("a FUSE worker thread could not get its priority back (%s); reads are "
			 "served at the daemon's priority from now on",
			 strerror(-r));
	}
	rp->lowered = false;
}
