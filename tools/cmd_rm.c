// SPDX-License-Identifier: MIT
/* ckptfs rm - remove checkpoints. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
#include "tools/cmds.h"

static void rm_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs rm STORE NAME...\n\n"
		"Remove the named checkpoints, sealed or not, with everything in them. Their chunks\n"
		"lose these references; space comes back when 'ckptfs gc STORE' runs. Works while\n"
		"the store is mounted. Every name is tried even if an earlier one fails.\n\n"
		"Options:\n"
		"  -h, --help   this text\n\n"
		"Exit status: 0 all removed, 1 some failed (e.g. no such checkpoint), 2 usage.\n");
}

int cmd_rm(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct store *s = NULL;
	int c, r, status = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			rm_usage(stdout);
			return 0;
		default:
			rm_usage(stderr);
			return 2;
		}
	}
	if (argc - optind < 2) {
		rm_usage(stderr);
		return 2;
	}
	r = store_open(argv[optind], 0, &s);
	if (r < 0) {
		log_err("%s", store_last_error());
		return 1;
	}
	for (int i = optind + 1; i < argc; i++) {
		r = store_ckpt_remove(s, argv[i]);
		if (r < 0) {
			log_err("rm '%s': %s", argv[i],
				r == -ENOENT || r == -EINVAL ? store_last_error() : strerror(-r));
			status = 1;
		}
	}
	store_close(s);
	return status;
}
