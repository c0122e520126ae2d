/*
 * snapshot.h: the snapshot block kept in CIM-SNAPSHOTS, and the KV keys
 * that name an aggregate in a bucket.
 *
 * A snapshot is one DAG-CBOR map with exactly six keys, in canonical order:
 * state, version, event_cid (a link to the event at that version),
 * timestamp, aggregate_id, aggregate_type. Its CID is computed as an
 * event's is, and the bucket holds exactly these bytes.
 */
#ifndef CIM_PROTO_SNAPSHOT_H
#define CIM_PROTO_SNAPSHOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cid.h"

typedef struct cim_snapshot_block {
	char *aggregate_type;
	char *aggregate_id;
	uint64_t version;
	cim_cid event_cid;
	char *timestamp;
	json_t *state; /* any JSON value */
	/* Encoding only: when not NULL, state is written as a CBOR byte
	 * string holding these enc_state_len bytes (an encrypted value,
	 * proto/crypt.h) and the state field is not read (it may be NULL).
	 * cim_snapshot_decode leaves it NULL and reads such state in its
	 * DAG-JSON form; cim_snapshot_encrypted finds the bytes. */
	const uint8_t *enc_state;
	size_t enc_state_len;
} cim_snapshot_block;

/* Appends the block's canonical encoding to out (the fields are only
 * read). Returns 0, or -1 with a sentence in err (state nested deeper than
 * CIM_MAX_DEPTH, a missing field, no memory) and out as it was. */
int cim_snapshot_encode(const cim_snapshot_block *s, cbuf *out, char *err,
			size_t errsz);

/* Decodes a stored snapshot strictly: exactly the six keys, each of its
 * type, canonical DAG-CBOR, version >= 1. On success s owns its fields
 * (cim_snapshot_block_free); on failure s is empty and err says why. */
int cim_snapshot_decode(const uint8_t *p, size_t len, cim_snapshot_block *s,
			char *err, size_t errsz);

void cim_snapshot_block_free(cim_snapshot_block *s);

/* For a block that cim_snapshot_decode accepted (p, len): true when its
 * state is a CBOR byte string, the form of an encrypted aggregate's state;
 * then *enc and *enc_len (either may be NULL) give the string's contents,
 * the encrypted value, in place in p. */
bool cim_snapshot_encrypted(const uint8_t *p, size_t len,
			    const uint8_t **enc, size_t *enc_len);

/*
 * KV keys may hold only [-/_=.A-Za-z0-9], so an aggregate is named
 * "<aggregate_type>.<aggregate_id>" with each ':', '@', '+' and '=' of the
 * id written as '=' and two upper-case hex digits ("a:b" is "a=3Ab").
 * The mapping is one to one, so the key can be read back.
 */
#define CIM_KV_KEY_MAX (64 + 1 + 3 * 128 + 1)

/* Writes the key for a valid type and id into out. Returns 0, or -1 when
 * either is not a valid token. */
int cim_kv_key(char out[CIM_KV_KEY_MAX], const char *aggregate_type,
	       const char *aggregate_id);
/* Reads a key back into type and id. Returns 0, or -1 when key is not one
 * that cim_kv_key writes. */
int cim_kv_key_parse(const char *key, char type[65], char id[129]);

#endif
