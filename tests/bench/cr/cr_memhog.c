// SPDX-License-Identifier: MIT
/*
 * cr_memhog - a process whose memory looks like a real program's, for C/R dedup tests and the
 * C/R benchmark. It maps MIB MiB, touches every page and fills it by kind: text-like, pointer-
 * like, zero or random ("realistic"), or all random ("random"). Then it waits:
 *   SIGUSR1  change PERMILLE/1000 of the pages (new contents, a new generation) and print
 *            "CHANGED <generation>"
 *   SIGUSR2  print "PONG" straight from the handler (the benchmark's is-it-running probe)
 *   SIGTERM  verify every page against the current generation, print PASS or FAIL, exit.
 * Protocol as the workloads in tests/cr: "READY" on stdout once filled. Built without
 * sanitizers: it runs inside restored processes.
 * Usage: cr_memhog MIB realistic|random [PERMILLE (default 30)]
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL

static volatile sig_atomic_t got_usr1, got_term;
static unsigned char *mem;
static size_t npages;
static int random_only;
static unsigned int permille = 30;
static uint32_t *page_gen; /* generation that last wrote each page */
static char text[65536];

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t z = a * 0x9e3779b97f4a7c15ULL + b * 0xbf58476d1ce4e5b9ULL + 0x94d049bb133111ebULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void say(const char *s)
{
	if (write(STDOUT_FILENO, s, strlen(s)) < 0)
		return;
}

static void on_usr1(int sig)
{
	got_usr1 = 1;
}

static void on_usr2(int sig)
{
	say("PONG\n");
}

static void on_term(int sig)
{
	got_term = 1;
}

/* Text of made-up words: compresses like source code or logs do. */
static void make_text(void)
{
	static const char *words[] = {"the",	 "process", "memory", "page",	"checkpoint",
				      "restore", "value",   "index",  "struct", "return",
				      "buffer",	 "error",   "count",  "file",	"static",
				      "const",	 "int",	    "char",   "void",	"while"};
	size_t n = 0, w = 0;

	while (n < sizeof(text)) {
		const char *s = words[mix(7, w++) % 20];
		size_t l = strlen(s);

		for (size_t i = 0; i < l && n < sizeof(text); i++)
			text[n++] = s[i];
		if (n < sizeof(text))
			text[n++] = w % 11 ? ' ' : '\n';
	}
}

static void fill_page(unsigned char *p, size_t idx, uint32_t gen)
{
	uint64_t h = mix(idx, gen);
	unsigned int kind = random_only ? 99 : (unsigned int)(mix(idx, 0) % 100);
	uint64_t *w = (uint64_t *)p;

	if (kind < 30) { /* text */
		memcpy(p, text + (h % (sizeof(text) / PG)) * PG, PG);
		memcpy(p + (h >> 20) % (PG - 16), &h, 8);
		memcpy(p, &idx, sizeof(idx));
	} else if (kind < 55) { /* pointers into a heap, small integers in between */
		uint64_t base = 0x00007f3a12000000ULL;

		for (size_t i = 0; i < PG / 8; i++)
			w[i] = i % 4 == 3 ? mix(h, i) % 1000 : base + (mix(h, i) & 0xffff8);
	} else if (kind < 75) { /* touched but zero, as freed heap often is */
		memset(p, 0, PG);
		if (gen)
			memcpy(p, &h, 8); /* a changed zero page is not zero any more */
	} else {
		for (size_t i = 0; i < PG / 8; i++)
			w[i] = mix(h, i);
	}
}

static void change_pages(uint32_t gen)
{
	for (size_t i = 0; i < npages; i++)
		if (mix(i, 1000 + gen) % 1000 < permille) {
			fill_page(mem + i * PG, i, gen);
			page_gen[i] = gen;
		}
}

static size_t verify(void)
{
	static unsigned char want[PG];
	size_t bad = 0;

	for (size_t i = 0; i < npages; i++) {
		fill_page(want, i, page_gen[i]);
		if (memcmp(want, mem + i * PG, PG)) {
			if (!bad) {
				char line[128];

				snprintf(line, sizeof(line),
					 "FAIL: page %zu (generation %u) differs\n", i,
					 page_gen[i]);
				say(line);
			}
			bad++;
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	struct sigaction sa = {0};
	sigset_t block, wait_mask;
	uint32_t gen = 0;
	size_t mib;

	if (argc < 3 || (strcmp(argv[2], "realistic") && strcmp(argv[2], "random"))) {
		fprintf(stderr, "usage: cr_memhog MIB realistic|random [PERMILLE]\n");
		return 2;
	}
	mib = strtoul(argv[1], NULL, 10);
	random_only = !strcmp(argv[2], "random");
	if (argc > 3)
		permille = (unsigned int)strtoul(argv[3], NULL, 10);
	npages = mib * 256;
	mem = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	page_gen = calloc(npages, sizeof(*page_gen));
	if (mem == MAP_FAILED || !page_gen) {
		fprintf(stderr, "cr_memhog: cannot allocate %zu MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	make_text();
	for (size_t i = 0; i < npages; i++)
		fill_page(mem + i * PG, i, 0);

	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	say("READY\n");
	for (;;) {
		while (!got_usr1 && !got_term)
			sigsuspend(&wait_mask);
		if (got_term)
			break;
		got_usr1 = 0;
		change_pages(++gen);
		char line[64];
		snprintf(line, sizeof(line), "CHANGED %u\n", gen);
		say(line);
	}
	if (verify())
		return 1;
	say("PASS\n");
	return 0;
}
