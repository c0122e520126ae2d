/*
 * test_cli_reads.c: the cim-events commands beyond one request about one
 * aggregate: snapshot save/get, load, by-type (one page and --all) and
 * tail (live from now, from a sequence or a time, stopped by --count or a
 * signal, a failed check reported and survived), plus their usage errors.
 * $CIM_TEST_CLI against the test's own nats-server and daemon.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(cli_reads, .init = h_setup, .fini = h_teardown, .timeout = 90);

/* ---- running the tool ------------------------------------------------------ */

static h_run run_tool(const char *const *argv)
{
	return h_finish(h_spawn("cli", argv), "cli", 20000);
}

#define ARGV(...)                                                              \
	((const char *const[]){getenv("CIM_TEST_CLI"), "--url", H.nats.url,    \
			       __VA_ARGS__, (const char *)NULL})
#define CLI(...) run_tool(ARGV(__VA_ARGS__))

static json_int_t jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The lines of text, each parsed as one JSON object (asserted). */
static size_t json_lines(const char *text, json_t **lines, size_t max)
{
	size_t n = 0;

	for (const char *p = text; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		json_error_t jerr;

		cr_assert_lt(n, max, "more lines than expected: %s", text);
		lines[n] = json_loadb(p, len, 0, &jerr);
		cr_assert_not_null(lines[n], "line %zu is not JSON (%s): %.*s",
				   n + 1, jerr.text, (int)len, p);
		cr_assert(json_is_object(lines[n]));
		n++;
		p += len + (nl ? 1 : 0);
	}
	return n;
}

/* Waits until the stream has at least n consumers: a tail has opened its
 * subscription. A library that reads without a consumer never gets there,
 * so after the bound the caller goes on anyway; the settle time covers the
 * last step of opening. */
static void wait_subscribed(int n)
{
	int64_t end = h_now_ms() + 3000;

	while (h_now_ms() < end) {
		jsStreamInfo *si = NULL;
		bool there = false;

		if (js_GetStreamInfo(&si, H.js, H_STREAM, NULL, NULL) ==
		    NATS_OK) {
			there = si->State.Consumers >= n;
			jsStreamInfo_Destroy(si);
		}
		if (there)
			break;
		h_sleep_ms(20);
	}
	h_sleep_ms(300);
}

/* ---- snapshot ------------------------------------------------------------ */

Test(cli_reads, snapshot_save_get_round_trip_and_not_found)
{
	cim_event_page *page = NULL;
	cim_error err;
	h_run r;
	json_t *state;

	free(h_append_n("order", "snap-1", 3));
	cr_assert_eq(cim_get(H.client, "order", "snap-1", 1, 0, &page, &err),
		     CIM_ERR_OK, "%s", err.message);

	r = CLI("snapshot", "save", "order", "snap-1", "2",
		"{\"lines\": [1, 2], \"total\": 2.5, \"who\": \"ann\"}");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_not_null(r.json, "stdout is JSON: %s", r.out);
	cr_assert_eq(jint(r.json, "version"), 2, "%s", r.out);
	cr_assert_eq(jstr(r.json, "snapshot_cid")[0], 'b', "%s", r.out);
	cr_assert_str_eq(jstr(r.json, "event_cid"), page->events[1].cid);
	h_run_free(&r);

	r = CLI("snapshot", "get", "order", "snap-1");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_eq(jint(r.json, "version"), 2, "%s", r.out);
	cr_assert_str_eq(jstr(r.json, "event_cid"), page->events[1].cid);
	state = json_object_get(r.json, "state");
	cr_assert(json_is_object(state), "state is a JSON value: %s", r.out);
	cr_assert_str_eq(jstr(state, "who"), "ann");
	cr_assert_eq(json_real_value(json_object_get(state, "total")), 2.5);
	cr_assert_eq(json_array_size(json_object_get(state, "lines")), 2);
	h_run_free(&r);

	/* A lower version leaves the stored one in place, and says so. */
	r = CLI("snapshot", "save", "order", "snap-1", "1", "{}");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_eq(jint(r.json, "version"), 2, "%s", r.out);
	h_run_free(&r);

	/* A version that is not stored is the daemon's invalid_argument. */
	r = CLI("snapshot", "save", "order", "snap-1", "9", "{}");
	cr_assert_eq(r.status, 3, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "cim-events: invalid_argument: "),
			   "%s", r.err);
	h_run_free(&r);

	r = CLI("snapshot", "get", "order", "snap-none");
	cr_assert_eq(r.status, 3, "not_found exits 3, got %d", r.status);
	cr_assert_not_null(strstr(r.err, "cim-events: not_found: "), "%s",
			   r.err);
	cr_assert_str_eq(r.out, "", "nothing on stdout: %s", r.out);
	h_run_free(&r);
	cim_event_page_destroy(page);
}

/* ---- load ---------------------------------------------------------------- */

Test(cli_reads, load_gives_the_snapshot_and_the_events_after_it)
{
	json_t *evs;
	h_run r;

	free(h_append_n("order", "load-1", 5));
	r = CLI("load", "order", "load-1");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert(json_is_null(json_object_get(r.json, "snapshot")), "%s",
		  r.out);
	cr_assert_eq(jint(r.json, "version"), 5, "%s", r.out);
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 5);
	h_run_free(&r);

	r = CLI("snapshot", "save", "order", "load-1", "3", "{\"n\": 3}");
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	h_run_free(&r);

	r = CLI("load", "order", "load-1");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_eq(jint(json_object_get(r.json, "snapshot"), "version"), 3,
		     "%s", r.out);
	cr_assert_eq(jint(json_object_get(json_object_get(r.json, "snapshot"),
					  "state"),
			  "n"),
		     3);
	cr_assert_eq(jint(r.json, "version"), 5);
	evs = json_object_get(r.json, "events");
	cr_assert_eq(json_array_size(evs), 2, "%s", r.out);
	cr_assert_eq(jint(json_array_get(evs, 0), "version"), 4);
	cr_assert_eq(jint(json_array_get(evs, 1), "version"), 5);
	/* Events with every field, data as a JSON value. */
	cr_assert_eq(jint(json_object_get(json_array_get(evs, 1), "data"), "i"),
		     5, "%s", r.out);
	cr_assert_not_null(jstr(json_array_get(evs, 1), "prev"));
	h_run_free(&r);

	r = CLI("load", "order", "load-nobody");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_eq(jint(r.json, "version"), 0, "%s", r.out);
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 0);
	h_run_free(&r);
}

/* ---- by-type ------------------------------------------------------------- */

Test(cli_reads, by_type_pages_and_all)
{
	uint64_t seqs[5];
	char num[24];
	json_t *evs;
	h_run r;

	for (int i = 0; i < 5; i++) {
		char id[32], data[32];
		cim_append_result *a;

		snprintf(id, sizeof(id), "bt-%d", i % 2);
		snprintf(data, sizeof(data), "{\"k\": %d}", i);
		a = h_append1("order", id, CIM_EXPECT_ANY, "ItemPicked", data);
		seqs[i] = a->events[0].seq;
		cim_append_result_destroy(a);
		cim_append_result_destroy(h_append1("order", id, CIM_EXPECT_ANY,
						    "Other", "{}"));
	}

	r = CLI("by-type", "ItemPicked", "--limit", "2");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	evs = json_object_get(r.json, "events");
	cr_assert_eq(json_array_size(evs), 2, "%s", r.out);
	cr_assert_eq((uint64_t)jint(json_array_get(evs, 0), "seq"), seqs[0]);
	cr_assert_eq((uint64_t)jint(r.json, "next_after_seq"), seqs[1], "%s",
		     r.out);
	h_run_free(&r);

	r = CLI("by-type", "ItemPicked", "--limit", "2", "--all");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	evs = json_object_get(r.json, "events");
	cr_assert_eq(json_array_size(evs), 5, "%s", r.out);
	for (size_t i = 0; i < 5; i++) {
		json_t *ev = json_array_get(evs, i);

		cr_assert_eq((uint64_t)jint(ev, "seq"), seqs[i]);
		cr_assert_str_eq(jstr(ev, "event_type"), "ItemPicked");
		cr_assert_eq(jint(json_object_get(ev, "data"), "k"),
			     (json_int_t)i);
	}
	cr_assert(json_is_null(json_object_get(r.json, "next_after_seq")),
		  "%s", r.out);
	h_run_free(&r);

	snprintf(num, sizeof(num), "%llu", (unsigned long long)seqs[2]);
	r = CLI("by-type", "ItemPicked", "--after-seq", num, "--all");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	evs = json_object_get(r.json, "events");
	cr_assert_eq(json_array_size(evs), 2, "%s", r.out);
	cr_assert_eq((uint64_t)jint(json_array_get(evs, 0), "seq"), seqs[3]);
	h_run_free(&r);

	r = CLI("by-type", "NothingOfThis");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 0);
	cr_assert(json_is_null(json_object_get(r.json, "next_after_seq")));
	h_run_free(&r);
}

/* ---- tail ---------------------------------------------------------------- */

/* Every field of an event line, with data and metadata as JSON values. */
static void assert_event_line(const json_t *ev, const char *id,
			      json_int_t version)
{
	static const char *const text[] = {
		"aggregate_type", "aggregate_id", "event_type", "event_id",
		"correlation_id", "causation_id", "timestamp", "cid"};

	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		cr_assert(json_is_string(json_object_get(ev, text[i])),
			  "%s is a string", text[i]);
	cr_assert_str_eq(jstr(ev, "aggregate_type"), "t");
	cr_assert_str_eq(jstr(ev, "aggregate_id"), id);
	cr_assert_eq(jint(ev, "version"), version);
	cr_assert(json_is_object(json_object_get(ev, "metadata")));
	cr_assert(json_is_object(json_object_get(ev, "data")));
	cr_assert(version == 1 ? json_is_null(json_object_get(ev, "prev"))
			       : json_is_string(json_object_get(ev, "prev")));
	cr_assert(json_is_integer(json_object_get(ev, "seq")));
}

Test(cli_reads, tail_sees_appends_made_after_it_started)
{
	cim_append_result *a;
	json_t *lines[8];
	h_run r;
	pid_t pid;
	size_t n;

	/* Stored before the tail: not shown, it starts from now. */
	cim_append_result_destroy(
		h_append1("t", "before", CIM_EXPECT_ANY, "Old", "{\"n\": 0}"));
	pid = h_spawn("tail", ARGV("tail", "events.t.>", "--count", "3"));
	wait_subscribed(1);

	cim_append_result_destroy(
		h_append1("u", "other", CIM_EXPECT_ANY, "NotMine", "{}"));
	cim_append_result_destroy(
		h_append1("t", "live-1", CIM_EXPECT_ANY, "A", "{\"n\": 1}"));
	{
		/* a batch of two, with metadata and a float */
		cim_new_event evs[2] = {
			{.event_type = "B",
			 .data_json = "{\"n\": 2, \"f\": 0.1}",
			 .metadata_json = "{\"who\": \"tail\"}"},
			{.event_type = "C", .data_json = "{\"n\": 3}"},
		};
		cim_error err;

		cr_assert_eq(cim_append(H.client, "t", "live-1", 1, evs, 2, &a,
					&err),
			     CIM_ERR_OK, "%s", err.message);
	}

	r = h_finish(pid, "tail", 15000);
	cr_assert_eq(r.status, 0, "tail exits 0 after --count: %d, stderr %s",
		     r.status, r.err);
	n = json_lines(r.out, lines, 8);
	cr_assert_eq(n, 3, "3 lines: %s", r.out);
	for (size_t i = 0; i < n; i++) {
		assert_event_line(lines[i], "live-1", (json_int_t)i + 1);
		cr_assert_eq(jint(json_object_get(lines[i], "data"), "n"),
			     (json_int_t)i + 1);
	}
	cr_assert_eq((uint64_t)jint(lines[2], "seq"), a->events[1].seq);
	cr_assert_str_eq(jstr(lines[2], "cid"), a->events[1].cid);
	cr_assert_str_eq(jstr(lines[2], "prev"), jstr(lines[1], "cid"));
	cr_assert_str_eq(jstr(json_object_get(lines[1], "metadata"), "who"),
			 "tail");
	/* The float as the store gives it: shortest form, not 17 digits. */
	cr_assert_not_null(strstr(r.out, "\"f\":0.1"), "%s", r.out);
	for (size_t i = 0; i < n; i++)
		json_decref(lines[i]);
	cim_append_result_destroy(a);
	h_run_free(&r);
}

Test(cli_reads, tail_from_seq_and_since_replay_what_is_stored)
{
	cim_append_result *a[4];
	char num[24];
	json_t *lines[8];
	h_run r;
	size_t n;

	for (int i = 0; i < 4; i++) {
		char data[32];

		snprintf(data, sizeof(data), "{\"n\": %d}", i + 1);
		a[i] = h_append1("t", "hist", i == 0 ? CIM_EXPECT_NO_STREAM : i,
				 "H", data);
	}

	snprintf(num, sizeof(num), "%llu",
		 (unsigned long long)a[1]->events[0].seq);
	r = CLI("tail", "events.t.>", "--from-seq", num, "--count", "2");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	n = json_lines(r.out, lines, 8);
	cr_assert_eq(n, 2, "%s", r.out);
	assert_event_line(lines[0], "hist", 2);
	assert_event_line(lines[1], "hist", 3);
	cr_assert_eq((uint64_t)jint(lines[0], "seq"), a[1]->events[0].seq);
	for (size_t i = 0; i < n; i++)
		json_decref(lines[i]);
	h_run_free(&r);

	/* A time before everything: from the first event. */
	r = CLI("tail", "events.t.hist.>", "--since", "2020-01-01T00:00:00Z",
		"--count", "4");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	n = json_lines(r.out, lines, 8);
	cr_assert_eq(n, 4, "%s", r.out);
	for (size_t i = 0; i < n; i++) {
		assert_event_line(lines[i], "hist", (json_int_t)i + 1);
		json_decref(lines[i]);
	}
	h_run_free(&r);

	/* --no-check changes nothing for events that are sound. */
	r = CLI("tail", "events.t.>", "--from-seq", "1", "--count", "1",
		"--no-check");
	cr_assert_eq(r.status, 0, "exit %d, stderr: %s", r.status, r.err);
	n = json_lines(r.out, lines, 8);
	cr_assert_eq(n, 1, "%s", r.out);
	assert_event_line(lines[0], "hist", 1);
	json_decref(lines[0]);
	h_run_free(&r);
	for (int i = 0; i < 4; i++)
		cim_append_result_destroy(a[i]);
}

/* Waits up to 10 s until the stdout of the tool started as tag holds a
 * complete line. */
static void wait_for_line(const char *tag)
{
	char out[300];
	int64_t end = h_now_ms() + 10000;

	snprintf(out, sizeof(out), "%s/%s.out", H.nats.dir, tag);
	while (h_now_ms() < end) {
		char *text = h_slurp(out);
		bool got = strchr(text, '\n') != NULL;

		free(text);
		if (got)
			return;
		h_sleep_ms(20);
	}
	cr_assert_fail("no line from %s within 10 s", tag);
}

Test(cli_reads, tail_stops_on_sigterm_and_sigint_with_exit_0)
{
	const int sigs[2] = {SIGTERM, SIGINT};

	cim_append_result_destroy(
		h_append1("t", "sig", CIM_EXPECT_ANY, "S", "{}"));
	for (int i = 0; i < 2; i++) {
		json_t *lines[4];
		h_run r;
		pid_t pid;

		/* From the first event, so it has printed one line (and is
		 * following) when the signal comes, however slow the start. */
		pid = h_spawn("tail", ARGV("tail", "events.t.>",
					   "--from-seq", "1"));
		wait_for_line("tail");
		h_sleep_ms(200);
		cr_assert_eq(h_wait_exit(pid, 0), -2, "tail still follows");
		kill(pid, sigs[i]);
		r = h_finish(pid, "tail", 5000);
		cr_assert_eq(r.status, 0, "signal %d: exit %d, stderr %s",
			     sigs[i], r.status, r.err);
		cr_assert_eq(json_lines(r.out, lines, 4), 1, "%s", r.out);
		json_decref(lines[0]);
		h_run_free(&r);
	}
}

Test(cli_reads, tail_reports_a_failed_check_and_goes_on)
{
	json_t *lines[4];
	h_run r;
	size_t n;

	cim_append_result_destroy(
		h_append1("t", "ck", CIM_EXPECT_NO_STREAM, "A", "{\"n\": 1}"));
	/* Not an event block at all, among the aggregate's subjects. */
	h_stream_publish("events.t.ck.Junk", "junk", 4);
	cim_append_result_destroy(
		h_append1("t", "ck", 1, "B", "{\"n\": 2}"));

	r = CLI("tail", "events.t.>", "--from-seq", "1", "--count", "2");
	cr_assert_eq(r.status, 1, "a failed check makes the exit 1: %d, %s",
		     r.status, r.err);
	cr_assert_not_null(strstr(r.err, "cim-events: check_failed: "), "%s",
			   r.err);
	n = json_lines(r.out, lines, 4);
	cr_assert_eq(n, 2, "the events around it are printed: %s", r.out);
	assert_event_line(lines[0], "ck", 1);
	assert_event_line(lines[1], "ck", 2);
	json_decref(lines[0]);
	json_decref(lines[1]);
	h_run_free(&r);
}

/* ---- usage --------------------------------------------------------------- */

Test(cli_reads, usage_errors_exit_2_and_help_exits_0)
{
	const char *const *bad[] = {
		ARGV("snapshot"),
		ARGV("snapshot", "list", "order", "x"),
		ARGV("snapshot", "get", "order"),
		ARGV("snapshot", "get", "order", "x", "extra"),
		ARGV("snapshot", "save", "order", "x", "1"),
		ARGV("snapshot", "save", "order", "x", "one", "{}"),
		ARGV("snapshot", "save", "order", "x", "0", "{}"),
		ARGV("snapshot", "save", "order", "x", "1", "{not json"),
		ARGV("load", "order"),
		ARGV("load", "order", "x", "--from", "2"),
		ARGV("by-type"),
		ARGV("by-type", "A", "B"),
		ARGV("by-type", "A", "--limit", "0"),
		ARGV("by-type", "A", "--after-seq", "-1"),
		ARGV("tail"),
		ARGV("tail", "events.>", "extra"),
		ARGV("tail", "events.>", "--count", "0"),
		ARGV("tail", "events.>", "--from-seq", "x"),
		ARGV("tail", "events.>", "--since", "yesterday"),
		ARGV("tail", "events.>", "--from-seq", "1", "--since",
		     "2026-01-01T00:00:00Z"),
	};
	const char *const *help[] = {
		ARGV("snapshot", "--help"), ARGV("load", "--help"),
		ARGV("by-type", "--help"), ARGV("tail", "--help"),
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h_run r = run_tool(bad[i]);

		cr_assert_eq(r.status, 2, "case %zu (%s %s): exit %d, stderr %s",
			     i, bad[i][3], bad[i][4] ? bad[i][4] : "", r.status,
			     r.err);
		cr_assert_not_null(strstr(r.err, "cim-events: usage: "),
				   "case %zu: %s", i, r.err);
		cr_assert_str_eq(r.out, "", "case %zu: %s", i, r.out);
		h_run_free(&r);
	}
	for (size_t i = 0; i < sizeof(help) / sizeof(help[0]); i++) {
		h_run r = run_tool(help[i]);

		cr_assert_eq(r.status, 0, "%s --help: exit %d", help[i][3],
			     r.status);
		cr_assert_not_null(strstr(r.out, "usage: cim-events "),
				   "%s", r.out);
		h_run_free(&r);
	}
	{
		h_run r = CLI("--help");

		cr_assert_eq(r.status, 0);
		for (size_t i = 0; i < sizeof(help) / sizeof(help[0]); i++)
			cr_assert_not_null(strstr(r.out, help[i][3]),
					   "--help names %s: %s", help[i][3],
					   r.out);
		h_run_free(&r);
	}
}
