/*
 * request.h: decoding the JSON requests of the contract.
 *
 * Bodies are UTF-8 JSON objects (an empty body counts as {}), read with
 * cim_json_read: every string, U+0000 included, in keys too. Duplicate
 * keys, invalid UTF-8, lone surrogates, unknown fields,
 * missing required fields and fields of the wrong JSON type are refused
 * with invalid_request (naming the field where there is one); an integer
 * outside 64-bit signed range with invalid_argument naming where it is; a
 * token, id or value of the right type but out of its rules with
 * invalid_argument naming the field.
 */
#ifndef CIM_PROTO_REQUEST_H
#define CIM_PROTO_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* Parses a request body into an object. Returns a new reference, or NULL
 * with e filled. */
json_t *cim_json_parse_request(const void *body, size_t len, cim_perr *e);

/* Fails with invalid_request when obj has a key not in the NULL-ended
 * list. Returns 0 or -1. */
int cim_json_only_keys(const json_t *obj, const char *const *allowed,
		       cim_perr *e);

/* An optional non-negative integer field: absent leaves *out unchanged. */
int cim_json_get_u64(const json_t *obj, const char *key, uint64_t *out,
		     cim_perr *e);

typedef enum cim_expect {
	CIM_EXPECT_KIND_ANY = 0,
	CIM_EXPECT_KIND_NO_STREAM,
	CIM_EXPECT_KIND_EXISTS,
	CIM_EXPECT_KIND_EXACT
} cim_expect;

typedef struct cim_append_event_req {
	const char *event_type;     /* all borrowed from the request root */
	json_t *data;
	const char *event_id;       /* NULL when not given */
	const char *correlation_id; /* NULL when not given */
	const char *causation_id;   /* NULL when not given */
	json_t *metadata;           /* NULL when not given */
	size_t event_id_len;        /* the ids' lengths: they may hold U+0000 */
	size_t correlation_id_len;
	size_t causation_id_len;
} cim_append_event_req;

typedef struct cim_append_req {
	json_t *root;
	cim_expect expect;
	uint64_t expected_version; /* CIM_EXPECT_KIND_EXACT only, >= 1 */
	size_t n;
	cim_append_event_req *events;
} cim_append_req;

typedef struct cim_limits {
	size_t max_events;  /* per append request */
	int max_depth;      /* data and state nesting */
} cim_limits;

/* Decodes an append request. expected_version 0 is read as "no_stream".
 * event_id, correlation_id and causation_id, when given, are any string
 * of at most CIM_EVENT_ID_MAX bytes ("", control characters and U+0000
 * included; an event_id given as "" is that id, not "none"); two events
 * of one request may not share an event_id. Returns 0, or -1 with e filled
 * (payload_too_large when over lim->max_events). */
int cim_append_req_parse(const void *body, size_t len, const cim_limits *lim,
			 cim_append_req *out, cim_perr *e);
void cim_append_req_free(cim_append_req *r);

/* {"from_version": n, "limit": n}: from_version defaults to 1 (0 is read
 * as 1), limit to default_limit and must be 1..max_limit. */
int cim_get_req_parse(const void *body, size_t len, uint64_t default_limit,
		      uint64_t max_limit, uint64_t *from_version,
		      uint64_t *limit, cim_perr *e);

/* A request that takes no fields ({} or an empty body). */
int cim_empty_req_parse(const void *body, size_t len, cim_perr *e);

/* validate: {"keys": ["z6Mk...", ...]} (optional). Each item a public-key
 * text (keys.h), at most max of them, into keys; *n is how many (0 when
 * the field is absent or empty: then the daemon's trusted_keys apply). */
int cim_validate_req_parse(const void *body, size_t len, uint8_t (*keys)[32],
			   size_t max, size_t *n, cim_perr *e);

/* snapshot.save: {"version": N >= 1, "state": <any JSON, at most
 * CIM_MAX_DEPTH deep>}. On success *state is a new reference. */
int cim_snapshot_req_parse(const void *body, size_t len, uint64_t *version,
			   json_t **state, cim_perr *e);

#endif
