// SPDX-License-Identifier: MIT
/* ckptfs gc - reclaim the pack space of chunks no checkpoint references, and compress chunks
 * whose compression was deferred. */
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

static void gc_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs gc [--compress-deferred] STORE\n\n"
		"Reclaim the space of chunks that no file references any more (after 'ckptfs rm',\n"
		"overwrites, truncates, unlinks). Packs that are partly garbage are rewritten: their\n"
		"live chunks are copied into a new pack, the index is switched over in one\n"
		"transaction, then the old pack is removed; packs that are all garbage are removed.\n"
		"Packs holding chunks stored uncompressed because writers outran the compressor\n"
		"('deferred' in 'ckptfs df') are rewritten too, compressing those chunks.\n"
		"Safe while the store is mounted (packs a writer still appends to are skipped) and\n"
		"against a crash at any point (a later gc finishes the job).\n\n"
		"Prints: packs rewritten, packs deleted, chunks dropped, bytes reclaimed, chunks\n"
		"compressed.\n\n"
		"Options:\n"
		"  --compress-deferred  only rewrite packs holding deferred chunks (what the mount\n"
		"                       runs in the background once writes are idle)\n"
		"  -h, --help           this text\n\n"
		"Exit status: 0 ok, 1 failed, 2 usage error.\n");
}

int cmd_gc(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"compress-deferred", no_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct store_gc_stats st = {0};
	struct store *s = NULL;
	unsigned flags = 0;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			flags |= STORE_GC_DEFERRED_ONLY;
			break;
		case 'h':
			gc_usage(stdout);
			return 0;
		default:
			gc_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		gc_usage(stderr);
		return 2;
	}
	if (cli_store_open(argv[optind], 0, &s))
		return 1;
	r = store_gc_flags(s, flags, &st);
	if (r < 0) {
		log_err("gc '%s': %s", argv[optind], store_last_error());
		store_close(s);
		return 1;
	}
	store_close(s);
	/* Column widths kept from before "compressed" existed: scripts match these lines. */
	printf("packs rewritten: %" PRIu64 "\n"
	       "packs deleted:   %" PRIu64 "\n"
	       "chunks dropped:  %" PRIu64 "\n"
	       "bytes reclaimed: %" PRIu64 "\n"
	       "chunks compressed: %" PRIu64 "\n",
	       st.packs_rewritten, st.packs_deleted, st.chunks_dropped, st.bytes_reclaimed,
	       st.chunks_compressed);
	return 0;
}
