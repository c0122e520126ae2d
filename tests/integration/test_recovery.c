/*
 * test_recovery.c: how the daemon gets its heads back, and who writes.
 *
 * Start-up reads the heads checkpoint in CIM-HEADS and replays only the
 * stream after it; a damaged or stale checkpoint gives way to a full scan,
 * and the log says which happened. A batch torn after the checkpoint is
 * removed before anything is served; a retry of an append stored before
 * the checkpoint is still recognised. Two daemons on one stream: the one
 * holding the lease in CIM-LEASE serves, the other waits and takes over
 * when the first dies or stops; a daemon whose lease is taken stops
 * serving until it holds it again.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(recovery, .init = h_setup, .fini = h_teardown, .timeout = 120);

struct agg {
	const char *id;
	cim_head head;
};

static void heads_of(struct agg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cim_error err = {0};
		cr_assert_eq(cim_get_head(H.client, "acct", a[i].id, &a[i].head, &err),
			     CIM_ERR_OK, "head %s: %s", a[i].id, err.message);
	}
}

static void assert_heads(const struct agg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cim_head now;
		cim_error err = {0};
		cim_validation v;
		cr_assert_eq(cim_get_head(H.client, "acct", a[i].id, &now, &err), CIM_ERR_OK,
			     "head %s: %s", a[i].id, err.message);
		cr_assert_eq(now.version, a[i].head.version, "%s: version %llu, was %llu",
			     a[i].id, (unsigned long long)now.version,
			     (unsigned long long)a[i].head.version);
		cr_assert_str_eq(now.head, a[i].head.head, "%s: head CID changed", a[i].id);
		cr_assert_eq(now.seq, a[i].head.seq);
		cr_assert_eq(cim_validate(H.client, "acct", a[i].id, &v, &err), CIM_ERR_OK);
		cr_assert(v.valid, "%s: %s", a[i].id, v.failure_reason);
	}
}

static char *daemon_log(void)
{
	char *path = h_strf("%s/daemon.log", H.nats.dir);
	char *text = h_slurp(path);
	free(path);
	return text;
}

/* Waits up to ms for the daemon log to contain what (counting from byte
 * `from`, so earlier runs do not count); returns the line, or NULL. */
static char *wait_log(const char *what, size_t from, int ms)
{
	int64_t end = h_now_ms() + ms;
	do {
		char *text = daemon_log();
		char *at = strlen(text) > from ? strstr(text + from, what) : NULL;
		if (at != NULL) {
			while (at > text && at[-1] != '\n')
				at--; /* the whole line */
			char *nl = strchr(at, '\n');
			char *line = h_strf("%.*s", nl ? (int)(nl - at) : (int)strlen(at), at);
			free(text);
			return line;
		}
		free(text);
		h_sleep_ms(50);
	} while (h_now_ms() < end);
	return NULL;
}

static size_t log_len(void)
{
	char *text = daemon_log();
	size_t n = strlen(text);
	free(text);
	return n;
}

static kvStore *heads_bucket(void)
{
	kvStore *kv = NULL;
	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-HEADS"), NATS_OK);
	return kv;
}

/* The checkpoint manifest, or NULL when there is none. */
static json_t *manifest(void)
{
	kvStore *kv = heads_bucket();
	kvEntry *e = NULL;
	json_t *m = NULL;
	if (kvStore_Get(&e, kv, "manifest") == NATS_OK) {
		m = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
		kvEntry_Destroy(e);
	}
	kvStore_Destroy(kv);
	return m;
}

static uint64_t manifest_seq(void)
{
	json_t *m = manifest();
	uint64_t seq = m ? (uint64_t)json_integer_value(json_object_get(m, "seq")) : 0;
	json_decref(m);
	return seq;
}

static uint64_t stream_last_seq(void)
{
	jsStreamInfo *si = NULL;
	cr_assert_eq(js_GetStreamInfo(&si, H.js, H_STREAM, NULL, NULL), NATS_OK);
	uint64_t last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return last;
}

static json_t *info(void)
{
	char *text = NULL;
	cim_error err = {0};
	cr_assert_eq(cim_info(H.client, &text, &err), CIM_ERR_OK, "%s", err.message);
	json_t *o = json_loads(text, 0, NULL);
	cim_free(text);
	cr_assert_not_null(o);
	return o;
}

static void restart(bool kill9)
{
	if (kill9)
		h_daemon_kill9(H.daemon);
	else
		cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0, "the daemon did not start again");
}

Test(recovery, a_clean_stop_leaves_a_checkpoint_that_start_up_reads)
{
	struct agg a[] = {{"a-1", {0}}, {"a-2", {0}}, {"a-3", {0}}, {"a-4", {0}}};
	for (size_t i = 0; i < 4; i++)
		free(h_append_n("acct", a[i].id, (int)i + 3));
	heads_of(a, 4);
	size_t from = log_len();
	restart(false);

	cr_assert_eq(manifest_seq(), stream_last_seq(), "the checkpoint is as of the last event");
	char *line = wait_log("heads loaded", from, 1000);
	cr_assert_not_null(line);
	cr_assert(strstr(line, "from the checkpoint at seq 18") != NULL, "%s", line);
	cr_assert(strstr(line, "then 0 event(s) replayed") != NULL, "%s", line);
	free(line);
	assert_heads(a, 4);

	json_t *o = info();
	const char *how = json_string_value(
		json_object_get(json_object_get(o, "counters"), "startup_heads_from"));
	cr_assert(how && strncmp(how, "checkpoint at seq 18", 20) == 0, "%s", how);
	json_decref(o);
	/* and the chain goes on from the loaded head */
	cim_append_result_destroy(h_append1("acct", "a-4", 6, "After", "{}"));
}

Test(recovery, kill9_after_a_checkpoint_replays_only_the_events_after_it)
{
	struct agg a[] = {{"b-1", {0}}, {"b-2", {0}}, {"b-3", {0}}};

	/* a checkpoint every 10 events */
	h_daemon_stop(H.daemon);
	setenv("CIM_EVENTS_HEADS_CHECKPOINT_EVENTS", "10", 1);
	H.daemon = h_daemon_start(&H.nats, NULL);
	unsetenv("CIM_EVENTS_HEADS_CHECKPOINT_EVENTS");
	for (size_t i = 0; i < 3; i++)
		free(h_append_n("acct", a[i].id, 8));
	int64_t end = h_now_ms() + 5000;
	while (manifest_seq() < 20 && h_now_ms() < end)
		h_sleep_ms(50);
	uint64_t cp = manifest_seq();
	cr_assert_geq(cp, 20, "a checkpoint was written (seq %llu)", (unsigned long long)cp);
	h_sleep_ms(1200); /* any checkpoint due from the last appends is written */
	cp = manifest_seq();
	uint64_t last = stream_last_seq();
	/* fewer than 10 more: no checkpoint of them */
	free(h_append_n("acct", "b-1", 4));
	free(h_append_n("acct", "b-4", 3));
	heads_of(a, 3);
	size_t from = log_len();
	restart(true);

	cr_assert_eq(manifest_seq(), cp, "nothing wrote a checkpoint since");
	char *line = wait_log("heads loaded", from, 1000);
	cr_assert_not_null(line);
	char *want = h_strf("from the checkpoint at seq %llu", (unsigned long long)cp);
	cr_assert(strstr(line, want) != NULL, "%s", line);
	free(want);
	want = h_strf("then %llu event(s) replayed", (unsigned long long)(last - cp + 7));
	cr_assert(strstr(line, want) != NULL, "wanted '%s' in %s", want, line);
	free(want);
	free(line);
	assert_heads(a, 3);
	struct agg b4 = {"b-4", {0}};
	heads_of(&b4, 1);
	cr_assert_eq(b4.head.version, 3);
}

Test(recovery, a_damaged_checkpoint_gives_way_to_a_full_scan)
{
	struct agg a[] = {{"c-1", {0}}, {"c-2", {0}}};
	free(h_append_n("acct", "c-1", 5));
	free(h_append_n("acct", "c-2", 2));
	heads_of(a, 2);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);

	json_t *m = manifest();
	cr_assert_not_null(m);
	char *key = h_strf("chunk.%s.0", json_string_value(json_object_get(m, "slot")));
	json_decref(m);
	kvStore *kv = heads_bucket();
	cr_assert_eq(kvStore_PutString(NULL, kv, key, "CIMHEAD1 but not what was written"),
		     NATS_OK);
	kvStore_Destroy(kv);
	free(key);

	size_t from = log_len();
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	char *line = wait_log("heads loaded", from, 1000);
	cr_assert_not_null(line);
	cr_assert(strstr(line, "full scan (the checkpoint's chunks do not match its checksum)"),
		  "%s", line);
	free(line);
	assert_heads(a, 2);
}

Test(recovery, a_checkpoint_of_a_deleted_stream_is_not_believed)
{
	free(h_append_n("acct", "d-1", 6));
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	cr_assert_gt(manifest_seq(), 0);
	cr_assert_eq(js_DeleteStream(H.js, H_STREAM, NULL, NULL), NATS_OK);

	/* a new stream (created by the next daemon) with fewer events */
	H.daemon = h_daemon_start(&H.nats, NULL);
	free(h_append_n("acct", "d-2", 2));
	h_daemon_kill9(H.daemon); /* no checkpoint of the new stream */

	size_t from = log_len();
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	char *line = wait_log("heads loaded", from, 1000);
	cr_assert_not_null(line);
	cr_assert(strstr(line, "full scan (the checkpoint is of another stream"), "%s", line);
	free(line);
	struct agg d2 = {"d-2", {0}};
	heads_of(&d2, 1);
	cr_assert_eq(d2.head.version, 2);
	cim_head h;
	cim_error err = {0};
	cr_assert_eq(cim_get_head(H.client, "acct", "d-1", &h, &err), CIM_ERR_OK);
	cr_assert_eq(h.version, 0, "d-1 was in the deleted stream only");
}

/* Publishes the block of acct/id at version (prev: text or NULL) with a
 * Cim-Batch header; returns its CID in cid. */
static void publish_raw(const char *id, uint64_t version, const char *prev,
			const char *batch, char cid[CIM_CID_TEXT_MAX])
{
	cim_event_block b = {0};
	cbuf out = CBUF_INIT;
	char eid[64], why[200], *subject;
	natsMsg *m = NULL;
	jsPubAck *ack = NULL;
	cim_cid c;

	snprintf(eid, sizeof eid, "torn-%s-%llu", id, (unsigned long long)version);
	b.aggregate_type = "acct";
	b.aggregate_id = (char *)id;
	b.version = version;
	b.event_type = "Torn";
	b.event_id = eid;
	b.correlation_id = eid;
	b.causation_id = eid;
	b.timestamp = "2026-11-22T10:00:00.000000001Z";
	b.metadata = json_object();
	b.data = json_object();
	if (prev != NULL) {
		b.has_prev = true;
		cr_assert_eq(cim_cid_from_text(&b.prev, prev), 0);
	}
	cr_assert_eq(cim_event_encode(&b, &out, why, sizeof why), 0, "%s", why);
	json_decref(b.metadata);
	json_decref(b.data);
	cim_cid_compute(&c, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, out.p, out.len);
	cim_cid_to_text(&c, cid);
	subject = h_strf("events.acct.%s.Torn", id);
	cr_assert_eq(natsMsg_Create(&m, subject, NULL, (const char *)out.p, (int)out.len),
		     NATS_OK);
	natsMsgHeader_Set(m, "Cim-Batch", batch);
	natsMsgHeader_Set(m, "Cim-Cid", cid);
	cr_assert_eq(js_PublishMsg(&ack, H.js, m, NULL, NULL), NATS_OK);
	jsPubAck_Destroy(ack);
	natsMsg_Destroy(m);
	free(subject);
	cbuf_free(&out);
}

Test(recovery, a_batch_torn_after_the_checkpoint_is_removed_before_serving)
{
	struct agg a = {"t-1", {0}};
	char c3[CIM_CID_TEXT_MAX], c4[CIM_CID_TEXT_MAX];

	free(h_append_n("acct", "t-1", 2));
	heads_of(&a, 1);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	uint64_t msgs = h_stream_msgs();
	/* two of a three-event batch, as a crash between publishes leaves them */
	publish_raw("t-1", 3, a.head.head, "1/3", c3);
	publish_raw("t-1", 4, c3, "2/3", c4);
	cr_assert_eq(h_stream_msgs(), msgs + 2);

	size_t from = log_len();
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	char *line = wait_log("torn", from, 1000);
	cr_assert_not_null(line, "the daemon says it removed a torn batch");
	cr_assert(strstr(line, "removed 2 event(s) of a torn batch"), "%s", line);
	free(line);
	line = wait_log("heads loaded from the checkpoint", from, 1000);
	cr_assert_not_null(line);
	free(line);
	cr_assert_eq(h_stream_msgs(), msgs, "the torn part is gone from the stream");
	assert_heads(&a, 1);
	cim_event_page *p = NULL;
	cim_error err = {0};
	cr_assert_eq(cim_get(H.client, "acct", "t-1", 1, 100, &p, &err), CIM_ERR_OK);
	cr_assert_eq(p->n_events, 2);
	cim_event_page_destroy(p);
	cim_append_result *r = h_append1("acct", "t-1", 2, "After", "{}");
	cr_assert_eq(r->version, 3);
	cim_append_result_destroy(r);
}

Test(recovery, a_retry_of_an_append_before_the_checkpoint_is_still_recognised)
{
	cim_new_event evs[2] = {
		{.event_type = "Opened", .data_json = "{\"n\":1}", .event_id = "retry-e1"},
		{.event_type = "Credited", .data_json = "{\"n\":2}", .event_id = "retry-e2"},
	};
	cim_append_result *r1 = NULL, *r2 = NULL;
	cim_error err = {0};

	cr_assert_eq(cim_append(H.client, "acct", "r-1", 0, evs, 2, &r1, &err), CIM_ERR_OK,
		     "%s", err.message);
	/* the retried append is no longer the head's */
	cim_append_result_destroy(h_append1("acct", "r-1", 2, "Debited", "{}"));
	restart(false);
	cr_assert_eq(manifest_seq(), 3);

	cr_assert_eq(cim_append(H.client, "acct", "r-1", 0, evs, 2, &r2, &err), CIM_ERR_OK,
		     "the retry is answered as the original: %s: %s", cim_err_name(err.code),
		     err.message);
	cr_assert_eq(r2->version, r1->version);
	cr_assert_str_eq(r2->head, r1->head);
	cr_assert_eq(h_stream_msgs(), 3, "nothing was stored twice");
	cim_append_result_destroy(r1);
	cim_append_result_destroy(r2);
}

/* ---- two daemons ------------------------------------------------------------------ */

static const char *holder(void)
{
	static char buf[200];
	json_t *o = info();
	const char *h = json_string_value(json_object_get(json_object_get(o, "writer"), "holder"));
	cr_assert_not_null(h);
	snprintf(buf, sizeof buf, "%s", h);
	json_decref(o);
	return buf;
}

/* Appends until one succeeds (up to ms); returns how long it took. */
static int64_t append_until_served(const char *id, int ms)
{
	int64_t t0 = h_now_ms();
	cim_client *c = h_client_new(300);
	for (;;) {
		cim_new_event ev = {.event_type = "Ping", .data_json = "{}"};
		cim_append_result *r = NULL;
		cim_error err = {0};
		if (cim_append(c, "acct", id, CIM_EXPECT_ANY, &ev, 1, &r, &err) == CIM_ERR_OK) {
			cim_append_result_destroy(r);
			break;
		}
		cr_assert_lt(h_now_ms() - t0, ms, "no daemon served within %d ms (last: %s)", ms,
			     cim_err_name(err.code));
		h_sleep_ms(20);
	}
	cim_client_destroy(c);
	return h_now_ms() - t0;
}

Test(recovery, a_standby_serves_nothing_and_takes_over_when_the_active_one_dies)
{
	free(h_append_n("acct", "s-1", 5));
	const char *first = holder();
	char active[200];
	snprintf(active, sizeof active, "%s", first);
	pid_t standby = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(standby, 0);
	cr_assert_not_null(wait_log("standby: the writer lease is held by", 0, 3000));

	/* every answer comes from the active daemon */
	for (int i = 0; i < 20; i++)
		cr_assert_str_eq(holder(), active);
	free(h_append_n("acct", "s-1", 5));
	cr_assert_eq(h_stream_msgs(), 10);

	h_daemon_kill9(H.daemon);
	H.daemon = standby;
	int64_t took = append_until_served("s-2", 15000);
	cr_log_info("standby served %lld ms after the active daemon was killed", (long long)took);
	cr_assert_lt(took, 8000, "took over in %lld ms", (long long)took);
	cr_assert_str_neq(holder(), active);

	struct agg a = {"s-1", {0}};
	heads_of(&a, 1);
	cr_assert_eq(a.head.version, 10, "the standby's heads have the dead one's appends");
	cim_append_result *r = h_append1("acct", "s-1", 10, "After", "{}");
	cr_assert_eq(r->version, 11);
	cim_append_result_destroy(r);
	heads_of(&a, 1);
	assert_heads(&a, 1);
}

Test(recovery, a_stopping_daemon_gives_its_lease_to_the_standby_at_once)
{
	pid_t standby = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(standby, 0);
	cr_assert_not_null(wait_log("standby:", 0, 3000));
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = standby;
	int64_t took = append_until_served("g-1", 10000);
	cr_assert_lt(took, 2000, "the lease was given back, not waited out (%lld ms)",
		     (long long)took);
}

Test(recovery, a_daemon_whose_lease_is_taken_stops_serving_until_it_holds_it_again)
{
	kvStore *kv = NULL;
	uint64_t rev = 0;

	free(h_append_n("acct", "l-1", 3));
	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-LEASE"), NATS_OK);
	/* someone else takes the lease (as if ours had run out) */
	cr_assert_eq(kvStore_Purge(kv, "writer.CIM-EVENTS", NULL), NATS_OK);
	cr_assert_eq(kvStore_Create(&rev, kv, "writer.CIM-EVENTS", "{\"holder\":\"test\"}", 17),
		     NATS_OK);
	char *line = wait_log("the writer lease was taken over", 0, 5000);
	cr_assert_not_null(line, "the daemon noticed at its next renewal");
	free(line);
	cr_assert_not_null(wait_log("stopped serving requests", 0, 2000));

	/* meanwhile the other writer appends */
	h_reply r;
	h_requestf(&r, "{}", "%s.head.acct.l-1", H_PREFIX);
	cr_assert_eq(r.s, NATS_NO_RESPONDERS, "a daemon without the lease serves nothing");
	h_reply_free(&r);
	char prev[CIM_CID_TEXT_MAX], c4[CIM_CID_TEXT_MAX];
	cim_head h;
	{
		/* the head as stored: read it through the stream */
		natsMsg *m = NULL;
		cr_assert_eq(js_GetLastMsg(&m, H.js, H_STREAM, "events.acct.l-1.Counted", NULL, NULL),
			     NATS_OK);
		cim_cid c;
		cim_cid_compute(&c, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256,
				(const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
		cim_cid_to_text(&c, prev);
		natsMsg_Destroy(m);
	}
	publish_raw("l-1", 4, prev, "1/1", c4);

	/* the other writer goes away: ours takes the lease again and reads
	 * what was written meanwhile before it serves */
	cr_assert_eq(kvStore_Purge(kv, "writer.CIM-EVENTS", NULL), NATS_OK);
	kvStore_Destroy(kv);
	append_until_served("l-2", 10000);
	cim_error err = {0};
	cr_assert_eq(cim_get_head(H.client, "acct", "l-1", &h, &err), CIM_ERR_OK);
	cr_assert_eq(h.version, 4, "the event written meanwhile is in the head");
	cr_assert_str_eq(h.head, c4);
	cr_assert_not_null(wait_log("caught up with", 0, 100));
}
