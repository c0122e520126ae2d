/*
 * cim/events.h: libcimevents, the C client of the cim-events daemon.
 *
 * The library speaks the cim-events v1 contract (JSON requests over NATS
 * request/reply) to a running cim-eventsd. Every call is synchronous and
 * thread-safe on one cim_client. Results are plain structs, each with its own
 * destroy function; a call that fails leaves its result pointer NULL (or its
 * result struct zeroed) and fills the optional cim_error.
 *
 * Ownership, in one rule: what a function hands back through an out
 * parameter belongs to the caller until the matching destroy/clear call;
 * strings passed in are only read during the call.
 */
#ifndef CIM_EVENTS_H
#define CIM_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CIM_EVENTS_VERSION "0.1.0"
#define CIM_EVENTS_VERSION_MAJOR 0
#define CIM_EVENTS_VERSION_MINOR 1
#define CIM_EVENTS_VERSION_PATCH 0

/* The version of the library actually linked. */
const char *cim_version(void);

/*
 * The error table: the contract's codes (name on the wire, Cim-Status
 * number, meaning), then the codes only the client can see. Everything
 * else (the enum, cim_err_name, cim_err_status, cim_strerror) is made from it.
 */
#define CIM_ERR_MAP(XX)                                                        \
	XX(OK, "ok", 200, "success")                                           \
	XX(INVALID_REQUEST, "invalid_request", 400,                            \
	   "the request is not valid JSON of the expected shape")              \
	XX(INVALID_ARGUMENT, "invalid_argument", 400,                          \
	   "a token or field value is not valid")                              \
	XX(PAYLOAD_TOO_LARGE, "payload_too_large", 413,                        \
	   "the request is over a configured limit")                           \
	XX(WRONG_EXPECTED_VERSION, "wrong_expected_version", 409,              \
	   "the aggregate is not at the expected version")                     \
	XX(DUPLICATE_EVENT, "duplicate_event", 409,                            \
	   "an event_id is already stored with other content")                 \
	XX(NOT_FOUND, "not_found", 404, "not found")                           \
	XX(UNAVAILABLE, "unavailable", 503,                                    \
	   "storage is unreachable; nothing was stored; safe to retry")        \
	XX(INTERNAL, "internal", 500, "internal error")                        \
	/* client side only: never sent by the daemon */                       \
	XX(TIMEOUT, "timeout", 0, "no reply from the daemon in time")          \
	XX(NO_DAEMON, "no_daemon", 0, "no daemon is listening on the subject") \
	XX(CONNECTION, "connection", 0, "cannot reach the NATS server")        \
	XX(BAD_REPLY, "bad_reply", 0, "the daemon's reply is not understood")  \
	XX(NOMEM, "nomem", 0, "out of memory")

typedef enum cim_err {
#define CIM_ERR_ENUM(id, name, status, text) CIM_ERR_##id,
	CIM_ERR_MAP(CIM_ERR_ENUM)
#undef CIM_ERR_ENUM
	CIM_ERR__COUNT
} cim_err;

/* "wrong_expected_version" for CIM_ERR_WRONG_EXPECTED_VERSION; "unknown"
 * for a value outside the enum. */
const char *cim_err_name(cim_err code);
/* The Cim-Status number, 0 for client-only codes. */
int cim_err_status(cim_err code);
/* A generic sentence for the code. */
const char *cim_strerror(cim_err code);
/* The code for a wire name, CIM_ERR_BAD_REPLY when unknown. */
cim_err cim_err_from_name(const char *name);

/* What a failed call reports. Detail fields are empty/zero unless the
 * error carries them. */
typedef struct cim_error {
	cim_err code;
	char message[512];
	char field[64];     /* invalid_argument: the field named */
	char event_id[160]; /* duplicate_event: the event_id named */
	char expected[32];  /* wrong_expected_version: as sent, e.g. "3", "no_stream" */
	uint64_t current;   /* wrong_expected_version: the aggregate's version */
} cim_error;

/* ---- connecting ---------------------------------------------------------- */

typedef struct cim_client cim_client;

typedef struct cim_client_options {
	const char *prefix;  /* API subject prefix; NULL: "cim.events.v1" */
	int64_t timeout_ms;  /* per request; 0: 5000 */
} cim_client_options;

/* Connects to NATS at url (NULL: "nats://127.0.0.1:4222"). opts may be
 * NULL. On success *out owns the connection. */
cim_err cim_client_connect(cim_client **out, const char *url,
			   const cim_client_options *opts, cim_error *err);

/* Uses a connection the caller already has (a natsConnection *, passed as
 * void * so this header does not need nats.h). The caller keeps ownership
 * and must keep it open until cim_client_destroy. */
cim_err cim_client_wrap(cim_client **out, void *nats_connection,
			const cim_client_options *opts, cim_error *err);

/* Closes what the client owns. NULL is a no-op. */
void cim_client_destroy(cim_client *c);

/* ---- append -------------------------------------------------------------- */

/* expected_version: a version number (0 means "no_stream"), or one of: */
#define CIM_EXPECT_ANY ((int64_t)-1)
#define CIM_EXPECT_NO_STREAM ((int64_t)-2)
#define CIM_EXPECT_EXISTS ((int64_t)-3)

/* One event to append. data_json is any JSON value as text (required);
 * metadata_json a JSON object of strings or NULL; the ids NULL to let the
 * daemon choose. */
typedef struct cim_new_event {
	const char *event_type;
	const char *data_json;
	const char *event_id;
	const char *correlation_id;
	const char *causation_id;
	const char *metadata_json;
} cim_new_event;

typedef struct cim_appended_event {
	uint64_t version;
	char *cid;
	char *event_id;
	uint64_t seq;
} cim_appended_event;

typedef struct cim_append_result {
	char *aggregate_type;
	char *aggregate_id;
	uint64_t version; /* the aggregate's version after the append */
	char *head;       /* CID of its last event */
	size_t n_events;
	cim_appended_event *events;
} cim_append_result;

/* Appends n (>= 1) events, all or nothing. */
cim_err cim_append(cim_client *c, const char *aggregate_type,
		   const char *aggregate_id, int64_t expected_version,
		   const cim_new_event *events, size_t n,
		   cim_append_result **out, cim_error *err);
void cim_append_result_destroy(cim_append_result *r);

/* ---- reading ------------------------------------------------------------- */

/* A stored event as the daemon shows it. */
typedef struct cim_event {
	char *aggregate_type;
	char *aggregate_id;
	uint64_t version;
	char *event_type;
	char *event_id;
	char *correlation_id;
	char *causation_id;
	char *timestamp;     /* RFC 3339, UTC, nanoseconds */
	char *metadata_json; /* a JSON object */
	char *data_json;     /* the payload as JSON text */
	char *prev;          /* CID text, NULL at version 1 */
	char *cid;
	uint64_t seq;        /* stream sequence */
} cim_event;

typedef struct cim_event_page {
	uint64_t version;           /* the aggregate's head version */
	size_t n_events;
	cim_event *events;
	uint64_t next_from_version; /* 0 when this page reached the head */
} cim_event_page;

/* One page of events from from_version (0 or 1: the first); limit 0 lets
 * the daemon choose. */
cim_err cim_get(cim_client *c, const char *aggregate_type,
		const char *aggregate_id, uint64_t from_version,
		unsigned limit, cim_event_page **out, cim_error *err);
void cim_event_page_destroy(cim_event_page *p);

/* Every event from from_version to the head, fetched page by page. */
typedef struct cim_event_iter cim_event_iter;
cim_err cim_iter_open(cim_client *c, const char *aggregate_type,
		      const char *aggregate_id, uint64_t from_version,
		      cim_event_iter **out, cim_error *err);
/* *ev is the next event, valid until the next call or close; NULL at the
 * end (the call still returns CIM_ERR_OK). */
cim_err cim_iter_next(cim_event_iter *it, const cim_event **ev, cim_error *err);
void cim_iter_close(cim_event_iter *it);

typedef struct cim_head {
	uint64_t version; /* 0: no events */
	char head[128];   /* CID text, "" when version is 0 */
	uint64_t seq;     /* 0 when version is 0 */
} cim_head;

cim_err cim_get_head(cim_client *c, const char *aggregate_type,
		     const char *aggregate_id, cim_head *out, cim_error *err);

typedef struct cim_validation {
	bool valid;
	uint64_t version;
	uint64_t checked;
	char head[128];
	/* when !valid: */
	uint64_t failure_version;
	char failure_reason[32]; /* hash_mismatch, broken_link, version_gap,
				    missing, undecodable */
	char failure_detail[512];
} cim_validation;

cim_err cim_validate(cim_client *c, const char *aggregate_type,
		     const char *aggregate_id, cim_validation *out,
		     cim_error *err);

/* The daemon's info object as JSON text; free with cim_free. */
cim_err cim_info(cim_client *c, char **json_out, cim_error *err);

/* Sends any request: subject is <prefix>.<operation>[.<type>.<id>] built
 * from the parts given (type and id may be NULL). On CIM_ERR_OK *reply_json
 * is the reply body; on a daemon error it is too (the error object), and
 * err is filled. Free with cim_free. */
cim_err cim_request(cim_client *c, const char *operation,
		    const char *aggregate_type, const char *aggregate_id,
		    const char *request_json, char **reply_json,
		    cim_error *err);

void cim_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* CIM_EVENTS_H */
