// SPDX-License-Identifier: MIT
/* test_store_ns - the namespace of the store: init/open refusals, create, lookup, readdir with
 * cookies, rename in all its forms, links, unlink/rmdir, xattrs, setattr, sealing rules. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "tests/unit/testutil.h"

struct dirlist {
	char names[64][256];
	uint64_t cookies[64];
	int n, stop_after;
};

static int collect(void *ctx, const char *name, uint64_t ino, uint32_t mode, uint64_t next_cookie)
{
	struct dirlist *d = ctx;

	snprintf(d->names[d->n], sizeof(d->names[0]), "%s", name);
	d->cookies[d->n] = next_cookie;
	d->n++;
	return d->stop_after && d->n >= d->stop_after;
}

static void test_init_refusals(const char *dir)
{
	char path[512];
	struct store *s = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/notempty", dir);
	CHECK(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/notempty/file", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/notempty", dir);
	CHECK_EQ(store_init(path), -ENOTEMPTY);
	CHECK(strstr(store_last_error(), "not empty") != NULL);
	CHECK_EQ(store_open(path, 0, &s), -ENOENT);
	CHECK(strstr(store_last_error(), "not a ckptfs store") != NULL);

	snprintf(path, sizeof(path), "%s/store", dir);
	CHECK_EQ(store_init(path), 0);
	CHECK_EQ(store_init(path), -EEXIST);
}

static void test_namespace(struct store *s)
{
	struct store_attr a, c1, c2, sub, f, l;
	struct dirlist d = {0};
	char buf[64];

	CHECK_EQ(store_getattr(s, STORE_ROOT_INO, &a), 0);
	CHECK(S_ISDIR(a.mode));
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "c1", 0755, 0, 0, &c1) == 0);
	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "c2", 0700, 1, 2, &c2) == 0);
	CHECK_EQ(c1.ckpt_ino, c1.ino);
	CHECK_EQ(c2.uid, 1);
	CHECK_EQ(c2.gid, 2);
	CHECK_EQ(store_mkdir(s, STORE_ROOT_INO, "c1", 0755, 0, 0, &a), -EEXIST);
	/* Only checkpoints at the top. */
	CHECK_EQ(store_mknod(s, STORE_ROOT_INO, "file", S_IFREG | 0644, 0, 0, 0, &a), -EPERM);
	CHECK_EQ(store_mknod(s, c1.ino, "a/b", S_IFREG | 0644, 0, 0, 0, &a), -EINVAL);
	CHECK_EQ(store_mknod(s, c1.ino, "..", S_IFREG | 0644, 0, 0, 0, &a), -EINVAL);

	REQUIRE(store_mkdir(s, c1.ino, "sub", 0755, 0, 0, &sub) == 0);
	CHECK_EQ(sub.ckpt_ino, c1.ino);
	REQUIRE(store_mknod(s, sub.ino, "f", S_IFREG | 0640, 0, 7, 8, &f) == 0);
	CHECK(S_ISREG(f.mode));
	CHECK_EQ(f.mode & 07777, 0640);
	CHECK_EQ(f.nlink, 1);
	CHECK_EQ(f.ckpt_ino, c1.ino);
	REQUIRE(store_symlink(s, sub.ino, "l", "../target/x", 0, 0, &l) == 0);
	CHECK(S_ISLNK(l.mode));
	CHECK_EQ(store_readlink(s, l.ino, buf, sizeof(buf)), 11);
	CHECK(strcmp(buf, "../target/x") == 0);
	CHECK_EQ(store_readlink(s, l.ino, buf, 4), 11);
	CHECK(strcmp(buf, "../") == 0);
	CHECK_EQ(store_readlink(s, f.ino, buf, sizeof(buf)), -EINVAL);
	CHECK_EQ(store_mknod(s, sub.ino, "fifo", S_IFIFO | 0600, 0, 0, 0, &a), 0);
	CHECK(S_ISFIFO(a.mode));

	CHECK_EQ(store_lookup(s, sub.ino, "f", &a), 0);
	CHECK_EQ(a.ino, f.ino);
	CHECK_EQ(store_lookup(s, sub.ino, "nope", &a), -ENOENT);
	CHECK_EQ(store_getattr(s, c1.ino, &a), 0);
	CHECK_EQ(a.nlink, 3); /* ., .. and sub */

	/* readdir: creation order, resumable from any cookie, stable while entries change. */
	for (int i = 0; i < 10; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%d", i);
		CHECK_EQ(store_mknod(s, c2.ino, name, S_IFREG | 0644, 0, 0, 0, &a), 0);
	}
	d.stop_after = 4;
	CHECK_EQ(store_readdir(s, c2.ino, 0, collect, &d), 0);
	CHECK_EQ(d.n, 4);
	CHECK(strcmp(d.names[3], "n3") == 0);
	/* Remove an entry already returned and one not yet returned, add one: the walk goes on. */
	CHECK_EQ(store_unlink(s, c2.ino, "n1"), 0);
	CHECK_EQ(store_unlink(s, c2.ino, "n6"), 0);
	CHECK_EQ(store_mknod(s, c2.ino, "zz", S_IFREG | 0644, 0, 0, 0, &a), 0);
	uint64_t resume = d.cookies[3];
	memset(&d, 0, sizeof(d));
	CHECK_EQ(store_readdir(s, c2.ino, resume, collect, &d), 0);
	CHECK_EQ(d.n, 6); /* n4 n5 n7 n8 n9 zz */
	CHECK(strcmp(d.names[0], "n4") == 0);
	CHECK(strcmp(d.names[2], "n7") == 0);
	CHECK(strcmp(d.names[5], "zz") == 0);
	CHECK_EQ(store_readdir(s, f.ino, 0, collect, &d), -ENOTDIR);

	/* rename: plain, replace, NOREPLACE, EXCHANGE, into own subtree, across checkpoints. */
	CHECK_EQ(store_rename(s, sub.ino, "f", sub.ino, "g", 0), 0);
	CHECK_EQ(store_lookup(s, sub.ino, "f", &a), -ENOENT);
	CHECK_EQ(store_lookup(s, sub.ino, "g", &a), 0);
	CHECK_EQ(a.ino, f.ino);
	CHECK_EQ(store_rename(s, sub.ino, "g", sub.ino, "fifo", STORE_RENAME_NOREPLACE), -EEXIST);
	CHECK_EQ(store_rename(s, sub.ino, "g", sub.ino, "fifo", STORE_RENAME_EXCHANGE), 0);
	CHECK_EQ(store_lookup(s, sub.ino, "fifo", &a), 0);
	CHECK_EQ(a.ino, f.ino);
	CHECK_EQ(store_lookup(s, sub.ino, "g", &a), 0);
	CHECK(S_ISFIFO(a.mode));
	CHECK_EQ(store_rename(s, sub.ino, "fifo", sub.ino, "g", 0), 0); /* replaces the fifo */
	CHECK_EQ(store_lookup(s, sub.ino, "g", &a), 0);
	CHECK_EQ(a.ino, f.ino);
	CHECK_EQ(store_lookup(s, sub.ino, "fifo", &a), -ENOENT);
	CHECK_EQ(store_rename(s, c1.ino, "sub", sub.ino, "inner", 0), -EINVAL);
	CHECK_EQ(store_rename(s, sub.ino, "g", STORE_ROOT_INO, "g", 0), -EPERM);
	CHECK_EQ(store_rename(s, c1.ino, "sub", c2.ino, "moved", 0), 0);
	CHECK_EQ(store_lookup(s, c2.ino, "moved", &a), 0);
	CHECK_EQ(a.ckpt_ino, c2.ino);
	CHECK_EQ(store_getattr(s, f.ino, &a), 0);
	CHECK_EQ(a.ckpt_ino, c2.ino); /* the subtree followed */
	CHECK_EQ(store_getattr(s, c1.ino, &a), 0);
	CHECK_EQ(a.nlink, 2);
	CHECK_EQ(store_getattr(s, c2.ino, &a), 0);
	CHECK_EQ(a.nlink, 3);
	/* A directory moved to the top becomes a checkpoint of its own. */
	CHECK_EQ(store_rename(s, c2.ino, "moved", STORE_ROOT_INO, "c3", 0), 0);
	CHECK_EQ(store_lookup(s, STORE_ROOT_INO, "c3", &a), 0);
	CHECK_EQ(a.ckpt_ino, a.ino);
	CHECK_EQ(store_getattr(s, f.ino, &a), 0);
	CHECK_EQ(a.ckpt_ino, sub.ino);
	CHECK_EQ(store_rename(s, STORE_ROOT_INO, "c3", c1.ino, "sub", 0), 0);

	/* hard links */
	CHECK_EQ(store_link(s, f.ino, sub.ino, "g2", &a), 0);
	CHECK_EQ(a.nlink, 2);
	CHECK_EQ(store_link(s, f.ino, c2.ino, "x", &a), -EXDEV);
	CHECK_EQ(store_link(s, sub.ino, c1.ino, "dirlink", &a), -EPERM);
	CHECK_EQ(store_unlink(s, sub.ino, "g"), 0);
	CHECK_EQ(store_getattr(s, f.ino, &a), 0);
	CHECK_EQ(a.nlink, 1);

	/* unlink/rmdir */
	CHECK_EQ(store_rmdir(s, c1.ino, "sub"), -ENOTEMPTY);
	CHECK_EQ(store_unlink(s, c1.ino, "sub"), -EISDIR);
	CHECK_EQ(store_rmdir(s, sub.ino, "g2"), -ENOTDIR);
	CHECK_EQ(store_unlink(s, sub.ino, "g2"), 0);
	CHECK_EQ(store_getattr(s, f.ino, &a), -ENOENT);
	CHECK_EQ(store_unlink(s, sub.ino, "l"), 0);
	CHECK_EQ(store_rmdir(s, c1.ino, "sub"), 0);
	CHECK_EQ(store_getattr(s, sub.ino, &a), -ENOENT);

	/* setattr */
	struct store_attr want = {.mode = 0600, .uid = 42, .gid = 43};
	want.mtime.tv_sec = 1000000;
	want.mtime.tv_nsec = 5;
	CHECK_EQ(store_mknod(s, c1.ino, "s", S_IFREG | 0644, 0, 0, 0, &f), 0);
	CHECK_EQ(store_setattr(s, f.ino, &want,
			       STORE_SET_MODE | STORE_SET_UID | STORE_SET_GID | STORE_SET_MTIME,
			       &a),
		 0);
	CHECK_EQ(a.mode, S_IFREG | 0600);
	CHECK_EQ(a.uid, 42);
	CHECK_EQ(a.gid, 43);
	CHECK_EQ(a.mtime.tv_sec, 1000000);
	CHECK_EQ(a.mtime.tv_nsec, 5);

	/* xattrs */
	char list[256], val[64];
	CHECK_EQ(store_setxattr(s, f.ino, "user.a", "1", 1, 0), 0);
	CHECK_EQ(store_setxattr(s, f.ino, "user.bb", "22", 2, 0), 0);
	CHECK_EQ(store_setxattr(s, f.ino, "user.a", "x", 1, XATTR_CREATE), -EEXIST);
	CHECK_EQ(store_setxattr(s, f.ino, "user.c", "x", 1, XATTR_REPLACE), -ENODATA);
	CHECK_EQ(store_setxattr(s, f.ino, "trusted.a", "x", 1, 0), -EOPNOTSUPP);
	CHECK_EQ(store_getxattr(s, f.ino, "user.bb", NULL, 0), 2);
	CHECK_EQ(store_getxattr(s, f.ino, "user.bb", val, 1), -ERANGE);
	CHECK_EQ(store_getxattr(s, f.ino, "user.bb", val, sizeof(val)), 2);
	CHECK(memcmp(val, "22", 2) == 0);
	CHECK_EQ(store_getxattr(s, f.ino, "user.zz", val, sizeof(val)), -ENODATA);
	CHECK_EQ(store_listxattr(s, f.ino, NULL, 0), 15);
	CHECK_EQ(store_listxattr(s, f.ino, list, sizeof(list)), 15);
	CHECK(memcmp(list, "user.a\0user.bb\0", 15) == 0);
	CHECK_EQ(store_listxattr(s, f.ino, list, 3), -ERANGE);
	CHECK_EQ(store_removexattr(s, f.ino, "user.a"), 0);
	CHECK_EQ(store_removexattr(s, f.ino, "user.a"), -ENODATA);
	CHECK_EQ(store_listxattr(s, f.ino, list, sizeof(list)), 8);
}

static void test_seal(struct store *s)
{
	struct store_attr c, f, a;
	struct store_ckpt_info info;
	uint8_t id[STORE_CONTENT_ID_LEN], id2[STORE_CONTENT_ID_LEN];
	char hex[40];

	REQUIRE(store_mkdir(s, STORE_ROOT_INO, "sealme", 0755, 0, 0, &c) == 0);
	REQUIRE(store_mknod(s, c.ino, "f", S_IFREG | 0644, 0, 0, 0, &f) == 0);
	REQUIRE(store_open_inode(s, f.ino, true) == 0);
	CHECK_EQ(store_write(s, f.ino, "hello", 5, 0), 5);
	CHECK_EQ(store_getxattr(s, c.ino, STORE_CONTENT_ID_XATTR, hex, sizeof(hex)), -ENODATA);
	CHECK_EQ(store_setxattr(s, f.ino, STORE_SEAL_XATTR, "1", 1, 0), -EPERM);
	CHECK_EQ(store_setxattr(s, c.ino, STORE_SEAL_XATTR, "1", 1, 0), 0);
	CHECK_EQ(store_getattr(s, f.ino, &a), 0);
	CHECK(a.sealed);
	CHECK_EQ(a.size, 5); /* buffered data went in before the seal */
	CHECK_EQ(store_write(s, f.ino, "x", 1, 0), -EROFS);
	CHECK_EQ(store_release(s, f.ino, true), 0);
	CHECK_EQ(store_open_inode(s, f.ino, true), -EROFS);
	CHECK_EQ(store_mknod(s, c.ino, "g", S_IFREG | 0644, 0, 0, 0, &a), -EROFS);
	CHECK_EQ(store_unlink(s, c.ino, "f"), -EROFS);
	CHECK_EQ(store_setxattr(s, f.ino, "user.x", "1", 1, 0), -EROFS);
	struct store_attr m = {.mode = 0};
	CHECK_EQ(store_setattr(s, f.ino, &m, STORE_SET_MODE, &a), -EROFS);
	CHECK_EQ(store_setattr(s, f.ino, &m, STORE_SET_SIZE, &a), -EROFS);
	CHECK_EQ(store_getxattr(s, c.ino, STORE_CONTENT_ID_XATTR, hex, sizeof(hex)), 32);
	CHECK_EQ(store_ckpt_info(s, "sealme", true, &info), 0);
	CHECK(info.sealed);
	CHECK_EQ(info.logical_bytes, 5);
	CHECK_EQ(info.nfiles, 1);
	CHECK_EQ(store_ckpt_seal(s, "sealme", id), 0);
	CHECK(memcmp(id, info.content_id, sizeof(id)) == 0);
	/* Top-level rename of a sealed checkpoint stays allowed; the id does not change. */
	CHECK_EQ(store_rename(s, STORE_ROOT_INO, "sealme", STORE_ROOT_INO, "sealed2", 0), 0);
	CHECK_EQ(store_ckpt_seal(s, "sealed2", id2), 0);
	CHECK(memcmp(id, id2, sizeof(id)) == 0);
	/* Moving a sealed checkpoint inside another one is refused. */
	CHECK_EQ(store_mkdir(s, STORE_ROOT_INO, "other", 0755, 0, 0, &a), 0);
	CHECK_EQ(store_rename(s, STORE_ROOT_INO, "sealed2", a.ino, "x", 0), -EROFS);
	CHECK_EQ(store_ckpt_remove(s, "sealed2"), 0);
	CHECK_EQ(store_lookup(s, STORE_ROOT_INO, "sealed2", &a), -ENOENT);
	CHECK_EQ(store_getattr(s, f.ino, &a), -ENOENT);
}

int main(void)
{
	const char *dir = test_tmpdir("ns");
	char path[512];
	struct store *s = NULL, *s2 = NULL, *ro = NULL;
	struct store_attr a;

	test_init_refusals(dir);
	snprintf(path, sizeof(path), "%s/store", dir);
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	CHECK_EQ(store_open(path, STORE_OPEN_EXCLUSIVE, &s2), -EBUSY);
	CHECK(strstr(store_last_error(), "already") != NULL);
	test_namespace(s);
	test_seal(s);
	/* A second, non-exclusive opener (the CLI) sees the same namespace. */
	REQUIRE(store_open(path, STORE_OPEN_RDONLY, &ro) == 0);
	CHECK_EQ(store_lookup(ro, STORE_ROOT_INO, "c1", &a), 0);
	CHECK_EQ(store_mkdir(ro, STORE_ROOT_INO, "x", 0755, 0, 0, &a), -EROFS);
	store_close(ro);
	store_close(s);
	/* Reopen: everything persisted. */
	REQUIRE(store_open(path, STORE_OPEN_EXCLUSIVE, &s) == 0);
	CHECK_EQ(store_lookup(s, STORE_ROOT_INO, "c2", &a), 0);
	CHECK_EQ(a.uid, 1);
	store_close(s);
	return test_result("test_store_ns");
}
