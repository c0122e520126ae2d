/*
 * crypt.c: the cost of encrypted aggregates (issue 15), measured in the
 * same run against the same daemon: aggregates of type benchenc (named
 * by encrypt_types) against aggregates of type benchplain, the same
 * requests, the plain figure as the floor of the encrypted one:
 *
 *   - appends, 1 in flight, to aggregates that have their data key (plain
 *     and encrypted requests alternate, so both meet the same machine);
 *   - appends, 64 in flight (the engine, a run of each, twice, alternating);
 *   - the first append of a new aggregate (which makes its data key);
 *   - get of 1,000 events, all pages (alternating);
 *   - a replay through the client library (cim_replay) of the same number
 *     of events of each type: the encrypted one gets its data from the
 *     daemon's decrypt operation, in batches.
 *
 * crypt_setup gives the daemon it starts a master key and encrypt_types
 * (through its environment, before main.c starts it); with --url the
 * daemon must have encrypt_types naming benchenc, or this part is skipped.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cim/events.h"
#include "crypt.h"
#include "keys.h"

#define REQ_MS 10000
#define AGGS 100

int crypt_setup(const char *dir)
{
	char path[400], err[300];
	cim_key *k = cim_key_alloc(1);

	snprintf(path, sizeof path, "%s/master.key", dir);
	if (k == NULL || cim_key_generate(k) != 0 ||
	    cim_keyfile_write(path, k->b, err, sizeof err) != 0) {
		fprintf(stderr, "bench: cannot make a master key: %s\n", k ? err : "no memory");
		cim_key_free(k, 1);
		return -1;
	}
	cim_key_free(k, 1);
	setenv("CIM_EVENTS_MASTER_KEY", path, 1);
	setenv("CIM_EVENTS_ENCRYPT_TYPES", "benchenc", 1);
	return 0;
}

static const char *const TYPES[2] = {"benchplain", "benchenc"};

/* n rounds of one request of each type in turn (k-th to id k % AGGS). */
static void alternate(lat out[2], natsConnection *nc, const char *op, const char *idfmt,
		      const char *body, int warm, int n)
{
	samples s[2];
	long errors[2] = {0, 0};
	char subj[256], id[96];

	samples_init(&s[0], (size_t)n);
	samples_init(&s[1], (size_t)n);
	for (int i = 0; i < warm + n && !g_stop; i++)
		for (int t = 0; t < 2; t++) {
			int w = (i + t) & 1; /* which goes first alternates too */
			snprintf(id, sizeof id, idfmt, i % AGGS, C.tag);
			snprintf(subj, sizeof subj, "%s.%s.%s.%s", C.prefix, op, TYPES[w], id);
			int64_t t0 = now_ns();
			natsMsg *m = NULL;
			if (cim_req(nc, subj, body, (int)strlen(body), REQ_MS, &m) != 0)
				errors[w]++;
			else if (i >= warm)
				samples_add(&s[w], (double)(now_ns() - t0) / 1e3);
			natsMsg_Destroy(m);
		}
	for (int t = 0; t < 2; t++) {
		lat_from(&out[t], &s[t], errors[t]);
		samples_free(&s[t]);
	}
}

struct tsubj {
	const char *type;
};

static void tsubj_make(void *ctx, long k, char *buf, size_t n)
{
	const struct tsubj *t = ctx;
	snprintf(buf, n, "%s.append.%s.c-%ld-%s", C.prefix, t->type, k % AGGS, C.tag);
}

/* Reads every page of type/id; the walk's time, or NAN. */
static double walk(natsConnection *nc, const char *type, const char *id, long expect)
{
	char subj[256], body[64];
	long from = 1, seen = 0;
	int64_t t0 = now_ns();

	snprintf(subj, sizeof subj, "%s.get.%s.%s", C.prefix, type, id);
	for (int pages = 0; pages < 100; pages++) {
		natsMsg *m = NULL;
		snprintf(body, sizeof body, "{\"from_version\":%ld}", from);
		if (cim_req(nc, subj, body, (int)strlen(body), REQ_MS, &m) != 0) {
			natsMsg_Destroy(m);
			return NAN;
		}
		json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0,
				       NULL);
		natsMsg_Destroy(m);
		seen += (long)json_array_size(json_object_get(j, "events"));
		json_t *next = json_object_get(j, "next_from_version");
		from = json_is_integer(next) ? (long)json_integer_value(next) : 0;
		json_decref(j);
		if (from == 0)
			break;
	}
	return seen == expect ? (double)(now_ns() - t0) / 1e3 : NAN;
}

struct count {
	long n, encrypted;
};

static int counted(void *ctx, const cim_event *ev)
{
	struct count *c = ctx;
	c->n++;
	c->encrypted += ev->encrypted;
	return 0;
}

/* A replay of every event of type through the library: events/s, or NAN. */
static double replay_rate(cim_client *cl, const char *type, long expect)
{
	char pattern[96];
	cim_subscribe_options so = {.pattern = pattern, .stream = C.stream};
	struct count c = {0, 0};
	cim_error err;

	snprintf(pattern, sizeof pattern, "events.%s.>", type);
	double t0 = now_s();
	if (cim_replay(cl, &so, counted, NULL, &c, &err) != CIM_ERR_OK) {
		fprintf(stderr, "bench: replay of %s: %s\n", type, err.message);
		return NAN;
	}
	double s = now_s() - t0;
	if (c.n != expect || (strcmp(type, "benchenc") == 0) != (c.encrypted == expect)) {
		fprintf(stderr, "bench: replay of %s: %ld events (%ld decrypted), want %ld\n",
			type, c.n, c.encrypted, expect);
		return NAN;
	}
	return (double)c.n / s;
}

static bool encrypting(natsConnection *nc)
{
	json_t *info = daemon_info(nc, C.prefix, 5000);
	const char *types = json_string_value(
		json_object_get(json_object_get(info, "settings"), "encrypt_types"));
	bool on = json_is_true(json_object_get(json_object_get(info, "encryption"), "master_key")) &&
		  types != NULL && (strcmp(types, "*") == 0 || strstr(types, "benchenc") != NULL);
	json_decref(info);
	return on;
}

void run_crypt(crypt_res *k, json_t *out)
{
	natsConnection *nc = connect_nats(C.url, true);
	char *b1 = append_body(1), *b100 = append_body(100), id[96], subj[256];
	json_t *o = json_object();
	cim_client *cl = NULL;
	cim_error err;
	long bad = 0;

	memset(k, 0, sizeof *k);
	if (nc == NULL || !encrypting(nc)) {
		printf("encryption: skipped (the daemon does not encrypt benchenc)\n");
		json_object_set_new(out, "encryption", json_pack("{sb}", "skipped", 1));
		goto out;
	}
	k->ran = true;
	printf("encryption: benchenc (encrypted) against benchplain, the same requests...\n");
	fflush(stdout);

	/* the first append of a new aggregate makes its data key */
	alternate(k->first, nc, "append", "n-%d-%s", b1, 0, AGGS);
	printf("  first append of a new aggregate p50: plain %.1f us, encrypted %.1f us\n",
	       k->first[0].p50, k->first[1].p50);
	for (int i = 0; i < AGGS; i++)
		for (int t = 0; t < 2; t++) {
			snprintf(subj, sizeof subj, "%s.append.%s.c-%d-%s", C.prefix, TYPES[t], i,
				 C.tag);
			bad += cim_req(nc, subj, b1, (int)strlen(b1), REQ_MS, NULL) != 0;
		}
	alternate(k->append1, nc, "append", "c-%d-%s", b1, C.quick ? 100 : 300,
		  C.quick ? 1000 : 4000);
	printf("  append, 1 in flight p50: plain %.1f us, encrypted %.1f us (p99 %.1f / %.1f)\n",
	       k->append1[0].p50, k->append1[1].p50, k->append1[0].p99, k->append1[1].p99);

	for (int round = 0; round < 2 && !g_stop; round++)
		for (int t = 0; t < 2; t++) {
			int w = (round + t) & 1;
			struct tsubj ts = {TYPES[w]};
			engine_run er = {.nc = nc, .inflight = 64,
					 .max_requests = C.quick ? 100000 : 500000,
					 .seconds = C.quick ? 1.0 : 4.0, .stall_s = 15,
					 .subject = tsubj_make, .subject_ctx = &ts, .body = b1,
					 .body_len = (int)strlen(b1), .events_per_request = 1,
					 .quiet = true};
			rate r;
			engine(&er, &r);
			k->tp64[w].per_s += r.per_s / 2;
			k->tp64[w].valid = r.valid && (round == 0 || k->tp64[w].valid);
			k->tp64[w].ran = true;
		}
	printf("  append ev/s, 64 in flight: plain %.0f, encrypted %.0f\n", k->tp64[0].per_s,
	       k->tp64[1].per_s);

	/* get of 1,000 events: one aggregate of each */
	for (int t = 0; t < 2; t++) {
		snprintf(subj, sizeof subj, "%s.append.%s.g1k-%s", C.prefix, TYPES[t], C.tag);
		for (int i = 0; i < 10; i++)
			bad += cim_req(nc, subj, b100, (int)strlen(b100), REQ_MS, NULL) != 0;
	}
	{
		samples s[2];
		long errors[2] = {0, 0};
		int n = C.quick ? 20 : 150;
		samples_init(&s[0], (size_t)n);
		samples_init(&s[1], (size_t)n);
		snprintf(id, sizeof id, "g1k-%s", C.tag);
		for (int i = 0; i < n + 5 && !g_stop; i++)
			for (int t = 0; t < 2; t++) {
				int w = (i + t) & 1;
				double us = walk(nc, TYPES[w], id, 1000);
				if (isnan(us))
					errors[w]++;
				else if (i >= 5)
					samples_add(&s[w], us);
			}
		for (int t = 0; t < 2; t++) {
			lat_from(&k->get1k[t], &s[t], errors[t]);
			samples_free(&s[t]);
		}
	}
	printf("  get 1,000 events p50: plain %.1f us, encrypted %.1f us\n", k->get1k[0].p50,
	       k->get1k[1].p50);

	/* replays through the library: every event of each type so far (how
	 * many: a bare pull counts them) */
	long each[2] = {-1, -1};
	for (int t = 0; t < 2; t++) {
		char filter[96];
		jsCtx *js = NULL;
		double ms;
		snprintf(filter, sizeof filter, "events.%s.>", TYPES[t]);
		if (natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
			each[t] = bare_pull(js, C.stream, filter, false, &ms);
		jsCtx_Destroy(js);
	}
	k->replay[0] = k->replay[1] = NAN;
	if (each[0] > 0 && each[1] > 0 && cim_client_connect(&cl, C.url, NULL, &err) == CIM_ERR_OK) {
		k->replay[0] = k->replay[1] = 0;
		for (int round = 0; round < 2 && !g_stop; round++)
			for (int t = 0; t < 2; t++) {
				int w = (round + t) & 1;
				k->replay[w] += replay_rate(cl, TYPES[w], each[w]) / 2;
			}
		k->replay_events = each[1];
		printf("  replay through the library: plain %.0f ev/s (%ld events), encrypted "
		       "%.0f ev/s (%ld events)\n", k->replay[0], each[0], k->replay[1], each[1]);
	} else {
		printf("  replay: skipped\n");
	}
	if (bad)
		printf("  %ld set-up requests failed\n", bad);
	json_object_set_new(o, "first_append", json_pack("{so so}", "plain",
							 lat_json(&k->first[0]), "encrypted",
							 lat_json(&k->first[1])));
	json_object_set_new(o, "append_1_in_flight",
			    json_pack("{so so}", "plain", lat_json(&k->append1[0]), "encrypted",
				      lat_json(&k->append1[1])));
	json_object_set_new(o, "append_64_in_flight_ev_s",
			    json_pack("{sf sf}", "plain", k->tp64[0].per_s, "encrypted",
				      k->tp64[1].per_s));
	json_object_set_new(o, "get_1000",
			    json_pack("{so so}", "plain", lat_json(&k->get1k[0]), "encrypted",
				      lat_json(&k->get1k[1])));
	json_object_set_new(o, "replay_ev_s",
			    json_pack("{sI so so}", "events", (json_int_t)k->replay_events, "plain",
				      isnan(k->replay[0]) ? json_null() : json_real(k->replay[0]),
				      "encrypted",
				      isnan(k->replay[1]) ? json_null() : json_real(k->replay[1])));
	json_object_set_new(out, "encryption", o);
	o = NULL;
out:
	json_decref(o);
	cim_client_destroy(cl);
	free(b1);
	free(b100);
	natsConnection_Destroy(nc);
}

static bool ok(const lat *l) { return l->ran && l->errors == 0 && l->n > 0; }

void crypt_rows(const crypt_res *k)
{
	if (!k->ran)
		return;
	bench_row("encrypted: first append of an aggregate p50", k->first[1].p50, "us",
		  k->first[0].p50, "the same, plain", ok(&k->first[0]) && ok(&k->first[1]));
	bench_row("encrypted: append p50, 1 in flight", k->append1[1].p50, "us",
		  k->append1[0].p50, "the same, plain", ok(&k->append1[0]) && ok(&k->append1[1]));
	bench_row("encrypted: append p99, 1 in flight", k->append1[1].p99, "us",
		  k->append1[0].p99, "the same, plain", ok(&k->append1[0]) && ok(&k->append1[1]));
	bench_row("encrypted: append ev/s, 64 in flight", k->tp64[1].per_s, "ev/s",
		  k->tp64[0].per_s, "the same, plain", k->tp64[0].valid && k->tp64[1].valid);
	bench_row("encrypted: get 1,000 events p50", k->get1k[1].p50, "us", k->get1k[0].p50,
		  "the same, plain", ok(&k->get1k[0]) && ok(&k->get1k[1]));
	bench_row("encrypted: replay through the library", k->replay[1], "ev/s", k->replay[0],
		  "the same, plain", isfinite(k->replay[0]) && isfinite(k->replay[1]));
}
