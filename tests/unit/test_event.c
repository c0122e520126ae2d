/*
 * test_event.c: the event block: exact key order, encode/decode round
 * trips, each way a stored block can be refused, and the reply form.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "dagcbor.h"
#include "event.h"

static json_t *
parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

	cr_assert_not_null(v, "bad test JSON %s: %s", text, jerr.text);
	return v;
}

/* A sample block; the caller frees data and metadata. */
static void
sample(cim_event_block *ev, uint64_t version)
{
	memset(ev, 0, sizeof(*ev));
	ev->aggregate_type = "order";
	ev->aggregate_id = "order-17";
	ev->version = version;
	ev->event_type = "OrderPlaced";
	ev->event_id = "0190f3c2-7b7e-7cc0-9b3e-1a2b3c4d5e6f";
	ev->correlation_id = "corr-1";
	ev->causation_id = "cause-1";
	ev->timestamp = "2026-11-22T10:00:00.123456789Z";
	ev->metadata = parse("{\"user\":\"ann\",\"ip\":\"10.0.0.1\"}");
	ev->data = parse("{\"total\":42,\"items\":[1,2.5,\"x\",null,true]}");
	if (version > 1) {
		ev->has_prev = true;
		cr_assert_eq(cim_cid_compute(&ev->prev, CIM_CODEC_DAG_CBOR,
					     CIM_MH_BLAKE2B_256,
					     (const uint8_t *)"prev", 4), 0);
	}
}

static void
sample_free(cim_event_block *ev)
{
	json_decref(ev->metadata);
	json_decref(ev->data);
}

static void
encode_ok(const cim_event_block *ev, cbuf *b)
{
	char err[160] = "";

	cr_assert_eq(cim_event_encode(ev, b, err, sizeof(err)), 0, "%s", err);
}

/* Encodes a JSON object (keys sorted canonically by the writer) as a
 * block and expects cim_event_decode to refuse it. */
static void
refuse_json_block(const char *text)
{
	json_t *v = parse(text);
	cbuf b = CBUF_INIT;
	cim_event_block ev;
	char err[160] = "";

	cr_assert_eq(cim_cbor_write_json(&b, v, CIM_MAX_DEPTH, err,
					 sizeof(err)), 0);
	cr_assert_eq(cim_event_decode(b.p, b.len, &ev, err, sizeof(err)), -1,
		     "accepted %s", text);
	cr_assert_neq(err[0], '\0');
	cr_assert_null(ev.event_id);
	cr_assert_null(ev.data);
	json_decref(v);
	cbuf_free(&b);
}

static void
refuse_block(const cim_event_block *src)
{
	cbuf b = CBUF_INIT;
	cim_event_block ev;
	char err[160] = "";

	encode_ok(src, &b);
	cr_assert_eq(cim_event_decode(b.p, b.len, &ev, err, sizeof(err)), -1);
	cr_assert_neq(err[0], '\0');
	cr_assert_null(ev.aggregate_type, "a failed decode leaves ev empty");
	cbuf_free(&b);
}

#define GOOD_V1_FIELDS                                                         \
	"\"aggregate_type\":\"order\",\"aggregate_id\":\"o-1\","                \
	"\"event_type\":\"A\",\"event_id\":\"e\",\"correlation_id\":\"e\","     \
	"\"causation_id\":\"e\",\"timestamp\":\"2026-11-22T10:00:00.0Z\","      \
	"\"data\":{}"

Test(event, keys_in_canonical_order)
{
	static const char *const order[] = {"data", "prev", "version",
		"event_id", "metadata", "timestamp", "event_type",
		"aggregate_id", "causation_id", "aggregate_type",
		"correlation_id"};
	cim_event_block ev;
	cbuf b = CBUF_INIT;
	cim_cbor_reader r;
	cim_cbor_item it;
	json_t *v;
	char err[160];

	sample(&ev, 1);
	encode_ok(&ev, &b);
	cr_assert_eq(b.p[0], 0xab, "a map of 11");
	cr_assert_eq(memcmp(b.p + 1, "\x64" "data", 5), 0);
	/* The generic strict reader accepts it (so the order is canonical)
	 * and the first key of each pair follows the table. */
	cr_assert_eq(cim_cbor_decode_json(b.p, b.len, CIM_MAX_DEPTH, &v, err,
					  sizeof(err)), 0, "%s", err);
	cr_assert_eq(json_object_size(v), 11);
	json_decref(v);
	cim_cbor_reader_init(&r, b.p, b.len);
	cr_assert_eq(cim_cbor_next(&r, &it), 0);
	for (int k = 0; k < 11; k++) {
		cr_assert_eq(cim_cbor_next(&r, &it), 0);
		cr_assert_eq(it.kind, CIM_CBOR_TEXT);
		cr_assert_eq(it.len, strlen(order[k]));
		cr_assert_eq(memcmp(it.data, order[k], it.len), 0);
		cr_assert_eq(cim_cbor_read_json(&r, CIM_MAX_DEPTH, &v), 0,
			     "%s", r.err);
		json_decref(v);
	}
	cr_assert_eq(r.pos, b.len);
	sample_free(&ev);
	cbuf_free(&b);
}

Test(event, round_trip_version_1)
{
	cim_event_block ev, back;
	cbuf b = CBUF_INIT, b2 = CBUF_INIT;
	char err[160] = "";

	sample(&ev, 1);
	encode_ok(&ev, &b);
	cr_assert_eq(cim_event_decode(b.p, b.len, &back, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_str_eq(back.aggregate_type, "order");
	cr_assert_str_eq(back.aggregate_id, "order-17");
	cr_assert_eq(back.version, 1);
	cr_assert_str_eq(back.event_type, "OrderPlaced");
	cr_assert_str_eq(back.event_id, ev.event_id);
	cr_assert_str_eq(back.correlation_id, "corr-1");
	cr_assert_str_eq(back.causation_id, "cause-1");
	cr_assert_str_eq(back.timestamp, ev.timestamp);
	cr_assert(json_equal(back.metadata, ev.metadata));
	cr_assert(json_equal(back.data, ev.data));
	cr_assert_not(back.has_prev);
	encode_ok(&back, &b2);
	cr_assert_eq(b2.len, b.len);
	cr_assert_eq(memcmp(b2.p, b.p, b.len), 0, "re-encoding is identical");
	cim_event_block_free(&back);
	cr_assert_null(back.data);
	sample_free(&ev);
	cbuf_free(&b);
	cbuf_free(&b2);
}

Test(event, round_trip_with_prev)
{
	cim_event_block ev, back;
	cbuf b = CBUF_INIT;
	char err[160] = "";

	sample(&ev, 2);
	encode_ok(&ev, &b);
	cr_assert_eq(cim_event_decode(b.p, b.len, &back, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(back.version, 2);
	cr_assert(back.has_prev);
	cr_assert(cim_cid_equal(&back.prev, &ev.prev));
	cim_event_block_free(&back);
	sample_free(&ev);
	cbuf_free(&b);
}

Test(event, empty_metadata_and_scalar_data)
{
	cim_event_block ev, back;
	cbuf b = CBUF_INIT;
	char err[160] = "";

	sample(&ev, 1);
	json_decref(ev.metadata);
	json_decref(ev.data);
	ev.metadata = json_object();
	ev.data = json_integer(-5);
	encode_ok(&ev, &b);
	cr_assert_eq(cim_event_decode(b.p, b.len, &back, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(json_object_size(back.metadata), 0);
	cr_assert_eq(json_integer_value(back.data), -5);
	cim_event_block_free(&back);
	sample_free(&ev);
	cbuf_free(&b);
}

Test(event, encode_refuses_bad_metadata_and_deep_data)
{
	cim_event_block ev;
	cbuf b = CBUF_INIT;
	char err[160] = "", text[2 * CIM_MAX_DEPTH + 8];
	int i;

	sample(&ev, 1);
	json_object_set_new(ev.metadata, "n", json_integer(1));
	cr_assert_eq(cim_event_encode(&ev, &b, err, sizeof(err)), -1);
	cr_assert_eq(b.len, 0);
	cr_assert_neq(err[0], '\0');
	json_object_del(ev.metadata, "n");

	for (i = 0; i <= CIM_MAX_DEPTH; i++)
		text[i] = '[';
	for (i = 0; i <= CIM_MAX_DEPTH; i++)
		text[CIM_MAX_DEPTH + 1 + i] = ']';
	text[2 * CIM_MAX_DEPTH + 2] = '\0';
	json_decref(ev.data);
	ev.data = parse(text);
	err[0] = '\0';
	cr_assert_eq(cim_event_encode(&ev, &b, err, sizeof(err)), -1);
	cr_assert_eq(b.len, 0, "a failed encode leaves the buffer as it was");
	cr_assert_neq(err[0], '\0');
	sample_free(&ev);
	cbuf_free(&b);
}

Test(event, decode_accepts_good_json_block)
{
	json_t *v = parse("{" GOOD_V1_FIELDS ",\"version\":1,\"prev\":null,"
			  "\"metadata\":{}}");
	cbuf b = CBUF_INIT;
	cim_event_block ev;
	char err[160] = "";

	cr_assert_eq(cim_cbor_write_json(&b, v, CIM_MAX_DEPTH, err,
					 sizeof(err)), 0);
	cr_assert_eq(cim_event_decode(b.p, b.len, &ev, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_str_eq(ev.aggregate_id, "o-1");
	cim_event_block_free(&ev);
	json_decref(v);
	cbuf_free(&b);
}

Test(event, decode_refuses_missing_key)
{
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":1,\"prev\":null}");
}

Test(event, decode_refuses_extra_key)
{
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":1,\"prev\":null,"
			  "\"metadata\":{},\"zzz\":1}");
}

Test(event, decode_refuses_wrong_key)
{
	/* eleven keys, but "metadatx" in place of "metadata" */
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":1,\"prev\":null,"
			  "\"metadatx\":{}}");
}

Test(event, decode_refuses_version_0)
{
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":0,\"prev\":null,"
			  "\"metadata\":{}}");
}

Test(event, decode_refuses_wrong_types)
{
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":-1,\"prev\":null,"
			  "\"metadata\":{}}");
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":1.0,\"prev\":null,"
			  "\"metadata\":{}}");
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":1,\"prev\":\"b\","
			  "\"metadata\":{}}");
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":1,\"prev\":null,"
			  "\"metadata\":[]}");
	refuse_json_block("{\"aggregate_type\":7,\"aggregate_id\":\"o-1\","
			  "\"event_type\":\"A\",\"event_id\":\"e\","
			  "\"correlation_id\":\"e\",\"causation_id\":\"e\","
			  "\"timestamp\":\"t\",\"data\":{},\"version\":1,"
			  "\"prev\":null,\"metadata\":{}}");
}

Test(event, decode_refuses_metadata_non_string)
{
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":1,\"prev\":null,"
			  "\"metadata\":{\"a\":1}}");
	refuse_json_block("{" GOOD_V1_FIELDS ",\"version\":1,\"prev\":null,"
			  "\"metadata\":{\"a\":{}}}");
}

Test(event, decode_refuses_prev_at_version_1)
{
	cim_event_block ev;

	sample(&ev, 2);
	ev.version = 1;
	refuse_block(&ev);
	sample_free(&ev);
}

Test(event, decode_refuses_null_prev_at_version_2)
{
	cim_event_block ev;

	sample(&ev, 2);
	ev.has_prev = false;
	refuse_block(&ev);
	sample_free(&ev);
}

Test(event, decode_refuses_trailing_and_truncated)
{
	cim_event_block ev, back;
	cbuf b = CBUF_INIT;
	char err[160];

	sample(&ev, 1);
	encode_ok(&ev, &b);
	cbuf_putc(&b, 0x00);
	cr_assert_eq(cim_event_decode(b.p, b.len, &back, err, sizeof(err)),
		     -1);
	cr_assert_eq(cim_event_decode(b.p, b.len - 2, &back, err,
				      sizeof(err)), -1);
	cr_assert_eq(cim_event_decode(b.p, 0, &back, err, sizeof(err)), -1);
	cr_assert_eq(cim_event_decode(b.p, b.len - 1, &back, err,
				      sizeof(err)), 0, "%s", err);
	cim_event_block_free(&back);
	sample_free(&ev);
	cbuf_free(&b);
}

Test(event, to_json_reply_form)
{
	cim_event_block ev;
	cim_cid cid;
	char text[CIM_CID_TEXT_MAX], prev[CIM_CID_TEXT_MAX];
	json_t *o;

	sample(&ev, 2);
	cr_assert_eq(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR,
				     CIM_MH_BLAKE2B_256,
				     (const uint8_t *)"x", 1), 0);
	cim_cid_to_text(&cid, text);
	cim_cid_to_text(&ev.prev, prev);
	o = cim_event_to_json(&ev, &cid, 1203);
	cr_assert_not_null(o);
	cr_assert_str_eq(json_string_value(json_object_get(o, "cid")), text);
	cr_assert_str_eq(json_string_value(json_object_get(o, "prev")), prev);
	cr_assert_eq(json_integer_value(json_object_get(o, "seq")), 1203);
	cr_assert_eq(json_integer_value(json_object_get(o, "version")), 2);
	cr_assert_str_eq(json_string_value(json_object_get(o,
			 "aggregate_type")), "order");
	cr_assert_str_eq(json_string_value(json_object_get(o, "timestamp")),
			 ev.timestamp);
	cr_assert(json_equal(json_object_get(o, "data"), ev.data));
	cr_assert(json_equal(json_object_get(o, "metadata"), ev.metadata));
	cr_assert_eq(json_object_size(o), 13);
	json_decref(o);

	ev.has_prev = false;
	ev.version = 1;
	o = cim_event_to_json(&ev, &cid, 1);
	cr_assert(json_is_null(json_object_get(o, "prev")));
	json_decref(o);
	sample_free(&ev);
}
