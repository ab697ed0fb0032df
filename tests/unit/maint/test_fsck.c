// SPDX-License-Identifier: MIT
/* test_fsck - fsck is clean on a healthy store and names each injected fault: a flipped byte in
 * a pack (the chunk id, the pack, and the checkpoint/file that references it; the file reads EIO
 * there), a refcount changed through the index, a dangling directory entry, a sealed
 * checkpoint whose index no longer matches its manifest, a missing manifest. */
#include "index/maint_priv.h"
#include "index/store_priv.h"
#include "tests/unit/maint/maint_testlib.h"

static char store_path[512];

static void build(const char *tmp, const char *tag)
{
	struct store *s = NULL;
	uint64_t c, d;
	uint8_t id[STORE_CONTENT_ID_LEN];
	struct store_attr a;

	snprintf(store_path, sizeof(store_path), "%s/%s", tmp, tag);
	REQUIRE(store_init(store_path) == 0);
	REQUIRE(store_open(store_path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	c = mkdir_at(s, STORE_ROOT_INO, "web-1");
	mkfile_range(s, c, "pages.img", 0, 64);
	d = mkdir_at(s, c, "fds");
	mkfile_range(s, d, "other.img", 1000, 8);
	REQUIRE(store_symlink(s, d, "link", "../pages.img", 0, 0, &a) == 0);
	REQUIRE(store_ckpt_seal(s, "web-1", id) == 0);
	c = mkdir_at(s, STORE_ROOT_INO, "web-2");
	mkfile_range(s, c, "pages.img", 32, 64);
	store_close(s);
}

static bool has(const struct problems *p, const char *needle)
{
	return p->text && strstr(p->text, needle);
}

/* Location of the record of the chunk at file offset idx of ckpt/file. */
static void locate(const char *ckpt, const char *file, uint64_t idx, struct chunk_id *ret_id,
		   struct maint_loc *ret_loc)
{
	struct store *s = NULL;
	struct store_attr c, f;
	struct idx_txn *txn = NULL;
	uint8_t k[FMAP_KEY_LEN];
	const void *v;
	size_t vlen;

	REQUIRE(store_open(store_path, STORE_OPEN_RDONLY, &s) == 0);
	REQUIRE(store_lookup(s, STORE_ROOT_INO, ckpt, &c) == 0);
	REQUIRE(store_lookup(s, c.ino, file, &f) == 0);
	REQUIRE(idx_txn_begin(s->db, false, &txn) == 0);
	fmap_key(k, f.ino, idx / FMAP_SLOTS);
	REQUIRE(idx_get(txn, IDX_FMAP, k, sizeof(k), &v, &vlen) == 0);
	memcpy(ret_id->b, (const uint8_t *)v + (idx % FMAP_SLOTS) * STORE_CHUNK_ID_LEN,
	       STORE_CHUNK_ID_LEN);
	REQUIRE(idx_get(txn, IDX_CHUNKS, ret_id->b, STORE_CHUNK_ID_LEN, &v, &vlen) == 0);
	maint_loc_decode(v, ret_loc);
	idx_txn_abort(txn);
	store_close(s);
}

static void test_clean(const char *tmp)
{
	build(tmp, "clean");
	CHECK_EQ(fsck_path(store_path, NULL), 0);
}

static void test_flipped_byte(const char *tmp)
{
	struct problems p = {0};
	struct chunk_id id;
	struct maint_loc loc;
	char hex[CHUNK_ID_HEX_LEN], path[600], want[128];
	uint8_t b;
	int fd;

	build(tmp, "flip");
	/* Page 10 of web-2/pages.img is page 42, which web-1/pages.img holds at offset 42. */
	locate("web-2", "pages.img", 10, &id, &loc);
	pack_path(loc.pack, path, sizeof(path));
	snprintf(path, sizeof(path), "%s/packs/%08u.pack", store_path, loc.pack);
	fd = open(path, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	REQUIRE(pread(fd, &b, 1, (off_t)(loc.off + PACK_REC_HDR_LEN + 7)) == 1);
	b ^= 0x40;
	REQUIRE(pwrite(fd, &b, 1, (off_t)(loc.off + PACK_REC_HDR_LEN + 7)) == 1);
	close(fd);

	CHECK_EQ(fsck_path(store_path, &p), 1);
	chunk_id_to_hex(id.b, hex);
	CHECK(has(&p, hex));
	snprintf(want, sizeof(want), "packs/%08u.pack' offset %llu", loc.pack,
		 (unsigned long long)loc.off);
	CHECK(has(&p, want));
	CHECK(has(&p, "'web-2/pages.img' offset 40960"));
	CHECK(has(&p, "'web-1/pages.img' offset 172032"));

	/* The file itself reads as EIO there, and fine elsewhere. */
	{
		struct store *s = NULL;
		struct store_attr c, f;
		uint8_t got[STORE_CHUNK_SIZE], page[STORE_CHUNK_SIZE];

		REQUIRE(store_open(store_path, STORE_OPEN_RDONLY, &s) == 0);
		REQUIRE(store_lookup(s, STORE_ROOT_INO, "web-2", &c) == 0);
		REQUIRE(store_lookup(s, c.ino, "pages.img", &f) == 0);
		CHECK_EQ(store_read(s, f.ino, got, sizeof(got), 10 * STORE_CHUNK_SIZE), -EIO);
		CHECK_EQ(store_read(s, f.ino, got, sizeof(got), 11 * STORE_CHUNK_SIZE),
			 STORE_CHUNK_SIZE);
		page_fill(page, 32 + 11);
		CHECK(memcmp(got, page, sizeof(got)) == 0);
		store_close(s);
	}
	problems_reset(&p);
}

static void test_refcount(const char *tmp)
{
	struct problems p = {0};
	struct store *s = NULL;
	struct idx_txn *txn = NULL;
	struct chunk_id id;
	struct maint_loc loc;
	uint8_t val[CHUNK_VAL_LEN];
	char hex[CHUNK_ID_HEX_LEN], want[128];

	build(tmp, "refcount");
	locate("web-1", "pages.img", 3, &id, &loc);
	REQUIRE(store_open(store_path, 0, &s) == 0);
	REQUIRE(idx_txn_begin(s->db, true, &txn) == 0);
	loc.refs += 2;
	maint_loc_encode(val, &loc);
	REQUIRE(idx_put(txn, IDX_CHUNKS, id.b, STORE_CHUNK_ID_LEN, val, sizeof(val), 0) == 0);
	REQUIRE(idx_txn_commit(txn) == 0);
	store_close(s);

	CHECK_EQ(fsck_path(store_path, &p), 1);
	snprintf(want, sizeof(want), "chunk %s: refcount %llu in the index, but %llu",
		 chunk_id_to_hex(id.b, hex), (unsigned long long)loc.refs,
		 (unsigned long long)(loc.refs - 2));
	CHECK(has(&p, want));
	problems_reset(&p);
}

static void test_dangling(const char *tmp)
{
	struct problems p = {0};
	struct store *s = NULL;
	struct idx_txn *txn = NULL;
	struct store_attr c;
	struct inode dir;
	uint8_t k[8 + 5], v[DIRENT_VAL_LEN], ck[16];

	build(tmp, "dangling");
	REQUIRE(store_open(store_path, 0, &s) == 0);
	REQUIRE(store_lookup(s, STORE_ROOT_INO, "web-2", &c) == 0);
	REQUIRE(idx_txn_begin(s->db, true, &txn) == 0);
	/* A complete entry (with its readdir cookie) naming an inode that does not exist. */
	REQUIRE(ino_load(txn, c.ino, &dir) == 0);
	be64_put(k, c.ino);
	memcpy(k + 8, "ghost", 5);
	le64_put(v, 999999);
	le64_put(v + 8, dir.next_cookie);
	le32_put(v + 16, S_IFREG | 0644);
	REQUIRE(idx_put(txn, IDX_DIRENTS, k, sizeof(k), v, sizeof(v), 0) == 0);
	be64_put(ck, c.ino);
	be64_put(ck + 8, dir.next_cookie);
	REQUIRE(idx_put(txn, IDX_DIRCOOKIES, ck, sizeof(ck), "ghost", 5, 0) == 0);
	dir.next_cookie++;
	REQUIRE(ino_save(txn, &dir) == 0);
	inode_done(&dir);
	REQUIRE(idx_txn_commit(txn) == 0);
	store_close(s);

	CHECK_EQ(fsck_path(store_path, &p), 1);
	CHECK(has(&p, "dangling directory entry 'web-2/ghost' -> inode 999999"));
	problems_reset(&p);
}

static void test_sealed_changed(const char *tmp)
{
	struct problems p = {0};
	struct store *s = NULL;
	struct idx_txn *txn = NULL;
	struct store_attr c, f;
	uint8_t k[8 + 10];

	build(tmp, "sealed");
	REQUIRE(store_open(store_path, 0, &s) == 0);
	REQUIRE(store_lookup(s, STORE_ROOT_INO, "web-1", &c) == 0);
	REQUIRE(store_lookup(s, c.ino, "pages.img", &f) == 0);
	/* An xattr slipped into a sealed checkpoint behind the API's back. */
	REQUIRE(idx_txn_begin(s->db, true, &txn) == 0);
	be64_put(k, f.ino);
	memcpy(k + 8, "user.evil", 9);
	REQUIRE(idx_put(txn, IDX_XATTRS, k, 17, "x", 1, 0) == 0);
	REQUIRE(idx_txn_commit(txn) == 0);
	store_close(s);
	CHECK_EQ(fsck_path(store_path, &p), 1);
	CHECK(has(&p, "sealed checkpoint 'web-1': the index now gives content id"));
	problems_reset(&p);

	/* And without its manifest. */
	{
		char mpath[700];

		snprintf(mpath, sizeof(mpath), "%s/manifests/%llu.manifest", store_path,
			 (unsigned long long)c.ino);
		REQUIRE(unlink(mpath) == 0);
	}
	CHECK_EQ(fsck_path(store_path, &p), 2);
	CHECK(has(&p, "sealed checkpoint 'web-1': manifest"));
	CHECK(has(&p, "is missing"));
	problems_reset(&p);
}

int main(void)
{
	const char *tmp = test_tmpdir("fsck");

	test_clean(tmp);
	test_flipped_byte(tmp);
	test_refcount(tmp);
	test_dangling(tmp);
	test_sealed_changed(tmp);
	return test_result("test_fsck");
}
