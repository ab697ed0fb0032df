// SPDX-License-Identifier: MIT
/* ckptfs init - create a new store. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
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
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			init_usage(stdout);
			return 0;
		default:
			init_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		init_usage(stderr);
		return 2;
	}
	r = store_init(argv[optind]);
	if (r < 0) {
		log_err("init: %s", store_last_error());
		return 1;
	}
	log_info("created store '%s'", argv[optind]);
	return 0;
}
