/*
 * test_crypt.c: encrypted aggregates through the daemon (issue 15): what
 * the store keeps holds no byte of the plaintext (every stream, every
 * bucket, nats-server's files, the daemon's log at debug level), while
 * get, load, by_type and snapshot.get show it decrypted with "encrypted":
 * true; one data key per aggregate however many first appends race; the
 * settings refused at start (a wrong master key without touching anything);
 * a restart; a small key cache; aggregates of types not listed, and those
 * made before their type was listed, stay plain.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../support/harness.h"
#include "../support/hcrypt.h"

TestSuite(crypt, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 120);

#define SECRET "Zyx-PLAINTEXT-4711"
#define STATE_SECRET "Qwv-STATE-0815"

/* The raw block at seq: is its data a byte string (encrypted)? */
static bool stored_encrypted(uint64_t seq)
{
	natsMsg *m = h_stream_get(seq);
	cim_event_view v;
	char err[200];

	cr_assert_eq(cim_event_check((const uint8_t *)natsMsg_GetData(m),
				     (size_t)natsMsg_GetDataLength(m), &v, err, sizeof err),
		     0, "%s", err);
	bool enc = cim_event_encrypted(&v, NULL, NULL);
	natsMsg_Destroy(m);
	return enc;
}

static json_t *event_at(const h_reply *r, size_t i)
{
	return json_array_get(json_object_get(r->json, "events"), i);
}

Test(crypt, no_plaintext_in_the_store_and_reads_decrypt)
{
	char *key = hc_master_key("master.key");
	char where[1100];
	h_reply r;

	hc_daemon(key, "customer", "--log-level", "debug", NULL);
	cim_append_result *a = h_append1("customer", "c-1", CIM_EXPECT_NO_STREAM, "Registered",
					 "{\"name\": \"" SECRET "\", \"n\": 2.5, \"l\": [1, null]}");
	cim_append_result *b = h_append1("customer", "c-1", 1, "Renamed",
					 "\"" SECRET "-2\"");
	cim_append_result *p = h_append1("order", "o-1", CIM_EXPECT_ANY, "Placed",
					 "{\"plain\": \"visible-order-data\"}");
	cr_assert(stored_encrypted(a->events[0].seq));
	cr_assert(stored_encrypted(b->events[0].seq));
	cr_assert_not(stored_encrypted(p->events[0].seq), "order is not listed");

	hc_request(&r, "snapshot.save", "customer", "c-1",
		   "{\"version\": 2, \"state\": {\"s\": \"" STATE_SECRET "\"}}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);

	/* every read shows it decrypted */
	hc_request(&r, "get", "customer", "c-1", "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	json_t *e0 = event_at(&r, 0), *e1 = event_at(&r, 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e0, "data"), "name")),
			 SECRET);
	cr_assert_eq(json_real_value(json_object_get(json_object_get(e0, "data"), "n")), 2.5);
	cr_assert(json_is_true(json_object_get(e0, "encrypted")));
	cr_assert_str_eq(json_string_value(json_object_get(e1, "data")), SECRET "-2");
	cr_assert_null(json_object_get(e0, "forgotten"));
	cr_assert(strstr(r.body, "\"data\":{\"l\":[1,null],\"n\":2.5,\"name\":\"" SECRET
			 "\"},\"encrypted\":true,\"prev\":null") != NULL, "%s", r.body);
	h_reply_free(&r);

	hc_request(&r, "get", "order", "o-1", "{}");
	cr_assert_null(json_object_get(event_at(&r, 0), "encrypted"), "%s", r.body);
	h_reply_free(&r);

	hc_request(&r, "snapshot.get", "customer", "c-1", "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "state"), "s")),
			 STATE_SECRET);
	cr_assert(json_is_true(json_object_get(r.json, "encrypted")));
	h_reply_free(&r);

	hc_request(&r, "load", "customer", "c-1", "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(json_is_true(json_object_get(json_object_get(r.json, "snapshot"), "encrypted")));
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 0);
	h_reply_free(&r);

	h_requestf(&r, "{}", "%s.by_type.Renamed", H_PREFIX);
	cr_assert_str_eq(json_string_value(json_object_get(event_at(&r, 0), "data")), SECRET "-2");
	cr_assert(json_is_true(json_object_get(event_at(&r, 0), "encrypted")));
	h_reply_free(&r);

	/* a restart writes a heads checkpoint: it holds nothing of it either */
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	hc_daemon(key, "customer", "--log-level", "debug", NULL);
	hc_request(&r, "get", "customer", "c-1", "{}");
	cr_assert(strstr(r.body, SECRET) != NULL, "decrypted after a restart: %s", r.body);
	h_reply_free(&r);

	/* nothing stored holds a byte of it: streams, buckets, files, log */
	const char *streams[] = {H_STREAM, "KV_CIM-KEYS", "KV_CIM-SNAPSHOTS", "KV_CIM-HEADS",
				 "KV_CIM-CHECKPOINTS", "KV_CIM-LEASE"};
	for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
		cr_assert_not(hc_stream_holds(streams[i], SECRET, strlen(SECRET)), "%s",
			      streams[i]);
		cr_assert_not(hc_stream_holds(streams[i], STATE_SECRET, strlen(STATE_SECRET)),
			      "%s", streams[i]);
	}
	cr_assert(hc_stream_holds(H_STREAM, "visible-order-data", 18), "the check finds plain data");
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = -1;
	char js[400], logp[400];
	snprintf(js, sizeof js, "%s/js", H.nats.dir);
	snprintf(logp, sizeof logp, "%s/daemon.log", H.nats.dir);
	cr_assert(hc_files_hold(js, "visible-order-data", 18, where, sizeof where),
		  "the file check finds plain data");
	cr_assert_not(hc_files_hold(js, SECRET, strlen(SECRET), where, sizeof where), "%s", where);
	cr_assert_not(hc_files_hold(js, STATE_SECRET, strlen(STATE_SECRET), where, sizeof where),
		      "%s", where);
	char *log = h_slurp(logp);
	cr_assert(strstr(log, "level=debug") != NULL, "the log is at debug level");
	cr_assert_null(strstr(log, SECRET));
	cr_assert_null(strstr(log, STATE_SECRET));
	free(log);
	cim_append_result_destroy(a);
	cim_append_result_destroy(b);
	cim_append_result_destroy(p);
	free(key);
}

struct racer {
	int k;
	cim_client *c;
	cim_err rc;
	uint64_t version;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	char data[64];
	cim_new_event ev = {.event_type = "Joined", .data_json = data};
	cim_append_result *out = NULL;
	cim_error err;

	snprintf(data, sizeof data, "{\"k\": %d}", r->k);
	r->rc = cim_append(r->c, "customer", "race-1", CIM_EXPECT_ANY, &ev, 1, &out, &err);
	if (out != NULL)
		r->version = out->version;
	cim_append_result_destroy(out);
	return NULL;
}

Test(crypt, one_data_key_however_many_first_appends_race)
{
	char *key = hc_master_key("master.key");
	enum { N = 12 };
	struct racer rs[N];
	pthread_t th[N];

	hc_daemon(key, "*", NULL);
	for (int i = 0; i < N; i++) {
		rs[i] = (struct racer){.k = i, .c = h_client_new(0)};
		pthread_create(&th[i], NULL, race, &rs[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(rs[i].rc, CIM_ERR_OK, "append %d", i);
		cim_client_destroy(rs[i].c);
	}
	cr_assert_eq(hc_subject_msgs("KV_CIM-KEYS", "$KV.CIM-KEYS.>"), 1,
		     "one key block for the aggregate");
	cr_assert_eq(hc_subject_msgs("KV_CIM-KEYS", "$KV.CIM-KEYS.customer.race-1"), 1);

	cim_event_page *pg = NULL;
	cim_error err;
	cr_assert_eq(cim_get(H.client, "customer", "race-1", 1, 0, &pg, &err), CIM_ERR_OK);
	cr_assert_eq(pg->n_events, N);
	bool seen[N] = {false};
	for (size_t i = 0; i < pg->n_events; i++) {
		cr_assert(pg->events[i].encrypted);
		cr_assert_not(pg->events[i].forgotten);
		json_t *d = json_loads(pg->events[i].data_json, 0, NULL);
		int k = (int)json_integer_value(json_object_get(d, "k"));
		cr_assert(k >= 0 && k < N && !seen[k]);
		seen[k] = true;
		json_decref(d);
	}
	cim_event_page_destroy(pg);
	free(key);
}

/* cim-eventsd with args run to its end (a refused start). */
static h_run refused(const char *const *args)
{
	const char *argv[24] = {getenv("CIM_TEST_DAEMON"), "--nats-url", H.nats.url};
	size_t n = 3;

	for (; *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return h_finish(h_spawn("refused", argv), "refused", 20000);
}

Test(crypt, a_wrong_master_key_is_refused_and_nothing_changes)
{
	char *good = hc_master_key("good.key"), *bad = hc_master_key("bad.key");
	h_reply r;

	hc_daemon(good, "customer", NULL);
	cim_append_result_destroy(h_append1("customer", "c-1", CIM_EXPECT_NO_STREAM, "A",
					    "{\"x\": \"" SECRET "\"}"));
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = -1;
	uint64_t msgs = h_stream_msgs(), keys = hc_subject_msgs("KV_CIM-KEYS", "$KV.CIM-KEYS.>");
	natsMsg *before = NULL;
	cr_assert_eq(js_GetLastMsg(&before, H.js, "KV_CIM-KEYS", "$KV.CIM-KEYS.customer.c-1", NULL,
				   NULL), NATS_OK);

	h_run run = refused((const char *[]){"--master-key", bad, "--encrypt-types", "customer",
					     NULL});
	cr_assert_eq(run.status, 2, "exit status %d; stderr: %s", run.status, run.err);
	cr_assert(strstr(run.err, "master_key is not the key") != NULL, "%s", run.err);
	cr_assert(strstr(run.err, "customer/c-1") != NULL, "%s", run.err);
	h_run_free(&run);

	/* a store with data keys and no master key at all: refused too */
	run = refused((const char *[]){NULL});
	cr_assert_eq(run.status, 2, "exit status %d; stderr: %s", run.status, run.err);
	cr_assert(strstr(run.err, "master_key is not set") != NULL, "%s", run.err);
	h_run_free(&run);

	/* nothing was written by either */
	cr_assert_eq(h_stream_msgs(), msgs);
	cr_assert_eq(hc_subject_msgs("KV_CIM-KEYS", "$KV.CIM-KEYS.>"), keys);
	natsMsg *after = NULL;
	cr_assert_eq(js_GetLastMsg(&after, H.js, "KV_CIM-KEYS", "$KV.CIM-KEYS.customer.c-1", NULL,
				   NULL), NATS_OK);
	cr_assert_eq(natsMsg_GetSequence(after), natsMsg_GetSequence(before));
	cr_assert_eq(natsMsg_GetDataLength(after), natsMsg_GetDataLength(before));
	cr_assert_eq(memcmp(natsMsg_GetData(after), natsMsg_GetData(before),
			    (size_t)natsMsg_GetDataLength(after)), 0);
	natsMsg_Destroy(before);
	natsMsg_Destroy(after);

	/* the right key reads it all again */
	hc_daemon(good, "customer", NULL);
	hc_request(&r, "get", "customer", "c-1", "{}");
	cr_assert(strstr(r.body, SECRET) != NULL, "%s", r.body);
	h_reply_free(&r);
	free(good);
	free(bad);
}

Test(crypt, settings_refused_at_start_with_a_reason)
{
	char *key = hc_master_key("master.key");
	char *loose = h_strf("%s/loose.key", H.nats.dir), *shortk = h_strf("%s/short.key", H.nats.dir);
	struct {
		const char *args[6];
		const char *says;
	} cases[] = {
		{{"--encrypt-types", "customer", NULL}, "encrypt_types needs master_key"},
		{{"--master-key", key, "--encrypt-types", "customer,", NULL}, "encrypt_types must be"},
		{{"--master-key", key, "--encrypt-types", "*,order", NULL}, "encrypt_types must be"},
		{{"--master-key", key, "--encrypt-types", "9lives", NULL}, "encrypt_types must be"},
		{{"--master-key", loose, NULL}, "master_key"},
		{{"--master-key", shortk, NULL}, "master_key"},
		{{"--master-key", "/nonexistent/master.key", NULL}, "master_key"},
		{{"--master-key", key, "--key-cache", "5", NULL}, "key_cache"},
	};
	FILE *f = fopen(loose, "w");
	fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
	fclose(f);
	chmod(loose, 0644);
	f = fopen(shortk, "w");
	fputs("0011\n", f);
	fclose(f);
	chmod(shortk, 0600);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		h_run run = refused(cases[i].args);
		cr_assert_eq(run.status, 2, "case %zu: exit %d; %s", i, run.status, run.err);
		cr_assert(strstr(run.err, cases[i].says) != NULL, "case %zu: %s", i, run.err);
		cr_assert_null(strstr(run.err, "00112233445566"), "no key bytes: %s", run.err);
		h_run_free(&run);
	}
	/* --check-config says the same, and shows the settings in force */
	h_run run = refused((const char *[]){"--check-config", "--master-key", key,
					     "--encrypt-types", "customer, order", NULL});
	cr_assert_eq(run.status, 0, "%s", run.err);
	cr_assert(strstr(run.out, "encrypt_types = customer, order") != NULL, "%s", run.out);
	cr_assert(strstr(run.out, "keys_bucket = CIM-KEYS") != NULL, "%s", run.out);
	h_run_free(&run);
	free(key);
	free(loose);
	free(shortk);
}

Test(crypt, a_small_key_cache_serves_many_aggregates)
{
	char *key = hc_master_key("master.key");
	enum { N = 300 };
	h_reply r;
	char id[32], data[64];

	hc_daemon(key, "customer", "--key-cache", "128", NULL);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "c-%d", i);
		snprintf(data, sizeof data, "{\"i\": %d}", i);
		cim_append_result_destroy(h_append1("customer", id, CIM_EXPECT_NO_STREAM, "A",
						    data));
	}
	/* each read back, from a cache a third of their number */
	for (int i = 0; i < N; i += 7) {
		snprintf(id, sizeof id, "c-%d", i);
		snprintf(data, sizeof data, "\"data\":{\"i\":%d},\"encrypted\":true", i);
		hc_request(&r, "get", "customer", id, "{}");
		cr_assert(strstr(r.body, data) != NULL, "%s", r.body);
		h_reply_free(&r);
		/* and appended to again, with the key read back from the bucket */
		cim_append_result_destroy(h_append1("customer", id, 1, "B", "{}"));
	}
	h_requestf(&r, "{}", "%s.info", H_PREFIX);
	json_t *dk = json_object_get(json_object_get(r.json, "encryption"), "data_keys");
	cr_assert_eq(json_integer_value(json_object_get(dk, "cache_slots")), 128);
	cr_assert_leq(json_integer_value(json_object_get(dk, "cached")), 128);
	cr_assert_eq(json_integer_value(json_object_get(dk, "made")), N);
	cr_assert_gt(json_integer_value(json_object_get(dk, "evicted")), 0);
	cr_assert_gt(json_integer_value(json_object_get(dk, "loaded")), 0);
	cr_assert_eq(json_integer_value(json_object_get(dk, "pinned")), 0);
	h_reply_free(&r);
	free(key);
}

Test(crypt, aggregates_made_before_their_type_was_listed_stay_plain)
{
	char *key = hc_master_key("master.key");
	h_reply r;

	hc_daemon(key, NULL, NULL);
	cim_append_result *old = h_append1("customer", "old-1", CIM_EXPECT_NO_STREAM, "A",
					   "{\"v\": 1}");
	cr_assert_not(stored_encrypted(old->events[0].seq));
	hc_request(&r, "forget", "customer", "old-1", "{}");
	cr_assert_str_eq(h_error_code(&r), "invalid_argument", "%s", r.body);
	cr_assert_str_eq(h_error_str(&r, "field"), "aggregate_type");
	h_reply_free(&r);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);

	hc_daemon(key, "customer", NULL);
	cim_append_result *more = h_append1("customer", "old-1", 1, "B", "{\"v\": 2}");
	cim_append_result *fresh = h_append1("customer", "new-1", CIM_EXPECT_NO_STREAM, "A",
					     "{\"v\": 3}");
	cr_assert_not(stored_encrypted(more->events[0].seq), "no key: it stays plain");
	cr_assert(stored_encrypted(fresh->events[0].seq));
	hc_request(&r, "forget", "customer", "old-1", "{}");
	cr_assert_str_eq(h_error_code(&r), "invalid_argument", "%s", r.body);
	cr_assert_str_eq(h_error_str(&r, "field"), "aggregate_id");
	h_reply_free(&r);
	hc_request(&r, "get", "customer", "old-1", "{}");
	cr_assert(strstr(r.body, "\"data\":{\"v\":2},\"prev\"") != NULL, "%s", r.body);
	h_reply_free(&r);
	cim_append_result_destroy(old);
	cim_append_result_destroy(more);
	cim_append_result_destroy(fresh);
	free(key);
}

Test(crypt, retries_of_encrypted_appends_are_recognised)
{
	char *key = hc_master_key("master.key");
	cim_new_event ev[2] = {
		{.event_type = "A", .data_json = "{\"a\": \"" SECRET "\"}", .event_id = "ev-1"},
		{.event_type = "B", .data_json = "[1, 2]", .event_id = "ev-2"},
	};
	cim_append_result *first = NULL, *again = NULL;
	cim_error err;

	hc_daemon(key, "customer", NULL);
	cr_assert_eq(cim_append(H.client, "customer", "c-1", CIM_EXPECT_NO_STREAM, ev, 2, &first,
				&err), CIM_ERR_OK, "%s", err.message);
	/* the same events again: the original reply, though the stored
	 * bytes hold random nonces */
	cr_assert_eq(cim_append(H.client, "customer", "c-1", CIM_EXPECT_NO_STREAM, ev, 2, &again,
				&err), CIM_ERR_OK, "%s", err.message);
	cr_assert_str_eq(again->head, first->head);
	cr_assert_eq(again->version, 2);
	cim_append_result_destroy(again);
	/* after a restart too (from the head's event_id) */
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	hc_daemon(key, "customer", NULL);
	cr_assert_eq(cim_append(H.client, "customer", "c-1", CIM_EXPECT_NO_STREAM, ev, 2, &again,
				&err), CIM_ERR_OK, "%s", err.message);
	cr_assert_str_eq(again->head, first->head);
	cim_append_result_destroy(again);
	/* other data under the same event_id: duplicate_event */
	ev[1].data_json = "[1, 3]";
	cr_assert_eq(cim_append(H.client, "customer", "c-1", CIM_EXPECT_NO_STREAM, ev, 2, &again,
				&err), CIM_ERR_DUPLICATE_EVENT, "%s", err.message);
	cim_append_result_destroy(first);
	free(key);
}
