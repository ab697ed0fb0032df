/* SPDX-License-Identifier: MIT */
/*
 * store.h - the public API of the ckptfs chunk store (index/ library).
 *
 * Owns: a store directory on disk — its header (format version, chunk-id secret), the append-only
 * pack files holding zstd-compressed 4 KiB chunks, the per-checkpoint manifests, and the LMDB index
 * (chunk id -> location + refcount; the namespace of checkpoints, directories, files, xattrs).
 * Packs + manifests are the truth; LMDB is a local index rebuildable from them
 * (store_rebuild_index()).
 *
 * The namespace is inode-based so that fs/ (FUSE low-level) is thin glue and the CLI uses the very
 * same code. Inode 1 (STORE_ROOT_INO) is the root; every directory directly below the root is a
 * checkpoint. Files are cut into 4 KiB chunks at 4 KiB-aligned offsets; an all-zero chunk is stored
 * as nothing (a hole). Chunk id = XXH3-128 keyed with the store's random secret.
 *
 * Writes are buffered in memory per inode (bounded: buffered data spills into packs), become
 * visible in the index at store_release() of the last open handle, and durable on store_fsync(),
 * store_ckpt_seal(), store_sync() or store_close() (docs/store-format.md has the contract). Reads
 * see buffered data. Nothing is indexed in LMDB before the pack bytes it points to are fsync'd.
 *
 * Errors: every function returns 0 (or a non-negative count) or -errno. Corrupt on-disk data is
 * -EBADMSG (a chunk whose bytes do not hash to its id reads as -EIO to callers of store_read()),
 * an unknown format version is -EOPNOTSUPP, a sealed checkpoint refuses writes with -EROFS.
 * The library logs at debug level only; it also keeps the last error's detail string
 * (store_last_error()) so the caller can print which object failed and why.
 *
 * Thread-safety: one struct store may be used from many threads at once (the FUSE daemon is
 * multi-threaded). Several processes may open the same store: LMDB serialises writers; a
 * STORE_OPEN_EXCLUSIVE open (the writable mount) takes a lock that a second one is refused with
 * -EBUSY. The CLI opens without that flag and may run while the store is mounted.
 */
#ifndef CKPTFS_INDEX_STORE_H
#define CKPTFS_INDEX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#define STORE_ROOT_INO	   1ULL
#define STORE_CHUNK_SIZE   4096u
#define STORE_CHUNK_ID_LEN 16u
/* A checkpoint's content id: XXH3-128 over its canonical manifest, printed as 32 hex digits. */
#define STORE_CONTENT_ID_LEN 16u
/* Name of the xattr that a writer sets on a checkpoint directory to seal it (any value). */
#define STORE_SEAL_XATTR "user.ckptfs.seal"
/* Read-only xattr on a sealed checkpoint directory: its content id in hex. */
#define STORE_CONTENT_ID_XATTR "user.ckptfs.content_id"

struct store;

enum store_open_flags {
	STORE_OPEN_RDONLY = 1u << 0,	/* no writes at all (fsck without repair, ls, show) */
	STORE_OPEN_EXCLUSIVE = 1u << 1, /* the writable mount: refuse a second one with -EBUSY */
};

/* Create a new store in path (created if missing; an empty dir is fine; a non-empty dir that is
 * not a store is refused with -ENOTEMPTY; an existing store with -EEXIST). */
int store_init(const char *path);
int store_open(const char *path, unsigned flags, struct store **ret_store);
/* Flushes buffered data, syncs, closes. Accepts NULL. */
void store_close(struct store *s);
/* Detail of the last failure in this thread: "pack 'packs/000003.pack' offset 81920: ..." */
const char *store_last_error(void);

/* --- attributes --------------------------------------------------------------------------- */

struct store_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t nlink;
	uint64_t blocks; /* 512-byte units of stored (compressed, deduplicated-as-owner) data */
	uint32_t mode;	 /* S_IFMT | permission bits */
	uint32_t uid, gid;
	uint64_t rdev;
	struct timespec atime, mtime, ctime;
	uint64_t ckpt_ino; /* the checkpoint directory this inode lives in (0 for the root) */
	bool sealed;	   /* its checkpoint is sealed: writes get -EROFS */
};

/* Bits for store_setattr's to_set. */
enum store_setattr_bits {
	STORE_SET_MODE = 1u << 0,
	STORE_SET_UID = 1u << 1,
	STORE_SET_GID = 1u << 2,
	STORE_SET_SIZE = 1u << 3, /* truncate / extend (extension reads as zeros) */
	STORE_SET_ATIME = 1u << 4,
	STORE_SET_MTIME = 1u << 5,
	STORE_SET_ATIME_NOW = 1u << 6,
	STORE_SET_MTIME_NOW = 1u << 7,
	STORE_SET_CTIME = 1u << 8,
};

int store_getattr(struct store *s, uint64_t ino, struct store_attr *ret_attr);
int store_setattr(struct store *s, uint64_t ino, const struct store_attr *attr, unsigned to_set,
		  struct store_attr *ret_attr);

/* --- namespace ---------------------------------------------------------------------------- */

/* -ENOENT if missing. Names are at most 255 bytes, no '/', not "." or "..". */
int store_lookup(struct store *s, uint64_t parent, const char *name, struct store_attr *ret_attr);
/* Regular files, FIFOs, device nodes, sockets (mode carries the type). -EEXIST if present. */
int store_mknod(struct store *s, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
		uint32_t uid, uint32_t gid, struct store_attr *ret_attr);
int store_mkdir(struct store *s, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
		uint32_t gid, struct store_attr *ret_attr);
int store_symlink(struct store *s, uint64_t parent, const char *name, const char *target,
		  uint32_t uid, uint32_t gid, struct store_attr *ret_attr);
/* Copies at most size-1 bytes plus a NUL; returns the target length. */
int store_readlink(struct store *s, uint64_t ino, char *buf, size_t size);
/* Hard link; -EXDEV across checkpoints (each checkpoint is a self-contained unit). */
int store_link(struct store *s, uint64_t ino, uint64_t newparent, const char *newname,
	       struct store_attr *ret_attr);
/* Drops the name; the inode lives on while store_open_inode() handles remain. */
int store_unlink(struct store *s, uint64_t parent, const char *name);
int store_rmdir(struct store *s, uint64_t parent, const char *name);

enum store_rename_flags {
	STORE_RENAME_NOREPLACE = 1u << 0,
	STORE_RENAME_EXCHANGE = 1u << 1,
};
/* Files and directories, within and across checkpoints. Renaming a top-level directory renames the
 * checkpoint. Moving a directory into its own subtree is -EINVAL. */
int store_rename(struct store *s, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, unsigned flags);

/* readdir: entries in a stable order with cookies that survive concurrent changes. The callback
 * gets the cookie to resume *after* this entry; returning non-zero stops the walk (that value is
 * not an error). "." and ".." are not reported (fs/ adds them). Start with cookie 0. */
typedef int (*store_readdir_cb)(void *ctx, const char *name, uint64_t ino, uint32_t mode,
				uint64_t next_cookie);
int store_readdir(struct store *s, uint64_t dir_ino, uint64_t cookie, store_readdir_cb cb,
		  void *ctx);

/* --- file data ---------------------------------------------------------------------------- */

/* Open handles keep unlinked inodes alive (freed at the last store_release()). write_access
 * fails with -EROFS on a sealed checkpoint. */
int store_open_inode(struct store *s, uint64_t ino, bool write_access);
int store_release(struct store *s, uint64_t ino, bool write_access);
/* Reads up to size bytes at off; returns bytes read (short only at EOF). A chunk that fails
 * verification is -EIO (logged with the chunk id and the file's inode). */
ssize_t store_read(struct store *s, uint64_t ino, void *buf, size_t size, uint64_t off);
/* Called around the part of a read that reads and decodes stored chunks, where the store holds
 * no lock another thread could wait for: the FUSE daemon serves a background reader's read
 * there at that reader's priority, and a starved worker then holds up nobody else. */
struct store_read_hooks {
	void (*decode_begin)(void *arg);
	void (*decode_end)(void *arg);
	void *arg;
};
ssize_t store_read_hooked(struct store *s, uint64_t ino, void *buf, size_t size, uint64_t off,
			  const struct store_read_hooks *hooks);
/* lseek(2) SEEK_DATA (want_data) or SEEK_HOLE at chunk granularity: the first offset >= off in
 * data (a chunk with stored or buffered bytes) or in a hole (no chunk: never written, zeros,
 * punched; the end of the file counts as one). -ENXIO if off is at or past the end, or no data
 * follows it. */
int store_seek(struct store *s, uint64_t ino, uint64_t off, bool want_data, uint64_t *ret_off);
/* Writes all of buf at off (extending the file); returns size. */
ssize_t store_write(struct store *s, uint64_t ino, const void *buf, size_t size, uint64_t off);
/* fallocate: mode 0 (reserve: extends size unless keep_size), or punch a hole (keep_size true). */
int store_fallocate(struct store *s, uint64_t ino, bool punch_hole, bool keep_size, uint64_t off,
		    uint64_t len);
/* copy_file_range (index/copy.c): copies len bytes of ino_in at off_in to ino_out at off_out.
 * Whole chunks at matching in-page offsets are copied by reference (the destination's file map
 * gets the source's chunk ids, refcounts follow, no byte is read or hashed: one index
 * transaction); an unaligned head or tail, or everything when off_in and off_out differ modulo
 * 4 KiB, goes through store_read/store_write. Buffered writes of either file are stored first.
 * Stops at the source's end (*ret_copied may be short, 0 at or past it); the destination grows
 * as needed. -EROFS for a sealed destination, -EINVAL for overlapping ranges in one file. */
int store_copy_range(struct store *s, uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
		     uint64_t off_out, uint64_t len, uint64_t *ret_copied);
/* Stores the inode's buffered data in packs and the index now, as the last release would, but
 * without the index sync of store_fsync(): for close(2), the last moment a failure (ENOSPC,
 * EIO) can still reach the writer. The data is durable only after store_fsync()/store_sync(). */
int store_flush_inode(struct store *s, uint64_t ino);
/* Makes the inode's data and metadata durable (pack fsync, then LMDB sync). */
int store_fsync(struct store *s, uint64_t ino, bool datasync);
/* Makes everything buffered durable. */
int store_sync(struct store *s);

/* --- extended attributes (user.* only; the ckptfs names above are special) ---------------- */
int store_setxattr(struct store *s, uint64_t ino, const char *name, const void *value, size_t size,
		   int flags /* XATTR_CREATE / XATTR_REPLACE */);
/* size 0 asks for the length. Returns the length, -ENODATA if absent, -ERANGE if too small. */
ssize_t store_getxattr(struct store *s, uint64_t ino, const char *name, void *value, size_t size);
/* NUL-separated names, same size-0 convention. */
ssize_t store_listxattr(struct store *s, uint64_t ino, char *list, size_t size);
int store_removexattr(struct store *s, uint64_t ino, const char *name);

/* statfs of the filesystem holding the store (real free space), with ckptfs block counts. */
int store_statfs(struct store *s, struct statvfs *ret_st);

/* --- checkpoints ---------------------------------------------------------------------------- */

struct store_ckpt_info {
	char name[256];
	uint64_t ino;
	uint64_t logical_bytes; /* sum of file sizes */
	uint64_t stored_bytes;	/* compressed bytes of the distinct chunks it references */
	uint64_t unique_bytes;	/* compressed bytes of chunks no other checkpoint references */
	uint64_t nfiles;
	bool sealed;
	uint8_t content_id[STORE_CONTENT_ID_LEN]; /* valid when sealed */
	struct timespec ctime;
};
typedef int (*store_ckpt_cb)(void *ctx, const struct store_ckpt_info *info);
/* with_sizes false skips the (chunk-walking) size fields. */
int store_ckpt_list(struct store *s, bool with_sizes, store_ckpt_cb cb, void *ctx);
int store_ckpt_info(struct store *s, const char *name, bool with_sizes,
		    struct store_ckpt_info *ret_info);
/* Flushes, writes the final manifest, marks it immutable; idempotent (same id again). */
int store_ckpt_seal(struct store *s, const char *name, uint8_t ret_id[STORE_CONTENT_ID_LEN]);
/* Removes a checkpoint (sealed or not) and drops its chunk references; space comes back at gc. */
int store_ckpt_remove(struct store *s, const char *name);

struct store_df {
	uint64_t logical_bytes;	 /* sum of all file sizes, all checkpoints */
	uint64_t referenced_raw; /* 4 KiB x distinct non-zero chunks referenced */
	uint64_t stored_bytes;	 /* compressed bytes of referenced chunks */
	uint64_t pack_bytes;	 /* size of all pack files on disk (includes garbage) */
	uint64_t garbage_bytes;	 /* pack bytes of unreferenced chunks (gc reclaims them) */
	uint64_t index_bytes;	 /* LMDB + manifests on disk */
	uint64_t nchunks;	 /* distinct chunks referenced */
	uint64_t ncheckpoints;
	uint64_t deferred_bytes; /* part of stored_bytes still waiting for compression */
};
int store_df(struct store *s, struct store_df *ret_df);

struct store_gc_stats {
	uint64_t packs_rewritten, packs_deleted;
	uint64_t chunks_dropped, bytes_reclaimed;
	uint64_t chunks_compressed; /* deferred records compressed while copying */
};
/* Safe against a concurrent mount and a crash at any point. Rewrites packs with garbage and
 * packs with deferred records (compressing those). */
int store_gc(struct store *s, struct store_gc_stats *ret_stats);
/* STORE_GC_DEFERRED_ONLY: only packs holding deferred records (the mount's background pass). */
#define STORE_GC_DEFERRED_ONLY (1u << 0)
int store_gc_flags(struct store *s, unsigned flags, struct store_gc_stats *ret_stats);

/* Deferred compression (index/flush.c). A flush that finds the writers outrunning it (dirty
 * pages piling up towards the budget), or a big flush a caller waits for, appends new chunks
 * uncompressed, as "deferred" records; gc compresses them later. CKPTFS_DEFER=auto (default),
 * never, or always (tests). The automatic rule applies only in a process that called
 * store_defer_enable() because it runs the background pass (the mount); elsewhere auto means
 * every chunk is compressed on the write path. */
void store_defer_enable(struct store *s);
/* For a mount's background pass: returns 1 when this process appended deferred records that no
 * pass has handled yet, nothing is buffered or being flushed, and no flush ended in the last
 * idle_ms. It then also syncs and closes this process's current pack (unlocking it, so gc can
 * take it; the next flush starts a new one) and returns a mark for store_defer_done. 0 when not
 * (yet), -errno on failure. */
int store_defer_idle(struct store *s, unsigned idle_ms, uint64_t *ret_mark);
/* A pass started after store_defer_idle gave mark has succeeded: the deferred records up to it
 * are handled. Also closes cached read fds of packs that were removed, so their space is freed. */
void store_defer_done(struct store *s, uint64_t mark);

/* fsck: verifies every chunk's hash, every reference and refcount, the manifests against the
 * index. Problems go to the callback as one line each; returns the number of problems found
 * (0 = clean) or -errno if the check itself could not run. */
typedef void (*store_fsck_cb)(void *ctx, const char *problem);
int store_fsck(struct store *s, store_fsck_cb cb, void *ctx);
/* Throws the LMDB index away and rebuilds it from the packs and manifests (store not mounted). */
int store_rebuild_index(const char *path);
/* The same, reporting each problem (a skipped record, an unreadable manifest, a chunk no pack
 * holds) through cb; returns the number of problems (0 = clean) or -errno. */
int store_rebuild_index_report(const char *path, store_fsck_cb cb, void *ctx);

#endif
