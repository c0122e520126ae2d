/*
 * lease.c: one writer per stream. Daemons sharing a stream hold, in turn,
 * a lease in the CIM-LEASE bucket: the key writer.<stream>, whose values
 * JetStream removes lease_ttl after they were written (the bucket's max
 * age). The active daemon writes the key again every lease_ttl/5 (and
 * every 200 ms while one could not be made: NATS down or just back, an
 * answer lost; each waits at most lease_ttl/5 for its answer); a
 * standby tries every half second to create it, which succeeds only when
 * no value is there (kvStore_Create: expected last subject sequence 0).
 *
 * Why no two daemons write at once. The active one may write only until
 * lease_ttl * 3/4 has passed since it sent its last successful renewal
 * (lease_valid, checked before every publish). JetStream removes a value
 * no earlier than lease_ttl after it stored it, which is after we sent it;
 * so while we may write, our value is there and no create can succeed.
 * The quarter left over is the margin for the two clocks' rates and for
 * the publish that was already on its way when the time ran out. This
 * needs no compare-and-set from the server, which nats-server 2.9.10 does
 * not enforce on replicated streams: renewals use one (kvStore_Update with
 * our revision), which a single server does check, as a second fence.
 *
 * The lease travels on a connection of its own, so that a renewal never
 * waits behind a backlog of requests on the main one; it is renewed and
 * taken only while the main connection is up, so a daemon that cannot
 * serve lets it go.
 *
 * A renewal that JetStream refuses means another holder: the lease is lost
 * at once. Renewals that fail for want of a connection let it run out.
 * Either way the main thread stops serving (server_pause) and this thread
 * goes back to trying to create the key; when that works again the main
 * thread reads what others wrote meanwhile (store_catch_up) and serves.
 *
 * Giving the lease back at shutdown purges our value from the bucket's
 * stream (up to our revision), so a successor need not wait out the TTL
 * and no delete marker is left (creating over a marker would need a
 * compare-and-set). A SIGKILLed daemon cannot give it back: its successor
 * waits up to lease_ttl.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

int64_t now_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool lease_valid(struct daemon *d)
{
	int64_t until = atomic_load(&d->lease_until);
	return until != 0 && now_mono_ns() < until;
}

static int64_t valid_for(const struct daemon *d)
{
	return d->lease_ttl_ns - d->lease_ttl_ns / 4;
}

int lease_open(struct daemon *d)
{
	kvStatus *st = NULL;
	char host[64] = "";
	unsigned char nonce[4];

	/* a KV key: letters, digits and - _ / = only, besides dots */
	int n = snprintf(d->lease_key, sizeof d->lease_key, "writer.%s", d->cfg->stream);
	for (int i = 7; i < n; i++) {
		char c = d->lease_key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '='))
			d->lease_key[i] = '_';
	}
	gethostname(host, sizeof host - 1);
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(nonce, sizeof nonce);
	snprintf(d->holder, sizeof d->holder, "%s:%d:%02x%02x%02x%02x", host, (int)getpid(),
		 nonce[0], nonce[1], nonce[2], nonce[3]);

	/* through the lease's own connection from now on */
	kvStore_Destroy(d->lease_kv);
	d->lease_kv = NULL;
	if (js_KeyValue(&d->lease_kv, d->lease_js, d->cfg->lease_bucket) != NATS_OK) {
		log_error("cannot open bucket %s", d->cfg->lease_bucket);
		return -1;
	}
	/* the bucket's max age is the lease's length, whatever the setting says now */
	if (kvStore_Status(&st, d->lease_kv) != NATS_OK) {
		log_error("cannot read the state of bucket %s", d->cfg->lease_bucket);
		return -1;
	}
	d->lease_ttl_ns = kvStatus_TTL(st);
	kvStatus_Destroy(st);
	if (d->lease_ttl_ns <= 0) {
		log_error("bucket %s keeps values for ever; the lease needs a bucket whose "
			  "values expire (max age = lease_ttl)", d->cfg->lease_bucket);
		return -1;
	}
	if (d->lease_ttl_ns != d->cfg->lease_ttl_s * 1000000000LL)
		log_warn("bucket %s expires values after %lld ms, not lease_ttl (%lld s): "
			 "using the bucket's", d->cfg->lease_bucket,
			 (long long)(d->lease_ttl_ns / 1000000), (long long)d->cfg->lease_ttl_s);
	pthread_mutex_init(&d->lease_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->lease_cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

static char *lease_value(const struct daemon *d)
{
	char since[CIM_TIME_TEXT];
	cim_time_now(since);
	json_t *o = json_pack("{ss ss ss}", "holder", d->holder, "stream", d->cfg->stream,
			      "written", since);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return text;
}

/* Did JetStream refuse the write because the key is not at the revision
 * we gave (someone else wrote it)? Anything else (no connection, a
 * timeout, a full buffer) says nothing about who holds the lease. */
static bool refused_by_revision(natsStatus s)
{
	const char *why = nats_GetLastError(NULL);
	return s == NATS_ERR && why != NULL && strstr(why, "wrong last sequence") != NULL;
}

/* The holder named by the current value, for the log. */
static void current_holder(struct daemon *d, char *out, size_t n)
{
	kvEntry *e = NULL;
	snprintf(out, n, "another daemon");
	if (kvStore_Get(&e, d->lease_kv, d->lease_key) != NATS_OK)
		return;
	json_t *o = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
	const char *h = json_string_value(json_object_get(o, "holder"));
	if (h != NULL)
		snprintf(out, n, "%s", h);
	json_decref(o);
	kvEntry_Destroy(e);
}

/* 1: the lease is ours now; 0: someone holds it; -1: cannot tell. */
static int try_acquire(struct daemon *d)
{
	char *v = lease_value(d);
	uint64_t rev = 0;
	int64_t sent = now_mono_ns();

	if (v == NULL)
		return -1;
	natsStatus s = kvStore_Create(&rev, d->lease_kv, d->lease_key, v, (int)strlen(v));
	free(v);
	if (s == NATS_OK) {
		d->lease_rev = rev;
		atomic_store(&d->lease_until, sent + valid_for(d));
		return 1;
	}
	/* a create fails on revision when the key has a value: a holder */
	return refused_by_revision(s) ? 0 : -1;
}

/* 1: renewed; 0: not now (no connection), still ours until it runs out;
 * -1: lost. */
static int renew(struct daemon *d)
{
	char *v = lease_value(d);
	uint64_t rev = 0;
	int64_t sent = now_mono_ns();

	if (v == NULL)
		return 0;
	natsStatus s = kvStore_Update(&rev, d->lease_kv, d->lease_key, v, (int)strlen(v),
				      d->lease_rev);
	free(v);
	if (s == NATS_OK) {
		d->lease_rev = rev;
		int64_t took = now_mono_ns() - sent;
		if (took >= d->lease_ttl_ns / 4) {
			/* stored, but maybe after our last value ran out (a
			 * replicated bucket does not check the revision): it
			 * extends nothing (the answer's wait is lease_ttl/5 as
			 * configured; a bucket with a shorter max age wins) */
			log_warn("a renewal of the writer lease was answered after %lld ms; "
				 "it is not counted", (long long)(took / 1000000));
			return 0;
		}
		atomic_store(&d->lease_until, sent + valid_for(d));
		return 1;
	}
	if (!refused_by_revision(s))
		return 0;
	/* the key moved on: by another holder, or by a renewal of ours whose
	 * answer was lost (a server restarted after storing it, or stored it
	 * without answering). A value naming us was written by us: take its
	 * revision and go on; anything else is another holder. */
	kvEntry *e = NULL;
	bool ours = false;
	if (kvStore_Get(&e, d->lease_kv, d->lease_key) == NATS_OK) {
		json_t *o = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
		const char *h = json_string_value(json_object_get(o, "holder"));
		ours = h != NULL && strcmp(h, d->holder) == 0;
		if (ours)
			d->lease_rev = kvEntry_Revision(e);
		json_decref(o);
		kvEntry_Destroy(e);
	}
	if (ours) {
		log_info("the writer lease is at revision %llu, written by us; going on",
			 (unsigned long long)d->lease_rev);
		return 0;
	}
	log_error("the writer lease was taken over (%s): stopping writes",
		  nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "wrong revision");
	return -1;
}

static void *lease_main(void *arg)
{
	struct daemon *d = arg;
	bool held = false, told = false, again = false;

	pthread_mutex_lock(&d->lease_mu);
	while (!d->lease_stop) {
		pthread_mutex_unlock(&d->lease_mu);
		if (held && !lease_valid(d)) {
			log_error("the writer lease ran out (no renewal for %lld ms): "
				  "stopping writes", (long long)(valid_for(d) / 1000000));
			held = false;
		}
		bool up = natsConnection_Status(d->nc) == NATS_CONN_STATUS_CONNECTED;
		again = false;
		if (held && !up) {
			/* a daemon that cannot serve must not keep the lease: let
			 * it run out, unless NATS is back first (looked at often) */
			again = true;
		} else if (held) {
			int r = renew(d);
			if (r < 0) {
				atomic_store(&d->lease_until, 0);
				held = false;
			}
			again = r == 0; /* not now: soon again, not a fifth of the TTL later */
		} else if (up) {
			int r = try_acquire(d);
			if (r > 0) {
				held = true;
				told = false;
				log_info("holding the writer lease %s/%s as %s (%lld ms)",
					 d->cfg->lease_bucket, d->lease_key, d->holder,
					 (long long)(d->lease_ttl_ns / 1000000));
			} else if (!told) {
				char who[160];
				if (r == 0)
					current_holder(d, who, sizeof who);
				else
					snprintf(who, sizeof who, "nobody known (NATS unreachable)");
				log_info("standby: the writer lease is held by %s; waiting", who);
				told = true;
			}
		}
		/* renew five times per TTL; while NATS is down, or a renewal
		 * could not be made now (NATS just back, an answer lost), again
		 * within 200 ms; a standby looks twice a second */
		int64_t wait = held ? (again ? 200000000 : d->lease_ttl_ns / 5)
				    : (d->lease_ttl_ns / 5 < 500000000 ? d->lease_ttl_ns / 5 : 500000000);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += wait % 1000000000;
		ts.tv_sec += wait / 1000000000 + ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_mutex_lock(&d->lease_mu);
		if (!d->lease_stop)
			pthread_cond_timedwait(&d->lease_cv, &d->lease_mu, &ts);
	}
	pthread_mutex_unlock(&d->lease_mu);
	return NULL;
}

int lease_start(struct daemon *d)
{
	d->lease_stop = false;
	if (pthread_create(&d->lease_thread, NULL, lease_main, d) != 0)
		return -1;
	d->lease_running = true;
	return 0;
}

void lease_stop(struct daemon *d)
{
	if (d->lease_running) {
		pthread_mutex_lock(&d->lease_mu);
		d->lease_stop = true;
		pthread_cond_broadcast(&d->lease_cv);
		pthread_mutex_unlock(&d->lease_mu);
		pthread_join(d->lease_thread, NULL);
		d->lease_running = false;
	}
	if (!lease_valid(d))
		return;
	/* give it back: purge our value from the bucket's stream (up to our
	 * revision only), which leaves no delete marker, so the next daemon
	 * can create the key at once */
	char stream[200], subj[400];
	jsOptions o;
	jsErrCode je = 0;
	snprintf(stream, sizeof stream, "KV_%s", d->cfg->lease_bucket);
	snprintf(subj, sizeof subj, "$KV.%s.%s", d->cfg->lease_bucket, d->lease_key);
	jsOptions_Init(&o);
	o.Stream.Purge.Subject = subj;
	o.Stream.Purge.Sequence = d->lease_rev + 1;
	atomic_store(&d->lease_until, 0);
	natsStatus s = js_PurgeStream(d->lease_js, stream, &o, &je);
	if (s == NATS_OK)
		log_info("writer lease given back");
	else
		log_warn("cannot give the writer lease back (%s); it runs out by itself",
			 natsStatus_GetText(s));
}
