/* SPDX-License-Identifier: MIT */
/*
 * image.h - the checkpoint image: its in-memory model and its on-disk encoding.
 *
 * Owns: struct cr_image and everything hanging off it (tasks, VMAs, page runs, fds, signals).
 * The encoder writes one directory per image:
 *
 *   inventory.img            written last: its presence marks a complete image
 *   task-PID/core.img        registers, xstate, signals, ids, limits, timers, cwd/root
 *   task-PID/mm.img          mm fields, auxv, exe, one record per VMA
 *   task-PID/pagemap.img     runs of saved pages, in pages.img order
 *   task-PID/pages.img       raw page data only, so every page sits at a 4 KiB-aligned offset
 *   task-PID/fds.img         one record per file descriptor
 *   files/NAME               contents of unlinked files and of pipe buffers
 *
 * Every .img file except pages.img is: a 16-byte header (magic "CKPTIMG\0", u32 version,
 * u32 file kind) followed by records (u32 type, u32 payload length, payload, zero padding to
 * 8 bytes). All fields are fixed-width little-endian. See docs/image-format.md.
 *
 * The decoder treats the bytes as untrusted: every length and count is checked with
 * overflow-checked arithmetic; damage gives -EBADMSG naming the file and offset, an unknown
 * version gives -EOPNOTSUPP. cr_image_validate() then checks the cross-record invariants that
 * restore relies on (sorted non-overlapping VMAs, page runs inside VMAs, unique fds...).
 *
 * Thread-safety: none needed; an image is owned by one caller.
 */
#ifndef CKPTFS_CR_IMAGE_H
#define CKPTFS_CR_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CR_IMG_MAGIC   "CKPTIMG"
#define CR_IMG_VERSION 1

#define CR_PAGE_SIZE 4096ULL
/* Upper bound of the x86_64 user address space with 4-level paging. */
#define CR_TASK_SIZE 0x7ffffffff000ULL

enum cr_file_kind {
	CR_FILE_INVENTORY = 1,
	CR_FILE_CORE = 2,
	CR_FILE_MM = 3,
	CR_FILE_PAGEMAP = 4,
	CR_FILE_FDS = 5,
};

enum cr_vma_kind {
	CR_VMA_ANON = 1,	/* private anonymous: heap, stack, mmap */
	CR_VMA_FILE = 2,	/* file-backed (private or shared), re-mapped from the file */
	CR_VMA_SHMEM = 3,	/* shared anonymous / memfd / SysV: full content saved */
	CR_VMA_VVAR = 4,	/* [vvar] */
	CR_VMA_VVAR_VCLOCK = 5, /* [vvar_vclock] */
	CR_VMA_VDSO = 6,	/* [vdso] */
};

#define CR_VMA_F_SHARED	   0x1u
#define CR_VMA_F_GROWSDOWN 0x2u

struct cr_vma {
	uint64_t start;
	uint64_t end;
	uint64_t pgoff; /* in bytes, for CR_VMA_FILE */
	uint32_t prot;
	uint32_t flags; /* CR_VMA_F_* */
	uint32_t kind;	/* enum cr_vma_kind */
	/* Identity of the mapped file (CR_VMA_FILE), checked at restore. */
	uint64_t dev;
	uint64_t ino;
	uint64_t size;
	uint64_t mtime_ns;
	/* CR_VMA_VDSO: hash of its bytes, so restore can refuse a different kernel's vDSO. */
	uint64_t content_hash;
	char *path; /* may be NULL for anonymous memory */
	/* A memfd mapping: F_GET_SEALS of the memfd and its permission bits (optional record
	 * REC_MM_VMA_SEALS after the VMA's record; older images have none: has_seals false). */
	bool has_seals;
	uint32_t seals;
	uint32_t mode;
	/* madvise/mlock state of the mapping, CR_VMA_MADV_* (optional record REC_MM_VMA_MADV
	 * after the VMA's record, written only when non-zero; older images: 0). */
	uint32_t madv;
};

/* VMA flags set by madvise/mlock, as /proc/PID/smaps VmFlags shows them. */
#define CR_VMA_MADV_DONTFORK	0x01u /* dc: MADV_DONTFORK (VM_DONTCOPY) */
#define CR_VMA_MADV_WIPEONFORK	0x02u /* wf: MADV_WIPEONFORK, private anonymous only */
#define CR_VMA_MADV_DONTDUMP	0x04u /* dd: MADV_DONTDUMP */
#define CR_VMA_MADV_HUGEPAGE	0x08u /* hg: MADV_HUGEPAGE */
#define CR_VMA_MADV_NOHUGEPAGE	0x10u /* nh: MADV_NOHUGEPAGE, never with HUGEPAGE */
#define CR_VMA_MADV_MERGEABLE	0x20u /* mg: MADV_MERGEABLE (KSM) */
#define CR_VMA_MADV_LOCKED	0x40u /* lo: mlock (VM_LOCKED) */
#define CR_VMA_MADV_LOCKONFAULT 0x80u /* lf: mlock2(MLOCK_ONFAULT), only with LOCKED */
#define CR_VMA_MADV_KNOWN	0xffu

/* nr_pages pages starting at vaddr; their bytes follow each other in pages.img. */
struct cr_page_run {
	uint64_t vaddr;
	uint64_t nr_pages;
};

enum cr_fd_kind {
	CR_FD_REG = 1,	    /* regular file reopened by path */
	CR_FD_UNLINKED = 2, /* regular file unlinked while open: contents in files/ */
	CR_FD_DIR = 3,
	CR_FD_PIPE = 4, /* anonymous pipe end; buffered bytes in files/ */
	CR_FD_CHR = 5,	/* /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom */
	CR_FD_TTY = 6,	/* a terminal: restored onto the restorer's terminal */
	CR_FD_FUSE = 7, /* /dev/fuse bound to a connection: handed over by a keeper (fuse-cr.md) */
	CR_FD_FIFO = 8, /* named FIFO end, reopened by path; buffered bytes in files/ */
	/* memfd: contents in files/; a new memfd at restore, shared with the fds and mappings
	 * of the same memfd (record REC_FD_MEMFD after the fd's REC_FD gives its identity) */
	CR_FD_MEMFD = 9,
};

struct cr_fd {
	int32_t fd;
	uint32_t kind;	    /* enum cr_fd_kind */
	uint32_t flags;	    /* open(2) status flags and access mode, without O_CLOEXEC */
	uint32_t cloexec;   /* FD_CLOEXEC set */
	uint32_t mode;	    /* st_mode of the file */
	int32_t dup_of;	    /* -1, or a lower fd sharing this open file description */
	uint64_t pos;	    /* file offset */
	uint64_t pipe_id;   /* pipe inode number: ends with the same id are one pipe */
	uint64_t pipe_size; /* F_GETPIPE_SZ */
	uint64_t data_len;  /* bytes in files/<data> */
	char *path;	    /* path (REG/DIR/CHR/TTY) */
	char *data;	    /* name under files/ (UNLINKED, PIPE with buffered bytes), or NULL */
	/* CR_FD_FUSE only (record REC_FD_FUSE after the fd's REC_FD), see docs/fuse-cr.md. */
	uint32_t fuse_conn;	  /* connection number: the mount's st_dev is 0:fuse_conn */
	uint32_t fuse_keeper_pid; /* 0: not kept (a --leave-running dump) */
	uint8_t fuse_keeper_id[16];
	char *fuse_mnt;	   /* the mount point it served at dump time */
	char *fuse_fstype; /* its fstype and source, "fuse.squashfuse squashfuse" */
	/* CR_FD_MEMFD only: device and inode of the memfd, as cr_vma.dev/ino of its mappings. */
	uint64_t memfd_dev;
	uint64_t memfd_ino;
	/* CR_FD_MEMFD only: F_GET_SEALS (optional record REC_FD_MEMFD_SEALS after REC_FD_MEMFD;
	 * images from before it have none: memfd_has_seals false). */
	bool memfd_has_seals;
	uint32_t memfd_seals;
};

/* F_SEAL_* bits this build knows (SEAL, SHRINK, GROW, WRITE, FUTURE_WRITE, EXEC). */
#define CR_SEALS_KNOWN 0x3fu

struct cr_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

struct cr_siginfo {
	uint32_t shared; /* 1: process-wide queue, 0: this thread's */
	uint8_t info[128];
};

#define CR_NSIG	      64
#define CR_NRLIMITS   16
#define CR_NREGS      27 /* struct user_regs_struct on x86_64 */
#define CR_MAX_XSTATE (64u * 1024u)
#define CR_MAX_AUXV   4096u
#define CR_MAX_GROUPS 65536u
/* SECBIT_* up to SECBIT_EXEC_DENY_INTERACTIVE_LOCKED (Linux 6.14). */
#define CR_SECUREBITS_KNOWN 0xfffu

struct cr_mm {
	uint64_t start_code, end_code, start_data, end_data;
	uint64_t start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
};

struct cr_task {
	uint32_t pid, ppid, pgid, sid;
	uint32_t personality;
	uint32_t umask;
	char comm[16];
	uint64_t regs[CR_NREGS];
	uint8_t *xstate;
	uint32_t xstate_len;
	uint64_t sigmask;
	struct cr_sigaction sigactions[CR_NSIG]; /* index = signal number - 1 */
	uint64_t altstack_sp, altstack_size;
	uint32_t altstack_flags;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
	uint64_t robust_head, robust_len;
	uint64_t clear_child_tid;
	uint64_t itimers[3][4]; /* REAL, VIRTUAL, PROF: interval s/us, value s/us */
	uint64_t rlimits[CR_NRLIMITS][2];
	uint32_t uids[4], gids[4]; /* real, effective, saved, fs */
	uint32_t nr_groups;
	uint32_t *groups;
	char *cwd, *root, *exe;
	uint32_t nr_siginfos;
	struct cr_siginfo *siginfos;
	int32_t nice;
	uint32_t no_new_privs;
	uint64_t timer_slack_ns; /* 0: not recorded, keep the restorer's */
	/* Capabilities and prctl state (CAPS record; has_caps 0 in images without one). */
	uint32_t has_caps;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb; /* bit N: capability N */
	uint32_t securebits;				      /* PR_GET_SECUREBITS */
	uint32_t dumpable;				      /* PR_GET_DUMPABLE: 0, 1 or 2 */
	uint32_t pdeathsig;				      /* 0, or a signal 1..64 */
	uint32_t child_subreaper;			      /* 0 or 1 */
	uint32_t thp_disable; /* PR_GET_THP_DISABLE: bit 0 disabled, bit 1 except advised */

	struct cr_mm mm;
	uint8_t *auxv;
	uint32_t auxv_len;
	uint32_t nr_vmas;
	struct cr_vma *vmas;

	uint64_t nr_runs;
	struct cr_page_run *runs;
	uint64_t pages_total; /* sum of nr_pages over runs */

	uint32_t nr_fds;
	struct cr_fd *fds;
};

struct cr_image {
	uint32_t version;
	uint32_t root_pid;
	uint32_t nr_tasks;
	struct cr_task *tasks;
	/* Informational: the image this one was dumped against (`dump --parent`), or NULL.
	 * Restore never needs it (optional inventory record PARENT). */
	char *parent;
	/* Writer only: the directory is a ckptfs checkpoint that the caller seals, which makes
	 * every file durable at once; the files are then not fsynced one by one (each close is
	 * still checked: a mount nearly out of space reports a failed flush there). */
	bool sync_by_seal;
};

struct cr_image *cr_image_new(void);
void cr_image_free(struct cr_image *img);
/* Adds an empty task; returns it (owned by img) or NULL on ENOMEM. */
struct cr_task *cr_image_add_task(struct cr_image *img, uint32_t pid);

/* Encoding one metadata file into memory: the caller writes the bytes out. */
int cr_image_encode(const struct cr_image *img, const struct cr_task *t, enum cr_file_kind kind,
		    uint8_t **ret_buf, size_t *ret_len);
/* Decoding one metadata file from memory into img (INVENTORY) or t (the others). name is used in
 * messages only. */
int cr_image_decode(struct cr_image *img, struct cr_task *t, enum cr_file_kind kind,
		    const uint8_t *buf, size_t len, const char *name);
/* Cross-record checks that restore relies on; pages_len is the size of the task's pages.img
 * (UINT64_MAX to skip that check). */
int cr_image_validate_task(const struct cr_task *t, uint64_t pages_len);

/* Reads and validates a whole image directory. */
int cr_image_load(const char *dir, struct cr_image **ret);
/* Writes the metadata files of task t (not pages.img) under dirfd/task-PID/. */
int cr_image_write_task(int dirfd, const struct cr_image *img, const struct cr_task *t,
			uint64_t *bytes_written);
/* Writes inventory.img, the marker of a complete image. */
int cr_image_write_inventory(int dirfd, const struct cr_image *img, uint64_t *bytes_written);

const char *cr_vma_kind_name(uint32_t kind);
const char *cr_fd_kind_name(uint32_t kind);
/* The name of bit number b (0..7) of CR_VMA_MADV_*, "dontfork" ... "lockonfault". */
const char *cr_vma_madv_name(unsigned int b);
/* FNV-1a, for vDSO identity. */
uint64_t cr_hash_bytes(const void *p, size_t len);

/*
 * task-PID/pages.sums: one digest per page of pages.img, in file order, so a later dump can
 * find pages it need not write again (`ckptfs dump --parent`). Optional: restore never reads
 * it and older images lack it. Layout (little-endian; see docs/image-format.md):
 *
 *   0   8  magic "CKPTSUMS"
 *   8   4  version (1)
 *   12  4  digest algorithm: 1 = XXH3-128, seed 0, of each 4096-byte page
 *   16  4  page size (4096)
 *   20  4  0
 *   24  8  page count N
 *   32  8  XXH3-64 of the N x 16 digest bytes
 *   40  8  XXH3-64 of bytes 0..39
 *   48  N x 16  digests: u64 low half, u64 high half
 */
#define CR_SUMS_MAGIC	   "CKPTSUMS"
#define CR_SUMS_VERSION	   1
#define CR_SUMS_ALGO_XXH3  1
#define CR_SUMS_HDR_LEN	   48u
#define CR_SUMS_DIGEST_LEN 16u

/* The digest of one page, in its on-disk byte layout. */
void cr_sums_digest(const void *page, uint8_t ret_digest[CR_SUMS_DIGEST_LEN]);
/* Fills the header for nr digests (nr * 16 bytes at digests). */
void cr_sums_encode_header(uint8_t hdr[CR_SUMS_HDR_LEN], const uint8_t *digests, uint64_t nr);
/* Checks a whole pages.sums file held in buf; name is for messages. On success *ret_nr is
 * the page count and *ret_digests points into buf. Damage: -EBADMSG; another version or
 * algorithm: -EOPNOTSUPP. */
int cr_sums_decode(const uint8_t *buf, size_t len, const char *name, uint64_t *ret_nr,
		   const uint8_t **ret_digests);

#endif
