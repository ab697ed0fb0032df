// SPDX-License-Identifier: MIT
/* test_rebuild - the index rebuilt from packs and manifests gives back every checkpoint (sealed
 * and not) bit-exact with its attributes, xattrs, symlinks, hard links, sparse files and content
 * ids; fsck is clean afterwards; the old index is kept aside. A rebuild is refused while the
 * store is open for writing; duplicates left by a crashed gc are fine; a damaged record is
 * reported and the file range that needed it reads EIO, not wrong bytes. */
#include <sys/wait.h>
#include <sys/xattr.h>

#include "index/maint_priv.h"
#include "index/store_priv.h"
#include "tests/unit/maint/maint_testlib.h"

static char store_path[512];

static void set_times(struct store *s, uint64_t ino, time_t sec)
{
	struct store_attr a = {0};

	a.mtime.tv_sec = sec;
	a.mtime.tv_nsec = 123456789;
	a.atime.tv_sec = sec - 100;
	REQUIRE(store_setattr(s, ino, &a, STORE_SET_MTIME | STORE_SET_ATIME, NULL) == 0);
}

/* One checkpoint with a bit of everything; data written last so its manifest is current. */
static void fill_ckpt(struct store *s, const char *name, uint64_t base)
{
	uint64_t c, d, dd, f, g;
	uint64_t sparse[4] = {base + 1, base + 2, base + 1, 7};
	struct store_attr a;
	uint8_t page[STORE_CHUNK_SIZE];

	c = mkdir_at(s, STORE_ROOT_INO, name);
	d = mkdir_at(s, c, "fds");
	dd = mkdir_at(s, d, "deep");
	REQUIRE(store_setxattr(s, d, "user.dir", "on a dir", 8, 0) == 0);
	REQUIRE(store_symlink(s, c, "exe", "/usr/bin/python3", 1000, 1000, &a) == 0);
	REQUIRE(store_symlink(s, dd, "rel", "../../pages.img", 0, 0, &a) == 0);
	REQUIRE(store_mknod(s, d, "fifo", S_IFIFO | 0600, 0, 0, 0, &a) == 0);
	REQUIRE(store_mknod(s, d, "empty", S_IFREG | 0400, 0, 42, 43, &a) == 0);
	f = mkfile_range(s, c, "pages.img", base, 200);
	REQUIRE(store_setxattr(s, f, "user.kind", "pages", 5, 0) == 0);
	REQUIRE(store_setxattr(s, f, "user.big", page, 3000, 0) == 0);
	REQUIRE(store_link(s, f, dd, "pages-hardlink", &a) == 0);
	REQUIRE(store_link(s, f, d, "second-link", &a) == 0);
	/* Sparse: a few pages far apart, a tail past the last one, a partial last page. */
	g = mkfile_pages(s, dd, "sparse.img", sparse, 2, 0);
	REQUIRE(store_open_inode(s, g, true) == 0);
	page_fill(page, sparse[2]);
	REQUIRE(store_write(s, g, page, sizeof(page), 2560 * STORE_CHUNK_SIZE) == STORE_CHUNK_SIZE);
	page_fill(page, sparse[3]);
	REQUIRE(store_write(s, g, page, 1000, 4000 * STORE_CHUNK_SIZE + 77) == 1000);
	REQUIRE(store_release(s, g, true) == 0);
	a.size = 4200 * STORE_CHUNK_SIZE + 5;
	REQUIRE(store_setattr(s, g, &a, STORE_SET_SIZE, NULL) == 0);
	set_times(s, g, 1700000000);
	set_times(s, dd, 1600000000);
	/* Same contents as pages.img in another file: dedup across files. */
	mkfile_range(s, d, "copy.img", base, 50);
}

static void build(const char *tmp, const char *tag)
{
	struct store *s = NULL;
	uint8_t id[STORE_CONTENT_ID_LEN];

	snprintf(store_path, sizeof(store_path), "%s/%s", tmp, tag);
	REQUIRE(store_init(store_path) == 0);
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	fill_ckpt(s, "sealed-1", 0);
	REQUIRE(store_ckpt_seal(s, "sealed-1", id) == 0);
	store_close(s);
	/* A second process session: a second pack. */
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	fill_ckpt(s, "sealed-2", 150);
	REQUIRE(store_ckpt_seal(s, "sealed-2", id) == 0);
	fill_ckpt(s, "open-3", 300);
	REQUIRE(store_sync(s) == 0);
	store_close(s);
}

struct ids {
	char name[3][256];
	uint8_t id[3][STORE_CONTENT_ID_LEN];
	bool sealed[3];
	int n;
};

static int ids_cb(void *ctx, const struct store_ckpt_info *ci)
{
	struct ids *x = ctx;

	if (x->n >= 3)
		return -E2BIG;
	snprintf(x->name[x->n], sizeof(x->name[0]), "%s", ci->name);
	memcpy(x->id[x->n], ci->content_id, STORE_CONTENT_ID_LEN);
	x->sealed[x->n] = ci->sealed;
	x->n++;
	return 0;
}

static void get_ids(struct ids *x)
{
	struct store *s = NULL;

	memset(x, 0, sizeof(*x));
	REQUIRE(store_open(store_path, STORE_OPEN_RDONLY, &s) == 0);
	REQUIRE(store_ckpt_list(s, false, ids_cb, x) == 0);
	store_close(s);
}

static int count_aside(void)
{
	DIR *d = opendir(store_path);
	struct dirent *de;
	int n = 0;

	REQUIRE(d);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "index.broken-", 13))
			n++;
	closedir(d);
	return n;
}

static void test_round_trip(const char *tmp)
{
	struct problems p = {0};
	struct ids before, after;
	char *d0, *d1;
	int errs = 0;

	build(tmp, "roundtrip");
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d0 = digest_path(store_path, &errs);
	CHECK_EQ(errs, 0);
	get_ids(&before);
	CHECK_EQ(before.n, 3);

	CHECK_EQ(store_rebuild_index_report(store_path, problems_cb, &p), 0);
	CHECK_EQ(count_aside(), 1);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d1 = digest_path(store_path, &errs);
	CHECK_EQ(errs, 0);
	CHECK_DIGEST(d0, d1);
	get_ids(&after);
	CHECK_EQ(after.n, 3);
	CHECK(memcmp(&before, &after, sizeof(before)) == 0);
	for (int i = 0; i < before.n; i++)
		CHECK_EQ(after.sealed[i], strncmp(after.name[i], "sealed", 6) == 0);

	/* The rebuilt store is writable as usual: new inodes and packs do not collide. */
	{
		struct store *s = NULL;
		uint8_t id[STORE_CONTENT_ID_LEN];

		REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
		fill_ckpt(s, "after", 900);
		CHECK_EQ(store_ckpt_seal(s, "after", id), 0);
		CHECK_EQ(store_ckpt_remove(s, "sealed-1"), 0);
		store_close(s);
		CHECK_EQ(fsck_path(store_path, NULL), 0);
	}
	/* ... and rebuilds again to the same thing. */
	free(d0);
	d0 = digest_path(store_path, &errs);
	CHECK_EQ(store_rebuild_index_report(store_path, problems_cb, &p), 0);
	CHECK_EQ(count_aside(), 2);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	free(d1);
	d1 = digest_path(store_path, &errs);
	CHECK_DIGEST(d0, d1);
	free(d0);
	free(d1);
	problems_reset(&p);
}

static void test_refused_while_open(const char *tmp)
{
	struct store *s = NULL;

	build(tmp, "busy");
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	CHECK_EQ(store_rebuild_index(store_path), -EBUSY);
	CHECK(strstr(store_last_error(), "is mounted") != NULL);
	CHECK_EQ(count_aside(), 0);
	store_close(s);
}

/* A gc that crashed after copying leaves every live chunk in two packs. */
static void test_after_gc_crash(const char *tmp)
{
	struct store *s = NULL;
	struct store_gc_stats st;
	char *d0, *d1;

	build(tmp, "gccrash");
	REQUIRE(store_open(store_path, 0, &s) == 0);
	CHECK_EQ(store_ckpt_remove(s, "sealed-2"), 0);
	store_close(s);
	d0 = digest_path(store_path, NULL);
	REQUIRE(store_open(store_path, 0, &s) == 0);
	setenv("CKPTFS_FAULT", "gc_before_commit", 1);
	CHECK_EQ(store_gc(s, &st), -ECANCELED);
	unsetenv("CKPTFS_FAULT");
	store_close(s);
	CHECK_EQ(store_rebuild_index(store_path), 0);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	/* The duplicates are garbage to the next gc. */
	REQUIRE(store_open(store_path, 0, &s) == 0);
	CHECK_EQ(store_gc(s, &st), 0);
	CHECK(st.packs_rewritten + st.packs_deleted >= 1);
	store_close(s);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	free(d1);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	free(d0);
	free(d1);
}

/* A damaged record: reported by the rebuild, and the file that needs it reads EIO there. */
static void test_damaged_record(const char *tmp)
{
	struct problems p = {0};
	struct store *s = NULL;
	struct store_attr c, f;
	struct idx_txn *txn = NULL;
	struct maint_loc loc;
	struct chunk_id id;
	uint8_t k[FMAP_KEY_LEN], got[STORE_CHUNK_SIZE], want[STORE_CHUNK_SIZE], b;
	const void *v;
	size_t vlen;
	char path[700], hex[CHUNK_ID_HEX_LEN];
	int fd, r;

	build(tmp, "damaged");
	/* open-3/pages.img chunk 150 is page 450, which no other checkpoint holds. */
	REQUIRE(store_open(store_path, STORE_OPEN_RDONLY, &s) == 0);
	REQUIRE(store_lookup(s, STORE_ROOT_INO, "open-3", &c) == 0);
	REQUIRE(store_lookup(s, c.ino, "pages.img", &f) == 0);
	REQUIRE(idx_txn_begin(s->db, false, &txn) == 0);
	fmap_key(k, f.ino, 150 / FMAP_SLOTS);
	REQUIRE(idx_get(txn, IDX_FMAP, k, sizeof(k), &v, &vlen) == 0);
	memcpy(id.b, (const uint8_t *)v + (150 % FMAP_SLOTS) * STORE_CHUNK_ID_LEN,
	       STORE_CHUNK_ID_LEN);
	REQUIRE(idx_get(txn, IDX_CHUNKS, id.b, STORE_CHUNK_ID_LEN, &v, &vlen) == 0);
	maint_loc_decode(v, &loc);
	idx_txn_abort(txn);
	store_close(s);
	snprintf(path, sizeof(path), "%s/packs/%08u.pack", store_path, loc.pack);
	fd = open(path, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	REQUIRE(pread(fd, &b, 1, (off_t)(loc.off + PACK_REC_HDR_LEN + 3)) == 1);
	b ^= 1;
	REQUIRE(pwrite(fd, &b, 1, (off_t)(loc.off + PACK_REC_HDR_LEN + 3)) == 1);
	close(fd);

	r = store_rebuild_index_report(store_path, problems_cb, &p);
	CHECK(r >= 2); /* the record, and the chunk the manifest then misses */
	chunk_id_to_hex(id.b, hex);
	CHECK(p.text && strstr(p.text, "does not verify; skipped") && strstr(p.text, hex));
	/* Named by its first name in the manifest's walk order (it has three). */
	CHECK(p.text && strstr(p.text, "'open-3/fds/deep/pages-hardlink' offset 614400") &&
	      strstr(p.text, "is in no pack"));
	problems_reset(&p);
	CHECK(fsck_path(store_path, &p) >= 1);
	CHECK(p.text && strstr(p.text, hex) && strstr(p.text, "lost"));
	problems_reset(&p);

	REQUIRE(store_open(store_path, 0, &s) == 0);
	REQUIRE(store_lookup(s, STORE_ROOT_INO, "open-3", &c) == 0);
	REQUIRE(store_lookup(s, c.ino, "pages.img", &f) == 0);
	CHECK_EQ(store_read(s, f.ino, got, sizeof(got), 150 * STORE_CHUNK_SIZE), -EIO);
	CHECK_EQ(store_read(s, f.ino, got, sizeof(got), 151 * STORE_CHUNK_SIZE), STORE_CHUNK_SIZE);
	page_fill(want, 451);
	CHECK(memcmp(got, want, sizeof(got)) == 0);
	/* The damaged checkpoint can still be removed, and gc drops the lost entry. */
	CHECK_EQ(store_ckpt_remove(s, "open-3"), 0);
	store_close(s);
	REQUIRE(store_open(store_path, 0, &s) == 0);
	{
		struct store_gc_stats st;

		CHECK_EQ(store_gc(s, &st), 0);
	}
	store_close(s);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
}

/* Metadata-only changes after a checkpoint's last data flush, and a checkpoint that never had
 * data, reach the manifests at the next sync point: store_sync for all, store_fsync of any
 * inode for its checkpoint. The writer is a child that stops right after (as kill -9 would:
 * no close), so only what the sync points wrote can come back. */
static void meta_child(void)
{
	struct store *s = NULL;
	struct store_attr a;
	uint64_t c, d, f, e, c2, later;

	setenv("KEEP_TEST_DIR", "1", 1); /* a failing REQUIRE exits through atexit */
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	c = mkdir_at(s, STORE_ROOT_INO, "m");
	f = mkfile_range(s, c, "data.img", 5000, 20);
	c2 = mkdir_at(s, STORE_ROOT_INO, "f");
	mkfile_range(s, c2, "x.img", 6000, 5);
	REQUIRE(store_sync(s) == 0);

	/* No file data from here on. */
	d = mkdir_at(s, c, "sub");
	REQUIRE(store_symlink(s, d, "ln", "../moved.img", 0, 0, &a) == 0);
	REQUIRE(store_setxattr(s, f, "user.k", "value", 5, 0) == 0);
	REQUIRE(store_rename(s, c, "data.img", d, "moved.img", 0) == 0);
	REQUIRE(store_link(s, f, c, "hard.img", &a) == 0);
	a.mode = 0700;
	REQUIRE(store_setattr(s, d, &a, STORE_SET_MODE, NULL) == 0);
	REQUIRE(store_mknod(s, c, "fifo", S_IFIFO | 0600, 0, 0, 0, &a) == 0);
	set_times(s, f, 1650000000);
	e = mkdir_at(s, STORE_ROOT_INO, "empty");
	mkdir_at(s, e, "inner");
	REQUIRE(store_setxattr(s, e, "user.note", "no data", 7, 0) == 0);
	REQUIRE(store_rename(s, STORE_ROOT_INO, "empty", STORE_ROOT_INO, "empty-renamed", 0) == 0);
	REQUIRE(store_sync(s) == 0);

	/* Only an fsync of a directory in "f" after these. */
	later = mkdir_at(s, c2, "later");
	REQUIRE(store_setxattr(s, c2, "user.t", "x", 1, 0) == 0);
	REQUIRE(store_removexattr(s, c2, "user.t") == 0);
	REQUIRE(store_symlink(s, later, "s", "x", 0, 0, &a) == 0);
	REQUIRE(store_fsync(s, later, false) == 0);
	_exit(test_failures ? 1 : 0);
}

static void test_metadata_only(const char *tmp)
{
	struct store *s = NULL;
	struct store_attr a;
	char *d0, *d1;
	int status;
	pid_t pid;

	snprintf(store_path, sizeof(store_path), "%s/%s", tmp, "metaonly");
	REQUIRE(store_init(store_path) == 0);
	fflush(NULL);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		meta_child();
	REQUIRE(waitpid(pid, &status, 0) == pid);
	REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	d0 = digest_path(store_path, NULL);
	CHECK(strstr(d0, "empty-renamed/inner") != NULL);
	CHECK(strstr(d0, "m/sub/moved.img") != NULL);
	CHECK_EQ(store_rebuild_index(store_path), 0);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	REQUIRE(store_open(store_path, STORE_OPEN_RDONLY, &s) == 0);
	CHECK_EQ(store_lookup(s, STORE_ROOT_INO, "empty-renamed", &a), 0);
	CHECK_EQ(store_lookup(s, STORE_ROOT_INO, "empty", &a), -ENOENT);
	store_close(s);
	free(d0);
	free(d1);
}

static int count_ckpts(void)
{
	struct ids x;

	get_ids(&x);
	return x.n;
}

/* store_ckpt_remove cut short by a crash, before or after its commit: a rebuild gives the
 * checkpoint back whole or not at all, never a resurrected removed one. */
static void remove_with_fault(const char *fault)
{
	struct store *s = NULL;

	REQUIRE(store_open(store_path, 0, &s) == 0);
	setenv("CKPTFS_FAULT", fault, 1);
	CHECK_EQ(store_ckpt_remove(s, "sealed-2"), -ECANCELED);
	unsetenv("CKPTFS_FAULT");
	store_close(s);
}

static void test_remove_crash(const char *tmp)
{
	struct store *s = NULL;
	char *d0, *d1;

	/* After the commit: the index says gone, and so must a rebuild. */
	build(tmp, "rmcrash-after");
	remove_with_fault("ckpt_remove_after_commit");
	CHECK_EQ(count_ckpts(), 2);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d0 = digest_path(store_path, NULL);
	CHECK_EQ(store_rebuild_index(store_path), 0);
	CHECK_EQ(count_ckpts(), 2);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	free(d0);
	free(d1);

	/* Before the commit, then a writable open: the removal never happened, the manifest is
	 * back, and a rebuild then gives the very same store. */
	build(tmp, "rmcrash-before-open");
	d0 = digest_path(store_path, NULL);
	remove_with_fault("ckpt_remove_before_commit");
	REQUIRE(store_open(store_path, 0, &s) == 0);
	store_close(s);
	CHECK_EQ(count_ckpts(), 3);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	CHECK_EQ(store_rebuild_index(store_path), 0);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
	d1 = digest_path(store_path, NULL);
	CHECK_DIGEST(d0, d1);
	free(d0);
	free(d1);

	/* Before the commit, then straight to a rebuild: gone entirely, the rest intact. */
	build(tmp, "rmcrash-before-rebuild");
	remove_with_fault("ckpt_remove_before_commit");
	CHECK_EQ(store_rebuild_index(store_path), 0);
	CHECK_EQ(count_ckpts(), 2);
	CHECK_EQ(fsck_path(store_path, NULL), 0);
}

int main(void)
{
	const char *tmp = test_tmpdir("rebuild");

	test_round_trip(tmp);
	test_refused_while_open(tmp);
	test_after_gc_crash(tmp);
	test_damaged_record(tmp);
	test_metadata_only(tmp);
	test_remove_crash(tmp);
	return test_result("test_rebuild");
}
