/* SPDX-License-Identifier: MIT */
/*
 * fs.h - the ckptfs FUSE daemon (fs/ library).
 *
 * Owns: one FUSE session (libfuse3 low-level API, multi-threaded loop) serving one store opened
 * with STORE_OPEN_EXCLUSIVE. The daemon is thin glue: FUSE node ids are store inode numbers
 * (FUSE_ROOT_ID == STORE_ROOT_INO == 1), every request becomes one store_*() call and exactly one
 * reply. Checkpoints are the directories at the root; regular files there are refused (EPERM).
 *
 * Thread-safety: fs_daemon_run() is called once per process; inside it the FUSE worker threads
 * share the store (which is thread-safe) and the node table (locked).
 */
#ifndef CKPTFS_FS_FS_H
#define CKPTFS_FS_FS_H

#include <stdbool.h>

struct fs_opts {
	bool foreground; /* stay attached to the terminal; otherwise detach after mounting */
	bool debug;	 /* libfuse request tracing + debug log level; implies foreground */
	const char
		*fuse_opts;   /* comma-separated libfuse/kernel mount options ("-o ..."), or NULL */
	const char *log_path; /* in the background, append log lines here (else they are dropped) */
};

/*
 * Opens the store, mounts it on mountpoint and serves requests until the filesystem is unmounted
 * or the daemon gets SIGTERM/SIGINT/SIGHUP; then flushes and closes the store.
 *
 * Unless opts->foreground, the calling process forks before anything is opened (LMDB handles and
 * fcntl locks must stay in the process that serves the mount): the parent returns 0 as soon as the
 * child reports that the mount is up, or the child's -errno if it failed (the child has printed the
 * reason on the caller's stderr by then); the child returns when the mount ends. Either way the
 * caller just exits with the result.
 *
 * Returns 0 or -errno; failures are logged once with the object and the reason.
 */
int fs_daemon_run(const char *store_path, const char *mountpoint, const struct fs_opts *opts);

#endif
