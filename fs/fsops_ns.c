// SPDX-License-Identifier: MIT
/*
 * fsops_ns.c - namespace requests: lookup, forget, attributes, creating and removing names,
 * rename, hard links, symlinks, statfs. Each handler is one store call and one reply.
 *
 * The root holds only checkpoints, which are directories: anything else created or moved there
 * is refused with EPERM here, before the store is asked.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "fs/fs_priv.h"

void fsop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct store_attr a;
	int r = store_lookup(fs_ctx_of(req)->store, parent, name, &a);

	if (r < 0) {
		fs_reply_fail(req, r, "lookup", parent, name);
		return;
	}
	fs_reply_entry(req, parent, name, &a);
}

void fsop_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_nodes_unref(fs_ctx_of(req), ino, nlookup);
	fuse_reply_none(req);
}

void fsop_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs_ctx *ctx = fs_ctx_of(req);

	for (size_t i = 0; i < count; i++)
		fs_nodes_unref(ctx, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

void fsop_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct store_attr a;
	struct stat st;
	int r = store_getattr(fs_ctx_of(req)->store, ino, &a);

	if (r < 0) {
		fs_reply_fail(req, r, "getattr", ino, NULL);
		return;
	}
	fs_attr_to_stat(&a, &st);
	fuse_reply_attr(req, &st, fs_attr_timeout(&a));
}

void fsop_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi)
{
	struct store_attr in, out;
	unsigned bits = 0;
	struct stat st;
	int r;

	memset(&in, 0, sizeof(in));
	if (to_set & FUSE_SET_ATTR_MODE) {
		bits |= STORE_SET_MODE;
		in.mode = (uint32_t)attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		bits |= STORE_SET_UID;
		in.uid = (uint32_t)attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		bits |= STORE_SET_GID;
		in.gid = (uint32_t)attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			fs_reply_fail(req, -EINVAL, "truncate", ino, NULL);
			return;
		}
		bits |= STORE_SET_SIZE;
		in.size = (uint64_t)attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		bits |= STORE_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		bits |= STORE_SET_ATIME;
		in.atime = attr->st_atim;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		bits |= STORE_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		bits |= STORE_SET_MTIME;
		in.mtime = attr->st_mtim;
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		bits |= STORE_SET_CTIME;
		in.ctime = attr->st_ctim;
	}

	r = store_setattr(fs_ctx_of(req)->store, ino, &in, bits, &out);
	if (r < 0) {
		fs_reply_fail(req, r, "setattr", ino, NULL);
		return;
	}
	/* ftruncate(): the handle's close must report whether the new size reached the store. */
	if (fi && fs_handle_of(fi) && (bits & STORE_SET_SIZE))
		atomic_store(&fs_handle_of(fi)->dirty, true);
	fs_attr_to_stat(&out, &st);
	fuse_reply_attr(req, &st, fs_attr_timeout(&out));
}

void fsop_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	int r = store_readlink(fs_ctx_of(req)->store, ino, buf, sizeof(buf));

	if (r < 0) {
		fs_reply_fail(req, r, "readlink", ino, NULL);
		return;
	}
	if ((size_t)r >= sizeof(buf)) {
		fs_reply_fail(req, -ENAMETOOLONG, "readlink", ino, NULL);
		return;
	}
	fuse_reply_readlink(req, buf);
}

void fsop_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	const struct fuse_ctx *who = fuse_req_ctx(req);
	struct store_attr a;
	int r;

	if (parent == FUSE_ROOT_ID) {
		fs_reply_fail(req, -EPERM, "mknod", parent, name);
		return;
	}
	r = store_mknod(fs_ctx_of(req)->store, parent, name, (uint32_t)mode, (uint64_t)rdev,
			(uint32_t)who->uid, (uint32_t)who->gid, &a);
	if (r < 0) {
		fs_reply_fail(req, r, "mknod", parent, name);
		return;
	}
	fs_reply_entry(req, parent, name, &a);
}

void fsop_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	const struct fuse_ctx *who = fuse_req_ctx(req);
	struct store_attr a;
	int r;

	r = store_mkdir(fs_ctx_of(req)->store, parent, name, (uint32_t)(mode & 07777),
			(uint32_t)who->uid, (uint32_t)who->gid, &a);
	if (r < 0) {
		fs_reply_fail(req, r, "mkdir", parent, name);
		return;
	}
	fs_reply_entry(req, parent, name, &a);
}

void fsop_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int r = store_unlink(fs_ctx_of(req)->store, parent, name);

	if (r < 0) {
		fs_reply_fail(req, r, "unlink", parent, name);
		return;
	}
	fuse_reply_err(req, 0);
}

void fsop_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int r = store_rmdir(fs_ctx_of(req)->store, parent, name);

	if (r < 0) {
		fs_reply_fail(req, r, "rmdir", parent, name);
		return;
	}
	fuse_reply_err(req, 0);
}

void fsop_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	const struct fuse_ctx *who = fuse_req_ctx(req);
	struct store_attr a;
	int r;

	if (parent == FUSE_ROOT_ID) {
		fs_reply_fail(req, -EPERM, "symlink", parent, name);
		return;
	}
	r = store_symlink(fs_ctx_of(req)->store, parent, name, link, (uint32_t)who->uid,
			  (uint32_t)who->gid, &a);
	if (r < 0) {
		fs_reply_fail(req, r, "symlink", parent, name);
		return;
	}
	fs_reply_entry(req, parent, name, &a);
}

void fsop_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		 const char *newname, unsigned int flags)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct store_attr src, dst;
	unsigned sflags = 0;
	int r;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fs_reply_fail(req, -EINVAL, "rename", parent, name);
		return;
	}
	if (flags & RENAME_NOREPLACE)
		sflags |= STORE_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		sflags |= STORE_RENAME_EXCHANGE;

	/* The inodes involved: to check the root's rule and to keep the node names current. */
	r = store_lookup(ctx->store, parent, name, &src);
	if (r < 0) {
		fs_reply_fail(req, r, "rename", parent, name);
		return;
	}
	if (flags & RENAME_EXCHANGE) {
		r = store_lookup(ctx->store, newparent, newname, &dst);
		if (r < 0) {
			fs_reply_fail(req, r, "rename", newparent, newname);
			return;
		}
	}
	/* Only checkpoint directories may end up at the root; with EXCHANGE the entry at
	 * newparent/newname moves to parent/name too. */
	if ((newparent == FUSE_ROOT_ID && !S_ISDIR(src.mode)) ||
	    ((flags & RENAME_EXCHANGE) && parent == FUSE_ROOT_ID && !S_ISDIR(dst.mode))) {
		fs_reply_fail(req, -EPERM, "rename", parent, name);
		return;
	}

	r = store_rename(ctx->store, parent, name, newparent, newname, sflags);
	if (r < 0) {
		fs_reply_fail(req, r, "rename", parent, name);
		return;
	}
	fs_nodes_rename(ctx, src.ino, newparent, newname);
	if (flags & RENAME_EXCHANGE)
		fs_nodes_rename(ctx, dst.ino, parent, name);
	fuse_reply_err(req, 0);
}

void fsop_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct store_attr a;
	int r;

	if (newparent == FUSE_ROOT_ID) {
		fs_reply_fail(req, -EPERM, "link", ino, newname);
		return;
	}
	r = store_link(fs_ctx_of(req)->store, ino, newparent, newname, &a);
	if (r < 0) {
		fs_reply_fail(req, r, "link", ino, newname);
		return;
	}
	fs_reply_entry(req, newparent, newname, &a);
}

void fsop_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
	int r = store_statfs(fs_ctx_of(req)->store, &st);

	if (r < 0) {
		fs_reply_fail(req, r, "statfs", ino, NULL);
		return;
	}
	fuse_reply_statfs(req, &st);
}
