// SPDX-License-Identifier: MIT
/*
 * dump_mm.c - the target's memory: VMAs from /proc/PID/smaps, populated pages from
 * /proc/PID/pagemap, page data into task-PID/pages.img.
 *
 * Only pages that the file cannot give back are saved: present or swapped anonymous pages,
 * copied-on-write pages of private file mappings (present and not file-backed, pagemap bit
 * 61), and all of shared anonymous memory. Pages go out in large writes so that every page
 * lands at a 4 KiB-aligned offset of pages.img (the store dedups aligned chunks).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/dump_priv.h"
#include "cr/error.h"
#include "cr/fuse_priv.h"
#include "cr/ptrace_priv.h"

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_FILE	   (1ULL << 61)

/* What to save of a VMA. */
enum save_policy {
	SAVE_NONE,
	SAVE_ANON,    /* present or swapped */
	SAVE_PRIVATE, /* present-and-not-file, or swapped */
	SAVE_ALL,     /* every page */
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

static int add_vma(struct cr_task *t, uint64_t *cap, const struct cr_vma *v)
{
	if (t->nr_vmas == *cap) {
		uint64_t ncap = *cap ? *cap * 2 : 64;
		struct cr_vma *n = realloc(t->vmas, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->vmas = n;
		*cap = ncap;
	}
	t->vmas[t->nr_vmas++] = *v;
	return 0;
}

/* Classifies one mapping; refuses what restore could not rebuild faithfully. */
static int classify(struct dump_ctx *c, struct cr_vma *v, const char *name, bool shared, bool *skip)
{
	char mf[96];
	struct stat st;

	*skip = false;
	if (!name[0] || !strncmp(name, "[anon:", 6) || !strcmp(name, "[heap]") ||
	    !strcmp(name, "[stack]")) {
		v->kind = shared ? CR_VMA_SHMEM : CR_VMA_ANON;
		return 0;
	}
	if (!strcmp(name, "[vsyscall]")) {
		*skip = true;
		return 0;
	}
	if (!strcmp(name, "[vvar]")) {
		v->kind = CR_VMA_VVAR;
		return 0;
	}
	if (!strcmp(name, "[vvar_vclock]")) {
		v->kind = CR_VMA_VVAR_VCLOCK;
		return 0;
	}
	if (!strcmp(name, "[vdso]")) {
		v->kind = CR_VMA_VDSO;
		return 0;
	}
	if (name[0] != '/') {
		cr_error("pid %d: mapping %#" PRIx64 "-%#" PRIx64 " '%s' is of an unsupported kind",
			 c->pid, v->start, v->end, name);
		return -EOPNOTSUPP;
	}
	v->path = strdup(name);
	if (!v->path)
		return -ENOMEM;
	if (ends_with(name, " (deleted)")) {
		if (shared) {
			if (!strncmp(name, "/dev/zero", 9) || !strncmp(name, "/SYSV", 5)) {
				v->kind = CR_VMA_SHMEM;
				return 0;
			}
			if (!strncmp(name, "/memfd:", 7)) {
				/* Recreated with memfd_create at restore: keep offset and size. */
				snprintf(mf, sizeof(mf), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
					 c->pid, v->start, v->end);
				if (stat(mf, &st) < 0) {
					cr_error("pid %d: cannot stat memfd mapping %#" PRIx64
						 ": %s",
						 c->pid, v->start, strerror(errno));
					return -errno;
				}
				v->kind = CR_VMA_SHMEM;
				v->size = (uint64_t)st.st_size;
				v->ino = st.st_ino;
				return 0;
			}
			cr_error("pid %d: shared mapping %#" PRIx64 " of deleted file '%s' is not "
				 "supported",
				 c->pid, v->start, name);
			return -EOPNOTSUPP;
		}
		/* A private view of a file that is gone: keep every page, rebuild as anonymous
		 * (an anonymous VMA with a path is only ever this). */
		v->kind = CR_VMA_ANON;
		return 0;
	}
	snprintf(mf, sizeof(mf), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, c->pid, v->start,
		 v->end);
	if (stat(mf, &st) < 0) {
		cr_error("pid %d: cannot stat mapped file '%s': %s", c->pid, name, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		cr_error("pid %d: mapping %#" PRIx64 " of '%s' is a device or special file, not "
			 "supported",
			 c->pid, v->start, name);
		return -EOPNOTSUPP;
	}
	v->kind = CR_VMA_FILE;
	v->dev = st.st_dev;
	v->ino = st.st_ino;
	v->size = (uint64_t)st.st_size;
	v->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
	return 0;
}

int dump_mm_collect(struct dump_ctx *c)
{
	char path[64], line[4096 + 256];
	uint64_t cap = 0;
	struct cr_vma *cur = NULL;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps", c->pid);
	FILE *f = fopen(path, "re");
	if (!f) {
		cr_error("pid %d: cannot open '%s': %s", c->pid, path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, pgoff, ino;
		char perms[8];
		unsigned int maj, min;
		int name_at = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &pgoff,
			   &maj, &min, &ino, &name_at) >= 7 &&
		    name_at > 0) {
			struct cr_vma v = {.start = start, .end = end, .pgoff = pgoff};
			char *name = line + name_at;
			bool skip = false;

			name[strcspn(name, "\n")] = 0;
			v.prot = (perms[0] == 'r' ? PROT_READ : 0) |
				 (perms[1] == 'w' ? PROT_WRITE : 0) |
				 (perms[2] == 'x' ? PROT_EXEC : 0);
			if (perms[3] == 's')
				v.flags |= CR_VMA_F_SHARED;
			ret = dump_fuse_check_mapping(c, maj, min, name, v.start);
			if (ret == 0)
				ret = classify(c, &v, name, perms[3] == 's', &skip);
			if (ret < 0) {
				free(v.path);
				goto out;
			}
			if (skip) {
				cur = NULL;
				continue;
			}
			if (v.kind != CR_VMA_FILE && !(v.kind == CR_VMA_SHMEM && v.size))
				v.pgoff = 0;
			ret = add_vma(c->t, &cap, &v);
			if (ret < 0) {
				free(v.path);
				goto out;
			}
			cur = &c->t->vmas[c->t->nr_vmas - 1];
			continue;
		}
		if (cur && !strncmp(line, "VmFlags:", 8)) {
			if (strstr(line, " gd"))
				cur->flags |= CR_VMA_F_GROWSDOWN;
			if ((strstr(line, " io") || strstr(line, " pf")) &&
			    cur->kind < CR_VMA_VVAR) {
				cr_error("pid %d: mapping %#" PRIx64 " is I/O or PFN memory, not "
					 "supported",
					 c->pid, cur->start);
				ret = -EOPNOTSUPP;
				goto out;
			}
		}
	}
	/* Find a syscall instruction in [vdso] for injection, and fingerprint the vDSO. */
	for (uint32_t i = 0; i < c->t->nr_vmas; i++) {
		struct cr_vma *v = &c->t->vmas[i];
		if (v->kind != CR_VMA_VDSO)
			continue;
		size_t len = (size_t)(v->end - v->start);
		_cleanup_free_ uint8_t *buf = malloc(len);
		if (!buf) {
			ret = -ENOMEM;
			goto out;
		}
		ret = mem_read(c->memfd, v->start, buf, len);
		if (ret < 0) {
			cr_error("pid %d: cannot read [vdso]: %s", c->pid, strerror(-ret));
			goto out;
		}
		v->content_hash = cr_hash_bytes(buf, len);
		for (size_t k = 0; k + 1 < len; k++)
			if (buf[k] == 0x0f && buf[k + 1] == 0x05) {
				c->syscall_ip = v->start + k;
				break;
			}
	}
	if (!c->syscall_ip) {
		cr_error("pid %d: no [vdso] with a syscall instruction to run helpers in", c->pid);
		ret = -EOPNOTSUPP;
	}
out:
	fclose(f);
	return ret;
}

/* ---- page data ---- */

#define WBUF_SIZE (8u << 20) /* large writes; a multiple of the page size */

struct page_writer {
	struct dump_ctx *c;
	int fd;
	uint8_t *buf;
	size_t fill;
	uint64_t runs_cap;
};

static int pw_flush(struct page_writer *w)
{
	if (!w->fill)
		return 0;
	int ret = write_full(w->fd, w->buf, w->fill);
	if (ret < 0) {
		cr_error("writing 'task-%d/pages.img': %s", w->c->pid, strerror(-ret));
		return ret;
	}
	w->c->bytes_written += w->fill;
	w->fill = 0;
	return 0;
}

static int add_run(struct page_writer *w, uint64_t vaddr, uint64_t n, bool may_merge)
{
	struct cr_task *t = w->c->t;

	if (may_merge && t->nr_runs) {
		struct cr_page_run *last = &t->runs[t->nr_runs - 1];
		if (last->vaddr + last->nr_pages * CR_PAGE_SIZE == vaddr) {
			last->nr_pages += n;
			t->pages_total += n;
			return 0;
		}
	}
	if (t->nr_runs == w->runs_cap) {
		uint64_t ncap = w->runs_cap ? w->runs_cap * 2 : 256;
		struct cr_page_run *r = realloc(t->runs, ncap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		t->runs = r;
		w->runs_cap = ncap;
	}
	t->runs[t->nr_runs++] = (struct cr_page_run){vaddr, n};
	t->pages_total += n;
	return 0;
}

/* Copies [vaddr, vaddr+len) of the target into the write buffer. */
static int copy_range(struct page_writer *w, uint64_t vaddr, uint64_t len, bool readable)
{
	while (len) {
		size_t room = WBUF_SIZE - w->fill;
		if (!room) {
			int ret = pw_flush(w);
			if (ret < 0)
				return ret;
			room = WBUF_SIZE;
		}
		size_t n = (size_t)MIN((uint64_t)room, len);
		ssize_t got = -1;
		if (readable) {
			struct iovec local = {w->buf + w->fill, n};
			struct iovec remote = {(void *)(uintptr_t)vaddr, n};
			got = process_vm_readv(w->c->pid, &local, 1, &remote, 1, 0);
		}
		if (got != (ssize_t)n) {
			/* Unreadable protection or a partial read: /proc/PID/mem forces through. */
			int ret = mem_read(w->c->memfd, vaddr, w->buf + w->fill, n);
			if (ret < 0) {
				cr_error("pid %d: reading memory at %#" PRIx64 ": %s", w->c->pid,
					 vaddr, strerror(-ret));
				return ret;
			}
		}
		w->fill += n;
		vaddr += n;
		len -= n;
	}
	return 0;
}

#define PM_BATCH 4096

/*
 * Shared memory pages live in the shmem object, mapped here or not: ask the object which of
 * its pages hold data (SEEK_DATA/SEEK_HOLE), so holes are neither saved nor allocated by
 * reading them. Marks pm[0..n) for the n pages at file offset off. Without the object, every
 * page counts.
 */
static void shmem_data_pages(int objfd, uint64_t off, uint64_t n, uint64_t *pm)
{
	uint64_t end = off + n * CR_PAGE_SIZE;

	if (objfd < 0) {
		for (uint64_t i = 0; i < n; i++)
			pm[i] = PM_PRESENT;
		return;
	}
	memset(pm, 0, n * sizeof(*pm));
	for (uint64_t pos = off; pos < end;) {
		off_t d = lseek(objfd, (off_t)pos, SEEK_DATA);
		if (d < 0 || (uint64_t)d >= end)
			break;
		off_t h = lseek(objfd, d, SEEK_HOLE);
		uint64_t hole = h < 0 ? end : MIN((uint64_t)h, end);
		for (uint64_t p = (uint64_t)d & ~(CR_PAGE_SIZE - 1); p < hole; p += CR_PAGE_SIZE)
			pm[(p - off) / CR_PAGE_SIZE] = PM_PRESENT;
		pos = hole;
	}
}

static int dump_vma_pages(struct page_writer *w, int pmfd, const struct cr_vma *v,
			  enum save_policy pol)
{
	uint64_t pm[PM_BATCH] = {0};
	uint64_t npages = (v->end - v->start) / CR_PAGE_SIZE;
	bool readable = v->prot & PROT_READ;
	bool first = true;
	_cleanup_close_ int objfd = -1;

	if (v->kind == CR_VMA_SHMEM) {
		char mf[96];
		snprintf(mf, sizeof(mf), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, w->c->pid,
			 v->start, v->end);
		objfd = open(mf, O_RDONLY | O_CLOEXEC);
	}

	for (uint64_t base = 0; base < npages; base += PM_BATCH) {
		uint64_t n = MIN((uint64_t)PM_BATCH, npages - base);
		uint64_t va = v->start + base * CR_PAGE_SIZE;

		if (pol == SAVE_ALL) {
			shmem_data_pages(objfd, v->pgoff + base * CR_PAGE_SIZE, n, pm);
		} else {
			int ret = pread_full(pmfd, pm, n * 8, va / CR_PAGE_SIZE * 8);
			if (ret < 0) {
				cr_error("pid %d: reading pagemap at %#" PRIx64 ": %s", w->c->pid,
					 va, strerror(-ret));
				return ret == -EBADMSG ? -EIO : ret;
			}
		}
		for (uint64_t i = 0; i < n;) {
			bool save_i;
			uint64_t j = i;
			while (j < n) {
				uint64_t e = pm[j];
				if (pol == SAVE_PRIVATE)
					save_i = ((e & PM_PRESENT) && !(e & PM_FILE)) ||
						 (e & PM_SWAPPED);
				else
					save_i = e & (PM_PRESENT | PM_SWAPPED);
				if (!save_i)
					break;
				j++;
			}
			if (j > i) {
				uint64_t at = va + i * CR_PAGE_SIZE;
				int ret = add_run(w, at, j - i, !first);
				if (ret < 0)
					return ret;
				first = false;
				ret = copy_range(w, at, (j - i) * CR_PAGE_SIZE, readable);
				if (ret < 0)
					return ret;
				i = j;
			} else {
				i++;
			}
		}
	}
	return 0;
}

int dump_mm_write_pages(struct dump_ctx *c)
{
	char path[64];
	struct page_writer w = {.c = c, .fd = -1};
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	_cleanup_close_ int pmfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pmfd < 0) {
		cr_error("pid %d: cannot open '%s': %s", c->pid, path, strerror(errno));
		return -errno;
	}
	_cleanup_close_ int fd =
		openat(c->taskdirfd, "pages.img", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		cr_error("creating 'task-%d/pages.img': %s", c->pid, strerror(errno));
		return -errno;
	}
	_cleanup_free_ uint8_t *buf = aligned_alloc(CR_PAGE_SIZE, WBUF_SIZE);
	if (!buf)
		return -ENOMEM;
	w.fd = fd;
	w.buf = buf;

	for (uint32_t i = 0; i < c->t->nr_vmas; i++) {
		struct cr_vma *v = &c->t->vmas[i];
		enum save_policy pol = SAVE_NONE;

		if (v->kind == CR_VMA_ANON && v->path) {
			pol = SAVE_ALL;
		} else if (v->kind == CR_VMA_ANON) {
			pol = SAVE_ANON;
		} else if (v->kind == CR_VMA_SHMEM) {
			pol = SAVE_ALL;
		} else if (v->kind == CR_VMA_FILE && !(v->flags & CR_VMA_F_SHARED)) {
			pol = SAVE_PRIVATE;
		}
		if (pol == SAVE_NONE)
			continue;
		ret = dump_vma_pages(&w, pmfd, v, pol);
		if (ret < 0)
			return ret;
	}
	ret = pw_flush(&w);
	if (ret < 0)
		return ret;
	if (fsync(fd) < 0 && errno != EINVAL && errno != ENOTSUP) {
		cr_error("fsync of 'task-%d/pages.img': %s", c->pid, strerror(errno));
		return -errno;
	}
	return 0;
}
