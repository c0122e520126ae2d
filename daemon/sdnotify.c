/*
 * sdnotify.c: STATUS and the watchdog (sdnotify.h).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "log.h"
#include "sdnotify.h"

static int64_t ping_every_ns;          /* 0: no watchdog */
static atomic_int_fast64_t last_ping;  /* monotonic ns */
static int64_t down_since;             /* main thread: 0 while connected */
static char last_status[256];          /* main thread */

void notify_init(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		ping_every_ns = (int64_t)usec * 1000 / 2;
		log_info("systemd watchdog: %llu ms; pinging every %lld ms while healthy",
			 (unsigned long long)(usec / 1000), (long long)(ping_every_ns / 1000000));
	}
}

static void ping_if_due(void)
{
	int64_t now = now_mono_ns(), last = atomic_load(&last_ping);

	if (ping_every_ns == 0 || now - last < ping_every_ns)
		return;
	if (atomic_compare_exchange_strong(&last_ping, &last, now))
		sd_notify(0, "WATCHDOG=1");
}

void notify_progress(void)
{
	ping_if_due();
}

static void set_status(const char *text)
{
	char msg[300];

	if (strcmp(text, last_status) == 0)
		return;
	snprintf(last_status, sizeof last_status, "%s", text);
	snprintf(msg, sizeof msg, "STATUS=%s", text);
	sd_notify(0, msg);
}

bool notify_tick(struct daemon *d)
{
	natsConnStatus cs = natsConnection_Status(d->nc);
	int role = atomic_load(&d->role);
	const char *who = role_name(role);
	char text[256];
	bool healthy = true;
	int64_t now = now_mono_ns();

	if (cs == NATS_CONN_STATUS_CONNECTED) {
		if (down_since != 0)
			log_info("NATS connection up again after %lld s",
				 (long long)((now - down_since) / 1000000000));
		down_since = 0;
		if (role == ROLE_ACTIVE)
			snprintf(text, sizeof text, "active: connected to NATS; serving %s",
				 d->cfg->prefix);
		else if (role == ROLE_STANDBY)
			snprintf(text, sizeof text, "standby: connected to NATS; another daemon "
				 "holds the writer lease");
		else
			snprintf(text, sizeof text, "connected to NATS; starting");
	} else if (cs == NATS_CONN_STATUS_CLOSED) {
		snprintf(text, sizeof text, "%s: the NATS connection is closed", who);
		healthy = false;
	} else {
		if (down_since == 0)
			down_since = now;
		int64_t down_s = (now - down_since) / 1000000000;
		if (d->cfg->nats_down_grace_s > 0 && down_s >= d->cfg->nats_down_grace_s) {
			snprintf(text, sizeof text, "%s: reconnecting to NATS for over %lld s; "
				 "no longer healthy", who, (long long)d->cfg->nats_down_grace_s);
			healthy = false;
		} else {
			snprintf(text, sizeof text, "%s: reconnecting to NATS", who);
		}
	}
	static bool was_healthy = true;
	if (healthy != was_healthy) {
		if (healthy)
			log_info("healthy again: %s", text);
		else
			log_error("not healthy (%s): watchdog pings stop", text);
		was_healthy = healthy;
	}
	set_status(text);
	if (healthy)
		ping_if_due();
	return healthy;
}
