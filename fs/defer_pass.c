// SPDX-License-Identifier: MIT
#include "fs/defer_pass.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define DEFER_IDLE_MS_DEF 1000u
#define DEFER_TICK_MS	  250u
/* After a failed pass: wait this long before the next attempt. */
#define DEFER_RETRY_MS 10000u
#define DEFER_NICE     19

struct defer_pass {
	struct store *s;
	char *store_path;
	char exe[PATH_MAX];
	unsigned idle_ms;
	int devnull; /* the child's stdout (gc prints its statistics there) */

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	bool stop;

	bool leftover; /* the store held deferred records when we started */
	pid_t child;   /* 0: no pass running */
	uint64_t child_mark;
	uint64_t retry_at_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs the child; only async-signal-safe calls between fork and exec (we have threads). */
static int pass_spawn(struct defer_pass *p, pid_t *ret_pid)
{
	char *argv[] = {p->exe, (char *)"gc", (char *)"--compress-deferred", p->store_path, NULL};
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		(void)setpriority(PRIO_PROCESS, 0, DEFER_NICE);
		if (p->devnull >= 0)
			(void)dup2(p->devnull, STDOUT_FILENO);
		/* Nothing of the daemon's (the /dev/fuse fd above all) may live on in the child. */
		(void)close_range(3, ~0U, 0);
		execv(p->exe, argv);
		_exit(127);
	}
	*ret_pid = pid;
	return 0;
}

/* One look at the child or the store (p->mu not held: only this thread touches the fields). */
static void pass_tick(struct defer_pass *p)
{
	uint64_t mark;
	int status, r;

	if (p->child > 0) {
		pid_t w = waitpid(p->child, &status, WNOHANG);

		if (w == 0 || (w < 0 && errno == EINTR))
			return;
		if (w > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			p->child = 0;
			store_defer_done(p->s, p->child_mark);
			log_debug("store '%s': background compression pass done", p->store_path);
			return;
		}
		if (p->child_mark == 0)
			p->leftover = true;
		/* status is only set when waitpid returned the child. */
		if (w < 0)
			log_warn("store '%s': background compression pass (pid %d) lost: "
				 "waitpid: %s; retrying in %u s",
				 p->store_path, (int)p->child, strerror(errno),
				 DEFER_RETRY_MS / 1000);
		else
			log_warn("store '%s': background compression pass (pid %d) failed (%s %d); "
				 "retrying in %u s",
				 p->store_path, (int)w,
				 WIFSIGNALED(status) ? "signal" : "exit status",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
				 DEFER_RETRY_MS / 1000);
		p->child = 0;
		p->retry_at_ms = now_ms() + DEFER_RETRY_MS;
		return;
	}
	if (now_ms() < p->retry_at_ms)
		return;
	if (p->leftover) {
		/* Deferred records of an earlier mount (or a pass cut short by its unmount). */
		p->leftover = false;
		r = 1;
		mark = 0;
	} else {
		r = store_defer_idle(p->s, p->idle_ms, &mark);
	}
	if (r <= 0) {
		if (r < 0) {
			log_warn("store '%s': preparing the background compression pass: %s",
				 p->store_path, store_last_error());
			p->retry_at_ms = now_ms() + DEFER_RETRY_MS;
		}
		return;
	}
	r = pass_spawn(p, &p->child);
	if (r < 0) {
		log_warn("store '%s': cannot start the background compression pass: %s",
			 p->store_path, strerror(-r));
		p->retry_at_ms = now_ms() + DEFER_RETRY_MS;
		return;
	}
	p->child_mark = mark;
	log_debug("store '%s': background compression pass started (pid %d)", p->store_path,
		  (int)p->child);
}

static void *pass_main(void *arg)
{
	struct defer_pass *p = arg;
	struct store_df df;

	/* One scan of the chunk index at start: is there work left from before? */
	if (store_df(p->s, &df) == 0 && df.deferred_bytes > 0)
		p->leftover = true;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)DEFER_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->wake, &p->mu, &ts);
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->mu);
		pass_tick(p);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void pass_free(struct defer_pass *p)
{
	if (!p)
		return;
	if (p->devnull >= 0)
		close(p->devnull);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->mu);
	free(p->store_path);
	free(p);
}

int defer_pass_start(struct store *s, const char *store_path, struct defer_pass **ret)
{
	const char *env = getenv("CKPTFS_DEFER_IDLE_MS");
	pthread_condattr_t ca;
	struct defer_pass *p;
	unsigned long idle = DEFER_IDLE_MS_DEF;
	ssize_t n;
	int r;

	*ret = NULL;
	if (env && *env) {
		char *end;

		errno = 0;
		idle = strtoul(env, &end, 10);
		if (errno || *end || idle > UINT_MAX) {
			log_err("CKPTFS_DEFER_IDLE_MS='%s' is not a number of milliseconds", env);
			return -EINVAL;
		}
		if (idle == 0)
			return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->s = s;
	p->idle_ms = (unsigned)idle;
	p->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (p->devnull < 0)
		log_warn("background compression pass: cannot open '/dev/null' (%s): gc's "
			 "statistics go to the daemon's stdout",
			 strerror(errno));
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	p->store_path = strdup(store_path);
	if (!p->store_path) {
		r = -ENOMEM;
		goto fail;
	}
	/* The pass is this very binary (the daemon is `ckptfs mount`) running `gc`. */
	n = readlink("/proc/self/exe", p->exe, sizeof(p->exe) - 1);
	if (n < 0 || (size_t)n >= sizeof(p->exe) - 1) {
		r = n < 0 ? -errno : -ENAMETOOLONG;
		log_err("background compression pass: cannot find our own executable "
			"('/proc/self/exe'): %s",
			strerror(-r));
		goto fail;
	}
	p->exe[n] = '\0';
	r = pthread_create(&p->thread, NULL, pass_main, p);
	if (r) {
		r = -r;
		log_err("background compression pass: cannot start its thread: %s", strerror(-r));
		goto fail;
	}
	/* From now on flushes may defer: this thread compresses later. */
	store_defer_enable(s);
	*ret = p;
	return 0;
fail:
	pass_free(p);
	return r;
}

void defer_pass_stop(struct defer_pass *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	if (p->child > 0) {
		/* gc is safe against being stopped anywhere; the next mount tries again. */
		(void)kill(p->child, SIGTERM);
		while (waitpid(p->child, NULL, 0) < 0 && errno == EINTR)
			;
		p->child = 0;
	}
	pass_free(p);
}
