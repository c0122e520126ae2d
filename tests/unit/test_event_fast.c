/*
 * test_event_fast.c: the allocation-free block paths against the decoder.
 *
 * cim_event_check must accept exactly the blocks cim_event_decode accepts
 * (and point at the same fields), and cim_event_write_json must write
 * exactly what cim_json_write(cim_event_to_json(decoded block)) writes.
 * Checked on every reference vector (tests/vectors/events.json, or
 * $CIM_TEST_VECTORS/events.json), on hand-built blocks (floats, integer
 * boundaries, escapes, unicode, NUL in strings and keys, byte strings and
 * links in data, metadata, deep nesting) and on every single-byte
 * replacement, insertion and truncation of a few valid blocks.
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
#include "jsontext.h"


/* What one comparison found, for the mutation totals. */
struct fast_tally {
	size_t cases;
	size_t accepted;
};

static json_t *fast_json(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

	cr_assert_not_null(v, "bad test JSON %s: %s", text, jerr.text);
	return v;
}

/* s[0..n) equals the C string c. */
static int fast_text_eq(const char *s, size_t n, const char *c)
{
	return c != NULL && strlen(c) == n && memcmp(s, c, n) == 0;
}

/* s[0..n) equals c[0..clen), which may hold NULs (the ids), and c is
 * NUL-terminated after them. */
static int fast_id_eq(const char *s, size_t n, const char *c, size_t clen)
{
	return c != NULL && clen == n && memcmp(s, c, n) == 0 && c[n] == '\0';
}

/* The canonical encoding of v (max_depth as given). */
static void fast_cbor(const json_t *v, int max_depth, cbuf *out)
{
	char err[160] = "";

	cbuf_reset(out);
	cr_assert_eq(cim_cbor_write_json(out, v, max_depth, err, sizeof err), 0,
		     "%s", err);
}

/* a and b encode alike (json_equal looks keys up as C strings, so it
 * cannot compare keys holding a NUL; the writer uses their lengths). */
static int fast_same(const json_t *a, const json_t *b)
{
	cbuf x = CBUF_INIT, y = CBUF_INIT;
	int same;

	fast_cbor(a, CIM_MAX_DEPTH, &x);
	fast_cbor(b, CIM_MAX_DEPTH, &y);
	same = x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
	cbuf_free(&x);
	cbuf_free(&y);
	return same;
}

/*
 * Runs decode, check and write_json over one block and asserts they agree:
 * all accept or all refuse (with one message); when they accept, the view
 * matches the decoded block and the JSON texts are byte-identical; when
 * they refuse, write_json leaves its buffer as it was.
 */
static void fast_compare(const uint8_t *p, size_t len, const cim_cid *cid,
			 uint64_t seq, const char *label, struct fast_tally *t)
{
	char derr[256] = "", cerr[256] = "", werr[256] = "";
	static const char pre[] = "[prefix,";
	cim_event_block ev;
	cim_event_view v;
	cbuf want = CBUF_INIT, got = CBUF_INIT;
	json_t *slice;
	int drc, crc, wrc;

	drc = cim_event_decode(p, len, &ev, derr, sizeof derr);
	crc = cim_event_check(p, len, &v, cerr, sizeof cerr);
	cr_assert_eq(cbuf_put(&got, pre, sizeof pre - 1), 0);
	wrc = cim_event_write_json(&got, p, len, cid, seq, werr, sizeof werr);
	if (t != NULL) {
		t->cases++;
		t->accepted += drc == 0;
	}
	cr_assert_eq(crc, drc, "%s: check %d (%s), decode %d (%s)", label, crc,
		     cerr, drc, derr);
	cr_assert_eq(wrc, drc, "%s: write_json %d (%s), decode %d (%s)", label,
		     wrc, werr, drc, derr);
	if (drc != 0) {
		cr_assert_str_eq(cerr, derr, "%s: messages differ", label);
		cr_assert_str_eq(werr, derr, "%s: messages differ", label);
		cr_assert_eq(got.len, sizeof pre - 1, "%s: out changed", label);
		cr_assert_eq(memcmp(got.p, pre, sizeof pre - 1), 0);
		cbuf_free(&got);
		return;
	}

	/* The view against the decoded block. */
	cr_assert(fast_text_eq(v.aggregate_type, v.aggregate_type_len,
			       ev.aggregate_type), "%s", label);
	cr_assert(fast_text_eq(v.aggregate_id, v.aggregate_id_len,
			       ev.aggregate_id), "%s", label);
	cr_assert(fast_text_eq(v.event_type, v.event_type_len, ev.event_type),
		  "%s", label);
	cr_assert(fast_id_eq(v.event_id, v.event_id_len, ev.event_id,
			     ev.event_id_len), "%s", label);
	cr_assert(fast_id_eq(v.correlation_id, v.correlation_id_len,
			     ev.correlation_id, ev.correlation_id_len), "%s",
		  label);
	cr_assert(fast_id_eq(v.causation_id, v.causation_id_len,
			     ev.causation_id, ev.causation_id_len), "%s", label);
	cr_assert(fast_text_eq(v.timestamp, v.timestamp_len, ev.timestamp),
		  "%s", label);
	cr_assert_eq(v.version, ev.version, "%s", label);
	cr_assert_eq(v.has_prev, ev.has_prev, "%s", label);
	if (v.has_prev)
		cr_assert(cim_cid_equal(&v.prev, &ev.prev), "%s", label);
	/* In place, right after the "data" key, and each slice exactly one
	 * value that reads back as the decoded one. */
	cr_assert(v.data == p + 6, "%s: data not after its key", label);
	cr_assert(v.metadata >= v.data + v.data_len &&
		  v.metadata + v.metadata_len <= p + len, "%s", label);
	cr_assert(v.aggregate_type >= (const char *)p &&
		  v.aggregate_type + v.aggregate_type_len <= (const char *)p + len);
	cr_assert_eq(cim_cbor_decode_json(v.data, v.data_len, CIM_MAX_DEPTH,
					  &slice, derr, sizeof derr), 0,
		     "%s: data slice: %s", label, derr);
	cr_assert(fast_same(slice, ev.data), "%s: data slice differs", label);
	json_decref(slice);
	cr_assert_eq(cim_cbor_decode_json(v.metadata, v.metadata_len, 1,
					  &slice, derr, sizeof derr), 0,
		     "%s: metadata slice: %s", label, derr);
	cr_assert(fast_same(slice, ev.metadata), "%s: metadata slice differs",
		  label);
	json_decref(slice);

	/* The texts. */
	{
		json_t *o = cim_event_to_json(&ev, cid, seq);

		cr_assert_not_null(o);
		cr_assert_eq(cbuf_put(&want, pre, sizeof pre - 1), 0);
		cr_assert_eq(cim_json_write(&want, o), 0);
		json_decref(o);
	}
	cr_assert_eq(cbuf_terminate(&want), 0);
	cr_assert_eq(cbuf_terminate(&got), 0);
	cr_assert_str_eq((char *)got.p, (char *)want.p, "%s: JSON differs",
			 label);
	cr_assert_eq(got.len, want.len, "%s: JSON lengths differ (NUL?)", label);
	cr_assert_eq(memcmp(got.p, want.p, got.len), 0, "%s", label);

	cim_event_block_free(&ev);
	cbuf_free(&want);
	cbuf_free(&got);
}

/* ---- reference vectors ----------------------------------------------------- */

Test(event_fast, vectors_agree_with_decoder)
{
	json_t *root = t_load_vectors("events.json", "events");
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(root, "events"), i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *hex = json_string_value(json_object_get(c, "block_hex"));
		const char *cidtext = json_string_value(json_object_get(c, "cid"));
		cim_event_view v;
		cim_cid cid;
		uint8_t *p;
		size_t len;

		cr_assert_not_null(name);
		cr_assert_not_null(hex, "%s: no block_hex", name);
		cr_assert_not_null(cidtext, "%s: no cid", name);
		cr_assert_eq(cim_cid_from_text(&cid, cidtext), 0, "%s", name);
		p = t_unhex(hex, &len);
		cr_assert_eq(cim_event_check(p, len, &v, NULL, 0), 0,
			     "%s: refused", name);
		fast_compare(p, len, &cid, 1000 + i, name, NULL);
		free(p);
	}
	json_decref(root);
}

/* ---- hand-built blocks ------------------------------------------------------- */

static const char *const fast_datas[] = {
	"{\"a\":{\"b\":[1,[2,{\"c\":null}]],\"z\":true},\"list\":[[],{}],"
	"\"\":\"empty key\",\"bb\":false}",
	"[0.1,2.0,1e300,-0.0,0.0,1.5e-300,123456789.123,1e16,1e17,1e22,-2.5,"
	"5e-324,1.7976931348623157e308,100.0,0.30000000000000004,3.14159]",
	"[0,1,23,24,255,256,65535,65536,4294967295,4294967296,"
	"9223372036854775807,-9223372036854775808,-1,-24,-25,-256,-257,"
	"-65536,-65537,-4294967296,-4294967297]",
	"{\"\\u00e9t\\u00e9\":\"\\u65e5\\u672c\\u8a9e\",\"emoji\":\"\\ud83d\\ude00\","
	"\"ls\":\"\\u2028\\u2029\",\"mix\":\"a\\u00ffb\\u0100c\"}",
	"[\"quote\\\" back\\\\ slash/ nl\\n tab\\t cr\\r bs\\b ff\\f\","
	"\"ctl\\u0001\\u001f del\\u007f\",\"nul\\u0000inside\",\"\\u0000\"]",
	"{\"a\\\"b\":{\"\\n\":[]}}", /* + keys with NUL: fast_nul_keys */
	"null",
	"\"just a string\"",
	"42",
	"-0.0",
	"[]",
	"{}",
	"true",
	"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
};

static const char *const fast_metas[] = {
	NULL,
	"{}",
	"{\"trace\":\"abc\",\"user\":\"\\u00fc\\\"x\",\"v\":\"v\\u0000w\","
	"\"long-key-name-here\":\"\"}", /* + a key with NUL */
};

/* jansson's parser refuses NUL in keys, so these are added by hand:
 * cim_json_write shows such keys cut at the NUL. */
static void fast_nul_keys(json_t *o, int meta)
{
	if (meta) {
		cr_assert_eq(json_object_setn_new(o, "a\0b", 3,
						  json_stringn("v\0w", 3)), 0);
		return;
	}
	cr_assert_eq(json_object_setn_new(o, "k\0x", 3, json_integer(1)), 0);
	cr_assert_eq(json_object_setn_new(o, "k\0y", 3, json_integer(2)), 0);
	cr_assert_eq(json_object_setn_new(o, "\0", 1, json_integer(3)), 0);
}

/* A block with these contents: version 1 with no prev, or version > 1
 * with a prev link. */
static void fast_block(cbuf *out, json_t *data, json_t *meta,
		       uint64_t version, uint64_t mh, const char *corr)
{
	cim_event_block ev;
	char err[160] = "";

	memset(&ev, 0, sizeof ev);
	ev.aggregate_type = "order";
	ev.aggregate_id = "order-\xc3\xa9\"17\\";
	ev.version = version;
	ev.event_type = "OrderPlaced\t";
	ev.event_id = "0192f0a4-7c1e-7a3b-8c5d-000000000001";
	ev.correlation_id = (char *)corr;
	ev.causation_id = "cause-\xf0\x9f\x98\x80";
	ev.timestamp = "2026-11-22T10:00:01.123456789Z";
	ev.metadata = meta;
	ev.data = data;
	ev.has_prev = version > 1;
	if (ev.has_prev)
		cr_assert_eq(cim_cid_compute(&ev.prev, CIM_CODEC_DAG_CBOR, mh,
					     (const uint8_t *)"prev", 4), 0);
	cbuf_reset(out);
	cr_assert_eq(cim_event_encode(&ev, out, err, sizeof err), 0, "%s", err);
}

Test(event_fast, hand_built_blocks_agree_with_decoder)
{
	static const uint64_t versions[] = {1, 2, 300, UINT64_MAX};
	static const uint64_t seqs[] = {0, 1, 1ull << 53, UINT64_MAX};
	cbuf b = CBUF_INIT;
	char label[160];
	size_t n = 0;

	for (size_t d = 0; d < sizeof fast_datas / sizeof *fast_datas; d++) {
		json_t *data = fast_json(fast_datas[d]);

		if (d == 5)
			fast_nul_keys(data, 0);
		for (size_t m = 0; m < sizeof fast_metas / sizeof *fast_metas; m++) {
			json_t *meta = fast_metas[m] ? fast_json(fast_metas[m]) : NULL;

			if (m == 2)
				fast_nul_keys(meta, 1);

			for (size_t k = 0; k < 4; k++) {
				uint64_t mh = k % 2 ? CIM_MH_SHA2_256
						    : CIM_MH_BLAKE2B_256;
				cim_cid cid;

				fast_block(&b, data, meta, versions[k], mh,
					   k == 3 ? "" : "corr-1");
				cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, mh, b.p,
						b.len);
				snprintf(label, sizeof label,
					 "data %zu meta %zu version %zu", d, m, k);
				fast_compare(b.p, b.len, &cid, seqs[k], label,
					     NULL);
				n++;
			}
			json_decref(meta);
		}
		json_decref(data);
	}
	cr_expect_eq(n, 14 * 3 * 4);
	cbuf_free(&b);
}

/* The block of fast_block with data null, its data value (the 0xf6 right
 * after the "data" key) replaced by the raw CBOR in raw. */
static void fast_splice(cbuf *out, const uint8_t *raw, size_t rawlen)
{
	cbuf b = CBUF_INIT;

	fast_block(&b, NULL, NULL, 1, CIM_MH_BLAKE2B_256, "c");
	cr_assert(b.len > 6 && b.p[0] == 0xab && b.p[1] == 0x64 &&
		  memcmp(b.p + 2, "data", 4) == 0 && b.p[6] == 0xf6);
	cbuf_reset(out);
	cr_assert_eq(cbuf_put(out, b.p, 6), 0);
	cr_assert_eq(cbuf_put(out, raw, rawlen), 0);
	cr_assert_eq(cbuf_put(out, b.p + 7, b.len - 7), 0);
	cbuf_free(&b);
}

Test(event_fast, bytes_links_and_depth_agree_with_decoder)
{
	cbuf raw = CBUF_INIT, b = CBUF_INIT;
	struct fast_tally t = {0, 0};
	cim_cid link, cid;
	char label[64];

	cr_assert_eq(cim_cid_compute(&link, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
				     (const uint8_t *)"x", 1), 0);
	memset(&cid, 0, sizeof cid);
	cid = link;

	/* {"b": h'', "bb": h'00ff10', "l": link, "x": [h'fffefd7e7f80', link]} */
	cbuf_reset(&raw);
	cr_assert_eq(cim_cbor_write_map_head(&raw, 4), 0);
	cim_cbor_write_text(&raw, "b", 1);
	cbuf_putc(&raw, 0x40);
	cim_cbor_write_text(&raw, "l", 1);
	cim_cbor_write_link(&raw, &link);
	cim_cbor_write_text(&raw, "x", 1);
	cbuf_putc(&raw, 0x82);
	cbuf_put(&raw, "\x46\xff\xfe\xfd\x7e\x7f\x80", 7);
	cim_cbor_write_link(&raw, &link);
	cim_cbor_write_text(&raw, "bb", 2);
	cbuf_put(&raw, "\x43\x00\xff\x10", 4);
	fast_splice(&b, raw.p, raw.len);
	fast_compare(b.p, b.len, &cid, 7, "bytes and links", &t);
	cr_assert_eq(t.accepted, 1);

	/* Byte strings of every length mod 3, up to 70 bytes. */
	for (size_t n = 0; n <= 70; n++) {
		cbuf_reset(&raw);
		cbuf_putc(&raw, 0x81);
		cr_assert_eq(cbuf_putc(&raw, (uint8_t)(n < 24 ? 0x40 + n : 0x58)), 0);
		if (n >= 24)
			cbuf_putc(&raw, (uint8_t)n);
		for (size_t i = 0; i < n; i++)
			cbuf_putc(&raw, (uint8_t)(i * 37 + n));
		fast_splice(&b, raw.p, raw.len);
		snprintf(label, sizeof label, "bytes of %zu", n);
		fast_compare(b.p, b.len, &cid, 1, label, &t);
	}

	/* Nesting: CIM_MAX_DEPTH arrays pass, one more is refused; maps too. */
	for (int extra = 0; extra <= 1; extra++) {
		for (int map = 0; map <= 1; map++) {
			int depth = CIM_MAX_DEPTH + extra;

			cbuf_reset(&raw);
			for (int i = 0; i < depth; i++) {
				if (map) {
					cbuf_putc(&raw, 0xa1);
					cim_cbor_write_text(&raw, "k", 1);
				} else {
					cbuf_putc(&raw, 0x81);
				}
			}
			cbuf_putc(&raw, 0x01);
			fast_splice(&b, raw.p, raw.len);
			snprintf(label, sizeof label, "depth %d map %d", depth,
				 map);
			fast_compare(b.p, b.len, &cid, 1, label, &t);
		}
	}
	/* 2 + 71 + 2 accepted, 2 refused. */
	cr_expect_eq(t.cases, 1 + 71 + 4);
	cr_expect_eq(t.accepted, 1 + 71 + 2);

	/* Out of the int64 range, links that are not CIDs, bad keys. */
	{
		static const char *const bad[] = {
			"\x1b\x80\x00\x00\x00\x00\x00\x00\x00", /* 2^63 */
			"\x3b\x80\x00\x00\x00\x00\x00\x00\x00", /* -2^63-1 */
			"\xd8\x2a\x41\x00",                     /* link: only 0x00 */
			"\xd8\x2a\x63\x61\x62\x63",             /* link over text */
			"\xd8\x2b\x40",                         /* tag 43 */
			"\xa2\x61\x62\x01\x61\x61\x02",         /* keys out of order */
			"\xa2\x61\x61\x01\x61\x61\x02",         /* repeated key */
			"\xa1\x01\x02",                         /* int key */
			"\xfa\x3f\x80\x00\x00",                 /* 32-bit float */
			"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00", /* NaN */
			"\x62\xc3\x28",                         /* bad UTF-8 */
			"\x18\x05",                             /* non-minimal */
			"\x9f\xff",                             /* indefinite */
			"\xf7",                                 /* undefined */
		};
		static const size_t badlen[] = {9, 9, 4, 6, 3, 7, 7, 3, 5, 9, 3,
						2, 2, 1};

		for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
			struct fast_tally bt = {0, 0};

			fast_splice(&b, (const uint8_t *)bad[i], badlen[i]);
			snprintf(label, sizeof label, "bad data %zu", i);
			fast_compare(b.p, b.len, &cid, 1, label, &bt);
			cr_expect_eq(bt.accepted, 0, "%s accepted", label);
		}
	}
	cbuf_free(&raw);
	cbuf_free(&b);
}

/* ---- mutants ------------------------------------------------------------------ */

/* Every single-byte replacement (3 values), insertion (3 values) and
 * truncation of block p, compared. */
static void fast_mutate(const uint8_t *p, size_t len, const char *name,
			struct fast_tally *t)
{
	uint8_t *m = malloc(len + 1);
	char label[96];
	cim_cid cid;

	cr_assert_not_null(m);
	cr_assert_eq(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR,
				     CIM_MH_BLAKE2B_256, p, len), 0);
	for (size_t i = 0; i <= len; i++) {
		if (i < len) {
			const uint8_t with[3] = {(uint8_t)(p[i] ^ 0x01),
						 (uint8_t)(p[i] ^ 0x20), 0x00};

			for (int k = 0; k < 3; k++) {
				if (with[k] == p[i])
					continue;
				memcpy(m, p, len);
				m[i] = with[k];
				snprintf(label, sizeof label, "%s: byte %zu -> %02x",
					 name, i, with[k]);
				fast_compare(m, len, &cid, i, label, t);
			}
		}
		for (int k = 0; k < 3; k++) {
			static const uint8_t ins[3] = {0x00, 0x61, 0xf6};

			memcpy(m, p, i);
			m[i] = ins[k];
			memcpy(m + i + 1, p + i, len - i);
			snprintf(label, sizeof label, "%s: insert %02x at %zu",
				 name, ins[k], i);
			fast_compare(m, len + 1, &cid, i, label, t);
		}
		snprintf(label, sizeof label, "%s: cut at %zu", name, i);
		fast_compare(p, i, &cid, i, label, t);
	}
	free(m);
}

Test(event_fast, mutants_agree_with_decoder)
{
	static const char *const datas[] = {
		"{\"n\":[1,-1,255,-256,65536,0.1,2.0,-0.0,1e300],\"s\":\"\\u00e9\\n\","
		"\"t\":true,\"z\":null}",
		"[\"a\",[\"b\",{\"c\":\"d\"}],4294967296]",
	};
	struct fast_tally t = {0, 0};
	cbuf b = CBUF_INIT, raw = CBUF_INIT;
	json_t *meta = fast_json("{\"k\":\"v\",\"kk\":\"w\"}");
	cim_cid link;

	for (size_t d = 0; d < 2; d++) {
		json_t *data = fast_json(datas[d]);

		fast_block(&b, data, d == 0 ? meta : NULL, d == 0 ? 1 : 7,
			   CIM_MH_BLAKE2B_256, "corr");
		fast_mutate(b.p, b.len, d == 0 ? "v1" : "v7", &t);
		json_decref(data);
	}
	/* Links and byte strings inside data. */
	cr_assert_eq(cim_cid_compute(&link, CIM_CODEC_DAG_CBOR,
				     CIM_MH_BLAKE2B_256, (const uint8_t *)"y", 1),
		     0);
	cbuf_putc(&raw, 0xa2);
	cim_cbor_write_text(&raw, "b", 1);
	cbuf_put(&raw, "\x44\x00\x01\xfe\xff", 5);
	cim_cbor_write_text(&raw, "l", 1);
	cim_cbor_write_link(&raw, &link);
	fast_splice(&b, raw.p, raw.len);
	fast_mutate(b.p, b.len, "links", &t);

	cr_log_info("mutants: %zu compared, %zu accepted by all three",
		    t.cases, t.accepted);
	cr_expect_gt(t.cases, 2000);
	cr_expect_gt(t.accepted, 100, "too few accepted mutants to compare "
		     "texts (%zu)", t.accepted);
	json_decref(meta);
	cbuf_free(&b);
	cbuf_free(&raw);
}

/* Seeded random multi-byte mutants of a vector-like block. */
Test(event_fast, random_mutants_agree_with_decoder)
{
	struct fast_tally t = {0, 0};
	json_t *data = fast_json("{\"items\":[\"sku-1\",\"sku-2\"],\"paid\":false,"
				 "\"total\":42,\"x\":{\"y\":[1.5,-7]}}");
	json_t *meta = fast_json("{\"a\":\"b\"}");
	cbuf b = CBUF_INIT;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	uint8_t *m;
	cim_cid cid;

	fast_block(&b, data, meta, 2, CIM_MH_SHA2_256, "corr");
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256, b.p, b.len);
	m = malloc(b.len);
	cr_assert_not_null(m);
	for (int round = 0; round < 20000; round++) {
		char label[48];
		int changes;

		memcpy(m, b.p, b.len);
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		changes = 1 + (int)(s % 3);
		for (int c = 0; c < changes; c++) {
			s ^= s << 13, s ^= s >> 7, s ^= s << 17;
			m[(s >> 8) % b.len] = (uint8_t)(s >> 40);
		}
		snprintf(label, sizeof label, "random round %d", round);
		fast_compare(m, b.len, &cid, (uint64_t)round, label, &t);
	}
	cr_log_info("random mutants: %zu compared, %zu accepted", t.cases,
		    t.accepted);
	free(m);
	json_decref(data);
	json_decref(meta);
	cbuf_free(&b);
}

/* The pieces exposed from jsontext.c against cim_json_write itself. */
Test(event_fast, jsontext_pieces_match_writer)
{
	static const double reals[] = {0.1, 2.0, 1e300, -0.0, 5e-324, 1e16,
				       1e17, 123.456, -1e-7};
	static const int64_t ints[] = {0, -1, 1, INT64_MAX, INT64_MIN, 10,
				       -10, 1234567890123};
	cbuf a = CBUF_INIT, b = CBUF_INIT;

	for (size_t i = 0; i < sizeof reals / sizeof *reals; i++) {
		json_t *j = json_real(reals[i]);

		cbuf_reset(&a);
		cbuf_reset(&b);
		cr_assert_eq(cim_json_write(&a, j), 0);
		cr_assert_eq(cim_json_write_real(&b, reals[i]), 0);
		cr_assert(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
		json_decref(j);
	}
	for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
		json_t *j = json_integer(ints[i]);

		cbuf_reset(&a);
		cbuf_reset(&b);
		cr_assert_eq(cim_json_write(&a, j), 0);
		cr_assert_eq(cim_json_write_int(&b, ints[i]), 0);
		cr_assert(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
		json_decref(j);
	}
	{
		json_t *j = json_stringn("a\0\"\x01\xc3\xa9", 6);

		cbuf_reset(&a);
		cbuf_reset(&b);
		cr_assert_eq(cim_json_write(&a, j), 0);
		cr_assert_eq(cim_json_write_string(&b, "a\0\"\x01\xc3\xa9", 6), 0);
		cr_assert(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
		json_decref(j);
	}
	cbuf_free(&a);
	cbuf_free(&b);
}

/* cim_cbor_skip: same verdict and end position as cim_cbor_read_json. */
Test(event_fast, skip_matches_read_json)
{
	static const char *const texts[] = {
		"{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}", "[]", "1.5", "\"x\"",
		"[[[[1]]]]",
	};
	cbuf b = CBUF_INIT;

	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		json_t *v = fast_json(texts[i]);

		fast_cbor(v, CIM_MAX_DEPTH, &b);
		for (int depth = 0; depth <= 5; depth++) {
			cim_cbor_reader r1, r2;
			json_t *got = NULL;
			int rc1, rc2;

			cim_cbor_reader_init(&r1, b.p, b.len);
			cim_cbor_reader_init(&r2, b.p, b.len);
			rc1 = cim_cbor_read_json(&r1, depth, &got);
			rc2 = cim_cbor_skip(&r2, depth);
			cr_assert_eq(rc1, rc2, "%s depth %d", texts[i], depth);
			if (rc1 == 0)
				cr_assert_eq(r1.pos, r2.pos);
			else
				cr_assert_str_eq(r1.err, r2.err);
			json_decref(got);
		}
		json_decref(v);
	}
	cbuf_free(&b);
}
