// SPDX-License-Identifier: MIT
/* test_defer - deferred compression: chunks written while deferral is forced are stored raw
 * (codec "deferred", pack version 2), read back bit-exact, survive fsck and an index rebuild;
 * gc compresses them to exactly the size a normal write gives and the bytes stay the same; a
 * crash at gc's fault points or a kill -9 of the pass leaves a clean store; the mount's side
 * (store_defer_idle / store_defer_done) lets a separate `ckptfs gc --compress-deferred` process
 * take the writer's own pack while the writer keeps the store open and reading; with deferral
 * off nothing is deferred; the automatic rule defers only after store_defer_enable, and then
 * only big flushes a caller waits for (here: the flush at release).
 *
 * usage: test_maint_defer CKPTFS_BINARY */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "index/pack.h"
#include "tests/unit/maint/maint_testlib.h"

#define NPAGES 700u

static char store_path[512];
static const char *ckptfs_bin;

static void fresh(const char *tmp, const char *tag)
{
	snprintf(store_path, sizeof(store_path), "%s/%s", tmp, tag);
}

/* Checkpoint "c": file "f" = pages 0..NPAGES-1, file "g" = pages 200..NPAGES+199 (sharing). */
static void build(const char *defer_mode)
{
	struct store *s = NULL;
	uint64_t c;

	setenv("CKPTFS_DEFER", defer_mode, 1);
	REQUIRE(store_init(store_path) == 0);
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	c = mkdir_at(s, STORE_ROOT_INO, "c");
	mkfile_range(s, c, "f", 0, NPAGES);
	mkfile_range(s, c, "g", 200, NPAGES);
	store_close(s);
	unsetenv("CKPTFS_DEFER");
}

/* Reads file name of checkpoint "c" in s and compares every page with page_fill(base + i). */
static void check_file(struct store *s, const char *name, uint64_t base, size_t n)
{
	struct store_attr c, f;
	uint8_t got[STORE_CHUNK_SIZE], want[STORE_CHUNK_SIZE];

	REQUIRE(store_lookup(s, STORE_ROOT_INO, "c", &c) == 0);
	REQUIRE(store_lookup(s, c.ino, name, &f) == 0);
	for (size_t i = 0; i < n; i++) {
		page_fill(want, base + i);
		CHECK_EQ(store_read(s, f.ino, got, sizeof(got), (uint64_t)i * STORE_CHUNK_SIZE),
			 STORE_CHUNK_SIZE);
		if (memcmp(got, want, sizeof(got)) != 0) {
			fprintf(stderr, "'%s' page %zu differs\n", name, i);
			test_failures++;
			return;
		}
	}
}

static void check_data(void)
{
	struct store *s = NULL;

	REQUIRE(store_open(store_path, STORE_OPEN_RDONLY, &s) == 0);
	check_file(s, "f", 0, NPAGES);
	check_file(s, "g", 200, NPAGES);
	store_close(s);
}

static struct store_df df_path(void)
{
	struct store *s = NULL;
	struct store_df d;

	REQUIRE(store_open(store_path, STORE_OPEN_RDONLY, &s) == 0);
	REQUIRE(store_df(s, &d) == 0);
	store_close(s);
	return d;
}

/* Largest format version among the store's packs (0 when there are none). */
static uint32_t max_pack_version(void)
{
	char dir[600];
	struct dirent *de;
	uint32_t maxv = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/packs", store_path);
	d = opendir(dir);
	REQUIRE(d);
	while ((de = readdir(d))) {
		uint8_t hdr[PACK_HEADER_LEN];
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		REQUIRE(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
		maxv = MAX(maxv, le32_get(hdr + 8));
		close(fd);
	}
	closedir(d);
	return maxv;
}

static int gc_path(unsigned flags, struct store_gc_stats *st)
{
	struct store *s = NULL;
	int r;

	REQUIRE(store_open(store_path, 0, &s) == 0);
	memset(st, 0, sizeof(*st));
	r = store_gc_flags(s, flags, st);
	store_close(s);
	return r;
}

static void test_roundtrip(const char *tmp)
{
	struct store_df ref, d;
	struct store_gc_stats st;
	uint64_t ref_packs, packs;
	char *d0, *d1;

	/* The same data with deferral off, for the sizes. */
	fresh(tmp, "reference");
	build("never");
	ref = df_path();
	ref_packs = pack_bytes(store_path);
	CHECK_EQ(ref.deferred_bytes, 0);
	CHECK_EQ(max_pack_version(), PACK_VERSION);

	fresh(tmp, "roundtrip");
	build("always");
	d = df_path();
	printf("deferred: stored %" PRIu64 " (deferred %" PRIu64 "), reference %" PRIu64 "\n",
	       d.stored_bytes, d.deferred_bytes, ref.stored_bytes);
	CHECK(d.deferred_bytes > 0);
	CHECK_EQ(d.deferred_bytes, d.stored_bytes);
	CHECK_EQ(d.nchunks, ref.nchunks);
	CHECK_EQ(d.stored_bytes, (uint64_t)d.nchunks * (PACK_REC_HDR_LEN + STORE_CHUNK_SIZE));
	CHECK(d.stored_bytes > ref.stored_bytes);
	CHECK_EQ(max_pack_version(), PACK_VERSION_DEFER);
	check_data();
	CHECK_EQ(fsck_path(store_path, NULL), 0);

	/* An index rebuild from the packs keeps the deferred records as they are. */
	d0 = digest_path(store_path, NULL);
	CHECK_EQ(store_rebuild_index(store_path), 0);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	CHECK_EQ(df_path().deferred_bytes, d.deferred_bytes);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	free(d1);

	/* The pass: every deferred chunk compressed, the store at the normal size. */
	CHECK_EQ(gc_path(STORE_GC_DEFERRED_ONLY, &st), 0);
	d = df_path();
	packs = pack_bytes(store_path);
	printf("after the pass: compressed %" PRIu64 " chunks; stored %" PRIu64 ", packs %" PRIu64
	       " (reference %" PRIu64 ")\n",
	       st.chunks_compressed, d.stored_bytes, packs, ref_packs);
	CHECK_EQ(st.chunks_compressed, ref.nchunks);
	CHECK_EQ(d.deferred_bytes, 0);
	CHECK_EQ(d.stored_bytes, ref.stored_bytes);
	CHECK_EQ(packs, ref_packs);
	CHECK_EQ(max_pack_version(), PACK_VERSION);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	check_data();
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	/* Nothing left to do. */
	CHECK_EQ(gc_path(0, &st), 0);
	CHECK_EQ(st.chunks_compressed + st.packs_rewritten + st.packs_deleted, 0);
	free(d0);
	free(d1);
}

/* gc stops at a fault point as if killed there; the store checks clean, every byte reads, and
 * the next background pass finishes the job, dropping the pack the stopped one left behind
 * (its unreferenced copy, or the old pack after the commit): a plain gc then finds nothing. */
static void test_fault(const char *tmp, const char *fault)
{
	struct store_gc_stats st;
	struct store_df before, mid;
	char *d0, *d1;

	fresh(tmp, fault);
	build("always");
	before = df_path();
	d0 = digest_path(store_path, NULL);
	setenv("CKPTFS_FAULT", fault, 1);
	CHECK_EQ(gc_path(STORE_GC_DEFERRED_ONLY, &st), -ECANCELED);
	unsetenv("CKPTFS_FAULT");
	mid = df_path();
	printf("crash at %s: deferred %" PRIu64 " -> %" PRIu64 "\n", fault, before.deferred_bytes,
	       mid.deferred_bytes);
	/* Before the commit the index still points at the deferred records; after it, at the
	 * compressed copies (the old pack is left for the next gc). */
	CHECK_EQ(mid.deferred_bytes, strcmp(fault, "gc_before_commit") ? 0 : before.deferred_bytes);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	check_data();
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	free(d1);

	CHECK_EQ(gc_path(STORE_GC_DEFERRED_ONLY, &st), 0);
	CHECK_EQ(st.packs_deleted, 1);
	CHECK_EQ(df_path().deferred_bytes, 0);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	check_data();
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	CHECK_EQ(gc_path(0, &st), 0);
	CHECK_EQ(st.chunks_compressed + st.packs_rewritten + st.packs_deleted, 0);
	free(d0);
	free(d1);
}

/* Starts `ckptfs gc --compress-deferred STORE` as the mount does. */
static pid_t spawn_pass(void)
{
	char *argv[] = {(char *)ckptfs_bin, (char *)"gc", (char *)"--compress-deferred", store_path,
			NULL};
	pid_t pid = fork();

	REQUIRE(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execv(ckptfs_bin, argv);
		_exit(127);
	}
	return pid;
}

/* Runs the pass; returns its wait status. With kill_after_us > 0 it is killed with SIGKILL
 * after that long instead (if it is still running). */
static int run_pass(unsigned kill_after_us)
{
	pid_t pid = spawn_pass();
	int status = 0;

	if (kill_after_us) {
		usleep(kill_after_us);
		kill(pid, SIGKILL);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid);
	return status;
}

/* kill -9 of the pass somewhere in the middle: the store stays consistent. */
static void test_kill9(const char *tmp)
{
	char *d0, *d1;
	int status;

	fresh(tmp, "kill9");
	build("always");
	d0 = digest_path(store_path, NULL);
	for (unsigned us = 2000; us <= 1024000; us *= 2) {
		status = run_pass(us);
		printf("pass killed after %u us: %s\n", us,
		       WIFSIGNALED(status) ? "was running" : "had finished");
		CHECK_EQ(fsck_path(store_path, NULL), 0);
		if (WIFEXITED(status)) {
			CHECK_EQ(WEXITSTATUS(status), 0);
			break;
		}
	}
	check_data();
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	free(d1);
	status = run_pass(0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(df_path().deferred_bytes, 0);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	free(d0);
	free(d1);
}

/* What the mount does: write with deferral, wait until idle, let go of the pack, run the pass
 * in another process, and go on reading (cached fds of the replaced pack) and writing. */
static void test_mount_side(const char *tmp)
{
	struct store *s = NULL;
	struct store_df d;
	uint64_t c, mark = 0, mark2 = 0;
	int status;

	fresh(tmp, "mount");
	REQUIRE(store_init(store_path) == 0);
	setenv("CKPTFS_DEFER", "always", 1);
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	unsetenv("CKPTFS_DEFER");
	/* Nothing deferred yet: never idle-ready. */
	CHECK_EQ(store_defer_idle(s, 0, &mark), 0);
	c = mkdir_at(s, STORE_ROOT_INO, "c");
	mkfile_range(s, c, "f", 0, NPAGES);
	REQUIRE(store_sync(s) == 0);
	/* Just flushed: not idle for a minute. */
	CHECK_EQ(store_defer_idle(s, 60000, &mark), 0);
	check_file(s, "f", 0, NPAGES); /* caches a read fd of the deferred pack */
	/* While the pack is ours (locked), a pass cannot take it. */
	status = run_pass(0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	REQUIRE(store_df(s, &d) == 0);
	CHECK(d.deferred_bytes > 0);

	CHECK_EQ(store_defer_idle(s, 0, &mark), 1);
	CHECK(mark > 0);
	/* Reads go on while the pass moves the chunks (retry through the index when the cached
	 * pack no longer has them). */
	pid_t pid = spawn_pass();
	int reads = 0;
	pid_t w;
	do {
		check_file(s, "f", 0, NPAGES);
		reads++;
		w = waitpid(pid, &status, WNOHANG);
		REQUIRE(w >= 0);
	} while (w == 0);
	printf("full reads of 'f' during the pass: %d\n", reads);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	store_defer_done(s, mark);
	REQUIRE(store_df(s, &d) == 0);
	CHECK_EQ(d.deferred_bytes, 0);
	/* Handled: not ready again until more is deferred. */
	CHECK_EQ(store_defer_idle(s, 0, &mark2), 0);
	check_file(s, "f", 0, NPAGES);

	/* More writes go to a new pack and can be handled the same way. */
	mkfile_range(s, c, "g", 200, NPAGES);
	REQUIRE(store_sync(s) == 0);
	CHECK_EQ(store_defer_idle(s, 0, &mark2), 1);
	CHECK(mark2 > mark);
	status = run_pass(0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	store_defer_done(s, mark2);
	check_file(s, "f", 0, NPAGES);
	check_file(s, "g", 200, NPAGES);
	store_close(s);
	CHECK_EQ(df_path().deferred_bytes, 0);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	check_data();
}

/* The automatic rule: off in a process without a pass (behaviour as before deferral); with
 * store_defer_enable, a big flush a caller waits for is deferred and a small one is not. */
static void test_auto(const char *tmp)
{
	struct store *s = NULL;
	struct store_df d0, d1, d2, d3;
	uint64_t c;

	fresh(tmp, "auto");
	unsetenv("CKPTFS_DEFER");
	REQUIRE(store_init(store_path) == 0);
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	c = mkdir_at(s, STORE_ROOT_INO, "c");
	mkfile_range(s, c, "big-before", 100000, 1500); /* release flushes 1500 new chunks */
	REQUIRE(store_df(s, &d0) == 0);
	CHECK_EQ(d0.deferred_bytes, 0);

	store_defer_enable(s);
	mkfile_range(s, c, "big", 200000, 1500);
	REQUIRE(store_df(s, &d1) == 0);
	CHECK_EQ(d1.deferred_bytes, 1500ULL * (PACK_REC_HDR_LEN + STORE_CHUNK_SIZE));
	mkfile_range(s, c, "small", 300000, 8); /* under DEFER_FG_MIN_CHUNKS */
	REQUIRE(store_df(s, &d2) == 0);
	CHECK_EQ(d2.deferred_bytes, d1.deferred_bytes);
	CHECK(d2.stored_bytes > d1.stored_bytes);
	check_file(s, "big", 200000, 1500);
	check_file(s, "small", 300000, 8);
	store_close(s);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	CHECK_EQ(run_pass(0), 0);
	d3 = df_path();
	printf("auto: deferred %" PRIu64 " of %" PRIu64 " stored; after the pass %" PRIu64
	       " stored\n",
	       d2.deferred_bytes, d2.stored_bytes, d3.stored_bytes);
	CHECK_EQ(d3.deferred_bytes, 0);
	CHECK(d3.stored_bytes < d2.stored_bytes);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
}

int main(int argc, char **argv)
{
	const char *tmp = test_tmpdir("defer");

	if (argc != 2) {
		fprintf(stderr, "usage: test_maint_defer CKPTFS_BINARY\n");
		return 2;
	}
	ckptfs_bin = argv[1];
	if (getenv("MAINT_DEBUG"))
		log_set_level(LOG_DEBUG);
	test_roundtrip(tmp);
	test_fault(tmp, "gc_before_commit");
	test_fault(tmp, "gc_before_unlink");
	test_kill9(tmp);
	test_mount_side(tmp);
	test_auto(tmp);
	return test_result("test_defer");
}
