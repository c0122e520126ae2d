/*
 * cli_conn.c: where cim-events connects, and how: the same settings as
 * cim-eventsd's (conn/natsopts.h: nats_url, nats_user, nats_password,
 * nats_token, nats_nkey_seed, nats_creds, tls_ca, tls_cert, tls_key,
 * tls_required, js_domain, js_api_prefix) and the API prefix, read the
 * daemon's way (conn/settings.h): defaults, the INI file of --config FILE
 * or $CIM_EVENTS_CONFIG (the daemon's own file will do: its other keys are
 * passed over), $CIM_EVENTS_<KEY>, then flags before the command. The
 * connection is made here with those options and handed to the library
 * (cim_client_wrap), so every command, those that read JetStream
 * themselves included, goes the same way.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "natsopts.h"
#include "settings.h"

static const struct setting table[] = {
	NATS_SETTINGS(struct cli_settings, nats),
	JETSTREAM_SETTINGS(struct cli_settings, nats),
	{"api", "prefix", SETTING_STR, offsetof(struct cli_settings, prefix),
	 "cim.events.v1", 0, 0},
};
#define NTABLE (sizeof table / sizeof table[0])
_Static_assert(NTABLE <= CLI_SETTINGS_MAX, "CLI_SETTINGS_MAX is too small");

static const struct setting_alias aliases[] = {NATS_SETTING_ALIASES};

static struct settings view(struct ctx *cx)
{
	return (struct settings){PROG, table, NTABLE, aliases,
				 sizeof aliases / sizeof aliases[0], true, &cx->set,
				 cx->set.origin};
}

enum { G_URL = 1, G_TIMEOUT, G_CONFIG, G_CHECK, G_HELP, G_VERSION, G_SETTING = 256 };

/* The options before the command: the settings' own, and the tool's. */
static void options(struct ctx *cx, struct option *opts, char (*names)[64])
{
	const struct settings v = view(cx);
	size_t n = NTABLE;

	settings_options(&v, opts, names, G_SETTING);
	opts[n++] = (struct option){"url", required_argument, NULL, G_URL};
	opts[n++] = (struct option){"timeout", required_argument, NULL, G_TIMEOUT};
	opts[n++] = (struct option){"config", required_argument, NULL, G_CONFIG};
	opts[n++] = (struct option){"check-config", no_argument, NULL, G_CHECK};
	opts[n++] = (struct option){"help", no_argument, NULL, G_HELP};
	opts[n++] = (struct option){"version", no_argument, NULL, G_VERSION};
	opts[n] = (struct option){NULL, 0, NULL, 0};
}

int cli_settings_load(struct ctx *cx, int argc, char **argv, void (*usage)(FILE *))
{
	static char names[NTABLE][64];
	static struct option opts[NTABLE + 7];
	const struct settings v = view(cx);
	const char *path = getenv("CIM_EVENTS_CONFIG"), *url;
	bool check = false;
	uint64_t ms;
	int ch;

	options(cx, opts, names);
	/* first the file (its name is among the flags), so flags win */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1)
		if (ch == G_CONFIG)
			path = optarg;
	if (settings_defaults(&v) != 0)
		return EXIT_USAGE;
	/* $CIM_EVENTS_URL: the tool's older name of $CIM_EVENTS_NATS_URL */
	if ((url = getenv("CIM_EVENTS_URL")) != NULL && *url != '\0' &&
	    settings_set(&v, (size_t)settings_find(&v, NULL, "nats_url"), url,
			 "$CIM_EVENTS_URL") != 0)
		return EXIT_USAGE;
	if ((path != NULL && *path != '\0' && settings_read_file(&v, path) != 0) ||
	    settings_read_environment(&v) != 0)
		return EXIT_USAGE;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		switch (ch) {
		case G_URL:
			if (settings_set(&v, (size_t)settings_find(&v, NULL, "nats_url"),
					 optarg, "command line") != 0)
				return EXIT_USAGE;
			break;
		case G_TIMEOUT:
			if (cli_parse_u64(optarg, INT32_MAX, &ms) != 0 || ms == 0)
				return cli_usage_error("--timeout needs a positive number of "
						       "milliseconds, not '%s'", optarg);
			cx->timeout_ms = (int64_t)ms;
			break;
		case G_CONFIG:
			break; /* read above */
		case G_CHECK:
			check = true;
			break;
		case 'h':
		case G_HELP:
			usage(stdout);
			return -1;
		case 'V':
		case G_VERSION:
			printf(PROG " %s\n", CIM_EVENTS_VERSION);
			return -1;
		default:
			if (ch >= G_SETTING && ch < G_SETTING + (int)NTABLE) {
				if (settings_set(&v, (size_t)(ch - G_SETTING),
						 optarg ? optarg : "true", "command line") != 0)
					return EXIT_USAGE;
				break;
			}
			return cli_bad_option(ch, argv);
		}
	}
	if (natsopts_check(&v, &cx->set.nats) != 0)
		return EXIT_USAGE;
	if (check) {
		/* what a command would connect with, secrets masked */
		settings_print_origins(&v, stdout);
		printf("\ntimeout = %lld    # %s\n",
		       (long long)(cx->timeout_ms > 0 ? cx->timeout_ms : 5000),
		       cx->timeout_ms > 0 ? "command line" : "default");
		return -1;
	}
	return 0;
}

void cli_settings_free(struct ctx *cx)
{
	const struct settings v = view(cx);

	settings_free(&v);
}

/* nats.c's reason without its "(file:line): " in front. */
static const char *nats_reason(natsStatus s)
{
	const char *why = nats_GetLastError(NULL);

	if (why == NULL || *why == '\0')
		return natsStatus_GetText(s);
	if (why[0] == '(' && strstr(why, "): ") != NULL)
		why = strstr(why, "): ") + 3;
	return why;
}

int cli_connect(struct ctx *cx)
{
	cim_client_options copts = {.prefix = cx->set.prefix, .timeout_ms = cx->timeout_ms};
	int64_t ms = cx->timeout_ms > 0 ? cx->timeout_ms : 5000;
	natsOptions *o = NULL;
	char why[400], shown[512];
	cim_error err;
	cim_err rc;
	natsStatus s;

	if (cx->client != NULL)
		return 0;
	if ((s = natsopts_new(&o, &cx->set.nats, why, sizeof why)) != NATS_OK) {
		fprintf(stderr, PROG ": connection: %s\n", why);
		return s == NATS_NO_MEMORY ? cli_fail_nomem() : EXIT_USAGE;
	}
	if ((s = natsOptions_SetName(o, PROG)) == NATS_OK &&
	    (s = natsOptions_SetTimeout(o, ms)) == NATS_OK &&
	    (s = natsOptions_SetSendAsap(o, true)) == NATS_OK &&
	    (s = natsOptions_SetFailRequestsOnDisconnect(o, true)) == NATS_OK)
		s = natsConnection_Connect(&cx->nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
		cx->nc = NULL;
		settings_mask_url(cx->set.nats.nats_url, shown, sizeof shown);
		fprintf(stderr, PROG ": connection: cannot connect to NATS at %s: %s\n", shown,
			nats_reason(s));
		return s == NATS_NO_MEMORY ? cli_fail_nomem() : EXIT_UNREACHABLE;
	}
	if ((rc = cim_client_wrap(&cx->client, cx->nc, &copts, &err)) != CIM_ERR_OK ||
	    (rc = cim_client_set_jetstream(cx->client, cx->set.nats.js_domain,
					   cx->set.nats.js_api_prefix, &err)) != CIM_ERR_OK)
		return cli_fail(rc, &err);
	return 0;
}

bool cli_refused_by_nats(const struct ctx *cx)
{
	const char *text = NULL;

	if (cx->nc == NULL ||
	    natsConnection_GetLastError(cx->nc, &text) != NATS_NOT_PERMITTED)
		return false;
	fprintf(stderr, PROG ": not_permitted: the NATS server refused: %s (this user "
		"may not send that request; see the server's permissions)\n",
		text != NULL ? text : "permissions violation");
	return true;
}

void cli_disconnect(struct ctx *cx)
{
	cim_client_destroy(cx->client);
	cx->client = NULL;
	natsConnection_Destroy(cx->nc);
	cx->nc = NULL;
}
