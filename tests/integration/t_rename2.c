// SPDX-License-Identifier: MIT
/*
 * t_rename2 - renameat2(2) from a shell test.
 *
 *   t_rename2 plain|noreplace|exchange OLD NEW
 *
 * Exits 0 on success; otherwise prints the errno name (e.g. EEXIST) on stdout and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	unsigned flags;

	if (argc != 4) {
		fprintf(stderr, "usage: t_rename2 plain|noreplace|exchange OLD NEW\n");
		return 2;
	}
	if (!strcmp(argv[1], "plain")) {
		flags = 0;
	} else if (!strcmp(argv[1], "noreplace")) {
		flags = RENAME_NOREPLACE;
	} else if (!strcmp(argv[1], "exchange")) {
		flags = RENAME_EXCHANGE;
	} else {
		fprintf(stderr, "t_rename2: unknown mode '%s'\n", argv[1]);
		return 2;
	}
	if (renameat2(AT_FDCWD, argv[2], AT_FDCWD, argv[3], flags) < 0) {
		const char *name = strerrorname_np(errno);
		printf("%s\n", name ? name : "unknown-errno");
		return 1;
	}
	return 0;
}
