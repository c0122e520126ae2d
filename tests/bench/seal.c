/*
 * seal.c: what sealing costs (issue 14), as a same-run ratio.
 *
 * The same appends against the same nats-server, with the daemon started
 * without and with a signing key (CIM_EVENTS_SIGNING_KEY, a key made for
 * the run), twice each in turn (once with --quick) so that drift in a
 * shared machine falls on both: single-event appends one at a time
 * (latency) and 64 in flight over 1,000 aggregates (throughput). The
 * floor of each figure is the same figure without a key; beside them,
 * one Ed25519 signature alone (cim_seal_sign in this process), the work
 * a seal adds to each append. Needs the run's own daemon (not --url).
 * Results under "seal" in the JSON.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cid.h"
#include "keys.h"
#include "seal.h"

#define SEAL_AGGS 1000

static void subject_of(void *ctx, long k, char *buf, size_t n)
{
	snprintf(buf, n, "%s.append.bench.%s-%ld", C.prefix, (const char *)ctx,
		 k % SEAL_AGGS);
}

/* Single-event appends one at a time: p50 in us (NAN on errors). */
static double one_at_a_time(natsConnection *nc, const char *ids, const char *body, int n)
{
	samples s;
	char subj[256];
	long errors = 0;
	double p50;

	samples_init(&s, (size_t)n);
	for (int i = 0; i < n + 50 && !g_stop; i++) {
		int64_t t = now_ns();
		subject_of((void *)ids, i, subj, sizeof subj);
		if (cim_req(nc, subj, body, (int)strlen(body), 10000, NULL) != 0)
			errors++;
		else if (i >= 50)
			samples_add(&s, (double)(now_ns() - t) / 1e3);
	}
	p50 = errors ? NAN : samples_q(&s, 0.5);
	samples_free(&s);
	return p50;
}

/* The daemon again, with the key file or without; 0 or -1. */
static int restart(const char *key_path)
{
	if (key_path)
		setenv("CIM_EVENTS_SIGNING_KEY", key_path, 1);
	else
		unsetenv("CIM_EVENTS_SIGNING_KEY");
	daemon_stop(C.P);
	int rc = daemon_start(C.P, 60000, NULL);
	unsetenv("CIM_EVENTS_SIGNING_KEY");
	return rc;
}

static void print_row(const char *figure, double ours, const char *unit, double floor,
		      const char *floor_is)
{
	char r[32] = "-";

	if (isfinite(ours) && isfinite(floor) && floor > 0)
		snprintf(r, sizeof r, "%.2f", ours / floor);
	printf("  %-40s %10.1f %-6s %10.1f %7s  %s\n", figure, ours, unit, floor, r, floor_is);
}

void run_seal_cost(json_t *out)
{
	int rounds = C.quick ? 1 : 2, nlat = C.quick ? 300 : 2000;
	long cap = C.quick ? 5000 : 40000;
	char path[400], err[200], ids[64];
	uint8_t pk[CIM_KEY_BYTES];
	double sum_rate[2] = {0, 0}, p50[2] = {0, 0};
	int nrate[2] = {0, 0}, np50[2] = {0, 0};
	bool valid = true;
	json_t *o = json_object(), *runs = json_array();

	printf("\nsealing (signing_key): the same appends without and with a key\n");
	if (C.P == NULL) {
		printf("  skipped: --url runs a daemon this program cannot restart\n");
		json_object_set_new(out, "seal", json_pack("{s:b}", "skipped", 1));
		json_decref(o);
		json_decref(runs);
		return;
	}
	snprintf(path, sizeof path, "%s/seal.key", C.P->dir);
	if (cim_signing_key_generate(path, pk, err, sizeof err) != 0) {
		printf("  skipped: %s\n", err);
		json_decref(o);
		json_decref(runs);
		return;
	}
	char *b1 = append_body(1);
	for (int r = 0; r < rounds && !g_stop; r++)
		for (int keyed = 0; keyed < 2 && !g_stop; keyed++) {
			if (restart(keyed ? path : NULL) != 0) {
				valid = false;
				break;
			}
			natsConnection *nc = connect_nats(C.url, true);
			if (nc == NULL) {
				valid = false;
				break;
			}
			snprintf(ids, sizeof ids, "seal-%s-%d-%d", C.tag, r, keyed);
			double l = one_at_a_time(nc, ids, b1, nlat);
			rate tp;
			engine_run er = {
				.nc = nc,
				.inflight = 64,
				.max_requests = cap,
				.seconds = C.quick ? 2.0 : 8.0,
				.stall_s = 15,
				.subject = subject_of,
				.subject_ctx = ids,
				.body = b1,
				.body_len = (int)strlen(b1),
				.events_per_request = 1,
				.quiet = true,
			};
			engine(&er, &tp);
			natsConnection_Destroy(nc);
			printf("  round %d, %-10s append p50 %8.1f us, %8.0f appends/s%s\n", r + 1,
			       keyed ? "sealed" : "not sealed", l, tp.per_s,
			       tp.valid ? "" : " (INVALID)");
			json_array_append_new(runs, json_pack("{s:i s:b s:f s:o}", "round", r + 1,
							      "sealed", keyed, "p50_us",
							      isfinite(l) ? l : -1.0,
							      "throughput", rate_json(&tp)));
			if (tp.valid) {
				sum_rate[keyed] += tp.per_s;
				nrate[keyed]++;
			}
			if (isfinite(l)) {
				p50[keyed] += l;
				np50[keyed]++;
			}
		}
	free(b1);
	if (restart(NULL) != 0) /* as the sections after this one expect it */
		valid = false;

	/* one signature alone, in this process */
	cim_signing_key k;
	uint8_t seed[CIM_KEY_BYTES] = {1}, sig[CIM_SEAL_SIG_BYTES];
	cim_cid cid;
	int n = 2000;
	cim_signing_key_from_seed(&k, seed);
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, seed, sizeof seed);
	int64_t t0 = now_ns();
	for (int i = 0; i < n; i++) {
		cid.b[cid.len - 1] = (uint8_t)i;
		cim_seal_sign(&k, &cid, sig);
	}
	double sign_us = (double)(now_ns() - t0) / 1e3 / n;

	double r0 = nrate[0] ? sum_rate[0] / nrate[0] : NAN, r1 = nrate[1] ? sum_rate[1] / nrate[1] : NAN;
	double l0 = np50[0] ? p50[0] / np50[0] : NAN, l1 = np50[1] ? p50[1] / np50[1] : NAN;
	printf("  %-40s %10s %-6s %10s %7s  %s\n", "figure", "sealed", "unit", "floor", "ratio",
	       "floor is");
	print_row("appends/s, 64 in flight, single events", r1, "ev/s", r0, "the same, no key");
	print_row("append p50, one at a time", l1, "us", l0, "the same, no key");
	print_row("one Ed25519 seal alone (this process)", sign_us, "us", NAN, "");
	json_object_set_new(o, "valid", json_boolean(valid && nrate[0] && nrate[1]));
	json_object_set_new(o, "appends_per_s_sealed", json_real(r1));
	json_object_set_new(o, "appends_per_s_unsealed", json_real(r0));
	json_object_set_new(o, "throughput_ratio", json_real(r1 / r0));
	json_object_set_new(o, "p50_us_sealed", json_real(l1));
	json_object_set_new(o, "p50_us_unsealed", json_real(l0));
	json_object_set_new(o, "p50_ratio", json_real(l1 / l0));
	json_object_set_new(o, "sign_alone_us", json_real(sign_us));
	json_object_set_new(o, "runs", runs);
	json_object_set_new(out, "seal", o);
}
