// SPDX-License-Identifier: MIT
/* ckptfs - git-style dispatcher to the cmd_<name>() subcommands. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "tools/cmds.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"init", cmd_init, "create a new store"},
	{"mount", cmd_mount, "mount a store as a FUSE filesystem"},
	{"ls", cmd_ls, "list checkpoints with their sizes and content ids"},
	{"df", cmd_df, "space used: logical, stored, dedup and compression ratios"},
	{"fsck", cmd_fsck, "verify every chunk and reference; rebuild the index"},
	{"seal", cmd_seal, "make a checkpoint immutable and print its content id"},
	{"rm", cmd_rm, "remove a checkpoint"},
	{"gc", cmd_gc, "reclaim space of unreferenced chunks"},
	{"dump", cmd_dump, "checkpoint a running process into a directory"},
	{"restore", cmd_restore, "restore a process from a checkpoint directory"},
	{"show", cmd_show, "summarise a checkpoint image"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ckptfs [-v|-q] COMMAND [ARGS...]\n\n"
		   "Checkpoint images of Linux processes in a deduplicated FUSE store.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  -v, --verbose  more log output (repeat for debug)\n"
		   "  -q, --quiet    errors only\n"
		   "  -h, --help     this text; 'ckptfs COMMAND --help' documents each command\n");
}

int main(int argc, char **argv)
{
	int level = LOG_WARN;
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			if (level < LOG_DEBUG)
				level++;
		} else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			level = LOG_ERR;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "ckptfs: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	log_set_level((enum log_level)level);
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
		if (!strcmp(argv[i], commands[c].name))
			return commands[c].fn(argc - i, argv + i);
	fprintf(stderr, "ckptfs: unknown command '%s' (see 'ckptfs --help')\n", argv[i]);
	return 2;
}
