// SPDX-License-Identifier: MIT
/*
 * reply.c - store attributes to struct stat, entry replies, and the one place where a failed
 * request is logged.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "fs/fs_priv.h"

void fs_attr_to_stat(const struct store_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)a->ino;
	st->st_mode = (mode_t)a->mode;
	st->st_nlink = (nlink_t)a->nlink;
	st->st_uid = (uid_t)a->uid;
	st->st_gid = (gid_t)a->gid;
	st->st_rdev = (dev_t)a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = STORE_CHUNK_SIZE;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

double fs_attr_timeout(const struct store_attr *a)
{
	return a->sealed ? FS_TIMEOUT_SEALED : FS_TIMEOUT_LIVE;
}

void fs_reply_entry(fuse_req_t req, uint64_t parent, const char *name, const struct store_attr *a)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = a->ino;
	/* Inode numbers are never reused by the store, so generation 0 keeps (ino, gen) unique. */
	e.generation = 0;
	fs_attr_to_stat(a, &e.attr);
	e.attr_timeout = fs_attr_timeout(a);
	e.entry_timeout = e.attr_timeout;

	/* Count before replying: a forget for this reference may arrive on another thread as soon
	 * as the kernel has the reply. */
	fs_nodes_ref(ctx, a->ino, 1, parent, name);
	if (fuse_reply_entry(req, &e) != 0)
		/* The request was interrupted: the kernel never saw this reference. */
		fs_nodes_unref(ctx, a->ino, 1);
}

/* Errors a program provokes on purpose or by probing; they are answers, not daemon failures. */
static bool err_is_ordinary(int err)
{
	switch (err) {
	case ENOENT:
	case EEXIST:
	case ENOTEMPTY:
	case ENOTDIR:
	case EISDIR:
	case ENODATA:
	case ERANGE:
	case EROFS:
	case EPERM:
	case EACCES:
	case EXDEV:
	case EINVAL:
	case ENAMETOOLONG:
	case EOPNOTSUPP:
	case EBUSY:
	case ELOOP:
	case EFBIG:
	case ENXIO: /* lseek SEEK_DATA with no data after the offset */
		return true;
	default:
		return false;
	}
}

void fs_reply_fail(fuse_req_t req, int err, const char *op, uint64_t ino, const char *name)
{
	const char *detail = store_last_error();
	int e = err < 0 ? -err : err;
	char path[512];

	if (e == 0)
		e = EIO;
	/* Corrupt on-disk data must never reach a program as anything but EIO. */
	if (e == EBADMSG)
		e = EIO;

	if (err_is_ordinary(e)) {
		log_debug("%s of inode %llu%s%s%s: %s", op, (unsigned long long)ino,
			  name ? " name '" : "", name ? name : "", name ? "'" : "", strerror(e));
	} else {
		fs_nodes_path(fs_ctx_of(req), ino, path, sizeof(path));
		log_err("%s of inode %llu ('%s'%s%s) failed: %s%s%s", op, (unsigned long long)ino,
			path, name ? " entry " : "", name ? name : "", strerror(e),
			detail && *detail ? ": " : "", detail ? detail : "");
	}
	fuse_reply_err(req, e);
}
