/*
 * server.c: the request side: one subscription on <prefix>.>, routing by
 * subject, replies with their Cim-Status header, and the worker threads
 * that serve reads.
 *
 * The subscription's callback never waits on the network: appends are
 * pipelined (append.c), head is answered from memory, and get, validate,
 * by_type and info, which read the stream, go to a worker. Every subject
 * under the prefix gets an answer. Each request is timed from here to its
 * reply (latency.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "ids.h"
#include "jsontext.h"
#include "log.h"

#define WORKQ_MAX 10000 /* reads waiting for a worker before we say "busy" */

struct work {
	struct work *next;
	work_fn fn;
	void *arg;
};

static const char *const op_names[OP__COUNT] = {
	"append", "get", "head", "validate", "info", "by_type",
	"snapshot.save", "snapshot.get", "load", "restore", "forget", "decrypt", "other"};

/* ---- replies ------------------------------------------------------------------ */

static void send_reply(struct daemon *d, natsMsg *req, const char *body,
		       size_t len, int status)
{
	const char *to = natsMsg_GetReply(req);
	natsMsg *m = NULL;
	char st[16];

	if (to == NULL || *to == '\0')
		return; /* nobody to answer */
	snprintf(st, sizeof st, "%d", status);
	if (natsMsg_Create(&m, to, NULL, body, (int)len) != NATS_OK) {
		lat_end(d, req);
		return;
	}
	natsMsgHeader_Set(m, "Cim-Status", st);
	natsStatus s = natsConnection_PublishMsg(d->nc, m);
	lat_end(d, req); /* the request's time ends as its reply leaves */
	if (s != NATS_OK)
		log_debug("cannot send reply: %s", natsStatus_GetText(s));
	natsMsg_Destroy(m);
}

void reply_text(struct daemon *d, natsMsg *req, const char *text, size_t len)
{
	send_reply(d, req, text, len, 200);
}

/* Takes the reference to body. */
void reply_json(struct daemon *d, natsMsg *req, json_t *body)
{
	char *text;

	if (body == NULL) {
		cim_perr e;
		cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
		reply_error(d, req, OP_OTHER, &e);
		return;
	}
	text = cim_json_text(body);
	json_decref(body);
	if (text == NULL)
		return;
	send_reply(d, req, text, strlen(text), 200);
	free(text);
}

void reply_error_json(struct daemon *d, natsMsg *req, enum op op, cim_err code,
		      json_t *err_obj)
{
	const char *to = natsMsg_GetReply(req);
	if (to == NULL || *to == '\0') {
		/* nobody to answer (an append answered early, append.c): not
		 * an error reply, not counted */
		json_decref(err_obj);
		return;
	}
	char *text = cim_json_text(err_obj);

	atomic_fetch_add(&d->ops[op].errors, 1);
	atomic_fetch_add(&d->err_by_code[code], 1);
	lat_error(d, op, (int)code);
	json_decref(err_obj);
	if (text == NULL) {
		static const char oom[] = "{\"error\":{\"code\":\"internal\","
					  "\"message\":\"out of memory\"}}";
		send_reply(d, req, oom, sizeof oom - 1, 500);
		return;
	}
	send_reply(d, req, text, strlen(text), cim_err_status(code));
	free(text);
}

void reply_error(struct daemon *d, natsMsg *req, enum op op, const cim_perr *e)
{
	reply_error_json(d, req, op, e->code, cim_error_json(e->code, e->field, e->msg));
}

void refuse(struct daemon *d, natsMsg *req, enum op op, const cim_perr *e)
{
	reply_error(d, req, op, e);
	natsMsg_Destroy(req);
}

void refuse_oom(struct daemon *d, natsMsg *req, enum op op)
{
	cim_perr e;
	cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
	refuse(d, req, op, &e);
}

static void reply_err(struct daemon *d, natsMsg *req, enum op op, cim_err code,
		      const char *field, const char *msg)
{
	cim_perr e;
	cim_perr_set(&e, code, field, "%s", msg);
	reply_error(d, req, op, &e);
}

/* ---- workers ------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
	struct daemon *d = arg;
	struct workq *q = &d->wq;

	for (;;) {
		pthread_mutex_lock(&q->mu);
		while (q->first == NULL && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		struct work *w = q->first;
		if (w == NULL) { /* stopping and nothing left */
			pthread_mutex_unlock(&q->mu);
			return NULL;
		}
		q->first = w->next;
		if (q->first == NULL)
			q->last = NULL;
		q->len--;
		pthread_mutex_unlock(&q->mu);
		w->fn(d, w->arg);
		free(w);
	}
}

int work_submit(struct daemon *d, work_fn fn, void *arg)
{
	struct workq *q = &d->wq;
	struct work *w = malloc(sizeof *w);

	if (w == NULL)
		return -1;
	*w = (struct work){NULL, fn, arg};
	pthread_mutex_lock(&q->mu);
	if (q->len >= WORKQ_MAX) {
		pthread_mutex_unlock(&q->mu);
		free(w);
		return -1;
	}
	if (q->last)
		q->last->next = w;
	else
		q->first = w;
	q->last = w;
	q->len++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

static int workers_start(struct daemon *d)
{
	struct workq *q = &d->wq;

	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->nthreads = (int)d->cfg->workers;
	q->threads = calloc((size_t)q->nthreads, sizeof *q->threads);
	if (q->threads == NULL)
		return -1;
	for (int i = 0; i < q->nthreads; i++)
		if (pthread_create(&q->threads[i], NULL, worker_main, d) != 0)
			return -1;
	return 0;
}

/* Lets the workers finish what is queued, then joins them. */
static void workers_stop(struct daemon *d)
{
	struct workq *q = &d->wq;

	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (int i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	free(q->threads);
	q->threads = NULL;
}

/* ---- routing ------------------------------------------------------------------ */

static enum op op_of(const char *name)
{
	for (int i = 0; i < OP_OTHER; i++)
		if (strcmp(name, op_names[i]) == 0)
			return (enum op)i;
	return OP_OTHER;
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
		       void *closure)
{
	struct daemon *d = closure;
	const char *subj = natsMsg_GetSubject(msg);
	size_t plen = strlen(d->cfg->prefix);
	char buf[512], *tok[5];
	int ntok = 0;
	int64_t t0 = now_mono_ns(); /* the request's latency starts here */

	if (natsMsg_GetReply(msg) == NULL) {
		natsMsg_Destroy(msg); /* a publish, not a request: no one to answer */
		return;
	}
	if (atomic_load(&d->pausing)) {
		/* received before the lease was lost: answered, not dropped */
		lat_begin(msg, OP_OTHER, t0);
		atomic_fetch_add(&d->ops[OP_OTHER].requests, 1);
		reply_err(d, msg, OP_OTHER, CIM_ERR_UNAVAILABLE, NULL,
			  "this daemon lost its writer lease; nothing was done; retry");
		natsMsg_Destroy(msg);
		return;
	}
	if (snprintf(buf, sizeof buf, "%s", subj + plen + 1) >= (int)sizeof buf) {
		lat_begin(msg, OP_OTHER, t0);
		atomic_fetch_add(&d->ops[OP_OTHER].requests, 1);
		reply_err(d, msg, OP_OTHER, CIM_ERR_INVALID_REQUEST, NULL,
			  "the request subject is too long");
		natsMsg_Destroy(msg);
		return;
	}
	for (char *save = NULL, *t = strtok_r(buf, ".", &save); t;
	     t = strtok_r(NULL, ".", &save)) {
		if (ntok == 5) {
			ntok++;
			break;
		}
		tok[ntok++] = t;
	}
	enum op op = ntok > 0 ? op_of(tok[0]) : OP_OTHER;
	char **args = tok; /* args[0] names the operation, then its tokens */
	if (ntok >= 2 && strcmp(tok[0], "snapshot") == 0) {
		/* snapshot.save and snapshot.get: two tokens name it */
		if (strcmp(tok[1], "save") == 0)
			op = OP_SNAPSHOT_SAVE;
		else if (strcmp(tok[1], "get") == 0)
			op = OP_SNAPSHOT_GET;
		if (op != OP_OTHER) {
			args = tok + 1;
			ntok--;
		}
	}
	atomic_fetch_add(&d->ops[op].requests, 1);
	lat_begin(msg, op, t0);

	if (op == OP_INFO && ntok == 1) {
		info_request(d, msg); /* takes msg */
		return;
	}
	if (op == OP_OTHER || op == OP_INFO) {
		char m[300];
		if (op == OP_INFO)
			snprintf(m, sizeof m, "info takes no further subject tokens: %s", subj);
		else
			snprintf(m, sizeof m, "unknown operation '%s' in subject %s; "
				 "operations: append, get, head, validate, load, "
				 "snapshot.save, snapshot.get, by_type, info, restore, forget, "
				 "decrypt",
				 ntok > 0 ? tok[0] : "", subj);
		reply_err(d, msg, op, CIM_ERR_INVALID_REQUEST, NULL, m);
		natsMsg_Destroy(msg);
		return;
	}
	if (op == OP_BY_TYPE) {
		if (ntok != 2) {
			char m[300];
			snprintf(m, sizeof m, "by_type needs the subject %s.by_type.<event_type>",
				 d->cfg->prefix);
			reply_err(d, msg, op, CIM_ERR_INVALID_REQUEST, NULL, m);
		}
		else if (!cim_token_type_ok(tok[1]))
			reply_err(d, msg, op, CIM_ERR_INVALID_ARGUMENT, "event_type",
				  "event_type must match [A-Za-z][A-Za-z0-9_-]{0,63}");
		else {
			by_type_request(d, msg, tok[1]); /* takes msg */
			return;
		}
		natsMsg_Destroy(msg);
		return;
	}
	if (op == OP_DECRYPT) {
		if (ntok != 2)
			reply_err(d, msg, op, CIM_ERR_INVALID_REQUEST, NULL,
				  "decrypt needs the subject <prefix>.decrypt.<aggregate_type>");
		else if (!cim_token_type_ok(tok[1]))
			reply_err(d, msg, op, CIM_ERR_INVALID_ARGUMENT, "aggregate_type",
				  "aggregate_type must match [A-Za-z][A-Za-z0-9_-]{0,63}");
		else {
			decrypt_request(d, msg, tok[1]); /* takes msg */
			return;
		}
		natsMsg_Destroy(msg);
		return;
	}
	if (ntok != 3) {
		char m[300];
		snprintf(m, sizeof m, "%s needs the subject %s.%s.<aggregate_type>.<aggregate_id>",
			 op_name(op), d->cfg->prefix, op_name(op));
		reply_err(d, msg, op, CIM_ERR_INVALID_REQUEST, NULL, m);
		natsMsg_Destroy(msg);
		return;
	}
	const char *type = args[1], *id = args[2];
	if (!cim_token_type_ok(type)) {
		reply_err(d, msg, op, CIM_ERR_INVALID_ARGUMENT, "aggregate_type",
			  "aggregate_type must match [A-Za-z][A-Za-z0-9_-]{0,63}");
		natsMsg_Destroy(msg);
		return;
	}
	if (!cim_token_id_ok(id)) {
		reply_err(d, msg, op, CIM_ERR_INVALID_ARGUMENT, "aggregate_id",
			  "aggregate_id must match [A-Za-z0-9_:@+=-]{1,128}");
		natsMsg_Destroy(msg);
		return;
	}
	switch (op) {
	case OP_APPEND:
		append_request(d, msg, type, id); /* takes msg */
		return;
	case OP_RESTORE:
		restore_request(d, msg, type, id); /* takes msg */
		return;
	case OP_GET:
		get_request(d, msg, type, id);
		return;
	case OP_HEAD:
		head_request(d, msg, type, id);
		natsMsg_Destroy(msg);
		return;
	case OP_VALIDATE:
		validate_request(d, msg, type, id);
		return;
	case OP_SNAPSHOT_SAVE:
		snapshot_save_request(d, msg, type, id);
		return;
	case OP_SNAPSHOT_GET:
		snapshot_get_request(d, msg, type, id);
		return;
	case OP_LOAD:
		load_request(d, msg, type, id);
		return;
	case OP_FORGET:
		forget_request(d, msg, type, id); /* takes msg */
		return;
	default:
		natsMsg_Destroy(msg);
		return;
	}
}

int server_resume(struct daemon *d)
{
	char subj[256];
	natsStatus s;

	if (d->sub != NULL)
		return 0;
	atomic_store(&d->pausing, false);
	snprintf(subj, sizeof subj, "%s.>", d->cfg->prefix);
	s = natsConnection_Subscribe(&d->sub, d->nc, subj, on_request, d);
	if (s == NATS_OK)
		/* what waits unread: about 4 s of small requests at the rate
		 * one daemon answers them (clients time out at 5 s), and never
		 * more than 128 MiB of bodies; past that nats.c drops requests
		 * (logged as a slow consumer) and their clients time out */
		s = natsSubscription_SetPendingLimits(d->sub, 1 << 18, 128 << 20);
	if (s != NATS_OK) {
		log_error("cannot subscribe to %s: %s", subj, natsStatus_GetText(s));
		natsSubscription_Destroy(d->sub);
		d->sub = NULL;
		return -1;
	}
	natsConnection_Flush(d->nc);
	log_info("serving %s with %d read worker(s)", subj, d->wq.nthreads);
	return 0;
}

void server_pause(struct daemon *d)
{
	if (d->sub == NULL)
		return;
	/* requests already taken are answered; new ones find no one here
	 * (and go to the daemon that holds the lease, once it serves). Those
	 * received but not yet read are answered too, "unavailable": dropped,
	 * their clients would wait out their timeout */
	atomic_store(&d->pausing, true);
	if (natsConnection_Status(d->nc) != NATS_CONN_STATUS_CONNECTED ||
	    natsSubscription_Drain(d->sub) != NATS_OK ||
	    natsSubscription_WaitForDrainCompletion(d->sub, 5000) != NATS_OK)
		natsSubscription_Unsubscribe(d->sub);
	natsSubscription_Destroy(d->sub);
	d->sub = NULL;
	log_warn("stopped serving requests");
}

int server_start(struct daemon *d)
{
	pthread_mutex_init(&d->stream_info.mu, NULL);
	for (int i = 0; i < SNAP_LOCKS; i++)
		pthread_mutex_init(&d->snap_locks[i], NULL);
	if (workers_start(d) != 0) {
		log_error("cannot start worker threads");
		return -1;
	}
	return server_resume(d);
}

/* Stops taking requests, answers those already received, waits for the
 * appends in flight, then stops the workers. */
void server_drain(struct daemon *d)
{
	bool up = natsConnection_Status(d->nc) == NATS_CONN_STATUS_CONNECTED;
	/* the whole drain is bounded: appends in flight resolve within the
	 * publish timeout, by an ack or by timing out */
	int64_t deadline = now_ns() + (d->cfg->publish_timeout_ms + 5000) * 1000000LL;

	atomic_store(&d->draining, true);
	if (d->sub != NULL) {
		if (up && natsSubscription_Drain(d->sub) == NATS_OK)
			natsSubscription_WaitForDrainCompletion(d->sub, 5000);
		else
			natsSubscription_Unsubscribe(d->sub);
	}
	while (atomic_load(&d->jobs_in_flight) > 0 && now_ns() < deadline)
		usleep(2000);
	if (atomic_load(&d->jobs_in_flight) > 0)
		log_warn("%d append(s) still unanswered at shutdown",
			 atomic_load(&d->jobs_in_flight));
	if (d->wq.threads)
		workers_stop(d);
	if (natsConnection_Status(d->nc) == NATS_CONN_STATUS_CONNECTED)
		natsConnection_FlushTimeout(d->nc, 2000);
	natsSubscription_Destroy(d->sub);
	d->sub = NULL;
	json_decref(d->stream_info.state);
	d->stream_info.state = NULL;
}

const char *op_name(enum op op) { return op_names[op]; }
