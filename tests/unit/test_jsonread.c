/*
 * test_jsonread.c: every valid JSON string, U+0000 included, in keys too,
 * read (cim_json_read), encoded as DAG-CBOR, stored in a block, decoded
 * and written back as JSON text, byte for byte; and the reader's refusals
 * in words about the text.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "dagcbor.h"
#include "event.h"
#include "jsonread.h"
#include "jsontext.h"
#include "snapshot.h"

static json_t *rd(const char *text)
{
	json_error_t e;
	json_t *v = cim_json_read(text, strlen(text), JSON_DECODE_ANY, &e);

	cr_assert_not_null(v, "refused %s: %s", text, e.text);
	return v;
}

/* The compact text of v (cim_json_write), as a new string. */
static char *text_of(const json_t *v)
{
	char *t = cim_json_text(v);

	cr_assert_not_null(t);
	return t;
}

/* Texts already in the writer's compact form, keys in canonical order
 * (length first, then bytewise), with U+0000 at the start,
 * in the middle and at the end of values and keys, and keys that are
 * equal up to a NUL. The private-use characters U+E000 and U+E001 are
 * the reader's escape inside keys: they must come through too. */
static const char *const texts[] = {
	"\"\\u0000\"",
	"\"\\u0000abc\"",
	"\"ab\\u0000c\"",
	"\"abc\\u0000\"",
	"\"\\u0000\\u0000\\u0000\"",
	"[\"\\u0000\",\"a\\u0000\",{\"\\u0000\":\"\\u0000\"}]",
	"{\"\":5,\"k\":4,\"\\u0000k\":1,\"k\\u0000\":2,\"k\\u0000k\":3}",
	"{\"a\":{\"b\\u0000\":{\"\\u0000c\":[\"d\\u0000\"]}}}",
	"{\"\\u0000\":3,\"\xee\x80\x80\":1,\"\xee\x80\x81\":2,"
	"\"\xee\x80\x80\xee\x80\x81\\u0000\":4}",
	"{\"k\\u0000\":\"\xee\x80\x80\",\"\xee\x80\x80\\u0000\xee\x80\x80\":"
	"\"\xee\x80\x81\"}",
	"{\"\\u0001\\u001f\\\"\\\\\\n\":\"\\u0000\\t\\r\"}",
};

Test(jsonread, round_trips_through_cbor_and_json_text)
{
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		json_t *v = rd(texts[i]), *back = NULL;
		cbuf cb = CBUF_INIT, jt = CBUF_INIT;
		cim_cbor_reader r;
		char err[160] = "";
		char *t = text_of(v), *t2;

		cr_assert_str_eq(t, texts[i], "the reader and writer agree");
		cr_assert_eq(cim_cbor_write_json(&cb, v, CIM_MAX_DEPTH, err,
						 sizeof err), 0, "%s", err);
		/* back as jansson values */
		cr_assert_eq(cim_cbor_decode_json(cb.p, cb.len, CIM_MAX_DEPTH,
						  &back, err, sizeof err), 0,
			     "%s", err);
		t2 = text_of(back);
		cr_assert_str_eq(t2, texts[i], "through jansson values");
		/* and straight to text, without jansson */
		cim_cbor_reader_init(&r, cb.p, cb.len);
		cr_assert_eq(cim_cbor_read_json_text(&r, CIM_MAX_DEPTH, &jt), 0,
			     "%s", r.err);
		cr_assert_eq(jt.len, strlen(texts[i]));
		cr_assert_eq(memcmp(jt.p, texts[i], jt.len), 0,
			     "straight to text: %.*s", (int)jt.len, jt.p);
		free(t);
		free(t2);
		cbuf_free(&cb);
		cbuf_free(&jt);
		json_decref(back);
		json_decref(v);
	}
}

/* Keys in canonical DAG-CBOR order count U+0000 as the byte it is: "a"
 * (1 byte) before "\0a" before "a\0" (2 bytes). */
Test(jsonread, nul_keys_sort_as_bytes)
{
	json_t *v = rd("{\"a\\u0000\":1,\"\\u0000a\":2,\"a\":3}");
	cbuf cb = CBUF_INIT;
	static const uint8_t want[] = {0xa3, 0x61, 'a', 0x03, 0x62, 0x00, 'a',
				       0x02, 0x62, 'a', 0x00, 0x01};

	cr_assert_eq(cim_cbor_write_json(&cb, v, CIM_MAX_DEPTH, NULL, 0), 0);
	cr_assert_eq(cb.len, sizeof want);
	cr_assert_eq(memcmp(cb.p, want, sizeof want), 0);
	cbuf_free(&cb);
	json_decref(v);
}

/* A block whose ids, metadata and data hold U+0000: encoded, decoded,
 * checked and shown, every reader agreeing and nothing cut. */
Test(jsonread, event_block_with_nul_everywhere)
{
	static const char eid[] = "\0e\0v\0";
	static const char corr[] = "c\0";
	static const char cause[] = "\0";
	cim_event_block ev = {0}, got;
	cim_event_view view;
	cbuf b = CBUF_INIT, jt = CBUF_INIT;
	char err[160] = "", *t;
	cim_cid cid;
	json_t *shown;

	ev.aggregate_type = "order";
	ev.aggregate_id = "o-1";
	ev.version = 1;
	ev.event_type = "Placed";
	ev.event_id = (char *)eid;
	ev.event_id_len = sizeof eid - 1;
	ev.correlation_id = (char *)corr;
	ev.correlation_id_len = sizeof corr - 1;
	ev.causation_id = (char *)cause;
	ev.causation_id_len = sizeof cause - 1;
	ev.timestamp = "2026-11-22T10:00:00.123456789Z";
	ev.metadata = rd("{\"m\\u0000\":\"\\u0000v\"}");
	ev.data = rd("{\"\\u0000\":[\"x\\u0000\"],\"k\\u0000\":\"\"}");
	cr_assert_eq(cim_event_encode(&ev, &b, err, sizeof err), 0, "%s", err);
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, b.p, b.len);

	cr_assert_eq(cim_event_decode(b.p, b.len, &got, err, sizeof err), 0,
		     "%s", err);
	cr_assert_eq(got.event_id_len, sizeof eid - 1);
	cr_assert_eq(memcmp(got.event_id, eid, sizeof eid), 0);
	cr_assert_eq(got.correlation_id_len, 2);
	cr_assert_eq(memcmp(got.correlation_id, corr, 3), 0);
	cr_assert_eq(got.causation_id_len, 1);
	cr_assert_eq(cim_event_check(b.p, b.len, &view, err, sizeof err), 0);
	cr_assert_eq(view.event_id_len, sizeof eid - 1);
	cr_assert_eq(memcmp(view.event_id, eid, view.event_id_len), 0);

	/* the reply form both ways, byte for byte */
	shown = cim_event_to_json(&got, &cid, 9);
	cr_assert_not_null(shown);
	t = text_of(shown);
	cr_assert_eq(cim_event_write_json(&jt, b.p, b.len, &cid, 9, err,
					  sizeof err), 0, "%s", err);
	cr_assert_eq(jt.len, strlen(t));
	cr_assert_eq(memcmp(jt.p, t, jt.len), 0, "%s vs %.*s", t, (int)jt.len,
		     jt.p);
	cr_assert(strstr(t, "\"event_id\":\"\\u0000e\\u0000v\\u0000\"") != NULL,
		  "%s", t);
	cr_assert(strstr(t, "\"correlation_id\":\"c\\u0000\"") != NULL);
	cr_assert(strstr(t, "\"causation_id\":\"\\u0000\"") != NULL);
	cr_assert(strstr(t, "\"metadata\":{\"m\\u0000\":\"\\u0000v\"}") != NULL);
	cr_assert(strstr(t, "\"data\":{\"\\u0000\":[\"x\\u0000\"],"
			    "\"k\\u0000\":\"\"}") != NULL, "%s", t);

	/* encoded again from what was decoded: the same bytes */
	cbuf_reset(&jt);
	cr_assert_eq(cim_event_encode(&got, &jt, err, sizeof err), 0, "%s", err);
	cr_assert_eq(jt.len, b.len);
	cr_assert_eq(memcmp(jt.p, b.p, b.len), 0);

	free(t);
	json_decref(shown);
	cim_event_block_free(&got);
	json_decref(ev.metadata);
	json_decref(ev.data);
	cbuf_free(&b);
	cbuf_free(&jt);
}

/* The types, the aggregate id and the timestamp keep their rules: a NUL
 * there is refused, by every reader alike. */
Test(jsonread, nul_in_a_type_is_still_refused)
{
	cim_event_block ev = {0}, got;
	cim_event_view view;
	cbuf b = CBUF_INIT;
	char err[160] = "", err2[160] = "";

	ev.aggregate_type = "order";
	ev.aggregate_id = "o-1";
	ev.version = 1;
	ev.event_type = "Placed";
	ev.event_id = ev.correlation_id = ev.causation_id = "e";
	ev.timestamp = "2026-11-22T10:00:00.123456789Z";
	cr_assert_eq(cim_event_encode(&ev, &b, err, sizeof err), 0, "%s", err);
	/* the event_type "Placed" with its P turned into a NUL */
	uint8_t *p = memmem(b.p, b.len, "Placed", 6);
	cr_assert_not_null(p);
	*p = 0;
	cr_assert_eq(cim_event_decode(b.p, b.len, &got, err, sizeof err), -1);
	cr_assert_eq(cim_event_check(b.p, b.len, &view, err2, sizeof err2), -1);
	cr_assert_str_eq(err, err2);
	cr_assert(strstr(err, "event_type holds a NUL") != NULL, "%s", err);
	cbuf_free(&b);
}

/* Refusals say what is wrong with the text, never a library's flag, and
 * where: line and column as jansson counts them (column: characters up to
 * where it stopped) in the text as sent, also past a key the reader had
 * to escape. */
Test(jsonread, refusals_in_words_about_the_text)
{
	static const struct {
		const char *text;
		const char *says;
		int line, column;
	} cases[] = {
		{"{\"a\":", "ends before", 1, 5},
		{"{\"a\":1} x", "more text after", 1, 9},
		{"{\"a\":1,\"a\":2}", "same key twice", 1, 10},
		{"{\"a\":\"\\ud800\"}", "lone surrogate", 1, 13},
		{"{\"a\":\"x\ny\"}", "line break", 1, 7},
		{"{\"a\":\"x\x01y\"}", "control character", 1, 7},
		{"{\"a\":\"\\q\"}", "invalid escape", 1, 8},
		{"{\"a\":\"\xff\"}", "not valid UTF-8", 1, 6},
		/* found after the reader escaped the keys: where jansson
		 * would say for the text as it is */
		{"{\"\\u0000\":1,\"\\u0000\":2}", "same key twice", 1, 20},
		{"{\"\\u0000\xee\x80\x80\":1,\n \"b\":tru}", "invalid token", 2,
		 8},
		{"{\"\\u0000\":1,\"\xee\x80\x80x\":tru}", "invalid token", 1,
		 20},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_error_t e;
		json_t *v = cim_json_read(cases[i].text, strlen(cases[i].text),
					  0, &e);

		cr_assert_null(v, "accepted %s", cases[i].text);
		cr_assert(strstr(e.text, cases[i].says) != NULL,
			  "%s: says \"%s\"", cases[i].text, e.text);
		cr_assert(strstr(e.text, "JSON_") == NULL &&
			  strstr(e.text, "NUL byte") == NULL &&
			  strstr(e.text, "ue001") == NULL &&
			  strstr(e.text, "not supported") == NULL,
			  "%s: says \"%s\"", cases[i].text, e.text);
		cr_assert_eq(e.line, cases[i].line, "%s: line %d",
			     cases[i].text, e.line);
		cr_assert_eq(e.column, cases[i].column, "%s: column %d",
			     cases[i].text, e.column);
	}
}

/* Message quoting: JSON escapes, the first 40 bytes, cut at a character. */
Test(jsonread, quote_for_messages)
{
	char q[64];
	char long_id[100];

	cim_json_quote(q, sizeof q, "a\0b\"", 4);
	cr_assert_str_eq(q, "\"a\\u0000b\\\"\"");
	memset(long_id, 'x', sizeof long_id);
	long_id[39] = '\xc3';
	long_id[40] = '\xa9';
	cim_json_quote(q, sizeof q, long_id, sizeof long_id);
	cr_assert_str_eq(q, "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"");
}

/* Snapshot state holding U+0000 in keys and values: encoded, decoded,
 * the same canonical bytes. */
Test(jsonread, snapshot_state_with_nul)
{
	cim_snapshot_block s = {0}, got;
	cbuf b = CBUF_INIT, x = CBUF_INIT, y = CBUF_INIT;
	char err[160] = "";

	s.aggregate_type = "order";
	s.aggregate_id = "o-1";
	s.version = 3;
	cr_assert_eq(cim_cid_compute(&s.event_cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256,
				     (const uint8_t *)"e", 1), 0);
	s.timestamp = "2026-11-22T10:00:00.123456789Z";
	s.state = rd("{\"\\u0000\":[\"a\\u0000\"],\"k\\u0000k\":{\"\\u0000\":\"\\u0000\"}}");
	cr_assert_eq(cim_snapshot_encode(&s, &b, err, sizeof err), 0, "%s", err);
	cr_assert_eq(cim_snapshot_decode(b.p, b.len, &got, err, sizeof err), 0, "%s", err);
	cr_assert_eq(cim_cbor_write_json(&x, s.state, CIM_MAX_DEPTH, NULL, 0), 0);
	cr_assert_eq(cim_cbor_write_json(&y, got.state, CIM_MAX_DEPTH, NULL, 0), 0);
	cr_assert(x.len == y.len && memcmp(x.p, y.p, x.len) == 0);
	cim_snapshot_block_free(&got);
	json_decref(s.state);
	cbuf_free(&b);
	cbuf_free(&x);
	cbuf_free(&y);
}
