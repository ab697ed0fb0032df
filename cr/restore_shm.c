// SPDX-License-Identifier: MIT
/*
 * restore_shm.c - memfd seals, put back last.
 *
 * A seal can only be added, never taken off, and several forbid what restore still has to
 * do: F_SEAL_WRITE and F_SEAL_FUTURE_WRITE forbid filling the memfd (and mapping it writable
 * to fill it), F_SEAL_SHRINK/GROW the ftruncate to its size, F_SEAL_SEAL any later seal. So a
 * memfd that nothing maps is sealed as soon as restore_fds.c has filled it, and one that is
 * mapped shared only once the new process's pages are in place (restore_shm_seal). The seals
 * are added from the restorer through /proc/PID/fd or /proc/PID/map_files: no syscall has to
 * be injected, and the memfd is the very object the process holds.
 *
 * Images without seal records (older dumps) keep the old behaviour: memfds made without
 * MFD_ALLOW_SEALING, i.e. with F_SEAL_SEAL.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/error.h"
#include "cr/restore_priv.h"

int restore_shm_add_seals(int fd, uint32_t seals, uint32_t mode, const char *what)
{
	/* Permission bits first: F_SEAL_EXEC forbids changing them afterwards. */
	if (fchmod(fd, (mode_t)mode) < 0) {
		cr_error("%s: cannot set mode %#o: %s", what, mode, strerror(errno));
		return -errno;
	}
	if (seals && fcntl(fd, F_ADD_SEALS, (int)seals) < 0) {
		cr_error("%s: cannot add seals %#x: %s", what, seals, strerror(errno));
		return -errno;
	}
	int got = fcntl(fd, F_GET_SEALS);
	if (got < 0 || (uint32_t)got != seals) {
		cr_error("%s: has seals %#x after sealing, the image says %#x", what, got, seals);
		return got < 0 ? -errno : -EIO;
	}
	return 0;
}

bool restore_shm_mapped(const struct cr_task *t, uint64_t dev, uint64_t ino)
{
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		if (v->kind == CR_VMA_SHMEM && v->path && !strncmp(v->path, "/memfd:", 7) &&
		    v->dev == dev && v->ino == ino)
			return true;
	}
	return false;
}

/* Whether an earlier fd record (idx < i) is the same memfd. */
static bool fd_seen(const struct cr_task *t, uint32_t i)
{
	for (uint32_t j = 0; j < i; j++)
		if (t->fds[j].kind == CR_FD_MEMFD && t->fds[j].memfd_dev == t->fds[i].memfd_dev &&
		    t->fds[j].memfd_ino == t->fds[i].memfd_ino)
			return true;
	return false;
}

/* Whether a memfd fd record or an earlier VMA (idx < i) is the same memfd as VMA i. */
static bool vma_seen(const struct cr_task *t, uint32_t i)
{
	const struct cr_vma *v = &t->vmas[i];

	for (uint32_t j = 0; j < t->nr_fds; j++)
		if (t->fds[j].kind == CR_FD_MEMFD && t->fds[j].memfd_dev == v->dev &&
		    t->fds[j].memfd_ino == v->ino)
			return true;
	for (uint32_t j = 0; j < i; j++)
		if (t->vmas[j].kind == CR_VMA_SHMEM && t->vmas[j].has_seals &&
		    t->vmas[j].dev == v->dev && t->vmas[j].ino == v->ino)
			return true;
	return false;
}

static int seal_through(pid_t pid, const char *sub, uint32_t seals, uint32_t mode, const char *what)
{
	char path[128];

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, sub);
	/* F_ADD_SEALS needs a writable file; this is a new open of the process's memfd. */
	_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		cr_error("%s: cannot open '%s' to seal it: %s", what, path, strerror(errno));
		return -errno;
	}
	return restore_shm_add_seals(fd, seals, mode, what);
}

int restore_shm_seal(pid_t pid, const struct cr_task *t)
{
	char sub[96], what[160];
	int ret;

	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *f = &t->fds[i];
		if (f->kind != CR_FD_MEMFD || !f->memfd_has_seals || fd_seen(t, i) ||
		    !restore_shm_mapped(t, f->memfd_dev, f->memfd_ino))
			continue;
		snprintf(sub, sizeof(sub), "fd/%d", f->fd);
		snprintf(what, sizeof(what), "restoring pid %d: fd %d (memfd '%s')", pid, f->fd,
			 f->path + 7);
		ret = seal_through(pid, sub, f->memfd_seals, f->mode & 07777, what);
		if (ret < 0)
			return ret;
	}
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		if (v->kind != CR_VMA_SHMEM || !v->has_seals || vma_seen(t, i))
			continue;
		snprintf(sub, sizeof(sub), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
		snprintf(what, sizeof(what), "restoring pid %d: memfd mapping %#" PRIx64 " ('%s')",
			 pid, v->start, v->path);
		ret = seal_through(pid, sub, v->seals, v->mode, what);
		if (ret < 0)
			return ret;
	}
	return 0;
}
