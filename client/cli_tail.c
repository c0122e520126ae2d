/*
 * cli_tail.c: cim-events tail, which follows the event stream for a
 * subject pattern through a library subscription (cim_subscribe) and
 * prints each event as one compact JSON line the moment it arrives.
 *
 * It reads JetStream directly, not through the daemon, so it sees events
 * as they are stored, checked (CID recomputed, prev compared) unless
 * --no-check, and never part of a batch. A failed check is reported on
 * stderr and tail goes on: an operator watching the stream wants to see
 * the problem and what comes after it; the exit status (1) still says it
 * happened.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "ids.h"
#include "jsontext.h"

/* How long one wait for an event lasts: the bound on noticing a signal. */
#define POLL_MS 200

static const char usage_tail[] =
	"usage: " PROG " tail PATTERN [--from-seq N | --since TIME] "
	"[--count N] [--no-check] [--key K]...\n"
	"Follows the events whose subjects match PATTERN (events.>,\n"
	"events.order.>, events.*.*.OrderPlaced, ...) and prints each as one\n"
	"JSON line as it arrives. By default only events stored from now on;\n"
	"--from-seq starts at stream sequence N, --since at the first event\n"
	"stored at or after TIME (RFC 3339, e.g. 2026-11-22T10:00:00Z).\n"
	"Stops after --count events, or on SIGINT/SIGTERM. Each event's CID\n"
	"and prev link are checked unless --no-check; a failed check is\n"
	"reported on stderr, tail goes on, and it exits 1 at the end.\n"
	"With --key (a public key text, z6Mk...; repeat it for more keys)\n"
	"every seal must verify and every append must end with a seal from\n"
	"one of the keys (failures bad_seal, unsealed).\n";

static volatile sig_atomic_t stop_requested;

static void
on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGINT and SIGTERM end the tail cleanly. No SA_RESTART: nothing here
 * blocks longer than POLL_MS anyway, and the flag is read after each wait. */
static void
catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ---- one event as a JSON line -------------------------------------------- */

static int
put_key(cbuf *b, const char *key, bool first)
{
	if ((!first && cbuf_putc(b, ',') != 0) ||
	    cim_json_write_string(b, key, strlen(key)) != 0 ||
	    cbuf_putc(b, ':') != 0)
		return -1;
	return 0;
}

static int
put_str(cbuf *b, const char *key, const char *v)
{
	if (put_key(b, key, false) != 0)
		return -1;
	return v == NULL ? cbuf_puts(b, "null")
			 : cim_json_write_string(b, v, strlen(v));
}

/* An id, which may hold U+0000: len bytes. */
static int
put_id(cbuf *b, const char *key, const char *v, size_t len)
{
	if (put_key(b, key, false) != 0)
		return -1;
	return cim_json_write_string(b, v, len);
}

static int
put_u64(cbuf *b, const char *key, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	return put_key(b, key, false) != 0 ? -1 : cbuf_puts(b, num);
}

/* A JSON value the library already holds as text (data, metadata): put as
 * it is, so floats keep the exact form the store gives them. */
static int
put_raw(cbuf *b, const char *key, const char *json, const char *dflt)
{
	if (put_key(b, key, false) != 0)
		return -1;
	return cbuf_puts(b, json != NULL && *json != '\0' ? json : dflt);
}

/* The event with every field, in the order get shows them. */
static int
event_line(cbuf *b, const cim_event *ev)
{
	cbuf_reset(b);
	if (cbuf_putc(b, '{') != 0 ||
	    put_key(b, "aggregate_type", true) != 0 ||
	    cim_json_write_string(b, ev->aggregate_type,
				  strlen(ev->aggregate_type)) != 0 ||
	    put_str(b, "aggregate_id", ev->aggregate_id) != 0 ||
	    put_u64(b, "version", ev->version) != 0 ||
	    put_str(b, "event_type", ev->event_type) != 0 ||
	    put_id(b, "event_id", ev->event_id, ev->event_id_len) != 0 ||
	    put_id(b, "correlation_id", ev->correlation_id,
		   ev->correlation_id_len) != 0 ||
	    put_id(b, "causation_id", ev->causation_id,
		   ev->causation_id_len) != 0 ||
	    put_str(b, "timestamp", ev->timestamp) != 0 ||
	    put_raw(b, "metadata", ev->metadata_json, "{}") != 0 ||
	    put_raw(b, "data", ev->data_json, "null") != 0 ||
	    (ev->encrypted && (put_key(b, "encrypted", false) != 0 ||
			       cbuf_puts(b, "true") != 0)) ||
	    (ev->forgotten && (put_key(b, "forgotten", false) != 0 ||
			       cbuf_puts(b, "true") != 0)) ||
	    put_str(b, "prev", ev->prev) != 0 ||
	    put_str(b, "cid", ev->cid) != 0 ||
	    put_u64(b, "seq", ev->seq) != 0)
		return -1;
	if (ev->seal_key != NULL && ev->seal_sig != NULL &&
	    (put_key(b, "seal", false) != 0 || cbuf_putc(b, '{') != 0 ||
	     put_key(b, "key", true) != 0 ||
	     cim_json_write_string(b, ev->seal_key, strlen(ev->seal_key)) != 0 ||
	     put_str(b, "sig", ev->seal_sig) != 0 || cbuf_putc(b, '}') != 0))
		return -1;
	return cbuf_puts(b, "}\n");
}

/* ---- tail ---------------------------------------------------------------- */

struct tail_args {
	cim_subscribe_options so;
	uint64_t count; /* 0: no bound */
	struct cli_keys keys;
};

static int
tail_options(int argc, char **argv, struct tail_args *a)
{
	static const struct option longopts[] = {
		{"from-seq", required_argument, NULL, 'f'},
		{"since", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'c'},
		{"no-check", no_argument, NULL, 'n'},
		{"key", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct positionals pos = {.n = 0};
	bool from = false, since = false;
	int ch;

	a->so.start = CIM_START_NOW;
	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'f':
			if (cli_parse_u64(optarg, INT64_MAX,
					  &a->so.start_seq) != 0)
				return cli_usage_error("--from-seq needs a "
						       "stream sequence, not "
						       "'%s'",
						       optarg);
			/* Sequences start at 1: 0 means the beginning. */
			a->so.start = a->so.start_seq > 0 ? CIM_START_SEQ
							  : CIM_START_BEGIN;
			from = true;
			break;
		case 's':
			if (cim_time_parse(optarg, &a->so.start_time_ns) != 0)
				return cli_usage_error(
					"--since needs an RFC 3339 time "
					"(2026-11-22T10:00:00Z), not '%s'",
					optarg);
			a->so.start = CIM_START_TIME;
			since = true;
			break;
		case 'c':
			if (cli_parse_u64(optarg, UINT64_MAX, &a->count) != 0 ||
			    a->count == 0)
				return cli_usage_error("--count needs a "
						       "positive number, not "
						       "'%s'",
						       optarg);
			break;
		case 'n':
			a->so.no_check = true;
			break;
		case 'k':
			if (cli_add_key(&a->keys, optarg) != 0)
				return EXIT_USAGE;
			a->so.trusted_keys = a->keys.text;
			a->so.n_trusted_keys = a->keys.n;
			break;
		case 'h':
			fputs(usage_tail, stdout);
			return -1;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0)
		return EXIT_USAGE;
	if (from && since)
		return cli_usage_error("--from-seq and --since cannot be "
				       "given together");
	if (a->so.no_check && a->keys.n > 0)
		return cli_usage_error("--key checks seals, which --no-check "
				       "turns off: give one or the other");
	if (pos.n != 1)
		return pos.n == 0
			       ? cli_usage_error("tail needs a PATTERN, such "
						 "as 'events.>'")
			       : cli_usage_error("unexpected argument '%s'",
						 pos.v[1]);
	a->so.pattern = pos.v[0];
	return 0;
}

/* A failed check: one line on stderr. The library's message names the
 * event (stream sequence, aggregate, version) and what is wrong with it. */
static void
report_check_failure(const cim_error *err)
{
	fprintf(stderr, PROG ": check_failed: %s\n",
		err->message[0] != '\0' ? err->message
					: cim_strerror(CIM_ERR_CHECK_FAILED));
}

/* Prints events until the count is reached or a signal asks to stop. */
static int
follow(cim_subscription *s, uint64_t count)
{
	cbuf line = CBUF_INIT;
	uint64_t printed = 0;
	bool broken = false;
	int status = 0;

	while (!stop_requested && (count == 0 || printed < count)) {
		const cim_event *ev = NULL;
		cim_error err;
		cim_err rc = cim_subscription_next(s, POLL_MS, &ev, &err);

		if (rc == CIM_ERR_TIMEOUT)
			continue;
		if (rc == CIM_ERR_CHECK_FAILED) {
			report_check_failure(&err);
			broken = true;
			continue;
		}
		if (rc != CIM_ERR_OK) {
			status = cli_fail(rc, &err);
			break;
		}
		if (ev == NULL) /* the end: only with stop_at_end, not set */
			break;
		if (event_line(&line, ev) != 0) {
			status = cli_fail_nomem();
			break;
		}
		/* One write and a flush per event, so a pipe reader sees it
		 * at once and a line is never split between two writes. */
		if (fwrite(line.p, 1, line.len, stdout) != line.len ||
		    fflush(stdout) != 0) {
			fprintf(stderr, PROG ": cannot write to stdout\n");
			status = EXIT_DAEMON;
			break;
		}
		printed++;
	}
	cbuf_free(&line);
	return status != 0 ? status : broken ? EXIT_BROKEN : 0;
}

int
cli_tail(struct ctx *cx, int argc, char **argv)
{
	static struct tail_args a;
	cim_subscription *s = NULL;
	cim_error err;
	cim_err rc;
	int status;

	memset(&a, 0, sizeof(a));
	if ((status = tail_options(argc, argv, &a)) != 0)
		return status < 0 ? 0 : status;
	if ((status = cli_connect(cx)) != 0)
		return status;
	catch_stop_signals();
	if ((rc = cim_subscribe(cx->client, &a.so, &s, &err)) != CIM_ERR_OK)
		return cli_fail(rc, &err);
	status = follow(s, a.count);
	cim_subscription_close(s);
	return status;
}
