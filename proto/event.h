/*
 * event.h: the event block, the unit that is stored and hashed.
 *
 * One DAG-CBOR map with exactly eleven keys (see docs/protocol.md), in
 * canonical order: data, prev, version, event_id, metadata, timestamp,
 * event_type, aggregate_id, causation_id, aggregate_type, correlation_id.
 */
#ifndef CIM_PROTO_EVENT_H
#define CIM_PROTO_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "cid.h"

/* The reserved event type of the last event of a forgotten aggregate
 * (docs/protocol.md section 15): appended by forget only. */
#define CIM_FORGOTTEN_TYPE "CimForgotten"

typedef struct cim_event_block {
	char *aggregate_type;
	char *aggregate_id;
	uint64_t version;
	char *event_type;
	char *event_id;
	char *correlation_id;
	char *causation_id;
	char *timestamp;
	json_t *metadata; /* an object whose values are all strings */
	json_t *data;     /* any JSON value */
	bool has_prev;    /* false: prev is null (version 1) */
	cim_cid prev;
	/* The three ids may hold U+0000: their lengths in bytes. To encode,
	 * 0 means "up to the first NUL" (strlen), which is also right for "";
	 * decode always sets them (and NUL-terminates every text). */
	size_t event_id_len;
	size_t correlation_id_len;
	size_t causation_id_len;
	/* Encoding only: when not NULL, data is written as a CBOR byte string
	 * holding these enc_data_len bytes (an encrypted value: nonce,
	 * ciphertext, tag; proto/crypt.h) and the data field is not read.
	 * cim_event_decode leaves it NULL: it reads such data, like any
	 * byte string, in its DAG-JSON form {"/": {"bytes": "<base64>"}}. */
	const uint8_t *enc_data;
	size_t enc_data_len;
} cim_event_block;

/* A checked block seen in place: every pointer points into the checked
 * buffer and lives as long as it. Texts are not NUL-terminated; the three
 * ids may hold U+0000, the types, the aggregate id and the timestamp do
 * not. data and metadata are the raw DAG-CBOR bytes of those values. */
typedef struct cim_event_view {
	const char *aggregate_type;
	size_t aggregate_type_len;
	const char *aggregate_id;
	size_t aggregate_id_len;
	const char *event_type;
	size_t event_type_len;
	const char *event_id;
	size_t event_id_len;
	const char *correlation_id;
	size_t correlation_id_len;
	const char *causation_id;
	size_t causation_id_len;
	const char *timestamp;
	size_t timestamp_len;
	uint64_t version;
	bool has_prev; /* false: prev is null (version 1) */
	cim_cid prev;
	const uint8_t *data;
	size_t data_len;
	const uint8_t *metadata;
	size_t metadata_len;
} cim_event_view;

/* Appends the block's canonical encoding to out. The fields are only read.
 * Returns 0, or -1 with a sentence in err (bad metadata value, data too
 * deep, no memory). */
int cim_event_encode(const cim_event_block *ev, cbuf *out, char *err,
		     size_t errsz);

/* Decodes a stored block strictly: exactly the eleven keys, each of its
 * type, canonical encoding throughout, version >= 1, prev null exactly at
 * version 1. On success every field is owned by ev (free with
 * cim_event_block_free); on failure ev is left empty and err says why. */
int cim_event_decode(const uint8_t *p, size_t len, cim_event_block *ev,
		     char *err, size_t errsz);

/* Checks a stored block by exactly the rules of cim_event_decode (the same
 * blocks pass, with the same message in err when they do not) without
 * allocating anything, and fills *v with where its fields are in p.
 * Returns 0, or -1 with err set (*v is then unspecified). */
int cim_event_check(const uint8_t *p, size_t len, cim_event_view *v,
		    char *err, size_t errsz);

/* Appends to out the text cim_json_write(out, cim_event_to_json(ev, cid,
 * seq)) appends for ev = the block p decoded by cim_event_decode, byte for
 * byte, straight from the block (no jansson values). A block that
 * cim_event_check refuses is refused here too. Returns 0, or -1 with err
 * set (refused block, or no memory) and out left as it was. */
int cim_event_write_json(cbuf *out, const uint8_t *p, size_t len,
			 const cim_cid *cid, uint64_t seq, char *err,
			 size_t errsz);

/* Adds "seal": {"key": key, "sig": sig} to the event that ends out (as
 * cim_event_write_json wrote it: its closing brace gives way) when key and
 * sig, the Cim-Seal-Key and Cim-Seal header texts of its message (NULL
 * when absent), are a well-formed seal: a public-key text and 88
 * characters of base64 (not verified: validate and the subscriptions
 * verify). Nothing is added otherwise. Returns 0, or -1 (no memory; out
 * left as it was). */
int cim_event_json_add_seal(cbuf *out, const char *key, const char *sig);

/* How a reply shows an event's data. */
typedef enum cim_show {
	CIM_SHOW_STORED,    /* the data as stored */
	CIM_SHOW_DECRYPTED, /* a given value in its place, and "encrypted": true */
	CIM_SHOW_FORGOTTEN  /* "data": null, and "forgotten": true */
} cim_show;

/* cim_event_write_json, with the data shown as show says: for
 * CIM_SHOW_DECRYPTED, data[0..data_len) is written as the value of "data"
 * exactly as given (JSON text, as cim_value_decrypt_text makes it; not
 * checked here); for the other two, data is not read. The block is checked
 * exactly as cim_event_write_json checks it, but its stored data is not
 * turned into text. The flag follows "data": ..."data":<v>,"encrypted":true,
 * "prev":... Returns as cim_event_write_json does. */
int cim_event_write_json_as(cbuf *out, const uint8_t *p, size_t len,
			    const cim_cid *cid, uint64_t seq, cim_show show,
			    const char *data, size_t data_len, char *err,
			    size_t errsz);

/* True when the checked block's data (v->data) is a CBOR byte string, the
 * form of an encrypted aggregate's data; then *enc and *enc_len (either
 * may be NULL) give the string's contents, the encrypted value. */
bool cim_event_encrypted(const cim_event_view *v, const uint8_t **enc,
			 size_t *enc_len);

/* Frees what cim_event_decode allocated and zeroes ev. */
void cim_event_block_free(cim_event_block *ev);

/* The event as a reply shows it: the block's fields with prev as text or
 * null, plus "cid" and "seq". NULL when memory runs out. */
json_t *cim_event_to_json(const cim_event_block *ev, const cim_cid *cid,
			  uint64_t seq);

/* cim_event_to_json with the data shown as show says (as
 * cim_event_write_json_as): for CIM_SHOW_DECRYPTED, data (a JSON value,
 * which gets a new reference) in place of ev->data, plus "encrypted": true;
 * for CIM_SHOW_FORGOTTEN, null plus "forgotten": true. The two writers give
 * the same text for the same event. */
json_t *cim_event_to_json_as(const cim_event_block *ev, const cim_cid *cid,
			     uint64_t seq, cim_show show, json_t *data);

#endif
