/* SPDX-License-Identifier: MIT */
/*
 * fuse_keeper.h - the keeper: a small process that holds a checkpointed FUSE daemon's /dev/fuse
 * fds between its dump and its restore, so the kernel keeps the connection (and the mount)
 * alive and queues requests instead of failing them with ENOTCONN.
 *
 * Owns: the keeper process and its protocol. One keeper per dump (a --leave-running dump too),
 * started by the dumper with a double fork (it is never the dumper's child, it has its own
 * session and holds no other fd). Invariant kept by the dumper, not by the keeper: at most one
 * keeper per connection - a new dump retires the older keepers of its connections
 * (fuse_conn_holders + fuse_keeper_retire), so only the newest image of a connection restores.
 * It listens on the abstract unix socket "ckptfs-fuse-keeper-<32 hex digits of its id>"; the
 * id is random and recorded in the image. A client must be root or the keeper's uid.
 *
 *   request  (client -> keeper, one SOCK_SEQPACKET message):
 *     u8 magic[8] "CKFKEEP1" | u8 id[16] | u32 op (1 take, 2 probe, 3 confirm)
 *   answer   (keeper -> client):
 *     u8 magic[8] | u32 status (0 or an errno) | u32 nr | u32 flags | nr x { i32 fd, u32 conn }
 *     flags: FUSE_KEEPER_F_* given at start (0 in an error answer)
 *     take: the nr fds follow as SCM_RIGHTS, in that order; probe: no fds
 *   confirm  is only valid on the connection that took: the keeper answers, closes its copies
 *            and exits. A taker that disconnects without confirming leaves the keeper as it was.
 *
 * The keeper exits by itself when all its connections are gone (aborted or unmounted: the fd
 * polls POLLERR), so a dead mount leaves no keeper behind, and on SIGTERM (retired by a newer
 * dump: its copies close, the connection lives on in the daemon or the newer keeper). Every
 * socket wait has a timeout.
 * Thread-safety: none; functions are for one thread.
 */
#ifndef CKPTFS_CR_FUSE_KEEPER_H
#define CKPTFS_CR_FUSE_KEEPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define FUSE_KEEPER_ID_LEN  16
#define FUSE_KEEPER_MAX_FDS 64
/* Longest wait for any single answer from a keeper or a client. */
#define FUSE_KEEPER_TIMEOUT_MS 10000

/* The dump left its daemon running: the original still serves the connection, the keeper only
 * holds copies so that the connection outlives the original (restore rolls the daemon back). */
#define FUSE_KEEPER_F_LEAVE_RUNNING 1u

struct fuse_keeper_ent {
	int32_t fd;    /* the fd number in the dumped process */
	uint32_t conn; /* its connection number */
};

/* Starts a keeper holding copies of fds[0..n) (described by ents). On success the keeper is
 * running and listening; *ret_pid is its pid and ret_id its id. */
int fuse_keeper_start(const int *fds, const struct fuse_keeper_ent *ents, uint32_t n,
		      uint32_t flags, uint8_t ret_id[FUSE_KEEPER_ID_LEN], pid_t *ret_pid);

/* A taken set of fds, held open until confirmed or dropped. */
struct fuse_keeper_take {
	int sock;
	uint8_t id[FUSE_KEEPER_ID_LEN];
	uint32_t nr;
	uint32_t flags; /* FUSE_KEEPER_F_* of the keeper */
	struct fuse_keeper_ent ents[FUSE_KEEPER_MAX_FDS];
	int fds[FUSE_KEEPER_MAX_FDS];
};

/* Connects and receives the fds. -ECONNREFUSED/-ENOENT: no keeper with that id. */
int fuse_keeper_take(const uint8_t id[FUSE_KEEPER_ID_LEN], struct fuse_keeper_take **ret);
/* Tells the keeper the fds have a new owner; it exits. Frees tk. */
int fuse_keeper_confirm(struct fuse_keeper_take *tk);
/* Closes our copies without confirming: the keeper keeps holding the connection. */
void fuse_keeper_take_free(struct fuse_keeper_take *tk);

/* 0 if a keeper with that id answers; *ret_nr is how many fds it holds, *ret_flags its
 * FUSE_KEEPER_F_* (both may be NULL). */
int fuse_keeper_probe(const uint8_t id[FUSE_KEEPER_ID_LEN], uint32_t *ret_nr, uint32_t *ret_flags);

/* A process holding a /dev/fuse open file of some connection (see fuse_conn_holders). */
struct fuse_conn_holder {
	pid_t pid;
	uid_t uid;   /* real uid */
	bool keeper; /* its comm is "ckptfs-keeper" */
};

/* Scans /proc for the processes other than the caller with an fd on connection conn (by the
 * "fuse_connection:" line of fdinfo; no FUSE mount is touched). Up to cap into h[]; *ret_n is
 * how many were found (may exceed cap). Processes that vanish or hide their fds are skipped. */
int fuse_conn_holders(uint32_t conn, struct fuse_conn_holder *h, uint32_t cap, uint32_t *ret_n);

/* Whether pid holds an fd on connection conn (false if it is gone or unreadable). */
bool fuse_pid_holds_conn(pid_t pid, uint32_t conn);

/* Retires the keeper pid of connection conn: checks through a pidfd that it is still a
 * "ckptfs-keeper" holding conn and ours (root, or the caller's uid), sends SIGTERM and waits
 * (bounded) for it to exit. 0 once it is gone, -EPERM if it is not ours, -ESRCH if pid is no
 * such keeper any more, -ETIMEDOUT. */
int fuse_keeper_retire(pid_t pid, uint32_t conn);

/* "ckptfs-fuse-keeper-<hex>" into buf (at least 64 bytes). */
void fuse_keeper_name(const uint8_t id[FUSE_KEEPER_ID_LEN], char *buf, size_t size);

#endif
