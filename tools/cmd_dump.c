// SPDX-License-Identifier: MIT
/* ckptfs dump - checkpoint one running process into a directory (cr_dump). */
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
		"usage: ckptfs dump --pid PID [--leave-running] [--parent PARENT_DIR | --auto-parent] DIR\n\n"
		"Freeze process PID, write its checkpoint image into DIR (created if missing; a\n"
		"DIR that already holds an image is refused), then kill it. On a ckptfs mount the\n"
		"checkpoint is sealed when complete. Prints how long the process was frozen.\n\n"
		"  -p, --pid PID        the process to dump (single-threaded, no children)\n"
		"  -l, --leave-running  let the process continue after the dump\n"
		"  -P, --parent DIR     an earlier image of this process: pages it already holds\n"
		"                       are copied from it (a chunk reference on a ckptfs mount)\n"
		"                       instead of written; DIR stays complete without it\n"
		"  -A, --auto-parent    use as parent the newest image of this PID next to DIR (in\n"
		"                       DIR's parent directory), if there is one\n"
		"  -h, --help           this text\n\n"
		"Unsupported state (sockets, eventfd, more threads, ...) is refused before anything\n"
		"is written, and the process is left running as it was.\n");
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},	  {"leave-running", no_argument, NULL, 'l'},
		{"parent", required_argument, NULL, 'P'}, {"auto-parent", no_argument, NULL, 'A'},
		{"help", no_argument, NULL, 'h'},	  {0},
	};
	struct cr_dump_opts o = {0};
	struct cr_dump_stats st = {0};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:lP:Ah", opts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 4194304) {
				fprintf(stderr, "ckptfs dump: bad pid '%s'\n", optarg);
				return 2;
			}
			o.pid = (pid_t)v;
			break;
		}
		case 'l':
			o.leave_running = true;
			break;
		case 'P':
			o.parent = optarg;
			break;
		case 'A':
			o.auto_parent = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o.parent && o.auto_parent) {
		fprintf(stderr, "ckptfs dump: --parent and --auto-parent exclude each other\n");
		return 2;
	}
	if (!o.pid || optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	o.dir = argv[optind];
	int ret = cr_dump(&o, &st);
	if (ret < 0) {
		const char *msg = cr_error_last();
		fprintf(stderr, "ckptfs dump: %s\n", msg[0] ? msg : strerror(-ret));
		return 1;
	}
	fprintf(stderr,
		"ckptfs dump: pid %d prepared in %.3f ms, frozen for %.3f ms (state read in %.3f "
		"ms), total %.3f ms, %llu bytes written (%llu pages) to '%s'%s\n",
		o.pid, (double)st.prepare_ns / 1e6, (double)st.frozen_ns / 1e6,
		(double)st.capture_ns / 1e6, (double)st.total_ns / 1e6,
		(unsigned long long)st.bytes_written, (unsigned long long)st.pages, o.dir,
		o.leave_running ? ", left running" : ", killed");
	if (st.parent_dir[0])
		fprintf(stderr, "ckptfs dump: pages: %llu written, %llu copied from parent '%s'\n",
			(unsigned long long)(st.pages - st.pages_copied),
			(unsigned long long)st.pages_copied, st.parent_dir);
	if (st.parent_note[0])
		fprintf(stderr, "ckptfs dump: %s\n", st.parent_note);
	if (st.pages_spilled)
		fprintf(stderr,
			"ckptfs dump: memory exceeded the %llu MiB capture buffer: pages were "
			"written while frozen\n",
			(unsigned long long)(st.buffer_bytes >> 20));
	return 0;
}
