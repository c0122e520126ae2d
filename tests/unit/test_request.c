/*
 * test_request.c: JSON request decoding: what is accepted, and each
 * refusal with its contract code and field.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ids.h"
#include "request.h"

static const cim_limits lim = {.max_events = 4, .max_depth = 8};

/* Parses an append body and expects a refusal with code and field. */
static void
append_err(const char *body, cim_err code, const char *field)
{
	cim_append_req r;
	cim_perr e;

	memset(&e, 0, sizeof(e));
	cr_assert_eq(cim_append_req_parse(body, strlen(body), &lim, &r, &e),
		     -1, "accepted %s", body);
	cr_assert_eq(e.code, code, "%s: code %s (%s), want %s", body,
		     cim_err_name(e.code), e.msg, cim_err_name(code));
	cr_assert_str_eq(e.field, field, "%s: field", body);
	cr_assert_neq(e.msg[0], '\0');
	cr_assert_null(r.root);
	cr_assert_null(r.events);
}

static void
append_ok(const char *body, cim_append_req *r)
{
	cim_perr e;

	memset(&e, 0, sizeof(e));
	cr_assert_eq(cim_append_req_parse(body, strlen(body), &lim, r, &e), 0,
		     "%s: %s", body, e.msg);
}

static cim_expect
expect_of(const char *body, uint64_t *v)
{
	cim_append_req r;
	cim_expect k;

	append_ok(body, &r);
	k = r.expect;
	*v = r.expected_version;
	cim_append_req_free(&r);
	return k;
}

#define EV1 "\"events\":[{\"event_type\":\"A\",\"data\":1}]"

Test(request, append_full)
{
	cim_append_req r;
	const char *body =
	    "{\"expected_version\":3,\"events\":["
	    "{\"event_type\":\"OrderPlaced\",\"data\":{\"total\":42},"
	    "\"event_id\":\"id-1\",\"correlation_id\":\"c-1\","
	    "\"causation_id\":\"k-1\",\"metadata\":{\"who\":\"ann\"}},"
	    "{\"event_type\":\"Paid\",\"data\":null}]}";

	append_ok(body, &r);
	cr_assert_eq(r.expect, CIM_EXPECT_KIND_EXACT);
	cr_assert_eq(r.expected_version, 3);
	cr_assert_eq(r.n, 2);
	cr_assert_str_eq(r.events[0].event_type, "OrderPlaced");
	cr_assert_eq(json_integer_value(json_object_get(r.events[0].data,
							"total")), 42);
	cr_assert_str_eq(r.events[0].event_id, "id-1");
	cr_assert_str_eq(r.events[0].correlation_id, "c-1");
	cr_assert_str_eq(r.events[0].causation_id, "k-1");
	cr_assert_str_eq(json_string_value(json_object_get(
			 r.events[0].metadata, "who")), "ann");
	cr_assert_str_eq(r.events[1].event_type, "Paid");
	cr_assert(json_is_null(r.events[1].data));
	cr_assert_null(r.events[1].event_id);
	cr_assert_null(r.events[1].correlation_id);
	cr_assert_null(r.events[1].causation_id);
	cr_assert_null(r.events[1].metadata);
	cim_append_req_free(&r);
	cr_assert_null(r.root);
}

Test(request, expected_version_forms)
{
	uint64_t v = 99;

	cr_assert_eq(expect_of("{" EV1 "}", &v), CIM_EXPECT_KIND_ANY);
	cr_assert_eq(expect_of("{\"expected_version\":\"any\"," EV1 "}", &v),
		     CIM_EXPECT_KIND_ANY);
	cr_assert_eq(expect_of("{\"expected_version\":\"no_stream\"," EV1 "}",
			       &v), CIM_EXPECT_KIND_NO_STREAM);
	cr_assert_eq(expect_of("{\"expected_version\":\"exists\"," EV1 "}",
			       &v), CIM_EXPECT_KIND_EXISTS);
	cr_assert_eq(expect_of("{\"expected_version\":0," EV1 "}", &v),
		     CIM_EXPECT_KIND_NO_STREAM);
	cr_assert_eq(expect_of("{\"expected_version\":7," EV1 "}", &v),
		     CIM_EXPECT_KIND_EXACT);
	cr_assert_eq(v, 7);
}

Test(request, expected_version_refused)
{
	append_err("{\"expected_version\":-1," EV1 "}",
		   CIM_ERR_INVALID_ARGUMENT, "expected_version");
	append_err("{\"expected_version\":\"latest\"," EV1 "}",
		   CIM_ERR_INVALID_ARGUMENT, "expected_version");
	append_err("{\"expected_version\":1.5," EV1 "}",
		   CIM_ERR_INVALID_REQUEST, "expected_version");
	append_err("{\"expected_version\":null," EV1 "}",
		   CIM_ERR_INVALID_REQUEST, "expected_version");
	append_err("{\"expected_version\":true," EV1 "}",
		   CIM_ERR_INVALID_REQUEST, "expected_version");
}

Test(request, events_shape)
{
	append_err("{\"events\":[]}", CIM_ERR_INVALID_ARGUMENT, "events");
	append_err("{}", CIM_ERR_INVALID_REQUEST, "events");
	append_err("", CIM_ERR_INVALID_REQUEST, "events");
	append_err("{\"events\":{}}", CIM_ERR_INVALID_REQUEST, "events");
	append_err("{\"events\":[1]}", CIM_ERR_INVALID_REQUEST, "events[0]");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1},"
		   "{\"event_type\":\"A\",\"data\":1},"
		   "{\"event_type\":\"A\",\"data\":1},"
		   "{\"event_type\":\"A\",\"data\":1},"
		   "{\"event_type\":\"A\",\"data\":1}]}",
		   CIM_ERR_PAYLOAD_TOO_LARGE, "events");
}

Test(request, max_events_accepted)
{
	cim_append_req r;

	append_ok("{\"events\":[{\"event_type\":\"A\",\"data\":1},"
		  "{\"event_type\":\"A\",\"data\":1},"
		  "{\"event_type\":\"A\",\"data\":1},"
		  "{\"event_type\":\"A\",\"data\":1}]}", &r);
	cr_assert_eq(r.n, 4);
	cim_append_req_free(&r);
}

Test(request, event_type_rules)
{
	append_err("{\"events\":[{\"event_type\":\"1abc\",\"data\":1}]}",
		   CIM_ERR_INVALID_ARGUMENT, "events[0].event_type");
	append_err("{\"events\":[{\"event_type\":\"a.b\",\"data\":1}]}",
		   CIM_ERR_INVALID_ARGUMENT, "events[0].event_type");
	append_err("{\"events\":[{\"event_type\":\"\",\"data\":1}]}",
		   CIM_ERR_INVALID_ARGUMENT, "events[0].event_type");
	append_err("{\"events\":[{\"event_type\":5,\"data\":1}]}",
		   CIM_ERR_INVALID_REQUEST, "events[0].event_type");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1},"
		   "{\"data\":1}]}",
		   CIM_ERR_INVALID_REQUEST, "events[1].event_type");
}

Test(request, data_rules)
{
	cim_append_req r;

	append_err("{\"events\":[{\"event_type\":\"A\"}]}",
		   CIM_ERR_INVALID_REQUEST, "events[0].data");
	/* depth 9 over a limit of 8 */
	append_err("{\"events\":[{\"event_type\":\"A\","
		   "\"data\":[[[[[[[[[1]]]]]]]]]}]}",
		   CIM_ERR_INVALID_REQUEST, "events[0].data");
	append_ok("{\"events\":[{\"event_type\":\"A\","
		  "\"data\":[[[[[[[{\"a\":1}]]]]]]]}]}", &r);
	cim_append_req_free(&r);
}

/* The ids are any string of at most CIM_EVENT_ID_MAX bytes: "", spaces,
 * control characters, U+0000 and non-ASCII text included. */
Test(request, id_rules)
{
	static const struct {
		const char *json;  /* as written in the body */
		const char *bytes; /* what it means */
		size_t len;
	} ok[] = {
		{"\"\"", "", 0},
		{"\"a b\"", "a b", 3},
		{"\"caf\\u00e9\"", "caf\xc3\xa9", 5},
		{"\"x\\ty\"", "x\ty", 3},
		{"\"\\u0000\"", "\0", 1},
		{"\"\\u0000a\"", "\0a", 2},
		{"\"a\\u0000b\"", "a\0b", 3},
		{"\"ab\\u0000\"", "ab\0", 3},
		{"\"\\r\\n\\u001f\\u007f\"", "\r\n\x1f\x7f", 4},
	};
	char body[512], id[200];
	cim_append_req r;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(body, sizeof(body), "{\"events\":[{\"event_type\":"
			 "\"A\",\"data\":1,\"event_id\":%s,"
			 "\"correlation_id\":%s,\"causation_id\":%s}]}",
			 ok[i].json, ok[i].json, ok[i].json);
		append_ok(body, &r);
		cr_assert_eq(r.events[0].event_id_len, ok[i].len, "%s", body);
		cr_assert_eq(memcmp(r.events[0].event_id, ok[i].bytes,
				    ok[i].len), 0, "%s", body);
		cr_assert_eq(r.events[0].correlation_id_len, ok[i].len);
		cr_assert_eq(memcmp(r.events[0].correlation_id, ok[i].bytes,
				    ok[i].len), 0);
		cr_assert_eq(r.events[0].causation_id_len, ok[i].len);
		cr_assert_eq(memcmp(r.events[0].causation_id, ok[i].bytes,
				    ok[i].len), 0);
		cim_append_req_free(&r);
	}

	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		   "\"event_id\":7}]}",
		   CIM_ERR_INVALID_REQUEST, "events[0].event_id");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		   "\"causation_id\":null}]}",
		   CIM_ERR_INVALID_REQUEST, "events[0].causation_id");
	/* ids that differ only after a NUL are two ids; the same id twice in
	 * one request is refused */
	append_ok("{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		  "\"event_id\":\"a\\u0000b\"},{\"event_type\":\"A\","
		  "\"data\":1,\"event_id\":\"a\\u0000c\"}]}", &r);
	cim_append_req_free(&r);
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		   "\"event_id\":\"a\\u0000b\"},{\"event_type\":\"A\","
		   "\"data\":1,\"event_id\":\"a\\u0000b\"}]}",
		   CIM_ERR_INVALID_ARGUMENT, "events[1].event_id");

	memset(id, 'x', CIM_EVENT_ID_MAX);
	id[CIM_EVENT_ID_MAX] = '\0';
	snprintf(body, sizeof(body), "{\"events\":[{\"event_type\":\"A\","
		 "\"data\":1,\"event_id\":\"%s\"}]}", id);
	append_ok(body, &r);
	cr_assert_eq(r.events[0].event_id_len, CIM_EVENT_ID_MAX);
	cim_append_req_free(&r);
	id[CIM_EVENT_ID_MAX] = 'x';
	id[CIM_EVENT_ID_MAX + 1] = '\0';
	snprintf(body, sizeof(body), "{\"events\":[{\"event_type\":\"A\","
		 "\"data\":1,\"event_id\":\"%s\"}]}", id);
	append_err(body, CIM_ERR_INVALID_ARGUMENT, "events[0].event_id");
	/* the limit is in bytes: 64 two-byte characters fit, 65 do not */
	strcpy(body, "{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		     "\"event_id\":\"");
	for (int i = 0; i < 65; i++)
		strcat(body, "\xc3\xa9");
	strcat(body, "\"}]}");
	append_err(body, CIM_ERR_INVALID_ARGUMENT, "events[0].event_id");
}

/* U+0000 anywhere in data and metadata, keys included, at the start, in
 * the middle and at the end, comes through with its length. */
Test(request, nul_in_data_and_metadata)
{
	cim_append_req r;
	const json_t *d, *m, *v;
	const char *key;
	size_t klen, n = 0;

	append_ok("{\"events\":[{\"event_type\":\"A\",\"data\":"
		  "{\"\\u0000k\":\"\\u0000v\",\"k\\u0000\":\"v\\u0000\","
		  "\"k\\u0000k\":[\"v\\u0000v\",{\"\\u0000\":\"\\u0000\"}],"
		  "\"k\":\"plain\"},"
		  "\"metadata\":{\"m\\u0000\":\"\\u0000x\",\"m\":\"y\"}}]}",
		  &r);
	d = r.events[0].data;
	m = r.events[0].metadata;
	cr_assert_eq(json_object_size(d), 4);
	json_object_keylen_foreach((json_t *)d, key, klen, v) {
		n++;
		if (klen == 2 && memcmp(key, "\0k", 2) == 0)
			cr_assert(json_string_length(v) == 2 &&
				  memcmp(json_string_value(v), "\0v", 2) == 0);
		else if (klen == 2 && memcmp(key, "k\0", 2) == 0)
			cr_assert(json_string_length(v) == 2 &&
				  memcmp(json_string_value(v), "v\0", 2) == 0);
		else if (klen == 3)
			cr_assert(memcmp(key, "k\0k", 3) == 0 &&
				  json_array_size(v) == 2);
		else
			cr_assert(klen == 1 && key[0] == 'k');
	}
	cr_assert_eq(n, 4);
	cr_assert_eq(json_object_size(m), 2);
	v = json_object_getn(m, "m\0", 2);
	cr_assert(json_is_string(v) && json_string_length(v) == 2 &&
		  memcmp(json_string_value(v), "\0x", 2) == 0);
	cim_append_req_free(&r);

	/* keys equal up to a NUL are not duplicates; equal keys are */
	append_ok("{\"events\":[{\"event_type\":\"A\",\"data\":"
		  "{\"a\":1,\"a\\u0000\":2,\"a\\u0000b\":3}}]}", &r);
	cr_assert_eq(json_object_size(r.events[0].data), 3);
	cim_append_req_free(&r);
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":"
		   "{\"a\\u0000\":1,\"a\\u0000\":2}}]}",
		   CIM_ERR_INVALID_REQUEST, "");
	/* a NUL key where a field name belongs is an unknown field, not the
	 * field it starts with */
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1}],"
		   "\"events\\u0000\":1}", CIM_ERR_INVALID_REQUEST,
		   "events\\u0000");
}

Test(request, metadata_rules)
{
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		   "\"metadata\":{\"a\":1}}]}",
		   CIM_ERR_INVALID_REQUEST, "events[0].metadata");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		   "\"metadata\":[\"a\"]}]}",
		   CIM_ERR_INVALID_REQUEST, "events[0].metadata");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		   "\"metadata\":{\"a\":\"b\",\"c\":{}}}]}",
		   CIM_ERR_INVALID_REQUEST, "events[0].metadata");
}

Test(request, unknown_fields)
{
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1}],"
		   "\"foo\":1}", CIM_ERR_INVALID_REQUEST, "foo");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1,"
		   "\"version\":1}]}", CIM_ERR_INVALID_REQUEST,
		   "events[0].version");
}

Test(request, not_json)
{
	append_err("{\"events\":", CIM_ERR_INVALID_REQUEST, "");
	append_err("[]", CIM_ERR_INVALID_REQUEST, "");
	append_err("\"text\"", CIM_ERR_INVALID_REQUEST, "");
	append_err("42", CIM_ERR_INVALID_REQUEST, "");
	append_err("{\"events\":[],\"events\":[]}", CIM_ERR_INVALID_REQUEST,
		   "");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":"
		   "{\"a\":1,\"a\":2}}]}", CIM_ERR_INVALID_REQUEST, "");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":\"\xff\"}]}",
		   CIM_ERR_INVALID_REQUEST, "");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":\"\xc0\xaf\"}]}",
		   CIM_ERR_INVALID_REQUEST, "");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":"
		   "\"\\ud800\"}]}", CIM_ERR_INVALID_REQUEST, "");
}

Test(request, integer_overflow_names_field)
{
	cim_append_req r;

	append_err("{\"events\":[{\"event_type\":\"A\","
		   "\"data\":{\"total\":9223372036854775808}}]}",
		   CIM_ERR_INVALID_ARGUMENT, "events[0].data.total");
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1},"
		   "{\"event_type\":\"A\",\"data\":"
		   "[1, {\"x\": [0, -9223372036854775809]}]}]}",
		   CIM_ERR_INVALID_ARGUMENT, "events[1].data[1].x[1]");
	append_err("{\"expected_version\":99999999999999999999," EV1 "}",
		   CIM_ERR_INVALID_ARGUMENT, "expected_version");
	append_err("{\"events\":[{\"data\":{\"a\\\"b\":\"]\",\"n\":1e999},"
		   "\"event_type\":\"A\"}]}",
		   CIM_ERR_INVALID_ARGUMENT, "events[0].data.n");
	append_ok("{\"events\":[{\"event_type\":\"A\",\"data\":"
		  "[9223372036854775807,-9223372036854775808]}]}", &r);
	cr_assert_eq(json_integer_value(json_array_get(r.events[0].data, 1)),
		     INT64_MIN);
	cim_append_req_free(&r);
}

Test(request, parse_request_empty_body)
{
	cim_perr e;
	json_t *v = cim_json_parse_request("", 0, &e);

	cr_assert(json_is_object(v));
	cr_assert_eq(json_object_size(v), 0);
	json_decref(v);
	v = cim_json_parse_request(" {\"a\": [1]} ", 12, &e);
	cr_assert(json_is_object(v));
	cr_assert_eq(json_array_size(json_object_get(v, "a")), 1);
	json_decref(v);
}

Test(request, empty_request)
{
	cim_perr e;

	cr_assert_eq(cim_empty_req_parse("", 0, &e), 0);
	cr_assert_eq(cim_empty_req_parse("{}", 2, &e), 0);
	cr_assert_eq(cim_empty_req_parse("{\"a\":1}", 7, &e), -1);
	cr_assert_eq(e.code, CIM_ERR_INVALID_REQUEST);
	cr_assert_str_eq(e.field, "a");
	cr_assert_eq(cim_empty_req_parse("nope", 4, &e), -1);
	cr_assert_eq(e.code, CIM_ERR_INVALID_REQUEST);
}

static int
get_req(const char *body, uint64_t *from, uint64_t *limit, cim_perr *e)
{
	*from = 12345;
	*limit = 12345;
	return cim_get_req_parse(body, strlen(body), 100, 1000, from, limit,
				 e);
}

Test(request, get_request)
{
	uint64_t from, limit;
	cim_perr e;

	cr_assert_eq(get_req("", &from, &limit, &e), 0);
	cr_assert_eq(from, 1);
	cr_assert_eq(limit, 100);
	cr_assert_eq(get_req("{\"from_version\":0,\"limit\":1000}", &from,
			     &limit, &e), 0);
	cr_assert_eq(from, 1, "0 reads as 1");
	cr_assert_eq(limit, 1000);
	cr_assert_eq(get_req("{\"from_version\":9}", &from, &limit, &e), 0);
	cr_assert_eq(from, 9);

	cr_assert_eq(get_req("{\"limit\":0}", &from, &limit, &e), -1);
	cr_assert_eq(e.code, CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(e.field, "limit");
	cr_assert_eq(get_req("{\"limit\":1001}", &from, &limit, &e), -1);
	cr_assert_str_eq(e.field, "limit");
	cr_assert_eq(get_req("{\"from_version\":-1}", &from, &limit, &e), -1);
	cr_assert_eq(e.code, CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(e.field, "from_version");
	cr_assert_eq(get_req("{\"from_version\":\"3\"}", &from, &limit, &e),
		     -1);
	cr_assert_str_eq(e.field, "from_version");
	cr_assert_eq(get_req("{\"after\":1}", &from, &limit, &e), -1);
	cr_assert_eq(e.code, CIM_ERR_INVALID_REQUEST);
}

Test(request, only_keys_and_get_u64)
{
	static const char *const allowed[] = {"a", "b", NULL};
	json_t *o = json_pack("{s:i, s:f, s:i}", "a", 5, "b", 2.0, "c", -1);
	uint64_t v = 77;
	cim_perr e;

	cr_assert_eq(cim_json_only_keys(o, allowed, &e), -1);
	cr_assert_eq(e.code, CIM_ERR_INVALID_REQUEST);
	cr_assert_str_eq(e.field, "c");
	cr_assert_eq(cim_json_get_u64(o, "missing", &v, &e), 0);
	cr_assert_eq(v, 77, "absent leaves the value");
	cr_assert_eq(cim_json_get_u64(o, "a", &v, &e), 0);
	cr_assert_eq(v, 5);
	cr_assert_eq(cim_json_get_u64(o, "b", &v, &e), -1);
	cr_assert_eq(e.code, CIM_ERR_INVALID_REQUEST, "a real is the wrong type");
	cr_assert_str_eq(e.field, "b");
	cr_assert_eq(cim_json_get_u64(o, "c", &v, &e), -1);
	cr_assert_str_eq(e.field, "c");
	json_object_del(o, "c");
	cr_assert_eq(cim_json_only_keys(o, allowed, &e), 0);
	json_decref(o);
}

Test(request, an_event_id_repeated_in_one_append_is_refused)
{
	append_err("{\"events\":[{\"event_type\":\"A\",\"data\":1,\"event_id\":\"x\"},"
		   "{\"event_type\":\"B\",\"data\":2},"
		   "{\"event_type\":\"C\",\"data\":3,\"event_id\":\"x\"}]}",
		   CIM_ERR_INVALID_ARGUMENT, "events[2].event_id");
}

Test(request, a_decimal_out_of_range_is_named_as_such)
{
	cim_perr e;
	json_t *j = cim_json_parse_request("{\"x\": 1e400}", 13, &e);

	cr_assert_null(j);
	cr_assert_eq(e.code, CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(e.field, "x");
	cr_assert_not_null(strstr(e.msg, "64-bit float"), "%s", e.msg);
}
