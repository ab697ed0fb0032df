// SPDX-License-Identifier: MIT
// PLACEHOLDER: replaced by the owner of this subcommand.
#include <stdio.h>
#include "tools/cmds.h"

int cmd_ls(int argc, char **argv)
{
	fprintf(stderr, "ckptfs ls: not built yet\n");
	return 1;
}
