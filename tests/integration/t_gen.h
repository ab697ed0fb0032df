/* SPDX-License-Identifier: MIT */
/*
 * t_gen.h - the reproducible block generator shared by the integration-test helpers: block
 * (seed, index) always has the same 4 KiB of content. Header-only; no state.
 */
#ifndef CKPTFS_TESTS_T_GEN_H
#define CKPTFS_TESTS_T_GEN_H

#include <stdint.h>
#include <string.h>

#define T_GEN_BLOCK 4096u

static inline uint64_t t_gen_mix(uint64_t x)
{
	/* splitmix64 finaliser */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline void t_gen_block(uint64_t seed, uint64_t index, uint8_t out[T_GEN_BLOCK])
{
	uint64_t state = t_gen_mix(seed ^ t_gen_mix(index));

	if (index % 8 == 7) {
		static const char words[] = "stack heap vdso libc.so anon rw-p r-xp 0000 ";
		memset(out, 0, T_GEN_BLOCK / 2);
		for (unsigned i = T_GEN_BLOCK / 2; i < T_GEN_BLOCK; i++) {
			state = t_gen_mix(state);
			out[i] = (uint8_t)words[state % (sizeof(words) - 1)];
		}
		return;
	}
	for (unsigned i = 0; i < T_GEN_BLOCK; i += 8) {
		state = t_gen_mix(state);
		memcpy(out + i, &state, 8);
	}
}

#endif
