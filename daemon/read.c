/*
 * read.c: get, head, validate, by_type and info.
 *
 * head is answered from memory on the subscription's thread; info, which
 * asks JetStream for the stream's state, on a worker. get, validate and
 * by_type read the stream on a worker: get up to the
 * head the daemon has committed (never a batch in flight), by_type up to
 * the first event of an append still in flight or of an unsettled
 * aggregate's that settling may adopt, validate everything stored for the
 * aggregate, whatever the daemon believes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "buf.h"
#include "daemon.h"
#include "event.h"
#include "ids.h"
#include "jsontext.h"
#include "log.h"
#include "seal.h"

#define REPLY_SLACK 512 /* room for the reply's envelope and headers */

struct read_req *read_req_new(struct daemon *d, natsMsg *req, const char *type,
			      const char *id)
{
	struct read_req *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->req = req;
	snprintf(r->type, sizeof r->type, "%s", type);
	snprintf(r->id, sizeof r->id, "%s", id);
	pthread_mutex_lock(&d->mu);
	struct agg *a = heads_find(&d->heads, type, id);
	if (a != NULL) {
		r->agg = a;
		r->head_version = a->version;
		r->head_seq = a->seq;
		r->first_seq = a->first_seq;
		r->forgotten = a->forgotten != 0;
		r->ntypes = agg_types(&d->heads, a, r->types, AGG_TYPES_UNKNOWN);
		agg_head_cid(a, &r->head_cid);
	}
	pthread_mutex_unlock(&d->mu);
	return r;
}

void read_req_free(struct read_req *r)
{
	free(r->keys);
	natsMsg_Destroy(r->req);
	free(r);
}

void submit_read(struct daemon *d, enum op op, work_fn fn, struct read_req *r)
{
	if (work_submit(d, fn, r) != 0) {
		cim_perr e;
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL,
			     "the daemon is overloaded; retry later");
		reply_error(d, r->req, op, &e);
		read_req_free(r);
	}
}

/* ---- pages of events ------------------------------------------------------------ */

/* The events of one reply, as comma-separated JSON, within a byte budget
 * that keeps the whole reply under the NATS payload limit. */
struct page {
	cbuf text;
	size_t count;
	size_t budget;
	struct shown sh; /* the data key of the last encrypted event shown */
};

static void page_init(struct daemon *d, struct page *pg)
{
	memset(pg, 0, sizeof *pg);
	pg->sh.state = KEY_MISS;
	pg->budget = d->max_payload > REPLY_SLACK ? d->max_payload - REPLY_SLACK
						  : d->max_payload;
}

/* The seal m carries (its two headers), added to the event just written
 * to t when they are well-formed (validate says whether it verifies). */
static int put_seal(cbuf *t, natsMsg *m)
{
	const char *key = NULL, *sig = NULL;

	natsMsgHeader_Get(m, "Cim-Seal-Key", &key);
	natsMsgHeader_Get(m, "Cim-Seal", &sig);
	return cim_event_json_add_seal(t, key, sig);
}

/* Adds the stored block of m (checked as v) as an event of the reply, its
 * data decrypted or shown as forgotten (decrypt.c), with its seal. 0 when
 * added, 1 when it does not fit (not added), -1 on error (err set). */
static int page_add(struct daemon *d, struct page *pg, natsMsg *m, const cim_event_view *v,
		    uint64_t seq, bool forgotten, cim_perr *err)
{
	cim_cid cid;
	size_t mark = pg->text.len;
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);

	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, d->cfg->hash_code, p, len);
	if (pg->count > 0 && cbuf_putc(&pg->text, ',') != 0)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	if (show_event(d, &pg->sh, &pg->text, p, len, v, &cid, seq, forgotten, err) != 0) {
		pg->text.len = mark;
		return -1;
	}
	if (put_seal(&pg->text, m) != 0) {
		pg->text.len = mark;
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	}
	if (pg->text.len > pg->budget) {
		pg->text.len = mark; /* does not fit: take it back */
		if (pg->count == 0)
			return cim_perr_set(err, CIM_ERR_PAYLOAD_TOO_LARGE, NULL,
					    "the event at stream sequence %llu alone is "
					    "larger than the NATS payload limit (%zu bytes)",
					    (unsigned long long)seq, d->max_payload);
		return 1;
	}
	pg->count++;
	return 0;
}

static void page_free(struct daemon *d, struct page *pg)
{
	shown_release(d, &pg->sh);
	cbuf_free(&pg->text);
}

/* Sends open + the events + close as the reply, with Cim-Status 200. */
static void page_send(struct daemon *d, natsMsg *req, const char *open,
		      struct page *pg, const char *close)
{
	cbuf out = CBUF_INIT;
	const char *to = natsMsg_GetReply(req);
	natsMsg *m = NULL;

	if (cbuf_puts(&out, open) != 0 || cbuf_put(&out, pg->text.p, pg->text.len) != 0 ||
	    cbuf_puts(&out, close) != 0) {
		cim_perr e;
		cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
		reply_error(d, req, OP_OTHER, &e);
	} else if (to && natsMsg_Create(&m, to, NULL, (const char *)out.p, (int)out.len) == NATS_OK) {
		natsMsgHeader_Set(m, "Cim-Status", "200");
		natsConnection_PublishMsg(d->nc, m);
		lat_end(d, req);
		natsMsg_Destroy(m);
	}
	cbuf_free(&out);
	page_free(d, pg);
}

/* ---- get ------------------------------------------------------------------------ */

struct get_ctx {
	struct daemon *d;
	struct read_req *r;
	struct page pg;
	uint64_t last_seq; /* of the last event on the page */
	uint64_t next;   /* the version expected next */
	uint64_t cut_at; /* first version left out because of size; 0 if none */
	const cim_cid *link; /* when set: what the first event's prev must be */
	cim_perr err;
};

static int get_visit(natsMsg *m, uint64_t seq, int64_t ts, void *ctx)
{
	struct get_ctx *g = ctx;
	cim_event_view v;
	char err[160];
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	if (cim_event_check(p, len, &v, err, sizeof err) != 0) {
		cim_perr_set(&g->err, CIM_ERR_INTERNAL, NULL,
			     "the event at stream sequence %llu cannot be decoded (%s); "
			     "run validate", (unsigned long long)seq, err);
		return -1;
	}
	if (v.version < g->next)
		return 0;
	if (v.version != g->next) {
		cim_perr_set(&g->err, CIM_ERR_INTERNAL, NULL,
			     "version %llu is not stored where expected (found %llu at "
			     "sequence %llu); run validate",
			     (unsigned long long)g->next, (unsigned long long)v.version,
			     (unsigned long long)seq);
		return -1;
	}
	if (g->link != NULL) {
		if (!v.has_prev || !cim_cid_equal(&v.prev, g->link)) {
			cim_perr_set(&g->err, CIM_ERR_INTERNAL, NULL,
				     "version %llu does not link to the event the snapshot "
				     "was taken at; run validate",
				     (unsigned long long)v.version);
			return -1;
		}
		g->link = NULL;
	}
	int rc = page_add(g->d, &g->pg, m, &v, seq, g->r->forgotten, &g->err);
	if (rc != 0) {
		if (rc > 0)
			g->cut_at = g->next;
		return rc;
	}
	g->next++;
	g->last_seq = seq;
	return g->pg.count >= g->r->limit || g->next > g->r->head_version ? 1 : 0;
}

static struct cursor *cursor_slot(struct cursor *table, size_t n, const struct agg *a,
				  uint64_t version)
{
	uint64_t h = ((uintptr_t)a >> 4) * 0x9e3779b97f4a7c15ULL ^ version * 0xff51afd7ed558ccdULL;
	return &table[(h >> 32) % n];
}

/* Remembers that a's event at version is stored at or after seq (the
 * event before it is at seq - 1 or earlier). */
static void cursor_put(struct daemon *d, const struct agg *a, uint64_t version, uint64_t seq)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	*cursor_slot(d->cursors, CURSORS, a, version) = (struct cursor){a, version, seq};
	pthread_mutex_unlock(&d->mu);
}

void snappos_put(struct daemon *d, const struct agg *a, uint64_t version, uint64_t seq)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	*cursor_slot(d->snappos, SNAPPOS, a, version + 1) =
		(struct cursor){a, version + 1, seq + 1};
	pthread_mutex_unlock(&d->mu);
}

/* Where a read from version may start: a cursor left by the page before
 * it or by a snapshot, else the aggregate's first sequence. */
static uint64_t cursor_start(struct daemon *d, const struct read_req *r, uint64_t version)
{
	uint64_t start = r->first_seq;

	if (r->agg == NULL || version <= 1 || r->no_hints)
		return start;
	pthread_mutex_lock(&d->mu);
	const struct cursor *c = cursor_slot(d->cursors, CURSORS, r->agg, version);
	if (c->agg == r->agg && c->version == version && c->seq > start)
		start = c->seq;
	c = cursor_slot(d->snappos, SNAPPOS, r->agg, version);
	if (c->agg == r->agg && c->version == version && c->seq > start)
		start = c->seq;
	pthread_mutex_unlock(&d->mu);
	return start;
}

/* Reads one page of r's events from r->from_version into g (budget bytes
 * less than a plain get may use). Returns the version the next page starts
 * at (0: the page reached the head), or -1 with g->err set. */
static int64_t read_page(struct daemon *d, struct read_req *r, struct get_ctx *g,
			 size_t less)
{
	*g = (struct get_ctx){.d = d, .r = r, .next = r->from_version, .link = g->link};
	page_init(d, &g->pg);
	g->pg.budget = g->pg.budget > less ? g->pg.budget - less : 0;
	if (store_read_agg(d, r->type, r->id, r->types, r->ntypes,
			   cursor_start(d, r, r->from_version), r->head_seq, get_visit, g,
			   &g->err) != 0)
		return -1;
	if (g->cut_at == 0 && g->pg.count == 0) {
		cim_perr_set(&g->err, CIM_ERR_INTERNAL, NULL,
			     "the stream ends before version %llu; run validate",
			     (unsigned long long)g->next);
		return -1;
	}
	uint64_t next = g->cut_at ? g->cut_at : (g->next <= r->head_version ? g->next : 0);
	if (next)
		cursor_put(d, r->agg, next, g->last_seq + 1);
	return (int64_t)next;
}

static void next_field(char *out, size_t n, int64_t next)
{
	if (next)
		snprintf(out, n, "],\"next_from_version\":%lld}", (long long)next);
	else
		snprintf(out, n, "],\"next_from_version\":null}");
}

static void get_work(struct daemon *d, void *arg)
{
	struct read_req *r = arg;
	struct get_ctx g = {0};
	char open[96], close[96];
	int64_t next = read_page(d, r, &g, 0);

	/* a read that finds a gap before the head may have been served by a
	 * consumer on a cluster node still catching up (nats-server 2.9.10
	 * places ephemeral consumers on any replica): ask again, a few times,
	 * before calling it a fault */
	for (int again = 0; next < 0 && g.err.code == CIM_ERR_INTERNAL && again < 4; again++) {
		usleep(250000);
		page_free(d, &g.pg);
		next = read_page(d, r, &g, 0);
	}
	if (next < 0) {
		reply_error(d, r->req, OP_GET, &g.err);
	} else {
		snprintf(open, sizeof open, "{\"version\":%llu,\"events\":[",
			 (unsigned long long)r->head_version);
		next_field(close, sizeof close, next);
		page_send(d, r->req, open, &g.pg, close);
	}
	page_free(d, &g.pg);
	read_req_free(r);
}

/* ---- one event -------------------------------------------------------------------- */

struct at_ctx {
	struct daemon *d;
	uint64_t version;
	bool found;
	cim_cid cid;
	uint64_t seq;
	cim_perr *err;
};

static int at_visit(natsMsg *m, uint64_t seq, int64_t ts, void *ctx)
{
	struct at_ctx *a = ctx;
	cim_event_view v;
	char err[160];
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);

	if (cim_event_check(p, len, &v, err, sizeof err) != 0) {
		cim_perr_set(a->err, CIM_ERR_INTERNAL, NULL,
			     "the event at stream sequence %llu cannot be decoded (%s); "
			     "run validate", (unsigned long long)seq, err);
		return -1;
	}
	if (v.version < a->version)
		return 0;
	if (v.version == a->version) {
		cim_cid_compute(&a->cid, CIM_CODEC_DAG_CBOR, a->d->cfg->hash_code, p, len);
		a->seq = seq;
		a->found = true;
	}
	return 1;
}

int read_event_at(struct daemon *d, const struct read_req *r, uint64_t version,
		  cim_cid *cid, uint64_t *seq, cim_perr *err)
{
	struct at_ctx a = {.d = d, .version = version, .err = err};

	if (version == r->head_version) {
		*cid = r->head_cid;
		*seq = r->head_seq;
		return 0;
	}
	if (store_read_agg(d, r->type, r->id, r->types, r->ntypes,
			   cursor_start(d, r, version), r->head_seq, at_visit, &a, err) != 0)
		return -1;
	if (!a.found)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL,
				    "version %llu is not stored where expected; run validate",
				    (unsigned long long)version);
	*cid = a.cid;
	*seq = a.seq;
	return 0;
}

/* ---- load ------------------------------------------------------------------------- */

static void load_work(struct daemon *d, void *arg)
{
	struct read_req *r = arg;
	struct get_ctx g = {0};
	json_t *snap = NULL;
	uint64_t sv = 0, sseq = 0;
	cim_cid ecid;
	cim_perr e;
	char *stext = NULL, *open = NULL, close[96];
	int64_t next = 0;

	if (snapshot_fetch(d, r->type, r->id, &snap, &sv, &ecid, &sseq, &e) != 0)
		goto fail;
	if (snap != NULL && (sv > r->head_version ||
			     (sv == r->head_version && !cim_cid_equal(&ecid, &r->head_cid)))) {
		cim_perr_set(&e, CIM_ERR_INTERNAL, NULL,
			     "the stored snapshot (version %llu) is not of this "
			     "aggregate's chain (at version %llu); run validate",
			     (unsigned long long)sv, (unsigned long long)r->head_version);
		goto fail;
	}
	stext = snap != NULL ? cim_json_text(snap) : strdup("null");
	if (stext == NULL)
		goto oom;
	if (asprintf(&open, "{\"snapshot\":%s,\"version\":%llu,\"events\":[", stext,
		     (unsigned long long)r->head_version) < 0) {
		open = NULL;
		goto oom;
	}
	if (sv < r->head_version) {
		r->from_version = sv + 1;
		if (snap != NULL) {
			g.link = &ecid;
			/* the events after the snapshot are stored after its
			 * event: read from there, however long the history */
			if (sseq >= r->first_seq && sseq < r->head_seq)
				snappos_put(d, r->agg, sv, sseq);
		}
		next = read_page(d, r, &g, strlen(open));
		if (next < 0 && snap != NULL) {
			/* a position that did not fit (an operator's copy of the
			 * bucket, say): read from the aggregate's first event */
			log_warn("load %s/%s: reading again from its first event: %s",
				 r->type, r->id, g.err.msg);
			page_free(d, &g.pg);
			r->no_hints = true;
			g.link = &ecid;
			next = read_page(d, r, &g, strlen(open));
		}
		if (next < 0) {
			e = g.err;
			goto fail;
		}
	}
	next_field(close, sizeof close, next);
	page_send(d, r->req, open, &g.pg, close);
	goto out;
oom:
	cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
fail:
	reply_error(d, r->req, OP_LOAD, &e);
out:
	page_free(d, &g.pg);
	json_decref(snap);
	free(stext);
	free(open);
	read_req_free(r);
}

void load_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_perr e;

	if (cim_empty_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req), &e) != 0) {
		refuse(d, req, OP_LOAD, &e);
		return;
	}
	struct read_req *r = read_req_new(d, req, type, id);
	if (r == NULL) {
		refuse_oom(d, req, OP_LOAD);
		return;
	}
	r->limit = (uint64_t)d->cfg->get_max_limit;
	submit_read(d, OP_LOAD, load_work, r);
}

void get_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_perr e;
	uint64_t from = 1, limit = 0;

	if (cim_get_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req),
			      (uint64_t)d->cfg->get_limit, (uint64_t)d->cfg->get_max_limit,
			      &from, &limit, &e) != 0) {
		refuse(d, req, OP_GET, &e);
		return;
	}
	struct read_req *r = read_req_new(d, req, type, id);
	if (r == NULL) {
		refuse_oom(d, req, OP_GET);
		return;
	}
	r->from_version = from;
	r->limit = limit;
	if (from > r->head_version) {
		/* nothing to read: answer at once */
		reply_json(d, req, json_pack("{sI s[] sn}", "version",
					     (json_int_t)r->head_version, "events",
					     "next_from_version"));
		read_req_free(r);
		return;
	}
	submit_read(d, OP_GET, get_work, r);
}

/* ---- head ----------------------------------------------------------------------- */

void head_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_perr e;
	struct agg *a;
	uint64_t version = 0, seq = 0;
	cim_cid cid = {0};
	char text[CIM_CID_TEXT_MAX];

	if (cim_empty_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req), &e) != 0) {
		reply_error(d, req, OP_HEAD, &e);
		return;
	}
	pthread_mutex_lock(&d->mu);
	a = heads_find(&d->heads, type, id);
	if (a != NULL) {
		version = a->version;
		seq = a->seq;
		agg_head_cid(a, &cid);
	}
	pthread_mutex_unlock(&d->mu);
	if (version == 0) {
		reply_json(d, req, json_pack("{si sn sn}", "version", 0, "head", "seq"));
		return;
	}
	cim_cid_to_text(&cid, text);
	reply_json(d, req, json_pack("{sI ss sI}", "version", (json_int_t)version,
				     "head", text, "seq", (json_int_t)seq));
}

/* ---- validate ------------------------------------------------------------------- */

struct val_ctx {
	struct daemon *d;
	const struct read_req *r;
	uint64_t next;       /* version expected next */
	uint64_t checked;
	bool have_prev;
	cim_cid prev_cid;    /* recomputed CID of the last good event */
	uint64_t prev_seq;   /* and where it is stored */
	uint64_t fail_version;
	const char *reason;
	char detail[400];
	/* seals: checked when keys are given (or trusted_keys set) */
	const uint8_t (*keys)[CIM_KEY_BYTES];
	size_t nkeys;
	uint64_t sealed_through; /* the last version a trusted seal covers */
};

static bool same_text(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

static int val_fail(struct val_ctx *v, uint64_t version, const char *reason,
		    const char *detail)
{
	v->fail_version = version;
	v->reason = reason;
	snprintf(v->detail, sizeof v->detail, "%s", detail);
	return 1;
}

/* Whether the message at seq carries a Cim-Cid header other than the CID
 * its bytes hash to (then its text goes to said). Headers are never taken
 * as truth; this only tells, once a link fails, whether the earlier block
 * changed or the later one links elsewhere, so it reads that one message
 * again rather than every message's headers. */
static bool stored_as_other(struct daemon *d, uint64_t seq, const cim_cid *computed,
			    char *said, size_t n)
{
	cim_perr e;
	cim_cid c;
	const char *hdr = NULL;
	bool other = false;
	natsMsg *m = store_get_msg(d, seq, &e);

	if (m != NULL && natsMsgHeader_Get(m, "Cim-Cid", &hdr) == NATS_OK && hdr != NULL &&
	    (cim_cid_from_text(&c, hdr) != 0 || !cim_cid_equal(&c, computed))) {
		snprintf(said, n, "%s", hdr);
		other = true;
	}
	natsMsg_Destroy(m);
	return other;
}

/* The seal of the event at version (CID cid), if its message carries
 * one: it must verify under its key (else bad_seal); under a trusted key
 * it covers everything up to here. 0, or 1 with the failure set. */
static int check_seal(struct val_ctx *v, natsMsg *m, uint64_t version, const cim_cid *cid,
		      uint64_t seq)
{
	const char *key = NULL, *sig = NULL;
	uint8_t pk[CIM_KEY_BYTES];
	char why[160], detail[400];

	natsMsgHeader_Get(m, "Cim-Seal-Key", &key);
	natsMsgHeader_Get(m, "Cim-Seal", &sig);
	if (key == NULL && sig == NULL)
		return 0;
	if (cim_seal_check_headers(key, key ? strlen(key) : 0, sig, sig ? strlen(sig) : 0, cid,
				   pk, why, sizeof why) != 0) {
		snprintf(detail, sizeof detail, "the seal of version %llu (stream sequence "
			 "%llu) does not hold: %s", (unsigned long long)version,
			 (unsigned long long)seq, why);
		return val_fail(v, version, "bad_seal", detail);
	}
	for (size_t i = 0; i < v->nkeys; i++)
		if (sodium_memcmp(pk, v->keys[i], CIM_KEY_BYTES) == 0) {
			v->sealed_through = version;
			break;
		}
	return 0;
}

static int val_visit(natsMsg *m, uint64_t seq, int64_t ts, void *ctx)
{
	struct val_ctx *v = ctx;
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	cim_event_view b;
	cim_cid cid;
	char err[160], detail[400], t1[CIM_CID_TEXT_MAX], t2[CIM_CID_TEXT_MAX];
	char said[CIM_CID_TEXT_MAX];
	int rc = 0;

	if (cim_event_check(p, len, &b, err, sizeof err) != 0) {
		snprintf(detail, sizeof detail, "the message at stream sequence %llu is "
			 "not a valid event block: %s", (unsigned long long)seq, err);
		return val_fail(v, v->next, "undecodable", detail);
	}
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, v->d->cfg->hash_code, p, len);
	if (!same_text(b.aggregate_type, b.aggregate_type_len, v->r->type) ||
	    !same_text(b.aggregate_id, b.aggregate_id_len, v->r->id)) {
		snprintf(detail, sizeof detail, "the block at stream sequence %llu belongs "
			 "to %.*s/%.*s, not to this aggregate", (unsigned long long)seq,
			 (int)(b.aggregate_type_len > 64 ? 64 : b.aggregate_type_len),
			 b.aggregate_type,
			 (int)(b.aggregate_id_len > 128 ? 128 : b.aggregate_id_len),
			 b.aggregate_id);
		rc = val_fail(v, v->next, "broken_link", detail);
	} else if (b.version != v->next) {
		snprintf(detail, sizeof detail, "expected version %llu at stream sequence "
			 "%llu, found version %llu", (unsigned long long)v->next,
			 (unsigned long long)seq, (unsigned long long)b.version);
		rc = val_fail(v, v->next, "version_gap", detail);
	} else if (b.version > 1 && b.has_prev && v->have_prev &&
		   !cim_cid_equal(&b.prev, &v->prev_cid) &&
		   stored_as_other(v->d, v->prev_seq, &v->prev_cid, said, sizeof said)) {
		/* the previous block's bytes changed since it was stored */
		cim_cid_to_text(&v->prev_cid, t1);
		snprintf(detail, sizeof detail, "the stored bytes of version %llu hash to "
			 "%s, not to the CID it was stored under (%s)",
			 (unsigned long long)(b.version - 1), t1, said);
		v->checked--;
		rc = val_fail(v, b.version - 1, "hash_mismatch", detail);
	} else if (b.version == 1 ? b.has_prev
				  : (!b.has_prev || !v->have_prev ||
				     !cim_cid_equal(&b.prev, &v->prev_cid))) {
		if (b.has_prev)
			cim_cid_to_text(&b.prev, t1);
		else
			snprintf(t1, sizeof t1, "null");
		if (v->have_prev)
			cim_cid_to_text(&v->prev_cid, t2);
		else
			snprintf(t2, sizeof t2, "null");
		snprintf(detail, sizeof detail, "version %llu links to %s, but the "
			 "previous event's bytes hash to %s", (unsigned long long)b.version,
			 t1, t2);
		rc = val_fail(v, b.version, "broken_link", detail);
	} else if (v->nkeys > 0 && check_seal(v, m, b.version, &cid, seq) != 0) {
		rc = 1;
	} else {
		v->checked++;
		v->next++;
		v->prev_cid = cid;
		v->prev_seq = seq;
		v->have_prev = true;
	}
	return rc;
}

static void validate_work(struct daemon *d, void *arg)
{
	struct read_req *r = arg;
	struct val_ctx v;
	cim_perr e = {0};
	char text[CIM_CID_TEXT_MAX], detail[400];
	char **types = NULL;
	int ntypes = 0;

	/* a failure is read again a few times before it is reported: the
	 * read may have been served by a consumer on a cluster node still
	 * catching up (see get_work) */
	for (int attempt = 0;; attempt++) {
		v = (struct val_ctx){.d = d, .r = r, .next = 1, .keys = (const uint8_t (*)[CIM_KEY_BYTES])r->keys,
				     .nkeys = r->nkeys};
		types = NULL;
		ntypes = 0;
		/* the subjects the stream holds for it, whatever memory says: from
		 * the start of the stream, since validate trusts nothing remembered */
		if (store_agg_subjects(d, r->type, r->id, &types, &ntypes, &e) != 0 ||
		    store_read_agg(d, r->type, r->id, (const char *const *)types, ntypes, 1,
				   STORE_TO_END, val_visit, &v, &e) != 0) {
			store_free_subjects(types, ntypes);
			reply_error(d, r->req, OP_VALIDATE, &e);
			read_req_free(r);
			return;
		}
		store_free_subjects(types, ntypes);
		if (attempt == 3 || (v.reason == NULL && v.checked >= r->head_version))
			break;
		usleep(250000);
	}
	if (v.reason == NULL && v.checked < r->head_version) {
		snprintf(detail, sizeof detail, "the aggregate's head is version %llu but "
			 "the stream holds versions up to %llu only",
			 (unsigned long long)r->head_version, (unsigned long long)v.checked);
		val_fail(&v, v.checked + 1, "missing", detail);
	} else if (v.reason == NULL && v.checked == r->head_version && v.checked > 0 &&
		   !cim_cid_equal(&v.prev_cid, &r->head_cid)) {
		cim_cid_to_text(&v.prev_cid, text);
		snprintf(detail, sizeof detail, "the head event's stored bytes hash to %s, "
			 "not to the head CID it was appended as", text);
		val_fail(&v, v.checked, "hash_mismatch", detail);
	} else if (v.reason == NULL && v.nkeys > 0 && v.sealed_through < v.checked) {
		if (v.sealed_through == 0)
			snprintf(detail, sizeof detail, "no seal from a trusted key covers "
				 "versions 1 to %llu", (unsigned long long)v.checked);
		else
			snprintf(detail, sizeof detail, "no seal from a trusted key covers "
				 "versions %llu to %llu (the last one seals version %llu)",
				 (unsigned long long)v.sealed_through + 1,
				 (unsigned long long)v.checked,
				 (unsigned long long)v.sealed_through);
		val_fail(&v, v.sealed_through + 1, "unsealed", detail);
	}
	uint64_t version = r->head_version > v.checked ? r->head_version : v.checked;
	json_t *o;
	if (v.checked > 0)
		cim_cid_to_text(&v.prev_cid, text);
	if (v.reason == NULL) {
		o = json_pack("{sb sI sI so}", "valid", 1, "version", (json_int_t)v.checked,
			      "checked", (json_int_t)v.checked, "head",
			      v.checked ? json_string(text) : json_null());
	} else {
		o = json_pack("{sb sI sI so s{sI ss ss}}", "valid", 0, "version",
			      (json_int_t)version, "checked", (json_int_t)v.checked, "head",
			      v.checked ? json_string(text) : json_null(), "failure",
			      "version", (json_int_t)v.fail_version, "reason", v.reason,
			      "detail", v.detail);
	}
	if (o != NULL && v.nkeys > 0)
		json_object_set_new(o, "sealed_through", json_integer((json_int_t)v.sealed_through));
	reply_json(d, r->req, o);
	read_req_free(r);
}

void validate_request(struct daemon *d, natsMsg *req, const char *type, const char *id)
{
	cim_perr e;
	uint8_t keys[VALIDATE_KEYS_MAX][CIM_KEY_BYTES];
	size_t nkeys = 0;

	if (cim_validate_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req), keys,
				   VALIDATE_KEYS_MAX, &nkeys, &e) != 0) {
		refuse(d, req, OP_VALIDATE, &e);
		return;
	}
	struct read_req *r = read_req_new(d, req, type, id);
	if (r == NULL) {
		refuse_oom(d, req, OP_VALIDATE);
		return;
	}
	/* the request's keys, else the ones the daemon is told to trust */
	const uint8_t (*use)[CIM_KEY_BYTES] = nkeys > 0 ? (const uint8_t (*)[CIM_KEY_BYTES])keys
						       : (const uint8_t (*)[CIM_KEY_BYTES])d->trusted;
	r->nkeys = nkeys > 0 ? nkeys : d->ntrusted;
	if (r->nkeys > 0) {
		if ((r->keys = malloc(r->nkeys * CIM_KEY_BYTES)) == NULL) {
			read_req_free(r);
			refuse_oom(d, req, OP_VALIDATE);
			return;
		}
		memcpy(r->keys, use, r->nkeys * CIM_KEY_BYTES);
	}
	submit_read(d, OP_VALIDATE, validate_work, r);
}

/* ---- by_type ---------------------------------------------------------------------- */

/*
 * The type index (typeindex.c) gives the sequences that may hold a message
 * of the type, in order: those noted as of the type, and those not noted
 * at all (a message the daemon has not seen: an append's whose ack is not
 * in, or one stored by someone else), up to the highest sequence noted.
 * They are read by sequence, a chunk at a time, and each message decides:
 * not stored, or of another type: skipped; an event at or before its
 * aggregate's committed head: shown; past it while an append of that
 * aggregate is in flight, or past the head of an unsettled aggregate at a
 * version after the head's (settling may adopt it there): the page stops
 * before it, and a follower asks again from before it; past it otherwise:
 * not an event of this store, skipped. Every unsettled aggregate is on
 * the sweep list (append.c), so such a stop lasts until its settle, which
 * adopts the event or leaves it, settled, as not this store's. So the end
 * is the index's end, a fact, and nothing waits for a fetch to run out. A
 * page that is full still looks for the next event it would show, to tell
 * whether there is more (next_after_seq) or not (null).
 */

#define BT_CHUNK 1024 /* sequences read at once */

struct bt_ctx {
	struct daemon *d;
	natsMsg *req;
	char event_type[CIM_TYPE_MAX + 1];
	uint64_t after_seq, limit;
	struct page pg;
	uint64_t last_seq;  /* of the last event put on the page */
	bool more;          /* stopped before the end of what is stored */
	cim_perr err;
};

/* One message that may be of the type: 0 to go on, 1 to stop, -1 on
 * error (c->err set). */
static int bt_visit(struct bt_ctx *c, const struct stored_msg *sm)
{
	struct daemon *d = c->d;
	char buf[256], err[160] = "";
	const char *type, *id, *et;
	const uint8_t *p = NULL;
	size_t len = 0;
	cim_event_view b;
	bool committed = false, held = false, forgotten = false, readable = false;

	bool ours = sm->msg != NULL && (et = strrchr(sm->subject, '.')) != NULL &&
		    strcmp(et + 1, c->event_type) == 0 &&
		    store_split_subject(d, sm->subject, buf, sizeof buf, &type, &id) == 0;
	if (ours) {
		p = (const uint8_t *)natsMsg_GetData(sm->msg);
		len = (size_t)natsMsg_GetDataLength(sm->msg);
		readable = cim_event_check(p, len, &b, err, sizeof err) == 0;
	}
	pthread_mutex_lock(&d->mu);
	/* what was read is noted: the next read need not look again */
	tix_note_subject(d, sm->seq, sm->msg ? sm->subject : NULL);
	struct agg *a = ours ? heads_find(&d->heads, type, id) : NULL;
	if (a != NULL) {
		committed = sm->seq <= a->seq;
		/* past the head, it may yet be committed at this sequence: part
		 * of an append in flight, or an event continuing the head of an
		 * aggregate the daemon does not know the outcome of (unsettled),
		 * which settling may adopt; that settle is under way or listed */
		held = !committed &&
		       (a->busy != NULL || (a->state == AGG_UNSETTLED && readable &&
					    b.version > a->version));
		if (held && a->busy == NULL)
			sweep_add_locked(d, a);
		forgotten = a->forgotten != 0;
	}
	pthread_mutex_unlock(&d->mu);
	if (!ours)
		return 0; /* not stored, or of another type */
	if (held) {
		/* stop before it: no reader passes an event that may still be
		 * committed behind it, nor sees part of a batch */
		c->more = true;
		return 1;
	}
	if (!committed)
		return 0; /* not an event of this store (validate reports it) */
	if (c->pg.count >= c->limit) {
		c->more = true; /* the page is full and there is more */
		return 1;
	}
	if (!readable) {
		log_warn("by_type: skipping undecodable message at seq %llu: %s",
			 (unsigned long long)sm->seq, err);
		return 0;
	}
	int rc = page_add(d, &c->pg, sm->msg, &b, sm->seq, forgotten, &c->err);
	if (rc != 0) {
		c->more = rc > 0;
		return rc;
	}
	c->last_seq = sm->seq;
	return 0;
}

/* The page: 0, or -1 with c->err set. */
static int by_type_read(struct daemon *d, struct bt_ctx *c)
{
	uint64_t seqs[BT_CHUNK], pos = c->after_seq + 1;
	struct stored_msg got[BT_CHUNK];

	pthread_mutex_lock(&d->mu);
	int id = heads_type_id(&d->heads, c->event_type, strlen(c->event_type), false);
	pthread_mutex_unlock(&d->mu);
	for (;;) {
		/* no more than the page can still take, and one to tell if there is more */
		uint64_t room = c->limit - c->pg.count + 1;
		size_t n = tix_collect(d, id, &pos, seqs, room < BT_CHUNK ? (size_t)room : BT_CHUNK);
		if (n == 0)
			return 0; /* the end of what the daemon knows is stored */
		if (store_get_seqs(d, seqs, n, got, &c->err) != 0)
			return -1;
		int rc = 0;
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = bt_visit(c, &got[i]);
		store_free_seqs(got, n);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
}

static void by_type_work(struct daemon *d, void *arg)
{
	struct bt_ctx *c = arg;
	char close[96];

	if (by_type_read(d, c) != 0) {
		reply_error(d, c->req, OP_BY_TYPE, &c->err);
	} else {
		if (c->more)
			snprintf(close, sizeof close, "],\"next_after_seq\":%llu}",
				 (unsigned long long)(c->last_seq ? c->last_seq : c->after_seq));
		else
			snprintf(close, sizeof close, "],\"next_after_seq\":null}");
		page_send(d, c->req, "{\"events\":[", &c->pg, close);
	}
	page_free(d, &c->pg);
	natsMsg_Destroy(c->req);
	free(c);
}

void by_type_request(struct daemon *d, natsMsg *req, const char *event_type)
{
	static const char *const allowed[] = {"after_seq", "limit", NULL};
	cim_perr e;
	struct bt_ctx *c = NULL;
	json_t *root = cim_json_parse_request(natsMsg_GetData(req),
					      (size_t)natsMsg_GetDataLength(req), &e);
	uint64_t after = 0, limit = (uint64_t)d->cfg->get_limit;

	if (root == NULL || cim_json_only_keys(root, allowed, &e) != 0 ||
	    cim_json_get_u64(root, "after_seq", &after, &e) != 0 ||
	    cim_json_get_u64(root, "limit", &limit, &e) != 0)
		goto fail;
	if (limit < 1 || limit > (uint64_t)d->cfg->get_max_limit) {
		cim_perr_set(&e, CIM_ERR_INVALID_ARGUMENT, "limit", "limit must be 1 to %lld",
			     (long long)d->cfg->get_max_limit);
		goto fail;
	}
	json_decref(root);
	root = NULL;
	if ((c = calloc(1, sizeof *c)) == NULL) {
		cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
		goto fail;
	}
	c->d = d;
	c->req = req;
	c->after_seq = after;
	c->limit = limit;
	snprintf(c->event_type, sizeof c->event_type, "%s", event_type);
	page_init(d, &c->pg);
	if (work_submit(d, by_type_work, c) != 0) {
		free(c);
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL, "the daemon is overloaded; retry later");
		goto fail;
	}
	return;
fail:
	json_decref(root);
	refuse(d, req, OP_BY_TYPE, &e);
}

/* ---- info ----------------------------------------------------------------------- */

#define STREAM_INFO_WAIT_MS 2000

/* The stream's state from JetStream, as info shows it. */
static json_t *stream_state_fetch(struct daemon *d)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	jsOptions jo;
	natsStatus s;
	json_t *o;

	jsOptions_Init(&jo);
	jo.Wait = STREAM_INFO_WAIT_MS;
	s = js_GetStreamInfo(&si, d->js, d->cfg->stream, &jo, &jerr);
	if (s != NATS_OK) {
		char m[300];
		snprintf(m, sizeof m, "cannot read the stream's state: %s (JetStream error %d)",
			 natsStatus_GetText(s), (int)jerr);
		return json_pack("{ss ss}", "name", d->cfg->stream, "error", m);
	}
	o = json_pack("{ss sI sI sI sI sI sI sI}", "name", d->cfg->stream,
		      "messages", (json_int_t)si->State.Msgs,
		      "bytes", (json_int_t)si->State.Bytes,
		      "first_seq", (json_int_t)si->State.FirstSeq,
		      "last_seq", (json_int_t)si->State.LastSeq,
		      "deleted", (json_int_t)si->State.NumDeleted,
		      "consumers", (json_int_t)si->State.Consumers,
		      "replicas", (json_int_t)(si->Config ? si->Config->Replicas : 0));
	if (o != NULL && si->Cluster != NULL) {
		json_t *reps = json_array();
		for (int i = 0; reps && i < si->Cluster->ReplicasLen; i++) {
			const jsPeerInfo *p = si->Cluster->Replicas[i];
			json_array_append_new(reps, json_pack(
				"{ss sb sb sI}", "name", p->Name ? p->Name : "",
				"current", p->Current, "offline", p->Offline,
				"lag", (json_int_t)p->Lag));
		}
		json_object_set_new(o, "cluster", json_pack(
			"{ss ss so}", "name", si->Cluster->Name ? si->Cluster->Name : "",
			"leader", si->Cluster->Leader ? si->Cluster->Leader : "",
			"peers", reps ? reps : json_array()));
	} else if (o != NULL) {
		json_object_set_new(o, "cluster", json_null());
	}
	jsStreamInfo_Destroy(si);
	return o;
}

/* The stream's state as a new reference (NULL: out of memory). fetch:
 * asked of JetStream now, unless another worker is asking at this moment
 * (then its last answer serves: a flood of info requests makes one
 * request to JetStream at a time); !fetch: only the last answer, for a
 * reply that must not wait on the network. "age_ms" says how old it is. */
static json_t *stream_state(struct daemon *d, bool fetch)
{
	struct stream_cache *c = &d->stream_info;
	json_t *o = NULL;
	int64_t at = 0;

	pthread_mutex_lock(&c->mu);
	if (c->state != NULL && (!fetch || c->fetching)) {
		o = json_deep_copy(c->state);
		at = c->at;
	} else if (fetch) {
		c->fetching = true;
	}
	pthread_mutex_unlock(&c->mu);
	if (o == NULL && fetch) {
		o = stream_state_fetch(d);
		at = now_mono_ns();
		pthread_mutex_lock(&c->mu);
		c->fetching = false;
		if (o != NULL) {
			json_decref(c->state);
			c->state = json_deep_copy(o);
			c->at = at;
		}
		pthread_mutex_unlock(&c->mu);
	}
	if (o != NULL)
		json_object_set_new(o, "age_ms", json_integer((now_mono_ns() - at) / 1000000));
	return o;
}

static json_t *info_object(struct daemon *d, json_t *stream)
{
	json_t *ops = json_object(), *codes = json_object();

	for (int i = 0; i < OP__COUNT; i++) {
		uint64_t p50 = lat_quantile_ns(d, (enum op)i, 0.50);
		uint64_t p99 = lat_quantile_ns(d, (enum op)i, 0.99);
		json_object_set_new(ops, op_name((enum op)i),
				    json_pack("{sI sI sI sf sf}", "requests",
					      (json_int_t)atomic_load(&d->ops[i].requests),
					      "errors", (json_int_t)atomic_load(&d->ops[i].errors),
					      "timed", (json_int_t)atomic_load(&d->lat[i].count),
					      "p50_us", (double)(p50 / 100) / 10.0,
					      "p99_us", (double)(p99 / 100) / 10.0));
	}
	for (int i = 1; i < CIM_ERR__COUNT; i++) {
		uint64_t n = atomic_load(&d->err_by_code[i]);
		if (n)
			json_object_set_new(codes, cim_err_name((cim_err)i), json_integer((json_int_t)n));
	}
	pthread_mutex_lock(&d->mu);
	size_t heads = d->heads.count;
	uint64_t seen = d->seen_seq;
	pthread_mutex_unlock(&d->mu);
	json_t *writer = json_pack("{ss ss ss ss sI sb sI}", "role",
				   role_name(atomic_load(&d->role)), "service_id",
				   d->service_id, "holder", d->holder,
				   "lease", d->lease_key, "lease_ttl_ms",
				   (json_int_t)(d->lease_ttl_ns / 1000000), "lease_valid",
				   lease_valid(d), "takeovers",
				   (json_int_t)atomic_load(&d->takeovers));
	json_t *cp = json_pack("{sI sI}", "seq", (json_int_t)atomic_load(&d->cp_last_seq),
			       "written", (json_int_t)atomic_load(&d->cp_written));
	uint64_t tix_bytes, tix_high;
	tix_stats(d, &tix_bytes, &tix_high);
	json_t *tix = json_pack("{sI sI}", "bytes", (json_int_t)tix_bytes, "high_seq",
				(json_int_t)tix_high);
	return json_pack(
		"{ss ss so so s{sI sI so so sI sI sI sI ss sI so so si sI sI sI so sI}}", "name",
		"cim-eventsd", "version", CIM_EVENTS_VERSION, "settings", config_json(d->cfg), "writer", writer,
		"counters",
		"uptime_s", (json_int_t)((now_ns() - d->started_ns) / 1000000000),
		"heads", (json_int_t)heads, "operations", ops, "errors", codes,
		"events_appended", (json_int_t)atomic_load(&d->events_appended),
		"bytes_appended", (json_int_t)atomic_load(&d->bytes_appended),
		"startup_ms", (json_int_t)d->startup_ms,
		"startup_events", (json_int_t)d->startup_events,
		"startup_heads_from", d->startup_how,
		"stream_seq", (json_int_t)seen,
		"heads_checkpoint", cp,
		"type_index", tix,
		"appends_in_flight", atomic_load(&d->jobs_in_flight),
		"appends_chained", (json_int_t)atomic_load(&d->appends_chained),
		"appends_rerun", (json_int_t)atomic_load(&d->appends_rerun),
		"latency_untimed", (json_int_t)lat_untimed(),
		"stream", stream ? stream : json_null(),
		"reads_off_leader", (json_int_t)atomic_load(&d->reads_off_leader));
}

/* info_object and what v1.1 adds: the key the daemon seals with, and
 * what encryption counts (datakeys.c, forget.c, decrypt.c). */
static json_t *info_reply(struct daemon *d, json_t *stream)
{
	json_t *o = info_object(d, stream);

	if (o != NULL && d->seal_key != NULL)
		json_object_set_new(o, "seal_key", json_string(d->seal_key->text));
	if (o != NULL)
		json_object_set_new(o, "encryption", json_pack(
			"{sb so sI sI}", "master_key", d->keys.master != NULL, "data_keys",
			keys_info(d), "forgotten", (json_int_t)atomic_load(&d->forgotten_count),
			"decrypted", (json_int_t)atomic_load(&d->decrypted_count)));
	return o;
}

/* On a worker: the stream's state may need a request to JetStream. */

static void info_work(struct daemon *d, void *arg)
{
	natsMsg *req = arg;

	reply_json(d, req, info_reply(d, stream_state(d, true)));
	natsMsg_Destroy(req);
}

/* Takes req. */
void info_request(struct daemon *d, natsMsg *req)
{
	cim_perr e;

	if (cim_empty_req_parse(natsMsg_GetData(req), (size_t)natsMsg_GetDataLength(req), &e) != 0) {
		refuse(d, req, OP_INFO, &e);
		return;
	}
	if (work_submit(d, info_work, req) == 0)
		return;
	/* every worker busy and the queue full: answered now, with the
	 * stream's state as last read (or null) */
	reply_json(d, req, info_reply(d, stream_state(d, false)));
	natsMsg_Destroy(req);
}
