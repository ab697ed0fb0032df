// SPDX-License-Identifier: MIT
/* ckptfs seal - make a checkpoint immutable and print its content id. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
#include "tools/cli_util.h"
#include "tools/cmds.h"

static void seal_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs seal STORE NAME\n\n"
		"Seal checkpoint NAME: write its final manifest, make it immutable (writes into it\n"
		"fail with EROFS; it can still be renamed or removed as a whole) and print its\n"
		"content id, a hash over the manifest that lists every file and chunk id. Sealing\n"
		"again prints the same id. Works while the store is mounted; data that the mount\n"
		"still buffers is not included - writers should seal through the mount instead:\n"
		"  setfattr -n " STORE_SEAL_XATTR " -v 1 MOUNTPOINT/NAME\n\n"
		"Options:\n"
		"  -h, --help   this text\n\n"
		"Exit status: 0 sealed, 1 failed, 2 usage error.\n");
}

int cmd_seal(int argc, char **argv)
{
	uint8_t id[STORE_CONTENT_ID_LEN];
	struct store *s = NULL;
	int r;

	r = cli_parse_help_only(argc, argv, seal_usage, 2, 2);
	if (r >= 0)
		return r;
	if (cli_store_open(argv[optind], 0, &s))
		return 1;
	r = store_ckpt_seal(s, argv[optind + 1], id);
	if (r < 0) {
		log_err("seal '%s': %s", argv[optind + 1],
			r == -ENOENT || r == -EINVAL || r == -EBADMSG ? store_last_error()
								      : strerror(-r));
		store_close(s);
		return 1;
	}
	for (unsigned i = 0; i < STORE_CONTENT_ID_LEN; i++)
		printf("%02x", id[i]);
	printf("\n");
	store_close(s);
	return 0;
}
