// SPDX-License-Identifier: MIT
#include "index/idx_db.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "index/store_priv.h"

/* Sparse: LMDB only uses what it writes, the map just bounds the index's growth. */
#define IDX_MAPSIZE (1ULL << 40)

static const char *const dbi_names[IDX_NDBI] = {
	[IDX_META] = "meta",	   [IDX_INODES] = "inodes",
	[IDX_DIRENTS] = "dirents", [IDX_DIRCOOKIES] = "dircookies",
	[IDX_FMAP] = "fmap",	   [IDX_CHUNKS] = "chunks",
	[IDX_XATTRS] = "xattrs",   [IDX_ORPHANS] = "orphans",
};

struct idx_db {
	MDB_env *env;
	MDB_dbi dbi[IDX_NDBI];
	bool rdonly;
};

struct idx_txn {
	struct idx_db *db;
	MDB_txn *txn;
};

struct idx_cursor {
	MDB_cursor *cur;
};

/* The single place where LMDB's codes become -errno. */
static int mdb_to_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_VERSION_MISMATCH:
		return -EOPNOTSUPP;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_BAD_TXN:
		return -EBADMSG;
	case MDB_READERS_FULL:
	case MDB_MAP_RESIZED:
		return -EAGAIN;
	case MDB_BAD_VALSIZE:
		return -ENAMETOOLONG;
	default:
		if (rc > 0)
			return -rc;
		return -EIO;
	}
}

int idx_db_open(const char *dir, bool rdonly, struct idx_db **ret_db)
{
	_cleanup_free_ struct idx_db *db = NULL;
	MDB_txn *txn = NULL;
	int rc;

	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->rdonly = rdonly;
	rc = mdb_env_create(&db->env);
	if (rc)
		return store_error(mdb_to_errno(rc), "index '%s': %s", dir, mdb_strerror(rc));
	mdb_env_set_mapsize(db->env, IDX_MAPSIZE);
	mdb_env_set_maxdbs(db->env, IDX_NDBI + 4);
	rc = mdb_env_open(db->env, dir, MDB_NOSYNC | MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0644);
	if (rc)
		goto fail;
	rc = mdb_txn_begin(db->env, NULL, rdonly ? MDB_RDONLY : 0, &txn);
	if (rc)
		goto fail;
	for (int i = 0; i < IDX_NDBI; i++) {
		rc = mdb_dbi_open(txn, dbi_names[i], rdonly ? 0 : MDB_CREATE, &db->dbi[i]);
		if (rc) {
			mdb_txn_abort(txn);
			goto fail;
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		goto fail;
	*ret_db = TAKE_PTR(db);
	return 0;
fail:
	mdb_env_close(db->env);
	return store_error(mdb_to_errno(rc), "open index '%s': %s", dir, mdb_strerror(rc));
}

void idx_db_close(struct idx_db *db)
{
	if (!db)
		return;
	mdb_env_close(db->env);
	free(db);
}

int idx_db_sync(struct idx_db *db)
{
	int rc;

	if (db->rdonly)
		return 0;
	rc = mdb_env_sync(db->env, 1);
	if (rc)
		return store_error(mdb_to_errno(rc), "sync index: %s", mdb_strerror(rc));
	return 0;
}

int idx_db_used_bytes(struct idx_db *db, uint64_t *ret_bytes)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc;

	rc = mdb_env_info(db->env, &info);
	if (!rc)
		rc = mdb_env_stat(db->env, &st);
	if (rc)
		return mdb_to_errno(rc);
	*ret_bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	return 0;
}

int idx_db_page_usage(struct idx_db *db, uint64_t *ret_used, uint64_t *ret_total)
{
	MDB_envinfo info;
	MDB_txn *txn = NULL;
	MDB_stat st;
	uint64_t used = 2; /* the two meta pages */
	int rc;

	rc = mdb_env_info(db->env, &info);
	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	/* dbi 1 is LMDB's main database (it holds the names of ours). */
	rc = mdb_stat(txn, 1, &st);
	for (int i = 0; !rc && i <= IDX_NDBI; i++) {
		used += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
		if (i < IDX_NDBI)
			rc = mdb_stat(txn, db->dbi[i], &st);
	}
	mdb_txn_abort(txn);
	if (rc)
		return mdb_to_errno(rc);
	*ret_used = used;
	*ret_total = (uint64_t)info.me_last_pgno + 1;
	return 0;
}

int idx_db_copy_compact(struct idx_db *db, int fd)
{
	int rc = mdb_env_copyfd2(db->env, fd, MDB_CP_COMPACT);

	if (rc)
		return store_error(mdb_to_errno(rc), "compact copy of the index: %s",
				   mdb_strerror(rc));
	return 0;
}

int idx_txn_begin(struct idx_db *db, bool write, struct idx_txn **ret_txn)
{
	struct idx_txn *t;
	int rc;

	if (write && db->rdonly)
		return -EROFS;
	t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->db = db;
	rc = mdb_txn_begin(db->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc) {
		free(t);
		return store_error(mdb_to_errno(rc), "index transaction: %s", mdb_strerror(rc));
	}
	*ret_txn = t;
	return 0;
}

int idx_txn_commit(struct idx_txn *txn)
{
	int rc = mdb_txn_commit(txn->txn);

	free(txn);
	if (rc)
		return store_error(mdb_to_errno(rc), "index commit: %s", mdb_strerror(rc));
	return 0;
}

void idx_txn_abort(struct idx_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn->txn);
	free(txn);
}

int idx_get(struct idx_txn *txn, enum idx_dbi dbi, const void *key, size_t klen,
	    const void **ret_val, size_t *ret_vlen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v;
	int rc = mdb_get(txn->txn, txn->db->dbi[dbi], &k, &v);

	if (rc)
		return mdb_to_errno(rc);
	*ret_val = v.mv_data;
	*ret_vlen = v.mv_size;
	return 0;
}

int idx_put(struct idx_txn *txn, enum idx_dbi dbi, const void *key, size_t klen, const void *val,
	    size_t vlen, unsigned flags)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val v = {.mv_size = vlen, .mv_data = (void *)val};

	return mdb_to_errno(mdb_put(txn->txn, txn->db->dbi[dbi], &k, &v,
				    (flags & IDX_NOOVERWRITE) ? MDB_NOOVERWRITE : 0));
}

int idx_put_reserve(struct idx_txn *txn, enum idx_dbi dbi, const void *key, size_t klen,
		    size_t vlen, void **ret_val)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val v = {.mv_size = vlen, .mv_data = NULL};
	int rc = mdb_put(txn->txn, txn->db->dbi[dbi], &k, &v, MDB_RESERVE);

	if (rc)
		return mdb_to_errno(rc);
	*ret_val = v.mv_data;
	return 0;
}

int idx_del(struct idx_txn *txn, enum idx_dbi dbi, const void *key, size_t klen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};

	return mdb_to_errno(mdb_del(txn->txn, txn->db->dbi[dbi], &k, NULL));
}

int idx_count(struct idx_txn *txn, enum idx_dbi dbi, uint64_t *ret_n)
{
	MDB_stat st;
	int rc = mdb_stat(txn->txn, txn->db->dbi[dbi], &st);

	if (rc)
		return mdb_to_errno(rc);
	*ret_n = st.ms_entries;
	return 0;
}

int idx_cursor_open(struct idx_txn *txn, enum idx_dbi dbi, struct idx_cursor **ret_cur)
{
	struct idx_cursor *c = malloc(sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	rc = mdb_cursor_open(txn->txn, txn->db->dbi[dbi], &c->cur);
	if (rc) {
		free(c);
		return mdb_to_errno(rc);
	}
	*ret_cur = c;
	return 0;
}

void idx_cursor_close(struct idx_cursor *cur)
{
	if (!cur)
		return;
	mdb_cursor_close(cur->cur);
	free(cur);
}

static int cursor_get(struct idx_cursor *cur, MDB_val *k, MDB_cursor_op op, const void **ret_key,
		      size_t *ret_klen, const void **ret_val, size_t *ret_vlen)
{
	MDB_val v;
	int rc = mdb_cursor_get(cur->cur, k, &v, op);

	if (rc)
		return mdb_to_errno(rc);
	if (ret_key)
		*ret_key = k->mv_data;
	if (ret_klen)
		*ret_klen = k->mv_size;
	if (ret_val)
		*ret_val = v.mv_data;
	if (ret_vlen)
		*ret_vlen = v.mv_size;
	return 0;
}

int idx_cursor_seek(struct idx_cursor *cur, const void *key, size_t klen, const void **ret_key,
		    size_t *ret_klen, const void **ret_val, size_t *ret_vlen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};

	return cursor_get(cur, &k, key ? MDB_SET_RANGE : MDB_FIRST, ret_key, ret_klen, ret_val,
			  ret_vlen);
}

int idx_cursor_next(struct idx_cursor *cur, const void **ret_key, size_t *ret_klen,
		    const void **ret_val, size_t *ret_vlen)
{
	MDB_val k = {0};

	return cursor_get(cur, &k, MDB_NEXT, ret_key, ret_klen, ret_val, ret_vlen);
}

int idx_cursor_del(struct idx_cursor *cur)
{
	return mdb_to_errno(mdb_cursor_del(cur->cur, 0));
}
