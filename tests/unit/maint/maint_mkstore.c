// SPDX-License-Identifier: MIT
/* maint_mkstore STORE - creates a store for the CLI test: checkpoint "a" (pages 0..599), sealed
 * checkpoint "b" (pages 300..899 and a sparse file) sharing half of a's pages. */
#include "tests/unit/maint/maint_testlib.h"

int main(int argc, char **argv)
{
	struct store *s = NULL;
	uint64_t a, b, d;
	uint64_t sparse[3] = {5000, 5001, 300};
	uint8_t id[STORE_CONTENT_ID_LEN];

	if (argc != 2) {
		fprintf(stderr, "usage: maint_mkstore STORE\n");
		return 2;
	}
	REQUIRE(store_init(argv[1]) == 0);
	REQUIRE(store_open(argv[1], STORE_OPEN_EXCLUSIVE, &s) == 0);
	a = mkdir_at(s, STORE_ROOT_INO, "a");
	mkfile_range(s, a, "mem-a.img", 0, 600);
	b = mkdir_at(s, STORE_ROOT_INO, "b");
	mkfile_range(s, b, "mem-b.img", 300, 600);
	d = mkdir_at(s, b, "sub");
	mkfile_pages(s, d, "sparse", sparse, 3, 1000);
	REQUIRE(store_ckpt_seal(s, "b", id) == 0);
	store_close(s);
	return 0;
}
