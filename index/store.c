// SPDX-License-Identifier: MIT
/* store.c - store lifecycle: the header file, init, open/close, the last-error string, statfs. */
#include "index/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/util.h"
#include "index/pack.h"
#include "index/store_priv.h"

static __thread char last_error[1024];

const char *store_last_error(void)
{
	return last_error[0] ? last_error : "no error detail";
}

int store_error(int r, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	errno = saved;
	log_debug("store: %s", last_error);
	return r;
}

/*
 * Header layout (STORE_HEADER_LEN = 224 bytes, little-endian):
 *   0 magic "CKPTFS\0S"   8 u32 version   12 u32 secret length (192)
 *  16 secret[192]        208 u64 created (unix seconds)
 * 216 u64 XXH3-64 of bytes 0..215
 */
static int header_write(int dirfd)
{
	uint8_t hdr[STORE_HEADER_LEN];
	_cleanup_close_ int fd = -1;
	const char *tmp = STORE_HEADER_NAME ".tmp";
	size_t got = 0;
	int r;

	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, STORE_HEADER_MAGIC, 8);
	le32_put(hdr + 8, STORE_FORMAT_VERSION);
	le32_put(hdr + 12, CHUNK_SECRET_LEN);
	while (got < CHUNK_SECRET_LEN) {
		ssize_t n = getrandom(hdr + 16 + got, CHUNK_SECRET_LEN - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return store_error(-errno, "getrandom for the chunk secret: %m");
		}
		got += (size_t)n;
	}
	le64_put(hdr + 208, (uint64_t)time(NULL));
	le64_put(hdr + 216, XXH3_64bits(hdr, 216));

	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return store_error(-errno, "create '%s': %m", tmp);
	r = write_full(fd, hdr, sizeof(hdr));
	if (r < 0)
		return store_error(r, "write '%s': %s", tmp, strerror(-r));
	if (fsync(fd) < 0)
		return store_error(-errno, "fsync '%s': %m", tmp);
	if (renameat(dirfd, tmp, dirfd, STORE_HEADER_NAME) < 0)
		return store_error(-errno, "rename '%s': %m", tmp);
	if (fsync(dirfd) < 0)
		return store_error(-errno, "fsync store directory: %m");
	return 0;
}

static int header_read(int dirfd, const char *path, uint8_t secret[CHUNK_SECRET_LEN])
{
	uint8_t hdr[STORE_HEADER_LEN];
	_cleanup_close_ int fd = -1;
	uint32_t version;
	int r;

	fd = openat(dirfd, STORE_HEADER_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return store_error(-ENOENT, "'%s' is not a ckptfs store (no '%s')", path,
					   STORE_HEADER_NAME);
		return store_error(-errno, "open '%s/%s': %m", path, STORE_HEADER_NAME);
	}
	r = pread_full(fd, hdr, sizeof(hdr), 0);
	if (r == -EBADMSG)
		return store_error(-EBADMSG, "store header '%s/%s' is truncated", path,
				   STORE_HEADER_NAME);
	if (r < 0)
		return store_error(r, "read '%s/%s': %s", path, STORE_HEADER_NAME, strerror(-r));
	if (memcmp(hdr, STORE_HEADER_MAGIC, 8) != 0)
		return store_error(-EBADMSG, "'%s/%s' has a bad magic: not a ckptfs store", path,
				   STORE_HEADER_NAME);
	version = le32_get(hdr + 8);
	if (version != STORE_FORMAT_VERSION)
		return store_error(-EOPNOTSUPP,
				   "store '%s' has format version %u; this build reads version %u",
				   path, version, STORE_FORMAT_VERSION);
	if (le64_get(hdr + 216) != XXH3_64bits(hdr, 216) || le32_get(hdr + 12) != CHUNK_SECRET_LEN)
		return store_error(-EBADMSG, "store header '%s/%s' is corrupt (checksum mismatch)",
				   path, STORE_HEADER_NAME);
	memcpy(secret, hdr + 16, CHUNK_SECRET_LEN);
	return 0;
}

/* mkdir -p */
static int mkdir_parents(const char *path)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *slash = strchr(p + 1, '/');; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (!slash)
			return 0;
		*slash = '/';
	}
}

static int index_create(const char *path)
{
	_cleanup_free_ char *dir = NULL;
	struct idx_db *db = NULL;
	struct idx_txn *txn = NULL;
	struct inode root = {0};
	int r;

	if (asprintf(&dir, "%s/%s", path, STORE_INDEX_DIR) < 0)
		return -ENOMEM;
	r = idx_db_open(dir, false, &db);
	if (r < 0)
		return r;
	r = idx_txn_begin(db, true, &txn);
	if (r < 0)
		goto out;
	root.ino = STORE_ROOT_INO;
	root.mode = S_IFDIR | 0755;
	root.nlink = 2;
	root.next_cookie = 1;
	root.parent = STORE_ROOT_INO;
	now_ts(&root.atime);
	root.mtime = root.ctime = root.atime;
	r = ino_save(txn, &root);
	if (r >= 0)
		r = meta_put_u64(txn, "next_ino", STORE_ROOT_INO + 1);
	if (r >= 0)
		r = meta_put_u64(txn, "next_pack", 1);
	if (r >= 0)
		r = meta_put_u64(txn, "format", STORE_FORMAT_VERSION);
	if (r < 0) {
		idx_txn_abort(txn);
		goto out;
	}
	r = idx_txn_commit(txn);
	if (r >= 0)
		r = idx_db_sync(db);
out:
	idx_db_close(db);
	return r;
}

int store_init(const char *path)
{
	_cleanup_close_ int dirfd = -1;
	DIR *d;
	struct dirent *de;
	bool empty = true, is_store = false;
	int r;

	r = mkdir_parents(path);
	if (r < 0)
		return store_error(r, "create store directory '%s': %s", path, strerror(-r));
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return store_error(-errno, "open store directory '%s': %m", path);
	d = fdopendir(dup(dirfd));
	if (!d)
		return store_error(-errno, "list '%s': %m", path);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!strcmp(de->d_name, STORE_HEADER_NAME))
			is_store = true;
		empty = false;
	}
	closedir(d);
	if (is_store)
		return store_error(-EEXIST, "'%s' already is a ckptfs store", path);
	if (!empty)
		return store_error(-ENOTEMPTY, "'%s' is not empty and not a ckptfs store", path);

	const char *subdirs[] = {PACK_DIR, STORE_MANIFEST_DIR, STORE_INDEX_DIR};
	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++)
		if (mkdirat(dirfd, subdirs[i], 0755) < 0)
			return store_error(-errno, "create '%s/%s': %m", path, subdirs[i]);
	r = index_create(path);
	if (r < 0)
		return r;
	/* The header goes last: its presence is what makes the directory a store. */
	return header_write(dirfd);
}

int store_open(const char *path, unsigned flags, struct store **ret_store)
{
	_cleanup_free_ char *idxdir = NULL;
	struct store *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->lockfd = s->usersfd = -1;
	s->flags = flags;
	s->dirty_budget = DIRTY_BUDGET_DEF;
	s->pack_roll_bytes = PACK_ROLL_BYTES;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	s->enc_threads = ncpu < 1 ? 1 : ncpu > 4 ? 4 : (unsigned)ncpu;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->flushed, NULL);
	pthread_cond_init(&s->flusher_wake, NULL);
	pthread_mutex_init(&s->pack_mu, NULL);
	pthread_rwlock_init(&s->fds_lock, NULL);
	s->path = strdup(path);
	if (!s->path) {
		r = -ENOMEM;
		goto fail;
	}
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = store_error(-errno, "open store '%s': %m", path);
		goto fail;
	}
	r = header_read(s->dirfd, path, s->secret);
	if (r < 0)
		goto fail;
	if (flags & STORE_OPEN_EXCLUSIVE) {
		s->lockfd = openat(s->dirfd, STORE_LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (s->lockfd < 0) {
			r = store_error(-errno, "open '%s/%s': %m", path, STORE_LOCK_NAME);
			goto fail;
		}
		if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
			r = errno == EWOULDBLOCK ? -EBUSY : -errno;
			r = store_error(r,
					"store '%s' is already opened for writing (mounted?) by "
					"another process",
					path);
			goto fail;
		}
	}
	if (asprintf(&idxdir, "%s/%s", path, STORE_INDEX_DIR) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	/* Every opener holds this shared while it has the LMDB environment open, so the last
	 * writable closer can tell that nobody else maps data.mdb and compact it. */
	s->usersfd = openat(s->dirfd, STORE_INDEX_DIR "/" STORE_USERS_NAME,
			    O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->usersfd < 0 && (flags & STORE_OPEN_RDONLY))
		s->usersfd = openat(s->dirfd, STORE_INDEX_DIR "/" STORE_USERS_NAME,
				    O_RDONLY | O_CLOEXEC);
	if (s->usersfd < 0 && !(flags & STORE_OPEN_RDONLY)) {
		r = store_error(-errno, "open '%s/%s/%s': %m", path, STORE_INDEX_DIR,
				STORE_USERS_NAME);
		goto fail;
	}
	/* (A read-only opener on a read-only store goes without: nobody can compact it then.) */
	while (s->usersfd >= 0 && flock(s->usersfd, LOCK_SH) < 0) {
		if (errno != EINTR) {
			r = store_error(-errno, "lock '%s/%s/%s': %m", path, STORE_INDEX_DIR,
					STORE_USERS_NAME);
			goto fail;
		}
	}
	r = idx_db_open(idxdir, flags & STORE_OPEN_RDONLY, &s->db);
	if (r < 0)
		goto fail;
	if (flags & STORE_OPEN_EXCLUSIVE) {
		/* Inodes unlinked while open by a previous mount that died: nobody holds them now.
		 */
		r = store_purge_orphans(s);
		if (r < 0)
			goto fail;
	}
	if (!(flags & STORE_OPEN_RDONLY)) {
		/* A checkpoint removal a crash cut short: finish it or undo it. */
		r = store_settle_tombstones(s);
		if (r < 0)
			goto fail;
		r = flusher_start(s);
		if (r < 0)
			goto fail;
	}
	*ret_store = s;
	return 0;
fail:
	store_close(s);
	return r;
}

/*
 * LMDB never shrinks data.mdb: copy-on-write leaves about one tree's worth of free pages behind
 * the busiest transactions. When the writable mount closes and no other process has the
 * environment open (they all hold index/users shared), replace the file by a compact copy if
 * more than a quarter of it is free. Best effort: any failure keeps the old file.
 */
static void index_compact(struct store *s)
{
	const char *tmp = STORE_INDEX_DIR "/data.mdb.compact";
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int ifd = -1;
	uint64_t used, total;
	int r;

	if (s->usersfd < 0 || flock(s->usersfd, LOCK_EX | LOCK_NB) < 0)
		return;
	r = idx_db_page_usage(s->db, &used, &total);
	if (r < 0 || total < 256 || (total - used) * 4 < total)
		goto out;
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto out;
	r = idx_db_copy_compact(s->db, fd);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlinkat(s->dirfd, tmp, 0);
		goto out;
	}
	idx_db_close(s->db);
	s->db = NULL;
	if (renameat(s->dirfd, tmp, s->dirfd, STORE_INDEX_DIR "/data.mdb") < 0) {
		log_debug("store: compacting the index of '%s': rename: %m", s->path);
		(void)unlinkat(s->dirfd, tmp, 0);
		goto out;
	}
	/* The lock file describes the old map (reader table, last txn): let LMDB start anew. */
	(void)unlinkat(s->dirfd, STORE_INDEX_DIR "/lock.mdb", 0);
	ifd = openat(s->dirfd, STORE_INDEX_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ifd >= 0)
		(void)fsync(ifd);
	log_debug("store: compacted the index of '%s' from %llu to %llu pages", s->path,
		  (unsigned long long)total, (unsigned long long)used);
out:
	(void)flock(s->usersfd, LOCK_SH);
}

int store_sync(struct store *s)
{
	int r;

	if (s->flags & STORE_OPEN_RDONLY)
		return 0;
	pthread_mutex_lock(&s->mu);
	r = store_flush_all_locked(s);
	pthread_mutex_unlock(&s->mu);
	if (r < 0)
		return r;
	r = idx_db_sync(s->db);
	if (r < 0)
		return r;
	return store_write_touched_manifests(s, 0);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	flusher_stop(s);
	if (s->db && !(s->flags & STORE_OPEN_RDONLY)) {
		int r = store_sync(s);
		if (r < 0)
			log_debug("store: close '%s': final sync failed: %s", s->path,
				  store_last_error());
	}
	store_drop_inodes(s);
	page_pool_drain(s);
	u64map_clear(&s->touched);
	if (s->db && (s->flags & STORE_OPEN_EXCLUSIVE) && !(s->flags & STORE_OPEN_RDONLY))
		index_compact(s);
	idx_db_close(s->db);
	pack_writer_free(s->pw);
	/* Every flush has ended here, so nothing is retired any more; free defensively. */
	for (size_t i = 0; i < s->npw_retired; i++)
		pack_writer_free(s->pw_retired[i].pw);
	free(s->pw_retired);
	for (uint32_t i = 0; i < s->npack_fds; i++)
		if (s->pack_fds[i] >= 0)
			close(s->pack_fds[i]);
	free(s->pack_fds);
	if (s->usersfd >= 0)
		close(s->usersfd);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->flushed);
	pthread_cond_destroy(&s->flusher_wake);
	pthread_mutex_destroy(&s->pack_mu);
	pthread_rwlock_destroy(&s->fds_lock);
	free(s->path);
	free(s);
}

int store_statfs(struct store *s, struct statvfs *ret_st)
{
	struct statvfs st;
	struct idx_txn *txn = NULL;
	uint64_t ninodes = 0;
	int r;

	if (fstatvfs(s->dirfd, &st) < 0)
		return store_error(-errno, "statfs '%s': %m", s->path);
	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = idx_count(txn, IDX_INODES, &ninodes);
	idx_txn_abort(txn);
	if (r < 0)
		return r;
	/* Report in 4 KiB blocks (our chunk size) so tools compute sizes the same way. */
	uint64_t scale = st.f_frsize ? st.f_frsize : st.f_bsize;
	ret_st->f_bsize = STORE_CHUNK_SIZE;
	ret_st->f_frsize = STORE_CHUNK_SIZE;
	ret_st->f_blocks = st.f_blocks * scale / STORE_CHUNK_SIZE;
	ret_st->f_bfree = st.f_bfree * scale / STORE_CHUNK_SIZE;
	ret_st->f_bavail = st.f_bavail * scale / STORE_CHUNK_SIZE;
	ret_st->f_files = ninodes + st.f_ffree;
	ret_st->f_ffree = st.f_ffree;
	ret_st->f_favail = st.f_favail;
	ret_st->f_fsid = st.f_fsid;
	ret_st->f_flag = st.f_flag;
	ret_st->f_namemax = 255;
	return 0;
}
