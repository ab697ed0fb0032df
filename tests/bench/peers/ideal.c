// SPDX-License-Identifier: MIT
/*
 * ideal - the size floor the peers benchmark measures every store against.
 *
 * Usage: ideal DIR...   (the checkpoints, in the order they were taken)
 *
 * Every regular file under each DIR is cut into 4 KiB chunks at 4 KiB-aligned offsets (the last
 * one may be shorter), the unit a page-granular store can share. A chunk counts once across all
 * DIRs, keyed by its XXH3-128 hash, and costs what zstd level 1 makes of it compressed on its
 * own (a full frame, as `zstd -1` of that chunk alone would write). Symlinks and special files
 * cost nothing: their metadata is not page data.
 *
 * Prints one line per DIR, "ckpt DIR chunks=N new=N new_bytes=N", then
 * "ideal bytes=N distinct=N chunks=N". Exit status 0, or 1 on any read or compression error.
 */
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zstd.h>

#include "common/log.h"
#include "common/util.h"

#define CHUNK_SZ 4096u
/* Bytes read per pread; a multiple of CHUNK_SZ. */
#define READ_SZ (1u << 20)

/* Open-addressing set of 128-bit chunk hashes, linear probing, kept at most half full. */
struct hset {
	XXH128_hash_t *slots;
	unsigned char *used;
	size_t cap, n;
};

static int hset_grow(struct hset *h);

/* Returns 1 if added, 0 if present, -ENOMEM. */
static int hset_add(struct hset *h, XXH128_hash_t k)
{
	size_t i;

	if ((h->n + 1) * 2 > h->cap) {
		int r = hset_grow(h);
		if (r < 0)
			return r;
	}
	for (i = (size_t)k.low64 & (h->cap - 1); h->used[i]; i = (i + 1) & (h->cap - 1))
		if (XXH128_isEqual(h->slots[i], k))
			return 0;
	h->used[i] = 1;
	h->slots[i] = k;
	h->n++;
	return 1;
}

static int hset_grow(struct hset *h)
{
	struct hset bigger = {.cap = h->cap ? h->cap * 2 : 1u << 16};

	bigger.slots = malloc(bigger.cap * sizeof(*bigger.slots));
	bigger.used = calloc(bigger.cap, 1);
	if (!bigger.slots || !bigger.used) {
		free(bigger.slots);
		free(bigger.used);
		return -ENOMEM;
	}
	for (size_t i = 0; i < h->cap; i++)
		if (h->used[i])
			(void)hset_add(&bigger, h->slots[i]);
	free(h->slots);
	free(h->used);
	*h = bigger;
	return 0;
}

struct tally {
	struct hset seen;
	ZSTD_CCtx *cctx;
	void *cbuf;
	size_t cbuf_sz;
	void *rbuf;
	uint64_t chunks, new_chunks, new_bytes;
};

/* nftw() offers no context pointer; the walk is single-threaded. */
static struct tally *cur;

static int tally_chunk(struct tally *t, const void *p, size_t len)
{
	int added = hset_add(&t->seen, XXH3_128bits(p, len));
	size_t csz;

	t->chunks++;
	if (added <= 0)
		return added;
	csz = ZSTD_compressCCtx(t->cctx, t->cbuf, t->cbuf_sz, p, len, 1);
	if (ZSTD_isError(csz)) {
		log_err("zstd: %s", ZSTD_getErrorName(csz));
		return -EBADMSG;
	}
	t->new_chunks++;
	t->new_bytes += csz;
	return 0;
}

static int tally_file(struct tally *t, const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	uint64_t off = 0;

	if (fd < 0) {
		int r = -errno;
		log_err("open '%s': %s", path, strerror(-r));
		return r;
	}
	for (;;) {
		ssize_t n = pread(fd, t->rbuf, READ_SZ, (off_t)off);
		if (n < 0) {
			int r = -errno;
			if (r == -EINTR)
				continue;
			log_err("read '%s' at %" PRIu64 ": %s", path, off, strerror(-r));
			return r;
		}
		if (n == 0)
			return 0;
		/* A short read mid-file would shift every later chunk off its alignment. */
		if ((size_t)n % CHUNK_SZ && (size_t)n < READ_SZ) {
			struct stat st;
			if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != off + (uint64_t)n) {
				log_err("short read of '%s' at %" PRIu64, path, off);
				return -EIO;
			}
		}
		for (size_t at = 0; at < (size_t)n; at += CHUNK_SZ) {
			int r = tally_chunk(t, (char *)t->rbuf + at, MIN((size_t)n - at, CHUNK_SZ));
			if (r < 0)
				return r;
		}
		off += (uint64_t)n;
	}
}

static int walk_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_DNR || type == FTW_NS) {
		log_err("cannot read '%s'", path);
		return 1;
	}
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	return tally_file(cur, path) < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct tally t = {0};
	uint64_t total_chunks = 0, total_bytes = 0;
	int ret = 1;

	log_set_prefix("ideal");
	if (argc < 2) {
		fprintf(stderr, "usage: ideal DIR...\n");
		return 2;
	}
	t.cctx = ZSTD_createCCtx();
	t.cbuf_sz = ZSTD_compressBound(CHUNK_SZ);
	t.cbuf = malloc(t.cbuf_sz);
	t.rbuf = malloc(READ_SZ);
	if (!t.cctx || !t.cbuf || !t.rbuf) {
		log_err("out of memory");
		goto out;
	}
	cur = &t;
	for (int i = 1; i < argc; i++) {
		t.chunks = t.new_chunks = t.new_bytes = 0;
		/* The walk order does not matter: the set of distinct chunks is the same. */
		if (nftw(argv[i], walk_cb, 64, FTW_PHYS) != 0) {
			log_err("walk of '%s' failed", argv[i]);
			goto out;
		}
		printf("ckpt %s chunks=%" PRIu64 " new=%" PRIu64 " new_bytes=%" PRIu64 "\n",
		       argv[i], t.chunks, t.new_chunks, t.new_bytes);
		total_chunks += t.chunks;
		total_bytes += t.new_bytes;
	}
	printf("ideal bytes=%" PRIu64 " distinct=%zu chunks=%" PRIu64 "\n", total_bytes, t.seen.n,
	       total_chunks);
	ret = 0;
out:
	free(t.cbuf);
	free(t.rbuf);
	free(t.seen.slots);
	free(t.seen.used);
	ZSTD_freeCCtx(t.cctx);
	return ret;
}
