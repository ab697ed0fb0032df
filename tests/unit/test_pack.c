// SPDX-License-Identifier: MIT
/* test_pack - pack files: create/lock, append, read back with verification, scan (also with a
 * torn tail), and refusal of damaged headers and unknown versions. */
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "common/util.h"
#include "index/pack.h"
#include "tests/unit/testutil.h"

#define NREC 50

struct rec {
	struct chunk_id id;
	uint64_t off;
	uint32_t desc;
};

static struct rec recs[NREC];
static uint8_t pages[NREC][STORE_CHUNK_SIZE];

struct scan_ctx {
	int n;
	bool mismatch;
};

static int scan_cb(void *ctx, const struct chunk_id *id, uint64_t off, uint32_t desc,
		   const void *payload)
{
	struct scan_ctx *c = ctx;
	uint8_t page[STORE_CHUNK_SIZE];

	if (c->n >= NREC || !chunk_id_equal(id, &recs[c->n].id) || off != recs[c->n].off ||
	    desc != recs[c->n].desc || pack_decode_payload(desc, payload, page) < 0 ||
	    memcmp(page, pages[c->n], STORE_CHUNK_SIZE) != 0)
		c->mismatch = true;
	c->n++;
	return 0;
}

int main(void)
{
	const char *dir = test_tmpdir("pack");
	uint8_t secret[CHUNK_SECRET_LEN], rec[PACK_MAX_REC_LEN], page[STORE_CHUNK_SIZE];
	struct pack_writer *w = NULL, *w2 = NULL;
	struct scan_ctx sc = {0};
	uint64_t end, off;
	char path[512];
	int dirfd, fd, r, raw = 0, zst = 0;

	for (unsigned i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)rng_next();
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(dirfd >= 0);
	REQUIRE(mkdirat(dirfd, PACK_DIR, 0755) == 0);
	REQUIRE(pack_writer_create(dirfd, 7, &w) == 0);
	CHECK_EQ(pack_writer_number(w), 7);
	CHECK_EQ(pack_writer_size(w), PACK_HEADER_LEN);
	CHECK_EQ(pack_writer_create(dirfd, 7, &w2), -EEXIST);
	/* The writer holds an exclusive flock: gc's non-blocking probe must fail. */
	snprintf(path, sizeof(path), "%s/packs/00000007.pack", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	CHECK(flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
	close(fd);

	for (int i = 0; i < NREC; i++) {
		for (unsigned j = 0; j < STORE_CHUNK_SIZE; j++)
			pages[i][j] = i % 2 ? (uint8_t)rng_next() : (uint8_t)(j / (i + 1));
		chunk_id_compute(secret, pages[i], &recs[i].id);
		r = pack_record_encode(&recs[i].id, pages[i], rec, &recs[i].desc);
		REQUIRE(r > 0);
		CHECK_EQ(r, PACK_REC_HDR_LEN + pack_desc_len(recs[i].desc));
		if (pack_desc_codec(recs[i].desc) == PACK_CODEC_RAW)
			raw++;
		else
			zst++;
		CHECK_EQ(pack_writer_append(w, rec, (size_t)r, &recs[i].off), 0);
	}
	CHECK(raw > 0 && zst > 0);
	CHECK_EQ(pack_writer_sync(w), 0);

	/* Vectored append of already encoded records lands them back to back (own pack 9). */
	{
		static uint8_t vrec[3][PACK_MAX_REC_LEN];
		struct pack_writer *wv = NULL;
		struct iovec iov[3];
		uint32_t vdesc[3];
		size_t total = 0;
		uint64_t voff;
		int vfd;

		REQUIRE(pack_writer_create(dirfd, 9, &wv) == 0);
		for (int i = 0; i < 3; i++) {
			int n = pack_record_encode(&recs[i].id, pages[i], vrec[i], &vdesc[i]);
			REQUIRE(n > 0);
			iov[i].iov_base = vrec[i];
			iov[i].iov_len = (size_t)n;
			total += (size_t)n;
		}
		CHECK_EQ(pack_writer_appendv(wv, iov, 3, total, &voff), 0);
		CHECK_EQ(voff, PACK_HEADER_LEN);
		CHECK_EQ(pack_writer_size(wv), PACK_HEADER_LEN + total);
		CHECK_EQ(pack_writer_sync(wv), 0);
		REQUIRE(pack_open_read(dirfd, 9, &vfd) == 0);
		for (int i = 0; i < 3; i++) {
			CHECK_EQ(pack_read_chunk(vfd, 9, voff, vdesc[i], &recs[i].id, secret, page),
				 0);
			CHECK(memcmp(page, pages[i], sizeof(page)) == 0);
			voff += iov[i].iov_len;
		}
		close(vfd);
		pack_writer_free(wv);
	}

	REQUIRE(pack_open_read(dirfd, 7, &fd) == 0);
	for (int i = 0; i < NREC; i++) {
		memset(page, 0, sizeof(page));
		CHECK_EQ(pack_read_chunk(fd, 7, recs[i].off, recs[i].desc, &recs[i].id, secret,
					 page),
			 0);
		CHECK(memcmp(page, pages[i], sizeof(page)) == 0);
	}
	/* Wrong id or wrong location: refused, with the chunk named. */
	CHECK_EQ(pack_read_chunk(fd, 7, recs[1].off, recs[1].desc, &recs[2].id, secret, page),
		 -EBADMSG);
	CHECK(strstr(store_last_error(), "does not match") != NULL);
	secret[0] ^= 1;
	CHECK_EQ(pack_read_chunk(fd, 7, recs[1].off, recs[1].desc, &recs[1].id, secret, page),
		 -EBADMSG);
	CHECK(strstr(store_last_error(), "hash mismatch") != NULL);
	secret[0] ^= 1;

	CHECK_EQ(pack_scan(fd, 7, scan_cb, &sc, &end), 0);
	CHECK_EQ(sc.n, NREC);
	CHECK(!sc.mismatch);
	CHECK_EQ(end, pack_writer_size(w));
	close(fd);

	/* A torn tail (crash mid-append) ends the scan at the last whole record. */
	off = recs[NREC - 1].off;
	pack_writer_free(w);
	REQUIRE(truncate(path, (off_t)(off + 30)) == 0);
	REQUIRE(pack_open_read(dirfd, 7, &fd) == 0);
	memset(&sc, 0, sizeof(sc));
	CHECK_EQ(pack_scan(fd, 7, scan_cb, &sc, &end), 0);
	CHECK_EQ(sc.n, NREC - 1);
	CHECK_EQ(end, off);
	close(fd);

	/* Header damage and unknown versions. */
	fd = open(path, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	uint8_t v[4];
	le32_put(v, 3); /* 2 is a pack with deferred records */
	REQUIRE(pwrite(fd, v, 4, 8) == 4);
	close(fd);
	CHECK_EQ(pack_open_read(dirfd, 7, &fd), -EOPNOTSUPP);
	CHECK(strstr(store_last_error(), "reads version 1") != NULL);
	CHECK_EQ(pack_open_read(dirfd, 8, &fd), -ENOENT);
	REQUIRE(truncate(path, 10) == 0);
	CHECK_EQ(pack_open_read(dirfd, 7, &fd), -EBADMSG);
	CHECK(strstr(store_last_error(), "truncated") != NULL);
	close(dirfd);
	return test_result("test_pack");
}
