/*
 * daemon.h: what the files of cim-eventsd share.
 *
 * Threads and the one rule for shared state. nats.c runs three kinds of
 * threads into this code: the request subscription's callback (one at a
 * time), the JetStream publish-ack handler, and our read workers. Every
 * field of struct agg, the head table, the idempotency window and the type
 * index is read and written only with daemon.mu held, and mu is never held across a call
 * that waits on the network. An aggregate whose `busy` is set belongs to
 * its append jobs (append.h): only the oldest of them (on whichever thread
 * runs it) moves the aggregate's head, so one aggregate's appends are
 * strictly ordered while different aggregates' appends proceed in
 * parallel. The cache of data keys (datakeys.c) has a lock of its own,
 * never held across a network call nor together with daemon.mu; the calls
 * that read the keys bucket (keys_get, keys_erase, keys_restore) run on
 * read workers only, never on the request callback or the ack handler.
 */
#ifndef CIM_DAEMON_H
#define CIM_DAEMON_H

#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "cid.h"
#include "config.h"
#include "errors.h"
#include "event.h"
#include "ids.h"
#include "keys.h"
#include "request.h"

#define AGG_CID_MAX 38 /* blake2b-256 CIDv1: 1 + 1 + 3 + 1 + 32 */
#define AGG_TYPES_INLINE 4
#define AGG_TYPES_UNKNOWN 255 /* more event types than are tracked */
#define JOBS_MAX 100000 /* appends accepted and not yet answered */
#define JOB_BYTES_MAX (128L << 20) /* and the bytes of their requests */

enum agg_state {
	AGG_SETTLED = 0,
	AGG_UNSETTLED, /* a publish failed: what is stored past the head is not known */
};

/* One aggregate's head. Kept small: a store holds millions. */
struct agg {
	struct agg *next;   /* hash chain */
	struct pipe *busy;  /* its appends in flight and waiting (append.h) */
	uint64_t version;   /* 0: no events */
	uint64_t seq;       /* stream sequence of the head event */
	uint64_t first_seq; /* no event of it is stored before this sequence
			       (0: not known); reads start here, because
			       nats-server 2.9 finds an aggregate's first
			       message only by walking the stream */
	uint64_t eid_hash;  /* hash of the head event's event_id */
	uint32_t hash;
	uint8_t state;
	uint8_t cid_len;
	uint8_t tlen;       /* key is type NUL id NUL */
	uint8_t ntypes;     /* event types seen, AGG_TYPES_UNKNOWN if too many */
	union {             /* their ids in the type table: inline up to 4 */
		uint16_t inl[4];
		uint16_t *ext;
	} types;
	uint8_t cid[AGG_CID_MAX];
	uint8_t forgotten;  /* AGG_FORGETTING, AGG_FORGOTTEN, or 0 */
	uint8_t listed;     /* on the sweep list (append.c) */
	char key[];
};

/* struct agg.forgotten: a forget of it was begun (its data is shown as
 * forgotten, appends answer gone) and its CimForgotten event is not yet
 * committed; or it is (the head is that event). forget.c. */
enum { AGG_FORGETTING = 1, AGG_FORGOTTEN = 2 };

static inline const char *agg_type(const struct agg *a) { return a->key; }
static inline const char *agg_id(const struct agg *a) { return a->key + a->tlen + 1; }

struct heads {
	struct agg **slots;
	size_t mask;
	size_t count;
	/* event type names, interned: an aggregate keeps 2-byte ids */
	char **type_names;
	size_t ntype_names, type_cap;
	uint32_t *type_index; /* open hash: id + 1, 0 empty */
	size_t type_mask;
};

/* An event_id stored in the last idempotency_window seconds. */
struct recent {
	struct recent_ent *ents; /* ring, oldest at head */
	size_t cap, head, len;
	uint32_t *index;         /* open hash: ring position + 1, 0 empty */
	size_t index_mask;
	size_t index_used;       /* slots taken, stale ones included */
};

/* Where the next page of a paged get starts: version's event is stored at
 * or after seq. A fixed set of slots, overwritten freely. */
#define CURSORS 1024
struct cursor {
	const struct agg *agg;
	uint64_t version;
	uint64_t seq;
};

/* Where the event after a snapshot is: the same slots as struct cursor,
 * filled when a snapshot is saved or loaded, so that load reads from
 * there and not from the aggregate's first event. */
#define SNAPPOS 16384
#define SNAP_LOCKS 64 /* saves of one aggregate run one at a time */

struct workq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct work *first, *last;
	size_t len;
	bool stop;
	int nthreads;
	pthread_t *threads;
};

struct op_stats {
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t errors;
};

enum op {
	OP_APPEND,
	OP_GET,
	OP_HEAD,
	OP_VALIDATE,
	OP_INFO,
	OP_BY_TYPE,
	OP_SNAPSHOT_SAVE,
	OP_SNAPSHOT_GET,
	OP_LOAD,
	OP_RESTORE,
	OP_FORGET,
	OP_DECRYPT,
	OP_OTHER,
	OP__COUNT
};

/* Request latency of one operation (latency.c): a fixed log-bucket
 * histogram, atomics only. */
#define LAT_BUCKETS 121
struct lat_hist {
	atomic_uint_fast64_t b[LAT_BUCKETS];
	atomic_uint_fast64_t count;  /* requests timed */
	atomic_uint_fast64_t sum_ns; /* and their total time */
	atomic_int last_err;         /* cim_err of the last error reply, 0: none */
};

/* The stream's state as info last read it from JetStream (read.c). */
struct stream_cache {
	pthread_mutex_t mu;
	bool fetching; /* a worker is asking JetStream now */
	int64_t at;    /* monotonic ns of the last answer */
	json_t *state;
};

enum role {
	ROLE_STARTING = 0, /* no lease yet, never served */
	ROLE_ACTIVE,       /* holds the lease, serves */
	ROLE_STANDBY,      /* waits for the lease; no subscription */
};

static inline const char *role_name(int role)
{
	return role == ROLE_ACTIVE ? "active" : role == ROLE_STANDBY ? "standby" : "starting";
}

/* The master key and the cache of data keys (datakeys.c). Its own lock,
 * never held across a network call, nor with daemon.mu. */
struct dk_slot;
typedef struct cim_key cim_key;
struct keyring {
	pthread_mutex_t mu;
	cim_key *master;         /* NULL: no master_key (nothing encrypted) */
	cim_key *keys;           /* n slots: one guarded region */
	struct dk_slot *slots;
	int32_t *buckets;        /* hash heads, -1: empty */
	size_t n, nbuckets, hand;
	uint8_t hkey[16];
	kvStore *kv;             /* keys_bucket */
	bool erase_ok;           /* its stream lets a message be erased */
	uint64_t stored_at_start, first_seq, last_seq;
	atomic_uint_fast64_t epoch; /* keys erased so far */
	atomic_uint_fast64_t made, loaded, evicted;
};

/* The event type of each stream sequence, for by_type (typeindex.c). */
struct tix_page;
struct typeindex {
	struct tix_page **pages; /* by sequence >> 15; NULL: nothing noted */
	size_t npages;
	uint64_t first;          /* no message is stored below this sequence */
	uint64_t high;           /* the highest sequence of a message noted */
	size_t bytes;            /* of the pages */
};

/* What start-up found in CIM-HEADS (checkpoint.c). */
struct cp_loaded {
	uint64_t seq;           /* the heads are as of this stream sequence */
	size_t aggregates;
	struct agg **unsettled; /* marked: settle before serving */
	size_t nunsettled;
	char written[40];
};

struct daemon {
	struct config *cfg;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub; /* only the main thread changes it */
	size_t max_payload;
	char events_prefix[128]; /* "events." */
	char js_api[128];        /* JetStream API subject prefix, "$JS.API" */
	char stream_leader[128]; /* under mu: the server that leads the stream */
	int64_t stream_leader_at; /* under mu: when it was last asked */
	struct agg **sweep;      /* under mu: unsettled aggregates to settle
				    without waiting for their next append,
				    each once (agg.listed); it grows */
	size_t nsweep, sweep_cap;
	bool sweep_lost;         /* under mu: one could not be listed (no
				    memory): the next sweep looks through
				    every head */
	atomic_ullong reads_off_leader; /* reads that could not get a consumer
					   on the stream's leader (store.c) */
	_Atomic int64_t unsure_until; /* now_ns() before which an abandoned
				   publish may still land: torn batches are
				   left alone until then (append.c) */
	_Atomic int64_t chain_paused_until; /* now_ns() before which no append
				   is chained: ids may be burned that this
				   process does not know of (resolve.c) */
	struct burn {            /* under mu: Nats-Msg-Ids this process burned
				    (removed messages), so that what is
				    published at those versions again takes a
				    new generation (resolve.c) */
		struct agg *agg;
		uint64_t version; /* the highest version burned */
		unsigned gen;     /* the highest generation burned up to there */
		int64_t until;    /* now_ns() when the ids leave the window */
	} burns[256];
	int nburns;
	int64_t stream_created;  /* the stream's creation time (ns), from its info */
	int64_t stream_replicas; /* and its replicas */
	bool stream_events_only; /* its only subject is events.> (streamread.c) */
	bool stream_direct;      /* it answers direct gets */

	/* seals (v1.1), set at start and then only read: the signing key
	 * (sodium_malloc memory; NULL: appends are not sealed) and the keys
	 * validate trusts when a request names none (trusted_keys) */
	cim_signing_key *seal_key;
	uint8_t trusted[CONFIG_TRUSTED_MAX][CIM_KEY_BYTES];
	size_t ntrusted;

	pthread_mutex_t mu;
	uint64_t seen_seq;       /* under mu: every event up to here is in the
				    heads, or its aggregate is unsettled or has
				    an append in flight (see checkpoint.c) */
	struct heads heads;
	struct typeindex tix;    /* under mu */
	struct recent recent;
	struct cursor cursors[CURSORS];
	struct cursor snappos[SNAPPOS];

	pthread_mutex_t snap_locks[SNAP_LOCKS];
	struct keyring keys;       /* datakeys.c */
	struct agg **forgets;      /* under mu: forgets begun and not finished
				      (forget.c) */
	size_t nforgets, forgets_cap;
	int64_t forget_retry_at;   /* main thread: next try of those */
	const char *kill_at;       /* test hook: $CIM_EVENTSD_KILL_AT (forget.c) */
	atomic_uint_fast64_t forgotten_count, decrypted_count;

	struct workq wq;
	atomic_int jobs_in_flight;
	atomic_long job_bytes;   /* request bytes of the appends in flight */
	atomic_bool draining;
	atomic_bool pausing;     /* the lease is lost: refuse what is still queued */
	int64_t started_ns;

	struct op_stats ops[OP__COUNT];
	struct lat_hist lat[OP__COUNT];
	struct stream_cache stream_info;
	char service_id[24];       /* NATS service discovery (micro.c) */
	natsSubscription *micro_subs[3];
	atomic_uint_fast64_t err_by_code[CIM_ERR__COUNT];
	atomic_uint_fast64_t events_appended;
	atomic_uint_fast64_t bytes_appended;
	atomic_uint_fast64_t appends_chained; /* launched behind another (append.c) */
	atomic_uint_fast64_t appends_rerun;   /* put back after their chain was
						 resolved (resolve.c) */
	int64_t startup_ms;
	uint64_t startup_events;
	char startup_how[256];     /* how start-up got its heads */

	/* heads checkpoints (checkpoint.c) */
	kvStore *heads_kv;
	char cp_slot;              /* slot of the last checkpoint read or written */
	uint64_t cp_seq;           /* its sequence */
	atomic_uint_fast64_t cp_last_seq, cp_written;
	pthread_t cp_thread;
	pthread_mutex_t cp_mu;
	pthread_cond_t cp_cv;
	bool cp_stop, cp_running;

	/* the writer's lease (lease.c), on a connection of its own */
	natsConnection *lease_nc;
	jsCtx *lease_js;
	kvStore *lease_kv;
	char lease_key[160];
	char holder[160];          /* this process: host:pid:nonce */
	int64_t lease_ttl_ns;
	uint64_t lease_rev;        /* lease thread only */
	atomic_int_fast64_t lease_until; /* monotonic ns; 0: not held */
	atomic_int role;
	atomic_uint_fast64_t takeovers;
	pthread_t lease_thread;
	pthread_mutex_t lease_mu;
	pthread_cond_t lease_cv;
	bool lease_stop, lease_running;
	bool heads_loaded, started, serving; /* main thread only */
};

/* heads.c */
int heads_init(struct heads *h, size_t hint);
void heads_free(struct heads *h);
struct agg *heads_find(struct heads *h, const char *type, const char *id);
/* NULL when memory runs out. */
struct agg *heads_get_or_add(struct heads *h, const char *type, const char *id);
/* Makes room for n aggregates at once (no-op when there is room). */
void heads_reserve(struct heads *h, size_t n);
/* Unlinks and frees a (which nothing may point to any more). */
void heads_remove(struct heads *h, struct agg *a);
/* The id of an event type name in the table (interned: a name's id stays
 * while the daemon runs), added when new and add is set; -1 when it is
 * not there, the table is full (65535 names) or memory runs out. */
int heads_type_id(struct heads *h, const char *name, size_t len, bool add);
/* Remembers that a has events of event_type (len bytes). */
void agg_add_type(struct heads *h, struct agg *a, const char *event_type, size_t len);
/* The event type names of a, as pointers into the table (valid while the
 * daemon runs), into out[max]. Returns the count, or -1 when they are not
 * known (read with a wildcard then). */
int agg_types(const struct heads *h, const struct agg *a, const char **out, int max);
/* event_ids are len bytes that may hold U+0000 (any string: request.h) */
void agg_set_head(struct agg *a, uint64_t version, const cim_cid *cid,
		  uint64_t seq, const char *event_id, size_t eid_len);
void agg_head_cid(const struct agg *a, cim_cid *out);
/* Keyed by a secret of this process: for hash tables. */
uint64_t event_id_hash(const char *event_id, size_t len);
/* Unkeyed, the same in every process: what struct agg keeps of its head
 * event's id, so that a checkpoint can carry it. */
uint64_t event_id_digest(const char *event_id, size_t len);

int recent_init(struct recent *r);
void recent_free(struct recent *r);
/* Remembers that event_id was stored as version/seq of a; forgets entries
 * past the window. */
void recent_add(struct recent *r, const char *event_id, size_t eid_len, struct agg *a,
		uint64_t version, uint64_t seq, int64_t now, int64_t window_ns);
/* 0 and the entry's fields when event_id is in the window; -1 if not. */
int recent_find(struct recent *r, const char *event_id, size_t eid_len, struct agg **a,
		uint64_t *version, uint64_t *seq);

/* store.c */
int store_connect(struct daemon *d);
/* err set from a failed JetStream call (code unavailable when it may pass,
 * else internal) as "storage: <what>: <why>"; returns -1. */
int store_js_fail(cim_perr *err, natsStatus s, jsErrCode je, const char *what);
int store_setup(struct daemon *d);
/* Start-up: the heads from the checkpoint and the stream after it, or
 * from the whole stream; torn batches removed; marked aggregates settled. */
int store_load_heads(struct daemon *d);
/* After the lease was lost and taken again: the events stored since
 * d->seen_seq (by another daemon, or ours that landed late). */
int store_catch_up(struct daemon *d);
/* SIGTERM or SIGINT when one is waiting to be taken (they are blocked in
 * every thread), else 0: long reads give up when asked to stop. */
int stop_pending(void);
/* streamread.c */
/* Calls visit for each stored message of one aggregate (its exact
 * subjects for the ntypes event types given; ntypes < 0: all of them, by a
 * wildcard, slow on a large stream) with seq in [from_seq, to_seq]
 * (STORE_TO_END: all there is), in stream order, with the time JetStream
 * stored it (ns since the epoch). visit returns 0 to go on, 1 to stop, -1
 * on error. Returns 0, or -1 with err set (code unavailable or internal). */
typedef int (*store_visit_fn)(natsMsg *m, uint64_t seq, int64_t ts, void *ctx);
#define STORE_TO_END UINT64_MAX
int store_read_agg(struct daemon *d, const char *type, const char *id,
		   const char *const *event_types, int ntypes, uint64_t from_seq,
		   uint64_t to_seq, store_visit_fn visit, void *ctx, cim_perr *err);
/* The event types stored for an aggregate, as the stream says (not
 * memory): *event_types holds *n malloc'd names; free with
 * store_free_subjects. 0, or -1 with err set. */
int store_agg_subjects(struct daemon *d, const char *type, const char *id,
		       char ***event_types, int *n, cim_perr *err);
void store_free_subjects(char **event_types, int n);
/* The same for any subject filter of the stream. */
int store_read_filter(struct daemon *d, const char *filter, uint64_t from_seq,
		      uint64_t to_seq, store_visit_fn visit, void *ctx, cim_perr *err);
/* A message read by sequence: msg NULL when none is stored there. */
struct stored_msg {
	natsMsg *msg;        /* data and headers as stored */
	const char *subject; /* as stored (in msg) */
	uint64_t seq;
};
/* The messages stored at seqs[0..n-1], asked for all at once, into
 * out[i] (free with store_free_seqs). 0, or -1 with err set. */
int store_get_seqs(struct daemon *d, const uint64_t *seqs, size_t n, struct stored_msg *out,
		   cim_perr *err);
void store_free_seqs(struct stored_msg *out, size_t n);

/* store.c */
/* One stored message by sequence; NULL with err set on failure. */
natsMsg *store_get_msg(struct daemon *d, uint64_t seq, cim_perr *err);
int store_delete_msg(struct daemon *d, uint64_t seq, cim_perr *err);
/* Parses events.<type>.<id>.<event_type>: pointers into a copy in buf. */
int store_split_subject(const struct daemon *d, const char *subj, char *buf,
			size_t bufsz, const char **type, const char **id);
/* Repairs an unsettled aggregate: adopts complete batches stored past the
 * head, removes a torn one. Caller owns a (a->busy). 0 or -1 (err set). */
int store_settle(struct daemon *d, struct agg *a, cim_perr *err);

/* leader.c: reads only the stream's leader answers (never a lagging
 * replica): what the daemon acts on is read this way. */
struct leader_msg {
	natsMsg *msg; /* subject, data and headers; NULL when none */
	uint64_t seq;
	int64_t ts;   /* when JetStream stored it, ns since the epoch */
};
/* The first message at or after seq on subject (an exact one is found
 * from the per-subject index; a wildcard walks the stream). 1 with *out
 * filled, 0 when there is none, -1 with err set. By sequence alone:
 * store_get_msg, which the leader answers too. */
int leader_get(struct daemon *d, uint64_t seq, const char *subject, struct leader_msg *out,
	       cim_perr *err);
/* The answer of a $JS.API.STREAM.MSG.GET request into *out: 1, 0 when
 * there is no such message, -1 with err set. */
int leader_reply(natsMsg *reply, struct leader_msg *out, cim_perr *err);
/* store_read_agg through the leader, from from_seq to the end, for the
 * ntypes exact subjects of the given event types. */
int store_read_agg_leader(struct daemon *d, const char *type, const char *id,
			  char *const *event_types, int ntypes, uint64_t from_seq,
			  store_visit_fn visit, void *ctx, cim_perr *err);

/* checkpoint.c */
int checkpoint_write(struct daemon *d);
/* 0: loaded into the (empty) head table; 1: none usable, why says so
 * (the table is left empty). */
int checkpoint_load(struct daemon *d, uint64_t last_seq, struct cp_loaded *out,
		    char *why, size_t whyn);
int checkpoint_start(struct daemon *d);
void checkpoint_stop(struct daemon *d);

/* typeindex.c: all but tix_collect, tix_stats, tix_write and tix_load
 * with d->mu held */
void tix_free(struct typeindex *x);
/* seq holds a message of event_type (len bytes); NULL: no event there (no
 * message, or one not on an event subject). */
void tix_note_type(struct daemon *d, uint64_t seq, const char *event_type, size_t len);
/* The same from the message's subject (NULL: no message). */
void tix_note_subject(struct daemon *d, uint64_t seq, const char *subject);
/* No message is stored at from..to. */
void tix_note_gap(struct daemon *d, uint64_t from, uint64_t to);
/* Up to max sequences from *pos on (to the highest noted) that may hold a
 * message of event type id (-1: a name not in the table): those noted as
 * of that type, and those not noted at all, in order; *pos moves past the
 * last one walked. 0: none up to the highest noted. */
size_t tix_collect(struct daemon *d, int id, uint64_t *pos, uint64_t *out, size_t max);
void tix_stats(struct daemon *d, uint64_t *bytes, uint64_t *high);
/* Writes the pages changed since they were last written to the heads
 * bucket: how many, or -1 when one could not be written. */
int tix_write(struct daemon *d);
/* Start-up, after a checkpoint at upto was loaded: reads the pages of
 * [first, upto] back; returns the first sequence they do not cover (the
 * stream is to be read again from there; upto + 1 when they all do).
 * Entries past last, the stream's last sequence now, are dropped: the
 * stream lost what they noted (an OS crash took acknowledged messages),
 * and a message stored there later may be of any type. */
uint64_t tix_load(struct daemon *d, uint64_t first, uint64_t upto, uint64_t last);

/* lease.c */
int lease_open(struct daemon *d);
int lease_start(struct daemon *d);
/* Stops the lease thread; gives the lease back if it is held. */
void lease_stop(struct daemon *d);
/* Holds the lease now, with time to spare: only then may it write. */
bool lease_valid(struct daemon *d);
int64_t now_mono_ns(void);

/* server.c */
/* The read workers and the request subscription. */
int server_start(struct daemon *d);
/* Stops taking requests (the lease is lost), and takes them again. */
void server_pause(struct daemon *d);
int server_resume(struct daemon *d);
void server_drain(struct daemon *d);
void reply_json(struct daemon *d, natsMsg *req, json_t *body);
/* A success reply already written as JSON text. */
void reply_text(struct daemon *d, natsMsg *req, const char *text, size_t len);
void reply_error(struct daemon *d, natsMsg *req, enum op op, const cim_perr *e);
/* Answers e (or "out of memory") and frees req. */
void refuse(struct daemon *d, natsMsg *req, enum op op, const cim_perr *e);
void refuse_oom(struct daemon *d, natsMsg *req, enum op op);
void reply_error_json(struct daemon *d, natsMsg *req, enum op op, cim_err code,
		      json_t *err_obj);
typedef void (*work_fn)(struct daemon *d, void *arg);
/* Runs fn(d, arg) on a read worker. -1 when the queue is full. */
int work_submit(struct daemon *d, work_fn fn, void *arg);
int64_t now_ns(void);
const char *op_name(enum op op);

/* latency.c */
/* The request subscription took req for op at t0 (now_mono_ns()). */
void lat_begin(natsMsg *req, enum op op, int64_t t0);
/* req's reply was sent: its time goes into its operation's histogram. */
void lat_end(struct daemon *d, natsMsg *req);
/* An error reply of op with code (cim_err). */
void lat_error(struct daemon *d, enum op op, int code);
/* The q-quantile (0 < q <= 1) of op's latencies in ns (0: none yet),
 * within 12.5%. */
uint64_t lat_quantile_ns(struct daemon *d, enum op op, double q);
/* Requests that found no slot in the table and were not timed. */
uint64_t lat_untimed(void);

/* micro.c: NATS service discovery ($SRV.PING, $SRV.INFO, $SRV.STATS),
 * answered whatever the role. */
int micro_start(struct daemon *d);
void micro_stop(struct daemon *d);

/* snapshot.c */
void snapshot_save_request(struct daemon *d, natsMsg *req, const char *type,
			   const char *id);
void snapshot_get_request(struct daemon *d, natsMsg *req, const char *type,
			  const char *id);
/* The stored snapshot of type/id as the reply object
 * {version, state, snapshot_cid, event_cid, timestamp} in *out (NULL when
 * there is none), with its version, the CID of the event it was taken at
 * and that event's stream sequence (0: not recorded). 0, or -1 with err set. */
int snapshot_fetch(struct daemon *d, const char *type, const char *id,
		   json_t **out, uint64_t *version, cim_cid *event_cid,
		   uint64_t *event_seq, cim_perr *err);
/* A forget's step 3: type/id's snapshot removed from the bucket's stream
 * (keys_purge_snapshot) under the lock its saves take, so that no save
 * begun before the forget stores one after it. 0, or -1 with e set. */
int snapshot_remove(struct daemon *d, const char *type, const char *id, cim_perr *e);

/* append.c */
void append_request(struct daemon *d, natsMsg *req, const char *type,
		    const char *id);
/* resolve.c: ids burned by removing stored messages. burn_note: the
 * message of a at version with generation gen was removed (takes mu).
 * burn_gen_locked: the lowest generation not burned for versions from
 * `from` on (mu held). burn_forget_locked: a leaves memory (mu held).
 * chain_pause: no append is chained for the duplicate window (ids may be
 * burned that this process does not know of). */
void burn_note(struct daemon *d, struct agg *a, uint64_t version, unsigned gen);
unsigned burn_gen_locked(struct daemon *d, const struct agg *a, uint64_t from);
void burn_forget_locked(struct daemon *d, const struct agg *a);
void chain_pause(struct daemon *d, const char *why);
/* The generation in a Nats-Msg-Id "<type>.<id>.<version>[.<gen>]". */
unsigned msgid_gen(const char *msgid);
/* Settles, on a worker, the aggregates an abandoned append left
 * unsettled, once nothing abandoned can still land; from the main loop. */
void append_sweep(struct daemon *d);
/* Lists an unsettled aggregate for the sweep (takes mu; _locked: mu
 * held). Every aggregate left unsettled is listed, wherever that
 * happened (an abandoned append, a settle that failed, start-up), so that
 * each is settled without waiting for its next append: reads across
 * aggregates wait for that (by_type, read.c). */
void sweep_add(struct daemon *d, struct agg *a);
void sweep_add_locked(struct daemon *d, struct agg *a);
/* restore.c: a restore request becomes an append job of its own kind. */
void restore_request(struct daemon *d, natsMsg *req, const char *type,
		     const char *id);
void append_ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa,
			jsPubAckErr *pae, void *closure);

/* read.c */
/* A read of one aggregate, with what memory knew of it when it came. */
#define VALIDATE_KEYS_MAX CONFIG_TRUSTED_MAX
struct read_req {
	natsMsg *req;
	const struct agg *agg; /* NULL: no events */
	char type[CIM_TYPE_MAX + 1];
	char id[CIM_ID_MAX + 1];
	uint64_t from_version, limit;
	uint64_t head_version, head_seq, first_seq;
	cim_cid head_cid;
	int ntypes; /* event types the daemon has stored for it; -1: not known */
	bool no_hints; /* read from first_seq, whatever the cursors say */
	bool forgotten; /* its data is shown as forgotten (forget.c) */
	const char *types[AGG_TYPES_UNKNOWN];
	/* validate: the keys whose seals count (malloc'd; none: seals are
	 * not checked) */
	size_t nkeys;
	uint8_t (*keys)[CIM_KEY_BYTES];
};
struct read_req *read_req_new(struct daemon *d, natsMsg *req, const char *type,
			      const char *id);
void read_req_free(struct read_req *r);
/* Sends r to a worker, or answers "busy" and frees it. */
void submit_read(struct daemon *d, enum op op, work_fn fn, struct read_req *r);
/* The stored event of r's aggregate at version (<= the head): its CID
 * computed from the stored bytes and its stream sequence. 0, or -1 with
 * err set. */
int read_event_at(struct daemon *d, const struct read_req *r, uint64_t version,
		  cim_cid *cid, uint64_t *seq, cim_perr *err);
/* Remembers that a's event at version is at stream sequence seq, for
 * loads from version + 1. */
void snappos_put(struct daemon *d, const struct agg *a, uint64_t version, uint64_t seq);
void load_request(struct daemon *d, natsMsg *req, const char *type, const char *id);
void get_request(struct daemon *d, natsMsg *req, const char *type, const char *id);
void head_request(struct daemon *d, natsMsg *req, const char *type, const char *id);
void validate_request(struct daemon *d, natsMsg *req, const char *type, const char *id);
void info_request(struct daemon *d, natsMsg *req);
void by_type_request(struct daemon *d, natsMsg *req, const char *event_type);

/* forget.c */
void forget_request(struct daemon *d, natsMsg *req, const char *type, const char *id);
/* Start-up and take-over, before serving: forgets begun and not finished
 * (their records) mark their aggregates forgetting and are finished by
 * forget_sweep. The count found, or -1 when the records cannot be read. */
int forget_recover(struct daemon *d);
/* From the main loop: runs those forgets again (at most once a second). */
void forget_sweep(struct daemon *d);
/* Whether type/id is forgotten or being forgotten (its data is shown as
 * forgotten), as memory knows; takes daemon.mu. */
bool forget_shown(struct daemon *d, const char *type, const char *id);

/* decrypt.c */
/* Takes req: <prefix>.decrypt.<type>, on a worker. */
void decrypt_request(struct daemon *d, natsMsg *req, const char *type);
/* An event as a reply shows it (cim_event_write_json_as), its data
 * decrypted when it is encrypted: the page's key is kept pinned across
 * calls for the same aggregate (release with shown_release). forgotten:
 * the aggregate is known to be forgotten. 0, or -1 with e set. On a
 * worker: it may read the data key from the bucket. */
struct shown {
	const cim_key *key;
	int state; /* KEY_HELD, KEY_NONE, or KEY_MISS: nothing looked up yet */
	char type[CIM_TYPE_MAX + 1];
	char id[CIM_ID_MAX + 1];
};
int show_event(struct daemon *d, struct shown *sh, cbuf *out, const uint8_t *p,
	       size_t len, const cim_event_view *v, const cim_cid *cid, uint64_t seq,
	       bool forgotten, cim_perr *e);
void shown_release(struct daemon *d, struct shown *sh);

/* datakeys.c: data keys of encrypted aggregates (see its head comment).
 * keys_pin and keys_unpin only look at memory; the others ask JetStream
 * (read workers and start-up only). */
enum { KEY_MISS = -1, KEY_NONE = 0, KEY_HELD = 1 };
/* The master key read, the cache made (main, after the settings). 0 or -1
 * (said on stderr). */
int keys_open(struct daemon *d);
/* The bucket made when missing, and the master key checked against a
 * stored data key (a wrong one refuses the start), or a store holding keys
 * refused without master_key. 0; -1 when the bucket cannot be made or read
 * (a failure a restart may mend: exit 1); -2 when the start is refused:
 * a wrong master key, keys stored and no master key, or a value in the
 * bucket that is not an aggregate's key (exit 2). Both logged. */
int keys_setup(struct daemon *d);
void keys_close(struct daemon *d);
/* master_key is set and encrypt_types names type. */
bool keys_encrypted_type(const struct daemon *d, const char *type);
/* From memory: KEY_HELD with *k pinned, KEY_NONE (no key is stored, or no
 * master key), KEY_MISS (not in memory). */
int keys_pin(struct daemon *d, const char *type, const char *id, const cim_key **k);
void keys_unpin(struct daemon *d, const cim_key *k);
/* keys_pin, then the bucket: KEY_HELD with *k pinned, KEY_NONE when no key
 * is stored (make: one is made and stored, KEY_HELD), or -1 with e set. */
int keys_get(struct daemon *d, const char *type, const char *id, bool make,
	     const cim_key **k, cim_perr *e);
/* A restore's key block (restore.c): it must unwrap under the master key
 * (for its own aggregate); stored with kvStore_Create, or, when the bucket
 * holds one for that aggregate already, it must be the same key. 0, or -1
 * with e set (invalid_argument, field key, for a key that does not fit). */
struct cim_wrapped_key;
int keys_restore(struct daemon *d, const struct cim_wrapped_key *w, cim_perr *e);
/* Drops type/id's key from memory (wiped) and removes it from the bucket's
 * stream, leaving no revision. 0, or -1 with e set. */
int keys_erase(struct daemon *d, const char *type, const char *id, cim_perr *e);
/* Removes type/id's snapshot from the snapshots bucket's stream. */
int keys_purge_snapshot(struct daemon *d, const char *type, const char *id, cim_perr *e);
/* Wipes every data key slot of the cache (pinned ones when their last pin
 * goes): when the lease is lost and taken again, another daemon may have
 * made or erased keys meanwhile. */
void keys_drop_cache(struct daemon *d);
/* For info: the cache's figures (null without a master key). */
json_t *keys_info(struct daemon *d);

#endif
