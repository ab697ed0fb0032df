// SPDX-License-Identifier: MIT
/*
 * replay.c - runs the fuzz target over a corpus as an ordinary test (no libFuzzer needed).
 * Arguments: corpus directories or files. Each input goes through LLVMFuzzerTestOneInput();
 * a crash or sanitizer report fails the test. Also checks that each input named "ok-*" parses
 * and each named "bad-*" is rejected, so the corpus doubles as a set of expectations.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/error.h"
#include "cr/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_image_parse(const uint8_t *data, size_t size, const char *name);

static int failures, runs;

static int expect_of(const char *name)
{
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	if (!strncmp(base, "ok-", 3))
		return 1;
	if (!strncmp(base, "bad-", 4))
		return -1;
	return 0;
}

static void run_file(const char *path)
{
	struct stat st;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "replay: cannot read '%s': %s\n", path, strerror(errno));
		failures++;
		return;
	}
	_cleanup_free_ uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf || pread_full(fd, buf, (size_t)st.st_size, 0) < 0) {
		fprintf(stderr, "replay: cannot read '%s'\n", path);
		failures++;
		return;
	}
	LLVMFuzzerTestOneInput(buf, (size_t)st.st_size);
	runs++;

	int expect = expect_of(path);
	if (expect && st.st_size > 0) {
		int ret = fuzz_image_parse(buf, (size_t)st.st_size, path);
		cr_error_clear();
		if ((expect > 0) != (ret == 0)) {
			fprintf(stderr, "replay: '%s' should %s but returned %d\n", path,
				expect > 0 ? "parse" : "be rejected", ret);
			failures++;
		}
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: '%s': %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			run_file(argv[i]);
			continue;
		}
		struct dirent **ents;
		int n = scandir(argv[i], &ents, NULL, alphasort);
		if (n < 0)
			return 1;
		for (int k = 0; k < n; k++) {
			char p[4096];
			if (ents[k]->d_name[0] != '.') {
				snprintf(p, sizeof(p), "%s/%s", argv[i], ents[k]->d_name);
				run_file(p);
			}
			free(ents[k]);
		}
		free(ents);
	}
	printf("replay: %d inputs, %d failures\n", runs, failures);
	return failures || runs == 0 ? 1 : 0;
}
