/*
 * test_seal.c: a store that signs (signing_key): the seal headers on the
 * last event of every append, seal_key in info, seals in replies, and
 * validate with keys: the right key, an untrusted one, a tail forged with
 * correct hashes and a copied seal (bad_seal), a tail written without a
 * seal (unsealed), trusted_keys as the default; bad key files at start.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../support/blocks.h"
#include "../support/harness.h"
#include "seal.h"

#define SEED 0x11 /* the store's key */
#define OTHER 0x22 /* a key nobody signs with */

static cim_signing_key key, other;
static char *key_path;

static void setup_signing(void)
{
	h_setup_nats_only();
	tb_key(&key, SEED);
	tb_key(&other, OTHER);
	key_path = tb_key_file(H.nats.dir, "signing.key", SEED);
	H.daemon = h_daemon_start(&H.nats, "--signing-key", key_path, NULL);
	cr_assert_gt(H.daemon, 0, "cim-eventsd did not start with a signing key");
	H.client = h_client_new(0);
}

TestSuite(seal, .init = setup_signing, .fini = h_teardown, .timeout = 60);

/* The stored message's seal holds for its bytes, under the store's key. */
static void assert_sealed(natsMsg *m, const char *what)
{
	const char *k = h_header(m, "Cim-Seal-Key"), *s = h_header(m, "Cim-Seal");
	cim_cid cid;
	uint8_t pk[CIM_KEY_BYTES];
	char err[200];

	cr_assert_not_null(k, "%s: no Cim-Seal-Key", what);
	cr_assert_not_null(s, "%s: no Cim-Seal", what);
	cr_assert_str_eq(k, key.text, "%s: sealed by %s", what, k);
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256,
			(const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
	cr_assert_eq(cim_seal_check_headers(k, strlen(k), s, strlen(s), &cid, pk, err,
					    sizeof(err)), 0, "%s: %s", what, err);
}

static void assert_unsealed(natsMsg *m, const char *what)
{
	cr_assert_null(h_header(m, "Cim-Seal-Key"), "%s carries a seal key", what);
	cr_assert_null(h_header(m, "Cim-Seal"), "%s carries a seal", what);
}

static json_t *validate_body(const char *id, const char *body)
{
	h_reply r;

	h_requestf(&r, body, H_PREFIX ".validate.acct.%s", id);
	cr_assert_eq(r.s, NATS_OK);
	cr_assert_not_null(r.json, "%s", r.body);
	json_t *j = json_incref(r.json);
	h_reply_free(&r);
	return j;
}

static char *keys_body(const cim_signing_key *k)
{
	return h_strf("{\"keys\": [\"%s\"]}", k->text);
}

Test(seal, info_shows_the_seal_key)
{
	h_reply r;

	h_requestf(&r, "{}", H_PREFIX ".info");
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "seal_key")), key.text);
	json_t *set = json_object_get(r.json, "settings");
	cr_assert_str_eq(json_string_value(json_object_get(set, "signing_key")), key_path,
			 "info shows the key file's path, never the key");
	cr_assert_null(strstr(r.body, "1111111111"), "a seed's hex in info: %s", r.body);
	h_reply_free(&r);
}

Test(seal, a_single_event_append_is_sealed)
{
	cim_append_result *a = h_append1("acct", "s-1", 0, "Opened", "{\"x\": 1}");
	natsMsg *m = h_stream_get(a->events[0].seq);

	assert_sealed(m, "version 1");
	natsMsg_Destroy(m);

	/* get, load and by_type show it */
	h_reply r;
	h_requestf(&r, "{}", H_PREFIX ".get.acct.s-1");
	json_t *ev = json_array_get(json_object_get(r.json, "events"), 0);
	json_t *seal = json_object_get(ev, "seal");
	cr_assert(json_is_object(seal), "get: no seal in %s", r.body);
	cr_assert_str_eq(json_string_value(json_object_get(seal, "key")), key.text);
	cr_assert_eq(strlen(json_string_value(json_object_get(seal, "sig"))), 88);
	h_reply_free(&r);
	h_requestf(&r, "{}", H_PREFIX ".load.acct.s-1");
	ev = json_array_get(json_object_get(r.json, "events"), 0);
	cr_assert(json_is_object(json_object_get(ev, "seal")), "load: %s", r.body);
	h_reply_free(&r);
	h_requestf(&r, "{}", H_PREFIX ".by_type.Opened");
	ev = json_array_get(json_object_get(r.json, "events"), 0);
	cr_assert(json_is_object(json_object_get(ev, "seal")), "by_type: %s", r.body);
	h_reply_free(&r);
	cim_append_result_destroy(a);
}

Test(seal, only_the_last_event_of_a_batch_is_sealed)
{
	cim_new_event evs[3] = {
		{.event_type = "Opened", .data_json = "{\"i\": 1}"},
		{.event_type = "Moved", .data_json = "{\"i\": 2}"},
		{.event_type = "Moved", .data_json = "{\"i\": 3}"},
	};
	cim_append_result *a = NULL;
	cim_error err = {0};

	cr_assert_eq(cim_append(H.client, "acct", "s-3", CIM_EXPECT_NO_STREAM, evs, 3, &a,
				&err), CIM_ERR_OK, "%s", err.message);
	for (int i = 0; i < 3; i++) {
		natsMsg *m = h_stream_get(a->events[i].seq);
		char what[32];

		snprintf(what, sizeof(what), "event %d of 3", i + 1);
		if (i < 2)
			assert_unsealed(m, what);
		else
			assert_sealed(m, what);
		natsMsg_Destroy(m);
	}
	h_reply r;
	h_requestf(&r, "{}", H_PREFIX ".get.acct.s-3");
	json_t *evj = json_object_get(r.json, "events");
	cr_assert_null(json_object_get(json_array_get(evj, 0), "seal"));
	cr_assert_null(json_object_get(json_array_get(evj, 1), "seal"));
	cr_assert_not_null(json_object_get(json_array_get(evj, 2), "seal"));
	h_reply_free(&r);

	/* the seal of the last covers all three */
	json_t *v = validate_body("s-3", keys_body(&key));
	cr_assert(json_is_true(json_object_get(v, "valid")), "%s", json_dumps(v, 0));
	cr_assert_eq(json_integer_value(json_object_get(v, "sealed_through")), 3);
	json_decref(v);
	cim_append_result_destroy(a);
}

Test(seal, validate_with_an_untrusted_key_is_unsealed)
{
	free(h_append_n("acct", "s-u", 2));
	json_t *v = validate_body("s-u", keys_body(&other));
	json_t *f = json_object_get(v, "failure");

	cr_assert(json_is_false(json_object_get(v, "valid")));
	cr_assert_str_eq(json_string_value(json_object_get(f, "reason")), "unsealed");
	cr_assert_eq(json_integer_value(json_object_get(f, "version")), 1);
	cr_assert_eq(json_integer_value(json_object_get(v, "sealed_through")), 0);
	cr_assert_eq(json_integer_value(json_object_get(v, "checked")), 2);
	json_decref(v);

	/* without keys (and no trusted_keys), seals are not looked at */
	v = validate_body("s-u", "{}");
	cr_assert(json_is_true(json_object_get(v, "valid")));
	cr_assert_null(json_object_get(v, "sealed_through"));
	json_decref(v);
}

/* Two sealed events, then version 3 forged: a block with a correct prev
 * and hash, written straight to JetStream. */
static tb_block forge_v3(const char *id, natsMsg **v2)
{
	cim_append_result *a;
	tb_block b;
	cim_cid head;

	free(h_append_n("acct", id, 1));
	a = h_append1("acct", id, 1, "Booked", "{\"v\": 2}");
	*v2 = h_stream_get(a->events[0].seq);
	cr_assert_eq(cim_cid_from_text(&head, a->head), 0);
	tb_make(&b, "acct", id, 3, "Booked", "{\"forged\": true}", NULL, &head, 0);
	cim_append_result_destroy(a);
	return b;
}

Test(seal, a_forged_tail_with_a_copied_seal_is_bad_seal)
{
	natsMsg *v2;
	tb_block b = forge_v3("s-f", &v2);

	tb_publish(&b, "acct", "s-f", "Booked", 3, h_header(v2, "Cim-Seal-Key"),
		   h_header(v2, "Cim-Seal"));
	json_t *v = validate_body("s-f", keys_body(&key));
	json_t *f = json_object_get(v, "failure");
	cr_assert(json_is_false(json_object_get(v, "valid")), "%s", json_dumps(v, 0));
	cr_assert_str_eq(json_string_value(json_object_get(f, "reason")), "bad_seal");
	cr_assert_eq(json_integer_value(json_object_get(f, "version")), 3);
	cr_assert_eq(json_integer_value(json_object_get(v, "sealed_through")), 2);
	cr_assert_eq(json_integer_value(json_object_get(v, "checked")), 2);
	/* without keys the chain itself holds: the hashes are right */
	json_decref(v);
	v = validate_body("s-f", "{}");
	cr_assert(json_is_true(json_object_get(v, "valid")), "%s", json_dumps(v, 0));
	json_decref(v);
	natsMsg_Destroy(v2);
	tb_free(&b, 1);
}

Test(seal, a_tail_written_without_a_seal_is_unsealed)
{
	natsMsg *v2;
	tb_block b = forge_v3("s-n", &v2);

	tb_publish(&b, "acct", "s-n", "Booked", 3, NULL, NULL);
	json_t *v = validate_body("s-n", keys_body(&key));
	json_t *f = json_object_get(v, "failure");
	cr_assert(json_is_false(json_object_get(v, "valid")), "%s", json_dumps(v, 0));
	cr_assert_str_eq(json_string_value(json_object_get(f, "reason")), "unsealed");
	cr_assert_eq(json_integer_value(json_object_get(f, "version")), 3);
	cr_assert_eq(json_integer_value(json_object_get(v, "sealed_through")), 2);
	cr_assert_eq(json_integer_value(json_object_get(v, "checked")), 3);
	cr_assert_not_null(strstr(json_string_value(json_object_get(f, "detail")), "3 to 3"));
	json_decref(v);
	natsMsg_Destroy(v2);
	tb_free(&b, 1);
}

Test(seal, the_seal_of_a_key_not_trusted_is_checked_but_covers_nothing)
{
	natsMsg *v2;
	tb_block b = forge_v3("s-o", &v2);
	uint8_t sig[CIM_SEAL_SIG_BYTES];
	char text[CIM_SEAL_TEXT_MAX];

	/* a good seal of version 3 by another key: not bad, not cover */
	cim_seal_sign(&other, &b.cid, sig);
	cim_seal_sig_to_text(sig, text);
	tb_publish(&b, "acct", "s-o", "Booked", 3, other.text, text);
	json_t *v = validate_body("s-o", keys_body(&key));
	json_t *f = json_object_get(v, "failure");
	cr_assert_str_eq(json_string_value(json_object_get(f, "reason")), "unsealed");
	cr_assert_eq(json_integer_value(json_object_get(f, "version")), 3);
	json_decref(v);
	/* trusting both: covered */
	v = validate_body("s-o", h_strf("{\"keys\": [\"%s\", \"%s\"]}", key.text, other.text));
	cr_assert(json_is_true(json_object_get(v, "valid")), "%s", json_dumps(v, 0));
	cr_assert_eq(json_integer_value(json_object_get(v, "sealed_through")), 3);
	json_decref(v);
	natsMsg_Destroy(v2);
	tb_free(&b, 1);
}

Test(seal, validate_refuses_bad_keys)
{
	h_reply r;

	h_requestf(&r, "{\"keys\": [\"z6MkNOTAKEY\"]}", H_PREFIX ".validate.acct.x");
	cr_assert_str_eq(h_error_code(&r), "invalid_argument");
	cr_assert_str_eq(h_error_str(&r, "field"), "keys[0]");
	h_reply_free(&r);
	h_requestf(&r, "{\"keys\": \"z6Mk\"}", H_PREFIX ".validate.acct.x");
	cr_assert_str_eq(h_error_code(&r), "invalid_request");
	h_reply_free(&r);
	h_requestf(&r, "{\"keys\": [], \"other\": 1}", H_PREFIX ".validate.acct.x");
	cr_assert_str_eq(h_error_code(&r), "invalid_request");
	h_reply_free(&r);
	/* an aggregate with no events is valid, sealed through 0 */
	json_t *v = validate_body("none", keys_body(&key));
	cr_assert(json_is_true(json_object_get(v, "valid")));
	cr_assert_eq(json_integer_value(json_object_get(v, "sealed_through")), 0);
	json_decref(v);
}

/* ---- trusted_keys, and key files the daemon refuses ------------------------- */

TestSuite(seal_config, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 60);

Test(seal_config, trusted_keys_apply_when_a_request_gives_none)
{
	cim_signing_key k;

	tb_key(&k, SEED);
	char *path = tb_key_file(H.nats.dir, "k", SEED);
	H.daemon = h_daemon_start(&H.nats, "--signing-key", path, "--trusted-keys", k.text,
				  NULL);
	cr_assert_gt(H.daemon, 0);
	H.client = h_client_new(0);
	free(h_append_n("acct", "t-1", 3));
	json_t *v = validate_body("t-1", "{}");
	cr_assert(json_is_true(json_object_get(v, "valid")), "%s", json_dumps(v, 0));
	cr_assert_eq(json_integer_value(json_object_get(v, "sealed_through")), 3);
	json_decref(v);
	/* a request's own keys replace them */
	tb_key(&k, OTHER);
	v = validate_body("t-1", keys_body(&k));
	cr_assert(json_is_false(json_object_get(v, "valid")));
	json_decref(v);
}

/* Runs the daemon with args and expects it to stop at once with exit 2
 * and a message holding want. */
static void refused_at_start(const char *tag, const char *const *args, const char *want)
{
	const char *argv[16];
	int n = 0;

	argv[n++] = getenv("CIM_TEST_DAEMON");
	argv[n++] = "--nats-url";
	argv[n++] = H.nats.url;
	for (int i = 0; args[i] != NULL; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	h_run r = h_finish(h_spawn(tag, argv), tag, 10000);
	cr_assert_eq(r.status, 2, "%s: exit %d: %s", tag, r.status, r.err);
	cr_assert_not_null(strstr(r.err, want), "%s: %s", tag, r.err);
	cr_assert_null(strstr(r.err, "3333333333"), "%s: the key shows: %s", tag, r.err);
	h_run_free(&r);
}

Test(seal_config, bad_key_files_stop_the_daemon_at_start)
{
	char *good = tb_key_file(H.nats.dir, "good", 0x33);
	char *missing = h_strf("%s/missing", H.nats.dir);
	char *open_ = tb_key_file(H.nats.dir, "open", 0x33);
	char *short_ = h_strf("%s/short", H.nats.dir);
	FILE *f = fopen(short_, "w");

	fputs("33333333\n", f);
	fclose(f);
	chmod(short_, 0600);
	chmod(open_, 0644);
	refused_at_start("missing", (const char *const[]){"--signing-key", missing, NULL},
			 "signing_key");
	refused_at_start("open", (const char *const[]){"--signing-key", open_, NULL}, "0644");
	refused_at_start("short", (const char *const[]){"--signing-key", short_, NULL},
			 "signing_key");
	refused_at_start("trusted", (const char *const[]){"--trusted-keys", "z6Mk,", NULL},
			 "trusted_keys");
	/* the good one starts */
	H.daemon = h_daemon_start(&H.nats, "--signing-key", good, NULL);
	cr_assert_gt(H.daemon, 0);
}

/* ---- subscriptions and projections with trusted keys ----------------------- */

/* Replays events.acct.<id>.> with the key given (NULL: none): the
 * reasons of the failed checks, in order, as one text ("ok" for each
 * event that passed). */
static char *replay_reasons(const char *id, const cim_signing_key *k)
{
	const char *keys[1] = {k ? k->text : NULL};
	char *pattern = h_strf("events.acct.%s.>", id);
	cim_subscribe_options o = {.pattern = pattern, .stop_at_end = true,
				   .trusted_keys = keys, .n_trusted_keys = k ? 1 : 0};
	cim_subscription *s = NULL;
	cim_error err = {0};
	const cim_event *ev;
	char out[400] = "";

	cr_assert_eq(cim_subscribe(H.client, &o, &s, &err), CIM_ERR_OK, "%s", err.message);
	for (;;) {
		cim_err rc = cim_subscription_next(s, 5000, &ev, &err);
		if (rc == CIM_ERR_OK && ev == NULL)
			break;
		cr_assert(rc == CIM_ERR_OK || rc == CIM_ERR_CHECK_FAILED, "%s: %s",
			  cim_err_name(rc), err.message);
		char word[40];
		snprintf(word, sizeof(word), "%.39s", rc == CIM_ERR_OK ? "ok" : err.message);
		word[strcspn(word, ":")] = '\0';
		if (rc == CIM_ERR_OK && ev->seal_key != NULL)
			cr_assert_str_eq(ev->seal_key, key.text);
		strncat(out, word, sizeof(out) - strlen(out) - 2);
		strcat(out, " ");
	}
	cim_subscription_close(s);
	free(pattern);
	return strdup(out);
}

Test(seal, a_subscription_refuses_a_forged_tail)
{
	natsMsg *v2;
	tb_block b = forge_v3("s-sub", &v2);

	tb_publish(&b, "acct", "s-sub", "Booked", 3, h_header(v2, "Cim-Seal-Key"),
		   h_header(v2, "Cim-Seal"));
	cr_assert_str_eq(replay_reasons("s-sub", &key), "ok ok bad_seal ");
	cr_assert_str_eq(replay_reasons("s-sub", NULL), "ok ok ok ", "no keys: no seal check");
	cr_assert_str_eq(replay_reasons("s-sub", &other), "unsealed unsealed bad_seal ");
	natsMsg_Destroy(v2);
	tb_free(&b, 1);
}

Test(seal, a_subscription_refuses_an_unsealed_tail_and_its_batch)
{
	natsMsg *v2;
	tb_block b = forge_v3("s-sub2", &v2);
	tb_block c;

	/* version 3 alone, unsealed; then 4 and 5 as a batch, unsealed */
	tb_publish(&b, "acct", "s-sub2", "Booked", 3, NULL, NULL);
	tb_make(&c, "acct", "s-sub2", 4, "Booked", "{}", NULL, &b.cid, 0);
	char *subject = "events.acct.s-sub2.Booked";
	natsMsg *m = NULL;
	jsPubAck *ack = NULL;
	natsMsg_Create(&m, subject, NULL, (const char *)c.bytes.p, (int)c.bytes.len);
	natsMsgHeader_Set(m, "Cim-Batch", "1/2");
	cr_assert_eq(js_PublishMsg(&ack, H.js, m, NULL, NULL), NATS_OK);
	jsPubAck_Destroy(ack);
	natsMsg_Destroy(m);
	tb_block d;
	tb_make(&d, "acct", "s-sub2", 5, "Booked", "{}", NULL, &c.cid, 0);
	natsMsg_Create(&m, subject, NULL, (const char *)d.bytes.p, (int)d.bytes.len);
	natsMsgHeader_Set(m, "Cim-Batch", "2/2");
	cr_assert_eq(js_PublishMsg(&ack, H.js, m, NULL, NULL), NATS_OK);
	jsPubAck_Destroy(ack);
	natsMsg_Destroy(m);
	cr_assert_str_eq(replay_reasons("s-sub2", &key), "ok ok unsealed unsealed unsealed ");
	natsMsg_Destroy(v2);
	tb_free(&b, 1);
	tb_free(&c, 1);
	tb_free(&d, 1);
}

static int count_event(void *ctx, const cim_event *ev)
{
	(*(int *)ctx)++;
	return 0;
}

Test(seal, a_projection_with_trusted_keys_stops_at_the_forged_tail)
{
	natsMsg *v2;
	tb_block b = forge_v3("s-proj", &v2);
	const char *keys[1] = {key.text};
	cim_projection_options po = {.name = "sealed", .pattern = "events.acct.s-proj.>",
				     .trusted_keys = keys, .n_trusted_keys = 1};
	cim_projection *p = NULL;
	cim_error err = {0};
	int n = 0;

	tb_publish(&b, "acct", "s-proj", "Booked", 3, NULL, NULL);
	cr_assert_eq(cim_projection_open(H.client, &po, &p, &err), CIM_ERR_OK, "%s",
		     err.message);
	cim_err rc = cim_projection_run(p, count_event, &n, 2000, &err);
	cr_assert_eq(rc, CIM_ERR_CHECK_FAILED, "%s: %s", cim_err_name(rc), err.message);
	cr_assert_not_null(strstr(err.message, "unsealed"), "%s", err.message);
	cr_assert_eq(n, 2, "handled %d events before the forged one", n);
	cim_projection_close(p);
	/* a bad key is refused at open */
	const char *bad[1] = {"z6MkX"};
	po.trusted_keys = bad;
	cr_assert_eq(cim_projection_open(H.client, &po, &p, &err), CIM_ERR_INVALID_ARGUMENT);
	natsMsg_Destroy(v2);
	tb_free(&b, 1);
}

Test(seal, cim_validate_keys_reports_sealed_through)
{
	cim_validation v;
	cim_error err = {0};
	const char *keys[1] = {key.text}, *others[1] = {other.text}, *bad[1] = {"nope"};

	free(h_append_n("acct", "s-lib", 3));
	cr_assert_eq(cim_validate_keys(H.client, "acct", "s-lib", keys, 1, &v, &err), CIM_ERR_OK,
		     "%s", err.message);
	cr_assert(v.valid && v.sealed && v.sealed_through == 3);
	cr_assert_eq(cim_validate_keys(H.client, "acct", "s-lib", others, 1, &v, &err),
		     CIM_ERR_OK);
	cr_assert(!v.valid && v.sealed && v.sealed_through == 0);
	cr_assert_str_eq(v.failure_reason, "unsealed");
	cr_assert_eq(v.failure_version, 1);
	cr_assert_eq(cim_validate(H.client, "acct", "s-lib", &v, &err), CIM_ERR_OK);
	cr_assert(v.valid && !v.sealed);
	cr_assert_eq(cim_validate_keys(H.client, "acct", "s-lib", bad, 1, &v, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "keys");
}

/* ---- the tool's --key ---------------------------------------------------------------- */

static h_run cli(const char *first, ...)
{
	const char *argv[24];
	int argc = 0;
	va_list ap;

	argv[argc++] = getenv("CIM_TEST_CLI");
	argv[argc++] = "--url";
	argv[argc++] = H.nats.url;
	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 23; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return h_finish(h_spawn("cli", argv), "cli", 30000);
}
#define CLI(...) cli(__VA_ARGS__, (const char *)NULL)

Test(seal, the_tool_checks_seals_with_key)
{
	natsMsg *v2;
	tb_block b = forge_v3("s-cli", &v2);

	/* the forged tail (seq 3), then another aggregate's sealed events */
	tb_publish(&b, "acct", "s-cli", "Booked", 3, h_header(v2, "Cim-Seal-Key"),
		   h_header(v2, "Cim-Seal"));
	free(h_append_n("acct", "s-ok", 2));

	h_run r = CLI("validate", "acct", "s-ok", "--key", key.text);
	cr_assert_eq(r.status, 0, "%s %s", r.out, r.err);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "sealed_through")), 2);
	h_run_free(&r);
	r = CLI("validate", "acct", "s-ok", "--key", other.text);
	cr_assert_eq(r.status, 1, "%s", r.out);
	h_run_free(&r);
	r = CLI("validate", "acct", "s-ok", "--key", "z6MkNOPE");
	cr_assert_eq(r.status, 2, "%s", r.err);
	h_run_free(&r);

	r = CLI("verify-all", "acct", "--key", key.text);
	cr_assert_eq(r.status, 1, "%s %s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "broken acct s-cli: version 3: bad_seal"), "%s", r.out);
	cr_assert_null(strstr(r.out, "s-ok"), "%s", r.out);
	h_run_free(&r);
	r = CLI("verify-all", "acct");
	cr_assert_eq(r.status, 0, "without a key the chains hold: %s", r.out);
	h_run_free(&r);

	/* four events pass, the forged one between them fails */
	r = CLI("tail", "events.acct.>", "--from-seq", "1", "--count", "4", "--key", key.text);
	cr_assert_eq(r.status, 1, "status %d: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "check_failed: bad_seal: acct/s-cli version 3"), "%s",
			   r.err);
	cr_assert_not_null(strstr(r.out, "\"seal\":{\"key\":\""), "%s", r.out);
	h_run_free(&r);
	r = CLI("tail", "events.acct.>", "--from-seq", "4", "--count", "2", "--key", key.text);
	cr_assert_eq(r.status, 0, "status %d: %s", r.status, r.err);
	h_run_free(&r);
	r = CLI("tail", "events.acct.>", "--no-check", "--key", key.text);
	cr_assert_eq(r.status, 2, "--no-check with --key: status %d: %s", r.status, r.err);
	h_run_free(&r);
	natsMsg_Destroy(v2);
	tb_free(&b, 1);
}

Test(seal_config, check_config_shows_the_key_files_path_never_the_key)
{
	cim_signing_key k;
	char *path = tb_key_file(H.nats.dir, "k", 0x33);
	tb_key(&k, 0x44);
	const char *argv[] = {getenv("CIM_TEST_DAEMON"), "--signing-key", path,
			      "--trusted-keys", k.text, "--check-config", NULL};
	h_run r = h_finish(h_spawn("check", argv), "check", 10000);

	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.out, "[keys]"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, h_strf("signing_key = %s", path)), "%s", r.out);
	cr_assert_not_null(strstr(r.out, h_strf("trusted_keys = %s", k.text)), "%s", r.out);
	cr_assert_null(strstr(r.out, "3333333333"), "the seed shows: %s", r.out);
	h_run_free(&r);
}
