// SPDX-License-Identifier: MIT
/* ckptfs init - create a new store. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
#include "tools/cli_util.h"
#include "tools/cmds.h"

static void init_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs init STORE\n\n"
		"Create a new, empty store in the directory STORE (created if missing). An empty\n"
		"directory is fine; a directory with other files in it, or one that already holds\n"
		"a store, is refused. The store gets a fresh random key for its chunk ids.\n\n"
		"Options:\n"
		"  -h, --help   this text\n\n"
		"Exit status: 0 created, 1 refused or failed, 2 usage error.\n");
}

int cmd_init(int argc, char **argv)
{
	int r;

	r = cli_parse_help_only(argc, argv, init_usage, 1, 1);
	if (r >= 0)
		return r;
	r = store_init(argv[optind]);
	if (r < 0) {
		log_err("init: %s", store_last_error());
		return 1;
	}
	log_info("created store '%s'", argv[optind]);
	return 0;
}
