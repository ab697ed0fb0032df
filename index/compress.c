// SPDX-License-Identifier: MIT
/* For ZSTD_c_literalCompressionMode, an experimental parameter: should a later libzstd ignore
 * it, pages keep Huffman literals; any frame it makes is an ordinary zstd frame. */
#define ZSTD_STATIC_LINKING_ONLY
#include "index/compress.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "common/util.h"
#include "index/store.h"

#define COMPRESS_LEVEL 1

/*
 * Literal coding. zstd Huffman-codes a frame's literals (the bytes no match covers) by
 * default. Building the Huffman table and decoding with it is ~30 % of the decode time of
 * typical memory pages, and every restore and read pays that, while on many pages it saves a
 * few dozen bytes (pointer-like and text-like pages). So a page keeps Huffman-coded literals
 * only where they shrink its frame by at least 1/HUF_MIN_GAIN; elsewhere its literals are
 * stored raw. Both are ordinary zstd frames: readers do not know or care which it is.
 * tests/bench/codec_bench.sh measures it (docs/store-format.md has the numbers).
 */
#define HUF_MIN_GAIN 8

enum { CCTX_HUF, CCTX_RAW_LIT, NR_CCTX };

static pthread_key_t cctx_key[NR_CCTX], dctx_key;
/* This libzstd refused raw literals once: do not build a context per page to hear it again. */
static atomic_bool raw_lit_refused;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void cctx_destroy(void *p)
{
	ZSTD_freeCCtx(p);
}

static void dctx_destroy(void *p)
{
	ZSTD_freeDCtx(p);
}

static void keys_init(void)
{
	for (int i = 0; i < NR_CCTX; i++)
		(void)pthread_key_create(&cctx_key[i], cctx_destroy);
	(void)pthread_key_create(&dctx_key, dctx_destroy);
}

/* This thread's context of kind k; NULL if it cannot be made (for CCTX_RAW_LIT also when this
 * zstd does not know the parameter: every page then keeps zstd's own literal coding). */
static ZSTD_CCtx *thread_cctx(int k)
{
	ZSTD_CCtx *c;

	pthread_once(&keys_once, keys_init);
	c = pthread_getspecific(cctx_key[k]);
	if (!c && k == CCTX_RAW_LIT && atomic_load_explicit(&raw_lit_refused, memory_order_relaxed))
		return NULL;
	if (!c) {
		c = ZSTD_createCCtx();
		if (!c)
			return NULL;
		/* A page is tiny: no checksum or content size needed (the chunk id verifies the
		 * bytes and the size is always one page), which saves bytes per frame. */
		ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, COMPRESS_LEVEL);
		ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
		ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
		ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0);
		if (k == CCTX_RAW_LIT &&
		    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_literalCompressionMode,
							ZSTD_ps_disable))) {
			ZSTD_freeCCtx(c);
			atomic_store_explicit(&raw_lit_refused, true, memory_order_relaxed);
			return NULL;
		}
		pthread_setspecific(cctx_key[k], c);
	}
	return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
	ZSTD_DCtx *d;

	pthread_once(&keys_once, keys_init);
	d = pthread_getspecific(dctx_key);
	if (!d) {
		d = ZSTD_createDCtx();
		if (!d)
			return NULL;
		pthread_setspecific(dctx_key, d);
	}
	return d;
}

ssize_t compress_frame_raw_literals(const void *frame, size_t len, size_t *ret_at)
{
	const uint8_t *f = frame;
	size_t at = 4, fcs_len, hdr;
	ssize_t n;
	uint8_t fhd;
	uint32_t bh;

	/* RFC 8878: magic, frame header descriptor, window descriptor unless single segment,
	 * dictionary id, content size; then the first block's 3-byte header and, for a
	 * compressed block, its literals section header. */
	if (len < 5 || f[0] != 0x28 || f[1] != 0xb5 || f[2] != 0x2f || f[3] != 0xfd)
		return -1;
	fhd = f[at++];
	if (!(fhd & 0x20))
		at++;
	at += (size_t)((const uint8_t[]){0, 1, 2, 4})[fhd & 3];
	fcs_len = (size_t)((const uint8_t[]){0, 2, 4, 8})[fhd >> 6];
	if (fcs_len == 0 && (fhd & 0x20))
		fcs_len = 1;
	at += fcs_len;
	if (at + 4 > len)
		return -1;
	bh = (uint32_t)f[at] | (uint32_t)f[at + 1] << 8 | (uint32_t)f[at + 2] << 16;
	at += 3;
	if (((bh >> 1) & 3) == 1) /* RLE block: no literals */
		return 0;
	if (((bh >> 1) & 3) != 2) /* a raw block (all literal) or reserved */
		return -1;
	switch (f[at] & 3) {
	case 0: /* raw literals */
	case 1: /* one byte repeated */
		break;
	default: /* Huffman-coded */
		return -1;
	}
	if ((f[at] & 4) == 0) {
		n = f[at] >> 3;
		hdr = 1;
	} else if ((f[at] & 8) == 0) {
		if (at + 2 > len)
			return -1;
		n = f[at] >> 4 | f[at + 1] << 4;
		hdr = 2;
	} else {
		if (at + 3 > len)
			return -1;
		n = f[at] >> 4 | f[at + 1] << 4 | f[at + 2] << 12;
		hdr = 3;
	}
	if ((f[at] & 3) == 1) /* one byte repeated: nothing for a Huffman code to gain */
		return 0;
	if (at + hdr + (size_t)n > len)
		return -1;
	if (ret_at)
		*ret_at = at + hdr;
	return n;
}

/* At most how many bytes a Huffman code could save on n raw literals: n less their order-0
 * entropy (no prefix code beats that; the code's table only adds). */
static size_t huf_gain_bound(const uint8_t *lit, size_t n)
{
	uint32_t count[256] = {0};
	double bits = 0;

	for (size_t i = 0; i < n; i++)
		count[lit[i]]++;
	for (int b = 0; b < 256; b++)
		if (count[b])
			bits += count[b] * log2((double)n / count[b]);
	return n - MIN(n, (size_t)(bits / 8));
}

/* One compression with context c into dst; 0 when it would not be smaller than limit. */
static ssize_t compress_with(ZSTD_CCtx *c, const void *page, void *dst, size_t limit)
{
	size_t n = ZSTD_compress2(c, dst, limit, page, STORE_CHUNK_SIZE);

	if (!ZSTD_isError(n))
		return (ssize_t)n;
	if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
		return 0;
	ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
	return -EIO;
}

ssize_t compress_page(const void *page, void *dst, size_t dst_cap)
{
	ZSTD_CCtx *huf = thread_cctx(CCTX_HUF), *raw = thread_cctx(CCTX_RAW_LIT);
	/* Capacity one byte under a page: zstd gives up (dstSize_tooSmall) instead of producing
	 * output that is no smaller than storing raw. */
	size_t limit = dst_cap < STORE_CHUNK_SIZE ? dst_cap : STORE_CHUNK_SIZE - 1;
	uint8_t alt[STORE_CHUNK_SIZE];
	size_t lit_at = 0;
	ssize_t r, h, lit;

	if (!huf)
		return -ENOMEM;
	if (!raw)
		return compress_with(huf, page, dst, limit);
	r = compress_with(raw, page, dst, limit);
	if (r < 0)
		return r;
	if (r > 0) {
		/* A second compression only where Huffman coding could gain enough: at most the
		 * literals' distance from their entropy. Checking costs ~1/10 of compressing. */
		lit = compress_frame_raw_literals(dst, (size_t)r, &lit_at);
		if (lit >= 0 &&
		    (lit * HUF_MIN_GAIN < r ||
		     (ssize_t)huf_gain_bound((const uint8_t *)dst + lit_at, (size_t)lit) *
				     HUF_MIN_GAIN <
			     r))
			return r;
	}
	/* Must beat the raw-literal frame by 1/HUF_MIN_GAIN, or the raw page if there is none. */
	h = compress_with(huf, page, alt, r > 0 ? (size_t)(r - r / HUF_MIN_GAIN) : limit);
	if (h < 0)
		return r > 0 ? r : h;
	if (h == 0)
		return r;
	memcpy(dst, alt, (size_t)h);
	return h;
}

int decompress_page(const void *src, size_t src_len, void *page)
{
	ZSTD_DCtx *d = thread_dctx();
	size_t n;

	if (!d)
		return -ENOMEM;
	n = ZSTD_decompressDCtx(d, page, STORE_CHUNK_SIZE, src, src_len);
	if (ZSTD_isError(n) || n != STORE_CHUNK_SIZE)
		return -EBADMSG;
	return 0;
}
