/*
 * test_storage_full.c: storage limits.
 *
 *  - the server's limit: a nats-server whose jetstream { max_file_store }
 *    is 1 MB, the stream made by the daemon without a limit of its own.
 *    Under a 16-client load with events of varied sizes (so a batch's
 *    first event may not fit while a later, smaller one would), appends
 *    must fail with an error reply that says so (never a timeout, never
 *    success or wrong_expected_version for what was not stored),
 *    everything stored before stays intact (the checker, validate on
 *    every aggregate), a failed append leaves nothing behind (the stream
 *    holds exactly the acknowledged events), and once the limit is raised
 *    appends work again;
 *  - the stream's own limit (MaxBytes): nats-server 2.9.10 was seen to
 *    drop acknowledged events there, so the daemon refuses such a stream
 *    at start, with the reason.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/cluster.h"
#include "../support/harness.h"
#include "load.h"

#define CLIENT_TIMEOUT_MS 2000
#define PUBLISH_TIMEOUT_MS "1000"
#define FULL_REFUSALS 300
#define MAX_KINDS 12

/* ---- what the refusals said ------------------------------------------------- */

struct kind {
	int code;
	char message[256];
	uint64_t count;
};

/* The distinct (code, message) pairs of attempts that were not acked and
 * not wrong_expected_version, messages with digits blurred so one kind
 * counts once. Returns how many kinds. */
static int refusal_kinds(const fl_load *l, struct kind *k, int max, uint64_t *other)
{
	int n = 0;

	*other = 0;
	for (size_t i = 0; i < fl_attempt_count(l); i++) {
		const fl_attempt *a = fl_attempt_get(l, i);
		char msg[256];
		int j;

		if (a->code == CIM_ERR_OK || a->code == CIM_ERR_WRONG_EXPECTED_VERSION)
			continue;
		snprintf(msg, sizeof(msg), "%s", a->message ? a->message : "");
		for (char *p = msg; *p; p++)
			if (*p >= '0' && *p <= '9')
				*p = '#';
		for (j = 0; j < n; j++)
			if (k[j].code == a->code && strcmp(k[j].message, msg) == 0)
				break;
		if (j == n) {
			if (n == max) {
				(*other)++;
				continue;
			}
			k[n].code = a->code;
			snprintf(k[n].message, sizeof(k[n].message), "%s", msg);
			k[n].count = 0;
			n++;
		}
		k[j].count++;
	}
	return n;
}

/* Runs the load until FULL_REFUSALS appends were refused for storage (or
 * 90 s); returns the stopped load. */
static fl_load *load_until_full(const char *tag, unsigned seed)
{
	char why[512] = "";
	fl_options o = {
		.url = H.nats.url,
		.tag = tag,
		.threads = 16,
		.timeout_ms = CLIENT_TIMEOUT_MS,
		.max_ms = 120000,
		.max_appends = 200000,
		.pad_min = 100,
		.pad_max = 3000,
		.retry_percent = -1, /* a refused append is not retried */
		.seed = seed,
	};
	fl_load *l = fl_start(&o, why, sizeof(why));
	int64_t end = h_now_ms() + 90000;
	fl_stats st;

	cr_assert_not_null(l, "%s", why);
	for (;;) {
		fl_get_stats(l, &st);
		uint64_t refused = st.attempts - st.acked - st.by_code[CIM_ERR_WRONG_EXPECTED_VERSION];
		if (refused >= FULL_REFUSALS || !st.running || h_now_ms() > end)
			break;
		h_sleep_ms(100);
	}
	fl_stop(l);
	fl_join(l);
	return l;
}

/* Prints the refusals and asserts they are clear errors, never timeouts. */
static void assert_clear_refusals(const char *t, fl_load *l)
{
	struct kind k[MAX_KINDS];
	uint64_t other = 0, refused = 0;
	fl_stats st;
	int n = refusal_kinds(l, k, MAX_KINDS, &other);

	fl_get_stats(l, &st);
	printf("[%s] load: %llu attempts, %llu acked (%llu events), %llu "
	       "wrong_expected_version, %llu unanswered\n", t,
	       (unsigned long long)st.attempts, (unsigned long long)st.acked,
	       (unsigned long long)st.acked_events,
	       (unsigned long long)st.by_code[CIM_ERR_WRONG_EXPECTED_VERSION],
	       (unsigned long long)st.unanswered);
	for (int i = 0; i < n; i++) {
		printf("[%s] refused %llu time(s): %s: %s\n", t, (unsigned long long)k[i].count,
		       cim_err_name((cim_err)k[i].code), k[i].message);
		refused += k[i].count;
	}
	if (other)
		printf("[%s] refused %llu more time(s) with other messages\n", t,
		       (unsigned long long)other);
	fflush(stdout);
	cr_assert_gt(refused + other, 0, "[%s] no append was refused: the limit was "
		     "never reached", t);
	for (int i = 0; i < n; i++) {
		cr_expect(k[i].code != CIM_ERR_TIMEOUT && k[i].code != CIM_ERR_CONNECTION &&
			  k[i].code != CIM_ERR_NO_DAEMON && k[i].code != CIM_ERR_BAD_REPLY,
			  "[%s] %llu append(s) at the storage limit got no error reply: %s: %s",
			  t, (unsigned long long)k[i].count, cim_err_name((cim_err)k[i].code),
			  k[i].message);
		cr_expect(strstr(k[i].message, "maximum bytes") != NULL ||
			  strstr(k[i].message, "limit") != NULL ||
			  strstr(k[i].message, "insufficient") != NULL ||
			  strstr(k[i].message, "exceeded") != NULL,
			  "[%s] the error does not say that storage is full: %s: %s", t,
			  cim_err_name((cim_err)k[i].code), k[i].message);
	}
	cr_expect_eq(st.unanswered, 0, "[%s] %llu append(s) went unanswered at the "
		     "storage limit", t, (unsigned long long)st.unanswered);
}

/* The checker; the stream holds exactly the acknowledged events of the
 * load: a refused append left nothing behind. */
static void assert_intact(const char *t, fl_load *l)
{
	fl_figures f;
	int bad = fl_check(l, NULL, &f, stderr);

	fl_print_figures(stdout, t, &f);
	printf("[%s] the stream holds %llu events of the load's aggregates; %llu were "
	       "acknowledged\n", t, (unsigned long long)f.events_checked,
	       (unsigned long long)f.acked_events);
	if (bad != 0) {
		char kept[300] = "";
		fl_keep_logs(H.nats.dir, t, kept, sizeof(kept));
		printf("[%s] logs kept in %s\n", t, kept);
	}
	fflush(stdout);
	cr_expect_eq(bad, 0, "[%s] the checker found %d violation(s) (see above)", t, bad);
	cr_expect_eq(f.unanswered_present, 0, "[%s] %llu unanswered append(s) were stored",
		     t, (unsigned long long)f.unanswered_present);
	cr_expect_eq(f.events_checked, f.acked_events, "[%s] the stream holds %llu events "
		     "of the load's aggregates for %llu acknowledged", t,
		     (unsigned long long)f.events_checked, (unsigned long long)f.acked_events);
}

/* The stream's state, printed; returns its first sequence. */
static uint64_t print_stream_state(const char *t)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	uint64_t first;

	cr_assert_eq(js_GetStreamInfo(&si, H.js, H_STREAM, NULL, &je), NATS_OK);
	first = si->State.FirstSeq;
	printf("[%s] stream %s: first seq %llu, last seq %llu, %llu messages, %llu bytes "
	       "(MaxBytes %lld), %llu deleted\n", t, H_STREAM,
	       (unsigned long long)si->State.FirstSeq, (unsigned long long)si->State.LastSeq,
	       (unsigned long long)si->State.Msgs, (unsigned long long)si->State.Bytes,
	       (long long)si->Config->MaxBytes, (unsigned long long)si->State.NumDeleted);
	jsStreamInfo_Destroy(si);
	return first;
}

/* At the limit the daemon still answers reads: info, and a get and a
 * validate of an aggregate with events. */
static void assert_reads_served(const char *t, fl_load *l)
{
	const char *type = fl_aggregate_type(l);
	char *info = NULL;
	cim_error err = {0};
	cim_err rc = cim_info(H.client, &info, &err);

	cim_free(info);
	cr_expect_eq(rc, CIM_ERR_OK, "[%s] info at the storage limit: %s: %s", t,
		     cim_err_name(rc), err.message);
	for (int i = 0; i < fl_aggregate_count(l); i++) {
		const char *id = fl_aggregate_id(l, i);
		cim_event_page *p = NULL;
		cim_validation v;

		rc = cim_get(H.client, type, id, 1, 0, &p, &err);
		cr_expect_eq(rc, CIM_ERR_OK, "[%s] get %s/%s at the storage limit: %s: %s", t,
			     type, id, cim_err_name(rc), err.message);
		if (rc != CIM_ERR_OK)
			return;
		bool has = p->n_events > 0;
		cim_event_page_destroy(p);
		if (!has)
			continue;
		rc = cim_validate(H.client, type, id, &v, &err);
		cr_expect_eq(rc, CIM_ERR_OK, "[%s] validate %s/%s at the storage limit: %s: %s",
			     t, type, id, cim_err_name(rc), err.message);
		printf("[%s] at the limit: info, get and validate of %s/%s answered\n", t,
		       type, id);
		return;
	}
}

/* One more event on each of the load's first n aggregates with events,
 * at its head; each must link and validate. Returns how many. */
static uint64_t append_after(fl_load *l, int n)
{
	const char *type = fl_aggregate_type(l);
	uint64_t done = 0;

	for (int i = 0; i < fl_aggregate_count(l) && (int)done < n; i++) {
		const char *id = fl_aggregate_id(l, i);
		cim_head h;
		cim_validation v;
		cim_error err = {0};

		cr_assert_eq(cim_get_head(H.client, type, id, &h, &err), CIM_ERR_OK,
			     "head %s/%s: %s", type, id, err.message);
		if (h.version == 0)
			continue;
		cim_append_result *r = h_append1(type, id, (int64_t)h.version, "AfterRaise",
						 "{\"raised\": true}");
		cr_assert_eq(r->version, h.version + 1);
		cim_append_result_destroy(r);
		cr_assert_eq(cim_validate(H.client, type, id, &v, &err), CIM_ERR_OK, "%s",
			     err.message);
		cr_assert(v.valid, "%s/%s after the raise: %s at %llu: %s", type, id,
			  v.failure_reason, (unsigned long long)v.failure_version,
			  v.failure_detail);
		done++;
	}
	return done;
}

/* A second, short load that must go through (no storage refusals). */
static void assert_appends_work(const char *t, const char *tag, unsigned seed)
{
	char why[512] = "";
	fl_options o = {
		.url = H.nats.url,
		.tag = tag,
		.threads = 8,
		.timeout_ms = CLIENT_TIMEOUT_MS,
		.max_ms = 60000,
		.max_appends = 400,
		.seed = seed,
	};
	fl_load *l = fl_start(&o, why, sizeof(why));
	fl_figures f;
	fl_stats st;

	cr_assert_not_null(l, "%s", why);
	fl_join(l);
	fl_get_stats(l, &st);
	int bad = fl_check(l, NULL, &f, stderr);
	printf("[%s] after the raise: %llu attempts, %llu acked, %llu "
	       "wrong_expected_version, %llu other\n", t, (unsigned long long)st.attempts,
	       (unsigned long long)st.acked,
	       (unsigned long long)st.by_code[CIM_ERR_WRONG_EXPECTED_VERSION],
	       (unsigned long long)(st.attempts - st.acked -
				    st.by_code[CIM_ERR_WRONG_EXPECTED_VERSION]));
	for (int k = 1; k < CIM_ERR__COUNT; k++)
		if (st.sample[k][0] && k != CIM_ERR_WRONG_EXPECTED_VERSION)
			printf("[%s] after the raise, first %s: %s\n", t,
			       cim_err_name((cim_err)k), st.sample[k]);
	fflush(stdout);
	cr_expect_gt(st.acked, 0, "[%s] nothing acknowledged after the raise", t);
	cr_expect_eq(st.attempts - st.acked - st.by_code[CIM_ERR_WRONG_EXPECTED_VERSION], 0,
		     "[%s] appends still fail after the limit was raised", t);
	cr_expect_eq(bad, 0, "[%s] the checker found %d violation(s) after the raise", t, bad);
	fl_free(l);
}

TestSuite(fault_storage, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 600);

static void create_small_stream(int64_t max_bytes)
{
	const char *subjects[] = {"events.>"};
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s;

	jsStreamConfig_Init(&sc);
	sc.Name = H_STREAM;
	sc.Description = "cim-events: one message per event, DAG-CBOR blocks";
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Retention = js_LimitsPolicy;
	sc.Discard = js_DiscardNew;
	sc.Replicas = 1;
	sc.Duplicates = 120 * 1000000000LL;
	sc.AllowDirect = true;
	sc.DenyPurge = true;
	sc.MaxBytes = max_bytes;
	s = js_AddStream(&si, H.js, &sc, NULL, &je);
	cr_assert_eq(s, NATS_OK, "creating %s: %s (js error %d)", H_STREAM,
		     natsStatus_GetText(s), (int)je);
	jsStreamInfo_Destroy(si);
}

/* nats-server 2.9.10, at a stream's MaxBytes with discard new, refuses new
 * messages but was seen here to drop the stream's oldest ones too (the
 * first sequence moved from 1 to 3 with no delete asked for; reproduced
 * without the daemon). An event store cannot run on that: the daemon
 * refuses such a stream at start, naming the limit and what to use
 * instead (the server's max_file_store, tested below). */
Test(fault_storage, a_stream_with_max_bytes_is_refused_at_start)
{
	const char *daemon = getenv("CIM_TEST_DAEMON");
	cr_assert_not_null(daemon);
	create_small_stream(256 * 1024);
	const char *argv[] = {daemon, "--nats-url", H.nats.url, NULL};
	pid_t pid = h_spawn("limited", argv);
	h_run r = h_finish(pid, "limited", 20000);
	printf("[storage-stream] the daemon on a stream with MaxBytes: exit %d\n", r.status);
	cr_assert_eq(r.status, 1, "exit %d; stderr:\n%s", r.status, r.err);
	cr_assert(strstr(r.err, "has a max_bytes, max_msgs or max_msgs_per_subject limit") &&
		  strstr(r.err, "max_file_store"), "the reason is given:\n%s", r.err);
	h_run_free(&r);
	/* and the stream was left as it was */
	jsStreamInfo *si = NULL;
	cr_assert_eq(js_GetStreamInfo(&si, H.js, H_STREAM, NULL, NULL), NATS_OK);
	cr_assert_eq(si->Config->MaxBytes, 256 * 1024);
	cr_assert_eq(si->State.Msgs, 0);
	jsStreamInfo_Destroy(si);
}

/* ---- the server's limit --------------------------------------------------------- */

static hc_cluster S;

static void server_init(void)
{
	cim_error err = {0};

	memset(&H, 0, sizeof(H));
	H.daemon = -1;
	if (hc_start(&S, 1, "max_file_store: 1MB") != 0) {
		hc_dump_logs(&S, 16384);
		hc_stop(&S);
		cr_assert_fail("nats-server with max_file_store did not start");
	}
	hc_as_nats(&S, 0, &H.nats);
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, H.nats.url);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 100);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, 600);
	if (s == NATS_OK)
		s = natsConnection_Connect(&H.nc, o);
	natsOptions_Destroy(o);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&H.js, H.nc, NULL);
	cr_assert_eq(s, NATS_OK, "%s", natsStatus_GetText(s));
	cr_assert_eq(cim_client_connect(&H.client, H.nats.url, NULL, &err), CIM_ERR_OK,
		     "%s", err.message);
}

static void server_fini(void)
{
	cim_client_destroy(H.client);
	H.client = NULL;
	if (H.daemon > 0)
		h_daemon_stop(H.daemon);
	H.daemon = -1;
	jsCtx_Destroy(H.js);
	H.js = NULL;
	natsConnection_Destroy(H.nc);
	H.nc = NULL;
	hc_stop(&S);
	memset(&H.nats, 0, sizeof(H.nats));
}

TestSuite(fault_storage_server, .init = server_init, .fini = server_fini, .timeout = 600);

/* Whether an append to a fresh aggregate goes through within timeout_ms. */
static bool append_goes_through(int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;
	char id[64];
	int k = 0;

	do {
		cim_new_event ev = {.event_type = "Probe", .data_json = "{}"};
		cim_append_result *r = NULL;
		cim_error err = {0};

		snprintf(id, sizeof(id), "probe-%d", k++);
		if (cim_append(H.client, "probe", id, CIM_EXPECT_NO_STREAM, &ev, 1, &r,
			       &err) == CIM_ERR_OK) {
			cim_append_result_destroy(r);
			return true;
		}
		h_sleep_ms(250);
	} while (h_now_ms() < end);
	return false;
}

Test(fault_storage_server, server_max_file_store_reached)
{
	unsigned seed = (unsigned)h_now_ms() ^ (unsigned)getpid();
	fl_load *l;

	setenv("CIM_EVENTS_PUBLISH_TIMEOUT_MS", PUBLISH_TIMEOUT_MS, 1);
	H.daemon = h_daemon_start(&H.nats, NULL);
	if (H.daemon <= 0)
		hc_dump_logs(&S, 16384);
	cr_assert_gt(H.daemon, 0, "the daemon did not start");
	printf("[storage-server] seed %u, jetstream max_file_store 1MB, 16 clients\n", seed);

	l = load_until_full("full2", seed);
	print_stream_state("storage-server");
	assert_clear_refusals("storage-server", l);
	assert_reads_served("storage-server", l);

	/* raise the server's limit: the node restarted with a larger one; the
	 * daemon reconnects by itself */
	hc_stop_node(&S, 0);
	cr_assert_eq(hc_set_extra_js(&S, 0, "max_file_store: 64MB"), 0);
	cr_assert_eq(hc_restart(&S, 0), 0, "nats-server did not start again");
	cr_assert_eq(hc_wait_jetstream(&S, 30000), 0);
	bool through = append_goes_through(30000);
	if (!through)
		hc_dump_logs(&S, 16384);
	cr_assert(through, "no append went through in the 30 s after the limit was raised");
	assert_intact("storage-server", l);
	uint64_t more = append_after(l, 5);
	printf("[storage-server] after raising max_file_store to 64MB: %llu aggregate(s) "
	       "appended to at their head and valid\n", (unsigned long long)more);
	assert_appends_work("storage-server", "full2b", seed + 1);
	fl_free(l);
}
