/*
 * test_vectors.c: our event blocks and CIDs against independent vectors.
 *
 * tests/vectors/events.json is made by tests/vectors/make-vectors.mjs with
 * the reference JavaScript IPLD implementation (@ipld/dag-cbor,
 * multiformats). For every event case this rebuilds the block from the JSON
 * fields (data from data_json, prev from its CID text), encodes it with
 * cim_event_encode and compares the bytes with block_hex and the CID with
 * cid; then decodes block_hex with cim_event_decode and checks every field
 * comes back, re-encodes it to the same bytes and shows it as a reply. The
 * "cids" pairs are checked both ways between binary and text.
 *
 * The file is found at $CIM_TEST_VECTORS/events.json, or else at
 * tests/vectors/events.json relative to the working directory.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cid.h"
#include "dagcbor.h"
#include "event.h"
#include "vectors.h"

/* Lower-case hex of p, in a new string. */
static char *vec_hex(const uint8_t *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *out = malloc(2 * len + 1);

	cr_assert_not_null(out);
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
	return out;
}

/* Where two hex strings first differ, in bytes (for failure messages). */
static size_t vec_first_diff(const char *a, const char *b)
{
	size_t i = 0;

	while (a[i] != '\0' && a[i] == b[i])
		i++;
	return i / 2;
}

static const char *vec_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	cr_assert_not_null(s, "vector field \"%s\" is not a string", key);
	return s;
}

/* A string field that may hold U+0000, and its length. */
static char *vec_strn(const json_t *obj, const char *key, size_t *len)
{
	const json_t *v = json_object_get(obj, key);

	cr_assert(json_is_string(v), "vector field \"%s\" is not a string", key);
	*len = json_string_length(v);
	return (char *)json_string_value(v);
}

static bool vec_same_id(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* The event block of a case, built from its JSON fields. The strings and
 * metadata are borrowed from the case; *data is a new reference the
 * caller frees. */
static void vec_build(const json_t *c, cim_event_block *ev, json_t **data)
{
	const char *name = vec_str(c, "name");
	const json_t *blk = json_object_get(c, "block");
	const json_t *prev, *ver;
	json_error_t jerr;

	cr_assert(json_is_object(blk), "%s: no block object", name);
	memset(ev, 0, sizeof *ev);
	ev->aggregate_type = (char *)vec_str(blk, "aggregate_type");
	ev->aggregate_id = (char *)vec_str(blk, "aggregate_id");
	ev->event_type = (char *)vec_str(blk, "event_type");
	ev->event_id = vec_strn(blk, "event_id", &ev->event_id_len);
	ev->correlation_id = vec_strn(blk, "correlation_id",
				      &ev->correlation_id_len);
	ev->causation_id = vec_strn(blk, "causation_id", &ev->causation_id_len);
	ev->timestamp = (char *)vec_str(blk, "timestamp");
	ver = json_object_get(blk, "version");
	cr_assert(json_is_integer(ver) && json_integer_value(ver) >= 1,
		  "%s: bad version", name);
	ev->version = (uint64_t)json_integer_value(ver);
	ev->metadata = json_object_get(blk, "metadata");
	cr_assert(json_is_object(ev->metadata), "%s: bad metadata", name);

	*data = cim_json_read(vec_str(c, "data_json"),
			      strlen(vec_str(c, "data_json")), JSON_DECODE_ANY,
			      &jerr);
	cr_assert_not_null(*data, "%s: data_json does not parse: %s", name,
			   jerr.text);
	ev->data = *data;

	prev = json_object_get(blk, "prev");
	if (json_is_null(prev)) {
		ev->has_prev = false;
	} else {
		cr_assert(json_is_string(prev), "%s: bad prev", name);
		cr_assert_eq(cim_cid_from_text(&ev->prev, json_string_value(prev)),
			     0, "%s: cim_cid_from_text refuses prev %s", name,
			     json_string_value(prev));
		ev->has_prev = true;
	}
}

static uint64_t vec_hash(const json_t *c)
{
	uint64_t mh = 0;
	const char *hash = vec_str(c, "hash");

	cr_assert_eq(cim_hash_from_name(hash, &mh), 0, "%s: unknown hash %s",
		     vec_str(c, "name"), hash);
	return mh;
}

Test(vectors, file_covers_the_cases)
{
	json_t *root = t_load_vectors("events.json", "events");

	cr_expect_geq(json_array_size(json_object_get(root, "events")), 16);
	cr_expect_geq(json_array_size(json_object_get(root, "cids")), 3);
	json_decref(root);
}

/* The reference implementation's case with U+0000 in every kind of place
 * is there: ids, metadata keys and values, data keys and values. */
Test(vectors, a_case_holds_nul_everywhere)
{
	json_t *root = t_load_vectors("events.json", "events");
	json_t *events = json_object_get(root, "events"), *c, *nul = NULL;
	size_t i, n;

	json_array_foreach(events, i, c)
		if (strcmp(vec_str(c, "name"), "nul-strings") == 0)
			nul = c;
	cr_assert_not_null(nul, "no nul-strings case");
	const json_t *blk = json_object_get(nul, "block");
	const char *id = vec_strn(blk, "event_id", &n);
	cr_expect(n == 7 && memcmp(id, "\0evt\0" "1\0", 7) == 0);
	cr_expect(strlen(vec_strn(blk, "causation_id", &n)) < n);
	cr_expect(json_object_getn(json_object_get(blk, "metadata"), "k\0", 2));
	cr_expect(json_object_getn(json_object_get(blk, "data"), "\0a", 2));
	cr_expect(strstr(vec_str(nul, "block_hex"), "6100") != NULL,
		  "\"\\u0000\" as CBOR text 61 00");
	json_decref(root);
}

Test(vectors, encode_matches_reference_bytes_and_cid)
{
	json_t *root = t_load_vectors("events.json", "events");
	json_t *events = json_object_get(root, "events");
	size_t i;
	json_t *c;

	json_array_foreach(events, i, c) {
		const char *name = vec_str(c, "name");
		const char *want_hex = vec_str(c, "block_hex");
		cim_event_block ev;
		json_t *data = NULL;
		cbuf out = CBUF_INIT;
		char err[256] = "";
		char *got_hex;
		cim_cid cid;
		char text[CIM_CID_TEXT_MAX];
		uint64_t mh = vec_hash(c), codec = 0, got_mh = 0;

		vec_build(c, &ev, &data);
		if (cim_event_encode(&ev, &out, err, sizeof err) != 0) {
			cr_expect_fail("%s: cim_event_encode failed: %s", name,
				       err);
			cbuf_free(&out);
			json_decref(data);
			continue;
		}
		got_hex = vec_hex(out.p, out.len);
		cr_expect_str_eq(got_hex, want_hex,
				 "%s: block bytes differ from the reference "
				 "at byte %zu", name,
				 vec_first_diff(got_hex, want_hex));

		cr_assert_eq(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, mh, out.p,
					     out.len), 0,
			     "%s: cim_cid_compute failed", name);
		cim_cid_to_text(&cid, text);
		cr_expect_str_eq(text, vec_str(c, "cid"), "%s: CID differs",
				 name);
		cr_expect_eq(cim_cid_info(&cid, &codec, &got_mh), 0, "%s", name);
		cr_expect_eq(codec, CIM_CODEC_DAG_CBOR, "%s: codec", name);
		cr_expect_eq(got_mh, mh, "%s: multihash code", name);

		/* The reference bytes themselves hash to the reference CID. */
		{
			size_t n;
			uint8_t *ref = t_unhex(want_hex, &n);
			cim_cid want;

			cr_assert_eq(cim_cid_from_text(&want, vec_str(c, "cid")),
				     0, "%s: cid text refused", name);
			cr_expect(cim_cid_matches(&want, ref, n),
				  "%s: cim_cid_matches rejects the reference "
				  "block", name);
			free(ref);
		}

		free(got_hex);
		cbuf_free(&out);
		json_decref(data);
	}
	json_decref(root);
}

Test(vectors, decode_gives_the_fields_back)
{
	json_t *root = t_load_vectors("events.json", "events");
	json_t *events = json_object_get(root, "events");
	size_t i;
	json_t *c;

	json_array_foreach(events, i, c) {
		const char *name = vec_str(c, "name");
		cim_event_block want, got;
		json_t *data = NULL;
		uint8_t *bytes;
		size_t n;
		char err[256] = "";
		cbuf again = CBUF_INIT;

		vec_build(c, &want, &data);
		bytes = t_unhex(vec_str(c, "block_hex"), &n);
		memset(&got, 0, sizeof got);
		if (cim_event_decode(bytes, n, &got, err, sizeof err) != 0) {
			cr_expect_fail("%s: cim_event_decode refuses the "
				       "reference block: %s", name, err);
			free(bytes);
			json_decref(data);
			continue;
		}

		cr_expect_str_eq(got.aggregate_type, want.aggregate_type, "%s",
				 name);
		cr_expect_str_eq(got.aggregate_id, want.aggregate_id, "%s", name);
		cr_expect_eq(got.version, want.version, "%s: version", name);
		cr_expect_str_eq(got.event_type, want.event_type, "%s", name);
		cr_expect(vec_same_id(got.event_id, got.event_id_len,
				      want.event_id, want.event_id_len), "%s",
			  name);
		cr_expect(vec_same_id(got.correlation_id, got.correlation_id_len,
				      want.correlation_id,
				      want.correlation_id_len), "%s", name);
		cr_expect(vec_same_id(got.causation_id, got.causation_id_len,
				      want.causation_id, want.causation_id_len),
			  "%s", name);
		cr_expect_str_eq(got.timestamp, want.timestamp, "%s", name);
		cr_expect(cim_json_same(got.metadata, want.metadata),
			  "%s: metadata differs", name);
		if (!cim_json_same(got.data, want.data)) {
			char *g = json_dumps(got.data, JSON_ENCODE_ANY |
					     JSON_COMPACT);

			cr_expect_fail("%s: data differs: got %s, want %s", name,
				       g ? g : "(null)",
				       vec_str(c, "data_json"));
			free(g);
		}
		cr_expect_eq(got.has_prev, want.has_prev, "%s: has_prev", name);
		if (got.has_prev && want.has_prev)
			cr_expect(cim_cid_equal(&got.prev, &want.prev),
				  "%s: prev differs", name);

		/* Decoding then encoding gives the same bytes. */
		cr_expect_eq(cim_event_encode(&got, &again, err, sizeof err), 0,
			     "%s: re-encode failed: %s", name, err);
		cr_expect(again.len == n && memcmp(again.p, bytes, n) == 0,
			  "%s: decode + encode does not give the block back",
			  name);

		cbuf_free(&again);
		cim_event_block_free(&got);
		free(bytes);
		json_decref(data);
	}
	json_decref(root);
}

Test(vectors, reply_json_shows_the_block)
{
	json_t *root = t_load_vectors("events.json", "events");
	json_t *events = json_object_get(root, "events");
	size_t i;
	json_t *c;

	json_array_foreach(events, i, c) {
		const char *name = vec_str(c, "name");
		const json_t *blk = json_object_get(c, "block");
		cim_event_block ev;
		json_t *data = NULL, *reply, *v;
		cim_cid cid;
		const char *key;
		size_t klen;

		vec_build(c, &ev, &data);
		cr_assert_eq(cim_cid_from_text(&cid, vec_str(c, "cid")), 0,
			     "%s", name);
		reply = cim_event_to_json(&ev, &cid, 1000 + i);
		cr_assert_not_null(reply, "%s: cim_event_to_json", name);
		json_object_keylen_foreach((json_t *)blk, key, klen, v) {
			json_t *r = json_object_getn(reply, key, klen);

			cr_expect(r != NULL && (json_is_string(v) ?
				  vec_same_id(json_string_value(r),
					      json_string_length(r),
					      json_string_value(v),
					      json_string_length(v)) :
				  cim_json_same(r, v)),
				  "%s: reply field \"%s\" differs", name, key);
		}
		cr_expect_str_eq(json_string_value(json_object_get(reply, "cid")) ?
				 json_string_value(json_object_get(reply, "cid")) :
				 "(none)", vec_str(c, "cid"), "%s: reply cid", name);
		cr_expect_eq(json_integer_value(json_object_get(reply, "seq")),
			     (json_int_t)(1000 + i), "%s: reply seq", name);
		json_decref(reply);
		json_decref(data);
	}
	json_decref(root);
}

Test(vectors, cids_binary_and_text)
{
	json_t *root = t_load_vectors("events.json", "cids");
	json_t *cids = json_object_get(root, "cids");
	size_t i;
	json_t *c;

	json_array_foreach(cids, i, c) {
		const char *name = vec_str(c, "name");
		const char *want_text = vec_str(c, "text");
		size_t n;
		uint8_t *bin = t_unhex(vec_str(c, "hex"), &n);
		cim_cid a, b;
		char text[CIM_CID_TEXT_MAX];
		char *h;

		/* binary -> text */
		cr_assert_eq(cim_cid_from_bytes(&a, bin, n), 0,
			     "%s: cim_cid_from_bytes refuses it", name);
		cr_expect_eq(cim_cid_to_text(&a, text), strlen(want_text),
			     "%s: text length", name);
		cr_expect_str_eq(text, want_text, "%s: text form", name);

		/* text -> binary */
		cr_assert_eq(cim_cid_from_text(&b, want_text), 0,
			     "%s: cim_cid_from_text refuses it", name);
		h = vec_hex(b.b, b.len);
		cr_expect_str_eq(h, vec_str(c, "hex"), "%s: binary form", name);
		cr_expect(cim_cid_equal(&a, &b), "%s: not equal both ways",
			  name);

		free(h);
		free(bin);
	}
	json_decref(root);
}

Test(vectors, empty_map_cid)
{
	static const uint8_t empty_map[] = {0xa0};
	cim_cid cid;
	char text[CIM_CID_TEXT_MAX];

	cr_assert_eq(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
				     empty_map, sizeof empty_map), 0);
	cim_cid_to_text(&cid, text);
	cr_expect_str_eq(text,
		"bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua");
	cr_assert_eq(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR,
				     CIM_MH_BLAKE2B_256, empty_map,
				     sizeof empty_map), 0);
	cim_cid_to_text(&cid, text);
	cr_expect_str_eq(text,
		"bafy2bzacedjwujqzuzzesrqe4en3ir6lz5jdd2psxis4efuro7w4sqn5kcwwy");
}
