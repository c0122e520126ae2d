/*
 * test_carverify.c: the offline CAR check (proto/carverify.h): files made
 * here block by block (events, seals, key blocks, then one change each)
 * and the @ipld/car vectors, each failure checked by its reason and the
 * words of its message (what and where).
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carverify.h"
#include "dagcbor.h"
#include "event.h"
#include "seal.h"
#include "vectors.h"

#define MAXB 64

struct blk {
	cim_cid cid;
	cbuf bytes;
};

/* A CAR file in the making: its roots and blocks, in order. */
struct fx {
	cim_cid roots[8];
	size_t nroots;
	struct blk b[MAXB];
	size_t n;
	cim_signing_key key, other;
	uint64_t mh;
};

static struct fx F;

static void
fx_init(void)
{
	uint8_t seed[32];

	memset(&F, 0, sizeof(F));
	F.mh = CIM_MH_BLAKE2B_256;
	memset(seed, 0x11, sizeof(seed));
	cr_assert_eq(cim_signing_key_from_seed(&F.key, seed), 0);
	memset(seed, 0x22, sizeof(seed));
	cr_assert_eq(cim_signing_key_from_seed(&F.other, seed), 0);
}

static void
fx_fini(void)
{
	for (size_t i = 0; i < F.n; i++)
		cbuf_free(&F.b[i].bytes);
}

TestSuite(carverify, .init = fx_init, .fini = fx_fini);

/* Adds a block of the bytes in b (taken over); its index. */
static size_t
add(cbuf *b)
{
	cr_assert_lt(F.n, MAXB);
	F.b[F.n].bytes = *b;
	cr_assert_eq(cim_cid_compute(&F.b[F.n].cid, CIM_CODEC_DAG_CBOR, F.mh,
				     b->p, b->len), 0);
	return F.n++;
}

/* An event; prev is a block index or -1 (null). */
static size_t
ev_typed(const char *type, const char *id, uint64_t version, long prev,
	 const char *event_type)
{
	char data[64];
	cim_event_block e = {
		.aggregate_type = (char *)type,
		.aggregate_id = (char *)id,
		.version = version,
		.event_type = (char *)event_type,
		.event_id = "e",
		.correlation_id = "c",
		.causation_id = "c",
		.timestamp = "2026-11-23T10:00:00.000000000Z",
	};
	cbuf b = CBUF_INIT;
	char err[200];

	snprintf(data, sizeof(data), "{\"n\":%llu}", (unsigned long long)version);
	e.metadata = json_object();
	e.data = json_loads(data, 0, NULL);
	if (prev >= 0) {
		e.has_prev = true;
		e.prev = F.b[prev].cid;
	}
	cr_assert_eq(cim_event_encode(&e, &b, err, sizeof(err)), 0, "%s", err);
	json_decref(e.metadata);
	json_decref(e.data);
	return add(&b);
}

static size_t
ev(const char *type, const char *id, uint64_t version, long prev)
{
	return ev_typed(type, id, version, prev, "Happened");
}

/* A chain of n events of type/id; the index of version 1. */
static size_t
chain(const char *type, const char *id, uint64_t n)
{
	size_t first = F.n;
	long prev = -1;

	for (uint64_t v = 1; v <= n; v++)
		prev = (long)ev(type, id, v, prev);
	return first;
}

static size_t
seal_of(const cim_signing_key *k, size_t target)
{
	cim_seal_block sb;
	cbuf b = CBUF_INIT;

	sb.cid = F.b[target].cid;
	memcpy(sb.pk, k->pk, 32);
	cr_assert_eq(cim_seal_sign(k, &sb.cid, sb.sig), 0);
	cr_assert_eq(cim_seal_block_encode(&sb, &b), 0);
	return add(&b);
}

static size_t
key_block(const char *type, const char *id)
{
	uint8_t nonce[24] = {1}, wrapped[48] = {2};
	cbuf b = CBUF_INIT;

	cim_cbor_write_map_head(&b, 4);
	cim_cbor_write_text(&b, "nonce", 5);
	cim_cbor_write_bytes(&b, nonce, 24);
	cim_cbor_write_text(&b, "wrapped", 7);
	cim_cbor_write_bytes(&b, wrapped, 48);
	cim_cbor_write_text(&b, "aggregate_id", 12);
	cim_cbor_write_text(&b, id, strlen(id));
	cim_cbor_write_text(&b, "aggregate_type", 14);
	cim_cbor_write_text(&b, type, strlen(type));
	return add(&b);
}

static void
root(size_t i)
{
	F.roots[F.nroots++] = F.b[i].cid;
}

static int
cbuf_sink(void *ctx, const uint8_t *p, size_t n)
{
	return cbuf_put(ctx, p, n);
}

/* The file: every block but skip (-1: none). */
static void
build(cbuf *out, long skip)
{
	cim_car_writer w;

	cr_assert_eq(cim_car_writer_begin_roots(&w, cbuf_sink, out, F.roots,
						F.nroots), 0, "%s", w.err);
	for (size_t i = 0; i < F.n; i++)
		if ((long)i != skip)
			cr_assert_eq(cim_car_write_block(&w, &F.b[i].cid,
							 F.b[i].bytes.p,
							 F.b[i].bytes.len), 0);
}

static void
collect(void *ctx, const char *reason, const char *msg)
{
	cbuf *log = ctx;

	cbuf_puts(log, reason);
	cbuf_puts(log, ": ");
	cbuf_puts(log, msg);
	cbuf_putc(log, '\n');
	cbuf_terminate(log);
}

struct result {
	int rc;
	cim_car_summary s;
	char log[8192];
};

static struct result
verify_bytes(const uint8_t *p, size_t len, const cim_signing_key *trust)
{
	struct result res;
	cbuf log = CBUF_INIT;
	cim_car_verify_opts o = {.on_failure = collect, .ctx = &log};
	cim_car_mem m = {p, len, 0};
	uint8_t keys[1][CIM_KEY_BYTES];

	if (trust != NULL) {
		memcpy(keys[0], trust->pk, CIM_KEY_BYTES);
		o.keys = (const uint8_t(*)[CIM_KEY_BYTES])keys;
		o.nkeys = 1;
	}
	res.rc = cim_car_verify(cim_car_mem_source, &m, &o, &res.s);
	snprintf(res.log, sizeof(res.log), "%s", log.p ? (char *)log.p : "");
	cbuf_free(&log);
	return res;
}

static struct result
verify(long skip, const cim_signing_key *trust)
{
	cbuf out = CBUF_INIT;
	struct result res;

	build(&out, skip);
	res = verify_bytes(out.p, out.len, trust);
	cbuf_free(&out);
	return res;
}

static void
cid_text(size_t i, char *out)
{
	cim_cid_to_text(&F.b[i].cid, out);
}

/* One failure, of reason, whose message holds each of the NULL-ended
 * words. */
static void
expect_one(const struct result *r, const char *reason, ...)
{
	char want[64];
	va_list ap;

	cr_assert_eq(r->rc, 1, "passed; log: %s", r->log);
	cr_assert_eq(r->s.failures, 1, "failures: %s", r->log);
	cr_assert_str_eq(r->s.first_reason, reason, "%s", r->log);
	snprintf(want, sizeof(want), "%s: ", reason);
	cr_assert_eq(strncmp(r->log, want, strlen(want)), 0, "%s", r->log);
	va_start(ap, reason);
	for (const char *w = va_arg(ap, const char *); w != NULL;
	     w = va_arg(ap, const char *))
		cr_assert_not_null(strstr(r->s.first, w), "want '%s' in: %s", w,
				   r->s.first);
	va_end(ap);
}

/* Two aggregates, sealed, one encrypted with a key block, one forgotten. */
static void
sample(void)
{
	size_t o = chain("order", "o-1", 3), u;

	seal_of(&F.key, o + 1);
	seal_of(&F.key, o + 2);
	root(o + 2);
	key_block("account", "acc-7");
	o = chain("account", "acc-7", 2);
	seal_of(&F.key, o + 1);
	root(o + 1);
	u = ev("user", "u-9", 1, -1);
	u = ev_typed("user", "u-9", 2, (long)u, CIM_FORGOTTEN_TYPE);
	seal_of(&F.key, u);
	root(u);
}

Test(carverify, a_good_file_holds)
{
	struct result r;

	sample();
	r = verify(-1, NULL);
	cr_assert_eq(r.rc, 0, "%s", r.log);
	cr_assert_eq(r.s.failures, 0);
	cr_assert_eq(r.s.aggregates, 3);
	cr_assert_eq(r.s.events, 7);
	cr_assert_eq(r.s.seals, 4);
	cr_assert_eq(r.s.key_blocks, 1);
	cr_assert_eq(r.s.blocks, 12);
	cr_assert_eq(r.s.roots, 3);
	cr_assert_eq(r.s.roots_sealed, 0);
	cr_assert_gt(r.s.index_bytes, 0);
	r = verify(-1, &F.key);
	cr_assert_eq(r.rc, 0, "%s", r.log);
	cr_assert_eq(r.s.roots_sealed, 3);
}

Test(carverify, ipld_car_vectors_hold_and_need_their_key)
{
	json_t *root = t_load_vectors("car/car.json", "cars"), *c;
	size_t i;

	json_array_foreach(json_object_get(root, "cars"), i, c) {
		const char *file = json_string_value(json_object_get(c, "file"));
		json_t *counts = json_object_get(c, "counts");
		char path[4096];
		const char *dir = getenv("CIM_TEST_VECTORS");
		cim_car_verify_opts o = {0};
		uint8_t keys[1][32];
		cim_car_summary s;
		FILE *f;

		snprintf(path, sizeof(path), "%s/car/%s", dir ? dir : "tests/vectors", file);
		f = fopen(path, "rb");
		cr_assert_not_null(f, "%s", path);
		cr_assert_eq(cim_car_verify(cim_car_stdio_source, f, NULL, &s), 0,
			     "%s: %s", file, s.first);
		cr_assert_eq(s.aggregates, (uint64_t)json_integer_value(json_object_get(counts, "aggregates")));
		cr_assert_eq(s.events, (uint64_t)json_integer_value(json_object_get(counts, "events")));
		cr_assert_eq(s.seals, (uint64_t)json_integer_value(json_object_get(counts, "seals")));
		cr_assert_eq(s.key_blocks, (uint64_t)json_integer_value(json_object_get(counts, "key_blocks")));
		cr_assert_eq(s.blocks, (uint64_t)json_integer_value(json_object_get(counts, "blocks")));
		o.keys = (const uint8_t(*)[32])keys;
		o.nkeys = 1;
		cr_assert_eq(cim_pubkey_from_text(keys[0], json_string_value(
			json_object_get(c, "trusted_key"))), 0);
		rewind(f);
		cr_assert_eq(cim_car_verify(cim_car_stdio_source, f, &o, &s), 0,
			     "%s: %s", file, s.first);
		cr_assert_eq(s.roots_sealed, s.aggregates);
		cr_assert_eq(cim_pubkey_from_text(keys[0], json_string_value(
			json_object_get(c, "other_key"))), 0);
		rewind(f);
		cr_assert_eq(cim_car_verify(cim_car_stdio_source, f, &o, &s), 1);
		cr_assert_str_eq(s.first_reason, "unsealed");
		cr_assert_eq(s.failures, s.aggregates);
		fclose(f);
	}
	json_decref(root);
}

Test(carverify, a_changed_byte)
{
	char ct[CIM_CID_TEXT_MAX];
	struct result r;
	size_t o = chain("order", "o-1", 3);

	root(o + 2);
	F.b[o + 1].bytes.p[F.b[o + 1].bytes.len - 5] ^= 0x01;
	cid_text(o + 1, ct);
	r = verify(-1, NULL);
	expect_one(&r, "hash_mismatch", "block ", ct, " at byte ",
		   "do not hash to its CID", NULL);
}

Test(carverify, a_changed_byte_in_the_ipld_car_file)
{
	json_t *root = t_load_vectors("car/car.json", "cars");
	const char *dir = getenv("CIM_TEST_VECTORS");
	char path[4096], at[64];
	uint8_t buf[8192];
	size_t len;
	struct result r;
	FILE *f;

	snprintf(path, sizeof(path), "%s/car/events.car", dir ? dir : "tests/vectors");
	f = fopen(path, "rb");
	cr_assert_not_null(f);
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* the last byte of the last block (a seal's signature) */
	buf[len - 1] ^= 0x80;
	r = verify_bytes(buf, len, NULL);
	expect_one(&r, "hash_mismatch", json_string_value(json_object_get(
		json_array_get(json_object_get(json_array_get(json_object_get(
			root, "cars"), 0), "blocks"), 12), "cid")), NULL);
	/* in a CID: the block is then another one, and the real one missing */
	buf[len - 1] ^= 0x80;
	buf[len - 150] ^= 0x01;
	r = verify_bytes(buf, len, NULL);
	cr_assert_eq(r.rc, 1);
	cr_assert_geq(r.s.failures, 1, "%s", r.log);
	snprintf(at, sizeof(at), "at byte ");
	cr_assert_not_null(strstr(r.log, at), "%s", r.log);
	json_decref(root);
}

Test(carverify, a_missing_block)
{
	char ct[CIM_CID_TEXT_MAX], gone[CIM_CID_TEXT_MAX];
	struct result r;
	size_t o = chain("order", "o-1", 3);

	root(o + 2);
	cid_text(o + 2, ct);
	cid_text(o + 1, gone);
	r = verify((long)(o + 1), NULL);
	expect_one(&r, "missing", "aggregate order/o-1: version 3 (block ", ct,
		   gone, "which is not in the file", NULL);
}

Test(carverify, a_missing_root)
{
	char ct[CIM_CID_TEXT_MAX];
	struct result r;
	size_t o = chain("order", "o-1", 2);

	root(o + 1);
	cid_text(o + 1, ct);
	r = verify((long)(o + 1), NULL);
	cr_assert_eq(r.rc, 1);
	cr_assert_eq(r.s.failures, 2, "%s", r.log);
	cr_assert_str_eq(r.s.first_reason, "missing");
	cr_assert_not_null(strstr(r.s.first, ct), "%s", r.log);
	cr_assert_not_null(strstr(r.log, "unreached: aggregate order/o-1: 1 event "
				  "block is on no root's chain (the lowest: version 1"),
			   "%s", r.log);
}

Test(carverify, a_broken_link)
{
	char ct[CIM_CID_TEXT_MAX];
	struct result r;
	size_t a = ev("order", "o-1", 1, -1), s = seal_of(&F.key, a), b;

	b = ev("order", "o-1", 2, (long)s); /* prev: the seal block */
	root(b);
	cid_text(b, ct);
	r = verify(-1, NULL);
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.s.first_reason, "broken_link", "%s", r.log);
	cr_assert_not_null(strstr(r.s.first, "aggregate order/o-1: version 2"), "%s", r.s.first);
	cr_assert_not_null(strstr(r.s.first, "a seal block at byte"), "%s", r.s.first);
	cr_assert_not_null(strstr(r.s.first, ct), "%s", r.s.first);
}

Test(carverify, a_link_into_another_aggregate)
{
	struct result r;
	size_t a = ev("order", "o-1", 1, -1), b = ev("order", "o-2", 2, (long)a);

	(void)a;
	root(b);
	r = verify(-1, NULL);
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.s.first_reason, "broken_link", "%s", r.log);
	cr_assert_not_null(strstr(r.s.first, "aggregate order/o-2: version 2"), "%s", r.s.first);
	cr_assert_not_null(strstr(r.s.first, "an event of aggregate order/o-1"), "%s", r.s.first);
	/* and o-1's event is on no root's chain */
	cr_assert_not_null(strstr(r.log, "unreached: aggregate order/o-1"), "%s", r.log);
}

Test(carverify, a_version_gap)
{
	char ct[CIM_CID_TEXT_MAX];
	struct result r;
	size_t a = ev("order", "o-1", 1, -1), c = ev("order", "o-1", 3, (long)a);

	root(c);
	cid_text(a, ct);
	r = verify(-1, NULL);
	expect_one(&r, "version_gap", "aggregate order/o-1: version 3", ct,
		   "which is version 1", NULL);
}

Test(carverify, a_bad_seal)
{
	char ct[CIM_CID_TEXT_MAX];
	struct result r;
	size_t o = chain("order", "o-1", 2), s = seal_of(&F.key, o + 1);

	root(o + 1);
	/* the signature's last byte changed, the block hashed again */
	F.b[s].bytes.p[F.b[s].bytes.len - 1] ^= 0x01;
	cim_cid_compute(&F.b[s].cid, CIM_CODEC_DAG_CBOR, F.mh, F.b[s].bytes.p,
			F.b[s].bytes.len);
	cid_text(s, ct);
	r = verify(-1, NULL);
	expect_one(&r, "bad_seal", "seal block ", ct, "does not verify under key ",
		   F.key.text, NULL);
	r = verify(-1, &F.key);
	cr_assert_eq(r.s.failures, 2, "%s", r.log);
	cr_assert_not_null(strstr(r.log, "unsealed: aggregate order/o-1"), "%s", r.log);
}

Test(carverify, a_seal_copied_onto_another_event)
{
	char ct[CIM_CID_TEXT_MAX];
	cim_seal_block sb;
	cbuf b = CBUF_INIT;
	struct result r;
	size_t o = chain("order", "o-1", 3), s;

	root(o + 2);
	/* v2's signature in a seal block naming v3 */
	sb.cid = F.b[o + 1].cid;
	memcpy(sb.pk, F.key.pk, 32);
	cr_assert_eq(cim_seal_sign(&F.key, &sb.cid, sb.sig), 0);
	sb.cid = F.b[o + 2].cid;
	cr_assert_eq(cim_seal_block_encode(&sb, &b), 0);
	s = add(&b);
	cid_text(s, ct);
	r = verify(-1, NULL);
	expect_one(&r, "bad_seal", ct, NULL);
}

Test(carverify, a_root_sealed_only_below_its_head)
{
	char ct[CIM_CID_TEXT_MAX];
	struct result r;
	size_t o = chain("order", "o-1", 3);

	seal_of(&F.key, o + 1); /* v2 sealed, v3 appended without a seal */
	root(o + 2);
	r = verify(-1, NULL);
	cr_assert_eq(r.rc, 0, "%s", r.log);
	cid_text(o + 2, ct);
	r = verify(-1, &F.key);
	expect_one(&r, "unsealed", "aggregate order/o-1: root ", ct,
		   "(version 3, at byte", "through version 2", "versions 3 to 3",
		   NULL);
	cr_assert_eq(r.s.roots_sealed, 0);
}

Test(carverify, a_root_sealed_by_an_untrusted_key)
{
	struct result r;
	size_t o = chain("order", "o-1", 2);

	seal_of(&F.other, o + 1);
	root(o + 1);
	cr_assert_eq(verify(-1, &F.other).rc, 0);
	r = verify(-1, &F.key);
	expect_one(&r, "unsealed", "no trusted seal", "versions 1 to 2", NULL);
}

Test(carverify, a_truncated_file)
{
	cbuf out = CBUF_INIT;
	struct result r;

	sample();
	build(&out, -1);
	r = verify_bytes(out.p, out.len - 10, NULL);
	expect_one(&r, "bad_car", "CAR file at byte", "ends inside the section",
		   "nothing after it was read", NULL);
	r = verify_bytes(out.p, 5, NULL);
	expect_one(&r, "bad_car", "ends inside the CAR header", NULL);
	cbuf_free(&out);
}

Test(carverify, a_bad_header)
{
	static const uint8_t v2[] = {0x0a, 0xa1, 0x67, 'v', 'e', 'r', 's', 'i',
				     'o', 'n', 0x02};
	struct result r = verify_bytes(v2, sizeof(v2), NULL);

	expect_one(&r, "bad_car", "at byte 1", "CAR version 2", NULL);
	r = verify_bytes((const uint8_t *)"", 0, NULL);
	expect_one(&r, "bad_car", "empty", NULL);
}

Test(carverify, a_block_twice_and_a_root_listed_twice)
{
	struct result r;
	size_t o = ev("order", "o-1", 1, -1);
	cbuf again = CBUF_INIT;

	root(o);
	root(o);
	cbuf_put(&again, F.b[o].bytes.p, F.b[o].bytes.len);
	add(&again);
	r = verify(-1, NULL);
	cr_assert_eq(r.rc, 1);
	cr_assert_eq(r.s.failures, 2, "%s", r.log);
	cr_assert_not_null(strstr(r.log, "duplicate: root "), "%s", r.log);
	cr_assert_not_null(strstr(r.log, "listed twice in the header"), "%s", r.log);
	cr_assert_not_null(strstr(r.log, "is in the file twice (first at byte "), "%s", r.log);
}

Test(carverify, two_roots_for_one_aggregate)
{
	struct result r;
	size_t o = chain("order", "o-1", 3);

	root(o + 2);
	root(o + 1);
	r = verify(-1, NULL);
	expect_one(&r, "duplicate", "aggregate order/o-1 has two roots", NULL);
}

Test(carverify, blocks_of_other_kinds)
{
	char ct[CIM_CID_TEXT_MAX];
	struct result r;
	cbuf b = CBUF_INIT;
	size_t o = ev("order", "o-1", 1, -1), x;

	root(o);
	cim_cbor_write_map_head(&b, 2);
	cim_cbor_write_text(&b, "a", 1);
	cim_cbor_write_uint(&b, 1);
	cim_cbor_write_text(&b, "b", 1);
	cim_cbor_write_uint(&b, 2);
	x = add(&b);
	cid_text(x, ct);
	r = verify(-1, NULL);
	expect_one(&r, "undecodable", ct, "is not an event, seal or key block",
		   "2 keys, not 11", NULL);

	/* a raw block (codec 0x55) */
	fx_fini();
	F.n = 0;
	F.nroots = 0;
	o = ev("order", "o-1", 1, -1);
	root(o);
	b = (cbuf)CBUF_INIT;
	cbuf_put(&b, "raw", 3);
	x = add(&b);
	cim_cid_compute(&F.b[x].cid, 0x55, CIM_MH_SHA2_256, b.p, b.len);
	r = verify(-1, NULL);
	expect_one(&r, "undecodable", "codec 0x55, not dag-cbor", NULL);

	/* a 4-key map that is not a key block; a 3-key one not a seal */
	fx_fini();
	F.n = 0;
	F.nroots = 0;
	root(ev("order", "o-1", 1, -1));
	b = (cbuf)CBUF_INIT;
	cim_cbor_write_map_head(&b, 4);
	cim_cbor_write_text(&b, "nonce", 5);
	cim_cbor_write_bytes(&b, (const uint8_t *)"short", 5);
	add(&b);
	b = (cbuf)CBUF_INIT;
	cim_cbor_write_map_head(&b, 3);
	cim_cbor_write_text(&b, "cid", 3);
	cim_cbor_write_uint(&b, 1);
	add(&b);
	r = verify(-1, NULL);
	cr_assert_eq(r.s.failures, 2, "%s", r.log);
	cr_assert_not_null(strstr(r.log, "not a valid key block"), "%s", r.log);
	cr_assert_not_null(strstr(r.log, "undecodable seal block"), "%s", r.log);
}

Test(carverify, an_event_with_a_bad_token)
{
	struct result r;

	root(ev("order", "o 1", 1, -1));
	r = verify(-1, NULL);
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.s.first_reason, "undecodable");
	cr_assert_not_null(strstr(r.s.first, "not a valid token"), "%s", r.log);
}

Test(carverify, seals_of_what_is_not_there_or_not_an_event)
{
	struct result r;
	size_t o = ev("order", "o-1", 1, -1), k = key_block("order", "o-1");
	size_t s;

	root(o);
	seal_of(&F.key, k);
	s = seal_of(&F.key, o);
	(void)s;
	r = verify(-1, NULL);
	expect_one(&r, "broken_link", "seals", "a key block, not an event", NULL);
	/* the sealed event left out: its seal names a missing block */
	fx_fini();
	F.n = 0;
	F.nroots = 0;
	o = chain("order", "o-1", 2);
	seal_of(&F.key, o);
	root(o + 1);
	r = verify((long)o, NULL);
	cr_assert_eq(r.rc, 1);
	cr_assert_not_null(strstr(r.log, "missing: seal block "), "%s", r.log);
	cr_assert_not_null(strstr(r.log, "which is not in the file"), "%s", r.log);
}

Test(carverify, key_blocks_need_a_root_and_no_forgotten_head)
{
	struct result r;
	size_t u;

	root(ev("order", "o-1", 1, -1));
	key_block("account", "acc-1");
	r = verify(-1, NULL);
	expect_one(&r, "missing", "key block", "aggregate account/acc-1",
		   "has no root in the file", NULL);

	fx_fini();
	F.n = 0;
	F.nroots = 0;
	key_block("user", "u-9");
	u = ev("user", "u-9", 1, -1);
	root(ev_typed("user", "u-9", 2, (long)u, CIM_FORGOTTEN_TYPE));
	r = verify(-1, NULL);
	expect_one(&r, "forgotten", "aggregate user/u-9, which was forgotten",
		   NULL);

	fx_fini();
	F.n = 0;
	F.nroots = 0;
	key_block("user", "u-9");
	key_block("user", "u-9");
	F.b[1].bytes.p[F.b[1].bytes.len - 40] ^= 1; /* another nonce */
	cim_cid_compute(&F.b[1].cid, CIM_CODEC_DAG_CBOR, F.mh, F.b[1].bytes.p,
			F.b[1].bytes.len);
	root(ev("user", "u-9", 1, -1));
	r = verify(-1, NULL);
	expect_one(&r, "duplicate", "aggregate user/u-9 already has key block",
		   NULL);
}

Test(carverify, sha256_stores_verify_too)
{
	struct result r;
	size_t o;

	F.mh = CIM_MH_SHA2_256;
	o = chain("ledger", "l-2", 4);
	seal_of(&F.key, o + 3);
	root(o + 3);
	r = verify(-1, &F.key);
	cr_assert_eq(r.rc, 0, "%s", r.log);
	cr_assert_eq(r.s.events, 4);
}

/* Memory: the index per block stays within what carverify.h says. The
 * count comes from CIM_TEST_CAR_EVENTS (default 50000). */
Test(carverify, index_memory_per_event, .timeout = 600)
{
	const char *env = getenv("CIM_TEST_CAR_EVENTS");
	uint64_t n = env ? strtoull(env, NULL, 10) : 50000;
	cim_event_block e = {
		.aggregate_type = "order", .aggregate_id = "o-1",
		.event_type = "Happened", .event_id = "e",
		.correlation_id = "c", .causation_id = "c",
		.timestamp = "2026-11-23T10:00:00.000000000Z",
	};
	cbuf out = CBUF_INIT, blk = CBUF_INIT;
	cim_car_writer w;
	cim_cid cid;
	char err[200];
	struct result r;

	e.metadata = json_object();
	e.data = json_object();
	/* one root: the head, whose CID is known only at the end, so the
	 * sections are laid out first and the header put before them */
	for (uint64_t v = 1; v <= n; v++) {
		e.version = v;
		e.has_prev = v > 1;
		if (v > 1)
			e.prev = cid;
		cbuf_reset(&blk);
		cr_assert_eq(cim_event_encode(&e, &blk, err, sizeof(err)), 0);
		cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256,
				blk.p, blk.len);
		{
			uint8_t vb[CIM_VARINT_MAX];
			size_t k = cim_varint_put(vb, (uint64_t)cid.len + blk.len);

			cbuf_put(&out, vb, k);
			cbuf_put(&out, cid.b, cid.len);
			cbuf_put(&out, blk.p, blk.len);
		}
	}
	{
		cbuf file = CBUF_INIT;

		cr_assert_eq(cim_car_writer_begin_roots(&w, cbuf_sink, &file, &cid, 1), 0);
		cbuf_put(&file, out.p, out.len);
		r = verify_bytes(file.p, file.len, NULL);
		cbuf_free(&file);
	}
	cr_assert_eq(r.rc, 0, "%s", r.log);
	cr_assert_eq(r.s.events, n);
	cr_log_info("index: %zu bytes for %llu events: %.1f bytes an event",
		    r.s.index_bytes, (unsigned long long)n,
		    (double)r.s.index_bytes / (double)n);
	/* 32 + 38 in use; arrays and the table at most double that */
	cr_assert_leq(r.s.index_bytes, 160 * n + 65536, "%zu", r.s.index_bytes);
	json_decref(e.metadata);
	json_decref(e.data);
	cbuf_free(&out);
	cbuf_free(&blk);
}
