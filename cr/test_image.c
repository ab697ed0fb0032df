// SPDX-License-Identifier: MIT
/*
 * test_image.c - unit test of the image encoder/decoder: a full round trip through memory and
 * through a directory, every truncation and single-byte corruption of each file, version
 * mismatch, and the cross-record validation rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/error.h"
#include "cr/image.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static void fill_task(struct cr_task *t)
{
	t->ppid = 1;
	t->pgid = t->sid = t->pid;
	t->personality = 0;
	t->umask = 027;
	strcpy(t->comm, "worker");
	for (int i = 0; i < CR_NREGS; i++)
		t->regs[i] = 0x1000u * (uint64_t)i + 7;
	t->xstate_len = 2432;
	t->xstate = malloc(t->xstate_len);
	for (uint32_t i = 0; i < t->xstate_len; i++)
		t->xstate[i] = (uint8_t)(i * 13);
	t->sigmask = 0x4800;
	t->sigactions[9].handler = 0x401000;
	t->sigactions[9].flags = 0x14000000;
	t->sigactions[0].handler = 1;
	t->altstack_flags = 2;
	t->rseq_addr = 0x7f0000000920;
	t->rseq_len = 32;
	t->rseq_sig = 0x53053053;
	t->robust_head = 0x7f0000000a00;
	t->robust_len = 24;
	t->itimers[0][1] = 200000;
	t->itimers[0][3] = 150000;
	for (int i = 0; i < CR_NRLIMITS; i++) {
		t->rlimits[i][0] = (uint64_t)i;
		t->rlimits[i][1] = ~0ULL;
	}
	t->uids[0] = t->uids[1] = 1000;
	t->gids[2] = 100;
	t->nr_groups = 2;
	t->groups = calloc(2, sizeof(uint32_t));
	t->groups[0] = 27;
	t->groups[1] = 100;
	t->nice = -3;
	t->no_new_privs = 1;
	t->timer_slack_ns = 50000;
	t->has_caps = 1;
	t->cap_inh = 0x400;
	t->cap_prm = 0x1521;
	t->cap_eff = 0x420;
	t->cap_bnd = 0x1ffd6bfdfffULL;
	t->cap_amb = 0x400;
	t->securebits = 0x13;
	t->dumpable = 2;
	t->pdeathsig = 28;
	t->child_subreaper = 1;
	t->thp_disable = 3;
	t->cwd = strdup("/tmp/work dir");
	t->root = strdup("/");
	t->exe = strdup("/usr/bin/python3");
	t->nr_siginfos = 1;
	t->siginfos = calloc(1, sizeof(*t->siginfos));
	le32_put(t->siginfos[0].info, 12);
	t->siginfos[0].shared = 1;

	t->mm = (struct cr_mm){0x400000,       0x401000,       0x600000,       0x601000,
			       0x602000,       0x623000,       0x7ffc0000f000, 0x7ffc0000f100,
			       0x7ffc0000f200, 0x7ffc0000f200, 0x7ffc0000f300};
	t->auxv_len = 32;
	t->auxv = calloc(1, 32);
	t->auxv[0] = 6;

	t->nr_vmas = 4;
	t->vmas = calloc(4, sizeof(*t->vmas));
	t->vmas[0] = (struct cr_vma){.start = 0x400000,
				     .end = 0x402000,
				     .prot = 5,
				     .kind = CR_VMA_FILE,
				     .dev = 0xfe00,
				     .ino = 42,
				     .size = 8192,
				     .mtime_ns = 123456789,
				     .path = strdup("/usr/bin/python3")};
	t->vmas[0].madv = CR_VMA_MADV_DONTFORK | CR_VMA_MADV_HUGEPAGE;
	t->vmas[1] = (struct cr_vma){.start = 0x602000,
				     .end = 0x623000,
				     .prot = 3,
				     .kind = CR_VMA_ANON,
				     .madv = CR_VMA_MADV_WIPEONFORK | CR_VMA_MADV_DONTDUMP |
					     CR_VMA_MADV_LOCKED | CR_VMA_MADV_LOCKONFAULT};
	t->vmas[2] = (struct cr_vma){.start = 0x7ffc00000000,
				     .end = 0x7ffc00010000,
				     .prot = 3,
				     .flags = CR_VMA_F_GROWSDOWN,
				     .kind = CR_VMA_ANON};
	t->vmas[3] = (struct cr_vma){.start = 0x7ffc00100000,
				     .end = 0x7ffc00102000,
				     .prot = 5,
				     .kind = CR_VMA_VDSO,
				     .content_hash = 99};
	t->nr_runs = 2;
	t->runs = calloc(2, sizeof(*t->runs));
	t->runs[0] = (struct cr_page_run){0x603000, 3};
	t->runs[1] = (struct cr_page_run){0x7ffc0000e000, 2};
	t->pages_total = 5;

	t->nr_fds = 4;
	t->fds = calloc(4, sizeof(*t->fds));
	t->fds[0] = (struct cr_fd){
		.fd = 0, .kind = CR_FD_CHR, .dup_of = -1, .path = strdup("/dev/null")};
	t->fds[1] = (struct cr_fd){.fd = 1,
				   .kind = CR_FD_PIPE,
				   .flags = 1,
				   .dup_of = -1,
				   .pipe_id = 77,
				   .pipe_size = 65536,
				   .data_len = 10,
				   .data = strdup("pipe-77.data")};
	t->fds[2] = (struct cr_fd){.fd = 2,
				   .kind = CR_FD_PIPE,
				   .flags = 1,
				   .dup_of = 1,
				   .pipe_id = 77,
				   .pipe_size = 65536};
	t->fds[3] = (struct cr_fd){.fd = 5,
				   .kind = CR_FD_MEMFD,
				   .flags = 2,
				   .dup_of = -1,
				   .pos = 100,
				   .data_len = 8192,
				   .path = strdup("/memfd:buf"),
				   .data = strdup("memfd-1-5.data"),
				   .memfd_dev = 12,
				   .memfd_ino = 3456,
				   .memfd_has_seals = true,
				   .memfd_seals = 0xa};
}

static const enum cr_file_kind kinds[] = {CR_FILE_CORE, CR_FILE_MM, CR_FILE_PAGEMAP, CR_FILE_FDS};

static int decode_one(enum cr_file_kind k, const uint8_t *buf, size_t len)
{
	struct cr_image *img = cr_image_new();
	struct cr_task *t = cr_image_add_task(img, 1);
	int ret = cr_image_decode(img, k == CR_FILE_INVENTORY ? NULL : t, k, buf, len, "test");
	cr_image_free(img);
	return ret;
}

static void test_round_trip(const struct cr_image *src)
{
	const struct cr_task *a = &src->tasks[0];
	struct cr_image *dst = cr_image_new();
	struct cr_task *b = cr_image_add_task(dst, 0);

	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		uint8_t *buf;
		size_t len;
		CHECK(cr_image_encode(src, a, kinds[i], &buf, &len) == 0);
		CHECK(len % 8 == 0);
		CHECK(cr_image_decode(dst, b, kinds[i], buf, len, "rt") == 0);
		free(buf);
	}
	CHECK(b->pid == a->pid && b->umask == a->umask && !strcmp(b->comm, a->comm));
	CHECK(!memcmp(b->regs, a->regs, sizeof(a->regs)));
	CHECK(b->xstate_len == a->xstate_len && !memcmp(b->xstate, a->xstate, a->xstate_len));
	CHECK(!memcmp(b->sigactions, a->sigactions, sizeof(a->sigactions)));
	CHECK(b->sigmask == a->sigmask && b->rseq_addr == a->rseq_addr &&
	      b->rseq_sig == a->rseq_sig && b->robust_head == a->robust_head);
	CHECK(!memcmp(b->itimers, a->itimers, sizeof(a->itimers)));
	CHECK(!memcmp(b->rlimits, a->rlimits, sizeof(a->rlimits)));
	CHECK(b->nr_groups == 2 && b->groups[1] == 100 && b->uids[1] == 1000 && b->gids[2] == 100);
	CHECK(!strcmp(b->cwd, a->cwd) && !strcmp(b->exe, a->exe) && !strcmp(b->root, "/"));
	CHECK(b->nice == -3 && b->no_new_privs == 1 && b->timer_slack_ns == 50000);
	CHECK(b->has_caps == 1 && b->cap_inh == a->cap_inh && b->cap_prm == a->cap_prm &&
	      b->cap_eff == a->cap_eff && b->cap_bnd == a->cap_bnd && b->cap_amb == a->cap_amb);
	CHECK(b->securebits == 0x13 && b->dumpable == 2 && b->pdeathsig == 28 &&
	      b->child_subreaper == 1 && b->thp_disable == 3);
	CHECK(b->nr_siginfos == 1 && b->siginfos[0].shared == 1 &&
	      le32_get(b->siginfos[0].info) == 12);
	CHECK(!memcmp(&b->mm, &a->mm, sizeof(a->mm)));
	CHECK(b->auxv_len == 32 && b->auxv[0] == 6);
	CHECK(b->nr_vmas == 4 && b->vmas[0].ino == 42 && b->vmas[0].mtime_ns == 123456789 &&
	      !strcmp(b->vmas[0].path, "/usr/bin/python3") && b->vmas[1].path == NULL &&
	      b->vmas[2].flags == CR_VMA_F_GROWSDOWN && b->vmas[3].content_hash == 99);
	CHECK(b->vmas[0].madv == (CR_VMA_MADV_DONTFORK | CR_VMA_MADV_HUGEPAGE) &&
	      b->vmas[1].madv == a->vmas[1].madv && b->vmas[2].madv == 0 && b->vmas[3].madv == 0);
	CHECK(b->nr_runs == 2 && b->pages_total == 5 && b->runs[1].vaddr == 0x7ffc0000e000);
	CHECK(b->nr_fds == 4 && b->fds[1].pipe_id == 77 && b->fds[1].data_len == 10 &&
	      !strcmp(b->fds[1].data, "pipe-77.data") && b->fds[2].dup_of == 1 &&
	      b->fds[2].data == NULL && !strcmp(b->fds[0].path, "/dev/null"));
	CHECK(b->fds[3].kind == CR_FD_MEMFD && b->fds[3].memfd_dev == 12 &&
	      b->fds[3].memfd_ino == 3456 && b->fds[3].pos == 100 &&
	      !strcmp(b->fds[3].path, "/memfd:buf"));
	CHECK(b->fds[3].memfd_has_seals && b->fds[3].memfd_seals == 0xa &&
	      !b->fds[0].memfd_has_seals);
	CHECK(cr_image_validate_task(b, 5 * CR_PAGE_SIZE) == 0);
	CHECK(cr_image_validate_task(b, 4 * CR_PAGE_SIZE) == -EBADMSG);
	cr_image_free(dst);
}

/* Every strict prefix fails (the end record catches cuts at record boundaries); every header
 * byte flip fails. */
static void test_damage(const struct cr_image *src)
{
	const struct cr_task *a = &src->tasks[0];

	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		uint8_t *buf;
		size_t len;
		CHECK(cr_image_encode(src, a, kinds[i], &buf, &len) == 0);
		for (size_t cut = 0; cut < len; cut++) {
			int ret = decode_one(kinds[i], buf, cut);
			if (ret != -EBADMSG) {
				fprintf(stderr, "kind %d cut %zu -> %d\n", kinds[i], cut, ret);
				CHECK(0);
			}
		}
		for (size_t pos = 0; pos < 16; pos++) {
			buf[pos] ^= 0x40;
			int ret = decode_one(kinds[i], buf, len);
			CHECK(ret == -EBADMSG || (pos >= 8 && pos < 12 && ret == -EOPNOTSUPP));
			buf[pos] ^= 0x40;
		}
		/* Unknown version: -EOPNOTSUPP. */
		le32_put(buf + 8, CR_IMG_VERSION + 1);
		CHECK(decode_one(kinds[i], buf, len) == -EOPNOTSUPP);
		le32_put(buf + 8, CR_IMG_VERSION);
		/* A record length pointing past the end. */
		le32_put(buf + 20, 0xfffffff0u);
		CHECK(decode_one(kinds[i], buf, len) == -EBADMSG);
		/* Any flipped byte anywhere: never a crash (ASan/UBSan watch this). */
		for (size_t pos = 16; pos < len; pos += 3) {
			buf[pos] ^= 0xff;
			(void)decode_one(kinds[i], buf, len);
			buf[pos] ^= 0xff;
		}
		free(buf);
	}
}

static void test_validation(struct cr_image *img)
{
	struct cr_task *t = &img->tasks[0];

	CHECK(cr_image_validate_task(t, UINT64_MAX) == 0);
	t->vmas[1].start = 0x401000; /* overlaps vmas[0] */
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->vmas[1].start = 0x602000;
	t->runs[0].vaddr = 0x500000; /* outside every VMA */
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->runs[0].vaddr = 0x7ffc00100000; /* inside the vDSO */
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->runs[0].vaddr = 0x603000;
	t->fds[2].fd = 1; /* duplicate fd number */
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->fds[2].fd = 2;
	t->fds[1].data[0] = '.'; /* data names must stay inside files/ */
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->fds[1].data[0] = 'p';
	t->fds[2].dup_of = 5;
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->fds[2].dup_of = 1;
	t->fds[3].memfd_ino = 0; /* a memfd fd needs its identity */
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->fds[3].memfd_ino = 3456;
	t->fds[3].path[1] = 'x'; /* and a memfd name */
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->fds[3].path[1] = 'm';
	t->fds[3].kind = CR_FD_UNLINKED; /* identity on another kind */
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	t->fds[3].kind = CR_FD_MEMFD;
	le32_put(t->siginfos[0].info, 65);
	CHECK(cr_image_validate_task(t, UINT64_MAX) == -EBADMSG);
	le32_put(t->siginfos[0].info, 12);
	CHECK(cr_image_validate_task(t, UINT64_MAX) == 0);
}

static int encode_mm_with(struct cr_image *img, uint32_t vma, uint32_t madv, uint8_t **ret_buf,
			  size_t *ret_len)
{
	struct cr_task *t = &img->tasks[0];
	uint32_t old = t->vmas[vma].madv;

	t->vmas[vma].madv = madv;
	int ret = cr_image_encode(img, t, CR_FILE_MM, ret_buf, ret_len);
	t->vmas[vma].madv = old;
	return ret;
}

/* Offset of the first record of type type in an encoded file, or 0. */
static size_t find_record(const uint8_t *buf, size_t len, uint32_t type)
{
	for (size_t off = 16; off + 8 <= len;) {
		uint32_t rlen = le32_get(buf + off + 4);
		if (le32_get(buf + off) == type)
			return off;
		off += 8 + ((rlen + 7u) & ~7u);
	}
	return 0;
}

/* Whether an mm.img is refused because of its madvise record (the message says so). */
static bool refused_for_madv(const uint8_t *buf, size_t len)
{
	cr_error_clear();
	return decode_one(CR_FILE_MM, buf, len) == -EBADMSG && strstr(cr_error_last(), "madvise");
}

/* The VMA_MADV record: written only for flagged VMAs, strict about bits, combinations, the
 * VMA it follows and repeats. */
static void test_madv(struct cr_image *img)
{
	struct cr_task *t = &img->tasks[0];
	uint8_t *buf, *plain;
	size_t len, plain_len;

	/* Unflagged VMAs cost nothing: 16 bytes (header + 8-byte payload) per flagged VMA. */
	CHECK(encode_mm_with(img, 2, 0, &buf, &len) == 0);
	CHECK(encode_mm_with(img, 0, 0, &plain, &plain_len) == 0);
	CHECK(len == plain_len + 16);
	CHECK(decode_one(CR_FILE_MM, plain, plain_len) == 0);
	free(plain);
	/* A copy of the record right after it (END's record count fixed up): a repeat. */
	size_t at = find_record(buf, len, 6);
	CHECK(at != 0);
	if (at) {
		uint8_t *dup = malloc(len + 16);
		memcpy(dup, buf, at + 16);
		memcpy(dup + at + 16, buf + at, len - at);
		le32_put(dup + len + 16 - 8, le32_get(dup + len + 16 - 8) + 1);
		CHECK(refused_for_madv(dup, len + 16));
		/* The same bytes with the copy's padding word set. */
		memcpy(dup, buf, len);
		le32_put(dup + at + 12, 1);
		CHECK(refused_for_madv(dup, len));
		/* Moved before the first VMA record: it follows no mapping. */
		size_t first_vma = find_record(buf, len, 4);
		memcpy(dup, buf, first_vma);
		memcpy(dup + first_vma, buf + at, 16);
		memcpy(dup + first_vma + 16, buf + first_vma, at - first_vma);
		memcpy(dup + at + 16, buf + at + 16, len - at - 16);
		CHECK(refused_for_madv(dup, len));
		free(dup);
	}
	free(buf);

	static const struct {
		uint32_t vma, madv;
	} bad[] = {
		{1, 0x100},					    /* unknown bit */
		{1, CR_VMA_MADV_LOCKONFAULT},			    /* on fault, not locked */
		{1, CR_VMA_MADV_HUGEPAGE | CR_VMA_MADV_NOHUGEPAGE}, /* both huge page advices */
		{0, CR_VMA_MADV_WIPEONFORK},			    /* a file mapping */
		{3, CR_VMA_MADV_DONTDUMP},			    /* [vdso] */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK(encode_mm_with(img, bad[i].vma, bad[i].madv, &buf, &len) == 0);
		if (!refused_for_madv(buf, len)) {
			fprintf(stderr, "madv %#x on vma %u accepted\n", bad[i].madv, bad[i].vma);
			CHECK(0);
		}
		free(buf);
	}
	/* Shared anonymous memory cannot be WIPEONFORK either. */
	t->vmas[1].flags = CR_VMA_F_SHARED;
	CHECK(cr_image_encode(img, t, CR_FILE_MM, &buf, &len) == 0);
	CHECK(refused_for_madv(buf, len));
	free(buf);
	t->vmas[1].flags = 0;
	CHECK(cr_image_encode(img, t, CR_FILE_MM, &buf, &len) == 0);
	CHECK(decode_one(CR_FILE_MM, buf, len) == 0);
	free(buf);
}

static void test_directory(const struct cr_image *img)
{
	char dir[] = "/tmp/ckptfs-test-image-XXXXXX";
	char path[256];
	struct cr_image *back = NULL;

	CHECK(mkdtemp(dir) != NULL);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof(path), "task-%u", img->tasks[0].pid);
	CHECK(mkdirat(dfd, path, 0755) == 0);
	uint64_t bytes = 0;
	CHECK(cr_image_write_task(dfd, img, &img->tasks[0], &bytes) == 0);
	CHECK(bytes > 0);
	snprintf(path, sizeof(path), "%s/task-%u/pages.img", dir, img->tasks[0].pid);
	int pfd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(pfd >= 0 && ftruncate(pfd, 5 * CR_PAGE_SIZE) == 0);

	/* No inventory yet: an incomplete image. */
	CHECK(cr_image_load(dir, &back) == -ENOENT);
	CHECK(cr_image_write_inventory(dfd, img, NULL) == 0);
	CHECK(cr_image_load(dir, &back) == 0);
	CHECK(back && back->nr_tasks == 1 && back->tasks[0].pid == img->tasks[0].pid &&
	      back->tasks[0].pages_total == 5);
	cr_image_free(back);
	back = NULL;

	/* pages.img shorter than the page runs: refused. */
	CHECK(ftruncate(pfd, 4 * CR_PAGE_SIZE) == 0);
	CHECK(cr_image_load(dir, &back) == -EBADMSG);
	CHECK(ftruncate(pfd, 5 * CR_PAGE_SIZE) == 0);
	close(pfd);

	/* A truncated core.img: refused. */
	snprintf(path, sizeof(path), "%s/task-%u/core.img", dir, img->tasks[0].pid);
	CHECK(truncate(path, 100) == 0);
	CHECK(cr_image_load(dir, &back) == -EBADMSG);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	close(dfd);
}

/* The optional PARENT inventory record round-trips; every prefix and header flip of
 * pages.sums is refused, and a good one decodes to its digests. */
static void test_parent_and_sums(struct cr_image *img)
{
	struct cr_image *dst = cr_image_new();
	uint8_t *buf;
	size_t len;

	img->parent = strdup("/mnt/ckpt/job-1");
	CHECK(cr_image_encode(img, NULL, CR_FILE_INVENTORY, &buf, &len) == 0);
	CHECK(cr_image_decode(dst, NULL, CR_FILE_INVENTORY, buf, len, "inv") == 0);
	CHECK(dst->parent && !strcmp(dst->parent, "/mnt/ckpt/job-1") && dst->root_pid == 4242);
	free(buf);
	cr_image_free(dst);
	free(img->parent);
	img->parent = NULL;

	enum { NR = 3 };
	uint8_t file[CR_SUMS_HDR_LEN + NR * CR_SUMS_DIGEST_LEN], page[4096];
	const uint8_t *digests;
	uint64_t nr;
	for (int i = 0; i < NR; i++) {
		memset(page, 'a' + i, sizeof(page));
		cr_sums_digest(page, file + CR_SUMS_HDR_LEN + i * CR_SUMS_DIGEST_LEN);
	}
	CHECK(memcmp(file + CR_SUMS_HDR_LEN, file + CR_SUMS_HDR_LEN + CR_SUMS_DIGEST_LEN,
		     CR_SUMS_DIGEST_LEN) != 0);
	cr_sums_encode_header(file, file + CR_SUMS_HDR_LEN, NR);
	CHECK(cr_sums_decode(file, sizeof(file), "sums", &nr, &digests) == 0);
	CHECK(nr == NR && digests == file + CR_SUMS_HDR_LEN);
	for (size_t cut = 0; cut < sizeof(file); cut++)
		CHECK(cr_sums_decode(file, cut, "sums", &nr, &digests) == -EBADMSG);
	for (size_t i = 0; i < sizeof(file); i++) {
		file[i] ^= 0x40;
		CHECK(cr_sums_decode(file, sizeof(file), "sums", &nr, &digests) < 0);
		file[i] ^= 0x40;
	}
	/* A newer version with a valid header checksum is "unsupported", not damage. */
	le32_put(file + 8, CR_SUMS_VERSION + 1);
	le64_put(file + 40, XXH3_64bits(file, 40));
	CHECK(cr_sums_decode(file, sizeof(file), "sums", &nr, &digests) == -EOPNOTSUPP);
}

int main(void)
{
	struct cr_image *img = cr_image_new();
	struct cr_task *t = cr_image_add_task(img, 4242);

	img->root_pid = 4242;
	fill_task(t);
	test_round_trip(img);
	test_damage(img);
	test_validation(img);
	test_madv(img);
	test_directory(img);
	test_parent_and_sums(img);
	cr_image_free(img);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("PASS test_image\n");
	return 0;
}
