// SPDX-License-Identifier: MIT
/* cli_util.c - option parsing and store opening shared by the subcommands. */
#include "tools/cli_util.h"

#include <getopt.h>

#include "common/log.h"
#include "index/store.h"

int cli_parse_help_only(int argc, char **argv, void (*usage)(FILE *f), int min_args, int max_args)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, nargs;

	/* "+": stop at the first positional, so a name such as "-x" after STORE is not an option.
	 */
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		usage(stderr);
		return 2;
	}
	nargs = argc - optind;
	if (nargs < min_args || (max_args != CLI_ARGS_MAX_ANY && nargs > max_args)) {
		usage(stderr);
		return 2;
	}
	return -1;
}

int cli_store_open(const char *path, unsigned flags, struct store **ret_s)
{
	if (store_open(path, flags, ret_s) < 0) {
		log_err("%s", store_last_error());
		return 1;
	}
	return 0;
}
