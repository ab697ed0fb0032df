// SPDX-License-Identifier: MIT
/*
 * wl_memfd_shared - one memfd mapped three times (its fd closed): A maps all 16 pages read-write,
 * B maps pages 4..11 read-write, C maps pages 8..15 read-only. Pages are written through
 * different mappings before the dump (some only through B). After restore every view must
 * show the same bytes, the three mappings must be one object (same inode in map_files), and
 * a write through one mapping must be seen through the others.
 * Usage: wl_memfd_shared SCRATCH_DIR
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wl_common.h"

#define PG	4096UL
#define NPAGES	16
#define B_FIRST 4
#define B_PAGES 8
#define C_FIRST 8
#define C_PAGES 8

static uint8_t *a, *b, *c;

static int setup(void)
{
	int fd = memfd_create("wl-shared", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, NPAGES * PG) < 0) {
		wl_fail("memfd: %s", strerror(errno));
		return -1;
	}
	a = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	b = mmap(NULL, B_PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, B_FIRST * PG);
	c = mmap(NULL, C_PAGES * PG, PROT_READ, MAP_SHARED, fd, C_FIRST * PG);
	close(fd); /* only the mappings hold the object now */
	if (a == MAP_FAILED || b == MAP_FAILED || c == MAP_FAILED) {
		wl_fail("mmap: %s", strerror(errno));
		return -1;
	}
	/* Pages 0-3 through A, 4-11 through B only, 12-14 through A; page 15 stays a hole. */
	wl_fill(a, 4 * PG, 1);
	wl_fill(b, B_PAGES * PG, 2);
	wl_fill(a + 12 * PG, 3 * PG, 3);
	return 0;
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

static void verify(void)
{
	long m;

	if ((m = wl_find_mismatch(a, 4 * PG, 1)) >= 0)
		wl_fail("A pages 0-3 differ at byte %ld", m);
	if ((m = wl_find_mismatch(a + B_FIRST * PG, B_PAGES * PG, 2)) >= 0)
		wl_fail("A pages 4-11 (written through B) differ at byte %ld", m);
	if ((m = wl_find_mismatch(b, B_PAGES * PG, 2)) >= 0)
		wl_fail("B differs at byte %ld", m);
	if (memcmp(c, a + C_FIRST * PG, C_PAGES * PG))
		wl_fail("C does not show the bytes of A pages 8-15");
	if ((m = wl_find_mismatch(a + 12 * PG, 3 * PG, 3)) >= 0)
		wl_fail("A pages 12-14 differ at byte %ld", m);
	if (!wl_all_zero(a + 15 * PG, PG))
		wl_fail("page 15 (a hole) is not zero");

	uint64_t ia = map_ino(a, NPAGES * PG), ib = map_ino(b, B_PAGES * PG),
		 ic = map_ino(c, C_PAGES * PG);
	if (!ia || ia != ib || ia != ic)
		wl_fail("the mappings are not one object (inodes %llu, %llu, %llu)",
			(unsigned long long)ia, (unsigned long long)ib, (unsigned long long)ic);

	/* Shared, not copies: a write through one view shows through the others. */
	for (unsigned int i = 0; i < B_PAGES; i++)
		b[i * PG + 7] ^= 0x5a;
	for (unsigned int i = 0; i < B_PAGES; i++)
		if (a[(B_FIRST + i) * PG + 7] != b[i * PG + 7])
			wl_fail("a write through B page %u is not seen through A", i);
	if (c[7] != b[(C_FIRST - B_FIRST) * PG + 7])
		wl_fail("a write through B is not seen through C");
	a[14 * PG + 100] ^= 0xff;
	if (c[6 * PG + 100] != a[14 * PG + 100])
		wl_fail("a write through A is not seen through C");
	/* Undo, so a second verify (the --leave-running original, then its image) agrees. */
	for (unsigned int i = 0; i < B_PAGES; i++)
		b[i * PG + 7] ^= 0x5a;
	a[14 * PG + 100] ^= 0xff;
}

int main(int argc, char **argv)
{
	(void)argv;
	return wl_main_checked(argc, "wl_memfd_shared", setup, verify);
}
