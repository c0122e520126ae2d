/*
 * resolve.c: appends whose outcome storage did not give at once.
 *
 * The oldest job of an aggregate got acks other than "stored" (a
 * "duplicate", a refusal, none in time, "no responders"), or it was stored
 * out of order. Jobs may be chained behind it (append.c), built on the
 * head it was to make. Nothing more is launched; once every launched job
 * has all its acks, the whole chain is resolved on a worker, before
 * anything else of the aggregate is written:
 *
 * 1. Reading the stream to find out cannot be trusted while a cluster
 *    elects a leader: a publish that timed out may be committed seconds
 *    later. So each message not known to be stored is published again,
 *    the same bytes under the same Nats-Msg-Id, until JetStream gives a
 *    definite answer: stored now, or "duplicate" with the sequence of the
 *    copy it already had (read back through the leader and compared:
 *    ours, another's, or a removed one whose id is "burned"). Behind a
 *    job that cannot be stored whole (a refusal) only the messages with
 *    no answer are published again, so that none can land later.
 * 2. The jobs at the front that are wholly stored, each after the one
 *    before in the stream, are committed and answered in order.
 * 3. What is stored of the rest is taken back (deleted by sequence: no
 *    reader saw it, the head never reached it) before any commit moves
 *    the head past where it may sit.
 * 4. The first job that is not stored whole is answered as without
 *    pipelining: refused by JetStream: `unavailable`, nothing stored;
 *    another's events at its versions: `internal`, retry; burned ids or
 *    stored out of order: published again under a new id generation.
 *    The jobs chained on it are put back to run again, as if they had
 *    waited.
 * 5. When a definite answer does not come in time (or the writer lease is
 *    not held), the jobs from the first unknown one on are abandoned:
 *    answered "did not confirm", the aggregate left unsettled, and for
 *    30 s no torn batch is removed (the publish may still land). Settling
 *    it later (store_settle) adopts what landed whole and in order and
 *    removes what this process published and never committed.
 *
 * Burned ids. Every message this process removes leaves its Nats-Msg-Id in
 * JetStream's duplicate window: burn notes (a small table, under mu) make
 * what is published at those versions again take a new generation at
 * once. A duplicate refusal of a chained message could otherwise leave a
 * later one stored past a gap if the daemon died just then; ids burned by
 * another process cannot be known, so after a start that finds messages
 * removed within the duplicate window nothing is chained until the window
 * has passed (chain_pause).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "append.h"
#include "log.h"

#define RESOLVE_TRY_NS (250 * 1000000LL)
#define RESOLVE_MIN_NS (20 * 1000000000LL)
#define UNSURE_GRACE_NS (30 * 1000000000LL)

/* ---- burned ids ---------------------------------------------------------------- */

unsigned msgid_gen(const char *msgid)
{
	const char *p = msgid;
	int dots = 0;

	for (const char *q = msgid; *q; q++)
		if (*q == '.') {
			dots++;
			p = q + 1;
		}
	return dots == 3 ? (unsigned)strtoul(p, NULL, 10) : 0;
}

void chain_pause(struct daemon *d, const char *why)
{
	int64_t until = now_ns() + d->cfg->idempotency_window_s * 1000000000LL;

	if (atomic_load(&d->chain_paused_until) < until)
		atomic_store(&d->chain_paused_until, until);
	log_info("appends are not pipelined for %lld s: %s",
		 (long long)d->cfg->idempotency_window_s, why);
}

void burn_note(struct daemon *d, struct agg *a, uint64_t version, unsigned gen)
{
	int64_t now = now_ns(), until = now + d->cfg->idempotency_window_s * 1000000000LL;
	struct burn *b = NULL;
	bool full = false;

	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->nburns; i++) {
		if (d->burns[i].until <= now) /* out of the window: forgotten */
			d->burns[i--] = d->burns[--d->nburns];
		else if (d->burns[i].agg == a)
			b = &d->burns[i];
	}
	if (b == NULL && d->nburns < (int)(sizeof d->burns / sizeof d->burns[0])) {
		b = &d->burns[d->nburns++];
		*b = (struct burn){.agg = a};
	}
	if (b != NULL) {
		if (version > b->version)
			b->version = version;
		if (gen > b->gen)
			b->gen = gen;
		b->until = until;
	} else {
		full = true;
	}
	pthread_mutex_unlock(&d->mu);
	if (full)
		chain_pause(d, "too many aggregates with ids burned at once");
}

unsigned burn_gen_locked(struct daemon *d, const struct agg *a, uint64_t from)
{
	int64_t now = now_ns();

	for (int i = 0; i < d->nburns; i++)
		if (d->burns[i].agg == a && d->burns[i].until > now && from <= d->burns[i].version)
			return d->burns[i].gen + 1;
	return 0;
}

void burn_forget_locked(struct daemon *d, const struct agg *a)
{
	for (int i = 0; i < d->nburns; i++)
		if (d->burns[i].agg == a)
			d->burns[i--] = d->burns[--d->nburns];
}

/* ---- finding out ------------------------------------------------------------ */

/* Answers the request now, and lets the job go on without anyone to
 * answer: a client that waits no longer than the publish timeout still
 * hears something, and learns the outcome by retrying. */
static void answer_early(struct job *job, const char *why)
{
	natsMsg *quiet = NULL;

	/* a request with no reply subject is never answered (nor counted) */
	if (natsMsg_Create(&quiet, natsMsg_GetSubject(job->req), NULL, NULL, 0) != NATS_OK)
		return; /* answered once, at the end */
	job_reply_fail(job, CIM_ERR_INTERNAL, why);
	natsMsg_Destroy(job->req);
	job->req = quiet;
}

/* Publishes the job's unsure messages again (with all, the ones never sent
 * too) until each has a definite answer. 0 when all have, -1 when it gave
 * up (no lease, no time). */
static int republish(struct job *job, bool *answered, bool all, int64_t deadline)
{
	struct daemon *d = job->d;
	jsPubOptions po;

	jsPubOptions_Init(&po);
	/* the client has waited a publish timeout already: the first round
	 * is short, and answers it if it did not settle everything */
	po.MaxWait = d->cfg->publish_timeout_ms < 250 ? d->cfg->publish_timeout_ms : 250;
	for (;;) {
		bool pending = false;
		for (size_t i = 0; i < job->n; i++) {
			struct jev *e = &job->ev[i];
			jsPubAck *pa = NULL;
			jsErrCode je = 0;
			if (e->state != JEV_UNKNOWN && (e->state != JEV_NOT_STORED || !all))
				continue;
			if (atomic_load(&d->draining))
				return -1;
			if (!lease_valid(d)) {
				/* not now; the lease may be held again in a moment
				 * (its bucket electing a leader, say) */
				pending = true;
				break;
			}
			natsStatus s = js_PublishMsg(&pa, d->js, e->msg, &po, &je);
			if (s == NATS_OK) {
				e->seq = pa->Sequence;
				e->state = pa->Duplicate ? JEV_DUPLICATE : JEV_OK;
				jsPubAck_Destroy(pa);
			} else if (je != 0 && s != NATS_NO_RESPONDERS) {
				e->state = JEV_REFUSED;
				snprintf(job->fail_msg, sizeof job->fail_msg,
					 "storage: %s (JetStream error %d)", natsStatus_GetText(s),
					 (int)je);
			} else {
				e->state = JEV_UNKNOWN;
				pending = true;
			}
		}
		if (!pending)
			return 0;
		if (!*answered) {
			answer_early(job, "storage did not confirm the append in time; retry "
					  "with the same event_ids to learn whether it was stored");
			*answered = true;
		}
		if (now_ns() >= deadline)
			return -1;
		po.MaxWait = d->cfg->publish_timeout_ms;
		usleep((useconds_t)(RESOLVE_TRY_NS / 1000));
	}
}

/* Which "duplicate" acks name our own message (stored earlier by a
 * publish whose ack was lost), which another, which a removed one. -1
 * when the leader cannot be asked. */
static int check_duplicates(struct job *job)
{
	struct daemon *d = job->d;

	for (size_t i = 0; i < job->n; i++) {
		struct jev *e = &job->ev[i];
		cim_perr err = {0};
		cim_cid cid;
		if (e->state != JEV_DUPLICATE)
			continue;
		natsMsg *m = store_get_msg(d, e->seq, &err);
		if (m == NULL) {
			if (err.code != CIM_ERR_NOT_FOUND)
				return -1;
			e->state = JEV_BURNED;
			burn_note(d, job->agg, job->base + i, job->gen);
			continue;
		}
		cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, d->cfg->hash_code,
				(const uint8_t *)natsMsg_GetData(m),
				(size_t)natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
		e->state = cim_cid_equal(&cid, &e->cid) ? JEV_OK : JEV_FOREIGN;
	}
	return 0;
}

/* Removes what of the job is stored. 0, or -1 when a removal failed. */
static int take_back(struct job *job)
{
	for (size_t i = 0; i < job->n; i++) {
		cim_perr e;
		if (job->ev[i].state != JEV_OK)
			continue;
		/* its id stays in the duplicate window */
		burn_note(job->d, job->agg, job->base + i, job->gen);
		if (store_delete_msg(job->d, job->ev[i].seq, &e) != 0) {
			log_error("%s/%s: cannot take back version %llu at seq %llu: %s",
				  job->type, job->id, (unsigned long long)(job->base + i),
				  (unsigned long long)job->ev[i].seq, e.msg);
			return -1;
		}
		job->ev[i].state = JEV_NOT_STORED;
	}
	return 0;
}

/* Gives up on knowing: the aggregate is settled from the stream before it
 * is written again, and no torn batch is removed while the publish may
 * still land. Ends the job. */
static void abandon(struct job *job, bool answered, const char *why)
{
	struct daemon *d = job->d;

	atomic_store(&d->unsure_until, now_ns() + UNSURE_GRACE_NS);
	pthread_mutex_lock(&d->mu);
	job->agg->state = AGG_UNSETTLED;
	pthread_mutex_unlock(&d->mu);
	sweep_add(d, job->agg);
	log_warn("%s/%s: the outcome of the append at version %llu is not known (%s)",
		 job->type, job->id, (unsigned long long)job->base, why);
	if (!answered)
		job_reply_fail(job, CIM_ERR_INTERNAL,
			       "storage did not confirm the append; retry with the same "
			       "event_ids to learn whether it was stored");
	job_done(job);
}

/* ---- the chain ------------------------------------------------------------------ */

/* After a resolution, d->mu held: every job left waits, nothing is in
 * flight, the tip is the head. */
static void pipe_reset_locked(struct pipe *p)
{
	p->next_run = p->first;
	p->launched = 0;
	p->incomplete = 0;
	p->resolving = p->stalled = p->resolve_started = false;
	p->tip_version = p->agg->version;
	agg_head_cid(p->agg, &p->tip_cid);
}

/* The first job that was not stored whole, all its messages known and
 * what of it was stored taken back: answered, or published again. true
 * when it stays (to run again). */
static bool first_failed(struct job *job)
{
	struct daemon *d = job->d;

	pthread_mutex_lock(&d->mu);
	if (job_count_state(job, JEV_FOREIGN) > 0) {
		/* what is stored at these versions is settled from the stream,
		 * whether this aggregate is appended to again or not */
		job->agg->state = AGG_UNSETTLED;
		sweep_add_locked(d, job->agg);
	} else {
		job->agg->state = AGG_SETTLED;
	}
	pthread_mutex_unlock(&d->mu);
	if (job_count_state(job, JEV_REFUSED) > 0) {
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s; nothing was stored",
			 job->fail_msg[0] ? job->fail_msg : "storage refused the append");
	} else if (job_count_state(job, JEV_FOREIGN) > 0) {
		/* (one this daemon gave up on, landed since) */
		job_reply_fail(job, CIM_ERR_INTERNAL,
			       "storage holds other events at these versions; nothing of this "
			       "append was kept; retry with the same event_ids");
		job_done(job);
	} else if (job->regens < MSGID_GENS) {
		/* ids burned by removed messages, or stored out of order: once
		 * more under new ids, from the head */
		log_info("%s/%s: publishing version %llu again as generation %u (%s)",
			 job->type, job->id, (unsigned long long)job->base, job->gen + 1,
			 job_count_state(job, JEV_BURNED) ? "its ids were used by removed messages"
							  : "it was stored out of order");
		job->gen++;
		job->regens++;
		job_unlaunch(job);
		atomic_fetch_add(&d->appends_rerun, 1);
		return true;
	} else {
		job_reply_fail(job, CIM_ERR_INTERNAL,
			       "storage kept refusing this append's ids; nothing was kept; retry");
		job_done(job);
	}
	return false;
}

/* On a worker, with a reference: the chain of launched jobs, every ack in. */
static void resolve_chain(struct daemon *d, void *arg)
{
	struct pipe *p = arg;
	int64_t timeout_ns = d->cfg->publish_timeout_ms * 1000000LL;
	int64_t deadline = now_ns() + (timeout_ns * 3 > RESOLVE_MIN_NS ? timeout_ns * 3
								   : RESOLVE_MIN_NS);
	struct job **chain;
	bool *answered;
	int m = 0, bad, k = 0, i;
	const char *why = "no definite answer from storage";

	pthread_mutex_lock(&d->mu);
	for (struct job *j = p->first; j != NULL && j->launched; j = j->next)
		m++;
	chain = calloc((size_t)m + 1, sizeof *chain);
	answered = calloc((size_t)m + 1, sizeof *answered);
	if (chain != NULL && answered != NULL) {
		m = 0;
		for (struct job *j = p->first; j != NULL && j->launched; j = j->next)
			chain[m++] = j;
	}
	pthread_mutex_unlock(&d->mu);
	if (chain == NULL || answered == NULL) {
		/* nothing can be found out: every launched job is abandoned */
		for (;;) {
			pthread_mutex_lock(&d->mu);
			struct job *f = p->first != NULL && p->first->launched ? p->first : NULL;
			pthread_mutex_unlock(&d->mu);
			if (f == NULL)
				break;
			abandon(f, false, "out of memory");
		}
		goto out;
	}

	/* 1: a definite answer for every message that can still land */
	bad = m;
	bool doomed = false;
	for (i = 0; i < m; i++) {
		if (republish(chain[i], &answered[i], !doomed, deadline) != 0) {
			if (!lease_valid(d))
				why = "the writer lease is not held";
			bad = i;
			break;
		}
		doomed |= job_count_state(chain[i], JEV_REFUSED) > 0;
	}
	for (i = 0; i < bad; i++)
		if (check_duplicates(chain[i]) != 0) {
			why = "the stream's leader cannot be asked";
			bad = i;
			break;
		}

	/* 2: the jobs at the front stored whole, in order */
	pthread_mutex_lock(&d->mu);
	uint64_t prev = p->agg->seq;
	pthread_mutex_unlock(&d->mu);
	for (k = 0; k < bad; k++) {
		struct job *j = chain[k];
		bool whole = job_count_state(j, JEV_OK) == j->n;
		for (size_t e = 0; whole && e < j->n; e++) {
			whole = j->ev[e].seq > prev;
			prev = j->ev[e].seq;
		}
		if (!whole)
			break;
	}

	/* 3: nothing of the rest may stay; if something cannot be taken back,
	 * nothing is committed (it may sit below where the head would go) */
	for (i = k; i < bad; i++)
		if (take_back(chain[i]) != 0) {
			why = "what was stored of it cannot be taken back";
			bad = 0;
			break;
		}
	for (i = 0; i < k && i < bad; i++) {
		if (i == 0)
			log_info("%s/%s: versions %llu-%llu confirmed stored after all",
				 chain[0]->type, chain[0]->id, (unsigned long long)chain[0]->base,
				 (unsigned long long)(chain[k - 1]->base + chain[k - 1]->n - 1));
		job_commit(chain[i]);
	}
	if (bad == m) {
		/* 4: every outcome known */
		if (k < m && !first_failed(chain[k]))
			k++;
		for (i = k; i < m; i++)
			job_unlaunch(chain[i]); /* chained on what is not stored */
		atomic_fetch_add(&d->appends_rerun, (uint64_t)(m - k));
		goto out;
	}
	/* a job whose outcome stays unknown: the ones before it that failed are
	 * answered (nothing of them is stored), it and all after it abandoned */
	for (i = k; i < bad; i++) {
		struct job *j = chain[i];
		pthread_mutex_lock(&d->mu);
		j->agg->state = AGG_UNSETTLED;
		pthread_mutex_unlock(&d->mu);
		if (job_count_state(j, JEV_FOREIGN) > 0 || answered[i]) {
			if (!answered[i])
				job_reply_fail(j, CIM_ERR_INTERNAL,
					       "storage holds other events at these versions; "
					       "nothing of this append was kept; retry with the "
					       "same event_ids");
			job_done(j);
		} else {
			job_fail(j, CIM_ERR_UNAVAILABLE, NULL, "%s; nothing was stored",
				 job_count_state(j, JEV_REFUSED) && j->fail_msg[0]
					 ? j->fail_msg
					 : "storage did not take an earlier append of this aggregate");
		}
	}
	for (i = bad; i < m; i++)
		abandon(chain[i], answered[i], why);
out:
	pthread_mutex_lock(&d->mu);
	pipe_reset_locked(p);
	pthread_mutex_unlock(&d->mu);
	free(chain);
	free(answered);
	pipe_advance(p);
	pipe_unref(p);
}

void resolve_start(struct pipe *p)
{
	struct daemon *d = p->d;

	pthread_mutex_lock(&d->mu);
	struct job *f = p->first;
	int launched = p->launched;
	pthread_mutex_unlock(&d->mu);
	if (launched == 1 &&
	    job_count_state(f, JEV_REFUSED) + job_count_state(f, JEV_NOT_STORED) == f->n) {
		/* refused whole (or never sent), nothing chained on it: nothing
		 * of it is stored */
		job_fail(f, CIM_ERR_UNAVAILABLE, NULL, "%s; nothing was stored", f->fail_msg);
		pthread_mutex_lock(&d->mu);
		pipe_reset_locked(p);
		pthread_mutex_unlock(&d->mu);
		pipe_advance(p);
		return;
	}
	/* some of it stored, or not known: find out before anything else is
	 * written */
	pthread_mutex_lock(&d->mu);
	p->agg->state = AGG_UNSETTLED;
	p->refs++;
	pthread_mutex_unlock(&d->mu);
	if (work_submit(d, resolve_chain, p) != 0) {
		pthread_mutex_lock(&d->mu);
		int n = p->launched;
		pthread_mutex_unlock(&d->mu);
		for (int i = 0; i < n; i++)
			abandon(p->first, false, "the daemon is overloaded");
		pthread_mutex_lock(&d->mu);
		pipe_reset_locked(p);
		pthread_mutex_unlock(&d->mu);
		pipe_advance(p);
		pipe_unref(p);
	}
}
