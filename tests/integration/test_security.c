/*
 * test_security.c: the daemon against nats-server configured for real
 * deployments: TLS with client certificates (made here with openssl),
 * users with passwords, a token, an NKey user, and per-aggregate
 * permissions where a client may append to one aggregate type only.
 * Credentials files (JWT) need an operator set-up (nsc) and are not
 * tested here; --check-config checks that the file is readable.
 * cim-events goes through each of these servers too, with the same
 * settings as the daemon (flags, a file, the environment), and is refused
 * with a clear message where it should be.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "nkey.h"

TestSuite(security, .fini = h_teardown, .timeout = 90);

static const char APPEND_BODY[] = "{\"events\":[{\"event_type\":\"Placed\",\"data\":{\"n\":1}}]}";

/* Options for H.nats.url, logged in with user and password (NULLs: none). */
static natsOptions *opts_user(const char *user, const char *password)
{
	natsOptions *o = NULL;

	cr_assert_eq(natsOptions_Create(&o), NATS_OK);
	cr_assert_eq(natsOptions_SetURL(o, H.nats.url), NATS_OK);
	cr_assert_eq(natsOptions_SetTimeout(o, 2000), NATS_OK);
	if (user)
		cr_assert_eq(natsOptions_SetUserInfo(o, user, password), NATS_OK);
	return o;
}

static natsConnection *connect_with(natsOptions *o)
{
	natsConnection *nc = NULL;
	natsStatus s = natsConnection_Connect(&nc, o);

	cr_assert_eq(s, NATS_OK, "connect: %s (%s)", natsStatus_GetText(s),
		     nats_GetLastError(NULL));
	return nc;
}

/* Sends an append of one event to type/id through nc; the status of the
 * request (NATS_OK when answered) and the reply's Cim-Status in *code. */
static natsStatus append_via(natsConnection *nc, const char *type, const char *id, int *code)
{
	char subj[200];
	natsMsg *m = NULL;
	const char *st = NULL;

	snprintf(subj, sizeof subj, H_PREFIX ".append.%s.%s", type, id);
	natsStatus s = natsConnection_RequestString(&m, nc, subj, APPEND_BODY, 2000);
	*code = -1;
	if (s == NATS_OK && natsMsgHeader_Get(m, "Cim-Status", &st) == NATS_OK)
		*code = atoi(st);
	natsMsg_Destroy(m);
	return s;
}

/* Messages of the stream, read through nc. */
static uint64_t stream_msgs(natsConnection *nc)
{
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	uint64_t n;

	cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
	cr_assert_eq(js_GetStreamInfo(&si, js, H_STREAM, NULL, NULL), NATS_OK);
	n = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	return n;
}

/* Runs the daemon until it exits by itself (it cannot connect) and
 * returns its exit status; its log is in H.nats.dir/daemon.log. */
static int daemon_fails(const char *const *args)
{
	const char *argv[40] = {getenv("CIM_TEST_DAEMON"), "--nats-url", H.nats.url};
	size_t n = 3;

	for (; *args && n + 1 < 40; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	h_run r = h_finish(h_spawn("failing-daemon", argv), "failing-daemon", 30000);
	int st = r.status;
	FILE *f = fopen(h_strf("%s/daemon.log", H.nats.dir), "a");
	if (f) {
		fputs(r.err, f);
		fclose(f);
	}
	h_run_free(&r);
	return st;
}

/* Runs cim-events --nats-url H.nats.url --timeout 2000 [args...] and
 * waits for it. */
static h_run cli(const char *const *args)
{
	const char *argv[40] = {getenv("CIM_TEST_CLI"), "--nats-url", H.nats.url,
				"--timeout", "2000"};
	size_t n = 5;

	for (; *args && n + 1 < 40; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return h_finish(h_spawn("cli", argv), "cli", 30000);
}

/* cim-events with opts appends an event to order/<id> and reads it back
 * (get, and verify-all, which reads the stream itself); every secret in
 * secrets stays out of what it prints. */
static void cli_appends_and_reads(const char *const *opts, const char *id,
				  const char *const *secrets)
{
	const char *args[40];
	size_t n = 0;
	h_run r;

	for (; opts[n] && n < 30; n++)
		args[n] = opts[n];
	const char *append[] = {"append", "order", id, "--event", "Placed", "{\"n\": 1}", NULL};
	for (size_t i = 0; append[i]; i++)
		args[n + i] = append[i];
	args[n + 6] = NULL;
	r = cli(args);
	cr_assert_eq(r.status, 0, "cim-events append: exit %d: %s", r.status, r.err);
	cr_assert_not_null(r.json, "%s", r.out);
	h_run_free(&r);
	const char *get[] = {"get", "order", id, NULL};
	for (size_t i = 0; i < 4; i++)
		args[n + i] = get[i];
	r = cli(args);
	cr_assert_eq(r.status, 0, "cim-events get: exit %d: %s", r.status, r.err);
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 1, "%s", r.out);
	h_run_free(&r);
	const char *verify[] = {"verify-all", "order.*", "--json", NULL};
	for (size_t i = 0; i < 4; i++)
		args[n + i] = verify[i];
	r = cli(args);
	cr_assert_eq(r.status, 0, "cim-events verify-all: exit %d: %s", r.status, r.err);
	h_run_free(&r);
	const char *check[] = {"--check-config", NULL};
	args[n] = check[0];
	args[n + 1] = NULL;
	r = cli(args);
	cr_assert_eq(r.status, 0, "%s", r.err);
	for (size_t i = 0; secrets != NULL && secrets[i]; i++)
		cr_assert(strstr(r.out, secrets[i]) == NULL && strstr(r.err, secrets[i]) == NULL,
			  "a secret is shown: %s", r.out);
	h_run_free(&r);
}

/* cim-events with opts is refused: exit status 4 and a message holding
 * says on stderr, nothing on stdout. */
static void cli_refused(const char *const *opts, const char *says)
{
	const char *args[40];
	size_t n = 0;

	for (; opts[n] && n < 30; n++)
		args[n] = opts[n];
	const char *append[] = {"append", "order", "refused", "--event", "Placed", "{}", NULL};
	for (size_t i = 0; i < 7; i++)
		args[n + i] = append[i];
	h_run r = cli(args);
	cr_assert_eq(r.status, 4, "exit %d: %s", r.status, r.err);
	cr_assert(strstr(r.err, says) != NULL, "stderr says \"%s\": %s", says, r.err);
	cr_assert_eq(r.out[0], '\0', "%s", r.out);
	h_run_free(&r);
}

static bool log_has(const char *text)
{
	char *path = h_strf("%s/daemon.log", H.nats.dir);
	char *log = h_slurp(path);
	bool has = strstr(log, text) != NULL;

	free(log);
	free(path);
	return has;
}

/* ---- users and passwords, tokens ------------------------------------------------ */

Test(security, user_and_password)
{
	h_setup_nats_conf("authorization {\n"
			  "  users = [\n"
			  "    { user: cim, password: \"pw-daemon-1\" }\n"
			  "    { user: app, password: \"pw-app-1\" }\n"
			  "  ]\n"
			  "}\n");
	natsOptions *probe = opts_user("app", "pw-app-1");
	const char *args[] = {"--nats-user", "cim", "--nats-password", "pw-daemon-1", NULL};
	int code;

	H.daemon = h_daemon_start_args(&H.nats, probe, args);
	cr_assert_gt(H.daemon, 0, "the daemon logs in with user and password");
	natsConnection *nc = connect_with(probe);
	cr_assert_eq(append_via(nc, "order", "o-1", &code), NATS_OK);
	cr_assert_eq(code, 200);
	cr_assert_eq(stream_msgs(nc), 1);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(probe);

	/* no log-in at all is refused by the server */
	natsConnection *anon = NULL;
	cr_assert_neq(natsConnection_ConnectTo(&anon, H.nats.url), NATS_OK);
}

Test(security, a_wrong_password_is_refused_and_the_daemon_says_why)
{
	h_setup_nats_conf("authorization {\n"
			  "  users = [ { user: cim, password: \"pw-daemon-1\" } ]\n"
			  "}\n");
	const char *args[] = {"--nats-user", "cim", "--nats-password", "wrong",
			      "--connect-timeout", "1", NULL};

	cr_assert_eq(daemon_fails(args), 1);
	cr_assert(log_has("Authorization Violation"), "the log names the reason");
	cr_assert(!log_has("wrong"), "the password is not logged");
}

Test(security, token)
{
	h_setup_nats_conf("authorization { token: \"tok-7f3a9\" }\n");
	natsOptions *probe = opts_user(NULL, NULL);
	cr_assert_eq(natsOptions_SetToken(probe, "tok-7f3a9"), NATS_OK);
	char *conf = h_strf("%s/cim.conf", H.nats.dir);
	FILE *f = fopen(conf, "w");
	cr_assert_not_null(f);
	fputs("[nats]\ntoken = tok-7f3a9\n", f);
	fclose(f);
	const char *args[] = {"--config", conf, NULL};
	int code;

	H.daemon = h_daemon_start_args(&H.nats, probe, args);
	cr_assert_gt(H.daemon, 0, "the daemon logs in with the token of its file");
	natsConnection *nc = connect_with(probe);
	cr_assert_eq(append_via(nc, "order", "o-1", &code), NATS_OK);
	cr_assert_eq(code, 200);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(probe);
	cr_assert(!log_has("tok-7f3a9"), "the token is not logged");

	/* cim-events reads the daemon's own file, passing over its other
	 * settings */
	FILE *g = fopen(conf, "a");
	cr_assert_not_null(g);
	fputs("[daemon]\nworkers = 2\n", g);
	fclose(g);
	const char *with_file[] = {"--config", conf, NULL};
	const char *secrets[] = {"tok-7f3a9", NULL};
	cli_appends_and_reads(with_file, "cli-token", secrets);
	const char *wrong[] = {"--nats-token", "not-the-token", NULL};
	cli_refused(wrong, "Authorization Violation");
	free(conf);

	const char *bad[] = {"--nats-token", "not-the-token", "--connect-timeout", "1", NULL};
	cr_assert_eq(daemon_fails(bad), 1);
}

/* ---- NKeys ------------------------------------------------------------------------ */

Test(security, nkey_seed_file)
{
	unsigned char raw[32];
	char seed[NKEY_SEED_LEN + 1], pub[NKEY_PUBLIC_LEN + 1];
	char other_seed[NKEY_SEED_LEN + 1], other_pub[NKEY_PUBLIC_LEN + 1];

	randombytes_buf(raw, sizeof raw);
	cr_assert_eq(nkey_user_from_raw(raw, seed, pub), 0);
	randombytes_buf(raw, sizeof raw);
	cr_assert_eq(nkey_user_from_raw(raw, other_seed, other_pub), 0);
	char *conf = h_strf("authorization {\n  users = [\n    { nkey: %s }\n    { user: admin, "
			    "password: adm }\n  ]\n}\n", pub);
	h_setup_nats_conf(conf);
	free(conf);

	/* a seed file as nsc writes it: the seed among other lines */
	char *path = h_strf("%s/user.nk", H.nats.dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", seed);
	fclose(f);
	natsOptions *probe = opts_user("admin", "adm");
	const char *args[] = {"--nats-nkey-seed", path, NULL};
	int code;

	H.daemon = h_daemon_start_args(&H.nats, probe, args);
	cr_assert_gt(H.daemon, 0, "the daemon logs in with its NKey");
	natsConnection *nc = connect_with(probe);
	cr_assert_eq(append_via(nc, "order", "o-1", &code), NATS_OK);
	cr_assert_eq(code, 200);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(probe);

	/* a seed the server does not know */
	char *other = h_strf("%s/other.nk", H.nats.dir);
	f = fopen(other, "w");
	cr_assert_not_null(f);
	fprintf(f, "%s\n", other_seed);
	fclose(f);
	const char *bad[] = {"--nats-nkey-seed", other, "--connect-timeout", "1", NULL};
	cr_assert_eq(daemon_fails(bad), 1);
	cr_assert(!log_has(other_seed), "the seed is not logged");

	/* cim-events with the seed from the environment, and with one the
	 * server does not know */
	const char *none[] = {NULL};
	const char *secrets[] = {seed, NULL};
	setenv("CIM_EVENTS_NATS_NKEY_SEED", path, 1);
	cli_appends_and_reads(none, "cli-nkey", secrets);
	setenv("CIM_EVENTS_NATS_NKEY_SEED", other, 1);
	cli_refused(none, "Authorization Violation");
	unsetenv("CIM_EVENTS_NATS_NKEY_SEED");
	free(other);
	free(path);
}

/* ---- TLS -------------------------------------------------------------------------- */

/* A CA, a server certificate for 127.0.0.1, a client certificate and
 * another CA, all valid for a day, made with openssl in a new directory
 * (returned; the caller removes it). */
static char *make_certs(void)
{
	char *dir = strdup("/tmp/cim-itest-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char *script = h_strf(
		"set -e; cd '%s'\n"
		"O=/usr/bin/openssl\n"
		"K='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
		"$O req -x509 $K -keyout ca.key -out ca.pem -days 1 -subj /CN=cim-test-ca\n"
		"$O req $K -keyout server.key -out server.csr -subj /CN=127.0.0.1\n"
		"printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
		"$O x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
		"-extfile server.ext -out server.pem\n"
		"$O req $K -keyout client.key -out client.csr -subj /CN=cim-eventsd\n"
		"printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
		"$O x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
		"-extfile client.ext -out client.pem\n"
		"$O req -x509 $K -keyout other-ca.key -out other-ca.pem -days 1 -subj /CN=another-ca\n"
		") > '%s/openssl.log' 2>&1 || { cat '%s/openssl.log' >&2; exit 1; }\n",
		dir, dir, dir);
	/* the whole script in a subshell, its output kept for a failure */
	char *wrapped = h_strf("(%s", script);
	char *cmd = h_strf("/bin/sh -c \"$CIM_TEST_SCRIPT\"");
	setenv("CIM_TEST_SCRIPT", wrapped, 1);
	int st = system(cmd);
	unsetenv("CIM_TEST_SCRIPT");
	cr_assert_eq(st, 0, "openssl could not make the certificates (%s/openssl.log)", dir);
	free(cmd);
	free(wrapped);
	free(script);
	return dir;
}

static void remove_dir(const char *dir)
{
	char *cmd = h_strf("rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
}

Test(security, tls_with_client_certificates)
{
	char *keep = make_certs();
	char *conf = h_strf("tls {\n  cert_file: \"%s/server.pem\"\n  key_file: \"%s/server.key\"\n"
			    "  ca_file: \"%s/ca.pem\"\n  verify: true\n  timeout: 5\n}\n",
			    keep, keep, keep);
	h_setup_nats_conf(conf);
	free(conf);
	char *ca = h_strf("%s/ca.pem", keep), *cert = h_strf("%s/client.pem", keep),
	     *key = h_strf("%s/client.key", keep), *other = h_strf("%s/other-ca.pem", keep);

	natsOptions *probe = opts_user(NULL, NULL);
	cr_assert_eq(natsOptions_SetSecure(probe, true), NATS_OK);
	cr_assert_eq(natsOptions_LoadCATrustedCertificates(probe, ca), NATS_OK);
	cr_assert_eq(natsOptions_LoadCertificatesChain(probe, cert, key), NATS_OK);
	const char *args[] = {"--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, NULL};
	int code;

	H.daemon = h_daemon_start_args(&H.nats, probe, args);
	cr_assert_gt(H.daemon, 0, "the daemon connects with TLS and its client certificate");
	cr_assert(log_has(", TLS)"), "the daemon logs that the connection is TLS");
	natsConnection *nc = connect_with(probe);
	cr_assert_eq(append_via(nc, "order", "o-1", &code), NATS_OK);
	cr_assert_eq(code, 200);
	cr_assert_eq(stream_msgs(nc), 1);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(probe);

	/* a client that does not speak TLS is refused */
	natsConnection *plain = NULL;
	cr_assert_neq(natsConnection_ConnectTo(&plain, H.nats.url), NATS_OK);

	/* cim-events with the client certificate, by flags */
	const char *tls[] = {"--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, NULL};
	cli_appends_and_reads(tls, "cli-tls", NULL);
	/* without a certificate, without TLS, trusting another CA */
	const char *no_cert_cli[] = {"--tls-ca", ca, NULL};
	cli_refused(no_cert_cli, "cannot connect to NATS at nats://127.0.0.1:");
	const char *plain_cli[] = {NULL};
	cli_refused(plain_cli, "cannot connect to NATS at nats://127.0.0.1:");
	const char *other_ca_cli[] = {"--tls-ca", other, "--tls-cert", cert, "--tls-key", key,
				      NULL};
	cli_refused(other_ca_cli, "cannot connect to NATS");
	/* a missing file is a usage error, before any connection */
	const char *missing_cli[] = {"--tls-ca", "/nonexistent/ca.pem", "head", "order", "o-1",
				     NULL};
	h_run r = cli(missing_cli);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "tls_ca: cannot read /nonexistent/ca.pem") != NULL, "%s", r.err);
	h_run_free(&r);

	/* trusting another CA: the server's certificate is refused */
	const char *bad_ca[] = {"--tls-ca", other, "--tls-cert", cert, "--tls-key", key,
				"--connect-timeout", "1", NULL};
	cr_assert_eq(daemon_fails(bad_ca), 1);
	cr_assert(log_has("cannot connect to"), "the log says it cannot connect");
	/* no client certificate: the server (verify: true) refuses */
	const char *no_cert[] = {"--tls-ca", ca, "--connect-timeout", "1", NULL};
	cr_assert_eq(daemon_fails(no_cert), 1);
	/* a missing file is a configuration error, before any connection */
	const char *missing[] = {"--tls-ca", "/nonexistent/ca.pem", NULL};
	cr_assert_eq(daemon_fails(missing), 2);
	cr_assert(log_has("tls_ca: cannot read /nonexistent/ca.pem"));

	remove_dir(keep);
	free(ca); free(cert); free(key); free(other); free(keep);
}

/* ---- per-aggregate permissions ------------------------------------------------------ */

/* The configuration of docs/operations.md ("Per-aggregate permissions"):
 * the daemon's user may do what the daemon needs and no more; the orders
 * service may append to order aggregates only. */
#define PERMISSIONS_CONF                                                              \
	"authorization {\n"                                                           \
	"  users = [\n"                                                               \
	"    { user: cim-eventsd, password: \"pw-d\", permissions: {\n"               \
	"        publish: [\"$JS.API.>\", \"$JS.FC.>\", \"$JS.ACK.>\", \"events.>\",\n"  \
	"                  \"$KV.CIM-HEADS.>\", \"$KV.CIM-SNAPSHOTS.>\",\n"           \
	"                  \"$KV.CIM-CHECKPOINTS.>\", \"$KV.CIM-LEASE.>\",\n"        \
	"                  \"$KV.CIM-KEYS.>\", \"_INBOX.>\"]\n"                       \
	"        subscribe: [\"cim.events.v1.>\", \"$SRV.>\", \"_INBOX.>\"] } }\n"     \
	"    { user: orders, password: \"pw-o\", permissions: {\n"                    \
	"        publish: [\"cim.events.v1.append.order.>\", \"cim.events.v1.get.order.>\"]\n" \
	"        subscribe: [\"_INBOX.>\"] } }\n"                                     \
	"    { user: admin, password: \"pw-a\" }\n"                                   \
	"  ]\n"                                                                       \
	"}\n"

Test(security, a_client_may_append_to_the_aggregate_types_it_is_allowed)
{
	h_setup_nats_conf(PERMISSIONS_CONF);
	natsOptions *admin = opts_user("admin", "pw-a");
	const char *args[] = {"--nats-user", "cim-eventsd", "--nats-password", "pw-d", NULL};
	int code;

	H.daemon = h_daemon_start_args(&H.nats, admin, args);
	cr_assert_gt(H.daemon, 0, "the daemon runs with only the permissions it needs");
	natsConnection *adm = connect_with(admin);

	natsOptions *o = opts_user("orders", "pw-o");
	natsConnection *orders = connect_with(o);
	cr_assert_eq(append_via(orders, "order", "o-1", &code), NATS_OK);
	cr_assert_eq(code, 200, "an append to an order is served");
	cr_assert_eq(append_via(orders, "order", "o-1", &code), NATS_OK);
	cr_assert_eq(code, 200);

	/* the server drops the request to payment: no reply comes */
	natsStatus s = append_via(orders, "payment", "p-1", &code);
	cr_assert_neq(s, NATS_OK, "an append to a payment is refused by the server");
	cr_assert_eq(stream_msgs(adm), 2, "nothing of the payment was stored");

	/* the daemon answers others as before: the admin may append anywhere */
	cr_assert_eq(append_via(adm, "payment", "p-1", &code), NATS_OK);
	cr_assert_eq(code, 200);
	cr_assert_eq(stream_msgs(adm), 3);
	natsConnection_Destroy(orders);

	/* cim-events as the orders service, logged in from the environment:
	 * an append to an order and a get go through; an append to a payment
	 * and a head are refused by the server, and it says so */
	setenv("CIM_EVENTS_NATS_USER", "orders", 1);
	setenv("CIM_EVENTS_NATS_PASSWORD", "pw-o", 1);
	const char *as_orders[] = {"append", "order", "o-cli", "--event", "Placed", "{}", NULL};
	h_run r = cli(as_orders);
	cr_assert_eq(r.status, 0, "%s", r.err);
	h_run_free(&r);
	const char *get_order[] = {"get", "order", "o-cli", NULL};
	r = cli(get_order);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 1);
	h_run_free(&r);
	const char *to_payment[] = {"append", "payment", "p-cli", "--event", "Paid", "{}", NULL};
	r = cli(to_payment);
	cr_assert_eq(r.status, 4, "%s", r.err);
	cr_assert(strstr(r.err, "not_permitted") != NULL &&
		  strstr(r.err, "cim.events.v1.append.payment.p-cli") != NULL,
		  "the refusal names the subject: %s", r.err);
	h_run_free(&r);
	const char *head_order[] = {"head", "order", "o-cli", NULL};
	r = cli(head_order);
	cr_assert_eq(r.status, 4, "%s", r.err);
	cr_assert(strstr(r.err, "Permissions Violation") != NULL, "%s", r.err);
	h_run_free(&r);
	const char *check[] = {"--check-config", NULL};
	r = cli(check);
	cr_assert(strstr(r.out, "nats_password = ***") != NULL && strstr(r.out, "pw-o") == NULL,
		  "%s", r.out);
	h_run_free(&r);
	unsetenv("CIM_EVENTS_NATS_USER");
	unsetenv("CIM_EVENTS_NATS_PASSWORD");
	cr_assert_eq(stream_msgs(adm), 4, "the CLI stored its order and no payment");

	natsConnection_Destroy(adm);
	natsOptions_Destroy(o);
	natsOptions_Destroy(admin);
	cr_assert_eq(h_daemon_stop(H.daemon), 0, "it stops cleanly (the lease given back)");
	H.daemon = -1;
	cr_assert(!log_has("Permissions Violation") && !log_has("NATS asynchronous error"),
		  "the daemon was never refused anything it needs");
}
