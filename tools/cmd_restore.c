// SPDX-License-Identifier: MIT
/* ckptfs restore - restore a process from a checkpoint directory (cr_restore). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cr/cr.h"
#include "cr/error.h"
#include "tools/cmds.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs restore [--detach] [--pidfile FILE] [--lazy [--server-pidfile FILE]] "
		"DIR\n\n"
		"Restore the process checkpointed in DIR with its old PID (which must be free).\n"
		"By default the restorer stays its parent, waits for it and exits with its exit\n"
		"status (128+N if it was killed by signal N). A process dumped from a terminal is\n"
		"attached to the restorer's terminal.\n\n"
		"  -d, --detach        exit 0 once the process runs, leaving it running\n"
		"  -P, --pidfile FILE  write the restored pid to FILE\n"
		"  -l, --lazy          let the process run before its private anonymous memory\n"
		"                      (heap, stack, anonymous mappings) is in place: a page\n"
		"                      server (process 'ckptfs-pages') fills it from the image on\n"
		"                      first touch and in the background, then exits. If a page\n"
		"                      cannot be read it kills the process and names the file\n"
		"                      and offset on stderr. CKPTFS_RESTORE_LAZY=1 means --lazy.\n"
		"  -S, --server-pidfile FILE  with --lazy: write the page server's pid to FILE\n"
		"                      (not written when the image has no lazy page)\n"
		"  -h, --help          this text\n");
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{"detach", no_argument, NULL, 'd'},
		{"pidfile", required_argument, NULL, 'P'},
		{"lazy", no_argument, NULL, 'l'},
		{"server-pidfile", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct cr_restore_opts o = {0};
	const char *env = getenv("CKPTFS_RESTORE_LAZY");
	int c, status = 0;

	o.lazy = env && !strcmp(env, "1");

	optind = 1;
	while ((c = getopt_long(argc, argv, "dP:lS:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.detach = true;
			break;
		case 'P':
			o.pidfile = optarg;
			break;
		case 'l':
			o.lazy = true;
			break;
		case 'S':
			o.server_pidfile = optarg;
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
	if (o.server_pidfile && !o.lazy) {
		fprintf(stderr, "ckptfs restore: --server-pidfile needs --lazy\n");
		return 2;
	}
	o.dir = argv[optind];
	int ret = cr_restore(&o, &status);
	if (ret < 0) {
		const char *msg = cr_error_last();
		fprintf(stderr, "ckptfs restore: %s\n", msg[0] ? msg : strerror(-ret));
		return 1;
	}
	return status;
}
