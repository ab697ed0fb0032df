// SPDX-License-Identifier: MIT
/*
 * dump_parent.c - the parent image of an incremental dump (`ckptfs dump --parent DIR`): its
 * page digests (task-PID/pages.sums), where its pages sit (pagemap.img) and its pages.img,
 * opened read-only, so that the page writers can copy unchanged pages from it instead of
 * writing them.
 *
 * The parent is untrusted input. Anything wrong with it (incomplete, another format, a
 * digest file that fails its checksums or disagrees with the page map, a pages.img shorter
 * than the digests claim, sampled pages that do not match their digests) makes this dump
 * ignore it and write every page, with the reason for the caller to print. A digest match
 * is taken as page equality (XXH3-128; see docs/cr.md for the trade-off).
 *
 * Thread-safety: built once before the freeze; afterwards read-only, so the writer threads
 * share it without locks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/dump_priv.h"
#include "cr/error.h"

/* Pages read back from the parent to check that its pages.img still matches its digests. */
#define SAMPLE_PAGES 8

struct dump_parent {
	int pagesfd; /* the parent task's pages.img, read-only */
	uint32_t pid;
	uint64_t nr_pages;
	uint8_t *sums; /* the whole pages.sums file */
	const uint8_t *digests;
	struct cr_task task; /* only runs, nr_runs, pages_total are used */
	uint64_t *run_first; /* page index of each run's first page */
	uint64_t *table;     /* open addressing, digest -> page index + 1; 0 is empty */
	uint64_t mask;
};

int dump_runs_index(const struct cr_page_run *runs, uint64_t nr, uint64_t **ret_first)
{
	uint64_t *first = malloc(MAX(nr, 1) * sizeof(*first));
	uint64_t at = 0;

	if (!first)
		return -ENOMEM;
	for (uint64_t i = 0; i < nr; i++) {
		first[i] = at;
		at += runs[i].nr_pages;
	}
	*ret_first = first;
	return 0;
}

uint64_t dump_runs_vaddr(const struct cr_page_run *runs, const uint64_t *first, uint64_t nr,
			 uint64_t idx)
{
	uint64_t lo = 0, hi = nr;

	/* The last run whose first page is <= idx. */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (first[mid] <= idx)
			lo = mid;
		else
			hi = mid;
	}
	if (!nr || idx - first[lo] >= runs[lo].nr_pages)
		return UINT64_MAX;
	return runs[lo].vaddr + (idx - first[lo]) * CR_PAGE_SIZE;
}

/* The parent's page index of the page at vaddr, or UINT64_MAX if it saved no such page. */
static uint64_t parent_page_at(const struct dump_parent *dp, uint64_t vaddr)
{
	const struct cr_page_run *runs = dp->task.runs;
	uint64_t lo = 0, hi = dp->task.nr_runs;

	if (!hi || vaddr < runs[0].vaddr)
		return UINT64_MAX;
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (runs[mid].vaddr <= vaddr)
			lo = mid;
		else
			hi = mid;
	}
	uint64_t k = (vaddr - runs[lo].vaddr) / CR_PAGE_SIZE;
	return k < runs[lo].nr_pages ? dp->run_first[lo] + k : UINT64_MAX;
}

static const uint8_t *digest_of(const struct dump_parent *dp, uint64_t idx)
{
	return dp->digests + idx * CR_SUMS_DIGEST_LEN;
}

uint64_t dump_parent_find(const struct dump_parent *dp, const uint8_t *digest, uint64_t vaddr,
			  uint64_t hint)
{
	uint64_t idx = parent_page_at(dp, vaddr);

	if (idx != UINT64_MAX && !memcmp(digest_of(dp, idx), digest, CR_SUMS_DIGEST_LEN))
		return idx;
	/* The page after the previous match keeps a copy run going (a moved mapping). */
	if (hint < dp->nr_pages && !memcmp(digest_of(dp, hint), digest, CR_SUMS_DIGEST_LEN))
		return hint;
	for (uint64_t slot = le64_get(digest) & dp->mask;; slot = (slot + 1) & dp->mask) {
		uint64_t v = dp->table[slot];
		if (!v)
			return UINT64_MAX;
		if (!memcmp(digest_of(dp, v - 1), digest, CR_SUMS_DIGEST_LEN))
			return v - 1;
	}
}

int dump_parent_pages_fd(const struct dump_parent *dp)
{
	return dp->pagesfd;
}

uint64_t dump_parent_nr_pages(const struct dump_parent *dp)
{
	return dp->nr_pages;
}

uint32_t dump_parent_pid(const struct dump_parent *dp)
{
	return dp->pid;
}

void dump_parent_free(struct dump_parent *dp)
{
	if (!dp)
		return;
	closep(&dp->pagesfd);
	free(dp->sums);
	free(dp->task.runs);
	free(dp->run_first);
	free(dp->table);
	free(dp);
}

/* Reads dirfd/name whole (at most max bytes). -EBADMSG if it is not a regular file or is
 * larger; -errno from open, with the message recorded. */
static int read_whole(int dirfd, const char *dir, const char *name, uint64_t max, uint8_t **ret_buf,
		      size_t *ret_len)
{
	struct stat st;
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		cr_error("'%s/%s': %s", dir, name, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0) {
		cr_error("'%s/%s': %s", dir, name, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		cr_error("'%s/%s': not a regular file of at most %" PRIu64 " bytes", dir, name,
			 max);
		return -EBADMSG;
	}
	_cleanup_free_ uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		return -ENOMEM;
	int ret = pread_full(fd, buf, (size_t)st.st_size, 0);
	if (ret < 0) {
		cr_error("'%s/%s': %s", dir, name,
			 ret == -EBADMSG ? "shorter than its size" : strerror(-ret));
		return ret;
	}
	*ret_buf = TAKE_PTR(buf);
	*ret_len = (size_t)st.st_size;
	return 0;
}

/* Which of the parent's tasks to match against: the same pid, else its root task. */
static int pick_task(int dirfd, const char *dir, pid_t pid, uint32_t *ret_pid)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	struct cr_image *img = cr_image_new();
	int ret;

	if (!img)
		return -ENOMEM;
	ret = read_whole(dirfd, dir, "inventory.img", 1u << 20, &buf, &len);
	if (ret == 0) {
		char label[PATH_MAX];
		snprintf(label, sizeof(label), "%s/inventory.img", dir);
		ret = cr_image_decode(img, NULL, CR_FILE_INVENTORY, buf, len, label);
	}
	if (ret == 0) {
		*ret_pid = img->root_pid;
		for (uint32_t i = 0; i < img->nr_tasks; i++)
			if (img->tasks[i].pid == (uint32_t)pid)
				*ret_pid = (uint32_t)pid;
	}
	cr_image_free(img);
	return ret;
}

static int load_runs(struct dump_parent *dp, int dirfd, const char *dir, const char *name)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int ret = read_whole(dirfd, dir, name, 256u << 20, &buf, &len);

	if (ret < 0)
		return ret;
	char label[PATH_MAX];
	snprintf(label, sizeof(label), "%s/%s", dir, name);
	ret = cr_image_decode(NULL, &dp->task, CR_FILE_PAGEMAP, buf, len, label);
	if (ret < 0)
		return ret;
	/* parent_page_at() relies on ascending, disjoint runs. */
	for (uint64_t i = 0; i < dp->task.nr_runs; i++) {
		const struct cr_page_run *r = &dp->task.runs[i];
		uint64_t bytes, end;
		if (r->vaddr % CR_PAGE_SIZE ||
		    mul_overflows_u64(r->nr_pages, CR_PAGE_SIZE, &bytes) ||
		    add_overflows_u64(r->vaddr, bytes, &end) || end > CR_TASK_SIZE ||
		    (i && r->vaddr < dp->task.runs[i - 1].vaddr +
					     dp->task.runs[i - 1].nr_pages * CR_PAGE_SIZE)) {
			cr_error("'%s/%s': page runs are not ascending and disjoint", dir, name);
			return -EBADMSG;
		}
	}
	return dump_runs_index(dp->task.runs, dp->task.nr_runs, &dp->run_first);
}

/* Reads a few pages back: a pages.img replaced or rewritten since its digests were taken is
 * caught here, at the cost of SAMPLE_PAGES reads (a full check would read the whole parent). */
static int check_samples(const struct dump_parent *dp, const char *dir, const char *name)
{
	_cleanup_free_ uint8_t *page = malloc(CR_PAGE_SIZE);
	uint8_t d[CR_SUMS_DIGEST_LEN];

	if (!page)
		return -ENOMEM;
	for (uint64_t s = 0; s < SAMPLE_PAGES && s < dp->nr_pages; s++) {
		uint64_t idx = dp->nr_pages <= SAMPLE_PAGES
				       ? s
				       : s * (dp->nr_pages - 1) / (SAMPLE_PAGES - 1);
		int ret = pread_full(dp->pagesfd, page, CR_PAGE_SIZE, idx * CR_PAGE_SIZE);
		if (ret < 0) {
			cr_error("'%s/%s': reading page %" PRIu64 ": %s", dir, name, idx,
				 strerror(-ret));
			return ret;
		}
		cr_sums_digest(page, d);
		if (memcmp(d, digest_of(dp, idx), sizeof(d))) {
			cr_error("'%s/%s': page %" PRIu64 " does not match its digest", dir, name,
				 idx);
			return -EBADMSG;
		}
	}
	return 0;
}

static int build_table(struct dump_parent *dp)
{
	uint64_t size = 16;

	while (size < dp->nr_pages * 2)
		size *= 2;
	dp->table = calloc(size, sizeof(*dp->table));
	if (!dp->table)
		return -ENOMEM;
	dp->mask = size - 1;
	for (uint64_t i = 0; i < dp->nr_pages; i++) {
		const uint8_t *d = digest_of(dp, i);
		uint64_t slot = le64_get(d) & dp->mask;
		/* Equal pages keep the first one: any copy of it will do. */
		while (dp->table[slot] &&
		       memcmp(digest_of(dp, dp->table[slot] - 1), d, CR_SUMS_DIGEST_LEN))
			slot = (slot + 1) & dp->mask;
		if (!dp->table[slot])
			dp->table[slot] = i + 1;
	}
	return 0;
}

int dump_parent_open(const char *dir, pid_t pid, struct dump_parent **ret_parent)
{
	char name[64], label[PATH_MAX];
	struct stat st;
	size_t len;
	int ret;
	struct dump_parent *dp = calloc(1, sizeof(*dp));

	*ret_parent = NULL;
	if (!dp)
		return -ENOMEM;
	dp->pagesfd = -1;
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		ret = -errno;
		cr_error("cannot open parent image '%s': %s", dir, strerror(errno));
		goto out_free;
	}
	ret = pick_task(dirfd, dir, pid, &dp->pid);
	if (ret < 0)
		goto out_free;
	snprintf(name, sizeof(name), "task-%u/pagemap.img", dp->pid);
	ret = load_runs(dp, dirfd, dir, name);
	if (ret < 0)
		goto out_free;
	snprintf(name, sizeof(name), "task-%u/pages.sums", dp->pid);
	/* Its exact size is known from the page map: nothing larger is read. */
	ret = read_whole(dirfd, dir, name,
			 CR_SUMS_HDR_LEN + dp->task.pages_total * CR_SUMS_DIGEST_LEN, &dp->sums,
			 &len);
	if (ret < 0)
		goto out_free;
	snprintf(label, sizeof(label), "%s/%s", dir, name);
	ret = cr_sums_decode(dp->sums, len, label, &dp->nr_pages, &dp->digests);
	if (ret < 0)
		goto out_free;
	if (dp->nr_pages != dp->task.pages_total) {
		cr_error("'%s/%s': %" PRIu64 " digests for %" PRIu64 " pages in its page map", dir,
			 name, dp->nr_pages, dp->task.pages_total);
		ret = -EBADMSG;
		goto out_free;
	}
	snprintf(name, sizeof(name), "task-%u/pages.img", dp->pid);
	dp->pagesfd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (dp->pagesfd < 0 || fstat(dp->pagesfd, &st) < 0) {
		ret = -errno;
		cr_error("'%s/%s': %s", dir, name, strerror(errno));
		goto out_free;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size / CR_PAGE_SIZE < dp->nr_pages) {
		cr_error("'%s/%s': %" PRIu64 " bytes, shorter than its %" PRIu64 " pages", dir,
			 name, (uint64_t)st.st_size, dp->nr_pages);
		ret = -EBADMSG;
		goto out_free;
	}
	ret = check_samples(dp, dir, name);
	if (ret < 0)
		goto out_free;
	ret = build_table(dp);
	if (ret < 0)
		goto out_free;
	*ret_parent = dp;
	return 0;

out_free:
	dump_parent_free(dp);
	return ret;
}

struct sibling {
	char *name;
	struct timespec mtime;
};

static int cmp_sibling_newest(const void *a, const void *b)
{
	const struct sibling *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* Does the image dirfd/name hold task pid with a page digest file? Untrusted like any parent:
 * a sibling that cannot be read or decoded is simply not a candidate. */
static bool sibling_has_task(int dirfd, const char *name, pid_t pid)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char sums[64];
	uint32_t task = 0;
	struct stat st;

	if (fd < 0 || pick_task(fd, name, pid, &task) < 0) {
		cr_error_clear();
		return false;
	}
	snprintf(sums, sizeof(sums), "task-%d/pages.sums", pid);
	return task == (uint32_t)pid && fstatat(fd, sums, &st, 0) == 0 && S_ISREG(st.st_mode);
}

int dump_parent_auto(const char *new_dir, pid_t pid, char **ret_dir)
{
	_cleanup_free_ char *copy = strdup(new_dir), *copy2 = strdup(new_dir);
	struct sibling *sib = NULL;
	size_t n = 0, cap = 0;
	DIR *d = NULL;
	int ret = -ENOENT;

	*ret_dir = NULL;
	if (!copy || !copy2)
		return -ENOMEM;
	const char *up = dirname(copy), *self = basename(copy2);
	d = opendir(up);
	if (!d) {
		ret = -errno;
		cr_error("--auto-parent: cannot list '%s': %s", up, strerror(errno));
		return ret;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		char inv[NAME_MAX + 32];
		struct stat st;

		if (e->d_name[0] == '.' || !strcmp(e->d_name, self))
			continue;
		snprintf(inv, sizeof(inv), "%s/inventory.img", e->d_name);
		if (fstatat(dirfd(d), inv, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct sibling *nsib = realloc(sib, ncap * sizeof(*sib));
			if (!nsib) {
				ret = -ENOMEM;
				goto out;
			}
			sib = nsib;
			cap = ncap;
		}
		sib[n].name = strdup(e->d_name);
		if (!sib[n].name) {
			ret = -ENOMEM;
			goto out;
		}
		sib[n++].mtime = st.st_mtim;
	}
	if (n) /* qsort wants a valid base even for none */
		qsort(sib, n, sizeof(*sib), cmp_sibling_newest);
	for (size_t i = 0; i < n; i++) {
		if (!sibling_has_task(dirfd(d), sib[i].name, pid))
			continue;
		size_t len = strlen(up) + 1 + strlen(sib[i].name) + 1;
		*ret_dir = malloc(len);
		if (!*ret_dir) {
			ret = -ENOMEM;
			goto out;
		}
		snprintf(*ret_dir, len, "%s/%s", up, sib[i].name);
		ret = 0;
		goto out;
	}
	cr_error("no earlier image of pid %d with page digests next to '%s' (%zu images looked at)",
		 pid, new_dir, n);
out:
	for (size_t i = 0; i < n; i++)
		free(sib[i].name);
	free(sib);
	closedir(d);
	return ret;
}
