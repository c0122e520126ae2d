/*
 * test_restart.c: what survives the daemon's death. After kill -9 and a new
 * start on the same nats-server the heads are what they were and the next
 * append links to the old head; a retried append is still recognised; a
 * SIGTERM during appends ends with exit 0 and every acknowledged append
 * stored; and the daemon rides out a restart of nats-server.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(restart, .init = h_setup, .fini = h_teardown, .timeout = 120);

struct agg {
	const char *type, *id;
	cim_head head;
};

static void get_head(struct agg *a)
{
	cim_error err = {0};

	cr_assert_eq(cim_get_head(H.client, a->type, a->id, &a->head, &err),
		     CIM_ERR_OK, "head %s/%s: %s", a->type, a->id,
		     err.message);
}

static void assert_heads_unchanged(struct agg *aggs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cim_head before = aggs[i].head;

		get_head(&aggs[i]);
		cr_assert_eq(aggs[i].head.version, before.version,
			     "%s/%s: version %llu, was %llu", aggs[i].type,
			     aggs[i].id,
			     (unsigned long long)aggs[i].head.version,
			     (unsigned long long)before.version);
		cr_assert_str_eq(aggs[i].head.head, before.head);
		cr_assert_eq(aggs[i].head.seq, before.seq);
	}
}

/* Appends one event expecting the recorded version; checks it links. */
static void append_links_to_head(struct agg *a)
{
	cim_append_result *r = h_append1(a->type, a->id,
					 (int64_t)a->head.version, "After",
					 "{\"after\": \"restart\"}");
	cim_event_block ev;
	char cid[CIM_CID_TEXT_MAX], prev[CIM_CID_TEXT_MAX];
	natsMsg *m;
	cim_event_page *p = NULL;
	cim_error err = {0};

	cr_assert_eq(r->version, a->head.version + 1);
	m = h_stored_event(r->events[0].seq, &ev, cid);
	cr_assert_str_eq(cid, r->head);
	cr_assert(ev.has_prev);
	cim_cid_to_text(&ev.prev, prev);
	cr_assert_str_eq(prev, a->head.head, "%s/%s: prev is the old head",
			 a->type, a->id);
	cim_event_block_free(&ev);
	natsMsg_Destroy(m);

	cr_assert_eq(cim_get(H.client, a->type, a->id, r->version, 1, &p,
			     &err), CIM_ERR_OK);
	cr_assert_eq(p->n_events, 1);
	cr_assert_str_eq(p->events[0].prev, a->head.head);
	cim_event_page_destroy(p);
	cim_append_result_destroy(r);
}

static void assert_valid(struct agg *a)
{
	cim_validation v;
	cim_error err = {0};

	cr_assert_eq(cim_validate(H.client, a->type, a->id, &v, &err),
		     CIM_ERR_OK, "validate %s/%s: %s: %s", a->type, a->id,
		     cim_err_name(err.code), err.message);
	cr_assert(v.valid, "%s/%s: %s at %llu: %s", a->type, a->id,
		  v.failure_reason, (unsigned long long)v.failure_version,
		  v.failure_detail);
}

Test(restart, kill9_then_start_again_keeps_heads_and_links)
{
	struct agg aggs[] = {
		{"order", "o-1", {0}}, {"order", "o-2", {0}},
		{"invoice", "i-1", {0}}, {"cart", "c-1", {0}},
	};
	size_t n = sizeof(aggs) / sizeof(aggs[0]);
	cim_new_event batch[3] = {
		{.event_type = "A", .data_json = "1"},
		{.event_type = "B", .data_json = "2"},
		{.event_type = "C", .data_json = "3"},
	};
	cim_append_result *r = NULL;
	cim_error err = {0};

	for (size_t i = 0; i < n; i++)
		free(h_append_n(aggs[i].type, aggs[i].id, (int)i + 2));
	cr_assert_eq(cim_append(H.client, "cart", "c-1", CIM_EXPECT_ANY, batch,
				3, &r, &err), CIM_ERR_OK, "%s", err.message);
	cim_append_result_destroy(r);
	for (size_t i = 0; i < n; i++)
		get_head(&aggs[i]);
	cr_assert_eq(aggs[3].head.version, 8);

	h_daemon_kill9(H.daemon);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0, "the daemon did not start again");

	assert_heads_unchanged(aggs, n);
	for (size_t i = 0; i < n; i++) {
		append_links_to_head(&aggs[i]);
		assert_valid(&aggs[i]);
	}
}

Test(restart, kill9_twice_in_a_row)
{
	struct agg a = {"order", "twice", {0}};

	free(h_append_n("order", "twice", 3));
	get_head(&a);
	for (int k = 0; k < 2; k++) {
		h_daemon_kill9(H.daemon);
		H.daemon = h_daemon_start(&H.nats, NULL);
		cr_assert_gt(H.daemon, 0);
		assert_heads_unchanged(&a, 1);
		append_links_to_head(&a);
		get_head(&a);
	}
	cr_assert_eq(a.head.version, 5);
	assert_valid(&a);
}

Test(restart, retry_after_restart_returns_the_original_reply)
{
	cim_new_event evs[2] = {
		{.event_type = "Opened", .data_json = "{}",
		 .event_id = "restart-e1"},
		{.event_type = "Noted", .data_json = "{\"x\": 1}",
		 .event_id = "restart-e2"},
	};
	cim_append_result *r1 = NULL, *r2 = NULL;
	cim_error err = {0};
	uint64_t msgs;

	cr_assert_eq(cim_append(H.client, "acct", "retry-1",
				CIM_EXPECT_NO_STREAM, evs, 2, &r1, &err),
		     CIM_ERR_OK, "%s", err.message);
	msgs = h_stream_msgs();

	h_daemon_kill9(H.daemon);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);

	cr_assert_eq(cim_append(H.client, "acct", "retry-1",
				CIM_EXPECT_NO_STREAM, evs, 2, &r2, &err),
		     CIM_ERR_OK, "retry after restart: %s: %s",
		     cim_err_name(err.code), err.message);
	cr_assert_eq(r2->version, r1->version);
	cr_assert_str_eq(r2->head, r1->head);
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(r2->events[i].cid, r1->events[i].cid);
		cr_assert_eq(r2->events[i].seq, r1->events[i].seq);
		cr_assert_eq(r2->events[i].version, r1->events[i].version);
	}
	cr_assert_eq(h_stream_msgs(), msgs, "the retry stored a duplicate");
	cim_append_result_destroy(r1);
	cim_append_result_destroy(r2);
}

/* ---- SIGTERM while appends are in flight ------------------------------------ */

#define STOP_WRITERS 6
#define MAX_ACKED 4000

struct acked {
	uint64_t version, seq;
	char cid[CIM_CID_TEXT_MAX];
};

struct stop_writer {
	cim_client *client;
	char id[16];
	atomic_int *total;
	int n;
	struct acked acks[MAX_ACKED];
	cim_err last;
};

static void *stop_writer_run(void *arg)
{
	struct stop_writer *w = arg;

	while (w->n < MAX_ACKED) {
		cim_new_event e = {.event_type = "Busy", .data_json = "{}"};
		cim_append_result *r = NULL;
		cim_error err = {0};

		/* Exact versions: an acknowledged append is at a known place. */
		w->last = cim_append(w->client, "busy", w->id, (int64_t)w->n,
				     &e, 1, &r, &err);
		if (w->last != CIM_ERR_OK)
			break;
		w->acks[w->n].version = r->version;
		w->acks[w->n].seq = r->events[0].seq;
		snprintf(w->acks[w->n].cid, CIM_CID_TEXT_MAX, "%s", r->head);
		w->n++;
		atomic_fetch_add(w->total, 1);
		cim_append_result_destroy(r);
	}
	return NULL;
}

Test(restart, sigterm_during_appends_exits_0_and_keeps_every_ack)
{
	static struct stop_writer ws[STOP_WRITERS];
	pthread_t th[STOP_WRITERS];
	atomic_int total = 0;
	int64_t end;
	int st;

	for (int i = 0; i < STOP_WRITERS; i++) {
		memset(&ws[i], 0, sizeof(ws[i]));
		ws[i].client = h_client_new(3000);
		snprintf(ws[i].id, sizeof(ws[i].id), "b-%d", i);
		ws[i].total = &total;
	}
	for (int i = 0; i < STOP_WRITERS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, stop_writer_run,
					    &ws[i]), 0);
	end = h_now_ms() + 20000;
	while (atomic_load(&total) < 300 && h_now_ms() < end)
		h_sleep_ms(5);
	cr_assert_geq(atomic_load(&total), 300, "appends did not get going");

	st = h_daemon_stop_within(H.daemon, 20000);
	H.daemon = -1;
	for (int i = 0; i < STOP_WRITERS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < STOP_WRITERS; i++)
		cim_client_destroy(ws[i].client);
	cr_assert_eq(st, 0, "cim-eventsd exit status %d after SIGTERM", st);

	/* Every writer was still appending when the daemon went away, and
	 * every acknowledged append is in the stream, as acknowledged. */
	for (int i = 0; i < STOP_WRITERS; i++) {
		cr_assert_neq(ws[i].last, CIM_ERR_OK, "writer %d ran out of "
			      "appends before the stop", i);
		cr_assert_gt(ws[i].n, 0);
		for (int k = 0; k < ws[i].n; k++) {
			cim_event_block ev;
			char cid[CIM_CID_TEXT_MAX];
			natsMsg *m = h_stored_event(ws[i].acks[k].seq, &ev,
						    cid);

			cr_assert_str_eq(cid, ws[i].acks[k].cid,
					 "%s v%llu", ws[i].id,
					 (unsigned long long)ws[i].acks[k].version);
			cr_assert_str_eq(ev.aggregate_id, ws[i].id);
			cr_assert_eq(ev.version, ws[i].acks[k].version);
			cr_assert_eq(ev.version, (uint64_t)k + 1);
			cim_event_block_free(&ev);
			natsMsg_Destroy(m);
		}
	}

	/* And a new daemon agrees: heads at or past the last ack, whole. */
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	for (int i = 0; i < STOP_WRITERS; i++) {
		struct agg a = {"busy", ws[i].id, {0}};
		cim_event_page *p = NULL;
		cim_error err = {0};

		get_head(&a);
		cr_assert_geq(a.head.version, (uint64_t)ws[i].n);
		assert_valid(&a);
		if (ws[i].n == 0)
			continue;
		cr_assert_eq(cim_get(H.client, "busy", ws[i].id,
				     (uint64_t)ws[i].n, 1, &p, &err),
			     CIM_ERR_OK);
		cr_assert_str_eq(p->events[0].cid, ws[i].acks[ws[i].n - 1].cid);
		cim_event_page_destroy(p);
	}
}

Test(restart, sigterm_when_idle_exits_0)
{
	int st;

	free(h_append_n("order", "idle", 2));
	st = h_daemon_stop(H.daemon);
	H.daemon = -1;
	cr_assert_eq(st, 0, "exit status %d", st);
}

/* ---- nats-server restarts under the daemon ------------------------------------ */

Test(restart, daemon_rides_out_a_nats_server_restart)
{
	struct agg a = {"order", "ns-1", {0}};
	int64_t end;
	cim_head h;
	cim_error err;
	cim_err rc = CIM_ERR_CONNECTION;

	free(h_append_n("order", "ns-1", 3));
	get_head(&a);

	h_nats_kill(&H.nats);
	cr_assert_eq(h_nats_restart(&H.nats), 0, "nats-server did not restart");

	/* The daemon and our connection reconnect on their own. */
	end = h_now_ms() + 20000;
	while (h_now_ms() < end) {
		memset(&err, 0, sizeof(err));
		rc = cim_get_head(H.client, "order", "ns-1", &h, &err);
		if (rc == CIM_ERR_OK)
			break;
		h_sleep_ms(200);
	}
	cr_assert_eq(rc, CIM_ERR_OK, "the daemon does not answer after the "
		     "restart: %s: %s", cim_err_name(rc), err.message);
	cr_assert_eq(kill(H.daemon, 0), 0, "the daemon died");
	assert_heads_unchanged(&a, 1);
	append_links_to_head(&a);
	assert_valid(&a);
}

/* ---- kill -9 in the middle of batches ---------------------------------------- */

#define BATCH 50
#define BATCH_WRITERS 3

struct batch_writer {
	cim_client *client;
	char id[16];
	atomic_int *total;
	int acked;      /* batches acknowledged */
	cim_err last;
};

static void *batch_writer_run(void *arg)
{
	struct batch_writer *w = arg;
	cim_new_event evs[BATCH];
	char data[BATCH][32];

	for (int i = 0; i < BATCH; i++) {
		snprintf(data[i], sizeof(data[i]), "{\"i\": %d}", i + 1);
		evs[i] = (cim_new_event){.event_type = "Part",
					 .data_json = data[i]};
	}
	for (int guard = 0; guard < 100000; guard++) {
		cim_append_result *r = NULL;
		cim_error err = {0};

		w->last = cim_append(w->client, "batch", w->id, CIM_EXPECT_ANY,
				     evs, BATCH, &r, &err);
		if (w->last != CIM_ERR_OK)
			break;
		w->acked++;
		atomic_fetch_add(w->total, 1);
		cim_append_result_destroy(r);
	}
	return NULL;
}

/* What every reader through the daemon sees of w's aggregate: whole
 * batches only, a valid chain, and at least what was acknowledged. */
static uint64_t assert_whole_batches(struct batch_writer *w)
{
	struct agg a = {"batch", w->id, {0}};
	cim_event_iter *it = NULL;
	cim_error err = {0};
	const cim_event *e;
	uint64_t n = 0;

	get_head(&a);
	cr_assert_eq(a.head.version % BATCH, 0,
		     "%s: version %llu is part of a batch", w->id,
		     (unsigned long long)a.head.version);
	cr_assert_geq(a.head.version, (uint64_t)w->acked * BATCH,
		      "%s: acknowledged batches lost", w->id);
	assert_valid(&a);
	cr_assert_eq(cim_iter_open(H.client, "batch", w->id, 1, &it, &err),
		     CIM_ERR_OK);
	for (uint64_t guard = 0; guard <= a.head.version; guard++) {
		cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK);
		if (e == NULL)
			break;
		n++;
		cr_assert_eq(e->version, n);
	}
	cim_iter_close(it);
	cr_assert_eq(n, a.head.version, "%s: get shows %llu events, head %llu",
		     w->id, (unsigned long long)n,
		     (unsigned long long)a.head.version);
	return a.head.version;
}

/* Appends BATCH - 1 events at version v + 1, so the aggregate is back at
 * a multiple of BATCH. */
static void pad_to_whole_batches(const char *id, uint64_t version)
{
	cim_new_event pad[BATCH - 1];
	cim_append_result *r = NULL;
	cim_error err = {0};

	for (int k = 0; k < BATCH - 1; k++)
		pad[k] = (cim_new_event){.event_type = "Pad", .data_json = "0"};
	cr_assert_eq(cim_append(H.client, "batch", id, (int64_t)version, pad,
				BATCH - 1, &r, &err), CIM_ERR_OK, "%s: %s",
		     cim_err_name(err.code), err.message);
	cr_assert_eq(r->version % BATCH, 0);
	cim_append_result_destroy(r);
}

Test(restart, kill9_during_batches_leaves_no_partial_batch)
{
	static struct batch_writer ws[BATCH_WRITERS];

	for (int round = 0; round < 5; round++) {
		pthread_t th[BATCH_WRITERS];
		atomic_int total = 0;
		int64_t end;

		for (int i = 0; i < BATCH_WRITERS; i++) {
			ws[i].client = h_client_new(1000);
			snprintf(ws[i].id, sizeof(ws[i].id), "k-%d", i);
			ws[i].total = &total;
			ws[i].last = CIM_ERR_OK;
		}
		for (int i = 0; i < BATCH_WRITERS; i++)
			cr_assert_eq(pthread_create(&th[i], NULL,
						    batch_writer_run, &ws[i]),
				     0);
		end = h_now_ms() + 20000;
		while (atomic_load(&total) < 6 + round * 3 &&
		       h_now_ms() < end)
			h_sleep_ms(2);
		h_daemon_kill9(H.daemon);
		H.daemon = -1;
		for (int i = 0; i < BATCH_WRITERS; i++)
			pthread_join(th[i], NULL);
		for (int i = 0; i < BATCH_WRITERS; i++)
			cim_client_destroy(ws[i].client);
		cr_assert_geq(atomic_load(&total), 6 + round * 3);

		H.daemon = h_daemon_start(&H.nats, NULL);
		cr_assert_gt(H.daemon, 0, "no restart after kill -9");
		for (int i = 0; i < BATCH_WRITERS; i++) {
			struct agg a = {"batch", ws[i].id, {0}};
			uint64_t v = assert_whole_batches(&ws[i]);

			/* The next append goes on from the visible head. */
			get_head(&a);
			cr_assert_eq(a.head.version, v);
			append_links_to_head(&a);
			assert_valid(&a);
			pad_to_whole_batches(ws[i].id, v + 1);
			ws[i].acked = (int)((v + BATCH) / BATCH);
		}
	}
}
