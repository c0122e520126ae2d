/*
 * test_by_type.c: reading one event type across aggregates, in stream
 * order, page by page; and a follower of a type across an aggregate the
 * daemon left unsettled, which never passes an event that settling adopts
 * behind it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/blocks.h"
#include "../support/harness.h"

TestSuite(by_type, .init = h_setup, .fini = h_teardown, .timeout = 60);

Test(by_type, one_type_across_aggregates_in_stream_order)
{
	/* Interleaved: placed, shipped, placed, ... over three orders. */
	uint64_t placed[6];
	int np = 0;
	h_reply rep;
	json_t *evs, *next;
	uint64_t after = 0, got = 0;

	for (int round = 0; round < 3; round++) {
		for (int o = 0; o < 3; o++) {
			char id[16];
			cim_append_result *r;

			snprintf(id, sizeof(id), "bt-%d", o);
			if ((round + o) % 2 == 0) {
				r = h_append1("order", id, CIM_EXPECT_ANY,
					      "OrderPlaced", "{}");
				if (np < 6)
					placed[np++] = r->events[0].seq;
			} else {
				r = h_append1("order", id, CIM_EXPECT_ANY,
					      "OrderShipped", "{}");
			}
			cim_append_result_destroy(r);
		}
	}
	cr_assert_eq(np, 5);

	h_request(&rep, H_PREFIX ".by_type.OrderPlaced",
		  "{\"after_seq\": 0, \"limit\": 1000}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	evs = json_object_get(rep.json, "events");
	cr_assert_eq(json_array_size(evs), 5, "%s", rep.body);
	for (size_t i = 0; i < 5; i++) {
		json_t *e = json_array_get(evs, i);

		cr_assert_str_eq(json_string_value(json_object_get(e,
				 "event_type")), "OrderPlaced");
		cr_assert_eq((uint64_t)json_integer_value(json_object_get(e,
			     "seq")), placed[i], "stream order");
		cr_assert_not_null(json_object_get(e, "cid"));
	}
	cr_assert(json_is_null(json_object_get(rep.json, "next_after_seq")),
		  "nothing more: %s", rep.body);
	h_reply_free(&rep);

	/* Pages of two, following next_after_seq. */
	for (int guard = 0; guard < 10; guard++) {
		char body[96];

		snprintf(body, sizeof(body),
			 "{\"after_seq\": %llu, \"limit\": 2}",
			 (unsigned long long)after);
		h_request(&rep, H_PREFIX ".by_type.OrderPlaced", body, -1);
		cr_assert_eq(rep.status, 200, "%s", rep.body);
		evs = json_object_get(rep.json, "events");
		for (size_t i = 0; i < json_array_size(evs); i++) {
			uint64_t seq = (uint64_t)json_integer_value(
				json_object_get(json_array_get(evs, i), "seq"));

			cr_assert_lt(got, 5);
			cr_assert_eq(seq, placed[got], "page order");
			got++;
		}
		next = json_object_get(rep.json, "next_after_seq");
		if (json_is_null(next)) {
			h_reply_free(&rep);
			break;
		}
		cr_assert(json_is_integer(next), "%s", rep.body);
		cr_assert_gt((uint64_t)json_integer_value(next), after,
			     "next_after_seq moves on");
		after = (uint64_t)json_integer_value(next);
		h_reply_free(&rep);
	}
	cr_assert_eq(got, 5);

	/* A type nobody used. */
	h_request(&rep, H_PREFIX ".by_type.Nobody", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 0);
	cr_assert(json_is_null(json_object_get(rep.json, "next_after_seq")));
	h_reply_free(&rep);
}

Test(by_type, the_client_pages_through_one_type)
{
	uint64_t want[12];
	int n = 0;
	uint64_t after = 0;
	cim_error err = {0};

	for (int i = 0; i < 12; i++) {
		char id[16];
		cim_append_result *r;

		snprintf(id, sizeof(id), "c-%d", i % 4);
		r = h_append1("acct", id, CIM_EXPECT_ANY, i % 3 ? "Deposited" : "Opened",
			      "{}");
		if (i % 3)
			want[n++] = r->events[0].seq;
		cim_append_result_destroy(r);
	}
	int seen = 0, pages = 0;
	do {
		cim_event_list *l = NULL;

		cr_assert_eq(cim_by_type(H.client, "Deposited", after, 3, &l, &err),
			     CIM_ERR_OK, "%s", err.message);
		cr_assert_leq(l->n_events, 3);
		for (size_t i = 0; i < l->n_events; i++) {
			cr_assert_str_eq(l->events[i].event_type, "Deposited");
			cr_assert_eq(l->events[i].seq, want[seen], "stream order");
			seen++;
		}
		after = l->next_after_seq;
		pages++;
		cim_event_list_destroy(l);
	} while (after != 0 && pages < 20);
	cr_assert_eq(seen, n, "every Deposited event, once");
	cr_assert_geq(pages, 3);
	cim_event_list *none = NULL;
	cr_assert_eq(cim_by_type(H.client, "bad.type", 0, 0, &none, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "event_type");
	cr_assert_null(none);
}

/* ---- unsettled aggregates ------------------------------------------------------ */

/*
 * A batch torn in the stream (the first of its events stored, the rest
 * not yet) leaves its aggregate unsettled at start-up: settling removes a
 * torn batch, but this stream refuses deletes (deny_delete), so the
 * aggregate stays unsettled while the daemon serves. The rest of the batch
 * then lands (a publish that was given up on is committed late), and the
 * sweep adopts the whole batch at the sequences it was stored at. A
 * follower of the type must never have paged past them.
 */
TestSuite(by_type_unsettled, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 120);

/* The event stream as the daemon makes it, but refusing deletes. */
static void stream_without_deletes(void)
{
	const char *subjects[] = {"events.>"};
	jsStreamConfig sc;
	jsErrCode je = 0;

	jsStreamConfig_Init(&sc);
	sc.Name = H_STREAM;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Discard = js_DiscardNew;
	sc.Duplicates = 120 * 1000000000LL;
	sc.AllowDirect = true;
	sc.DenyPurge = true;
	sc.DenyDelete = true;
	cr_assert_eq(js_AddStream(NULL, H.js, &sc, NULL, &je), NATS_OK, "stream: %d", (int)je);
}

static void daemon_up(void)
{
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
}

static cim_head head_of(const char *id)
{
	cim_head h;
	cim_error err = {0};

	cr_assert_eq(cim_get_head(H.client, "acct", id, &h, &err), CIM_ERR_OK, "%s", err.message);
	return h;
}

static uint64_t append_one(const char *id, const char *event_type)
{
	cim_append_result *r = h_append1("acct", id, CIM_EXPECT_ANY, event_type, "{}");
	uint64_t seq = r->events[0].seq;

	cim_append_result_destroy(r);
	return seq;
}

/* Publishes acct/id at version (after the block prev) of event_type,
 * part batch of a batch, straight to JetStream; its block into b. */
static uint64_t publish_part(tb_block *b, const char *id, uint64_t version, const cim_cid *prev,
			     const char *event_type, const char *batch)
{
	tb_make(b, "acct", id, version, event_type, "{}", NULL, prev, 0);
	return tb_publish_part(b, "acct", id, event_type, version, batch, NULL);
}

/* One page of by_type.<type> after `after`: the seqs shown into seqs[*n]
 * (each checked to be of the type, with its aggregate and version as
 * stored), and next_after_seq (0 for null). */
static uint64_t page(const char *type, uint64_t after, int limit, uint64_t *seqs, size_t *n,
		     size_t max)
{
	h_reply rep;
	char body[96];

	snprintf(body, sizeof(body), "{\"after_seq\": %llu, \"limit\": %d}",
		 (unsigned long long)after, limit);
	h_requestf(&rep, body, "%s.by_type.%s", H_PREFIX, type);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	json_t *evs = json_object_get(rep.json, "events"), *next;
	for (size_t i = 0; i < json_array_size(evs); i++) {
		json_t *e = json_array_get(evs, i);
		uint64_t seq = (uint64_t)json_integer_value(json_object_get(e, "seq"));
		cim_event_block ev;
		char cid[CIM_CID_TEXT_MAX];
		natsMsg *m = h_stored_event(seq, &ev, cid);
		cr_assert_str_eq(json_string_value(json_object_get(e, "event_type")), type);
		cr_assert_str_eq(json_string_value(json_object_get(e, "aggregate_id")),
				 ev.aggregate_id, "seq %llu", (unsigned long long)seq);
		cr_assert_eq(json_integer_value(json_object_get(e, "version")),
			     (json_int_t)ev.version, "seq %llu", (unsigned long long)seq);
		cr_assert_str_eq(json_string_value(json_object_get(e, "cid")), cid);
		cim_event_block_free(&ev);
		natsMsg_Destroy(m);
		cr_assert_lt(*n, max, "more events than were stored");
		seqs[(*n)++] = seq;
	}
	next = json_object_get(rep.json, "next_after_seq");
	uint64_t r = json_is_null(next) ? 0 : (uint64_t)json_integer_value(next);
	cr_assert(json_is_null(next) || json_is_integer(next), "%s", rep.body);
	h_reply_free(&rep);
	return r;
}

/* A follower of type: pages of `limit` from *after until a page says null
 * or stops where it is (held); what it was shown is appended to seqs.
 * Returns whether it reached the end. */
static bool follow(const char *type, uint64_t *after, int limit, uint64_t *seqs, size_t *n,
		   size_t max)
{
	for (int guard = 0; guard < 100; guard++) {
		size_t before = *n;
		uint64_t next = page(type, *after, limit, seqs, n, max);
		if (next == 0) {
			if (*n > before)
				*after = seqs[*n - 1];
			return true;
		}
		cr_assert_geq(next, *after, "next_after_seq goes back");
		if (next == *after && *n == before)
			return false; /* held before an event that may still be committed */
		*after = next;
	}
	cr_assert_fail("by_type does not come to an end");
	return false;
}

static void assert_seqs(const uint64_t *got, size_t n, const uint64_t *want, size_t nwant,
			const char *what)
{
	cr_assert_eq(n, nwant, "%s: %zu event(s) shown, %zu stored and committed", what, n,
		     nwant);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(got[i], want[i], "%s: event %zu at seq %llu, not %llu", what, i,
			     (unsigned long long)got[i], (unsigned long long)want[i]);
}

/* Every start position, pages of one and of ten: exactly want after it. */
static void assert_every_start(const char *type, const uint64_t *want, size_t nwant,
			       uint64_t last)
{
	for (uint64_t from = 0; from <= last + 1; from++)
		for (int limit = 1; limit <= 10; limit += 9) {
			uint64_t got[32], after = from;
			size_t n = 0, k = 0;
			char what[64];
			cr_assert(follow(type, &after, limit, got, &n, 32), "from %llu: held",
				  (unsigned long long)from);
			while (k < nwant && want[k] <= from)
				k++;
			snprintf(what, sizeof(what), "after_seq %llu, limit %d",
				 (unsigned long long)from, limit);
			assert_seqs(got, n, want + k, nwant - k, what);
		}
}

/* Waits for the sweep to adopt what is stored of id up to version. */
static void wait_adopted(const char *id, uint64_t version)
{
	int64_t end = h_now_ms() + 15000;

	while (head_of(id).version < version) {
		cr_assert_lt(h_now_ms(), end, "%s is not settled: head version %llu, want %llu",
			     id, (unsigned long long)head_of(id).version,
			     (unsigned long long)version);
		h_sleep_ms(50);
	}
	cr_assert_eq(head_of(id).version, version);
}

Test(by_type_unsettled, a_page_stops_before_what_settling_may_adopt_and_serves_it_once_settled)
{
	uint64_t want[8], got[16], after = 0;
	size_t nwant = 0, n = 0;
	tb_block b[3];
	cim_cid head;

	stream_without_deletes();
	daemon_up();
	want[nwant++] = append_one("a-1", "Paid");
	append_one("a-2", "Opened");
	append_one("t-1", "Opened");
	want[nwant++] = append_one("a-1", "Paid");
	cim_head t = head_of("t-1");
	cr_assert_eq(t.version, 1);
	cr_assert_eq(cim_cid_from_text(&head, t.head), 0);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);

	/* the first of a three-event batch of t-1, as a crash leaves it */
	uint64_t torn = publish_part(&b[0], "t-1", 2, &head, "Paid", "1/3");
	uint64_t msgs = h_stream_msgs();
	daemon_up();
	cr_assert_eq(head_of("t-1").version, 1, "the torn batch is not adopted");
	cr_assert_eq(h_stream_msgs(), msgs, "the stream refuses to delete it");

	/* an event of the type committed after it */
	uint64_t later = append_one("a-3", "Paid");
	cr_assert_gt(later, torn);

	/* the follower stops before the torn batch, not past it */
	cr_assert_not(follow("Paid", &after, 10, got, &n, 16), "the page is held");
	assert_seqs(got, n, want, nwant, "before the batch is settled");
	cr_assert_eq(after, want[nwant - 1]);
	cr_assert_not(follow("Paid", &after, 1, got, &n, 16), "still held");
	cr_assert_eq(n, nwant);

	/* the rest lands: the sweep adopts the batch where it was stored */
	publish_part(&b[1], "t-1", 3, &b[0].cid, "Opened", "2/3");
	uint64_t last = publish_part(&b[2], "t-1", 4, &b[1].cid, "Paid", "3/3");
	wait_adopted("t-1", 4);
	cr_assert_eq(head_of("t-1").seq, last);
	want[nwant++] = torn;
	want[nwant++] = later;
	want[nwant++] = last;

	cr_assert(follow("Paid", &after, 10, got, &n, 16), "the follower reaches the end");
	assert_seqs(got, n, want, nwant, "the follower");
	assert_every_start("Paid", want, nwant, last);
	tb_free(b, 3);
}

/* ---- the type index past the stream's end --------------------------------------- */

static uint64_t le_get(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void le_put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites page 0 of the type index the daemon wrote beside its checkpoint
 * (CIM-HEADS typeindex.0, its format in daemon/typeindex.c) so that it
 * notes event_type, a name it holds, at the sequences from..to and says it
 * covers them: the page of a daemon that had noted them when the stream
 * lost those messages (an OS crash after their acks). */
static void page_notes(const char *event_type, uint64_t from, uint64_t to)
{
	kvStore *kv = NULL;
	kvEntry *e = NULL;
	size_t at = 34, local = 0;

	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-HEADS"), NATS_OK);
	cr_assert_eq(kvStore_Get(&e, kv, "typeindex.0"), NATS_OK, "the page was written");
	size_t len = (size_t)kvEntry_ValueLen(e);
	uint8_t *v = malloc(len);
	cr_assert_not_null(v);
	memcpy(v, kvEntry_Value(e), len);
	kvEntry_Destroy(e);
	cr_assert(len > at && memcmp(v, "CIMTIX01", 8) == 0 && le_get(v + 16, 8) == 0);
	size_t nnames = (size_t)le_get(v + 32, 2);
	for (size_t i = 0; i < nnames; i++) {
		size_t n = (size_t)le_get(v + at, 2);
		if (n == strlen(event_type) && memcmp(v + at + 2, event_type, n) == 0)
			local = i + 1;
		at += 2 + n;
	}
	cr_assert_gt(local, 0, "the page names %s", event_type);
	cr_assert_eq(len, at + 2 * 32768);
	le_put(v + 24, to, 8);
	for (uint64_t s = from; s <= to; s++)
		le_put(v + at + 2 * s, local, 2);
	cr_assert_eq(kvStore_Put(NULL, kv, "typeindex.0", v, (int)len), NATS_OK);
	free(v);
	kvStore_Destroy(kv);
}

static json_int_t type_index_high(void)
{
	h_reply rep;

	h_request(&rep, H_PREFIX ".info", "{}", -1);
	json_t *ti = json_object_get(json_object_get(rep.json, "counters"), "type_index");
	json_int_t high = json_integer_value(json_object_get(ti, "high_seq"));
	h_reply_free(&rep);
	return high;
}

/* Past the stream's last sequence the page notes Shipped where a message
 * of t-1's batch is stored after the start, which the daemon does not note
 * until it settles t-1: believed, the page would hide it from a Paid
 * follower, which would page past it to an event after it. */
Test(by_type_unsettled, a_type_index_page_noting_past_the_streams_end_is_not_believed)
{
	uint64_t want[8], got[16], after = 0;
	size_t nwant = 0, n = 0;
	tb_block b[3];
	cim_cid head;

	stream_without_deletes();
	daemon_up();
	want[nwant++] = append_one("a-1", "Paid");
	uint64_t shipped = append_one("a-2", "Shipped");
	append_one("t-1", "Opened");
	cim_head t = head_of("t-1");
	cr_assert_eq(cim_cid_from_text(&head, t.head), 0);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	page_notes("Shipped", t.seq + 1, t.seq + 5);

	uint64_t torn = publish_part(&b[0], "t-1", 2, &head, "Opened", "1/3");
	daemon_up();
	cr_assert_eq(head_of("t-1").version, 1, "the torn batch is not adopted");
	cr_assert_eq(type_index_high(), (json_int_t)torn,
		     "nothing past the stream's last sequence is believed");

	/* the second of the batch lands, then an event of the type after it */
	uint64_t mid = publish_part(&b[1], "t-1", 3, &b[0].cid, "Paid", "2/3");
	uint64_t later = append_one("a-3", "Paid");
	cr_assert_lt(mid, later);
	cr_assert_not(follow("Paid", &after, 10, got, &n, 16), "the page is held");
	assert_seqs(got, n, want, nwant, "before the batch is settled");

	uint64_t last = publish_part(&b[2], "t-1", 4, &b[1].cid, "Opened", "3/3");
	wait_adopted("t-1", 4);
	want[nwant++] = mid;
	want[nwant++] = later;
	cr_assert(follow("Paid", &after, 10, got, &n, 16), "the follower reaches the end");
	assert_seqs(got, n, want, nwant, "the follower");
	assert_every_start("Paid", want, nwant, last);
	assert_every_start("Shipped", &shipped, 1, last);
	tb_free(b, 3);
}

/* ---- settled without an append -------------------------------------------------- */

/* An append meets, under its Nats-Msg-Id, another's event at its version
 * (one an earlier daemon gave up on, landed since): it is refused, and
 * the aggregate left unsettled. The sweep settles it at once, adopting
 * that event, without waiting for another append of the aggregate (which
 * may never come, while by_type stops before the event), and by_type
 * shows it. */
Test(by_type_unsettled, an_aggregate_left_unsettled_by_anothers_copy_is_settled_without_an_append)
{
	uint64_t want[4], got[8], after = 0;
	size_t nwant = 0, n = 0;
	tb_block b;
	cim_cid head;
	cim_error err = {0};
	cim_append_result *r = NULL;

	daemon_up();
	want[nwant++] = append_one("a-1", "Paid");
	append_one("f-1", "Opened");
	cim_head f = head_of("f-1");
	cr_assert_eq(cim_cid_from_text(&head, f.head), 0);
	tb_make(&b, "acct", "f-1", 2, "Paid", "{\"by\": \"another\"}", NULL, &head, 0);
	uint64_t theirs = tb_publish_part(&b, "acct", "f-1", "Paid", 2, NULL, "acct.f-1.2");

	cim_new_event ev = {.event_type = "Paid", .data_json = "{\"by\": \"us\"}"};
	cr_assert_eq(cim_append(H.client, "acct", "f-1", 1, &ev, 1, &r, &err), CIM_ERR_INTERNAL,
		     "%s: %s", cim_err_name(err.code), err.message);
	cr_assert(strstr(err.message, "other events at these versions") != NULL, "%s",
		  err.message);
	wait_adopted("f-1", 2);
	cr_assert_eq(head_of("f-1").seq, theirs);
	cr_assert_str_eq(head_of("f-1").head, b.cid_text);
	want[nwant++] = theirs;
	cr_assert(follow("Paid", &after, 10, got, &n, 8), "the follower reaches the end");
	assert_seqs(got, n, want, nwant, "the follower");
	tb_free(&b, 1);
}
