/*
 * store.c: connecting, the stream and the buckets, start-up, settling.
 *
 * The stream holds one message per event on events.<type>.<id>.<event_type>
 * (reading ranges of it is streamread.c). Start-up reads the whole stream
 * once to rebuild every head, and removes the tail of a batch that a crash
 * cut short, so no reader and no restart ever sees part of a batch.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "event.h"
#include "ids.h"
#include "log.h"
#include "natsopts.h"
#include "sdnotify.h"

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- connecting ------------------------------------------------------------ */

static void on_disconnected(natsConnection *nc, void *closure)
{
	struct daemon *d = closure;
	if (!atomic_load(&d->draining))
		log_warn("disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof url);
	log_info("reconnected to NATS at %s", url);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub,
			   natsStatus s, void *closure)
{
	log_warn("NATS asynchronous error: %s", natsStatus_GetText(s));
}

/* Connects, retrying with backoff until it works (or connect_timeout
 * passes, when set), then reconnects by itself for ever. */
int store_connect(struct daemon *d)
{
	natsOptions *o = NULL;
	natsStatus s;
	int64_t deadline = d->cfg->connect_timeout_s
				   ? now_ns() + d->cfg->connect_timeout_s * 1000000000LL
				   : 0;
	int delay_ms = 100;
	char err[512], masked_url[1024];
	json_t *shown = config_json(d->cfg);

	/* the URL as logged: credentials in it masked */
	snprintf(masked_url, sizeof masked_url, "%s",
		 json_string_value(json_object_get(shown, "nats_url")));
	json_decref(shown);

	/* servers, log-in and TLS: natsopts.c, shared by both connections */
	if (natsopts_new(&o, &d->cfg->nats, err, sizeof err) != NATS_OK) {
		log_error("%s", err);
		return -1;
	}
	natsOptions_SetName(o, "cim-eventsd");
	natsOptions_SetSendAsap(o, true);
	natsOptions_SetMaxReconnect(o, -1);
	natsOptions_SetReconnectWait(o, 250);
	natsOptions_SetReconnectJitter(o, 100, 1000);
	/* nats.c keeps what is published while it reconnects and sends it
	 * when the connection is back, however late. An event published in
	 * a connection's last instant must not land minutes later, perhaps
	 * after another daemon took the lease and wrote that version: so
	 * the buffer is as small as nats.c allows (it takes one message;
	 * later ones fail at once and are answered "nothing was stored") */
	natsOptions_SetReconnectBufSize(o, 1);
	natsOptions_SetDisconnectedCB(o, on_disconnected, d);
	natsOptions_SetReconnectedCB(o, on_reconnected, d);
	natsOptions_SetErrorHandler(o, on_async_error, d);
	natsOptions_SetTimeout(o, 2000);

	for (;;) {
		s = natsConnection_Connect(&d->nc, o);
		if (s == NATS_OK)
			break;
		/* what the server or TLS said (authorization violation, a
		 * certificate not trusted), not only "no server available" */
		const char *why = nats_GetLastError(NULL);
		if (why == NULL || *why == '\0')
			why = natsStatus_GetText(s);
		if (deadline && now_ns() > deadline) {
			log_error("cannot connect to %s: %s", masked_url, why);
			natsOptions_Destroy(o);
			return -1;
		}
		log_warn("cannot connect to %s (%s); retrying in %d ms",
			 masked_url, why, delay_ms);
		usleep((useconds_t)delay_ms * 1000);
		if (delay_ms < 5000)
			delay_ms *= 2;
	}
	/* the lease has a connection of its own, so that its renewals never
	 * wait behind a backlog of requests coming in on the main one
	 * (lease.c renews only while the main one is up, too) */
	natsOptions_SetName(o, "cim-eventsd lease");
	natsOptions_SetDisconnectedCB(o, NULL, NULL);
	natsOptions_SetReconnectedCB(o, NULL, NULL);
	s = natsConnection_Connect(&d->lease_nc, o);
	natsOptions_Destroy(o);
	if (s == NATS_OK) {
		jsOptions ljo;
		jsOptions_Init(&ljo);
		natsopts_js(&ljo, &d->cfg->nats);
		/* a renewal whose answer is lost (sent as the server came back)
		 * must not hold the lease's thread past its next renewal: the
		 * lease is valid for 3/4 of its length after the last one */
		ljo.Wait = (int64_t)d->cfg->lease_ttl_s * 1000 / 5;
		s = natsConnection_JetStream(&d->lease_js, d->lease_nc, &ljo);
	}
	if (s != NATS_OK) {
		log_error("cannot open the lease's connection to %s: %s", masked_url,
			  natsStatus_GetText(s));
		return -1;
	}
	d->max_payload = (size_t)natsConnection_GetMaxPayload(d->nc);

	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = d->cfg->publish_timeout_ms;
	jo.PublishAsync.AckHandler = append_ack_handler;
	jo.PublishAsync.AckHandlerClosure = d;
	jo.PublishAsync.MaxPending = 65536;
	jo.PublishAsync.StallWait = 1000;
	natsopts_js(&jo, &d->cfg->nats);
	if ((s = natsConnection_JetStream(&d->js, d->nc, &jo)) != NATS_OK) {
		log_error("JetStream context: %s", natsStatus_GetText(s));
		return -1;
	}
	log_info("connected to %s (max payload %zu bytes%s)", masked_url, d->max_payload,
		 natsopts_tls(&d->cfg->nats) ? ", TLS" : "");
	return 0;
}

/* ---- the stream and the buckets ---------------------------------------------- */

static int ensure_stream(struct daemon *d)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s;
	char subj[160];
	const char *subjects[1] = {subj};

	snprintf(subj, sizeof subj, "%s>", d->events_prefix);
	s = js_GetStreamInfo(&si, d->js, d->cfg->stream, NULL, &je);
	if (s == NATS_OK) {
		bool covered = false;
		for (int i = 0; i < si->Config->SubjectsLen; i++)
			if (strcmp(si->Config->Subjects[i], subj) == 0)
				covered = true;
		if (!covered)
			log_warn("stream %s does not list subject %s", d->cfg->stream, subj);
		if (si->Config->Storage != js_FileStorage)
			log_warn("stream %s does not use file storage", d->cfg->stream);
		if (si->Config->MaxBytes > 0 || si->Config->MaxMsgs > 0 ||
		    si->Config->MaxMsgsPerSubject > 0) {
			/* measured on nats-server 2.9.10 (tests/faults/
			 * test_storage_full.c): at max_bytes with discard new it
			 * refuses new messages but has also dropped the oldest ones */
			log_error("stream %s has a max_bytes, max_msgs or max_msgs_per_subject "
				  "limit; nats-server 2.9.10 can drop acknowledged events at "
				  "such a limit, so the daemon will not run on it: remove the "
				  "limit and bound storage at the server or account "
				  "(jetstream max_file_store), which refuses new events only",
				  d->cfg->stream);
			jsStreamInfo_Destroy(si);
			return -1;
		}
		if (si->Config->Discard == js_DiscardOld &&
		    (si->Config->MaxMsgs > 0 || si->Config->MaxBytes > 0 ||
		     si->Config->MaxAge > 0))
			log_warn("stream %s discards old events at its limits", d->cfg->stream);
		d->stream_created = si->Created;
		d->stream_replicas = si->Config->Replicas;
		d->stream_events_only = covered && si->Config->SubjectsLen == 1;
		d->stream_direct = si->Config->AllowDirect;
		log_info("stream %s found: %llu events, last sequence %llu",
			 d->cfg->stream, (unsigned long long)si->State.Msgs,
			 (unsigned long long)si->State.LastSeq);
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (s != NATS_NOT_FOUND) {
		log_error("stream %s: %s (%d)", d->cfg->stream, natsStatus_GetText(s), je);
		return -1;
	}

	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	sc.Name = d->cfg->stream;
	sc.Description = "cim-events: one message per event, DAG-CBOR blocks";
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Retention = js_LimitsPolicy;
	sc.Discard = js_DiscardNew; /* limits refuse new events, never drop old ones */
	sc.Replicas = d->cfg->replicas;
	sc.Duplicates = d->cfg->idempotency_window_s * 1000000000LL;
	sc.AllowDirect = true;
	sc.DenyPurge = true;
	s = js_AddStream(&si, d->js, &sc, NULL, &je);
	if (s != NATS_OK) {
		log_error("cannot create stream %s: %s (%d)", d->cfg->stream,
			  natsStatus_GetText(s), je);
		return -1;
	}
	d->stream_created = si->Created;
	d->stream_replicas = si->Config->Replicas;
	d->stream_events_only = true;
	d->stream_direct = true;
	jsStreamInfo_Destroy(si);
	log_info("stream %s created (subjects %s, file storage, %lld replica(s))",
		 d->cfg->stream, subj, (long long)d->cfg->replicas);
	return 0;
}

/* Opens bucket, creating it when missing (ttl_s > 0: values expire after
 * that many seconds). The handle goes to *out, or is closed when out is
 * NULL. */
static int ensure_bucket(struct daemon *d, const char *bucket, const char *what,
			 int64_t ttl_s, kvStore **out)
{
	kvStore *kv = NULL;
	natsStatus s = js_KeyValue(&kv, d->js, bucket);

	if (s == NATS_OK) {
		if (out)
			*out = kv;
		else
			kvStore_Destroy(kv);
		return 0;
	}
	if (s != NATS_NOT_FOUND) {
		log_error("bucket %s: %s", bucket, natsStatus_GetText(s));
		return -1;
	}
	kvConfig kc;
	kvConfig_Init(&kc);
	kc.Bucket = bucket;
	kc.Description = what;
	kc.History = 1;
	kc.StorageType = js_FileStorage;
	kc.Replicas = (int)d->cfg->replicas;
	kc.TTL = ttl_s * 1000000000LL;
	s = js_CreateKeyValue(&kv, d->js, &kc);
	if (s != NATS_OK) {
		log_error("cannot create bucket %s: %s", bucket, natsStatus_GetText(s));
		return -1;
	}
	if (out)
		*out = kv;
	else
		kvStore_Destroy(kv);
	log_info("bucket %s created", bucket);
	return 0;
}

int store_setup(struct daemon *d)
{
	if (ensure_stream(d) != 0)
		return -1;
	if (ensure_bucket(d, d->cfg->heads_bucket, "cim-events: aggregate heads", 0,
			  &d->heads_kv) != 0 ||
	    ensure_bucket(d, d->cfg->snapshots_bucket, "cim-events: snapshots", 0, NULL) != 0 ||
	    ensure_bucket(d, d->cfg->checkpoints_bucket, "cim-events: projection positions",
			  0, NULL) != 0 ||
	    ensure_bucket(d, d->cfg->lease_bucket, "cim-events: the active writer's lease",
			  d->cfg->lease_ttl_s, &d->lease_kv) != 0)
		return -1;
	return 0;
}

/* ---- small reads ----------------------------------------------------------- */

int store_split_subject(const struct daemon *d, const char *subj, char *buf,
			size_t bufsz, const char **type, const char **id)
{
	size_t plen = strlen(d->events_prefix);
	if (strncmp(subj, d->events_prefix, plen) != 0)
		return -1;
	if (snprintf(buf, bufsz, "%s", subj + plen) >= (int)bufsz)
		return -1;
	char *dot1 = strchr(buf, '.');
	if (dot1 == NULL)
		return -1;
	char *dot2 = strchr(dot1 + 1, '.');
	if (dot2 == NULL)
		return -1;
	*dot1 = *dot2 = '\0';
	*type = buf;
	*id = dot1 + 1;
	return 0;
}

int store_js_fail(cim_perr *err, natsStatus s, jsErrCode je, const char *what)
{
	cim_err code = (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS ||
			s == NATS_CONNECTION_CLOSED || s == NATS_CONNECTION_DISCONNECTED ||
			s == NATS_NOT_YET_CONNECTED)
			       ? CIM_ERR_UNAVAILABLE
			       : CIM_ERR_INTERNAL;
	return cim_perr_set(err, code, NULL, "storage: %s: %s%s", what,
			    natsStatus_GetText(s), je ? " (JetStream error)" : "");
}

natsMsg *store_get_msg(struct daemon *d, uint64_t seq, cim_perr *err)
{
	natsMsg *m = NULL;
	jsErrCode je = 0;
	natsStatus s = js_GetMsg(&m, d->js, d->cfg->stream, seq, NULL, &je);

	if (s != NATS_OK) {
		if (s == NATS_NOT_FOUND || je == JSNoMessageFoundErr)
			cim_perr_set(err, CIM_ERR_NOT_FOUND, NULL,
				     "no message at sequence %llu", (unsigned long long)seq);
		else
			store_js_fail(err, s, je, "get message");
		return NULL;
	}
	return m;
}

int store_delete_msg(struct daemon *d, uint64_t seq, cim_perr *err)
{
	jsErrCode je = 0;
	natsStatus s = js_DeleteMsg(d->js, d->cfg->stream, seq, NULL, &je);
	if (s != NATS_OK && !(s == NATS_NOT_FOUND || je == JSSequenceNotFoundErr))
		return store_js_fail(err, s, je, "delete message");
	pthread_mutex_lock(&d->mu);
	tix_note_type(d, seq, NULL, 0);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

/* ---- batch headers --------------------------------------------------------- */

/* Reads Cim-Batch "i/n"; a message without one is a batch of one. */
static void batch_of(natsMsg *m, unsigned *idx, unsigned *count)
{
	const char *v = NULL;
	*idx = *count = 1;
	if (natsMsgHeader_Get(m, "Cim-Batch", &v) == NATS_OK && v != NULL) {
		unsigned i, n;
		if (sscanf(v, "%u/%u", &i, &n) == 2 && i >= 1 && i <= n) {
			*idx = i;
			*count = n;
		}
	}
}

static uint64_t header_u64(natsMsg *m, const char *key)
{
	const char *v = NULL;
	if (natsMsgHeader_Get(m, key, &v) != NATS_OK || v == NULL)
		return 0;
	return strtoull(v, NULL, 10);
}

/* ---- start-up: every head from the stream ------------------------------------- */

/* The open (unfinished) batch of one aggregate during the scan. */
struct open_batch {
	struct open_batch *next;
	struct agg *agg;
	unsigned count, have;
	uint64_t *seqs;
	uint64_t last_version;
	cim_cid last_cid;
	uint64_t last_seq;
	char last_eid[CIM_EVENT_ID_MAX + 1];
	size_t last_eid_len;
};

struct scan {
	struct daemon *d;
	struct open_batch *open;
	uint64_t events, broken;
	uint64_t window_events;  /* read only to refill the idempotency window */
	uint64_t skipped;        /* already in a head, or left for settling */
	uint64_t cp_seq;         /* replay: the heads hold everything up to here */
	uint64_t max_seq;        /* the last sequence read */
	uint64_t noted;          /* the type index knows up to here */
	bool replay;
	bool stop_on_term;       /* give up when SIGTERM is pending */
	int64_t window_ns, since_ns;
	char eid[CIM_EVENT_ID_MAX + 1];
};

/* Events stored within the idempotency window go back into it, so a retry
 * after a restart is still recognised. ts: when JetStream stored it. */
static void remember_recent(struct scan *sc, int64_t ts, struct agg *a,
			    const char *eid, size_t eid_len, uint64_t version, uint64_t seq)
{
	if (ts > sc->since_ns)
		recent_add(&sc->d->recent, eid, eid_len, a, version, seq, ts, sc->window_ns);
}

static struct open_batch *open_find(struct scan *sc, struct agg *a, bool unlink)
{
	for (struct open_batch **pp = &sc->open; *pp; pp = &(*pp)->next)
		if ((*pp)->agg == a) {
			struct open_batch *b = *pp;
			if (unlink)
				*pp = b->next;
			return b;
		}
	return NULL;
}

static void open_free(struct open_batch *b)
{
	free(b->seqs);
	free(b);
}

int stop_pending(void)
{
	sigset_t p;
	notify_progress(); /* a long start-up scan pings the watchdog (sdnotify.c) */
	if (sigpending(&p) != 0)
		return 0;
	return sigismember(&p, SIGTERM) ? SIGTERM : sigismember(&p, SIGINT) ? SIGINT : 0;
}

/* One stored message into the heads; d->mu held. */
static int scan_one(struct scan *sc, natsMsg *m, uint64_t seq, int64_t ts,
		    const char *type, const char *id)
{
	struct daemon *d = sc->d;
	const char *eid = NULL;
	size_t eid_len = 0;
	unsigned idx, count;
	cim_cid cid;

	const uint8_t *data = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	uint64_t version = header_u64(m, "Cim-Version");
	natsMsgHeader_Get(m, "Cim-Event-Id", &eid);
	if (eid != NULL) /* the header carries only ids that read back exactly
			    (append.c): none holds a NUL */
		eid_len = strlen(eid);
	if (version == 0 || eid == NULL) {
		/* not written by a daemon, or an event_id no header can carry:
		 * believe only the block itself */
		cim_event_view b;
		char err[160];
		if (cim_event_check(data, len, &b, err, sizeof err) != 0) {
			log_warn("seq %llu on %s is not an event block (%s); ignored",
				 (unsigned long long)seq, natsMsg_GetSubject(m), err);
			sc->broken++;
			return 0;
		}
		version = b.version;
		eid_len = b.event_id_len < sizeof sc->eid ? b.event_id_len : sizeof sc->eid - 1;
		memcpy(sc->eid, b.event_id, eid_len);
		sc->eid[eid_len] = '\0';
		eid = sc->eid;
	}
	if (sc->replay && seq <= sc->cp_seq) {
		/* before the checkpoint: its head is in the table already; only
		 * the idempotency window wants it */
		struct agg *a = heads_find(&d->heads, type, id);
		if (a != NULL)
			remember_recent(sc, ts, a, eid, eid_len, version, seq);
		sc->window_events++;
		return 0;
	}
	struct agg *a = heads_get_or_add(&d->heads, type, id);
	if (a == NULL)
		return cim_perr_set(NULL, CIM_ERR_INTERNAL, NULL, "no memory");
	remember_recent(sc, ts, a, eid, eid_len, version, seq);
	if (sc->replay && (a->state == AGG_UNSETTLED ||
			   (version <= a->version && open_find(sc, a, false) == NULL))) {
		/* the head has it, or settling will read it */
		sc->skipped++;
		return 0;
	}
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, d->cfg->hash_code, data, len);
	batch_of(m, &idx, &count);
	sc->events++;
	if (a->first_seq == 0)
		a->first_seq = seq;
	const char *et = strrchr(natsMsg_GetSubject(m), '.');
	if (et != NULL)
		agg_add_type(&d->heads, a, et + 1, strlen(et + 1));

	struct open_batch *b = open_find(sc, a, false);
	if (idx == 1 && b != NULL) {
		/* a batch began before the last one ended: the old one is torn,
		 * but something was written after it; keep it, validate will
		 * report the chain */
		log_warn("%s/%s: batch at seq %llu never ended", type, id,
			 (unsigned long long)b->seqs[0]);
		open_find(sc, a, true);
		open_free(b);
		b = NULL;
	}
	if (count > 1 && b == NULL) {
		if (idx != 1) {
			sc->broken++;
			return 0;
		}
		b = calloc(1, sizeof *b);
		if (b == NULL || (b->seqs = calloc(count, sizeof *b->seqs)) == NULL) {
			free(b);
			return -1;
		}
		b->agg = a;
		b->count = count;
		b->next = sc->open;
		sc->open = b;
	}
	if (version != a->version + 1 && (b == NULL || version != b->last_version + 1))
		sc->broken++;
	if (b == NULL) {
		agg_set_head(a, version, &cid, seq, eid, eid_len);
		return 0;
	}
	b->seqs[b->have++] = seq;
	b->last_version = version;
	b->last_cid = cid;
	b->last_seq = seq;
	b->last_eid_len = eid_len < sizeof b->last_eid ? eid_len : sizeof b->last_eid - 1;
	memcpy(b->last_eid, eid, b->last_eid_len);
	if (idx == count || b->have == b->count) {
		agg_set_head(a, b->last_version, &b->last_cid, b->last_seq, b->last_eid,
			     b->last_eid_len);
		open_find(sc, a, true);
		open_free(b);
	}
	return 0;
}

static int scan_visit(natsMsg *m, uint64_t seq, int64_t ts, void *ctx)
{
	struct scan *sc = ctx;
	char buf[256];
	const char *type, *id;

	if (seq > sc->max_seq)
		sc->max_seq = seq;
	if (sc->stop_on_term && (seq & 4095) == 0 && stop_pending()) {
		log_warn("asked to stop while reading the stream (at seq %llu)",
			 (unsigned long long)seq);
		return -1;
	}
	/* workers may read the heads while a catch-up runs */
	pthread_mutex_lock(&sc->d->mu);
	/* what the scan does not see between two messages is not stored */
	if (seq > sc->noted + 1)
		tix_note_gap(sc->d, sc->noted + 1, seq - 1);
	tix_note_subject(sc->d, seq, natsMsg_GetSubject(m));
	sc->noted = seq;
	int rc = 0;
	if (store_split_subject(sc->d, natsMsg_GetSubject(m), buf, sizeof buf, &type, &id) == 0)
		rc = scan_one(sc, m, seq, ts, type, id);
	pthread_mutex_unlock(&sc->d->mu);
	return rc;
}

/* Did the read of [.., to] end early? The consumer behind it may sit on a
 * replica still catching up, which ends where its copy of the stream
 * ends: the leader says where the next message after the last one read
 * is. 1 and *next when the scan must go on there, 0 when it is complete,
 * -1 when the leader cannot be asked. */
static int scan_ended_early(struct daemon *d, struct scan *sc, uint64_t from, uint64_t to,
			    uint64_t *next)
{
	struct leader_msg lm;
	cim_perr err = {0};
	char filter[160];
	uint64_t after = sc->max_seq >= from ? sc->max_seq + 1 : from;

	if (after > to)
		return 0;
	snprintf(filter, sizeof filter, "%s>", d->events_prefix);
	int rc = leader_get(d, after, filter, &lm, &err);
	if (rc < 0) {
		log_error("asking the stream's leader where the stream ends: %s", err.msg);
		return -1;
	}
	natsMsg_Destroy(lm.msg);
	if (rc == 0 || lm.seq > to)
		return 0;
	*next = lm.seq;
	return 1;
}

/* Reads [from, to] into the heads, then settles the aggregates whose
 * batches were left open at the end (a crash cut them short, or the
 * rest is not written yet). 0 or -1. */
static int scan_range(struct daemon *d, struct scan *sc, uint64_t from, uint64_t to)
{
	cim_perr err = {0};
	char filter[160];
	int tries = 0;

	sc->d = d;
	sc->noted = from - 1;
	sc->window_ns = d->cfg->idempotency_window_s * 1000000000LL;
	sc->since_ns = now_ns() - sc->window_ns;
	snprintf(filter, sizeof filter, "%s>", d->events_prefix);
	for (uint64_t at = from; at <= to;) {
		int early;
		if (store_read_filter(d, filter, at, to, scan_visit, sc, &err) != 0 ||
		    (early = scan_ended_early(d, sc, from, to, &at)) < 0) {
			log_error("reading the stream: %s", err.msg[0] ? err.msg : "stopped");
			while (sc->open) {
				struct open_batch *b = sc->open;
				sc->open = b->next;
				open_free(b);
			}
			return -1;
		}
		if (early == 0)
			break;
		if (++tries > 50 || stop_pending()) {
			log_error("reading the stream: the copy read ends at seq %llu, while "
				  "the stream's leader has seq %llu; giving up for now",
				  (unsigned long long)sc->max_seq, (unsigned long long)at);
			return -1;
		}
		log_warn("the stream was read up to seq %llu, but its leader has seq %llu: "
			 "reading on from there", (unsigned long long)sc->max_seq,
			 (unsigned long long)at);
		usleep(200 * 1000);
	}
	while (sc->open) {
		struct open_batch *b = sc->open;
		sc->open = b->next;
		log_warn("%s/%s: %u of a %u-event batch stored; settling it", agg_type(b->agg),
			 agg_id(b->agg), b->have, b->count);
		pthread_mutex_lock(&d->mu);
		b->agg->state = AGG_UNSETTLED;
		pthread_mutex_unlock(&d->mu);
		if (store_settle(d, b->agg, &err) != 0) {
			log_warn("%s/%s: cannot settle it yet (%s); trying again later",
				 agg_type(b->agg), agg_id(b->agg), err.msg);
			sweep_add(d, b->agg);
		}
		open_free(b);
	}
	pthread_mutex_lock(&d->mu);
	if (to > d->seen_seq && to != STORE_TO_END)
		d->seen_seq = to;
	if (to != STORE_TO_END && to > sc->noted)
		tix_note_gap(d, sc->noted + 1, to);
	pthread_mutex_unlock(&d->mu);
	if (sc->broken)
		log_warn("%llu event(s) do not follow their aggregate's version; "
			 "run validate on the aggregates concerned",
			 (unsigned long long)sc->broken);
	return 0;
}

static int stream_state(struct daemon *d, uint64_t *first, uint64_t *last, uint64_t *msgs,
			uint64_t *deleted)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s = js_GetStreamInfo(&si, d->js, d->cfg->stream, NULL, &je);

	if (s != NATS_OK) {
		log_error("stream %s: %s", d->cfg->stream, natsStatus_GetText(s));
		return -1;
	}
	*first = si->State.FirstSeq;
	*last = si->State.LastSeq;
	*msgs = si->State.Msgs;
	*deleted = si->State.NumDeleted;
	d->stream_created = si->Created;
	jsStreamInfo_Destroy(si);
	return 0;
}

/* The first sequence in [lo, hi] whose event JetStream stored at or after
 * since_ns, found by halving with direct gets (hi when there is none; lo
 * when the stream cannot be read that way, so nothing is missed). */
static uint64_t first_seq_since(struct daemon *d, uint64_t lo, uint64_t hi, int64_t since_ns)
{
	char filter[160];
	int probes = 0;

	snprintf(filter, sizeof filter, "%s>", d->events_prefix);
	while (lo < hi && probes++ < 128) {
		uint64_t mid = lo + (hi - lo) / 2;
		jsDirectGetMsgOptions o;
		natsMsg *m = NULL;
		jsDirectGetMsgOptions_Init(&o);
		o.Sequence = mid;
		o.NextBySubject = filter;
		natsStatus s = js_DirectGetMsg(&m, d->js, d->cfg->stream, NULL, &o);
		if (s == NATS_NOT_FOUND) {
			hi = mid; /* nothing at or after mid */
			continue;
		}
		if (s != NATS_OK)
			return lo;
		uint64_t at = natsMsg_GetSequence(m);
		int64_t t = natsMsg_GetTime(m);
		natsMsg_Destroy(m);
		if (at >= hi || t >= since_ns)
			hi = mid;
		else
			lo = at + 1;
	}
	return lo;
}

/* Messages removed within the duplicate window, by another process (or
 * this one before a lease was lost), leave ids burned that no burn note
 * knows of: then no append is chained until the window has passed
 * (resolve.c). Torn batches this start-up removes are noted as it goes. */
static void pause_if_burned(struct daemon *d, uint64_t first, uint64_t last, uint64_t deleted)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	jsOptions o;
	bool recent = true;

	if (deleted == 0)
		return;
	if (deleted <= 100000) {
		uint64_t since = first_seq_since(d, first, last + 1,
						 now_ns() - d->cfg->idempotency_window_s * 1000000000LL);
		jsOptions_Init(&o);
		o.Stream.Info.DeletedDetails = true;
		if (js_GetStreamInfo(&si, d->js, d->cfg->stream, &o, &je) == NATS_OK) {
			recent = false;
			for (int i = 0; i < si->State.DeletedLen && !recent; i++)
				recent = si->State.Deleted[i] >= since;
		}
		jsStreamInfo_Destroy(si);
	}
	if (recent)
		chain_pause(d, "messages were removed from the stream within the duplicate "
			       "window");
}

static void settle_marked(struct daemon *d, struct cp_loaded *cp)
{
	for (size_t i = 0; i < cp->nunsettled; i++) {
		cim_perr err = {0};
		struct agg *a = cp->unsettled[i];
		if (store_settle(d, a, &err) != 0) {
			log_warn("%s/%s: cannot settle it yet (%s); trying again later",
				 agg_type(a), agg_id(a), err.msg);
			sweep_add(d, a);
		}
	}
}

int store_load_heads(struct daemon *d)
{
	struct scan sc = {.stop_on_term = true};
	struct cp_loaded cp;
	uint64_t first, last, msgs, deleted;
	char why[200];
	int64_t t0 = now_ns();

	if (stream_state(d, &first, &last, &msgs, &deleted) != 0)
		return -1;
	pause_if_burned(d, first, last, deleted);
	if (d->tix.npages == 0) /* its pages are numbered from there on */
		d->tix.first = first > 0 ? first : 1;
	int rc = msgs > 0 ? checkpoint_load(d, last, &cp, why, sizeof why) : 1;
	if (msgs == 0)
		snprintf(why, sizeof why, "the stream is empty");
	if (rc == 0) {
		int64_t t_cp = now_ns();
		/* the idempotency window may reach back before the checkpoint */
		uint64_t from = first_seq_since(d, first, cp.seq + 1,
						now_ns() - d->cfg->idempotency_window_s * 1000000000LL);
		/* and the type index, written beside the checkpoint, may end
		 * before it (a page not written, the first start after an
		 * upgrade): the stream is read again from where it ends */
		uint64_t tix_from = tix_load(d, first, cp.seq, last);
		if (tix_from < from)
			from = tix_from;
		sc.replay = true;
		sc.cp_seq = cp.seq;
		if (scan_range(d, &sc, from, last) != 0) {
			free(cp.unsettled);
			return -1;
		}
		settle_marked(d, &cp);
		free(cp.unsettled);
		d->startup_ms = (now_ns() - t0) / 1000000;
		d->startup_events = sc.events;
		snprintf(d->startup_how, sizeof d->startup_how,
			 "checkpoint at seq %llu (written %s) and %llu event(s) after it",
			 (unsigned long long)cp.seq, cp.written, (unsigned long long)sc.events);
		log_info("heads loaded from the checkpoint at seq %llu (%zu aggregates, "
			 "%zu to settle, read in %lld ms), then %llu event(s) replayed and "
			 "%llu read back for the idempotency window: %zu aggregates in %lld ms",
			 (unsigned long long)cp.seq, cp.aggregates, cp.nunsettled,
			 (long long)((t_cp - t0) / 1000000), (unsigned long long)sc.events,
			 (unsigned long long)sc.window_events, d->heads.count,
			 (long long)d->startup_ms);
		return 0;
	}

	/* no usable checkpoint: every head from the whole stream */
	heads_reserve(&d->heads, (size_t)msgs); /* no more aggregates than events */
	if (msgs > 0 && scan_range(d, &sc, first, last) != 0)
		return -1;
	pthread_mutex_lock(&d->mu);
	if (last > d->seen_seq)
		d->seen_seq = last;
	pthread_mutex_unlock(&d->mu);
	d->startup_ms = (now_ns() - t0) / 1000000;
	d->startup_events = sc.events;
	snprintf(d->startup_how, sizeof d->startup_how, "full scan (%s)", why);
	log_info("heads loaded by a full scan (%s): %zu aggregates, %llu events in %lld ms",
		 why, d->heads.count, (unsigned long long)sc.events, (long long)d->startup_ms);
	return 0;
}

int store_catch_up(struct daemon *d)
{
	struct scan sc = {.replay = true};
	uint64_t first, last, msgs, deleted;
	int64_t t0 = now_ns();

	if (stream_state(d, &first, &last, &msgs, &deleted) != 0)
		return -1;
	pause_if_burned(d, first, last, deleted);
	pthread_mutex_lock(&d->mu);
	sc.cp_seq = d->seen_seq;
	pthread_mutex_unlock(&d->mu);
	if (last <= sc.cp_seq)
		return 0;
	if (scan_range(d, &sc, sc.cp_seq + 1, last) != 0)
		return -1;
	log_info("caught up with %llu event(s) stored after seq %llu in %lld ms",
		 (unsigned long long)sc.events, (unsigned long long)sc.cp_seq,
		 (long long)((now_ns() - t0) / 1000000));
	return 0;
}

/* ---- settling an aggregate after a failed append ---------------------------- */

struct settle_ent {
	uint64_t seq, version;
	unsigned idx, count;
	unsigned gen;  /* its Nats-Msg-Id's generation */
	bool own;      /* published by this process (Cim-Writer) */
	cim_cid cid;
	bool has_prev;
	cim_cid prev;
	char eid[CIM_EVENT_ID_MAX + 1];
	size_t eid_len;
	char etype[CIM_TYPE_MAX + 1];
	bool ok;
};

struct settle {
	struct daemon *d;
	struct settle_ent *e;
	size_t n, cap;
};

static int settle_visit(natsMsg *m, uint64_t seq, int64_t ts, void *ctx)
{
	struct settle *st = ctx;
	cim_event_view ev;
	char err[160];

	if (st->n == st->cap) {
		size_t ncap = st->cap ? st->cap * 2 : 16;
		struct settle_ent *e = realloc(st->e, ncap * sizeof *e);
		if (e == NULL)
			return -1;
		st->e = e;
		st->cap = ncap;
	}
	struct settle_ent *x = &st->e[st->n++];
	memset(x, 0, sizeof *x);
	x->seq = seq;
	batch_of(m, &x->idx, &x->count);
	const char *h = NULL;
	if (natsMsgHeader_Get(m, "Nats-Msg-Id", &h) == NATS_OK && h != NULL)
		x->gen = msgid_gen(h);
	h = NULL;
	x->own = natsMsgHeader_Get(m, "Cim-Writer", &h) == NATS_OK && h != NULL &&
		 strcmp(h, st->d->holder) == 0;
	const uint8_t *data = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	if (cim_event_check(data, len, &ev, err, sizeof err) != 0)
		return 0; /* x->ok stays false */
	x->ok = true;
	x->version = ev.version;
	x->has_prev = ev.has_prev;
	x->prev = ev.prev;
	x->eid_len = ev.event_id_len < sizeof x->eid ? ev.event_id_len : sizeof x->eid - 1;
	memcpy(x->eid, ev.event_id, x->eid_len);
	snprintf(x->etype, sizeof x->etype, "%.*s", (int)ev.event_type_len, ev.event_type);
	cim_cid_compute(&x->cid, CIM_CODEC_DAG_CBOR, st->d->cfg->hash_code, data, len);
	return 0;
}

int store_settle(struct daemon *d, struct agg *a, cim_perr *err)
{
	struct settle st = {.d = d};
	cim_cid head;
	char **types = NULL;
	int ntypes = 0, rc = -1;

	/* what the stream's leader holds, not what memory remembers, nor what
	 * a replica still catching up would say (leader.c) */
	if (store_agg_subjects(d, agg_type(a), agg_id(a), &types, &ntypes, err) != 0 ||
	    store_read_agg_leader(d, agg_type(a), agg_id(a), types, ntypes, a->seq + 1,
				  settle_visit, &st, err) != 0)
		goto out;

	/* adopt whole, well-linked batches; stop at the first thing that is not */
	pthread_mutex_lock(&d->mu);
	agg_head_cid(a, &head);
	uint64_t version = a->version;
	size_t i = 0;
	while (i < st.n) {
		struct settle_ent *b = &st.e[i];
		size_t n = b->count;
		if (b->idx != 1 || i + n > st.n)
			break;
		bool good = true;
		for (size_t k = 0; k < n && good; k++) {
			struct settle_ent *x = &st.e[i + k];
			good = x->ok && x->idx == k + 1 && x->count == n &&
			       x->version == version + 1 + k &&
			       (k == 0 ? (version == 0 ? !x->has_prev
						       : x->has_prev && cim_cid_equal(&x->prev, &head))
				       : x->has_prev && cim_cid_equal(&x->prev, &st.e[i + k - 1].cid));
		}
		if (!good)
			break;
		struct settle_ent *l = &st.e[i + n - 1];
		for (size_t k = 0; k < n; k++) {
			recent_add(&d->recent, st.e[i + k].eid, st.e[i + k].eid_len, a,
				   st.e[i + k].version,
				   st.e[i + k].seq, now_ns(),
				   d->cfg->idempotency_window_s * 1000000000LL);
			agg_add_type(&d->heads, a, st.e[i + k].etype, strlen(st.e[i + k].etype));
			tix_note_type(d, st.e[i + k].seq, st.e[i + k].etype,
				      strlen(st.e[i + k].etype));
		}
		agg_set_head(a, l->version, &l->cid, l->seq, l->eid, l->eid_len);
		if (a->first_seq == 0)
			a->first_seq = b->seq;
		if (l->seq > d->seen_seq)
			d->seen_seq = l->seq;
		head = l->cid;
		version = l->version;
		log_info("%s/%s: adopted %zu stored event(s) up to version %llu",
			 agg_type(a), agg_id(a), n, (unsigned long long)version);
		i += n;
	}
	pthread_mutex_unlock(&d->mu);

	/* what is left: a torn batch at the tail is removed, and so is what
	 * this process published and never committed (appends chained on one
	 * that failed: nothing past its head was ever acknowledged by it);
	 * anything else is not ours to touch */
	bool torn = i < st.n && st.e[i].idx == 1 && st.e[i].count > st.n - i;
	for (size_t k = i; torn && k < st.n; k++)
		torn = st.e[k].ok && st.e[k].idx == k - i + 1;
	bool own = i < st.n;
	for (size_t k = i; own && k < st.n; k++)
		own = st.e[k].own;
	if ((torn || own) && now_ns() < atomic_load(&d->unsure_until)) {
		/* a publish this daemon gave up on may still be committed (a
		 * cluster electing a leader): the rest of the batch may come */
		cim_perr_set(err, CIM_ERR_UNAVAILABLE, NULL,
			     "%zu event(s) of an unfinished append are stored past version "
			     "%llu and the rest may still land; retry shortly", st.n - i,
			     (unsigned long long)version);
		goto out;
	}
	if (torn || own) {
		for (size_t k = i; k < st.n; k++) {
			/* the id stays in the duplicate window (resolve.c) */
			burn_note(d, a, st.e[k].version, st.e[k].gen);
			if (store_delete_msg(d, st.e[k].seq, err) != 0)
				goto out;
		}
		log_warn("%s/%s: removed %zu event(s) %s", agg_type(a), agg_id(a), st.n - i,
			 torn ? "of a torn batch" : "this daemon published past the head and "
						    "never committed");
	} else if (i < st.n) {
		log_error("%s/%s: %zu stored event(s) past version %llu do not continue "
			  "the chain; leaving them for validate to report",
			  agg_type(a), agg_id(a), st.n - i, (unsigned long long)version);
	}
	pthread_mutex_lock(&d->mu);
	a->state = AGG_SETTLED;
	pthread_mutex_unlock(&d->mu);
	rc = 0;
out:
	store_free_subjects(types, ntypes);
	free(st.e);
	return rc;
}
