/* SPDX-License-Identifier: MIT */
/*
 * creds_priv.h - capabilities, securebits and the prctl state tied to credentials (dumpable,
 * parent-death signal, child subreaper, THP disable, no_new_privs), with uids/gids/groups.
 *
 * Owns the order in which a restored task gets its privileges back: the kernel changes
 * capabilities, dumpable and the parent-death signal as side effects of setuid(), so these
 * steps run together, last, in one place (restore_creds.c). dump_creds.c reads the same state
 * from /proc/PID/status and by syscalls injected into the frozen target.
 *
 * Thread-safety: none needed; each call acts on one stopped tracee of the calling thread.
 */
#ifndef CKPTFS_CR_CREDS_PRIV_H
#define CKPTFS_CR_CREDS_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "cr/dump_priv.h"
#include "cr/image.h"

/* Fills the CAPS fields of c->t. scratch: a writable page mapped in the target. */
int dump_creds_collect(struct dump_ctx *c, uint64_t scratch);

/* Where restore_creds_apply() runs its system calls: a stopped tracee, the address of a
 * `syscall` instruction in it and a scratch area it can read. */
struct creds_target {
	pid_t pid;
	uint64_t syscall_ip;
	const struct user_regs_struct *base;
	int memfd; /* /proc/PID/mem */
	uint64_t scratch;
	uint64_t scratch_len;
};

/* Before anything is created: can this restorer reproduce t's capability sets? Names the pid
 * and the capability when it cannot (-EPERM). detach: the restorer will not stay the parent. */
int restore_creds_check(const struct cr_task *t, bool detach);
/* The last privilege-related steps, in the kernel's order (see restore_creds.c). */
int restore_creds_apply(const struct creds_target *ct, const struct cr_task *t);

/* "CAP_NET_ADMIN", or "capability 45" (into buf) for numbers this build does not name. */
const char *cr_cap_name(unsigned int cap, char *buf, size_t size);
/* How many capabilities (0 .. n-1) this build names. */
unsigned int cr_cap_named(void);

#endif
