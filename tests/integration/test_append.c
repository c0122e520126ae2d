/*
 * test_append.c: append, then read back through the daemon and straight
 * from JetStream: versions, heads, the stored block, its CID recomputed
 * from the stored bytes, the headers, the chain links, batches and
 * idempotent retries.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(append, .init = h_setup, .fini = h_teardown, .timeout = 90);

static bool is_uuid7(const char *s)
{
	if (s == NULL || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i]) ||
			   isupper((unsigned char)s[i])) {
			return false;
		}
	}
	return s[14] == '7' && strchr("89ab", s[19]) != NULL;
}

static bool is_rfc3339_nanos_utc(const char *s)
{
	/* YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ */
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddddddddZ";

	if (s == NULL || strlen(s) != sizeof(pat) - 1)
		return false;
	for (size_t i = 0; i < sizeof(pat) - 1; i++) {
		if (pat[i] == 'd' ? !isdigit((unsigned char)s[i])
				  : s[i] != pat[i])
			return false;
	}
	return true;
}

static void json_eq_text(json_t *got, const char *want_text)
{
	json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
	char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);

	cr_assert_not_null(want);
	cr_assert(json_equal(got, want), "got %s, want %s", g ? g : "(null)",
		  want_text);
	free(g);
	json_decref(want);
}

static void assert_header(natsMsg *m, const char *key, const char *want)
{
	const char *v = h_header(m, key);

	cr_assert_not_null(v, "stored message lacks header %s", key);
	if (want != NULL)
		cr_assert_str_eq(v, want, "header %s", key);
}

/* The prev link of a decoded block as text ("" when null). */
static void prev_text(const cim_event_block *ev, char out[CIM_CID_TEXT_MAX])
{
	out[0] = '\0';
	if (ev->has_prev)
		cim_cid_to_text(&ev->prev, out);
}

Test(append, one_event_reply_head_get_and_stored_bytes)
{
	cim_append_result *r = h_append1("order", "order-1", CIM_EXPECT_ANY,
					 "OrderPlaced", "{\"total\": 42}");
	cim_head head;
	cim_event_page *page = NULL;
	cim_error err = {0};
	cim_event_block ev;
	char cid[CIM_CID_TEXT_MAX];
	natsMsg *m;

	cr_assert_str_eq(r->aggregate_type, "order");
	cr_assert_str_eq(r->aggregate_id, "order-1");
	cr_assert_eq(r->version, 1);
	cr_assert_eq(r->n_events, 1);
	cr_assert_eq(r->events[0].version, 1);
	cr_assert_str_eq(r->head, r->events[0].cid);
	cr_assert(r->events[0].seq > 0);
	cr_assert(is_uuid7(r->events[0].event_id),
		  "a daemon-chosen event_id is a UUIDv7, got %s",
		  r->events[0].event_id);

	cr_assert_eq(cim_get_head(H.client, "order", "order-1", &head, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(head.version, 1);
	cr_assert_str_eq(head.head, r->head);
	cr_assert_eq(head.seq, r->events[0].seq);

	cr_assert_eq(cim_get(H.client, "order", "order-1", 1, 0, &page, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(page->version, 1);
	cr_assert_eq(page->n_events, 1);
	cr_assert_eq(page->next_from_version, 0);
	cr_assert_str_eq(page->events[0].cid, r->head);
	cr_assert_eq(page->events[0].seq, r->events[0].seq);
	cr_assert_null(page->events[0].prev);
	cr_assert_str_eq(page->events[0].event_type, "OrderPlaced");
	cr_assert_str_eq(page->events[0].event_id, r->events[0].event_id);
	cr_assert_str_eq(page->events[0].correlation_id, r->events[0].event_id,
			 "correlation_id defaults to the event_id");
	cr_assert_str_eq(page->events[0].causation_id, r->events[0].event_id,
			 "causation_id defaults to the event_id");
	cr_assert(is_rfc3339_nanos_utc(page->events[0].timestamp),
		  "timestamp %s", page->events[0].timestamp);

	/* The stored bytes alone: decode, recompute the CID. */
	m = h_stored_event(r->events[0].seq, &ev, cid);
	cr_assert_str_eq(cid, r->events[0].cid,
			 "CID recomputed from the stored bytes");
	cr_assert_str_eq(natsMsg_GetSubject(m),
			 "events.order.order-1.OrderPlaced");
	cr_assert_str_eq(ev.aggregate_type, "order");
	cr_assert_str_eq(ev.aggregate_id, "order-1");
	cr_assert_eq(ev.version, 1);
	cr_assert_str_eq(ev.event_type, "OrderPlaced");
	cr_assert_str_eq(ev.event_id, r->events[0].event_id);
	cr_assert_str_eq(ev.correlation_id, ev.event_id);
	cr_assert_str_eq(ev.causation_id, ev.event_id);
	cr_assert_str_eq(ev.timestamp, page->events[0].timestamp);
	cr_assert(is_rfc3339_nanos_utc(ev.timestamp), "%s", ev.timestamp);
	cr_assert_not(ev.has_prev, "prev is null at version 1");
	json_eq_text(ev.data, "{\"total\": 42}");
	json_eq_text(ev.metadata, "{}");

	assert_header(m, "Nats-Msg-Id", NULL);
	cr_assert_neq(strlen(h_header(m, "Nats-Msg-Id")), 0);
	assert_header(m, "Cim-Cid", r->events[0].cid);
	assert_header(m, "Cim-Version", "1");
	assert_header(m, "Cim-Event-Id", ev.event_id);
	assert_header(m, "Cim-Correlation-Id", ev.correlation_id);
	assert_header(m, "Cim-Causation-Id", ev.causation_id);
	cr_assert_null(h_header(m, "Cim-Prev"), "no Cim-Prev at version 1");

	cim_event_block_free(&ev);
	natsMsg_Destroy(m);
	cim_event_page_destroy(page);
	cim_append_result_destroy(r);
}

Test(append, second_event_links_to_first_with_given_ids_and_metadata)
{
	cim_append_result *r1 = h_append1("order", "order-2", CIM_EXPECT_ANY,
					  "OrderPlaced", "[1, 2, 3]");
	cim_new_event e = {
		.event_type = "OrderShipped",
		.data_json = "{\"carrier\": \"post\"}",
		.event_id = "evt-ship-1",
		.correlation_id = "corr-77",
		.causation_id = "cause-78",
		.metadata_json = "{\"user\": \"alice\", \"source\": \"web\"}",
	};
	cim_append_result *r2 = NULL;
	cim_error err = {0};
	cim_event_block ev;
	char cid[CIM_CID_TEXT_MAX], prev[CIM_CID_TEXT_MAX];
	natsMsg *m;
	cim_head head;

	cr_assert_eq(cim_append(H.client, "order", "order-2", 1, &e, 1, &r2,
				&err), CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(r2->version, 2);
	cr_assert_eq(r2->events[0].version, 2);
	cr_assert_str_eq(r2->events[0].event_id, "evt-ship-1");
	cr_assert_str_eq(r2->head, r2->events[0].cid);
	cr_assert_str_neq(r2->head, r1->head);
	cr_assert(r2->events[0].seq > r1->events[0].seq);

	m = h_stored_event(r2->events[0].seq, &ev, cid);
	cr_assert_str_eq(cid, r2->events[0].cid);
	cr_assert_eq(ev.version, 2);
	cr_assert(ev.has_prev);
	prev_text(&ev, prev);
	cr_assert_str_eq(prev, r1->head, "event 2's prev is event 1's CID");
	cr_assert_str_eq(ev.event_id, "evt-ship-1");
	cr_assert_str_eq(ev.correlation_id, "corr-77");
	cr_assert_str_eq(ev.causation_id, "cause-78");
	json_eq_text(ev.metadata, "{\"user\": \"alice\", \"source\": \"web\"}");
	json_eq_text(ev.data, "{\"carrier\": \"post\"}");
	cr_assert_str_eq(natsMsg_GetSubject(m),
			 "events.order.order-2.OrderShipped");
	assert_header(m, "Cim-Cid", cid);
	assert_header(m, "Cim-Version", "2");
	assert_header(m, "Cim-Prev", r1->head);
	assert_header(m, "Cim-Event-Id", "evt-ship-1");
	assert_header(m, "Cim-Correlation-Id", "corr-77");
	assert_header(m, "Cim-Causation-Id", "cause-78");
	assert_header(m, "Nats-Msg-Id", NULL);

	cr_assert_eq(cim_get_head(H.client, "order", "order-2", &head, &err),
		     CIM_ERR_OK);
	cr_assert_eq(head.version, 2);
	cr_assert_str_eq(head.head, r2->head);

	cim_event_block_free(&ev);
	natsMsg_Destroy(m);
	cim_append_result_destroy(r1);
	cim_append_result_destroy(r2);
}

Test(append, chain_links_every_event_to_the_one_before)
{
	enum { N = 8 };
	char cids[N + 1][CIM_CID_TEXT_MAX];
	uint64_t seqs[N + 1];
	cim_event_page *page = NULL;
	cim_error err = {0};

	for (int v = 1; v <= N; v++) {
		cim_append_result *r = h_append1("ledger", "L-1", v - 1,
						 "Posted", "{\"n\": 1}");

		cr_assert_eq(r->version, (uint64_t)v);
		strcpy(cids[v], r->events[0].cid);
		seqs[v] = r->events[0].seq;
		cim_append_result_destroy(r);
	}
	for (int v = 1; v <= N; v++) {
		cim_event_block ev;
		char cid[CIM_CID_TEXT_MAX], prev[CIM_CID_TEXT_MAX];
		natsMsg *m = h_stored_event(seqs[v], &ev, cid);

		cr_assert_str_eq(cid, cids[v], "version %d", v);
		cr_assert_eq(ev.version, (uint64_t)v);
		prev_text(&ev, prev);
		cr_assert_str_eq(prev, v == 1 ? "" : cids[v - 1],
				 "prev of version %d", v);
		if (v > 1)
			assert_header(m, "Cim-Prev", cids[v - 1]);
		cim_event_block_free(&ev);
		natsMsg_Destroy(m);
	}
	cr_assert_eq(cim_get(H.client, "ledger", "L-1", 1, 0, &page, &err),
		     CIM_ERR_OK);
	cr_assert_eq(page->n_events, N);
	for (size_t i = 0; i < page->n_events; i++) {
		cim_event *e = &page->events[i];

		cr_assert_eq(e->version, i + 1);
		cr_assert_str_eq(e->cid, cids[i + 1]);
		if (i == 0)
			cr_assert_null(e->prev);
		else
			cr_assert_str_eq(e->prev, cids[i]);
	}
	cim_event_page_destroy(page);
}

Test(append, cid_is_cidv1_dagcbor_blake2b_in_base32)
{
	cim_append_result *r = h_append1("order", "order-3", CIM_EXPECT_ANY,
					 "OrderPlaced", "{}");
	cim_cid c;
	uint64_t codec = 0, mh = 0;
	char back[CIM_CID_TEXT_MAX];

	cr_assert_eq(r->head[0], 'b', "multibase base32 starts with 'b'");
	for (const char *p = r->head + 1; *p; p++)
		cr_assert((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7'),
			  "base32 lower case: %s", r->head);
	cr_assert_eq(cim_cid_from_text(&c, r->head), 0);
	cr_assert_eq(cim_cid_info(&c, &codec, &mh), 0);
	cr_assert_eq(codec, CIM_CODEC_DAG_CBOR);
	cr_assert_eq(mh, CIM_MH_BLAKE2B_256);
	cr_assert_eq(c.b[0], 1, "CIDv1");
	cim_cid_to_text(&c, back);
	cr_assert_str_eq(back, r->head);
	cim_append_result_destroy(r);
}

/* JSON values go in and come back as the same JSON, with floats staying
 * floats and integers integers, both through the daemon and in the block. */
Test(append, data_values_round_trip)
{
	static const char data[] =
		"{\"f\": 2.0, \"e\": 1e2, \"i\": 2, \"neg\": -17,"
		" \"max\": 9223372036854775807, \"min\": -9223372036854775808,"
		" \"s\": \"\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80 \\\"q\\\" \\u00e9\","
		" \"n\": null, \"t\": true, \"no\": false,"
		" \"a\": [1, \"x\", [], {}], \"o\": {\"k\": {\"k\": [0.5]}}}";
	cim_append_result *r = h_append1("doc", "d-1", CIM_EXPECT_NO_STREAM,
					 "Written", data);
	h_reply rep;
	json_t *ev, *d;
	cim_event_block blk;
	char cid[CIM_CID_TEXT_MAX];
	natsMsg *m;

	h_request(&rep, H_PREFIX ".get.doc.d-1", "{}", -1);
	cr_assert_eq(rep.s, NATS_OK);
	cr_assert_eq(rep.status, 200, "Cim-Status of a success: %d", rep.status);
	ev = json_array_get(json_object_get(rep.json, "events"), 0);
	cr_assert_not_null(ev, "reply: %s", rep.body);
	d = json_object_get(ev, "data");
	json_eq_text(d, data);
	cr_assert(json_is_real(json_object_get(d, "f")), "2.0 stays a float");
	cr_assert(json_is_real(json_object_get(d, "e")), "1e2 stays a float");
	cr_assert(json_is_integer(json_object_get(d, "i")), "2 stays an int");
	cr_assert_eq(json_integer_value(json_object_get(d, "max")), INT64_MAX);
	cr_assert_eq(json_integer_value(json_object_get(d, "min")), INT64_MIN);
	/* The reply text itself writes the float with a point or exponent. */
	{
		const char *f = strstr(rep.body, "\"f\":");
		size_t k;

		cr_assert_not_null(f);
		f += 4;
		while (*f == ' ')
			f++;
		k = strspn(f, "0123456789.eE+-");
		cr_assert(memchr(f, '.', k) || memchr(f, 'e', k) ||
			  memchr(f, 'E', k),
			  "a float is written with a point or exponent: %.*s",
			  (int)k, f);
	}
	/* Every field the contract lists for an event as a reply. */
	{
		static const char *keys[] = {
			"aggregate_type", "aggregate_id", "version",
			"event_type", "event_id", "correlation_id",
			"causation_id", "timestamp", "metadata", "data",
			"prev", "cid", "seq"};

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			cr_assert_not_null(json_object_get(ev, keys[i]),
					   "event reply lacks %s", keys[i]);
		cr_assert(json_is_null(json_object_get(ev, "prev")));
		cr_assert(json_is_integer(json_object_get(ev, "seq")));
		cr_assert(json_is_integer(json_object_get(ev, "version")));
	}

	m = h_stored_event(r->events[0].seq, &blk, cid);
	cr_assert_str_eq(cid, r->head);
	json_eq_text(blk.data, data);
	cr_assert(json_is_real(json_object_get(blk.data, "f")));
	cr_assert(json_is_integer(json_object_get(blk.data, "i")));
	cim_event_block_free(&blk);
	natsMsg_Destroy(m);
	h_reply_free(&rep);
	cim_append_result_destroy(r);
}

Test(append, raw_append_reply_has_contract_shape_and_status_200)
{
	h_reply rep;
	json_t *e0;

	h_request(&rep, H_PREFIX ".append.order.raw-1",
		  "{\"expected_version\": \"no_stream\", \"events\": ["
		  "{\"event_type\": \"OrderPlaced\", \"data\": {\"total\": 1},"
		  " \"event_id\": \"raw-e1\"}]}", -1);
	cr_assert_eq(rep.s, NATS_OK, "%s", natsStatus_GetText(rep.s));
	cr_assert_eq(rep.status, 200, "Cim-Status %d, body %s", rep.status,
		     rep.body);
	cr_assert_null(json_object_get(rep.json, "error"), "%s", rep.body);
	cr_assert_str_eq(json_string_value(json_object_get(rep.json,
			 "aggregate_type")), "order");
	cr_assert_str_eq(json_string_value(json_object_get(rep.json,
			 "aggregate_id")), "raw-1");
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "version")), 1);
	e0 = json_array_get(json_object_get(rep.json, "events"), 0);
	cr_assert_not_null(e0, "%s", rep.body);
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 1);
	cr_assert_eq(json_integer_value(json_object_get(e0, "version")), 1);
	cr_assert_str_eq(json_string_value(json_object_get(e0, "event_id")),
			 "raw-e1");
	cr_assert(json_integer_value(json_object_get(e0, "seq")) > 0);
	cr_assert_str_eq(json_string_value(json_object_get(e0, "cid")),
			 json_string_value(json_object_get(rep.json, "head")));
	h_reply_free(&rep);
}

Test(append, batch_of_five_gets_consecutive_versions_and_batch_headers)
{
	cim_new_event evs[5];
	char ids[5][16], data[5][32];
	cim_append_result *r = NULL;
	cim_error err = {0};
	char *head0 = h_append_n("cart", "c-1", 2);
	cim_head head;

	for (int i = 0; i < 5; i++) {
		snprintf(ids[i], sizeof(ids[i]), "b5-%d", i + 1);
		snprintf(data[i], sizeof(data[i]), "{\"item\": %d}", i + 1);
		evs[i] = (cim_new_event){.event_type = "ItemAdded",
					 .data_json = data[i],
					 .event_id = ids[i]};
	}
	cr_assert_eq(cim_append(H.client, "cart", "c-1", 2, evs, 5, &r, &err),
		     CIM_ERR_OK, "%s: %s", cim_err_name(err.code), err.message);
	cr_assert_eq(r->version, 7);
	cr_assert_eq(r->n_events, 5);
	for (int i = 0; i < 5; i++) {
		cim_event_block ev;
		char cid[CIM_CID_TEXT_MAX], prev[CIM_CID_TEXT_MAX];
		char batch[16];
		natsMsg *m;

		cr_assert_eq(r->events[i].version, (uint64_t)(3 + i));
		cr_assert_str_eq(r->events[i].event_id, ids[i]);
		if (i > 0)
			cr_assert(r->events[i].seq > r->events[i - 1].seq);
		m = h_stored_event(r->events[i].seq, &ev, cid);
		cr_assert_str_eq(cid, r->events[i].cid);
		cr_assert_eq(ev.version, (uint64_t)(3 + i));
		prev_text(&ev, prev);
		cr_assert_str_eq(prev, i == 0 ? head0 : r->events[i - 1].cid);
		snprintf(batch, sizeof(batch), "%d/5", i + 1);
		assert_header(m, "Cim-Batch", batch);
		assert_header(m, "Cim-Version", NULL);
		cim_event_block_free(&ev);
		natsMsg_Destroy(m);
	}
	cr_assert_str_eq(r->head, r->events[4].cid);
	cr_assert_eq(cim_get_head(H.client, "cart", "c-1", &head, &err),
		     CIM_ERR_OK);
	cr_assert_eq(head.version, 7);
	cr_assert_str_eq(head.head, r->head);
	free(head0);
	cim_append_result_destroy(r);
}

/* A raw batch whose third event is bad (third: the event's JSON text) is
 * refused with want and stores none of the five. */
static void bad_third(const char *label, const char *third, const char *want)
{
	const char *ok = "{\"event_type\": \"ItemAdded\", \"data\": {\"ok\": true}}";
	char *body = h_strf("{\"events\": [%s, %s, %s, %s, %s]}", ok, ok, third,
			    ok, ok);
	cim_error err = {0};
	cim_head before, after;
	uint64_t msgs;
	h_reply rep;

	cr_assert_eq(cim_get_head(H.client, "cart", "c-2", &before, &err),
		     CIM_ERR_OK);
	msgs = h_stream_msgs();
	h_request(&rep, H_PREFIX ".append.cart.c-2", body, -1);
	cr_assert_eq(rep.s, NATS_OK, "%s: no reply", label);
	cr_assert_not_null(h_error_code(&rep), "%s: %s", label, rep.body);
	cr_assert_str_eq(h_error_code(&rep), want, "%s: %s", label, rep.body);
	cr_assert_eq(rep.status, 400, "%s", label);
	cr_assert_eq(cim_get_head(H.client, "cart", "c-2", &after, &err),
		     CIM_ERR_OK);
	cr_assert_eq(after.version, before.version, "%s: version changed",
		     label);
	cr_assert_str_eq(after.head, before.head);
	cr_assert_eq(h_stream_msgs(), msgs, "%s: something was stored", label);
	h_reply_free(&rep);
	free(body);
}

Test(append, batch_with_an_invalid_third_event_stores_nothing)
{
	char deep[2100];
	size_t k = 0;

	free(h_append_n("cart", "c-2", 3));
	bad_third("bad event_type",
		  "{\"event_type\": \"9bad\", \"data\": {}}",
		  "invalid_argument");
	bad_third("event_type with a dot",
		  "{\"event_type\": \"Item.Added\", \"data\": {}}",
		  "invalid_argument");
	bad_third("integer out of range",
		  "{\"event_type\": \"ItemAdded\","
		  " \"data\": {\"n\": 99999999999999999999}}",
		  "invalid_argument");
	bad_third("event_id over 128 bytes",
		  "{\"event_type\": \"ItemAdded\", \"data\": 1,"
		  " \"event_id\": \"" "0123456789012345678901234567890123456789"
		  "0123456789012345678901234567890123456789"
		  "0123456789012345678901234567890123456789" "012345678\"}",
		  "invalid_argument");
	bad_third("unknown field",
		  "{\"event_type\": \"ItemAdded\", \"data\": 1,"
		  " \"colour\": \"red\"}",
		  "invalid_request");
	k = (size_t)snprintf(deep, sizeof(deep),
			     "{\"event_type\": \"ItemAdded\", \"data\": ");
	for (int i = 0; i < 1000; i++)
		deep[k++] = '[';
	for (int i = 0; i < 1000; i++)
		deep[k++] = ']';
	deep[k++] = '}';
	deep[k] = '\0';
	bad_third("data nested 1000 deep", deep, "invalid_request");
	/* And the aggregate still takes a good event afterwards. */
	{
		cim_append_result *r = h_append1("cart", "c-2", 3, "ItemAdded",
						 "{}");

		cr_assert_eq(r->version, 4);
		cim_append_result_destroy(r);
	}
}

static void assert_same_reply(const cim_append_result *a,
			      const cim_append_result *b)
{
	cr_assert_eq(a->version, b->version);
	cr_assert_str_eq(a->head, b->head);
	cr_assert_str_eq(a->aggregate_type, b->aggregate_type);
	cr_assert_str_eq(a->aggregate_id, b->aggregate_id);
	cr_assert_eq(a->n_events, b->n_events);
	for (size_t i = 0; i < a->n_events; i++) {
		cr_assert_eq(a->events[i].version, b->events[i].version);
		cr_assert_str_eq(a->events[i].cid, b->events[i].cid);
		cr_assert_str_eq(a->events[i].event_id, b->events[i].event_id);
		cr_assert_eq(a->events[i].seq, b->events[i].seq);
	}
}

Test(append, retry_with_same_event_ids_returns_the_original_reply)
{
	cim_new_event evs[2] = {
		{.event_type = "AccountOpened", .data_json = "{\"owner\": \"bo\"}",
		 .event_id = "acc-e1", .metadata_json = "{\"m\": \"1\"}"},
		{.event_type = "Deposited", .data_json = "{\"amount\": 10}",
		 .event_id = "acc-e2"},
	};
	cim_append_result *r1 = NULL, *r2 = NULL, *r3 = NULL, *one = NULL,
			  *one2 = NULL;
	cim_error err = {0};
	uint64_t msgs;
	cim_head head;
	cim_new_event single = {.event_type = "Deposited",
				.data_json = "{\"amount\": 5}",
				.event_id = "acc-e3"};

	cr_assert_eq(cim_append(H.client, "account", "a-1",
				CIM_EXPECT_NO_STREAM, evs, 2, &r1, &err),
		     CIM_ERR_OK, "%s", err.message);
	msgs = h_stream_msgs();

	/* The same request again: same reply, no conflict though the
	 * aggregate is no longer new, nothing stored twice. */
	cr_assert_eq(cim_append(H.client, "account", "a-1",
				CIM_EXPECT_NO_STREAM, evs, 2, &r2, &err),
		     CIM_ERR_OK, "retry: %s: %s", cim_err_name(err.code),
		     err.message);
	assert_same_reply(r1, r2);
	cr_assert_eq(h_stream_msgs(), msgs, "a retry stored a duplicate");
	cr_assert_eq(cim_append(H.client, "account", "a-1", CIM_EXPECT_ANY,
				evs, 2, &r3, &err),
		     CIM_ERR_OK, "retry with any: %s", err.message);
	assert_same_reply(r1, r3);
	cr_assert_eq(h_stream_msgs(), msgs);
	cr_assert_eq(cim_get_head(H.client, "account", "a-1", &head, &err),
		     CIM_ERR_OK);
	cr_assert_eq(head.version, 2);

	/* A single event, retried with the exact expected version it had. */
	cr_assert_eq(cim_append(H.client, "account", "a-1", 2, &single, 1,
				&one, &err), CIM_ERR_OK, "%s", err.message);
	msgs = h_stream_msgs();
	cr_assert_eq(cim_append(H.client, "account", "a-1", 2, &single, 1,
				&one2, &err), CIM_ERR_OK,
		     "retry: %s: %s", cim_err_name(err.code), err.message);
	assert_same_reply(one, one2);
	cr_assert_eq(h_stream_msgs(), msgs);
	cr_assert_eq(cim_get_head(H.client, "account", "a-1", &head, &err),
		     CIM_ERR_OK);
	cr_assert_eq(head.version, 3);

	cim_append_result_destroy(r1);
	cim_append_result_destroy(r2);
	cim_append_result_destroy(r3);
	cim_append_result_destroy(one);
	cim_append_result_destroy(one2);
}

Test(append, same_event_id_with_other_content_is_duplicate_event)
{
	cim_new_event e = {.event_type = "AccountOpened",
			   .data_json = "{\"owner\": \"cy\"}",
			   .event_id = "dup-e1"};
	cim_new_event other = e;
	cim_append_result *r = NULL;
	cim_error err = {0};
	uint64_t msgs;
	cim_head head;
	h_reply rep;
	cim_err rc;

	cr_assert_eq(cim_append(H.client, "account", "a-2", CIM_EXPECT_ANY, &e,
				1, &r, &err), CIM_ERR_OK, "%s", err.message);
	cim_append_result_destroy(r);
	r = NULL;
	msgs = h_stream_msgs();

	other.data_json = "{\"owner\": \"someone else\"}";
	rc = cim_append(H.client, "account", "a-2", CIM_EXPECT_ANY, &other, 1,
			&r, &err);
	cr_assert_eq(rc, CIM_ERR_DUPLICATE_EVENT, "got %s: %s",
		     cim_err_name(rc), err.message);
	cr_assert_str_eq(err.event_id, "dup-e1");
	cr_assert_null(r);

	h_request(&rep, H_PREFIX ".append.account.a-2",
		  "{\"events\": [{\"event_type\": \"AccountOpened\","
		  " \"data\": {\"owner\": \"eve\"}, \"event_id\": \"dup-e1\"}]}",
		  -1);
	cr_assert_eq(rep.s, NATS_OK);
	cr_assert_str_eq(h_error_code(&rep), "duplicate_event", "%s", rep.body);
	cr_assert_eq(rep.status, 409);
	cr_assert_str_eq(h_error_str(&rep, "event_id"), "dup-e1");
	h_reply_free(&rep);

	cr_assert_eq(h_stream_msgs(), msgs);
	cr_assert_eq(cim_get_head(H.client, "account", "a-2", &head, &err),
		     CIM_ERR_OK);
	cr_assert_eq(head.version, 1);
}

Test(append, aggregates_are_separate_by_type_and_id)
{
	cim_append_result *a = h_append1("order", "x-1", CIM_EXPECT_NO_STREAM,
					 "OrderPlaced", "1");
	cim_append_result *b = h_append1("invoice", "x-1",
					 CIM_EXPECT_NO_STREAM, "Issued", "2");
	cim_append_result *c = h_append1("order", "x-2", CIM_EXPECT_NO_STREAM,
					 "OrderPlaced", "1");
	cim_head h;
	cim_error err = {0};

	cr_assert_eq(a->version, 1);
	cr_assert_eq(b->version, 1);
	cr_assert_eq(c->version, 1);
	cr_assert_str_neq(a->head, c->head, "different ids, different blocks");
	cr_assert_eq(cim_get_head(H.client, "invoice", "x-1", &h, &err),
		     CIM_ERR_OK);
	cr_assert_str_eq(h.head, b->head);
	cim_append_result_destroy(a);
	cim_append_result_destroy(b);
	cim_append_result_destroy(c);
}

Test(append, longest_tokens_and_every_id_character_are_accepted)
{
	char type[65], id[129], evtype[65];
	cim_append_result *r;
	cim_event_block ev;
	char cid[CIM_CID_TEXT_MAX], *subject;
	natsMsg *m;

	memset(type, 'T', 64);
	type[64] = '\0';
	memset(evtype, 'e', 64);
	evtype[64] = '\0';
	memset(id, 'i', 128);
	memcpy(id, "a_b:c@d+e=f-9Z", 14);
	id[128] = '\0';
	r = h_append1(type, id, CIM_EXPECT_ANY, evtype, "{}");
	cr_assert_eq(r->version, 1);
	m = h_stored_event(r->events[0].seq, &ev, cid);
	subject = h_strf("events.%s.%s.%s", type, id, evtype);
	cr_assert_str_eq(natsMsg_GetSubject(m), subject);
	cr_assert_str_eq(ev.aggregate_id, id);
	cr_assert_str_eq(cid, r->head);
	free(subject);
	cim_event_block_free(&ev);
	natsMsg_Destroy(m);
	cim_append_result_destroy(r);
}

/* Within the idempotency window a retry is recognised even when other
 * events came after it. */
Test(append, retry_of_an_older_append_within_the_window)
{
	cim_new_event a = {.event_type = "First", .data_json = "{\"a\": 1}",
			   .event_id = "win-a"};
	cim_new_event b = {.event_type = "Second", .data_json = "{\"b\": 2}",
			   .event_id = "win-b"};
	cim_append_result *ra = NULL, *rb = NULL, *again = NULL;
	cim_error err = {0};
	cim_head head;
	uint64_t msgs;

	cr_assert_eq(cim_append(H.client, "order", "win-1",
				CIM_EXPECT_NO_STREAM, &a, 1, &ra, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(cim_append(H.client, "order", "win-1", 1, &b, 1, &rb,
				&err), CIM_ERR_OK, "%s", err.message);
	msgs = h_stream_msgs();
	cr_assert_eq(cim_append(H.client, "order", "win-1",
				CIM_EXPECT_NO_STREAM, &a, 1, &again, &err),
		     CIM_ERR_OK, "retry of the older append: %s: %s",
		     cim_err_name(err.code), err.message);
	assert_same_reply(ra, again);
	cr_assert_eq(h_stream_msgs(), msgs);
	cr_assert_eq(cim_get_head(H.client, "order", "win-1", &head, &err),
		     CIM_ERR_OK);
	cr_assert_eq(head.version, 2);
	cr_assert_str_eq(head.head, rb->head);
	cim_append_result_destroy(ra);
	cim_append_result_destroy(rb);
	cim_append_result_destroy(again);
}
