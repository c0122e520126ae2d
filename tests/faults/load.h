/*
 * load.h: a load generator with a journal, and the checker that holds the
 * store to what the journal says. Used by every fault test (and usable by
 * any test that wants "hammer the daemon, break something, prove nothing
 * was lost"); no test framework here, only nats.c, jansson, the client
 * library and pthreads.
 *
 * The load. fl_start() starts N threads (16 by default), each with its own
 * cim_client (its own NATS connection, a short timeout). Each thread
 * appends to a few aggregates of its own and to some aggregates shared by
 * all threads, so expected-version conflicts happen, and now and then to
 * one "hot" aggregate with expected version any, so that several appends
 * are in flight on one aggregate at once and the daemon chains them
 * (pipelined appends, docs/design.md). Every append is a
 * batch of 1..max_batch events with explicit event_ids (so a retry is
 * idempotent) and an explicit expected version: the version the thread
 * believes the aggregate is at ("any" on the hot aggregate). On wrong_expected_version, or after an
 * append whose outcome is unknown, the thread reads the head before its
 * next append there. An append that got no answer is sometimes retried
 * with the same event_ids, the same content and the same expected
 * version, as a client may legitimately do.
 *
 * The journal. Every attempt is recorded (under a mutex) with its outcome:
 *   FL_ACKED      success; the versions, CIDs and stream sequences of the
 *                 reply are kept;
 *   FL_REFUSED    a definite "not stored": an error reply from the daemon
 *                 (unavailable, wrong_expected_version, duplicate_event,
 *                 ...), or no_daemon (NATS had no subscriber, so the
 *                 request reached nobody);
 *   FL_UNANSWERED the outcome is unknown: a client timeout, a lost
 *                 connection, a reply not understood, or the daemon's
 *                 `internal` "storage did not confirm the append".
 * A logical append (one set of event_ids) may have several attempts: the
 * first and its retries.
 *
 * Bounds: the load stops after max_appends attempts in total or max_ms,
 * whichever comes first, or when fl_stop() is called.
 *
 * The checker, fl_check(), runs after the load with a healthy daemon:
 *   - it reads the raw stream with a JetStream ordered consumer over
 *     <events>.> and checks each message (the block decodes strictly, its
 *     CID is the Cim-Cid header, its aggregate is the subject's, its
 *     version and event_id are the headers'), then counts messages per
 *     (aggregate, version) and per Cim-Event-Id: each must be exactly 1;
 *   - per aggregate of the load: the versions stored are 1..n, gapless,
 *     each prev the CID of the event before; cim_get (every page) shows
 *     exactly the stored events up to the daemon's head, same event_ids
 *     and CIDs; cim_validate says valid;
 *   - per logical append: an acknowledged one is stored exactly once, at
 *     the versions, CIDs (and sequences) its ack said (every ack of it
 *     says the same); one with no ack is wholly present (all its
 *     event_ids, in order, at consecutive versions of its aggregate) or
 *     wholly absent; one whose every attempt was refused is absent;
 *   - every event stored for the load's aggregates belongs to an append
 *     of the journal (nothing appears from nowhere).
 * Violations are printed (to the FILE given, up to a bound) with the
 * journal entries concerned, and counted in the figures.
 *
 * Typical use (see tests/faults/test_crash.c):
 *
 *     fl_options o = {.url = H.nats.url};
 *     fl_load *l = fl_start(&o, why, sizeof why);
 *     ... break things, mend them ...
 *     fl_stop(l); fl_join(l);
 *     fl_figures f;
 *     int bad = fl_check(l, NULL, &f, stderr);
 *     fl_print_figures(stdout, "crash", &f);
 *     fl_free(l);
 *
 * Threads: fl_stop, fl_get_stats and fl_acked_since may be called from
 * any thread while the load runs; fl_attempt_get, fl_check and
 * fl_print_append only after fl_join.
 */
#ifndef CIM_TESTS_FAULTS_LOAD_H
#define CIM_TESTS_FAULTS_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cid.h"
#include "cim/events.h"

typedef struct fl_options {
	const char *url;        /* NATS URL (required); a comma-separated list
				   spreads the clients: thread i connects to
				   the (i mod count)-th URL */
	const char *prefix;     /* API prefix; NULL: cim.events.v1 */
	const char *agg_type;   /* aggregate type of every aggregate; NULL: "fault" */
	const char *tag;        /* in every event_id and aggregate id, so two
				   loads never collide; NULL: made from the pid
				   and the clock */
	int threads;            /* 0: 16 */
	int own_aggs;           /* aggregates of each thread's own; 0: 3 */
	int shared_aggs;        /* aggregates all threads share; 0: 4, -1: none */
	int shared_percent;     /* appends that go to a shared one; 0: 30 */
	int hot_percent;        /* appends that go to the hot aggregate, with
				   expected version any; 0: 20, -1: none */
	int max_batch;          /* events per append, 1..max_batch; 0: 5 */
	int retry_percent;      /* unanswered appends retried; 0: 50, -1: none */
	int max_retries;        /* retries of one append at most; 0: 3 */
	int pad_min, pad_max;   /* bytes of padding in each event's data,
				   uniform in [pad_min, pad_max]; 0, 0: 0..64 */
	int64_t timeout_ms;     /* each client's request timeout; 0: 2000 */
	uint64_t max_appends;   /* attempts in total; 0: no bound but the time */
	int64_t max_ms;         /* 0: 60000 */
	int pause_ms;           /* a thread's pause between requests; 0: none */
	unsigned seed;          /* 0: from the clock */
	const char *stream;     /* for the checker; NULL: CIM-EVENTS */
	const char *events_subject; /* for the checker; NULL: "events" */
} fl_options;

typedef enum fl_outcome {
	FL_ACKED = 0,
	FL_REFUSED,
	FL_UNANSWERED,
} fl_outcome;

const char *fl_outcome_name(fl_outcome o);

/* One attempt of one logical append, as recorded. */
typedef struct fl_attempt {
	uint32_t append;        /* which logical append (fl_print_append) */
	uint8_t retry;          /* 0: the first attempt, then 1, 2, ... */
	uint8_t outcome;        /* fl_outcome */
	uint8_t code;           /* cim_err: CIM_ERR_OK when acked */
	int64_t start_ms;       /* CLOCK_MONOTONIC, as h_now_ms() */
	int64_t end_ms;
	uint64_t version;       /* FL_ACKED: the reply's version */
	char *message;          /* the error's message, NULL when acked */
	char (*cids)[CIM_CID_TEXT_MAX]; /* FL_ACKED: one per event */
	uint64_t *seqs;         /* FL_ACKED: one per event */
} fl_attempt;

/* Counters while the load runs. */
typedef struct fl_stats {
	uint64_t attempts, acked, acked_events, refused, unanswered, retries;
	uint64_t by_code[CIM_ERR__COUNT]; /* attempts by result code */
	uint64_t head_reads, head_failures;
	int64_t max_latency_ms;          /* of any request, appends and heads */
	int64_t last_ack_ms;             /* end of the last acked attempt */
	char sample[CIM_ERR__COUNT][256];/* the first message seen per code */
	bool running;                    /* some thread is still going */
} fl_stats;

/* What the checker found. */
typedef struct fl_figures {
	size_t aggregates;          /* aggregates of the load */
	uint64_t stream_messages;   /* raw messages read from the stream (all) */
	uint64_t events_checked;    /* events of the load's aggregates checked
				       in the stream and through the daemon */
	uint64_t appends;           /* logical appends */
	uint64_t attempts;
	uint64_t acked;             /* logical appends with an ack */
	uint64_t acked_events;
	uint64_t refused;           /* logical appends every attempt of which
				       was refused */
	uint64_t unanswered;        /* logical appends with no ack and at
				       least one unanswered attempt */
	uint64_t unanswered_present, unanswered_absent;
	uint64_t retries, retries_acked;
	uint64_t beyond_head;       /* events stored past the daemon's head
				       (whole appends not yet adopted) */
	uint64_t appends_chained;   /* info's appends_chained (and rerun) of */
	uint64_t appends_rerun;     /* the checking daemon, and of each one
				       fl_note_daemon asked before it died */
	uint64_t violations;
} fl_figures;

typedef struct fl_load fl_load;

/* Starts the load. NULL with a sentence in why when a client cannot
 * connect (nothing is left running). */
fl_load *fl_start(const fl_options *o, char *why, size_t whylen);
/* Asks every thread to stop after its current request. */
void fl_stop(fl_load *l);
/* Waits for every thread to end: at the load's bounds, or after fl_stop
 * (each ends within its request timeout plus a retry pause). */
void fl_join(fl_load *l);
/* Frees everything (joins first if needed). */
void fl_free(fl_load *l);

void fl_get_stats(fl_load *l, fl_stats *s);
/* Acked attempts that ended at or after since_ms (h_now_ms clock). */
uint64_t fl_acked_since(fl_load *l, int64_t since_ms);
/* The longest time in [from_ms, to_ms] with no acked attempt ending,
 * and where it began (*at_ms, may be NULL). */
int64_t fl_longest_ack_gap(fl_load *l, int64_t from_ms, int64_t to_ms, int64_t *at_ms);
/* Asks the daemon serving now for its pipelining counters and adds them
 * to the figures (a test that kills daemons calls it before each kill). */
void fl_note_daemon(fl_load *l);
/* Waits up to timeout_ms until n more attempts have been acked than when
 * called; returns how many were. */
uint64_t fl_wait_acks(fl_load *l, uint64_t n, int64_t timeout_ms);

/* The journal, after fl_join. */
size_t fl_attempt_count(const fl_load *l);
const fl_attempt *fl_attempt_get(const fl_load *l, size_t i);
/* One logical append with all its attempts, one line each. */
void fl_print_append(FILE *out, const fl_load *l, uint32_t append);
/* The aggregate an append went to, "type/id". */
const char *fl_append_aggregate(const fl_load *l, uint32_t append);
/* The load's aggregates: all of type fl_aggregate_type(l), ids 0..count-1. */
const char *fl_aggregate_type(const fl_load *l);
int fl_aggregate_count(const fl_load *l);
const char *fl_aggregate_id(const fl_load *l, int i);

typedef struct fl_check_options {
	const char *url;        /* NULL: the load's url (a list: the first
				   that takes a connection) */
	int64_t timeout_ms;     /* the checker's requests; 0: 10000 */
	size_t max_report;      /* violations printed in full; 0: 40 */
	int64_t wait_ms;        /* waits this long for the daemon to answer
				   info before checking; 0: 30000 */
} fl_check_options;

/* Checks the store against the journal (stopping and joining the load
 * first), with a daemon serving (it waits for one to answer info). Fills
 * *f; returns the number of violations (0: all good), or -1 when the
 * check itself could not be made (a sentence is printed). A get or
 * validate that fails counts as a violation; the raw stream is read from
 * NATS directly. */
int fl_check(fl_load *l, const fl_check_options *o, fl_figures *f, FILE *report);

/* small when $CIM_FAULT_SCALE is not "full", else full. */
int fl_scale(int small, int full);
bool fl_full(void);

/* Copies every *.log of dir into /tmp/cim-faults-<tag>-<pid>/ (kept for
 * evidence after the test's directory is removed); its path into out.
 * 0 or -1. */
int fl_keep_logs(const char *dir, const char *tag, char *out, size_t outlen);

/* The figures on one line each, under a title. */
void fl_print_figures(FILE *out, const char *title, const fl_figures *f);

#endif
