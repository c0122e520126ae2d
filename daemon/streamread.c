/*
 * streamread.c: reading ranges of the event stream (get, validate, load,
 * the start-up scan) and sets of messages by sequence (by_type).
 *
 * A range is read as one or more subject filters, each a "source", merged
 * by stream sequence. One aggregate is read as its exact subjects, one per
 * event type: nats-server 2.9.10 finds an exact subject from its per-block
 * index, while a filter with a wildcard makes it walk every message after
 * the start.
 *
 * How a read finds its end. nats-server 2.9.10 miscounts the pending
 * messages of a filtered consumer after deletes (one too many and one too
 * few were both measured, issue 12); a fetch that asks for more than there
 * is waits out its expiry; a no-wait fetch is answered "no messages", or
 * left waiting, from that same count. So no count is ever trusted. Before
 * a source fetches, the stream's leader is asked for the first message at
 * or after the source's next sequence on its filter ($JS.API.STREAM.MSG.GET
 * with next_by_subj, leader_get): none, or one past the range, ends the
 * source; one within the range is stored, so the fetch that follows has at
 * least that one to hand out and comes back as soon as the consumer has
 * nothing more at hand. The first messages of a source are taken from those
 * answers themselves (most sources of a get hold one or two events); a
 * consumer is made, at the sequence found, only for the rest.
 *
 * The filter that is the whole stream (events.> on a stream of only that
 * subject) is read without a filter: 2.9.10 walks the stream to count a
 * filtered consumer's pending messages when it is made (0.8 s on a stream
 * of 1M messages), and not an unfiltered one's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"

#define READ_WAIT_MS 5000          /* longest wait for a batch (never reached:
				      a fetch follows a message found) */
#define READ_BATCH 1024            /* messages per fetch */
#define READ_BATCH_BYTES (8 << 20) /* and bytes */
#define PROBE_TAKES 2              /* messages of a source taken from probes
				      before a consumer is made */
#define GETS_WAIT_MS 5000          /* for the answers of store_get_seqs */

/* One filter's messages. */
struct source {
	const char *filter;
	bool whole;           /* the whole stream: read without a filter */
	natsSubscription *sub;
	char consumer[64];    /* made here without a filter: deleted at close */
	natsMsgList list;     /* the last fetch */
	int pos;              /* its next message */
	natsMsg *cur;         /* the current message (from list, or probe) */
	natsMsg *probe;       /* a message a probe found, owned here */
	uint64_t seq;         /* of cur */
	int64_t ts;
	uint64_t next;        /* the first sequence not yet handed out */
	int probed;           /* messages taken from probes */
};

static void source_close(struct daemon *d, struct source *src)
{
	natsMsgList_Destroy(&src->list);
	natsMsg_Destroy(src->probe);
	if (src->sub) {
		natsSubscription_Unsubscribe(src->sub);
		natsSubscription_Destroy(src->sub);
	}
	if (src->consumer[0])
		js_DeleteConsumer(d->js, d->cfg->stream, src->consumer, NULL, NULL);
	memset(src, 0, sizeof *src);
}

/* Is server the stream's leader? The leader's name is remembered, and
 * asked again on a mismatch at most once a second (a mismatch mostly
 * means a consumer on a replica, not a new leader). */
static bool on_stream_leader(struct daemon *d, const char *server)
{
	bool same, stale;

	pthread_mutex_lock(&d->mu);
	same = strcmp(d->stream_leader, server) == 0;
	stale = now_ns() - d->stream_leader_at > 1000000000LL;
	if (!same && stale)
		d->stream_leader_at = now_ns();
	pthread_mutex_unlock(&d->mu);
	if (same || !stale)
		return same;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	if (js_GetStreamInfo(&si, d->js, d->cfg->stream, NULL, &je) != NATS_OK)
		return false;
	pthread_mutex_lock(&d->mu);
	if (si->Cluster && si->Cluster->Leader)
		snprintf(d->stream_leader, sizeof d->stream_leader, "%s", si->Cluster->Leader);
	same = strcmp(d->stream_leader, server) == 0;
	pthread_mutex_unlock(&d->mu);
	jsStreamInfo_Destroy(si);
	return same;
}

/* An ephemeral pull consumer without a filter, from seq, bound to sub. */
static natsStatus open_whole(struct daemon *d, struct source *src, uint64_t from,
			     jsConsumerInfo **ci, jsErrCode *je)
{
	jsConsumerConfig cc;
	jsSubOptions so;
	natsStatus s;

	jsConsumerConfig_Init(&cc);
	cc.DeliverPolicy = js_DeliverByStartSequence;
	cc.OptStartSeq = from;
	cc.AckPolicy = js_AckNone;
	cc.MemoryStorage = true;
	cc.InactiveThreshold = 30 * 1000000000LL; /* if we die reading */
	s = js_AddConsumer(ci, d->js, d->cfg->stream, &cc, NULL, je);
	if (s != NATS_OK)
		return s;
	snprintf(src->consumer, sizeof src->consumer, "%s", (*ci)->Name);
	jsSubOptions_Init(&so);
	so.Stream = d->cfg->stream;
	so.Consumer = src->consumer;
	so.Config = cc; /* nats.c checks that the consumer is the one asked for */
	return js_PullSubscribe(&src->sub, d->js, NULL, NULL, NULL, &so, je);
}

/* A consumer on a replica hands out that replica's copy of the stream,
 * which may lag behind the leader (a node just back, a leader just
 * elected). nats-server 2.9.10 places an ephemeral consumer on any
 * replica, with no way to ask for the leader: so on a replicated stream
 * the consumer is made again until it lands there (each try lands on a
 * leader with a chance of one in the number of replicas). */
#define LEADER_TRIES 24

static int source_open(struct daemon *d, struct source *src, uint64_t from, cim_perr *err)
{
	jsSubOptions so;
	jsErrCode je = 0;
	natsStatus s;

	jsSubOptions_Init(&so);
	so.Stream = d->cfg->stream;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = from;
	so.Config.AckPolicy = js_AckNone;
	so.Config.MemoryStorage = true;
	so.Config.InactiveThreshold = 30 * 1000000000LL; /* if we die reading */
	for (int t = 0;; t++) {
		jsConsumerInfo *ci = NULL;
		if (src->whole) {
			s = open_whole(d, src, from, &ci, &je);
		} else {
			s = js_PullSubscribe(&src->sub, d->js, src->filter, NULL, NULL, &so, &je);
			/* where it was placed matters only on a replicated stream */
			if (s == NATS_OK && d->stream_replicas > 1)
				s = natsSubscription_GetConsumerInfo(&ci, src->sub, NULL, &je);
		}
		if (s != NATS_OK) {
			jsConsumerInfo_Destroy(ci);
			return store_js_fail(err, s, je, "read");
		}
		const char *where = ci && ci->Cluster ? ci->Cluster->Leader : NULL;
		bool here = where == NULL || on_stream_leader(d, where);
		jsConsumerInfo_Destroy(ci);
		if (here)
			return 0;
		if (t + 1 >= LEADER_TRIES) {
			atomic_fetch_add(&d->reads_off_leader, 1);
			return 0;
		}
		natsSubscription_Unsubscribe(src->sub);
		natsSubscription_Destroy(src->sub);
		src->sub = NULL;
		if (src->consumer[0])
			js_DeleteConsumer(d->js, d->cfg->stream, src->consumer, NULL, NULL);
		src->consumer[0] = '\0';
	}
}

/* Reads stream sequence and timestamp from a message's reply subject,
 * $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
 * (or the 12-token form with domain and account hash, then a random token),
 * without the allocations of natsMsg_GetMetaData. 0, or -1 when it is not
 * such a subject. */
static int ack_position(natsMsg *m, uint64_t *seq, int64_t *ts)
{
	const char *r = natsMsg_GetReply(m), *tok[13];
	int n = 0;

	if (r == NULL || strncmp(r, "$JS.ACK.", 8) != 0)
		return -1;
	tok[n++] = r;
	for (const char *p = r; *p && n < 13; p++)
		if (*p == '.')
			tok[n++] = p + 1;
	int base = n == 9 ? 4 : n == 12 ? 6 : -1; /* index of <delivered> */
	if (base < 0)
		return -1;
	*seq = strtoull(tok[base + 1], NULL, 10);
	*ts = strtoll(tok[base + 3], NULL, 10);
	return 0;
}

/* Makes the next fetched message current: 1, or 0 when the fetch is used
 * up, or it holds nothing more within [.., to] (-1: a message without
 * stream metadata). */
static int source_take(struct source *src, uint64_t to, cim_perr *err)
{
	while (src->pos < src->list.Count) {
		natsMsg *m = src->list.Msgs[src->pos++];
		uint64_t seq = 0;
		int64_t ts = 0;
		if (ack_position(m, &seq, &ts) != 0) {
			jsMsgMetaData *meta = NULL;
			if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
				return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "%s",
						    "storage: a message came without its "
						    "stream sequence");
			seq = meta->Sequence.Stream;
			ts = meta->Timestamp;
			jsMsgMetaData_Destroy(meta);
		}
		if (seq < src->next)
			continue; /* handed out already */
		if (seq > to) {
			src->pos = src->list.Count;
			return 0;
		}
		src->cur = m;
		src->seq = seq;
		src->ts = ts;
		src->next = seq + 1;
		return 1;
	}
	return 0;
}

/* Makes the source's next message in [src->next, to] current. 1, 0 at its
 * end, -1 on error (err set). */
static int source_next(struct daemon *d, struct source *src, uint64_t to, cim_perr *err)
{
	int rc;

	src->cur = NULL;
	natsMsg_Destroy(src->probe);
	src->probe = NULL;
	if ((rc = source_take(src, to, err)) != 0)
		return rc;
	natsMsgList_Destroy(&src->list);
	src->pos = 0;
	for (int tries = 0; src->next <= to; tries++) {
		struct leader_msg lm;
		if ((rc = leader_get(d, src->next, src->filter, &lm, err)) < 0)
			return -1;
		if (rc == 0 || lm.seq > to) {
			natsMsg_Destroy(lm.msg);
			return 0; /* nothing more stored in the range: the end */
		}
		if (src->sub == NULL && (lm.seq == to || src->probed < PROBE_TAKES)) {
			src->probed++;
			src->cur = src->probe = lm.msg;
			src->seq = lm.seq;
			src->ts = lm.ts;
			src->next = lm.seq + 1;
			return 1;
		}
		natsMsg_Destroy(lm.msg);
		/* the consumer starts at the message found, or has nothing to
		 * hand out before it: this fetch has at least that one */
		if (src->sub == NULL && source_open(d, src, lm.seq, err) != 0)
			return -1;
		jsFetchRequest fr;
		jsFetchRequest_Init(&fr);
		fr.Batch = READ_BATCH;
		fr.MaxBytes = READ_BATCH_BYTES;
		fr.NoWait = true;
		fr.Expires = (int64_t)READ_WAIT_MS * 1000000;
		natsStatus s = natsSubscription_FetchRequest(&src->list, src->sub, &fr);
		if (s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND)
			return store_js_fail(err, s, 0, "read");
		if ((rc = source_take(src, to, err)) != 0)
			return rc;
		natsMsgList_Destroy(&src->list);
		if (tries >= 3)
			/* the message found is not handed out: removed since (a torn
			 * batch, taken back), else the consumer and the leader disagree */
			return cim_perr_set(err, CIM_ERR_UNAVAILABLE, NULL,
					    "storage: the stream's message at seq %llu cannot be "
					    "read; retry", (unsigned long long)lm.seq);
	}
	return 0;
}

/* Visits, in stream order, every message on any of the k filters with seq
 * in [from, to] (to may be STORE_TO_END), merged by sequence. */
static int read_merged(struct daemon *d, const char *const *filters, int k,
		       uint64_t from, uint64_t to, store_visit_fn visit, void *ctx,
		       cim_perr *err)
{
	char whole[160];
	struct source *src;
	int rc = 0, live = 0;

	if (from == 0)
		from = 1;
	if (to < from || k <= 0)
		return 0;
	src = calloc((size_t)k, sizeof *src);
	if (src == NULL)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	snprintf(whole, sizeof whole, "%s>", d->events_prefix);
	for (int i = 0; i < k && rc == 0; i++) {
		src[i].filter = filters[i];
		src[i].whole = d->stream_events_only && strcmp(filters[i], whole) == 0;
		src[i].next = from;
		rc = source_next(d, &src[i], to, err);
		if (rc > 0) {
			live++;
			rc = 0;
		}
	}
	while (rc == 0 && live > 0) {
		int best = -1;
		for (int i = 0; i < k; i++)
			if (src[i].cur != NULL && (best < 0 || src[i].seq < src[best].seq))
				best = i;
		struct source *b = &src[best];
		int v = visit(b->cur, b->seq, b->ts, ctx);
		if (v < 0)
			rc = -1;
		if (v != 0 || b->seq >= to)
			break;
		int more = source_next(d, b, to, err);
		if (more < 0)
			rc = -1;
		else if (more == 0)
			live--;
	}
	for (int i = 0; i < k; i++)
		source_close(d, &src[i]);
	free(src);
	return rc < 0 ? -1 : 0;
}

int store_read_filter(struct daemon *d, const char *filter, uint64_t from_seq,
		      uint64_t to_seq, store_visit_fn visit, void *ctx, cim_perr *err)
{
	return read_merged(d, &filter, 1, from_seq, to_seq, visit, ctx, err);
}

static void agg_filter(const struct daemon *d, const char *type, const char *id,
		       char *out, size_t n)
{
	snprintf(out, n, "%s%s.%s.*", d->events_prefix, type, id);
}

int store_read_agg(struct daemon *d, const char *type, const char *id,
		   const char *const *event_types, int ntypes, uint64_t from_seq,
		   uint64_t to_seq, store_visit_fn visit, void *ctx, cim_perr *err)
{
	char wild[256];
	char (*exact)[256] = NULL;
	const char **filters = NULL;
	int rc;

	if (ntypes < 0) {
		/* event types not known: one wildcard, slower on a large stream */
		agg_filter(d, type, id, wild, sizeof wild);
		return store_read_filter(d, wild, from_seq, to_seq, visit, ctx, err);
	}
	if (ntypes == 0)
		return 0;
	exact = calloc((size_t)ntypes, sizeof *exact);
	filters = calloc((size_t)ntypes, sizeof *filters);
	if (exact == NULL || filters == NULL) {
		free(exact);
		free(filters);
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	}
	for (int i = 0; i < ntypes; i++) {
		snprintf(exact[i], sizeof exact[i], "%s%s.%s.%s", d->events_prefix, type,
			 id, event_types[i]);
		filters[i] = exact[i];
	}
	rc = read_merged(d, filters, ntypes, from_seq, to_seq, visit, ctx, err);
	free(exact);
	free(filters);
	return rc;
}

int store_agg_subjects(struct daemon *d, const char *type, const char *id,
		       char ***event_types, int *n, cim_perr *err)
{
	char filter[256];
	jsStreamInfo *si = NULL;
	jsOptions jo;
	jsErrCode je = 0;
	natsStatus s;
	size_t plen;

	*event_types = NULL;
	*n = 0;
	agg_filter(d, type, id, filter, sizeof filter);
	plen = strlen(filter) - 1; /* the subjects are filter without '*' + type */
	jsOptions_Init(&jo);
	jo.Stream.Info.SubjectsFilter = filter;
	s = js_GetStreamInfo(&si, d->js, d->cfg->stream, &jo, &je);
	if (s != NATS_OK)
		return store_js_fail(err, s, je, "subjects");
	int count = si->State.Subjects ? si->State.Subjects->Count : 0;
	char **out = calloc((size_t)count + 1, sizeof *out);
	for (int i = 0; out != NULL && i < count; i++) {
		const char *subj = si->State.Subjects->List[i].Subject;
		if (strlen(subj) > plen && (out[*n] = strdup(subj + plen)) != NULL)
			(*n)++;
	}
	jsStreamInfo_Destroy(si);
	if (out == NULL)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	*event_types = out;
	return 0;
}

void store_free_subjects(char **event_types, int n)
{
	for (int i = 0; i < n; i++)
		free(event_types[i]);
	free(event_types);
}

/* ---- messages by sequence ------------------------------------------------------- */

/* One answer of a direct get into *out (m taken): 1 with out->msg set, -1
 * when it is anything else: then the leader is asked. Direct gets are
 * answered by any replica, and by any mirror made with MirrorDirect, so
 * neither a "no message" (404: a replica behind, a mirror that lags or
 * filters) nor a message another stream holds (a mirror keeps what the
 * stream deleted) is the stream's word. */
static int direct_answer(const struct daemon *d, natsMsg *m, struct stored_msg *out)
{
	const char *subject = NULL, *seq = NULL, *stream = NULL;

	if (natsMsgHeader_Get(m, "Nats-Subject", &subject) != NATS_OK || subject == NULL ||
	    natsMsgHeader_Get(m, "Nats-Sequence", &seq) != NATS_OK || seq == NULL ||
	    strtoull(seq, NULL, 10) != out->seq ||
	    (natsMsgHeader_Get(m, "Nats-Stream", &stream) == NATS_OK && stream != NULL &&
	     strcmp(stream, d->cfg->stream) != 0)) {
		natsMsg_Destroy(m);
		return -1;
	}
	out->msg = m;
	out->subject = subject;
	return 1;
}

int store_get_seqs(struct daemon *d, const uint64_t *seqs, size_t n, struct stored_msg *out,
		   cim_perr *err)
{
	natsInbox *inbox = NULL;
	natsSubscription *sub = NULL;
	char api[300], wild[160];
	/* per message: 0 no answer yet, 1 answered, 2 to be asked of the leader */
	uint8_t *done = calloc(n ? n : 1, sizeof *done);
	size_t got = 0;
	int rc = 0;

	memset(out, 0, n * sizeof *out);
	if (done == NULL)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	/* direct gets where the stream allows them: any replica answers, from
	 * its index, without JSON; else the leader's JSON message get */
	snprintf(api, sizeof api, d->stream_direct ? "%s.DIRECT.GET.%s" : "%s.STREAM.MSG.GET.%s",
		 d->js_api, d->cfg->stream);
	natsStatus s = natsInbox_Create(&inbox);
	if (s == NATS_OK) {
		snprintf(wild, sizeof wild, "%s.*", (const char *)inbox);
		s = natsConnection_SubscribeSync(&sub, d->nc, wild);
	}
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(sub, -1, -1);
	for (size_t i = 0; i < n && s == NATS_OK; i++) {
		char reply[200], body[48];
		out[i].seq = seqs[i];
		snprintf(reply, sizeof reply, "%s.%zu", (const char *)inbox, i);
		snprintf(body, sizeof body, "{\"seq\":%llu}", (unsigned long long)seqs[i]);
		s = natsConnection_PublishRequestString(d->nc, api, reply, body);
	}
	int64_t deadline = now_mono_ns() + (int64_t)GETS_WAIT_MS * 1000000;
	while (s == NATS_OK && rc == 0 && got < n) {
		natsMsg *m = NULL;
		int64_t left = (deadline - now_mono_ns()) / 1000000;
		s = left > 0 ? natsSubscription_NextMsg(&m, sub, left) : NATS_TIMEOUT;
		if (s != NATS_OK)
			break;
		const char *dot = strrchr(natsMsg_GetSubject(m), '.');
		size_t i = dot ? (size_t)strtoull(dot + 1, NULL, 10) : n;
		if (i >= n || done[i]) {
			natsMsg_Destroy(m);
			continue;
		}
		done[i] = 1;
		got++;
		if (d->stream_direct) {
			/* anything but the stream's message is asked again of
			 * the leader (most "no message" answers are for deleted
			 * messages, which a read then notes and skips) */
			if (direct_answer(d, m, &out[i]) < 0)
				done[i] = 2;
		} else {
			struct leader_msg lm;
			rc = leader_reply(m, &lm, err) < 0 ? -1 : 0;
			natsMsg_Destroy(m);
			out[i].msg = lm.msg;
			out[i].subject = lm.msg ? natsMsg_GetSubject(lm.msg) : NULL;
		}
	}
	if (s != NATS_OK && rc == 0)
		rc = store_js_fail(err, s, 0, "reading messages by sequence");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (done[i] != 2)
			continue;
		cim_perr e = {0};
		out[i].msg = store_get_msg(d, seqs[i], &e);
		if (out[i].msg != NULL)
			out[i].subject = natsMsg_GetSubject(out[i].msg);
		else if (e.code != CIM_ERR_NOT_FOUND)
			rc = cim_perr_set(err, e.code, NULL, "%s", e.msg);
	}
	if (sub != NULL) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	natsInbox_Destroy(inbox);
	free(done);
	if (rc != 0)
		store_free_seqs(out, n);
	return rc;
}

void store_free_seqs(struct stored_msg *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		natsMsg_Destroy(out[i].msg);
		out[i].msg = NULL;
		out[i].subject = NULL;
	}
}
