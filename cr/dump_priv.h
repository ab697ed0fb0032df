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
	bool pages_spilled;	 /* the dump did not fit the buffer: written while frozen */
	uint64_t pages_buffer;	 /* bytes of that buffer */
};

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
int dump_fds_write_data(struct dump_ctx *c);
/* Seals the image directory if it is on a ckptfs mount: 1 sealed, 0 not a ckptfs mount. */
int dump_seal_if_ckptfs(int dirfd, const char *dir);

#endif
