/*
 * test_client_offline.c: the client library and the cim-events tool
 * without a daemon.
 *
 * Suite client_table needs nothing at all: the error table, the version,
 * argument checks, a NATS server that is not there. Suite client_fake
 * runs a nats-server (the harness's, without cim-eventsd) and answers the
 * library's requests from a fake responder in this file, so every reply the
 * daemon could send (good, refused, malformed, none) can be staged, and
 * every request the library sends can be read back exactly.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../support/harness.h"

#define CLOSED_URL "nats://127.0.0.1:1"

/* ---- the table and local checks ------------------------------------------ */

TestSuite(client_table, .timeout = 30);

Test(client_table, names_and_statuses_round_trip)
{
	static const struct {
		cim_err code;
		const char *name;
		int status;
	} want[] = {
		{CIM_ERR_OK, "ok", 200},
		{CIM_ERR_INVALID_REQUEST, "invalid_request", 400},
		{CIM_ERR_INVALID_ARGUMENT, "invalid_argument", 400},
		{CIM_ERR_PAYLOAD_TOO_LARGE, "payload_too_large", 413},
		{CIM_ERR_WRONG_EXPECTED_VERSION, "wrong_expected_version", 409},
		{CIM_ERR_DUPLICATE_EVENT, "duplicate_event", 409},
		{CIM_ERR_NOT_FOUND, "not_found", 404},
		{CIM_ERR_GONE, "gone", 410},
		{CIM_ERR_UNAVAILABLE, "unavailable", 503},
		{CIM_ERR_INTERNAL, "internal", 500},
		{CIM_ERR_TIMEOUT, "timeout", 0},
		{CIM_ERR_NO_DAEMON, "no_daemon", 0},
		{CIM_ERR_CONNECTION, "connection", 0},
		{CIM_ERR_BAD_REPLY, "bad_reply", 0},
		{CIM_ERR_NOMEM, "nomem", 0},
		{CIM_ERR_CHECK_FAILED, "check_failed", 0},
		{CIM_ERR_HANDLER, "handler", 0},
	};

	cr_assert_eq(sizeof(want) / sizeof(want[0]), (size_t)CIM_ERR__COUNT);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		cr_assert_str_eq(cim_err_name(want[i].code), want[i].name);
		cr_assert_eq(cim_err_status(want[i].code), want[i].status, "%s",
			     want[i].name);
		cr_assert_eq(cim_err_from_name(want[i].name), want[i].code);
		cr_assert_not_null(cim_strerror(want[i].code));
		cr_assert_neq(cim_strerror(want[i].code)[0], '\0');
	}
}

Test(client_table, unknown_codes_and_names)
{
	cr_assert_str_eq(cim_err_name(CIM_ERR__COUNT), "unknown");
	cr_assert_str_eq(cim_err_name((cim_err)-1), "unknown");
	cr_assert_eq(cim_err_status(CIM_ERR__COUNT), 0);
	cr_assert_not_null(cim_strerror(CIM_ERR__COUNT));
	cr_assert_eq(cim_err_from_name("no_such_code"), CIM_ERR_BAD_REPLY);
	cr_assert_eq(cim_err_from_name(""), CIM_ERR_BAD_REPLY);
	cr_assert_eq(cim_err_from_name(NULL), CIM_ERR_BAD_REPLY);
	cr_assert_eq(cim_err_from_name("NOT_FOUND"), CIM_ERR_BAD_REPLY);
}

Test(client_table, version)
{
	char v[32];

	cr_assert_str_eq(cim_version(), CIM_EVENTS_VERSION);
	snprintf(v, sizeof(v), "%d.%d.%d", CIM_EVENTS_VERSION_MAJOR,
		 CIM_EVENTS_VERSION_MINOR, CIM_EVENTS_VERSION_PATCH);
	cr_assert_str_eq(v, CIM_EVENTS_VERSION);
}

Test(client_table, connect_to_a_closed_port)
{
	cim_client *c = (cim_client *)0x1;
	cim_error err;
	cim_err rc = cim_client_connect(&c, CLOSED_URL, NULL, &err);

	cr_assert_eq(rc, CIM_ERR_CONNECTION, "got %s", cim_err_name(rc));
	cr_assert_null(c);
	cr_assert_eq(err.code, CIM_ERR_CONNECTION);
	cr_assert_neq(err.message[0], '\0');
	cr_assert_not_null(strstr(err.message, CLOSED_URL), "%s", err.message);
	/* no password in the message */
	cr_assert_eq(cim_client_connect(&c, "nats://bob:s3cret@127.0.0.1:1",
					NULL, &err),
		     CIM_ERR_CONNECTION);
	cr_assert_null(strstr(err.message, "s3cret"), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "nats://***@127.0.0.1:1"), "%s",
			   err.message);
	/* err is optional */
	cr_assert_eq(cim_client_connect(&c, CLOSED_URL, NULL, NULL),
		     CIM_ERR_CONNECTION);
	cr_assert_null(c);
}

Test(client_table, bad_options_are_refused_before_connecting)
{
	static const char *prefixes[] = {"",    "a..b", ".a",  "a.",
					 "a.*", "a.>",  "a b", "a\tb"};
	cim_client_options o = {.prefix = NULL, .timeout_ms = -1};
	cim_client *c = NULL;
	cim_error err;

	cr_assert_eq(cim_client_connect(&c, CLOSED_URL, &o, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "timeout_ms");
	cr_assert_null(c);
	o.timeout_ms = 0;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		o.prefix = prefixes[i];
		cr_assert_eq(cim_client_connect(&c, CLOSED_URL, &o, &err),
			     CIM_ERR_INVALID_ARGUMENT, "prefix '%s'",
			     prefixes[i]);
		cr_assert_str_eq(err.field, "prefix");
		cr_assert_null(c);
	}
	cr_assert_eq(cim_client_connect(NULL, CLOSED_URL, NULL, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_eq(cim_client_wrap(&c, NULL, NULL, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_null(c);
}

Test(client_table, destroy_functions_take_null)
{
	cim_client_destroy(NULL);
	cim_append_result_destroy(NULL);
	cim_event_page_destroy(NULL);
	cim_iter_close(NULL);
	cim_free(NULL);
}

Test(client_table, calls_on_no_client_fail_cleanly)
{
	cim_event_page *page = (cim_event_page *)0x1;
	cim_head head;
	char *raw = (char *)0x1;
	cim_error err;

	memset(&head, 0xff, sizeof(head));
	cr_assert_eq(cim_get(NULL, "order", "o-1", 0, 0, &page, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_null(page);
	cr_assert_eq(cim_get_head(NULL, "order", "o-1", &head, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_eq(head.version, 0);
	cr_assert_eq(head.head[0], '\0');
	cr_assert_eq(cim_request(NULL, "info", NULL, NULL, NULL, &raw, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_null(raw);
}

/* ---- the tool, with nothing to talk to --------------------------------------
 */

/* Runs the tool through the shell; returns its exit status. */
static int
run_cli(const char *args, char *out, size_t size)
{
	const char *cli = getenv("CIM_TEST_CLI");
	char cmd[1024];
	FILE *p;
	size_t n = 0;
	int st;

	cr_assert_not_null(cli, "CIM_TEST_CLI is not set");
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>/dev/null", cli, args);
	cr_assert_not_null(p = popen(cmd, "r"));
	if (out != NULL) {
		n = fread(out, 1, size - 1, p);
		out[n] = '\0';
	} else {
		char sink[256];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	st = pclose(p);
	cr_assert(WIFEXITED(st), "%s did not exit", cmd);
	return WEXITSTATUS(st);
}

Test(client_table, cli_version_help_and_usage_errors)
{
	char out[4096];

	cr_assert_eq(run_cli("--version", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "cim-events " CIM_EVENTS_VERSION "\n");
	cr_assert_eq(run_cli("--help", out, sizeof(out)), 0);
	cr_assert_not_null(strstr(out, "validate TYPE ID"));
	cr_assert_eq(run_cli("get --help", out, sizeof(out)), 0);
	cr_assert_not_null(strstr(out, "--all"));
	cr_assert_eq(run_cli("", NULL, 0), 2);
	cr_assert_eq(run_cli("frobnicate", NULL, 0), 2);
	cr_assert_eq(run_cli("get order", NULL, 0), 2);
	cr_assert_eq(run_cli("get order o-1 --from x", NULL, 0), 2);
	cr_assert_eq(run_cli("append order o-1", NULL, 0), 2);
	cr_assert_eq(run_cli("append order o-1 --event T '{bad'", NULL, 0), 2);
	cr_assert_eq(
		run_cli("append order o-1 --event-id x --event T 1", NULL, 0),
		2);
	cr_assert_eq(run_cli("--timeout 0 info", NULL, 0), 2);
}

Test(client_table, cli_unreachable_server_exits_4)
{
	cr_assert_eq(run_cli("--url " CLOSED_URL " info", NULL, 0), 4);
	cr_assert_eq(run_cli("--url " CLOSED_URL " head order o-1", NULL, 0),
		     4);
}

/* ---- a fake daemon
 * ----------------------------------------------------------- */

/* What the fake answers: a body and a Cim-Status, or (body NULL) nothing. */
typedef struct answer {
	const char *body;
	const char *status;
} answer;

typedef answer (*answer_fn)(const char *subject, json_t *request);

static struct {
	pthread_mutex_t mu;
	answer_fn fn;
	int requests;
	char subject[256];
	json_t *request; /* the last request body, parsed */
	natsSubscription *sub;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void
on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	json_t *req = json_loadb(natsMsg_GetData(msg),
				 (size_t)natsMsg_GetDataLength(msg),
				 JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	natsMsg *reply = NULL;
	answer a;

	pthread_mutex_lock(&fake.mu);
	fake.requests++;
	snprintf(fake.subject, sizeof(fake.subject), "%s",
		 natsMsg_GetSubject(msg));
	json_decref(fake.request);
	fake.request = json_incref(req);
	a = fake.fn(natsMsg_GetSubject(msg), req);
	pthread_mutex_unlock(&fake.mu);
	json_decref(req);
	if (a.body != NULL && natsMsg_GetReply(msg) != NULL &&
	    natsMsg_Create(&reply, natsMsg_GetReply(msg), NULL, a.body,
			   (int)strlen(a.body)) == NATS_OK) {
		if (a.status != NULL)
			natsMsgHeader_Set(reply, "Cim-Status", a.status);
		natsConnection_PublishMsg(nc, reply);
		natsConnection_Flush(nc);
		natsMsg_Destroy(reply);
	}
	natsMsg_Destroy(msg);
}

static void
fake_setup(void)
{
	h_setup_nats_only();
}

static void
fake_teardown(void)
{
	natsSubscription_Destroy(fake.sub);
	fake.sub = NULL;
	h_teardown();
	json_decref(fake.request);
	fake.request = NULL;
}

static void
fake_start(answer_fn fn)
{
	fake.fn = fn;
	cr_assert_eq(natsConnection_Subscribe(&fake.sub, H.nc, H_PREFIX ".>",
					      on_request, NULL),
		     NATS_OK);
	cr_assert_eq(natsConnection_Flush(H.nc), NATS_OK);
}

static int
fake_requests(void)
{
	int n;

	pthread_mutex_lock(&fake.mu);
	n = fake.requests;
	pthread_mutex_unlock(&fake.mu);
	return n;
}

/* The last request's member equals want (JSON text; an integer and a
 * float are never equal). */
static void
assert_request_member(const char *key, const char *want)
{
	json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
	char *got;
	bool eq;

	cr_assert_not_null(w, "bad test JSON %s", want);
	pthread_mutex_lock(&fake.mu);
	eq = json_equal(json_object_get(fake.request, key), w);
	got = json_dumps(json_object_get(fake.request, key),
			 JSON_COMPACT | JSON_ENCODE_ANY);
	pthread_mutex_unlock(&fake.mu);
	json_decref(w);
	cr_assert(eq, "request \"%s\": got %s, want %s", key,
		  got ? got : "(none)", want);
	free(got);
}

static void
assert_subject(const char *want)
{
	pthread_mutex_lock(&fake.mu);
	cr_assert_str_eq(fake.subject, want);
	pthread_mutex_unlock(&fake.mu);
}

TestSuite(client_fake, .init = fake_setup, .fini = fake_teardown,
	  .timeout = 60);

/* ---- subjects and local refusals ---- */

static answer
answer_head0(const char *subject, json_t *req)
{
	return (answer){"{\"version\":0,\"head\":null,\"seq\":null}", "200"};
}

Test(client_fake, ids_that_cannot_form_a_subject_are_refused_locally)
{
	static const char *bad[] = {"a.b",  "a*",   ">", "a b",
				    "a\tb", "a\nb", ""};
	cim_event_page *page = NULL;
	cim_head head;
	cim_error err;

	fake_start(answer_head0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(
			cim_get_head(H.client, "order", bad[i], &head, &err),
			CIM_ERR_INVALID_ARGUMENT, "id '%s'", bad[i]);
		cr_assert_str_eq(err.field, "aggregate_id");
		cr_assert_neq(err.message[0], '\0');
		cr_assert_eq(
			cim_get(H.client, bad[i], "o-1", 0, 0, &page, &err),
			CIM_ERR_INVALID_ARGUMENT, "type '%s'", bad[i]);
		cr_assert_str_eq(err.field, "aggregate_type");
		cr_assert_null(page);
	}
	cr_assert_eq(cim_get_head(H.client, "order", NULL, &head, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_eq(fake_requests(), 0, "a refused call was sent");
	/* Other odd ids go to the daemon, which judges them. */
	cr_assert_eq(cim_get_head(H.client, "order", "o#1", &head, &err),
		     CIM_ERR_OK, "%s", err.message);
	assert_subject(H_PREFIX ".head.order.o#1");
	cr_assert_eq(fake_requests(), 1);
}

Test(client_fake, head_of_an_empty_aggregate)
{
	cim_head head;
	cim_error err;

	fake_start(answer_head0);
	memset(&head, 0xff, sizeof(head));
	cr_assert_eq(cim_get_head(H.client, "order", "o-1", &head, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(head.version, 0);
	cr_assert_str_eq(head.head, "");
	cr_assert_eq(head.seq, 0);
	assert_subject(H_PREFIX ".head.order.o-1");
	cr_assert_eq(err.code, CIM_ERR_OK);
}

Test(client_fake, custom_prefix)
{
	cim_client_options o = {.prefix = "cim.events.v1.tenant-a"};
	cim_client *c = NULL;
	cim_head head;
	cim_error err;

	fake_start(answer_head0);
	cr_assert_eq(cim_client_connect(&c, H.nats.url, &o, &err), CIM_ERR_OK);
	cr_assert_eq(cim_get_head(c, "order", "o-1", &head, &err), CIM_ERR_OK,
		     "%s", err.message);
	assert_subject(H_PREFIX ".tenant-a.head.order.o-1");
	cim_client_destroy(c);
}

Test(client_fake, wrap_uses_the_callers_connection)
{
	cim_client *c = NULL;
	cim_head head;
	cim_error err;

	fake_start(answer_head0);
	cr_assert_eq(cim_client_wrap(&c, H.nc, NULL, &err), CIM_ERR_OK);
	cr_assert_eq(cim_get_head(c, "order", "o-2", &head, &err), CIM_ERR_OK,
		     "%s", err.message);
	cim_client_destroy(c);
	/* the connection is still the caller's, and open */
	cr_assert_eq(natsConnection_Status(H.nc), NATS_CONN_STATUS_CONNECTED);
	assert_subject(H_PREFIX ".head.order.o-2");
}

/* ---- transport failures ---- */

Test(client_fake, no_responder_is_no_daemon)
{
	cim_event_page *page = (cim_event_page *)0x1;
	cim_error err;

	cr_assert_eq(cim_get(H.client, "order", "o-1", 0, 0, &page, &err),
		     CIM_ERR_NO_DAEMON);
	cr_assert_null(page);
	cr_assert_eq(err.code, CIM_ERR_NO_DAEMON);
	cr_assert_neq(err.message[0], '\0');
}

static answer
answer_nothing(const char *subject, json_t *req)
{
	return (answer){NULL, NULL};
}

Test(client_fake, silence_is_a_timeout)
{
	cim_client *c = h_client_new(200);
	cim_validation v;
	cim_error err;
	int64_t t0;

	fake_start(answer_nothing);
	t0 = h_now_ms();
	cr_assert_eq(cim_validate(c, "order", "o-1", &v, &err),
		     CIM_ERR_TIMEOUT);
	cr_assert_geq(h_now_ms() - t0, 150);
	cr_assert_lt(h_now_ms() - t0, 3000);
	cr_assert_eq(v.valid, false);
	cr_assert_eq(v.version, 0);
	cim_client_destroy(c);
}

/* ---- replies the library cannot use ---- */

static const char *bad_body;

static answer
answer_bad(const char *subject, json_t *req)
{
	return (answer){bad_body, "200"};
}

Test(client_fake, malformed_replies_are_bad_reply)
{
	static const char *bodies[] = {
		"not json",
		"[1,2]",
		"\"text\"",
		"{\"version\":-1,\"events\":[],\"next_from_version\":null}",
		"{\"version\":1,\"events\":{},\"next_from_version\":null}",
		"{\"version\":1,\"events\":[{\"version\":1}],"
		"\"next_from_version\":null}",
		"{\"error\":\"flat\"}",
		"{\"error\":{\"message\":\"no code\"}}",
		"{\"error\":{\"code\":\"made_up\",\"message\":\"m\"}}",
	};
	cim_event_page *page = (cim_event_page *)0x1;
	cim_error err;

	fake_start(answer_bad);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		bad_body = bodies[i];
		cr_assert_eq(
			cim_get(H.client, "order", "o-1", 0, 0, &page, &err),
			CIM_ERR_BAD_REPLY, "body %s: %s", bodies[i],
			cim_err_name(err.code));
		cr_assert_null(page);
		cr_assert_neq(err.message[0], '\0');
	}
}

/* ---- daemon errors ---- */

static answer
answer_conflict(const char *subject, json_t *req)
{
	return (answer){"{\"error\":{\"code\":\"wrong_expected_version\","
			"\"message\":\"expected version 3, the aggregate is at "
			"4\",\"expected\":3,\"current\":4}}",
			"409"};
}

Test(client_fake, daemon_error_details_are_mapped)
{
	cim_new_event ev = {.event_type = "OrderPlaced", .data_json = "{}"};
	cim_append_result *r = (cim_append_result *)0x1;
	char *raw = NULL;
	cim_error err;

	fake_start(answer_conflict);
	cr_assert_eq(cim_append(H.client, "order", "o-1", 3, &ev, 1, &r, &err),
		     CIM_ERR_WRONG_EXPECTED_VERSION);
	cr_assert_null(r);
	cr_assert_eq(err.code, CIM_ERR_WRONG_EXPECTED_VERSION);
	cr_assert_str_eq(err.message,
			 "expected version 3, the aggregate is at 4");
	cr_assert_str_eq(err.expected, "3");
	cr_assert_eq(err.current, 4);
	/* cim_request hands back the error object too */
	cr_assert_eq(cim_request(H.client, "append", "order", "o-1", "{}", &raw,
				 &err),
		     CIM_ERR_WRONG_EXPECTED_VERSION);
	cr_assert_not_null(raw);
	cr_assert_not_null(strstr(raw, "wrong_expected_version"));
	cim_free(raw);
}

static answer
answer_duplicate(const char *subject, json_t *req)
{
	return (answer){"{\"error\":{\"code\":\"duplicate_event\",\"message\":"
			"\"m\",\"event_id\":\"e-1\"}}",
			"409"};
}

Test(client_fake, duplicate_event_names_the_event)
{
	cim_new_event ev = {
		.event_type = "T", .data_json = "1", .event_id = "e-1"};
	cim_append_result *r = NULL;
	cim_error err;

	fake_start(answer_duplicate);
	cr_assert_eq(cim_append(H.client, "order", "o-1", CIM_EXPECT_ANY, &ev,
				1, &r, &err),
		     CIM_ERR_DUPLICATE_EVENT);
	cr_assert_str_eq(err.event_id, "e-1");
	cr_assert_null(r);
}

static answer
answer_invalid(const char *subject, json_t *req)
{
	return (answer){"{\"error\":{\"code\":\"invalid_argument\",\"message\":"
			"\"bad event_type\",\"field\":\"event_type\"}}",
			"400"};
}

Test(client_fake, invalid_argument_names_the_field)
{
	cim_new_event ev = {.event_type = "9bad", .data_json = "null"};
	cim_append_result *r = NULL;
	cim_error err;

	fake_start(answer_invalid);
	cr_assert_eq(cim_append(H.client, "order", "o-1", CIM_EXPECT_ANY, &ev,
				1, &r, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "event_type");
	cr_assert_str_eq(err.message, "bad event_type");
}

/* ---- append: the request sent and the reply read ---- */

static answer
answer_appended(const char *subject, json_t *req)
{
	return (answer){
		"{\"aggregate_type\":\"order\",\"aggregate_id\":\"o-1\","
		"\"version\":2,\"head\":\"bhead\",\"events\":["
		"{\"version\":1,\"cid\":\"b1\",\"event_id\":\"e-1\",\"seq\":7},"
		"{\"version\":2,\"cid\":\"bhead\",\"event_id\":\"e-2\","
		"\"seq\":8}]}",
		"200"};
}

Test(client_fake, append_sends_the_contract_request)
{
	cim_new_event evs[2] = {
		{.event_type = "OrderPlaced",
		 .data_json =
			 "{\"n\": 2, \"f\": 2.0, \"e\": 1e2, "
			 "\"big\": 9223372036854775807, \"s\": \"\\u00e9\"}",
		 .event_id = "e-1",
		 .correlation_id = "c-1",
		 .causation_id = "k-1",
		 .metadata_json = "{\"who\": \"me\"}"},
		{.event_type = "OrderPaid", .data_json = "[1, 0.1, null]"},
	};
	cim_append_result *r = NULL;
	cim_error err;

	fake_start(answer_appended);
	cr_assert_eq(cim_append(H.client, "order", "o-1", CIM_EXPECT_NO_STREAM,
				evs, 2, &r, &err),
		     CIM_ERR_OK, "%s", err.message);
	assert_subject(H_PREFIX ".append.order.o-1");
	assert_request_member("expected_version", "\"no_stream\"");
	assert_request_member(
		"events",
		"[{\"event_type\":\"OrderPlaced\",\"data\":{\"n\":2,"
		"\"f\":2.0,\"e\":100.0,\"big\":9223372036854775807,"
		"\"s\":\"\u00e9\"},\"event_id\":\"e-1\","
		"\"correlation_id\":\"c-1\",\"causation_id\":\"k-1\","
		"\"metadata\":{\"who\":\"me\"}},"
		"{\"event_type\":\"OrderPaid\",\"data\":[1,0.1,null]}]");

	cr_assert_str_eq(r->aggregate_type, "order");
	cr_assert_str_eq(r->aggregate_id, "o-1");
	cr_assert_eq(r->version, 2);
	cr_assert_str_eq(r->head, "bhead");
	cr_assert_eq(r->n_events, 2);
	cr_assert_eq(r->events[0].version, 1);
	cr_assert_str_eq(r->events[0].cid, "b1");
	cr_assert_str_eq(r->events[0].event_id, "e-1");
	cr_assert_eq(r->events[1].seq, 8);
	cim_append_result_destroy(r);
}

Test(client_fake, append_expected_version_forms)
{
	static const struct {
		int64_t expected;
		const char *sent;
	} cases[] = {
		{0, "0"},
		{17, "17"},
		{CIM_EXPECT_ANY, "\"any\""},
		{CIM_EXPECT_NO_STREAM, "\"no_stream\""},
		{CIM_EXPECT_EXISTS, "\"exists\""},
	};
	cim_new_event ev = {.event_type = "T", .data_json = "true"};
	cim_append_result *r = NULL;
	cim_error err;

	fake_start(answer_appended);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(cim_append(H.client, "order", "o-1",
					cases[i].expected, &ev, 1, &r, &err),
			     CIM_ERR_OK, "%s", err.message);
		cim_append_result_destroy(r);
		r = NULL;
		assert_request_member("expected_version", cases[i].sent);
	}
	cr_assert_eq(cim_append(H.client, "order", "o-1", -4, &ev, 1, &r, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "expected_version");
}

Test(client_fake, append_refuses_what_is_not_json_locally)
{
	static const char *bad_data[] = {
		"{bad",
		"",
		"{\"a\":1,\"a\":2}",
		"99999999999999999999",
		"\"\\ud800\"",
		"1e999",
		"[1] [2]",
	};
	cim_new_event ev = {.event_type = "T"};
	cim_append_result *r = (cim_append_result *)0x1;
	cim_error err;

	fake_start(answer_appended);
	for (size_t i = 0; i < sizeof(bad_data) / sizeof(bad_data[0]); i++) {
		ev.data_json = bad_data[i];
		cr_assert_eq(cim_append(H.client, "order", "o-1",
					CIM_EXPECT_ANY, &ev, 1, &r, &err),
			     CIM_ERR_INVALID_ARGUMENT, "data %s", bad_data[i]);
		cr_assert_str_eq(err.field, "data");
		cr_assert_null(r);
	}
	ev.data_json = "{}";
	ev.metadata_json = "{\"a\":";
	cr_assert_eq(cim_append(H.client, "order", "o-1", CIM_EXPECT_ANY, &ev,
				1, &r, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "metadata");
	cr_assert_eq(cim_append(H.client, "order", "o-1", CIM_EXPECT_ANY, &ev,
				0, &r, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "events");
	cr_assert_eq(fake_requests(), 0);
}

/* ---- get and the iterator ---- */

/* Floats as the daemon may write them (jansson: 17 digits) and as the
 * library hands them on: the shortest text that reads back the same. */
#define NUMBERS_IN                                                             \
	"[100.0,1e100,-0.0,0.30000000000000004,0.10000000000000001,1e-07,"     \
	"2.5e-5,12345678901234567,1.5e16]"
#define NUMBERS_OUT                                                            \
	"[100.0,1e+100,-0.0,0.30000000000000004,0.1,1e-07,2.5e-05,"            \
	"12345678901234567,15000000000000000.0]"

#define EVENT_JSON(v, prev, data)                                              \
	"{\"aggregate_type\":\"order\",\"aggregate_id\":\"o-1\","              \
	"\"version\":" #v ",\"event_type\":\"T\",\"event_id\":\"e-" #v "\","   \
	"\"correlation_id\":\"c\",\"causation_id\":\"k\","                     \
	"\"timestamp\":\"2026-11-22T10:00:00.123456789Z\","                    \
	"\"metadata\":{\"who\":\"me\"},\"data\":" data ",\"prev\":" prev ","   \
	"\"cid\":\"b" #v "\",\"seq\":" #v "0}"

/* Pages of two: versions 1-2, 3-4, 5. */
static const char page1[] =
	"{\"version\":5,\"events\":["
	EVENT_JSON(1, "null", "{\"n\":2,\"f\":2.0,\"x\":1.5,\"s\":\"\\u00e9\"}")
	"," EVENT_JSON(2, "\"b1\"", "null")
	"],\"next_from_version\":3}";
static const char page2[] =
	"{\"version\":5,\"events\":["
	EVENT_JSON(3, "\"b2\"", "[]")
	"," EVENT_JSON(4, "\"b3\"", "0.1")
	"],\"next_from_version\":5}";
static const char page3[] =
	"{\"version\":5,\"events\":["
	EVENT_JSON(5, "\"b4\"", NUMBERS_IN)
	"],\"next_from_version\":null}";
static const char page_past[] =
	"{\"version\":5,\"events\":[],\"next_from_version\":null}";

static answer
answer_pages(const char *subject, json_t *req)
{
	json_int_t from =
		json_integer_value(json_object_get(req, "from_version"));

	switch (from) {
	case 0:
	case 1:
		return (answer){page1, "200"};
	case 3:
		return (answer){page2, "200"};
	case 5:
		return (answer){page3, "200"};
	default:
		return (answer){page_past, "200"};
	}
}

Test(client_fake, get_decodes_a_page)
{
	cim_event_page *p = NULL;
	cim_error err;
	const cim_event *e;

	fake_start(answer_pages);
	cr_assert_eq(cim_get(H.client, "order", "o-1", 0, 2, &p, &err),
		     CIM_ERR_OK, "%s", err.message);
	assert_subject(H_PREFIX ".get.order.o-1");
	assert_request_member("limit", "2");
	cr_assert_eq(p->version, 5);
	cr_assert_eq(p->next_from_version, 3);
	cr_assert_eq(p->n_events, 2);
	e = &p->events[0];
	cr_assert_str_eq(e->aggregate_type, "order");
	cr_assert_str_eq(e->aggregate_id, "o-1");
	cr_assert_eq(e->version, 1);
	cr_assert_str_eq(e->event_type, "T");
	cr_assert_str_eq(e->event_id, "e-1");
	cr_assert_str_eq(e->correlation_id, "c");
	cr_assert_str_eq(e->causation_id, "k");
	cr_assert_str_eq(e->timestamp, "2026-11-22T10:00:00.123456789Z");
	cr_assert_str_eq(e->metadata_json, "{\"who\":\"me\"}");
	cr_assert_str_eq(e->data_json,
			 "{\"n\":2,\"f\":2.0,\"x\":1.5,\"s\":\"\u00e9\"}");
	cr_assert_null(e->prev);
	cr_assert_str_eq(e->cid, "b1");
	cr_assert_eq(e->seq, 10);
	cr_assert_str_eq(p->events[1].data_json, "null");
	cr_assert_str_eq(p->events[1].prev, "b1");
	cim_event_page_destroy(p);

	cr_assert_eq(cim_get(H.client, "order", "o-1", 5, 0, &p, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(p->next_from_version, 0);
	cr_assert_eq(p->n_events, 1);
	cr_assert_str_eq(p->events[0].data_json, NUMBERS_OUT);
	cim_event_page_destroy(p);
}

Test(client_fake, iterator_follows_the_pages_to_the_head)
{
	cim_event_iter *it = NULL;
	const cim_event *e;
	cim_error err;
	uint64_t want = 1;

	fake_start(answer_pages);
	cr_assert_eq(cim_iter_open(H.client, "order", "o-1", 0, &it, &err),
		     CIM_ERR_OK, "%s", err.message);
	for (;;) {
		cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK, "%s",
			     err.message);
		if (e == NULL)
			break;
		cr_assert_eq(e->version, want++);
	}
	cr_assert_eq(want, 6);
	cr_assert_eq(fake_requests(), 3);
	/* the end stays the end */
	cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK);
	cr_assert_null(e);
	cim_iter_close(it);

	cr_assert_eq(cim_iter_open(H.client, "order", "o-1", 3, &it, &err),
		     CIM_ERR_OK);
	cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK);
	cr_assert_eq(e->version, 3);
	cr_assert_str_eq(e->data_json, "[]");
	cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK);
	cr_assert_str_eq(e->data_json, "0.1");
	cim_iter_close(it);
}

Test(client_fake, iterator_open_without_daemon_fails)
{
	cim_event_iter *it = (cim_event_iter *)0x1;
	cim_error err;

	cr_assert_eq(cim_iter_open(H.client, "order", "o-1", 0, &it, &err),
		     CIM_ERR_NO_DAEMON);
	cr_assert_null(it);
}

/* ---- validate and info ---- */

static answer
answer_broken(const char *subject, json_t *req)
{
	if (strstr(subject, ".info") != NULL)
		return (answer){
			"{\"name\":\"cim-eventsd\",\"version\":\"0.1.0\"}",
			"200"};
	return (answer){"{\"valid\":false,\"version\":7,\"checked\":2,"
			"\"head\":\"b7\",\"failure\":{\"version\":3,"
			"\"reason\":\"hash_mismatch\",\"detail\":\"d\"}}",
			"200"};
}

Test(client_fake, validate_and_info)
{
	cim_validation v;
	cim_error err;
	char *info = NULL;

	fake_start(answer_broken);
	cr_assert_eq(cim_validate(H.client, "order", "o-1", &v, &err),
		     CIM_ERR_OK, "%s", err.message);
	assert_subject(H_PREFIX ".validate.order.o-1");
	cr_assert_eq(v.valid, false);
	cr_assert_eq(v.version, 7);
	cr_assert_eq(v.checked, 2);
	cr_assert_str_eq(v.head, "b7");
	cr_assert_eq(v.failure_version, 3);
	cr_assert_str_eq(v.failure_reason, "hash_mismatch");
	cr_assert_str_eq(v.failure_detail, "d");

	cr_assert_eq(cim_info(H.client, &info, &err), CIM_ERR_OK);
	assert_subject(H_PREFIX ".info");
	cr_assert_not_null(strstr(info, "cim-eventsd"));
	cim_free(info);
}

/* ---- the tool against the fake ---- */

Test(client_fake, cli_prints_replies_and_exit_statuses)
{
	char args[512], out[8192];

	fake_start(answer_broken);
	snprintf(args, sizeof(args), "--url %s validate order o-1", H.nats.url);
	cr_assert_eq(run_cli(args, out, sizeof(out)), 1);
	cr_assert_not_null(strstr(out, "\"valid\":false"), "%s", out);
	snprintf(args, sizeof(args), "--url %s info", H.nats.url);
	cr_assert_eq(run_cli(args, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "{\"name\":\"cim-eventsd\",\"version\":\"0.1.0\"}"
			      "\n");
	snprintf(args, sizeof(args), "--url %s --prefix other info",
		 H.nats.url);
	cr_assert_eq(run_cli(args, NULL, 0), 4); /* no_daemon */
}

Test(client_fake, cli_get_all_merges_the_pages)
{
	char args[512], out[16384];
	json_t *j;

	fake_start(answer_pages);
	snprintf(args, sizeof(args), "--url %s get order o-1 --all --limit 2",
		 H.nats.url);
	cr_assert_eq(run_cli(args, out, sizeof(out)), 0);
	cr_assert_not_null(j = json_loads(out, 0, NULL), "%s", out);
	cr_assert_eq(json_array_size(json_object_get(j, "events")), 5);
	cr_assert(json_is_null(json_object_get(j, "next_from_version")));
	cr_assert_eq(json_integer_value(json_object_get(j, "version")), 5);
	json_decref(j);
}

Test(client_fake, cli_append_builds_the_request)
{
	char args[1024], out[4096];

	fake_start(answer_conflict);
	snprintf(args, sizeof(args),
		 "--url %s append order o-1 --expected 3 "
		 "--event OrderPlaced '{\"total\": 42.0}' --event-id e-1 "
		 "--metadata '{\"who\":\"me\"}' --event OrderPaid -5",
		 H.nats.url);
	cr_assert_eq(run_cli(args, out, sizeof(out)), 3);
	cr_assert_str_eq(out, "");
	assert_subject(H_PREFIX ".append.order.o-1");
	assert_request_member("expected_version", "3");
	assert_request_member("events",
			      "[{\"event_type\":\"OrderPlaced\",\"data\":"
			      "{\"total\":42.0},\"event_id\":\"e-1\","
			      "\"metadata\":{\"who\":\"me\"}},"
			      "{\"event_type\":\"OrderPaid\",\"data\":-5}]");
}
