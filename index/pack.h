/* SPDX-License-Identifier: MIT */
/*
 * pack.h - append-only pack files holding chunk records.
 *
 * Owns: the pack file format and its writer/reader/scanner. Layout (all integers little-endian):
 *
 *   pack header (16 bytes)            record (20-byte header + payload), repeated
 *   +----------+---------+--------+   +------------------+-------------+-------------------+
 *   | CKPTPACK | version | number |   | chunk id (16 B)  | desc (u32)  | payload (len B)   |
 *   |   8 B    |  u32    |  u32   |   +------------------+-------------+-------------------+
 *   +----------+---------+--------+    desc bits 0..23 = payload length, bits 24..27 = codec
 *                                      (0 raw page, 1 zstd frame, 2 raw page whose
 *                                      compression was deferred), bits 28..31 = 0
 *
 * Version 1 packs hold codecs 0 and 1. A pack gets version 2 (rewritten in its header before
 * the first codec-2 record is appended, synced with it) when it holds deferred records, so a
 * build that knows only version 1 refuses it by version instead of calling it damaged. gc
 * compresses deferred records while copying them, so the packs it writes are version 1.
 *
 * Records are self-describing, so a pack can be scanned without the index (gc, fsck, rebuild).
 * No per-record magic or checksum: a record is trusted only after its payload decodes to a
 * page whose keyed XXH3 equals the id in the index (pack_read_chunk() checks both).
 * Invariants: a pack is appended by exactly one process, which holds flock(LOCK_EX) on it for
 * as long as it may append (gc skips locked packs); bytes are fdatasync'd before any index
 * entry refers to them; a torn record at the tail (crash mid-append) is ignored by the scanner.
 * Thread-safety: a pack_writer is used under its owner's lock; readers are stateless (pread).
 */
#ifndef CKPTFS_INDEX_PACK_H
#define CKPTFS_INDEX_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/chunk_id.h"

#define PACK_MAGIC	   "CKPTPACK"
#define PACK_VERSION	   1u
#define PACK_VERSION_DEFER 2u /* may hold PACK_CODEC_DEFER records */
#define PACK_HEADER_LEN	   16u
#define PACK_REC_HDR_LEN   20u
#define PACK_CODEC_RAW	   0u
#define PACK_CODEC_ZSTD	   1u
#define PACK_CODEC_DEFER   2u /* a raw page that gc should compress later */
#define PACK_DESC_LEN_MASK 0x00ffffffu
#define PACK_MAX_REC_LEN   (PACK_REC_HDR_LEN + STORE_CHUNK_SIZE)
#define PACK_DIR	   "packs"

static inline uint32_t pack_desc(uint32_t len, uint32_t codec)
{
	return len | (codec << 24);
}
static inline uint32_t pack_desc_len(uint32_t desc)
{
	return desc & PACK_DESC_LEN_MASK;
}
static inline uint32_t pack_desc_codec(uint32_t desc)
{
	return (desc >> 24) & 0xfu;
}

/* "packs/00000012.pack" into buf (at least 32 bytes). */
void pack_path(uint32_t number, char *buf, size_t len);

/* Encodes one record for page (compressing it) into rec (PACK_MAX_REC_LEN bytes).
 * Returns the record length and the descriptor through ret_desc, or -errno. */
int pack_record_encode(const struct chunk_id *id, const void *page, uint8_t *rec,
		       uint32_t *ret_desc);
/* The same without compressing: a PACK_CODEC_DEFER record (the page as it is). */
int pack_record_encode_deferred(const struct chunk_id *id, const void *page, uint8_t *rec,
				uint32_t *ret_desc);

struct pack_writer;
/* Creates packs/NUMBER.pack under store_dirfd (O_EXCL), locks it, writes and syncs the header. */
int pack_writer_create(int store_dirfd, uint32_t number, struct pack_writer **ret);
void pack_writer_free(struct pack_writer *w);
uint32_t pack_writer_number(const struct pack_writer *w);
uint64_t pack_writer_size(const struct pack_writer *w);
/* Appends already encoded records (one or many back to back); returns their start offset. On
 * error the file is truncated back so no torn record stays. */
int pack_writer_append(struct pack_writer *w, const void *recs, size_t len, uint64_t *ret_off);
/* The same for records spread over iovcnt buffers (iovcnt <= IOV_MAX) totalling len bytes. */
struct iovec;
int pack_writer_appendv(struct pack_writer *w, const struct iovec *iov, int iovcnt, size_t len,
			uint64_t *ret_off);
int pack_writer_sync(struct pack_writer *w);
/* Makes the pack version 2 (once) before its first PACK_CODEC_DEFER record goes in; the next
 * pack_writer_sync makes the header durable together with the records. */
int pack_writer_mark_deferred(struct pack_writer *w);

/* Opens a pack for reading and checks its header (-EBADMSG, -EOPNOTSUPP naming the file). */
int pack_open_read(int store_dirfd, uint32_t number, int *ret_fd);
/* Reads the record at off, checks that it carries id and desc, decodes it and verifies the keyed
 * hash. -EBADMSG on any mismatch (the detail goes to store_last_error). */
int pack_read_chunk(int fd, uint32_t number, uint64_t off, uint32_t desc, const struct chunk_id *id,
		    const uint8_t secret[CHUNK_SECRET_LEN], void *page);
/* Same checks on a record already in memory (rec: header + payload). */
int pack_check_record(const uint8_t *rec, uint32_t number, uint64_t off, uint32_t desc,
		      const struct chunk_id *id, const uint8_t secret[CHUNK_SECRET_LEN],
		      void *page);
/* Decodes a record payload into page (no hash check). */
int pack_decode_payload(uint32_t desc, const void *payload, void *page);

/* Walks every complete record of an open pack in order. cb returns 0 to go on, > 0 to stop,
 * < 0 to fail. *ret_end (optional) gets the offset after the last complete record; a torn
 * tail is not an error. */
typedef int (*pack_scan_cb)(void *ctx, const struct chunk_id *id, uint64_t off, uint32_t desc,
			    const void *payload);
int pack_scan(int fd, uint32_t number, pack_scan_cb cb, void *ctx, uint64_t *ret_end);

#endif
