/*
 * config.c: the daemon's settings: one table (read by settings.c from
 * defaults, INI file, environment and flags) and what they must say
 * together.
 */
#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cid.h"
#include "cim/events.h"
#include "config.h"
#include "crypt.h"
#include "ids.h"
#include "keys.h"
#include "log.h"
#include "natsopts.h"
#include "settings.h"

#define STR SETTING_STR
#define OPT SETTING_OPT
#define SECRET SETTING_SECRET
#define PATH SETTING_PATH
#define S(sec, key, field, def) {sec, key, STR, offsetof(struct config, field), def, 0, 0}
#define O(sec, key, kind, field) {sec, key, kind, offsetof(struct config, field), "", 0, 0}
#define B(sec, key, field, def) {sec, key, SETTING_BOOL, offsetof(struct config, field), def, 0, 1}
#define I(sec, key, field, def, lo, hi) \
	{sec, key, SETTING_INT, offsetof(struct config, field), def, lo, hi}

static const struct setting settings[] = {
	NATS_SETTINGS(struct config, nats),
	I("nats", "connect_timeout", connect_timeout_s, "0", 0, 86400),
	JETSTREAM_SETTINGS(struct config, nats),
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

/* The names of the seed's configuration (NATS_SETTING_ALIASES;
 * [event_store] stream_name), and [event_store] as another name of
 * [store] (settings.c). */
static const struct setting_alias aliases[] = {
	NATS_SETTING_ALIASES,
	{"event_store", "stream_name", "stream"},
};

/* The table, read into c. */
static struct settings view(const struct config *c)
{
	return (struct settings){"cim-eventsd", settings, NSETTINGS, aliases,
				 sizeof aliases / sizeof aliases[0], false, (void *)c,
				 (char **)c->origin};
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

enum { OPT_CONFIG = 1, OPT_HELP, OPT_VERSION, OPT_CHECK, OPT_SETTING = 256 };

/* One flag per setting, --nats-url for nats_url, plus the four others. */
static int read_flags(struct config *c, int argc, char **argv)
{
	static char names[NSETTINGS][64];
	static struct option opts[NSETTINGS + 5];
	const struct settings v = view(c);
	size_t n = NSETTINGS;
	int ch;

	settings_options(&v, opts, names, OPT_SETTING);
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
				if (settings_set(&v, (size_t)(ch - OPT_SETTING),
						 optarg ? optarg : "true", "command line") != 0)
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
	const struct settings v = view(c);
	char why[400];
	int bad = 0;

	if (c->encrypt_types[0] != '\0' && each_item(c->encrypt_types, check_item, (void *)c) != 0) {
		fprintf(stderr, "cim-eventsd: %s: encrypt_types must be '*' or aggregate types "
			"([A-Za-z][A-Za-z0-9_-]{0,63}) separated by commas, not '%s'\n",
			settings_origin(&v, "encrypt_types"), c->encrypt_types);
		bad = 1;
	}
	if (c->encrypt_types[0] != '\0' && c->master_key[0] == '\0') {
		fprintf(stderr, "cim-eventsd: %s: encrypt_types needs master_key: the data keys "
			"of encrypted aggregates are kept wrapped by it (make one with "
			"'cim-events keygen --master FILE', see cim-eventsd.conf(5))\n",
			settings_origin(&v, "encrypt_types"));
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
				settings_origin(&v, "master_key"), why);
			bad = 1;
		}
		cim_key_free(k, 1);
	}
	return bad ? -1 : 0;
}

/* What the settings must say together, and the files they name. */
static int check(const struct config *c)
{
	const struct settings v = view(c);
	int bad = natsopts_check(&v, &c->nats) != 0;

	if (cim_hash_from_name(c->hash, &(uint64_t){0}) != 0) {
		fprintf(stderr, "cim-eventsd: %s: hash must be blake2b-256 or sha2-256, not '%s'\n",
			settings_origin(&v, "hash"), c->hash);
		bad = 1;
	}
	if (log_level_from_name(c->log_level) < 0) {
		fprintf(stderr, "cim-eventsd: %s: log_level must be error, warn, info or debug, "
			"not '%s'\n", settings_origin(&v, "log_level"), c->log_level);
		bad = 1;
	}
	if (log_format_from_name(c->log_format) < 0) {
		fprintf(stderr, "cim-eventsd: %s: log_format must be text or json, not '%s'\n",
			settings_origin(&v, "log_format"), c->log_format);
		bad = 1;
	}
	if (c->get_limit > c->get_max_limit) {
		fprintf(stderr, "cim-eventsd: %s: get_limit (%lld) is over get_max_limit (%lld)\n",
			settings_origin(&v, "get_limit"), (long long)c->get_limit,
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
			settings_origin(&v, "retention_days"), (long long)c->retention_days);
		bad = 1;
	}
	/* the seed is read here only to be checked (and wiped at once):
	 * main.c loads it for good */
	char why[400];
	if (c->signing_key[0] && access(c->signing_key, R_OK) == 0) {
		cim_signing_key *k = cim_signing_key_load(c->signing_key, why, sizeof why);
		if (k == NULL) {
			fprintf(stderr, "cim-eventsd: %s: signing_key: %s\n",
				settings_origin(&v, "signing_key"), why);
			bad = 1;
		}
		cim_signing_key_free(k);
	}
	uint8_t keys[CONFIG_TRUSTED_MAX][32];
	size_t nkeys;
	if (config_trusted_keys(c->trusted_keys, keys, CONFIG_TRUSTED_MAX, &nkeys, why,
				sizeof why) != 0) {
		fprintf(stderr, "cim-eventsd: %s: trusted_keys: %s\n",
			settings_origin(&v, "trusted_keys"), why);
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
	const struct settings v = view(c);
	if (settings_defaults(&v) != 0)
		return -1;
	path = settings_config_path(argc, argv);
	if (path != NULL && settings_read_file(&v, path) != 0)
		return -1;
	if (settings_read_environment(&v) != 0)
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
	const struct settings v = view(c);

	settings_free(&v);
	memset(c, 0, sizeof *c);
}

json_t *config_json(const struct config *c)
{
	const struct settings v = view(c);
	json_t *o = json_object();
	char buf[1024];

	for (size_t i = 0; o && i < NSETTINGS; i++) {
		const void *f = (const char *)c + settings[i].off;
		if (settings[i].kind == SECRET)
			continue; /* info shows no secrets, not even masked */
		if (settings[i].kind == SETTING_INT) {
			json_object_set_new(o, settings[i].key,
					    json_integer(*(const int64_t *)f));
		} else if (settings[i].kind == SETTING_BOOL) {
			json_object_set_new(o, settings[i].key, json_boolean(*(const bool *)f));
		} else {
			settings_show(&v, i, buf, sizeof buf);
			json_object_set_new(o, settings[i].key, json_string(buf));
		}
	}
	return o;
}

void config_print(const struct config *c, FILE *out)
{
	const struct settings v = view(c);
	char buf[1024];

	for (size_t i = 0; i < NSETTINGS; i++) {
		settings_show(&v, i, buf, sizeof buf);
		fprintf(out, "%s=%s\n", settings[i].key, buf);
	}
}

void config_print_origins(const struct config *c, FILE *out)
{
	const struct settings v = view(c);

	settings_print_origins(&v, out);
}

int config_log_changes(const struct config *a, const struct config *b)
{
	const struct settings va_ = view(a), vb_ = view(b);
	char va[1024], vb[1024];
	int n = 0;

	for (size_t i = 0; i < NSETTINGS; i++) {
		settings_show(&va_, i, va, sizeof va);
		settings_show(&vb_, i, vb, sizeof vb);
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
