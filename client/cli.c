/*
 * cli.c: cim-events, the operator's command-line tool, on top of
 * libcimevents only.
 *
 * Each command sends one contract request (get --all, by-type --all: one
 * per page) and prints the daemon's reply object as JSON on stdout:
 * indented when stdout is a terminal, compact otherwise; tail instead
 * prints one compact line per event as it arrives. Failures go to stderr
 * as "cim-events: <code>: <message>" with the exit status saying who
 * failed: 2 the command line, 3 the daemon (or its reply), 4 the way to
 * it. validate and verify-all also exit 1 when a chain is broken, tail
 * when an event failed its integrity check, export --car and import when
 * the stream or the file does not hold what they copy (usage() below
 * lists every case).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "jsontext.h"
#include "keys.h"

#define DEFAULT_URL "nats://127.0.0.1:4222"

struct command {
	const char *name;
	int (*run)(struct ctx *, int, char **);
};

static const char usage_get[] =
	"usage: " PROG " get TYPE ID [--from N] [--limit N] [--all]\n"
	"Prints one page of the aggregate's events from version N (default\n"
	"1). --all follows the pages to the head and prints them merged.\n";
static const char usage_head[] =
	"usage: " PROG " head TYPE ID\n"
	"Prints the aggregate's version, head CID and stream sequence.\n";
static const char usage_validate[] =
	"usage: " PROG " validate TYPE ID [--key K]...\n"
	"Has the daemon recompute the aggregate's hash chain from the stored\n"
	"bytes. With --key (a public key text, z6Mk...; repeat it for more\n"
	"keys) also its seals: every seal must verify, and the head must be\n"
	"covered by a seal from one of the keys (the reply's sealed_through\n"
	"says how far they cover). Without --key the daemon's trusted_keys\n"
	"apply. Exits 0 when it is valid, 1 when it is not.\n";
static const char usage_info[] =
	"usage: " PROG " info\n"
	"Prints the daemon's name, version, settings and counters.\n";

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--url URL] [--prefix P] [--timeout MS] "
		"COMMAND ...\n"
		"\n"
		"commands:\n"
		"  append TYPE ID [--expected N|any|no_stream|exists]\n"
		"         (--event EVENT_TYPE DATA_JSON [--event-id ID]\n"
		"          [--correlation-id ID] [--causation-id ID]"
		" [--metadata JSON])...\n"
		"  get TYPE ID [--from N] [--limit N] [--all]\n"
		"  head TYPE ID\n"
		"  validate TYPE ID [--key K]...\n"
		"  snapshot save TYPE ID VERSION STATE_JSON\n"
		"  snapshot get TYPE ID\n"
		"  load TYPE ID\n"
		"  by-type EVENT_TYPE [--after-seq N] [--limit N] [--all]\n"
		"  tail PATTERN [--from-seq N | --since RFC3339_TIME]"
		" [--count N] [--no-check] [--key K]...\n"
		"  info\n"
		"  stats [--json]\n"
		"  verify-all [PATTERN] [--stream NAME] [--json] [--key K]...\n"
		"  export [PATTERN | TYPE ID] [--stream NAME] [--car FILE]\n"
		"  import FILE\n"
		"  forget TYPE ID [--yes]\n"
		"  keygen [--master] FILE                (offline)\n"
		"  verify-car FILE [--key K]... [--json] (offline)\n"
		"\n"
		"options (before the command):\n"
		"  --nats-url URL       NATS server(s), comma-separated (default "
		DEFAULT_URL ";\n"
		"                       --url is another name of it)\n"
		"  --nats-user U --nats-password P | --nats-token T |\n"
		"  --nats-nkey-seed FILE | --nats-creds FILE    how to log in\n"
		"  --tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-required]\n"
		"  --js-domain D | --js-api-prefix P    the JetStream tail, verify-all\n"
		"                       and export read (default $JS.API)\n"
		"  --prefix P           API subject prefix (default: cim.events.v1)\n"
		"  --config FILE        read these settings from an INI file, such as\n"
		"                       the daemon's (its other settings are passed over)\n"
		"  --check-config       print the settings in force (secrets masked)\n"
		"  --timeout MS         per request (default: 5000)\n"
		"  -h, --help           this text; COMMAND --help for one command\n"
		"  -V, --version        the version\n"
		"Every setting can also come from $CIM_EVENTS_<KEY> (e.g.\n"
		"$CIM_EVENTS_NATS_USER) and $CIM_EVENTS_CONFIG names the file; flags\n"
		"win over the environment, which wins over the file.\n"
		"\n"
		"Replies are printed as JSON on stdout (tail: one line per "
		"event).\n"
		"Exit status: 0 success, 1 validate or verify-all found a "
		"broken chain,\n"
		"tail an event that failed its check, export --car a chain the "
		"stream does\n"
		"not hold up to its head (or a file it cannot write), import a "
		"file it\n"
		"cannot read or that differs from the store, verify-car a "
		"failure, or\n"
		"keygen could not write its file, 2 usage error (or forget not "
		"confirmed),\n"
		"3 error from the daemon, 4 NATS or the daemon cannot be reached "
		"in time.\n");
}

/* ---- reporting ----------------------------------------------------------- */

int
cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": usage: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" PROG " --help'.\n");
	return EXIT_USAGE;
}

int
cli_add_key(struct cli_keys *k, const char *text)
{
	if (k->n == CLI_KEYS_MAX)
		return cli_usage_error("at most %d --key options", CLI_KEYS_MAX);
	if (cim_pubkey_from_text(k->pk[k->n], text) != 0)
		return cli_usage_error("--key needs an Ed25519 public key text "
				       "(z6Mk..., as keygen prints it), not '%s'",
				       text);
	k->text[k->n++] = text;
	return 0;
}

/* Prints a library or daemon error and returns the exit status for it. */
int
cli_fail(cim_err code, const cim_error *err)
{
	const char *msg =
		err->message[0] != '\0' ? err->message : cim_strerror(code);

	fprintf(stderr, PROG ": %s: %s\n", cim_err_name(code), msg);
	switch (code) {
	case CIM_ERR_TIMEOUT:
	case CIM_ERR_NO_DAEMON:
	case CIM_ERR_CONNECTION:
		return EXIT_UNREACHABLE;
	default:
		return EXIT_DAEMON;
	}
}

int
cli_fail_nomem(void)
{
	fprintf(stderr, PROG ": nomem: out of memory\n");
	return EXIT_DAEMON;
}

/* Writes compact JSON text indented by two spaces per level. */
static int
print_indented(FILE *f, const char *s)
{
	int depth = 0;
	bool in_str = false;

	for (const char *c = s; *c; c++) {
		if (in_str) {
			putc(*c, f);
			if (*c == '\\' && c[1] != '\0')
				putc(*++c, f);
			else if (*c == '"')
				in_str = false;
			continue;
		}
		switch (*c) {
		case '"':
			in_str = true;
			putc(*c, f);
			break;
		case '{':
		case '[':
			putc(*c, f);
			if (c[1] == '}' || c[1] == ']') {
				putc(*++c, f); /* {} and [] stay on one line */
				break;
			}
			fprintf(f, "\n%*s", 2 * ++depth, "");
			break;
		case '}':
		case ']':
			fprintf(f, "\n%*s%c", 2 * --depth, "", *c);
			break;
		case ',':
			fprintf(f, ",\n%*s", 2 * depth, "");
			break;
		case ':':
			fputs(": ", f);
			break;
		default:
			putc(*c, f);
		}
	}
	return ferror(f) ? -1 : 0;
}

int
cli_print_json(const json_t *j)
{
	/* floats in their shortest exact form (0.1, not 0.10000000000000001),
	 * as the daemon sent them; indented by hand on a terminal */
	char *text = cim_json_text(j);
	int ok = text != NULL;

	if (ok && isatty(STDOUT_FILENO))
		ok = print_indented(stdout, text) == 0;
	else if (ok)
		ok = fputs(text, stdout) != EOF;
	free(text);
	if (!ok || putchar('\n') == EOF || fflush(stdout) != 0) {
		fprintf(stderr, PROG ": cannot write the reply to stdout\n");
		return EXIT_DAEMON;
	}
	return 0;
}

/* The reply text as a JSON object (the library has checked it is one). */
static json_t *
parse_reply(const char *raw, int *status)
{
	json_error_t jerr;
	json_t *j = cim_json_read(raw, strlen(raw), 0, &jerr);

	if (j == NULL) {
		fprintf(stderr, PROG ": bad_reply: %s\n", jerr.text);
		*status = EXIT_DAEMON;
	}
	return j;
}

/* ---- arguments ----------------------------------------------------------- */

/* A decimal number in [0, max]; -1 when s is not one. */
int
cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* What getopt_long could not take: an unknown option or a missing value. */
int
cli_bad_option(int ch, char **argv)
{
	if (ch == ':')
		return cli_usage_error("option '%s' needs a value",
				       argv[optind - 1]);
	if (optopt != 0)
		return cli_usage_error("unknown option '-%c'", optopt);
	return cli_usage_error("unknown option '%s'", argv[optind - 1]);
}

int
cli_add_positional(struct positionals *p, char *arg)
{
	if (p->n == (int)(sizeof(p->v) / sizeof(p->v[0])))
		return cli_usage_error("unexpected argument '%s'", arg);
	p->v[p->n++] = arg;
	return 0;
}

int
cli_rest_positionals(struct positionals *p, int argc, char **argv)
{
	for (int i = optind; i < argc; i++)
		if (cli_add_positional(p, argv[i]) != 0)
			return EXIT_USAGE;
	return 0;
}

int
cli_want_positionals(const struct positionals *p, int n, const char *cmd)
{
	if (p->n < n)
		return cli_usage_error("%s needs %s", cmd,
				       n == 2 ? "TYPE and ID"
					      : "more arguments");
	if (p->n > n)
		return cli_usage_error("unexpected argument '%s'", p->v[n]);
	return 0;
}

/* ---- talking to the daemon ----------------------------------------------- */

/* Sends one request; on success *reply is the reply object. */
int
cli_request(struct ctx *cx, const char *op, const char *type, const char *id,
	    const json_t *req, json_t **reply)
{
	char *body = NULL, *raw = NULL;
	cim_error err;
	cim_err rc;
	int status = 0;

	*reply = NULL;
	if (cx->client == NULL && (status = cli_connect(cx)) != 0)
		return status;
	if (req != NULL &&
	    (body = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY |
					    JSON_REAL_PRECISION(17))) == NULL)
		return cli_fail_nomem();
	rc = cim_request(cx->client, op, type, id, body ? body : "{}", &raw,
			 &err);
	free(body);
	if (rc != CIM_ERR_OK) {
		cim_free(raw);
		if (rc == CIM_ERR_TIMEOUT && cli_refused_by_nats(cx))
			return EXIT_UNREACHABLE;
		return cli_fail(rc, &err);
	}
	*reply = parse_reply(raw, &status);
	cim_free(raw);
	return status;
}

/* The commands that take TYPE ID, no options and print the reply. */
static int
simple_command(struct ctx *cx, int argc, char **argv, const char *op,
	       const char *help, int npos)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct positionals pos = {.n = 0};
	json_t *reply = NULL;
	int ch, status;

	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'h':
			fputs(help, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0)
		return EXIT_USAGE;
	if (npos == 0 && pos.n > 0)
		return cli_usage_error("unexpected argument '%s'", pos.v[0]);
	if (npos > 0 && cli_want_positionals(&pos, npos, op) != 0)
		return EXIT_USAGE;
	if ((status = cli_request(cx, op, npos ? pos.v[0] : NULL,
				  npos ? pos.v[1] : NULL, NULL, &reply)) != 0)
		return status;
	status = cli_print_json(reply);
	json_decref(reply);
	return status;
}

static int
cmd_head(struct ctx *cx, int argc, char **argv)
{
	return simple_command(cx, argc, argv, "head", usage_head, 2);
}

static int
cmd_validate(struct ctx *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"key", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct cli_keys keys;
	struct positionals pos = {.n = 0};
	json_t *req = NULL, *reply = NULL;
	int ch, status;

	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'k':
			if (cli_add_key(&keys, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'h':
			fputs(usage_validate, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0 ||
	    cli_want_positionals(&pos, 2, "validate") != 0)
		return EXIT_USAGE;
	if (keys.n > 0) {
		json_t *arr = json_array();

		req = json_pack("{so}", "keys", arr);
		for (size_t i = 0; req != NULL && i < keys.n; i++)
			json_array_append_new(arr, json_string(keys.text[i]));
		if (req == NULL)
			return cli_fail_nomem();
	}
	status = cli_request(cx, "validate", pos.v[0], pos.v[1], req, &reply);
	json_decref(req);
	if (status != 0)
		return status;
	if (!json_is_boolean(json_object_get(reply, "valid"))) {
		json_decref(reply);
		fprintf(stderr, PROG ": bad_reply: the reply has no \"valid\" "
				     "boolean\n");
		return EXIT_DAEMON;
	}
	status = cli_print_json(reply);
	if (status == 0 && json_is_false(json_object_get(reply, "valid")))
		status = EXIT_BROKEN;
	json_decref(reply);
	return status;
}

static int
cmd_info(struct ctx *cx, int argc, char **argv)
{
	return simple_command(cx, argc, argv, "info", usage_info, 0);
}

/* ---- get ----------------------------------------------------------------- */

static json_t *
get_request(uint64_t from, uint64_t limit)
{
	json_t *req = json_object();

	if (req == NULL ||
	    (from > 0 && json_object_set_new(req, "from_version",
					     json_integer((json_int_t)from))) ||
	    (limit > 0 &&
	     json_object_set_new(req, "limit",
				 json_integer((json_int_t)limit)))) {
		json_decref(req);
		return NULL;
	}
	return req;
}

/* Follows next_from_version to the head; *merged is the last reply with
 * the events of every page. */
static int
get_all(struct ctx *cx, const char *type, const char *id, uint64_t from,
	uint64_t limit, json_t **merged)
{
	json_t *events = json_array(), *req, *reply = NULL;
	int status = 0;

	for (;;) {
		const json_t *next;

		if (events == NULL ||
		    (req = get_request(from, limit)) == NULL) {
			json_decref(events);
			return cli_fail_nomem();
		}
		status = cli_request(cx, "get", type, id, req, &reply);
		json_decref(req);
		if (status != 0)
			break;
		next = json_object_get(reply, "next_from_version");
		if (json_array_extend(events,
				      json_object_get(reply, "events")) != 0) {
			fprintf(stderr, PROG ": bad_reply: the reply's "
					     "\"events\" is not an array\n");
			status = EXIT_DAEMON;
			break;
		}
		if (next == NULL || json_is_null(next))
			break;
		if (!json_is_integer(next) || json_integer_value(next) <= 0 ||
		    (uint64_t)json_integer_value(next) <= from) {
			fprintf(stderr,
				PROG ": bad_reply: the reply's "
				     "\"next_from_version\" does not move "
				     "on\n");
			status = EXIT_DAEMON;
			break;
		}
		from = (uint64_t)json_integer_value(next);
		json_decref(reply);
		reply = NULL;
	}
	if (status != 0 || json_object_set(reply, "events", events) != 0 ||
	    json_object_set_new(reply, "next_from_version", json_null()) != 0) {
		json_decref(events);
		json_decref(reply);
		return status != 0 ? status : cli_fail_nomem();
	}
	json_decref(events);
	*merged = reply;
	return 0;
}

static int
cmd_get(struct ctx *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"from", required_argument, NULL, 'f'},
		{"limit", required_argument, NULL, 'l'},
		{"all", no_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct positionals pos = {.n = 0};
	uint64_t from = 0, limit = 0;
	json_t *req, *reply = NULL;
	bool all = false;
	int ch, status;

	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'f':
			if (cli_parse_u64(optarg, INT64_MAX, &from) != 0)
				return cli_usage_error(
					"--from needs a version, "
					"not '%s'",
					optarg);
			break;
		case 'l':
			if (cli_parse_u64(optarg, UINT32_MAX, &limit) != 0 ||
			    limit == 0)
				return cli_usage_error(
					"--limit needs a positive "
					"number, not '%s'",
					optarg);
			break;
		case 'a':
			all = true;
			break;
		case 'h':
			fputs(usage_get, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0 ||
	    cli_want_positionals(&pos, 2, "get") != 0)
		return EXIT_USAGE;
	if (all)
		status = get_all(cx, pos.v[0], pos.v[1], from, limit, &reply);
	else if ((req = get_request(from, limit)) == NULL)
		return cli_fail_nomem();
	else {
		status =
			cli_request(cx, "get", pos.v[0], pos.v[1], req, &reply);
		json_decref(req);
	}
	if (status == 0)
		status = cli_print_json(reply);
	json_decref(reply);
	return status;
}

/* ---- main ---------------------------------------------------------------- */

static const struct command commands[] = {
	{"append", cli_append},
	{"get", cmd_get},
	{"head", cmd_head},
	{"validate", cmd_validate},
	{"snapshot", cli_snapshot},
	{"load", cli_load},
	{"by-type", cli_by_type},
	{"tail", cli_tail},
	{"info", cmd_info},
	{"stats", cli_stats},
	{"verify-all", cli_verify_all},
	{"export", cli_export},
	{"forget", cli_forget},
	{"keygen", cli_keygen},
	{"verify-car", cli_verify_car},
	{"import", cli_import},
};

int
main(int argc, char **argv)
{
	struct ctx cx = {.timeout_ms = 0};
	const struct command *cmd = NULL;
	int status;

	if ((status = cli_settings_load(&cx, argc, argv, usage)) != 0) {
		cli_settings_free(&cx);
		return status < 0 ? 0 : status;
	}
	if (optind >= argc) {
		cli_settings_free(&cx);
		return cli_usage_error("no command given");
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		cli_settings_free(&cx);
		return cli_usage_error("unknown command '%s'", argv[optind]);
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* glibc: start a fresh scan of the command's arguments */
	status = cmd->run(&cx, argc, argv);
	cli_disconnect(&cx);
	cli_settings_free(&cx);
	return status;
}
