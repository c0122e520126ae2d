/*
 * client.h: what the files of libcimevents share (internal, not installed).
 *
 * events.c holds the client handle, the transport (one NATS request and
 * the mapping of its outcome into cim_error) and the raw calls; append.c
 * and read.c build the typed requests and decode the typed replies;
 * jsontext.c writes JSON values as text and reads members of replies.
 * Cross-file names carry the cimc_ prefix; file-local helpers are static.
 *
 * Memory handed to the caller is always malloc'd, so cim_free (free) and
 * the destroy functions release it whatever allocator jansson was given.
 */
#ifndef CIM_CLIENT_H
#define CIM_CLIENT_H

#include <jansson.h>
#include <stdatomic.h>
#include <nats/nats.h>

#include "cim/events.h"
#include "jsontext.h"

struct cim_client {
	natsConnection *nc;
	bool owned; /* cim_client_connect made nc: destroy closes it */
	char *prefix;
	int64_t timeout_ms;
	char *js_domain;    /* NULL, or the JetStream domain */
	char js_api[200];   /* the JetStream API subject prefix ($JS.API) */
};

/* ---- events.c ------------------------------------------------------------ */

/* Zeroes err (which may be NULL). Every public call starts with it. */
void cimc_clear(cim_error *err);

/* Fills err (which may be NULL) with code, field (may be NULL) and the
 * formatted message, and returns code. */
cim_err cimc_fail(cim_error *err, cim_err code, const char *field,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* CIM_ERR_OK when s can be one token of a subject: not NULL or empty, no
 * '.', '*', '>' or whitespace. Anything else the daemon judges. */
cim_err cimc_check_token(const char *s, const char *field, cim_error *err);

/* One request to <prefix>.<op>[.<type>[.<id>]] with req (NULL: {}) as the
 * body. On CIM_ERR_OK *reply is the reply object (the caller's, to
 * json_decref). On failure *reply stays NULL and err is filled. The
 * tokens must have been checked. */
cim_err
cimc_call(cim_client *c, const char *op, const char *type, const char *id,
	  const json_t *req, json_t **reply, cim_error *err);

/* A request sent without waiting for its reply (decrypt's read-ahead): to
 * <prefix>.<op>.<type> with body; cimc_receive waits for the reply (up
 * to the client's timeout) and hands it over on Cim-Status 200 (*msg, the
 * caller's to destroy), or maps the failure into err as for any request.
 * Either way the pending request is done; cimc_pending_drop forgets one
 * not received. */
typedef struct cimc_pending {
	natsSubscription *sub;
	size_t len;
} cimc_pending;
cim_err cimc_send(cim_client *c, const char *op, const char *type, const char *body,
		  size_t len, cimc_pending *p, cim_error *err);
cim_err cimc_receive(cim_client *c, cimc_pending *p, natsMsg **msg, cim_error *err);
void cimc_pending_drop(cimc_pending *p);

/* A malloc'd copy of s; NULL when memory runs out. */
char *cimc_strdup(const char *s);

/* A JetStream context of c's connection, for c's domain or API prefix. */
natsStatus cimc_jetstream(const cim_client *c, jsCtx **js);

/* reply.c: reading reply members. Each returns CIM_ERR_OK, or fills
 * err and returns CIM_ERR_BAD_REPLY (member missing, of the wrong type,
 * negative or too long) or CIM_ERR_NOMEM; on failure *out/buf is
 * untouched. what names the object in messages ("reply", "event"). */
/* The reply's array member key as *arr (borrowed), with a zeroed array of
 * one elem_size item per entry in *items (NULL when it is empty). */
cim_err cimc_get_items(const json_t *obj, const char *key, size_t elem_size,
		       const json_t **arr, void **items, cim_error *err);
cim_err cimc_get_u64(const json_t *obj, const char *what, const char *key,
		     uint64_t *out, cim_error *err);
/* A string member as a malloc'd copy; json null gives NULL when null_ok. */
cim_err cimc_get_str(const json_t *obj, const char *what, const char *key,
		     bool null_ok, char **out, cim_error *err);
/* The same, all of it (a string may hold U+0000: *len says how long it
 * is; NUL-terminated all the same). len may be NULL. */
cim_err cimc_get_strn(const json_t *obj, const char *what, const char *key,
		      bool null_ok, char **out, size_t *len, cim_error *err);
/* A string member copied into a fixed buffer; null gives "" when null_ok. */
cim_err cimc_get_strbuf(const json_t *obj, const char *what, const char *key,
			bool null_ok, char *buf, size_t size, cim_error *err);

/* read.c: one event of a reply (an object as the contract shows events)
 * into e, whose strings are malloc'd; cimc_event_clear frees and zeroes. */
cim_err cimc_decode_event(const json_t *j, cim_event *e, cim_error *err);
void cimc_event_clear(cim_event *e);

/* stream.c: a monotonic clock in ms; a NATS or JetStream failure while
 * doing what (a phrase: "reading the stream's info") mapped into err as
 * CIM_ERR_TIMEOUT, CIM_ERR_CONNECTION, CIM_ERR_UNAVAILABLE (only what is
 * known to pass: nothing was done, try again), CIM_ERR_NOMEM, or
 * CIM_ERR_INTERNAL for anything else; how many events of torn batches a subscription dropped. */
int64_t cimc_now_ms(void);
cim_err cimc_js_fail(cim_error *err, natsStatus s, jsErrCode je,
		     const char *what);
uint64_t cimc_subscription_dropped(const cim_subscription *s);

/* decrypt.c: one encrypted event's data for the daemon to decrypt. The
 * caller fills the first six; the calls below set asked while a request
 * for it is out (slot then points at the request's pointer to it: set it
 * to NULL when the item goes away), and done with data_json (the value
 * as JSON text, malloc'd; "null" and forgotten when the aggregate is
 * forgotten), or with refused (malloc'd: why the daemon could not
 * decrypt it). */
typedef struct cimc_enc {
	const char *type, *id;
	const char *event_id;
	size_t event_id_len;
	const uint8_t *enc;
	size_t len;
	bool done, asked;
	struct cimc_enc **slot;
	bool forgotten;
	char *data_json;
	char *refused;
} cimc_enc;

/* One decrypt request out: for sent[0..n), items of one type. */
typedef struct cimc_ask {
	cimc_pending p;
	cimc_enc **sent;
	size_t n;
} cimc_ask;

/* Sends one request for the first items[] not done nor asked and those
 * after it of the same type, as many as the payload limit allows.
 * CIM_ERR_OK with *a out (a->n > 0), or a->n 0 when nothing is left to
 * ask; or the failure. */
cim_err cimc_decrypt_send(cim_client *c, cimc_enc **items, size_t n, cimc_ask *a,
			  cim_error *err);
/* Waits for a's reply and fills the items it answers (the rest are no
 * longer asked: ask them again). CIM_ERR_OK, or the failure. */
cim_err cimc_decrypt_wait(cim_client *c, cimc_ask *a, cim_error *err);
/* Forgets a request out (its items no longer asked). */
void cimc_decrypt_drop(cimc_ask *a);
/* Sends and waits until every item is done. CIM_ERR_OK, or the failure of
 * the request that failed (the items it covered stay not done). */
cim_err cimc_decrypt(cim_client *c, cimc_enc **items, size_t n, cim_error *err);

/* stream.c: a projection's stop flag, looked at between the daemon's
 * confirmations and before each wait, so a stop is not kept waiting by a
 * long round of them (next then returns CIM_ERR_TIMEOUT early). */
void cimc_subscription_set_stop(cim_subscription *s, const atomic_bool *stop);

/* stream.c: the client-side buffer limits of the consumer (the tests make
 * it small to see what an overflow does). */
cim_err cimc_subscription_set_pending_limits(cim_subscription *s, int msgs,
					     int bytes, cim_error *err);

#endif
