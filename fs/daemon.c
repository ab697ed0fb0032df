// SPDX-License-Identifier: MIT
/*
 * daemon.c - session setup: open the store, mount, serve with the multi-threaded loop, and on
 * unmount or a signal flush and close the store.
 *
 * Detaching: libfuse's fuse_daemonize() forks after the mount, but by then the store is open, and
 * neither LMDB's environment nor the store's fcntl lock survive into a forked child (LMDB tracks
 * readers by pid; POSIX record locks belong to the process). So this file forks first, before
 * anything is opened, and the child reports "mounted" or its errno back over a pipe; the parent
 * waits for that so every error still reaches the terminal and the exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/defer_pass.h"
#include "fs/fs.h"
#include "fs/fs_priv.h"
#include "fs/read_prio.h"

/* Largest request we ask the kernel for: 256 pages, the kernel's and libfuse's maximum. */
#define FS_MAX_WRITE	 (1024u * 1024u)
#define FS_MAX_READAHEAD (1024u * 1024u)

static void fsop_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->max_write = FS_MAX_WRITE;
	if (conn->max_readahead < FS_MAX_READAHEAD)
		conn->max_readahead = FS_MAX_READAHEAD;

	/* Open with O_TRUNC arrives as a separate setattr(size=0): one code path for truncation. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* The kernel clears setuid/setgid bits on write and chown itself. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* Not shown to be correct with O_APPEND and concurrent writers: writes go through. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Locks are local to the mount; let the kernel do them. */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* One big O_DIRECT read (the restorer's) goes out as several max_write-sized requests at
	 * once, so the worker threads decode its pieces in parallel. libfuse asks for it by
	 * default; said here because restore speed depends on it. */
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	log_debug("fuse connection: protocol %u.%u, max_write %u, max_readahead %u",
		  conn->proto_major, conn->proto_minor, conn->max_write, conn->max_readahead);
}

static void fsop_destroy(void *userdata)
{
	struct fs_ctx *ctx = userdata;
	int r = store_sync(ctx->store);

	if (r < 0)
		log_err("store '%s': flushing at unmount failed: %s: %s", ctx->store_path,
			strerror(-r), store_last_error());
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fsop_init,
	.destroy = fsop_destroy,
	.lookup = fsop_lookup,
	.forget = fsop_forget,
	.forget_multi = fsop_forget_multi,
	.getattr = fsop_getattr,
	.setattr = fsop_setattr,
	.readlink = fsop_readlink,
	.mknod = fsop_mknod,
	.mkdir = fsop_mkdir,
	.unlink = fsop_unlink,
	.rmdir = fsop_rmdir,
	.symlink = fsop_symlink,
	.rename = fsop_rename,
	.link = fsop_link,
	.statfs = fsop_statfs,
	.opendir = fsop_opendir,
	.readdir = fsop_readdir,
	.readdirplus = fsop_readdirplus,
	.releasedir = fsop_releasedir,
	.fsyncdir = fsop_fsyncdir,
	.create = fsop_create,
	.open = fsop_open,
	.read = fsop_read,
	.write = fsop_write,
	.flush = fsop_flush,
	.release = fsop_release,
	.fsync = fsop_fsync,
	.fallocate = fsop_fallocate,
	.lseek = fsop_lseek,
	.copy_file_range = fsop_copy_file_range,
	.setxattr = fsop_setxattr,
	.getxattr = fsop_getxattr,
	.listxattr = fsop_listxattr,
	.removexattr = fsop_removexattr,
};

/* "-o fsname=..." takes a comma-separated list: escape the store path's commas and backslashes. */
static char *fsname_option(const char *store_path)
{
	size_t len = strlen(store_path);
	char *opt = malloc(strlen("fsname=ckptfs:") + 2 * len + 1);
	char *p;

	if (!opt)
		return NULL;
	p = stpcpy(opt, "fsname=ckptfs:");
	for (const char *s = store_path; *s; s++) {
		if (*s == ',' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p = '\0';
	return opt;
}

static int check_mountpoint(const char *mountpoint, char **ret_abs)
{
	struct stat st;
	char *abs;

	if (stat(mountpoint, &st) < 0) {
		int r = -errno;
		if (r == -ENOENT)
			log_err("mountpoint '%s' does not exist", mountpoint);
		else
			log_err("mountpoint '%s': %s", mountpoint, strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("mountpoint '%s' is not a directory", mountpoint);
		return -ENOTDIR;
	}
	abs = realpath(mountpoint, NULL);
	if (!abs) {
		int r = -errno;
		log_err("mountpoint '%s': %s", mountpoint, strerror(-r));
		return r;
	}
	*ret_abs = abs;
	return 0;
}

static int open_store(const char *path, struct store **ret_store)
{
	int r = store_open(path, STORE_OPEN_EXCLUSIVE, ret_store);

	if (r == -EBUSY)
		log_err("store '%s' is already mounted: another ckptfs daemon holds its lock",
			path);
	else if (r < 0 && *store_last_error())
		log_err("cannot open store '%s': %s (%s)", path, store_last_error(), strerror(-r));
	else if (r < 0)
		log_err("cannot open store '%s': %s", path, strerror(-r));
	return r;
}

/* The detached daemon's stdio: nothing in, logs to log_fd (or nowhere if it is -1). */
static int detach_stdio(int log_fd)
{
	_cleanup_close_ int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null_fd < 0)
		return -errno;
	if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(null_fd, STDOUT_FILENO) < 0 ||
	    dup2(log_fd >= 0 ? log_fd : null_fd, STDERR_FILENO) < 0)
		return -errno;
	return 0;
}

/* Tells the waiting parent how the mount went; the pipe is closed afterwards either way. */
static void notify_parent(int *status_fd, int status)
{
	if (*status_fd < 0)
		return;
	(void)write_full(*status_fd, &status, sizeof(status));
	close(*status_fd);
	*status_fd = -1;
}

/* status_fd >= 0: detached child; report to the parent over it and log to log_fd afterwards. */
static int serve(const char *store_path, const char *mountpoint, const struct fs_opts *opts,
		 int status_fd, int log_fd)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	_cleanup_free_ char *fsname = NULL;
	struct fuse_loop_config *loop_cfg = NULL;
	struct fuse_session *se = NULL;
	struct defer_pass *pass = NULL;
	struct fs_ctx ctx;
	int r;

	memset(&ctx, 0, sizeof(ctx));
	ctx.store_path = store_path;

	r = fs_nodes_init(&ctx);
	if (r < 0) {
		log_err("mounting '%s': %s", store_path, strerror(-r));
		goto out_notify;
	}
	r = open_store(store_path, &ctx.store);
	if (r < 0)
		goto out_nodes;

	fsname = fsname_option(store_path);
	if (!fsname || fuse_opt_add_arg(&args, "ckptfs") < 0 ||
	    (opts->debug && fuse_opt_add_arg(&args, "-d") < 0) ||
	    fuse_opt_add_arg(&args, "-o") < 0 ||
	    fuse_opt_add_arg(&args, "default_permissions,subtype=ckptfs") < 0 ||
	    fuse_opt_add_arg(&args, "-o") < 0 || fuse_opt_add_arg(&args, fsname) < 0 ||
	    (opts->fuse_opts &&
	     (fuse_opt_add_arg(&args, "-o") < 0 || fuse_opt_add_arg(&args, opts->fuse_opts) < 0))) {
		r = -ENOMEM;
		log_err("mounting '%s': %s", store_path, strerror(-r));
		goto out_store;
	}

	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &ctx);
	if (!se) {
		/* libfuse has printed which option it did not understand. */
		r = -EINVAL;
		log_err("mounting '%s': libfuse refused the session options", store_path);
		goto out_store;
	}
	if (fuse_set_signal_handlers(se) < 0) {
		r = -EIO;
		log_err("mounting '%s': cannot install signal handlers", store_path);
		goto out_session;
	}
	if (fuse_session_mount(se, mountpoint) < 0) {
		r = -EIO;
		log_err("mounting store '%s' on '%s' failed (see the libfuse message above)",
			store_path, mountpoint);
		goto out_signals;
	}
	log_info("store '%s' mounted on '%s' (daemon pid %d)", store_path, mountpoint,
		 (int)getpid());

	if (status_fd >= 0) {
		r = detach_stdio(log_fd);
		if (r < 0) {
			log_err("mounting '%s': detaching from the terminal: %s", store_path,
				strerror(-r));
			goto out_unmount;
		}
		notify_parent(&status_fd, 0);
	}
	/* Compresses what busy flushes stored raw, once writes are idle (not fatal if absent). */
	if (defer_pass_start(ctx.store, store_path, &pass) < 0)
		log_warn("store '%s': running without the background compression pass; "
			 "'ckptfs gc' compresses deferred chunks",
			 store_path);

	read_prio_init();
	loop_cfg = fuse_loop_cfg_create();
	if (!loop_cfg) {
		r = -ENOMEM;
		log_err("store '%s': %s", store_path, strerror(-r));
		goto out_unmount;
	}
	fuse_loop_cfg_set_clone_fd(loop_cfg, 0);
	r = fuse_session_loop_mt(se, loop_cfg);
	fuse_loop_cfg_destroy(loop_cfg);
	if (r > 0) {
		/* libfuse's signal handler ends the loop and reports the signal number. */
		log_info("store '%s': %s, shutting down", store_path, strsignal(r));
		r = 0;
	} else if (r < 0) {
		log_err("store '%s' on '%s': request loop ended with an error: %s", store_path,
			mountpoint, strerror(-r));
	}
	log_info("store '%s': unmounting from '%s'", store_path, mountpoint);

out_unmount:
	defer_pass_stop(pass);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	/* Runs fsop_destroy (flush) if the kernel ever initialised the connection. */
	fuse_session_destroy(se);
out_store:
	store_close(ctx.store);
	fuse_opt_free_args(&args);
out_nodes:
	fs_nodes_free(&ctx);
out_notify:
	notify_parent(&status_fd, r < 0 ? r : -EIO);
	return r;
}

/* Parent side of detaching: wait for the child's verdict. */
static int wait_for_child(pid_t pid, int status_fd, const char *store_path)
{
	int status = 0;
	ssize_t n;

	do {
		n = read(status_fd, &status, sizeof(status));
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(status)) {
		if (status < 0)
			/* The child has said why; reap it so it does not linger as a zombie. */
			(void)waitpid(pid, NULL, 0);
		return status;
	}
	(void)waitpid(pid, NULL, 0);
	log_err("mounting store '%s': the daemon exited before the mount was up", store_path);
	return -EIO;
}

int fs_daemon_run(const char *store_path, const char *mountpoint, const struct fs_opts *opts)
{
	_cleanup_free_ char *abs_mnt = NULL;
	_cleanup_free_ char *abs_store = NULL;
	_cleanup_close_ int log_fd = -1;
	int fds[2];
	pid_t pid;
	int r;

	r = check_mountpoint(mountpoint, &abs_mnt);
	if (r < 0)
		return r;
	/* The detached daemon runs in "/": keep absolute paths. */
	abs_store = realpath(store_path, NULL);
	if (!abs_store) {
		r = -errno;
		if (r == -ENOENT)
			log_err("store '%s' does not exist", store_path);
		else
			log_err("store '%s': %s", store_path, strerror(-r));
		return r;
	}

	if (opts->foreground || opts->debug)
		return serve(abs_store, abs_mnt, opts, -1, -1);

	/* Opened here, before the child moves to "/", so a relative path means what it says. */
	if (opts->log_path) {
		log_fd = open(opts->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			r = -errno;
			log_err("log file '%s': %s", opts->log_path, strerror(-r));
			return r;
		}
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		r = -errno;
		log_err("mounting store '%s': pipe: %s", store_path, strerror(-r));
		return r;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		log_err("mounting store '%s': fork: %s", store_path, strerror(-r));
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid > 0) {
		close(fds[1]);
		r = wait_for_child(pid, fds[0], store_path);
		close(fds[0]);
		return r;
	}

	close(fds[0]);
	/* Leave the caller's session and terminal, and do not pin its working directory. */
	if (setsid() < 0 || chdir("/") < 0) {
		r = -errno;
		log_err("mounting store '%s': detaching: %s", store_path, strerror(-r));
		notify_parent(&fds[1], r);
		return r;
	}
	return serve(abs_store, abs_mnt, opts, fds[1], log_fd);
}
