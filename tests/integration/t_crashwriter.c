// SPDX-License-Identifier: MIT
/*
 * t_crashwriter - the writer and the checker of the kill -9 crash test.
 *
 *   t_crashwriter write DIR RECORD SEED NFILES
 *       Writes NFILES files DIR/w<SEED>_<i> of pseudo-random sizes (1 byte .. 6 MiB) and
 *       contents. Every second file is fsync'd; only after fsync returned 0 is "name size
 *       seed" appended to RECORD (on a disk outside the mount) and RECORD fdatasync'd. The
 *       first failure (the daemon was killed) ends the run quietly with exit 0.
 *   t_crashwriter verify DIR RECORD
 *       Every file listed in RECORD must read back bit-exact. Prints the first bad offset of
 *       each damaged file; exits 1 if any is missing, short, long or different.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/t_gen.h"

#define CHUNK (256u * 1024u)

static uint64_t file_seed(uint64_t seed, uint64_t i)
{
	return t_gen_mix(seed * 1000003u + i);
}

/* Content of byte range [off, off+len) of a file with the given seed, block-aligned off. */
static void fill(uint64_t fseed, uint64_t off, uint8_t *buf, size_t len)
{
	for (size_t done = 0; done < len; done += T_GEN_BLOCK) {
		uint8_t tmp[T_GEN_BLOCK];
		size_t n = len - done < T_GEN_BLOCK ? len - done : T_GEN_BLOCK;
		t_gen_block(fseed, (off + done) / T_GEN_BLOCK, tmp);
		memcpy(buf + done, tmp, n);
	}
}

static int do_write(const char *dir, const char *record, uint64_t seed, uint64_t nfiles)
{
	static uint8_t buf[CHUNK];
	int rec = open(record, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (rec < 0) {
		perror(record);
		return 1;
	}
	for (uint64_t i = 0; i < nfiles; i++) {
		uint64_t fseed = file_seed(seed, i);
		uint64_t size = 1 + fseed % (6u << 20);
		char path[4096], line[512];
		bool ok = true;
		int fd;

		snprintf(path, sizeof(path), "%s/w%" PRIu64 "_%" PRIu64, dir, seed, i);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			break;
		for (uint64_t off = 0; off < size && ok; off += CHUNK) {
			size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
			fill(fseed, off, buf, n);
			ok = pwrite(fd, buf, n, (off_t)off) == (ssize_t)n;
		}
		if (ok && i % 2 == 0) {
			ok = fsync(fd) == 0;
			if (ok) {
				int len = snprintf(line, sizeof(line),
						   "w%" PRIu64 "_%" PRIu64 " %" PRIu64 " %" PRIu64
						   "\n",
						   seed, i, size, fseed);
				if (write(rec, line, (size_t)len) != len || fdatasync(rec) < 0) {
					perror(record);
					close(fd);
					close(rec);
					return 1;
				}
			}
		}
		close(fd);
		if (!ok)
			break;
	}
	close(rec);
	return 0;
}

static int verify_one(const char *dir, const char *name, uint64_t size, uint64_t fseed)
{
	static uint8_t want[CHUNK], got[CHUNK];
	char path[4096];
	uint64_t off = 0;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("%s: fsync'd file is missing: %s\n", name, strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = pread(fd, got, CHUNK, (off_t)off);
		if (n < 0) {
			printf("%s: read at %" PRIu64 ": %s\n", name, off, strerror(errno));
			ret = 1;
			break;
		}
		if (n == 0)
			break;
		if (off + (uint64_t)n > size) {
			printf("%s: longer than the %" PRIu64 " bytes fsync'd\n", name, size);
			ret = 1;
			break;
		}
		fill(fseed, off, want, (size_t)n);
		if (memcmp(want, got, (size_t)n) != 0) {
			size_t i = 0;
			while (want[i] == got[i])
				i++;
			printf("%s: wrong byte at offset %" PRIu64 "\n", name, off + i);
			ret = 1;
			break;
		}
		off += (uint64_t)n;
	}
	if (ret == 0 && off != size) {
		printf("%s: %" PRIu64 " bytes, fsync'd %" PRIu64 "\n", name, off, size);
		ret = 1;
	}
	close(fd);
	return ret;
}

static int do_verify(const char *dir, const char *record)
{
	FILE *f = fopen(record, "re");
	char name[256];
	uint64_t size, fseed;
	unsigned n = 0, bad = 0;

	if (!f) {
		if (errno == ENOENT) {
			printf("verified 0 files\n");
			return 0;
		}
		perror(record);
		return 1;
	}
	while (fscanf(f, "%255s %" SCNu64 " %" SCNu64, name, &size, &fseed) == 3) {
		bad += verify_one(dir, name, size, fseed);
		n++;
	}
	fclose(f);
	printf("verified %u files, %u bad\n", n, bad);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "write"))
		return do_write(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				strtoull(argv[5], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "verify"))
		return do_verify(argv[2], argv[3]);
	fprintf(stderr, "usage: t_crashwriter write DIR RECORD SEED NFILES\n"
			"       t_crashwriter verify DIR RECORD\n");
	return 2;
}
