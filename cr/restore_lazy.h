/* SPDX-License-Identifier: MIT */
/*
 * restore_lazy.h - page-lazy restore: the private anonymous memory of a restored process is
 * filled on demand and in the background by a page server, through userfaultfd.
 *
 * Owns: the plan of which saved pages are lazy (runs in private anonymous VMAs: heap, stack,
 * anonymous mmaps; everything else stays on restore.c's eager path), the userfaultfd made in
 * the new process, and the page server process that holds it.
 *
 * Ordering (restore.c): restore_lazy_start() right after the mappings exist and before anything
 * can touch lazy memory; the uffd is registered on the lazy VMAs before the server is forked, so
 * no lazy page can be zero-filled by an early touch. From then on any access to a lazy page,
 * by the process, by the kernel on its behalf (rseq) or by an injected system call, waits for
 * the server. The eager fill must skip lazy runs (restore_lazy_plan says which).
 *
 * The server is a child of the restorer in its own session (no terminal signals), so it lives
 * on after `restore --detach`; it is never the restored process's parent. It serves faults
 * first, follows the process's fork/mremap/munmap/madvise events, prefetches the rest in file
 * order and exits 0 once every page is in place or no longer wanted. If a page cannot be read
 * it SIGKILLs the restored process (and what it forked) and exits 1, naming the file, offset
 * and address on stderr. Until restore_lazy_commit() it also exits if the restorer goes away.
 *
 * Thread-safety: called from the restorer's one tracing thread.
 */
#ifndef CKPTFS_CR_RESTORE_LAZY_H
#define CKPTFS_CR_RESTORE_LAZY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "cr/image.h"

/* The stopped, traced new process and where it can run an injected system call. */
struct lazy_target {
	pid_t pid;
	uint64_t syscall_ip;
	const struct user_regs_struct *base;
};

/* The running page server, as the restorer sees it. */
struct lazy_server {
	pid_t pid; /* 0: none */
	int pidfd; /* the server's */
	int ctl;   /* our end of the control socket, -1 after commit */
	bool lazy; /* there was anything to serve */
};

/* A stretch of pages.img that stores nothing (all-zero pages a ckptfs mount keeps as holes). */
struct cr_hole {
	uint64_t start, end;
};

/* The holes of about 4 MiB or more of the image file fd, in file order (restore.c: which and
 * why); none where the file system has no SEEK_DATA. *ret is the caller's to free. */
int restore_find_holes(int fd, struct cr_hole **ret, size_t *ret_n);

/* Whether pages of VMA v are restored lazily. */
bool restore_lazy_vma(const struct cr_vma *v);

/* One flag per run of t: 1 if it is lazy. *ret_nr_lazy counts the lazy pages. */
int restore_lazy_plan(const struct cr_task *t, uint8_t **ret_lazy_runs, uint64_t *ret_nr_lazy);

/* Makes the userfaultfd in lt->pid, registers the lazy VMAs and forks the page server reading
 * pages_path. With no lazy page, starts nothing (ret->pid 0). ret is written on success only. */
int restore_lazy_start(const struct lazy_target *lt, const struct cr_task *t,
		       const uint8_t *lazy_runs, const char *pages_path, struct lazy_server *ret);

/* The restore succeeded: the server keeps going on its own. */
int restore_lazy_commit(struct lazy_server *s);

/* The restore failed (the new process is being killed): stop the server and reap it. */
void restore_lazy_abort(struct lazy_server *s);

/* After a waiting restore: reap the server if it is done, close our handles. */
void restore_lazy_release(struct lazy_server *s);

#endif
