// SPDX-License-Identifier: MIT
/*
 * rebuild.c - rebuilds the LMDB index from the truth on disk: the pack files (chunk locations,
 * every record verified) and the per-checkpoint manifests (namespace, attributes, xattrs, hard
 * links, file maps, refcounts, sealed state). The old index is moved aside, never deleted.
 * Runs only while no mount holds the store's lock, and holds that lock itself throughout.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/util.h"
#include "index/maint_priv.h"
#include "index/manifest.h"
#include "index/pack.h"
#include "index/store_priv.h"

struct ment {
	struct inode in; /* valid unless is_link */
	bool is_link;
	uint64_t ino; /* the inode this name refers to */
	uint32_t parent_id;
	char *name;
};

struct rb {
	const char *path;
	int dirfd;
	uint8_t secret[CHUNK_SECRET_LEN];
	struct idx_db *db;
	struct idx_txn *txn;
	store_fsck_cb cb;
	void *ctx;
	int problems;
	uint32_t max_pack;
	uint64_t next_ino;
	struct inode root;

	/* the manifest being replayed */
	const char *mpath;
	char ckpt_name[256];
	uint64_t ckpt_ino;
	bool sealed;
	uint8_t content_id[STORE_CONTENT_ID_LEN];
	struct ment *ents;
	size_t nents, cap;
	/* the file-map block being filled */
	bool fm_active;
	uint64_t fm_ino, fm_block;
	uint8_t fm_ids[FMAP_SLOTS * STORE_CHUNK_ID_LEN];
};

__attribute__((format(printf, 2, 3))) static void rb_problem(struct rb *b, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	b->problems++;
	if (b->cb)
		b->cb(b->ctx, line);
}

/* The header layout is store.c's (magic, version, secret length, secret, created, XXH3-64);
 * the rebuild reads it without opening the index, which may be the broken part. */
static int rb_read_secret(struct rb *b)
{
	uint8_t hdr[STORE_HEADER_LEN];
	_cleanup_close_ int fd = -1;
	uint32_t version;
	int r;

	fd = openat(b->dirfd, STORE_HEADER_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return store_error(-errno, "'%s' is not a ckptfs store: '%s': %m", b->path,
				   STORE_HEADER_NAME);
	r = pread_full(fd, hdr, sizeof(hdr), 0);
	if (r < 0)
		return store_error(r, "read store header '%s/%s': %s", b->path, STORE_HEADER_NAME,
				   r == -EBADMSG ? "truncated" : strerror(-r));
	if (memcmp(hdr, STORE_HEADER_MAGIC, 8) != 0)
		return store_error(-EBADMSG, "'%s/%s' has a bad magic: not a ckptfs store", b->path,
				   STORE_HEADER_NAME);
	version = le32_get(hdr + 8);
	if (version != STORE_FORMAT_VERSION)
		return store_error(-EOPNOTSUPP,
				   "store '%s' has format version %u; this build reads version %u",
				   b->path, version, STORE_FORMAT_VERSION);
	if (le64_get(hdr + 216) != XXH3_64bits(hdr, 216) || le32_get(hdr + 12) != CHUNK_SECRET_LEN)
		return store_error(-EBADMSG, "store header '%s/%s' is corrupt (checksum mismatch)",
				   b->path, STORE_HEADER_NAME);
	memcpy(b->secret, hdr + 16, CHUNK_SECRET_LEN);
	return 0;
}

/* index/ -> index.broken-<UTC time>[-N]; then a fresh empty index/. */
static int rb_move_index_aside(struct rb *b, char *ret_name, size_t len)
{
	struct tm tm;
	time_t now = time(NULL);
	char stamp[32];

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	ret_name[0] = '\0';
	for (int n = 0; n < 100; n++) {
		if (n == 0)
			snprintf(ret_name, len, STORE_INDEX_DIR ".broken-%s", stamp);
		else
			snprintf(ret_name, len, STORE_INDEX_DIR ".broken-%s-%d", stamp, n);
		if (renameat2(b->dirfd, STORE_INDEX_DIR, b->dirfd, ret_name, RENAME_NOREPLACE) == 0)
			break;
		if (errno == ENOENT) {
			ret_name[0] = '\0'; /* no index at all: nothing to keep */
			break;
		}
		if (errno != EEXIST)
			return store_error(-errno, "move '%s/" STORE_INDEX_DIR "' aside: %m",
					   b->path);
	}
	if (mkdirat(b->dirfd, STORE_INDEX_DIR, 0755) < 0)
		return store_error(-errno, "create '%s/" STORE_INDEX_DIR "': %m", b->path);
	if (fsync(b->dirfd) < 0)
		return store_error(-errno, "fsync store directory '%s': %m", b->path);
	return 0;
}

/* --- packs ---------------------------------------------------------------------------------- */

struct rb_scan {
	struct rb *b;
	uint32_t number;
	uint64_t added;
};

static int rb_pack_cb(void *ctx, const struct chunk_id *id, uint64_t off, uint32_t desc,
		      const void *payload)
{
	struct rb_scan *sc = ctx;
	struct maint_loc loc = {.pack = sc->number, .off = off, .desc = desc};
	uint8_t val[CHUNK_VAL_LEN];
	char hex[CHUNK_ID_HEX_LEN], path[64];
	int r;

	if (maint_verify_record(sc->b->secret, id, desc, payload) < 0) {
		pack_path(sc->number, path, sizeof(path));
		rb_problem(sc->b,
			   "pack '%s' offset %llu: record of chunk %s does not verify; skipped",
			   path, (unsigned long long)off, chunk_id_to_hex(id->b, hex));
		return 0;
	}
	maint_loc_encode(val, &loc);
	/* The same chunk in two packs (a gc that crashed after copying): the first one wins. */
	r = idx_put(sc->b->txn, IDX_CHUNKS, id->b, STORE_CHUNK_ID_LEN, val, sizeof(val),
		    IDX_NOOVERWRITE);
	if (r == -EEXIST)
		return 0;
	if (r >= 0)
		sc->added++;
	return r;
}

static int rb_scan_packs(struct rb *b)
{
	_cleanup_free_ uint32_t *numbers = NULL;
	size_t n = 0;
	int r;

	r = maint_list_packs(b->dirfd, &numbers, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int fd = -1;
		struct rb_scan sc = {.b = b, .number = numbers[i]};
		uint64_t end = 0;

		b->max_pack = MAX(b->max_pack, numbers[i]);
		r = pack_open_read(b->dirfd, numbers[i], &fd);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			rb_problem(b, "%s; pack skipped", store_last_error());
			continue;
		}
		r = idx_txn_begin(b->db, true, &b->txn);
		if (r < 0)
			return r;
		r = pack_scan(fd, numbers[i], rb_pack_cb, &sc, &end);
		if (r == -EBADMSG || r == -EOPNOTSUPP) {
			rb_problem(b, "%s; records after offset %llu skipped", store_last_error(),
				   (unsigned long long)end);
			r = 0;
		}
		if (r < 0) {
			idx_txn_abort(b->txn);
			b->txn = NULL;
			return r;
		}
		r = idx_txn_commit(b->txn);
		b->txn = NULL;
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- manifests ------------------------------------------------------------------------------ */

static void ment_path(struct rb *b, uint32_t id, char *buf, size_t len)
{
	const char *parts[64];
	size_t np = 0, at = 0;

	while (id > 1 && id <= b->nents && np < ARRAY_SIZE(parts)) {
		parts[np++] = b->ents[id - 1].name;
		id = b->ents[id - 1].parent_id;
	}
	snprintf(buf, len, "%s", b->ckpt_name);
	at = strlen(buf);
	while (np > 0 && at + 1 < len) {
		int n = snprintf(buf + at, len - at, "/%s", parts[--np]);
		if (n < 0)
			break;
		at += (size_t)n;
	}
}

static int rb_dirent_add(struct rb *b, struct inode *dir, const char *name, uint64_t ino,
			 uint32_t mode)
{
	uint8_t k[8 + 256], v[DIRENT_VAL_LEN], ck[16];
	size_t n = strlen(name);
	uint64_t cookie = dir->next_cookie++;
	int r;

	be64_put(k, dir->ino);
	memcpy(k + 8, name, n);
	le64_put(v, ino);
	le64_put(v + 8, cookie);
	le32_put(v + 16, mode);
	r = idx_put(b->txn, IDX_DIRENTS, k, 8 + n, v, sizeof(v), IDX_NOOVERWRITE);
	if (r < 0)
		return r;
	be64_put(ck, dir->ino);
	be64_put(ck + 8, cookie);
	return idx_put(b->txn, IDX_DIRCOOKIES, ck, sizeof(ck), name, n, 0);
}

static int rb_fmap_flush(struct rb *b)
{
	uint8_t k[FMAP_KEY_LEN];
	size_t used;

	if (!b->fm_active)
		return 0;
	b->fm_active = false;
	/* A fresh index: an all-hole block has nothing to delete. */
	used = fmap_block_used(b->fm_ids);
	if (used == 0)
		return 0;
	fmap_key(k, b->fm_ino, b->fm_block);
	return idx_put(b->txn, IDX_FMAP, k, sizeof(k), b->fm_ids, used * STORE_CHUNK_ID_LEN, 0);
}

static int rb_entry(void *ctx, const struct manifest_entry *e)
{
	struct rb *b = ctx;
	struct ment *m, *parent = NULL;
	struct inode *pdir;
	int r;

	if (e->id != b->nents + 1)
		return store_error(-EBADMSG, "manifest '%s': entry %u out of order", b->mpath,
				   e->id);
	if (array_grow(&b->ents, &b->cap, b->nents, sizeof(*b->ents), 64) < 0)
		return -ENOMEM;
	if (e->parent_id) {
		parent = &b->ents[e->parent_id - 1];
		if (parent->is_link || !S_ISDIR(parent->in.mode))
			return store_error(-EBADMSG,
					   "manifest '%s': entry %u has a non-directory "
					   "parent",
					   b->mpath, e->id);
		pdir = &parent->in;
	} else {
		pdir = &b->root;
	}
	m = &b->ents[b->nents];
	memset(m, 0, sizeof(*m));
	m->parent_id = e->parent_id;
	m->name = strdup(e->id == 1 ? b->ckpt_name : e->name);
	if (!m->name)
		return -ENOMEM;
	b->nents++;
	if (e->is_link) {
		struct ment *owner = &b->ents[e->link_to - 1];

		if (owner->is_link || S_ISDIR(owner->in.mode))
			return store_error(-EBADMSG, "manifest '%s': entry %u links to a directory",
					   b->mpath, e->id);
		m->is_link = true;
		m->ino = owner->ino;
		owner->in.nlink++;
		return rb_dirent_add(b, pdir, e->name, owner->ino, owner->in.mode);
	}
	if (S_ISLNK(e->mode) && (e->target_len == 0 || e->target_len > INODE_MAX_LINK))
		return store_error(-EBADMSG, "manifest '%s': entry %u has a bad symlink target",
				   b->mpath, e->id);
	m->ino = e->id == 1 ? b->ckpt_ino : b->next_ino++;
	m->in.ino = m->ino;
	m->in.mode = e->mode;
	m->in.uid = e->uid;
	m->in.gid = e->gid;
	m->in.size = e->size;
	m->in.rdev = e->rdev;
	m->in.atime = e->atime;
	m->in.mtime = e->mtime;
	m->in.ctime = e->ctime;
	m->in.ckpt_ino = b->ckpt_ino;
	if (S_ISDIR(e->mode)) {
		m->in.nlink = 2;
		m->in.parent = pdir->ino;
		m->in.next_cookie = 1;
		pdir->nlink++;
	} else {
		m->in.nlink = 1;
	}
	if (e->id == 1 && b->sealed) {
		m->in.flags |= INODE_F_SEALED;
		memcpy(m->in.content_id, b->content_id, STORE_CONTENT_ID_LEN);
	}
	if (S_ISLNK(e->mode)) {
		m->in.target = malloc(e->target_len + 1);
		if (!m->in.target)
			return -ENOMEM;
		memcpy(m->in.target, e->target, e->target_len);
		m->in.target[e->target_len] = '\0';
		m->in.target_len = e->target_len;
	}
	r = rb_dirent_add(b, pdir, e->id == 1 ? b->ckpt_name : e->name, m->ino, m->in.mode);
	if (r == -EEXIST && e->id == 1)
		return store_error(-EEXIST,
				   "manifest '%s': checkpoint name '%s' is taken by another "
				   "manifest",
				   b->mpath, b->ckpt_name);
	return r;
}

static int rb_xattr(void *ctx, uint32_t id, const char *name, size_t name_len, const void *value,
		    size_t value_len)
{
	struct rb *b = ctx;
	uint8_t k[8 + 256];

	if (id == 0 || id > b->nents || name_len == 0 || name_len > 255)
		return store_error(-EBADMSG, "manifest '%s': bad xattr of entry %u", b->mpath, id);
	be64_put(k, b->ents[id - 1].ino);
	memcpy(k + 8, name, name_len);
	return idx_put(b->txn, IDX_XATTRS, k, 8 + name_len, value, value_len, 0);
}

static int rb_chunk(void *ctx, uint32_t id, uint64_t idx, const struct chunk_id *chunk)
{
	struct rb *b = ctx;
	struct ment *m;
	uint32_t len;
	int r;

	if (id == 0 || id > b->nents || b->ents[id - 1].is_link ||
	    !S_ISREG(b->ents[id - 1].in.mode) || chunk_id_is_null(chunk))
		return store_error(-EBADMSG, "manifest '%s': bad chunk of entry %u", b->mpath, id);
	m = &b->ents[id - 1];
	if (b->fm_active && (b->fm_ino != m->ino || b->fm_block != idx / FMAP_SLOTS)) {
		r = rb_fmap_flush(b);
		if (r < 0)
			return r;
	}
	if (!b->fm_active) {
		b->fm_active = true;
		b->fm_ino = m->ino;
		b->fm_block = idx / FMAP_SLOTS;
		memset(b->fm_ids, 0, sizeof(b->fm_ids));
	}
	memcpy(b->fm_ids + (idx % FMAP_SLOTS) * STORE_CHUNK_ID_LEN, chunk->b, STORE_CHUNK_ID_LEN);
	r = chunk_ref(b->txn, chunk, &len);
	if (r == -ENOENT) {
		/* No pack holds it: index it as lost, so reads of this range fail with EIO
		 * (never zeros) and fsck names it, while refcounts stay exact. */
		struct maint_loc loc = {
			.pack = MAINT_LOST_PACK,
			.desc = pack_desc(STORE_CHUNK_SIZE, PACK_CODEC_RAW),
			.refs = 1,
		};
		uint8_t val[CHUNK_VAL_LEN];
		char hex[CHUNK_ID_HEX_LEN], path[512];

		ment_path(b, id, path, sizeof(path));
		rb_problem(b,
			   "'%s' offset %llu: chunk %s is in no pack; that range of the file "
			   "now reads as an I/O error",
			   path, (unsigned long long)(idx * STORE_CHUNK_SIZE),
			   chunk_id_to_hex(chunk->b, hex));
		maint_loc_encode(val, &loc);
		r = idx_put(b->txn, IDX_CHUNKS, chunk->b, STORE_CHUNK_ID_LEN, val, sizeof(val), 0);
		len = (uint32_t)maint_rec_bytes(loc.desc);
	}
	if (r < 0)
		return r;
	m->in.stored += len;
	return 0;
}

static void rb_ents_free(struct rb *b)
{
	for (size_t i = 0; i < b->nents; i++) {
		if (!b->ents[i].is_link)
			inode_done(&b->ents[i].in);
		free(b->ents[i].name);
	}
	b->nents = 0;
}

/* Replays one manifest in its own transaction; a bad one is reported and leaves no trace. */
static int rb_replay(struct rb *b, const char *rel, uint64_t want_ino)
{
	static const struct manifest_ops ops = {
		.entry = rb_entry,
		.xattr = rb_xattr,
		.chunk = rb_chunk,
	};
	_cleanup_free_ uint8_t *body = NULL;
	struct manifest_header h;
	struct inode saved_root = b->root;
	uint64_t saved_next = b->next_ino;
	size_t len;
	int r;

	r = manifest_read(b->dirfd, rel, &h, &body, &len);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		rb_problem(b, "%s; that checkpoint is not restored", store_last_error());
		return 0;
	}
	if (h.ckpt_ino != want_ino) {
		rb_problem(b, "manifest '%s' names checkpoint inode %llu; skipped", rel,
			   (unsigned long long)h.ckpt_ino);
		return 0;
	}
	b->mpath = rel;
	b->ckpt_ino = h.ckpt_ino;
	b->sealed = h.flags & MANIFEST_F_SEALED;
	memcpy(b->content_id, h.content_id, STORE_CONTENT_ID_LEN);
	b->fm_active = false;
	/* The name comes first in the body; parse once for it, then for real. */
	if (len < 2 || le16_get(body) > 255 || 2u + le16_get(body) > len) {
		rb_problem(b, "manifest '%s': bad checkpoint name; not restored", rel);
		return 0;
	}
	memcpy(b->ckpt_name, body + 2, le16_get(body));
	b->ckpt_name[le16_get(body)] = '\0';
	r = idx_txn_begin(b->db, true, &b->txn);
	if (r < 0)
		return r;
	r = manifest_parse(body, len, &ops, b, NULL);
	if (r >= 0)
		r = rb_fmap_flush(b);
	for (size_t i = 0; i < b->nents && r >= 0; i++)
		if (!b->ents[i].is_link)
			r = ino_save(b->txn, &b->ents[i].in);
	rb_ents_free(b);
	if (r < 0) {
		idx_txn_abort(b->txn);
		b->txn = NULL;
		b->root = saved_root;
		b->next_ino = saved_next;
		if (r == -ENOMEM || r == -ENOSPC || r == -EIO)
			return r;
		rb_problem(b,
			   "manifest '%s' (checkpoint '%s'): %s; that checkpoint is not restored",
			   rel, b->ckpt_name, store_last_error());
		return 0;
	}
	r = idx_txn_commit(b->txn);
	b->txn = NULL;
	return r;
}

struct mfile {
	uint64_t ino;
	char rel[300];
};

static int cmp_mfile(const void *a, const void *b)
{
	const struct mfile *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int rb_manifests(struct rb *b)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ struct mfile *list = NULL;
	size_t n = 0, cap = 0;
	uint64_t max_ino = STORE_ROOT_INO;
	struct dirent *de;
	DIR *d;
	int r = 0;

	fd = openat(b->dirfd, STORE_MANIFEST_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return store_error(-errno, "open '%s/" STORE_MANIFEST_DIR "': %m", b->path);
	d = fdopendir(fd);
	if (!d)
		return -errno;
	fd = -1;
	while ((de = readdir(d))) {
		size_t digits = strspn(de->d_name, "0123456789");
		uint64_t ino;

		if (digits == 0 || digits > 19 || strcmp(de->d_name + digits, ".manifest") != 0)
			continue;
		ino = strtoull(de->d_name, NULL, 10);
		if (ino <= STORE_ROOT_INO) {
			rb_problem(b,
				   "manifest '" STORE_MANIFEST_DIR "/%s': bad checkpoint inode; "
				   "skipped",
				   de->d_name);
			continue;
		}
		r = array_grow(&list, &cap, n, sizeof(*list), 16);
		if (r < 0)
			break;
		list[n].ino = ino;
		snprintf(list[n].rel, sizeof(list[n].rel), STORE_MANIFEST_DIR "/%s", de->d_name);
		n++;
		max_ino = MAX(max_ino, ino);
	}
	closedir(d);
	if (r < 0)
		return r;
	if (n)
		qsort(list, n, sizeof(*list), cmp_mfile);
	/* Checkpoints keep their inode numbers (manifests are named by them); everything
	 * else is numbered after the largest. */
	b->next_ino = max_ino + 1;
	for (size_t i = 0; i < n; i++) {
		/* The header must agree with the file name it is found under. */
		r = rb_replay(b, list[i].rel, list[i].ino);
		if (r < 0)
			return r;
	}
	return 0;
}

int store_rebuild_index_report(const char *path, store_fsck_cb cb, void *ctx)
{
	struct rb b = {.path = path, .dirfd = -1, .cb = cb, .ctx = ctx};
	_cleanup_close_ int lockfd = -1;
	_cleanup_free_ char *idxdir = NULL;
	char aside[96];
	int r;

	b.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b.dirfd < 0)
		return store_error(-errno, "open store '%s': %m", path);
	r = rb_read_secret(&b);
	if (r < 0)
		goto out;
	/* The writable mount holds this lock for its lifetime; we hold it until we are done,
	 * so no mount can start on a half-built index either. */
	lockfd = openat(b.dirfd, STORE_LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lockfd < 0) {
		r = store_error(-errno, "open '%s/%s': %m", path, STORE_LOCK_NAME);
		goto out;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK
			    ? store_error(-EBUSY,
					  "store '%s' is mounted (its lock is held): unmount "
					  "it before rebuilding the index",
					  path)
			    : store_error(-errno, "lock '%s/%s': %m", path, STORE_LOCK_NAME);
		goto out;
	}
	r = rb_move_index_aside(&b, aside, sizeof(aside));
	if (r < 0)
		goto out;
	if (aside[0])
		log_debug("rebuild: the old index of '%s' is kept as '%s'", path, aside);
	if (asprintf(&idxdir, "%s/%s", path, STORE_INDEX_DIR) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = idx_db_open(idxdir, false, &b.db);
	if (r < 0)
		goto out;
	r = rb_scan_packs(&b);
	if (r < 0)
		goto out;
	b.root.ino = STORE_ROOT_INO;
	b.root.mode = S_IFDIR | 0755;
	b.root.nlink = 2;
	b.root.next_cookie = 1;
	b.root.parent = STORE_ROOT_INO;
	clock_gettime(CLOCK_REALTIME, &b.root.atime);
	b.root.mtime = b.root.ctime = b.root.atime;
	r = rb_manifests(&b);
	if (r < 0)
		goto out;
	r = idx_txn_begin(b.db, true, &b.txn);
	if (r < 0)
		goto out;
	r = ino_save(b.txn, &b.root);
	if (r >= 0)
		r = meta_put_u64(b.txn, "next_ino", b.next_ino);
	if (r >= 0)
		r = meta_put_u64(b.txn, "next_pack", (uint64_t)b.max_pack + 1);
	if (r >= 0)
		r = meta_put_u64(b.txn, "format", STORE_FORMAT_VERSION);
	if (r < 0) {
		idx_txn_abort(b.txn);
		b.txn = NULL;
		goto out;
	}
	r = idx_txn_commit(b.txn);
	b.txn = NULL;
	if (r >= 0)
		r = idx_db_sync(b.db);
out:
	idx_txn_abort(b.txn);
	rb_ents_free(&b);
	free(b.ents);
	idx_db_close(b.db);
	if (b.dirfd >= 0)
		close(b.dirfd);
	return r < 0 ? r : b.problems;
}

int store_rebuild_index(const char *path)
{
	return store_rebuild_index_report(path, NULL, NULL);
}
