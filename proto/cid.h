/*
 * cid.h: content identifiers (CIDv1), their multihashes and their base32
 * text form.
 *
 * A CID here is kept in binary form (version, codec, multihash code,
 * digest length, digest, all varints as in the multiformats specs). Events
 * and snapshots use codec dag-cbor (0x71) with blake2b-256 (0xb220, the
 * default) or sha2-256 (0x12). The text form is multibase base32, lower
 * case, no padding, with the leading 'b'.
 */
#ifndef CIM_PROTO_CID_H
#define CIM_PROTO_CID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIM_CODEC_DAG_CBOR 0x71u
#define CIM_MH_SHA2_256 0x12u
#define CIM_MH_BLAKE2B_256 0xb220u

#define CIM_CID_MAX 80       /* longest binary CID accepted */
#define CIM_CID_TEXT_MAX 132 /* 'b' + base32 of CIM_CID_MAX bytes + NUL */

typedef struct cim_cid {
	uint8_t len;
	uint8_t b[CIM_CID_MAX];
} cim_cid;

/* sodium_init() once per process (thread-safe, cheap after the first
 * call): every libsodium user in proto/ calls it first. 0, or -1 when
 * libsodium cannot start. */
int cim_sodium_ready(void);

/* 0 when name is "blake2b-256" or "sha2-256" (code in *mh), else -1. */
int cim_hash_from_name(const char *name, uint64_t *mh);
/* "blake2b-256", "sha2-256", or NULL for other codes. */
const char *cim_hash_name(uint64_t mh);

/* Unsigned varints as multiformats defines them (LEB128, minimal, at most
 * CIM_VARINT_MAX bytes, so at most 2^63-1): the CID fields and CAR
 * section lengths. cim_varint_put writes v at p (room for CIM_VARINT_MAX
 * bytes) and returns the byte count, 0 when v > 2^63-1. cim_varint_get
 * reads one from p[*off..len) and moves *off past it; -1 when truncated,
 * too long or not minimal. */
#define CIM_VARINT_MAX 9
size_t cim_varint_put(uint8_t *p, uint64_t v);
int cim_varint_get(const uint8_t *p, size_t len, size_t *off, uint64_t *v);

/* The CIDv1 of data under codec with multihash mh (one of the two above).
 * Returns 0, or -1 for an unsupported mh. */
int cim_cid_compute(cim_cid *out, uint64_t codec, uint64_t mh,
		    const uint8_t *data, size_t len);

/* Parses a binary CIDv1 that must fill exactly len bytes (varints minimal,
 * digest length as declared). Any codec and multihash code are accepted.
 * Returns 0 or -1. */
int cim_cid_from_bytes(cim_cid *out, const uint8_t *b, size_t len);

/* Parses the binary CIDv1 at the start of b[0..len) (by the rules of
 * cim_cid_from_bytes) and puts its length in *used: how a CAR section's
 * CID is found. Returns 0 or -1. */
int cim_cid_from_prefix(cim_cid *out, const uint8_t *b, size_t len,
			size_t *used);

/* Parses the text form ('b' + lower-case base32). Returns 0 or -1. */
int cim_cid_from_text(cim_cid *out, const char *s);

/* Writes the text form and its NUL into out (at least CIM_CID_TEXT_MAX
 * bytes). Returns the text length. */
size_t cim_cid_to_text(const cim_cid *c, char *out);

bool cim_cid_equal(const cim_cid *a, const cim_cid *b);

/* The multihash code and codec of a parsed CID (0 on success, -1 if the CID
 * is not valid). */
int cim_cid_info(const cim_cid *c, uint64_t *codec, uint64_t *mh);

/* Recomputes c over data with c's own codec-independent multihash and
 * tells whether it matches. Unsupported multihash: false. */
bool cim_cid_matches(const cim_cid *c, const uint8_t *data, size_t len);

/* RFC 4648 base32, lower case, no padding. Returns the text length written
 * (out needs (len * 8 + 4) / 5 + 1 bytes, NUL included). */
size_t cim_base32_encode(const uint8_t *in, size_t len, char *out);
/* Decodes lower-case unpadded base32; -1 on a bad character, bad trailing
 * bits or if it would pass cap. *outlen gets the byte count. */
int cim_base32_decode(const char *in, size_t len, uint8_t *out, size_t cap,
		      size_t *outlen);

#endif
