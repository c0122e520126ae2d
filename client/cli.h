/*
 * cli.h: what the files of the cim-events tool share (cli.c: main, the
 * reading commands and the helpers below; cli_append.c: append;
 * cli_read.c: snapshot, load, by-type; cli_tail.c: tail; cli_ops.c:
 * stats, verify-all, export; cli_forget.c: forget; cli_keys.c: keygen;
 * cli_car.c: verify-car).
 */
#ifndef CIM_CLI_H
#define CIM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <nats/nats.h>

#include "cim/events.h"
#include "jsonread.h"
#include "natsopts.h"

#define PROG "cim-events"

/* Exit statuses besides 0. */
enum {
	EXIT_BROKEN = 1, /* validate: the chain is broken; tail: an event
			    failed its integrity check */
	EXIT_USAGE = 2,  /* the command line */
	EXIT_DAEMON =
		3, /* the daemon refused, or its reply is not understood */
	EXIT_UNREACHABLE = 4, /* NATS or the daemon cannot be reached in time */
};

/* Where to connect: the daemon's connection settings and the prefix
 * (cli_conn.c). */
#define CLI_SETTINGS_MAX 16
struct cli_settings {
	struct nats_settings nats;
	char *prefix;
	char *origin[CLI_SETTINGS_MAX];
};

struct ctx {
	struct cli_settings set;
	int64_t timeout_ms;     /* 0: 5000 */
	natsConnection *nc;     /* connected at the first request */
	cim_client *client;     /* on nc */
};

/* Positional arguments of a command: those getopt hands back in order
 * (optstring starting with '-') and any after "--". */
struct positionals {
	char *v[4];
	int n;
};

/* cli.c. Each int function returns 0 or the exit status, having printed
 * the reason on stderr. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail(cim_err code, const cim_error *err);
int cli_fail_nomem(void);
int cli_print_json(const json_t *j);
/* A decimal number in [0, max]; -1 (nothing printed) when s is not one. */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *out);
int cli_bad_option(int ch, char **argv);
int cli_add_positional(struct positionals *p, char *arg);
int cli_rest_positionals(struct positionals *p, int argc, char **argv);
int cli_want_positionals(const struct positionals *p, int n, const char *cmd);
/* Trusted public keys given with --key K (repeatable): the texts as given
 * and their bytes. */
#define CLI_KEYS_MAX 64
struct cli_keys {
	const char *text[CLI_KEYS_MAX];
	uint8_t pk[CLI_KEYS_MAX][32];
	size_t n;
};
/* Adds the --key value text: 0, or the usage error's exit status. */
int cli_add_key(struct cli_keys *k, const char *text);

/* cli_conn.c. The settings from defaults, the file, the environment and
 * the options before the command (argv[optind] is the command after it).
 * 0 to go on, -1 when it printed what was asked (--help, --version,
 * --check-config: exit 0), or the exit status. */
int cli_settings_load(struct ctx *cx, int argc, char **argv, void (*usage)(FILE *));
void cli_settings_free(struct ctx *cx);
/* Connects cx->nc and cx->client unless they are (commands that call the
 * library themselves, not through cli_request). */
int cli_connect(struct ctx *cx);
/* When the NATS server refused the last request for the user's
 * permissions: says so on stderr and returns true. */
bool cli_refused_by_nats(const struct ctx *cx);
void cli_disconnect(struct ctx *cx);
/* Sends req (NULL: {}); on success *reply is the reply object. */
int cli_request(struct ctx *cx, const char *op, const char *type,
		const char *id, const json_t *req, json_t **reply);

/* cli_append.c */
int cli_append(struct ctx *cx, int argc, char **argv);

/* cli_read.c */
int cli_snapshot(struct ctx *cx, int argc, char **argv);
int cli_load(struct ctx *cx, int argc, char **argv);
int cli_by_type(struct ctx *cx, int argc, char **argv);

/* cli_tail.c */
int cli_tail(struct ctx *cx, int argc, char **argv);

/* cli_ops.c */
/* An aggregate found in the stream's subjects, with the event types it
 * has subjects for. */
struct agg_ref {
	char *type;
	char *id;
	char **event_types;
	uint64_t *counts; /* messages on each event type's subject, as listed */
	size_t ntypes;
};
struct agg_list {
	struct agg_ref *v;
	size_t n, cap;
	char root[128]; /* the stream's subject root: events.<type>.<id>... */
};
void agg_list_free(struct agg_list *l);
/* PATTERN (TYPE_GLOB[.ID_GLOB]) split into its globs. */
struct pattern {
	char type[80];
	char id[160];
};
/* 0, or the usage error's exit status. */
int pattern_parse(const char *text, struct pattern *p);
/* JetStream on the tool's connection (for reads of the stream itself,
 * which the contract leaves to JetStream), with the daemon's domain or
 * API prefix. 0, or the exit status after saying why. */
int cli_js(struct ctx *cx, const char *stream, jsCtx **js);
/* Every aggregate with events in the stream that p matches, sorted by
 * type then id. 0, or the exit status after saying why. */
int find_aggregates(struct ctx *cx, const char *stream, const struct pattern *p,
		    struct agg_list *out);
int cli_stats(struct ctx *cx, int argc, char **argv);
int cli_verify_all(struct ctx *cx, int argc, char **argv);
int cli_export(struct ctx *cx, int argc, char **argv);

/* cli_forget.c */
int cli_forget(struct ctx *cx, int argc, char **argv);

/* cli_backup.c: export --car (the stored blocks as a CAR file) and
 * import (a CAR file restored through the daemon) */
int cli_export_car(struct ctx *cx, const char *file, const char *stream,
		   const struct agg_list *aggs);
int cli_import(struct ctx *cx, int argc, char **argv);

/* cli_keys.c, cli_car.c: offline, no NATS */
int cli_keygen(struct ctx *cx, int argc, char **argv);
int cli_verify_car(struct ctx *cx, int argc, char **argv);

#endif
