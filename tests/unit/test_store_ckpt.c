// SPDX-License-Identifier: MIT
/* test_store_ckpt - checkpoints: manifests (written at fsync and at seal) parse back to the exact
 * tree, attrs, xattrs, symlinks, hard links and chunk lists; content ids are canonical (same
 * content under another name and other inode numbers gives the same id); list/info/remove;
 * manifest version and corruption refusals. */
#include <fcntl.h>
#include <sys/wait.h>
#include <sys/stat.h>

#include "common/util.h"
#include "index/manifest.h"
#include "index/store_priv.h"
#include "tests/unit/testutil.h"

#define FILE_LEN (300u * 1024 + 123)

static uint8_t data[FILE_LEN];

struct seen {
	struct store *s;
	int entries, links, xattrs, chunks, bad;
	uint64_t big_id, holes_checked;
	bool have_link_target, have_sub;
};

static int on_entry(void *ctx, const struct manifest_entry *e)
{
	struct seen *v = ctx;

	v->entries++;
	if (e->is_link) {
		v->links++;
		return 0;
	}
	if (!strcmp(e->name, "big")) {
		v->big_id = e->id;
		if (e->size != FILE_LEN || !S_ISREG(e->mode) || (e->mode & 0777) != 0640 ||
		    e->uid != 5 || e->mtime.tv_sec != 1700000000)
			v->bad++;
	}
	if (!strcmp(e->name, "ln"))
		v->have_link_target =
			S_ISLNK(e->mode) && e->target_len == 3 && !memcmp(e->target, "big", 3);
	if (!strcmp(e->name, "sub"))
		v->have_sub = S_ISDIR(e->mode) && e->parent_id == 1;
	return 0;
}

static int on_xattr(void *ctx, uint32_t id, const char *name, size_t nl, const void *val, size_t vl)
{
	struct seen *v = ctx;

	if (nl == 8 && !memcmp(name, "user.tag", 8) && vl == 5 && !memcmp(val, "hello", 5))
		v->xattrs++;
	return 0;
}

static int on_chunk(void *ctx, uint32_t id, uint64_t idx, const struct chunk_id *cid)
{
	struct seen *v = ctx;
	uint8_t page[STORE_CHUNK_SIZE], want[STORE_CHUNK_SIZE];
	uint64_t off = idx * STORE_CHUNK_SIZE;

	if (id != v->big_id)
		return 0;
	v->chunks++;
	/* The chunk the manifest names holds exactly the file's bytes at that index. */
	memset(want, 0, sizeof(want));
	memcpy(want, data + off, MIN((uint64_t)STORE_CHUNK_SIZE, FILE_LEN - off));
	if (store_read_chunk(v->s, cid, 0, page) < 0 || memcmp(page, want, sizeof(page)) != 0)
		v->bad++;
	return 0;
}

static const struct manifest_ops ops = {on_entry, on_xattr, on_chunk};

static void set_times(struct store *s, uint64_t ino)
{
	struct store_attr a = {0};

	a.atime.tv_sec = a.mtime.tv_sec = a.ctime.tv_sec = 1700000000;
	CHECK_EQ(store_setattr(s, ino, &a, STORE_SET_ATIME | STORE_SET_MTIME | STORE_SET_CTIME, &a),
		 0);
}

/* Builds the same tree under checkpoint name; returns the checkpoint inode. */
static uint64_t build(struct store *s, const char *name)
{
	struct store_attr c, sub, big, ln, hl;

	REQUIRE(store_mkdir(s, STORE_ROOT_INO, name, 0755, 0, 0, &c) == 0);
	REQUIRE(store_mkdir(s, c.ino, "sub", 0700, 0, 0, &sub) == 0);
	REQUIRE(store_mknod(s, c.ino, "big", S_IFREG | 0640, 0, 5, 6, &big) == 0);
	REQUIRE(store_open_inode(s, big.ino, true) == 0);
	CHECK_EQ(store_write(s, big.ino, data, FILE_LEN, 0), FILE_LEN);
	CHECK_EQ(store_fsync(s, big.ino, false), 0);
	CHECK_EQ(store_release(s, big.ino, true), 0);
	CHECK_EQ(store_setxattr(s, big.ino, "user.tag", "hello", 5, 0), 0);
	REQUIRE(store_symlink(s, sub.ino, "ln", "big", 0, 0, &ln) == 0);
	REQUIRE(store_link(s, big.ino, sub.ino, "hard", &hl) == 0);
	set_times(s, ln.ino);
	set_times(s, big.ino);
	set_times(s, sub.ino);
	set_times(s, c.ino);
	return c.ino;
}

static int list_cb(void *ctx, const struct store_ckpt_info *ci)
{
	int *n = ctx;

	(*n)++;
	return 0;
}

int main(void)
{
	const char *dir = test_tmpdir("ckpt");
	char path[512], rel[64];
	struct store *s = NULL;
	struct manifest_header h;
	uint8_t *body = NULL;
	size_t len;
	uint8_t id1[STORE_CONTENT_ID_LEN], id2[STORE_CONTENT_ID_LEN], id3[STORE_CONTENT_ID_LEN];
	struct store_ckpt_info info;
	struct seen v = {0};
	int dirfd, n = 0;

	for (unsigned i = 0; i < FILE_LEN; i++)
		data[i] = (i / 4096) % 3 == 0 ? 0 : (uint8_t)(rng_next() % 16);
	snprintf(path, sizeof(path), "%s/store", dir);
	REQUIRE(store_init(path) == 0);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(dirfd >= 0);
	v.s = s;

	uint64_t c1 = build(s, "one");
	/* fsync wrote an unsealed manifest already. */
	snprintf(rel, sizeof(rel), "manifests/%llu.manifest", (unsigned long long)c1);
	REQUIRE(manifest_read(dirfd, rel, &h, &body, &len) == 0);
	CHECK_EQ(h.flags & MANIFEST_F_SEALED, 0);
	CHECK_EQ(h.ckpt_ino, c1);
	free(body);

	CHECK_EQ(store_ckpt_seal(s, "one", id1), 0);
	REQUIRE(manifest_read(dirfd, rel, &h, &body, &len) == 0);
	CHECK(h.flags & MANIFEST_F_SEALED);
	CHECK(memcmp(h.content_id, id1, sizeof(id1)) == 0);
	char name[256];
	CHECK_EQ(manifest_parse(body, len, &ops, &v, name), 0);
	CHECK(strcmp(name, "one") == 0);
	CHECK_EQ(v.entries, 5); /* root, big, sub, sub/hard (link), sub/ln */
	CHECK_EQ(v.links, 1);
	CHECK_EQ(v.xattrs, 1);
	CHECK(v.have_link_target);
	CHECK(v.have_sub);
	/* 76 chunk slots, every third one all-zero (a hole, not listed). */
	CHECK_EQ(v.chunks, 50);
	CHECK_EQ(v.bad, 0);
	/* Damaged bodies are refused, never half-parsed into a namespace. */
	CHECK_EQ(manifest_parse(body, len - 7, &ops, &v, NULL), -EBADMSG);
	free(body);

	/* Same content, another name, other inode numbers: same content id. */
	build(s, "two");
	CHECK_EQ(store_ckpt_seal(s, "two", id2), 0);
	CHECK(memcmp(id1, id2, sizeof(id1)) == 0);
	/* One byte more makes another id. */
	uint64_t c3 = build(s, "three");
	struct store_attr a;
	CHECK_EQ(store_lookup(s, c3, "big", &a), 0);
	CHECK_EQ(store_write(s, a.ino, "x", 1, 5), 1);
	set_times(s, a.ino);
	CHECK_EQ(store_ckpt_seal(s, "three", id3), 0);
	CHECK(memcmp(id1, id3, sizeof(id1)) != 0);

	CHECK_EQ(store_ckpt_info(s, "one", true, &info), 0);
	CHECK(info.sealed);
	CHECK(memcmp(info.content_id, id1, sizeof(id1)) == 0);
	CHECK_EQ(info.logical_bytes, FILE_LEN);
	CHECK_EQ(info.nfiles, 2); /* big (once, despite the hard link) and ln */
	CHECK(info.stored_bytes > 0);
	CHECK_EQ(info.unique_bytes, 0); /* "two" has the very same chunks */
	CHECK_EQ(store_ckpt_list(s, false, list_cb, &n), 0);
	CHECK_EQ(n, 3);

	CHECK_EQ(store_ckpt_remove(s, "one"), 0);
	CHECK(faccessat(dirfd, rel, F_OK, 0) < 0 && errno == ENOENT);
	CHECK_EQ(store_ckpt_info(s, "one", false, &info), -ENOENT);
	CHECK_EQ(store_ckpt_remove(s, "one"), -ENOENT);
	CHECK_EQ(store_ckpt_info(s, "two", true, &info), 0);
	CHECK_EQ(info.unique_bytes, 0); /* "three" shares all but one chunk... */
	CHECK_EQ(store_ckpt_info(s, "three", true, &info), 0);
	CHECK(info.unique_bytes > 0); /* ...which is its own */
	/* A second process (the CLI) works on the store while this one (the mount) has it open. */
	struct store_attr lv, lf;
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "live", 0755, 0, 0, &lv) == 0);
	REQUIRE(store_mknod(s, lv.ino, "f", S_IFREG | 0644, 0, 0, 0, &lf) == 0);
	REQUIRE(store_open_inode(s, lf.ino, true) == 0);
	CHECK_EQ(store_write(s, lf.ino, data, FILE_LEN, 0), FILE_LEN);
	CHECK_EQ(store_fsync(s, lf.ino, false), 0);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct store *cli = NULL;
		struct store_ckpt_info ci;
		struct store_df cdf;
		uint8_t cid[STORE_CONTENT_ID_LEN];
		int bad = 0;

		if (store_open(path, STORE_OPEN_EXCLUSIVE, &cli) != -EBUSY)
			bad |= 1;
		if (store_open(path, 0, &cli) < 0)
			_exit(100);
		if (store_ckpt_info(cli, "live", true, &ci) < 0 || ci.logical_bytes != FILE_LEN)
			bad |= 2;
		if (store_df(cli, &cdf) < 0 || cdf.ncheckpoints != 3)
			bad |= 4;
		if (store_ckpt_seal(cli, "live", cid) < 0)
			bad |= 8;
		if (store_ckpt_remove(cli, "two") < 0)
			bad |= 16;
		store_close(cli);
		_exit(bad);
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	/* This process sees both changes at once: nothing namespace-wide is cached. */
	CHECK_EQ(store_ckpt_info(s, "two", false, &info), -ENOENT);
	CHECK_EQ(store_ckpt_info(s, "live", false, &info), 0);
	CHECK(info.sealed);
	/* A write buffered before we learnt of the seal is refused when it would be stored. */
	CHECK_EQ(store_write(s, lf.ino, "zz", 2, 0), 2);
	CHECK_EQ(store_fsync(s, lf.ino, false), -EROFS);
	CHECK_EQ(store_write(s, lf.ino, "zz", 2, 0), -EROFS);
	CHECK_EQ(store_release(s, lf.ino, true), 0);
	uint8_t back[16];
	CHECK_EQ(store_read(s, lf.ino, back, sizeof(back), 0), sizeof(back));
	CHECK(memcmp(back, data, sizeof(back)) == 0);
	store_close(s);

	/* Manifest version and magic checks. */
	snprintf(rel, sizeof(rel), "manifests/%llu.manifest", (unsigned long long)c3);
	int fd = openat(dirfd, rel, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	uint8_t b[4];
	le32_put(b, 3);
	REQUIRE(pwrite(fd, b, 4, 8) == 4);
	CHECK_EQ(manifest_read(dirfd, rel, &h, &body, &len), -EOPNOTSUPP);
	CHECK(strstr(store_last_error(), "reads version 1") != NULL);
	le32_put(b, 1);
	REQUIRE(pwrite(fd, b, 4, 8) == 4);
	REQUIRE(pwrite(fd, "\xff\xff\xff\xff", 4, 60) == 4);
	CHECK_EQ(manifest_read(dirfd, rel, &h, &body, &len), -EBADMSG);
	close(fd);
	close(dirfd);
	return test_result("test_store_ckpt");
}
