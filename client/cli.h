/*
 * cli.h: what the files of the cim-events tool share (cli.c: main, the
 * reading commands and the helpers below; cli_append.c: append;
 * cli_read.c: snapshot, load, by-type; cli_tail.c: tail; cli_ops.c:
 * stats, verify-all, export; cli_forget.c: forget; cli_keys.c: keygen;
 * cli_car.c: verify-car).
 */
#ifndef CIM_CLI_H
#define CIM_CLI_H

#include <stdint.h>

#include <jansson.h>

#include "cim/events.h"

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

struct ctx {
	const char *url;
	const char *prefix;
	int64_t timeout_ms;
	cim_client *client; /* connected at the first request */
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
/* Connects cx->client unless it already is (commands that call the
 * library themselves, not through cli_request). */
int cli_connect(struct ctx *cx);
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
int cli_stats(struct ctx *cx, int argc, char **argv);
int cli_verify_all(struct ctx *cx, int argc, char **argv);
int cli_export(struct ctx *cx, int argc, char **argv);

/* cli_forget.c */
int cli_forget(struct ctx *cx, int argc, char **argv);

/* cli_keys.c, cli_car.c: offline, no NATS */
int cli_keygen(struct ctx *cx, int argc, char **argv);
int cli_verify_car(struct ctx *cx, int argc, char **argv);

#endif
