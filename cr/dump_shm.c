// SPDX-License-Identifier: MIT
/*
 * dump_shm.c - shared memory objects seen through both fds and mappings: memfds (their seals;
 * hugetlb ones are refused), shared anonymous or SysV objects mapped more than once, SysV
 * segments that still exist, and objects another process maps or holds too.
 *
 * Runs after dump_fds_collect() and dump_mm_collect(), on the frozen target, and only
 * inspects: every object is opened read-only through /proc/PID/fd or /proc/PID/map_files.
 * A refusal names the pid, the fd or mapping, the object and why restore could not rebuild it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "common/util.h"
#include "cr/dump_priv.h"
#include "cr/error.h"

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

/* Opens what /proc/PID/<sub> names, read-only: a new open file description, so nothing the
 * target holds (offset, flags) is touched. Reports the failure naming what. */
static int open_object(struct dump_ctx *c, const char *sub, const char *what)
{
	char path[128];

	snprintf(path, sizeof(path), "/proc/%d/%s", c->pid, sub);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		cr_error("pid %d: cannot open %s ('%s'): %s", c->pid, what, path, strerror(errno));
		return -errno;
	}
	return fd;
}

static bool on_hugetlbfs(int fd)
{
	struct statfs sfs;
	return fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC;
}

/* The seals of the memfd open at fd; what names it in messages. */
static int get_seals(struct dump_ctx *c, int fd, const char *what, uint32_t *ret_seals)
{
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0) {
		cr_error("pid %d: %s: F_GET_SEALS: %s", c->pid, what, strerror(errno));
		return -errno;
	}
	if ((uint32_t)seals & ~CR_SEALS_KNOWN) {
		cr_error("pid %d: %s has seals %#x, of which this build knows only %#x "
			 "(not supported)",
			 c->pid, what, seals, CR_SEALS_KNOWN);
		return -EOPNOTSUPP;
	}
	*ret_seals = (uint32_t)seals;
	return 0;
}

static int collect_fd_seals(struct dump_ctx *c, struct cr_fd *f)
{
	char sub[32], what[96];

	snprintf(sub, sizeof(sub), "fd/%d", f->fd);
	snprintf(what, sizeof(what), "fd %d (memfd '%s')", f->fd, f->path ? f->path + 7 : "?");
	_cleanup_close_ int fd = open_object(c, sub, what);
	if (fd < 0)
		return fd;
	if (on_hugetlbfs(fd)) {
		cr_error("pid %d: %s is backed by huge pages (MFD_HUGETLB): not supported, restore "
			 "would make an ordinary memfd",
			 c->pid, what);
		return -EOPNOTSUPP;
	}
	int ret = get_seals(c, fd, what, &f->memfd_seals);
	if (ret < 0)
		return ret;
	f->memfd_has_seals = true;
	return 0;
}

/* Opens the object mapped at v through map_files; what (VMA_WHAT_LEN) names it for errors. */
#define VMA_WHAT_LEN 160
static int open_vma_object(struct dump_ctx *c, const struct cr_vma *v, char *what)
{
	char sub[96];

	snprintf(sub, sizeof(sub), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
	snprintf(what, VMA_WHAT_LEN, "mapping %#" PRIx64 "-%#" PRIx64 " of '%s'", v->start, v->end,
		 v->path);
	return open_object(c, sub, what);
}

static int collect_vma_seals(struct dump_ctx *c, struct cr_vma *v)
{
	char what[VMA_WHAT_LEN];

	_cleanup_close_ int fd = open_vma_object(c, v, what);
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		cr_error("pid %d: %s: %s", c->pid, what, strerror(errno));
		return -errno;
	}
	int ret = get_seals(c, fd, what, &v->seals);
	if (ret < 0)
		return ret;
	v->mode = st.st_mode & 07777;
	v->has_seals = true;
	return 0;
}

/*
 * Any mapping of a deleted object on hugetlbfs (a hugetlb memfd, MAP_HUGETLB memory, SysV
 * SHM_HUGETLB) would come back in normal pages, with other alignment and accounting.
 */
static int refuse_hugetlb_vma(struct dump_ctx *c, const struct cr_vma *v)
{
	char what[VMA_WHAT_LEN];

	if (!v->path || (v->kind != CR_VMA_SHMEM && v->kind != CR_VMA_ANON))
		return 0;
	_cleanup_close_ int fd = open_vma_object(c, v, what);
	if (fd < 0)
		return fd;
	if (on_hugetlbfs(fd)) {
		cr_error("pid %d: %s is huge-page (hugetlbfs) memory: not supported, restore would "
			 "map ordinary pages",
			 c->pid, what);
		return -EOPNOTSUPP;
	}
	return 0;
}

static bool is_memfd_vma(const struct cr_vma *v)
{
	return v->kind == CR_VMA_SHMEM && v->path && !strncmp(v->path, "/memfd:", 7) && v->ino;
}

/*
 * Restore maps every shared memfd mapping writable, fills it, gives it its protection back
 * and only then adds the seals (restore_shm_seal). A write seal rules out what that leaves:
 * F_SEAL_WRITE cannot be added while a writable shared mapping exists (the kernel counts
 * mappings that may become writable, and an mprotect'ed one still may), and a shared
 * mapping made after F_SEAL_FUTURE_WRITE can never become writable, which a rebuilt one
 * could. So a write-sealed memfd with a read-only shared mapping is refused here; one with a
 * writable shared mapping (allowed under F_SEAL_FUTURE_WRITE) is rebuilt exactly.
 */
static int check_seal_mappings(struct dump_ctx *c, uint64_t dev, uint64_t ino, uint32_t seals,
			       const char *name)
{
	const struct cr_task *t = c->t;

	if (!(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
		return 0;
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		if (!is_memfd_vma(v) || v->dev != dev || v->ino != ino || (v->prot & PROT_WRITE))
			continue;
		cr_error("pid %d: memfd '%s' is sealed against writes (seals %#x) and mapped "
			 "shared read-only at %#" PRIx64 "-%#" PRIx64
			 ": not supported (restore fills shared mappings through a writable "
			 "mapping, which such a seal forbids)",
			 c->pid, name, seals, v->start, v->end);
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * Two VMAs of one shared anonymous or SysV object that cover the same bytes of it (mremap
 * with old size 0, shmat twice, a fork's sharing...) would come back as two objects: a write
 * through one would no longer show in the other. Parts of one object mapped once each (a
 * region split by mprotect or a partial munmap) are rebuilt faithfully: each part holds its
 * own bytes and nothing else sees them.
 */
static int refuse_aliases(struct dump_ctx *c)
{
	const struct cr_task *t = c->t;

	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *a = &t->vmas[i];
		if (a->kind != CR_VMA_SHMEM || !a->ino || is_memfd_vma(a))
			continue;
		for (uint32_t j = i + 1; j < t->nr_vmas; j++) {
			const struct cr_vma *b = &t->vmas[j];
			if (b->kind != CR_VMA_SHMEM || b->dev != a->dev || b->ino != a->ino ||
			    is_memfd_vma(b))
				continue;
			uint64_t lo = MAX(a->pgoff, b->pgoff);
			uint64_t hi =
				MIN(a->pgoff + (a->end - a->start), b->pgoff + (b->end - b->start));
			if (lo >= hi)
				continue;
			cr_error("pid %d: mappings %#" PRIx64 "-%#" PRIx64 " and %#" PRIx64
				 "-%#" PRIx64 " both map bytes %#" PRIx64 "-%#" PRIx64
				 " of one shared object ('%s', inode %" PRIu64
				 "): not supported (restore would make them two objects)",
				 c->pid, a->start, a->end, b->start, b->end, lo, hi,
				 a->path ? a->path : "shared anonymous", a->ino);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/*
 * A SysV segment comes back as anonymous shared memory: faithful only if nothing can reach
 * the segment any more, i.e. it was removed (IPC_RMID: SHM_DEST) and lives on only through
 * the process's attachments. One that still exists could be attached again by its id or key,
 * and the restored process would no longer share it. The id is the inode number of the
 * mapped file (the kernel sets it so); it names a segment in the target's IPC namespace, so
 * it can only be checked from the same one.
 */
static int refuse_live_sysv(struct dump_ctx *c)
{
	const struct cr_task *t = c->t;
	char path[64];
	struct stat mine, theirs;
	bool same_ns = false;

	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", c->pid);
	if (stat("/proc/self/ns/ipc", &mine) == 0 && stat(path, &theirs) == 0)
		same_ns = mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		struct shmid_ds ds;

		if (v->kind != CR_VMA_SHMEM || !v->path || strncmp(v->path, "/SYSV", 5))
			continue;
		if (!same_ns) {
			cr_error("pid %d: mapping %#" PRIx64 "-%#" PRIx64
				 " is SysV segment id %" PRIu64
				 " of another IPC namespace than the dumper's, which cannot tell "
				 "whether it still exists: not supported",
				 c->pid, v->start, v->end, v->ino);
			return -EOPNOTSUPP;
		}
		if (v->ino > INT_MAX)
			continue; /* not a segment id: nothing can attach it */
		if (shmctl((int)v->ino, IPC_STAT, &ds) < 0) {
			if (errno == EINVAL || errno == EIDRM)
				continue; /* gone: only the attachments keep it */
			/* EACCES and the like: whether it still exists is unknown. */
			cr_error("pid %d: mapping %#" PRIx64 "-%#" PRIx64
				 " is SysV segment id %" PRIu64
				 ", which the dumper cannot inspect (%s) to tell whether it still "
				 "exists: not supported",
				 c->pid, v->start, v->end, v->ino, strerror(errno));
			return -EOPNOTSUPP;
		}
		if (ds.shm_perm.mode & SHM_DEST)
			continue;
		cr_error(
			"pid %d: mapping %#" PRIx64 "-%#" PRIx64 " is SysV segment id %" PRIu64
			" (key %#x), which still exists (not removed with IPC_RMID): not supported "
			"(restore would make it anonymous memory, no longer that segment)",
			c->pid, v->start, v->end, v->ino, (unsigned int)ds.shm_perm.__key);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The shared objects of the target that another process could also reach. */
struct shm_obj {
	uint64_t dev, ino;
	int32_t fd;	  /* the fd that holds it, or -1 */
	uint64_t start;	  /* else the mapping that maps it */
	const char *name; /* path of the fd or mapping */
};

static bool obj_match(const struct shm_obj *objs, uint32_t nr, uint64_t dev, uint64_t ino,
		      uint32_t *ret_idx)
{
	for (uint32_t k = 0; k < nr; k++)
		if (objs[k].dev == dev && objs[k].ino == ino) {
			*ret_idx = k;
			return true;
		}
	return false;
}

/* Whether process p maps one of objs (any mapping: a private one still reads the object's
 * pages it has not copied) or holds a memfd among them as an fd. */
static bool held_by(long p, const struct shm_obj *objs, uint32_t nr, uint32_t *ret_idx)
{
	char path[300], line[512];
	bool found = false;
	struct dirent *de;

	snprintf(path, sizeof(path), "/proc/%ld/maps", p);
	FILE *f = fopen(path, "re");
	if (f) {
		while (!found && fgets(line, sizeof(line), f)) {
			unsigned int maj, min;
			unsigned long long ino;
			if (sscanf(line, "%*x-%*x %*s %*x %x:%x %llu", &maj, &min, &ino) == 3 &&
			    ino)
				found = obj_match(objs, nr, makedev(maj, min), ino, ret_idx);
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%ld/fd", p);
	DIR *d = found ? NULL : opendir(path);
	while (d && !found && (de = readdir(d))) {
		char link[16];
		struct stat st;
		snprintf(path, sizeof(path), "/proc/%ld/fd/%s", p, de->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n < 7 || memcmp(link, "/memfd:", 7) || stat(path, &st) < 0)
			continue;
		found = obj_match(objs, nr, st.st_dev, st.st_ino, ret_idx);
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * Shared memory that another process maps or holds: restore makes a new object, which that
 * process would no longer share (a pre-forking server's worker and its master, a memfd
 * passed over a socket). The search covers the processes this dumper sees in /proc; a memfd
 * in flight in a unix socket is not seen.
 */
static int refuse_shared_elsewhere(struct dump_ctx *c)
{
	const struct cr_task *t = c->t;
	uint32_t nr = 0, k = 0;
	struct dirent *pe;
	int ret = 0;

	_cleanup_free_ struct shm_obj *objs =
		calloc((size_t)t->nr_vmas + t->nr_fds + 1, sizeof(*objs));
	if (!objs)
		return -ENOMEM;
	/* fds first: a memfd held both ways is named by its fd. */
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *f = &t->fds[i];
		if (f->kind == CR_FD_MEMFD && f->dup_of == -1)
			objs[nr++] =
				(struct shm_obj){f->memfd_dev, f->memfd_ino, f->fd, 0, f->path};
	}
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		if (v->kind == CR_VMA_SHMEM && v->ino)
			objs[nr++] = (struct shm_obj){v->dev, v->ino, -1, v->start, v->path};
	}
	if (!nr)
		return 0;
	DIR *proc = opendir("/proc");
	if (!proc)
		return -errno;
	while ((pe = readdir(proc))) {
		char *end;
		long p = strtol(pe->d_name, &end, 10);
		if (*end || p <= 0 || p == c->pid || p == getpid() || !held_by(p, objs, nr, &k))
			continue;
		const struct shm_obj *o = &objs[k];
		if (o->fd >= 0)
			cr_error(
				"pid %d fd %d: memfd '%s' is also held or mapped by pid %ld: not "
				"supported (restore would make a new memfd, no longer shared with it)",
				c->pid, o->fd, o->name + 7, p);
		else
			cr_error(
				"pid %d: mapping %#" PRIx64 " ('%s', inode %" PRIu64
				") is shared with pid %ld: not supported (restore would make a new "
				"object, no longer shared with it)",
				c->pid, o->start, o->name ? o->name : "shared anonymous", o->ino,
				p);
		ret = -EOPNOTSUPP;
		break;
	}
	closedir(proc);
	return ret;
}

int dump_shm_collect(struct dump_ctx *c)
{
	struct cr_task *t = c->t;
	int ret;

	for (uint32_t i = 0; i < t->nr_fds; i++) {
		struct cr_fd *f = &t->fds[i];
		if (f->kind != CR_FD_MEMFD)
			continue;
		ret = collect_fd_seals(c, f);
		if (ret == 0)
			ret = check_seal_mappings(c, f->memfd_dev, f->memfd_ino, f->memfd_seals,
						  f->path + 7);
		if (ret < 0)
			return ret;
	}
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		struct cr_vma *v = &t->vmas[i];
		ret = refuse_hugetlb_vma(c, v);
		if (ret == 0 && is_memfd_vma(v)) {
			ret = collect_vma_seals(c, v);
			if (ret == 0)
				ret = check_seal_mappings(c, v->dev, v->ino, v->seals, v->path + 7);
		}
		if (ret < 0)
			return ret;
	}
	ret = refuse_aliases(c);
	if (ret == 0)
		ret = refuse_live_sysv(c);
	if (ret == 0)
		ret = refuse_shared_elsewhere(c);
	return ret;
}
