// SPDX-License-Identifier: MIT
/* ckptfs df - space accounting of a store. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
#include "tools/cli_util.h"
#include "tools/cmds.h"

static void df_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs df [--json] STORE\n\n"
		"Space used by a store:\n"
		"  logical       sum of all file sizes in all checkpoints\n"
		"  distinct      distinct non-zero 4 KiB chunks referenced, x 4 KiB\n"
		"  stored        compressed bytes of those chunks (pack record bytes)\n"
		"  dedup         logical / distinct (holes and zero pages count as deduplicated)\n"
		"  compression   distinct / stored\n"
		"  total ratio   logical / stored\n"
		"  packs         bytes of all pack files on disk, garbage included\n"
		"  garbage       pack bytes of chunks nothing references ('ckptfs gc' frees them)\n"
		"  deferred      part of stored written uncompressed while writers outran the\n"
		"                compressor; the mount compresses it once writes are idle (so does\n"
		"                'ckptfs gc'); 0 once the store has settled\n"
		"  index         LMDB index plus manifests on disk\n"
		"Works while the store is mounted (shows what the mount has stored so far).\n\n"
		"Options:\n"
		"  --json      the same fields as one JSON object (bytes and plain ratios)\n"
		"  -h, --help  this text\n\n"
		"Exit status: 0 ok, 1 failed, 2 usage error.\n");
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

int cmd_df(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct store *s = NULL;
	struct store_df d;
	bool json = false;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			df_usage(stdout);
			return 0;
		default:
			df_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		df_usage(stderr);
		return 2;
	}
	if (cli_store_open(argv[optind], STORE_OPEN_RDONLY, &s))
		return 1;
	r = store_df(s, &d);
	store_close(s);
	if (r < 0) {
		log_err("df '%s': %s", argv[optind], store_last_error());
		return 1;
	}
	if (json) {
		printf("{\"logical_bytes\": %" PRIu64 ", \"distinct_bytes\": %" PRIu64
		       ", \"stored_bytes\": %" PRIu64 ", \"dedup_ratio\": %.4f"
		       ", \"compression_ratio\": %.4f, \"total_ratio\": %.4f"
		       ", \"pack_bytes\": %" PRIu64 ", \"garbage_bytes\": %" PRIu64
		       ", \"index_bytes\": %" PRIu64 ", \"chunks\": %" PRIu64
		       ", \"checkpoints\": %" PRIu64 ", \"deferred_bytes\": %" PRIu64 "}\n",
		       d.logical_bytes, d.referenced_raw, d.stored_bytes,
		       ratio(d.logical_bytes, d.referenced_raw),
		       ratio(d.referenced_raw, d.stored_bytes),
		       ratio(d.logical_bytes, d.stored_bytes), d.pack_bytes, d.garbage_bytes,
		       d.index_bytes, d.nchunks, d.ncheckpoints, d.deferred_bytes);
		return 0;
	}
	printf("checkpoints   %" PRIu64 "\n", d.ncheckpoints);
	printf("logical       %" PRIu64 " bytes\n", d.logical_bytes);
	printf("distinct      %" PRIu64 " bytes (%" PRIu64 " chunks)\n", d.referenced_raw,
	       d.nchunks);
	printf("stored        %" PRIu64 " bytes\n", d.stored_bytes);
	printf("dedup         %.2fx\n", ratio(d.logical_bytes, d.referenced_raw));
	printf("compression   %.2fx\n", ratio(d.referenced_raw, d.stored_bytes));
	printf("total ratio   %.2fx\n", ratio(d.logical_bytes, d.stored_bytes));
	printf("packs         %" PRIu64 " bytes\n", d.pack_bytes);
	printf("garbage       %" PRIu64 " bytes\n", d.garbage_bytes);
	printf("index         %" PRIu64 " bytes\n", d.index_bytes);
	printf("deferred      %" PRIu64 " bytes\n", d.deferred_bytes);
	return 0;
}
