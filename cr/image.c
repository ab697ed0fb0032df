// SPDX-License-Identifier: MIT
/* image.c - encoder and untrusting decoder of the checkpoint image files (see image.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "cr/error.h"
#include "cr/image.h"

/* Header-only use of libxxhash: the parser is also built alone (fuzz target, unit tests). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define HDR_SIZE 16
#define MAX_STR	 4096u
/* Every file ends with this record (u32 count of records before it, u32 zero), so a file cut
 * at a record boundary is still detected as truncated. */
#define REC_END 0x454e4421u

enum {
	REC_INV = 1,
	REC_INV_PARENT = 2, /* optional */
	REC_CORE_TASK = 1,
	REC_CORE_REGS = 2,
	REC_CORE_XSTATE = 3,
	REC_CORE_SIGNALS = 4,
	REC_CORE_THREAD = 5,
	REC_CORE_RLIMITS = 6,
	REC_CORE_CREDS = 7,
	REC_CORE_PATHS = 8,
	REC_CORE_SIGINFO = 9,
	REC_CORE_SCHED = 10,
	REC_CORE_CAPS = 11,
	REC_MM_FIELDS = 1,
	REC_MM_AUXV = 2,
	REC_MM_EXE = 3,
	REC_MM_VMA = 4,
	REC_MM_VMA_SEALS = 5, /* optional, follows the REC_MM_VMA of a memfd mapping */
	REC_MM_VMA_MADV = 6,  /* optional, follows a REC_MM_VMA (and its REC_MM_VMA_SEALS) */
	REC_PM_RUN = 1,
	REC_FD = 1,
	REC_FD_FUSE = 2,	/* follows the REC_FD of a CR_FD_FUSE fd */
	REC_FD_MEMFD = 3,	/* follows the REC_FD of a CR_FD_MEMFD fd */
	REC_FD_MEMFD_SEALS = 4, /* optional, follows a REC_FD_MEMFD */
};

/* ---- encoding ---- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	size_t rec_start;
	uint32_t nr_recs;
	int err;
};

static void wb_reserve(struct wbuf *b, size_t n)
{
	size_t need;

	if (b->err)
		return;
	if (__builtin_add_overflow(b->len, n, &need)) {
		b->err = -EOVERFLOW;
		return;
	}
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap *= 2;
	uint8_t *np = realloc(b->p, cap);
	if (!np) {
		b->err = -ENOMEM;
		return;
	}
	b->p = np;
	b->cap = cap;
}

static void wb_bytes(struct wbuf *b, const void *p, size_t n)
{
	wb_reserve(b, n);
	if (b->err)
		return;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void wb_u32(struct wbuf *b, uint32_t v)
{
	uint8_t x[4];
	le32_put(x, v);
	wb_bytes(b, x, 4);
}

static void wb_u64(struct wbuf *b, uint64_t v)
{
	uint8_t x[8];
	le64_put(x, v);
	wb_bytes(b, x, 8);
}

static void wb_str(struct wbuf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n > MAX_STR) {
		b->err = -ENAMETOOLONG;
		return;
	}
	wb_u32(b, (uint32_t)n);
	wb_bytes(b, s, n);
}

static void wb_header(struct wbuf *b, enum cr_file_kind kind)
{
	wb_bytes(b, CR_IMG_MAGIC, 8); /* includes the NUL */
	wb_u32(b, CR_IMG_VERSION);
	wb_u32(b, (uint32_t)kind);
}

static void rec_begin(struct wbuf *b, uint32_t type)
{
	b->nr_recs++;
	wb_u32(b, type);
	b->rec_start = b->len;
	wb_u32(b, 0);
}

static void rec_end(struct wbuf *b)
{
	static const uint8_t zero[8];

	if (b->err)
		return;
	size_t plen = b->len - b->rec_start - 4;
	if (plen > UINT32_MAX) {
		b->err = -EOVERFLOW;
		return;
	}
	le32_put(b->p + b->rec_start, (uint32_t)plen);
	wb_bytes(b, zero, (8 - (b->len % 8)) % 8);
}

static void enc_core(struct wbuf *b, const struct cr_task *t)
{
	rec_begin(b, REC_CORE_TASK);
	wb_u32(b, t->pid);
	wb_u32(b, t->ppid);
	wb_u32(b, t->pgid);
	wb_u32(b, t->sid);
	wb_u32(b, t->personality);
	wb_u32(b, t->umask);
	wb_bytes(b, t->comm, sizeof(t->comm));
	rec_end(b);

	rec_begin(b, REC_CORE_REGS);
	for (int i = 0; i < CR_NREGS; i++)
		wb_u64(b, t->regs[i]);
	rec_end(b);

	rec_begin(b, REC_CORE_XSTATE);
	wb_bytes(b, t->xstate, t->xstate_len);
	rec_end(b);

	rec_begin(b, REC_CORE_SIGNALS);
	wb_u64(b, t->sigmask);
	for (int i = 0; i < CR_NSIG; i++) {
		wb_u64(b, t->sigactions[i].handler);
		wb_u64(b, t->sigactions[i].flags);
		wb_u64(b, t->sigactions[i].restorer);
		wb_u64(b, t->sigactions[i].mask);
	}
	wb_u64(b, t->altstack_sp);
	wb_u64(b, t->altstack_size);
	wb_u32(b, t->altstack_flags);
	wb_u32(b, 0);
	rec_end(b);

	rec_begin(b, REC_CORE_THREAD);
	wb_u64(b, t->rseq_addr);
	wb_u32(b, t->rseq_len);
	wb_u32(b, t->rseq_sig);
	wb_u64(b, t->robust_head);
	wb_u64(b, t->robust_len);
	wb_u64(b, t->clear_child_tid);
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 4; j++)
			wb_u64(b, t->itimers[i][j]);
	rec_end(b);

	rec_begin(b, REC_CORE_RLIMITS);
	for (int i = 0; i < CR_NRLIMITS; i++) {
		wb_u64(b, t->rlimits[i][0]);
		wb_u64(b, t->rlimits[i][1]);
	}
	rec_end(b);

	rec_begin(b, REC_CORE_CREDS);
	for (int i = 0; i < 4; i++)
		wb_u32(b, t->uids[i]);
	for (int i = 0; i < 4; i++)
		wb_u32(b, t->gids[i]);
	wb_u32(b, t->nr_groups);
	wb_u32(b, 0);
	for (uint32_t i = 0; i < t->nr_groups; i++)
		wb_u32(b, t->groups[i]);
	rec_end(b);

	rec_begin(b, REC_CORE_PATHS);
	wb_str(b, t->cwd);
	wb_str(b, t->root);
	rec_end(b);

	rec_begin(b, REC_CORE_SCHED);
	wb_u32(b, (uint32_t)t->nice);
	wb_u32(b, t->no_new_privs);
	wb_u64(b, t->timer_slack_ns);
	rec_end(b);

	if (t->has_caps) {
		rec_begin(b, REC_CORE_CAPS);
		wb_u64(b, t->cap_inh);
		wb_u64(b, t->cap_prm);
		wb_u64(b, t->cap_eff);
		wb_u64(b, t->cap_bnd);
		wb_u64(b, t->cap_amb);
		wb_u32(b, t->securebits);
		wb_u32(b, t->dumpable);
		wb_u32(b, t->pdeathsig);
		wb_u32(b, t->child_subreaper);
		wb_u32(b, t->thp_disable);
		wb_u32(b, 0);
		rec_end(b);
	}

	for (uint32_t i = 0; i < t->nr_siginfos; i++) {
		rec_begin(b, REC_CORE_SIGINFO);
		wb_u32(b, t->siginfos[i].shared);
		wb_u32(b, 0);
		wb_bytes(b, t->siginfos[i].info, sizeof(t->siginfos[i].info));
		rec_end(b);
	}
}

static void enc_mm(struct wbuf *b, const struct cr_task *t)
{
	const struct cr_mm *m = &t->mm;

	rec_begin(b, REC_MM_FIELDS);
	wb_u64(b, m->start_code);
	wb_u64(b, m->end_code);
	wb_u64(b, m->start_data);
	wb_u64(b, m->end_data);
	wb_u64(b, m->start_brk);
	wb_u64(b, m->brk);
	wb_u64(b, m->start_stack);
	wb_u64(b, m->arg_start);
	wb_u64(b, m->arg_end);
	wb_u64(b, m->env_start);
	wb_u64(b, m->env_end);
	rec_end(b);

	rec_begin(b, REC_MM_AUXV);
	wb_bytes(b, t->auxv, t->auxv_len);
	rec_end(b);

	rec_begin(b, REC_MM_EXE);
	wb_str(b, t->exe);
	rec_end(b);

	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		rec_begin(b, REC_MM_VMA);
		wb_u64(b, v->start);
		wb_u64(b, v->end);
		wb_u64(b, v->pgoff);
		wb_u32(b, v->prot);
		wb_u32(b, v->flags);
		wb_u32(b, v->kind);
		wb_u32(b, 0);
		wb_u64(b, v->dev);
		wb_u64(b, v->ino);
		wb_u64(b, v->size);
		wb_u64(b, v->mtime_ns);
		wb_u64(b, v->content_hash);
		wb_str(b, v->path);
		rec_end(b);
		if (v->has_seals) {
			rec_begin(b, REC_MM_VMA_SEALS);
			wb_u32(b, v->seals);
			wb_u32(b, v->mode);
			rec_end(b);
		}
		/* Only when set: images of ordinary processes do not grow, and readers that
		 * predate the record still read them. */
		if (v->madv) {
			rec_begin(b, REC_MM_VMA_MADV);
			wb_u32(b, v->madv);
			wb_u32(b, 0);
			rec_end(b);
		}
	}
}

static void enc_pagemap(struct wbuf *b, const struct cr_task *t)
{
	for (uint64_t i = 0; i < t->nr_runs; i++) {
		rec_begin(b, REC_PM_RUN);
		wb_u64(b, t->runs[i].vaddr);
		wb_u64(b, t->runs[i].nr_pages);
		rec_end(b);
	}
}

static void enc_fds(struct wbuf *b, const struct cr_task *t)
{
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *f = &t->fds[i];
		rec_begin(b, REC_FD);
		wb_u32(b, (uint32_t)f->fd);
		wb_u32(b, f->kind);
		wb_u32(b, f->flags);
		wb_u32(b, f->cloexec);
		wb_u32(b, f->mode);
		wb_u32(b, (uint32_t)f->dup_of);
		wb_u64(b, f->pos);
		wb_u64(b, f->pipe_id);
		wb_u64(b, f->pipe_size);
		wb_u64(b, f->data_len);
		wb_str(b, f->path);
		wb_str(b, f->data);
		rec_end(b);
		if (f->kind == CR_FD_FUSE) {
			rec_begin(b, REC_FD_FUSE);
			wb_u32(b, f->fuse_conn);
			wb_u32(b, f->fuse_keeper_pid);
			wb_bytes(b, f->fuse_keeper_id, sizeof(f->fuse_keeper_id));
			wb_str(b, f->fuse_mnt);
			wb_str(b, f->fuse_fstype);
			rec_end(b);
		}
		if (f->kind == CR_FD_MEMFD) {
			rec_begin(b, REC_FD_MEMFD);
			wb_u64(b, f->memfd_dev);
			wb_u64(b, f->memfd_ino);
			rec_end(b);
			if (f->memfd_has_seals) {
				rec_begin(b, REC_FD_MEMFD_SEALS);
				wb_u32(b, f->memfd_seals);
				wb_u32(b, 0);
				rec_end(b);
			}
		}
	}
}

int cr_image_encode(const struct cr_image *img, const struct cr_task *t, enum cr_file_kind kind,
		    uint8_t **ret_buf, size_t *ret_len)
{
	struct wbuf b = {0};

	if (!t && kind != CR_FILE_INVENTORY)
		return -EINVAL;
	wb_header(&b, kind);
	switch (kind) {
	case CR_FILE_INVENTORY:
		rec_begin(&b, REC_INV);
		wb_u32(&b, img->root_pid);
		wb_u32(&b, img->nr_tasks);
		for (uint32_t i = 0; i < img->nr_tasks; i++)
			wb_u32(&b, img->tasks[i].pid);
		rec_end(&b);
		if (img->parent) {
			rec_begin(&b, REC_INV_PARENT);
			wb_str(&b, img->parent);
			rec_end(&b);
		}
		break;
	case CR_FILE_CORE:
		enc_core(&b, t);
		break;
	case CR_FILE_MM:
		enc_mm(&b, t);
		break;
	case CR_FILE_PAGEMAP:
		enc_pagemap(&b, t);
		break;
	case CR_FILE_FDS:
		enc_fds(&b, t);
		break;
	default:
		b.err = -EINVAL;
	}
	uint32_t n = b.nr_recs;
	rec_begin(&b, REC_END);
	wb_u32(&b, n);
	wb_u32(&b, 0);
	rec_end(&b);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*ret_buf = b.p;
	*ret_len = b.len;
	return 0;
}

/* ---- decoding ---- */

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	size_t base; /* offset of p within the file, for messages */
	const char *name;
	int err;
};

static int rb_fail(struct rbuf *r, const char *what)
{
	if (!r->err) {
		cr_error("image '%s': %s at offset %zu", r->name, what, r->base + r->off);
		r->err = -EBADMSG;
	}
	return r->err;
}

static const uint8_t *rb_take(struct rbuf *r, size_t n)
{
	if (r->err)
		return NULL;
	if (n > r->len - r->off) {
		rb_fail(r, "truncated field");
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

static uint32_t rb_u32(struct rbuf *r)
{
	const uint8_t *p = rb_take(r, 4);
	return p ? le32_get(p) : 0;
}

static uint64_t rb_u64(struct rbuf *r)
{
	const uint8_t *p = rb_take(r, 8);
	return p ? le64_get(p) : 0;
}

static void rb_bytes(struct rbuf *r, void *dst, size_t n)
{
	const uint8_t *p = rb_take(r, n);
	if (p)
		memcpy(dst, p, n);
}

/* Strings: u32 length + bytes, no NUL inside; an empty string decodes as NULL. */
static char *rb_str(struct rbuf *r)
{
	uint32_t n = rb_u32(r);
	if (r->err)
		return NULL;
	if (n > MAX_STR) {
		rb_fail(r, "string too long");
		return NULL;
	}
	const uint8_t *p = rb_take(r, n);
	if (!p || n == 0)
		return NULL;
	if (memchr(p, 0, n)) {
		rb_fail(r, "NUL inside string");
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		r->err = -ENOMEM;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

/* A record payload must be consumed exactly. */
static void rb_end(struct rbuf *r)
{
	if (!r->err && r->off != r->len)
		rb_fail(r, "record longer than its fields");
}

static int grow(void **arr, uint64_t *cap, uint64_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	uint64_t ncap = *cap ? *cap * 2 : 16, bytes;
	if (mul_overflows_u64(ncap, elem, &bytes) || bytes > SIZE_MAX)
		return -ENOMEM;
	void *p = realloc(*arr, (size_t)bytes);
	if (!p)
		return -ENOMEM;
	memset((char *)p + *cap * elem, 0, (size_t)(ncap - *cap) * elem);
	*arr = p;
	*cap = ncap;
	return 0;
}

#define SEEN(bit)                                                                                  \
	do {                                                                                       \
		if (seen & (1u << (bit)))                                                          \
			return rb_fail(r, "duplicate record");                                     \
		seen |= 1u << (bit);                                                               \
	} while (0)

struct dec_state {
	uint32_t seen;
	uint64_t cap_a, cap_b;
};

static int dec_core_rec(struct cr_task *t, uint32_t type, struct rbuf *r, struct dec_state *st)
{
	uint32_t seen = st->seen;

	switch (type) {
	case REC_CORE_TASK:
		SEEN(type);
		t->pid = rb_u32(r);
		t->ppid = rb_u32(r);
		t->pgid = rb_u32(r);
		t->sid = rb_u32(r);
		t->personality = rb_u32(r);
		t->umask = rb_u32(r);
		rb_bytes(r, t->comm, sizeof(t->comm));
		t->comm[sizeof(t->comm) - 1] = 0;
		break;
	case REC_CORE_REGS:
		SEEN(type);
		for (int i = 0; i < CR_NREGS; i++)
			t->regs[i] = rb_u64(r);
		break;
	case REC_CORE_XSTATE:
		SEEN(type);
		if (r->len > CR_MAX_XSTATE || r->len < 576)
			return rb_fail(r, "xstate size out of range");
		t->xstate = malloc(r->len);
		if (!t->xstate)
			return -ENOMEM;
		t->xstate_len = (uint32_t)r->len;
		rb_bytes(r, t->xstate, r->len);
		break;
	case REC_CORE_SIGNALS:
		SEEN(type);
		t->sigmask = rb_u64(r);
		for (int i = 0; i < CR_NSIG; i++) {
			t->sigactions[i].handler = rb_u64(r);
			t->sigactions[i].flags = rb_u64(r);
			t->sigactions[i].restorer = rb_u64(r);
			t->sigactions[i].mask = rb_u64(r);
		}
		t->altstack_sp = rb_u64(r);
		t->altstack_size = rb_u64(r);
		t->altstack_flags = rb_u32(r);
		rb_u32(r);
		break;
	case REC_CORE_THREAD:
		SEEN(type);
		t->rseq_addr = rb_u64(r);
		t->rseq_len = rb_u32(r);
		t->rseq_sig = rb_u32(r);
		t->robust_head = rb_u64(r);
		t->robust_len = rb_u64(r);
		t->clear_child_tid = rb_u64(r);
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 4; j++)
				t->itimers[i][j] = rb_u64(r);
		break;
	case REC_CORE_RLIMITS:
		SEEN(type);
		for (int i = 0; i < CR_NRLIMITS; i++) {
			t->rlimits[i][0] = rb_u64(r);
			t->rlimits[i][1] = rb_u64(r);
		}
		break;
	case REC_CORE_CREDS:
		SEEN(type);
		for (int i = 0; i < 4; i++)
			t->uids[i] = rb_u32(r);
		for (int i = 0; i < 4; i++)
			t->gids[i] = rb_u32(r);
		t->nr_groups = rb_u32(r);
		rb_u32(r);
		if (r->err)
			break;
		if (t->nr_groups > CR_MAX_GROUPS || (uint64_t)t->nr_groups * 4 != r->len - r->off)
			return rb_fail(r, "bad group count");
		t->groups = calloc(t->nr_groups ? t->nr_groups : 1, sizeof(uint32_t));
		if (!t->groups)
			return -ENOMEM;
		for (uint32_t i = 0; i < t->nr_groups; i++)
			t->groups[i] = rb_u32(r);
		break;
	case REC_CORE_PATHS:
		SEEN(type);
		t->cwd = rb_str(r);
		t->root = rb_str(r);
		break;
	case REC_CORE_SIGINFO: {
		uint64_t n = t->nr_siginfos;
		if (n >= 4096)
			return rb_fail(r, "too many pending signals");
		if (grow((void **)&t->siginfos, &st->cap_a, n, sizeof(*t->siginfos)) < 0)
			return -ENOMEM;
		t->siginfos[n].shared = rb_u32(r);
		rb_u32(r);
		rb_bytes(r, t->siginfos[n].info, sizeof(t->siginfos[n].info));
		t->nr_siginfos++;
		break;
	}
	case REC_CORE_SCHED:
		SEEN(type);
		t->nice = (int32_t)rb_u32(r);
		t->no_new_privs = rb_u32(r);
		t->timer_slack_ns = rb_u64(r);
		if (!r->err && (t->nice < -20 || t->nice > 19 || t->no_new_privs > 1))
			return rb_fail(r, "nice or no_new_privs out of range");
		break;
	case REC_CORE_CAPS:
		SEEN(type);
		t->has_caps = 1;
		t->cap_inh = rb_u64(r);
		t->cap_prm = rb_u64(r);
		t->cap_eff = rb_u64(r);
		t->cap_bnd = rb_u64(r);
		t->cap_amb = rb_u64(r);
		t->securebits = rb_u32(r);
		t->dumpable = rb_u32(r);
		t->pdeathsig = rb_u32(r);
		t->child_subreaper = rb_u32(r);
		t->thp_disable = rb_u32(r);
		if (rb_u32(r) != 0 && !r->err)
			return rb_fail(r, "non-zero reserved field");
		if (r->err)
			break;
		/* What the kernel guarantees of a live task; restore relies on it. */
		if ((t->cap_eff & ~t->cap_prm) || (t->cap_amb & ~(t->cap_prm & t->cap_inh)))
			return rb_fail(r, "capability sets inconsistent with each other");
		if (t->securebits & ~CR_SECUREBITS_KNOWN)
			return rb_fail(r, "unknown securebits");
		if (t->dumpable > 2 || t->pdeathsig > CR_NSIG || t->child_subreaper > 1 ||
		    t->thp_disable > 3)
			return rb_fail(r, "dumpable, pdeathsig, subreaper or THP out of range");
		break;
	default:
		return rb_fail(r, "unknown record type");
	}
	st->seen = seen;
	return 0;
}

static int dec_mm_rec(struct cr_task *t, uint32_t type, struct rbuf *r, struct dec_state *st)
{
	uint32_t seen = st->seen;
	struct cr_mm *m = &t->mm;

	switch (type) {
	case REC_MM_FIELDS:
		SEEN(type);
		m->start_code = rb_u64(r);
		m->end_code = rb_u64(r);
		m->start_data = rb_u64(r);
		m->end_data = rb_u64(r);
		m->start_brk = rb_u64(r);
		m->brk = rb_u64(r);
		m->start_stack = rb_u64(r);
		m->arg_start = rb_u64(r);
		m->arg_end = rb_u64(r);
		m->env_start = rb_u64(r);
		m->env_end = rb_u64(r);
		break;
	case REC_MM_AUXV:
		SEEN(type);
		if (r->len > CR_MAX_AUXV || r->len % 16)
			return rb_fail(r, "auxv size out of range");
		t->auxv = malloc(r->len ? r->len : 1);
		if (!t->auxv)
			return -ENOMEM;
		t->auxv_len = (uint32_t)r->len;
		rb_bytes(r, t->auxv, r->len);
		break;
	case REC_MM_EXE:
		SEEN(type);
		t->exe = rb_str(r);
		break;
	case REC_MM_VMA: {
		uint64_t n = t->nr_vmas;
		if (n >= 1u << 20)
			return rb_fail(r, "too many VMAs");
		if (grow((void **)&t->vmas, &st->cap_a, n, sizeof(*t->vmas)) < 0)
			return -ENOMEM;
		struct cr_vma *v = &t->vmas[n];
		t->nr_vmas++;
		v->start = rb_u64(r);
		v->end = rb_u64(r);
		v->pgoff = rb_u64(r);
		v->prot = rb_u32(r);
		v->flags = rb_u32(r);
		v->kind = rb_u32(r);
		rb_u32(r);
		v->dev = rb_u64(r);
		v->ino = rb_u64(r);
		v->size = rb_u64(r);
		v->mtime_ns = rb_u64(r);
		v->content_hash = rb_u64(r);
		v->path = rb_str(r);
		break;
	}
	case REC_MM_VMA_SEALS: {
		struct cr_vma *v = t->nr_vmas ? &t->vmas[t->nr_vmas - 1] : NULL;
		if (!v || v->kind != CR_VMA_SHMEM || !v->path || strncmp(v->path, "/memfd:", 7) ||
		    v->has_seals)
			return rb_fail(r, "seals record without its memfd mapping record");
		v->seals = rb_u32(r);
		v->mode = rb_u32(r);
		if (!r->err && ((v->seals & ~CR_SEALS_KNOWN) || (v->mode & ~07777u)))
			return rb_fail(r, "unknown memfd seal or mode bits");
		v->has_seals = true;
		break;
	}
	case REC_MM_VMA_MADV: {
		struct cr_vma *v = t->nr_vmas ? &t->vmas[t->nr_vmas - 1] : NULL;
		if (!v || v->kind >= CR_VMA_VVAR)
			return rb_fail(r, "madvise flags record without its mapping record");
		if (v->madv)
			return rb_fail(r, "a second madvise flags record for one mapping");
		uint32_t madv = rb_u32(r);
		uint32_t zero = rb_u32(r);
		if (r->err)
			break;
		if (!madv || (madv & ~CR_VMA_MADV_KNOWN) || zero)
			return rb_fail(r, "empty or unknown madvise flag bits");
		/* Combinations the kernel never shows: restore could not rebuild them. */
		if (((madv & CR_VMA_MADV_LOCKONFAULT) && !(madv & CR_VMA_MADV_LOCKED)) ||
		    ((madv & CR_VMA_MADV_HUGEPAGE) && (madv & CR_VMA_MADV_NOHUGEPAGE)) ||
		    ((madv & CR_VMA_MADV_WIPEONFORK) &&
		     (v->kind != CR_VMA_ANON || (v->flags & CR_VMA_F_SHARED))))
			return rb_fail(r, "impossible combination of madvise flags");
		v->madv = madv;
		break;
	}
	default:
		return rb_fail(r, "unknown record type");
	}
	st->seen = seen;
	return 0;
}

static int dec_pagemap_rec(struct cr_task *t, uint32_t type, struct rbuf *r, struct dec_state *st)
{
	if (type != REC_PM_RUN)
		return rb_fail(r, "unknown record type");
	uint64_t n = t->nr_runs;
	if (grow((void **)&t->runs, &st->cap_a, n, sizeof(*t->runs)) < 0)
		return -ENOMEM;
	t->runs[n].vaddr = rb_u64(r);
	t->runs[n].nr_pages = rb_u64(r);
	if (r->err)
		return r->err;
	if (t->runs[n].nr_pages == 0 ||
	    add_overflows_u64(t->pages_total, t->runs[n].nr_pages, &t->pages_total))
		return rb_fail(r, "bad page count");
	t->nr_runs++;
	return 0;
}

static int dec_fds_rec(struct cr_task *t, uint32_t type, struct rbuf *r, struct dec_state *st)
{
	if (type == REC_FD_FUSE) {
		struct cr_fd *f = t->nr_fds ? &t->fds[t->nr_fds - 1] : NULL;
		if (!f || f->kind != CR_FD_FUSE || f->fuse_conn)
			return rb_fail(r, "fuse record without its fd record");
		f->fuse_conn = rb_u32(r);
		f->fuse_keeper_pid = rb_u32(r);
		rb_bytes(r, f->fuse_keeper_id, sizeof(f->fuse_keeper_id));
		f->fuse_mnt = rb_str(r);
		f->fuse_fstype = rb_str(r);
		rb_end(r);
		if (!r->err && !f->fuse_conn)
			return rb_fail(r, "fuse record with connection 0");
		return r->err;
	}
	if (type == REC_FD_MEMFD) {
		struct cr_fd *f = t->nr_fds ? &t->fds[t->nr_fds - 1] : NULL;
		if (!f || f->kind != CR_FD_MEMFD || f->memfd_ino)
			return rb_fail(r, "memfd record without its fd record");
		f->memfd_dev = rb_u64(r);
		f->memfd_ino = rb_u64(r);
		rb_end(r);
		if (!r->err && !f->memfd_ino)
			return rb_fail(r, "memfd record with inode 0");
		return r->err;
	}
	if (type == REC_FD_MEMFD_SEALS) {
		struct cr_fd *f = t->nr_fds ? &t->fds[t->nr_fds - 1] : NULL;
		if (!f || f->kind != CR_FD_MEMFD || !f->memfd_ino || f->memfd_has_seals)
			return rb_fail(r, "seals record without its memfd record");
		f->memfd_seals = rb_u32(r);
		uint32_t zero = rb_u32(r);
		rb_end(r);
		if (!r->err && ((f->memfd_seals & ~CR_SEALS_KNOWN) || zero))
			return rb_fail(r, "unknown memfd seal bits");
		f->memfd_has_seals = true;
		return r->err;
	}
	if (type != REC_FD)
		return rb_fail(r, "unknown record type");
	uint64_t n = t->nr_fds;
	if (n >= 1u << 20)
		return rb_fail(r, "too many fds");
	if (grow((void **)&t->fds, &st->cap_a, n, sizeof(*t->fds)) < 0)
		return -ENOMEM;
	struct cr_fd *f = &t->fds[n];
	t->nr_fds++;
	f->fd = (int32_t)rb_u32(r);
	f->kind = rb_u32(r);
	f->flags = rb_u32(r);
	f->cloexec = rb_u32(r);
	f->mode = rb_u32(r);
	f->dup_of = (int32_t)rb_u32(r);
	f->pos = rb_u64(r);
	f->pipe_id = rb_u64(r);
	f->pipe_size = rb_u64(r);
	f->data_len = rb_u64(r);
	f->path = rb_str(r);
	f->data = rb_str(r);
	return r->err;
}

static int dec_inventory_rec(struct cr_image *img, uint32_t type, struct rbuf *r,
			     struct dec_state *st)
{
	uint32_t seen = st->seen;

	if (type == REC_INV_PARENT) {
		SEEN(type);
		img->parent = rb_str(r);
		if (!r->err && !img->parent)
			return rb_fail(r, "empty parent path");
		st->seen = seen;
		return r->err;
	}
	if (type != REC_INV)
		return rb_fail(r, "unknown record type");
	SEEN(type);
	img->root_pid = rb_u32(r);
	uint32_t n = rb_u32(r);
	if (r->err)
		return r->err;
	if (n == 0 || n > 1 || (uint64_t)n * 4 != r->len - r->off)
		return rb_fail(r, "bad task count (this build restores exactly one task)");
	for (uint32_t i = 0; i < n; i++) {
		struct cr_task *t = cr_image_add_task(img, rb_u32(r));
		if (!t)
			return -ENOMEM;
	}
	st->seen = seen;
	return 0;
}

int cr_image_decode(struct cr_image *img, struct cr_task *t, enum cr_file_kind kind,
		    const uint8_t *buf, size_t len, const char *name)
{
	struct rbuf r = {.p = buf, .len = len, .name = name};
	struct dec_state st = {0};
	uint32_t required = 0, nr_recs = 0;
	bool ended = false;
	char magic[8];

	rb_bytes(&r, magic, 8);
	uint32_t version = rb_u32(&r);
	uint32_t fkind = rb_u32(&r);
	if (r.err)
		return r.err;
	if (memcmp(magic, CR_IMG_MAGIC, 8) != 0)
		return rb_fail(&r, "bad magic");
	if (version != CR_IMG_VERSION) {
		cr_error("image '%s': format version %u, this build reads version %u", name,
			 version, CR_IMG_VERSION);
		return -EOPNOTSUPP;
	}
	if (fkind != (uint32_t)kind)
		return rb_fail(&r, "file kind does not match its name");
	if (img)
		img->version = version;

	while (r.off < r.len) {
		size_t at = r.off;
		uint32_t type = rb_u32(&r);
		uint32_t plen = rb_u32(&r);
		if (r.err)
			return r.err;
		if (plen > r.len - r.off)
			return rb_fail(&r, "record length past end of file");
		struct rbuf sub = {
			.p = r.p + r.off, .len = plen, .base = r.base + r.off, .name = name};
		int ret;
		if (ended)
			return rb_fail(&r, "record after the end record");
		if (type == REC_END) {
			uint32_t n = rb_u32(&sub);
			rb_u32(&sub);
			rb_end(&sub);
			if (sub.err)
				return sub.err;
			if (n != nr_recs)
				return rb_fail(&sub,
					       "end record counts a different number of records");
			ended = true;
			r.off += plen;
			continue;
		}
		nr_recs++;
		switch (kind) {
		case CR_FILE_INVENTORY:
			ret = dec_inventory_rec(img, type, &sub, &st);
			break;
		case CR_FILE_CORE:
			ret = dec_core_rec(t, type, &sub, &st);
			break;
		case CR_FILE_MM:
			ret = dec_mm_rec(t, type, &sub, &st);
			break;
		case CR_FILE_PAGEMAP:
			ret = dec_pagemap_rec(t, type, &sub, &st);
			break;
		case CR_FILE_FDS:
			ret = dec_fds_rec(t, type, &sub, &st);
			break;
		default:
			return -EINVAL;
		}
		if (ret < 0)
			return ret;
		rb_end(&sub);
		if (sub.err)
			return sub.err;
		size_t pad = (8 - ((r.off + plen) % 8)) % 8;
		r.off += plen;
		if (pad > r.len - r.off)
			return rb_fail(&r, "record padding past end of file");
		for (size_t i = 0; i < pad; i++)
			if (r.p[r.off + i])
				return rb_fail(&r, "non-zero record padding");
		r.off += pad;
		(void)at;
	}

	if (!ended)
		return rb_fail(&r, "file truncated (no end record)");
	switch (kind) {
	case CR_FILE_INVENTORY:
		required = 1u << REC_INV;
		break;
	case CR_FILE_CORE:
		required = (1u << REC_CORE_TASK) | (1u << REC_CORE_REGS) | (1u << REC_CORE_XSTATE) |
			   (1u << REC_CORE_SIGNALS) | (1u << REC_CORE_THREAD) |
			   (1u << REC_CORE_RLIMITS) | (1u << REC_CORE_CREDS) |
			   (1u << REC_CORE_PATHS);
		break;
	case CR_FILE_MM:
		required = (1u << REC_MM_FIELDS) | (1u << REC_MM_AUXV) | (1u << REC_MM_EXE);
		break;
	default:
		break;
	}
	if ((st.seen & required) != required)
		return rb_fail(&r, "required record missing");
	return 0;
}

/* ---- validation ---- */

static bool page_aligned(uint64_t v)
{
	return (v & (CR_PAGE_SIZE - 1)) == 0;
}

static bool safe_data_name(const char *s)
{
	return s && s[0] && s[0] != '.' && !strchr(s, '/');
}

int cr_image_validate_task(const struct cr_task *t, uint64_t pages_len)
{
	uint64_t prev_end = 0;

	for (uint32_t i = 0; i < t->nr_vmas; i++) {
		const struct cr_vma *v = &t->vmas[i];
		if (!page_aligned(v->start) || !page_aligned(v->end) || !page_aligned(v->pgoff) ||
		    v->start >= v->end || v->end > CR_TASK_SIZE || v->start < prev_end) {
			cr_error("task %u: VMA %u (%#llx-%#llx) misaligned, empty or overlapping",
				 t->pid, i, (unsigned long long)v->start,
				 (unsigned long long)v->end);
			return -EBADMSG;
		}
		if (v->kind < CR_VMA_ANON || v->kind > CR_VMA_VDSO || (v->prot & ~7u) ||
		    (v->flags & ~3u) ||
		    (v->kind == CR_VMA_FILE && (!v->path || v->path[0] != '/'))) {
			cr_error("task %u: VMA %u has a bad kind, protection, flags or path",
				 t->pid, i);
			return -EBADMSG;
		}
		prev_end = v->end;
	}

	/* Runs are sorted, inside one VMA each, and not of special mappings. */
	uint32_t vi = 0;
	uint64_t prev = 0, total = 0;
	for (uint64_t i = 0; i < t->nr_runs; i++) {
		const struct cr_page_run *pr = &t->runs[i];
		uint64_t len, end;
		if (!page_aligned(pr->vaddr) || pr->vaddr < prev ||
		    mul_overflows_u64(pr->nr_pages, CR_PAGE_SIZE, &len) ||
		    add_overflows_u64(pr->vaddr, len, &end)) {
			cr_error("task %u: page run %llu unaligned, unsorted or overflowing",
				 t->pid, (unsigned long long)i);
			return -EBADMSG;
		}
		while (vi < t->nr_vmas && t->vmas[vi].end <= pr->vaddr)
			vi++;
		if (vi == t->nr_vmas || t->vmas[vi].start > pr->vaddr || end > t->vmas[vi].end ||
		    t->vmas[vi].kind >= CR_VMA_VVAR) {
			cr_error("task %u: page run at %#llx is outside every saveable VMA", t->pid,
				 (unsigned long long)pr->vaddr);
			return -EBADMSG;
		}
		prev = end;
		total += pr->nr_pages;
	}
	if (pages_len != UINT64_MAX) {
		uint64_t want;
		if (mul_overflows_u64(total, CR_PAGE_SIZE, &want) || want != pages_len) {
			cr_error("task %u: pages.img holds %llu bytes, page runs need %llu pages",
				 t->pid, (unsigned long long)pages_len, (unsigned long long)total);
			return -EBADMSG;
		}
	}

	for (uint32_t i = 0; i < t->nr_fds; i++) {
		const struct cr_fd *f = &t->fds[i];
		if (f->fd < 0 || f->fd >= (1 << 20) || f->kind < CR_FD_REG ||
		    f->kind > CR_FD_MEMFD) {
			cr_error("task %u: fd record %u has a bad number or kind", t->pid, i);
			return -EBADMSG;
		}
		bool dup_ok = f->dup_of == -1;
		for (uint32_t j = 0; j < i; j++) {
			if (t->fds[j].fd >= f->fd) {
				cr_error("task %u: fd %d recorded twice or out of order", t->pid,
					 f->fd);
				return -EBADMSG;
			}
			if (t->fds[j].fd == f->dup_of && t->fds[j].kind == f->kind &&
			    t->fds[j].dup_of == -1)
				dup_ok = true;
		}
		if (!dup_ok) {
			cr_error("task %u: fd %d shares a file with a bad fd %d", t->pid, f->fd,
				 f->dup_of);
			return -EBADMSG;
		}
		bool need_path = f->kind != CR_FD_PIPE && f->kind != CR_FD_UNLINKED;
		bool need_data = f->kind == CR_FD_UNLINKED || f->kind == CR_FD_MEMFD;
		if ((need_path && (!f->path || f->path[0] != '/')) ||
		    (f->kind == CR_FD_MEMFD && strncmp(f->path, "/memfd:", 7) != 0) ||
		    (f->data && !safe_data_name(f->data)) ||
		    (need_data && !f->data && f->dup_of == -1) || f->pipe_size > (1u << 30) ||
		    f->data_len > (1ULL << 40) ||
		    ((f->kind == CR_FD_PIPE || f->kind == CR_FD_FIFO) &&
		     f->data_len > f->pipe_size)) {
			cr_error("task %u: fd %d has a bad path, data name or size", t->pid, f->fd);
			return -EBADMSG;
		}
		if ((f->kind == CR_FD_FUSE) != (f->fuse_conn != 0) ||
		    (f->kind == CR_FD_FUSE && (!f->fuse_mnt || f->fuse_mnt[0] != '/'))) {
			cr_error("task %u: fd %d has a missing or stray FUSE connection record",
				 t->pid, f->fd);
			return -EBADMSG;
		}
		if ((f->kind == CR_FD_MEMFD) != (f->memfd_ino != 0)) {
			cr_error("task %u: fd %d has a missing or stray memfd record", t->pid,
				 f->fd);
			return -EBADMSG;
		}
		/* One memfd has one set of seals, whichever fd or mapping recorded them. */
		for (uint32_t j = 0; f->kind == CR_FD_MEMFD && j < t->nr_vmas; j++) {
			const struct cr_vma *v = &t->vmas[j];
			if (v->has_seals && v->dev == f->memfd_dev && v->ino == f->memfd_ino &&
			    (!f->memfd_has_seals || v->seals != f->memfd_seals)) {
				cr_error(
					"task %u: fd %d and the mapping at %#llx are one memfd but "
					"disagree on its seals",
					t->pid, f->fd, (unsigned long long)v->start);
				return -EBADMSG;
			}
		}
	}
	for (uint32_t i = 0; i < t->nr_siginfos; i++) {
		int32_t signo = (int32_t)le32_get(t->siginfos[i].info);
		if (signo < 1 || signo > CR_NSIG || t->siginfos[i].shared > 1) {
			cr_error("task %u: pending signal %u has a bad number", t->pid, i);
			return -EBADMSG;
		}
	}
	if (t->xstate_len == 0 || !t->comm[0] || t->pid < 1 || t->pid > (1u << 22) ||
	    t->mm.start_code > t->mm.end_code || t->mm.start_brk > t->mm.brk ||
	    t->mm.arg_start > t->mm.arg_end || t->mm.env_start > t->mm.env_end ||
	    (t->cwd && t->cwd[0] != '/') || (t->root && t->root[0] != '/') ||
	    (t->exe && t->exe[0] != '/')) {
		cr_error("task %u: core or mm fields out of range", t->pid);
		return -EBADMSG;
	}
	return 0;
}

/* ---- model ---- */

struct cr_image *cr_image_new(void)
{
	struct cr_image *img = calloc(1, sizeof(*img));
	if (img)
		img->version = CR_IMG_VERSION;
	return img;
}

struct cr_task *cr_image_add_task(struct cr_image *img, uint32_t pid)
{
	struct cr_task *n = realloc(img->tasks, (img->nr_tasks + 1) * sizeof(*n));
	if (!n)
		return NULL;
	img->tasks = n;
	struct cr_task *t = &n[img->nr_tasks++];
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	return t;
}

static void task_free(struct cr_task *t)
{
	free(t->xstate);
	free(t->groups);
	free(t->cwd);
	free(t->root);
	free(t->exe);
	free(t->siginfos);
	free(t->auxv);
	for (uint32_t i = 0; i < t->nr_vmas; i++)
		free(t->vmas[i].path);
	free(t->vmas);
	free(t->runs);
	for (uint32_t i = 0; i < t->nr_fds; i++) {
		free(t->fds[i].path);
		free(t->fds[i].data);
		free(t->fds[i].fuse_mnt);
		free(t->fds[i].fuse_fstype);
	}
	free(t->fds);
}

void cr_image_free(struct cr_image *img)
{
	if (!img)
		return;
	for (uint32_t i = 0; i < img->nr_tasks; i++)
		task_free(&img->tasks[i]);
	free(img->tasks);
	free(img->parent);
	free(img);
}

/* ---- files ---- */

static const char *file_name(enum cr_file_kind kind)
{
	switch (kind) {
	case CR_FILE_INVENTORY:
		return "inventory.img";
	case CR_FILE_CORE:
		return "core.img";
	case CR_FILE_MM:
		return "mm.img";
	case CR_FILE_PAGEMAP:
		return "pagemap.img";
	case CR_FILE_FDS:
		return "fds.img";
	}
	return "?";
}

static int write_file_at(int dirfd, const char *name, const uint8_t *buf, size_t len, bool sync,
			 uint64_t *bytes_written)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int ret = write_full(fd, buf, len);
	if (ret == 0 && sync && fsync(fd) < 0 && errno != EINVAL && errno != ENOTSUP)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && bytes_written)
		*bytes_written += len;
	return ret;
}

int cr_image_write_task(int dirfd, const struct cr_image *img, const struct cr_task *t,
			uint64_t *bytes_written)
{
	static const enum cr_file_kind kinds[] = {CR_FILE_CORE, CR_FILE_MM, CR_FILE_PAGEMAP,
						  CR_FILE_FDS};
	char path[64];

	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		_cleanup_free_ uint8_t *buf = NULL;
		size_t len;
		int ret = cr_image_encode(img, t, kinds[i], &buf, &len);
		if (ret < 0)
			return ret;
		snprintf(path, sizeof(path), "task-%u/%s", t->pid, file_name(kinds[i]));
		ret = write_file_at(dirfd, path, buf, len, !img->sync_by_seal, bytes_written);
		if (ret < 0) {
			cr_error("writing '%s': %s", path, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int cr_image_write_inventory(int dirfd, const struct cr_image *img, uint64_t *bytes_written)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int ret = cr_image_encode(img, NULL, CR_FILE_INVENTORY, &buf, &len);
	if (ret < 0)
		return ret;
	return write_file_at(dirfd, "inventory.img", buf, len, !img->sync_by_seal, bytes_written);
}

/* Metadata files are small; anything over 256 MiB is not ours. */
#define MAX_META (256u << 20)

static int load_file(int dirfd, const char *dir, const char *name, struct cr_image *img,
		     struct cr_task *t, enum cr_file_kind kind)
{
	char label[PATH_MAX];
	struct stat st;

	snprintf(label, sizeof(label), "%s/%s", dir, name);
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int ret = -errno;
		if (ret == -ENOENT && kind == CR_FILE_INVENTORY)
			cr_error("'%s' holds no complete checkpoint image (no inventory.img)", dir);
		else
			cr_error("image '%s': %s", label, strerror(errno));
		return ret == -ENOENT && kind == CR_FILE_INVENTORY ? -ENOENT
		       : ret == -ENOENT				   ? -EBADMSG
								   : ret;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_META) {
		cr_error("image '%s': not a regular file or larger than %u bytes", label, MAX_META);
		return -EBADMSG;
	}
	_cleanup_free_ uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		return -ENOMEM;
	int ret = pread_full(fd, buf, (size_t)st.st_size, 0);
	if (ret < 0)
		return ret;
	return cr_image_decode(img, t, kind, buf, (size_t)st.st_size, label);
}

int cr_image_load(const char *dir, struct cr_image **ret)
{
	static const enum cr_file_kind kinds[] = {CR_FILE_CORE, CR_FILE_MM, CR_FILE_PAGEMAP,
						  CR_FILE_FDS};
	struct cr_image *img = cr_image_new();
	char path[PATH_MAX];
	int r;

	if (!img)
		return -ENOMEM;
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		r = -errno;
		cr_error("cannot open image directory '%s': %s", dir, strerror(-r));
		goto fail;
	}
	r = load_file(dirfd, dir, "inventory.img", img, NULL, CR_FILE_INVENTORY);
	if (r < 0)
		goto fail;
	for (uint32_t i = 0; i < img->nr_tasks; i++) {
		struct cr_task *t = &img->tasks[i];
		uint32_t want_pid = t->pid;
		struct stat st;
		for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
			snprintf(path, sizeof(path), "task-%u/%s", want_pid, file_name(kinds[k]));
			r = load_file(dirfd, dir, path, img, t, kinds[k]);
			if (r < 0)
				goto fail;
		}
		if (t->pid != want_pid) {
			cr_error("image '%s': task-%u/core.img describes pid %u", dir, want_pid,
				 t->pid);
			r = -EBADMSG;
			goto fail;
		}
		snprintf(path, sizeof(path), "task-%u/pages.img", want_pid);
		if (fstatat(dirfd, path, &st, 0) < 0) {
			cr_error("image '%s/%s': %s", dir, path, strerror(errno));
			r = -EBADMSG;
			goto fail;
		}
		r = cr_image_validate_task(t, (uint64_t)st.st_size);
		if (r < 0)
			goto fail;
	}
	*ret = img;
	return 0;
fail:
	cr_image_free(img);
	return r;
}

const char *cr_vma_kind_name(uint32_t kind)
{
	switch (kind) {
	case CR_VMA_ANON:
		return "anon";
	case CR_VMA_FILE:
		return "file";
	case CR_VMA_SHMEM:
		return "shmem";
	case CR_VMA_VVAR:
		return "vvar";
	case CR_VMA_VVAR_VCLOCK:
		return "vvar_vclock";
	case CR_VMA_VDSO:
		return "vdso";
	}
	return "unknown";
}

const char *cr_fd_kind_name(uint32_t kind)
{
	switch (kind) {
	case CR_FD_REG:
		return "file";
	case CR_FD_UNLINKED:
		return "unlinked-file";
	case CR_FD_DIR:
		return "dir";
	case CR_FD_PIPE:
		return "pipe";
	case CR_FD_CHR:
		return "chardev";
	case CR_FD_TTY:
		return "tty";
	case CR_FD_FIFO:
		return "fifo";
	case CR_FD_FUSE:
		return "fuse";
	case CR_FD_MEMFD:
		return "memfd";
	}
	return "unknown";
}

const char *cr_vma_madv_name(unsigned int b)
{
	static const char *const names[] = {"dontfork",	  "wipeonfork", "dontdump", "hugepage",
					    "nohugepage", "mergeable",	"locked",   "lockonfault"};

	return b < sizeof(names) / sizeof(names[0]) ? names[b] : "unknown";
}

uint64_t cr_hash_bytes(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* ---- pages.sums ---- */

void cr_sums_digest(const void *page, uint8_t ret_digest[CR_SUMS_DIGEST_LEN])
{
	XXH128_hash_t h = XXH3_128bits(page, CR_PAGE_SIZE);

	le64_put(ret_digest, h.low64);
	le64_put(ret_digest + 8, h.high64);
}

void cr_sums_encode_header(uint8_t hdr[CR_SUMS_HDR_LEN], const uint8_t *digests, uint64_t nr)
{
	memset(hdr, 0, CR_SUMS_HDR_LEN);
	memcpy(hdr, CR_SUMS_MAGIC, 8);
	le32_put(hdr + 8, CR_SUMS_VERSION);
	le32_put(hdr + 12, CR_SUMS_ALGO_XXH3);
	le32_put(hdr + 16, (uint32_t)CR_PAGE_SIZE);
	le64_put(hdr + 24, nr);
	le64_put(hdr + 32, XXH3_64bits(digests, (size_t)nr * CR_SUMS_DIGEST_LEN));
	le64_put(hdr + 40, XXH3_64bits(hdr, 40));
}

int cr_sums_decode(const uint8_t *buf, size_t len, const char *name, uint64_t *ret_nr,
		   const uint8_t **ret_digests)
{
	uint64_t nr, bytes, want;

	if (len < CR_SUMS_HDR_LEN || memcmp(buf, CR_SUMS_MAGIC, 8) != 0) {
		cr_error("page digests '%s': not a pages.sums file (%zu bytes)", name, len);
		return -EBADMSG;
	}
	/* The header checksum first: a flipped version byte is damage, not a new format. */
	if (le64_get(buf + 40) != XXH3_64bits(buf, 40)) {
		cr_error("page digests '%s': header checksum mismatch", name);
		return -EBADMSG;
	}
	if (le32_get(buf + 8) != CR_SUMS_VERSION || le32_get(buf + 12) != CR_SUMS_ALGO_XXH3) {
		cr_error("page digests '%s': version %u algorithm %u, this build reads version %u "
			 "algorithm %u (XXH3-128)",
			 name, le32_get(buf + 8), le32_get(buf + 12), CR_SUMS_VERSION,
			 CR_SUMS_ALGO_XXH3);
		return -EOPNOTSUPP;
	}
	nr = le64_get(buf + 24);
	if (le32_get(buf + 16) != CR_PAGE_SIZE || le32_get(buf + 20) != 0 ||
	    mul_overflows_u64(nr, CR_SUMS_DIGEST_LEN, &bytes) ||
	    add_overflows_u64(bytes, CR_SUMS_HDR_LEN, &want) || want != len) {
		cr_error("page digests '%s': header says %llu pages, file has %zu bytes", name,
			 (unsigned long long)nr, len);
		return -EBADMSG;
	}
	if (le64_get(buf + 32) != XXH3_64bits(buf + CR_SUMS_HDR_LEN, (size_t)bytes)) {
		cr_error("page digests '%s': digest checksum mismatch", name);
		return -EBADMSG;
	}
	*ret_nr = nr;
	*ret_digests = buf + CR_SUMS_HDR_LEN;
	return 0;
}
