/* SPDX-License-Identifier: MIT */
/*
 * restore_priv.h - what the restorer hands to its clone3() child, and the fd preparation.
 *
 * The child runs restore_child.c only: it has no allocator, no sanitizer runtime and a stale
 * glibc tid cache, so everything it needs is prepared by the parent in struct child_plan,
 * which the child sees in its copy of the parent's memory.
 */
#ifndef CKPTFS_CR_RESTORE_PRIV_H
#define CKPTFS_CR_RESTORE_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cr/fuse_keeper.h"
#include "cr/image.h"

struct child_fd {
	int target;  /* fd number in the restored process */
	int src;     /* fd in the restorer holding the open file */
	int cloexec; /* FD_CLOEXEC on target */
	int tmp;     /* scratch for the child */
};

struct child_plan {
	pid_t pid;
	struct child_fd *fds;
	int nr_fds;
	int max_fd; /* highest src or target number */
	uint64_t tramp_addr;
	uint64_t tramp_len;
	char comm[16];
	const char *cwd;
	uint32_t umask;
	uint32_t personality;
	bool setsid;
	bool setpgid; /* lead a new process group (it led one, outside a session it led) */
	struct fuse_keeper_take *fuse; /* kept FUSE fds, until restore_fuse_finish */
};

/* Child exit codes: CHILD_FAIL_BASE + step tells the parent which preparation step failed. */
#define CHILD_FAIL_BASE 100
enum child_step {
	CHILD_STEP_PDEATHSIG = 1,
	CHILD_STEP_FDS_UP,
	CHILD_STEP_FDS_PLACE,
	CHILD_STEP_SETSID,
	CHILD_STEP_SETPGID,
	CHILD_STEP_CWD,
	CHILD_STEP_TRAMPOLINE,
	CHILD_STEP_TRACEME,
	CHILD_STEP_NOT_TRACED,
};
const char *child_step_name(int step);

/* clone3(set_tid = plan->pid); the child prepares and stops itself with SIGSTOP under
 * PTRACE_TRACEME. Returns the child's pid in the parent, or -errno (-EEXIST: pid taken). */
pid_t restore_child_spawn(const struct child_plan *plan);

/* Opens every fd of t in the restorer (O_CLOEXEC), filling plan->fds. dir is the image. */
int restore_fds_prepare(const char *dir, const struct cr_task *t, struct child_plan *plan);
void restore_fds_release(struct child_plan *plan);

/* Memfd seals (restore_shm.c). add_seals: sets the permission bits (before F_SEAL_EXEC can
 * forbid it), adds seals and checks the result; what names the memfd in messages. mapped:
 * whether a shared VMA of t maps that memfd, so its seals must wait for its pages. seal:
 * after the pages of pid are in place, seals every mapped or mapping-only memfd. */
int restore_shm_add_seals(int fd, uint32_t seals, uint32_t mode, const char *what);
bool restore_shm_mapped(const struct cr_task *t, uint64_t dev, uint64_t ino);
int restore_shm_seal(pid_t pid, const struct cr_task *t);
/* Before anything is created: every rlimit of t can be set exactly (restore_limits.c). */
int restore_limits_check(const struct cr_task *t);

#endif
