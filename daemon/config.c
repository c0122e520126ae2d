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
#include <strings.h>
#include <unistd.h>

#include "cid.h"
#include "cim/events.h"
#include "config.h"
#include "crypt.h"
#include "ids.h"
#include "keys.h"
#include "log.h"
#include "nkey.h"

/* STR: a value that may not be empty; OPT: may be empty (the default
 * ""); SECRET: an OPT never shown; PATH: an OPT naming a file that must be
 * readable; BOOL: true/false, yes/no, on/off, 1/0; INT: a range. */
enum kind { STR, OPT, SECRET, PATH, BOOL, INT };

struct setting {
	const char *section;
	const char *key;
	enum kind kind;
	size_t off;
	const char *def;
	int64_t min, max;
};

#define S(sec, key, field, def) {sec, key, STR, offsetof(struct config, field), def, 0, 0}
#define O(sec, key, kind, field) {sec, key, kind, offsetof(struct config, field), "", 0, 0}
#define B(sec, key, field, def) {sec, key, BOOL, offsetof(struct config, field), def, 0, 1}
#define I(sec, key, field, def, lo, hi) {sec, key, INT, offsetof(struct config, field), def, lo, hi}

static const struct setting settings[] = {
	S("nats", "nats_url", nats_url, "nats://127.0.0.1:4222"),
	O("nats", "nats_user", OPT, nats_user),
	O("nats", "nats_password", SECRET, nats_password),
	O("nats", "nats_token", SECRET, nats_token),
	O("nats", "nats_nkey_seed", PATH, nats_nkey_seed),
	O("nats", "nats_creds", PATH, nats_creds),
	O("nats", "tls_ca", PATH, tls_ca),
	O("nats", "tls_cert", PATH, tls_cert),
	O("nats", "tls_key", PATH, tls_key),
	B("nats", "tls_required", tls_required, "false"),
	I("nats", "connect_timeout", connect_timeout_s, "0", 0, 86400),
	O("jetstream", "js_domain", OPT, js_domain),
	O("jetstream", "js_api_prefix", OPT, js_api_prefix),
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
	S("store", "keys_bucket", keys_bucket, "CIM-KEYS"),
	I("store", "lease_ttl", lease_ttl_s, "5", 2, 300),
	I("store", "heads_checkpoint_interval", heads_checkpoint_interval_s, "60", 1, 86400),
	I("store", "heads_checkpoint_events", heads_checkpoint_events, "100000", 1, 1000000000),
	S("store", "hash", hash, "blake2b-256"),
	I("store", "replicas", replicas, "1", 1, 5),
	I("store", "publish_timeout_ms", publish_timeout_ms, "5000", 100, 600000),
	I("store", "append_pipeline", append_pipeline, "32", 1, 1024),
	I("store", "retention_days", retention_days, "0", 0, 36500),
	I("store", "max_events_per_aggregate", max_events_per_aggregate, "0", 0, INT64_MAX / 2),
	I("store", "snapshot_threshold", snapshot_threshold, "0", 0, 1000000000),
	I("daemon", "workers", workers, "4", 1, 64),
	S("daemon", "log_level", log_level, "info"),
	I("daemon", "shutdown_timeout", shutdown_timeout_s, "20", 1, 3600),
	I("daemon", "nats_down_grace", nats_down_grace_s, "300", 0, 86400),
	S("daemon", "log_format", log_format, "text"),
	O("keys", "signing_key", PATH, signing_key),
	O("keys", "trusted_keys", OPT, trusted_keys),
	O("keys", "master_key", PATH, master_key),
	O("keys", "encrypt_types", OPT, encrypt_types),
	I("keys", "key_cache", key_cache, "16384", 128, 16777216),
};
#define NSETTINGS (sizeof settings / sizeof settings[0])
_Static_assert(NSETTINGS <= CONFIG_MAX_SETTINGS, "CONFIG_MAX_SETTINGS is too small");

/* The names of the seed's configuration ([nats] url, user, password;
 * [jetstream] domain, prefix; [event_store] stream_name), and
 * [event_store] as another name of [store]. */
static const struct alias {
	const char *section, *name, *key;
} aliases[] = {
	{"nats", "url", "nats_url"},
	{"nats", "user", "nats_user"},
	{"nats", "password", "nats_password"},
	{"nats", "token", "nats_token"},
	{"nats", "nkey_seed", "nats_nkey_seed"},
	{"nats", "creds", "nats_creds"},
	{"jetstream", "domain", "js_domain"},
	{"jetstream", "prefix", "js_api_prefix"},
	{"event_store", "stream_name", "stream"},
};

static size_t index_of(const struct setting *s) { return (size_t)(s - settings); }

static void set_origin(struct config *c, const struct setting *s, const char *where)
{
	char **o = &c->origin[index_of(s)];
	free(*o);
	if ((*o = strdup(where)) == NULL)
		fatalx("out of memory");
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, 0;
	}
	return -1;
}

static int set_value(struct config *c, const struct setting *s,
		     const char *val, const char *where)
{
	char *end;
	void *field = (char *)c + s->off;

	if (s->kind == BOOL) {
		if (parse_bool(val, field) != 0) {
			fprintf(stderr, "cim-eventsd: %s: %s must be true or false, not '%s'\n",
				where, s->key, val);
			return -1;
		}
		set_origin(c, s, where);
		return 0;
	}
	if (s->kind != INT) {
		char **dst = field;
		if (*val == '\0' && s->kind == STR) {
			fprintf(stderr, "cim-eventsd: %s: %s must not be empty\n",
				where, s->key);
			return -1;
		}
		free(*dst);
		*dst = strdup(val);
		if (*dst == NULL)
			fatalx("out of memory");
		set_origin(c, s, where);
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
	set_origin(c, s, where);
	return 0;
}

static const struct setting *find(const char *section, const char *key)
{
	if (section != NULL) {
		for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
			if (strcmp(aliases[i].section, section) == 0 &&
			    strcmp(aliases[i].name, key) == 0)
				return find(NULL, aliases[i].key);
		if (strcmp(section, "event_store") == 0)
			section = "store";
	}
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
	/* one pair of double quotes around a value goes (the seed's TOML) */
	char unq[1024];
	size_t vlen = strlen(value);
	if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"' && vlen < sizeof unq) {
		snprintf(unq, sizeof unq, "%.*s", (int)(vlen - 2), value + 1);
		value = unq;
	}
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
		"usage: cim-eventsd [--config FILE] [--check-config] [--nats-url URL]\n"
		"                   [--KEY VALUE]... [--help] [--version]\n"
		"\n"
		"The cim-events daemon: an event store on NATS JetStream.\n"
		"Settings come from defaults, the INI file, $CIM_EVENTS_<KEY> and flags,\n"
		"later ones winning; every setting KEY has a flag --KEY (with - for _),\n"
		"e.g. --log-level debug, --tls-ca FILE, --tls-required.\n"
		"--check-config prints the settings in force (secrets masked) and\n"
		"exits: 0 when they are valid, 2 when not.\n"
		"See cim-eventsd(8), cim-eventsd.conf(5) and docs/operations.md.\n");
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

static int read_file(struct config *c, const char *path)
{
	struct ini_ctx ctx = {c, path, fopen(path, "r"), 0, 0};

	if (ctx.f == NULL) {
		fprintf(stderr, "cim-eventsd: %s: cannot read: %s\n", path, strerror(errno));
		return -1;
	}
	int rc = ini_parse_stream(read_line, &ctx, on_ini, &ctx);
	fclose(ctx.f);
	if (rc > 0) {
		fprintf(stderr, "cim-eventsd: %s:%d: syntax error\n", path, rc);
		return -1;
	}
	return ctx.failed ? -1 : 0;
}

static int read_environment(struct config *c)
{
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
	return 0;
}

enum { OPT_CONFIG = 1, OPT_HELP, OPT_VERSION, OPT_CHECK, OPT_SETTING = 256 };

/* One flag per setting, --nats-url for nats_url, plus the four others. */
static int read_flags(struct config *c, int argc, char **argv)
{
	static char names[NSETTINGS][64];
	static struct option opts[NSETTINGS + 5];
	size_t n = 0;
	int ch;

	for (size_t i = 0; i < NSETTINGS; i++) {
		snprintf(names[i], sizeof names[i], "%s", settings[i].key);
		for (char *p = names[i]; *p; p++)
			if (*p == '_')
				*p = '-';
		opts[n++] = (struct option){names[i],
			settings[i].kind == BOOL ? optional_argument : required_argument,
			NULL, OPT_SETTING + (int)i};
	}
	opts[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	opts[n++] = (struct option){"check-config", no_argument, NULL, OPT_CHECK};
	opts[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	opts[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
	opts[n] = (struct option){NULL, 0, NULL, 0};

	optind = 0; /* a full start again: config_load runs again on SIGHUP */
	opterr = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_CONFIG: break; /* read before */
		case OPT_CHECK: c->check_config = true; break;
		case OPT_HELP: usage(stdout); return 1;
		case OPT_VERSION: printf("cim-eventsd %s\n", CIM_EVENTS_VERSION); return 1;
		default:
			if (ch >= OPT_SETTING && ch < OPT_SETTING + (int)NSETTINGS) {
				const struct setting *s = &settings[ch - OPT_SETTING];
				const char *v = optarg ? optarg : "true";
				if (set_value(c, s, v, "command line") != 0)
					return -1;
				break;
			}
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cim-eventsd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

static const char *origin_of(const struct config *c, const char *key)
{
	const struct setting *s = find(NULL, key);
	const char *o = s ? c->origin[index_of(s)] : NULL;
	return o ? o : "default";
}

/* Calls fn on each item of a comma-separated list (spaces around items
 * allowed); stops at the first non-zero return and returns it. */
static int each_item(const char *list, int (*fn)(const char *s, size_t n, void *ctx),
		     void *ctx)
{
	for (const char *p = list; *p != '\0';) {
		size_t len = strcspn(p, ",");
		const char *s = p, *e = p + len;
		while (s < e && *s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			e--;
		int rc = fn(s, (size_t)(e - s), ctx);
		if (rc != 0)
			return rc;
		p += len;
		if (*p == ',' && *++p == '\0')
			return fn(p, 0, ctx); /* "a," ends with an empty item */
	}
	return 0;
}

struct listed {
	const char *type;
	bool found;
};

static int match_item(const char *s, size_t n, void *ctx)
{
	struct listed *l = ctx;
	if ((n == 1 && *s == '*') || (strlen(l->type) == n && memcmp(s, l->type, n) == 0)) {
		l->found = true;
		return 1;
	}
	return 0;
}

bool config_type_listed(const char *list, const char *aggregate_type)
{
	struct listed l = {aggregate_type, false};
	each_item(list, match_item, &l);
	return l.found;
}

static int check_item(const char *s, size_t n, void *ctx)
{
	const struct config *c = ctx;
	char type[CIM_TYPE_MAX + 1];

	if (n == 1 && *s == '*')
		return strchr(c->encrypt_types, ',') != NULL ? -1 : 0;
	if (n == 0 || n > CIM_TYPE_MAX)
		return -1;
	memcpy(type, s, n);
	type[n] = '\0';
	return cim_token_type_ok(type) ? 0 : -1;
}

/* master_key (read, then wiped: main.c reads it for good) and
 * encrypt_types. */
static int check_encryption(const struct config *c)
{
	char why[400];
	int bad = 0;

	if (c->encrypt_types[0] != '\0' && each_item(c->encrypt_types, check_item, (void *)c) != 0) {
		fprintf(stderr, "cim-eventsd: %s: encrypt_types must be '*' or aggregate types "
			"([A-Za-z][A-Za-z0-9_-]{0,63}) separated by commas, not '%s'\n",
			origin_of(c, "encrypt_types"), c->encrypt_types);
		bad = 1;
	}
	if (c->encrypt_types[0] != '\0' && c->master_key[0] == '\0') {
		fprintf(stderr, "cim-eventsd: %s: encrypt_types needs master_key: the data keys "
			"of encrypted aggregates are kept wrapped by it (make one with "
			"'cim-events keygen --master FILE', see cim-eventsd.conf(5))\n",
			origin_of(c, "encrypt_types"));
		bad = 1;
	}
	if (c->master_key[0] != '\0' && access(c->master_key, R_OK) == 0) {
		cim_key *k = cim_key_alloc(1);
		if (k == NULL) {
			fprintf(stderr, "cim-eventsd: out of memory\n");
			return -1;
		}
		if (cim_keyfile_read(c->master_key, k->b, why, sizeof why) != 0) {
			fprintf(stderr, "cim-eventsd: %s: master_key: %s\n",
				origin_of(c, "master_key"), why);
			bad = 1;
		}
		cim_key_free(k, 1);
	}
	return bad ? -1 : 0;
}

/* What the settings must say together, and the files they name. */
static int check(const struct config *c)
{
	int bad = 0;

	if (cim_hash_from_name(c->hash, &(uint64_t){0}) != 0) {
		fprintf(stderr, "cim-eventsd: %s: hash must be blake2b-256 or sha2-256, not '%s'\n",
			origin_of(c, "hash"), c->hash);
		bad = 1;
	}
	if (log_level_from_name(c->log_level) < 0) {
		fprintf(stderr, "cim-eventsd: %s: log_level must be error, warn, info or debug, "
			"not '%s'\n", origin_of(c, "log_level"), c->log_level);
		bad = 1;
	}
	if (log_format_from_name(c->log_format) < 0) {
		fprintf(stderr, "cim-eventsd: %s: log_format must be text or json, not '%s'\n",
			origin_of(c, "log_format"), c->log_format);
		bad = 1;
	}
	if (c->get_limit > c->get_max_limit) {
		fprintf(stderr, "cim-eventsd: %s: get_limit (%lld) is over get_max_limit (%lld)\n",
			origin_of(c, "get_limit"), (long long)c->get_limit,
			(long long)c->get_max_limit);
		bad = 1;
	}
	if (c->retention_days != 0) {
		fprintf(stderr,
			"cim-eventsd: %s: retention_days = %lld: an event store keeps every event; "
			"JetStream would drop the events older than that, so an aggregate's chain "
			"could no longer be read or validated from version 1, and an aggregate "
			"whose events had all aged out would start again at version 1 under the "
			"same id; only 0 (keep for ever) is accepted: bound the storage at the "
			"server instead (see cim-eventsd.conf(5), 'retention_days')\n",
			origin_of(c, "retention_days"), (long long)c->retention_days);
		bad = 1;
	}
	if ((c->nats_user[0] != '\0') != (c->nats_password[0] != '\0')) {
		fprintf(stderr, "cim-eventsd: %s: nats_user and nats_password go together\n",
			origin_of(c, c->nats_user[0] ? "nats_user" : "nats_password"));
		bad = 1;
	}
	int ways = (c->nats_user[0] != '\0') + (c->nats_token[0] != '\0') +
		   (c->nats_nkey_seed[0] != '\0') + (c->nats_creds[0] != '\0');
	if (ways > 1) {
		fprintf(stderr, "cim-eventsd: choose one way to authenticate: nats_user and "
			"nats_password, nats_token, nats_nkey_seed or nats_creds (%d are set)\n",
			ways);
		bad = 1;
	}
	if ((c->tls_cert[0] != '\0') != (c->tls_key[0] != '\0')) {
		fprintf(stderr, "cim-eventsd: %s: tls_cert and tls_key go together\n",
			origin_of(c, c->tls_cert[0] ? "tls_cert" : "tls_key"));
		bad = 1;
	}
	if (c->js_domain[0] != '\0' && c->js_api_prefix[0] != '\0') {
		fprintf(stderr, "cim-eventsd: %s: set js_domain or js_api_prefix, not both "
			"(a domain is the prefix $JS.<domain>.API)\n", origin_of(c, "js_domain"));
		bad = 1;
	}
	for (size_t i = 0; i < NSETTINGS; i++) {
		const char *path = *(char *const *)((const char *)c + settings[i].off);
		if (settings[i].kind != PATH || path[0] == '\0')
			continue;
		FILE *f = fopen(path, "r");
		if (f == NULL) {
			fprintf(stderr, "cim-eventsd: %s: %s: cannot read %s: %s\n",
				c->origin[i] ? c->origin[i] : "default", settings[i].key, path,
				strerror(errno));
			bad = 1;
		} else {
			fclose(f);
		}
	}
	char pub[NKEY_PUBLIC_LEN + 1], why[400];
	if (c->nats_nkey_seed[0] && access(c->nats_nkey_seed, R_OK) == 0 &&
	    nkey_public_from_seed_file(c->nats_nkey_seed, pub, why, sizeof why) != 0) {
		fprintf(stderr, "cim-eventsd: %s: nats_nkey_seed: %s\n",
			origin_of(c, "nats_nkey_seed"), why);
		bad = 1;
	}
	/* the seed is read here only to be checked (and wiped at once):
	 * main.c loads it for good */
	if (c->signing_key[0] && access(c->signing_key, R_OK) == 0) {
		cim_signing_key *k = cim_signing_key_load(c->signing_key, why, sizeof why);
		if (k == NULL) {
			fprintf(stderr, "cim-eventsd: %s: signing_key: %s\n",
				origin_of(c, "signing_key"), why);
			bad = 1;
		}
		cim_signing_key_free(k);
	}
	uint8_t keys[CONFIG_TRUSTED_MAX][32];
	size_t nkeys;
	if (config_trusted_keys(c->trusted_keys, keys, CONFIG_TRUSTED_MAX, &nkeys, why,
				sizeof why) != 0) {
		fprintf(stderr, "cim-eventsd: %s: trusted_keys: %s\n",
			origin_of(c, "trusted_keys"), why);
		bad = 1;
	}
	if (check_encryption(c) != 0)
		bad = 1;
	return bad ? -1 : 0;
}

struct trusted {
	uint8_t (*keys)[32];
	size_t max, n;
	char *err;
	size_t errsz;
};

static int trusted_item(const char *s, size_t n, void *ctx)
{
	struct trusted *t = ctx;

	if (n == 0) {
		snprintf(t->err, t->errsz, "an empty item in the list (keys are separated "
			 "by single commas)");
		return -1;
	}
	if (t->n == t->max) {
		snprintf(t->err, t->errsz, "more than %zu keys", t->max);
		return -1;
	}
	if (cim_pubkey_from_textn(t->keys[t->n], s, n) != 0) {
		snprintf(t->err, t->errsz, "'%.*s' is not a public key text (z6Mk..., "
			 "48 characters, as cim-events keygen prints)",
			 (int)(n > 60 ? 60 : n), s);
		return -1;
	}
	t->n++;
	return 0;
}

int config_trusted_keys(const char *list, uint8_t (*keys)[32], size_t max, size_t *n,
			char *err, size_t errsz)
{
	struct trusted t = {keys, max, 0, err, errsz};
	int rc = each_item(list, trusted_item, &t);

	*n = t.n;
	return rc != 0 ? -1 : 0;
}

int config_load(struct config *c, int argc, char **argv)
{
	const char *path;
	int rc;

	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < NSETTINGS; i++)
		if (set_value(c, &settings[i], settings[i].def, "default") != 0)
			return -1;

	path = find_config_arg(argc, argv);
	if (path != NULL && read_file(c, path) != 0)
		return -1;
	if (read_environment(c) != 0)
		return -1;
	if ((rc = read_flags(c, argc, argv)) != 0)
		return rc;
	if (check(c) != 0)
		return -1;
	cim_hash_from_name(c->hash, &c->hash_code);
	return 0;
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		if (settings[i].kind != INT && settings[i].kind != BOOL)
			free(*(char **)((char *)c + settings[i].off));
		free(c->origin[i]);
	}
	memset(c, 0, sizeof *c);
}

/* Masks the credentials of each URL of a comma-separated list: user:pass
 * (or a token) before the @ shows as three stars. */
static void mask_url(const char *url, char *out, size_t n)
{
	size_t k = 0;

	out[0] = '\0';
	while (*url && k + 1 < n) {
		size_t len = strcspn(url, ",");
		/* the last @: a password may hold a raw one */
		const char *at = memrchr(url, '@', len), *scheme = strstr(url, "://");
		if (scheme != NULL && scheme >= url + len)
			scheme = NULL;
		if (at == NULL)
			k += snprintf(out + k, n - k, "%.*s", (int)len, url);
		else
			k += snprintf(out + k, n - k, "%.*s***%.*s",
				      scheme && scheme < at ? (int)(scheme - url) + 3 : 0, url,
				      (int)(url + len - at), at);
		if (k >= n)
			break;
		url += len;
		if (*url == ',') {
			k += snprintf(out + k, n - k, ",");
			url++;
		}
	}
}

/* The value of setting i as text, as it may be shown. */
static void shown(const struct config *c, size_t i, char *out, size_t n)
{
	const struct setting *s = &settings[i];
	const void *f = (const char *)c + s->off;

	switch (s->kind) {
	case INT:
		snprintf(out, n, "%lld", (long long)*(const int64_t *)f);
		break;
	case BOOL:
		snprintf(out, n, "%s", *(const bool *)f ? "true" : "false");
		break;
	case SECRET:
		snprintf(out, n, "%s", (*(char *const *)f)[0] ? "***" : "");
		break;
	default:
		if (strcmp(s->key, "nats_url") == 0)
			mask_url(*(char *const *)f, out, n);
		else
			snprintf(out, n, "%s", *(char *const *)f);
	}
}

json_t *config_json(const struct config *c)
{
	json_t *o = json_object();
	char buf[1024];

	for (size_t i = 0; o && i < NSETTINGS; i++) {
		const void *f = (const char *)c + settings[i].off;
		if (settings[i].kind == SECRET)
			continue; /* info shows no secrets, not even masked */
		if (settings[i].kind == INT) {
			json_object_set_new(o, settings[i].key,
					    json_integer(*(const int64_t *)f));
		} else if (settings[i].kind == BOOL) {
			json_object_set_new(o, settings[i].key, json_boolean(*(const bool *)f));
		} else {
			shown(c, i, buf, sizeof buf);
			json_object_set_new(o, settings[i].key, json_string(buf));
		}
	}
	return o;
}

void config_print(const struct config *c, FILE *out)
{
	char buf[1024];

	for (size_t i = 0; i < NSETTINGS; i++) {
		shown(c, i, buf, sizeof buf);
		fprintf(out, "%s=%s\n", settings[i].key, buf);
	}
}

void config_print_origins(const struct config *c, FILE *out)
{
	char buf[1024];
	const char *section = "";

	for (size_t i = 0; i < NSETTINGS; i++) {
		if (strcmp(section, settings[i].section) != 0) {
			section = settings[i].section;
			fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
		}
		shown(c, i, buf, sizeof buf);
		fprintf(out, "%s = %s    # %s\n", settings[i].key, buf,
			c->origin[i] ? c->origin[i] : "default");
	}
}

int config_log_changes(const struct config *a, const struct config *b)
{
	char va[1024], vb[1024];
	int n = 0;

	for (size_t i = 0; i < NSETTINGS; i++) {
		shown(a, i, va, sizeof va);
		shown(b, i, vb, sizeof vb);
		/* a secret changed shows as *** both times: compare the values */
		if (settings[i].kind == SECRET)
			if (strcmp(*(char *const *)((const char *)a + settings[i].off),
				   *(char *const *)((const char *)b + settings[i].off)) != 0)
				snprintf(vb, sizeof vb, "*** (changed)");
		if (strcmp(va, vb) != 0) {
			log_info("configuration: %s: %s -> %s", settings[i].key, va, vb);
			n++;
		}
	}
	return n;
}
