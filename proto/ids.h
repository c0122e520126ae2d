/*
 * ids.h: names and times: token rules, UUIDv7 event ids, RFC 3339 UTC
 * timestamps with nanoseconds.
 */
#ifndef CIM_PROTO_IDS_H
#define CIM_PROTO_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIM_TYPE_MAX 64  /* aggregate_type, event_type */
#define CIM_ID_MAX 128   /* aggregate_id */
#define CIM_EVENT_ID_MAX 128 /* event_id, correlation_id, causation_id: any
				UTF-8 text up to this many bytes */

/* [A-Za-z][A-Za-z0-9_-]{0,63} */
bool cim_token_type_ok(const char *s);
/* [A-Za-z0-9_:@+=-]{1,128} */
bool cim_token_id_ok(const char *s);

/* The JetStream API subject prefix for a JetStream domain or an API
 * prefix (either may be NULL or ""): "$JS.<domain>.API", the prefix
 * without a trailing dot, or "$JS.API". */
void cim_js_api_prefix(const char *domain, const char *api_prefix, char *out,
		       size_t n);

/* A fresh UUIDv7 (RFC 9562) in its 36-character text form, lower case. */
void cim_uuid7(char out[37]);

#define CIM_TIME_TEXT 31 /* "2026-11-22T10:00:00.123456789Z" + NUL */

/* Formats Unix time (seconds, nanoseconds) as YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ. */
void cim_time_format(int64_t sec, long nsec, char out[CIM_TIME_TEXT]);
/* The current time, formatted as above. */
void cim_time_now(char out[CIM_TIME_TEXT]);
/* Parses RFC 3339 (any offset, 0-9 fraction digits) into nanoseconds since
 * the Unix epoch. Returns 0 or -1. */
int cim_time_parse(const char *s, int64_t *unix_ns);

#endif
