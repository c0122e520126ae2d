/*
 * test_reads.c: reads across aggregates (by_type, replay, projections,
 * verify-all, export) hand out exactly the stored, committed events of
 * their filter after their start, on a store with history, from every
 * start position, and find their end without waiting for it (issue 12).
 * The fixture and the checks are in tests/support/history.c.
 */
#include <criterion/criterion.h>
#include <pthread.h>
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
		cr_assert_lt(t.slowest_ms, hist_slow_ms());
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
		cr_assert_lt(t.slowest_ms, hist_slow_ms());
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
		cr_assert_lt(t.slowest_ms, hist_slow_ms());
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

/* The daemon's log from byte `from` on, once it holds what (waited for up
 * to 5 s: the log is written as the daemon goes); NULL if it never does. */
static char *log_line(const char *what, size_t from)
{
	char *path = h_strf("%s/daemon.log", H.nats.dir);
	char *line = NULL;

	for (int i = 0; i < 100 && line == NULL; i++) {
		char *text = h_slurp(path);
		const char *at = strlen(text) > from ? strstr(text + from, what) : NULL;
		if (at != NULL)
			line = strndup(at, strcspn(at, "\n"));
		free(text);
		if (line == NULL)
			h_sleep_ms(50);
	}
	free(path);
	return line;
}

static size_t log_size(void)
{
	char *path = h_strf("%s/daemon.log", H.nats.dir);
	char *text = h_slurp(path);
	size_t n = strlen(text);

	free(text);
	free(path);
	return n;
}

/* by_type's type index is written beside the heads checkpoint and read
 * back at start-up, so the stream is read only after it; without it (the
 * first start after an upgrade) the stream is read again from its start,
 * and the reads are the same either way. */
Test(reads, the_type_index_is_read_back_at_start_up)
{
	hist h = {0};
	hist_timing t = {0};
	char want[96];

	for (int i = 0; i < 12; i++) {
		char id[16];
		snprintf(id, sizeof(id), "ix-%d", i % 4);
		hist_append(&h, "order", id, i % 3 ? (const char *[]){"Paid", "Noted"}
						   : (const char *[]){"Noted", "Paid"}, 1 + i % 2);
	}
	hist_seal(&h);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	size_t from = log_size();
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	snprintf(want, sizeof(want), "complete up to seq %llu", (unsigned long long)h.last_seq);
	char *line = log_line("type index:", from);
	cr_assert(line != NULL && strstr(line, want) != NULL, "%s (want: %s)", line, want);
	free(line);
	line = log_line("heads loaded from the checkpoint", from);
	cr_assert(line != NULL && strstr(line, "then 0 event(s) replayed"), "%s", line);
	free(line);
	hist_check_by_type(&h, "Paid", &t);

	/* the pages gone: read again from the start, the same answers */
	h_daemon_kill9(H.daemon);
	kvStore *kv = NULL;
	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-HEADS"), NATS_OK);
	cr_assert_eq(kvStore_Purge(kv, "typeindex.0", NULL), NATS_OK);
	kvStore_Destroy(kv);
	from = log_size();
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	line = log_line("type index:", from);
	cr_assert(line != NULL && strstr(line, "0 page(s) read") != NULL &&
		  strstr(line, "complete up to seq 0") != NULL, "%s", line);
	free(line);
	hist_check_by_type(&h, "Paid", &t);
	hist_check_by_type(&h, "Noted", &t);
	h_reply rep;
	h_request(&rep, H_PREFIX ".info", "{}", -1);
	json_t *ti = json_object_get(json_object_get(rep.json, "counters"), "type_index");
	cr_assert_eq(json_integer_value(json_object_get(ti, "high_seq")), (json_int_t)h.last_seq,
		     "%s", rep.body);
	cr_assert_gt(json_integer_value(json_object_get(ti, "bytes")), 0);
	h_reply_free(&rep);
	hist_free(&h);
}

/* A reader following one event type while appends of batches go on from
 * three clients at once: it ends with every event of the type, once each,
 * in stream order. */
struct appender {
	int who, done, failed;
	uint64_t seqs[200];
	int n;
	char why[256];
};

static void *append_loop(void *arg)
{
	struct appender *ap = arg;
	cim_client *c = h_client_new(0);

	for (int i = 0; i < 60 && !ap->failed; i++) {
		cim_new_event ev[3];
		cim_append_result *r = NULL;
		cim_error err = {0};
		char id[16];
		int n = 1 + (i + ap->who) % 3;

		for (int k = 0; k < n; k++)
			ev[k] = (cim_new_event){.event_type = (i + k) % 2 ? "Follow" : "Other",
						.data_json = "{}"};
		snprintf(id, sizeof(id), "f%d-%d", ap->who, i % 5);
		if (cim_append(c, "acct", id, CIM_EXPECT_ANY, ev, (size_t)n, &r, &err) != CIM_ERR_OK) {
			snprintf(ap->why, sizeof(ap->why), "append: %.200s", err.message);
			ap->failed = 1;
			break;
		}
		for (int k = 0; k < n; k++)
			if (strcmp(ev[k].event_type, "Follow") == 0)
				ap->seqs[ap->n++] = r->events[k].seq;
		cim_append_result_destroy(r);
	}
	cim_client_destroy(c);
	__atomic_store_n(&ap->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

Test(reads, a_follower_of_one_type_misses_nothing_while_appends_go_on)
{
	struct appender ap[3] = {{.who = 0}, {.who = 1}, {.who = 2}};
	pthread_t th[3];
	uint64_t got[600], want[600], after = 0;
	int n = 0, nwant = 0, quiet = 0;

	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, append_loop, &ap[i]), 0);
	while (quiet < 2) {
		cim_event_list *l = NULL;
		cim_error err = {0};
		int finished = 1;

		for (int i = 0; i < 3; i++)
			finished &= __atomic_load_n(&ap[i].done, __ATOMIC_SEQ_CST);
		cr_assert_eq(cim_by_type(H.client, "Follow", after, 7, &l, &err), CIM_ERR_OK,
			     "%s", err.message);
		for (size_t i = 0; i < l->n_events; i++) {
			cr_assert_lt(n, 600);
			cr_assert_gt(l->events[i].seq, after, "in stream order, each once");
			got[n++] = after = l->events[i].seq;
		}
		if (l->next_after_seq != 0)
			after = l->next_after_seq;
		/* ended: the appends were over before this page, which said so */
		if (finished && l->next_after_seq == 0)
			quiet++;
		cim_event_list_destroy(l);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(ap[i].failed, 0, "%s", ap[i].why);
		for (int k = 0; k < ap[i].n; k++)
			want[nwant++] = ap[i].seqs[k];
	}
	qsort(want, (size_t)nwant, sizeof(*want), cmp_u64);
	cr_assert_eq(n, nwant, "every Follow event: got %d of %d", n, nwant);
	for (int i = 0; i < n; i++)
		cr_assert_eq(got[i], want[i], "event %d", i);
}

/* A mirror of the events stream that answers direct gets for it
 * (MirrorDirect), as operators add for reads elsewhere, holds only what
 * its filter takes, and lags: its "no message" is not the stream's. (On
 * 2.9.10 it holds none of the daemon's messages: the server will not
 * mirror one with a Nats-Expected-Stream header.) Direct gets go to it and
 * to the stream alike; by_type hands out every event all the same. */
Test(reads, by_type_is_exact_beside_a_filtered_mirror_answering_direct_gets)
{
	jsStreamConfig sc;
	jsStreamSource mirror = {.Name = H_STREAM, .FilterSubject = "events.order.>"};
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	hist h = {0};
	hist_timing t = {0};

	jsStreamConfig_Init(&sc);
	sc.Name = "CIM-MIRROR";
	sc.Storage = js_MemoryStorage;
	sc.Mirror = &mirror;
	sc.MirrorDirect = true;
	sc.AllowDirect = true;
	cr_assert_eq(js_AddStream(&si, H.js, &sc, NULL, &je), NATS_OK, "mirror: %d", (int)je);
	jsStreamInfo_Destroy(si);
	for (int i = 0; i < 12; i++) {
		char id[16];
		snprintf(id, sizeof(id), "m-%d", i % 3);
		hist_append(&h, i % 2 ? "order" : "acct", id, (const char *[]){"Paid"}, 1);
	}
	hist_seal(&h);
	for (int round = 0; round < 5; round++)
		hist_check_by_type(&h, "Paid", &t);
	hist_timing_print("by_type beside a filtered mirror", &t);
	hist_free(&h);
}
