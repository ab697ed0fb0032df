// SPDX-License-Identifier: MIT
/* ns.c - the namespace: inodes, directory entries with stable readdir cookies, rename, xattrs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/util.h"
#include "index/store_priv.h"

#define NAME_MAX_LEN   255u
#define DIRENT_KEY_MAX (8 + NAME_MAX_LEN)
#define XATTR_KEY_MAX  (8 + 255)

void now_ts(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

int ino_load(struct idx_txn *txn, uint64_t ino, struct inode *ret)
{
	uint8_t k[8];
	const void *v;
	size_t vlen;
	int r;

	ino_key(k, ino);
	r = idx_get(txn, IDX_INODES, k, sizeof(k), &v, &vlen);
	if (r < 0)
		return r;
	r = inode_decode(ino, v, vlen, ret);
	if (r == -EBADMSG)
		return store_error(r, "inode %llu: index record too short (%zu bytes)",
				   (unsigned long long)ino, vlen);
	return r;
}

int ino_load_once(struct store *s, uint64_t ino, struct inode *ret)
{
	struct idx_txn *txn = NULL;
	int r = idx_txn_begin(s->db, false, &txn);

	if (r < 0)
		return r;
	r = ino_load(txn, ino, ret);
	idx_txn_abort(txn);
	return r;
}

int ino_save(struct idx_txn *txn, const struct inode *in)
{
	uint8_t k[8];
	void *v;
	int r;

	ino_key(k, in->ino);
	r = idx_put_reserve(txn, IDX_INODES, k, sizeof(k), inode_encoded_len(in), &v);
	if (r < 0)
		return r;
	inode_encode(in, v);
	return 0;
}

int meta_get_u64(struct idx_txn *txn, const char *name, uint64_t *ret)
{
	const void *v;
	size_t vlen;
	int r = idx_get(txn, IDX_META, name, strlen(name), &v, &vlen);

	if (r < 0)
		return r;
	if (vlen != 8)
		return store_error(-EBADMSG, "index meta '%s' has %zu bytes", name, vlen);
	*ret = le64_get(v);
	return 0;
}

int meta_put_u64(struct idx_txn *txn, const char *name, uint64_t v)
{
	uint8_t b[8];

	le64_put(b, v);
	return idx_put(txn, IDX_META, name, strlen(name), b, sizeof(b), 0);
}

int ino_alloc(struct idx_txn *txn, uint64_t *ret_ino)
{
	uint64_t next;
	int r = meta_get_u64(txn, "next_ino", &next);

	if (r < 0)
		return r;
	r = meta_put_u64(txn, "next_ino", next + 1);
	if (r < 0)
		return r;
	*ret_ino = next;
	return 0;
}

int ckpt_is_sealed(struct idx_txn *txn, uint64_t ckpt_ino, bool *ret_sealed)
{
	struct inode c;
	int r;

	if (ckpt_ino == 0 || ckpt_ino == STORE_ROOT_INO) {
		*ret_sealed = false;
		return 0;
	}
	r = ino_load(txn, ckpt_ino, &c);
	if (r < 0)
		return r;
	*ret_sealed = c.flags & INODE_F_SEALED;
	inode_done(&c);
	return 0;
}

static int name_check(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || !strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
		return -EINVAL;
	if (n > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	return 0;
}

static size_t dirent_key(uint8_t *k, uint64_t parent, const char *name)
{
	size_t n = strlen(name);

	be64_put(k, parent);
	memcpy(k + 8, name, n);
	return 8 + n;
}

static int dirent_get(struct idx_txn *txn, uint64_t parent, const char *name, uint64_t *ret_ino,
		      uint64_t *ret_cookie, uint32_t *ret_mode)
{
	uint8_t k[DIRENT_KEY_MAX];
	const void *v;
	size_t vlen;
	int r;

	r = idx_get(txn, IDX_DIRENTS, k, dirent_key(k, parent, name), &v, &vlen);
	if (r < 0)
		return r;
	if (vlen != DIRENT_VAL_LEN)
		return store_error(-EBADMSG, "directory %llu entry '%s': bad record",
				   (unsigned long long)parent, name);
	*ret_ino = le64_get(v);
	if (ret_cookie)
		*ret_cookie = le64_get((const uint8_t *)v + 8);
	if (ret_mode)
		*ret_mode = le32_get((const uint8_t *)v + 16);
	return 0;
}

/* Adds name -> ino under dir (whose next_cookie advances; the caller saves dir). */
static int dirent_add(struct idx_txn *txn, struct inode *dir, const char *name, uint64_t ino,
		      uint32_t mode)
{
	uint8_t k[DIRENT_KEY_MAX], v[DIRENT_VAL_LEN], ck[16];
	uint64_t cookie = dir->next_cookie++;
	int r;

	le64_put(v, ino);
	le64_put(v + 8, cookie);
	le32_put(v + 16, mode);
	r = idx_put(txn, IDX_DIRENTS, k, dirent_key(k, dir->ino, name), v, sizeof(v),
		    IDX_NOOVERWRITE);
	if (r < 0)
		return r;
	be64_put(ck, dir->ino);
	be64_put(ck + 8, cookie);
	return idx_put(txn, IDX_DIRCOOKIES, ck, sizeof(ck), name, strlen(name), 0);
}

static int dirent_del(struct idx_txn *txn, uint64_t parent, const char *name)
{
	uint8_t k[DIRENT_KEY_MAX], ck[16];
	uint64_t ino, cookie;
	int r;

	r = dirent_get(txn, parent, name, &ino, &cookie, NULL);
	if (r < 0)
		return r;
	r = idx_del(txn, IDX_DIRENTS, k, dirent_key(k, parent, name));
	if (r < 0)
		return r;
	be64_put(ck, parent);
	be64_put(ck + 8, cookie);
	r = idx_del(txn, IDX_DIRCOOKIES, ck, sizeof(ck));
	return r == -ENOENT ? 0 : r;
}

int dir_list_children(struct idx_txn *txn, uint64_t dir_ino, struct dir_child **ret_kids,
		      size_t *ret_n)
{
	struct idx_cursor *c = NULL;
	struct dir_child *kids = NULL;
	size_t n = 0, cap = 0;
	uint8_t k[8];
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_cursor_open(txn, IDX_DIRENTS, &c);
	if (r < 0)
		return r;
	be64_put(k, dir_ino);
	for (r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		if (klen <= 8 || klen > DIRENT_KEY_MAX || memcmp(key, k, 8) != 0 ||
		    vlen != DIRENT_VAL_LEN)
			break;
		r = array_grow(&kids, &cap, n, sizeof(*kids), 16);
		if (r < 0)
			break;
		kids[n].ino = le64_get(val);
		kids[n].len = klen - 8;
		memcpy(kids[n].name, (const uint8_t *)key + 8, klen - 8);
		kids[n].name[klen - 8] = '\0';
		n++;
	}
	idx_cursor_close(c);
	if (r < 0 && r != -ENOENT) {
		free(kids);
		return r;
	}
	*ret_kids = kids;
	*ret_n = n;
	return 0;
}

static int dir_is_empty(struct idx_txn *txn, uint64_t dir, bool *ret_empty)
{
	struct idx_cursor *c = NULL;
	uint8_t k[8];
	const void *key;
	size_t klen;
	int r;

	r = idx_cursor_open(txn, IDX_DIRENTS, &c);
	if (r < 0)
		return r;
	be64_put(k, dir);
	r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, NULL, NULL);
	idx_cursor_close(c);
	if (r == -ENOENT) {
		*ret_empty = true;
		return 0;
	}
	if (r < 0)
		return r;
	*ret_empty = !(klen >= 8 && memcmp(key, k, 8) == 0);
	return 0;
}

/* Loads dir and checks that it is a directory in a checkpoint that accepts changes. */
static int dir_load_writable(struct idx_txn *txn, uint64_t ino, struct inode *ret)
{
	bool sealed;
	int r;

	r = ino_load(txn, ino, ret);
	if (r < 0)
		return r;
	if (!S_ISDIR(ret->mode)) {
		r = -ENOTDIR;
		goto fail;
	}
	r = ckpt_is_sealed(txn, ret->ckpt_ino, &sealed);
	if (r < 0)
		goto fail;
	if (sealed) {
		r = -EROFS;
		goto fail;
	}
	return 0;
fail:
	inode_done(ret);
	return r;
}

/* Starts a namespace change that adds name under parent: checks the name, begins a write
 * transaction and loads parent (dir_load_writable). On success the caller owns *ret_txn and
 * *ret_dir; on failure nothing is left open. */
static int dir_change_begin(struct store *s, uint64_t parent, const char *name,
			    struct idx_txn **ret_txn, struct inode *ret_dir)
{
	struct idx_txn *txn = NULL;
	int r;

	r = name_check(name);
	if (r < 0)
		return r;
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		return r;
	r = dir_load_writable(txn, parent, ret_dir);
	if (r < 0) {
		idx_txn_abort(txn);
		return r;
	}
	*ret_txn = txn;
	return 0;
}

static int attr_fill(struct idx_txn *txn, const struct inode *in, struct store_attr *ret_attr)
{
	bool sealed;
	int r = ckpt_is_sealed(txn, in->ckpt_ino, &sealed);

	if (r < 0)
		return r;
	inode_to_attr(in, sealed, ret_attr);
	return 0;
}

/* Overlay of what this process has buffered but not yet indexed (s->mu held). */
static void attr_overlay(struct store *s, struct store_attr *a)
{
	struct oinode *oi = u64map_get(&s->inodes, a->ino);

	/* oi->size and oi->mtime are always current (only this process writes file data); the
	 * index may lag behind them by a running or pending flush. */
	if (oi) {
		a->size = oi->size;
		a->mtime = oi->mtime;
		if (oi->meta_dirty || oi->fl_active)
			a->ctime = oi->mtime;
	}
}

static int getattr_txn(struct store *s, struct idx_txn *txn, uint64_t ino,
		       struct store_attr *ret_attr)
{
	struct inode in;
	int r = ino_load(txn, ino, &in);

	if (r < 0)
		return r;
	r = attr_fill(txn, &in, ret_attr);
	inode_done(&in);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->mu);
	attr_overlay(s, ret_attr);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int store_getattr(struct store *s, uint64_t ino, struct store_attr *ret_attr)
{
	struct idx_txn *txn = NULL;
	int r = idx_txn_begin(s->db, false, &txn);

	if (r < 0)
		return r;
	r = getattr_txn(s, txn, ino, ret_attr);
	idx_txn_abort(txn);
	return r;
}

int store_setattr(struct store *s, uint64_t ino, const struct store_attr *attr, unsigned to_set,
		  struct store_attr *ret_attr)
{
	struct idx_txn *txn = NULL;
	struct inode in;
	struct timespec now;
	bool sealed, have_in = false;
	int r;

	pthread_mutex_lock(&s->mu);
	/* A running flush writes the size/mtime it snapshotted: let it finish first so ours wins.
	 */
	for (struct oinode *oi; (oi = u64map_get(&s->inodes, ino)) && oi->fl_active;)
		pthread_cond_wait(&s->flushed, &s->mu);
	if (to_set & STORE_SET_SIZE) {
		struct oinode *oi;

		r = idx_txn_begin(s->db, false, &txn);
		if (r < 0)
			goto out;
		r = ino_load(txn, ino, &in);
		if (r >= 0) {
			r = ckpt_is_sealed(txn, in.ckpt_ino, &sealed);
			inode_done(&in);
		}
		idx_txn_abort(txn);
		txn = NULL;
		if (r < 0)
			goto out;
		if (sealed) {
			r = -EROFS;
			goto out;
		}
		if (S_ISDIR(in.mode)) {
			r = -EISDIR;
			goto out;
		}
		if (!S_ISREG(in.mode)) {
			r = -EINVAL;
			goto out;
		}
		r = oinode_get(s, ino, &oi);
		if (r < 0)
			goto out;
		r = oinode_truncate(s, oi, attr->size);
		if (r >= 0)
			r = oinode_flush(s, oi);
		oinode_put(s, oi);
		if (r < 0)
			goto out;
	}
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		goto out;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	have_in = true;
	r = ckpt_is_sealed(txn, in.ckpt_ino, &sealed);
	if (r < 0)
		goto out;
	if (sealed && (to_set & ~(unsigned)STORE_SET_SIZE)) {
		r = -EROFS;
		goto out;
	}
	now_ts(&now);
	if (to_set & STORE_SET_MODE)
		in.mode = (in.mode & S_IFMT) | (attr->mode & 07777);
	if (to_set & STORE_SET_UID)
		in.uid = attr->uid;
	if (to_set & STORE_SET_GID)
		in.gid = attr->gid;
	if (to_set & STORE_SET_ATIME)
		in.atime = attr->atime;
	if (to_set & STORE_SET_ATIME_NOW)
		in.atime = now;
	if (to_set & (STORE_SET_MTIME | STORE_SET_MTIME_NOW)) {
		struct oinode *oi = u64map_get(&s->inodes, ino);

		in.mtime = (to_set & STORE_SET_MTIME) ? attr->mtime : now;
		if (oi)
			oi->mtime = in.mtime;
	}
	in.ctime = (to_set & STORE_SET_CTIME) ? attr->ctime : now;
	if (to_set & ~(unsigned)STORE_SET_SIZE) {
		r = ino_save(txn, &in);
		if (r < 0)
			goto out;
	}
	if (ret_attr) {
		r = attr_fill(txn, &in, ret_attr);
		if (r < 0)
			goto out;
		attr_overlay(s, ret_attr);
	}
	r = idx_txn_commit(txn);
	txn = NULL;
	if (r >= 0)
		ckpt_touch_locked(s, in.ckpt_ino);
out:
	idx_txn_abort(txn);
	if (have_in)
		inode_done(&in);
	pthread_mutex_unlock(&s->mu);
	return r;
}

int store_lookup(struct store *s, uint64_t parent, const char *name, struct store_attr *ret_attr)
{
	struct idx_txn *txn = NULL;
	uint64_t ino;
	int r;

	if (strlen(name) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = dirent_get(txn, parent, name, &ino, NULL, NULL);
	if (r >= 0)
		r = getattr_txn(s, txn, ino, ret_attr);
	idx_txn_abort(txn);
	return r;
}

/* Enters in as name under dir, stamps dir's mtime/ctime with in's ctime, saves both inodes and
 * fills ret_attr (optional) from in; the caller commits. */
static int dir_add_entry_save(struct idx_txn *txn, struct inode *dir, const char *name,
			      struct inode *in, struct store_attr *ret_attr)
{
	int r;

	r = dirent_add(txn, dir, name, in->ino, in->mode);
	if (r < 0)
		return r;
	dir->mtime = dir->ctime = in->ctime;
	r = ino_save(txn, dir);
	if (r >= 0)
		r = ino_save(txn, in);
	if (r >= 0 && ret_attr)
		r = attr_fill(txn, in, ret_attr);
	return r;
}

/* Creates a new inode named name under parent; in carries mode/uid/gid/rdev/target. */
static int ns_create(struct store *s, uint64_t parent, const char *name, struct inode *in,
		     struct store_attr *ret_attr)
{
	struct idx_txn *txn = NULL;
	struct inode dir;
	int r;

	r = dir_change_begin(s, parent, name, &txn, &dir);
	if (r < 0)
		return r;
	if (parent == STORE_ROOT_INO && !S_ISDIR(in->mode)) {
		/* Only checkpoints (directories) live at the top. */
		r = store_error(-EPERM,
				"'%s': only directories (checkpoints) may be created at the "
				"top of the store",
				name);
		goto out;
	}
	r = ino_alloc(txn, &in->ino);
	if (r < 0)
		goto out;
	now_ts(&in->atime);
	in->mtime = in->ctime = in->atime;
	if (S_ISDIR(in->mode)) {
		in->nlink = 2;
		in->parent = parent;
		in->next_cookie = 1;
		dir.nlink++;
	} else {
		in->nlink = 1;
	}
	in->ckpt_ino = parent == STORE_ROOT_INO ? in->ino : dir.ckpt_ino;
	r = dir_add_entry_save(txn, &dir, name, in, ret_attr);
	if (r < 0)
		goto out;
	r = idx_txn_commit(txn);
	txn = NULL;
	if (r >= 0)
		ckpt_touch(s, in->ckpt_ino);
out:
	idx_txn_abort(txn);
	inode_done(&dir);
	return r;
}

int store_mknod(struct store *s, uint64_t parent, const char *name, uint32_t mode, uint64_t rdev,
		uint32_t uid, uint32_t gid, struct store_attr *ret_attr)
{
	struct inode in = {.mode = mode, .uid = uid, .gid = gid, .rdev = rdev};

	if ((mode & S_IFMT) == 0)
		in.mode |= S_IFREG;
	if (S_ISDIR(in.mode) || S_ISLNK(in.mode))
		return -EINVAL;
	return ns_create(s, parent, name, &in, ret_attr);
}

int store_mkdir(struct store *s, uint64_t parent, const char *name, uint32_t mode, uint32_t uid,
		uint32_t gid, struct store_attr *ret_attr)
{
	struct inode in = {.mode = S_IFDIR | (mode & 07777), .uid = uid, .gid = gid};

	return ns_create(s, parent, name, &in, ret_attr);
}

int store_symlink(struct store *s, uint64_t parent, const char *name, const char *target,
		  uint32_t uid, uint32_t gid, struct store_attr *ret_attr)
{
	struct inode in = {.mode = S_IFLNK | 0777, .uid = uid, .gid = gid};

	in.target_len = strlen(target);
	if (in.target_len == 0)
		return -ENOENT;
	if (in.target_len > INODE_MAX_LINK)
		return -ENAMETOOLONG;
	in.target = (char *)target;
	in.size = in.target_len;
	return ns_create(s, parent, name, &in, ret_attr);
}

int store_readlink(struct store *s, uint64_t ino, char *buf, size_t size)
{
	struct inode in;
	int r;

	r = ino_load_once(s, ino, &in);
	if (r < 0)
		return r;
	if (!S_ISLNK(in.mode)) {
		r = -EINVAL;
	} else {
		if (size > 0) {
			size_t n = MIN(in.target_len, size - 1);
			memcpy(buf, in.target, n);
			buf[n] = '\0';
		}
		r = (int)in.target_len;
	}
	inode_done(&in);
	return r;
}

int store_link(struct store *s, uint64_t ino, uint64_t newparent, const char *newname,
	       struct store_attr *ret_attr)
{
	struct idx_txn *txn = NULL;
	struct inode in, dir;
	bool have_in = false;
	int r;

	r = dir_change_begin(s, newparent, newname, &txn, &dir);
	if (r < 0)
		return r;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	have_in = true;
	if (S_ISDIR(in.mode)) {
		r = -EPERM;
		goto out;
	}
	if (newparent == STORE_ROOT_INO || in.ckpt_ino != dir.ckpt_ino) {
		r = -EXDEV;
		goto out;
	}
	if (in.nlink == 0) {
		r = -ENOENT;
		goto out;
	}
	now_ts(&in.ctime);
	in.nlink++;
	r = dir_add_entry_save(txn, &dir, newname, &in, ret_attr);
	if (r < 0)
		goto out;
	r = idx_txn_commit(txn);
	txn = NULL;
	if (r >= 0) {
		pthread_mutex_lock(&s->mu);
		ckpt_touch_locked(s, dir.ckpt_ino);
		if (ret_attr)
			attr_overlay(s, ret_attr);
		pthread_mutex_unlock(&s->mu);
	}
out:
	idx_txn_abort(txn);
	if (have_in)
		inode_done(&in);
	inode_done(&dir);
	return r;
}

/* Drops one link of a non-directory (s->mu held, inside txn). The last link destroys the inode
 * unless this process still has it open. */
static int drop_link(struct store *s, struct idx_txn *txn, struct inode *in)
{
	struct oinode *oi = u64map_get(&s->inodes, in->ino);
	uint8_t k[8];
	int r;

	if (in->nlink > 0)
		in->nlink--;
	now_ts(&in->ctime);
	if (in->nlink > 0)
		return ino_save(txn, in);
	if (oi && oi->opens > 0) {
		oi->unlinked = true;
		ino_key(k, in->ino);
		r = idx_put(txn, IDX_ORPHANS, k, sizeof(k), "", 0, 0);
		if (r < 0)
			return r;
		return ino_save(txn, in);
	}
	/* Buffered data of a file nobody has open any more has nowhere to go. */
	if (oi)
		oinode_discard(s, oi);
	return ino_destroy(txn, in->ino);
}

/* Removes a directory inode that is known empty (inside txn). */
static int destroy_dir(struct idx_txn *txn, uint64_t ino)
{
	return ino_destroy(txn, ino);
}

static int ns_remove(struct store *s, uint64_t parent, const char *name, bool want_dir)
{
	struct idx_txn *txn = NULL;
	struct inode dir, in;
	bool have_dir = false, have_in = false, sealed, empty, bury = false;
	uint64_t ino;
	int r;

	if (strlen(name) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	pthread_mutex_lock(&s->mu);
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		goto out;
	r = ino_load(txn, parent, &dir);
	if (r < 0)
		goto out;
	have_dir = true;
	r = ckpt_is_sealed(txn, dir.ckpt_ino, &sealed);
	if (r < 0)
		goto out;
	/* A whole checkpoint may go even when sealed; nothing inside a sealed one may. */
	if (sealed && parent != STORE_ROOT_INO) {
		r = -EROFS;
		goto out;
	}
	r = dirent_get(txn, parent, name, &ino, NULL, NULL);
	if (r < 0)
		goto out;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	have_in = true;
	if (want_dir && !S_ISDIR(in.mode)) {
		r = -ENOTDIR;
		goto out;
	}
	if (!want_dir && S_ISDIR(in.mode)) {
		r = -EISDIR;
		goto out;
	}
	if (want_dir) {
		r = dir_is_empty(txn, ino, &empty);
		if (r < 0)
			goto out;
		if (!empty) {
			r = -ENOTEMPTY;
			goto out;
		}
	}
	r = dirent_del(txn, parent, name);
	if (r < 0)
		goto out;
	if (want_dir) {
		r = destroy_dir(txn, ino);
		dir.nlink--;
	} else {
		r = drop_link(s, txn, &in);
	}
	if (r < 0)
		goto out;
	now_ts(&dir.mtime);
	dir.ctime = dir.mtime;
	r = ino_save(txn, &dir);
	if (r < 0)
		goto out;
	/* An empty checkpoint going away: as in store_ckpt_remove, its manifest first. */
	bury = want_dir && parent == STORE_ROOT_INO;
	if (bury) {
		r = ckpt_manifest_bury(s, ino);
		if (r < 0)
			goto out;
	}
	r = idx_txn_commit(txn);
	txn = NULL;
	if (r < 0 && bury)
		ckpt_manifest_unbury(s, ino);
	if (r >= 0) {
		if (bury)
			(void)u64map_del(&s->touched, ino);
		else
			ckpt_touch_locked(s, dir.ckpt_ino);
	}
out:
	idx_txn_abort(txn);
	pthread_mutex_unlock(&s->mu);
	if (have_in)
		inode_done(&in);
	if (have_dir)
		inode_done(&dir);
	if (r >= 0 && bury) {
		r = idx_db_sync(s->db);
		if (r >= 0)
			ckpt_manifest_forget(s, ino);
	}
	return r;
}

int store_unlink(struct store *s, uint64_t parent, const char *name)
{
	return ns_remove(s, parent, name, false);
}

int store_rmdir(struct store *s, uint64_t parent, const char *name)
{
	return ns_remove(s, parent, name, true);
}

/* Moves the subtree at ino into checkpoint ckpt (s->mu held). Hard-linked files cannot follow:
 * their other names would end up in another checkpoint. */
static int retag_subtree(struct store *s, struct idx_txn *txn, uint64_t ino, uint64_t ckpt,
			 unsigned depth)
{
	struct dir_child *kids = NULL;
	struct oinode *oi;
	struct inode in;
	size_t nkids = 0;
	int r;

	if (depth > 4096)
		return -ELOOP;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		return r;
	if (!S_ISDIR(in.mode) && in.nlink > 1) {
		inode_done(&in);
		return -EXDEV;
	}
	in.ckpt_ino = ckpt;
	r = ino_save(txn, &in);
	if (r < 0)
		goto out;
	oi = u64map_get(&s->inodes, ino);
	if (oi)
		oi->ckpt_ino = ckpt;
	if (!S_ISDIR(in.mode))
		goto out;
	/* Collect children first: writing while a cursor walks the same tree is not allowed. */
	r = dir_list_children(txn, ino, &kids, &nkids);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < nkids && r >= 0; i++)
		r = retag_subtree(s, txn, kids[i].ino, ckpt, depth + 1);
out:
	free(kids);
	inode_done(&in);
	return r;
}

/* Is anc an ancestor of (or equal to) dir? Walks parent pointers up to the root. */
static int is_ancestor(struct idx_txn *txn, uint64_t anc, uint64_t dir, bool *ret)
{
	for (unsigned depth = 0; depth < 4096; depth++) {
		struct inode in;
		uint64_t up;
		int r;

		if (dir == anc) {
			*ret = true;
			return 0;
		}
		if (dir == STORE_ROOT_INO) {
			*ret = false;
			return 0;
		}
		r = ino_load(txn, dir, &in);
		if (r < 0)
			return r;
		up = in.parent;
		inode_done(&in);
		dir = up;
	}
	return -ELOOP;
}

struct rename_side {
	uint64_t parent;
	const char *name;
	struct inode dir;
	bool have_dir;
	uint64_t ino;
	uint32_t mode;
	bool exists;
};

/* Where an inode named under parent belongs. */
static uint64_t ckpt_of(const struct inode *parent_dir, uint64_t ino)
{
	return parent_dir->ino == STORE_ROOT_INO ? ino : parent_dir->ckpt_ino;
}

int store_rename(struct store *s, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, unsigned flags)
{
	struct rename_side a = {.parent = parent, .name = name};
	struct rename_side b = {.parent = newparent, .name = newname};
	struct idx_txn *txn = NULL;
	struct inode src = {0}, dst = {0};
	bool have_src = false, have_dst = false, sealed_a, sealed_b, top_move, anc;
	struct inode *bd;
	struct timespec now;
	uint64_t buried[2], touched[4];
	size_t nburied = 0, ntouched = 0;
	int r;

	if ((flags & STORE_RENAME_NOREPLACE) && (flags & STORE_RENAME_EXCHANGE))
		return -EINVAL;
	if (strlen(name) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	r = name_check(newname);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->mu);
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		goto out;
	r = ino_load(txn, parent, &a.dir);
	if (r < 0)
		goto out;
	a.have_dir = true;
	r = ino_load(txn, newparent, &b.dir);
	if (r < 0)
		goto out;
	b.have_dir = true;
	if (!S_ISDIR(a.dir.mode) || !S_ISDIR(b.dir.mode)) {
		r = -ENOTDIR;
		goto out;
	}
	r = dirent_get(txn, parent, name, &a.ino, NULL, &a.mode);
	if (r < 0)
		goto out;
	r = dirent_get(txn, newparent, newname, &b.ino, NULL, &b.mode);
	if (r < 0 && r != -ENOENT)
		goto out;
	b.exists = r >= 0;
	r = 0;
	if (b.exists && b.ino == a.ino)
		goto commit; /* same inode: POSIX says do nothing */
	if ((flags & STORE_RENAME_NOREPLACE) && b.exists) {
		r = -EEXIST;
		goto out;
	}
	if ((flags & STORE_RENAME_EXCHANGE) && !b.exists) {
		r = -ENOENT;
		goto out;
	}
	r = ckpt_is_sealed(txn, ckpt_of(&a.dir, a.ino), &sealed_a);
	if (r >= 0)
		r = ckpt_is_sealed(txn, b.exists ? ckpt_of(&b.dir, b.ino) : b.dir.ckpt_ino,
				   &sealed_b);
	if (r < 0)
		goto out;
	/* Renaming whole checkpoints at the top stays allowed when they are sealed. */
	top_move = parent == STORE_ROOT_INO && newparent == STORE_ROOT_INO;
	if (!top_move && (sealed_a || sealed_b)) {
		r = -EROFS;
		goto out;
	}
	if (top_move && b.exists && !(flags & STORE_RENAME_EXCHANGE) && sealed_b) {
		r = -EROFS; /* replacing a sealed checkpoint would destroy it */
		goto out;
	}
	if ((newparent == STORE_ROOT_INO && !S_ISDIR(a.mode)) ||
	    ((flags & STORE_RENAME_EXCHANGE) && parent == STORE_ROOT_INO && !S_ISDIR(b.mode))) {
		r = -EPERM;
		goto out;
	}
	r = ino_load(txn, a.ino, &src);
	if (r < 0)
		goto out;
	have_src = true;
	if (S_ISDIR(src.mode) && newparent != parent) {
		r = is_ancestor(txn, a.ino, newparent, &anc);
		if (r < 0)
			goto out;
		if (anc) {
			r = -EINVAL;
			goto out;
		}
	}
	if (b.exists) {
		r = ino_load(txn, b.ino, &dst);
		if (r < 0)
			goto out;
		have_dst = true;
		if ((flags & STORE_RENAME_EXCHANGE) && S_ISDIR(dst.mode) && newparent != parent) {
			r = is_ancestor(txn, b.ino, parent, &anc);
			if (r < 0)
				goto out;
			if (anc) {
				r = -EINVAL;
				goto out;
			}
		}
	}
	/* In one directory both sides must edit the same record (cookies, nlink). */
	bd = parent == newparent ? &a.dir : &b.dir;
	now_ts(&now);
	if (flags & STORE_RENAME_EXCHANGE) {
		/* Swap the two names' targets in place; cookies stay with the names. */
		uint8_t k[DIRENT_KEY_MAX];
		uint64_t ca, cb;
		uint8_t v[DIRENT_VAL_LEN];

		r = dirent_get(txn, parent, name, &a.ino, &ca, NULL);
		if (r >= 0)
			r = dirent_get(txn, newparent, newname, &b.ino, &cb, NULL);
		if (r < 0)
			goto out;
		le64_put(v, b.ino);
		le64_put(v + 8, ca);
		le32_put(v + 16, b.mode);
		r = idx_put(txn, IDX_DIRENTS, k, dirent_key(k, parent, name), v, sizeof(v), 0);
		if (r < 0)
			goto out;
		le64_put(v, a.ino);
		le64_put(v + 8, cb);
		le32_put(v + 16, a.mode);
		r = idx_put(txn, IDX_DIRENTS, k, dirent_key(k, newparent, newname), v, sizeof(v),
			    0);
		if (r < 0)
			goto out;
		if (S_ISDIR(src.mode) != S_ISDIR(dst.mode) && parent != newparent) {
			if (S_ISDIR(src.mode)) {
				a.dir.nlink--;
				bd->nlink++;
			} else {
				a.dir.nlink++;
				bd->nlink--;
			}
		}
		if (S_ISDIR(dst.mode))
			dst.parent = parent;
		dst.ctime = now;
	} else {
		if (b.exists) {
			if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode)) {
				r = -ENOTDIR;
				goto out;
			}
			if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode)) {
				r = -EISDIR;
				goto out;
			}
			r = dirent_del(txn, newparent, newname);
			if (r < 0)
				goto out;
			if (S_ISDIR(dst.mode)) {
				bool empty;

				r = dir_is_empty(txn, b.ino, &empty);
				if (r >= 0 && !empty)
					r = -ENOTEMPTY;
				if (r >= 0)
					r = destroy_dir(txn, b.ino);
				bd->nlink--;
			} else {
				r = drop_link(s, txn, &dst);
			}
			if (r < 0)
				goto out;
			have_dst = false;
			inode_done(&dst);
		}
		r = dirent_del(txn, parent, name);
		if (r < 0)
			goto out;
		r = dirent_add(txn, bd, newname, a.ino, a.mode);
		if (S_ISDIR(src.mode) && newparent != parent) {
			a.dir.nlink--;
			bd->nlink++;
		}
		if (r < 0)
			goto out;
	}
	if (S_ISDIR(src.mode))
		src.parent = newparent;
	src.ctime = now;
	r = ino_save(txn, &src);
	if (r >= 0 && have_dst)
		r = ino_save(txn, &dst);
	if (r < 0)
		goto out;
	a.dir.mtime = a.dir.ctime = bd->mtime = bd->ctime = now;
	r = ino_save(txn, &a.dir);
	if (r >= 0 && bd != &a.dir)
		r = ino_save(txn, bd);
	if (r < 0)
		goto out;
	/* Moving between checkpoints (or making a directory a checkpoint) re-homes the subtree. */
	if (ckpt_of(bd, a.ino) != src.ckpt_ino) {
		r = retag_subtree(s, txn, a.ino, ckpt_of(bd, a.ino), 0);
		if (r < 0)
			goto out;
	}
	if (have_dst && (flags & STORE_RENAME_EXCHANGE) && ckpt_of(&a.dir, b.ino) != dst.ckpt_ino) {
		r = retag_subtree(s, txn, b.ino, ckpt_of(&a.dir, b.ino), 0);
		if (r < 0)
			goto out;
	}
	/* A checkpoint that stops being one (replaced at the top, or moved below another
	 * directory) loses its manifest before the commit, as in store_ckpt_remove. */
	if (b.exists && newparent == STORE_ROOT_INO && !(flags & STORE_RENAME_EXCHANGE))
		buried[nburied++] = b.ino;
	if (parent == STORE_ROOT_INO && newparent != STORE_ROOT_INO)
		buried[nburied++] = a.ino;
	if (b.exists && (flags & STORE_RENAME_EXCHANGE) && newparent == STORE_ROOT_INO &&
	    parent != STORE_ROOT_INO)
		buried[nburied++] = b.ino;
	for (size_t i = 0; i < nburied; i++) {
		r = ckpt_manifest_bury(s, buried[i]);
		if (r < 0) {
			while (i-- > 0)
				ckpt_manifest_unbury(s, buried[i]);
			nburied = 0;
			goto out;
		}
	}
	/* Both sides' checkpoints change (old and new homes; a directory moved to the top
	 * becomes a checkpoint that needs a first manifest). */
	touched[ntouched++] = ckpt_of(&a.dir, a.ino);
	touched[ntouched++] = ckpt_of(bd, a.ino);
	if (b.exists && (flags & STORE_RENAME_EXCHANGE)) {
		touched[ntouched++] = ckpt_of(&b.dir, b.ino);
		touched[ntouched++] = ckpt_of(&a.dir, b.ino);
	}
commit:
	r = idx_txn_commit(txn);
	txn = NULL;
	for (size_t i = 0; r < 0 && i < nburied; i++)
		ckpt_manifest_unbury(s, buried[i]);
	if (r < 0)
		nburied = 0;
	for (size_t i = 0; r >= 0 && i < ntouched; i++)
		ckpt_touch_locked(s, touched[i]);
	for (size_t i = 0; r >= 0 && i < nburied; i++)
		(void)u64map_del(&s->touched, buried[i]);
out:
	idx_txn_abort(txn);
	pthread_mutex_unlock(&s->mu);
	if (r >= 0 && nburied) {
		r = idx_db_sync(s->db);
		for (size_t i = 0; r >= 0 && i < nburied; i++)
			ckpt_manifest_forget(s, buried[i]);
	}
	if (have_src)
		inode_done(&src);
	if (have_dst)
		inode_done(&dst);
	if (a.have_dir)
		inode_done(&a.dir);
	if (b.have_dir)
		inode_done(&b.dir);
	return r;
}

int store_readdir(struct store *s, uint64_t dir_ino, uint64_t cookie, store_readdir_cb cb,
		  void *ctx)
{
	struct idx_txn *txn = NULL;
	struct idx_cursor *c = NULL;
	struct inode dir;
	uint8_t k[16];
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = ino_load(txn, dir_ino, &dir);
	if (r < 0)
		goto out;
	inode_done(&dir);
	if (!S_ISDIR(dir.mode)) {
		r = -ENOTDIR;
		goto out;
	}
	r = idx_cursor_open(txn, IDX_DIRCOOKIES, &c);
	if (r < 0)
		goto out;
	be64_put(k, dir_ino);
	be64_put(k + 8, cookie + 1);
	for (r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		char name[NAME_MAX_LEN + 1];
		uint64_t ino;
		uint32_t mode;
		int cr;

		if (klen != 16 || memcmp(key, k, 8) != 0)
			break;
		if (vlen == 0 || vlen > NAME_MAX_LEN) {
			r = store_error(-EBADMSG, "directory %llu: bad readdir cookie record",
					(unsigned long long)dir_ino);
			break;
		}
		memcpy(name, val, vlen);
		name[vlen] = '\0';
		cookie = be64_get((const uint8_t *)key + 8);
		r = dirent_get(txn, dir_ino, name, &ino, NULL, &mode);
		if (r == -ENOENT)
			continue; /* only possible with a damaged index; skip rather than fail */
		if (r < 0)
			break;
		cr = cb(ctx, name, ino, mode, cookie);
		if (cr != 0)
			break;
	}
	if (r == -ENOENT)
		r = 0;
	else if (r > 0)
		r = 0;
out:
	idx_cursor_close(c);
	idx_txn_abort(txn);
	return r < 0 ? r : 0;
}

/* --- xattrs ------------------------------------------------------------------------------- */

static size_t xattr_key(uint8_t *k, uint64_t ino, const char *name)
{
	size_t n = strlen(name);

	be64_put(k, ino);
	memcpy(k + 8, name, n);
	return 8 + n;
}

static bool is_ckpt_root(const struct inode *in)
{
	return in->ino != STORE_ROOT_INO && in->ckpt_ino == in->ino;
}

int store_setxattr(struct store *s, uint64_t ino, const char *name, const void *value, size_t size,
		   int flags)
{
	struct idx_txn *txn = NULL;
	struct inode in;
	uint8_t k[XATTR_KEY_MAX];
	const void *v;
	size_t vlen, n = strlen(name);
	bool sealed;
	int r;

	if (n == 0 || n > 255)
		return -ERANGE;
	if (strncmp(name, "user.", 5) != 0)
		return -EOPNOTSUPP;
	if (size > 65536)
		return -E2BIG;
	if (!strcmp(name, STORE_CONTENT_ID_XATTR))
		return -EPERM;
	if (!strcmp(name, STORE_SEAL_XATTR)) {
		uint8_t id[STORE_CONTENT_ID_LEN];

		r = ino_load_once(s, ino, &in);
		if (r < 0)
			return r;
		inode_done(&in);
		if (!is_ckpt_root(&in))
			return store_error(-EPERM,
					   "inode %llu: only a checkpoint directory can be "
					   "sealed",
					   (unsigned long long)ino);
		return ckpt_seal_ino(s, ino, id);
	}
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		return r;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	r = ckpt_is_sealed(txn, in.ckpt_ino, &sealed);
	if (r >= 0 && sealed)
		r = -EROFS;
	if (r < 0)
		goto out_in;
	r = idx_get(txn, IDX_XATTRS, k, xattr_key(k, ino, name), &v, &vlen);
	if (r >= 0 && (flags & XATTR_CREATE)) {
		r = -EEXIST;
		goto out_in;
	}
	if (r == -ENOENT && (flags & XATTR_REPLACE)) {
		r = -ENODATA;
		goto out_in;
	}
	if (r < 0 && r != -ENOENT)
		goto out_in;
	r = idx_put(txn, IDX_XATTRS, k, xattr_key(k, ino, name), value, size, 0);
	if (r < 0)
		goto out_in;
	now_ts(&in.ctime);
	r = ino_save(txn, &in);
	if (r < 0)
		goto out_in;
	inode_done(&in);
	r = idx_txn_commit(txn);
	if (r >= 0)
		ckpt_touch(s, in.ckpt_ino);
	return r;
out_in:
	inode_done(&in);
out:
	idx_txn_abort(txn);
	return r;
}

static ssize_t copy_value(const void *v, size_t vlen, void *value, size_t size)
{
	if (size == 0)
		return (ssize_t)vlen;
	if (size < vlen)
		return -ERANGE;
	memcpy(value, v, vlen);
	return (ssize_t)vlen;
}

ssize_t store_getxattr(struct store *s, uint64_t ino, const char *name, void *value, size_t size)
{
	struct idx_txn *txn = NULL;
	struct inode in;
	uint8_t k[XATTR_KEY_MAX];
	const void *v;
	size_t vlen;
	ssize_t r;

	if (strlen(name) > 255)
		return -ERANGE;
	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	inode_done(&in);
	if (!strcmp(name, STORE_CONTENT_ID_XATTR)) {
		char hex[CHUNK_ID_HEX_LEN];

		if (!is_ckpt_root(&in) || !(in.flags & INODE_F_SEALED)) {
			r = -ENODATA;
			goto out;
		}
		chunk_id_to_hex(in.content_id, hex);
		r = copy_value(hex, 2 * STORE_CONTENT_ID_LEN, value, size);
		goto out;
	}
	r = idx_get(txn, IDX_XATTRS, k, xattr_key(k, ino, name), &v, &vlen);
	if (r == -ENOENT)
		r = -ENODATA;
	if (r >= 0)
		r = copy_value(v, vlen, value, size);
out:
	idx_txn_abort(txn);
	return r;
}

ssize_t store_listxattr(struct store *s, uint64_t ino, char *list, size_t size)
{
	struct idx_txn *txn = NULL;
	struct idx_cursor *c = NULL;
	struct inode in;
	uint8_t k[8];
	const void *key;
	size_t klen, total = 0;
	ssize_t r;

	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	inode_done(&in);
	if (is_ckpt_root(&in) && (in.flags & INODE_F_SEALED)) {
		size_t n = sizeof(STORE_CONTENT_ID_XATTR);

		if (size && total + n <= size)
			memcpy(list + total, STORE_CONTENT_ID_XATTR, n);
		total += n;
	}
	r = idx_cursor_open(txn, IDX_XATTRS, &c);
	if (r < 0)
		goto out;
	ino_key(k, ino);
	for (r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, NULL, NULL); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, NULL, NULL)) {
		size_t n;

		if (klen <= 8 || memcmp(key, k, 8) != 0)
			break;
		n = klen - 8;
		if (size && total + n + 1 <= size) {
			memcpy(list + total, (const uint8_t *)key + 8, n);
			list[total + n] = '\0';
		}
		total += n + 1;
	}
	if (r < 0 && r != -ENOENT)
		goto out;
	r = (size && total > size) ? -ERANGE : (ssize_t)total;
out:
	idx_cursor_close(c);
	idx_txn_abort(txn);
	return r;
}

int store_removexattr(struct store *s, uint64_t ino, const char *name)
{
	struct idx_txn *txn = NULL;
	struct inode in;
	uint8_t k[XATTR_KEY_MAX];
	bool sealed;
	int r;

	if (strlen(name) > 255)
		return -ERANGE;
	if (strncmp(name, "user.", 5) != 0)
		return -EOPNOTSUPP;
	if (!strcmp(name, STORE_CONTENT_ID_XATTR) || !strcmp(name, STORE_SEAL_XATTR))
		return -EPERM;
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		return r;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	r = ckpt_is_sealed(txn, in.ckpt_ino, &sealed);
	if (r >= 0 && sealed)
		r = -EROFS;
	if (r >= 0)
		r = idx_del(txn, IDX_XATTRS, k, xattr_key(k, ino, name));
	if (r == -ENOENT)
		r = -ENODATA;
	if (r >= 0) {
		now_ts(&in.ctime);
		r = ino_save(txn, &in);
	}
	inode_done(&in);
	if (r < 0)
		goto out;
	r = idx_txn_commit(txn);
	if (r >= 0)
		ckpt_touch(s, in.ckpt_ino);
	return r;
out:
	idx_txn_abort(txn);
	return r;
}
