/* SPDX-License-Identifier: MIT */
/*
 * read_prio.h - reads are decoded at the scheduling priority of the thread that asked.
 *
 * Owns the daemon's per-request priority switch. The worker threads serve every reader at the
 * daemon's own priority; without this a background reader (the lazy page server's prefetch
 * threads run SCHED_IDLE, a backup may run under nice 19) would have its pages decoded at
 * normal priority and take the CPU from the very programs it works for.
 */
#ifndef CKPTFS_FS_READ_PRIO_H
#define CKPTFS_FS_READ_PRIO_H

#include <stdbool.h>
#include <sys/types.h>

struct read_prio {
	pid_t requester;
	bool lowered; /* this thread runs at the requester's priority until read_prio_leave */
};

/* Finds out once whether a worker can lower its priority and get the daemon's back (root or
 * CAP_SYS_NICE, or a high RLIMIT_NICE); if it cannot, requests are served as before. */
void read_prio_init(void);

/* Lowers the calling thread to the priority of thread rp->requester if that is lower: a
 * SCHED_IDLE requester, or one with a higher nice value. Best effort: on any error the read
 * is served at the daemon's priority. Used as store_read_hooks (void * is a struct read_prio):
 * only the decoding runs lowered, never a section holding a store lock. */
void read_prio_enter(void *rp);

/* Gives the calling thread the daemon's priority back. */
void read_prio_leave(void *rp);

#endif
