/*
 * restore.c: <prefix>.restore.<type>.<id>, blocks stored exactly as given.
 *
 * A restore is an append job (append.c) whose messages are the blocks of
 * the request instead of blocks built from events: it joins its
 * aggregate's pipe like an append, so it is ordered with the aggregate's
 * other writes, published whole, acknowledged, committed, resolved when
 * its outcome is unknown (resolve.c), taken back when it is stored in
 * part, fenced by the writer lease, counted in the checkpoints and the
 * idempotency window, and sealed when the store signs. What is its own is
 * here:
 *
 * - decoding: the body is decoded and checked (proto/restore.c: base64,
 *   strict blocks of this aggregate, versions and links continuing one
 *   another, seals of these blocks that verify) on a worker, when the job
 *   is its aggregate's oldest, so the request callback never spends the
 *   time;
 * - continuing the head: the first block must be the version after the
 *   head and link to the head's CID (null at version 1);
 * - retries: a restore whose first version is already stored is a retry
 *   when every block is the stored event at its version (the same CID),
 *   answered as the first time with the stored sequences, whatever was
 *   appended after; otherwise the aggregate has moved on.
 *
 * Encrypted aggregates (issue 15): the request may carry the aggregate's
 * key block ("key"). A store without a master_key refuses it
 * (invalid_argument, field key); one with a master_key checks that the
 * block unwraps under it and keeps it in the keys bucket (datakeys.c,
 * keys_restore) before the blocks go out. The blocks themselves are
 * stored as given, ciphertext and all. A forgotten aggregate (or one
 * being forgotten) answers gone before anything of the request is looked
 * at: its key block must never reach the bucket again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "append.h"
#include "log.h"

void restore_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	struct job *job = job_new(d, req, OP_RESTORE, type, id);

	if (job != NULL)
		job_enqueue(job); /* decoded when it is the oldest (job_run) */
}

int restore_decode(struct job *job)
{
	struct daemon *d = job->d;
	cim_restore_limits lim = {(size_t)d->cfg->max_events_per_append,
				  (size_t)d->cfg->max_event_bytes, d->cfg->hash_code};
	cim_perr e = {0};

	if (cim_restore_req_parse(natsMsg_GetData(job->req),
				  (size_t)natsMsg_GetDataLength(job->req), job->type, job->id,
				  &lim, &job->rs, &e) != 0) {
		reply_error(d, job->req, OP_RESTORE, &e);
		job_done(job);
		return -1;
	}
	if (job->rs.has_key && d->keys.master == NULL) {
		job_fail(job, CIM_ERR_INVALID_ARGUMENT, "key", "%s",
			 "key: this store has no master_key, so it cannot take an "
			 "encrypted aggregate's key block; nothing was stored");
		return -1;
	}
	/* the key of a forgotten aggregate never goes back into the bucket
	 * (job_run asked before the decode; this is the last look before the
	 * write) */
	if (job->rs.has_key && job_gone_if_forgotten(job))
		return -1;
	if (job->rs.has_key && keys_restore(d, &job->rs.key, &e) != 0) {
		reply_error(d, job->req, OP_RESTORE, &e);
		job_done(job);
		return -1;
	}
	job->n = job->rs.n;
	if ((job->ev = calloc(job->n, sizeof *job->ev)) == NULL) {
		job_fail(job, CIM_ERR_INTERNAL, NULL, "%s", "out of memory");
		return -1;
	}
	return 0;
}

bool restore_continues(const struct job *job, uint64_t version, const cim_cid *head)
{
	const cim_event_view *first = &job->rs.blocks[0].v;

	if (first->version != version + 1)
		return false;
	/* cim_event_check: prev is null exactly at version 1 */
	return version == 0 || cim_cid_equal(&first->prev, head);
}

static void refuse_version(struct job *job, uint64_t current)
{
	uint64_t expected = job->rs.blocks[0].v.version - 1;
	char msg[300];

	snprintf(msg, sizeof msg,
		 "blocks[0] is version %llu, so the aggregate must be at version %llu, "
		 "but it is at version %llu; nothing was stored",
		 (unsigned long long)(expected + 1), (unsigned long long)expected,
		 (unsigned long long)current);
	json_t *o = cim_error_json(CIM_ERR_WRONG_EXPECTED_VERSION, NULL, msg);
	json_t *inner = json_object_get(o, "error");
	json_object_set_new(inner, "expected", json_integer((json_int_t)expected));
	json_object_set_new(inner, "current", json_integer((json_int_t)current));
	reply_error_json(job->d, job->req, OP_RESTORE, CIM_ERR_WRONG_EXPECTED_VERSION, o);
	job_done(job);
}

void restore_refuse(struct job *job, uint64_t version, const cim_cid *head)
{
	char want[CIM_CID_TEXT_MAX], has[CIM_CID_TEXT_MAX], msg[400];

	if (job->rs.blocks[0].v.version != version + 1) {
		refuse_version(job, version);
		return;
	}
	cim_cid_to_text(&job->rs.blocks[0].v.prev, want);
	cim_cid_to_text(head, has);
	snprintf(msg, sizeof msg,
		 "blocks[0] links to %s, but the aggregate's head (version %llu) is %s: "
		 "the blocks do not continue this aggregate; nothing was stored",
		 want, (unsigned long long)version, has);
	job_fail(job, CIM_ERR_INVALID_ARGUMENT, "blocks[0]", "%s", msg);
}

/* ---- retries ------------------------------------------------------------------ */

struct stored {
	struct job *job;
	uint64_t first, last;
	size_t matched;
	bool differs;
};

static int stored_visit(natsMsg *m, uint64_t seq, int64_t ts, void *ctx)
{
	struct stored *st = ctx;
	struct job *job = st->job;
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	cim_event_view v;
	cim_cid cid;
	char err[160];

	if (cim_event_check(p, len, &v, err, sizeof err) != 0 || v.version < st->first)
		return 0;
	if (v.version > st->last)
		return 1;
	size_t i = (size_t)(v.version - st->first);
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, job->d->cfg->hash_code, p, len);
	if (!cim_cid_equal(&cid, &job->rs.blocks[i].cid)) {
		st->differs = true;
		return 1;
	}
	job->ev[i].cid = cid;
	job->ev[i].seq = seq;
	memcpy(job->ev[i].event_id, job->rs.ids[i][0], job->rs.blocks[i].v.event_id_len + 1);
	job->ev[i].event_id_len = job->rs.blocks[i].v.event_id_len;
	st->matched++;
	return 0;
}

void restore_check_retry(struct daemon *d, void *arg)
{
	struct job *job = arg;
	struct pipe *p = job->pipe;
	struct stored st = {job, job->rs.blocks[0].v.version,
			    job->rs.blocks[0].v.version + job->n - 1, 0, false};
	const char *types[AGG_TYPES_UNKNOWN];
	cim_perr e = {0};

	pthread_mutex_lock(&d->mu);
	uint64_t version = job->agg->version, head_seq = job->agg->seq;
	uint64_t first_seq = job->agg->first_seq;
	int ntypes = agg_types(&d->heads, job->agg, types, AGG_TYPES_UNKNOWN);
	pthread_mutex_unlock(&d->mu);

	if (version < st.last) {
		/* a restore is stored whole or not at all: not this one */
		refuse_version(job, version);
	} else if (store_read_agg(d, job->type, job->id, types, ntypes, first_seq, head_seq,
				  stored_visit, &st, &e) != 0) {
		job_fail(job, CIM_ERR_UNAVAILABLE, NULL,
			 "cannot read the aggregate to check a retry: %s", e.msg);
	} else if (!st.differs && st.matched == job->n) {
		reply_success(job, st.first);
		job_done(job);
	} else {
		refuse_version(job, version);
	}
	pipe_go(p);
}
