// SPDX-License-Identifier: MIT
/* ckptfs gc - reclaim the pack space of chunks no checkpoint references. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
#include "tools/cli_util.h"
#include "tools/cmds.h"

static void gc_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs gc STORE\n\n"
		"Reclaim the space of chunks that no file references any more (after 'ckptfs rm',\n"
		"overwrites, truncates, unlinks). Packs that are partly garbage are rewritten: their\n"
		"live chunks are copied into a new pack, the index is switched over in one\n"
		"transaction, then the old pack is removed; packs that are all garbage are removed.\n"
		"Safe while the store is mounted (packs a writer still appends to are skipped) and\n"
		"against a crash at any point (a later gc finishes the job).\n\n"
		"Prints: packs rewritten, packs deleted, chunks dropped, bytes reclaimed.\n\n"
		"Options:\n"
		"  -h, --help   this text\n\n"
		"Exit status: 0 ok, 1 failed, 2 usage error.\n");
}

int cmd_gc(int argc, char **argv)
{
	struct store_gc_stats st = {0};
	struct store *s = NULL;
	int r;

	r = cli_parse_help_only(argc, argv, gc_usage, 1, 1);
	if (r >= 0)
		return r;
	if (cli_store_open(argv[optind], 0, &s))
		return 1;
	r = store_gc(s, &st);
	if (r < 0) {
		log_err("gc '%s': %s", argv[optind], store_last_error());
		store_close(s);
		return 1;
	}
	store_close(s);
	printf("packs rewritten: %" PRIu64 "\n"
	       "packs deleted:   %" PRIu64 "\n"
	       "chunks dropped:  %" PRIu64 "\n"
	       "bytes reclaimed: %" PRIu64 "\n",
	       st.packs_rewritten, st.packs_deleted, st.chunks_dropped, st.bytes_reclaimed);
	return 0;
}
