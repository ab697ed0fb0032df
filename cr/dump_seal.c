// SPDX-License-Identifier: MIT
/*
 * dump_seal.c - seal a finished image when it was written into a ckptfs mount.
 *
 * Only a ckptfs mount knows the seal xattr. On any other filesystem that stores user.*
 * xattrs (ext4, tmpfs...) setting it would leave a stray mark that a later `cp -a` of the
 * image into a mount would copy, sealing the copy half-way. So the mount is identified first,
 * from /proc only (never by a path lookup: the directory may sit on any FUSE mount).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

#include "common/log.h"
#include "common/util.h"
#include "cr/dump_priv.h"
#include "cr/error.h"

#define CKPTFS_FSTYPE "fuse.ckptfs"

static void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

/* mnt_id of an open fd of ours, from its fdinfo. */
static int fd_mnt_id(int fd, int *ret_id)
{
	char path[64], line[256];
	_cleanup_(fclosep) FILE *f = NULL;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "mnt_id: %d", ret_id) == 1)
			return 0;
	return -ENOENT;
}

/* Is mount mnt_id of our mount namespace a ckptfs mount? (fstype follows " - ".) */
static int mount_is_ckptfs(int mnt_id, bool *ret)
{
	_cleanup_(fclosep) FILE *f = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		const char *sep;
		int id;

		if (sscanf(line, "%d ", &id) != 1 || id != mnt_id)
			continue;
		sep = strstr(line, " - ");
		*ret = sep && !strncmp(sep + 3, CKPTFS_FSTYPE " ", strlen(CKPTFS_FSTYPE) + 1);
		return 0;
	}
	return -ENOENT;
}

bool dump_dir_is_ckptfs(int dirfd)
{
	bool ckptfs = false;
	int mnt_id;

	return fd_mnt_id(dirfd, &mnt_id) >= 0 && mount_is_ckptfs(mnt_id, &ckptfs) >= 0 && ckptfs;
}

int dump_seal_if_ckptfs(int dirfd, const char *dir)
{
	bool ckptfs = false;
	int mnt_id, r;

	r = fd_mnt_id(dirfd, &mnt_id);
	if (r >= 0)
		r = mount_is_ckptfs(mnt_id, &ckptfs);
	if (r < 0) {
		cr_error("finding the mount of '%s': %s", dir, strerror(-r));
		return r;
	}
	if (!ckptfs)
		return 0;
	/* The store flushes and syncs everything of the checkpoint before it seals it. */
	if (fsetxattr(dirfd, "user.ckptfs.seal", "1", 1, 0) < 0) {
		r = -errno;
		cr_error("sealing '%s': %s", dir, strerror(errno));
		return r;
	}
	log_debug("sealed checkpoint '%s'", dir);
	return 1;
}
