// SPDX-License-Identifier: MIT
/* test_chunks_read - the read path's guessed record locations (index/chunks.c): a file whose
 * chunks were stored by another file, in blocks of shuffled order, some blocks backwards, with
 * new and zero pages in between, reads back exactly in requests of every size; a damaged
 * payload or a damaged record header on the guessed path reads as EIO for exactly that page
 * (never as wrong bytes) and every other page still reads. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "common/util.h"
#include "index/store_priv.h"
#include "tests/unit/testutil.h"

#define NA	 600u /* pages of a: random, so stored raw, one record after another */
#define BLOCK	 23u  /* b takes a's pages in blocks of this many */
#define PG	 STORE_CHUNK_SIZE
#define REC	 (20u + PG)
#define PACK_HDR 16u

static uint64_t write_file(struct store *s, uint64_t dir, const char *name, const uint8_t *data,
			   size_t len)
{
	struct store_attr f;

	REQUIRE(store_mknod(s, dir, name, S_IFREG | 0644, 0, 0, 0, &f) == 0);
	REQUIRE(store_open_inode(s, f.ino, true) == 0);
	for (size_t done = 0; done < len; done += 256 << 10) {
		size_t n = MIN((size_t)256 << 10, len - done);
		CHECK_EQ(store_write(s, f.ino, data + done, n, done), (ssize_t)n);
	}
	CHECK_EQ(store_release(s, f.ino, true), 0);
	return f.ino;
}

/* Reads all of ino in requests of step bytes and compares with want. */
static void check_all(struct store *s, uint64_t ino, const uint8_t *want, size_t len, size_t step)
{
	uint8_t *back = malloc(step);

	REQUIRE(back);
	for (size_t off = 0; off < len; off += step) {
		size_t n = MIN(step, len - off);

		CHECK_EQ(store_read(s, ino, back, n, off), (ssize_t)n);
		CHECK(memcmp(back, want + off, n) == 0);
	}
	free(back);
}

/* Flips one byte of pack 1 at off. */
static void damage(const char *store, uint64_t off)
{
	char pack[600];
	uint8_t b;
	int fd;

	snprintf(pack, sizeof(pack), "%s/packs/00000001.pack", store);
	fd = open(pack, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	REQUIRE(pread(fd, &b, 1, (off_t)off) == 1);
	b ^= 0x21;
	REQUIRE(pwrite(fd, &b, 1, (off_t)off) == 1);
	close(fd);
}

/* Reads b page by page and in 1 MiB requests: only b's page bad_pg may fail, and must. */
static void check_one_bad(struct store *s, uint64_t ino, const uint8_t *want, size_t len,
			  size_t bad_pg)
{
	uint8_t *back = malloc(1 << 20);
	int bad = 0;

	REQUIRE(back);
	for (size_t pg = 0; pg < len / PG; pg++) {
		ssize_t n = store_read(s, ino, back, PG, pg * PG);

		if (n == -EIO) {
			CHECK_EQ(pg, bad_pg);
			CHECK(strstr(store_last_error(), "unreadable") != NULL);
			bad++;
			continue;
		}
		CHECK_EQ(n, PG);
		CHECK(memcmp(back, want + pg * PG, PG) == 0);
	}
	CHECK_EQ(bad, 1);
	for (size_t off = 0; off < len; off += 1 << 20) {
		size_t n = MIN((size_t)1 << 20, len - off);
		ssize_t r = store_read(s, ino, back, n, off);

		if (bad_pg * PG >= off && bad_pg * PG < off + n) {
			CHECK_EQ(r, -EIO);
		} else {
			CHECK_EQ(r, (ssize_t)n);
			CHECK(memcmp(back, want + off, n) == 0);
		}
	}
	free(back);
}

int main(void)
{
	const char *dir = test_tmpdir("chunks-read");
	uint64_t seed = getenv("SEED") ? strtoull(getenv("SEED"), NULL, 0) : 4242;
	size_t nblocks = (NA + BLOCK - 1) / BLOCK, nb = 0;
	uint8_t *a = malloc((size_t)NA * PG), *b = malloc((size_t)3 * NA * PG);
	size_t *order = malloc(nblocks * sizeof(*order)), *b_from_a = NULL;
	struct store *s = NULL;
	struct store_attr c;
	char path[512];
	uint64_t a_ino, b_ino;

	printf("seed %" PRIu64 "\n", seed);
	rng_seed(seed);
	REQUIRE(a && b && order);
	b_from_a = malloc((size_t)3 * NA * sizeof(*b_from_a));
	REQUIRE(b_from_a);
	for (size_t i = 0; i < (size_t)NA * PG; i++)
		a[i] = (uint8_t)rng_next();
	/* b: a's blocks in shuffled order, every third one backwards, each followed by a new
	 * random page or a zero page, sometimes both. */
	for (size_t i = 0; i < nblocks; i++)
		order[i] = i;
	for (size_t i = nblocks - 1; i > 0; i--) {
		size_t j = rng_next() % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (size_t k = 0; k < nblocks; k++) {
		size_t first = order[k] * BLOCK, cnt = MIN((size_t)BLOCK, NA - first);

		for (size_t i = 0; i < cnt; i++) {
			size_t pa = k % 3 == 2 ? first + cnt - 1 - i : first + i;

			memcpy(b + nb * PG, a + pa * PG, PG);
			b_from_a[nb++] = pa;
		}
		if (k % 2 == 0) {
			for (size_t i = 0; i < PG; i++)
				b[nb * PG + i] = (uint8_t)rng_next();
			b_from_a[nb++] = SIZE_MAX;
		}
		if (k % 5 != 1) {
			memset(b + nb * PG, 0, PG);
			b_from_a[nb++] = SIZE_MAX;
		}
	}

	snprintf(path, sizeof(path), "%s/store", dir);
	REQUIRE(store_init(path) == 0);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "c", 0755, 0, 0, &c) == 0);
	a_ino = write_file(s, c.ino, "a", a, (size_t)NA * PG);
	b_ino = write_file(s, c.ino, "b", b, nb * PG);
	store_close(s);

	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	check_all(s, a_ino, a, (size_t)NA * PG, 1 << 20);
	check_all(s, b_ino, b, nb * PG, 1 << 20);
	check_all(s, b_ino, b, nb * PG, PG);
	check_all(s, b_ino, b, nb * PG, 100 << 10); /* unaligned: edges go through a page */
	check_all(s, b_ino, b, nb * PG, 3 * PG + 1);
	store_close(s);

	/* a was the first thing written: its page i is record i of pack 1. Damage a payload in
	 * the middle of a forward block of b, where b's read follows a's records by guessing. */
	size_t bad_b = SIZE_MAX;
	for (size_t i = 1; i + 1 < nb && bad_b == SIZE_MAX; i++)
		if (b_from_a[i] != SIZE_MAX && b_from_a[i - 1] + 1 == b_from_a[i] &&
		    b_from_a[i] + 1 == b_from_a[i + 1])
			bad_b = i;
	REQUIRE(bad_b != SIZE_MAX);
	damage(path, PACK_HDR + b_from_a[bad_b] * REC + 20 + 1000);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	check_one_bad(s, b_ino, b, nb * PG, bad_b);
	store_close(s);
	damage(path, PACK_HDR + b_from_a[bad_b] * REC + 20 + 1000); /* repaired */

	/* Now the id in the record header of the next page: the guess misses, the index still
	 * points there, and the read must fail the same way. */
	damage(path, PACK_HDR + b_from_a[bad_b + 1] * REC + 3);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	check_one_bad(s, b_ino, b, nb * PG, bad_b + 1);
	store_close(s);

	free(a);
	free(b);
	free(order);
	free(b_from_a);
	return test_result("test_chunks_read");
}
