// SPDX-License-Identifier: MIT
/*
 * restore_fds.c - reopens the file descriptors of an image in the restorer, so that the clone3
 * child only has to move them to their numbers.
 *
 * Regular files and devices are reopened by path with their status flags and offset; unlinked
 * files are recreated as anonymous temporary files filled from files/, memfds as new memfds
 * (one per dumped memfd, also used for its mappings by restore.c); a pipe whose both ends
 * were in the process becomes one new pipe holding the buffered bytes; terminals become the
 * restorer's terminal. fds 0-2 that were a pipe to the outside inherit the restorer's own fd of
 * that number (as a shell job would); other half pipes, whose other end dump found closed
 * everywhere, get a new pipe whose other end is closed (the reader sees the buffered bytes,
 * then end of file; the writer EPIPE). Memfds that were sealed and are not mapped are sealed
 * here; mapped ones once their pages are in (restore_shm.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/error.h"
#include "cr/fuse_priv.h"
#include "cr/restore_priv.h"

#define REOPEN_MASK                                                                                \
	(O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC | O_PATH)

static int copy_data(const char *dir, const char *name, int dst, uint64_t len)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/files/%s", dir, name);
	_cleanup_close_ int src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		cr_error("image file '%s': %s", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	if (fstat(src, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != len) {
		cr_error("image file '%s' holds %lld bytes, the image says %llu", path,
			 (long long)st.st_size, (unsigned long long)len);
		return -EBADMSG;
	}
	_cleanup_free_ uint8_t *buf = malloc(1u << 20);
	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; off < len;) {
		size_t n = (size_t)MIN((uint64_t)(1u << 20), len - off);
		int ret = pread_full(src, buf, n, off);
		if (ret == 0)
			ret = write_full(dst, buf, n);
		if (ret < 0) {
			cr_error("copying '%s': %s", path, strerror(ret == -EBADMSG ? EIO : -ret));
			return ret;
		}
		off += n;
	}
	return 0;
}

static int open_tty(const struct cr_fd *f)
{
	for (int i = 0; i <= 2; i++) {
		char name[PATH_MAX];
		if (!isatty(i) || ttyname_r(i, name, sizeof(name)) != 0)
			continue;
		int fd = open(name, (int)(f->flags & REOPEN_MASK) | O_NOCTTY | O_CLOEXEC);
		if (fd < 0) {
			cr_error("fd %d: cannot open the restorer's terminal '%s': %s", f->fd, name,
				 strerror(errno));
			return -errno;
		}
		return fd;
	}
	cr_error("fd %d was the terminal '%s', but the restorer has no terminal to give it", f->fd,
		 f->path ? f->path : "?");
	return -ENOTTY;
}

/* Reopens fd through /proc with the recorded access mode and status flags: a new open file
 * description of the same file. */
static int reopen_as(int fd, const struct cr_fd *f, const char *what)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	int nfd = open(p, (int)(f->flags & REOPEN_MASK) | O_CLOEXEC);
	if (nfd < 0) {
		cr_error("fd %d: reopening the recreated %s: %s", f->fd, what, strerror(errno));
		return -errno;
	}
	return nfd;
}

static int open_unlinked(const char *dir, const struct cr_fd *f)
{
	char tmpdir[PATH_MAX] = "/tmp";

	if (f->path) {
		snprintf(tmpdir, sizeof(tmpdir), "%s", f->path);
		char *slash = strrchr(tmpdir, '/');
		if (slash && slash != tmpdir)
			*slash = 0;
		else
			snprintf(tmpdir, sizeof(tmpdir), "/");
	}
	_cleanup_close_ int tmp = open(tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, f->mode & 07777);
	if (tmp < 0)
		tmp = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, f->mode & 07777);
	if (tmp < 0) {
		cr_error("fd %d: cannot create a file for unlinked '%s': %s", f->fd,
			 f->path ? f->path : "?", strerror(errno));
		return -errno;
	}
	int ret = copy_data(dir, f->data, tmp, f->data_len);
	if (ret < 0)
		return ret;
	/* Reopen for the recorded access mode and flags (a new description). */
	return reopen_as(tmp, f, "unlinked file");
}

/*
 * A memfd: one new memfd per dumped one (device and inode), with the same name and bytes.
 * Further fds of it (opened again, not dup'ed) get their own open file description of that
 * memfd; restore.c maps the memfd's VMAs from it too, so fds and mappings stay one object.
 */
static int open_memfd(const char *dir, const struct cr_task *t, uint32_t idx,
		      const struct child_plan *p)
{
	const struct cr_fd *f = &t->fds[idx];

	for (uint32_t j = 0; j < idx; j++) {
		const struct cr_fd *o = &t->fds[j];
		if (o->kind == CR_FD_MEMFD && o->dup_of == -1 && o->memfd_dev == f->memfd_dev &&
		    o->memfd_ino == f->memfd_ino) {
			if (o->data_len != f->data_len) {
				cr_error("fds %d and %d are one memfd but disagree on its size",
					 o->fd, f->fd);
				return -EBADMSG;
			}
			return reopen_as(p->fds[j].src, f, "memfd");
		}
	}
	/* memfd_create() names it "memfd:NAME"; the recorded path is "/memfd:NAME". Without
	 * MFD_ALLOW_SEALING a memfd starts with F_SEAL_SEAL, which is all an image from before
	 * seal records can be given. */
	_cleanup_close_ int mfd = memfd_create(
		f->path + 7, MFD_CLOEXEC | (f->memfd_has_seals ? MFD_ALLOW_SEALING : 0));
	if (mfd < 0) {
		cr_error("fd %d: cannot create memfd '%s': %s", f->fd, f->path + 7,
			 strerror(errno));
		return -errno;
	}
	int ret = copy_data(dir, f->data, mfd, f->data_len);
	if (ret < 0)
		return ret;
	/* Sealed now unless mappings still have to be made and filled (restore_shm.c). */
	if (f->memfd_has_seals && !restore_shm_mapped(t, f->memfd_dev, f->memfd_ino)) {
		char what[128];
		snprintf(what, sizeof(what), "fd %d (memfd '%s')", f->fd, f->path + 7);
		ret = restore_shm_add_seals(mfd, f->memfd_seals, f->mode & 07777, what);
		if (ret < 0)
			return ret;
	}
	return reopen_as(mfd, f, "memfd");
}

static int open_pipe(const char *dir, const struct cr_task *t, uint32_t idx, struct child_plan *p)
{
	const struct cr_fd *f = &t->fds[idx];
	int ends[2];
	int ret;

	/* Already made for the other end? */
	for (uint32_t j = 0; j < idx; j++) {
		const struct cr_fd *o = &t->fds[j];
		if (o->kind == CR_FD_PIPE && o->pipe_id == f->pipe_id && o->dup_of == -1 &&
		    p->fds[j].tmp >= 0 && (o->flags & O_ACCMODE) != (f->flags & O_ACCMODE)) {
			int fd = p->fds[j].tmp;
			p->fds[j].tmp = -1;
			if (fcntl(fd, F_SETFL, (int)(f->flags & O_NONBLOCK)) < 0)
				return -errno;
			return fd;
		}
	}
	bool other_end_here = false;
	for (uint32_t j = 0; j < t->nr_fds; j++)
		if (j != idx && t->fds[j].kind == CR_FD_PIPE && t->fds[j].pipe_id == f->pipe_id &&
		    (t->fds[j].flags & O_ACCMODE) != (f->flags & O_ACCMODE))
			other_end_here = true;
	if (!other_end_here && f->fd <= 2) {
		int fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 3);
		if (fd >= 0)
			return fd;
	}
	if (pipe2(ends, O_CLOEXEC) < 0)
		return -errno;
	if (f->pipe_size && fcntl(ends[1], F_SETPIPE_SZ, (int)f->pipe_size) < 0) {
		ret = -errno;
		goto fail;
	}
	if (f->data) {
		ret = copy_data(dir, f->data, ends[1], f->data_len);
		if (ret < 0)
			goto fail;
	}
	bool reader = (f->flags & O_ACCMODE) == O_RDONLY;
	int mine = reader ? ends[0] : ends[1];
	int other = reader ? ends[1] : ends[0];
	if (fcntl(mine, F_SETFL, (int)(f->flags & O_NONBLOCK)) < 0) {
		ret = -errno;
		goto fail;
	}
	/* Park the other end in this fd's tmp slot for the record that needs it. */
	if (other_end_here)
		p->fds[idx].tmp = other;
	else
		close(other);
	return mine;
fail:
	close(ends[0]);
	close(ends[1]);
	return ret;
}

/*
 * A named FIFO end. The first end of a FIFO also opens a read-write keeper, so that opening
 * either end never blocks and the buffered bytes can be written back; the keeper is parked in
 * this record's tmp slot and closed when all fds are open.
 */
static int open_fifo(const char *dir, const struct cr_task *t, uint32_t idx, struct child_plan *p)
{
	const struct cr_fd *f = &t->fds[idx];
	bool have_keeper = false;
	struct stat st;
	int ret;

	for (uint32_t j = 0; j < idx; j++)
		if (t->fds[j].kind == CR_FD_FIFO && t->fds[j].pipe_id == f->pipe_id &&
		    p->fds[j].tmp >= 0)
			have_keeper = true;
	if (!have_keeper) {
		/*
		 * A FIFO that another process still holds open is still the pipe this process
		 * had: its buffer is the truth now (the bytes saved at the dump are still in
		 * it, or that process has read them), so it is not filled again, or they would
		 * be read twice. Held elsewhere: a non-blocking open for writing succeeds only
		 * when a reader exists, and a FIFO nobody held starts empty.
		 */
		bool live = false;
		int probe = -1;
		if (stat(f->path, &st) == 0 && S_ISFIFO(st.st_mode)) {
			probe = open(f->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
			live = probe >= 0;
		}
		int keeper = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		/* The probe is a writer: closed only now that the keeper is one too, so a reader
		 * outside that the probe's open let through never sees "no writer left" (EOF). */
		if (probe >= 0)
			close(probe);
		if (keeper < 0 || fstat(keeper, &st) < 0 || !S_ISFIFO(st.st_mode)) {
			ret = keeper < 0 ? -errno : -ENOTSUP;
			cr_error("fd %d: cannot reopen FIFO '%s': %s", f->fd, f->path,
				 keeper < 0 ? strerror(errno) : "not a FIFO any more");
			if (keeper >= 0)
				close(keeper);
			return ret;
		}
		int queued = 0;
		if (!live && ioctl(keeper, FIONREAD, &queued) == 0 && queued > 0)
			live = true;
		if (f->pipe_size && !live)
			fcntl(keeper, F_SETPIPE_SZ, (int)f->pipe_size);
		if (f->data && !live) {
			ret = copy_data(dir, f->data, keeper, f->data_len);
			if (ret < 0) {
				close(keeper);
				return ret;
			}
		}
		p->fds[idx].tmp = keeper;
	}
	int fd = open(f->path, (int)(f->flags & REOPEN_MASK) | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		cr_error("fd %d: cannot reopen FIFO '%s': %s", f->fd, f->path, strerror(errno));
		return -errno;
	}
	if (fcntl(fd, F_SETFL, (int)(f->flags & (O_NONBLOCK | O_APPEND))) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int restore_fds_prepare(const char *dir, const struct cr_task *t, struct child_plan *p)
{
	int ret = 0;

	p->fds = calloc(t->nr_fds ? t->nr_fds : 1, sizeof(*p->fds));
	if (!p->fds)
		return -ENOMEM;
	p->nr_fds = (int)t->nr_fds;
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		p->fds[i].src = -1;
		p->fds[i].tmp = -1;
	}
	p->max_fd = 2;
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *f = &t->fds[i];
		int fd = -1;

		p->fds[i].target = f->fd;
		p->fds[i].cloexec = (int)f->cloexec;
		if (f->dup_of != -1) {
			for (uint32_t j = 0; j < i; j++)
				if (t->fds[j].fd == f->dup_of)
					fd = fcntl(p->fds[j].src, F_DUPFD_CLOEXEC, 3);
			if (fd < 0) {
				ret = -errno;
				goto fail;
			}
		} else {
			switch (f->kind) {
			case CR_FD_REG:
			case CR_FD_DIR:
			case CR_FD_CHR: {
				int fl = (int)(f->flags & REOPEN_MASK) | O_CLOEXEC | O_NOCTTY;
				if (f->kind == CR_FD_DIR)
					fl = (int)(f->flags & O_PATH) | O_RDONLY | O_DIRECTORY |
					     O_CLOEXEC;
				fd = open(f->path, fl);
				if (fd < 0) {
					ret = -errno;
					cr_error("fd %d: cannot reopen %s '%s': %s", f->fd,
						 cr_fd_kind_name(f->kind), f->path,
						 strerror(errno));
					goto fail;
				}
				break;
			}
			case CR_FD_UNLINKED:
				fd = open_unlinked(dir, f);
				break;
			case CR_FD_PIPE:
				fd = open_pipe(dir, t, i, p);
				break;
			case CR_FD_TTY:
				fd = open_tty(f);
				break;
			case CR_FD_FIFO:
				fd = open_fifo(dir, t, i, p);
				break;
			case CR_FD_MEMFD:
				fd = open_memfd(dir, t, i, p);
				break;
			case CR_FD_FUSE:
				fd = restore_fuse_open(t, f, &p->fuse);
				break;
			default:
				fd = -EBADMSG;
			}
			if (fd < 0) {
				ret = fd;
				goto fail;
			}
			if ((f->kind == CR_FD_REG || f->kind == CR_FD_UNLINKED ||
			     f->kind == CR_FD_MEMFD) &&
			    !(f->flags & O_PATH) && lseek(fd, (off_t)f->pos, SEEK_SET) < 0) {
				ret = -errno;
				cr_error("fd %d: cannot seek '%s' to %llu: %s", f->fd,
					 f->path ? f->path : "?", (unsigned long long)f->pos,
					 strerror(errno));
				close(fd);
				goto fail;
			}
		}
		p->fds[i].src = fd;
		p->max_fd = MAX(p->max_fd, MAX(fd, f->fd));
	}
	/* Pipe ends parked for a partner are now all handed out or unused. */
	for (int i = 0; i < p->nr_fds; i++)
		closep(&p->fds[i].tmp), p->fds[i].tmp = -1;
	return 0;
fail:
	restore_fds_release(p);
	return ret;
}

void restore_fds_release(struct child_plan *p)
{
	for (int i = 0; i < p->nr_fds; i++) {
		closep(&p->fds[i].src);
		closep(&p->fds[i].tmp);
		p->fds[i].src = p->fds[i].tmp = -1;
	}
	free(p->fds);
	p->fds = NULL;
	p->nr_fds = 0;
}
