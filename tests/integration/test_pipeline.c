/*
 * test_pipeline.c: pipelined appends on one aggregate (docs/design.md,
 * "Pipelined appends"). Many appends to one aggregate are sent at once,
 * so that the daemon chains each on the head the one before will make;
 * then the failures that must take the chain apart: an early append
 * refused by a JetStream limit, a chained append that fails its own
 * checks, a retry of a chained append while it is in flight, and the
 * daemon killed with a chain in flight. Each test holds the raw stream to
 * what the replies said: versions 1..n once each, in stream order, each
 * linked to the one before, every batch whole, every acknowledged append
 * where its reply put it.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(pipeline, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 180);

/* ---- many requests at once ----------------------------------------------------- */

struct burst {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n, got;
	h_reply *rep; /* by request */
};

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	struct burst *b = closure;
	const char *dot = strrchr(natsMsg_GetSubject(m), '.');
	int k = dot ? atoi(dot + 1) : -1;
	const char *st = NULL;

	pthread_mutex_lock(&b->mu);
	if (k >= 0 && k < b->n && b->rep[k].body == NULL) {
		h_reply *r = &b->rep[k];
		r->s = NATS_OK;
		r->len = natsMsg_GetDataLength(m);
		r->body = calloc(1, (size_t)r->len + 1);
		memcpy(r->body, natsMsg_GetData(m), (size_t)r->len);
		r->json = json_loads(r->body, 0, NULL);
		r->status = natsMsgHeader_Get(m, "Cim-Status", &st) == NATS_OK && st ? atoi(st) : -1;
		b->got++;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	natsMsg_Destroy(m);
}

/* Sends n appends to type/id at once (bodies[k]) on one connection and
 * waits up to wait_ms for their replies, or until stop_after replies are
 * in (0: all). Replies that did not come have s NATS_TIMEOUT. */
static h_reply *burst(const char *type, const char *id, char **bodies, int n, int wait_ms,
		      int stop_after)
{
	struct burst b = {.n = n, .rep = calloc((size_t)n, sizeof(h_reply))};
	natsInbox *ib = NULL;
	natsSubscription *sub = NULL;
	char subj[256], wild[160], reply[180];
	int64_t end = h_now_ms() + wait_ms;

	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	for (int k = 0; k < n; k++)
		b.rep[k].s = NATS_TIMEOUT;
	cr_assert_eq(natsInbox_Create(&ib), NATS_OK);
	snprintf(wild, sizeof wild, "%s.*", (const char *)ib);
	cr_assert_eq(natsConnection_Subscribe(&sub, H.nc, wild, on_reply, &b), NATS_OK);
	natsSubscription_SetPendingLimits(sub, -1, -1);
	cr_assert_eq(natsConnection_Flush(H.nc), NATS_OK);
	snprintf(subj, sizeof subj, H_PREFIX ".append.%s.%s", type, id);
	for (int k = 0; k < n; k++) {
		snprintf(reply, sizeof reply, "%s.%d", (const char *)ib, k);
		cr_assert_eq(natsConnection_PublishRequestString(H.nc, subj, reply, bodies[k]),
			     NATS_OK);
	}
	natsConnection_Flush(H.nc);
	pthread_mutex_lock(&b.mu);
	while (b.got < (stop_after > 0 ? stop_after : n) && h_now_ms() < end) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&b.cv, &b.mu, &ts);
	}
	pthread_mutex_unlock(&b.mu);
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(ib);
	pthread_mutex_lock(&b.mu); /* a late callback may still be running */
	pthread_mutex_unlock(&b.mu);
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.mu);
	return b.rep;
}

static void replies_free(h_reply *r, int n)
{
	for (int k = 0; k < n; k++)
		h_reply_free(&r[k]);
	free(r);
}

/* An append body of nev events with event_ids <tag>-<k>-<i>, data pad
 * bytes long, expected as given (a JSON value or NULL for none). */
static char *body(const char *tag, int k, int nev, int pad, const char *expected)
{
	size_t cap = 256 + (size_t)nev * ((size_t)pad + 200);
	char *b = malloc(cap), *p = b;
	char *fill = malloc((size_t)pad + 1);

	memset(fill, 'x', (size_t)pad);
	fill[pad] = '\0';
	p += sprintf(p, "{%s%s%s\"events\":[", expected ? "\"expected_version\":" : "",
		     expected ? expected : "", expected ? "," : "");
	for (int i = 0; i < nev; i++)
		p += sprintf(p, "%s{\"event_type\":\"%s\",\"event_id\":\"%s-%d-%d\","
			     "\"data\":{\"k\":%d,\"i\":%d,\"pad\":\"%s\"}}",
			     i ? "," : "", i % 2 ? "Odd" : "Even", tag, k, i, k, i, fill);
	sprintf(p, "]}");
	free(fill);
	return b;
}

static json_int_t reply_int(const h_reply *r, const char *key)
{
	return json_integer_value(json_object_get(r->json, key));
}

static json_int_t info_counter(const char *name)
{
	h_reply r;
	h_request(&r, H_PREFIX ".info", "{}", 2);
	cr_assert_eq(r.status, 200, "%s", r.body ? r.body : "(no reply)");
	json_int_t v = json_integer_value(json_object_get(json_object_get(r.json, "counters"), name));
	h_reply_free(&r);
	return v;
}

/* ---- the stream, read raw --------------------------------------------------------- */

struct stored {
	uint64_t seq, version;
	char cid[CIM_CID_TEXT_MAX];
	char eid[96];
	int bidx, bcount;
};

/* Every stored event of type/id in stream order, checked: versions 1..n
 * once each in order, prev the CID of the one before, whole batches.
 * Returns n; *out (may be NULL) gets them (free it). */
static int check_stream(const char *type, const char *id, struct stored **out)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	char prefix[256], prev[CIM_CID_TEXT_MAX] = "";
	struct stored *s = NULL;
	int n = 0, open_batch = 0;

	cr_assert_eq(js_GetStreamInfo(&si, H.js, H_STREAM, NULL, &je), NATS_OK);
	uint64_t last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	snprintf(prefix, sizeof prefix, "events.%s.%s.", type, id);
	s = calloc(last + 1, sizeof *s);
	for (uint64_t seq = 1; seq <= last; seq++) {
		natsMsg *m = NULL;
		cim_event_block ev;
		char err[160], cid_text[CIM_CID_TEXT_MAX];
		cim_cid cid;
		if (js_GetMsg(&m, H.js, H_STREAM, seq, NULL, &je) != NATS_OK)
			continue; /* removed */
		if (strncmp(natsMsg_GetSubject(m), prefix, strlen(prefix)) != 0) {
			natsMsg_Destroy(m);
			continue;
		}
		const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
		size_t len = (size_t)natsMsg_GetDataLength(m);
		cr_assert_eq(cim_event_decode(p, len, &ev, err, sizeof err), 0, "seq %llu: %s",
			     (unsigned long long)seq, err);
		cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, p, len);
		cim_cid_to_text(&cid, cid_text);
		struct stored *x = &s[n];
		x->seq = seq;
		x->version = ev.version;
		snprintf(x->cid, sizeof x->cid, "%s", cid_text);
		snprintf(x->eid, sizeof x->eid, "%s", ev.event_id);
		const char *batch = h_header(m, "Cim-Batch");
		x->bidx = x->bcount = 1;
		if (batch)
			sscanf(batch, "%d/%d", &x->bidx, &x->bcount);
		cr_assert_eq(ev.version, (uint64_t)n + 1,
			     "%s/%s: seq %llu holds version %llu where %d was due", type, id,
			     (unsigned long long)seq, (unsigned long long)ev.version, n + 1);
		if (n == 0) {
			cr_assert_not(ev.has_prev, "version 1 has a prev");
		} else {
			char pt[CIM_CID_TEXT_MAX];
			cr_assert(ev.has_prev);
			cim_cid_to_text(&ev.prev, pt);
			cr_assert_str_eq(pt, prev, "%s/%s: version %llu does not link to %llu",
					 type, id, (unsigned long long)ev.version,
					 (unsigned long long)ev.version - 1);
		}
		/* batches whole: 1/c .. c/c in a row */
		if (open_batch == 0) {
			cr_assert_eq(x->bidx, 1, "version %llu starts a batch at %d/%d",
				     (unsigned long long)ev.version, x->bidx, x->bcount);
			open_batch = x->bcount - 1;
		} else {
			cr_assert_eq(x->bidx, s[n - 1].bidx + 1);
			cr_assert_eq(x->bcount, s[n - 1].bcount);
			open_batch--;
		}
		snprintf(prev, sizeof prev, "%s", cid_text);
		cim_event_block_free(&ev);
		natsMsg_Destroy(m);
		n++;
	}
	cr_assert_eq(open_batch, 0, "%s/%s: the last batch is torn", type, id);
	if (out)
		*out = s;
	else
		free(s);
	return n;
}

/* A successful reply's events are stored where it says. */
static void assert_reply_stored(const h_reply *r, const struct stored *s, int n)
{
	json_t *evs = json_object_get(r->json, "events");
	size_t i;
	json_t *e;

	json_array_foreach(evs, i, e) {
		json_int_t v = json_integer_value(json_object_get(e, "version"));
		cr_assert(v >= 1 && v <= n, "reply version %lld outside 1..%d", (long long)v, n);
		const struct stored *x = &s[v - 1];
		cr_assert_str_eq(json_string_value(json_object_get(e, "cid")), x->cid);
		cr_assert_eq((uint64_t)json_integer_value(json_object_get(e, "seq")), x->seq);
		cr_assert_str_eq(json_string_value(json_object_get(e, "event_id")), x->eid);
	}
}

static void assert_valid(const char *type, const char *id, uint64_t version)
{
	cim_validation v;
	cim_error err = {0};

	cr_assert_eq(cim_validate(H.client, type, id, &v, &err), CIM_ERR_OK, "%s", err.message);
	cr_assert(v.valid, "broken at %llu: %s", (unsigned long long)v.failure_version,
		  v.failure_reason);
	cr_assert_eq(v.version, version);
}

/* ---- the tests ------------------------------------------------------------------ */

/* 200 appends at once, batches of 1 to 3: every one answered success, at
 * versions in the order they were sent, chained behind one another. */
Test(pipeline, many_appends_at_once_are_chained_and_committed_in_order)
{
	enum { N = 200 };
	char *b[N];
	struct stored *s;
	int total = 0;

	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	for (int k = 0; k < N; k++)
		b[k] = body("m", k, k % 3 + 1, 40, k % 5 == 0 ? "\"any\"" : NULL);
	h_reply *r = burst("order", "hot", b, N, 60000, 0);
	json_int_t last = 0;
	for (int k = 0; k < N; k++) {
		cr_assert_eq(r[k].status, 200, "append %d: %s", k, r[k].body ? r[k].body : "none");
		json_int_t v = reply_int(&r[k], "version");
		cr_assert_eq(v, last + k % 3 + 1, "append %d answered version %lld after %lld", k,
			     (long long)v, (long long)last);
		last = v;
		total += k % 3 + 1;
	}
	cr_assert_eq(check_stream("order", "hot", &s), total);
	for (int k = 0; k < N; k++)
		assert_reply_stored(&r[k], s, total);
	cr_assert_gt(info_counter("appends_chained"), 0, "nothing was chained");
	assert_valid("order", "hot", (uint64_t)total);
	free(s);
	replies_free(r, N);
	for (int k = 0; k < N; k++)
		free(b[k]);
}

/* A chained append's expected version is decided when it is the oldest:
 * against the head the appends before it made, never against a head they
 * might have made. */
Test(pipeline, a_chained_expected_version_is_decided_as_if_it_had_waited)
{
	char *b[6] = {
		body("e", 0, 1, 10, "\"no_stream\""),
		body("e", 1, 1, 10, "0"),         /* the head is 1 by then */
		body("e", 2, 2, 10, "1"),         /* chained on 1: to 3 */
		body("e", 3, 1, 10, "1"),         /* 3 by then */
		body("e", 4, 1, 10, "\"exists\""), /* to 4 */
		body("e", 5, 1, 10, "4"),         /* to 5 */
	};
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	h_reply *r = burst("order", "ev", b, 6, 20000, 0);
	static const int status[6] = {200, 409, 200, 409, 200, 200};
	static const int version[6] = {1, 1, 3, 3, 4, 5}; /* or "current" */
	for (int k = 0; k < 6; k++) {
		cr_assert_eq(r[k].status, status[k], "append %d: %s", k, r[k].body);
		if (status[k] == 200)
			cr_assert_eq(reply_int(&r[k], "version"), version[k], "append %d", k);
		else
			cr_assert_eq(json_integer_value(json_object_get(
					     json_object_get(r[k].json, "error"), "current")),
				     version[k], "append %d: %s", k, r[k].body);
	}
	struct stored *s;
	cr_assert_eq(check_stream("order", "ev", &s), 5);
	free(s);
	replies_free(r, 6);
	for (int k = 0; k < 6; k++)
		free(b[k]);
}

/* An append in the middle of the chain that JetStream refuses (the
 * stream's max_msg_size): it is answered unavailable, nothing of it
 * stored, and the appends chained on it are taken back and stored again
 * as if they had waited. Several rounds, so that the chain behind the
 * refused one was surely in flight in some. */
Test(pipeline, an_append_refused_by_a_limit_takes_back_what_was_chained_on_it)
{
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	const char *subjects[] = {"events.>"};
	enum { ROUNDS = 6, N = 12, BIG = 3 };

	jsStreamConfig_Init(&sc);
	sc.Name = H_STREAM;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Duplicates = 120 * 1000000000LL;
	sc.AllowDirect = true;
	sc.MaxMsgSize = 4096;
	cr_assert_eq(js_AddStream(&si, H.js, &sc, NULL, &je), NATS_OK, "%d", (int)je);
	jsStreamInfo_Destroy(si);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);

	for (int round = 0; round < ROUNDS; round++) {
		char id[32], tag[16], *b[N];
		struct stored *s;
		snprintf(id, sizeof id, "lim-%d", round);
		snprintf(tag, sizeof tag, "l%d", round);
		for (int k = 0; k < N; k++)
			b[k] = body(tag, k, k % 2 + 1, k == BIG ? 6000 : 30, NULL);
		h_reply *r = burst("order", id, b, N, 30000, 0);
		json_int_t last = 0;
		int total = 0;
		for (int k = 0; k < N; k++) {
			if (k == BIG) {
				cr_assert_eq(r[k].status, 503, "the big one: %s", r[k].body);
				cr_assert_not_null(strstr(r[k].body, "nothing was stored"), "%s",
						   r[k].body);
				continue;
			}
			cr_assert_eq(r[k].status, 200, "append %d: %s", k, r[k].body);
			json_int_t v = reply_int(&r[k], "version");
			cr_assert_eq(v, last + k % 2 + 1, "append %d at %lld after %lld", k,
				     (long long)v, (long long)last);
			last = v;
			total += k % 2 + 1;
		}
		cr_assert_eq(check_stream("order", id, &s), total);
		for (int k = 0; k < N; k++)
			if (k != BIG)
				assert_reply_stored(&r[k], s, total);
		assert_valid("order", id, (uint64_t)total);
		free(s);
		replies_free(r, N);
		for (int k = 0; k < N; k++)
			free(b[k]);
	}
	/* the chain behind the refused one was in flight, taken back, run again */
	cr_assert_gt(info_counter("appends_rerun"), 0, "no chained append was run again");
	cr_assert_eq(js_GetStreamInfo(&si, H.js, H_STREAM, NULL, &je), NATS_OK);
	cr_assert_gt(si->State.NumDeleted, 0, "nothing was taken back");
	jsStreamInfo_Destroy(si);
}

/* A chained append that fails its own checks (over max_event_bytes) is
 * answered when it is the oldest; the ones behind it go on. */
Test(pipeline, a_chained_append_over_a_limit_is_answered_in_its_turn)
{
	enum { N = 9, BIG = 4 };
	char *b[N];

	H.daemon = h_daemon_start(&H.nats, "--max-event-bytes", "2048", (char *)NULL);
	cr_assert_gt(H.daemon, 0);
	for (int k = 0; k < N; k++)
		b[k] = body("t", k, 1, k == BIG ? 4000 : 30, NULL);
	h_reply *r = burst("order", "big", b, N, 20000, 0);
	for (int k = 0; k < N; k++) {
		if (k == BIG) {
			cr_assert_eq(r[k].status, 413, "%s", r[k].body);
			continue;
		}
		cr_assert_eq(r[k].status, 200, "append %d: %s", k, r[k].body);
		cr_assert_eq(reply_int(&r[k], "version"), k < BIG ? k + 1 : k);
	}
	struct stored *s;
	cr_assert_eq(check_stream("order", "big", &s), N - 1);
	free(s);
	replies_free(r, N);
	for (int k = 0; k < N; k++)
		free(b[k]);
}

/* A retry of an append sent while the append is still in flight, chained
 * or not: answered with the original reply, stored once; the same
 * event_id with other content is duplicate_event. */
Test(pipeline, a_retry_of_a_chained_append_gets_the_original_reply)
{
	enum { N = 40 };
	char *b[N + 2];

	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	for (int k = 0; k < N; k++)
		b[k] = body("r", k, k % 2 + 1, 20, NULL);
	b[N] = body("r", 7, 7 % 2 + 1, 20, NULL);    /* append 7 again */
	b[N + 1] = body("r", 9, 9 % 2 + 1, 21, NULL); /* 9's ids, other data */
	h_reply *r = burst("order", "retry", b, N + 2, 30000, 0);
	int total = 0;
	for (int k = 0; k < N; k++) {
		cr_assert_eq(r[k].status, 200, "append %d: %s", k, r[k].body);
		total += k % 2 + 1;
	}
	cr_assert_eq(r[N].status, 200, "%s", r[N].body);
	cr_assert_str_eq(r[N].body, r[7].body, "the retry's reply is not the original's");
	cr_assert_eq(r[N + 1].status, 409, "%s", r[N + 1].body);
	cr_assert_str_eq(h_error_code(&r[N + 1]), "duplicate_event");
	struct stored *s;
	cr_assert_eq(check_stream("order", "retry", &s), total, "the retry stored again");
	free(s);
	replies_free(r, N + 2);
	for (int k = 0; k < N + 2; k++)
		free(b[k]);
}

/* The daemon killed (SIGKILL) with a chain in flight: after a restart every
 * acknowledged append is where its reply said, every other one is there
 * whole or not at all, and a retry of each with the same event_ids is
 * answered success, storing nothing twice. */
Test(pipeline, the_daemon_killed_with_a_chain_in_flight_keeps_every_acknowledged_append)
{
	enum { ROUNDS = 3, N = 300 };

	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	for (int round = 0; round < ROUNDS; round++) {
		char id[32], tag[16], *b[N];
		struct stored *s;
		snprintf(id, sizeof id, "kill-%d", round);
		snprintf(tag, sizeof tag, "k%d", round);
		for (int k = 0; k < N; k++)
			b[k] = body(tag, k, k % 3 + 1, 30, NULL);
		/* kill after some replies, with many still in flight */
		h_reply *r = burst("order", id, b, N, 30000, 20 + 40 * round);
		h_daemon_kill9(H.daemon);
		H.daemon = h_daemon_start(&H.nats, NULL);
		cr_assert_gt(H.daemon, 0);
		int n = check_stream("order", id, &s), acked = 0;
		for (int k = 0; k < N; k++)
			if (r[k].status == 200) {
				assert_reply_stored(&r[k], s, n);
				acked++;
			}
		/* every append stored whole or not at all: its event_ids */
		for (int k = 0; k < N; k++) {
			int present = 0;
			for (int i = 0; i < k % 3 + 1; i++) {
				char eid[96];
				snprintf(eid, sizeof eid, "%s-%d-%d", tag, k, i);
				for (int j = 0; j < n; j++)
					present += strcmp(s[j].eid, eid) == 0;
			}
			cr_assert(present == 0 || present == k % 3 + 1,
				  "append %d: %d of its %d events stored", k, present, k % 3 + 1);
		}
		free(s);
		/* every one retried: success, and nothing stored twice */
		h_reply *again = burst("order", id, b, N, 60000, 0);
		int total = 0;
		for (int k = 0; k < N; k++) {
			cr_assert_eq(again[k].status, 200, "retry of %d: %s", k,
				     again[k].body ? again[k].body : "none");
			if (r[k].status == 200)
				cr_assert_str_eq(again[k].body, r[k].body, "retry of %d", k);
			total += k % 3 + 1;
		}
		cr_assert_eq(check_stream("order", id, &s), total);
		for (int k = 0; k < N; k++)
			assert_reply_stored(&again[k], s, total);
		assert_valid("order", id, (uint64_t)total);
		cr_assert(acked < N, "round %d: everything was answered before the kill", round);
		cr_log_info("round %d: %d of %d appends acknowledged before the kill, %d events "
			    "stored then", round, acked, N, n);
		free(s);
		replies_free(r, N);
		replies_free(again, N);
		for (int k = 0; k < N; k++)
			free(b[k]);
	}
}

/* append_pipeline 1: one append of an aggregate at a time, nothing chained. */
Test(pipeline, append_pipeline_1_chains_nothing)
{
	enum { N = 50 };
	char *b[N];

	H.daemon = h_daemon_start(&H.nats, "--append-pipeline", "1", (char *)NULL);
	cr_assert_gt(H.daemon, 0);
	for (int k = 0; k < N; k++)
		b[k] = body("o", k, 1, 10, NULL);
	h_reply *r = burst("order", "one", b, N, 30000, 0);
	for (int k = 0; k < N; k++) {
		cr_assert_eq(r[k].status, 200, "append %d: %s", k, r[k].body);
		cr_assert_eq(reply_int(&r[k], "version"), k + 1);
	}
	cr_assert_eq(info_counter("appends_chained"), 0);
	cr_assert_eq(check_stream("order", "one", NULL), N);
	replies_free(r, N);
	for (int k = 0; k < N; k++)
		free(b[k]);
}
