// SPDX-License-Identifier: MIT
// PLACEHOLDER: replaced by the owner of this subcommand.
#include <stdio.h>
#include "tools/cmds.h"

int cmd_mount(int argc, char **argv)
{
	fprintf(stderr, "ckptfs mount: not built yet\n");
	return 1;
}
