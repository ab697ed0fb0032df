// SPDX-License-Identifier: MIT
/*
 * wl_memfd_seals - memfd seals must come back exactly, or the dump must refuse.
 *
 *   seals  (supported)
 *          A  sealing allowed, no seals                       fd only
 *          B  made without MFD_ALLOW_SEALING (F_SEAL_SEAL)     fd only
 *          C  SHRINK|GROW|WRITE|SEAL, 3 pages of data          fd only
 *          D  FUTURE_WRITE|SHRINK|GROW, 4 pages                fd + writable shared mapping
 *                                                              made before the seal
 *          E  SHRINK|GROW, 2 pages                             mapping only (fd closed)
 *          F  MFD_NOEXEC_SEAL (F_SEAL_EXEC, mode 0666)         fd only (if the kernel has it)
 *          After restore: the same seals, mode and bytes; writes, resizes and writable
 *          mappings are refused where a seal says so, and D's old mapping still writes.
 *   write-mapped  (refused) F_SEAL_WRITE, then mapped shared read-only.
 *   hugetlb       (refused) an MFD_HUGETLB memfd (prints SKIP and exits 77 without one).
 * Usage: wl_memfd_seals SCRATCH_DIR MODE
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wl_common.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define PG 4096UL

struct obj {
	const char *name;
	unsigned int flags; /* memfd_create */
	int seals;	    /* added after the data */
	size_t pages;
	bool map;  /* a writable shared mapping, made before the seals */
	bool keep; /* the fd stays open */
	int fd;
	uint8_t *m;
	int want_seals; /* F_GET_SEALS at READY */
	mode_t want_mode;
	bool present;
};

static struct obj objs[] = {
	{"wl-seal-none", MFD_ALLOW_SEALING, 0, 1, false, true},
	{"wl-seal-default", 0, 0, 1, false, true},
	{"wl-seal-frozen", MFD_ALLOW_SEALING,
	 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, 3, false, true},
	{"wl-seal-future", MFD_ALLOW_SEALING, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW, 4,
	 true, true},
	{"wl-seal-maponly", MFD_ALLOW_SEALING, F_SEAL_SHRINK | F_SEAL_GROW, 2, true, false},
	{"wl-seal-noexec", MFD_NOEXEC_SEAL, 0, 1, false, true},
};
#define NOBJS (sizeof(objs) / sizeof(objs[0]))

static int setup_obj(struct obj *o, uint64_t seed)
{
	o->fd = memfd_create(o->name, o->flags);
	if (o->fd < 0 && (o->flags & MFD_NOEXEC_SEAL) && errno == EINVAL)
		return 0; /* a kernel before 6.3: nothing to check */
	if (o->fd < 0 || ftruncate(o->fd, (off_t)(o->pages * PG)) < 0)
		return -1;
	if (o->map) {
		o->m = mmap(NULL, o->pages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, 0);
		if (o->m == MAP_FAILED)
			return -1;
		wl_fill(o->m, o->pages * PG, seed);
	} else {
		uint8_t buf[4 * PG];
		wl_fill(buf, o->pages * PG, seed);
		if (pwrite(o->fd, buf, o->pages * PG, 0) != (ssize_t)(o->pages * PG))
			return -1;
	}
	if (o->seals && fcntl(o->fd, F_ADD_SEALS, o->seals) < 0)
		return -1;
	struct stat st;
	if (fstat(o->fd, &st) < 0)
		return -1;
	o->want_mode = st.st_mode & 07777;
	o->want_seals = fcntl(o->fd, F_GET_SEALS);
	if (!o->keep) {
		close(o->fd);
		o->fd = -1;
	}
	o->present = true;
	return 0;
}

/* A new fd on the object: its own fd, or through the mapping. */
static int obj_fd(const struct obj *o)
{
	char path[96];

	if (o->keep)
		snprintf(path, sizeof(path), "/proc/self/fd/%d", o->fd);
	else
		snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)o->m,
			 (unsigned long)(o->m + o->pages * PG));
	return open(path, O_RDWR | O_CLOEXEC);
}

static void verify_obj(const struct obj *o, uint64_t seed)
{
	uint8_t buf[4 * PG];
	char link[256], path[64];
	struct stat st;
	long k;

	if (!o->present)
		return;
	int fd = obj_fd(o);
	if (fd < 0) {
		wl_fail("%s: cannot reopen it: %s", o->name, strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t ll = readlink(path, link, sizeof(link) - 1);
	link[ll > 0 ? ll : 0] = 0;
	if (!strstr(link, o->name))
		wl_fail("%s: is '%s' now", o->name, link);
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals != o->want_seals)
		wl_fail("%s: seals %#x, want %#x", o->name, seals, o->want_seals);
	if (fstat(fd, &st) < 0 || (st.st_mode & 07777) != o->want_mode ||
	    st.st_size != (off_t)(o->pages * PG))
		wl_fail("%s: mode %#o size %lld, want %#o and %lu", o->name,
			(unsigned int)(st.st_mode & 07777), (long long)st.st_size,
			(unsigned int)o->want_mode, o->pages * PG);
	if (pread(fd, buf, o->pages * PG, 0) != (ssize_t)(o->pages * PG) ||
	    (k = wl_find_mismatch(buf, o->pages * PG, seed)) >= 0)
		wl_fail("%s: contents differ", o->name);
	/* What the seals forbid is forbidden; what they allow works. Nothing is changed. */
	bool no_write = seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE);
	ssize_t w = pwrite(fd, buf, 1, 0);
	if (no_write != (w < 0))
		wl_fail("%s: a write %s (%s)", o->name, w < 0 ? "failed" : "worked",
			w < 0 ? strerror(errno) : "seals forbid it");
	int tr = ftruncate(fd, (off_t)(o->pages * PG + PG));
	if (!(seals & F_SEAL_GROW) != (tr == 0))
		wl_fail("%s: growing it %s", o->name, tr == 0 ? "worked" : strerror(errno));
	if (tr == 0 && ftruncate(fd, (off_t)(o->pages * PG)) < 0)
		wl_fail("%s: shrinking it back: %s", o->name, strerror(errno));
	void *m = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (no_write != (m == MAP_FAILED))
		wl_fail("%s: a writable shared mapping %s", o->name,
			m == MAP_FAILED ? strerror(errno) : "was allowed");
	if (m != MAP_FAILED)
		munmap(m, PG);
	if ((seals & F_SEAL_EXEC) && fchmod(fd, 0777) == 0)
		wl_fail("%s: chmod worked despite F_SEAL_EXEC", o->name);
	if (o->m) {
		/* The mapping made before the seals still writes, and the fd sees it. */
		uint8_t v = (uint8_t)(o->m[PG + 9] ^ 0x77), got = 0;
		o->m[PG + 9] = v;
		if (pread(fd, &got, 1, PG + 9) != 1 || got != v)
			wl_fail("%s: a write through the mapping is not seen through the fd",
				o->name);
		o->m[PG + 9] = (uint8_t)(v ^ 0x77);
	}
	close(fd);
}

static int setup_write_mapped(void)
{
	struct obj *o = &objs[0];

	o->name = "wl-seal-write-ro";
	o->fd = memfd_create(o->name, MFD_ALLOW_SEALING);
	if (o->fd < 0 || ftruncate(o->fd, 2 * PG) < 0 ||
	    fcntl(o->fd, F_ADD_SEALS, F_SEAL_WRITE) < 0)
		return -1;
	/* Allowed after F_SEAL_WRITE: shared, read-only, never writable. */
	o->m = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, o->fd, 0);
	return o->m == MAP_FAILED ? -1 : 0;
}

static void verify_write_mapped(void)
{
	const struct obj *o = &objs[0];

	if (fcntl(o->fd, F_GET_SEALS) != F_SEAL_WRITE || !wl_all_zero(o->m, 2 * PG))
		wl_fail("%s: seals or contents changed", o->name);
	if (mprotect(o->m, 2 * PG, PROT_READ | PROT_WRITE) == 0)
		wl_fail("%s: its read-only mapping became writable", o->name);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		wl_fail("usage: wl_memfd_seals SCRATCH_DIR seals|write-mapped|hugetlb");
		return 2;
	}
	const char *mode = argv[2];
	if (wl_catch_sigterm(0) < 0)
		return 1;
	if (!strcmp(mode, "seals")) {
		for (size_t i = 0; i < NOBJS; i++)
			if (setup_obj(&objs[i], 40 + i) < 0) {
				wl_fail("%s: %s", objs[i].name, strerror(errno));
				return 1;
			}
		for (size_t i = 0; i < NOBJS; i++)
			verify_obj(&objs[i], 40 + i);
		wl_ready();
		wl_wait_sigterm();
		for (size_t i = 0; i < NOBJS; i++)
			verify_obj(&objs[i], 40 + i);
	} else if (!strcmp(mode, "write-mapped")) {
		if (setup_write_mapped() < 0) {
			wl_fail("write-mapped: %s", strerror(errno));
			return 1;
		}
		wl_ready();
		wl_wait_sigterm();
		verify_write_mapped();
	} else if (!strcmp(mode, "hugetlb")) {
		int fd = memfd_create("wl-seal-huge", MFD_HUGETLB);
		if (fd < 0) {
			wl_say("SKIP: memfd_create(MFD_HUGETLB): %s", strerror(errno));
			return 77;
		}
		wl_ready();
		wl_wait_sigterm();
		struct stat st;
		if (fstat(fd, &st) < 0)
			wl_fail("the hugetlb memfd is gone: %s", strerror(errno));
	} else {
		wl_fail("unknown mode '%s'", mode);
		return 2;
	}
	return wl_finish();
}
