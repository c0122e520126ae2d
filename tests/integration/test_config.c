/*
 * test_config.c: the daemon's settings as an operator meets them, through
 * the built binary: `cim-eventsd --check-config` with INI files (ours and
 * the seed's names), the environment and flags; the errors it names by
 * file and line; secrets masked; and the settings that change what the
 * daemon does (max_events_per_aggregate) on a running daemon.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"
#include "nkey.h"

TestSuite(config, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 60);

/* Writes text to H.nats.dir/name; returns the path (free it). */
static char *write_conf(const char *name, const char *text)
{
	char *path = h_strf("%s/%s", H.nats.dir, name);
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
	return path;
}

/* cim-eventsd ARGS... (NULL-ended, without the binary), run to its end. */
static h_run run_daemon(const char *first, ...)
{
	const char *argv[32] = {getenv("CIM_TEST_DAEMON")};
	size_t n = 1;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a && n + 1 < 32; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return h_finish(h_spawn("check", argv), "check", 10000);
}

/* The line "key = value ..." of a --check-config output, or NULL. */
static const char *line_of(const char *out, const char *key)
{
	size_t len = strlen(key);

	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, key, len) == 0 && strncmp(p + len, " = ", 3) == 0)
			return p;
	return NULL;
}

/* Asserts the output has "key = value" (the value up to the spaces
 * before the origin), and returns the origin after "# ". */
static char *assert_setting(const char *out, const char *key, const char *value)
{
	const char *l = line_of(out, key);
	char want[512];

	cr_assert_not_null(l, "no line for %s in:\n%s", key, out);
	snprintf(want, sizeof want, "%s = %s    # ", key, value);
	cr_assert(strncmp(l, want, strlen(want)) == 0, "want '%s...', got '%.*s'", want,
		  (int)strcspn(l, "\n"), l);
	const char *o = l + strlen(want);
	return strndup(o, strcspn(o, "\n"));
}

Test(config, defaults_are_valid_and_every_setting_is_listed)
{
	h_run r = run_daemon("--check-config", NULL);

	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	free(assert_setting(r.out, "nats_url", "nats://127.0.0.1:4222"));
	free(assert_setting(r.out, "retention_days", "0"));
	free(assert_setting(r.out, "max_events_per_aggregate", "0"));
	free(assert_setting(r.out, "snapshot_threshold", "0"));
	free(assert_setting(r.out, "tls_required", "false"));
	free(assert_setting(r.out, "shutdown_timeout", "20"));
	char *o = assert_setting(r.out, "stream", "CIM-EVENTS");
	cr_assert_str_eq(o, "default");
	free(o);
	h_run_free(&r);
}

/* The seed's own example, with the two values the daemon refuses changed:
 * its names ([nats] url/user/password, [jetstream] domain,
 * [event_store] ...) land on the daemon's settings. */
Test(config, the_seed_names_map_to_the_settings_and_secrets_are_masked)
{
	char *path = write_conf("seed.conf",
				"[nats]\n"
				"url = \"nats://localhost:4222\"\n"
				"user = \"cim-domain\"\n"
				"password = \"secure-password\"\n"
				"tls_required = true\n"
				"\n"
				"[jetstream]\n"
				"domain = \"cim\"\n"
				"\n"
				"[event_store]\n"
				"stream_name = \"CIM-EVENTS\"\n"
				"retention_days = 0\n"
				"max_events_per_aggregate = 10000\n"
				"snapshot_threshold = 100\n");
	h_run r = run_daemon("--config", path, "--check-config", NULL);
	char *o, *where;

	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	/* the seed's TOML quotes are taken off */
	free(assert_setting(r.out, "nats_url", "nats://localhost:4222"));
	o = assert_setting(r.out, "nats_password", "***");
	where = h_strf("%s:4", path);
	cr_assert_str_eq(o, where);
	free(o);
	free(where);
	cr_assert_null(strstr(r.out, "secure-password"), "the password is shown:\n%s", r.out);
	free(assert_setting(r.out, "tls_required", "true"));
	free(assert_setting(r.out, "js_domain", "cim"));
	o = assert_setting(r.out, "max_events_per_aggregate", "10000");
	where = h_strf("%s:13", path);
	cr_assert_str_eq(o, where);
	free(o);
	free(where);
	free(assert_setting(r.out, "snapshot_threshold", "100"));
	h_run_free(&r);
	free(path);
}

/* The seed's example verbatim asks for two things the daemon refuses:
 * events that age out, and a JetStream domain and prefix at once. */
Test(config, the_seed_example_verbatim_is_refused_with_both_reasons)
{
	char *path = write_conf("seed.conf",
				"[nats]\nurl = nats://localhost:4222\nuser = cim-domain\n"
				"password = secure-password\ntls_required = true\n\n"
				"[jetstream]\ndomain = cim\nprefix = CIM\n\n"
				"[event_store]\nstream_name = CIM-EVENTS\nretention_days = 365\n"
				"max_events_per_aggregate = 10000\nsnapshot_threshold = 100\n");
	h_run r = run_daemon("--config", path, "--check-config", NULL);
	char *where = h_strf("%s:13: retention_days = 365", path);

	cr_assert_eq(r.status, 2);
	cr_assert_not_null(strstr(r.err, where), "stderr: %s", r.err);
	cr_assert_not_null(strstr(r.err, "only 0 (keep for ever) is accepted"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "set js_domain or js_api_prefix, not both"), "%s", r.err);
	h_run_free(&r);
	free(where);
	free(path);
}

Test(config, environment_beats_the_file_and_a_flag_beats_both)
{
	char *path = write_conf("c.conf", "[daemon]\nlog_level = warn\nworkers = 2\n"
					  "[nats]\nconnect_timeout = 7\n");
	setenv("CIM_EVENTS_LOG_LEVEL", "error", 1);
	setenv("CIM_EVENTS_WORKERS", "3", 1);
	h_run r = run_daemon("--config", path, "--workers", "5", "--check-config", NULL);
	unsetenv("CIM_EVENTS_LOG_LEVEL");
	unsetenv("CIM_EVENTS_WORKERS");
	char *o;

	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	o = assert_setting(r.out, "log_level", "error");
	cr_assert_str_eq(o, "$CIM_EVENTS_LOG_LEVEL");
	free(o);
	o = assert_setting(r.out, "workers", "5");
	cr_assert_str_eq(o, "command line");
	free(o);
	o = assert_setting(r.out, "connect_timeout", "7");
	cr_assert_not_null(strstr(o, "c.conf:5"), "%s", o);
	free(o);
	h_run_free(&r);
	free(path);
}

Test(config, secrets_in_the_url_token_and_password_are_masked)
{
	unsigned char raw[32];
	char seed_text[NKEY_SEED_LEN + 1], pub[NKEY_PUBLIC_LEN + 1], *line;
	for (int i = 0; i < 32; i++)
		raw[i] = (unsigned char)(i * 7 + 1);
	cr_assert_eq(nkey_user_from_raw(raw, seed_text, pub), 0);
	cr_assert_eq(seed_text[0], 'S');
	cr_assert_eq(seed_text[1], 'U');
	cr_assert_eq(pub[0], 'U');
	line = h_strf("%s\n", seed_text);
	char *seed = write_conf("user.nk", line);
	free(line);
	char *tok = write_conf("tok.conf", "[nats]\ntoken = tok-sekrit-1\n"
					 "nats_url = nats://alice:pw-sekrit-2@h1:4222,nats://h2:4222\n");
	h_run r = run_daemon("--config", tok, "--check-config", NULL);

	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	free(assert_setting(r.out, "nats_token", "***"));
	free(assert_setting(r.out, "nats_url", "nats://***@h1:4222,nats://h2:4222"));
	cr_assert_null(strstr(r.out, "sekrit"), "a secret is shown:\n%s", r.out);
	h_run_free(&r);

	r = run_daemon("--nats-nkey-seed", seed, "--check-config", NULL);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	free(assert_setting(r.out, "nats_nkey_seed", seed));
	cr_assert_null(strstr(r.out, seed_text), "the seed's contents are shown:\n%s", r.out);
	h_run_free(&r);
	free(seed);
	free(tok);
}

/* Each bad input: exit 2 and a message naming where it came from. */
static void assert_refused(const char *text, const char *want)
{
	char *path = write_conf("bad.conf", text);
	h_run r = run_daemon("--config", path, "--check-config", NULL);
	char *w = h_strf(want, path);

	cr_assert_eq(r.status, 2, "'%s' was accepted: %s", text, r.out);
	cr_assert_not_null(strstr(r.err, w), "want '%s' in: %s", w, r.err);
	cr_assert_eq(r.out[0], '\0', "nothing on stdout when refused: %s", r.out);
	h_run_free(&r);
	free(w);
	free(path);
}

Test(config, bad_files_are_refused_naming_the_file_and_line)
{
	assert_refused("[nats]\nnats_url = nats://x:4222\nbogus = 1\n",
		       "%s:3: unknown setting [nats] bogus");
	assert_refused("[api]\n\nget_limit = lots\n",
		       "%s:3: get_limit must be an integer from 1 to 100000, not 'lots'");
	assert_refused("[store]\nstream = S\n[nats]\nstream = T\n",
		       "%s:4: unknown setting [nats] stream");
	assert_refused("[nats]\ntls_required = maybe\n",
		       "%s:2: tls_required must be true or false, not 'maybe'");
	assert_refused("[nats]\ntls_ca = /nonexistent/ca.pem\n",
		       "%s:2: tls_ca: cannot read /nonexistent/ca.pem");
	assert_refused("[nats]\nnats_user = alice\n", "%s:2: nats_user and nats_password go together");
	assert_refused("[nats]\nuser = a\npassword = b\ntoken = c\n",
		       "choose one way to authenticate");
	assert_refused("[nats]\ntls_key = /dev/null\n", "%s:2: tls_cert and tls_key go together");
	assert_refused("[nats]\nnkey_seed = /dev/null\n",
		       "%s:2: nats_nkey_seed: /dev/null holds no valid user NKey seed");
	assert_refused("[store]\nretention_days = 30\n", "%s:2: retention_days = 30");
	assert_refused("[api]\nget_limit = 500\nget_max_limit = 100\n",
		       "get_limit (500) is over get_max_limit (100)");
	assert_refused("[nats\nnats_url = x\n", "%s:1: syntax error");
}

Test(config, an_unreadable_file_and_a_bad_flag_are_refused)
{
	h_run r = run_daemon("--config", "/nonexistent/cim.conf", "--check-config", NULL);

	cr_assert_eq(r.status, 2);
	cr_assert_not_null(strstr(r.err, "/nonexistent/cim.conf: cannot read"), "%s", r.err);
	h_run_free(&r);

	r = run_daemon("--max-events-per-aggregate", "-1", "--check-config", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert_not_null(strstr(r.err, "command line: max_events_per_aggregate must be"),
			   "%s", r.err);
	h_run_free(&r);

	setenv("CIM_EVENTS_SHUTDOWN_TIMEOUT", "0", 1);
	r = run_daemon("--check-config", NULL);
	unsetenv("CIM_EVENTS_SHUTDOWN_TIMEOUT");
	cr_assert_eq(r.status, 2);
	cr_assert_not_null(strstr(r.err, "$CIM_EVENTS_SHUTDOWN_TIMEOUT: shutdown_timeout"),
			   "%s", r.err);
	h_run_free(&r);
}

/* An append that would take an aggregate past max_events_per_aggregate
 * is refused whole, with payload_too_large (the contract's "over the
 * configured limits; says which"), and nothing is stored. */
Test(config, max_events_per_aggregate_refuses_the_append_that_would_pass_it)
{
	h_reply rep;

	H.daemon = h_daemon_start(&H.nats, "--max-events-per-aggregate", "3", (char *)NULL);
	cr_assert_gt(H.daemon, 0);
	free(h_append_n("order", "o-1", 2));
	h_requestf(&rep, "{\"events\":[{\"event_type\":\"A\",\"data\":1},"
			 "{\"event_type\":\"B\",\"data\":2}]}",
		   H_PREFIX ".append.order.o-1");
	cr_assert_eq(rep.s, NATS_OK);
	cr_assert_eq(rep.status, 413, "%s", rep.body);
	cr_assert_str_eq(h_error_code(&rep), "payload_too_large");
	cr_assert_not_null(strstr(h_error_str(&rep, "message"), "max_events_per_aggregate (3)"),
			   "%s", rep.body);
	h_reply_free(&rep);
	cr_assert_eq(h_stream_msgs(), 2, "nothing of the refused batch is stored");

	cim_append_result_destroy(h_append1("order", "o-1", 2, "C", "3"));
	h_requestf(&rep, "{\"events\":[{\"event_type\":\"D\",\"data\":4}]}",
		   H_PREFIX ".append.order.o-1");
	cr_assert_eq(rep.status, 413, "%s", rep.body);
	h_reply_free(&rep);
	/* another aggregate has its own count */
	free(h_append_n("order", "o-2", 3));
	cr_assert_eq(h_stream_msgs(), 6);
}

Test(config, snapshot_threshold_is_published_in_info)
{
	h_reply rep;

	H.daemon = h_daemon_start(&H.nats, "--snapshot-threshold", "50", (char *)NULL);
	cr_assert_gt(H.daemon, 0);
	h_request(&rep, H_PREFIX ".info", "{}", -1);
	cr_assert_eq(rep.s, NATS_OK);
	json_t *settings = json_object_get(rep.json, "settings");
	cr_assert_eq(json_integer_value(json_object_get(settings, "snapshot_threshold")), 50,
		     "%s", rep.body);
	cr_assert_null(json_object_get(settings, "nats_password"), "no secret in info");
	cr_assert_null(json_object_get(settings, "nats_token"), "no secret in info");
	cr_assert_not_null(json_object_get(settings, "nats_user"));
	h_reply_free(&rep);
}
