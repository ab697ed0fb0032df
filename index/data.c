// SPDX-License-Identifier: MIT
/*
 * data.c - file data API: open/release, read, write, fallocate, truncate, fsync over the
 * per-inode dirty buffers (struct oinode). Flushing lives in flush.c, chunk reads in chunks.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "index/pack.h"
#include "index/store_priv.h"

/* Dirty pages come from a free list: no malloc, and no fresh page faults, per 4 KiB written. */
#define PAGE_POOL_MAX ((32u << 20) / STORE_CHUNK_SIZE)

uint8_t *page_alloc(struct store *s)
{
	uint8_t *p = s->page_pool;

	if (p) {
		memcpy(&s->page_pool, p, sizeof(s->page_pool));
		s->page_pool_n--;
		return p;
	}
	return aligned_alloc(64, STORE_CHUNK_SIZE);
}

void page_free(struct store *s, uint8_t *p)
{
	if (!p)
		return;
	if (s->page_pool_n >= PAGE_POOL_MAX) {
		free(p);
		return;
	}
	memcpy(p, &s->page_pool, sizeof(s->page_pool));
	s->page_pool = p;
	s->page_pool_n++;
}

void page_pool_drain(struct store *s)
{
	while (s->page_pool) {
		uint8_t *p = s->page_pool;

		memcpy(&s->page_pool, p, sizeof(s->page_pool));
		free(p);
	}
	s->page_pool_n = 0;
}

static void dblock_free(struct store *s, struct oinode *oi, struct dblock *b)
{
	for (unsigned i = 0; i < DIRTY_SLOTS; i++) {
		if (!(b->present & (1ULL << i)))
			continue;
		if (b->pages[i])
			s->dirty_bytes -= STORE_CHUNK_SIZE;
		page_free(s, b->pages[i]);
		oi->npages--;
	}
	free(b);
}

/* Drops the newest buffered state (not what a running flush holds). */
static void oinode_clear_dirty(struct store *s, struct oinode *oi)
{
	for (size_t i = 0; i < oi->blocks.cap; i++)
		if (oi->blocks.slots[i].val)
			dblock_free(s, oi, oi->blocks.slots[i].val);
	u64map_clear(&oi->blocks);
	oi->trunc_floor = UINT64_MAX;
	oi->meta_dirty = false;
}

static void oinode_free(struct store *s, struct oinode *oi)
{
	oinode_clear_dirty(s, oi);
	u64map_del(&s->inodes, oi->ino);
	free(oi);
}

void oinode_discard(struct store *s, struct oinode *oi)
{
	if (oi->fl_active || oi->pins) {
		/* The running flush owns oi; it finds the inode gone and oinode_put frees it. */
		oinode_clear_dirty(s, oi);
		oi->discard = true;
		return;
	}
	oinode_free(s, oi);
}

void oinode_put(struct store *s, struct oinode *oi)
{
	if (oi->fl_active || oi->pins)
		return;
	if (oi->discard ||
	    (oi->opens == 0 && oi->npages == 0 && !oi->meta_dirty && oi->trunc_floor == UINT64_MAX))
		oinode_free(s, oi);
}

void store_drop_inodes(struct store *s)
{
	for (size_t i = 0; i < s->inodes.cap; i++) {
		struct oinode *oi = s->inodes.slots[i].val;

		if (!oi)
			continue;
		for (size_t j = 0; j < oi->blocks.cap; j++)
			if (oi->blocks.slots[j].val)
				dblock_free(s, oi, oi->blocks.slots[j].val);
		u64map_clear(&oi->blocks);
		free(oi);
	}
	u64map_clear(&s->inodes);
}

int oinode_get(struct store *s, uint64_t ino, struct oinode **ret)
{
	struct oinode *oi = u64map_get(&s->inodes, ino);
	struct idx_txn *txn = NULL;
	struct inode in;
	bool sealed;
	int r;

	if (oi && !oi->discard) {
		*ret = oi;
		return 0;
	}
	if (oi)
		return -ENOENT; /* removed, its last flush still running */
	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	inode_done(&in);
	if (S_ISDIR(in.mode)) {
		r = -EISDIR;
		goto out;
	}
	if (!S_ISREG(in.mode)) {
		r = -EINVAL;
		goto out;
	}
	r = ckpt_is_sealed(txn, in.ckpt_ino, &sealed);
	if (r < 0)
		goto out;
	oi = calloc(1, sizeof(*oi));
	if (!oi) {
		r = -ENOMEM;
		goto out;
	}
	oi->ino = ino;
	oi->ckpt_ino = in.ckpt_ino;
	oi->sealed = sealed;
	oi->size = in.size;
	oi->mtime = in.mtime;
	oi->trunc_floor = UINT64_MAX;
	oi->fl_trunc_floor = UINT64_MAX;
	r = u64map_put(&s->inodes, ino, oi);
	if (r < 0) {
		free(oi);
		goto out;
	}
	*ret = oi;
out:
	idx_txn_abort(txn);
	return r;
}

int oinode_mem_chunk(struct oinode *oi, uint64_t idx, const uint8_t **ret_page)
{
	unsigned slot = (unsigned)(idx % DIRTY_SLOTS);
	struct dblock *b = u64map_get(&oi->blocks, idx / DIRTY_SLOTS);

	if (b && (b->present & (1ULL << slot))) {
		*ret_page = b->pages[slot];
		return 1;
	}
	if (idx * STORE_CHUNK_SIZE >= oi->trunc_floor) {
		*ret_page = NULL;
		return 1;
	}
	b = u64map_get(&oi->fl_blocks, idx / DIRTY_SLOTS);
	if (b && (b->present & (1ULL << slot))) {
		*ret_page = b->pages[slot];
		return 1;
	}
	if (idx * STORE_CHUNK_SIZE >= oi->fl_trunc_floor) {
		*ret_page = NULL;
		return 1;
	}
	return 0;
}

static struct dblock *dblock_get(struct oinode *oi, uint64_t block)
{
	struct dblock *b = u64map_get(&oi->blocks, block);

	if (b)
		return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (u64map_put(&oi->blocks, block, b) < 0) {
		free(b);
		return NULL;
	}
	return b;
}

/* Returns the writable dirty page for chunk idx, filling it with the current bytes unless the
 * caller overwrites all of it. */
static int dirty_page(struct store *s, struct oinode *oi, uint64_t idx, bool will_overwrite,
		      uint8_t **ret_page)
{
	struct dblock *b = dblock_get(oi, idx / DIRTY_SLOTS);
	unsigned slot = (unsigned)(idx % DIRTY_SLOTS);
	uint64_t bit = 1ULL << slot;
	const uint8_t *cur;
	uint8_t *page;
	int r = 0;

	if (!b)
		return -ENOMEM;
	if ((b->present & bit) && b->pages[slot]) {
		*ret_page = b->pages[slot];
		return 0;
	}
	page = page_alloc(s);
	if (!page)
		return -ENOMEM;
	if (will_overwrite) {
		/* nothing to fetch */
	} else if (idx * STORE_CHUNK_SIZE >= oi->size) {
		memset(page, 0, STORE_CHUNK_SIZE);
	} else if (oinode_mem_chunk(oi, idx, &cur)) {
		if (cur)
			memcpy(page, cur, STORE_CHUNK_SIZE);
		else
			memset(page, 0, STORE_CHUNK_SIZE);
	} else {
		struct idx_txn *txn = NULL;

		r = idx_txn_begin(s->db, false, &txn);
		if (r >= 0) {
			r = store_read_clean_chunk(s, txn, oi->ino, idx, page);
			idx_txn_abort(txn);
		}
		if (r < 0) {
			page_free(s, page);
			return r == -EBADMSG ? -EIO : r;
		}
	}
	if (!(b->present & bit))
		oi->npages++;
	b->present |= bit;
	b->pages[slot] = page;
	s->dirty_bytes += STORE_CHUNK_SIZE;
	*ret_page = page;
	return 0;
}

/* Marks chunk idx a dirty hole (its old bytes no longer matter). */
static int dirty_hole(struct store *s, struct oinode *oi, uint64_t idx)
{
	struct dblock *b = dblock_get(oi, idx / DIRTY_SLOTS);
	unsigned slot = (unsigned)(idx % DIRTY_SLOTS);
	uint64_t bit = 1ULL << slot;

	if (!b)
		return -ENOMEM;
	if (b->pages[slot]) {
		page_free(s, b->pages[slot]);
		b->pages[slot] = NULL;
		s->dirty_bytes -= STORE_CHUNK_SIZE;
	}
	if (!(b->present & bit))
		oi->npages++;
	b->present |= bit;
	return 0;
}

/* Zeroes bytes [from, to) of the file in the dirty buffers (whole chunks become holes). */
static int zero_range(struct store *s, struct oinode *oi, uint64_t from, uint64_t to)
{
	while (from < to) {
		uint64_t idx = from / STORE_CHUNK_SIZE;
		uint64_t in_off = from % STORE_CHUNK_SIZE;
		uint64_t n = MIN(to - from, STORE_CHUNK_SIZE - in_off);
		uint8_t *page;
		int r;

		if (n == STORE_CHUNK_SIZE) {
			r = dirty_hole(s, oi, idx);
		} else {
			r = dirty_page(s, oi, idx, false, &page);
			if (r >= 0)
				memset(page + in_off, 0, n);
		}
		if (r < 0)
			return r;
		from += n;
	}
	return 0;
}

/* Is chunk index idx in [first, first + n)? (No overflow for n up to UINT64_MAX - first.) */
static bool idx_in_range(uint64_t idx, uint64_t first, uint64_t n)
{
	return idx >= first && idx - first < n;
}

/* Can dirty block b, holding chunks [base, base + DIRTY_SLOTS), meet [first, first + n)? */
static bool dblock_meets(const struct dblock *b, uint64_t base, uint64_t first, uint64_t n)
{
	return b && b->present && base + DIRTY_SLOTS > first && (base < first || base - first < n);
}

bool oinode_dirty_in_range(const struct oinode *oi, uint64_t first, uint64_t n)
{
	for (size_t i = 0; i < oi->blocks.cap; i++) {
		const struct dblock *b = oi->blocks.slots[i].val;
		uint64_t base = oi->blocks.slots[i].key * DIRTY_SLOTS;

		if (!dblock_meets(b, base, first, n))
			continue;
		for (unsigned j = 0; j < DIRTY_SLOTS; j++)
			if ((b->present & (1ULL << j)) && idx_in_range(base + j, first, n))
				return true;
	}
	return false;
}

bool oinode_drop_dirty(struct store *s, struct oinode *oi, uint64_t first, uint64_t n)
{
	bool dropped = false;

	for (size_t i = 0; i < oi->blocks.cap; i++) {
		struct dblock *b = oi->blocks.slots[i].val;
		uint64_t base = oi->blocks.slots[i].key * DIRTY_SLOTS;

		if (!dblock_meets(b, base, first, n))
			continue;
		for (unsigned j = 0; j < DIRTY_SLOTS; j++) {
			if (!(b->present & (1ULL << j)) || !idx_in_range(base + j, first, n))
				continue;
			if (b->pages[j]) {
				page_free(s, b->pages[j]);
				b->pages[j] = NULL;
				s->dirty_bytes -= STORE_CHUNK_SIZE;
			}
			b->present &= ~(1ULL << j);
			oi->npages--;
			dropped = true;
		}
	}
	return dropped;
}

int oinode_truncate(struct store *s, struct oinode *oi, uint64_t size)
{
	if (oi->sealed)
		return -EROFS;
	if (size < oi->size) {
		uint64_t first_dead = (size + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE;

		/* Zero the tail of the last kept chunk so a later extension reads zeros. */
		if (size % STORE_CHUNK_SIZE) {
			uint8_t *page;
			int r = dirty_page(s, oi, size / STORE_CHUNK_SIZE, false, &page);

			if (r < 0)
				return r;
			memset(page + size % STORE_CHUNK_SIZE, 0,
			       STORE_CHUNK_SIZE - size % STORE_CHUNK_SIZE);
		}
		/* Dirty chunks past the new end are dropped now, indexed ones at the flush. */
		(void)oinode_drop_dirty(s, oi, first_dead, UINT64_MAX - first_dead);
		oi->trunc_floor = MIN(oi->trunc_floor, size);
	}
	oi->size = size;
	oi->meta_dirty = true;
	now_ts(&oi->mtime);
	return 0;
}

/* --- the file API ------------------------------------------------------------------------- */

int store_open_inode(struct store *s, uint64_t ino, bool write_access)
{
	struct oinode *oi = NULL;
	int r;

	if (write_access && (s->flags & STORE_OPEN_RDONLY))
		return -EROFS;
	pthread_mutex_lock(&s->mu);
	r = oinode_get(s, ino, &oi);
	if (r == -EISDIR && !write_access) {
		r = 0; /* directories are opened for reading only and carry no state */
	} else if (r == -EINVAL) {
		r = 0; /* symlinks, FIFOs, devices: nothing to track */
	} else if (r >= 0 && write_access && oi->sealed) {
		r = -EROFS;
		oinode_put(s, oi);
	} else if (r >= 0) {
		oi->opens++;
		if (write_access)
			oi->wopens++;
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

int store_release(struct store *s, uint64_t ino, bool write_access)
{
	struct oinode *oi;
	struct idx_txn *txn = NULL;
	int r = 0;

	pthread_mutex_lock(&s->mu);
	oi = u64map_get(&s->inodes, ino);
	if (!oi || oi->opens == 0)
		goto out;
	oi->opens--;
	if (write_access && oi->wopens)
		oi->wopens--;
	if (oi->opens > 0)
		goto out;
	if (oi->unlinked) {
		/* Last handle of an unlinked file: its data goes with it. */
		oinode_clear_dirty(s, oi);
		oi->pins++;
		while (oi->fl_active)
			pthread_cond_wait(&s->flushed, &s->mu);
		oi->pins--;
		r = idx_txn_begin(s->db, true, &txn);
		if (r >= 0) {
			struct inode in;

			r = ino_load(txn, ino, &in);
			if (r >= 0) {
				inode_done(&in);
				r = in.nlink == 0 ? ino_destroy(txn, ino) : 0;
			} else if (r == -ENOENT) {
				r = 0;
			}
			if (r >= 0)
				r = idx_txn_commit(txn);
			else
				idx_txn_abort(txn);
		}
		oi->discard = true;
		oinode_put(s, oi);
		goto out;
	}
	r = oinode_flush(s, oi);
	if (r == -EROFS)
		r = 0; /* the writer was told at write time; close itself succeeds */
	if (r >= 0)
		oinode_put(s, oi);
out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

ssize_t store_read(struct store *s, uint64_t ino, void *buf, size_t size, uint64_t off)
{
	return store_read_hooked(s, ino, buf, size, off, NULL);
}

ssize_t store_read_hooked(struct store *s, uint64_t ino, void *buf, size_t size, uint64_t off,
			  const struct store_read_hooks *hooks)
{
	struct idx_txn *txn = NULL;
	struct oinode *oi;
	struct inode in;
	uint64_t fsize, end, nchunks, first;
	_cleanup_free_ uint8_t *need = NULL;
	_cleanup_free_ struct chunk_req *reqs = NULL;
	uint8_t *out = buf;
	uint8_t edge[2][STORE_CHUNK_SIZE];
	ssize_t r;

	if (size == 0)
		return 0;
	pthread_mutex_lock(&s->mu);
	/* The read txn starts under s->mu: a flush that freed pages we do not see below has
	 * committed before that, so the index then has those bytes. */
	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0) {
		pthread_mutex_unlock(&s->mu);
		return r;
	}
	r = ino_load(txn, ino, &in);
	if (r < 0) {
		pthread_mutex_unlock(&s->mu);
		goto out;
	}
	inode_done(&in);
	if (S_ISDIR(in.mode)) {
		pthread_mutex_unlock(&s->mu);
		r = -EISDIR;
		goto out;
	}
	oi = u64map_get(&s->inodes, ino);
	fsize = oi ? oi->size : in.size;
	if (off >= fsize) {
		pthread_mutex_unlock(&s->mu);
		r = 0;
		goto out;
	}
	end = MIN(fsize, off + size);
	first = off / STORE_CHUNK_SIZE;
	nchunks = (end + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE - first;
	need = calloc(nchunks, 1);
	if (!need) {
		pthread_mutex_unlock(&s->mu);
		r = -ENOMEM;
		goto out;
	}
	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t idx = first + c;
		uint64_t cstart = idx * STORE_CHUNK_SIZE;
		uint64_t from = MAX(cstart, off), to = MIN(cstart + STORE_CHUNK_SIZE, end);
		const uint8_t *mp;

		if (oi && oinode_mem_chunk(oi, idx, &mp)) {
			if (mp)
				memcpy(out + (from - off), mp + (from - cstart), to - from);
			else
				memset(out + (from - off), 0, to - from);
		} else {
			need[c] = 1;
		}
	}
	pthread_mutex_unlock(&s->mu);

	size_t nreq = 0;
	reqs = malloc(nchunks * sizeof(*reqs));
	if (!reqs) {
		r = -ENOMEM;
		goto out;
	}
	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t idx = first + c;
		uint64_t cstart = idx * STORE_CHUNK_SIZE;
		uint64_t from = MAX(cstart, off), to = MIN(cstart + STORE_CHUNK_SIZE, end);

		if (!need[c])
			continue;
		reqs[nreq].idx = idx;
		/* Whole chunks decode straight into the caller's buffer; edges go via a page. */
		if (from == cstart && to == cstart + STORE_CHUNK_SIZE)
			reqs[nreq].dst = out + (from - off);
		else
			reqs[nreq].dst = c == 0 ? edge[0] : edge[1];
		nreq++;
	}
	if (hooks && nreq)
		hooks->decode_begin(hooks->arg);
	r = store_read_chunks(s, txn, ino, reqs, nreq);
	if (hooks && nreq)
		hooks->decode_end(hooks->arg);
	if (r < 0) {
		if (r == -EBADMSG)
			r = -EIO;
		goto out;
	}
	for (size_t i = 0; i < nreq; i++) {
		uint64_t cstart = reqs[i].idx * STORE_CHUNK_SIZE;
		uint64_t from = MAX(cstart, off), to = MIN(cstart + STORE_CHUNK_SIZE, end);

		if (reqs[i].dst == edge[0] || reqs[i].dst == edge[1])
			memcpy(out + (from - off), reqs[i].dst + (from - cstart), to - from);
	}
	r = (ssize_t)(end - off);
out:
	idx_txn_abort(txn);
	return r;
}

/* Writers wait while the buffers are over budget; the flusher makes room. */
static int wait_for_budget(struct store *s, struct oinode *oi)
{
	while (s->dirty_bytes > s->dirty_budget) {
		if (!s->flusher_started || s->flusher_err) {
			/* No helper, or it keeps failing: flush ourselves and report. */
			int r = oinode_flush(s, oi);
			if (r < 0)
				return r;
			if (s->dirty_bytes <= s->dirty_budget)
				break;
			if (!s->flusher_started)
				return store_flush_all_locked(s);
		}
		pthread_cond_signal(&s->flusher_wake);
		oi->pins++;
		pthread_cond_wait(&s->flushed, &s->mu);
		oi->pins--;
		if (oi->discard)
			return -ENOENT;
	}
	return 0;
}

ssize_t store_write(struct store *s, uint64_t ino, const void *buf, size_t size, uint64_t off)
{
	const uint8_t *in = buf;
	struct oinode *oi = NULL;
	uint64_t end, pos;
	ssize_t r;

	if (size == 0)
		return 0;
	if (add_overflows_u64(off, size, &end) || end > (1ULL << 62))
		return -EFBIG;
	if (s->flags & STORE_OPEN_RDONLY)
		return -EROFS;
	pthread_mutex_lock(&s->mu);
	r = oinode_get(s, ino, &oi);
	if (r < 0) {
		oi = NULL;
		goto out;
	}
	if (oi->sealed) {
		r = -EROFS;
		goto out;
	}
	if (oi->flush_err) {
		/* A background flush of this file failed (e.g. ENOSPC): the writer hears it. */
		r = oi->flush_err;
		oi->flush_err = 0;
		goto out;
	}
	for (pos = off; pos < end;) {
		uint64_t idx = pos / STORE_CHUNK_SIZE;
		uint64_t in_off = pos % STORE_CHUNK_SIZE;
		uint64_t n = MIN(end - pos, STORE_CHUNK_SIZE - in_off);
		uint8_t *page;

		r = dirty_page(s, oi, idx, n == STORE_CHUNK_SIZE, &page);
		if (r < 0)
			goto out;
		memcpy(page + in_off, in + (pos - off), n);
		pos += n;
	}
	if (end > oi->size)
		oi->size = end;
	oi->meta_dirty = true;
	now_ts(&oi->mtime);
	r = (ssize_t)size;
	if (s->dirty_bytes - s->flight_bytes >= s->dirty_budget / 4)
		pthread_cond_signal(&s->flusher_wake);
	if (s->dirty_bytes > s->dirty_budget) {
		int q = wait_for_budget(s, oi);
		/* The bytes are buffered; a failed spill is this write's error (ENOSPC). */
		if (q < 0)
			r = q;
	}
out:
	if (oi && oi->opens == 0)
		oinode_put(s, oi);
	pthread_mutex_unlock(&s->mu);
	return r;
}

int store_fallocate(struct store *s, uint64_t ino, bool punch_hole, bool keep_size, uint64_t off,
		    uint64_t len)
{
	struct oinode *oi = NULL;
	uint64_t end;
	int r;

	if (add_overflows_u64(off, len, &end) || end > (1ULL << 62))
		return -EFBIG;
	if (punch_hole && !keep_size)
		return -EOPNOTSUPP;
	if (s->flags & STORE_OPEN_RDONLY)
		return -EROFS;
	pthread_mutex_lock(&s->mu);
	r = oinode_get(s, ino, &oi);
	if (r < 0) {
		oi = NULL;
		goto out;
	}
	if (oi->sealed) {
		r = -EROFS;
		goto out;
	}
	if (punch_hole) {
		r = zero_range(s, oi, off, MIN(end, oi->size));
		if (r < 0)
			goto out;
	} else if (!keep_size && end > oi->size) {
		oi->size = end;
	}
	oi->meta_dirty = true;
	now_ts(&oi->mtime);
out:
	if (oi && oi->opens == 0) {
		int q = oinode_flush(s, oi);
		if (q < 0 && r >= 0)
			r = q;
		oinode_put(s, oi);
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Flushes ino's buffered pages if it is open here; *ret_ckpt: its checkpoint, 0 if not open. */
static int flush_if_open(struct store *s, uint64_t ino, uint64_t *ret_ckpt)
{
	struct oinode *oi;
	int r = 0;

	*ret_ckpt = 0;
	pthread_mutex_lock(&s->mu);
	oi = u64map_get(&s->inodes, ino);
	if (oi) {
		/* -EROFS too: another process sealed the checkpoint under our buffered writes,
		 * which were dropped; close(2) is the writer's last chance to hear it. */
		r = oinode_flush(s, oi);
		*ret_ckpt = oi->ckpt_ino;
		oinode_put(s, oi);
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

int store_flush_inode(struct store *s, uint64_t ino)
{
	uint64_t ckpt;

	if (s->flags & STORE_OPEN_RDONLY)
		return 0;
	return flush_if_open(s, ino, &ckpt);
}

int store_fsync(struct store *s, uint64_t ino, bool datasync)
{
	uint64_t ckpt;
	int r;

	if (s->flags & STORE_OPEN_RDONLY)
		return 0;
	r = flush_if_open(s, ino, &ckpt);
	if (r < 0)
		return r;
	if (ckpt == 0 && ino != STORE_ROOT_INO) {
		/* No buffered state (a directory, a symlink, a closed file): its metadata
		 * changes still have to reach the manifest. */
		struct inode in;

		r = ino_load_once(s, ino, &in);
		if (r < 0)
			return r;
		ckpt = in.ckpt_ino;
		inode_done(&in);
	}
	r = idx_db_sync(s->db);
	if (r < 0)
		return r;
	/* A rebuild recovers unsealed checkpoints as of their manifest: make it current. The
	 * root stands for all of them (a new checkpoint is a change at the top). */
	return store_write_touched_manifests(s, ino == STORE_ROOT_INO ? 0 : ckpt);
}

int store_purge_orphans(struct store *s)
{
	struct idx_txn *txn = NULL;
	struct idx_cursor *c = NULL;
	uint64_t *inos = NULL;
	size_t n = 0, cap = 0;
	const void *key;
	size_t klen;
	int r;

	if (s->flags & STORE_OPEN_RDONLY)
		return 0;
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		return r;
	r = idx_cursor_open(txn, IDX_ORPHANS, &c);
	if (r < 0)
		goto out;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, NULL, NULL); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, NULL, NULL)) {
		if (klen != 8)
			continue;
		r = array_grow(&inos, &cap, n, sizeof(*inos), 16);
		if (r < 0)
			break;
		inos[n++] = be64_get(key);
	}
	idx_cursor_close(c);
	if (r < 0 && r != -ENOENT)
		goto out;
	r = 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct inode in;
		uint8_t k[8];

		ino_key(k, inos[i]);
		r = ino_load(txn, inos[i], &in);
		if (r == -ENOENT) {
			r = idx_del(txn, IDX_ORPHANS, k, sizeof(k));
			continue;
		}
		if (r < 0)
			break;
		inode_done(&in);
		if (in.nlink == 0)
			r = ino_destroy(txn, inos[i]);
		else
			r = idx_del(txn, IDX_ORPHANS, k, sizeof(k));
	}
	if (r < 0)
		goto out;
	free(inos);
	if (n == 0) {
		idx_txn_abort(txn);
		return 0;
	}
	return idx_txn_commit(txn);
out:
	free(inos);
	idx_txn_abort(txn);
	return r;
}
