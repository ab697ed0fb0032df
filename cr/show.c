// SPDX-License-Identifier: MIT
/* show.c - human and JSON summaries of a checkpoint image (parsed and validated first). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/cr.h"
#include "cr/creds_priv.h"
#include "cr/error.h"
#include "cr/fuse_priv.h"
#include "cr/image.h"

static const char *const seal_names[] = {"seal", "shrink", "grow", "write", "future_write", "exec"};

/* F_SEAL_* bits as "shrink,grow" ("none" for 0), or as a JSON array of names. */
static void print_seals(FILE *out, uint32_t seals, bool json)
{
	bool first = true;

	fputs(json ? "[" : "", out);
	for (unsigned int b = 0; b < sizeof(seal_names) / sizeof(seal_names[0]); b++) {
		if (!(seals & (1u << b)))
			continue;
		fprintf(out, json ? "%s\"%s\"" : "%s%s", first ? "" : ",", seal_names[b]);
		first = false;
	}
	fputs(json ? "]" : first ? "none" : "", out);
}

/* CR_VMA_MADV_* bits as "dontfork,dontdump", or as a JSON array of names. */
static void print_madv(FILE *out, uint32_t madv, bool json)
{
	bool first = true;

	fputs(json ? "[" : "", out);
	for (unsigned int b = 0; b < 32; b++) {
		if (!(madv & (1u << b)))
			continue;
		fprintf(out, json ? "%s\"%s\"" : "%s%s", first ? "" : ",", cr_vma_madv_name(b));
		first = false;
	}
	fputs(json ? "]" : "", out);
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static const char *prot_str(uint32_t prot, uint32_t flags, char buf[5])
{
	buf[0] = prot & 1 ? 'r' : '-';
	buf[1] = prot & 2 ? 'w' : '-';
	buf[2] = prot & 4 ? 'x' : '-';
	buf[3] = flags & CR_VMA_F_SHARED ? 's' : 'p';
	buf[4] = 0;
	return buf;
}

static uint64_t vma_saved_pages(const struct cr_task *t, const struct cr_vma *v)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < t->nr_runs; i++)
		if (t->runs[i].vaddr >= v->start && t->runs[i].vaddr < v->end)
			n += t->runs[i].nr_pages;
	return n;
}

/* What a task's optional pages.sums says: ok, absent, or why it is unusable. */
enum sums_state { SUMS_OK, SUMS_ABSENT, SUMS_BAD };

static enum sums_state task_sums(const char *dir, uint32_t pid, uint64_t pages, char *why,
				 size_t why_len)
{
	char path[PATH_MAX];
	struct stat st;
	uint64_t nr;
	const uint8_t *digests;

	snprintf(path, sizeof(path), "%s/task-%u/pages.sums", dir, pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return SUMS_ABSENT;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, why_len, "%s", strerror(errno));
		return SUMS_BAD;
	}
	/* At most the digests of every page the image claims, plus the header. */
	if (!S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != CR_SUMS_HDR_LEN + pages * CR_SUMS_DIGEST_LEN) {
		snprintf(why, why_len, "%lld bytes, expected %" PRIu64 " for %" PRIu64 " pages",
			 (long long)st.st_size, CR_SUMS_HDR_LEN + pages * CR_SUMS_DIGEST_LEN,
			 pages);
		return SUMS_BAD;
	}
	_cleanup_free_ uint8_t *buf = malloc((size_t)st.st_size);
	if (!buf) {
		snprintf(why, why_len, "%s", strerror(ENOMEM));
		return SUMS_BAD;
	}
	int ret = pread_full(fd, buf, (size_t)st.st_size, 0);
	if (ret == 0)
		ret = cr_sums_decode(buf, (size_t)st.st_size, path, &nr, &digests);
	if (ret < 0) {
		snprintf(why, why_len, "%s",
			 ret == -EBADMSG || ret == -EOPNOTSUPP ? cr_error_last() : strerror(-ret));
		cr_error_clear();
		return SUMS_BAD;
	}
	return SUMS_OK;
}

/* "cap_net_admin" as capabilities(7) spells it (restore's table, lower case); "cap_N" for
 * numbers this build does not name. */
static void cap_name(unsigned int c, char *buf, size_t len)
{
	if (c < cr_cap_named()) {
		char nb[32];
		const char *n = cr_cap_name(c, nb, sizeof(nb));
		size_t i;

		for (i = 0; n[i] && i + 1 < len; i++)
			buf[i] = (char)tolower((unsigned char)n[i]);
		buf[i] = '\0';
	} else {
		snprintf(buf, len, "cap_%u", c);
	}
}

#define CAP_NAMED     cr_cap_named()
#define CAP_NAMED_ALL ((1ULL << CAP_NAMED) - 1)

static void print_cap_list(FILE *out, uint64_t set, bool first)
{
	char name[32];

	for (unsigned int c = 0; c < 64; c++) {
		if (!(set & (1ULL << c)))
			continue;
		cap_name(c, name, sizeof(name));
		fprintf(out, "%s%s", first ? "" : ",", name);
		first = false;
	}
}

/* "0x420 (cap_kill,cap_net_bind_service)"; a set holding most named capabilities is shown
 * by the named ones it lacks, so a bounding set stays one short line. */
static void print_cap_set(FILE *out, const char *label, uint64_t set)
{
	uint64_t named = set & CAP_NAMED_ALL;

	fprintf(out, "    %-11s %#018" PRIx64 " (", label, set);
	if (!set) {
		fputs("none", out);
	} else if ((unsigned int)__builtin_popcountll(named) > CAP_NAMED / 2) {
		fputs(named == CAP_NAMED_ALL ? "all" : "all but ", out);
		print_cap_list(out, CAP_NAMED_ALL & ~set, true);
		/* Capabilities newer than this build's table. */
		if (set & ~CAP_NAMED_ALL) {
			fputs(" plus ", out);
			print_cap_list(out, set & ~CAP_NAMED_ALL, true);
		}
	} else {
		print_cap_list(out, set, true);
	}
	fputs(")\n", out);
}

static void show_caps_human(const struct cr_task *t, FILE *out)
{
	if (!t->has_caps) {
		fprintf(out, "  capabilities: not recorded (older image), no_new_privs %u\n",
			t->no_new_privs);
		return;
	}
	fprintf(out, "  capabilities: securebits %#x, no_new_privs %u, dumpable %u\n",
		t->securebits, t->no_new_privs, t->dumpable);
	print_cap_set(out, "inheritable", t->cap_inh);
	print_cap_set(out, "permitted", t->cap_prm);
	print_cap_set(out, "effective", t->cap_eff);
	print_cap_set(out, "bounding", t->cap_bnd);
	print_cap_set(out, "ambient", t->cap_amb);
}

static void json_cap_set(FILE *out, const char *key, uint64_t set)
{
	char name[32];
	bool first = true;

	fprintf(out, ",\"%s\":%" PRIu64 ",\"%s_names\":[", key, set, key);
	for (unsigned int c = 0; c < 64; c++) {
		if (!(set & (1ULL << c)))
			continue;
		cap_name(c, name, sizeof(name));
		fprintf(out, "%s\"%s\"", first ? "" : ",", name);
		first = false;
	}
	fputc(']', out);
}

/* "caps": null when the image has no CAPS record. */
static void show_caps_json(const struct cr_task *t, FILE *out)
{
	fprintf(out, ",\"no_new_privs\":%u,\"caps\":", t->no_new_privs);
	if (!t->has_caps) {
		fputs("null", out);
		return;
	}
	fprintf(out, "{\"securebits\":%u,\"dumpable\":%u", t->securebits, t->dumpable);
	json_cap_set(out, "inheritable", t->cap_inh);
	json_cap_set(out, "permitted", t->cap_prm);
	json_cap_set(out, "effective", t->cap_eff);
	json_cap_set(out, "bounding", t->cap_bnd);
	json_cap_set(out, "ambient", t->cap_amb);
	fputc('}', out);
}

static void show_human(const struct cr_image *img, const char *dir, FILE *out)
{
	fprintf(out, "image format version %u, %u task(s), root pid %u\n", img->version,
		img->nr_tasks, img->root_pid);
	if (img->parent)
		fprintf(out, "dumped against parent %s (restore does not need it)\n", img->parent);
	for (uint32_t k = 0; k < img->nr_tasks; k++) {
		const struct cr_task *t = &img->tasks[k];
		char pb[5];
		fprintf(out, "\ntask %u (%s): ppid %u pgid %u sid %u uid %u gid %u umask %03o\n",
			t->pid, t->comm, t->ppid, t->pgid, t->sid, t->uids[0], t->gids[0],
			t->umask);
		show_caps_human(t, out);
		fprintf(out, "  exe  %s\n  cwd  %s\n  root %s\n", t->exe ? t->exe : "(none)",
			t->cwd ? t->cwd : "?", t->root ? t->root : "/");
		fprintf(out,
			"  rip %#" PRIx64 " rsp %#" PRIx64 " syscall %" PRId64
			"  xstate %u bytes\n",
			t->regs[16], t->regs[19], (int64_t)t->regs[15], t->xstate_len);
		fprintf(out, "  blocked signals %#" PRIx64 ", %u pending, rseq %#" PRIx64 "\n",
			t->sigmask, t->nr_siginfos, t->rseq_addr);
		fprintf(out, "  memory: %u mappings, %" PRIu64 " pages saved (%" PRIu64 " KiB)\n",
			t->nr_vmas, t->pages_total, t->pages_total * 4);
		char why[512] = "";
		switch (task_sums(dir, t->pid, t->pages_total, why, sizeof(why))) {
		case SUMS_OK:
			fprintf(out, "  page digests: pages.sums, XXH3-128 (usable as --parent)\n");
			break;
		case SUMS_ABSENT:
			fprintf(out, "  page digests: none (not usable as --parent)\n");
			break;
		case SUMS_BAD:
			fprintf(out, "  page digests: damaged, not usable as --parent: %s\n", why);
			break;
		}
		for (uint32_t i = 0; i < t->nr_vmas; i++) {
			const struct cr_vma *v = &t->vmas[i];
			fprintf(out,
				"    %012" PRIx64 "-%012" PRIx64 " %s %-11s %8" PRIu64
				" pages %s\n",
				v->start, v->end, prot_str(v->prot, v->flags, pb),
				cr_vma_kind_name(v->kind), vma_saved_pages(t, v),
				v->path ? v->path : "");
			if (v->has_seals) {
				fprintf(out, "      memfd mode %#o seals ", v->mode);
				print_seals(out, v->seals, false);
				fputc('\n', out);
			}
			if (v->madv) {
				fputs("      madvise ", out);
				print_madv(out, v->madv, false);
				fputc('\n', out);
			}
		}
		fprintf(out, "  files: %u\n", t->nr_fds);
		for (uint32_t i = 0; i < t->nr_fds; i++) {
			const struct cr_fd *f = &t->fds[i];
			fprintf(out, "    %4d %-13s flags %#o pos %" PRIu64 "%s", f->fd,
				cr_fd_kind_name(f->kind), f->flags, f->pos,
				f->cloexec ? " cloexec" : "");
			if (f->kind == CR_FD_PIPE)
				fprintf(out, " pipe %" PRIu64 " buffered %" PRIu64, f->pipe_id,
					f->data_len);
			if (f->kind == CR_FD_MEMFD && f->dup_of < 0) {
				fprintf(out, " memfd inode %" PRIu64 " seals ", f->memfd_ino);
				if (f->memfd_has_seals)
					print_seals(out, f->memfd_seals, false);
				else
					fputs("unknown (image without seal records)", out);
			}
			if (f->dup_of >= 0)
				fprintf(out, " (same file as fd %d)", f->dup_of);
			fprintf(out, " %s", f->path ? f->path : "");
			fuse_cr_describe(f, out);
			fprintf(out, "\n");
		}
	}
}

static void show_json(const struct cr_image *img, const char *dir, FILE *out)
{
	fprintf(out, "{\"version\":%u,\"root_pid\":%u,\"parent\":", img->version, img->root_pid);
	if (img->parent)
		json_str(out, img->parent);
	else
		fputs("null", out);
	fprintf(out, ",\"tasks\":[");
	for (uint32_t k = 0; k < img->nr_tasks; k++) {
		const struct cr_task *t = &img->tasks[k];
		static const char *const sums_name[] = {"ok", "absent", "damaged"};
		char pb[5], why[512];
		fprintf(out,
			"%s{\"pid\":%u,\"ppid\":%u,\"pgid\":%u,\"sid\":%u,\"comm\":", k ? "," : "",
			t->pid, t->ppid, t->pgid, t->sid);
		json_str(out, t->comm);
		fprintf(out, ",\"exe\":");
		json_str(out, t->exe);
		fprintf(out, ",\"cwd\":");
		json_str(out, t->cwd);
		show_caps_json(t, out);
		fprintf(out,
			",\"uid\":%u,\"gid\":%u,\"umask\":%u,\"sigmask\":%" PRIu64
			",\"pending_signals\":%u,\"xstate_bytes\":%u,\"pages\":%" PRIu64
			",\"rip\":%" PRIu64 ",\"page_digests\":\"%s\",\"vmas\":[",
			t->uids[0], t->gids[0], t->umask, t->sigmask, t->nr_siginfos, t->xstate_len,
			t->pages_total, t->regs[16],
			sums_name[task_sums(dir, t->pid, t->pages_total, why, sizeof(why))]);
		for (uint32_t i = 0; i < t->nr_vmas; i++) {
			const struct cr_vma *v = &t->vmas[i];
			fprintf(out,
				"%s{\"start\":%" PRIu64 ",\"end\":%" PRIu64
				",\"prot\":\"%s\",\"kind\":\"%s\",\"pages\":%" PRIu64 ",\"path\":",
				i ? "," : "", v->start, v->end, prot_str(v->prot, v->flags, pb),
				cr_vma_kind_name(v->kind), vma_saved_pages(t, v));
			json_str(out, v->path);
			if (v->has_seals) {
				fprintf(out,
					",\"memfd_mode\":%u,\"seals\":%u,\"seal_names\":", v->mode,
					v->seals);
				print_seals(out, v->seals, true);
			}
			if (v->madv) {
				fprintf(out, ",\"madvise\":%u,\"madvise_names\":", v->madv);
				print_madv(out, v->madv, true);
			}
			fputc('}', out);
		}
		fprintf(out, "],\"fds\":[");
		for (uint32_t i = 0; i < t->nr_fds; i++) {
			const struct cr_fd *f = &t->fds[i];
			fprintf(out,
				"%s{\"fd\":%d,\"kind\":\"%s\",\"flags\":%u,\"cloexec\":%s,\"pos\":%" PRIu64
				",\"dup_of\":%d,\"buffered\":%" PRIu64 ",\"path\":",
				i ? "," : "", f->fd, cr_fd_kind_name(f->kind), f->flags,
				f->cloexec ? "true" : "false", f->pos, f->dup_of,
				f->kind == CR_FD_PIPE ? f->data_len : 0);
			json_str(out, f->path);
			if (f->kind == CR_FD_MEMFD) {
				fprintf(out, ",\"memfd_dev\":%" PRIu64 ",\"memfd_ino\":%" PRIu64,
					f->memfd_dev, f->memfd_ino);
				if (f->memfd_has_seals) {
					fprintf(out,
						",\"seals\":%u,\"seal_names\":", f->memfd_seals);
					print_seals(out, f->memfd_seals, true);
				} else {
					fputs(",\"seals\":null", out);
				}
			}
			if (f->kind == CR_FD_FUSE) {
				fprintf(out,
					",\"fuse_conn\":%u,\"fuse_keeper_pid\":%u,\"fuse_mount\":",
					f->fuse_conn, f->fuse_keeper_pid);
				json_str(out, f->fuse_mnt);
			}
			fputc('}', out);
		}
		fprintf(out, "]}");
	}
	fprintf(out, "]}\n");
}

int cr_show(const char *dir, bool json, FILE *out)
{
	struct cr_image *img = NULL;

	cr_error_clear();
	int ret = cr_image_load(dir, &img);
	if (ret < 0)
		return ret;
	if (json)
		show_json(img, dir, out);
	else
		show_human(img, dir, out);
	cr_image_free(img);
	return 0;
}
