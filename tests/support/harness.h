/*
 * harness.h: what the integration tests stand on.
 *
 * Every test runs against a real nats-server (JetStream, loopback only, a
 * fresh store in a temporary directory) and a real cim-eventsd found through
 * $CIM_TEST_DAEMON. Nothing is mocked. The harness stops only the processes
 * it started, by their pid, and removes only the directories it made.
 *
 * The usual way in is the fixture pair h_setup/h_teardown
 *
 *     TestSuite(append, .init = h_setup, .fini = h_teardown, .timeout = 60);
 *
 * which gives each test (Criterion runs each in its own process) its own
 * nats-server and daemon, plus a NATS connection, a JetStream context and a
 * cim_client in the global H. When a test fails, the runner prints the
 * nats-server and daemon logs of that test to stderr.
 *
 * Helpers that cannot go on (a server that does not start, a request that
 * cannot be sent) fail the current test with cr_assert; they are only
 * called from the test's main thread.
 */
#ifndef CIM_TEST_HARNESS_H
#define CIM_TEST_HARNESS_H

#include <jansson.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cid.h"
#include "cim/events.h"
#include "event.h"

#define H_PREFIX "cim.events.v1"
#define H_STREAM "CIM-EVENTS"

/* ---- processes ------------------------------------------------------------ */

/* One nats-server: its pid, port, URL and the temporary directory holding
 * its store (dir/js) and the logs of everything the test started. */
typedef struct h_nats {
	pid_t pid;
	int port;
	char url[64];
	char dir[256];
	char conf[300]; /* the configuration file it runs with, or "" */
} h_nats;

/* Starts nats-server -js on a free loopback port with a fresh store, and
 * waits (up to 5 s) until it accepts TCP connections. Returns 0, or -1 with
 * a sentence on stderr (nothing left running). */
int h_nats_start(h_nats *n);
/* SIGTERM, wait (SIGKILL after 5 s), then removes n->dir. */
void h_nats_stop(h_nats *n);
/* SIGKILL and wait; the store and the directory stay for h_nats_restart. */
void h_nats_kill(h_nats *n);
/* Starts nats-server again on the same port and store. Returns 0 or -1. */
int h_nats_restart(h_nats *n);
/* As h_nats_start, but nats-server runs with a configuration file
 * (n->dir/nats.conf): conf_text (authorization, tls, accounts, ...) after
 * the lines the harness writes itself (host 127.0.0.1, a free port,
 * jetstream with its store in n->dir/js). Returns 0 or -1. */
int h_nats_start_conf(h_nats *n, const char *conf_text);

/* Starts $CIM_TEST_DAEMON --nats-url n->url [args...] (a NULL-ended list of
 * extra arguments), its output appended to n->dir/daemon.log, and waits (up
 * to 10 s) until it answers <prefix>.info (cim.events.v1, or the value of a
 * "--prefix" argument). Returns its pid, or -1 when it did not come up (it
 * is then stopped). */
pid_t h_daemon_start(const h_nats *n, ...) __attribute__((sentinel));
/* The same with the extra arguments in a NULL-ended array, and the
 * readiness probe connecting with probe (a server that wants a log-in or
 * TLS; NULL: n->url as it is). */
pid_t h_daemon_start_args(const h_nats *n, natsOptions *probe, const char *const *args);
/* SIGTERM and wait up to timeout_ms (0: 15 s); SIGKILL past that. Returns
 * the exit code, 128 + the signal when a signal ended it, or -1 when it had
 * to be killed after the bound. */
int h_daemon_stop_within(pid_t pid, int timeout_ms);
int h_daemon_stop(pid_t pid);
/* SIGKILL and wait. */
void h_daemon_kill9(pid_t pid);
/* Waits up to timeout_ms for pid to exit. Returns as h_daemon_stop, or -2
 * when it is still running. */
int h_wait_exit(pid_t pid, int timeout_ms);

/* What a program run by a test did: its exit code (128 + the signal when
 * a signal ended it, -1 when it had to be killed after the bound), what it
 * wrote, and its stdout parsed (NULL when that is not one JSON value). */
typedef struct h_run {
	int status;
	char *out;
	char *err;
	json_t *json;
} h_run;

/* The whole file, NUL-terminated (free it); asserts it can be read. */
char *h_slurp(const char *path);
/* Starts argv (NULL-ended, argv[0] the binary) with stdin from /dev/null
 * and stdout and stderr in H.nats.dir/<tag>.out and <tag>.err, without
 * waiting. The child dies with the test. Asserts it was started. */
pid_t h_spawn(const char *tag, const char *const *argv);
/* Waits up to timeout_ms for pid, killing and reaping it past that
 * (status -1), and collects what the one started as tag wrote. */
h_run h_finish(pid_t pid, const char *tag, int timeout_ms);
void h_run_free(h_run *r);
/* Runs cim-events ($CIM_TEST_CLI) --url url with the arguments given (up
 * to 20, NULL-ended; H_CLI_AT adds the NULL), as tag "cli", within 120 s. */
h_run h_cli_at(const char *url, const char *first, ...);
#define H_CLI_AT(url, ...) h_cli_at(url, __VA_ARGS__, (const char *)NULL)

/* A second store beside the test's own: its nats-server, a daemon on it
 * with the arguments given (NULL: none), and a client of it. */
typedef struct h_store {
	h_nats nats;
	pid_t daemon;
	cim_client *client;
} h_store;
#define H_STORE_INIT {.nats = {.pid = -1}, .daemon = -1}
/* Starts all three; asserts they started. */
void h_store_start(h_store *s, const char *const *args);
/* Stops what was started (again: nothing). */
void h_store_stop(h_store *s);

/* ---- the per-test environment --------------------------------------------- */

typedef struct h_env {
	h_nats nats;
	pid_t daemon;           /* -1 when not running */
	natsConnection *nc;     /* raw requests and JetStream reads */
	jsCtx *js;
	cim_client *client;     /* the client library, default options */
} h_env;

extern h_env H;

/* Criterion fixtures: nats-server, daemon, connections. */
void h_setup(void);
void h_teardown(void);
/* The fixture without a daemon (tests that start it themselves). */
void h_setup_nats_only(void);
/* From a test body: H.nats started from conf_text (h_nats_start_conf),
 * its logs shown when the test fails; no daemon, and H.nc, H.js and
 * H.client stay NULL (the server may want a log-in). h_teardown stops it. */
void h_setup_nats_conf(const char *conf_text);

/* A new cim_client with its own connection to H.nats.url (timeout_ms 0:
 * the library's default); asserts it connects. */
cim_client *h_client_new(int64_t timeout_ms);

/* ---- raw requests ------------------------------------------------------------ */

typedef struct h_reply {
	natsStatus s;  /* NATS_OK, or why no reply came (NATS_TIMEOUT, ...) */
	int status;    /* the Cim-Status header as a number, -1 when absent */
	char *body;    /* the reply body, NUL-terminated */
	int len;
	json_t *json;  /* the body parsed, NULL when it is not JSON */
} h_reply;

/* Sends body (len bytes; len < 0: strlen) to subject through H.nc and
 * waits up to 5 s. Never asserts: r->s says what happened. */
void h_request(h_reply *r, const char *subject, const void *body, int len);
/* The same with the subject built from printf arguments. */
void h_requestf(h_reply *r, const char *body, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void h_reply_free(h_reply *r);
/* error.code of an error reply, NULL when there is none. */
const char *h_error_code(const h_reply *r);
/* error.<key> as a string, NULL when absent or not a string. */
const char *h_error_str(const h_reply *r, const char *key);

/* ---- JetStream, read and written directly ------------------------------------ */

/* The stream's message at seq (js_GetMsg); asserts it is there. */
natsMsg *h_stream_get(uint64_t seq);
/* State.Msgs of the stream: how many messages it holds. */
uint64_t h_stream_msgs(void);
/* js_Publish of raw bytes; asserts the publish was acknowledged. */
void h_stream_publish(const char *subject, const void *data, int len);
/* A header's value or NULL. */
const char *h_header(natsMsg *m, const char *key);

/* Reads the stored message at seq, decodes its block (asserting it decodes)
 * and computes its CID (dag-cbor, blake2b-256) into cid_text. Returns the
 * message (destroy it) and fills ev (free with cim_event_block_free). */
natsMsg *h_stored_event(uint64_t seq, cim_event_block *ev,
			char cid_text[CIM_CID_TEXT_MAX]);

/* ---- appends through the client library ------------------------------------- */

/* Appends one event of type evtype with data_json and asserts success. */
cim_append_result *h_append1(const char *type, const char *id,
			     int64_t expected, const char *evtype,
			     const char *data_json);
/* Appends n single events ({"i": k}) one by one, asserting each. Returns
 * the head CID text of the last (caller frees with free()). */
char *h_append_n(const char *type, const char *id, int n);

/* ---- small things ------------------------------------------------------------ */

/* A malloc'd printf. */
char *h_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sleeps ms milliseconds. */
void h_sleep_ms(int ms);
/* Milliseconds from a monotonic clock. */
int64_t h_now_ms(void);

#endif
