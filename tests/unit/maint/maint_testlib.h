/* SPDX-License-Identifier: MIT */
/*
 * maint_testlib.h - helpers for the gc/fsck/rebuild tests: deterministic page contents, file
 * creation through the store API, a canonical digest of a checkpoint tree (paths, types, modes,
 * owners, sizes, times, link structure, xattrs, symlink targets and a hash of every file's
 * bytes) to compare a store before and after an operation, pack-directory sizes, and a
 * collector for fsck problem lines.
 * Thread-safety: single-threaded tests only.
 */
#ifndef CKPTFS_TESTS_UNIT_MAINT_TESTLIB_H
#define CKPTFS_TESTS_UNIT_MAINT_TESTLIB_H

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "common/util.h"
#include "tests/unit/testutil.h"

/* Page content number n: half-compressible text-like bytes, distinct for distinct n. */
static inline void page_fill(uint8_t *p, uint64_t n)
{
	uint64_t st = n * 0x9e3779b97f4a7c15ULL + 1;

	for (size_t i = 0; i < STORE_CHUNK_SIZE; i += 8) {
		st ^= st << 13;
		st ^= st >> 7;
		st ^= st << 17;
		uint64_t v = (i % 64 < 32) ? st : (0x2020202020202020ULL + (n & 0xff));
		memcpy(p + i, &v, 8);
	}
}

/* Writes pages[0..n) (content numbers) to a new file at chunk offsets first_chunk.. . */
static inline uint64_t mkfile_pages(struct store *s, uint64_t dir, const char *name,
				    const uint64_t *pages, size_t n, uint64_t first_chunk)
{
	struct store_attr a;
	uint8_t page[STORE_CHUNK_SIZE];

	REQUIRE(store_mknod(s, dir, name, S_IFREG | 0644, 0, 0, 0, &a) == 0);
	REQUIRE(store_open_inode(s, a.ino, true) == 0);
	for (size_t i = 0; i < n; i++) {
		page_fill(page, pages[i]);
		REQUIRE(store_write(s, a.ino, page, sizeof(page),
				    (first_chunk + i) * STORE_CHUNK_SIZE) == (ssize_t)sizeof(page));
	}
	REQUIRE(store_release(s, a.ino, true) == 0);
	return a.ino;
}

/* Pages base..base+n-1. */
static inline uint64_t mkfile_range(struct store *s, uint64_t dir, const char *name, uint64_t base,
				    size_t n)
{
	uint64_t *pages = malloc(n * sizeof(*pages));
	uint64_t ino;

	REQUIRE(pages);
	for (size_t i = 0; i < n; i++)
		pages[i] = base + i;
	ino = mkfile_pages(s, dir, name, pages, n, 0);
	free(pages);
	return ino;
}

static inline uint64_t mkdir_at(struct store *s, uint64_t parent, const char *name)
{
	struct store_attr a;

	REQUIRE(store_mkdir(s, parent, name, 0755, 0, 0, &a) == 0);
	return a.ino;
}

/* Sum of the sizes of the pack files. */
static inline uint64_t pack_bytes(const char *store)
{
	char path[1024];
	struct dirent *de;
	uint64_t sum = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/packs", store);
	d = opendir(path);
	REQUIRE(d);
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			sum += (uint64_t)st.st_size;
	}
	closedir(d);
	return sum;
}

/* --- digest of a tree ------------------------------------------------------------------------ */

struct dg {
	char *buf;
	size_t len, cap;
	struct {
		uint64_t ino;
		char path[1024];
	} links[256];
	size_t nlinks;
	int read_errors;
};

__attribute__((format(printf, 2, 3))) static inline void dg_printf(struct dg *d, const char *fmt,
								   ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(d->buf + d->len, d->cap - d->len, fmt, ap);
		va_end(ap);
		REQUIRE(n >= 0);
		if (d->len + (size_t)n < d->cap)
			break;
		d->cap = d->cap * 2 + (size_t)n + 4096;
		d->buf = realloc(d->buf, d->cap);
		REQUIRE(d->buf);
	}
	d->len += (size_t)n;
}

struct dg_names {
	char (*v)[256];
	size_t n, cap;
};

static inline int dg_collect(void *ctx, const char *name, uint64_t ino, uint32_t mode,
			     uint64_t next_cookie)
{
	struct dg_names *nm = ctx;

	if (nm->n == nm->cap) {
		nm->cap = nm->cap ? nm->cap * 2 : 16;
		nm->v = realloc(nm->v, nm->cap * sizeof(*nm->v));
		REQUIRE(nm->v);
	}
	snprintf(nm->v[nm->n++], 256, "%s", name);
	return 0;
}

static inline int dg_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static inline void dg_walk(struct store *s, struct dg *d, uint64_t dir, const char *prefix)
{
	struct dg_names nm = {0};

	REQUIRE(store_readdir(s, dir, 0, dg_collect, &nm) == 0);
	if (nm.n)
		qsort(nm.v, nm.n, sizeof(*nm.v), dg_cmp);
	for (size_t i = 0; i < nm.n; i++) {
		char path[1024];
		struct store_attr a;
		char xl[4096];
		ssize_t xn;

		snprintf(path, sizeof(path), "%s/%s", prefix, nm.v[i]);
		REQUIRE(store_lookup(s, dir, nm.v[i], &a) == 0);
		dg_printf(d,
			  "%s mode=%o uid=%u gid=%u size=%" PRIu64 " nlink=%" PRIu64
			  " mtime=%lld.%09ld atime=%lld.%09ld rdev=%" PRIu64,
			  path, a.mode, a.uid, a.gid, a.size, a.nlink, (long long)a.mtime.tv_sec,
			  a.mtime.tv_nsec, (long long)a.atime.tv_sec, a.atime.tv_nsec, a.rdev);
		if (!S_ISDIR(a.mode) && a.nlink > 1) {
			size_t j;

			for (j = 0; j < d->nlinks && d->links[j].ino != a.ino; j++)
				;
			if (j < d->nlinks) {
				dg_printf(d, " same-inode-as=%s", d->links[j].path);
			} else if (d->nlinks < ARRAY_SIZE(d->links)) {
				d->links[d->nlinks].ino = a.ino;
				snprintf(d->links[d->nlinks].path, sizeof(d->links[0].path), "%s",
					 path);
				d->nlinks++;
			}
		}
		xn = store_listxattr(s, a.ino, xl, sizeof(xl));
		REQUIRE(xn >= 0);
		for (ssize_t off = 0; off < xn; off += (ssize_t)strlen(xl + off) + 1) {
			static char val[65536];
			ssize_t vn = store_getxattr(s, a.ino, xl + off, val, sizeof(val));

			REQUIRE(vn >= 0);
			dg_printf(d, " xattr[%s]=%016" PRIx64, xl + off,
				  XXH3_64bits(val, (size_t)vn));
		}
		if (S_ISLNK(a.mode)) {
			char t[4096];

			REQUIRE(store_readlink(s, a.ino, t, sizeof(t)) >= 0);
			dg_printf(d, " target=%s", t);
		} else if (S_ISREG(a.mode)) {
			XXH3_state_t *h = XXH3_createState();
			static uint8_t buf[1 << 20];
			uint64_t off = 0;

			XXH3_64bits_reset(h);
			while (off < a.size) {
				ssize_t n = store_read(s, a.ino, buf, sizeof(buf), off);

				if (n <= 0) {
					d->read_errors++;
					dg_printf(d, " READ-ERROR@%" PRIu64 "=%zd", off, n);
					break;
				}
				XXH3_64bits_update(h, buf, (size_t)n);
				off += (uint64_t)n;
			}
			dg_printf(d, " data=%016" PRIx64, XXH3_64bits_digest(h));
			XXH3_freeState(h);
		}
		dg_printf(d, "\n");
		if (S_ISDIR(a.mode))
			dg_walk(s, d, a.ino, path);
	}
	free(nm.v);
}

/* The digest of the whole store (every checkpoint); caller frees. read_errors counts reads
 * that failed. */
static inline char *store_digest(struct store *s, int *ret_read_errors)
{
	struct dg d = {0};

	dg_printf(&d, "%s", "");
	dg_walk(s, &d, STORE_ROOT_INO, "");
	if (ret_read_errors)
		*ret_read_errors = d.read_errors;
	return d.buf;
}

/* Prints the first differing line of two digests. */
static inline void digest_diff(const char *a, const char *b)
{
	while (*a && *b) {
		const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
		size_t la = ea ? (size_t)(ea - a) : strlen(a),
		       lb = eb ? (size_t)(eb - b) : strlen(b);

		if (la != lb || memcmp(a, b, la) != 0) {
			fprintf(stderr, "digest differs:\n  before: %.*s\n  after:  %.*s\n",
				(int)la, a, (int)lb, b);
			return;
		}
		a += la + (ea ? 1 : 0);
		b += lb + (eb ? 1 : 0);
	}
	if (*a || *b)
		fprintf(stderr,
			"digest differs in length:\n  before rest: %.200s\n  after rest: %.200s\n",
			a, b);
}

#define CHECK_DIGEST(before, after)                                                                \
	do {                                                                                       \
		if (strcmp((before), (after)) != 0) {                                              \
			fprintf(stderr, "%s:%d: store contents changed\n", __FILE__, __LINE__);    \
			digest_diff((before), (after));                                            \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

/* --- fsck problem collection ------------------------------------------------------------------ */

struct problems {
	char *text;
	size_t len, cap;
	int n;
};

static inline void problems_cb(void *ctx, const char *line)
{
	struct problems *p = ctx;
	size_t n = strlen(line);

	if (p->len + n + 2 > p->cap) {
		p->cap = (p->len + n + 2) * 2;
		p->text = realloc(p->text, p->cap);
		REQUIRE(p->text);
	}
	memcpy(p->text + p->len, line, n);
	p->text[p->len + n] = '\n';
	p->len += n + 1;
	p->text[p->len] = '\0';
	p->n++;
	fprintf(stderr, "  fsck: %s\n", line);
}

static inline void problems_reset(struct problems *p)
{
	free(p->text);
	memset(p, 0, sizeof(*p));
}

/* Runs fsck on path (read-only open) and returns its result; lines go to p (optional). */
static inline int fsck_path(const char *path, struct problems *p)
{
	struct problems local = {0};
	struct store *s = NULL;
	int r;

	REQUIRE(store_open(path, STORE_OPEN_RDONLY, &s) == 0);
	r = store_fsck(s, problems_cb, p ? p : &local);
	store_close(s);
	problems_reset(&local);
	return r;
}

/* Digest of the store at path (opened read-only). */
static inline char *digest_path(const char *path, int *ret_read_errors)
{
	struct store *s = NULL;
	char *dgst;

	REQUIRE(store_open(path, STORE_OPEN_RDONLY, &s) == 0);
	dgst = store_digest(s, ret_read_errors);
	store_close(s);
	return dgst;
}

#endif
