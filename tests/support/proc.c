/*
 * proc.c: starting, waiting for and stopping our own processes, by pid,
 * and finding free loopback ports.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

extern char *program_invocation_short_name;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pid_t proc_spawn(char *const argv[], const char *logpath)
{
	const char *me = program_invocation_short_name;
	int fd, nul;
	pid_t parent = getpid(), pid;

	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot open %s: %s\n", me, logpath, strerror(errno));
		return -1;
	}
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close_range(3, ~0U, 0);
		execvp(argv[0], argv);
		dprintf(2, "%s: cannot run %s: %s\n", me, argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	if (nul >= 0)
		close(nul);
	if (pid < 0)
		fprintf(stderr, "%s: fork: %s\n", me, strerror(errno));
	return pid;
}

int proc_wait_exit(pid_t pid, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st)     ? WEXITSTATUS(st)
			       : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
						 : -1;
		if (r < 0 && errno != EINTR)
			return -1; /* not our child, or already reaped */
		if (mono_ms() >= end)
			return -2;
		nanosleep(&(struct timespec){0, 5 * 1000000}, NULL);
	}
}

int proc_stop(pid_t pid, int timeout_ms, const char *what)
{
	int st;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	st = proc_wait_exit(pid, timeout_ms);
	if (st == -2) {
		fprintf(stderr, "%s: %s (pid %d) ignored SIGTERM for %d ms; SIGKILL\n",
			program_invocation_short_name, what, (int)pid, timeout_ms);
		kill(pid, SIGKILL);
		proc_wait_exit(pid, 5000);
		return -1;
	}
	return st;
}

int proc_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

bool proc_tcp_accepts(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

void proc_rm_rf(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
