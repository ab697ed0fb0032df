// SPDX-License-Identifier: MIT
/*
 * restore_fuse.c - the restore side of FUSE daemons: checks before anything is created that
 * each connection of the image can still be had (its keeper answers), takes the /dev/fuse fds
 * from the keeper for restore_fds_prepare, and releases the keeper once the restored daemon
 * runs holding them.
 *
 * The keeper keeps its copies until confirmed, so a restore that fails anywhere before that
 * leaves the connection held and the image restorable again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "common/log.h"
#include "common/util.h"
#include "cr/error.h"
#include "cr/fuse_priv.h"

/* The connection behind /proc/PID/fdinfo/FD, or 0. */
static uint32_t fdinfo_conn(pid_t pid, int fd)
{
	char path[64], line[256];
	unsigned int v = 0;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	else
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "fuse_connection: %u", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* A holder of the connection that is not a keeper, preferably the original pid, or 0. */
static pid_t conn_server(const struct fuse_conn_holder *h, uint32_t n, pid_t original)
{
	pid_t any = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (h[i].keeper)
			continue;
		if (h[i].pid == original)
			return original;
		any = any ? any : h[i].pid;
	}
	return any;
}

/* An image from before --leave-running dumps had keepers: nothing holds its connection. */
static int check_unkept(const struct cr_task *t, const struct cr_fd *f)
{
	if (fuse_pid_holds_conn((pid_t)t->pid, f->fuse_conn)) {
		cr_error(
			"fd %d: FUSE connection %u of '%s' is still served by pid %u (the original; "
			"this --leave-running image has no keeper): refusing to restore while it "
			"runs",
			f->fd, f->fuse_conn, f->fuse_mnt, t->pid);
		return -EBUSY;
	}
	cr_error("fd %d: the image was dumped with --leave-running without a keeper and its daemon "
		 "is gone: FUSE connection %u of '%s' cannot be recovered",
		 f->fd, f->fuse_conn, f->fuse_mnt);
	return -ENOTCONN;
}

static int check_one(const struct cr_task *t, const struct cr_fd *f)
{
	struct fuse_conn_holder h[16];
	uint32_t n = 0;

	if (!f->fuse_keeper_pid)
		return check_unkept(t, f);
	int probe = fuse_keeper_probe(f->fuse_keeper_id, NULL, NULL);
	int ret = fuse_conn_holders(f->fuse_conn, h, 16, &n);
	if (ret < 0) {
		cr_error("FUSE connection %u of '%s': cannot scan /proc for its holders: %s",
			 f->fuse_conn, f->fuse_mnt, strerror(-ret));
		return ret;
	}
	n = n < 16 ? n : 16;
	pid_t server = conn_server(h, n, (pid_t)t->pid);
	if (probe == 0) {
		/* Never two readers: whoever serves the connection now (the original of a
		 * --leave-running dump, or anyone it passed the fd to) must be gone first. */
		if (server) {
			cr_error("FUSE connection %u of '%s' is still served by pid %d%s; stop it "
				 "first (restoring this image now would put a second daemon on the "
				 "connection); the image is left intact",
				 f->fuse_conn, f->fuse_mnt, server,
				 server == (pid_t)t->pid ? " (the original)" : "");
			return -EBUSY;
		}
		return 0;
	}
	for (uint32_t i = 0; i < n; i++)
		if (h[i].keeper) {
			cr_error(
				"the keeper (pid %u) of FUSE mount '%s' (connection %u) is gone: "
				"this image was superseded by a newer checkpoint, whose keeper pid %d "
				"holds the connection now; restore the newest image",
				f->fuse_keeper_pid, f->fuse_mnt, f->fuse_conn, h[i].pid);
			return -ESTALE;
		}
	if (fuse_pid_holds_conn((pid_t)t->pid, f->fuse_conn)) {
		cr_error("FUSE connection %u of '%s' was already handed to the restored pid %u and "
			 "its keeper is gone: refusing to restore this image twice",
			 f->fuse_conn, f->fuse_mnt, t->pid);
		return -EALREADY;
	}
	if (probe == -ECONNREFUSED || probe == -ENOENT) {
		cr_error("the keeper (pid %u) of FUSE mount '%s' (connection %u) is gone: that "
			 "mount can no longer be recovered from this image%s; the image is left "
			 "intact",
			 f->fuse_keeper_pid, f->fuse_mnt, f->fuse_conn,
			 server ? " (another process serves it)"
				: " (release it with 'umount -l')");
		return -ENOTCONN;
	}
	cr_error("the keeper (pid %u) of FUSE mount '%s' does not answer: %s", f->fuse_keeper_pid,
		 f->fuse_mnt, strerror(-probe));
	return probe;
}

int restore_fuse_check(const struct cr_task *t)
{
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *f = &t->fds[i];
		if (f->kind != CR_FD_FUSE || f->dup_of != -1)
			continue;
		int ret = check_one(t, f);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int take_all(const struct cr_task *t, const struct cr_fd *f, struct fuse_keeper_take **tkp)
{
	struct fuse_keeper_take *tk = NULL;

	int ret = fuse_keeper_take(f->fuse_keeper_id, &tk);
	if (ret < 0) {
		cr_error("taking the FUSE connection of '%s' from its keeper (pid %u): %s",
			 f->fuse_mnt, f->fuse_keeper_pid, strerror(-ret));
		return ret;
	}
	/* What we got must be what the image describes, fd by fd. */
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *g = &t->fds[i];
		bool ok = false;
		if (g->kind != CR_FD_FUSE || g->dup_of != -1)
			continue;
		for (uint32_t k = 0; k < tk->nr; k++)
			if (tk->ents[k].fd == g->fd)
				ok = tk->ents[k].conn == g->fuse_conn &&
				     fdinfo_conn(0, tk->fds[k]) == g->fuse_conn;
		if (!ok) {
			cr_error(
				"the keeper (pid %u) did not hand over fd %d with connection %u of "
				"'%s'",
				g->fuse_keeper_pid, g->fd, g->fuse_conn, g->fuse_mnt);
			fuse_keeper_take_free(tk);
			return -EBADMSG;
		}
	}
	*tkp = tk;
	return 0;
}

int restore_fuse_open(const struct cr_task *t, const struct cr_fd *f, struct fuse_keeper_take **tkp)
{
	if (!f->fuse_keeper_pid) {
		cr_error(
			"fd %d: FUSE connection %u of '%s' has no keeper (a --leave-running image)",
			f->fd, f->fuse_conn, f->fuse_mnt);
		return -ENOTCONN;
	}
	if (!*tkp) {
		int ret = take_all(t, f, tkp);
		if (ret < 0)
			return ret;
	}
	struct fuse_keeper_take *tk = *tkp;
	for (uint32_t k = 0; k < tk->nr; k++)
		if (tk->ents[k].fd == f->fd) {
			int fd = fcntl(tk->fds[k], F_DUPFD_CLOEXEC, 3);
			if (fd < 0) {
				cr_error("fd %d: duplicating the kept FUSE fd: %s", f->fd,
					 strerror(errno));
				return -errno;
			}
			return fd;
		}
	cr_error("fd %d: no kept FUSE fd for it", f->fd);
	return -EBADMSG;
}

/*
 * FUSE_NOTIFY_RESEND (Linux 6.9): the kernel puts every request that was read from the
 * connection but not answered back into its input queue (with FUSE_UNIQUE_RESEND set in the
 * unique), to be read again. Our uapi headers may predate it, hence the number.
 */
#define NOTIFY_RESEND 7

static int conn_resend(int fd)
{
	struct fuse_out_header oh = {.len = sizeof(oh), .error = NOTIFY_RESEND, .unique = 0};

	if (write(fd, &oh, sizeof(oh)) != (ssize_t)sizeof(oh))
		return -errno;
	return 0;
}

/*
 * A --leave-running image is restored after its original died: requests the original had read
 * and not answered are still "being processed" in the open file the keeper held, and the
 * rolled-back daemon never saw them, so their clients would wait forever. Resending them makes
 * the restored daemon answer them. (Not for a plain dump: there the daemon's memory holds the
 * request it had read, and it answers it itself.)
 */
static void resend_unanswered(const struct fuse_keeper_take *tk, pid_t pid)
{
	for (uint32_t i = 0; i < tk->nr; i++) {
		bool seen = false;
		for (uint32_t j = 0; j < i; j++)
			seen = seen || tk->ents[j].conn == tk->ents[i].conn;
		if (seen)
			continue;
		int ret = conn_resend(tk->fds[i]);
		if (ret < 0)
			log_warn(
				"restored pid %d: FUSE connection %u: cannot have the requests its "
				"original left unanswered resent (needs Linux 6.9): %s; their clients "
				"wait until the mount is aborted",
				pid, tk->ents[i].conn, strerror(-ret));
	}
}

void restore_fuse_finish(struct fuse_keeper_take **tkp, pid_t pid)
{
	struct fuse_keeper_take *tk = TAKE_PTR(*tkp);

	if (!tk)
		return;
	if (tk->flags & FUSE_KEEPER_F_LEAVE_RUNNING)
		resend_unanswered(tk, pid);
	int ret = fuse_keeper_confirm(tk);
	/* The restored daemon holds the connection whatever the keeper does now. */
	if (ret < 0)
		log_warn("restored pid %d holds its FUSE connections, but its keeper did not "
			 "acknowledge the handover: %s",
			 pid, strerror(-ret));
}

void restore_fuse_abandon(struct fuse_keeper_take **tkp)
{
	fuse_keeper_take_free(TAKE_PTR(*tkp));
}

void fuse_cr_describe(const struct cr_fd *f, FILE *out)
{
	char name[64];
	uint32_t nr = 0, flags = 0;

	if (f->kind != CR_FD_FUSE)
		return;
	fprintf(out, " conn %u mount '%s' (%s)", f->fuse_conn, f->fuse_mnt,
		f->fuse_fstype ? f->fuse_fstype : "?");
	if (f->dup_of != -1)
		return;
	if (!f->fuse_keeper_pid) {
		fprintf(out, " not kept (--leave-running, no keeper)");
		return;
	}
	fuse_keeper_name(f->fuse_keeper_id, name, sizeof(name));
	int ret = fuse_keeper_probe(f->fuse_keeper_id, &nr, &flags);
	fprintf(out, " keeper pid %u @%s: %s", f->fuse_keeper_pid, name,
		ret < 0				      ? "gone (handed over, superseded or lost)"
		: flags & FUSE_KEEPER_F_LEAVE_RUNNING ? "kept (leave-running: restorable after the "
							"original stops)"
						      : "holding");
}
