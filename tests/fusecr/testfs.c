// SPDX-License-Identifier: MIT
/*
 * testfs.c - a single-threaded libfuse3 low-level file system whose whole state lives in its
 * memory, to be checkpointed and restored while clients use it (tests/fusecr/).
 *
 *   /counter  every read returns the next value of a counter, so a restore that lost or reset
 *             the daemon's memory shows up as a value going backwards
 *   /slow     a read sleeps SLOW_MS before answering "slow-ok\n": a dump taken meanwhile
 *             catches a request the daemon has read but not answered
 *   /<name>   files created by clients, kept in memory
 *
 * Usage: testfs [-m MiB] [-c] MOUNTPOINT
 *   -m  extra memory footprint, touched, for benchmarks
 *   -c  also hold a clone (FUSE_DEV_IOC_CLONE) and a dup of the session's /dev/fuse fd, idle,
 *       as multi-threaded daemons do, so C/R must carry several fds of one connection
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INO_COUNTER 2
#define INO_SLOW    3
#define INO_FIRST   16
#define MAX_FILES   4096
#define SLOW_MS	    2000
#define COUNTER_LEN 21

struct node {
	char *name;
	char *data;
	size_t size;
	mode_t mode;
};

static struct node files[MAX_FILES]; /* index = ino - INO_FIRST; name NULL: free */
static unsigned long long counter;

static struct node *node_of(fuse_ino_t ino)
{
	if (ino < INO_FIRST || ino >= INO_FIRST + MAX_FILES || !files[ino - INO_FIRST].name)
		return NULL;
	return &files[ino - INO_FIRST];
}

static int fill_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 1;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (ino == INO_COUNTER) {
		st->st_mode = S_IFREG | 0444;
		st->st_size = COUNTER_LEN;
	} else if (ino == INO_SLOW) {
		st->st_mode = S_IFREG | 0444;
		st->st_size = 8;
	} else {
		struct node *n = node_of(ino);
		if (!n)
			return -ENOENT;
		st->st_mode = n->mode;
		st->st_size = (off_t)n->size;
	}
	return 0;
}

static fuse_ino_t find(const char *name)
{
	if (!strcmp(name, "counter"))
		return INO_COUNTER;
	if (!strcmp(name, "slow"))
		return INO_SLOW;
	for (int i = 0; i < MAX_FILES; i++)
		if (files[i].name && !strcmp(files[i].name, name))
			return INO_FIRST + (fuse_ino_t)i;
	return 0;
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_entry_param e = {.ino = ino, .attr_timeout = 0, .entry_timeout = 0};
	fill_attr(ino, &e.attr);
	if (fi)
		fuse_reply_create(req, &e, fi);
	else
		fuse_reply_entry(req, &e);
}

static void fsop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_ino_t ino = parent == FUSE_ROOT_ID ? find(name) : 0;
	if (!ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry(req, ino, NULL);
}

static void fsop_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	(void)fi;
	int r = fill_attr(ino, &st);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, 0);
}

static void fsop_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			 struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);
	struct stat st;

	(void)fi;
	if (!n) {
		fuse_reply_err(req, ino == INO_COUNTER || ino == INO_SLOW ? EPERM : ENOENT);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		size_t sz = (size_t)attr->st_size;
		char *d = realloc(n->data, sz ? sz : 1);
		if (!d) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if (sz > n->size)
			memset(d + n->size, 0, sz - n->size);
		n->data = d;
		n->size = sz;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		n->mode = S_IFREG | (attr->st_mode & 07777);
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

static void fsop_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	char buf[65536];
	size_t used = 0;
	off_t idx = 0;

	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (size > sizeof(buf))
		size = sizeof(buf);
	for (int i = -4; i < MAX_FILES; i++) {
		const char *name;
		fuse_ino_t e;
		if (i == -4) {
			name = ".";
			e = FUSE_ROOT_ID;
		} else if (i == -3) {
			name = "..";
			e = FUSE_ROOT_ID;
		} else if (i == -2) {
			name = "counter";
			e = INO_COUNTER;
		} else if (i == -1) {
			name = "slow";
			e = INO_SLOW;
		} else if (files[i].name) {
			name = files[i].name;
			e = INO_FIRST + (fuse_ino_t)i;
		} else {
			continue;
		}
		idx++;
		if (idx <= off)
			continue;
		struct stat st = {.st_ino = e};
		fill_attr(e, &st);
		size_t l = fuse_add_direntry(req, buf + used, size - used, name, &st, idx);
		if (l > size - used)
			break;
		used += l;
	}
	fuse_reply_buf(req, buf, used);
}

static void fsop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == INO_COUNTER || ino == INO_SLOW) {
		/* Every read must reach the daemon. */
		fi->direct_io = 1;
	} else if (!node_of(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	} else if (fi->flags & O_TRUNC) {
		struct node *n = node_of(ino);
		n->size = 0;
	}
	fuse_reply_open(req, fi);
}

static void fsop_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	char tmp[64];
	const char *src;
	size_t len;

	(void)fi;
	if (ino == INO_COUNTER) {
		snprintf(tmp, sizeof(tmp), "%020llu\n", ++counter);
		src = tmp;
		len = COUNTER_LEN;
	} else if (ino == INO_SLOW) {
		struct timespec ts = {SLOW_MS / 1000, (SLOW_MS % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		src = "slow-ok\n";
		len = 8;
	} else {
		struct node *n = node_of(ino);
		if (!n) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		src = n->data;
		len = n->size;
	}
	if ((size_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	fuse_reply_buf(req, src + off, size);
}

static void fsop_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);

	(void)fi;
	if (!n) {
		fuse_reply_err(req, ino == INO_COUNTER || ino == INO_SLOW ? EACCES : ENOENT);
		return;
	}
	size_t end = (size_t)off + size;
	if (end > n->size) {
		char *d = realloc(n->data, end);
		if (!d) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memset(d + n->size, 0, (size_t)off > n->size ? (size_t)off - n->size : 0);
		n->data = d;
		n->size = end;
	}
	memcpy(n->data + off, buf, size);
	fuse_reply_write(req, size);
}

static void fsop_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			struct fuse_file_info *fi)
{
	fuse_ino_t ino = find(name);

	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!ino) {
		int i;
		for (i = 0; i < MAX_FILES && files[i].name; i++)
			;
		if (i == MAX_FILES) {
			fuse_reply_err(req, ENOSPC);
			return;
		}
		files[i].name = strdup(name);
		if (!files[i].name) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		files[i].data = NULL;
		files[i].size = 0;
		files[i].mode = S_IFREG | (mode & 07777);
		ino = INO_FIRST + (fuse_ino_t)i;
	} else if (ino < INO_FIRST) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	reply_entry(req, ino, fi);
}

static void fsop_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_ino_t ino = parent == FUSE_ROOT_ID ? find(name) : 0;
	struct node *n = node_of(ino);

	if (!n) {
		fuse_reply_err(req, ino ? EPERM : ENOENT);
		return;
	}
	free(n->name);
	free(n->data);
	memset(n, 0, sizeof(*n));
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = fsop_lookup,
	.getattr = fsop_getattr,
	.setattr = fsop_setattr,
	.readdir = fsop_readdir,
	.open = fsop_open,
	.read = fsop_read,
	.write = fsop_write,
	.create = fsop_create,
	.unlink = fsop_unlink,
};

int main(int argc, char **argv)
{
	char *fargv[] = {argv[0], "-o", "fsname=testfs,subtype=testfs", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	size_t ballast_mib = 0;
	int opt, ret = 1, clone_fd = -1, dup_fd = -1;
	bool extra_fds = false;

	while ((opt = getopt(argc, argv, "m:c")) != -1) {
		if (opt == 'c') {
			extra_fds = true;
		} else if (opt == 'm') {
			ballast_mib = strtoul(optarg, NULL, 10);
		} else {
			fprintf(stderr, "usage: testfs [-m MiB] [-c] MOUNTPOINT\n");
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: testfs [-m MiB] [-c] MOUNTPOINT\n");
		return 2;
	}
	char *ballast = NULL;
	if (ballast_mib) {
		ballast = malloc(ballast_mib << 20);
		if (!ballast)
			return 1;
		for (size_t i = 0; i < ballast_mib << 20; i += 4096)
			ballast[i] = (char)(i >> 12 | 1);
	}
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) < 0)
		goto out_destroy;
	if (fuse_session_mount(se, argv[optind]) < 0)
		goto out_signals;
	if (extra_fds) {
		uint32_t session_fd = (uint32_t)fuse_session_fd(se);
		clone_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
		dup_fd = fcntl((int)session_fd, F_DUPFD_CLOEXEC, 0);
		if (clone_fd < 0 || dup_fd < 0 ||
		    ioctl(clone_fd, FUSE_DEV_IOC_CLONE, &session_fd) < 0) {
			perror("testfs: cloning the /dev/fuse fd");
			goto out_unmount;
		}
	}
	ret = fuse_session_loop(se) < 0 ? 1 : 0;
out_unmount:
	fuse_session_unmount(se);
	if (clone_fd >= 0)
		close(clone_fd);
	if (dup_fd >= 0)
		close(dup_fd);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	free(ballast);
	fuse_opt_free_args(&args);
	return ret;
}
