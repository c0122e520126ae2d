/*
 * test_lifecycle.c: what an operator and systemd see of a running daemon:
 * SIGHUP reading the configuration again, and the notify protocol (READY,
 * STATUS, WATCHDOG, STOPPING) heard on a socket of the test's own, as
 * systemd would hear it, through a NATS outage.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(lifecycle, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 120);

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

/* Whether the daemon's log has text, waiting up to 15 s for it. */
static bool log_gets(const char *text)
{
	char *path = h_strf("%s/daemon.log", H.nats.dir);
	bool has = false;

	for (int64_t end = h_now_ms() + 15000; !has && h_now_ms() < end; h_sleep_ms(50)) {
		char *log = h_slurp(path);
		has = strstr(log, text) != NULL;
		free(log);
	}
	free(path);
	return has;
}

static bool log_has(const char *text)
{
	char *path = h_strf("%s/daemon.log", H.nats.dir);
	char *log = h_slurp(path);
	bool has = strstr(log, text) != NULL;
	free(log);
	free(path);
	return has;
}

Test(lifecycle, sighup_applies_a_new_log_level)
{
	char *conf = h_strf("%s/cim.conf", H.nats.dir);

	write_file(conf, "[daemon]\nlog_level = info\n");
	H.daemon = h_daemon_start(&H.nats, "--config", conf, (char *)NULL);
	cr_assert_gt(H.daemon, 0);
	free(h_append_n("order", "o-1", 1));
	cr_assert(!log_has("level=debug"), "no debug line at log_level info");

	write_file(conf, "[daemon]\nlog_level = debug\n");
	cr_assert_eq(kill(H.daemon, SIGHUP), 0);
	cr_assert(log_gets("SIGHUP: log level now debug"));
	cr_assert(log_gets("level=debug msg=\"SIGHUP: configuration read again"),
		  "a debug line once the level is debug");
	cr_assert(log_has("configuration: log_level: info -> debug"));

	/* a change that needs a restart is said to need one */
	write_file(conf, "[daemon]\nlog_level = debug\nworkers = 2\n");
	cr_assert_eq(kill(H.daemon, SIGHUP), 0);
	cr_assert(log_gets("only log_level applies now"));
	free(h_append_n("order", "o-1", 1));
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = -1;
	free(conf);
}

Test(lifecycle, sighup_with_a_broken_file_keeps_the_settings_in_force)
{
	char *conf = h_strf("%s/cim.conf", H.nats.dir);

	write_file(conf, "[daemon]\nlog_level = info\n");
	H.daemon = h_daemon_start(&H.nats, "--config", conf, (char *)NULL);
	cr_assert_gt(H.daemon, 0);
	write_file(conf, "[daemon]\nlog_level = loud\n");
	cr_assert_eq(kill(H.daemon, SIGHUP), 0);
	cr_assert(log_gets("the settings in force stay"));
	cr_assert(log_has("log_level must be error, warn, info or debug, not 'loud'"));
	free(h_append_n("order", "o-1", 2));
	cr_assert(!log_has("level=debug"));
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = -1;
	free(conf);
}

/* ---- the notify protocol ---------------------------------------------------------- */

struct heard {
	int fd;
	char *text;   /* every message received, one per line ('|' between messages) */
	size_t len;
};

static void listen_notify(struct heard *h, const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	memset(h, 0, sizeof *h);
	h->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(h->fd, 0);
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	cr_assert_eq(bind(h->fd, (struct sockaddr *)&a, sizeof a), 0);
	h->text = calloc(1, 1);
}

/* Receives until the text heard from position from on contains want,
 * waiting up to 20 s. Returns the offset just past it, or -1. */
static long hear(struct heard *h, size_t from, const char *want)
{
	for (int64_t end = h_now_ms() + 20000;;) {
		char *at = strstr(h->text + from, want);
		if (at)
			return (long)(at - h->text) + (long)strlen(want);
		int64_t left = end - h_now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = {h->fd, POLLIN, 0};
		if (poll(&p, 1, (int)(left < 200 ? left : 200)) <= 0)
			continue;
		char buf[4096];
		ssize_t n = recv(h->fd, buf, sizeof buf - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		h->text = realloc(h->text, h->len + (size_t)n + 3);
		cr_assert_not_null(h->text);
		h->len += (size_t)snprintf(h->text + h->len, (size_t)n + 3, "%s\n|", buf);
	}
}

Test(lifecycle, systemd_hears_ready_status_watchdog_and_stopping)
{
	struct heard h;
	char *sock = h_strf("%s/notify.sock", H.nats.dir);
	long at;

	listen_notify(&h, sock);
	setenv("NOTIFY_SOCKET", sock, 1);
	setenv("WATCHDOG_USEC", "400000", 1); /* a ping every 200 ms */
	H.daemon = h_daemon_start(&H.nats, "--nats-down-grace", "1", (char *)NULL);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	cr_assert_gt(H.daemon, 0);

	at = hear(&h, 0, "READY=1");
	cr_assert_gt(at, 0, "READY=1 once serving; heard: %s", h.text);
	cr_assert_gt(hear(&h, 0, "STATUS=connecting to NATS"), 0, "%s", h.text);
	cr_assert_gt(hear(&h, 0, "STATUS=active: connected to NATS; serving cim.events.v1"), 0,
		     "%s", h.text);
	cr_assert_gt(hear(&h, (size_t)at, "WATCHDOG=1"), 0, "pings while healthy: %s", h.text);
	cr_assert(log_has("systemd watchdog: 400 ms"));
	free(h_append_n("order", "o-1", 1));

	/* NATS goes away: reconnecting, then, past nats_down_grace, not
	 * healthy: no ping from then until the connection is back */
	h_nats_kill(&H.nats);
	at = hear(&h, 0, "reconnecting to NATS\n");
	cr_assert_gt(at, 0, "%s", h.text);
	long sick = hear(&h, (size_t)at, "reconnecting to NATS for over 1 s; no longer healthy");
	cr_assert_gt(sick, 0, "%s", h.text);
	cr_assert_eq(h_nats_restart(&H.nats), 0);
	long back = hear(&h, (size_t)sick, "connected to NATS");
	cr_assert_gt(back, 0, "%s", h.text);
	char *between = strndup(h.text + sick, (size_t)(back - sick));
	cr_assert_null(strstr(between, "WATCHDOG=1"), "no ping while unhealthy: %s", between);
	free(between);
	cr_assert_gt(hear(&h, (size_t)back, "WATCHDOG=1"), 0, "pings again: %s", h.text);
	cr_assert_gt(hear(&h, (size_t)sick, "STATUS=active: connected to NATS"), 0, "%s", h.text);
	cr_assert(log_gets("healthy again"));

	cr_assert_eq(kill(H.daemon, SIGTERM), 0);
	cr_assert_gt(hear(&h, (size_t)back, "STOPPING=1"), 0, "%s", h.text);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = -1;
	close(h.fd);
	free(h.text);
	free(sock);
}
