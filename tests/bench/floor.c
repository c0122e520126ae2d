/*
 * floor.c: what NATS and JetStream alone cost on this machine, measured
 * against the same nats-server the daemon uses, in the same run.
 *
 *   rr        request/reply to an echo responder (a subscription callback
 *             that publishes the data back), both connections SendAsap,
 *             200-byte payload, one request at a time
 *   js_sync   js_Publish of 300 bytes to BENCH-FLOOR (file storage), one
 *             at a time
 *   js_async  js_PublishAsync of N messages of 300 bytes, MaxPending 4096,
 *             then js_PublishAsyncComplete; on a SendAsap connection and on
 *             a default one
 *   shaped    the same with messages shaped like the daemon's
 *             (floor_append.c)
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLOOR_STREAM "BENCH-FLOOR"

static void echo_cb(natsConnection *nc, natsSubscription *sub, natsMsg *m,
		    void *closure)
{
	natsMsg *out = NULL;

	(void)sub;
	(void)closure;
	if (natsMsg_GetReply(m) != NULL &&
	    natsMsg_Create(&out, natsMsg_GetReply(m), NULL, natsMsg_GetData(m),
			   natsMsg_GetDataLength(m)) == NATS_OK)
		natsConnection_PublishMsg(nc, out);
	natsMsg_Destroy(out);
	natsMsg_Destroy(m);
}

static void floor_rr(lat *l, int warm, int n)
{
	natsConnection *a = connect_nats(C.url, true), *b = connect_nats(C.url, true);
	natsSubscription *sub = NULL;
	char subj[96], payload[200];
	samples s;
	long errors = 0;
	int64_t end = now_ns() + 120 * (int64_t)1000000000;

	memset(l, 0, sizeof *l);
	memset(payload, 'x', sizeof payload);
	snprintf(subj, sizeof subj, "bench.echo.%s", C.tag);
	if (a == NULL || b == NULL ||
	    natsConnection_Subscribe(&sub, a, subj, echo_cb, NULL) != NATS_OK ||
	    natsConnection_Flush(a) != NATS_OK) {
		snprintf(l->note, sizeof l->note, "cannot set up the echo");
		goto out;
	}
	samples_init(&s, (size_t)n);
	for (int i = 0; i < warm + n && !g_stop && now_ns() < end; i++) {
		natsMsg *m = NULL;
		int64_t t = now_ns();
		natsStatus st = natsConnection_Request(&m, b, subj, payload,
						       sizeof payload, 5000);
		double us = (double)(now_ns() - t) / 1e3;

		if (st != NATS_OK || natsMsg_GetDataLength(m) != sizeof payload)
			errors++;
		else if (i >= warm)
			samples_add(&s, us);
		natsMsg_Destroy(m);
	}
	lat_from(l, &s, errors);
	samples_free(&s);
out:
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(a);
	natsConnection_Destroy(b);
}

static void sized_cb(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	const cbuf_view *v = closure;
	natsMsg *out = NULL;

	(void)sub;
	if (natsMsg_GetReply(m) != NULL &&
	    natsMsg_Create(&out, natsMsg_GetReply(m), NULL, v->p, (int)v->len) == NATS_OK) {
		natsMsgHeader_Set(out, "Cim-Status", "200");
		natsConnection_PublishMsg(nc, out);
	}
	natsMsg_Destroy(out);
	natsMsg_Destroy(m);
}

void floor_rr_sized(lat *l, size_t reply_bytes, int warm, int n)
{
	natsConnection *a = connect_nats(C.url, true), *b = connect_nats(C.url, true);
	natsSubscription *sub = NULL;
	char subj[96];
	cbuf_view v = {malloc(reply_bytes ? reply_bytes : 1), reply_bytes};
	samples s;
	long errors = 0;

	memset(l, 0, sizeof *l);
	samples_init(&s, (size_t)n);
	if (v.p != NULL)
		memset(v.p, 'x', reply_bytes);
	snprintf(subj, sizeof subj, "bench.sized.%s", C.tag);
	if (v.p == NULL || a == NULL || b == NULL ||
	    natsConnection_Subscribe(&sub, a, subj, sized_cb, &v) != NATS_OK ||
	    natsConnection_Flush(a) != NATS_OK) {
		snprintf(l->note, sizeof l->note, "cannot set up the responder");
		goto out;
	}
	for (int i = 0; i < warm + n && !g_stop; i++) {
		natsMsg *m = NULL;
		int64_t t = now_ns();
		natsStatus st = natsConnection_Request(&m, b, subj, "{}", 2, 10000);
		double us = (double)(now_ns() - t) / 1e3;

		if (st != NATS_OK || (size_t)natsMsg_GetDataLength(m) != reply_bytes)
			errors++;
		else if (i >= warm)
			samples_add(&s, us);
		natsMsg_Destroy(m);
	}
	lat_from(l, &s, errors);
out:
	samples_free(&s);
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(a);
	natsConnection_Destroy(b);
	free(v.p);
}

static jsCtx *make_js(natsConnection *nc, jsOptions *o)
{
	jsCtx *js = NULL;

	if (natsConnection_JetStream(&js, nc, o) != NATS_OK)
		return NULL;
	return js;
}

static bool make_stream(jsCtx *js)
{
	jsStreamConfig cfg;
	const char *subjects[] = {"floor.>"};
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s;

	jsStreamConfig_Init(&cfg);
	cfg.Name = FLOOR_STREAM;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	s = js_AddStream(&si, js, &cfg, NULL, &je);
	jsStreamInfo_Destroy(si);
	if (s != NATS_OK) {
		fprintf(stderr, "bench: cannot create stream %s: %s (%d)\n",
			FLOOR_STREAM, natsStatus_GetText(s), (int)je);
		return false;
	}
	return true;
}

static void floor_js_sync(jsCtx *js, lat *l, const char *payload, int len,
			  int warm, int n)
{
	samples s;
	long errors = 0;
	int64_t end = now_ns() + 120 * (int64_t)1000000000;

	samples_init(&s, (size_t)n);
	for (int i = 0; i < warm + n && !g_stop && now_ns() < end; i++) {
		jsPubAck *pa = NULL;
		jsErrCode je = 0;
		int64_t t = now_ns();
		natsStatus st = js_Publish(&pa, js, "floor.sync", payload, len,
					   NULL, &je);
		double us = (double)(now_ns() - t) / 1e3;

		if (st != NATS_OK)
			errors++;
		else if (i >= warm)
			samples_add(&s, us);
		jsPubAck_Destroy(pa);
	}
	lat_from(l, &s, errors);
	samples_free(&s);
}

void floor_count_err(jsCtx *js, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)pae;
	(*(long *)closure)++;
}

natsStatus floor_async_finish(jsCtx *js, rate *r, int64_t t0, double n0, double b0)
{
	pid_t np = C.P ? C.P->nats_pid : -1;
	jsPubOptions po;
	natsStatus s;

	jsPubOptions_Init(&po);
	po.MaxWait = 60000;
	s = js_PublishAsyncComplete(js, &po);
	r->seconds = (double)(now_ns() - t0) / 1e9;
	r->cpu_daemon = NAN;
	r->cpu_nats = (np > 0 ? cpu_s(np) - n0 : NAN) * 100 / r->seconds;
	r->cpu_bench = (cpu_s(getpid()) - b0) * 100 / r->seconds;
	return s;
}

static void async_loop(jsCtx *js, const char *payload, int len, long n,
		       int64_t end, long *sent, long *errors)
{
	for (; *sent < n && !g_stop && now_ns() < end; (*sent)++) {
		if (js_PublishAsync(js, "floor.async", payload, len, NULL) != NATS_OK) {
			(*errors)++;
			if (*errors > 100)
				break;
		}
	}
}

static void floor_js_async(bool asap, rate *r, const char *payload, int len,
			   long n)
{
	natsConnection *nc = connect_nats(C.url, asap);
	jsOptions o;
	jsCtx *js = NULL;
	long errors = 0, sent = 0;
	int64_t t0, end;
	natsStatus s;

	memset(r, 0, sizeof *r);
	r->ran = true;
	jsOptions_Init(&o);
	o.PublishAsync.MaxPending = 4096;
	o.PublishAsync.ErrHandler = floor_count_err;
	o.PublishAsync.ErrHandlerClosure = &errors;
	o.PublishAsync.StallWait = 10000;
	if (nc == NULL || (js = make_js(nc, &o)) == NULL) {
		snprintf(r->note, sizeof r->note, "INVALID: cannot connect");
		goto out;
	}
	{
		pid_t np = C.P ? C.P->nats_pid : -1;
		double n0 = np > 0 ? cpu_s(np) : NAN, b0 = cpu_s(getpid());

		t0 = now_ns();
		end = t0 + 120 * (int64_t)1000000000;
		async_loop(js, payload, len, n, end, &sent, &errors);
		s = floor_async_finish(js, r, t0, n0, b0);
	}
	if (s != NATS_OK) {
		r->timeouts = 1;
		snprintf(r->note, sizeof r->note,
			 "INVALID: js_PublishAsyncComplete: %s",
			 natsStatus_GetText(s));
	}
	r->requests = r->events = sent - errors;
	r->errors = errors;
	r->per_s = r->req_per_s = (double)r->events / r->seconds;
	r->p50 = r->p99 = NAN;
	r->valid = errors == 0 && s == NATS_OK && sent == n;
	if (!r->valid && r->note[0] == '\0')
		snprintf(r->note, sizeof r->note, "INVALID: %ld errors, %ld of "
			 "%ld sent", errors, sent, n);
out:
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}

void run_floor(floor_res *f, json_t *out)
{
	int rr_warm = C.quick ? 100 : 500, rr_n = C.quick ? 1000 : 5000;
	int js_warm = C.quick ? 50 : 200, js_n = C.quick ? 500 : 3000;
	long an = C.quick ? 20000 : 100000;
	char payload[300];
	natsConnection *nc;
	jsCtx *js = NULL;
	jsErrCode je = 0;

	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (char)('a' + (i * 7) % 26);

	printf("floor: echo request/reply (%d after %d warm-up)...\n", rr_n,
	       rr_warm);
	fflush(stdout);
	floor_rr(&f->rr, rr_warm, rr_n);

	nc = connect_nats(C.url, true);
	if (nc == NULL || (js = make_js(nc, NULL)) == NULL || !make_stream(js)) {
		snprintf(f->js_sync.note, sizeof f->js_sync.note,
			 "no stream " FLOOR_STREAM);
		f->js_async_best = NAN;
		goto out;
	}
	printf("floor: js_Publish (%d after %d warm-up)...\n", js_n, js_warm);
	fflush(stdout);
	floor_js_sync(js, &f->js_sync, payload, sizeof payload, js_warm, js_n);

	printf("floor: js_PublishAsync x %ld, SendAsap and default...\n", an);
	fflush(stdout);
	js_PurgeStream(js, FLOOR_STREAM, NULL, &je);
	floor_js_async(true, &f->js_async_asap, payload, sizeof payload, an);
	js_PurgeStream(js, FLOOR_STREAM, NULL, &je);
	floor_js_async(false, &f->js_async_default, payload, sizeof payload, an);
	{
		const rate *a = &f->js_async_asap, *d = &f->js_async_default;
		bool use_a = a->valid && (!d->valid || a->per_s >= d->per_s);

		f->js_async_best = use_a ? a->per_s : d->valid ? d->per_s : NAN;
		f->js_async_best_conn = use_a ? "SendAsap" : d->valid ? "default"
								 : "none valid";
	}
	if (js_DeleteStream(js, FLOOR_STREAM, NULL, &je) != NATS_OK)
		fprintf(stderr, "bench: cannot delete stream %s\n", FLOOR_STREAM);

	printf("floor: js_PublishMsgAsync x %ld shaped like the daemon's: one event "
	       "each, and in batches of 100...\n", an);
	fflush(stdout);
	floor_shaped(&f->shaped1, 0, an);
	floor_shaped(&f->shaped100, 100, an);
	printf("  shaped, one event each   %9.0f msg/s (cpu%%: nats %.0f bench %.0f)%s%s\n",
	       f->shaped1.per_s, f->shaped1.cpu_nats, f->shaped1.cpu_bench,
	       f->shaped1.valid ? "" : "  ", f->shaped1.note);
	printf("  shaped, batches of 100   %9.0f msg/s (cpu%%: nats %.0f bench %.0f)%s%s\n",
	       f->shaped100.per_s, f->shaped100.cpu_nats, f->shaped100.cpu_bench,
	       f->shaped100.valid ? "" : "  ", f->shaped100.note);
out:
	{
		json_t *o = json_object(), *a = json_object();

		json_object_set_new(o, "rr_echo", lat_json(&f->rr));
		json_object_set_new(o, "js_publish_sync", lat_json(&f->js_sync));
		json_object_set_new(a, "send_asap", rate_json(&f->js_async_asap));
		json_object_set_new(a, "default", rate_json(&f->js_async_default));
		json_object_set_new(a, "best_per_s", isfinite(f->js_async_best)
				    ? json_real(round(f->js_async_best)) : json_null());
		json_object_set_new(a, "best_connection",
				    json_string(f->js_async_best_conn
						? f->js_async_best_conn : "none"));
		json_object_set_new(a, "messages", json_integer(an));
		json_object_set_new(a, "max_pending", json_integer(4096));
		json_object_set_new(o, "js_publish_async", a);
		json_object_set_new(o, "shaped_async_one_event", rate_json(&f->shaped1));
		json_object_set_new(o, "shaped_async_batches_of_100", rate_json(&f->shaped100));
		json_object_set_new(out, "floor", o);
	}
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}
