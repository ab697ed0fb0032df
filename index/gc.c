// SPDX-License-Identifier: MIT
/*
 * gc.c - reclaims the pack space of chunks nobody references any more, by copying the live
 * records of a pack into a new pack and dropping the old one.
 *
 * Crash safety rests on one ordering: new pack durable -> one index transaction that moves
 * every entry of the old pack (or gives up on it) -> index synced -> old pack unlinked. A crash
 * before the commit leaves an unreferenced new pack (garbage for the next gc); a crash after it
 * leaves an old pack no entry points to (also garbage). Concurrency: a pack some process may
 * still append to, or whose records it has not indexed yet, is flock'ed by it, and gc only
 * touches packs it can lock itself; a chunk that a writer re-references between gc's scan and
 * its commit makes gc leave that pack alone.
 *
 * Deferred records (PACK_CODEC_DEFER, raw pages a busy writer did not compress) are compressed
 * on the way: a pack holding live ones is always a victim, and its copy carries zstd (or plain
 * raw) records instead, with the index entries switched to the new descriptors in the same
 * transaction. So the same ordering makes the background compression pass crash-safe too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "index/maint_priv.h"
#include "index/pack.h"
#include "index/store_priv.h"

/* A pack is rewritten once this share of it is garbage; an all-garbage pack always goes. */
#define GC_MIN_GARBAGE_PCT 10u
#define GC_COPY_BUF	   (1u << 20)
/* Live records staged before they go into the copy buffer: deferred ones are compressed a
 * stage at a time, spread over a few threads. */
#define GC_STAGE	 512u
#define GC_STAGE_MAX_THR 4u
#define GC_MAX_GROUP	 256u
/* Records looked up per read transaction while scanning (keeps LMDB readers short-lived). */
#define GC_TXN_RECORDS 4096u

bool maint_fault(const char *point)
{
	const char *f = getenv("CKPTFS_FAULT");

	return f && !strcmp(f, point);
}

int maint_verify_record(const uint8_t secret[CHUNK_SECRET_LEN], const struct chunk_id *id,
			uint32_t desc, const void *payload)
{
	uint8_t page[STORE_CHUNK_SIZE];
	struct chunk_id got;

	if (pack_decode_payload(desc, payload, page) < 0)
		return -EBADMSG;
	chunk_id_compute(secret, page, &got);
	return chunk_id_equal(&got, id) ? 0 : -EBADMSG;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int maint_list_packs(int store_dirfd, uint32_t **ret, size_t *ret_n)
{
	_cleanup_close_ int fd = -1;
	uint32_t *list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	fd = openat(store_dirfd, PACK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return store_error(-errno, "open directory '" PACK_DIR "': %m");
	d = fdopendir(fd);
	if (!d)
		return store_error(-errno, "list directory '" PACK_DIR "': %m");
	fd = -1; /* owned by d now */
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		unsigned long v;

		/* Exactly 8 digits + ".pack": temp files and strays are not packs. */
		if (strlen(nm) != 13 || strcmp(nm + 8, ".pack") != 0 ||
		    strspn(nm, "0123456789") != 8)
			continue;
		v = strtoul(nm, NULL, 10);
		if (v > UINT32_MAX)
			continue;
		r = array_grow(&list, &cap, n, sizeof(*list), 64);
		if (r < 0)
			break;
		list[n++] = (uint32_t)v;
	}
	closedir(d);
	if (r < 0) {
		free(list);
		return r;
	}
	if (n)
		qsort(list, n, sizeof(*list), cmp_u32);
	*ret = list;
	*ret_n = n;
	return 0;
}

/* --- planning ------------------------------------------------------------------------------- */

struct gc_pack {
	uint32_t number;
	uint64_t live_bytes;	 /* record bytes of entries with refcount > 0 */
	uint64_t deferred_bytes; /* the part of them in deferred records */
};

static int cmp_gc_pack(const void *key, const void *elem)
{
	uint32_t k = *(const uint32_t *)key, e = ((const struct gc_pack *)elem)->number;

	return k < e ? -1 : k > e;
}

/* Sums the live bytes per pack from the index and collects refcount-0 "lost" entries. */
static int gc_plan(struct store *s, struct gc_pack *packs, size_t npacks,
		   struct chunk_id **ret_lost, size_t *ret_nlost)
{
	struct idx_txn *txn = NULL;
	struct idx_cursor *c = NULL;
	struct chunk_id *lost = NULL;
	size_t nlost = 0, cap = 0;
	const void *key, *val;
	size_t klen, vlen;
	int r;

	r = idx_txn_begin(s->db, false, &txn);
	if (r < 0)
		return r;
	r = idx_cursor_open(txn, IDX_CHUNKS, &c);
	if (r < 0)
		goto out;
	for (r = idx_cursor_seek(c, NULL, 0, &key, &klen, &val, &vlen); r >= 0;
	     r = idx_cursor_next(c, &key, &klen, &val, &vlen)) {
		struct maint_loc loc;
		struct gc_pack *p;

		if (klen != STORE_CHUNK_ID_LEN || vlen != CHUNK_VAL_LEN)
			continue; /* fsck's business */
		maint_loc_decode(val, &loc);
		if (loc.pack == MAINT_LOST_PACK && loc.refs == 0) {
			r = array_grow(&lost, &cap, nlost, sizeof(*lost), 16);
			if (r < 0)
				break;
			memcpy(lost[nlost++].b, key, STORE_CHUNK_ID_LEN);
			continue;
		}
		if (loc.refs == 0)
			continue;
		p = bsearch(&loc.pack, packs, npacks, sizeof(*packs), cmp_gc_pack);
		if (p)
			p->live_bytes += maint_rec_bytes(loc.desc);
		if (p && pack_desc_codec(loc.desc) == PACK_CODEC_DEFER)
			p->deferred_bytes += maint_rec_bytes(loc.desc);
	}
	if (r == -ENOENT)
		r = 0;
out:
	idx_cursor_close(c);
	idx_txn_abort(txn);
	if (r < 0) {
		free(lost);
		return r;
	}
	*ret_lost = lost;
	*ret_nlost = nlost;
	return 0;
}

/* --- copying -------------------------------------------------------------------------------- */

struct gc_rec {
	struct chunk_id id;
	uint64_t off;
};

struct gc_victim {
	uint32_t number;
	int fd; /* holds our flock until the victim is dropped or given up */
	uint64_t size;
	struct gc_rec *recs;
	size_t nrecs, cap;
	size_t ncopied;
	uint64_t copied_bytes;
	bool aborted;
};

struct gc_stage {
	struct chunk_id id;
	uint64_t src_off;
	uint32_t desc; /* of the record to write */
	uint32_t len;  /* its length; 0 while a deferred page waits for compression */
	int err;
	uint8_t page[STORE_CHUNK_SIZE];
	uint8_t rec[PACK_MAX_REC_LEN];
};

struct gc {
	struct store *s;
	struct store_gc_stats stats;
	struct pack_writer *w;
	struct cidmap copied; /* id -> new location, for records copied in this group */
	uint8_t *buf;
	size_t buf_len;
	struct idx_txn *rtxn; /* read txn used while scanning */
	unsigned rtxn_uses;
	struct gc_victim *cur;
	struct gc_stage *stage; /* GC_STAGE entries */
	size_t nstage;
};

static void victim_done(struct gc_victim *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	free(v->recs);
	v->recs = NULL;
}

static int gc_new_writer(struct gc *g)
{
	uint32_t next;
	int r;

	r = pack_number_alloc(g->s, &next);
	if (r < 0)
		return r;
	/* Created locked: other gc runs skip it while its records are not yet indexed. */
	return pack_writer_create(g->s->dirfd, next, &g->w);
}

static int gc_flush_buf(struct gc *g)
{
	uint64_t start;
	int r;

	if (g->buf_len == 0)
		return 0;
	r = pack_writer_append(g->w, g->buf, g->buf_len, &start);
	if (r < 0)
		return r;
	g->buf_len = 0;
	return 0;
}

static int gc_lookup(struct idx_txn *txn, const struct chunk_id *id, struct maint_loc *ret)
{
	const void *v;
	size_t vlen;
	int r = idx_get(txn, IDX_CHUNKS, id->b, STORE_CHUNK_ID_LEN, &v, &vlen);

	if (r < 0)
		return r;
	if (vlen != CHUNK_VAL_LEN)
		return -EBADMSG;
	maint_loc_decode(v, ret);
	return 0;
}

/* Looks id up in the scan's read transaction, renewed every GC_TXN_RECORDS lookups. */
static int gc_scan_lookup(struct gc *g, const struct chunk_id *id, struct maint_loc *ret)
{
	if (g->rtxn_uses++ >= GC_TXN_RECORDS) {
		idx_txn_abort(g->rtxn);
		g->rtxn = NULL;
		g->rtxn_uses = 0;
	}
	if (!g->rtxn) {
		int r = idx_txn_begin(g->s->db, false, &g->rtxn);
		if (r < 0)
			return r;
	}
	return gc_lookup(g->rtxn, id, ret);
}

struct gc_enc_job {
	struct gc_stage *st;
	size_t from, to;
};

static void *gc_enc_main(void *arg)
{
	struct gc_enc_job *j = arg;

	for (size_t k = j->from; k < j->to; k++) {
		struct gc_stage *st = &j->st[k];
		int r;

		if (st->len)
			continue;
		r = pack_record_encode(&st->id, st->page, st->rec, &st->desc);
		if (r < 0)
			st->err = r;
		else
			st->len = (uint32_t)r;
	}
	return NULL;
}

/* Compresses the staged deferred pages (over up to enc_threads threads, this one included) and
 * moves every staged record of victim v into the copy buffer, recording its new location. */
static int gc_stage_flush(struct gc *g, struct gc_victim *v)
{
	struct gc_enc_job jobs[GC_STAGE_MAX_THR];
	pthread_t th[GC_STAGE_MAX_THR];
	bool started[GC_STAGE_MAX_THR] = {false};
	size_t n = g->nstage, todo = 0;
	unsigned nt;
	int r;

	g->nstage = 0;
	for (size_t k = 0; k < n; k++)
		todo += g->stage[k].len == 0;
	nt = todo >= 64 ? MIN(MAX(g->s->enc_threads, 1u), GC_STAGE_MAX_THR) : 1;
	for (unsigned t = 0; t < nt; t++) {
		jobs[t] = (struct gc_enc_job){
			.st = g->stage, .from = n * t / nt, .to = n * (t + 1) / nt};
		/* If a helper cannot start, this thread does its share. */
		if (t > 0 && pthread_create(&th[t], NULL, gc_enc_main, &jobs[t]) == 0)
			started[t] = true;
	}
	for (unsigned t = 0; t < nt; t++)
		if (t == 0 || !started[t])
			gc_enc_main(&jobs[t]);
	for (unsigned t = 0; t < nt; t++)
		if (started[t])
			pthread_join(th[t], NULL);

	for (size_t k = 0; k < n; k++) {
		struct gc_stage *st = &g->stage[k];
		struct cidmap_ent *e;

		if (st->err)
			return st->err;
		if (g->buf_len + st->len > GC_COPY_BUF) {
			r = gc_flush_buf(g);
			if (r < 0)
				return r;
		}
		r = cidmap_add(&g->copied, &st->id, &e);
		if (r < 0)
			return r;
		e->flags |= CIDMAP_COPIED;
		e->src_pack = v->number;
		e->src_off = st->src_off;
		e->loc.pack = pack_writer_number(g->w);
		e->loc.off = pack_writer_size(g->w) + g->buf_len;
		e->loc.desc = st->desc;
		memcpy(g->buf + g->buf_len, st->rec, st->len);
		g->buf_len += st->len;
		v->ncopied++;
		v->copied_bytes += st->len;
	}
	g->stats.chunks_compressed += todo;
	return 0;
}

static int gc_scan_cb(void *ctx, const struct chunk_id *id, uint64_t off, uint32_t desc,
		      const void *payload)
{
	struct gc *g = ctx;
	struct gc_victim *v = g->cur;
	struct gc_stage *st;
	struct maint_loc loc;
	uint32_t reclen = PACK_REC_HDR_LEN + pack_desc_len(desc);
	int r;

	r = array_grow(&v->recs, &v->cap, v->nrecs, sizeof(*v->recs), 1024);
	if (r < 0)
		return r;
	v->recs[v->nrecs].id = *id;
	v->recs[v->nrecs].off = off;
	v->nrecs++;

	r = gc_scan_lookup(g, id, &loc);
	if (r == -ENOENT || r == -EBADMSG)
		return 0; /* not this record's business: garbage here */
	if (r < 0)
		return r;
	/* Only the record the index points at is live; duplicates elsewhere are garbage. */
	if (loc.pack != v->number || loc.off != off || loc.refs == 0)
		return 0;
	if (maint_verify_record(g->s->secret, id, desc, payload) < 0) {
		char hex[CHUNK_ID_HEX_LEN];

		/* Never move damage around: the pack stays where fsck will name it. */
		log_debug("gc: pack %u offset %llu: chunk %s does not verify; pack left alone",
			  v->number, (unsigned long long)off, chunk_id_to_hex(id->b, hex));
		v->aborted = true;
		return 1;
	}
	if (!g->w) {
		idx_txn_abort(g->rtxn); /* one thread, one write txn at a time */
		g->rtxn = NULL;
		r = gc_new_writer(g);
		if (r < 0)
			return r;
	}
	st = &g->stage[g->nstage++];
	st->id = *id;
	st->src_off = off;
	st->err = 0;
	if (pack_desc_codec(desc) == PACK_CODEC_DEFER) {
		/* The payload is the page itself (verified above): compressed with its stage. */
		memcpy(st->page, payload, STORE_CHUNK_SIZE);
		st->len = 0;
	} else {
		memcpy(st->rec, id->b, STORE_CHUNK_ID_LEN);
		le32_put(st->rec + STORE_CHUNK_ID_LEN, desc);
		memcpy(st->rec + PACK_REC_HDR_LEN, payload, pack_desc_len(desc));
		st->desc = desc;
		st->len = reclen;
	}
	return g->nstage == GC_STAGE ? gc_stage_flush(g, v) : 0;
}

/* Locks and scans one victim, copying its live records into the gc pack. Returns 0 when the
 * victim was taken (possibly aborted), 1 when it is in use and was skipped. */
static int gc_take_victim(struct gc *g, uint32_t number, struct gc_victim *v)
{
	char path[64];
	struct stat st;
	int r;

	memset(v, 0, sizeof(*v));
	v->number = number;
	pack_path(number, path, sizeof(path));
	v->fd = openat(g->s->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (v->fd < 0) {
		r = errno == ENOENT ? 1 : store_error(-errno, "gc: open pack '%s': %m", path);
		return r;
	}
	if (flock(v->fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? 1 : store_error(-errno, "gc: lock pack '%s': %m", path);
		victim_done(v);
		return r;
	}
	if (fstat(v->fd, &st) < 0) {
		r = store_error(-errno, "gc: stat pack '%s': %m", path);
		victim_done(v);
		return r;
	}
	v->size = (uint64_t)st.st_size;
	/* Header-only (or still empty: a writer between create and lock) packs hold nothing. */
	if (v->size <= PACK_HEADER_LEN) {
		victim_done(v);
		return 1;
	}
	/* No age rule: a writer keeps a pack locked until every flush that appended to it has
	 * committed (flush.c, pw_pins), so in an unlocked pack a record no entry names is garbage
	 * for certain (its writer died or gave up on it). */
	g->cur = v;
	r = pack_scan(v->fd, number, gc_scan_cb, g, NULL);
	g->cur = NULL;
	if (r == -EBADMSG || r == -EOPNOTSUPP) {
		/* Unparseable past some point: entries may live beyond it. fsck reports it. */
		log_debug("gc: %s; pack left alone", store_last_error());
		v->aborted = true;
		r = 0;
	}
	if (r >= 0)
		r = gc_stage_flush(g, v);
	g->nstage = 0;
	if (r < 0)
		return r;
	return gc_flush_buf(g);
}

/* The commit of one group: moves or drops every entry of each victim in one transaction. */
static int gc_commit_group(struct gc *g, struct gc_victim *vs, size_t nv)
{
	struct idx_txn *txn = NULL;
	size_t committed = 0;
	int r;

	r = idx_txn_begin(g->s->db, true, &txn);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nv; i++) {
		struct gc_victim *v = &vs[i];

		if (v->aborted)
			continue;
		/* Pass 1: is every entry that still points here either dead or copied? */
		for (size_t j = 0; j < v->nrecs; j++) {
			struct maint_loc loc;
			struct cidmap_ent *e;

			r = gc_lookup(txn, &v->recs[j].id, &loc);
			if (r == -ENOENT || r == -EBADMSG)
				continue;
			if (r < 0)
				goto fail;
			if (loc.pack != v->number || loc.refs == 0)
				continue;
			e = cidmap_get(&g->copied, &v->recs[j].id);
			if (!e || e->src_pack != v->number || e->src_off != loc.off) {
				char hex[CHUNK_ID_HEX_LEN];

				/* Re-referenced by a writer after our scan: try again next time. */
				log_debug("gc: pack %u: chunk %s was re-referenced after the scan; "
					  "pack left for a later gc",
					  v->number, chunk_id_to_hex(v->recs[j].id.b, hex));
				v->aborted = true;
				break;
			}
		}
		if (v->aborted)
			continue;
		/* Pass 2: apply. */
		for (size_t j = 0; j < v->nrecs; j++) {
			struct maint_loc loc;
			struct cidmap_ent *e;
			uint8_t val[CHUNK_VAL_LEN];

			r = gc_lookup(txn, &v->recs[j].id, &loc);
			if (r == -ENOENT || r == -EBADMSG)
				continue;
			if (r < 0)
				goto fail;
			if (loc.pack != v->number)
				continue;
			if (loc.refs == 0) {
				r = idx_del(txn, IDX_CHUNKS, v->recs[j].id.b, STORE_CHUNK_ID_LEN);
			} else {
				e = cidmap_get(&g->copied, &v->recs[j].id);
				loc.pack = e->loc.pack;
				loc.off = e->loc.off;
				loc.desc = e->loc.desc; /* differs where gc compressed it */
				maint_loc_encode(val, &loc);
				r = idx_put(txn, IDX_CHUNKS, v->recs[j].id.b, STORE_CHUNK_ID_LEN,
					    val, sizeof(val), 0);
			}
			if (r < 0)
				goto fail;
		}
		committed++;
	}
	if (committed == 0) {
		idx_txn_abort(txn);
		return 0;
	}
	r = idx_txn_commit(txn);
	if (r < 0)
		return r;
	return idx_db_sync(g->s->db);
fail:
	idx_txn_abort(txn);
	return r;
}

static int gc_finish_group(struct gc *g, struct gc_victim *vs, size_t nv)
{
	size_t ndone = 0;
	int r;

	if (g->w) {
		r = pack_writer_sync(g->w);
		if (r < 0)
			return r;
	}
	if (maint_fault("gc_before_commit"))
		return store_error(-ECANCELED, "gc: stopped at fault point 'gc_before_commit'");
	r = gc_commit_group(g, vs, nv);
	if (r < 0)
		return r;
	if (maint_fault("gc_before_unlink"))
		return store_error(-ECANCELED, "gc: stopped at fault point 'gc_before_unlink'");
	for (size_t i = 0; i < nv; i++) {
		struct gc_victim *v = &vs[i];
		char path[64];

		if (v->aborted)
			continue;
		pack_path(v->number, path, sizeof(path));
		/* Readers holding it open keep reading the unlinked file; new lookups already
		 * see the new locations. */
		if (unlinkat(g->s->dirfd, path, 0) < 0 && errno != ENOENT)
			return store_error(-errno, "gc: remove pack '%s': %m", path);
		ndone++;
		if (v->ncopied)
			g->stats.packs_rewritten++;
		else
			g->stats.packs_deleted++;
		g->stats.chunks_dropped += v->nrecs - v->ncopied;
		if (v->size > v->copied_bytes)
			g->stats.bytes_reclaimed += v->size - v->copied_bytes;
	}
	/* The new pack's own header is space gc added back. */
	if (g->w && ndone > 0)
		g->stats.bytes_reclaimed -=
			MIN(g->stats.bytes_reclaimed, (uint64_t)PACK_HEADER_LEN);
	if (g->w && ndone == 0) {
		char path[64];

		/* Every victim was given up: nothing refers to the copies, and we still hold
		 * the new pack's lock, so it can go right away. */
		pack_path(pack_writer_number(g->w), path, sizeof(path));
		(void)unlinkat(g->s->dirfd, path, 0);
	}
	if (ndone || g->w) {
		_cleanup_close_ int dfd =
			openat(g->s->dirfd, PACK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			(void)fsync(dfd);
	}
	return 0;
}

/* Drops index entries of lost chunks (rebuild placeholders) that nothing references now. */
static int gc_drop_lost(struct gc *g, const struct chunk_id *lost, size_t nlost)
{
	struct idx_txn *txn = NULL;
	size_t n = 0;
	int r;

	if (nlost == 0)
		return 0;
	r = idx_txn_begin(g->s->db, true, &txn);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nlost; i++) {
		struct maint_loc loc;

		r = gc_lookup(txn, &lost[i], &loc);
		if (r == -ENOENT || r == -EBADMSG) {
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		if (loc.pack != MAINT_LOST_PACK || loc.refs != 0)
			continue;
		r = idx_del(txn, IDX_CHUNKS, lost[i].b, STORE_CHUNK_ID_LEN);
		if (r < 0)
			break;
		n++;
	}
	if (r < 0 || n == 0) {
		idx_txn_abort(txn);
		return r;
	}
	g->stats.chunks_dropped += n;
	r = idx_txn_commit(txn);
	return r < 0 ? r : idx_db_sync(g->s->db);
}

static bool gc_wants(const struct gc_pack *p, uint64_t size, unsigned flags)
{
	uint64_t payload = size > PACK_HEADER_LEN ? size - PACK_HEADER_LEN : 0;
	uint64_t garbage = payload > p->live_bytes ? payload - p->live_bytes : 0;

	if (p->deferred_bytes > 0)
		return true;
	if (garbage == 0)
		return false;
	/* A pack nothing references goes in the background pass too: dropping it copies
	 * nothing, and the pass makes such packs itself when it is stopped (the mount is
	 * unmounted) between writing a copy and committing it, or after the commit. */
	if (p->live_bytes == 0)
		return true;
	if (flags & STORE_GC_DEFERRED_ONLY)
		return false;
	return garbage * 100 >= size * GC_MIN_GARBAGE_PCT;
}

int store_gc(struct store *s, struct store_gc_stats *ret_stats)
{
	return store_gc_flags(s, 0, ret_stats);
}

int store_gc_flags(struct store *s, unsigned flags, struct store_gc_stats *ret_stats)
{
	struct gc g = {.s = s};
	_cleanup_free_ uint32_t *numbers = NULL;
	_cleanup_free_ struct gc_pack *packs = NULL;
	_cleanup_free_ struct chunk_id *lost = NULL;
	struct gc_victim *group = NULL;
	size_t npacks = 0, nlost = 0, ng = 0;
	int r;

	if (s->flags & STORE_OPEN_RDONLY)
		return store_error(-EROFS, "gc: store '%s' is open read-only", s->path);
	r = maint_list_packs(s->dirfd, &numbers, &npacks);
	if (r < 0)
		return r;
	packs = calloc(MAX(npacks, (size_t)1), sizeof(*packs));
	group = calloc(GC_MAX_GROUP, sizeof(*group));
	g.buf = malloc(GC_COPY_BUF);
	g.stage = malloc(GC_STAGE * sizeof(*g.stage));
	if (!packs || !group || !g.buf || !g.stage) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < npacks; i++)
		packs[i].number = numbers[i];
	r = gc_plan(s, packs, npacks, &lost, &nlost);
	if (r < 0)
		goto out;

	for (size_t i = 0; i < npacks; i++) {
		char path[64];
		struct stat st;

		pack_path(packs[i].number, path, sizeof(path));
		if (fstatat(s->dirfd, path, &st, 0) < 0 ||
		    !gc_wants(&packs[i], (uint64_t)st.st_size, flags))
			continue;
		r = gc_take_victim(&g, packs[i].number, &group[ng]);
		if (r < 0) {
			victim_done(&group[ng]);
			goto out;
		}
		if (r > 0)
			continue;
		ng++;
		/* A group ends when the new pack is full or we hold enough locks. */
		if (ng == GC_MAX_GROUP || (g.w && pack_writer_size(g.w) >= PACK_ROLL_BYTES)) {
			idx_txn_abort(g.rtxn);
			g.rtxn = NULL;
			r = gc_finish_group(&g, group, ng);
			if (r < 0)
				goto out;
			for (size_t j = 0; j < ng; j++)
				victim_done(&group[j]);
			ng = 0;
			cidmap_free(&g.copied);
			pack_writer_free(g.w);
			g.w = NULL;
		}
	}
	idx_txn_abort(g.rtxn);
	g.rtxn = NULL;
	if (ng) {
		r = gc_finish_group(&g, group, ng);
		if (r < 0)
			goto out;
	}
	/* The background pass only compresses; dropping lost entries is gc's own business. */
	r = (flags & STORE_GC_DEFERRED_ONLY) ? 0 : gc_drop_lost(&g, lost, nlost);
	if (r < 0)
		goto out;
	if (ret_stats)
		*ret_stats = g.stats;
out:
	idx_txn_abort(g.rtxn);
	for (size_t j = 0; j < ng; j++)
		victim_done(&group[j]);
	free(group);
	cidmap_free(&g.copied);
	pack_writer_free(g.w);
	free(g.buf);
	free(g.stage);
	return r < 0 ? r : 0;
}
