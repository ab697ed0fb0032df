/* SPDX-License-Identifier: MIT */
/*
 * manifest.h - per-checkpoint manifests: everything needed to rebuild a checkpoint's namespace
 * and chunk references without the LMDB index.
 *
 * Owns: the manifest format, its builder (from the index) and its parser. File
 * STORE/manifests/<ckpt-ino>.manifest, written temp + fsync + rename:
 *
 *   file header (48 bytes, little-endian)
 *   +----------+---------+-------+----------+----------+-----------------+
 *   | CKPTMANI | version | flags | ckpt_ino | body_len | content id (16) |  then a zstd frame
 *   |   8 B    |  u32    |  u32  |   u64    |   u64    |                 |  holding body_len bytes
 *   +----------+---------+-------+----------+----------+-----------------+
 *   flags bit 0: sealed.

 *   body = u16 name_len, name (the checkpoint's name) | entries ...
 *   content id = XXH3-128 over the entries part only (independent of name and inode numbers)
 *
 *   entry (pre-order walk, children in byte order of their names):
 *     u32 id (1 = the checkpoint directory, then in walk order), u32 parent id (0 for id 1),
 *     u16 name_len, name (empty for id 1), u8 kind: 0 = hard link to an earlier entry,
 *     1 = inode.
 *     kind 0: u32 id of the entry that owns the inode.
 *     kind 1: u32 mode, u32 uid, u32 gid, u64 size, u64 rdev,
 *             atime, mtime, ctime as (u64 sec, u32 nsec),
 *             u32 nxattrs, each: u8 name_len, name, u32 value_len, value
 *             symlinks: u32 target_len, target
 *             regular files: u64 nruns, each run: u64 first chunk index, u32 count,
 *             count x 16-byte chunk ids (chunks outside every run are holes)
 *
 * Thread-safety: builder uses the caller's transaction; parser is pure.
 */
#ifndef CKPTFS_INDEX_MANIFEST_H
#define CKPTFS_INDEX_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "index/chunk_id.h"

#define MANIFEST_MAGIC	    "CKPTMANI"
#define MANIFEST_VERSION    1u
#define MANIFEST_HEADER_LEN 48u
#define MANIFEST_F_SEALED   1u
/* Bodies beyond this are refused as corrupt (a checkpoint of ~1 TiB has ~4 GiB of ids). */
#define MANIFEST_MAX_BODY (1ULL << 34)

struct store;
struct idx_txn;

struct manifest_header {
	uint32_t version;
	uint32_t flags;
	uint64_t ckpt_ino;
	uint64_t body_len;
	uint8_t content_id[STORE_CONTENT_ID_LEN];
};

struct manifest_entry {
	uint32_t id, parent_id;
	char name[256];
	bool is_link;	  /* hard link: only link_to is valid */
	uint32_t link_to; /* id of the entry that owns the inode */
	uint32_t mode, uid, gid;
	uint64_t size, rdev;
	struct timespec atime, mtime, ctime;
	const char *target; /* symlinks: points into the body, not NUL-terminated */
	uint32_t target_len;
};

struct manifest_ops {
	/* Each entry first, then its xattrs, then its chunks. Return < 0 to stop with that error.
	 */
	int (*entry)(void *ctx, const struct manifest_entry *e);
	int (*xattr)(void *ctx, uint32_t id, const char *name, size_t name_len, const void *value,
		     size_t value_len);
	int (*chunk)(void *ctx, uint32_t id, uint64_t idx, const struct chunk_id *chunk);
};

/* Builds the body for checkpoint ckpt_ino as the index shows it in txn. Caller frees *ret_body.
 * ret_content_id gets the content id. */
int manifest_build(struct idx_txn *txn, uint64_t ckpt_ino, const char *name, uint8_t **ret_body,
		   size_t *ret_len, uint8_t ret_content_id[STORE_CONTENT_ID_LEN]);
/* Compresses and writes body durably as manifests/<ckpt_ino>.manifest under store_dirfd. */
int manifest_write(int store_dirfd, uint64_t ckpt_ino, uint32_t flags, const uint8_t *body,
		   size_t len, const uint8_t content_id[STORE_CONTENT_ID_LEN]);
/* Reads and decompresses a manifest file (path relative to store_dirfd). -EBADMSG/-EOPNOTSUPP
 * name the file. Caller frees *ret_body. Verifies the content id. */
int manifest_read(int store_dirfd, const char *relpath, struct manifest_header *ret_hdr,
		  uint8_t **ret_body, size_t *ret_len);
/* Walks a body. ret_name (optional, 256 bytes) gets the checkpoint name. */
int manifest_parse(const uint8_t *body, size_t len, const struct manifest_ops *ops, void *ctx,
		   char *ret_name);

#endif
