/*
 * test_crash.c: the daemon killed with SIGKILL at random moments while 16
 * clients append (batches of 1..5 events, explicit event_ids and expected
 * versions, shared aggregates, retries of unanswered appends), and
 * started again each time; at the end the checker holds the store to the
 * journal: every acknowledged event present exactly once where its ack
 * said, versions gapless, every chain valid, every unanswered append
 * wholly present or wholly absent.
 *
 * CIM_FAULT_SCALE=full: 30 kill cycles; otherwise 3.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"
#include "load.h"

TestSuite(fault_crash, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 1500);

#define CLIENT_TIMEOUT_MS 2000
#define PUBLISH_TIMEOUT_MS "1000"

Test(fault_crash, sigkill_at_random_moments_under_16_client_load)
{
	int cycles = fl_scale(3, 30), survived = 0;
	unsigned seed = (unsigned)h_now_ms() ^ (unsigned)getpid();
	uint64_t acked_cycle_min = UINT64_MAX;
	char why[512] = "";
	fl_figures f;
	fl_stats st;
	fl_load *l;
	int64_t t0, t_load;
	int bad;

	srand(seed);
	setenv("CIM_EVENTS_PUBLISH_TIMEOUT_MS", PUBLISH_TIMEOUT_MS, 1);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0, "the daemon did not start");

	fl_options o = {
		.url = H.nats.url,
		.threads = 16,
		.timeout_ms = CLIENT_TIMEOUT_MS,
		.max_ms = 1200000,
		.max_appends = 5000000,
		.seed = seed,
	};
	t0 = h_now_ms();
	l = fl_start(&o, why, sizeof(why));
	cr_assert_not_null(l, "%s", why);
	printf("[crash] seed %u, %d cycles, 16 clients, client timeout %d ms, "
	       "publish_timeout_ms %s\n", seed, cycles, CLIENT_TIMEOUT_MS,
	       PUBLISH_TIMEOUT_MS);
	fflush(stdout);
	/* let it get going */
	fl_wait_acks(l, 100, 15000);

	for (int c = 0; c < cycles; c++) {
		int wait = 50 + rand() % 651;
		int64_t up = h_now_ms();
		uint64_t before;

		fl_get_stats(l, &st);
		before = st.acked;
		h_sleep_ms(wait);
		fl_get_stats(l, &st);
		if (c > 0 && st.acked - before < acked_cycle_min)
			acked_cycle_min = st.acked - before;
		cr_assert(st.running, "cycle %d: the load stopped early", c + 1);
		fl_note_daemon(l);
		h_daemon_kill9(H.daemon);
		H.daemon = -1;
		int64_t killed = h_now_ms();
		H.daemon = h_daemon_start(&H.nats, NULL);
		cr_assert_gt(H.daemon, 0, "cycle %d: the daemon did not start again "
			     "after SIGKILL", c + 1);
		survived++;
		fprintf(stderr, "[crash] cycle %d: killed after %d ms up (%lld ms "
			"since last start), back in %lld ms; acked so far %llu\n",
			c + 1, wait, (long long)(killed - up),
			(long long)(h_now_ms() - killed),
			(unsigned long long)st.acked);
	}
	/* the daemon serves again after the last start: some acks */
	uint64_t after = fl_wait_acks(l, 50, 20000);
	fl_stop(l);
	fl_join(l);
	t_load = h_now_ms() - t0;
	fl_get_stats(l, &st);

	int64_t tc = h_now_ms();
	bad = fl_check(l, NULL, &f, stderr);
	tc = h_now_ms() - tc;

	printf("[crash] cycles survived: %d of %d\n", survived, cycles);
	printf("[crash] load: %lld ms, %llu attempts, %llu acked, %llu refused, "
	       "%llu unanswered, max latency %lld ms\n", (long long)t_load,
	       (unsigned long long)st.attempts, (unsigned long long)st.acked,
	       (unsigned long long)st.refused, (unsigned long long)st.unanswered,
	       (long long)st.max_latency_ms);
	printf("[crash] results by code:");
	for (int k = 0; k < CIM_ERR__COUNT; k++)
		if (st.by_code[k])
			printf(" %s %llu", cim_err_name((cim_err)k),
			       (unsigned long long)st.by_code[k]);
	printf("\n");
	for (int k = 1; k < CIM_ERR__COUNT; k++)
		if (st.sample[k][0])
			printf("[crash] first %s: %s\n", cim_err_name((cim_err)k), st.sample[k]);
	printf("[crash] fewest acks between two kills: %llu\n",
	       (unsigned long long)(acked_cycle_min == UINT64_MAX ? 0 : acked_cycle_min));
	printf("[crash] check: %lld ms\n", (long long)tc);
	fl_print_figures(stdout, "crash", &f);
	if (bad != 0) {
		char kept[300] = "";
		fl_keep_logs(H.nats.dir, "crash", kept, sizeof(kept));
		printf("[crash] logs kept in %s\n", kept);
	}
	fflush(stdout);

	cr_assert_eq(bad, 0, "the checker found %d violation(s) (see above)", bad);
	cr_assert_gt(after, 0, "no append was acknowledged after the last restart");
	cr_assert_gt(f.acked, 0);
	cr_assert_gt(f.events_checked, 0);
	fl_free(l);
}
