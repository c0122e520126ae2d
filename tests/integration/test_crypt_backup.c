/*
 * test_crypt_backup.c: encrypted and forgotten aggregates through export
 * --car and import (issue 15), with the built tool: the CAR file holds the
 * ciphertext and the key block only (no plaintext, no data key, no master
 * key), a forgotten aggregate as forgotten (its CimForgotten head and no
 * key block); verify-car passes; imported into an empty store with the
 * same master key every CID and head is the same and the data reads back
 * decrypted, the forgotten one forgotten; a store with another master key,
 * or none, refuses the key block and stores nothing of that aggregate.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../support/harness.h"
#include "../support/hcrypt.h"
#include "crypt.h"
#include "keyblock.h"
#include "keys.h"

#define SECRET "Rty-EXPORT-ME-1618"

static h_store B = H_STORE_INIT;

static void fini(void)
{
	h_store_stop(&B);
	h_teardown();
}

TestSuite(crypt_backup, .init = h_setup_nats_only, .fini = fini, .timeout = 180);

#define CLI H_CLI_AT

/* Store B, with the master key given (NULL: none). */
static void start_b(const char *key)
{
	const char *args[] = {"--master-key", key, "--encrypt-types", "customer", NULL};

	h_store_start(&B, key ? args : args + 4);
}

static char *get_of(cim_client *c, const char *type, const char *id)
{
	char *reply = NULL;
	cim_error err = {0};

	cr_assert_eq(cim_request(c, "get", type, id, "{}", &reply, &err), CIM_ERR_OK, "%s",
		     err.message);
	return reply;
}

/* Whether the n bytes at needle are in the file at path. */
static bool file_holds(const char *path, const void *needle, size_t n)
{
	FILE *f = fopen(path, "rb");
	struct stat st;

	cr_assert_not_null(f, "%s", path);
	stat(path, &st);
	char *b = malloc((size_t)st.st_size + 1);
	size_t len = fread(b, 1, (size_t)st.st_size, f);
	fclose(f);
	bool found = len >= n && memmem(b, len, needle, n) != NULL;
	free(b);
	return found;
}

static const char *const aggs[][2] = {
	{"customer", "c-1"}, {"customer", "c-2"}, {"order", "o-1"}};

Test(crypt_backup, encrypted_and_forgotten_aggregates_round_trip)
{
	char *key = hc_master_key("master.key"), *other = hc_master_key("other.key");
	h_reply r;

	hc_daemon(key, "customer", NULL);
	H.client = h_client_new(0);
	for (int i = 0; i < 3; i++) {
		cim_append_result_destroy(h_append1("customer", "c-1", i, "Changed",
						    "{\"who\": \"" SECRET "\"}"));
		cim_append_result_destroy(h_append1("customer", "c-2", i, "Changed",
						    "{\"who\": \"" SECRET "\"}"));
	}
	cim_append_result_destroy(h_append1("order", "o-1", 0, "Placed", "{\"n\": 1}"));
	hc_request(&r, "forget", "customer", "c-2", "{}");
	cr_assert_eq(r.status, 200, "%s", r.body);
	h_reply_free(&r);

	char *car = h_strf("%s/store.car", H.nats.dir);
	h_run run = CLI(H.nats.url, "export", "--car", car);
	cr_assert_eq(run.status, 0, "export: %s", run.err);
	cr_assert_not_null(strstr(run.err, "exported 3 aggregates, 8 events, 0 seals, 1 key "
					   "block"), "%s", run.err);
	h_run_free(&run);
	run = CLI(H.nats.url, "verify-car", car, "--json");
	cr_assert_eq(run.status, 0, "verify-car: %s %s", run.out, run.err);
	cr_assert_eq(json_integer_value(json_object_get(run.json, "key_blocks")), 1);
	cr_assert_eq(json_integer_value(json_object_get(run.json, "events")), 8);
	h_run_free(&run);

	/* no plaintext in it, nor a clear key: neither the master key nor
	 * c-1's data key (unwrapped here from the bucket's key block) */
	cr_assert_not(file_holds(car, SECRET, strlen(SECRET)));
	cim_key *mk = cim_key_alloc(2);
	char err[300];
	cr_assert_eq(cim_keyfile_read(key, mk[0].b, err, sizeof err), 0, "%s", err);
	cr_assert_not(file_holds(car, mk[0].b, CIM_KEY_BYTES));
	natsMsg *kb = NULL;
	cr_assert_eq(js_GetLastMsg(&kb, H.js, "KV_CIM-KEYS", "$KV.CIM-KEYS.customer.c-1", NULL,
				   NULL), NATS_OK);
	cim_wrapped_key w;
	cr_assert_eq(cim_keyblock_decode(&w, (const uint8_t *)natsMsg_GetData(kb),
					 (size_t)natsMsg_GetDataLength(kb), err, sizeof err), 0);
	cr_assert_eq(cim_key_unwrap(&mk[1], &mk[0], &w, err, sizeof err), 0, "%s", err);
	cr_assert_not(file_holds(car, mk[1].b, CIM_KEY_BYTES));
	cr_assert(file_holds(car, natsMsg_GetData(kb), natsMsg_GetDataLength(kb)),
		  "the key block is in the file as stored");
	natsMsg_Destroy(kb);
	cim_key_free(mk, 2);

	/* a store with another master key: c-1's key block is refused and
	 * nothing of c-1 is stored; the forgotten and the plain ones go in */
	start_b(other);
	run = CLI(B.nats.url, "import", car);
	cr_assert_neq(run.status, 0, "%s", run.err);
	cr_assert_not_null(strstr(run.err, "does not unwrap under this store's master_key"),
			   "%s", run.err);
	h_run_free(&run);
	cim_head h;
	cim_error cerr = {0};
	cr_assert_eq(cim_get_head(B.client, "customer", "c-1", &h, &cerr), CIM_ERR_OK);
	cr_assert_eq(h.version, 0, "nothing of c-1 was stored");
	h_store_stop(&B);

	/* a store without a master key refuses it too */
	start_b(NULL);
	run = CLI(B.nats.url, "import", car);
	cr_assert_neq(run.status, 0, "%s", run.err);
	cr_assert_not_null(strstr(run.err, "no master_key"), "%s", run.err);
	h_run_free(&run);
	h_store_stop(&B);

	/* the same master key: all of it, the same CIDs */
	start_b(key);
	run = CLI(B.nats.url, "import", car);
	cr_assert_eq(run.status, 0, "import: %s", run.err);
	cr_assert_not_null(strstr(run.err, "imported 3 aggregates: 8 events restored"), "%s",
			   run.err);
	h_run_free(&run);
	for (size_t i = 0; i < sizeof aggs / sizeof aggs[0]; i++) {
		cim_head ha, hb;
		cr_assert_eq(cim_get_head(H.client, aggs[i][0], aggs[i][1], &ha, &cerr), 0);
		cr_assert_eq(cim_get_head(B.client, aggs[i][0], aggs[i][1], &hb, &cerr), 0);
		cr_assert_eq(ha.version, hb.version, "%s/%s", aggs[i][0], aggs[i][1]);
		cr_assert_str_eq(ha.head, hb.head, "%s/%s", aggs[i][0], aggs[i][1]);
		char *ga = get_of(H.client, aggs[i][0], aggs[i][1]);
		char *gb = get_of(B.client, aggs[i][0], aggs[i][1]);
		/* the same events shown the same way (seq aside, same order) */
		json_t *ja = json_loads(ga, 0, NULL), *jb = json_loads(gb, 0, NULL), *e;
		size_t k;
		json_array_foreach(json_object_get(ja, "events"), k, e)
			json_object_del(e, "seq");
		json_array_foreach(json_object_get(jb, "events"), k, e)
			json_object_del(e, "seq");
		cr_assert(json_equal(ja, jb), "%s/%s:\n%s\n%s", aggs[i][0], aggs[i][1], ga, gb);
		json_decref(ja);
		json_decref(jb);
		cim_free(ga);
		cim_free(gb);
	}
	char *g1 = get_of(B.client, "customer", "c-1");
	cr_assert_not_null(strstr(g1, SECRET "\"},\"encrypted\":true"), "%s", g1);
	cim_free(g1);
	char *g2 = get_of(B.client, "customer", "c-2");
	cr_assert_null(strstr(g2, SECRET), "%s", g2);
	cr_assert_not_null(strstr(g2, "\"forgotten\":true"), "%s", g2);
	cim_free(g2);
	char *body = NULL;
	cr_assert_eq(cim_request(B.client, "append", "customer", "c-2",
				 "{\"events\":[{\"event_type\":\"X\",\"data\":{}}]}", &body, &cerr),
		     CIM_ERR_GONE, "%s", body);
	cim_free(body);
	/* importing again changes nothing (the key is there already) */
	run = CLI(B.nats.url, "import", car);
	cr_assert_eq(run.status, 0, "import again: %s", run.err);
	h_run_free(&run);
	/* the imported c-1 goes on with the same data key */
	cr_assert_eq(cim_request(B.client, "append", "customer", "c-1",
				 "{\"events\":[{\"event_type\":\"X\",\"data\":{\"more\":1}}]}",
				 &body, &cerr), CIM_ERR_OK, "%s", cerr.message);
	cim_free(body);
	g1 = get_of(B.client, "customer", "c-1");
	cr_assert_not_null(strstr(g1, "{\"more\":1},\"encrypted\":true"), "%s", g1);
	cim_free(g1);
	free(key);
	free(other);
	free(car);
}
