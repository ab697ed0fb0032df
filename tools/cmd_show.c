// SPDX-License-Identifier: MIT
/* ckptfs show - summarise a checkpoint image (cr_show). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cr/cr.h"
#include "cr/error.h"
#include "tools/cmds.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: ckptfs show [--json] DIR\n\n"
		   "Print a summary of the checkpoint image in DIR: task ids, registers, signals,\n"
		   "memory mappings with their saved pages, and open files. The whole image is\n"
		   "validated first; a damaged image is reported with the file and offset.\n\n"
		   "  -j, --json  one JSON object instead of text\n"
		   "  -h, --help  this text\n");
}

int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	int ret = cr_show(argv[optind], json, stdout);
	if (ret < 0) {
		const char *msg = cr_error_last();
		fprintf(stderr, "ckptfs show: %s\n", msg[0] ? msg : strerror(-ret));
		return 1;
	}
	return 0;
}
