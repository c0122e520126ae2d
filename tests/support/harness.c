/*
 * harness.c: nats-server and cim-eventsd as child processes, raw NATS
 * requests, direct JetStream reads and writes, and the fixtures the
 * integration tests share.
 *
 * Processes are started with fork/exec, their output appended to a log file
 * in the test's temporary directory, and asked to die with their parent
 * (PR_SET_PDEATHSIG) so that a test worker killed by a timeout leaves
 * nothing running. Stopping is always by the pid we got from fork.
 *
 * Failed tests show their logs: the worker's teardown copies them to
 * /tmp/cim-itest-<runner pid>.log before it removes the directory, and the
 * runner's report hooks print that file (or, after a crash, the directory
 * named in /tmp/cim-itest-<runner pid>.dir) when the test did not pass.
 */
#include "harness.h"
#include "jsonread.h"
#include "proc.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

h_env H = {.daemon = -1};

#define NATS_START_MS 5000
#define DAEMON_START_MS 10000
#define REQUEST_MS 5000

/* ---- the daemon under valgrind ---------------------------------------------
 *
 * CIM_TEST_VALGRIND=1 starts every daemon of h_daemon_start under
 * valgrind's memcheck, its report in <test dir>/valgrind-<pid>.log, and
 * lengthens the harness's waits on the daemon by VALGRIND_SCALE. When such
 * a daemon ends (stopped, waited for, or killed), the report is read: a
 * daemon that exited with VALGRIND_EXIT, or whose report holds an error
 * (each is framed by VG_MARK), fails the test and the report is printed. A
 * daemon killed with SIGKILL never reaches the leak check; the errors it
 * reported before are still counted. With CIM_TEST_VALGRIND_LOGS set to a
 * directory, each report is copied there for `make valgrind`.
 *
 * Criterion decides a test's status before its fini runs, so a failure
 * found in h_teardown is written to /tmp/cim-itest-<runner pid>.vg and the
 * runner's hooks count that test as failed. */
#define VALGRIND_SCALE 10
#define VALGRIND_EXIT 99
#define VG_MARK "CIM-VG-ERROR-BEGIN"

static struct vg_run {
	pid_t pid;
	char log[320];
} vg_runs[16];

static bool vg_on(void)
{
	const char *v = getenv("CIM_TEST_VALGRIND");

	return v != NULL && strcmp(v, "1") == 0;
}

static int scale(void) { return vg_on() ? VALGRIND_SCALE : 1; }

static void marker_path(char *out, size_t n, pid_t runner, const char *ext);
static bool vg_in_fini;

/* ---- small things ---------------------------------------------------------- */

char *h_strf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	cr_assert_not_null(s, "out of memory");
	return s;
}

void h_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int64_t h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- processes --------------------------------------------------------------- */

static void vg_done(pid_t pid, int status);

int h_wait_exit(pid_t pid, int timeout_ms)
{
	int st = proc_wait_exit(pid, timeout_ms);

	if (st != -2)
		vg_done(pid, st);
	return st;
}

static int stop_pid(pid_t pid, int timeout_ms)
{
	return proc_stop(pid, timeout_ms, "child");
}

static int nats_spawn(h_nats *n)
{
	char port[16], store[300], log[300];
	char *argv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port,
			"-sd", store, NULL};
	char *conf_argv[] = {"nats-server", "-c", n->conf, NULL};
	int64_t end;

	snprintf(port, sizeof(port), "%d", n->port);
	snprintf(store, sizeof(store), "%s/js", n->dir);
	snprintf(log, sizeof(log), "%s/nats.log", n->dir);
	n->pid = proc_spawn(n->conf[0] ? conf_argv : argv, log);
	if (n->pid <= 0)
		return -1;
	end = h_now_ms() + NATS_START_MS;
	while (!proc_tcp_accepts(n->port)) {
		if (h_wait_exit(n->pid, 0) != -2) {
			fprintf(stderr, "harness: nats-server exited at start "
				"(log: %s)\n", log);
			n->pid = -1;
			return -1;
		}
		if (h_now_ms() >= end) {
			fprintf(stderr, "harness: nats-server not listening on "
				"port %d after %d ms\n", n->port, NATS_START_MS);
			stop_pid(n->pid, 5000);
			n->pid = -1;
			return -1;
		}
		h_sleep_ms(20);
	}
	return 0;
}

/* A temporary store directory and a free loopback port for n. */
static int nats_prepare(h_nats *n)
{
	memset(n, 0, sizeof(*n));
	n->pid = -1;
	snprintf(n->dir, sizeof(n->dir), "/tmp/cim-itest-XXXXXX");
	if (mkdtemp(n->dir) == NULL) {
		fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
		n->dir[0] = '\0';
		return -1;
	}
	n->port = proc_free_port();
	if (n->port <= 0) {
		fprintf(stderr, "harness: no free loopback port\n");
		return -1;
	}
	snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%d", n->port);
	return 0;
}

int h_nats_start(h_nats *n)
{
	if (nats_prepare(n) != 0)
		return -1;
	return nats_spawn(n);
}

int h_nats_start_conf(h_nats *n, const char *conf_text)
{
	FILE *f;

	if (nats_prepare(n) != 0)
		return -1;
	snprintf(n->conf, sizeof(n->conf), "%s/nats.conf", n->dir);
	if ((f = fopen(n->conf, "w")) == NULL) {
		fprintf(stderr, "harness: %s: %s\n", n->conf, strerror(errno));
		return -1;
	}
	fprintf(f, "host: 127.0.0.1\nport: %d\njetstream {\n  store_dir: \"%s/js\"\n}\n%s\n",
		n->port, n->dir, conf_text);
	fclose(f);
	return nats_spawn(n);
}

void h_nats_stop(h_nats *n)
{
	if (n->pid > 0)
		stop_pid(n->pid, 5000);
	n->pid = -1;
	proc_rm_rf(n->dir);
	n->dir[0] = '\0';
}

void h_nats_kill(h_nats *n)
{
	if (n->pid > 0) {
		kill(n->pid, SIGKILL);
		h_wait_exit(n->pid, 5000);
	}
	n->pid = -1;
}

int h_nats_restart(h_nats *n)
{
	return nats_spawn(n);
}

/* Whether something answers <prefix>.info. */
static bool daemon_answers(natsConnection *nc, const char *prefix)
{
	char subject[160];
	natsMsg *m = NULL;
	natsStatus s;

	snprintf(subject, sizeof(subject), "%s.info", prefix);
	s = natsConnection_RequestString(&m, nc, subject, "{}", 500 * scale());

	natsMsg_Destroy(m);
	return s == NATS_OK;
}

pid_t h_daemon_start(const h_nats *n, ...)
{
	const char *args[40];
	size_t k = 0;
	va_list ap;

	va_start(ap, n);
	for (const char *a; k + 1 < sizeof(args) / sizeof(args[0]) &&
			    (a = va_arg(ap, const char *));)
		args[k++] = a;
	va_end(ap);
	args[k] = NULL;
	return h_daemon_start_args(n, NULL, args);
}

pid_t h_daemon_start_args(const h_nats *n, natsOptions *probe, const char *const *args)
{
	const char *bin = getenv("CIM_TEST_DAEMON"), *prefix = H_PREFIX;
	char *argv[48], log[300], vglog[320];
	int argc = 0;
	natsConnection *nc = NULL;
	pid_t pid;
	int64_t end;
	FILE *f;

	if (bin == NULL || bin[0] == '\0') {
		fprintf(stderr, "harness: CIM_TEST_DAEMON is not set\n");
		return -1;
	}
	if (vg_on()) {
		/* valgrind expands %p to the pid, which is the daemon's */
		snprintf(vglog, sizeof(vglog), "--log-file=%s/valgrind-%%p.log", n->dir);
		argv[argc++] = "valgrind";
		argv[argc++] = "--error-exitcode=99";
		argv[argc++] = "--leak-check=full";
		argv[argc++] = "--show-leak-kinds=definite,indirect";
		argv[argc++] = "--errors-for-leak-kinds=definite,indirect";
		argv[argc++] = "--track-fds=no";
		/* the daemon's allocator is jemalloc (Makefile): memcheck
		 * watches its malloc and free as it would glibc's */
		argv[argc++] = "--soname-synonyms=somalloc=*jemalloc*";
		argv[argc++] = "--error-markers=" VG_MARK ",CIM-VG-ERROR-END";
		argv[argc++] = vglog;
	}
	argv[argc++] = (char *)bin;
	argv[argc++] = "--nats-url";
	argv[argc++] = (char *)n->url;
	for (const char *const *a = args; argc < 47 && *a; a++) {
		if (strcmp(argv[argc - 1], "--prefix") == 0)
			prefix = *a;
		argv[argc++] = (char *)*a;
	}
	argv[argc] = NULL;

	snprintf(log, sizeof(log), "%s/daemon.log", n->dir);
	if ((f = fopen(log, "a")) != NULL) {
		fprintf(f, "==== harness: starting");
		for (int i = 0; i < argc; i++)
			fprintf(f, " %s", argv[i]);
		fprintf(f, "\n");
		fclose(f);
	}
	pid = proc_spawn(argv, log);
	if (pid <= 0)
		return -1;
	for (size_t i = 0; vg_on() && i < sizeof(vg_runs) / sizeof(vg_runs[0]); i++)
		if (vg_runs[i].pid <= 0) {
			vg_runs[i].pid = pid;
			snprintf(vg_runs[i].log, sizeof(vg_runs[i].log),
				 "%s/valgrind-%d.log", n->dir, (int)pid);
			break;
		}

	end = h_now_ms() + (int64_t)DAEMON_START_MS * scale();
	for (;;) {
		if (nc == NULL &&
		    (probe ? natsConnection_Connect(&nc, probe)
			   : natsConnection_ConnectTo(&nc, n->url)) != NATS_OK)
			nc = NULL;
		if (nc != NULL && daemon_answers(nc, prefix))
			break;
		if (h_wait_exit(pid, 0) != -2) {
			fprintf(stderr, "harness: cim-eventsd exited at start "
				"(log: %s)\n", log);
			pid = -1;
			break;
		}
		if (h_now_ms() >= end) {
			fprintf(stderr, "harness: cim-eventsd did not answer "
				"info within %d ms\n", DAEMON_START_MS * scale());
			vg_done(pid, stop_pid(pid, 5000 * scale()));
			pid = -1;
			break;
		}
		h_sleep_ms(50);
	}
	natsConnection_Destroy(nc);
	return pid;
}

int h_daemon_stop_within(pid_t pid, int timeout_ms)
{
	int st = stop_pid(pid, (timeout_ms > 0 ? timeout_ms : 15000) * scale());

	vg_done(pid, st);
	return st;
}

int h_daemon_stop(pid_t pid)
{
	return h_daemon_stop_within(pid, 0);
}

void h_daemon_kill9(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	h_wait_exit(pid, 5000 * scale());
}

/* Reads, copies and judges the valgrind report of pid, a daemon that has
 * just ended with status (as h_wait_exit; -1 when killed after a bound). */
static void vg_done(pid_t pid, int status)
{
	const char *keep = getenv("CIM_TEST_VALGRIND_LOGS");
	struct vg_run *v = NULL;
	char *text = NULL, copy[600], p[128];
	size_t len = 0;
	int errors = 0;
	FILE *f;

	for (size_t i = 0; pid > 0 && i < sizeof(vg_runs) / sizeof(vg_runs[0]); i++)
		if (vg_runs[i].pid == pid)
			v = &vg_runs[i];
	if (v == NULL)
		return;
	v->pid = 0;
	if ((f = fopen(v->log, "r")) != NULL) {
		text = malloc(1 << 20);
		if (text != NULL)
			len = fread(text, 1, (1 << 20) - 1, f);
		fclose(f);
	}
	if (text != NULL) {
		text[len] = '\0';
		for (const char *q = text; (q = strstr(q, VG_MARK)) != NULL; q++)
			errors++;
	}
	if (keep != NULL && keep[0] != '\0' && criterion_current_test != NULL) {
		snprintf(copy, sizeof(copy), "%s/%s.%s.%d.log", keep,
			 criterion_current_test->category, criterion_current_test->name,
			 (int)pid);
		if ((f = fopen(copy, "w")) != NULL) {
			fprintf(f, "harness: %s::%s, cim-eventsd pid %d, exit status %d%s\n",
				criterion_current_test->category,
				criterion_current_test->name, (int)pid, status,
				status == 128 + SIGKILL || status == -1
					? " (killed: no leak check)" : "");
			if (text != NULL)
				fputs(text, f);
			fclose(f);
		}
	}
	if (status == VALGRIND_EXIT || errors > 0) {
		fprintf(stderr, "harness: valgrind: %d error(s) in cim-eventsd (pid %d, "
			"exit status %d); %s:\n%s\n", errors, (int)pid, status, v->log,
			text != NULL ? text : "(no report)");
		if (vg_in_fini) {
			/* too late for this test's status: the runner counts it */
			marker_path(p, sizeof(p), getppid(), "vg");
			if ((f = fopen(p, "a")) != NULL) {
				fprintf(f, "%d error(s), cim-eventsd pid %d exit status %d\n",
					errors, (int)pid, status);
				fclose(f);
			}
		} else {
			cr_expect_fail("valgrind: %d error(s) in cim-eventsd (pid %d, exit "
				       "status %d); its report is above", errors, (int)pid,
				       status);
		}
	}
	free(text);
}

/* ---- programs run by a test ------------------------------------------------------ */

char *h_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t cap = 0, n = 0, k;

	cr_assert_not_null(f, "%s", path);
	do {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			s = realloc(s, cap);
			cr_assert_not_null(s);
		}
		k = fread(s + n, 1, 4096, f);
		n += k;
	} while (k > 0);
	s[n] = '\0';
	fclose(f);
	return s;
}

static void run_paths(const char *tag, char *out, char *err, size_t n)
{
	snprintf(out, n, "%s/%s.out", H.nats.dir, tag);
	snprintf(err, n, "%s/%s.err", H.nats.dir, tag);
}

pid_t h_spawn(const char *tag, const char *const *argv)
{
	char out[300], err[300];
	pid_t parent = getpid(), pid;
	int fo, fe;

	cr_assert_not_null(argv[0], "%s: binary not set (CIM_TEST_*)", tag);
	run_paths(tag, out, err, sizeof(out));
	fo = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	fe = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fo >= 0 && fe >= 0, "%s, %s: %s", out, err, strerror(errno));
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(nul, 0);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fo);
	close(fe);
	return pid;
}

h_run h_finish(pid_t pid, const char *tag, int timeout_ms)
{
	char out[300], err[300];
	h_run r = {0};

	r.status = h_wait_exit(pid, timeout_ms);
	if (r.status == -2) {
		kill(pid, SIGKILL);
		h_wait_exit(pid, 5000);
		r.status = -1;
	}
	run_paths(tag, out, err, sizeof(out));
	r.out = h_slurp(out);
	r.err = h_slurp(err);
	r.json = cim_json_read(r.out, strlen(r.out), JSON_DECODE_ANY, &(json_error_t){0});
	return r;
}

h_run h_cli_at(const char *url, const char *first, ...)
{
	const char *argv[24];
	int argc = 0;
	va_list ap;

	argv[argc++] = getenv("CIM_TEST_CLI");
	argv[argc++] = "--url";
	argv[argc++] = url;
	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 23; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return h_finish(h_spawn("cli", argv), "cli", 120000);
}

void h_store_start(h_store *s, const char *const *args)
{
	cim_error err = {0};

	cr_assert_eq(h_nats_start(&s->nats), 0);
	s->daemon = h_daemon_start_args(&s->nats, NULL, args ? args : (const char *const[]){NULL});
	cr_assert_gt(s->daemon, 0);
	cr_assert_eq(cim_client_connect(&s->client, s->nats.url, NULL, &err), CIM_ERR_OK,
		     "%s", err.message);
}

void h_store_stop(h_store *s)
{
	cim_client_destroy(s->client);
	s->client = NULL;
	if (s->daemon > 0)
		h_daemon_stop(s->daemon);
	s->daemon = -1;
	if (s->nats.pid > 0)
		h_nats_stop(&s->nats);
	s->nats.pid = -1;
}

void h_run_free(h_run *r)
{
	free(r->out);
	free(r->err);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/* ---- logs of failed tests ----------------------------------------------------- */

static void marker_path(char *out, size_t n, pid_t runner, const char *ext)
{
	snprintf(out, n, "/tmp/cim-itest-%d.%s", (int)runner, ext);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

/* Appends the last 64 KiB of src, under a title, to out. */
static void tail_into(FILE *out, const char *title, const char *src)
{
	FILE *f = fopen(src, "r");
	char buf[4096];
	size_t k;
	long size;

	if (f == NULL)
		return;
	fprintf(out, "---- %s (%s) ----\n", title, src);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > 65536 ? size - 65536 : 0, SEEK_SET);
	while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, k, out);
	fclose(f);
}

static void collect_logs(const char *dir, FILE *out)
{
	char p[400];

	snprintf(p, sizeof(p), "%s/daemon.log", dir);
	tail_into(out, "cim-eventsd log", p);
	snprintf(p, sizeof(p), "%s/nats.log", dir);
	tail_into(out, "nats-server log", p);
}

/* Whether pid is a live process (an exited, unreaped one is not). */
static bool running(pid_t pid)
{
	char path[64], state = 'Z';
	FILE *f;

	if (kill(pid, 0) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) != NULL) {
		if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
			state = 'Z';
		fclose(f);
	}
	return state != 'Z' && state != 'X';
}

/* Runs in the runner process after each test. The marker names the
 * worker that wrote it: Criterion may report one test after the next has
 * started, so only a dead worker's directory is cleaned up here. */
static void runner_report(bool failed)
{
	char p[128], dir[300] = "";
	long worker = 0;
	FILE *f;

	marker_path(p, sizeof(p), getpid(), "dir");
	if ((f = fopen(p, "r")) != NULL) {
		if (fscanf(f, "%ld %299[^\n]", &worker, dir) != 2)
			dir[0] = '\0';
		fclose(f);
		/* A live worker is the next test's: its marker stays. A dead
		 * one's marker goes, and its directory too if it is still
		 * there (the worker died before its teardown). */
		bool dead = worker > 0 && !running((pid_t)worker);
		if (dead)
			unlink(p);
		if (dead && dir[0] != '\0' && access(dir, F_OK) == 0) {
			if (failed)
				collect_logs(dir, stderr);
			proc_rm_rf(dir);
		}
	}
	marker_path(p, sizeof(p), getpid(), "log");
	if (failed)
		tail_into(stderr, "logs of the failed test", p);
	unlink(p);
}

/* Runs in the runner: a valgrind failure found in the test's fini (see
 * vg_done) makes a test that passed count as failed. */
static const char *vg_failed_suites[256];
static size_t vg_failed;

static bool vg_runner_check(struct criterion_test_stats *stats)
{
	char p[128], line[256];
	bool found = false;
	FILE *f;

	marker_path(p, sizeof(p), getpid(), "vg");
	if ((f = fopen(p, "r")) == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		fprintf(stderr, "[FAIL] %s::%s: cim-eventsd under valgrind: %s",
			stats->test->category, stats->test->name, line);
		found = true;
	}
	fclose(f);
	unlink(p);
	if (found && stats->test_status == CR_STATUS_PASSED) {
		stats->test_status = CR_STATUS_FAILED;
		if (vg_failed < sizeof(vg_failed_suites) / sizeof(vg_failed_suites[0]))
			vg_failed_suites[vg_failed++] = stats->test->category;
	}
	return found;
}

ReportHook(POST_FINI)(struct criterion_test_stats *stats)
{
	bool vg = vg_runner_check(stats);

	runner_report(stats->test_status != CR_STATUS_PASSED || vg);
}

/* Before the runner prints its synthesis and decides its exit status. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	for (size_t i = 0; i < vg_failed; i++) {
		stats->tests_failed++;
		stats->tests_passed--;
		for (struct criterion_suite_stats *s = stats->suites; s; s = s->next)
			if (strcmp(s->suite->name, vg_failed_suites[i]) == 0) {
				s->tests_failed++;
				s->tests_passed--;
				break;
			}
	}
}

ReportHook(TEST_CRASH)(struct criterion_test_stats *stats)
{
	char p[128];

	marker_path(p, sizeof(p), getpid(), "vg");
	unlink(p);
	runner_report(true);
}

/* ---- fixtures ------------------------------------------------------------------ */

cim_client *h_client_new(int64_t timeout_ms)
{
	cim_client_options o = {NULL, timeout_ms};
	cim_client *c = NULL;
	cim_error err = {0};
	cim_err rc = cim_client_connect(&c, H.nats.url, &o, &err);

	cr_assert_eq(rc, CIM_ERR_OK, "cim_client_connect: %s: %s",
		     cim_err_name(rc), err.message);
	return c;
}

/* Criterion runs neither the fixture's fini nor the report hooks when its
 * init fails, so a failed set-up shows the logs and cleans up by itself. */
static void setup_failed(const char *what)
{
	char p[128];

	fprintf(stderr, "harness: set-up failed: %s\n", what);
	if (H.nats.dir[0] != '\0')
		collect_logs(H.nats.dir, stderr);
	h_teardown();
	marker_path(p, sizeof(p), getppid(), "log");
	unlink(p);
	marker_path(p, sizeof(p), getppid(), "dir");
	unlink(p);
	marker_path(p, sizeof(p), getppid(), "vg");
	unlink(p);
	cr_assert_fail("set-up failed: %s", what);
}

void h_setup_nats_only(void)
{
	char p[128];
	natsOptions *o = NULL;
	natsStatus s;
	cim_error err = {0};

	memset(&H, 0, sizeof(H));
	H.daemon = -1;
	H.nats.pid = -1;
	if (h_nats_start(&H.nats) != 0)
		setup_failed("nats-server did not start");
	{
		char line[400];
		marker_path(p, sizeof(p), getppid(), "dir");
		snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), H.nats.dir);
		write_text(p, line);
	}

	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, H.nats.url);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 100);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, 600);
	if (s == NATS_OK)
		s = natsConnection_Connect(&H.nc, o);
	natsOptions_Destroy(o);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&H.js, H.nc, NULL);
	if (s != NATS_OK)
		setup_failed(natsStatus_GetText(s));
	if (cim_client_connect(&H.client, H.nats.url, NULL, &err) != CIM_ERR_OK)
		setup_failed(err.message);
}

void h_setup_nats_conf(const char *conf_text)
{
	char p[128], line[400];

	memset(&H, 0, sizeof(H));
	H.daemon = -1;
	H.nats.pid = -1;
	if (h_nats_start_conf(&H.nats, conf_text) != 0)
		setup_failed("nats-server did not start with its configuration");
	marker_path(p, sizeof(p), getppid(), "dir");
	snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), H.nats.dir);
	write_text(p, line);
}

void h_setup(void)
{
	h_setup_nats_only();
	H.daemon = h_daemon_start(&H.nats, NULL);
	if (H.daemon <= 0)
		setup_failed("cim-eventsd did not come up");
}

void h_teardown(void)
{
	char p[128];
	FILE *f;

	cim_client_destroy(H.client);
	H.client = NULL;
	if (H.daemon > 0) {
		int st;

		vg_in_fini = true;
		st = h_daemon_stop(H.daemon);
		vg_in_fini = false;

		if (st != 0)
			fprintf(stderr, "harness: cim-eventsd exit status %d "
				"at teardown\n", st);
		H.daemon = -1;
	}
	jsCtx_Destroy(H.js);
	H.js = NULL;
	natsConnection_Destroy(H.nc);
	H.nc = NULL;
	if (H.nats.dir[0] != '\0') {
		marker_path(p, sizeof(p), getppid(), "log");
		if ((f = fopen(p, "w")) != NULL) {
			collect_logs(H.nats.dir, f);
			fclose(f);
		}
		/* the directory goes now, so this worker's marker goes too */
		marker_path(p, sizeof(p), getppid(), "dir");
		if ((f = fopen(p, "r")) != NULL) {
			long worker = 0;
			bool mine = fscanf(f, "%ld", &worker) == 1 && worker == (long)getpid();
			fclose(f);
			if (mine)
				unlink(p);
		}
	}
	h_nats_stop(&H.nats);
}

/* ---- raw requests ---------------------------------------------------------------- */

void h_request(h_reply *r, const char *subject, const void *body, int len)
{
	natsMsg *m = NULL;
	const char *st = NULL;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	if (len < 0)
		len = body != NULL ? (int)strlen(body) : 0;
	r->s = natsConnection_Request(&m, H.nc, subject, body, len,
				      REQUEST_MS * scale());
	if (r->s != NATS_OK) {
		r->body = strdup("");
		return;
	}
	r->len = natsMsg_GetDataLength(m);
	r->body = malloc((size_t)r->len + 1);
	cr_assert_not_null(r->body);
	memcpy(r->body, natsMsg_GetData(m), (size_t)r->len);
	r->body[r->len] = '\0';
	if (natsMsgHeader_Get(m, "Cim-Status", &st) == NATS_OK && st != NULL)
		r->status = atoi(st);
	/* every string, U+0000 included, in keys too */
	r->json = cim_json_read(r->body, (size_t)r->len, JSON_DECODE_ANY, &(json_error_t){0});
	natsMsg_Destroy(m);
}

void h_requestf(h_reply *r, const char *body, const char *fmt, ...)
{
	va_list ap;
	char *subject = NULL;

	va_start(ap, fmt);
	if (vasprintf(&subject, fmt, ap) < 0)
		subject = NULL;
	va_end(ap);
	cr_assert_not_null(subject);
	h_request(r, subject, body, -1);
	free(subject);
}

void h_reply_free(h_reply *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

const char *h_error_str(const h_reply *r, const char *key)
{
	json_t *e = json_object_get(r->json, "error");

	return json_string_value(json_object_get(e, key));
}

const char *h_error_code(const h_reply *r)
{
	return h_error_str(r, "code");
}

/* ---- JetStream ------------------------------------------------------------------ */

natsMsg *h_stream_get(uint64_t seq)
{
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetMsg(&m, H.js, H_STREAM, seq, NULL, &jerr);

	cr_assert_eq(s, NATS_OK, "js_GetMsg(%s, %llu): %s (js error %d)",
		     H_STREAM, (unsigned long long)seq, natsStatus_GetText(s),
		     (int)jerr);
	return m;
}

uint64_t h_stream_msgs(void)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, H.js, H_STREAM, NULL, &jerr);
	uint64_t n;

	cr_assert_eq(s, NATS_OK, "js_GetStreamInfo(%s): %s (js error %d)",
		     H_STREAM, natsStatus_GetText(s), (int)jerr);
	n = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	return n;
}

void h_stream_publish(const char *subject, const void *data, int len)
{
	jsPubAck *ack = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_Publish(&ack, H.js, subject, data, len, NULL, &jerr);

	cr_assert_eq(s, NATS_OK, "js_Publish(%s): %s (js error %d)", subject,
		     natsStatus_GetText(s), (int)jerr);
	jsPubAck_Destroy(ack);
}

const char *h_header(natsMsg *m, const char *key)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(m, key, &v) != NATS_OK)
		return NULL;
	return v;
}

natsMsg *h_stored_event(uint64_t seq, cim_event_block *ev,
			char cid_text[CIM_CID_TEXT_MAX])
{
	natsMsg *m = h_stream_get(seq);
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	char err[256] = "";
	cim_cid cid;

	memset(ev, 0, sizeof(*ev));
	cr_assert_eq(cim_event_decode(p, len, ev, err, sizeof(err)), 0,
		     "stored message %llu does not decode as an event block: %s",
		     (unsigned long long)seq, err);
	cr_assert_eq(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR,
				     CIM_MH_BLAKE2B_256, p, len), 0);
	cim_cid_to_text(&cid, cid_text);
	return m;
}

/* ---- appends --------------------------------------------------------------------- */

cim_append_result *h_append1(const char *type, const char *id,
			     int64_t expected, const char *evtype,
			     const char *data_json)
{
	cim_new_event ev = {.event_type = evtype, .data_json = data_json};
	cim_append_result *res = NULL;
	cim_error err = {0};
	cim_err rc = cim_append(H.client, type, id, expected, &ev, 1, &res,
				&err);

	cr_assert_eq(rc, CIM_ERR_OK, "append to %s/%s: %s: %s", type, id,
		     cim_err_name(rc), err.message);
	cr_assert_not_null(res);
	return res;
}

char *h_append_n(const char *type, const char *id, int n)
{
	char *head = NULL;

	for (int k = 1; k <= n; k++) {
		char data[32];
		cim_append_result *r;

		snprintf(data, sizeof(data), "{\"i\": %d}", k);
		r = h_append1(type, id, CIM_EXPECT_ANY, "Counted", data);
		free(head);
		head = strdup(r->head);
		cim_append_result_destroy(r);
	}
	return head;
}
