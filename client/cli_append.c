/*
 * cli_append.c: cim-events append, which builds the append request from
 * the command line: TYPE ID, --expected, and one --event EVENT_TYPE
 * DATA_JSON per event, each followed by its own options.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"


static const char usage_append[] =
	"usage: " PROG " append TYPE ID [--expected N|any|no_stream|exists]\n"
	"         (--event EVENT_TYPE DATA_JSON [--event-id ID]\n"
	"          [--correlation-id ID] [--causation-id ID]"
	" [--metadata JSON])...\n"
	"Appends one or more events to the aggregate, all or nothing, and\n"
	"prints the daemon's reply. --expected defaults to any; the options\n"
	"after an --event apply to that event.\n";

static int
parse_expected(const char *s, json_t **out)
{
	uint64_t v;

	if (strcmp(s, "any") == 0 || strcmp(s, "no_stream") == 0 ||
	    strcmp(s, "exists") == 0)
		*out = json_string(s);
	else if (cli_parse_u64(s, INT64_MAX, &v) == 0)
		*out = json_integer((json_int_t)v);
	else
		return cli_usage_error(
			"--expected needs a version, any, no_stream "
			"or exists, not '%s'",
			s);
	return *out == NULL ? cli_fail_nomem() : 0;
}

/* Sets key of ev to a JSON value parsed from text (what: for messages). */
static int
set_parsed(json_t *ev, const char *key, const char *text, const char *what)
{
	json_error_t jerr;
	json_t *v = cim_json_read(text, strlen(text), JSON_DECODE_ANY, &jerr);

	if (v == NULL)
		return cli_usage_error("%s is not valid JSON: %s", what,
				       jerr.text);
	if (json_object_set_new(ev, key, v) != 0)
		return cli_fail_nomem();
	return 0;
}

static int
set_text(json_t *ev, const char *key, const char *text, const char *opt)
{
	json_t *v;

	if (ev == NULL)
		return cli_usage_error("%s must follow an --event", opt);
	if ((v = json_string(text)) == NULL)
		return cli_usage_error("%s is not valid UTF-8", opt);
	return json_object_set_new(ev, key, v) != 0 ? cli_fail_nomem() : 0;
}

/* --event EVENT_TYPE DATA_JSON: a new event object at the end of events;
 * DATA_JSON is the argument after the option's own. */
static int
add_event(json_t *events, int argc, char **argv, json_t **cur)
{
	json_t *ev = json_object();
	int status;

	if (optind >= argc)
		return cli_usage_error(
			"--event needs EVENT_TYPE and DATA_JSON");
	if (ev == NULL || json_array_append_new(events, ev) != 0)
		return cli_fail_nomem();
	if ((status = set_text(ev, "event_type", optarg, "--event")) != 0 ||
	    (status = set_parsed(ev, "data", argv[optind++], "DATA_JSON")) != 0)
		return status;
	*cur = ev;
	return 0;
}

static int
append_options(int argc, char **argv, json_t *req, json_t *events,
	       struct positionals *pos)
{
	static const struct option longopts[] = {
		{"expected", required_argument, NULL, 'x'},
		{"event", required_argument, NULL, 'e'},
		{"event-id", required_argument, NULL, 'i'},
		{"correlation-id", required_argument, NULL, 'c'},
		{"causation-id", required_argument, NULL, 'u'},
		{"metadata", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	json_t *cur = NULL, *expected = NULL;
	int ch, st = 0;

	while (st == 0 &&
	       (ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			st = cli_add_positional(pos, optarg);
			break;
		case 'x':
			if ((st = parse_expected(optarg, &expected)) == 0 &&
			    json_object_set_new(req, "expected_version",
						expected) != 0)
				st = cli_fail_nomem();
			break;
		case 'e':
			st = add_event(events, argc, argv, &cur);
			break;
		case 'i':
			st = set_text(cur, "event_id", optarg, "--event-id");
			break;
		case 'c':
			st = set_text(cur, "correlation_id", optarg,
				      "--correlation-id");
			break;
		case 'u':
			st = set_text(cur, "causation_id", optarg,
				      "--causation-id");
			break;
		case 'm':
			st = cur == NULL
				     ? cli_usage_error("--metadata must follow "
						       "an --event")
				     : set_parsed(cur, "metadata", optarg,
						  "--metadata");
			break;
		case 'h':
			fputs(usage_append, stdout);
			return -1;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (st == 0)
		st = cli_rest_positionals(pos, argc, argv);
	if (st == 0)
		st = cli_want_positionals(pos, 2, "append");
	if (st == 0 && json_array_size(events) == 0)
		st = cli_usage_error("append needs at least one --event");
	return st;
}

int
cli_append(struct ctx *cx, int argc, char **argv)
{
	struct positionals pos = {.n = 0};
	json_t *req = json_object(), *events = json_array(), *reply = NULL;
	int status;

	if (req == NULL || events == NULL ||
	    json_object_set(req, "events", events) != 0) {
		json_decref(req);
		json_decref(events);
		return cli_fail_nomem();
	}
	status = append_options(argc, argv, req, events, &pos);
	if (status == 0)
		status = cli_request(cx, "append", pos.v[0], pos.v[1], req,
				     &reply);
	if (status == 0)
		status = cli_print_json(reply);
	json_decref(reply);
	json_decref(req);
	json_decref(events);
	return status < 0 ? 0 : status; /* -1: --help was printed */
}
