/*
 * history.h: a store with some history, and the reads across aggregates
 * checked against it from every start position.
 *
 * Reads that pass on a fresh stream can fail on one with history: other
 * aggregates and event types interleaved, messages deleted in the middle,
 * a torn batch removed at start-up, another stream on the same server.
 * The fixture builds such a store through the real daemon (and, for what
 * only a crash or a foreign writer leaves, straight into JetStream), and
 * keeps the exact list of stored, committed events, so that every read can
 * be held to it:
 *
 *     hist h;
 *     hist_build(&h);                     (H from h_setup: nats + daemon)
 *     hist_check_by_type(&h, "Paid", &t); (every after_seq, limits 1, 2, default)
 *     hist_check_replay(&h, "events.*.*.Paid", &t);
 *
 * Each check asserts that every request or replay gives exactly the
 * fixture's list, and that none took anywhere near a fetch expiry
 * (HIST_SLOW_MS): the end of a read is found from facts, never by waiting.
 * The slowest single request is kept in the timing and printed.
 */
#ifndef CIM_TEST_HISTORY_H
#define CIM_TEST_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "cim/events.h"

/* A read that took this long waited for something it should have known:
 * the daemon's and the library's reads wait up to 5 s for a fetch, so this
 * is well below that and far above any honest read of this fixture, even
 * on a loaded machine. */
#define HIST_SLOW_MS 2000.0

/* HIST_SLOW_MS, or infinity when the daemons run under valgrind
 * (CIM_TEST_VALGRIND=1), which slows them past any such bound: there only
 * what the reads hand out is held to the fixture. */
double hist_slow_ms(void);

/* One stored, committed event. */
typedef struct hist_ev {
	uint64_t seq;
	uint64_t version;
	char type[32];
	char id[32];
	char event_type[32];
} hist_ev;

typedef struct hist {
	hist_ev *ev;       /* in stream order */
	size_t n, cap;
	uint64_t last_seq; /* the stream's last sequence when built */
	char **aggs;       /* "type/id" of every aggregate with events, sorted */
	size_t naggs;
} hist;

/* The slowest single request of a check, and how many were made. */
typedef struct hist_timing {
	double slowest_ms;
	char slowest[160]; /* which one */
	long requests;
} hist_timing;

/* Appends events (one append: a batch when n > 1) of the given event types
 * to type/id, any expected version, asserting success, and records them.
 * Returns the stream sequence of the first. */
uint64_t hist_append(hist *h, const char *type, const char *id,
		     const char *const *event_types, size_t n);
/* Notes the stream's last sequence (after writes made outside
 * hist_append) and sorts the aggregates. */
void hist_seal(hist *h);
void hist_free(hist *h);

/* The fixture (see history.c for what it holds). Needs H as h_setup
 * leaves it; restarts the daemon on the way (H.daemon changes). */
void hist_build(hist *h);

/* The events whose subject events.<type>.<id>.<event_type> matches the
 * NATS subject pattern, with seq >= from, in stream order: how many, and
 * (when out is not NULL) a malloc'd array of pointers into h. */
size_t hist_select(const hist *h, const char *pattern, uint64_t from, const hist_ev ***out);

/* by_type.<event_type> from every after_seq (0 to past the end), with
 * limit 1, 2 and none (the default), each followed page by page to the
 * end: asserts every page against the fixture. */
void hist_check_by_type(const hist *h, const char *event_type, hist_timing *t);
/* A replay (stop_at_end) of pattern from every start sequence (0 to past
 * the end): asserts it hands out exactly the fixture's events and ends. */
void hist_check_replay(const hist *h, const char *pattern, hist_timing *t);
/* A durable projection of pattern resumed from a checkpoint right before
 * each event it matches (and from none, and from the end): asserts it
 * hands out exactly the events after its checkpoint, without waiting for
 * them. */
void hist_check_projection(const hist *h, const char *pattern, hist_timing *t);

void hist_timing_print(const char *what, const hist_timing *t);
/* Records one request of elapsed ms into t. */
void hist_timing_add(hist_timing *t, double ms, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
