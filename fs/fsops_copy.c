// SPDX-License-Identifier: MIT
/*
 * fsops_copy.c - copy_file_range between files of this mount: chunk references, not bytes
 * (store_copy_range). The kernel sends it for two files of the same FUSE connection after its
 * own checks (source readable, destination writable and not O_APPEND, no overlap in one file,
 * length shortened to the source's end as it knows it); it drops its cached pages of the
 * destination range and takes the new size from our reply. Between files of different
 * filesystems the kernel copies through read and write itself and we are not asked.
 */
#include <errno.h>
#include <stdint.h>

#include "fs/fs_priv.h"

/* The reply carries a 32-bit count: ask for at most this much per request (the kernel's own
 * cap, MAX_RW_COUNT, is 2 GiB less a page); callers loop over short copies. */
#define FS_COPY_MAX ((1ULL << 31) - 4096)

void fsop_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			  struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			  struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fs_handle *h_out = fs_handle_of(fi_out);
	uint64_t copied = 0;
	int r;

	(void)fi_in;
	if (flags != 0 || off_in < 0 || off_out < 0) {
		fs_reply_fail(req, -EINVAL, "copy_file_range", ino_out, NULL);
		return;
	}
	if (!h_out->write_access) {
		fs_reply_fail(req, -EBADF, "copy_file_range", ino_out, NULL);
		return;
	}
	r = store_copy_range(fs_ctx_of(req)->store, ino_in, (uint64_t)off_in, ino_out,
			     (uint64_t)off_out, len < FS_COPY_MAX ? len : FS_COPY_MAX, &copied);
	if (r < 0) {
		fs_reply_fail(req, r, "copy_file_range", ino_out, NULL);
		return;
	}
	/* Unaligned edges are buffered like writes: close(2) must store them (fsop_flush). */
	if (copied > 0)
		atomic_store(&h_out->dirty, true);
	fuse_reply_write(req, (size_t)copied);
}
