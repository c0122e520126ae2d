/*
 * load.c: time, samples, synchronous requests, the N-in-flight engine and
 * the prebuilt request bodies.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- time ---------------------------------------------------------------------- */

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double now_s(void) { return (double)now_ns() / 1e9; }

void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- samples --------------------------------------------------------------------- */

void samples_init(samples *s, size_t cap)
{
	s->n = 0;
	s->cap = cap ? cap : 1;
	s->v = malloc(s->cap * sizeof *s->v);
	if (s->v == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(2);
	}
}

void samples_add(samples *s, double us)
{
	if (s->n < s->cap)
		s->v[s->n++] = us;
}

void samples_free(samples *s)
{
	free(s->v);
	memset(s, 0, sizeof *s);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double samples_q(const samples *s, double q)
{
	double *c, r;
	size_t i;

	if (s->n == 0)
		return NAN;
	c = malloc(s->n * sizeof *c);
	if (c == NULL)
		return NAN;
	memcpy(c, s->v, s->n * sizeof *c);
	qsort(c, s->n, sizeof *c, cmp_d);
	/* nearest rank: the smallest value with at least q of the samples at
	 * or below it */
	i = (size_t)ceil(q * (double)s->n);
	i = i == 0 ? 0 : i - 1;
	if (i >= s->n)
		i = s->n - 1;
	r = c[i];
	free(c);
	return r;
}

static double samples_mean(const samples *s)
{
	double t = 0;

	if (s->n == 0)
		return NAN;
	for (size_t i = 0; i < s->n; i++)
		t += s->v[i];
	return t / (double)s->n;
}

void lat_from(lat *l, const samples *s, long errors)
{
	l->p50 = samples_q(s, 0.50);
	l->p99 = samples_q(s, 0.99);
	l->mean = samples_mean(s);
	l->n = (long)s->n;
	l->errors = errors;
	l->ran = true;
}

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(round(v * 10) / 10) : json_null();
}

json_t *lat_json(const lat *l)
{
	json_t *o = json_object();

	if (!l->ran) {
		json_object_set_new(o, "skipped", json_true());
		if (l->note[0])
			json_object_set_new(o, "note", json_string(l->note));
		return o;
	}
	json_object_set_new(o, "p50_us", num_or_null(l->p50));
	json_object_set_new(o, "p99_us", num_or_null(l->p99));
	json_object_set_new(o, "mean_us", num_or_null(l->mean));
	json_object_set_new(o, "samples", json_integer(l->n));
	json_object_set_new(o, "errors", json_integer(l->errors));
	json_object_set_new(o, "valid", json_boolean(l->errors == 0 && l->n > 0));
	if (l->note[0])
		json_object_set_new(o, "note", json_string(l->note));
	return o;
}

json_t *rate_json(const rate *r)
{
	json_t *o = json_object();

	if (!r->ran) {
		json_object_set_new(o, "skipped", json_true());
		if (r->note[0])
			json_object_set_new(o, "note", json_string(r->note));
		return o;
	}
	json_object_set_new(o, "per_s", num_or_null(r->per_s));
	json_object_set_new(o, "requests_per_s", num_or_null(r->req_per_s));
	json_object_set_new(o, "requests", json_integer(r->requests));
	json_object_set_new(o, "events", json_integer(r->events));
	json_object_set_new(o, "seconds", num_or_null(r->seconds));
	json_object_set_new(o, "latency_p50_us", num_or_null(r->p50));
	json_object_set_new(o, "latency_p99_us", num_or_null(r->p99));
	json_object_set_new(o, "errors", json_integer(r->errors));
	json_object_set_new(o, "timeouts", json_integer(r->timeouts));
	json_object_set_new(o, "valid", json_boolean(r->valid));
	if (isfinite(r->cpu_daemon) || isfinite(r->cpu_nats) || isfinite(r->cpu_bench)) {
		json_t *c = json_object();

		json_object_set_new(c, "daemon", num_or_null(r->cpu_daemon));
		json_object_set_new(c, "nats_server", num_or_null(r->cpu_nats));
		json_object_set_new(c, "bench", num_or_null(r->cpu_bench));
		json_object_set_new(o, "cpu_percent_of_one_core", c);
	}
	if (r->note[0])
		json_object_set_new(o, "note", json_string(r->note));
	return o;
}

/* ---- NATS ------------------------------------------------------------------------ */

natsConnection *connect_nats(const char *url, bool send_asap)
{
	natsOptions *o = NULL;
	natsConnection *nc = NULL;
	natsStatus s;

	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, url);
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(o, send_asap);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 5000);
	/* the engine and the async publisher must never be dropped as slow */
	if (s == NATS_OK)
		s = natsOptions_SetMaxPendingMsgs(o, 1 << 20);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
		fprintf(stderr, "bench: cannot connect to %s: %s\n", url,
			natsStatus_GetText(s));
		return NULL;
	}
	return nc;
}

int cim_req(natsConnection *nc, const char *subject, const char *body,
	    int len, int timeout_ms, natsMsg **reply)
{
	natsMsg *m = NULL;
	const char *st = NULL;
	natsStatus s;
	int rc;

	if (reply)
		*reply = NULL;
	s = natsConnection_Request(&m, nc, subject, body, len, timeout_ms);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		return -1;
	}
	rc = natsMsgHeader_Get(m, "Cim-Status", &st) == NATS_OK && st &&
			     strcmp(st, "200") == 0
		     ? 0
		     : 1;
	if (reply)
		*reply = m;
	else
		natsMsg_Destroy(m);
	return rc;
}

json_t *daemon_info(natsConnection *nc, const char *prefix, int timeout_ms)
{
	char subj[160];
	natsMsg *m = NULL;
	json_t *j = NULL;

	snprintf(subj, sizeof subj, "%s.info", prefix);
	if (cim_req(nc, subj, "{}", 2, timeout_ms, &m) == 0)
		j = json_loadb(natsMsg_GetData(m),
			       (size_t)natsMsg_GetDataLength(m), 0, NULL);
	natsMsg_Destroy(m);
	return j;
}

/* ---- bodies -------------------------------------------------------------------- */

/* About 200 bytes: an order-like object with a nested array, strings,
 * integers and floats. */
static const char DATA[] =
	"{\"order_id\":\"ord-000000004242\",\"customer\":\"cust-0017\","
	"\"currency\":\"EUR\",\"total\":129.95,\"items\":["
	"{\"sku\":\"sku-1001\",\"qty\":2,\"price\":19.99},"
	"{\"sku\":\"sku-2002\",\"qty\":1,\"price\":89.97}],"
	"\"note\":\"leave at the door, ring twice\"}";

const char *event_data(void) { return DATA; }

char *append_body(int n_events)
{
	static const char ev_head[] = "{\"event_type\":\"BenchEvent\",\"data\":";
	size_t one = strlen(ev_head) + strlen(DATA) + 2;
	size_t cap = 32 + (size_t)n_events * one;
	char *b = malloc(cap), *p;

	if (b == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(2);
	}
	p = b + sprintf(b, "{\"events\":[");
	for (int i = 0; i < n_events; i++)
		p += sprintf(p, "%s%s%s}", i ? "," : "", ev_head, DATA);
	sprintf(p, "]}");
	return b;
}

/* ---- the engine ------------------------------------------------------------------ */

typedef struct flight {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long outstanding, replies, errors;
	int64_t last_ns;
	int64_t *sent; /* per k: send time, 0 when answered */
	long cap;
	samples lat;
	char first_err[240];
} flight;

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m,
		     void *closure)
{
	flight *f = closure;
	const char *subj = natsMsg_GetSubject(m), *dot = strrchr(subj, '.');
	const char *st = NULL;
	long k = dot ? strtol(dot + 1, NULL, 10) : -1;
	bool ok = natsMsgHeader_Get(m, "Cim-Status", &st) == NATS_OK && st &&
		  strcmp(st, "200") == 0;
	int64_t t = now_ns();

	(void)nc;
	(void)sub;
	pthread_mutex_lock(&f->mu);
	if (!ok) {
		f->errors++;
		if (f->first_err[0] == '\0')
			snprintf(f->first_err, sizeof f->first_err,
				 "Cim-Status %s: %.*s",
				 st ? st
				    : (natsMsg_IsNoResponders(m) ? "none (no responders)"
								 : "none"),
				 natsMsg_GetDataLength(m) > 180
					 ? 180
					 : natsMsg_GetDataLength(m),
				 natsMsg_GetData(m) ? natsMsg_GetData(m) : "");
	}
	if (k >= 0 && k < f->cap && f->sent[k] != 0) {
		samples_add(&f->lat, (double)(t - f->sent[k]) / 1e3);
		f->sent[k] = 0;
		f->outstanding--;
		f->replies++;
	}
	f->last_ns = t;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	natsMsg_Destroy(m);
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += (long)ms * 1000000L;
	ts->tv_sec += ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

void engine(const engine_run *er, rate *out)
{
	flight f;
	natsInbox *inbox = NULL;
	natsSubscription *sub = NULL;
	char wild[128], subj[256], reply[160];
	int64_t t0, send_end, stall_ns = (int64_t)(er->stall_s * 1e9);
	long k, pub_fail = 0;
	bool stalled = false;
	natsStatus s;

	memset(out, 0, sizeof *out);
	out->ran = true;
	memset(&f, 0, sizeof f);
	pthread_mutex_init(&f.mu, NULL);
	pthread_cond_init(&f.cv, NULL);
	f.cap = er->max_requests;
	f.sent = calloc((size_t)f.cap, sizeof *f.sent);
	if (f.sent == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(2);
	}
	samples_init(&f.lat, (size_t)f.cap);

	s = natsInbox_Create(&inbox);
	if (s == NATS_OK) {
		snprintf(wild, sizeof wild, "%s.*", (const char *)inbox);
		s = natsConnection_Subscribe(&sub, er->nc, wild, on_reply, &f);
	}
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(sub, -1, -1);
	if (s == NATS_OK)
		s = natsConnection_Flush(er->nc);
	if (s != NATS_OK) {
		snprintf(out->note, sizeof out->note, "cannot subscribe: %s",
			 natsStatus_GetText(s));
		out->valid = false;
		goto done;
	}

	t0 = now_ns();
	f.last_ns = t0;
	send_end = er->seconds > 0 ? t0 + (int64_t)(er->seconds * 1e9) : INT64_MAX;
	for (k = 0; k < er->max_requests && !g_stop; k++) {
		if (now_ns() >= send_end)
			break;
		pthread_mutex_lock(&f.mu);
		while (f.outstanding >= er->inflight) {
			struct timespec ts;

			deadline_in(&ts, 100);
			pthread_cond_timedwait(&f.cv, &f.mu, &ts);
			if (now_ns() - f.last_ns > stall_ns || g_stop) {
				stalled = true;
				break;
			}
		}
		if (stalled) {
			pthread_mutex_unlock(&f.mu);
			break;
		}
		f.outstanding++;
		f.sent[k] = now_ns();
		pthread_mutex_unlock(&f.mu);

		er->subject(er->subject_ctx, k, subj, sizeof subj);
		snprintf(reply, sizeof reply, "%s.%ld", (const char *)inbox, k);
		s = natsConnection_PublishRequest(er->nc, subj, reply, er->body,
						  er->body_len);
		if (s != NATS_OK) {
			pthread_mutex_lock(&f.mu);
			if (f.sent[k] != 0) {
				f.sent[k] = 0;
				f.outstanding--;
			}
			pthread_mutex_unlock(&f.mu);
			if (++pub_fail >= 100)
				break;
		}
	}
	/* drain: wait for every outstanding reply, bounded by the stall time */
	pthread_mutex_lock(&f.mu);
	while (f.outstanding > 0) {
		struct timespec ts;

		deadline_in(&ts, 100);
		pthread_cond_timedwait(&f.cv, &f.mu, &ts);
		if (now_ns() - f.last_ns > stall_ns || g_stop)
			break;
	}
	out->timeouts = f.outstanding;
	out->requests = f.replies;
	out->errors = f.errors + pub_fail;
	out->seconds = (double)(f.last_ns - t0) / 1e9;
	pthread_mutex_unlock(&f.mu);

	/* late replies go nowhere: drain the subscription before freeing f */
	natsSubscription_Drain(sub);
	natsSubscription_WaitForDrainCompletion(sub, 5000);

	pthread_mutex_lock(&f.mu);
	out->events = (f.replies - f.errors) * er->events_per_request;
	if (out->seconds > 0) {
		out->per_s = (double)out->events / out->seconds;
		out->req_per_s = (double)f.replies / out->seconds;
	}
	out->p50 = samples_q(&f.lat, 0.50);
	out->p99 = samples_q(&f.lat, 0.99);
	out->valid = out->errors == 0 && out->timeouts == 0 && out->requests > 0;
	if (!out->valid) {
		if (f.first_err[0])
			snprintf(out->note, sizeof out->note, "INVALID: %ld errors, "
				 "%ld timeouts; first: %.140s", out->errors,
				 out->timeouts, f.first_err);
		else
			snprintf(out->note, sizeof out->note, "INVALID: %ld errors "
				 "(%ld publish failures), %ld timeouts%s",
				 out->errors, pub_fail, out->timeouts,
				 stalled ? " (stalled)" : "");
	}
	pthread_mutex_unlock(&f.mu);
done:
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
	samples_free(&f.lat);
	free(f.sent);
	pthread_cond_destroy(&f.cv);
	pthread_mutex_destroy(&f.mu);
}
