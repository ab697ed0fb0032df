// SPDX-License-Identifier: MIT
/*
 * fsck.c - read-only verification of a whole store: every indexed chunk is read (pack by pack,
 * in offset order, so the disk sees sequential reads), decoded and hashed; every file-map slot,
 * refcount, directory entry, readdir cookie, link count, orphan, xattr, pack header and manifest
 * is checked against the rest. All index checks run in one read transaction, so a live mount
 * writing meanwhile is seen as one consistent snapshot.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "index/maint_priv.h"
#include "index/manifest.h"
#include "index/pack.h"
#include "index/store_priv.h"

/* --- chunk id map ----------------------------------------------------------------------------- */

static size_t cidmap_slot(const struct chunk_id *id, size_t cap)
{
	return (size_t)le64_get(id->b + 8) & (cap - 1);
}

static int cidmap_grow(struct cidmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 1024;
	struct cidmap_ent *ne = calloc(ncap, sizeof(*ne));

	if (!ne)
		return -ENOMEM;
	for (size_t j = 0; j < m->cap; j++) {
		size_t i;

		if (!(m->e[j].flags & CIDMAP_USED))
			continue;
		for (i = cidmap_slot(&m->e[j].id, ncap); ne[i].flags & CIDMAP_USED;
		     i = (i + 1) & (ncap - 1))
			;
		ne[i] = m->e[j];
	}
	free(m->e);
	m->e = ne;
	m->cap = ncap;
	return 0;
}

int cidmap_add(struct cidmap *m, const struct chunk_id *id, struct cidmap_ent **ret_ent)
{
	size_t i;

	if ((m->n + 1) * 4 > m->cap * 3) {
		int r = cidmap_grow(m);
		if (r < 0)
			return r;
	}
	for (i = cidmap_slot(id, m->cap); m->e[i].flags & CIDMAP_USED; i = (i + 1) & (m->cap - 1)) {
		if (chunk_id_equal(&m->e[i].id, id)) {
			*ret_ent = &m->e[i];
			return 1;
		}
	}
	memset(&m->e[i], 0, sizeof(m->e[i]));
	m->e[i].id = *id;
	m->e[i].flags = CIDMAP_USED;
	m->n++;
	*ret_ent = &m->e[i];
	return 0;
}

struct cidmap_ent *cidmap_get(const struct cidmap *m, const struct chunk_id *id)
{
	if (!m->cap)
		return NULL;
	for (size_t i = cidmap_slot(id, m->cap); m->e[i].flags & CIDMAP_USED;
	     i = (i + 1) & (m->cap - 1))
		if (chunk_id_equal(&m->e[i].id, id))
			return &m->e[i];
	return NULL;
}

void cidmap_free(struct cidmap *m)
{
	free(m->e);
	m->e = NULL;
	m->cap = m->n = 0;
}

/* --- state ------------------------------------------------------------------------------------ */

struct fino {
	uint32_t mode, flags;
	uint64_t nlink, size, ckpt_ino, parent, next_cookie;
	uint64_t links;	  /* directory entries naming it */
	uint64_t subdirs; /* directories: child directories */
	uint64_t dent_parent;
	char *dent_name; /* first name seen (for paths in reports) */
	bool orphan;
	uint8_t content_id[STORE_CONTENT_ID_LEN];
};

struct bad_chunk {
	struct chunk_id id;
	uint32_t pack;
	uint64_t off;
	char reason[160];
	char refs[512];
	unsigned nrefs;
};

struct fsck {
	struct store *s;
	struct idx_txn *txn;
	store_fsck_cb cb;
	void *ctx;
	int problems;
	struct u64map inodes; /* ino -> struct fino */
	struct cidmap chunks;
	struct bad_chunk *bad;
	size_t nbad, badcap;
};

__attribute__((format(printf, 2, 3))) static void problem(struct fsck *f, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	f->problems++;
	if (f->cb)
		f->cb(f->ctx, line);
}

/* "ckpt/dir/file" for an inode, from the names seen in the directory scan. */
static void ino_path(struct fsck *f, uint64_t ino, char *buf, size_t len)
{
	const char *parts[64];
	size_t np = 0, at = 0;
	uint64_t cur = ino;

	while (cur != STORE_ROOT_INO && np < ARRAY_SIZE(parts)) {
		struct fino *fi = u64map_get(&f->inodes, cur);

		if (!fi || !fi->dent_name) {
			snprintf(buf, len, "inode %llu", (unsigned long long)ino);
			return;
		}
		parts[np++] = fi->dent_name;
		cur = fi->dent_parent;
	}
	if (np == 0) {
		snprintf(buf, len, "/");
		return;
	}
	buf[0] = '\0';
	while (np > 0 && at + 1 < len) {
		int n = snprintf(buf + at, len - at, "%s%s", at ? "/" : "", parts[--np]);
		if (n < 0)
			break;
		at += (size_t)n;
	}
}

static void fino_free_all(struct fsck *f)
{
	for (size_t i = 0; i < f->inodes.cap; i++) {
		struct fino *fi = f->inodes.slots[i].val;

		if (fi) {
			free(fi->dent_name);
			free(fi);
		}
	}
	u64map_clear(&f->inodes);
}

/* --- namespace ------------------------------------------------------------------------------ */

static int load_inodes(struct fsck *f)
{
	struct idx_cursor *c = NULL;
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_cursor_open(f->txn, IDX_INODES, &c);
	if (r < 0)
		return r;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		struct inode in;
		struct fino *fi;
		uint64_t ino;

		if (klen != 8) {
			problem(f, "inode table: key of %zu bytes", klen);
			continue;
		}
		ino = be64_get(key);
		if (inode_decode(ino, val, vlen, &in) < 0) {
			problem(f, "inode %llu: record of %zu bytes does not decode",
				(unsigned long long)ino, vlen);
			continue;
		}
		inode_done(&in);
		fi = calloc(1, sizeof(*fi));
		if (!fi) {
			r = -ENOMEM;
			break;
		}
		fi->mode = in.mode;
		fi->flags = in.flags;
		fi->nlink = in.nlink;
		fi->size = in.size;
		fi->ckpt_ino = in.ckpt_ino;
		fi->parent = in.parent;
		fi->next_cookie = in.next_cookie;
		memcpy(fi->content_id, in.content_id, STORE_CONTENT_ID_LEN);
		r = u64map_put(&f->inodes, ino, fi);
		if (r < 0) {
			free(fi);
			break;
		}
	}
	idx_cursor_close(c);
	return r == -ENOENT ? 0 : r;
}

static int check_orphans(struct fsck *f)
{
	struct idx_cursor *c = NULL;
	const void *key;
	size_t klen;
	int r;

	r = idx_cursor_open(f->txn, IDX_ORPHANS, &c);
	if (r < 0)
		return r;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, NULL, NULL); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, NULL, NULL)) {
		struct fino *fi;

		if (klen != 8) {
			problem(f, "orphan table: key of %zu bytes", klen);
			continue;
		}
		fi = u64map_get(&f->inodes, be64_get(key));
		if (!fi)
			problem(f, "orphan inode %llu does not exist",
				(unsigned long long)be64_get(key));
		else
			fi->orphan = true;
	}
	idx_cursor_close(c);
	return r == -ENOENT ? 0 : r;
}

static int check_dirents(struct fsck *f)
{
	struct idx_cursor *c = NULL;
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_cursor_open(f->txn, IDX_DIRENTS, &c);
	if (r < 0)
		return r;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		char name[256], dpath[512];
		uint64_t parent, ino, cookie;
		uint32_t mode;
		struct fino *dir, *child;
		uint8_t ck[16];
		const void *cv;
		size_t cvlen;
		int q;

		if (klen <= 8 || klen > 8 + 255 || vlen != DIRENT_VAL_LEN) {
			problem(f,
				"directory entry table: record with a %zu-byte key and a %zu-byte "
				"value",
				klen, vlen);
			continue;
		}
		parent = be64_get(key);
		memcpy(name, (const uint8_t *)key + 8, klen - 8);
		name[klen - 8] = '\0';
		ino = le64_get(val);
		cookie = le64_get((const uint8_t *)val + 8);
		mode = le32_get((const uint8_t *)val + 16);
		dir = u64map_get(&f->inodes, parent);
		child = u64map_get(&f->inodes, ino);
		if (!dir || !S_ISDIR(dir->mode)) {
			problem(f,
				"directory entry '%s' -> inode %llu lives in inode %llu, which is %s",
				name, (unsigned long long)ino, (unsigned long long)parent,
				dir ? "not a directory" : "missing");
			continue;
		}
		if (!child) {
			ino_path(f, parent, dpath, sizeof(dpath));
			problem(f, "dangling directory entry '%s/%s' -> inode %llu (no such inode)",
				dpath, name, (unsigned long long)ino);
			continue;
		}
		child->links++;
		if (!child->dent_name) {
			child->dent_name = strdup(name);
			if (!child->dent_name) {
				r = -ENOMEM;
				break;
			}
			child->dent_parent = parent;
		}
		ino_path(f, parent, dpath, sizeof(dpath));
		if ((mode & S_IFMT) != (child->mode & S_IFMT))
			problem(f, "directory entry '%s/%s': type %o differs from inode %llu's %o",
				dpath, name, mode & S_IFMT, (unsigned long long)ino,
				child->mode & S_IFMT);
		if (S_ISDIR(child->mode)) {
			dir->subdirs++;
			if (child->parent != parent)
				problem(f,
					"directory '%s/%s' (inode %llu) records parent %llu, but its "
					"entry is in %llu",
					dpath, name, (unsigned long long)ino,
					(unsigned long long)child->parent,
					(unsigned long long)parent);
		}
		if (child->ckpt_ino != (parent == STORE_ROOT_INO ? ino : dir->ckpt_ino))
			problem(f,
				"'%s/%s' (inode %llu) records checkpoint %llu, its directory "
				"belongs to %llu",
				dpath, name, (unsigned long long)ino,
				(unsigned long long)child->ckpt_ino,
				(unsigned long long)(parent == STORE_ROOT_INO ? ino
									      : dir->ckpt_ino));
		if (cookie == 0 || cookie >= dir->next_cookie)
			problem(f, "directory entry '%s/%s': readdir cookie %llu outside 1..%llu",
				dpath, name, (unsigned long long)cookie,
				(unsigned long long)dir->next_cookie);
		be64_put(ck, parent);
		be64_put(ck + 8, cookie);
		q = idx_get(f->txn, IDX_DIRCOOKIES, ck, sizeof(ck), &cv, &cvlen);
		if (q == -ENOENT || (q >= 0 && (cvlen != klen - 8 || memcmp(cv, name, cvlen) != 0)))
			problem(f, "directory entry '%s/%s': readdir cookie %llu %s", dpath, name,
				(unsigned long long)cookie,
				q == -ENOENT ? "is missing" : "names another entry");
		else if (q < 0) {
			r = q;
			break;
		}
	}
	idx_cursor_close(c);
	return r == -ENOENT ? 0 : r;
}

static int check_dircookies(struct fsck *f)
{
	struct idx_cursor *c = NULL;
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_cursor_open(f->txn, IDX_DIRCOOKIES, &c);
	if (r < 0)
		return r;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		uint8_t dk[8 + 255];
		const void *dv;
		size_t dvlen;
		uint64_t parent, cookie;
		char dpath[512];
		int q;

		if (klen != 16 || vlen == 0 || vlen > 255) {
			problem(f,
				"readdir cookie table: record with a %zu-byte key and a %zu-byte "
				"value",
				klen, vlen);
			continue;
		}
		parent = be64_get(key);
		cookie = be64_get((const uint8_t *)key + 8);
		memcpy(dk, key, 8);
		memcpy(dk + 8, val, vlen);
		q = idx_get(f->txn, IDX_DIRENTS, dk, 8 + vlen, &dv, &dvlen);
		if (q < 0 && q != -ENOENT) {
			r = q;
			break;
		}
		if (q == -ENOENT || dvlen != DIRENT_VAL_LEN ||
		    le64_get((const uint8_t *)dv + 8) != cookie) {
			ino_path(f, parent, dpath, sizeof(dpath));
			problem(f, "readdir cookie %llu of '%s' names '%.*s', which %s",
				(unsigned long long)cookie, dpath, (int)vlen, (const char *)val,
				q == -ENOENT ? "has no directory entry" : "carries another cookie");
		}
	}
	idx_cursor_close(c);
	return r == -ENOENT ? 0 : r;
}

static void check_links(struct fsck *f)
{
	for (size_t i = 0; i < f->inodes.cap; i++) {
		struct fino *fi = f->inodes.slots[i].val;
		uint64_t ino = f->inodes.slots[i].key;
		char path[512];

		if (!fi)
			continue;
		ino_path(f, ino, path, sizeof(path));
		if (ino == STORE_ROOT_INO) {
			if (!S_ISDIR(fi->mode))
				problem(f, "the root inode is not a directory");
		} else if (fi->links == 0 && !(fi->orphan && fi->nlink == 0)) {
			problem(f, "inode %llu (mode %o, nlink %llu) has no directory entry",
				(unsigned long long)ino, fi->mode, (unsigned long long)fi->nlink);
			continue;
		}
		if (fi->orphan && fi->nlink != 0)
			problem(f, "'%s' (inode %llu) is listed as an orphan but has nlink %llu",
				path, (unsigned long long)ino, (unsigned long long)fi->nlink);
		if (S_ISDIR(fi->mode)) {
			if (fi->nlink != 2 + fi->subdirs)
				problem(f, "directory '%s' (inode %llu): nlink %llu, expected %llu",
					path, (unsigned long long)ino,
					(unsigned long long)fi->nlink,
					(unsigned long long)(2 + fi->subdirs));
			if (ino != STORE_ROOT_INO && fi->links > 1)
				problem(f, "directory '%s' (inode %llu) has %llu names", path,
					(unsigned long long)ino, (unsigned long long)fi->links);
		} else if (fi->nlink != fi->links) {
			problem(f, "'%s' (inode %llu): nlink %llu but %llu directory entries", path,
				(unsigned long long)ino, (unsigned long long)fi->nlink,
				(unsigned long long)fi->links);
		}
		if (fi->nlink == 0 && !fi->orphan)
			problem(f, "inode %llu has nlink 0 and is not an orphan",
				(unsigned long long)ino);
	}
}

static int check_xattrs(struct fsck *f)
{
	struct idx_cursor *c = NULL;
	const void *key;
	size_t klen;
	int r;

	r = idx_cursor_open(f->txn, IDX_XATTRS, &c);
	if (r < 0)
		return r;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, NULL, NULL); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, NULL, NULL)) {
		if (klen <= 8) {
			problem(f, "xattr table: key of %zu bytes", klen);
			continue;
		}
		if (!u64map_get(&f->inodes, be64_get(key)))
			problem(f, "xattr '%.*s' belongs to inode %llu, which does not exist",
				(int)(klen - 8), (const char *)key + 8,
				(unsigned long long)be64_get(key));
	}
	idx_cursor_close(c);
	return r == -ENOENT ? 0 : r;
}

/* --- chunks and file maps ----------------------------------------------------------------- */

static int load_chunks(struct fsck *f)
{
	struct idx_cursor *c = NULL;
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_cursor_open(f->txn, IDX_CHUNKS, &c);
	if (r < 0)
		return r;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		struct cidmap_ent *e;
		struct chunk_id id;

		if (klen != STORE_CHUNK_ID_LEN || vlen != CHUNK_VAL_LEN) {
			problem(f, "chunk table: record with a %zu-byte key and a %zu-byte value",
				klen, vlen);
			continue;
		}
		memcpy(id.b, key, STORE_CHUNK_ID_LEN);
		r = cidmap_add(&f->chunks, &id, &e);
		if (r < 0)
			break;
		maint_loc_decode(val, &e->loc);
	}
	idx_cursor_close(c);
	return r == -ENOENT ? 0 : r;
}

/* Walks every file-map slot; fn gets the inode, the chunk index and the id. */
typedef int (*slot_fn)(struct fsck *f, uint64_t ino, uint64_t idx, const struct chunk_id *id);

static int walk_fmap(struct fsck *f, slot_fn fn, bool report)
{
	struct idx_cursor *c = NULL;
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_cursor_open(f->txn, IDX_FMAP, &c);
	if (r < 0)
		return r;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		uint64_t ino, block;
		struct fino *fi;

		if (klen != FMAP_KEY_LEN || vlen % STORE_CHUNK_ID_LEN ||
		    vlen > FMAP_SLOTS * STORE_CHUNK_ID_LEN) {
			if (report)
				problem(f,
					"file map: record with a %zu-byte key and a %zu-byte value",
					klen, vlen);
			continue;
		}
		ino = be64_get(key);
		block = be64_get((const uint8_t *)key + 8);
		fi = u64map_get(&f->inodes, ino);
		if (!fi || !S_ISREG(fi->mode)) {
			if (report)
				problem(f, "file map block %llu belongs to inode %llu, which is %s",
					(unsigned long long)block, (unsigned long long)ino,
					fi ? "not a regular file" : "missing");
			continue;
		}
		if (block > UINT64_MAX / FMAP_SLOTS)
			continue;
		for (size_t i = 0; i < vlen / STORE_CHUNK_ID_LEN; i++) {
			struct chunk_id id;

			memcpy(id.b, (const uint8_t *)val + i * STORE_CHUNK_ID_LEN,
			       STORE_CHUNK_ID_LEN);
			if (chunk_id_is_null(&id))
				continue;
			r = fn(f, ino, block * FMAP_SLOTS + i, &id);
			if (r < 0)
				goto out;
		}
	}
out:
	idx_cursor_close(c);
	return r == -ENOENT ? 0 : r;
}

static int count_slot(struct fsck *f, uint64_t ino, uint64_t idx, const struct chunk_id *id)
{
	struct cidmap_ent *e = cidmap_get(&f->chunks, id);
	struct fino *fi = u64map_get(&f->inodes, ino);
	char path[512], hex[CHUNK_ID_HEX_LEN];

	if (!e || idx * STORE_CHUNK_SIZE >= fi->size)
		ino_path(f, ino, path, sizeof(path));
	if (!e) {
		problem(f, "'%s' offset %llu: chunk %s is not in the index", path,
			(unsigned long long)(idx * STORE_CHUNK_SIZE), chunk_id_to_hex(id->b, hex));
		return 0;
	}
	e->counted++;
	if (idx * STORE_CHUNK_SIZE >= fi->size)
		problem(f, "'%s': chunk slot at offset %llu lies beyond the file size %llu", path,
			(unsigned long long)(idx * STORE_CHUNK_SIZE), (unsigned long long)fi->size);
	return 0;
}

static void check_refcounts(struct fsck *f)
{
	for (size_t i = 0; i < f->chunks.cap; i++) {
		struct cidmap_ent *e = &f->chunks.e[i];
		char hex[CHUNK_ID_HEX_LEN];

		if (!(e->flags & CIDMAP_USED) || e->counted == e->loc.refs)
			continue;
		problem(f,
			"chunk %s: refcount %llu in the index, but %llu file-map slots reference "
			"it",
			chunk_id_to_hex(e->id.b, hex), (unsigned long long)e->loc.refs,
			(unsigned long long)e->counted);
	}
}

/* --- pack verification ---------------------------------------------------------------------- */

#define FSCK_WINDOW (4u << 20)

struct pref {
	uint32_t pack;
	uint64_t off;
	struct cidmap_ent *e;
};

static int cmp_pref(const void *a, const void *b)
{
	const struct pref *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

__attribute__((format(printf, 3, 4))) static int mark_bad(struct fsck *f, struct cidmap_ent *e,
							  const char *fmt, ...)
{
	struct bad_chunk *b;
	va_list ap;

	if (e->flags & CIDMAP_BAD)
		return 0;
	if (array_grow(&f->bad, &f->badcap, f->nbad, sizeof(*f->bad), 16) < 0)
		return -ENOMEM;
	b = &f->bad[f->nbad];
	memset(b, 0, sizeof(*b));
	b->id = e->id;
	b->pack = e->loc.pack;
	b->off = e->loc.off;
	va_start(ap, fmt);
	vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
	va_end(ap);
	e->flags |= CIDMAP_BAD;
	e->src_off = f->nbad; /* index into f->bad for the reference pass */
	f->nbad++;
	return 0;
}

/* Checks one record in memory against its index entry. */
static int check_record(struct fsck *f, struct cidmap_ent *e, const uint8_t *rec, uint64_t avail)
{
	uint32_t len = pack_desc_len(e->loc.desc);

	if (len > STORE_CHUNK_SIZE || avail < PACK_REC_HDR_LEN + (uint64_t)len)
		return mark_bad(f, e, "index location lies outside the pack");
	if (memcmp(rec, e->id.b, STORE_CHUNK_ID_LEN) != 0 ||
	    le32_get(rec + STORE_CHUNK_ID_LEN) != e->loc.desc)
		return mark_bad(f, e, "record header does not match the index");
	if (maint_verify_record(f->s->secret, &e->id, e->loc.desc, rec + PACK_REC_HDR_LEN) < 0)
		return mark_bad(f, e, "payload does not decode to a page with this id");
	return 0;
}

/* A pack that vanished may have been rewritten by a concurrent gc: look the chunk up again. */
static int recheck_moved(struct fsck *f, struct cidmap_ent *e, const char *why)
{
	struct idx_txn *txn = NULL;
	const void *v;
	size_t vlen;
	struct maint_loc now = {0};
	uint8_t rec[PACK_MAX_REC_LEN];
	_cleanup_close_ int fd = -1;
	int r;

	r = idx_txn_begin(f->s->db, false, &txn);
	if (r < 0)
		return r;
	r = idx_get(txn, IDX_CHUNKS, e->id.b, STORE_CHUNK_ID_LEN, &v, &vlen);
	if (r >= 0 && vlen == CHUNK_VAL_LEN)
		maint_loc_decode(v, &now);
	idx_txn_abort(txn);
	if (r < 0 || vlen != CHUNK_VAL_LEN || now.pack == e->loc.pack)
		return mark_bad(f, e, "%s", why);
	if (pack_open_read(f->s->dirfd, now.pack, &fd) < 0 ||
	    pread_full(fd, rec,
		       PACK_REC_HDR_LEN + pack_desc_len(now.desc) > sizeof(rec)
			       ? sizeof(rec)
			       : PACK_REC_HDR_LEN + pack_desc_len(now.desc),
		       now.off) < 0)
		return mark_bad(f, e, "%s (and its new location is unreadable)", why);
	e->loc.pack = now.pack;
	e->loc.off = now.off;
	e->loc.desc = now.desc;
	return check_record(f, e, rec, PACK_REC_HDR_LEN + pack_desc_len(now.desc));
}

static int verify_pack(struct fsck *f, uint32_t number, struct pref *refs, size_t n, uint8_t *win)
{
	_cleanup_close_ int fd = -1;
	char path[64], detail[256];
	uint64_t win_off = 0, win_len = 0, size;
	struct stat st;
	int r;

	pack_path(number, path, sizeof(path));
	if (number == MAINT_LOST_PACK) {
		for (size_t i = 0; i < n; i++) {
			r = mark_bad(f, refs[i].e,
				     "lost: no pack held this chunk when the index "
				     "was rebuilt");
			if (r < 0)
				return r;
		}
		return 0;
	}
	r = pack_open_read(f->s->dirfd, number, &fd);
	if (r < 0) {
		snprintf(detail, sizeof(detail), "%s", store_last_error());
		for (size_t i = 0; i < n; i++) {
			int q = r == -ENOENT ? recheck_moved(f, refs[i].e, "pack is missing")
					     : mark_bad(f, refs[i].e, "%s", detail);
			if (q < 0)
				return q;
		}
		return 0;
	}
	if (fstat(fd, &st) < 0)
		return store_error(-errno, "stat pack '%s': %m", path);
	size = (uint64_t)st.st_size;
	for (size_t i = 0; i < n; i++) {
		struct cidmap_ent *e = refs[i].e;
		uint64_t off = refs[i].off, need = PACK_REC_HDR_LEN + pack_desc_len(e->loc.desc);

		if (off < PACK_HEADER_LEN || off >= size || need > PACK_MAX_REC_LEN) {
			r = mark_bad(f, e, "index location lies outside the pack (%llu bytes)",
				     (unsigned long long)size);
			if (r < 0)
				return r;
			continue;
		}
		if (off < win_off || off + need > win_off + win_len) {
			/* Refill from this record on: entries come in offset order. */
			uint64_t want = MIN((uint64_t)FSCK_WINDOW, size - off);
			uint64_t got = 0;

			while (got < want) {
				ssize_t k = pread(fd, win + got, want - got, (off_t)(off + got));
				if (k < 0) {
					if (errno == EINTR)
						continue;
					return store_error(-errno, "read pack '%s': %m", path);
				}
				if (k == 0)
					break;
				got += (uint64_t)k;
			}
			win_off = off;
			win_len = got;
		}
		r = check_record(f, e, win + (off - win_off), win_off + win_len - off);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_packs(struct fsck *f)
{
	_cleanup_free_ uint32_t *numbers = NULL;
	_cleanup_free_ struct pref *refs = NULL;
	_cleanup_free_ uint8_t *win = NULL;
	size_t npacks = 0, n = 0, j = 0;
	int r;

	r = maint_list_packs(f->s->dirfd, &numbers, &npacks);
	if (r < 0)
		return r;
	refs = malloc(MAX(f->chunks.n, (size_t)1) * sizeof(*refs));
	win = malloc(FSCK_WINDOW);
	if (!refs || !win)
		return -ENOMEM;
	for (size_t i = 0; i < f->chunks.cap; i++) {
		struct cidmap_ent *e = &f->chunks.e[i];

		if (!(e->flags & CIDMAP_USED))
			continue;
		refs[n].pack = e->loc.pack;
		refs[n].off = e->loc.off;
		refs[n].e = e;
		n++;
	}
	qsort(refs, n, sizeof(*refs), cmp_pref);
	/* Every pack file's header, also of packs no entry points to. */
	for (size_t i = 0; i < npacks; i++) {
		_cleanup_close_ int fd = -1;
		char path[64];
		struct stat st;

		pack_path(numbers[i], path, sizeof(path));
		/* A pack a writer has just created may not have its header yet. */
		if (fstatat(f->s->dirfd, path, &st, 0) == 0 && st.st_size == 0)
			continue;
		r = pack_open_read(f->s->dirfd, numbers[i], &fd);
		if (r == -ENOENT)
			continue; /* removed by a concurrent gc */
		if (r < 0)
			problem(f, "%s", store_last_error());
	}
	while (j < n) {
		size_t k = j + 1;

		while (k < n && refs[k].pack == refs[j].pack)
			k++;
		r = verify_pack(f, refs[j].pack, refs + j, k - j, win);
		if (r < 0)
			return r;
		j = k;
	}
	return 0;
}

static int note_bad_ref(struct fsck *f, uint64_t ino, uint64_t idx, const struct chunk_id *id)
{
	struct cidmap_ent *e = cidmap_get(&f->chunks, id);
	struct bad_chunk *b;
	char path[512];
	size_t at;

	if (!e || !(e->flags & CIDMAP_BAD))
		return 0;
	b = &f->bad[e->src_off];
	if (b->nrefs++ >= 8)
		return 0;
	ino_path(f, ino, path, sizeof(path));
	at = strlen(b->refs);
	snprintf(b->refs + at, sizeof(b->refs) - at, "%s'%s' offset %llu", at ? ", " : "", path,
		 (unsigned long long)(idx * STORE_CHUNK_SIZE));
	return 0;
}

static int report_bad_chunks(struct fsck *f)
{
	int r;

	if (f->nbad == 0)
		return 0;
	r = walk_fmap(f, note_bad_ref, false);
	if (r < 0)
		return r;
	for (size_t i = 0; i < f->nbad; i++) {
		struct bad_chunk *b = &f->bad[i];
		char hex[CHUNK_ID_HEX_LEN], path[64];

		if (b->pack == MAINT_LOST_PACK) {
			problem(f, "chunk %s (in no pack): %s; referenced by %s%s",
				chunk_id_to_hex(b->id.b, hex), b->reason,
				b->nrefs ? b->refs : "no file", b->nrefs > 8 ? ", ..." : "");
			continue;
		}
		pack_path(b->pack, path, sizeof(path));
		problem(f, "chunk %s (pack '%s' offset %llu): %s; referenced by %s%s",
			chunk_id_to_hex(b->id.b, hex), path, (unsigned long long)b->off, b->reason,
			b->nrefs ? b->refs : "no file", b->nrefs > 8 ? ", ..." : "");
	}
	return 0;
}

/* --- manifests ------------------------------------------------------------------------------ */

/* A sealed checkpoint's content id must still follow from the index. */
static int check_sealed_id(struct fsck *f, uint64_t ino, const char *name, const struct fino *fi)
{
	_cleanup_free_ uint8_t *built = NULL;
	uint8_t id[STORE_CONTENT_ID_LEN];
	char hex[CHUNK_ID_HEX_LEN], hex2[CHUNK_ID_HEX_LEN];
	size_t blen;
	int r;

	r = manifest_build(f->txn, ino, name, &built, &blen, id);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		problem(f, "sealed checkpoint '%s': cannot rebuild its manifest from the index: %s",
			name, store_last_error());
	else if (memcmp(id, fi->content_id, STORE_CONTENT_ID_LEN) != 0)
		problem(f,
			"sealed checkpoint '%s': the index now gives content id %s, sealed as %s",
			name, chunk_id_to_hex(id, hex), chunk_id_to_hex(fi->content_id, hex2));
	return 0;
}

static int check_one_manifest(struct fsck *f, uint64_t ino, const char *name, bool *ret_present)
{
	_cleanup_free_ uint8_t *body = NULL;
	struct fino *fi = u64map_get(&f->inodes, ino);
	struct manifest_header h;
	const struct manifest_ops none = {0};
	char rel[96], hex[CHUNK_ID_HEX_LEN], hex2[CHUNK_ID_HEX_LEN];
	bool sealed = fi && (fi->flags & INODE_F_SEALED);
	size_t len;
	int r;

	if (sealed) {
		r = check_sealed_id(f, ino, name, fi);
		if (r < 0)
			return r;
	}
	snprintf(rel, sizeof(rel), STORE_MANIFEST_DIR "/%llu.manifest", (unsigned long long)ino);
	r = manifest_read(f->s->dirfd, rel, &h, &body, &len);
	*ret_present = r != -ENOENT;
	if (r == -ENOENT) {
		if (sealed)
			problem(f, "sealed checkpoint '%s': manifest '%s' is missing", name, rel);
		return 0;
	}
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		problem(f, "checkpoint '%s': %s", name, store_last_error());
		return 0;
	}
	if (manifest_parse(body, len, &none, NULL, NULL) < 0) {
		problem(f, "checkpoint '%s': manifest '%s' does not parse: %s", name, rel,
			store_last_error());
		return 0;
	}
	if (h.ckpt_ino != ino)
		problem(f, "checkpoint '%s': manifest '%s' names checkpoint inode %llu", name, rel,
			(unsigned long long)h.ckpt_ino);
	if (!sealed)
		return 0;
	if (!(h.flags & MANIFEST_F_SEALED))
		problem(f, "sealed checkpoint '%s': manifest '%s' is not marked sealed", name, rel);
	if (memcmp(h.content_id, fi->content_id, STORE_CONTENT_ID_LEN) != 0)
		problem(f,
			"sealed checkpoint '%s': manifest content id %s differs from the index's %s",
			name, chunk_id_to_hex(h.content_id, hex),
			chunk_id_to_hex(fi->content_id, hex2));
	return 0;
}

static int check_manifests(struct fsck *f)
{
	_cleanup_close_ int fd = -1;
	struct u64map present = {0};
	struct dirent *de;
	DIR *d;
	int r = 0;

	/* Every checkpoint (an entry under the root). */
	for (size_t i = 0; i < f->inodes.cap && r >= 0; i++) {
		struct fino *fi = f->inodes.slots[i].val;
		uint64_t ino = f->inodes.slots[i].key;
		bool have;

		if (!fi || ino == STORE_ROOT_INO || fi->dent_parent != STORE_ROOT_INO ||
		    !fi->dent_name || !S_ISDIR(fi->mode))
			continue;
		r = check_one_manifest(f, ino, fi->dent_name, &have);
		if (r >= 0 && have)
			r = u64map_put(&present, ino, (void *)1);
	}
	if (r < 0)
		goto out;
	/* Manifests of checkpoints the index does not have: a rebuild would resurrect them. */
	fd = openat(f->s->dirfd, STORE_MANIFEST_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		problem(f, "manifest directory '" STORE_MANIFEST_DIR "' cannot be opened: %s",
			strerror(errno));
		goto out;
	}
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		goto out;
	}
	fd = -1;
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		size_t digits = strspn(nm, "0123456789");
		uint64_t ino;

		if (digits == 0 || strcmp(nm + digits, ".manifest") != 0)
			continue;
		ino = strtoull(nm, NULL, 10);
		if (!u64map_get(&present, ino))
			problem(f,
				"manifest '" STORE_MANIFEST_DIR "/%s' belongs to no checkpoint in "
				"the index",
				nm);
	}
	closedir(d);
out:
	u64map_clear(&present);
	return r;
}

int store_fsck(struct store *s, store_fsck_cb cb, void *ctx)
{
	struct fsck f = {.s = s, .cb = cb, .ctx = ctx};
	int r;

	r = idx_txn_begin(s->db, false, &f.txn);
	if (r < 0)
		return r;
	r = load_inodes(&f);
	if (r >= 0 && !u64map_get(&f.inodes, STORE_ROOT_INO))
		problem(&f, "the root inode %llu is missing", (unsigned long long)STORE_ROOT_INO);
	if (r >= 0)
		r = check_orphans(&f);
	if (r >= 0)
		r = check_dirents(&f);
	if (r >= 0)
		r = check_dircookies(&f);
	if (r >= 0)
		check_links(&f);
	if (r >= 0)
		r = check_xattrs(&f);
	if (r >= 0)
		r = load_chunks(&f);
	if (r >= 0)
		r = walk_fmap(&f, count_slot, true);
	if (r >= 0)
		check_refcounts(&f);
	if (r >= 0)
		r = check_packs(&f);
	if (r >= 0)
		r = report_bad_chunks(&f);
	if (r >= 0)
		r = check_manifests(&f);
	idx_txn_abort(f.txn);
	fino_free_all(&f);
	cidmap_free(&f.chunks);
	free(f.bad);
	return r < 0 ? r : f.problems;
}
