/*
 * test_cli_ops.c: the operators' commands of cim-events: stats (info as
 * tables), verify-all (every aggregate, or a pattern's, validated; exit 1
 * once a chain is broken) and export (events as JSON lines, as get gives
 * them), against a real daemon and nats-server.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(cli_ops, .init = h_setup, .fini = h_teardown, .timeout = 120);

static h_run run_cli(const char *first, ...)
{
	const char *argv[40];
	int argc = 0;
	va_list ap;

	argv[argc++] = getenv("CIM_TEST_CLI");
	cr_assert_not_null(argv[0], "CIM_TEST_CLI is not set");
	argv[argc++] = "--url";
	argv[argc++] = H.nats.url;
	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 39; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return h_finish(h_spawn("cliops", argv), "cliops", 60000);
}

#define CLI(...) run_cli(__VA_ARGS__, (const char *)NULL)

/* The line of text that starts with key followed by a space; NULL if none. */
static const char *line_of(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, key, n) == 0 && p[n] == ' ')
			return p;
	return NULL;
}

/* The number after key on its line ("events appended     3"). */
static long long value_of(const char *text, const char *key)
{
	const char *l = line_of(text, key);
	long long v = -1;

	cr_assert_not_null(l, "no line '%s' in:\n%s", key, text);
	cr_assert_eq(sscanf(l + strlen(key), "%lld", &v), 1, "line: %.80s", l);
	return v;
}

static int count_lines(const char *text)
{
	int n = 0;

	for (const char *p = text; *p; p++)
		n += *p == '\n';
	return n;
}

Test(cli_ops, stats_shows_the_counters_as_rows)
{
	h_reply rep;
	h_run r;
	long long req = -1, err = -1;
	double p50 = -1, p99 = -1;
	char op[64];

	free(h_append_n("order", "st-1", 2));
	free(h_append_n("order", "st-2", 1));
	h_requestf(&rep, "{\"expected_version\": 9, \"events\": [{\"event_type\": \"X\", "
		   "\"data\": 1}]}", H_PREFIX ".append.order.st-1");
	cr_assert_str_eq(h_error_code(&rep), "wrong_expected_version");
	h_reply_free(&rep);

	r = CLI("stats");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	/* header, then aligned rows: operation requests errors p50 p99 */
	cr_assert_not_null(line_of(r.out, "operation"), "%s", r.out);
	const char *l = line_of(r.out, "append");
	cr_assert_not_null(l, "%s", r.out);
	cr_assert_eq(sscanf(l, "%63s %lld %lld %lf %lf", op, &req, &err, &p50, &p99), 5,
		     "%.100s", l);
	cr_assert_eq(req, 4, "3 appends + 1 refused:\n%s", r.out);
	cr_assert_eq(err, 1);
	cr_assert_gt(p50, 0.0, "a p50 is shown for a timed operation");
	cr_assert_geq(p99, p50);
	/* the columns line up: the requests column ends where the header's does */
	const char *hdr = line_of(r.out, "operation");
	cr_assert_eq(strstr(hdr, "requests") - hdr + 8, strstr(l, " 4 ") - l + 2, "%s", r.out);
	/* an operation never used shows dashes for its latency */
	cr_assert_not_null(strstr(line_of(r.out, "validate"), " - "), "%s", r.out);
	cr_assert_eq(value_of(r.out, "wrong_expected_version"), 1, "%s", r.out);
	cr_assert_eq(value_of(r.out, "events appended"), 3, "%s", r.out);
	cr_assert_gt(value_of(r.out, "bytes appended"), 0);
	cr_assert_eq(value_of(r.out, "heads in memory"), 2);
	cr_assert_not_null(strstr(r.out, "\nstream " H_STREAM "\n"), "%s", r.out);
	cr_assert_eq(value_of(r.out, "  messages"), 3, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "active"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "writer lease"), "%s", r.out);
	h_run_free(&r);

	r = CLI("stats", "--json");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(r.json, "%s", r.out);
	json_t *c = json_object_get(r.json, "counters");
	cr_assert_eq(json_integer_value(json_object_get(c, "events_appended")), 3);
	json_t *ap = json_object_get(json_object_get(c, "operations"), "append");
	cr_assert_eq(json_integer_value(json_object_get(ap, "requests")), 4);
	cr_assert_eq(json_integer_value(json_object_get(ap, "timed")), 4);
	cr_assert(json_is_number(json_object_get(ap, "p99_us")));
	json_t *st = json_object_get(c, "stream");
	cr_assert_eq(json_integer_value(json_object_get(st, "messages")), 3);
	cr_assert_eq(json_integer_value(json_object_get(st, "last_seq")), 3);
	cr_assert(json_is_null(json_object_get(st, "cluster")));
	h_run_free(&r);

	r = CLI("stats", "extra");
	cr_assert_eq(r.status, 2, "%s", r.err);
	h_run_free(&r);
}

Test(cli_ops, verify_all_passes_then_finds_a_broken_chain)
{
	h_run r;

	free(h_append_n("acct", "va-1", 3));
	free(h_append_n("acct", "va-2", 3));
	free(h_append_n("acct", "vb-1", 2));
	free(h_append_n("order", "va-1", 1));

	r = CLI("verify-all");
	cr_assert_eq(r.status, 0, "exit %d: %s %s", r.status, r.out, r.err);
	cr_assert_not_null(strstr(r.out, "checked 4 aggregate(s): 4 valid, 0 broken, 0 error(s)"),
			   "%s", r.out);
	h_run_free(&r);

	/* bytes that are no event block, stored as version 4 of acct va-2
	 * straight through JetStream, past the daemon */
	h_stream_publish("events.acct.va-2.Counted", "junk", 4);

	r = CLI("verify-all");
	cr_assert_eq(r.status, 1, "a broken chain: exit 1, not %d: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.out, "broken acct va-2: version 4: "), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "checked 4 aggregate(s): 3 valid, 1 broken, 0 error(s)"),
			   "%s", r.out);
	h_run_free(&r);

	/* patterns: one type, a glob on ids, one aggregate */
	r = CLI("verify-all", "acct.va-1");
	cr_assert_eq(r.status, 0, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "checked 1 aggregate(s): 1 valid"), "%s", r.out);
	h_run_free(&r);
	r = CLI("verify-all", "acct.va-*");
	cr_assert_eq(r.status, 1, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "checked 2 aggregate(s): 1 valid, 1 broken"), "%s", r.out);
	h_run_free(&r);
	r = CLI("verify-all", "*.va-?");
	cr_assert_eq(r.status, 1, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "checked 3 aggregate(s): 2 valid, 1 broken"), "%s", r.out);
	h_run_free(&r);
	r = CLI("verify-all", "order");
	cr_assert_eq(r.status, 0, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "checked 1 aggregate(s): 1 valid"), "%s", r.out);
	h_run_free(&r);
	r = CLI("verify-all", "nosuch");
	cr_assert_eq(r.status, 0, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "checked 0 aggregate(s)"), "%s", r.out);
	h_run_free(&r);

	r = CLI("verify-all", "--json");
	cr_assert_eq(r.status, 1);
	cr_assert_not_null(r.json, "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "aggregates")), 4);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "valid")), 3);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "broken")), 1);
	json_t *f = json_array_get(json_object_get(r.json, "failures"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(f, "aggregate_id")), "va-2");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(f, "failure"),
							"version")), 4);
	h_run_free(&r);

	/* no progress bar when stderr is no terminal */
	r = CLI("verify-all", "order");
	cr_assert_null(strchr(r.err, '\r'), "%s", r.err);
	h_run_free(&r);
}

Test(cli_ops, verify_all_bad_input)
{
	h_run r = CLI("verify-all", "acct.a b");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "PATTERN must be"), "%s", r.err);
	h_run_free(&r);
	r = CLI("verify-all", "1acct");
	cr_assert_eq(r.status, 2, "%s", r.err);
	h_run_free(&r);
	r = CLI("verify-all", "--stream", "NO-SUCH-STREAM");
	cr_assert_eq(r.status, 3, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "no stream NO-SUCH-STREAM"), "%s", r.err);
	h_run_free(&r);
}

/* One exported line: a JSON event. */
static json_t *parse_line(const char *line)
{
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);

	cr_assert_not_null(j, "not JSON: %s (%s)", line, jerr.text);
	cr_assert(json_is_object(j));
	return j;
}

Test(cli_ops, export_gives_get_s_events_as_json_lines)
{
	cim_event_page *page = NULL;
	cim_error err = {0};
	h_run r;
	char *save = NULL;
	int n = 0;

	free(h_append_n("ex", "a-1", 3));
	free(h_append_n("ex", "a-2", 2));
	free(h_append_n("ex", "b-10", 1));
	free(h_append_n("other", "a-1", 1));

	r = CLI("export", "ex", "a-1");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	cr_assert_eq(count_lines(r.out), 3, "%s", r.out);
	cr_assert_eq(cim_get(H.client, "ex", "a-1", 1, 0, &page, &err), CIM_ERR_OK, "%s",
		     err.message);
	cr_assert_eq(page->n_events, 3);
	for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *j = parse_line(line);
		const cim_event *ev = &page->events[n];

		cr_assert_eq(json_integer_value(json_object_get(j, "version")), n + 1);
		cr_assert_str_eq(json_string_value(json_object_get(j, "cid")), ev->cid);
		cr_assert_eq((uint64_t)json_integer_value(json_object_get(j, "seq")), ev->seq);
		if (n == 0)
			cr_assert(json_is_null(json_object_get(j, "prev")));
		else
			cr_assert_str_eq(json_string_value(json_object_get(j, "prev")),
					 page->events[n - 1].cid);
		cr_assert_str_eq(json_string_value(json_object_get(j, "aggregate_id")), "a-1");
		cr_assert(json_is_object(json_object_get(j, "data")));
		json_decref(j);
		n++;
	}
	cr_assert_eq(n, 3);
	cim_event_page_destroy(page);
	h_run_free(&r);

	/* a pattern: every ex aggregate, sorted by id then version */
	r = CLI("export", "ex.*");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), 6, "%s", r.out);
	{
		static const char *ids[] = {"a-1", "a-1", "a-1", "a-2", "a-2", "b-10"};
		n = 0;
		save = NULL;
		for (char *line = strtok_r(r.out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save), n++) {
			json_t *j = parse_line(line);
			cr_assert_str_eq(json_string_value(json_object_get(j, "aggregate_type")), "ex");
			cr_assert_str_eq(json_string_value(json_object_get(j, "aggregate_id")), ids[n]);
			json_decref(j);
		}
	}
	h_run_free(&r);

	r = CLI("export", "ex.a-*");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), 5, "%s", r.out);
	h_run_free(&r);
	r = CLI("export", "*.a-1");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), 4, "%s", r.out);
	h_run_free(&r);
	r = CLI("export");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), 7, "%s", r.out);
	h_run_free(&r);
	/* an aggregate with no events: nothing, and no error */
	r = CLI("export", "ex", "none");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), 0, "%s", r.out);
	h_run_free(&r);
	r = CLI("export", "ex", "a b");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "ID must match"), "%s", r.err);
	h_run_free(&r);
}

/* More events than one get page: export follows next_from_version. */
Test(cli_ops, export_pages_through_get)
{
	cim_new_event evs[250];
	cim_append_result *res = NULL;
	cim_error err = {0};
	h_run r;

	for (int i = 0; i < 250; i++)
		evs[i] = (cim_new_event){.event_type = "Bulk", .data_json = "{\"x\": 1}"};
	cr_assert_eq(cim_append(H.client, "bulk", "p-1", CIM_EXPECT_NO_STREAM, evs, 250, &res,
				&err), CIM_ERR_OK, "%s", err.message);
	cim_append_result_destroy(res);
	/* pages of 100 events: a daemon started again with get_limit 100 */
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	setenv("CIM_EVENTS_GET_LIMIT", "100", 1);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	h_reply rep;
	h_requestf(&rep, "{}", H_PREFIX ".get.bulk.p-1");
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 100, "%s", rep.body);
	h_reply_free(&rep);
	r = CLI("export", "bulk", "p-1");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(count_lines(r.out), 250);
	{
		char *save = NULL;
		int v = 0;
		for (char *line = strtok_r(r.out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			json_t *j = parse_line(line);
			cr_assert_eq(json_integer_value(json_object_get(j, "version")), ++v);
			json_decref(j);
		}
	}
	h_run_free(&r);
}
