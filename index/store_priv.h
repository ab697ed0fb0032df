/* SPDX-License-Identifier: MIT */
/*
 * store_priv.h - internals of struct store shared by the index/ modules (store.c, ns.c, data.c,
 * ckpt.c, manifest.c; later gc.c, fsck.c, rebuild.c).
 *
 * Owns: the in-memory state of one open store: the store directory fd, the LMDB env, the secret,
 * this process's pack writer, cached pack read fds, and the table of open/dirty inodes.
 * Locking: s->mu protects the inode table and every dirty buffer; it is taken BEFORE an LMDB write
 * transaction, never while one is open (LMDB's writer lock is the inner lock). s->pack_mu
 * protects the pack writer; s->fds_lock the read fd cache. Namespace state is never cached: every
 * operation re-reads LMDB, because other processes (the CLI) change it too.
 */
#ifndef CKPTFS_INDEX_STORE_PRIV_H
#define CKPTFS_INDEX_STORE_PRIV_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/util.h"
#include "index/chunk_id.h"
#include "index/idx_db.h"
#include "index/inode.h"
#include "index/pack.h"
#include "index/store.h"
#include "index/u64map.h"

#define STORE_HEADER_NAME    "ckptfs-store"
#define STORE_HEADER_MAGIC   "CKPTFS\0S"
#define STORE_FORMAT_VERSION 1u
#define STORE_HEADER_LEN     224u
#define STORE_INDEX_DIR	     "index"
#define STORE_MANIFEST_DIR   "manifests"
#define STORE_LOCK_NAME	     "lock"
#define STORE_USERS_NAME     "users"

/* Chunks per file-map block: one LMDB value covers 255 x 4 KiB of a file. 255 ids are 4080
 * bytes, exactly one LMDB overflow page (4096 minus its 16-byte header): values that size are
 * stored at 100 % fill, where 1 KiB values left half of every leaf page empty. */
#define FMAP_SLOTS 255u
/* Chunks per in-memory dirty block (one 64-bit presence mask). */
#define DIRTY_SLOTS	 64u
#define FMAP_KEY_LEN	 16u
#define CHUNK_VAL_LEN	 24u
#define DIRENT_VAL_LEN	 20u
#define PACK_ROLL_BYTES	 (1ULL << 30)
#define DIRTY_BUDGET_DEF (64ULL << 20)

struct dblock {
	uint64_t present; /* slot has a dirty version (page, or hole if NULL) */
	uint8_t *pages[DIRTY_SLOTS];
};

/*
 * In-memory state of a file with open handles or buffered data. Reads resolve a chunk in this
 * order: blocks (newest writes), then zeros past trunc_floor, then fl_blocks (being flushed),
 * then zeros past fl_trunc_floor, then the index. A flush moves blocks to fl_blocks under s->mu,
 * works without the lock, and frees fl_blocks under s->mu after its commit; pages in fl_blocks
 * are never written (a new write copies the page into blocks first).
 */
struct oinode {
	uint64_t ino;
	uint64_t ckpt_ino;
	uint32_t opens, wopens;
	bool sealed;
	bool unlinked;	 /* nlink reached 0 while open: delete at last release */
	bool meta_dirty; /* size/mtime differ from the index */
	bool fl_active;	 /* a flush of this inode is running (only one at a time) */
	bool discard;	 /* forget the inode once the running flush ends */
	uint32_t pins;	 /* threads using oi while s->mu is dropped: not freed meanwhile */
	int flush_err;	 /* last flush failure, reported by the next write/fsync/release */
	uint64_t size;	 /* current size (always valid) */
	struct timespec mtime;
	uint64_t trunc_floor; /* lowest size since the last flush (UINT64_MAX: none) */
	struct u64map blocks; /* block number -> struct dblock */
	uint64_t npages;      /* dirty slots (pages and holes) */
	struct u64map fl_blocks;
	uint64_t fl_npages;
	uint64_t fl_trunc_floor;
};

struct pw_retired {
	struct pack_writer *pw;
	uint32_t users;
};

struct store {
	char *path;
	int dirfd;
	int lockfd;
	int usersfd; /* index/users, flock()ed shared while the LMDB env is open */
	unsigned flags;
	struct idx_db *db;
	uint8_t secret[CHUNK_SECRET_LEN];

	pthread_mutex_t mu;
	pthread_cond_t flushed; /* a flush finished (waiters: budget, fl_active) */
	pthread_cond_t flusher_wake;
	struct u64map inodes;  /* ino -> struct oinode */
	uint64_t dirty_bytes;  /* all buffered pages, those being flushed included */
	uint64_t flight_bytes; /* pages being flushed */
	uint64_t dirty_budget; /* writers wait above this */
	uint8_t *page_pool;    /* free dirty pages, linked through their first bytes */
	uint64_t page_pool_n;
	int flusher_err; /* last background flush failure (0 after a success) */
	bool flusher_started, flusher_stop;
	pthread_t flusher;
	struct u64map touched; /* checkpoints with data indexed since their last manifest */

	pthread_mutex_t pack_mu;
	struct pack_writer *pw;
	/* A pack stays flock'ed (so gc leaves it alone) until every flush that appended to it has
	 * committed: those records are named by no index entry until then. pw_users counts the
	 * flushes holding the current writer; a writer that rolls over while held moves to
	 * pw_retired and is freed (unlocked) when its last holder is done. */
	uint32_t pw_users;
	struct pw_retired *pw_retired;
	size_t npw_retired;
	unsigned enc_threads; /* threads compressing one batch of new chunks (1..4) */
	/* Deferred compression (flush.c): the CKPTFS_DEFER mode, and the record bytes this
	 * process appended uncompressed (under pack_mu) and how many of them a background pass
	 * has taken care of (s->mu). */
	int defer_mode;
	uint64_t defer_appended, defer_handled;
	uint64_t last_flush_ns;	  /* CLOCK_MONOTONIC, end of the last flush (s->mu) */
	uint64_t pack_roll_bytes; /* start a new pack past this size (tests make it small) */

	pthread_rwlock_t fds_lock;
	int *pack_fds; /* index = pack number, -1 = not open */
	uint32_t npack_fds;
};

/* Test-only fault injection: when set, called at named points ("flush_before_commit": a
 * flush's records are in its packs, its index transaction has not begun; no lock held). */
extern void (*store_test_hook)(struct store *s, const char *point);

/* Records the detail string for store_last_error() (also logged at debug); returns r. */
__attribute__((format(printf, 2, 3))) int store_error(int r, const char *fmt, ...);

/* Key encoders. */
static inline void ino_key(uint8_t k[8], uint64_t ino)
{
	be64_put(k, ino);
}
static inline void fmap_key(uint8_t k[FMAP_KEY_LEN], uint64_t ino, uint64_t block)
{
	be64_put(k, ino);
	be64_put(k + 8, block);
}

/* Makes room for one more element in a growing array: when n == *cap the array at *parr is
 * reallocated to twice its capacity (first_cap elements the first time). 0 or -ENOMEM (the
 * array is left as it was). */
static inline int array_grow(void *parr, size_t *cap, size_t n, size_t elem_size, size_t first_cap)
{
	size_t ncap, bytes;
	void *old, *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : first_cap;
	if (__builtin_mul_overflow(ncap, elem_size, &bytes))
		return -ENOMEM;
	/* parr points to a T *, not a void *: copy the pointer bytes instead of aliasing it. */
	__builtin_memcpy(&old, parr, sizeof(old));
	p = realloc(old, bytes);
	if (!p)
		return -ENOMEM;
	__builtin_memcpy(parr, &p, sizeof(p));
	*cap = ncap;
	return 0;
}

/* One entry of a directory, as dir_list_children() copies it out of the index. */
struct dir_child {
	uint64_t ino;
	size_t len; /* of name, without the NUL */
	char name[256];
};

/* Copies the entries of directory dir_ino out of IDX_DIRENTS, in name order, into a new array
 * (NULL when empty) that the caller frees. Collecting first lets callers change the tree (or
 * walk it recursively) without a cursor open over it. Stops at the first record that is not a
 * well-formed entry of dir_ino (fsck reports those). */
int dir_list_children(struct idx_txn *txn, uint64_t dir_ino, struct dir_child **ret_kids,
		      size_t *ret_n);

/* inodes */
int ino_load(struct idx_txn *txn, uint64_t ino, struct inode *ret);
/* ino_load in a read transaction of its own (the caller needs nothing else from it). */
int ino_load_once(struct store *s, uint64_t ino, struct inode *ret);
int ino_save(struct idx_txn *txn, const struct inode *in);
int ckpt_is_sealed(struct idx_txn *txn, uint64_t ckpt_ino, bool *ret_sealed);
int meta_get_u64(struct idx_txn *txn, const char *name, uint64_t *ret);
int meta_put_u64(struct idx_txn *txn, const char *name, uint64_t v);
/* Allocates the next inode number from meta "next_ino". */
int ino_alloc(struct idx_txn *txn, uint64_t *ret_ino);
void now_ts(struct timespec *ts);

/* A chunk's index record (IDX_CHUNKS value, 24 bytes):
 *   0 u32 pack number   4 u64 record offset   12 u32 record descriptor   16 u64 refcount */
struct chunk_loc {
	uint32_t pack;
	uint64_t off;
	uint32_t desc;
	uint64_t refs;
};

static inline void chunk_val_decode(const uint8_t *v, struct chunk_loc *loc)
{
	loc->pack = le32_get(v);
	loc->off = le64_get(v + 4);
	loc->desc = le32_get(v + 12);
	loc->refs = le64_get(v + 16);
}

static inline void chunk_val_encode(uint8_t *v, const struct chunk_loc *loc)
{
	le32_put(v, loc->pack);
	le64_put(v + 4, loc->off);
	le32_put(v + 12, loc->desc);
	le64_put(v + 16, loc->refs);
}

/* Bytes a chunk occupies in its pack (record header included): the unit of stored sizes. */
static inline uint32_t rec_bytes(uint32_t desc)
{
	return PACK_REC_HDR_LEN + pack_desc_len(desc);
}

int chunk_lookup(struct idx_txn *txn, const struct chunk_id *id, struct chunk_loc *loc);

/* chunk references: refcount +1 (-ENOENT if the chunk is not indexed) / -1; both return the
 * chunk's stored length through ret_len (optional). */
int chunk_ref(struct idx_txn *txn, const struct chunk_id *id, uint32_t *ret_len);
int chunk_unref(struct idx_txn *txn, const struct chunk_id *id, uint32_t *ret_len);
/* Drops every file-map slot at chunk index >= first (refcounts -1); returns the stored bytes
 * released through ret_freed. */
int fmap_drop_from(struct idx_txn *txn, uint64_t ino, uint64_t first, uint64_t *ret_freed);
/* One file-map block as an array of FMAP_SLOTS ids (holes are null ids). fmap_block_load fills
 * ids from the index (all holes when the block is absent; -EBADMSG for a record that is not a
 * whole number of ids or is too long). fmap_block_store writes it back in the one shape every
 * writer uses: trailing holes trimmed (fmap_block_used slots kept), an all-hole block deleted.
 * Neither touches refcounts. */
#define FMAP_BLOCK_LEN ((size_t)FMAP_SLOTS * STORE_CHUNK_ID_LEN)
int fmap_block_load(struct idx_txn *txn, uint64_t ino, uint64_t block, uint8_t *ids);
size_t fmap_block_used(const uint8_t *ids);
int fmap_block_store(struct idx_txn *txn, uint64_t ino, uint64_t block, const uint8_t *ids);
/* Removes an inode with all its data and xattrs (nlink already 0). */
int ino_destroy(struct idx_txn *txn, uint64_t ino);

/* data.c: in-memory state (s->mu held for all oinode_* calls) */
/* Finds or creates the in-memory state of a regular file (loads size and checkpoint). */
int oinode_get(struct store *s, uint64_t ino, struct oinode **ret);
/* Drops buffered data and forgets the inode. */
void oinode_discard(struct store *s, struct oinode *oi);
/* Does oi buffer a page (or a hole) at a chunk index in [first, first + n)? (Not counting what a
 * running flush holds.) n may be UINT64_MAX - first: "from first on". */
bool oinode_dirty_in_range(const struct oinode *oi, uint64_t first, uint64_t n);
/* Forgets the pages and holes oi buffers at chunk indexes [first, first + n) (the bytes there
 * were replaced in the index, or cut off); true if there were any. Waking writers that wait
 * for room is the caller's choice. */
bool oinode_drop_dirty(struct store *s, struct oinode *oi, uint64_t first, uint64_t n);
/* In-memory truncate from cur_size to size (applied to the index at the next flush). */
int oinode_truncate(struct store *s, struct oinode *oi, uint64_t size);
/* Page allocator for dirty buffers (s->mu held). */
uint8_t *page_alloc(struct store *s);
void page_free(struct store *s, uint8_t *p);
void page_pool_drain(struct store *s);
/* Frees every in-memory inode (store_close). */
void store_drop_inodes(struct store *s);
/* Destroys inodes left unlinked-but-open by a process that died (exclusive open only). */
int store_purge_orphans(struct store *s);
/* Flushes one inode's dirty data. Called with s->mu held; drops it while hashing, compressing
 * and writing, so the inode table may change meanwhile (oi itself stays valid). */
int oinode_flush(struct store *s, struct oinode *oi);
/* Frees the in-memory state if nothing needs it any more (no opens, clean, no flush). */
void oinode_put(struct store *s, struct oinode *oi);
/* Resolves chunk idx from memory (see struct oinode): 1 and *ret_page (NULL = zeros) if memory
 * decides, 0 if the index holds the current bytes. */
int oinode_mem_chunk(struct oinode *oi, uint64_t idx, const uint8_t **ret_page);
int store_flush_all_locked(struct store *s);
/* Takes the next pack number from meta "next_pack" in a write transaction of its own (never
 * with one open); -EOVERFLOW when the numbers are used up. */
int pack_number_alloc(struct store *s, uint32_t *ret_number);
/* The background flusher thread (flush.c). */
int flusher_start(struct store *s);
void flusher_stop(struct store *s);
/* Flushes every dirty inode of checkpoint ckpt_ino (0 = all), takes s->mu. */
int store_flush_ckpt(struct store *s, uint64_t ckpt_ino);
/* Reads chunk index idx of ino as stored in the index (not the dirty buffers) into page. */
int store_read_clean_chunk(struct store *s, struct idx_txn *txn, uint64_t ino, uint64_t idx,
			   void *page);
/* Reads many chunks of ino (ascending idx) as the index in txn has them, into their dst pages
 * (holes become zeros); consecutive pack records are read with one pread. */
struct chunk_req {
	uint64_t idx;
	uint8_t *dst;
};
int store_read_chunks(struct store *s, struct idx_txn *txn, uint64_t ino, struct chunk_req *reqs,
		      size_t n);
/* Reads one indexed chunk by id (pack lookup, retry once if the pack moved). */
int store_read_chunk(struct store *s, const struct chunk_id *id, uint64_t ino, void *page);

/* ckpt.c */
int ckpt_seal_ino(struct store *s, uint64_t ckpt_ino, uint8_t ret_id[STORE_CONTENT_ID_LEN]);
/* Writes the manifest of an unsealed checkpoint as of now (sync points). */
int ckpt_write_manifest(struct store *s, uint64_t ckpt_ino);
/* Marks checkpoint ckpt_ino's manifest stale after a committed change in it (data, namespace,
 * attributes, xattrs): only a map insert, the next sync point in this process (fsync of
 * anything in it, store_sync, seal, close) rewrites it. The _locked form wants s->mu held, the
 * other takes it; neither may be called with a write transaction open. */
void ckpt_touch_locked(struct store *s, uint64_t ckpt_ino);
void ckpt_touch(struct store *s, uint64_t ckpt_ino);
/* Removing a checkpoint without a window in which a crash leaves its manifest behind for a
 * rebuild to resurrect: inside the removing write transaction, bury renames
 * manifests/N.manifest to manifests/N.removed durably (a rebuild reads only *.manifest); after
 * the commit and an index sync, forget unlinks the tombstone; unbury undoes bury when the
 * transaction does not commit. store_settle_tombstones (writable open) finishes what a crash
 * interrupted: a tombstone of a checkpoint the index still has goes back (its removal never
 * committed), any other is unlinked. */
int ckpt_manifest_bury(struct store *s, uint64_t ckpt_ino);
void ckpt_manifest_unbury(struct store *s, uint64_t ckpt_ino);
void ckpt_manifest_forget(struct store *s, uint64_t ckpt_ino);
int store_settle_tombstones(struct store *s);
/* Writes manifests of the touched checkpoints (only ckpt_ino if non-zero); takes s->mu. */
int store_write_touched_manifests(struct store *s, uint64_t ckpt_ino);

#endif
