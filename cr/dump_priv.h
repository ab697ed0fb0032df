/* SPDX-License-Identifier: MIT */
/*
 * dump_priv.h - state shared by the dump modules (dump.c drives; dump_mm.c owns memory,
 * dump_fds.c owns file descriptors). Each module has a collect step that only inspects the
 * frozen target (and refuses what it cannot save) and a write step that produces image files.
 */
#ifndef CKPTFS_CR_DUMP_PRIV_H
#define CKPTFS_CR_DUMP_PRIV_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "cr/image.h"

struct dump_ctx {
	pid_t pid;
	int pidfd;
	int memfd;	/* /proc/PID/mem */
	int dirfd;	/* the image directory */
	int taskdirfd;	/* task-PID/ */
	int filesdirfd; /* files/ */
	struct cr_image *img;
	struct cr_task *t;
	uint64_t syscall_ip; /* a `syscall` instruction inside the target's [vdso] */
	struct user_regs_struct regs;
	uint64_t bytes_written;
	struct page_pipe *pages; /* dump_mm.c: capture buffer and pages.img writer */
	bool defer_writes;	 /* the writers start after the capture (--leave-running) */
	bool sync_by_seal;	 /* a ckptfs checkpoint: its seal makes the files durable */
	bool pages_spilled;	 /* the dump did not fit the buffer: written while frozen */
	uint64_t pages_buffer;	 /* bytes of that buffer */
	/* dump_parent.c: an incremental dump's parent, or NULL (write every page). */
	struct dump_parent *parent;
	uint64_t pages_copied; /* pages copied from the parent instead of written */
	char copy_note[256];   /* why some pages could not be copied, or "" */
};

/* 1 (and *ret_addr, the mapping) when some mapping of pid is registered with a userfaultfd
 * in missing mode ("um" in smaps): a lazy restore still filling it. 0 if none; -errno. */
int dump_mm_uffd_missing(pid_t pid, uint64_t *ret_addr);
int dump_mm_collect(struct dump_ctx *c);
/*
 * Pages: reserve (before the freeze: the capture buffer, sized from the target's RSS),
 * capture (frozen: plan from pagemap, copy into the buffer; a writer thread streams
 * pages.img meanwhile), finish (any time after: wait for the writer, fsync), free (always;
 * stops the writer early on failure).
 */
int dump_mm_reserve(struct dump_ctx *c);
int dump_mm_capture_pages(struct dump_ctx *c);
int dump_mm_finish_pages(struct dump_ctx *c);
void dump_mm_free_pages(struct dump_ctx *c);
int dump_fds_collect(struct dump_ctx *c);
/* After both collects: memfd seals (fds and mappings); refuses hugetlb memory, write-sealed
 * memfds mapped read-only, shared objects mapped twice over the same bytes or also reached by
 * another process, and SysV segments that still exist (dump_shm.c). */
int dump_shm_collect(struct dump_ctx *c);
int dump_fds_write_data(struct dump_ctx *c);
/*
 * The parent of an incremental dump (dump_parent.c). open: 0 with *ret_parent set, or -errno
 * with the reason recorded (cr_error) when the parent cannot be used; the dump then writes
 * every page. find: the parent page index of a page with that digest - the one at the same
 * vaddr if it matches, else hint (the page after the previous match) if it matches, else any
 * equal page - or UINT64_MAX.
 */
struct dump_parent;
/* --auto-parent: the newest image next to new_dir (same parent directory; newest by the mtime
 * of its inventory.img) that holds task pid and its pages.sums. 0 with *ret_dir (malloc'ed
 * path), -ENOENT (reason recorded) when there is none, or another -errno. */
int dump_parent_auto(const char *new_dir, pid_t pid, char **ret_dir);
int dump_parent_open(const char *dir, pid_t pid, struct dump_parent **ret_parent);
void dump_parent_free(struct dump_parent *dp);
uint64_t dump_parent_find(const struct dump_parent *dp, const uint8_t *digest, uint64_t vaddr,
			  uint64_t hint);
int dump_parent_pages_fd(const struct dump_parent *dp);
uint32_t dump_parent_pid(const struct dump_parent *dp);
uint64_t dump_parent_nr_pages(const struct dump_parent *dp);
/* Page index of each run's first page, and the vaddr of page idx (UINT64_MAX: past the end). */
int dump_runs_index(const struct cr_page_run *runs, uint64_t nr, uint64_t **ret_first);
uint64_t dump_runs_vaddr(const struct cr_page_run *runs, const uint64_t *first, uint64_t nr,
			 uint64_t idx);
/* Seals the image directory if it is on a ckptfs mount: 1 sealed, 0 not a ckptfs mount. */
int dump_seal_if_ckptfs(int dirfd, const char *dir);
/* Whether dirfd is on a ckptfs mount (false if that cannot be told). */
bool dump_dir_is_ckptfs(int dirfd);

#endif
