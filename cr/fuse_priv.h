/* SPDX-License-Identifier: MIT */
/*
 * fuse_priv.h - checkpoint/restore of FUSE daemons: the hooks dump.c, dump_fds.c, dump_mm.c,
 * restore.c and restore_fds.c call (dump_fuse.c, restore_fuse.c; design in docs/fuse-cr.md).
 *
 * Invariant on both sides: nothing here (and nothing the hooks guard) looks up a path below a
 * FUSE mount or stats a file on one. The daemon serving it is frozen or dead, so any such
 * access would wait for an answer that never comes. Only /proc text and fds are used.
 * Thread-safety: none; one dump or restore per thread.
 */
#ifndef CKPTFS_CR_FUSE_PRIV_H
#define CKPTFS_CR_FUSE_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cr/dump_priv.h"
#include "cr/fuse_keeper.h"
#include "cr/image.h"

/* Called for each fd before anything stats it. A /dev/fuse fd becomes CR_FD_FUSE with its
 * connection; an fd open on a FUSE mount is refused (-EOPNOTSUPP); others are left alone. */
int dump_fuse_inspect_fd(struct dump_ctx *c, struct cr_fd *f);
/* Refuses a mapping of a file on a FUSE mount (major 0: look the minor up). */
int dump_fuse_check_mapping(struct dump_ctx *c, unsigned int maj, unsigned int min,
			    const char *name, uint64_t start);
/* After collection, before the image is written: resolves the served mounts, refuses a cwd or
 * root under them, hands the connections to a new keeper (a leave_running one too: it holds
 * copies while the original serves) and retires the older keepers of those connections. */
int dump_fuse_prepare(struct dump_ctx *c, bool leave_running);
/* A dump that fails after dump_fuse_prepare: stop the keeper (the target keeps its fds). */
void dump_fuse_abort(struct dump_ctx *c);

/* Before restore creates anything: every connection of the image must be obtainable. */
int restore_fuse_check(const struct cr_task *t);
/* The fd (O_CLOEXEC, in the restorer) for FUSE record f; the first call takes all of them from
 * the keeper into *tkp. */
int restore_fuse_open(const struct cr_task *t, const struct cr_fd *f,
		      struct fuse_keeper_take **tkp);
/* The restored process pid runs and holds the fds: release the keeper. For a --leave-running
 * image, first make the kernel resend the requests the dead original had read but not answered
 * (the rolled-back daemon never saw them). */
void restore_fuse_finish(struct fuse_keeper_take **tkp, pid_t pid);
/* Restore failed: give nothing up, the keeper keeps the connections. */
void restore_fuse_abandon(struct fuse_keeper_take **tkp);

/* One line about a kept connection for `ckptfs show` (probes the keeper). */
void fuse_cr_describe(const struct cr_fd *f, FILE *out);

#endif
