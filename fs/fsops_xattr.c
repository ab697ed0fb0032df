// SPDX-License-Identifier: MIT
/*
 * fsops_xattr.c - extended attributes. The store keeps user.* names (plus its own
 * user.ckptfs.seal / user.ckptfs.content_id on checkpoint directories). Other namespaces are
 * answered here: the kernel asks for security.capability on every write to a file, and a
 * round trip to the store for an attribute that can never exist would be pure cost.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs_priv.h"

static bool is_user_name(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

void fsop_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		   int flags)
{
	int r;

	if (!is_user_name(name)) {
		fs_reply_fail(req, -EOPNOTSUPP, "setxattr", ino, name);
		return;
	}
	r = store_setxattr(fs_ctx_of(req)->store, ino, name, value, size, flags);
	if (r < 0) {
		fs_reply_fail(req, r, "setxattr", ino, name);
		return;
	}
	fuse_reply_err(req, 0);
}

void fsop_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	_cleanup_free_ char *buf = NULL;
	ssize_t n;

	if (!is_user_name(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (size > 0) {
		buf = malloc(size);
		if (!buf) {
			fs_reply_fail(req, -ENOMEM, "getxattr", ino, name);
			return;
		}
	}
	n = store_getxattr(fs_ctx_of(req)->store, ino, name, buf, size);
	if (n < 0) {
		fs_reply_fail(req, (int)n, "getxattr", ino, name);
		return;
	}
	if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

void fsop_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	_cleanup_free_ char *buf = NULL;
	ssize_t n;

	if (size > 0) {
		buf = malloc(size);
		if (!buf) {
			fs_reply_fail(req, -ENOMEM, "listxattr", ino, NULL);
			return;
		}
	}
	n = store_listxattr(fs_ctx_of(req)->store, ino, buf, size);
	if (n < 0) {
		fs_reply_fail(req, (int)n, "listxattr", ino, NULL);
		return;
	}
	if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

void fsop_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int r;

	if (!is_user_name(name)) {
		fs_reply_fail(req, -EOPNOTSUPP, "removexattr", ino, name);
		return;
	}
	r = store_removexattr(fs_ctx_of(req)->store, ino, name);
	if (r < 0) {
		fs_reply_fail(req, r, "removexattr", ino, name);
		return;
	}
	fuse_reply_err(req, 0);
}
