/*
 * fuzz_block.c: libFuzzer target for the DAG-CBOR readers and the block
 * decoders (proto/dagcbor.h, proto/event.h, proto/snapshot.h).
 *
 * Each input is read as:
 *
 *   - one DAG-CBOR value, by the three walkers that must accept and refuse
 *     the same inputs with the same message (cim_cbor_read_json,
 *     cim_cbor_skip, cim_cbor_read_json_text), the text one writing
 *     exactly what cim_json_write writes for the jansson value. An
 *     accepted value is canonical, so writing it again
 *     (cim_cbor_write_json) gives the same bytes; values holding byte
 *     strings or links are the exception, as they read as their DAG-JSON
 *     forms ({"/": ...}), which write as maps: for those, the bytes
 *     written must read back as the same JSON;
 *   - an event block, by cim_event_decode, cim_event_check and
 *     cim_event_write_json, which must agree on acceptance and on the
 *     message. An accepted block re-encodes (cim_event_encode) to the same
 *     bytes (data holding bytes or links: the same bytes outside data, and
 *     data that reads back the same); the view of the check and the
 *     decoded block hold the same fields; and the two reply writers
 *     (cim_event_write_json, cim_json_write of cim_event_to_json) agree
 *     byte for byte;
 *   - a snapshot block, by cim_snapshot_decode: an accepted snapshot
 *     re-encodes (cim_snapshot_encode) to the same bytes, with the same
 *     exception for a state holding bytes or links.
 *
 * A broken rule aborts, so libFuzzer reports it as a crash.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cid.h"
#include "dagcbor.h"
#include "event.h"
#include "jsontext.h"
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

#define CHECK_OK(call, err)                                                   \
	do {                                                                  \
		if ((call) != 0) {                                            \
			fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__,   \
				__LINE__, #call, (err));                      \
			abort();                                              \
		}                                                             \
	} while (0)

/* The depth the snapshot decoder reads with: the state inside the map. */
#define DEPTH (CIM_MAX_DEPTH + 1)

static const char CID_TEXT[] =
    "bafy2bzacecvug5ndfzojfvwcxnyiiozj76e4jbbbbs46retog3mimw2lyyork";
static cim_cid cid0;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	json_object_seed(1); /* deterministic hash tables */
	if (cim_cid_from_text(&cid0, CID_TEXT) != 0)
		abort();
	return 0;
}

static bool
same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Whether an accepted value holds a byte string or a link, the two kinds
 * that do not come back as themselves through JSON. Every head is visited
 * (cim_cbor_next skips only payloads). */
static bool
has_bytes_or_links(const uint8_t *p, size_t len)
{
	cim_cbor_reader r;
	cim_cbor_item it;

	cim_cbor_reader_init(&r, p, len);
	while (r.pos < r.len) {
		CHECK(cim_cbor_next(&r, &it) == 0);
		if (it.kind == CIM_CBOR_TAG || it.kind == CIM_CBOR_BYTES)
			return true;
	}
	return false;
}

/* json_equal, but for keys holding a NUL too (jansson 2.14's json_equal
 * looks keys up as C strings, so two objects with the key "k\0" differ). */
static bool
same_json(const json_t *a, const json_t *b)
{
	const char *key;
	size_t klen, i;
	json_t *v;

	if (a == NULL || b == NULL || json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_keylen_foreach((json_t *)a, key, klen, v)
			if (!same_json(v, json_object_getn(b, key, klen)))
				return false;
		return true;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		json_array_foreach(a, i, v)
			if (!same_json(v, json_array_get(b, i)))
				return false;
		return true;
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b),
			      json_string_length(a)) == 0;
	default:
		return json_equal(a, b);
	}
}

/* The bytes p[0..len) (one accepted value) read as the same JSON as j. */
static void
check_reads_as(const uint8_t *p, size_t len, const json_t *j, int depth)
{
	json_t *back = NULL;
	char err[256];

	CHECK_OK(cim_cbor_decode_json(p, len, depth, &back, err, sizeof(err)),
		 err);
	CHECK(same_json(back, j));
	json_decref(back);
}

/* ---- one DAG-CBOR value ------------------------------------------------------ */

static void
fuzz_value(const uint8_t *data, size_t size)
{
	cim_cbor_reader r1, r2, r3;
	cbuf text = CBUF_INIT, w = CBUF_INIT, out = CBUF_INIT;
	json_t *j = (json_t *)1;
	char err[256];
	int rc1, rc2, rc3;

	cim_cbor_reader_init(&r1, data, size);
	cim_cbor_reader_init(&r2, data, size);
	cim_cbor_reader_init(&r3, data, size);
	rc1 = cim_cbor_read_json(&r1, DEPTH, &j);
	rc2 = cim_cbor_skip(&r2, DEPTH);
	rc3 = cim_cbor_read_json_text(&r3, DEPTH, &text);
	CHECK(rc1 == rc2 && rc1 == rc3);
	if (rc1 != 0) {
		CHECK(j == NULL && text.len == 0);
		CHECK(r1.err[0] != '\0');
		CHECK(strcmp(r1.err, r2.err) == 0 && strcmp(r1.err, r3.err) == 0);
		cbuf_free(&text);
		return;
	}
	CHECK(j != NULL);
	CHECK(r1.pos == r2.pos && r1.pos == r3.pos && r1.pos <= size);

	/* the text walker writes what cim_json_write writes */
	CHECK(cim_json_write(&w, j) == 0);
	CHECK(same_bytes(w.p, w.len, text.p, text.len));

	/* canonical: written again, the same bytes */
	err[0] = '\0';
	if (!has_bytes_or_links(data, r1.pos)) {
		CHECK_OK(cim_cbor_write_json(&out, j, DEPTH, err, sizeof(err)),
			 err);
		CHECK(same_bytes(out.p, out.len, data, r1.pos));
	} else if (cim_cbor_write_json(&out, j, DEPTH, err, sizeof(err)) == 0) {
		/* {"/": ...} adds levels: a deep one may not write at all */
		check_reads_as(out.p, out.len, j, DEPTH);
	}
	json_decref(j);
	cbuf_free(&text);
	cbuf_free(&w);
	cbuf_free(&out);
}

/* ---- event blocks -------------------------------------------------------------- */

static bool
view_text_is(const char *s, size_t len, const char *owned)
{
	return s != NULL && owned != NULL && strlen(owned) == len &&
	       memcmp(s, owned, len) == 0;
}

/* An id, which may hold NULs: all of its bytes, NUL-terminated after. */
static bool
view_id_is(const char *s, size_t len, const char *owned, size_t olen)
{
	return s != NULL && owned != NULL && olen == len &&
	       memcmp(s, owned, len) == 0 && owned[len] == '\0';
}

static void
fuzz_event(const uint8_t *data, size_t size)
{
	char e1[256] = "", e2[256] = "", e3[256] = "", err[256] = "";
	cbuf reply = CBUF_INIT, text = CBUF_INIT, out = CBUF_INIT;
	cim_event_block ev, zero;
	cim_event_view v, v2;
	size_t pre, post, pre2, post2;
	int rd, rc, rw;
	json_t *jo;

	rd = cim_event_decode(data, size, &ev, e1, sizeof(e1));
	rc = cim_event_check(data, size, &v, e2, sizeof(e2));
	rw = cim_event_write_json(&reply, data, size, &cid0, 7, e3, sizeof(e3));
	CHECK(rd == rc && rd == rw);
	if (rd != 0) {
		memset(&zero, 0, sizeof(zero));
		CHECK(memcmp(&ev, &zero, sizeof(ev)) == 0);
		CHECK(e1[0] != '\0');
		CHECK(strcmp(e1, e2) == 0 && strcmp(e1, e3) == 0);
		CHECK(reply.len == 0);
		cbuf_free(&reply);
		return;
	}

	/* the rules of a valid block */
	CHECK(ev.version >= 1 && ev.has_prev == (ev.version > 1));
	CHECK(ev.data != NULL && json_is_object(ev.metadata));
	CHECK(cim_cid_info(&ev.prev, NULL, NULL) == 0 || !ev.has_prev);

	/* the view and the decoded block say the same */
	CHECK(v.version == ev.version && v.has_prev == ev.has_prev);
	CHECK(!ev.has_prev || cim_cid_equal(&v.prev, &ev.prev));
	CHECK(view_text_is(v.aggregate_type, v.aggregate_type_len,
			   ev.aggregate_type));
	CHECK(view_text_is(v.aggregate_id, v.aggregate_id_len,
			   ev.aggregate_id));
	CHECK(view_text_is(v.event_type, v.event_type_len, ev.event_type));
	CHECK(view_id_is(v.event_id, v.event_id_len, ev.event_id,
			 ev.event_id_len));
	CHECK(view_id_is(v.correlation_id, v.correlation_id_len,
			 ev.correlation_id, ev.correlation_id_len));
	CHECK(view_id_is(v.causation_id, v.causation_id_len, ev.causation_id,
			 ev.causation_id_len));
	CHECK(view_text_is(v.timestamp, v.timestamp_len, ev.timestamp));
	CHECK(v.data > data && v.data + v.data_len <= data + size);
	CHECK(v.metadata > data && v.metadata + v.metadata_len <= data + size);
	check_reads_as(v.data, v.data_len, ev.data, CIM_MAX_DEPTH);
	check_reads_as(v.metadata, v.metadata_len, ev.metadata, 1);

	/* the two reply writers agree */
	jo = cim_event_to_json(&ev, &cid0, 7);
	CHECK(jo != NULL);
	CHECK(cim_json_write(&text, jo) == 0);
	CHECK(same_bytes(reply.p, reply.len, text.p, text.len));
	json_decref(jo);

	/* canonical: encoded again, the same bytes */
	if (cim_event_encode(&ev, &out, err, sizeof(err)) != 0) {
		/* only data with bytes or links, grown too deep as DAG-JSON */
		CHECK(has_bytes_or_links(v.data, v.data_len));
		goto done;
	}
	if (!has_bytes_or_links(v.data, v.data_len)) {
		CHECK(same_bytes(out.p, out.len, data, size));
		goto done;
	}
	CHECK_OK(cim_event_check(out.p, out.len, &v2, err, sizeof(err)), err);
	pre = (size_t)(v.data - data);
	post = size - pre - v.data_len;
	pre2 = (size_t)(v2.data - out.p);
	post2 = out.len - pre2 - v2.data_len;
	CHECK(same_bytes(data, pre, out.p, pre2));
	CHECK(same_bytes(v.data + v.data_len, post, v2.data + v2.data_len,
			 post2));
	check_reads_as(v2.data, v2.data_len, ev.data, CIM_MAX_DEPTH);
done:
	cim_event_block_free(&ev);
	cbuf_free(&reply);
	cbuf_free(&text);
	cbuf_free(&out);
}

/* ---- snapshot blocks ------------------------------------------------------------- */

/* Where the state (the first value, "state" being the shortest key) is in
 * an accepted snapshot block. */
static void
state_at(const uint8_t *p, size_t len, size_t *at, size_t *end)
{
	cim_cbor_keys ks = CIM_CBOR_KEYS_INIT;
	cim_cbor_item it;
	cim_cbor_reader r;

	cim_cbor_reader_init(&r, p, len);
	CHECK(cim_cbor_next(&r, &it) == 0 && it.kind == CIM_CBOR_MAP);
	CHECK(cim_cbor_next_key(&r, &ks, &it) == 0);
	CHECK(it.len == 5 && memcmp(it.data, "state", 5) == 0);
	*at = r.pos;
	CHECK(cim_cbor_skip(&r, CIM_MAX_DEPTH) == 0);
	*end = r.pos;
}

static void
fuzz_snapshot(const uint8_t *data, size_t size)
{
	char err[256] = "";
	cim_snapshot_block s, zero;
	cbuf out = CBUF_INIT;
	size_t at, end, at2, end2;

	if (cim_snapshot_decode(data, size, &s, err, sizeof(err)) != 0) {
		memset(&zero, 0, sizeof(zero));
		CHECK(memcmp(&s, &zero, sizeof(s)) == 0);
		CHECK(err[0] != '\0');
		return;
	}
	CHECK(s.aggregate_type != NULL && s.aggregate_id != NULL &&
	      s.timestamp != NULL && s.state != NULL);
	CHECK(s.version >= 1);
	CHECK(cim_cid_info(&s.event_cid, NULL, NULL) == 0);

	state_at(data, size, &at, &end);
	if (cim_snapshot_encode(&s, &out, err, sizeof(err)) != 0) {
		CHECK(has_bytes_or_links(data + at, end - at));
		goto done;
	}
	if (!has_bytes_or_links(data + at, end - at)) {
		CHECK(same_bytes(out.p, out.len, data, size));
		goto done;
	}
	state_at(out.p, out.len, &at2, &end2);
	CHECK(same_bytes(data, at, out.p, at2));
	CHECK(same_bytes(data + end, size - end, out.p + end2, out.len - end2));
	check_reads_as(out.p + at2, end2 - at2, s.state, CIM_MAX_DEPTH);
done:
	cim_snapshot_block_free(&s);
	cbuf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_value(data, size);
	fuzz_event(data, size);
	fuzz_snapshot(data, size);
	return 0;
}
