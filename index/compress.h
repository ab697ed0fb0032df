/* SPDX-License-Identifier: MIT */
/*
 * compress.h - per-chunk zstd compression (level 1) with per-thread reusable contexts.
 *
 * Owns: two ZSTD_CCtx (literals Huffman-coded / raw) and one ZSTD_DCtx per thread (created on
 * first use, freed at thread exit), and the choice of literal coding per page (compress.c).
 * Invariant: compress_page() only reports success when the result is strictly smaller than a
 * page; otherwise the caller stores the page raw. zstd error codes never leave this module.
 * Thread-safety: safe from any thread (contexts are thread-local).
 */
#ifndef CKPTFS_INDEX_COMPRESS_H
#define CKPTFS_INDEX_COMPRESS_H

#include <stddef.h>
#include <sys/types.h>

/* Compresses one STORE_CHUNK_SIZE page into dst (dst_cap >= STORE_CHUNK_SIZE). Returns the
 * compressed length, 0 if compression would not shrink the page, or -errno. */
ssize_t compress_page(const void *page, void *dst, size_t dst_cap);
/* The number of literal bytes a frame stores raw (not Huffman-coded) in its first block (0 for
 * literals that are one byte repeated), or -1 if it Huffman-codes them or the frame is not one
 * this module writes or is cut short. With ret_at, where in the frame they start. */
ssize_t compress_frame_raw_literals(const void *frame, size_t len, size_t *ret_at);
/* Decompresses src into exactly one page. -EBADMSG if src is not a valid frame of that size. */
int decompress_page(const void *src, size_t src_len, void *page);

#endif
