/*
 * decrypt.h: the body of <prefix>.decrypt.<aggregate_type> (docs/protocol.md
 * section 15): ciphertexts a reader already holds, sent back to the daemon,
 * which alone has the data keys, for their plaintexts.
 *
 *   {"items": [{"aggregate_id": "order-17", "event_id": "...",
 *               "data": "<standard base64, with padding, of the encrypted
 *                         value: the contents of the block's data byte
 *                         string>"}, ...]}
 *
 * The reply, item for item in the same order (possibly fewer items than
 * were sent, when more would pass the NATS payload limit: the rest is
 * asked again): {"items": [{"data": <the value>} | {"forgotten": true}]}.
 */
#ifndef CIM_PROTO_DECRYPT_H
#define CIM_PROTO_DECRYPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

typedef struct cim_decrypt_item {
	const char *aggregate_id; /* borrowed from the request's root */
	const char *event_id;     /* borrowed; event_id_len bytes */
	size_t event_id_len;
	uint8_t *enc;             /* the encrypted value, decoded (malloc'd) */
	size_t enc_len;
} cim_decrypt_item;

typedef struct cim_decrypt_req {
	json_t *root;             /* (the full reader's) */
	char *arena;              /* (the fast reader's ids) */
	size_t n;
	cim_decrypt_item *items;
} cim_decrypt_req;

/* Decodes a decrypt request: "items" (required) is an array of 1 to
 * max_items objects with exactly the three members: aggregate_id a valid
 * id token, event_id a string of at most CIM_EVENT_ID_MAX bytes, data
 * strict standard base64 of at least 40 and at most max_enc bytes (nonce
 * and tag at least). Returns 0, or -1 with e filled (field "items[i].x"
 * for a bad item; payload_too_large over max_items). */
int cim_decrypt_req_parse(const void *body, size_t len, size_t max_items,
			  size_t max_enc, cim_decrypt_req *out, cim_perr *e);
void cim_decrypt_req_free(cim_decrypt_req *r);
/* The same with jansson only (what cim_decrypt_req_parse falls back to):
 * for the fuzzer, which holds the two to the same answers. */
int cim_decrypt_req_parse_full(const void *body, size_t len, size_t max_items,
			       size_t max_enc, cim_decrypt_req *out, cim_perr *e);

#endif
