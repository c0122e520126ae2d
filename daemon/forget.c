/*
 * forget.c: <prefix>.forget.<type>.<id>, crypto-shredding an encrypted
 * aggregate (docs/protocol.md section 15; the order of the steps and why
 * it is safe: docs/design.md section 12).
 *
 * A forget is an append job of its own (append.h: op OP_FORGET) whose one
 * event is CimForgotten with data {}, so it takes its place in the
 * aggregate's line of appends: everything before it is committed first,
 * everything after it answers gone. When it is the oldest job, a worker
 * runs the steps, each of which may be done again any number of times:
 *
 *   0. the aggregate is marked forgetting in memory: from here on reads
 *      show its data as forgotten and appends answer gone;
 *   1. a record "forget.<key>" is put in the heads bucket (CIM-HEADS): the
 *      durable sign that the forget was begun;
 *   2. the data key is removed from the keys bucket's stream (erased, then
 *      purged: no revision of it is left) and wiped from memory;
 *   3. the snapshot is removed from the snapshots bucket's stream;
 *   4. the CimForgotten event is appended (the job goes on as an append);
 *   5. once it is committed: the reply, then the record is removed.
 *
 * The record is what makes a forget that stopped half way finish: start-up
 * (and a daemon taking the lease over) reads every record, marks those
 * aggregates forgetting before it serves anything, and runs the steps
 * again for them (forget_sweep), as does the next forget of the aggregate.
 * A daemon killed before step 1 did nothing lasting: the forget was not
 * begun, and its client got no reply.
 *
 * A test hook: $CIM_EVENTSD_KILL_AT names a step ("forget.record",
 * "forget.key", "forget.snapshot", "forget.event") after which the daemon
 * kills itself with SIGKILL, so the fault tests stop it at each one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "append.h"
#include "log.h"
#include "dagcbor.h" /* CIM_MAX_DEPTH */
#include "snapshot.h" /* cim_kv_key */

#define FORGET_BODY "{\"events\":[{\"event_type\":\"" CIM_FORGOTTEN_TYPE "\",\"data\":{}}]}"
#define RETRY_NS 1000000000LL /* a forget left half done is tried again this often */

static void fault_point(struct daemon *d, const char *step)
{
	if (d->kill_at != NULL && strcmp(d->kill_at, step) == 0) {
		log_warn("test hook: killed after %s", step);
		raise(SIGKILL);
	}
}

/* ---- the record ------------------------------------------------------------------ */

static int record_key(char *out, size_t n, const char *type, const char *id)
{
	char key[CIM_KV_KEY_MAX];

	if (cim_kv_key(key, type, id) != 0)
		return -1;
	snprintf(out, n, "forget.%s", key);
	return 0;
}

static int record_put(struct daemon *d, const char *type, const char *id, cim_perr *e)
{
	char key[CIM_KV_KEY_MAX + 16], ts[CIM_TIME_TEXT];

	if (record_key(key, sizeof key, type, id) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, NULL, "bad aggregate");
	if (!lease_valid(d))
		return cim_perr_set(e, CIM_ERR_UNAVAILABLE, NULL,
				    "this daemon's writer lease could not be renewed in time");
	cim_time_now(ts);
	json_t *o = json_pack("{ss ss ss}", "aggregate_type", type, "aggregate_id", id,
			      "begun", ts);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (text == NULL)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "out of memory");
	natsStatus s = kvStore_PutString(NULL, d->heads_kv, key, text);
	free(text);
	if (s != NATS_OK)
		return cim_perr_set(e, CIM_ERR_UNAVAILABLE, NULL,
				    "cannot record the forget in %s: %s", d->cfg->heads_bucket,
				    natsStatus_GetText(s));
	return 0;
}

/* Removes the record, leaving nothing under its key. */
static int record_drop(struct daemon *d, const char *type, const char *id, cim_perr *e)
{
	char key[CIM_KV_KEY_MAX + 16], stream[256], subj[600];
	jsOptions o;
	jsErrCode je = 0;

	if (record_key(key, sizeof key, type, id) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, NULL, "bad aggregate");
	snprintf(stream, sizeof stream, "KV_%s", d->cfg->heads_bucket);
	snprintf(subj, sizeof subj, "$KV.%s.%s", d->cfg->heads_bucket, key);
	jsOptions_Init(&o);
	o.Stream.Purge.Subject = subj;
	natsStatus s = js_PurgeStream(d->js, stream, &o, &je);
	if (s != NATS_OK)
		return cim_perr_set(e, CIM_ERR_UNAVAILABLE, NULL,
				    "cannot remove the record of a forget from %s: %s",
				    d->cfg->heads_bucket, natsStatus_GetText(s));
	return 0;
}

/* ---- forgets begun and not finished ------------------------------------------- */

/* d->mu held. */
static void pending_add_locked(struct daemon *d, struct agg *a)
{
	for (size_t i = 0; i < d->nforgets; i++)
		if (d->forgets[i] == a)
			return;
	if (d->nforgets == d->forgets_cap) {
		size_t cap = d->forgets_cap ? d->forgets_cap * 2 : 16;
		struct agg **f = realloc(d->forgets, cap * sizeof *f);
		if (f == NULL)
			return; /* the record stays: the next start finishes it */
		d->forgets = f;
		d->forgets_cap = cap;
	}
	d->forgets[d->nforgets++] = a;
}

static void pending_drop(struct daemon *d, struct agg *a)
{
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->nforgets; i++)
		if (d->forgets[i] == a)
			d->forgets[i--] = d->forgets[--d->nforgets];
	pthread_mutex_unlock(&d->mu);
}

/* ---- the steps ---------------------------------------------------------------- */

/* Steps 2 and 3: nothing of the aggregate's data key and snapshot left. */
static int shred(struct daemon *d, const char *type, const char *id, cim_perr *e)
{
	if (keys_erase(d, type, id, e) != 0)
		return -1;
	fault_point(d, "forget.key");
	if (snapshot_remove(d, type, id, e) != 0)
		return -1;
	fault_point(d, "forget.snapshot");
	return 0;
}

#define BEGUN "the forget was begun and will be finished (the data is no longer shown); " \
	      "forget again to wait for it"

static void forget_fail(struct job *job, const cim_perr *e, bool begun)
{
	struct pipe *p = job->pipe;
	char msg[400];

	if (begun)
		snprintf(msg, sizeof msg, "%.200s; " BEGUN, e->msg);
	else
		snprintf(msg, sizeof msg, "%.200s; nothing was done", e->msg);
	job_fail(job, e->code == CIM_ERR_UNAVAILABLE ? CIM_ERR_UNAVAILABLE : CIM_ERR_INTERNAL,
		 NULL, "%s", msg);
	pipe_go(p);
}

static json_t *done_reply(uint64_t version)
{
	return json_pack("{sb sI}", "forgotten", 1, "version", (json_int_t)version);
}

/* On a worker, with the pipe's token: the steps before the event. */
static void forget_steps(struct daemon *d, void *arg)
{
	struct job *job = arg;
	struct pipe *p = job->pipe;
	struct agg *a = job->agg;
	cim_perr e = {0};

	pthread_mutex_lock(&d->mu);
	uint64_t version = a->version;
	int was = a->forgotten;
	pthread_mutex_unlock(&d->mu);

	if (version > 0 && was == 0) {
		/* an aggregate made before its type was encrypted has no data
		 * key: its events are plain, and erasing nothing forgets nothing */
		const cim_key *k = NULL;
		int got = keys_get(d, job->type, job->id, false, &k, &e);
		keys_unpin(d, k);
		if (got < 0) {
			forget_fail(job, &e, false);
			return;
		}
		if (got == KEY_NONE) {
			char msg[420];
			snprintf(msg, sizeof msg, "%s/%s has no data key: its events were "
				 "stored plain, before its type was encrypted, and cannot be "
				 "forgotten by erasing a key", job->type, job->id);
			job_fail(job, CIM_ERR_INVALID_ARGUMENT, "aggregate_id", "%s", msg);
			pipe_go(p);
			return;
		}
		pthread_mutex_lock(&d->mu);
		a->forgotten = AGG_FORGETTING; /* step 0 */
		pthread_mutex_unlock(&d->mu);
	}
	if (version == 0 && was == 0) {
		char name[CIM_TYPE_MAX + CIM_ID_MAX + 2];
		snprintf(name, sizeof name, "%s/%s", job->type, job->id);
		job_fail(job, CIM_ERR_NOT_FOUND, NULL, "%s has no events", name);
		pipe_go(p);
		return;
	}
	if (was == AGG_FORGOTTEN) {
		/* its CimForgotten event is stored: what may be left of a forget
		 * that stopped after it, then the same answer as the first time */
		if (shred(d, job->type, job->id, &e) != 0 ||
		    record_drop(d, job->type, job->id, &e) != 0) {
			forget_fail(job, &e, true);
			return;
		}
		pending_drop(d, a);
		reply_json(d, job->req, done_reply(version));
		job_done(job);
		pipe_go(p);
		return;
	}
	if (record_put(d, job->type, job->id, &e) != 0) {
		if (was == 0) {
			pthread_mutex_lock(&d->mu);
			a->forgotten = 0; /* not begun: nothing lasting was done */
			pthread_mutex_unlock(&d->mu);
		}
		forget_fail(job, &e, was != 0);
		return;
	}
	pthread_mutex_lock(&d->mu);
	pending_add_locked(d, a);
	pthread_mutex_unlock(&d->mu);
	fault_point(d, "forget.record");
	if (shred(d, job->type, job->id, &e) != 0) {
		forget_fail(job, &e, true);
		return;
	}
	/* step 4: the job goes on as an append of its CimForgotten event */
	job->forget_ready = true;
	job_run_on(job);
}

void forget_fail_note(const struct job *job, cim_perr *e)
{
	static const char stored[] = "nothing was stored";
	char why[140];

	if (job->op != OP_FORGET || !job->forget_ready)
		return;
	/* its key and snapshot are gone already: "nothing was stored" is not
	 * the whole truth */
	size_t n = strlen(e->msg), sl = sizeof stored - 1;
	if (n >= sl && strcmp(e->msg + n - sl, stored) == 0) {
		n -= sl;
		while (n > 0 && (e->msg[n - 1] == ' ' || e->msg[n - 1] == ';'))
			n--;
	}
	snprintf(why, sizeof why, "%.*s", (int)(n < sizeof why ? n : sizeof why - 1), e->msg);
	snprintf(e->msg, sizeof e->msg, "%s; " BEGUN, why);
}

enum run forget_run(struct job *job)
{
	if (work_submit(job->d, forget_steps, job) == 0)
		return RUN_AWAY;
	job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
		 "the daemon is overloaded; nothing was done");
	return RUN_ENDED;
}

json_t *forget_reply(struct job *job)
{
	fault_point(job->d, "forget.event");
	atomic_fetch_add(&job->d->forgotten_count, 1);
	log_info("%s/%s forgotten: its data key and snapshot are removed, CimForgotten "
		 "is version %llu", job->type, job->id, (unsigned long long)job->base);
	return done_reply(job->base);
}

struct drop {
	struct agg *agg;
	char type[CIM_TYPE_MAX + 1];
	char id[CIM_ID_MAX + 1];
};

static void drop_work(struct daemon *d, void *arg)
{
	struct drop *w = arg;
	cim_perr e;

	if (record_drop(d, w->type, w->id, &e) == 0)
		pending_drop(d, w->agg);
	else
		log_warn("%s/%s: %s; trying again later", w->type, w->id, e.msg);
	free(w);
}

void forget_committed(struct job *job)
{
	struct drop *w = calloc(1, sizeof *w);

	/* step 5: a record left behind only makes the steps run again */
	if (w == NULL)
		return;
	w->agg = job->agg;
	snprintf(w->type, sizeof w->type, "%s", job->type);
	snprintf(w->id, sizeof w->id, "%s", job->id);
	if (work_submit(job->d, drop_work, w) != 0)
		free(w);
}

/* ---- requests, start-up, the sweep ------------------------------------------- */

bool forget_shown(struct daemon *d, const char *type, const char *id)
{
	pthread_mutex_lock(&d->mu);
	struct agg *a = heads_find(&d->heads, type, id);
	bool f = a != NULL && a->forgotten != 0;
	pthread_mutex_unlock(&d->mu);
	return f;
}

/* A forget job for type/id in its aggregate's pipe (req NULL: no one is
 * answered). Its one event, CimForgotten with data {}, is stored plain. */
static void forget_enqueue(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	static const cim_limits lim = {1, CIM_MAX_DEPTH};
	struct job *job = job_new(d, req, OP_FORGET, type, id);
	cim_perr e = {0};

	if (job == NULL)
		return;
	if (cim_append_req_parse(FORGET_BODY, sizeof FORGET_BODY - 1, &lim, &job->ar, &e) != 0 ||
	    (job->ev = calloc(1, sizeof *job->ev)) == NULL) {
		cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
		reply_error(d, req, OP_FORGET, &e);
		job_free(job);
		return;
	}
	job->n = 1;
	job_enqueue(job);
}

void forget_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_perr e;

	if (cim_empty_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req), &e) != 0) {
		refuse(d, req, OP_FORGET, &e);
		return;
	}
	if (!keys_encrypted_type(d, type)) {
		cim_perr_set(&e, CIM_ERR_INVALID_ARGUMENT, "aggregate_type",
			     d->keys.master == NULL
				     ? "aggregate type %s is not encrypted (this store has no "
				       "master_key): only encrypted aggregates can be forgotten"
				     : "aggregate type %s is not encrypted (encrypt_types): only "
				       "encrypted aggregates can be forgotten",
			     type);
		refuse(d, req, OP_FORGET, &e);
		return;
	}
	forget_enqueue(d, req, type, id);
}

int forget_recover(struct daemon *d)
{
	char stream[256], filter[300], type[CIM_TYPE_MAX + 1], id[CIM_ID_MAX + 1];
	jsStreamInfo *si = NULL;
	jsOptions jo;
	jsErrCode je = 0;
	size_t plen;
	int found = 0;

	snprintf(stream, sizeof stream, "KV_%s", d->cfg->heads_bucket);
	snprintf(filter, sizeof filter, "$KV.%s.forget.>", d->cfg->heads_bucket);
	plen = strlen(filter) - 1;
	jsOptions_Init(&jo);
	jo.Stream.Info.SubjectsFilter = filter;
	natsStatus s = js_GetStreamInfo(&si, d->js, stream, &jo, &je);
	if (s != NATS_OK) {
		log_error("cannot read the records of forgets begun from %s: %s",
			  d->cfg->heads_bucket, natsStatus_GetText(s));
		return -1;
	}
	int count = si->State.Subjects ? si->State.Subjects->Count : 0;
	for (int i = 0; i < count; i++) {
		const char *subj = si->State.Subjects->List[i].Subject;
		if (strlen(subj) <= plen || cim_kv_key_parse(subj + plen, type, id) != 0) {
			log_warn("%s: '%s' is not the record of a forget; left alone",
				 d->cfg->heads_bucket, subj);
			continue;
		}
		pthread_mutex_lock(&d->mu);
		struct agg *a = heads_find(&d->heads, type, id);
		if (a != NULL && a->version > 0) {
			if (a->forgotten == 0)
				a->forgotten = AGG_FORGETTING; /* before anything is served */
			pending_add_locked(d, a);
			found++;
		}
		pthread_mutex_unlock(&d->mu);
		if (a == NULL || a->version == 0) {
			cim_perr e;
			if (record_drop(d, type, id, &e) != 0)
				log_warn("%s", e.msg);
		} else {
			log_warn("%s/%s: a forget of it was begun and not finished; finishing it",
				 type, id);
		}
	}
	jsStreamInfo_Destroy(si);
	return found;
}

void forget_sweep(struct daemon *d)
{
	struct agg *run[16];
	int n = 0;
	int64_t now = now_mono_ns();

	if (now < d->forget_retry_at)
		return;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->nforgets && n < 16; i++)
		if (d->forgets[i]->busy == NULL)
			run[n++] = d->forgets[i];
	pthread_mutex_unlock(&d->mu);
	if (n == 0)
		return;
	d->forget_retry_at = now + RETRY_NS;
	for (int i = 0; i < n; i++) {
		/* a job with no one to answer, like a settling sweep */
		forget_enqueue(d, NULL, agg_type(run[i]), agg_id(run[i]));
	}
}
