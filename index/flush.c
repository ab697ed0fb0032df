// SPDX-License-Identifier: MIT
/*
 * flush.c - turning buffered pages into stored chunks: hash, dedup against the index, compress
 * and append new chunks to this process's pack, fdatasync, then ONE index transaction per
 * inode flush (file map, refcounts, new chunk locations, size/mtime). Also the background
 * flusher thread that keeps hashing and compression off the writer's path.
 *
 * Deferred compression: on 2 cores zstd cannot keep up with a process dumping its memory, and
 * writers would wait for the dirty budget. So a flush of 16 new chunks or more (a bulk write
 * of data the store has never seen) goes into the pack uncompressed as PACK_CODEC_DEFER
 * records, which costs a memcpy instead of ~13 us per page. The mount runs gc later, when
 * writes are idle, to compress them (store_defer_idle/store_defer_done, fs/defer_pass.c). Only
 * a process that runs such a pass turns the automatic rule on (store_defer_enable); others
 * compress everything on the write path unless CKPTFS_DEFER=always.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "index/maint_priv.h"
#include "index/pack.h"
#include "index/store_priv.h"

struct flush_ent {
	uint64_t idx;
	struct chunk_id id; /* null: hole */
	uint8_t *page;
	uint32_t uniq; /* index into the unique-chunk table (non-holes) */
};

struct flush_uniq {
	struct chunk_id id;
	uint8_t *page;
	bool known;   /* indexed before this flush */
	bool written; /* appended to our pack by this flush */
	struct chunk_loc loc;
};

static int cmp_ent_idx(const void *a, const void *b)
{
	const struct flush_ent *x = a, *y = b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_ent_ptr_id(const void *a, const void *b)
{
	const struct flush_ent *const *x = a, *const *y = b;

	return memcmp((*x)->id.b, (*y)->id.b, STORE_CHUNK_ID_LEN);
}

void (*store_test_hook)(struct store *s, const char *point);

/* The pack writers one flush appended to, held until its index transaction is over. */
struct pw_pins {
	struct pack_writer **pw;
	size_t n, cap;
};

/* Holds the current writer for this flush (s->pack_mu held). Writers only ever move forward
 * and a held one is never freed, so comparing with the last pin is enough. */
static int pw_pin_current(struct store *s, struct pw_pins *p)
{
	if (p->n && p->pw[p->n - 1] == s->pw)
		return 0;
	if (p->n == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 4;
		struct pack_writer **n = realloc(p->pw, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->pw = n;
		p->cap = ncap;
	}
	p->pw[p->n++] = s->pw;
	s->pw_users++;
	return 0;
}

/* Lets go of the writers a flush held (after its commit or its failure); a retired one whose
 * last holder this was is unlocked now, and gc may take it from then on. */
static void pw_unpin_all(struct store *s, struct pw_pins *p)
{
	if (p->n == 0)
		goto out;
	pthread_mutex_lock(&s->pack_mu);
	for (size_t i = 0; i < p->n; i++) {
		if (p->pw[i] == s->pw) {
			assert(s->pw_users > 0);
			s->pw_users--;
			continue;
		}
		for (size_t k = 0; k < s->npw_retired; k++) {
			struct pw_retired *rw = &s->pw_retired[k];

			if (rw->pw != p->pw[i])
				continue;
			assert(rw->users > 0);
			if (--rw->users == 0) {
				pack_writer_free(rw->pw);
				*rw = s->pw_retired[--s->npw_retired];
			}
			break;
		}
	}
	pthread_mutex_unlock(&s->pack_mu);
out:
	free(p->pw);
	*p = (struct pw_pins){0};
}

int pack_number_alloc(struct store *s, uint32_t *ret_number)
{
	struct idx_txn *txn = NULL;
	uint64_t next;
	int r;

	r = idx_txn_begin(s->db, true, &txn);
	if (r < 0)
		return r;
	r = meta_get_u64(txn, "next_pack", &next);
	if (r >= 0 && next > UINT32_MAX)
		r = store_error(-EOVERFLOW, "pack numbers exhausted");
	if (r >= 0)
		r = meta_put_u64(txn, "next_pack", next + 1);
	if (r < 0) {
		idx_txn_abort(txn);
		return r;
	}
	r = idx_txn_commit(txn);
	if (r < 0)
		return r;
	*ret_number = (uint32_t)next;
	return 0;
}

/* Gets this process's pack writer, starting a new pack when there is none or it is full
 * (s->pack_mu held). A full pack is synced before it is let go: another flush may have appended
 * to it and will only sync the writer that is current when it finishes. It keeps its lock while
 * flushes that appended to it have not committed (see struct store). */
static int pack_writer_ensure(struct store *s)
{
	uint32_t next;
	int r;

	if (s->pw && pack_writer_size(s->pw) < s->pack_roll_bytes)
		return 0;
	if (s->pw) {
		if (s->pw_users) {
			/* Room first, so a failure leaves the writer where it was. */
			struct pw_retired *n =
				realloc(s->pw_retired, (s->npw_retired + 1) * sizeof(*n));
			if (!n)
				return -ENOMEM;
			s->pw_retired = n;
		}
		r = pack_writer_sync(s->pw);
		if (r < 0)
			return r;
		if (s->pw_users)
			s->pw_retired[s->npw_retired++] =
				(struct pw_retired){.pw = s->pw, .users = s->pw_users};
		else
			pack_writer_free(s->pw);
		s->pw = NULL;
		s->pw_users = 0;
	}
	r = pack_number_alloc(s, &next);
	if (r < 0)
		return r;
	return pack_writer_create(s->dirfd, next, &s->pw);
}

/* DEFER_AUTO_OFF: automatic, but nobody compresses later in this process (no pass): never. */
enum { DEFER_AUTO_OFF, DEFER_AUTO, DEFER_NEVER, DEFER_ALWAYS };

/* A flush with this many new chunks (64 KiB of pages the store has never seen) defers: a
 * caller waiting for it (fsync, close, seal, the budget) would wait ~13 us per page more, and
 * on the flusher thread a batch this big means writers are streaming new data faster than it
 * compresses. Smaller flushes are compressed: their cost is small and a later pass over a
 * few scattered pages would cost more than it saves. */
#define DEFER_FG_MIN_CHUNKS 16u

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Should the next batch of new chunks go in uncompressed? ntodo: new chunks of this flush.
 */
static bool flush_should_defer(struct store *s, size_t ntodo)
{
	int mode = __atomic_load_n(&s->defer_mode, __ATOMIC_RELAXED);

	if (mode != DEFER_AUTO)
		return mode == DEFER_ALWAYS;
	return ntodo >= DEFER_FG_MIN_CHUNKS;
}

/* Records encoded per append: one pwritev of up to IOV_MAX pieces. */
#define ENC_BATCH   1024u
#define ENC_MAX_THR 4u
#define ENC_PAR_MIN 64u

struct enc_job {
	struct flush_uniq *u;
	const size_t *todo; /* indexes into u */
	size_t from, to;    /* range of todo (and of recs/lens, relative to the batch start) */
	size_t base;
	uint8_t *recs; /* PACK_MAX_REC_LEN per record */
	uint32_t *lens;
	int err;
};

static void *enc_main(void *arg)
{
	struct enc_job *j = arg;

	for (size_t k = j->from; k < j->to; k++) {
		struct flush_uniq *q = &j->u[j->todo[j->base + k]];
		int r = pack_record_encode(&q->id, q->page, j->recs + k * PACK_MAX_REC_LEN,
					   &q->loc.desc);
		if (r < 0) {
			j->err = r;
			break;
		}
		j->lens[k] = (uint32_t)r;
	}
	return NULL;
}

/* Compression is the costly part of a fresh write: spread a batch over a few threads. A
 * deferred batch is only copied, on this thread. */
static int encode_batch(struct store *s, struct flush_uniq *u, const size_t *todo, size_t base,
			size_t n, uint8_t *recs, uint32_t *lens, bool defer)
{
	struct enc_job jobs[ENC_MAX_THR];
	pthread_t th[ENC_MAX_THR];
	bool started[ENC_MAX_THR] = {false};
	unsigned nt = n >= ENC_PAR_MIN ? s->enc_threads : 1;
	int r = 0;

	if (defer) {
		for (size_t k = 0; k < n; k++) {
			struct flush_uniq *q = &u[todo[base + k]];

			lens[k] = (uint32_t)pack_record_encode_deferred(
				&q->id, q->page, recs + k * PACK_MAX_REC_LEN, &q->loc.desc);
		}
		return 0;
	}
	for (unsigned t = 0; t < nt; t++) {
		jobs[t] = (struct enc_job){.u = u,
					   .todo = todo,
					   .base = base,
					   .from = n * t / nt,
					   .to = n * (t + 1) / nt,
					   .recs = recs,
					   .lens = lens};
		/* Thread 0 is this one; if a helper cannot start, this thread does its share. */
		if (t > 0 && pthread_create(&th[t], NULL, enc_main, &jobs[t]) == 0)
			started[t] = true;
	}
	for (unsigned t = 0; t < nt; t++)
		if (t == 0 || !started[t])
			enc_main(&jobs[t]);
	for (unsigned t = 0; t < nt; t++) {
		if (started[t])
			pthread_join(th[t], NULL);
		if (jobs[t].err && !r)
			r = jobs[t].err;
	}
	return r;
}

/* Compresses and appends every unique chunk that still needs a home, then fdatasyncs. */
static int write_new_chunks(struct store *s, struct flush_uniq *u, size_t nu, struct pw_pins *pins)
{
	_cleanup_free_ size_t *todo = NULL;
	_cleanup_free_ uint8_t *recs = NULL;
	_cleanup_free_ uint32_t *lens = NULL;
	_cleanup_free_ struct iovec *iov = NULL;
	size_t ntodo = 0, cap;
	int r = 0;

	todo = malloc(MAX(nu, 1) * sizeof(*todo));
	if (!todo)
		return -ENOMEM;
	for (size_t i = 0; i < nu; i++)
		if (!u[i].known && !u[i].written)
			todo[ntodo++] = i;
	if (ntodo == 0)
		return 0;
	cap = MIN(ntodo, (size_t)ENC_BATCH);
	recs = malloc(cap * PACK_MAX_REC_LEN);
	lens = malloc(cap * sizeof(*lens));
	iov = malloc(cap * sizeof(*iov));
	if (!recs || !lens || !iov)
		return -ENOMEM;
	for (size_t b = 0; b < ntodo; b += cap) {
		size_t n = MIN(cap, ntodo - b), total = 0;
		bool defer = flush_should_defer(s, ntodo);
		uint64_t start;

		/* Encoding runs without pack_mu: other flushes may append meanwhile. */
		r = encode_batch(s, u, todo, b, n, recs, lens, defer);
		if (r < 0)
			return r;
		for (size_t k = 0; k < n; k++) {
			iov[k].iov_base = recs + k * PACK_MAX_REC_LEN;
			iov[k].iov_len = lens[k];
			total += lens[k];
		}
		pthread_mutex_lock(&s->pack_mu);
		r = pack_writer_ensure(s);
		if (r >= 0)
			r = pw_pin_current(s, pins);
		if (r >= 0 && maint_fault("pack_append_eio"))
			r = store_error(-EIO,
					"pack %u: append stopped at fault point "
					"'pack_append_eio'",
					pack_writer_number(s->pw));
		if (r >= 0 && defer)
			r = pack_writer_mark_deferred(s->pw);
		if (r >= 0)
			r = pack_writer_appendv(s->pw, iov, (int)n, total, &start);
		if (r >= 0 && defer)
			s->defer_appended += total;
		if (r >= 0) {
			for (size_t k = 0; k < n; k++) {
				struct flush_uniq *q = &u[todo[b + k]];

				q->loc.pack = pack_writer_number(s->pw);
				q->loc.off = start;
				q->written = true;
				start += lens[k];
			}
		}
		pthread_mutex_unlock(&s->pack_mu);
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&s->pack_mu);
	/* Our records are in the current pack or in one a roll synced already. */
	if (s->pw)
		r = pack_writer_sync(s->pw);
	pthread_mutex_unlock(&s->pack_mu);
	return r < 0 ? r : 0;
}

/* Applies the entries of one file-map block inside txn. */
static int apply_block(struct idx_txn *txn, uint64_t ino, struct flush_ent *e, size_t n,
		       struct flush_uniq *u, int64_t *stored_delta, bool *ret_missing)
{
	uint8_t ids[FMAP_BLOCK_LEN];
	uint64_t block = e[0].idx / FMAP_SLOTS;
	int r;

	r = fmap_block_load(txn, ino, block, ids);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		uint8_t *slot = ids + (e[i].idx % FMAP_SLOTS) * STORE_CHUNK_ID_LEN;
		struct chunk_id old;
		uint32_t len;

		memcpy(old.b, slot, STORE_CHUNK_ID_LEN);
		if (chunk_id_equal(&old, &e[i].id))
			continue;
		if (!chunk_id_is_null(&e[i].id)) {
			struct flush_uniq *q = &u[e[i].uniq];

			r = chunk_ref(txn, &e[i].id, &len);
			if (r == -ENOENT) {
				if (!q->written) {
					/* Indexed when we looked, gone now (gc): store it after
					 * all. */
					q->known = false;
					*ret_missing = true;
					return 0;
				}
				uint8_t cv[CHUNK_VAL_LEN];

				q->loc.refs = 1;
				chunk_val_encode(cv, &q->loc);
				r = idx_put(txn, IDX_CHUNKS, q->id.b, STORE_CHUNK_ID_LEN, cv,
					    sizeof(cv), 0);
				len = rec_bytes(q->loc.desc);
			}
			if (r < 0)
				return r;
			*stored_delta += len;
		}
		if (!chunk_id_is_null(&old)) {
			r = chunk_unref(txn, &old, &len);
			if (r < 0 && r != -ENOENT)
				return r;
			if (r >= 0)
				*stored_delta -= len;
		}
		memcpy(slot, e[i].id.b, STORE_CHUNK_ID_LEN);
	}
	return fmap_block_store(txn, ino, block, ids);
}

/* Stores the stolen dirty state of inode ino: hash, dedup against the index, compress and
 * append new chunks, fdatasync, then one index transaction. Runs without s->mu. The packs it
 * appended to are left in pins (still locked). */
static int flush_work_pinned(struct store *s, uint64_t ino, struct u64map *blocks, uint64_t npages,
			     uint64_t trunc_floor, bool meta, uint64_t size, struct timespec mtime,
			     struct pw_pins *pins, bool *ret_gone)
{
	_cleanup_free_ struct flush_ent *ents = NULL;
	_cleanup_free_ struct flush_ent **byid = NULL;
	_cleanup_free_ struct flush_uniq *u = NULL;
	struct idx_txn *txn = NULL;
	size_t n = 0, nu = 0;
	int r;

	ents = malloc(MAX(npages, 1) * sizeof(*ents));
	byid = malloc(MAX(npages, 1) * sizeof(*byid));
	u = malloc(MAX(npages, 1) * sizeof(*u));
	if (!ents || !byid || !u)
		return -ENOMEM;
	for (size_t i = 0; i < blocks->cap; i++) {
		struct dblock *b = blocks->slots[i].val;

		if (!b)
			continue;
		for (unsigned j = 0; j < DIRTY_SLOTS; j++) {
			struct flush_ent *e;

			if (!(b->present & (1ULL << j)))
				continue;
			e = &ents[n++];
			e->idx = blocks->slots[i].key * DIRTY_SLOTS + j;
			e->page = b->pages[j];
			if (!e->page || chunk_page_is_zero(e->page))
				memset(e->id.b, 0, sizeof(e->id.b));
			else
				chunk_id_compute(s->secret, e->page, &e->id);
		}
	}
	/* Unique non-hole chunks, so each new one is stored once even if repeated. */
	size_t nb = 0;
	for (size_t i = 0; i < n; i++)
		if (!chunk_id_is_null(&ents[i].id))
			byid[nb++] = &ents[i];
	qsort(byid, nb, sizeof(*byid), cmp_ent_ptr_id);
	for (size_t i = 0; i < nb; i++) {
		if (nu == 0 || !chunk_id_equal(&u[nu - 1].id, &byid[i]->id)) {
			memset(&u[nu], 0, sizeof(u[nu]));
			u[nu].id = byid[i]->id;
			u[nu].page = byid[i]->page;
			nu++;
		}
		byid[i]->uniq = (uint32_t)(nu - 1);
	}
	/* Which chunks does the index already have? (A read txn: no writer lock while we
	 * compress.) */
	if (nu > 0) {
		r = idx_txn_begin(s->db, false, &txn);
		if (r < 0)
			return r;
		for (size_t i = 0; i < nu; i++) {
			struct chunk_loc loc;

			r = chunk_lookup(txn, &u[i].id, &loc);
			if (r < 0 && r != -ENOENT)
				break;
			u[i].known = r >= 0;
			r = 0;
		}
		idx_txn_abort(txn);
		txn = NULL;
		if (r < 0)
			return r;
	}
	qsort(ents, n, sizeof(*ents), cmp_ent_idx);
	/* Store new chunks in file order, so a sequential read walks the pack forwards. */
	if (nu > 1) {
		_cleanup_free_ uint32_t *map = malloc(nu * sizeof(*map));
		_cleanup_free_ struct flush_uniq *ord = malloc(nu * sizeof(*ord));
		size_t k = 0;

		if (!map || !ord)
			return -ENOMEM;
		for (size_t i = 0; i < nu; i++)
			map[i] = UINT32_MAX;
		for (size_t i = 0; i < n; i++) {
			if (chunk_id_is_null(&ents[i].id) || map[ents[i].uniq] != UINT32_MAX)
				continue;
			map[ents[i].uniq] = (uint32_t)k;
			ord[k++] = u[ents[i].uniq];
		}
		memcpy(u, ord, nu * sizeof(*u));
		for (size_t i = 0; i < n; i++)
			if (!chunk_id_is_null(&ents[i].id))
				ents[i].uniq = map[ents[i].uniq];
	}

	for (int attempt = 0;; attempt++) {
		struct inode in;
		bool missing = false, sealed;
		int64_t delta = 0;

		r = write_new_chunks(s, u, nu, pins);
		if (r < 0)
			return r;
		if (store_test_hook)
			store_test_hook(s, "flush_before_commit");
		r = idx_txn_begin(s->db, true, &txn);
		if (r < 0)
			return r;
		r = ino_load(txn, ino, &in);
		if (r == -ENOENT) {
			/* Removed meanwhile (e.g. its checkpoint was deleted): nothing to keep. */
			idx_txn_abort(txn);
			*ret_gone = true;
			return 0;
		}
		if (r < 0)
			goto fail;
		inode_done(&in);
		r = ckpt_is_sealed(txn, in.ckpt_ino, &sealed);
		if (r < 0)
			goto fail;
		if (sealed) {
			/* Sealed (maybe by another process) while we buffered: refuse. */
			idx_txn_abort(txn);
			return store_error(-EROFS,
					   "inode %llu: checkpoint %llu was sealed before its "
					   "buffered writes were stored",
					   (unsigned long long)ino,
					   (unsigned long long)in.ckpt_ino);
		}
		if (trunc_floor != UINT64_MAX) {
			uint64_t freed;

			r = fmap_drop_from(txn, ino,
					   (trunc_floor + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE,
					   &freed);
			if (r < 0)
				goto fail;
			delta -= (int64_t)freed;
		}
		for (size_t i = 0; i < n && !missing;) {
			size_t j = i + 1;

			while (j < n && ents[j].idx / FMAP_SLOTS == ents[i].idx / FMAP_SLOTS)
				j++;
			r = apply_block(txn, ino, ents + i, j - i, u, &delta, &missing);
			if (r < 0)
				goto fail;
			i = j;
		}
		if (missing) {
			/* gc drops many chunks in one commit: find every vanished one now, not
			 * one file-map block per attempt. */
			for (size_t i = 0; i < nu; i++) {
				struct chunk_loc gone;

				if (u[i].known && !u[i].written &&
				    chunk_lookup(txn, &u[i].id, &gone) == -ENOENT)
					u[i].known = false;
			}
			idx_txn_abort(txn);
			txn = NULL;
			if (attempt >= 3)
				return store_error(-EAGAIN,
						   "inode %llu: chunks keep vanishing from "
						   "the index during flush",
						   (unsigned long long)ino);
			continue;
		}
		if (meta) {
			in.size = size;
			in.mtime = in.ctime = mtime;
		}
		inode_add_stored(&in, delta);
		r = ino_save(txn, &in);
		if (r < 0)
			goto fail;
		r = idx_txn_commit(txn);
		txn = NULL;
		if (r < 0)
			return r;
		break;
	}
	return 0;
fail:
	idx_txn_abort(txn);
	return r;
}

static int flush_work(struct store *s, uint64_t ino, struct u64map *blocks, uint64_t npages,
		      uint64_t trunc_floor, bool meta, uint64_t size, struct timespec mtime,
		      bool *ret_gone)
{
	struct pw_pins pins = {0};
	int r = flush_work_pinned(s, ino, blocks, npages, trunc_floor, meta, size, mtime, &pins,
				  ret_gone);

	/* Committed or given up: records nobody will index are garbage gc may now drop. */
	pw_unpin_all(s, &pins);
	return r;
}

static void blocks_free(struct store *s, struct u64map *m, bool in_flight)
{
	for (size_t i = 0; i < m->cap; i++) {
		struct dblock *b = m->slots[i].val;

		if (!b)
			continue;
		for (unsigned j = 0; j < DIRTY_SLOTS; j++) {
			if (!b->pages[j])
				continue;
			page_free(s, b->pages[j]);
			s->dirty_bytes -= STORE_CHUNK_SIZE;
			if (in_flight)
				s->flight_bytes -= STORE_CHUNK_SIZE;
		}
		free(b);
	}
	u64map_clear(m);
}

/* A failed flush puts its pages back under the newer ones, so nothing written is lost. Pages a
 * truncate made obsolete meanwhile (past the new trunc_floor) stay dropped. */
static void blocks_merge_back(struct store *s, struct oinode *oi)
{
	for (size_t i = 0; i < oi->fl_blocks.cap; i++) {
		struct dblock *fb = oi->fl_blocks.slots[i].val, *b;
		uint64_t key = oi->fl_blocks.slots[i].key;

		if (!fb)
			continue;
		b = u64map_get(&oi->blocks, key);
		if (!b) {
			b = calloc(1, sizeof(*b));
			if (b && u64map_put(&oi->blocks, key, b) < 0) {
				free(b);
				b = NULL;
			}
		}
		for (unsigned j = 0; j < DIRTY_SLOTS; j++) {
			uint64_t bit = 1ULL << j, idx = key * DIRTY_SLOTS + j;

			if (!(fb->present & bit))
				continue;
			if (fb->pages[j])
				s->flight_bytes -= STORE_CHUNK_SIZE;
			if (b && !(b->present & bit) && idx * STORE_CHUNK_SIZE < oi->trunc_floor) {
				b->present |= bit;
				b->pages[j] = fb->pages[j];
				oi->npages++;
			} else if (fb->pages[j]) {
				page_free(s, fb->pages[j]);
				s->dirty_bytes -= STORE_CHUNK_SIZE;
			}
		}
		free(fb);
	}
	u64map_clear(&oi->fl_blocks);
	oi->fl_npages = 0;
	oi->trunc_floor = MIN(oi->trunc_floor, oi->fl_trunc_floor);
}

int oinode_flush(struct store *s, struct oinode *oi)
{
	uint64_t trunc, size;
	struct timespec mtime;
	bool meta, gone = false;
	int r;

	oi->pins++;
	while (oi->fl_active)
		pthread_cond_wait(&s->flushed, &s->mu);
	oi->pins--;
	if (oi->discard || (oi->npages == 0 && !oi->meta_dirty && oi->trunc_floor == UINT64_MAX))
		return 0;
	if (s->flags & STORE_OPEN_RDONLY)
		return -EROFS;
	/* Steal the dirty state; writers go on filling fresh blocks meanwhile. */
	oi->fl_blocks = oi->blocks;
	memset(&oi->blocks, 0, sizeof(oi->blocks));
	oi->fl_npages = oi->npages;
	oi->npages = 0;
	oi->fl_trunc_floor = trunc = oi->trunc_floor;
	oi->trunc_floor = UINT64_MAX;
	meta = oi->meta_dirty;
	oi->meta_dirty = false;
	size = oi->size;
	mtime = oi->mtime;
	oi->fl_active = true;
	for (size_t i = 0; i < oi->fl_blocks.cap; i++) {
		struct dblock *b = oi->fl_blocks.slots[i].val;

		for (unsigned j = 0; b && j < DIRTY_SLOTS; j++)
			if (b->pages[j])
				s->flight_bytes += STORE_CHUNK_SIZE;
	}
	pthread_mutex_unlock(&s->mu);

	r = flush_work(s, oi->ino, &oi->fl_blocks, oi->fl_npages, trunc, meta, size, mtime, &gone);

	pthread_mutex_lock(&s->mu);
	if (gone || r == -EROFS || (r < 0 && oi->discard)) {
		/* Nowhere to store it (inode gone, checkpoint sealed), or nobody wants it any more
		 * (discarded while this flush ran): merging a failed flush back into a discarded
		 * inode would leave dirty pages that no flush ever takes, and the flusher would
		 * pick that inode again and again without letting go of s->mu. */
		blocks_free(s, &oi->fl_blocks, true);
		if (gone) {
			blocks_free(s, &oi->blocks, false);
			oi->npages = 0;
			oi->trunc_floor = UINT64_MAX;
			oi->meta_dirty = false;
		}
		if (r == -EROFS)
			oi->sealed = true;
	} else if (r < 0) {
		blocks_merge_back(s, oi);
		if (meta)
			oi->meta_dirty = true;
		oi->flush_err = r;
	} else {
		blocks_free(s, &oi->fl_blocks, true);
		oi->flush_err = 0;
		/* Its manifest is now stale; the next sync point rewrites it. */
		(void)u64map_put(&s->touched, oi->ckpt_ino, (void *)1);
	}
	oi->fl_npages = 0;
	oi->fl_trunc_floor = UINT64_MAX;
	oi->fl_active = false;
	s->last_flush_ns = mono_ns();
	pthread_cond_broadcast(&s->flushed);
	return r;
}

/* Snapshot of the inode numbers with state (the table may change while a flush is unlocked). */
static uint64_t *inode_list(struct store *s, uint64_t ckpt_ino, size_t *ret_n)
{
	uint64_t *list = malloc(MAX(s->inodes.n, 1) * sizeof(*list));
	size_t n = 0;

	if (!list)
		return NULL;
	for (size_t i = 0; i < s->inodes.cap; i++) {
		struct oinode *oi = s->inodes.slots[i].val;

		if (oi && (!ckpt_ino || oi->ckpt_ino == ckpt_ino))
			list[n++] = oi->ino;
	}
	*ret_n = n;
	return list;
}

static int flush_list(struct store *s, uint64_t ckpt_ino)
{
	size_t n = 0;
	uint64_t *list = inode_list(s, ckpt_ino, &n);
	int r = 0;

	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct oinode *oi = u64map_get(&s->inodes, list[i]);
		int q;

		if (!oi)
			continue;
		q = oinode_flush(s, oi);
		if (q < 0 && r == 0)
			r = q;
		oinode_put(s, oi);
	}
	free(list);
	return r;
}

int store_flush_all_locked(struct store *s)
{
	return flush_list(s, 0);
}

int store_flush_ckpt(struct store *s, uint64_t ckpt_ino)
{
	int r;

	pthread_mutex_lock(&s->mu);
	r = flush_list(s, ckpt_ino);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* The inode with the most buffered pages that is not being flushed already. */
static struct oinode *flusher_pick(struct store *s)
{
	struct oinode *best = NULL;

	for (size_t i = 0; i < s->inodes.cap; i++) {
		struct oinode *oi = s->inodes.slots[i].val;

		if (oi && !oi->fl_active && !oi->discard && oi->npages &&
		    (!best || oi->npages > best->npages))
			best = oi;
	}
	return best;
}

static void *flusher_main(void *arg)
{
	struct store *s = arg;

	pthread_mutex_lock(&s->mu);
	while (!s->flusher_stop) {
		struct oinode *oi = NULL;
		int r;

		/* Start once a quarter of the budget waits, so writers rarely hit the limit. */
		if (s->dirty_bytes - s->flight_bytes >= s->dirty_budget / 4)
			oi = flusher_pick(s);
		if (!oi) {
			pthread_cond_wait(&s->flusher_wake, &s->mu);
			continue;
		}
		r = oinode_flush(s, oi);
		s->flusher_err = r < 0 && r != -EROFS ? r : 0;
		oinode_put(s, oi);
		if (s->flusher_err) {
			/* Do not spin on a persistent failure (ENOSPC): writers see the error. */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&s->flusher_wake, &s->mu, &ts);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int flusher_start(struct store *s)
{
	const char *mode = getenv("CKPTFS_DEFER");
	int r;

	if (mode && !strcmp(mode, "always"))
		s->defer_mode = DEFER_ALWAYS;
	else if (mode && !strcmp(mode, "never"))
		s->defer_mode = DEFER_NEVER;
	else
		s->defer_mode = DEFER_AUTO_OFF;
	r = pthread_create(&s->flusher, NULL, flusher_main, s);

	if (r)
		return store_error(-r, "start flusher thread: %s", strerror(r));
	s->flusher_started = true;
	return 0;
}

void flusher_stop(struct store *s)
{
	if (!s->flusher_started)
		return;
	pthread_mutex_lock(&s->mu);
	s->flusher_stop = true;
	pthread_cond_broadcast(&s->flusher_wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->flusher, NULL);
	s->flusher_started = false;
}

void store_defer_enable(struct store *s)
{
	int off = DEFER_AUTO_OFF;

	/* Only the automatic mode changes: CKPTFS_DEFER=never/always stay as they are. */
	__atomic_compare_exchange_n(&s->defer_mode, &off, DEFER_AUTO, false, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
}

int store_defer_idle(struct store *s, unsigned idle_ms, uint64_t *ret_mark)
{
	uint64_t now = mono_ns(), handled, mark;
	bool quiet;
	int r = 0;

	pthread_mutex_lock(&s->mu);
	quiet = now - s->last_flush_ns >= (uint64_t)idle_ms * 1000000ULL;
	handled = s->defer_handled;
	pthread_mutex_unlock(&s->mu);
	if (!quiet)
		return 0;
	pthread_mutex_lock(&s->pack_mu);
	mark = s->defer_appended;
	/* Flushes still holding a pack are appending or about to commit: not idle after all. */
	if (mark == handled || s->pw_users || s->npw_retired)
		goto out;
	if (s->pw) {
		/* Let go of the current pack (sync, close, which drops its lock) so that gc can
		 * compress what it holds; the next flush starts a new pack. */
		r = pack_writer_sync(s->pw);
		if (r < 0)
			goto out;
		pack_writer_free(s->pw);
		s->pw = NULL;
	}
	*ret_mark = mark;
	r = 1;
out:
	pthread_mutex_unlock(&s->pack_mu);
	return r;
}

void store_defer_done(struct store *s, uint64_t mark)
{
	pthread_mutex_lock(&s->mu);
	if (mark > s->defer_handled)
		s->defer_handled = mark;
	pthread_mutex_unlock(&s->mu);
	/* Cached read fds of packs gc removed would keep their blocks allocated until unmount. */
	pthread_rwlock_wrlock(&s->fds_lock);
	for (uint32_t i = 0; i < s->npack_fds; i++) {
		struct stat st;

		if (s->pack_fds[i] >= 0 && fstat(s->pack_fds[i], &st) == 0 && st.st_nlink == 0) {
			close(s->pack_fds[i]);
			s->pack_fds[i] = -1;
		}
	}
	pthread_rwlock_unlock(&s->fds_lock);
}
