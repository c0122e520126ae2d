/*
 * test_expected_version.c: the four forms of expected_version (a number,
 * "any", "no_stream", "exists"), each accepted and refused as the contract
 * says, and wrong_expected_version carrying expected and current.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(expected_version, .init = h_setup, .fini = h_teardown,
	  .timeout = 60);

/* Appends one event with expect; returns the code, and fills *version with
 * the aggregate's version after a success and *err after a failure. */
static cim_err try_append(const char *id, int64_t expect, uint64_t *version,
			  cim_error *err)
{
	cim_new_event e = {.event_type = "Happened", .data_json = "{}"};
	cim_append_result *r = NULL;
	cim_err rc;

	memset(err, 0, sizeof(*err));
	rc = cim_append(H.client, "thing", id, expect, &e, 1, &r, err);
	if (rc == CIM_ERR_OK) {
		*version = r->version;
		cim_append_result_destroy(r);
	} else {
		cr_assert_null(r);
	}
	return rc;
}

static void expect_ok(const char *id, int64_t expect, uint64_t want_version)
{
	cim_error err;
	uint64_t v = 0;
	cim_err rc = try_append(id, expect, &v, &err);

	cr_assert_eq(rc, CIM_ERR_OK, "%s with expect %lld: %s: %s", id,
		     (long long)expect, cim_err_name(rc), err.message);
	cr_assert_eq(v, want_version, "%s: version %llu, want %llu", id,
		     (unsigned long long)v, (unsigned long long)want_version);
}

static void expect_conflict(const char *id, int64_t expect,
			    const char *want_expected, uint64_t current)
{
	cim_error err;
	uint64_t v = 0;
	cim_err rc = try_append(id, expect, &v, &err);
	cim_head h;

	cr_assert_eq(rc, CIM_ERR_WRONG_EXPECTED_VERSION,
		     "%s with expect %lld: got %s (%s)", id, (long long)expect,
		     cim_err_name(rc), err.message);
	cr_assert_eq(err.current, current, "%s: current %llu, want %llu", id,
		     (unsigned long long)err.current,
		     (unsigned long long)current);
	if (want_expected != NULL)
		cr_assert_str_eq(err.expected, want_expected);
	cr_assert_neq(err.message[0], '\0', "an error has a message");
	cr_assert_eq(cim_get_head(H.client, "thing", id, &h, &err), CIM_ERR_OK);
	cr_assert_eq(h.version, current, "a refused append stored something");
}

Test(expected_version, on_a_new_aggregate)
{
	expect_conflict("new-1", CIM_EXPECT_EXISTS, "exists", 0);
	expect_conflict("new-1", 1, "1", 0);
	expect_conflict("new-1", 5, "5", 0);
	expect_ok("new-1", CIM_EXPECT_NO_STREAM, 1);
	expect_ok("new-2", 0, 1);
	expect_ok("new-3", CIM_EXPECT_ANY, 1);
}

Test(expected_version, on_an_aggregate_with_events)
{
	expect_ok("t-1", CIM_EXPECT_NO_STREAM, 1);
	expect_conflict("t-1", CIM_EXPECT_NO_STREAM, "no_stream", 1);
	expect_conflict("t-1", 0, NULL, 1);
	expect_ok("t-1", 1, 2);
	expect_conflict("t-1", 1, "1", 2);  /* behind */
	expect_conflict("t-1", 3, "3", 2);  /* ahead */
	expect_ok("t-1", CIM_EXPECT_EXISTS, 3);
	expect_ok("t-1", CIM_EXPECT_ANY, 4);
	expect_ok("t-1", 4, 5);
	expect_conflict("t-1", CIM_EXPECT_NO_STREAM, "no_stream", 5);
}

/* The same forms written by hand, and the error object as sent. */
static void raw_append(h_reply *rep, const char *id, const char *expected)
{
	char *body;

	if (expected != NULL)
		body = h_strf("{\"expected_version\": %s, \"events\": ["
			      "{\"event_type\": \"Happened\", \"data\": null}]}",
			      expected);
	else
		body = h_strf("{\"events\": [{\"event_type\": \"Happened\","
			      " \"data\": null}]}");
	h_requestf(rep, body, H_PREFIX ".append.thing.%s", id);
	cr_assert_eq(rep->s, NATS_OK, "no reply: %s",
		     natsStatus_GetText(rep->s));
	free(body);
}

static void raw_ok(const char *id, const char *expected, json_int_t version)
{
	h_reply rep;

	raw_append(&rep, id, expected);
	cr_assert_eq(rep.status, 200, "expected_version %s: %s",
		     expected ? expected : "(absent)", rep.body);
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "version")),
		     version, "%s", rep.body);
	h_reply_free(&rep);
}

static void raw_conflict(const char *id, const char *expected,
			 json_int_t current)
{
	h_reply rep;
	json_t *e, *exp;

	raw_append(&rep, id, expected);
	cr_assert_eq(rep.status, 409, "expected_version %s: %s", expected,
		     rep.body);
	cr_assert_str_eq(h_error_code(&rep), "wrong_expected_version", "%s",
			 rep.body);
	e = json_object_get(rep.json, "error");
	cr_assert(json_is_string(json_object_get(e, "message")));
	cr_assert(json_is_integer(json_object_get(e, "current")),
		  "current is a number: %s", rep.body);
	cr_assert_eq(json_integer_value(json_object_get(e, "current")), current,
		     "%s", rep.body);
	exp = json_object_get(e, "expected");
	cr_assert_not_null(exp, "expected is given: %s", rep.body);
	/* As sent: the number, or the word. */
	if (expected[0] == '"') {
		char word[32];

		snprintf(word, sizeof(word), "%.*s",
			 (int)strlen(expected) - 2, expected + 1);
		cr_assert_str_eq(json_string_value(exp), word, "%s", rep.body);
	} else if (json_is_integer(exp)) {
		cr_assert_eq(json_integer_value(exp), atoll(expected));
	} else if (strcmp(expected, "0") == 0 &&
		   json_is_string(exp) &&
		   strcmp(json_string_value(exp), "no_stream") == 0) {
		/* 0 means the same as "no_stream" and may be told so. */
	} else {
		cr_assert_str_eq(json_string_value(exp), expected, "%s",
				 rep.body);
	}
	h_reply_free(&rep);
}

Test(expected_version, raw_forms_and_error_details)
{
	raw_conflict("r-1", "\"exists\"", 0);
	raw_conflict("r-1", "2", 0);
	raw_ok("r-1", "\"no_stream\"", 1);
	raw_conflict("r-1", "\"no_stream\"", 1);
	raw_conflict("r-1", "7", 1);
	raw_ok("r-1", "1", 2);
	raw_ok("r-1", "\"exists\"", 3);
	raw_ok("r-1", "\"any\"", 4);
	raw_ok("r-1", NULL, 5); /* absent: "any" */
	raw_conflict("r-1", "4", 5);
	raw_ok("r-2", "0", 1);
	raw_conflict("r-2", "0", 1);
}

Test(expected_version, refusals_leave_the_stream_untouched)
{
	uint64_t msgs;
	h_reply rep;

	raw_ok("u-1", NULL, 1);
	msgs = h_stream_msgs();
	raw_conflict("u-1", "\"no_stream\"", 1);
	raw_conflict("u-1", "9", 1);
	/* A batch against a wrong version: none of it. */
	h_request(&rep, H_PREFIX ".append.thing.u-1",
		  "{\"expected_version\": 3, \"events\": ["
		  "{\"event_type\": \"A\", \"data\": 1},"
		  "{\"event_type\": \"B\", \"data\": 2}]}", -1);
	cr_assert_str_eq(h_error_code(&rep), "wrong_expected_version", "%s",
			 rep.body);
	h_reply_free(&rep);
	cr_assert_eq(h_stream_msgs(), msgs);
}
