/*
 * test_reads.c: reads across aggregates (by_type, replay, projections,
 * verify-all, export) hand out exactly the stored, committed events of
 * their filter after their start, on a store with history, from every
 * start position, and find their end without waiting for it (issue 12).
 * The fixture and the checks are in tests/support/history.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "../support/history.h"

TestSuite(reads, .init = h_setup, .fini = h_teardown, .timeout = 600);

/* The issue's recipe: on a stream holding four earlier events of one
 * aggregate, ET is appended to a1, [ET, OT] to a2, [OT, ET] to a3 and
 * [ET, ET] to a1 (ET at 5, 6, 9, 10 and 11 the first time). by_type ET
 * is read from every position right after the writes; then the same
 * again with new event types, on the longer history. */
Test(reads, the_issue_recipe_from_every_position_right_after_the_writes)
{
	hist h = {0};
	hist_timing t = {0};

	for (int round = 0; round < 4; round++) {
		char et[16], ot[16], a[4][16];
		const char *abcd[4] = {"A", "B", "C", "D"};

		snprintf(et, sizeof(et), "ET%d", round);
		snprintf(ot, sizeof(ot), "OT%d", round);
		for (int i = 0; i < 4; i++)
			snprintf(a[i], sizeof(a[i]), "r%d-a%d", round, i);
		for (int i = 0; i < 4; i++)
			hist_append(&h, "rec", a[0], &abcd[i], 1);
		hist_append(&h, "rec", a[1], (const char *[]){et}, 1);
		hist_append(&h, "rec", a[2], (const char *[]){et, ot}, 2);
		hist_append(&h, "rec", a[3], (const char *[]){ot, et}, 2);
		hist_append(&h, "rec", a[1], (const char *[]){et, et}, 2);
		hist_seal(&h);
		hist_check_by_type(&h, et, &t);
		if (round == 0) {
			char pattern[64];

			snprintf(pattern, sizeof(pattern), "events.*.*.%s", et);
			hist_check_replay(&h, pattern, &t);
		}
	}
	hist_timing_print("the recipe, by_type and replay", &t);
	hist_free(&h);
}

static const char *const types[] = {"Placed", "Paid", "Shipped", "Noted", "Refunded"};

Test(reads, by_type_from_every_position_of_a_store_with_history)
{
	hist h;
	hist_timing t = {0};

	hist_build(&h);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		hist_check_by_type(&h, types[i], &t);
	hist_timing_print("by_type on the history fixture", &t);
	if (getenv("CIM_HIST_REPORT_ONLY") == NULL)
		cr_assert_lt(t.slowest_ms, HIST_SLOW_MS);
	hist_free(&h);
}

Test(reads, replay_from_every_position_of_a_store_with_history)
{
	static const char *const patterns[] = {
		"events.*.*.Paid", "events.*.*.Shipped", "events.*.*.Refunded",
		"events.order.>", "events.acct.a-2.*", "events.>",
	};
	hist h;
	hist_timing t = {0};

	hist_build(&h);
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		hist_check_replay(&h, patterns[i], &t);
	hist_timing_print("replay on the history fixture", &t);
	if (getenv("CIM_HIST_REPORT_ONLY") == NULL)
		cr_assert_lt(t.slowest_ms, HIST_SLOW_MS);
	hist_free(&h);
}

Test(reads, projections_resume_right_before_a_matching_event)
{
	hist h;
	hist_timing t = {0};

	hist_build(&h);
	hist_check_projection(&h, "events.*.*.Paid", &t);
	hist_check_projection(&h, "events.order.>", &t);
	hist_timing_print("projections on the history fixture", &t);
	if (getenv("CIM_HIST_REPORT_ONLY") == NULL)
		cr_assert_lt(t.slowest_ms, HIST_SLOW_MS);
	hist_free(&h);
}

static h_run cli(const char *const *args)
{
	const char *argv[16];
	int argc = 0;

	argv[argc++] = getenv("CIM_TEST_CLI");
	cr_assert_not_null(argv[0], "CIM_TEST_CLI is not set");
	argv[argc++] = "--url";
	argv[argc++] = H.nats.url;
	for (; *args != NULL && argc < 15; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;
	return h_finish(h_spawn("reads-cli", argv), "reads-cli", 60000);
}

Test(reads, verify_all_and_export_find_exactly_what_is_stored)
{
	hist h;
	h_run r;

	hist_build(&h);
	r = cli((const char *[]){"verify-all", "--json", NULL});
	cr_assert_eq(r.status, 0, "verify-all: %s %s", r.out, r.err);
	cr_assert_not_null(r.json, "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "aggregates")), (json_int_t)h.naggs,
		     "the aggregates with events, no more: %s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "valid")), (json_int_t)h.naggs,
		     "%s", r.out);
	h_run_free(&r);

	/* every event, by aggregate (type, then id) and version */
	r = cli((const char *[]){"export", NULL});
	cr_assert_eq(r.status, 0, "export: %s", r.err);
	size_t k = 0;
	for (size_t a = 0; a < h.naggs; a++)
		for (uint64_t v = 1;; v++) {
			const hist_ev *x = NULL;
			for (size_t i = 0; i < h.n && x == NULL; i++) {
				char *key = h_strf("%s/%s", h.ev[i].type, h.ev[i].id);
				if (strcmp(key, h.aggs[a]) == 0 && h.ev[i].version == v)
					x = &h.ev[i];
				free(key);
			}
			if (x == NULL)
				break;
			char *want = h_strf("\"seq\":%llu", (unsigned long long)x->seq);
			const char *line = r.out;
			for (size_t i = 0; i < k && line != NULL; i++)
				line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL;
			cr_assert(line != NULL && *line != '\0', "export stops before event %zu", k);
			const char *end = strchr(line, '\n');
			char *got = strndup(line, end ? (size_t)(end - line) : strlen(line));
			cr_assert(strstr(got, want) != NULL, "line %zu: %s, want %s/%s v%llu (%s)", k,
				  got, x->type, x->id, (unsigned long long)x->version, want);
			free(got);
			free(want);
			k++;
		}
	cr_assert_eq(k, h.n);
	int lines = 0;
	for (const char *p = r.out; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, (int)h.n, "one line per stored event, no more:\n%s", r.out);
	h_run_free(&r);
	hist_free(&h);
}
