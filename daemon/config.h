/*
 * config.h: the daemon's settings.
 *
 * Each setting has a default, and can be set, in rising order of weight, in
 * the INI file (--config FILE or $CIM_EVENTS_CONFIG), in the environment
 * ($CIM_EVENTS_<KEY>, the key in upper case) and by a flag (settings.h).
 * One table in config.c names them all; docs/operations.md lists them.
 * The NATS connection's settings are those cim-events takes too
 * (natsopts.h).
 */
#ifndef CIM_DAEMON_CONFIG_H
#define CIM_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "natsopts.h"

#define CONFIG_MAX_SETTINGS 64

struct config {
	struct nats_settings nats; /* servers, log-in, TLS, JetStream domain */
	char *prefix;            /* API subject prefix */
	char *stream;            /* event stream */
	char *events_subject;    /* first token of event subjects */
	char *heads_bucket;
	char *snapshots_bucket;
	char *checkpoints_bucket;
	char *lease_bucket;      /* who the active writer is (see lease.c) */
	char *hash;              /* "blake2b-256" or "sha2-256" */
	uint64_t hash_code;      /* derived from hash */
	char *log_level;
	char *log_format;        /* "text" (key=value) or "json" (JSON lines) */
	int64_t replicas;
	int64_t idempotency_window_s; /* also the stream's duplicate window */
	int64_t max_event_bytes;      /* one stored block */
	int64_t max_events_per_append;
	int64_t max_snapshot_bytes;   /* one stored snapshot block */
	int64_t get_limit;            /* default page size */
	int64_t get_max_limit;
	int64_t workers;              /* threads serving reads */
	int64_t publish_timeout_ms;
	int64_t append_pipeline;      /* appends of one aggregate in flight at once */
	int64_t connect_timeout_s;    /* give up starting after this long */
	int64_t lease_ttl_s;          /* the lease bucket's max age */
	int64_t heads_checkpoint_interval_s; /* write the heads to CIM-HEADS this often */
	int64_t heads_checkpoint_events;     /* or after this many events */
	int64_t retention_days;       /* only 0 (keep for ever) is accepted */
	int64_t max_events_per_aggregate; /* 0: no limit */
	int64_t snapshot_threshold;   /* advice published in info; 0: none */
	int64_t shutdown_timeout_s;   /* the drain's bound after SIGTERM */
	int64_t nats_down_grace_s;    /* healthy while reconnecting this long; 0: for ever */
	char *master_key;             /* key file of encrypted aggregates; "" none */
	char *encrypt_types;          /* aggregate types encrypted: "*", a comma-separated
					 list, or "" (none) */
	char *keys_bucket;            /* wrapped data keys */
	int64_t key_cache;            /* data keys kept in memory */
	char *signing_key;            /* seed file: seal every append (keys.h); "" none */
	char *trusted_keys;           /* z6Mk... public keys, comma-separated: validate's
					 default keys; "" none */
	bool check_config;            /* --check-config */
	/* where each setting got its value ("default", FILE:LINE, $VAR,
	 * "command line"), by its index in config.c's table */
	char *origin[CONFIG_MAX_SETTINGS];
};

/* Fills c from defaults, file, environment and argv. Returns 0 to run,
 * 1 when it printed --help or --version (exit 0), -1 after printing an
 * error (exit 2). */
int config_load(struct config *c, int argc, char **argv);
void config_free(struct config *c);
/* The settings in force as "key=value" lines, secrets masked, each
 * followed by "  # origin" when with_origin. */
void config_print_origins(const struct config *c, FILE *out);
/* The settings in force as "key=value" lines (no secrets). */
void config_print(const struct config *c, FILE *out);
/* The same as a JSON object (jansson) for info: credentials in the URL
 * masked, the password and token left out. */
struct json_t;
struct json_t *config_json(const struct config *c);

/* Whether aggregate_type is named by an encrypt_types value (checked by
 * config_load: "*", or valid aggregate types separated by commas). */
bool config_type_listed(const char *list, const char *aggregate_type);

/* Parses a comma-separated list of public-key texts (trusted_keys; spaces
 * around the commas are allowed, empty items are not): *n keys into
 * keys[max][32]. 0, or -1 with err naming the item that is not a key
 * (also when there are more than max). */
#define CONFIG_TRUSTED_MAX 64
int config_trusted_keys(const char *list, uint8_t (*keys)[32], size_t max, size_t *n,
			char *err, size_t errsz);

/* Logs (info) each setting whose value differs between a and b, secrets
 * masked; returns how many differ. */
int config_log_changes(const struct config *a, const struct config *b);

#endif
