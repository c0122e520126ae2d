/*
 * restore.h: the restore request (docs/protocol.md, "restore"): blocks to
 * store exactly as given, the seals that go with them, and an encrypted
 * aggregate's key block.
 *
 *   {"blocks": ["<base64 of an event block>", ...],
 *    "seals":  ["<base64 of a seal block>", ...],      optional
 *    "key":    "<base64 of the aggregate's key block>"} optional
 *
 * Base64 is the standard alphabet with its padding. What this decoder
 * checks needs nothing but the request and the aggregate it is for: each
 * block is a valid event block of that aggregate (strict DAG-CBOR, the
 * eleven keys, a valid event type, ids of at most 128 bytes), the
 * blocks continue one another (versions one apart, each prev the CID of
 * the block before), every link is hashed as the store hashes, each seal
 * names one of the blocks and verifies under its key, the key block is a
 * key block of this aggregate (keyblock.h). Whether the first
 * block continues the aggregate's head is the daemon's to check, against
 * its head (daemon/append.c). Nothing is looked up, nothing is stored.
 */
#ifndef CIM_PROTO_RESTORE_H
#define CIM_PROTO_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cid.h"
#include "errors.h"
#include "event.h"
#include "ids.h"
#include "keyblock.h"
#include "seal.h"

/* One block to restore: its bytes (owned by the request), its CID under
 * the store's hash, and the checked view of its fields (pointing into the
 * bytes). seal: the index of its seal in the request's seals, or -1. */
typedef struct cim_restore_block {
	const uint8_t *p;
	size_t len;
	cim_cid cid;
	cim_event_view v;
	int seal;
} cim_restore_block;

typedef struct cim_restore_req {
	size_t n;                  /* blocks, >= 1 */
	cim_restore_block *blocks; /* in version order */
	/* each block's event type and its event_id, correlation_id and
	 * causation_id, NUL-terminated (an id may hold U+0000 too: its
	 * length is the view's): for subjects and headers */
	char (*types)[CIM_TYPE_MAX + 1];
	char (*ids)[3][CIM_EVENT_ID_MAX + 1];
	size_t nseals;
	cim_seal_block *seals;     /* each verified, each of a block */
	bool has_key;              /* the request carried a key block: */
	cim_wrapped_key key;       /* this aggregate's wrapped data key */
	uint8_t *mem;              /* every decoded byte */
} cim_restore_req;

typedef struct cim_restore_limits {
	size_t max_blocks;      /* max_events_per_append */
	size_t max_block_bytes; /* max_event_bytes */
	uint64_t hash_code;     /* the store's multihash (cid.h) */
} cim_restore_limits;

/* Decodes and checks a restore request for type/id (see the top of this
 * file). Returns 0 with *out filled (free with cim_restore_req_free), or
 * -1 with e set: invalid_request for a body of the wrong shape,
 * invalid_argument naming the field (blocks[i], seals[i], key) for a
 * value that breaks its rule, payload_too_large (field blocks or
 * blocks[i]) over the limits; *out is then empty. */
int cim_restore_req_parse(const void *body, size_t len, const char *type,
			  const char *id, const cim_restore_limits *lim,
			  cim_restore_req *out, cim_perr *e);
void cim_restore_req_free(cim_restore_req *r);

/* Copies block text (not NUL-terminated in the view; it may hold NUL)
 * and a NUL after it into out (size bytes; the id and type limits of
 * ids.h fit). */
void cim_restore_text(char *out, size_t size, const char *s, size_t len);

#endif
