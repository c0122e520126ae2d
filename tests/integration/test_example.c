/*
 * test_example.c: examples/bank_account ($CIM_TEST_EXAMPLES/bank_account),
 * the program docs/projections.md walks through, run against the test's
 * own daemon: the write side (open, deposit, withdraw with its overdraft
 * refusal, balance through the repository and its snapshots, retries
 * under concurrent writers) and the durable projection (totals, resuming
 * at its checkpoint, dropping repeats by version, rebuilding).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(example, .init = h_setup, .fini = h_teardown, .timeout = 120);

static const char *bank_bin(void)
{
	static char path[600];
	const char *dir = getenv("CIM_TEST_EXAMPLES");

	cr_assert_not_null(dir, "CIM_TEST_EXAMPLES is not set");
	snprintf(path, sizeof(path), "%s/bank_account", dir);
	return path;
}

/* How long one run of bank_account may take. */
#define BANK_MS 30000

/* Starts bank_account --url <the test's server> ARGS..., output to files
 * named after tag; the child dies with us. */
static pid_t spawn_bank(const char *tag, const char *const *args)
{
	const char *argv[32];
	int argc = 0;

	argv[argc++] = bank_bin();
	argv[argc++] = "--url";
	argv[argc++] = H.nats.url;
	for (; *args != NULL && argc < 31; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;
	return h_spawn(tag, argv);
}

#define BANK(...)                                                              \
	h_finish(spawn_bank("bank",                                            \
			    (const char *const[]){__VA_ARGS__,                 \
						  (const char *)NULL}),        \
		 "bank", BANK_MS)

/* Runs a command that must succeed and frees what it printed. */
#define BANK_OK(...)                                                           \
	do {                                                                   \
		h_run ok_ = BANK(__VA_ARGS__);                                 \
		cr_assert_eq(ok_.status, 0, "exit %d: %s%s", ok_.status,       \
			     ok_.out, ok_.err);                                \
		h_run_free(&ok_);                                              \
	} while (0)

static void assert_has(const char *text, const char *needle)
{
	cr_assert_not_null(strstr(text, needle), "expected \"%s\" in:\n%s",
			   needle, text);
}

Test(example, open_deposit_withdraw_balance_and_the_overdraft_refused)
{
	h_run r;

	r = BANK("open", "acc-1", "alice");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "AccountOpened acc-1");
	h_run_free(&r);

	r = BANK("open", "acc-1", "bob");
	cr_assert_eq(r.status, 1, "opening twice is refused: %d", r.status);
	assert_has(r.err, "already open");
	h_run_free(&r);

	r = BANK("deposit", "acc-1", "100");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "balance 100, version 2");
	h_run_free(&r);

	r = BANK("withdraw", "acc-1", "30");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "balance 70, version 3");
	h_run_free(&r);

	/* Below zero: refused, and nothing stored. */
	r = BANK("withdraw", "acc-1", "71");
	cr_assert_eq(r.status, 1, "an overdraft exits 1: %d, %s", r.status,
		     r.err);
	assert_has(r.err, "refused");
	cr_assert_str_eq(r.out, "");
	h_run_free(&r);

	r = BANK("withdraw", "acc-1", "70");
	cr_assert_eq(r.status, 0, "to exactly 0 is allowed: %s", r.err);
	assert_has(r.out, "balance 0, version 4");
	h_run_free(&r);

	r = BANK("balance", "acc-1");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "acc-1 (owner alice): balance 0, version 4");
	h_run_free(&r);

	r = BANK("deposit", "acc-none", "5");
	cr_assert_eq(r.status, 1, "no such account: %d", r.status);
	assert_has(r.err, "no account acc-none");
	h_run_free(&r);

	r = BANK("balance", "acc-none");
	cr_assert_eq(r.status, 1);
	h_run_free(&r);

	r = BANK("deposit", "acc-1", "-5");
	cr_assert_eq(r.status, 2, "a bad amount is a usage error: %d",
		     r.status);
	h_run_free(&r);

	r = BANK("frobnicate");
	cr_assert_eq(r.status, 2);
	h_run_free(&r);
}

Test(example, snapshots_are_taken_past_the_threshold_and_used)
{
	cim_snapshot snap = {0};
	cim_error err;
	h_run r;

	BANK_OK("open", "acc-s", "sam");
	cr_assert_eq(cim_snapshot_get(H.client, "account", "acc-s", &snap,
				      &err),
		     CIM_ERR_NOT_FOUND, "no snapshot after one event");
	for (int i = 0; i < 11; i++)
		BANK_OK("deposit", "acc-s", "10");

	/* 12 events, threshold 10: a snapshot at version 10 or later. */
	cr_assert_eq(cim_snapshot_get(H.client, "account", "acc-s", &snap,
				      &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_geq(snap.version, 10);
	cr_assert_leq(snap.version, 12);
	cr_assert_not_null(strstr(snap.state_json, "\"balance\""), "%s",
			   snap.state_json);

	r = BANK("balance", "acc-s");
	cr_assert_eq(r.status, 0, "%s", r.err);
	assert_has(r.out, "balance 110, version 12");
	{
		char want[96];

		snprintf(want, sizeof(want),
			 "loaded from the snapshot at version %llu and %llu "
			 "event(s)",
			 (unsigned long long)snap.version,
			 (unsigned long long)(12 - snap.version));
		assert_has(r.out, want);
	}
	h_run_free(&r);
	cim_snapshot_clear(&snap);
}

Test(example, concurrent_withdrawals_retry_and_never_overdraw)
{
	const char *const args[] = {"withdraw", "acc-c", "10", NULL};
	pid_t pids[6];
	int ok = 0, refused = 0;
	h_run r;

	BANK_OK("open", "acc-c", "cat");
	BANK_OK("deposit", "acc-c", "40");
	/* Six writers at once for four withdrawals' worth of money: the
	 * losers of each race get wrong_expected_version, decide again on
	 * the new balance, and the last two are refused. */
	for (int i = 0; i < 6; i++) {
		char tag[16];

		snprintf(tag, sizeof(tag), "w%d", i);
		pids[i] = spawn_bank(tag, args);
	}
	for (int i = 0; i < 6; i++) {
		char tag[16];

		snprintf(tag, sizeof(tag), "w%d", i);
		r = h_finish(pids[i], tag, BANK_MS);
		cr_assert(r.status == 0 || r.status == 1, "writer %d: exit %d %s",
			  i, r.status, r.err);
		if (r.status == 0)
			ok++;
		else {
			refused++;
			assert_has(r.err, "refused");
		}
		h_run_free(&r);
	}
	cr_assert_eq(ok, 4, "%d withdrawals of 10 from 40 went through", ok);
	cr_assert_eq(refused, 2);
	r = BANK("balance", "acc-c");
	cr_assert_eq(r.status, 0, "%s", r.err);
	assert_has(r.out, "balance 0, version 6");
	h_run_free(&r);
}

Test(example, the_projection_totals_resumes_drops_repeats_and_rebuilds)
{
	char state[300];
	cim_error err;
	h_run r;

	snprintf(state, sizeof(state), "%s/bank-state.json", H.nats.dir);
	BANK_OK("open", "acc-a", "ann");
	BANK_OK("deposit", "acc-a", "100");
	BANK_OK("withdraw", "acc-a", "25");
	BANK_OK("open", "acc-b", "ben");
	BANK_OK("deposit", "acc-b", "7");
	/* Not an account: outside the projection's pattern. */
	cim_append_result_destroy(
		h_append1("order", "o-1", CIM_EXPECT_ANY, "OrderPlaced", "{}"));

	r = BANK("project", "--idle-ms", "1000");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "2 account(s), total balance 82 (5 event(s) handled");
	assert_has(r.out, "acc-a v3 MoneyWithdrawn -25");
	h_run_free(&r);

	/* With a state file: the first run starts from the first event. */
	r = BANK("project", "--name", "kept", "--state", state, "--idle-ms",
		 "1000");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "starting from the first event");
	assert_has(r.out, "2 account(s), total balance 82 (5 event(s) handled");
	h_run_free(&r);

	/* The next run resumes at the checkpoint: only what is new. */
	BANK_OK("deposit", "acc-b", "3");
	r = BANK("project", "--name", "kept", "--state", state, "--idle-ms",
		 "1000");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "resuming after stream sequence");
	assert_has(r.out, "2 account(s), total balance 85 (1 event(s) handled, "
			  "0 repeat(s) ignored");
	h_run_free(&r);

	/* A checkpoint lost or behind (a crash right after the state was
	 * saved): everything comes again, and every repeat is dropped by its
	 * version, so the total stays right. */
	cr_assert_eq(cim_projection_reset(H.client, "kept", NULL, &err),
		     CIM_ERR_OK, "%s", err.message);
	r = BANK("project", "--name", "kept", "--state", state, "--idle-ms",
		 "1000");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "2 account(s), total balance 85 (0 event(s) handled, "
			  "6 repeat(s) ignored");
	assert_has(r.out, "seen already, ignored");
	h_run_free(&r);

	/* --rebuild: from nothing again, same total. */
	r = BANK("project", "--name", "kept", "--state", state, "--rebuild",
		 "--idle-ms", "1000");
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "2 account(s), total balance 85 (6 event(s) handled, "
			  "0 repeat(s) ignored");
	h_run_free(&r);
}

Test(example, the_projection_stops_on_sigterm_with_a_summary)
{
	h_run r;
	pid_t pid;

	BANK_OK("open", "acc-t", "tim");
	BANK_OK("deposit", "acc-t", "9");
	pid = spawn_bank("proj", (const char *const[]){"project", NULL});
	h_sleep_ms(1500);
	cr_assert_eq(h_wait_exit(pid, 0), -2, "project follows until stopped");
	kill(pid, SIGTERM);
	r = h_finish(pid, "proj", BANK_MS);
	cr_assert_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	assert_has(r.out, "1 account(s), total balance 9");
	h_run_free(&r);
}
