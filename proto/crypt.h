/*
 * crypt.h: the keys and the authenticated encryption of encrypted
 * aggregates (docs/protocol.md, "Encrypted aggregates"), with libsodium's
 * XChaCha20-Poly1305 (IETF): 32-byte keys, 24-byte nonces, 16-byte tags.
 *
 * Three things are encrypted, each bound by its associated data (AD) to the
 * one place it belongs, so a value moved anywhere else fails to decrypt:
 *
 *   a data key, under the master key:  "cim-events-dek-v1" 0x00 type 0x00 id
 *   an event's data, under its data key: "cim-events-data-v1" 0x00 event_id
 *   a snapshot's state, likewise:       "cim-events-state-v1" 0x00 type 0x00 id
 *
 * An encrypted value ("enc" below) is the 24-byte nonce followed by the
 * ciphertext and its tag; data and state store it as a CBOR byte string.
 * What is encrypted is the canonical DAG-CBOR encoding of the JSON value.
 *
 * Keys. A cim_key is 32 secret bytes. Keys live in memory from
 * cim_key_alloc, which gives guarded pages (sodium_malloc), locked against
 * swapping where the process's memlock limit allows (failure to lock is not
 * an error) and left out of core dumps; cim_key_free wipes them
 * (sodium_memzero) and gives them back. Whoever allocates a key frees it;
 * every function here that is handed a key only reads it, and functions
 * that write a key (cim_key_generate, cim_key_unwrap) write into memory the
 * caller owns, wiping it on failure. No function copies a key anywhere
 * else (libsodium wipes its own subkeys), and no message names a key's
 * bytes. A cache of data keys allocates its slots as one cim_key_alloc(n)
 * array (one locked region, not one per key: locking is per page) and wipes
 * a slot with cim_key_wipe before it is reused.
 *
 * Nonces: every function that encrypts takes nonce, 24 bytes, or NULL for
 * fresh random bytes (the normal case; tests fix it to compare with
 * vectors). A random 24-byte nonce never needs a counter.
 */
#ifndef CIM_PROTO_CRYPT_H
#define CIM_PROTO_CRYPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cid.h" /* cim_sodium_ready */

#define CIM_KEY_BYTES 32
#define CIM_NONCE_BYTES 24
#define CIM_TAG_BYTES 16
/* nonce + tag: how much longer an encrypted value is than its plaintext */
#define CIM_ENC_OVERHEAD (CIM_NONCE_BYTES + CIM_TAG_BYTES)

typedef struct cim_key {
	uint8_t b[CIM_KEY_BYTES];
} cim_key;

/* n zeroed keys (n >= 1) in one guarded region, locked where allowed and
 * left out of core dumps. NULL when memory runs out. */
cim_key *cim_key_alloc(size_t n);
/* Wipes the n keys of k (what cim_key_alloc(n) returned) and frees them.
 * NULL is a no-op. */
void cim_key_free(cim_key *k, size_t n);
/* Wipes one key in place. */
void cim_key_wipe(cim_key *k);
/* Fills k with 32 fresh random bytes (a new data key). 0, or -1 when
 * libsodium cannot start (k is then wiped). */
int cim_key_generate(cim_key *k);

/*
 * The associated data of one encrypted value, as its parts; the bytes are
 * built by the functions that use it. Texts are given with explicit
 * lengths: an event_id may hold U+0000, and is last, so its bytes are
 * unambiguous. An aggregate type must not hold NUL (it is a token), or the
 * type/id boundary would be ambiguous; every function refuses such AD.
 */
typedef enum cim_ad_kind { CIM_AD_DEK, CIM_AD_DATA, CIM_AD_STATE } cim_ad_kind;

typedef struct cim_ad {
	cim_ad_kind kind;
	const char *a; /* DEK, STATE: the aggregate type; DATA: the event_id */
	size_t alen;
	const char *b; /* DEK, STATE: the aggregate id; DATA: unused */
	size_t blen;
} cim_ad;

cim_ad cim_ad_dek(const char *type, size_t type_len, const char *id,
		  size_t id_len);
cim_ad cim_ad_data(const char *event_id, size_t event_id_len);
cim_ad cim_ad_state(const char *type, size_t type_len, const char *id,
		    size_t id_len);

/* Appends the AD's exact bytes to out. 0, or -1 when the AD is refused
 * (an empty text, NUL in the type) or memory runs out (out as it was). */
int cim_ad_write(cbuf *out, const cim_ad *ad);

/* XChaCha20-Poly1305 (IETF) itself, with raw associated data: seal writes
 * plen + CIM_TAG_BYTES bytes to ct (ciphertext, then tag); open checks the
 * tag and writes ctlen - CIM_TAG_BYTES bytes to plain, or returns -1 (also
 * for ctlen < CIM_TAG_BYTES) with plain wiped. Every use goes through
 * cim_aead_seal/open below; these are public for the standard test
 * vectors. */
void cim_xchacha_seal(uint8_t *ct, const cim_key *k, const uint8_t *ad,
		      size_t adlen, const uint8_t nonce[CIM_NONCE_BYTES],
		      const uint8_t *plain, size_t plen);
int cim_xchacha_open(uint8_t *plain, const cim_key *k, const uint8_t *ad,
		     size_t adlen, const uint8_t nonce[CIM_NONCE_BYTES],
		     const uint8_t *ct, size_t ctlen);

/* The AEAD as cim-events uses it, bound to an AD. Seal writes plen + CIM_TAG_BYTES bytes to ct (ciphertext
 * then tag) of plain under k, bound to ad; ct and plain may not overlap.
 * Open checks the tag of ct (ctlen >= CIM_TAG_BYTES) and writes
 * ctlen - CIM_TAG_BYTES bytes of plaintext to plain, which it wipes on
 * failure. Both return 0, or -1 with a sentence in err (refused AD, bad
 * tag, no memory); no message holds a byte of a key or a plaintext. */
int cim_aead_seal(uint8_t *ct, const cim_key *k, const cim_ad *ad,
		  const uint8_t nonce[CIM_NONCE_BYTES], const uint8_t *plain,
		  size_t plen, char *err, size_t errsz);
int cim_aead_open(uint8_t *plain, const cim_key *k, const cim_ad *ad,
		  const uint8_t nonce[CIM_NONCE_BYTES], const uint8_t *ct,
		  size_t ctlen, char *err, size_t errsz);

/* ---- values: event data and snapshot state ------------------------------- */

/* Appends to out the encrypted value of v: the nonce (given, or random when
 * nonce is NULL), then the ciphertext and tag of v's canonical DAG-CBOR
 * (nested at most max_depth). The caller puts out's new bytes in a block
 * (cim_event_block.enc_data, cim_snapshot_block.enc_state). 0, or -1 with
 * err set (a value the DAG-CBOR writer refuses, refused AD, no memory) and
 * out as it was. The plaintext encoding is wiped. */
int cim_value_encrypt(cbuf *out, const cim_key *k, const cim_ad *ad,
		      const json_t *v, const uint8_t *nonce, char *err,
		      size_t errsz);

/* The same for a value already encoded: plain must be the canonical
 * DAG-CBOR of one value (not checked here; cim_value_decrypt checks it on
 * the way back). */
int cim_value_encrypt_cbor(cbuf *out, const cim_key *k, const cim_ad *ad,
			   const uint8_t *plain, size_t plen,
			   const uint8_t *nonce, char *err, size_t errsz);

/* Decrypts enc (nonce, ciphertext, tag: at least CIM_ENC_OVERHEAD bytes)
 * and appends the plaintext to plain, only after checking it is exactly one
 * strict DAG-CBOR value nested at most CIM_MAX_DEPTH. 0, or -1 with err set
 * (too short, does not authenticate: wrong key, wrong place or altered
 * bytes; plaintext not valid DAG-CBOR; no memory) and plain as it was, with
 * any plaintext written on the way wiped. */
int cim_value_decrypt(cbuf *plain, const cim_key *k, const cim_ad *ad,
		      const uint8_t *enc, size_t len, char *err, size_t errsz);

/* cim_value_decrypt, then the value as JSON (a new reference in *out), read
 * as the rest of proto reads DAG-CBOR (cim_cbor_read_json). */
int cim_value_decrypt_json(json_t **out, const cim_key *k, const cim_ad *ad,
			   const uint8_t *enc, size_t len, char *err,
			   size_t errsz);

/* cim_value_decrypt, then the value as JSON text appended to text, exactly
 * as cim_cbor_read_json_text writes it (what cim_event_write_json_as takes
 * as the shown data). The plaintext is wiped; out as it was on failure. */
int cim_value_decrypt_text(cbuf *text, const cim_key *k, const cim_ad *ad,
			   const uint8_t *enc, size_t len, char *err,
			   size_t errsz);

#endif
