// SPDX-License-Identifier: MIT
#include "index/chunk_id.h"

#include <string.h>
#include <xxhash.h>

void chunk_id_compute(const uint8_t secret[CHUNK_SECRET_LEN], const void *page,
		      struct chunk_id *ret_id)
{
	XXH128_hash_t h = XXH3_128bits_withSecret(page, STORE_CHUNK_SIZE, secret, CHUNK_SECRET_LEN);
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	memcpy(ret_id->b, c.digest, sizeof(ret_id->b));
}

bool chunk_id_is_null(const struct chunk_id *id)
{
	static const struct chunk_id zero;

	return memcmp(id->b, zero.b, sizeof(zero.b)) == 0;
}

bool chunk_id_equal(const struct chunk_id *a, const struct chunk_id *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

bool chunk_page_is_zero(const void *page)
{
	const uint64_t *w = page;

	/* Compare the first word, then the page against itself shifted by one word: equal only
	 * if every word equals its neighbour, i.e. all words are the first (zero) word. */
	if (w[0] != 0)
		return false;
	return memcmp(w, w + 1, STORE_CHUNK_SIZE - sizeof(*w)) == 0;
}

char *chunk_id_to_hex(const uint8_t id[STORE_CHUNK_ID_LEN], char *buf)
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned i = 0; i < STORE_CHUNK_ID_LEN; i++) {
		buf[2 * i] = digits[id[i] >> 4];
		buf[2 * i + 1] = digits[id[i] & 15];
	}
	buf[2 * STORE_CHUNK_ID_LEN] = '\0';
	return buf;
}

void content_hash(const void *data, size_t len, uint8_t ret_id[STORE_CONTENT_ID_LEN])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
	memcpy(ret_id, c.digest, STORE_CONTENT_ID_LEN);
}
