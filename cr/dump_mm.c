// SPDX-License-Identifier: MIT
/*
 * dump_mm.c - the target's memory: VMAs from /proc/PID/smaps, populated pages from
 * /proc/PID/pagemap, page data into task-PID/pages.img.
 *
 * Only pages that the file cannot give back are saved: present or swapped anonymous pages,
 * copied-on-write pages of private file mappings (present and not file-backed, pagemap bit
 * 61), and all of shared anonymous memory. Every page lands at a 4 KiB-aligned offset of
 * pages.img (the store dedups aligned chunks).
 *
 * Every page's digest goes into task-PID/pages.sums. With a parent image (dump_parent.c), a
 * page whose digest the parent has is copied from the parent's pages.img (copy_file_range:
 * a reflink or a chunk reference where the filesystem can, else an in-kernel copy) instead of
 * being written; whatever cannot be copied is written from the buffer, so pages.img is always
 * complete on its own.
 *
 * Thread-safety: the capture runs on the tracing thread; the writer threads only hash, write
 * and copy pages of pages.img from the capture buffer (page_pipe, below) and read the
 * parent, which nothing changes while they run.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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
			if (!strncmp(name, "/dev/zero", 9) || !strncmp(name, "/SYSV", 5) ||
			    !strncmp(name, "/memfd:", 7)) {
				/* Keep offset, size and identity: the saved pages are found by the
				 * object's offsets (a shared anonymous VMA need not start at offset
				 * 0), a memfd is recreated with memfd_create at restore, and VMAs
				 * of one object are told apart (dump_shm.c). */
				snprintf(mf, sizeof(mf), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
					 c->pid, v->start, v->end);
				if (stat(mf, &st) < 0) {
					cr_error("pid %d: cannot stat shared mapping %#" PRIx64
						 ": %s",
						 c->pid, v->start, strerror(errno));
					return -errno;
				}
				v->kind = CR_VMA_SHMEM;
				v->size = (uint64_t)st.st_size;
				v->dev = st.st_dev; /* with ino: which VMAs map one memfd */
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

/* Whether the VmFlags line of smaps lists flag (two letters). */
static bool vmflags_has(const char *line, const char *flag)
{
	for (const char *p = strstr(line, flag); p; p = strstr(p + 1, flag))
		if (p[-1] == ' ' && (p[2] == ' ' || p[2] == '\n' || !p[2]))
			return true;
	return false;
}

/* The madvise/mlock state in a VmFlags line (letters of Documentation/filesystems/proc.rst,
 * each checked on 6.18 by setting it and reading smaps back). */
static uint32_t vmflags_madv(const char *line)
{
	static const struct {
		char letters[3];
		uint32_t bit;
	} map[] = {
		{"dc", CR_VMA_MADV_DONTFORK},	{"wf", CR_VMA_MADV_WIPEONFORK},
		{"dd", CR_VMA_MADV_DONTDUMP},	{"hg", CR_VMA_MADV_HUGEPAGE},
		{"nh", CR_VMA_MADV_NOHUGEPAGE}, {"mg", CR_VMA_MADV_MERGEABLE},
		{"lo", CR_VMA_MADV_LOCKED},	{"lf", CR_VMA_MADV_LOCKONFAULT},
	};
	uint32_t madv = 0;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (vmflags_has(line, map[i].letters))
			madv |= map[i].bit;
	return madv;
}

static void uffd_missing_error(pid_t pid, uint64_t start)
{
	cr_error("pid %d: mapping %#" PRIx64 " is registered with a userfaultfd in missing mode, "
		 "held by another process (a lazy restore's page server still filling it?): its "
		 "missing pages are not in memory, so an image would lose them",
		 pid, start);
}

int dump_mm_uffd_missing(pid_t pid, uint64_t *ret_addr)
{
	char path[64], line[4096 + 256];
	unsigned long long start = 0;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	while (!ret && fgets(line, sizeof(line), f)) {
		unsigned long long a, b;

		if (sscanf(line, "%llx-%llx ", &a, &b) == 2) {
			start = a;
			continue;
		}
		if (!strncmp(line, "VmFlags:", 8) && vmflags_has(line, "um")) {
			*ret_addr = start;
			ret = 1;
		}
	}
	fclose(f);
	return ret;
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
			/* Checked before the freeze too (dump.c waits for a lazy restore to
			 * finish); this catches a registration made since. */
			if (vmflags_has(line, "um")) {
				uffd_missing_error(c->pid, cur->start);
				ret = -EBUSY;
				goto out;
			}
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
			/* The kernel sets dd (and io, pf) on [vvar] itself: only the mappings
			 * restore makes with mmap carry the flags a program chose. */
			if (cur->kind < CR_VMA_VVAR)
				cur->madv = vmflags_madv(line);
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

/*
 * Pages leave the target in two steps so that it is frozen only while they are read: a plan
 * (pagemap: which pages, as t->runs) and a capture that copies them into a buffer in the
 * dumper, from which writer threads stream pages.img. The buffer is a ring of PP_CHUNK
 * pieces. When the whole dump fits (the normal case) the capture never waits for the writers
 * and the target is released as soon as it is read; a dump larger than the bound has to wait
 * for them, so its target stays frozen while all but the last ring's worth is written.
 * Writes are PP_CHUNK-sized at PP_CHUNK-aligned offsets (the store dedups aligned chunks and
 * a FUSE mount receives them as whole max_write pieces, never a partial page to merge), and
 * they start with the first chunk, so the daemon compresses while the capture goes on.
 * Writers may finish out of order: `written` is the prefix below every write in flight, and
 * only that part of the ring is reused.
 */

#define PP_CHUNK     (8u << 20)
#define PP_MAX	     (4ULL << 30) /* buffer bound, and at most half of MemAvailable */
#define PP_IOV_BATCH 512
/* Writers in parallel: a FUSE daemon serves requests on several threads, and one synchronous
 * writer leaves it waiting on each round trip. */
#define PP_WRITERS	2
#define PP_PARENT_PIECE (256u << 20)
#define PP_RELEASE_STEP (64u << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct page_pipe {
	struct dump_ctx *c;
	int fd; /* pages.img */
	uint8_t *buf;
	size_t cap;	/* ring size, a multiple of PP_CHUNK */
	uint64_t bound; /* largest buffer this dump may use */
	uint64_t total; /* bytes of pages.img */
	pthread_t threads[PP_WRITERS];
	unsigned int nr_threads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock: */
	uint64_t filled;	       /* bytes captured into the ring */
	uint64_t claimed;	       /* bytes handed to writers */
	uint64_t inflight[PP_WRITERS]; /* offset each writer is at, UINT64_MAX when idle */
	uint64_t written;	       /* every byte below this is written: ring space is free */
	uint64_t done;		       /* bytes written in all */
	int err;		       /* first write error */
	bool stop;
	bool hold; /* the writers wait for the capture to end (c->defer_writes) */
	bool locks_ready;
	/* The whole dump is in the buffer and the target already runs: the writers give the
	 * buffer back behind them (below `released`, under lock). */
	bool release;
	uint64_t released;
	/* Per page of pages.img, filled by the writers (each its own pages): */
	uint8_t *sums;		     /* digests, CR_SUMS_DIGEST_LEN each */
	uint64_t piece;		     /* most bytes a writer claims at once */
	uint64_t *match[PP_WRITERS]; /* each writer's parent page per page of its piece */
	uint64_t *run_first;	     /* page index of each of t->runs' first page */
	/* Atomic: */
	uint64_t copied; /* pages copied from the parent (and not written over) */
	int copy_err;	 /* errno of the first failed copy; -1: the parent was short */
	bool copy_off;	 /* a copy failed: write the rest */
};

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

/* Values in kB of the lines "keys[i]:" of a /proc file, 0 for those it lacks; one pass (a
 * smaps_rollup read of a 1 GiB process costs ~11 ms). */
static void proc_kb(const char *path, const char *const *keys, uint64_t *ret_kb, size_t n)
{
	char line[256];
	FILE *f = fopen(path, "re");

	memset(ret_kb, 0, n * sizeof(*ret_kb));
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		for (size_t i = 0; i < n; i++) {
			size_t kl = strlen(keys[i]);
			if (!strncmp(line, keys[i], kl) && line[kl] == ':')
				ret_kb[i] = strtoull(line + kl + 1, NULL, 10);
		}
	fclose(f);
}

struct pp_fault_arg {
	void *at;
	size_t len;
};

static void *pp_fault_in(void *arg)
{
	const struct pp_fault_arg *a = arg;

	madvise(a->at, a->len, MADV_POPULATE_WRITE); /* best effort: it faults in as it fills */
	return NULL;
}

/*
 * Faults the capture buffer in before the freeze, on two threads: this is most of a second
 * dump's time outside its freeze, the same on every destination. The cost is the kernel
 * allocating and zeroing pages and, in a VM that hands free memory back to its host (free
 * page reporting), the host giving it back: 1.1 GiB took 0.30-0.40 s on one thread and
 * 0.16-0.50 s on two, and up to 2.5 s on one after the guest's free memory had been
 * reported. Huge pages (MADV_HUGEPAGE) were not taken: 0.03-0.05 s when memory is warm but
 * 0.2-1.3 s in that VM when it is not (they come from the large free blocks the guest
 * reports), a wider spread than 4 KiB pages.
 */
static void pp_fault_buffer(void *buf, size_t len)
{
	size_t half = len / 2 / PP_CHUNK * PP_CHUNK;
	struct pp_fault_arg hi = {(uint8_t *)buf + half, len - half}, lo = {buf, half};
	pthread_t th;

	if (!half || pthread_create(&th, NULL, pp_fault_in, &hi) != 0) {
		lo.len = len;
		pp_fault_in(&lo);
		return;
	}
	pp_fault_in(&lo);
	pthread_join(th, NULL);
}

int dump_mm_reserve(struct dump_ctx *c)
{
	static const char *const mem_keys[] = {"MemAvailable"}, *const rss_keys[] = {"Rss", "Swap"};
	char path[64];
	const char *env = getenv("CKPTFS_DUMP_BUFFER_MAX_MIB"); /* a test knob */
	struct page_pipe *p = calloc(1, sizeof(*p));
	uint64_t kb[2];

	if (!p)
		return -ENOMEM;
	p->c = c;
	p->fd = -1;
	proc_kb("/proc/meminfo", mem_keys, kb, 1);
	p->bound = MIN(PP_MAX, kb[0] * 1024 / 2);
	if (env && *env)
		p->bound = MIN(p->bound, strtoull(env, NULL, 10) << 20);
	p->bound = MAX(p->bound / PP_CHUNK * PP_CHUNK, (uint64_t)PP_CHUNK);

	/* Sized from the target's resident and swapped memory (an overestimate: it counts file
	 * pages too) and faulted in now, before the freeze, so the capture copies at full speed;
	 * only the 1/16 kept for growth until the freeze faults in as it fills. */
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", c->pid);
	proc_kb(path, rss_keys, kb, 2);
	uint64_t est = (kb[0] + kb[1]) * 1024;
	p->cap = (size_t)MIN(round_up(est + est / 16, PP_CHUNK), p->bound);
	p->cap = MAX(p->cap, (size_t)PP_CHUNK);
	void *m = mmap(NULL, p->cap, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		free(p);
		return -ENOMEM;
	}
	pp_fault_buffer(m, MIN((size_t)round_up(est, PP_CHUNK), p->cap));
	p->buf = m;
	c->pages = p;
	return 0;
}

struct pp_writer_arg {
	struct page_pipe *p;
	unsigned int idx;
};

static void pp_update_written(struct page_pipe *p)
{
	uint64_t w = p->claimed;
	for (unsigned int i = 0; i < PP_WRITERS; i++)
		w = MIN(w, p->inflight[i]);
	p->written = w;
}

static void pp_copy_failed(struct page_pipe *p, int err)
{
	int none = 0;

	__atomic_compare_exchange_n(&p->copy_err, &none, err, false, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
	__atomic_store_n(&p->copy_off, true, __ATOMIC_RELAXED);
}

/*
 * Copies nr pages from the parent's page pidx to offset off of pages.img; returns the bytes
 * copied. A failed or short copy (another filesystem, no support, a parent cut short) is not
 * an error: the rest is written from src, and later pages are no longer copied.
 */
static int64_t pp_copy_span(struct page_pipe *p, uint64_t pidx, uint64_t off, const uint8_t *src,
			    uint64_t nr)
{
	loff_t in = (loff_t)(pidx * CR_PAGE_SIZE), out = (loff_t)off;
	uint64_t len = nr * CR_PAGE_SIZE, done = 0;
	int pfd = dump_parent_pages_fd(p->c->parent);

	while (done < len && !__atomic_load_n(&p->copy_off, __ATOMIC_RELAXED)) {
		ssize_t n = copy_file_range(pfd, &in, p->fd, &out, (size_t)(len - done), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			pp_copy_failed(p, n < 0 ? errno : -1);
			break;
		}
		done += (uint64_t)n;
	}
	if (done == len)
		return (int64_t)done;
	int ret = pwrite_full(p->fd, src + done, (size_t)(len - done), off + done);
	return ret < 0 ? ret : (int64_t)done;
}

/*
 * Copy spans: a span copies consecutive parent pages over consecutive pages of the piece and
 * may bridge up to SPAN_GAP pages that differ, which are written over the copy right after.
 * Each copy_file_range is one request to a FUSE daemon (and a transaction there), so one
 * span per stretch of mostly unchanged memory plus small patches beats copying every
 * unchanged run on its own. Spans with fewer than SPAN_MIN matching pages are written instead:
 * a small write costs less than a copy request. Between two patches, up to PATCH_JOIN
 * unchanged pages are rewritten rather than split the write in two. Tuned on the
 * cr_bench.sh workload (1 GiB, 3 % of the pages changed at random, two cores, 256 MiB
 * pieces): second dump into the mount 0.58 s with joins of 8, 0.70 s with 16, 0.63 s with 32.
 */
#define SPAN_GAP   256
#define SPAN_MIN   16
#define PATCH_JOIN 8

/* Pages [s0, end) of the piece that the span starting there (at parent page p0) does not
 * hold are written, in runs; returns how many pages it held were rewritten with them. */
static int64_t pp_patch_span(struct page_pipe *p, const uint64_t *match, uint64_t s0, uint64_t p0,
			     uint64_t end, const uint8_t *src, uint64_t at)
{
	int64_t rewritten = 0;

	for (uint64_t k = s0, j; k < end; k = j) {
		j = k + 1;
		if (match[k] == p0 + (k - s0))
			continue;
		/* Up to PATCH_JOIN unchanged pages between two patches are rewritten with them
		 * (the same bytes): a request saved is worth more than a few pages. */
		for (uint64_t gap = 0; j < end && gap <= PATCH_JOIN; j++) {
			if (match[j] != p0 + (j - s0))
				gap = 0;
			else
				gap++;
		}
		while (j > k + 1 && match[j - 1] == p0 + (j - 1 - s0))
			j--;
		int ret = pwrite_full(p->fd, src + k * CR_PAGE_SIZE,
				      (size_t)((j - k) * CR_PAGE_SIZE), at + k * CR_PAGE_SIZE);
		if (ret < 0)
			return ret;
		for (uint64_t i = k; i < j; i++)
			rewritten += match[i] == p0 + (i - s0);
	}
	return rewritten;
}

/*
 * One claimed piece of pages.img (at most PP_CHUNK, page aligned): digests, then spans of
 * pages the parent holds are copied and patched, the rest written in as few writes as
 * possible.
 */
static int pp_write_piece(struct page_pipe *p, unsigned int me, uint64_t at, size_t n)
{
	const struct cr_task *t = p->c->t;
	const struct dump_parent *dp = p->c->parent;
	const uint8_t *src = p->buf + at % p->cap;
	uint64_t first = at / CR_PAGE_SIZE, np = n / CR_PAGE_SIZE;
	uint8_t *sums = p->sums + first * CR_SUMS_DIGEST_LEN;
	uint64_t *match = p->match[me];
	uint64_t pending = 0; /* pages [pending, k) are still to be written */
	int ret;

	assert(at % CR_PAGE_SIZE == 0 && n % CR_PAGE_SIZE == 0 && n <= p->piece);
	for (uint64_t k = 0; k < np; k++)
		cr_sums_digest(src + k * CR_PAGE_SIZE, sums + k * CR_SUMS_DIGEST_LEN);
	if (!dp || __atomic_load_n(&p->copy_off, __ATOMIC_RELAXED))
		return pwrite_full(p->fd, src, n, at);

	uint64_t parent_pages = dump_parent_nr_pages(dp);
	for (uint64_t k = 0; k < np; k++) {
		uint64_t va = dump_runs_vaddr(t->runs, p->run_first, t->nr_runs, first + k);
		uint64_t hint = k && match[k - 1] != UINT64_MAX ? match[k - 1] + 1 : UINT64_MAX;
		match[k] = dump_parent_find(dp, sums + k * CR_SUMS_DIGEST_LEN, va, hint);
	}
	for (uint64_t k = 0; k < np;) {
		uint64_t p0 = match[k], last = k, fit = 1;
		if (p0 == UINT64_MAX) {
			k++;
			continue;
		}
		for (uint64_t j = k + 1; j < np && j - last <= SPAN_GAP; j++) {
			if (p0 + (j - k) >= parent_pages)
				break;
			if (match[j] == p0 + (j - k)) {
				last = j;
				fit++;
			}
		}
		if (fit < SPAN_MIN) {
			k++;
			continue;
		}
		if (pending < k) {
			ret = pwrite_full(p->fd, src + pending * CR_PAGE_SIZE,
					  (size_t)((k - pending) * CR_PAGE_SIZE),
					  at + pending * CR_PAGE_SIZE);
			if (ret < 0)
				return ret;
		}
		int64_t copied = pp_copy_span(p, p0, at + k * CR_PAGE_SIZE, src + k * CR_PAGE_SIZE,
					      last + 1 - k);
		if (copied < 0)
			return (int)copied;
		/* Pages that came from the parent and stay: the matching ones copied in full. */
		uint64_t kept = 0;
		for (uint64_t j = k; j < k + (uint64_t)copied / CR_PAGE_SIZE; j++)
			kept += match[j] == p0 + (j - k);
		int64_t rewritten = pp_patch_span(p, match, k, p0, last + 1, src, at);
		if (rewritten < 0)
			return (int)rewritten;
		kept -= MIN(kept, (uint64_t)rewritten);
		__atomic_fetch_add(&p->copied, kept, __ATOMIC_RELAXED);
		k = pending = last + 1;
	}
	if (pending < np)
		return pwrite_full(p->fd, src + pending * CR_PAGE_SIZE,
				   (size_t)((np - pending) * CR_PAGE_SIZE),
				   at + pending * CR_PAGE_SIZE);
	return 0;
}

/*
 * Gives back the buffer's pages for bytes [from, to) of pages.img, which are written (and no
 * longer read: it is not a ring). Freeing 1.1 GiB of 4 KiB pages costs ~0.07 s, which was
 * paid after the image was durable (at exit); here it is spread over the writers, who mostly
 * wait on the destination. MADV_DONTNEED, not munmap: the range stays reserved, so nothing
 * else gets mapped there before dump_mm_free_pages unmaps the whole buffer.
 */
static void pp_release(struct page_pipe *p, uint64_t from, uint64_t to)
{
	from = round_up(from, CR_PAGE_SIZE);
	to = MIN(round_up(to, CR_PAGE_SIZE), (uint64_t)p->cap);
	if (to > from)
		madvise(p->buf + from, (size_t)(to - from), MADV_DONTNEED);
}

static void *pp_writer(void *arg)
{
	struct page_pipe *p = ((struct pp_writer_arg *)arg)->p;
	unsigned int me = ((struct pp_writer_arg *)arg)->idx;

	free(arg);
	pthread_mutex_lock(&p->lock);
	while (p->claimed < p->total && !p->stop && !p->err) {
		if (p->filled == p->claimed || p->hold) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		uint64_t at = p->claimed;
		size_t n = (size_t)MIN(p->filled - at, p->piece - at % p->piece);
		p->claimed += n;
		p->inflight[me] = at;
		pthread_mutex_unlock(&p->lock);
		int ret = pp_write_piece(p, me, at, n);
		pthread_mutex_lock(&p->lock);
		p->inflight[me] = UINT64_MAX;
		if (ret < 0) {
			if (!p->err)
				p->err = ret;
			break;
		}
		p->done += n;
		pp_update_written(p);
		pthread_cond_broadcast(&p->cond);
		if (p->release &&
		    (p->written - p->released >= PP_RELEASE_STEP || p->written == p->total)) {
			uint64_t from = p->released, to = p->written;
			p->released = to;
			pthread_mutex_unlock(&p->lock);
			pp_release(p, from, to);
			pthread_mutex_lock(&p->lock);
		}
	}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Waits until the ring has room for bytes up to end; returns the writer's error if any. */
static int pp_wait_room(struct page_pipe *p, uint64_t end)
{
	pthread_mutex_lock(&p->lock);
	while (end - p->written > p->cap && !p->err)
		pthread_cond_wait(&p->cond, &p->lock);
	int ret = p->err;
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static void pp_publish(struct page_pipe *p, uint64_t filled)
{
	pthread_mutex_lock(&p->lock);
	p->filled = filled;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Reads the remote ranges riov[0..nr) back to back into dst. */
static int pp_read_batch(struct page_pipe *p, uint8_t *dst, const struct iovec *riov, int nr,
			 size_t len)
{
	pid_t pid = p->c->pid;
	struct iovec local = {dst, len};

	if (process_vm_readv(pid, &local, 1, riov, (unsigned long)nr, 0) == (ssize_t)len)
		return 0;
	/* A range without PROT_READ (process_vm_readv honours protection) or one cut short:
	 * range by range, through /proc/PID/mem where the fast path cannot. */
	for (int i = 0; i < nr; i++) {
		struct iovec l = {dst, riov[i].iov_len};
		uint64_t va = (uint64_t)(uintptr_t)riov[i].iov_base;
		if (process_vm_readv(pid, &l, 1, &riov[i], 1, 0) != (ssize_t)riov[i].iov_len) {
			int ret = mem_read(p->c->memfd, va, dst, riov[i].iov_len);
			if (ret < 0) {
				cr_error("pid %d: reading memory at %#" PRIx64 ": %s", pid, va,
					 strerror(-ret));
				return ret;
			}
		}
		dst += riov[i].iov_len;
	}
	return 0;
}

struct page_plan {
	struct dump_ctx *c;
	uint64_t runs_cap;
};

static int add_run(struct page_plan *pl, uint64_t vaddr, uint64_t n, bool may_merge)
{
	struct cr_task *t = pl->c->t;

	if (may_merge && t->nr_runs) {
		struct cr_page_run *last = &t->runs[t->nr_runs - 1];
		if (last->vaddr + last->nr_pages * CR_PAGE_SIZE == vaddr) {
			last->nr_pages += n;
			t->pages_total += n;
			return 0;
		}
	}
	if (t->nr_runs == pl->runs_cap) {
		uint64_t ncap = pl->runs_cap ? pl->runs_cap * 2 : 256;
		struct cr_page_run *r = realloc(t->runs, ncap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		t->runs = r;
		pl->runs_cap = ncap;
	}
	t->runs[t->nr_runs++] = (struct cr_page_run){vaddr, n};
	t->pages_total += n;
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

static bool is_memfd_vma(const struct cr_vma *v)
{
	return v->kind == CR_VMA_SHMEM && v->path && !strncmp(v->path, "/memfd:", 7) && v->ino;
}

/*
 * A memfd mapped by several VMAs is one object again after restore (restore.c maps them all
 * from one new memfd), so each of its pages is saved once: with the first VMA, in address
 * order, that maps it. Clears pm[] entries of pages first_page.. of v that an earlier VMA of
 * the same memfd (device and inode) covers.
 */
static void skip_earlier_memfd_pages(const struct cr_task *t, const struct cr_vma *v,
				     uint64_t first_page, uint64_t n, uint64_t *pm)
{
	if (!is_memfd_vma(v))
		return;
	for (const struct cr_vma *u = t->vmas; u < v; u++) {
		if (!is_memfd_vma(u) || u->dev != v->dev || u->ino != v->ino)
			continue;
		uint64_t lo = u->pgoff, hi = u->pgoff + (u->end - u->start);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t off = v->pgoff + (first_page + i) * CR_PAGE_SIZE;
			if (off >= lo && off < hi)
				pm[i] = 0;
		}
	}
}

static int plan_vma_pages(struct page_plan *pl, int pmfd, const struct cr_vma *v,
			  enum save_policy pol)
{
	uint64_t pm[PM_BATCH] = {0};
	uint64_t npages = (v->end - v->start) / CR_PAGE_SIZE;
	bool first = true;
	pid_t pid = pl->c->pid;
	_cleanup_close_ int objfd = -1;

	if (v->kind == CR_VMA_SHMEM) {
		char mf[96];
		snprintf(mf, sizeof(mf), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start,
			 v->end);
		objfd = open(mf, O_RDONLY | O_CLOEXEC);
	}

	for (uint64_t base = 0; base < npages; base += PM_BATCH) {
		uint64_t n = MIN((uint64_t)PM_BATCH, npages - base);
		uint64_t va = v->start + base * CR_PAGE_SIZE;

		if (pol == SAVE_ALL) {
			shmem_data_pages(objfd, v->pgoff + base * CR_PAGE_SIZE, n, pm);
			skip_earlier_memfd_pages(pl->c->t, v, base, n, pm);
		} else {
			int ret = pread_full(pmfd, pm, n * 8, va / CR_PAGE_SIZE * 8);
			if (ret < 0) {
				cr_error("pid %d: reading pagemap at %#" PRIx64 ": %s", pid, va,
					 strerror(-ret));
				return ret == -EBADMSG ? -EIO : ret;
			}
		}
		for (uint64_t i = 0; i < n;) {
			uint64_t j = i;
			while (j < n) {
				uint64_t e = pm[j];
				bool save;
				if (pol == SAVE_PRIVATE)
					save = ((e & PM_PRESENT) && !(e & PM_FILE)) ||
					       (e & PM_SWAPPED);
				else
					save = e & (PM_PRESENT | PM_SWAPPED);
				if (!save)
					break;
				j++;
			}
			if (j > i) {
				int ret = add_run(pl, va + i * CR_PAGE_SIZE, j - i, !first);
				if (ret < 0)
					return ret;
				first = false;
				i = j;
			} else {
				i++;
			}
		}
	}
	return 0;
}

/* Fills t->runs: the populated pages to save, in VMA order. */
static int plan_pages(struct dump_ctx *c)
{
	char path[64];
	struct page_plan pl = {.c = c};

	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	_cleanup_close_ int pmfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pmfd < 0) {
		cr_error("pid %d: cannot open '%s': %s", c->pid, path, strerror(errno));
		return -errno;
	}
	for (uint32_t i = 0; i < c->t->nr_vmas; i++) {
		struct cr_vma *v = &c->t->vmas[i];
		enum save_policy pol = SAVE_NONE;

		if (v->kind == CR_VMA_ANON && v->path)
			pol = SAVE_ALL;
		else if (v->kind == CR_VMA_ANON)
			pol = SAVE_ANON;
		else if (v->kind == CR_VMA_SHMEM)
			pol = SAVE_ALL;
		else if (v->kind == CR_VMA_FILE && !(v->flags & CR_VMA_F_SHARED))
			pol = SAVE_PRIVATE;
		if (pol == SAVE_NONE)
			continue;
		int ret = plan_vma_pages(&pl, pmfd, v, pol);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Grows the ring to hold the whole dump if the bound allows; else it stays a ring. */
static int pp_size(struct page_pipe *p)
{
	uint64_t need = MIN(round_up(p->total, PP_CHUNK), p->bound);

	if (need > p->cap) {
		void *m = mremap(p->buf, p->cap, (size_t)need, MREMAP_MAYMOVE);
		if (m != MAP_FAILED) {
			p->buf = m;
			p->cap = (size_t)need;
		}
		/* Without it the smaller ring still works, only with a longer freeze. */
	}
	p->c->pages_spilled = p->total > p->cap;
	p->c->pages_buffer = p->cap;
	return 0;
}

int dump_mm_capture_pages(struct dump_ctx *c)
{
	struct page_pipe *p = c->pages;
	struct cr_task *t = c->t;
	struct iovec riov[PP_IOV_BATCH];
	int nr = 0, ret;

	assert(p);
	ret = plan_pages(c);
	if (ret < 0)
		return ret;
	p->total = t->pages_total * CR_PAGE_SIZE;
	ret = pp_size(p);
	if (ret < 0)
		return ret;
	p->sums = calloc(MAX(t->pages_total, 1), CR_SUMS_DIGEST_LEN);
	if (!p->sums)
		return -ENOMEM;
	ret = dump_runs_index(t->runs, t->nr_runs, &p->run_first);
	if (ret < 0)
		return ret;
	/* Against a parent, bigger pieces make longer spans, and each copy_file_range costs
	 * the ckptfs daemon ~0.2 ms plus ~0.1-0.5 ms per MiB, less per MiB in longer calls:
	 * a 1 GiB second dump into the mount took 0.99 s with 8 MiB pieces, 0.73 s with 64
	 * and 0.64 s with 256 (no parent: 1.04 s). Only where the buffer holds the whole dump:
	 * a ring would wrap inside a piece. */
	p->piece = c->parent && !c->pages_spilled ? PP_PARENT_PIECE : PP_CHUNK;
	for (unsigned int i = 0; c->parent && i < PP_WRITERS; i++) {
		p->match[i] = malloc(p->piece / CR_PAGE_SIZE * sizeof(*p->match[i]));
		if (!p->match[i])
			return -ENOMEM;
	}
	p->fd = openat(c->taskdirfd, "pages.img", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (p->fd < 0) {
		cr_error("creating 'task-%d/pages.img': %s", c->pid, strerror(errno));
		return -errno;
	}
	/* With --leave-running and a buffer that holds the whole dump, nothing but the capture
	 * runs while the target is frozen: the writers (hashing, matching, writing) start when
	 * it is released. That halves the freeze on two cores and costs little in all, the
	 * writers then having the machine. Otherwise they overlap the capture: a dump that
	 * kills keeps its target frozen until the image is durable anyway, and a ring needs
	 * them to make room. */
	p->hold = c->defer_writes && !c->pages_spilled;
	/* In the default mode the target stays frozen until the image is durable: the pages are
	 * freed after its kill, at exit, not while it waits. */
	p->release = p->hold;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->locks_ready = true;
	for (unsigned int i = 0; i < PP_WRITERS; i++) {
		struct pp_writer_arg *wa = malloc(sizeof(*wa));
		p->inflight[i] = UINT64_MAX;
		if (!wa)
			return -ENOMEM;
		*wa = (struct pp_writer_arg){p, i};
		ret = -pthread_create(&p->threads[p->nr_threads], NULL, pp_writer, wa);
		if (ret < 0) {
			free(wa);
			cr_error("pid %d: cannot start a page writer: %s", c->pid, strerror(-ret));
			return ret;
		}
		p->nr_threads++;
	}

	uint64_t pos = 0, batch_at = 0;
	for (uint64_t r = 0; r < t->nr_runs; r++) {
		uint64_t va = t->runs[r].vaddr, left = t->runs[r].nr_pages * CR_PAGE_SIZE;
		while (left) {
			if (pos % PP_CHUNK == 0) {
				ret = pp_wait_room(p, pos + PP_CHUNK);
				if (ret < 0)
					goto out_write_error;
			}
			size_t seg = (size_t)MIN(left, (uint64_t)(PP_CHUNK - pos % PP_CHUNK));
			riov[nr++] = (struct iovec){(void *)(uintptr_t)va, seg};
			pos += seg;
			va += seg;
			left -= seg;
			if (pos % PP_CHUNK == 0 || nr == PP_IOV_BATCH) {
				ret = pp_read_batch(p, p->buf + batch_at % p->cap, riov, nr,
						    (size_t)(pos - batch_at));
				if (ret < 0)
					return ret;
				nr = 0;
				batch_at = pos;
				if (pos % PP_CHUNK == 0)
					pp_publish(p, pos);
			}
		}
	}
	if (nr) {
		ret = pp_read_batch(p, p->buf + batch_at % p->cap, riov, nr,
				    (size_t)(pos - batch_at));
		if (ret < 0)
			return ret;
	}
	pthread_mutex_lock(&p->lock);
	p->hold = false;
	pthread_mutex_unlock(&p->lock);
	pp_publish(p, pos);
	return 0;

out_write_error:
	cr_error("writing 'task-%d/pages.img': %s", c->pid, strerror(-ret));
	return ret;
}

/* Stops the writers (at once if abort) and returns their error. */
static int pp_join(struct page_pipe *p, bool abort)
{
	if (!p->locks_ready)
		return 0;
	if (abort) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	for (unsigned int i = 0; i < p->nr_threads; i++)
		pthread_join(p->threads[i], NULL);
	p->nr_threads = 0;
	p->locks_ready = false;
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	return p->err;
}

/* task-PID/pages.sums, from the digests the writers left. */
static int pp_write_sums(struct dump_ctx *c, const struct page_pipe *p)
{
	uint8_t hdr[CR_SUMS_HDR_LEN];
	uint64_t nr = p->total / CR_PAGE_SIZE;
	int ret;

	cr_sums_encode_header(hdr, p->sums, nr);
	int fd = openat(c->taskdirfd, "pages.sums", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out_error;
	}
	ret = write_full(fd, hdr, sizeof(hdr));
	if (ret == 0)
		ret = write_full(fd, p->sums, (size_t)(nr * CR_SUMS_DIGEST_LEN));
	if (ret == 0 && !c->sync_by_seal && fsync(fd) < 0 && errno != EINVAL && errno != ENOTSUP)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret < 0)
		goto out_error;
	c->bytes_written += sizeof(hdr) + nr * CR_SUMS_DIGEST_LEN;
	return 0;

out_error:
	cr_error("writing 'task-%d/pages.sums': %s", c->pid, strerror(-ret));
	return ret;
}

int dump_mm_finish_pages(struct dump_ctx *c)
{
	struct page_pipe *p = c->pages;

	int ret = pp_join(p, false);
	if (ret < 0) {
		cr_error("writing 'task-%d/pages.img': %s", c->pid, strerror(-ret));
		return ret;
	}
	assert(p->done == p->total);
	c->bytes_written += p->done;
	c->pages_copied = p->copied;
	if (p->copy_err)
		snprintf(c->copy_note, sizeof(c->copy_note),
			 "copying pages from the parent stopped (%s); the rest were written",
			 p->copy_err < 0 ? "its pages.img is shorter than it was"
					 : strerror(p->copy_err));
	if (!c->sync_by_seal && fsync(p->fd) < 0 && errno != EINVAL && errno != ENOTSUP) {
		cr_error("fsync of 'task-%d/pages.img': %s", c->pid, strerror(errno));
		return -errno;
	}
	/* A ckptfs mount nearly out of space reports a failed flush at close. */
	ret = close(TAKE_FD(p->fd)) < 0 ? -errno : 0;
	if (ret < 0) {
		cr_error("closing 'task-%d/pages.img': %s", c->pid, strerror(-ret));
		return ret;
	}
	return pp_write_sums(c, p);
}

void dump_mm_free_pages(struct dump_ctx *c)
{
	struct page_pipe *p = c->pages;

	if (!p)
		return;
	pp_join(p, true);
	if (p->fd >= 0)
		close(p->fd);
	if (p->buf)
		munmap(p->buf, p->cap);
	free(p->sums);
	free(p->run_first);
	for (unsigned int i = 0; i < PP_WRITERS; i++)
		free(p->match[i]);
	free(p);
	c->pages = NULL;
}
