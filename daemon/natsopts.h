/*
 * natsopts.h: the NATS options every connection of the daemon starts
 * from (the main one and the lease's, store.c): the servers, how to log
 * in (user and password, token, NKey seed file, credentials file) and
 * TLS (CA, client certificate, required); and the JetStream domain or API
 * prefix of its JetStream contexts.
 */
#ifndef CIM_DAEMON_NATSOPTS_H
#define CIM_DAEMON_NATSOPTS_H

#include <nats/nats.h>
#include <stddef.h>

#include "config.h"

/* A new natsOptions for c in *out (the caller destroys it), or NULL and a
 * sentence naming the setting in err. */
natsStatus natsopts_new(natsOptions **out, const struct config *c, char *err, size_t errlen);
/* Sets the domain or the API prefix of c on jo (jsOptions_Init'ed). */
void natsopts_js(jsOptions *jo, const struct config *c);
/* The JetStream API subject prefix those contexts use ("$JS.API",
 * "$JS.<domain>.API" or js_api_prefix), for requests made directly
 * (leader.c). */
void natsopts_js_api(const struct config *c, char *out, size_t n);
/* Whether c asks for TLS (a tls_* setting or a tls:// URL). */
bool natsopts_tls(const struct config *c);

#endif
