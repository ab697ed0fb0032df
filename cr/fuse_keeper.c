// SPDX-License-Identifier: MIT
/*
 * fuse_keeper.c - the keeper process that holds /dev/fuse fds across a checkpoint, and the
 * client side used by restore and show. Protocol and lifetime: fuse_keeper.h.
 *
 * Why a process of its own: the connection lives exactly as long as some open file of
 * /dev/fuse bound to it; the dumper exits right after the dump and the daemon is killed, so
 * something else has to hold one. It is detached from the dumper's session and holds no other
 * fd (not even its cwd: it chdirs to "/"), so it pins nothing but the connections.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "cr/error.h"
#include "cr/fuse_keeper.h"

#define KEEPER_MAGIC "CKFKEEP2"
/* A taker restores a whole process between take and confirm: allow for a large one. */
#define KEEPER_CONFIRM_TIMEOUT_S 300

enum keeper_op {
	KEEPER_OP_TAKE = 1,
	KEEPER_OP_PROBE = 2,
	KEEPER_OP_CONFIRM = 3,
};

#define REQ_LEN	   (8 + FUSE_KEEPER_ID_LEN + 4)
#define ANS_HDR	   (8 + 4 + 4 + 4)
#define ANS_MAXLEN (ANS_HDR + FUSE_KEEPER_MAX_FDS * 8)

void fuse_keeper_name(const uint8_t id[FUSE_KEEPER_ID_LEN], char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	char h[2 * FUSE_KEEPER_ID_LEN + 1];

	for (int i = 0; i < FUSE_KEEPER_ID_LEN; i++) {
		h[2 * i] = hex[id[i] >> 4];
		h[2 * i + 1] = hex[id[i] & 15];
	}
	h[2 * FUSE_KEEPER_ID_LEN] = 0;
	snprintf(buf, size, "ckptfs-fuse-keeper-%s", h);
}

static socklen_t keeper_addr(const uint8_t id[FUSE_KEEPER_ID_LEN], struct sockaddr_un *sa)
{
	char name[64];

	fuse_keeper_name(id, name, sizeof(name));
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* Abstract namespace: sun_path[0] == 0, no file to clean up, gone with the keeper. */
	size_t nl = strlen(name);
	memcpy(sa->sun_path + 1, name, nl);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nl);
}

static void set_timeouts(int sock, int seconds)
{
	struct timeval tv = {.tv_sec = seconds};
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void put_req(uint8_t *b, const uint8_t id[FUSE_KEEPER_ID_LEN], uint32_t op)
{
	memcpy(b, KEEPER_MAGIC, 8);
	memcpy(b + 8, id, FUSE_KEEPER_ID_LEN);
	le32_put(b + 8 + FUSE_KEEPER_ID_LEN, op);
}

/* ---- the keeper process ---- */

struct keeper {
	int sock;
	const int *fds;
	const struct fuse_keeper_ent *ents;
	uint32_t n;
	uint32_t flags;
	uint8_t id[FUSE_KEEPER_ID_LEN];
};

static bool peer_allowed(int conn)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == getuid();
}

static int keeper_answer(const struct keeper *k, int conn, uint32_t status, bool with_fds)
{
	uint8_t buf[ANS_MAXLEN];
	uint32_t nr = status ? 0 : k->n;
	size_t len = ANS_HDR + (size_t)nr * 8;

	memcpy(buf, KEEPER_MAGIC, 8);
	le32_put(buf + 8, status);
	le32_put(buf + 12, nr);
	le32_put(buf + 16, status ? 0 : k->flags);
	for (uint32_t i = 0; i < nr; i++) {
		le32_put(buf + ANS_HDR + i * 8, (uint32_t)k->ents[i].fd);
		le32_put(buf + ANS_HDR + i * 8 + 4, k->ents[i].conn);
	}
	struct iovec iov = {buf, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	union {
		char b[CMSG_SPACE(sizeof(int) * FUSE_KEEPER_MAX_FDS)];
		struct cmsghdr align;
	} cm;
	if (with_fds && nr) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nr);
		struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
		ch->cmsg_level = SOL_SOCKET;
		ch->cmsg_type = SCM_RIGHTS;
		ch->cmsg_len = CMSG_LEN(sizeof(int) * nr);
		memcpy(CMSG_DATA(ch), k->fds, sizeof(int) * nr);
	}
	return sendmsg(conn, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EIO;
}

/* Reads one request; returns its op, or -errno / -EPERM for a bad one. */
static int keeper_read_req(const struct keeper *k, int conn)
{
	uint8_t req[REQ_LEN + 1];

	ssize_t n = recv(conn, req, sizeof(req), 0);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return -errno;
	if (n != REQ_LEN || memcmp(req, KEEPER_MAGIC, 8) ||
	    memcmp(req + 8, k->id, FUSE_KEEPER_ID_LEN))
		return -EPERM;
	return (int)le32_get(req + 8 + FUSE_KEEPER_ID_LEN);
}

/* Serves one client; returns true when the fds were handed over and confirmed. */
static bool keeper_serve(const struct keeper *k, int conn)
{
	set_timeouts(conn, FUSE_KEEPER_TIMEOUT_MS / 1000);
	if (!peer_allowed(conn)) {
		keeper_answer(k, conn, EPERM, false);
		return false;
	}
	int op = keeper_read_req(k, conn);
	if (op == -EPERM) {
		keeper_answer(k, conn, EPERM, false);
		return false;
	}
	if (op == KEEPER_OP_PROBE) {
		keeper_answer(k, conn, 0, false);
		return false;
	}
	if (op != KEEPER_OP_TAKE) {
		if (op > 0)
			keeper_answer(k, conn, EINVAL, false);
		return false;
	}
	if (keeper_answer(k, conn, 0, true) < 0)
		return false;
	set_timeouts(conn, KEEPER_CONFIRM_TIMEOUT_S);
	/* The taker restores its process now; it confirms once that process holds the fds, or
	 * goes away (restore failed) and we keep holding them for the next attempt. */
	op = keeper_read_req(k, conn);
	if (op != KEEPER_OP_CONFIRM)
		return false;
	keeper_answer(k, conn, 0, false);
	return true;
}

static bool is_kept(int fd, const int *keep, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (keep[i] == fd)
			return true;
	return false;
}

/* Closes every fd but keep[0..n); fds 0-2 become /dev/null. */
static void keeper_close_others(const int *keep, uint32_t n)
{
	close_fds_except(keep, n, 0);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd <= 2 && null >= 0; fd++)
		if (fd != null && !is_kept(fd, keep, n))
			dup2(null, fd);
}

static _Noreturn void keeper_main(struct keeper *k, int syncfd)
{
	int keep[FUSE_KEEPER_MAX_FDS + 2];
	struct pollfd pfd[FUSE_KEEPER_MAX_FDS + 1];
	pid_t me = getpid();

	memcpy(keep, k->fds, k->n * sizeof(int));
	keep[k->n] = k->sock;
	keep[k->n + 1] = syncfd;
	keeper_close_others(keep, k->n + 2);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	/* A newer dump of the same connection retires us with SIGTERM (fuse_keeper_retire). */
	signal(SIGTERM, SIG_DFL);
	prctl(PR_SET_NAME, "ckptfs-keeper", 0, 0, 0);
	if (chdir("/") < 0)
		_exit(1);
	if (write(syncfd, &me, sizeof(me)) != sizeof(me))
		_exit(1);
	close(syncfd);

	pfd[0] = (struct pollfd){.fd = k->sock, .events = POLLIN};
	for (uint32_t i = 0; i < k->n; i++)
		pfd[i + 1] = (struct pollfd){.fd = k->fds[i], .events = 0};
	for (;;) {
		/* No timeout: holding the connection until a restore comes is the whole job. The
		 * fuse fds report POLLERR once their connection is aborted or unmounted. */
		int r = poll(pfd, k->n + 1, -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		for (uint32_t i = 0; i < k->n; i++)
			if (pfd[i + 1].revents & (POLLERR | POLLHUP | POLLNVAL))
				_exit(0);
		if (!(pfd[0].revents & POLLIN))
			continue;
		int conn = accept4(k->sock, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0)
			continue;
		bool done = keeper_serve(k, conn);
		close(conn);
		if (done)
			_exit(0);
	}
}

int fuse_keeper_start(const int *fds, const struct fuse_keeper_ent *ents, uint32_t n,
		      uint32_t flags, uint8_t ret_id[FUSE_KEEPER_ID_LEN], pid_t *ret_pid)
{
	struct keeper k = {.fds = fds, .ents = ents, .n = n, .flags = flags};
	struct sockaddr_un sa;
	int sync[2] = {-1, -1};
	pid_t keeper = -1;
	int ret;

	if (n == 0 || n > FUSE_KEEPER_MAX_FDS)
		return -EINVAL;
	if (getrandom(k.id, sizeof(k.id), 0) != sizeof(k.id))
		return -errno;
	_cleanup_close_ int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	socklen_t sl = keeper_addr(k.id, &sa);
	/* Bound and listening before the dump goes on: a restore can never find it missing. */
	if (bind(sock, (struct sockaddr *)&sa, sl) < 0 || listen(sock, 8) < 0) {
		cr_error("fuse keeper: cannot listen on its socket: %s", strerror(errno));
		return -errno;
	}
	k.sock = sock;
	if (pipe2(sync, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid_t mid = fork();
	if (mid < 0) {
		ret = -errno;
		goto out;
	}
	if (mid == 0) {
		/* Middle process: a new session, then the keeper as its orphaned child, so the
		 * keeper is never a child of the dumper (nobody has to reap it). */
		close(sync[0]);
		if (setsid() < 0)
			_exit(1);
		pid_t kp = fork();
		if (kp < 0)
			_exit(1);
		if (kp == 0)
			keeper_main(&k, sync[1]);
		_exit(0);
	}
	closep(&sync[1]);
	int st;
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	struct pollfd p = {.fd = sync[0], .events = POLLIN};
	int r = poll(&p, 1, FUSE_KEEPER_TIMEOUT_MS);
	if (r <= 0 || read(sync[0], &keeper, sizeof(keeper)) != sizeof(keeper)) {
		cr_error("fuse keeper did not start (%s)", r == 0 ? "timed out" : "it exited");
		ret = -ECHILD;
		goto out;
	}
	memcpy(ret_id, k.id, FUSE_KEEPER_ID_LEN);
	*ret_pid = keeper;
	ret = 0;
out:
	closep(&sync[0]);
	closep(&sync[1]);
	return ret;
}

/* ---- clients ---- */

static int client_connect(const uint8_t id[FUSE_KEEPER_ID_LEN], uint32_t op, int *ret_sock)
{
	struct sockaddr_un sa;
	uint8_t req[REQ_LEN];

	socklen_t sl = keeper_addr(id, &sa);
	_cleanup_close_ int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	set_timeouts(sock, FUSE_KEEPER_TIMEOUT_MS / 1000);
	if (connect(sock, (struct sockaddr *)&sa, sl) < 0)
		return -errno;
	put_req(req, id, op);
	if (send(sock, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		return errno ? -errno : -EIO;
	*ret_sock = TAKE_FD(sock);
	return 0;
}

/* Receives one answer; fds (if any) into fds[]. Returns the keeper's status as -errno. */
static int client_answer(int sock, uint32_t *ret_nr, uint32_t *ret_flags,
			 struct fuse_keeper_ent *ents, int *fds, uint32_t *ret_nfds)
{
	uint8_t buf[ANS_MAXLEN + 1];
	union {
		char b[CMSG_SPACE(sizeof(int) * FUSE_KEEPER_MAX_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.b,
			    .msg_controllen = sizeof(cm.b)};
	uint32_t nfds = 0;

	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	for (struct cmsghdr *ch = CMSG_FIRSTHDR(&mh); ch; ch = CMSG_NXTHDR(&mh, ch)) {
		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
			continue;
		uint32_t k = (uint32_t)((ch->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (uint32_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
			if (fds && nfds < FUSE_KEEPER_MAX_FDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	if (ret_nfds)
		*ret_nfds = nfds;
	if (n < ANS_HDR || memcmp(buf, KEEPER_MAGIC, 8))
		return -EBADMSG;
	uint32_t status = le32_get(buf + 8), nr = le32_get(buf + 12);
	if (status)
		return -(int)status;
	if (nr > FUSE_KEEPER_MAX_FDS || (size_t)n != ANS_HDR + (size_t)nr * 8)
		return -EBADMSG;
	for (uint32_t i = 0; ents && i < nr; i++) {
		ents[i].fd = (int32_t)le32_get(buf + ANS_HDR + i * 8);
		ents[i].conn = le32_get(buf + ANS_HDR + i * 8 + 4);
	}
	*ret_nr = nr;
	if (ret_flags)
		*ret_flags = le32_get(buf + 16);
	return 0;
}

void fuse_keeper_take_free(struct fuse_keeper_take *tk)
{
	if (!tk)
		return;
	for (uint32_t i = 0; i < tk->nr; i++)
		closep(&tk->fds[i]);
	closep(&tk->sock);
	free(tk);
}

int fuse_keeper_take(const uint8_t id[FUSE_KEEPER_ID_LEN], struct fuse_keeper_take **ret)
{
	struct fuse_keeper_take *tk = calloc(1, sizeof(*tk));
	uint32_t nfds = 0;
	int ret_code;

	if (!tk)
		return -ENOMEM;
	tk->sock = -1;
	memcpy(tk->id, id, FUSE_KEEPER_ID_LEN);
	ret_code = client_connect(id, KEEPER_OP_TAKE, &tk->sock);
	if (ret_code < 0)
		goto fail;
	ret_code = client_answer(tk->sock, &tk->nr, &tk->flags, tk->ents, tk->fds, &nfds);
	if (ret_code == 0 && nfds != tk->nr)
		ret_code = -EBADMSG;
	if (ret_code < 0) {
		for (uint32_t i = 0; i < nfds; i++)
			close(tk->fds[i]);
		tk->nr = 0;
		goto fail;
	}
	*ret = tk;
	return 0;
fail:
	fuse_keeper_take_free(tk);
	return ret_code;
}

int fuse_keeper_confirm(struct fuse_keeper_take *tk)
{
	uint32_t nr = 0;
	int ret = -EIO;

	if (tk->sock >= 0) {
		uint8_t req[REQ_LEN];
		put_req(req, tk->id, KEEPER_OP_CONFIRM);
		if (send(tk->sock, req, sizeof(req), MSG_NOSIGNAL) == (ssize_t)sizeof(req))
			ret = client_answer(tk->sock, &nr, NULL, NULL, NULL, NULL);
		else
			ret = -errno;
	}
	fuse_keeper_take_free(tk);
	return ret;
}

int fuse_keeper_probe(const uint8_t id[FUSE_KEEPER_ID_LEN], uint32_t *ret_nr, uint32_t *ret_flags)
{
	int sock = -1;
	uint32_t nr = 0, flags = 0;

	int ret = client_connect(id, KEEPER_OP_PROBE, &sock);
	if (ret < 0)
		return ret;
	ret = client_answer(sock, &nr, &flags, NULL, NULL, NULL);
	close(sock);
	if (ret == 0 && ret_nr)
		*ret_nr = nr;
	if (ret == 0 && ret_flags)
		*ret_flags = flags;
	return ret;
}

/* ---- finding and retiring keepers ---- */

/* The "fuse_connection:" of fd (a name under /proc/PID/fd) of the process whose /proc
 * directory is procfd, or 0. */
static uint32_t fdinfo_conn_at(int procfd, const char *fd)
{
	char path[64], line[256];
	unsigned int v = 0;

	snprintf(path, sizeof(path), "fdinfo/%s", fd);
	int ffd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (ffd < 0)
		return 0;
	FILE *f = fdopen(ffd, "re");
	if (!f) {
		close(ffd);
		return 0;
	}
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "fuse_connection: %u", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Whether the process of procfd has an fd on connection conn. Only fds that read back as
 * "/dev/fuse" get their fdinfo read: readlink never reaches a FUSE daemon. */
static bool proc_holds_conn(int procfd, uint32_t conn)
{
	char target[16];
	struct dirent *de;
	bool found = false;

	int dfd = openat(procfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return false;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return false;
	}
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
		if (n != (ssize_t)strlen("/dev/fuse") || memcmp(target, "/dev/fuse", (size_t)n))
			continue;
		found = fdinfo_conn_at(procfd, de->d_name) == conn;
	}
	closedir(d);
	return found;
}

/* comm and real uid of the process of procfd. */
static int proc_ident(int procfd, char comm[32], uid_t *ret_uid)
{
	char line[256];
	unsigned int uid = 0;
	bool have_uid = false;

	int sfd = openat(procfd, "status", O_RDONLY | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	FILE *f = fdopen(sfd, "re");
	if (!f) {
		close(sfd);
		return -ENOMEM;
	}
	comm[0] = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Name:\t", 6)) {
			size_t l = strcspn(line + 6, "\n");
			l = l < 31 ? l : 31;
			memcpy(comm, line + 6, l);
			comm[l] = 0;
		} else if (sscanf(line, "Uid: %u", &uid) == 1) {
			have_uid = true;
		}
	}
	fclose(f);
	if (!have_uid)
		return -EBADMSG;
	*ret_uid = (uid_t)uid;
	return 0;
}

int fuse_conn_holders(uint32_t conn, struct fuse_conn_holder *h, uint32_t cap, uint32_t *ret_n)
{
	struct dirent *de;
	uint32_t n = 0;
	pid_t self = getpid();

	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == self)
			continue;
		_cleanup_close_ int procfd =
			openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (procfd < 0 || !proc_holds_conn(procfd, conn))
			continue;
		char comm[32];
		uid_t uid;
		if (proc_ident(procfd, comm, &uid) < 0)
			continue;
		if (n < cap)
			h[n] = (struct fuse_conn_holder){
				.pid = (pid_t)pid,
				.uid = uid,
				.keeper = !strcmp(comm, "ckptfs-keeper"),
			};
		n++;
	}
	closedir(d);
	*ret_n = n;
	return 0;
}

bool fuse_pid_holds_conn(pid_t pid, uint32_t conn)
{
	char path[32];

	snprintf(path, sizeof(path), "/proc/%d", pid);
	_cleanup_close_ int procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return procfd >= 0 && proc_holds_conn(procfd, conn);
}

/* Waits up to ms for the process of pidfd to exit; true if it did. */
static bool pidfd_wait_exit(int pidfd, int ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int r;

	while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return r > 0;
}

int fuse_keeper_retire(pid_t pid, uint32_t conn)
{
	char path[32], comm[32];
	uid_t uid;

	_cleanup_close_ int pidfd = pidfd_open(pid, 0);
	if (pidfd < 0)
		return errno == ESRCH ? 0 : -errno;
	/* Checked after the pidfd is open: if pid was reused meanwhile, /proc/pid is the new
	 * process, which is not a keeper of conn, and the pidfd signals nobody else. */
	snprintf(path, sizeof(path), "/proc/%d", pid);
	_cleanup_close_ int procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return errno == ENOENT ? 0 : -errno;
	int ret = proc_ident(procfd, comm, &uid);
	if (ret < 0)
		return ret == -ENOENT || ret == -ESRCH ? 0 : ret;
	if (strcmp(comm, "ckptfs-keeper") || !proc_holds_conn(procfd, conn))
		return -ESRCH;
	if (geteuid() != 0 && uid != geteuid())
		return -EPERM;
	if (pidfd_send_signal(pidfd, SIGTERM, NULL, 0) < 0)
		return errno == ESRCH ? 0 : -errno;
	if (pidfd_wait_exit(pidfd, FUSE_KEEPER_TIMEOUT_MS))
		return 0;
	/* SIGTERM is not caught by the keeper: if it is still there it is stuck, not busy. */
	if (pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		return -errno;
	return pidfd_wait_exit(pidfd, 1000) ? 0 : -ETIMEDOUT;
}
