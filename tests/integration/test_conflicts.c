/*
 * test_conflicts.c: many writers on one aggregate at once. With the same
 * expected version exactly one wins; with "any" every append lands once,
 * at its own version, and the chain stays whole.
 *
 * The threads only call the client library and record what they got; all
 * assertions run on the test's main thread.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(conflicts, .init = h_setup, .fini = h_teardown, .timeout = 120);

#define WRITERS 20

struct writer {
	pthread_barrier_t *start;
	cim_client *client;
	const char *id;
	int64_t expect;
	int n_events;   /* events per append */
	int appends;    /* appends in a row (expect ANY only) */
	int index;
	int round;      /* makes event ids unique across rounds */
	/* results */
	cim_err rc;
	cim_error err;
	uint64_t version;
	uint64_t versions[8];
	int ok;
};

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	cim_new_event evs[4];
	char ids[4][48];

	pthread_barrier_wait(w->start);
	for (int a = 0; a < w->appends; a++) {
		cim_append_result *r = NULL;

		for (int i = 0; i < w->n_events; i++) {
			snprintf(ids[i], sizeof(ids[i]), "r%d-w%d-a%d-e%d",
				 w->round, w->index, a, i);
			evs[i] = (cim_new_event){.event_type = "Raced",
						 .data_json = "{\"w\": 1}",
						 .event_id = ids[i]};
		}
		memset(&w->err, 0, sizeof(w->err));
		w->rc = cim_append(w->client, "race", w->id, w->expect, evs,
				   (size_t)w->n_events, &r, &w->err);
		if (w->rc != CIM_ERR_OK)
			break;
		w->version = r->version;
		if (w->ok < 8)
			w->versions[w->ok] = r->version;
		w->ok++;
		cim_append_result_destroy(r);
	}
	return NULL;
}

/* Runs WRITERS threads, each with its own client, released together. */
static void race(struct writer *ws, const char *id, int64_t expect,
		 int n_events, int appends)
{
	static int rounds;
	pthread_barrier_t start;
	pthread_t th[WRITERS];

	cr_assert_eq(pthread_barrier_init(&start, NULL, WRITERS), 0);
	for (int i = 0; i < WRITERS; i++) {
		ws[i] = (struct writer){.start = &start,
					.client = h_client_new(20000),
					.id = id, .expect = expect,
					.n_events = n_events,
					.appends = appends, .index = i,
					.round = rounds};
	}
	for (int i = 0; i < WRITERS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, writer_run, &ws[i]),
			     0);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < WRITERS; i++)
		cim_client_destroy(ws[i].client);
	rounds++;
}

static void assert_valid(const char *id, uint64_t version)
{
	cim_validation v;
	cim_error err = {0};

	cr_assert_eq(cim_validate(H.client, "race", id, &v, &err), CIM_ERR_OK,
		     "%s", err.message);
	cr_assert(v.valid, "chain broken at %llu: %s: %s",
		  (unsigned long long)v.failure_version, v.failure_reason,
		  v.failure_detail);
	cr_assert_eq(v.version, version);
	cr_assert_eq(v.checked, version);
}

static uint64_t head_version(const char *id)
{
	cim_head h;
	cim_error err = {0};

	cr_assert_eq(cim_get_head(H.client, "race", id, &h, &err), CIM_ERR_OK,
		     "%s", err.message);
	return h.version;
}

/* One round: everybody expects `base`; exactly one wins. */
static void one_winner_round(const char *id, uint64_t base, int n_events)
{
	struct writer ws[WRITERS];
	int winners = 0, losers = 0, winner = -1;
	char want_expected[24];

	snprintf(want_expected, sizeof(want_expected), "%llu",
		 (unsigned long long)base);
	race(ws, id, base == 0 ? CIM_EXPECT_NO_STREAM : (int64_t)base,
	     n_events, 1);
	for (int i = 0; i < WRITERS; i++) {
		if (ws[i].rc == CIM_ERR_OK) {
			winners++;
			winner = i;
			cr_assert_eq(ws[i].version, base + (uint64_t)n_events,
				     "writer %d: version %llu after a win from %llu",
				     i, (unsigned long long)ws[i].version,
				     (unsigned long long)base);
		} else {
			cr_assert_eq(ws[i].rc, CIM_ERR_WRONG_EXPECTED_VERSION,
				     "writer %d: %s: %s", i,
				     cim_err_name(ws[i].rc), ws[i].err.message);
			cr_assert_eq(ws[i].err.current,
				     base + (uint64_t)n_events,
				     "writer %d: current %llu", i,
				     (unsigned long long)ws[i].err.current);
			if (base > 0)
				cr_assert_str_eq(ws[i].err.expected,
						 want_expected);
			losers++;
		}
	}
	cr_assert_eq(winners, 1, "%d winners", winners);
	cr_assert_eq(losers, WRITERS - 1);
	cr_assert_eq(head_version(id), base + (uint64_t)n_events);

	/* The stored events of this round are all the winner's. */
	{
		cim_event_page *p = NULL;
		cim_error err = {0};

		cr_assert_eq(cim_get(H.client, "race", id, base + 1, 0, &p,
				     &err), CIM_ERR_OK);
		cr_assert_eq(p->n_events, (size_t)n_events);
		for (int i = 0; i < n_events; i++) {
			char want[48];

			snprintf(want, sizeof(want), "r%d-w%d-a0-e%d",
				 ws[winner].round, winner, i);
			cr_assert_str_eq(p->events[i].event_id, want);
			cr_assert_eq(p->events[i].version,
				     base + 1 + (uint64_t)i);
		}
		cim_event_page_destroy(p);
	}
}

Test(conflicts, twenty_writers_same_expected_version_one_wins)
{
	free(h_append_n("race", "r-1", 3));
	one_winner_round("r-1", 3, 1);
	assert_valid("r-1", 4);
}

Test(conflicts, repeated_rounds_and_batches_stay_one_winner)
{
	uint64_t v = 0;

	one_winner_round("r-2", v, 1); /* all expect no_stream */
	v += 1;
	for (int round = 0; round < 4; round++) {
		one_winner_round("r-2", v, 1);
		v += 1;
	}
	one_winner_round("r-2", v, 3);
	v += 3;
	one_winner_round("r-2", v, 2);
	v += 2;
	assert_valid("r-2", v);
}

Test(conflicts, twenty_writers_with_any_all_land_once)
{
	struct writer ws[WRITERS];
	enum { APPENDS = 5 };
	char seen[WRITERS * APPENDS + 1] = {0};
	cim_event_iter *it = NULL;
	cim_error err = {0};
	const cim_event *e;
	uint64_t n = 0;

	race(ws, "r-3", CIM_EXPECT_ANY, 1, APPENDS);
	for (int i = 0; i < WRITERS; i++) {
		cr_assert_eq(ws[i].rc, CIM_ERR_OK, "writer %d: %s: %s", i,
			     cim_err_name(ws[i].rc), ws[i].err.message);
		cr_assert_eq(ws[i].ok, APPENDS);
		for (int a = 0; a < APPENDS; a++) {
			uint64_t ver = ws[i].versions[a];

			cr_assert(ver >= 1 && ver <= WRITERS * APPENDS);
			cr_assert_not(seen[ver], "version %llu given twice",
				      (unsigned long long)ver);
			seen[ver] = 1;
			if (a > 0)
				cr_assert_gt(ver, ws[i].versions[a - 1]);
		}
	}
	cr_assert_eq(head_version("r-3"), WRITERS * APPENDS);
	assert_valid("r-3", WRITERS * APPENDS);

	/* Every event id once, at the version its writer was told. */
	cr_assert_eq(cim_iter_open(H.client, "race", "r-3", 1, &it, &err),
		     CIM_ERR_OK);
	for (int guard = 0; guard <= WRITERS * APPENDS; guard++) {
		int w, a, k;

		cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK);
		if (e == NULL)
			break;
		n++;
		cr_assert_eq(e->version, n);
		cr_assert_eq(sscanf(e->event_id, "r%*d-w%d-a%d-e%d", &w, &a,
				    &k), 3, "%s", e->event_id);
		cr_assert(w >= 0 && w < WRITERS && a >= 0 && a < APPENDS);
		cr_assert_eq(ws[w].versions[a], e->version,
			     "event %s at %llu, its writer was told %llu",
			     e->event_id, (unsigned long long)e->version,
			     (unsigned long long)ws[w].versions[a]);
	}
	cr_assert_eq(n, WRITERS * APPENDS);
	cim_iter_close(it);
}
