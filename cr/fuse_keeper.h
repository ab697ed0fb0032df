/* SPDX-License-Identifier: MIT */
/*
 * fuse_keeper.h - the keeper: a small process that holds a checkpointed FUSE daemon's /dev/fuse
 * fds between its dump and its restore, so the kernel keeps the connection (and the mount)
 * alive and queues requests instead of failing them with ENOTCONN.
 *
 * Owns: the keeper process and its protocol. One keeper per dump, started by the dumper with a
 * double fork (it is never the dumper's child, it has its own session and holds no other fd).
 * It listens on the abstract unix socket "ckptfs-fuse-keeper-<32 hex digits of its id>"; the
 * id is random and recorded in the image. A client must be root or the keeper's uid.
 *
 *   request  (client -> keeper, one SOCK_SEQPACKET message):
 *     u8 magic[8] "CKFKEEP1" | u8 id[16] | u32 op (1 take, 2 probe, 3 confirm)
 *   answer   (keeper -> client):
 *     u8 magic[8] | u32 status (0 or an errno) | u32 nr | nr x { i32 fd, u32 conn }
 *     take: the nr fds follow as SCM_RIGHTS, in that order; probe: no fds
 *   confirm  is only valid on the connection that took: the keeper answers, closes its copies
 *            and exits. A taker that disconnects without confirming leaves the keeper as it was.
 *
 * The keeper exits by itself when all its connections are gone (aborted or unmounted: the fd
 * polls POLLERR), so a dead mount leaves no keeper behind. Every socket wait has a timeout.
 * Thread-safety: none; functions are for one thread.
 */
#ifndef CKPTFS_CR_FUSE_KEEPER_H
#define CKPTFS_CR_FUSE_KEEPER_H

#include <stdint.h>
#include <sys/types.h>

#define FUSE_KEEPER_ID_LEN  16
#define FUSE_KEEPER_MAX_FDS 64
/* Longest wait for any single answer from a keeper or a client. */
#define FUSE_KEEPER_TIMEOUT_MS 10000

struct fuse_keeper_ent {
	int32_t fd;    /* the fd number in the dumped process */
	uint32_t conn; /* its connection number */
};

/* Starts a keeper holding copies of fds[0..n) (described by ents). On success the keeper is
 * running and listening; *ret_pid is its pid and ret_id its id. */
int fuse_keeper_start(const int *fds, const struct fuse_keeper_ent *ents, uint32_t n,
		      uint8_t ret_id[FUSE_KEEPER_ID_LEN], pid_t *ret_pid);

/* A taken set of fds, held open until confirmed or dropped. */
struct fuse_keeper_take {
	int sock;
	uint8_t id[FUSE_KEEPER_ID_LEN];
	uint32_t nr;
	struct fuse_keeper_ent ents[FUSE_KEEPER_MAX_FDS];
	int fds[FUSE_KEEPER_MAX_FDS];
};

/* Connects and receives the fds. -ECONNREFUSED/-ENOENT: no keeper with that id. */
int fuse_keeper_take(const uint8_t id[FUSE_KEEPER_ID_LEN], struct fuse_keeper_take **ret);
/* Tells the keeper the fds have a new owner; it exits. Frees tk. */
int fuse_keeper_confirm(struct fuse_keeper_take *tk);
/* Closes our copies without confirming: the keeper keeps holding the connection. */
void fuse_keeper_take_free(struct fuse_keeper_take *tk);

/* 0 if a keeper with that id answers; *ret_nr is how many fds it holds. */
int fuse_keeper_probe(const uint8_t id[FUSE_KEEPER_ID_LEN], uint32_t *ret_nr);

/* "ckptfs-fuse-keeper-<hex>" into buf (at least 64 bytes). */
void fuse_keeper_name(const uint8_t id[FUSE_KEEPER_ID_LEN], char *buf, size_t size);

#endif
