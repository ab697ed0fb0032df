// SPDX-License-Identifier: MIT
/* test_chunk_id - keyed chunk ids, the zero-page test, hex spelling, per-page compression. */
#include "index/chunk_id.h"
#include "index/compress.h"
#include "tests/unit/testutil.h"

int main(void)
{
	uint8_t secret[CHUNK_SECRET_LEN], secret2[CHUNK_SECRET_LEN];
	uint8_t page[STORE_CHUNK_SIZE], page2[STORE_CHUNK_SIZE], out[STORE_CHUNK_SIZE];
	struct chunk_id a, b, c;
	char hex[CHUNK_ID_HEX_LEN];
	ssize_t n;

	for (unsigned i = 0; i < CHUNK_SECRET_LEN; i++) {
		secret[i] = (uint8_t)rng_next();
		secret2[i] = secret[i];
	}
	secret2[100] ^= 1;
	for (unsigned i = 0; i < STORE_CHUNK_SIZE; i++)
		page[i] = (uint8_t)(i * 7);

	/* Same page, same key: same id; another key or one flipped bit: another id. */
	chunk_id_compute(secret, page, &a);
	chunk_id_compute(secret, page, &b);
	CHECK(chunk_id_equal(&a, &b));
	CHECK(!chunk_id_is_null(&a));
	chunk_id_compute(secret2, page, &c);
	CHECK(!chunk_id_equal(&a, &c));
	memcpy(page2, page, sizeof(page));
	page2[STORE_CHUNK_SIZE - 1] ^= 0x80;
	chunk_id_compute(secret, page2, &c);
	CHECK(!chunk_id_equal(&a, &c));

	/* Zero detection looks at every byte, the last one included. */
	memset(page2, 0, sizeof(page2));
	CHECK(chunk_page_is_zero(page2));
	page2[STORE_CHUNK_SIZE - 1] = 1;
	CHECK(!chunk_page_is_zero(page2));
	page2[STORE_CHUNK_SIZE - 1] = 0;
	page2[0] = 1;
	CHECK(!chunk_page_is_zero(page2));
	page2[0] = 0;
	page2[2048] = 1;
	CHECK(!chunk_page_is_zero(page2));

	struct chunk_id h = {{0x00, 0x01, 0xab, 0xff}};
	CHECK(strcmp(chunk_id_to_hex(h.b, hex), "0001abff000000000000000000000000") == 0);

	/* Compressible page round-trips through zstd and shrinks. */
	n = compress_page(page, out, sizeof(out));
	CHECK(n > 0 && n < (ssize_t)STORE_CHUNK_SIZE);
	memset(page2, 0xee, sizeof(page2));
	CHECK_EQ(decompress_page(out, (size_t)n, page2), 0);
	CHECK(memcmp(page, page2, sizeof(page)) == 0);
	/* A truncated or damaged frame is refused, never partly decoded. */
	CHECK_EQ(decompress_page(out, (size_t)n - 1, page2), -EBADMSG);
	out[0] ^= 0xff;
	CHECK_EQ(decompress_page(out, (size_t)n, page2), -EBADMSG);
	/* Random bytes do not shrink: the caller stores them raw. */
	for (unsigned i = 0; i < STORE_CHUNK_SIZE; i++)
		page2[i] = (uint8_t)rng_next();
	CHECK_EQ(compress_page(page2, out, sizeof(out)), 0);

	/* Literal coding per page: pointer-like words (a base plus random low bits; matches are
	 * short, literals many but nearly random) keep raw literals, as Huffman coding saves them
	 * little; bytes of a small alphabet without repeats (nothing for matches, 3 bits of 8 per
	 * byte) are Huffman-coded. Both round-trip. */
	for (unsigned i = 0; i < STORE_CHUNK_SIZE / 8; i++) {
		uint64_t w = 0x00007f3a12400000ULL + (rng_next() & 0xffff8);

		memcpy(page2 + i * 8, &w, 8);
	}
	n = compress_page(page2, out, sizeof(out));
	CHECK(n > 0 && n < (ssize_t)STORE_CHUNK_SIZE);
	CHECK(compress_frame_raw_literals(out, (size_t)n, NULL) > 0);
	memset(page, 0, sizeof(page));
	CHECK_EQ(decompress_page(out, (size_t)n, page), 0);
	CHECK(memcmp(page, page2, sizeof(page)) == 0);
	for (unsigned i = 0; i < STORE_CHUNK_SIZE; i++)
		page2[i] = (uint8_t)('a' + rng_next() % 8);
	n = compress_page(page2, out, sizeof(out));
	CHECK(n > 0 && n < (ssize_t)(STORE_CHUNK_SIZE / 2));
	CHECK_EQ(compress_frame_raw_literals(out, (size_t)n, NULL), -1);
	memset(page, 0, sizeof(page));
	CHECK_EQ(decompress_page(out, (size_t)n, page), 0);
	CHECK(memcmp(page, page2, sizeof(page)) == 0);
	/* The frame parser: 5, 12 and 20-bit literal sizes; anything else is "unknown". */
	{
		/* magic, FHD 0x00 (window descriptor follows), window, block header (compressed,
		 * last), literals header */
		static uint8_t f[12 + 0x3021] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x48, 0x05};

		f[9] = 0x00 | (17 << 3); /* raw, 1-byte header */
		CHECK_EQ(compress_frame_raw_literals(f, sizeof(f), NULL), 17);
		f[9] = 0x04 | (0x3 << 4); /* raw, 2-byte header: 0x3 + (0x40 << 4) */
		f[10] = 0x40;
		CHECK_EQ(compress_frame_raw_literals(f, sizeof(f), NULL), 0x403);
		f[9] = 0x0c | (0x1 << 4); /* raw, 3-byte header: 0x1 + (0x02 << 4) + (0x03 << 12) */
		f[10] = 0x02;
		f[11] = 0x03;
		CHECK_EQ(compress_frame_raw_literals(f, sizeof(f), NULL), 0x3021);
		CHECK_EQ(compress_frame_raw_literals(f, 11, NULL), -1); /* header cut short */
		CHECK_EQ(compress_frame_raw_literals(f, 12 + 0x3020, NULL), -1); /* literals cut */
		f[9] = 0x01 | (17 << 3); /* one byte repeated 17 times */
		CHECK_EQ(compress_frame_raw_literals(f, sizeof(f), NULL), 0);
		f[9] = 0x02; /* Huffman-coded */
		CHECK_EQ(compress_frame_raw_literals(f, sizeof(f), NULL), -1);
		f[6] = 0x01; /* a raw block */
		CHECK_EQ(compress_frame_raw_literals(f, sizeof(f), NULL), -1);
		f[0] = 0; /* not a zstd frame */
		CHECK_EQ(compress_frame_raw_literals(f, sizeof(f), NULL), -1);
	}

	/* Content hash: canonical (fixed) bytes for fixed input. */
	uint8_t cid[STORE_CONTENT_ID_LEN], cid2[STORE_CONTENT_ID_LEN];
	content_hash("abc", 3, cid);
	content_hash("abc", 3, cid2);
	CHECK(memcmp(cid, cid2, sizeof(cid)) == 0);
	content_hash("abd", 3, cid2);
	CHECK(memcmp(cid, cid2, sizeof(cid)) != 0);
	return test_result("test_chunk_id");
}
