// SPDX-License-Identifier: MIT
#include "index/inode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"

static void ts_put(uint8_t *p, const struct timespec *ts)
{
	le64_put(p, (uint64_t)ts->tv_sec);
	le32_put(p + 8, (uint32_t)ts->tv_nsec);
}

static void ts_get(const uint8_t *p, struct timespec *ts)
{
	ts->tv_sec = (time_t)le64_get(p);
	ts->tv_nsec = (long)le32_get(p + 8);
}

int inode_decode(uint64_t ino, const void *val, size_t len, struct inode *ret)
{
	const uint8_t *p = val;

	if (len < INODE_REC_LEN)
		return -EBADMSG;
	memset(ret, 0, sizeof(*ret));
	ret->ino = ino;
	ret->mode = le32_get(p);
	ret->uid = le32_get(p + 4);
	ret->gid = le32_get(p + 8);
	ret->flags = le32_get(p + 12);
	ret->nlink = le64_get(p + 16);
	ret->size = le64_get(p + 24);
	ret->rdev = le64_get(p + 32);
	ret->ckpt_ino = le64_get(p + 40);
	ret->parent = le64_get(p + 48);
	ret->next_cookie = le64_get(p + 56);
	ret->stored = le64_get(p + 64);
	ts_get(p + 72, &ret->atime);
	ts_get(p + 84, &ret->mtime);
	ts_get(p + 96, &ret->ctime);
	memcpy(ret->content_id, p + 108, STORE_CONTENT_ID_LEN);
	if (S_ISLNK(ret->mode)) {
		ret->target_len = len - INODE_REC_LEN;
		ret->target = malloc(ret->target_len + 1);
		if (!ret->target)
			return -ENOMEM;
		memcpy(ret->target, p + INODE_REC_LEN, ret->target_len);
		ret->target[ret->target_len] = '\0';
	}
	return 0;
}

size_t inode_encoded_len(const struct inode *in)
{
	return INODE_REC_LEN + (S_ISLNK(in->mode) ? in->target_len : 0);
}

void inode_encode(const struct inode *in, void *buf)
{
	uint8_t *p = buf;

	memset(p, 0, INODE_REC_LEN);
	le32_put(p, in->mode);
	le32_put(p + 4, in->uid);
	le32_put(p + 8, in->gid);
	le32_put(p + 12, in->flags);
	le64_put(p + 16, in->nlink);
	le64_put(p + 24, in->size);
	le64_put(p + 32, in->rdev);
	le64_put(p + 40, in->ckpt_ino);
	le64_put(p + 48, in->parent);
	le64_put(p + 56, in->next_cookie);
	le64_put(p + 64, in->stored);
	ts_put(p + 72, &in->atime);
	ts_put(p + 84, &in->mtime);
	ts_put(p + 96, &in->ctime);
	memcpy(p + 108, in->content_id, STORE_CONTENT_ID_LEN);
	if (S_ISLNK(in->mode) && in->target_len)
		memcpy(p + INODE_REC_LEN, in->target, in->target_len);
}

void inode_add_stored(struct inode *in, int64_t delta)
{
	/* Releasing more than was counted happens when a slot named a chunk the index had lost
	 * (fsck reports those): stop at zero. */
	if (delta < 0 && (uint64_t)-delta > in->stored)
		in->stored = 0;
	else
		in->stored += (uint64_t)delta;
}

void inode_done(struct inode *in)
{
	free(in->target);
	in->target = NULL;
}

void inode_to_attr(const struct inode *in, bool sealed, struct store_attr *ret_attr)
{
	memset(ret_attr, 0, sizeof(*ret_attr));
	ret_attr->ino = in->ino;
	ret_attr->size = in->size;
	ret_attr->nlink = in->nlink;
	ret_attr->blocks = (in->stored + 511) / 512;
	ret_attr->mode = in->mode;
	ret_attr->uid = in->uid;
	ret_attr->gid = in->gid;
	ret_attr->rdev = in->rdev;
	ret_attr->atime = in->atime;
	ret_attr->mtime = in->mtime;
	ret_attr->ctime = in->ctime;
	ret_attr->ckpt_ino = in->ckpt_ino;
	ret_attr->sealed = sealed;
}
