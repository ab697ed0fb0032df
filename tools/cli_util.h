/* SPDX-License-Identifier: MIT */
/*
 * cli_util.h - what several cmd_<name>.c share: the option parser of commands whose only option
 * is --help, and opening a store with the error logged.
 *
 * Owns no state beyond getopt's globals (optind is reset on every parse). Not thread-safe: the
 * CLI runs one command per process.
 */
#ifndef CKPTFS_TOOLS_CLI_UTIL_H
#define CKPTFS_TOOLS_CLI_UTIL_H

#include <stdio.h>

struct store;

/* No upper bound on the positional arguments. */
#define CLI_ARGS_MAX_ANY (-1)

/* Parses argv of a command that takes -h/--help and between min_args and max_args positional
 * arguments (max_args CLI_ARGS_MAX_ANY: no limit). Returns -1 when the command should run: its
 * arguments start at argv[optind]. Otherwise returns the exit status: 0 after printing usage to
 * stdout for --help, 2 after printing it to stderr for a usage error. */
int cli_parse_help_only(int argc, char **argv, void (*usage)(FILE *f), int min_args, int max_args);

/* store_open() that logs store_last_error() when it fails: 0, or 1 (the command's exit status)
 * with nothing opened. */
int cli_store_open(const char *path, unsigned flags, struct store **ret_s);

#endif
