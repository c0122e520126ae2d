/*
 * cli_ops.c: the cim-events commands for operators watching and checking
 * a store: stats (info as a table), verify-all (validate every aggregate,
 * or those matching a pattern) and export (the events of one aggregate, or
 * of those matching a pattern, as JSON lines).
 *
 * The contract has no request that lists aggregates, so verify-all and
 * export find them where they are: the event stream's subjects
 * (<root>.<type>.<id>.<event_type>), read through the JetStream API
 * (stream info with a subjects filter) on a connection of their own. The
 * root is the stream's own configured subject (events.> gives events).
 * Everything else goes through the daemon, as any client would.
 *
 * PATTERN, for both: TYPE_GLOB[.ID_GLOB], where each glob is a token
 * (aggregate type or id characters) in which '*' matches any run of
 * characters and '?' one character, over the whole token. No ID_GLOB
 * means every id. So: `order` or `order.*` every order, `order.o-1*` the
 * orders whose id starts with o-1, `*.acc-?` the aggregates of any type
 * with ids acc-0 to acc-z, `*` everything.
 */
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "cli.h"
#include "ids.h"
#include "jsontext.h"

#define DEFAULT_STREAM "CIM-EVENTS"

static const char usage_stats[] =
	"usage: " PROG " stats [--json]\n"
	"Prints the daemon's counters as tables: requests, errors and latency\n"
	"(p50, p99) per operation, errors by code, events and bytes appended,\n"
	"heads in memory, the event stream's state and the writer lease.\n"
	"--json prints the info object as it came.\n";
static const char usage_verify_all[] =
	"usage: " PROG " verify-all [PATTERN] [--stream NAME] [--json] "
	"[--key K]...\n"
	"Has the daemon validate every aggregate whose events are in the\n"
	"stream (default " DEFAULT_STREAM "), or those matching PATTERN:\n"
	"TYPE_GLOB[.ID_GLOB], '*' any run of characters, '?' one (order,\n"
	"order.*, 'order.o-1*', '*.acc-?'). Prints each broken chain and each\n"
	"aggregate that could not be checked, then a summary; a progress bar\n"
	"on stderr when it is a terminal. --json prints the summary as JSON.\n"
	"With --key (a public key text, z6Mk...; repeat it for more keys) the\n"
	"seals are checked too (bad_seal, unsealed), as validate --key does.\n"
	"Exits 1 when a chain is broken, 3 when one could not be checked.\n";
static const char usage_export[] =
	"usage: " PROG " export [PATTERN | TYPE ID] [--stream NAME] [--car FILE]\n"
	"Prints the events of one aggregate (TYPE ID), or of every aggregate\n"
	"matching PATTERN (as for verify-all; none: all of them), as JSON lines,\n"
	"one event each, as get gives it (cid, prev, version, seq, ...), by\n"
	"aggregate (sorted by type, then id) and version.\n"
	"--car FILE writes a CAR file instead ('-': stdout): the heads (asked\n"
	"of the daemon first) as its roots, then each aggregate's event blocks\n"
	"exactly as stored, read from JetStream up to its head, each followed\n"
	"by its seal block when it has a seal. A progress bar goes to stderr\n"
	"on a terminal. cim-events verify-car checks the file offline;\n"
	"cim-events import restores it.\n";

/* ---- stats ---------------------------------------------------------------- */

static json_int_t
jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *
jstr(const json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : def;
}

static double
jnum(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static void
print_uptime(json_int_t s)
{
	if (s >= 86400)
		printf("%lldd %lldh %lldm", (long long)(s / 86400),
		       (long long)(s % 86400 / 3600), (long long)(s % 3600 / 60));
	else if (s >= 3600)
		printf("%lldh %lldm %llds", (long long)(s / 3600),
		       (long long)(s % 3600 / 60), (long long)(s % 60));
	else if (s >= 60)
		printf("%lldm %llds", (long long)(s / 60), (long long)(s % 60));
	else
		printf("%llds", (long long)s);
}

static void
print_stream(const json_t *st)
{
	const json_t *cl;

	if (!json_is_object(st)) {
		printf("stream: not reported\n");
		return;
	}
	printf("stream %s\n", jstr(st, "name", "?"));
	if (json_object_get(st, "error") != NULL) {
		printf("  %s\n", jstr(st, "error", ""));
		return;
	}
	printf("  %-20s %" PRId64 "\n", "messages", (int64_t)jint(st, "messages"));
	printf("  %-20s %" PRId64 "\n", "bytes", (int64_t)jint(st, "bytes"));
	printf("  %-20s %" PRId64 " .. %" PRId64 "\n", "sequences",
	       (int64_t)jint(st, "first_seq"), (int64_t)jint(st, "last_seq"));
	printf("  %-20s %" PRId64 "\n", "deleted", (int64_t)jint(st, "deleted"));
	printf("  %-20s %" PRId64 "\n", "consumers", (int64_t)jint(st, "consumers"));
	printf("  %-20s %" PRId64 "\n", "replicas", (int64_t)jint(st, "replicas"));
	cl = json_object_get(st, "cluster");
	if (json_is_object(cl)) {
		const json_t *peers = json_object_get(cl, "peers"), *p;
		size_t i;

		printf("  %-20s %s (cluster %s)\n", "leader", jstr(cl, "leader", "-"),
		       jstr(cl, "name", "-"));
		json_array_foreach(peers, i, p)
			printf("  %-20s %s: %s%s, lag %" PRId64 "\n",
			       i == 0 ? "replicas" : "", jstr(p, "name", "?"),
			       json_is_true(json_object_get(p, "current")) ? "current"
									 : "behind",
			       json_is_true(json_object_get(p, "offline")) ? ", offline" : "",
			       (int64_t)jint(p, "lag"));
	} else {
		printf("  %-20s %s\n", "cluster", "none (a single server)");
	}
}

static void
print_stats(const json_t *info)
{
	const json_t *c = json_object_get(info, "counters");
	const json_t *w = json_object_get(info, "writer");
	const json_t *ops = json_object_get(c, "operations");
	const json_t *codes = json_object_get(c, "errors"), *v;
	const char *k;

	printf("%s %s, ", jstr(info, "name", "?"), jstr(info, "version", "?"));
	printf("%s", jstr(w, "role", "?"));
	printf(", up ");
	print_uptime(jint(c, "uptime_s"));
	printf("\n");
	printf("writer lease %s held by %s (%s), taken %" PRId64 " time(s)\n",
	       jstr(w, "lease", "?"), jstr(w, "holder", "?"),
	       json_is_true(json_object_get(w, "lease_valid")) ? "valid" : "NOT valid",
	       (int64_t)jint(w, "takeovers"));
	printf("service id %s\n\n", jstr(w, "service_id", "-"));

	printf("%-16s %10s %8s %10s %10s\n", "operation", "requests", "errors", "p50 ms",
	       "p99 ms");
	json_object_foreach((json_t *)ops, k, v) {
		if (json_object_get(v, "p50_us") != NULL && jint(v, "timed") > 0)
			printf("%-16s %10" PRId64 " %8" PRId64 " %10.3f %10.3f\n", k,
			       (int64_t)jint(v, "requests"), (int64_t)jint(v, "errors"),
			       jnum(v, "p50_us") / 1000.0, jnum(v, "p99_us") / 1000.0);
		else
			printf("%-16s %10" PRId64 " %8" PRId64 " %10s %10s\n", k,
			       (int64_t)jint(v, "requests"), (int64_t)jint(v, "errors"), "-",
			       "-");
	}
	printf("\n%-24s %8s\n", "error code", "count");
	if (json_object_size(codes) == 0)
		printf("%-24s %8s\n", "(none)", "");
	json_object_foreach((json_t *)codes, k, v)
		printf("%-24s %8" PRId64 "\n", k, (int64_t)json_integer_value(v));
	printf("\n");
	printf("%-22s %" PRId64 "\n", "events appended", (int64_t)jint(c, "events_appended"));
	printf("%-22s %" PRId64 "\n", "bytes appended", (int64_t)jint(c, "bytes_appended"));
	printf("%-22s %" PRId64 "\n", "heads in memory", (int64_t)jint(c, "heads"));
	printf("%-22s %" PRId64 "\n", "appends in flight",
	       (int64_t)jint(c, "appends_in_flight"));
	printf("%-22s %" PRId64 "\n", "stream seq seen", (int64_t)jint(c, "stream_seq"));
	printf("%-22s %" PRId64 " (seq %" PRId64 ")\n", "heads checkpoints",
	       (int64_t)jint(json_object_get(c, "heads_checkpoint"), "written"),
	       (int64_t)jint(json_object_get(c, "heads_checkpoint"), "seq"));
	printf("\n");
	print_stream(json_object_get(c, "stream"));
}

int
cli_stats(struct ctx *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	json_t *reply = NULL;
	bool as_json = false;
	int ch, status;

	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			as_json = true;
			break;
		case 'h':
			fputs(usage_stats, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if ((status = cli_request(cx, "info", NULL, NULL, NULL, &reply)) != 0)
		return status;
	if (as_json) {
		status = cli_print_json(reply);
	} else if (!json_is_object(json_object_get(reply, "counters"))) {
		fprintf(stderr, PROG ": bad_reply: info has no \"counters\" object\n");
		status = EXIT_DAEMON;
	} else {
		print_stats(reply);
		if (fflush(stdout) != 0) {
			fprintf(stderr, PROG ": cannot write to stdout\n");
			status = EXIT_DAEMON;
		}
	}
	json_decref(reply);
	return status;
}

/* ---- finding aggregates ------------------------------------------------------ */

static void
agg_ref_free(struct agg_ref *r)
{
	free(r->type);
	free(r->id);
	for (size_t k = 0; k < r->ntypes; k++)
		free(r->event_types[k]);
	free(r->event_types);
	free(r->counts);
}

void
agg_list_free(struct agg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		agg_ref_free(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* One subject's aggregate (and its event type) at the end of l. */
static int
agg_list_add(struct agg_list *l, const char *type, const char *id,
	     const char *event_type, uint64_t count)
{
	struct agg_ref *r;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct agg_ref *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	r = &l->v[l->n];
	memset(r, 0, sizeof(*r));
	r->type = strdup(type);
	r->id = strdup(id);
	r->event_types = malloc(sizeof(*r->event_types));
	r->counts = malloc(sizeof(*r->counts));
	if (r->type == NULL || r->id == NULL || r->event_types == NULL ||
	    r->counts == NULL || (r->event_types[0] = strdup(event_type)) == NULL) {
		agg_ref_free(r);
		return -1;
	}
	r->counts[0] = count;
	r->ntypes = 1;
	l->n++;
	return 0;
}

/* Moves b's event types to a (the same aggregate) and frees b. */
static int
agg_ref_merge(struct agg_ref *a, struct agg_ref *b)
{
	char **t = realloc(a->event_types, (a->ntypes + b->ntypes) * sizeof(*t));
	uint64_t *c;

	if (t == NULL)
		return -1;
	a->event_types = t;
	if ((c = realloc(a->counts, (a->ntypes + b->ntypes) * sizeof(*c))) == NULL)
		return -1;
	a->counts = c;
	for (size_t k = 0; k < b->ntypes; k++) {
		a->counts[a->ntypes] = b->counts[k];
		a->event_types[a->ntypes++] = b->event_types[k];
	}
	b->ntypes = 0;
	agg_ref_free(b);
	return 0;
}

static int
agg_cmp(const void *a, const void *b)
{
	const struct agg_ref *x = a, *y = b;
	int c = strcmp(x->type, y->type);

	return c != 0 ? c : strcmp(x->id, y->id);
}

static bool
is_glob(const char *s)
{
	return strpbrk(s, "*?") != NULL;
}

/* A glob token: the characters of a type or an id, '*' and '?'. */
static bool
glob_ok(const char *s, bool is_type)
{
	char probe[200];
	size_t n = strlen(s);

	if (n == 0 || n >= sizeof(probe))
		return false;
	/* every wildcard replaced by a letter must leave a valid token */
	for (size_t i = 0; i <= n; i++)
		probe[i] = (s[i] == '*' || s[i] == '?') ? 'a' : s[i];
	return is_type ? cim_token_type_ok(probe) : cim_token_id_ok(probe);
}

int
pattern_parse(const char *text, struct pattern *p)
{
	const char *dot = strchr(text, '.');
	size_t tlen = dot ? (size_t)(dot - text) : strlen(text);

	if (tlen == 0 || tlen >= sizeof(p->type) ||
	    (dot && strlen(dot + 1) >= sizeof(p->id)))
		goto bad;
	memcpy(p->type, text, tlen);
	p->type[tlen] = '\0';
	snprintf(p->id, sizeof(p->id), "%s", dot ? dot + 1 : "*");
	if (!glob_ok(p->type, true) || !glob_ok(p->id, false))
		goto bad;
	return 0;
bad:
	return cli_usage_error("PATTERN must be TYPE_GLOB[.ID_GLOB], each a type "
			       "or id in which * matches any characters and ? one "
			       "(order, order.*, 'order.o-1*'), not '%s'",
			       text);
}

/* The stream's subject root: its first subject "<root>.>". */
static int
stream_root(const jsStreamInfo *si, char *root, size_t n)
{
	for (int i = 0; si->Config != NULL && i < si->Config->SubjectsLen; i++) {
		const char *s = si->Config->Subjects[i];
		size_t len = strlen(s);

		if (len > 2 && strcmp(s + len - 2, ".>") == 0 && len - 2 < n) {
			memcpy(root, s, len - 2);
			root[len - 2] = '\0';
			return 0;
		}
	}
	return -1;
}

static int
js_fail(const char *what, const char *stream, natsStatus s, jsErrCode jerr)
{
	if (jerr == JSStreamNotFoundErr) {
		fprintf(stderr, PROG ": not_found: there is no stream %s (--stream NAME)\n",
			stream);
		return EXIT_DAEMON;
	}
	fprintf(stderr, PROG ": unavailable: %s %s: %s%s\n", what, stream,
		natsStatus_GetText(s), s == NATS_TIMEOUT ? " (no JetStream in time)" : "");
	return s == NATS_TIMEOUT || s == NATS_NO_SERVER ? EXIT_UNREACHABLE : EXIT_DAEMON;
}

/* The options of JetStream calls: the tool's timeout, and the daemon's
 * domain or API prefix (cli_conn.c). */
static void
js_options(const struct ctx *cx, jsOptions *jo)
{
	jsOptions_Init(jo);
	jo->Wait = cx->timeout_ms > 0 ? cx->timeout_ms : 5000;
	natsopts_js(jo, &cx->set.nats);
}

int
cli_js(struct ctx *cx, const char *stream, jsCtx **js)
{
	jsOptions jo;
	natsStatus s;
	int status;

	*js = NULL;
	/* the tool's one connection (cli_conn.c), with its log-in and TLS */
	if ((status = cli_connect(cx)) != 0)
		return status;
	js_options(cx, &jo);
	if ((s = natsConnection_JetStream(js, cx->nc, &jo)) != NATS_OK)
		return js_fail("cannot use JetStream for", stream, s, 0);
	return 0;
}

int
find_aggregates(struct ctx *cx, const char *stream, const struct pattern *p,
		struct agg_list *out)
{
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	jsOptions jo;
	jsErrCode jerr = 0;
	natsStatus s;
	char root[128], filter[512];
	int status;

	if ((status = cli_js(cx, stream, &js)) != 0)
		return status;
	js_options(cx, &jo);
	s = js_GetStreamInfo(&si, js, stream, &jo, &jerr);
	if (s != NATS_OK) {
		status = js_fail("cannot read the stream", stream, s, jerr);
		goto out;
	}
	if (stream_root(si, root, sizeof(root)) != 0) {
		fprintf(stderr, PROG ": bad_stream: stream %s has no subject of the form "
				     "<root>.>\n", stream);
		status = EXIT_DAEMON;
		goto out;
	}
	jsStreamInfo_Destroy(si);
	si = NULL;
	snprintf(out->root, sizeof(out->root), "%s", root);
	snprintf(filter, sizeof(filter), "%s.%s.%s.*", root, is_glob(p->type) ? "*" : p->type,
		 is_glob(p->id) ? "*" : p->id);
	jo.Stream.Info.SubjectsFilter = filter;
	s = js_GetStreamInfo(&si, js, stream, &jo, &jerr);
	if (s != NATS_OK) {
		status = js_fail("cannot list the subjects of the stream", stream, s, jerr);
		goto out;
	}
	for (int i = 0; si->State.Subjects != NULL && i < si->State.Subjects->Count; i++) {
		char buf[512], *save = NULL, *tok[5];
		int n = 0;

		snprintf(buf, sizeof(buf), "%s", si->State.Subjects->List[i].Subject);
		if (strncmp(buf, root, strlen(root)) != 0 || buf[strlen(root)] != '.')
			continue;
		for (char *t = strtok_r(buf + strlen(root) + 1, ".", &save); t && n < 4;
		     t = strtok_r(NULL, ".", &save))
			tok[n++] = t;
		if (n != 3 || fnmatch(p->type, tok[0], 0) != 0 || fnmatch(p->id, tok[1], 0) != 0)
			continue;
		if (agg_list_add(out, tok[0], tok[1], tok[2],
				 si->State.Subjects->List[i].Msgs) != 0) {
			status = cli_fail_nomem();
			goto out;
		}
	}
	/* one aggregate has a subject per event type: keep one of each */
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), agg_cmp);
	size_t w = 0;
	for (size_t r = 0; r < out->n; r++) {
		if (w > 0 && agg_cmp(&out->v[w - 1], &out->v[r]) == 0) {
			if (agg_ref_merge(&out->v[w - 1], &out->v[r]) != 0) {
				for (size_t k = r; k < out->n; k++)
					agg_ref_free(&out->v[k]);
				out->n = w;
				status = cli_fail_nomem();
				goto out;
			}
			continue;
		}
		out->v[w++] = out->v[r];
	}
	out->n = w;
out:
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	if (status != 0)
		agg_list_free(out);
	return status;
}

/* The options verify-all and export share (--json and --key: verify-all;
 * --car: export). */
struct ops_args {
	const char *stream;
	bool json;
	const char *car;
	struct cli_keys keys;
	struct positionals pos;
};

static int
ops_args_parse(int argc, char **argv, const char *help, bool json_flag,
	       struct ops_args *a)
{
	static const struct option longopts[] = {
		{"stream", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"key", required_argument, NULL, 'k'},
		{"car", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	a->stream = DEFAULT_STREAM;
	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&a->pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 's':
			if (*optarg == '\0')
				return cli_usage_error("--stream needs a stream name");
			a->stream = optarg;
			break;
		case 'j':
			if (!json_flag)
				return cli_usage_error("unknown option '--json'");
			a->json = true;
			break;
		case 'k':
			if (!json_flag)
				return cli_usage_error("unknown option '--key'");
			if (cli_add_key(&a->keys, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'c':
			if (json_flag)
				return cli_usage_error("unknown option '--car'");
			if (*optarg == '\0')
				return cli_usage_error("--car needs a FILE ('-': stdout)");
			a->car = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	return cli_rest_positionals(&a->pos, argc, argv);
}

/* ---- verify-all ------------------------------------------------------------- */

static void
progress(size_t done, size_t total, const struct agg_ref *a)
{
	enum { WIDTH = 30 };
	size_t fill = total ? done * WIDTH / total : WIDTH;
	char bar[WIDTH + 1];

	for (size_t i = 0; i < WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %zu/%zu %-40.40s", bar, done, total,
		a ? a->id : "");
	if (done == total)
		fprintf(stderr, "\r%*s\r", WIDTH + 60, "");
	fflush(stderr);
}

int
cli_verify_all(struct ctx *cx, int argc, char **argv)
{
	static struct ops_args a;
	struct pattern p;
	struct agg_list aggs = {0};
	size_t valid = 0, broken = 0, errors = 0;
	bool bar = isatty(STDERR_FILENO);
	json_t *failures = NULL;
	int status;

	if ((status = ops_args_parse(argc, argv, usage_verify_all, true, &a)) != 0)
		return status < 0 ? 0 : status;
	if (a.pos.n > 1)
		return cli_usage_error("unexpected argument '%s'", a.pos.v[1]);
	if (pattern_parse(a.pos.n ? a.pos.v[0] : "*", &p) != 0)
		return EXIT_USAGE;
	if ((status = cli_connect(cx)) != 0)
		return status;
	if ((status = find_aggregates(cx, a.stream, &p, &aggs)) != 0)
		return status;
	if (a.json && (failures = json_array()) == NULL) {
		agg_list_free(&aggs);
		return cli_fail_nomem();
	}
	for (size_t i = 0; i < aggs.n; i++) {
		const struct agg_ref *r = &aggs.v[i];
		cim_validation v;
		cim_error err = {0};
		cim_err rc;

		if (bar)
			progress(i, aggs.n, r);
		rc = cim_validate_keys(cx->client, r->type, r->id, a.keys.text, a.keys.n,
				       &v, &err);
		if (rc != CIM_ERR_OK) {
			errors++;
			if (a.json)
				json_array_append_new(failures, json_pack(
					"{ss ss s{ss ss}}", "aggregate_type", r->type,
					"aggregate_id", r->id, "error", "code",
					cim_err_name(rc), "message", err.message));
			else
				printf("error %s %s: %s: %s\n", r->type, r->id,
				       cim_err_name(rc), err.message);
			if (rc == CIM_ERR_TIMEOUT || rc == CIM_ERR_NO_DAEMON ||
			    rc == CIM_ERR_CONNECTION) {
				/* the rest would wait out the same timeout */
				fprintf(stderr, "%s" PROG ": %s: stopped after %zu of %zu "
						"aggregates\n", bar ? "\n" : "",
					cim_err_name(rc), i + 1, aggs.n);
				break;
			}
		} else if (v.valid) {
			valid++;
		} else {
			broken++;
			if (a.json)
				json_array_append_new(failures, json_pack(
					"{ss ss s{sI ss ss}}", "aggregate_type", r->type,
					"aggregate_id", r->id, "failure", "version",
					(json_int_t)v.failure_version, "reason",
					v.failure_reason, "detail", v.failure_detail));
			else
				printf("broken %s %s: version %" PRIu64 ": %s: %s\n",
				       r->type, r->id, v.failure_version,
				       v.failure_reason, v.failure_detail);
		}
	}
	if (bar)
		progress(aggs.n, aggs.n, NULL);
	if (a.json) {
		json_t *sum = json_pack("{sI sI sI sI so}", "aggregates", (json_int_t)aggs.n,
					"valid", (json_int_t)valid, "broken",
					(json_int_t)broken, "errors", (json_int_t)errors,
					"failures", failures);
		status = sum ? cli_print_json(sum) : cli_fail_nomem();
		json_decref(sum);
	} else {
		printf("checked %zu aggregate(s): %zu valid, %zu broken, %zu error(s)\n",
		       valid + broken, valid, broken, errors);
		status = fflush(stdout) == 0 ? 0 : EXIT_DAEMON;
	}
	agg_list_free(&aggs);
	if (status != 0)
		return status;
	return broken > 0 ? EXIT_BROKEN : errors > 0 ? EXIT_DAEMON : 0;
}

/* ---- export ---------------------------------------------------------------- */

/* Prints the events of one aggregate, page by page through get. */
static int
export_one(struct ctx *cx, const char *type, const char *id)
{
	uint64_t from = 1;

	for (;;) {
		json_t *req = json_pack("{sI}", "from_version", (json_int_t)from), *reply = NULL;
		const json_t *events, *next, *ev;
		size_t i;
		int status;

		if (req == NULL)
			return cli_fail_nomem();
		status = cli_request(cx, "get", type, id, req, &reply);
		json_decref(req);
		if (status != 0)
			return status;
		events = json_object_get(reply, "events");
		next = json_object_get(reply, "next_from_version");
		if (!json_is_array(events)) {
			json_decref(reply);
			fprintf(stderr, PROG ": bad_reply: get's \"events\" is not an array\n");
			return EXIT_DAEMON;
		}
		json_array_foreach(events, i, ev) {
			char *line = cim_json_text(ev);

			if (line == NULL) {
				json_decref(reply);
				return cli_fail_nomem();
			}
			if (puts(line) == EOF) {
				free(line);
				json_decref(reply);
				fprintf(stderr, PROG ": cannot write to stdout\n");
				return EXIT_DAEMON;
			}
			free(line);
		}
		if (next == NULL || json_is_null(next)) {
			json_decref(reply);
			return 0;
		}
		if (!json_is_integer(next) || json_integer_value(next) <= (json_int_t)from) {
			json_decref(reply);
			fprintf(stderr, PROG ": bad_reply: get's \"next_from_version\" does "
					     "not move on\n");
			return EXIT_DAEMON;
		}
		from = (uint64_t)json_integer_value(next);
		json_decref(reply);
	}
}

/* export --car: the aggregates, found as for JSON lines (TYPE ID: the one
 * aggregate's subjects), written by cli_backup.c. */
static int
export_car(struct ctx *cx, const struct ops_args *a)
{
	struct agg_list aggs = {0};
	struct pattern p;
	int status;

	if (a->pos.n == 2) {
		if (!cim_token_type_ok(a->pos.v[0]) || !cim_token_id_ok(a->pos.v[1]))
			return cli_usage_error("TYPE ID must be an aggregate type and id, "
					       "not '%s' '%s'", a->pos.v[0], a->pos.v[1]);
		snprintf(p.type, sizeof(p.type), "%s", a->pos.v[0]);
		snprintf(p.id, sizeof(p.id), "%s", a->pos.v[1]);
	} else if (pattern_parse(a->pos.n ? a->pos.v[0] : "*", &p) != 0) {
		return EXIT_USAGE;
	}
	if ((status = cli_connect(cx)) != 0 ||
	    (status = find_aggregates(cx, a->stream, &p, &aggs)) != 0)
		return status;
	status = cli_export_car(cx, a->car, a->stream, &aggs);
	agg_list_free(&aggs);
	return status;
}

int
cli_export(struct ctx *cx, int argc, char **argv)
{
	static struct ops_args a;
	struct pattern p;
	struct agg_list aggs = {0};
	int status;

	if ((status = ops_args_parse(argc, argv, usage_export, false, &a)) != 0)
		return status < 0 ? 0 : status;
	if (a.pos.n > 2)
		return cli_usage_error("unexpected argument '%s'", a.pos.v[2]);
	if (a.car != NULL)
		return export_car(cx, &a);
	if (a.pos.n == 2) {
		if (!cim_token_type_ok(a.pos.v[0]))
			return cli_usage_error("TYPE must match "
					       "[A-Za-z][A-Za-z0-9_-]{0,63}, not '%s'",
					       a.pos.v[0]);
		if (!cim_token_id_ok(a.pos.v[1]))
			return cli_usage_error("ID must match [A-Za-z0-9_:@+=-]{1,128}, "
					       "not '%s'", a.pos.v[1]);
		status = export_one(cx, a.pos.v[0], a.pos.v[1]);
	} else {
		if (pattern_parse(a.pos.n ? a.pos.v[0] : "*", &p) != 0)
			return EXIT_USAGE;
		if ((status = cli_connect(cx)) != 0)
			return status;
		if ((status = find_aggregates(cx, a.stream, &p, &aggs)) != 0)
			return status;
		for (size_t i = 0; status == 0 && i < aggs.n; i++)
			status = export_one(cx, aggs.v[i].type, aggs.v[i].id);
		agg_list_free(&aggs);
	}
	if (status == 0 && fflush(stdout) != 0) {
		fprintf(stderr, PROG ": cannot write to stdout\n");
		status = EXIT_DAEMON;
	}
	return status;
}
