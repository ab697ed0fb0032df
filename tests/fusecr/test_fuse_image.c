// SPDX-License-Identifier: MIT
/*
 * test_fuse_image.c - unit test of the FUSE part of fds.img: a /dev/fuse fd record with its
 * FD_FUSE record survives an encode/decode round trip field by field (a dup of it carries the
 * record too), and the decoder/validator refuse the damaged forms: an FD_FUSE record with no
 * fuse fd before it, a fuse fd without its FD_FUSE record, connection 0, a relative mount point,
 * and every truncation of the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "cr/image.h"

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static void set_fd(struct cr_fd *f, int32_t fd, uint32_t kind, const char *path)
{
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->kind = kind;
	f->flags = 02;
	f->cloexec = 1;
	f->mode = 020600;
	f->dup_of = -1;
	f->path = strdup(path);
}

static void set_fuse(struct cr_fd *f, uint32_t conn, const char *mnt)
{
	f->fuse_conn = conn;
	f->fuse_keeper_pid = 4242;
	for (int i = 0; i < 16; i++)
		f->fuse_keeper_id[i] = (uint8_t)(0xa0 + i);
	f->fuse_mnt = mnt ? strdup(mnt) : NULL;
	f->fuse_fstype = strdup("fuse.testfs testfs");
}

/* The core fields validation insists on (this test only round-trips fds.img). */
static void minimal_core(struct cr_task *t)
{
	strcpy(t->comm, "testfs");
	t->xstate_len = 1;
	t->xstate = calloc(1, 1);
}

/* A task with fds 0 (/dev/null), 3 (/dev/fuse, conn 52), 4 (a dup of 3). */
static struct cr_image *make_image(void)
{
	struct cr_image *img = cr_image_new();
	struct cr_task *t = cr_image_add_task(img, 1234);

	minimal_core(t);
	t->nr_fds = 3;
	t->fds = calloc(3, sizeof(*t->fds));
	set_fd(&t->fds[0], 0, CR_FD_CHR, "/dev/null");
	set_fd(&t->fds[1], 3, CR_FD_FUSE, "/dev/fuse");
	set_fuse(&t->fds[1], 52, "/mnt/with space");
	set_fd(&t->fds[2], 4, CR_FD_FUSE, "/dev/fuse");
	t->fds[2].dup_of = 3;
	set_fuse(&t->fds[2], 52, "/mnt/with space");
	return img;
}

static int decode_fds(const uint8_t *buf, size_t len, struct cr_image **ret)
{
	struct cr_image *img = cr_image_new();
	struct cr_task *t = cr_image_add_task(img, 1234);
	minimal_core(t);
	int r = cr_image_decode(img, t, CR_FILE_FDS, buf, len, "fds.img");
	if (r == 0)
		r = cr_image_validate_task(t, UINT64_MAX);
	if (r < 0 || !ret)
		cr_image_free(img);
	else
		*ret = img;
	return r;
}

static int encode_fds(struct cr_image *img, uint8_t **buf, size_t *len)
{
	return cr_image_encode(img, &img->tasks[0], CR_FILE_FDS, buf, len);
}

static void test_round_trip(void)
{
	struct cr_image *img = make_image(), *back = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	CHECK(encode_fds(img, &buf, &len) == 0);
	CHECK(decode_fds(buf, len, &back) == 0);
	if (back) {
		const struct cr_task *t = &back->tasks[0];
		CHECK(t->nr_fds == 3);
		CHECK(t->fds[0].kind == CR_FD_CHR && t->fds[0].fuse_conn == 0 &&
		      !t->fds[0].fuse_mnt);
		for (int i = 1; i <= 2; i++) {
			const struct cr_fd *f = &t->fds[i];
			CHECK(f->kind == CR_FD_FUSE);
			CHECK(f->fuse_conn == 52);
			CHECK(f->fuse_keeper_pid == 4242);
			CHECK(f->fuse_keeper_id[0] == 0xa0 && f->fuse_keeper_id[15] == 0xaf);
			CHECK(f->fuse_mnt && !strcmp(f->fuse_mnt, "/mnt/with space"));
			CHECK(f->fuse_fstype && !strcmp(f->fuse_fstype, "fuse.testfs testfs"));
			CHECK(f->path && !strcmp(f->path, "/dev/fuse"));
		}
		CHECK(t->fds[2].dup_of == 3);
		CHECK(!strcmp(cr_fd_kind_name(CR_FD_FUSE), "fuse"));
	}
	/* Every truncation is refused. */
	int accepted = 0;
	for (size_t cut = 0; cut < len; cut++)
		if (decode_fds(buf, cut, NULL) == 0)
			accepted++;
	CHECK(accepted == 0);
	free(buf);
	cr_image_free(back);
	cr_image_free(img);
}

/* Encodes img (after damage() changed it) and expects decode+validate to fail. */
static void expect_refused(void (*damage)(struct cr_task *t), const char *what)
{
	struct cr_image *img = make_image();
	uint8_t *buf = NULL;
	size_t len = 0;

	damage(&img->tasks[0]);
	int r = encode_fds(img, &buf, &len);
	if (r == 0)
		r = decode_fds(buf, len, NULL);
	if (r != -EBADMSG) {
		fprintf(stderr, "FAIL: %s: decode gave %d, want -EBADMSG\n", what, r);
		failures++;
	}
	free(buf);
	cr_image_free(img);
}

/* Connection fields on a non-fuse fd: the encoder would drop them silently, so validation (run
 * by dump before writing) must refuse the task in memory. */
static void test_stray_fields(void)
{
	struct cr_image *img = make_image();

	CHECK(cr_image_validate_task(&img->tasks[0], UINT64_MAX) == 0);
	img->tasks[0].fds[0].fuse_conn = 9;
	CHECK(cr_image_validate_task(&img->tasks[0], UINT64_MAX) == -EBADMSG);
	cr_image_free(img);
}

/* Kind 7 with connection 0: the encoder writes the record, the decoder refuses it. */
static void damage_conn0(struct cr_task *t)
{
	t->fds[1].fuse_conn = 0;
}

static void damage_relative(struct cr_task *t)
{
	free(t->fds[1].fuse_mnt);
	t->fds[1].fuse_mnt = strdup("mnt");
}

static void damage_no_mount(struct cr_task *t)
{
	free(t->fds[1].fuse_mnt);
	t->fds[1].fuse_mnt = NULL;
}

/* An FD_FUSE record after a non-fuse fd: relabel fd 3 as a char device after encoding. */
static void test_orphan_record(void)
{
	struct cr_image *img = make_image();
	uint8_t *buf = NULL;
	size_t len = 0;

	CHECK(encode_fds(img, &buf, &len) == 0);
	/* fds.img: 16-byte header, then records; the second record is fd 3's FD: its kind is at
	 * payload offset 4. Find it by scanning for the (fd=3, kind=7) pair. */
	int patched = 0;
	for (size_t off = 16; off + 8 <= len; off += 4)
		if (le32_get(buf + off) == 3 && le32_get(buf + off + 4) == CR_FD_FUSE) {
			le32_put(buf + off + 4, CR_FD_CHR);
			patched = 1;
			break;
		}
	CHECK(patched);
	CHECK(decode_fds(buf, len, NULL) == -EBADMSG);
	free(buf);
	cr_image_free(img);
}

int main(void)
{
	test_round_trip();
	test_stray_fields();
	expect_refused(damage_conn0, "fuse fd with connection 0");
	expect_refused(damage_relative, "relative mount point");
	expect_refused(damage_no_mount, "no mount point");
	test_orphan_record();
	if (failures) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
