/*
 * natsopts.c: the options of the NATS connections of cim-eventsd and
 * cim-events (natsopts.h). The secrets are passed to nats.c and not kept
 * or logged here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ids.h"
#include "natsopts.h"
#include "nkey.h"

/* A URL, or a comma-separated list of them (natsOptions_SetURL takes one;
 * a list goes to natsOptions_SetServers). */
static natsStatus set_urls(natsOptions *o, const char *urls)
{
	char *copy, *save = NULL, *list[32];
	int n = 0;
	natsStatus s;

	if (strchr(urls, ',') == NULL)
		return natsOptions_SetURL(o, urls);
	if ((copy = strdup(urls)) == NULL)
		return NATS_NO_MEMORY;
	for (char *t = strtok_r(copy, ", ", &save); t && n < 32; t = strtok_r(NULL, ", ", &save))
		list[n++] = t;
	s = n > 0 ? natsOptions_SetServers(o, (const char **)list, n) : NATS_INVALID_ARG;
	free(copy);
	return s;
}

bool natsopts_tls(const struct nats_settings *c)
{
	return c->tls_required || c->tls_ca[0] || c->tls_cert[0] || strstr(c->nats_url, "tls://");
}

/* nats.c's own words for why a call failed (a TLS file it cannot load
 * says which and why), after the setting's name. */
static natsStatus fail(natsStatus s, char *err, size_t errlen, const char *what)
{
	const char *why = nats_GetLastError(NULL);
	snprintf(err, errlen, "%s: %s", what, why && *why ? why : natsStatus_GetText(s));
	return s;
}

natsStatus natsopts_new(natsOptions **out, const struct nats_settings *c, char *err,
			size_t errlen)
{
	natsOptions *o = NULL;
	natsStatus s;

	*out = NULL;
	if ((s = natsOptions_Create(&o)) != NATS_OK)
		return fail(s, err, errlen, "NATS options");
	if ((s = set_urls(o, c->nats_url)) != NATS_OK) {
		snprintf(err, errlen, "nats_url: not a URL or a comma-separated list of URLs: %s",
			 c->nats_url);
		goto out;
	}
	if (c->nats_user[0] && (s = natsOptions_SetUserInfo(o, c->nats_user,
							      c->nats_password)) != NATS_OK) {
		fail(s, err, errlen, "nats_user");
		goto out;
	}
	if (c->nats_token[0] && (s = natsOptions_SetToken(o, c->nats_token)) != NATS_OK) {
		fail(s, err, errlen, "nats_token");
		goto out;
	}
	if (c->nats_nkey_seed[0]) {
		char pub[NKEY_PUBLIC_LEN + 1], why[300];
		if (nkey_public_from_seed_file(c->nats_nkey_seed, pub, why, sizeof why) != 0) {
			snprintf(err, errlen, "nats_nkey_seed: %s", why);
			s = NATS_INVALID_ARG;
			goto out;
		}
		if ((s = natsOptions_SetNKeyFromSeed(o, pub, c->nats_nkey_seed)) != NATS_OK) {
			fail(s, err, errlen, "nats_nkey_seed");
			goto out;
		}
	}
	if (c->nats_creds[0] &&
	    (s = natsOptions_SetUserCredentialsFromFiles(o, c->nats_creds, NULL)) != NATS_OK) {
		fail(s, err, errlen, "nats_creds");
		goto out;
	}
	if (natsopts_tls(c) && (s = natsOptions_SetSecure(o, true)) != NATS_OK) {
		fail(s, err, errlen, "tls_required");
		goto out;
	}
	if (c->tls_ca[0] && (s = natsOptions_LoadCATrustedCertificates(o, c->tls_ca)) != NATS_OK) {
		fail(s, err, errlen, "tls_ca");
		goto out;
	}
	if (c->tls_cert[0] &&
	    (s = natsOptions_LoadCertificatesChain(o, c->tls_cert, c->tls_key)) != NATS_OK) {
		fail(s, err, errlen, "tls_cert/tls_key");
		goto out;
	}
	*out = o;
	return NATS_OK;
out:
	natsOptions_Destroy(o);
	return s;
}

void natsopts_js(jsOptions *jo, const struct nats_settings *c)
{
	if (c->js_domain[0])
		jo->Domain = c->js_domain;
	else if (c->js_api_prefix[0])
		jo->Prefix = c->js_api_prefix;
}

void natsopts_js_api(const struct nats_settings *c, char *out, size_t n)
{
	cim_js_api_prefix(c->js_domain, c->js_api_prefix, out, n);
}

int natsopts_check(const struct settings *s, const struct nats_settings *c)
{
	int bad = 0;

	if ((c->nats_user[0] != '\0') != (c->nats_password[0] != '\0')) {
		fprintf(stderr, "%s: %s: nats_user and nats_password go together\n", s->prog,
			settings_origin(s, c->nats_user[0] ? "nats_user" : "nats_password"));
		bad = 1;
	}
	int ways = (c->nats_user[0] != '\0') + (c->nats_token[0] != '\0') +
		   (c->nats_nkey_seed[0] != '\0') + (c->nats_creds[0] != '\0');
	if (ways > 1) {
		fprintf(stderr, "%s: choose one way to authenticate: nats_user and "
			"nats_password, nats_token, nats_nkey_seed or nats_creds (%d are set)\n",
			s->prog, ways);
		bad = 1;
	}
	if ((c->tls_cert[0] != '\0') != (c->tls_key[0] != '\0')) {
		fprintf(stderr, "%s: %s: tls_cert and tls_key go together\n", s->prog,
			settings_origin(s, c->tls_cert[0] ? "tls_cert" : "tls_key"));
		bad = 1;
	}
	if (c->js_domain[0] != '\0' && c->js_api_prefix[0] != '\0') {
		fprintf(stderr, "%s: %s: set js_domain or js_api_prefix, not both "
			"(a domain is the prefix $JS.<domain>.API)\n", s->prog,
			settings_origin(s, "js_domain"));
		bad = 1;
	}
	for (size_t i = 0; i < s->n; i++) {
		const char *path = *(char *const *)((const char *)s->base + s->table[i].off);
		if (s->table[i].kind != SETTING_PATH || path[0] == '\0')
			continue;
		FILE *f = fopen(path, "r");
		if (f == NULL) {
			fprintf(stderr, "%s: %s: %s: cannot read %s: %s\n", s->prog,
				s->origin[i] ? s->origin[i] : "default", s->table[i].key, path,
				strerror(errno));
			bad = 1;
		} else {
			fclose(f);
		}
	}
	char pub[NKEY_PUBLIC_LEN + 1], why[400];
	if (c->nats_nkey_seed[0] && access(c->nats_nkey_seed, R_OK) == 0 &&
	    nkey_public_from_seed_file(c->nats_nkey_seed, pub, why, sizeof why) != 0) {
		fprintf(stderr, "%s: %s: nats_nkey_seed: %s\n", s->prog,
			settings_origin(s, "nats_nkey_seed"), why);
		bad = 1;
	}
	return bad ? -1 : 0;
}
