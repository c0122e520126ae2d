/*
 * append.c: the write path.
 *
 * An append request becomes a job, and each aggregate with jobs has a
 * pipe: its jobs in arrival order (append.h). The oldest job owns the
 * aggregate's head: it is checked against the head in memory (expected
 * version, limits, a retry of stored events), built chained from the
 * head, and handed to js_PublishMsgAsync whole; nothing waits. The ack
 * handler counts the acks; when the oldest job's are all in and all say
 * "stored", in version order, it commits the new head and answers.
 *
 * Pipelining. The daemon is the only writer and knows the head each job
 * will make, so while the oldest job's acks are out the jobs behind it
 * are launched too, each built on the head the one before it will make
 * (the pipe's "tip"), up to append_pipeline jobs in flight. A job behind
 * the oldest is only ever launched: every other decision (a wrong
 * expected version, a limit, a possible retry, settling, a message that
 * cannot be built or sent) waits until it is the oldest, exactly as
 * without pipelining, so that it is taken as if it had waited. Jobs are
 * committed and answered strictly in order, each only when all before it
 * are committed. When the oldest job is not simply stored, nothing more
 * is launched, and once every launched job has its acks the whole chain
 * is resolved (resolve.c): what is stored in order is committed, the
 * first job that is not is answered or published again, and what was
 * chained on it is taken back and run again, as if it had waited.
 *
 * Nats-Msg-Id is "<type>.<id>.<version>": JetStream keeps one message per
 * id in its duplicate window, so no version can be written twice even if
 * two writers ever raced. Removing a message does not take its id out of
 * the duplicate window, so an id can be "burned"; then the job publishes
 * with the id "<type>.<id>.<version>.<n>", a new generation.
 *
 * Retrying an append with the same event_ids is answered from what is
 * stored: the window (heads.c) says where an event_id went; the stored
 * block is read back and compared before the original reply is rebuilt.
 *
 * Threads. Any thread may end up running a pipe: the request callback
 * (a new job), the ack handler (a commit frees room), a worker (after
 * settling, a retry check or a resolution). One holds the pipe's
 * `running` token at a time and launches; the others only ask it to look
 * again, so a pipe's messages are published in version order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "append.h"
#include "crypt.h"
#include "dagcbor.h"
#include "event.h"
#include "ids.h"
#include "jsontext.h"
#include "log.h"
#include "seal.h"

static enum run job_run(struct job *job);
static void run_on(struct job *job);
static void job_complete(struct job *job);

void job_free(struct job *job)
{
	keys_unpin(job->d, job->dek);
	if (job->req_len > 0)
		atomic_fetch_sub(&job->d->job_bytes, (long)job->req_len);
	cim_append_req_free(&job->ar);
	cim_restore_req_free(&job->rs);
	natsMsg_Destroy(job->req);
	for (size_t i = 0; job->ev != NULL && i < job->n; i++)
		natsMsg_Destroy(job->ev[i].msg);
	free(job->ev);
	free(job);
}

/* ---- the pipe's life ------------------------------------------------------------ */

/* Nothing uses p any more; d->mu held. Unlinks it (the caller frees it
 * once unlocked), and an aggregate that still has no event keeps no
 * memory (nor a place on the sweep list), unless ids of its were burned
 * within the idempotency window: the note of their generation must
 * outlive the window, or a new first append would reuse them. */
static bool pipe_gone_locked(struct daemon *d, struct pipe *p)
{
	struct agg *a = p->agg;

	if (p->first != NULL || p->running || p->refs > 0)
		return false;
	a->busy = NULL;
	if (a->version == 0 && a->state == AGG_SETTLED && burn_gen_locked(d, a, 1) == 0) {
		for (size_t i = 0; a->listed && i < d->nsweep; i++)
			if (d->sweep[i] == a) {
				d->sweep[i] = d->sweep[--d->nsweep];
				a->listed = 0;
			}
		burn_forget_locked(d, a);
		heads_remove(&d->heads, a);
	}
	return true;
}

void pipe_unref(struct pipe *p)
{
	struct daemon *d = p->d;

	pthread_mutex_lock(&d->mu);
	p->refs--;
	bool gone = pipe_gone_locked(d, p);
	pthread_mutex_unlock(&d->mu);
	if (gone)
		free(p);
}

void job_done(struct job *job)
{
	struct daemon *d = job->d;
	struct pipe *p = job->pipe;

	pthread_mutex_lock(&d->mu);
	/* jobs end in order: only the oldest is ever answered */
	p->first = job->next;
	if (p->last == job)
		p->last = NULL;
	if (p->next_run == job)
		p->next_run = job->next;
	if (job->launched)
		p->launched--;
	/* the caller holds the token or a reference: the pipe stays */
	pthread_mutex_unlock(&d->mu);
	atomic_fetch_sub(&d->jobs_in_flight, 1);
	job_free(job);
}

void job_fail(struct job *job, cim_err code, const char *field, const char *fmt,
	      const char *arg)
{
	cim_perr e;
	cim_perr_set(&e, code, field, fmt, arg);
	forget_fail_note(job, &e);
	reply_error(job->d, job->req, job->op, &e);
	job_done(job);
}

void job_reply_fail(struct job *job, cim_err code, const char *msg)
{
	cim_perr e;
	cim_perr_set(&e, code, NULL, "%s", msg);
	forget_fail_note(job, &e);
	reply_error(job->d, job->req, job->op, &e);
}

/* Answers success: the reply written straight as text, byte for byte what
 * cim_json_text would make of the object {aggregate_type, aggregate_id,
 * version, head, events: [{version, cid, event_id, seq}]}, without a
 * jansson tree on the hot path. */
void reply_success(const struct job *job, uint64_t base)
{
	char text[CIM_CID_TEXT_MAX];
	cbuf b = CBUF_INIT;
	int rc = 0;

	rc |= cbuf_put(&b, "{\"aggregate_type\":", 18);
	rc |= cim_json_write_string(&b, job->type, strlen(job->type));
	rc |= cbuf_put(&b, ",\"aggregate_id\":", 16);
	rc |= cim_json_write_string(&b, job->id, strlen(job->id));
	rc |= cbuf_put(&b, ",\"version\":", 11);
	rc |= cim_json_write_int(&b, (int64_t)(base + job->n - 1));
	cim_cid_to_text(&job->ev[job->n - 1].cid, text);
	rc |= cbuf_put(&b, ",\"head\":", 8);
	rc |= cim_json_write_string(&b, text, strlen(text));
	rc |= cbuf_put(&b, ",\"events\":[", 11);
	for (size_t i = 0; i < job->n && rc == 0; i++) {
		const struct jev *e = &job->ev[i];
		cim_cid_to_text(&e->cid, text);
		rc |= cbuf_put(&b, i ? ",{\"version\":" : "{\"version\":", i ? 12 : 11);
		rc |= cim_json_write_int(&b, (int64_t)(base + i));
		rc |= cbuf_put(&b, ",\"cid\":", 7);
		rc |= cim_json_write_string(&b, text, strlen(text));
		rc |= cbuf_put(&b, ",\"event_id\":", 12);
		rc |= cim_json_write_string(&b, e->event_id, e->event_id_len);
		rc |= cbuf_put(&b, ",\"seq\":", 7);
		rc |= cim_json_write_int(&b, (int64_t)e->seq);
		rc |= cbuf_putc(&b, '}');
	}
	rc |= cbuf_put(&b, "]}", 2);
	if (rc != 0) {
		cim_perr e;
		cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
		reply_error(job->d, job->req, job->op, &e);
	} else {
		reply_text(job->d, job->req, (const char *)b.p, b.len);
	}
	cbuf_free(&b);
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
	reply_error_json(job->d, job->req, job->op, CIM_ERR_WRONG_EXPECTED_VERSION, o);
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

/* One event as it is published: its block and what its headers say (the
 * ids NUL-terminated, with their lengths: an id may hold U+0000). */
struct built {
	const uint8_t *p;
	size_t len;
	uint64_t version;
	const char *event_type, *event_id, *correlation_id, *causation_id;
	size_t event_id_len, correlation_id_len, causation_id_len;
};

/* The headers every event message carries (docs/protocol.md, section 8);
 * prev_text NULL at version 1; i of n in the batch. 0 or -1. */
static int event_headers(natsMsg *m, const struct daemon *d, const cim_cid *cid,
			 const struct built *b, const char *prev_text, size_t i, size_t n)
{
	char text[CIM_CID_TEXT_MAX], num[48];

	cim_cid_to_text(cid, text);
	snprintf(num, sizeof num, "%llu", (unsigned long long)b->version);
	if (natsMsgHeader_Set(m, "Cim-Cid", text) != NATS_OK ||
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

/* Sets the seal headers on m: k's seal of cid, or (k NULL) the given seal
 * block's. 0 or -1. */
static int seal_set_headers(natsMsg *m, const cim_signing_key *k, const cim_cid *cid,
			    const cim_seal_block *given)
{
	uint8_t sig[CIM_SEAL_SIG_BYTES];
	char key[CIM_PUBKEY_TEXT_MAX], text[CIM_SEAL_TEXT_MAX];

	if (k != NULL) {
		if (cim_seal_sign(k, cid, sig) != 0)
			return -1;
		snprintf(key, sizeof key, "%s", k->text);
	} else {
		memcpy(sig, given->sig, sizeof sig);
		cim_pubkey_to_text(given->pk, key);
	}
	cim_seal_sig_to_text(sig, text);
	return natsMsgHeader_Set(m, "Cim-Seal-Key", key) == NATS_OK &&
			       natsMsgHeader_Set(m, "Cim-Seal", text) == NATS_OK
		       ? 0
		       : -1;
}

const char *job_event_type(const struct job *job, size_t i)
{
	return job->op == OP_RESTORE ? job->rs.types[i] : job->ar.events[i].event_type;
}

/* Why a job's messages could not be built: the answer it gets once it is
 * the oldest. */
struct build_err {
	cim_err code;
	char field[32]; /* "" when the answer names none */
	char msg[200];
};

/* Event i of an append, encoded as a block chained on prev (NULL at
 * version 1) into block; with the job's data key, its data encrypted
 * (into enc, scratch space). 0, or -1 with *e set. */
static int encode_event(struct job *job, size_t i, uint64_t version, const cim_cid *prev,
			const json_t *empty, cbuf *block, cbuf *enc, struct built *out,
			struct build_err *e)
{
	const cim_append_event_req *r = &job->ar.events[i];
	struct jev *ev = &job->ev[i];
	char err[200], ts[CIM_TIME_TEXT];

	if (r->event_id) {
		memcpy(ev->event_id, r->event_id, r->event_id_len);
		ev->event_id[r->event_id_len] = '\0';
		ev->event_id_len = r->event_id_len;
	} else if (ev->event_id_len == 0) {
		cim_uuid7(ev->event_id); /* kept if the job is built again */
		ev->event_id_len = strlen(ev->event_id);
	}
	cim_time_now(ts);
	cim_event_block b = {
		.aggregate_type = job->type,
		.aggregate_id = job->id,
		.version = version,
		.event_type = (char *)r->event_type,
		.event_id = ev->event_id,
		.correlation_id = (char *)(r->correlation_id ? r->correlation_id : ev->event_id),
		.causation_id = (char *)(r->causation_id ? r->causation_id : ev->event_id),
		.event_id_len = ev->event_id_len,
		.correlation_id_len = r->correlation_id ? r->correlation_id_len : ev->event_id_len,
		.causation_id_len = r->causation_id ? r->causation_id_len : ev->event_id_len,
		.timestamp = ts,
		.metadata = r->metadata ? r->metadata : (json_t *)empty,
		.data = r->data,
		.has_prev = prev != NULL,
		.prev = prev ? *prev : (cim_cid){0},
	};
	if (job->dek != NULL) {
		/* an encrypted aggregate: data is stored as the enc of its
		 * DAG-CBOR under the data key, bound to the event_id */
		cim_ad ad = cim_ad_data(ev->event_id, ev->event_id_len);
		cbuf_reset(enc);
		if (cim_value_encrypt(enc, job->dek, &ad, r->data, NULL, err, sizeof err) != 0) {
			e->code = CIM_ERR_INVALID_REQUEST;
			snprintf(e->msg, sizeof e->msg, "event %zu: %.150s", i, err);
			return -1;
		}
		b.enc_data = enc->p;
		b.enc_data_len = enc->len;
	}
	cbuf_reset(block);
	if (cim_event_encode(&b, block, err, sizeof err) != 0) {
		e->code = CIM_ERR_INVALID_REQUEST;
		snprintf(e->msg, sizeof e->msg, "%s", err);
		return -1;
	}
	if (block->len > (size_t)job->d->cfg->max_event_bytes) {
		e->code = CIM_ERR_PAYLOAD_TOO_LARGE;
		snprintf(e->field, sizeof e->field, "events[%zu]", i);
		snprintf(e->msg, sizeof e->msg,
			 "%s is %zu bytes as a stored block, over max_event_bytes (%lld)",
			 e->field, block->len, (long long)job->d->cfg->max_event_bytes);
		return -1;
	}
	cim_cid_compute(&ev->cid, CIM_CODEC_DAG_CBOR, job->d->cfg->hash_code, block->p, block->len);
	*out = (struct built){block->p,
			      block->len,
			      version,
			      b.event_type,
			      b.event_id,
			      b.correlation_id,
			      b.causation_id,
			      b.event_id_len,
			      b.correlation_id_len,
			      b.causation_id_len};
	return 0;
}

/* Builds every message of the job, chained from the head `version` whose
 * CID is prev, with Nats-Msg-Id and Nats-Expected-Stream (so that a
 * message can be published again as it is, resolve.c); NULL entries are
 * not made. This is where each event becomes a block (a restore's blocks
 * are taken as given: restore.c checked that they continue this head): a
 * step that must see or change an event before it is stored and hashed
 * goes here. With a signing key, the last message carries the store's
 * seal; a restore's events also carry the seals it was given. 0, or -1
 * with *e set (nothing answered). */
static int build_messages(struct job *job, natsMsg **msgs, uint64_t version,
			  const cim_cid *head, struct build_err *e)
{
	struct daemon *d = job->d;
	cbuf block = CBUF_INIT, enc = CBUF_INIT;
	cim_cid prev = *head;
	char prev_text[CIM_CID_TEXT_MAX], subj[512], msgid[256];
	json_t *empty = job->op != OP_RESTORE ? json_object() : NULL;
	bool has_prev = version > 0;
	int rc = -1;

	if (has_prev)
		cim_cid_to_text(&prev, prev_text);
	job->base = version + 1;
	for (size_t i = 0; i < job->n; i++) {
		struct jev *ev = &job->ev[i];
		struct built b;
		int seal = -1;

		if (job->op == OP_RESTORE) {
			const cim_restore_block *rb = &job->rs.blocks[i];
			ev->cid = rb->cid;
			memcpy(ev->event_id, job->rs.ids[i][0], rb->v.event_id_len + 1);
			ev->event_id_len = rb->v.event_id_len;
			b = (struct built){rb->p,
					   rb->len,
					   rb->v.version,
					   job->rs.types[i],
					   job->rs.ids[i][0],
					   job->rs.ids[i][1],
					   job->rs.ids[i][2],
					   rb->v.event_id_len,
					   rb->v.correlation_id_len,
					   rb->v.causation_id_len};
			seal = rb->seal;
		} else if (encode_event(job, i, job->base + i, has_prev ? &prev : NULL, empty,
					&block, &enc, &b, e) != 0) {
			goto out;
		}
		atomic_fetch_add(&d->bytes_appended, b.len);
		snprintf(subj, sizeof subj, "%s%s.%s.%s", d->events_prefix, job->type,
			 job->id, b.event_type);
		if (job->gen == 0)
			snprintf(msgid, sizeof msgid, "%s.%s.%llu", job->type, job->id,
				 (unsigned long long)(job->base + i));
		else
			snprintf(msgid, sizeof msgid, "%s.%s.%llu.%u", job->type, job->id,
				 (unsigned long long)(job->base + i), job->gen);
		bool last = i + 1 == job->n;
		if (natsMsg_Create(&msgs[i], subj, NULL, (const char *)b.p, (int)b.len) != NATS_OK ||
		    event_headers(msgs[i], d, &ev->cid, &b, has_prev ? prev_text : NULL, i,
				  job->n) != 0 ||
		    (last && d->seal_key != NULL &&
		     seal_set_headers(msgs[i], d->seal_key, &ev->cid, NULL) != 0) ||
		    ((!last || d->seal_key == NULL) && seal >= 0 &&
		     seal_set_headers(msgs[i], NULL, NULL, &job->rs.seals[seal]) != 0) ||
		    natsMsgHeader_Set(msgs[i], "Nats-Msg-Id", msgid) != NATS_OK ||
		    natsMsgHeader_Set(msgs[i], "Nats-Expected-Stream", d->cfg->stream) != NATS_OK) {
			e->code = CIM_ERR_INTERNAL;
			snprintf(e->msg, sizeof e->msg, "cannot build the message");
			goto out;
		}
		prev = ev->cid;
		has_prev = true;
		cim_cid_to_text(&prev, prev_text);
	}
	rc = 0;
out:
	cbuf_free(&block);
	cbuf_free(&enc);
	json_decref(empty);
	return rc;
}

/* What the ack handler (or a publish that failed) leaves to do once
 * d->mu is released. */
struct steps {
	struct job *complete; /* the oldest job has all its acks */
	bool resolve;         /* the chain is ready to be resolved */
};

/* d->mu held. Takes a reference for what it finds to do. */
static void steps_find_locked(struct pipe *p, struct steps *s)
{
	struct job *f = p->first;

	s->complete = NULL;
	s->resolve = false;
	if (p->resolving) {
		s->resolve = p->incomplete == 0 && !p->resolve_started;
		p->resolve_started |= s->resolve;
	} else if (f != NULL && f->launched && f->resolved == f->n && !f->completing) {
		f->completing = true;
		s->complete = f;
	}
	if (s->complete || s->resolve)
		p->refs++;
}

static void steps_run(struct pipe *p, const struct steps *s)
{
	if (s->complete) {
		job_complete(s->complete);
		pipe_advance(p);
	}
	if (s->resolve)
		resolve_start(p);
	if (s->complete || s->resolve)
		pipe_unref(p);
}

/* Publishes the job: as the oldest (chained false), or chained on the
 * pipe's tip. A chained job that cannot go now is left waiting (it runs
 * again as the oldest) and nothing is answered. */
static enum run job_launch(struct job *job, bool chained)
{
	struct daemon *d = job->d;
	struct pipe *p = job->pipe;
	const size_t n = job->n; /* the job may be gone once its last ack is in */
	natsMsg **msgs = calloc(n, sizeof *msgs);
	struct build_err be = {CIM_ERR_INTERNAL, "", "out of memory"};
	uint64_t version;
	cim_cid head;
	natsStatus s = NATS_OK;
	size_t sent = 0;
	enum run r = RUN_WAIT;

	pthread_mutex_lock(&d->mu);
	if (chained) {
		version = p->tip_version;
		head = p->tip_cid;
	} else {
		version = job->agg->version;
		agg_head_cid(job->agg, &head);
	}
	/* ids this process burned at these versions take a new generation */
	unsigned g = burn_gen_locked(d, job->agg, version + 1);
	pthread_mutex_unlock(&d->mu);
	if (g > job->gen)
		job->gen = g;

	if (job->enc && job->dek == NULL && !job->plain) {
		/* chained: the oldest job got the key; from memory only */
		int k = keys_pin(d, job->type, job->id, &job->dek);
		if (k == KEY_NONE && version > 0) {
			job->plain = true;
		} else if (k != KEY_HELD) {
			be.code = CIM_ERR_UNAVAILABLE;
			snprintf(be.msg, sizeof be.msg, "the aggregate's data key is not at hand");
			goto refused;
		}
	}
	int built = msgs == NULL ? -1 : build_messages(job, msgs, version, &head, &be);
	keys_unpin(d, job->dek); /* nothing more is encrypted until it is built again */
	job->dek = NULL;
	if (built != 0)
		goto refused;
	if (natsConnection_Status(d->nc) != NATS_CONN_STATUS_CONNECTED) {
		be.code = CIM_ERR_UNAVAILABLE;
		snprintf(be.msg, sizeof be.msg, "not connected to NATS; nothing was stored");
		goto refused;
	}
	if (!lease_valid(d)) {
		/* another daemon may be the writer by now (lease.c) */
		be.code = CIM_ERR_UNAVAILABLE;
		snprintf(be.msg, sizeof be.msg,
			 "this daemon's writer lease could not be renewed in time; "
			 "nothing was stored");
		goto refused;
	}

	pthread_mutex_lock(&d->mu);
	if (chained && (p->resolving || p->stalled || p->next_run != job ||
			p->tip_version != version || !cim_cid_equal(&p->tip_cid, &head))) {
		/* the chain failed (or was resolved) meanwhile: this job runs
		 * later, built anew (the jobs before it committed meanwhile
		 * leave the tip as it was: then it goes as it is) */
		pthread_mutex_unlock(&d->mu);
		goto out;
	}
	job->launched = true;
	job->completing = false;
	job->resolved = 0;
	p->launched++;
	p->incomplete++;
	p->next_run = job->next;
	p->tip_version = job->base + n - 1;
	p->tip_cid = job->ev[n - 1].cid;
	pthread_mutex_unlock(&d->mu);
	if (chained)
		atomic_fetch_add(&d->appends_chained, 1);
	r = RUN_LAUNCHED;

	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = d->cfg->publish_timeout_ms;
	for (; sent < n; sent++) {
		s = js_PublishMsgAsync(d->js, &msgs[sent], &po);
		if (s != NATS_OK)
			break;
	}
	if (sent < n) {
		/* the rest never left: nothing is chained on this job */
		struct steps st;
		pthread_mutex_lock(&d->mu);
		snprintf(job->fail_msg, sizeof job->fail_msg,
			 "storage: cannot publish: %s", natsStatus_GetText(s));
		for (size_t i = sent; i < n; i++) {
			job->ev[i].state = JEV_NOT_STORED;
			job->ev[i].msg = msgs[i];
			msgs[i] = NULL;
		}
		p->stalled = true;
		job->resolved += n - sent;
		if (job->resolved == n)
			p->incomplete--;
		steps_find_locked(p, &st);
		pthread_mutex_unlock(&d->mu);
		steps_run(p, &st);
	}
	goto out;

refused:
	if (chained) {
		/* decided when it is the oldest, as if it had waited */
		job->no_chain = true;
	} else {
		job_fail(job, be.code, be.field[0] ? be.field : NULL, "%s", be.msg);
		r = RUN_ENDED;
	}
out:
	for (size_t i = 0; msgs != NULL && i < n; i++)
		natsMsg_Destroy(msgs[i]);
	free(msgs);
	return r;
}

/* ---- acks --------------------------------------------------------------------- */

void append_ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
			void *closure)
{
	struct daemon *d = closure;
	const char *mid = NULL;
	char buf[256];
	struct job *job = NULL;
	struct pipe *p = NULL;
	struct steps st = {0};

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
	unsigned gen = msgid_gen(mid);

	pthread_mutex_lock(&d->mu);
	struct agg *a = heads_find(&d->heads, buf, dot1 + 1);
	p = a ? a->busy : NULL;
	for (struct job *j = p ? p->first : NULL; j != NULL && j->launched; j = j->next)
		if (version >= j->base && version < j->base + j->n) {
			job = j;
			break;
		}
	if (job == NULL || gen != job->gen || job->ev[version - job->base].state != JEV_PENDING) {
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
	if (e->state != JEV_OK)
		p->stalled = true; /* chain nothing more on what may fail */
	if (++job->resolved == job->n)
		p->incomplete--;
	steps_find_locked(p, &st);
	pthread_mutex_unlock(&d->mu);
	steps_run(p, &st);
out:
	natsMsg_Destroy(msg);
}

size_t job_count_state(const struct job *job, enum jev_state st)
{
	size_t k = 0;
	for (size_t i = 0; i < job->n; i++)
		k += job->ev[i].state == st;
	return k;
}

bool job_in_order(const struct job *job)
{
	uint64_t prev = job->agg->seq;
	for (size_t i = 0; i < job->n; i++) {
		if (job->ev[i].seq <= prev)
			return false;
		prev = job->ev[i].seq;
	}
	return true;
}

void job_commit(struct job *job)
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
		const char *et = job_event_type(job, i);
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
	if (job->op == OP_FORGET) {
		reply_json(d, job->req, forget_reply(job));
		forget_committed(job);
	} else {
		reply_success(job, job->base);
	}
	job_done(job);
}

/* The oldest job has all its acks: stored whole and in order, it is
 * committed; anything else stops the chain and resolves it. */
static void job_complete(struct job *job)
{
	struct daemon *d = job->d;
	struct pipe *p = job->pipe;

	if (job_count_state(job, JEV_OK) == job->n && job_in_order(job)) {
		job_commit(job);
		return;
	}
	struct steps st;
	pthread_mutex_lock(&d->mu);
	p->resolving = true;
	p->stalled = true;
	steps_find_locked(p, &st);
	pthread_mutex_unlock(&d->mu);
	steps_run(p, &st);
}

void job_unlaunch(struct job *job)
{
	struct daemon *d = job->d;
	struct pipe *p = job->pipe;

	pthread_mutex_lock(&d->mu);
	if (job->launched)
		p->launched--;
	job->launched = false;
	job->completing = false;
	job->resolved = 0;
	job->plain = false; /* decided again from the version it runs at */
	pthread_mutex_unlock(&d->mu);
	memset(job->fail_msg, 0, sizeof job->fail_msg);
	for (size_t i = 0; i < job->n; i++) {
		natsMsg_Destroy(job->ev[i].msg);
		job->ev[i].msg = NULL;
		job->ev[i].state = JEV_PENDING;
		job->ev[i].seq = 0;
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
	reply_error_json(job->d, job->req, job->op, CIM_ERR_DUPLICATE_EVENT, o);
	job_done(job);
}

/* Reads the block at seq, its data decrypted when it is encrypted (the
 * data key of type/id, on a worker); 0 on success. */
static int load_block(struct daemon *d, uint64_t seq, const char *type, const char *id,
		      cim_event_block *b, cim_cid *cid, cim_perr *e)
{
	char err[160];
	natsMsg *m = store_get_msg(d, seq, e);
	cim_event_view v;
	const uint8_t *enc;
	size_t elen;

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
	if (rc == 0 && cim_event_check(p, len, &v, err, sizeof err) == 0 &&
	    cim_event_encrypted(&v, &enc, &elen)) {
		/* nonces are random: a retry is compared by its plain data */
		const cim_key *k = NULL;
		json_t *plain = NULL;
		cim_ad ad = cim_ad_data(v.event_id, v.event_id_len);
		int got = keys_get(d, type, id, false, &k, e);
		if (got != KEY_HELD) {
			if (got == KEY_NONE)
				cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "the data key of %s/%s "
					     "is not stored", type, id);
			rc = -1;
		} else if (cim_value_decrypt_json(&plain, k, &ad, enc, elen, err,
						  sizeof err) != 0) {
			cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "stored event at seq %llu: %s",
				     (unsigned long long)seq, err);
			rc = -1;
		} else {
			json_decref(b->data);
			b->data = plain;
		}
		keys_unpin(d, k);
		if (rc != 0)
			cim_event_block_free(b);
	}
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

/* On a worker, with the pipe's token: is this append a retry of a stored
 * one? */
static void check_retry(struct daemon *d, void *arg)
{
	struct job *job = arg;
	struct pipe *p = job->pipe;
	uint64_t *seqs = calloc(job->n, sizeof *seqs), first = 0;
	size_t matched = 0;
	const cim_append_event_req *dup = NULL;
	cim_perr e;

	if (seqs == NULL) {
		job_fail(job, CIM_ERR_INTERNAL, NULL, "%s", "out of memory");
		pipe_go(p);
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
		if (load_block(d, seqs[i], job->type, job->id, &b, &cid, &e) != 0) {
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
		reply_success(job, first);
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
		free(seqs);
		run_on(job);
		return;
	}
out:
	free(seqs);
	pipe_go(p);
}

/* d->mu held. */
static bool may_be_retry_locked(struct job *job)
{
	struct daemon *d = job->d;
	bool hit = false;

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
	return hit;
}

static bool may_be_retry(struct job *job)
{
	pthread_mutex_lock(&job->d->mu);
	bool hit = may_be_retry_locked(job);
	pthread_mutex_unlock(&job->d->mu);
	return hit;
}


/* ---- running the jobs -------------------------------------------------------- */

void sweep_add_locked(struct daemon *d, struct agg *a)
{
	if (a->listed)
		return;
	if (d->nsweep == d->sweep_cap) {
		size_t cap = d->sweep_cap ? d->sweep_cap * 2 : 64;
		struct agg **s = realloc(d->sweep, cap * sizeof *s);
		if (s == NULL) {
			d->sweep_lost = true; /* not dropped: found by the next sweep */
			return;
		}
		d->sweep = s;
		d->sweep_cap = cap;
	}
	a->listed = 1;
	d->sweep[d->nsweep++] = a;
}

void sweep_add(struct daemon *d, struct agg *a)
{
	pthread_mutex_lock(&d->mu);
	sweep_add_locked(d, a);
	pthread_mutex_unlock(&d->mu);
}

void job_gone(struct job *job)
{
	char name[CIM_TYPE_MAX + CIM_ID_MAX + 2];

	snprintf(name, sizeof name, "%s/%s", job->type, job->id);
	job_fail(job, CIM_ERR_GONE, NULL,
		 "%s was forgotten: nothing more can be appended or restored to it", name);
}

bool job_gone_if_forgotten(struct job *job)
{
	struct daemon *d = job->d;

	pthread_mutex_lock(&d->mu);
	bool forgotten = job->agg->forgotten != 0;
	pthread_mutex_unlock(&d->mu);
	if (forgotten)
		job_gone(job);
	return forgotten;
}

/* On a worker that got the job (and the pipe's token) from job_run. */
static void run_on(struct job *job)
{
	struct pipe *p = job->pipe;

	if (job_run(job) != RUN_AWAY)
		pipe_go(p);
}

void job_run_on(struct job *job) { run_on(job); }

/* On a worker: the data key of the job's aggregate, read from the bucket,
 * or made there on its first append; then the job runs on. */
static void key_then_run(struct daemon *d, void *arg)
{
	struct job *job = arg;
	cim_perr e;

	pthread_mutex_lock(&d->mu);
	uint64_t version = job->agg->version;
	pthread_mutex_unlock(&d->mu);
	int k = keys_get(d, job->type, job->id, version == 0, &job->dek, &e);
	if (k == KEY_NONE && version == 0)
		/* a first append is never stored plain (keys_get makes the key;
		 * none here would be a stale answer) */
		k = cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL,
				 "the aggregate's data key could not be made; retry");
	if (k < 0) {
		struct pipe *p = job->pipe;
		job_fail(job, e.code == CIM_ERR_UNAVAILABLE ? CIM_ERR_UNAVAILABLE : CIM_ERR_INTERNAL,
			 NULL, "%s; nothing was stored", e.msg);
		pipe_go(p);
		return;
	}
	job->plain = k == KEY_NONE; /* stored before its type was encrypted */
	run_on(job);
}

static void settle_then_run(struct daemon *d, void *arg)
{
	struct job *job = arg;
	struct pipe *p = job->pipe;
	cim_perr e;

	if (job->settle_only) {
		if (store_settle(d, job->agg, &e) != 0) {
			log_warn("%s/%s: cannot settle it yet (%s); trying again later",
				 job->type, job->id, e.msg);
			sweep_add(d, job->agg);
		}
		job_done(job);
		pipe_go(p);
		return;
	}
	if (store_settle(d, job->agg, &e) != 0) {
		sweep_add(d, job->agg); /* settled later, appended to or not */
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL,
			 "the aggregate's stored events cannot be checked yet: %s; "
			 "nothing was stored", e.msg);
		pipe_go(p);
		return;
	}
	run_on(job);
}

/* On a worker: a restore's body decoded and checked (restore.c), then run. */
static void decode_then_run(struct daemon *d, void *arg)
{
	struct job *job = arg;
	struct pipe *p = job->pipe;

	if (restore_decode(job) != 0) {
		pipe_go(p); /* it was answered and ended */
		return;
	}
	run_on(job);
}

/* Runs the oldest job, nothing launched before it, on the thread that
 * holds the pipe's token. */
static enum run job_run(struct job *job)
{
	struct daemon *d = job->d;

	if (job->op == OP_RESTORE && job->rs.n == 0) {
		/* a forgotten aggregate takes nothing back: answered before the
		 * body is decoded, whose key block would be stored on the way */
		if (job_gone_if_forgotten(job))
			return RUN_ENDED;
		/* base64, CBOR, CIDs and seals take time: on a worker */
		if (work_submit(d, decode_then_run, job) == 0)
			return RUN_AWAY;
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
			 "the daemon is overloaded; nothing was stored");
		return RUN_ENDED;
	}
	cim_cid head;
	pthread_mutex_lock(&d->mu);
	bool unsettled = job->agg->state == AGG_UNSETTLED;
	uint64_t version = job->agg->version;
	int forgotten = job->agg->forgotten;
	agg_head_cid(job->agg, &head);
	pthread_mutex_unlock(&d->mu);
	if (unsettled || job->settle_only) {
		if (work_submit(d, settle_then_run, job) == 0)
			return RUN_AWAY;
		if (job->settle_only) {
			sweep_add(d, job->agg); /* a later sweep */
			job_done(job);
		} else {
			job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
				 "the daemon is overloaded; nothing was stored");
		}
		return RUN_ENDED;
	}
	if (job->op == OP_FORGET && !job->forget_ready)
		return forget_run(job);
	if (forgotten && job->op != OP_FORGET) {
		job_gone(job);
		return RUN_ENDED;
	}
	if (job->op == OP_RESTORE) {
		/* at or past its first version: stored already, or moved on */
		if (version >= job->rs.blocks[0].v.version) {
			if (work_submit(d, restore_check_retry, job) == 0)
				return RUN_AWAY;
			job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
				 "the daemon is overloaded; nothing was stored");
			return RUN_ENDED;
		}
		if (!restore_continues(job, version, &head)) {
			restore_refuse(job, version, &head);
			return RUN_ENDED;
		}
	} else if (!job->idem_checked && may_be_retry(job)) {
		if (work_submit(d, check_retry, job) == 0)
			return RUN_AWAY;
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
			 "the daemon is overloaded; nothing was stored");
		return RUN_ENDED;
	} else if (!expectation_met(&job->ar, version)) {
		reply_wrong_version(job, version);
		return RUN_ENDED;
	}
	if (d->cfg->max_events_per_aggregate > 0 && job->op != OP_FORGET &&
	    version + job->n > (uint64_t)d->cfg->max_events_per_aggregate) {
		char what[200];
		snprintf(what, sizeof what, "the aggregate is at version %llu; %zu more "
			 "event(s) would pass max_events_per_aggregate (%lld); nothing was stored",
			 (unsigned long long)version, job->n,
			 (long long)d->cfg->max_events_per_aggregate);
		job_fail(job, CIM_ERR_PAYLOAD_TOO_LARGE, "events", "%s", what);
		return RUN_ENDED;
	}
	if (job->enc && job->dek == NULL && !job->plain) {
		int k = keys_pin(d, job->type, job->id, &job->dek);
		if (k == KEY_NONE && version > 0) {
			job->plain = true;
		} else if (k != KEY_HELD) {
			/* not in memory: the bucket is asked on a worker */
			if (work_submit(d, key_then_run, job) == 0)
				return RUN_AWAY;
			job_fail(job, CIM_ERR_UNAVAILABLE, NULL, "%s",
				 "the daemon is overloaded; nothing was stored");
			return RUN_ENDED;
		}
	}
	return job_launch(job, false);
}

/* May job be launched behind the ones in flight now? Only when nothing
 * it would be decided on can differ from what it would meet as the
 * oldest: d->mu held. */
static bool chain_admits_locked(struct pipe *p, struct job *job)
{
	struct daemon *d = p->d;
	int64_t now = now_ns();

	if (job->no_chain || job->settle_only || job->op == OP_FORGET || p->agg->forgotten ||
	    p->stalled ||
	    p->launched >= d->cfg->append_pipeline || p->agg->state != AGG_SETTLED ||
	    now < atomic_load(&d->unsure_until) || now < atomic_load(&d->chain_paused_until))
		return false;
	/* nothing goes behind a restore that forgets the aggregate (its last
	 * block CimForgotten): as the oldest it would be answered gone */
	for (struct job *j = p->first; j != NULL && j != job && j->launched; j = j->next)
		if (j->op == OP_RESTORE && j->rs.n > 0 &&
		    strcmp(j->rs.types[j->rs.n - 1], CIM_FORGOTTEN_TYPE) == 0)
			return false;
	if (job->op == OP_RESTORE) {
		if (job->rs.n == 0 || !restore_continues(job, p->tip_version, &p->tip_cid))
			return false;
		goto limit;
	}
	if (!job->idem_checked && may_be_retry_locked(job))
		return false;
	/* a retry of an append still in flight waits for its outcome */
	for (size_t i = 0; i < job->n; i++) {
		const char *eid = job->ar.events[i].event_id;
		size_t len = job->ar.events[i].event_id_len;
		for (struct job *j = p->first; eid != NULL && j != job && j->launched; j = j->next)
			for (size_t k = 0; k < j->n; k++)
				if (j->ev[k].event_id_len == len &&
				    memcmp(j->ev[k].event_id, eid, len) == 0)
					return false;
	}
	if (!expectation_met(&job->ar, p->tip_version))
		return false;
limit:
	return d->cfg->max_events_per_aggregate == 0 ||
	       p->tip_version + job->n <= (uint64_t)d->cfg->max_events_per_aggregate;
}

/* With the pipe's token: runs the oldest job when nothing is launched,
 * and launches the jobs behind while they may be chained; then gives the
 * token back (or hands it to a worker with a job). */
void pipe_go(struct pipe *p)
{
	struct daemon *d = p->d;

	for (;;) {
		enum run r = RUN_WAIT;
		pthread_mutex_lock(&d->mu);
		p->again = false;
		struct job *job = p->resolving ? NULL : p->next_run;
		bool oldest = job != NULL && p->launched == 0;
		bool chain = job != NULL && !oldest && chain_admits_locked(p, job);
		pthread_mutex_unlock(&d->mu);
		if (oldest)
			r = job_run(job);
		else if (chain)
			r = job_launch(job, true);
		if (r == RUN_AWAY)
			return;
		if (r != RUN_WAIT)
			continue;
		pthread_mutex_lock(&d->mu);
		if (p->again) {
			pthread_mutex_unlock(&d->mu);
			continue;
		}
		p->running = false;
		bool gone = pipe_gone_locked(d, p);
		pthread_mutex_unlock(&d->mu);
		if (gone)
			free(p);
		return;
	}
}

/* Runs the pipe, or asks the thread that runs it to look again. The
 * caller holds a reference (or is sure the pipe has a job). */
static void pipe_kick(struct pipe *p)
{
	struct daemon *d = p->d;

	pthread_mutex_lock(&d->mu);
	if (p->running) {
		p->again = true;
		pthread_mutex_unlock(&d->mu);
		return;
	}
	p->running = true;
	pthread_mutex_unlock(&d->mu);
	pipe_go(p);
}

void pipe_advance(struct pipe *p)
{
	struct daemon *d = p->d;

	for (;;) {
		struct job *f = NULL;
		pthread_mutex_lock(&d->mu);
		if (!p->resolving && (f = p->first) != NULL && f->launched &&
		    f->resolved == f->n && !f->completing)
			f->completing = true;
		else
			f = NULL;
		pthread_mutex_unlock(&d->mu);
		if (f == NULL)
			break;
		job_complete(f);
	}
	pipe_kick(p);
}

/* Adds job to its aggregate's pipe (made when there is none); d->mu held.
 * The caller runs the pipe. NULL when memory runs out. */
static struct pipe *pipe_join_locked(struct daemon *d, struct job *job)
{
	struct pipe *p = job->agg->busy;

	if (p == NULL) {
		if ((p = calloc(1, sizeof *p)) == NULL)
			return NULL;
		p->d = d;
		p->agg = job->agg;
		job->agg->busy = p;
	}
	job->pipe = p;
	if (p->last != NULL)
		p->last->next = job;
	else
		p->first = job;
	p->last = job;
	if (p->next_run == NULL)
		p->next_run = job;
	p->refs++;
	return p;
}

struct job *job_new(struct daemon *d, natsMsg *req, enum op op, const char *type,
		    const char *id)
{
	struct job *job;
	cim_perr e = {0};

	if (atomic_load(&d->draining)) {
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL,
			     "the daemon is shutting down; nothing was stored");
		refuse(d, req, op, &e);
		return NULL;
	}
	if (atomic_load(&d->jobs_in_flight) >= JOBS_MAX) {
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL,
			     "the daemon has %d appends in flight; nothing was stored, "
			     "retry later", JOBS_MAX);
		refuse(d, req, op, &e);
		return NULL;
	}
	/* each job keeps its request and its parsed body until it is answered:
	 * bound them by bytes too (one append is always let through) */
	size_t len = (size_t)natsMsg_GetDataLength(req);
	if (atomic_load(&d->jobs_in_flight) > 0 &&
	    atomic_load(&d->job_bytes) + (long)len > JOB_BYTES_MAX) {
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL,
			     "the daemon holds %ld MiB of appends in flight; nothing was "
			     "stored, retry later", JOB_BYTES_MAX >> 20);
		refuse(d, req, op, &e);
		return NULL;
	}
	job = calloc(1, sizeof *job);
	if (job == NULL) {
		refuse_oom(d, req, op);
		return NULL;
	}
	job->d = d;
	job->req = req;
	job->op = op;
	snprintf(job->type, sizeof job->type, "%s", type);
	snprintf(job->id, sizeof job->id, "%s", id);
	job->req_len = len;
	atomic_fetch_add(&d->job_bytes, (long)len);
	return job;
}

void job_enqueue(struct job *job)
{
	struct daemon *d = job->d;
	struct pipe *p;

	atomic_fetch_add(&d->jobs_in_flight, 1);
	pthread_mutex_lock(&d->mu);
	job->agg = heads_get_or_add(&d->heads, job->type, job->id);
	p = job->agg ? pipe_join_locked(d, job) : NULL;
	pthread_mutex_unlock(&d->mu);
	if (p == NULL) {
		refuse_oom(d, job->req, job->op);
		job->req = NULL;
		atomic_fetch_sub(&d->jobs_in_flight, 1);
		job_free(job);
		return;
	}
	pipe_kick(p);
	pipe_unref(p);
}

void append_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_limits lim = {(size_t)d->cfg->max_events_per_append, CIM_MAX_DEPTH};
	struct job *job = job_new(d, req, OP_APPEND, type, id);
	cim_perr e = {0};

	if (job == NULL)
		return;
	if (cim_append_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req),
				 &lim, &job->ar, &e) != 0) {
		reply_error(d, req, OP_APPEND, &e);
		job_free(job);
		return;
	}
	for (size_t i = 0; i < job->ar.n; i++)
		if (strcmp(job->ar.events[i].event_type, CIM_FORGOTTEN_TYPE) == 0) {
			/* only forget appends it, as an aggregate's last event */
			cim_perr_set(&e, CIM_ERR_INVALID_ARGUMENT, "event_type",
				     "event type %s is reserved: only forget appends it",
				     CIM_FORGOTTEN_TYPE);
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
	job->enc = keys_encrypted_type(d, type);
	job_enqueue(job);
}

/* After the list could not grow: every unsettled aggregate listed again
 * (a walk of the whole head table, only after memory ran out); mu held. */
static void sweep_relist_locked(struct daemon *d)
{
	d->sweep_lost = false;
	for (size_t i = 0; i <= d->heads.mask; i++)
		for (struct agg *a = d->heads.slots[i]; a != NULL; a = a->next)
			if (a->state == AGG_UNSETTLED)
				sweep_add_locked(d, a);
}

#define SWEEP_BATCH 64 /* settles begun per sweep; the rest wait for the next */

void append_sweep(struct daemon *d)
{
	struct pipe *run[SWEEP_BATCH];
	int n = 0;

	if (now_ns() < atomic_load(&d->unsure_until))
		return;
	pthread_mutex_lock(&d->mu);
	if (d->sweep_lost)
		sweep_relist_locked(d);
	for (size_t i = 0; i < d->nsweep && n < SWEEP_BATCH;) {
		struct agg *a = d->sweep[i];
		struct job *job = NULL;
		if (a->busy == NULL && a->state == AGG_UNSETTLED &&
		    (job = calloc(1, sizeof *job)) != NULL) {
			job->d = d;
			job->agg = a;
			job->settle_only = true;
			snprintf(job->type, sizeof job->type, "%s", agg_type(a));
			snprintf(job->id, sizeof job->id, "%s", agg_id(a));
			if ((run[n] = pipe_join_locked(d, job)) != NULL) {
				n++;
				atomic_fetch_add(&d->jobs_in_flight, 1);
			} else {
				free(job);
				job = NULL;
			}
		}
		if (job != NULL || a->state != AGG_UNSETTLED) {
			a->listed = 0; /* a settle that fails lists it again */
			d->sweep[i] = d->sweep[--d->nsweep];
		} else
			i++; /* busy: its own append settles it, or a later sweep */
	}
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; i < n; i++) {
		pipe_kick(run[i]);
		pipe_unref(run[i]);
	}
}
