/*
 * cli_read.c: the cim-events commands for snapshots and the reads beyond
 * one aggregate's pages: snapshot save, snapshot get, load and by-type.
 *
 * Like get, each sends the contract request itself (cim_request) and
 * prints the daemon's reply object, so what an operator sees is exactly
 * what a client in any language would get. Two of them may need more than
 * one request: load, when the daemon cut its reply short, and by-type
 * --all, which follows next_after_seq to the end.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"


static const char usage_snapshot[] =
	"usage: " PROG " snapshot save TYPE ID VERSION STATE_JSON\n"
	"       " PROG " snapshot get TYPE ID\n"
	"save stores STATE_JSON as the aggregate's state at VERSION (which\n"
	"must be stored) and prints what is in place: a snapshot already\n"
	"stored at a higher version is kept. get prints the latest snapshot\n"
	"(version, state, snapshot_cid, event_cid); none is not_found (exit\n"
	"3).\n";
static const char usage_load[] =
	"usage: " PROG " load TYPE ID\n"
	"Prints the aggregate as a service loads it: its latest snapshot (or\n"
	"null), every event after it, and its version.\n";
static const char usage_by_type[] =
	"usage: " PROG " by-type EVENT_TYPE [--after-seq N] [--limit N] "
	"[--all]\n"
	"Prints, in stream order, the events of that type in every aggregate\n"
	"stored after stream sequence N (default 0). --all follows the pages\n"
	"to the end and prints them merged.\n";

/* The options of a command that takes only --help and positionals; 1 when
 * --help was printed. */
static int
plain_args(int argc, char **argv, const char *help, struct positionals *pos)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	return cli_rest_positionals(pos, argc, argv);
}

/* Sends req (NULL: {}) and prints the reply. */
static int
request_and_print(struct ctx *cx, const char *op, const char *type,
		  const char *id, const json_t *req)
{
	json_t *reply = NULL;
	int status = cli_request(cx, op, type, id, req, &reply);

	if (status == 0)
		status = cli_print_json(reply);
	json_decref(reply);
	return status;
}

/* ---- snapshot ------------------------------------------------------------ */

static int
snapshot_save(struct ctx *cx, const struct positionals *pos)
{
	json_error_t jerr;
	json_t *req, *state;
	uint64_t version;
	int status;

	if (cli_parse_u64(pos->v[2], INT64_MAX, &version) != 0 || version == 0)
		return cli_usage_error("VERSION must be a stored version (1 or "
				       "more), not '%s'",
				       pos->v[2]);
	if ((state = cim_json_read(pos->v[3], strlen(pos->v[3]),
				   JSON_DECODE_ANY, &jerr)) == NULL)
		return cli_usage_error("STATE_JSON is not valid JSON: %s",
				       jerr.text);
	if ((req = json_pack("{s:I,s:o}", "version", (json_int_t)version,
			     "state", state)) == NULL)
		return cli_fail_nomem();
	status = request_and_print(cx, "snapshot.save", pos->v[0], pos->v[1],
				   req);
	json_decref(req);
	return status;
}

int
cli_snapshot(struct ctx *cx, int argc, char **argv)
{
	struct positionals pos = {.n = 0};
	bool save;
	int status;

	/* The subcommand comes first, before any option of its own. */
	if (argc < 2)
		return cli_usage_error("snapshot needs save or get");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage_snapshot, stdout);
		return 0;
	}
	if (strcmp(argv[1], "save") != 0 && strcmp(argv[1], "get") != 0)
		return cli_usage_error("snapshot needs save or get, not '%s'",
				       argv[1]);
	save = strcmp(argv[1], "save") == 0;
	/* getopt scans from argv[1] on: the subcommand stands as argv[0]. */
	if ((status = plain_args(argc - 1, argv + 1, usage_snapshot, &pos)) !=
	    0)
		return status < 0 ? 0 : status;
	if (save) {
		if (pos.n < 4)
			return cli_usage_error("snapshot save needs TYPE, ID, "
					       "VERSION and STATE_JSON");
		return snapshot_save(cx, &pos);
	}
	if (cli_want_positionals(&pos, 2, "snapshot get") != 0)
		return EXIT_USAGE;
	return request_and_print(cx, "snapshot.get", pos.v[0], pos.v[1], NULL);
}

/* ---- load ---------------------------------------------------------------- */

/* The version an event of a reply carries, 0 when it has none. */
static uint64_t
event_version(const json_t *ev)
{
	json_int_t v = json_integer_value(json_object_get(ev, "version"));

	return v > 0 ? (uint64_t)v : 0;
}

/* A load reply the daemon cut short at the NATS payload limit (its events
 * stop before its version, and next_from_version says where to go on):
 * the rest comes from get, page by page, up to that version and no
 * further, so the result is what one uncut load would have said. */
static int
load_rest(struct ctx *cx, const char *type, const char *id, json_t *reply)
{
	json_t *events = json_object_get(reply, "events");
	const json_t *snap = json_object_get(reply, "snapshot");
	uint64_t version = event_version(reply), have;

	if (!json_is_array(events)) {
		fprintf(stderr, PROG ": bad_reply: the reply's \"events\" is "
				     "not an array\n");
		return EXIT_DAEMON;
	}
	have = json_array_size(events) > 0
		       ? event_version(json_array_get(
				 events, json_array_size(events) - 1))
		       : json_is_object(snap) ? event_version(snap) : 0;
	while (have < version) {
		json_t *req, *page = NULL, *got;
		size_t i, before = json_array_size(events);
		int status;

		if ((req = json_pack("{s:I}", "from_version",
				     (json_int_t)(have + 1))) == NULL)
			return cli_fail_nomem();
		status = cli_request(cx, "get", type, id, req, &page);
		json_decref(req);
		if (status != 0)
			return status;
		got = json_object_get(page, "events");
		for (i = 0; i < json_array_size(got); i++) {
			json_t *ev = json_array_get(got, i);

			if (event_version(ev) != have + 1 ||
			    have + 1 > version)
				break;
			if (json_array_append(events, ev) != 0) {
				json_decref(page);
				return cli_fail_nomem();
			}
			have++;
		}
		json_decref(page);
		if (json_array_size(events) == before) {
			fprintf(stderr,
				PROG ": bad_reply: the daemon reported "
				     "version %" PRIu64 " but get gives no "
				     "event %" PRIu64 "\n",
				version, have + 1);
			return EXIT_DAEMON;
		}
	}
	/* The printed reply is whole, so it says there is nothing more. */
	if (json_object_get(reply, "next_from_version") != NULL &&
	    json_object_set_new(reply, "next_from_version", json_null()) != 0)
		return cli_fail_nomem();
	return 0;
}

int
cli_load(struct ctx *cx, int argc, char **argv)
{
	struct positionals pos = {.n = 0};
	json_t *reply = NULL;
	int status;

	if ((status = plain_args(argc, argv, usage_load, &pos)) != 0)
		return status < 0 ? 0 : status;
	if (cli_want_positionals(&pos, 2, "load") != 0)
		return EXIT_USAGE;
	status = cli_request(cx, "load", pos.v[0], pos.v[1], NULL, &reply);
	if (status == 0)
		status = load_rest(cx, pos.v[0], pos.v[1], reply);
	if (status == 0)
		status = cli_print_json(reply);
	json_decref(reply);
	return status;
}

/* ---- by-type ------------------------------------------------------------- */

static json_t *
by_type_request(uint64_t after, uint64_t limit)
{
	json_t *req = json_object();

	if (req == NULL ||
	    (after > 0 && json_object_set_new(req, "after_seq",
					      json_integer((json_int_t)after))) ||
	    (limit > 0 &&
	     json_object_set_new(req, "limit",
				 json_integer((json_int_t)limit)))) {
		json_decref(req);
		return NULL;
	}
	return req;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Follows next_after_seq until it is null; *merged is the last reply with
 * the events of every page. A page that does not move on stopped before a
 * batch still being stored (it completes within moments) or before an
 * event of an aggregate the daemon is settling (up to its 30 s grace after
 * an append it gave up on): it is asked again, for as long as one request
 * may take (--timeout). */
static int
by_type_all(struct ctx *cx, const char *type, uint64_t after, uint64_t limit,
	    json_t **merged)
{
	json_t *events = json_array(), *req, *reply = NULL;
	int64_t waited = 0, bound = cx->timeout_ms > 0 ? cx->timeout_ms : 5000;
	int status = 0;

	for (;;) {
		const json_t *next;
		json_int_t n;

		if (events == NULL ||
		    (req = by_type_request(after, limit)) == NULL) {
			status = cli_fail_nomem();
			break;
		}
		status = cli_request(cx, "by_type", type, NULL, req, &reply);
		json_decref(req);
		if (status != 0)
			break;
		next = json_object_get(reply, "next_after_seq");
		if (json_array_extend(events,
				      json_object_get(reply, "events")) != 0) {
			fprintf(stderr, PROG ": bad_reply: the reply's "
					     "\"events\" is not an array\n");
			status = EXIT_DAEMON;
			break;
		}
		if (next == NULL || json_is_null(next))
			break;
		n = json_is_integer(next) ? json_integer_value(next) : -1;
		if (n < 0 || (uint64_t)n < after ||
		    ((uint64_t)n == after &&
		     json_array_size(json_object_get(reply, "events")) > 0)) {
			fprintf(stderr,
				PROG ": bad_reply: the reply's "
				     "\"next_after_seq\" does not move on\n");
			status = EXIT_DAEMON;
			break;
		}
		if ((uint64_t)n == after) {
			if (waited >= bound) {
				fprintf(stderr,
					PROG ": timeout: by_type stays before "
					     "stream sequence %" PRIu64
					     " (an append still being "
					     "stored, or an aggregate the "
					     "daemon is settling; a longer "
					     "--timeout waits longer)\n",
					after + 1);
				status = EXIT_UNREACHABLE;
				break;
			}
			sleep_ms(20);
			waited += 20;
		} else
			waited = 0;
		after = (uint64_t)n;
		json_decref(reply);
		reply = NULL;
	}
	if (status != 0 || json_object_set(reply, "events", events) != 0) {
		json_decref(events);
		json_decref(reply);
		return status != 0 ? status : cli_fail_nomem();
	}
	json_decref(events);
	*merged = reply;
	return 0;
}

int
cli_by_type(struct ctx *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"after-seq", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'l'},
		{"all", no_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct positionals pos = {.n = 0};
	uint64_t after = 0, limit = 0;
	json_t *req, *reply = NULL;
	bool all = false;
	int ch, status;

	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 's':
			if (cli_parse_u64(optarg, INT64_MAX, &after) != 0)
				return cli_usage_error("--after-seq needs a "
						       "stream sequence, not "
						       "'%s'",
						       optarg);
			break;
		case 'l':
			if (cli_parse_u64(optarg, UINT32_MAX, &limit) != 0 ||
			    limit == 0)
				return cli_usage_error("--limit needs a "
						       "positive number, not "
						       "'%s'",
						       optarg);
			break;
		case 'a':
			all = true;
			break;
		case 'h':
			fputs(usage_by_type, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0)
		return EXIT_USAGE;
	if (pos.n != 1)
		return pos.n == 0 ? cli_usage_error("by-type needs EVENT_TYPE")
				  : cli_usage_error("unexpected argument '%s'",
						    pos.v[1]);
	if (all)
		status = by_type_all(cx, pos.v[0], after, limit, &reply);
	else if ((req = by_type_request(after, limit)) == NULL)
		return cli_fail_nomem();
	else {
		status = cli_request(cx, "by_type", pos.v[0], NULL, req,
				     &reply);
		json_decref(req);
	}
	if (status == 0)
		status = cli_print_json(reply);
	json_decref(reply);
	return status;
}
