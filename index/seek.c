// SPDX-License-Identifier: MIT
/*
 * seek.c - where a file's data and holes are (lseek SEEK_DATA / SEEK_HOLE), at chunk (4 KiB)
 * granularity. A chunk is a hole when the file map has no id for it - never written, written
 * as zeros (the store keeps all-zero pages as holes), punched, or cut by a truncation - and no
 * buffered write covers it; everything else is data. Checkpoint images are mostly pages, many
 * of them zero: a reader that skips holes (cp --sparse, a restore of anonymous memory) need
 * neither read nor allocate them.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "index/store_priv.h"

/* Whether the open inode has buffered state that may differ from the file map. */
static bool has_buffered(const struct oinode *oi)
{
	return oi && (oi->blocks.n || oi->fl_blocks.n || oi->trunc_floor != UINT64_MAX ||
		      oi->fl_trunc_floor != UINT64_MAX);
}

/* Whether slot of a file-map block value (v, vlen; NULL: no such block) holds an id. */
static bool fmap_slot_used(const uint8_t *v, size_t vlen, uint64_t slot)
{
	static const uint8_t null_id[STORE_CHUNK_ID_LEN];

	if (!v || (slot + 1) * STORE_CHUNK_ID_LEN > vlen)
		return false;
	return memcmp(v + slot * STORE_CHUNK_ID_LEN, null_id, STORE_CHUNK_ID_LEN) != 0;
}

/*
 * Chunk index of the first chunk in [first, end) whose state is want_data, going by the file
 * map only: a cursor walks the blocks that exist, so the unwritten stretches of a huge sparse
 * file cost nothing. end if none.
 */
static int scan_fmap(struct idx_txn *txn, uint64_t ino, uint64_t first, uint64_t end,
		     bool want_data, uint64_t *ret)
{
	struct idx_cursor *c = NULL;
	uint8_t k[FMAP_KEY_LEN];
	const void *key, *val;
	size_t klen, vlen;
	uint64_t idx = first;
	int r;

	r = idx_cursor_open(txn, IDX_FMAP, &c);
	if (r < 0)
		return r;
	fmap_key(k, ino, first / FMAP_SLOTS);
	r = idx_cursor_seek(c, k, sizeof(k), &key, &klen, &val, &vlen);
	while (idx < end) {
		uint64_t block = UINT64_MAX;

		if (r == 0 && klen == FMAP_KEY_LEN && be64_get(key) == ino)
			block = be64_get((const uint8_t *)key + 8);
		else if (r < 0 && r != -ENOENT)
			goto out;
		if (block == UINT64_MAX || block > idx / FMAP_SLOTS) {
			/* a block the map does not have: holes up to the next one */
			if (!want_data)
				break;
			if (block == UINT64_MAX)
				idx = end;
			else
				idx = block * FMAP_SLOTS;
			continue;
		}
		for (; idx < end && idx / FMAP_SLOTS == block; idx++)
			if (fmap_slot_used(val, vlen, idx % FMAP_SLOTS) == want_data)
				goto found;
		r = idx_cursor_next(c, &key, &klen, &val, &vlen);
	}
found:
	*ret = MIN(idx, end);
	r = 0;
out:
	idx_cursor_close(c);
	return r;
}

/* Chunks scan_buffered looks at, at most (1 GiB of file; ~1 ms under s->mu, which writers
 * wait for: 4 GiB held it 4.5 ms). Past that it answers "data"
 * for SEEK_DATA and the end of the file for SEEK_HOLE, which lseek(2) allows (a hole may
 * always be reported as data): a file being written has its buffers flushed soon, and then
 * the map answers at any size. */
#define SCAN_BUFFERED_MAX (1u << 18)

/* The same with buffered writes in the way: chunk by chunk, the buffers first. Under s->mu. */
static int scan_buffered(struct idx_txn *txn, struct oinode *oi, uint64_t first, uint64_t end,
			 bool want_data, uint64_t *ret)
{
	uint64_t cur_block = UINT64_MAX, idx;
	uint64_t limit = end - first > SCAN_BUFFERED_MAX ? first + SCAN_BUFFERED_MAX : end;
	const void *v = NULL;
	size_t vlen = 0;
	int r;

	for (idx = first; idx < limit; idx++) {
		const uint8_t *mp;
		bool data;

		if (oinode_mem_chunk(oi, idx, &mp)) {
			data = mp != NULL;
		} else {
			if (idx / FMAP_SLOTS != cur_block) {
				uint8_t k[FMAP_KEY_LEN];

				cur_block = idx / FMAP_SLOTS;
				fmap_key(k, oi->ino, cur_block);
				r = idx_get(txn, IDX_FMAP, k, sizeof(k), &v, &vlen);
				if (r == -ENOENT)
					v = NULL;
				else if (r < 0)
					return r;
			}
			data = fmap_slot_used(v, vlen, idx % FMAP_SLOTS);
		}
		if (data == want_data)
			break;
	}
	/* Given up at the cap: data there for SEEK_DATA, the next hole only at the end of the
	 * file for SEEK_HOLE. */
	if (idx == limit && limit < end)
		idx = want_data ? limit : end;
	*ret = idx;
	return 0;
}

int store_seek(struct store *s, uint64_t ino, uint64_t off, bool want_data, uint64_t *ret_off)
{
	struct idx_txn *txn = NULL;
	struct oinode *oi;
	struct inode in;
	uint64_t fsize = 0, end = 0, idx = 0;
	bool locked = true;
	int r;

	pthread_mutex_lock(&s->mu);
	/* Begun under s->mu, like store_read: a flush that freed buffers we do not see has
	 * committed before, so the map then has those chunks. */
	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		goto out;
	r = ino_load(txn, ino, &in);
	if (r < 0)
		goto out;
	inode_done(&in);
	if (!S_ISREG(in.mode)) {
		r = S_ISDIR(in.mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	oi = u64map_get(&s->inodes, ino);
	fsize = oi ? oi->size : in.size;
	if (off >= fsize) {
		r = -ENXIO;
		goto out;
	}
	end = (fsize + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE;
	if (has_buffered(oi)) {
		r = scan_buffered(txn, oi, off / STORE_CHUNK_SIZE, end, want_data, &idx);
	} else {
		/* The map alone answers: no need to hold up writers while it is walked. */
		pthread_mutex_unlock(&s->mu);
		locked = false;
		r = scan_fmap(txn, ino, off / STORE_CHUNK_SIZE, end, want_data, &idx);
	}
out:
	if (locked)
		pthread_mutex_unlock(&s->mu);
	idx_txn_abort(txn);
	if (r < 0)
		return r;
	if (idx >= end) {
		/* No data after off; for holes the end of the file is one. */
		if (want_data)
			return -ENXIO;
		*ret_off = fsize;
		return 0;
	}
	*ret_off = MAX(off, idx * STORE_CHUNK_SIZE);
	return 0;
}
