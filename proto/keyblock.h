/*
 * keyblock.h: an aggregate's data key wrapped by the master key, and the
 * key block that carries it: the value stored in CIM-KEYS, and the block
 * that brings it along in a CAR export.
 *
 * Wrapping is XChaCha20-Poly1305 (proto/crypt.h) of the 32-byte data key
 * under the master key, with a 24-byte nonce and associated data
 * "cim-events-dek-v1" 0x00 aggregate_type 0x00 aggregate_id: 48 bytes of
 * ciphertext and tag. The key block is one canonical DAG-CBOR map with
 * exactly four keys, in this order:
 *
 *   nonce          bytes, 24
 *   wrapped        bytes, 48
 *   aggregate_id   text, a valid aggregate id token
 *   aggregate_type text, a valid aggregate type token
 *
 * The block holds no secret: without the master key it reveals nothing of
 * the data key. Its CID, where one is needed, is computed as an event's.
 */
#ifndef CIM_PROTO_KEYBLOCK_H
#define CIM_PROTO_KEYBLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypt.h"
#include "ids.h"

#define CIM_WRAPPED_BYTES (CIM_KEY_BYTES + CIM_TAG_BYTES) /* 48 */

/* A wrapped data key and the aggregate it belongs to. Plain data: nothing
 * in it is secret, and it owns no memory. */
typedef struct cim_wrapped_key {
	char aggregate_type[CIM_TYPE_MAX + 1]; /* NUL-terminated tokens */
	char aggregate_id[CIM_ID_MAX + 1];
	uint8_t nonce[CIM_NONCE_BYTES];
	uint8_t wrapped[CIM_WRAPPED_BYTES];
} cim_wrapped_key;

/* Wraps dek under master for the aggregate type/id (valid tokens) into w,
 * with nonce (NULL: random). 0, or -1 with err set (a bad token) and w
 * zeroed. */
int cim_key_wrap(cim_wrapped_key *w, const cim_key *master,
		 const cim_key *dek, const char *type, const char *id,
		 const uint8_t *nonce, char *err, size_t errsz);

/* Unwraps w under master into dek, checking the tag against w's own
 * aggregate type and id (so a key block moved to another aggregate, or a
 * wrong master key, fails). 0, or -1 with err set and dek wiped. The caller
 * compares w's type and id with the aggregate it is looking for. */
int cim_key_unwrap(cim_key *dek, const cim_key *master,
		   const cim_wrapped_key *w, char *err, size_t errsz);

/* Appends the key block of w to out. 0, or -1 with err set (w's texts not
 * valid tokens, no memory) and out as it was. */
int cim_keyblock_encode(cbuf *out, const cim_wrapped_key *w, char *err,
			size_t errsz);

/* Decodes a key block strictly: exactly the four keys in canonical order,
 * each of its type and length, tokens valid, canonical DAG-CBOR, nothing
 * after. 0, or -1 with err set and w zeroed. */
int cim_keyblock_decode(cim_wrapped_key *w, const uint8_t *p, size_t len,
			char *err, size_t errsz);

#endif
