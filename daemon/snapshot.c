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
 * Everything here reads the network, so it runs on a read worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
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

/* Reads and decodes the stored snapshot of key. 0 with *e NULL when there
 * is none; 0 with *e and *b set; -1 with err set. */
static int kv_read(struct daemon *d, const char *key, const char *type, const char *id,
		   kvEntry **e, cim_snapshot_block *b, cim_perr *err)
{
	char why[200];
	natsStatus s = kvStore_Get(e, d->snapshots, key);

	if (s == NATS_NOT_FOUND) {
		*e = NULL;
		return 0;
	}
	if (s != NATS_OK) {
		*e = NULL;
		return kv_failure(err, s, "read");
	}
	if (cim_snapshot_decode((const uint8_t *)kvEntry_Value(*e),
				(size_t)kvEntry_ValueLen(*e), b, why, sizeof why) != 0 ||
	    strcmp(b->aggregate_type, type) != 0 || strcmp(b->aggregate_id, id) != 0) {
		if (b->aggregate_type != NULL)
			snprintf(why, sizeof why, "it belongs to %s/%s", b->aggregate_type,
				 b->aggregate_id);
		cim_snapshot_block_free(b);
		kvEntry_Destroy(*e);
		*e = NULL;
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL,
				    "the stored snapshot under key %s is not valid: %s", key,
				    why);
	}
	return 0;
}

int snapshot_fetch(struct daemon *d, const char *type, const char *id, json_t **out,
		   uint64_t *version, cim_cid *event_cid, cim_perr *err)
{
	char key[CIM_KV_KEY_MAX];
	kvEntry *e = NULL;
	cim_snapshot_block b = {0};

	*out = NULL;
	*version = 0;
	if (cim_kv_key(key, type, id) != 0)
		return cim_perr_set(err, CIM_ERR_INVALID_ARGUMENT, NULL, "bad aggregate");
	if (kv_read(d, key, type, id, &e, &b, err) != 0)
		return -1;
	if (e == NULL)
		return 0;
	*out = describe(d, (const uint8_t *)kvEntry_Value(e), (size_t)kvEntry_ValueLen(e),
			&b, true);
	*version = b.version;
	*event_cid = b.event_cid;
	cim_snapshot_block_free(&b);
	kvEntry_Destroy(e);
	if (*out == NULL)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	return 0;
}

/* ---- snapshot.get ------------------------------------------------------------ */

static void get_work(struct daemon *d, void *arg)
{
	struct read_req *r = arg;
	json_t *o = NULL;
	uint64_t v;
	cim_cid ec;
	cim_perr e;

	if (snapshot_fetch(d, r->type, r->id, &o, &v, &ec, &e) != 0) {
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

/* Stores block (len bytes) under key unless a snapshot at version or later
 * is there. *kept is set to the stored one's reply when it stays. */
static int kv_store(struct daemon *d, struct read_req *r, const char *key,
		    const cbuf *block, uint64_t version, json_t **kept, cim_perr *err)
{
	for (int i = 0; i < SAVE_TRIES; i++) {
		kvEntry *e = NULL;
		cim_snapshot_block b = {0};
		uint64_t rev = 0;
		natsStatus s;

		if (kv_read(d, key, r->type, r->id, &e, &b, err) != 0)
			return -1;
		if (e != NULL && b.version >= version) {
			*kept = describe(d, (const uint8_t *)kvEntry_Value(e),
					 (size_t)kvEntry_ValueLen(e), &b, false);
			cim_snapshot_block_free(&b);
			kvEntry_Destroy(e);
			return *kept != NULL ? 0
					     : cim_perr_set(err, CIM_ERR_INTERNAL, NULL,
							    "out of memory");
		}
		if (e != NULL)
			s = kvStore_Update(&rev, d->snapshots, key, block->p, (int)block->len,
					   kvEntry_Revision(e));
		else
			s = kvStore_Create(&rev, d->snapshots, key, block->p, (int)block->len);
		cim_snapshot_block_free(&b);
		kvEntry_Destroy(e);
		if (s == NATS_OK)
			return 0;
		/* another writer got there between the read and the write: read
		 * again and decide again */
		const char *last = nats_GetLastError(NULL);
		if (s != NATS_ERR || last == NULL || strstr(last, "wrong last sequence") == NULL)
			return kv_failure(err, s, "write");
		log_debug("snapshot %s: conditional write refused (%s); reading again",
			  key, nats_GetLastError(NULL));
	}
	return cim_perr_set(err, CIM_ERR_UNAVAILABLE, NULL,
			    "the snapshot of %s/%s is being written by others; retry",
			    r->type, r->id);
}

static void save_work(struct daemon *d, void *arg)
{
	struct save_req *s = arg;
	struct read_req *r = s->r;
	cim_perr e;
	cim_cid ecid;
	uint64_t seq = 0;
	char key[CIM_KV_KEY_MAX], ts[CIM_TIME_TEXT], why[200];
	cbuf block = CBUF_INIT;
	json_t *kept = NULL;

	if (s->version > r->head_version) {
		cim_perr_set(&e, CIM_ERR_INVALID_ARGUMENT, "version",
			     "version %llu is not stored: %s/%s is at version %llu",
			     (unsigned long long)s->version, r->type, r->id,
			     (unsigned long long)r->head_version);
		goto fail;
	}
	if (read_event_at(d, r, s->version, &ecid, &seq, &e) != 0)
		goto fail;
	cim_time_now(ts);
	cim_snapshot_block b = {.aggregate_type = r->type, .aggregate_id = r->id,
				.version = s->version, .event_cid = ecid,
				.timestamp = ts, .state = s->state};
	if (cim_snapshot_encode(&b, &block, why, sizeof why) != 0) {
		cim_perr_set(&e, CIM_ERR_INVALID_REQUEST, "state", "%s", why);
		goto fail;
	}
	if (block.len > (size_t)d->cfg->max_snapshot_bytes ||
	    block.len + 512 > d->max_payload) {
		cim_perr_set(&e, CIM_ERR_PAYLOAD_TOO_LARGE, "state",
			     "the snapshot is %zu bytes encoded, over %s (%zu)", block.len,
			     block.len > (size_t)d->cfg->max_snapshot_bytes
				     ? "max_snapshot_bytes" : "the NATS payload limit",
			     block.len > (size_t)d->cfg->max_snapshot_bytes
				     ? (size_t)d->cfg->max_snapshot_bytes : d->max_payload - 512);
		goto fail;
	}
	cim_kv_key(key, r->type, r->id);
	pthread_mutex_t *lock = snap_lock(d, key);
	pthread_mutex_lock(lock);
	int rc = kv_store(d, r, key, &block, s->version, &kept, &e);
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
	cbuf_free(&block);
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
