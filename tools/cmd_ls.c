// SPDX-License-Identifier: MIT
/* ckptfs ls - list checkpoints with sizes and content ids. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "index/store.h"
#include "tools/cli_util.h"
#include "tools/cmds.h"

struct ls_opts {
	bool json, bytes, first;
};

static void ls_usage(FILE *f)
{
	fprintf(f,
		"usage: ckptfs ls [--json] [--bytes] STORE\n\n"
		"List the checkpoints of a store, one per line:\n"
		"  NAME     the checkpoint directory\n"
		"  SIZE     logical size: sum of its file sizes\n"
		"  STORED   compressed bytes of the distinct chunks it references\n"
		"  UNIQUE   compressed bytes only it references (what removing it frees at gc)\n"
		"  FILES    number of files (hard links counted once)\n"
		"  SEALED   yes/no\n"
		"  ID       content id of a sealed checkpoint (32 hex digits), '-' otherwise\n"
		"Works while the store is mounted (shows what the mount has stored so far).\n\n"
		"Options:\n"
		"  --json       one JSON array of objects with the same fields (sizes in bytes)\n"
		"  -b, --bytes  sizes in bytes instead of human units\n"
		"  -h, --help   this text\n\n"
		"Exit status: 0 ok, 1 failed, 2 usage error.\n");
}

static const char *human(uint64_t v, bool bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double d = (double)v;
	unsigned u = 0;

	if (bytes || v < 1024) {
		snprintf(buf, len, "%" PRIu64 "%s", v, bytes ? "" : "B");
		return buf;
	}
	while (d >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f%s", d, units[u]);
	return buf;
}

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void hex(const uint8_t *id, char *out)
{
	for (unsigned i = 0; i < STORE_CONTENT_ID_LEN; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
}

static int ls_one(void *ctx, const struct store_ckpt_info *ci)
{
	struct ls_opts *o = ctx;
	char id[2 * STORE_CONTENT_ID_LEN + 1] = "-";
	char a[32], b[32], c[32];

	if (ci->sealed)
		hex(ci->content_id, id);
	if (o->json) {
		printf("%s\n  {\"name\": ", o->first ? "" : ",");
		json_string(ci->name);
		printf(", \"logical_bytes\": %" PRIu64 ", \"stored_bytes\": %" PRIu64
		       ", \"unique_bytes\": %" PRIu64 ", \"files\": %" PRIu64
		       ", \"sealed\": %s, \"content_id\": ",
		       ci->logical_bytes, ci->stored_bytes, ci->unique_bytes, ci->nfiles,
		       ci->sealed ? "true" : "false");
		if (ci->sealed)
			printf("\"%s\"}", id);
		else
			printf("null}");
	} else {
		if (o->first)
			printf("%-24s %10s %10s %10s %7s %6s %s\n", "NAME", "SIZE", "STORED",
			       "UNIQUE", "FILES", "SEALED", "ID");
		printf("%-24s %10s %10s %10s %7" PRIu64 " %6s %s\n", ci->name,
		       human(ci->logical_bytes, o->bytes, a, sizeof(a)),
		       human(ci->stored_bytes, o->bytes, b, sizeof(b)),
		       human(ci->unique_bytes, o->bytes, c, sizeof(c)), ci->nfiles,
		       ci->sealed ? "yes" : "no", id);
	}
	o->first = false;
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"bytes", no_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct ls_opts o = {.first = true};
	struct store *s = NULL;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+bh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'b':
			o.bytes = true;
			break;
		case 'h':
			ls_usage(stdout);
			return 0;
		default:
			ls_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		ls_usage(stderr);
		return 2;
	}
	if (cli_store_open(argv[optind], STORE_OPEN_RDONLY, &s))
		return 1;
	if (o.json)
		printf("[");
	r = store_ckpt_list(s, true, ls_one, &o);
	if (o.json)
		printf("%s]\n", o.first ? "" : "\n");
	else if (r >= 0 && o.first)
		printf("%-24s %10s %10s %10s %7s %6s %s\n", "NAME", "SIZE", "STORED", "UNIQUE",
		       "FILES", "SEALED", "ID");
	if (r < 0) {
		log_err("list checkpoints of '%s': %s", argv[optind], store_last_error());
		store_close(s);
		return 1;
	}
	store_close(s);
	return 0;
}
