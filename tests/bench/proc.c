/*
 * proc.c: our own nats-server and cim-eventsd as child processes (fork and
 * exec, output appended to a log file in our temporary directory, asked to
 * die with us), stopped only by the pids we got from fork; RSS from /proc;
 * what the machine is.
 */
#include "bench.h"
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NATS_START_MS 10000
#define STOP_MS 30000

static int wait_exit(pid_t pid, int timeout_ms)
{
	return proc_wait_exit(pid, timeout_ms);
}

static int stop_pid(pid_t pid, const char *what)
{
	return proc_stop(pid, STOP_MS, what);
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n = 0;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	if (close(out) != 0)
		n = -1;
	return n < 0 ? -1 : 0;
}

int procs_init(procs *p, const char *daemon_bin)
{
	memset(p, 0, sizeof *p);
	p->nats_pid = p->daemon_pid = -1;
	p->daemon_bin = daemon_bin;
	snprintf(p->dir, sizeof p->dir, "/tmp/cim-bench-XXXXXX");
	if (mkdtemp(p->dir) == NULL) {
		fprintf(stderr, "bench: mkdtemp: %s\n", strerror(errno));
		p->dir[0] = '\0';
		return -1;
	}
	snprintf(p->daemon_copy, sizeof p->daemon_copy, "%s/cim-eventsd", p->dir);
	if (copy_file(daemon_bin, p->daemon_copy) != 0) {
		fprintf(stderr, "bench: cannot copy %s to %s: %s\n", daemon_bin,
			p->daemon_copy, strerror(errno));
		return -1;
	}
	snprintf(p->nats_log, sizeof p->nats_log, "%s/nats-server.log", p->dir);
	snprintf(p->daemon_log, sizeof p->daemon_log, "%s/cim-eventsd.log",
		 p->dir);
	return 0;
}

int nats_start(procs *p, const char *store_name)
{
	char port[16];
	char *argv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port,
			"-sd", p->store, NULL};
	int64_t end;

	p->port = proc_free_port();
	if (p->port <= 0) {
		fprintf(stderr, "bench: no free loopback port\n");
		return -1;
	}
	snprintf(port, sizeof port, "%d", p->port);
	snprintf(p->store, sizeof p->store, "%s/%s", p->dir, store_name);
	snprintf(p->url, sizeof p->url, "nats://127.0.0.1:%d", p->port);
	p->nats_pid = proc_spawn(argv, p->nats_log);
	if (p->nats_pid <= 0)
		return -1;
	end = now_ns() + (int64_t)NATS_START_MS * 1000000;
	while (!proc_tcp_accepts(p->port)) {
		if (wait_exit(p->nats_pid, 0) != -2) {
			fprintf(stderr, "bench: nats-server exited at start "
				"(log: %s)\n", p->nats_log);
			p->nats_pid = -1;
			return -1;
		}
		if (now_ns() >= end) {
			fprintf(stderr, "bench: nats-server not listening "
				"after %d ms\n", NATS_START_MS);
			stop_pid(p->nats_pid, "nats-server");
			p->nats_pid = -1;
			return -1;
		}
		sleep_ms(10);
	}
	return 0;
}

void nats_stop(procs *p)
{
	if (p->nats_pid > 0)
		stop_pid(p->nats_pid, "nats-server");
	p->nats_pid = -1;
}

int daemon_start(procs *p, int timeout_ms, double *elapsed_ms)
{
	char *argv[] = {p->daemon_copy, "--nats-url", p->url, NULL};
	natsConnection *nc = connect_nats(p->url, true);
	int64_t t0, end;
	FILE *f;

	if (nc == NULL)
		return -1;
	if ((f = fopen(p->daemon_log, "a")) != NULL) {
		fprintf(f, "==== bench: starting %s --nats-url %s\n",
			p->daemon_bin, p->url);
		fclose(f);
	}
	t0 = now_ns();
	end = t0 + (int64_t)timeout_ms * 1000000;
	p->daemon_pid = proc_spawn(argv, p->daemon_log);
	if (p->daemon_pid <= 0) {
		natsConnection_Destroy(nc);
		return -1;
	}
	for (;;) {
		natsMsg *m = NULL;
		natsStatus s = natsConnection_RequestString(
			&m, nc, "cim.events.v1.info", "{}", 1000);

		natsMsg_Destroy(m);
		if (s == NATS_OK)
			break;
		if (wait_exit(p->daemon_pid, 0) != -2) {
			fprintf(stderr, "bench: cim-eventsd exited at start "
				"(log: %s)\n", p->daemon_log);
			p->daemon_pid = -1;
			natsConnection_Destroy(nc);
			return -1;
		}
		if (now_ns() >= end || g_stop) {
			fprintf(stderr, "bench: cim-eventsd did not answer info "
				"within %d ms\n", timeout_ms);
			stop_pid(p->daemon_pid, "cim-eventsd");
			p->daemon_pid = -1;
			natsConnection_Destroy(nc);
			return -1;
		}
		sleep_ms(2);
	}
	if (elapsed_ms)
		*elapsed_ms = (double)(now_ns() - t0) / 1e6;
	natsConnection_Destroy(nc);
	return 0;
}

int compare_start(procs *p, compare *c)
{
	char copy[320], stream[64], events[64], heads[64], snaps[64], cps[64], lease[64];
	char info[96], upper[32];
	char *argv[] = {copy, "--nats-url", p->url, "--prefix", c->prefix, "--stream", stream,
			"--events-subject", events, "--heads-bucket", heads,
			"--snapshots-bucket", snaps, "--checkpoints-bucket", cps,
			"--lease-bucket", lease, NULL};
	natsConnection *nc = connect_nats(p->url, true);
	int64_t end = now_ns() + 30 * (int64_t)1000000000;
	size_t i;

	c->up = false;
	for (i = 0; c->name[i] && i < sizeof upper - 1; i++)
		upper[i] = (char)(c->name[i] >= 'a' && c->name[i] <= 'z' ? c->name[i] - 32
									: c->name[i]);
	upper[i] = '\0';
	snprintf(copy, sizeof copy, "%s/cim-eventsd-%s", p->dir, c->name);
	snprintf(c->prefix, sizeof c->prefix, "cmp-%s.v1", c->name);
	snprintf(stream, sizeof stream, "CMP-%s-EVENTS", upper);
	snprintf(events, sizeof events, "cmp%sev", c->name);
	snprintf(heads, sizeof heads, "CMP-%s-HEADS", upper);
	snprintf(snaps, sizeof snaps, "CMP-%s-SNAPSHOTS", upper);
	snprintf(cps, sizeof cps, "CMP-%s-CHECKPOINTS", upper);
	snprintf(lease, sizeof lease, "CMP-%s-LEASE", upper);
	snprintf(info, sizeof info, "%s.info", c->prefix);
	if (nc == NULL || copy_file(c->bin, copy) != 0) {
		fprintf(stderr, "bench: cannot copy %s\n", c->bin);
		natsConnection_Destroy(nc);
		return -1;
	}
	c->pid = proc_spawn(argv, p->daemon_log);
	while (c->pid > 0 && now_ns() < end && !g_stop) {
		natsMsg *m = NULL;
		natsStatus s = natsConnection_RequestString(&m, nc, info, "{}", 1000);
		natsMsg_Destroy(m);
		if (s == NATS_OK) {
			c->up = true;
			break;
		}
		if (wait_exit(c->pid, 0) != -2)
			break;
		sleep_ms(10);
	}
	natsConnection_Destroy(nc);
	if (!c->up) {
		fprintf(stderr, "bench: the daemon %s (%s) did not start (log: %s)\n", c->name,
			c->bin, p->daemon_log);
		compare_stop(c);
		return -1;
	}
	return 0;
}

void compare_stop(compare *c)
{
	if (c->pid > 0)
		stop_pid(c->pid, c->name);
	c->pid = -1;
	c->up = false;
}

int daemon_stop(procs *p)
{
	int st = -1;

	if (p->daemon_pid > 0)
		st = stop_pid(p->daemon_pid, "cim-eventsd");
	p->daemon_pid = -1;
	return st;
}

void procs_cleanup(procs *p)
{
	daemon_stop(p);
	nats_stop(p);
	if (p->dir[0] != '\0' && strncmp(p->dir, "/tmp/cim-bench-", 15) == 0)
		proc_rm_rf(p->dir);
	p->dir[0] = '\0';
}

long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

double cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return NAN;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after "pid (comm) ": state is field 3, utime 14, stime 15 */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long log_scan(const char *path, const char *what, json_t *arr)
{
	char line[2048];
	long n = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f)) {
		bool hit = strstr(line, "level=warn") || strstr(line, "level=error") ||
			   strstr(line, "[WRN]") || strstr(line, "[ERR]") ||
			   strstr(line, "[FTL]");

		if (!hit)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (n < 10) {
			printf("  %s: %s\n", what, line);
			json_array_append_new(arr, json_string(line));
		}
		n++;
	}
	fclose(f);
	return n;
}

void log_grep(const char *path, const char *needle, const char *what,
	      json_t *arr)
{
	char line[2048];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f))
		if (strstr(line, needle)) {
			line[strcspn(line, "\n")] = '\0';
			printf("  %s: %s\n", what, line);
			json_array_append_new(arr, json_string(line));
		}
	fclose(f);
}

/* ---- the machine ------------------------------------------------------------------- */

static void first_line_of(const char *cmd, char *out, size_t n)
{
	FILE *f = popen(cmd, "r");

	out[0] = '\0';
	if (f == NULL)
		return;
	if (fgets(out, (int)n, f) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	pclose(f);
}

json_t *machine_info(void)
{
	json_t *o = json_object();
	char line[512], cpu[256] = "unknown", ver[128], date[64];
	struct utsname u;
	time_t t = time(NULL);
	struct tm tm;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (f != NULL) {
		while (fgets(line, sizeof line, f)) {
			char *c = strchr(line, ':');

			if (strncmp(line, "model name", 10) == 0 && c) {
				snprintf(cpu, sizeof cpu, "%s", c + 2);
				cpu[strcspn(cpu, "\n")] = '\0';
				break;
			}
		}
		fclose(f);
	}
	json_object_set_new(o, "cpu", json_string(cpu));
	json_object_set_new(o, "cores", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(o, "memory_mib",
			    json_integer((json_int_t)sysconf(_SC_PHYS_PAGES) *
					 sysconf(_SC_PAGESIZE) / (1024 * 1024)));
	if (uname(&u) == 0) {
		snprintf(line, sizeof line, "%s %s %s", u.sysname, u.release,
			 u.machine);
		json_object_set_new(o, "kernel", json_string(line));
	}
	first_line_of("nats-server --version 2>&1", ver, sizeof ver);
	json_object_set_new(o, "nats_server", json_string(ver));
	json_object_set_new(o, "libnats", json_string(nats_GetVersion()));
	gmtime_r(&t, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(o, "date", json_string(date));
	return o;
}
