/*
 * micro.c: NATS service discovery. nats.c 3.4 has no micro API, so the
 * daemon speaks the protocol of the NATS "micro" services itself: it
 * answers
 *
 *   $SRV.PING   $SRV.PING.cim-events   $SRV.PING.cim-events.<id>
 *   $SRV.INFO   $SRV.INFO.cim-events   $SRV.INFO.cim-events.<id>
 *   $SRV.STATS  $SRV.STATS.cim-events  $SRV.STATS.cim-events.<id>
 *
 * with the JSON objects io.nats.micro.v1.ping_response, info_response and
 * stats_response, so `nats micro ls`, `nats micro info cim-events` and
 * `nats micro stats cim-events` list the daemons of a NATS system and
 * what each serves. Each endpoint is one operation of the API; its stats
 * are the counters and latency histogram info shows (processing_time is
 * the sum of the timed requests' latencies, in ns).
 *
 * Every daemon answers, active or standby (metadata.role says which): a
 * standby serves no request but is part of the deployment, and an
 * operator looking for the daemons of a stream wants to see it. Three
 * subscriptions ($SRV.<verb>, $SRV.<verb>.cim-events and
 * $SRV.<verb>.cim-events.<id>, the verb a wildcard) on the main
 * connection, each with its own nats.c delivery thread, never the request
 * subscription's.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "ids.h"
#include "jsontext.h"
#include "log.h"

#define SERVICE_NAME "cim-events" /* [A-Za-z0-9_-]+, as micro requires */

/* The operations shown as endpoints: name (micro allows [A-Za-z0-9_-]),
 * the operation, and its subject after the prefix. */
static const struct {
	const char *name;
	enum op op;
	const char *subject;
} endpoints[] = {
	{"append", OP_APPEND, "append.*.*"},
	{"get", OP_GET, "get.*.*"},
	{"head", OP_HEAD, "head.*.*"},
	{"validate", OP_VALIDATE, "validate.*.*"},
	{"load", OP_LOAD, "load.*.*"},
	{"snapshot_save", OP_SNAPSHOT_SAVE, "snapshot.save.*.*"},
	{"snapshot_get", OP_SNAPSHOT_GET, "snapshot.get.*.*"},
	{"by_type", OP_BY_TYPE, "by_type.*"},
	{"info", OP_INFO, "info"},
	{"restore", OP_RESTORE, "restore.*.*"},
};
#define NENDPOINTS (sizeof endpoints / sizeof endpoints[0])

/* A unique id for this process, as micro uses: 22 characters of base 62. */
static void make_id(char out[23])
{
	static const char digits[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	for (int i = 0; i < 22; i++)
		out[i] = digits[randombytes_uniform(62)];
	out[22] = '\0';
}

/* type, name, id, version, metadata: what every response starts with. */
static json_t *identity(struct daemon *d, const char *type)
{
	json_t *md = json_pack("{ss ss ss ss}", "role", role_name(atomic_load(&d->role)),
			       "holder", d->holder, "stream", d->cfg->stream, "prefix",
			       d->cfg->prefix);
	return json_pack("{ss ss ss ss so}", "type", type, "name", SERVICE_NAME, "id",
			 d->service_id, "version", CIM_EVENTS_VERSION, "metadata",
			 md ? md : json_object());
}

static json_t *endpoint_subject(struct daemon *d, size_t i)
{
	char subj[300];
	snprintf(subj, sizeof subj, "%s.%s", d->cfg->prefix, endpoints[i].subject);
	return json_string(subj);
}

static json_t *info_response(struct daemon *d)
{
	json_t *o = identity(d, "io.nats.micro.v1.info_response"), *eps = json_array();

	for (size_t i = 0; o && eps && i < NENDPOINTS; i++)
		json_array_append_new(eps, json_pack(
			"{ss so ss s{ss}}", "name", endpoints[i].name, "subject",
			endpoint_subject(d, i), "queue_group", "", "metadata",
			"operation", op_name(endpoints[i].op)));
	json_object_set_new(o, "description",
			    json_string("cim-eventsd: an event store on NATS JetStream"));
	json_object_set_new(o, "endpoints", eps ? eps : json_array());
	return o;
}

static json_t *stats_response(struct daemon *d)
{
	json_t *o = identity(d, "io.nats.micro.v1.stats_response"), *eps = json_array();
	char started[CIM_TIME_TEXT];

	cim_time_format(d->started_ns / 1000000000, (long)(d->started_ns % 1000000000), started);
	for (size_t i = 0; o && eps && i < NENDPOINTS; i++) {
		enum op op = endpoints[i].op;
		uint64_t timed = atomic_load(&d->lat[op].count);
		uint64_t sum = atomic_load(&d->lat[op].sum_ns);
		int last = atomic_load(&d->lat[op].last_err);
		char last_error[80] = "";
		if (last > 0 && last < CIM_ERR__COUNT)
			snprintf(last_error, sizeof last_error, "%d:%s",
				 cim_err_status((cim_err)last), cim_err_name((cim_err)last));
		json_array_append_new(eps, json_pack(
			"{ss so ss sI sI ss sI sI}", "name", endpoints[i].name, "subject",
			endpoint_subject(d, i), "queue_group", "", "num_requests",
			(json_int_t)atomic_load(&d->ops[op].requests), "num_errors",
			(json_int_t)atomic_load(&d->ops[op].errors), "last_error", last_error,
			"processing_time", (json_int_t)sum, "average_processing_time",
			(json_int_t)(timed ? sum / timed : 0)));
	}
	json_object_set_new(o, "started", json_string(started));
	json_object_set_new(o, "endpoints", eps ? eps : json_array());
	return o;
}

/* $SRV.<VERB>[.cim-events[.<id>]]: the verb, or NULL when the subject is
 * not one this daemon answers. */
static const char *verb_of(struct daemon *d, const char *subj)
{
	static const char *const verbs[] = {"PING", "INFO", "STATS"};
	char buf[256], *save = NULL, *tok[5];
	int n = 0;

	if (snprintf(buf, sizeof buf, "%s", subj) >= (int)sizeof buf)
		return NULL;
	for (char *t = strtok_r(buf, ".", &save); t && n < 5; t = strtok_r(NULL, ".", &save))
		tok[n++] = t;
	if (n < 2 || n > 4 || strcmp(tok[0], "$SRV") != 0 ||
	    (n >= 3 && strcmp(tok[2], SERVICE_NAME) != 0) ||
	    (n == 4 && strcmp(tok[3], d->service_id) != 0))
		return NULL;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(tok[1], verbs[i]) == 0)
			return verbs[i];
	return NULL;
}

static void on_srv(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct daemon *d = closure;
	const char *reply = natsMsg_GetReply(msg);
	const char *verb = verb_of(d, natsMsg_GetSubject(msg));
	json_t *o = NULL;
	char *text;

	if (reply == NULL || *reply == '\0' || verb == NULL) {
		natsMsg_Destroy(msg);
		return;
	}
	if (strcmp(verb, "PING") == 0)
		o = identity(d, "io.nats.micro.v1.ping_response");
	else if (strcmp(verb, "INFO") == 0)
		o = info_response(d);
	else
		o = stats_response(d);
	text = o ? cim_json_text(o) : NULL;
	json_decref(o);
	if (text != NULL) {
		natsStatus s = natsConnection_Publish(nc, reply, text, (int)strlen(text));
		if (s != NATS_OK)
			log_debug("cannot answer %s: %s", natsMsg_GetSubject(msg),
				  natsStatus_GetText(s));
		free(text);
	}
	natsMsg_Destroy(msg);
}

int micro_start(struct daemon *d)
{
	char subj[3][128];

	make_id(d->service_id);
	snprintf(subj[0], sizeof subj[0], "$SRV.*");
	snprintf(subj[1], sizeof subj[1], "$SRV.*.%s", SERVICE_NAME);
	snprintf(subj[2], sizeof subj[2], "$SRV.*.%s.%s", SERVICE_NAME, d->service_id);
	for (int i = 0; i < 3; i++) {
		natsStatus s = natsConnection_Subscribe(&d->micro_subs[i], d->nc, subj[i],
							 on_srv, d);
		if (s != NATS_OK) {
			log_warn("service discovery: cannot subscribe to %s: %s", subj[i],
				 natsStatus_GetText(s));
			micro_stop(d);
			return -1;
		}
	}
	log_info("service discovery: answering $SRV PING, INFO and STATS as %s id %s",
		 SERVICE_NAME, d->service_id);
	return 0;
}

void micro_stop(struct daemon *d)
{
	for (int i = 0; i < 3; i++) {
		if (d->micro_subs[i] == NULL)
			continue;
		natsSubscription_Unsubscribe(d->micro_subs[i]);
		natsSubscription_Destroy(d->micro_subs[i]);
		d->micro_subs[i] = NULL;
	}
}
