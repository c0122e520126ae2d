/*
 * test_cluster.c: a 3-node JetStream cluster on loopback, the stream and
 * buckets with 3 replicas; one node killed with SIGKILL under a 16-client
 * append load (first the stream's leader), appends go on while it is
 * down, it comes back, and the checker finds nothing acknowledged lost.
 *
 * The daemon is given one node's URL and finds the others through the
 * cluster (nats.c learns every server's client URL from the one it
 * connects to); the load's clients are spread over the three nodes.
 * Whether the daemon and the client library take a comma-separated list
 * of URLs is the test url_list_of_the_three_nodes.
 *
 * CIM_FAULT_SCALE=full: three kills, of three different nodes; otherwise one.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/cluster.h"
#include "../support/harness.h"
#include "load.h"

#define CLIENT_TIMEOUT_MS 2000
#define PUBLISH_TIMEOUT_MS "1000"

static hc_cluster C;
static bool passed;

static void cluster_init(void)
{
	natsOptions *o = NULL;
	natsStatus s;
	const char *servers[HC_MAX_NODES];

	memset(&H, 0, sizeof(H));
	H.daemon = -1;
	H.nats.pid = -1;
	passed = false;
	if (hc_start(&C, 3, NULL) != 0) {
		hc_dump_logs(&C, 16384);
		hc_stop(&C);
		cr_assert_fail("the 3-node cluster did not start");
	}
	hc_as_nats(&C, 0, &H.nats);
	for (int i = 0; i < C.n; i++)
		servers[i] = C.node[i].url;
	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, servers, C.n);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 100);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, 600);
	if (s == NATS_OK)
		s = natsConnection_Connect(&H.nc, o);
	natsOptions_Destroy(o);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&H.js, H.nc, NULL);
	if (s != NATS_OK) {
		hc_stop(&C);
		cr_assert_fail("cannot connect to the cluster: %s", natsStatus_GetText(s));
	}
}

static void cluster_fini(void)
{
	if (!passed) {
		char kept[300] = "";
		hc_dump_logs(&C, 32768);
		if (fl_keep_logs(C.dir, "cluster", kept, sizeof(kept)) == 0)
			fprintf(stderr, "[cluster] logs kept in %s\n", kept);
	}
	cim_client_destroy(H.client);
	H.client = NULL;
	if (H.daemon > 0)
		h_daemon_stop(H.daemon);
	H.daemon = -1;
	jsCtx_Destroy(H.js);
	H.js = NULL;
	natsConnection_Destroy(H.nc);
	H.nc = NULL;
	hc_stop(&C);
	memset(&H.nats, 0, sizeof(H.nats));
}

TestSuite(fault_cluster, .init = cluster_init, .fini = cluster_fini, .timeout = 900);

/* The stream's info; asserts it can be had. */
static jsStreamInfo *stream_info(const char *name)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s = NATS_ERR;

	/* after a kill the stream may be between leaders for a moment */
	for (int i = 0; i < 50; i++) {
		s = js_GetStreamInfo(&si, H.js, name, NULL, &je);
		if (s == NATS_OK)
			break;
		h_sleep_ms(200);
	}
	cr_assert_eq(s, NATS_OK, "stream info of %s: %s (js error %d)", name,
		     natsStatus_GetText(s), (int)je);
	return si;
}

/* Waits until every replica of the stream is current and online. */
static bool replicas_current(const char *name, int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;

	do {
		jsStreamInfo *si = NULL;
		jsErrCode je = 0;
		bool ok = false;
		if (js_GetStreamInfo(&si, H.js, name, NULL, &je) == NATS_OK && si->Cluster &&
		    si->Cluster->Leader && si->Cluster->ReplicasLen == 2) {
			ok = true;
			for (int i = 0; i < si->Cluster->ReplicasLen; i++)
				ok = ok && si->Cluster->Replicas[i]->Current &&
				     !si->Cluster->Replicas[i]->Offline;
		}
		jsStreamInfo_Destroy(si);
		if (ok)
			return true;
		h_sleep_ms(250);
	} while (h_now_ms() < end);
	return false;
}

static void assert_replicas(const char *name)
{
	jsStreamInfo *si = stream_info(name);

	cr_assert_eq(si->Config->Replicas, 3, "%s has %d replica(s), not 3", name,
		     (int)si->Config->Replicas);
	cr_assert_not_null(si->Cluster, "%s: no cluster information", name);
	cr_assert_not_null(si->Cluster->Leader, "%s: no leader", name);
	cr_assert_eq(si->Cluster->ReplicasLen, 2, "%s: %d peer(s) beside the leader",
		     name, si->Cluster->ReplicasLen);
	jsStreamInfo_Destroy(si);
}

Test(fault_cluster, one_node_killed_under_load)
{
	int rounds = fl_scale(1, 3);
	unsigned seed = (unsigned)h_now_ms() ^ (unsigned)getpid();
	bool killed[HC_MAX_NODES] = {false};
	char why[512] = "";
	fl_figures f;
	fl_stats st;
	fl_load *l;
	int64_t t0, t_load;
	uint64_t during[3] = {0};
	int victims[3] = {-1, -1, -1};
	int64_t pauses[3] = {0};
	int bad;

	srand(seed);
	setenv("CIM_EVENTS_REPLICAS", "3", 1);
	setenv("CIM_EVENTS_PUBLISH_TIMEOUT_MS", PUBLISH_TIMEOUT_MS, 1);
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0, "the daemon did not start on the cluster");

	assert_replicas(H_STREAM);
	assert_replicas("KV_CIM-HEADS");
	assert_replicas("KV_CIM-SNAPSHOTS");
	assert_replicas("KV_CIM-CHECKPOINTS");

	fl_options o = {
		.url = C.urls, /* thread i on node i mod 3 */
		.threads = 16,
		.timeout_ms = CLIENT_TIMEOUT_MS,
		.max_ms = 600000,
		.max_appends = 5000000,
		.seed = seed,
	};
	t0 = h_now_ms();
	l = fl_start(&o, why, sizeof(why));
	cr_assert_not_null(l, "%s", why);
	printf("[cluster] seed %u, %d kill(s), 3 nodes, R3, 16 clients over the "
	       "nodes, client timeout %d ms, publish_timeout_ms %s\n", seed, rounds,
	       CLIENT_TIMEOUT_MS, PUBLISH_TIMEOUT_MS);
	fflush(stdout);
	cr_assert_geq(fl_wait_acks(l, 200, 30000), 200, "the load did not get going");

	for (int r = 0; r < rounds && r < 3; r++) {
		jsStreamInfo *si = stream_info(H_STREAM);
		int leader = hc_node_index(&C, si->Cluster ? si->Cluster->Leader : NULL);
		int v = -1;
		jsStreamInfo_Destroy(si);
		cr_assert_geq(leader, 0, "round %d: the stream's leader is not a node", r + 1);
		/* the leader the first time, then nodes not killed yet */
		if (!killed[leader])
			v = leader;
		for (int i = 0; v < 0 && i < C.n; i++)
			if (!killed[i])
				v = i;
		victims[r] = v;
		killed[v] = true;

		h_sleep_ms(200 + rand() % 600);
		int64_t t_kill = h_now_ms();
		hc_kill(&C, v);
		/* appends go on with a node down */
		int64_t end = h_now_ms() + 30000;
		while (fl_acked_since(l, t_kill) < 200 && h_now_ms() < end)
			h_sleep_ms(100);
		h_sleep_ms(1000);
		during[r] = fl_acked_since(l, t_kill);
		int64_t t_back = h_now_ms();
		fprintf(stderr, "[cluster] round %d: %s (%s) killed; %llu appends acked in "
			"the %lld ms it was down\n", r + 1, C.node[v].name,
			v == leader ? "the stream leader" : "a follower",
			(unsigned long long)during[r], (long long)(t_back - t_kill));
		int64_t gap_at = 0, gap = fl_longest_ack_gap(l, t_kill, t_back, &gap_at);
		pauses[r] = gap;
		fprintf(stderr, "[cluster] round %d: appends paused for %lld ms, from %lld ms "
			"after the kill\n", r + 1, (long long)gap, (long long)(gap_at - t_kill));
		cr_assert_geq(during[r], 200, "round %d: only %llu appends acknowledged in "
			      "the 30 s after %s was killed", r + 1,
			      (unsigned long long)during[r], C.node[v].name);
		cr_assert_eq(hc_restart(&C, v), 0, "round %d: %s did not start again",
			     r + 1, C.node[v].name);
		cr_assert(replicas_current(H_STREAM, 60000), "round %d: the stream's "
			  "replicas are not all current 60 s after %s came back", r + 1,
			  C.node[v].name);
		/* one node dies at a time: a node killed a moment after another
		 * came back can leave nats-server 2.9.10 with no stream leader
		 * for longer than the test waits (seen: "has NO quorum,
		 * stalled" 20 s on), which is two faults, not one */
		h_sleep_ms(5000);
		fl_wait_acks(l, 200, 20000);
	}
	fl_stop(l);
	fl_join(l);
	t_load = h_now_ms() - t0;
	fl_get_stats(l, &st);

	int64_t tc = h_now_ms();
	bad = fl_check(l, NULL, &f, stderr);
	tc = h_now_ms() - tc;

	printf("[cluster] kills survived: %d\n", rounds);
	for (int r = 0; r < rounds && r < 3; r++)
		printf("[cluster] round %d: %s killed, %llu appends acked while it was down, "
		       "longest pause %lld ms\n", r + 1, C.node[victims[r]].name,
		       (unsigned long long)during[r], (long long)pauses[r]);
	printf("[cluster] load: %lld ms, %llu attempts, %llu acked, %llu refused, "
	       "%llu unanswered, max latency %lld ms\n", (long long)t_load,
	       (unsigned long long)st.attempts, (unsigned long long)st.acked,
	       (unsigned long long)st.refused, (unsigned long long)st.unanswered,
	       (long long)st.max_latency_ms);
	printf("[cluster] results by code:");
	for (int k = 0; k < CIM_ERR__COUNT; k++)
		if (st.by_code[k])
			printf(" %s %llu", cim_err_name((cim_err)k), (unsigned long long)st.by_code[k]);
	printf("\n");
	for (int k = 1; k < CIM_ERR__COUNT; k++)
		if (st.sample[k][0])
			printf("[cluster] first %s: %s\n", cim_err_name((cim_err)k), st.sample[k]);
	printf("[cluster] check: %lld ms\n", (long long)tc);
	fl_print_figures(stdout, "cluster", &f);
	fflush(stdout);

	cr_assert_eq(bad, 0, "the checker found %d violation(s) (see above)", bad);
	cr_assert_gt(f.acked, 0);
	fl_free(l);
	passed = true;
}

/* The daemon and the client library given every node's URL, as a
 * comma-separated list (the way the operator names a cluster). */
Test(fault_cluster, url_list_of_the_three_nodes)
{
	cim_client *c = NULL;
	cim_error err = {0};
	cim_err rc;

	rc = cim_client_connect(&c, C.urls, NULL, &err);
	cr_expect_eq(rc, CIM_ERR_OK, "cim_client_connect(\"%s\"): %s: %s", C.urls,
		     cim_err_name(rc), err.message);
	cim_client_destroy(c);

	setenv("CIM_EVENTS_REPLICAS", "3", 1);
	H.daemon = h_daemon_start(&H.nats, "--nats-url", C.urls, NULL);
	cr_assert_gt(H.daemon, 0, "cim-eventsd --nats-url %s did not come up", C.urls);
	cr_assert_eq(rc, CIM_ERR_OK);
	passed = true;
}
