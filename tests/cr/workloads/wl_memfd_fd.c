// SPDX-License-Identifier: MIT
/*
 * wl_memfd_fd - one memfd held at once as three fds and two mappings: fd A (read-write, the
 * memfd_create one, offset 5000), fd B (a dup of A), fd C (opened again through /proc, read-
 * only, offset 123), mapping M of all 8 pages read-write and mapping N of pages 2..5 read-only.
 * Bytes are written through A, through M and through N's range of M before the dump; page 7
 * stays a hole. After restore every fd and mapping must be the same object (one inode, still
 * a memfd by name), show the same bytes, keep its offset and access mode, and a write through
 * each side must be seen through the others.
 * Usage: wl_memfd_fd SCRATCH_DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wl_common.h"

#define PG	4096UL
#define NPAGES	8
#define N_FIRST 2
#define N_PAGES 4
#define POS_A	5000
#define POS_C	123

static int fd_a, fd_b, fd_c;
static uint8_t *m, *n;

static int setup(void)
{
	char path[64];
	uint8_t buf[2 * PG];

	fd_a = memfd_create("wl-memfd-fd", 0);
	if (fd_a < 0 || ftruncate(fd_a, NPAGES * PG) < 0) {
		wl_fail("memfd: %s", strerror(errno));
		return -1;
	}
	fd_b = dup(fd_a);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd_a);
	fd_c = open(path, O_RDONLY);
	m = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd_a, 0);
	n = mmap(NULL, N_PAGES * PG, PROT_READ, MAP_SHARED, fd_a, N_FIRST * PG);
	if (fd_b < 0 || fd_c < 0 || m == MAP_FAILED || n == MAP_FAILED) {
		wl_fail("fds or mmap: %s", strerror(errno));
		return -1;
	}
	/* Pages 0-1 through fd A, 2-5 through M (seen by N), page 6 through fd A again. */
	wl_fill(buf, sizeof(buf), 1);
	if (pwrite(fd_a, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
		wl_fail("pwrite: %s", strerror(errno));
		return -1;
	}
	wl_fill(m + N_FIRST * PG, N_PAGES * PG, 2);
	wl_fill(buf, PG, 3);
	if (pwrite(fd_a, buf, PG, 6 * PG) != (ssize_t)PG) {
		wl_fail("pwrite: %s", strerror(errno));
		return -1;
	}
	if (lseek(fd_a, POS_A, SEEK_SET) != POS_A || lseek(fd_c, POS_C, SEEK_SET) != POS_C) {
		wl_fail("lseek: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static uint64_t fd_ino(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		wl_fail("fstat fd %d: %s", fd, strerror(errno));
		return 0;
	}
	return st.st_ino;
}

static uint64_t map_ino(const void *p, size_t len)
{
	char path[96];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + (unsigned long)len);
	if (stat(path, &st) < 0) {
		wl_fail("stat '%s': %s", path, strerror(errno));
		return 0;
	}
	return st.st_ino;
}

static void check_fd(int fd, int accmode, off_t pos, const char *name)
{
	char path[64], link[256];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t ll = readlink(path, link, sizeof(link) - 1);
	if (ll < 0) {
		wl_fail("fd %s: %s", name, strerror(errno));
		return;
	}
	link[ll] = 0;
	if (strncmp(link, "/memfd:wl-memfd-fd", 18) != 0)
		wl_fail("fd %s is '%s', not the memfd 'wl-memfd-fd'", name, link);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != accmode)
		wl_fail("fd %s has flags %#x, want access mode %#x", name, fl, accmode);
	if (lseek(fd, 0, SEEK_CUR) != pos)
		wl_fail("fd %s is at offset %lld, want %lld", name,
			(long long)lseek(fd, 0, SEEK_CUR), (long long)pos);
}

static void verify(void)
{
	uint8_t buf[2 * PG];
	struct stat st;
	long k;

	check_fd(fd_a, O_RDWR, POS_A, "A");
	check_fd(fd_b, O_RDWR, POS_A, "B (dup of A)");
	check_fd(fd_c, O_RDONLY, POS_C, "C");
	if (fstat(fd_a, &st) < 0 || st.st_size != (off_t)(NPAGES * PG))
		wl_fail("the memfd is %lld bytes, want %lu", (long long)st.st_size, NPAGES * PG);

	/* The bytes, through each side. */
	if ((k = wl_find_mismatch(m, 2 * PG, 1)) >= 0)
		wl_fail("M pages 0-1 (written through fd A) differ at byte %ld", k);
	if ((k = wl_find_mismatch(n, N_PAGES * PG, 2)) >= 0)
		wl_fail("N (written through M) differs at byte %ld", k);
	if ((k = wl_find_mismatch(m + 6 * PG, PG, 3)) >= 0)
		wl_fail("M page 6 (written through fd A) differs at byte %ld", k);
	if (!wl_all_zero(m + 7 * PG, PG))
		wl_fail("page 7 (a hole) is not zero");
	if (pread(fd_c, buf, 2 * PG, N_FIRST * PG) != (ssize_t)(2 * PG) ||
	    (k = wl_find_mismatch(buf, 2 * PG, 2)) >= 0)
		wl_fail("fd C does not read the bytes written through M");

	/* One object: the same inode behind every fd and mapping. */
	uint64_t ia = fd_ino(fd_a), ib = fd_ino(fd_b), ic = fd_ino(fd_c);
	uint64_t im = map_ino(m, NPAGES * PG), in = map_ino(n, N_PAGES * PG);
	if (!ia || ia != ib || ia != ic || ia != im || ia != in)
		wl_fail("fds and mappings are not one memfd (inodes A %llu B %llu C %llu M %llu N "
			"%llu)",
			(unsigned long long)ia, (unsigned long long)ib, (unsigned long long)ic,
			(unsigned long long)im, (unsigned long long)in);

	/* Shared, not copies: a write through the fd shows in the mappings and vice versa. */
	uint8_t v = (uint8_t)(m[3 * PG + 11] ^ 0xa5);
	if (pwrite(fd_a, &v, 1, 3 * PG + 11) != 1)
		wl_fail("pwrite through fd A: %s", strerror(errno));
	if (m[3 * PG + 11] != v || n[(3 - N_FIRST) * PG + 11] != v)
		wl_fail("a write through fd A is not seen through the mappings");
	m[1 * PG + 77] ^= 0x3c;
	uint8_t got = 0;
	if (pread(fd_c, &got, 1, 1 * PG + 77) != 1 || got != m[1 * PG + 77])
		wl_fail("a write through M is not seen through fd C");
	/* Undo, so a second verify (the --leave-running original, then its image) agrees. */
	v ^= 0xa5;
	if (pwrite(fd_b, &v, 1, 3 * PG + 11) != 1)
		wl_fail("pwrite through fd B: %s", strerror(errno));
	m[1 * PG + 77] ^= 0x3c;
	if ((k = wl_find_mismatch(n, N_PAGES * PG, 2)) >= 0 ||
	    (k = wl_find_mismatch(m, 2 * PG, 1)) >= 0)
		wl_fail("undoing the test writes left a difference at byte %ld", k);
}

int main(int argc, char **argv)
{
	(void)argv;
	return wl_main_checked(argc, "wl_memfd_fd", setup, verify);
}
