/*
 * append.c: the write path.
 *
 * An append request becomes a job. A job owns its aggregate while it runs
 * (agg->busy); jobs for a busy aggregate wait in a queue behind it, so one
 * aggregate's appends are strictly ordered, while jobs for other aggregates
 * run at the same time. A job checks the expected version against the
 * head in memory, builds the blocks chained from the head, and hands every
 * message to js_PublishMsgAsync at once; nothing waits. The ack handler
 * counts the acks, and when the last one is in, commits the new head and
 * answers, then starts the next job for that aggregate.
 *
 * Nats-Msg-Id is "<type>.<id>.<version>": JetStream keeps one message per
 * id in its duplicate window, so no version can be written twice even if
 * two writers ever raced. When an ack says "duplicate", or never comes,
 * or nobody took a message, the job's outcome is found out before
 * anything else is written (resolve_and_answer): each message not known
 * to be stored is published again as it is until JetStream answers for
 * sure, and a "duplicate" is read back through the stream's leader. A job
 * wholly stored in order is done; otherwise what of it is stored is taken
 * back. Removing a message does not take its id out of the duplicate
 * window, so an id can be "burned"; then the job publishes again with the
 * id "<type>.<id>.<version>.<n>", a new generation, at most MSGID_GENS
 * times. A job whose outcome stays unknown leaves its aggregate
 * unsettled: store_settle() reads what the leader holds past the head
 * before it is written again.
 *
 * Retrying an append with the same event_ids is answered from what is
 * stored: the window (heads.c) says where an event_id went; the stored
 * block is read back and compared before the original reply is rebuilt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "dagcbor.h"
#include "event.h"
#include "ids.h"
#include "jsontext.h"
#include "log.h"

enum jev_state {
	JEV_PENDING = 0,
	JEV_OK,
	JEV_DUPLICATE,  /* JetStream already had this Nats-Msg-Id */
	JEV_REFUSED,    /* JetStream said no (a limit, say): not stored */
	JEV_NOT_STORED, /* never sent, or taken back */
	JEV_UNKNOWN,    /* no answer: may or may not be stored */
	JEV_FOREIGN,    /* resolving: the duplicate's message is not ours */
	JEV_BURNED,     /* resolving: the duplicate's message was removed */
};

struct jev {
	char event_id[CIM_EVENT_ID_MAX + 1];
	size_t event_id_len; /* it may hold U+0000 */
	cim_cid cid;
	uint64_t seq;
	uint8_t state;
	natsMsg *msg; /* kept to publish again when not known to be stored */
};

#define MSGID_GENS 8

struct job {
	struct job *next;  /* the queue behind the running job */
	struct job *qtail; /* in the running job: the last one queued */
	struct daemon *d;
	natsMsg *req;
	struct agg *agg;
	cim_append_req ar;
	uint64_t base; /* version of the first event */
	size_t n;
	size_t resolved; /* acks in, under d->mu */
	struct jev *ev;
	size_t req_len; /* counted in d->job_bytes */
	bool idem_checked;
	unsigned gen; /* Nats-Msg-Id generation, 0 for the plain id */
	char fail_msg[256];
	bool settle_only; /* no request: settles its aggregate (append_sweep) */
	char type[CIM_TYPE_MAX + 1];
	char id[CIM_ID_MAX + 1];
};

static void job_run(struct job *job);

static void job_free(struct job *job)
{
	if (job->req_len > 0)
		atomic_fetch_sub(&job->d->job_bytes, (long)job->req_len);
	cim_append_req_free(&job->ar);
	natsMsg_Destroy(job->req);
	for (size_t i = 0; job->ev != NULL && i < job->n; i++)
		natsMsg_Destroy(job->ev[i].msg);
	free(job->ev);
	free(job);
}

/* Ends a job and starts the next one queued for its aggregate. */
static void job_done(struct job *job)
{
	struct daemon *d = job->d;
	struct job *next;

	pthread_mutex_lock(&d->mu);
	next = job->next;
	if (next != NULL)
		next->qtail = job->qtail;
	job->agg->busy = next;
	/* an aggregate that still has no event keeps no memory (nor a place
	 * on the sweep list) */
	if (next == NULL && job->agg->version == 0 && job->agg->state == AGG_SETTLED) {
		for (int i = 0; i < d->nsweep; i++)
			if (d->sweep[i] == job->agg)
				d->sweep[i--] = d->sweep[--d->nsweep];
		heads_remove(&d->heads, job->agg);
	}
	pthread_mutex_unlock(&d->mu);
	atomic_fetch_sub(&d->jobs_in_flight, 1);
	job_free(job);
	if (next != NULL)
		job_run(next);
}

static void job_fail(struct job *job, cim_err code, const char *field,
		     const char *fmt, const char *arg)
{
	cim_perr e;
	cim_perr_set(&e, code, field, fmt, arg);
	reply_error(job->d, job->req, OP_APPEND, &e);
	job_done(job);
}

/* Answers with an error; the job goes on (the caller ends it). */
static void job_reply_fail(struct job *job, cim_err code, const char *msg)
{
	cim_perr e;
	cim_perr_set(&e, code, NULL, "%s", msg);
	reply_error(job->d, job->req, OP_APPEND, &e);
}

static json_t *success_reply(const struct job *job, uint64_t base)
{
	char text[CIM_CID_TEXT_MAX];
	json_t *evs = json_array();

	for (size_t i = 0; i < job->n; i++) {
		cim_cid_to_text(&job->ev[i].cid, text);
		json_array_append_new(evs, json_pack("{sI ss so sI}", "version",
						     (json_int_t)(base + i), "cid", text,
						     "event_id", json_stringn(job->ev[i].event_id,
									  job->ev[i].event_id_len),
						     "seq", (json_int_t)job->ev[i].seq));
	}
	cim_cid_to_text(&job->ev[job->n - 1].cid, text);
	return json_pack("{ss ss sI ss so}", "aggregate_type", job->type,
			 "aggregate_id", job->id, "version",
			 (json_int_t)(base + job->n - 1), "head", text, "events", evs);
}

/* ---- the expected version -------------------------------------------------- */

static bool expectation_met(const cim_append_req *ar, uint64_t cur)
{
	switch (ar->expect) {
	case CIM_EXPECT_KIND_ANY: return true;
	case CIM_EXPECT_KIND_NO_STREAM: return cur == 0;
	case CIM_EXPECT_KIND_EXISTS: return cur > 0;
	case CIM_EXPECT_KIND_EXACT: return cur == ar->expected_version;
	}
	return false;
}

static void reply_wrong_version(struct job *job, uint64_t cur)
{
	static const char *const names[] = {"any", "no_stream", "exists"};
	const cim_append_req *ar = &job->ar;
	char msg[200];
	json_t *o, *inner;

	if (ar->expect == CIM_EXPECT_KIND_EXACT)
		snprintf(msg, sizeof msg,
			 "expected_version is %llu but the aggregate is at version %llu",
			 (unsigned long long)ar->expected_version, (unsigned long long)cur);
	else
		snprintf(msg, sizeof msg,
			 "expected_version is \"%s\" but the aggregate is at version %llu",
			 names[ar->expect], (unsigned long long)cur);
	o = cim_error_json(CIM_ERR_WRONG_EXPECTED_VERSION, NULL, msg);
	inner = json_object_get(o, "error");
	if (ar->expect == CIM_EXPECT_KIND_EXACT)
		json_object_set_new(inner, "expected", json_integer((json_int_t)ar->expected_version));
	else
		json_object_set_new(inner, "expected", json_string(names[ar->expect]));
	json_object_set_new(inner, "current", json_integer((json_int_t)cur));
	reply_error_json(job->d, job->req, OP_APPEND, CIM_ERR_WRONG_EXPECTED_VERSION, o);
	job_done(job);
}

/* ---- building and publishing ------------------------------------------------- */

/* An id header, when the id reads back from a header exactly: not empty,
 * no control character (a NUL, CR or LF cannot be in a header line), no
 * space at either end (header values are trimmed). An id that cannot is
 * left out: the block holds it, and nothing trusts headers. */
static int set_id_header(natsMsg *m, const char *name, const char *s, size_t len)
{
	if (len == 0 || s[0] == ' ' || s[len - 1] == ' ')
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return natsMsgHeader_Set(m, name, s) == NATS_OK ? 0 : -1;
}

static int set_headers(natsMsg *m, const struct daemon *d, const struct jev *e,
		       const cim_event_block *b, const char *prev_text, size_t i, size_t n)
{
	char cid[CIM_CID_TEXT_MAX], num[48];

	cim_cid_to_text(&e->cid, cid);
	snprintf(num, sizeof num, "%llu", (unsigned long long)b->version);
	if (natsMsgHeader_Set(m, "Cim-Cid", cid) != NATS_OK ||
	    natsMsgHeader_Set(m, "Cim-Version", num) != NATS_OK ||
	    set_id_header(m, "Cim-Event-Id", b->event_id, b->event_id_len) != 0 ||
	    set_id_header(m, "Cim-Correlation-Id", b->correlation_id,
			  b->correlation_id_len) != 0 ||
	    set_id_header(m, "Cim-Causation-Id", b->causation_id, b->causation_id_len) != 0 ||
	    natsMsgHeader_Set(m, "Cim-Writer", d->holder) != NATS_OK)
		return -1;
	if (prev_text && natsMsgHeader_Set(m, "Cim-Prev", prev_text) != NATS_OK)
		return -1;
	if (n > 1) {
		snprintf(num, sizeof num, "%zu/%zu", i + 1, n);
		if (natsMsgHeader_Set(m, "Cim-Batch", num) != NATS_OK)
			return -1;
	}
	return 0;
}

/* Builds every message of the job; NULL entries are not made. Returns 0, or
 * -1 after answering the request. */
static int build_messages(struct job *job, natsMsg **msgs)
{
	struct daemon *d = job->d;
	struct agg *a = job->agg;
	cbuf block = CBUF_INIT;
	cim_cid prev;
	char prev_text[CIM_CID_TEXT_MAX], subj[512], err[200], ts[CIM_TIME_TEXT];
	json_t *empty = json_object();
	bool has_prev = a->version > 0;

	agg_head_cid(a, &prev);
	if (has_prev)
		cim_cid_to_text(&prev, prev_text);
	job->base = a->version + 1;
	for (size_t i = 0; i < job->n; i++) {
		const cim_append_event_req *r = &job->ar.events[i];
		struct jev *e = &job->ev[i];
		cim_event_block b;

		if (r->event_id) {
			memcpy(e->event_id, r->event_id, r->event_id_len);
			e->event_id[r->event_id_len] = '\0';
			e->event_id_len = r->event_id_len;
		} else {
			cim_uuid7(e->event_id);
			e->event_id_len = strlen(e->event_id);
		}
		cim_time_now(ts);
		b = (cim_event_block){
			.aggregate_type = job->type,
			.aggregate_id = job->id,
			.version = job->base + i,
			.event_type = (char *)r->event_type,
			.event_id = e->event_id,
			.correlation_id = (char *)(r->correlation_id ? r->correlation_id : e->event_id),
			.causation_id = (char *)(r->causation_id ? r->causation_id : e->event_id),
			.event_id_len = e->event_id_len,
			.correlation_id_len = r->correlation_id ? r->correlation_id_len
								: e->event_id_len,
			.causation_id_len = r->causation_id ? r->causation_id_len : e->event_id_len,
			.timestamp = ts,
			.metadata = r->metadata ? r->metadata : empty,
			.data = r->data,
			.has_prev = has_prev,
			.prev = prev,
		};
		cbuf_reset(&block);
		if (cim_event_encode(&b, &block, err, sizeof err) != 0) {
			job_fail(job, CIM_ERR_INVALID_REQUEST, NULL, "%s", err);
			goto fail;
		}
		if (block.len > (size_t)d->cfg->max_event_bytes) {
			char what[160], field[32];
			snprintf(field, sizeof field, "events[%zu]", i);
			snprintf(what, sizeof what,
				 "%s is %zu bytes as a stored block, over max_event_bytes (%lld)",
				 field, block.len, (long long)d->cfg->max_event_bytes);
			job_fail(job, CIM_ERR_PAYLOAD_TOO_LARGE, field, "%s", what);
			goto fail;
		}
		cim_cid_compute(&e->cid, CIM_CODEC_DAG_CBOR, d->cfg->hash_code, block.p, block.len);
		snprintf(subj, sizeof subj, "%s%s.%s.%s", d->events_prefix, job->type,
			 job->id, r->event_type);
		if (natsMsg_Create(&msgs[i], subj, NULL, (const char *)block.p, (int)block.len) != NATS_OK ||
		    set_headers(msgs[i], d, e, &b, has_prev ? prev_text : NULL, i, job->n) != 0) {
			job_fail(job, CIM_ERR_INTERNAL, NULL, "%s", "cannot build the message");
			goto fail;
		}
		atomic_fetch_add(&d->bytes_appended, block.len);
		prev = e->cid;
		has_prev = true;
		cim_cid_to_text(&prev, prev_text);
	}
	cbuf_free(&block);
	json_decref(empty);
	return 0;
fail:
	cbuf_free(&block);
	json_decref(empty);
	return -1;
}

static void job_complete(struct job *job);

static void job_publish(struct job *job)
{
	struct daemon *d = job->d;
	const size_t n = job->n; /* the job may be gone once its last ack is in */
	natsMsg **msgs = calloc(n, sizeof *msgs);
	char msgid[256];
	natsStatus s = NATS_OK;
	size_t sent = 0;

	if (msgs == NULL) {
		job_fail(job, CIM_ERR_INTERNAL, NULL, "%s", "out of memory");
		return;
	}
	if (build_messages(job, msgs) != 0)
		goto out;
	if (natsConnection_Status(d->nc) != NATS_CONN_STATUS_CONNECTED) {
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
			 "not connected to NATS; nothing was stored");
		goto out;
	}
	if (!lease_valid(d)) {
		/* another daemon may be the writer by now (lease.c) */
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
			 "this daemon's writer lease could not be renewed in time; "
			 "nothing was stored");
		goto out;
	}

	/* the id and the stream go in as headers, so that a message can be
	 * published again as it is (resolve_and_answer) */
	for (size_t i = 0; i < n; i++) {
		if (job->gen == 0)
			snprintf(msgid, sizeof msgid, "%s.%s.%llu", job->type, job->id,
				 (unsigned long long)(job->base + i));
		else
			snprintf(msgid, sizeof msgid, "%s.%s.%llu.%u", job->type, job->id,
				 (unsigned long long)(job->base + i), job->gen);
		if (natsMsgHeader_Set(msgs[i], "Nats-Msg-Id", msgid) != NATS_OK ||
		    natsMsgHeader_Set(msgs[i], "Nats-Expected-Stream", d->cfg->stream) != NATS_OK) {
			job_fail(job, CIM_ERR_INTERNAL, NULL, "%s", "cannot build the message");
			goto out;
		}
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = d->cfg->publish_timeout_ms;
	for (; sent < n; sent++) {
		s = js_PublishMsgAsync(d->js, &msgs[sent], &po);
		if (s != NATS_OK)
			break;
	}
	if (sent < n) {
		/* the rest never left */
		bool done;
		pthread_mutex_lock(&d->mu);
		snprintf(job->fail_msg, sizeof job->fail_msg,
			 "storage: cannot publish: %s", natsStatus_GetText(s));
		for (size_t i = sent; i < n; i++) {
			job->ev[i].state = JEV_NOT_STORED;
			job->ev[i].msg = msgs[i];
			msgs[i] = NULL;
		}
		job->resolved += n - sent;
		done = job->resolved == n;
		pthread_mutex_unlock(&d->mu);
		if (done)
			job_complete(job);
	}
out:
	for (size_t i = 0; i < n; i++)
		natsMsg_Destroy(msgs[i]);
	free(msgs);
}

/* ---- acks --------------------------------------------------------------------- */

void append_ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
			void *closure)
{
	struct daemon *d = closure;
	const char *mid = NULL;
	char buf[256];
	struct job *job = NULL;
	bool done = false;

	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &mid) != NATS_OK || mid == NULL ||
	    snprintf(buf, sizeof buf, "%s", mid) >= (int)sizeof buf)
		goto out;
	/* <type>.<id>.<version>[.<generation>]: neither type nor id holds a dot */
	char *dot1 = strchr(buf, '.');
	char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (dot2 == NULL)
		goto out;
	*dot1 = *dot2 = '\0';
	uint64_t version = strtoull(dot2 + 1, NULL, 10);

	pthread_mutex_lock(&d->mu);
	struct agg *a = heads_find(&d->heads, buf, dot1 + 1);
	job = a ? a->busy : NULL;
	if (job == NULL || version < job->base || version >= job->base + job->n ||
	    job->ev[version - job->base].state != JEV_PENDING) {
		pthread_mutex_unlock(&d->mu);
		log_warn("ack for %s matches no append in flight", mid);
		goto out;
	}
	struct jev *e = &job->ev[version - job->base];
	if (pa != NULL) {
		e->seq = pa->Sequence;
		e->state = pa->Duplicate ? JEV_DUPLICATE : JEV_OK;
	} else {
		natsStatus err = pae ? pae->Err : NATS_ERR;
		/* JetStream answered no; or the answer never came, or came as
		 * "no responders" (nats.c gives that one an error code too),
		 * which was seen for messages that were stored all the same,
		 * when the daemon's server died as they went through it: it
		 * may be stored, now or later */
		e->state = err != NATS_NO_RESPONDERS && pae && pae->ErrCode != 0 ? JEV_REFUSED
										  : JEV_UNKNOWN;
		if (e->state != JEV_REFUSED) {
			e->msg = msg;
			msg = NULL;
		}
		snprintf(job->fail_msg, sizeof job->fail_msg, "storage: %s%s%s",
			 natsStatus_GetText(err), pae && pae->ErrText ? ": " : "",
			 pae && pae->ErrText ? pae->ErrText : "");
	}
	done = ++job->resolved == job->n;
	pthread_mutex_unlock(&d->mu);
out:
	natsMsg_Destroy(msg);
	if (done)
		job_complete(job);
}

static void resolve_and_answer(struct daemon *d, void *arg);

/* The job's events are all stored, at ev[i].seq: the head moves on and
 * the request is answered. */
static void job_commit(struct job *job)
{
	struct daemon *d = job->d;
	int64_t now = now_ns();
	const struct jev *last = &job->ev[job->n - 1];

	pthread_mutex_lock(&d->mu);
	agg_set_head(job->agg, job->base + job->n - 1, &last->cid, last->seq, last->event_id,
		     last->event_id_len);
	if (job->agg->first_seq == 0)
		job->agg->first_seq = job->ev[0].seq;
	if (last->seq > d->seen_seq)
		d->seen_seq = last->seq;
	for (size_t i = 0; i < job->n; i++) {
		const char *et = job->ar.events[i].event_type;
		agg_add_type(&d->heads, job->agg, et, strlen(et));
		tix_note_type(d, job->ev[i].seq, et, strlen(et));
	}
	for (size_t i = 0; i < job->n; i++)
		recent_add(&d->recent, job->ev[i].event_id, job->ev[i].event_id_len, job->agg,
			   job->base + i,
			   job->ev[i].seq, now, d->cfg->idempotency_window_s * 1000000000LL);
	job->agg->state = AGG_SETTLED;
	pthread_mutex_unlock(&d->mu);
	atomic_fetch_add(&d->events_appended, job->n);
	reply_json(d, job->req, success_reply(job, job->base));
	job_done(job);
}

static size_t count_state(const struct job *job, enum jev_state st)
{
	size_t k = 0;
	for (size_t i = 0; i < job->n; i++)
		k += job->ev[i].state == st;
	return k;
}

static void abandon(struct job *job, bool answered, const char *why);

static void job_complete(struct job *job)
{
	struct daemon *d = job->d;

	if (count_state(job, JEV_OK) == job->n) {
		job_commit(job);
		return;
	}
	if (count_state(job, JEV_REFUSED) + count_state(job, JEV_NOT_STORED) == job->n) {
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s; nothing was stored",
			 job->fail_msg);
		return;
	}
	/* some stored, or not known: find out before anything else is written */
	pthread_mutex_lock(&d->mu);
	job->agg->state = AGG_UNSETTLED;
	pthread_mutex_unlock(&d->mu);
	if (work_submit(d, resolve_and_answer, job) != 0)
		abandon(job, false, "the daemon is overloaded");
}

/* ---- an append whose outcome is not known at once ---------------------------
 *
 * Some acks said "duplicate", or never came, or nobody took the message.
 * Reading the stream to find out cannot be trusted while a cluster elects
 * a leader: a publish that timed out may be committed seconds later. So
 * each message not known to be stored is published again, the same bytes
 * under the same Nats-Msg-Id, until JetStream gives a definite answer:
 * stored now, or "duplicate" with the sequence of the copy it already had
 * (which is read back, through the leader, and compared). Then the whole
 * job is known: all of it stored in order (done), or part of it refused,
 * or its ids burned by removed messages, and then what of it is stored is
 * taken back (no reader saw it: the head never moved). */

#define RESOLVE_TRY_NS (250 * 1000000LL)
#define RESOLVE_MIN_NS (20 * 1000000000LL)
#define UNSURE_GRACE_NS (30 * 1000000000LL)

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

/* Publishes the job's unsure messages again until each has a definite
 * answer. 0 when all have, -1 when it gave up (no lease, no time). */
static int republish(struct job *job, bool *answered)
{
	struct daemon *d = job->d;
	int64_t start = now_ns();
	int64_t timeout_ns = d->cfg->publish_timeout_ms * 1000000LL;
	int64_t deadline = start + (timeout_ns * 3 > RESOLVE_MIN_NS ? timeout_ns * 3
								    : RESOLVE_MIN_NS);
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
			if (e->state != JEV_UNKNOWN && e->state != JEV_NOT_STORED)
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

/* Stored in version order, after the head? */
static bool in_order(const struct job *job)
{
	uint64_t prev = job->agg->seq;
	for (size_t i = 0; i < job->n; i++) {
		if (job->ev[i].seq <= prev)
			return false;
		prev = job->ev[i].seq;
	}
	return true;
}

static void sweep_add(struct daemon *d, struct agg *a);

/* Gives up on knowing: the aggregate is settled from the stream before it
 * is written again, and no torn batch is removed while the publish may
 * still land. */
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

/* On a worker: learn what became of each message, then answer. */
static void resolve_and_answer(struct daemon *d, void *arg)
{
	struct job *job = arg;
	bool answered = false;

	if (republish(job, &answered) != 0) {
		abandon(job, answered, lease_valid(d) ? "no definite answer from storage"
						      : "the writer lease is not held");
		return;
	}
	if (check_duplicates(job) != 0) {
		abandon(job, answered, "the stream's leader cannot be asked");
		return;
	}
	size_t n = job->n;
	if (count_state(job, JEV_OK) == n && in_order(job)) {
		log_info("%s/%s: versions %llu-%llu confirmed stored after all", job->type,
			 job->id, (unsigned long long)job->base,
			 (unsigned long long)(job->base + n - 1));
		job_commit(job);
		return;
	}
	/* not all of it, or not in order: nothing of it may stay */
	if (take_back(job) != 0) {
		abandon(job, answered, "what was stored of it cannot be taken back");
		return;
	}
	/* another append's events past the head: read the stream before
	 * going on */
	pthread_mutex_lock(&d->mu);
	job->agg->state = count_state(job, JEV_FOREIGN) > 0 ? AGG_UNSETTLED : AGG_SETTLED;
	pthread_mutex_unlock(&d->mu);
	if (count_state(job, JEV_REFUSED) > 0) {
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s; nothing was stored",
			 job->fail_msg[0] ? job->fail_msg : "storage refused the append");
	} else if (count_state(job, JEV_FOREIGN) > 0) {
		/* (one this daemon gave up on, landed since) */
		job_reply_fail(job, CIM_ERR_INTERNAL,
			       "storage holds other events at these versions; nothing of this "
			       "append was kept; retry with the same event_ids");
		job_done(job);
	} else if (job->gen < MSGID_GENS) {
		/* ids burned by removed messages, or stored out of order: once
		 * more under new ids, from the head */
		log_info("%s/%s: publishing version %llu again as generation %u (%s)",
			 job->type, job->id, (unsigned long long)job->base, job->gen + 1,
			 count_state(job, JEV_BURNED) ? "its ids were used by removed messages"
						      : "it was stored out of order");
		job->gen++;
		job->resolved = 0;
		memset(job->fail_msg, 0, sizeof job->fail_msg);
		for (size_t i = 0; i < n; i++) {
			natsMsg_Destroy(job->ev[i].msg);
			job->ev[i].msg = NULL;
			job->ev[i].state = JEV_PENDING;
		}
		job_run(job);
	} else {
		job_reply_fail(job, CIM_ERR_INTERNAL,
			       "storage kept refusing this append's ids; nothing was kept; retry");
		job_done(job);
	}
}

/* ---- idempotent retries ------------------------------------------------------- */

static bool same_text(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static bool same_event(const cim_event_block *s, const cim_append_event_req *r,
		       const char *type, const char *id)
{
	const char *eid = r->event_id;
	size_t eidlen = r->event_id_len;
	bool md;

	if (strcmp(s->aggregate_type, type) != 0 || strcmp(s->aggregate_id, id) != 0 ||
	    strcmp(s->event_type, r->event_type) != 0 ||
	    !same_text(s->event_id, s->event_id_len, eid, eidlen) ||
	    !same_text(s->correlation_id, s->correlation_id_len,
		       r->correlation_id ? r->correlation_id : eid,
		       r->correlation_id ? r->correlation_id_len : eidlen) ||
	    !same_text(s->causation_id, s->causation_id_len,
		       r->causation_id ? r->causation_id : eid,
		       r->causation_id ? r->causation_id_len : eidlen))
		return false;
	md = r->metadata ? cim_json_same(s->metadata, r->metadata)
			 : json_object_size(s->metadata) == 0;
	return md && cim_json_same(s->data, r->data);
}

/* Answers duplicate_event naming the event_id (len bytes), and ends the job. */
static void reply_duplicate(struct job *job, const char *eid, size_t len, const char *how)
{
	char msg[300], q[64];
	json_t *o;

	cim_json_quote(q, sizeof q, eid, len);
	snprintf(msg, sizeof msg, "event_id %s is already stored %s", q, how);
	o = cim_error_json(CIM_ERR_DUPLICATE_EVENT, NULL, msg);
	if (o != NULL)
		json_object_set_new(json_object_get(o, "error"), "event_id",
				    json_stringn(eid, len));
	reply_error_json(job->d, job->req, OP_APPEND, CIM_ERR_DUPLICATE_EVENT, o);
	job_done(job);
}

/* Reads the block at seq; 0 on success. */
static int load_block(struct daemon *d, uint64_t seq, cim_event_block *b,
		      cim_cid *cid, cim_perr *e)
{
	char err[160];
	natsMsg *m = store_get_msg(d, seq, e);
	if (m == NULL)
		return -1;
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	int rc = cim_event_decode(p, len, b, err, sizeof err);
	if (rc == 0)
		cim_cid_compute(cid, CIM_CODEC_DAG_CBOR, d->cfg->hash_code, p, len);
	else
		cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "stored event at seq %llu: %s",
			     (unsigned long long)seq, err);
	natsMsg_Destroy(m);
	return rc;
}

struct tail {
	struct daemon *d;
	size_t want;
	uint64_t *seqs; /* ring of the last `want` seqs */
	size_t n;
};

static int tail_visit(natsMsg *m, uint64_t seq, int64_t ts, void *ctx)
{
	struct tail *t = ctx;
	t->seqs[t->n++ % t->want] = seq;
	return 0;
}

/* Where each of the job's event_ids is stored, if it is: 1 and their seqs
 * when the job's events are the stored events at consecutive versions of
 * its aggregate, 0 when none of them is stored, -1 after answering. */
static int find_stored(struct job *job, uint64_t *seqs, uint64_t *first_version)
{
	struct daemon *d = job->d;
	struct agg *a = job->agg;
	cim_perr e = {0};
	size_t hits = 0;

	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < job->n; i++) {
		struct agg *wa;
		uint64_t v, seq;
		const cim_append_event_req *r = &job->ar.events[i];
		seqs[i] = 0;
		if (r->event_id == NULL ||
		    recent_find(&d->recent, r->event_id, r->event_id_len, &wa, &v, &seq) != 0)
			continue;
		if (wa != a) {
			pthread_mutex_unlock(&d->mu);
			reply_duplicate(job, r->event_id, r->event_id_len, "in another aggregate");
			return -1;
		}
		if (hits == 0)
			*first_version = v - i;
		seqs[i] = seq;
		hits++;
	}
	uint64_t head_seq = a->seq, head_version = a->version, first_seq = a->first_seq;
	const char *types[AGG_TYPES_UNKNOWN];
	int ntypes = agg_types(&d->heads, a, types, AGG_TYPES_UNKNOWN);
	size_t k = job->n; /* the event whose id is the head's, if any */
	for (size_t i = 0; a->version > 0 && i < job->n; i++)
		if (job->ar.events[i].event_id &&
		    a->eid_hash == event_id_digest(job->ar.events[i].event_id,
						   job->ar.events[i].event_id_len))
			k = i;
	pthread_mutex_unlock(&d->mu);

	if (hits < job->n && k < job->n && head_version > k) {
		/* event k is the head: this may retry the latest append (after a
		 * restart, or past the window); find the events it would match */
		size_t want = k + 1;
		struct tail t = {d, want, calloc(want, sizeof(uint64_t)), 0};
		if (t.seqs == NULL ||
		    store_read_agg(d, job->type, job->id, types, ntypes, first_seq, head_seq,
				   tail_visit, &t, &e) != 0 ||
		    t.n < want) {
			free(t.seqs);
			job_fail(job, CIM_ERR_UNAVAILABLE, NULL,
				 "cannot read the aggregate to check a retry: %s", e.msg);
			return -1;
		}
		for (size_t i = 0; i < want; i++)
			seqs[i] = t.seqs[(t.n + i) % want];
		*first_version = head_version - k;
		free(t.seqs);
		hits = want;
	}
	return hits == 0 ? 0 : 1;
}

/* On a worker: is this append a retry of a stored one? */
static void check_retry(struct daemon *d, void *arg)
{
	struct job *job = arg;
	uint64_t *seqs = calloc(job->n, sizeof *seqs), first = 0;
	size_t matched = 0;
	const cim_append_event_req *dup = NULL;
	cim_perr e;

	if (seqs == NULL) {
		job_fail(job, CIM_ERR_INTERNAL, NULL, "%s", "out of memory");
		return;
	}
	int found = find_stored(job, seqs, &first);
	if (found < 0)
		goto out;
	for (size_t i = 0; found && i < job->n; i++) {
		cim_event_block b;
		cim_cid cid;
		const cim_append_event_req *r = &job->ar.events[i];
		if (seqs[i] == 0 || r->event_id == NULL)
			continue;
		if (load_block(d, seqs[i], &b, &cid, &e) != 0) {
			if (e.code == CIM_ERR_NOT_FOUND)
				continue;
			job_fail(job, CIM_ERR_UNAVAILABLE, NULL,
				 "cannot read a stored event to check a retry: %s", e.msg);
			goto out;
		}
		if (!same_text(b.event_id, b.event_id_len, r->event_id, r->event_id_len)) {
			cim_event_block_free(&b); /* a hash collision: not this event */
			continue;
		}
		if (!same_event(&b, r, job->type, job->id)) {
			dup = r;
		} else if (b.version == first + i) {
			memcpy(job->ev[i].event_id, b.event_id, b.event_id_len);
			job->ev[i].event_id_len = b.event_id_len;
			job->ev[i].cid = cid;
			job->ev[i].seq = seqs[i];
			matched++;
		} else if (dup == NULL) {
			dup = r;
		}
		cim_event_block_free(&b);
		if (dup)
			break;
	}
	if (dup == NULL && matched == job->n) {
		reply_json(d, job->req, success_reply(job, first));
		job_done(job);
	} else if (dup != NULL || matched > 0) {
		const cim_append_event_req *r = dup;
		for (size_t i = 0; r == NULL && i < job->n; i++)
			if (seqs[i])
				r = &job->ar.events[i];
		reply_duplicate(job, r->event_id, r->event_id_len,
				dup ? "with other content" : "as part of another append");
	} else {
		/* nothing of it is stored: a new append after all */
		job->idem_checked = true;
		job_run(job);
	}
out:
	free(seqs);
}

static bool may_be_retry(struct job *job)
{
	struct daemon *d = job->d;
	bool hit = false;

	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < job->n && !hit; i++) {
		const char *eid = job->ar.events[i].event_id;
		size_t len = job->ar.events[i].event_id_len;
		struct agg *wa;
		uint64_t v, seq;
		if (eid == NULL)
			continue;
		hit = recent_find(&d->recent, eid, len, &wa, &v, &seq) == 0 ||
		      (job->agg->version > 0 && job->agg->eid_hash == event_id_digest(eid, len));
	}
	pthread_mutex_unlock(&d->mu);
	return hit;
}

/* ---- running a job ------------------------------------------------------------ */

static void sweep_add(struct daemon *d, struct agg *a)
{
	pthread_mutex_lock(&d->mu);
	bool listed = false;
	for (int i = 0; i < d->nsweep && !listed; i++)
		listed = d->sweep[i] == a;
	if (!listed && d->nsweep < (int)(sizeof d->sweep / sizeof d->sweep[0]))
		d->sweep[d->nsweep++] = a;
	pthread_mutex_unlock(&d->mu);
}

static void settle_then_run(struct daemon *d, void *arg)
{
	struct job *job = arg;
	cim_perr e;

	if (job->settle_only) {
		if (store_settle(d, job->agg, &e) != 0) {
			log_warn("%s/%s: cannot settle it yet (%s); trying again later",
				 job->type, job->id, e.msg);
			sweep_add(d, job->agg);
		}
		job_done(job);
		return;
	}
	if (store_settle(d, job->agg, &e) != 0) {
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL,
			 "the aggregate's stored events cannot be checked yet: %s; "
			 "nothing was stored", e.msg);
		return;
	}
	job_run(job);
}

/* Runs a job that owns its aggregate, on whatever thread got it here. */
static void job_run(struct job *job)
{
	struct daemon *d = job->d;

	if (job->agg->state == AGG_UNSETTLED) {
		if (work_submit(d, settle_then_run, job) != 0)
			job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
				 "the daemon is overloaded; nothing was stored");
		return;
	}
	if (!job->idem_checked && may_be_retry(job)) {
		if (work_submit(d, check_retry, job) != 0)
			job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
				 "the daemon is overloaded; nothing was stored");
		return;
	}
	if (!expectation_met(&job->ar, job->agg->version)) {
		reply_wrong_version(job, job->agg->version);
		return;
	}
	if (d->cfg->max_events_per_aggregate > 0 &&
	    job->agg->version + job->n > (uint64_t)d->cfg->max_events_per_aggregate) {
		char what[200];
		snprintf(what, sizeof what, "the aggregate is at version %llu; %zu more "
			 "event(s) would pass max_events_per_aggregate (%lld); nothing was stored",
			 (unsigned long long)job->agg->version, job->n,
			 (long long)d->cfg->max_events_per_aggregate);
		job_fail(job, CIM_ERR_PAYLOAD_TOO_LARGE, "events", "%s", what);
		return;
	}
	job_publish(job);
}

void append_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_limits lim = {(size_t)d->cfg->max_events_per_append, CIM_MAX_DEPTH};
	struct job *job;
	cim_perr e = {0};

	if (atomic_load(&d->draining)) {
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL,
			     "the daemon is shutting down; nothing was stored");
		refuse(d, req, OP_APPEND, &e);
		return;
	}
	if (atomic_load(&d->jobs_in_flight) >= JOBS_MAX) {
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL,
			     "the daemon has %d appends in flight; nothing was stored, "
			     "retry later", JOBS_MAX);
		refuse(d, req, OP_APPEND, &e);
		return;
	}
	/* each job keeps its request and its parsed body until it is answered:
	 * bound them by bytes too (one append is always let through) */
	size_t len = (size_t)natsMsg_GetDataLength(req);
	if (atomic_load(&d->jobs_in_flight) > 0 &&
	    atomic_load(&d->job_bytes) + (long)len > JOB_BYTES_MAX) {
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL,
			     "the daemon holds %ld MiB of appends in flight; nothing was "
			     "stored, retry later", JOB_BYTES_MAX >> 20);
		refuse(d, req, OP_APPEND, &e);
		return;
	}
	job = calloc(1, sizeof *job);
	if (job == NULL) {
		refuse_oom(d, req, OP_APPEND);
		return;
	}
	job->d = d;
	job->req = req;
	snprintf(job->type, sizeof job->type, "%s", type);
	snprintf(job->id, sizeof job->id, "%s", id);
	if (cim_append_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req),
				 &lim, &job->ar, &e) != 0) {
		reply_error(d, req, OP_APPEND, &e);
		job_free(job);
		return;
	}
	job->n = job->ar.n;
	job->ev = calloc(job->n, sizeof *job->ev);
	if (job->ev == NULL) {
		cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
		reply_error(d, req, OP_APPEND, &e);
		job_free(job);
		return;
	}
	atomic_fetch_add(&d->jobs_in_flight, 1);
	job->req_len = len;
	atomic_fetch_add(&d->job_bytes, (long)len);
	job->qtail = job;

	pthread_mutex_lock(&d->mu);
	job->agg = heads_get_or_add(&d->heads, type, id);
	if (job->agg == NULL) {
		pthread_mutex_unlock(&d->mu);
		cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
		reply_error(d, req, OP_APPEND, &e);
		atomic_fetch_sub(&d->jobs_in_flight, 1);
		job_free(job);
		return;
	}
	if (job->agg->busy != NULL) {
		struct job *run = job->agg->busy;
		run->qtail->next = job;
		run->qtail = job;
		pthread_mutex_unlock(&d->mu);
		return;
	}
	job->agg->busy = job;
	pthread_mutex_unlock(&d->mu);
	job_run(job);
}

void append_sweep(struct daemon *d)
{
	struct job *run[64];
	int n = 0;

	if (now_ns() < atomic_load(&d->unsure_until))
		return;
	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->nsweep;) {
		struct agg *a = d->sweep[i];
		struct job *job = NULL;
		if (a->busy == NULL && a->state == AGG_UNSETTLED &&
		    (job = calloc(1, sizeof *job)) != NULL) {
			job->d = d;
			job->agg = a;
			job->settle_only = true;
			job->qtail = job;
			snprintf(job->type, sizeof job->type, "%s", agg_type(a));
			snprintf(job->id, sizeof job->id, "%s", agg_id(a));
			a->busy = job;
			run[n++] = job;
		}
		if (job != NULL || a->state != AGG_UNSETTLED)
			d->sweep[i] = d->sweep[--d->nsweep];
		else
			i++; /* busy: its own append settles it, or a later sweep */
	}
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; i < n; i++) {
		atomic_fetch_add(&d->jobs_in_flight, 1);
		if (work_submit(d, settle_then_run, run[i]) != 0) {
			sweep_add(d, run[i]->agg);
			job_done(run[i]);
		}
	}
}
