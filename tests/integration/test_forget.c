/*
 * test_forget.c: <prefix>.forget.<type>.<id> (issue 15): the contract's
 * reply and its repetition; afterwards data null and forgotten true in
 * every read, gone for appends and snapshots, validate still valid, the
 * data key and the snapshot gone from their buckets' streams; the same
 * after a restart; appends racing a forget each land before its
 * CimForgotten event or answer gone; a replay sees CimForgotten in stream
 * order; and the daemon killed (SIGKILL) after each step of a forget:
 * restarted, the data is never shown again, the forget is finished once,
 * and the chain is valid. What a forget must never give back: a restore
 * carrying the old key block answers gone and stores no key; snapshot
 * saves racing a forget leave no snapshot, and no state in plain text.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/blocks.h"
#include "../support/harness.h"
#include "../support/hcrypt.h"

TestSuite(forget, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 180);

#define SECRET "Mnb-FORGET-ME-2718"

/* Appends n encrypted events holding SECRET and a snapshot at n. */
static void fill(const char *id, int n)
{
	char data[96];
	h_reply r;

	for (int i = 1; i <= n; i++) {
		snprintf(data, sizeof data, "{\"who\": \"" SECRET "\", \"i\": %d}", i);
		cim_append_result_destroy(h_append1("customer", id, i - 1, "Changed", data));
	}
	snprintf(data, sizeof data, "{\"version\": %d, \"state\": \"" SECRET "\"}", n);
	hc_request(&r, "snapshot.save", "customer", id, data);
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);
}

/* How many messages the stream holds on the subject fmt makes of id. */
static uint64_t msgs_on(const char *stream, const char *fmt, const char *id)
{
	char *s = h_strf(fmt, id);
	uint64_t n = hc_subject_msgs(stream, s);
	free(s);
	return n;
}

#define key_msgs(id) msgs_on("KV_CIM-KEYS", "$KV.CIM-KEYS.customer.%s", id)
#define snapshot_msgs(id) msgs_on("KV_CIM-SNAPSHOTS", "$KV.CIM-SNAPSHOTS.customer.%s", id)
#define record_msgs(id) msgs_on("KV_CIM-HEADS", "$KV.CIM-HEADS.forget.customer.%s", id)
#define forgotten_events(id) msgs_on(H_STREAM, "events.customer.%s.CimForgotten", id)

/* Every read of id shows no data: get, load, by_type, snapshot.get. */
static void assert_forgotten(const char *id, uint64_t version)
{
	h_reply r;

	hc_request(&r, "get", "customer", id, "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_null(strstr(r.body, SECRET), "%s", r.body);
	json_t *evs = json_object_get(r.json, "events");
	cr_assert_eq(json_array_size(evs), version);
	for (size_t i = 0; i + 1 < json_array_size(evs); i++) {
		json_t *e = json_array_get(evs, i);
		cr_assert(json_is_null(json_object_get(e, "data")), "%s", r.body);
		cr_assert(json_is_true(json_object_get(e, "forgotten")));
		cr_assert_null(json_object_get(e, "encrypted"));
	}
	json_t *last = json_array_get(evs, json_array_size(evs) - 1);
	cr_assert_str_eq(json_string_value(json_object_get(last, "event_type")), "CimForgotten");
	cr_assert_eq(json_object_size(json_object_get(last, "data")), 0);
	cr_assert_null(json_object_get(last, "forgotten"));
	h_reply_free(&r);

	hc_request(&r, "load", "customer", id, "{}");
	cr_assert(json_is_null(json_object_get(r.json, "snapshot")), "%s", r.body);
	cr_assert_null(strstr(r.body, SECRET), "%s", r.body);
	h_reply_free(&r);
	hc_request(&r, "snapshot.get", "customer", id, "{}");
	cr_assert_str_eq(h_error_code(&r), "not_found", "%s", r.body);
	h_reply_free(&r);
	h_requestf(&r, "{}", "%s.by_type.Changed", H_PREFIX);
	size_t i, seen = 0;
	json_t *e;
	json_array_foreach(json_object_get(r.json, "events"), i, e) {
		if (strcmp(json_string_value(json_object_get(e, "aggregate_id")), id) != 0)
			continue;
		cr_assert(json_is_null(json_object_get(e, "data")), "%s", r.body);
		cr_assert(json_is_true(json_object_get(e, "forgotten")));
		seen++;
	}
	cr_assert(seen > 0 && seen < version, "%zu of %s in by_type", seen, id);
	h_reply_free(&r);

	hc_request(&r, "validate", "customer", id, "{}");
	cr_assert(json_is_true(json_object_get(r.json, "valid")), "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), version);
	h_reply_free(&r);

	hc_request(&r, "append", "customer", id,
		   "{\"events\": [{\"event_type\": \"Changed\", \"data\": {}}]}");
	cr_assert_str_eq(h_error_code(&r), "gone", "%s", r.body);
	cr_assert_eq(r.status, 410);
	h_reply_free(&r);
	hc_request(&r, "snapshot.save", "customer", id, "{\"version\": 1, \"state\": {}}");
	cr_assert_str_eq(h_error_code(&r), "gone", "%s", r.body);
	h_reply_free(&r);

	/* nothing is left of its key or its snapshot, nor the forget's record */
	cr_assert_eq(key_msgs(id), 0);
	cr_assert_eq(snapshot_msgs(id), 0);
	cr_assert_eq(forgotten_events(id), 1, "one CimForgotten event");
}

/* forget answers {"forgotten": true, "version": version}. */
static void assert_forget_reply(const char *id, uint64_t version)
{
	h_reply r;

	hc_request(&r, "forget", "customer", id, "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_eq(json_object_size(r.json), 2, "%s", r.body);
	cr_assert(json_is_true(json_object_get(r.json, "forgotten")), "%s", r.body);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), version, "%s",
		     r.body);
	h_reply_free(&r);
}

Test(forget, forgets_for_good_and_answers_the_same_again)
{
	char *key = hc_master_key("master.key");
	h_reply r;

	hc_daemon(key, "customer", NULL);
	fill("c-1", 3);
	fill("c-2", 2);
	cr_assert_eq(key_msgs("c-1"), 1);
	cr_assert_eq(snapshot_msgs("c-1"), 1);

	assert_forget_reply("c-1", 4);
	assert_forgotten("c-1", 4);
	assert_forget_reply("c-1", 4); /* again: the same answer */
	assert_forgotten("c-1", 4);
	cr_assert_eq(record_msgs("c-1"), 0);
	cr_assert_not(hc_stream_holds("KV_CIM-HEADS", SECRET, strlen(SECRET)));

	/* the other aggregate is untouched */
	hc_request(&r, "get", "customer", "c-2", "{}");
	cr_assert(strstr(r.body, SECRET) != NULL, "%s", r.body);
	h_reply_free(&r);

	/* refused: a type not encrypted, no events, CimForgotten appended */
	cim_append_result_destroy(h_append1("order", "o-1", CIM_EXPECT_ANY, "Placed", "{}"));
	hc_request(&r, "forget", "order", "o-1", "{}");
	cr_assert_str_eq(h_error_code(&r), "invalid_argument", "%s", r.body);
	cr_assert_str_eq(h_error_str(&r, "field"), "aggregate_type");
	h_reply_free(&r);
	hc_request(&r, "forget", "customer", "nobody", "{}");
	cr_assert_str_eq(h_error_code(&r), "not_found", "%s", r.body);
	h_reply_free(&r);
	hc_request(&r, "forget", "customer", "c-2", "{\"now\": true}");
	cr_assert_str_eq(h_error_code(&r), "invalid_request", "%s", r.body);
	h_reply_free(&r);
	hc_request(&r, "append", "customer", "c-2",
		   "{\"events\": [{\"event_type\": \"CimForgotten\", \"data\": {}}]}");
	cr_assert_str_eq(h_error_code(&r), "invalid_argument", "%s", r.body);
	cr_assert_str_eq(h_error_str(&r, "field"), "event_type");
	h_reply_free(&r);
	hc_request(&r, "append", "order", "o-2",
		   "{\"events\": [{\"event_type\": \"CimForgotten\", \"data\": {}}]}");
	cr_assert_str_eq(h_error_code(&r), "invalid_argument", "%s", r.body);
	h_reply_free(&r);

	/* all the same after a clean stop and after kill -9 */
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	hc_daemon(key, "customer", NULL);
	assert_forgotten("c-1", 4);
	assert_forget_reply("c-1", 4);
	h_daemon_kill9(H.daemon);
	hc_daemon(key, "customer", NULL);
	assert_forgotten("c-1", 4);
	hc_request(&r, "get", "customer", "c-2", "{}");
	cr_assert(strstr(r.body, SECRET) != NULL, "%s", r.body);
	h_reply_free(&r);
	free(key);
}

struct appender {
	cim_client *c;
	int k;
	atomic_int *started;
	int ok, gone, other;
	uint64_t last_ok;
	char other_msg[300];
};

static void *append_loop(void *arg)
{
	struct appender *a = arg;
	char eid[48];

	for (int i = 0; i < 400; i++) {
		cim_new_event ev = {.event_type = "Changed", .data_json = "{\"who\": \"" SECRET "\"}",
				    .event_id = eid};
		cim_append_result *out = NULL;
		cim_error err;

		snprintf(eid, sizeof eid, "a%d-%d", a->k, i);
		cim_err rc = cim_append(a->c, "customer", "hot", CIM_EXPECT_ANY, &ev, 1, &out, &err);
		atomic_fetch_add(a->started, 1);
		if (rc == CIM_ERR_OK) {
			a->ok++;
			a->last_ok = out->version;
		} else if (rc == CIM_ERR_GONE) {
			a->gone++;
			break;
		} else {
			a->other++;
			snprintf(a->other_msg, sizeof a->other_msg, "%s: %.200s", cim_err_name(rc),
				 err.message);
		}
		cim_append_result_destroy(out);
	}
	return NULL;
}

Test(forget, appends_racing_a_forget_land_before_it_or_answer_gone)
{
	char *key = hc_master_key("master.key");
	enum { N = 6 };
	struct appender ap[N];
	pthread_t th[N];
	atomic_int started = 0;
	h_reply r;

	hc_daemon(key, "customer", NULL);
	cim_append_result_destroy(h_append1("customer", "hot", CIM_EXPECT_NO_STREAM, "Made", "{}"));
	for (int i = 0; i < N; i++) {
		ap[i] = (struct appender){.c = h_client_new(0), .k = i, .started = &started};
		pthread_create(&th[i], NULL, append_loop, &ap[i]);
	}
	while (atomic_load(&started) < 60)
		h_sleep_ms(2);
	hc_request(&r, "forget", "customer", "hot", "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	uint64_t fv = (uint64_t)json_integer_value(json_object_get(r.json, "version"));
	h_reply_free(&r);
	int ok = 1; /* "Made" */
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(ap[i].other, 0, "appender %d: %s", i, ap[i].other_msg);
		cr_assert_eq(ap[i].gone, 1, "appender %d ends with gone", i);
		cr_assert_lt(ap[i].last_ok, fv, "appender %d: version %llu after CimForgotten %llu",
			     i, (unsigned long long)ap[i].last_ok, (unsigned long long)fv);
		ok += ap[i].ok;
		cim_client_destroy(ap[i].c);
	}
	/* every append that landed is before CimForgotten, and only those */
	cr_assert_eq((uint64_t)ok + 1, fv, "%d appends landed, CimForgotten is %llu", ok,
		     (unsigned long long)fv);
	assert_forgotten("hot", fv);
	free(key);
}

static int collect(void *ctx, const cim_event *ev)
{
	json_t *arr = ctx;
	json_array_append_new(arr, json_pack("{ss sI sI sb sb ss}", "type", ev->event_type,
					     "seq", (json_int_t)ev->seq, "version",
					     (json_int_t)ev->version, "forgotten", ev->forgotten,
					     "encrypted", ev->encrypted, "data", ev->data_json));
	return 0;
}

Test(forget, a_replay_sees_cimforgotten_in_stream_order)
{
	char *key = hc_master_key("master.key");
	cim_subscription *sub = NULL;
	cim_subscribe_options so = {.pattern = "events.customer.>", .start = CIM_START_NOW};
	cim_error err;
	const cim_event *ev;

	hc_daemon(key, "customer", NULL);
	cr_assert_eq(cim_subscribe(H.client, &so, &sub, &err), CIM_ERR_OK, "%s", err.message);
	fill("c-1", 2);
	fill("c-2", 1);
	assert_forget_reply("c-1", 3);
	cim_append_result_destroy(h_append1("customer", "c-2", 1, "Changed", "{\"after\": 1}"));

	/* live: what was appended before the forget came decrypted or, read
	 * after it, forgotten; CimForgotten in its place, stream order kept */
	uint64_t last_seq = 0;
	const char *want[] = {"c-1", "c-1", "c-2", "c-1", "c-2"};
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(cim_subscription_next(sub, 5000, &ev, &err), CIM_ERR_OK, "%d: %s", i,
			     err.message);
		cr_assert_gt(ev->seq, last_seq);
		last_seq = ev->seq;
		cr_assert_str_eq(ev->aggregate_id, want[i]);
		if (i == 3)
			cr_assert_str_eq(ev->event_type, "CimForgotten");
		if (strcmp(ev->aggregate_id, "c-2") == 0) {
			cr_assert(ev->encrypted);
			cr_assert(strstr(ev->data_json, i == 2 ? SECRET : "after") != NULL);
		}
	}
	cim_subscription_close(sub);

	/* a replay after the forget: every c-1 event before CimForgotten is
	 * forgotten, CimForgotten last of c-1, all in stream order */
	json_t *seen = json_array();
	cim_subscribe_options ro = {.pattern = "events.customer.>"};
	cr_assert_eq(cim_replay(H.client, &ro, collect, NULL, seen, &err), CIM_ERR_OK, "%s",
		     err.message);
	cr_assert_eq(json_array_size(seen), 5);
	size_t i;
	json_t *e;
	int64_t prev = 0;
	json_array_foreach(seen, i, e) {
		cr_assert_gt(json_integer_value(json_object_get(e, "seq")), prev);
		prev = json_integer_value(json_object_get(e, "seq"));
	}
	for (i = 0; i < 2; i++) {
		e = json_array_get(seen, i);
		cr_assert(json_is_true(json_object_get(e, "forgotten")));
		cr_assert(json_is_false(json_object_get(e, "encrypted")));
		cr_assert_str_eq(json_string_value(json_object_get(e, "data")), "null");
	}
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(seen, 3), "type")),
			 "CimForgotten");
	json_decref(seen);
	free(key);
}

/* ---- the daemon killed at each step of a forget -------------------------------- */

static void kill_at(const char *key, const char *step, const char *id)
{
	h_reply r;

	setenv("CIM_EVENTSD_KILL_AT", step, 1);
	hc_daemon(key, "customer", NULL);
	unsetenv("CIM_EVENTSD_KILL_AT");
	fill(id, 3);
	pid_t pid = H.daemon;
	char subject[300];
	snprintf(subject, sizeof subject, "%s.forget.customer.%s", H_PREFIX, id);
	h_request(&r, subject, "{}", -1);
	cr_assert_neq(r.status, 200, "%s: the daemon answered: %s", step, r.body ? r.body : "");
	h_reply_free(&r);
	int st = h_wait_exit(pid, 10000);
	cr_assert_eq(st, 128 + SIGKILL, "%s: the daemon ended with %d", step, st);
	H.daemon = -1;
}

Test(forget, killed_after_each_step_the_next_start_finishes_it, .timeout = 600)
{
	char *key = hc_master_key("master.key");
	static const struct {
		const char *step, *id;
		bool key_gone, event_stored;
	} steps[] = {
		{"forget.record", "k-record", false, false},
		{"forget.key", "k-key", true, false},
		{"forget.snapshot", "k-snapshot", true, false},
		{"forget.event", "k-event", true, true},
	};

	for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
		const char *id = steps[s].id;
		kill_at(key, steps[s].step, id);

		/* where it stopped: the record holds the forget */
		cr_assert_eq(record_msgs(id), 1, "%s", steps[s].step);
		cr_assert_eq(key_msgs(id), steps[s].key_gone ? 0 : 1, "%s", steps[s].step);
		cr_assert_eq(forgotten_events(id), steps[s].event_stored ? 1 : 0, "%s",
			     steps[s].step);

		/* started again: the data is never shown, from the first read */
		hc_daemon(key, "customer", NULL);
		h_reply r;
		hc_request(&r, "get", "customer", id, "{}");
		cr_assert_eq(r.status, 200, "%s: %s", steps[s].step, r.body);
		cr_assert_null(strstr(r.body, SECRET), "%s: %s", steps[s].step, r.body);
		cr_assert(strstr(r.body, "\"forgotten\":true") != NULL, "%s", r.body);
		h_reply_free(&r);

		/* and the forget is finished: wait for the fact */
		int64_t end = h_now_ms() + 15000;
		while ((record_msgs(id) != 0 || forgotten_events(id) != 1) && h_now_ms() < end)
			h_sleep_ms(50);
		cr_assert_eq(record_msgs(id), 0, "%s: the record is removed", steps[s].step);
		assert_forgotten(id, 4);
		assert_forget_reply(id, 4);
		cr_assert_eq(h_daemon_stop(H.daemon), 0);
		H.daemon = -1;
	}
	/* nothing of the data left anywhere the store keeps things */
	const char *streams[] = {H_STREAM, "KV_CIM-KEYS", "KV_CIM-SNAPSHOTS", "KV_CIM-HEADS"};
	for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
		cr_assert_not(hc_stream_holds(streams[i], SECRET, strlen(SECRET)), "%s",
			      streams[i]);
	cr_assert_eq(hc_subject_msgs("KV_CIM-KEYS", "$KV.CIM-KEYS.>"), 0);
	free(key);
}

/* ---- what a forget must never give back ---------------------------------------- */

/* A restore of a forgotten aggregate carrying its old key block (what an
 * export taken before the forget holds) answers gone, and the key does
 * not go back into the bucket: the old ciphertext stays unreadable. */
Test(forget, a_restore_of_a_forgotten_aggregate_stores_no_key)
{
	char *key = hc_master_key("master.key");
	natsMsg *kb = NULL, *b1 = NULL;
	h_reply r;

	hc_daemon(key, "customer", NULL);
	cim_append_result *first = h_append1("customer", "c-1", CIM_EXPECT_NO_STREAM, "Changed",
					     "{\"who\": \"" SECRET "\"}");
	cim_append_result_destroy(h_append1("customer", "c-1", 1, "Changed", "{\"i\": 2}"));
	fill("c-2", 1);
	cr_assert_eq(js_GetMsg(&b1, H.js, H_STREAM, first->events[0].seq, NULL, NULL), NATS_OK);
	cr_assert_eq(js_GetLastMsg(&kb, H.js, "KV_CIM-KEYS", "$KV.CIM-KEYS.customer.c-1", NULL,
				   NULL), NATS_OK);
	char *blk = tb_base64((const uint8_t *)natsMsg_GetData(b1),
			      (size_t)natsMsg_GetDataLength(b1));
	char *kbt = tb_base64((const uint8_t *)natsMsg_GetData(kb),
			      (size_t)natsMsg_GetDataLength(kb));
	char *body = h_strf("{\"blocks\": [\"%s\"], \"key\": \"%s\"}", blk, kbt);
	/* before the forget it is a retry of what is stored: answered so */
	hc_request(&r, "restore", "customer", "c-1", body);
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);

	assert_forget_reply("c-1", 3);
	cr_assert_eq(key_msgs("c-1"), 0);
	for (int round = 0; round < 2; round++) {
		hc_request(&r, "restore", "customer", "c-1", body);
		cr_assert_str_eq(h_error_code(&r), "gone", "%s", r.body);
		cr_assert_eq(r.status, 410);
		h_reply_free(&r);
		cr_assert_eq(key_msgs("c-1"), 0, "round %d: the key went back into the bucket",
			     round);
		cr_assert_eq(hc_subject_msgs("KV_CIM-KEYS", "$KV.CIM-KEYS.>"), 1, "c-2's only");
		hc_request(&r, "get", "customer", "c-1", "{}");
		cr_assert_null(strstr(r.body, SECRET), "%s", r.body);
		h_reply_free(&r);
		/* and a daemon started afresh has nothing to read it with */
		cr_assert_eq(h_daemon_stop(H.daemon), 0);
		hc_daemon(key, "customer", NULL);
		hc_request(&r, "get", "customer", "c-1", "{}");
		cr_assert_null(strstr(r.body, SECRET), "%s", r.body);
		h_reply_free(&r);
	}
	assert_forgotten("c-1", 3);
	natsMsg_Destroy(b1);
	natsMsg_Destroy(kb);
	cim_append_result_destroy(first);
	free(blk);
	free(kbt);
	free(body);
	free(key);
}

#define MARK "Qwz-SNAPSHOT-STATE-3141"

struct saver {
	cim_client *c;
	const char *id;
	atomic_int *done;
	int ok, gone, other;
	char other_msg[300];
};

static void *save_loop(void *arg)
{
	struct saver *s = arg;

	for (int i = 0; i < 3000; i++) {
		char *reply = NULL;
		cim_error err = {0};
		cim_err rc = cim_request(s->c, "snapshot.save", "customer", s->id,
					 "{\"version\": 1, \"state\": {\"who\": \"" MARK "\"}}",
					 &reply, &err);
		cim_free(reply);
		atomic_fetch_add(s->done, 1);
		if (rc == CIM_ERR_OK) {
			s->ok++;
		} else if (rc == CIM_ERR_GONE) {
			s->gone++;
			break;
		} else {
			s->other++;
			snprintf(s->other_msg, sizeof s->other_msg, "%s: %.200s", cim_err_name(rc),
				 err.message);
		}
	}
	return NULL;
}

/* snapshot.save racing a forget, saves queued behind one another: each is
 * stored before the forget removes the snapshot or answers gone; nothing
 * is left in the snapshots bucket afterwards, and above all no state in
 * plain text (a save that found the data key erased took it for an
 * aggregate stored plain). */
Test(forget, snapshot_saves_racing_a_forget_leave_nothing)
{
	char *key = hc_master_key("master.key");
	enum { N = 8, ROUNDS = 6 };

	hc_daemon(key, "customer", NULL);
	cim_client *cs[N];
	for (int i = 0; i < N; i++)
		cs[i] = h_client_new(0);
	for (int round = 0; round < ROUNDS; round++) {
		char id[32];
		struct saver sv[N];
		pthread_t th[N];
		atomic_int done = 0;

		snprintf(id, sizeof id, "s-%d", round);
		cim_append_result_destroy(h_append1("customer", id, CIM_EXPECT_NO_STREAM, "Changed",
						    "{\"who\": \"" SECRET "\"}"));
		for (int i = 0; i < N; i++) {
			sv[i] = (struct saver){.c = cs[i], .id = id, .done = &done};
			pthread_create(&th[i], NULL, save_loop, &sv[i]);
		}
		while (atomic_load(&done) < 40 + 10 * round)
			h_sleep_ms(1);
		assert_forget_reply(id, 2);
		for (int i = 0; i < N; i++) {
			pthread_join(th[i], NULL);
			cr_assert_eq(sv[i].other, 0, "round %d saver %d: %s", round, i,
				     sv[i].other_msg);
			cr_assert_eq(sv[i].gone, 1, "round %d saver %d ends with gone", round, i);
		}
		cr_expect_eq(snapshot_msgs(id), 0, "round %d: a snapshot was stored after the forget",
			     round);
		cr_assert_not(hc_stream_holds("KV_CIM-SNAPSHOTS", MARK, strlen(MARK)),
			      "round %d: a state was stored in plain text", round);
	}
	for (int i = 0; i < N; i++)
		cim_client_destroy(cs[i]);
	free(key);
}
