// SPDX-License-Identifier: MIT
/* test_flush - the background flusher under concurrency: writer threads on their own files
 * (random writes, truncates, punches, reads checked against per-thread models), a thread doing
 * fsyncs, and a thread churning the namespace, all with a tiny buffer budget so flushes, writer
 * back-pressure and reads of pages in flight happen constantly. Then reopen and compare again. */
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>

#include "common/util.h"
#include "index/store_priv.h"
#include "tests/unit/testutil.h"

#define NWRITERS 3
#define FSIZE	 (3u << 20)
#define NOPS	 1500

struct writer {
	struct store *s;
	uint64_t ino, rng;
	uint8_t *model;
	uint64_t size;
	int failures;
};

static uint64_t xs(uint64_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return *st;
}

static bool verify(struct store *s, uint64_t ino, const uint8_t *model, uint64_t size, uint64_t off,
		   size_t len, uint8_t *buf)
{
	size_t want = off >= size ? 0 : MIN(len, size - off);
	ssize_t n = store_read(s, ino, buf, len, off);

	if (n != (ssize_t)want) {
		fprintf(stderr, "ino %" PRIu64 ": read at %" PRIu64 " gave %zd, want %zu\n", ino,
			off, n, want);
		return false;
	}
	if (want && memcmp(buf, model + off, want) != 0) {
		fprintf(stderr, "ino %" PRIu64 ": data mismatch at %" PRIu64 "\n", ino, off);
		return false;
	}
	return true;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t *data = malloc(256 << 10), *buf = malloc(512 << 10);

	for (int op = 0; op < NOPS && !w->failures; op++) {
		unsigned what = xs(&w->rng) % 100;
		uint64_t off = xs(&w->rng) % (FSIZE - (256 << 10));

		if (what < 55) {
			size_t len = 1 + xs(&w->rng) % (256 << 10);
			uint8_t fillb = (uint8_t)xs(&w->rng);
			/* Half the writes repeat earlier content: dedup inside and across flushes.
			 */
			for (size_t i = 0; i < len; i++)
				data[i] = what % 2 ? (uint8_t)(fillb + i / 4096)
						   : (uint8_t)xs(&w->rng);
			if (store_write(w->s, w->ino, data, len, off) != (ssize_t)len)
				w->failures++;
			memcpy(w->model + off, data, len);
			w->size = MAX(w->size, off + len);
		} else if (what < 60) {
			struct store_attr a = {.size = xs(&w->rng) % FSIZE};
			if (store_setattr(w->s, w->ino, &a, STORE_SET_SIZE, &a) < 0)
				w->failures++;
			if (a.size < w->size)
				memset(w->model + a.size, 0, w->size - a.size);
			w->size = a.size;
		} else if (what < 64) {
			uint64_t len = xs(&w->rng) % (300 << 10), end = MIN(off + len, w->size);
			if (store_fallocate(w->s, w->ino, true, true, off, len) < 0)
				w->failures++;
			if (off < end)
				memset(w->model + off, 0, end - off);
		} else {
			if (!verify(w->s, w->ino, w->model, w->size, xs(&w->rng) % (w->size + 1),
				    1 + xs(&w->rng) % (512 << 10), buf))
				w->failures++;
		}
	}
	free(data);
	free(buf);
	return NULL;
}

struct churn {
	struct store *s;
	uint64_t dir;
	bool stop; /* __atomic accesses: the threads poll it */
	int failures;
	uint64_t *inos;
};

static void *syncer_main(void *arg)
{
	struct churn *c = arg;
	uint64_t rng = 77;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		if (store_fsync(c->s, c->inos[xs(&rng) % NWRITERS], false) < 0)
			c->failures++;
		usleep(2000);
	}
	return NULL;
}

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	struct store_attr a;
	char name[32];

	for (unsigned i = 0; !__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE); i++) {
		snprintf(name, sizeof(name), "f%u", i % 50);
		if (store_mknod(c->s, c->dir, name, S_IFREG | 0644, 0, 0, 0, &a) == 0) {
			if (store_write(c->s, a.ino, name, strlen(name), 4096 * (i % 7)) < 0)
				c->failures++;
		}
		if (i % 3 == 0)
			(void)store_unlink(c->s, c->dir, name);
		for (unsigned k = 0; k < NWRITERS; k++)
			if (store_getattr(c->s, c->inos[k], &a) < 0)
				c->failures++;
	}
	return NULL;
}

int main(void)
{
	const char *dir = test_tmpdir("flush");
	char path[512], name[16];
	struct store *s = NULL;
	struct store_attr c, d, f;
	struct writer w[NWRITERS];
	struct churn ch = {0};
	uint64_t inos[NWRITERS];
	pthread_t th[NWRITERS], tsync, tchurn;
	uint8_t *buf = malloc(FSIZE);

	snprintf(path, sizeof(path), "%s/store", dir);
	REQUIRE(store_init(path) == 0);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	pthread_mutex_lock(&s->mu); /* the flusher thread reads it */
	s->dirty_budget = 2 << 20;  /* constant flushing and back-pressure */
	pthread_mutex_unlock(&s->mu);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "mt", 0755, 0, 0, &c) == 0);
	REQUIRE(store_mkdir(s, c.ino, "churn", 0755, 0, 0, &d) == 0);
	for (int i = 0; i < NWRITERS; i++) {
		snprintf(name, sizeof(name), "w%d", i);
		REQUIRE(store_mknod(s, c.ino, name, S_IFREG | 0644, 0, 0, 0, &f) == 0);
		REQUIRE(store_open_inode(s, f.ino, true) == 0);
		inos[i] = f.ino;
		w[i] = (struct writer){
			.s = s, .ino = f.ino, .rng = 1000 + (uint64_t)i, .model = calloc(1, FSIZE)};
		REQUIRE(w[i].model);
	}
	ch = (struct churn){.s = s, .dir = d.ino, .inos = inos};
	for (int i = 0; i < NWRITERS; i++)
		REQUIRE(pthread_create(&th[i], NULL, writer_main, &w[i]) == 0);
	REQUIRE(pthread_create(&tsync, NULL, syncer_main, &ch) == 0);
	REQUIRE(pthread_create(&tchurn, NULL, churn_main, &ch) == 0);
	for (int i = 0; i < NWRITERS; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&ch.stop, true, __ATOMIC_RELEASE);
	pthread_join(tsync, NULL);
	pthread_join(tchurn, NULL);
	CHECK_EQ(ch.failures, 0);
	for (int i = 0; i < NWRITERS; i++) {
		CHECK_EQ(w[i].failures, 0);
		CHECK(verify(s, inos[i], w[i].model, w[i].size, 0, FSIZE, buf));
		CHECK_EQ(store_release(s, inos[i], true), 0);
	}
	store_close(s);

	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	for (int i = 0; i < NWRITERS; i++) {
		CHECK_EQ(store_getattr(s, inos[i], &f), 0);
		CHECK_EQ(f.size, w[i].size);
		CHECK(verify(s, inos[i], w[i].model, w[i].size, 0, FSIZE, buf));
		free(w[i].model);
	}
	/* Every reference is accounted for: live chunks equal the distinct ids in the file maps. */
	struct store_df df;
	CHECK_EQ(store_df(s, &df), 0);
	CHECK(df.nchunks > 0);
	store_close(s);
	free(buf);
	return test_result("test_flush");
}
