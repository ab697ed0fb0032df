// SPDX-License-Identifier: MIT
/*
 * codec_bench - what the store's per-page literal choice (index/compress.c) costs in bytes and
 * saves in decode time, against plain zstd level 1 with zstd's own literal coding and with raw
 * literals everywhere, on real checkpoint pages (pages.img files). One pass per codec over the
 * same non-zero pages, each page compressed alone as the store does; decode timed as
 * the best of 3 passes on one core. Prints bytes and times and their ratios to zstd -1.
 *
 * usage: codec_bench PAGES.IMG...
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "common/util.h"
#include "index/compress.h"
#include "index/store.h"

#define PG STORE_CHUNK_SIZE

enum codec { ZSTD_HUF, ZSTD_RAW_LIT, CKPTFS, NR_CODECS };
static const char *const codec_name[NR_CODECS] = {
	"zstd -1 (zstd's literal coding)", "zstd -1, raw literals", "ckptfs (per-page choice)"};

struct enc {
	uint8_t *buf;  /* n slots of PG bytes */
	uint32_t *len; /* 0: stored raw */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *read_pages(const char *path, size_t *ret_n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf = NULL, *out;
	size_t got = 0, n = 0;
	static const uint8_t zero[PG];

	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto fail;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r <= 0)
			goto fail;
		got += (size_t)r;
	}
	close(fd);
	/* Keep the non-zero pages (the store keeps zero pages as holes). */
	out = buf;
	for (size_t i = 0; i < got / PG; i++)
		if (memcmp(buf + i * PG, zero, PG) != 0)
			memmove(out + n++ * PG, buf + i * PG, PG);
	*ret_n = n;
	return buf;
fail:
	fprintf(stderr, "codec_bench: cannot read '%s': %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static ssize_t zstd_page(ZSTD_CCtx *c, const uint8_t *page, uint8_t *dst)
{
	size_t r = ZSTD_compress2(c, dst, PG - 1, page, PG);

	return ZSTD_isError(r) ? 0 : (ssize_t)r;
}

static int run(const char *path)
{
	size_t n = 0;
	_cleanup_free_ uint8_t *pages = read_pages(path, &n);
	struct enc e[NR_CODECS] = {0};
	double ctime[NR_CODECS], dtime[NR_CODECS];
	uint64_t bytes[NR_CODECS] = {0};
	ZSTD_CCtx *cc[2] = {ZSTD_createCCtx(), ZSTD_createCCtx()};
	ZSTD_DCtx *d = ZSTD_createDCtx();
	uint8_t out[PG];
	int ret = 1;

	if (!pages || !cc[0] || !cc[1] || !d)
		goto out;
	for (int k = 0; k < 2; k++) {
		ZSTD_CCtx_setParameter(cc[k], ZSTD_c_compressionLevel, 1);
		ZSTD_CCtx_setParameter(cc[k], ZSTD_c_checksumFlag, 0);
		ZSTD_CCtx_setParameter(cc[k], ZSTD_c_contentSizeFlag, 0);
	}
	ZSTD_CCtx_setParameter(cc[1], ZSTD_c_literalCompressionMode, ZSTD_ps_disable);
	for (int k = 0; k < NR_CODECS; k++) {
		e[k].buf = malloc(n * PG + 1);
		e[k].len = calloc(n + 1, sizeof(uint32_t));
		if (!e[k].buf || !e[k].len)
			goto out;
		double t0 = now();
		for (size_t i = 0; i < n; i++) {
			ssize_t r = k == CKPTFS
					    ? compress_page(pages + i * PG, e[k].buf + i * PG, PG)
					    : zstd_page(cc[k], pages + i * PG, e[k].buf + i * PG);
			if (r < 0)
				goto out;
			e[k].len[i] = (uint32_t)r;
			bytes[k] += r ? (uint64_t)r : PG;
		}
		ctime[k] = now() - t0;
		dtime[k] = 1e9;
		for (int rep = 0; rep < 3; rep++) {
			t0 = now();
			for (size_t i = 0; i < n; i++) {
				if (!e[k].len[i])
					memcpy(out, pages + i * PG, PG);
				else if (decompress_page(e[k].buf + i * PG, e[k].len[i], out) < 0)
					goto out;
			}
			double t = now() - t0;
			if (t < dtime[k])
				dtime[k] = t;
		}
		/* Every page must come back as it was. */
		for (size_t i = 0; i < n; i++) {
			const uint8_t *src = pages + i * PG;
			if (e[k].len[i] &&
			    (decompress_page(e[k].buf + i * PG, e[k].len[i], out) < 0 ||
			     memcmp(out, src, PG) != 0)) {
				fprintf(stderr, "codec_bench: %s: page %zu does not round-trip\n",
					codec_name[k], i);
				goto out;
			}
		}
	}
	printf("%s: %zu non-zero pages (%.1f MiB)\n", path, n, (double)n * PG / 1048576);
	printf("  %-34s %12s %8s %10s %8s %11s\n", "codec", "bytes", "vs -1", "decode s", "vs -1",
	       "compress s");
	for (int k = 0; k < NR_CODECS; k++)
		printf("  %-34s %12llu %8.3f %10.3f %8.3f %11.3f\n", codec_name[k],
		       (unsigned long long)bytes[k], (double)bytes[k] / (double)bytes[ZSTD_HUF],
		       dtime[k], dtime[k] / dtime[ZSTD_HUF], ctime[k]);
	ret = 0;
out:
	for (int k = 0; k < NR_CODECS; k++) {
		free(e[k].buf);
		free(e[k].len);
	}
	ZSTD_freeCCtx(cc[0]);
	ZSTD_freeCCtx(cc[1]);
	ZSTD_freeDCtx(d);
	return ret;
}

int main(int argc, char **argv)
{
	int ret = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: codec_bench PAGES.IMG...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++)
		ret |= run(argv[i]);
	return ret;
}
