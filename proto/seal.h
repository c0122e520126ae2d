/*
 * seal.h: seals, the store's Ed25519 signatures over events
 * (docs/protocol.md, "Seals").
 *
 * The signed bytes are "cim-events-seal-v1", one 0x00 byte, then the
 * binary CIDv1 of the sealed event (no multibase prefix, no 0x00 as in a
 * tag-42 link). On an event message the seal is two headers: Cim-Seal-Key
 * (the public key text, keys.h) and Cim-Seal (standard base64 with padding
 * of the 64-byte signature, 88 characters). In a CAR file it is a seal
 * block: a DAG-CBOR map with exactly the keys cid (a tag-42 link to the
 * sealed event), key (the public key text) and sig (the 64 signature
 * bytes), hashed like events.
 */
#ifndef CIM_PROTO_SEAL_H
#define CIM_PROTO_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cid.h"
#include "keys.h"

#define CIM_SEAL_SIG_BYTES 64
#define CIM_SEAL_TEXT_LEN 88                     /* base64 of 64 bytes */
#define CIM_SEAL_TEXT_MAX (CIM_SEAL_TEXT_LEN + 1) /* with its NUL */
#define CIM_SEAL_DOMAIN "cim-events-seal-v1"

/* The bytes a seal signs for cid, into out (room for
 * CIM_SEAL_MSG_MAX bytes). Returns their length. */
#define CIM_SEAL_MSG_MAX (sizeof(CIM_SEAL_DOMAIN) + CIM_CID_MAX)
size_t cim_seal_message(const cim_cid *cid, uint8_t *out);

/* Signs cid with k into sig. Returns 0, or -1 (cid empty). */
int cim_seal_sign(const cim_signing_key *k, const cim_cid *cid,
		  uint8_t sig[CIM_SEAL_SIG_BYTES]);

/* Whether sig is pk's seal of cid (crypto_sign_verify_detached). */
bool cim_seal_verify(const uint8_t pk[CIM_KEY_BYTES], const cim_cid *cid,
		     const uint8_t sig[CIM_SEAL_SIG_BYTES]);

/* The Cim-Seal header text of sig, with its NUL, into out (at least
 * CIM_SEAL_TEXT_MAX bytes). Returns CIM_SEAL_TEXT_LEN. */
size_t cim_seal_sig_to_text(const uint8_t sig[CIM_SEAL_SIG_BYTES], char *out);

/* Parses a Cim-Seal header text strictly: exactly 88 characters of
 * standard base64 with its padding ("=="), no whitespace, no stray bits.
 * Returns 0, or -1. */
int cim_seal_sig_from_text(uint8_t sig[CIM_SEAL_SIG_BYTES], const char *s,
			   size_t len);

/* Checks a seal given as the two header texts for the event cid: both
 * must parse and the signature must verify. Returns 0 with the key in pk
 * (may be NULL), or -1 with a sentence in err naming what failed. */
int cim_seal_check_headers(const char *key_text, size_t key_len,
			   const char *sig_text, size_t sig_len,
			   const cim_cid *cid, uint8_t pk[CIM_KEY_BYTES],
			   char *err, size_t errsz);

/* A seal block's content. */
typedef struct cim_seal_block {
	cim_cid cid;                   /* the sealed event */
	uint8_t pk[CIM_KEY_BYTES];     /* the key, shown as its text */
	uint8_t sig[CIM_SEAL_SIG_BYTES];
} cim_seal_block;

/* Appends the seal block's canonical encoding (keys cid, key, sig) to
 * out. Returns 0, or -1 (no memory; out left as it was). */
int cim_seal_block_encode(const cim_seal_block *s, cbuf *out);

/* Decodes a seal block strictly: a map of exactly the three keys in
 * canonical order, cid a valid link, key a valid public-key text, sig 64
 * bytes, canonical DAG-CBOR, nothing after. Does not verify the
 * signature (cim_seal_verify). Returns 0, or -1 with err set. */
int cim_seal_block_decode(const uint8_t *p, size_t len, cim_seal_block *s,
			  char *err, size_t errsz);

#endif
