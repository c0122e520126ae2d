/*
 * stream.c: subscriptions (live and replay) read straight from JetStream.
 *
 * A subscription is an ordered push consumer on the event stream, filtered
 * by the caller's pattern. Each message is checked as it arrives (its
 * block decoded, its CID recomputed from the bytes and compared with the
 * Cim-Cid header) and then waits in a small queue, in stream order, until
 * it may be handed out:
 *
 * - most events go out at once;
 * - the events of a multi-event append (header "Cim-Batch: i/n") are held
 *   until the whole batch is known to be stored, so no caller ever sees
 *   part of one. When the pattern covers whole aggregates, every event of
 *   the batch passes through here, so "the last index has arrived after
 *   index 1 did" is enough; an event of the same aggregate that is not the
 *   batch's next one means the batch was torn (the daemon removes torn
 *   batches and stores those versions again), and what was held is
 *   dropped. A batch first seen past its index 1 may be a subscription
 *   that started inside it, or the remnant of a torn batch whose start was
 *   removed: nothing in the stream tells them apart, so its events are
 *   confirmed with the daemon as below. When the pattern sees only part
 *   of each aggregate (one event type), the daemon is asked for every
 *   batch: an event is delivered once get shows the same CID at its
 *   version, dropped when it shows another.
 *
 * Held events block only their own aggregate; the others go on in stream
 * order. The prev and version checks run as events are handed out, in
 * the order the caller sees them, against a table of the last version and
 * CID handed out per aggregate (a hash table that grows; SipHash under a
 * random key, so aggregate names cannot be chosen to collide).
 *
 * Known and left: the table keeps an entry for every aggregate the
 * subscription has seen, for as long as it is open, so a long-lived
 * subscription over many aggregates grows with them.
 *
 * The end of a replay (stop_at_end) is found from facts, never from the
 * consumer's pending counts, which nats-server 2.9.10 gets wrong for
 * wildcard filters after deletes (one too many: the replay never ended;
 * one too few: it ended early; issue 12). The bound is the stream's last
 * sequence at open (end_seq). A message at or past it ends the replay.
 * Otherwise, when nothing is buffered and either a message said nothing
 * was pending (a hint, checked at once) or nothing came for END_QUIET_MS,
 * the stream itself is asked for the first message matching the pattern
 * after the last one taken (a message get with next_by_subj, answered by
 * the stream's leader): none up to end_seq is the end; one that is there
 * is waited for.
 *
 * A failure inside the subscription itself (memory, a message without
 * stream metadata, messages the client library dropped) cannot be passed
 * over without losing an event, so it breaks the subscription for good:
 * every later call returns the same error, and the caller reopens from
 * the last safe_seq.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "event.h"
#include "jsonread.h"
#include "keys.h"
#include "seal.h"

#define DEFAULT_PATTERN "events.>"
#define DEFAULT_STREAM "CIM-EVENTS"
#define ASK_EVERY_MS 100   /* how often the daemon is asked about a batch */
#define ASK_MAX 1000       /* versions asked for at once */
#define CONF_KEEP 256      /* aggregates whose answers are remembered */
#define WAIT_SLICE_MS 250  /* longest single wait */
#define END_QUIET_MS 50    /* replay: nothing came for this long, look at
			      the end */
#define STALE_MS 2000      /* a held event is looked up after this long */
#define MIN_SLOTS 64
#define REPLAY_PROGRESS 1000
/* Client-side buffer of the consumer: generous, so that a caller that is
 * slow for a while does not make nats.c drop messages (which breaks the
 * subscription, see sub_broken). */
#define PENDING_MSGS (1 << 20)
#define PENDING_BYTES (1 << 30)

struct agg;

/* A message taken from the consumer, waiting in the queue. */
struct item {
	struct item *prev, *next;
	struct agg *agg;     /* NULL for a block that cannot be decoded */
	cim_event ev;
	cim_cid cid;         /* recomputed from the bytes */
	uint64_t seq;
	unsigned idx, count; /* Cim-Batch; 0/0 when it carries none */
	bool held;           /* waits for the rest of its batch */
	bool ask;            /* held until the daemon confirms it (held) */
	bool seal_fail;      /* why is its seal's (bad_seal, unsealed) */
	int64_t recheck_ms;  /* held: when to see if it was deleted */
	char *why;           /* the check it already failed, or NULL */
	cimc_enc e;          /* e.enc (malloc'd): encrypted data waiting for the
				daemon (client/decrypt.c); NULL: none */
};

/* What the daemon said is committed at versions from..from+n-1. */
struct conf {
	struct conf *older, *newer;
	struct agg *agg;
	uint64_t from;
	size_t n;
	cim_cid cid[];
};

/* One aggregate seen by the subscription. */
struct agg {
	struct agg *chain;
	uint64_t hash;
	char *type, *id;        /* one allocation: type NUL id NUL */
	uint64_t last_version;  /* the last one handed out; 0: none */
	cim_cid last_cid;
	bool cid_known;         /* false after a block whose bytes changed */
	uint64_t mark;          /* scan generation (pick, confirm) */
	/* whole aggregates: the batch being gathered (count 0: none) */
	unsigned gather_idx, gather_count;
	uint64_t gather_version;
	/* part of aggregates: when to ask the daemon next, its last answer */
	int64_t ask_at_ms;
	struct conf *conf;
};

struct cim_subscription {
	cim_client *c;
	jsCtx *js;
	natsSubscription *sub;
	char *pattern;
	char *stream;
	bool whole;       /* the pattern covers whole aggregates */
	bool no_decrypt;  /* encrypted data is handed out as null */
	bool asking;      /* ask: a decrypt request is out */
	cimc_ask ask;
	bool stop_at_end;
	bool no_check;
	uint8_t (*keys)[CIM_KEY_BYTES]; /* trusted seal keys; nkeys 0: none */
	size_t nkeys;
	bool caught_up;   /* every message up to end_seq has been taken */
	bool final_asked; /* the daemon was asked once more at the end */
	uint64_t last_seen; /* highest sequence taken from the consumer */
	/* stop_at_end: how the end is looked for (see the top) */
	uint64_t from_seq;  /* where the replay starts */
	bool end_hint;      /* a message said nothing more was pending */
	bool quiet;         /* nothing came for END_QUIET_MS */
	uint64_t end_next;  /* a match the stream has at or before end_seq,
			       not taken yet (0: none known) */
	int64_t end_asked_ms;
	struct item *head, *tail;
	struct item *cur; /* handed out, freed by the next call */
	struct agg **slots;
	size_t n_slots, n_aggs;
	unsigned char key[crypto_shorthash_KEYBYTES];
	struct conf *conf_oldest, *conf_newest;
	size_t n_conf;
	uint64_t scan;
	uint64_t dropped; /* torn batch events dropped */
	cim_progress prog;
	cim_err broken;   /* non-zero: failed for good, with broken_err */
	cim_error broken_err;
	const atomic_bool *stop; /* a projection's stop flag, or NULL */
};

/* ---- small helpers ---------------------------------------------------------- */

int64_t
cimc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

cim_err
cimc_js_fail(cim_error *err, natsStatus s, jsErrCode je, const char *what)
{
	natsStatus last = NATS_OK;
	const char *why = nats_GetLastError(&last);

	/* The last error is per thread and outlives the call that set it:
	 * its text is about this failure only when its status is this one. */
	if (why == NULL || *why == '\0' || last != s)
		why = natsStatus_GetText(s);
	else if (why[0] == '(' && strstr(why, "): ") != NULL)
		why = strstr(why, "): ") + 3; /* nats.c's "(file:line): " */
	switch (s) {
	case NATS_NO_MEMORY:
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	case NATS_TIMEOUT:
		return cimc_fail(err, CIM_ERR_TIMEOUT, NULL,
				 "JetStream did not answer in time while %s",
				 what);
	case NATS_NO_RESPONDERS:
		return cimc_fail(err, CIM_ERR_UNAVAILABLE, NULL,
				 "JetStream is not available on the NATS "
				 "server (no responders) while %s",
				 what);
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_STALE_CONNECTION:
	case NATS_NO_SERVER:
	case NATS_IO_ERROR:
		return cimc_fail(err, CIM_ERR_CONNECTION, NULL,
				 "the NATS connection failed while %s: %s",
				 what, why);
	case NATS_NOT_PERMITTED:
		return cimc_fail(err, CIM_ERR_CONNECTION, NULL,
				 "the NATS server refused a permission while "
				 "%s: %s",
				 what, why);
	default:
		break;
	}
	if (je == JSNotEnabledErr || je == JSNotEnabledForAccountErr)
		return cimc_fail(err, CIM_ERR_UNAVAILABLE, NULL,
				 "JetStream is not enabled on the NATS server "
				 "(while %s)",
				 what);
	/* UNAVAILABLE promises "nothing was done, try again": only for what
	 * is known to be passing. A refused argument or anything unknown is
	 * a fault here or in the setup, which retrying does not mend. */
	return cimc_fail(err, CIM_ERR_INTERNAL, NULL,
			 "JetStream failed while %s: %s", what, why);
}

/* A subject pattern: dot-separated non-empty tokens without white space,
 * '*' and '>' only as whole tokens, '>' only last. */
static bool
pattern_ok(const char *p)
{
	if (*p == '\0')
		return false;
	for (;;) {
		size_t n = strcspn(p, ".");

		if (n == 0)
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] <= ' ' ||
			    ((p[i] == '*' || p[i] == '>') && n != 1))
				return false;
		if (p[n] == '\0')
			return true;
		if (p[0] == '>')
			return false;
		p += n + 1;
	}
}

/* Whether every subject the pattern p matches is matched by subject
 * filter f too (both valid, as pattern_ok says). */
static bool
subset_of(const char *p, const char *f)
{
	for (;;) {
		size_t pn = strcspn(p, "."), fn = strcspn(f, ".");

		if (fn == 1 && f[0] == '>')
			return true;
		if (pn == 1 && p[0] == '>')
			return false;
		if (!(fn == 1 && f[0] == '*') &&
		    (pn != fn || memcmp(p, f, pn) != 0))
			return false;
		if (p[pn] == '\0' || f[fn] == '\0')
			return p[pn] == '\0' && f[fn] == '\0';
		p += pn + 1;
		f += fn + 1;
	}
}

/* Whether the stream holds every subject the pattern matches. */
static bool
within_stream(const char *pattern, const jsStreamInfo *si)
{
	if (si->Config == NULL)
		return true;
	for (int i = 0; i < si->Config->SubjectsLen; i++)
		if (subset_of(pattern, si->Config->Subjects[i]))
			return true;
	return false;
}

/* Whether the pattern takes every event of each aggregate it touches: the
 * event subject is <prefix>.<type>.<id>.<event_type>, so the fourth token
 * must be '*' or '>', or a '>' must come before it. */
static bool
pattern_whole(const char *p)
{
	for (int tok = 1;; tok++) {
		size_t n = strcspn(p, ".");

		if (n == 1 && p[0] == '>')
			return true;
		if (tok == 4)
			return n == 1 && p[0] == '*' && p[1] == '\0';
		if (p[n] == '\0')
			return false;
		p += n + 1;
	}
}

/* ---- the aggregate table ----------------------------------------------------- */

static uint64_t
agg_hash(const cim_subscription *s, const char *type, size_t tlen,
	 const char *id, size_t ilen)
{
	crypto_generichash_state st;
	unsigned char out[8];
	unsigned char sep = 0;
	uint64_t h;

	/* Keyed BLAKE2b: type and id apart, so "a"+"bc" is not "ab"+"c". */
	crypto_generichash_init(&st, s->key, sizeof(s->key), sizeof(out));
	crypto_generichash_update(&st, (const unsigned char *)type, tlen);
	crypto_generichash_update(&st, &sep, 1);
	crypto_generichash_update(&st, (const unsigned char *)id, ilen);
	crypto_generichash_final(&st, out, sizeof(out));
	memcpy(&h, out, sizeof(h));
	return h;
}

static int
agg_grow(cim_subscription *s)
{
	size_t n = s->n_slots ? s->n_slots * 2 : MIN_SLOTS;
	struct agg **slots = calloc(n, sizeof(*slots));

	if (slots == NULL)
		return -1;
	for (size_t i = 0; i < s->n_slots; i++) {
		struct agg *a = s->slots[i], *next;

		for (; a != NULL; a = next) {
			next = a->chain;
			a->chain = slots[a->hash & (n - 1)];
			slots[a->hash & (n - 1)] = a;
		}
	}
	free(s->slots);
	s->slots = slots;
	s->n_slots = n;
	return 0;
}

/* The entry of type/id, made when missing; NULL when memory runs out. */
static struct agg *
agg_get(cim_subscription *s, const char *type, size_t tlen, const char *id,
	size_t ilen)
{
	uint64_t h = agg_hash(s, type, tlen, id, ilen);
	struct agg *a;

	if (s->n_slots > 0)
		for (a = s->slots[h & (s->n_slots - 1)]; a; a = a->chain)
			if (a->hash == h && strlen(a->type) == tlen &&
			    memcmp(a->type, type, tlen) == 0 &&
			    strlen(a->id) == ilen &&
			    memcmp(a->id, id, ilen) == 0)
				return a;
	if (s->n_aggs >= s->n_slots && agg_grow(s) == -1)
		return NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->type = malloc(tlen + ilen + 2)) == NULL) {
		free(a);
		return NULL;
	}
	memcpy(a->type, type, tlen);
	a->type[tlen] = '\0';
	a->id = a->type + tlen + 1;
	memcpy(a->id, id, ilen);
	a->id[ilen] = '\0';
	a->hash = h;
	a->chain = s->slots[h & (s->n_slots - 1)];
	s->slots[h & (s->n_slots - 1)] = a;
	s->n_aggs++;
	return a;
}

/* ---- the daemon's answers about batches ---------------------------------------- */

static void
conf_free(cim_subscription *s, struct conf *cf)
{
	if (cf == NULL)
		return;
	if (cf->older)
		cf->older->newer = cf->newer;
	else
		s->conf_oldest = cf->newer;
	if (cf->newer)
		cf->newer->older = cf->older;
	else
		s->conf_newest = cf->older;
	cf->agg->conf = NULL;
	s->n_conf--;
	free(cf);
}

/* 1: the daemon has the same CID at v; 0: another one (v was torn); -1:
 * not known. */
static int
conf_lookup(const struct agg *a, uint64_t v, const cim_cid *cid)
{
	const struct conf *cf = a->conf;

	if (cf == NULL || v < cf->from || v - cf->from >= cf->n)
		return -1;
	return cim_cid_equal(&cf->cid[v - cf->from], cid) ? 1 : 0;
}

/* Remembers a page of get as a's answer, keeping at most CONF_KEEP. */
static cim_err
conf_store(cim_subscription *s, struct agg *a, const cim_event_page *p,
	   cim_error *err)
{
	struct conf *cf;

	conf_free(s, a->conf);
	cf = malloc(sizeof(*cf) + p->n_events * sizeof(cf->cid[0]));
	if (cf == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	cf->agg = a;
	cf->from = p->events[0].version;
	cf->n = p->n_events;
	for (size_t i = 0; i < p->n_events; i++)
		if (p->events[i].version != cf->from + i ||
		    cim_cid_from_text(&cf->cid[i], p->events[i].cid) != 0) {
			free(cf);
			return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
					 "the daemon's get of %s/%s is not a "
					 "run of events with valid CIDs",
					 a->type, a->id);
		}
	cf->older = s->conf_newest;
	cf->newer = NULL;
	if (s->conf_newest)
		s->conf_newest->newer = cf;
	else
		s->conf_oldest = cf;
	s->conf_newest = cf;
	a->conf = cf;
	if (++s->n_conf > CONF_KEEP)
		conf_free(s, s->conf_oldest);
	return CIM_ERR_OK;
}

/* ---- the queue ------------------------------------------------------------------ */

static void
item_free(struct item *it)
{
	if (it == NULL)
		return;
	cimc_event_clear(&it->ev);
	free(it->why);
	if (it->e.slot != NULL)
		*it->e.slot = NULL; /* a request out for it no longer fills it */
	free((void *)it->e.enc);
	free(it->e.data_json);
	free(it->e.refused);
	free(it);
}

static void
enqueue(cim_subscription *s, struct item *it)
{
	it->next = NULL;
	it->prev = s->tail;
	if (s->tail)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
}

static void
unlink_item(cim_subscription *s, struct item *it)
{
	if (it->prev)
		it->prev->next = it->next;
	else
		s->head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		s->tail = it->prev;
	it->prev = it->next = NULL;
}

/* Drops the batch a was gathering: it was torn. Events waiting for the
 * daemon's word are not part of it and stay. */
static void
drop_held(cim_subscription *s, struct agg *a)
{
	struct item *it, *next;

	for (it = s->head; it != NULL; it = next) {
		next = it->next;
		if (it->agg == a && it->held && !it->ask) {
			unlink_item(s, it);
			item_free(it);
			s->dropped++;
		}
	}
}

/* The first event that may go out: not held, and no earlier event of its
 * aggregate still waiting. */
static struct item *
pick(cim_subscription *s)
{
	s->scan++;
	for (struct item *it = s->head; it != NULL; it = it->next) {
		if (it->agg == NULL)
			return it;
		if (it->agg->mark == s->scan)
			continue;
		if (!it->held)
			return it;
		it->agg->mark = s->scan;
	}
	return NULL;
}

/* ---- failing for good ---------------------------------------------------------------- */

static cim_err
sub_broken(cim_subscription *s, cim_error *err, cim_err code,
	   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Breaks the subscription: a message was taken from the consumer and could
 * not be queued, or messages were lost before they reached it. Going on
 * would pass an event by without a word, and safe_seq with it, so every
 * later call returns this error instead. */
static cim_err
sub_broken(cim_subscription *s, cim_error *err, cim_err code,
	   const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->broken = cimc_fail(&s->broken_err, code, NULL,
			      "%s; the subscription must be reopened (from "
			      "its safe_seq, %llu)",
			      msg,
			      (unsigned long long)(s->head != NULL
							   ? s->head->seq - 1
							   : s->last_seen));
	if (err != NULL)
		*err = s->broken_err;
	return s->broken;
}

/* ---- taking a message in ----------------------------------------------------------- */

/* Reads Cim-Batch "i/n" into *idx, *count; 0/0 when absent, malformed or
 * a batch of one. */
static void
batch_of(natsMsg *m, unsigned *idx, unsigned *count)
{
	const char *v = NULL;
	unsigned i, n;

	*idx = *count = 0;
	if (natsMsgHeader_Get(m, "Cim-Batch", &v) == NATS_OK && v != NULL &&
	    sscanf(v, "%u/%u", &i, &n) == 2 && i >= 1 && i <= n && n > 1) {
		*idx = i;
		*count = n;
	}
}

static char *
xstrndup(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* For a block that cannot be decoded: an event made of what the subject
 * and the headers say, so the caller can see where it is. */
static int
placeholder(struct item *it, natsMsg *m)
{
	const char *subj = natsMsg_GetSubject(m), *tok[4] = {"", "", "", ""};
	size_t len[4] = {0, 0, 0, 0};
	const char *v = NULL;
	cim_event *e = &it->ev;
	int n = 0;

	for (const char *p = subj; n < 4; n++) {
		tok[n] = p;
		len[n] = strcspn(p, ".");
		if (p[len[n]] == '\0') {
			n++;
			break;
		}
		p += len[n] + 1;
	}
	if (n < 4) { /* not <prefix>.<type>.<id>.<event_type> */
		tok[1] = tok[2] = tok[3] = "";
		len[1] = len[2] = len[3] = 0;
	}
	if (natsMsgHeader_Get(m, "Cim-Version", &v) == NATS_OK && v != NULL)
		e->version = strtoull(v, NULL, 10);
	e->aggregate_type = xstrndup(tok[1], len[1]);
	e->aggregate_id = xstrndup(tok[2], len[2]);
	e->event_type = xstrndup(tok[3], len[3]);
	e->event_id = cimc_strdup("");
	e->correlation_id = cimc_strdup("");
	e->causation_id = cimc_strdup("");
	e->timestamp = cimc_strdup("");
	e->metadata_json = cimc_strdup("{}");
	e->data_json = cimc_strdup("null");
	if (natsMsgHeader_Get(m, "Cim-Cid", &v) != NATS_OK || v == NULL)
		v = "";
	e->cid = cimc_strdup(v);
	e->seq = it->seq;
	if (!e->aggregate_type || !e->aggregate_id || !e->event_type ||
	    !e->event_id || !e->correlation_id || !e->causation_id ||
	    !e->timestamp || !e->metadata_json || !e->data_json || !e->cid)
		return -1;
	return 0;
}

static int
set_why(struct item *it, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
set_why(struct item *it, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(it->why);
	return (it->why = cimc_strdup(buf)) != NULL ? 0 : -1;
}

/* The block's CID, with the hash function the Cim-Cid header names (the
 * store's choice; blake2b-256 when the header is absent or names another);
 * a header that differs from it means the stored bytes changed. */
static int
hash_block(cim_subscription *s, struct item *it, natsMsg *m,
	   const uint8_t *p, size_t len)
{
	const char *hdr = NULL;
	uint64_t codec, mh = CIM_MH_BLAKE2B_256;
	cim_cid said;
	bool have = false;

	if (natsMsgHeader_Get(m, "Cim-Cid", &hdr) == NATS_OK && hdr != NULL &&
	    cim_cid_from_text(&said, hdr) == 0) {
		have = true;
		if (cim_cid_info(&said, &codec, &mh) != 0 ||
		    mh != CIM_MH_SHA2_256)
			mh = CIM_MH_BLAKE2B_256;
	}
	cim_cid_compute(&it->cid, CIM_CODEC_DAG_CBOR, mh, p, len);
	if (s->no_check || hdr == NULL)
		return 0;
	if (!have)
		return set_why(it, "hash_mismatch: the Cim-Cid header of the "
				   "event at seq %llu is not a CID (\"%.140s\")",
			       (unsigned long long)it->seq, hdr);
	if (!cim_cid_equal(&said, &it->cid)) {
		char got[CIM_CID_TEXT_MAX];

		cim_cid_to_text(&it->cid, got);
		return set_why(it, "hash_mismatch: the block at seq %llu "
				   "hashes to %s but was stored as %.140s: "
				   "its bytes changed",
			       (unsigned long long)it->seq, got, hdr);
	}
	return 0;
}

/* The block as the cim_event the caller sees, through the same JSON the
 * daemon's replies carry (encrypted data as null and "encrypted": true,
 * until the daemon decrypts it): 0, -1 when it is not an event (why says
 * so), -2 when memory ran out (which says nothing about the block). */
static int
make_event(struct item *it, natsMsg *m, const uint8_t *p, size_t len,
	   bool encrypted, char *why, size_t whysz)
{
	cbuf b = CBUF_INIT;
	json_error_t jerr;
	cim_error e;
	json_t *j;
	const char *key = NULL, *sig = NULL;
	int rc = -1;

	if (cim_event_write_json_as(&b, p, len, &it->cid, it->seq,
				    encrypted ? CIM_SHOW_DECRYPTED
					      : CIM_SHOW_STORED,
				    "null", 4, why, whysz) == -1) {
		/* cim_event_check passed already: only memory is left. */
		cbuf_free(&b);
		return strcmp(why, "out of memory") == 0 ? -2 : -1;
	}
	natsMsgHeader_Get(m, "Cim-Seal-Key", &key);
	natsMsgHeader_Get(m, "Cim-Seal", &sig);
	if (cim_event_json_add_seal(&b, key, sig) == -1 ||
	    cbuf_terminate(&b) == -1) {
		cbuf_free(&b);
		return -2;
	}
	j = cim_json_read((const char *)b.p, b.len, 0, &jerr);
	cbuf_free(&b);
	if (j == NULL) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -2;
		snprintf(why, whysz, "the block cannot be shown as JSON: %s",
			 jerr.text);
		return -1;
	}
	if (cimc_decode_event(j, &it->ev, &e) == CIM_ERR_OK)
		rc = 0;
	else if (e.code == CIM_ERR_NOMEM)
		rc = -2;
	else
		snprintf(why, whysz, "%.300s", e.message);
	json_decref(j);
	return rc;
}

/* Whether the n bytes at p are the subject token tok, and a token the
 * daemon accepts in a request subject at all. */
static bool
token_is(const char *tok, size_t tlen, const char *p, size_t n)
{
	if (n == 0 || tlen != n || memcmp(tok, p, n) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= ' ' || p[i] == '.' || p[i] == '*' ||
		    p[i] == '>' || p[i] == 0x7f)
			return false;
	return true;
}

/* The subject is <prefix>.<type>.<id>.<event_type>: the block must say the
 * same, as the pattern chose it by the subject and the daemon is asked
 * about it by the block's names. 0 when it does. */
static int
subject_matches(natsMsg *m, const cim_event_view *v)
{
	const char *subj = natsMsg_GetSubject(m), *tok[4];
	size_t len[4];
	const char *p = subj;

	if (p == NULL)
		return -1;
	for (int n = 0; n < 4; n++) {
		tok[n] = p;
		len[n] = strcspn(p, ".");
		if ((p[len[n]] == '\0') != (n == 3))
			return -1;
		p += len[n] + 1;
	}
	return token_is(tok[1], len[1], v->aggregate_type,
			v->aggregate_type_len) &&
			       token_is(tok[2], len[2], v->aggregate_id,
					v->aggregate_id_len)
		       ? 0
		       : -1;
}

/* With trusted keys: the seal the event carries must verify under its key
 * (bad_seal), and an event that ends an append (the last of a batch, or
 * one without Cim-Batch) must carry one from a trusted key (unsealed).
 * 0, or -1 when memory ran out. */
static int
check_seal(const cim_subscription *s, struct item *it, natsMsg *m)
{
	const char *key = NULL, *sig = NULL;
	uint8_t pk[CIM_KEY_BYTES];
	char why[200];
	bool trusted = false;

	natsMsgHeader_Get(m, "Cim-Seal-Key", &key);
	natsMsgHeader_Get(m, "Cim-Seal", &sig);
	if (key != NULL || sig != NULL) {
		if (cim_seal_check_headers(key, key ? strlen(key) : 0, sig,
					   sig ? strlen(sig) : 0, &it->cid, pk,
					   why, sizeof(why)) != 0) {
			it->seal_fail = true;
			return set_why(it, "bad_seal: %s/%s version %llu (seq "
					   "%llu): %s",
				       it->ev.aggregate_type, it->ev.aggregate_id,
				       (unsigned long long)it->ev.version,
				       (unsigned long long)it->seq, why);
		}
		for (size_t i = 0; i < s->nkeys && !trusted; i++)
			trusted = sodium_memcmp(pk, s->keys[i], CIM_KEY_BYTES) == 0;
	}
	if (trusted || (it->count != 0 && it->idx < it->count))
		return 0;
	it->seal_fail = true;
	return set_why(it, "unsealed: %s/%s version %llu (seq %llu) ends an "
			   "append but carries no seal from a trusted key",
		       it->ev.aggregate_type, it->ev.aggregate_id,
		       (unsigned long long)it->ev.version,
		       (unsigned long long)it->seq);
}

/* Whole aggregates: a batch's events are held until its last index comes
 * after its first did; anything else of that aggregate in between means
 * the batch was torn. */
static void
place_whole(cim_subscription *s, struct item *it)
{
	struct agg *a = it->agg;

	if (a->gather_count != 0 &&
	    !(it->count == a->gather_count && it->idx == a->gather_idx + 1 &&
	      it->ev.version == a->gather_version + 1)) {
		drop_held(s, a);
		a->gather_count = 0;
	}
	enqueue(s, it);
	if (it->count == 0)
		return;
	if (a->gather_count == 0 && it->idx > 1) {
		/* Its start is not in this subscription: it began inside the
		 * batch, or this is what is left of a torn batch whose first
		 * events were removed (their versions burned and stored
		 * again). Only the daemon can tell, as for part of
		 * aggregates; each such event is asked about on its own. */
		it->held = true;
		it->ask = true;
		return;
	}
	if (it->idx < it->count) {
		it->held = true;
		a->gather_idx = it->idx;
		a->gather_count = it->count;
		a->gather_version = it->ev.version;
		return;
	}
	/* The whole batch from index 1 is here: it was stored whole. Its
	 * seal is on its last event: a batch whose seal fails fails whole. */
	for (struct item *i = s->head; i != NULL; i = i->next)
		if (i->agg == a && i->held && !i->ask) {
			i->held = false;
			if (!it->seal_fail || i == it || i->why != NULL)
				continue;
			/* (without memory for the sentence it fails all the
			 * same: check_out says it shorter) */
			i->seal_fail = true;
			set_why(i, "unsealed: %s/%s version %llu (seq %llu) is in "
				   "an append whose last event, version %llu, "
				   "fails its seal check",
				a->type, a->id, (unsigned long long)i->ev.version,
				(unsigned long long)i->seq,
				(unsigned long long)it->ev.version);
		}
	a->gather_count = 0;
}

/* Part of aggregates: a batch's event is held until the daemon confirms
 * it; an answer already at hand decides at once. */
static void
place_part(cim_subscription *s, struct item *it)
{
	if (it->count != 0) {
		switch (conf_lookup(it->agg, it->ev.version, &it->cid)) {
		case 0:
			item_free(it);
			s->dropped++;
			return;
		case -1:
			it->held = true;
			it->ask = true;
			break;
		default:
			break;
		}
	}
	enqueue(s, it);
}

/* Takes one message from the consumer into the queue. Anything but
 * CIM_ERR_OK has broken the subscription (sub_broken). */
static cim_err
take(cim_subscription *s, natsMsg *m, cim_error *err)
{
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	int len = natsMsg_GetDataLength(m);
	jsMsgMetaData *meta = NULL;
	uint64_t seq, pending;
	cim_event_view v;
	struct item *it;
	char why[400] = "";
	const uint8_t *enc = NULL;
	size_t enc_len = 0;
	bool encrypted = false;
	int rc;

	if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
		return sub_broken(s, err, CIM_ERR_INTERNAL,
				  "a message on %s came without its stream "
				  "metadata, so its place in the stream is "
				  "unknown",
				  natsMsg_GetSubject(m));
	seq = meta->Sequence.Stream;
	pending = meta->NumPending;
	jsMsgMetaData_Destroy(meta);
	if (s->stop_at_end && seq > s->prog.end_seq) {
		s->caught_up = true; /* stored after the open: not ours */
		return CIM_ERR_OK;
	}
	if (s->stop_at_end && seq == s->prog.end_seq)
		s->caught_up = true;
	else if (s->stop_at_end && pending == 0)
		s->end_hint = true; /* only a hint: see the top */
	if ((it = calloc(1, sizeof(*it))) == NULL)
		goto nomem;
	it->seq = seq;
	if (p == NULL || len < 0)
		len = 0;
	rc = cim_event_check(p, (size_t)len, &v, why, sizeof(why)) != 0 ? -1
									  : 0;
	if (rc == 0 && hash_block(s, it, m, p, (size_t)len) != 0)
		goto nomem; /* only set_why fails there */
	if (rc == 0)
		encrypted = cim_event_encrypted(&v, &enc, &enc_len);
	if (rc == 0)
		rc = make_event(it, m, p, (size_t)len, encrypted, why,
				sizeof(why));
	if (rc == -2)
		goto nomem;
	if (rc == 0 && encrypted && !s->no_decrypt && it->why == NULL) {
		/* its data is asked of the daemon before it is handed out */
		uint8_t *copy = malloc(enc_len);
		if (copy == NULL)
			goto nomem;
		memcpy(copy, enc, enc_len);
		it->e = (cimc_enc){.type = it->ev.aggregate_type,
				   .id = it->ev.aggregate_id,
				   .event_id = it->ev.event_id,
				   .event_id_len = it->ev.event_id_len,
				   .enc = copy,
				   .len = enc_len};
	}
	if (rc == 0 && subject_matches(m, &v) != 0) {
		/* Handed out alone like an undecodable block: which
		 * aggregate it belongs to is in doubt. */
		it->agg = NULL;
		if (set_why(it, "subject_mismatch: the block at seq %llu is "
				"%.*s/%.*s version %llu but was stored on %s",
			    (unsigned long long)seq, (int)v.aggregate_type_len,
			    v.aggregate_type, (int)v.aggregate_id_len,
			    v.aggregate_id, (unsigned long long)it->ev.version,
			    natsMsg_GetSubject(m)) != 0)
			goto nomem;
		enqueue(s, it);
		goto queued;
	}
	if (rc != 0) {
		/* Undecodable: handed out as a failed check, alone. */
		cimc_event_clear(&it->ev);
		if (placeholder(it, m) != 0 ||
		    set_why(it, "undecodable: the block at seq %llu (%s) is "
				"not an event: %s",
			    (unsigned long long)seq, natsMsg_GetSubject(m),
			    why) != 0)
			goto nomem;
		enqueue(s, it);
		goto queued;
	}
	batch_of(m, &it->idx, &it->count);
	if (s->nkeys > 0 && !s->no_check && it->why == NULL &&
	    check_seal(s, it, m) != 0)
		goto nomem;
	it->agg = agg_get(s, v.aggregate_type, v.aggregate_type_len,
			  v.aggregate_id, v.aggregate_id_len);
	if (it->agg == NULL)
		goto nomem;
	if (s->whole)
		place_whole(s, it);
	else
		place_part(s, it);
queued:
	/* Only now is the message in hand: safe_seq may pass it. */
	if (seq > s->last_seen)
		s->last_seen = seq;
	return CIM_ERR_OK;
nomem:
	item_free(it);
	return sub_broken(s, err, CIM_ERR_NOMEM,
			  "out of memory while taking in the event at seq %llu",
			  (unsigned long long)seq);
}

/* ---- asking the daemon about batches ------------------------------------------------ */

/* Asks get about a's held events, and delivers or drops those it answers. */
static cim_err
ask(cim_subscription *s, struct agg *a, cim_error *err)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	cim_event_page *page = NULL;
	struct item *it, *next;
	bool waiting = false;
	uint64_t head;
	cim_err rc;

	for (it = s->head; it != NULL; it = it->next)
		if (it->agg == a && it->ask) {
			uint64_t end = it->ev.version + (it->count - it->idx);

			if (it->ev.version < lo)
				lo = it->ev.version;
			if (end > hi)
				hi = end;
		}
	if (lo == UINT64_MAX)
		return CIM_ERR_OK;
	if (hi - lo >= ASK_MAX)
		hi = lo + ASK_MAX - 1;
	a->ask_at_ms = cimc_now_ms() + ASK_EVERY_MS;
	if ((rc = cim_get(s->c, a->type, a->id, lo, (unsigned)(hi - lo + 1),
			  &page, err)) != CIM_ERR_OK)
		return rc;
	if (page->version < lo || page->n_events == 0 ||
	    page->events[0].version != lo) {
		/* The head has not reached it yet: ask again later. */
		cim_event_page_destroy(page);
		return CIM_ERR_OK;
	}
	head = page->version;
	rc = conf_store(s, a, page, err);
	cim_event_page_destroy(page);
	if (rc != CIM_ERR_OK)
		return rc;
	for (it = s->head; it != NULL; it = next) {
		next = it->next;
		if (it->agg != a || !it->ask)
			continue;
		switch (conf_lookup(a, it->ev.version, &it->cid)) {
		case 1:
			it->held = it->ask = false;
			break;
		case 0:
			unlink_item(s, it);
			item_free(it);
			s->dropped++;
			break;
		default:
			waiting = true;
		}
	}
	/* A page cut short leaves committed events unanswered: go on at
	 * once rather than in ASK_EVERY_MS. */
	if (waiting && a->conf->from + a->conf->n <= head)
		a->ask_at_ms = 0;
	return CIM_ERR_OK;
}

/* Asks about every aggregate with events waiting for the daemon whose time
 * has come (all of them when force). A stop asked for by a projection
 * ends the round early: each ask may take the client's timeout. */
static cim_err
confirm(cim_subscription *s, bool force, cim_error *err)
{
	int64_t now = cimc_now_ms();
	uint64_t scan = ++s->scan;
	cim_err rc;

	for (;;) {
		struct item *it;

		if (s->stop != NULL && atomic_load(s->stop))
			return CIM_ERR_OK;
		/* ask() frees items, so the walk starts over after each. */
		for (it = s->head; it != NULL; it = it->next)
			if (it->ask && it->agg->mark != scan)
				break;
		if (it == NULL)
			return CIM_ERR_OK;
		it->agg->mark = scan;
		if (force || it->agg->ask_at_ms <= now)
			if ((rc = ask(s, it->agg, err)) != CIM_ERR_OK)
				return rc;
	}
}

/* When the next ask is due, as a wait from now in ms; -1: none. */
static int64_t
next_ask_in(const cim_subscription *s)
{
	int64_t now = cimc_now_ms(), best = -1;

	for (const struct item *it = s->head; it != NULL; it = it->next)
		if (it->ask) {
			int64_t in = it->agg->ask_at_ms - now;

			if (in < 0)
				in = 0;
			if (best < 0 || in < best)
				best = in;
		}
	return best;
}

static bool
agg_holds(const cim_subscription *s, const struct agg *a)
{
	for (const struct item *it = s->head; it != NULL; it = it->next)
		if (it->agg == a && it->held)
			return true;
	return false;
}

/* Held events are looked up in the stream now and then: one that is gone
 * was part of a torn batch the daemon removed, and nothing else would
 * ever release it (no later event of its aggregate may come), so it is
 * dropped rather than holding the safe position back for ever. */
static cim_err
sweep(cim_subscription *s, cim_error *err)
{
	int64_t now = cimc_now_ms();
	struct item *it, *next;

	for (it = s->head; it != NULL; it = next) {
		natsMsg *m = NULL;
		jsErrCode je = 0;
		natsStatus st;
		struct agg *a = it->agg;

		next = it->next;
		if (!it->held)
			continue;
		if (it->recheck_ms == 0)
			it->recheck_ms = now + STALE_MS;
		if (it->recheck_ms > now)
			continue;
		it->recheck_ms = now + STALE_MS;
		st = js_GetMsg(&m, s->js, s->stream, it->seq, NULL, &je);
		natsMsg_Destroy(m);
		if (st == NATS_OK)
			continue;
		if (st != NATS_NOT_FOUND && je != JSNoMessageFoundErr)
			return cimc_js_fail(err, st, je,
					    "looking up a held event");
		unlink_item(s, it);
		item_free(it);
		s->dropped++;
		if (!agg_holds(s, a))
			a->gather_count = 0;
	}
	return CIM_ERR_OK;
}

/* ---- handing out ---------------------------------------------------------------------- */

/* The prev and version checks of an event being handed out, and the
 * aggregate's entry moved on. */
static cim_err
check_out(cim_subscription *s, struct item *it, cim_error *err)
{
	const cim_event *e = &it->ev;
	struct agg *a = it->agg;
	char last[CIM_CID_TEXT_MAX];

	if (it->seal_fail) {
		/* Its bytes are sound, its seal is not: the chain goes on
		 * from it. */
		if (e->version > a->last_version) {
			a->last_version = e->version;
			a->last_cid = it->cid;
			a->cid_known = true;
		}
		return cimc_fail(err, CIM_ERR_CHECK_FAILED, NULL, "%s",
				 it->why ? it->why
					 : "unsealed: its append's seal fails");
	}
	if (it->why != NULL) {
		/* Its own bytes changed: its CID is unknown. An old version
		 * does not move the aggregate back, or a second copy of a
		 * later one would pass the order check. */
		if (a != NULL && e->version > a->last_version) {
			a->last_version = e->version;
			a->cid_known = false;
		}
		return cimc_fail(err, CIM_ERR_CHECK_FAILED, NULL, "%s",
				 it->why);
	}
	if (!s->no_check && a->last_version != 0 &&
	    e->version <= a->last_version)
		return cimc_fail(err, CIM_ERR_CHECK_FAILED, NULL,
				 "version_order: %s/%s version %llu (seq %llu) "
				 "comes after version %llu: versions of one "
				 "aggregate must increase",
				 a->type, a->id,
				 (unsigned long long)e->version,
				 (unsigned long long)it->seq,
				 (unsigned long long)a->last_version);
	if (!s->no_check && s->whole && a->last_version != 0 &&
	    e->version > a->last_version + 1) {
		/* Every event of the aggregate passes through a whole
		 * pattern, so a version skipped was removed from the stream
		 * (or never stored). The chain goes on from this one. */
		uint64_t was = a->last_version;

		a->last_version = e->version;
		a->last_cid = it->cid;
		a->cid_known = true;
		return cimc_fail(err, CIM_ERR_CHECK_FAILED, NULL,
				 "version_gap: %s/%s version %llu (seq %llu) "
				 "comes after version %llu: the versions "
				 "between are missing",
				 a->type, a->id,
				 (unsigned long long)e->version,
				 (unsigned long long)it->seq,
				 (unsigned long long)was);
	}
	if (!s->no_check && a->last_version != 0 && a->cid_known &&
	    e->version == a->last_version + 1) {
		cim_cid_to_text(&a->last_cid, last);
		if (e->prev == NULL || strcmp(e->prev, last) != 0) {
			/* Its own bytes are sound: the chain goes on from it. */
			a->last_version = e->version;
			a->last_cid = it->cid;
			return cimc_fail(err, CIM_ERR_CHECK_FAILED, NULL,
					 "broken_link: %s/%s version %llu "
					 "(seq %llu) links to %s, but version "
					 "%llu is %s",
					 a->type, a->id,
					 (unsigned long long)e->version,
					 (unsigned long long)it->seq,
					 e->prev ? e->prev : "nothing",
					 (unsigned long long)(e->version - 1),
					 last);
		}
	}
	a->last_version = e->version;
	a->last_cid = it->cid;
	a->cid_known = true;
	return CIM_ERR_OK;
}

/* ---- encrypted data ------------------------------------------------------------------ */

#define TAKE_AHEAD 1000 /* messages taken in before asking the daemon */

/* Takes in what the consumer has buffered (up to TAKE_AHEAD), so that one
 * request serves many events. */
static cim_err
take_ahead(cim_subscription *s, cim_error *err)
{
	for (int i = 0; i < TAKE_AHEAD && !s->caught_up; i++) {
		natsMsg *m = NULL;
		int msgs = 0;
		cim_err rc;

		if (natsSubscription_GetPending(s->sub, &msgs, NULL) != NATS_OK ||
		    msgs == 0 || natsSubscription_NextMsg(&m, s->sub, 1) != NATS_OK)
			break;
		rc = take(s, m, err);
		natsMsg_Destroy(m);
		if (rc != CIM_ERR_OK)
			return rc;
	}
	return CIM_ERR_OK;
}

/* The queued items whose data waits for the daemon, in queue order, in a
 * new array (*n of them); NULL when memory runs out. */
static cimc_enc **
waiting(cim_subscription *s, size_t *n)
{
	size_t k = 0;
	cimc_enc **arr;

	for (struct item *it = s->head; it != NULL; it = it->next)
		k += it->e.enc != NULL;
	if ((arr = calloc(k ? k : 1, sizeof(*arr))) == NULL)
		return NULL;
	*n = 0;
	for (struct item *it = s->head; it != NULL; it = it->next)
		if (it->e.enc != NULL)
			arr[(*n)++] = &it->e;
	return arr;
}

/* Items the daemon answered get their data (or fail their check). */
static cim_err
take_answers(cim_subscription *s, cim_error *err)
{
	cim_err rc = CIM_ERR_OK;

	for (struct item *it = s->head; it != NULL; it = it->next) {
		cimc_enc *e = &it->e;

		if (e->enc == NULL || !e->done)
			continue;
		free((void *)e->enc);
		e->enc = NULL;
		if (e->data_json != NULL) {
			free(it->ev.data_json);
			it->ev.data_json = e->data_json;
			e->data_json = NULL;
			it->ev.forgotten = e->forgotten;
			it->ev.encrypted = !e->forgotten;
		} else if (set_why(it, "undecryptable: the data of %s/%s version %llu (seq "
				       "%llu) does not decrypt: %.300s",
				   it->ev.aggregate_type, it->ev.aggregate_id,
				   (unsigned long long)it->ev.version,
				   (unsigned long long)it->seq,
				   e->refused ? e->refused : "") != 0) {
			rc = cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
		}
		free(e->refused);
		e->refused = NULL;
	}
	return rc;
}

/* The data of it, an encrypted event about to be handed out (through the
 * daemon, client/decrypt.c): the reply of the request out, if any; then,
 * when it is still missing, what the consumer has buffered is taken in
 * and every waiting item asked for. Before returning, the next batch is
 * asked without waiting, so that the daemon decrypts it while the caller
 * handles this one. */
static cim_err
plain_data(cim_subscription *s, struct item *it, cim_error *err)
{
	cimc_enc **arr;
	size_t n;
	cim_err rc = CIM_ERR_OK;

	if (s->asking) {
		s->asking = false;
		rc = cimc_decrypt_wait(s->c, &s->ask, err);
		if (rc == CIM_ERR_OK)
			rc = take_answers(s, err);
		if (rc != CIM_ERR_OK)
			return rc;
	}
	if (it->e.enc != NULL) {
		if ((rc = take_ahead(s, err)) != CIM_ERR_OK)
			return rc;
		if ((arr = waiting(s, &n)) == NULL)
			return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
		rc = cimc_decrypt(s->c, arr, n, err);
		free(arr);
		cim_err rc2 = take_answers(s, err);
		if (rc == CIM_ERR_OK)
			rc = rc2;
		if (rc != CIM_ERR_OK)
			return rc;
	}
	/* the read-ahead: a failure here is met again when it counts */
	cim_error ignored;
	if (take_ahead(s, &ignored) == CIM_ERR_OK && (arr = waiting(s, &n)) != NULL) {
		if (n > 0 && cimc_decrypt_send(s->c, arr, n, &s->ask, &ignored) == CIM_ERR_OK)
			s->asking = s->ask.n > 0;
		free(arr);
	}
	return CIM_ERR_OK;
}

static cim_err
hand_out(cim_subscription *s, struct item *it, const cim_event **ev,
	 cim_error *err)
{
	cim_err rc;

	if (it->e.enc != NULL && (rc = plain_data(s, it, err)) != CIM_ERR_OK)
		return rc; /* it stays first: the next call asks again */
	unlink_item(s, it);
	s->cur = it;
	*ev = &it->ev;
	rc = check_out(s, it, err);
	s->prog.seq = it->seq;
	if (rc == CIM_ERR_OK)
		s->prog.delivered++;
	else
		s->prog.check_failures++;
	return rc;
}

/* ---- the end of a replay ------------------------------------------------------------- */

static cim_err next_stored(cim_subscription *s, uint64_t seq, const char *filter,
			   bool *found, uint64_t *got, int64_t *ts, cim_error *err);

/* Whether to look for the end now: nothing buffered, and a hint, or a
 * quiet spell (again only once what was found last has come, or a while
 * later). */
static bool
end_due(cim_subscription *s)
{
	int msgs = 0;

	if (!s->end_hint && !s->quiet)
		return false;
	if (natsSubscription_GetPending(s->sub, &msgs, NULL) != NATS_OK ||
	    msgs > 0)
		return false;
	return s->end_hint || s->end_next == 0 ||
	       s->last_seen >= s->end_next ||
	       cimc_now_ms() - s->end_asked_ms >= WAIT_SLICE_MS;
}

/* Sets caught_up when the stream holds no match after the last message
 * taken up to end_seq; else remembers the next one it holds. */
static cim_err
check_end(cim_subscription *s, cim_error *err)
{
	uint64_t from = s->last_seen + 1, got = 0;
	int64_t ts;
	bool found;
	cim_err rc;

	s->end_hint = s->quiet = false;
	if (from < s->from_seq)
		from = s->from_seq;
	if (from > s->prog.end_seq) {
		s->caught_up = true;
		return CIM_ERR_OK;
	}
	s->end_asked_ms = cimc_now_ms();
	if ((rc = next_stored(s, from, s->pattern, &found, &got, &ts, err)) !=
	    CIM_ERR_OK)
		return rc;
	if (!found || got > s->prog.end_seq)
		s->caught_up = true;
	else
		s->end_next = got;
	return CIM_ERR_OK;
}

/* ---- the public calls ------------------------------------------------------------------ */

static cim_err
sub_fail(natsStatus st, cim_error *err)
{
	switch (st) {
	case NATS_CONNECTION_CLOSED:
	case NATS_INVALID_SUBSCRIPTION:
		return cimc_fail(err, CIM_ERR_CONNECTION, NULL,
				 "the subscription's NATS connection is "
				 "closed");
	default:
		return cimc_js_fail(err, st, 0, "reading the event stream");
	}
}

cim_err
cim_subscription_next(cim_subscription *s, int64_t timeout_ms,
		      const cim_event **ev, cim_error *err)
{
	int64_t deadline, now;
	bool again = false;
	cim_err rc;

	cimc_clear(err);
	if (ev == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "ev",
				 "ev must not be NULL");
	*ev = NULL;
	if (s == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "subscription",
				 "subscription must not be NULL");
	item_free(s->cur);
	s->cur = NULL;
	if (s->broken != CIM_ERR_OK) {
		if (err != NULL)
			*err = s->broken_err;
		return s->broken;
	}
	now = cimc_now_ms();
	/* Saturated: a huge timeout waits for ever rather than wrapping
	 * into the past. */
	deadline = timeout_ms < 0 || timeout_ms > INT64_MAX - now
			   ? INT64_MAX
			   : now + timeout_ms;
	for (;;) {
		struct item *it = pick(s);
		natsMsg *m = NULL;
		natsStatus st;
		int64_t wait, ask_in;
		int msgs = 0;

		if (it != NULL)
			return hand_out(s, it, ev, err);
		if (s->caught_up) {
			if (!s->final_asked) {
				/* What waits for the daemon at the end gets
				 * one more answer; what is not confirmed then
				 * was not stored whole at the open. */
				s->final_asked = true;
				if ((rc = confirm(s, true, err)) != CIM_ERR_OK) {
					s->final_asked = false;
					return rc;
				}
				continue;
			}
			return CIM_ERR_OK; /* the end */
		}
		/* Checked on every turn but the first (a timeout of 0 still
		 * polls): a run of messages that are all held must not keep
		 * the caller past its timeout. */
		if ((again && cimc_now_ms() >= deadline) ||
		    (s->stop != NULL && atomic_load(s->stop)))
			goto timeout;
		again = true;
		if ((rc = sweep(s, err)) != CIM_ERR_OK ||
		    (rc = confirm(s, false, err)) != CIM_ERR_OK)
			return rc;
		if ((it = pick(s)) != NULL)
			return hand_out(s, it, ev, err);
		if (s->stop_at_end && end_due(s)) {
			if ((rc = check_end(s, err)) != CIM_ERR_OK)
				return rc;
			if (s->caught_up)
				continue;
		}

		wait = deadline == INT64_MAX ? WAIT_SLICE_MS
					     : deadline - cimc_now_ms();
		if (wait > WAIT_SLICE_MS)
			wait = WAIT_SLICE_MS;
		if (s->stop_at_end && wait > END_QUIET_MS)
			wait = END_QUIET_MS;
		if ((ask_in = next_ask_in(s)) >= 0 && ask_in < wait)
			wait = ask_in;
		if (wait <= 0) {
			/* nats.c refuses a zero timeout: poll what is
			 * buffered instead. */
			if (natsSubscription_GetPending(s->sub, &msgs, NULL) !=
				    NATS_OK ||
			    msgs == 0)
				continue;
			wait = 1;
		}
		st = natsSubscription_NextMsg(&m, s->sub, wait);
		if (st == NATS_OK) {
			s->quiet = false;
			rc = take(s, m, err);
			natsMsg_Destroy(m);
			if (rc != CIM_ERR_OK)
				return rc;
			continue;
		}
		switch (st) {
		case NATS_TIMEOUT:
			s->quiet = true;
			break;
		case NATS_SLOW_CONSUMER:
			/* nats.c dropped messages its buffer had no room
			 * for, and the ordered consumer (nats.c 3.4.1) does
			 * not start over after a drop on the client's side:
			 * they would be missing without a word. */
			return sub_broken(s, err, CIM_ERR_UNAVAILABLE,
					  "events were dropped by the NATS "
					  "client (its buffer for the "
					  "subscription overflowed)");
		case NATS_MISMATCH:
		case NATS_MISSED_HEARTBEAT:
			/* The ordered consumer starts over by itself after
			 * the last message it handed us. */
			break;
		default:
			return sub_fail(st, err);
		}
	}
timeout:
	return cimc_fail(err, CIM_ERR_TIMEOUT, NULL,
			 "no event came within %lld ms", (long long)timeout_ms);
}

void
cim_subscription_progress(const cim_subscription *s, cim_progress *p)
{
	if (p == NULL)
		return;
	if (s == NULL) {
		memset(p, 0, sizeof(*p));
		return;
	}
	*p = s->prog;
	/* The queue is in stream order: what waits first bounds it. */
	p->safe_seq = s->head != NULL ? s->head->seq - 1 : s->last_seen;
}

uint64_t
cimc_subscription_dropped(const cim_subscription *s)
{
	return s->dropped;
}

void
cimc_subscription_set_stop(cim_subscription *s, const atomic_bool *stop)
{
	s->stop = stop;
}

cim_err
cimc_subscription_set_pending_limits(cim_subscription *s, int msgs,
				     int bytes, cim_error *err)
{
	natsStatus st = natsSubscription_SetPendingLimits(s->sub, msgs, bytes);

	return st == NATS_OK ? CIM_ERR_OK
			     : cimc_js_fail(err, st, 0,
					    "sizing the consumer's buffer");
}

void
cim_subscription_close(cim_subscription *s)
{
	struct item *it, *next;

	if (s == NULL)
		return;
	if (s->asking)
		cimc_decrypt_drop(&s->ask);
	if (s->sub != NULL) {
		natsSubscription_Unsubscribe(s->sub);
		natsSubscription_Destroy(s->sub);
	}
	jsCtx_Destroy(s->js);
	free(s->keys);
	item_free(s->cur);
	for (it = s->head; it != NULL; it = next) {
		next = it->next;
		item_free(it);
	}
	while (s->conf_oldest != NULL)
		conf_free(s, s->conf_oldest);
	for (size_t i = 0; i < s->n_slots; i++) {
		struct agg *a = s->slots[i], *n;

		for (; a != NULL; a = n) {
			n = a->chain;
			free(a->type);
			free(a);
		}
	}
	free(s->slots);
	free(s->pattern);
	free(s->stream);
	free(s);
}

static cim_err
check_options(const cim_subscribe_options *o, cim_error *err)
{
	cim_err rc;

	if (o->pattern != NULL && !pattern_ok(o->pattern))
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "pattern",
				 "pattern \"%.200s\" is not a subject pattern "
				 "(dot-separated tokens; '*' and '>' only as "
				 "whole tokens, '>' only last)",
				 o->pattern);
	if (o->stream != NULL &&
	    (rc = cimc_check_token(o->stream, "stream", err)) != CIM_ERR_OK)
		return rc;
	if (o->n_trusted_keys > 0 && o->trusted_keys == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "trusted_keys",
				 "trusted_keys must not be NULL when "
				 "n_trusted_keys > 0");
	for (size_t i = 0; i < o->n_trusted_keys; i++) {
		uint8_t pk[CIM_KEY_BYTES];

		if (o->trusted_keys[i] == NULL ||
		    cim_pubkey_from_text(pk, o->trusted_keys[i]) != 0)
			return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
					 "trusted_keys",
					 "trusted_keys[%zu] is not a public-key "
					 "text (z6Mk..., 48 characters)", i);
	}
	switch (o->start) {
	case CIM_START_BEGIN:
	case CIM_START_NOW:
	case CIM_START_SEQ:
		break;
	case CIM_START_TIME:
		if (o->start_time_ns < 0)
			return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
					 "start_time_ns",
					 "start_time_ns must not be negative");
		break;
	default:
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "start",
				 "start is not one of the cim_start values");
	}
	return CIM_ERR_OK;
}

/* Go's RFC 3339 time (UTC, "Z", 0 to 9 fraction digits) in ns since the
 * epoch; -1 when it is not one. */
static int
parse_time(const char *t, int64_t *ns)
{
	struct tm tm = {0};
	int64_t frac = 0, scale = 1000000000;
	int n = 0;

	if (t == NULL ||
	    sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	t += n;
	if (*t == '.')
		for (t++; *t >= '0' && *t <= '9'; t++)
			if (scale > 1) {
				scale /= 10;
				frac += (*t - '0') * scale;
			}
	if (*t != 'Z')
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ns = (int64_t)timegm(&tm) * 1000000000 + frac;
	return 0;
}

/* The first message of the stream at or after seq on a subject matching
 * filter (JetStream's stream message get with next_by_subj): *found, and
 * then its sequence and time. */
static cim_err
next_stored(cim_subscription *s, uint64_t seq, const char *filter,
	    bool *found, uint64_t *got, int64_t *ts, cim_error *err)
{
	char subject[512], *body;
	const json_t *msg, *e;
	natsMsg *reply = NULL;
	json_t *j = NULL;
	natsStatus st;
	cim_err rc = CIM_ERR_OK;

	*found = false;
	snprintf(subject, sizeof(subject), "%s.STREAM.MSG.GET.%s",
		 s->c->js_api, s->stream);
	j = json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "next_by_subj",
		      filter);
	body = j != NULL ? cim_json_text(j) : NULL;
	json_decref(j);
	if (body == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	st = natsConnection_RequestString(&reply, s->c->nc, subject, body,
					  s->c->timeout_ms);
	free(body);
	if (st != NATS_OK)
		return cimc_js_fail(err, st, 0, "looking up a stored message");
	j = json_loadb(natsMsg_GetData(reply),
		       (size_t)natsMsg_GetDataLength(reply), 0, NULL);
	natsMsg_Destroy(reply);
	msg = json_object_get(j, "message");
	e = json_object_get(j, "error");
	if (json_is_object(msg) &&
	    json_is_integer(json_object_get(msg, "seq")) &&
	    parse_time(json_string_value(json_object_get(msg, "time")), ts) ==
		    0) {
		*got = (uint64_t)json_integer_value(json_object_get(msg, "seq"));
		*found = true;
	} else if (!json_is_object(e) ||
		   json_integer_value(json_object_get(e, "code")) != 404) {
		const char *d = json_string_value(
			json_object_get(e, "description"));

		rc = cimc_fail(err, CIM_ERR_UNAVAILABLE, NULL,
			       "JetStream's answer to a message lookup in "
			       "\"%s\" is not understood: %s",
			       s->stream, d != NULL ? d : "no message");
	}
	json_decref(j);
	return rc;
}

/* The first sequence stored at or after t (last + 1 when none is), by a
 * binary search over the stored messages' times. nats-server 2.9.10 with
 * file storage sometimes starts a DeliverByStartTime consumer past every
 * message (measured: 3 times in 40), so the time is never handed to it. */
static cim_err
seq_from_time(cim_subscription *s, uint64_t first, uint64_t last, int64_t t,
	      uint64_t *out, cim_error *err)
{
	uint64_t lo = first > 0 ? first : 1, hi = last + 1;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2, got;
		int64_t ts;
		bool found;
		cim_err rc = next_stored(s, mid, ">", &found, &got, &ts, err);

		if (rc != CIM_ERR_OK)
			return rc;
		if (!found || ts >= t)
			hi = mid;
		else
			lo = got + 1 < hi ? got + 1 : hi;
	}
	*out = lo;
	return CIM_ERR_OK;
}

/* The consumer: ordered (no acks, in stream order, restarted by nats.c
 * after a gap), from where the options say. */
static cim_err
open_consumer(cim_subscription *s, const cim_subscribe_options *o,
	      cim_error *err)
{
	jsStreamInfo *si = NULL;
	uint64_t first, start = 0;
	jsSubOptions so;
	jsErrCode je = 0;
	natsStatus st;
	cim_err rc;

	if ((st = cimc_jetstream(s->c, &s->js)) != NATS_OK)
		return cimc_js_fail(err, st, 0, "opening JetStream");
	st = js_GetStreamInfo(&si, s->js, s->stream, NULL, &je);
	if (st == NATS_NOT_FOUND || je == JSStreamNotFoundErr)
		return cimc_fail(err, CIM_ERR_NOT_FOUND, "stream",
				 "the stream \"%s\" does not exist", s->stream);
	if (st != NATS_OK)
		return cimc_js_fail(err, st, je, "reading the stream's info");
	if (!within_stream(s->pattern, si)) {
		jsStreamInfo_Destroy(si);
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "pattern",
				 "pattern \"%.200s\" is outside the subjects of "
				 "stream %s (events.> by default)", s->pattern,
				 s->stream);
	}
	s->prog.end_seq = si->State.LastSeq;
	first = si->State.FirstSeq;
	jsStreamInfo_Destroy(si);

	jsSubOptions_Init(&so);
	so.Stream = s->stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverAll;
	switch (o->start) {
	case CIM_START_SEQ:
		start = o->start_seq;
		break;
	case CIM_START_TIME:
		if ((rc = seq_from_time(s, first, s->prog.end_seq,
					o->start_time_ns, &start, err)))
			return rc;
		break;
	case CIM_START_NOW:
		so.Config.DeliverPolicy = js_DeliverNew;
		break;
	default:
		break;
	}
	if (start > 1) {
		so.Config.DeliverPolicy = js_DeliverByStartSequence;
		so.Config.OptStartSeq = start;
	}
	st = js_SubscribeSync(&s->sub, s->js, s->pattern, NULL, &so, &je);
	if (st != NATS_OK) {
		s->sub = NULL;
		return cimc_js_fail(err, st, je, "creating the consumer");
	}
	if ((st = natsSubscription_SetPendingLimits(s->sub, PENDING_MSGS,
						    PENDING_BYTES)) != NATS_OK)
		return cimc_js_fail(err, st, 0, "sizing the consumer's buffer");
	if (!s->stop_at_end)
		return CIM_ERR_OK;
	if (s->prog.end_seq == 0 || o->start == CIM_START_NOW ||
	    start > s->prog.end_seq) {
		s->caught_up = true;
		return CIM_ERR_OK;
	}
	/* No match stored from the start to the end: the replay ends at
	 * once, as no message will come to say so. */
	s->from_seq = start > first ? start : first;
	return check_end(s, err);
}

cim_err
cim_subscribe(cim_client *c, const cim_subscribe_options *o,
	      cim_subscription **out, cim_error *err)
{
	static const cim_subscribe_options none;
	cim_subscription *s;
	cim_err rc;

	cimc_clear(err);
	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	*out = NULL;
	if (c == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "client",
				 "client must not be NULL");
	if (o == NULL)
		o = &none;
	if ((rc = check_options(o, err)) != CIM_ERR_OK)
		return rc;
	if (sodium_init() < 0)
		return cimc_fail(err, CIM_ERR_INTERNAL, NULL,
				 "libsodium cannot be initialised");
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->pattern = cimc_strdup(o->pattern ? o->pattern
						 : DEFAULT_PATTERN)) == NULL ||
	    (s->stream = cimc_strdup(o->stream ? o->stream
					       : DEFAULT_STREAM)) == NULL) {
		cim_subscription_close(s);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	s->c = c;
	s->whole = pattern_whole(s->pattern);
	s->stop_at_end = o->stop_at_end;
	s->no_check = o->no_check;
	s->no_decrypt = o->no_decrypt;
	if (o->n_trusted_keys > 0) {
		if ((s->keys = calloc(o->n_trusted_keys, sizeof(*s->keys))) == NULL) {
			cim_subscription_close(s);
			return cimc_fail(err, CIM_ERR_NOMEM, NULL,
					 "out of memory");
		}
		for (size_t i = 0; i < o->n_trusted_keys; i++)
			cim_pubkey_from_text(s->keys[i], o->trusted_keys[i]);
		s->nkeys = o->n_trusted_keys;
	}
	randombytes_buf(s->key, sizeof(s->key));
	if ((rc = open_consumer(s, o, err)) != CIM_ERR_OK) {
		cim_subscription_close(s);
		return rc;
	}
	*out = s;
	return CIM_ERR_OK;
}

/* ---- replay ------------------------------------------------------------------------------ */

cim_err
cim_replay(cim_client *c, const cim_subscribe_options *o,
	   cim_event_fn on_event, cim_progress_fn on_progress, void *ctx,
	   cim_error *err)
{
	cim_subscribe_options ro = {0};
	cim_subscription *s = NULL;
	const cim_event *ev;
	cim_progress p;
	uint64_t n = 0;
	cim_err rc;

	cimc_clear(err);
	if (on_event == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "on_event",
				 "on_event must not be NULL");
	if (o != NULL)
		ro = *o;
	ro.stop_at_end = true;
	if ((rc = cim_subscribe(c, &ro, &s, err)) != CIM_ERR_OK)
		return rc;
	for (;;) {
		rc = cim_subscription_next(s, -1, &ev, err);
		if (rc != CIM_ERR_OK || ev == NULL)
			break;
		if (on_event(ctx, ev) != 0) {
			rc = cimc_fail(err, CIM_ERR_HANDLER, NULL,
				       "on_event returned non-zero for %s/%s "
				       "version %llu (seq %llu)",
				       ev->aggregate_type, ev->aggregate_id,
				       (unsigned long long)ev->version,
				       (unsigned long long)ev->seq);
			break;
		}
		if (on_progress != NULL && ++n % REPLAY_PROGRESS == 0) {
			cim_subscription_progress(s, &p);
			on_progress(ctx, &p);
		}
	}
	if (on_progress != NULL) {
		cim_subscription_progress(s, &p);
		on_progress(ctx, &p);
	}
	cim_subscription_close(s);
	return rc;
}
