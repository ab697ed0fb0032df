// SPDX-License-Identifier: MIT
/* test_gc - gc reclaims the space of removed checkpoints (pack bytes shrink, the rest reads back
 * bit-exact, fsck clean); a crash at the named fault points leaves a store that opens, checks
 * clean and keeps every byte, and a later gc completes; gc running while another process writes
 * (re-referencing the very chunks gc is dropping) keeps that writer's data intact. */
#include <signal.h>
#include <sys/wait.h>

#include "common/log.h"
#include "index/store_priv.h"
#include "tests/unit/maint/maint_testlib.h"

static char store_path[512];

/* Two checkpoints sharing pages: "a" = pages 0..599, "b" = pages 300..899 (+ a sparse file). */
static void build_ab(void)
{
	struct store *s = NULL;
	uint64_t a, b, d;
	uint64_t sparse[3] = {5000, 5001, 300};

	REQUIRE(store_init(store_path) == 0);
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	a = mkdir_at(s, STORE_ROOT_INO, "a");
	mkfile_range(s, a, "mem-a.img", 0, 600);
	b = mkdir_at(s, STORE_ROOT_INO, "b");
	mkfile_range(s, b, "mem-b.img", 300, 600);
	d = mkdir_at(s, b, "sub");
	mkfile_pages(s, d, "sparse", sparse, 3, 1000);
	store_close(s);
}

static void gc_store(struct store_gc_stats *st, int want)
{
	struct store *s = NULL;
	int r;

	REQUIRE(store_open(store_path, 0, &s) == 0);
	memset(st, 0, sizeof(*st));
	r = store_gc(s, st);
	CHECK_EQ(r, want);
	store_close(s);
}

static void remove_ckpt(const char *name)
{
	struct store *s = NULL;

	REQUIRE(store_open(store_path, 0, &s) == 0);
	CHECK_EQ(store_ckpt_remove(s, name), 0);
	store_close(s);
}

static void test_reclaim(void)
{
	struct store_gc_stats st;
	uint64_t before, after;
	char *d0, *d1;

	build_ab();
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	/* Nothing to reclaim yet. */
	gc_store(&st, 0);
	CHECK_EQ(st.packs_rewritten + st.packs_deleted, 0);

	remove_ckpt("a");
	d0 = digest_path(store_path, NULL);
	before = pack_bytes(store_path);
	gc_store(&st, 0);
	after = pack_bytes(store_path);
	printf("reclaim: packs %" PRIu64 " -> %" PRIu64 " bytes; rewritten %" PRIu64
	       " deleted %" PRIu64 " dropped %" PRIu64 " reclaimed %" PRIu64 "\n",
	       before, after, st.packs_rewritten, st.packs_deleted, st.chunks_dropped,
	       st.bytes_reclaimed);
	CHECK(st.packs_rewritten + st.packs_deleted >= 1);
	CHECK_EQ(st.chunks_dropped, 300); /* pages 0..299 were only in "a" */
	CHECK(after < before);
	CHECK_EQ(before - after, st.bytes_reclaimed);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	/* A second gc finds nothing more. */
	gc_store(&st, 0);
	CHECK_EQ(st.packs_rewritten + st.packs_deleted, 0);

	/* Removing the last checkpoint leaves only garbage: packs are deleted outright. */
	remove_ckpt("b");
	gc_store(&st, 0);
	CHECK(st.packs_deleted >= 1);
	CHECK_EQ(st.packs_rewritten, 0);
	CHECK(pack_bytes(store_path) == 0);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	free(d0);
	free(d1);
}

/* Moves every pack's mtime secs into the past. */
static void age_packs(time_t secs)
{
	char dir[600];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/packs", store_path);
	d = opendir(dir);
	REQUIRE(d);
	while ((de = readdir(d))) {
		struct timespec ts[2] = {{.tv_sec = time(NULL) - secs},
					 {.tv_sec = time(NULL) - secs}};

		if (de->d_name[0] != '.')
			REQUIRE(utimensat(dirfd(d), de->d_name, ts, 0) == 0);
	}
	closedir(d);
}

/* A crash after the new pack is durable but before the index switches to it, or after the
 * switch but before the old pack is unlinked. */
static void test_crash(const char *fault)
{
	struct store_gc_stats st;
	char *d0, *d1, *d2;
	uint64_t before, mid;

	build_ab();
	remove_ckpt("a");
	d0 = digest_path(store_path, NULL);
	before = pack_bytes(store_path);
	setenv("CKPTFS_FAULT", fault, 1);
	gc_store(&st, -ECANCELED);
	unsetenv("CKPTFS_FAULT");
	mid = pack_bytes(store_path);
	printf("crash at %s: packs %" PRIu64 " -> %" PRIu64 " bytes\n", fault, before, mid);
	CHECK(mid > before); /* the new pack exists, the old one too */
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);

	/* After gc_before_unlink the old pack's records are named by no entry: an unlocked pack
	 * holds no writer's unindexed appends, so the next gc deletes it at once, whatever its
	 * age. */
	gc_store(&st, 0);
	CHECK(st.packs_rewritten + st.packs_deleted >= 1);
	CHECK(pack_bytes(store_path) < before);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d2 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d2);
	free(d0);
	free(d1);
	free(d2);
}

/* A flush whose new chunks span a pack roll-over: the pack it filled first must stay locked
 * until the flush's index transaction commits, or a gc running in that window (another process
 * in real life) sees an unlocked pack full of records no entry names, drops it, and the commit
 * then indexes chunks that no longer exist. The hook runs gc exactly in that window, with the
 * packs aged so that no "young pack" rule can hide a missing lock. */
static struct {
	bool armed;
	int gc_ret;
	struct store_gc_stats st;
} roll_race;

static void roll_race_hook(struct store *s, const char *point)
{
	if (!roll_race.armed || strcmp(point, "flush_before_commit") != 0)
		return;
	roll_race.armed = false;
	age_packs(3600);
	roll_race.gc_ret = store_gc(s, &roll_race.st);
}

static size_t count_packs(void)
{
	char dir[600];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/packs", store_path);
	d = opendir(dir);
	REQUIRE(d);
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".pack") != NULL;
	closedir(d);
	return n;
}

#define ROLL_PAGES 3000u

static void test_roll_race(void)
{
	struct store *s = NULL;
	struct store_attr c, f;
	uint8_t got[STORE_CHUNK_SIZE], want[STORE_CHUNK_SIZE];
	uint64_t dir;
	int bad = 0;

	REQUIRE(store_init(store_path) == 0);
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	pthread_mutex_lock(&s->pack_mu);
	s->pack_roll_bytes = 1 << 20; /* ~2 MiB per encode batch: rolls inside one flush */
	pthread_mutex_unlock(&s->pack_mu);
	dir = mkdir_at(s, STORE_ROOT_INO, "r");
	roll_race.armed = true;
	store_test_hook = roll_race_hook;
	mkfile_range(s, dir, "mem.img", 20000, ROLL_PAGES); /* one flush, at its release */
	store_test_hook = NULL;
	REQUIRE(!roll_race.armed); /* the hook ran */
	CHECK_EQ(roll_race.gc_ret, 0);
	printf("roll race: %zu packs, gc in the window: %" PRIu64 " rewritten, %" PRIu64
	       " deleted, %" PRIu64 " chunks dropped\n",
	       count_packs(), roll_race.st.packs_rewritten, roll_race.st.packs_deleted,
	       roll_race.st.chunks_dropped);
	CHECK(count_packs() >= 2); /* the flush did roll over */
	CHECK_EQ(roll_race.st.packs_deleted + roll_race.st.packs_rewritten, 0);
	CHECK_EQ(roll_race.st.chunks_dropped, 0);
	store_close(s);

	CHECK_EQ(fsck_path(store_path, NULL), 0);
	REQUIRE(store_open(store_path, 0, &s) == 0);
	REQUIRE(store_lookup(s, STORE_ROOT_INO, "r", &c) == 0);
	REQUIRE(store_lookup(s, c.ino, "mem.img", &f) == 0);
	CHECK_EQ(f.size, (uint64_t)ROLL_PAGES * STORE_CHUNK_SIZE);
	for (uint64_t j = 0; j < ROLL_PAGES; j++) {
		page_fill(want, 20000 + j);
		if (store_read(s, f.ino, got, sizeof(got), j * STORE_CHUNK_SIZE) !=
			    STORE_CHUNK_SIZE ||
		    memcmp(got, want, sizeof(got)) != 0)
			bad++;
	}
	if (bad)
		fprintf(stderr, "roll race: %d of %u pages do not read back\n", bad, ROLL_PAGES);
	CHECK_EQ(bad, 0);
	/* Once the flush committed, a gc finds nothing to take from those packs. */
	REQUIRE(store_gc(s, &roll_race.st) == 0);
	CHECK_EQ(roll_race.st.chunks_dropped, 0);
	store_close(s);
}

/* The writer: each round is a new session (so its earlier packs are unlocked and fair game for
 * gc) that first removes checkpoint i-1 - turning pages 0..399 into garbage - and then writes
 * checkpoint i with those very pages again (dedup re-references them while gc may be dropping
 * or moving them) plus 50 pages of its own. */
#define WRITER_ROUNDS 40

static void child_fail(int code)
{
	fprintf(stderr, "writer child: step %d failed: %s\n", code, store_last_error());
	_exit(code);
}

static void writer_child(void)
{
	/* A failing REQUIRE exits through atexit: the parent's temp dir must survive that. */
	setenv("KEEP_TEST_DIR", "1", 1);
	for (int i = 0; i < WRITER_ROUNDS; i++) {
		struct store *s = NULL;
		char name[32];
		uint64_t c, *pages = malloc(450 * sizeof(*pages));
		uint8_t id[STORE_CONTENT_ID_LEN];

		if (!pages || store_open(store_path, 0, &s) < 0)
			child_fail(2);
		if (i > 0) {
			snprintf(name, sizeof(name), "w%d", i - 1);
			if (store_ckpt_remove(s, name) < 0)
				child_fail(5);
		}
		snprintf(name, sizeof(name), "w%d", i);
		c = mkdir_at(s, STORE_ROOT_INO, name);
		for (int j = 0; j < 400; j++)
			pages[j] = (uint64_t)j;
		for (int j = 0; j < 50; j++)
			pages[400 + j] = 100000 + (uint64_t)i * 50 + (uint64_t)j;
		mkfile_pages(s, c, "mem.img", pages, 450, 0);
		free(pages);
		if (i % 3 == 0 && store_ckpt_seal(s, name, id) < 0)
			child_fail(3);
		if (store_sync(s) < 0)
			child_fail(4);
		store_close(s);
	}
	_exit(0); /* failures above exit non-zero; test_failures is the parent's */
}

static void test_concurrent_writer(void)
{
	struct store_gc_stats st, total = {0};
	struct store *s = NULL;
	int status, rounds = 0;
	char *dg;
	pid_t pid;

	build_ab();
	remove_ckpt("a");
	fflush(NULL);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		writer_child();
	REQUIRE(store_open(store_path, 0, &s) == 0);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		int r = store_gc(s, &st);

		if (r < 0) {
			fprintf(stderr, "gc during writes failed: %s\n", store_last_error());
			test_failures++;
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		rounds++;
		total.packs_rewritten += st.packs_rewritten;
		total.packs_deleted += st.packs_deleted;
		total.chunks_dropped += st.chunks_dropped;
		if (w == pid)
			break;
	}
	store_close(s);
	printf("concurrent: %d gc rounds, %" PRIu64 " rewritten, %" PRIu64 " deleted, %" PRIu64
	       " dropped\n",
	       rounds, total.packs_rewritten, total.packs_deleted, total.chunks_dropped);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(rounds > 1);
	CHECK_EQ(fsck_path(store_path, NULL), 0);

	/* What must be there: b untouched, the writer's last checkpoint bit-exact. */
	REQUIRE(store_open(store_path, 0, &s) == 0);
	{
		struct store_attr c, f;
		uint8_t got[STORE_CHUNK_SIZE], want[STORE_CHUNK_SIZE];
		char name[32];

		snprintf(name, sizeof(name), "w%d", WRITER_ROUNDS - 1);
		REQUIRE(store_lookup(s, STORE_ROOT_INO, name, &c) == 0);
		REQUIRE(store_lookup(s, c.ino, "mem.img", &f) == 0);
		CHECK_EQ(f.size, 450 * STORE_CHUNK_SIZE);
		for (int j = 0; j < 450; j++) {
			uint64_t n =
				j < 400 ? (uint64_t)j
					: 100000 + (WRITER_ROUNDS - 1) * 50 + (uint64_t)(j - 400);

			page_fill(want, n);
			CHECK_EQ(store_read(s, f.ino, got, sizeof(got),
					    (uint64_t)j * STORE_CHUNK_SIZE),
				 STORE_CHUNK_SIZE);
			if (memcmp(got, want, sizeof(got)) != 0) {
				fprintf(stderr, "writer page %d differs\n", j);
				test_failures++;
				break;
			}
		}
		REQUIRE(store_lookup(s, STORE_ROOT_INO, "b", &c) == 0);
		REQUIRE(store_lookup(s, c.ino, "mem-b.img", &f) == 0);
		for (int j = 0; j < 600; j += 7) {
			page_fill(want, 300 + (uint64_t)j);
			CHECK_EQ(store_read(s, f.ino, got, sizeof(got),
					    (uint64_t)j * STORE_CHUNK_SIZE),
				 STORE_CHUNK_SIZE);
			CHECK(memcmp(got, want, sizeof(got)) == 0);
		}
	}
	/* With the writer gone, one more gc leaves only live data. */
	REQUIRE(store_gc(s, &st) == 0);
	store_close(s);
	dg = digest_path(store_path, NULL);
	free(dg);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
}

static void fresh(const char *tmp, const char *tag)
{
	snprintf(store_path, sizeof(store_path), "%s/%s", tmp, tag);
}

int main(void)
{
	const char *tmp = test_tmpdir("gc");

	if (getenv("MAINT_DEBUG"))
		log_set_level(LOG_DEBUG);

	fresh(tmp, "reclaim");
	test_reclaim();
	fresh(tmp, "crash1");
	test_crash("gc_before_commit");
	fresh(tmp, "crash2");
	test_crash("gc_before_unlink");
	fresh(tmp, "rollrace");
	test_roll_race();
	fresh(tmp, "concurrent");
	test_concurrent_writer();
	return test_result("test_gc");
}
