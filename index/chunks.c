// SPDX-License-Identifier: MIT
/*
 * chunks.c - chunk references in the index (refcounts, file maps, inode destruction) and the
 * verified read of one chunk from its pack (with the retry when gc moved it).
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "index/pack.h"
#include "index/store_priv.h"

int chunk_lookup(struct idx_txn *txn, const struct chunk_id *id, struct chunk_loc *loc)
{
	const void *v;
	size_t vlen;
	char hex[CHUNK_ID_HEX_LEN];
	int r = idx_get(txn, IDX_CHUNKS, id->b, STORE_CHUNK_ID_LEN, &v, &vlen);

	if (r < 0)
		return r;
	if (vlen != CHUNK_VAL_LEN)
		return store_error(-EBADMSG, "chunk %s: index record has %zu bytes",
				   chunk_id_to_hex(id->b, hex), vlen);
	chunk_val_decode(v, loc);
	return 0;
}

static int chunk_add_refs(struct idx_txn *txn, const struct chunk_id *id, int delta,
			  uint32_t *ret_len)
{
	struct chunk_loc loc;
	uint8_t v[CHUNK_VAL_LEN];
	char hex[CHUNK_ID_HEX_LEN];
	int r = chunk_lookup(txn, id, &loc);

	if (r < 0)
		return r;
	if (delta < 0 && loc.refs == 0)
		return store_error(-EUCLEAN, "chunk %s: reference count would drop below zero",
				   chunk_id_to_hex(id->b, hex));
	loc.refs += (uint64_t)(int64_t)delta;
	chunk_val_encode(v, &loc);
	r = idx_put(txn, IDX_CHUNKS, id->b, STORE_CHUNK_ID_LEN, v, sizeof(v), 0);
	if (r < 0)
		return r;
	if (ret_len)
		*ret_len = rec_bytes(loc.desc);
	return 0;
}

int chunk_ref(struct idx_txn *txn, const struct chunk_id *id, uint32_t *ret_len)
{
	return chunk_add_refs(txn, id, 1, ret_len);
}

int chunk_unref(struct idx_txn *txn, const struct chunk_id *id, uint32_t *ret_len)
{
	return chunk_add_refs(txn, id, -1, ret_len);
}

int fmap_drop_from(struct idx_txn *txn, uint64_t ino, uint64_t first, uint64_t *ret_freed)
{
	struct idx_cursor *c = NULL;
	uint8_t k[FMAP_KEY_LEN];
	const void *key, *val;
	size_t klen, vlen;
	uint64_t freed = 0;
	struct {
		uint64_t block;
		uint32_t nslots;
		uint8_t ids[FMAP_SLOTS * STORE_CHUNK_ID_LEN];
	} *blk = NULL;
	int r;

	blk = malloc(sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	fmap_key(k, ino, first / FMAP_SLOTS);
	/* Cursor walk with in-place changes: every block from the one holding 'first' on. */
	for (;;) {
		uint64_t keep;

		r = idx_cursor_open(txn, IDX_FMAP, &c);
		if (r < 0)
			break;
		r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, &val, &vlen);
		if (r < 0 || klen != FMAP_KEY_LEN || be64_get(key) != ino) {
			if (r == -ENOENT || r >= 0)
				r = 0;
			break;
		}
		if (vlen % STORE_CHUNK_ID_LEN || vlen > sizeof(blk->ids)) {
			r = store_error(-EBADMSG, "inode %llu: file map record of %zu bytes",
					(unsigned long long)ino, vlen);
			break;
		}
		blk->block = be64_get((const uint8_t *)key + 8);
		blk->nslots = (uint32_t)(vlen / STORE_CHUNK_ID_LEN);
		memcpy(blk->ids, val, vlen);
		idx_cursor_close(c);
		c = NULL;

		keep = blk->block * FMAP_SLOTS >= first ? 0 : first - blk->block * FMAP_SLOTS;
		for (uint32_t i = (uint32_t)keep; i < blk->nslots; i++) {
			struct chunk_id id;
			uint32_t len;

			memcpy(id.b, blk->ids + i * STORE_CHUNK_ID_LEN, STORE_CHUNK_ID_LEN);
			if (chunk_id_is_null(&id))
				continue;
			r = chunk_unref(txn, &id, &len);
			if (r < 0)
				goto out;
			freed += len;
		}
		fmap_key(k, ino, blk->block);
		if (keep == 0)
			r = idx_del(txn, IDX_FMAP, k, sizeof(k));
		else if (keep < blk->nslots)
			r = idx_put(txn, IDX_FMAP, k, sizeof(k), blk->ids,
				    keep * STORE_CHUNK_ID_LEN, 0);
		if (r < 0)
			goto out;
		fmap_key(k, ino, blk->block + 1);
	}
out:
	idx_cursor_close(c);
	free(blk);
	if (r >= 0 && ret_freed)
		*ret_freed = freed;
	return r;
}

int fmap_block_load(struct idx_txn *txn, uint64_t ino, uint64_t block, uint8_t *ids)
{
	uint8_t k[FMAP_KEY_LEN];
	const void *v;
	size_t vlen;
	int r;

	memset(ids, 0, FMAP_BLOCK_LEN);
	fmap_key(k, ino, block);
	r = idx_get(txn, IDX_FMAP, k, sizeof(k), &v, &vlen);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (vlen % STORE_CHUNK_ID_LEN || vlen > FMAP_BLOCK_LEN)
		return store_error(-EBADMSG, "inode %llu: file map block %llu has %zu bytes",
				   (unsigned long long)ino, (unsigned long long)block, vlen);
	memcpy(ids, v, vlen);
	return 0;
}

size_t fmap_block_used(const uint8_t *ids)
{
	size_t used;

	for (used = FMAP_SLOTS; used > 0; used--) {
		struct chunk_id t;

		memcpy(t.b, ids + (used - 1) * STORE_CHUNK_ID_LEN, STORE_CHUNK_ID_LEN);
		if (!chunk_id_is_null(&t))
			break;
	}
	return used;
}

int fmap_block_store(struct idx_txn *txn, uint64_t ino, uint64_t block, const uint8_t *ids)
{
	size_t used = fmap_block_used(ids);
	uint8_t k[FMAP_KEY_LEN];
	int r;

	fmap_key(k, ino, block);
	if (used == 0) {
		r = idx_del(txn, IDX_FMAP, k, sizeof(k));
		return r == -ENOENT ? 0 : r;
	}
	return idx_put(txn, IDX_FMAP, k, sizeof(k), ids, used * STORE_CHUNK_ID_LEN, 0);
}

static int del_prefix(struct idx_txn *txn, enum idx_dbi dbi, uint64_t ino)
{
	struct idx_cursor *c = NULL;
	uint8_t k[8];
	const void *key;
	size_t klen;
	int r;

	r = idx_cursor_open(txn, dbi, &c);
	if (r < 0)
		return r;
	ino_key(k, ino);
	r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, NULL, NULL);
	while (r >= 0 && klen >= 8 && memcmp(key, k, 8) == 0) {
		r = idx_cursor_del(c);
		if (r < 0)
			break;
		r = idx_cursor_next(c, &key, &klen, NULL, NULL);
	}
	idx_cursor_close(c);
	return r == -ENOENT ? 0 : (r < 0 ? r : 0);
}

int ino_destroy(struct idx_txn *txn, uint64_t ino)
{
	uint8_t k[8];
	int r;

	r = fmap_drop_from(txn, ino, 0, NULL);
	if (r < 0)
		return r;
	r = del_prefix(txn, IDX_XATTRS, ino);
	if (r < 0)
		return r;
	ino_key(k, ino);
	r = idx_del(txn, IDX_ORPHANS, k, sizeof(k));
	if (r < 0 && r != -ENOENT)
		return r;
	r = idx_del(txn, IDX_INODES, k, sizeof(k));
	return r == -ENOENT ? 0 : r;
}

/* --- pack files --------------------------------------------------------------------------- */

/* Returns a read fd for pack number with s->fds_lock held for reading (caller unlocks). */
static int pack_fd_get(struct store *s, uint32_t number, int *ret_fd)
{
	int fd, r;

	pthread_rwlock_rdlock(&s->fds_lock);
	if (number < s->npack_fds && s->pack_fds[number] >= 0) {
		*ret_fd = s->pack_fds[number];
		return 0;
	}
	pthread_rwlock_unlock(&s->fds_lock);

	r = pack_open_read(s->dirfd, number, &fd);
	if (r < 0)
		return r;
	pthread_rwlock_wrlock(&s->fds_lock);
	if (number >= s->npack_fds) {
		uint32_t n = MAX(number + 1, s->npack_fds * 2);
		int *nf = realloc(s->pack_fds, n * sizeof(*nf));

		if (!nf) {
			pthread_rwlock_unlock(&s->fds_lock);
			close(fd);
			return -ENOMEM;
		}
		for (uint32_t i = s->npack_fds; i < n; i++)
			nf[i] = -1;
		s->pack_fds = nf;
		s->npack_fds = n;
	}
	if (s->pack_fds[number] >= 0)
		close(fd); /* another thread won the race */
	else
		s->pack_fds[number] = fd;
	pthread_rwlock_unlock(&s->fds_lock);
	return pack_fd_get(s, number, ret_fd);
}

/* Forget a cached fd: gc may have replaced or removed the pack. */
static void pack_fd_drop(struct store *s, uint32_t number)
{
	pthread_rwlock_wrlock(&s->fds_lock);
	if (number < s->npack_fds && s->pack_fds[number] >= 0) {
		close(s->pack_fds[number]);
		s->pack_fds[number] = -1;
	}
	pthread_rwlock_unlock(&s->fds_lock);
}

static int read_at_loc(struct store *s, const struct chunk_loc *loc, const struct chunk_id *id,
		       void *page)
{
	int fd, r;

	r = pack_fd_get(s, loc->pack, &fd);
	if (r < 0)
		return r;
	r = pack_read_chunk(fd, loc->pack, loc->off, loc->desc, id, s->secret, page);
	pthread_rwlock_unlock(&s->fds_lock);
	return r;
}

/* Reads chunk id whose location txn gave as loc; on failure looks the location up again once
 * (gc may have moved it between our lookup and the read). */
static int read_chunk_verified(struct store *s, const struct chunk_loc *loc,
			       const struct chunk_id *id, uint64_t ino, void *page)
{
	struct idx_txn *txn = NULL;
	struct chunk_loc again;
	char hex[CHUNK_ID_HEX_LEN], path[64];
	int r;

	r = read_at_loc(s, loc, id, page);
	if (r >= 0)
		return 0;
	if (r != -ENOENT && r != -EBADMSG)
		return r;
	pack_fd_drop(s, loc->pack);
	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = chunk_lookup(txn, id, &again);
	idx_txn_abort(txn);
	if (r >= 0)
		r = read_at_loc(s, &again, id, page);
	if (r >= 0)
		return 0;
	pack_path(loc->pack, path, sizeof(path));
	if (r == -ENOENT || r == -EBADMSG) {
		char detail[512];

		snprintf(detail, sizeof(detail), "%s", store_last_error());
		return store_error(-EIO,
				   "inode %llu: chunk %s (pack '%s' offset %llu) unreadable: %s",
				   (unsigned long long)ino, chunk_id_to_hex(id->b, hex), path,
				   (unsigned long long)loc->off, detail);
	}
	return r;
}

int store_read_chunk(struct store *s, const struct chunk_id *id, uint64_t ino, void *page)
{
	struct idx_txn *txn = NULL;
	struct chunk_loc loc;
	char hex[CHUNK_ID_HEX_LEN];
	int r;

	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = chunk_lookup(txn, id, &loc);
	idx_txn_abort(txn);
	if (r == -ENOENT)
		return store_error(-EIO, "inode %llu: chunk %s is not in the index",
				   (unsigned long long)ino, chunk_id_to_hex(id->b, hex));
	if (r < 0)
		return r;
	return read_chunk_verified(s, &loc, id, ino, page);
}

/* The id at chunk index idx of ino in the index (null id for a hole). */
static int fmap_get_slot(struct idx_txn *txn, uint64_t ino, uint64_t idx, struct chunk_id *ret)
{
	uint8_t k[FMAP_KEY_LEN];
	const void *v;
	size_t vlen;
	uint64_t slot = idx % FMAP_SLOTS;
	int r;

	fmap_key(k, ino, idx / FMAP_SLOTS);
	r = idx_get(txn, IDX_FMAP, k, sizeof(k), &v, &vlen);
	memset(ret->b, 0, sizeof(ret->b));
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if ((slot + 1) * STORE_CHUNK_ID_LEN <= vlen)
		memcpy(ret->b, (const uint8_t *)v + slot * STORE_CHUNK_ID_LEN, STORE_CHUNK_ID_LEN);
	return 0;
}

int store_read_clean_chunk(struct store *s, struct idx_txn *txn, uint64_t ino, uint64_t idx,
			   void *page)
{
	struct chunk_id id;
	struct chunk_loc loc;
	char hex[CHUNK_ID_HEX_LEN];
	int r;

	r = fmap_get_slot(txn, ino, idx, &id);
	if (r < 0)
		return r;
	if (chunk_id_is_null(&id)) {
		memset(page, 0, STORE_CHUNK_SIZE);
		return 0;
	}
	r = chunk_lookup(txn, &id, &loc);
	if (r == -ENOENT)
		return store_error(-EIO, "inode %llu: chunk %s is not in the index",
				   (unsigned long long)ino, chunk_id_to_hex(id.b, hex));
	if (r < 0)
		return r;
	return read_chunk_verified(s, &loc, &id, ino, page);
}

/* Largest span one pread covers when consecutive records are read together. */
#define READ_SPAN (512u << 10)

/* One span buffer per reading thread, kept between reads: a fresh 512 KiB malloc each time is
 * an mmap/munmap pair and 128 page faults per read. */
static pthread_key_t span_key;
static pthread_once_t span_once = PTHREAD_ONCE_INIT;

static void span_key_init(void)
{
	(void)pthread_key_create(&span_key, free);
}

static uint8_t *thread_span(void)
{
	uint8_t *p;

	pthread_once(&span_once, span_key_init);
	p = pthread_getspecific(span_key);
	if (!p) {
		p = malloc(READ_SPAN);
		if (p && pthread_setspecific(span_key, p) != 0) {
			free(p);
			p = NULL;
		}
	}
	return p;
}

/*
 * Where the next record probably is, and a window of pack bytes read ahead from there. A dump
 * writes its chunks to a pack in file order, and a later dump that shares them reads them in
 * that same order: once one chunk's record is found, the next chunk of the file is most
 * likely the very next record. Its header must carry the file map's id and the record must
 * verify like any other (it decodes and hashes to that id under the store's secret), so a
 * record found this way is that chunk, wherever the index points; when the guess fails the
 * index is asked. The window starts small after each failed guess and doubles with every
 * refill that a successful guess needed, so the file's pages that break the order (changed in
 * a later dump) do not cost a big read each.
 */
#define GUESS_MIN_SPAN (16u << 10)

struct read_guess {
	uint8_t *span; /* READ_SPAN bytes */
	uint32_t pack; /* span holds pack bytes [span_off, span_off + span_len) */
	uint64_t span_off, span_len;
	uint32_t want; /* how much the next refill reads */
	bool valid;    /* next_off in pack is a guess */
	uint64_t next_off;
};

/* Makes the window hold pack bytes [off, off + len) of the guessed pack; false if it cannot. */
static bool guess_fill(struct store *s, struct read_guess *g, uint64_t off, uint64_t len)
{
	uint64_t want = MAX((uint64_t)g->want, len);
	ssize_t got;
	int fd;

	if (off >= g->span_off && off + len <= g->span_off + g->span_len)
		return true;
	if (pack_fd_get(s, g->pack, &fd) < 0)
		return false;
	got = pread(fd, g->span, want, (off_t)off);
	pthread_rwlock_unlock(&s->fds_lock);
	if (got < 0) {
		g->span_len = 0;
		return false;
	}
	g->span_off = off;
	g->span_len = (uint64_t)got;
	g->want = (uint32_t)MIN((uint64_t)g->want * 2, (uint64_t)READ_SPAN);
	return len <= g->span_len;
}

/* Reads chunk id from the guessed location into page; false when the guess is wrong (or that
 * record is bad: the caller's index path then reads it and reports). */
static bool guess_read(struct store *s, struct read_guess *g, const struct chunk_id *id, void *page)
{
	const uint8_t *rec;
	uint32_t desc;

	if (!g->valid || !guess_fill(s, g, g->next_off, PACK_REC_HDR_LEN))
		goto miss;
	rec = g->span + (g->next_off - g->span_off);
	if (memcmp(rec, id->b, STORE_CHUNK_ID_LEN) != 0)
		goto miss;
	desc = le32_get(rec + STORE_CHUNK_ID_LEN);
	if (pack_desc_len(desc) > STORE_CHUNK_SIZE ||
	    !guess_fill(s, g, g->next_off, rec_bytes(desc)))
		goto miss;
	rec = g->span + (g->next_off - g->span_off);
	if (pack_check_record(rec, g->pack, g->next_off, desc, id, s->secret, page) < 0)
		goto miss;
	g->next_off += rec_bytes(desc);
	return true;
miss:
	g->want = GUESS_MIN_SPAN;
	return false;
}

int store_read_chunks(struct store *s, struct idx_txn *txn, uint64_t ino, struct chunk_req *reqs,
		      size_t n)
{
	struct read_guess g = {.want = GUESS_MIN_SPAN};
	uint64_t cur_block = UINT64_MAX;
	const uint8_t *fmap = NULL;
	size_t fmap_len = 0;
	char hex[CHUNK_ID_HEX_LEN];
	int r;

	g.span = thread_span();
	if (!g.span)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint64_t block = reqs[i].idx / FMAP_SLOTS, slot = reqs[i].idx % FMAP_SLOTS;
		struct chunk_id id;
		struct chunk_loc loc;

		/* One file-map lookup per block. */
		if (block != cur_block) {
			uint8_t k[FMAP_KEY_LEN];
			const void *v;

			fmap_key(k, ino, block);
			r = idx_get(txn, IDX_FMAP, k, sizeof(k), &v, &fmap_len);
			if (r == -ENOENT) {
				fmap = NULL;
				fmap_len = 0;
			} else if (r < 0) {
				return r;
			} else {
				fmap = v;
			}
			cur_block = block;
		}
		memset(id.b, 0, STORE_CHUNK_ID_LEN);
		if (fmap && (slot + 1) * STORE_CHUNK_ID_LEN <= fmap_len)
			memcpy(id.b, fmap + slot * STORE_CHUNK_ID_LEN, STORE_CHUNK_ID_LEN);
		if (chunk_id_is_null(&id)) {
			memset(reqs[i].dst, 0, STORE_CHUNK_SIZE);
			continue;
		}
		if (guess_read(s, &g, &id, reqs[i].dst))
			continue;
		r = chunk_lookup(txn, &id, &loc);
		if (r == -ENOENT)
			return store_error(-EIO, "inode %llu: chunk %s is not in the index",
					   (unsigned long long)ino, chunk_id_to_hex(id.b, hex));
		if (r < 0)
			return r;
		r = read_chunk_verified(s, &loc, &id, ino, reqs[i].dst);
		if (r < 0)
			return r;
		if (g.pack != loc.pack)
			g.span_len = 0;
		g.pack = loc.pack;
		g.next_off = loc.off + rec_bytes(loc.desc);
		g.valid = true;
	}
	return 0;
}
