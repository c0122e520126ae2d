/*
 * bench.h: the same-run benchmark of cim-eventsd (issue 3).
 *
 * One program measures, in one run and against one nats-server, the floor
 * (bare NATS request/reply, bare JetStream publish) and the daemon (append
 * latency and throughput, reads, growth, memory, start-up), and prints both
 * side by side. Files:
 *
 *   main.c   flags, the order of the sections, the final table and JSON
 *   proc.c   nats-server and cim-eventsd as child processes, RSS, machine
 *   load.c   samples and percentiles, synchronous requests, the N-in-flight
 *            engine, the prebuilt request bodies
 *   floor.c  the floor: echo round trip, JetStream sync and async publish
 *   floor_append.c  the append floors: the relay (relay/relay.c, a
 *            program of its own) and the async publish of messages shaped
 *            like the daemon's
 *   store.c  the daemon: append latency/throughput, reads, growth
 *   seal.c   sealing: the same appends with and without a signing key
 *
 * Everything talks to 127.0.0.1 only; every loop has a count bound and a
 * time bound.
 */
#ifndef CIM_BENCH_H
#define CIM_BENCH_H

#include <jansson.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

/* Set by SIGINT/SIGTERM: every loop ends early, processes are stopped. */
extern volatile sig_atomic_t g_stop;

/* ---- time and samples ------------------------------------------------------ */

int64_t now_ns(void);
double now_s(void);
void sleep_ms(int ms);

/* Latencies in microseconds. */
typedef struct samples {
	double *v;
	size_t n, cap;
} samples;

void samples_init(samples *s, size_t cap);
void samples_add(samples *s, double us);
void samples_free(samples *s);
/* q in [0,1], nearest rank on a sorted copy; NAN when empty. */
double samples_q(const samples *s, double q);

/* A latency figure: p50/p99 in microseconds, how many samples, errors. */
typedef struct lat {
	double p50, p99, mean;
	long n, errors;
	bool ran;
	char note[160];
} lat;

void lat_from(lat *l, const samples *s, long errors);
json_t *lat_json(const lat *l);

/* A rate figure. */
typedef struct rate {
	double per_s;      /* events (or messages) per second */
	double req_per_s;  /* requests per second */
	double p50, p99;   /* per-request latency under this load, us */
	long requests, events, errors, timeouts;
	double seconds;
	bool ran, valid;
	/* CPU used during the run, in % of one core; NAN when unknown */
	double cpu_daemon, cpu_nats, cpu_bench;
	char note[200];
} rate;

json_t *rate_json(const rate *r);

/* Another daemon binary measured in the same run (--compare NAME=PATH):
 * its own prefix, stream, events subject and buckets on the same
 * nats-server, so that both are active writers at once. */
#define MAX_COMPARE 4
typedef struct compare {
	const char *name;
	const char *bin;
	char prefix[64];
	pid_t pid;
	bool up;
} compare;

/* ---- processes (proc.c) ------------------------------------------------------ */

typedef struct procs {
	char dir[256];       /* mkdtemp; holds stores and logs */
	char store[300];     /* nats-server -sd */
	char nats_log[300];
	char daemon_log[300];
	int port;
	char url[64];
	pid_t nats_pid;
	pid_t daemon_pid;
	const char *daemon_bin;  /* as given */
	char daemon_copy[300];   /* what we run: a copy made at start, so a
				    rebuild during the run changes nothing */
} procs;

int procs_init(procs *p, const char *daemon_bin);
/* Starts nats-server on a free loopback port with store dir
 * p->dir/<store_name>; waits until it accepts connections. */
int nats_start(procs *p, const char *store_name);
void nats_stop(procs *p);
/* Starts the daemon; waits up to timeout_ms for info to answer. Returns
 * 0, or -1 (nothing left running). *elapsed_ms (may be NULL) is the time
 * from fork to the first answered info. */
int daemon_start(procs *p, int timeout_ms, double *elapsed_ms);
/* SIGTERM, bounded wait, SIGKILL past it. Returns the exit status or -1. */
int daemon_stop(procs *p);
/* Starts c->bin (copied into p->dir) as a second writer on p's server,
 * with prefix, stream, events subject and buckets of its own named after
 * c->name. 0, or -1 (printed). */
int compare_start(procs *p, compare *c);
void compare_stop(compare *c);
void procs_cleanup(procs *p);
/* VmRSS in KiB of pid, -1 when unknown. */
long rss_kib(pid_t pid);
/* user + system CPU seconds of pid (getpid() for ourselves), NAN when
 * unknown. */
double cpu_s(pid_t pid);
/* Lines of the daemon's log at level warn/error: counted, the first few
 * printed to stdout and put into arr. */
long log_scan(const char *path, const char *what, json_t *arr);
/* Lines containing needle: printed and put into arr. */
void log_grep(const char *path, const char *needle, const char *what,
	      json_t *arr);

json_t *machine_info(void);

/* ---- requests (load.c) ------------------------------------------------------- */

/* Connects with SendAsap on or off; NULL on failure (printed). */
natsConnection *connect_nats(const char *url, bool send_asap);

/* A request that must answer Cim-Status 200. Returns 0 on 200, 1 on
 * another status (or none), -1 on a NATS failure (timeout, no responders).
 * *reply (may be NULL) receives the message on 0 and 1. */
int cim_req(natsConnection *nc, const char *subject, const char *body,
	    int len, int timeout_ms, natsMsg **reply);

/* The prebuilt request bodies. */
const char *event_data(void);          /* ~200 bytes of JSON */
char *append_body(int n_events);       /* {"events":[...n...]}, malloc'd */

/* The N-in-flight engine: one subscription on <inbox>.*, requests
 * published with reply <inbox>.<k>, exactly `inflight` outstanding. */
typedef void (*subject_fn)(void *ctx, long k, char *buf, size_t n);

typedef struct engine_run {
	natsConnection *nc;
	int inflight;
	long max_requests;   /* count bound */
	double seconds;      /* time bound for sending (0: count only) */
	double stall_s;      /* give up when no reply came for this long */
	subject_fn subject;
	void *subject_ctx;
	const char *body;
	int body_len;
	int events_per_request;
	bool quiet;
} engine_run;

void engine(const engine_run *er, rate *out);

/* Parses the reply of info; NULL on failure. */
json_t *daemon_info(natsConnection *nc, const char *prefix, int timeout_ms);

/* ---- the run (shared by main.c, floor.c, store.c) -------------------------- */

typedef struct config {
	const char *url;        /* --url, or our own server's */
	const char *daemon_bin;
	const char *relay_bin;  /* --relay, or bench-relay beside this program */
	const char *json_path;
	bool quick, growth, own, growth_only, appends_only, reads_only, crypt_only;
	const char *prefix;     /* cim.events.v1 */
	char stream[64];        /* the daemon's stream, from info */
	uint64_t hash_code;     /* the daemon's multihash, from info */
	char tag[32];           /* names unique to this run */
	procs *P;               /* our processes; NULL with --url */
	compare cmp[MAX_COMPARE];
	int ncmp;
} config;

extern config C;

typedef struct floor_res {
	lat rr;            /* echo round trip */
	lat js_sync;       /* js_Publish */
	rate js_async_asap, js_async_default;
	/* js_PublishMsgAsync of messages shaped like the daemon's: one event
	 * each, and in batches of 100 (floor_append.c) */
	rate shaped1, shaped100;
	double js_async_best;
	const char *js_async_best_conn;
} floor_res;

void run_floor(floor_res *f, json_t *out);
/* For async publish floors: counts error acks in *(long *)closure. */
void floor_count_err(jsCtx *js, jsPubAckErr *pae, void *closure);
/* Waits for every ack, then fills r's seconds and CPU shares since t0
 * (n0, b0: nats-server's and this program's CPU seconds then). */
natsStatus floor_async_finish(jsCtx *js, rate *r, int64_t t0, double n0, double b0);
/* Request/reply whose reply is reply_bytes long (what a get of many events
 * must send back), from a responder on another connection. */
typedef struct cbuf_view {
	char *p;
	size_t len;
} cbuf_view;
void floor_rr_sized(lat *l, size_t reply_bytes, int warm, int n);

/* ---- the append floors (floor_append.c) ------------------------------------- */

#define RELAY_PREFIX "relay.v1"

typedef struct relay_proc {
	pid_t pid;
	char log[320];
} relay_proc;

/* Starts the relay program on url, publishing payload_bytes per message;
 * waits until it serves. 0, or -1 (printed; nothing left running). */
int relay_start(relay_proc *r, const char *bin, const char *url, int payload_bytes);
void relay_stop(relay_proc *r);
/* n messages shaped like the daemon's, published async: one event each
 * (batch 0) or in batches (Cim-Batch i/batch). */
void floor_shaped(rate *r, int batch, long n);
/* One event block of the bench's data at version 2 (malloc'd), its CID
 * and its prev as text. 0 or -1. */
int bench_block(uint8_t **out, size_t *len, char *cid_text, char *prev_text);

typedef struct store_res {
	lat append1;           /* 1 in flight */
	rate tp[8];            /* throughput runs, see store.c */
	const char *tp_name[8];
	int tp_batch[8];       /* events per request */
	rate relay[8];         /* the relay at the same in-flight level
				  (single events only; .ran false otherwise) */
	rate cmp_tp[MAX_COMPARE][8]; /* the --compare daemons, same runs */
	lat cmp_append1[MAX_COMPARE];
	const char *relay_name[8];
	int n_tp;
	lat get1k, head, val1k, val10k;
	lat load_short, load_long; /* 10 events after a snapshot, after 90 / 9,990 */
	long get1k_pages;
	/* floors: the same messages pulled bare, nothing decoded */
	lat bare1k, bare10k;
	/* and the CIDs of the 10,000 computed alone, from memory */
	lat hash10k;
	/* a request/reply whose reply is as long as get's of the 1,000 */
	lat rr_get1k;
	/* get's own work on the 1,000 (check, CID, JSON), from memory */
	lat work1k;
	long get1k_bytes;
} store_res;

/* Pulls every message on subject from the start through an ephemeral pull
 * consumer, batches of up to 1024, touching nothing (headers too when
 * headers is set). Returns the messages read and sets *ms; -1 on error. */
long bare_pull(jsCtx *js, const char *stream, const char *subject, bool headers,
	       double *ms);
/* The same, calling each(m, ctx) on every message read (each may be NULL). */
long bare_pull_each(jsCtx *js, const char *stream, const char *subject, bool headers,
		    double *ms, void (*each)(natsMsg *m, void *ctx), void *ctx);

void run_appends(store_res *r, json_t *out);
void run_reads(store_res *r, json_t *out);
/* bytype.c: by_type pages on a large stream, beside their floors */
void run_bytype(json_t *out);

typedef struct growth_point {
	long target, stored, aggregates;
	lat append1, get_new, get_old;
	double fill_rate;
	bool reached;
} growth_point;

typedef struct growth_res {
	growth_point pt[3];
	int n_pt;
	bool ran;
	rate fill;                      /* the whole fill */
	long rss0_kib, rss_full_kib, rss_restart_kib;
	long aggregates;
	double bytes_per_agg, bytes_per_agg_restart;
	double restart_ms, daemon_startup_ms;
	/* floors for the restart: the whole stream pulled bare */
	double scan_bare_ms, scan_headers_ms;
	long scan_msgs;
	long restart_heads, restart_startup_events; /* info after restart */
	int restart_head_checks, restart_head_ok;   /* head of m-* aggregates */
	bool restart_ok, mem_ran;
	char note[200];
} growth_res;

/* own: p is our processes (memory and restart); NULL with --url. */
void run_growth(growth_res *g, procs *p, json_t *out);

/* ---- sealing (seal.c) ---------------------------------------------------------- */

/* Appends without and with a signing key, the daemon restarted for each;
 * results under "seal" in out. Needs our own daemon (skipped with --url). */
void run_seal_cost(json_t *out);

/* ---- encrypted aggregates (crypt.c) ------------------------------------------ */

typedef struct crypt_res {
	bool ran;
	lat first[2];      /* [0] plain, [1] encrypted: the first append of an aggregate */
	lat append1[2];    /* 1 in flight, to aggregates with their data key */
	rate tp64[2];      /* 64 in flight (ev/s averaged over two runs each) */
	lat get1k[2];      /* get of 1,000 events, all pages */
	double replay[2];  /* cim_replay, events/s */
	long replay_events;
} crypt_res;

/* Gives the daemon main.c starts a master key (a new file in dir) and
 * encrypt_types benchenc, through its environment. 0 or -1. */
int crypt_setup(const char *dir);
void run_crypt(crypt_res *k, json_t *out);
/* Its rows of the final table. */
void crypt_rows(const crypt_res *k);

/* main.c: one row of the final table (ratio = ours / floor). */
void bench_row(const char *figure, double ours, const char *unit, double floor,
	       const char *floor_what, bool valid);

#endif
