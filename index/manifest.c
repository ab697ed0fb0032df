// SPDX-License-Identifier: MIT
#include "index/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/util.h"
#include "index/store_priv.h"

struct mbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static uint8_t *mbuf_grow(struct mbuf *b, size_t n)
{
	uint8_t *at;

	if (b->err)
		return NULL;
	if (b->len + n > b->cap) {
		size_t ncap = MAX(b->cap * 2, b->len + n + 4096);
		uint8_t *np = realloc(b->p, ncap);

		if (!np) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->p = np;
		b->cap = ncap;
	}
	at = b->p + b->len;
	b->len += n;
	return at;
}

static void put_bytes(struct mbuf *b, const void *d, size_t n)
{
	uint8_t *at = mbuf_grow(b, n);

	if (at && n)
		memcpy(at, d, n);
}
static void put_u8(struct mbuf *b, uint8_t v)
{
	put_bytes(b, &v, 1);
}
static void put_u16(struct mbuf *b, uint16_t v)
{
	uint8_t *at = mbuf_grow(b, 2);
	if (at)
		le16_put(at, v);
}
static void put_u32(struct mbuf *b, uint32_t v)
{
	uint8_t *at = mbuf_grow(b, 4);
	if (at)
		le32_put(at, v);
}
static void put_u64(struct mbuf *b, uint64_t v)
{
	uint8_t *at = mbuf_grow(b, 8);
	if (at)
		le64_put(at, v);
}
static void put_ts(struct mbuf *b, const struct timespec *ts)
{
	put_u64(b, (uint64_t)ts->tv_sec);
	put_u32(b, (uint32_t)ts->tv_nsec);
}

struct walk {
	struct idx_txn *txn;
	struct mbuf b;
	struct u64map seen; /* ino -> (void *)(uintptr_t)id */
	uint32_t next_id;
};

static int emit_xattrs(struct walk *w, uint64_t ino)
{
	struct idx_cursor *c = NULL;
	uint8_t k[8];
	const void *key, *val;
	size_t klen, vlen, count_at;
	uint32_t n = 0;
	int r;

	count_at = w->b.len;
	put_u32(&w->b, 0);
	r = idx_cursor_open(w->txn, IDX_XATTRS, &c);
	if (r < 0)
		return r;
	ino_key(k, ino);
	for (r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		if (klen <= 8 || memcmp(key, k, 8) != 0)
			break;
		put_u8(&w->b, (uint8_t)(klen - 8));
		put_bytes(&w->b, (const uint8_t *)key + 8, klen - 8);
		put_u32(&w->b, (uint32_t)vlen);
		put_bytes(&w->b, val, vlen);
		n++;
	}
	idx_cursor_close(c);
	if (r < 0 && r != -ENOENT)
		return r;
	if (w->b.err)
		return w->b.err;
	le32_put(w->b.p + count_at, n);
	return 0;
}

static int emit_chunks(struct walk *w, uint64_t ino)
{
	struct idx_cursor *c = NULL;
	uint8_t k[FMAP_KEY_LEN];
	const void *key, *val;
	size_t klen, vlen, nruns_at, count_at = 0;
	uint64_t nruns = 0, expect = UINT64_MAX;
	uint32_t count = 0;
	int r;

	nruns_at = w->b.len;
	put_u64(&w->b, 0);
	r = idx_cursor_open(w->txn, IDX_FMAP, &c);
	if (r < 0)
		return r;
	fmap_key(k, ino, 0);
	for (r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		uint64_t block;

		if (klen != FMAP_KEY_LEN || be64_get(key) != ino)
			break;
		block = be64_get((const uint8_t *)key + 8);
		for (size_t i = 0; i < vlen / STORE_CHUNK_ID_LEN; i++) {
			struct chunk_id id;
			uint64_t idx = block * FMAP_SLOTS + i;

			memcpy(id.b, (const uint8_t *)val + i * STORE_CHUNK_ID_LEN,
			       STORE_CHUNK_ID_LEN);
			if (chunk_id_is_null(&id))
				continue;
			if (idx != expect || count == UINT32_MAX) {
				if (count && !w->b.err)
					le32_put(w->b.p + count_at, count);
				put_u64(&w->b, idx);
				count_at = w->b.len;
				put_u32(&w->b, 0);
				count = 0;
				nruns++;
			}
			put_bytes(&w->b, id.b, STORE_CHUNK_ID_LEN);
			count++;
			expect = idx + 1;
		}
	}
	idx_cursor_close(c);
	if (r < 0 && r != -ENOENT)
		return r;
	if (w->b.err)
		return w->b.err;
	if (count)
		le32_put(w->b.p + count_at, count);
	le64_put(w->b.p + nruns_at, nruns);
	return 0;
}

static int walk_entry(struct walk *w, uint64_t ino, uint32_t parent_id, const char *name,
		      size_t name_len, unsigned depth)
{
	struct inode in;
	uint32_t id = w->next_id++;
	void *seen;
	int r;

	if (depth > 4096)
		return -ELOOP;
	put_u32(&w->b, id);
	put_u32(&w->b, parent_id);
	put_u16(&w->b, (uint16_t)name_len);
	put_bytes(&w->b, name, name_len);
	seen = u64map_get(&w->seen, ino);
	if (seen) {
		put_u8(&w->b, 0);
		put_u32(&w->b, (uint32_t)(uintptr_t)seen);
		return w->b.err;
	}
	r = ino_load(w->txn, ino, &in);
	if (r < 0)
		return r;
	if (in.nlink > 1 && !S_ISDIR(in.mode)) {
		r = u64map_put(&w->seen, ino, (void *)(uintptr_t)id);
		if (r < 0)
			goto out;
	}
	put_u8(&w->b, 1);
	put_u32(&w->b, in.mode);
	put_u32(&w->b, in.uid);
	put_u32(&w->b, in.gid);
	put_u64(&w->b, in.size);
	put_u64(&w->b, in.rdev);
	put_ts(&w->b, &in.atime);
	put_ts(&w->b, &in.mtime);
	put_ts(&w->b, &in.ctime);
	r = emit_xattrs(w, ino);
	if (r < 0)
		goto out;
	if (S_ISLNK(in.mode)) {
		put_u32(&w->b, (uint32_t)in.target_len);
		put_bytes(&w->b, in.target, in.target_len);
	} else if (S_ISREG(in.mode)) {
		r = emit_chunks(w, ino);
		if (r < 0)
			goto out;
	} else if (S_ISDIR(in.mode)) {
		/* Children in name order: the dirents key (parent, name) sorts exactly so. */
		struct dir_child *kids = NULL;
		size_t n = 0;

		r = dir_list_children(w->txn, ino, &kids, &n);
		for (size_t i = 0; i < n && r >= 0; i++)
			r = walk_entry(w, kids[i].ino, id, kids[i].name, kids[i].len, depth + 1);
		free(kids);
	}
	if (r >= 0)
		r = w->b.err;
out:
	inode_done(&in);
	return r;
}

int manifest_build(struct idx_txn *txn, uint64_t ckpt_ino, const char *name, uint8_t **ret_body,
		   size_t *ret_len, uint8_t ret_content_id[STORE_CONTENT_ID_LEN])
{
	struct walk w = {.txn = txn, .next_id = 1};
	size_t name_len = strlen(name), entries_at;
	int r;

	put_u16(&w.b, (uint16_t)name_len);
	put_bytes(&w.b, name, name_len);
	entries_at = w.b.len;
	r = walk_entry(&w, ckpt_ino, 0, "", 0, 0);
	u64map_clear(&w.seen);
	if (r >= 0)
		r = w.b.err;
	if (r < 0) {
		free(w.b.p);
		return r;
	}
	content_hash(w.b.p + entries_at, w.b.len - entries_at, ret_content_id);
	*ret_body = w.b.p;
	*ret_len = w.b.len;
	return 0;
}

int manifest_write(int store_dirfd, uint64_t ckpt_ino, uint32_t flags, const uint8_t *body,
		   size_t len, const uint8_t content_id[STORE_CONTENT_ID_LEN])
{
	_cleanup_free_ uint8_t *out = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int dfd = -1;
	char path[96], tmp[112];
	size_t cap = MANIFEST_HEADER_LEN + ZSTD_compressBound(len), n;
	int r;

	out = malloc(cap);
	if (!out)
		return -ENOMEM;
	memcpy(out, MANIFEST_MAGIC, 8);
	le32_put(out + 8, MANIFEST_VERSION);
	le32_put(out + 12, flags);
	le64_put(out + 16, ckpt_ino);
	le64_put(out + 24, len);
	memcpy(out + 32, content_id, STORE_CONTENT_ID_LEN);
	n = ZSTD_compress(out + MANIFEST_HEADER_LEN, cap - MANIFEST_HEADER_LEN, body, len, 3);
	if (ZSTD_isError(n))
		return store_error(-EIO, "compress manifest of checkpoint %llu",
				   (unsigned long long)ckpt_ino);
	snprintf(path, sizeof(path), STORE_MANIFEST_DIR "/%llu.manifest",
		 (unsigned long long)ckpt_ino);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = openat(store_dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return store_error(-errno, "create manifest '%s': %m", tmp);
	r = write_full(fd, out, MANIFEST_HEADER_LEN + n);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlinkat(store_dirfd, tmp, 0);
		return store_error(r, "write manifest '%s': %s", tmp, strerror(-r));
	}
	if (renameat(store_dirfd, tmp, store_dirfd, path) < 0) {
		r = -errno;
		(void)unlinkat(store_dirfd, tmp, 0);
		return store_error(r, "rename manifest to '%s': %s", path, strerror(-r));
	}
	dfd = openat(store_dirfd, STORE_MANIFEST_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		return store_error(-errno, "fsync directory '" STORE_MANIFEST_DIR "': %m");
	return 0;
}

int manifest_read(int store_dirfd, const char *relpath, struct manifest_header *ret_hdr,
		  uint8_t **ret_body, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *raw = NULL;
	_cleanup_free_ uint8_t *body = NULL;
	struct manifest_header h;
	uint8_t id[STORE_CONTENT_ID_LEN];
	struct stat st;
	size_t n, name_len;
	int r;

	fd = openat(store_dirfd, relpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return store_error(-errno, "open manifest '%s': %m", relpath);
	if (fstat(fd, &st) < 0)
		return store_error(-errno, "stat manifest '%s': %m", relpath);
	if ((uint64_t)st.st_size < MANIFEST_HEADER_LEN)
		return store_error(-EBADMSG, "manifest '%s' is truncated", relpath);
	raw = malloc((size_t)st.st_size);
	if (!raw)
		return -ENOMEM;
	r = pread_full(fd, raw, (size_t)st.st_size, 0);
	if (r < 0)
		return store_error(r, "read manifest '%s': %s", relpath, strerror(-r));
	if (memcmp(raw, MANIFEST_MAGIC, 8) != 0)
		return store_error(-EBADMSG, "manifest '%s': bad magic", relpath);
	h.version = le32_get(raw + 8);
	if (h.version != MANIFEST_VERSION)
		return store_error(
			-EOPNOTSUPP,
			"manifest '%s' has format version %u; this build reads version %u", relpath,
			h.version, MANIFEST_VERSION);
	h.flags = le32_get(raw + 12);
	h.ckpt_ino = le64_get(raw + 16);
	h.body_len = le64_get(raw + 24);
	memcpy(h.content_id, raw + 32, STORE_CONTENT_ID_LEN);
	if (h.body_len < 2 || h.body_len > MANIFEST_MAX_BODY)
		return store_error(-EBADMSG, "manifest '%s': implausible body length %llu", relpath,
				   (unsigned long long)h.body_len);
	body = malloc(h.body_len);
	if (!body)
		return -ENOMEM;
	n = ZSTD_decompress(body, h.body_len, raw + MANIFEST_HEADER_LEN,
			    (size_t)st.st_size - MANIFEST_HEADER_LEN);
	if (ZSTD_isError(n) || n != h.body_len)
		return store_error(-EBADMSG, "manifest '%s': body does not decompress", relpath);
	name_len = le16_get(body);
	if (2 + name_len > n)
		return store_error(-EBADMSG, "manifest '%s': truncated name", relpath);
	content_hash(body + 2 + name_len, n - 2 - name_len, id);
	if (memcmp(id, h.content_id, sizeof(id)) != 0)
		return store_error(-EBADMSG, "manifest '%s': content id mismatch", relpath);
	*ret_hdr = h;
	*ret_body = TAKE_PTR(body);
	*ret_len = n;
	return 0;
}

struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	const uint8_t *at = r->p;

	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return at;
}
static uint8_t get_u8(struct rd *r)
{
	const uint8_t *p = take(r, 1);
	return p ? *p : 0;
}
static uint16_t get_u16(struct rd *r)
{
	const uint8_t *p = take(r, 2);
	return p ? le16_get(p) : 0;
}
static uint32_t get_u32(struct rd *r)
{
	const uint8_t *p = take(r, 4);
	return p ? le32_get(p) : 0;
}
static uint64_t get_u64(struct rd *r)
{
	const uint8_t *p = take(r, 8);
	return p ? le64_get(p) : 0;
}
static void get_ts(struct rd *r, struct timespec *ts)
{
	ts->tv_sec = (time_t)get_u64(r);
	ts->tv_nsec = (long)get_u32(r);
	if (ts->tv_nsec >= 1000000000L)
		r->bad = true;
}

int manifest_parse(const uint8_t *body, size_t len, const struct manifest_ops *ops, void *ctx,
		   char *ret_name)
{
	struct rd rd = {.p = body, .left = len};
	uint16_t nlen = get_u16(&rd);
	const uint8_t *name = take(&rd, nlen);
	uint32_t expect_id = 1;
	int r;

	if (rd.bad || nlen > 255)
		return store_error(-EBADMSG, "manifest: bad checkpoint name");
	if (ret_name) {
		memcpy(ret_name, name, nlen);
		ret_name[nlen] = '\0';
	}
	while (rd.left > 0) {
		struct manifest_entry e;
		const uint8_t *p;

		memset(&e, 0, sizeof(e));
		e.id = get_u32(&rd);
		e.parent_id = get_u32(&rd);
		nlen = get_u16(&rd);
		p = take(&rd, nlen);
		if (rd.bad || nlen > 255 || e.id != expect_id || e.parent_id >= e.id ||
		    (e.id == 1) != (e.parent_id == 0) || (e.id > 1 && nlen == 0))
			return store_error(-EBADMSG, "manifest: bad entry header near id %u",
					   expect_id);
		expect_id++;
		memcpy(e.name, p, nlen);
		e.name[nlen] = '\0';
		switch (get_u8(&rd)) {
		case 0:
			e.is_link = true;
			e.link_to = get_u32(&rd);
			if (rd.bad || e.link_to == 0 || e.link_to >= e.id)
				return store_error(-EBADMSG, "manifest: bad hard link in entry %u",
						   e.id);
			if (ops->entry && (r = ops->entry(ctx, &e)) < 0)
				return r;
			continue;
		case 1:
			break;
		default:
			return store_error(-EBADMSG, "manifest: bad entry kind in entry %u", e.id);
		}
		e.mode = get_u32(&rd);
		e.uid = get_u32(&rd);
		e.gid = get_u32(&rd);
		e.size = get_u64(&rd);
		e.rdev = get_u64(&rd);
		get_ts(&rd, &e.atime);
		get_ts(&rd, &e.mtime);
		get_ts(&rd, &e.ctime);
		uint32_t nx = get_u32(&rd);
		const uint8_t *xstart = rd.p;
		size_t xleft = rd.left;
		/* Attributes of the symlink target come after the xattrs: skip them first. */
		for (uint32_t i = 0; i < nx && !rd.bad; i++) {
			uint8_t xn = get_u8(&rd);
			take(&rd, xn);
			take(&rd, get_u32(&rd));
		}
		if (S_ISLNK(e.mode)) {
			e.target_len = get_u32(&rd);
			e.target = (const char *)take(&rd, e.target_len);
		}
		if (rd.bad || (e.id == 1 && !S_ISDIR(e.mode)))
			return store_error(-EBADMSG, "manifest: truncated entry %u", e.id);
		if (ops->entry && (r = ops->entry(ctx, &e)) < 0)
			return r;
		struct rd xr = {.p = xstart, .left = xleft};
		for (uint32_t i = 0; i < nx; i++) {
			uint8_t xn = get_u8(&xr);
			const uint8_t *xname = take(&xr, xn);
			uint32_t vl = get_u32(&xr);
			const uint8_t *v = take(&xr, vl);

			if (ops->xattr &&
			    (r = ops->xattr(ctx, e.id, (const char *)xname, xn, v, vl)) < 0)
				return r;
		}
		if (S_ISREG(e.mode)) {
			uint64_t nruns = get_u64(&rd), last_end = 0;

			for (uint64_t i = 0; i < nruns; i++) {
				uint64_t first = get_u64(&rd), end;
				uint32_t count = get_u32(&rd);

				if (rd.bad || count == 0 || add_overflows_u64(first, count, &end) ||
				    first < last_end ||
				    end > (e.size + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE)
					return store_error(-EBADMSG,
							   "manifest: bad chunk run in entry %u",
							   e.id);
				last_end = end;
				for (uint32_t j = 0; j < count; j++) {
					struct chunk_id id;
					const uint8_t *ip = take(&rd, STORE_CHUNK_ID_LEN);

					if (!ip)
						return store_error(
							-EBADMSG,
							"manifest: truncated chunk list in "
							"entry %u",
							e.id);
					memcpy(id.b, ip, STORE_CHUNK_ID_LEN);
					if (ops->chunk &&
					    (r = ops->chunk(ctx, e.id, first + j, &id)) < 0)
						return r;
				}
			}
		}
	}
	return 0;
}
