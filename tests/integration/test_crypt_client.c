/*
 * test_crypt_client.c: the data of encrypted aggregates on the reader's
 * side of the stream: the decrypt operation as a client in any language
 * meets it (ciphertexts taken from the stream, refusals named by item),
 * and the client library's subscriptions, replays and projections, which
 * hand out data decrypted through it in few requests (batched), pages
 * that a small NATS payload limit cuts short, and no_decrypt.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/hcrypt.h"
#include "dagcbor.h"
#include "jsonread.h"

TestSuite(crypt_client, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 120);
/* the same with a nats-server of its own configuration */
TestSuite(crypt_client_conf, .fini = h_teardown, .timeout = 120);

/* Appends per events of about size bytes to each of n aggregates
 * customer/c-<i>, in appends of up to 100 (and 16 KB). */
static void fill(int n, int per, size_t size)
{
	char *pad = malloc(size + 1);
	memset(pad, 'p', size);
	pad[size] = '\0';
	for (int i = 0; i < n; i++) {
		char id[24];
		snprintf(id, sizeof id, "c-%d", i);
		int chunk = size > 160 ? 16000 / (int)size : 100;
		for (int v = 0; v < per; v += chunk) {
			int k = per - v < chunk ? per - v : chunk;
			cim_new_event ev[100];
			char *data[100];
			for (int j = 0; j < k; j++) {
				data[j] = h_strf("{\"agg\": %d, \"v\": %d, \"pad\": \"%s\"}", i,
						 v + j + 1, pad);
				ev[j] = (cim_new_event){.event_type = "Booked", .data_json = data[j]};
			}
			cim_append_result *r = NULL;
			cim_error err;
			cr_assert_eq(cim_append(H.client, "customer", id, v, ev, (size_t)k, &r, &err),
				     CIM_ERR_OK, "%s", err.message);
			cim_append_result_destroy(r);
			for (int j = 0; j < k; j++)
				free(data[j]);
		}
	}
	free(pad);
}

/* Requests of op counted by the daemon's info. */
static long requests_of(const char *op)
{
	h_reply r;
	h_requestf(&r, "{}", "%s.info", H_PREFIX);
	long n = (long)json_integer_value(json_object_get(
		json_object_get(json_object_get(json_object_get(r.json, "counters"), "operations"),
				op),
		"requests"));
	h_reply_free(&r);
	return n;
}

/* The decrypt item of the stored event at seq: {aggregate_id, event_id,
 * data}, its data as stored (base64 of the byte string's contents). */
static json_t *item_of(uint64_t seq, bool tamper)
{
	natsMsg *m = h_stream_get(seq);
	cim_event_view v;
	const uint8_t *enc;
	size_t len;
	char err[200];

	cr_assert_eq(cim_event_check((const uint8_t *)natsMsg_GetData(m),
				     (size_t)natsMsg_GetDataLength(m), &v, err, sizeof err), 0);
	cr_assert(cim_event_encrypted(&v, &enc, &len));
	uint8_t *copy = malloc(len);
	memcpy(copy, enc, len);
	if (tamper)
		copy[len / 2] ^= 1;
	char *b64 = malloc(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL));
	sodium_bin2base64(b64, sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL),
			  copy, len, sodium_base64_VARIANT_ORIGINAL);
	json_t *o = json_pack("{ss# ss# ss}", "aggregate_id", v.aggregate_id,
			      (int)v.aggregate_id_len, "event_id", v.event_id, (int)v.event_id_len,
			      "data", b64);
	free(copy);
	free(b64);
	natsMsg_Destroy(m);
	return o;
}

static void decrypt(h_reply *r, const char *type, json_t *items)
{
	json_t *req = json_pack("{so}", "items", items);
	char *body = json_dumps(req, JSON_COMPACT);
	hc_request(r, "decrypt", type, NULL, body);
	free(body);
	json_decref(req);
}

Test(crypt_client, the_decrypt_operation)
{
	char *key = hc_master_key("master.key");
	h_reply r;

	hc_daemon(key, "customer", NULL);
	cim_append_result *a = h_append1("customer", "c-1", CIM_EXPECT_ANY, "A",
					 "{\"x\": [1, 2.5, \"three\"]}");
	cim_append_result *b = h_append1("customer", "c-2", CIM_EXPECT_ANY, "A", "\"two\"");
	cim_append_result *c = h_append1("customer", "c-3", CIM_EXPECT_ANY, "A", "{}");
	json_t *forgotten_item = item_of(c->events[0].seq, false);
	hc_request(&r, "forget", "customer", "c-3", "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);

	/* item for item, in order: values exactly as get shows them */
	decrypt(&r, "customer", json_pack("[ooo]", item_of(a->events[0].seq, false),
					  item_of(b->events[0].seq, false), forgotten_item));
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.body, "{\"items\":[{\"data\":{\"x\":[1,2.5,\"three\"]}},"
				 "{\"data\":\"two\"},{\"forgotten\":true}]}");
	h_reply_free(&r);

	/* refusals name the item */
	decrypt(&r, "customer", json_pack("[oo]", item_of(a->events[0].seq, false),
					  item_of(b->events[0].seq, true)));
	cr_assert_str_eq(h_error_code(&r), "invalid_argument", "%s", r.body);
	cr_assert_str_eq(h_error_str(&r, "field"), "items[1].data");
	h_reply_free(&r);
	json_t *moved = item_of(a->events[0].seq, false);
	json_object_set_new(moved, "aggregate_id", json_string("c-2"));
	decrypt(&r, "customer", json_pack("[o]", moved));
	cr_assert_str_eq(h_error_str(&r, "field"), "items[0].data", "another aggregate's key: %s",
			 r.body);
	h_reply_free(&r);
	json_t *other_id = item_of(a->events[0].seq, false);
	json_object_set_new(other_id, "event_id", json_string("not-this-one"));
	decrypt(&r, "customer", json_pack("[o]", other_id));
	cr_assert_str_eq(h_error_str(&r, "field"), "items[0].data", "another event_id: %s",
			 r.body);
	h_reply_free(&r);

	static const struct {
		const char *body, *code, *field;
	} bad[] = {
		{"not json", "invalid_request", NULL},
		{"{}", "invalid_request", "items"},
		{"{\"items\": []}", "invalid_argument", "items"},
		{"{\"items\": [1]}", "invalid_request", "items[0]"},
		{"{\"items\": [{\"aggregate_id\": \"c-1\", \"event_id\": \"e\"}]}",
		 "invalid_request", "items[0].data"},
		{"{\"items\": [{\"aggregate_id\": \"c 1\", \"event_id\": \"e\", \"data\": \"\"}]}",
		 "invalid_argument", "items[0].aggregate_id"},
		{"{\"items\": [{\"aggregate_id\": \"c-1\", \"event_id\": \"e\", \"data\": \"@@\"}]}",
		 "invalid_argument", "items[0].data"},
		{"{\"items\": [{\"aggregate_id\": \"c-1\", \"event_id\": \"e\", \"data\": \"AAAA\"}]}",
		 "invalid_argument", "items[0].data"},
		{"{\"items\": [{\"aggregate_id\": \"c-1\", \"event_id\": \"e\", \"data\": \"AAAA\", "
		 "\"x\": 1}]}", "invalid_request", NULL},
		{"{\"items\": [], \"more\": 1}", "invalid_request", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		hc_request(&r, "decrypt", "customer", NULL, bad[i].body);
		cr_assert_str_eq(h_error_code(&r), bad[i].code, "%zu: %s", i, r.body);
		if (bad[i].field)
			cr_assert_str_eq(h_error_str(&r, "field"), bad[i].field, "%zu: %s", i,
					 r.body);
		h_reply_free(&r);
	}
	h_requestf(&r, "{}", "%s.decrypt", H_PREFIX);
	cr_assert_str_eq(h_error_code(&r), "invalid_request", "%s", r.body);
	h_reply_free(&r);
	h_requestf(&r, "{}", "%s.decrypt.customer.c-1", H_PREFIX);
	cr_assert_str_eq(h_error_code(&r), "invalid_request", "%s", r.body);
	h_reply_free(&r);
	h_requestf(&r, "{}", "%s.decrypt.9bad", H_PREFIX);
	cr_assert_str_eq(h_error_code(&r), "invalid_argument", "%s", r.body);
	h_reply_free(&r);
	cim_append_result_destroy(a);
	cim_append_result_destroy(b);
	cim_append_result_destroy(c);
	free(key);
}

struct tally {
	size_t n, forgotten, plain;
	uint64_t last_seq;
};

static json_int_t keys_cached(void)
{
	h_reply r;

	h_requestf(&r, "{}", "%s.info", H_PREFIX);
	json_t *dk = json_object_get(json_object_get(r.json, "encryption"), "data_keys");
	json_int_t n = json_integer_value(json_object_get(dk, "cached"));
	h_reply_free(&r);
	return n;
}

/* decrypt naming aggregates that do not exist answers forgotten and keeps
 * nothing in the cache of data keys (a reader could fill it, and a "no
 * key" kept there must never stand for an aggregate whose first append,
 * made after a forget of another one, then makes its key) */
Test(crypt_client, decrypt_of_unknown_aggregates_keeps_nothing)
{
	char *key = hc_master_key("master.key");
	cim_append_result *a = NULL;
	h_reply r;

	hc_daemon(key, "customer", NULL);
	a = h_append1("customer", "c-1", CIM_EXPECT_ANY, "A", "{\"x\": 1}");
	json_t *items = json_array();
	char id[16];
	for (int i = 0; i < 20; i++) {
		json_t *it = item_of(a->events[0].seq, false);
		snprintf(id, sizeof id, "n-%d", i);
		json_object_set_new(it, "aggregate_id", json_string(id));
		json_array_append_new(items, it);
	}
	json_int_t before = keys_cached();
	decrypt(&r, "customer", items);
	cr_assert_eq(r.status, 200, "%s", r.body);
	json_t *e;
	size_t i;
	json_array_foreach(json_object_get(r.json, "items"), i, e)
		cr_assert(json_is_true(json_object_get(e, "forgotten")), "%s", r.body);
	h_reply_free(&r);
	cr_assert_eq(keys_cached(), before, "decrypt of unknown aggregates filled the cache");

	/* a forget of another aggregate, then their first appends: encrypted */
	hc_request(&r, "forget", "customer", "c-1", "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);
	for (int k = 0; k < 20; k += 5) {
		snprintf(id, sizeof id, "n-%d", k);
		cim_append_result *n = h_append1("customer", id, CIM_EXPECT_NO_STREAM, "A",
						 "{\"y\": 2}");
		natsMsg *m = h_stream_get(n->events[0].seq);
		cim_event_view v;
		char err[200];
		cr_assert_eq(cim_event_check((const uint8_t *)natsMsg_GetData(m),
					     (size_t)natsMsg_GetDataLength(m), &v, err, sizeof err), 0);
		cr_assert(cim_event_encrypted(&v, NULL, NULL), "n-%d stored plain", k);
		natsMsg_Destroy(m);
		cim_append_result_destroy(n);
	}
	cim_append_result_destroy(a);
	free(key);
}

static int count(void *ctx, const cim_event *ev)
{
	struct tally *t = ctx;
	json_t *d = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);

	cr_assert_gt(ev->seq, t->last_seq);
	t->last_seq = ev->seq;
	if (ev->forgotten) {
		cr_assert_str_eq(ev->data_json, "null");
		t->forgotten++;
	} else if (!ev->encrypted) {
		t->plain++;
	} else {
		cr_assert_eq((uint64_t)json_integer_value(json_object_get(d, "v")), ev->version,
			     "%s", ev->data_json);
	}
	json_decref(d);
	t->n++;
	return 0;
}

Test(crypt_client, projections_get_decrypted_data_in_few_requests)
{
	char *key = hc_master_key("master.key");
	cim_projection *p = NULL;
	cim_error err;
	struct tally t = {0};
	h_reply r;

	hc_daemon(key, "customer", NULL);
	fill(20, 100, 40);
	cim_append_result_destroy(h_append1("order", "o-1", CIM_EXPECT_ANY, "Booked",
					    "{\"v\": 1}"));
	hc_request(&r, "forget", "customer", "c-0", "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);

	long before = requests_of("decrypt");
	cim_projection_options po = {.name = "crypt-proj", .pattern = "events.>"};
	cr_assert_eq(cim_projection_open(H.client, &po, &p, &err), CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(cim_projection_run(p, count, &t, 1000, &err), CIM_ERR_OK, "%s", err.message);
	cim_projection_close(p);
	long asked = requests_of("decrypt") - before;
	cr_assert_eq(t.n, 2002, "every event once");
	cr_assert_eq(t.forgotten, 100, "c-0's events");
	cr_assert_eq(t.plain, 2, "order/o-1 and the CimForgotten event");
	cr_assert_leq(asked, 40, "%ld decrypt requests for 1,900 events", asked);
	cr_assert_geq(asked, 2);
	free(key);
}

Test(crypt_client_conf, a_small_payload_limit_cuts_requests_and_replies)
{
	h_setup_nats_conf("max_payload: 32768\n");
	cim_error err;
	cr_assert_eq(natsConnection_ConnectTo(&H.nc, H.nats.url), NATS_OK);
	cr_assert_eq(natsConnection_JetStream(&H.js, H.nc, NULL), NATS_OK);
	cr_assert_eq(cim_client_connect(&H.client, H.nats.url, NULL, &err), CIM_ERR_OK);
	char *key = hc_master_key("master.key");
	struct tally t = {0};

	hc_daemon(key, "customer", NULL);
	/* 300 events of 1 KB: several requests, each within 32 KB */
	fill(3, 100, 1000);
	/* and data whose JSON text is 4.5 times its sent base64 (control
	 * characters): replies the daemon cuts short, the rest asked again */
	char *ctl = malloc(6 * 3000 + 1);
	for (int i = 0; i < 3000; i++)
		memcpy(ctl + 6 * i, "\\u0001", 6);
	ctl[6 * 3000] = '\0';
	for (int v = 1; v <= 8; v++) {
		char *data = h_strf("{\"v\": %d, \"ctl\": \"%s\"}", v, ctl);
		cim_append_result_destroy(h_append1("customer", "ctl", v - 1, "Booked", data));
		free(data);
	}
	free(ctl);
	long before = requests_of("decrypt");
	cim_subscribe_options so = {.pattern = "events.customer.>"};
	cr_assert_eq(cim_replay(H.client, &so, count, NULL, &t, &err), CIM_ERR_OK, "%s",
		     err.message);
	cr_assert_eq(t.n, 308);
	cr_assert_eq(t.forgotten + t.plain, 0);
	long asked = requests_of("decrypt") - before;
	cr_assert_geq(asked, 10, "%ld requests: each carries at most 32 KB", asked);
	free(key);
}

Test(crypt_client, no_decrypt_hands_out_null)
{
	char *key = hc_master_key("master.key");
	cim_subscription *sub = NULL;
	cim_subscribe_options so = {.pattern = "events.>", .stop_at_end = true, .no_decrypt = true};
	const cim_event *ev;
	cim_error err;

	hc_daemon(key, "customer", NULL);
	cim_append_result_destroy(h_append1("customer", "c-1", CIM_EXPECT_ANY, "A", "{\"a\": 1}"));
	long before = requests_of("decrypt");
	cr_assert_eq(cim_subscribe(H.client, &so, &sub, &err), CIM_ERR_OK);
	cr_assert_eq(cim_subscription_next(sub, 5000, &ev, &err), CIM_ERR_OK, "%s", err.message);
	cr_assert_not_null(ev);
	cr_assert(ev->encrypted);
	cr_assert_not(ev->forgotten);
	cr_assert_str_eq(ev->data_json, "null");
	cim_subscription_close(sub);
	cr_assert_eq(requests_of("decrypt"), before);
	free(key);
}

/* Event ids and data holding U+0000 (any JSON string is taken, issue 12):
 * the ciphertext is bound to the event_id with its length, so get and a
 * subscription (through the decrypt operation) give the data back. */
Test(crypt_client, ids_and_data_holding_nul)
{
	static const char eid[] = "e\0x";
	static const char data[] = "{\"s\": \"a\\u0000b\", \"k\\u0000\": 1}";
	char *key = hc_master_key("master.key");
	cim_new_event ne = {.event_type = "A", .data_json = data, .event_id = eid,
			    .event_id_len = sizeof eid - 1};
	cim_append_result *res = NULL;
	cim_event_page *page = NULL;
	cim_subscription *sub = NULL;
	cim_subscribe_options so = {.pattern = "events.customer.>", .stop_at_end = true};
	const cim_event *ev;
	cim_error err = {0};
	json_error_t je;

	hc_daemon(key, "customer", NULL);
	cr_assert_eq(cim_append(H.client, "customer", "c-nul", CIM_EXPECT_NO_STREAM, &ne, 1,
				&res, &err), CIM_ERR_OK, "%s", err.message);
	cim_append_result_destroy(res);
	cr_assert_eq(cim_get(H.client, "customer", "c-nul", 1, 0, &page, &err), CIM_ERR_OK,
		     "%s", err.message);
	cr_assert(page->events[0].encrypted);
	cr_assert_eq(page->events[0].event_id_len, sizeof eid - 1);
	json_t *want = cim_json_read(data, strlen(data), 0, &je);
	json_t *got = cim_json_read(page->events[0].data_json,
				    strlen(page->events[0].data_json), 0, &je);
	cr_assert(want != NULL && got != NULL && cim_json_same(want, got), "%s",
		  page->events[0].data_json);
	json_decref(got);
	cim_event_page_destroy(page);

	cr_assert_eq(cim_subscribe(H.client, &so, &sub, &err), CIM_ERR_OK);
	cr_assert_eq(cim_subscription_next(sub, 5000, &ev, &err), CIM_ERR_OK, "%s", err.message);
	cr_assert_not_null(ev);
	cr_assert(ev->encrypted);
	cr_assert_eq(ev->event_id_len, sizeof eid - 1);
	got = cim_json_read(ev->data_json, strlen(ev->data_json), 0, &je);
	cr_assert(got != NULL && cim_json_same(want, got), "%s", ev->data_json);
	json_decref(got);
	json_decref(want);
	cim_subscription_close(sub);
	free(key);
}
