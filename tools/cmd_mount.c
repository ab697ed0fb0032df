// SPDX-License-Identifier: MIT
/* ckptfs mount - parse options and hand over to the FUSE daemon (fs/). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fs/fs.h"
#include "tools/cmds.h"

static void mount_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs mount [-f] [-d] [-o OPT[,OPT...]] [-l LOGFILE] STORE MOUNTPOINT\n\n"
		"Mount a store as a FUSE filesystem. Every directory at the top of the mount is a\n"
		"checkpoint (mkdir creates one); seal one with\n"
		"  setfattr -n user.ckptfs.seal -v 1 MOUNTPOINT/NAME\n"
		"after which it is read-only and its content id is in the xattr\n"
		"user.ckptfs.content_id. Only one writable mount of a store may exist at a time.\n"
		"Unmount with 'fusermount3 -u MOUNTPOINT' (or SIGTERM to the daemon): buffered data\n"
		"is flushed and the store closed.\n\n"
		"Options:\n"
		"  -f, --foreground   stay in the foreground (default: detach once mounted)\n"
		"  -d, --debug        trace every FUSE request and log at debug level (implies -f)\n"
		"  -o OPTS            libfuse / kernel mount options, e.g. -o allow_other,ro\n"
		"  -l, --log FILE     when detached, append the daemon's log lines to FILE\n"
		"  -h, --help         this text\n");
}

int cmd_mount(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"foreground", no_argument, NULL, 'f'},
		{"debug", no_argument, NULL, 'd'},
		{"log", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct fs_opts opts = {0};
	char *fuse_opts = NULL;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+fdo:l:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			opts.foreground = true;
			break;
		case 'd':
			opts.debug = true;
			opts.foreground = true;
			break;
		case 'o': {
			/* Repeated -o options accumulate, as with mount(8). */
			char *joined = NULL;
			if (asprintf(&joined, "%s%s%s", fuse_opts ? fuse_opts : "",
				     fuse_opts ? "," : "", optarg) < 0) {
				free(fuse_opts);
				fprintf(stderr, "ckptfs mount: out of memory\n");
				return 1;
			}
			free(fuse_opts);
			fuse_opts = joined;
			break;
		}
		case 'l':
			opts.log_path = optarg;
			break;
		case 'h':
			free(fuse_opts);
			mount_usage(stdout);
			return 0;
		default:
			free(fuse_opts);
			mount_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		free(fuse_opts);
		mount_usage(stderr);
		return 2;
	}
	opts.fuse_opts = fuse_opts;
	if (opts.debug)
		log_set_level(LOG_DEBUG);
	else if (log_get_level() < LOG_INFO && !opts.foreground)
		/* A detached daemon's log is read after the fact: keep the mount/unmount lines. */
		log_set_level(LOG_INFO);

	r = fs_daemon_run(argv[optind], argv[optind + 1], &opts);
	free(fuse_opts);
	return r < 0 ? 1 : 0;
}
