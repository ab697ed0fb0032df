// SPDX-License-Identifier: MIT
/*
 * copy.c - copy_file_range by reference: whole chunks move from one file map to another as chunk
 * ids (refcounts +1 for the ids placed, -1 for the ids they replace), in one index transaction,
 * without reading, hashing or compressing a page. Unaligned edges go through store_read() and
 * store_write() like any other bytes.
 *
 * Ordering: s->mu is held from the check that the index can stand for both files (settle():
 * no flush of either running, nothing buffered in the source range, no pending truncate) until
 * the transaction has committed and the destination's buffered pages in the range (older than
 * the copy) are dropped, so no write can slip in between: a write that came before the copy is
 * seen by it (stored first on the source side, replaced on the destination side), a write after
 * it lands in the dirty buffers on top of the copied slots (and wins). s->mu is taken before
 * the LMDB write transaction, as everywhere in index/.
 *
 * Durability: a chunk id found in a file map is indexed, and indexed chunks were fdatasync'd in
 * their pack before they were indexed, so the copy never makes anything refer to bytes that are
 * not durable. Like a flush, the transaction is made durable by the next fsync/seal/sync.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "index/store_priv.h"

/* Bounce buffer of the byte path (unaligned edges, mismatched in-page offsets). */
#define COPY_BOUNCE (1u << 20)
/* Pages per index transaction: bounds the delta table (24 B per slot change) and the time one
 * copy holds s->mu; 2^19 pages is 2 GiB, which is as much as one copy_file_range(2) call of the
 * kernel asks for. */
#define COPY_TXN_PAGES (1ULL << 19)
/* Flushes tried before giving up on a quiet moment (writers busy on the same files): then the
 * copy goes through the byte path, which is always right. */
#define COPY_SETTLE_TRIES 8
#define COPY_SETTLE_WAITS 1000

/* A refcount change: the net delta of one chunk id over the whole copy. */
struct ref_delta {
	struct chunk_id id;
	int64_t delta;
};

static int cmp_delta_id(const void *a, const void *b)
{
	const struct ref_delta *x = a, *y = b;

	return memcmp(x->id.b, y->id.b, STORE_CHUNK_ID_LEN);
}

/* Below this many entries qsort is cheaper than clearing the radix histogram. */
#define RADIX_MIN  4096u
#define RADIX_BITS 16u

static uint64_t delta_key(const struct ref_delta *d)
{
	return be64_get(d->id.b);
}

/* Sorts d by id. A copy of 1 GiB has 2^18 entries, and qsort's comparison calls took as long
 * as all the index updates: ids are uniform hashes, so an LSD radix sort on their first 8 bytes
 * (4 passes of 16 bits) does it in a few linear passes. Runs that share those 8 bytes (the same
 * id repeated, or a 64-bit prefix collision) are then put in full id order. */
static int sort_deltas(struct ref_delta *d, size_t n)
{
	_cleanup_free_ struct ref_delta *tmp = NULL;
	_cleanup_free_ uint32_t *count = NULL;
	struct ref_delta *from = d, *to;

	if (n < RADIX_MIN) {
		qsort(d, n, sizeof(*d), cmp_delta_id);
		return 0;
	}
	tmp = malloc(n * sizeof(*tmp));
	count = malloc((1u << RADIX_BITS) * sizeof(*count));
	if (!tmp || !count)
		return -ENOMEM;
	to = tmp;
	for (unsigned shift = 0; shift < 64; shift += RADIX_BITS) {
		uint32_t sum = 0;

		memset(count, 0, (1u << RADIX_BITS) * sizeof(*count));
		for (size_t i = 0; i < n; i++)
			count[(delta_key(&from[i]) >> shift) & ((1u << RADIX_BITS) - 1)]++;
		for (uint32_t b = 0; b < (1u << RADIX_BITS); b++) {
			uint32_t c = count[b];

			count[b] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			to[count[(delta_key(&from[i]) >> shift) & ((1u << RADIX_BITS) - 1)]++] =
				from[i];
		from = to;
		to = from == d ? tmp : d;
	}
	/* An even number of passes: the result is back in d. */
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && delta_key(&d[j]) == delta_key(&d[i]); j++)
			;
		if (j - i > 1)
			qsort(d + i, j - i, sizeof(*d), cmp_delta_id);
	}
	return 0;
}

/* Copies len bytes through read + write; *ret_copied is short only when the source shrank. */
static int copy_bytes(struct store *s, uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
		      uint64_t off_out, uint64_t len, uint64_t *ret_copied)
{
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t done = 0;

	if (len > 0) {
		buf = malloc(MIN(len, COPY_BOUNCE));
		if (!buf)
			return -ENOMEM;
	}
	while (done < len) {
		size_t want = (size_t)MIN(len - done, COPY_BOUNCE);
		ssize_t got, put;

		got = store_read(s, ino_in, buf, want, off_in + done);
		if (got < 0)
			return (int)got;
		if (got == 0)
			break;
		put = store_write(s, ino_out, buf, (size_t)got, off_out + done);
		if (put < 0)
			return (int)put;
		done += (uint64_t)got;
		if ((size_t)got < want)
			break;
	}
	*ret_copied = done;
	return 0;
}

/* Waits until the index can stand for both files (s->mu held; in and out pinned, since the
 * lock is dropped meanwhile):
 *  - no flush of either is running: its commit would land after ours and write back the file
 *    map slots and the size it took before the copy;
 *  - the source buffers nothing in the copied range and has no pending truncate (the index
 *    still holds slots the truncate cut off): such a source is flushed;
 *  - the destination has no pending truncate (its flush would cut the copied slots): flushed.
 * Buffered pages of the destination are left alone: those outside the range do not meet the
 * copy, those inside it are older than the copy and are dropped after it (oinode_drop_dirty).
 * So a dump that alternates writes of changed pages with copies of unchanged runs does not pay a
 * flush (a pack fdatasync) per copy. -EAGAIN when writers keep refilling the buffers. */
static int settle(struct store *s, struct oinode *in, uint64_t first_in, uint64_t n,
		  struct oinode *out)
{
	int flushes = 0, waits = 0;

	for (;;) {
		bool flush_in, flush_out;
		int r = 0;

		if (in->discard || out->discard)
			return store_error(-ENOENT, "inode %llu: removed during the copy",
					   (unsigned long long)(in->discard ? in->ino : out->ino));
		if (in->fl_active || out->fl_active) {
			/* Any flush's end wakes us, so allow many; a file that some writer keeps
			 * the flusher busy with gets the byte path. */
			if (++waits > COPY_SETTLE_WAITS)
				return -EAGAIN;
			pthread_cond_wait(&s->flushed, &s->mu);
			continue;
		}
		flush_in = in->trunc_floor != UINT64_MAX || oinode_dirty_in_range(in, first_in, n);
		flush_out = out->trunc_floor != UINT64_MAX;
		if (!flush_in && !flush_out)
			return 0;
		if (++flushes > COPY_SETTLE_TRIES)
			return -EAGAIN;
		if (flush_out)
			r = oinode_flush(s, out);
		if (r >= 0 && flush_in && (in != out || !flush_out))
			r = oinode_flush(s, in);
		if (r < 0)
			return r;
	}
}

_Static_assert(sizeof(struct chunk_id) == STORE_CHUNK_ID_LEN, "file map slots are chunk ids");

/* Copies the ids of chunks [first, first + n) of ino, as txn has them, into ids (null for
 * holes). */
static int fmap_read_ids(struct idx_txn *txn, uint64_t ino, uint64_t first, uint64_t n,
			 struct chunk_id *ids)
{
	uint8_t blk[FMAP_BLOCK_LEN];
	uint64_t done = 0;

	while (done < n) {
		uint64_t idx = first + done, slot = idx % FMAP_SLOTS;
		uint64_t m = MIN(FMAP_SLOTS - slot, n - done);
		int r;

		r = fmap_block_load(txn, ino, idx / FMAP_SLOTS, blk);
		if (r < 0)
			return r;
		memcpy(ids + done, blk + slot * STORE_CHUNK_ID_LEN, m * STORE_CHUNK_ID_LEN);
		done += m;
	}
	return 0;
}

/* Applies one id's net refcount change; *stored gets delta x its record bytes. */
static int chunk_refs_add(struct idx_txn *txn, const struct ref_delta *d, uint64_t ino_in,
			  int64_t *stored)
{
	char hex[CHUNK_ID_HEX_LEN];
	uint8_t v[CHUNK_VAL_LEN];
	struct chunk_loc loc;
	int r;

	r = chunk_lookup(txn, &d->id, &loc);
	if (r == -ENOENT && d->delta < 0)
		return 0; /* a slot naming a chunk the index lost: nothing to release (as flush) */
	if (r == -ENOENT)
		return store_error(-EUCLEAN, "inode %llu: chunk %s in its file map is not indexed",
				   (unsigned long long)ino_in, chunk_id_to_hex(d->id.b, hex));
	if (r < 0)
		return r;
	if (d->delta < 0 && loc.refs < (uint64_t)-d->delta)
		return store_error(-EUCLEAN, "chunk %s: reference count would drop below zero",
				   chunk_id_to_hex(d->id.b, hex));
	loc.refs += (uint64_t)d->delta;
	chunk_val_encode(v, &loc);
	r = idx_put(txn, IDX_CHUNKS, d->id.b, STORE_CHUNK_ID_LEN, v, sizeof(v), 0);
	if (r < 0)
		return r;
	*stored += d->delta * (int64_t)rec_bytes(loc.desc);
	return 0;
}

/* Puts the ids of npages chunks of ino_in from chunk first_in into ino_out from chunk first_out,
 * all in one transaction, and makes ino_out at least min_size bytes long (s->mu held, both files
 * settled). Returns the new size and mtime of ino_out. */
static int copy_refs(struct store *s, uint64_t ino_in, uint64_t first_in, uint64_t ino_out,
		     uint64_t first_out, uint64_t npages, uint64_t min_size, uint64_t *ret_size,
		     struct timespec *ret_mtime)
{
	_cleanup_free_ struct chunk_id *src = NULL;
	_cleanup_free_ struct ref_delta *d = NULL;
	_cleanup_free_ uint8_t *ids = NULL;
	struct idx_txn *txn = NULL;
	struct inode in;
	size_t nd = 0;
	int64_t stored = 0;
	bool sealed;
	int r;

	src = malloc(FMAP_SLOTS * sizeof(*src));
	ids = malloc(FMAP_BLOCK_LEN);
	d = malloc(2 * npages * sizeof(*d));
	if (!src || !ids || !d)
		return -ENOMEM;
	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		return r;
	/* The source must still exist (its map is read below); the destination is checked again
	 * because another process may have sealed its checkpoint. */
	r = ino_load(txn, ino_in, &in);
	if (r < 0)
		goto out_abort;
	inode_done(&in);
	r = ino_load(txn, ino_out, &in);
	if (r < 0)
		goto out_abort;
	inode_done(&in);
	r = ckpt_is_sealed(txn, in.ckpt_ino, &sealed);
	if (r < 0)
		goto out_abort;
	if (sealed) {
		r = store_error(-EROFS, "inode %llu: checkpoint %llu is sealed",
				(unsigned long long)ino_out, (unsigned long long)in.ckpt_ino);
		goto out_abort;
	}

	for (uint64_t done = 0; done < npages;) {
		uint64_t idx = first_out + done, block = idx / FMAP_SLOTS, slot = idx % FMAP_SLOTS;
		uint64_t m = MIN(FMAP_SLOTS - slot, npages - done);
		bool changed = false;

		/* Source ids first: in one file the source slots may share this block. */
		r = fmap_read_ids(txn, ino_in, first_in + done, m, src);
		if (r < 0)
			goto out_abort;
		r = fmap_block_load(txn, ino_out, block, ids);
		if (r < 0)
			goto out_abort;
		for (uint64_t i = 0; i < m; i++) {
			uint8_t *at = ids + (slot + i) * STORE_CHUNK_ID_LEN;
			struct chunk_id old;

			memcpy(old.b, at, STORE_CHUNK_ID_LEN);
			if (chunk_id_equal(&old, &src[i]))
				continue;
			if (!chunk_id_is_null(&src[i]))
				d[nd++] = (struct ref_delta){.id = src[i], .delta = 1};
			if (!chunk_id_is_null(&old))
				d[nd++] = (struct ref_delta){.id = old, .delta = -1};
			memcpy(at, src[i].b, STORE_CHUNK_ID_LEN);
			changed = true;
		}
		done += m;
		if (!changed)
			continue;
		r = fmap_block_store(txn, ino_out, block, ids);
		if (r < 0)
			goto out_abort;
	}

	/* One update per distinct id, in key order: repeated pages (zero-filled structures,
	 * copies of copies) cost one refcount write, and the chunk tree is walked forwards. */
	r = sort_deltas(d, nd);
	if (r < 0)
		goto out_abort;
	for (size_t i = 0, j; i < nd; i = j) {
		struct ref_delta sum = d[i];

		for (j = i + 1; j < nd && chunk_id_equal(&d[j].id, &sum.id); j++)
			sum.delta += d[j].delta;
		if (sum.delta == 0)
			continue;
		r = chunk_refs_add(txn, &sum, ino_in, &stored);
		if (r < 0)
			goto out_abort;
	}

	r = ino_load(txn, ino_out, &in);
	if (r < 0)
		goto out_abort;
	inode_done(&in);
	in.size = MAX(in.size, min_size);
	now_ts(&in.mtime);
	in.ctime = in.mtime;
	inode_add_stored(&in, stored);
	r = ino_save(txn, &in);
	if (r < 0)
		goto out_abort;
	r = idx_txn_commit(txn);
	if (r < 0)
		return r;
	*ret_size = in.size;
	*ret_mtime = in.mtime;
	return 0;

out_abort:
	idx_txn_abort(txn);
	return r;
}

/* The by-reference part: npages whole chunks (s->mu held, in and out pinned). Copies fewer
 * when the source shrank while the buffers were stored; *ret_pages says how many. -EAGAIN when
 * the files never settled (the caller copies bytes instead). */
static int copy_pages_locked(struct store *s, struct oinode *in, struct oinode *out,
			     uint64_t first_in, uint64_t first_out, uint64_t npages,
			     uint64_t *ret_pages)
{
	uint64_t done = 0;
	int r = 0;

	while (done < npages) {
		uint64_t want = MIN(npages - done, COPY_TXN_PAGES), n, avail, size = 0;
		uint64_t from = (first_in + done) * STORE_CHUNK_SIZE;
		struct timespec mtime;

		r = settle(s, in, first_in + done, want, out);
		if (r < 0)
			break;
		/* Settled and locked: in->size is the source's size until the commit. */
		avail = in->size > from ? (in->size - from) / STORE_CHUNK_SIZE : 0;
		n = MIN(want, avail);
		if (n == 0)
			break;
		r = copy_refs(s, in->ino, first_in + done, out->ino, first_out + done, n,
			      (first_out + done + n) * STORE_CHUNK_SIZE, &size, &mtime);
		if (r < 0)
			break;
		/* The destination's buffered pages in the range are older than the copy, which
		 * just replaced them; writers waiting for room may go on. */
		if (oinode_drop_dirty(s, out, first_out + done, n))
			pthread_cond_broadcast(&s->flushed);
		out->size = MAX(out->size, size);
		out->mtime = mtime;
		ckpt_touch_locked(s, out->ckpt_ino);
		done += n;
		if (n < want)
			break; /* the source ends here now */
	}
	/* Pages already committed count even if a later batch failed. */
	if (done > 0 || r >= 0) {
		*ret_pages = done;
		return 0;
	}
	return r;
}

int store_copy_range(struct store *s, uint64_t ino_in, uint64_t off_in, uint64_t ino_out,
		     uint64_t off_out, uint64_t len, uint64_t *ret_copied)
{
	struct oinode *in = NULL, *out = NULL;
	uint64_t end_out, head = 0, npages = 0, tail = 0, pages_done = 0, got;
	uint64_t total = 0;
	bool by_bytes = false;
	int r;

	if (s->flags & STORE_OPEN_RDONLY)
		return store_error(-EROFS, "inode %llu: the store is open read-only",
				   (unsigned long long)ino_out);
	pthread_mutex_lock(&s->mu);
	r = oinode_get(s, ino_in, &in);
	if (r < 0) {
		in = NULL;
		goto out_unlock;
	}
	in->pins++;
	r = oinode_get(s, ino_out, &out);
	if (r < 0) {
		out = NULL;
		goto out_unpin;
	}
	out->pins++;
	if (out->sealed) {
		r = store_error(-EROFS, "inode %llu: its checkpoint is sealed",
				(unsigned long long)ino_out);
		goto out_unpin;
	}
	/* The kernel's rules: shorten to the source's end first, then refuse overlap. */
	len = off_in >= in->size ? 0 : MIN(len, in->size - off_in);
	if (len == 0)
		goto out_unpin;
	if (add_overflows_u64(off_out, len, &end_out) || end_out > (1ULL << 62)) {
		r = store_error(-EFBIG,
				"inode %llu: a copy to offset %llu would pass the largest size",
				(unsigned long long)ino_out, (unsigned long long)off_out);
		goto out_unpin;
	}
	if (ino_in == ino_out && off_out < off_in + len && off_in < end_out) {
		r = store_error(-EINVAL,
				"inode %llu: copy ranges overlap (%llu and %llu, %llu bytes)",
				(unsigned long long)ino_in, (unsigned long long)off_in,
				(unsigned long long)off_out, (unsigned long long)len);
		goto out_unpin;
	}
	/* Chunk boundaries line up only when both offsets sit at the same place in a page. */
	by_bytes = off_in % STORE_CHUNK_SIZE != off_out % STORE_CHUNK_SIZE;
	if (!by_bytes) {
		head = MIN(len, (STORE_CHUNK_SIZE - off_in % STORE_CHUNK_SIZE) % STORE_CHUNK_SIZE);
		npages = (len - head) / STORE_CHUNK_SIZE;
		tail = len - head - npages * STORE_CHUNK_SIZE;
	}
	if (npages > 0) {
		r = copy_pages_locked(s, in, out, (off_in + head) / STORE_CHUNK_SIZE,
				      (off_out + head) / STORE_CHUNK_SIZE, npages, &pages_done);
		if (r == -EAGAIN) {
			by_bytes = true;
			r = 0;
		} else if (r < 0) {
			goto out_unpin;
		} else if (pages_done < npages) {
			tail = 0; /* the source shrank: the copy ends after these pages */
		}
	}

out_unpin:
	if (out) {
		out->pins--;
		if (out != in)
			oinode_put(s, out);
	}
	if (in) {
		in->pins--;
		oinode_put(s, in);
	}
out_unlock:
	pthread_mutex_unlock(&s->mu);
	if (r < 0 || len == 0) {
		if (r >= 0)
			*ret_copied = 0;
		return r;
	}

	/* The edges (or everything) as bytes, outside s->mu: store_read/store_write take it. */
	if (by_bytes) {
		r = copy_bytes(s, ino_in, off_in, ino_out, off_out, len, &total);
		if (r < 0)
			return r;
		*ret_copied = total;
		return 0;
	}
	if (head > 0) {
		r = copy_bytes(s, ino_in, off_in, ino_out, off_out, head, &got);
		if (r < 0)
			return r;
		if (got < head) {
			*ret_copied = got;
			return 0;
		}
	}
	total = head + pages_done * STORE_CHUNK_SIZE;
	if (tail > 0) {
		r = copy_bytes(s, ino_in, off_in + total, ino_out, off_out + total, tail, &got);
		if (r < 0)
			return r;
		total += got;
	}
	*ret_copied = total;
	return 0;
}
