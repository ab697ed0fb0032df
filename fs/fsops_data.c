// SPDX-License-Identifier: MIT
/*
 * fsops_data.c - open files: create/open/read/write/flush/release/fsync/fallocate.
 *
 * Each open holds a store handle (store_open_inode), so an unlinked file keeps its data until the
 * last close. The store buffers writes and makes them durable at fsync or at the last release.
 * Nobody receives release's result, so flush (every close()) stores a dirty handle's data
 * first (store_flush_inode: packs and index, no index sync - an LMDB sync per close made cp -a
 * of small files ~8x slower) and ENOSPC or EIO reaches the program that wrote; release then
 * finds little or nothing left to do.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs_priv.h"
#include "fs/read_prio.h"

static int handle_new(struct fs_ctx *ctx, uint64_t ino, struct fuse_file_info *fi, bool sealed)
{
	bool wr = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct fs_handle *h;
	int r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	r = store_open_inode(ctx->store, ino, wr);
	if (r < 0) {
		free(h);
		return r;
	}
	h->write_access = wr;
	atomic_init(&h->dirty, false);
	fi->fh = (uint64_t)(uintptr_t)h;
	/* Page-cache rules: a sealed file never changes, keep its pages across opens. A live file
	 * may have been rewritten by the CLI or another mount generation: drop them at open. */
	fi->keep_cache = sealed;
	/* A write-only handle cannot be mmapped and never reads, so its writes skip the page
	 * cache: the kernel then hands the writer's own pages to us instead of first copying
	 * them into cache pages it must allocate and lock for each request (checkpoint images
	 * are written once, O_WRONLY, and not read back through the writer). Readers keep the
	 * cache; the kernel drops their cached pages of the range a direct write covers. */
	fi->direct_io = (fi->flags & O_ACCMODE) == O_WRONLY;
	return 0;
}

void fsop_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	const struct fuse_ctx *who = fuse_req_ctx(req);
	struct fuse_entry_param e;
	struct store_attr a;
	int r;

	if (parent == FUSE_ROOT_ID) {
		fs_reply_fail(req, -EPERM, "create", parent, name);
		return;
	}
	r = store_mknod(ctx->store, parent, name, (uint32_t)(S_IFREG | (mode & 07777)), 0,
			(uint32_t)who->uid, (uint32_t)who->gid, &a);
	if (r == -EEXIST && !(fi->flags & O_EXCL)) {
		/* Lost a race with another creator: open what is there, as open(2) would. */
		r = store_lookup(ctx->store, parent, name, &a);
		if (r == 0 && !S_ISREG(a.mode))
			r = S_ISDIR(a.mode) ? -EISDIR : -EEXIST;
	}
	if (r < 0) {
		fs_reply_fail(req, r, "create", parent, name);
		return;
	}
	r = handle_new(ctx, a.ino, fi, a.sealed);
	if (r < 0) {
		/* The name stays, as after a crash between creat() and open(); the program sees the
		 * error and can unlink it. */
		fs_reply_fail(req, r, "create (open)", a.ino, name);
		return;
	}

	memset(&e, 0, sizeof(e));
	e.ino = a.ino;
	fs_attr_to_stat(&a, &e.attr);
	e.attr_timeout = fs_attr_timeout(&a);
	e.entry_timeout = e.attr_timeout;
	fs_nodes_ref(ctx, a.ino, 1, parent, name);
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* Interrupted: the kernel has neither the reference nor the open file. */
		fs_nodes_unref(ctx, a.ino, 1);
		store_release(ctx->store, a.ino, fs_handle_of(fi)->write_access);
		free(fs_handle_of(fi));
	}
}

void fsop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct store_attr a;
	int r;

	r = store_getattr(ctx->store, ino, &a);
	if (r == 0 && S_ISDIR(a.mode))
		r = -EISDIR;
	if (r == 0)
		r = handle_new(ctx, ino, fi, a.sealed);
	if (r < 0) {
		fs_reply_fail(req, r, "open", ino, NULL);
		return;
	}
	if (fuse_reply_open(req, fi) != 0) {
		store_release(ctx->store, ino, fs_handle_of(fi)->write_access);
		free(fs_handle_of(fi));
	}
}

void fsop_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	_cleanup_free_ char *buf = NULL;
	struct read_prio prio = {.requester = fuse_req_ctx(req)->pid};
	const struct store_read_hooks hooks = {read_prio_enter, read_prio_leave, &prio};
	ssize_t n;

	if (off < 0) {
		fs_reply_fail(req, -EINVAL, "read", ino, NULL);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fs_reply_fail(req, -ENOMEM, "read", ino, NULL);
		return;
	}
	n = store_read_hooked(fs_ctx_of(req)->store, ino, buf, size, (uint64_t)off, &hooks);
	if (n < 0) {
		fs_reply_fail(req, (int)n, "read", ino, NULL);
		return;
	}
	fuse_reply_buf(req, buf, (size_t)n);
}

/* The kernel asks only for SEEK_DATA and SEEK_HOLE; it answers the other kinds itself. */
void fsop_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	uint64_t at;
	int r;

	if (off < 0 || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		fs_reply_fail(req, -EINVAL, "lseek", ino, NULL);
		return;
	}
	r = store_seek(fs_ctx_of(req)->store, ino, (uint64_t)off, whence == SEEK_DATA, &at);
	if (r < 0) {
		fs_reply_fail(req, r, "lseek", ino, NULL);
		return;
	}
	fuse_reply_lseek(req, (off_t)at);
}

void fsop_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	ssize_t n;

	if (off < 0) {
		fs_reply_fail(req, -EINVAL, "write", ino, NULL);
		return;
	}
	n = store_write(fs_ctx_of(req)->store, ino, buf, size, (uint64_t)off);
	if (n < 0) {
		fs_reply_fail(req, (int)n, "write", ino, NULL);
		return;
	}
	atomic_store(&fs_handle_of(fi)->dirty, true);
	fuse_reply_write(req, (size_t)n);
}

void fsop_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = fs_handle_of(fi);
	int r = 0;

	/* Stored now, without the index sync that made fsync-per-close slow: release's result
	 * reaches nobody, so this is where ENOSPC or EIO from the packs can still reach the
	 * program that wrote. */
	if (atomic_exchange(&h->dirty, false)) {
		r = store_flush_inode(fs_ctx_of(req)->store, ino);
		if (r < 0)
			atomic_store(&h->dirty, true);
	}
	if (r < 0) {
		fs_reply_fail(req, r, "flush", ino, NULL);
		return;
	}
	fuse_reply_err(req, 0);
}

void fsop_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = fs_handle_of(fi);
	int r = store_release(fs_ctx_of(req)->store, ino, h->write_access);

	/* Nobody receives release's answer; the log is the only place this can be seen. */
	if (r < 0)
		log_err("release of inode %llu failed, its unsynced data may be lost: %s: %s",
			(unsigned long long)ino, strerror(-r), store_last_error());
	free(h);
	fuse_reply_err(req, 0);
}

void fsop_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int r = store_fsync(fs_ctx_of(req)->store, ino, datasync != 0);

	if (r < 0) {
		fs_reply_fail(req, r, "fsync", ino, NULL);
		return;
	}
	fuse_reply_err(req, 0);
}

void fsop_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		    struct fuse_file_info *fi)
{
	bool punch = mode & FALLOC_FL_PUNCH_HOLE;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	int r;

	if (mode & ~(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
		fs_reply_fail(req, -EOPNOTSUPP, "fallocate", ino, NULL);
		return;
	}
	/* fallocate(2) requires KEEP_SIZE with PUNCH_HOLE; the kernel checks it before us. */
	if (offset < 0 || length <= 0 || (punch && !keep)) {
		fs_reply_fail(req, -EINVAL, "fallocate", ino, NULL);
		return;
	}
	r = store_fallocate(fs_ctx_of(req)->store, ino, punch, keep, (uint64_t)offset,
			    (uint64_t)length);
	if (r < 0) {
		fs_reply_fail(req, r, "fallocate", ino, NULL);
		return;
	}
	atomic_store(&fs_handle_of(fi)->dirty, true);
	fuse_reply_err(req, 0);
}
