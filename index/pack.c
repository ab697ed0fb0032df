// SPDX-License-Identifier: MIT
#include "index/pack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"
#include "index/compress.h"
#include "index/store_priv.h"

struct pack_writer {
	int fd;
	uint32_t number;
	uint64_t size;
	bool deferred; /* header says PACK_VERSION_DEFER */
};

void pack_path(uint32_t number, char *buf, size_t len)
{
	snprintf(buf, len, PACK_DIR "/%08u.pack", number);
}

int pack_record_encode(const struct chunk_id *id, const void *page, uint8_t *rec,
		       uint32_t *ret_desc)
{
	ssize_t n = compress_page(page, rec + PACK_REC_HDR_LEN, STORE_CHUNK_SIZE);
	uint32_t desc;

	if (n < 0)
		return (int)n;
	if (n == 0) {
		memcpy(rec + PACK_REC_HDR_LEN, page, STORE_CHUNK_SIZE);
		desc = pack_desc(STORE_CHUNK_SIZE, PACK_CODEC_RAW);
	} else {
		desc = pack_desc((uint32_t)n, PACK_CODEC_ZSTD);
	}
	memcpy(rec, id->b, STORE_CHUNK_ID_LEN);
	le32_put(rec + STORE_CHUNK_ID_LEN, desc);
	*ret_desc = desc;
	return (int)(PACK_REC_HDR_LEN + pack_desc_len(desc));
}

int pack_record_encode_deferred(const struct chunk_id *id, const void *page, uint8_t *rec,
				uint32_t *ret_desc)
{
	uint32_t desc = pack_desc(STORE_CHUNK_SIZE, PACK_CODEC_DEFER);

	memcpy(rec, id->b, STORE_CHUNK_ID_LEN);
	le32_put(rec + STORE_CHUNK_ID_LEN, desc);
	memcpy(rec + PACK_REC_HDR_LEN, page, STORE_CHUNK_SIZE);
	*ret_desc = desc;
	return (int)PACK_MAX_REC_LEN;
}

int pack_writer_create(int store_dirfd, uint32_t number, struct pack_writer **ret)
{
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int dfd = -1;
	uint8_t hdr[PACK_HEADER_LEN];
	struct pack_writer *w;
	char path[64];
	int r;

	pack_path(number, path, sizeof(path));
	fd = openat(store_dirfd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return store_error(-errno, "create pack '%s': %m", path);
	/* Held for the writer's lifetime: gc must not rewrite a pack that is still growing. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return store_error(-errno, "lock pack '%s': %m", path);
	memcpy(hdr, PACK_MAGIC, 8);
	le32_put(hdr + 8, PACK_VERSION);
	le32_put(hdr + 12, number);
	r = pwrite_full(fd, hdr, sizeof(hdr), 0);
	if (r < 0)
		return store_error(r, "write pack header '%s': %s", path, strerror(-r));
	if (fsync(fd) < 0)
		return store_error(-errno, "fsync pack '%s': %m", path);
	/* The new name must be durable too, or a crash could lose a pack the index points to. */
	dfd = openat(store_dirfd, PACK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		return store_error(-errno, "fsync directory '" PACK_DIR "': %m");
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = TAKE_FD(fd);
	w->number = number;
	w->size = PACK_HEADER_LEN;
	*ret = w;
	return 0;
}

void pack_writer_free(struct pack_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

uint32_t pack_writer_number(const struct pack_writer *w)
{
	return w->number;
}

uint64_t pack_writer_size(const struct pack_writer *w)
{
	return w->size;
}

int pack_writer_append(struct pack_writer *w, const void *recs, size_t len, uint64_t *ret_off)
{
	char path[64];
	int r;

	r = pwrite_full(w->fd, recs, len, w->size);
	if (r < 0) {
		/* Best effort: cut a partial append off so the next one starts on a boundary. */
		(void)ftruncate(w->fd, (off_t)w->size);
		pack_path(w->number, path, sizeof(path));
		return store_error(r, "append %zu bytes to pack '%s': %s", len, path, strerror(-r));
	}
	/* Start writeback now, without waiting: the fdatasync before the index commit then finds
	 * most of these pages already on their way to disk. */
	(void)sync_file_range(w->fd, (off_t)w->size, (off_t)len, SYNC_FILE_RANGE_WRITE);
	*ret_off = w->size;
	w->size += len;
	return 0;
}

int pack_writer_appendv(struct pack_writer *w, const struct iovec *iov, int iovcnt, size_t len,
			uint64_t *ret_off)
{
	uint64_t done = 0;
	char path[64];
	int r = 0;

	/* pwritev may write less than asked: finish the rest piece by piece. */
	while (done < len) {
		ssize_t n;
		uint64_t skip = done;
		int first = 0;

		while (first < iovcnt && skip >= iov[first].iov_len) {
			skip -= iov[first].iov_len;
			first++;
		}
		if (skip) {
			r = pwrite_full(w->fd, (const uint8_t *)iov[first].iov_base + skip,
					iov[first].iov_len - skip, w->size + done);
			if (r < 0)
				break;
			done += iov[first].iov_len - skip;
			continue;
		}
		n = pwritev(w->fd, iov + first, MIN(iovcnt - first, IOV_MAX),
			    (off_t)(w->size + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0) {
			r = -EIO;
			break;
		}
		done += (uint64_t)n;
	}
	if (r < 0) {
		(void)ftruncate(w->fd, (off_t)w->size);
		pack_path(w->number, path, sizeof(path));
		return store_error(r, "append %zu bytes to pack '%s': %s", len, path, strerror(-r));
	}
	(void)sync_file_range(w->fd, (off_t)w->size, (off_t)len, SYNC_FILE_RANGE_WRITE);
	*ret_off = w->size;
	w->size += len;
	return 0;
}

int pack_writer_sync(struct pack_writer *w)
{
	char path[64];

	if (fdatasync(w->fd) < 0) {
		int r = -errno;
		pack_path(w->number, path, sizeof(path));
		return store_error(r, "fdatasync pack '%s': %s", path, strerror(-r));
	}
	return 0;
}

int pack_writer_mark_deferred(struct pack_writer *w)
{
	uint8_t v[4];
	int r;

	if (w->deferred)
		return 0;
	/* Four bytes inside the first sector: a crash leaves either version. The next fdatasync
	 * makes it durable together with the deferred records behind it, and nothing indexes
	 * those before that sync. */
	le32_put(v, PACK_VERSION_DEFER);
	r = pwrite_full(w->fd, v, sizeof(v), 8);
	if (r < 0) {
		char path[64];

		pack_path(w->number, path, sizeof(path));
		return store_error(r, "mark pack '%s' as holding deferred records: %s", path,
				   strerror(-r));
	}
	w->deferred = true;
	return 0;
}

static int pack_check_header(int fd, uint32_t number, const char *path, uint32_t *ret_version)
{
	uint8_t hdr[PACK_HEADER_LEN];
	uint32_t version;
	int r;

	r = pread_full(fd, hdr, sizeof(hdr), 0);
	if (r < 0)
		return store_error(r, "pack '%s': cannot read header: %s", path,
				   r == -EBADMSG ? "truncated" : strerror(-r));
	if (memcmp(hdr, PACK_MAGIC, 8) != 0)
		return store_error(-EBADMSG, "pack '%s': bad magic", path);
	version = le32_get(hdr + 8);
	if (version != PACK_VERSION && version != PACK_VERSION_DEFER)
		return store_error(
			-EOPNOTSUPP,
			"pack '%s': format version %u, this build reads version %u (and %u "
			"for packs with deferred records)",
			path, version, PACK_VERSION, PACK_VERSION_DEFER);
	if (le32_get(hdr + 12) != number)
		return store_error(-EBADMSG, "pack '%s': header says pack number %u", path,
				   le32_get(hdr + 12));
	if (ret_version)
		*ret_version = version;
	return 0;
}

int pack_open_read(int store_dirfd, uint32_t number, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	char path[64];
	int r;

	pack_path(number, path, sizeof(path));
	fd = openat(store_dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return store_error(-errno, "open pack '%s': %m", path);
	r = pack_check_header(fd, number, path, NULL);
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int pack_decode_payload(uint32_t desc, const void *payload, void *page)
{
	uint32_t len = pack_desc_len(desc);

	switch (pack_desc_codec(desc)) {
	case PACK_CODEC_RAW:
	case PACK_CODEC_DEFER:
		if (len != STORE_CHUNK_SIZE)
			return -EBADMSG;
		memcpy(page, payload, STORE_CHUNK_SIZE);
		return 0;
	case PACK_CODEC_ZSTD:
		if (len == 0 || len > STORE_CHUNK_SIZE)
			return -EBADMSG;
		return decompress_page(payload, len, page);
	default:
		return -EBADMSG;
	}
}

int pack_check_record(const uint8_t *rec, uint32_t number, uint64_t off, uint32_t desc,
		      const struct chunk_id *id, const uint8_t secret[CHUNK_SECRET_LEN], void *page)
{
	struct chunk_id got;
	char hex[CHUNK_ID_HEX_LEN], path[64];
	int r;

	pack_path(number, path, sizeof(path));
	if (memcmp(rec, id->b, STORE_CHUNK_ID_LEN) != 0 ||
	    le32_get(rec + STORE_CHUNK_ID_LEN) != desc)
		return store_error(-EBADMSG,
				   "chunk %s: pack '%s' offset %llu: record header does not match "
				   "the index",
				   chunk_id_to_hex(id->b, hex), path, (unsigned long long)off);
	r = pack_decode_payload(desc, rec + PACK_REC_HDR_LEN, page);
	if (r < 0)
		return store_error(-EBADMSG,
				   "chunk %s: pack '%s' offset %llu: payload does not decode",
				   chunk_id_to_hex(id->b, hex), path, (unsigned long long)off);
	chunk_id_compute(secret, page, &got);
	if (!chunk_id_equal(&got, id))
		return store_error(-EBADMSG,
				   "chunk %s: pack '%s' offset %llu: content hash mismatch",
				   chunk_id_to_hex(id->b, hex), path, (unsigned long long)off);
	return 0;
}

int pack_read_chunk(int fd, uint32_t number, uint64_t off, uint32_t desc, const struct chunk_id *id,
		    const uint8_t secret[CHUNK_SECRET_LEN], void *page)
{
	uint8_t rec[PACK_MAX_REC_LEN];
	uint32_t len = pack_desc_len(desc);
	char hex[CHUNK_ID_HEX_LEN], path[64];
	int r;

	pack_path(number, path, sizeof(path));
	if (len > STORE_CHUNK_SIZE)
		return store_error(-EBADMSG, "chunk %s: index gives length %u in pack '%s'",
				   chunk_id_to_hex(id->b, hex), len, path);
	r = pread_full(fd, rec, PACK_REC_HDR_LEN + len, off);
	if (r < 0)
		return store_error(r, "chunk %s: pack '%s' offset %llu: read failed: %s",
				   chunk_id_to_hex(id->b, hex), path, (unsigned long long)off,
				   r == -EBADMSG ? "pack too short" : strerror(-r));
	return pack_check_record(rec, number, off, desc, id, secret, page);
}

#define SCAN_BUF (1u << 20)

/* Whether a record descriptor read from a pack of this version is possible at all. */
static bool pack_desc_valid(uint32_t desc, uint32_t version)
{
	uint32_t len = pack_desc_len(desc);

	if ((desc >> 28) != 0)
		return false;
	switch (pack_desc_codec(desc)) {
	case PACK_CODEC_RAW:
		return len == STORE_CHUNK_SIZE;
	case PACK_CODEC_ZSTD:
		return len > 0 && len <= STORE_CHUNK_SIZE;
	case PACK_CODEC_DEFER:
		return version >= PACK_VERSION_DEFER && len == STORE_CHUNK_SIZE;
	default:
		return false;
	}
}

int pack_scan(int fd, uint32_t number, pack_scan_cb cb, void *ctx, uint64_t *ret_end)
{
	_cleanup_free_ uint8_t *buf = NULL;
	char path[64];
	uint64_t buf_off = 0, pos = PACK_HEADER_LEN;
	size_t buf_len = 0;
	uint32_t version;
	int r;

	pack_path(number, path, sizeof(path));
	r = pack_check_header(fd, number, path, &version);
	if (r < 0)
		return r;
	buf = malloc(SCAN_BUF);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		uint64_t rel;
		uint32_t desc, len;
		struct chunk_id id;

		/* Refill so that a whole record (header + max payload) is in the buffer. */
		if (pos < buf_off || pos + PACK_MAX_REC_LEN > buf_off + buf_len) {
			ssize_t n;
			size_t got = 0;

			buf_off = pos;
			while (got < SCAN_BUF) {
				n = pread(fd, buf + got, SCAN_BUF - got, (off_t)(buf_off + got));
				if (n < 0) {
					if (errno == EINTR)
						continue;
					return store_error(-errno, "scan pack '%s': %m", path);
				}
				if (n == 0)
					break;
				got += (size_t)n;
			}
			buf_len = got;
		}
		rel = pos - buf_off;
		if (rel + PACK_REC_HDR_LEN > buf_len)
			break;
		memcpy(id.b, buf + rel, STORE_CHUNK_ID_LEN);
		desc = le32_get(buf + rel + STORE_CHUNK_ID_LEN);
		len = pack_desc_len(desc);
		if (!pack_desc_valid(desc, version)) {
			/* Past a torn tail or a damaged header, lengths can no longer be trusted.
			 */
			if (ret_end)
				*ret_end = pos;
			return store_error(-EBADMSG, "pack '%s' offset %llu: bad record descriptor",
					   path, (unsigned long long)pos);
		}
		if (rel + PACK_REC_HDR_LEN + len > buf_len)
			break; /* torn tail */
		r = cb(ctx, &id, pos, desc, buf + rel + PACK_REC_HDR_LEN);
		if (r < 0)
			return r;
		pos += PACK_REC_HDR_LEN + len;
		if (r > 0)
			break;
	}
	if (ret_end)
		*ret_end = pos;
	return 0;
}
