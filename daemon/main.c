/*
 * main.c: cim-eventsd, read top to bottom: settings, connection, stream
 * and buckets, heads, serve, wait for a signal, drain, exit.
 *
 * Signals are blocked in every thread and taken here with sigwait, so no
 * handler ever runs inside library code.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "log.h"

int main(int argc, char **argv)
{
	struct config cfg;
	struct daemon d;
	sigset_t sigs;
	int sig = 0, rc;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = config_load(&cfg, argc, argv);
	if (rc != 0) {
		config_free(&cfg);
		return rc > 0 ? 0 : 2;
	}
	log_set_level(log_level_from_name(cfg.log_level));

	memset(&d, 0, sizeof d);
	d.cfg = &cfg;
	d.started_ns = now_ns();
	snprintf(d.events_prefix, sizeof d.events_prefix, "%s.", cfg.events_subject);
	pthread_mutex_init(&d.mu, NULL);
	if (heads_init(&d.heads, 0) != 0 || recent_init(&d.recent) != 0)
		fatalx("out of memory");
	log_info("cim-eventsd %s starting (stream %s, prefix %s, hash %s)",
		 CIM_EVENTS_VERSION, cfg.stream, cfg.prefix, cfg.hash);

	if (store_connect(&d) != 0)
		return 1;
	sd_notify(0, "STATUS=connected; checking the stream and buckets");
	if (store_setup(&d) != 0 || store_load_heads(&d) != 0)
		return 1;
	if (server_start(&d) != 0)
		return 1;
	sd_notify(0, "READY=1\nSTATUS=serving");
	log_info("ready: %zu aggregates in memory", d.heads.count);

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: nothing to reload yet");
			continue;
		}
		break;
	}
	log_info("%s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	server_drain(&d);

	natsConnection_Close(d.nc);
	jsCtx_Destroy(d.js);
	natsConnection_Destroy(d.nc);
	heads_free(&d.heads);
	recent_free(&d.recent);
	pthread_mutex_destroy(&d.mu);
	log_info("stopped");
	config_free(&cfg);
	nats_Close();
	return 0;
}
