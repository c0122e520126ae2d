/*
 * test_malformed.c: requests that are wrong in every way we could think of,
 * sent raw with nats.c. Each must be answered (never a timeout) with
 * {"error": {"code", "message", ...}}, the right code, the matching
 * Cim-Status number and, for invalid_argument, the field named; none may
 * store anything, and the daemon must serve normally afterwards.
 *
 * Every case is checked with cr_expect, so one run lists all that differ.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(malformed, .init = h_setup, .fini = h_teardown, .timeout = 120);

#define P H_PREFIX "."
#define EV "{\"event_type\": \"Ok\", \"data\": {}}"

struct bad {
	const char *subject;
	const char *body;
	const char *code;   /* the code the contract asks for */
	const char *field;  /* a part of error.field, NULL: not checked */
};

static int status_of(const char *code)
{
	if (strcmp(code, "invalid_request") == 0 ||
	    strcmp(code, "invalid_argument") == 0)
		return 400;
	if (strcmp(code, "payload_too_large") == 0)
		return 413;
	if (strcmp(code, "wrong_expected_version") == 0 ||
	    strcmp(code, "duplicate_event") == 0)
		return 409;
	if (strcmp(code, "not_found") == 0)
		return 404;
	return 500;
}

static const struct bad cases[] = {
	/* not JSON, or not an object */
	{P "append.order.m-1", "{\"events\": [", "invalid_request", NULL},
	{P "append.order.m-1", "not json at all", "invalid_request", NULL},
	{P "append.order.m-1", "[]", "invalid_request", NULL},
	{P "append.order.m-1", "[" EV "]", "invalid_request", NULL},
	{P "append.order.m-1", "\"events\"", "invalid_request", NULL},
	{P "append.order.m-1", "42", "invalid_request", NULL},
	{P "append.order.m-1", "null", "invalid_request", NULL},
	{P "append.order.m-1", "{\"events\": [" EV "]} trailing",
	 "invalid_request", NULL},
	/* wrong shapes */
	{P "append.order.m-1", "{}", "invalid_request", NULL},
	{P "append.order.m-1", "{\"events\": \"x\"}", "invalid_request", NULL},
	{P "append.order.m-1", "{\"events\": {\"a\": 1}}", "invalid_request",
	 NULL},
	{P "append.order.m-1", "{\"events\": [42]}", "invalid_request", NULL},
	{P "append.order.m-1", "{\"events\": [{\"data\": 1}]}",
	 "invalid_request", NULL},
	{P "append.order.m-1", "{\"events\": [{\"event_type\": \"Ok\"}]}",
	 "invalid_request", NULL},
	/* unknown fields */
	{P "append.order.m-1", "{\"events\": [" EV "], \"bogus\": 1}",
	 "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\", \"data\": 1,"
	 " \"colour\": \"red\"}]}", "invalid_request", NULL},
	{P "get.order.m-1", "{\"from\": 1}", "invalid_request", NULL},
	{P "head.order.m-1", "{\"x\": 1}", "invalid_request", NULL},
	{P "validate.order.m-1", "{\"deep\": true}", "invalid_request", NULL},
	/* duplicate keys */
	{P "append.order.m-1", "{\"events\": [" EV "], \"events\": [" EV "]}",
	 "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\","
	 " \"data\": {\"a\": 1, \"a\": 2}}]}", "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\", \"event_type\": \"Ok\","
	 " \"data\": 1}]}", "invalid_request", NULL},
	/* text that is not UTF-8, or holds lone surrogates */
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\", \"data\": \"\xff\xfe\"}]}",
	 "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\","
	 " \"data\": {\"k\xc3\": 1}}]}", "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\", \"data\": \"\xc0\xaf\"}]}",
	 "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\","
	 " \"data\": \"\xed\xa0\x80\"}]}", "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\", \"data\": \"\\ud800\"}]}",
	 "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\","
	 " \"data\": \"x\\udc00y\"}]}", "invalid_request", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\", \"data\": 1,"
	 " \"metadata\": {\"k\": \"\\ud83d\"}}]}", "invalid_request", NULL},
	/* integers outside 64-bit signed range */
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\","
	 " \"data\": 99999999999999999999}]}", "invalid_argument", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\","
	 " \"data\": {\"n\": 9223372036854775808}}]}", "invalid_argument", NULL},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\","
	 " \"data\": [-9223372036854775809]}]}", "invalid_argument", NULL},
	{P "append.order.m-1",
	 "{\"expected_version\": 99999999999999999999, \"events\": [" EV "]}",
	 "invalid_argument", NULL},
	/* tokens in the subject */
	{P "append.9order.m-1", "{\"events\": [" EV "]}", "invalid_argument",
	 "aggregate_type"},
	{P "append.or!der.m-1", "{\"events\": [" EV "]}", "invalid_argument",
	 "aggregate_type"},
	{P "append.TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"
	 ".m-1", "{\"events\": [" EV "]}", "invalid_argument",
	 "aggregate_type"},
	{P "append.order.m#1", "{\"events\": [" EV "]}", "invalid_argument",
	 "aggregate_id"},
	{P "append.order."
	 "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii"
	 "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
	 "{\"events\": [" EV "]}", "invalid_argument", "aggregate_id"},
	{P "get.or$der.m-1", "{}", "invalid_argument", "aggregate_type"},
	{P "head.order.m!1", "{}", "invalid_argument", "aggregate_id"},
	{P "validate._x.m-1", "{}", "invalid_argument", "aggregate_type"},
	{P "by_type.9Bad", "{}", "invalid_argument", "event_type"},
	/* field values */
	{P "append.order.m-1", "{\"events\": []}", "invalid_argument",
	 "events"},
	{P "append.order.m-1",
	 "{\"expected_version\": \"maybe\", \"events\": [" EV "]}",
	 "invalid_argument", "expected_version"},
	{P "append.order.m-1",
	 "{\"expected_version\": \"ANY\", \"events\": [" EV "]}",
	 "invalid_argument", "expected_version"},
	{P "append.order.m-1",
	 "{\"expected_version\": -1, \"events\": [" EV "]}",
	 "invalid_argument", "expected_version"},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"1Bad\", \"data\": 1}]}",
	 "invalid_argument", "event_type"},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"\", \"data\": 1}]}",
	 "invalid_argument", "event_type"},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Has Space\", \"data\": 1}]}",
	 "invalid_argument", "event_type"},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": "
	 "\"EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE\","
	 " \"data\": 1}]}", "invalid_argument", "event_type"},
	{P "append.order.m-1",
	 "{\"events\": [" EV ", {\"event_type\": \"a.b\", \"data\": 1}]}",
	 "invalid_argument", "event_type"},
	{P "append.order.m-1",
	 "{\"events\": [{\"event_type\": \"Ok\", \"data\": 1,"
	 " \"causation_id\": \"" "0123456789012345678901234567890123456789"
	 "0123456789012345678901234567890123456789"
	 "0123456789012345678901234567890123456789" "012345678\"}]}",
	 "invalid_argument", "causation_id"},
	{P "get.order.m-1", "{\"limit\": -1}", "invalid_argument", "limit"},
	{P "get.order.m-1", "{\"limit\": 0}", "invalid_argument", "limit"},
	{P "get.order.m-1", "{\"from_version\": -3}", "invalid_argument",
	 "from_version"},
	{P "by_type.Ok", "{\"after_seq\": -1}", "invalid_argument",
	 "after_seq"},
	/* subjects: unknown operations, tokens missing or extra */
	{P "frobnicate.order.m-1", "{}", "invalid_request", NULL},
	{P "nope", "{}", "invalid_request", NULL},
	{P "append.order", "{\"events\": [" EV "]}", "invalid_request", NULL},
	{P "get", "{}", "invalid_request", NULL},
	{P "head.order", "{}", "invalid_request", NULL},
	{P "append.order.m-1.extra", "{\"events\": [" EV "]}",
	 "invalid_request", NULL},
	{P "validate.order.m-1.x.y", "{}", "invalid_request", NULL},
	{P "info.extra", "{}", "invalid_request", NULL},
	{P "snapshot.frob.order.m-1", "{}", "invalid_request", NULL},
	{P "snapshot.get.order", "{}", "invalid_request", NULL},
	{P "by_type", "{}", "invalid_request", NULL},
	{P "by_type.Ok.extra", "{}", "invalid_request", NULL},
	{P "load.order.m-1.x", "{}", "invalid_request", NULL},
	/* bodies of requests that take none */
	{P "head.order.m-1", "not json", "invalid_request", NULL},
	{P "validate.order.m-1", "[1]", "invalid_request", NULL},
	{P "info", "{\"verbose\": true}", "invalid_request", NULL},
};

/* Sends one case and checks it with cr_expect. Returns whether it held. */
static bool check_case(const char *subject, const char *body, int len,
		       const char *code, const char *field, const char *label)
{
	h_reply rep;
	const char *got, *msg, *gfield;
	bool ok = true;

	h_request(&rep, subject, body, len);
	if (rep.s != NATS_OK) {
		cr_expect_fail("%s: %s: no reply (%s)", label, subject,
			       natsStatus_GetText(rep.s));
		h_reply_free(&rep);
		return false;
	}
	got = h_error_code(&rep);
	msg = h_error_str(&rep, "message");
	gfield = h_error_str(&rep, "field");
	if (got == NULL || strcmp(got, code) != 0) {
		cr_expect_fail("%s: %s: code %s, want %s; reply %.300s", label,
			       subject, got ? got : "(none)", code, rep.body);
		ok = false;
	}
	if (rep.status != status_of(code)) {
		cr_expect_fail("%s: %s: Cim-Status %d, want %d", label,
			       subject, rep.status, status_of(code));
		ok = false;
	}
	if (msg == NULL || msg[0] == '\0') {
		cr_expect_fail("%s: %s: error without a message: %.300s",
			       label, subject, rep.body);
		ok = false;
	}
	if (field != NULL && (gfield == NULL || strstr(gfield, field) == NULL)) {
		cr_expect_fail("%s: %s: field %s, want one naming %s", label,
			       subject, gfield ? gfield : "(none)", field);
		ok = false;
	}
	h_reply_free(&rep);
	return ok;
}

static char *nested(const char *prefix, int depth, const char *suffix)
{
	size_t n = strlen(prefix) + strlen(suffix) + 2 * (size_t)depth + 1;
	char *s = malloc(n), *p;

	cr_assert_not_null(s);
	p = stpcpy(s, prefix);
	memset(p, '[', (size_t)depth);
	p += depth;
	memset(p, ']', (size_t)depth);
	p += depth;
	strcpy(p, suffix);
	return s;
}

Test(malformed, every_bad_request_is_answered_with_its_error)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);
	int failed = 0, sent = 0;
	uint64_t msgs;
	cim_append_result *r;

	/* Something stored first, so reads and snapshots have a target. */
	r = h_append1("order", "m-1", CIM_EXPECT_ANY, "Ok", "{}");
	cim_append_result_destroy(r);
	msgs = h_stream_msgs();

	for (size_t i = 0; i < n; i++) {
		char label[32];

		snprintf(label, sizeof(label), "case %zu", i);
		failed += !check_case(cases[i].subject, cases[i].body, -1,
				      cases[i].code, cases[i].field, label);
		sent++;
	}

	/* Bodies built here: deep nesting, a NUL byte inside the text. */
	{
		char *b = nested("{\"events\": [{\"event_type\": \"Ok\", "
				 "\"data\": ", 10000, "}]}");

		failed += !check_case(P "append.order.m-1", b, -1,
				      "invalid_request", NULL,
				      "data nested 10000 deep");
		free(b);
		b = nested("{\"events\": [{\"event_type\": \"Ok\", "
			   "\"data\": ", 1000, "}]}");
		failed += !check_case(P "append.order.m-1", b, -1,
				      "invalid_request", NULL,
				      "data nested 1000 deep");
		free(b);
		b = nested("{\"version\": 1, \"state\": ", 1000, "}");
		failed += !check_case(P "snapshot.save.order.m-1", b, -1,
				      "invalid_request", NULL,
				      "state nested 1000 deep");
		free(b);
		sent += 3;
	}
	{
		static const char body[] = "{\"events\": [{\"event_type\": "
			"\"Ok\", \"data\": \"a\0b\"}]}";

		failed += !check_case(P "append.order.m-1", body,
				      (int)sizeof(body) - 1, "invalid_request",
				      NULL, "raw NUL byte in a string");
		sent++;
	}
	cr_assert_geq(sent, 40);
	cr_expect_eq(failed, 0, "%d of %d bad requests were answered wrong",
		     failed, sent);

	/* Nothing stored by any of them, and the daemon still works. */
	cr_assert_eq(h_stream_msgs(), msgs, "a bad request stored something");
	r = h_append1("order", "m-1", 1, "Ok", "{\"after\": true}");
	cr_assert_eq(r->version, 2);
	cim_append_result_destroy(r);
}

/* The contract's table puts "wrong types" under invalid_request and "a bad
 * token or field value" under invalid_argument: a JSON value of the wrong
 * type for its field is the first. */
Test(malformed, a_field_of_the_wrong_json_type_is_invalid_request)
{
	static const struct bad typed[] = {
		{P "append.order.m-2",
		 "{\"expected_version\": true, \"events\": [" EV "]}",
		 "invalid_request", NULL},
		{P "append.order.m-2",
		 "{\"expected_version\": [1], \"events\": [" EV "]}",
		 "invalid_request", NULL},
		{P "append.order.m-2",
		 "{\"events\": [{\"event_type\": 42, \"data\": 1}]}",
		 "invalid_request", NULL},
		{P "append.order.m-2",
		 "{\"events\": [{\"event_type\": \"Ok\", \"data\": 1,"
		 " \"correlation_id\": 5}]}", "invalid_request", NULL},
		{P "append.order.m-2",
		 "{\"events\": [{\"event_type\": \"Ok\", \"data\": 1,"
		 " \"metadata\": [\"a\"]}]}", "invalid_request", NULL},
		{P "get.order.m-2", "{\"limit\": \"10\"}", "invalid_request",
		 NULL},
		{P "get.order.m-2", "{\"from_version\": null}",
		 "invalid_request", NULL},
	};
	int failed = 0;

	for (size_t i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
		char label[32];

		snprintf(label, sizeof(label), "typed case %zu", i);
		failed += !check_case(typed[i].subject, typed[i].body, -1,
				      typed[i].code, typed[i].field, label);
	}
	cr_expect_eq(failed, 0);
}

/* Values the contract leaves between "wrong type" and "bad value": either
 * 400 code will do, but it is a 400 and nothing is stored. */
Test(malformed, metadata_with_a_non_string_value_is_refused)
{
	static const char *bodies[] = {
		"{\"events\": [{\"event_type\": \"Ok\", \"data\": 1,"
		" \"metadata\": {\"k\": 1}}]}",
		"{\"events\": [{\"event_type\": \"Ok\", \"data\": 1,"
		" \"metadata\": {\"k\": {\"nested\": \"x\"}}}]}",
		"{\"events\": [{\"event_type\": \"Ok\", \"data\": 1,"
		" \"metadata\": {\"k\": null}}]}",
	};
	uint64_t msgs = h_stream_msgs();

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		h_reply rep;
		const char *code;

		h_request(&rep, P "append.order.m-3", bodies[i], -1);
		cr_assert_eq(rep.s, NATS_OK, "no reply");
		code = h_error_code(&rep);
		cr_assert_not_null(code, "accepted: %s", rep.body);
		cr_assert(strcmp(code, "invalid_argument") == 0 ||
			  strcmp(code, "invalid_request") == 0, "%s", code);
		cr_assert_eq(rep.status, 400);
		h_reply_free(&rep);
	}
	cr_assert_eq(h_stream_msgs(), msgs);
}

/* Over the per-append event limit: payload_too_large, 413. */
Test(malformed, too_many_events_in_one_append_is_payload_too_large)
{
	enum { N = 20000 };
	size_t cap = (size_t)N * sizeof(EV ",") + 32, k;
	char *body = malloc(cap);
	h_reply rep;

	cr_assert_not_null(body);
	k = (size_t)snprintf(body, cap, "{\"events\": [");
	for (int i = 0; i < N; i++)
		k += (size_t)snprintf(body + k, cap - k, "%s" EV,
				      i ? "," : "");
	snprintf(body + k, cap - k, "]}");
	h_request(&rep, P "append.order.m-4", body, -1);
	cr_assert_eq(rep.s, NATS_OK, "no reply: %s",
		     natsStatus_GetText(rep.s));
	cr_assert_str_eq(h_error_code(&rep), "payload_too_large", "%.300s",
			 rep.body);
	cr_assert_eq(rep.status, 413);
	h_reply_free(&rep);
	free(body);
}

/* One event over the per-event size limit (default 256 KiB). */
Test(malformed, an_event_over_the_size_limit_is_payload_too_large)
{
	enum { SIZE = 600 * 1024 };
	char *body = malloc(SIZE + 128);
	uint64_t msgs;
	size_t k;
	h_reply rep;

	cr_assert_not_null(body);
	cim_append_result_destroy(h_append1("order", "m-5", CIM_EXPECT_ANY,
					    "Ok", "{}"));
	msgs = h_stream_msgs();
	k = (size_t)sprintf(body, "{\"events\": [{\"event_type\": \"Ok\", "
			    "\"data\": \"");
	memset(body + k, 'y', SIZE);
	strcpy(body + k + SIZE, "\"}]}");
	h_request(&rep, P "append.order.m-5", body, -1);
	cr_assert_eq(rep.s, NATS_OK, "no reply: %s",
		     natsStatus_GetText(rep.s));
	cr_assert_str_eq(h_error_code(&rep), "payload_too_large", "%.300s",
			 rep.body);
	cr_assert_eq(rep.status, 413);
	h_reply_free(&rep);
	cr_assert_eq(h_stream_msgs(), msgs);
	free(body);
}
