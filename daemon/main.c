/*
 * main.c: cim-eventsd, read top to bottom: settings, connection, stream
 * and buckets, the writer lease (lease.c), heads, serve, wait for a
 * signal, drain, a last heads checkpoint, the lease given back, exit.
 * Without the lease the daemon is a standby: it serves nothing and waits.
 *
 * Signals are blocked in every thread and taken here with sigwait, so no
 * handler ever runs inside library code.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "log.h"

/* Serves from now on: the heads loaded (the first time) or brought up to
 * date (after the lease was lost and taken again). 0 when serving, 1 to
 * try again later, -1 when the daemon cannot go on. */
static int become_active(struct daemon *d)
{
	if (!d->heads_loaded) {
		sd_notify(0, "STATUS=writer lease held; loading the heads");
		if (store_load_heads(d) != 0)
			return -1;
		d->heads_loaded = true;
	} else {
		/* appends of before the pause finish (or time out) first: they
		 * own their aggregates */
		int64_t t0 = now_mono_ns(), told = t0;
		while (atomic_load(&d->jobs_in_flight) > 0) {
			if (now_mono_ns() - told > 5000000000LL) {
				log_warn("%d append(s) still in flight; waiting before serving",
					 atomic_load(&d->jobs_in_flight));
				told = now_mono_ns();
			}
			usleep(10000);
		}
		if (store_catch_up(d) != 0)
			return 1;
	}
	if (!lease_valid(d))
		return 1; /* it ran out meanwhile: catch up again when it is back */
	if (!d->started) {
		if (server_start(d) != 0 || checkpoint_start(d) != 0)
			return -1;
		d->started = true;
	} else if (server_resume(d) != 0) {
		return 1;
	}
	if (!lease_valid(d)) {
		server_pause(d);
		return 1;
	}
	d->serving = true;
	atomic_store(&d->role, ROLE_ACTIVE);
	atomic_fetch_add(&d->takeovers, 1);
	sd_notifyf(0, "READY=1\nSTATUS=active: serving %s (%zu aggregates)", d->cfg->prefix,
		   d->heads.count);
	log_info("ready: active writer, %zu aggregates in memory", d->heads.count);
	return 0;
}

static void step_down(struct daemon *d)
{
	server_pause(d);
	d->serving = false;
	atomic_store(&d->role, ROLE_STANDBY);
	sd_notify(0, "STATUS=standby: the writer lease was lost; waiting to take it again");
	log_warn("standby: not serving until the writer lease is held again");
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct daemon d;
	sigset_t sigs;
	int sig = 0, rc, exit_code = 0;

	/* a fixed threshold: request bodies of 128 KiB and more are mapped
	 * and given back when freed (glibc's default raises the threshold
	 * after the first such free, and keeps a burst's heap for ever) */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
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
	if (log_format_from_name(cfg.log_format) < 0) {
		fprintf(stderr, "cim-eventsd: log_format must be text or json, not '%s'\n",
			cfg.log_format);
		config_free(&cfg);
		return 2;
	}
	log_set_format(log_format_from_name(cfg.log_format));

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
	if (store_setup(&d) != 0 || lease_open(&d) != 0 || lease_start(&d) != 0)
		return 1;
	micro_start(&d); /* discovery answers in every role, standby too */

	/* the lease thread takes the lease when it can; this loop follows it
	 * (serving or not) and takes the signals */
	int64_t started = now_mono_ns();
	bool told_standby = false;
	for (;;) {
		struct timespec tick = {0, 100000000};
		sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig == SIGHUP) {
			log_info("SIGHUP: nothing to reload yet");
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (!d.serving && lease_valid(&d)) {
			int r = become_active(&d);
			if (r < 0) {
				/* a stop asked for during the load is not a failure */
				int asked = stop_pending();
				exit_code = asked ? 0 : 1;
				sig = asked ? asked : SIGTERM;
				break;
			}
		} else if (d.serving && !lease_valid(&d)) {
			step_down(&d);
		} else if (!d.serving && !told_standby && now_mono_ns() - started > 1000000000LL) {
			atomic_store(&d.role, ROLE_STANDBY);
			sd_notify(0, "READY=1\nSTATUS=standby: another daemon holds the writer lease");
			told_standby = true;
		}
	}
	if (exit_code == 0)
		log_info("%s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
	else
		log_error("cannot go on; stopping");
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	server_drain(&d);
	checkpoint_stop(&d);
	pthread_mutex_lock(&d.mu);
	bool moved = d.seen_seq != d.cp_seq;
	pthread_mutex_unlock(&d.mu);
	if (d.serving && moved && lease_valid(&d))
		checkpoint_write(&d); /* the next start reads this and little else */
	lease_stop(&d);
	micro_stop(&d);

	natsConnection_Close(d.nc);
	natsConnection_Close(d.lease_nc);
	kvStore_Destroy(d.heads_kv);
	kvStore_Destroy(d.lease_kv);
	jsCtx_Destroy(d.js);
	jsCtx_Destroy(d.lease_js);
	natsConnection_Destroy(d.nc);
	natsConnection_Destroy(d.lease_nc);
	heads_free(&d.heads);
	recent_free(&d.recent);
	pthread_mutex_destroy(&d.mu);
	log_info("stopped");
	config_free(&cfg);
	nats_Close();
	return exit_code;
}
