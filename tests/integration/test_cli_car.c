/*
 * test_cli_car.c: the offline commands of the cim-events tool
 * ($CIM_TEST_CLI): keygen and verify-car, run as processes with no NATS
 * server anywhere (--url points at a closed port, to show nothing is
 * dialled). The CAR files are the @ipld/car vectors
 * ($CIM_TEST_VECTORS/car) and files made here with a key keygen wrote.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../support/harness.h"
#include "car.h"
#include "event.h"
#include "keys.h"
#include "seal.h"

#define CLOSED_URL "nats://127.0.0.1:1"

/* No server: the harness only lends its directory for the runs' output. */
static void
dir_setup(void)
{
	memset(&H, 0, sizeof(H));
	H.daemon = -1;
	snprintf(H.nats.dir, sizeof(H.nats.dir), "/tmp/cim-cli-car-XXXXXX");
	cr_assert_not_null(mkdtemp(H.nats.dir));
}

static void
dir_teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H.nats.dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(cli_car, .init = dir_setup, .fini = dir_teardown, .timeout = 60);

static h_run
cli(const char *first, ...)
{
	const char *argv[24];
	int argc = 0;
	va_list ap;

	argv[argc++] = getenv("CIM_TEST_CLI");
	argv[argc++] = "--url";
	argv[argc++] = CLOSED_URL;
	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 23;
	     a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return h_finish(h_spawn("cli", argv), "cli", 20000);
}

#define CLI(...) cli(__VA_ARGS__, (const char *)NULL)

static void
vector(const char *name, char *out, size_t n)
{
	const char *dir = getenv("CIM_TEST_VECTORS");

	cr_assert_not_null(dir, "CIM_TEST_VECTORS not set");
	snprintf(out, n, "%s/car/%s", dir, name);
}

static void
in_dir(const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", H.nats.dir, name);
}

Test(cli_car, keygen_writes_a_new_key_and_prints_its_text)
{
	char path[300], text[64];
	struct stat st;
	cim_signing_key *k;
	char err[256], *content;
	h_run r;

	in_dir("store.key", path, sizeof(path));
	r = CLI("keygen", path);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_eq(strlen(r.out), 49, "%s", r.out);
	cr_assert_eq(strncmp(r.out, "z6Mk", 4), 0, "%s", r.out);
	cr_assert_eq(r.out[48], '\n');
	snprintf(text, sizeof(text), "%.48s", r.out);
	h_run_free(&r);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	content = h_slurp(path);
	cr_assert_eq(strlen(content), 65);
	cr_assert_eq(strspn(content, "0123456789abcdef"), 64);
	/* the key file loads as the daemon will load it, to the same key */
	k = cim_signing_key_load(path, err, sizeof(err));
	cr_assert_not_null(k, "%s", err);
	cr_assert_str_eq(k->text, text);
	cim_signing_key_free(k);

	/* never over an existing file */
	r = CLI("keygen", path);
	cr_assert_eq(r.status, 1);
	cr_assert_not_null(strstr(r.err, "already exists"), "%s", r.err);
	cr_assert_str_eq(r.out, "");
	h_run_free(&r);
	{
		char *again = h_slurp(path);

		cr_assert_str_eq(again, content);
		free(again);
	}
	free(content);

	r = CLI("keygen", "/nonexistent-dir/x.key");
	cr_assert_eq(r.status, 1);
	cr_assert_not_null(strstr(r.err, "/nonexistent-dir/x.key"), "%s", r.err);
	h_run_free(&r);
	r = CLI("keygen");
	cr_assert_eq(r.status, 2, "%s", r.err);
	h_run_free(&r);
	r = CLI("keygen", "a", "b");
	cr_assert_eq(r.status, 2, "%s", r.err);
	h_run_free(&r);
	r = CLI("keygen", "--help");
	cr_assert_eq(r.status, 0);
	cr_assert_not_null(strstr(r.out, "0600"), "%s", r.out);
	h_run_free(&r);
}

Test(cli_car, verify_car_reads_the_ipld_car_vectors)
{
	char path[4096];
	json_t *vec;
	const char *trusted, *other;
	h_run r;

	vector("car.json", path, sizeof(path));
	vec = json_load_file(path, 0, NULL);
	cr_assert_not_null(vec);
	trusted = json_string_value(json_object_get(json_array_get(
		json_object_get(vec, "cars"), 0), "trusted_key"));
	other = json_string_value(json_object_get(json_array_get(
		json_object_get(vec, "cars"), 0), "other_key"));
	vector("events.car", path, sizeof(path));

	r = CLI("verify-car", path);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, ": valid: 3 aggregates, 7 events, 5 "
				  "seals, 1 key block (13 blocks, 4088 bytes)"),
			   "%s", r.out);
	h_run_free(&r);

	r = CLI("verify-car", path, "--key", trusted);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "3 of 3 roots sealed by a trusted key"),
			   "%s", r.out);
	h_run_free(&r);

	r = CLI("verify-car", "--json", "--key", other, "--key", trusted, path);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_not_null(r.json, "%s", r.out);
	cr_assert(json_is_true(json_object_get(r.json, "valid")));
	cr_assert_eq(json_integer_value(json_object_get(r.json, "events")), 7);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "key_blocks")), 1);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "roots_sealed")), 3);
	h_run_free(&r);

	/* sealed, but not by the key given */
	r = CLI("verify-car", path, "--key", other);
	cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "unsealed: aggregate order/o-1: root "),
			   "%s", r.out);
	cr_assert_not_null(strstr(r.out, "NOT valid"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "0 of 3 roots sealed"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "3 failures"), "%s", r.out);
	h_run_free(&r);
	json_decref(vec);
}

/* Copies the vector events.car with byte at changed (or the length cut
 * to cut, when not 0) into dir/name. */
static void
altered_copy(const char *name, long changed, size_t cut, char *out, size_t n)
{
	char src[4096];
	uint8_t buf[8192];
	size_t len;
	FILE *f;

	vector("events.car", src, sizeof(src));
	f = fopen(src, "rb");
	cr_assert_not_null(f);
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (changed >= 0)
		buf[changed] ^= 0x01;
	if (cut > 0)
		len = cut;
	in_dir(name, out, n);
	f = fopen(out, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	fclose(f);
}

Test(cli_car, verify_car_says_what_fails_and_where)
{
	char path[300];
	h_run r;

	altered_copy("changed.car", 4000, 0, path, sizeof(path));
	r = CLI("verify-car", path);
	cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "hash_mismatch: block bafy"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "at byte 3876: its bytes do not hash"),
			   "%s", r.out);
	h_run_free(&r);

	altered_copy("cut.car", -1, 3000, path, sizeof(path));
	r = CLI("verify-car", "--json", path);
	cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
	cr_assert_not_null(r.json, "%s", r.out);
	cr_assert(json_is_false(json_object_get(r.json, "valid")));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(
		json_object_get(r.json, "failures"), 0), "reason")), "bad_car");
	cr_assert_not_null(strstr(json_string_value(json_object_get(json_array_get(
		json_object_get(r.json, "failures"), 0), "message")),
		"the file ends inside the section"), "%s", r.out);
	h_run_free(&r);

	altered_copy("header.car", 3, 0, path, sizeof(path));
	r = CLI("verify-car", path);
	cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "bad_car: CAR file at byte"), "%s", r.out);
	h_run_free(&r);

	r = CLI("verify-car", "/nonexistent.car");
	cr_assert_eq(r.status, 1);
	cr_assert_not_null(strstr(r.err, "cannot open /nonexistent.car"), "%s", r.err);
	h_run_free(&r);
	r = CLI("verify-car");
	cr_assert_eq(r.status, 2);
	h_run_free(&r);
	r = CLI("verify-car", path, "--key", "did:key:z6Mk");
	cr_assert_eq(r.status, 2);
	cr_assert_not_null(strstr(r.err, "--key needs an Ed25519 public key text"),
			   "%s", r.err);
	h_run_free(&r);
	r = CLI("verify-car", path, "--bogus");
	cr_assert_eq(r.status, 2);
	h_run_free(&r);
}

static int
file_sink(void *ctx, const uint8_t *p, size_t n)
{
	return cim_car_stdio_sink(ctx, p, n);
}

Test(cli_car, a_key_from_keygen_seals_a_file_verify_car_trusts)
{
	char key_path[300], car_path[300], err[256], text[64];
	cim_event_block e = {
		.aggregate_type = "order", .aggregate_id = "o-1", .version = 1,
		.event_type = "OrderPlaced", .event_id = "e-1",
		.correlation_id = "e-1", .causation_id = "e-1",
		.timestamp = "2026-11-23T10:00:00.000000000Z",
	};
	cbuf ev = CBUF_INIT, seal = CBUF_INIT;
	cim_seal_block sb;
	cim_car_writer w;
	cim_signing_key *k;
	cim_cid cid, scid;
	FILE *f;
	h_run r;

	in_dir("k.key", key_path, sizeof(key_path));
	r = CLI("keygen", key_path);
	cr_assert_eq(r.status, 0, "%s", r.err);
	snprintf(text, sizeof(text), "%.48s", r.out);
	h_run_free(&r);
	k = cim_signing_key_load(key_path, err, sizeof(err));
	cr_assert_not_null(k, "%s", err);

	e.metadata = json_object();
	e.data = json_pack("{si}", "total", 42);
	cr_assert_eq(cim_event_encode(&e, &ev, err, sizeof(err)), 0, "%s", err);
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, ev.p, ev.len);
	sb.cid = cid;
	memcpy(sb.pk, k->pk, 32);
	cr_assert_eq(cim_seal_sign(k, &cid, sb.sig), 0);
	cr_assert_eq(cim_seal_block_encode(&sb, &seal), 0);
	cim_cid_compute(&scid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, seal.p,
			seal.len);
	in_dir("one.car", car_path, sizeof(car_path));
	f = fopen(car_path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(cim_car_writer_begin_roots(&w, file_sink, f, &cid, 1), 0);
	cr_assert_eq(cim_car_write_block(&w, &cid, ev.p, ev.len), 0);
	cr_assert_eq(cim_car_write_block(&w, &scid, seal.p, seal.len), 0);
	fclose(f);

	r = CLI("verify-car", car_path, "--key", text);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_not_null(strstr(r.out, "1 of 1 roots sealed"), "%s", r.out);
	h_run_free(&r);
	cim_signing_key_free(k);
	json_decref(e.metadata);
	json_decref(e.data);
	cbuf_free(&ev);
	cbuf_free(&seal);
}
