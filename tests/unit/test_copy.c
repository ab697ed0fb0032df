// SPDX-License-Identifier: MIT
/* test_copy - store_copy_range (index/copy.c): whole chunks copied by reference add no pack
 * bytes and leave holes as holes; unaligned edges and mismatched offsets are copied as bytes;
 * buffered writes on either side are seen or overridden in the right order; EOF, overlap and a
 * sealed destination behave like copy_file_range(2); refcounts stay exact (fsck) through copies,
 * removal of the source checkpoint and gc; and a random mix of writes, truncates, hole punches
 * and copies between two files (and within one) against an in-memory model; a malformed
 * file-map block is refused by copy and flush alike. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "common/util.h"
#include "index/store_priv.h"
#include "tests/unit/testutil.h"

#define PG	  STORE_CHUNK_SIZE
#define MODEL_MAX (3u << 20)

static void fsck_problem(void *ctx, const char *problem)
{
	(void)ctx;
	fprintf(stderr, "fsck: %s\n", problem);
}

static void check_fsck(struct store *s)
{
	CHECK_EQ(store_sync(s), 0);
	CHECK_EQ(store_fsck(s, fsck_problem, NULL), 0);
}

/* Random page-sized patterns; kind 0 gives a zero page (a hole once stored). */
static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t run = 1 + rng_next() % (3 * PG);
		unsigned kind = rng_next() % 4;

		run = MIN(run, n - i);
		for (size_t j = 0; j < run; j++)
			p[i + j] = kind == 0 ? 0 : (uint8_t)rng_next();
		i += run;
	}
}

static uint64_t mkfile(struct store *s, uint64_t dir, const char *name)
{
	struct store_attr f;

	REQUIRE(store_mknod(s, dir, name, S_IFREG | 0644, 0, 0, 0, &f) == 0);
	return f.ino;
}

static void put(struct store *s, uint64_t ino, const void *buf, size_t len, uint64_t off)
{
	CHECK_EQ(store_write(s, ino, buf, len, off), (ssize_t)len);
}

/* Reads len bytes at off; with exact, the file must also end there. */
static bool same_as(struct store *s, uint64_t ino, const uint8_t *want, size_t len, uint64_t off,
		    bool exact)
{
	uint8_t *got = malloc(len + 1);
	ssize_t n;
	bool ok;

	REQUIRE(got);
	n = store_read(s, ino, got, len + exact, off);
	ok = n == (ssize_t)len && memcmp(got, want, len) == 0;
	if (!ok)
		fprintf(stderr, "inode %" PRIu64 " off %" PRIu64 ": read %zd bytes, want %zu%s\n",
			ino, off, n, len, n == (ssize_t)len ? " (contents differ)" : "");
	free(got);
	return ok;
}

static bool same(struct store *s, uint64_t ino, const uint8_t *want, size_t len, uint64_t off)
{
	return same_as(s, ino, want, len, off, true);
}

/* Non-hole slots in the file map of ino (as the index has them). */
static uint64_t mapped_chunks(struct store *s, uint64_t ino)
{
	struct idx_txn *txn = NULL;
	uint64_t n = 0;

	REQUIRE(idx_txn_begin(s->db, false, &txn) == 0);
	for (uint64_t block = 0; block < 64; block++) {
		uint8_t k[FMAP_KEY_LEN];
		const void *v;
		size_t vlen;

		fmap_key(k, ino, block);
		if (idx_get(txn, IDX_FMAP, k, sizeof(k), &v, &vlen) < 0)
			continue;
		for (size_t i = 0; i < vlen / STORE_CHUNK_ID_LEN; i++) {
			struct chunk_id id;

			memcpy(id.b, (const uint8_t *)v + i * STORE_CHUNK_ID_LEN, sizeof(id.b));
			n += !chunk_id_is_null(&id);
		}
	}
	idx_txn_abort(txn);
	return n;
}

static uint64_t copy(struct store *s, uint64_t in, uint64_t off_in, uint64_t out, uint64_t off_out,
		     uint64_t len)
{
	uint64_t done = UINT64_MAX;

	CHECK_EQ(store_copy_range(s, in, off_in, out, off_out, len, &done), 0);
	return done;
}

/* Aligned copy of a stored file: no pack bytes, holes stay holes, exact refcounts. */
static void test_by_reference(const char *path)
{
	size_t len = 2u << 20;
	uint8_t *data = malloc(len), *want = calloc(1, len + 5 * PG);
	struct store *s = NULL;
	struct store_attr c1, c2, a;
	struct store_df d0, d1;
	uint64_t src, dst;

	REQUIRE(data && want);
	fill(data, len);
	memset(data + 40 * PG, 0, 20 * PG); /* a run of holes */
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "ref1", 0755, 0, 0, &c1) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "ref2", 0755, 0, 0, &c2) == 0);
	src = mkfile(s, c1.ino, "src");
	dst = mkfile(s, c2.ino, "dst");
	REQUIRE(store_open_inode(s, src, true) == 0);
	put(s, src, data, len, 0);
	CHECK_EQ(store_release(s, src, true), 0);
	CHECK_EQ(store_sync(s), 0);
	CHECK_EQ(store_df(s, &d0), 0);

	/* Into a fresh file at a page offset the file does not reach yet. */
	REQUIRE(store_open_inode(s, dst, true) == 0);
	CHECK_EQ(copy(s, src, 0, dst, 5 * PG, len), len);
	CHECK_EQ(store_getattr(s, dst, &a), 0);
	CHECK_EQ(a.size, len + 5 * PG);
	memcpy(want + 5 * PG, data, len);
	CHECK(same(s, dst, want, len + 5 * PG, 0));
	CHECK_EQ(mapped_chunks(s, dst), mapped_chunks(s, src));
	CHECK_EQ(store_df(s, &d1), 0);
	CHECK_EQ(d1.pack_bytes, d0.pack_bytes);
	CHECK_EQ(d1.nchunks, d0.nchunks);
	CHECK_EQ(d1.logical_bytes, d0.logical_bytes + len + 5 * PG);
	/* The destination's stored bytes equal the source's (the same chunks). */
	struct store_attr as;
	CHECK_EQ(store_getattr(s, src, &as), 0);
	CHECK_EQ(a.blocks, as.blocks);
	/* Copying over itself (same ids) and over other data keeps refcounts exact. */
	CHECK_EQ(copy(s, src, 0, dst, 5 * PG, len), len);
	CHECK_EQ(copy(s, src, 100 * PG, dst, 5 * PG, 50 * PG), 50 * PG);
	memcpy(want + 5 * PG, data + 100 * PG, 50 * PG);
	CHECK(same(s, dst, want, len + 5 * PG, 0));
	CHECK_EQ(store_release(s, dst, true), 0);
	check_fsck(s);

	/* Large enough for the radix sort of the refcount changes (over 4096 of them), with
	 * repeated pages (one id many times) and other data overwritten (+1 and -1 mixed). */
	size_t big = 3000 * PG;
	uint8_t *bdata = malloc(big), *other = malloc(big);
	REQUIRE(bdata && other);
	fill(bdata, big);
	for (size_t i = 0; i < big / PG; i += 3)
		memcpy(bdata + i * PG, bdata + (i % 64) * PG, PG);
	fill(other, big);
	uint64_t bsrc = mkfile(s, c1.ino, "bsrc"), bdst = mkfile(s, c2.ino, "bdst");
	REQUIRE(store_open_inode(s, bsrc, true) == 0);
	REQUIRE(store_open_inode(s, bdst, true) == 0);
	put(s, bsrc, bdata, big, 0);
	put(s, bdst, other, big, 0);
	CHECK_EQ(copy(s, bsrc, 0, bdst, 0, big), big);
	CHECK(same(s, bdst, bdata, big, 0));
	/* And back over the source, shifted by a page: both directions of every id at once. */
	CHECK_EQ(copy(s, bdst, 0, bsrc, PG, big - PG), big - PG);
	memmove(bdata + PG, bdata, big - PG);
	CHECK(same(s, bsrc, bdata, big, 0));
	CHECK_EQ(store_release(s, bsrc, true), 0);
	CHECK_EQ(store_release(s, bdst, true), 0);
	check_fsck(s);
	free(bdata);
	free(other);

	/* Source checkpoint gone, then gc: the copy still reads back, refcounts still exact. */
	CHECK_EQ(store_ckpt_remove(s, "ref1"), 0);
	check_fsck(s);
	struct store_gc_stats gs;
	CHECK_EQ(store_gc(s, &gs), 0);
	CHECK(same(s, dst, want, len + 5 * PG, 0));
	check_fsck(s);
	store_close(s);
	free(data);
	free(want);
}

/* Unaligned edges, mismatched offsets, EOF, overlap, sealed, buffered writes on both sides. */
static void test_semantics(const char *path)
{
	size_t len = 64 * PG + 123;
	uint8_t *data = malloc(len), *want = calloc(1, 4 * len);
	uint8_t page[PG];
	struct store *s = NULL;
	struct store_attr c, a;
	uint64_t src, dst, done;

	REQUIRE(data && want);
	fill(data, len);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "sem", 0755, 0, 0, &c) == 0);
	src = mkfile(s, c.ino, "src");
	dst = mkfile(s, c.ino, "dst");
	REQUIRE(store_open_inode(s, src, true) == 0);
	REQUIRE(store_open_inode(s, dst, true) == 0);
	/* Still buffered (no release, no flush): the copy must see these bytes. */
	put(s, src, data, len, 0);

	/* Unaligned head and tail with matching in-page offsets. */
	CHECK_EQ(copy(s, src, 1000, dst, 1000, 10 * PG), 10 * PG);
	memcpy(want + 1000, data + 1000, 10 * PG);
	CHECK(same(s, dst, want, 1000 + 10 * PG, 0));
	/* Mismatched offsets: all bytes. */
	CHECK_EQ(copy(s, src, 7, dst, 20 * PG + 1, 5 * PG), 5 * PG);
	memcpy(want + 20 * PG + 1, data + 7, 5 * PG);
	CHECK(same(s, dst, want, 25 * PG + 1, 0));
	/* Past the source's end: short, then 0. The partial last page comes as bytes. */
	CHECK_EQ(copy(s, src, 60 * PG, dst, 30 * PG, 1ULL << 40), len - 60 * PG);
	memcpy(want + 30 * PG, data + 60 * PG, len - 60 * PG);
	CHECK(same(s, dst, want, 30 * PG + len - 60 * PG, 0));
	CHECK_EQ(copy(s, src, len, dst, 0, PG), 0);
	CHECK_EQ(copy(s, src, len + 5 * PG, dst, 0, PG), 0);
	/* A write into the destination after the copy wins; the copy after a write sees it. */
	memset(page, 0xab, sizeof(page));
	put(s, dst, page, 100, 3 * PG + 5);
	memcpy(want + 3 * PG + 5, page, 100);
	CHECK(same(s, dst, want, 30 * PG + len - 60 * PG, 0));
	put(s, src, page, PG, 2 * PG);
	memcpy(data + 2 * PG, page, PG);
	CHECK_EQ(copy(s, src, 0, dst, 40 * PG, 8 * PG), 8 * PG);
	memcpy(want + 40 * PG, data, 8 * PG);
	CHECK(same(s, dst, want, 48 * PG, 0));
	/* The destination's buffered bytes inside the copied range are replaced by the copy. */
	put(s, dst, page, PG, 41 * PG);
	CHECK_EQ(copy(s, src, PG, dst, 41 * PG, PG), PG);
	CHECK(same(s, dst, want, 48 * PG, 0));

	/* Buffered destination pages outside the range are not flushed by a copy (a dump that
	 * alternates writes and copies must not pay a flush per copy); those inside are replaced.
	 */
	CHECK_EQ(store_flush_inode(s, dst), 0);
	memset(page, 0xcd, sizeof(page));
	put(s, dst, page, PG, 44 * PG); /* inside the next copy */
	put(s, dst, page, PG, 60 * PG); /* outside it */
	memcpy(want + 60 * PG, page, PG);
	CHECK_EQ(copy(s, src, 0, dst, 42 * PG, 4 * PG), 4 * PG);
	memcpy(want + 42 * PG, data, 4 * PG);
	pthread_mutex_lock(&s->mu);
	struct oinode *oi = u64map_get(&s->inodes, dst);
	CHECK(oi && oi->npages == 1);
	pthread_mutex_unlock(&s->mu);
	CHECK(same(s, dst, want, 61 * PG, 0));
	/* A pending truncate of the destination is applied before the copy, not after it. */
	struct store_attr ta = {.size = 50 * PG};
	CHECK_EQ(store_setattr(s, dst, &ta, STORE_SET_SIZE, &ta), 0);
	CHECK_EQ(copy(s, src, 0, dst, 48 * PG, 4 * PG), 4 * PG);
	memcpy(want + 48 * PG, data, 4 * PG);
	CHECK(same(s, dst, want, 52 * PG, 0));
	CHECK_EQ(store_flush_inode(s, dst), 0);
	CHECK(same(s, dst, want, 52 * PG, 0));

	/* Same file: non-overlapping works, overlapping is EINVAL and changes nothing. */
	CHECK_EQ(store_copy_range(s, src, 0, src, 2 * PG, 4 * PG, &done), -EINVAL);
	CHECK_EQ(store_copy_range(s, src, 4 * PG, src, 0, 8 * PG, &done), -EINVAL);
	CHECK_EQ(copy(s, src, 0, src, 10 * PG, 4 * PG), 4 * PG);
	memcpy(data + 10 * PG, data, 4 * PG);
	CHECK(same(s, src, data, len, 0));
	/* Within one file-map block, forwards, as whole pages: the later slots take earlier ids. */
	CHECK_EQ(copy(s, src, 30 * PG, src, 33 * PG, 3 * PG), 3 * PG);
	memmove(data + 33 * PG, data + 30 * PG, 3 * PG);
	CHECK(same(s, src, data, len, 0));

	/* Not regular files. */
	CHECK_EQ(store_copy_range(s, c.ino, 0, dst, 0, PG, &done), -EISDIR);
	CHECK_EQ(store_copy_range(s, src, 0, c.ino, 0, PG, &done), -EISDIR);

	CHECK_EQ(store_release(s, src, true), 0);
	CHECK_EQ(store_release(s, dst, true), 0);
	CHECK(same(s, dst, want, 52 * PG, 0));
	check_fsck(s);

	/* Sealed destination: EROFS; a sealed source copies fine. */
	uint8_t id[STORE_CONTENT_ID_LEN];
	struct store_attr c2;
	CHECK_EQ(store_ckpt_seal(s, "sem", id), 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "live", 0755, 0, 0, &c2) == 0);
	uint64_t live = mkfile(s, c2.ino, "f");
	CHECK_EQ(store_copy_range(s, live, 0, dst, 0, PG, &done), -EROFS);
	CHECK_EQ(copy(s, src, 0, live, 0, len), len);
	CHECK(same(s, live, data, len, 0));
	CHECK_EQ(store_getattr(s, live, &a), 0);
	CHECK_EQ(a.size, len);
	check_fsck(s);
	store_close(s);

	/* Everything is in the index and comes back after a reopen. */
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	CHECK(same(s, live, data, len, 0));
	CHECK(same(s, dst, want, 52 * PG, 0));
	store_close(s);
	free(data);
	free(want);
}

/* Random operations on two files (and copies between and within them) against models. */
static uint8_t *model[2];
static uint64_t msize[2];

static void model_set_size(int f, uint64_t size)
{
	if (size > msize[f])
		memset(model[f] + msize[f], 0, size - msize[f]);
	msize[f] = size;
}

static void test_random(const char *path)
{
	static uint8_t buf[256 << 10];
	struct store *s = NULL;
	struct store_attr c1, c2;
	uint64_t ino[2];

	model[0] = calloc(1, MODEL_MAX);
	model[1] = calloc(1, MODEL_MAX);
	REQUIRE(model[0] && model[1]);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	/* A small budget so the flusher runs (and is racing the copies) all the time. */
	pthread_mutex_lock(&s->mu);
	s->dirty_budget = 512 << 10;
	pthread_mutex_unlock(&s->mu);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "r1", 0755, 0, 0, &c1) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "r2", 0755, 0, 0, &c2) == 0);
	ino[0] = mkfile(s, c1.ino, "a");
	ino[1] = mkfile(s, c2.ino, "b");
	for (int f = 0; f < 2; f++)
		REQUIRE(store_open_inode(s, ino[f], true) == 0);

	for (int op = 0; op < 1200 && !test_failures; op++) {
		unsigned what = rng_next() % 100;
		int f = (int)(rng_next() % 2), g = (int)(rng_next() % 2);
		bool aligned = rng_next() % 4 != 0;
		uint64_t off = rng_next() % (MODEL_MAX / 2), len = 1 + rng_next() % sizeof(buf);

		if (aligned)
			off -= off % PG;
		if (getenv("COPY_TRACE")) {
			struct store_attr t0, t1;

			store_getattr(s, ino[0], &t0);
			store_getattr(s, ino[1], &t1);
			fprintf(stderr,
				"op %d what %u f %d g %d off %" PRIu64 " len %" PRIu64
				" sizes %" PRIu64 "/%" PRIu64 " model %" PRIu64 "/%" PRIu64 "\n",
				op, what, f, g, off, len, t0.size, t1.size, msize[0], msize[1]);
		}
		if (what < 35) {
			fill(buf, len);
			put(s, ino[f], buf, len, off);
			if (off + len > msize[f])
				model_set_size(f, off + len);
			memcpy(model[f] + off, buf, len);
		} else if (what < 40) {
			struct store_attr a = {.size = rng_next() % (MODEL_MAX / 2)};

			CHECK_EQ(store_setattr(s, ino[f], &a, STORE_SET_SIZE, &a), 0);
			model_set_size(f, a.size);
		} else if (what < 45) {
			uint64_t end = MIN(off + len, msize[f]);

			CHECK_EQ(store_fallocate(s, ino[f], true, true, off, len), 0);
			if (off < end)
				memset(model[f] + off, 0, end - off);
		} else if (what < 50) {
			CHECK_EQ(store_flush_inode(s, ino[f]), 0);
		} else if (what < 90) {
			uint64_t off_in = rng_next() % (MODEL_MAX / 2), want, done;
			int r;

			if (aligned)
				off_in = off_in - off_in % PG + off % PG;
			if (rng_next() % 3 == 0)
				len = 1 + rng_next() % (MODEL_MAX / 4);
			want = off_in >= msize[g] ? 0 : MIN(len, msize[g] - off_in);
			r = store_copy_range(s, ino[g], off_in, ino[f], off, len, &done);
			if (f == g && want && off < off_in + want && off_in < off + want) {
				CHECK_EQ(r, -EINVAL);
				continue;
			}
			CHECK_EQ(r, 0);
			CHECK_EQ(done, want);
			if (r < 0 || done != want)
				break;
			if (want && off + want > msize[f])
				model_set_size(f, off + want);
			memmove(model[f] + off, model[g] + off_in, want);
		} else {
			uint64_t roff = rng_next() % (msize[f] + 1);
			size_t n = MIN((uint64_t)sizeof(buf), msize[f] - roff);

			CHECK(same_as(s, ino[f], model[f] + roff, n, roff, false));
		}
	}
	for (int f = 0; f < 2; f++) {
		CHECK(same(s, ino[f], model[f], msize[f], 0));
		CHECK_EQ(store_release(s, ino[f], true), 0);
	}
	check_fsck(s);
	store_close(s);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	for (int f = 0; f < 2; f++)
		CHECK(same(s, ino[f], model[f], msize[f], 0));
	CHECK_EQ(store_ckpt_remove(s, "r1"), 0);
	struct store_gc_stats gs;
	CHECK_EQ(store_gc(s, &gs), 0);
	CHECK(same(s, ino[1], model[1], msize[1], 0));
	check_fsck(s);
	store_close(s);
	free(model[0]);
	free(model[1]);
}

/* Replaces file-map block 0 of ino with a record that is not a whole number of ids. */
static void break_fmap_block(struct store *s, uint64_t ino)
{
	struct idx_txn *txn = NULL;
	uint8_t k[FMAP_KEY_LEN], junk[STORE_CHUNK_ID_LEN + 1];

	memset(junk, 0xa5, sizeof(junk));
	fmap_key(k, ino, 0);
	REQUIRE(idx_txn_begin(s->db, true, &txn) == 0);
	REQUIRE(idx_put(txn, IDX_FMAP, k, sizeof(k), junk, sizeof(junk), 0) == 0);
	REQUIRE(idx_txn_commit(txn) == 0);
}

static size_t fmap_block_bytes(struct store *s, uint64_t ino)
{
	struct idx_txn *txn = NULL;
	uint8_t k[FMAP_KEY_LEN];
	const void *v;
	size_t vlen = 0;

	fmap_key(k, ino, 0);
	REQUIRE(idx_txn_begin(s->db, false, &txn) == 0);
	if (idx_get(txn, IDX_FMAP, k, sizeof(k), &v, &vlen) < 0)
		vlen = 0;
	idx_txn_abort(txn);
	return vlen;
}

static bool error_says(const char *what)
{
	if (strstr(store_last_error(), what))
		return true;
	fprintf(stderr, "error detail '%s' does not say '%s'\n", store_last_error(), what);
	return false;
}

/* A malformed file-map block on either side of a copy, and under a flush, is refused with
 * -EBADMSG naming the inode and the block, and the index is left as it was. */
static void test_bad_fmap(const char *path)
{
	uint8_t data[4 * PG], back[4 * PG];
	struct store *s = NULL;
	struct store_attr c;
	uint64_t src, dst, bad_src, done = 7;
	char want[128];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "bad", 0755, 0, 0, &c) == 0);
	src = mkfile(s, c.ino, "src");
	dst = mkfile(s, c.ino, "dst");
	bad_src = mkfile(s, c.ino, "bad_src");
	REQUIRE(store_open_inode(s, src, true) == 0);
	REQUIRE(store_open_inode(s, dst, true) == 0);
	REQUIRE(store_open_inode(s, bad_src, true) == 0);
	put(s, src, data, sizeof(data), 0);
	put(s, dst, data, sizeof(data), 0);
	put(s, bad_src, data, sizeof(data), 0);
	CHECK_EQ(store_sync(s), 0);

	/* The destination's block is bad: the copy's transaction is aborted. */
	break_fmap_block(s, dst);
	CHECK_EQ(store_copy_range(s, src, 0, dst, 0, sizeof(data), &done), -EBADMSG);
	CHECK_EQ(done, 7);
	snprintf(want, sizeof(want), "inode %" PRIu64 ": file map block 0 has %u bytes", dst,
		 STORE_CHUNK_ID_LEN + 1);
	CHECK(error_says(want));
	CHECK_EQ(fmap_block_bytes(s, dst), STORE_CHUNK_ID_LEN + 1);

	/* The source's block is bad. */
	break_fmap_block(s, bad_src);
	CHECK_EQ(store_copy_range(s, bad_src, 0, src, 0, sizeof(data), &done), -EBADMSG);
	snprintf(want, sizeof(want), "inode %" PRIu64 ": file map block 0 has %u bytes", bad_src,
		 STORE_CHUNK_ID_LEN + 1);
	CHECK(error_says(want));
	/* The would-be destination is untouched. */
	CHECK(same(s, src, data, sizeof(data), 0));

	/* A flush into the bad block fails the same way and keeps the write buffered. */
	put(s, dst, data + PG, PG, 0);
	CHECK_EQ(store_flush_inode(s, dst), -EBADMSG);
	snprintf(want, sizeof(want), "inode %" PRIu64 ": file map block 0 has %u bytes", dst,
		 STORE_CHUNK_ID_LEN + 1);
	CHECK(error_says(want));
	CHECK_EQ(store_read(s, dst, back, PG, 0), (ssize_t)PG);
	CHECK(memcmp(back, data + PG, PG) == 0);
	CHECK_EQ(fmap_block_bytes(s, dst), STORE_CHUNK_ID_LEN + 1);

	/* dst's buffered page can never be stored: its release says so. */
	CHECK_EQ(store_release(s, src, true), 0);
	CHECK_EQ(store_release(s, bad_src, true), 0);
	CHECK_EQ(store_release(s, dst, true), -EBADMSG);
	store_close(s);
}

int main(void)
{
	const char *dir = test_tmpdir("copy");
	char path[512];
	uint64_t seed = getenv("SEED") ? strtoull(getenv("SEED"), NULL, 0) : 0x5eedc0b1ULL;

	printf("seed %" PRIu64 "\n", seed);
	rng_seed(seed);
	snprintf(path, sizeof(path), "%s/store", dir);
	REQUIRE(store_init(path) == 0);
	test_by_reference(path);
	test_semantics(path);
	test_random(path);
	snprintf(path, sizeof(path), "%s/store_badmap", dir);
	REQUIRE(store_init(path) == 0);
	test_bad_fmap(path);
	return test_result("test_copy");
}
