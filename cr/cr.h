/* SPDX-License-Identifier: MIT */
/*
 * cr.h - the checkpoint/restore core: dump one running process into a directory of image files
 * (image.h), restore it with the same PID, and summarise an image.
 *
 * Invariants: a dump that fails leaves its target running as it found it and leaves no
 * inventory.img behind (restore refuses an image without one); a restore parses and validates
 * the whole image before it creates any process, and kills a half-restored child.
 * Errors are -errno with a one-sentence reason in cr_error_last() (error.h).
 * Thread-safety: ptrace ties a tracee to the calling thread; call from one thread. cr_dump
 * starts (and always joins) threads of its own: page writers and a helper that faults in its
 * capture buffer.
 */
#ifndef CKPTFS_CR_CR_H
#define CKPTFS_CR_CR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct cr_dump_opts {
	pid_t pid;
	const char *dir;
	bool leave_running; /* detach instead of SIGKILL after a successful dump */
	const char *parent; /* an earlier image to copy unchanged pages from, or NULL */
	bool auto_parent;   /* no parent given: use the newest sibling image of this pid, if any */
};

struct cr_dump_stats {
	uint64_t prepare_ns;	/* from the call until the freeze (mostly the capture buffer) */
	uint64_t frozen_ns;	/* from the freeze to the kill/detach */
	uint64_t capture_ns;	/* from the freeze until all state was read */
	uint64_t total_ns;	/* from the freeze until the image was complete and durable */
	uint64_t bytes_written; /* all image files */
	uint64_t pages;		/* memory pages saved */
	bool pages_spilled;	/* memory exceeded the capture buffer: written while frozen */
	uint64_t buffer_bytes;	/* size of that buffer */
	uint64_t pages_copied;	/* of those, copied from the parent instead of written */
	char parent_note[512];	/* why the parent was (partly) not used, or "" */
	char parent_dir[4096];	/* the parent used (given or found), or "" */
};

int cr_dump(const struct cr_dump_opts *opts, struct cr_dump_stats *ret_stats);

struct cr_restore_opts {
	const char *dir;
	bool detach;		    /* leave the process running and return once it runs */
	const char *pidfile;	    /* if set, the restored pid is written there */
	bool lazy;		    /* private anonymous memory filled on demand (restore_lazy.h) */
	const char *server_pidfile; /* lazy: the page server's pid is written there */
};

/* Without detach, waits for the restored process; *ret_status is its exit code or 128+signal. */
int cr_restore(const struct cr_restore_opts *opts, int *ret_status);

int cr_show(const char *dir, bool json, FILE *out);

#endif
