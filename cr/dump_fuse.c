// SPDX-License-Identifier: MIT
/*
 * dump_fuse.c - the dump side of FUSE daemons: recognises /dev/fuse fds by the
 * "fuse_connection:" line of their fdinfo, finds the mount each connection serves in the
 * target's mountinfo (device 0:<connection>), refuses files and mappings on FUSE mounts, and
 * hands the connections to a keeper (fuse_keeper.c) before the target is killed.
 *
 * Nothing here touches a FUSE mount: mount points are only compared as strings, files on
 * them are recognised by mnt_id (fdinfo) or by device number (maps), never by stat.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "cr/error.h"
#include "cr/fuse_priv.h"

struct mnt_entry {
	int mnt_id;
	unsigned int maj, min;
	char mnt[4096];
	char fstype[256];
	char source[1024];
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

static bool is_fuse_type(const char *fstype)
{
	return !strcmp(fstype, "fuse") || !strcmp(fstype, "fuseblk") ||
	       !strncmp(fstype, "fuse.", 5) || !strncmp(fstype, "fuseblk.", 8);
}

/*
 * Finds the mount of pid with id mnt_id (if >= 0) or device 0:min (if mnt_id < 0).
 * Returns 1 and fills *ret if found, 0 if not, -errno if mountinfo is unreadable.
 */
static int mountinfo_find(pid_t pid, int mnt_id, unsigned int min, struct mnt_entry *ret)
{
	char path[64];
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		struct mnt_entry e = {.mnt_id = -1};
		int id, parent, n = 0;
		char mnt[4096];

		if (sscanf(line, "%d %d %u:%u %*s %4095s %n", &id, &parent, &e.maj, &e.min, mnt,
			   &n) < 5 ||
		    n == 0)
			continue;
		if (mnt_id >= 0 ? id != mnt_id : (e.maj != 0 || e.min != min))
			continue;
		const char *sep = strstr(line + n, " - ");
		if (!sep || sscanf(sep, " - %255s %1023s", e.fstype, e.source) < 1)
			continue;
		e.mnt_id = id;
		unescape(mnt);
		snprintf(e.mnt, sizeof(e.mnt), "%s", mnt);
		*ret = e;
		found = 1;
		/* With device 0:min, a later line (a bind mount of the same superblock) is as good;
		 * the first one is the one the daemon mounted. */
		break;
	}
	fclose(f);
	return found;
}

/* Reads "key: value" lines of /proc/PID/fdinfo/FD we care about. */
static int read_fuse_fdinfo(pid_t pid, int fd, int *ret_mnt_id, uint32_t *ret_conn)
{
	char path[64], line[256];

	*ret_mnt_id = -1;
	*ret_conn = 0;
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned int v;
		int id;
		if (sscanf(line, "mnt_id: %d", &id) == 1)
			*ret_mnt_id = id;
		else if (sscanf(line, "fuse_connection: %u", &v) == 1)
			*ret_conn = v;
	}
	fclose(f);
	return 0;
}

int dump_fuse_inspect_fd(struct dump_ctx *c, struct cr_fd *f)
{
	struct mnt_entry m;
	uint32_t conn;
	int mnt_id;

	int ret = read_fuse_fdinfo(c->pid, f->fd, &mnt_id, &conn);
	if (ret < 0) {
		cr_error("pid %d: cannot read fdinfo of fd %d: %s", c->pid, f->fd, strerror(-ret));
		return ret;
	}
	if (conn) {
		f->kind = CR_FD_FUSE;
		f->fuse_conn = conn;
		return 0;
	}
	if (mnt_id < 0)
		return 0;
	ret = mountinfo_find(c->pid, mnt_id, 0, &m);
	if (ret < 0) {
		cr_error("pid %d: cannot read its mountinfo: %s", c->pid, strerror(-ret));
		return ret;
	}
	if (ret == 1 && is_fuse_type(m.fstype)) {
		cr_error("pid %d: fd %d is open on the FUSE mount '%s' (%s): files on FUSE mounts "
			 "are not supported (only the daemon's /dev/fuse connections are)",
			 c->pid, f->fd, m.mnt, m.fstype);
		return -EOPNOTSUPP;
	}
	return 0;
}

int dump_fuse_check_mapping(struct dump_ctx *c, unsigned int maj, unsigned int min,
			    const char *name, uint64_t start)
{
	struct mnt_entry m;

	if (maj != 0 || name[0] != '/')
		return 0;
	int ret = mountinfo_find(c->pid, -1, min, &m);
	if (ret < 0) {
		cr_error("pid %d: cannot read its mountinfo: %s", c->pid, strerror(-ret));
		return ret;
	}
	if (ret == 1 && is_fuse_type(m.fstype)) {
		cr_error("pid %d: mapping %#" PRIx64 " of '%s' is a file on the FUSE mount '%s': "
			 "not supported",
			 c->pid, start, name, m.mnt);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Is path at or below mount point mnt (string comparison only)? */
static bool path_below(const char *path, const char *mnt)
{
	size_t ml = strlen(mnt);
	if (!strcmp(mnt, "/"))
		return true;
	return !strncmp(path, mnt, ml) && (path[ml] == 0 || path[ml] == '/');
}

static int fuse_resolve(struct dump_ctx *c, struct cr_fd *f)
{
	struct mnt_entry m;
	char desc[1400];

	int ret = mountinfo_find(c->pid, -1, f->fuse_conn, &m);
	if (ret < 0) {
		cr_error("pid %d: cannot read its mountinfo: %s", c->pid, strerror(-ret));
		return ret;
	}
	if (ret == 0) {
		cr_error("pid %d: fd %d serves FUSE connection %u, whose mount is no longer in the "
			 "mount table (unmounted, or lazily unmounted while in use): refusing to "
			 "dump a daemon of a mount that cannot be found again",
			 c->pid, f->fd, f->fuse_conn);
		return -ENOENT;
	}
	const char *t = c->t->cwd, *r = c->t->root;
	if ((t && path_below(t, m.mnt) && strcmp(m.mnt, "/")) ||
	    (r && strcmp(r, "/") && path_below(r, m.mnt))) {
		cr_error("pid %d: its %s '%s' is on the FUSE mount '%s' it serves itself: restore "
			 "could not enter it before the daemon runs",
			 c->pid, t && path_below(t, m.mnt) ? "cwd" : "root",
			 t && path_below(t, m.mnt) ? t : r, m.mnt);
		return -EOPNOTSUPP;
	}
	/* The image directory below the mount this frozen daemon serves: writing it would wait
	 * for the daemon forever. */
	struct mnt_entry self = {.mnt_id = -1};
	int dir_mnt;
	uint32_t dir_conn;
	if (read_fuse_fdinfo(getpid(), c->dirfd, &dir_mnt, &dir_conn) == 0 && dir_mnt >= 0 &&
	    mountinfo_find(getpid(), dir_mnt, 0, &self) == 1 && self.maj == 0 &&
	    self.min == f->fuse_conn) {
		cr_error("pid %d: the image directory is on the FUSE mount '%s' that this daemon "
			 "serves itself: choose a directory elsewhere",
			 c->pid, m.mnt);
		return -EDEADLK;
	}
	snprintf(desc, sizeof(desc), "%s %s", m.fstype, m.source);
	f->fuse_mnt = strdup(m.mnt);
	f->fuse_fstype = strdup(desc);
	if (!f->fuse_mnt || !f->fuse_fstype)
		return -ENOMEM;
	return 0;
}

/*
 * One keeper per connection: the newer one (keeper) replaces any older. Done once the new keeper
 * holds the connection, so it is never unheld; a dump failing after this point loses the older
 * image's restorability too (documented). A keeper we may not stop is left alone, with a
 * warning: its image stays restorable as long as it holds the connection.
 */
static void retire_older_keepers(struct dump_ctx *c, uint32_t conn, pid_t keeper)
{
	struct fuse_conn_holder h[16];
	uint32_t n = 0;

	int ret = fuse_conn_holders(conn, h, 16, &n);
	if (ret < 0) {
		log_warn("FUSE connection %u: cannot look for older keepers: %s", conn,
			 strerror(-ret));
		return;
	}
	for (uint32_t i = 0; i < n && i < 16; i++) {
		if (!h[i].keeper || h[i].pid == keeper)
			continue;
		ret = fuse_keeper_retire(h[i].pid, conn);
		if (ret < 0 && ret != -ESRCH)
			log_warn("pid %d: cannot retire the older keeper pid %d of FUSE connection "
				 "%u: %s",
				 c->pid, h[i].pid, conn, strerror(-ret));
		else
			log_debug("pid %d: retired the older keeper pid %d of FUSE connection %u",
				  c->pid, h[i].pid, conn);
	}
}

int dump_fuse_prepare(struct dump_ctx *c, bool leave_running)
{
	struct cr_task *t = c->t;
	struct fuse_keeper_ent ents[FUSE_KEEPER_MAX_FDS];
	int fds[FUSE_KEEPER_MAX_FDS];
	uint8_t id[FUSE_KEEPER_ID_LEN];
	uint32_t n = 0;
	pid_t keeper;
	int ret = 0;

	for (uint32_t i = 0; i < FUSE_KEEPER_MAX_FDS; i++)
		fds[i] = -1;
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		struct cr_fd *f = &t->fds[i];
		if (f->kind != CR_FD_FUSE)
			continue;
		ret = fuse_resolve(c, f);
		if (ret < 0)
			return ret;
		if (f->dup_of != -1)
			continue;
		if (n == FUSE_KEEPER_MAX_FDS) {
			cr_error("pid %d: more than %d /dev/fuse fds", c->pid, FUSE_KEEPER_MAX_FDS);
			ret = -EOPNOTSUPP;
			goto out;
		}
		ents[n] = (struct fuse_keeper_ent){.fd = f->fd, .conn = f->fuse_conn};
		n++;
	}
	if (n == 0)
		return 0;
	/* --leave-running too: the original keeps its own fds and keeps serving, the keeper holds
	 * copies of the same open files so the connection survives the original (a crash), and
	 * restoring this image then rolls the daemon back on that connection. */
	for (uint32_t i = 0; i < n; i++) {
		fds[i] = pidfd_getfd(c->pidfd, ents[i].fd, 0);
		if (fds[i] < 0) {
			ret = -errno;
			cr_error("pid %d: cannot take its /dev/fuse fd %d: %s", c->pid, ents[i].fd,
				 strerror(errno));
			goto out;
		}
	}
	ret = fuse_keeper_start(fds, ents, n, leave_running ? FUSE_KEEPER_F_LEAVE_RUNNING : 0, id,
				&keeper);
	if (ret < 0) {
		if (!cr_error_last()[0])
			cr_error("pid %d: cannot start a keeper for its FUSE connections: %s",
				 c->pid, strerror(-ret));
		goto out;
	}
	log_debug("pid %d: %u FUSE connection fd(s) kept by keeper pid %d", c->pid, n, keeper);
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		struct cr_fd *f = &t->fds[i];
		if (f->kind != CR_FD_FUSE)
			continue;
		f->fuse_keeper_pid = (uint32_t)keeper;
		memcpy(f->fuse_keeper_id, id, sizeof(id));
	}
	for (uint32_t i = 0; i < n; i++) {
		bool seen = false;
		for (uint32_t j = 0; j < i; j++)
			seen = seen || ents[j].conn == ents[i].conn;
		if (!seen)
			retire_older_keepers(c, ents[i].conn, keeper);
	}
out:
	for (uint32_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}

void dump_fuse_abort(struct dump_ctx *c)
{
	if (!c->t)
		return;
	for (uint32_t i = 0; i < c->t->nr_fds; i++) {
		struct cr_fd *f = &c->t->fds[i];
		if (f->kind == CR_FD_FUSE && f->fuse_keeper_pid) {
			/* The keeper holds copies only: the target, released, still has its own. */
			kill((pid_t)f->fuse_keeper_pid, SIGKILL);
			log_debug("pid %d: stopped FUSE keeper %u after a failed dump", c->pid,
				  f->fuse_keeper_pid);
			for (uint32_t j = 0; j < c->t->nr_fds; j++)
				c->t->fds[j].fuse_keeper_pid = 0;
			return;
		}
	}
}
