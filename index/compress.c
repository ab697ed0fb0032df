// SPDX-License-Identifier: MIT
#include "index/compress.h"

#include <errno.h>
#include <pthread.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "index/store.h"

#define COMPRESS_LEVEL 1

static pthread_key_t cctx_key, dctx_key;
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
	(void)pthread_key_create(&cctx_key, cctx_destroy);
	(void)pthread_key_create(&dctx_key, dctx_destroy);
}

static ZSTD_CCtx *thread_cctx(void)
{
	ZSTD_CCtx *c;

	pthread_once(&keys_once, keys_init);
	c = pthread_getspecific(cctx_key);
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
		pthread_setspecific(cctx_key, c);
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

ssize_t compress_page(const void *page, void *dst, size_t dst_cap)
{
	ZSTD_CCtx *c = thread_cctx();
	size_t n;

	if (!c)
		return -ENOMEM;
	/* Capacity one byte under a page: zstd gives up (dstSize_tooSmall) instead of producing
	 * output that is no smaller than storing raw. */
	n = ZSTD_compress2(c, dst, dst_cap < STORE_CHUNK_SIZE ? dst_cap : STORE_CHUNK_SIZE - 1,
			   page, STORE_CHUNK_SIZE);
	if (ZSTD_isError(n)) {
		if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
			return 0;
		ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
		return -EIO;
	}
	return (ssize_t)n;
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
