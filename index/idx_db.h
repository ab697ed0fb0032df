/* SPDX-License-Identifier: MIT */
/*
 * idx_db.h - the LMDB index: the only module that sees MDB_* types and codes.
 *
 * Owns: the LMDB environment in STORE/index/ and its named databases (see enum idx_dbi and
 * docs/store-format.md for every key and value layout). Keys that must sort numerically are
 * big-endian (be64_put); values are little-endian like every other on-disk integer.
 * Invariants: write transactions are short and have one owner; every path ends in commit or
 * abort; values returned by idx_get()/cursors point into the map and are valid only until the
 * transaction ends (copy them out). The env runs with MDB_NOSYNC: durability comes from
 * idx_db_sync(), which the store calls at fsync/seal/close; without it LMDB stays consistent
 * after a crash (it only relies on the page cache then) but may lose the latest commits.
 * Thread-safety: the env is shared by all threads; a transaction belongs to one thread at a time
 * (MDB_NOTLS, so read transactions are not tied to the thread that began them).
 */
#ifndef CKPTFS_INDEX_IDX_DB_H
#define CKPTFS_INDEX_IDX_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum idx_dbi {
	IDX_META,	/* ascii name -> u64 (next_ino, next_pack, format) */
	IDX_INODES,	/* be64 ino -> struct inode record (index/inode.h) */
	IDX_DIRENTS,	/* be64 parent + name -> le64 ino, le64 cookie, le32 mode */
	IDX_DIRCOOKIES, /* be64 parent + be64 cookie -> name */
	IDX_FMAP,	/* be64 ino + be64 block -> up to 64 chunk ids (16 B each, zero = hole) */
	IDX_CHUNKS,	/* chunk id -> le32 pack, le64 offset, le32 desc, le64 refcount */
	IDX_XATTRS,	/* be64 ino + name -> value */
	IDX_ORPHANS,	/* be64 ino -> empty: unlinked inodes still open somewhere */
	IDX_NDBI,
};

struct idx_db;
struct idx_txn;
struct idx_cursor;

#define IDX_NOOVERWRITE 1u

int idx_db_open(const char *dir, bool rdonly, struct idx_db **ret_db);
void idx_db_close(struct idx_db *db);
int idx_db_sync(struct idx_db *db);
/* Bytes of data.mdb actually in use (pages * page size). */
int idx_db_used_bytes(struct idx_db *db, uint64_t *ret_bytes);

/* Pages in use by the databases, and pages in the file (the rest is LMDB's free list). */
int idx_db_page_usage(struct idx_db *db, uint64_t *ret_used, uint64_t *ret_total);
/* Writes a copy without free pages to fd (mdb_env_copyfd2 with MDB_CP_COMPACT). */
int idx_db_copy_compact(struct idx_db *db, int fd);

int idx_txn_begin(struct idx_db *db, bool write, struct idx_txn **ret_txn);
int idx_txn_commit(struct idx_txn *txn); /* frees txn, also on failure */
void idx_txn_abort(struct idx_txn *txn); /* accepts NULL */

/* -ENOENT when absent. */
int idx_get(struct idx_txn *txn, enum idx_dbi dbi, const void *key, size_t klen,
	    const void **ret_val, size_t *ret_vlen);
/* IDX_NOOVERWRITE: -EEXIST when present. */
int idx_put(struct idx_txn *txn, enum idx_dbi dbi, const void *key, size_t klen, const void *val,
	    size_t vlen, unsigned flags);
/* Reserves vlen bytes for the value and returns where to write them (before any other op). */
int idx_put_reserve(struct idx_txn *txn, enum idx_dbi dbi, const void *key, size_t klen,
		    size_t vlen, void **ret_val);
int idx_del(struct idx_txn *txn, enum idx_dbi dbi, const void *key, size_t klen);
/* Number of entries in a database. */
int idx_count(struct idx_txn *txn, enum idx_dbi dbi, uint64_t *ret_n);

int idx_cursor_open(struct idx_txn *txn, enum idx_dbi dbi, struct idx_cursor **ret_cur);
void idx_cursor_close(struct idx_cursor *cur); /* accepts NULL */
/* Positions at the first key >= key (key NULL: the first key). -ENOENT past the end. */
int idx_cursor_seek(struct idx_cursor *cur, const void *key, size_t klen, const void **ret_key,
		    size_t *ret_klen, const void **ret_val, size_t *ret_vlen);
int idx_cursor_next(struct idx_cursor *cur, const void **ret_key, size_t *ret_klen,
		    const void **ret_val, size_t *ret_vlen);
/* Deletes the entry under the cursor; a following idx_cursor_next() returns the entry that
 * came after it. */
int idx_cursor_del(struct idx_cursor *cur);

static inline void be64_put(void *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	__builtin_memcpy(p, &v, sizeof(v));
}
static inline uint64_t be64_get(const void *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, sizeof(v));
	return __builtin_bswap64(v);
}

#endif
