/*
 * load.c: the load generator, its journal and the checker (see load.h).
 */
#include "load.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event.h"

#define FL_MAX_BATCH 16
#define FL_MAX_PAD 65536
#define EID_MAX 96

static const char *const ev_types[] = {"Alpha", "Beta", "Gamma", "Delta"};
#define N_EV_TYPES (sizeof ev_types / sizeof ev_types[0])

/* ---- small things ------------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static int rnd_in(uint64_t *s, int lo, int hi)
{
	if (hi <= lo)
		return lo;
	return lo + (int)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL) {
		fprintf(stderr, "load: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL) {
		fprintf(stderr, "load: out of memory\n");
		abort();
	}
	return d;
}

/* Grows *p (of *cap elements of size sz) to hold at least need. */
static void grow(void *pp, size_t *cap, size_t need, size_t sz)
{
	void **p = pp;

	if (need <= *cap)
		return;
	size_t ncap = *cap ? *cap * 2 : 1024;
	while (ncap < need)
		ncap *= 2;
	void *q = realloc(*p, ncap * sz);
	if (q == NULL) {
		fprintf(stderr, "load: out of memory\n");
		abort();
	}
	*p = q;
	*cap = ncap;
}

const char *fl_outcome_name(fl_outcome o)
{
	switch (o) {
	case FL_ACKED: return "ACKED";
	case FL_REFUSED: return "REFUSED";
	case FL_UNANSWERED: return "UNANSWERED";
	}
	return "?";
}

/* ---- the load's state ---------------------------------------------------------- */

/* A logical append: one set of event_ids. */
struct app {
	uint16_t thread;
	uint16_t agg;
	uint8_t n;
	uint8_t attempts;
	uint32_t seq;       /* the thread's number for it */
	int64_t expected;   /* as sent: a version, or CIM_EXPECT_* */
};

struct agg {
	char id[96];
	char name[160]; /* type/id */
};

struct thread;

struct fl_load {
	fl_options o;
	char *url, *prefix, *agg_type, *stream, *events_subject;
	char tag[40];
	int naggs;
	struct agg *aggs;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct app *apps;
	size_t napps, capapps;
	fl_attempt *atts;
	size_t natts, capatts;
	fl_stats st;
	int running;

	atomic_bool stop;
	atomic_uint_fast64_t budget;
	/* what the daemons counted of pipelining (fl_note_daemon) */
	uint64_t chained, rerun;
	int64_t deadline_ms;
	struct thread *th;
	int nthreads;
	bool joined;
};

struct pending {
	bool on;           /* to be sent again */
	bool unknown;      /* an attempt got no answer */
	uint32_t app;
	int retries;
	int agg;
	size_t n;
	int64_t expected;
	char eids[FL_MAX_BATCH][EID_MAX];
	char *data[FL_MAX_BATCH];
	cim_new_event ev[FL_MAX_BATCH];
};

struct thread {
	fl_load *l;
	int idx;
	pthread_t tid;
	bool started;
	cim_client *c;
	uint64_t rng;
	int64_t *belief; /* per aggregate: the version believed, -1 unknown */
	uint32_t next_seq;
	struct pending p;
};

static void event_id(const fl_load *l, unsigned thread, uint32_t seq,
		     unsigned k, char out[EID_MAX])
{
	snprintf(out, EID_MAX, "%s-%02u-%06u-%u", l->tag, thread, (unsigned)seq, k);
}

static void lat(fl_load *l, int64_t ms)
{
	if (ms > l->st.max_latency_ms)
		l->st.max_latency_ms = ms;
}

/* ---- one thread ----------------------------------------------------------------- */

static fl_outcome classify(cim_err rc)
{
	switch (rc) {
	case CIM_ERR_OK:
		return FL_ACKED;
	case CIM_ERR_WRONG_EXPECTED_VERSION:
	case CIM_ERR_UNAVAILABLE:
	case CIM_ERR_DUPLICATE_EVENT:
	case CIM_ERR_INVALID_REQUEST:
	case CIM_ERR_INVALID_ARGUMENT:
	case CIM_ERR_PAYLOAD_TOO_LARGE:
	case CIM_ERR_NOT_FOUND:
	case CIM_ERR_NO_DAEMON: /* NATS had no subscriber: nobody got it */
		return FL_REFUSED;
	default:
		/* timeout, connection, internal, bad_reply, ...: unknown */
		return FL_UNANSWERED;
	}
}

/* Builds a new logical append for agg into t->p and records it. */
static void new_append(struct thread *t, int agg, int64_t expected)
{
	fl_load *l = t->l;
	struct pending *p = &t->p;
	uint32_t seq = t->next_seq++;

	for (size_t k = 0; k < p->n; k++)
		free(p->data[k]);
	memset(p, 0, sizeof(*p));
	p->agg = agg;
	p->n = (size_t)rnd_in(&t->rng, 1, l->o.max_batch);
	p->expected = expected;
	for (size_t k = 0; k < p->n; k++) {
		int pad = rnd_in(&t->rng, l->o.pad_min, l->o.pad_max);
		char *d = xcalloc(1, (size_t)pad + 128);
		int off = snprintf(d, 128, "{\"t\":%d,\"n\":%u,\"k\":%zu,\"pad\":\"",
				   t->idx, (unsigned)seq, k);
		memset(d + off, 'a' + (int)(k % 26), (size_t)pad);
		memcpy(d + off + pad, "\"}", 3);
		p->data[k] = d;
		event_id(l, (unsigned)t->idx, seq, (unsigned)k, p->eids[k]);
		p->ev[k] = (cim_new_event){
			.event_type = ev_types[rnd(&t->rng) % N_EV_TYPES],
			.data_json = d,
			.event_id = p->eids[k],
		};
	}
	pthread_mutex_lock(&l->mu);
	grow(&l->apps, &l->capapps, l->napps + 1, sizeof(*l->apps));
	p->app = (uint32_t)l->napps;
	l->apps[l->napps++] = (struct app){
		.thread = (uint16_t)t->idx, .agg = (uint16_t)agg,
		.n = (uint8_t)p->n, .seq = seq, .expected = expected,
	};
	pthread_mutex_unlock(&l->mu);
}

/* Sends t->p once and records the attempt; *code and *version (when
 * acked) say how it went. */
static fl_outcome attempt(struct thread *t, cim_err *code, uint64_t *version)
{
	fl_load *l = t->l;
	struct pending *p = &t->p;
	cim_append_result *res = NULL;
	cim_error err = {0};
	int64_t t0 = mono_ms(), t1;
	cim_err rc = cim_append(t->c, l->agg_type, l->aggs[p->agg].id,
				p->expected, p->ev, p->n, &res, &err);
	fl_attempt a = {0};

	t1 = mono_ms();
	a.append = p->app;
	a.retry = (uint8_t)p->retries;
	a.outcome = (uint8_t)classify(rc);
	a.code = (uint8_t)rc;
	a.start_ms = t0;
	a.end_ms = t1;
	if (rc == CIM_ERR_OK) {
		a.version = res->version;
		a.cids = xcalloc(p->n, sizeof(*a.cids));
		a.seqs = xcalloc(p->n, sizeof(*a.seqs));
		for (size_t k = 0; k < p->n && k < res->n_events; k++) {
			snprintf(a.cids[k], CIM_CID_TEXT_MAX, "%s", res->events[k].cid);
			a.seqs[k] = res->events[k].seq;
		}
		if (res->n_events != p->n) {
			/* the checker will see the mismatch through version */
			char m[128];
			snprintf(m, sizeof(m), "the ack lists %zu events for %zu sent",
				 res->n_events, p->n);
			a.message = xstrdup(m);
		}
	} else {
		a.message = xstrdup(err.message);
	}
	cim_append_result_destroy(res);
	*code = rc;
	*version = a.version;

	pthread_mutex_lock(&l->mu);
	grow(&l->atts, &l->capatts, l->natts + 1, sizeof(*l->atts));
	l->atts[l->natts++] = a;
	l->apps[p->app].attempts++;
	l->st.attempts++;
	l->st.by_code[rc < CIM_ERR__COUNT ? rc : CIM_ERR_INTERNAL]++;
	if (rc != CIM_ERR_OK && rc < CIM_ERR__COUNT && l->st.sample[rc][0] == '\0')
		snprintf(l->st.sample[rc], sizeof(l->st.sample[rc]), "%.250s", err.message);
	if (p->retries > 0)
		l->st.retries++;
	switch ((fl_outcome)a.outcome) {
	case FL_ACKED:
		l->st.acked++;
		l->st.acked_events += p->n;
		l->st.last_ack_ms = t1;
		break;
	case FL_REFUSED:
		l->st.refused++;
		break;
	case FL_UNANSWERED:
		l->st.unanswered++;
		break;
	}
	lat(l, t1 - t0);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	return (fl_outcome)a.outcome;
}

/* Reads the head of agg into t->belief; false when it cannot. */
static bool read_head(struct thread *t, int agg)
{
	fl_load *l = t->l;
	cim_head h;
	cim_error err = {0};
	int64_t t0 = mono_ms();
	cim_err rc = cim_get_head(t->c, l->agg_type, l->aggs[agg].id, &h, &err);
	int64_t t1 = mono_ms();

	pthread_mutex_lock(&l->mu);
	l->st.head_reads++;
	if (rc != CIM_ERR_OK)
		l->st.head_failures++;
	lat(l, t1 - t0);
	pthread_mutex_unlock(&l->mu);
	if (rc != CIM_ERR_OK)
		return false;
	t->belief[agg] = (int64_t)h.version;
	return true;
}

static bool go_on(struct thread *t)
{
	fl_load *l = t->l;

	return !atomic_load(&l->stop) && mono_ms() < l->deadline_ms;
}

static bool take_budget(fl_load *l)
{
	if (l->o.max_appends == 0)
		return true;
	return atomic_fetch_add(&l->budget, 1) < l->o.max_appends;
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	fl_load *l = t->l;
	int own = l->o.own_aggs, shared = l->o.shared_aggs;

	while (go_on(t)) {
		struct pending *p = &t->p;
		fl_outcome out;
		cim_err code = CIM_ERR_OK;
		uint64_t version = 0;

		if (!p->on) {
			int agg, hot = l->naggs - 1;
			if (rnd_in(&t->rng, 1, 100) <= l->o.hot_percent)
				agg = hot;
			else if (shared > 0 && rnd_in(&t->rng, 1, 100) <= l->o.shared_percent)
				agg = l->o.threads * own + rnd_in(&t->rng, 0, shared - 1);
			else
				agg = t->idx * own + rnd_in(&t->rng, 0, own - 1);
			if (agg != hot && t->belief[agg] < 0 && !read_head(t, agg)) {
				sleep_ms(rnd_in(&t->rng, 20, 60));
				continue;
			}
			if (!take_budget(l))
				break;
			new_append(t, agg, agg == hot ? CIM_EXPECT_ANY : t->belief[agg]);
		} else {
			if (!take_budget(l))
				break;
			p->retries++;
		}
		out = attempt(t, &code, &version);
		p->on = false;
		switch (out) {
		case FL_ACKED:
			t->belief[p->agg] = (int64_t)version;
			/* a retry answered from the original may be behind */
			if (p->retries > 0)
				t->belief[p->agg] = -1;
			break;
		case FL_REFUSED:
			if (code != CIM_ERR_UNAVAILABLE && code != CIM_ERR_NO_DAEMON) {
				t->belief[p->agg] = -1;
				break;
			}
			/* nothing stored by this attempt; a retry whose original
			 * is still unknown is tried again later */
			p->on = p->unknown && p->retries < l->o.max_retries;
			sleep_ms(code == CIM_ERR_NO_DAEMON ? rnd_in(&t->rng, 50, 200)
							   : rnd_in(&t->rng, 20, 100));
			break;
		case FL_UNANSWERED:
			t->belief[p->agg] = -1;
			p->unknown = true;
			if (p->retries < l->o.max_retries && l->o.retry_percent > 0 &&
			    rnd_in(&t->rng, 1, 100) <= l->o.retry_percent)
				p->on = true;
			/* a retry comes a little later, when the daemon may be back */
			sleep_ms(p->on ? rnd_in(&t->rng, 200, 1500) : rnd_in(&t->rng, 10, 100));
			break;
		}
		if (l->o.pause_ms > 0)
			sleep_ms(l->o.pause_ms);
	}
	pthread_mutex_lock(&l->mu);
	l->running--;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* ---- starting and stopping -------------------------------------------------------- */

/* How many URLs a comma-separated list holds. */
static int url_count(const char *list)
{
	int n = 1;

	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

/* The (i mod count)-th URL of a comma-separated list. */
static void nth_url(const char *list, int i, char *out, size_t n)
{
	int k = i % url_count(list);
	const char *p = list;

	while (k-- > 0)
		p = strchr(p, ',') + 1;
	while (*p == ' ')
		p++;
	size_t len = strcspn(p, ",");
	snprintf(out, n, "%.*s", (int)len, p);
}

int fl_scale(int small, int full)
{
	const char *s = getenv("CIM_FAULT_SCALE");

	return s != NULL && strcmp(s, "full") == 0 ? full : small;
}

bool fl_full(void)
{
	return fl_scale(0, 1) == 1;
}

static void defaults(fl_options *o)
{
	if (o->threads <= 0) o->threads = 16;
	if (o->own_aggs <= 0) o->own_aggs = 3;
	if (o->shared_aggs == 0) o->shared_aggs = 4;
	if (o->shared_aggs < 0) o->shared_aggs = 0;
	if (o->shared_percent <= 0) o->shared_percent = 30;
	if (o->hot_percent == 0) o->hot_percent = 20;
	if (o->hot_percent < 0) o->hot_percent = 0;
	if (o->max_batch <= 0) o->max_batch = 5;
	if (o->max_batch > FL_MAX_BATCH) o->max_batch = FL_MAX_BATCH;
	if (o->retry_percent == 0) o->retry_percent = 50;
	if (o->retry_percent < 0) o->retry_percent = 0;
	if (o->max_retries <= 0) o->max_retries = 3;
	if (o->pad_min == 0 && o->pad_max == 0) o->pad_max = 64;
	if (o->pad_max > FL_MAX_PAD) o->pad_max = FL_MAX_PAD;
	if (o->pad_min > o->pad_max) o->pad_min = o->pad_max;
	if (o->timeout_ms <= 0) o->timeout_ms = 2000;
	if (o->max_ms <= 0) o->max_ms = 60000;
}

fl_load *fl_start(const fl_options *opts, char *why, size_t whylen)
{
	fl_load *l = xcalloc(1, sizeof(*l));
	cim_client_options co;

	l->o = *opts;
	defaults(&l->o);
	l->url = xstrdup(opts->url ? opts->url : "nats://127.0.0.1:4222");
	l->prefix = opts->prefix ? xstrdup(opts->prefix) : NULL;
	l->agg_type = xstrdup(opts->agg_type ? opts->agg_type : "fault");
	l->stream = xstrdup(opts->stream ? opts->stream : "CIM-EVENTS");
	l->events_subject = xstrdup(opts->events_subject ? opts->events_subject : "events");
	if (opts->tag)
		snprintf(l->tag, sizeof(l->tag), "%s", opts->tag);
	else
		snprintf(l->tag, sizeof(l->tag), "L%x%llx", (unsigned)getpid() & 0xffff,
			 (unsigned long long)(mono_ms() & 0xffffff));
	if (l->o.seed == 0)
		l->o.seed = (unsigned)(mono_ms() ^ (getpid() << 8));
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);

	/* the own ones, the shared ones, then the hot one */
	l->naggs = l->o.threads * l->o.own_aggs + l->o.shared_aggs + 1;
	l->aggs = xcalloc((size_t)l->naggs, sizeof(*l->aggs));
	for (int i = 0; i < l->naggs; i++) {
		struct agg *a = &l->aggs[i];
		if (i < l->o.threads * l->o.own_aggs)
			snprintf(a->id, sizeof(a->id), "%s-t%02d-a%d", l->tag,
				 i / l->o.own_aggs, i % l->o.own_aggs);
		else if (i < l->naggs - 1)
			snprintf(a->id, sizeof(a->id), "%s-shared-%d", l->tag,
				 i - l->o.threads * l->o.own_aggs);
		else
			snprintf(a->id, sizeof(a->id), "%s-hot", l->tag);
		snprintf(a->name, sizeof(a->name), "%s/%s", l->agg_type, a->id);
	}

	l->nthreads = l->o.threads;
	l->th = xcalloc((size_t)l->nthreads, sizeof(*l->th));
	co.prefix = l->prefix;
	co.timeout_ms = l->o.timeout_ms;
	for (int i = 0; i < l->nthreads; i++) {
		struct thread *t = &l->th[i];
		cim_error err = {0};
		char url[256];

		t->l = l;
		t->idx = i;
		t->rng = ((uint64_t)l->o.seed << 16) ^ (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ULL;
		if (t->rng == 0)
			t->rng = 1;
		t->belief = xcalloc((size_t)l->naggs, sizeof(*t->belief));
		for (int k = 0; k < l->naggs; k++)
			t->belief[k] = -1;
		nth_url(l->url, i, url, sizeof(url));
		if (cim_client_connect(&t->c, url, &co, &err) != CIM_ERR_OK) {
			snprintf(why, whylen, "load: client %d cannot connect to %s: %s",
				 i, url, err.message);
			fl_free(l);
			return NULL;
		}
	}
	l->deadline_ms = mono_ms() + l->o.max_ms;
	l->running = l->nthreads;
	for (int i = 0; i < l->nthreads; i++) {
		if (pthread_create(&l->th[i].tid, NULL, thread_main, &l->th[i]) != 0) {
			snprintf(why, whylen, "load: pthread_create: %s", strerror(errno));
			pthread_mutex_lock(&l->mu);
			l->running -= l->nthreads - i;
			pthread_mutex_unlock(&l->mu);
			fl_free(l);
			return NULL;
		}
		l->th[i].started = true;
	}
	return l;
}

void fl_stop(fl_load *l)
{
	atomic_store(&l->stop, true);
}

void fl_join(fl_load *l)
{
	if (l->joined)
		return;
	for (int i = 0; i < l->nthreads; i++)
		if (l->th[i].started)
			pthread_join(l->th[i].tid, NULL);
	l->joined = true;
}

void fl_free(fl_load *l)
{
	if (l == NULL)
		return;
	fl_stop(l);
	fl_join(l);
	for (int i = 0; i < l->nthreads; i++) {
		struct thread *t = &l->th[i];
		cim_client_destroy(t->c);
		free(t->belief);
		for (size_t k = 0; k < t->p.n; k++)
			free(t->p.data[k]);
	}
	for (size_t i = 0; i < l->natts; i++) {
		free(l->atts[i].message);
		free(l->atts[i].cids);
		free(l->atts[i].seqs);
	}
	free(l->atts);
	free(l->apps);
	free(l->aggs);
	free(l->th);
	free(l->url);
	free(l->prefix);
	free(l->agg_type);
	free(l->stream);
	free(l->events_subject);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}

void fl_get_stats(fl_load *l, fl_stats *s)
{
	pthread_mutex_lock(&l->mu);
	*s = l->st;
	s->running = l->running > 0;
	pthread_mutex_unlock(&l->mu);
}

uint64_t fl_acked_since(fl_load *l, int64_t since_ms)
{
	uint64_t n = 0;

	pthread_mutex_lock(&l->mu);
	for (size_t i = l->natts; i-- > 0;) {
		if (l->atts[i].outcome == FL_ACKED && l->atts[i].end_ms >= since_ms)
			n++;
	}
	pthread_mutex_unlock(&l->mu);
	return n;
}

uint64_t fl_wait_acks(fl_load *l, uint64_t n, int64_t timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	uint64_t start, got;

	pthread_mutex_lock(&l->mu);
	start = l->st.acked;
	while (l->st.acked - start < n && l->running > 0) {
		int64_t left = end - mono_ms();
		struct timespec ts;
		if (left <= 0)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	}
	got = l->st.acked - start;
	pthread_mutex_unlock(&l->mu);
	return got;
}

size_t fl_attempt_count(const fl_load *l)
{
	return l->natts;
}

const fl_attempt *fl_attempt_get(const fl_load *l, size_t i)
{
	return i < l->natts ? &l->atts[i] : NULL;
}

const char *fl_append_aggregate(const fl_load *l, uint32_t append)
{
	return append < l->napps ? l->aggs[l->apps[append].agg].name : "?";
}

const char *fl_aggregate_type(const fl_load *l)
{
	return l->agg_type;
}

int fl_aggregate_count(const fl_load *l)
{
	return l->naggs;
}

const char *fl_aggregate_id(const fl_load *l, int i)
{
	return i >= 0 && i < l->naggs ? l->aggs[i].id : NULL;
}

static void print_expected(FILE *out, int64_t e)
{
	if (e == CIM_EXPECT_ANY)
		fprintf(out, "any");
	else if (e == CIM_EXPECT_NO_STREAM || e == 0)
		fprintf(out, "no_stream");
	else if (e == CIM_EXPECT_EXISTS)
		fprintf(out, "exists");
	else
		fprintf(out, "%lld", (long long)e);
}

void fl_print_append(FILE *out, const fl_load *l, uint32_t append)
{
	const struct app *a;
	char eid[EID_MAX];

	if (append >= l->napps) {
		fprintf(out, "  append #%u: not in the journal\n", append);
		return;
	}
	a = &l->apps[append];
	event_id(l, a->thread, a->seq, 0, eid);
	fprintf(out, "  append #%u: thread %u, %s, %u event(s) %s..%u, expected ",
		append, a->thread, l->aggs[a->agg].name, a->n, eid, a->n - 1);
	print_expected(out, a->expected);
	fprintf(out, ", %u attempt(s)\n", a->attempts);
	for (size_t i = 0; i < l->natts; i++) {
		const fl_attempt *t = &l->atts[i];
		if (t->append != append)
			continue;
		fprintf(out, "    attempt %u: %s %s after %lld ms (t=%lld..%lld)",
			t->retry, fl_outcome_name((fl_outcome)t->outcome),
			cim_err_name((cim_err)t->code), (long long)(t->end_ms - t->start_ms),
			(long long)t->start_ms, (long long)t->end_ms);
		if (t->outcome == FL_ACKED) {
			fprintf(out, ": version %llu", (unsigned long long)t->version);
			for (unsigned k = 0; k < a->n; k++)
				fprintf(out, "%s v%llu seq %llu %s", k ? "," : " (",
					(unsigned long long)(t->version - a->n + 1 + k),
					(unsigned long long)t->seqs[k], t->cids[k]);
			fprintf(out, ")");
		}
		if (t->message)
			fprintf(out, ": %s", t->message);
		fprintf(out, "\n");
	}
}

/* ---- the checker ------------------------------------------------------------------- */

/* One message of the stream. */
struct raw {
	int agg;            /* index in l->aggs, -1: not the load's */
	uint64_t version, seq;
	unsigned bidx, bcount;
	char *eid;
	char cid[CIM_CID_TEXT_MAX];
	char prev[CIM_CID_TEXT_MAX]; /* "" at version 1 */
	char etype[24];     /* the subject's last token */
	int claimed;        /* by a logical append */
};

struct checker {
	fl_load *l;
	FILE *rep;
	size_t max_report, reported;
	uint64_t violations;
	struct raw *raw;
	size_t nraw, capraw;
	json_t *by_eid;     /* event_id -> index of its first message */
	json_t *eid_count;  /* event_id -> how many messages carry it */
	json_t *agg_index;  /* aggregate id -> index */
	size_t **per_agg;   /* raw indexes of each aggregate, by version */
	size_t *per_agg_n;
	uint64_t *head;     /* the daemon's head version per aggregate */
	bool *head_known;   /* false where get failed */
	uint64_t daemon_failures;
	int shown_aggs;
};

static void violation(struct checker *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void violation(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	c->violations++;
	if (c->reported++ >= c->max_report) {
		if (c->reported == c->max_report + 1)
			fprintf(c->rep, "CHECK: more violations follow, not shown\n");
		return;
	}
	fprintf(c->rep, "CHECK VIOLATION: ");
	va_start(ap, fmt);
	vfprintf(c->rep, fmt, ap);
	va_end(ap);
	fprintf(c->rep, "\n");
}

static bool showing(const struct checker *c)
{
	return c->reported <= c->max_report;
}

static const char *hdr(natsMsg *m, const char *key)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(m, key, &v) != NATS_OK)
		return NULL;
	return v;
}

/* Records one stream message. */
static void raw_visit(struct checker *c, natsMsg *m, uint64_t seq)
{
	fl_load *l = c->l;
	const char *subj = natsMsg_GetSubject(m);
	const uint8_t *data = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	const char *h_eid = hdr(m, "Cim-Event-Id"), *h_ver = hdr(m, "Cim-Version");
	const char *h_cid = hdr(m, "Cim-Cid"), *h_batch = hdr(m, "Cim-Batch");
	size_t plen = strlen(l->events_subject);
	char typ[160] = "", id[200] = "", err[200] = "";
	cim_event_view v;
	cim_cid cid;
	struct raw *r;
	json_t *cnt;

	/* exactly once per Cim-Event-Id, over the whole stream */
	if (h_eid != NULL) {
		cnt = json_object_get(c->eid_count, h_eid);
		json_object_set_new(c->eid_count, h_eid,
				    json_integer(cnt ? json_integer_value(cnt) + 1 : 1));
	}
	if (strncmp(subj, l->events_subject, plen) != 0 || subj[plen] != '.')
		return;
	if (sscanf(subj + plen + 1, "%159[^.].%199[^.].", typ, id) != 2)
		return;
	/* the load's aggregates: its type, ids starting with its tag */
	size_t tl = strlen(l->tag);
	if (strcmp(typ, l->agg_type) != 0 || strncmp(id, l->tag, tl) != 0 || id[tl] != '-')
		return;
	json_t *ai = json_object_get(c->agg_index, id);

	grow(&c->raw, &c->capraw, c->nraw + 1, sizeof(*c->raw));
	r = &c->raw[c->nraw++];
	memset(r, 0, sizeof(*r));
	r->agg = ai ? (int)json_integer_value(ai) : -1;
	r->seq = seq;
	{
		const char *et = strrchr(subj, '.');
		snprintf(r->etype, sizeof(r->etype), "%s", et ? et + 1 : "?");
	}
	r->bidx = r->bcount = 1;
	if (h_batch != NULL && sscanf(h_batch, "%u/%u", &r->bidx, &r->bcount) != 2)
		r->bidx = r->bcount = 0;
	if (r->agg < 0) {
		violation(c, "seq %llu on %s: an aggregate named like the load's that "
			  "the load never wrote", (unsigned long long)seq, subj);
		r->eid = xstrdup(h_eid ? h_eid : "");
		return;
	}
	if (cim_event_check(data, len, &v, err, sizeof(err)) != 0) {
		violation(c, "seq %llu on %s does not decode as an event block: %s",
			  (unsigned long long)seq, subj, err);
		r->eid = xstrdup(h_eid ? h_eid : "");
		return;
	}
	r->version = v.version;
	r->eid = xcalloc(1, v.event_id_len + 1);
	memcpy(r->eid, v.event_id, v.event_id_len);
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, data, len);
	cim_cid_to_text(&cid, r->cid);
	if (v.has_prev)
		cim_cid_to_text(&v.prev, r->prev);
	if (v.aggregate_type_len != strlen(typ) || memcmp(v.aggregate_type, typ, v.aggregate_type_len) ||
	    v.aggregate_id_len != strlen(id) || memcmp(v.aggregate_id, id, v.aggregate_id_len))
		violation(c, "seq %llu on %s: the block names aggregate %.*s/%.*s",
			  (unsigned long long)seq, subj, (int)v.aggregate_type_len,
			  v.aggregate_type, (int)v.aggregate_id_len, v.aggregate_id);
	if (h_ver == NULL || strtoull(h_ver, NULL, 10) != v.version)
		violation(c, "seq %llu on %s: Cim-Version %s, block version %llu",
			  (unsigned long long)seq, subj, h_ver ? h_ver : "(none)",
			  (unsigned long long)v.version);
	if (h_eid == NULL || strcmp(h_eid, r->eid) != 0)
		violation(c, "seq %llu on %s: Cim-Event-Id %s, block event_id %s",
			  (unsigned long long)seq, subj, h_eid ? h_eid : "(none)", r->eid);
	if (h_cid == NULL || strcmp(h_cid, r->cid) != 0)
		violation(c, "seq %llu on %s: Cim-Cid %s, computed %s",
			  (unsigned long long)seq, subj, h_cid ? h_cid : "(none)", r->cid);
	if (json_object_get(c->by_eid, r->eid) == NULL)
		json_object_set_new(c->by_eid, r->eid, json_integer((json_int_t)(c->nraw - 1)));
}

/* Reads every message of the stream, one by one by sequence, through
 * the stream's leader (a consumer may sit on a replica whose copy lags or,
 * on nats-server 2.9.10 after a leader is killed, differs). */
static int scan_stream(struct checker *c, jsCtx *js, uint64_t *count)
{
	fl_load *l = c->l;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s;
	uint64_t first, last;
	size_t plen = strlen(l->events_subject);
	int64_t end = mono_ms() + 600000;

	*count = 0;
	s = js_GetStreamInfo(&si, js, l->stream, NULL, &je);
	if (s != NATS_OK) {
		fprintf(c->rep, "CHECK: stream info of %s: %s (%d)\n", l->stream,
			natsStatus_GetText(s), (int)je);
		return -1;
	}
	first = si->State.FirstSeq;
	last = si->State.LastSeq;
	uint64_t msgs = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	if (msgs == 0)
		return 0;
	for (uint64_t seq = first; seq <= last; seq++) {
		natsMsg *m = NULL;
		int tries = 0;
		do {
			je = 0;
			s = js_GetMsg(&m, js, l->stream, seq, NULL, &je);
			if (s == NATS_OK || s == NATS_NOT_FOUND || je == JSNoMessageFoundErr)
				break;
			usleep(200 * 1000); /* between leaders */
		} while (++tries < 50 && mono_ms() < end);
		if (s == NATS_NOT_FOUND || je == JSNoMessageFoundErr)
			continue; /* removed */
		if (s != NATS_OK) {
			fprintf(c->rep, "CHECK: reading the stream at seq %llu: %s (%d)\n",
				(unsigned long long)seq, natsStatus_GetText(s), (int)je);
			return -1;
		}
		const char *subj = natsMsg_GetSubject(m);
		if (strncmp(subj, l->events_subject, plen) == 0 && subj[plen] == '.') {
			(*count)++;
			raw_visit(c, m, seq);
		}
		natsMsg_Destroy(m);
	}
	return 0;
}

static void show_agg(struct checker *c, int a, uint64_t around);

static int cmp_raw_version(const void *a, const void *b, void *ctx)
{
	const struct raw *raw = ctx;
	const struct raw *x = &raw[*(const size_t *)a], *y = &raw[*(const size_t *)b];

	if (x->version != y->version)
		return x->version < y->version ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Per aggregate: what the stream holds, in version order. */
static void check_chains(struct checker *c)
{
	fl_load *l = c->l;

	c->per_agg = xcalloc((size_t)l->naggs, sizeof(*c->per_agg));
	c->per_agg_n = xcalloc((size_t)l->naggs, sizeof(*c->per_agg_n));
	c->head = xcalloc((size_t)l->naggs, sizeof(*c->head));
	c->head_known = xcalloc((size_t)l->naggs, sizeof(*c->head_known));
	for (size_t i = 0; i < c->nraw; i++)
		if (c->raw[i].agg >= 0 && c->raw[i].version > 0)
			c->per_agg_n[c->raw[i].agg]++;
	for (int a = 0; a < l->naggs; a++)
		c->per_agg[a] = xcalloc(c->per_agg_n[a], sizeof(size_t));
	size_t *fill = xcalloc((size_t)l->naggs, sizeof(size_t));
	for (size_t i = 0; i < c->nraw; i++)
		if (c->raw[i].agg >= 0 && c->raw[i].version > 0)
			c->per_agg[c->raw[i].agg][fill[c->raw[i].agg]++] = i;
	free(fill);

	for (int a = 0; a < l->naggs; a++) {
		size_t n = c->per_agg_n[a];
		size_t *ix = c->per_agg[a];
		qsort_r(ix, n, sizeof(size_t), cmp_raw_version, c->raw);
		uint64_t want = 1;
		const char *prev = "";
		bool ok = true;
		uint64_t before = c->violations, first_bad = 0;
		for (size_t k = 0; k < n; k++) {
			struct raw *r = &c->raw[ix[k]];
			if (k > 0 && c->raw[ix[k - 1]].version == r->version) {
				if (!first_bad)
					first_bad = r->version;
				violation(c, "%s: version %llu is stored more than once "
					  "(seqs %llu and %llu, event_ids %s and %s)",
					  l->aggs[a].name, (unsigned long long)r->version,
					  (unsigned long long)c->raw[ix[k - 1]].seq,
					  (unsigned long long)r->seq, c->raw[ix[k - 1]].eid, r->eid);
				ok = false;
				continue;
			}
			if (r->version != want) {
				if (!first_bad)
					first_bad = want;
				violation(c, "%s: version %llu stored (seq %llu, event_id %s) "
					  "where version %llu was due: a gap",
					  l->aggs[a].name, (unsigned long long)r->version,
					  (unsigned long long)r->seq, r->eid,
					  (unsigned long long)want);
				ok = false;
				want = r->version;
			}
			if (ok && strcmp(r->prev, prev) != 0 && !first_bad)
				first_bad = r->version;
			if (ok && strcmp(r->prev, prev) != 0)
				violation(c, "%s: version %llu (seq %llu) links to %s, "
					  "the event before is %s", l->aggs[a].name,
					  (unsigned long long)r->version,
					  (unsigned long long)r->seq,
					  r->prev[0] ? r->prev : "null", prev[0] ? prev : "null");
			prev = r->cid;
			want++;
		}
		if (c->violations > before)
			show_agg(c, a, first_bad);
	}
}

/* What the stream holds for aggregate a, one line per message (for the
 * first few aggregates with a violation). */
static void show_agg(struct checker *c, int a, uint64_t around)
{
	size_t from = 0, to;

	if (c->shown_aggs >= 8 || !showing(c) || c->per_agg == NULL)
		return;
	c->shown_aggs++;
	/* the messages near version `around` (by position in version order) */
	for (size_t k = 0; k < c->per_agg_n[a]; k++)
		if (c->raw[c->per_agg[a][k]].version + 8 >= around) {
			from = k;
			break;
		}
	to = from + 16 < c->per_agg_n[a] ? from + 16 : c->per_agg_n[a];
	fprintf(c->rep, "  the stream holds for %s (%zu messages; those from position %zu):\n",
		c->l->aggs[a].name, c->per_agg_n[a], from);
	for (size_t k = from; k < to; k++) {
		struct raw *r = &c->raw[c->per_agg[a][k]];
		fprintf(c->rep, "    seq %llu: version %llu, %s, %s, batch %u/%u, cid %s, prev %s\n",
			(unsigned long long)r->seq, (unsigned long long)r->version, r->etype,
			r->eid, r->bidx, r->bcount, r->cid, r->prev[0] ? r->prev : "null");
	}
}

/* Per aggregate: the daemon's view (every get page, then validate) against
 * the stream. Returns -1 when the daemon cannot be asked. */
static int check_daemon(struct checker *c, cim_client *cl, uint64_t *checked)
{
	fl_load *l = c->l;
	int answered = 0;

	for (int a = 0; a < l->naggs; a++) {
		const char *id = l->aggs[a].id, *name = l->aggs[a].name;
		uint64_t from = 1, head = 0, seen = 0;
		cim_error err = {0};
		cim_err rc;
		bool failed = false;

		for (int pages = 0; pages < 100000; pages++) {
			cim_event_page *p = NULL;
			rc = cim_get(cl, l->agg_type, id, from, 0, &p, &err);
			if (rc != CIM_ERR_OK) {
				violation(c, "%s: get from version %llu: %s: %s", name,
					  (unsigned long long)from, cim_err_name(rc), err.message);
				bool transport = rc == CIM_ERR_TIMEOUT || rc == CIM_ERR_NO_DAEMON ||
						 rc == CIM_ERR_CONNECTION;
				if (transport && ++c->daemon_failures >= 5 && answered == 0) {
					fprintf(c->rep, "CHECK: the daemon does not answer "
						"(%s)\n", err.message);
					return -1;
				}
				failed = true;
				break;
			}
			if (pages == 0)
				head = p->version;
			else if (p->version != head)
				violation(c, "%s: the head moved from %llu to %llu during "
					  "the check (is the load stopped?)", name,
					  (unsigned long long)head, (unsigned long long)p->version);
			for (size_t k = 0; k < p->n_events; k++) {
				const cim_event *e = &p->events[k];
				uint64_t v = e->version;
				seen++;
				if (v != seen) {
					violation(c, "%s: get gave version %llu where %llu was due",
						  name, (unsigned long long)v,
						  (unsigned long long)seen);
					seen = v;
				}
				if (v == 0 || v > c->per_agg_n[a]) {
					violation(c, "%s: get shows version %llu (event_id %s, "
						  "seq %llu) that the stream does not hold",
						  name, (unsigned long long)v, e->event_id,
						  (unsigned long long)e->seq);
					continue;
				}
				struct raw *r = &c->raw[c->per_agg[a][v - 1]];
				if (r->version != v || strcmp(r->eid, e->event_id) != 0 ||
				    strcmp(r->cid, e->cid) != 0 || r->seq != e->seq)
					violation(c, "%s: get shows version %llu as %s %s seq %llu; "
						  "the stream holds %s %s seq %llu at version %llu",
						  name, (unsigned long long)v, e->event_id, e->cid,
						  (unsigned long long)e->seq, r->eid, r->cid,
						  (unsigned long long)r->seq,
						  (unsigned long long)r->version);
				if (strcmp(e->prev ? e->prev : "", r->prev) != 0)
					violation(c, "%s: get shows prev %s at version %llu, the "
						  "block holds %s", name, e->prev ? e->prev : "null",
						  (unsigned long long)v, r->prev[0] ? r->prev : "null");
			}
			from = p->next_from_version;
			cim_event_page_destroy(p);
			if (from == 0)
				break;
		}
		if (!failed)
			answered++;
		if (failed) {
			/* once more, to tell a lasting fault from a passing one */
			cim_event_page *p2 = NULL;
			sleep_ms(1000);
			rc = cim_get(cl, l->agg_type, id, 1, 0, &p2, &err);
			if (showing(c))
				fprintf(c->rep, "  get %s again 1 s later: %s%s%s\n", name,
					cim_err_name(rc), rc ? ": " : "", rc ? err.message : "");
			cim_event_page_destroy(p2);
			show_agg(c, a, seen + 1);
			/* the daemon's head is not known: acks are held to the
			 * stream only */
			c->head[a] = c->per_agg_n[a];
			continue;
		}
		c->head_known[a] = true;
		if (seen != head)
			violation(c, "%s: get gave %llu events for head %llu", name,
				  (unsigned long long)seen, (unsigned long long)head);
		c->head[a] = head;
		*checked += seen;
		if (head > c->per_agg_n[a])
			violation(c, "%s: the daemon's head is %llu, the stream holds %zu "
				  "events", name, (unsigned long long)head, c->per_agg_n[a]);

		cim_validation val;
		memset(&val, 0, sizeof(val));
		rc = cim_validate(cl, l->agg_type, id, &val, &err);
		if (rc != CIM_ERR_OK)
			violation(c, "%s: validate: %s: %s", name, cim_err_name(rc),
				  err.message);
		else if (!val.valid) {
			violation(c, "%s: validate: %s at version %llu: %s", name,
				  val.failure_reason, (unsigned long long)val.failure_version,
				  val.failure_detail);
			show_agg(c, a, val.failure_version);
			/* once more, to tell a lasting fault from a passing one */
			sleep_ms(1000);
			cim_validation again;
			memset(&again, 0, sizeof(again));
			rc = cim_validate(cl, l->agg_type, id, &again, &err);
			if (showing(c))
				fprintf(c->rep, "  validate %s again 1 s later: %s%s%s\n", name,
					rc != CIM_ERR_OK ? cim_err_name(rc)
					: again.valid ? "valid" : again.failure_reason,
					rc == CIM_ERR_OK && !again.valid ? ": " : "",
					rc == CIM_ERR_OK && !again.valid ? again.failure_detail : "");
		}
		else if (val.version != c->per_agg_n[a])
			/* validate reads what is stored, past the head too */
			violation(c, "%s: validate says version %llu, the stream holds %zu "
				  "events (get: head %llu)", name, (unsigned long long)val.version,
				  c->per_agg_n[a], (unsigned long long)head);
	}
	return 0;
}

/* Per logical append: against the stream and the daemon's heads. */
static void check_journal(struct checker *c, fl_figures *f)
{
	fl_load *l = c->l;
	size_t *first = xcalloc(l->napps + 1, sizeof(size_t));
	size_t *order = xcalloc(l->natts + 1, sizeof(size_t));
	size_t *fill;

	/* attempts grouped by append */
	for (size_t i = 0; i < l->natts; i++)
		first[l->atts[i].append + 1]++;
	for (size_t a = 0; a < l->napps; a++)
		first[a + 1] += first[a];
	fill = xcalloc(l->napps + 1, sizeof(size_t));
	for (size_t i = 0; i < l->natts; i++) {
		uint32_t a = l->atts[i].append;
		order[first[a] + fill[a]++] = i;
	}
	free(fill);

	f->appends = l->napps;
	f->attempts = l->natts;
	for (uint32_t a = 0; a < l->napps; a++) {
		const struct app *ap = &l->apps[a];
		size_t nat = first[a + 1] - first[a];
		size_t idx[FL_MAX_BATCH];
		unsigned present = 0, acks = 0, unans = 0, refused_odd = 0;
		bool bad = false;
		char eid[EID_MAX];

		if (nat == 0)
			continue; /* made, never sent (the load stopped) */
		for (unsigned k = 0; k < ap->n; k++) {
			json_t *j;
			event_id(l, ap->thread, ap->seq, k, eid);
			j = json_object_get(c->by_eid, eid);
			idx[k] = j ? (size_t)json_integer_value(j) : SIZE_MAX;
			if (j == NULL)
				continue;
			present++;
			c->raw[idx[k]].claimed++;
			if (c->raw[idx[k]].agg != ap->agg) {
				violation(c, "append #%u: event_id %s was appended to %s but is "
					  "stored in another aggregate (seq %llu)", a, eid,
					  l->aggs[ap->agg].name,
					  (unsigned long long)c->raw[idx[k]].seq);
				bad = true;
			}
		}
		for (size_t i = first[a]; i < first[a + 1]; i++) {
			const fl_attempt *t = &l->atts[order[i]];
			if (t->outcome == FL_ACKED)
				acks++;
			else if (t->outcome == FL_UNANSWERED)
				unans++;
			else if (t->code == CIM_ERR_DUPLICATE_EVENT ||
				 t->code == CIM_ERR_INVALID_REQUEST ||
				 t->code == CIM_ERR_INVALID_ARGUMENT ||
				 t->code == CIM_ERR_NOT_FOUND)
				refused_odd++;
			if (t->retry > 0) {
				f->retries++;
				if (t->outcome == FL_ACKED)
					f->retries_acked++;
			}
		}
		if (refused_odd) {
			violation(c, "append #%u (%s): refused with an error an exact append "
				  "or retry of it should never get", a, l->aggs[ap->agg].name);
			bad = true;
		}
		if (present > 0 && present < ap->n) {
			violation(c, "append #%u (%s): torn: %u of its %u events are stored",
				  a, l->aggs[ap->agg].name, present, ap->n);
			bad = true;
		}
		uint64_t base = 0;
		if (present == ap->n) {
			base = c->raw[idx[0]].version;
			for (unsigned k = 1; k < ap->n; k++)
				if (c->raw[idx[k]].version != base + k ||
				    c->raw[idx[k]].agg != c->raw[idx[0]].agg) {
					violation(c, "append #%u (%s): its events are not at "
						  "consecutive versions (event %u at %llu, the "
						  "first at %llu)", a, l->aggs[ap->agg].name, k,
						  (unsigned long long)c->raw[idx[k]].version,
						  (unsigned long long)base);
					bad = true;
					break;
				}
			for (unsigned k = 0; k < ap->n; k++) {
				struct raw *r = &c->raw[idx[k]];
				bool whole = ap->n == 1 ? (r->bcount == 1)
							: (r->bidx == k + 1 && r->bcount == ap->n);
				if (!whole) {
					violation(c, "append #%u (%s): event %u stored with "
						  "Cim-Batch %u/%u", a, l->aggs[ap->agg].name, k,
						  r->bidx, r->bcount);
					bad = true;
					break;
				}
			}
		}
		if (acks > 0) {
			f->acked++;
			f->acked_events += ap->n;
			if (present != ap->n) {
				violation(c, "append #%u (%s): ACKNOWLEDGED but %u of its %u "
					  "events are stored", a, l->aggs[ap->agg].name, present,
					  ap->n);
				bad = true;
			}
			for (size_t i = first[a]; present == ap->n && i < first[a + 1]; i++) {
				const fl_attempt *t = &l->atts[order[i]];
				if (t->outcome != FL_ACKED)
					continue;
				if (t->version != base + ap->n - 1) {
					violation(c, "append #%u (%s): acked at version %llu, stored "
						  "at versions %llu..%llu", a, l->aggs[ap->agg].name,
						  (unsigned long long)t->version,
						  (unsigned long long)base,
						  (unsigned long long)(base + ap->n - 1));
					bad = true;
				}
				for (unsigned k = 0; k < ap->n; k++) {
					struct raw *r = &c->raw[idx[k]];
					if (strcmp(t->cids[k], r->cid) != 0 || t->seqs[k] != r->seq) {
						violation(c, "append #%u (%s): event %u acked as %s "
							  "seq %llu, stored as %s seq %llu", a,
							  l->aggs[ap->agg].name, k, t->cids[k],
							  (unsigned long long)t->seqs[k], r->cid,
							  (unsigned long long)r->seq);
						bad = true;
						break;
					}
				}
				if (c->head_known[ap->agg] && base + ap->n - 1 > c->head[ap->agg]) {
					violation(c, "append #%u (%s): acked at version %llu, but "
						  "the daemon's head is %llu", a,
						  l->aggs[ap->agg].name,
						  (unsigned long long)(base + ap->n - 1),
						  (unsigned long long)c->head[ap->agg]);
					bad = true;
				}
			}
		} else if (unans > 0) {
			f->unanswered++;
			if (present == ap->n)
				f->unanswered_present++;
			else if (present == 0)
				f->unanswered_absent++;
		} else {
			f->refused++;
			if (present > 0) {
				violation(c, "append #%u (%s): every attempt was refused, yet "
					  "%u of its events are stored", a,
					  l->aggs[ap->agg].name, present);
				bad = true;
			}
		}
		if (bad && showing(c))
			fl_print_append(c->rep, l, a);
	}
	free(first);
	free(order);
}

/* Adds info's appends_chained and appends_rerun (text) to the load's. */
static void note_counters(fl_load *l, const char *info)
{
	json_t *j = info ? json_loads(info, 0, NULL) : NULL;
	json_t *c = json_object_get(j, "counters");

	pthread_mutex_lock(&l->mu);
	l->chained += (uint64_t)json_integer_value(json_object_get(c, "appends_chained"));
	l->rerun += (uint64_t)json_integer_value(json_object_get(c, "appends_rerun"));
	pthread_mutex_unlock(&l->mu);
	json_decref(j);
}

void fl_note_daemon(fl_load *l)
{
	cim_client *cl = NULL;
	cim_client_options co = {.prefix = l->prefix, .timeout_ms = 2000};
	cim_error err = {0};
	char url[256], *info = NULL;

	nth_url(l->url, 0, url, sizeof(url));
	if (cim_client_connect(&cl, url, &co, &err) != CIM_ERR_OK)
		return;
	if (cim_info(cl, &info, &err) == CIM_ERR_OK)
		note_counters(l, info);
	cim_free(info);
	cim_client_destroy(cl);
}

int fl_check(fl_load *l, const fl_check_options *co, fl_figures *f, FILE *rep)
{
	struct checker c = {0};
	fl_check_options o = {0};
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	cim_client *cl = NULL;
	cim_client_options copt;
	cim_error err = {0};
	natsOptions *no = NULL;
	natsStatus s;
	int rc = -1;
	uint64_t via_daemon = 0;

	fl_stop(l);
	fl_join(l);
	if (co)
		o = *co;
	if (o.url == NULL)
		o.url = l->url;
	if (o.timeout_ms <= 0)
		o.timeout_ms = 10000;
	if (o.max_report == 0)
		o.max_report = 40;
	if (o.wait_ms <= 0)
		o.wait_ms = 30000;
	if (rep == NULL)
		rep = stderr;
	memset(f, 0, sizeof(*f));
	c.l = l;
	c.rep = rep;
	c.max_report = o.max_report;
	c.by_eid = json_object();
	c.eid_count = json_object();
	c.agg_index = json_object();
	for (int a = 0; a < l->naggs; a++)
		json_object_set_new(c.agg_index, l->aggs[a].id, json_integer(a));
	f->aggregates = (size_t)l->naggs;

	copt.prefix = l->prefix;
	copt.timeout_ms = o.timeout_ms;
	/* the first URL of the list that takes a connection */
	char url[256] = "";
	for (int i = 0; i < url_count(o.url); i++) {
		nth_url(o.url, i, url, sizeof(url));
		if (cim_client_connect(&cl, url, &copt, &err) == CIM_ERR_OK)
			break;
	}
	if (cl == NULL) {
		fprintf(rep, "CHECK: cannot connect to %s: %s\n", o.url, err.message);
		goto out;
	}
	s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = natsOptions_SetURL(no, url);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, 5000);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, no);
	natsOptions_Destroy(no);
	if (s == NATS_OK) {
		jsOptions jo;
		jsOptions_Init(&jo);
		jo.Wait = o.timeout_ms;
		s = natsConnection_JetStream(&js, nc, &jo);
	}
	if (s != NATS_OK) {
		fprintf(rep, "CHECK: cannot connect to %s: %s\n", o.url, natsStatus_GetText(s));
		goto out;
	}

	/* a healthy daemon first: one that answers info */
	{
		int64_t end = mono_ms() + o.wait_ms;
		char *info = NULL;
		cim_err irc;
		while ((irc = cim_info(cl, &info, &err)) != CIM_ERR_OK && mono_ms() < end)
			sleep_ms(200);
		if (irc == CIM_ERR_OK)
			note_counters(l, info); /* the checking daemon's */
		cim_free(info);
		f->appends_chained = l->chained;
		f->appends_rerun = l->rerun;
		if (irc != CIM_ERR_OK) {
			fprintf(rep, "CHECK: the daemon does not answer info within %lld ms: "
				"%s: %s\n", (long long)o.wait_ms, cim_err_name(irc), err.message);
			goto out;
		}
	}
	if (scan_stream(&c, js, &f->stream_messages) != 0)
		goto out;
	/* exactly once per Cim-Event-Id over the whole stream */
	{
		const char *key;
		json_t *v;
		json_object_foreach(c.eid_count, key, v) {
			if (json_integer_value(v) > 1)
				violation(&c, "event_id %s is stored %lld times", key,
					  (long long)json_integer_value(v));
		}
	}
	check_chains(&c);
	if (check_daemon(&c, cl, &via_daemon) != 0)
		goto out;
	check_journal(&c, f);

	for (int a = 0; a < l->naggs; a++) {
		if (c.per_agg_n[a] > c.head[a])
			f->beyond_head += c.per_agg_n[a] - c.head[a];
		f->events_checked += c.per_agg_n[a];
	}
	for (size_t i = 0; i < c.nraw; i++) {
		struct raw *r = &c.raw[i];
		if (r->agg >= 0 && r->claimed == 0 && r->eid && r->version > 0)
			violation(&c, "seq %llu: event_id %s (%s version %llu) is stored but "
				  "no append of the journal sent it",
				  (unsigned long long)r->seq, r->eid, c.l->aggs[r->agg].name,
				  (unsigned long long)r->version);
	}
	/* stored past the daemon's head: only whole appends with no answer may be */
	for (int a = 0; a < l->naggs; a++) {
		for (size_t k = c.head[a]; k < c.per_agg_n[a]; k++) {
			struct raw *r = &c.raw[c.per_agg[a][k]];
			if (showing(&c))
				fprintf(rep, "CHECK: note: %s version %llu (seq %llu, %s) is "
					"stored past the daemon's head %llu\n", l->aggs[a].name,
					(unsigned long long)r->version, (unsigned long long)r->seq,
					r->eid, (unsigned long long)c.head[a]);
		}
	}
	if (via_daemon > f->events_checked)
		violation(&c, "the daemon showed %llu events, the stream holds %llu",
			  (unsigned long long)via_daemon, (unsigned long long)f->events_checked);
	f->violations = c.violations;
	rc = (int)(c.violations > 0x7fffffff ? 0x7fffffff : c.violations);
out:
	for (size_t i = 0; i < c.nraw; i++)
		free(c.raw[i].eid);
	free(c.raw);
	if (c.per_agg)
		for (int a = 0; a < l->naggs; a++)
			free(c.per_agg[a]);
	free(c.per_agg);
	free(c.per_agg_n);
	free(c.head);
	free(c.head_known);
	json_decref(c.by_eid);
	json_decref(c.eid_count);
	json_decref(c.agg_index);
	cim_client_destroy(cl);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	fflush(rep);
	return rc;
}

void fl_print_figures(FILE *out, const char *t, const fl_figures *f)
{
	fprintf(out, "[%s] aggregates: %zu\n", t, f->aggregates);
	fprintf(out, "[%s] stream messages read: %llu\n", t,
		(unsigned long long)f->stream_messages);
	fprintf(out, "[%s] events checked: %llu\n", t, (unsigned long long)f->events_checked);
	fprintf(out, "[%s] appends: %llu (attempts %llu, retries %llu, of which acked %llu)\n",
		t, (unsigned long long)f->appends, (unsigned long long)f->attempts,
		(unsigned long long)f->retries, (unsigned long long)f->retries_acked);
	fprintf(out, "[%s] acked: %llu appends, %llu events\n", t,
		(unsigned long long)f->acked, (unsigned long long)f->acked_events);
	fprintf(out, "[%s] refused (every attempt): %llu\n", t, (unsigned long long)f->refused);
	fprintf(out, "[%s] unanswered: %llu, present %llu, absent %llu\n", t,
		(unsigned long long)f->unanswered, (unsigned long long)f->unanswered_present,
		(unsigned long long)f->unanswered_absent);
	fprintf(out, "[%s] stored past the daemon's head: %llu\n", t,
		(unsigned long long)f->beyond_head);
	fprintf(out, "[%s] appends chained (pipelined) by the daemon(s): %llu, of which run "
		"again after the one before failed: %llu\n", t,
		(unsigned long long)f->appends_chained, (unsigned long long)f->appends_rerun);
	fprintf(out, "[%s] violations: %llu\n", t, (unsigned long long)f->violations);
	fflush(out);
}

int fl_keep_logs(const char *dir, const char *tag, char *out, size_t outlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char dst[300];

	if (d == NULL)
		return -1;
	snprintf(dst, sizeof(dst), "/tmp/cim-faults-%s-%d", tag, (int)getpid());
	mkdir(dst, 0755);
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		char from[600], to[600], buf[65536];
		FILE *in, *o;
		size_t k;

		if (n < 5 || strcmp(e->d_name + n - 4, ".log") != 0)
			continue;
		snprintf(from, sizeof(from), "%s/%s", dir, e->d_name);
		snprintf(to, sizeof(to), "%s/%s", dst, e->d_name);
		if ((in = fopen(from, "r")) == NULL)
			continue;
		if ((o = fopen(to, "w")) != NULL) {
			while ((k = fread(buf, 1, sizeof(buf), in)) > 0)
				fwrite(buf, 1, k, o);
			fclose(o);
		}
		fclose(in);
	}
	closedir(d);
	if (out)
		snprintf(out, outlen, "%s", dst);
	return 0;
}

int64_t fl_longest_ack_gap(fl_load *l, int64_t from_ms, int64_t to_ms, int64_t *at_ms)
{
	int64_t *t, gap = 0, last = from_ms;
	size_t n = 0;

	pthread_mutex_lock(&l->mu);
	t = xcalloc(l->natts + 1, sizeof(*t));
	for (size_t i = 0; i < l->natts; i++)
		if (l->atts[i].outcome == FL_ACKED && l->atts[i].end_ms >= from_ms &&
		    l->atts[i].end_ms <= to_ms)
			t[n++] = l->atts[i].end_ms;
	pthread_mutex_unlock(&l->mu);
	for (size_t i = 1; i < n; i++) /* insertion sort: nearly sorted */
		for (size_t k = i; k > 0 && t[k - 1] > t[k]; k--) {
			int64_t x = t[k];
			t[k] = t[k - 1];
			t[k - 1] = x;
		}
	if (at_ms)
		*at_ms = from_ms;
	for (size_t i = 0; i <= n; i++) {
		int64_t next = i < n ? t[i] : to_ms;
		if (next - last > gap) {
			gap = next - last;
			if (at_ms)
				*at_ms = last;
		}
		last = next;
	}
	free(t);
	return gap;
}
