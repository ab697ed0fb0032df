// SPDX-License-Identifier: MIT
// PLACEHOLDER: replaced by the owner of this subcommand.
#include <stdio.h>
#include "tools/cmds.h"

int cmd_df(int argc, char **argv)
{
	fprintf(stderr, "ckptfs df: not built yet\n");
	return 1;
}
