/*
 * natsopts.h: how to reach NATS, as cim-eventsd and cim-events both
 * configure it: the servers, how to log in (user and password, token, NKey
 * seed file, credentials file), TLS (CA, client certificate, required), and
 * the JetStream domain or API prefix. The settings have the same names,
 * variables and flags in both programs (settings.h): NATS_SETTINGS and
 * JETSTREAM_SETTINGS are their rows of a settings table.
 */
#ifndef CIM_CONN_NATSOPTS_H
#define CIM_CONN_NATSOPTS_H

#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>

#include "settings.h"

/* "" when unset */
struct nats_settings {
	char *nats_url;
	char *nats_user;
	char *nats_password;
	char *nats_token;
	char *nats_nkey_seed;    /* path of a user NKey seed file */
	char *nats_creds;        /* path of a credentials (JWT + seed) file */
	char *tls_ca;
	char *tls_cert;
	char *tls_key;
	bool tls_required;
	char *js_domain;         /* JetStream domain, or "" */
	char *js_api_prefix;     /* JetStream API prefix, or "" ($JS.API) */
};

/* The rows of the settings in struct nats_settings m of struct type. */
#define NATS_ROW(key, kind, type, m, def)                                       \
	{"nats", #key, kind, offsetof(type, m.key), def, 0, 0}
#define NATS_SETTINGS(type, m)                                                  \
	NATS_ROW(nats_url, SETTING_STR, type, m, "nats://127.0.0.1:4222"),      \
	NATS_ROW(nats_user, SETTING_OPT, type, m, ""),                          \
	NATS_ROW(nats_password, SETTING_SECRET, type, m, ""),                   \
	NATS_ROW(nats_token, SETTING_SECRET, type, m, ""),                      \
	NATS_ROW(nats_nkey_seed, SETTING_PATH, type, m, ""),                    \
	NATS_ROW(nats_creds, SETTING_PATH, type, m, ""),                        \
	NATS_ROW(tls_ca, SETTING_PATH, type, m, ""),                            \
	NATS_ROW(tls_cert, SETTING_PATH, type, m, ""),                          \
	NATS_ROW(tls_key, SETTING_PATH, type, m, ""),                           \
	{"nats", "tls_required", SETTING_BOOL, offsetof(type, m.tls_required),   \
	 "false", 0, 1}
#define JETSTREAM_SETTINGS(type, m)                                             \
	{"jetstream", "js_domain", SETTING_OPT, offsetof(type, m.js_domain), "", 0, 0}, \
	{"jetstream", "js_api_prefix", SETTING_OPT, offsetof(type, m.js_api_prefix), \
	 "", 0, 0}
/* Their names in the seed's configuration ([nats] url, user, ...;
 * [jetstream] domain, prefix). */
#define NATS_SETTING_ALIASES                                                    \
	{"nats", "url", "nats_url"}, {"nats", "user", "nats_user"},             \
	{"nats", "password", "nats_password"}, {"nats", "token", "nats_token"}, \
	{"nats", "nkey_seed", "nats_nkey_seed"}, {"nats", "creds", "nats_creds"}, \
	{"jetstream", "domain", "js_domain"}, {"jetstream", "prefix", "js_api_prefix"}

/* What the settings n (read through s) must say together: one way to log
 * in, user with password, certificate with key, a domain or a prefix; and
 * every file a PATH setting of s names readable (an NKey seed file
 * holding a seed).
 * Returns 0, or -1 after printing each problem on stderr. */
int natsopts_check(const struct settings *s, const struct nats_settings *n);

/* A new natsOptions for n in *out (the caller destroys it), or NULL and a
 * sentence naming the setting in err. */
natsStatus natsopts_new(natsOptions **out, const struct nats_settings *n, char *err,
			size_t errlen);
/* Sets the domain or the API prefix of n on jo (jsOptions_Init'ed). */
void natsopts_js(jsOptions *jo, const struct nats_settings *n);
/* The JetStream API subject prefix those contexts use ("$JS.API",
 * "$JS.<domain>.API" or js_api_prefix), for requests made directly. */
void natsopts_js_api(const struct nats_settings *n, char *out, size_t len);
/* Whether n asks for TLS (a tls_* setting or a tls:// URL). */
bool natsopts_tls(const struct nats_settings *n);

#endif
