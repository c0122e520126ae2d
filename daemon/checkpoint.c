/*
 * checkpoint.c: the heads, written to CIM-HEADS now and then, so that
 * start-up reads a checkpoint and the stream after it instead of the
 * whole stream.
 *
 * What a checkpoint promises. It is taken "as of" a stream sequence S: the
 * highest sequence whose event the heads reflect (d->seen_seq). Every event
 * at or below S is then either in the checkpoint's heads, or belongs to an
 * aggregate the checkpoint marks unsettled: one with an append in flight
 * (its events may be stored at any sequence, their acks not yet in) or
 * with an append whose outcome is not known. Start-up loads the heads,
 * replays the stream after S (skipping what a head already has), and
 * settles the marked aggregates by reading what is stored past their head,
 * as after any failed append. So the heads are taken without stopping
 * appends: the table is walked in slices under the lock, and a head that
 * moved on during the walk is simply newer than S, which replay allows.
 *
 * Layout in the bucket. The heads are one binary blob (below), cut into
 * chunks under the NATS payload limit, at keys chunk.<slot>.<n>; the
 * manifest key, written last, names the slot, the chunk count and the
 * blob's BLAKE2b-256. Two slots, a and b, alternate, so a crash while
 * chunks are written leaves the previous checkpoint whole, and the bucket
 * holds at most two checkpoints (its history is one value per key).
 *
 * The blob, all integers little-endian:
 *   "CIMHEAD1", u64 seq, u64 count, u64 offset of the type table
 *   count aggregate records:
 *     u8 len, type; u8 len, id; u64 version; u64 seq; u64 first_seq;
 *     u64 event_id digest; u8 flags (1: unsettled, 2: forgotten); u8 len, cid;
 *     u8 ntypes (255: not known); ntypes x u16 type index
 *   the type table: u32 n; n x (u16 len, name)
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "daemon.h"
#include "ids.h"
#include "log.h"

#define MAGIC "CIMHEAD1"
#define HEADER_LEN 32
#define SLICE 4096 /* table slots walked per hold of the lock */
#define FLAG_UNSETTLED 1
#define FLAG_FORGOTTEN 2 /* its head is a CimForgotten event */

/* ---- writing ----------------------------------------------------------------- */

static int put_u8(cbuf *b, unsigned v)
{
	return cbuf_putc(b, (uint8_t)v);
}

static int put_u16(cbuf *b, unsigned v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	return cbuf_put(b, x, 2);
}

static int put_u32(cbuf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return cbuf_put(b, x, 4);
}

static int put_u64(cbuf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return cbuf_put(b, x, 8);
}

static void set_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int put_str8(cbuf *b, const char *s, size_t n)
{
	return put_u8(b, (unsigned)n) | cbuf_put(b, s, n);
}

/* One aggregate's record; d->mu held. */
static int put_agg(struct daemon *d, cbuf *b, const struct agg *a)
{
	const char *types[AGG_TYPES_UNKNOWN];
	int nt = agg_types(&d->heads, a, types, AGG_TYPES_UNKNOWN - 1);
	const uint16_t *ids = a->ntypes <= AGG_TYPES_INLINE ? a->types.inl : a->types.ext;
	unsigned flags = (a->busy != NULL || a->state != AGG_SETTLED) ? FLAG_UNSETTLED : 0;
	if (a->forgotten == AGG_FORGOTTEN)
		flags |= FLAG_FORGOTTEN;
	int rc = 0;

	rc |= put_str8(b, agg_type(a), a->tlen);
	rc |= put_str8(b, agg_id(a), strlen(agg_id(a)));
	rc |= put_u64(b, a->version);
	rc |= put_u64(b, a->seq);
	rc |= put_u64(b, a->first_seq);
	rc |= put_u64(b, a->eid_hash);
	rc |= put_u8(b, flags);
	rc |= put_u8(b, a->cid_len);
	rc |= cbuf_put(b, a->cid, a->cid_len);
	rc |= put_u8(b, nt < 0 ? AGG_TYPES_UNKNOWN : (unsigned)nt);
	for (int i = 0; i < nt; i++)
		rc |= put_u16(b, ids[i]);
	return rc ? -1 : 0;
}

/* The blob of the heads as of d->seen_seq. 0, or -1 when memory runs out. */
static int serialize(struct daemon *d, cbuf *b, uint64_t *seq, uint64_t *count)
{
	size_t next = 0, mask;
	uint64_t n = 0;
	int rc = 0;

restart:
	cbuf_reset(b);
	n = 0;
	next = 0;
	pthread_mutex_lock(&d->mu);
	*seq = d->seen_seq;
	mask = d->heads.mask;
	pthread_mutex_unlock(&d->mu);
	rc |= cbuf_put(b, MAGIC, 8);
	rc |= put_u64(b, *seq);
	rc |= put_u64(b, 0); /* count and table offset, filled in below */
	rc |= put_u64(b, 0);
	while (rc == 0) {
		pthread_mutex_lock(&d->mu);
		if (d->heads.mask != mask) {
			/* the table grew under us: walk it again from the start */
			pthread_mutex_unlock(&d->mu);
			goto restart;
		}
		if (next > mask) {
			/* the type table, with the lock still held so that every
			 * index written above is in it */
			size_t off = b->len;
			rc |= put_u32(b, (uint32_t)d->heads.ntype_names);
			for (size_t i = 0; i < d->heads.ntype_names; i++) {
				const char *t = d->heads.type_names[i];
				rc |= put_u16(b, (unsigned)strlen(t)) | cbuf_put(b, t, strlen(t));
			}
			pthread_mutex_unlock(&d->mu);
			if (rc == 0) {
				set_u64(b->p + 16, n);
				set_u64(b->p + 24, off);
			}
			break;
		}
		size_t end = next + SLICE > mask + 1 ? mask + 1 : next + SLICE;
		for (; next < end && rc == 0; next++)
			for (const struct agg *a = d->heads.slots[next]; a && rc == 0; a = a->next) {
				if (a->version == 0 && a->busy == NULL && a->state == AGG_SETTLED)
					continue; /* no event and nothing in flight */
				rc |= put_agg(d, b, a);
				n++;
			}
		pthread_mutex_unlock(&d->mu);
	}
	*count = n;
	return rc ? -1 : 0;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static size_t chunk_size(const struct daemon *d)
{
	/* a value travels in a message with headers: stay well under the limit */
	size_t n = d->max_payload > 8192 ? d->max_payload - 4096 : 4096;
	return n > (1u << 20) ? (1u << 20) : n;
}

static void chunk_key(char *out, size_t n, char slot, size_t i)
{
	snprintf(out, n, "chunk.%c.%zu", slot, i);
}

int checkpoint_write(struct daemon *d)
{
	cbuf b = CBUF_INIT;
	uint64_t seq, count;
	uint8_t digest[crypto_generichash_BYTES];
	char sum[2 * sizeof digest + 1], key[64], when[CIM_TIME_TEXT];
	int64_t t0 = now_ns();
	natsStatus s = NATS_OK;
	int rc = -1;

	if (d->heads_kv == NULL)
		return -1;
	if (serialize(d, &b, &seq, &count) != 0) {
		log_warn("heads checkpoint: out of memory");
		goto out;
	}
	int64_t t_ser = now_ns();
	crypto_generichash(digest, sizeof digest, b.p, b.len, NULL, 0);
	hex(digest, sizeof digest, sum);
	char slot = d->cp_slot == 'a' ? 'b' : 'a';
	size_t csize = chunk_size(d), chunks = (b.len + csize - 1) / csize;
	for (size_t i = 0; i < chunks && s == NATS_OK; i++) {
		size_t len = b.len - i * csize < csize ? b.len - i * csize : csize;
		chunk_key(key, sizeof key, slot, i);
		s = kvStore_Put(NULL, d->heads_kv, key, b.p + i * csize, (int)len);
	}
	if (s != NATS_OK) {
		log_warn("heads checkpoint: cannot write %s: %s", key, natsStatus_GetText(s));
		goto out;
	}
	/* the type index beside it (typeindex.c): a page not written now is
	 * read back as far as it was written, and the stream after that again */
	int pages = tix_write(d);
	cim_time_now(when);
	json_t *m = json_pack("{si sI ss sI ss ss sI sI sI ss ss ss}", "format", 1,
			      "seq", (json_int_t)seq, "stream", d->cfg->stream,
			      "stream_created", (json_int_t)d->stream_created,
			      "events_subject", d->cfg->events_subject, "hash", d->cfg->hash,
			      "aggregates", (json_int_t)count, "bytes", (json_int_t)b.len,
			      "chunks", (json_int_t)chunks, "slot", slot == 'a' ? "a" : "b",
			      "blake2b", sum, "written", when);
	char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	if (text == NULL)
		goto out;
	s = kvStore_PutString(NULL, d->heads_kv, "manifest", text);
	free(text);
	if (s != NATS_OK) {
		log_warn("heads checkpoint: cannot write the manifest: %s", natsStatus_GetText(s));
		goto out;
	}
	d->cp_slot = slot;
	d->cp_seq = seq;
	atomic_store(&d->cp_last_seq, seq);
	atomic_fetch_add(&d->cp_written, 1);
	log_info("heads checkpoint at seq %llu: %llu aggregates, %zu bytes in %zu chunk(s), "
		 "%d type index page(s), %lld ms to take, %lld ms to write",
		 (unsigned long long)seq, (unsigned long long)count, b.len, chunks, pages,
		 (long long)((t_ser - t0) / 1000000), (long long)((now_ns() - t_ser) / 1000000));
	rc = 0;
out:
	cbuf_free(&b);
	return rc;
}

/* ---- reading ----------------------------------------------------------------- */

struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t get_n(struct rd *r, int n)
{
	uint64_t v = 0;
	if (r->bad || r->end - r->p < n) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	return v;
}

/* A length-prefixed string of 1..max bytes into out (NUL-terminated). */
static void get_str(struct rd *r, int lenbytes, char *out, size_t max)
{
	size_t n = (size_t)get_n(r, lenbytes);
	if (r->bad || n == 0 || n > max || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		out[0] = '\0';
		return;
	}
	memcpy(out, r->p, n);
	out[n] = '\0';
	r->p += n;
}

/* Fills the (empty) head table from the blob. 0, or -1 with why set. */
static int parse(struct daemon *d, const uint8_t *blob, size_t len, uint64_t seq,
		 struct agg ***unsettled, size_t *nunsettled, char *why, size_t whyn)
{
	struct rd r = {blob, blob + len, false};
	char **names = NULL;
	uint32_t nnames = 0;
	size_t cap = 0;
	int rc = -1;

	if (len < HEADER_LEN || memcmp(blob, MAGIC, 8) != 0) {
		snprintf(why, whyn, "not a heads checkpoint");
		return -1;
	}
	r.p += 8;
	uint64_t bseq = get_n(&r, 8), count = get_n(&r, 8), off = get_n(&r, 8);
	if (bseq != seq || off < HEADER_LEN || off > len) {
		snprintf(why, whyn, "the checkpoint does not match its manifest");
		return -1;
	}
	/* the type table first: records refer to it */
	struct rd t = {blob + off, blob + len, false};
	nnames = (uint32_t)get_n(&t, 4);
	if (t.bad || nnames > UINT16_MAX || (names = calloc(nnames + 1, sizeof *names)) == NULL) {
		snprintf(why, whyn, "bad type table");
		return -1;
	}
	for (uint32_t i = 0; i < nnames && !t.bad; i++) {
		names[i] = malloc(CIM_TYPE_MAX + 1);
		if (names[i] == NULL)
			t.bad = true;
		else
			get_str(&t, 2, names[i], CIM_TYPE_MAX);
	}
	if (t.bad || t.p != t.end) {
		snprintf(why, whyn, "bad type table");
		goto out;
	}
	r.end = blob + off;
	heads_reserve(&d->heads, (size_t)(count < (1u << 30) ? count : (1u << 30)));
	for (uint64_t i = 0; i < count; i++) {
		char type[CIM_TYPE_MAX + 1], id[CIM_ID_MAX + 1];
		get_str(&r, 1, type, CIM_TYPE_MAX);
		get_str(&r, 1, id, CIM_ID_MAX);
		uint64_t version = get_n(&r, 8), aseq = get_n(&r, 8);
		uint64_t first = get_n(&r, 8), digest = get_n(&r, 8);
		unsigned flags = (unsigned)get_n(&r, 1), cidlen = (unsigned)get_n(&r, 1);
		if (r.bad || cidlen > AGG_CID_MAX || (size_t)(r.end - r.p) < cidlen ||
		    !cim_token_type_ok(type) || !cim_token_id_ok(id)) {
			snprintf(why, whyn, "bad record %llu", (unsigned long long)i);
			goto out;
		}
		struct agg *a = heads_get_or_add(&d->heads, type, id);
		if (a == NULL) {
			snprintf(why, whyn, "out of memory");
			goto out;
		}
		a->version = version;
		a->seq = aseq;
		a->first_seq = first;
		a->eid_hash = digest;
		a->cid_len = (uint8_t)cidlen;
		memcpy(a->cid, r.p, cidlen);
		r.p += cidlen;
		unsigned nt = (unsigned)get_n(&r, 1);
		if (nt == AGG_TYPES_UNKNOWN) {
			a->ntypes = AGG_TYPES_UNKNOWN;
		} else {
			for (unsigned k = 0; k < nt && !r.bad; k++) {
				unsigned ix = (unsigned)get_n(&r, 2);
				if (ix >= nnames)
					r.bad = true;
				else
					agg_add_type(&d->heads, a, names[ix], strlen(names[ix]));
			}
		}
		if (r.bad) {
			snprintf(why, whyn, "bad record %llu", (unsigned long long)i);
			goto out;
		}
		if (flags & FLAG_FORGOTTEN)
			a->forgotten = AGG_FORGOTTEN;
		if (flags & FLAG_UNSETTLED) {
			a->state = AGG_UNSETTLED;
			if (*nunsettled == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct agg **u = realloc(*unsettled, ncap * sizeof *u);
				if (u == NULL) {
					snprintf(why, whyn, "out of memory");
					goto out;
				}
				*unsettled = u;
				cap = ncap;
			}
			(*unsettled)[(*nunsettled)++] = a;
		}
	}
	if (r.p != r.end) {
		snprintf(why, whyn, "trailing bytes after the records");
		goto out;
	}
	rc = 0;
out:
	for (uint32_t i = 0; names && i < nnames; i++)
		free(names[i]);
	free(names);
	return rc;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

int checkpoint_load(struct daemon *d, uint64_t last_seq,
		    struct cp_loaded *out, char *why, size_t whyn)
{
	kvEntry *e = NULL;
	json_t *m = NULL;
	uint8_t *blob = NULL;
	int rc = 1;

	memset(out, 0, sizeof *out);
	natsStatus s = kvStore_Get(&e, d->heads_kv, "manifest");
	if (s == NATS_NOT_FOUND) {
		snprintf(why, whyn, "no checkpoint");
		return 1;
	}
	if (s != NATS_OK) {
		snprintf(why, whyn, "cannot read the checkpoint: %s", natsStatus_GetText(s));
		return 1;
	}
	m = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
	kvEntry_Destroy(e);
	e = NULL;
	if (m == NULL || json_integer_value(json_object_get(m, "format")) != 1) {
		snprintf(why, whyn, "the manifest is not one this daemon reads");
		goto out;
	}
	uint64_t seq = (uint64_t)json_integer_value(json_object_get(m, "seq"));
	uint64_t bytes = (uint64_t)json_integer_value(json_object_get(m, "bytes"));
	uint64_t chunks = (uint64_t)json_integer_value(json_object_get(m, "chunks"));
	const char *slot = jstr(m, "slot"), *sum = jstr(m, "blake2b");
	/* a checkpoint of another stream, or of this one before it was made
	 * again, or made with other settings, says nothing true about it */
	if (strcmp(jstr(m, "stream"), d->cfg->stream) != 0 ||
	    json_integer_value(json_object_get(m, "stream_created")) != d->stream_created) {
		snprintf(why, whyn, "the checkpoint is of another stream (or of this one before it was created again)");
		goto out;
	}
	if (strcmp(jstr(m, "events_subject"), d->cfg->events_subject) != 0 ||
	    strcmp(jstr(m, "hash"), d->cfg->hash) != 0) {
		snprintf(why, whyn, "the checkpoint was made with another events_subject or hash");
		goto out;
	}
	if (seq > last_seq) {
		snprintf(why, whyn, "the checkpoint (seq %llu) is ahead of the stream (last seq %llu)",
			 (unsigned long long)seq, (unsigned long long)last_seq);
		goto out;
	}
	/* the chunk count follows from max_payload when the checkpoint was
	 * written, which may differ now: only the total is checked below */
	if ((slot[0] != 'a' && slot[0] != 'b') || slot[1] != '\0' || strlen(sum) != 64 ||
	    bytes < HEADER_LEN || bytes > ((uint64_t)1 << 34) || chunks == 0 || chunks > bytes) {
		snprintf(why, whyn, "the manifest is damaged");
		goto out;
	}
	blob = malloc((size_t)bytes);
	if (blob == NULL) {
		snprintf(why, whyn, "out of memory for a %llu-byte checkpoint",
			 (unsigned long long)bytes);
		goto out;
	}
	size_t have = 0;
	for (uint64_t i = 0; i < chunks; i++) {
		char key[64];
		chunk_key(key, sizeof key, slot[0], (size_t)i);
		s = kvStore_Get(&e, d->heads_kv, key);
		if (s != NATS_OK) {
			snprintf(why, whyn, "cannot read %s: %s", key, natsStatus_GetText(s));
			goto out;
		}
		size_t n = (size_t)kvEntry_ValueLen(e);
		if (n > bytes - have) {
			snprintf(why, whyn, "%s is longer than the manifest says", key);
			goto out;
		}
		memcpy(blob + have, kvEntry_Value(e), n);
		have += n;
		kvEntry_Destroy(e);
		e = NULL;
	}
	uint8_t digest[crypto_generichash_BYTES];
	char got[2 * sizeof digest + 1];
	crypto_generichash(digest, sizeof digest, blob, have, NULL, 0);
	hex(digest, sizeof digest, got);
	if (have != bytes || strcmp(got, sum) != 0) {
		snprintf(why, whyn, "the checkpoint's chunks do not match its checksum");
		goto out;
	}
	if (parse(d, blob, have, seq, &out->unsettled, &out->nunsettled, why, whyn) != 0) {
		/* start again from an empty table: nothing of it may stay */
		heads_free(&d->heads);
		if (heads_init(&d->heads, 0) != 0)
			fatalx("out of memory");
		free(out->unsettled);
		out->unsettled = NULL;
		out->nunsettled = 0;
		goto out;
	}
	out->seq = seq;
	out->aggregates = d->heads.count;
	snprintf(out->written, sizeof out->written, "%s", jstr(m, "written"));
	d->cp_slot = slot[0];
	d->cp_seq = seq;
	atomic_store(&d->cp_last_seq, seq);
	rc = 0;
out:
	kvEntry_Destroy(e);
	json_decref(m);
	free(blob);
	return rc;
}

/* ---- the checkpoint thread ----------------------------------------------------- */

static void *cp_main(void *arg)
{
	struct daemon *d = arg;
	int64_t last = now_mono_ns();
	uint64_t events_then = atomic_load(&d->events_appended);

	pthread_mutex_lock(&d->cp_mu);
	while (!d->cp_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&d->cp_cv, &d->cp_mu, &ts);
		if (d->cp_stop)
			break;
		uint64_t events = atomic_load(&d->events_appended);
		bool due = events - events_then >= (uint64_t)d->cfg->heads_checkpoint_events ||
			   now_mono_ns() - last >= d->cfg->heads_checkpoint_interval_s * 1000000000LL;
		pthread_mutex_lock(&d->mu);
		bool moved = d->seen_seq != d->cp_seq;
		pthread_mutex_unlock(&d->mu);
		if (!due || !moved || !lease_valid(d))
			continue;
		pthread_mutex_unlock(&d->cp_mu);
		checkpoint_write(d);
		pthread_mutex_lock(&d->cp_mu);
		last = now_mono_ns();
		events_then = events;
	}
	pthread_mutex_unlock(&d->cp_mu);
	return NULL;
}

int checkpoint_start(struct daemon *d)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cp_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&d->cp_mu, NULL);
	d->cp_stop = false;
	if (pthread_create(&d->cp_thread, NULL, cp_main, d) != 0)
		return -1;
	d->cp_running = true;
	return 0;
}

void checkpoint_stop(struct daemon *d)
{
	if (!d->cp_running)
		return;
	pthread_mutex_lock(&d->cp_mu);
	d->cp_stop = true;
	pthread_cond_broadcast(&d->cp_cv);
	pthread_mutex_unlock(&d->cp_mu);
	pthread_join(d->cp_thread, NULL);
	d->cp_running = false;
}
