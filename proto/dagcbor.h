/*
 * dagcbor.h: strict DAG-CBOR, written and read with libcbor.
 *
 * Writing: a JSON value (jansson) becomes canonical DAG-CBOR: map keys
 * sorted length-first then bytewise, shortest integer and length heads,
 * floats always 64-bit, definite lengths only. NaN and infinities cannot
 * come from JSON and are refused anyway.
 *
 * Reading: exactly one DAG-CBOR value filling the whole buffer, refusing
 * anything the writer would not produce: non-minimal heads, indefinite
 * lengths, 16- or 32-bit floats, NaN or infinity, keys out of order or
 * repeated, non-text keys, invalid UTF-8, tags other than 42, simple
 * values other than true/false/null, and nesting over the limit.
 * Links (tag 42) read as {"/": "<cid text>"} and byte strings as
 * {"/": {"bytes": "<base64, standard alphabet, no padding>"}} (the DAG-JSON
 * forms), so any block can be shown as JSON.
 *
 * Depth is counted on the value itself: a scalar has depth 0, a list or map
 * one more than its deepest member. CIM_MAX_DEPTH is the documented limit
 * for event data and snapshot state.
 */
#ifndef CIM_PROTO_DAGCBOR_H
#define CIM_PROTO_DAGCBOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cid.h"

#define CIM_MAX_DEPTH 128

/* Appends the canonical encoding of v to out. Returns 0, or -1 with a
 * sentence in err (nesting over max_depth, a non-finite real, no memory). */
int cim_cbor_write_json(cbuf *out, const json_t *v, int max_depth,
			char *err, size_t errsz);

/* Whether a and b are the same value: the same canonical bytes (false
 * when either is NULL or cannot be encoded). jansson's json_equal cuts
 * object keys at a U+0000; this does not. */
bool cim_json_same(const json_t *a, const json_t *b);

/* Depth of a JSON value as defined above. Stops counting past limit+1. */
int cim_json_depth(const json_t *v, int limit);

/* Low-level canonical heads for callers that build blocks key by key. All
 * return 0 or -1 (no memory). */
int cim_cbor_write_uint(cbuf *out, uint64_t v);
int cim_cbor_write_text(cbuf *out, const char *s, size_t len);
int cim_cbor_write_bytes(cbuf *out, const uint8_t *b, size_t len);
int cim_cbor_write_map_head(cbuf *out, size_t n);
int cim_cbor_write_array_head(cbuf *out, size_t n);
int cim_cbor_write_null(cbuf *out);
int cim_cbor_write_link(cbuf *out, const cim_cid *cid);

/* A strict pull reader over one buffer. */
typedef enum cim_cbor_kind {
	CIM_CBOR_UINT,
	CIM_CBOR_NEGINT, /* value is -1 - u */
	CIM_CBOR_BYTES,
	CIM_CBOR_TEXT,
	CIM_CBOR_ARRAY,
	CIM_CBOR_MAP,
	CIM_CBOR_TAG,
	CIM_CBOR_FLOAT,
	CIM_CBOR_FALSE,
	CIM_CBOR_TRUE,
	CIM_CBOR_NULL
} cim_cbor_kind;

typedef struct cim_cbor_item {
	cim_cbor_kind kind;
	uint64_t u;           /* uint/negint value, tag number, array/map count */
	double f;             /* float */
	const uint8_t *data;  /* bytes/text: points into the buffer */
	size_t len;           /* bytes/text length */
} cim_cbor_item;

typedef struct cim_cbor_reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	char err[160];
} cim_cbor_reader;

void cim_cbor_reader_init(cim_cbor_reader *r, const uint8_t *p, size_t len);
/* Reads the next head (and, for bytes/text, its payload) with every
 * strictness check that applies to a single item (minimal head, definite
 * length, 64-bit float, finite, valid UTF-8 text, known simple values).
 * Returns 0, or -1 with r->err set. */
int cim_cbor_next(cim_cbor_reader *r, cim_cbor_item *it);
/* Reads one whole value (any depth up to max_depth) as JSON, checking map
 * key order and links. Returns 0 and a new reference in *out, or -1. */
int cim_cbor_read_json(cim_cbor_reader *r, int max_depth, json_t **out);
/* Reads one whole value exactly as cim_cbor_read_json does, accepting and
 * refusing the same inputs with the same messages, but builds nothing and
 * allocates nothing: on success r->pos is just past the value. Returns 0,
 * or -1 with r->err set. */
int cim_cbor_skip(cim_cbor_reader *r, int max_depth);
/* Reads one whole value exactly as cim_cbor_read_json does (same accepted
 * inputs, same messages) and appends to out the text that cim_json_write
 * would write for the value cim_cbor_read_json returns, byte for byte
 * (links as {"/":"<cid>"}, byte strings as {"/":{"bytes":"<base64>"}},
 * texts and keys in full, U+0000 as \u0000). No jansson value is built. Returns 0, or -1 with r->err set and out left as it was. */
int cim_cbor_read_json_text(cim_cbor_reader *r, int max_depth, cbuf *out);

/* The state for reading a map's keys in order; start each map with
 * CIM_CBOR_KEYS_INIT. */
typedef struct cim_cbor_keys {
	const uint8_t *prev; /* the previous key (into the buffer) */
	size_t prevlen;
	uint64_t count;      /* keys read so far */
} cim_cbor_keys;

#define CIM_CBOR_KEYS_INIT {NULL, 0, 0}

/* Reads one map key as cim_cbor_read_json does: text (cim_cbor_next's
 * checks) that sorts strictly after the previous key of ks in canonical
 * order. Returns 0 with the key in *key, or -1 with r->err set. */
int cim_cbor_next_key(cim_cbor_reader *r, cim_cbor_keys *ks,
		      cim_cbor_item *key);
/* Reads one map key that must be exactly name (text, cim_cbor_next's
 * checks): how fixed-shape blocks, whose keys are known and listed in
 * canonical order, are read. Returns 0, or -1 with r->err set. */
int cim_cbor_expect_key(cim_cbor_reader *r, const char *name);
/* Reads a tag-42 link (after which the CID must be a byte string holding
 * 0x00 then a valid binary CID). Returns 0 or -1. */
int cim_cbor_read_link(cim_cbor_reader *r, cim_cid *out);

/* Convenience: the whole buffer as one JSON value. */
int cim_cbor_decode_json(const uint8_t *p, size_t len, int max_depth,
			 json_t **out, char *err, size_t errsz);

/* Length-first, then bytewise: <0, 0, >0 like memcmp. */
int cim_cbor_key_cmp(const char *a, size_t alen, const char *b, size_t blen);

#endif
