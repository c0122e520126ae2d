/*
 * main.c: cim-eventsd, read top to bottom: settings, connection, stream
 * and buckets, the writer lease (lease.c), heads, serve, wait for a
 * signal, drain, a last heads checkpoint, the lease given back, exit.
 * Without the lease the daemon is a standby: it serves nothing and waits.
 *
 * Signals are blocked in every thread and taken here with sigwait, so no
 * handler ever runs inside library code. SIGHUP reads the configuration
 * again and applies its log level. The loop also tells systemd the
 * connection's state and pings its watchdog while healthy (sdnotify.c).
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "log.h"
#include "natsopts.h"
#include "sdnotify.h"

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
			notify_progress(); /* waiting, not stuck: the watchdog is fed */
			usleep(10000);
		}
		/* keys another daemon made or erased meanwhile are read anew */
		keys_drop_cache(d);
		if (store_catch_up(d) != 0)
			return 1;
	}
	/* forgets begun and not finished: their aggregates are shown as
	 * forgotten before anything is served (forget.c) */
	if (forget_recover(d) < 0)
		return 1;
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

/* SIGHUP: the file (and environment and flags) read again; the log level
 * applies at once, other changes at the next start. */
static void reload(const struct config *cur, int argc, char **argv)
{
	struct config next;

	log_info("SIGHUP: reading the configuration again");
	if (config_load(&next, argc, argv) != 0) {
		log_error("SIGHUP: the configuration has errors (see above); "
			  "the settings in force stay");
		config_free(&next);
		return;
	}
	int changed = config_log_changes(cur, &next);
	bool level = strcmp(cur->log_level, next.log_level) != 0;
	if (level)
		log_info("SIGHUP: log level now %s", next.log_level);
	log_set_level(log_level_from_name(next.log_level));
	if (changed > (level ? 1 : 0))
		log_warn("SIGHUP: only log_level applies now; the other changes take "
			 "effect at the next start");
	else if (changed == 0)
		log_info("SIGHUP: nothing changed");
	log_debug("SIGHUP: configuration read again (debug logging is on)");
	config_free(&next);
}

/* The drain's bound: past shutdown_timeout after the stop began, the
 * process ends with status 1, whatever is still in flight. The deadline is
 * taken when the stop begins, not when the thread first runs: the
 * configuration is freed at the end of main, which a thread scheduled late
 * would read. */
static struct timespec guard_deadline;
static int64_t guard_timeout_s;

static void *shutdown_guard(void *arg)
{
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &guard_deadline, NULL) != 0)
		;
	log_error("the drain did not end within shutdown_timeout (%lld s); exiting now",
		  (long long)guard_timeout_s);
	_exit(1);
	return NULL;
}

/* The signing key (kept in guarded memory until exit) and the trusted
 * keys. config_load checked both already; a key file changed since then
 * still stops the start here, with the same kind of message. */
static int load_keys(struct daemon *d)
{
	char err[400];

	if (config_trusted_keys(d->cfg->trusted_keys, d->trusted, CONFIG_TRUSTED_MAX,
				&d->ntrusted, err, sizeof err) != 0) {
		fprintf(stderr, "cim-eventsd: trusted_keys: %s\n", err);
		return -1;
	}
	if (d->cfg->signing_key[0] == '\0')
		return 0;
	d->seal_key = cim_signing_key_load(d->cfg->signing_key, err, sizeof err);
	if (d->seal_key == NULL) {
		fprintf(stderr, "cim-eventsd: signing_key: %s\n", err);
		log_error("signing_key: %s", err);
		return -1;
	}
	return 0;
}

/* Everything the daemon holds, given back: at the end, and on a start
 * that fails part way (what was not made yet is NULL or empty). */
static void release(struct daemon *d)
{
	natsConnection_Close(d->nc);
	natsConnection_Close(d->lease_nc);
	kvStore_Destroy(d->heads_kv);
	kvStore_Destroy(d->lease_kv);
	kvStore_Destroy(d->keys.kv);
	d->keys.kv = NULL;
	jsCtx_Destroy(d->js);
	jsCtx_Destroy(d->lease_js);
	natsConnection_Destroy(d->nc);
	natsConnection_Destroy(d->lease_nc);
	heads_free(&d->heads);
	free(d->sweep);
	tix_free(&d->tix);
	recent_free(&d->recent);
	keys_close(d);
	cim_signing_key_free(d->seal_key);
	free(d->forgets);
	pthread_mutex_destroy(&d->mu);
}

/* A start that fails part way: status, after giving everything back. */
static int give_up(struct daemon *d, struct config *cfg, int status)
{
	release(d);
	config_free(cfg);
	nats_Close();
	return status;
}

static void step_down(struct daemon *d)
{
	server_pause(d);
	d->serving = false;
	keys_drop_cache(d); /* not used until the lease is held again */
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
	 * after the first such free, and keeps a burst's heap for ever).
	 * Only for glibc's malloc (a build with ALLOC=): jemalloc, which the
	 * daemon links by default (Makefile), gives freed pages back by
	 * itself within seconds */
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
	if (cfg.check_config) {
		printf("# cim-eventsd %s: the configuration is valid; the settings in force\n",
		       CIM_EVENTS_VERSION);
		config_print_origins(&cfg, stdout);
		config_free(&cfg);
		return 0;
	}
	log_set_level(log_level_from_name(cfg.log_level));
	if (log_format_from_name(cfg.log_format) < 0) {
		fprintf(stderr, "cim-eventsd: log_format must be text or json, not '%s'\n",
			cfg.log_format);
		config_free(&cfg);
		return 2;
	}
	log_set_format(log_format_from_name(cfg.log_format));
	notify_init();

	memset(&d, 0, sizeof d);
	d.cfg = &cfg;
	d.started_ns = now_ns();
	d.kill_at = getenv("CIM_EVENTSD_KILL_AT"); /* a test hook (forget.c) */
	snprintf(d.events_prefix, sizeof d.events_prefix, "%s.", cfg.events_subject);
	natsopts_js_api(&cfg.nats, d.js_api, sizeof d.js_api);
	pthread_mutex_init(&d.mu, NULL);
	if (heads_init(&d.heads, 0) != 0 || recent_init(&d.recent) != 0)
		fatalx("out of memory");
	if (load_keys(&d) != 0 || keys_open(&d) != 0)
		return give_up(&d, &cfg, 2);
	log_info("cim-eventsd %s starting (stream %s, prefix %s, hash %s)",
		 CIM_EVENTS_VERSION, cfg.stream, cfg.prefix, cfg.hash);
	if (d.seal_key != NULL)
		log_info("sealing every append with key %s", d.seal_key->text);

	sd_notify(0, "STATUS=connecting to NATS");
	if (store_connect(&d) != 0)
		return give_up(&d, &cfg, 1);
	sd_notify(0, "STATUS=connected; checking the stream and buckets");
	if (store_setup(&d) != 0)
		return give_up(&d, &cfg, 1);
	/* a wrong master key stops the start here, before anything is written;
	 * a JetStream failure on CIM-KEYS is a failed start like any bucket's */
	rc = keys_setup(&d);
	if (rc != 0)
		return give_up(&d, &cfg, rc == -2 ? 2 : 1);
	if (lease_open(&d) != 0 || lease_start(&d) != 0)
		return give_up(&d, &cfg, 1);
	micro_start(&d); /* discovery answers in every role, standby too */

	/* the lease thread takes the lease when it can; this loop follows it
	 * (serving or not) and takes the signals */
	int64_t started = now_mono_ns();
	bool told_standby = false;
	for (;;) {
		struct timespec tick = {0, 100000000};
		sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig == SIGHUP) {
			reload(&cfg, argc, argv);
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			break;
		notify_tick(&d);
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
		} else if (d.serving) {
			append_sweep(&d);
			forget_sweep(&d);
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
	pthread_t guard;
	clock_gettime(CLOCK_MONOTONIC, &guard_deadline);
	guard_deadline.tv_sec += cfg.shutdown_timeout_s;
	guard_timeout_s = cfg.shutdown_timeout_s;
	if (pthread_create(&guard, NULL, shutdown_guard, NULL) == 0)
		pthread_detach(guard);
	server_drain(&d);
	checkpoint_stop(&d);
	pthread_mutex_lock(&d.mu);
	bool moved = d.seen_seq != d.cp_seq;
	pthread_mutex_unlock(&d.mu);
	if (d.serving && moved && lease_valid(&d))
		checkpoint_write(&d); /* the next start reads this and little else */
	lease_stop(&d);
	micro_stop(&d);

	release(&d);
	log_info("stopped");
	config_free(&cfg);
	nats_Close();
	return exit_code;
}
