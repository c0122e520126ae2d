/*
 * test_cli.c: the cim-events tool ($CIM_TEST_CLI) against a running daemon:
 * JSON on stdout and exit 0 for what works, a message on stderr and a
 * non-zero exit for what does not. Also --help and --version of both
 * binaries.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(cli, .init = h_setup, .fini = h_teardown, .timeout = 90);

/* Runs the binary bin with the NULL-ended arguments, stdout and stderr to
 * files, bounded to 20 s. */
static h_run run_bin(const char *bin, const char *first, ...)
{
	const char *argv[40];
	int argc = 0;
	va_list ap;

	cr_assert_not_null(bin, "binary not set (CIM_TEST_CLI/CIM_TEST_DAEMON)");
	argv[argc++] = bin;
	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 39;
	     a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return h_finish(h_spawn("cli", argv), "cli", 20000);
}

#define CLI(...) run_bin(getenv("CIM_TEST_CLI"), "--url", H.nats.url, \
			 __VA_ARGS__, (const char *)NULL)

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

Test(cli, append_get_head_validate_info)
{
	h_run r;
	char head[CIM_CID_TEXT_MAX];
	json_t *evs;

	r = CLI("append", "order", "cli-1", "--expected", "no_stream",
		"--event", "OrderPlaced", "{\"total\": 5}", "--event-id",
		"cli-e1");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_not_null(r.json, "stdout is JSON: %s", r.out);
	cr_assert_eq(jint(r.json, "version"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(
			 json_object_get(r.json, "events"), 0), "event_id")),
			 "cli-e1");
	h_run_free(&r);

	r = CLI("append", "order", "cli-1", "--expected", "1", "--event", "A",
		"1", "--event", "B", "{\"b\": [true]}", "--metadata",
		"{\"who\": \"cli\"}");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_eq(jint(r.json, "version"), 3, "%s", r.out);
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 2);
	snprintf(head, sizeof(head), "%s",
		 json_string_value(json_object_get(r.json, "head")));
	cr_assert_eq(head[0], 'b', "%s", r.out);
	h_run_free(&r);

	r = CLI("head", "order", "cli-1");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(jint(r.json, "version"), 3, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "head")),
			 head);
	h_run_free(&r);

	r = CLI("get", "order", "cli-1");
	cr_assert_eq(r.status, 0, "%s", r.err);
	evs = json_object_get(r.json, "events");
	cr_assert_eq(json_array_size(evs), 3, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(
			 json_array_get(evs, 2), "cid")), head);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(
			 json_array_get(evs, 2), "metadata"), "who")), "cli");
	h_run_free(&r);

	r = CLI("get", "order", "cli-1", "--from", "2", "--limit", "1");
	cr_assert_eq(r.status, 0, "%s", r.err);
	evs = json_object_get(r.json, "events");
	cr_assert_eq(json_array_size(evs), 1, "%s", r.out);
	cr_assert_eq(jint(json_array_get(evs, 0), "version"), 2);
	cr_assert_eq(jint(r.json, "next_from_version"), 3, "%s", r.out);
	h_run_free(&r);

	r = CLI("get", "order", "cli-1", "--limit", "1", "--all");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 3,
		     "%s", r.out);
	h_run_free(&r);

	r = CLI("validate", "order", "cli-1");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(json_is_true(json_object_get(r.json, "valid")), "%s", r.out);
	cr_assert_eq(jint(r.json, "checked"), 3);
	h_run_free(&r);

	r = CLI("info");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "name")),
			 "cim-eventsd", "%s", r.out);
	h_run_free(&r);
}

Test(cli, wrong_expected_version_fails_with_a_message)
{
	h_run r;
	uint64_t msgs;

	free(h_append_n("order", "cli-2", 2));
	msgs = h_stream_msgs();
	r = CLI("append", "order", "cli-2", "--expected", "7", "--event", "A",
		"{}");
	cr_assert_neq(r.status, 0, "a conflict must not exit 0");
	cr_assert_eq(r.status, 3, "daemon errors exit 3 (got %d)", r.status);
	cr_assert_not_null(strstr(r.err, "wrong_expected_version"),
			   "stderr: %s", r.err);
	cr_assert_eq(h_stream_msgs(), msgs);
	h_run_free(&r);

	r = CLI("append", "order", "cli-2", "--expected", "no_stream",
		"--event", "A", "{}");
	cr_assert_eq(r.status, 3, "stderr: %s", r.err);
	cr_assert_neq(strlen(r.err), 0);
	h_run_free(&r);
}

Test(cli, validate_of_a_broken_chain_exits_1)
{
	h_run r;

	free(h_append_n("order", "cli-3", 2));
	h_stream_publish("events.order.cli-3.Junk", "junk", 4);
	r = CLI("validate", "order", "cli-3");
	cr_assert_eq(r.status, 1, "exit %d: %s %s", r.status, r.out, r.err);
	cr_assert(json_is_false(json_object_get(r.json, "valid")), "%s",
		  r.out);
	h_run_free(&r);
}

Test(cli, bad_usage_and_unreachable_server)
{
	h_run r;

	r = CLI("append", "order");
	cr_assert_eq(r.status, 2, "usage error: exit %d", r.status);
	cr_assert_neq(strlen(r.err), 0);
	h_run_free(&r);

	r = CLI("append", "order", "cli-4", "--event", "A", "not json");
	cr_assert_neq(r.status, 0);
	cr_assert_neq(strlen(r.err), 0);
	h_run_free(&r);

	r = run_bin(getenv("CIM_TEST_CLI"), "--url", "nats://127.0.0.1:1",
		    "--timeout", "1000", "head", "order", "x", (char *)NULL);
	cr_assert_eq(r.status, 4, "unreachable: exit %d, stderr %s", r.status,
		     r.err);
	cr_assert_neq(strlen(r.err), 0);
	h_run_free(&r);
}

Test(cli, help_and_version_of_both_binaries)
{
	const char *bins[] = {getenv("CIM_TEST_CLI"), getenv("CIM_TEST_DAEMON")};
	h_reply rep;
	const char *version;

	h_request(&rep, H_PREFIX ".info", "{}", -1);
	version = json_string_value(json_object_get(rep.json, "version"));
	cr_assert_not_null(version, "%s", rep.body);
	for (int i = 0; i < 2; i++) {
		h_run r = run_bin(bins[i], "--help", (char *)NULL);

		cr_assert_eq(r.status, 0, "%s --help: exit %d", bins[i],
			     r.status);
		cr_assert_not_null(strstr(r.out, "usage"), "%s --help: %s",
				   bins[i], r.out);
		h_run_free(&r);
		r = run_bin(bins[i], "--version", (char *)NULL);
		cr_assert_eq(r.status, 0, "%s --version: exit %d", bins[i],
			     r.status);
		cr_assert_not_null(strstr(r.out, version),
				   "%s --version says %s, info says %s",
				   bins[i], r.out, version);
		h_run_free(&r);
	}
	h_reply_free(&rep);
}

Test(cli, numbers_are_printed_as_the_daemon_sent_them)
{
	h_run r;
	cim_append_result *a = h_append1("order", "cli-f", 0, "Priced",
					 "{\"x\": 0.1, \"y\": 2.0, \"z\": 1e300, "
					 "\"i\": -9223372036854775808}");

	cim_append_result_destroy(a);
	r = CLI("get", "order", "cli-f");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.out, "\"data\":{\"i\":-9223372036854775808,"
				  "\"x\":0.1,\"y\":2.0,\"z\":1e+300}"), "%s", r.out);
	h_run_free(&r);
}

/* The JetStream settings reach what reads the stream itself: the default
 * works, an explicit $JS.API prefix too, and a domain nobody serves is
 * where tail and verify-all go, and fail (nothing answers there). */
Test(cli, the_jetstream_domain_and_prefix_are_used)
{
	h_run r;

	cim_append_result_destroy(h_append1("order", "js-1", CIM_EXPECT_ANY, "Placed", "{}"));
	r = CLI("--js-api-prefix", "$JS.API", "tail", "events.>", "--from-seq", "1", "--count",
		"1");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"aggregate_id\":\"js-1\"") != NULL, "%s", r.out);
	h_run_free(&r);
	r = CLI("--timeout", "1000", "--js-domain", "nowhere", "tail", "events.>", "--from-seq",
		"1", "--count", "1");
	cr_assert_neq(r.status, 0, "a domain nobody serves: %s", r.out);
	h_run_free(&r);
	r = CLI("--timeout", "1000", "--js-domain", "nowhere", "verify-all");
	cr_assert_neq(r.status, 0, "a domain nobody serves: %s", r.out);
	h_run_free(&r);
	r = CLI("--js-domain", "d", "--js-api-prefix", "$JS.x.API", "info");
	cr_assert_eq(r.status, 2, "both: %s", r.err);
	cr_assert(strstr(r.err, "js_domain or js_api_prefix, not both") != NULL, "%s", r.err);
	h_run_free(&r);
}
