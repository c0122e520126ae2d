/*
 * bytype.c: by_type on a large stream (issue 13): pages of 1,000 events of
 * one of 20 event types, on a stream of 1M events (--quick: 40,000),
 * from its start, its middle and near its end, against floors measured in
 * the same run on the same messages:
 *
 *   A  a bare pull of the same 1,000 messages through a consumer filtered
 *      on events.*.*.<type> (what by_type did before issue 12): made from
 *      the same position, fetched until it has them. nats-server 2.9.10
 *      walks the stream after the start for such a filter;
 *   B  1,000 messages pulled through a consumer without a filter from the
 *      same position (no walk): what moving 1,000 messages costs;
 *   C  the same 1,000 messages asked for by sequence, all at once (direct
 *      gets): what the daemon asks of JetStream for a page.
 *
 * Then the daemon's memory for the type index (info), and with our own
 * processes a restart: the time to the first answer, and how the start-up
 * got its type index (its log line).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BT_TYPES 20
#define BT_TYPE "T07"
#define BT_AGGS 1000
#define BT_BATCH 100
#define BT_PAGE 1000
#define BT_REQ_MS 60000

typedef struct bt_point {
	const char *where;
	uint64_t after;
	lat ours, floor_a, floor_b, floor_c;
} bt_point;

static void subject_of(void *ctx, long k, char *buf, size_t n)
{
	snprintf(buf, n, "%s.append.bench.bt-%s-%ld", C.prefix, (const char *)ctx, k % BT_AGGS);
}

/* A batch of BT_BATCH events, event types T00..T19 in turn. */
static char *batch_body(void)
{
	size_t one = 64 + strlen(event_data());
	char *b = malloc(32 + BT_BATCH * one), *p = b;

	if (b == NULL)
		return NULL;
	p += sprintf(p, "{\"events\":[");
	for (int i = 0; i < BT_BATCH; i++)
		p += sprintf(p, "%s{\"event_type\":\"T%02d\",\"data\":%s}", i ? "," : "",
			     i % BT_TYPES, event_data());
	sprintf(p, "]}");
	return b;
}

/* The seqs of a by_type reply's events into seqs (up to BT_PAGE); how many. */
static int reply_seqs(natsMsg *m, uint64_t *seqs)
{
	json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
	json_t *evs = json_object_get(j, "events"), *e;
	size_t i;
	int n = 0;

	json_array_foreach(evs, i, e)
		if (n < BT_PAGE)
			seqs[n++] = (uint64_t)json_integer_value(json_object_get(e, "seq"));
	json_decref(j);
	return n;
}

static void by_type_lat(natsConnection *nc, bt_point *p, int runs, uint64_t *seqs)
{
	char subj[160], body[96];
	samples s;
	long errors = 0;

	snprintf(subj, sizeof subj, "%s.by_type.%s", C.prefix, BT_TYPE);
	snprintf(body, sizeof body, "{\"after_seq\":%llu,\"limit\":%d}",
		 (unsigned long long)p->after, BT_PAGE);
	samples_init(&s, (size_t)runs);
	for (int i = 0; i < runs + 1 && !g_stop; i++) {
		natsMsg *m = NULL;
		int64_t t = now_ns();
		int rc = cim_req(nc, subj, body, (int)strlen(body), BT_REQ_MS, &m);
		double us = (double)(now_ns() - t) / 1e3;
		if (rc == 0 && reply_seqs(m, seqs) != BT_PAGE)
			rc = 1;
		if (rc != 0)
			errors++;
		else if (i > 0) /* the first warms up */
			samples_add(&s, us);
		natsMsg_Destroy(m);
	}
	lat_from(&p->ours, &s, errors);
	samples_free(&s);
}

/* Floor A or B: a consumer (filtered on the type, or none) from after + 1,
 * fetched until it has BT_PAGE messages: microseconds, or NAN. */
static double pull_page(jsCtx *js, uint64_t after, bool filtered)
{
	jsConsumerConfig cc;
	jsConsumerInfo *ci = NULL;
	jsSubOptions so;
	natsSubscription *sub = NULL;
	jsErrCode je = 0;
	char filter[64];
	int got = 0;
	int64_t t0 = now_ns();

	snprintf(filter, sizeof filter, "events.*.*.%s", BT_TYPE);
	jsConsumerConfig_Init(&cc);
	cc.DeliverPolicy = js_DeliverByStartSequence;
	cc.OptStartSeq = after + 1;
	cc.AckPolicy = js_AckNone;
	cc.MemoryStorage = true;
	cc.InactiveThreshold = 30 * 1000000000LL;
	if (filtered)
		cc.FilterSubject = filter;
	if (js_AddConsumer(&ci, js, C.stream, &cc, NULL, &je) != NATS_OK)
		return NAN;
	jsSubOptions_Init(&so);
	so.Stream = C.stream;
	so.Consumer = ci->Name;
	so.Config = cc;
	if (js_PullSubscribe(&sub, js, NULL, NULL, NULL, &so, &je) != NATS_OK) {
		js_DeleteConsumer(js, C.stream, ci->Name, NULL, NULL);
		jsConsumerInfo_Destroy(ci);
		return NAN;
	}
	while (got < BT_PAGE && !g_stop) {
		natsMsgList l = {0};
		jsFetchRequest fr;
		jsFetchRequest_Init(&fr);
		fr.Batch = BT_PAGE - got; /* that many are there: no waiting out */
		fr.MaxBytes = 8 << 20;
		fr.Expires = 30000000000LL;
		if (natsSubscription_FetchRequest(&l, sub, &fr) != NATS_OK || l.Count == 0) {
			natsMsgList_Destroy(&l);
			break;
		}
		got += l.Count;
		natsMsgList_Destroy(&l);
	}
	double us = (double)(now_ns() - t0) / 1e3;
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	js_DeleteConsumer(js, C.stream, ci->Name, NULL, NULL);
	jsConsumerInfo_Destroy(ci);
	return got == BT_PAGE ? us : NAN;
}

/* Floor C: the messages at seqs[0..n-1], asked for all at once with direct
 * gets, every answer received: microseconds, or NAN. */
static double direct_gets(natsConnection *nc, const uint64_t *seqs, int n)
{
	natsInbox *inbox = NULL;
	natsSubscription *sub = NULL;
	char wild[160], api[160];
	int got = 0;
	int64_t t0 = now_ns();

	snprintf(api, sizeof api, "$JS.API.DIRECT.GET.%s", C.stream);
	if (natsInbox_Create(&inbox) != NATS_OK)
		return NAN;
	snprintf(wild, sizeof wild, "%s.*", (const char *)inbox);
	if (natsConnection_SubscribeSync(&sub, nc, wild) == NATS_OK &&
	    natsSubscription_SetPendingLimits(sub, -1, -1) == NATS_OK) {
		for (int i = 0; i < n; i++) {
			char reply[200], body[48];
			snprintf(reply, sizeof reply, "%s.%d", (const char *)inbox, i);
			snprintf(body, sizeof body, "{\"seq\":%llu}", (unsigned long long)seqs[i]);
			natsConnection_PublishRequestString(nc, api, reply, body);
		}
		while (got < n) {
			natsMsg *m = NULL;
			if (natsSubscription_NextMsg(&m, sub, 10000) != NATS_OK)
				break;
			got += natsMsg_GetDataLength(m) > 0;
			natsMsg_Destroy(m);
		}
	}
	double us = (double)(now_ns() - t0) / 1e3;
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
	return got == n ? us : NAN;
}

static void floors(natsConnection *nc, jsCtx *js, bt_point *p, int runs, const uint64_t *seqs)
{
	samples a, b, c;
	long ea = 0, eb = 0, ec = 0;

	samples_init(&a, (size_t)runs);
	samples_init(&b, (size_t)runs);
	samples_init(&c, (size_t)runs);
	for (int i = 0; i < runs && !g_stop; i++) {
		double x = pull_page(js, p->after, true);
		double y = pull_page(js, p->after, false);
		double z = direct_gets(nc, seqs, BT_PAGE);
		if (isnan(x)) ea++; else samples_add(&a, x);
		if (isnan(y)) eb++; else samples_add(&b, y);
		if (isnan(z)) ec++; else samples_add(&c, z);
	}
	lat_from(&p->floor_a, &a, ea);
	lat_from(&p->floor_b, &b, eb);
	lat_from(&p->floor_c, &c, ec);
	samples_free(&a);
	samples_free(&b);
	samples_free(&c);
}

static json_t *point_json(const bt_point *p)
{
	return json_pack("{ss sI so so so so}", "where", p->where, "after_seq",
			 (json_int_t)p->after, "by_type_1000", lat_json(&p->ours),
			 "floor_a_filtered_pull", lat_json(&p->floor_a),
			 "floor_b_pull_no_filter", lat_json(&p->floor_b),
			 "floor_c_direct_gets", lat_json(&p->floor_c));
}

static double ratio(const lat *a, const lat *b)
{
	return a->n > 0 && b->n > 0 && b->p50 > 0 ? a->p50 / b->p50 : NAN;
}

static json_int_t info_int(natsConnection *nc, const char *group, const char *key)
{
	json_t *info = daemon_info(nc, C.prefix, 10000);
	json_int_t v = json_integer_value(json_object_get(
		json_object_get(json_object_get(info, "counters"), group), key));
	json_decref(info);
	return v;
}

void run_bytype(json_t *out)
{
	natsConnection *nc = connect_nats(C.url, true);
	jsCtx *js = NULL;
	json_t *o = json_object(), *pts = json_array();
	long events = C.quick ? 40000 : 1000000;
	int runs = C.quick ? 3 : 10;
	char *body = batch_body();
	rate fill = {0};
	bt_point p[3] = {{.where = "start"}, {.where = "middle"}, {.where = "end"}};
	uint64_t *seqs = calloc(BT_PAGE, sizeof *seqs);
	long rss0 = C.P ? rss_kib(C.P->daemon_pid) : -1;

	if (nc == NULL || body == NULL || seqs == NULL ||
	    natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
		goto out;
	printf("\nby_type: filling %ld events of %d event types (batches of %d over %d "
	       "aggregates)...\n", events, BT_TYPES, BT_BATCH, BT_AGGS);
	fflush(stdout);
	engine(&(engine_run){.nc = nc, .inflight = 16, .max_requests = events / BT_BATCH,
			     .stall_s = 30, .subject = subject_of, .subject_ctx = C.tag,
			     .body = body, .body_len = (int)strlen(body),
			     .events_per_request = BT_BATCH, .quiet = true},
	       &fill);
	printf("  %ld events in %.1f s (%.0f ev/s), %ld error(s)\n", fill.events, fill.seconds,
	       fill.per_s, fill.errors);
	jsStreamInfo *si = NULL;
	if (js_GetStreamInfo(&si, js, C.stream, NULL, NULL) != NATS_OK)
		goto out;
	uint64_t last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	p[1].after = last / 2;
	p[2].after = last - (uint64_t)BT_PAGE * BT_TYPES * 3 / 2;
	printf("  stream: last seq %llu\n", (unsigned long long)last);
	printf("  %-8s %12s %14s %14s %14s %8s %8s %8s\n", "page at", "by_type p50",
	       "A filtered", "B no filter", "C direct gets", "/A", "/B", "/C");
	for (int i = 0; i < 3 && !g_stop; i++) {
		by_type_lat(nc, &p[i], runs, seqs);
		if (p[i].ours.n > 0)
			floors(nc, js, &p[i], runs, seqs);
		printf("  %-8s %10.1f ms %11.1f ms %11.1f ms %11.1f ms %8.2f %8.2f %8.2f\n",
		       p[i].where, p[i].ours.p50 / 1e3, p[i].floor_a.p50 / 1e3,
		       p[i].floor_b.p50 / 1e3, p[i].floor_c.p50 / 1e3,
		       ratio(&p[i].ours, &p[i].floor_a), ratio(&p[i].ours, &p[i].floor_b),
		       ratio(&p[i].ours, &p[i].floor_c));
		json_array_append_new(pts, point_json(&p[i]));
	}
	{
		json_int_t bytes = info_int(nc, "type_index", "bytes");
		long rss1 = C.P ? rss_kib(C.P->daemon_pid) : -1;
		printf("  type index: %lld bytes for %llu stream sequences (%.2f bytes each); "
		       "daemon RSS %ld -> %ld KiB over the fill\n", (long long)bytes,
		       (unsigned long long)last, last ? (double)bytes / (double)last : 0.0,
		       rss0, rss1);
		json_object_set_new(o, "type_index_bytes", json_integer(bytes));
		json_object_set_new(o, "rss_before_kib", json_integer(rss0));
		json_object_set_new(o, "rss_after_kib", json_integer(rss1));
	}
	if (C.P != NULL && !g_stop) {
		/* a clean stop writes the heads checkpoint and the index's pages */
		double ms = NAN;
		json_t *lines = json_array();
		daemon_stop(C.P);
		if (daemon_start(C.P, 120000, &ms) == 0) {
			printf("  restart to the first answer: %.0f ms; its log says:\n", ms);
			log_grep(C.P->daemon_log, "type index:", "cim-eventsd", lines);
			log_grep(C.P->daemon_log, "heads loaded", "cim-eventsd", lines);
		}
		json_object_set_new(o, "restart_ms", json_real(ms));
		json_object_set_new(o, "restart_log", lines);
	}
out:
	json_object_set_new(o, "events", json_integer(events));
	json_object_set_new(o, "fill", rate_json(&fill));
	json_object_set_new(o, "points", pts);
	json_object_set_new(out, "by_type", o);
	free(body);
	free(seqs);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}
