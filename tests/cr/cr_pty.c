// SPDX-License-Identifier: MIT
/*
 * cr_pty - runs a command on a fresh pseudo-terminal, as a shell in a terminal window would:
 * the command is a session leader whose controlling terminal and fds 0-2 are the pty slave.
 * Everything it prints to the terminal is copied to OUTFILE ("\r\n" as the tty makes it).
 * Ends when the command has ended and the terminal has no writer left; exits with the
 * command's status (128+signal if it was killed). Used by terminal.sh for the shell-job case.
 * Usage: cr_pty OUTFILE COMMAND [ARGS...]
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[65536];
	int master, out, status = 0;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: cr_pty OUTFILE COMMAND [ARGS...]\n");
		return 2;
	}
	out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (out < 0) {
		fprintf(stderr, "cr_pty: cannot open '%s': %s\n", argv[1], strerror(errno));
		return 2;
	}
	pid = forkpty(&master, NULL, NULL, NULL);
	if (pid < 0) {
		fprintf(stderr, "cr_pty: forkpty: %s\n", strerror(errno));
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "cr_pty: cannot run '%s': %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	fcntl(master, F_SETFD, FD_CLOEXEC);
	/* Until the last slave fd is closed, read() blocks; then it fails with EIO. A restored
	 * process that reopened the slave keeps it open after the command ended. */
	for (;;) {
		ssize_t n = read(master, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write(out, buf, (size_t)n) != n) {
			fprintf(stderr, "cr_pty: writing '%s': %s\n", argv[1], strerror(errno));
			break;
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	close(master);
	close(out);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
