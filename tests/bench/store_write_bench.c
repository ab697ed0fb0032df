// SPDX-License-Identifier: MIT
/*
 * store_write_bench - write throughput and space efficiency of the store API (no FUSE).
 *
 * Generates N MiB of page data that looks like a process image (text-like pages, pointer-heavy
 * pages, zero pages, random pages, repeated pages), writes it as one file of a checkpoint in
 * 128 KiB writes, then writes a second checkpoint with 3% of the pages changed. Prints MB/s
 * for the fresh and the incremental checkpoint (until fsync returned: data durable), read-back
 * MB/s, and the store's pack bytes against the ideal: the sum of `zstd -1` sizes of every
 * distinct non-zero page, compressed one by one.
 *
 * usage: store_write_bench [-m MIB] [-d DIR]
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "index/store.h"

#define PAGE  4096u
#define WRITE (128u << 10)

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *const words[] = {
	"the ",	 "process ", "memory ", "page ",  "kernel ", "return ", "int ",	  "char ",
	"void ", "static ",  "struct ", "NULL ",  "error: ", "value=",	"0x7ffd", "\n",
	"libc ", "malloc ",  "free ",	"python", "import ", "self.",	"def ",	  "{\"k\": ",
};

static void gen_page(uint8_t *p, unsigned kind)
{
	switch (kind) {
	case 0: /* zero */
		memset(p, 0, PAGE);
		break;
	case 1: { /* text-like */
		size_t i = 0;
		while (i < PAGE) {
			const char *w = words[next() % (sizeof(words) / sizeof(words[0]))];
			size_t n = strlen(w);
			if (n > PAGE - i)
				n = PAGE - i;
			memcpy(p + i, w, n);
			i += n;
		}
		break;
	}
	case 2: { /* pointer-like: heap/stack addresses, small ints, some zero padding */
		uint64_t base = 0x00007f0000000000ULL | ((next() & 0xffff) << 20);
		for (unsigned i = 0; i < PAGE / 8; i++) {
			uint64_t v, r = next() % 10;
			if (r < 5)
				v = base + ((next() & 0xfff) << 3);
			else if (r < 8)
				v = next() % 256;
			else
				v = 0;
			memcpy(p + 8 * i, &v, 8);
		}
		break;
	}
	default: /* random (already compressed or encrypted data) */
		for (unsigned i = 0; i < PAGE / 8; i++) {
			uint64_t v = next();
			memcpy(p + 8 * i, &v, 8);
		}
		break;
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t du_total;

static int du_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_F)
		du_total += (uint64_t)st->st_size;
	return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Ideal store size: zstd -1 of each distinct non-zero page, one by one. */
struct seen_set {
	XXH128_hash_t *h;
	size_t cap, n;
};

static int seen_add(struct seen_set *s, XXH128_hash_t h)
{
	size_t i;

	for (i = h.low64 & (s->cap - 1); s->h[i].low64 | s->h[i].high64; i = (i + 1) & (s->cap - 1))
		if (XXH128_isEqual(s->h[i], h))
			return 0;
	s->h[i] = h;
	s->n++;
	return 1;
}

static uint64_t ideal_add(struct seen_set *set, ZSTD_CCtx *cc, const uint8_t *buf, size_t len)
{
	static uint8_t out[PAGE + 512];
	uint64_t sum = 0;

	for (size_t off = 0; off < len; off += PAGE) {
		const uint8_t *p = buf + off;
		XXH128_hash_t h;
		bool zero = true;

		for (unsigned i = 0; i < PAGE && zero; i++)
			zero = p[i] == 0;
		if (zero)
			continue;
		h = XXH3_128bits(p, PAGE);
		if (!seen_add(set, h))
			continue;
		sum += ZSTD_compressCCtx(cc, out, sizeof(out), p, PAGE, 1);
	}
	return sum;
}

static int write_ckpt(struct store *s, const char *name, const uint8_t *buf, size_t len,
		      double *ret_secs, double *ret_cpu)
{
	struct store_attr c, f;
	double t0, c0;
	int r;

	r = store_mkdir(s, 1, name, 0755, 0, 0, &c);
	if (r < 0)
		return r;
	r = store_mknod(s, c.ino, "pages.img", S_IFREG | 0644, 0, 0, 0, &f);
	if (r < 0)
		return r;
	r = store_open_inode(s, f.ino, true);
	if (r < 0)
		return r;
	t0 = now();
	c0 = cpu();
	for (size_t off = 0; off < len; off += WRITE) {
		ssize_t n = store_write(s, f.ino, buf + off, WRITE, off);
		if (n != (ssize_t)WRITE)
			return n < 0 ? (int)n : -EIO;
	}
	r = store_fsync(s, f.ino, false);
	*ret_secs = now() - t0;
	*ret_cpu = cpu() - c0;
	if (r < 0)
		return r;
	return store_release(s, f.ino, true);
}

static int read_ckpt(struct store *s, const char *name, const uint8_t *want, size_t len,
		     double *ret_secs, double *ret_cpu)
{
	static uint8_t buf[WRITE];
	struct store_attr c, f;
	double t0, c0;
	int r;

	r = store_lookup(s, 1, name, &c);
	if (r >= 0)
		r = store_lookup(s, c.ino, "pages.img", &f);
	if (r < 0)
		return r;
	t0 = now();
	c0 = cpu();
	for (size_t off = 0; off < len; off += WRITE) {
		ssize_t n = store_read(s, f.ino, buf, WRITE, off);
		if (n != (ssize_t)WRITE || memcmp(buf, want + off, WRITE) != 0)
			return n < 0 ? (int)n : -EIO;
	}
	*ret_secs = now() - t0;
	*ret_cpu = cpu() - c0;
	return 0;
}

int main(int argc, char **argv)
{
	size_t mib = 256;
	const char *dir = NULL;
	char tmpl[] = "/tmp/ckptfs-bench-XXXXXX", path[512];
	struct store *s = NULL;
	struct store_df df;
	int c, r;

	while ((c = getopt(argc, argv, "m:d:h")) != -1) {
		switch (c) {
		case 'm':
			mib = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			dir = optarg;
			break;
		default:
			fprintf(stderr, "usage: store_write_bench [-m MIB] [-d DIR]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!dir) {
		dir = mkdtemp(tmpl);
		if (!dir) {
			perror("mkdtemp");
			return 1;
		}
	}
	size_t len = mib << 20, npages = len / PAGE;
	uint8_t *v1 = malloc(len), *v2 = malloc(len);
	if (!v1 || !v2)
		return 1;
	/* Page mix of a typical heap-heavy process: 20% zero, 30% text, 35% pointers, 8% random,
	 * 7% copies of earlier pages (forked workers, duplicated buffers). */
	for (size_t i = 0; i < npages; i++) {
		unsigned r100 = next() % 100;
		uint8_t *p = v1 + i * PAGE;

		if (r100 < 7 && i > 0)
			memcpy(p, v1 + (next() % i) * PAGE, PAGE);
		else
			gen_page(p, r100 < 27 ? 0 : r100 < 57 ? 1 : r100 < 92 ? 2 : 3);
	}
	memcpy(v2, v1, len);
	size_t changed = 0;
	for (size_t i = 0; i < npages; i++) {
		if (next() % 100 < 3) {
			/* A changed page: a few words rewritten, like a live heap between dumps. */
			for (int k = 0; k < 8; k++) {
				uint64_t val = next();
				memcpy(v2 + i * PAGE + (next() % (PAGE / 8)) * 8, &val, 8);
			}
			changed++;
		}
	}

	snprintf(path, sizeof(path), "%s/store", dir);
	r = store_init(path);
	if (r >= 0)
		r = store_open(path, STORE_OPEN_EXCLUSIVE, &s);
	if (r < 0) {
		fprintf(stderr, "store: %s\n", store_last_error());
		return 1;
	}
	double t_fresh = 0, t_incr = 0, t_read = 0, c_fresh = 0, c_incr = 0, c_read = 0;
	r = write_ckpt(s, "ckpt1", v1, len, &t_fresh, &c_fresh);
	if (r >= 0)
		r = write_ckpt(s, "ckpt2", v2, len, &t_incr, &c_incr);
	if (r >= 0)
		r = read_ckpt(s, "ckpt2", v2, len, &t_read, &c_read);
	if (r >= 0)
		r = store_df(s, &df);
	if (r < 0) {
		fprintf(stderr, "bench failed: %s (%s)\n", strerror(-r), store_last_error());
		return 1;
	}
	store_close(s);
	/* What is on disk once the store is closed (the index is compacted at close). */
	nftw(path, du_cb, 16, FTW_PHYS);

	struct seen_set set = {.cap = 1};
	while (set.cap < 4 * npages)
		set.cap <<= 1;
	set.h = calloc(set.cap, sizeof(*set.h));
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint64_t ideal = ideal_add(&set, cc, v1, len) + ideal_add(&set, cc, v2, len);

	printf("data: %zu MiB per checkpoint, %zu pages, %zu changed (%.1f%%)\n", mib, npages,
	       changed, 100.0 * (double)changed / (double)npages);
	/* MB per CPU-second (all threads) is the number that does not depend on other load. */
	printf("fresh write:       %8.1f MB/s  %8.1f MB per CPU-s\n", (double)len / t_fresh / 1e6,
	       (double)len / c_fresh / 1e6);
	printf("incremental write: %8.1f MB/s  %8.1f MB per CPU-s\n", (double)len / t_incr / 1e6,
	       (double)len / c_incr / 1e6);
	printf("read (verified):   %8.1f MB/s  %8.1f MB per CPU-s\n", (double)len / t_read / 1e6,
	       (double)len / c_read / 1e6);
	printf("ideal size:        %8.1f MiB (%zu distinct pages, zstd -1 each)\n",
	       (double)ideal / 1048576, set.n);
	printf("pack bytes:        %8.1f MiB  ratio %.3fx ideal\n", (double)df.pack_bytes / 1048576,
	       (double)df.pack_bytes / (double)ideal);
	printf("packs + index:     %8.1f MiB  ratio %.3fx ideal (open, before compaction)\n",
	       (double)(df.pack_bytes + df.index_bytes) / 1048576,
	       (double)(df.pack_bytes + df.index_bytes) / (double)ideal);
	printf("store on disk:     %8.1f MiB  ratio %.3fx ideal (all files, after close)\n",
	       (double)du_total / 1048576, (double)du_total / (double)ideal);
	ZSTD_freeCCtx(cc);
	free(set.h);
	free(v1);
	free(v2);
	if (dir == tmpl)
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
