// SPDX-License-Identifier: MIT
/*
 * fsops_dir.c - directory listing.
 *
 * Offsets handed to the kernel: 0 is the start, 1 resumes after ".", 2 after "..", and
 * FS_DIR_COOKIE_BASE + c resumes after the store entry whose next cookie is c. The store's cookies
 * stay valid across concurrent changes, so a listing resumed after a rename or unlink neither
 * repeats nor skips the entries that did not change.
 *
 * The store's readdir callback only collects names: attributes for readdirplus are fetched after
 * store_readdir() returns, so no store call is made from inside another.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs_priv.h"

#define FS_DIR_COOKIE_BASE 2u

struct dir_ent {
	uint64_t ino;
	uint64_t next_cookie;
	uint32_t mode;
	char name[];
};

struct dir_collect {
	struct dir_ent **ents;
	size_t n, cap;
	size_t budget; /* bytes of reply space still unclaimed */
	bool plus;
	int err;
};

static int collect_cb(void *arg, const char *name, uint64_t ino, uint32_t mode,
		      uint64_t next_cookie)
{
	struct dir_collect *c = arg;
	size_t len = strlen(name);
	size_t need = c->plus ? fuse_add_direntry_plus(NULL, NULL, 0, name, NULL, 0)
			      : fuse_add_direntry(NULL, NULL, 0, name, NULL, 0);
	struct dir_ent *e;

	if (next_cookie > (uint64_t)INT64_MAX - FS_DIR_COOKIE_BASE) {
		c->err = -EOVERFLOW;
		return 1;
	}
	if (need > c->budget)
		return 1;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		struct dir_ent **p = realloc(c->ents, cap * sizeof(*p));
		if (!p) {
			c->err = -ENOMEM;
			return 1;
		}
		c->ents = p;
		c->cap = cap;
	}
	e = malloc(sizeof(*e) + len + 1);
	if (!e) {
		c->err = -ENOMEM;
		return 1;
	}
	e->ino = ino;
	e->next_cookie = next_cookie;
	e->mode = mode;
	memcpy(e->name, name, len + 1);
	c->ents[c->n++] = e;
	c->budget -= need;
	return 0;
}

static void collect_free(struct dir_collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->ents[i]);
	free(c->ents);
}

/* Adds "." and ".." when the offset asks for them; returns bytes used, or 0 if nothing fit. */
static size_t add_dots(fuse_req_t req, fuse_ino_t ino, char *buf, size_t size, off_t *off,
		       bool plus)
{
	static const char *const names[2] = {".", ".."};
	size_t used = 0;

	while (*off < (off_t)FS_DIR_COOKIE_BASE) {
		const char *name = names[*off];
		size_t n;

		if (plus) {
			/* Entries for "." and ".." carry no lookup reference (ino 0 in the entry
			 * param means "no entry"), per the readdirplus contract. */
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = ino;
			e.attr.st_mode = S_IFDIR;
			n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						   *off + 1);
		} else {
			struct stat st;
			memset(&st, 0, sizeof(st));
			st.st_ino = ino;
			st.st_mode = S_IFDIR;
			n = fuse_add_direntry(req, buf + used, size - used, name, &st, *off + 1);
		}
		if (n > size - used)
			break;
		used += n;
		(*off)++;
	}
	return used;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct dir_collect c = {.plus = plus};
	_cleanup_free_ char *buf = NULL;
	size_t used;
	int r;

	if (off < 0) {
		fs_reply_fail(req, -EINVAL, "readdir", ino, NULL);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fs_reply_fail(req, -ENOMEM, "readdir", ino, NULL);
		return;
	}
	used = add_dots(req, ino, buf, size, &off, plus);
	if (off < (off_t)FS_DIR_COOKIE_BASE) {
		/* Not even the dots fit (tiny buffer): reply with what did. */
		fuse_reply_buf(req, buf, used);
		return;
	}

	c.budget = size - used;
	r = store_readdir(ctx->store, ino, (uint64_t)off - FS_DIR_COOKIE_BASE, collect_cb, &c);
	if (r < 0 || c.err < 0) {
		fs_reply_fail(req, r < 0 ? r : c.err, "readdir", ino, NULL);
		goto out;
	}

	for (size_t i = 0; i < c.n; i++) {
		const struct dir_ent *de = c.ents[i];
		off_t next = (off_t)(de->next_cookie + FS_DIR_COOKIE_BASE);
		size_t n;

		if (plus) {
			struct fuse_entry_param e;
			struct store_attr a;

			r = store_getattr(ctx->store, de->ino, &a);
			if (r == -ENOENT)
				continue; /* removed since the listing: skip, as a later readdir
					     would */
			if (r < 0) {
				if (used > 0)
					break; /* return what we have; the error shows up on lookup
						*/
				fs_reply_fail(req, r, "readdirplus", de->ino, de->name);
				goto out;
			}
			memset(&e, 0, sizeof(e));
			e.ino = a.ino;
			fs_attr_to_stat(&a, &e.attr);
			e.attr_timeout = fs_attr_timeout(&a);
			e.entry_timeout = e.attr_timeout;
			n = fuse_add_direntry_plus(req, buf + used, size - used, de->name, &e,
						   next);
			if (n > size - used)
				break;
			fs_nodes_ref(ctx, a.ino, 1, ino, de->name);
		} else {
			struct stat st;

			memset(&st, 0, sizeof(st));
			st.st_ino = de->ino;
			st.st_mode = de->mode;
			n = fuse_add_direntry(req, buf + used, size - used, de->name, &st, next);
			if (n > size - used)
				break;
		}
		used += n;
	}
	/* If the kernel drops this reply, the readdirplus references counted above are never
	 * forgotten; that only keeps entries in the (bounded) node table. */
	fuse_reply_buf(req, buf, used);
out:
	collect_free(&c);
}

void fsop_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct store_attr a;
	int r = store_getattr(fs_ctx_of(req)->store, ino, &a);

	if (r < 0) {
		fs_reply_fail(req, r, "opendir", ino, NULL);
		return;
	}
	if (!S_ISDIR(a.mode)) {
		fs_reply_fail(req, -ENOTDIR, "opendir", ino, NULL);
		return;
	}
	fi->fh = 0;
	/* Sealed directories never change: let the kernel keep their listing. */
	fi->cache_readdir = a.sealed;
	fi->keep_cache = a.sealed;
	fuse_reply_open(req, fi);
}

void fsop_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

void fsop_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

void fsop_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

void fsop_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int r = store_sync(fs_ctx_of(req)->store);

	if (r < 0) {
		fs_reply_fail(req, r, "fsyncdir", ino, NULL);
		return;
	}
	fuse_reply_err(req, 0);
}
