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

#define CIM_EVENTS_VERSION "0.2.0"
#define CIM_EVENTS_VERSION_MAJOR 0
#define CIM_EVENTS_VERSION_MINOR 2
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
	XX(GONE, "gone", 410,                                                  \
	   "the aggregate was forgotten; nothing more can be appended to it")  \
	XX(UNAVAILABLE, "unavailable", 503,                                    \
	   "storage is unreachable; nothing was stored; safe to retry")        \
	XX(INTERNAL, "internal", 500, "internal error")                        \
	/* client side only: never sent by the daemon */                       \
	XX(TIMEOUT, "timeout", 0, "no reply from the daemon in time")          \
	XX(NO_DAEMON, "no_daemon", 0, "no daemon is listening on the subject") \
	XX(CONNECTION, "connection", 0, "cannot reach the NATS server")        \
	XX(BAD_REPLY, "bad_reply", 0, "the daemon's reply is not understood")  \
	XX(NOMEM, "nomem", 0, "out of memory")                                 \
	XX(CHECK_FAILED, "check_failed", 0,                                    \
	   "an event read from the stream failed its integrity check")         \
	XX(HANDLER, "handler", 0, "a caller's callback reported a failure")

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
	size_t event_id_len; /* event_id's length: an event_id may hold U+0000 */
} cim_error;

#define CIM_AGGREGATE_ID_MAX 128

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

/* The JetStream the client's subscriptions and projections read, when it
 * is not the account's own: a domain ("hub": $JS.hub.API) or an API
 * prefix, at most one (both NULL or "": $JS.API, the default). Call it
 * before subscribing. */
cim_err cim_client_set_jetstream(cim_client *c, const char *js_domain,
				 const char *js_api_prefix, cim_error *err);

/* Closes what the client owns. NULL is a no-op. */
void cim_client_destroy(cim_client *c);

/* ---- append -------------------------------------------------------------- */

/* expected_version: a version number (0 means "no_stream"), or one of: */
#define CIM_EXPECT_ANY ((int64_t)-1)
#define CIM_EXPECT_NO_STREAM ((int64_t)-2)
#define CIM_EXPECT_EXISTS ((int64_t)-3)

/* One event to append. data_json is any JSON value as text (required);
 * metadata_json a JSON object of strings or NULL; the ids NULL to let the
 * daemon choose. An id is any UTF-8 text of at most 128 bytes ("" is an
 * id too, not "none"); one holding U+0000 is given with its length in
 * the matching _len field (0: up to its first NUL, as C strings go). */
typedef struct cim_new_event {
	const char *event_type;
	const char *data_json;
	const char *event_id;
	const char *correlation_id;
	const char *causation_id;
	const char *metadata_json;
	size_t event_id_len;
	size_t correlation_id_len;
	size_t causation_id_len;
} cim_new_event;

typedef struct cim_appended_event {
	uint64_t version;
	char *cid;
	char *event_id;      /* NUL-terminated; */
	uint64_t seq;
	size_t event_id_len; /* its length, U+0000 counted */
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
	char *event_id;      /* the ids are NUL-terminated, and may hold */
	char *correlation_id; /* U+0000 too: their lengths are below */
	char *causation_id;
	char *timestamp;     /* RFC 3339, UTC, nanoseconds */
	char *metadata_json; /* a JSON object */
	char *data_json;     /* the payload as JSON text */
	char *prev;          /* CID text, NULL at version 1 */
	char *cid;
	uint64_t seq;        /* stream sequence */
	size_t event_id_len;
	size_t correlation_id_len;
	size_t causation_id_len;
	/* v1.1: the seal the event's message carries (the last event of each
	 * append in a store that signs): the store's public key ("z6Mk...")
	 * and the signature (base64); both NULL when it carries none. Shown
	 * as stored: cim_validate_keys and subscriptions with trusted keys
	 * check them. */
	char *seal_key;
	char *seal_sig;
	/* v1.1, an encrypted aggregate's event: its data was stored encrypted
	 * and data_json is the daemon's decryption of it (encrypted), or the
	 * aggregate was forgotten and data_json is "null" (forgotten). */
	bool encrypted;
	bool forgotten;
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
				    missing, undecodable; with keys also
				    bad_seal, unsealed */
	char failure_detail[512];
	/* v1.1, when seals were checked (keys given, or the daemon's
	 * trusted_keys): sealed is true and sealed_through the last version
	 * a seal from a trusted key covers (0: none) */
	bool sealed;
	uint64_t sealed_through;
} cim_validation;

/* Has the daemon recompute the aggregate's chain from the stored bytes;
 * with the daemon's trusted_keys set it checks seals too. */
cim_err cim_validate(cim_client *c, const char *aggregate_type,
		     const char *aggregate_id, cim_validation *out,
		     cim_error *err);

/* cim_validate with trusted keys: keys[0..n) are public-key texts
 * ("z6Mk...", as cim-events keygen prints). Every seal stored must verify
 * (else failure bad_seal), and the head must be covered by a seal from
 * one of the keys (else unsealed); out->sealed_through says how far they
 * cover. n == 0: as cim_validate. A key that is not a public-key text is
 * CIM_ERR_INVALID_ARGUMENT (field "keys"), nothing sent. */
cim_err cim_validate_keys(cim_client *c, const char *aggregate_type,
			  const char *aggregate_id, const char *const *keys,
			  size_t n, cim_validation *out, cim_error *err);

/* ---- snapshots and load ---------------------------------------------------- */

/* A snapshot as the daemon describes it. state_json is the state as JSON
 * text (malloc'd), NULL in what cim_snapshot_save reports. */
typedef struct cim_snapshot {
	uint64_t version;         /* the aggregate version the state is at */
	char snapshot_cid[128];   /* CID of the snapshot block */
	char event_cid[128];      /* CID of the event at that version */
	char timestamp[40];       /* when it was taken (RFC 3339); "" in what
				     cim_snapshot_save reports */
	char *state_json;
} cim_snapshot;

/* Frees state_json and zeroes s. NULL is a no-op. */
void cim_snapshot_clear(cim_snapshot *s);

/* Saves state_json (any JSON value as text) as the aggregate's state at
 * version (which must be stored). A snapshot already stored at a higher
 * version is kept: then *out (may be NULL) describes that one, so
 * out->version tells which is in place. */
cim_err cim_snapshot_save(cim_client *c, const char *aggregate_type,
			  const char *aggregate_id, uint64_t version,
			  const char *state_json, cim_snapshot *out,
			  cim_error *err);

/* The latest snapshot; CIM_ERR_NOT_FOUND when there is none. */
cim_err cim_snapshot_get(cim_client *c, const char *aggregate_type,
			 const char *aggregate_id, cim_snapshot *out,
			 cim_error *err);

/* An aggregate as load gives it: the latest snapshot (NULL if none) and
 * every event after it, up to version. */
typedef struct cim_loaded {
	cim_snapshot *snapshot;
	uint64_t version; /* the aggregate's head version */
	size_t n_events;
	cim_event *events;
} cim_loaded;

/* Loads an aggregate. When the daemon cuts its reply short (the NATS
 * payload limit), the rest is fetched page by page, so *out always holds
 * every event after the snapshot up to the version the daemon reported. */
cim_err cim_load(cim_client *c, const char *aggregate_type,
		 const char *aggregate_id, cim_loaded **out, cim_error *err);
void cim_loaded_destroy(cim_loaded *l);

/* ---- reads across aggregates ---------------------------------------------- */

/* One page of by_type: events of one event type, in stream order. */
typedef struct cim_event_list {
	size_t n_events;
	cim_event *events;
	uint64_t next_after_seq; /* 0: nothing more was stored at the time */
} cim_event_list;

/* Events of event_type stored after stream sequence after_seq; limit 0
 * lets the daemon choose. */
cim_err cim_by_type(cim_client *c, const char *event_type, uint64_t after_seq,
		    unsigned limit, cim_event_list **out, cim_error *err);
void cim_event_list_destroy(cim_event_list *l);

/* ---- the repository helper -------------------------------------------------
 *
 * Loads aggregates of one type through the caller's functions (the latest
 * snapshot, then the events after it), appends with the loaded version as
 * the expected version, and saves a snapshot once snapshot_threshold
 * events have been stored since the last one. The state is the caller's:
 * the repository only passes it back to these functions. Each returns 0,
 * or non-zero to fail the call (CIM_ERR_HANDLER). */
typedef struct cim_aggregate_ops {
	/* Makes state that of an aggregate with no events. */
	int (*reset)(void *state);
	/* Replaces state with a snapshot's state (JSON text). */
	int (*restore)(void *state, const char *state_json);
	/* Applies one event to state. */
	int (*apply)(void *state, const cim_event *ev);
	/* The state as JSON text (malloc'd), for a snapshot; NULL on failure.
	 * A NULL function turns snapshots off. */
	char *(*snapshot)(const void *state);
} cim_aggregate_ops;

typedef struct cim_repository_options {
	unsigned snapshot_threshold; /* events between snapshots; 0: 100 */
} cim_repository_options;

typedef struct cim_repository cim_repository;

/* What the repository knows of one aggregate the caller holds. */
typedef struct cim_aggregate {
	char id[CIM_AGGREGATE_ID_MAX + 1];
	uint64_t version;          /* the version state reflects */
	char head[128];            /* CID of the event at version; "" at 0 */
	uint64_t snapshot_version; /* of the latest snapshot known; 0: none */
	size_t events_applied;     /* by the last load or append */
	cim_err snapshot_error;    /* the last automatic snapshot's outcome;
				      a failed snapshot does not fail the
				      append (it is tried again next time) */
} cim_aggregate;

cim_err cim_repository_open(cim_repository **out, cim_client *c,
			    const char *aggregate_type,
			    const cim_aggregate_ops *ops,
			    const cim_repository_options *opts, cim_error *err);
void cim_repository_close(cim_repository *r);

/* Loads aggregate_id into state (reset, then restore and apply) and fills
 * *agg. An aggregate with no events loads as version 0. */
cim_err cim_repository_load(cim_repository *r, const char *aggregate_id,
			    void *state, cim_aggregate *agg, cim_error *err);

/* Appends n events with agg->version as the expected version. On success
 * applies them to state, moves agg->version on, and saves a snapshot when
 * snapshot_threshold events have been stored since agg->snapshot_version.
 * On CIM_ERR_WRONG_EXPECTED_VERSION nothing was stored: load and decide
 * again. *out may be NULL. */
cim_err cim_repository_append(cim_repository *r, cim_aggregate *agg, void *state,
			      const cim_new_event *events, size_t n,
			      cim_append_result **out, cim_error *err);

/* ---- subscriptions: replay and live ---------------------------------------
 *
 * Reads the event stream straight from JetStream for a subject pattern:
 * "events.>" (everything), "events.order.>" (one aggregate type),
 * "events.order.order-17.>" (one aggregate), "events.*.*.OrderPlaced" (one
 * event type). Events of one aggregate come in stream order (so in version
 * order), and never part of a batch: the events of a multi-event append
 * are held back until the whole batch is known to be stored. Events of
 * other aggregates stored between a held batch's events are not held with
 * it, so they may come before it: across aggregates the order is not the
 * stream's. To resume later, keep cim_progress.safe_seq (every matching
 * event at or before it was handed out), never an event's seq, which an
 * event still held may lie before.
 * Unless no_check is set, each event's CID is recomputed from its bytes
 * and its prev compared with the CID last seen for its aggregate; an event
 * that fails is reported (CIM_ERR_CHECK_FAILED), never passed silently.
 * Reasons (the start of the message): hash_mismatch, broken_link,
 * version_order, version_gap (a whole-aggregate pattern only: a version
 * is missing), subject_mismatch (the block's aggregate is not the one its
 * subject names) and undecodable.
 *
 * A replay (stop_at_end) ends once every matching event stored when it
 * opened has been handed out. Its end is found from the stream itself (its
 * last sequence at the open, and the first message matching the pattern
 * after the last one taken), not from a consumer's pending count, which
 * nats-server 2.9.10 gets wrong after deletes.
 *
 * Encrypted aggregates (v1.1): the stream holds their data encrypted, and
 * data keys never leave the daemon. Before an encrypted event is handed
 * out, its data is asked of the daemon (<prefix>.decrypt.<type>), for
 * every such event waiting in the subscription at once, after taking in
 * what the consumer has buffered (one request per aggregate type, within
 * the payload limit): data_json is the value and encrypted is set, or
 * data_json is "null" and forgotten is set when the aggregate was
 * forgotten. A failed request (no daemon, no permission for decrypt)
 * returns its error from cim_subscription_next, and the next call asks
 * again; data the daemon cannot decrypt (changed bytes) fails its check
 * (reason undecryptable). no_decrypt hands such events out with
 * data_json "null" and encrypted set, asking nothing.
 *
 * The table of aggregates a subscription keeps grows with every aggregate
 * it sees, for as long as it is open. */
typedef enum cim_start {
	CIM_START_BEGIN = 0, /* the first event stored */
	CIM_START_SEQ,       /* start_seq and after */
	CIM_START_TIME,      /* events stored at or after start_time_ns */
	CIM_START_NOW        /* only events stored after the subscription */
} cim_start;

typedef struct cim_subscribe_options {
	const char *pattern;   /* NULL: "events.>" */
	const char *stream;    /* NULL: "CIM-EVENTS" */
	cim_start start;
	uint64_t start_seq;    /* CIM_START_SEQ */
	int64_t start_time_ns; /* CIM_START_TIME: ns since the Unix epoch */
	bool stop_at_end;      /* replay: end once caught up with what was
				  stored when the subscription opened */
	bool no_check;         /* skip the CID and prev checks (and seals) */
	/* v1.1: the public-key texts ("z6Mk...") of the stores whose seals
	 * are trusted, n_trusted_keys of them (the array and its strings are
	 * only read during cim_subscribe). With keys, every seal an event
	 * carries must verify (reason bad_seal), and every append must end
	 * with a seal from one of the keys: the last event of a batch, or an
	 * event without Cim-Batch (reason unsealed; the other events of a
	 * batch whose end fails fail with it, when the pattern covers whole
	 * aggregates). History written before the store signed fails that
	 * check: start after it. A key that is not a public-key text is
	 * CIM_ERR_INVALID_ARGUMENT (field "trusted_keys"). */
	const char *const *trusted_keys;
	size_t n_trusted_keys;
	bool no_decrypt;       /* hand encrypted events out as they are stored:
				  data_json "null", encrypted true (no request
				  to the daemon) */
} cim_subscribe_options;

typedef struct cim_subscription cim_subscription;

cim_err cim_subscribe(cim_client *c, const cim_subscribe_options *o,
		      cim_subscription **out, cim_error *err);

/* The next event, valid until the next call or close. timeout_ms < 0
 * waits for ever. Returns: CIM_ERR_OK with *ev set; CIM_ERR_OK with *ev
 * NULL at the end (stop_at_end only); CIM_ERR_TIMEOUT when nothing came
 * within timeout_ms; CIM_ERR_CHECK_FAILED with *ev the event that failed
 * and err saying why (calling again goes on past it). A failure of the
 * subscription itself is final, and every later call returns it again:
 * CIM_ERR_NOMEM, CIM_ERR_INTERNAL, or CIM_ERR_UNAVAILABLE when the NATS
 * client dropped events it had no room for; close the subscription and
 * open a new one from cim_progress.safe_seq + 1. */
cim_err cim_subscription_next(cim_subscription *s, int64_t timeout_ms,
			      const cim_event **ev, cim_error *err);

typedef struct cim_progress {
	uint64_t seq;            /* stream sequence of the last event delivered */
	uint64_t safe_seq;       /* every matching event at or before it has
				    been delivered (the resume point) */
	uint64_t end_seq;        /* the stream's last sequence when it opened */
	uint64_t delivered;      /* events handed out */
	uint64_t check_failures; /* events reported as failing a check */
} cim_progress;

void cim_subscription_progress(const cim_subscription *s, cim_progress *p);
void cim_subscription_close(cim_subscription *s);

/* Called for each event; return 0 to go on, non-zero to stop. */
typedef int (*cim_event_fn)(void *ctx, const cim_event *ev);
/* Called now and then (about every 1000 events and at the end). */
typedef void (*cim_progress_fn)(void *ctx, const cim_progress *p);

/* Replays what is stored (o->stop_at_end is implied) through on_event.
 * Stops at the first failed check with CIM_ERR_CHECK_FAILED, and when
 * on_event returns non-zero with CIM_ERR_HANDLER. on_progress may be NULL. */
cim_err cim_replay(cim_client *c, const cim_subscribe_options *o,
		   cim_event_fn on_event, cim_progress_fn on_progress,
		   void *ctx, cim_error *err);

/* ---- durable projections ---------------------------------------------------
 *
 * A named projection over a pattern whose position is kept in the KV
 * bucket CIM-CHECKPOINTS. Delivery is at least once: after a crash it
 * resumes right after the last checkpoint, so events handled since then
 * come again (each event's aggregate and version tell a repeat), and none
 * is ever skipped. */
typedef struct cim_projection_options {
	const char *name;       /* [A-Za-z0-9_-]{1,64}: the checkpoint's key */
	const char *pattern;    /* NULL: "events.>" */
	const char *stream;     /* NULL: "CIM-EVENTS" */
	const char *bucket;     /* NULL: "CIM-CHECKPOINTS" */
	unsigned checkpoint_every;       /* events; 0: 100 */
	int64_t checkpoint_interval_ms;  /* and at least this often; 0: 1000 */
	bool no_check;
	/* A failed check: return 0 to skip the event and go on, non-zero to
	 * stop the run with CIM_ERR_CHECK_FAILED. NULL: stop. */
	int (*on_check_failure)(void *ctx, const cim_event *ev,
				const cim_error *why);
	/* v1.1: trusted seal keys, as in cim_subscribe_options (only read
	 * during cim_projection_open) */
	const char *const *trusted_keys;
	size_t n_trusted_keys;
} cim_projection_options;

typedef struct cim_projection cim_projection;

/* Opens the projection at its checkpoint (the start when it has none). A
 * checkpoint made for another pattern is refused (CIM_ERR_INVALID_ARGUMENT):
 * reset it first. So is one past the stream's last sequence (the stream
 * was recreated; field "name"). One before the stream's first sequence
 * (events removed by the stream's limits) resumes at the first event
 * still stored, without a word: what was removed cannot be handled.
 *
 * One process at a time may run a projection of a given name: each
 * checkpoint is written over the revision this one last read or wrote, so
 * when another instance or a reset has changed it, the run (or
 * cim_projection_checkpoint) fails with CIM_ERR_INVALID_ARGUMENT, field
 * "name", and the projection must be reopened. */
cim_err cim_projection_open(cim_client *c, const cim_projection_options *o,
			    cim_projection **out, cim_error *err);

/* Hands each event to handler, checkpointing as it goes. Returns after
 * idle_ms with no event (idle_ms < 0: never), when cim_projection_stop is
 * called (CIM_ERR_OK), or when handler returns non-zero (CIM_ERR_HANDLER;
 * that event is not counted as handled). A failed subscription's error
 * (see cim_subscription_next) is returned as it is; the checkpoint never
 * passes what was lost. */
cim_err cim_projection_run(cim_projection *p, cim_event_fn handler, void *ctx,
			   int64_t idle_ms, cim_error *err);
/* Asks a running cim_projection_run to return; safe from any thread or a
 * signal handler. The stop stays until the projection is closed: every
 * later run returns CIM_ERR_OK at once, so a loop such as
 * while (cim_projection_run(...) == CIM_ERR_OK) ends too. */
void cim_projection_stop(cim_projection *p);
/* Whether cim_projection_stop has been called on p. */
bool cim_projection_stopped(const cim_projection *p);
/* Writes the checkpoint now. */
cim_err cim_projection_checkpoint(cim_projection *p, cim_error *err);
/* The stream sequence every event up to which has been handled. */
uint64_t cim_projection_position(const cim_projection *p);
/* Checkpoints what was handled and frees p. */
void cim_projection_close(cim_projection *p);

/* Rebuild: forgets the projection's checkpoint, so it starts again from
 * the first event. bucket NULL: "CIM-CHECKPOINTS". */
cim_err cim_projection_reset(cim_client *c, const char *name,
			     const char *bucket, cim_error *err);

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
