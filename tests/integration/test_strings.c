/*
 * test_strings.c: every valid JSON string goes in and comes back
 * unchanged: U+0000 (at the start, in the middle, at the end, in keys
 * too), other control characters and "" in data, metadata, the three ids
 * and snapshot state, through append, get, by_type, load, snapshot.get,
 * validate, the stored block, the client library and the CLI; retries
 * and duplicates are judged on the whole id; an id a header line cannot
 * carry exactly is left out of the headers.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "dagcbor.h"
#include "jsonread.h"
#include "jsontext.h"

TestSuite(strings, .init = h_setup, .fini = h_teardown, .timeout = 120);

/* data and metadata with U+0000 in keys and values, and other controls */
#define DATA                                                                    \
	"{\"\\u0000\":\"\\u0000\",\"a\\u0000\":[\"\\u0000a\",\"a\\u0000a\"],"   \
	"\"\\u0000a\":{\"b\\u0000\":null},\"a\":\"x\\u0000y\\u0000\","          \
	"\"ctl\":\"\\u0001\\t\\n\\u007f\",\"\":\"\"}"
#define META "{\"m\\u0000\":\"\\u0000v\",\"\\u0000\":\"\",\"m\":\"w\"}"
#define STATE "{\"\\u0000s\":[\"\\u0000\",{\"t\\u0000\":\"u\\u0000\"}],\"s\":1}"

static json_t *read_json(const char *text)
{
	json_error_t e;
	json_t *v = cim_json_read(text, strlen(text), JSON_DECODE_ANY, &e);

	cr_assert_not_null(v, "%s: %s", text, e.text);
	return v;
}

static void assert_same(const json_t *got, const char *want_text, const char *what)
{
	json_t *want = read_json(want_text);
	char *g = got ? cim_json_text(got) : NULL;

	cr_assert(cim_json_same(got, want), "%s: got %s, want %s", what, g ? g : "(none)",
		  want_text);
	free(g);
	json_decref(want);
}

/* A string member is exactly the len bytes of want. */
static void assert_text(const json_t *o, const char *key, const char *want, size_t len)
{
	const json_t *v = json_object_get(o, key);

	cr_assert(json_is_string(v), "%s is not a string", key);
	cr_assert_eq(json_string_length(v), len, "%s: length %zu, want %zu", key,
		     json_string_length(v), len);
	cr_assert_eq(memcmp(json_string_value(v), want, len), 0, "%s differs", key);
}

static void request_ok(h_reply *r, const char *body, const char *fmt, ...)
{
	char subject[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(subject, sizeof subject, fmt, ap);
	va_end(ap);
	h_request(r, subject, body, -1);
	cr_assert_eq(r->s, NATS_OK, "%s: no reply", subject);
	cr_assert_eq(r->status, 200, "%s: %d %s", subject, r->status, r->body);
	cr_assert_not_null(r->json, "%s: not JSON: %s", subject, r->body);
}

static void assert_the_event(const json_t *ev, const char *what)
{
	cr_assert(json_is_object(ev), "%s: no event", what);
	assert_text(ev, "event_id", "\0e\0", 3);
	assert_text(ev, "correlation_id", "c\0", 2);
	assert_text(ev, "causation_id", "", 0);
	assert_same(json_object_get(ev, "data"), DATA, what);
	assert_same(json_object_get(ev, "metadata"), META, what);
}

Test(strings, nul_everywhere_comes_back_unchanged_from_every_read)
{
	static const char body[] =
		"{\"events\":[{\"event_type\":\"Nul\",\"event_id\":\"\\u0000e\\u0000\","
		"\"correlation_id\":\"c\\u0000\",\"causation_id\":\"\","
		"\"metadata\":" META ",\"data\":" DATA "}]}";
	h_reply r;
	cim_event_block ev;
	char cid[CIM_CID_TEXT_MAX];
	uint64_t seq;

	/* another aggregate's event first: the reads below are not on an
	 * empty stream */
	cim_append_result_destroy(h_append1("note", "n-0", CIM_EXPECT_ANY, "Nul",
					    "{\"plain\":true}"));
	request_ok(&r, body, H_PREFIX ".append.note.n-1");
	const json_t *a = json_array_get(json_object_get(r.json, "events"), 0);
	assert_text(a, "event_id", "\0e\0", 3);
	cr_assert(strstr(r.body, "\"event_id\":\"\\u0000e\\u0000\"") != NULL,
		  "the reply writes U+0000 as \\u0000: %s", r.body);
	seq = (uint64_t)json_integer_value(json_object_get(a, "seq"));
	h_reply_free(&r);

	/* the stored block holds the bytes as they were sent */
	natsMsg *m = h_stored_event(seq, &ev, cid);
	cr_assert_eq(ev.event_id_len, 3);
	cr_assert_eq(memcmp(ev.event_id, "\0e\0", 3), 0);
	cr_assert_eq(ev.correlation_id_len, 2);
	cr_assert_eq(ev.causation_id_len, 0);
	assert_same(ev.data, DATA, "stored data");
	assert_same(ev.metadata, META, "stored metadata");
	/* ids a header line cannot carry are left out; the rest are there */
	cr_assert_null(h_header(m, "Cim-Event-Id"));
	cr_assert_null(h_header(m, "Cim-Correlation-Id"));
	cr_assert_null(h_header(m, "Cim-Causation-Id"));
	cr_assert_str_eq(h_header(m, "Cim-Cid"), cid);
	cr_assert_str_eq(h_header(m, "Cim-Version"), "1");
	cim_event_block_free(&ev);
	natsMsg_Destroy(m);

	request_ok(&r, "{}", H_PREFIX ".get.note.n-1");
	assert_the_event(json_array_get(json_object_get(r.json, "events"), 0), "get");
	h_reply_free(&r);

	request_ok(&r, "{\"after_seq\": 0}", H_PREFIX ".by_type.Nul");
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 2);
	assert_the_event(json_array_get(json_object_get(r.json, "events"), 1), "by_type");
	h_reply_free(&r);

	request_ok(&r, "{}", H_PREFIX ".validate.note.n-1");
	cr_assert(json_is_true(json_object_get(r.json, "valid")), "%s", r.body);
	h_reply_free(&r);

	/* snapshot state, and load from it */
	request_ok(&r, "{\"version\": 1, \"state\": " STATE "}",
		   H_PREFIX ".snapshot.save.note.n-1");
	h_reply_free(&r);
	request_ok(&r, "{}", H_PREFIX ".snapshot.get.note.n-1");
	assert_same(json_object_get(r.json, "state"), STATE, "snapshot.get");
	h_reply_free(&r);
	request_ok(&r, "{\"events\":[{\"event_type\":\"Nul\",\"data\":" DATA
		   ",\"metadata\":" META ",\"event_id\":\"\\u0000e\\u0000-2\","
		   "\"correlation_id\":\"c\\u0000\",\"causation_id\":\"\"}]}",
		   H_PREFIX ".append.note.n-1");
	h_reply_free(&r);
	request_ok(&r, "{}", H_PREFIX ".load.note.n-1");
	assert_same(json_object_get(json_object_get(r.json, "snapshot"), "state"), STATE,
		    "load's snapshot");
	const json_t *after = json_array_get(json_object_get(r.json, "events"), 0);
	assert_text(after, "event_id", "\0e\0-2", 5);
	assert_same(json_object_get(after, "data"), DATA, "load's event");
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 1);
	h_reply_free(&r);
}

/* The same append twice, then again after kill -9 (the start-up scan
 * finds no Cim-Event-Id header and reads the id from the block): the
 * original reply each time, nothing stored twice. */
Test(strings, a_retry_with_nul_event_ids_is_answered_as_the_first_time)
{
	static const char body[] =
		"{\"expected_version\":\"no_stream\",\"events\":["
		"{\"event_type\":\"A\",\"event_id\":\"r\\u0000\",\"data\":{\"k\\u0000\":1}},"
		"{\"event_type\":\"B\",\"event_id\":\"r\\u0000\\u0000\",\"data\":\"\\u0000\"}]}";
	h_reply first, again;
	uint64_t msgs;

	cim_append_result_destroy(h_append1("acct", "other", CIM_EXPECT_ANY, "A", "1"));
	request_ok(&first, body, H_PREFIX ".append.acct.r-1");
	msgs = h_stream_msgs();
	for (int round = 0; round < 2; round++) {
		if (round == 1) {
			h_daemon_kill9(H.daemon);
			H.daemon = h_daemon_start(&H.nats, NULL);
			cr_assert_gt(H.daemon, 0);
		}
		request_ok(&again, body, H_PREFIX ".append.acct.r-1");
		cr_assert_str_eq(again.body, first.body, "round %d: the original reply", round);
		cr_assert_eq(h_stream_msgs(), msgs, "round %d: nothing stored twice", round);
		h_reply_free(&again);
	}
	h_reply_free(&first);
}

/* An event_id is judged on all of its bytes: the same id with other
 * content is duplicate_event naming it exactly; ids that differ only
 * after a NUL are different events. */
Test(strings, duplicate_event_names_a_nul_event_id_exactly)
{
	h_reply r;

	request_ok(&r, "{\"events\":[{\"event_type\":\"A\",\"event_id\":\"x\\u0000y\","
		       "\"data\":1}]}", H_PREFIX ".append.acct.d-1");
	h_reply_free(&r);
	request_ok(&r, "{\"events\":[{\"event_type\":\"A\",\"event_id\":\"x\\u0000z\","
		       "\"data\":1}]}", H_PREFIX ".append.acct.d-1");
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 2,
		     "x\\0z is not x\\0y: %s", r.body);
	h_reply_free(&r);
	request_ok(&r, "{\"events\":[{\"event_type\":\"A\",\"event_id\":\"x\",\"data\":1}]}",
		   H_PREFIX ".append.acct.d-1");
	cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 3,
		     "x is not x\\0y either");
	h_reply_free(&r);

	h_requestf(&r, "{\"events\":[{\"event_type\":\"A\",\"event_id\":\"x\\u0000y\","
		       "\"data\":2}]}", H_PREFIX ".append.acct.d-1");
	cr_assert_str_eq(h_error_code(&r), "duplicate_event", "%s", r.body);
	cr_assert_eq(r.status, 409);
	assert_text(json_object_get(r.json, "error"), "event_id", "x\0y", 3);
	cr_assert(strstr(json_string_value(json_object_get(json_object_get(r.json, "error"),
							   "message")),
			  "\"x\\u0000y\"") != NULL, "the message shows the id: %s", r.body);
	h_reply_free(&r);

	/* in another aggregate */
	h_requestf(&r, "{\"events\":[{\"event_type\":\"A\",\"event_id\":\"x\\u0000y\","
		       "\"data\":1}]}", H_PREFIX ".append.acct.d-2");
	cr_assert_str_eq(h_error_code(&r), "duplicate_event", "%s", r.body);
	assert_text(json_object_get(r.json, "error"), "event_id", "x\0y", 3);
	h_reply_free(&r);
}

/* "" is an event_id (not "none"), and so is text with controls or spaces
 * at the ends; each header carries its id only when it reads back
 * exactly. */
Test(strings, empty_and_control_ids_are_ids)
{
	static const struct {
		const char *json, *bytes;
		size_t len;
		bool header;
	} ids[] = {
		{"\"\"", "", 0, false},
		{"\"\\r\\n\"", "\r\n", 2, false},
		{"\" lead\"", " lead", 5, false},
		{"\"trail \"", "trail ", 6, false},
		{"\"tab\\tin\"", "tab\tin", 6, false},
		{"\"a b:c\"", "a b:c", 5, true},
		{"\"caf\\u00e9\"", "caf\xc3\xa9", 5, true},
	};

	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		char *body = h_strf("{\"events\":[{\"event_type\":\"A\",\"event_id\":%s,"
				    "\"data\":%zu}]}", ids[i].json, i);
		h_reply r, again;

		request_ok(&r, body, H_PREFIX ".append.acct.c-%zu", i);
		const json_t *a = json_array_get(json_object_get(r.json, "events"), 0);
		assert_text(a, "event_id", ids[i].bytes, ids[i].len);
		natsMsg *m = h_stream_get((uint64_t)json_integer_value(json_object_get(a, "seq")));
		const char *hv = h_header(m, "Cim-Event-Id");
		if (ids[i].header)
			cr_assert(hv != NULL && strcmp(hv, ids[i].bytes) == 0, "id %s", ids[i].json);
		else
			cr_assert_null(hv, "id %s: header %s", ids[i].json, hv);
		natsMsg_Destroy(m);
		request_ok(&again, body, H_PREFIX ".append.acct.c-%zu", i);
		cr_assert_str_eq(again.body, r.body, "id %s: a retry", ids[i].json);
		h_reply_free(&again);
		request_ok(&again, "{}", H_PREFIX ".get.acct.c-%zu", i);
		assert_text(json_array_get(json_object_get(again.json, "events"), 0),
			    "event_id", ids[i].bytes, ids[i].len);
		h_reply_free(&again);
		h_reply_free(&r);
		free(body);
	}
}

/* The client library builds such events from lengths and hands them back
 * with lengths; the CLI prints them. */
Test(strings, the_client_library_and_the_cli)
{
	static const char eid[] = "lib\0id";
	cim_new_event ne = {.event_type = "Lib", .data_json = DATA,
			    .metadata_json = META, .event_id = eid,
			    .event_id_len = sizeof eid - 1,
			    .correlation_id = "", .causation_id = "k\0", .causation_id_len = 2};
	cim_append_result *res = NULL;
	cim_event_page *page = NULL;
	cim_error err = {0};

	cr_assert_eq(cim_append(H.client, "lib", "l-1", CIM_EXPECT_NO_STREAM, &ne, 1, &res,
				&err), CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(res->events[0].event_id_len, sizeof eid - 1);
	cr_assert_eq(memcmp(res->events[0].event_id, eid, sizeof eid), 0);
	cr_assert_eq(cim_get(H.client, "lib", "l-1", 1, 0, &page, &err), CIM_ERR_OK, "%s",
		     err.message);
	const cim_event *e = &page->events[0];
	cr_assert_eq(e->event_id_len, sizeof eid - 1);
	cr_assert_eq(memcmp(e->event_id, eid, sizeof eid), 0);
	cr_assert_eq(e->correlation_id_len, 0);
	cr_assert_eq(e->causation_id_len, 2);
	cr_assert_eq(memcmp(e->causation_id, "k\0", 3), 0);
	json_t *d = read_json(e->data_json);
	assert_same(d, DATA, "data_json");
	json_decref(d);
	cim_event_page_destroy(page);

	/* a duplicate names the whole id in cim_error */
	ne.data_json = "2";
	cim_append_result_destroy(res);
	res = NULL;
	cr_assert_eq(cim_append(H.client, "lib", "l-1", CIM_EXPECT_ANY, &ne, 1, &res, &err),
		     CIM_ERR_DUPLICATE_EVENT);
	cr_assert_eq(err.event_id_len, sizeof eid - 1);
	cr_assert_eq(memcmp(err.event_id, eid, sizeof eid), 0);

	/* the CLI, appending and reading */
	const char *cli = getenv("CIM_TEST_CLI");
	const char *argv[] = {cli, "--url", H.nats.url, "append", "lib", "l-2", "--event",
			      "Lib", DATA, "--metadata", META, NULL};
	h_run run = h_finish(h_spawn("cli", argv), "cli", 20000);
	cr_assert_eq(run.status, 0, "%s", run.err);
	h_run_free(&run);
	const char *get[] = {cli, "--url", H.nats.url, "get", "lib", "l-2", NULL};
	run = h_finish(h_spawn("cli", get), "cli", 20000);
	cr_assert_eq(run.status, 0, "%s", run.err);
	cr_assert_not_null(run.json, "%s", run.out);
	assert_same(json_object_get(json_array_get(json_object_get(run.json, "events"), 0),
				    "data"), DATA, "cim-events get");
	cr_assert(strstr(run.out, "\"a\\u0000\"") != NULL, "written as \\u0000: %s", run.out);
	h_run_free(&run);
}
