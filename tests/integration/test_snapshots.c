/*
 * test_snapshots.c: snapshot.save, snapshot.get and load as the contract
 * words them, and the stored snapshot block checked straight from the
 * CIM-SNAPSHOTS bucket.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "dagcbor.h"

TestSuite(snapshots, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* Appends n events to snap/<id>; fills cids[1..n]. */
static void append_events(const char *id, int from, int n,
			  char cids[][CIM_CID_TEXT_MAX])
{
	for (int v = from; v < from + n; v++) {
		char data[32];
		cim_append_result *r;

		snprintf(data, sizeof(data), "{\"v\": %d}", v);
		r = h_append1("snap", id, v - 1, "Stepped", data);
		strcpy(cids[v], r->head);
		cim_append_result_destroy(r);
	}
}

static void request_ok(h_reply *rep, const char *op, const char *id,
		       const char *body)
{
	h_requestf(rep, body, H_PREFIX ".%s.snap.%s", op, id);
	cr_assert_eq(rep->s, NATS_OK, "%s: no reply", op);
	cr_assert_eq(rep->status, 200, "%s %s: %s", op, body, rep->body);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* The one value in CIM-SNAPSHOTS, as raw bytes (malloc'd). */
static uint8_t *only_snapshot_value(size_t *len)
{
	kvStore *kv = NULL;
	kvKeysList keys = {0};
	kvEntry *e = NULL;
	uint8_t *out;

	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-SNAPSHOTS"), NATS_OK);
	cr_assert_eq(kvStore_Keys(&keys, kv, NULL), NATS_OK);
	cr_assert_eq(keys.Count, 1, "one snapshot stored, %d keys",
		     keys.Count);
	cr_assert_eq(kvStore_Get(&e, kv, keys.Keys[0]), NATS_OK);
	*len = (size_t)kvEntry_ValueLen(e);
	out = malloc(*len + 1);
	cr_assert_not_null(out);
	memcpy(out, kvEntry_Value(e), *len);
	kvEntry_Destroy(e);
	kvKeysList_Destroy(&keys);
	kvStore_Destroy(kv);
	return out;
}

Test(snapshots, save_get_and_the_stored_block)
{
	char cids[8][CIM_CID_TEXT_MAX];
	h_reply rep;
	char snap_cid[CIM_CID_TEXT_MAX], cid[CIM_CID_TEXT_MAX];
	uint8_t *val;
	size_t len;
	cim_cid c;
	json_t *blk = NULL, *want_state;
	char err[200] = "";

	append_events("s-1", 1, 5, cids);
	request_ok(&rep, "snapshot.save", "s-1",
		   "{\"version\": 5, \"state\": {\"count\": 5, \"f\": 0.5,"
		   " \"tags\": [\"a\", null]}}");
	cr_assert_eq(jint(rep.json, "version"), 5);
	cr_assert_str_eq(jstr(rep.json, "event_cid"), cids[5], "%s", rep.body);
	cr_assert_not_null(jstr(rep.json, "snapshot_cid"), "%s", rep.body);
	snprintf(snap_cid, sizeof(snap_cid), "%s",
		 jstr(rep.json, "snapshot_cid"));
	h_reply_free(&rep);

	/* The bucket holds exactly the block whose CID that is. */
	val = only_snapshot_value(&len);
	cr_assert_eq(cim_cid_compute(&c, CIM_CODEC_DAG_CBOR,
				     CIM_MH_BLAKE2B_256, val, len), 0);
	cim_cid_to_text(&c, cid);
	cr_assert_str_eq(cid, snap_cid, "snapshot CID from the stored bytes");
	cr_assert_eq(cim_cbor_decode_json(val, len, 1000, &blk, err,
					  sizeof(err)), 0, "%s", err);
	cr_assert_eq(json_object_size(blk), 6, "six keys");
	cr_assert_str_eq(jstr(blk, "aggregate_type"), "snap");
	cr_assert_str_eq(jstr(blk, "aggregate_id"), "s-1");
	cr_assert_eq(jint(blk, "version"), 5);
	cr_assert_str_eq(jstr(json_object_get(blk, "event_cid"), "/"),
			 cids[5], "event_cid is a link to event 5");
	cr_assert_not_null(jstr(blk, "timestamp"));
	cr_assert_eq(strlen(jstr(blk, "timestamp")), 30);
	want_state = json_loads("{\"count\": 5, \"f\": 0.5, \"tags\": "
				"[\"a\", null]}", 0, NULL);
	cr_assert(json_equal(json_object_get(blk, "state"), want_state));
	free(val);

	request_ok(&rep, "snapshot.get", "s-1", "{}");
	cr_assert_eq(jint(rep.json, "version"), 5);
	cr_assert_str_eq(jstr(rep.json, "snapshot_cid"), snap_cid);
	cr_assert_str_eq(jstr(rep.json, "event_cid"), cids[5]);
	cr_assert(json_equal(json_object_get(rep.json, "state"), want_state),
		  "%s", rep.body);
	h_reply_free(&rep);
	json_decref(want_state);
	json_decref(blk);
}

Test(snapshots, older_version_keeps_the_stored_one_newer_replaces_it)
{
	char cids[10][CIM_CID_TEXT_MAX];
	h_reply rep;
	char snap5[CIM_CID_TEXT_MAX];

	append_events("s-2", 1, 6, cids);
	request_ok(&rep, "snapshot.save", "s-2",
		   "{\"version\": 5, \"state\": \"five\"}");
	snprintf(snap5, sizeof(snap5), "%s", jstr(rep.json, "snapshot_cid"));
	h_reply_free(&rep);

	request_ok(&rep, "snapshot.save", "s-2",
		   "{\"version\": 3, \"state\": \"three\"}");
	cr_assert_eq(jint(rep.json, "version"), 5,
		     "the reply describes the stored one: %s", rep.body);
	cr_assert_str_eq(jstr(rep.json, "snapshot_cid"), snap5);
	cr_assert_str_eq(jstr(rep.json, "event_cid"), cids[5]);
	h_reply_free(&rep);

	request_ok(&rep, "snapshot.get", "s-2", "{}");
	cr_assert_eq(jint(rep.json, "version"), 5);
	cr_assert_str_eq(jstr(rep.json, "state"), "five");
	h_reply_free(&rep);

	request_ok(&rep, "snapshot.save", "s-2",
		   "{\"version\": 6, \"state\": \"six\"}");
	cr_assert_eq(jint(rep.json, "version"), 6);
	cr_assert_str_eq(jstr(rep.json, "event_cid"), cids[6]);
	h_reply_free(&rep);
	request_ok(&rep, "snapshot.get", "s-2", "{}");
	cr_assert_str_eq(jstr(rep.json, "state"), "six");
	h_reply_free(&rep);
}

Test(snapshots, refusals)
{
	char cids[4][CIM_CID_TEXT_MAX];
	h_reply rep;

	append_events("s-3", 1, 3, cids);
	h_request(&rep, H_PREFIX ".snapshot.save.snap.s-3",
		  "{\"version\": 9, \"state\": {}}", -1);
	cr_assert_str_eq(h_error_code(&rep), "invalid_argument",
			 "a version that is not stored: %s", rep.body);
	cr_assert_eq(rep.status, 400);
	h_reply_free(&rep);

	h_request(&rep, H_PREFIX ".snapshot.save.snap.s-3",
		  "{\"version\": 0, \"state\": {}}", -1);
	cr_assert_str_eq(h_error_code(&rep), "invalid_argument", "%s",
			 rep.body);
	h_reply_free(&rep);

	h_request(&rep, H_PREFIX ".snapshot.get.snap.s-3", "{}", -1);
	cr_assert_str_eq(h_error_code(&rep), "not_found", "%s", rep.body);
	cr_assert_eq(rep.status, 404);
	h_reply_free(&rep);

	h_request(&rep, H_PREFIX ".snapshot.get.snap.never", "{}", -1);
	cr_assert_str_eq(h_error_code(&rep), "not_found", "%s", rep.body);
	h_reply_free(&rep);
}

Test(snapshots, load_gives_the_snapshot_and_the_events_after_it)
{
	char cids[10][CIM_CID_TEXT_MAX];
	h_reply rep;
	json_t *evs, *snap;

	append_events("s-4", 1, 4, cids);
	request_ok(&rep, "load", "s-4", "{}");
	cr_assert(json_is_null(json_object_get(rep.json, "snapshot")), "%s",
		  rep.body);
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 4);
	cr_assert_eq(jint(rep.json, "version"), 4);
	h_reply_free(&rep);

	request_ok(&rep, "snapshot.save", "s-4",
		   "{\"version\": 3, \"state\": {\"sum\": 6}}");
	h_reply_free(&rep);
	append_events("s-4", 5, 2, cids);

	request_ok(&rep, "load", "s-4", "{}");
	snap = json_object_get(rep.json, "snapshot");
	cr_assert(json_is_object(snap), "%s", rep.body);
	cr_assert_eq(jint(snap, "version"), 3);
	cr_assert_str_eq(jstr(snap, "event_cid"), cids[3]);
	cr_assert_eq(jint(json_object_get(snap, "state"), "sum"), 6);
	evs = json_object_get(rep.json, "events");
	cr_assert_eq(json_array_size(evs), 3, "events 4..6: %s", rep.body);
	for (size_t i = 0; i < 3; i++) {
		json_t *e = json_array_get(evs, i);

		cr_assert_eq(jint(e, "version"), (json_int_t)(4 + i));
		cr_assert_str_eq(jstr(e, "cid"), cids[4 + i]);
	}
	cr_assert_eq(jint(rep.json, "version"), 6);
	h_reply_free(&rep);

	request_ok(&rep, "load", "never", "{}");
	cr_assert(json_is_null(json_object_get(rep.json, "snapshot")));
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 0);
	cr_assert_eq(jint(rep.json, "version"), 0);
	h_reply_free(&rep);
}

Test(snapshots, malformed_saves_are_refused_and_nothing_is_stored)
{
	char cids[4][CIM_CID_TEXT_MAX];
	static const struct {
		const char *body, *code;
	} cases[] = {
		{"{\"state\": {}}", "invalid_request"},            /* no version */
		{"{\"version\": 1}", "invalid_request"},           /* no state */
		{"{\"version\": \"1\", \"state\": 1}", "invalid_request"},
		{"{\"version\": -1, \"state\": 1}", "invalid_argument"},
		{"{\"version\": 1, \"state\": 1, \"x\": 1}", "invalid_request"},
		{"{\"version\": 1, \"state\": {\"a\": 1, \"a\": 2}}", "invalid_request"},
		{"[1]", "invalid_request"},
		{"not json", "invalid_request"},
	};
	h_reply rep;
	kvStore *kv = NULL;
	kvKeysList keys = {0};

	append_events("s-5", 1, 3, cids);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		h_request(&rep, H_PREFIX ".snapshot.save.snap.s-5", cases[i].body, -1);
		cr_assert_eq(rep.s, NATS_OK);
		cr_assert_str_eq(h_error_code(&rep), cases[i].code, "%s: %s",
				 cases[i].body, rep.body);
		cr_assert_eq(rep.status, 400);
		h_reply_free(&rep);
	}

	/* a state nested deeper than the limit */
	char deep[2 * 140 + 64];
	size_t n = 0;
	n += (size_t)snprintf(deep, sizeof deep, "{\"version\": 1, \"state\": ");
	for (int i = 0; i < 130; i++)
		deep[n++] = '[';
	for (int i = 0; i < 130; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	deep[n] = '\0';
	h_request(&rep, H_PREFIX ".snapshot.save.snap.s-5", deep, -1);
	cr_assert_str_eq(h_error_code(&rep), "invalid_request", "%s", rep.body);
	cr_assert_str_eq(h_error_str(&rep, "field"), "state");
	h_reply_free(&rep);

	/* a state over max_snapshot_bytes (262144 by default) */
	size_t big = 300000;
	char *body = malloc(big + 64);
	cr_assert_not_null(body);
	n = (size_t)sprintf(body, "{\"version\": 2, \"state\": \"");
	memset(body + n, 'x', big);
	strcpy(body + n + big, "\"}");
	h_request(&rep, H_PREFIX ".snapshot.save.snap.s-5", body, -1);
	cr_assert_str_eq(h_error_code(&rep), "payload_too_large", "%.300s", rep.body);
	cr_assert_eq(rep.status, 413);
	cr_assert_not_null(strstr(h_error_str(&rep, "message"), "max_snapshot_bytes"));
	h_reply_free(&rep);
	free(body);

	/* an aggregate with no events has no version to snapshot */
	h_request(&rep, H_PREFIX ".snapshot.save.snap.nobody",
		  "{\"version\": 1, \"state\": {}}", -1);
	cr_assert_str_eq(h_error_code(&rep), "invalid_argument", "%s", rep.body);
	cr_assert_str_eq(h_error_str(&rep, "field"), "version");
	h_reply_free(&rep);

	/* nothing reached the bucket, and the events are intact */
	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-SNAPSHOTS"), NATS_OK);
	natsStatus s = kvStore_Keys(&keys, kv, NULL);
	cr_assert(s == NATS_NOT_FOUND || (s == NATS_OK && keys.Count == 0),
		  "no snapshot stored");
	kvKeysList_Destroy(&keys);
	kvStore_Destroy(kv);
	h_requestf(&rep, "{}", H_PREFIX ".validate.snap.s-5");
	cr_assert(json_is_true(json_object_get(rep.json, "valid")), "%s", rep.body);
	cr_assert_eq(jint(rep.json, "version"), 3);
	h_reply_free(&rep);
}

Test(snapshots, ids_with_any_allowed_character_get_their_own_key)
{
	static const char *const ids[] = {"a:b@c+d=e", "a=3Ab@c+d=e", "plain_id-1"};
	kvStore *kv = NULL;
	kvEntry *e = NULL;
	h_reply rep;

	for (size_t i = 0; i < 3; i++) {
		char body[96];
		cim_append_result *r = h_append1("snap", ids[i], 0, "Made", "{}");
		cim_append_result_destroy(r);
		snprintf(body, sizeof body, "{\"version\": 1, \"state\": %zu}", i);
		request_ok(&rep, "snapshot.save", ids[i], body);
		h_reply_free(&rep);
	}
	for (size_t i = 0; i < 3; i++) {
		request_ok(&rep, "snapshot.get", ids[i], "{}");
		cr_assert_eq(json_integer_value(json_object_get(rep.json, "state")),
			     (json_int_t)i, "%s: %s", ids[i], rep.body);
		h_reply_free(&rep);
	}
	/* the documented key form: = and two hex digits for : @ + = */
	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-SNAPSHOTS"), NATS_OK);
	cr_assert_eq(kvStore_Get(&e, kv, "snap.a=3Ab=40c=2Bd=3De"), NATS_OK);
	kvEntry_Destroy(e);
	cr_assert_eq(kvStore_Get(&e, kv, "snap.a=3D3Ab=40c=2Bd=3De"), NATS_OK);
	kvEntry_Destroy(e);
	kvStore_Destroy(kv);
}

Test(snapshots, load_after_a_restart_and_past_the_payload_limit)
{
	char cids[40][CIM_CID_TEXT_MAX];
	cim_loaded *l = NULL;
	cim_error err = {0};
	h_reply rep;
	/* events of about 100 kB: the 15 after the snapshot do not fit in
	 * one reply under the 1 MB NATS payload limit */
	size_t big = 100000;
	char *data = malloc(big + 32);

	cr_assert_not_null(data);
	append_events("s-6", 1, 5, cids);
	request_ok(&rep, "snapshot.save", "s-6", "{\"version\": 5, \"state\": \"five\"}");
	h_reply_free(&rep);
	for (int v = 6; v <= 20; v++) {
		cim_append_result *r;
		int n = sprintf(data, "{\"v\": %d, \"pad\": \"", v);
		memset(data + n, 'p', big);
		strcpy(data + n + big, "\"}");
		r = h_append1("snap", "s-6", v - 1, "Stepped", data);
		strcpy(cids[v], r->head);
		cim_append_result_destroy(r);
	}
	free(data);

	/* no position remembered after a restart: load still starts right */
	h_daemon_kill9(H.daemon);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);

	request_ok(&rep, "load", "s-6", "{}");
	json_t *evs = json_object_get(rep.json, "events");
	size_t got = json_array_size(evs);
	cr_assert(got >= 1 && got < 15, "the reply is cut short: %zu events", got);
	cr_assert_eq(jint(json_array_get(evs, 0), "version"), 6);
	cr_assert_eq(jint(rep.json, "next_from_version"), (json_int_t)(6 + got),
		     "it says where to go on");
	cr_assert_eq(jint(rep.json, "version"), 20);
	h_reply_free(&rep);

	/* the library follows the pages */
	cr_assert_eq(cim_load(H.client, "snap", "s-6", &l, &err), CIM_ERR_OK, "%s",
		     err.message);
	cr_assert_not_null(l->snapshot);
	cr_assert_eq(l->snapshot->version, 5);
	cr_assert_str_eq(l->snapshot->state_json, "\"five\"");
	cr_assert_str_eq(l->snapshot->event_cid, cids[5]);
	cr_assert_eq(l->version, 20);
	cr_assert_eq(l->n_events, 15);
	for (size_t i = 0; i < 15; i++) {
		cr_assert_eq(l->events[i].version, 6 + i);
		cr_assert_str_eq(l->events[i].cid, cids[6 + i]);
	}
	cim_loaded_destroy(l);
}

Test(snapshots, client_calls)
{
	char cids[8][CIM_CID_TEXT_MAX];
	cim_snapshot s;
	cim_error err = {0};

	append_events("s-7", 1, 4, cids);
	cr_assert_eq(cim_snapshot_get(H.client, "snap", "s-7", &s, &err),
		     CIM_ERR_NOT_FOUND);
	cr_assert_eq(cim_snapshot_save(H.client, "snap", "s-7", 4,
				       "{\"n\": [1, 2.5, \"x\"]}", &s, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(s.version, 4);
	cr_assert_str_eq(s.event_cid, cids[4]);
	cr_assert_null(s.state_json);
	cr_assert_eq(cim_snapshot_save(H.client, "snap", "s-7", 2, "{}", &s, &err),
		     CIM_ERR_OK);
	cr_assert_eq(s.version, 4, "the stored, newer one stays");
	cr_assert_eq(cim_snapshot_get(H.client, "snap", "s-7", &s, &err), CIM_ERR_OK);
	cr_assert_str_eq(s.state_json, "{\"n\":[1,2.5,\"x\"]}");
	cr_assert_eq(strlen(s.timestamp), 30, "%s", s.timestamp);
	cim_snapshot_clear(&s);
	cr_assert_eq(cim_snapshot_save(H.client, "snap", "s-7", 9, "{}", &s, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "version");
	cr_assert_eq(cim_snapshot_save(H.client, "snap", "s-7", 1, "{bad", &s, &err),
		     CIM_ERR_INVALID_ARGUMENT);
}

Test(snapshots, the_stored_message_says_where_the_event_is_and_deletes_count)
{
	char cids[8][CIM_CID_TEXT_MAX];
	natsMsg *m = NULL;
	const char *hdr = NULL;
	kvStore *kv = NULL;
	h_reply rep;
	cim_head head;
	cim_error err = {0};

	append_events("s-8", 1, 4, cids);
	cr_assert_eq(cim_get_head(H.client, "snap", "s-8", &head, &err), CIM_ERR_OK);
	request_ok(&rep, "snapshot.save", "s-8", "{\"version\": 4, \"state\": 4}");
	h_reply_free(&rep);
	cr_assert_eq(js_GetLastMsg(&m, H.js, "KV_CIM-SNAPSHOTS", "$KV.CIM-SNAPSHOTS.snap.s-8",
				   NULL, NULL), NATS_OK);
	cr_assert_eq(natsMsgHeader_Get(m, "Cim-Event-Seq", &hdr), NATS_OK);
	cr_assert_eq(strtoull(hdr, NULL, 10), head.seq,
		     "Cim-Event-Seq is the stream sequence of event 4");
	natsMsg_Destroy(m);

	/* an operator deletes the key: there is no snapshot, and a new one
	 * can be saved over the delete marker */
	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-SNAPSHOTS"), NATS_OK);
	cr_assert_eq(kvStore_Delete(kv, "snap.s-8"), NATS_OK);
	kvStore_Destroy(kv);
	h_request(&rep, H_PREFIX ".snapshot.get.snap.s-8", "{}", -1);
	cr_assert_str_eq(h_error_code(&rep), "not_found", "%s", rep.body);
	h_reply_free(&rep);
	request_ok(&rep, "load", "s-8", "{}");
	cr_assert(json_is_null(json_object_get(rep.json, "snapshot")));
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 4);
	h_reply_free(&rep);
	request_ok(&rep, "snapshot.save", "s-8", "{\"version\": 2, \"state\": 2}");
	cr_assert_eq(jint(rep.json, "version"), 2, "%s", rep.body);
	h_reply_free(&rep);
	request_ok(&rep, "load", "s-8", "{}");
	cr_assert_eq(jint(json_object_get(rep.json, "snapshot"), "version"), 2);
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 2);
	h_reply_free(&rep);
}

Test(snapshots, a_wrong_position_header_does_not_change_what_load_gives)
{
	char cids[8][CIM_CID_TEXT_MAX];
	natsMsg *m = NULL, *w = NULL;
	jsPubAck *pa = NULL;
	h_reply rep;
	cim_event_page *p = NULL;
	cim_error err = {0};
	char seq5[24];

	append_events("s-9", 1, 6, cids);
	request_ok(&rep, "snapshot.save", "s-9", "{\"version\": 2, \"state\": 2}");
	h_reply_free(&rep);
	cr_assert_eq(cim_get(H.client, "snap", "s-9", 5, 1, &p, &err), CIM_ERR_OK);
	snprintf(seq5, sizeof seq5, "%llu", (unsigned long long)p->events[0].seq);
	cim_event_page_destroy(p);

	/* the same block, its header pointing past events 3 and 4 */
	cr_assert_eq(js_GetLastMsg(&m, H.js, "KV_CIM-SNAPSHOTS",
				   "$KV.CIM-SNAPSHOTS.snap.s-9", NULL, NULL), NATS_OK);
	cr_assert_eq(natsMsg_Create(&w, "$KV.CIM-SNAPSHOTS.snap.s-9", NULL,
				    natsMsg_GetData(m), natsMsg_GetDataLength(m)), NATS_OK);
	natsMsgHeader_Set(w, "Cim-Event-Seq", seq5);
	cr_assert_eq(js_PublishMsg(&pa, H.js, w, NULL, NULL), NATS_OK);
	jsPubAck_Destroy(pa);
	natsMsg_Destroy(w);
	natsMsg_Destroy(m);

	request_ok(&rep, "load", "s-9", "{}");
	json_t *evs = json_object_get(rep.json, "events");
	cr_assert_eq(json_array_size(evs), 4, "events 3..6: %s", rep.body);
	for (size_t i = 0; i < 4; i++)
		cr_assert_str_eq(jstr(json_array_get(evs, i), "cid"), cids[3 + i]);
	h_reply_free(&rep);

	/* and the daemon said why it read the aggregate from its start */
	char *path = h_strf("%s/daemon.log", H.nats.dir), line[1024];
	FILE *f = fopen(path, "r");
	bool said = false;
	cr_assert_not_null(f, "%s", path);
	while (!said && fgets(line, sizeof line, f))
		said = strstr(line, "load snap/s-9: reading again from its first event") != NULL;
	fclose(f);
	free(path);
	cr_assert(said, "the fallback is logged");
}
