/* SPDX-License-Identifier: MIT */
/*
 * maint_priv.h - helpers shared by the store maintenance modules: gc.c (pack rewriting), fsck.c
 * (verification) and rebuild.c (index reconstruction from packs and manifests).
 *
 * Owns: the decoded form of an IDX_CHUNKS value (same layout data.c writes: le32 pack,
 * le64 offset, le32 desc, le64 refcount), an in-memory map keyed by chunk id, the listing of the
 * packs/ directory, and named fault-injection points for crash tests.
 * Pack number 0 never names a file: rebuild uses it for chunks a manifest needs but no pack holds
 * ("lost" chunks), so that reads fail with EIO and fsck names them, while refcounts stay exact.
 * Their descriptor is a plain raw-page one (never 0: readers take desc 0 for a hole).
 * Thread-safety: none of these helpers share state; a cidmap belongs to its caller.
 */
#ifndef CKPTFS_INDEX_MAINT_PRIV_H
#define CKPTFS_INDEX_MAINT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "index/chunk_id.h"
#include "index/pack.h"

#define MAINT_LOST_PACK 0u

struct maint_loc {
	uint32_t pack;
	uint64_t off;
	uint32_t desc;
	uint64_t refs;
};

static inline void maint_loc_decode(const void *val, struct maint_loc *loc)
{
	const uint8_t *v = val;

	loc->pack = le32_get(v);
	loc->off = le64_get(v + 4);
	loc->desc = le32_get(v + 12);
	loc->refs = le64_get(v + 16);
}

static inline void maint_loc_encode(void *val, const struct maint_loc *loc)
{
	uint8_t *v = val;

	le32_put(v, loc->pack);
	le64_put(v + 4, loc->off);
	le32_put(v + 12, loc->desc);
	le64_put(v + 16, loc->refs);
}

/* Bytes a record occupies in its pack. */
static inline uint64_t maint_rec_bytes(uint32_t desc)
{
	return PACK_REC_HDR_LEN + (uint64_t)pack_desc_len(desc);
}

/* A hash map chunk id -> small per-chunk state (open addressing; ids are uniform hashes). */
struct cidmap_ent {
	struct chunk_id id;
	struct maint_loc loc;
	uint64_t counted;  /* fsck: file-map slots referencing it */
	uint64_t src_off;  /* gc: where the copied record came from */
	uint32_t src_pack; /* gc: which pack it came from */
	uint32_t flags;	   /* CIDMAP_* */
};

enum {
	CIDMAP_USED = 1u << 0,
	CIDMAP_BAD = 1u << 1,	 /* fsck: failed verification */
	CIDMAP_COPIED = 1u << 2, /* gc: copied into the new pack */
};

struct cidmap {
	struct cidmap_ent *e;
	size_t cap, n;
};

/* Finds or inserts id; *ret_ent stays valid until the next insert. Returns 1 if it was present. */
int cidmap_add(struct cidmap *m, const struct chunk_id *id, struct cidmap_ent **ret_ent);
struct cidmap_ent *cidmap_get(const struct cidmap *m, const struct chunk_id *id);
void cidmap_free(struct cidmap *m);

/* Pack numbers of every "packs/NNNNNNNN.pack" file, sorted ascending. Caller frees *ret. */
int maint_list_packs(int store_dirfd, uint32_t **ret, size_t *ret_n);

/* Decodes a record payload and checks that its keyed hash is id. -EBADMSG if not. */
int maint_verify_record(const uint8_t secret[CHUNK_SECRET_LEN], const struct chunk_id *id,
			uint32_t desc, const void *payload);

/* True when the environment variable CKPTFS_FAULT names this fault point (crash tests: the
 * operation stops there as if the process had been killed). */
bool maint_fault(const char *point);

#endif
