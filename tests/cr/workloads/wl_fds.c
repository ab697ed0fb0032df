// SPDX-License-Identifier: MIT
/*
 * wl_fds - file descriptors of each kind at chosen numbers, with gaps between them:
 *   3  regular file, O_RDWR|O_CLOEXEC, offset 1234     50 dup of fd 3 (shares the offset)
 *   7  O_APPEND file                                    100 file unlinked while open, offset 777
 *   9  directory                                         20/21 pipe read/write end, 3000 bytes
 *  30  FIFO read end, 31 FIFO write end, 100 bytes          buffered, read end O_NONBLOCK
 *  40 /dev/null  41 /dev/zero  42 /dev/urandom
 * After restore every fd must be at its number with its flags, offset, identity and data,
 * and no other fd may be open.
 * Usage: wl_fds SCRATCH_DIR
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wl_common.h"

#define REG_SIZE   10000
#define GONE_SIZE  20000
#define PIPE_BYTES 3000
#define FIFO_BYTES 100

enum {
	FD_REG = 3,
	FD_APP = 7,
	FD_DIR = 9,
	FD_PIPE_R = 20,
	FD_PIPE_W = 21,
	FD_FIFO_R = 30,
	FD_FIFO_W = 31,
	FD_NULL = 40,
	FD_ZERO = 41,
	FD_URANDOM = 42,
	FD_DUP = 50,
	FD_GONE = 100,
};

static const int expected_fds[] = {0,	    1,	       2,	   FD_REG,    FD_APP,
				   FD_DIR,  FD_PIPE_R, FD_PIPE_W,  FD_FIFO_R, FD_FIFO_W,
				   FD_NULL, FD_ZERO,   FD_URANDOM, FD_DUP,    FD_GONE};

static char dir[PATH_MAX], reg_path[PATH_MAX + 16], app_path[PATH_MAX + 16],
	fifo_path[PATH_MAX + 16];
static struct stat dir_st, fifo_st, null_st, zero_st, urandom_st;

/* Open path with flags and move the fd to number want (closing the temporary one). */
static int open_at(int want, const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags, mode);

	if (fd < 0) {
		wl_fail("open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (fd == want)
		return 0;
	if (dup3(fd, want, flags & O_CLOEXEC) < 0) {
		wl_fail("dup3 '%s' to %d: %s", path, want, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int move_fd(int fd, int want)
{
	if (dup2(fd, want) < 0) {
		wl_fail("dup2 %d to %d: %s", fd, want, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static int setup(void)
{
	char buf[GONE_SIZE], gone_path[PATH_MAX + 16];
	int p[2];

	snprintf(reg_path, sizeof(reg_path), "%s/reg", dir);
	snprintf(app_path, sizeof(app_path), "%s/app", dir);
	snprintf(gone_path, sizeof(gone_path), "%s/gone", dir);
	snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", dir);

	/* Everything the harness may have left open beyond stdio goes, so gaps are real. */
	close_range(3, ~0U, 0);

	if (open_at(FD_REG, reg_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) < 0)
		return -1;
	wl_fill(buf, REG_SIZE, 1);
	if (write(FD_REG, buf, REG_SIZE) != REG_SIZE || lseek(FD_REG, 1234, SEEK_SET) != 1234) {
		wl_fail("write/seek '%s': %s", reg_path, strerror(errno));
		return -1;
	}
	if (dup2(FD_REG, FD_DUP) < 0)
		return -1;

	if (open_at(FD_APP, app_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600) < 0)
		return -1;
	if (write(FD_APP, "hello\n", 6) != 6)
		return -1;
	/* The offset of an O_APPEND fd is not where the next write goes: make that visible. */
	lseek(FD_APP, 2, SEEK_SET);

	if (open_at(FD_GONE, gone_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) < 0)
		return -1;
	wl_fill(buf, GONE_SIZE, 2);
	if (write(FD_GONE, buf, GONE_SIZE) != GONE_SIZE || lseek(FD_GONE, 777, SEEK_SET) != 777 ||
	    unlink(gone_path) < 0) {
		wl_fail("write/seek/unlink '%s': %s", gone_path, strerror(errno));
		return -1;
	}

	if (open_at(FD_DIR, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0) < 0 ||
	    stat(dir, &dir_st) < 0)
		return -1;

	if (pipe2(p, 0) < 0 || move_fd(p[0], FD_PIPE_R) < 0 || move_fd(p[1], FD_PIPE_W) < 0)
		return -1;
	fcntl(FD_PIPE_R, F_SETFL, O_NONBLOCK);
	wl_fill(buf, PIPE_BYTES, 3);
	if (write(FD_PIPE_W, buf, PIPE_BYTES) != PIPE_BYTES) {
		wl_fail("write pipe: %s", strerror(errno));
		return -1;
	}

	unlink(fifo_path);
	if (mkfifo(fifo_path, 0600) < 0 || stat(fifo_path, &fifo_st) < 0) {
		wl_fail("mkfifo '%s': %s", fifo_path, strerror(errno));
		return -1;
	}
	if (open_at(FD_FIFO_R, fifo_path, O_RDONLY | O_NONBLOCK, 0) < 0 ||
	    open_at(FD_FIFO_W, fifo_path, O_WRONLY, 0) < 0)
		return -1;
	wl_fill(buf, FIFO_BYTES, 4);
	if (write(FD_FIFO_W, buf, FIFO_BYTES) != FIFO_BYTES)
		return -1;

	if (open_at(FD_NULL, "/dev/null", O_RDWR, 0) < 0 ||
	    open_at(FD_ZERO, "/dev/zero", O_RDONLY | O_CLOEXEC, 0) < 0 ||
	    open_at(FD_URANDOM, "/dev/urandom", O_RDONLY, 0) < 0)
		return -1;
	if (stat("/dev/null", &null_st) < 0 || stat("/dev/zero", &zero_st) < 0 ||
	    stat("/dev/urandom", &urandom_st) < 0)
		return -1;
	return 0;
}

static void check_flags(int fd, int want_fl, int want_cloexec)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	int mask = O_ACCMODE | O_APPEND | O_NONBLOCK;

	if (fl < 0 || fdfl < 0) {
		wl_fail("fd %d is not open: %s", fd, strerror(errno));
		return;
	}
	if ((fl & mask) != want_fl)
		wl_fail("fd %d has flags %#o, expected %#o", fd, fl & mask, want_fl);
	if (!!(fdfl & FD_CLOEXEC) != want_cloexec)
		wl_fail("fd %d close-on-exec is %d, expected %d", fd, !!(fdfl & FD_CLOEXEC),
			want_cloexec);
}

static void check_dev(int fd, const struct stat *want, const char *name)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != want->st_rdev)
		wl_fail("fd %d is not %s", fd, name);
}

static void check_open_set(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int seen = 0;

	if (!d) {
		wl_fail("opendir /proc/self/fd: %s", strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		int fd, known = 0;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d))
			continue;
		for (size_t i = 0; i < sizeof(expected_fds) / sizeof(expected_fds[0]); i++)
			known |= expected_fds[i] == fd;
		if (!known)
			wl_fail("fd %d is open but the program never opened it", fd);
		seen++;
	}
	closedir(d);
	if (seen != (int)(sizeof(expected_fds) / sizeof(expected_fds[0])))
		wl_fail("%d fds open, expected %zu", seen,
			sizeof(expected_fds) / sizeof(expected_fds[0]));
}

static void verify_files(void)
{
	char buf[GONE_SIZE], want[GONE_SIZE];
	struct stat st;
	off_t off;

	check_flags(FD_REG, O_RDWR, 1);
	check_flags(FD_DUP, O_RDWR, 0);
	off = lseek(FD_REG, 0, SEEK_CUR);
	if (off != 1234)
		wl_fail("regular file fd %d at offset %lld, expected 1234", FD_REG, (long long)off);
	wl_fill(want, REG_SIZE, 1);
	if (read(FD_REG, buf, 100) != 100 || memcmp(buf, want + 1234, 100))
		wl_fail("regular file fd %d: 100 bytes at 1234 do not match", FD_REG);
	/* A dup shares the open file description: its offset moved with fd 3's read. */
	off = lseek(FD_DUP, 0, SEEK_CUR);
	if (off != 1334)
		wl_fail("dup'd fd %d at offset %lld, expected 1334 (not sharing with fd %d)",
			FD_DUP, (long long)off, FD_REG);
	if (fstat(FD_REG, &st) < 0 || st.st_size != REG_SIZE)
		wl_fail("regular file fd %d has the wrong size", FD_REG);

	check_flags(FD_APP, O_WRONLY | O_APPEND, 0);
	struct stat app_st;
	if (fstat(FD_APP, &app_st) < 0)
		wl_fail("fstat O_APPEND fd %d: %s", FD_APP, strerror(errno));
	off = lseek(FD_APP, 0, SEEK_CUR);
	if (off != 2)
		wl_fail("O_APPEND fd %d at offset %lld, expected 2", FD_APP, (long long)off);
	if (write(FD_APP, "world\n", 6) != 6)
		wl_fail("write to O_APPEND fd %d: %s", FD_APP, strerror(errno));
	int fd = open(app_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	if (n != 12 || memcmp(buf, "hello\nworld\n", 12))
		wl_fail("'%s' does not hold hello+world after an append", app_path);
	if (fd >= 0)
		close(fd);
	/* Put the file back as it was (an image taken with --leave-running refers to it). */
	if (ftruncate(FD_APP, 6) < 0 ||
	    futimens(FD_APP, (struct timespec[]){app_st.st_atim, app_st.st_mtim}) < 0)
		wl_fail("cannot put '%s' back: %s", app_path, strerror(errno));

	check_flags(FD_GONE, O_RDWR, 1);
	if (fstat(FD_GONE, &st) < 0 || st.st_nlink != 0 || st.st_size != GONE_SIZE)
		wl_fail("unlinked file fd %d: nlink %lu size %lld, expected 0 and %d", FD_GONE,
			(unsigned long)st.st_nlink, (long long)st.st_size, GONE_SIZE);
	off = lseek(FD_GONE, 0, SEEK_CUR);
	if (off != 777)
		wl_fail("unlinked file fd %d at offset %lld, expected 777", FD_GONE,
			(long long)off);
	wl_fill(want, GONE_SIZE, 2);
	if (pread(FD_GONE, buf, GONE_SIZE, 0) != GONE_SIZE || memcmp(buf, want, GONE_SIZE))
		wl_fail("unlinked file fd %d lost its contents", FD_GONE);

	check_flags(FD_DIR, O_RDONLY, 1);
	if (fstat(FD_DIR, &st) < 0 || st.st_ino != dir_st.st_ino || st.st_dev != dir_st.st_dev)
		wl_fail("directory fd %d is not '%s'", FD_DIR, dir);
	if (fstatat(FD_DIR, "reg", &st, 0) < 0 || st.st_size != REG_SIZE)
		wl_fail("fstatat(fd %d, \"reg\") does not find the file", FD_DIR);
}

static void verify_pipes(void)
{
	char buf[PIPE_BYTES + 1], want[PIPE_BYTES];
	struct stat r, w;
	ssize_t n;

	check_flags(FD_PIPE_R, O_RDONLY | O_NONBLOCK, 0);
	check_flags(FD_PIPE_W, O_WRONLY, 0);
	if (fstat(FD_PIPE_R, &r) < 0 || fstat(FD_PIPE_W, &w) < 0 || !S_ISFIFO(r.st_mode) ||
	    r.st_ino != w.st_ino)
		wl_fail("fds %d and %d are not the two ends of one pipe", FD_PIPE_R, FD_PIPE_W);
	wl_fill(want, PIPE_BYTES, 3);
	n = read(FD_PIPE_R, buf, sizeof(buf));
	if (n != PIPE_BYTES || memcmp(buf, want, PIPE_BYTES))
		wl_fail("pipe fd %d returned %zd bytes, expected the %d buffered ones", FD_PIPE_R,
			n, PIPE_BYTES);
	n = read(FD_PIPE_R, buf, 1);
	if (n != -1 || errno != EAGAIN)
		wl_fail("empty non-blocking pipe fd %d: read gave %zd (%s), expected EAGAIN",
			FD_PIPE_R, n, strerror(errno));
	if (write(FD_PIPE_W, "ping", 4) != 4 || read(FD_PIPE_R, buf, 4) != 4 ||
	    memcmp(buf, "ping", 4))
		wl_fail("pipe fds %d/%d do not connect after restore", FD_PIPE_W, FD_PIPE_R);

	check_flags(FD_FIFO_R, O_RDONLY | O_NONBLOCK, 0);
	check_flags(FD_FIFO_W, O_WRONLY, 0);
	if (fstat(FD_FIFO_R, &r) < 0 || r.st_ino != fifo_st.st_ino || r.st_dev != fifo_st.st_dev)
		wl_fail("fd %d is not the FIFO '%s'", FD_FIFO_R, fifo_path);
	wl_fill(want, FIFO_BYTES, 4);
	n = read(FD_FIFO_R, buf, sizeof(buf));
	if (n != FIFO_BYTES || memcmp(buf, want, FIFO_BYTES))
		wl_fail("FIFO fd %d returned %zd bytes, expected the %d buffered ones", FD_FIFO_R,
			n, FIFO_BYTES);
	if (write(FD_FIFO_W, "pong", 4) != 4 || read(FD_FIFO_R, buf, 4) != 4 ||
	    memcmp(buf, "pong", 4))
		wl_fail("FIFO fds %d/%d do not connect after restore", FD_FIFO_W, FD_FIFO_R);
}

static void verify_devices(void)
{
	char buf[64];

	check_flags(FD_NULL, O_RDWR, 0);
	check_flags(FD_ZERO, O_RDONLY, 1);
	check_flags(FD_URANDOM, O_RDONLY, 0);
	check_dev(FD_NULL, &null_st, "/dev/null");
	check_dev(FD_ZERO, &zero_st, "/dev/zero");
	check_dev(FD_URANDOM, &urandom_st, "/dev/urandom");
	if (write(FD_NULL, "x", 1) != 1 || read(FD_NULL, buf, 1) != 0)
		wl_fail("/dev/null fd %d does not behave as /dev/null", FD_NULL);
	memset(buf, 0xff, sizeof(buf));
	if (read(FD_ZERO, buf, sizeof(buf)) != sizeof(buf) || !wl_all_zero(buf, sizeof(buf)))
		wl_fail("/dev/zero fd %d does not read zeros", FD_ZERO);
	memset(buf, 0, sizeof(buf));
	if (read(FD_URANDOM, buf, sizeof(buf)) != sizeof(buf) || wl_all_zero(buf, sizeof(buf)))
		wl_fail("/dev/urandom fd %d does not read random bytes", FD_URANDOM);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		wl_fail("usage: wl_fds SCRATCH_DIR");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	wl_catch_sigterm(0);
	if (setup() < 0) {
		wl_fail("setup failed");
		return wl_finish();
	}
	wl_ready();
	wl_wait_sigterm();
	check_open_set();
	verify_files();
	verify_pipes();
	verify_devices();
	return wl_finish();
}
