/*
 * test_backup.c: backup and restore through CAR files, with the built
 * tool: a store with several aggregates, sealed and unsealed (written
 * before and after the daemon had a signing key), exported with export
 * --car, checked offline with verify-car (and with --key), imported into
 * an empty store, and compared: every CID, every head, every validate
 * answer (with the key); a second import changes nothing; an export of
 * one aggregate and of a pattern; CAR files with one changed byte, a
 * missing block and a broken link fail verify-car, naming what and where.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/blocks.h"
#include "../support/harness.h"
#include "car.h"
#include "event.h"

#define SEED 0x5a

static cim_signing_key key;
static h_store B = H_STORE_INIT;

static void
fini(void)
{
	h_store_stop(&B);
	h_teardown();
}

TestSuite(backup, .init = h_setup_nats_only, .fini = fini, .timeout = 180);

#define CLI(url, ...) h_cli_at(url, __VA_ARGS__, (const char *)NULL)

static cim_append_result *
append(cim_client *c, const char *type, const char *id, int n, const char *evtype)
{
	cim_new_event ev[8];
	char data[8][32];
	cim_append_result *r = NULL;
	cim_error err = {0};

	for (int i = 0; i < n; i++) {
		snprintf(data[i], sizeof(data[i]), "{\"i\": %d}", i);
		ev[i] = (cim_new_event){.event_type = i % 2 ? "Moved" : evtype,
					.data_json = data[i]};
	}
	cr_assert_eq(cim_append(c, type, id, CIM_EXPECT_ANY, ev, (size_t)n, &r, &err),
		     CIM_ERR_OK, "%s", err.message);
	return r;
}

/* Store A: order/u-1 and order/u-2 written without a key (u-1 goes on
 * sealed later), then order/s-1 (batches) and acct/s-2 with it. */
static void
fill_store_a(void)
{
	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	H.client = h_client_new(0);
	cim_append_result_destroy(append(H.client, "order", "u-1", 3, "Placed"));
	cim_append_result_destroy(append(H.client, "order", "u-2", 1, "Placed"));
	cim_append_result_destroy(append(H.client, "order", "u-2", 2, "Placed"));
	h_daemon_stop(H.daemon);
	cim_client_destroy(H.client);

	char *path = tb_key_file(H.nats.dir, "signing.key", SEED);
	tb_key(&key, SEED);
	H.daemon = h_daemon_start(&H.nats, "--signing-key", path, NULL);
	cr_assert_gt(H.daemon, 0);
	H.client = h_client_new(0);
	cim_append_result_destroy(append(H.client, "order", "u-1", 1, "Shipped"));
	for (int i = 0; i < 5; i++)
		cim_append_result_destroy(append(H.client, "order", "s-1", 1 + i % 3, "Placed"));
	cim_append_result_destroy(append(H.client, "acct", "s-2", 4, "Opened"));
	free(path);
}

/* Every event of type/id as get shows it in one store, seq left out. */
static json_t *
events_of(cim_client *c, const char *type, const char *id)
{
	char *reply = NULL;
	cim_error err = {0};

	cr_assert_eq(cim_request(c, "get", type, id, "{\"limit\": 1000}", &reply, &err),
		     CIM_ERR_OK, "%s", err.message);
	json_t *j = json_loads(reply, 0, NULL), *e;
	size_t i;
	cim_free(reply);
	json_array_foreach(json_object_get(j, "events"), i, e)
		json_object_del(e, "seq");
	return j;
}

static json_t *
validate_keyed(cim_client *c, const char *type, const char *id)
{
	char *body = h_strf("{\"keys\": [\"%s\"]}", key.text), *reply = NULL;
	cim_error err = {0};

	cr_assert_eq(cim_request(c, "validate", type, id, body, &reply, &err), CIM_ERR_OK,
		     "%s", err.message);
	json_t *j = json_loads(reply, 0, NULL);
	cim_free(reply);
	free(body);
	return j;
}

static const char *const aggs[][2] = {
	{"order", "u-1"}, {"order", "u-2"}, {"order", "s-1"}, {"acct", "s-2"}};

Test(backup, export_verify_import_and_compare)
{
	fill_store_a();
	char *car = h_strf("%s/store.car", H.nats.dir);
	h_run r = CLI(H.nats.url, "export", "--car", car);
	cr_assert_eq(r.status, 0, "export: %s", r.err);
	cr_assert_not_null(strstr(r.err, "exported 4 aggregates"), "%s", r.err);
	h_run_free(&r);

	/* offline: the file holds; with the key, u-2's head is not sealed */
	r = CLI(H.nats.url, "verify-car", car, "--json");
	cr_assert_eq(r.status, 0, "verify-car: %s %s", r.out, r.err);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "aggregates")), 4);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "events")), 20);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "seals")), 1 + 5 + 1);
	h_run_free(&r);
	r = CLI(H.nats.url, "verify-car", car, "--key", key.text);
	cr_assert_eq(r.status, 1, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "unsealed"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, "order/u-2"), "%s", r.out);
	cr_assert_null(strstr(r.out, "order/u-1"), "u-1's head is sealed: %s", r.out);
	h_run_free(&r);

	/* into an empty store that does not sign */
	h_store_start(&B, NULL);
	r = CLI(B.nats.url, "import", car);
	cr_assert_eq(r.status, 0, "import: %s", r.err);
	cr_assert_not_null(strstr(r.err, "imported 4 aggregates: 20 events restored"), "%s",
			   r.err);
	h_run_free(&r);
	for (size_t i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++) {
		cim_head ha, hb;
		cim_error err = {0};
		cr_assert_eq(cim_get_head(H.client, aggs[i][0], aggs[i][1], &ha, &err), 0);
		cr_assert_eq(cim_get_head(B.client, aggs[i][0], aggs[i][1], &hb, &err), 0);
		cr_assert_eq(ha.version, hb.version, "%s/%s", aggs[i][0], aggs[i][1]);
		cr_assert_str_eq(ha.head, hb.head, "%s/%s", aggs[i][0], aggs[i][1]);
		json_t *ea = events_of(H.client, aggs[i][0], aggs[i][1]);
		json_t *eb = events_of(B.client, aggs[i][0], aggs[i][1]);
		cr_assert(json_equal(ea, eb), "%s/%s: events differ:\n%s\n%s", aggs[i][0],
			  aggs[i][1], json_dumps(ea, 0), json_dumps(eb, 0));
		json_t *va = validate_keyed(H.client, aggs[i][0], aggs[i][1]);
		json_t *vb = validate_keyed(B.client, aggs[i][0], aggs[i][1]);
		cr_assert(json_equal(va, vb), "%s/%s: validate differs:\n%s\n%s", aggs[i][0],
			  aggs[i][1], json_dumps(va, 0), json_dumps(vb, 0));
		json_decref(ea);
		json_decref(eb);
		json_decref(va);
		json_decref(vb);
	}

	/* a second import changes nothing */
	cim_progress_fn none = NULL;
	(void)none;
	r = CLI(B.nats.url, "import", car);
	cr_assert_eq(r.status, 0, "import again: %s", r.err);
	cr_assert_not_null(strstr(r.err, "0 events restored in 0 requests"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "20 events already stored"), "%s", r.err);
	h_run_free(&r);

	/* the import's own export is the same file, byte for byte */
	char *car2 = h_strf("%s/again.car", H.nats.dir);
	r = CLI(B.nats.url, "export", "--car", car2);
	cr_assert_eq(r.status, 0, "%s", r.err);
	h_run_free(&r);
	char *a = h_slurp(car), *b = h_slurp(car2);
	FILE *fa = fopen(car, "rb"), *fb = fopen(car2, "rb");
	fseek(fa, 0, SEEK_END);
	fseek(fb, 0, SEEK_END);
	long la = ftell(fa), lb = ftell(fb);
	fclose(fa);
	fclose(fb);
	cr_assert_eq(la, lb);
	cr_assert_eq(memcmp(a, b, (size_t)la), 0, "the two exports differ");
	free(a);
	free(b);
}

Test(backup, an_import_goes_on_where_the_store_is)
{
	fill_store_a();
	char *one = h_strf("%s/s-1.car", H.nats.dir), *all = h_strf("%s/all.car", H.nats.dir);
	h_run r = CLI(H.nats.url, "export", "--car", one, "order", "s-1");
	cr_assert_eq(r.status, 0, "%s", r.err);
	h_run_free(&r);
	r = CLI(H.nats.url, "export", "--car", all, "order.*");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "exported 3 aggregates"), "%s", r.err);
	h_run_free(&r);

	/* a store that signs with the same key, s-1 restored first alone */
	char *path = tb_key_file(H.nats.dir, "b.key", SEED);
	h_store_start(&B, (const char *const[]){"--signing-key", path, NULL});
	r = CLI(B.nats.url, "import", one);
	cr_assert_eq(r.status, 0, "%s", r.err);
	h_run_free(&r);
	r = CLI(B.nats.url, "import", all);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "imported 3 aggregates"), "%s", r.err);
	cr_assert_not_null(strstr(r.err, "already stored"), "%s", r.err);
	h_run_free(&r);
	json_t *v = validate_keyed(B.client, "order", "s-1");
	cr_assert(json_is_true(json_object_get(v, "valid")), "%s", json_dumps(v, 0));
	json_decref(v);
	/* a store whose aggregate differs from the file is not written over */
	cim_append_result_destroy(append(B.client, "acct", "s-2", 2, "Other"));
	char *acct = h_strf("%s/acct.car", H.nats.dir);
	r = CLI(H.nats.url, "export", "--car", acct, "acct");
	cr_assert_eq(r.status, 0, "%s", r.err);
	h_run_free(&r);
	r = CLI(B.nats.url, "import", acct);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "acct/s-2"), "%s", r.err);
	h_run_free(&r);
}

/* ---- CAR files changed after the export ---------------------------------------- */

struct car {
	cim_cid *roots;
	size_t nroots;
	struct {
		cim_cid cid;
		cbuf data;
		uint64_t offset;
	} b[128];
	size_t n;
};

static int
on_root(void *ctx, size_t i, const cim_cid *cid)
{
	struct car *c = ctx;
	c->roots = realloc(c->roots, (i + 1) * sizeof(*c->roots));
	c->roots[i] = *cid;
	c->nroots = i + 1;
	return 0;
}

static void
car_read(const char *path, struct car *c)
{
	FILE *f = fopen(path, "rb");
	cim_car_reader r;
	cim_car_block b;

	memset(c, 0, sizeof(*c));
	cr_assert_eq(cim_car_reader_open(&r, cim_car_stdio_source, f, on_root, c), 0);
	while (cim_car_reader_next(&r, &b) == 1) {
		cr_assert_lt(c->n, 128);
		c->b[c->n].cid = b.cid;
		cbuf_put(&c->b[c->n].data, b.data, b.len);
		c->b[c->n].offset = b.offset;
		c->n++;
	}
	cim_car_reader_close(&r);
	fclose(f);
}

static void
car_write(const char *path, const struct car *c)
{
	FILE *f = fopen(path, "wb");
	cim_car_writer w;

	cr_assert_eq(cim_car_writer_begin_roots(&w, cim_car_stdio_sink, f, c->roots, c->nroots), 0);
	for (size_t i = 0; i < c->n; i++)
		if (c->b[i].data.len > 0)
			cr_assert_eq(cim_car_write_block(&w, &c->b[i].cid, c->b[i].data.p,
							 c->b[i].data.len), 0);
	fclose(f);
}

/* The index of type/id's event at version. */
static size_t
find_event(const struct car *c, const char *id, uint64_t version)
{
	for (size_t i = 0; i < c->n; i++) {
		cim_event_view v;
		char err[100];
		if (cim_event_check(c->b[i].data.p, c->b[i].data.len, &v, err, sizeof(err)) == 0 &&
		    v.version == version && v.aggregate_id_len == strlen(id) &&
		    memcmp(v.aggregate_id, id, v.aggregate_id_len) == 0)
			return i;
	}
	cr_assert_fail("no %s version %llu in the file", id, (unsigned long long)version);
	return 0;
}

Test(backup, changed_files_fail_verify_car_naming_what_and_where)
{
	fill_store_a();
	char *car = h_strf("%s/store.car", H.nats.dir), *bad = h_strf("%s/bad.car", H.nats.dir);
	h_run r = CLI(H.nats.url, "export", "--car", car);
	cr_assert_eq(r.status, 0, "%s", r.err);
	h_run_free(&r);
	struct car c;
	char where[64];

	/* one changed byte in s-1's version 2 */
	car_read(car, &c);
	size_t i = find_event(&c, "s-1", 2);
	c.b[i].data.p[c.b[i].data.len - 3] ^= 0x01;
	car_write(bad, &c);
	r = CLI(H.nats.url, "verify-car", bad);
	cr_assert_eq(r.status, 1, "%s", r.out);
	snprintf(where, sizeof(where), "at byte %llu", (unsigned long long)c.b[i].offset);
	cr_assert_not_null(strstr(r.out, "hash_mismatch"), "%s", r.out);
	cr_assert_not_null(strstr(r.out, where), "want '%s' in %s", where, r.out);
	h_run_free(&r);
	/* the import refuses it too, before sending it */
	h_store_start(&B, NULL);
	r = CLI(B.nats.url, "import", bad);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_not_null(strstr(r.err, "does not hash to its CID"), "%s", r.err);
	h_run_free(&r);

	/* a missing block: u-1's version 2 */
	car_read(car, &c);
	i = find_event(&c, "u-1", 2);
	c.b[i].data.len = 0;
	car_write(bad, &c);
	r = CLI(H.nats.url, "verify-car", bad);
	cr_assert_eq(r.status, 1, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "missing: aggregate order/u-1: version 3"), "%s", r.out);
	h_run_free(&r);

	/* a broken link: acct/s-2's head (version 4) replaced by one linking
	 * into order/u-2, and made the root */
	car_read(car, &c);
	i = find_event(&c, "s-2", 4);
	size_t u2 = find_event(&c, "u-2", 1);
	tb_block forged;
	tb_make(&forged, "acct", "s-2", 4, "Moved", "{}", NULL, &c.b[u2].cid, 0);
	for (size_t k = 0; k < c.nroots; k++)
		if (cim_cid_equal(&c.roots[k], &c.b[i].cid))
			c.roots[k] = forged.cid;
	cbuf_reset(&c.b[i].data);
	cbuf_put(&c.b[i].data, forged.bytes.p, forged.bytes.len);
	c.b[i].cid = forged.cid;
	car_write(bad, &c);
	r = CLI(H.nats.url, "verify-car", bad);
	cr_assert_eq(r.status, 1, "%s", r.out);
	cr_assert_not_null(strstr(r.out, "broken_link: aggregate acct/s-2: version 4"), "%s",
			   r.out);
	cr_assert_not_null(strstr(r.out, "an event of aggregate order/u-2"), "%s", r.out);
	h_run_free(&r);
	tb_free(&forged, 1);
}
