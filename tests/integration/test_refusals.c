/*
 * test_refusals.c: every refusal the daemon gives for bad input, and what
 * it says. The list is taken from the code: each place that answers an
 * error for what a client sent (server.c: subjects and tokens; request.c:
 * JSON, shapes, fields and their values, for every operation; append.c:
 * limits, expected versions, duplicates; read.c: by_type; snapshot.c:
 * versions, sizes, a missing snapshot) has at least one row, named after
 * the place. Each answer must carry its contract code and Cim-Status, the
 * `field` the contract asks for (exactly), and a message that names the
 * field (or the subject token, or the limit's setting) and the reason in
 * the user's words: never a library's flag, an internal function, a C
 * format or a pointer. Nothing a refusal touches is stored.
 *
 * Left out, as no input reaches them: the block encoder's refusals of
 * values the request parser has already refused (a NUL-free but invalid
 * UTF-8 key, data or state too deep), the snapshot key of tokens already
 * checked, and a single stored event larger than the NATS payload
 * (max_event_bytes keeps each below it). Storage and capacity answers
 * (unavailable, internal) are not about input.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(refusals, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 120);

#define P H_PREFIX "."
#define EV "{\"event_type\":\"Ok\",\"data\":1}"
#define ID129                                                                  \
	"0123456789012345678901234567890123456789"                            \
	"0123456789012345678901234567890123456789"                            \
	"0123456789012345678901234567890123456789012345678"

struct refusal {
	const char *where;   /* the code path it exercises */
	const char *subject;
	const char *body;
	const char *code;
	const char *field;   /* error.field exactly; NULL: none is sent */
	const char *says[3]; /* the message holds each of these */
};

/* The daemon runs with small limits, so each limit can be met. */
static const char *const daemon_args[] = {
	"--max-events-per-append", "3", "--max-event-bytes", "1024",
	"--max-events-per-aggregate", "4", "--get-limit", "20", "--get-max-limit", "50",
	"--max-snapshot-bytes", "1024", NULL};

#define BIG "\"" "0123456789012345678901234567890123456789012345678901234567890123" \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123"         \
	"0123456789012345678901234567890123456789012345678901234567890123" "\""

static const struct refusal cases[] = {
	/* ---- server.c on_request: subjects and tokens ---- */
	{"server: unknown operation", P "frobnicate.order.o-1", "{}", "invalid_request", NULL,
	 {"unknown operation", "frobnicate"}},
	{"server: unknown snapshot operation", P "snapshot.drop.order.o-1", "{}",
	 "invalid_request", NULL, {"unknown operation", "snapshot"}},
	{"server: info with more tokens", P "info.now", "{}", "invalid_request", NULL,
	 {"info", "subject"}},
	{"server: by_type without its token", P "by_type", "{}", "invalid_request", NULL,
	 {"by_type", H_PREFIX ".by_type.<event_type>"}},
	{"server: by_type with extra tokens", P "by_type.Ok.x", "{}", "invalid_request", NULL,
	 {"by_type", "subject"}},
	{"server: by_type event_type token", P "by_type.9x", "{}", "invalid_argument",
	 "event_type", {"event_type", "must match"}},
	{"server: append tokens missing", P "append.order", "{\"events\":[" EV "]}",
	 "invalid_request", NULL, {"append", H_PREFIX ".append.<aggregate_type>.<aggregate_id>"}},
	{"server: get tokens extra", P "get.order.o-1.x", "{}", "invalid_request", NULL,
	 {"get", "<aggregate_id>"}},
	{"server: head tokens missing", P "head.order", "{}", "invalid_request", NULL,
	 {"head", "subject"}},
	{"server: validate tokens missing", P "validate", "{}", "invalid_request", NULL,
	 {"validate", "subject"}},
	{"server: load tokens missing", P "load.order", "{}", "invalid_request", NULL,
	 {"load", "subject"}},
	{"server: snapshot.save tokens missing", P "snapshot.save.order", "{}",
	 "invalid_request", NULL, {"snapshot.save", "subject"}},
	{"server: snapshot.get tokens extra", P "snapshot.get.order.o-1.x", "{}",
	 "invalid_request", NULL, {"snapshot.get", "subject"}},
	{"server: aggregate_type token", P "append.9order.o-1", "{\"events\":[" EV "]}",
	 "invalid_argument", "aggregate_type", {"aggregate_type", "must match"}},
	{"server: aggregate_type too long",
	 P "get.TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT.o-1", "{}",
	 "invalid_argument", "aggregate_type", {"aggregate_type", "{0,63}"}},
	{"server: aggregate_id token", P "head.order.o#1", "{}", "invalid_argument",
	 "aggregate_id", {"aggregate_id", "must match"}},

	/* ---- request.c cim_json_parse_request: the body as JSON ---- */
	{"request: not JSON", P "append.order.o-1", "not json", "invalid_request", NULL,
	 {"not valid JSON", "line 1"}},
	{"request: ends early", P "append.order.o-1", "{\"events\":[", "invalid_request", NULL,
	 {"not valid JSON", "ends before"}},
	{"request: text after the value", P "get.order.o-1", "{} {}", "invalid_request", NULL,
	 {"not valid JSON", "more text after"}},
	{"request: duplicate key", P "get.order.o-1", "{\"limit\":1,\"limit\":2}",
	 "invalid_request", NULL, {"not valid JSON", "same key twice", "limit"}},
	{"request: not UTF-8", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":\"\xff\"}]}", "invalid_request", NULL,
	 {"not valid JSON", "UTF-8"}},
	{"request: lone surrogate", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":\"\\udc00\"}]}", "invalid_request",
	 NULL, {"lone surrogate", "\\uDC00"}},
	{"request: raw control character", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":\"a\tb\"}]}", "invalid_request", NULL,
	 {"control character", "\\u00XX"}},
	{"request: raw line break", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":\"a\nb\"}]}", "invalid_request", NULL,
	 {"line break", "\\n"}},
	{"request: invalid escape", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":\"\\x\"}]}", "invalid_request", NULL,
	 {"invalid escape"}},
	{"request: not an object", P "get.order.o-1", "[1]", "invalid_request", NULL,
	 {"request", "JSON object"}},
	{"request: integer out of range, with its path", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":{\"n\":[1,9223372036854775808]}}]}",
	 "invalid_argument", "events[0].data.n[1]", {"events[0].data.n[1]", "out of range",
						      "64-bit signed"}},
	{"request: negative integer out of range", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":-9223372036854775809}]}",
	 "invalid_argument", "events[0].data", {"events[0].data", "out of range"}},
	{"request: decimal out of range", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":{\"x\":1e400}}]}", "invalid_argument",
	 "events[0].data.x", {"events[0].data.x", "64-bit float"}},
	{"request: number out of range in a bare array", P "get.order.o-1", "[1e400]",
	 "invalid_argument", "[0]", {"[0]", "out of range"}},

	/* ---- request.c only_keys: unknown fields, every operation ---- */
	{"request: unknown append field", P "append.order.o-1",
	 "{\"events\":[" EV "],\"expected\":1}", "invalid_request", "expected",
	 {"unknown field", "expected"}},
	{"request: unknown event field", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"colour\":\"red\"}]}",
	 "invalid_request", "events[0].colour", {"unknown field", "events[0].colour"}},
	{"request: unknown field holding U+0000", P "append.order.o-1",
	 "{\"events\":[" EV "],\"events\\u0000\":1}", "invalid_request", "events\\u0000",
	 {"unknown field", "events\\u0000"}},
	{"request: unknown get field", P "get.order.o-1", "{\"from\":1}", "invalid_request",
	 "from", {"unknown field", "from"}},
	{"request: unknown head field", P "head.order.o-1", "{\"x\":1}", "invalid_request", "x",
	 {"unknown field", "\"x\""}},
	{"request: unknown validate field", P "validate.order.o-1", "{\"deep\":true}",
	 "invalid_request", "deep", {"unknown field", "deep"}},
	{"request: unknown load field", P "load.order.o-1", "{\"from_version\":2}",
	 "invalid_request", "from_version", {"unknown field", "from_version"}},
	{"request: unknown snapshot.get field", P "snapshot.get.order.o-1", "{\"v\":1}",
	 "invalid_request", "v", {"unknown field", "\"v\""}},
	{"request: unknown snapshot.save field", P "snapshot.save.order.o-1",
	 "{\"version\":1,\"state\":{},\"cid\":\"x\"}", "invalid_request", "cid",
	 {"unknown field", "cid"}},
	{"request: unknown info field", P "info", "{\"verbose\":true}", "invalid_request",
	 "verbose", {"unknown field", "verbose"}},
	{"read: unknown by_type field", P "by_type.Ok", "{\"after\":1}", "invalid_request",
	 "after", {"unknown field", "after"}},

	/* ---- request.c: integers (cim_json_get_u64) and get's limits ---- */
	{"request: from_version not an integer", P "get.order.o-1", "{\"from_version\":\"1\"}",
	 "invalid_request", "from_version", {"from_version", "must be an integer"}},
	{"request: from_version negative", P "get.order.o-1", "{\"from_version\":-1}",
	 "invalid_argument", "from_version", {"from_version", "negative"}},
	{"request: limit not an integer", P "get.order.o-1", "{\"limit\":1.5}",
	 "invalid_request", "limit", {"limit", "must be an integer"}},
	{"request: limit zero", P "get.order.o-1", "{\"limit\":0}", "invalid_argument", "limit",
	 {"limit", "1 to 50"}},
	{"request: limit over get_max_limit", P "get.order.o-1", "{\"limit\":51}",
	 "invalid_argument", "limit", {"limit", "1 to 50"}},
	{"read: by_type after_seq not an integer", P "by_type.Ok", "{\"after_seq\":null}",
	 "invalid_request", "after_seq", {"after_seq", "must be an integer"}},
	{"read: by_type after_seq negative", P "by_type.Ok", "{\"after_seq\":-5}",
	 "invalid_argument", "after_seq", {"after_seq", "negative"}},
	{"read: by_type limit over get_max_limit", P "by_type.Ok", "{\"limit\":51}",
	 "invalid_argument", "limit", {"limit", "1 to 50"}},
	{"read: by_type limit not an integer", P "by_type.Ok", "{\"limit\":\"9\"}",
	 "invalid_request", "limit", {"limit", "must be an integer"}},

	/* ---- request.c cim_append_req_parse ---- */
	{"append: events missing", P "append.order.o-1", "{}", "invalid_request", "events",
	 {"events", "required"}},
	{"append: events not an array", P "append.order.o-1", "{\"events\":{}}",
	 "invalid_request", "events", {"events", "array"}},
	{"append: events empty", P "append.order.o-1", "{\"events\":[]}", "invalid_argument",
	 "events", {"events", "at least one"}},
	{"append: too many events", P "append.order.o-1",
	 "{\"events\":[" EV "," EV "," EV "," EV "]}", "payload_too_large", "events",
	 {"4 events", "limit of 3"}},
	{"append: expected_version keyword", P "append.order.o-1",
	 "{\"expected_version\":\"latest\",\"events\":[" EV "]}", "invalid_argument",
	 "expected_version", {"expected_version", "\"no_stream\""}},
	{"append: expected_version negative", P "append.order.o-1",
	 "{\"expected_version\":-2,\"events\":[" EV "]}", "invalid_argument",
	 "expected_version", {"expected_version", "version number"}},
	{"append: expected_version of another type", P "append.order.o-1",
	 "{\"expected_version\":[3],\"events\":[" EV "]}", "invalid_request",
	 "expected_version", {"expected_version", "version number"}},
	{"append: event not an object", P "append.order.o-1", "{\"events\":[" EV ",7]}",
	 "invalid_request", "events[1]", {"events[1]", "object"}},
	{"append: event_type missing", P "append.order.o-1", "{\"events\":[{\"data\":1}]}",
	 "invalid_request", "events[0].event_type", {"events[0].event_type", "required"}},
	{"append: event_type not a string", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":5,\"data\":1}]}", "invalid_request",
	 "events[0].event_type", {"events[0].event_type", "string"}},
	{"append: event_type token", P "append.order.o-1",
	 "{\"events\":[" EV ",{\"event_type\":\"a.b\",\"data\":1}]}", "invalid_argument",
	 "events[1].event_type", {"events[1].event_type", "must match"}},
	{"append: data missing", P "append.order.o-1", "{\"events\":[{\"event_type\":\"Ok\"}]}",
	 "invalid_request", "events[0].data", {"events[0].data", "required"}},
	{"append: event_id not a string", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"event_id\":1}]}", "invalid_request",
	 "events[0].event_id", {"events[0].event_id", "string"}},
	{"append: correlation_id null", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"correlation_id\":null}]}",
	 "invalid_request", "events[0].correlation_id", {"events[0].correlation_id", "string"}},
	{"append: event_id too long", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"event_id\":\"" ID129 "\"}]}",
	 "invalid_argument", "events[0].event_id", {"events[0].event_id", "129 bytes",
						    "at most 128"}},
	{"append: causation_id too long", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"causation_id\":\"" ID129 "\"}]}",
	 "invalid_argument", "events[0].causation_id", {"events[0].causation_id", "at most 128"}},
	{"append: event_id repeated", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"event_id\":\"e\\u0000\"},"
	 "{\"event_type\":\"Ok\",\"data\":2,\"event_id\":\"e\\u0000\"}]}", "invalid_argument",
	 "events[1].event_id", {"events[1].event_id", "repeats", "events[0].event_id"}},
	{"append: metadata not an object", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"metadata\":\"m\"}]}",
	 "invalid_request", "events[0].metadata", {"events[0].metadata", "object of strings"}},
	{"append: metadata value not a string", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"metadata\":{\"k\\u0000\":1}}]}",
	 "invalid_request", "events[0].metadata", {"events[0].metadata", "k\\u0000",
						   "not a string"}},

	/* ---- request.c cim_snapshot_req_parse, snapshot.c save_work, get_work ---- */
	{"snapshot: version missing", P "snapshot.save.order.o-1", "{\"state\":{}}",
	 "invalid_request", "version", {"version", "required"}},
	{"snapshot: version not an integer", P "snapshot.save.order.o-1",
	 "{\"version\":\"1\",\"state\":{}}", "invalid_request", "version",
	 {"version", "must be an integer"}},
	{"snapshot: version negative", P "snapshot.save.order.o-1",
	 "{\"version\":-1,\"state\":{}}", "invalid_argument", "version",
	 {"version", "negative"}},
	{"snapshot: version 0", P "snapshot.save.order.o-1", "{\"version\":0,\"state\":{}}",
	 "invalid_argument", "version", {"version", "1 or more"}},
	{"snapshot: state missing", P "snapshot.save.order.o-1", "{\"version\":1}",
	 "invalid_request", "state", {"state", "required"}},
	{"snapshot: version not stored", P "snapshot.save.order.o-1",
	 "{\"version\":9,\"state\":{}}", "invalid_argument", "version",
	 {"version 9", "not stored", "at version 2"}},
	{"snapshot: state over max_snapshot_bytes", P "snapshot.save.order.o-1",
	 "{\"version\":1,\"state\":[" BIG "," BIG "]}", "payload_too_large", "state",
	 {"state", "max_snapshot_bytes", "1024"}},
	{"snapshot: none to get", P "snapshot.get.order.nothing", "{}", "not_found", NULL,
	 {"order/nothing", "no snapshot"}},

	/* ---- append.c: per-event size, per-aggregate limit, versions, ids ---- */
	{"append: event over max_event_bytes", P "append.order.o-2",
	 "{\"events\":[" EV ",{\"event_type\":\"Big\",\"data\":[" BIG "," BIG "]}]}",
	 "payload_too_large", "events[1]", {"events[1]", "max_event_bytes", "1024"}},
	{"append: over max_events_per_aggregate", P "append.order.o-1",
	 "{\"events\":[" EV "," EV "," EV "]}", "payload_too_large", "events",
	 {"max_events_per_aggregate", "version 2", "nothing was stored"}},
	{"append: expected_version exact", P "append.order.o-1",
	 "{\"expected_version\":1,\"events\":[" EV "]}", "wrong_expected_version", NULL,
	 {"expected_version", "1", "at version 2"}},
	{"append: expected_version no_stream", P "append.order.o-1",
	 "{\"expected_version\":\"no_stream\",\"events\":[" EV "]}", "wrong_expected_version",
	 NULL, {"expected_version", "no_stream", "at version 2"}},
	{"append: expected_version 0 as no_stream", P "append.order.o-1",
	 "{\"expected_version\":0,\"events\":[" EV "]}", "wrong_expected_version", NULL,
	 {"expected_version", "no_stream", "at version 2"}},
	{"append: expected_version exists", P "append.order.none",
	 "{\"expected_version\":\"exists\",\"events\":[" EV "]}", "wrong_expected_version",
	 NULL, {"expected_version", "exists", "at version 0"}},
	{"append: duplicate with other content", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":2,\"event_id\":\"first\"}]}",
	 "duplicate_event", NULL, {"event_id", "\"first\"", "other content"}},
	{"append: duplicate in another aggregate", P "append.order.o-9",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"event_id\":\"first\"}]}",
	 "duplicate_event", NULL, {"event_id", "\"first\"", "another aggregate"}},
	{"append: duplicate as part of another append", P "append.order.o-1",
	 "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"event_id\":\"second\"},"
	 "{\"event_type\":\"Ok\",\"data\":1,\"event_id\":\"new\"}]}", "duplicate_event", NULL,
	 {"event_id", "\"second\"", "another append"}},
};

static int status_of(const char *code)
{
	static const struct {
		const char *code;
		int status;
	} t[] = {{"invalid_request", 400}, {"invalid_argument", 400},
		 {"payload_too_large", 413}, {"wrong_expected_version", 409},
		 {"duplicate_event", 409}, {"not_found", 404}};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (strcmp(code, t[i].code) == 0)
			return t[i].status;
	return -1;
}

/* Words that are not the user's: library flags and names, internal
 * functions, C formats and values. */
static const char *const not_words[] = {
	"JSON_", "jansson", "libcbor", "nats.c", "natsStatus", "NATS_", "cim_", "json_",
	"cbor_", "errno", "NULL", "(null)", "%", "0x0 ", "()", "struct ", "size_t",
	"uint64", "NUL byte", "not supported",
};

static bool check(const struct refusal *c)
{
	h_reply r;
	bool ok = true;

	h_request(&r, c->subject, c->body, -1);
	const char *code = h_error_code(&r), *msg = h_error_str(&r, "message");
	const char *field = h_error_str(&r, "field");

#define BAD(...) do { cr_expect_fail(__VA_ARGS__); ok = false; } while (0)
	if (r.s != NATS_OK) {
		BAD("%s: no answer", c->where);
		h_reply_free(&r);
		return false;
	}
	if (code == NULL || strcmp(code, c->code) != 0)
		BAD("%s: code %s, want %s: %s", c->where, code ? code : "(none)", c->code,
		    r.body);
	if (r.status != status_of(c->code))
		BAD("%s: Cim-Status %d", c->where, r.status);
	if (c->field == NULL ? field != NULL : field == NULL || strcmp(field, c->field) != 0)
		BAD("%s: field %s, want %s", c->where, field ? field : "(none)",
		    c->field ? c->field : "(none)");
	if (msg == NULL || strlen(msg) < 12)
		BAD("%s: no sentence: %s", c->where, r.body);
	if (msg != NULL) {
		for (int i = 0; i < 3 && c->says[i] != NULL; i++)
			if (strstr(msg, c->says[i]) == NULL)
				BAD("%s: the message does not say \"%s\": %s", c->where,
				    c->says[i], msg);
		if (c->field != NULL && strstr(msg, c->field) == NULL)
			BAD("%s: the message does not name %s: %s", c->where, c->field, msg);
		for (size_t i = 0; i < sizeof not_words / sizeof not_words[0]; i++)
			if (strstr(msg, not_words[i]) != NULL)
				BAD("%s: \"%s\" is not the user's word: %s", c->where,
				    not_words[i], msg);
	}
	h_reply_free(&r);
	return ok;
}

Test(refusals, every_refusal_names_the_field_and_the_reason)
{
	size_t n = sizeof cases / sizeof cases[0], failed = 0;
	h_reply r;

	H.daemon = h_daemon_start_args(&H.nats, NULL, daemon_args);
	cr_assert_gt(H.daemon, 0);
	/* order/o-1 at version 2 with the event_ids first and second */
	h_requestf(&r, "{\"events\":[{\"event_type\":\"Ok\",\"data\":1,\"event_id\":\"first\"},"
		       "{\"event_type\":\"Ok\",\"data\":1,\"event_id\":\"second\"}]}",
		   P "append.order.o-1");
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);
	uint64_t msgs = h_stream_msgs();

	for (size_t i = 0; i < n; i++)
		failed += !check(&cases[i]);
	cr_log_info("the walk covers %zu refusals", n);
	cr_expect_eq(failed, 0, "%zu of %zu refusals say something else", failed, n);
	cr_expect_eq(h_stream_msgs(), msgs, "a refusal stored something");

	/* nested deeper than the limits: built here */
	char *deep = malloc(20000);
	cr_assert_not_null(deep);
	strcpy(deep, "{\"events\":[{\"event_type\":\"Ok\",\"data\":");
	for (int levels = 129; levels <= 3000; levels += 2871) {
		size_t k = strlen("{\"events\":[{\"event_type\":\"Ok\",\"data\":");
		memset(deep + k, '[', (size_t)levels);
		memset(deep + k + levels, ']', (size_t)levels);
		strcpy(deep + k + 2 * levels, "}]}");
		struct refusal c = {levels == 129 ? "append: data too deep"
						  : "request: deeper than the parser goes",
				    P "append.order.o-1", deep, "invalid_request",
				    levels == 129 ? "events[0].data" : NULL,
				    {levels == 129 ? "deeper than 128 levels"
						   : "nested more than 2048 levels"}};
		cr_expect(check(&c));
	}
	strcpy(deep, "{\"version\":1,\"state\":");
	memset(deep + 21, '[', 129);
	memset(deep + 21 + 129, ']', 129);
	strcpy(deep + 21 + 258, "}");
	struct refusal s = {"snapshot: state too deep", P "snapshot.save.order.o-1", deep,
			    "invalid_request", "state", {"state", "deeper than 128 levels"}};
	cr_expect(check(&s));
	free(deep);
	/* a subject longer than the daemon reads */
	char subj[700];
	memset(subj, 'x', sizeof subj);
	memcpy(subj, P "get.", strlen(P "get."));
	subj[sizeof subj - 1] = '\0';
	struct refusal l = {"server: subject too long", subj, "{}", "invalid_request", NULL,
			    {"subject", "too long"}};
	cr_expect(check(&l));
	cr_log_info("with the 4 built here: %zu refusals", n + 4);
	cr_expect_eq(h_stream_msgs(), msgs, "a refusal stored something");
}
