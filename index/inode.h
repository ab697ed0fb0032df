/* SPDX-License-Identifier: MIT */
/*
 * inode.h - the inode record stored in the index (IDX_INODES) and its key helpers.
 *
 * Owns: the byte layout of an inode value (little-endian, 128 bytes + symlink target):
 *
 *    0 u32 mode        4 u32 uid        8 u32 gid       12 u32 flags (bit 0 sealed ckpt root)
 *   16 u64 nlink      24 u64 size      32 u64 rdev      40 u64 ckpt_ino
 *   48 u64 parent (directories: the parent directory; others: 0)
 *   56 u64 next_cookie (directories: next readdir cookie to hand out)
 *   64 u64 stored (compressed bytes of the chunks its file map references)
 *   72 u64 atime_sec  80 u32 atime_nsec 84 u64 mtime_sec 92 u32 mtime_nsec
 *   96 u64 ctime_sec 104 u32 ctime_nsec
 *  108 u8[16] content id (sealed checkpoint roots)  124 u32 reserved (0)
 *  128 symlink target bytes (no NUL), symlinks only
 *
 * Thread-safety: pure functions.
 */
#ifndef CKPTFS_INDEX_INODE_H
#define CKPTFS_INDEX_INODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "index/store.h"

#define INODE_REC_LEN  128u
#define INODE_F_SEALED 1u
#define INODE_MAX_LINK 4095u

struct inode {
	uint64_t ino;
	uint32_t mode, uid, gid, flags;
	uint64_t nlink, size, rdev, ckpt_ino, parent, next_cookie, stored;
	struct timespec atime, mtime, ctime;
	uint8_t content_id[STORE_CONTENT_ID_LEN];
	char *target; /* symlink target, NUL-terminated, owned (inode_done frees it) */
	size_t target_len;
};

/* Decodes a value; -EBADMSG if too short. Allocates target for symlinks. */
int inode_decode(uint64_t ino, const void *val, size_t len, struct inode *ret);
/* Encodes into buf of inode_encoded_len() bytes. */
size_t inode_encoded_len(const struct inode *in);
void inode_encode(const struct inode *in, void *buf);
/* Adds delta to the stored bytes, never going below zero. */
void inode_add_stored(struct inode *in, int64_t delta);
void inode_done(struct inode *in);
void inode_to_attr(const struct inode *in, bool sealed, struct store_attr *ret_attr);

#endif
