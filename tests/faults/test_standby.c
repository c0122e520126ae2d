/*
 * test_standby.c: two cim-eventsd on one NATS system, one active (holding
 * the lease in CIM-LEASE) and one waiting. Under the 16-client load the
 * active one is killed with SIGKILL; the standby must take over within a
 * few seconds, having read the heads first, and a new standby is started
 * each time. At the end:
 *   - the checker: nothing acknowledged lost, no version written twice,
 *     every chain valid, unanswered appends wholly present or absent;
 *   - the stream, read raw in sequence order, shows each daemon's events
 *     (header Cim-Writer) in one run: once a daemon's events begin, no
 *     earlier daemon's event follows, so no two daemons ever wrote at
 *     once, and every daemon that was only a standby wrote nothing.
 *
 * CIM_FAULT_SCALE=full: 10 take-overs; otherwise 2.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"
#include "load.h"

TestSuite(fault_standby, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 1200);

#define MAX_DAEMONS 64

/* The pid in the active daemon's lease holder name host:pid:nonce. */
static pid_t active_pid(cim_client *c)
{
	char *text = NULL;
	cim_error err = {0};

	for (int tries = 0; tries < 100; tries++) {
		if (cim_info(c, &text, &err) == CIM_ERR_OK)
			break;
		h_sleep_ms(100);
	}
	cr_assert_not_null(text, "no daemon answers info: %s", err.message);
	json_t *o = json_loads(text, 0, NULL);
	cim_free(text);
	const char *h = json_string_value(json_object_get(json_object_get(o, "writer"), "holder"));
	cr_assert_not_null(h);
	const char *colon = strchr(h, ':');
	cr_assert_not_null(colon);
	pid_t pid = (pid_t)atoi(colon + 1);
	json_decref(o);
	return pid;
}

struct writers {
	char names[MAX_DAEMONS][200];
	int n;
	uint64_t counts[MAX_DAEMONS];
	uint64_t messages, interleaved;
};

/* Reads every message of the stream in order and records who wrote it. */
static void read_writers(struct writers *w)
{
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode je = 0;
	int cur = -1;

	memset(w, 0, sizeof *w);
	jsSubOptions_Init(&so);
	so.Stream = H_STREAM;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverAll;
	cr_assert_eq(js_SubscribeSync(&sub, H.js, "events.>", NULL, &so, &je), NATS_OK,
		     "ordered consumer: %d", (int)je);
	for (;;) {
		natsMsg *m = NULL;
		jsMsgMetaData *meta = NULL;
		if (natsSubscription_NextMsg(&m, sub, 3000) != NATS_OK)
			break;
		const char *who = h_header(m, "Cim-Writer");
		cr_assert_not_null(who, "an event without Cim-Writer");
		int k;
		for (k = 0; k < w->n && strcmp(w->names[k], who) != 0; k++)
			;
		if (k == w->n) {
			cr_assert_lt(w->n, MAX_DAEMONS);
			snprintf(w->names[w->n++], sizeof w->names[0], "%s", who);
		} else if (k != cur) {
			/* a writer seen before comes back after another: two wrote at once */
			w->interleaved++;
		}
		cur = k;
		w->counts[k]++;
		w->messages++;
		uint64_t pending = 0;
		if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
			pending = meta->NumPending;
			jsMsgMetaData_Destroy(meta);
		}
		natsMsg_Destroy(m);
		if (pending == 0)
			break;
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

Test(fault_standby, active_daemon_killed_under_load_the_standby_takes_over)
{
	int takeovers = fl_scale(2, 10);
	pid_t pids[MAX_DAEMONS];
	int npids = 0;
	int64_t took[MAX_DAEMONS];
	unsigned seed = (unsigned)h_now_ms() ^ (unsigned)getpid();
	char why[512] = "";
	fl_figures f;
	fl_stats st;

	srand(seed);
	setenv("CIM_EVENTS_PUBLISH_TIMEOUT_MS", "1000", 1);
	pids[npids++] = H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	pids[npids] = h_daemon_start(&H.nats, NULL); /* the standby */
	cr_assert_gt(pids[npids], 0);
	npids++;
	cim_client *c = h_client_new(1000);

	fl_options o = {
		.url = H.nats.url,
		.threads = 16,
		.timeout_ms = 2000,
		.max_ms = 900000,
		.max_appends = 5000000,
		.seed = seed,
	};
	fl_load *l = fl_start(&o, why, sizeof why);
	cr_assert_not_null(l, "%s", why);
	fl_wait_acks(l, 100, 15000);

	for (int t = 0; t < takeovers; t++) {
		h_sleep_ms(500 + rand() % 1001);
		pid_t victim = active_pid(c);
		int k;
		for (k = 0; k < npids && pids[k] != victim; k++)
			;
		cr_assert_lt(k, npids, "the active daemon (pid %d) is one of ours", (int)victim);
		fl_note_daemon(l);
		h_daemon_kill9(victim);
		pids[k] = -1;
		int64_t killed = h_now_ms();
		/* the next standby; it comes up once someone answers info again */
		cr_assert_lt(npids, MAX_DAEMONS);
		pids[npids] = h_daemon_start(&H.nats, NULL);
		cr_assert_gt(pids[npids], 0, "take-over %d: no daemon answered after the kill",
			     t + 1);
		npids++;
		cr_assert_gt(fl_wait_acks(l, 20, 20000), 0, "take-over %d: appends go on", t + 1);
		int64_t at = 0;
		int64_t gap = fl_longest_ack_gap(l, killed, h_now_ms(), &at);
		took[t] = gap;
		fprintf(stderr, "[standby] take-over %d: pid %d killed, appends acknowledged "
			"again after a gap of %lld ms\n", t + 1, (int)victim, (long long)gap);
	}
	fl_stop(l);
	fl_join(l);
	fl_get_stats(l, &st);
	int bad = fl_check(l, NULL, &f, stderr);

	struct writers w;
	read_writers(&w);
	qsort(took, (size_t)takeovers, sizeof took[0], cmp_i64);
	printf("[standby] take-overs: %d, ack gap after each kill: min %lld ms, median %lld ms, "
	       "max %lld ms\n", takeovers, (long long)took[0],
	       (long long)took[takeovers / 2], (long long)took[takeovers - 1]);
	printf("[standby] load: %llu attempts, %llu acked, %llu refused, %llu unanswered\n",
	       (unsigned long long)st.attempts, (unsigned long long)st.acked,
	       (unsigned long long)st.refused, (unsigned long long)st.unanswered);
	printf("[standby] stream: %llu messages by %d writer(s), %llu switch(es) back to an "
	       "earlier writer\n", (unsigned long long)w.messages, w.n,
	       (unsigned long long)w.interleaved);
	for (int i = 0; i < w.n; i++)
		printf("[standby]   %s wrote %llu\n", w.names[i], (unsigned long long)w.counts[i]);
	fl_print_figures(stdout, "standby", &f);
	fflush(stdout);
	if (bad != 0) {
		char kept[300] = "";
		fl_keep_logs(H.nats.dir, "standby", kept, sizeof kept);
		printf("[standby] logs kept in %s\n", kept);
	}

	cr_assert_eq(bad, 0, "the checker found %d violation(s)", bad);
	cr_assert_eq(w.interleaved, 0, "two daemons' events interleave in the stream");
	cr_assert_eq(w.n, takeovers + 1, "each active daemon wrote, and no standby did "
		     "(%d writers for %d take-overs)", w.n, takeovers);
	cr_assert_lt(took[takeovers - 1], 10000, "every take-over within 10 s");

	for (int i = 0; i < npids; i++)
		if (pids[i] > 0)
			cr_assert_eq(h_daemon_stop(pids[i]), 0);
	H.daemon = -1;
	cim_client_destroy(c);
	fl_free(l);
}
