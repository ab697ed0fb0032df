/* SPDX-License-Identifier: MIT */
/*
 * chunk_id.h - chunk identities: keyed XXH3-128 over one zero-padded 4 KiB page.
 *
 * Owns: the mapping page -> 16-byte id, the all-zero test (an all-zero page is a hole and has no
 * id), and the hex spelling used in logs, errors and manifests. The key ("secret") is the
 * store's 192 random bytes, so ids cannot be predicted without reading the store header.
 * Invariant: the id bytes are XXH128_canonical_t (big-endian high64 then low64), so the same
 * page gives the same 16 bytes on every host.
 * Thread-safety: stateless; safe from any thread.
 */
#ifndef CKPTFS_INDEX_CHUNK_ID_H
#define CKPTFS_INDEX_CHUNK_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/store.h"

#define CHUNK_SECRET_LEN 192u
#define CHUNK_ID_HEX_LEN (2 * STORE_CHUNK_ID_LEN + 1)

struct chunk_id {
	uint8_t b[STORE_CHUNK_ID_LEN];
};

/* page must be STORE_CHUNK_SIZE bytes. */
void chunk_id_compute(const uint8_t secret[CHUNK_SECRET_LEN], const void *page,
		      struct chunk_id *ret_id);
bool chunk_id_is_null(const struct chunk_id *id);
bool chunk_id_equal(const struct chunk_id *a, const struct chunk_id *b);
bool chunk_page_is_zero(const void *page);
/* Writes 32 hex digits and a NUL into buf (CHUNK_ID_HEX_LEN bytes); returns buf. */
char *chunk_id_to_hex(const uint8_t id[STORE_CHUNK_ID_LEN], char *buf);
/* Unkeyed XXH3-128 of arbitrary bytes (manifest content ids), canonical byte order. */
void content_hash(const void *data, size_t len, uint8_t ret_id[STORE_CONTENT_ID_LEN]);

#endif
