/*
 * test_projection.c: durable projections: every event handled, the
 * checkpoint in CIM-CHECKPOINTS, resuming from it, reset, refusing another
 * pattern's checkpoint, a refused event coming again, stop, and a
 * projection process killed with SIGKILL in the middle of 10,000 events
 * that resumes without skipping any.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../support/harness.h"
#include "../support/proc.h"

TestSuite(projection, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* Appends `per` single events to each of n aggregates acct/a-<i>. Returns
 * the stream sequence of the last. */
static uint64_t store(int n, int per)
{
	uint64_t last = 0;

	for (int v = 1; v <= per; v++)
		for (int i = 0; i < n; i++) {
			char id[16];
			cim_append_result *r;

			snprintf(id, sizeof(id), "a-%d", i);
			r = h_append1("acct", id, v - 1, "Booked", "{}");
			last = r->events[0].seq;
			cim_append_result_destroy(r);
		}
	return last;
}

struct seen {
	size_t n;
	uint64_t first_seq, last_seq;
	size_t fail_at;      /* refuse the event with this count (1-based) */
	size_t stop_at;      /* call cim_projection_stop at this count */
	cim_projection *p;
	size_t check_failures;
};

static int on_event(void *ctx, const cim_event *e)
{
	struct seen *s = ctx;

	if (s->fail_at != 0 && s->n + 1 == s->fail_at) {
		s->fail_at = 0; /* once */
		return 1;
	}
	cr_assert_gt(e->seq, s->last_seq, "stream order, no repeat");
	if (s->n == 0)
		s->first_seq = e->seq;
	s->last_seq = e->seq;
	s->n++;
	if (s->stop_at != 0 && s->n == s->stop_at)
		cim_projection_stop(s->p);
	return 0;
}

static cim_projection *open_p(const char *name, const char *pattern,
			      unsigned every)
{
	cim_projection_options o = {.name = name, .pattern = pattern,
				    .checkpoint_every = every};
	cim_projection *p = NULL;
	cim_error err = {0};
	cim_err rc = cim_projection_open(H.client, &o, &p, &err);

	cr_assert_eq(rc, CIM_ERR_OK, "open %s: %s: %s", name, cim_err_name(rc),
		     err.message);
	return p;
}

static void run_p(cim_projection *p, struct seen *s, int64_t idle_ms,
		  cim_err want)
{
	cim_error err = {0};
	cim_err rc;

	s->p = p;
	rc = cim_projection_run(p, on_event, s, idle_ms, &err);
	cr_assert_eq(rc, want, "run: %s: %s", cim_err_name(rc), err.message);
}

/* The stored checkpoint's seq, or -1 when there is none. */
static int64_t stored_seq(const char *name, json_t **out)
{
	kvStore *kv = NULL;
	kvEntry *e = NULL;
	json_t *j;
	int64_t seq;
	natsStatus s;

	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-CHECKPOINTS"), NATS_OK);
	s = kvStore_Get(&e, kv, name);
	kvStore_Destroy(kv);
	if (s == NATS_NOT_FOUND)
		return -1;
	cr_assert_eq(s, NATS_OK, "%s", natsStatus_GetText(s));
	j = json_loads(kvEntry_ValueString(e), 0, NULL);
	kvEntry_Destroy(e);
	cr_assert_not_null(j);
	seq = json_integer_value(json_object_get(j, "seq"));
	if (out != NULL)
		*out = j;
	else
		json_decref(j);
	return seq;
}

Test(projection, handles_every_event_and_checkpoints)
{
	uint64_t last = store(5, 50);
	struct seen s = {0};
	cim_projection *p = open_p("totals", NULL, 50);
	json_t *cp = NULL;

	cr_assert_eq(cim_projection_position(p), 0);
	run_p(p, &s, 500, CIM_ERR_OK);
	cr_assert_eq(s.n, 250);
	cr_assert_eq(s.first_seq, 1);
	cr_assert_eq(s.last_seq, last);
	cr_assert_eq(cim_projection_position(p), last);
	cr_assert_eq(stored_seq("totals", &cp), (int64_t)last);
	cr_assert_str_eq(json_string_value(json_object_get(cp, "pattern")),
			 "events.>");
	cr_assert_str_eq(json_string_value(json_object_get(cp, "stream")),
			 "CIM-EVENTS");
	cr_assert_not_null(json_string_value(json_object_get(cp, "updated")));
	cr_assert_eq(strlen(json_string_value(json_object_get(cp, "updated"))),
		     30, "RFC 3339 with nanoseconds: %s",
		     json_string_value(json_object_get(cp, "updated")));
	json_decref(cp);

	/* Live: what comes later reaches the next run. */
	free(h_append_n("acct", "late", 3));
	memset(&s, 0, sizeof(s));
	run_p(p, &s, 500, CIM_ERR_OK);
	cr_assert_eq(s.n, 3);
	cim_projection_close(p);
	cr_assert_eq(stored_seq("totals", NULL), (int64_t)last + 3);
}

Test(projection, resumes_from_its_checkpoint_after_close)
{
	uint64_t last = store(4, 25);
	struct seen s = {.stop_at = 40};
	cim_projection *p = open_p("resume", "events.acct.>", 1000);
	uint64_t pos;

	run_p(p, &s, 2000, CIM_ERR_OK);
	cr_assert_eq(s.n, 40, "stop takes effect before the next event");
	pos = cim_projection_position(p);
	cr_assert_eq(pos, 40);
	cim_projection_close(p); /* checkpoints what was handled */
	cr_assert_eq(stored_seq("resume", NULL), 40);

	p = open_p("resume", "events.acct.>", 1000);
	cr_assert_eq(cim_projection_position(p), 40);
	memset(&s, 0, sizeof(s));
	run_p(p, &s, 300, CIM_ERR_OK);
	cr_assert_eq(s.n, 60);
	cr_assert_eq(s.first_seq, 41);
	cr_assert_eq(s.last_seq, last);
	cim_projection_close(p);
}

Test(projection, reset_starts_over)
{
	struct seen s = {0};
	cim_projection *p;
	cim_error err = {0};

	store(2, 5);
	p = open_p("again", NULL, 0);
	run_p(p, &s, 300, CIM_ERR_OK);
	cr_assert_eq(s.n, 10);
	cim_projection_close(p);
	cr_assert_eq(stored_seq("again", NULL), 10);

	p = open_p("again", NULL, 0);
	memset(&s, 0, sizeof(s));
	run_p(p, &s, 300, CIM_ERR_OK);
	cr_assert_eq(s.n, 0, "nothing new");
	cim_projection_close(p);

	cr_assert_eq(cim_projection_reset(H.client, "again", NULL, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(stored_seq("again", NULL), -1);
	p = open_p("again", NULL, 0);
	cr_assert_eq(cim_projection_position(p), 0);
	memset(&s, 0, sizeof(s));
	run_p(p, &s, 300, CIM_ERR_OK);
	cr_assert_eq(s.n, 10);
	cr_assert_eq(s.first_seq, 1);
	cim_projection_close(p);

	/* Resetting what does not exist is fine. */
	cr_assert_eq(cim_projection_reset(H.client, "never", NULL, &err),
		     CIM_ERR_OK, "%s", err.message);
}

Test(projection, a_checkpoint_for_another_pattern_is_refused)
{
	cim_projection_options o = {.name = "orders",
				    .pattern = "events.order.>"};
	struct seen s = {0};
	cim_projection *p;
	cim_error err = {0};
	cim_err rc;

	free(h_append_n("order", "o-1", 3));
	p = open_p("orders", "events.order.>", 0);
	run_p(p, &s, 300, CIM_ERR_OK);
	cim_projection_close(p);

	o.pattern = "events.>";
	p = NULL;
	rc = cim_projection_open(H.client, &o, &p, &err);
	cr_assert_eq(rc, CIM_ERR_INVALID_ARGUMENT, "%s", cim_err_name(rc));
	cr_assert_null(p);
	cr_assert_str_eq(err.field, "pattern");
	cr_assert(strstr(err.message, "events.order.>") != NULL, "%s",
		  err.message);
	/* The refused open left the checkpoint as it was. */
	cr_assert_eq(stored_seq("orders", NULL), 3);

	cr_assert_eq(cim_projection_reset(H.client, "orders", NULL, &err),
		     CIM_ERR_OK);
	rc = cim_projection_open(H.client, &o, &p, &err);
	cr_assert_eq(rc, CIM_ERR_OK, "%s", err.message);
	cim_projection_close(p);
}

Test(projection, bad_names_and_a_missing_bucket)
{
	cim_projection_options o = {.name = "has space"};
	cim_projection *p = NULL;
	cim_error err = {0};

	cr_assert_eq(cim_projection_open(H.client, &o, &p, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "name");
	o.name = "";
	cr_assert_eq(cim_projection_open(H.client, &o, &p, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	o.name = "fine";
	o.bucket = "NO-SUCH-BUCKET";
	cr_assert_eq(cim_projection_open(H.client, &o, &p, &err),
		     CIM_ERR_NOT_FOUND, "%s", err.message);
	cr_assert(strstr(err.message, "NO-SUCH-BUCKET") != NULL, "%s",
		  err.message);
	cr_assert_null(p);
	cr_assert_eq(cim_projection_reset(H.client, "fine", "NO-SUCH-BUCKET",
					  &err),
		     CIM_ERR_NOT_FOUND);
}

/* The handler refuses one event: the run stops there, the position stays
 * before it, and the next run hands it again. */
Test(projection, a_refused_event_comes_again)
{
	struct seen s = {.fail_at = 6};
	cim_projection *p;

	store(1, 10);
	p = open_p("picky", NULL, 1);
	run_p(p, &s, 300, CIM_ERR_HANDLER);
	cr_assert_eq(s.n, 5);
	cr_assert_eq(cim_projection_position(p), 5);
	run_p(p, &s, 300, CIM_ERR_OK);
	cr_assert_eq(s.n, 10);
	cr_assert_eq(cim_projection_position(p), 10);
	cim_projection_close(p);
	cr_assert_eq(stored_seq("picky", NULL), 10);
}

static int skip_failure(void *ctx, const cim_event *ev, const cim_error *why)
{
	struct seen *s = ctx;

	cr_assert_eq(why->code, CIM_ERR_CHECK_FAILED);
	cr_assert_not_null(ev);
	s->check_failures++;
	return 0;
}

Test(projection, check_failures_go_to_on_check_failure)
{
	cim_projection_options o = {.name = "strict"};
	struct seen s = {0};
	cim_projection *p = NULL;
	cim_error err = {0};

	free(h_append_n("order", "o-1", 2));
	h_stream_publish("events.junk.j-1.Bad", "not cbor", 8);
	free(h_append_n("order", "o-1", 2));

	/* Without a callback the run stops at it, and again next time. */
	cr_assert_eq(cim_projection_open(H.client, &o, &p, &err), CIM_ERR_OK);
	s.p = p;
	cr_assert_eq(cim_projection_run(p, on_event, &s, 300, &err),
		     CIM_ERR_CHECK_FAILED);
	cr_assert(strstr(err.message, "undecodable") != NULL, "%s",
		  err.message);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(cim_projection_position(p), 2);
	cr_assert_eq(cim_projection_run(p, on_event, &s, 300, &err),
		     CIM_ERR_CHECK_FAILED);
	cim_projection_close(p);

	o.on_check_failure = skip_failure;
	cr_assert_eq(cim_projection_open(H.client, &o, &p, &err), CIM_ERR_OK);
	memset(&s, 0, sizeof(s));
	s.p = p;
	cr_assert_eq(cim_projection_run(p, on_event, &s, 300, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(s.check_failures, 1);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(cim_projection_position(p), 5);
	cim_projection_close(p);
}

static void *stop_later(void *arg)
{
	h_sleep_ms(300);
	cim_projection_stop(arg);
	return NULL;
}

Test(projection, stop_from_another_thread_returns_promptly)
{
	cim_projection *p = open_p("forever", NULL, 0);
	struct seen s = {0};
	pthread_t t;
	int64_t t0 = h_now_ms();

	cr_assert_eq(pthread_create(&t, NULL, stop_later, p), 0);
	run_p(p, &s, -1, CIM_ERR_OK);
	pthread_join(t, NULL);
	cr_assert_lt(h_now_ms() - t0, 1500);
	cim_projection_close(p);
}

/* ---- the crash test ---------------------------------------------------------- */

enum { AGGS = 50, PER = 200, BATCH = 100 };

/* Appends PER events to each of AGGS aggregates, BATCH per append. */
static void store_batches(void)
{
	static cim_new_event evs[BATCH];

	for (int i = 0; i < BATCH; i++)
		evs[i] = (cim_new_event){.event_type = "Ticked",
					 .data_json = "{\"t\": 1}"};
	for (int round = 0; round < PER / BATCH; round++)
		for (int a = 0; a < AGGS; a++) {
			cim_append_result *r = NULL;
			cim_error err = {0};
			char id[16];

			snprintf(id, sizeof(id), "k-%d", a);
			cr_assert_eq(cim_append(H.client, "clock", id,
						round * BATCH, evs, BATCH, &r,
						&err),
				     CIM_ERR_OK, "%s", err.message);
			cim_append_result_destroy(r);
		}
}

static long count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	long n = 0;
	int ch;

	if (f == NULL)
		return 0;
	while ((ch = getc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* Reads a projector's output: per aggregate, the versions in the order
 * handled, checking each run on its own never skips or goes back. Fills
 * first[a] and last[a] (0: none) and marks seen[a][v]. */
static long read_run(const char *path, uint64_t first[AGGS],
		     uint64_t last[AGGS], bool seen[AGGS][PER + 1])
{
	FILE *f = fopen(path, "r");
	char type[32], id[32];
	unsigned long long v, seq, prev_seq = 0;
	long n = 0;

	cr_assert_not_null(f, "%s", path);
	while (fscanf(f, "%31s %31s %llu %llu", type, id, &v, &seq) == 4) {
		int a = atoi(id + 2);

		cr_assert_str_eq(type, "clock");
		cr_assert(a >= 0 && a < AGGS && v >= 1 && v <= PER,
			  "line %ld: %s %s %llu", n + 1, type, id, v);
		cr_assert_gt(seq, prev_seq, "line %ld: stream order", n + 1);
		prev_seq = seq;
		if (first[a] == 0)
			first[a] = v;
		else
			cr_assert_eq(v, last[a] + 1,
				     "line %ld: %s goes from %llu to %llu",
				     n + 1, id, (unsigned long long)last[a], v);
		last[a] = v;
		seen[a][v] = true;
		n++;
	}
	fclose(f);
	return n;
}

Test(projection, killed_mid_run_resumes_without_skipping)
{
	char *out1 = h_strf("%s/run1.txt", H.nats.dir);
	char *out2 = h_strf("%s/run2.txt", H.nats.dir);
	char *log = h_strf("%s/projector.log", H.nats.dir);
	char *prog = h_strf("%s/projector", getenv("CIM_TEST_PROGS")
						    ? getenv("CIM_TEST_PROGS")
						    : "build/tests/progs");
	static bool seen[AGGS][PER + 1];
	uint64_t first1[AGGS] = {0}, last1[AGGS] = {0};
	uint64_t first2[AGGS] = {0}, last2[AGGS] = {0};
	long lines = 0, n1, n2;
	int64_t t0;
	pid_t pid;
	int st;

	store_batches();

	/* Run 1, slowed down (200 us an event), killed in the middle. */
	pid = proc_spawn((char *const[]){prog, H.nats.url, "crashy",
					 "events.clock.>", out1, "200", NULL},
			 log);
	cr_assert_gt(pid, 0);
	/* a kill point between checkpoints (every 100 events), at random
	 * in 3,000..5,000, so the second run repeats what the first handled
	 * after its last checkpoint */
	srand((unsigned)h_now_ms());
	long kill_at = 3000 + (rand() % 20) * 100 + 10 + rand() % 80;
	for (t0 = h_now_ms(); h_now_ms() - t0 < 30000; h_sleep_ms(1))
		if ((lines = count_lines(out1)) >= kill_at)
			break;
	kill(pid, SIGKILL);
	st = proc_wait_exit(pid, 5000);
	cr_assert_eq(st, 128 + SIGKILL, "run 1 was killed, not done (%d, %ld "
		     "lines)", st, lines);
	cr_assert(lines >= 3000 && lines < AGGS * PER,
		  "killed after %ld lines", lines);

	/* Run 2, to the end: it stops after 2 s idle. */
	pid = proc_spawn((char *const[]){prog, H.nats.url, "crashy",
					 "events.clock.>", out2, NULL},
			 log);
	cr_assert_gt(pid, 0);
	st = proc_wait_exit(pid, 60000);
	if (st == -2) {
		kill(pid, SIGKILL);
		proc_wait_exit(pid, 5000);
	}
	cr_assert_eq(st, 0, "run 2 exit status %d", st);

	n1 = read_run(out1, first1, last1, seen);
	n2 = read_run(out2, first2, last2, seen);
	cr_assert_geq(n1, 3000);
	cr_assert_geq(n1 + n2, AGGS * PER, "%ld + %ld lines", n1, n2);
	for (int a = 0; a < AGGS; a++) {
		if (first1[a] != 0)
			cr_assert_eq(first1[a], 1, "k-%d starts at 1", a);
		/* Run 2 starts at or before where run 1 stopped (a repeat
		 * after the checkpoint), never past it. */
		if (first2[a] != 0)
			cr_assert_leq(first2[a], last1[a] + 1,
				      "k-%d: run 1 ended at %llu, run 2 "
				      "started at %llu",
				      a, (unsigned long long)last1[a],
				      (unsigned long long)first2[a]);
		cr_assert_eq(first2[a] != 0 ? last2[a] : last1[a],
			     (uint64_t)PER, "k-%d handled to its end", a);
		for (int v = 1; v <= PER; v++)
			cr_assert(seen[a][v], "k-%d version %d never handled",
				  a, v);
	}
	cr_log_info("projector killed after %ld events handled; the second run "
		    "handled %ld; %ld repeats", n1, n2, n1 + n2 - AGGS * PER);
	/* The repeat is bounded by the checkpoint interval (100 events). */
	cr_assert_leq(n1 + n2 - AGGS * PER, 1000, "%ld repeats",
		      n1 + n2 - AGGS * PER);
	free(out1);
	free(out2);
	free(log);
	free(prog);
}

/* ---- what the review found ---------------------------------------------------- */

/* A stop is not used up by the run it ends: a loop of runs ends too. */
Test(projection, stop_is_sticky_until_close)
{
	struct seen s = {.stop_at = 3};
	cim_projection *p;
	int runs = 0;
	int64_t t0;

	store(1, 10);
	p = open_p("sticky", NULL, 0);
	cr_assert(!cim_projection_stopped(p));
	s.p = p;
	t0 = h_now_ms();
	while (cim_projection_run(p, on_event, &s, 5000, NULL) == CIM_ERR_OK &&
	       runs < 5 && !cim_projection_stopped(p))
		runs++;
	cr_assert(cim_projection_stopped(p));
	cr_assert_eq(s.n, 3);
	/* Every later run returns at once, handling nothing. */
	run_p(p, &s, 5000, CIM_ERR_OK);
	run_p(p, &s, -1, CIM_ERR_OK);
	cr_assert_eq(s.n, 3);
	cr_assert_lt(h_now_ms() - t0, 2000);
	cim_projection_close(p);
	cr_assert_eq(stored_seq("sticky", NULL), 3);

	p = open_p("sticky", NULL, 0);
	cr_assert(!cim_projection_stopped(p), "a new open starts unstopped");
	memset(&s, 0, sizeof(s));
	run_p(p, &s, 300, CIM_ERR_OK);
	cr_assert_eq(s.n, 7);
	cim_projection_close(p);
}

/* An idle time too big to add to the clock means no idle end at all. */
Test(projection, a_huge_idle_time_does_not_end_the_run_at_once)
{
	struct seen s = {.stop_at = 4};
	cim_projection *p;

	store(1, 4);
	p = open_p("patient", NULL, 0);
	run_p(p, &s, INT64_MAX, CIM_ERR_OK);
	cr_assert_eq(s.n, 4);
	cim_projection_close(p);
}

/* Two instances under one name, or a reset while one runs: the checkpoint
 * is found changed, not overwritten. */
Test(projection, a_checkpoint_changed_by_another_process_is_refused)
{
	struct seen s1 = {0}, s2 = {0};
	cim_projection *a, *b;
	cim_error err = {0};

	store(1, 4);
	a = open_p("twice", NULL, 1);
	b = open_p("twice", NULL, 1);
	run_p(a, &s1, 200, CIM_ERR_OK);
	cr_assert_eq(s1.n, 4);
	cr_assert_eq(stored_seq("twice", NULL), 4);
	s2.p = b;
	cr_assert_eq(cim_projection_run(b, on_event, &s2, 200, &err),
		     CIM_ERR_INVALID_ARGUMENT, "%s", cim_err_name(err.code));
	cr_assert_str_eq(err.field, "name");
	cr_assert(strstr(err.message, "another process") != NULL, "%s",
		  err.message);
	cr_assert_eq(cim_projection_checkpoint(b, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cim_projection_close(b);
	cr_assert_eq(stored_seq("twice", NULL), 4, "a's checkpoint stays");

	/* A reset while a is open. */
	cr_assert_eq(cim_projection_reset(H.client, "twice", NULL, &err),
		     CIM_ERR_OK, "%s", err.message);
	free(h_append_n("acct", "more", 1));
	cr_assert_eq(cim_projection_run(a, on_event, &s1, 200, &err),
		     CIM_ERR_INVALID_ARGUMENT, "%s", err.message);
	cr_assert_str_eq(err.field, "name");
	cim_projection_close(a);
	cr_assert_eq(stored_seq("twice", NULL), -1, "the reset stays");

	/* Reopened after the reset: created afresh. */
	a = open_p("twice", NULL, 1);
	memset(&s1, 0, sizeof(s1));
	run_p(a, &s1, 200, CIM_ERR_OK);
	cr_assert_eq(s1.n, 5);
	cim_projection_close(a);
	cr_assert_eq(stored_seq("twice", NULL), 5);
}

/* A checkpoint past the stream's end (the stream was recreated) is
 * refused; a bucket name KV cannot take is refused by name. */
Test(projection, a_checkpoint_past_the_stream_end_is_refused)
{
	cim_projection_options o = {.name = "future"};
	cim_projection *p = NULL;
	cim_error err = {0};
	kvStore *kv = NULL;

	store(1, 3);
	cr_assert_eq(js_KeyValue(&kv, H.js, "CIM-CHECKPOINTS"), NATS_OK);
	cr_assert_eq(kvStore_PutString(NULL, kv, "future",
				       "{\"seq\": 1000, \"pattern\": "
				       "\"events.>\", \"stream\": "
				       "\"CIM-EVENTS\"}"),
		     NATS_OK);
	kvStore_Destroy(kv);
	cr_assert_eq(cim_projection_open(H.client, &o, &p, &err),
		     CIM_ERR_INVALID_ARGUMENT, "%s", err.message);
	cr_assert_null(p);
	cr_assert_str_eq(err.field, "name");
	cr_assert(strstr(err.message, "1000") != NULL &&
			  strstr(err.message, "reset") != NULL,
		  "%s", err.message);
	cr_assert_eq(stored_seq("future", NULL), 1000, "left as it was");

	o.name = "fine";
	o.bucket = "a$b";
	cr_assert_eq(cim_projection_open(H.client, &o, &p, &err),
		     CIM_ERR_INVALID_ARGUMENT, "%s", err.message);
	cr_assert_str_eq(err.field, "bucket");
	cr_assert_eq(cim_projection_reset(H.client, "fine", "a$b", &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "bucket");
}
