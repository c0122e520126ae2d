/*
 * config.c: defaults, INI file (libinih), environment and flags, from one
 * table of settings.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cid.h"
#include "cim/events.h"
#include "config.h"
#include "log.h"

enum kind { STR, INT };

struct setting {
	const char *section;
	const char *key;
	enum kind kind;
	size_t off;
	const char *def;
	int64_t min, max;
};

#define S(sec, key, field, def) {sec, key, STR, offsetof(struct config, field), def, 0, 0}
#define I(sec, key, field, def, lo, hi) {sec, key, INT, offsetof(struct config, field), def, lo, hi}

static const struct setting settings[] = {
	S("nats", "nats_url", nats_url, "nats://127.0.0.1:4222"),
	I("nats", "connect_timeout", connect_timeout_s, "0", 0, 86400),
	S("api", "prefix", prefix, "cim.events.v1"),
	I("api", "get_limit", get_limit, "1000", 1, 100000),
	I("api", "get_max_limit", get_max_limit, "10000", 1, 100000),
	I("api", "max_events_per_append", max_events_per_append, "1000", 1, 100000),
	I("api", "max_event_bytes", max_event_bytes, "262144", 1024, 64 << 20),
	I("api", "max_snapshot_bytes", max_snapshot_bytes, "262144", 1024, 64 << 20),
	I("api", "idempotency_window", idempotency_window_s, "120", 1, 86400),
	S("store", "stream", stream, "CIM-EVENTS"),
	S("store", "events_subject", events_subject, "events"),
	S("store", "heads_bucket", heads_bucket, "CIM-HEADS"),
	S("store", "snapshots_bucket", snapshots_bucket, "CIM-SNAPSHOTS"),
	S("store", "checkpoints_bucket", checkpoints_bucket, "CIM-CHECKPOINTS"),
	S("store", "lease_bucket", lease_bucket, "CIM-LEASE"),
	I("store", "lease_ttl", lease_ttl_s, "5", 2, 300),
	I("store", "heads_checkpoint_interval", heads_checkpoint_interval_s, "60", 1, 86400),
	I("store", "heads_checkpoint_events", heads_checkpoint_events, "100000", 1, 1000000000),
	S("store", "hash", hash, "blake2b-256"),
	I("store", "replicas", replicas, "1", 1, 5),
	I("store", "publish_timeout_ms", publish_timeout_ms, "5000", 100, 600000),
	I("daemon", "workers", workers, "4", 1, 64),
	S("daemon", "log_level", log_level, "info"),
	S("daemon", "log_format", log_format, "text"),
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static int set_value(struct config *c, const struct setting *s,
		     const char *val, const char *where)
{
	char *end;
	void *field = (char *)c + s->off;

	if (s->kind == STR) {
		char **dst = field;
		if (*val == '\0') {
			fprintf(stderr, "cim-eventsd: %s: %s must not be empty\n",
				where, s->key);
			return -1;
		}
		free(*dst);
		*dst = strdup(val);
		if (*dst == NULL)
			fatalx("out of memory");
		return 0;
	}
	errno = 0;
	long long v = strtoll(val, &end, 10);
	if (errno || end == val || *end != '\0' || v < s->min || v > s->max) {
		fprintf(stderr,
			"cim-eventsd: %s: %s must be an integer from %lld to %lld, not '%s'\n",
			where, s->key, (long long)s->min, (long long)s->max, val);
		return -1;
	}
	*(int64_t *)field = v;
	return 0;
}

static const struct setting *find(const char *section, const char *key)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strcmp(settings[i].key, key) == 0 &&
		    (section == NULL || strcmp(settings[i].section, section) == 0))
			return &settings[i];
	return NULL;
}

struct ini_ctx {
	struct config *c;
	const char *path;
	FILE *f;
	int line; /* the line being parsed, counted by read_line */
	int failed;
};

/* libinih as Debian builds it does not pass line numbers to the handler,
 * so the reader counts them. */
static char *read_line(char *str, int num, void *stream)
{
	struct ini_ctx *ctx = stream;
	char *r = fgets(str, num, ctx->f);
	if (r != NULL)
		ctx->line++;
	return r;
}

static int on_ini(void *user, const char *section, const char *key,
		  const char *value)
{
	struct ini_ctx *ctx = user;
	char where[512];
	const struct setting *s = find(section, key);

	snprintf(where, sizeof where, "%s:%d", ctx->path, ctx->line);
	if (s == NULL) {
		fprintf(stderr, "cim-eventsd: %s: unknown setting [%s] %s\n",
			where, section, key);
		ctx->failed = 1;
		return 1;
	}
	if (set_value(ctx->c, s, value, where) != 0)
		ctx->failed = 1;
	return 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: cim-eventsd [--nats-url URL] [--config FILE] [--prefix P]\n"
		"                   [--stream NAME] [--hash blake2b-256|sha2-256]\n"
		"                   [--log-level error|warn|info|debug] [--help] [--version]\n"
		"\n"
		"The cim-events daemon: an event store on NATS JetStream.\n"
		"Settings come from defaults, the INI file, $CIM_EVENTS_<KEY> and flags,\n"
		"later ones winning. See docs/operations.md.\n");
}

static const char *find_config_arg(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
	}
	return getenv("CIM_EVENTS_CONFIG");
}

int config_load(struct config *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"nats-url", required_argument, NULL, 'u'},
		{"config", required_argument, NULL, 'c'},
		{"prefix", required_argument, NULL, 'p'},
		{"stream", required_argument, NULL, 's'},
		{"hash", required_argument, NULL, 'H'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *path;
	int ch;

	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < NSETTINGS; i++)
		if (set_value(c, &settings[i], settings[i].def, "default") != 0)
			return -1;

	path = find_config_arg(argc, argv);
	if (path != NULL) {
		struct ini_ctx ctx = {c, path, fopen(path, "r"), 0, 0};
		if (ctx.f == NULL) {
			fprintf(stderr, "cim-eventsd: %s: cannot read: %s\n", path,
				strerror(errno));
			return -1;
		}
		int rc = ini_parse_stream(read_line, &ctx, on_ini, &ctx);
		fclose(ctx.f);
		if (rc > 0) {
			fprintf(stderr, "cim-eventsd: %s:%d: syntax error\n", path, rc);
			return -1;
		}
		if (ctx.failed)
			return -1;
	}

	for (size_t i = 0; i < NSETTINGS; i++) {
		char name[96], where[128];
		size_t k = snprintf(name, sizeof name, "CIM_EVENTS_");
		for (const char *p = settings[i].key; *p && k + 1 < sizeof name; p++)
			name[k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		name[k] = '\0';
		const char *v = getenv(name);
		snprintf(where, sizeof where, "$%s", name);
		if (v != NULL && set_value(c, &settings[i], v, where) != 0)
			return -1;
	}

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		const char *key = NULL;
		switch (ch) {
		case 'u': key = "nats_url"; break;
		case 'c': break; /* read above */
		case 'p': key = "prefix"; break;
		case 's': key = "stream"; break;
		case 'H': key = "hash"; break;
		case 'l': key = "log_level"; break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("cim-eventsd %s\n", CIM_EVENTS_VERSION); return 1;
		default: usage(stderr); return -1;
		}
		if (key && set_value(c, find(NULL, key), optarg, "command line") != 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "cim-eventsd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -1;
	}

	if (cim_hash_from_name(c->hash, &c->hash_code) != 0) {
		fprintf(stderr, "cim-eventsd: hash must be blake2b-256 or sha2-256, not '%s'\n",
			c->hash);
		return -1;
	}
	if (log_level_from_name(c->log_level) < 0) {
		fprintf(stderr, "cim-eventsd: log_level must be error, warn, info or debug, not '%s'\n",
			c->log_level);
		return -1;
	}
	if (c->get_limit > c->get_max_limit) {
		fprintf(stderr, "cim-eventsd: get_limit is over get_max_limit\n");
		return -1;
	}
	return 0;
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (settings[i].kind == STR)
			free(*(char **)((char *)c + settings[i].off));
	memset(c, 0, sizeof *c);
}

/* Masks the credentials of a URL: user:pass before the @ of a URL shows as three stars. */
static void mask_url(const char *url, char *out, size_t n)
{
	const char *at = strrchr(url, '@'), *scheme = strstr(url, "://");
	if (at == NULL) {
		snprintf(out, n, "%s", url);
		return;
	}
	int slen = scheme && scheme < at ? (int)(scheme - url) + 3 : 0;
	snprintf(out, n, "%.*s***%s", slen, url, at);
}

static void masked(const struct setting *s, const char *v, char *out, size_t n)
{
	if (strcmp(s->key, "nats_url") == 0)
		mask_url(v, out, n);
	else
		snprintf(out, n, "%s", v);
}

json_t *config_json(const struct config *c)
{
	json_t *o = json_object();
	char buf[1024];

	for (size_t i = 0; o && i < NSETTINGS; i++) {
		const void *f = (const char *)c + settings[i].off;
		if (settings[i].kind == STR) {
			masked(&settings[i], *(char *const *)f, buf, sizeof buf);
			json_object_set_new(o, settings[i].key, json_string(buf));
		} else {
			json_object_set_new(o, settings[i].key,
					    json_integer(*(const int64_t *)f));
		}
	}
	return o;
}

void config_print(const struct config *c, FILE *out)
{
	char buf[1024];

	for (size_t i = 0; i < NSETTINGS; i++) {
		const void *f = (const char *)c + settings[i].off;
		if (settings[i].kind == STR) {
			masked(&settings[i], *(char *const *)f, buf, sizeof buf);
			fprintf(out, "%s=%s\n", settings[i].key, buf);
		}
		else
			fprintf(out, "%s=%lld\n", settings[i].key,
				(long long)*(const int64_t *)f);
	}
}
