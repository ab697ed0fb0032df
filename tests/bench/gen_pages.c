// SPDX-License-Identifier: MIT
/*
 * gen_pages - synthetic checkpoint page images for the store benchmark (store_bench.sh).
 *
 * Owns: nothing persistent. Writes page-image files whose 4 KiB pages look like the memory of a
 * real process (pointer-heavy heap pages, string pages, small-int arrays, zero pages, a few
 * high-entropy pages), derives generation k from generation k-1 by dirtying a few percent of the
 * pages in clustered runs, and computes the size an ideal page store would need for a set of
 * files: the distinct non-zero 4 KiB pages, each compressed on its own with zstd level 1.
 * Everything is deterministic from --seed, so two runs produce the same bytes.
 *
 * Single-threaded; built by store_bench.sh with plain `cc -O2`, not by meson.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>
#include <zstd.h>

#include "common/util.h"

#define PAGE_SIZE  4096u
#define PAGE_WORDS (PAGE_SIZE / 8u)
#define IO_PAGES   256u /* 1 MiB per read/write call */
#define MAX_GROUPS 8u

/* --- deterministic randomness ------------------------------------------------------------- */

struct rng {
	uint64_t state;
};

/* splitmix64: tiny, fast, and good enough to make pages distinct and look random where asked. */
static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	r->state = seed * 0x2545f4914f6cdd1dULL + stream;
	(void)rng_next(r);
}

/* --- page contents ------------------------------------------------------------------------ */

enum page_kind {
	PAGE_ZERO,
	PAGE_POINTER,
	PAGE_TEXT,
	PAGE_INTS,
	PAGE_RANDOM,
	PAGE_KIND_MAX,
};

/* Share of each kind in percent: about a quarter of a real dump is zero pages, pointer-rich heap
 * dominates the rest, a few pages are compressed or encrypted data that zstd cannot shrink. */
static const unsigned kind_weight[PAGE_KIND_MAX] = {
	[PAGE_ZERO] = 25, [PAGE_POINTER] = 30, [PAGE_TEXT] = 18,
	[PAGE_INTS] = 20, [PAGE_RANDOM] = 7,
};

static const char *const kind_name[PAGE_KIND_MAX] = {
	[PAGE_ZERO] = "zero", [PAGE_POINTER] = "pointer", [PAGE_TEXT] = "text",
	[PAGE_INTS] = "ints", [PAGE_RANDOM] = "random",
};

static const char *const words[] = {
	"the",	    "of",      "and",	  "to",	     "in",	"is",	    "for",     "that",
	"with",	    "on",      "as",	  "by",	     "this",	"from",	    "are",     "not",
	"error",    "warning", "info",	  "debug",   "request", "response", "session", "user",
	"id",	    "name",    "value",	  "key",     "type",	"length",   "size",    "count",
	"buffer",   "socket",  "connect", "timeout", "retry",	"config",   "default", "path",
	"/usr",	    "/lib",    "/etc",	  "/var",    "/tmp",	"/home",    "x86_64",  "linux-gnu",
	"libc",	    "so.6",    "python3", "module",  "import",	"object",   "class",   "method",
	"self",	    "return",  "None",	  "True",    "False",	"dict",	    "list",    "str",
	"int",	    "float",   "bytes",	  "encode",  "decode",	"utf-8",    "ascii",   "json",
	"http",	    "https",   "GET",	  "POST",    "Host",	"Content",  "Accept",  "Cookie",
	"HTTP/1.1", "200",     "404",	  "500",     "OK",	"Not",	    "Found",   "Server",
	"redis",    "cache",   "hit",	  "miss",    "expire",	"ttl",	    "set",     "get",
	"malloc",   "free",    "realloc", "mmap",    "munmap",	"brk",	    "page",    "heap",
	"stack",    "thread",  "mutex",	  "lock",    "unlock",	"wait",	    "signal",  "pid",
	"LANG",	    "en_US",   "PATH",	  "HOME",    "SHELL",	"TERM",	    "xterm",   "bash",
	"main",	    "init",    "start",	  "stop",    "run",	"exit",	    "status",  "done",
};

static const char word_sep[] = {' ', ' ', ' ', '\0', '\n', '/', '_', '.', ',', '='};

/* Per-file address-space layout: where the heap, the mmap area and the stack live. */
struct layout {
	uint64_t base[6];
};

static void layout_init(struct layout *l, struct rng *r)
{
	l->base[0] = 0x555555554000ULL + (rng_below(r, 1u << 20) << 12); /* program + brk heap */
	l->base[1] = l->base[0] + 0x21000ULL;
	l->base[2] = 0x7f0000000000ULL + (rng_below(r, 1u << 24) << 12); /* mmap'd arenas, libs */
	l->base[3] = l->base[2] + 0x1000000ULL;
	l->base[4] = 0x7ff000000000ULL + (rng_below(r, 1u << 20) << 12); /* stack */
	l->base[5] = 0x7f0000000000ULL + (rng_below(r, 1u << 24) << 12);
}

/* How much of a page is filled before the zero tail: most pages are full, some half-used. */
static size_t page_fill(struct rng *r)
{
	if (rng_below(r, 100) < 70)
		return PAGE_SIZE;
	return (size_t)(256 + rng_below(r, PAGE_SIZE - 256)) & ~(size_t)7;
}

static uint64_t pointer_word(struct rng *r, const struct layout *l, const unsigned *bases)
{
	unsigned pick = (unsigned)rng_below(r, 100);

	if (pick < 55)
		/* 8-aligned pointers into a 2 MiB window above one of the page's bases */
		return l->base[bases[rng_below(r, 3)]] + (rng_below(r, 1u << 18) << 3);
	if (pick < 75)
		return rng_below(r, 256);
	if (pick < 90)
		return 0;
	/* malloc-style chunk headers: a size in 16-byte units with the in-use bit */
	return ((rng_below(r, 64) + 2) << 4) | 1;
}

static void fill_pointer(uint8_t *page, struct rng *r, const struct layout *l)
{
	unsigned bases[3];
	size_t fill = page_fill(r);

	for (unsigned i = 0; i < 3; i++)
		bases[i] = (unsigned)rng_below(r, ARRAY_SIZE(l->base));
	for (size_t off = 0; off < fill; off += 8)
		le64_put(page + off, pointer_word(r, l, bases));
}

static void fill_text(uint8_t *page, struct rng *r)
{
	size_t fill = page_fill(r);
	size_t off = 0;

	while (off < fill) {
		/* skewed towards the start of the table, as word frequencies are */
		uint64_t a = rng_below(r, ARRAY_SIZE(words)), b = rng_below(r, ARRAY_SIZE(words));
		const char *w = words[MIN(a, b)];
		size_t n = MIN(strlen(w), fill - off);

		memcpy(page + off, w, n);
		off += n;
		if (off < fill)
			page[off++] = (uint8_t)word_sep[rng_below(r, sizeof(word_sep))];
	}
}

static void fill_ints(uint8_t *page, struct rng *r)
{
	size_t fill = page_fill(r);
	unsigned mode = (unsigned)rng_below(r, 3);
	uint32_t v = (uint32_t)rng_below(r, 100000), stride = (uint32_t)rng_below(r, 64) + 1;

	for (size_t off = 0; off < fill; off += 4) {
		uint32_t x;

		switch (mode) {
		case 0: /* counters, offsets, indices: increasing with a little noise */
			v += stride;
			x = v + (uint32_t)rng_below(r, 4);
			break;
		case 1: /* small values: flags, lengths, enum fields */
			x = (uint32_t)rng_below(r, 1000);
			break;
		default: /* sparse: mostly zero with the odd set field */
			x = rng_below(r, 4) ? 0 : (uint32_t)rng_below(r, 65536);
			break;
		}
		le32_put(page + off, x);
	}
}

static void fill_random(uint8_t *page, struct rng *r)
{
	for (size_t off = 0; off < PAGE_SIZE; off += 8)
		le64_put(page + off, rng_next(r));
}

static void page_fill_kind(uint8_t *page, enum page_kind kind, struct rng *r,
			   const struct layout *l)
{
	memset(page, 0, PAGE_SIZE);
	switch (kind) {
	case PAGE_POINTER:
		fill_pointer(page, r, l);
		break;
	case PAGE_TEXT:
		fill_text(page, r);
		break;
	case PAGE_INTS:
		fill_ints(page, r);
		break;
	case PAGE_RANDOM:
		fill_random(page, r);
		break;
	default:
		break;
	}
}

static enum page_kind kind_pick(struct rng *r)
{
	unsigned x = (unsigned)rng_below(r, 100);

	for (unsigned k = 0; k < PAGE_KIND_MAX; k++) {
		if (x < kind_weight[k])
			return (enum page_kind)k;
		x -= kind_weight[k];
	}
	return PAGE_POINTER;
}

static bool page_is_zero(const uint8_t *page)
{
	for (size_t off = 0; off < PAGE_SIZE; off += 8)
		if (le64_get(page + off))
			return false;
	return true;
}

/* --- file helpers ------------------------------------------------------------------------- */

/* Returns the fd to write OUT to ("-" is stdout) or -errno. */
static int open_out(const char *path)
{
	int fd;

	if (!strcmp(path, "-"))
		return STDOUT_FILENO;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

/* Reads up to len bytes, short only at end of file. Returns the count or -errno. */
static ssize_t read_upto(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int parse_u64(const char *s, const char *what, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-') {
		fprintf(stderr, "gen_pages: bad %s '%s'\n", what, s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* --- gen: generation 1 ------------------------------------------------------------------- */

static int cmd_gen(uint64_t seed, uint64_t size_mib, const char *out)
{
	_cleanup_free_ uint8_t *buf = malloc((size_t)IO_PAGES * PAGE_SIZE);
	_cleanup_close_ int fd_owned = -1;
	uint64_t npages, counts[PAGE_KIND_MAX] = {0}, run_left = 0;
	enum page_kind kind = PAGE_ZERO;
	struct layout layout;
	struct rng r;
	int fd, ret;

	if (!buf)
		return -ENOMEM;
	if (mul_overflows_u64(size_mib, 256, &npages))
		return -EOVERFLOW;
	fd = open_out(out);
	if (fd < 0) {
		fprintf(stderr, "gen_pages: cannot create '%s': %s\n", out, strerror(-fd));
		return fd;
	}
	if (fd != STDOUT_FILENO)
		fd_owned = fd;
	rng_seed(&r, seed, 1);
	layout_init(&layout, &r);

	for (uint64_t p = 0; p < npages;) {
		unsigned n = (unsigned)MIN((uint64_t)IO_PAGES, npages - p);

		for (unsigned i = 0; i < n; i++) {
			/* memory comes in regions: a run of heap pages, a zeroed arena, a stack */
			if (run_left == 0) {
				kind = kind_pick(&r);
				run_left = 1 + rng_below(&r, 48);
			}
			run_left--;
			page_fill_kind(buf + (size_t)i * PAGE_SIZE, kind, &r, &layout);
			counts[kind]++;
		}
		ret = write_full(fd, buf, (size_t)n * PAGE_SIZE);
		if (ret < 0) {
			fprintf(stderr, "gen_pages: writing '%s': %s\n", out, strerror(-ret));
			return ret;
		}
		p += n;
	}
	fprintf(stderr, "gen_pages: '%s': %" PRIu64 " pages", out, npages);
	for (unsigned k = 0; k < PAGE_KIND_MAX; k++)
		fprintf(stderr, " %s=%" PRIu64, kind_name[k], counts[k]);
	fputc('\n', stderr);
	return 0;
}

/* --- mutate: generation k from k-1 ------------------------------------------------------- */

/* Dirties one page the way a running program does: mostly a few fields rewritten in place,
 * sometimes the whole page reused for something else (or freed and zeroed). Always changes it. */
static void page_dirty(uint8_t *page, struct rng *r, const struct layout *l)
{
	static const unsigned bases[3] = {0, 2, 4};
	uint64_t pick = rng_below(r, 100);
	uint8_t before[PAGE_SIZE];

	memcpy(before, page, PAGE_SIZE);

	if (pick < 60) {
		uint64_t nwords = 1 + rng_below(r, 32);

		for (uint64_t i = 0; i < nwords; i++) {
			size_t off = (size_t)rng_below(r, PAGE_WORDS) * 8;

			le64_put(page + off, rng_below(r, 2) ? pointer_word(r, l, bases)
							     : rng_below(r, 100000));
		}
	} else if (pick < 95) {
		enum page_kind kind;

		do {
			kind = kind_pick(r);
		} while (kind == PAGE_ZERO);
		page_fill_kind(page, kind, r, l);
	} else if (!page_is_zero(page)) {
		memset(page, 0, PAGE_SIZE);
	}
	/* a zero page picked for zeroing, or a rewrite that lands on the old bytes: a dirtied page
	 * must still differ, or the generation has fewer new pages than asked for */
	if (!memcmp(before, page, PAGE_SIZE))
		le64_put(page, le64_get(page) ^ ((rng_next(r) | 1) & 0xffff));
}

static int cmd_mutate(uint64_t seed, uint64_t percent_x100, const char *in, const char *out)
{
	_cleanup_free_ uint8_t *buf = malloc((size_t)IO_PAGES * PAGE_SIZE);
	_cleanup_free_ uint8_t *dirty = NULL;
	_cleanup_close_ int in_fd = -1, fd_owned = -1;
	uint64_t npages, target, ndirty = 0, runs = 0;
	struct layout layout;
	struct stat st;
	struct rng r;
	int fd, ret;

	if (!buf)
		return -ENOMEM;
	in_fd = open(in, O_RDONLY | O_CLOEXEC);
	if (in_fd < 0 || fstat(in_fd, &st) < 0) {
		ret = -errno;
		fprintf(stderr, "gen_pages: cannot open '%s': %s\n", in, strerror(errno));
		return ret;
	}
	if (st.st_size % PAGE_SIZE) {
		fprintf(stderr, "gen_pages: '%s' is not a whole number of 4 KiB pages\n", in);
		return -EINVAL;
	}
	npages = (uint64_t)st.st_size / PAGE_SIZE;
	dirty = calloc(npages / 8 + 1, 1);
	if (!dirty)
		return -ENOMEM;
	rng_seed(&r, seed, 2);
	layout_init(&layout, &r);

	/* Pick the dirty set first, in runs: writes cluster (an arena, a buffer, a stack top). */
	target = (npages * percent_x100 + 9999) / 10000;
	while (ndirty < target) {
		uint64_t start = rng_below(&r, npages);
		uint64_t len = rng_below(&r, 4) ? 1 + rng_below(&r, 8) : 8 + rng_below(&r, 56);

		runs++;
		for (uint64_t p = start; p < npages && p < start + len && ndirty < target; p++) {
			if (dirty[p / 8] & (1u << (p % 8)))
				continue;
			dirty[p / 8] |= (uint8_t)(1u << (p % 8));
			ndirty++;
		}
	}

	fd = open_out(out);
	if (fd < 0) {
		fprintf(stderr, "gen_pages: cannot create '%s': %s\n", out, strerror(-fd));
		return fd;
	}
	if (fd != STDOUT_FILENO)
		fd_owned = fd;
	for (uint64_t p = 0; p < npages;) {
		unsigned n = (unsigned)MIN((uint64_t)IO_PAGES, npages - p);
		ssize_t got = read_upto(in_fd, buf, (size_t)n * PAGE_SIZE);

		if (got < 0 || (size_t)got != (size_t)n * PAGE_SIZE) {
			fprintf(stderr, "gen_pages: reading '%s': %s\n", in,
				got < 0 ? strerror((int)-got) : "file shrank while reading");
			return got < 0 ? (int)got : -EIO;
		}
		for (unsigned i = 0; i < n; i++)
			if (dirty[(p + i) / 8] & (1u << ((p + i) % 8)))
				page_dirty(buf + (size_t)i * PAGE_SIZE, &r, &layout);
		ret = write_full(fd, buf, (size_t)n * PAGE_SIZE);
		if (ret < 0) {
			fprintf(stderr, "gen_pages: writing '%s': %s\n", out, strerror(-ret));
			return ret;
		}
		p += n;
	}
	fprintf(stderr,
		"gen_pages: '%s': %" PRIu64 " of %" PRIu64 " pages dirtied in %" PRIu64 " runs\n",
		out, ndirty, npages, runs);
	return 0;
}

/* --- ideal size and the compression-block experiment -------------------------------------- */

/* Open-addressing set of 128-bit page hashes; 0/0 marks an empty slot. */
struct page_set {
	XXH128_hash_t *slot;
	uint64_t cap, used;
};

static int page_set_grow(struct page_set *s)
{
	uint64_t ncap = s->cap ? s->cap * 2 : 1u << 16;
	XXH128_hash_t *n = calloc(ncap, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (uint64_t i = 0; i < s->cap; i++) {
		XXH128_hash_t h = s->slot[i];
		uint64_t j;

		if (!h.low64 && !h.high64)
			continue;
		for (j = h.low64 & (ncap - 1); n[j].low64 || n[j].high64; j = (j + 1) & (ncap - 1))
			;
		n[j] = h;
	}
	free(s->slot);
	s->slot = n;
	s->cap = ncap;
	return 0;
}

/* Returns 1 if h was new (and is now in the set), 0 if already present, or -errno. */
static int page_set_add(struct page_set *s, XXH128_hash_t h)
{
	uint64_t j;

	if (!h.low64 && !h.high64)
		h.low64 = 1; /* keep the empty marker free; a 2^-128 alias is irrelevant here */
	if ((s->used + 1) * 4 > s->cap * 3) {
		int ret = page_set_grow(s);
		if (ret < 0)
			return ret;
	}
	for (j = h.low64 & (s->cap - 1); s->slot[j].low64 || s->slot[j].high64;
	     j = (j + 1) & (s->cap - 1))
		if (XXH128_isEqual(s->slot[j], h))
			return 0;
	s->slot[j] = h;
	s->used++;
	return 1;
}

/* One compression-block size under test: distinct pages are appended in first-seen order and
 * compressed together once `group` of them are buffered. */
struct group_acc {
	unsigned group;
	uint8_t *buf;
	unsigned filled;
	uint64_t nblocks, bytes, bytes_tuned, ns_comp, ns_decomp;
};

struct ideal {
	struct page_set set;
	ZSTD_CCtx *cctx;
	ZSTD_CCtx *tuned; /* level 1 with a fixed hash table size, whatever the input size */
	ZSTD_DCtx *dctx;
	uint8_t *cbuf, *dbuf;
	size_t cbuf_size;
	uint64_t pages, zero_pages, distinct, zstd_bytes, capped_bytes;
	struct group_acc acc[MAX_GROUPS];
	unsigned nacc;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int compress_block(struct ideal *id, const void *src, size_t len, size_t *ret_size)
{
	size_t n = ZSTD_compressCCtx(id->cctx, id->cbuf, id->cbuf_size, src, len, 1);

	if (ZSTD_isError(n)) {
		fprintf(stderr, "gen_pages: zstd: %s\n", ZSTD_getErrorName(n));
		return -EBADMSG;
	}
	*ret_size = n;
	return 0;
}

static int group_flush(struct ideal *id, struct group_acc *a)
{
	size_t len = (size_t)a->filled * PAGE_SIZE, csize, dsize, csize_tuned;
	uint64_t t0, t1, t2;
	int ret;

	if (!a->filled)
		return 0;
	t0 = now_ns();
	ret = compress_block(id, a->buf, len, &csize);
	if (ret < 0)
		return ret;
	t1 = now_ns();
	/* a reader of one page pays for decompressing its whole block */
	dsize = ZSTD_decompressDCtx(id->dctx, id->dbuf, len, id->cbuf, csize);
	t2 = now_ns();
	if (ZSTD_isError(dsize) || dsize != len || memcmp(id->dbuf, a->buf, len)) {
		fprintf(stderr, "gen_pages: zstd round trip of a %u-page block failed\n", a->group);
		return -EBADMSG;
	}
	/* zstd picks smaller tables for inputs over 16 KiB at level 1; see how much that costs */
	csize_tuned = ZSTD_compress2(id->tuned, id->cbuf, id->cbuf_size, a->buf, len);
	if (ZSTD_isError(csize_tuned)) {
		fprintf(stderr, "gen_pages: zstd: %s\n", ZSTD_getErrorName(csize_tuned));
		return -EBADMSG;
	}
	a->bytes += csize;
	a->bytes_tuned += csize_tuned;
	a->nblocks++;
	a->ns_comp += t1 - t0;
	a->ns_decomp += t2 - t1;
	a->filled = 0;
	return 0;
}

static int ideal_add_page(struct ideal *id, const uint8_t *page)
{
	size_t csize;
	int ret;

	id->pages++;
	if (page_is_zero(page)) {
		id->zero_pages++;
		return 0;
	}
	ret = page_set_add(&id->set, XXH3_128bits(page, PAGE_SIZE));
	if (ret <= 0)
		return ret;
	id->distinct++;
	ret = compress_block(id, page, PAGE_SIZE, &csize);
	if (ret < 0)
		return ret;
	id->zstd_bytes += csize;
	id->capped_bytes += MIN(csize, (size_t)PAGE_SIZE);
	for (unsigned g = 0; g < id->nacc; g++) {
		struct group_acc *a = &id->acc[g];

		memcpy(a->buf + (size_t)a->filled * PAGE_SIZE, page, PAGE_SIZE);
		if (++a->filled == a->group) {
			ret = group_flush(id, a);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static int ideal_add_file(struct ideal *id, const char *path)
{
	_cleanup_free_ uint8_t *buf = malloc((size_t)IO_PAGES * PAGE_SIZE);
	_cleanup_close_ int fd = -1;
	int ret;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "gen_pages: cannot open '%s': %s\n", path, strerror(errno));
		return ret;
	}
	for (;;) {
		ssize_t got = read_upto(fd, buf, (size_t)IO_PAGES * PAGE_SIZE);

		if (got < 0) {
			fprintf(stderr, "gen_pages: reading '%s': %s\n", path, strerror((int)-got));
			return (int)got;
		}
		if (got == 0)
			break;
		/* a partial last page counts as a page padded with zeros, as a chunker sees it */
		if (got % PAGE_SIZE)
			memset(buf + got, 0, PAGE_SIZE - (size_t)got % PAGE_SIZE);
		for (size_t off = 0; off < (size_t)got; off += PAGE_SIZE) {
			ret = ideal_add_page(id, buf + off);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static void ideal_done(struct ideal *id)
{
	for (unsigned g = 0; g < id->nacc; g++)
		free(id->acc[g].buf);
	free(id->set.slot);
	free(id->cbuf);
	free(id->dbuf);
	ZSTD_freeCCtx(id->cctx);
	ZSTD_freeCCtx(id->tuned);
	ZSTD_freeDCtx(id->dctx);
}

static int parse_groups(const char *list, struct ideal *id)
{
	_cleanup_free_ char *copy = strdup(list);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t g;

		if (parse_u64(tok, "group size", &g) < 0 || g < 1 || g > 256 ||
		    id->nacc >= MAX_GROUPS) {
			fprintf(stderr, "gen_pages: groups are 1..256 pages, at most %u of them\n",
				MAX_GROUPS);
			return -EINVAL;
		}
		id->acc[id->nacc].group = (unsigned)g;
		id->acc[id->nacc].buf = malloc((size_t)g * PAGE_SIZE);
		if (!id->acc[id->nacc].buf)
			return -ENOMEM;
		id->nacc++;
	}
	return 0;
}

static int cmd_ideal(const char *groups, char **files, int nfiles)
{
	struct ideal id = {0};
	unsigned maxgroup = 1;
	int ret;

	if (groups) {
		ret = parse_groups(groups, &id);
		if (ret < 0)
			goto out;
	}
	for (unsigned g = 0; g < id.nacc; g++)
		maxgroup = MAX(maxgroup, id.acc[g].group);
	id.cbuf_size = ZSTD_compressBound((size_t)maxgroup * PAGE_SIZE);
	id.cbuf = malloc(id.cbuf_size);
	id.dbuf = malloc((size_t)maxgroup * PAGE_SIZE);
	id.cctx = ZSTD_createCCtx();
	id.tuned = ZSTD_createCCtx();
	id.dctx = ZSTD_createDCtx();
	if (!id.cbuf || !id.dbuf || !id.cctx || !id.tuned || !id.dctx) {
		ret = -ENOMEM;
		goto out;
	}
	if (ZSTD_isError(ZSTD_CCtx_setParameter(id.tuned, ZSTD_c_compressionLevel, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(id.tuned, ZSTD_c_hashLog, 16))) {
		ret = -EINVAL;
		goto out;
	}
	for (int i = 0; i < nfiles; i++) {
		ret = ideal_add_file(&id, files[i]);
		if (ret < 0)
			goto out;
	}
	for (unsigned g = 0; g < id.nacc; g++) {
		ret = group_flush(&id, &id.acc[g]);
		if (ret < 0)
			goto out;
	}

	/* key=value on one line: store_bench.sh parses it */
	printf("ideal_bytes=%" PRIu64 " ideal_capped_bytes=%" PRIu64 " distinct_pages=%" PRIu64
	       " pages=%" PRIu64 " zero_pages=%" PRIu64 "\n",
	       id.zstd_bytes, id.capped_bytes, id.distinct, id.pages, id.zero_pages);
	if (id.nacc) {
		printf("%-7s %14s %9s %14s %9s %10s %11s %12s\n", "group", "bytes", "vs_1page",
		       "bytes_hlog16", "vs_1page", "blocks", "comp_MB/s", "decomp_MB/s");
		for (unsigned g = 0; g < id.nacc; g++) {
			const struct group_acc *a = &id.acc[g];
			double raw_mb = (double)id.distinct * PAGE_SIZE / 1e6;

			printf("%-7u %14" PRIu64 " %9.4f %14" PRIu64 " %9.4f %10" PRIu64
			       " %11.0f %12.0f\n",
			       a->group, a->bytes,
			       id.zstd_bytes ? (double)a->bytes / (double)id.zstd_bytes : 0,
			       a->bytes_tuned,
			       id.zstd_bytes ? (double)a->bytes_tuned / (double)id.zstd_bytes : 0,
			       a->nblocks, a->ns_comp ? raw_mb / ((double)a->ns_comp / 1e9) : 0,
			       a->ns_decomp ? raw_mb / ((double)a->ns_decomp / 1e9) : 0);
		}
	}
	ret = 0;
out:
	ideal_done(&id);
	return ret;
}

/* --- main --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gen_pages gen    [--seed S] --size-mib N OUT\n"
		"       gen_pages mutate [--seed S] [--percent P] IN OUT\n"
		"       gen_pages ideal  [--groups G1,G2,...] FILE...\n\n"
		"gen     writes an N MiB page image with process-memory-like pages (OUT '-' = stdout)\n"
		"mutate  writes IN with P %% (default 3) of its pages dirtied in clustered runs\n"
		"ideal   prints the bytes of the distinct non-zero 4 KiB pages of all FILEs, each\n"
		"        compressed alone with zstd -1; --groups also compresses runs of G distinct\n"
		"        pages together and prints the totals (the compression-block experiment)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"seed", required_argument, NULL, 's'},
		{"size-mib", required_argument, NULL, 'n'},
		{"percent", required_argument, NULL, 'p'},
		{"groups", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	uint64_t seed = 1, size_mib = 0, percent_x100 = 300;
	const char *groups = NULL, *cmd;
	int c, ret;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_u64(optarg, "seed", &seed) < 0)
				return 2;
			break;
		case 'n':
			if (parse_u64(optarg, "size", &size_mib) < 0)
				return 2;
			break;
		case 'p': {
			char *end;
			double p = strtod(optarg, &end);

			if (end == optarg || *end || !(p > 0 && p <= 100)) {
				fprintf(stderr, "gen_pages: bad percent '%s' (0 < P <= 100)\n",
					optarg);
				return 2;
			}
			percent_x100 = (uint64_t)(p * 100 + 0.5);
			break;
		}
		case 'g':
			groups = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}

	if (!strcmp(cmd, "gen") && optind + 1 == argc && size_mib > 0)
		ret = cmd_gen(seed, size_mib, argv[optind]);
	else if (!strcmp(cmd, "mutate") && optind + 2 == argc)
		ret = cmd_mutate(seed, percent_x100, argv[optind], argv[optind + 1]);
	else if (!strcmp(cmd, "ideal") && optind < argc)
		ret = cmd_ideal(groups, argv + optind, argc - optind);
	else {
		usage(stderr);
		return 2;
	}
	return ret < 0 ? 1 : 0;
}
