/*
 * test_car.c: the CARv1 reader and writer against files made by @ipld/car
 * (tests/vectors/car/, car.json and the .car files): ours reads them block for block and
 * writes the same roots and blocks byte for byte; and the reader on
 * hostile input: every truncation, bad headers, bad varints, bad CIDs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "car.h"
#include "dagcbor.h"
#include "vectors.h"

static int
cbuf_sink(void *ctx, const uint8_t *p, size_t n)
{
	return cbuf_put(ctx, p, n);
}

/* tests/vectors/car/<name>, whole. */
static uint8_t *
car_file(const char *name, size_t *len)
{
	char path[4096];
	const char *dir = getenv("CIM_TEST_VECTORS");
	FILE *f;
	uint8_t *p;
	long n;

	snprintf(path, sizeof(path), "%s/car/%s",
		 dir != NULL && dir[0] != '\0' ? dir : "tests/vectors", name);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	p = malloc((size_t)n + 1);
	cr_assert_not_null(p);
	cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

struct roots {
	cim_cid r[16];
	size_t n;
};

static int
keep_root(void *ctx, size_t i, const cim_cid *cid)
{
	struct roots *rs = ctx;

	cr_assert_eq(i, rs->n);
	cr_assert_lt(rs->n, 16);
	rs->r[rs->n++] = *cid;
	return 0;
}

Test(car, reads_what_ipld_car_wrote)
{
	json_t *root = t_load_vectors("car/car.json", "cars"), *c;
	size_t i;

	json_array_foreach(json_object_get(root, "cars"), i, c) {
		const char *file = json_string_value(json_object_get(c, "file"));
		json_t *blocks = json_object_get(c, "blocks");
		json_t *want_roots = json_object_get(c, "roots");
		struct roots rs = {.n = 0};
		cim_car_mem m = {0};
		cim_car_reader r;
		cim_car_block b;
		uint64_t last = 0;
		size_t k = 0, len;
		int rc;

		m.p = car_file(file, &len);
		m.len = len;
		cr_assert_eq(cim_car_reader_open(&r, cim_car_mem_source, &m,
						 keep_root, &rs), 0, "%s", r.err);
		cr_assert_eq(rs.n, json_array_size(want_roots));
		for (size_t j = 0; j < rs.n; j++) {
			char t[CIM_CID_TEXT_MAX];

			cim_cid_to_text(&rs.r[j], t);
			cr_assert_str_eq(t, json_string_value(json_array_get(want_roots, j)));
		}
		while ((rc = cim_car_reader_next(&r, &b)) == 1) {
			json_t *want = json_array_get(blocks, k++);
			char t[CIM_CID_TEXT_MAX];
			size_t n;
			uint8_t *bytes;

			cr_assert_not_null(want, "%s: more blocks than @ipld/car wrote", file);
			cim_cid_to_text(&b.cid, t);
			cr_assert_str_eq(t, json_string_value(json_object_get(want, "cid")));
			bytes = t_unhex(json_string_value(json_object_get(want, "hex")), &n);
			cr_assert_eq(b.len, n);
			cr_assert_eq(memcmp(b.data, bytes, n), 0);
			cr_assert_gt(b.offset, last);
			cr_assert_gt(b.data_offset, b.offset + b.cid.len);
			cr_assert_eq(memcmp(m.p + b.data_offset, b.data, b.len), 0);
			last = b.offset;
			free(bytes);
		}
		cr_assert_eq(rc, 0, "%s: %s", file, r.err);
		cr_assert_eq(k, json_array_size(blocks));
		cr_assert_eq(r.offset, len);
		cim_car_reader_close(&r);
		free((void *)m.p);
	}
	json_decref(root);
}

Test(car, writes_what_ipld_car_wrote_byte_for_byte)
{
	json_t *root = t_load_vectors("car/car.json", "cars"), *c, *x;
	size_t i, j;

	json_array_foreach(json_object_get(root, "cars"), i, c) {
		const char *file = json_string_value(json_object_get(c, "file"));
		cim_cid roots[16];
		size_t nroots = 0, len;
		uint8_t *want = car_file(file, &len);
		cbuf out = CBUF_INIT;
		cim_car_writer w;

		json_array_foreach(json_object_get(c, "roots"), j, x)
			cr_assert_eq(cim_cid_from_text(&roots[nroots++],
						       json_string_value(x)), 0);
		cr_assert_eq(cim_car_writer_begin_roots(&w, cbuf_sink, &out, roots,
							nroots), 0, "%s", w.err);
		json_array_foreach(json_object_get(c, "blocks"), j, x) {
			size_t n;
			uint8_t *bytes = t_unhex(json_string_value(
				json_object_get(x, "hex")), &n);
			cim_cid cid;

			cr_assert_eq(cim_cid_from_text(&cid, json_string_value(
				json_object_get(x, "cid"))), 0);
			cr_assert_eq(cim_car_write_block(&w, &cid, bytes, n), 0);
			free(bytes);
		}
		cr_assert_eq(w.blocks, json_array_size(json_object_get(c, "blocks")));
		cr_assert_eq(w.offset, out.len);
		cr_assert_eq(out.len, len, "%s: %zu bytes, @ipld/car %zu", file,
			     out.len, len);
		for (size_t k = 0; k < len; k++)
			cr_assert_eq(out.p[k], want[k], "%s: byte %zu differs", file, k);
		cbuf_free(&out);
		free(want);
	}
	json_decref(root);
}

Test(car, reads_through_stdio_and_writes_through_it)
{
	cim_cid root;
	cim_car_writer w;
	cim_car_reader r;
	cim_car_block b;
	struct roots rs = {.n = 0};
	FILE *f = tmpfile();

	cr_assert_not_null(f);
	cr_assert_eq(cim_cid_compute(&root, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
				     (const uint8_t *)"\xa0", 1), 0);
	cr_assert_eq(cim_car_writer_begin_roots(&w, cim_car_stdio_sink, f, &root, 1), 0);
	cr_assert_eq(cim_car_write_block(&w, &root, (const uint8_t *)"\xa0", 1), 0);
	rewind(f);
	cr_assert_eq(cim_car_reader_open(&r, cim_car_stdio_source, f, keep_root, &rs), 0);
	cr_assert_eq(rs.n, 1);
	cr_assert(cim_cid_equal(&rs.r[0], &root));
	cr_assert_eq(cim_car_reader_next(&r, &b), 1);
	cr_assert(cim_cid_equal(&b.cid, &root));
	cr_assert_eq(b.len, 1);
	cr_assert_eq(cim_car_reader_next(&r, &b), 0);
	cim_car_reader_close(&r);
	fclose(f);
}

/* The roots callback of the writer, which may lie the second time. */
struct liar {
	cim_cid a, b;
	int calls;
};

static int
lying_root(void *ctx, size_t i, cim_cid *out)
{
	struct liar *l = ctx;

	*out = l->calls++ == 0 ? l->a : l->b;
	return 0;
}

static int
failing_sink(void *ctx, const uint8_t *p, size_t n)
{
	size_t *left = ctx;

	if (n > *left)
		return -1;
	*left -= n;
	return 0;
}

Test(car, writer_refuses_what_would_be_a_bad_file)
{
	struct liar l = {.calls = 0};
	cbuf out = CBUF_INIT;
	cim_car_writer w;
	size_t left = 70;
	cim_cid empty = {0};

	cim_cid_compute(&l.a, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
			(const uint8_t *)"a", 1);
	cim_cid_compute(&l.b, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256,
			(const uint8_t *)"b", 1);
	/* the two CIDs differ in length (36, 37 bytes) */
	cr_assert_eq(cim_car_writer_begin(&w, cbuf_sink, &out, 1, lying_root, &l), -1);
	cr_assert_not_null(strstr(w.err, "changed"), "%s", w.err);
	cr_assert(w.failed);
	cr_assert_eq(cim_car_write_block(&w, &l.a, (const uint8_t *)"a", 1), -1);
	cbuf_free(&out);

	/* a sink that fails part way */
	cr_assert_eq(cim_car_writer_begin_roots(&w, failing_sink, &left, &l.a, 1), 0);
	cr_assert_eq(cim_car_write_block(&w, &l.a, (const uint8_t *)"a", 1), -1);
	cr_assert_not_null(strstr(w.err, "cannot write the CAR file at byte"),
			   "%s", w.err);
	cr_assert_eq(cim_car_write_block(&w, &l.a, (const uint8_t *)"a", 1), -1);

	out = (cbuf)CBUF_INIT;
	cr_assert_eq(cim_car_writer_begin_roots(&w, cbuf_sink, &out, NULL, 0), 0);
	cr_assert_eq(cim_car_write_block(&w, &empty, (const uint8_t *)"a", 1), -1);
	cr_assert_not_null(strstr(w.err, "no CID"), "%s", w.err);
	cbuf_free(&out);
}

/* Opens p[0..len) and reads to the end; the error text, or NULL when it
 * reads cleanly. */
static const char *
read_all(const uint8_t *p, size_t len, char *err, size_t errsz)
{
	cim_car_mem m = {p, len, 0};
	cim_car_reader r;
	cim_car_block b;
	int rc;

	rc = cim_car_reader_open(&r, cim_car_mem_source, &m, NULL, NULL);
	while (rc == 0 && (rc = cim_car_reader_next(&r, &b)) == 1)
		rc = 0;
	snprintf(err, errsz, "%s", r.err);
	cim_car_reader_close(&r);
	return rc == 0 ? NULL : err;
}

Test(car, every_truncation_is_refused)
{
	size_t len;
	uint8_t *p = car_file("events.car", &len);
	char err[256];

	cr_assert_null(read_all(p, len, err, sizeof(err)), "%s", err);
	for (size_t n = 0; n < len; n++) {
		const char *e = read_all(p, n, err, sizeof(err));

		/* a cut just after a whole section is a shorter, valid file */
		if (e == NULL)
			continue;
		cr_assert(strstr(e, "ends inside") != NULL ||
			  strstr(e, "empty") != NULL,
			  "cut at %zu: %s", n, e);
		cr_assert_eq(strncmp(e, "at byte ", 8), 0, "%s", e);
	}
	free(p);
}

/* A header's bytes (with its length varint) then a valid section. */
static void
expect_refused(const uint8_t *p, size_t len, const char *want)
{
	char err[256];
	const char *e = read_all(p, len, err, sizeof(err));

	cr_assert_not_null(e, "accepted, wanted '%s'", want);
	cr_assert_not_null(strstr(e, want), "want '%s' in: %s", want, e);
}

#define REFUSED(want, ...)                                                   \
	do {                                                                 \
		static const uint8_t bytes_[] = {__VA_ARGS__};               \
		expect_refused(bytes_, sizeof(bytes_), want);                \
	} while (0)

Test(car, bad_headers)
{
	expect_refused((const uint8_t *)"", 0, "the file is empty");
	REFUSED("a CAR header of 0 bytes", 0x00, 0xa0);
	/* a CARv2 pragma */
	REFUSED("CAR version 2: only CARv1", 0x0a, 0xa1, 0x67, 'v', 'e', 'r', 's',
		'i', 'o', 'n', 0x02);
	/* {roots: [], version: 2} */
	REFUSED("version is not 1", 0x11, 0xa2, 0x65, 'r', 'o', 'o', 't', 's',
		0x80, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x02);
	/* {version: 1, roots: []}: not canonical */
	REFUSED("unexpected key \"version\" where \"roots\"", 0x11, 0xa2, 0x67,
		'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01, 0x65, 'r', 'o', 'o', 't',
		's', 0x80);
	/* {roots: 1, version: 1} */
	REFUSED("roots is not a list", 0x11, 0xa2, 0x65, 'r', 'o', 'o', 't', 's',
		0x01, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01);
	/* {roots: ["x"], version: 1} */
	REFUSED("expected a link", 0x13, 0xa2, 0x65, 'r', 'o', 'o', 't', 's',
		0x81, 0x61, 'x', 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01);
	/* three keys */
	REFUSED("3 keys", 0x04, 0xa3, 0x61, 'a', 0x01);
	REFUSED("not a map", 0x01, 0x80);
	/* the declared length is longer than the header */
	REFUSED("2 bytes after the CAR header's version", 0x13, 0xa2, 0x65, 'r',
		'o', 'o', 't', 's', 0x80, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n',
		0x01, 0x00, 0x00);
	/* ... or shorter */
	REFUSED("bad CAR header", 0x08, 0xa2, 0x65, 'r', 'o', 'o', 't', 's',
		0x80, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01);
	/* the file ends inside the header */
	REFUSED("ends inside the CAR header", 0x30, 0xa2, 0x65, 'r', 'o', 'o');
	/* 2^32 roots */
	REFUSED("cannot fit", 0x16, 0xa2, 0x65, 'r', 'o', 'o', 't', 's', 0x9b,
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0);
	/* the header length: not minimal, too long, over the limit */
	REFUSED("not a minimal varint", 0x90, 0x00);
	REFUSED("not a minimal varint", 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0x7f);
	REFUSED("a CAR header of 1099511627776 bytes", 0x80, 0x80, 0x80, 0x80,
		0x80, 0x20);
	REFUSED("ends inside the header length", 0x80, 0x80);
	/* tag 42 around a text string; a non-canonical map head */
	REFUSED("tag 42 must wrap a byte string", 0x15, 0xa2, 0x65, 'r', 'o',
		'o', 't', 's', 0x81, 0xd8, 0x2a, 0x61, 'x', 0x67, 'v', 'e', 'r',
		's', 'i', 'o', 'n', 0x01);
	REFUSED("shortest form", 0x12, 0xb8, 0x02, 0x65, 'r', 'o', 'o', 't', 's',
		0x80, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01);
}

/* An empty-rooted header, then the bytes given. */
#define HDR 0x11, 0xa2, 0x65, 'r', 'o', 'o', 't', 's', 0x80, 0x67, 'v', 'e', \
	    'r', 's', 'i', 'o', 'n', 0x01

Test(car, bad_sections)
{
	static const uint8_t ok[] = {HDR};
	char err[256];

	cr_assert_null(read_all(ok, sizeof(ok), err, sizeof(err)), "%s", err);
	REFUSED("an empty section", HDR, 0x00);
	REFUSED("a section length is not a minimal varint", HDR, 0x81, 0x00);
	REFUSED("a section length is not a minimal varint", HDR, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
	REFUSED("ends inside a section length", HDR, 0xff, 0xff);
	/* 2^40 bytes */
	REFUSED("a section of 1099511627776 bytes", HDR, 0x80, 0x80, 0x80, 0x80,
		0x80, 0x20);
	/* 64 MiB claimed, 3 bytes there: read as they come, then refused */
	REFUSED("ends inside the section that starts at byte 18 (3 of its "
		"67108864 bytes there)", HDR, 0x80, 0x80, 0x80, 0x20, 0x01, 0x71,
		0x12);
	REFUSED("a CIDv0", HDR, 0x22, 0x12, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	/* CID version 2; a digest longer than the section */
	REFUSED("does not start with a valid CIDv1", HDR, 0x05, 0x02, 0x71, 0x12,
		0x01, 0x00);
	REFUSED("does not start with a valid CIDv1", HDR, 0x05, 0x01, 0x71, 0x12,
		0x20, 0x00);
	REFUSED("at byte 19: the section does not start", HDR, 0x03, 0x01, 0x71,
		0x12);
}
