// SPDX-License-Identifier: MIT
/* ckptfs fsck - verify a store, or rebuild its index from the packs and manifests. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
#include "tools/cli_util.h"
#include "tools/cmds.h"

static void fsck_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs fsck [--rebuild-index] STORE\n\n"
		"Verify a store: read every indexed chunk (decompress, keyed hash == id), check every\n"
		"file-map slot, refcount, directory entry, link count, readdir cookie, orphan, xattr,\n"
		"pack header and sealed checkpoint manifest. Prints one line per problem; a damaged\n"
		"chunk is named with its id, pack file, offset and the files (checkpoint/path,\n"
		"offset) that reference it. Read-only: works while the store is mounted.\n\n"
		"Options:\n"
		"  --rebuild-index  throw the LMDB index away (it is moved to STORE/index.broken-TIME,\n"
		"                   not deleted) and rebuild it from the pack files and manifests,\n"
		"                   then verify the result. Refused while the store is mounted.\n"
		"                   Bad pack records are skipped and reported; a chunk a manifest\n"
		"                   needs but no pack holds is reported, and that part of its file\n"
		"                   reads as an I/O error.\n"
		"  -h, --help       this text\n\n"
		"Exit status: 0 clean, 1 problems found (or the check could not run), 2 usage error.\n");
}

static void print_problem(void *ctx, const char *line)
{
	printf("%s%s\n", (const char *)ctx, line);
}

/* The index.broken-* directory the rebuild just made (names sort by time). */
static void print_aside(const char *store)
{
	char best[256] = "";
	struct dirent *de;
	DIR *d = opendir(store);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "index.broken-", 13) && strcmp(de->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", de->d_name);
	closedir(d);
	if (best[0])
		printf("rebuild: the old index is kept in '%s/%s'\n", store, best);
}

static int run_fsck(const char *path)
{
	struct store *s = NULL;
	int r;

	if (cli_store_open(path, STORE_OPEN_RDONLY, &s))
		return 1;
	r = store_fsck(s, print_problem, "");
	if (r < 0)
		log_err("fsck '%s' could not run: %s", path, store_last_error());
	store_close(s);
	if (r < 0)
		return 1;
	if (r == 0) {
		printf("fsck: '%s' is clean\n", path);
		return 0;
	}
	printf("fsck: '%s': %d problem%s found\n", path, r, r == 1 ? "" : "s");
	return 1;
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"rebuild-index", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool rebuild = false;
	int c, r, status;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'R':
			rebuild = true;
			break;
		case 'h':
			fsck_usage(stdout);
			return 0;
		default:
			fsck_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		fsck_usage(stderr);
		return 2;
	}
	if (!rebuild)
		return run_fsck(argv[optind]);
	r = store_rebuild_index_report(argv[optind], print_problem, "rebuild: ");
	if (r < 0) {
		log_err("rebuild the index of '%s': %s", argv[optind], store_last_error());
		return 1;
	}
	print_aside(argv[optind]);
	printf("rebuild: index of '%s' rebuilt, %d problem%s\n", argv[optind], r,
	       r == 1 ? "" : "s");
	status = run_fsck(argv[optind]);
	return r > 0 ? 1 : status;
}
