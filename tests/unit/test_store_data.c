// SPDX-License-Identifier: MIT
/* test_store_data - file data through the store API against an in-memory model: random writes,
 * truncates, hole punches and reads (with dirty-buffer spills forced by a tiny budget), reopen,
 * dedup (same data twice adds no pack bytes), refcounts and garbage after overwrite/unlink/
 * remove, unlinked-while-open files, and corruption that must read as EIO, never wrong bytes. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "common/util.h"
#include "index/store_priv.h"
#include "tests/unit/testutil.h"

#define MODEL_MAX (6u << 20)

static uint8_t *model;
static uint64_t model_size;

static void fill(uint8_t *p, size_t n)
{
	/* Mix of page kinds: zeros, small repeating patterns, random bytes. */
	size_t i = 0;
	while (i < n) {
		size_t run = 1 + rng_next() % 6000;
		unsigned kind = rng_next() % 3;
		uint8_t b = (uint8_t)rng_next();

		run = MIN(run, n - i);
		for (size_t j = 0; j < run; j++)
			p[i + j] = kind == 0   ? 0
				   : kind == 1 ? (uint8_t)(b + j % 7)
					       : (uint8_t)rng_next();
		i += run;
	}
}

static void check_read(struct store *s, uint64_t ino, uint64_t off, size_t len)
{
	static uint8_t buf[1 << 20];
	size_t want;
	ssize_t n;

	len = MIN(len, sizeof(buf));
	want = off >= model_size ? 0 : MIN(len, model_size - off);
	n = store_read(s, ino, buf, len, off);
	CHECK_EQ(n, (ssize_t)want);
	if (n == (ssize_t)want && want && memcmp(buf, model + off, want) != 0) {
		fprintf(stderr, "data mismatch at off %" PRIu64 " len %zu\n", off, want);
		test_failures++;
	}
}

static void random_ops(struct store *s, uint64_t ino, int nops)
{
	static uint8_t data[400 << 10];

	for (int op = 0; op < nops && !test_failures; op++) {
		unsigned what = rng_next() % 100;
		uint64_t off = rng_next() % (MODEL_MAX - sizeof(data));

		if (what < 4)
			off &= ~(uint64_t)(STORE_CHUNK_SIZE - 1);
		if (what < 50) {
			size_t len = 1 + rng_next() % sizeof(data);
			fill(data, len);
			CHECK_EQ(store_write(s, ino, data, len, off), (ssize_t)len);
			memcpy(model + off, data, len);
			if (off + len > model_size)
				model_size = off + len;
		} else if (what < 56) {
			struct store_attr a = {.size = rng_next() % MODEL_MAX};
			CHECK_EQ(store_setattr(s, ino, &a, STORE_SET_SIZE, &a), 0);
			if (a.size < model_size)
				memset(model + a.size, 0, model_size - a.size);
			model_size = a.size;
		} else if (what < 62) {
			uint64_t len = rng_next() % (1 << 20);
			uint64_t end = MIN(off + len, model_size);
			CHECK_EQ(store_fallocate(s, ino, true, true, off, len), 0);
			if (off < end)
				memset(model + off, 0, end - off);
		} else if (what < 64) {
			CHECK_EQ(store_fsync(s, ino, false), 0);
		} else {
			check_read(s, ino, rng_next() % (model_size + 8192),
				   1 + rng_next() % (1 << 20));
		}
		if (what < 62) {
			struct store_attr a;
			CHECK_EQ(store_getattr(s, ino, &a), 0);
			CHECK_EQ(a.size, model_size);
		}
	}
	/* A full comparison at the end. */
	for (uint64_t off = 0; off < model_size; off += 1 << 20)
		check_read(s, ino, off, 1 << 20);
}

static void test_random(const char *path)
{
	struct store *s = NULL;
	struct store_attr c, f;

	model = calloc(1, MODEL_MAX);
	REQUIRE(model);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	/* Force spills into packs mid-stream, and many packs, read across. The flusher thread
	 * reads the budget under s->mu, the roll size under s->pack_mu. */
	pthread_mutex_lock(&s->mu);
	s->dirty_budget = 1 << 20;
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_lock(&s->pack_mu);
	s->pack_roll_bytes = 1 << 20;
	pthread_mutex_unlock(&s->pack_mu);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "rnd", 0755, 0, 0, &c) == 0);
	REQUIRE(store_mknod(s, c.ino, "f", S_IFREG | 0644, 0, 0, 0, &f) == 0);
	REQUIRE(store_open_inode(s, f.ino, true) == 0);
	random_ops(s, f.ino, 1500);
	CHECK_EQ(store_release(s, f.ino, true), 0);
	store_close(s);

	/* Everything comes back after a reopen. */
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	CHECK_EQ(store_getattr(s, f.ino, &f), 0);
	CHECK_EQ(f.size, model_size);
	for (uint64_t off = 0; off < model_size; off += 1 << 20)
		check_read(s, f.ino, off, 1 << 20);
	/* Many small packs were written and every one is still needed or garbage. */
	struct store_df df;
	CHECK_EQ(store_df(s, &df), 0);
	CHECK(df.pack_bytes > 4 * (1 << 20));
	/* And keeps working with the default budget after the reopen. */
	REQUIRE(store_open_inode(s, f.ino, true) == 0);
	random_ops(s, f.ino, 300);
	CHECK_EQ(store_release(s, f.ino, true), 0);
	store_close(s);
	free(model);
}

static uint64_t write_file(struct store *s, uint64_t dir, const char *name, const uint8_t *data,
			   size_t len, uint64_t off)
{
	struct store_attr f;

	REQUIRE(store_mknod(s, dir, name, S_IFREG | 0644, 0, 0, 0, &f) == 0);
	REQUIRE(store_open_inode(s, f.ino, true) == 0);
	for (size_t done = 0; done < len; done += 128 << 10) {
		size_t n = MIN((size_t)128 << 10, len - done);
		CHECK_EQ(store_write(s, f.ino, data + done, n, off + done), (ssize_t)n);
	}
	CHECK_EQ(store_release(s, f.ino, true), 0);
	return f.ino;
}

static void test_dedup_refcounts(const char *path)
{
	struct store *s = NULL;
	struct store_attr c, c2, a;
	struct store_df d0, d1, d2, d3, d4;
	size_t len = 4 << 20;
	uint8_t *data = malloc(len), *other = malloc(len), *back = malloc(len);

	REQUIRE(data && other && back);
	fill(data, len);
	/* Random bytes: no page of it can equal a page of data. */
	for (size_t i = 0; i < len; i++)
		other[i] = (uint8_t)rng_next();
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "d1", 0755, 0, 0, &c) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "d2", 0755, 0, 0, &c2) == 0);
	CHECK_EQ(store_df(s, &d0), 0);
	uint64_t a_ino = write_file(s, c.ino, "a", data, len, 0);
	CHECK_EQ(store_df(s, &d1), 0);
	CHECK(d1.pack_bytes > d0.pack_bytes);
	CHECK(d1.nchunks > d0.nchunks);
	/* Same bytes in another checkpoint, shifted by whole pages: no new pack bytes. */
	uint64_t b_ino = write_file(s, c2.ino, "b", data, len, 3 * STORE_CHUNK_SIZE);
	CHECK_EQ(store_df(s, &d2), 0);
	CHECK_EQ(d2.pack_bytes, d1.pack_bytes);
	CHECK_EQ(d2.nchunks, d1.nchunks);
	CHECK_EQ(d2.logical_bytes, d1.logical_bytes + len + 3 * STORE_CHUNK_SIZE);
	CHECK_EQ(d2.garbage_bytes, 0);
	CHECK_EQ(store_read(s, b_ino, back, len, 3 * STORE_CHUNK_SIZE), (ssize_t)len);
	CHECK(memcmp(back, data, len) == 0);
	CHECK_EQ(store_read(s, b_ino, back, 3 * STORE_CHUNK_SIZE, 0), 3 * STORE_CHUNK_SIZE);
	CHECK(back[0] == 0 && back[3 * STORE_CHUNK_SIZE - 1] == 0);

	struct store_ckpt_info i1, i2;
	CHECK_EQ(store_ckpt_info(s, "d1", true, &i1), 0);
	CHECK_EQ(store_ckpt_info(s, "d2", true, &i2), 0);
	CHECK_EQ(i1.stored_bytes, i2.stored_bytes);
	CHECK_EQ(i1.unique_bytes, 0); /* every chunk is shared */
	CHECK_EQ(i1.logical_bytes, len);

	/* Overwrite b entirely: a still holds the old chunks, so still no garbage. */
	REQUIRE(store_open_inode(s, b_ino, true) == 0);
	CHECK_EQ(store_write(s, b_ino, other, len, 3 * STORE_CHUNK_SIZE), (ssize_t)len);
	CHECK_EQ(store_release(s, b_ino, true), 0);
	CHECK_EQ(store_df(s, &d3), 0);
	CHECK_EQ(d3.garbage_bytes, 0);
	CHECK(d3.nchunks > d2.nchunks);
	CHECK_EQ(store_ckpt_info(s, "d1", true, &i1), 0);
	CHECK_EQ(i1.unique_bytes, i1.stored_bytes);
	/* Unlink a: its chunks lose their last reference and become garbage. */
	CHECK_EQ(store_unlink(s, c.ino, "a"), 0);
	CHECK_EQ(store_getattr(s, a_ino, &a), -ENOENT);
	CHECK_EQ(store_df(s, &d4), 0);
	CHECK_EQ(d4.garbage_bytes, i1.stored_bytes);
	CHECK_EQ(d4.nchunks, d3.nchunks - d2.nchunks);
	/* Removing the other checkpoint leaves nothing referenced. */
	CHECK_EQ(store_ckpt_remove(s, "d2"), 0);
	CHECK_EQ(store_df(s, &d4), 0);
	CHECK_EQ(d4.nchunks, 0);
	CHECK_EQ(d4.stored_bytes, 0);
	/* Every record in the packs is now garbage: one pack, 16-byte header. */
	CHECK_EQ(d4.garbage_bytes, d4.pack_bytes - 16);
	store_close(s);
	free(data);
	free(other);
	free(back);
}

static void test_unlinked_open(const char *path)
{
	struct store *s = NULL;
	struct store_attr c, f, a;
	uint8_t buf[10000], back[10000];

	fill(buf, sizeof(buf));
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "u", 0755, 0, 0, &c) == 0);
	REQUIRE(store_mknod(s, c.ino, "f", S_IFREG | 0644, 0, 0, 0, &f) == 0);
	REQUIRE(store_open_inode(s, f.ino, true) == 0);
	CHECK_EQ(store_write(s, f.ino, buf, sizeof(buf), 0), sizeof(buf));
	CHECK_EQ(store_fsync(s, f.ino, false), 0);
	CHECK_EQ(store_unlink(s, c.ino, "f"), 0);
	CHECK_EQ(store_lookup(s, c.ino, "f", &a), -ENOENT);
	CHECK_EQ(store_getattr(s, f.ino, &a), 0);
	CHECK_EQ(a.nlink, 0);
	CHECK_EQ(store_write(s, f.ino, "abc", 3, sizeof(buf)), 3);
	CHECK_EQ(store_read(s, f.ino, back, sizeof(back), 0), sizeof(back));
	CHECK(memcmp(buf, back, sizeof(buf)) == 0);
	CHECK_EQ(store_release(s, f.ino, true), 0);
	CHECK_EQ(store_getattr(s, f.ino, &a), -ENOENT);
	store_close(s);
}

static void test_corruption(const char *dir)
{
	char path[512], pack[600];
	struct store *s = NULL;
	struct store_attr c, f;
	uint8_t *data = malloc(1 << 20), *back = malloc(1 << 20);
	ssize_t n;
	int fd;

	REQUIRE(data && back);
	snprintf(path, sizeof(path), "%s/corrupt", dir);
	REQUIRE(store_init(path) == 0);
	for (size_t i = 0; i < (1 << 20); i++)
		data[i] = (uint8_t)rng_next();
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "c", 0755, 0, 0, &c) == 0);
	f.ino = write_file(s, c.ino, "f", data, 1 << 20, 0);
	store_close(s);

	/* Random data is stored raw: flip a byte in the middle of the pack. */
	snprintf(pack, sizeof(pack), "%s/packs/00000001.pack", path);
	fd = open(pack, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	uint8_t b;
	off_t at = (off_t)(16 + 100 * (20 + 4096) + 20 + 77);
	REQUIRE(pread(fd, &b, 1, at) == 1);
	b ^= 0x40;
	REQUIRE(pwrite(fd, &b, 1, at) == 1);
	close(fd);

	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	n = store_read(s, f.ino, back, 1 << 20, 0);
	CHECK_EQ(n, -EIO);
	CHECK(strstr(store_last_error(), "chunk ") != NULL);
	CHECK(strstr(store_last_error(), "00000001.pack") != NULL);
	CHECK(strstr(store_last_error(), "inode ") != NULL);
	/* Exactly one page is damaged; every other page still reads back exactly. */
	int bad = 0;
	for (uint64_t pg = 0; pg < 256; pg++) {
		n = store_read(s, f.ino, back, 4096, pg * 4096);
		if (n == -EIO) {
			bad++;
			continue;
		}
		CHECK_EQ(n, 4096);
		CHECK(memcmp(back, data + pg * 4096, 4096) == 0);
	}
	CHECK_EQ(bad, 1);
	store_close(s);

	/* An unknown store version is refused naming the versions this build reads. */
	snprintf(pack, sizeof(pack), "%s/ckptfs-store", path);
	fd = open(pack, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	uint8_t v[4] = {9, 0, 0, 0};
	REQUIRE(pwrite(fd, v, 4, 8) == 4);
	close(fd);
	CHECK_EQ(store_open(path, 0, &s), -EOPNOTSUPP);
	CHECK(strstr(store_last_error(), "reads version 1") != NULL);
	REQUIRE(truncate(pack, 100) == 0);
	CHECK_EQ(store_open(path, 0, &s), -EBADMSG);
	CHECK(strstr(store_last_error(), "truncated") != NULL);
	free(data);
	free(back);
}

int main(void)
{
	const char *dir = test_tmpdir("data");
	char path[512];
	uint64_t seed = getenv("SEED") ? strtoull(getenv("SEED"), NULL, 0) : 12345;

	printf("seed %" PRIu64 "\n", seed);
	rng_seed(seed);
	snprintf(path, sizeof(path), "%s/store", dir);
	REQUIRE(store_init(path) == 0);
	test_random(path);
	snprintf(path, sizeof(path), "%s/store2", dir);
	REQUIRE(store_init(path) == 0);
	test_dedup_refcounts(path);
	test_unlinked_open(path);
	test_corruption(dir);
	return test_result("test_store_data");
}
