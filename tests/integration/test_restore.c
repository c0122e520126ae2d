/*
 * test_restore.c: <prefix>.restore.<type>.<id>: blocks stored exactly as
 * given (same CIDs, same bytes), replying like an append, continuing a
 * head, sealed when the store signs and carrying the seals given; every
 * kind of refusal, each leaving the stream as it was; retries answered
 * as the first time, also after the head moved on; all or nothing across
 * a kill.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/blocks.h"
#include "../support/harness.h"
#include "keyblock.h"
#include "seal.h"

TestSuite(restore, .init = h_setup, .fini = h_teardown, .timeout = 90);

static h_reply restore(const char *id, const char *body)
{
	h_reply r;

	h_requestf(&r, body, H_PREFIX ".restore.order.%s", id);
	cr_assert_eq(r.s, NATS_OK, "restore %s: no reply", id);
	return r;
}

/* The reply says the blocks are stored as versions first.., with their
 * CIDs, in one batch of n (batch_of: or of that many); returns the
 * reply's events array. */
static json_t *assert_stored_in(const h_reply *r, const tb_block *b, size_t n, uint64_t first,
				size_t batch_of)
{
	cr_assert_eq(r->status, 200, "%s", r->body);
	cr_assert_str_eq(json_string_value(json_object_get(r->json, "aggregate_type")), "order");
	cr_assert_eq(json_integer_value(json_object_get(r->json, "version")),
		     (json_int_t)(first + n - 1), "%s", r->body);
	cr_assert_str_eq(json_string_value(json_object_get(r->json, "head")), b[n - 1].cid_text);
	json_t *evs = json_object_get(r->json, "events");
	cr_assert_eq(json_array_size(evs), n);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(evs, i);
		uint64_t seq = (uint64_t)json_integer_value(json_object_get(e, "seq"));
		natsMsg *m = h_stream_get(seq);

		cr_assert_eq(json_integer_value(json_object_get(e, "version")),
			     (json_int_t)(first + i));
		cr_assert_str_eq(json_string_value(json_object_get(e, "cid")), b[i].cid_text);
		/* the bytes as given */
		cr_assert_eq((size_t)natsMsg_GetDataLength(m), b[i].bytes.len);
		cr_assert_eq(memcmp(natsMsg_GetData(m), b[i].bytes.p, b[i].bytes.len), 0);
		cr_assert_str_eq(h_header(m, "Cim-Cid"), b[i].cid_text);
		if (batch_of > 1) {
			char want[48];
			snprintf(want, sizeof(want), "%zu/%zu", i + 1, batch_of);
			cr_assert_str_eq(h_header(m, "Cim-Batch"), want);
		}
		natsMsg_Destroy(m);
	}
	return evs;
}

static json_t *assert_stored(const h_reply *r, const tb_block *b, size_t n, uint64_t first)
{
	return assert_stored_in(r, b, n, first, n);
}

static void assert_refused(const char *id, const char *body, const char *code,
			   const char *field)
{
	uint64_t before = h_stream_msgs();
	h_reply r = restore(id, body);

	cr_assert_str_eq(h_error_code(&r), code, "%s", r.body);
	if (field != NULL)
		cr_assert_str_eq(h_error_str(&r, "field"), field, "%s", r.body);
	cr_assert_eq(h_stream_msgs(), before, "a refused restore stored something");
	h_reply_free(&r);
}

Test(restore, blocks_are_stored_as_given_into_an_empty_aggregate)
{
	tb_block b[4];
	tb_chain(b, 4, "order", "r-1", 1, NULL);
	char *body = tb_restore_body(b, 4, NULL, 0, NULL);
	h_reply r = restore("r-1", body);

	assert_stored(&r, b, 4, 1);
	h_reply_free(&r);
	/* the daemon knows the head, get and validate agree */
	h_requestf(&r, "{}", H_PREFIX ".head.order.r-1");
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "head")), b[3].cid_text);
	h_reply_free(&r);
	h_requestf(&r, "{}", H_PREFIX ".validate.order.r-1");
	cr_assert(json_is_true(json_object_get(r.json, "valid")), "%s", r.body);
	h_reply_free(&r);
	h_requestf(&r, "{}", H_PREFIX ".get.order.r-1");
	cr_assert_str_eq(json_string_value(json_object_get(
		json_array_get(json_object_get(r.json, "events"), 1), "event_id")), "r-1-v2");
	h_reply_free(&r);
	/* an append goes on from there */
	cim_append_result *a = h_append1("order", "r-1", 4, "Shipped", "{}");
	cr_assert_eq(a->version, 5);
	cim_append_result_destroy(a);
	/* not signing: no seal headers */
	natsMsg *m = h_stream_get(1);
	cr_assert_null(h_header(m, "Cim-Seal"));
	natsMsg_Destroy(m);
	free(body);
	tb_free(b, 4);
}

Test(restore, blocks_continue_an_aggregates_head)
{
	char *head = h_append_n("order", "r-2", 2);
	cim_cid prev;
	tb_block b[2];

	cr_assert_eq(cim_cid_from_text(&prev, head), 0);
	tb_chain(b, 2, "order", "r-2", 3, &prev);
	h_reply r = restore("r-2", tb_restore_body(b, 2, NULL, 0, NULL));
	assert_stored(&r, b, 2, 3);
	h_reply_free(&r);
	h_requestf(&r, "{}", H_PREFIX ".validate.order.r-2");
	cr_assert(json_is_true(json_object_get(r.json, "valid")), "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 4);
	h_reply_free(&r);
	free(head);
	tb_free(b, 2);
}

Test(restore, a_retry_answers_as_the_first_time_also_after_the_head_moved_on)
{
	tb_block b[3];
	tb_chain(b, 3, "order", "r-3", 1, NULL);
	char *body = tb_restore_body(b, 3, NULL, 0, NULL);
	h_reply r1 = restore("r-3", body), r2;

	assert_stored(&r1, b, 3, 1);
	uint64_t msgs = h_stream_msgs();
	r2 = restore("r-3", body);
	cr_assert_eq(r2.status, 200, "%s", r2.body);
	cr_assert(json_equal(r1.json, r2.json), "%s\nvs\n%s", r1.body, r2.body);
	cr_assert_eq(h_stream_msgs(), msgs, "the retry stored again");
	h_reply_free(&r2);

	/* the head moves on; the same retry still answers the same */
	free(h_append_n("order", "r-3", 0));
	cim_append_result *a = h_append1("order", "r-3", 3, "Shipped", "{}");
	cim_append_result_destroy(a);
	r2 = restore("r-3", body);
	cr_assert(json_equal(r1.json, r2.json), "%s\nvs\n%s", r1.body, r2.body);
	h_reply_free(&r2);

	/* the first two alone are stored too: answered with where they are */
	char *two = tb_restore_body(b, 2, NULL, 0, NULL);
	r2 = restore("r-3", two);
	json_t *evs = assert_stored_in(&r2, b, 2, 1, 3);
	cr_assert(json_equal(json_array_get(evs, 1),
			     json_array_get(json_object_get(r1.json, "events"), 1)));
	h_reply_free(&r2);
	/* and blocks other than the stored ones at those versions: moved on */
	tb_block c[1];
	tb_make(&c[0], "order", "r-3", 1, "Placed", "{\"other\": 1}", NULL, NULL, 0);
	r2 = restore("r-3", tb_restore_body(c, 1, NULL, 0, NULL));
	cr_assert_str_eq(h_error_code(&r2), "wrong_expected_version", "%s", r2.body);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(r2.json, "error"),
							"current")), 4);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(r2.json, "error"),
							"expected")), 0);
	h_reply_free(&r2);
	h_reply_free(&r1);
	free(body);
	free(two);
	tb_free(b, 3);
	tb_free(c, 1);
}

Test(restore, every_kind_of_refusal_stores_nothing)
{
	tb_block b[3], x;
	tb_chain(b, 3, "order", "r-4", 1, NULL);
	free(h_append_n("order", "seed", 1)); /* the stream has a message */

	assert_refused("r-4", "not json", "invalid_request", NULL);
	assert_refused("r-4", "{}", "invalid_request", "blocks");
	assert_refused("r-4", "{\"blocks\": []}", "invalid_argument", "blocks");
	assert_refused("r-4", "{\"blocks\": \"x\"}", "invalid_request", "blocks");
	assert_refused("r-4", "{\"blocks\": [1]}", "invalid_request", "blocks");
	assert_refused("r-4", "{\"blocks\": [\"AAAA\"], \"extra\": 1}", "invalid_request",
		       "extra");
	/* base64 that is not, and bytes that are no event block */
	char *b0 = tb_base64(b[0].bytes.p, b[0].bytes.len);
	assert_refused("r-4", h_strf("{\"blocks\": [\"%s\", \"%s\"]}", b0, "!!!!"),
		       "invalid_argument", "blocks[1]");
	assert_refused("r-4", h_strf("{\"blocks\": [\"%.*s\"]}", (int)strlen(b0) - 1, b0),
		       "invalid_argument", "blocks[0]");
	assert_refused("r-4", "{\"blocks\": [\"oWFhAQ==\"]}", "invalid_argument", "blocks[0]");
	/* a block of another aggregate */
	assert_refused("r-5", tb_restore_body(b, 1, NULL, 0, NULL), "invalid_argument",
		       "blocks[0]");
	/* a gap, and a block that does not link to the one before */
	tb_block gap[2] = {b[0], b[2]};
	assert_refused("r-4", tb_restore_body(gap, 2, NULL, 0, NULL), "invalid_argument",
		       "blocks[1]");
	tb_make(&x, "order", "r-4", 2, "Placed", "{}", NULL, &b[0].cid, 0);
	tb_make(&x, "order", "r-4", 2, "Placed", "{}", NULL, &b[1].cid, 0); /* wrong prev */
	tb_block bad_link[2] = {b[0], x};
	assert_refused("r-4", tb_restore_body(bad_link, 2, NULL, 0, NULL), "invalid_argument",
		       "blocks[1]");
	/* links by another hash than the store's */
	tb_block sha;
	cim_cid sha_cid;
	tb_make(&sha, "order", "r-4", 1, "Placed", "{}", NULL, NULL, CIM_MH_SHA2_256);
	sha_cid = sha.cid;
	tb_make(&x, "order", "r-4", 2, "Placed", "{}", NULL, &sha_cid, CIM_MH_SHA2_256);
	tb_block sha2[2] = {sha, x};
	assert_refused("r-4", tb_restore_body(sha2, 2, NULL, 0, NULL), "invalid_argument",
		       "blocks[1]");
	/* not the next version of the aggregate: it has moved on */
	assert_refused("r-4", tb_restore_body(&b[1], 2, NULL, 0, NULL),
		       "wrong_expected_version", NULL);
	/* the right version, but not linking to the head */
	char *head = h_append_n("order", "r-6", 1);
	tb_make(&x, "order", "r-6", 2, "Placed", "{}", NULL, &b[0].cid, 0);
	assert_refused("r-6", tb_restore_body(&x, 1, NULL, 0, NULL), "invalid_argument",
		       "blocks[0]");
	/* seals: one that does not verify, one of no block given, twice the same */
	cim_signing_key k;
	tb_block s[2];
	tb_key(&k, 0x44);
	tb_seal_block(&s[0], &k, &b[1].cid);
	s[0].bytes.p[s[0].bytes.len - 1] ^= 1; /* the signature's last byte */
	assert_refused("r-4", tb_restore_body(b, 3, s, 1, NULL), "invalid_argument",
		       "seals[0]");
	tb_seal_block(&s[0], &k, &x.cid);
	assert_refused("r-4", tb_restore_body(b, 3, s, 1, NULL), "invalid_argument",
		       "seals[0]");
	tb_seal_block(&s[0], &k, &b[1].cid);
	tb_seal_block(&s[1], &k, &b[1].cid);
	assert_refused("r-4", tb_restore_body(b, 3, s, 2, NULL), "invalid_argument",
		       "seals[1]");
	/* an encrypted aggregate's key block: not one, another aggregate's,
	 * and a good one, which this store (no master key) cannot take */
	assert_refused("r-4", tb_restore_body(b, 3, NULL, 0, "\"key\": \"AAAA\""),
		       "invalid_argument", "key");
	cim_wrapped_key wk = {0};
	cbuf kb = CBUF_INIT;
	char err[200];
	snprintf(wk.aggregate_type, sizeof(wk.aggregate_type), "order");
	snprintf(wk.aggregate_id, sizeof(wk.aggregate_id), "r-5");
	cr_assert_eq(cim_keyblock_encode(&kb, &wk, err, sizeof(err)), 0, "%s", err);
	char *k64 = tb_base64(kb.p, kb.len);
	assert_refused("r-4", tb_restore_body(b, 3, NULL, 0, h_strf("\"key\": \"%s\"", k64)),
		       "invalid_argument", "key");
	cbuf_reset(&kb);
	snprintf(wk.aggregate_id, sizeof(wk.aggregate_id), "r-4");
	cr_assert_eq(cim_keyblock_encode(&kb, &wk, err, sizeof(err)), 0, "%s", err);
	free(k64);
	k64 = tb_base64(kb.p, kb.len);
	h_reply kr = restore("r-4", tb_restore_body(b, 3, NULL, 0,
						    h_strf("\"key\": \"%s\"", k64)));
	cr_assert_str_eq(h_error_code(&kr), "invalid_argument", "%s", kr.body);
	cr_assert_not_null(strstr(kr.body, "master_key"), "%s", kr.body);
	h_reply_free(&kr);
	/* CimForgotten ends an aggregate: no block after it, no key with it */
	tb_block fg[3];
	fg[0] = b[0];
	tb_make(&fg[1], "order", "r-4", 2, CIM_FORGOTTEN_TYPE, "{}", NULL, &b[0].cid, 0);
	tb_make(&fg[2], "order", "r-4", 3, "Placed", "{}", NULL, &fg[1].cid, 0);
	assert_refused("r-4", tb_restore_body(fg, 3, NULL, 0, NULL), "invalid_argument",
		       "blocks[1]");
	assert_refused("r-4", tb_restore_body(fg, 2, NULL, 0, h_strf("\"key\": \"%s\"", k64)),
		       "invalid_argument", "key");
	tb_free(&fg[1], 2);
	free(k64);
	cbuf_free(&kb);
	/* nothing of r-4 is there */
	h_reply r;
	h_requestf(&r, "{}", H_PREFIX ".head.order.r-4");
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 0);
	h_reply_free(&r);
	free(head);
	free(b0);
	tb_free(b, 3);
}

Test(restore, over_the_limits_is_payload_too_large)
{
	cr_assert(true); /* the limits come from the daemon's settings */
	pid_t old = H.daemon;
	h_daemon_stop(old);
	H.daemon = h_daemon_start(&H.nats, "--max-events-per-append", "2",
				  "--max-event-bytes", "1024", NULL);
	cr_assert_gt(H.daemon, 0);
	tb_block b[3], big;
	tb_chain(b, 3, "order", "r-7", 1, NULL);
	assert_refused("r-7", tb_restore_body(b, 3, NULL, 0, NULL), "payload_too_large",
		       "blocks");
	char data[2100];
	memset(data, 'a', sizeof(data));
	data[0] = '"';
	data[sizeof(data) - 2] = '"';
	data[sizeof(data) - 1] = '\0';
	tb_make(&big, "order", "r-7", 1, "Placed", data, NULL, NULL, 0);
	assert_refused("r-7", tb_restore_body(&big, 1, NULL, 0, NULL), "payload_too_large",
		       "blocks[0]");
	tb_free(b, 3);
}

Test(restore, the_seals_given_travel_with_their_events)
{
	cim_signing_key k;
	tb_block b[3], s[2];

	tb_key(&k, 0x55);
	tb_chain(b, 3, "order", "r-8", 1, NULL);
	tb_seal_block(&s[0], &k, &b[0].cid);
	tb_seal_block(&s[1], &k, &b[2].cid);
	h_reply r = restore("r-8", tb_restore_body(b, 3, s, 2, NULL));
	json_t *evs = assert_stored(&r, b, 3, 1);
	for (int i = 0; i < 3; i++) {
		natsMsg *m = h_stream_get((uint64_t)json_integer_value(
			json_object_get(json_array_get(evs, (size_t)i), "seq")));
		if (i == 1) {
			cr_assert_null(h_header(m, "Cim-Seal"));
		} else {
			cr_assert_str_eq(h_header(m, "Cim-Seal-Key"), k.text);
			const char *sig = h_header(m, "Cim-Seal");
			char err[200];
			cr_assert_eq(cim_seal_check_headers(k.text, strlen(k.text), sig,
							    strlen(sig), &b[i].cid, NULL, err,
							    sizeof(err)), 0, "%s", err);
		}
		natsMsg_Destroy(m);
	}
	h_reply_free(&r);
	h_requestf(&r, h_strf("{\"keys\": [\"%s\"]}", k.text), H_PREFIX ".validate.order.r-8");
	cr_assert(json_is_true(json_object_get(r.json, "valid")), "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "sealed_through")), 3);
	h_reply_free(&r);
	tb_free(b, 3);
}

/* A store that signs seals the last block of each restore with its key. */
Test(restore, a_signing_store_seals_the_restore)
{
	cim_signing_key store, k;
	char *path = tb_key_file(H.nats.dir, "store.key", 0x66);
	tb_block b[2], s[2];

	h_daemon_stop(H.daemon);
	H.daemon = h_daemon_start(&H.nats, "--signing-key", path, NULL);
	cr_assert_gt(H.daemon, 0);
	tb_key(&store, 0x66);
	tb_key(&k, 0x77);
	tb_chain(b, 2, "order", "r-9", 1, NULL);
	tb_seal_block(&s[0], &k, &b[0].cid);
	tb_seal_block(&s[1], &k, &b[1].cid);
	h_reply r = restore("r-9", tb_restore_body(b, 2, s, 2, NULL));
	json_t *evs = assert_stored(&r, b, 2, 1);
	natsMsg *m0 = h_stream_get((uint64_t)json_integer_value(
		json_object_get(json_array_get(evs, 0), "seq")));
	natsMsg *m1 = h_stream_get((uint64_t)json_integer_value(
		json_object_get(json_array_get(evs, 1), "seq")));
	cr_assert_str_eq(h_header(m0, "Cim-Seal-Key"), k.text, "the given seal stays");
	cr_assert_str_eq(h_header(m1, "Cim-Seal-Key"), store.text, "the store seals the last");
	natsMsg_Destroy(m0);
	natsMsg_Destroy(m1);
	h_reply_free(&r);
	h_requestf(&r, h_strf("{\"keys\": [\"%s\"]}", store.text), H_PREFIX ".validate.order.r-9");
	cr_assert(json_is_true(json_object_get(r.json, "valid")), "%s", r.body);
	h_reply_free(&r);
	tb_free(b, 2);
}

/* A restore of many blocks is stored whole or not at all, whenever the
 * daemon dies. */
Test(restore, all_or_nothing_across_a_kill, .timeout = 120)
{
	enum { N = 500 };
	tb_block *b = calloc(N, sizeof(*b));
	tb_chain(b, N, "order", "r-k", 1, NULL);
	char *body = tb_restore_body(b, N, NULL, 0, NULL);
	natsInbox *inbox = NULL;
	natsSubscription *sub = NULL;

	natsInbox_Create(&inbox);
	cr_assert_eq(natsConnection_SubscribeSync(&sub, H.nc, inbox), NATS_OK);
	cr_assert_eq(natsConnection_PublishRequestString(H.nc, H_PREFIX ".restore.order.r-k",
							 inbox, body), NATS_OK);
	natsConnection_Flush(H.nc);
	h_sleep_ms(5);
	h_daemon_kill9(H.daemon);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	h_reply r;
	h_requestf(&r, "{}", H_PREFIX ".head.order.r-k");
	json_int_t v = json_integer_value(json_object_get(r.json, "version"));
	cr_assert(v == 0 || v == N, "the head is at %lld", (long long)v);
	h_reply_free(&r);
	/* a retry completes it, or answers as the first time */
	r = restore("r-k", body);
	assert_stored(&r, b, N, 1);
	h_reply_free(&r);
	h_requestf(&r, "{}", H_PREFIX ".validate.order.r-k");
	cr_assert(json_is_true(json_object_get(r.json, "valid")), "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), N);
	h_reply_free(&r);
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
	free(body);
	tb_free(b, N);
	free(b);
}

/* Ids a header cannot carry exactly (spaces at the ends, the empty id)
 * are stored in the blocks as given; the headers leave them out. */
Test(restore, ids_of_any_text_are_restored)
{
	tb_block b[2];

	tb_make(&b[0], "order", "r-ids", 1, "Placed", "{}", " spaced id ", NULL, 0);
	tb_make(&b[1], "order", "r-ids", 2, "Placed", "{}", "", &b[0].cid, 0);
	h_reply r = restore("r-ids", tb_restore_body(b, 2, NULL, 0, NULL));
	json_t *evs = assert_stored(&r, b, 2, 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(evs, 0), "event_id")),
			 " spaced id ");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(evs, 1), "event_id")),
			 "");
	natsMsg *m = h_stream_get((uint64_t)json_integer_value(
		json_object_get(json_array_get(evs, 0), "seq")));
	cr_assert_null(h_header(m, "Cim-Event-Id"));
	natsMsg_Destroy(m);
	h_reply_free(&r);
	/* a retry finds them by version */
	r = restore("r-ids", tb_restore_body(b, 2, NULL, 0, NULL));
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);
	tb_free(b, 2);
}
