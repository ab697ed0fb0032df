/* SPDX-License-Identifier: MIT */
/*
 * fs_priv.h - shared state of the FUSE glue and the fsop_<op>() handlers.
 *
 * Owns: struct fs_ctx (the store, the node table of kernel lookup counts, the timeouts), the
 * per-open struct fs_handle, and the reply helpers. Invariants: every fsop_<op>() replies to its
 * request exactly once on every path; a node id handed to the kernel in an entry reply has its
 * lookup count raised before the reply is sent and lowered again only by forget.
 *
 * Thread-safety: handlers run concurrently on the FUSE worker threads. The store is thread-safe;
 * the node table has its own mutex; struct fs_handle is per open file and only its atomic
 * members are written after open.
 */
#ifndef CKPTFS_FS_FS_PRIV_H
#define CKPTFS_FS_FS_PRIV_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "index/store.h"

/* The CLI may change the store under a mount (rm, seal), so the kernel may cache names and
 * attributes only briefly; sealed checkpoints never change, except for being removed. */
#define FS_TIMEOUT_LIVE	  1.0
#define FS_TIMEOUT_SEALED 10.0

struct fs_node;

struct fs_ctx {
	struct store *store;
	const char *store_path;

	pthread_mutex_t nodes_lock;
	struct fs_node **node_buckets; /* ino -> kernel lookup count, chained hash */
	size_t node_nbuckets;
	size_t node_count;
};

/* One per open() / create(): kept in fi->fh. */
struct fs_handle {
	bool write_access;
	/* Set by write/fallocate/ftruncate; cleared when flush pushes the data to the store. */
	atomic_bool dirty;
};

static inline struct fs_ctx *fs_ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct fs_handle *fs_handle_of(const struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

/* nodes.c: kernel lookup counts per inode (forget honoured), and the last name of each. */
int fs_nodes_init(struct fs_ctx *ctx);
void fs_nodes_free(struct fs_ctx *ctx);
/* n more references to ino, handed out as parent/name (name may be NULL: keep the old one). */
void fs_nodes_ref(struct fs_ctx *ctx, uint64_t ino, uint64_t n, uint64_t parent, const char *name);
void fs_nodes_unref(struct fs_ctx *ctx, uint64_t ino, uint64_t n);
/* After a rename: ino now lives at parent/name. */
void fs_nodes_rename(struct fs_ctx *ctx, uint64_t ino, uint64_t parent, const char *name);
/* The last known path of ino below the mount ("/ckpt/dir/file"; "..." where unknown), for logs. */
void fs_nodes_path(struct fs_ctx *ctx, uint64_t ino, char *buf, size_t size);

/* reply.c: conversions and the single place where failures are logged. */
void fs_attr_to_stat(const struct store_attr *a, struct stat *st);
double fs_attr_timeout(const struct store_attr *a);
/* Replies with an entry for a, found as parent/name (raising its lookup count first). */
void fs_reply_entry(fuse_req_t req, uint64_t parent, const char *name, const struct store_attr *a);
/* Replies err (negative errno) and logs it once, naming the operation and the object. */
void fs_reply_fail(fuse_req_t req, int err, const char *op, uint64_t ino, const char *name);

/* fsops_ns.c */
void fsop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsop_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fsop_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fsop_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi);
void fsop_readlink(fuse_req_t req, fuse_ino_t ino);
void fsop_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fsop_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fsop_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsop_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsop_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fsop_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		 const char *newname, unsigned int flags);
void fsop_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fsop_statfs(fuse_req_t req, fuse_ino_t ino);

/* fsops_dir.c */
void fsop_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void fsop_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi);
void fsop_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* fsops_data.c */
void fsop_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		 struct fuse_file_info *fi);
void fsop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fsop_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi);
void fsop_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fsop_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void fsop_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		    struct fuse_file_info *fi);

/* fsops_copy.c */
void fsop_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			  struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			  struct fuse_file_info *fi_out, size_t len, int flags);

/* fsops_xattr.c */
void fsop_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		   int flags);
void fsop_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fsop_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fsop_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
