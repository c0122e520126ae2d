/*
 * test_dagcbor.c: the strict DAG-CBOR writer and reader: exact bytes for
 * canonical forms, round trips, links, and hand-written byte strings the
 * reader must refuse.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dagcbor.h"

/* Lower-case hex of a buffer, in a static area (one per call site use). */
static const char *
hexs(const uint8_t *p, size_t n)
{
	static char out[4096];
	size_t i;

	cr_assert_lt(2 * n, sizeof(out));
	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
	return out;
}

/* Bytes from hex into out; returns the count. */
static size_t
unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = strlen(h) / 2, i;
	unsigned v;

	cr_assert_leq(n, cap);
	for (i = 0; i < n; i++) {
		cr_assert_eq(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

static json_t *
parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

	cr_assert_not_null(v, "bad test JSON %s: %s", text, jerr.text);
	return v;
}

/* Encodes JSON text and checks the hex, then that it reads back equal. */
static void
enc(const char *text, const char *want)
{
	json_t *v = parse(text), *back = NULL;
	cbuf b = CBUF_INIT;
	char err[160] = "";

	cr_assert_eq(cim_cbor_write_json(&b, v, CIM_MAX_DEPTH, err,
					 sizeof(err)), 0, "%s: %s", text, err);
	cr_assert_str_eq(hexs(b.p, b.len), want, "encoding of %s", text);
	cr_assert_eq(cim_cbor_decode_json(b.p, b.len, CIM_MAX_DEPTH, &back,
					  err, sizeof(err)), 0, "%s: %s",
		     text, err);
	cr_assert(json_equal(v, back), "round trip of %s", text);
	json_decref(back);
	json_decref(v);
	cbuf_free(&b);
}

/* The reader must refuse these bytes (given as hex). */
static void
bad(const char *h, int max_depth)
{
	uint8_t buf[512];
	size_t n = unhex(h, buf, sizeof(buf));
	json_t *v = (json_t *)1;
	char err[160] = "";

	cr_assert_eq(cim_cbor_decode_json(buf, n, max_depth, &v, err,
					  sizeof(err)), -1, "accepted %s", h);
	cr_assert_null(v);
	cr_assert_neq(err[0], '\0', "no message for %s", h);
}

/* The reader must accept these bytes and give this JSON. */
static void
good(const char *h, const char *want)
{
	uint8_t buf[512];
	size_t n = unhex(h, buf, sizeof(buf));
	json_t *v = NULL, *w = parse(want);
	char err[160] = "";

	cr_assert_eq(cim_cbor_decode_json(buf, n, CIM_MAX_DEPTH, &v, err,
					  sizeof(err)), 0, "%s: %s", h, err);
	cr_assert(json_equal(v, w), "%s did not read as %s", h, want);
	json_decref(v);
	json_decref(w);
}

static void
sample_cid(cim_cid *c)
{
	cr_assert_eq(cim_cid_compute(c, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
				     (const uint8_t *)"abc", 3), 0);
}

Test(dagcbor, map_keys_length_first)
{
	enc("{\"b\":1,\"aa\":2,\"a\":3}", "a3616103616201626161" "02");
	enc("{}", "a0");
	enc("{\"b\":{\"z\":1,\"y\":[]}}", "a16162a261798061" "7a01");
}

Test(dagcbor, key_cmp)
{
	cr_assert_lt(cim_cbor_key_cmp("b", 1, "aa", 2), 0);
	cr_assert_gt(cim_cbor_key_cmp("aa", 2, "b", 1), 0);
	cr_assert_lt(cim_cbor_key_cmp("a", 1, "b", 1), 0);
	cr_assert_eq(cim_cbor_key_cmp("ab", 2, "ab", 2), 0);
	cr_assert_gt(cim_cbor_key_cmp("\xff", 1, "a", 1), 0);
}

Test(dagcbor, shortest_unsigned)
{
	enc("0", "00");
	enc("23", "17");
	enc("24", "1818");
	enc("255", "18ff");
	enc("256", "190100");
	enc("65535", "19ffff");
	enc("65536", "1a00010000");
	enc("4294967295", "1affffffff");
	enc("4294967296", "1b0000000100000000");
	enc("9223372036854775807", "1b7fffffffffffffff");
}

Test(dagcbor, shortest_negative)
{
	enc("-1", "20");
	enc("-24", "37");
	enc("-25", "3818");
	enc("-256", "38ff");
	enc("-257", "390100");
	enc("-65536", "39ffff");
	enc("-65537", "3a00010000");
	enc("-4294967296", "3affffffff");
	enc("-4294967297", "3b0000000100000000");
	enc("-9223372036854775808", "3b7fffffffffffffff");
}

Test(dagcbor, floats_always_64_bit)
{
	enc("1.0", "fb3ff0000000000000");
	enc("-0.0", "fb8000000000000000");
	enc("0.5", "fb3fe0000000000000");
	enc("1e300", "fb7e37e43c8800759c");
	enc("[1.5]", "81fb3ff8000000000000");
}

Test(dagcbor, scalars_and_strings)
{
	enc("true", "f5");
	enc("false", "f4");
	enc("null", "f6");
	enc("\"\"", "60");
	enc("\"aaaaaaaaaaaaaaaaaaaaaaa\"",
	    "776161616161616161616161616161616161616161616161");
	enc("\"aaaaaaaaaaaaaaaaaaaaaaaa\"",
	    "7818616161616161616161616161616161616161616161616161");
	enc("\"\\u00e9\\ud83d\\ude00\"", "66c3a9f09f9880");
	enc("[1,[2]]", "82018102");
}

Test(dagcbor, write_depth_limit)
{
	json_t *v = parse("[[1]]");
	cbuf b = CBUF_INIT;
	char err[160] = "";

	cr_assert_eq(cim_cbor_write_json(&b, v, 1, err, sizeof(err)), -1);
	cr_assert_eq(b.len, 0, "a failed write leaves the buffer as it was");
	cr_assert_neq(err[0], '\0');
	cr_assert_eq(cim_cbor_write_json(&b, v, 2, err, sizeof(err)), 0);
	cr_assert_str_eq(hexs(b.p, b.len), "818101");
	json_decref(v);
	v = parse("7");
	cr_assert_eq(cim_cbor_write_json(&b, v, 0, err, sizeof(err)), 0,
		     "a scalar has depth 0");
	json_decref(v);
	cbuf_free(&b);
}

Test(dagcbor, json_depth)
{
	json_t *v;
	char text[300];
	int i;

	v = parse("5");
	cr_assert_eq(cim_json_depth(v, 10), 0);
	json_decref(v);
	v = parse("[]");
	cr_assert_eq(cim_json_depth(v, 10), 1);
	json_decref(v);
	v = parse("{\"a\":[{}],\"b\":1}");
	cr_assert_eq(cim_json_depth(v, 10), 3);
	json_decref(v);
	for (i = 0; i < 100; i++)
		text[i] = '[';
	for (i = 100; i < 200; i++)
		text[i] = ']';
	text[200] = '\0';
	v = parse(text);
	cr_assert_eq(cim_json_depth(v, 200), 100);
	cr_assert_eq(cim_json_depth(v, 5), 6, "stops counting past limit+1");
	json_decref(v);
}

Test(dagcbor, low_level_writers)
{
	cbuf b = CBUF_INIT;
	cim_cid c;
	uint8_t want[2 + 2 + 1 + CIM_CID_MAX];

	cr_assert_eq(cim_cbor_write_map_head(&b, 11), 0);
	cr_assert_eq(cim_cbor_write_uint(&b, 500), 0);
	cr_assert_eq(cim_cbor_write_text(&b, "ab", 2), 0);
	cr_assert_eq(cim_cbor_write_null(&b), 0);
	cr_assert_str_eq(hexs(b.p, b.len), "ab1901f4626162f6");
	cbuf_reset(&b);
	sample_cid(&c);
	cr_assert_eq(cim_cbor_write_link(&b, &c), 0);
	want[0] = 0xd8;
	want[1] = 0x2a;
	want[2] = 0x58;
	want[3] = (uint8_t)(c.len + 1);
	want[4] = 0x00;
	memcpy(want + 5, c.b, c.len);
	cr_assert_eq(b.len, 5u + c.len);
	cr_assert_eq(memcmp(b.p, want, b.len), 0);
	cbuf_free(&b);
}

Test(dagcbor, link_round_trip)
{
	cbuf b = CBUF_INIT;
	cim_cid c, back;
	cim_cbor_reader r;
	json_t *v;
	char text[CIM_CID_TEXT_MAX], err[160];

	sample_cid(&c);
	cr_assert_eq(cim_cbor_write_link(&b, &c), 0);
	cim_cbor_reader_init(&r, b.p, b.len);
	cr_assert_eq(cim_cbor_read_link(&r, &back), 0, "%s", r.err);
	cr_assert_eq(r.pos, b.len);
	cr_assert(cim_cid_equal(&c, &back));

	cr_assert_eq(cim_cbor_decode_json(b.p, b.len, 0, &v, err,
					  sizeof(err)), 0, "%s", err);
	cim_cid_to_text(&c, text);
	cr_assert_str_eq(json_string_value(json_object_get(v, "/")), text);
	cr_assert_eq(text[0], 'b');
	json_decref(v);
	cbuf_free(&b);
}

Test(dagcbor, bad_links)
{
	bad("d82a01", 8);            /* tag 42 over an integer */
	bad("d82a420171", 8);        /* no 0x00 prefix */
	bad("d82a4400017112", 8);    /* 0x00 then a truncated CID */
	bad("d82a", 8);              /* tag with nothing after it */
	bad("d82b4100", 8);          /* tag 43 */
}

Test(dagcbor, bytes_read_as_dag_json)
{
	good("43010203", "{\"/\":{\"bytes\":\"AQID\"}}");
	good("40", "{\"/\":{\"bytes\":\"\"}}");
	good("4101", "{\"/\":{\"bytes\":\"AQ\"}}");
}

Test(dagcbor, reader_items)
{
	uint8_t buf[] = {0x83, 0x18, 0x64, 0x39, 0x01, 0x00, 0x62, 'h', 'i'};
	cim_cbor_reader r;
	cim_cbor_item it;

	cim_cbor_reader_init(&r, buf, sizeof(buf));
	cr_assert_eq(cim_cbor_next(&r, &it), 0);
	cr_assert_eq(it.kind, CIM_CBOR_ARRAY);
	cr_assert_eq(it.u, 3);
	cr_assert_eq(cim_cbor_next(&r, &it), 0);
	cr_assert_eq(it.kind, CIM_CBOR_UINT);
	cr_assert_eq(it.u, 100);
	cr_assert_eq(cim_cbor_next(&r, &it), 0);
	cr_assert_eq(it.kind, CIM_CBOR_NEGINT);
	cr_assert_eq(it.u, 256);
	cr_assert_eq(cim_cbor_next(&r, &it), 0);
	cr_assert_eq(it.kind, CIM_CBOR_TEXT);
	cr_assert_eq(it.len, 2);
	cr_assert_eq(memcmp(it.data, "hi", 2), 0);
	cr_assert_eq(r.pos, sizeof(buf));
	cr_assert_eq(cim_cbor_next(&r, &it), -1, "nothing left to read");
}

Test(dagcbor, refuses_non_minimal_heads)
{
	bad("1817", 8);                 /* 23 in two bytes */
	bad("190017", 8);
	bad("1900ff", 8);
	bad("1a0000ffff", 8);
	bad("1b00000000ffffffff", 8);
	bad("3817", 8);                 /* -24 in two bytes */
	bad("39000a", 8);
	bad("780161", 8);               /* text of 1 with a 2-byte head */
	bad("58020102", 8);             /* bytes of 2 with a 2-byte head */
	bad("980100", 8);               /* array of 1 with a 2-byte head */
	bad("b801616100", 8);
	bad("d9002a4100", 8);
	good("7818616161616161616161616161616161616161616161616161",
	     "\"aaaaaaaaaaaaaaaaaaaaaaaa\"");
}

Test(dagcbor, refuses_indefinite_lengths)
{
	bad("9f01ff", 8);
	bad("bf616101ff", 8);
	bad("5f4101ff", 8);
	bad("7f6161ff", 8);
	bad("ff", 8);
}

Test(dagcbor, refuses_floats_and_simple_values)
{
	bad("f93c00", 8);               /* half */
	bad("fa3f800000", 8);           /* single */
	bad("fb7ff8000000000000", 8);   /* NaN */
	bad("fb7ff0000000000000", 8);   /* +inf */
	bad("fbfff0000000000000", 8);   /* -inf */
	bad("f7", 8);                   /* undefined */
	bad("f0", 8);                   /* simple 16 */
	bad("f820", 8);                 /* simple 32 */
	good("fb8000000000000000", "-0.0");
	good("83f4f5f6", "[false,true,null]");
}

Test(dagcbor, refuses_bad_maps)
{
	bad("a2616201616102", 8);       /* b before a */
	bad("a2616101616102", 8);       /* a twice */
	bad("a262616101616202", 8);     /* aa before b: not length-first */
	bad("a10102", 8);               /* integer key */
	bad("a1410102", 8);             /* byte-string key */
	good("a2616102626161" "01", "{\"a\":2,\"aa\":1}");
}

Test(dagcbor, refuses_tags_other_than_42)
{
	bad("c100", 8);
	bad("c074323031332d30332d32315432303a30343a30305a", 8);
	bad("d9d9f700", 8);
}

Test(dagcbor, refuses_trailing_and_truncated)
{
	bad("0000", 8);
	bad("a0f6", 8);
	bad("", 8);
	bad("62", 8);
	bad("6261", 8);
	bad("8201", 8);
	bad("a1616101" "6162", 8);
	bad("19", 8);
	bad("1901", 8);
	bad("fb3ff00000", 8);
	bad("5b00000000ffffffff", 8);
}

Test(dagcbor, refuses_invalid_utf8)
{
	bad("61ff", 8);
	bad("6180", 8);                 /* lone continuation */
	bad("61c3", 8);                 /* truncated sequence */
	bad("62c0af", 8);               /* overlong '/' */
	bad("62c1bf", 8);
	bad("63e080af", 8);             /* overlong, three bytes */
	bad("64f08080af", 8);           /* overlong, four bytes */
	bad("63eda080", 8);             /* surrogate D800 */
	bad("63edbfbf", 8);             /* surrogate DFFF */
	bad("64f4908080", 8);           /* U+110000 */
	bad("64f8888080", 8);
	bad("a161ff01", 8);             /* in a key */
	good("63ed9fbf", "\"\\ud7ff\"");
	good("64f48fbfbf", "\"\\udbff\\udfff\"");
	good("63efbfbf", "\"\\uffff\"");
}

Test(dagcbor, refuses_integers_outside_int64)
{
	bad("1b8000000000000000", 8);
	bad("1bffffffffffffffff", 8);
	bad("3b8000000000000000", 8);
	good("3b7fffffffffffffff", "-9223372036854775808");
	good("1b7fffffffffffffff", "9223372036854775807");
}

Test(dagcbor, read_depth_limit)
{
	bad("81818101", 2);
	bad("a1616181a0", 1);
	good("81818101", "[[[1]]]");
	bad("8101", 0);
	bad("81818101", 2);
}

Test(dagcbor, depth_boundary_exact)
{
	uint8_t buf[8] = {0x81, 0x81, 0x81, 0x01};
	json_t *v;
	char err[160];

	cr_assert_eq(cim_cbor_decode_json(buf, 4, 3, &v, err, sizeof(err)), 0,
		     "%s", err);
	json_decref(v);
	cr_assert_eq(cim_cbor_decode_json(buf + 3, 1, 0, &v, err,
					  sizeof(err)), 0,
		     "a scalar has depth 0");
	json_decref(v);
}

Test(dagcbor, max_depth_data_round_trips)
{
	char text[2 * CIM_MAX_DEPTH + 4];
	json_t *v;
	cbuf b = CBUF_INIT;
	char err[160];
	int i;

	for (i = 0; i < CIM_MAX_DEPTH; i++)
		text[i] = '[';
	for (i = 0; i < CIM_MAX_DEPTH; i++)
		text[CIM_MAX_DEPTH + i] = ']';
	text[2 * CIM_MAX_DEPTH] = '\0';
	v = parse(text);
	cr_assert_eq(cim_cbor_write_json(&b, v, CIM_MAX_DEPTH, err,
					 sizeof(err)), 0, "%s", err);
	json_decref(v);
	cr_assert_eq(cim_cbor_decode_json(b.p, b.len, CIM_MAX_DEPTH, &v, err,
					  sizeof(err)), 0, "%s", err);
	json_decref(v);
	cr_assert_eq(cim_cbor_decode_json(b.p, b.len, CIM_MAX_DEPTH - 1, &v,
					  err, sizeof(err)), -1);
	cbuf_free(&b);
}

/* cim_json_same: values are the same as canonical bytes, so key order does
 * not count, and keys that differ only after a U+0000 are different keys
 * (jansson's json_equal cuts them there). */
Test(dagcbor, json_same_takes_keys_in_full)
{
	json_t *a = json_object(), *b = json_object(), *c = json_object();

	json_object_setn_new_nocheck(a, "k\0x", 3, json_integer(1));
	json_object_set_new(a, "z", json_true());
	json_object_set_new(b, "z", json_true());
	json_object_setn_new_nocheck(b, "k\0x", 3, json_integer(1));
	json_object_setn_new_nocheck(c, "k\0y", 3, json_integer(1));
	json_object_set_new(c, "z", json_true());
	cr_assert(cim_json_same(a, b));
	cr_assert_not(cim_json_same(a, c));
	cr_assert_not(cim_json_same(a, NULL));
	json_decref(a);
	json_decref(b);
	json_decref(c);
}
