/*
 * fuzz_request.c: libFuzzer target for the JSON request decoders of
 * proto/request.h.
 *
 * Each input is a request body handed to every decoder: append (with the
 * daemon's default limits and with tight ones), get (default limits and
 * tight ones), the by_type body as the daemon reads it (the generic
 * helpers cim_json_only_keys and cim_json_get_u64), the empty request, and
 * snapshot.save. Then:
 *
 *   - a refusal fills the error with one of the request codes
 *     (invalid_request, invalid_argument, payload_too_large) and a
 *     sentence, and leaves the outputs empty; a body that is not a JSON
 *     object is refused by every decoder with the same error;
 *   - an accepted append has 1..max_events events, each with a valid
 *     event_type, data within the depth limit, ids of at most 128 bytes
 *     (any text, U+0000 included) and no repeated event_id, metadata an
 *     object of strings,
 *     and a consistent expectation; tight limits accept only what the
 *     default ones do, and refuse for the right reason;
 *   - every accepted event goes through what the daemon does with it: it
 *     is encoded as an event block (which must succeed), and that block
 *     must decode and check, with the same fields (ids with their NULs),
 *     the same data and metadata (the same canonical bytes), and the same
 *     reply JSON from both reply writers;
 *   - get's from_version and limit are in range and follow the body;
 *   - an accepted snapshot.save has version >= 1 and state within the
 *     depth limit, and its snapshot block encodes and decodes back;
 *   - an accepted decrypt request (proto/decrypt.h) is what the full
 *     (jansson) reader gives too, and has 1..max items, each
 *     with a valid aggregate_id, an event_id of at most 128 bytes and data
 *     that is strict base64 of 40..max_enc bytes (encoding them again
 *     gives the same text); tight limits accept only what the default ones
 *     do; each item goes through the daemon's decryption under a fixed key,
 *     which must refuse it cleanly or give one DAG-CBOR value;
 *   - an accepted validate body gives at most the keys allowed, each the
 *     key its text in the body names;
 *   - an accepted restore body (for order/order-17, with the daemon's
 *     default limits and tight ones) holds 1..max blocks, each a checked
 *     event block of that aggregate within the byte limit, hashed to the
 *     CID given, versions one apart, each prev the CID of the block before
 *     and hashed as the store hashes; every seal names one of the blocks,
 *     one each, and verifies; a key block is this aggregate's. A refusal
 *     names a field, leaves the output empty, and tight limits accept no
 *     more than the default ones.
 *
 * A broken rule aborts, so libFuzzer reports it as a crash.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cid.h"
#include "crypt.h"
#include "dagcbor.h"
#include "decrypt.h"
#include "event.h"
#include "ids.h"
#include "jsontext.h"
#include "keys.h"
#include "request.h"
#include "restore.h"
#include "seal.h"
#include "snapshot.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,\
				__LINE__, #c);                                \
			abort();                                              \
		}                                                             \
	} while (0)

/* A failed call whose err must be reported before aborting. */
#define CHECK_OK(call, err)                                                   \
	do {                                                                  \
		if ((call) != 0) {                                            \
			fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__,   \
				__LINE__, #call, (err));                      \
			abort();                                              \
		}                                                             \
	} while (0)

/* The daemon's defaults (daemon/config.c) and tight ones. */
#define MAX_EVENTS 1000
#define GET_LIMIT 1000
#define GET_MAX_LIMIT 10000
#define TIGHT_EVENTS 2
#define TIGHT_DEPTH 3

static const char TIMESTAMP[] = "2026-11-22T10:00:00.123456789Z";
static const char UUID[] = "01a20528-40f1-7a8c-85f5-d4cbbbc43479";
static const char PREV_TEXT[] =
    "bafy2bzacecvug5ndfzojfvwcxnyiiozj76e4jbbbbs46retog3mimw2lyyork";

static cim_cid prev0;
static cim_key *fixed_key; /* decrypt: bytes 0x80..0x9f */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* jansson seeds its hash tables from /dev/urandom: fix the seed so a
	 * run is the same each time */
	json_object_seed(1);
	if (cim_cid_from_text(&prev0, PREV_TEXT) != 0)
		abort();
	/* a fixed key: the seeds hold data encrypted under it (README.md) */
	fixed_key = cim_key_alloc(1);
	if (fixed_key == NULL)
		abort();
	for (size_t i = 0; i < sizeof(fixed_key->b); i++)
		fixed_key->b[i] = (uint8_t)(0x80 + i);
	return 0;
}

/* ---- errors ----------------------------------------------------------------- */

static void
check_refusal(const cim_perr *e)
{
	CHECK(e->code == CIM_ERR_INVALID_REQUEST ||
	      e->code == CIM_ERR_INVALID_ARGUMENT ||
	      e->code == CIM_ERR_PAYLOAD_TOO_LARGE);
	CHECK(strnlen(e->msg, sizeof(e->msg)) < sizeof(e->msg));
	CHECK(e->msg[0] != '\0');
	CHECK(strnlen(e->field, sizeof(e->field)) < sizeof(e->field));
}

static bool
same_perr(const cim_perr *a, const cim_perr *b)
{
	return a->code == b->code && strcmp(a->field, b->field) == 0 &&
	       strcmp(a->msg, b->msg) == 0;
}

/* ---- append ------------------------------------------------------------------ */

static bool
id_ok(const char *s, size_t n)
{
	return s == NULL ? n == 0 : n <= CIM_EVENT_ID_MAX && s[n] == '\0';
}

static bool
strings_only(const json_t *o)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o))
		return false;
	json_object_foreach((json_t *)o, key, v)
		if (!json_is_string(v))
			return false;
	return true;
}

static void
check_append(const cim_append_req *ar, const cim_limits *lim)
{
	CHECK(json_is_object(ar->root));
	CHECK(ar->n >= 1 && ar->n <= lim->max_events);
	CHECK(ar->events != NULL);
	CHECK(json_array_size(json_object_get(ar->root, "events")) == ar->n);
	switch (ar->expect) {
	case CIM_EXPECT_KIND_ANY:
	case CIM_EXPECT_KIND_EXISTS:
		break;
	case CIM_EXPECT_KIND_NO_STREAM:
		CHECK(ar->expected_version == 0);
		break;
	case CIM_EXPECT_KIND_EXACT:
		CHECK(ar->expected_version >= 1);
		break;
	default:
		CHECK(!"unknown expectation");
	}
	for (size_t i = 0; i < ar->n; i++) {
		const cim_append_event_req *r = &ar->events[i];

		CHECK(r->event_type != NULL && cim_token_type_ok(r->event_type));
		CHECK(r->data != NULL);
		CHECK(cim_json_depth(r->data, lim->max_depth) <= lim->max_depth);
		CHECK(id_ok(r->event_id, r->event_id_len));
		CHECK(id_ok(r->correlation_id, r->correlation_id_len));
		CHECK(id_ok(r->causation_id, r->causation_id_len));
		CHECK(r->metadata == NULL || strings_only(r->metadata));
		for (size_t k = 0; k < i && r->event_id != NULL; k++)
			CHECK(ar->events[k].event_id == NULL ||
			      ar->events[k].event_id_len != r->event_id_len ||
			      memcmp(ar->events[k].event_id, r->event_id,
				     r->event_id_len) != 0);
	}
}

static bool
eq_text(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* An id of the block against what was decoded: all of it, NULs too. */
static bool
eq_id(const char *a, size_t alen, const char *b, size_t blen)
{
	return a != NULL && b != NULL && alen == blen &&
	       memcmp(a, b, alen) == 0;
}

/* The same value: the same canonical bytes (json_equal cuts keys at a
 * NUL). */
static bool
eq_value(const json_t *a, const json_t *b)
{
	cbuf x = CBUF_INIT, y = CBUF_INIT;
	bool same = cim_cbor_write_json(&x, a, CIM_MAX_DEPTH, NULL, 0) == 0 &&
		    cim_cbor_write_json(&y, b, CIM_MAX_DEPTH, NULL, 0) == 0 &&
		    x.len == y.len && memcmp(x.p, y.p, x.len) == 0;

	cbuf_free(&x);
	cbuf_free(&y);
	return same;
}

/* What build_messages in daemon/append.c does with each event, then the
 * readers on the block it makes. */
static void
append_blocks(const cim_append_req *ar)
{
	json_t *empty = json_object();
	bool has_prev = false;
	cim_cid prev = prev0;
	char err[256];

	CHECK(empty != NULL);
	for (size_t i = 0; i < ar->n; i++) {
		const cim_append_event_req *r = &ar->events[i];
		const char *eid = r->event_id != NULL ? r->event_id : UUID;
		size_t eidlen = r->event_id != NULL ? r->event_id_len
						    : strlen(UUID);
		cim_event_block b = {
			.aggregate_type = (char *)"order",
			.aggregate_id = (char *)"order-17",
			.version = (uint64_t)i + 1,
			.event_type = (char *)r->event_type,
			.event_id = (char *)eid,
			.correlation_id = (char *)(r->correlation_id ?
						   r->correlation_id : eid),
			.causation_id = (char *)(r->causation_id ?
						 r->causation_id : eid),
			.timestamp = (char *)TIMESTAMP,
			.metadata = r->metadata != NULL ? r->metadata : empty,
			.data = r->data,
			.has_prev = has_prev,
			.prev = prev,
			.event_id_len = eidlen,
			.correlation_id_len = r->correlation_id ?
					      r->correlation_id_len : eidlen,
			.causation_id_len = r->causation_id ?
					    r->causation_id_len : eidlen,
		};
		cbuf block = CBUF_INIT, reply = CBUF_INIT, text = CBUF_INIT;
		cim_event_block d;
		cim_event_view v;
		cim_cid cid;
		json_t *jo;

		err[0] = '\0';
		CHECK_OK(cim_event_encode(&b, &block, err, sizeof(err)), err);
		CHECK_OK(cim_event_decode(block.p, block.len, &d, err,
					  sizeof(err)), err);
		CHECK_OK(cim_event_check(block.p, block.len, &v, err,
					 sizeof(err)), err);
		CHECK(eq_text(d.aggregate_type, b.aggregate_type));
		CHECK(eq_text(d.aggregate_id, b.aggregate_id));
		CHECK(eq_text(d.event_type, b.event_type));
		CHECK(eq_id(d.event_id, d.event_id_len, b.event_id,
			    b.event_id_len));
		CHECK(eq_id(d.correlation_id, d.correlation_id_len,
			    b.correlation_id, b.correlation_id_len));
		CHECK(eq_id(d.causation_id, d.causation_id_len, b.causation_id,
			    b.causation_id_len));
		CHECK(eq_id(v.event_id, v.event_id_len, b.event_id,
			    b.event_id_len));
		CHECK(eq_text(d.timestamp, b.timestamp));
		CHECK(d.version == b.version && v.version == b.version);
		CHECK(d.has_prev == has_prev && v.has_prev == has_prev);
		CHECK(!has_prev || (cim_cid_equal(&d.prev, &prev) &&
				    cim_cid_equal(&v.prev, &prev)));
		CHECK(eq_value(d.data, r->data));
		CHECK(eq_value(d.metadata, b.metadata));

		/* the two reply writers agree byte for byte */
		CHECK(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR,
				      CIM_MH_BLAKE2B_256, block.p,
				      block.len) == 0);
		CHECK_OK(cim_event_write_json(&reply, block.p, block.len, &cid,
					      i + 1, err, sizeof(err)), err);
		jo = cim_event_to_json(&d, &cid, i + 1);
		CHECK(jo != NULL);
		CHECK(cim_json_write(&text, jo) == 0);
		CHECK(reply.len == text.len &&
		      memcmp(reply.p, text.p, text.len) == 0);

		json_decref(jo);
		cim_event_block_free(&d);
		cbuf_free(&block);
		cbuf_free(&reply);
		cbuf_free(&text);
		prev = cid;
		has_prev = true;
	}
	json_decref(empty);
}

static void
fuzz_append(const uint8_t *data, size_t size, const cim_perr *parse_err)
{
	cim_limits def = {MAX_EVENTS, CIM_MAX_DEPTH};
	cim_limits tight = {TIGHT_EVENTS, TIGHT_DEPTH};
	cim_append_req ar, at;
	cim_perr e, et;
	int rc, rct;

	memset(&e, 0, sizeof(e));
	memset(&et, 0, sizeof(et));
	rc = cim_append_req_parse(data, size, &def, &ar, &e);
	rct = cim_append_req_parse(data, size, &tight, &at, &et);
	if (rc != 0) {
		check_refusal(&e);
		CHECK(ar.root == NULL && ar.events == NULL && ar.n == 0);
		CHECK(parse_err == NULL || same_perr(&e, parse_err));
		/* tight limits accept no more than the default ones */
		CHECK(rct != 0);
	} else {
		check_append(&ar, &def);
		append_blocks(&ar);
	}
	if (rct != 0) {
		check_refusal(&et);
		CHECK(at.root == NULL && at.events == NULL && at.n == 0);
		if (rc == 0) {
			/* refused only for the limits */
			bool deep = false;

			for (size_t i = 0; i < ar.n; i++)
				if (cim_json_depth(ar.events[i].data,
						   TIGHT_DEPTH) > TIGHT_DEPTH)
					deep = true;
			if (ar.n > TIGHT_EVENTS)
				CHECK(et.code == CIM_ERR_PAYLOAD_TOO_LARGE);
			else
				CHECK(et.code == CIM_ERR_INVALID_REQUEST &&
				      deep);
		}
	} else {
		check_append(&at, &tight);
		CHECK(rc == 0 && at.n == ar.n && at.expect == ar.expect &&
		      at.expected_version == ar.expected_version);
		cim_append_req_free(&at);
	}
	if (rc == 0)
		cim_append_req_free(&ar);
}

/* ---- get, by_type, empty --------------------------------------------------- */

static void
fuzz_get(const uint8_t *data, size_t size, const json_t *root,
	 const cim_perr *parse_err, uint64_t def, uint64_t max)
{
	uint64_t from = 12345, limit = 12345;
	cim_perr e;
	json_t *v;

	memset(&e, 0, sizeof(e));
	if (cim_get_req_parse(data, size, def, max, &from, &limit, &e) != 0) {
		check_refusal(&e);
		CHECK(from == 12345 && limit == 12345);
		CHECK(parse_err == NULL || same_perr(&e, parse_err));
		return;
	}
	CHECK(root != NULL);
	CHECK(from >= 1 && limit >= 1 && limit <= max);
	v = json_object_get(root, "limit");
	CHECK(v != NULL ? (json_is_integer(v) &&
			   (uint64_t)json_integer_value(v) == limit)
			: limit == def);
	v = json_object_get(root, "from_version");
	if (v == NULL) {
		CHECK(from == 1);
	} else {
		CHECK(json_is_integer(v) && json_integer_value(v) >= 0);
		CHECK(from == (json_integer_value(v) == 0 ?
			       1 : (uint64_t)json_integer_value(v)));
	}
	CHECK(json_object_size(root) <= 2);
}

/* The by_type body exactly as daemon/read.c reads it. */
static void
fuzz_by_type(const uint8_t *data, size_t size, const cim_perr *parse_err)
{
	static const char *const allowed[] = {"after_seq", "limit", NULL};
	uint64_t after = 0, limit = GET_LIMIT;
	json_t *root;
	cim_perr e;

	memset(&e, 0, sizeof(e));
	root = cim_json_parse_request(data, size, &e);
	if (root == NULL) {
		check_refusal(&e);
		CHECK(parse_err != NULL && same_perr(&e, parse_err));
		return;
	}
	CHECK(json_is_object(root) && parse_err == NULL);
	if (cim_json_only_keys(root, allowed, &e) != 0 ||
	    cim_json_get_u64(root, "after_seq", &after, &e) != 0 ||
	    cim_json_get_u64(root, "limit", &limit, &e) != 0) {
		check_refusal(&e);
	} else {
		CHECK(json_object_size(root) <= 2);
		CHECK(after <= (uint64_t)INT64_MAX && limit <= (uint64_t)INT64_MAX);
	}
	json_decref(root);
}

static void
fuzz_empty(const uint8_t *data, size_t size, const json_t *root,
	   const cim_perr *parse_err)
{
	cim_perr e;

	memset(&e, 0, sizeof(e));
	if (cim_empty_req_parse(data, size, &e) != 0) {
		check_refusal(&e);
		CHECK(parse_err == NULL || same_perr(&e, parse_err));
		CHECK(root == NULL || json_object_size(root) > 0);
		return;
	}
	CHECK(root != NULL && json_object_size(root) == 0);
}

/* ---- snapshot.save ------------------------------------------------------------ */

static void
fuzz_snapshot(const uint8_t *data, size_t size, const json_t *root,
	      const cim_perr *parse_err)
{
	uint64_t version = 12345;
	json_t *state = (json_t *)1;
	cim_perr e;
	cim_snapshot_block s, d;
	cbuf block = CBUF_INIT;
	char err[256];

	memset(&e, 0, sizeof(e));
	if (cim_snapshot_req_parse(data, size, &version, &state, &e) != 0) {
		check_refusal(&e);
		CHECK(state == NULL && version == 12345);
		CHECK(parse_err == NULL || same_perr(&e, parse_err));
		return;
	}
	CHECK(root != NULL);
	CHECK(version >= 1 && version <= (uint64_t)INT64_MAX);
	CHECK(state != NULL);
	CHECK(json_equal(state, json_object_get(root, "state")));
	CHECK(cim_json_depth(state, CIM_MAX_DEPTH) <= CIM_MAX_DEPTH);

	/* what daemon/snapshot.c stores, read back */
	s = (cim_snapshot_block){
		.aggregate_type = (char *)"order",
		.aggregate_id = (char *)"order-17",
		.version = version,
		.event_cid = prev0,
		.timestamp = (char *)TIMESTAMP,
		.state = state,
	};
	err[0] = '\0';
	CHECK_OK(cim_snapshot_encode(&s, &block, err, sizeof(err)), err);
	CHECK_OK(cim_snapshot_decode(block.p, block.len, &d, err, sizeof(err)),
		 err);
	CHECK(d.version == version && cim_cid_equal(&d.event_cid, &prev0));
	CHECK(eq_text(d.aggregate_type, "order") &&
	      eq_text(d.aggregate_id, "order-17") &&
	      eq_text(d.timestamp, TIMESTAMP));
	CHECK(json_equal(d.state, state));
	cim_snapshot_block_free(&d);
	cbuf_free(&block);
	json_decref(state);
}

/* ---- decrypt -------------------------------------------------------------------- */

#define DECRYPT_ENC_MAX 262144 /* the daemon's max_event_bytes default */

static void
fuzz_decrypt_with(const uint8_t *data, size_t size, const json_t *root,
		  const cim_perr *parse_err, size_t max_items, size_t max_enc,
		  bool *accepted)
{
	cim_decrypt_req r;
	cim_perr e;

	memset(&e, 0, sizeof(e));
	*accepted = false;
	if (cim_decrypt_req_parse(data, size, max_items, max_enc, &r, &e) != 0) {
		check_refusal(&e);
		CHECK(r.root == NULL && r.items == NULL && r.n == 0);
		CHECK(parse_err == NULL || same_perr(&e, parse_err));
		return;
	}
	*accepted = true;
	CHECK(root != NULL);
	{
		/* the fast reader gives exactly what the full one gives */
		cim_decrypt_req f;
		cim_perr fe;
		memset(&fe, 0, sizeof(fe));
		CHECK(cim_decrypt_req_parse_full(data, size, max_items, max_enc, &f,
						 &fe) == 0);
		CHECK(f.n == r.n);
		for (size_t i = 0; i < r.n; i++) {
			CHECK(strcmp(f.items[i].aggregate_id, r.items[i].aggregate_id) == 0);
			CHECK(f.items[i].event_id_len == r.items[i].event_id_len);
			CHECK(memcmp(f.items[i].event_id, r.items[i].event_id,
				     r.items[i].event_id_len) == 0);
			CHECK(f.items[i].enc_len == r.items[i].enc_len);
			CHECK(memcmp(f.items[i].enc, r.items[i].enc, r.items[i].enc_len) == 0);
		}
		cim_decrypt_req_free(&f);
	}
	const json_t *items = json_object_get(root, "items");
	CHECK(json_is_array(items) && r.n == json_array_size(items));
	CHECK(r.n >= 1 && r.n <= max_items);
	for (size_t i = 0; i < r.n; i++) {
		const cim_decrypt_item *it = &r.items[i];
		const json_t *o = json_array_get(items, i);
		const char *b64 = json_string_value(json_object_get(o, "data"));
		char *again;
		size_t blen;

		CHECK(json_object_size(o) == 3);
		CHECK(cim_token_id_ok(it->aggregate_id));
		CHECK(it->event_id_len <= CIM_EVENT_ID_MAX);
		CHECK(it->enc_len >= CIM_ENC_OVERHEAD && it->enc_len <= max_enc);
		blen = sodium_base64_ENCODED_LEN(it->enc_len,
						 sodium_base64_VARIANT_ORIGINAL);
		again = malloc(blen);
		CHECK(again != NULL);
		sodium_bin2base64(again, blen, it->enc, it->enc_len,
				  sodium_base64_VARIANT_ORIGINAL);
		CHECK(b64 != NULL && strcmp(again, b64) == 0);
		free(again);

		/* what daemon/decrypt.c does with it */
		cbuf plain = CBUF_INIT;
		char err[256];
		cim_ad ad = cim_ad_data(it->event_id, it->event_id_len);
		if (it->event_id_len > 0 &&
		    cim_value_decrypt_text(&plain, fixed_key, &ad, it->enc,
					   it->enc_len, err, sizeof(err)) == 0)
			CHECK(plain.len > 0);
		cbuf_free(&plain);
	}
	cim_decrypt_req_free(&r);
}

static void
fuzz_decrypt(const uint8_t *data, size_t size, const json_t *root,
	     const cim_perr *parse_err)
{
	bool wide, tight;

	fuzz_decrypt_with(data, size, root, parse_err, GET_MAX_LIMIT,
			  DECRYPT_ENC_MAX, &wide);
	fuzz_decrypt_with(data, size, root, parse_err, 2, 64, &tight);
	CHECK(!tight || wide);
}

/* ---- validate -------------------------------------------------------------------- */

#define KEYS_MAX 64

static void
fuzz_validate(const uint8_t *data, size_t size, const json_t *root,
	      const cim_perr *parse_err)
{
	uint8_t keys[KEYS_MAX][CIM_KEY_BYTES], pk[CIM_KEY_BYTES];
	size_t n = 12345;
	cim_perr e;

	memset(&e, 0, sizeof(e));
	if (cim_validate_req_parse(data, size, keys, KEYS_MAX, &n, &e) != 0) {
		check_refusal(&e);
		CHECK(n == 0);
		CHECK(parse_err == NULL || same_perr(&e, parse_err));
		return;
	}
	CHECK(root != NULL && n <= KEYS_MAX);
	json_t *arr = json_object_get(root, "keys");
	CHECK(arr == NULL ? n == 0 : json_array_size(arr) == n);
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);
		CHECK(json_is_string(v));
		CHECK(cim_pubkey_from_text(pk, json_string_value(v)) == 0);
		CHECK(memcmp(pk, keys[i], CIM_KEY_BYTES) == 0);
	}
}

/* ---- restore ---------------------------------------------------------------------- */

static void
check_restore(const cim_restore_req *r, const cim_restore_limits *lim)
{
	char err[256];

	CHECK(r->n >= 1 && r->n <= lim->max_blocks);
	for (size_t i = 0; i < r->n; i++) {
		const cim_restore_block *b = &r->blocks[i];
		cim_event_view v;
		cim_cid cid;
		uint64_t codec, mh;

		CHECK(b->len <= lim->max_block_bytes);
		CHECK_OK(cim_event_check(b->p, b->len, &v, err, sizeof(err)), err);
		CHECK(v.version == b->v.version);
		CHECK(v.aggregate_type_len == 5 && memcmp(v.aggregate_type, "order", 5) == 0);
		CHECK(v.aggregate_id_len == 8 && memcmp(v.aggregate_id, "order-17", 8) == 0);
		CHECK(cim_token_type_ok(r->types[i]));
		CHECK(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, lim->hash_code, b->p, b->len) == 0);
		CHECK(cim_cid_equal(&cid, &b->cid));
		if (v.has_prev) {
			CHECK(cim_cid_info(&v.prev, &codec, &mh) == 0);
			CHECK(codec == CIM_CODEC_DAG_CBOR && mh == lim->hash_code);
		}
		if (i > 0) {
			CHECK(v.version == r->blocks[i - 1].v.version + 1);
			CHECK(v.has_prev && cim_cid_equal(&v.prev, &r->blocks[i - 1].cid));
		}
		if (b->seal >= 0) {
			CHECK((size_t)b->seal < r->nseals);
			CHECK(cim_cid_equal(&r->seals[b->seal].cid, &b->cid));
		}
	}
	for (size_t k = 0; k < r->nseals; k++) {
		size_t owners = 0;
		CHECK(cim_seal_verify(r->seals[k].pk, &r->seals[k].cid, r->seals[k].sig));
		for (size_t i = 0; i < r->n; i++)
			owners += r->blocks[i].seal == (int)k;
		CHECK(owners == 1);
	}
	if (r->has_key)
		CHECK(strcmp(r->key.aggregate_type, "order") == 0 &&
		      strcmp(r->key.aggregate_id, "order-17") == 0);
}

static void
fuzz_restore(const uint8_t *data, size_t size, const cim_perr *parse_err)
{
	cim_restore_limits def = {MAX_EVENTS, 262144, CIM_MH_BLAKE2B_256};
	cim_restore_limits tight = {TIGHT_EVENTS, 200, CIM_MH_BLAKE2B_256};
	cim_restore_req r, t;
	cim_perr e, et;
	int rc, rct;

	memset(&e, 0, sizeof(e));
	memset(&et, 0, sizeof(et));
	rc = cim_restore_req_parse(data, size, "order", "order-17", &def, &r, &e);
	rct = cim_restore_req_parse(data, size, "order", "order-17", &tight, &t, &et);
	if (rc != 0) {
		check_refusal(&e);
		CHECK(r.n == 0 && r.blocks == NULL && r.mem == NULL && !r.has_key);
		CHECK(parse_err == NULL || same_perr(&e, parse_err));
		CHECK(rct != 0);
	} else {
		check_restore(&r, &def);
	}
	if (rct != 0) {
		check_refusal(&et);
		CHECK(t.n == 0 && t.blocks == NULL);
	} else {
		check_restore(&t, &tight);
		CHECK(rc == 0 && t.n == r.n && t.nseals == r.nseals);
		cim_restore_req_free(&t);
	}
	if (rc == 0)
		cim_restore_req_free(&r);
}

/* ---- the entry point ------------------------------------------------------------ */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cim_perr pe;
	json_t *root;

	/* a body that is not a JSON object: every decoder gives this error */
	memset(&pe, 0, sizeof(pe));
	root = cim_json_parse_request(data, size, &pe);
	if (root == NULL)
		check_refusal(&pe);
	else
		CHECK(json_is_object(root));

	fuzz_append(data, size, root == NULL ? &pe : NULL);
	fuzz_get(data, size, root, root == NULL ? &pe : NULL, GET_LIMIT,
		 GET_MAX_LIMIT);
	fuzz_get(data, size, root, root == NULL ? &pe : NULL, 1, 1);
	fuzz_by_type(data, size, root == NULL ? &pe : NULL);
	fuzz_empty(data, size, root, root == NULL ? &pe : NULL);
	fuzz_snapshot(data, size, root, root == NULL ? &pe : NULL);
	fuzz_decrypt(data, size, root, root == NULL ? &pe : NULL);
	fuzz_validate(data, size, root, root == NULL ? &pe : NULL);
	fuzz_restore(data, size, root == NULL ? &pe : NULL);
	json_decref(root);
	return 0;
}
