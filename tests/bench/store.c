/*
 * store.c: the daemon measured with raw NATS requests carrying prebuilt
 * JSON bodies (the client library's JSON work is not measured).
 *
 *   appends  1 in flight (latency), then N in flight (throughput)
 *   reads    get (every page), head, validate
 *   growth   append and get latency as the store grows to 10k, 100k and 1M
 *            events (1M aggregates of one event each), the daemon's memory
 *            per aggregate, and the time a fresh daemon needs to answer
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cid.h"
#include "event.h"

#define REQ_MS 10000
#define AGGS 1000

/* ---- subjects ---------------------------------------------------------------- */

typedef struct subj_ctx {
	const char *op;     /* append, get, ... */
	const char *id;     /* printf format with one %ld, or a fixed id */
	long mod;           /* k % mod into the format; 0: fixed id */
	long base;
	const char *prefix; /* NULL: the daemon's */
} subj_ctx;

static void subj_make(void *ctx, long k, char *buf, size_t n)
{
	const subj_ctx *s = ctx;
	char id[160];

	if (s->mod > 0)
		snprintf(id, sizeof id, s->id, s->base + k % s->mod);
	else
		snprintf(id, sizeof id, "%s", s->id);
	snprintf(buf, n, "%s.%s.bench.%s", s->prefix ? s->prefix : C.prefix, s->op, id);
}

/* ---- synchronous latency ------------------------------------------------------- */

/* n requests (after warm) to subjects from sc, each answered 200; checked
 * by check (may be NULL) too. */
typedef bool (*reply_check)(natsMsg *m, void *ctx);

static void latency(lat *l, natsConnection *nc, subj_ctx *sc, const char *body,
		    int warm, int n, int timeout_ms, double max_s,
		    reply_check check, void *check_ctx)
{
	samples s;
	long errors = 0;
	int64_t end = now_ns() + (int64_t)(max_s * 1e9);
	char subj[256];

	memset(l, 0, sizeof *l);
	samples_init(&s, (size_t)n);
	for (int i = 0; i < warm + n && !g_stop; i++) {
		natsMsg *m = NULL;
		int64_t t;
		int rc;

		if (now_ns() >= end) {
			snprintf(l->note, sizeof l->note,
				 "stopped by the %.0f s bound after %d of %d",
				 max_s, i, warm + n);
			break;
		}
		subj_make(sc, i, subj, sizeof subj);
		t = now_ns();
		rc = cim_req(nc, subj, body, (int)strlen(body), timeout_ms, &m);
		if (rc == 0 && check && !check(m, check_ctx))
			rc = 1;
		if (rc != 0) {
			if (errors == 0)
				fprintf(stderr, "bench: %s: %s%.*s\n", subj,
					rc < 0 ? "no reply" : "error: ",
					m ? natsMsg_GetDataLength(m) : 0,
					m ? natsMsg_GetData(m) : "");
			errors++;
		} else if (i >= warm) {
			samples_add(&s, (double)(now_ns() - t) / 1e3);
		}
		natsMsg_Destroy(m);
	}
	lat_from(l, &s, errors);
	samples_free(&s);
}

/* The same for nd daemons in turn, one request each, so that all meet the
 * same moments of the machine. */
static void latency_turns(lat **out, subj_ctx *sc, int nd, natsConnection *nc,
			  const char *body, int warm, int n)
{
	samples s[MAX_COMPARE + 1];
	long errors[MAX_COMPARE + 1] = {0};
	int64_t end = now_ns() + (int64_t)(240 * 1e9);
	char subj[256];

	for (int d = 0; d < nd; d++) {
		memset(out[d], 0, sizeof *out[d]);
		samples_init(&s[d], (size_t)n);
	}
	for (int i = 0; i < warm + n && !g_stop && now_ns() < end; i++)
		for (int d = 0; d < nd; d++) {
			int64_t t;
			subj_make(&sc[d], i, subj, sizeof subj);
			t = now_ns();
			if (cim_req(nc, subj, body, (int)strlen(body), REQ_MS, NULL) != 0)
				errors[d]++;
			else if (i >= warm)
				samples_add(&s[d], (double)(now_ns() - t) / 1e3);
		}
	for (int d = 0; d < nd; d++) {
		lat_from(out[d], &s[d], errors[d]);
		samples_free(&s[d]);
	}
}

/* Appends `batches` batches of 100 events to one aggregate. */
static long fill_aggregate(natsConnection *nc, const char *id, int batches,
			   const char *body100)
{
	char subj[256];
	long bad = 0;

	snprintf(subj, sizeof subj, "%s.append.bench.%s", C.prefix, id);
	for (int i = 0; i < batches && !g_stop; i++)
		if (cim_req(nc, subj, body100, (int)strlen(body100), REQ_MS,
			    NULL) != 0)
			bad++;
	return bad;
}

/* The engine, with the CPU time the daemon (or the relay, dp), nats-server
 * and this program used meanwhile. */
static void engine_cpu(const engine_run *er, rate *r, pid_t dp)
{
	pid_t np = C.P ? C.P->nats_pid : -1;
	double d0 = dp > 0 ? cpu_s(dp) : NAN, n0 = np > 0 ? cpu_s(np) : NAN;
	double b0 = cpu_s(getpid()), t0 = now_s(), wall;

	engine(er, r);
	wall = now_s() - t0;
	r->cpu_daemon = (dp > 0 ? cpu_s(dp) - d0 : NAN) * 100 / wall;
	r->cpu_nats = (np > 0 ? cpu_s(np) - n0 : NAN) * 100 / wall;
	r->cpu_bench = (cpu_s(getpid()) - b0) * 100 / wall;
}

/* ---- appends ---------------------------------------------------------------------- */

static void print_lat(const char *name, const lat *l)
{
	printf("  %-44s p50 %9.1f us  p99 %9.1f us  (n=%ld, errors=%ld)%s%s\n",
	       name, l->p50, l->p99, l->n, l->errors, l->note[0] ? "  " : "",
	       l->note);
	fflush(stdout);
}

static void print_rate(const char *name, const rate *r)
{
	printf("  %-28s %8.0f ev/s %7.0f req/s  lat p50 %8.1f p99 %8.1f us  "
	       "(%ld req, %.1f s; cpu%%: daemon %.0f nats %.0f bench %.0f)%s%s\n",
	       name, r->per_s, r->req_per_s, r->p50, r->p99, r->requests,
	       r->seconds, r->cpu_daemon, r->cpu_nats, r->cpu_bench,
	       r->valid ? "" : "  ", r->valid ? "" : r->note);
	fflush(stdout);
}

void run_appends(store_res *r, json_t *out)
{
	natsConnection *nc = connect_nats(C.url, true);
	char *b1 = append_body(1), *b10 = append_body(10),
	     *b100 = append_body(100);
	subj_ctx spread = {"append", "b-%ld", AGGS, 0, NULL};
	subj_ctx rspread = {"append", "b-%ld", AGGS, 0, RELAY_PREFIX};
	relay_proc relay = {.pid = -1};
	bool have_relay = false;
	double secs = C.quick ? 1.0 : 5.0;
	long cap = C.quick ? 200000 : 1000000;
	json_t *o = json_object(), *tp = json_object();
	static const struct {
		const char *name, *label, *relay_label;
		int inflight, batch;
		bool one;
	} runs[] = {
		{"1_in_flight", "append ev/s, 1 in flight", "relay req/s, 1 in flight", 1, 1,
		 false},
		{"16_in_flight", "append ev/s, 16 in flight", "relay req/s, 16 in flight", 16,
		 1, false},
		{"64_in_flight", "append ev/s, 64 in flight", "relay req/s, 64 in flight", 64,
		 1, false},
		{"256_in_flight", "append ev/s, 256 in flight", "relay req/s, 256 in flight",
		 256, 1, false},
		{"64_in_flight_one_aggregate", "append ev/s, 64 in flight, ONE aggregate",
		 "relay req/s, 64 in flight, one id", 64, 1, true},
		{"batch_10_x_16_in_flight", "append ev/s, batch 10 x 16 in flight", NULL, 16,
		 10, false},
		{"batch_100_x_16_in_flight", "append ev/s, batch 100 x 16 in flight", NULL,
		 16, 100, false},
	};

	memset(r, 0, sizeof *r);
	if (nc == NULL)
		goto out;
	printf("append: 1 in flight, 1 event of %zu bytes of data, over %d "
	       "aggregates...\n", strlen(event_data()), AGGS);
	fflush(stdout);
	if (C.ncmp == 0) {
		latency(&r->append1, nc, &spread, b1, C.quick ? 200 : 500,
			C.quick ? 1000 : 5000, REQ_MS, 120, NULL, NULL);
	} else {
		/* one request to each daemon in turn: drift on the machine
		 * touches them all alike */
		lat *ls[MAX_COMPARE + 1] = {&r->append1};
		subj_ctx scs[MAX_COMPARE + 1] = {spread};
		int nd = 1;
		for (int k = 0; k < C.ncmp; k++)
			if (C.cmp[k].up) {
				ls[nd] = &r->cmp_append1[k];
				scs[nd++] = (subj_ctx){"append", "b-%ld", AGGS, 0, C.cmp[k].prefix};
			}
		latency_turns(ls, scs, nd, nc, b1, C.quick ? 200 : 500, C.quick ? 1000 : 5000);
		for (int k = 0; k < C.ncmp; k++)
			if (C.cmp[k].up) {
				char name[96];
				snprintf(name, sizeof name, "[%s] append, 1 in flight", C.cmp[k].name);
				print_lat(name, &r->cmp_append1[k]);
			}
	}
	print_lat("append, 1 in flight", &r->append1);

	{
		/* the relay publishes payloads of the daemon's block size */
		uint8_t *blk = NULL;
		size_t blen = 0;
		char c1[CIM_CID_TEXT_MAX], c2[CIM_CID_TEXT_MAX];

		if (bench_block(&blk, &blen, c1, c2) == 0)
			have_relay = relay_start(&relay, C.relay_bin, C.url, (int)blen) == 0;
		free(blk);
		if (!have_relay)
			printf("  no relay: the single-event runs have no relay floor\n");
	}
	printf("append throughput (%.0f s per run; each single-event run followed by "
	       "the relay's at the same level)...\n", secs);
	fflush(stdout);
	for (size_t i = 0; i < sizeof runs / sizeof runs[0] && !g_stop; i++) {
		subj_ctx one = {"append", "one", 0, 0, NULL};
		subj_ctx rone = {"append", "one", 0, 0, RELAY_PREFIX};
		const char *body = runs[i].batch == 1    ? b1
				   : runs[i].batch == 10 ? b10
							 : b100;
		engine_run er = {
			.nc = nc,
			.inflight = runs[i].inflight,
			.max_requests = cap,
			.seconds = secs,
			.stall_s = 15,
			.subject = subj_make,
			.subject_ctx = runs[i].one ? &one : &spread,
			.body = body,
			.body_len = (int)strlen(body),
			.events_per_request = runs[i].batch,
		};

		/* the daemon, the compared ones and the relay, in an order that
		 * turns from one level to the next, so that none is always
		 * measured first (or last) */
		struct target {
			rate *r;
			subj_ctx spread, one;
			pid_t pid;
			char name[96];
		} t[MAX_COMPARE + 2];
		int nt = 0;

		r->tp_name[r->n_tp] = runs[i].label;
		r->tp_batch[r->n_tp] = runs[i].batch;
		t[nt++] = (struct target){&r->tp[r->n_tp], spread, one,
					  C.P ? C.P->daemon_pid : -1, ""};
		snprintf(t[nt - 1].name, sizeof t[nt - 1].name, "%s", runs[i].name);
		for (int k = 0; k < C.ncmp; k++) {
			if (!C.cmp[k].up)
				continue;
			t[nt] = (struct target){&r->cmp_tp[k][r->n_tp],
						{"append", "b-%ld", AGGS, 0, C.cmp[k].prefix},
						{"append", "one", 0, 0, C.cmp[k].prefix},
						C.cmp[k].pid, ""};
			snprintf(t[nt++].name, sizeof t[0].name, "%s_%s", C.cmp[k].name,
				 runs[i].name);
		}
		if (have_relay && runs[i].batch == 1) {
			r->relay_name[r->n_tp] = runs[i].relay_label;
			t[nt] = (struct target){&r->relay[r->n_tp], rspread, rone, relay.pid, ""};
			snprintf(t[nt++].name, sizeof t[0].name, "relay_%s", runs[i].name);
		}
		for (int j = 0; j < nt && !g_stop; j++) {
			struct target *x = &t[(j + (int)i) % nt];
			er.subject_ctx = runs[i].one ? &x->one : &x->spread;
			engine_cpu(&er, x->r, x->pid);
			print_rate(x->name, x->r);
			json_object_set_new(tp, x->name, rate_json(x->r));
		}
		r->n_tp++;
	}
out:
	relay_stop(&relay);
	json_object_set_new(o, "latency_1_in_flight", lat_json(&r->append1));
	json_object_set_new(o, "method",
			    json_string("raw natsConnection_Request / "
					"PublishRequest with prebuilt JSON "
					"bodies, SendAsap connection"));
	json_object_set_new(o, "data_bytes", json_integer((json_int_t)strlen(event_data())));
	json_object_set_new(o, "request_bytes_1_event", json_integer((json_int_t)strlen(b1)));
	json_object_set_new(o, "throughput", tp);
	json_object_set_new(o, "relay", json_boolean(have_relay));
	json_object_set_new(out, "append", o);
	free(b1);
	free(b10);
	free(b100);
	natsConnection_Destroy(nc);
}

/* ---- reads ------------------------------------------------------------------------- */

/* Reads a whole aggregate page by page; the check for one "request" of
 * the latency loop is the whole walk, so it is done here instead. */
typedef struct get_all {
	natsConnection *nc;
	const char *id;
	long expect;     /* events */
	long pages;      /* of the last walk */
	long bytes;      /* of its replies */
} get_all;

/* The value after the last "next_from_version": in the reply, 0 for null,
 * -1 when absent. */
static long next_from(natsMsg *m)
{
	const char *d = natsMsg_GetData(m), *key = "\"next_from_version\":";
	int n = natsMsg_GetDataLength(m), kl = (int)strlen(key);

	for (int i = n - kl; i >= 0 && i >= n - 64 - kl; i--)
		if (memcmp(d + i, key, (size_t)kl) == 0) {
			if (n - i - kl >= 4 && memcmp(d + i + kl, "null", 4) == 0)
				return 0;
			return strtol(d + i + kl, NULL, 10);
		}
	return -1;
}

static bool walk(get_all *g)
{
	char subj[256], body[64];
	long from = 1, pages = 0, version = -1, bytes = 0;

	snprintf(subj, sizeof subj, "%s.get.bench.%s", C.prefix, g->id);
	while (pages < 1000) {
		natsMsg *m = NULL;
		long next;

		snprintf(body, sizeof body, "{\"from_version\":%ld}", from);
		if (cim_req(g->nc, subj, body, (int)strlen(body), REQ_MS, &m) != 0) {
			natsMsg_Destroy(m);
			return false;
		}
		pages++;
		bytes += natsMsg_GetDataLength(m);
		if (pages == 1 &&
		    sscanf(natsMsg_GetData(m), "{\"version\":%ld", &version) != 1)
			version = -1;
		next = next_from(m);
		natsMsg_Destroy(m);
		if (next < 0)
			return false;
		if (next == 0)
			break;
		from = next;
	}
	g->pages = pages;
	g->bytes = bytes;
	return version == g->expect;
}

static void get_latency(lat *l, get_all *g, int warm, int n, double max_s)
{
	samples s;
	long errors = 0;
	int64_t end = now_ns() + (int64_t)(max_s * 1e9);

	memset(l, 0, sizeof *l);
	samples_init(&s, (size_t)n);
	for (int i = 0; i < warm + n && !g_stop; i++) {
		int64_t t;

		if (now_ns() >= end) {
			snprintf(l->note, sizeof l->note,
				 "stopped by the %.0f s bound after %d", max_s, i);
			break;
		}
		t = now_ns();
		if (!walk(g))
			errors++;
		else if (i >= warm)
			samples_add(&s, (double)(now_ns() - t) / 1e3);
	}
	lat_from(l, &s, errors);
	samples_free(&s);
}

static bool valid_true(natsMsg *m, void *ctx)
{
	char want[64];
	const char *d = natsMsg_GetData(m);

	snprintf(want, sizeof want, "\"checked\":%ld", *(long *)ctx);
	return d && strstr(d, "\"valid\":true") && strstr(d, want);
}

long bare_pull(jsCtx *js, const char *stream, const char *subject, bool headers,
	       double *ms)
{
	return bare_pull_each(js, stream, subject, headers, ms, NULL, NULL);
}

long bare_pull_each(jsCtx *js, const char *stream, const char *subject, bool headers,
		    double *ms, void (*each)(natsMsg *m, void *ctx), void *ctx)
{
	natsSubscription *sub = NULL;
	jsConsumerInfo *ci = NULL;
	jsSubOptions so;
	jsErrCode je = 0;
	long n = 0;
	double t0 = now_s();

	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Config.DeliverPolicy = js_DeliverAll;
	so.Config.AckPolicy = js_AckNone;
	so.Config.MemoryStorage = true;
	if (js_PullSubscribe(&sub, js, subject, NULL, NULL, &so, &je) != NATS_OK)
		return -1;
	if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &je) != NATS_OK) {
		natsSubscription_Destroy(sub);
		return -1;
	}
	uint64_t pending = ci->NumPending;
	jsConsumerInfo_Destroy(ci);
	while (pending > 0 && !g_stop) {
		natsMsgList l = {0};
		jsFetchRequest fr;
		jsFetchRequest_Init(&fr);
		fr.Batch = pending < 1024 ? (int)pending : 1024;
		fr.MaxBytes = 8 << 20;
		fr.Expires = 10000000000LL;
		if (natsSubscription_FetchRequest(&l, sub, &fr) != NATS_OK || l.Count == 0) {
			natsMsgList_Destroy(&l);
			break;
		}
		n += l.Count;
		pending = pending > (uint64_t)l.Count ? pending - (uint64_t)l.Count : 0;
		for (int i = 0; headers && i < l.Count; i++) {
			const char *v = NULL;
			natsMsgHeader_Get(l.Msgs[i], "Cim-Batch", &v);
		}
		for (int i = 0; each && i < l.Count; i++)
			each(l.Msgs[i], ctx);
		natsMsgList_Destroy(&l);
	}
	*ms = (now_s() - t0) * 1000;
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	return n;
}

/* p50/p99 of bare_pull over runs, in microseconds. */
static void bare_latency(lat *l, natsConnection *nc, const char *subject, long expect,
			 int runs)
{
	jsCtx *js = NULL;
	samples s;
	long errors = 0;

	samples_init(&s, (size_t)runs);
	if (natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
		for (int i = 0; i < runs && !g_stop; i++) {
			double ms = 0;
			if (bare_pull(js, "CIM-EVENTS", subject, false, &ms) != expect)
				errors++;
			else
				samples_add(&s, ms * 1000);
		}
	lat_from(l, &s, errors);
	samples_free(&s);
	jsCtx_Destroy(js);
}

/* The payloads of a pull, kept in memory. */
typedef struct kept {
	uint8_t **p;
	size_t *len;
	long n, cap;
} kept;

static void keep_payload(natsMsg *m, void *ctx)
{
	kept *k = ctx;
	int len = natsMsg_GetDataLength(m);

	if (k->n == k->cap || (k->p[k->n] = malloc((size_t)len + 1)) == NULL)
		return;
	memcpy(k->p[k->n], natsMsg_GetData(m), (size_t)len);
	k->len[k->n++] = (size_t)len;
}

/* What the daemon does for each event of a page, alone, from memory: the
 * strict check, the CID and the event's JSON (read.c's get_visit and
 * page_add). */
static void page_work(const uint8_t *p, size_t len, cbuf *out)
{
	cim_event_view v;
	cim_cid cid;
	char err[160];

	cim_event_check(p, len, &v, err, sizeof err);
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, C.hash_code, p, len);
	cim_event_write_json(out, p, len, &cid, 1, err, sizeof err);
	cbuf_putc(out, ',');
}

/* The CIDs of the messages on subject computed alone, from memory, as a
 * validate computes them (each block hashed once), or with json set what
 * get does for each of them (page_work): p50/p99 of runs. */
static void work_latency(lat *l, natsConnection *nc, const char *subject, long expect,
			 int runs, bool json)
{
	jsCtx *js = NULL;
	kept k = {calloc((size_t)expect, sizeof(uint8_t *)),
		  calloc((size_t)expect, sizeof(size_t)), 0, expect};
	samples s;
	double ms;
	long errors = 0;

	samples_init(&s, (size_t)runs);
	if (k.p == NULL || k.len == NULL || natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
	    bare_pull_each(js, C.stream, subject, false, &ms, keep_payload, &k) != expect ||
	    k.n != expect)
		errors++;
	for (int i = 0; errors == 0 && i < runs && !g_stop; i++) {
		cbuf out = CBUF_INIT;
		int64_t t = now_ns();
		for (long j = 0; j < k.n; j++) {
			cim_cid cid;
			if (json)
				page_work(k.p[j], k.len[j], &out);
			else
				cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, C.hash_code, k.p[j],
						k.len[j]);
		}
		samples_add(&s, (double)(now_ns() - t) / 1e3);
		cbuf_free(&out);
	}
	lat_from(l, &s, errors);
	samples_free(&s);
	for (long j = 0; j < k.n; j++)
		free(k.p[j]);
	free(k.p);
	free(k.len);
	jsCtx_Destroy(js);
}

void run_reads(store_res *r, json_t *out)
{
	natsConnection *nc = connect_nats(C.url, true);
	char *b100 = append_body(100), id1k[64], id10k[64];
	json_t *o = json_object();
	long bad = 0, n1k = 1000, n10k = 10000;

	snprintf(id1k, sizeof id1k, "r1k-%s", C.tag);
	snprintf(id10k, sizeof id10k, "r10k-%s", C.tag);
	if (nc == NULL)
		goto out;
	printf("reads: building %s (1,000 events) and %s (10,000 events) with "
	       "batches of 100...\n", id1k, id10k);
	fflush(stdout);
	bad += fill_aggregate(nc, id1k, 10, b100);
	bad += fill_aggregate(nc, id10k, 100, b100);
	if (bad)
		printf("  %ld batches failed: the read figures below are on "
		       "shorter aggregates\n", bad);
	{
		get_all g = {nc, id1k, n1k, 0, 0};

		get_latency(&r->get1k, &g, 5, C.quick ? 20 : 200, 120);
		r->get1k_pages = g.pages;
		r->get1k_bytes = g.bytes;
		snprintf(r->get1k.note, sizeof r->get1k.note,
			 "%ld page(s) per walk, %ld bytes", g.pages, g.bytes);
		print_lat("get 1,000 events (all pages)", &r->get1k);
		if (g.bytes > 0) {
			floor_rr_sized(&r->rr_get1k, (size_t)g.bytes, 5, C.quick ? 20 : 200);
			print_lat("floor: a reply of that size", &r->rr_get1k);
		}
	}
	{
		subj_ctx sc = {"head", id1k, 0, 0, NULL};

		latency(&r->head, nc, &sc, "{}", 100, C.quick ? 200 : 2000,
			REQ_MS, 60, NULL, NULL);
		print_lat("head", &r->head);
	}
	{
		subj_ctx sc = {"validate", id1k, 0, 0, NULL};

		latency(&r->val1k, nc, &sc, "{}", 2, C.quick ? 10 : 100, 30000,
			120, valid_true, &n1k);
		print_lat("validate 1,000 events", &r->val1k);
	}
	{
		subj_ctx sc = {"validate", id10k, 0, 0, NULL};

		latency(&r->val10k, nc, &sc, "{}", 1, C.quick ? 3 : 20, 60000,
			180, valid_true, &n10k);
		print_lat("validate 10,000 events", &r->val10k);
	}
	{
		/* load of 10 events after a snapshot: the same with 90 events
		 * before the snapshot and with 9,990 */
		char idshort[64], subj[256];
		const char *snap = "{\"version\": %d, \"state\": {\"n\": 1}}";
		char body[96];
		subj_ctx sl = {"load", idshort, 0, 0, NULL}, ll = {"load", id10k, 0, 0, NULL};

		snprintf(idshort, sizeof idshort, "rshort-%s", C.tag);
		bad += fill_aggregate(nc, idshort, 1, b100);
		snprintf(subj, sizeof subj, "%s.snapshot.save.bench.%s", C.prefix, idshort);
		snprintf(body, sizeof body, snap, 90);
		bad += cim_req(nc, subj, body, (int)strlen(body), REQ_MS, NULL) != 0;
		snprintf(subj, sizeof subj, "%s.snapshot.save.bench.%s", C.prefix, id10k);
		snprintf(body, sizeof body, snap, 9990);
		bad += cim_req(nc, subj, body, (int)strlen(body), REQ_MS, NULL) != 0;
		latency(&r->load_short, nc, &sl, "{}", 20, C.quick ? 100 : 1000, REQ_MS,
			60, NULL, NULL);
		print_lat("load: 10 events after a snapshot at 90", &r->load_short);
		latency(&r->load_long, nc, &ll, "{}", 20, C.quick ? 100 : 1000, REQ_MS,
			60, NULL, NULL);
		print_lat("load: 10 events after a snapshot at 9,990", &r->load_long);
	}
	{
		char subj[128];

		snprintf(subj, sizeof subj, "events.bench.%s.BenchEvent", id1k);
		bare_latency(&r->bare1k, nc, subj, n1k, C.quick ? 10 : 50);
		print_lat("floor: bare pull of the 1,000 events", &r->bare1k);
		work_latency(&r->work1k, nc, subj, n1k, C.quick ? 10 : 50, true);
		print_lat("floor: get's work on them alone", &r->work1k);
		snprintf(subj, sizeof subj, "events.bench.%s.BenchEvent", id10k);
		bare_latency(&r->bare10k, nc, subj, n10k, C.quick ? 3 : 20);
		print_lat("floor: bare pull of the 10,000 events", &r->bare10k);
		work_latency(&r->hash10k, nc, subj, n10k, C.quick ? 3 : 20, false);
		print_lat("floor: their CIDs computed alone", &r->hash10k);
	}
out:
	json_object_set_new(o, "get_1000_all_pages", lat_json(&r->get1k));
	json_object_set_new(o, "get_1000_pages_per_walk", json_integer(r->get1k_pages));
	json_object_set_new(o, "head", lat_json(&r->head));
	json_object_set_new(o, "validate_1000", lat_json(&r->val1k));
	json_object_set_new(o, "validate_10000", lat_json(&r->val10k));
	json_object_set_new(o, "load_10_after_snapshot_at_90", lat_json(&r->load_short));
	json_object_set_new(o, "load_10_after_snapshot_at_9990", lat_json(&r->load_long));
	json_object_set_new(o, "floor_bare_pull_1000", lat_json(&r->bare1k));
	json_object_set_new(o, "floor_bare_pull_10000", lat_json(&r->bare10k));
	json_object_set_new(o, "floor_hash_10000", lat_json(&r->hash10k));
	json_object_set_new(o, "floor_get_work_1000", lat_json(&r->work1k));
	json_object_set_new(o, "floor_rr_reply_of_get_1000", lat_json(&r->rr_get1k));
	json_object_set_new(o, "get_1000_reply_bytes", json_integer(r->get1k_bytes));
	json_object_set_new(o, "build_failures", json_integer(bad));
	json_object_set_new(out, "reads", o);
	free(b100);
	natsConnection_Destroy(nc);
}

/* ---- growth ------------------------------------------------------------------------- */

static long stream_msgs(jsCtx *js)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	long n = -1;

	if (js_GetStreamInfo(&si, js, C.stream, NULL, &je) == NATS_OK)
		n = (long)si->State.Msgs;
	jsStreamInfo_Destroy(si);
	return n;
}

static long info_heads(natsConnection *nc)
{
	json_t *j = daemon_info(nc, C.prefix, REQ_MS);
	long h = -1;

	if (j)
		h = (long)json_integer_value(
			json_object_get(json_object_get(j, "counters"), "heads"));
	json_decref(j);
	return h;
}

/* A counter of info, -1 when unknown. */
static long info_counter(natsConnection *nc, const char *name)
{
	json_t *j = daemon_info(nc, C.prefix, REQ_MS), *v;
	long r = -1;

	if (j && json_is_integer(v = json_object_get(json_object_get(j, "counters"),
						      name)))
		r = (long)json_integer_value(v);
	json_decref(j);
	return r;
}

/* Whether head of bench/id answers version `want`. */
static bool head_is(natsConnection *nc, const char *id, long want)
{
	char subj[256], w[48];
	natsMsg *m = NULL;
	bool ok;

	snprintf(subj, sizeof subj, "%s.head.bench.%s", C.prefix, id);
	snprintf(w, sizeof w, "{\"version\":%ld,", want);
	ok = cim_req(nc, subj, "{}", 2, REQ_MS, &m) == 0 &&
	     strncmp(natsMsg_GetData(m), w, strlen(w)) == 0;
	if (!ok && m)
		printf("  head %s: %.*s\n", id, natsMsg_GetDataLength(m),
		       natsMsg_GetData(m));
	natsMsg_Destroy(m);
	return ok;
}

static void point_json(json_t *arr, const growth_point *p)
{
	json_t *o = json_object();

	json_object_set_new(o, "target_events", json_integer(p->target));
	json_object_set_new(o, "reached", json_boolean(p->reached));
	json_object_set_new(o, "stored_events", json_integer(p->stored));
	json_object_set_new(o, "aggregates", json_integer(p->aggregates));
	json_object_set_new(o, "append_1_in_flight", lat_json(&p->append1));
	json_object_set_new(o, "get_100_new", lat_json(&p->get_new));
	json_object_set_new(o, "get_100_old", lat_json(&p->get_old));
	json_object_set_new(o, "fill_rate_per_s",
			    isfinite(p->fill_rate) ? json_real(round(p->fill_rate))
						   : json_null());
	json_array_append_new(arr, o);
}

static bool get100(natsMsg *m, void *ctx)
{
	(void)ctx;
	const char *d = natsMsg_GetData(m);

	return d && strncmp(d, "{\"version\":100,", 15) == 0 && next_from(m) == 0;
}

void run_growth(growth_res *g, procs *p, json_t *out)
{
	static const long full[] = {10000, 100000, 1000000};
	static const long quick[] = {2000, 10000};
	const long *targets = C.quick ? quick : full;
	int n_targets = C.quick ? 2 : 3;
	double fill_budget = C.quick ? 20 : 480; /* seconds for the whole fill */
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	char *b1 = append_body(1), *b100 = append_body(100), old_id[64];
	json_t *o = json_object(), *pts = json_array();
	long m_next = 0, fill_req = 0, fill_err = 0, fill_to = 0;
	double fill_s = 0, t_budget_end;
	bool fill_valid = true;

	memset(g, 0, sizeof *g);
	g->ran = true;
	g->restart_ms = g->daemon_startup_ms = NAN;
	g->bytes_per_agg = g->bytes_per_agg_restart = NAN;

	if (p != NULL) {
		/* A fresh server and daemon: the growth points count from an
		 * empty store, and the memory baseline is an empty daemon. */
		printf("growth: fresh nats-server and daemon on an empty store...\n");
		fflush(stdout);
		daemon_stop(p);
		nats_stop(p);
		if (nats_start(p, "js-growth") != 0 ||
		    daemon_start(p, 30000, NULL) != 0) {
			snprintf(g->note, sizeof g->note, "cannot restart the "
				 "server and daemon for growth");
			g->ran = false;
			goto out;
		}
		C.url = p->url;
		sleep_ms(200);
		g->rss0_kib = rss_kib(p->daemon_pid);
	}
	nc = connect_nats(C.url, true);
	if (nc == NULL || natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
		g->ran = false;
		goto out;
	}
	snprintf(old_id, sizeof old_id, "g-old-%s", C.tag);
	if (fill_aggregate(nc, old_id, 1, b100) != 0)
		printf("  cannot build %s\n", old_id);

	t_budget_end = now_s() + fill_budget;
	for (int i = 0; i < n_targets && !g_stop; i++) {
		growth_point *pt = &g->pt[g->n_pt++];
		long have = stream_msgs(js), need;
		subj_ctx fill = {"append", "m-%ld", 1L << 40, m_next, NULL};
		subj_ctx spread = {"append", "b-%ld", AGGS, 0, NULL};
		char new_id[64];

		memset(pt, 0, sizeof *pt);
		pt->target = targets[i];
		pt->fill_rate = NAN;
		need = targets[i] - have;
		if (have < 0) {
			printf("  cannot read stream %s\n", C.stream);
			break;
		}
		if (need > 0) {
			double left = t_budget_end - now_s();
			engine_run er = {
				.nc = nc,
				.inflight = 256,
				.max_requests = need,
				.seconds = left > 1 ? left : 1,
				.stall_s = 15,
				.subject = subj_make,
				.subject_ctx = &fill,
				.body = b1,
				.body_len = (int)strlen(b1),
				.events_per_request = 1,
			};
			rate fr;

			printf("growth: filling %ld aggregates m-* of 1 event, "
			       "256 in flight, to %ld events...\n", need,
			       targets[i]);
			fflush(stdout);
			engine_cpu(&er, &fr, C.P ? C.P->daemon_pid : -1);
			m_next += fr.requests + fr.timeouts;
			fill_req += fr.requests;
			fill_err += fr.errors;
			fill_to += fr.timeouts;
			fill_s += fr.seconds;
			pt->fill_rate = fr.per_s;
			if (!fr.valid) {
				fill_valid = false;
				printf("  fill: %s\n", fr.note);
			}
			printf("  fill: %.0f ev/s over %.1f s\n", fr.per_s,
			       fr.seconds);
		}
		pt->stored = stream_msgs(js);
		pt->reached = pt->stored >= targets[i];
		pt->aggregates = info_heads(nc);
		if (!pt->reached) {
			printf("  the fill stopped at %ld events (time budget "
			       "%.0f s or errors)\n", pt->stored, fill_budget);
		}
		printf("growth point: %ld events stored, %ld aggregates\n",
		       pt->stored, pt->aggregates);
		latency(&pt->append1, nc, &spread, b1, 100, C.quick ? 200 : 1000,
			REQ_MS, 60, NULL, NULL);
		print_lat("append, 1 in flight", &pt->append1);
		snprintf(new_id, sizeof new_id, "g-%ld-%s", targets[i], C.tag);
		if (fill_aggregate(nc, new_id, 1, b100) != 0)
			printf("  cannot build %s\n", new_id);
		{
			subj_ctx sc = {"get", new_id, 0, 0, NULL};

			latency(&pt->get_new, nc, &sc, "{}", 5, C.quick ? 20 : 100,
				REQ_MS, 60, get100, NULL);
			print_lat("get 100 events (aggregate made now)", &pt->get_new);
		}
		{
			subj_ctx sc = {"get", old_id, 0, 0, NULL};

			latency(&pt->get_old, nc, &sc, "{}", 5, C.quick ? 20 : 100,
				REQ_MS, 60, get100, NULL);
			print_lat("get 100 events (aggregate made first)", &pt->get_old);
		}
		if (!pt->reached)
			break;
	}
	g->fill.ran = fill_req + fill_to + fill_err > 0;
	if (!g->fill.ran)
		snprintf(g->fill.note, sizeof g->fill.note,
			 "nothing to fill: the store already held the events");
	g->fill.requests = fill_req;
	g->fill.events = fill_req - fill_err;
	g->fill.errors = fill_err;
	g->fill.timeouts = fill_to;
	g->fill.seconds = fill_s;
	g->fill.per_s = fill_s > 0 ? (double)g->fill.events / fill_s : NAN;
	g->fill.req_per_s = g->fill.per_s;
	g->fill.p50 = g->fill.p99 = NAN;
	g->fill.cpu_daemon = g->fill.cpu_nats = g->fill.cpu_bench = NAN;
	g->fill.valid = fill_valid && fill_req > 0;

	if (p != NULL && !g_stop) {
		double ms = NAN;

		g->mem_ran = true;
		g->aggregates = info_heads(nc);
		g->rss_full_kib = rss_kib(p->daemon_pid);
		if (g->aggregates > 0)
			g->bytes_per_agg = (double)(g->rss_full_kib - g->rss0_kib) *
					   1024.0 / (double)g->aggregates;
		printf("memory: RSS %ld KiB at start (empty), %ld KiB with %ld "
		       "aggregates: %.0f bytes per aggregate\n", g->rss0_kib,
		       g->rss_full_kib, g->aggregates, g->bytes_per_agg);
		/* the floor of a restart: the whole stream pulled bare, once
		 * without and once with its headers parsed, as the scan must */
		g->scan_msgs = bare_pull(js, "CIM-EVENTS", "events.>", false, &g->scan_bare_ms);
		bare_pull(js, "CIM-EVENTS", "events.>", true, &g->scan_headers_ms);
		printf("floor: bare pull of all %ld events: %.0f ms; with headers "
		       "parsed: %.0f ms\n", g->scan_msgs, g->scan_bare_ms,
		       g->scan_headers_ms);
		printf("restart: SIGTERM, then a fresh daemon on the same store...\n");
		fflush(stdout);
		daemon_stop(p);
		if (daemon_start(p, C.quick ? 60000 : 600000, &ms) == 0) {
			g->restart_ok = true;
			g->restart_ms = ms;
			g->rss_restart_kib = rss_kib(p->daemon_pid);
			g->daemon_startup_ms = (double)info_counter(nc, "startup_ms");
			g->restart_heads = info_counter(nc, "heads");
			g->restart_startup_events = info_counter(nc, "startup_events");
			/* the restarted daemon knows the aggregates: a few heads */
			for (long q = 0; q < 5 && m_next > 0; q++) {
				char id[64];

				snprintf(id, sizeof id, "m-%ld", q * (m_next - 1) / 4);
				g->restart_head_checks++;
				g->restart_head_ok += head_is(nc, id, 1);
			}
			printf("  restarted daemon: info heads %ld (before: %ld), "
			       "startup_events %ld; head of %d m-* aggregates "
			       "right: %d\n", g->restart_heads, g->aggregates,
			       g->restart_startup_events, g->restart_head_checks,
			       g->restart_head_ok);
			if (g->aggregates > 0)
				g->bytes_per_agg_restart =
					(double)(g->rss_restart_kib - g->rss0_kib) *
					1024.0 / (double)g->aggregates;
			printf("  first answered info after %.0f ms (daemon's "
			       "startup_ms %.0f); RSS %ld KiB: %.0f bytes per "
			       "aggregate\n", ms, g->daemon_startup_ms,
			       g->rss_restart_kib, g->bytes_per_agg_restart);
		} else {
			snprintf(g->note, sizeof g->note,
				 "the restarted daemon did not answer");
			printf("  %s\n", g->note);
		}
	}
out:
	json_object_set_new(o, "points", pts);
	for (int i = 0; i < g->n_pt; i++)
		point_json(pts, &g->pt[i]);
	json_object_set_new(o, "fill", rate_json(&g->fill));
	if (g->mem_ran) {
		json_t *m = json_object();

		json_object_set_new(m, "rss_empty_kib", json_integer(g->rss0_kib));
		json_object_set_new(m, "rss_full_kib", json_integer(g->rss_full_kib));
		json_object_set_new(m, "aggregates", json_integer(g->aggregates));
		json_object_set_new(m, "bytes_per_aggregate",
				    isfinite(g->bytes_per_agg)
					    ? json_real(round(g->bytes_per_agg))
					    : json_null());
		json_object_set_new(m, "restart_ok", json_boolean(g->restart_ok));
		json_object_set_new(m, "restart_to_first_info_ms",
				    isfinite(g->restart_ms)
					    ? json_real(round(g->restart_ms))
					    : json_null());
		json_object_set_new(m, "floor_bare_pull_all_ms", json_real(round(g->scan_bare_ms)));
		json_object_set_new(m, "floor_bare_pull_all_with_headers_ms",
				    json_real(round(g->scan_headers_ms)));
		json_object_set_new(m, "floor_bare_pull_all_msgs", json_integer(g->scan_msgs));
		json_object_set_new(m, "daemon_startup_ms",
				    isfinite(g->daemon_startup_ms)
					    ? json_real(g->daemon_startup_ms)
					    : json_null());
		json_object_set_new(m, "restarted_info_heads",
				    json_integer(g->restart_heads));
		json_object_set_new(m, "restarted_info_startup_events",
				    json_integer(g->restart_startup_events));
		json_object_set_new(m, "restarted_head_checks",
				    json_integer(g->restart_head_checks));
		json_object_set_new(m, "restarted_head_checks_ok",
				    json_integer(g->restart_head_ok));
		json_object_set_new(m, "rss_restarted_kib",
				    json_integer(g->rss_restart_kib));
		json_object_set_new(m, "bytes_per_aggregate_restarted",
				    isfinite(g->bytes_per_agg_restart)
					    ? json_real(round(g->bytes_per_agg_restart))
					    : json_null());
		json_object_set_new(o, "memory_and_restart", m);
	}
	if (g->note[0])
		json_object_set_new(o, "note", json_string(g->note));
	json_object_set_new(out, "growth", o);
	free(b1);
	free(b100);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}
