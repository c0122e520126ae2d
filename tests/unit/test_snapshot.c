/*
 * test_snapshot.c: the snapshot block (proto/snapshot.c) against the
 * independent vectors in tests/vectors/snapshots.json (made by the reference
 * @ipld/dag-cbor), its strict decoding, the snapshot.save request, and the
 * KV keys that name aggregates.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagcbor.h"
#include "request.h"
#include "snapshot.h"
#include "vectors.h"

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	cr_assert_not_null(s, "vector field %s", k);
	return s;
}

Test(snapshot, vectors_encode_byte_for_byte_and_decode_back)
{
	json_t *root = t_load_vectors("snapshots.json", "cases"), *c;
	size_t i;
	cim_cid ecid;

	cr_assert_eq(cim_cid_from_text(&ecid, str(root, "event_cid")), 0);
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		json_t *state = json_loads(str(c, "state_json"), JSON_DECODE_ANY, NULL);
		cim_snapshot_block b = {
			.aggregate_type = (char *)str(c, "aggregate_type"),
			.aggregate_id = (char *)str(c, "aggregate_id"),
			.version = (uint64_t)json_integer_value(json_object_get(c, "version")),
			.event_cid = ecid,
			.timestamp = (char *)str(c, "timestamp"),
			.state = state,
		};
		cbuf out = CBUF_INIT;
		char err[200] = "", hex[8192], cidtext[CIM_CID_TEXT_MAX];
		cim_cid cid;
		size_t len;
		uint8_t *want = t_unhex(str(c, "block_hex"), &len);

		cr_assert_not_null(state);
		cr_assert_eq(cim_snapshot_encode(&b, &out, err, sizeof err), 0, "%s", err);
		sodium_bin2hex(hex, sizeof hex, out.p, out.len);
		cr_assert_str_eq(hex, str(c, "block_hex"), "%s", str(c, "name"));
		cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, out.p, out.len);
		cim_cid_to_text(&cid, cidtext);
		cr_assert_str_eq(cidtext, str(c, "cid"), "%s", str(c, "name"));

		cim_snapshot_block d;
		cr_assert_eq(cim_snapshot_decode(want, len, &d, err, sizeof err), 0,
			     "%s: %s", str(c, "name"), err);
		cr_assert_str_eq(d.aggregate_type, b.aggregate_type);
		cr_assert_str_eq(d.aggregate_id, b.aggregate_id);
		cr_assert_eq(d.version, b.version);
		cr_assert(cim_cid_equal(&d.event_cid, &ecid));
		cr_assert_str_eq(d.timestamp, b.timestamp);
		cr_assert(json_equal(d.state, state), "%s", str(c, "name"));
		cim_snapshot_block_free(&d);
		cbuf_free(&out);
		free(want);
		json_decref(state);
	}
	json_decref(root);
}

/* Decoding refuses blocks that are not exactly a snapshot. */
Test(snapshot, decode_refuses_other_blocks)
{
	static const char *const bad[] = {
		"{\"state\": 1, \"version\": 1}",                     /* keys missing */
		"{\"state\": 1, \"version\": 0, \"event_cid\": {\"/\": \"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy\"}, \"timestamp\": \"t\", \"aggregate_id\": \"i\", \"aggregate_type\": \"t\"}",
		"{\"state\": 1, \"version\": 1, \"event_cid\": \"not a link\", \"timestamp\": \"t\", \"aggregate_id\": \"i\", \"aggregate_type\": \"t\"}",
		"{\"state\": 1, \"version\": 1, \"event_cid\": {\"/\": \"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy\"}, \"timestamp\": 5, \"aggregate_id\": \"i\", \"aggregate_type\": \"t\"}",
		"{\"state\": 1, \"version\": 1, \"event_cid\": {\"/\": \"bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy\"}, \"timestamp\": \"t\", \"aggregate_id\": \"i\", \"aggregate_type\": \"t\", \"extra\": 1}",
		"[1, 2]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *j = json_loads(bad[i], 0, NULL);
		cbuf out = CBUF_INIT;
		char err[200] = "";
		cim_snapshot_block d;

		cr_assert_not_null(j, "case %zu", i);
		cr_assert_eq(cim_cbor_write_json(&out, j, 10, err, sizeof err), 0);
		cr_assert_eq(cim_snapshot_decode(out.p, out.len, &d, err, sizeof err), -1,
			     "case %zu decoded", i);
		cr_assert_neq(err[0], '\0', "case %zu says why", i);
		cr_assert_null(d.aggregate_type);
		cbuf_free(&out);
		json_decref(j);
	}
	/* and bytes that are not DAG-CBOR at all, or have trailing bytes */
	static const uint8_t junk[] = {0xa1, 0x61, 0x61};
	cim_snapshot_block d;
	char err[200];
	cr_assert_eq(cim_snapshot_decode(junk, sizeof junk, &d, err, sizeof err), -1);
}

Test(snapshot, save_request)
{
	static const struct {
		const char *body;
		int ok;
		cim_err code;
	} cases[] = {
		{"{\"version\": 3, \"state\": {\"a\": [1]}}", 1, CIM_ERR_OK},
		{"{\"version\": 3, \"state\": null}", 1, CIM_ERR_OK},
		{"{\"state\": 1}", 0, CIM_ERR_INVALID_REQUEST},
		{"{\"version\": 1}", 0, CIM_ERR_INVALID_REQUEST},
		{"{\"version\": 0, \"state\": 1}", 0, CIM_ERR_INVALID_ARGUMENT},
		{"{\"version\": 1.5, \"state\": 1}", 0, CIM_ERR_INVALID_REQUEST},
		{"{\"version\": 1, \"state\": 1, \"more\": 2}", 0, CIM_ERR_INVALID_REQUEST},
		{"{\"version\": 1, \"state\": 1", 0, CIM_ERR_INVALID_REQUEST},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 0;
		json_t *state = NULL;
		cim_perr e = {0};
		int rc = cim_snapshot_req_parse(cases[i].body, strlen(cases[i].body), &v,
						&state, &e);

		cr_assert_eq(rc == 0, cases[i].ok, "%s: %s", cases[i].body, e.msg);
		if (rc == 0) {
			cr_assert_eq(v, 3);
			cr_assert_not_null(state);
			json_decref(state);
		} else {
			cr_assert_eq(e.code, cases[i].code, "%s: %s", cases[i].body, e.msg);
			cr_assert_null(state);
		}
	}
}

Test(snapshot, kv_keys_are_one_to_one)
{
	static const char *const ids[] = {"a", "a:b", "a=3Ab", "x@y+z=w", ":@+=",
					  "plain-id_1"};
	char keys[6][CIM_KV_KEY_MAX];
	char type[65], id[129];

	for (size_t i = 0; i < 6; i++) {
		cr_assert_eq(cim_kv_key(keys[i], "order", ids[i]), 0);
		for (const char *c = keys[i]; *c; c++)
			cr_assert(strchr("-/_=.", *c) != NULL ||
				  (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
				  (*c >= 'A' && *c <= 'Z'),
				  "key %s holds only KV key characters", keys[i]);
		cr_assert_eq(cim_kv_key_parse(keys[i], type, id), 0, "%s", keys[i]);
		cr_assert_str_eq(type, "order");
		cr_assert_str_eq(id, ids[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(keys[i], keys[j]);
	}
	cr_assert_str_eq(keys[1], "order.a=3Ab");
	cr_assert_str_eq(keys[2], "order.a=3D3Ab");
	/* the longest id fits */
	char longid[129];
	memset(longid, '@', 128);
	longid[128] = '\0';
	char k[CIM_KV_KEY_MAX];
	cr_assert_eq(cim_kv_key(k, "t", longid), 0);
	cr_assert_eq(strlen(k), 2 + 3 * 128);
	/* what cim_kv_key never writes does not parse */
	static const char *const bad[] = {"order", ".x", "order.a=3a", "order.a=", "order.a=41",
					  "order.a:b", "order.a=2"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(cim_kv_key_parse(bad[i], type, id), -1, "%s", bad[i]);
	cr_assert_eq(cim_kv_key(k, "1bad", "x"), -1);
	cr_assert_eq(cim_kv_key(k, "t", "a b"), -1);
}
