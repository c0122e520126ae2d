/*
 * snapshot.c: snapshot.save and snapshot.get, and the snapshot read that
 * load starts from.
 *
 * A snapshot is a DAG-CBOR block (proto/snapshot.h) stored as the value of
 * the aggregate's key in CIM-SNAPSHOTS. Saving reads the stored event at
 * the requested version (never trusting the request for its CID), builds
 * the block and stores it only when it is newer than the stored one. Saves
 * of one aggregate are serialized by a lock stripe, and the KV write is
 * conditional on the revision read (create-if-absent or update-at-revision),
 * so even a second daemon cannot put an older snapshot over a newer one.
 * A forget removes the snapshot under the same lock (snapshot_remove), and
 * a save looks, under it, whether its aggregate is forgotten by now.
 *
 * The bucket's value is exactly the block; the message that carries it also
 * has a header, Cim-Event-Seq, with the stream sequence of the event the
 * snapshot was taken at, so that load reads the events after it from there,
 * also after a restart, however long the history before it. So the bucket
 * is written and read as the stream under it ($KV.<bucket>.<key>), which is
 * what nats.c's KV calls do too, headers aside.
 * Everything here reads the network, so it runs on a read worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypt.h"
#include "daemon.h"
#include "ids.h"
#include "log.h"
#include "snapshot.h"

#define SAVE_TRIES 5

static pthread_mutex_t *snap_lock(struct daemon *d, const char *key)
{
	uint32_t h = 2166136261u;
	for (const char *c = key; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	return &d->snap_locks[h % SNAP_LOCKS];
}

static int kv_failure(cim_perr *err, natsStatus s, const char *what)
{
	return cim_perr_set(err, s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS ||
					 s == NATS_CONNECTION_CLOSED ||
					 s == NATS_CONNECTION_DISCONNECTED
				 ? CIM_ERR_UNAVAILABLE
				 : CIM_ERR_INTERNAL,
			    NULL, "cannot %s the snapshot bucket: %s", what,
			    natsStatus_GetText(s));
}

/* The reply object for a stored block p. */
static json_t *describe(struct daemon *d, const uint8_t *p, size_t len,
			const cim_snapshot_block *b, bool with_state)
{
	cim_cid cid;
	char text[CIM_CID_TEXT_MAX], ev[CIM_CID_TEXT_MAX];

	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, d->cfg->hash_code, p, len);
	cim_cid_to_text(&cid, text);
	cim_cid_to_text(&b->event_cid, ev);
	if (!with_state)
		return json_pack("{sI ss ss}", "version", (json_int_t)b->version,
				 "snapshot_cid", text, "event_cid", ev);
	return json_pack("{sI sO ss ss ss}", "version", (json_int_t)b->version, "state",
			 b->state, "snapshot_cid", text, "event_cid", ev, "timestamp",
			 b->timestamp);
}

/* A stored snapshot as read from the bucket's stream. */
struct stored {
	natsMsg *m;          /* NULL: none */
	cim_snapshot_block b;
	uint64_t rev;        /* the key's last sequence in the bucket's stream */
	uint64_t event_seq;  /* Cim-Event-Seq, 0 when absent */
};

static void stored_free(struct stored *st)
{
	natsMsg_Destroy(st->m);
	cim_snapshot_block_free(&st->b);
	memset(st, 0, sizeof *st);
}

static const uint8_t *stored_bytes(const struct stored *st, size_t *len)
{
	*len = (size_t)natsMsg_GetDataLength(st->m);
	return (const uint8_t *)natsMsg_GetData(st->m);
}

/* Reads and decodes the stored snapshot of key. 0 with st->m NULL when
 * there is none (st->rev is then the sequence of a delete marker, or 0), 0
 * with st filled, or -1 with err set. */
static int kv_read(struct daemon *d, const char *key, const char *type, const char *id,
		   struct stored *st, cim_perr *err)
{
	char stream[256], subj[512], why[200];
	const char *op = NULL, *seq = NULL;
	jsErrCode jerr = 0;
	size_t len;
	natsStatus s;

	memset(st, 0, sizeof *st);
	snprintf(stream, sizeof stream, "KV_%s", d->cfg->snapshots_bucket);
	snprintf(subj, sizeof subj, "$KV.%s.%s", d->cfg->snapshots_bucket, key);
	s = js_GetLastMsg(&st->m, d->js, stream, subj, NULL, &jerr);
	if (s == NATS_NOT_FOUND)
		return 0;
	if (s != NATS_OK) {
		st->m = NULL;
		return kv_failure(err, s, "read");
	}
	st->rev = natsMsg_GetSequence(st->m);
	/* a key deleted or purged by an operator: no snapshot */
	if (natsMsgHeader_Get(st->m, "KV-Operation", &op) == NATS_OK && op != NULL &&
	    strcmp(op, "PUT") != 0) {
		natsMsg_Destroy(st->m);
		st->m = NULL;
		return 0;
	}
	if (natsMsgHeader_Get(st->m, "Cim-Event-Seq", &seq) == NATS_OK && seq != NULL)
		st->event_seq = strtoull(seq, NULL, 10);
	const uint8_t *p = stored_bytes(st, &len);
	if (cim_snapshot_decode(p, len, &st->b, why, sizeof why) != 0 ||
	    strcmp(st->b.aggregate_type, type) != 0 || strcmp(st->b.aggregate_id, id) != 0) {
		if (st->b.aggregate_type != NULL)
			snprintf(why, sizeof why, "it belongs to %s/%s", st->b.aggregate_type,
				 st->b.aggregate_id);
		stored_free(st);
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL,
				    "the stored snapshot under key %s is not valid: %s", key,
				    why);
	}
	return 0;
}

/* Stores block under key, the event it was taken at being at event_seq in
 * the event stream, if the key is still at revision rev (0: absent). 0,
 * 1 when another write came first, -1 with err set. */
static int kv_write(struct daemon *d, const char *key, const cbuf *block, uint64_t rev,
		    uint64_t event_seq, cim_perr *err)
{
	char subj[512], num[24];
	natsMsg *m = NULL;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s;

	if (!lease_valid(d))
		return cim_perr_set(err, CIM_ERR_UNAVAILABLE, NULL,
				    "this daemon's writer lease could not be renewed in time; "
				    "nothing was stored");
	snprintf(subj, sizeof subj, "$KV.%s.%s", d->cfg->snapshots_bucket, key);
	s = natsMsg_Create(&m, subj, NULL, (const char *)block->p, (int)block->len);
	snprintf(num, sizeof num, "%llu", (unsigned long long)rev);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", num);
	snprintf(num, sizeof num, "%llu", (unsigned long long)event_seq);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Cim-Event-Seq", num);
	if (s == NATS_OK)
		s = js_PublishMsg(&pa, d->js, m, NULL, &jerr);
	natsMsg_Destroy(m);
	jsPubAck_Destroy(pa);
	if (s == NATS_OK)
		return 0;
	if (jerr == JSStreamWrongLastSequenceErr)
		return 1;
	return kv_failure(err, s, "write");
}

/* An encrypted snapshot's state, decrypted in place of the stored bytes
 * (with "encrypted": true); 1 when it cannot be read any more (its data
 * key is gone: forgotten), 0, or -1 with err set. */
static int decrypt_state(struct daemon *d, const char *type, const char *id,
			 const uint8_t *enc, size_t elen, cim_snapshot_block *b,
			 cim_perr *err)
{
	const cim_key *k = NULL;
	json_t *plain = NULL;
	char why[200];
	int got = keys_get(d, type, id, false, &k, err);

	if (got < 0)
		return -1;
	if (got != KEY_HELD)
		return 1;
	cim_ad ad = cim_ad_state(type, strlen(type), id, strlen(id));
	int rc = cim_value_decrypt_json(&plain, k, &ad, enc, elen, why, sizeof why);
	keys_unpin(d, k);
	if (rc != 0)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL,
				    "the stored snapshot of %s/%s cannot be decrypted: %s",
				    type, id, why);
	json_decref(b->state);
	b->state = plain;
	return 0;
}

int snapshot_fetch(struct daemon *d, const char *type, const char *id, json_t **out,
		   uint64_t *version, cim_cid *event_cid, uint64_t *event_seq,
		   cim_perr *err)
{
	char key[CIM_KV_KEY_MAX];
	struct stored st;
	size_t len, elen;
	const uint8_t *enc;

	*out = NULL;
	*version = 0;
	*event_seq = 0;
	if (cim_kv_key(key, type, id) != 0)
		return cim_perr_set(err, CIM_ERR_INVALID_ARGUMENT, NULL, "bad aggregate");
	if (forget_shown(d, type, id))
		return 0; /* forget removes it; one left behind is not shown */
	if (kv_read(d, key, type, id, &st, err) != 0)
		return -1;
	if (st.m == NULL)
		return 0;
	const uint8_t *p = stored_bytes(&st, &len);
	bool encrypted = cim_snapshot_encrypted(p, len, &enc, &elen);
	if (encrypted) {
		int rc = d->keys.master == NULL ? 1 : decrypt_state(d, type, id, enc, elen, &st.b, err);
		if (rc != 0) {
			stored_free(&st);
			return rc < 0 ? -1 : 0;
		}
	}
	*out = describe(d, p, len, &st.b, true);
	if (*out != NULL && encrypted)
		json_object_set_new(*out, "encrypted", json_true());
	*version = st.b.version;
	*event_cid = st.b.event_cid;
	*event_seq = st.event_seq;
	stored_free(&st);
	if (*out == NULL)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	return 0;
}

/* ---- snapshot.get ------------------------------------------------------------ */

static void get_work(struct daemon *d, void *arg)
{
	struct read_req *r = arg;
	json_t *o = NULL;
	uint64_t v, seq;
	cim_cid ec;
	cim_perr e;

	if (snapshot_fetch(d, r->type, r->id, &o, &v, &ec, &seq, &e) != 0) {
		reply_error(d, r->req, OP_SNAPSHOT_GET, &e);
	} else if (o == NULL) {
		cim_perr_set(&e, CIM_ERR_NOT_FOUND, NULL, "%s/%s has no snapshot", r->type,
			     r->id);
		reply_error(d, r->req, OP_SNAPSHOT_GET, &e);
	} else {
		reply_json(d, r->req, o);
	}
	read_req_free(r);
}

void snapshot_get_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_perr e;

	if (cim_empty_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req), &e) != 0) {
		refuse(d, req, OP_SNAPSHOT_GET, &e);
		return;
	}
	struct read_req *r = read_req_new(d, req, type, id);
	if (r == NULL) {
		refuse_oom(d, req, OP_SNAPSHOT_GET);
		return;
	}
	submit_read(d, OP_SNAPSHOT_GET, get_work, r);
}

/* ---- snapshot.save ----------------------------------------------------------- */

struct save_req {
	struct read_req *r;
	uint64_t version;
	json_t *state;
};

/* Stores block under key unless a snapshot at version or later is
 * there; *kept is then set to the stored one's reply. */
static int kv_store(struct daemon *d, struct read_req *r, const char *key,
		    const cbuf *block, uint64_t version, uint64_t event_seq,
		    json_t **kept, cim_perr *err)
{
	for (int i = 0; i < SAVE_TRIES; i++) {
		struct stored st;
		size_t len;
		int rc;

		if (kv_read(d, key, r->type, r->id, &st, err) != 0)
			return -1;
		if (st.m != NULL && st.b.version >= version) {
			const uint8_t *p = stored_bytes(&st, &len);
			*kept = describe(d, p, len, &st.b, false);
			stored_free(&st);
			return *kept != NULL ? 0
					     : cim_perr_set(err, CIM_ERR_INTERNAL, NULL,
							    "out of memory");
		}
		uint64_t rev = st.rev; /* 0 only when nothing was ever stored */
		stored_free(&st);
		rc = kv_write(d, key, block, rev, event_seq, err);
		if (rc <= 0)
			return rc;
		/* another writer got there between the read and the write: read
		 * again and decide again */
		log_debug("snapshot %s: conditional write refused; reading again", key);
	}
	return cim_perr_set(err, CIM_ERR_UNAVAILABLE, NULL,
			    "the snapshot of %s/%s is being written by others; retry",
			    r->type, r->id);
}

/* Whether the stored event at seq (of r's aggregate) holds encrypted
 * data: 1 yes, 0 no, -1 with err set. */
static int stored_encrypted(struct daemon *d, uint64_t seq, cim_perr *err)
{
	struct stored_msg m;
	cim_event_view v;
	char why[160];

	if (store_get_seqs(d, &seq, 1, &m, err) != 0)
		return -1;
	int rc = -1;
	if (m.msg == NULL)
		cim_perr_set(err, CIM_ERR_INTERNAL, NULL,
			     "no event is stored at stream sequence %llu; run validate",
			     (unsigned long long)seq);
	else if (cim_event_check((const uint8_t *)natsMsg_GetData(m.msg),
				 (size_t)natsMsg_GetDataLength(m.msg), &v, why, sizeof why) != 0)
		cim_perr_set(err, CIM_ERR_INTERNAL, NULL,
			     "the event at stream sequence %llu is not valid: %s",
			     (unsigned long long)seq, why);
	else
		rc = cim_event_encrypted(&v, NULL, NULL);
	store_free_seqs(&m, 1);
	return rc;
}

int snapshot_remove(struct daemon *d, const char *type, const char *id, cim_perr *e)
{
	char key[CIM_KV_KEY_MAX];

	if (cim_kv_key(key, type, id) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, NULL, "bad aggregate");
	pthread_mutex_t *lock = snap_lock(d, key);
	pthread_mutex_lock(lock);
	int rc = keys_purge_snapshot(d, type, id, e);
	pthread_mutex_unlock(lock);
	return rc;
}

static void save_work(struct daemon *d, void *arg)
{
	struct save_req *s = arg;
	struct read_req *r = s->r;
	cim_perr e;
	cim_cid ecid;
	uint64_t seq = 0;
	char key[CIM_KV_KEY_MAX], ts[CIM_TIME_TEXT], why[200];
	cbuf block = CBUF_INIT, enc = CBUF_INIT;
	const cim_key *dek = NULL;
	json_t *kept = NULL;

	if (s->version > r->head_version) {
		cim_perr_set(&e, CIM_ERR_INVALID_ARGUMENT, "version",
			     "version %llu is not stored: %s/%s is at version %llu",
			     (unsigned long long)s->version, r->type, r->id,
			     (unsigned long long)r->head_version);
		goto fail;
	}
	if (r->forgotten) {
		cim_perr_set(&e, CIM_ERR_GONE, NULL, "%s/%s was forgotten: its state is not "
			     "stored again", r->type, r->id);
		goto fail;
	}
	if (read_event_at(d, r, s->version, &ecid, &seq, &e) != 0)
		goto fail;
	if (keys_encrypted_type(d, r->type)) {
		/* an encrypted aggregate's state is stored under its data key;
		 * with none stored, plain only when its events are (stored
		 * before its type was encrypted): else the key was erased by a
		 * forget begun since this request came */
		int got = keys_get(d, r->type, r->id, false, &dek, &e);
		if (got < 0)
			goto fail;
		if (got == KEY_NONE) {
			int enc_events = stored_encrypted(d, seq, &e);
			if (enc_events < 0)
				goto fail;
			if (enc_events) {
				cim_perr_set(&e, CIM_ERR_GONE, NULL, "%s/%s was forgotten: its "
					     "state is not stored again", r->type, r->id);
				goto fail;
			}
		}
		if (dek != NULL) {
			cim_ad ad = cim_ad_state(r->type, strlen(r->type), r->id, strlen(r->id));
			if (cim_value_encrypt(&enc, dek, &ad, s->state, NULL, why, sizeof why) != 0) {
				cim_perr_set(&e, CIM_ERR_INVALID_REQUEST, "state", "%s", why);
				goto fail;
			}
		}
	}
	cim_time_now(ts);
	cim_snapshot_block b = {.aggregate_type = r->type, .aggregate_id = r->id,
				.version = s->version, .event_cid = ecid,
				.timestamp = ts, .state = s->state,
				.enc_state = dek != NULL ? enc.p : NULL, .enc_state_len = enc.len};
	if (cim_snapshot_encode(&b, &block, why, sizeof why) != 0) {
		cim_perr_set(&e, CIM_ERR_INVALID_REQUEST, "state", "%s", why);
		goto fail;
	}
	if (block.len > (size_t)d->cfg->max_snapshot_bytes ||
	    block.len + 512 > d->max_payload) {
		cim_perr_set(&e, CIM_ERR_PAYLOAD_TOO_LARGE, "state",
			     "state makes a snapshot block of %zu bytes, over %s (%zu)", block.len,
			     block.len > (size_t)d->cfg->max_snapshot_bytes
				     ? "max_snapshot_bytes" : "the NATS payload limit",
			     block.len > (size_t)d->cfg->max_snapshot_bytes
				     ? (size_t)d->cfg->max_snapshot_bytes : d->max_payload - 512);
		goto fail;
	}
	cim_kv_key(key, r->type, r->id);
	pthread_mutex_t *lock = snap_lock(d, key);
	pthread_mutex_lock(lock);
	/* a forget takes this lock to remove the snapshot, after it marked
	 * the aggregate: what is stored under the lock is removed by it, or
	 * the mark is seen here (the request may be older than the forget) */
	int rc;
	if (forget_shown(d, r->type, r->id))
		rc = cim_perr_set(&e, CIM_ERR_GONE, NULL, "%s/%s was forgotten: its state is "
				  "not stored again", r->type, r->id);
	else
		rc = kv_store(d, r, key, &block, s->version, seq, &kept, &e);
	pthread_mutex_unlock(lock);
	if (rc != 0)
		goto fail;
	if (kept != NULL) {
		reply_json(d, r->req, kept);
	} else {
		cim_cid cid;
		char text[CIM_CID_TEXT_MAX], ev[CIM_CID_TEXT_MAX];

		snappos_put(d, r->agg, s->version, seq);
		cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, d->cfg->hash_code, block.p,
				block.len);
		cim_cid_to_text(&cid, text);
		cim_cid_to_text(&ecid, ev);
		reply_json(d, r->req, json_pack("{sI ss ss}", "version",
						(json_int_t)s->version, "snapshot_cid",
						text, "event_cid", ev));
	}
	goto out;
fail:
	reply_error(d, r->req, OP_SNAPSHOT_SAVE, &e);
out:
	keys_unpin(d, dek);
	cbuf_free(&block);
	cbuf_free(&enc);
	json_decref(s->state);
	read_req_free(r);
	free(s);
}

void snapshot_save_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_perr e;
	struct save_req *s;
	uint64_t version;
	json_t *state;

	if (cim_snapshot_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req),
				   &version, &state, &e) != 0) {
		refuse(d, req, OP_SNAPSHOT_SAVE, &e);
		return;
	}
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (s->r = read_req_new(d, req, type, id)) == NULL) {
		free(s);
		json_decref(state);
		refuse_oom(d, req, OP_SNAPSHOT_SAVE);
		return;
	}
	s->version = version;
	s->state = state;
	if (work_submit(d, save_work, s) != 0) {
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL, "the daemon is overloaded; retry later");
		reply_error(d, req, OP_SNAPSHOT_SAVE, &e);
		json_decref(state);
		read_req_free(s->r);
		free(s);
	}
}
