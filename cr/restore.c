// SPDX-License-Identifier: MIT
/*
 * restore.c - rebuilds a process from an image: validates everything, spawns a child with the
 * old pid (restore_child.c), then turns the child into the dumped process by running system
 * calls in it through a one-page trampoline: memory layout, vDSO, mm fields, rseq, futex and
 * tid addresses, signal state, timers, credentials; last the registers and xstate.
 *
 * Ordering: all signals stay blocked in the child while it is being rebuilt (pending signals
 * are queued meanwhile); the dumped mask goes in together with the registers. Privileges
 * (capabilities, securebits, ids, dumpable..., restore_creds.c) come last because
 * PR_SET_MM_MAP and chroot need the restorer's capabilities.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/prctl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "cr/cr.h"
#include "cr/creds_priv.h"
#include "cr/error.h"
#include "cr/fuse_priv.h"
#include "cr/ptrace_priv.h"
#include "cr/restore_lazy.h"
#include "cr/restore_priv.h"

#define SCRATCH_OFF 4096 /* trampoline page 0: code; the rest: arguments */

struct restore_ctx {
	const char *dir;
	struct cr_task *t;
	pid_t pid;
	int memfd;
	uint64_t tramp;
	uint64_t tramp_len;
	struct user_regs_struct base;
	const uint8_t *lazy_runs; /* lazy restore: 1 per run the page server fills, else NULL */
};

/* ---- checks before anything is created ---- */

static int check_files(const struct cr_task *t)
{
	struct stat cst;

	if (t->cwd && (stat(t->cwd, &cst) < 0 || !S_ISDIR(cst.st_mode))) {
		cr_error("the working directory '%s' is gone", t->cwd);
		return -ENOENT;
	}
	if (t->exe && stat(t->exe, &cst) < 0) {
		cr_error("the executable '%s' is gone: %s", t->exe, strerror(errno));
		return -ENOENT;
	}
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		struct stat st;
		if (v->kind != CR_VMA_FILE)
			continue;
		if (i > 0 && t->vmas[i - 1].kind == CR_VMA_FILE && t->vmas[i - 1].ino == v->ino &&
		    t->vmas[i - 1].path && !strcmp(t->vmas[i - 1].path, v->path))
			continue;
		if (stat(v->path, &st) < 0) {
			cr_error("mapped file '%s' is missing: %s", v->path, strerror(errno));
			return -ENOENT;
		}
		uint64_t mt =
			(uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
		if (st.st_ino != v->ino || st.st_dev != v->dev || (uint64_t)st.st_size != v->size ||
		    mt != v->mtime_ns) {
			cr_error("mapped file '%s' changed since the dump (inode, size or mtime "
				 "differ)",
				 v->path);
			return -ESTALE;
		}
	}
	return 0;
}

/* The image's [vvar][vvar_vclock][vdso] must be this kernel's, laid out as ARCH_MAP_VDSO_64
 * recreates them. */
static int check_vdso(const struct cr_task *t, uint64_t *ret_base)
{
	uint64_t my_start[7] = {0}, my_len[7] = {0}, my_hash = 0;
	char line[512];

	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		int k = 0;
		if (sscanf(line, "%llx-%llx", &s, &e) != 2)
			continue;
		if (strstr(line, "[vvar]"))
			k = CR_VMA_VVAR;
		else if (strstr(line, "[vvar_vclock]"))
			k = CR_VMA_VVAR_VCLOCK;
		else if (strstr(line, "[vdso]"))
			k = CR_VMA_VDSO;
		if (k) {
			my_start[k] = s;
			my_len[k] = e - s;
			if (k == CR_VMA_VDSO)
				my_hash = cr_hash_bytes((void *)(uintptr_t)s, e - s);
		}
	}
	fclose(f);

	uint64_t base = 0, my_base = 0;
	for (int k = CR_VMA_VVAR; k <= CR_VMA_VDSO; k++)
		if (my_len[k] && (!my_base || my_start[k] < my_base))
			my_base = my_start[k];
	for (uint32_t i = 0; i < t->nr_vmas; i++)
		if (t->vmas[i].kind >= CR_VMA_VVAR && !base)
			base = t->vmas[i].start;
	if (!base) {
		*ret_base = 0;
		return 0;
	}
	int seen = 0;
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		if (v->kind < CR_VMA_VVAR)
			continue;
		seen |= 1 << v->kind;
		if (v->end - v->start != my_len[v->kind] ||
		    v->start - base != my_start[v->kind] - my_base ||
		    (v->kind == CR_VMA_VDSO && v->content_hash != my_hash)) {
			cr_error(
				"the image's %s differs from this kernel's (restoring onto another "
				"kernel's vDSO is not supported)",
				cr_vma_kind_name(v->kind));
			return -EOPNOTSUPP;
		}
	}
	for (int k = CR_VMA_VVAR; k <= CR_VMA_VDSO; k++)
		if (my_len[k] && !(seen & (1 << k))) {
			cr_error("the image lacks this kernel's [%s] mapping",
				 cr_vma_kind_name((uint32_t)k));
			return -EOPNOTSUPP;
		}
	*ret_base = base;
	return 0;
}

static bool overlaps_any(uint64_t a, uint64_t len, const struct cr_task *t)
{
	char line[512];
	bool hit = false;

	for (uint32_t i = 0; i < t->nr_vmas; i++)
		if (a < t->vmas[i].end && t->vmas[i].start < a + len)
			return true;
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return true;
	while (!hit && fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		if (sscanf(line, "%llx-%llx", &s, &e) == 2 && a < e && s < a + len)
			hit = true;
	}
	fclose(f);
	return hit;
}

static int pick_trampoline(const struct cr_task *t, uint64_t len, uint64_t *ret)
{
	for (uint64_t a = 1ULL << 32; a + len < CR_TASK_SIZE; a += 1ULL << 30)
		if (!overlaps_any(a, len, t)) {
			*ret = a;
			return 0;
		}
	cr_error("no free address range for the restore trampoline");
	return -ENOMEM;
}

/* ---- injected steps ---- */

static int inj(struct restore_ctx *c, const char *what, int64_t *ret_val, long nr, uint64_t a1,
	       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
	int64_t rv;
	int ret = inject_call(c->pid, c->tramp, &c->base, &rv, nr, a1, a2, a3, a4, a5, a6);
	if (ret < 0)
		return ret;
	if (rv < 0 && rv > -4096) {
		cr_error("restoring pid %d: %s failed: %s", c->pid, what, strerror((int)-rv));
		return (int)rv;
	}
	if (ret_val)
		*ret_val = rv;
	return 0;
}

static int put_scratch(struct restore_ctx *c, uint64_t off, const void *p, size_t len,
		       uint64_t *ret_addr)
{
	if (off + len > c->tramp_len - SCRATCH_OFF)
		return -E2BIG;
	int ret = mem_write(c->memfd, c->tramp + SCRATCH_OFF + off, p, len);
	if (ret < 0)
		return ret;
	*ret_addr = c->tramp + SCRATCH_OFF + off;
	return 0;
}

static int put_string(struct restore_ctx *c, const char *s, uint64_t *ret_addr)
{
	return put_scratch(c, 0, s, strlen(s) + 1, ret_addr);
}

static int open_in_child(struct restore_ctx *c, const char *path, int flags, int *ret_fd)
{
	uint64_t a;
	int64_t fd;
	int ret = put_string(c, path, &a);
	if (ret < 0)
		return ret;
	ret = inj(c, path, &fd, SYS_openat, (uint64_t)AT_FDCWD, a, (uint64_t)(flags | O_CLOEXEC), 0,
		  0, 0);
	if (ret < 0)
		return ret;
	*ret_fd = (int)fd;
	return 0;
}

/* A memfd for a shared memfd mapping: same name (as shown in maps) and size. */
static int memfd_in_child(struct restore_ctx *c, const struct cr_vma *v, int *ret_fd)
{
	char name[256];
	uint64_t a;
	int64_t fd;

	snprintf(name, sizeof(name), "%s", v->path + 7);
	size_t nl = strlen(name);
	if (nl > 10 && !strcmp(name + nl - 10, " (deleted)"))
		name[nl - 10] = 0;
	int ret = put_string(c, name, &a);
	if (ret < 0)
		return ret;
	/* Seals are added once the pages are in (restore_shm.c); without a seal record the
	 * memfd gets F_SEAL_SEAL, as before seals were saved. */
	ret = inj(c, "memfd_create", &fd, SYS_memfd_create, a,
		  MFD_CLOEXEC | (v->has_seals ? MFD_ALLOW_SEALING : 0), 0, 0, 0, 0);
	if (ret < 0)
		return ret;
	ret = inj(c, "ftruncate of a memfd", NULL, SYS_ftruncate, (uint64_t)fd, v->size, 0, 0, 0,
		  0);
	if (ret < 0)
		return ret;
	*ret_fd = (int)fd;
	return 0;
}

static bool is_memfd_vma(const struct cr_vma *v)
{
	return v->kind == CR_VMA_SHMEM && v->path && !strncmp(v->path, "/memfd:", 7) && v->ino;
}

/* The earliest VMA mapping the same memfd as VMA i (device and inode), or i itself. Those
 * VMAs get one memfd again, and the dump saved each page of it once (dump_mm.c). */
static uint32_t memfd_first_vma(const struct cr_task *t, uint32_t i)
{
	const struct cr_vma *v = &t->vmas[i];

	for (uint32_t k = 0; k < i && is_memfd_vma(v); k++)
		if (is_memfd_vma(&t->vmas[k]) && t->vmas[k].dev == v->dev &&
		    t->vmas[k].ino == v->ino)
			return k;
	return i;
}

/* The fd record of the memfd that VMA v maps (same device and inode), or NULL: the fds and
 * the mappings of one memfd share the memfd restore_fds.c made for the fd. */
static const struct cr_fd *memfd_fd_of(const struct cr_task *t, const struct cr_vma *v)
{
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *f = &t->fds[i];
		if (f->kind == CR_FD_MEMFD && f->dup_of == -1 && f->memfd_dev == v->dev &&
		    f->memfd_ino == v->ino)
			return f;
	}
	return NULL;
}

/* A new read-write fd in the child on the memfd its fd f already holds (at its number since
 * the child started), for mapping it shared and writable whatever f's own access mode. */
static int memfd_reopen_in_child(struct restore_ctx *c, const struct cr_vma *v,
				 const struct cr_fd *f, int *ret_fd)
{
	char path[64];

	if (f->data_len != v->size) {
		cr_error("restoring pid %d: fd %d and the mapping at %#" PRIx64
			 " are one memfd but disagree on its size (%" PRIu64 ", %" PRIu64 ")",
			 c->pid, f->fd, v->start, f->data_len, v->size);
		return -EBADMSG;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", f->fd);
	return open_in_child(c, path, O_RDWR, ret_fd);
}

static int close_memfds(struct restore_ctx *c, const int *memfds)
{
	int ret = 0;

	for (uint32_t i = 0; i < c->t->nr_vmas; i++) {
		if (memfds[i] < 0 || memfd_first_vma(c->t, i) != i)
			continue;
		int r2 = inj(c, "close of a memfd", NULL, SYS_close, (uint64_t)memfds[i], 0, 0, 0,
			     0, 0);
		if (ret == 0)
			ret = r2;
	}
	return ret;
}

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

/*
 * The madvise state of a new mapping, applied right after it is made: huge page advice
 * before any page is filled (it decides what the fill allocates), DONTFORK and WIPEONFORK
 * before anything could fork, MLOCK_ONFAULT before the fill so that the filled pages are
 * locked as they come in. A plain mlock populates the whole range, so it waits for the fill
 * (restore_mlock). The kernel refusing one (no KSM, over RLIMIT_MEMLOCK) fails the restore
 * before the process runs, naming the mapping and the flag.
 */
static int restore_madv(struct restore_ctx *c, const struct cr_vma *v)
{
	static const struct {
		uint32_t bit;
		int advice;
		const char *name;
	} advs[] = {
		{CR_VMA_MADV_DONTFORK, MADV_DONTFORK, "MADV_DONTFORK"},
		{CR_VMA_MADV_WIPEONFORK, MADV_WIPEONFORK, "MADV_WIPEONFORK"},
		{CR_VMA_MADV_DONTDUMP, MADV_DONTDUMP, "MADV_DONTDUMP"},
		{CR_VMA_MADV_HUGEPAGE, MADV_HUGEPAGE, "MADV_HUGEPAGE"},
		{CR_VMA_MADV_NOHUGEPAGE, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"},
		{CR_VMA_MADV_MERGEABLE, MADV_MERGEABLE, "MADV_MERGEABLE"},
	};
	char what[128];
	int ret;

	for (size_t i = 0; i < sizeof(advs) / sizeof(advs[0]); i++) {
		if (!(v->madv & advs[i].bit))
			continue;
		snprintf(what, sizeof(what), "%s on mapping %#" PRIx64 "-%#" PRIx64, advs[i].name,
			 v->start, v->end);
		ret = inj(c, what, NULL, SYS_madvise, v->start, v->end - v->start,
			  (uint64_t)advs[i].advice, 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	if (v->madv & CR_VMA_MADV_LOCKONFAULT) {
		snprintf(what, sizeof(what),
			 "mlock2(MLOCK_ONFAULT) of mapping %#" PRIx64 "-%#" PRIx64, v->start,
			 v->end);
		ret = inj(c, what, NULL, SYS_mlock2, v->start, v->end - v->start, MLOCK_ONFAULT, 0,
			  0, 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* mlock of the mappings that were locked (not on fault), once their pages are in: it faults
 * in every page, as the original's mlock did. restore_lazy_vma keeps them eager, so this
 * never waits for the page server. */
static int restore_mlock(struct restore_ctx *c)
{
	char what[128];

	for (uint32_t i = 0; i < c->t->nr_vmas; i++) {
		const struct cr_vma *v = &c->t->vmas[i];
		if (!(v->madv & CR_VMA_MADV_LOCKED) || (v->madv & CR_VMA_MADV_LOCKONFAULT))
			continue;
		snprintf(what, sizeof(what), "mlock of mapping %#" PRIx64 "-%#" PRIx64, v->start,
			 v->end);
		int ret = inj(c, what, NULL, SYS_mlock2, v->start, v->end - v->start, 0, 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int restore_layout(struct restore_ctx *c, uint64_t vdso_base)
{
	struct cr_task *t = c->t;
	struct cr_rseq_config rs = {0};
	int ret;

	/* glibc of the restorer copy registered its own rseq; it must go before its memory. */
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, c->pid, sizeof(rs), &rs) < 0)
		return -errno;
	if (rs.rseq_abi_pointer) {
		ret = inj(c, "rseq unregister", NULL, SYS_rseq, rs.rseq_abi_pointer,
			  rs.rseq_abi_size, 1 /* RSEQ_FLAG_UNREGISTER */, rs.signature, 0, 0);
		if (ret < 0)
			return ret;
	}
	ret = inj(c, "unmapping the restorer's memory", NULL, SYS_munmap, 0, c->tramp, 0, 0, 0, 0);
	if (ret < 0)
		return ret;
	ret = inj(c, "unmapping the restorer's memory", NULL, SYS_munmap, c->tramp + c->tramp_len,
		  CR_TASK_SIZE - (c->tramp + c->tramp_len), 0, 0, 0, 0);
	if (ret < 0)
		return ret;
	if (vdso_base) {
		ret = inj(c, "mapping the vDSO", NULL, SYS_arch_prctl, ARCH_MAP_VDSO_64, vdso_base,
			  0, 0, 0, 0);
		if (ret < 0)
			return ret;
	}

	/* Child fd of each memfd VMA's object, open until every VMA is mapped. */
	_cleanup_free_ int *memfds = malloc((t->nr_vmas ? t->nr_vmas : 1) * sizeof(int));
	if (!memfds)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->nr_vmas; i++)
		memfds[i] = -1;
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		uint64_t len = v->end - v->start;
		uint32_t prot = v->prot;
		uint64_t flags = MAP_FIXED | ((v->flags & CR_VMA_F_GROWSDOWN) ? MAP_GROWSDOWN : 0);
		int fd = -1;
		bool keep_fd = false;
		char what[128];

		snprintf(what, sizeof(what), "mapping %#" PRIx64 "-%#" PRIx64, v->start, v->end);
		switch (v->kind) {
		case CR_VMA_ANON:
			flags |= MAP_PRIVATE | MAP_ANONYMOUS;
			break;
		case CR_VMA_SHMEM:
			/* Filled through /proc/PID/mem, which cannot force a read-only shared page.
			 */
			prot |= PROT_WRITE;
			flags |= MAP_SHARED;
			if (is_memfd_vma(v) && memfd_first_vma(t, i) != i) {
				const struct cr_vma *first = &t->vmas[memfd_first_vma(t, i)];
				if (first->size != v->size) {
					cr_error("restoring pid %d: two mappings of one memfd "
						 "(%#" PRIx64 ", %#" PRIx64
						 ") disagree on its size",
						 c->pid, first->start, v->start);
					return -EBADMSG;
				}
				fd = memfds[memfd_first_vma(t, i)];
				keep_fd = true;
			} else if (is_memfd_vma(v) && memfd_fd_of(t, v)) {
				ret = memfd_reopen_in_child(c, v, memfd_fd_of(t, v), &fd);
				if (ret < 0)
					return ret;
				memfds[i] = fd;
				keep_fd = true;
			} else if (v->path && !strncmp(v->path, "/memfd:", 7)) {
				ret = memfd_in_child(c, v, &fd);
				if (ret < 0)
					return ret;
				if (is_memfd_vma(v)) {
					memfds[i] = fd;
					keep_fd = true;
				}
			} else {
				flags |= MAP_ANONYMOUS;
			}
			break;
		case CR_VMA_FILE: {
			bool shared = v->flags & CR_VMA_F_SHARED;
			ret = open_in_child(c, v->path,
					    shared && (v->prot & PROT_WRITE) ? O_RDWR : O_RDONLY,
					    &fd);
			if (ret < 0)
				return ret;
			flags |= shared ? MAP_SHARED : MAP_PRIVATE;
			break;
		}
		default:
			continue;
		}
		ret = inj(c, what, NULL, SYS_mmap, v->start, len, prot, flags,
			  (uint64_t)(int64_t)fd, fd >= 0 ? v->pgoff : 0);
		if (fd >= 0 && !keep_fd) {
			int r2 = inj(c, "close", NULL, SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0);
			if (ret == 0)
				ret = r2;
		}
		if (ret == 0 && v->madv)
			ret = restore_madv(c, v);
		if (ret < 0)
			return ret;
	}
	return close_memfds(c, memfds);
}

/*
 * Memory pages. pages.img holds the saved pages run after run (t->runs, sorted by address, each
 * inside one vma: the image loader checked that). Two ways to get them into the child:
 *
 * - On a FUSE mount the child reads pages.img itself, with preadv() calls injected in RP_DIRECT
 *   pieces, opened with O_DIRECT. The daemon's replies are then copied once, straight into the
 *   child's pages: no page-cache pages to allocate, fill and reclaim, no second copy through
 *   the restorer. With async direct I/O (the kernel's default for FUSE) one such read goes out
 *   as many max_pages requests at once, so every daemon thread decodes, and all the CPU goes
 *   to the daemon: a copy in the restorer would only compete with it for the same cores.
 * - From a local file system the page cache is the source and copying is the whole work:
 *   reader threads pread RP_CHUNK pieces into a ring of RP_SLOTS chunks while this thread
 *   writes them into the child (process_vm_writev), so the copies run on two cores. Image
 *   offset o sits at ring offset o % ring size.
 */
#define RP_CHUNK     (8u << 20)
#define RP_SLOTS     4
#define RP_IOV_BATCH 512
/* Readers in parallel: two copies out of the page cache keep up with the filler. */
#define RP_READERS 2
/* One injected preadv: large, since the daemon idles while the child returns to us. */
#define RP_DIRECT	 (128u << 20)
#define RP_DIRECT_IOV	 1024 /* IOV_MAX */
#define RP_DIRECT_IOV_AT 4096 /* scratch offset of the iovec array; the file name sits at 0 */
/* FUSE_SUPER_MAGIC of linux/magic.h. */
#define RP_FUSE_MAGIC 0x65735546

struct page_reader {
	int fd;
	uint8_t *buf;
	uint64_t total;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock: */
	uint64_t claimed;	       /* bytes handed to readers */
	uint64_t inflight[RP_READERS]; /* offset each reader is at, UINT64_MAX when idle */
	uint64_t read;		       /* every byte below this is in the ring */
	uint64_t used;		       /* bytes the filler is done with */
	int err;
	uint64_t err_at; /* image offset where the first failed read stopped */
	bool stop;
};

struct rp_reader_arg {
	struct page_reader *r;
	unsigned int idx;
};

/* pread_full that also says how far it got, so an error names the offset that failed. */
static int rp_pread(int fd, uint8_t *buf, size_t len, uint64_t off, uint64_t *ret_done)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*ret_done = done;
			return n < 0 ? -errno : -EBADMSG;
		}
		done += (uint64_t)n;
	}
	*ret_done = done;
	return 0;
}

static void *rp_reader(void *arg)
{
	struct page_reader *r = ((struct rp_reader_arg *)arg)->r;
	unsigned int me = ((struct rp_reader_arg *)arg)->idx;
	const uint64_t ring = (uint64_t)RP_CHUNK * RP_SLOTS;

	pthread_mutex_lock(&r->lock);
	while (r->claimed < r->total && !r->stop && !r->err) {
		if (r->claimed + RP_CHUNK - r->used > ring) {
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		uint64_t at = r->claimed, done = 0;
		size_t n = (size_t)MIN((uint64_t)RP_CHUNK, r->total - at);
		r->claimed += n;
		r->inflight[me] = at;
		pthread_mutex_unlock(&r->lock);
		int ret = rp_pread(r->fd, r->buf + at % ring, n, at, &done);
		pthread_mutex_lock(&r->lock);
		r->inflight[me] = UINT64_MAX;
		if (ret < 0) {
			if (!r->err) {
				r->err = ret;
				r->err_at = at + done;
			}
			break;
		}
		uint64_t prefix = r->claimed;
		for (unsigned int i = 0; i < RP_READERS; i++)
			prefix = MIN(prefix, r->inflight[i]);
		r->read = prefix;
		pthread_cond_broadcast(&r->cond);
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Writes the ranges riov[0..nr), whose bytes are back to back at src, into the child. */
static int rp_fill(struct restore_ctx *c, const uint8_t *src, const struct iovec *riov, int nr,
		   size_t len)
{
	struct iovec local = {(void *)src, len};

	if (process_vm_writev(c->pid, &local, 1, riov, (unsigned long)nr, 0) == (ssize_t)len)
		return 0;
	/* Read-only mappings refuse process_vm_writev; /proc/PID/mem writes through them. */
	for (int i = 0; i < nr; i++) {
		uint64_t va = (uint64_t)(uintptr_t)riov[i].iov_base;
		int ret = mem_write(c->memfd, va, src, riov[i].iov_len);
		if (ret < 0) {
			cr_error("restoring pid %d: writing memory at %#" PRIx64 ": %s", c->pid, va,
				 strerror(-ret));
			return ret;
		}
		src += riov[i].iov_len;
	}
	return 0;
}

/* Waits until the ring holds image bytes up to end; returns the readers' error if any, with
 * the offset where it happened in ret_at. */
static int rp_wait(struct page_reader *r, uint64_t end, uint64_t *ret_at)
{
	pthread_mutex_lock(&r->lock);
	while (r->read < end && !r->err)
		pthread_cond_wait(&r->cond, &r->lock);
	int ret = r->read >= end ? 0 : r->err;
	*ret_at = r->err_at;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static void rp_release(struct page_reader *r, uint64_t used)
{
	pthread_mutex_lock(&r->lock);
	r->used = used;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/*
 * The saved runs in file order as batches of iovecs into the child: a batch covers the image
 * bytes [at, at + len), lies inside one span-aligned piece of the image (the unit each way of
 * filling reads at once) and has at most max entries. The ring and the direct fill both
 * consume it.
 */
struct run_batches {
	const struct cr_task *t;
	uint64_t span;
	int max;
	uint64_t run, in_run; /* next byte to hand out: offset in_run of run */
	uint64_t pos;	      /* its image offset */
	/* Optional: holes not to read into runs marked in skip (memory that reads as zeros
	 * when left unfilled). */
	const struct cr_hole *holes;
	size_t nr_holes, hole;
	const uint8_t *skip;
};

static void run_batch_advance(struct run_batches *b, uint64_t len)
{
	b->pos += len;
	b->in_run += len;
	if (b->in_run == b->t->runs[b->run].nr_pages * CR_PAGE_SIZE) {
		b->run++;
		b->in_run = 0;
	}
}

/* Fills iov with the next batch; returns its entry count, 0 when the runs are done. */
static int run_batch_next(struct run_batches *b, struct iovec *iov, uint64_t *ret_at,
			  uint64_t *ret_len)
{
	const struct cr_task *t = b->t;
	uint64_t at = b->pos;
	int n = 0;

	while (b->run < t->nr_runs && n < b->max) {
		const struct cr_page_run *run = &t->runs[b->run];
		uint64_t left = run->nr_pages * CR_PAGE_SIZE - b->in_run;
		uint64_t seg = MIN(left, b->span - b->pos % b->span);

		if (b->skip && b->skip[b->run]) {
			while (b->hole < b->nr_holes && b->holes[b->hole].end <= b->pos)
				b->hole++;
			if (b->hole < b->nr_holes && b->holes[b->hole].start <= b->pos) {
				/* Not read. A batch is one stretch of the file: end it first. */
				if (n)
					break;
				run_batch_advance(b, MIN(left, b->holes[b->hole].end - b->pos));
				at = b->pos;
				continue;
			}
			if (b->hole < b->nr_holes)
				seg = MIN(seg, b->holes[b->hole].start - b->pos);
		}
		iov[n++] = (struct iovec){(void *)(uintptr_t)(run->vaddr + b->in_run), (size_t)seg};
		run_batch_advance(b, seg);
		if (b->pos % b->span == 0)
			break;
	}
	*ret_at = at;
	*ret_len = b->pos - at;
	return n;
}

/*
 * Holes of pages.img of about RP_HOLE_MIN or more: a ckptfs mount keeps all-zero pages as
 * holes (SEEK_DATA reports them), and private anonymous memory reads as zeros when left
 * unfilled, so the restored process need neither fault those pages in nor hold them (a heap
 * pre-touched or cleared with zeros). Found by one SEEK_DATA at each RP_HOLE_MIN boundary
 * (on a mount each is a round trip to the daemon: 256 per GiB of image) plus a few per hole
 * found to see where it begins: holes reaching RP_HOLE_MIN past a boundary count, so any of
 * twice that size does. Smaller ones are read like data: walking every hole would cost two
 * round trips per zero page in an image where they are scattered. A file system without
 * holes (or SEEK_DATA) gives none; plain directories have them when an image was copied out
 * of a mount with a hole-aware cp.
 */
#define RP_HOLE_MIN   (4u << 20)
#define RP_HOLE_STEPS 32

int restore_find_holes(int fd, struct cr_hole **ret, size_t *ret_n)
{
	struct stat st;
	struct cr_hole *h = NULL;
	size_t n = 0, cap = 0;
	off_t off = 0, last_data = -1;

	*ret = NULL;
	*ret_n = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	while (off < st.st_size) {
		off_t data = lseek(fd, off, SEEK_DATA), start = off;

		if (data < 0 && errno != ENXIO)
			break; /* no SEEK_DATA here: no holes known */
		if (data < 0 || data > st.st_size)
			data = st.st_size; /* nothing but a hole up to the end */
		if (data - off >= (off_t)RP_HOLE_MIN && last_data >= 0) {
			/* Where the hole really begins: walk the holes after the data seen last
			 * (a few steps at most; else the boundary will do). */
			off_t at = last_data;

			for (int i = 0; i < RP_HOLE_STEPS && at < off; i++) {
				off_t hs = lseek(fd, at, SEEK_HOLE), next;

				if (hs < 0 || hs >= off)
					break;
				next = lseek(fd, hs, SEEK_DATA);
				if (next < 0 || next >= off) {
					start = hs;
					break;
				}
				at = next;
			}
		}
		if (data - off >= (off_t)RP_HOLE_MIN) {
			if (n == cap) {
				struct cr_hole *g =
					realloc(h, (cap = cap ? cap * 2 : 16) * sizeof(*h));
				if (!g) {
					free(h);
					return -ENOMEM;
				}
				h = g;
			}
			h[n++] = (struct cr_hole){(uint64_t)start, (uint64_t)data};
		}
		last_data = data;
		off = (data / RP_HOLE_MIN + 1) * RP_HOLE_MIN;
	}
	*ret = h;
	*ret_n = n;
	return 0;
}

/* Sets b up to leave the holes of fd unfilled in private anonymous memory; *ret_holes and
 * *ret_skip are the caller's to free. */
static int run_batches_skip_holes(struct run_batches *b, int fd, struct cr_hole **ret_holes,
				  uint8_t **ret_skip)
{
	uint64_t nr_skip = 0;
	int ret = restore_find_holes(fd, ret_holes, &b->nr_holes);

	if (ret == 0 && b->nr_holes)
		ret = restore_lazy_plan(b->t, ret_skip, &nr_skip);
	b->holes = *ret_holes;
	b->skip = *ret_skip;
	return ret;
}

static int fill_pages(struct restore_ctx *c, struct page_reader *r, const char *path)
{
	const uint64_t ring = (uint64_t)RP_CHUNK * RP_SLOTS;
	struct run_batches b = {.t = c->t, .span = RP_CHUNK, .max = RP_IOV_BATCH};
	struct iovec riov[RP_IOV_BATCH];
	_cleanup_free_ struct cr_hole *holes = NULL;
	_cleanup_free_ uint8_t *skip = NULL;
	uint64_t at, len, released = 0;
	int nr, ret;

	ret = run_batches_skip_holes(&b, r->fd, &holes, &skip);
	if (ret < 0)
		return ret;
	while ((nr = run_batch_next(&b, riov, &at, &len)) > 0) {
		uint64_t chunk = at / RP_CHUNK * RP_CHUNK, failed;

		/* Chunks a hole skipped are done with too: the readers need their slots. */
		if (chunk > released) {
			rp_release(r, chunk);
			released = chunk;
		}
		/* The batch lies in one chunk of the ring: wait until all of it is read. */
		ret = rp_wait(r, MIN(chunk + RP_CHUNK, r->total), &failed);
		if (ret < 0) {
			cr_error("reading '%s' at offset %" PRIu64 ": %s", path, failed,
				 ret == -EBADMSG ? "truncated" : strerror(-ret));
			return ret;
		}
		ret = rp_fill(c, r->buf + at % ring, riov, nr, (size_t)len);
		if (ret < 0)
			return ret;
		if ((at + len) % RP_CHUNK == 0) {
			rp_release(r, at + len);
			released = at + len;
		}
	}
	return 0;
}

static int rp_ring(struct restore_ctx *c, int fd, const char *path)
{
	struct page_reader r = {.fd = fd, .total = c->t->pages_total * CR_PAGE_SIZE};
	struct rp_reader_arg args[RP_READERS];
	pthread_t threads[RP_READERS];
	unsigned int started = 0;
	int ret = 0;

	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	r.buf = mmap(NULL, (size_t)RP_CHUNK * RP_SLOTS, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r.buf == MAP_FAILED)
		return -ENOMEM;
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	for (unsigned int i = 0; i < RP_READERS; i++)
		r.inflight[i] = UINT64_MAX;
	for (; started < RP_READERS; started++) {
		args[started] = (struct rp_reader_arg){&r, started};
		ret = -pthread_create(&threads[started], NULL, rp_reader, &args[started]);
		if (ret < 0) {
			cr_error("cannot start a reader of '%s': %s", path, strerror(-ret));
			break;
		}
	}
	if (ret == 0)
		ret = fill_pages(c, &r, path);
	pthread_mutex_lock(&r.lock);
	r.stop = true;
	pthread_cond_broadcast(&r.cond);
	pthread_mutex_unlock(&r.lock);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_cond_destroy(&r.cond);
	pthread_mutex_destroy(&r.lock);
	munmap(r.buf, (size_t)RP_CHUNK * RP_SLOTS);
	return ret;
}

/* Sets the protection of every vma holding saved pages: for the fill (writable) or back to its
 * own afterwards. Shared memory is skipped: restore_layout maps it writable and
 * restore_pages sets it back, pages or not. */
static int rp_protect_filled(struct restore_ctx *c, bool for_fill)
{
	const struct cr_task *t = c->t;
	uint64_t ri = 0;

	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		uint32_t prot = for_fill ? v->prot | PROT_READ | PROT_WRITE : v->prot;
		int ret;

		while (ri < t->nr_runs && t->runs[ri].vaddr < v->start)
			ri++;
		if (ri == t->nr_runs || t->runs[ri].vaddr >= v->end || (v->prot & PROT_WRITE) ||
		    v->kind == CR_VMA_SHMEM)
			continue;
		ret = inj(c,
			  for_fill ? "mprotect for the page fill" : "mprotect after the page fill",
			  NULL, SYS_mprotect, v->start, v->end - v->start, prot, 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The iovecs that cover bytes [skip, skip + len) of iov[0..n), into out; returns how many. */
static int rp_iov_slice(const struct iovec *iov, int n, uint64_t skip, uint64_t len,
			struct iovec *out)
{
	int k = 0;

	for (int i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l = MIN(l - skip, len);
		out[k++] = (struct iovec){(uint8_t *)iov[i].iov_base + skip, (size_t)l};
		len -= l;
		skip = 0;
	}
	return k;
}

/* The child preadv()s image bytes [off, off + len) into iov[0..n) (changed on the way), going
 * on after short reads. Returns an injection failure; the read's own outcome is ret_err (0,
 * -errno, -EBADMSG at the end of the file) with the bytes read before it in ret_done. */
static int rp_direct_pread(struct restore_ctx *c, int cfd, struct iovec *iov, int n, uint64_t off,
			   uint64_t len, int *ret_err, uint64_t *ret_done)
{
	uint64_t done = 0;
	int first = 0, ret;

	*ret_err = 0;
	while (done < len) {
		uint64_t a;
		int64_t rv;

		ret = put_scratch(c, RP_DIRECT_IOV_AT, iov + first,
				  (size_t)(n - first) * sizeof(*iov), &a);
		if (ret < 0)
			return ret;
		/* x86_64 preadv takes the whole offset in its fourth argument. */
		ret = inject_call(c->pid, c->tramp, &c->base, &rv, SYS_preadv, (uint64_t)cfd, a,
				  (uint64_t)(n - first), off + done, 0, 0);
		if (ret < 0)
			return ret;
		if (rv == -EINTR)
			continue;
		if (rv <= 0) {
			*ret_err = rv == 0 ? -EBADMSG : (int)rv;
			break;
		}
		done += (uint64_t)rv;
		for (uint64_t k = (uint64_t)rv; k && first < n;) {
			if (k >= iov[first].iov_len) {
				k -= iov[first].iov_len;
				first++;
			} else {
				iov[first].iov_base = (uint8_t *)iov[first].iov_base + k;
				iov[first].iov_len -= k;
				k = 0;
			}
		}
	}
	*ret_done = done;
	return 0;
}

/* Reads image bytes [off, off + len) into the child's ranges iov[0..n), len bytes in all. */
static int rp_direct_read(struct restore_ctx *c, int cfd, const char *path, const struct iovec *iov,
			  int n, uint64_t off, uint64_t len)
{
	static const uint64_t steps[] = {1u << 20, CR_PAGE_SIZE};
	struct iovec tmp[RP_DIRECT_IOV];
	uint64_t done, from, to;
	int err, ret;

	ret = rp_direct_pread(c, cfd, tmp, rp_iov_slice(iov, n, 0, len, tmp), off, len, &err,
			      &done);
	if (ret < 0 || err == 0)
		return ret;
	/* A failed piece fails a whole async direct read, not just its own bytes: read again
	 * in smaller steps to name the page that fails. */
	from = done;
	to = len;
	for (size_t i = 0; i < ARRAY_SIZE(steps) && err != -EBADMSG; i++) {
		uint64_t p;

		for (p = from; p < to; p += steps[i]) {
			uint64_t l = MIN(steps[i], to - p), d;
			int e;

			ret = rp_direct_pread(c, cfd, tmp, rp_iov_slice(iov, n, p, l, tmp), off + p,
					      l, &e, &d);
			if (ret < 0)
				return ret;
			if (e) {
				err = e;
				from = p + d;
				to = p + l;
				break;
			}
		}
		if (p >= to)
			break; /* it did not fail again: keep the offset we have */
	}
	cr_error("reading '%s' at offset %" PRIu64 ": %s", path, off + from,
		 err == -EBADMSG ? "truncated" : strerror(-err));
	return err;
}

static int rp_direct_fill(struct restore_ctx *c, int fd, int cfd, const char *path)
{
	struct run_batches b = {.t = c->t, .span = RP_DIRECT, .max = RP_DIRECT_IOV};
	struct iovec iov[RP_DIRECT_IOV];
	_cleanup_free_ struct cr_hole *holes = NULL;
	_cleanup_free_ uint8_t *skip = NULL;
	uint64_t at, len;
	int n, ret;

	ret = run_batches_skip_holes(&b, fd, &holes, &skip);
	if (ret < 0)
		return ret;
	while ((n = run_batch_next(&b, iov, &at, &len)) > 0) {
		ret = rp_direct_read(c, cfd, path, iov, n, at, len);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The child reads pages.img itself (fd is the restorer's, on a FUSE mount). */
static int rp_direct(struct restore_ctx *c, int fd, const char *path)
{
	char self[64];
	int cfd, ret, ret2;

	/* The child opens the restorer's own file again, through /proc: no path lookup that
	 * could find another file, and O_DIRECT for the reasons above. */
	snprintf(self, sizeof(self), "/proc/%d/fd/%d", (int)getpid(), fd);
	ret = open_in_child(c, self, O_RDONLY | O_DIRECT, &cfd);
	if (ret < 0) {
		cr_error("restoring pid %d: opening '%s' in the new process: %s", c->pid, path,
			 strerror(-ret));
		return ret;
	}
	ret = rp_protect_filled(c, true);
	if (ret == 0)
		ret = rp_direct_fill(c, fd, cfd, path);
	if (ret == 0)
		ret = rp_protect_filled(c, false);
	ret2 = inj(c, "close", NULL, SYS_close, (uint64_t)cfd, 0, 0, 0, 0, 0);
	return ret < 0 ? ret : ret2;
}

/* Lazy restore: only the runs outside lazy memory (file COW pages, shared memory: usually
 * few), read here and written into the child; the lazy ones belong to the page server. */
static int rp_sparse(struct restore_ctx *c, int fd, const char *path)
{
	const struct cr_task *t = c->t;
	_cleanup_free_ uint8_t *buf = malloc(RP_CHUNK);
	uint64_t off = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->nr_runs; off += t->runs[i].nr_pages * CR_PAGE_SIZE, i++) {
		uint64_t len = t->runs[i].nr_pages * CR_PAGE_SIZE;

		if (c->lazy_runs[i])
			continue;
		for (uint64_t done = 0; done < len;) {
			size_t n = (size_t)MIN((uint64_t)RP_CHUNK, len - done);
			struct iovec riov = {(void *)(uintptr_t)(t->runs[i].vaddr + done), n};
			uint64_t got = 0;
			int ret = rp_pread(fd, buf, n, off + done, &got);

			if (ret < 0) {
				cr_error("reading '%s' at offset %" PRIu64 ": %s", path,
					 (uint64_t)((off + done + got) & ~(CR_PAGE_SIZE - 1)),
					 ret == -EBADMSG ? "truncated" : strerror(-ret));
				return ret;
			}
			ret = rp_fill(c, buf, &riov, 1, n);
			if (ret < 0)
				return ret;
			done += n;
		}
	}
	return 0;
}

static int restore_pages(struct restore_ctx *c)
{
	struct cr_task *t = c->t;
	char path[PATH_MAX];
	struct statfs sfs;
	int ret;

	snprintf(path, sizeof(path), "%s/task-%u/pages.img", c->dir, t->pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cr_error("image file '%s': %s", path, strerror(errno));
		return -errno;
	}
	if (c->lazy_runs)
		ret = rp_sparse(c, fd, path);
	else if (fstatfs(fd, &sfs) == 0 && sfs.f_type == RP_FUSE_MAGIC)
		ret = rp_direct(c, fd, path);
	else
		ret = rp_ring(c, fd, path);
	if (ret < 0)
		return ret;

	/* Shared memory was mapped writable to be filled; give it its own protection back. */
	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		if (v->kind != CR_VMA_SHMEM || (v->prot & PROT_WRITE))
			continue;
		ret = inj(c, "mprotect", NULL, SYS_mprotect, v->start, v->end - v->start, v->prot,
			  0, 0, 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int restore_mm_fields(struct restore_ctx *c)
{
	struct cr_task *t = c->t;
	struct prctl_mm_map m = {
		.start_code = t->mm.start_code,
		.end_code = t->mm.end_code,
		.start_data = t->mm.start_data,
		.end_data = t->mm.end_data,
		.start_brk = t->mm.start_brk,
		.brk = t->mm.brk,
		.start_stack = t->mm.start_stack,
		.arg_start = t->mm.arg_start,
		.arg_end = t->mm.arg_end,
		.env_start = t->mm.env_start,
		.env_end = t->mm.env_end,
		.auxv_size = t->auxv_len,
		.exe_fd = (uint32_t)-1,
	};
	uint64_t auxv_addr = 0, m_addr;
	int exe_fd = -1, ret;

	if (t->exe) {
		ret = open_in_child(c, t->exe, O_RDONLY, &exe_fd);
		if (ret < 0)
			return ret;
		m.exe_fd = (uint32_t)exe_fd;
	}
	ret = put_scratch(c, 512, t->auxv, t->auxv_len, &auxv_addr);
	if (ret < 0)
		return ret;
	m.auxv = (__u64 *)(uintptr_t)auxv_addr;
	ret = put_scratch(c, 0, &m, sizeof(m), &m_addr);
	if (ret < 0)
		return ret;
	ret = inj(c, "PR_SET_MM_MAP", NULL, SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, m_addr, sizeof(m),
		  0, 0);
	if (exe_fd >= 0) {
		int r2 = inj(c, "close", NULL, SYS_close, (uint64_t)exe_fd, 0, 0, 0, 0, 0);
		if (ret == 0)
			ret = r2;
	}
	return ret;
}

static void restore_rlimits(struct restore_ctx *c)
{
	for (int i = 0; i < CR_NRLIMITS; i++) {
		struct rlimit rl = {c->t->rlimits[i][0], c->t->rlimits[i][1]};
		if (prlimit(c->pid, i, &rl, NULL) < 0) {
			/* Without CAP_SYS_RESOURCE a hard limit cannot be raised: keep ours. */
			struct rlimit cur;
			if (prlimit(c->pid, i, NULL, &cur) == 0) {
				rl.rlim_max = cur.rlim_max;
				rl.rlim_cur = MIN(rl.rlim_cur, cur.rlim_max);
				if (prlimit(c->pid, i, &rl, NULL) < 0)
					log_warn("pid %d: cannot restore rlimit %d: %s", c->pid, i,
						 strerror(errno));
			}
		}
	}
}

static int restore_task_state(struct restore_ctx *c)
{
	struct cr_task *t = c->t;
	uint64_t a;
	int ret;

	if (t->rseq_addr) {
		ret = inj(c, "rseq register", NULL, SYS_rseq, t->rseq_addr, t->rseq_len, 0,
			  t->rseq_sig, 0, 0);
		if (ret < 0)
			return ret;
	}
	ret = inj(c, "set_tid_address", NULL, SYS_set_tid_address, t->clear_child_tid, 0, 0, 0, 0,
		  0);
	if (ret < 0)
		return ret;
	if (t->robust_head) {
		ret = inj(c, "set_robust_list", NULL, SYS_set_robust_list, t->robust_head,
			  t->robust_len, 0, 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	for (int sig = 1; sig <= CR_NSIG; sig++) {
		const struct cr_sigaction *sa = &t->sigactions[sig - 1];
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		struct cr_ksigaction ka = {sa->handler, sa->flags, sa->restorer, sa->mask};
		char what[32];
		snprintf(what, sizeof(what), "rt_sigaction(%d)", sig);
		ret = put_scratch(c, 0, &ka, sizeof(ka), &a);
		if (ret == 0)
			ret = inj(c, what, NULL, SYS_rt_sigaction, (uint64_t)sig, a, 0, 8, 0, 0);
		if (ret < 0)
			return ret;
	}
	if (!(t->altstack_flags & SS_DISABLE)) {
		stack_t ss = {.ss_sp = (void *)(uintptr_t)t->altstack_sp,
			      .ss_flags = (int)(t->altstack_flags & ~(uint32_t)SS_ONSTACK),
			      .ss_size = t->altstack_size};
		ret = put_scratch(c, 0, &ss, sizeof(ss), &a);
		if (ret == 0)
			ret = inj(c, "sigaltstack", NULL, SYS_sigaltstack, a, 0, 0, 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	for (int w = 0; w < 3; w++) {
		struct itimerval it = {
			.it_interval = {(time_t)t->itimers[w][0], (suseconds_t)t->itimers[w][1]},
			.it_value = {(time_t)t->itimers[w][2], (suseconds_t)t->itimers[w][3]},
		};
		/* A periodic ITIMER_REAL whose SIGALRM is still pending reads as value 0: the
		 * kernel re-arms it only when that signal is dequeued, which needs the timer's
		 * interval set. Arm it one interval ahead, as the dequeue would have. */
		if (!it.it_value.tv_sec && !it.it_value.tv_usec)
			it.it_value = it.it_interval;
		if (!it.it_value.tv_sec && !it.it_value.tv_usec)
			continue;
		ret = put_scratch(c, 0, &it, sizeof(it), &a);
		if (ret == 0)
			ret = inj(c, "setitimer", NULL, SYS_setitimer, (uint64_t)w, a, 0, 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	for (uint32_t i = 0; i < t->nr_siginfos; i++) {
		const struct cr_siginfo *si = &t->siginfos[i];
		int signo = (int)le32_get(si->info);
		ret = put_scratch(c, 0, si->info, sizeof(si->info), &a);
		if (ret < 0)
			return ret;
		if (si->shared)
			ret = inj(c, "rt_sigqueueinfo", NULL, SYS_rt_sigqueueinfo, (uint64_t)c->pid,
				  (uint64_t)signo, a, 0, 0, 0);
		else
			ret = inj(c, "rt_tgsigqueueinfo", NULL, SYS_rt_tgsigqueueinfo,
				  (uint64_t)c->pid, (uint64_t)c->pid, (uint64_t)signo, a, 0, 0);
		if (ret < 0)
			return ret;
	}
	if (t->root && strcmp(t->root, "/")) {
		ret = put_string(c, t->root, &a);
		if (ret == 0)
			ret = inj(c, "chroot", NULL, SYS_chroot, a, 0, 0, 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	ret = inj(c, "clearing the parent-death signal", NULL, SYS_prctl, PR_SET_PDEATHSIG, 0, 0, 0,
		  0, 0);
	if (ret < 0)
		return ret;
	if (t->timer_slack_ns) {
		ret = inj(c, "PR_SET_TIMERSLACK", NULL, SYS_prctl, PR_SET_TIMERSLACK,
			  t->timer_slack_ns, 0, 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	if (setpriority(PRIO_PROCESS, (id_t)c->pid, t->nice) < 0)
		log_warn("pid %d: cannot restore nice %d: %s", c->pid, t->nice, strerror(errno));

	restore_rlimits(c);
	/* Privileges last: everything above needed the restorer's capabilities. */
	struct creds_target ct = {
		.pid = c->pid,
		.syscall_ip = c->tramp,
		.base = &c->base,
		.memfd = c->memfd,
		.scratch = c->tramp + SCRATCH_OFF,
		.scratch_len = c->tramp_len - SCRATCH_OFF,
	};
	return restore_creds_apply(&ct, t);
}

/* Final step: unmap the trampoline and, at that syscall's exit stop, become the dumped task. */
static int restore_finish(struct restore_ctx *c)
{
	struct cr_task *t = c->t;
	struct user_regs_struct regs;
	int ret;

	ret = inj(c, "unmapping the trampoline", NULL, SYS_munmap, c->tramp, c->tramp_len, 0, 0, 0,
		  0);
	if (ret < 0)
		return ret;
	memcpy(&regs, t->regs, sizeof(regs));
	if ((int64_t)regs.orig_rax >= 0) {
		int64_t rax = (int64_t)regs.rax;
		if (rax == -CR_ERESTARTSYS || rax == -CR_ERESTARTNOINTR ||
		    rax == -CR_ERESTARTNOHAND) {
			regs.rax = regs.orig_rax;
			regs.rip -= 2;
		} else if (rax == -CR_ERESTART_RESTARTBLOCK) {
			/* The kernel's restart block (remaining time of nanosleep, poll...) died
			 * with the old task. Run the call again from its start: its arguments are
			 * still in the registers, and a wait that lasts longer is allowed where a
			 * spurious EINTR would break callers. */
			regs.rax = regs.orig_rax;
			regs.rip -= 2;
		}
	}
	regs.orig_rax = (uint64_t)-1;
	struct iovec iov = {t->xstate, t->xstate_len};
	if (ptrace(PTRACE_SETREGS, c->pid, 0, &regs) < 0 ||
	    ptrace(PTRACE_SETREGSET, c->pid, NT_X86_XSTATE, &iov) < 0 ||
	    ptrace(PTRACE_SETSIGMASK, c->pid, sizeof(uint64_t), &t->sigmask) < 0) {
		ret = -errno;
		cr_error("restoring pid %d: setting registers: %s", c->pid, strerror(errno));
		return ret;
	}
	if (ptrace(PTRACE_DETACH, c->pid, 0, 0) < 0)
		return -errno;
	return 0;
}

static int write_pidfile(const char *path, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", pid);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	return write_full(fd, buf, (size_t)n);
}

int cr_restore(const struct cr_restore_opts *opts, int *ret_status)
{
	struct cr_image *img = NULL;
	struct child_plan plan = {0};
	struct restore_ctx c = {.dir = opts->dir, .pid = -1, .memfd = -1};
	struct lazy_server lazy = {.pidfd = -1, .ctl = -1};
	_cleanup_free_ uint8_t *lazy_runs = NULL;
	uint64_t vdso_base = 0;
	int ret, status = 0;

	cr_error_clear();
	ret = cr_image_load(opts->dir, &img);
	if (ret < 0)
		return ret;
	c.t = &img->tasks[0];
	struct cr_task *t = c.t;

	/* First: a FUSE connection that is gone or already handed over is the real reason. */
	ret = restore_fuse_check(t);
	if (ret < 0)
		goto out;
	ret = check_files(t);
	if (ret < 0)
		goto out;
	ret = check_vdso(t, &vdso_base);
	if (ret < 0)
		goto out;
	if (opts->lazy) {
		uint64_t nr_lazy;

		ret = restore_lazy_plan(t, &lazy_runs, &nr_lazy);
		if (ret < 0)
			goto out;
	}
	ret = restore_creds_check(t, opts->detach);
	if (ret < 0)
		goto out;
	ret = restore_limits_check(t);
	if (ret < 0)
		goto out;
	if (kill((pid_t)t->pid, 0) == 0 || errno != ESRCH) {
		cr_error("pid %u is in use by another process; cannot restore with the same pid",
			 t->pid);
		ret = -EEXIST;
		goto out;
	}
	c.tramp_len = SCRATCH_OFF + 65536 + (((uint64_t)t->nr_groups * 4 + 4095) & ~4095ULL);
	ret = pick_trampoline(t, c.tramp_len, &c.tramp);
	if (ret < 0)
		goto out;

	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	ret = restore_fds_prepare(opts->dir, t, &plan);
	if (ret < 0)
		goto out;
	plan.pid = (pid_t)t->pid;
	plan.tramp_addr = c.tramp;
	plan.tramp_len = c.tramp_len;
	memcpy(plan.comm, t->comm, sizeof(plan.comm));
	plan.cwd = t->cwd;
	plan.umask = t->umask;
	plan.personality = t->personality;
	plan.setsid = t->sid == t->pid;
	/* A group leader gets its own group again, unless it talks to a terminal: a job of the
	 * restorer's terminal must stay in the restorer's (foreground) group. */
	bool has_tty = false;
	for (uint32_t i = 0; i < t->nr_fds; i++)
		has_tty |= t->fds[i].kind == CR_FD_TTY;
	plan.setpgid = !plan.setsid && t->pgid == t->pid && !has_tty;

	fflush(NULL);
	pid_t pid = restore_child_spawn(&plan);
	restore_fds_release(&plan);
	if (pid < 0) {
		ret = pid;
		if (ret == -EEXIST)
			cr_error("pid %u is in use; cannot restore with the same pid", t->pid);
		else
			cr_error("clone3 with pid %u: %s", t->pid, strerror(-ret));
		goto out;
	}
	c.pid = pid;
	while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR)
		;
	if (!WIFSTOPPED(status)) {
		/* The child reaped here reports which preparation step failed. */
		if (WIFEXITED(status) && WEXITSTATUS(status) > CHILD_FAIL_BASE)
			cr_error("restoring pid %d: the child failed %s", pid,
				 child_step_name(WEXITSTATUS(status) - CHILD_FAIL_BASE));
		else
			cr_error("restoring pid %d: the child ended before it stopped", pid);
		ret = -ECHILD;
		c.pid = -1;
		goto out;
	}
	if (ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) < 0 ||
	    ptrace(PTRACE_GETREGS, pid, 0, &c.base) < 0) {
		ret = -errno;
		goto out_kill;
	}
	uint64_t all = ~0ULL;
	if (ptrace(PTRACE_SETSIGMASK, pid, sizeof(all), &all) < 0) {
		ret = -errno;
		goto out_kill;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	c.memfd = open(path, O_RDWR | O_CLOEXEC);
	if (c.memfd < 0) {
		ret = -errno;
		goto out_kill;
	}
	ret = restore_layout(&c, vdso_base);
	if (ret < 0)
		goto out_kill;
	if (lazy_runs) {
		/* Before anything can touch the new mappings: a lazy page touched before its
		 * range is registered would be zero-filled, and stay so. */
		struct lazy_target lt = {.pid = pid, .syscall_ip = c.tramp, .base = &c.base};
		char pages[PATH_MAX];

		snprintf(pages, sizeof(pages), "%s/task-%u/pages.img", c.dir, t->pid);
		ret = restore_lazy_start(&lt, t, lazy_runs, pages, &lazy);
		if (ret < 0)
			goto out_kill;
		if (lazy.lazy) /* else every page is eager: the usual fast read */
			c.lazy_runs = lazy_runs;
	}
	ret = restore_pages(&c);
	if (ret < 0)
		goto out_kill;
	ret = restore_mlock(&c);
	if (ret < 0)
		goto out_kill;
	ret = restore_shm_seal(pid, t);
	if (ret < 0)
		goto out_kill;
	ret = restore_mm_fields(&c);
	if (ret < 0)
		goto out_kill;
	ret = restore_task_state(&c);
	if (ret < 0)
		goto out_kill;
	ret = restore_finish(&c);
	if (ret < 0)
		goto out_kill;
	closep(&c.memfd);

	if (opts->pidfile) {
		ret = write_pidfile(opts->pidfile, pid);
		if (ret < 0) {
			cr_error("writing pid file '%s': %s", opts->pidfile, strerror(-ret));
			goto out_kill;
		}
	}
	ret = restore_lazy_commit(&lazy);
	if (ret < 0)
		goto out_kill;
	if (opts->server_pidfile && lazy.lazy) {
		ret = write_pidfile(opts->server_pidfile, lazy.pid);
		if (ret < 0) {
			cr_error("writing pid file '%s': %s", opts->server_pidfile, strerror(-ret));
			goto out_kill;
		}
	}
	restore_fuse_finish(&plan.fuse, pid);
	if (opts->detach) {
		*ret_status = 0;
		ret = 0;
		goto out;
	}
	for (;;) {
		if (waitpid(pid, &status, 0) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			break;
	}
	*ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	ret = 0;
	goto out;

out_kill:
	kill(c.pid, SIGKILL);
	waitpid(c.pid, &status, 0);
	restore_lazy_abort(&lazy);
out:
	restore_lazy_release(&lazy);
	restore_fuse_abandon(&plan.fuse);
	closep(&c.memfd);
	cr_image_free(img);
	return ret;
}
