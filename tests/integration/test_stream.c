/*
 * test_stream.c: subscriptions read straight from JetStream: replays of
 * everything, one aggregate type, one aggregate and one event type, from
 * the start, a sequence or a time; live subscriptions; batches handed out
 * whole; blocks tampered with by writing to JetStream directly, reported
 * and then passed; batches that never complete, never handed out.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/harness.h"
#include "../../client/client.h"
#include "buf.h"

TestSuite(stream, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* One event as a test keeps it. */
typedef struct got {
	char type[32];
	char id[64];
	char evtype[32];
	uint64_t version;
	uint64_t seq;
	char cid[CIM_CID_TEXT_MAX];
	char prev[CIM_CID_TEXT_MAX];
} got;

static void keep(got *g, const cim_event *e)
{
	snprintf(g->type, sizeof(g->type), "%s", e->aggregate_type);
	snprintf(g->id, sizeof(g->id), "%s", e->aggregate_id);
	snprintf(g->evtype, sizeof(g->evtype), "%s", e->event_type);
	g->version = e->version;
	g->seq = e->seq;
	snprintf(g->cid, sizeof(g->cid), "%s", e->cid);
	snprintf(g->prev, sizeof(g->prev), "%s", e->prev ? e->prev : "");
}

/* Replays o (stop_at_end forced) into out, asserting no call fails;
 * returns how many events came, and the last progress in *p. */
static size_t replay(cim_subscribe_options o, got *out, size_t max,
		     cim_progress *p)
{
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;
	size_t n = 0;
	cim_err rc;

	o.stop_at_end = true;
	rc = cim_subscribe(H.client, &o, &s, &err);
	cr_assert_eq(rc, CIM_ERR_OK, "subscribe %s: %s: %s",
		     o.pattern ? o.pattern : "(default)", cim_err_name(rc),
		     err.message);
	for (;;) {
		rc = cim_subscription_next(s, 5000, &e, &err);
		cr_assert_eq(rc, CIM_ERR_OK, "next: %s: %s", cim_err_name(rc),
			     err.message);
		if (e == NULL)
			break;
		cr_assert_lt(n, max, "more events than expected");
		keep(&out[n++], e);
	}
	if (p != NULL)
		cim_subscription_progress(s, p);
	cim_subscription_close(s);
	return n;
}

/* Appends the events of types (a NULL-ended list) in one append. */
static cim_append_result *append(const char *type, const char *id,
				 const char *const *evtypes)
{
	cim_new_event evs[16];
	cim_append_result *r = NULL;
	cim_error err = {0};
	size_t n = 0;

	for (; evtypes[n] != NULL; n++)
		evs[n] = (cim_new_event){.event_type = evtypes[n],
					 .data_json = "{\"k\": 1}"};
	cr_assert_eq(cim_append(H.client, type, id, CIM_EXPECT_ANY, evs, n, &r,
				&err), CIM_ERR_OK, "append %s/%s: %s", type, id,
		     err.message);
	return r;
}

/* Five appends over three aggregates, one of them a batch of two:
 *   seq 1 order/o-1 v1 OrderPlaced
 *   seq 2 order/o-1 v2 ItemAdded  (batch 1/2)
 *   seq 3 order/o-1 v3 ItemAdded  (batch 2/2)
 *   seq 4 customer/c-1 v1 Registered
 *   seq 5 order/o-2 v1 OrderPlaced
 *   seq 6 order/o-1 v4 OrderShipped
 * The CIDs by seq go into cids[1..6]. */
static void store_six(char cids[7][CIM_CID_TEXT_MAX])
{
	static const char *const placed[] = {"OrderPlaced", NULL};
	static const char *const items[] = {"ItemAdded", "ItemAdded", NULL};
	static const char *const reg[] = {"Registered", NULL};
	static const char *const shipped[] = {"OrderShipped", NULL};
	struct {
		const char *type, *id;
		const char *const *evs;
	} plan[] = {{"order", "o-1", placed}, {"order", "o-1", items},
		    {"customer", "c-1", reg},  {"order", "o-2", placed},
		    {"order", "o-1", shipped}};

	for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++) {
		cim_append_result *r = append(plan[i].type, plan[i].id,
					      plan[i].evs);

		for (size_t k = 0; k < r->n_events; k++) {
			cr_assert_leq(r->events[k].seq, 6);
			strcpy(cids[r->events[k].seq], r->events[k].cid);
		}
		cim_append_result_destroy(r);
	}
}

static void expect(const got *g, uint64_t seq, const char *type,
		   const char *id, uint64_t version, const char *evtype,
		   char cids[7][CIM_CID_TEXT_MAX])
{
	cr_assert_eq(g->seq, seq, "want seq %llu, got %llu",
		     (unsigned long long)seq, (unsigned long long)g->seq);
	cr_assert_str_eq(g->type, type);
	cr_assert_str_eq(g->id, id);
	cr_assert_eq(g->version, version);
	cr_assert_str_eq(g->evtype, evtype);
	cr_assert_str_eq(g->cid, cids[seq]);
}

Test(stream, replay_everything_one_type_one_aggregate_one_event_type)
{
	char cids[7][CIM_CID_TEXT_MAX];
	got g[16];
	cim_progress p;
	size_t n;

	store_six(cids);

	n = replay((cim_subscribe_options){0}, g, 16, &p);
	cr_assert_eq(n, 6);
	expect(&g[0], 1, "order", "o-1", 1, "OrderPlaced", cids);
	expect(&g[1], 2, "order", "o-1", 2, "ItemAdded", cids);
	expect(&g[2], 3, "order", "o-1", 3, "ItemAdded", cids);
	expect(&g[3], 4, "customer", "c-1", 1, "Registered", cids);
	expect(&g[4], 5, "order", "o-2", 1, "OrderPlaced", cids);
	expect(&g[5], 6, "order", "o-1", 4, "OrderShipped", cids);
	cr_assert_str_eq(g[0].prev, "");
	cr_assert_str_eq(g[1].prev, cids[1]);
	cr_assert_str_eq(g[5].prev, cids[3]);
	cr_assert_eq(p.end_seq, 6);
	cr_assert_eq(p.seq, 6);
	cr_assert_eq(p.safe_seq, 6);
	cr_assert_eq(p.delivered, 6);
	cr_assert_eq(p.check_failures, 0);

	n = replay((cim_subscribe_options){.pattern = "events.order.>"}, g, 16,
		   NULL);
	cr_assert_eq(n, 5);
	expect(&g[0], 1, "order", "o-1", 1, "OrderPlaced", cids);
	expect(&g[3], 5, "order", "o-2", 1, "OrderPlaced", cids);
	expect(&g[4], 6, "order", "o-1", 4, "OrderShipped", cids);

	n = replay((cim_subscribe_options){.pattern = "events.order.o-1.>"}, g,
		   16, NULL);
	cr_assert_eq(n, 4);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(g[i].version, i + 1);
	expect(&g[3], 6, "order", "o-1", 4, "OrderShipped", cids);

	n = replay((cim_subscribe_options){.pattern = "events.*.*.OrderPlaced"},
		   g, 16, NULL);
	cr_assert_eq(n, 2);
	expect(&g[0], 1, "order", "o-1", 1, "OrderPlaced", cids);
	expect(&g[1], 5, "order", "o-2", 1, "OrderPlaced", cids);

	/* A batch seen through one event type: confirmed with the daemon. */
	n = replay((cim_subscribe_options){.pattern = "events.*.*.ItemAdded"},
		   g, 16, &p);
	cr_assert_eq(n, 2);
	expect(&g[0], 2, "order", "o-1", 2, "ItemAdded", cids);
	expect(&g[1], 3, "order", "o-1", 3, "ItemAdded", cids);
	cr_assert_eq(p.safe_seq, 3);
}

struct counter {
	size_t events;
	size_t progress_calls;
	uint64_t last_seq;
	cim_progress last;
	size_t stop_after; /* 0: never */
};

static int count_event(void *ctx, const cim_event *e)
{
	struct counter *c = ctx;

	cr_assert_gt(e->seq, c->last_seq, "stream order");
	c->last_seq = e->seq;
	c->events++;
	return c->stop_after != 0 && c->events >= c->stop_after;
}

static void count_progress(void *ctx, const cim_progress *p)
{
	struct counter *c = ctx;

	c->progress_calls++;
	c->last = *p;
}

Test(stream, replay_with_callbacks_reports_progress_and_stops_on_request)
{
	struct counter c = {0};
	cim_error err = {0};
	cim_err rc;

	for (int i = 0; i < 5; i++) {
		char id[16];
		char *head;

		snprintf(id, sizeof(id), "a-%d", i);
		head = h_append_n("acct", id, 10);
		free(head);
	}
	rc = cim_replay(H.client, NULL, count_event, count_progress, &c, &err);
	cr_assert_eq(rc, CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(c.events, 50);
	cr_assert_geq(c.progress_calls, 1);
	cr_assert_eq(c.last.delivered, 50);
	cr_assert_eq(c.last.safe_seq, 50);

	memset(&c, 0, sizeof(c));
	c.stop_after = 7;
	rc = cim_replay(H.client,
			&(cim_subscribe_options){.pattern = "events.acct.>"},
			count_event, NULL, &c, &err);
	cr_assert_eq(rc, CIM_ERR_HANDLER, "%s", cim_err_name(rc));
	cr_assert_eq(c.events, 7);
	cr_assert(strstr(err.message, "on_event") != NULL, "%s", err.message);

	rc = cim_replay(H.client, NULL, NULL, NULL, NULL, &err);
	cr_assert_eq(rc, CIM_ERR_INVALID_ARGUMENT);
}

Test(stream, replay_from_a_sequence_and_from_a_time)
{
	char cids[7][CIM_CID_TEXT_MAX];
	struct timespec ts;
	int64_t t;
	got g[16];
	size_t n;

	store_six(cids);
	n = replay((cim_subscribe_options){.start = CIM_START_SEQ,
					   .start_seq = 4},
		   g, 16, NULL);
	cr_assert_eq(n, 3);
	expect(&g[0], 4, "customer", "c-1", 1, "Registered", cids);
	expect(&g[2], 6, "order", "o-1", 4, "OrderShipped", cids);

	n = replay((cim_subscribe_options){.pattern = "events.order.>",
					   .start = CIM_START_SEQ,
					   .start_seq = 5},
		   g, 16, NULL);
	cr_assert_eq(n, 2);
	expect(&g[0], 5, "order", "o-2", 1, "OrderPlaced", cids);

	/* Past the end: nothing, at once. */
	n = replay((cim_subscribe_options){.start = CIM_START_SEQ,
					   .start_seq = 100},
		   g, 16, NULL);
	cr_assert_eq(n, 0);

	/* From a time between two appends (the server's clock is ours). */
	h_sleep_ms(50);
	clock_gettime(CLOCK_REALTIME, &ts);
	t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	h_sleep_ms(50);
	free(h_append_n("meter", "m-1", 3));
	n = replay((cim_subscribe_options){.start = CIM_START_TIME,
					   .start_time_ns = t},
		   g, 16, NULL);
	cr_assert_eq(n, 3, "from a time: %zu events", n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(g[i].id, "m-1");
		cr_assert_eq(g[i].version, i + 1);
		cr_assert_eq(g[i].seq, 7 + i);
	}
	n = replay((cim_subscribe_options){.pattern = "events.order.>",
					   .start = CIM_START_TIME,
					   .start_time_ns = t},
		   g, 16, NULL);
	cr_assert_eq(n, 0);
}

Test(stream, stop_at_end_on_an_empty_match_ends_at_once)
{
	int64_t t0 = h_now_ms();
	got g[4];

	/* An empty stream, then a stream without a match. */
	cr_assert_eq(replay((cim_subscribe_options){0}, g, 4, NULL), 0);
	free(h_append_n("order", "o-1", 2));
	cr_assert_eq(replay((cim_subscribe_options){.pattern =
							    "events.nothing.>"},
			    g, 4, NULL),
		     0);
	cr_assert_eq(replay((cim_subscribe_options){.pattern =
							    "events.*.*.Nope"},
			    g, 4, NULL),
		     0);
	/* Now, with stop_at_end: there is nothing to catch up with. */
	cr_assert_eq(replay((cim_subscribe_options){.start = CIM_START_NOW},
			    g, 4, NULL),
		     0);
	cr_assert_lt(h_now_ms() - t0, 3000, "the ends came at once");
}

Test(stream, refuses_bad_options_and_a_missing_stream)
{
	cim_subscription *s = NULL;
	cim_error err = {0};

	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){.pattern = "events.>.x"},
				   &s, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "pattern");
	cr_assert_null(s);
	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){.pattern = "events..x"},
				   &s, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){.stream = "NO-SUCH"},
				   &s, &err),
		     CIM_ERR_NOT_FOUND, "%s", err.message);
	cr_assert(strstr(err.message, "NO-SUCH") != NULL, "%s", err.message);
	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){.start = 9},
				   &s, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_eq(cim_subscribe(NULL, NULL, &s, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	/* patterns the stream cannot hold: outside events.>, or wider */
	static const char *const outside[] = {"orders.>", ">", "*.order.>", "events"};
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(cim_subscribe(H.client,
					   &(cim_subscribe_options){.pattern = outside[i]},
					   &s, &err),
			     CIM_ERR_INVALID_ARGUMENT, "%s: %s", outside[i], err.message);
		cr_assert_str_eq(err.field, "pattern");
		cr_assert_null(s);
	}
	/* and the narrowest ones are fine */
	static const char *const inside[] = {"events.a.b.C", "events.*.*.*", "events.a.>"};
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(cim_subscribe(H.client,
					   &(cim_subscribe_options){.pattern = inside[i]},
					   &s, &err),
			     CIM_ERR_OK, "%s: %s", inside[i], err.message);
		cim_subscription_close(s);
		s = NULL;
	}
}

Test(stream, live_subscription_sees_only_later_appends)
{
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;
	cim_progress p;
	cim_err rc;

	free(h_append_n("order", "o-1", 2));
	rc = cim_subscribe(H.client,
			   &(cim_subscribe_options){.start = CIM_START_NOW},
			   &s, &err);
	cr_assert_eq(rc, CIM_ERR_OK, "%s", err.message);
	rc = cim_subscription_next(s, 200, &e, &err);
	cr_assert_eq(rc, CIM_ERR_TIMEOUT, "%s", cim_err_name(rc));
	cr_assert_null(e);

	free(h_append_n("order", "o-1", 3));
	for (uint64_t v = 3; v <= 5; v++) {
		rc = cim_subscription_next(s, 5000, &e, &err);
		cr_assert_eq(rc, CIM_ERR_OK, "%s: %s", cim_err_name(rc),
			     err.message);
		cr_assert_not_null(e);
		cr_assert_eq(e->version, v);
		cr_assert_eq(e->seq, v);
		cr_assert_str_eq(e->aggregate_id, "o-1");
	}
	rc = cim_subscription_next(s, 200, &e, &err);
	cr_assert_eq(rc, CIM_ERR_TIMEOUT);
	cim_subscription_progress(s, &p);
	cr_assert_eq(p.end_seq, 2);
	cr_assert_eq(p.delivered, 3);
	cr_assert_eq(p.safe_seq, 5);
	cim_subscription_close(s);
}

/* A batch of five appended while a subscription is live comes whole and
 * in order, both through a pattern over whole aggregates and through one
 * event type (where the daemon confirms each event). */
Test(stream, a_batch_is_handed_out_whole_and_in_order)
{
	static const char *const five[] = {"Step", "Step", "Step", "Step",
					   "Step", NULL};
	cim_subscription *all = NULL, *steps = NULL;
	cim_append_result *r;
	cim_error err = {0};
	const cim_event *e;
	cim_err rc;

	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){.start = CIM_START_NOW},
				   &all, &err), CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){
					   .pattern = "events.*.*.Step",
					   .start = CIM_START_NOW},
				   &steps, &err), CIM_ERR_OK, "%s", err.message);
	r = append("job", "j-1", five);
	cim_append_result_destroy(append("job", "j-2", (const char *const[]){
							    "Other", NULL}));
	for (int k = 0; k < 2; k++) {
		cim_subscription *s = k == 0 ? all : steps;

		for (size_t i = 0; i < 5; i++) {
			rc = cim_subscription_next(s, 5000, &e, &err);
			cr_assert_eq(rc, CIM_ERR_OK, "%s: %s",
				     cim_err_name(rc), err.message);
			cr_assert_str_eq(e->aggregate_id, "j-1");
			cr_assert_eq(e->version, i + 1);
			cr_assert_str_eq(e->cid, r->events[i].cid);
		}
		if (k == 0) {
			rc = cim_subscription_next(s, 5000, &e, &err);
			cr_assert_eq(rc, CIM_ERR_OK, "%s", err.message);
			cr_assert_str_eq(e->aggregate_id, "j-2");
		}
		rc = cim_subscription_next(s, 100, &e, &err);
		cr_assert_eq(rc, CIM_ERR_TIMEOUT);
	}
	cim_append_result_destroy(r);
	cim_subscription_close(all);
	cim_subscription_close(steps);
}

/* ---- blocks written straight to JetStream ------------------------------------ */

/* Publishes an event block of type/id at version with event type evtype
 * and prev (text or NULL) on events.<type>.<id>.<evtype>, hashed with mh.
 * cid_hdr: the Cim-Cid header ("" for the true CID, NULL for none); batch:
 * the Cim-Batch header or NULL. The true CID goes into cid (may be NULL);
 * returns the stream sequence. */
static uint64_t publish_block_on(const char *on, const char *type,
				 const char *id, uint64_t version,
				 const char *evtype, const char *prev,
				 const char *data, uint64_t mh,
				 const char *cid_hdr, const char *batch,
				 char *cid);

static uint64_t publish_block(const char *type, const char *id,
			      uint64_t version, const char *evtype,
			      const char *prev, const char *data,
			      uint64_t mh, const char *cid_hdr,
			      const char *batch, char *cid)
{
	return publish_block_on(NULL, type, id, version, evtype, prev, data,
				mh, cid_hdr, batch, cid);
}

/* publish_block on the subject on (NULL: the block's own). */
static uint64_t publish_block_on(const char *on, const char *type,
				 const char *id, uint64_t version,
				 const char *evtype, const char *prev,
				 const char *data, uint64_t mh,
				 const char *cid_hdr, const char *batch,
				 char *cid)
{
	static int serial;
	cim_event_block b = {0};
	cbuf out = CBUF_INIT;
	char eid[64], text[CIM_CID_TEXT_MAX], *subject;
	natsMsg *m = NULL;
	jsPubAck *ack = NULL;
	jsErrCode je = 0;
	cim_cid c;
	char why[256];
	uint64_t seq;

	snprintf(eid, sizeof(eid), "raw-%d-%s-%llu", ++serial, id,
		 (unsigned long long)version);
	b.aggregate_type = (char *)type;
	b.aggregate_id = (char *)id;
	b.version = version;
	b.event_type = (char *)evtype;
	b.event_id = eid;
	b.correlation_id = eid;
	b.causation_id = eid;
	b.timestamp = "2026-01-02T03:04:05.000000006Z";
	b.metadata = json_object();
	b.data = json_loads(data, JSON_DECODE_ANY, NULL);
	cr_assert_not_null(b.data);
	if (prev != NULL) {
		b.has_prev = true;
		cr_assert_eq(cim_cid_from_text(&b.prev, prev), 0);
	}
	cr_assert_eq(cim_event_encode(&b, &out, why, sizeof(why)), 0, "%s",
		     why);
	json_decref(b.metadata);
	json_decref(b.data);
	cim_cid_compute(&c, CIM_CODEC_DAG_CBOR, mh, out.p, out.len);
	cim_cid_to_text(&c, text);
	if (cid != NULL)
		strcpy(cid, text);

	subject = on != NULL ? h_strf("%s", on)
			     : h_strf("events.%s.%s.%s", type, id, evtype);
	cr_assert_eq(natsMsg_Create(&m, subject, NULL, (const char *)out.p,
				    (int)out.len), NATS_OK);
	if (cid_hdr != NULL)
		natsMsgHeader_Set(m, "Cim-Cid", *cid_hdr ? cid_hdr : text);
	if (batch != NULL)
		natsMsgHeader_Set(m, "Cim-Batch", batch);
	cr_assert_eq(js_PublishMsg(&ack, H.js, m, NULL, &je), NATS_OK,
		     "js_PublishMsg: js error %d", (int)je);
	seq = ack->Sequence;
	jsPubAck_Destroy(ack);
	natsMsg_Destroy(m);
	free(subject);
	cbuf_free(&out);
	return seq;
}

/* A whole replay into out, recording failures (their message in why[i],
 * "" for events that passed). */
static size_t replay_checked(cim_subscribe_options o, got *out,
			     char why[][512], size_t max)
{
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;
	size_t n = 0;
	cim_err rc;

	o.stop_at_end = true;
	cr_assert_eq(cim_subscribe(H.client, &o, &s, &err), CIM_ERR_OK, "%s",
		     err.message);
	for (;;) {
		rc = cim_subscription_next(s, 5000, &e, &err);
		cr_assert(rc == CIM_ERR_OK || rc == CIM_ERR_CHECK_FAILED,
			  "%s: %s", cim_err_name(rc), err.message);
		if (rc == CIM_ERR_OK && e == NULL)
			break;
		cr_assert_not_null(e, "a failed check names its event");
		cr_assert_lt(n, max);
		keep(&out[n], e);
		snprintf(why[n], 512, "%s",
			 rc == CIM_ERR_OK ? "" : err.message);
		n++;
	}
	cim_subscription_close(s);
	return n;
}

Test(stream, a_block_whose_bytes_changed_is_reported_then_passed)
{
	char other[CIM_CID_TEXT_MAX], mine[CIM_CID_TEXT_MAX];
	char why[8][512];
	got g[8];
	uint64_t bad;
	size_t n;

	free(h_append_n("order", "o-1", 1));
	/* The header claims another block's CID: as if the stored bytes had
	 * been changed after the daemon hashed them. */
	publish_block("x", "y", 1, "Z", NULL, "{\"n\": 0}",
		      CIM_MH_BLAKE2B_256, NULL, NULL, other);
	bad = publish_block("x", "y2", 1, "Z", NULL, "{\"n\": 1}",
			    CIM_MH_BLAKE2B_256, other, NULL, mine);
	free(h_append_n("order", "o-1", 1));

	n = replay_checked((cim_subscribe_options){0}, g, why, 8);
	cr_assert_eq(n, 4);
	cr_assert_str_eq(why[0], "");
	cr_assert_str_eq(why[1], "", "no header: nothing to compare");
	cr_assert_eq(g[2].seq, bad);
	cr_assert_str_eq(g[2].id, "y2");
	cr_assert_str_eq(g[2].cid, mine, "the CID is the recomputed one");
	cr_assert(strstr(why[2], "hash_mismatch") != NULL, "%s", why[2]);
	cr_assert_str_eq(why[3], "", "the subscription goes on: %s", why[3]);
	cr_assert_str_eq(g[3].id, "o-1");
	cr_assert_eq(g[3].version, 2);

	/* no_check hands it out without a word. */
	n = replay_checked((cim_subscribe_options){.no_check = true}, g, why,
			   8);
	cr_assert_eq(n, 4);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(why[i], "", "%s", why[i]);
}

Test(stream, a_wrong_prev_is_reported_then_the_chain_goes_on)
{
	char c1[CIM_CID_TEXT_MAX], c2[CIM_CID_TEXT_MAX], c3[CIM_CID_TEXT_MAX];
	char stranger[CIM_CID_TEXT_MAX], why[8][512];
	cim_progress p;
	got g[8];
	size_t n;

	publish_block("acct", "elsewhere", 1, "Opened", NULL, "{}",
		      CIM_MH_BLAKE2B_256, "", NULL, stranger);
	publish_block("acct", "a-1", 1, "Opened", NULL, "{}",
		      CIM_MH_BLAKE2B_256, "", NULL, c1);
	publish_block("acct", "a-1", 2, "Booked", stranger, "{\"v\": 2}",
		      CIM_MH_BLAKE2B_256, "", NULL, c2);
	publish_block("acct", "a-1", 3, "Booked", c2, "{\"v\": 3}",
		      CIM_MH_BLAKE2B_256, "", NULL, c3);
	/* An old version again after the head: versions must increase. */
	publish_block("acct", "a-1", 2, "Booked", c1, "{\"v\": 22}",
		      CIM_MH_BLAKE2B_256, "", NULL, NULL);

	n = replay_checked((cim_subscribe_options){.pattern = "events.acct.a-1.>"},
			   g, why, 8);
	cr_assert_eq(n, 4);
	cr_assert_str_eq(why[0], "");
	cr_assert(strstr(why[1], "broken_link") != NULL, "%s", why[1]);
	cr_assert(strstr(why[1], c1) != NULL, "names what it should link to");
	cr_assert_eq(g[1].version, 2);
	cr_assert_str_eq(why[2], "", "v3 links to v2 as stored: %s", why[2]);
	cr_assert_str_eq(g[2].cid, c3);
	cr_assert(strstr(why[3], "version_order") != NULL, "%s", why[3]);

	n = replay_checked((cim_subscribe_options){.pattern = "events.acct.a-1.>",
						   .no_check = true},
			   g, why, 8);
	cr_assert_eq(n, 4);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(why[i], "");

	/* Progress counts the failures. */
	{
		cim_subscription *s = NULL;
		cim_error err = {0};
		const cim_event *e;

		cr_assert_eq(cim_subscribe(H.client,
					   &(cim_subscribe_options){
						   .pattern = "events.acct.>",
						   .stop_at_end = true},
					   &s, &err), CIM_ERR_OK);
		while (cim_subscription_next(s, 5000, &e, &err) !=
			       CIM_ERR_OK ||
		       e != NULL)
			;
		cim_subscription_progress(s, &p);
		cr_assert_eq(p.delivered, 3);
		cr_assert_eq(p.check_failures, 2);
		cr_assert_eq(p.safe_seq, 5);
		cim_subscription_close(s);
	}
}

Test(stream, a_store_hashing_with_sha2_256_passes)
{
	char c1[CIM_CID_TEXT_MAX], c2[CIM_CID_TEXT_MAX], why[4][512];
	got g[4];

	publish_block("s", "s-1", 1, "Made", NULL, "{}", CIM_MH_SHA2_256, "",
		      NULL, c1);
	publish_block("s", "s-1", 2, "Made", c1, "{}", CIM_MH_SHA2_256, "",
		      NULL, c2);
	cr_assert_eq(replay_checked((cim_subscribe_options){0}, g, why, 4), 2);
	cr_assert_str_eq(why[0], "", "%s", why[0]);
	cr_assert_str_eq(why[1], "", "%s", why[1]);
	cr_assert_str_eq(g[0].cid, c1);
	cr_assert_str_eq(g[1].cid, c2);
}

Test(stream, bytes_that_are_no_event_are_reported_even_without_checks)
{
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;

	h_stream_publish("events.junk.j-1.Bad", "not cbor", 8);
	free(h_append_n("order", "o-1", 1));
	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){.stop_at_end = true,
							    .no_check = true},
				   &s, &err), CIM_ERR_OK);
	cr_assert_eq(cim_subscription_next(s, 5000, &e, &err),
		     CIM_ERR_CHECK_FAILED);
	cr_assert_not_null(e);
	cr_assert_eq(e->seq, 1);
	cr_assert_str_eq(e->aggregate_type, "junk");
	cr_assert_str_eq(e->event_type, "Bad");
	cr_assert(strstr(err.message, "undecodable") != NULL, "%s",
		  err.message);
	cr_assert_eq(cim_subscription_next(s, 5000, &e, &err), CIM_ERR_OK);
	cr_assert_str_eq(e->aggregate_id, "o-1");
	cr_assert_eq(cim_subscription_next(s, 5000, &e, &err), CIM_ERR_OK);
	cr_assert_null(e);
	cim_subscription_close(s);
}

/* A batch whose last event never came is not handed out by a replay, and
 * the safe position stays before it; other aggregates go on past it. */
Test(stream, an_incomplete_batch_is_never_handed_out)
{
	char c1[CIM_CID_TEXT_MAX];
	cim_progress p;
	got g[8];
	uint64_t held;
	size_t n;

	free(h_append_n("order", "o-1", 1));
	held = publish_block("part", "p-1", 1, "Z", NULL, "{}",
			     CIM_MH_BLAKE2B_256, "", "1/2", c1);
	free(h_append_n("order", "o-1", 2));

	n = replay((cim_subscribe_options){0}, g, 8, &p);
	cr_assert_eq(n, 3);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(g[i].id, "o-1");
	cr_assert_eq(p.safe_seq, held - 1);
	cr_assert_eq(p.seq, 4);

	n = replay((cim_subscribe_options){.pattern = "events.part.>"}, g, 8,
		   &p);
	cr_assert_eq(n, 0);

	/* Through one event type the daemon is asked: it has no p-1. */
	n = replay((cim_subscribe_options){.pattern = "events.*.*.Z"}, g, 8,
		   &p);
	cr_assert_eq(n, 0);
	cr_assert_eq(p.safe_seq, held - 1);
}

/* A torn batch stored again (what the daemon does after a crash cut one
 * short): the torn part is dropped, the new one handed out. */
Test(stream, a_torn_batch_replaced_is_dropped)
{
	char c1[CIM_CID_TEXT_MAX], c1b[CIM_CID_TEXT_MAX], c2b[CIM_CID_TEXT_MAX];
	char why[8][512];
	got g[8];
	size_t n;

	publish_block("t", "t-1", 1, "Z", NULL, "{\"try\": 1}",
		      CIM_MH_BLAKE2B_256, "", "1/2", c1);
	publish_block("t", "t-1", 1, "Z", NULL, "{\"try\": 2}",
		      CIM_MH_BLAKE2B_256, "", "1/2", c1b);
	publish_block("t", "t-1", 2, "Z", c1b, "{\"try\": 2}",
		      CIM_MH_BLAKE2B_256, "", "2/2", c2b);
	n = replay_checked((cim_subscribe_options){0}, g, why, 8);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(g[0].cid, c1b);
	cr_assert_str_eq(g[1].cid, c2b);
	cr_assert_str_eq(why[0], "", "%s", why[0]);
	cr_assert_str_eq(why[1], "", "%s", why[1]);
}

/* A held event whose message is deleted (the daemon removing a torn batch
 * at its start) is let go, so the safe position moves on past it. */
Test(stream, a_held_event_deleted_from_the_stream_is_let_go)
{
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;
	cim_progress p;
	uint64_t held;

	held = publish_block("gone", "g-1", 1, "Z", NULL, "{}",
			     CIM_MH_BLAKE2B_256, "", "1/3", NULL);
	cr_assert_eq(cim_subscribe(H.client, NULL, &s, &err), CIM_ERR_OK);
	cr_assert_eq(cim_subscription_next(s, 300, &e, &err), CIM_ERR_TIMEOUT);
	cim_subscription_progress(s, &p);
	cr_assert_eq(p.safe_seq, held - 1);

	cr_assert_eq(js_DeleteMsg(H.js, H_STREAM, held, NULL, NULL), NATS_OK);
	free(h_append_n("order", "o-1", 1));
	cr_assert_eq(cim_subscription_next(s, 5000, &e, &err), CIM_ERR_OK,
		     "%s", err.message);
	cr_assert_str_eq(e->aggregate_id, "o-1");
	cim_subscription_progress(s, &p);
	cr_assert_eq(p.safe_seq, held - 1, "held at seq %llu: not looked up yet",
		     (unsigned long long)held);
	cr_assert_eq(cim_subscription_next(s, 3000, &e, &err), CIM_ERR_TIMEOUT);
	cim_subscription_progress(s, &p);
	cr_assert_eq(p.safe_seq, held + 1, "the deleted event was let go");
	cim_subscription_close(s);
}

/* ---- what the review found ---------------------------------------------------- */

/* Whole aggregates: what is left of a torn batch whose first events were
 * removed (their versions burned and stored again) is only its last
 * index, "2/2". It must not go out as if the batch were whole: the daemon
 * is asked, and it holds another event at that version (dropped) or none
 * (held, never handed out). */
Test(stream, a_torn_remnant_without_its_start_is_not_handed_out)
{
	char c1[CIM_CID_TEXT_MAX], c2[CIM_CID_TEXT_MAX], c3[CIM_CID_TEXT_MAX];
	char remnant[CIM_CID_TEXT_MAX], why[8][512];
	cim_new_event two[2] = {{.event_type = "Z", .data_json = "{\"r\":2}"},
				{.event_type = "Z", .data_json = "{\"r\":2}"}};
	cim_append_result *r = NULL;
	cim_error err = {0};
	cim_progress p;
	uint64_t held;
	got g[8];
	size_t n;

	r = h_append1("t", "t-1", 0, "Z", "{}");
	strcpy(c1, r->events[0].cid);
	cim_append_result_destroy(r);
	cr_assert_eq(cim_append(H.client, "t", "t-1", 1, two, 2, &r, &err),
		     CIM_ERR_OK, "%s", err.message);
	strcpy(c2, r->events[0].cid);
	strcpy(c3, r->events[1].cid);
	cim_append_result_destroy(r);
	publish_block("t", "t-1", 3, "Z", c2, "{\"r\":1}", CIM_MH_BLAKE2B_256,
		      "", "2/2", remnant);
	held = publish_block("t", "t-1", 5, "Z", c3, "{\"r\":1}",
			     CIM_MH_BLAKE2B_256, "", "3/3", NULL);

	n = replay_checked((cim_subscribe_options){.pattern = "events.t.>"}, g,
			   why, 8);
	cr_assert_eq(n, 3, "%zu events: the last v%llu seq %llu %s", n,
		     (unsigned long long)g[n - 1].version,
		     (unsigned long long)g[n - 1].seq, why[n - 1]);
	cr_assert_str_eq(g[0].cid, c1);
	cr_assert_str_eq(g[1].cid, c2);
	cr_assert_str_eq(g[2].cid, c3);
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(why[i], "", "%s", why[i]);
	replay((cim_subscribe_options){.pattern = "events.t.>"}, g, 8, &p);
	cr_assert_eq(p.safe_seq, held - 1);
}

/* A subscription that starts inside a committed batch still gets the rest
 * of it: the daemon confirms it. */
Test(stream, a_replay_starting_inside_a_batch_gets_the_rest_of_it)
{
	static const char *const three[] = {"A", "B", "C", NULL};
	cim_append_result *r = append("job", "j-1", three);
	char why[8][512];
	got g[8];
	size_t n;

	n = replay_checked((cim_subscribe_options){.pattern = "events.job.>",
						   .start = CIM_START_SEQ,
						   .start_seq = r->events[1].seq},
			   g, why, 8);
	cr_assert_eq(n, 2, "%zu events", n);
	cr_assert_eq(g[0].version, 2);
	cr_assert_eq(g[1].version, 3);
	cr_assert_str_eq(g[1].cid, r->events[2].cid);
	cr_assert_str_eq(why[0], "", "%s", why[0]);
	cim_append_result_destroy(r);
}

/* Whole aggregates: a version removed from the middle is reported. */
Test(stream, a_version_gap_is_reported_for_whole_aggregates)
{
	char c1[CIM_CID_TEXT_MAX], c2[CIM_CID_TEXT_MAX], why[8][512];
	uint64_t s2;
	got g[8];
	size_t n;

	publish_block("g", "g-1", 1, "Z", NULL, "{}", CIM_MH_BLAKE2B_256, "",
		      NULL, c1);
	s2 = publish_block("g", "g-1", 2, "Z", c1, "{}", CIM_MH_BLAKE2B_256,
			   "", NULL, c2);
	publish_block("g", "g-1", 3, "Z", c2, "{}", CIM_MH_BLAKE2B_256, "",
		      NULL, NULL);
	publish_block("g", "g-1", 4, "Z", c1, "{}", CIM_MH_BLAKE2B_256, "",
		      NULL, NULL);
	cr_assert_eq(js_DeleteMsg(H.js, H_STREAM, s2, NULL, NULL), NATS_OK);
	n = replay_checked((cim_subscribe_options){.pattern = "events.g.g-1.>"},
			   g, why, 8);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(why[0], "");
	cr_assert_eq(g[1].version, 3);
	cr_assert(strstr(why[1], "version_gap") != NULL, "%s", why[1]);
	cr_assert(strstr(why[1], "version 3") != NULL &&
			  strstr(why[1], "version 1") != NULL,
		  "%s", why[1]);
	/* The chain goes on from v3: v4's prev is wrong, not a gap. */
	cr_assert(strstr(why[2], "broken_link") != NULL, "%s", why[2]);

	n = replay_checked((cim_subscribe_options){.pattern = "events.g.g-1.>",
						   .no_check = true},
			   g, why, 8);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(why[1], "");
}

/* A block whose bytes changed, at an old version, does not move its
 * aggregate back: a second copy of the head version is still out of
 * order. */
Test(stream, a_hash_mismatch_does_not_move_the_version_back)
{
	char c1[CIM_CID_TEXT_MAX], c2[CIM_CID_TEXT_MAX], c3[CIM_CID_TEXT_MAX];
	char why[8][512];
	got g[8];
	size_t n;

	publish_block("m", "m-1", 1, "Z", NULL, "{}", CIM_MH_BLAKE2B_256, "",
		      NULL, c1);
	publish_block("m", "m-1", 2, "Z", c1, "{}", CIM_MH_BLAKE2B_256, "",
		      NULL, c2);
	publish_block("m", "m-1", 3, "Z", c2, "{}", CIM_MH_BLAKE2B_256, "",
		      NULL, c3);
	publish_block("m", "m-1", 2, "Z", c1, "{\"x\":1}", CIM_MH_BLAKE2B_256,
		      c3, NULL, NULL);
	publish_block("m", "m-1", 3, "Z", c2, "{\"fork\":1}",
		      CIM_MH_BLAKE2B_256, "", NULL, NULL);
	n = replay_checked((cim_subscribe_options){.pattern = "events.m.>"}, g,
			   why, 8);
	cr_assert_eq(n, 5);
	cr_assert(strstr(why[3], "hash_mismatch") != NULL, "%s", why[3]);
	cr_assert(strstr(why[4], "version_order") != NULL, "%s", why[4]);
}

/* Through one event type the daemon is asked about batches by the block's
 * aggregate: a block whose aggregate is not a token, or not the one its
 * subject names, is a failed check, not a failed call for ever. */
Test(stream, a_block_on_the_wrong_subject_is_a_failed_check)
{
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;
	cim_err rc;

	publish_block_on("events.q.q-1.Z", "q", "not a token", 1, "Z", NULL,
			 "{}", CIM_MH_BLAKE2B_256, "", "1/2", NULL);
	publish_block_on("events.q.q-1.Z", "q", "q-2", 1, "Z", NULL, "{}",
			 CIM_MH_BLAKE2B_256, "", NULL, NULL);
	free(h_append_n("q", "q-3", 1));
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(cim_subscribe(H.client,
					   &(cim_subscribe_options){
						   .pattern = k == 0 ? "events.*.*.Z"
								     : "events.>",
						   .stop_at_end = true},
					   &s, &err),
			     CIM_ERR_OK, "%s", err.message);
		for (int i = 0; i < 2; i++) {
			rc = cim_subscription_next(s, 5000, &e, &err);
			cr_assert_eq(rc, CIM_ERR_CHECK_FAILED, "%d/%d: %s: %s",
				     k, i, cim_err_name(rc), err.message);
			cr_assert(strstr(err.message, "subject_mismatch") !=
					  NULL,
				  "%s", err.message);
			cr_assert_eq(e->seq, (uint64_t)i + 1);
		}
		if (k == 1) {
			rc = cim_subscription_next(s, 5000, &e, &err);
			cr_assert_eq(rc, CIM_ERR_OK, "%s", err.message);
			cr_assert_str_eq(e->aggregate_id, "q-3");
		}
		rc = cim_subscription_next(s, 5000, &e, &err);
		cr_assert_eq(rc, CIM_ERR_OK, "%s", err.message);
		cr_assert_null(e);
		cim_subscription_close(s);
	}
}

/* Messages the NATS client drops (its buffer full) are gone for good with
 * nats.c's ordered consumer: the subscription fails, and stays failed. */
Test(stream, a_client_side_drop_breaks_the_subscription_for_good)
{
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;
	cim_progress p;
	cim_err rc;

	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){.start = CIM_START_NOW},
				   &s, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(cimc_subscription_set_pending_limits(s, 2, 1 << 20, &err),
		     CIM_ERR_OK, "%s", err.message);
	free(h_append_n("order", "o-1", 20));
	h_sleep_ms(300);
	for (int i = 0; i < 25; i++) {
		rc = cim_subscription_next(s, 1000, &e, &err);
		if (rc != CIM_ERR_OK)
			break;
	}
	cr_assert_eq(rc, CIM_ERR_UNAVAILABLE, "%s: %s", cim_err_name(rc),
		     err.message);
	cr_assert(strstr(err.message, "dropped") != NULL &&
			  strstr(err.message, "reopened") != NULL,
		  "%s", err.message);
	cim_subscription_progress(s, &p);
	cr_assert_lt(p.safe_seq, 20, "safe_seq passed the lost events");
	free(h_append_n("order", "o-2", 1));
	rc = cim_subscription_next(s, 1000, &e, &err);
	cr_assert_eq(rc, CIM_ERR_UNAVAILABLE, "sticky: %s", cim_err_name(rc));
	cr_assert_null(e);
	cim_subscription_close(s);
}

/* A long run of messages that are all held (a batch that never ends) must
 * not keep next past its timeout. */
Test(stream, held_messages_do_not_outlast_the_timeout)
{
	enum { N = 4000 };
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;
	char c1[CIM_CID_TEXT_MAX];
	int64_t t0;
	cim_err rc;

	publish_block("h", "h-0", 1, "Z", NULL, "{}", CIM_MH_BLAKE2B_256, "",
		      NULL, c1);
	for (int i = 1; i <= N; i++) {
		char batch[32];
		cim_event_block b = {0};
		natsMsg *m = NULL;
		cbuf out = CBUF_INIT;
		char why[256];

		snprintf(batch, sizeof(batch), "%d/%d", i, N + 1);
		b.aggregate_type = "h";
		b.aggregate_id = "h-1";
		b.version = (uint64_t)i;
		b.event_type = "Z";
		b.event_id = "e";
		b.correlation_id = "e";
		b.causation_id = "e";
		b.timestamp = "2026-01-02T03:04:05.000000006Z";
		b.metadata = json_object();
		b.data = json_object();
		if (i > 1) {
			b.has_prev = true;
			cr_assert_eq(cim_cid_from_text(&b.prev, c1), 0);
		}
		cr_assert_eq(cim_event_encode(&b, &out, why, sizeof(why)), 0);
		json_decref(b.metadata);
		json_decref(b.data);
		cr_assert_eq(natsMsg_Create(&m, "events.h.h-1.Z", NULL,
					    (const char *)out.p, (int)out.len),
			     NATS_OK);
		natsMsgHeader_Set(m, "Cim-Batch", batch);
		cr_assert_eq(js_PublishMsgAsync(H.js, &m, NULL), NATS_OK);
		cbuf_free(&out);
	}
	cr_assert_eq(js_PublishAsyncComplete(H.js, NULL), NATS_OK);

	cr_assert_eq(cim_subscribe(H.client, NULL, &s, &err), CIM_ERR_OK);
	rc = cim_subscription_next(s, 5000, &e, &err);
	cr_assert_eq(rc, CIM_ERR_OK, "%s", err.message);
	cr_assert_str_eq(e->aggregate_id, "h-0");
	t0 = h_now_ms();
	rc = cim_subscription_next(s, 20, &e, &err);
	cr_assert_eq(rc, CIM_ERR_TIMEOUT, "%s", cim_err_name(rc));
	cr_assert_lt(h_now_ms() - t0, 150, "next took %lld ms",
		     (long long)(h_now_ms() - t0));
	cim_subscription_close(s);
}

struct later {
	int delay_ms;
};

static void *append_later(void *arg)
{
	struct later *l = arg;

	h_sleep_ms(l->delay_ms);
	free(h_append_n("late", "l-1", 1));
	return NULL;
}

/* A timeout too big to add to the clock waits, rather than wrapping into
 * the past and timing out at once. */
Test(stream, a_huge_timeout_waits)
{
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *e;
	struct later l = {300};
	pthread_t t;
	cim_err rc;

	cr_assert_eq(cim_subscribe(H.client,
				   &(cim_subscribe_options){.start = CIM_START_NOW},
				   &s, &err),
		     CIM_ERR_OK);
	cr_assert_eq(pthread_create(&t, NULL, append_later, &l), 0);
	rc = cim_subscription_next(s, INT64_MAX, &e, &err);
	pthread_join(t, NULL);
	cr_assert_eq(rc, CIM_ERR_OK, "%s: %s", cim_err_name(rc), err.message);
	cr_assert_str_eq(e->aggregate_id, "l-1");
	cim_subscription_close(s);
}

/* JetStream failures: only what is known to pass is UNAVAILABLE, and the
 * text of an older failure on the thread is not passed off as this one's. */
Test(stream, js_failures_are_mapped_by_what_they_promise)
{
	cim_error err = {0};
	jsCtx *js = NULL;

	/* Leaves "invalid argument" text behind on this thread. */
	cr_assert_neq(natsConnection_JetStream(&js, NULL, NULL), NATS_OK);
	cr_assert_eq(cimc_js_fail(&err, NATS_INVALID_ARG, 0, "doing x"),
		     CIM_ERR_INTERNAL);
	cr_assert_eq(cimc_js_fail(&err, NATS_ERR, 0, "doing x"),
		     CIM_ERR_INTERNAL);
	cr_assert_eq(cimc_js_fail(&err, NATS_IO_ERROR, 0, "doing y"),
		     CIM_ERR_CONNECTION);
	cr_assert(strstr(err.message,
			 natsStatus_GetText(NATS_IO_ERROR)) != NULL,
		  "%s", err.message);
	cr_assert_eq(cimc_js_fail(&err, NATS_NO_RESPONDERS, 0, "doing z"),
		     CIM_ERR_UNAVAILABLE);
	cr_assert_eq(cimc_js_fail(&err, NATS_TIMEOUT, 0, "doing z"),
		     CIM_ERR_TIMEOUT);
}
