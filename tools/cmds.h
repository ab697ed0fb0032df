/* SPDX-License-Identifier: MIT */
/*
 * cmds.h - the ckptfs subcommands. One cmd_<name>.c per subcommand: each parses its options,
 * calls the libraries (index/, fs/, cr/) and decides what to print; no logic lives here.
 * Each returns the process exit code (0 ok, 1 failure/problems found, 2 usage error).
 */
#ifndef CKPTFS_TOOLS_CMDS_H
#define CKPTFS_TOOLS_CMDS_H

int cmd_init(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_df(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_show(int argc, char **argv);

#endif
