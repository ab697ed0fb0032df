/* SPDX-License-Identifier: MIT */
/*
 * u64map.h - a small open-addressing hash map from uint64_t keys to non-NULL pointers.
 *
 * Owns: its slot array only (not the values). Linear probing with backward-shift deletion, so
 * there are no tombstones; grows at 3/4 load. Iteration order is unspecified.
 * Thread-safety: none; callers hold their own lock.
 */
#ifndef CKPTFS_INDEX_U64MAP_H
#define CKPTFS_INDEX_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map_slot {
	uint64_t key;
	void *val; /* NULL = empty slot */
};

struct u64map {
	struct u64map_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

void *u64map_get(const struct u64map *m, uint64_t key);
/* Inserts or replaces; val must not be NULL. */
int u64map_put(struct u64map *m, uint64_t key, void *val);
/* Returns the removed value or NULL. */
void *u64map_del(struct u64map *m, uint64_t key);
void u64map_clear(struct u64map *m); /* frees the slots, not the values */

/* for (size_t i = 0; i < m->cap; i++) if (m->slots[i].val) ... is the iteration idiom; do not
 * modify the map while iterating. */

#endif
