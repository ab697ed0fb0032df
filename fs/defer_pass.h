/* SPDX-License-Identifier: MIT */
/*
 * defer_pass.h - the mount's background compression pass.
 *
 * Owns: one thread that watches the store for deferred records (chunks a busy flush stored
 * uncompressed, see index/flush.c) and, once writes have been idle for a while, runs
 * `ckptfs gc --compress-deferred STORE` as a child process at nice 19. The child is an ordinary
 * gc, so it relies on gc's cross-process safety (pack flocks, one index transaction per group,
 * old packs unlinked only after the commit); store_defer_idle() first closes the mount's own
 * current pack so that the child may take it.
 * Environment: CKPTFS_DEFER_IDLE_MS (default 1000) is how long writes must have been idle;
 * 0 turns the pass off (tests that want to look at deferred records).
 * Thread-safety: start and stop from the thread that serves the session; the store is
 * thread-safe.
 */
#ifndef CKPTFS_FS_DEFER_PASS_H
#define CKPTFS_FS_DEFER_PASS_H

#include "index/store.h"

struct defer_pass;

/* Starts the watcher thread; *ret is NULL (and 0 is returned) when the pass is turned off. */
int defer_pass_start(struct store *s, const char *store_path, struct defer_pass **ret);
/* Stops the thread; a pass still running is ended with SIGTERM (gc is crash-safe) and reaped.
 * Accepts NULL. */
void defer_pass_stop(struct defer_pass *p);

#endif
