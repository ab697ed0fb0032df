// SPDX-License-Identifier: MIT
/*
 * fuseclient.c - hammers a FUSE mount until a stop file appears, checking every answer, and
 * reports how many operations ran, how many failed and the longest one wait.
 *
 *   fuseclient counter MNT STOP        testfs: /counter strictly increases; files it creates
 *                                      read back exactly, now and at the end
 *   fuseclient ro MNT STOP REFDIR      every regular file of REFDIR reads back byte-exact
 *   fuseclient rw MNT STOP TAG [N]     creates, writes and reads back files TAG-<i> (at most N),
 *                                      verifying all of them at the end
 *   fuseclient rollback MNT STOP       testfs rolled back to a checkpoint (a --leave-running
 *                                      image restored after the original died): /counter
 *                                      strictly increases except for at most one step back;
 *                                      prints "rollback_from=X rollback_to=Y" for it
 *
 * Prints "ops=N errors=E max_wait_ms=X" and exits 0 only if E == 0 and N > 0. Every failure
 * is printed with its errno text (an ENOTCONN or EIO there is exactly what must not happen).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 100000

static unsigned long long ops, errors;
static double max_wait_ms;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void fail(const char *what, const char *path, int err)
{
	errors++;
	fprintf(stderr, "fuseclient: %s '%s': %s\n", what, path, err ? strerror(err) : "mismatch");
}

/* Reads the whole file into buf (at most cap bytes); returns its length or -errno. */
static long read_file(const char *path, char *buf, size_t cap)
{
	double t0 = now_ms();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long got = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - (size_t)got);
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0 || (size_t)(got + n) == cap) {
			got += n;
			break;
		}
		got += n;
	}
	close(fd);
	double w = now_ms() - t0;
	if (w > max_wait_ms)
		max_wait_ms = w;
	ops++;
	return got;
}

static int write_file(const char *path, const char *data, size_t len)
{
	double t0 = now_ms();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, data, len);
	int e = n < 0 ? errno : (size_t)n != len ? EIO : 0;
	if (close(fd) < 0 && !e)
		e = errno;
	double w = now_ms() - t0;
	if (w > max_wait_ms)
		max_wait_ms = w;
	ops++;
	return -e;
}

static void content_of(const char *tag, unsigned long i, char *buf, size_t cap)
{
	/* A few hundred bytes that differ per file, so a mixed-up file is caught. */
	int n = snprintf(buf, cap, "%s-%lu:", tag, i);
	for (unsigned long k = 0; (size_t)n + 1 < cap && k < 300 + i % 200; k++)
		buf[n++] = (char)('a' + (i * 7 + k) % 26);
	buf[n] = 0;
}

static bool check_file(const char *mnt, const char *tag, unsigned long i)
{
	char path[4096], want[1024], got[1024];
	snprintf(path, sizeof(path), "%s/%s-%lu", mnt, tag, i);
	content_of(tag, i, want, sizeof(want));
	long n = read_file(path, got, sizeof(got));
	if (n < 0) {
		fail("reading", path, (int)-n);
		return false;
	}
	if ((size_t)n != strlen(want) || memcmp(got, want, (size_t)n)) {
		fail("content of", path, 0);
		return false;
	}
	return true;
}

static bool make_file(const char *mnt, const char *tag, unsigned long i)
{
	char path[4096], want[1024];
	snprintf(path, sizeof(path), "%s/%s-%lu", mnt, tag, i);
	content_of(tag, i, want, sizeof(want));
	int r = write_file(path, want, strlen(want));
	if (r < 0) {
		fail("writing", path, -r);
		return false;
	}
	return check_file(mnt, tag, i);
}

static int run_rw(const char *mnt, const char *stop, const char *tag, unsigned long max,
		  bool counter)
{
	char path[4096], buf[64];
	unsigned long long last = 0;
	unsigned long n = 0;

	snprintf(path, sizeof(path), "%s/counter", mnt);
	while (access(stop, F_OK) != 0 && errors < 10) {
		if (counter) {
			long l = read_file(path, buf, sizeof(buf) - 1);
			if (l < 0) {
				fail("reading", path, (int)-l);
				continue;
			}
			buf[l] = 0;
			unsigned long long v = strtoull(buf, NULL, 10);
			if (v <= last) {
				fprintf(stderr, "fuseclient: counter went from %llu to %llu\n",
					last, v);
				errors++;
			}
			last = v;
		}
		if (n < max) {
			if (make_file(mnt, tag, n))
				n++;
		}
		if (n > 0)
			check_file(mnt, tag, (unsigned long)rand() % n);
		usleep(2000);
	}
	for (unsigned long i = 0; i < n; i++)
		check_file(mnt, tag, i);
	if (counter)
		printf("counter=%llu ", last);
	printf("files=%lu ", n);
	return 0;
}

/* The counter may go back once (to the checkpoint's value), never repeat or go back twice. */
static int run_rollback(const char *mnt, const char *stop)
{
	char path[4096], buf[64];
	unsigned long long last = 0, from = 0, to = 0;
	unsigned int rollbacks = 0;

	snprintf(path, sizeof(path), "%s/counter", mnt);
	while (access(stop, F_OK) != 0 && errors < 10) {
		long l = read_file(path, buf, sizeof(buf) - 1);
		if (l < 0) {
			fail("reading", path, (int)-l);
			continue;
		}
		buf[l] = 0;
		unsigned long long v = strtoull(buf, NULL, 10);
		if (v < last && rollbacks == 0) {
			rollbacks++;
			from = last;
			to = v;
		} else if (v <= last) {
			fprintf(stderr, "fuseclient: counter went from %llu to %llu%s\n", last, v,
				rollbacks ? " after a rollback" : "");
			errors++;
		}
		last = v;
		usleep(2000);
	}
	printf("counter=%llu rollbacks=%u rollback_from=%llu rollback_to=%llu ", last, rollbacks,
	       from, to);
	return 0;
}

struct ref {
	char name[256];
	char *data;
	long len;
};

static int run_ro(const char *mnt, const char *stop, const char *refdir)
{
	static struct ref refs[256];
	int nr = 0;
	DIR *d = opendir(refdir);
	struct dirent *de;

	if (!d) {
		fail("listing", refdir, errno);
		return -1;
	}
	while ((de = readdir(d)) && nr < 256) {
		char p[4096];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", refdir, de->d_name);
		if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		struct ref *r = &refs[nr];
		snprintf(r->name, sizeof(r->name), "%s", de->d_name);
		r->data = malloc((size_t)st.st_size + 1);
		if (!r->data)
			break;
		r->len = read_file(p, r->data, (size_t)st.st_size + 1);
		if (r->len != st.st_size) {
			fail("reading reference", p, r->len < 0 ? (int)-r->len : 0);
			break;
		}
		nr++;
	}
	closedir(d);
	ops = 0;
	max_wait_ms = 0;
	if (nr == 0)
		return -1;
	long cap = 0;
	for (int i = 0; i < nr; i++)
		cap = refs[i].len + 1 > cap ? refs[i].len + 1 : cap;
	char *buf = malloc((size_t)cap);
	if (!buf)
		return -1;
	for (unsigned long k = 0; access(stop, F_OK) != 0 && errors < 10; k++) {
		struct ref *r = &refs[k % (unsigned long)nr];
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", mnt, r->name);
		long l = read_file(p, buf, (size_t)cap);
		if (l < 0)
			fail("reading", p, (int)-l);
		else if (l != r->len || memcmp(buf, r->data, (size_t)l))
			fail("content of", p, 0);
		usleep(1000);
	}
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr,
			"usage: fuseclient counter|rollback|ro|rw MNT STOP [REFDIR|TAG [N]]\n");
		return 2;
	}
	const char *mode = argv[1], *mnt = argv[2], *stop = argv[3];
	srand((unsigned int)getpid());
	if (!strcmp(mode, "counter")) {
		char tag[64];
		snprintf(tag, sizeof(tag), "c%d", getpid());
		run_rw(mnt, stop, tag, 2000, true);
	} else if (!strcmp(mode, "rollback")) {
		run_rollback(mnt, stop);
	} else if (!strcmp(mode, "ro") && argc == 5) {
		run_ro(mnt, stop, argv[4]);
	} else if (!strcmp(mode, "rw") && argc >= 5) {
		run_rw(mnt, stop, argv[4], argc > 5 ? strtoul(argv[5], NULL, 10) : 2000, false);
	} else {
		fprintf(stderr, "fuseclient: bad arguments\n");
		return 2;
	}
	printf("ops=%llu errors=%llu max_wait_ms=%.0f\n", ops, errors, max_wait_ms);
	return errors == 0 && ops > 0 ? 0 : 1;
}
