// SPDX-License-Identifier: MIT
/* ckptfs rm - remove checkpoints. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
#include "tools/cli_util.h"
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
	struct store *s = NULL;
	int r, status = 0;

	r = cli_parse_help_only(argc, argv, rm_usage, 2, CLI_ARGS_MAX_ANY);
	if (r >= 0)
		return r;
	if (cli_store_open(argv[optind], 0, &s))
		return 1;
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
