/*
 * cli_backup.c: backups as CAR files (docs/protocol.md section 11).
 *
 * export --car FILE [PATTERN | TYPE ID]: the heads are fixed first, each
 * asked of the daemon (so nothing it has not committed is exported), and
 * become the file's roots; then each aggregate's messages are read from
 * JetStream up to its head's stream sequence, one exact subject per event
 * type (found with the aggregates, cli_ops.c), merged by sequence, by
 * direct gets (the stream allows them; each finds the next message of an
 * exact subject from the server's per-subject index). Every event block
 * goes to the file exactly as stored, its chain checked on the way (CIDs,
 * versions, links, the head reached), each followed by its seal block
 * when its message carries a seal. Memory: the list of heads, and one
 * message per event type of the aggregate being written. The file is
 * written as FILE.partial and renamed once whole.
 *
 * import FILE: reads the CAR file as export --car writes it (aggregate by
 * aggregate, in version order: a file in another order is refused, with
 * where) and restores each aggregate through the daemon's restore
 * operation: from the aggregate's head on (what is stored already is
 * checked against the file and passed over, so a second import, or one
 * after an interruption, goes on where the store is), in batches within
 * the NATS payload limit and max_events_per_append, each ending at a
 * sealed event where one can, carrying the seals of its events. Every
 * block's CID is checked against its bytes before it is sent. The
 * requests go out from SENDERS threads, each aggregate's from one of
 * them in order, so that several aggregates are restored at once; each
 * thread holds at most QUEUE_MAX requests waiting (memory stays within a
 * few payloads per thread).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#include "car.h"
#include "cli.h"
#include "event.h"
#include "keyblock.h"
#include "seal.h"
#include "snapshot.h" /* cim_kv_key */

#define BAR_EVERY_MS 100

/* ---- a progress bar on stderr ------------------------------------------------- */

struct bar {
	bool on;
	uint64_t total, done;
	int64_t shown_ms;
	const char *unit;
};

static int64_t
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void
bar_show(struct bar *b, bool force)
{
	enum { WIDTH = 30 };
	char line[WIDTH + 1];
	int64_t now;
	size_t fill;

	if (!b->on || (!force && (now = now_ms()) - b->shown_ms < BAR_EVERY_MS))
		return;
	b->shown_ms = now_ms();
	fill = b->total ? (size_t)(b->done * WIDTH / b->total) : WIDTH;
	for (size_t i = 0; i < WIDTH; i++)
		line[i] = i < fill ? '#' : '.';
	line[WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %" PRIu64 "/%" PRIu64 " %s", line, b->done, b->total,
		b->unit);
	fflush(stderr);
}

static void
bar_end(struct bar *b)
{
	if (b->on)
		fprintf(stderr, "\r%*s\r", 72, "");
}

/* ---- export: reading one aggregate from JetStream ------------------------------- */

/* One exact subject of the aggregate, read in stream order up to the
 * head's sequence: through an ephemeral pull consumer for as many
 * messages as the listing counted on it (when that is more than a few),
 * then by direct gets (each the next message of the subject at or after a
 * sequence), which also find what was stored after the listing and say
 * for sure where the subject ends. msg is its next message (NULL: none). */
struct src {
	char subject[512];
	natsSubscription *sub; /* the consumer, while listed messages remain */
	uint64_t listed;       /* of those, not fetched yet */
	natsMsgList list;      /* the last fetch */
	int pos;
	natsMsg *msg;
	uint64_t seq;
	bool own;              /* msg came from a direct get (not the list) */
};

#define DIRECT_MAX 4       /* subjects with at most this many: direct gets */
#define FETCH_MAX 1024
#define FETCH_WAIT_MS 5000

static const char *
header(natsMsg *m, const char *key)
{
	const char *v = NULL;

	return natsMsgHeader_Get(m, key, &v) == NATS_OK ? v : NULL;
}

static void
src_close(struct src *s)
{
	if (s->own)
		natsMsg_Destroy(s->msg);
	s->msg = NULL;
	natsMsgList_Destroy(&s->list);
	if (s->sub != NULL) {
		natsSubscription_Unsubscribe(s->sub);
		natsSubscription_Destroy(s->sub);
		s->sub = NULL;
	}
}

static int
src_fail(const char *what, const struct src *s, const char *stream, natsStatus st)
{
	fprintf(stderr, PROG ": unavailable: %s %s of stream %s: %s\n", what, s->subject,
		stream, natsStatus_GetText(st));
	return -1;
}

/* The subject's next message after the one in hand (the first when
 * none was), kept when at most to_seq. 0, or -1 after saying why. */
static int
src_next(jsCtx *js, const char *stream, struct src *s, uint64_t to_seq)
{
	uint64_t from = s->msg != NULL ? s->seq + 1 : 1;
	natsStatus st;

	if (s->own)
		natsMsg_Destroy(s->msg);
	s->msg = NULL;
	s->own = false;
	if (s->sub != NULL && s->pos >= s->list.Count && s->listed > 0) {
		jsFetchRequest fr;

		natsMsgList_Destroy(&s->list);
		s->pos = 0;
		jsFetchRequest_Init(&fr);
		fr.Batch = s->listed < FETCH_MAX ? (int)s->listed : FETCH_MAX;
		fr.Expires = (int64_t)FETCH_WAIT_MS * 1000000;
		st = natsSubscription_FetchRequest(&s->list, s->sub, &fr);
		if (st != NATS_OK && st != NATS_TIMEOUT)
			return src_fail("reading", s, stream, st);
		/* fewer than listed (some removed): direct gets go on */
		s->listed = s->list.Count > 0 ? s->listed - (uint64_t)s->list.Count : 0;
	}
	if (s->sub != NULL && s->pos < s->list.Count) {
		jsMsgMetaData *meta = NULL;

		s->msg = s->list.Msgs[s->pos++];
		if (natsMsg_GetMetaData(&meta, s->msg) != NATS_OK)
			return src_fail("reading the position of a message on", s, stream,
					NATS_ERR);
		s->seq = meta->Sequence.Stream;
		jsMsgMetaData_Destroy(meta);
		if (s->seq > to_seq)
			s->msg = NULL;
		return 0;
	}
	if (s->sub != NULL) { /* the listed ones are read: the rest directly */
		natsSubscription_Unsubscribe(s->sub);
		natsSubscription_Destroy(s->sub);
		s->sub = NULL;
	}
	if (from > to_seq)
		return 0;
	jsDirectGetMsgOptions o;
	const char *sq;

	jsDirectGetMsgOptions_Init(&o);
	o.Sequence = from;
	o.NextBySubject = s->subject;
	st = js_DirectGetMsg(&s->msg, js, stream, NULL, &o);
	if (st == NATS_NOT_FOUND)
		return 0;
	s->own = true;
	if (st != NATS_OK || (sq = header(s->msg, "Nats-Sequence")) == NULL) {
		natsMsg_Destroy(s->msg);
		s->msg = NULL;
		s->own = false;
		return src_fail("reading", s, stream, st != NATS_OK ? st : NATS_ERR);
	}
	s->seq = strtoull(sq, NULL, 10);
	if (s->seq > to_seq) {
		natsMsg_Destroy(s->msg);
		s->msg = NULL;
		s->own = false;
	}
	return 0;
}

/* Opens the subject: a consumer when it holds more than a few. */
static int
src_open(jsCtx *js, const char *stream, struct src *s, uint64_t listed, uint64_t to_seq)
{
	if (listed > DIRECT_MAX) {
		jsSubOptions so;
		jsErrCode je = 0;
		natsStatus st;

		jsSubOptions_Init(&so);
		so.Stream = stream;
		so.Config.DeliverPolicy = js_DeliverAll;
		so.Config.AckPolicy = js_AckNone;
		so.Config.MemoryStorage = true;
		so.Config.InactiveThreshold = 30 * 1000000000LL; /* if we die reading */
		st = js_PullSubscribe(&s->sub, js, s->subject, NULL, NULL, &so, &je);
		if (st != NATS_OK)
			return src_fail("opening a consumer on", s, stream, st);
		s->listed = listed;
	}
	return src_next(js, stream, s, to_seq);
}

struct export {
	jsCtx *js;
	const char *stream;
	cim_car_writer w;
	struct bar bar;
	cim_head *heads;        /* one per aggregate; version 0: not written */
	const struct agg_list *aggs;
	size_t nroots;
	uint64_t events, seals, keys;
	char keys_bucket[128];  /* the daemon's keys_bucket (info) */
};

/* Root i: the head of the i-th aggregate that has one. */
static int
root_of(void *ctx, size_t i, cim_cid *out)
{
	struct export *x = ctx;

	for (size_t k = 0; k < x->aggs->n; k++)
		if (x->heads[k].version > 0 && i-- == 0)
			return cim_cid_from_text(out, x->heads[k].head);
	return -1;
}

/* The seal block of the message's seal, when it carries a well-formed
 * one (what verify-car then checks), after its event. 0 or -1. */
static int
write_seal(struct export *x, natsMsg *m, const cim_cid *cid, uint64_t mh)
{
	const char *key = header(m, "Cim-Seal-Key"), *sig = header(m, "Cim-Seal");
	cim_seal_block s = {.cid = *cid};
	cbuf b = CBUF_INIT;
	cim_cid scid;
	int rc;

	if (key == NULL && sig == NULL)
		return 0;
	if (key == NULL || sig == NULL || cim_pubkey_from_text(s.pk, key) != 0 ||
	    cim_seal_sig_from_text(s.sig, sig, strlen(sig)) != 0) {
		fprintf(stderr, PROG ": export: the seal headers of the message on %s are "
			"not a seal; left out (validate reports it)\n", natsMsg_GetSubject(m));
		return 0;
	}
	if (cim_seal_block_encode(&s, &b) != 0)
		return cli_fail_nomem();
	cim_cid_compute(&scid, CIM_CODEC_DAG_CBOR, mh, b.p, b.len);
	rc = cim_car_write_block(&x->w, &scid, b.p, b.len);
	cbuf_free(&b);
	x->seals++;
	return rc;
}

/* An encrypted aggregate's key block, its value in the keys bucket as
 * stored (the data key wrapped by the master key: nothing secret), goes
 * before its first event; a forgotten aggregate has none any more. 0, or
 * the exit status. */
static int
write_key(struct export *x, const struct agg_ref *r, uint64_t mh)
{
	char kvkey[CIM_KV_KEY_MAX], stream[160], subj[700], why[200];
	natsMsg *m = NULL;
	jsErrCode je = 0;
	cim_wrapped_key w;
	cim_cid cid;
	const char *op = NULL;

	if (cim_kv_key(kvkey, r->type, r->id) != 0)
		return 0;
	snprintf(stream, sizeof(stream), "KV_%s", x->keys_bucket);
	snprintf(subj, sizeof(subj), "$KV.%s.%s", x->keys_bucket, kvkey);
	natsStatus st = js_GetLastMsg(&m, x->js, stream, subj, NULL, &je);
	if (st == NATS_NOT_FOUND || je == JSNoMessageFoundErr || je == JSStreamNotFoundErr)
		return 0;
	if (st != NATS_OK) {
		fprintf(stderr, PROG ": export: cannot read the key block of %s/%s from %s: "
			"%s\n", r->type, r->id, x->keys_bucket, natsStatus_GetText(st));
		return EXIT_UNREACHABLE;
	}
	const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
	size_t len = (size_t)natsMsg_GetDataLength(m);
	int status = 0;
	if (natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op != NULL) {
		/* a delete marker: no key */
	} else if (cim_keyblock_decode(&w, p, len, why, sizeof(why)) != 0 ||
		   strcmp(w.aggregate_type, r->type) != 0 || strcmp(w.aggregate_id, r->id) != 0) {
		fprintf(stderr, PROG ": broken: the value kept in %s for %s/%s is not its key "
			"block (%s)\n", x->keys_bucket, r->type, r->id, why);
		status = EXIT_BROKEN;
	} else {
		cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, mh, p, len);
		if (cim_car_write_block(&x->w, &cid, p, len) != 0) {
			fprintf(stderr, PROG ": export: cannot write: %s\n", x->w.err);
			status = EXIT_DAEMON;
		} else {
			x->keys++;
		}
	}
	natsMsg_Destroy(m);
	return status;
}

/* Writes aggregate r's events 1..head, as stored. 0, or the exit status. */
static int
export_one(struct export *x, const struct agg_ref *r, const cim_head *h)
{
	struct src *src = calloc(r->ntypes, sizeof(*src));
	cim_cid head, prev = {0};
	uint64_t codec, mh, next = 1;
	int status = 0;

	if (src == NULL)
		return cli_fail_nomem();
	if (cim_cid_from_text(&head, h->head) != 0 || cim_cid_info(&head, &codec, &mh) != 0) {
		fprintf(stderr, PROG ": bad_reply: the head of %s/%s is not a CID\n", r->type,
			r->id);
		free(src);
		return EXIT_DAEMON;
	}
	status = write_key(x, r, mh);
	/* the event types may have grown since the subjects were listed: a
	 * type not listed shows as a version missing, below */
	for (size_t k = 0; k < r->ntypes && status == 0; k++) {
		snprintf(src[k].subject, sizeof(src[k].subject), "%s.%s.%s.%s",
			 x->aggs->root, r->type, r->id, r->event_types[k]);
		if (src_open(x->js, x->stream, &src[k], r->counts[k], h->seq) != 0)
			status = EXIT_UNREACHABLE;
	}
	while (status == 0 && next <= h->version) {
		struct src *s = NULL;
		for (size_t k = 0; k < r->ntypes; k++)
			if (src[k].msg != NULL && (s == NULL || src[k].seq < s->seq))
				s = &src[k];
		if (s == NULL)
			break;
		const uint8_t *p = (const uint8_t *)natsMsg_GetData(s->msg);
		size_t len = (size_t)natsMsg_GetDataLength(s->msg);
		cim_event_view v;
		cim_cid cid;
		char why[200];

		if (cim_event_check(p, len, &v, why, sizeof(why)) != 0) {
			fprintf(stderr, PROG ": broken: %s/%s: the message at stream sequence "
				"%" PRIu64 " is not an event block (%s); run validate\n", r->type,
				r->id, s->seq, why);
			status = EXIT_BROKEN;
			break;
		}
		if (v.version >= next) {
			cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, mh, p, len);
			if (v.version != next || (next > 1 && !cim_cid_equal(&v.prev, &prev))) {
				fprintf(stderr, PROG ": broken: %s/%s: version %" PRIu64 " (stream "
					"sequence %" PRIu64 ") does not follow version %" PRIu64
					" in the chain; run validate\n", r->type, r->id, v.version,
					s->seq, next - 1);
				status = EXIT_BROKEN;
				break;
			}
			if (cim_car_write_block(&x->w, &cid, p, len) != 0 ||
			    write_seal(x, s->msg, &cid, mh) != 0) {
				fprintf(stderr, PROG ": export: cannot write: %s\n", x->w.err);
				status = EXIT_DAEMON;
				break;
			}
			prev = cid;
			next++;
			x->events++;
			x->bar.done++;
			bar_show(&x->bar, false);
		}
		/* (an older version stored again is passed over, as get does) */
		if (src_next(x->js, x->stream, s, h->seq) != 0)
			status = EXIT_UNREACHABLE;
	}
	if (status == 0 && (next <= h->version || !cim_cid_equal(&prev, &head))) {
		fprintf(stderr, PROG ": broken: %s/%s: the stream holds its chain up to version "
			"%" PRIu64 " only, not to its head (version %" PRIu64 ", %s); run "
			"validate\n", r->type, r->id, next - 1, h->version, h->head);
		status = EXIT_BROKEN;
	}
	for (size_t k = 0; k < r->ntypes; k++)
		src_close(&src[k]);
	free(src);
	return status;
}

int
cli_export_car(struct ctx *cx, const char *file, const char *stream,
	       const struct agg_list *aggs)
{
	struct export x = {.stream = stream, .aggs = aggs};
	char *partial = NULL;
	FILE *f = NULL;
	int status = 0;

	if ((x.heads = calloc(aggs->n ? aggs->n : 1, sizeof(*x.heads))) == NULL)
		return cli_fail_nomem();
	/* where the daemon keeps data keys */
	{
		char *info = NULL;
		cim_error err = {0};
		cim_err rc = cim_info(cx->client, &info, &err);
		json_t *j = rc == CIM_ERR_OK ? json_loads(info, 0, NULL) : NULL;
		const char *kb = json_string_value(
			json_object_get(json_object_get(j, "settings"), "keys_bucket"));
		snprintf(x.keys_bucket, sizeof(x.keys_bucket), "%s", kb ? kb : "CIM-KEYS");
		json_decref(j);
		cim_free(info);
		if (rc != CIM_ERR_OK) {
			free(x.heads);
			return cli_fail(rc, &err);
		}
	}
	/* the heads first: the file holds each aggregate up to the head the
	 * daemon had committed when it was asked */
	for (size_t i = 0; i < aggs->n; i++) {
		cim_error err = {0};
		cim_err rc = cim_get_head(cx->client, aggs->v[i].type, aggs->v[i].id,
					  &x.heads[i], &err);
		if (rc != CIM_ERR_OK) {
			free(x.heads);
			return cli_fail(rc, &err);
		}
		x.nroots += x.heads[i].version > 0;
		x.bar.total += x.heads[i].version;
	}
	if ((status = cli_js(cx, stream, &x.js)) != 0)
		goto out;
	if (strcmp(file, "-") == 0) {
		f = stdout;
	} else if ((partial = malloc(strlen(file) + 9)) == NULL) {
		status = cli_fail_nomem();
		goto out;
	} else {
		sprintf(partial, "%s.partial", file);
		if ((f = fopen(partial, "wb")) == NULL) {
			fprintf(stderr, PROG ": export: cannot write %s: %s\n", partial,
				strerror(errno));
			status = EXIT_BROKEN;
			goto out;
		}
	}
	x.bar.on = isatty(STDERR_FILENO) && f != stdout;
	x.bar.unit = "events";
	if (cim_car_writer_begin(&x.w, cim_car_stdio_sink, f, x.nroots, root_of, &x) != 0) {
		fprintf(stderr, PROG ": export: %s\n", x.w.err);
		status = EXIT_BROKEN;
		goto out;
	}
	/* an encrypted aggregate's key block goes before its first event */
	for (size_t i = 0; i < aggs->n && status == 0; i++)
		if (x.heads[i].version > 0)
			status = export_one(&x, &aggs->v[i], &x.heads[i]);
	bar_end(&x.bar);
	if (status == 0 && (fflush(f) != 0 || (f != stdout && fsync(fileno(f)) != 0))) {
		fprintf(stderr, PROG ": export: cannot write %s: %s\n", file, strerror(errno));
		status = EXIT_BROKEN;
	}
	if (f != stdout && fclose(f) != 0 && status == 0) {
		fprintf(stderr, PROG ": export: cannot write %s: %s\n", file, strerror(errno));
		status = EXIT_BROKEN;
	}
	if (f != stdout && status == 0 && rename(partial, file) != 0) {
		fprintf(stderr, PROG ": export: cannot rename %s to %s: %s\n", partial, file,
			strerror(errno));
		status = EXIT_BROKEN;
	}
	if (f != stdout && status != 0)
		unlink(partial);
	f = NULL;
	if (status == 0)
		fprintf(stderr, PROG ": exported %zu aggregate%s, %" PRIu64 " event%s, %" PRIu64
			" seal%s, %" PRIu64 " key block%s (%" PRIu64 " bytes) to %s\n", x.nroots,
			x.nroots == 1 ? "" : "s", x.events, x.events == 1 ? "" : "s", x.seals,
			x.seals == 1 ? "" : "s", x.keys, x.keys == 1 ? "" : "s", x.w.offset, file);
out:
	if (f != NULL && f != stdout) {
		fclose(f);
		unlink(partial);
	}
	free(partial);
	free(x.heads);
	jsCtx_Destroy(x.js);
	return status;
}

/* ---- import --------------------------------------------------------------------- */

static const char usage_import[] =
	"usage: " PROG " import FILE\n"
	"Restores a CAR file written by export --car through the daemon's\n"
	"restore operation ('-': stdin), aggregate by aggregate: from each\n"
	"aggregate's head on, so what the store holds already is checked against\n"
	"the file and passed over (a second import of the same file changes\n"
	"nothing; one that was interrupted goes on where it stopped). The blocks\n"
	"are stored exactly as in the file, with the same CIDs, in batches within\n"
	"the payload limit, carrying their seals; a store that signs seals the\n"
	"last event of each batch. A progress bar goes to stderr on a terminal.\n";

/* One event waiting to be sent, and the seal that goes with it. */
struct pend {
	char *block; /* base64 */
	char *seal;  /* base64 of its seal block, or NULL */
	cim_cid cid;
	uint64_t version;
};

/* ---- the senders: restore requests, several aggregates at once ---------------- */

#define SENDERS 4
#define QUEUE_MAX 2

struct request {
	struct request *next;
	char type[CIM_TYPE_MAX + 1], id[CIM_ID_MAX + 1];
	json_t *body;
	char head[CIM_CID_TEXT_MAX]; /* what the reply must say */
	uint64_t first, last;        /* versions, for messages */
};

struct sender {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct request *first, *last;
	int queued;
	bool closed;
	struct ctx *cx;
	atomic_int *failed; /* the first failure's exit status, 0: none */
};

static void
request_free(struct request *r)
{
	json_decref(r->body);
	free(r);
}

/* One restore: 0, or the exit status after saying why. */
static int
send_request(struct ctx *cx, const struct request *r)
{
	json_t *reply = NULL;
	int status = cli_request(cx, "restore", r->type, r->id, r->body, &reply);

	if (status != 0) {
		fprintf(stderr, PROG ": import: %s/%s versions %" PRIu64 " to %" PRIu64
			" were not restored\n", r->type, r->id, r->first, r->last);
		return status;
	}
	const char *head = json_string_value(json_object_get(reply, "head"));
	if (head == NULL || strcmp(head, r->head) != 0) {
		fprintf(stderr, PROG ": bad_reply: restoring %s/%s ended at head %s, not %s\n",
			r->type, r->id, head ? head : "(none)", r->head);
		status = EXIT_DAEMON;
	}
	json_decref(reply);
	return status;
}

static void *
sender_run(void *arg)
{
	struct sender *s = arg;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (s->first == NULL && !s->closed)
			pthread_cond_wait(&s->cv, &s->mu);
		struct request *r = s->first;
		if (r == NULL) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		pthread_mutex_unlock(&s->mu);
		/* after a failure the rest is not sent */
		if (atomic_load(s->failed) == 0) {
			int status = send_request(s->cx, r);
			int none = 0;
			if (status != 0)
				atomic_compare_exchange_strong(s->failed, &none, status);
		}
		pthread_mutex_lock(&s->mu);
		s->first = r->next;
		if (s->first == NULL)
			s->last = NULL;
		s->queued--;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		request_free(r);
	}
}

/* Queues r on s, waiting while s has QUEUE_MAX. */
static void
sender_put(struct sender *s, struct request *r)
{
	pthread_mutex_lock(&s->mu);
	while (s->queued >= QUEUE_MAX)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->last != NULL)
		s->last->next = r;
	else
		s->first = r;
	s->last = r;
	s->queued++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void
sender_close(struct sender *s)
{
	pthread_mutex_lock(&s->mu);
	s->closed = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}

struct import {
	struct ctx *cx;
	size_t max_events, budget; /* per request */
	char type[CIM_TYPE_MAX + 1], id[CIM_ID_MAX + 1];
	bool open;                 /* an aggregate is being read */
	cim_head head;             /* the store's, when it was opened */
	cim_cid head_cid;
	uint64_t next;             /* the version expected next in the file */
	cim_cid last;              /* the CID of the file's last event */
	struct pend *p;            /* not sent yet */
	size_t n, cap, bytes;
	char *key;                 /* the aggregate's key block, base64 */
	char done_type[CIM_TYPE_MAX + 1], done_id[CIM_ID_MAX + 1];
	uint64_t aggregates, restored, skipped, seals, requests;
	uint64_t offset;           /* of the block being read, for messages */
	struct bar bar;
	struct sender senders[SENDERS];
	int nsenders;              /* started */
	atomic_int failed;         /* a sender's exit status, 0: none */
	unsigned agg_hash;         /* the open aggregate's sender */
};

static char *
b64(const uint8_t *p, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *t = malloc(cap);

	if (t != NULL)
		sodium_bin2base64(t, cap, p, len, sodium_base64_VARIANT_ORIGINAL);
	return t;
}

static void
pend_free(struct pend *p)
{
	free(p->block);
	free(p->seal);
}

static size_t
pend_bytes(const struct pend *p)
{
	return strlen(p->block) + 3 + (p->seal ? strlen(p->seal) + 3 : 0);
}

/* Hands im->p[0..k) to the aggregate's sender as one restore request.
 * 0, or the exit status. */
static int
send_batch(struct import *im, size_t k)
{
	struct request *r = calloc(1, sizeof(*r));
	json_t *blocks = json_array(), *seals = json_array();
	int failed = atomic_load(&im->failed);

	if (failed != 0) {
		free(r);
		json_decref(blocks);
		json_decref(seals);
		return failed;
	}
	if (r == NULL || blocks == NULL || seals == NULL ||
	    (r->body = json_pack("{so}", "blocks", blocks)) == NULL) {
		free(r);
		json_decref(seals);
		return cli_fail_nomem();
	}
	for (size_t i = 0; i < k; i++) {
		json_array_append_new(blocks, json_string(im->p[i].block));
		if (im->p[i].seal)
			json_array_append_new(seals, json_string(im->p[i].seal));
	}
	if (json_array_size(seals) > 0)
		json_object_set_new(r->body, "seals", seals);
	else
		json_decref(seals);
	if (im->key != NULL) /* with the aggregate's first restore */
		json_object_set_new(r->body, "key", json_string(im->key));
	snprintf(r->type, sizeof(r->type), "%s", im->type);
	snprintf(r->id, sizeof(r->id), "%s", im->id);
	cim_cid_to_text(&im->p[k - 1].cid, r->head);
	r->first = im->p[0].version;
	r->last = im->p[k - 1].version;
	sender_put(&im->senders[im->agg_hash % (unsigned)im->nsenders], r);
	free(im->key);
	im->key = NULL;
	im->requests++;
	for (size_t i = 0; i < k; i++) {
		im->bytes -= pend_bytes(&im->p[i]);
		im->seals += im->p[i].seal != NULL;
		pend_free(&im->p[i]);
	}
	memmove(im->p, im->p + k, (im->n - k) * sizeof(*im->p));
	im->n -= k;
	im->restored += k;
	return 0;
}

/* Sends what waits, in batches ending at a sealed event where one can
 * (all of it when all). 0, or the exit status. */
static int
flush(struct import *im, bool all)
{
	while (im->n > 0) {
		size_t k = 0, bytes = 0, cut = 0;
		while (k < im->n && k < im->max_events &&
		       bytes + pend_bytes(&im->p[k]) <= im->budget) {
			bytes += pend_bytes(&im->p[k]);
			if (im->p[k++].seal != NULL)
				cut = k;
		}
		if (k == 0) {
			fprintf(stderr, PROG ": import: %s/%s version %" PRIu64 " alone is over "
				"the payload limit\n", im->type, im->id, im->p[0].version);
			return EXIT_BROKEN;
		}
		bool full = k < im->n;
		if (!full && !all)
			return 0;
		int status = send_batch(im, full && cut > 0 ? cut : k);
		if (status != 0)
			return status;
	}
	return 0;
}

static int
close_aggregate(struct import *im)
{
	int status;

	if (!im->open)
		return 0;
	if ((status = flush(im, true)) != 0)
		return status;
	if (im->next <= im->head.version) {
		fprintf(stderr, PROG ": import: %s/%s: the store holds version %" PRIu64
			" but the file ends at version %" PRIu64 "\n", im->type, im->id,
			im->head.version, im->next - 1);
		return EXIT_BROKEN;
	}
	snprintf(im->done_type, sizeof(im->done_type), "%s", im->type);
	snprintf(im->done_id, sizeof(im->done_id), "%s", im->id);
	im->open = false;
	im->aggregates++;
	return 0;
}

/* The next aggregate of the file begins: its head in the store. */
static int
open_aggregate(struct import *im, const char *type, size_t tl, const char *id, size_t il)
{
	cim_error err = {0};
	cim_err rc;
	int status;

	if ((status = close_aggregate(im)) != 0)
		return status;
	snprintf(im->type, sizeof(im->type), "%.*s", (int)tl, type);
	snprintf(im->id, sizeof(im->id), "%.*s", (int)il, id);
	/* our files hold each aggregate once, in one run: in sorted order */
	if (im->done_type[0] != '\0' &&
	    (strcmp(im->type, im->done_type) < 0 ||
	     (strcmp(im->type, im->done_type) == 0 && strcmp(im->id, im->done_id) <= 0))) {
		fprintf(stderr, PROG ": import: %s/%s at byte %" PRIu64 " comes after %s/%s: "
			"import reads files in the order export --car writes them\n", im->type,
			im->id, im->offset, im->done_type, im->done_id);
		return EXIT_BROKEN;
	}
	if ((rc = cim_get_head(im->cx->client, im->type, im->id, &im->head, &err)) != CIM_ERR_OK)
		return cli_fail(rc, &err);
	if (im->head.version > 0 && cim_cid_from_text(&im->head_cid, im->head.head) != 0) {
		fprintf(stderr, PROG ": bad_reply: the head of %s/%s is not a CID\n", im->type,
			im->id);
		return EXIT_DAEMON;
	}
	im->open = true;
	im->next = 1;
	im->agg_hash = 2166136261u;
	for (const char *c = im->type; *c; c++)
		im->agg_hash = (im->agg_hash ^ (unsigned char)*c) * 16777619u;
	for (const char *c = im->id; *c; c++)
		im->agg_hash = (im->agg_hash ^ (unsigned char)*c) * 16777619u;
	return 0;
}

static int
take_event(struct import *im, const cim_car_block *b, const cim_event_view *v)
{
	int status;

	if (!im->open || strlen(im->type) != v->aggregate_type_len ||
	    memcmp(im->type, v->aggregate_type, v->aggregate_type_len) != 0 ||
	    strlen(im->id) != v->aggregate_id_len ||
	    memcmp(im->id, v->aggregate_id, v->aggregate_id_len) != 0)
		if ((status = open_aggregate(im, v->aggregate_type, v->aggregate_type_len,
					     v->aggregate_id, v->aggregate_id_len)) != 0)
			return status;
	if (v->version != im->next || (v->version > 1 && !cim_cid_equal(&v->prev, &im->last))) {
		fprintf(stderr, PROG ": import: %s/%s version %" PRIu64 " at byte %" PRIu64
			" does not follow version %" PRIu64 " (import reads files in the "
			"order export --car writes them; verify-car checks the chain)\n",
			im->type, im->id, v->version, b->offset, im->next - 1);
		return EXIT_BROKEN;
	}
	im->next++;
	im->last = b->cid;
	im->bar.done = b->offset;
	bar_show(&im->bar, false);
	if (v->version <= im->head.version) {
		/* stored already: it must be the store's own */
		if (v->version == im->head.version && !cim_cid_equal(&b->cid, &im->head_cid)) {
			fprintf(stderr, PROG ": import: %s/%s: the store's version %" PRIu64
				" is %s, not the file's; nothing more of it is restored\n",
				im->type, im->id, v->version, im->head.head);
			return EXIT_BROKEN;
		}
		im->skipped++;
		return 0;
	}
	if (im->n == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 256;
		struct pend *p = realloc(im->p, cap * sizeof(*p));
		if (p == NULL)
			return cli_fail_nomem();
		im->p = p;
		im->cap = cap;
	}
	struct pend *p = &im->p[im->n];
	memset(p, 0, sizeof(*p));
	if ((p->block = b64(b->data, b->len)) == NULL)
		return cli_fail_nomem();
	p->cid = b->cid;
	p->version = v->version;
	im->n++;
	im->bytes += pend_bytes(p);
	return flush(im, false);
}

static int
take_seal(struct import *im, const cim_car_block *b, const cim_seal_block *s)
{
	/* it follows its event: that event is waiting, or was stored before */
	for (size_t i = im->n; i-- > 0;)
		if (cim_cid_equal(&im->p[i].cid, &s->cid)) {
			if (im->p[i].seal != NULL)
				break;
			if ((im->p[i].seal = b64(b->data, b->len)) == NULL)
				return cli_fail_nomem();
			im->bytes += strlen(im->p[i].seal) + 3;
			return 0;
		}
	if (im->open && cim_cid_equal(&s->cid, &im->last) && im->next - 1 <= im->head.version)
		return 0; /* its event is stored already, with the store's headers */
	fprintf(stderr, PROG ": import: the seal block at byte %" PRIu64 " does not follow "
		"the event it seals (import reads files in the order export --car writes "
		"them)\n", b->offset);
	return EXIT_BROKEN;
}

static int
take_key(struct import *im, const cim_car_block *b, const cim_wrapped_key *w)
{
	int status;

	/* a key block comes first, before its aggregate's events */
	if ((status = open_aggregate(im, w->aggregate_type, strlen(w->aggregate_type),
				     w->aggregate_id, strlen(w->aggregate_id))) != 0)
		return status;
	free(im->key);
	if (im->head.version > 0) {
		im->key = NULL; /* the store has it already */
		return 0;
	}
	return (im->key = b64(b->data, b->len)) != NULL ? 0 : cli_fail_nomem();
}

/* The daemon's limits: max_events_per_append from info, the payload
 * limit of the connection. */
static int
import_limits(struct import *im)
{
	json_t *info = NULL;
	int status;

	if ((status = cli_request(im->cx, "info", NULL, NULL, NULL, &info)) != 0)
		return status;
	json_int_t me = json_integer_value(
		json_object_get(json_object_get(info, "settings"), "max_events_per_append"));
	json_decref(info);
	im->max_events = me > 0 ? (size_t)me : 1000;
	int64_t mp = natsConnection_GetMaxPayload(im->cx->nc);
	/* room for the JSON around the blocks and the request's headers */
	im->budget = mp > 8192 ? (size_t)mp - 4096 : 4096;
	return 0;
}

int
cli_import(struct ctx *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct positionals pos = {.n = 0};
	struct import im = {.cx = cx};
	cim_car_reader r;
	cim_car_block b;
	struct stat st;
	FILE *f;
	int ch, rc, status = 0;

	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'h':
			fputs(usage_import, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0)
		return EXIT_USAGE;
	if (pos.n != 1)
		return pos.n == 0 ? cli_usage_error("import needs FILE")
				  : cli_usage_error("unexpected argument '%s'", pos.v[1]);
	if (strcmp(pos.v[0], "-") == 0) {
		f = stdin;
	} else if ((f = fopen(pos.v[0], "rb")) == NULL) {
		fprintf(stderr, PROG ": import: cannot open %s: %s\n", pos.v[0], strerror(errno));
		return EXIT_BROKEN;
	}
	if ((status = cli_connect(cx)) != 0 || (status = import_limits(&im)) != 0)
		goto out;
	for (; im.nsenders < SENDERS; im.nsenders++) {
		struct sender *s = &im.senders[im.nsenders];
		s->cx = cx;
		s->failed = &im.failed;
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->cv, NULL);
		if (pthread_create(&s->thread, NULL, sender_run, s) != 0) {
			pthread_mutex_destroy(&s->mu);
			pthread_cond_destroy(&s->cv);
			status = cli_fail_nomem();
			goto out;
		}
	}
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
		im.bar.total = (uint64_t)st.st_size;
	im.bar.on = isatty(STDERR_FILENO) && im.bar.total > 0;
	im.bar.unit = "bytes";
	if (cim_car_reader_open(&r, cim_car_stdio_source, f, NULL, NULL) != 0) {
		fprintf(stderr, PROG ": import: %s: %s\n", pos.v[0], r.err);
		cim_car_reader_close(&r);
		status = EXIT_BROKEN;
		goto out;
	}
	while (status == 0 && (rc = cim_car_reader_next(&r, &b)) == 1) {
		cim_event_view v;
		cim_seal_block s;
		cim_wrapped_key w;
		char why[200], text[CIM_CID_TEXT_MAX];

		im.offset = b.offset;
		if (!cim_cid_matches(&b.cid, b.data, b.len)) {
			cim_cid_to_text(&b.cid, text);
			fprintf(stderr, PROG ": import: the block at byte %" PRIu64 " does not hash "
				"to its CID %s\n", b.offset, text);
			status = EXIT_BROKEN;
		} else if (cim_event_check(b.data, b.len, &v, why, sizeof(why)) == 0) {
			status = take_event(&im, &b, &v);
		} else if (cim_seal_block_decode(b.data, b.len, &s, why, sizeof(why)) == 0) {
			status = take_seal(&im, &b, &s);
		} else if (cim_keyblock_decode(&w, b.data, b.len, why, sizeof(why)) == 0) {
			status = take_key(&im, &b, &w);
		} else {
			cim_cid_to_text(&b.cid, text);
			fprintf(stderr, PROG ": import: the block %s at byte %" PRIu64 " is no "
				"event, seal or key block\n", text, b.offset);
			status = EXIT_BROKEN;
		}
	}
	if (status == 0 && rc < 0) {
		fprintf(stderr, PROG ": import: %s: %s\n", pos.v[0], r.err);
		status = EXIT_BROKEN;
	}
	if (status == 0)
		status = close_aggregate(&im);
	cim_car_reader_close(&r);
	/* every request sent (or, after a failure, dropped) */
	for (; im.nsenders > 0; im.nsenders--)
		sender_close(&im.senders[im.nsenders - 1]);
	if (status == 0)
		status = atomic_load(&im.failed);
	bar_end(&im.bar);
	if (status == 0)
		fprintf(stderr, PROG ": imported %" PRIu64 " aggregate%s: %" PRIu64
			" event%s restored in %" PRIu64 " request%s, %" PRIu64 " seal%s, %" PRIu64
			" event%s already stored\n", im.aggregates, im.aggregates == 1 ? "" : "s",
			im.restored, im.restored == 1 ? "" : "s", im.requests,
			im.requests == 1 ? "" : "s", im.seals, im.seals == 1 ? "" : "s",
			im.skipped, im.skipped == 1 ? "" : "s");
out:
	for (; im.nsenders > 0; im.nsenders--)
		sender_close(&im.senders[im.nsenders - 1]);
	for (size_t i = 0; i < im.n; i++)
		pend_free(&im.p[i]);
	free(im.p);
	free(im.key);
	if (f != stdin)
		fclose(f);
	return status;
}
