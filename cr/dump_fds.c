// SPDX-License-Identifier: MIT
/*
 * dump_fds.c - the target's file descriptors: classified from /proc/PID/fd and fdinfo,
 * refused when restore could not rebuild them, and for pipes and unlinked files the bytes
 * they hold copied into files/.
 *
 * Pipe buffers are copied with tee(2), which duplicates the buffered data without consuming
 * it, so a target left running keeps its bytes. A pipe with an end held outside the process
 * is refused (check_pipe_peers): restore could only connect it to nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <linux/kcmp.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/dump_priv.h"
#include "cr/error.h"
#include "cr/fuse_priv.h"

static int read_fdinfo(pid_t pid, int fd, uint64_t *pos, uint32_t *flags)
{
	char path[64], line[256];
	bool have_pos = false, have_flags = false;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		unsigned int fl;
		if (sscanf(line, "pos: %llu", &v) == 1) {
			*pos = v;
			have_pos = true;
		} else if (sscanf(line, "flags: %o", &fl) == 1) {
			*flags = fl;
			have_flags = true;
		}
	}
	fclose(f);
	return have_pos && have_flags ? 0 : -EIO;
}

static const char *chr_path(dev_t rdev)
{
	if (major(rdev) != 1)
		return NULL;
	switch (minor(rdev)) {
	case 3:
		return "/dev/null";
	case 5:
		return "/dev/zero";
	case 7:
		return "/dev/full";
	case 8:
		return "/dev/random";
	case 9:
		return "/dev/urandom";
	}
	return NULL;
}

static bool is_tty(dev_t rdev)
{
	unsigned int ma = major(rdev), mi = minor(rdev);
	/* 136-143: pty slaves; 4: virtual consoles and serial; 5:0 /dev/tty; 5:1 console. */
	return (ma >= 136 && ma <= 143) || ma == 4 || (ma == 5 && (mi == 0 || mi == 1));
}

static int classify_fd(struct dump_ctx *c, struct cr_fd *f, const char *link, const struct stat *st)
{
	size_t ll = strlen(link);

	if (f->kind == CR_FD_FUSE) {
		f->path = strdup(link);
		return f->path ? 0 : -ENOMEM;
	}
	if (!strncmp(link, "socket:", 7)) {
		cr_error("pid %d: fd %d is a socket (%s): sockets are not supported yet", c->pid,
			 f->fd, link);
		return -EOPNOTSUPP;
	}
	if (!strncmp(link, "anon_inode:", 11)) {
		cr_error("pid %d: fd %d is %s: not supported yet", c->pid, f->fd, link + 11);
		return -EOPNOTSUPP;
	}
	if (S_ISREG(st->st_mode)) {
		if (ll > 10 && !strcmp(link + ll - 10, " (deleted)")) {
			char name[64];
			if (link[0] == '/') {
				f->path = strndup(link, ll - 10);
				if (!f->path)
					return -ENOMEM;
			}
			snprintf(name, sizeof(name), "unlinked-%d-%d.data", c->pid, f->fd);
			f->kind = CR_FD_UNLINKED;
			/* A memfd keeps its identity, so that restore gives its fds and its
			 * mappings (same device and inode, dump_mm.c) one new memfd. */
			if (!strncmp(link, "/memfd:", 7)) {
				snprintf(name, sizeof(name), "memfd-%d-%d.data", c->pid, f->fd);
				f->kind = CR_FD_MEMFD;
				f->memfd_dev = st->st_dev;
				f->memfd_ino = st->st_ino;
			}
			f->data = strdup(name);
			f->data_len = (uint64_t)st->st_size;
			return f->data ? 0 : -ENOMEM;
		}
		if (link[0] != '/') {
			cr_error("pid %d: fd %d is a file without a path ('%s')", c->pid, f->fd,
				 link);
			return -EOPNOTSUPP;
		}
		f->kind = CR_FD_REG;
	} else if (S_ISDIR(st->st_mode)) {
		if (ll > 10 && !strcmp(link + ll - 10, " (deleted)")) {
			cr_error("pid %d: fd %d is the removed directory '%s': not supported",
				 c->pid, f->fd, link);
			return -EOPNOTSUPP;
		}
		f->kind = CR_FD_DIR;
	} else if (S_ISFIFO(st->st_mode)) {
		f->pipe_id = st->st_ino;
		if (!strncmp(link, "pipe:", 5)) {
			f->kind = CR_FD_PIPE;
			return 0;
		}
		if (link[0] != '/' || (ll > 10 && !strcmp(link + ll - 10, " (deleted)"))) {
			cr_error("pid %d: fd %d is a FIFO without a path ('%s'): not supported",
				 c->pid, f->fd, link);
			return -EOPNOTSUPP;
		}
		f->kind = CR_FD_FIFO;
	} else if (S_ISCHR(st->st_mode)) {
		const char *p = chr_path(st->st_rdev);
		if (p) {
			f->kind = CR_FD_CHR;
			f->path = strdup(p);
			return f->path ? 0 : -ENOMEM;
		}
		if (!is_tty(st->st_rdev)) {
			cr_error("pid %d: fd %d is the character device '%s' (%u:%u): not "
				 "supported",
				 c->pid, f->fd, link, major(st->st_rdev), minor(st->st_rdev));
			return -EOPNOTSUPP;
		}
		f->kind = CR_FD_TTY;
	} else {
		cr_error("pid %d: fd %d ('%s') is of an unsupported file type %#o", c->pid, f->fd,
			 link, st->st_mode & S_IFMT);
		return -EOPNOTSUPP;
	}
	f->path = strdup(link);
	return f->path ? 0 : -ENOMEM;
}

/* A process other than pid and the dumper with an fd on one of the nr pipe inodes ids (which
 * one: *ret_idx), or 0 if none is seen. One pass over /proc/PID/fd. */
static pid_t find_pipe_holder(pid_t pid, const uint64_t *ids, uint32_t nr, uint32_t *ret_idx)
{
	pid_t found = 0;
	struct dirent *pe;

	DIR *proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!found && (pe = readdir(proc))) {
		char path[300], link[64];
		struct dirent *de;
		char *end;

		long p = strtol(pe->d_name, &end, 10);
		if (*end || p <= 0 || p == pid || p == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", p);
		DIR *fds = opendir(path);
		if (!fds)
			continue; /* gone meanwhile */
		while (!found && (de = readdir(fds))) {
			unsigned long long ino;
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/fd/%s", p, de->d_name);
			ssize_t n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = 0;
			if (sscanf(link, "pipe:[%llu]", &ino) != 1)
				continue;
			for (uint32_t k = 0; k < nr && !found; k++)
				if (ids[k] == ino) {
					found = (pid_t)p;
					*ret_idx = k;
				}
		}
		closedir(fds);
	}
	closedir(proc);
	return found;
}

static int refuse_pipe(struct dump_ctx *c, const struct cr_fd *f, const char *which, pid_t holder)
{
	char who[64] = "a process the dumper cannot see, or an fd in flight";

	if (holder)
		snprintf(who, sizeof(who), "pid %d", holder);
	cr_error("pid %d fd %d: pipe:[%" PRIu64 "] has %s end outside the process (held by %s): "
		 "not supported (restore would cut it off)",
		 c->pid, f->fd, f->pipe_id, which, who);
	return -EOPNOTSUPP;
}

/*
 * A pipe must not be connected to anything outside the process: restore makes a new pipe,
 * and a peer elsewhere would be cut off silently (its reader sees EOF, its writer EPIPE).
 *
 * When the process holds only one end, the kernel's own count decides, which is exact and
 * sees every holder (processes in other pid namespaces or hidden from /proc, an fd in flight
 * in a unix socket): poll on a copy of that end reports POLLHUP on a read end when no write
 * end is open anywhere, and POLLERR on a write end when no read end is. Only then is the end
 * rebuilt as it is: a reader gets its buffered bytes and then end of file, a writer EPIPE.
 * fds 0-2 are exempt: restore gives them the restorer's own fds (a shell job's pipeline).
 * When the process holds both ends there is no count to ask ("at least one writer" is always
 * true), so /proc/PID/fd of every other process is searched instead, once for all such
 * pipes (the target is frozen meanwhile); that cannot see fds in flight or in other pid
 * namespaces, so it is a best effort (docs/cr.md).
 */
static int check_pipe_peers(struct dump_ctx *c)
{
	const struct cr_task *t = c->t;
	_cleanup_free_ uint64_t *both = calloc(t->nr_fds ? t->nr_fds : 1, sizeof(*both));
	_cleanup_free_ uint32_t *both_fd = calloc(t->nr_fds ? t->nr_fds : 1, sizeof(*both_fd));
	uint32_t nr_both = 0;

	if (!both || !both_fd)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *f = &t->fds[i];
		bool rd = false, wr = false, first = true;

		if (f->kind != CR_FD_PIPE || f->dup_of != -1)
			continue;
		if ((f->flags & O_ACCMODE) == O_RDWR) {
			cr_error("pid %d fd %d: pipe:[%" PRIu64 "] is open for reading and writing "
				 "(reopened through /proc): not supported",
				 c->pid, f->fd, f->pipe_id);
			return -EOPNOTSUPP;
		}
		for (uint32_t j = 0; j < t->nr_fds; j++) {
			const struct cr_fd *o = &t->fds[j];
			if (o->kind != CR_FD_PIPE || o->pipe_id != f->pipe_id)
				continue;
			rd |= (o->flags & O_ACCMODE) == O_RDONLY;
			wr |= (o->flags & O_ACCMODE) == O_WRONLY;
			if (j < i && o->dup_of == -1)
				first = false;
		}
		if (rd && wr) {
			if (first) {
				both[nr_both] = f->pipe_id;
				both_fd[nr_both++] = i;
			}
			continue;
		}
		if (f->fd <= 2)
			continue;
		_cleanup_close_ int end = pidfd_getfd(c->pidfd, f->fd, 0);
		if (end < 0) {
			cr_error("pid %d: cannot take pipe fd %d: %s", c->pid, f->fd,
				 strerror(errno));
			return -errno;
		}
		struct pollfd pfd = {.fd = end, .events = rd ? POLLIN : POLLOUT};
		if (poll(&pfd, 1, 0) < 0)
			return -errno;
		if (pfd.revents & (rd ? POLLHUP : POLLERR))
			continue; /* no peer anywhere: rebuilt as it is */
		uint32_t k = 0;
		return refuse_pipe(c, f, rd ? "its write" : "its read",
				   find_pipe_holder(c->pid, &f->pipe_id, 1, &k));
	}
	uint32_t k = 0;
	pid_t holder = nr_both ? find_pipe_holder(c->pid, both, nr_both, &k) : 0;
	if (holder)
		return refuse_pipe(c, &t->fds[both_fd[k]], "a third", holder);
	return 0;
}

static int fd_cmp(const void *a, const void *b)
{
	const struct cr_fd *x = a, *y = b;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

int dump_fds_collect(struct dump_ctx *c)
{
	char path[64];
	struct cr_task *t = c->t;
	uint32_t cap = 0;
	struct dirent *de;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", c->pid);
	DIR *d = opendir(path);
	if (!d) {
		cr_error("pid %d: cannot list '%s': %s", c->pid, path, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d))) {
		char fdpath[96], link[4096];
		struct stat st;
		char *end;

		long n = strtol(de->d_name, &end, 10);
		if (de->d_name[0] == '.' || *end || n < 0)
			continue;
		if (t->nr_fds == cap) {
			uint32_t ncap = cap ? cap * 2 : 16;
			struct cr_fd *nf = realloc(t->fds, ncap * sizeof(*nf));
			if (!nf) {
				ret = -ENOMEM;
				break;
			}
			t->fds = nf;
			cap = ncap;
		}
		struct cr_fd *f = &t->fds[t->nr_fds];
		memset(f, 0, sizeof(*f));
		f->fd = (int32_t)n;
		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%ld", c->pid, n);
		ssize_t ll = readlink(fdpath, link, sizeof(link) - 1);
		/* Before stat: a file on a FUSE mount must not be stat-ed (fuse_priv.h). */
		if (ll >= 0 && (ret = dump_fuse_inspect_fd(c, f)) < 0)
			break;
		if (ll < 0 || stat(fdpath, &st) < 0) {
			ret = -errno;
			cr_error("pid %d: cannot inspect fd %ld: %s", c->pid, n, strerror(errno));
			break;
		}
		link[ll] = 0;
		uint32_t flags = 0;
		ret = read_fdinfo(c->pid, (int)n, &f->pos, &flags);
		if (ret < 0) {
			cr_error("pid %d: cannot read fdinfo of fd %ld: %s", c->pid, n,
				 strerror(-ret));
			break;
		}
		t->nr_fds++;
		f->dup_of = -1;
		f->cloexec = !!(flags & O_CLOEXEC);
		f->flags = flags & ~(uint32_t)O_CLOEXEC;
		f->mode = st.st_mode;
		ret = classify_fd(c, f, link, &st);
		if (ret < 0)
			break;
	}
	closedir(d);
	if (ret < 0)
		return ret;
	qsort(t->fds, t->nr_fds, sizeof(*t->fds), fd_cmp);
	/* fds sharing one open file description (dup, shell "2>&1") must share it again. */
	for (uint32_t i = 0; i < t->nr_fds; i++)
		for (uint32_t j = 0; j < i; j++)
			if (t->fds[j].dup_of == -1 && t->fds[j].kind == t->fds[i].kind &&
			    syscall(SYS_kcmp, c->pid, c->pid, KCMP_FILE, t->fds[j].fd,
				    t->fds[i].fd) == 0) {
				t->fds[i].dup_of = t->fds[j].fd;
				break;
			}
	return check_pipe_peers(c);
}

static int write_data_file(struct dump_ctx *c, const char *name, int srcfd, uint64_t len,
			   const uint8_t *mem)
{
	_cleanup_close_ int fd =
		openat(c->filesdirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		cr_error("creating 'files/%s': %s", name, strerror(errno));
		return -errno;
	}
	if (mem) {
		int ret = write_full(fd, mem, (size_t)len);
		if (ret < 0) {
			cr_error("writing 'files/%s': %s", name, strerror(-ret));
			return ret;
		}
	} else {
		_cleanup_free_ uint8_t *buf = malloc(1u << 20);
		if (!buf)
			return -ENOMEM;
		for (uint64_t off = 0; off < len;) {
			size_t n = (size_t)MIN((uint64_t)(1u << 20), len - off);
			int ret = pread_full(srcfd, buf, n, off);
			if (ret < 0) {
				cr_error("pid %d: reading unlinked file for 'files/%s': %s", c->pid,
					 name, strerror(ret == -EBADMSG ? EIO : -ret));
				return ret == -EBADMSG ? -EIO : ret;
			}
			ret = write_full(fd, buf, n);
			if (ret < 0) {
				cr_error("writing 'files/%s': %s", name, strerror(-ret));
				return ret;
			}
			off += n;
		}
	}
	c->bytes_written += len;
	if (fsync(fd) < 0 && errno != EINVAL && errno != ENOTSUP)
		return -errno;
	return 0;
}

/* Copies the bytes buffered in the pipe behind fd f without consuming them. */
static int dump_pipe(struct dump_ctx *c, struct cr_fd *f)
{
	char fdpath[64], name[64];
	int tmp[2] = {-1, -1};
	int ret, avail = 0;

	_cleanup_close_ int rd = -1;
	if ((f->flags & O_ACCMODE) == O_RDONLY) {
		rd = pidfd_getfd(c->pidfd, f->fd, 0);
	} else {
		/* Only the write end is here: a fresh reader of the same pipe via /proc. */
		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", c->pid, f->fd);
		rd = open(fdpath, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	}
	if (rd < 0) {
		cr_error("pid %d: cannot take pipe fd %d: %s", c->pid, f->fd, strerror(errno));
		return -errno;
	}
	int sz = fcntl(rd, F_GETPIPE_SZ);
	if (sz < 0 || ioctl(rd, FIONREAD, &avail) < 0) {
		cr_error("pid %d: cannot size pipe fd %d: %s", c->pid, f->fd, strerror(errno));
		return -errno;
	}
	f->pipe_size = (uint64_t)sz;
	if (avail == 0)
		return 0;
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	_cleanup_free_ uint8_t *buf = malloc((size_t)avail);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	if (fcntl(tmp[1], F_SETPIPE_SZ, sz) < 0) {
		ret = -errno;
		goto out;
	}
	ssize_t n = tee(rd, tmp[1], (size_t)avail, SPLICE_F_NONBLOCK);
	if (n != avail) {
		ret = n < 0 ? -errno : -EIO;
		cr_error("pid %d: copying %d buffered bytes of pipe fd %d: %s", c->pid, avail,
			 f->fd, n < 0 ? strerror(errno) : "short tee");
		goto out;
	}
	for (ssize_t got = 0; got < avail;) {
		ssize_t k = read(tmp[0], buf + got, (size_t)(avail - got));
		if (k <= 0) {
			ret = k < 0 ? -errno : -EIO;
			goto out;
		}
		got += k;
	}
	snprintf(name, sizeof(name), "pipe-%" PRIu64 ".data", f->pipe_id);
	ret = write_data_file(c, name, -1, (uint64_t)avail, buf);
	if (ret < 0)
		goto out;
	f->data = strdup(name);
	f->data_len = (uint64_t)avail;
	if (!f->data)
		ret = -ENOMEM;
out:
	closep(&tmp[0]);
	closep(&tmp[1]);
	return ret;
}

/* The earlier fd record of the same memfd (not a dup) whose bytes are saved, or NULL. */
static struct cr_fd *memfd_saved_before(struct cr_task *t, uint32_t i)
{
	for (uint32_t j = 0; j < i; j++)
		if (t->fds[j].kind == CR_FD_MEMFD && t->fds[j].dup_of == -1 &&
		    t->fds[j].memfd_dev == t->fds[i].memfd_dev &&
		    t->fds[j].memfd_ino == t->fds[i].memfd_ino)
			return &t->fds[j];
	return NULL;
}

int dump_fds_write_data(struct dump_ctx *c)
{
	struct cr_task *t = c->t;

	for (uint32_t i = 0; i < t->nr_fds; i++) {
		struct cr_fd *f = &t->fds[i];
		int ret = 0;

		if (f->dup_of != -1) {
			free(f->data);
			f->data = NULL;
			continue;
		}
		if (f->kind == CR_FD_PIPE || f->kind == CR_FD_FIFO) {
			/* One copy per pipe; the other end's record points at the same data. */
			struct cr_fd *first = NULL;
			for (uint32_t j = 0; j < i; j++)
				if (t->fds[j].kind == f->kind && t->fds[j].pipe_id == f->pipe_id &&
				    t->fds[j].dup_of == -1)
					first = &t->fds[j];
			if (first) {
				f->pipe_size = first->pipe_size;
				f->data_len = first->data_len;
				if (first->data && !(f->data = strdup(first->data)))
					return -ENOMEM;
				continue;
			}
			ret = dump_pipe(c, f);
		} else if (f->kind == CR_FD_MEMFD && memfd_saved_before(t, i)) {
			/* Another fd of this memfd already saved its bytes. */
			struct cr_fd *first = memfd_saved_before(t, i);
			free(f->data);
			if (!(f->data = strdup(first->data)))
				return -ENOMEM;
		} else if (f->kind == CR_FD_UNLINKED || f->kind == CR_FD_MEMFD) {
			_cleanup_close_ int src = pidfd_getfd(c->pidfd, f->fd, 0);
			if (src < 0) {
				cr_error("pid %d: cannot take fd %d: %s", c->pid, f->fd,
					 strerror(errno));
				return -errno;
			}
			if ((f->flags & O_ACCMODE) == O_WRONLY) {
				char fdpath[64];
				closep(&src);
				snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", c->pid, f->fd);
				src = open(fdpath, O_RDONLY | O_CLOEXEC);
				if (src < 0)
					return -errno;
			}
			ret = write_data_file(c, f->data, src, f->data_len, NULL);
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}
