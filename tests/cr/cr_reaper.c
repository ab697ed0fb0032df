// SPDX-License-Identifier: MIT
/*
 * cr_reaper - runs one C/R test script as a child subreaper.
 *
 * `ckptfs restore --detach` leaves the restored process without its restorer; orphans normally
 * go to PID 1, which in some sandboxes never reaps them, and the test would see a zombie for
 * ever and no exit status. As a subreaper we inherit those orphans, reap them, and append
 * "PID exit N" or "PID signal N" to $CR_TMP/reaped so the script can check the status.
 * CR_TMP is a fresh directory made here and removed (with everything left in it) at the end.
 * When the script ends, every process still re-parented to us was started by the test: it
 * gets SIGKILL, so no test leaves a process behind.
 * Usage: cr_reaper SCRIPT [ARGS...]; exits with the script's status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/ckptfs-cr.XXXXXX";

static void record(pid_t pid, int status)
{
	char path[sizeof(tmpdir) + 16], line[64];
	int fd, n;

	if (WIFEXITED(status))
		n = snprintf(line, sizeof(line), "%d exit %d\n", pid, WEXITSTATUS(status));
	else
		n = snprintf(line, sizeof(line), "%d signal %d\n", pid, WTERMSIG(status));
	snprintf(path, sizeof(path), "%s/reaped", tmpdir);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n)
		fprintf(stderr, "cr_reaper: short write to '%s'\n", path);
	close(fd);
}

/* Our remaining children, found by their parent pid in /proc/PID/stat. */
static int kill_children(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int killed = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[300], buf[512], *p;
		int pid = atoi(de->d_name), ppid, fd;
		ssize_t n;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1 || ppid != getpid())
			continue;
		fprintf(stderr, "cr_reaper: killing left-over process %d\n", pid);
		kill(pid, SIGKILL);
		killed++;
	}
	closedir(d);
	return killed;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (remove(path) < 0)
		fprintf(stderr, "cr_reaper: cannot remove '%s': %m\n", path);
	return 0;
}

int main(int argc, char **argv)
{
	int status, script_status = 1;
	pid_t script, pid;

	if (argc < 2) {
		fprintf(stderr, "usage: cr_reaper SCRIPT [ARGS...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		fprintf(stderr, "cr_reaper: PR_SET_CHILD_SUBREAPER: %m\n");
		return 1;
	}
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "cr_reaper: mkdtemp: %m\n");
		return 1;
	}
	setenv("CR_TMP", tmpdir, 1);
	/* A timeout's SIGTERM goes to the whole process group: the script cleans up, we wait. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	script = fork();
	if (script < 0) {
		fprintf(stderr, "cr_reaper: fork: %m\n");
		return 1;
	}
	if (script == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		argv[0] = "bash";
		execv("/bin/bash", argv);
		_exit(127);
	}
	for (;;) {
		pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pid == script) {
			script_status =
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			break;
		}
		record(pid, status);
	}
	if (kill_children())
		while (waitpid(-1, &status, 0) > 0 || errno == EINTR)
			;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return script_status;
}
