/*
 * projection.c: durable projections, a subscription whose position is kept
 * in a KV bucket (CIM-CHECKPOINTS) under the projection's name.
 *
 * The value is {"seq": N, "pattern": "...", "stream": "...", "updated":
 * "<RFC 3339>"}: every matching event at or before N has been handled.
 * N is the subscription's safe_seq as it stood right after the last event
 * the handler accepted, so it never passes an event that was not handled,
 * nor one held back for the rest of its batch. A run after a crash starts
 * at N + 1: what was handled after the last checkpoint comes again (at
 * least once), nothing is skipped.
 *
 * An event the handler refuses (or a failed check the caller chose to stop
 * at) stays with the projection and is handed again first by the next run,
 * so refusing does not skip it either.
 *
 * The value is written only over the revision this projection read or
 * wrote last (create when there was none), so a second process under the
 * same name, or a reset while this one runs, is found out at the next
 * checkpoint instead of the two overwriting each other's position.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

#define DEFAULT_PATTERN "events.>"
#define DEFAULT_STREAM "CIM-EVENTS"
#define DEFAULT_BUCKET "CIM-CHECKPOINTS"
#define DEFAULT_EVERY 100
#define DEFAULT_INTERVAL_MS 1000
#define POLL_MS 100 /* longest wait between looks at the stop flag */
#define NAME_MAX_LEN 64

struct cim_projection {
	cim_client *c;
	jsCtx *js;
	kvStore *kv;
	cim_subscription *sub;
	char *name;
	char *pattern;
	char *stream;
	char *bucket;
	unsigned every;
	int64_t interval_ms;
	int (*on_check_failure)(void *ctx, const cim_event *ev,
				const cim_error *why);
	uint64_t pos;        /* handled up to here */
	uint64_t saved;      /* the position last written */
	bool ever_saved;
	unsigned since;      /* events handled since the last checkpoint */
	int64_t saved_at_ms;
	const cim_event *again; /* handed out, not handled: hand it again */
	bool again_failed;      /* ...as a failed check, with again_why */
	cim_error again_why;
	uint64_t rev;           /* of the checkpoint as last read or written;
				   0: there was none */
	bool conflict;          /* another writer changed it: no more writes */
	atomic_bool stop;       /* sticky until close */
};

/* ---- the KV bucket ----------------------------------------------------------- */

static cim_err
check_name(const char *name, cim_error *err)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > NAME_MAX_LEN ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789_-") != n)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "name",
				 "name must be 1 to 64 of A-Z a-z 0-9 _ -");
	return CIM_ERR_OK;
}

/* A bucket name as JetStream KV takes it; nats.c would refuse anything
 * else with a status that says nothing of which argument was wrong. */
static cim_err
check_bucket(const char *bucket, cim_error *err)
{
	size_t n = strlen(bucket);

	if (n == 0 ||
	    strspn(bucket, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			   "0123456789_-") != n)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "bucket",
				 "bucket \"%.100s\" is not a KV bucket name "
				 "(A-Z a-z 0-9 _ -)",
				 bucket);
	return CIM_ERR_OK;
}

/* The bucket through a JetStream context of our own. */
static cim_err
open_bucket(cim_client *c, const char *bucket, jsCtx **js, kvStore **kv,
	    cim_error *err)
{
	natsStatus s;

	*js = NULL;
	*kv = NULL;
	if ((s = cimc_jetstream(c, js)) != NATS_OK)
		return cimc_js_fail(err, s, 0, "opening JetStream");
	s = js_KeyValue(kv, *js, bucket);
	if (s == NATS_OK)
		return CIM_ERR_OK;
	jsCtx_Destroy(*js);
	*js = NULL;
	*kv = NULL;
	if (s == NATS_NOT_FOUND)
		return cimc_fail(err, CIM_ERR_NOT_FOUND, "bucket",
				 "the KV bucket \"%s\" does not exist (the "
				 "daemon creates it when it starts)",
				 bucket);
	return cimc_js_fail(err, s, 0, "opening the checkpoint bucket");
}

/* Now as RFC 3339, UTC, nanoseconds. */
static void
rfc3339_now(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char day[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%09ldZ", day, (long)ts.tv_nsec);
}

static cim_err
conflict(cim_projection *p, cim_error *err)
{
	return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "name",
			 "the checkpoint of projection \"%s\" was changed by "
			 "another process (another instance or a reset); "
			 "reopen it",
			 p->name);
}

/* After a refused write: whether the stored checkpoint is no longer the
 * revision this projection knows (the write's own status cannot tell a
 * wrong revision from other refusals). */
static bool
changed_by_another(cim_projection *p)
{
	kvEntry *e = NULL;
	natsStatus s = kvStore_Get(&e, p->kv, p->name);
	bool changed;

	if (s == NATS_NOT_FOUND)
		return p->rev != 0; /* reset since */
	if (s != NATS_OK)
		return false;
	changed = kvEntry_Revision(e) != p->rev;
	kvEntry_Destroy(e);
	return changed;
}

static cim_err
write_checkpoint(cim_projection *p, cim_error *err)
{
	char when[64], *text;
	uint64_t rev = 0;
	natsStatus s;
	json_t *j;

	rfc3339_now(when, sizeof(when));
	j = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)p->pos,
		      "pattern", p->pattern, "stream", p->stream, "updated",
		      when);
	text = j != NULL ? cim_json_text(j) : NULL;
	json_decref(j);
	if (text == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	if (p->conflict) {
		free(text);
		return conflict(p, err);
	}
	if (p->rev == 0)
		s = kvStore_Create(&rev, p->kv, p->name, text,
				   (int)strlen(text));
	else
		s = kvStore_Update(&rev, p->kv, p->name, text,
				   (int)strlen(text), p->rev);
	free(text);
	if (s != NATS_OK) {
		cim_err rc = cimc_js_fail(err, s, 0, "writing the checkpoint");

		if (changed_by_another(p)) {
			p->conflict = true;
			return conflict(p, err);
		}
		return rc;
	}
	p->rev = rev;
	p->saved = p->pos;
	p->ever_saved = true;
	p->since = 0;
	p->saved_at_ms = cimc_now_ms();
	return CIM_ERR_OK;
}

/* The stored checkpoint: *found false when there is none. */
static cim_err
read_checkpoint(cim_projection *p, bool *found, cim_error *err)
{
	kvEntry *e = NULL;
	json_error_t jerr;
	const char *pat, *stream;
	json_t *j, *seq;
	natsStatus s;
	cim_err rc = CIM_ERR_OK;

	*found = false;
	s = kvStore_Get(&e, p->kv, p->name);
	if (s == NATS_NOT_FOUND)
		return CIM_ERR_OK;
	if (s != NATS_OK)
		return cimc_js_fail(err, s, 0, "reading the checkpoint");
	p->rev = kvEntry_Revision(e);
	j = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, &jerr);
	kvEntry_Destroy(e);
	seq = json_object_get(j, "seq");
	pat = json_string_value(json_object_get(j, "pattern"));
	stream = json_string_value(json_object_get(j, "stream"));
	if (!json_is_integer(seq) || json_integer_value(seq) < 0 ||
	    pat == NULL)
		rc = cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
			       "the checkpoint of projection \"%s\" in %s is "
			       "not understood (want {\"seq\": N, \"pattern\": "
			       "...}); reset it to rebuild",
			       p->name, p->bucket);
	else if (strcmp(pat, p->pattern) != 0)
		rc = cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "pattern",
			       "projection \"%s\" was checkpointed for the "
			       "pattern \"%.150s\", not \"%.150s\"; reset it to "
			       "rebuild for the new pattern",
			       p->name, pat, p->pattern);
	else if (stream != NULL && strcmp(stream, p->stream) != 0)
		rc = cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "stream",
			       "projection \"%s\" was checkpointed on the "
			       "stream \"%.150s\", not \"%.150s\"; reset it to "
			       "rebuild",
			       p->name, stream, p->stream);
	if (rc == CIM_ERR_OK) {
		*found = true;
		p->pos = p->saved = (uint64_t)json_integer_value(seq);
		p->ever_saved = true;
	}
	json_decref(j);
	return rc;
}

/* ---- open and close ---------------------------------------------------------- */

void
cim_projection_close(cim_projection *p)
{
	if (p == NULL)
		return;
	if (p->kv != NULL && (!p->ever_saved || p->pos != p->saved))
		write_checkpoint(p, NULL);
	cim_subscription_close(p->sub);
	kvStore_Destroy(p->kv);
	jsCtx_Destroy(p->js);
	free(p->name);
	free(p->pattern);
	free(p->stream);
	free(p->bucket);
	free(p);
}

cim_err
cim_projection_open(cim_client *c, const cim_projection_options *o,
		    cim_projection **out, cim_error *err)
{
	cim_subscribe_options so = {0};
	cim_projection *p;
	cim_progress pr;
	bool found;
	cim_err rc;

	cimc_clear(err);
	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	*out = NULL;
	if (c == NULL || o == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
				 c == NULL ? "client" : "options",
				 "%s must not be NULL",
				 c == NULL ? "client" : "options");
	if ((rc = check_name(o->name, err)) != CIM_ERR_OK ||
	    (o->bucket != NULL &&
	     (rc = check_bucket(o->bucket, err)) != CIM_ERR_OK))
		return rc;
	if (o->checkpoint_interval_ms < 0)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
				 "checkpoint_interval_ms",
				 "checkpoint_interval_ms must not be negative");
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->name = cimc_strdup(o->name)) == NULL ||
	    (p->pattern = cimc_strdup(o->pattern ? o->pattern
						 : DEFAULT_PATTERN)) == NULL ||
	    (p->stream = cimc_strdup(o->stream ? o->stream
					       : DEFAULT_STREAM)) == NULL ||
	    (p->bucket = cimc_strdup(o->bucket ? o->bucket
					       : DEFAULT_BUCKET)) == NULL) {
		cim_projection_close(p);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	p->c = c;
	p->every = o->checkpoint_every ? o->checkpoint_every : DEFAULT_EVERY;
	p->interval_ms = o->checkpoint_interval_ms ? o->checkpoint_interval_ms
						   : DEFAULT_INTERVAL_MS;
	p->on_check_failure = o->on_check_failure;
	atomic_init(&p->stop, false);
	p->saved_at_ms = cimc_now_ms();

	if ((rc = open_bucket(c, p->bucket, &p->js, &p->kv, err)) ||
	    (rc = read_checkpoint(p, &found, err))) {
		p->ever_saved = true; /* nothing to write on the way out */
		cim_projection_close(p);
		return rc;
	}
	so.pattern = p->pattern;
	so.stream = p->stream;
	so.no_check = o->no_check;
	so.trusted_keys = o->trusted_keys;
	so.n_trusted_keys = o->n_trusted_keys;
	if (found && p->pos > 0) {
		so.start = CIM_START_SEQ;
		so.start_seq = p->pos + 1;
	} else {
		so.start = CIM_START_BEGIN;
	}
	if ((rc = cim_subscribe(c, &so, &p->sub, err)) != CIM_ERR_OK) {
		p->ever_saved = true;
		cim_projection_close(p);
		return rc;
	}
	/* A position past the stream's end belongs to another stream of the
	 * same name (recreated): resuming there would skip what the new one
	 * stores up to it. One before its first sequence only means events
	 * were removed by limits; the consumer starts at the first. */
	cim_subscription_progress(p->sub, &pr);
	if (found && p->pos > pr.end_seq) {
		rc = cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "name",
			       "the checkpoint of projection \"%s\" is at seq "
			       "%llu, past the end of stream %s (seq %llu): "
			       "the stream was recreated; reset the "
			       "projection to rebuild",
			       p->name, (unsigned long long)p->pos, p->stream,
			       (unsigned long long)pr.end_seq);
		p->ever_saved = true;
		p->saved = p->pos;
		cim_projection_close(p);
		return rc;
	}
	cimc_subscription_set_stop(p->sub, &p->stop);
	*out = p;
	return CIM_ERR_OK;
}

/* ---- running ----------------------------------------------------------------- */

void
cim_projection_stop(cim_projection *p)
{
	if (p != NULL)
		atomic_store(&p->stop, true);
}

bool
cim_projection_stopped(const cim_projection *p)
{
	return p != NULL && atomic_load(&p->stop);
}

uint64_t
cim_projection_position(const cim_projection *p)
{
	return p != NULL ? p->pos : 0;
}

cim_err
cim_projection_checkpoint(cim_projection *p, cim_error *err)
{
	cimc_clear(err);
	if (p == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "projection",
				 "projection must not be NULL");
	return write_checkpoint(p, err);
}

/* The event given out last is handled: the position moves to where the
 * subscription stands now, which is at or before the next event. */
static void
handled(cim_projection *p)
{
	cim_progress pr;

	p->again = NULL;
	cim_subscription_progress(p->sub, &pr);
	if (pr.safe_seq > p->pos)
		p->pos = pr.safe_seq;
	p->since++;
}

/* A checkpoint when checkpoint_every events or checkpoint_interval_ms
 * have passed. A failure is kept in *cp_err and tried again next time;
 * the run reports it only if the last one fails. */
static void
maybe_checkpoint(cim_projection *p, cim_err *cp_rc, cim_error *cp_err)
{
	if (p->pos == p->saved && p->ever_saved)
		return;
	if (p->since < p->every &&
	    cimc_now_ms() - p->saved_at_ms < p->interval_ms)
		return;
	*cp_rc = write_checkpoint(p, cp_err);
	if (*cp_rc != CIM_ERR_OK)
		p->saved_at_ms = cimc_now_ms(); /* not again at once */
}

/* The deadline of idle_ms from t, saturated (INT64_MAX: none). */
static int64_t
idle_deadline(int64_t t, int64_t idle_ms)
{
	return idle_ms < 0 || idle_ms > INT64_MAX - t ? INT64_MAX : t + idle_ms;
}

cim_err
cim_projection_run(cim_projection *p, cim_event_fn handler, void *ctx,
		   int64_t idle_ms, cim_error *err)
{
	int64_t last_event = cimc_now_ms();
	cim_err rc = CIM_ERR_OK, cp_rc = CIM_ERR_OK;
	cim_error cp_err;

	cimc_clear(err);
	cimc_clear(&cp_err);
	if (p == NULL || handler == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
				 p == NULL ? "projection" : "handler",
				 "%s must not be NULL",
				 p == NULL ? "projection" : "handler");
	for (;;) {
		const cim_event *ev = p->again;

		/* Sticky: a loop of runs around a stopped projection ends
		 * rather than starting the next one. */
		if (atomic_load(&p->stop))
			break;
		if (p->conflict) {
			rc = conflict(p, err);
			break;
		}
		if (ev == NULL) {
			int64_t wait = POLL_MS;
			cim_error e;

			if (idle_ms >= 0) {
				int64_t left = idle_deadline(last_event,
							     idle_ms) -
					       cimc_now_ms();

				if (left <= 0)
					break;
				if (left < wait)
					wait = left;
			}
			rc = cim_subscription_next(p->sub, wait, &ev, &e);
			if (rc == CIM_ERR_TIMEOUT) {
				rc = CIM_ERR_OK;
				maybe_checkpoint(p, &cp_rc, &cp_err);
				continue;
			}
			if (rc == CIM_ERR_OK && ev == NULL)
				break; /* not a replay: does not happen */
			if (rc != CIM_ERR_OK && rc != CIM_ERR_CHECK_FAILED) {
				if (err != NULL)
					*err = e;
				break;
			}
			p->again = ev;
			p->again_failed = rc == CIM_ERR_CHECK_FAILED;
			p->again_why = e;
			rc = CIM_ERR_OK;
		}
		last_event = cimc_now_ms();
		if (p->again_failed) {
			if (p->on_check_failure == NULL ||
			    p->on_check_failure(ctx, ev, &p->again_why) != 0) {
				rc = CIM_ERR_CHECK_FAILED;
				if (err != NULL)
					*err = p->again_why;
				break;
			}
		} else if (handler(ctx, ev) != 0) {
			rc = cimc_fail(err, CIM_ERR_HANDLER, NULL,
				       "the handler of projection \"%s\" "
				       "returned non-zero for %s/%s version "
				       "%llu (seq %llu); it comes again on the "
				       "next run",
				       p->name, ev->aggregate_type,
				       ev->aggregate_id,
				       (unsigned long long)ev->version,
				       (unsigned long long)ev->seq);
			break;
		}
		handled(p);
		maybe_checkpoint(p, &cp_rc, &cp_err);
	}
	if (!p->conflict && (!p->ever_saved || p->pos != p->saved))
		cp_rc = write_checkpoint(p, &cp_err);
	if (rc == CIM_ERR_OK && cp_rc != CIM_ERR_OK) {
		if (err != NULL)
			*err = cp_err;
		return cp_rc;
	}
	return rc;
}

/* ---- reset ------------------------------------------------------------------- */

cim_err
cim_projection_reset(cim_client *c, const char *name, const char *bucket,
		     cim_error *err)
{
	jsCtx *js = NULL;
	kvStore *kv = NULL;
	natsStatus s;
	cim_err rc;

	cimc_clear(err);
	if (c == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "client",
				 "client must not be NULL");
	if (bucket == NULL)
		bucket = DEFAULT_BUCKET;
	if ((rc = check_name(name, err)) != CIM_ERR_OK ||
	    (rc = check_bucket(bucket, err)) != CIM_ERR_OK ||
	    (rc = open_bucket(c, bucket, &js, &kv, err)) != CIM_ERR_OK)
		return rc;
	/* Purge, not delete: no history of the old position is kept. */
	s = kvStore_Purge(kv, name, NULL);
	kvStore_Destroy(kv);
	jsCtx_Destroy(js);
	if (s != NATS_OK)
		return cimc_js_fail(err, s, 0, "removing the checkpoint");
	return CIM_ERR_OK;
}
