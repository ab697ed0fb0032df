// SPDX-License-Identifier: MIT
/* ckpt.c - checkpoints: seal (manifest + content id), list/info with sizes, remove, df. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "index/maint_priv.h"
#include "index/manifest.h"
#include "index/pack.h"
#include "index/store_priv.h"

/* Name of checkpoint ino (its entry under the root). */
static int ckpt_name_of(struct idx_txn *txn, uint64_t ino, char name[256])
{
	struct idx_cursor *c = NULL;
	uint8_t k[8];
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_cursor_open(txn, IDX_DIRENTS, &c);
	if (r < 0)
		return r;
	be64_put(k, STORE_ROOT_INO);
	for (r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		if (klen <= 8 || memcmp(key, k, 8) != 0) {
			r = -ENOENT;
			break;
		}
		if (vlen == DIRENT_VAL_LEN && le64_get(val) == ino && klen - 8 <= 255) {
			memcpy(name, (const uint8_t *)key + 8, klen - 8);
			name[klen - 8] = '\0';
			break;
		}
	}
	idx_cursor_close(c);
	return r;
}

static int ckpt_lookup(struct idx_txn *txn, const char *name, uint64_t *ret_ino)
{
	uint8_t k[8 + 256];
	const void *v;
	size_t vlen, n = strlen(name);
	int r;

	if (n == 0 || n > 255 || strchr(name, '/'))
		return store_error(-EINVAL, "'%s' is not a valid checkpoint name", name);
	be64_put(k, STORE_ROOT_INO);
	memcpy(k + 8, name, n);
	r = idx_get(txn, IDX_DIRENTS, k, 8 + n, &v, &vlen);
	if (r == -ENOENT)
		return store_error(-ENOENT, "no checkpoint named '%s'", name);
	if (r < 0)
		return r;
	if (vlen != DIRENT_VAL_LEN)
		return store_error(-EBADMSG, "checkpoint '%s': bad directory entry", name);
	*ret_ino = le64_get(v);
	return 0;
}

int ckpt_seal_ino(struct store *s, uint64_t ckpt_ino, uint8_t ret_id[STORE_CONTENT_ID_LEN])
{
	struct idx_txn *txn = NULL;
	_cleanup_free_ uint8_t *body = NULL;
	struct inode in;
	char name[256];
	size_t len;
	int r;

	if (s->flags & STORE_OPEN_RDONLY)
		return -EROFS;
	/* Everything this process buffered for the checkpoint goes in first. */
	r = store_flush_ckpt(s, ckpt_ino);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->mu);
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		goto out_unlock;
	r = ino_load(txn, ckpt_ino, &in);
	if (r < 0)
		goto out;
	inode_done(&in);
	if (in.ckpt_ino != ckpt_ino || !S_ISDIR(in.mode)) {
		r = store_error(-EINVAL, "inode %llu is not a checkpoint directory",
				(unsigned long long)ckpt_ino);
		goto out;
	}
	if (in.flags & INODE_F_SEALED) {
		memcpy(ret_id, in.content_id, STORE_CONTENT_ID_LEN);
		goto out; /* idempotent: same id again */
	}
	r = ckpt_name_of(txn, ckpt_ino, name);
	if (r < 0)
		goto out;
	/* Sealing leaves every time stamp alone: the content id depends on content only (the
	 * same tree sealed twice gets the same id) and stays recomputable from the index, which
	 * fsck checks. */
	r = manifest_build(txn, ckpt_ino, name, &body, &len, in.content_id);
	if (r < 0)
		goto out;
	/* The manifest is durable before the index says "sealed": a rebuild finds it either way. */
	r = manifest_write(s->dirfd, ckpt_ino, MANIFEST_F_SEALED, body, len, in.content_id);
	if (r < 0)
		goto out;
	in.flags |= INODE_F_SEALED;
	r = ino_save(txn, &in);
	if (r < 0)
		goto out;
	r = idx_txn_commit(txn);
	txn = NULL;
	if (r < 0)
		goto out_unlock;
	for (size_t i = 0; i < s->inodes.cap; i++) {
		struct oinode *oi = s->inodes.slots[i].val;

		if (oi && oi->ckpt_ino == ckpt_ino)
			oi->sealed = true;
	}
	memcpy(ret_id, in.content_id, STORE_CONTENT_ID_LEN);
	pthread_mutex_unlock(&s->mu);
	return idx_db_sync(s->db);
out:
	idx_txn_abort(txn);
out_unlock:
	pthread_mutex_unlock(&s->mu);
	return r;
}

int store_ckpt_seal(struct store *s, const char *name, uint8_t ret_id[STORE_CONTENT_ID_LEN])
{
	struct idx_txn *txn = NULL;
	uint64_t ino;
	int r;

	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = ckpt_lookup(txn, name, &ino);
	idx_txn_abort(txn);
	if (r < 0)
		return r;
	return ckpt_seal_ino(s, ino, ret_id);
}

int ckpt_write_manifest(struct store *s, uint64_t ckpt_ino)
{
	struct idx_txn *txn = NULL;
	_cleanup_free_ uint8_t *body = NULL;
	uint8_t id[STORE_CONTENT_ID_LEN];
	struct inode in;
	char name[256];
	size_t len;
	int r;

	/* A write transaction although nothing changes: it holds LMDB's writer lock, which
	 * serialises this with a seal (in any process) that writes the final manifest, so an
	 * older unsealed manifest can never replace a sealed one. */
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		return r;
	r = ino_load(txn, ckpt_ino, &in);
	if (r < 0)
		goto out;
	inode_done(&in);
	if (in.flags & INODE_F_SEALED)
		goto out; /* its manifest was final at seal */
	r = ckpt_name_of(txn, ckpt_ino, name);
	if (r >= 0)
		r = manifest_build(txn, ckpt_ino, name, &body, &len, id);
	if (r >= 0)
		r = manifest_write(s->dirfd, ckpt_ino, 0, body, len, id);
out:
	idx_txn_abort(txn);
	return r;
}

void ckpt_touch_locked(struct store *s, uint64_t ckpt_ino)
{
	if (ckpt_ino <= STORE_ROOT_INO || (s->flags & STORE_OPEN_RDONLY))
		return;
	/* Out of memory only costs freshness: the manifest stays as of the last sync point. */
	if (u64map_put(&s->touched, ckpt_ino, (void *)1) < 0)
		log_debug("store: cannot mark the manifest of checkpoint %llu stale: out of memory",
			  (unsigned long long)ckpt_ino);
}

void ckpt_touch(struct store *s, uint64_t ckpt_ino)
{
	pthread_mutex_lock(&s->mu);
	ckpt_touch_locked(s, ckpt_ino);
	pthread_mutex_unlock(&s->mu);
}

#define TOMB_SUFFIX ".removed"

static void manifest_paths(uint64_t ckpt_ino, char man[64], char tomb[64])
{
	snprintf(man, 64, STORE_MANIFEST_DIR "/%llu.manifest", (unsigned long long)ckpt_ino);
	snprintf(tomb, 64, STORE_MANIFEST_DIR "/%llu" TOMB_SUFFIX, (unsigned long long)ckpt_ino);
}

static int manifest_dir_sync(struct store *s)
{
	_cleanup_close_ int dfd =
		openat(s->dirfd, STORE_MANIFEST_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0 || fsync(dfd) < 0)
		return store_error(-errno, "fsync directory '" STORE_MANIFEST_DIR "': %m");
	return 0;
}

int ckpt_manifest_bury(struct store *s, uint64_t ckpt_ino)
{
	char man[64], tomb[64];
	int r;

	manifest_paths(ckpt_ino, man, tomb);
	if (renameat(s->dirfd, man, s->dirfd, tomb) < 0) {
		if (errno == ENOENT)
			return 0; /* never reached a sync point: nothing a rebuild could find */
		return store_error(-errno, "checkpoint %llu: rename manifest '%s' to '%s': %m",
				   (unsigned long long)ckpt_ino, man, tomb);
	}
	r = manifest_dir_sync(s);
	if (r < 0)
		ckpt_manifest_unbury(s, ckpt_ino);
	return r;
}

void ckpt_manifest_unbury(struct store *s, uint64_t ckpt_ino)
{
	char man[64], tomb[64];

	manifest_paths(ckpt_ino, man, tomb);
	/* Best effort: a tombstone left behind is put back by the next writable open. */
	if (renameat(s->dirfd, tomb, s->dirfd, man) == 0)
		(void)manifest_dir_sync(s);
}

void ckpt_manifest_forget(struct store *s, uint64_t ckpt_ino)
{
	char man[64], tomb[64];

	manifest_paths(ckpt_ino, man, tomb);
	(void)unlinkat(s->dirfd, tomb, 0);
}

int store_settle_tombstones(struct store *s)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint64_t *inos = NULL;
	struct idx_txn *txn = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (s->flags & STORE_OPEN_RDONLY)
		return 0;
	fd = openat(s->dirfd, STORE_MANIFEST_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return store_error(-errno, "open directory '" STORE_MANIFEST_DIR "': %m");
	d = fdopendir(TAKE_FD(fd));
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		size_t digits = strspn(de->d_name, "0123456789");

		if (digits == 0 || digits > 19 || strcmp(de->d_name + digits, TOMB_SUFFIX) != 0)
			continue;
		r = array_grow(&inos, &cap, n, sizeof(*inos), 8);
		if (r < 0)
			break;
		inos[n++] = strtoull(de->d_name, NULL, 10);
	}
	closedir(d);
	if (r < 0 || n == 0)
		return r;
	/* Under the writer lock: a remover buries, commits and only then lets go of it, so a
	 * tombstone seen here belongs to a removal that committed or never will. */
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct inode in;
		bool still;

		r = ino_load(txn, inos[i], &in);
		if (r < 0 && r != -ENOENT)
			break;
		still = r >= 0 && in.ckpt_ino == inos[i] && S_ISDIR(in.mode);
		if (r >= 0)
			inode_done(&in);
		r = 0;
		if (still) {
			char man[64], tomb[64];

			/* A manifest written since (a sync point after the crash) is newer than
			 * the tombstone: keep it. */
			manifest_paths(inos[i], man, tomb);
			if (renameat2(s->dirfd, tomb, s->dirfd, man, RENAME_NOREPLACE) == 0) {
				log_debug("store: checkpoint %llu: its removal never committed; "
					  "manifest restored",
					  (unsigned long long)inos[i]);
				(void)manifest_dir_sync(s);
				continue;
			}
		}
		ckpt_manifest_forget(s, inos[i]);
	}
	idx_txn_abort(txn);
	return r;
}

int store_write_touched_manifests(struct store *s, uint64_t ckpt_ino)
{
	uint64_t *list = NULL;
	size_t n = 0;
	int r = 0;

	pthread_mutex_lock(&s->mu);
	if (ckpt_ino) {
		if (u64map_del(&s->touched, ckpt_ino)) {
			list = malloc(sizeof(*list));
			if (list)
				list[n++] = ckpt_ino;
			else
				r = -ENOMEM;
		}
	} else if (s->touched.n) {
		list = malloc(s->touched.n * sizeof(*list));
		if (list) {
			for (size_t i = 0; i < s->touched.cap; i++)
				if (s->touched.slots[i].val)
					list[n++] = s->touched.slots[i].key;
			u64map_clear(&s->touched);
		} else {
			r = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		int q = ckpt_write_manifest(s, list[i]);
		/* A checkpoint removed meanwhile has no manifest to write. */
		if (q < 0 && q != -ENOENT && r == 0)
			r = q;
	}
	free(list);
	return r;
}

/* --- sizes -------------------------------------------------------------------------------- */

/* A set of chunk ids with a per-id reference count (open addressing on the id bytes). */
struct idset_ent {
	struct chunk_id id;
	uint64_t count; /* 0 = empty */
};
struct idset {
	struct idset_ent *e;
	size_t cap, n;
};

static size_t idset_slot(const struct chunk_id *id, size_t cap)
{
	/* Ids are uniform hashes already. */
	return (size_t)le64_get(id->b) & (cap - 1);
}

static int idset_add(struct idset *set, const struct chunk_id *id)
{
	size_t i;

	if ((set->n + 1) * 4 > set->cap * 3) {
		size_t ncap = set->cap ? set->cap * 2 : 1024;
		struct idset_ent *ne = calloc(ncap, sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		for (size_t j = 0; j < set->cap; j++) {
			if (!set->e[j].count)
				continue;
			for (i = idset_slot(&set->e[j].id, ncap); ne[i].count;
			     i = (i + 1) & (ncap - 1))
				;
			ne[i] = set->e[j];
		}
		free(set->e);
		set->e = ne;
		set->cap = ncap;
	}
	for (i = idset_slot(id, set->cap); set->e[i].count; i = (i + 1) & (set->cap - 1)) {
		if (chunk_id_equal(&set->e[i].id, id)) {
			set->e[i].count++;
			return 0;
		}
	}
	set->e[i].id = *id;
	set->e[i].count = 1;
	set->n++;
	return 0;
}

struct sizer {
	struct idx_txn *txn;
	struct idset ids;
	struct u64map seen; /* inodes counted already (hard links) */
	uint64_t logical, nfiles;
};

static int size_file_chunks(struct sizer *z, uint64_t ino)
{
	struct idx_cursor *c = NULL;
	uint8_t k[FMAP_KEY_LEN];
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_cursor_open(z->txn, IDX_FMAP, &c);
	if (r < 0)
		return r;
	fmap_key(k, ino, 0);
	for (r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		if (klen != FMAP_KEY_LEN || be64_get(key) != ino)
			break;
		for (size_t i = 0; i < vlen / STORE_CHUNK_ID_LEN && r >= 0; i++) {
			struct chunk_id id;

			memcpy(id.b, (const uint8_t *)val + i * STORE_CHUNK_ID_LEN,
			       STORE_CHUNK_ID_LEN);
			if (!chunk_id_is_null(&id))
				r = idset_add(&z->ids, &id);
		}
		if (r < 0)
			break;
	}
	idx_cursor_close(c);
	return r == -ENOENT || r >= 0 ? 0 : r;
}

static int size_walk(struct sizer *z, uint64_t ino, unsigned depth)
{
	struct inode in;
	int r;

	if (depth > 4096)
		return -ELOOP;
	if (u64map_get(&z->seen, ino))
		return 0;
	r = u64map_put(&z->seen, ino, (void *)1);
	if (r < 0)
		return r;
	r = ino_load(z->txn, ino, &in);
	if (r < 0)
		return r;
	inode_done(&in);
	if (S_ISREG(in.mode)) {
		z->logical += in.size;
		z->nfiles++;
		return size_file_chunks(z, ino);
	}
	if (!S_ISDIR(in.mode)) {
		z->nfiles++;
		return 0;
	}
	struct dir_child *kids = NULL;
	size_t n = 0;

	r = dir_list_children(z->txn, ino, &kids, &n);
	for (size_t i = 0; i < n && r >= 0; i++)
		r = size_walk(z, kids[i].ino, depth + 1);
	free(kids);
	return r;
}

static int ckpt_fill(struct idx_txn *txn, uint64_t ino, const char *name, bool with_sizes,
		     struct store_ckpt_info *info)
{
	struct inode in;
	int r;

	memset(info, 0, sizeof(*info));
	r = ino_load(txn, ino, &in);
	if (r < 0)
		return r;
	inode_done(&in);
	snprintf(info->name, sizeof(info->name), "%s", name);
	info->ino = ino;
	info->sealed = in.flags & INODE_F_SEALED;
	if (info->sealed)
		memcpy(info->content_id, in.content_id, STORE_CONTENT_ID_LEN);
	info->ctime = in.ctime;
	if (!with_sizes)
		return 0;

	struct sizer z = {.txn = txn};
	r = size_walk(&z, ino, 0);
	for (size_t i = 0; i < z.ids.cap && r >= 0; i++) {
		const struct idset_ent *e = &z.ids.e[i];
		const void *v;
		size_t vlen;
		uint32_t bytes;

		if (!e->count)
			continue;
		r = idx_get(txn, IDX_CHUNKS, e->id.b, STORE_CHUNK_ID_LEN, &v, &vlen);
		if (r == -ENOENT) {
			r = 0; /* dangling: fsck reports it; sizes just skip it */
			continue;
		}
		if (r < 0 || vlen != CHUNK_VAL_LEN) {
			r = r < 0 ? r : -EBADMSG;
			break;
		}
		bytes = PACK_REC_HDR_LEN + pack_desc_len(le32_get((const uint8_t *)v + 12));
		info->stored_bytes += bytes;
		/* All of its references come from this checkpoint: removing it frees the chunk. */
		if (le64_get((const uint8_t *)v + 16) <= e->count)
			info->unique_bytes += bytes;
	}
	info->logical_bytes = z.logical;
	info->nfiles = z.nfiles;
	free(z.ids.e);
	u64map_clear(&z.seen);
	return r;
}

int store_ckpt_list(struct store *s, bool with_sizes, store_ckpt_cb cb, void *ctx)
{
	struct idx_txn *txn = NULL;
	struct dir_child *list = NULL;
	size_t n = 0;
	int r;

	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = dir_list_children(txn, STORE_ROOT_INO, &list, &n);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct store_ckpt_info info;

		r = ckpt_fill(txn, list[i].ino, list[i].name, with_sizes, &info);
		if (r < 0)
			break;
		r = cb(ctx, &info);
		if (r != 0) {
			r = r < 0 ? r : 0;
			break;
		}
	}
out:
	free(list);
	idx_txn_abort(txn);
	return r;
}

int store_ckpt_info(struct store *s, const char *name, bool with_sizes,
		    struct store_ckpt_info *ret_info)
{
	struct idx_txn *txn = NULL;
	uint64_t ino;
	int r;

	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = ckpt_lookup(txn, name, &ino);
	if (r >= 0)
		r = ckpt_fill(txn, ino, name, with_sizes, ret_info);
	idx_txn_abort(txn);
	return r;
}

/* Destroys the subtree under ino (s->mu held, inside txn). */
static int destroy_tree(struct store *s, struct idx_txn *txn, uint64_t ino, unsigned depth)
{
	struct dir_child *kids = NULL;
	struct inode in;
	size_t n = 0;
	uint8_t k[8];
	struct oinode *oi;
	int r;

	if (depth > 4096)
		return -ELOOP;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		return r;
	if (S_ISDIR(in.mode)) {
		r = dir_list_children(txn, ino, &kids, &n);
		if (r < 0)
			goto out;
		for (size_t i = 0; i < n && r >= 0; i++) {
			uint8_t dk[8 + 256], ck[16];
			const void *dv;
			size_t dvlen, nl = strlen(kids[i].name);

			be64_put(dk, ino);
			memcpy(dk + 8, kids[i].name, nl);
			r = idx_get(txn, IDX_DIRENTS, dk, 8 + nl, &dv, &dvlen);
			if (r < 0)
				break;
			be64_put(ck, ino);
			be64_put(ck + 8, le64_get((const uint8_t *)dv + 8));
			r = idx_del(txn, IDX_DIRENTS, dk, 8 + nl);
			if (r >= 0) {
				r = idx_del(txn, IDX_DIRCOOKIES, ck, sizeof(ck));
				if (r == -ENOENT)
					r = 0;
			}
			if (r >= 0)
				r = destroy_tree(s, txn, kids[i].ino, depth + 1);
		}
		if (r < 0)
			goto out;
		r = ino_destroy(txn, ino);
		goto out;
	}
	/* A file: one link less; the last one destroys it (hard links all live in this tree). */
	if (in.nlink > 1) {
		in.nlink--;
		r = ino_save(txn, &in);
		goto out;
	}
	oi = u64map_get(&s->inodes, ino);
	if (oi && oi->opens > 0) {
		/* Still open here: keep the inode until the last release. */
		in.nlink = 0;
		oi->unlinked = true;
		ino_key(k, ino);
		r = idx_put(txn, IDX_ORPHANS, k, sizeof(k), "", 0, 0);
		if (r >= 0)
			r = ino_save(txn, &in);
		goto out;
	}
	if (oi)
		oinode_discard(s, oi);
	r = ino_destroy(txn, ino);
out:
	inode_done(&in);
	free(kids);
	return r;
}

int store_ckpt_remove(struct store *s, const char *name)
{
	struct idx_txn *txn = NULL;
	struct inode root;
	uint8_t k[8 + 256], ck[16];
	const void *v;
	size_t vlen, n = strlen(name);
	uint64_t ino;
	int r;

	if (s->flags & STORE_OPEN_RDONLY)
		return -EROFS;
	pthread_mutex_lock(&s->mu);
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		goto out_unlock;
	r = ckpt_lookup(txn, name, &ino);
	if (r < 0)
		goto out;
	be64_put(k, STORE_ROOT_INO);
	memcpy(k + 8, name, n);
	r = idx_get(txn, IDX_DIRENTS, k, 8 + n, &v, &vlen);
	if (r < 0)
		goto out;
	be64_put(ck, STORE_ROOT_INO);
	be64_put(ck + 8, le64_get((const uint8_t *)v + 8));
	r = idx_del(txn, IDX_DIRENTS, k, 8 + n);
	if (r >= 0)
		r = idx_del(txn, IDX_DIRCOOKIES, ck, sizeof(ck));
	if (r >= 0)
		r = destroy_tree(s, txn, ino, 0);
	if (r >= 0)
		r = ino_load(txn, STORE_ROOT_INO, &root);
	if (r < 0)
		goto out;
	root.nlink--;
	now_ts(&root.mtime);
	root.ctime = root.mtime;
	r = ino_save(txn, &root);
	inode_done(&root);
	if (r < 0)
		goto out;
	/* The manifest leaves before the commit (a crash in between: a rebuild finds no trace,
	 * an open of the old index puts it back), and for good only once the commit is synced. */
	r = ckpt_manifest_bury(s, ino);
	if (r < 0)
		goto out;
	if (maint_fault("ckpt_remove_before_commit")) {
		/* As a crash would: the tombstone stays, the transaction never commits. */
		r = store_error(-ECANCELED, "remove: stopped at 'ckpt_remove_before_commit'");
		goto out;
	}
	r = idx_txn_commit(txn);
	txn = NULL;
	if (r < 0) {
		ckpt_manifest_unbury(s, ino);
		goto out_unlock;
	}
	(void)u64map_del(&s->touched, ino);
	pthread_mutex_unlock(&s->mu);
	if (maint_fault("ckpt_remove_after_commit"))
		return store_error(-ECANCELED, "remove: stopped at 'ckpt_remove_after_commit'");
	r = idx_db_sync(s->db);
	if (r >= 0)
		ckpt_manifest_forget(s, ino);
	return r;
out:
	idx_txn_abort(txn);
out_unlock:
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int dir_bytes(int store_dirfd, const char *sub, uint64_t *ret)
{
	_cleanup_close_ int fd = openat(store_dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;
	uint64_t sum = 0;

	if (fd < 0)
		return store_error(-errno, "open '%s': %m", sub);
	d = fdopendir(TAKE_FD(fd));
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
	}
	closedir(d);
	*ret = sum;
	return 0;
}

int store_df(struct store *s, struct store_df *ret_df)
{
	struct idx_txn *txn = NULL;
	struct idx_cursor *c = NULL;
	struct store_df df = {0};
	const void *key, *val;
	size_t klen, vlen;
	uint64_t b;
	int r;

	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = idx_cursor_open(txn, IDX_INODES, &c);
	if (r < 0)
		goto out;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		if (vlen >= INODE_REC_LEN && S_ISREG(le32_get(val)))
			df.logical_bytes += le64_get((const uint8_t *)val + 24);
	}
	idx_cursor_close(c);
	c = NULL;
	if (r != -ENOENT)
		goto out;
	r = idx_cursor_open(txn, IDX_CHUNKS, &c);
	if (r < 0)
		goto out;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		uint32_t bytes, desc;

		if (vlen != CHUNK_VAL_LEN)
			continue;
		desc = le32_get((const uint8_t *)val + 12);
		bytes = PACK_REC_HDR_LEN + pack_desc_len(desc);
		if (le64_get((const uint8_t *)val + 16) > 0) {
			df.nchunks++;
			df.referenced_raw += STORE_CHUNK_SIZE;
			df.stored_bytes += bytes;
			if (pack_desc_codec(desc) == PACK_CODEC_DEFER)
				df.deferred_bytes += bytes;
		} else {
			df.garbage_bytes += bytes;
		}
	}
	idx_cursor_close(c);
	c = NULL;
	if (r != -ENOENT)
		goto out;
	r = idx_cursor_open(txn, IDX_DIRENTS, &c);
	if (r < 0)
		goto out;
	uint8_t rk[8];
	be64_put(rk, STORE_ROOT_INO);
	for (r = idx_cursor_seek(c, rk, sizeof(rk), &key, &klen, NULL, NULL); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, NULL, NULL)) {
		if (klen <= 8 || memcmp(key, rk, 8) != 0)
			break;
		df.ncheckpoints++;
	}
	if (r < 0 && r != -ENOENT)
		goto out;
	r = dir_bytes(s->dirfd, PACK_DIR, &df.pack_bytes);
	if (r < 0)
		goto out;
	r = dir_bytes(s->dirfd, STORE_MANIFEST_DIR, &b);
	if (r < 0)
		goto out;
	df.index_bytes = b;
	r = idx_db_used_bytes(s->db, &b);
	if (r < 0)
		goto out;
	df.index_bytes += b;
	*ret_df = df;
	r = 0;
out:
	idx_cursor_close(c);
	idx_txn_abort(txn);
	return r;
}
