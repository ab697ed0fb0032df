// SPDX-License-Identifier: MIT
/*
 * t_datagen - writes a reproducible byte stream to stdout, so tests can compare what a file
 * reads back against a regenerated copy instead of keeping one on disk.
 *
 *   t_datagen SEED BYTES [PERIOD]
 *
 * Block i (4 KiB) is filled from a generator seeded with (SEED, i), or with (SEED, i % PERIOD)
 * when PERIOD is given, which repeats blocks so the store sees duplicates. Every 8th block is
 * half zeros and half text-like bytes, so compression has something to do.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/t_gen.h"

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];
	uint64_t seed, total, period = 0, block = 0;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: t_datagen SEED BYTES [PERIOD]\n");
		return 2;
	}
	seed = strtoull(argv[1], NULL, 0);
	total = strtoull(argv[2], NULL, 0);
	if (argc == 4)
		period = strtoull(argv[3], NULL, 0);

	while (total > 0) {
		size_t n = total < sizeof(buf) ? (size_t)total : sizeof(buf);
		size_t done = 0;

		for (size_t off = 0; off < n; off += T_GEN_BLOCK, block++) {
			uint8_t tmp[T_GEN_BLOCK];
			size_t len = n - off < T_GEN_BLOCK ? n - off : T_GEN_BLOCK;
			t_gen_block(seed, period ? block % period : block, tmp);
			memcpy(buf + off, tmp, len);
		}
		while (done < n) {
			ssize_t w = write(STDOUT_FILENO, buf + done, n - done);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EPIPE)
					perror("t_datagen: write");
				return 1;
			}
			done += (size_t)w;
		}
		total -= n;
	}
	return 0;
}
