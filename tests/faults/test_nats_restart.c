/*
 * test_nats_restart.c: nats-server killed with SIGKILL under a 16-client
 * append load and started again on the same port and store after 1-2 s.
 * The daemon is never restarted by the test: it must reconnect by itself
 * and serve again. Every request ends (a reply or the client's own
 * timeout) within the caller's timeout + 500 ms; once the daemon serves
 * again no request goes unanswered; the checker proves nothing
 * acknowledged was lost and nothing unacknowledged was stored in part.
 *
 * CIM_FAULT_SCALE=full: 3 kills; otherwise 1.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"
#include "load.h"

TestSuite(fault_nats, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 900);

#define CLIENT_TIMEOUT_MS 2000
#define MARGIN_MS 500
#define PUBLISH_TIMEOUT_MS "1000"
#define MAX_ROUNDS 8
#define CLEAR_MS 8000

/* Whether the daemon answers info through H.nc (which reconnects by
 * itself). */
static bool daemon_answers(void)
{
	natsMsg *m = NULL;
	natsStatus s = natsConnection_RequestString(&m, H.nc, H_PREFIX ".info", "{}", 1000);

	natsMsg_Destroy(m);
	return s == NATS_OK;
}

static bool alive(pid_t pid)
{
	return pid > 0 && h_wait_exit(pid, 0) == -2;
}

struct window {
	int64_t kill, restart, serving, acks_back;
};

Test(fault_nats, nats_server_killed_and_restarted_under_load)
{
	int rounds = fl_scale(1, 3);
	unsigned seed = (unsigned)h_now_ms() ^ (unsigned)getpid();
	struct window w[MAX_ROUNDS];
	char why[512] = "";
	fl_figures f;
	fl_stats st;
	fl_load *l;
	pid_t pid0;
	int64_t t0, t_load;
	int bad;

	srand(seed);
	setenv("CIM_EVENTS_PUBLISH_TIMEOUT_MS", PUBLISH_TIMEOUT_MS, 1);
	pid0 = H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0, "the daemon did not start");

	fl_options o = {
		.url = H.nats.url,
		.threads = 16,
		.timeout_ms = CLIENT_TIMEOUT_MS,
		.max_ms = 600000,
		.max_appends = 5000000,
		.seed = seed,
	};
	t0 = h_now_ms();
	l = fl_start(&o, why, sizeof(why));
	cr_assert_not_null(l, "%s", why);
	printf("[nats] seed %u, %d kill(s) of nats-server, 16 clients, client "
	       "timeout %d ms, publish_timeout_ms %s\n", seed, rounds,
	       CLIENT_TIMEOUT_MS, PUBLISH_TIMEOUT_MS);
	fflush(stdout);
	cr_assert_geq(fl_wait_acks(l, 200, 20000), 200, "the load did not get going");

	for (int r = 0; r < rounds; r++) {
		h_sleep_ms(200 + rand() % 600);
		w[r].kill = h_now_ms();
		h_nats_kill(&H.nats);
		h_sleep_ms(1000 + rand() % 1001);
		cr_assert_eq(h_nats_restart(&H.nats), 0,
			     "round %d: nats-server did not start again", r + 1);
		w[r].restart = h_now_ms();
		cr_assert(alive(pid0), "round %d: the daemon died with nats-server", r + 1);

		/* the daemon reconnects by itself */
		int64_t end = h_now_ms() + 30000;
		bool answered;
		while (!(answered = daemon_answers()) && h_now_ms() < end)
			h_sleep_ms(100);
		w[r].serving = h_now_ms();
		cr_assert(answered, "round %d: the daemon does not answer info 30 s after "
			  "nats-server came back", r + 1);
		/* and appends are acknowledged again */
		end = h_now_ms() + 30000;
		while (fl_acked_since(l, w[r].restart) < 20 && h_now_ms() < end)
			h_sleep_ms(50);
		w[r].acks_back = h_now_ms();
		cr_assert_geq(fl_acked_since(l, w[r].restart), 20,
			      "round %d: fewer than 20 appends acknowledged in the 30 s "
			      "after nats-server came back", r + 1);
		fprintf(stderr, "[nats] round %d: down %lld ms, daemon answering %lld ms "
			"after the restart, appends acknowledged again after %lld ms\n",
			r + 1, (long long)(w[r].restart - w[r].kill),
			(long long)(w[r].serving - w[r].restart),
			(long long)(w[r].acks_back - w[r].restart));
		/* a little load in the clear before the next kill */
		fl_wait_acks(l, 200, 10000);
	}
	/* and in the clear for longer than the writer lease lasts (5 s by
	 * default): the daemon must go on serving, not only come back */
	int64_t clear_from = h_now_ms();
	h_sleep_ms(CLEAR_MS);
	int64_t clear_to = h_now_ms();
	uint64_t acked_last = fl_acked_since(l, clear_to - 3000);
	int64_t gap_at = 0, gap = fl_longest_ack_gap(l, w[rounds - 1].acks_back, clear_to, &gap_at);
	fl_stop(l);
	fl_join(l);
	t_load = h_now_ms() - t0;
	fl_get_stats(l, &st);

	cr_assert(alive(pid0), "the daemon is not running at the end");
	cr_assert_eq(H.daemon, pid0);

	/* every request ended within the caller's timeout + the margin, and
	 * none went unanswered while the server and the daemon were up */
	int64_t max_lat = 0;
	uint64_t late = 0, lost_in_clear = 0;
	uint64_t in_outage[CIM_ERR__COUNT] = {0}, in_clear[CIM_ERR__COUNT] = {0};
	for (size_t i = 0; i < fl_attempt_count(l); i++) {
		const fl_attempt *a = fl_attempt_get(l, i);
		int64_t d = a->end_ms - a->start_ms;
		bool outage = false;
		if (d > max_lat)
			max_lat = d;
		if (d > CLIENT_TIMEOUT_MS + MARGIN_MS) {
			if (late++ < 20) {
				fprintf(stderr, "LATE: an append took %lld ms:\n", (long long)d);
				fl_print_append(stderr, l, a->append);
			}
		}
		for (int r = 0; r < rounds; r++)
			if (a->end_ms >= w[r].kill && a->start_ms <= w[r].acks_back)
				outage = true;
		(outage ? in_outage : in_clear)[a->code]++;
		if (!outage && a->outcome == FL_UNANSWERED) {
			if (lost_in_clear++ < 20) {
				fprintf(stderr, "UNANSWERED while nats-server and the daemon "
					"were up:\n");
				fl_print_append(stderr, l, a->append);
			}
		}
	}

	/* afterwards the daemon serves: one more append, through a fresh client */
	cim_append_result *res = h_append1("fault-after", "after-1", CIM_EXPECT_NO_STREAM,
					   "After", "{\"after\": true}");
	cim_append_result_destroy(res);

	int64_t tc = h_now_ms();
	bad = fl_check(l, NULL, &f, stderr);
	tc = h_now_ms() - tc;

	printf("[nats] kills survived: %d of %d (daemon pid %d never restarted)\n", rounds,
	       rounds, (int)pid0);
	for (int r = 0; r < rounds; r++)
		printf("[nats] round %d: nats-server down %lld ms; daemon answering %lld ms "
		       "and appends acked %lld ms after its restart\n", r + 1,
		       (long long)(w[r].restart - w[r].kill),
		       (long long)(w[r].serving - w[r].restart),
		       (long long)(w[r].acks_back - w[r].restart));
	printf("[nats] load: %lld ms, %llu attempts, %llu acked, %llu refused, "
	       "%llu unanswered\n", (long long)t_load, (unsigned long long)st.attempts,
	       (unsigned long long)st.acked, (unsigned long long)st.refused,
	       (unsigned long long)st.unanswered);
	printf("[nats] max latency: appends %lld ms, any request %lld ms (bound %d ms)\n",
	       (long long)max_lat, (long long)st.max_latency_ms,
	       CLIENT_TIMEOUT_MS + MARGIN_MS);
	printf("[nats] results during the outages:");
	for (int k = 0; k < CIM_ERR__COUNT; k++)
		if (in_outage[k])
			printf(" %s %llu", cim_err_name((cim_err)k), (unsigned long long)in_outage[k]);
	printf("\n[nats] results outside them:");
	for (int k = 0; k < CIM_ERR__COUNT; k++)
		if (in_clear[k])
			printf(" %s %llu", cim_err_name((cim_err)k), (unsigned long long)in_clear[k]);
	printf("\n");
	for (int k = 1; k < CIM_ERR__COUNT; k++)
		if (st.sample[k][0])
			printf("[nats] first %s: %s\n", cim_err_name((cim_err)k), st.sample[k]);
	printf("[nats] after the last restart: longest time with no ack %lld ms (from "
	       "%lld ms after appends resumed); %llu acked in the last 3 s of %d s in the "
	       "clear\n", (long long)gap, (long long)(gap_at - w[rounds - 1].acks_back),
	       (unsigned long long)acked_last, CLEAR_MS / 1000);
	(void)clear_from;
	printf("[nats] check: %lld ms\n", (long long)tc);
	fl_print_figures(stdout, "nats", &f);
	if (bad != 0 || late || lost_in_clear || in_clear[CIM_ERR_NO_DAEMON] || acked_last == 0) {
		char kept[300] = "";
		fl_keep_logs(H.nats.dir, "nats", kept, sizeof(kept));
		printf("[nats] logs kept in %s\n", kept);
	}
	fflush(stdout);

	cr_expect_eq(late, 0, "%llu request(s) took longer than the caller's timeout + %d ms",
		     (unsigned long long)late, MARGIN_MS);
	cr_expect_leq(st.max_latency_ms, CLIENT_TIMEOUT_MS + MARGIN_MS,
		      "a head read took %lld ms", (long long)st.max_latency_ms);
	cr_expect_eq(lost_in_clear, 0, "%llu append(s) unanswered while nats-server and "
		     "the daemon were up", (unsigned long long)lost_in_clear);
	cr_expect_eq(in_clear[CIM_ERR_NO_DAEMON], 0, "%llu append(s) found no daemon "
		     "listening after it had come back (it stopped serving again)",
		     (unsigned long long)in_clear[CIM_ERR_NO_DAEMON]);
	cr_expect_gt(acked_last, 0, "nothing acknowledged in the last 3 s: the daemon "
		     "stopped serving after nats-server came back");
	cr_assert_eq(bad, 0, "the checker found %d violation(s) (see above)", bad);
	cr_assert_gt(f.acked, 0);
	fl_free(l);
}
