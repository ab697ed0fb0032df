// SPDX-License-Identifier: MIT
#include "index/u64map.h"

#include <errno.h>
#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t cap)
{
	/* Fibonacci hashing spreads sequential inode/block numbers over the table. */
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].val)
			return NULL;
		if (m->slots[i].key == key)
			return m->slots[i].val;
	}
}

static int u64map_grow(struct u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	struct u64map_slot *ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (!m->slots[i].val)
			continue;
		for (j = slot_of(m->slots[i].key, ncap); ns[j].val; j = (j + 1) & (ncap - 1))
			;
		ns[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return 0;
}

int u64map_put(struct u64map *m, uint64_t key, void *val)
{
	size_t i;

	if ((m->n + 1) * 4 > m->cap * 3) {
		int r = u64map_grow(m);
		if (r < 0)
			return r;
	}
	for (i = slot_of(key, m->cap); m->slots[i].val; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == key) {
			m->slots[i].val = val;
			return 0;
		}
	}
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->n++;
	return 0;
}

void *u64map_del(struct u64map *m, uint64_t key)
{
	size_t i, j;
	void *val;

	if (m->cap == 0)
		return NULL;
	for (i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].val)
			return NULL;
		if (m->slots[i].key == key)
			break;
	}
	val = m->slots[i].val;
	m->slots[i].val = NULL;
	m->n--;
	/* Backward shift: pull later entries of the probe run into the hole when their home slot
	 * does not lie cyclically between the hole and their current position. */
	for (j = (i + 1) & (m->cap - 1); m->slots[j].val; j = (j + 1) & (m->cap - 1)) {
		size_t home = slot_of(m->slots[j].key, m->cap);
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			m->slots[i] = m->slots[j];
			m->slots[j].val = NULL;
			i = j;
		}
	}
	return val;
}

void u64map_clear(struct u64map *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = 0;
	m->n = 0;
}
