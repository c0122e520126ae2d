/*
 * fuzz_car.c: libFuzzer target for the CAR reader (proto/car.h) and the
 * offline verifier (proto/carverify.h), which read files from anywhere.
 *
 * Each input is a CAR file:
 *   - read section by section: every block lies inside the input at the
 *     offset the reader gives, offsets grow, the CID is valid; a file that
 *     reads cleanly is written again by cim_car_writer from its roots and
 *     blocks, and must come out byte for byte the same (the reader takes
 *     only canonical headers and minimal varints, so a file has one form);
 *   - verified without keys and with one trusted key: the answer is 0 or 1
 *     (never -1: nothing here runs out of memory), a pass has no failure
 *     and counts that add up (blocks = events + seals + key blocks, one
 *     aggregate per root), a failure has a reason and a sentence, and the
 *     keyed run fails wherever the unkeyed one does.
 * A broken rule aborts, so libFuzzer reports it as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "car.h"
#include "carverify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,\
				__LINE__, #c);                                \
			abort();                                              \
		}                                                             \
	} while (0)

#define MAX_ROOTS 4096

struct roots {
	cim_cid *r;
	size_t n;
};

static int
keep_root(void *ctx, size_t i, const cim_cid *cid)
{
	struct roots *rs = ctx;

	CHECK(i == rs->n);
	CHECK(cim_cid_info(cid, NULL, NULL) == 0);
	if (rs->n < MAX_ROOTS)
		rs->r[rs->n] = *cid;
	rs->n++;
	return 0;
}

static int
cbuf_sink(void *ctx, const uint8_t *p, size_t n)
{
	return cbuf_put(ctx, p, n);
}

static void
read_and_rewrite(const uint8_t *data, size_t size)
{
	static cim_cid roots[MAX_ROOTS];
	struct roots rs = {roots, 0};
	cim_car_mem m = {data, size, 0};
	cbuf out = CBUF_INIT;
	cim_car_writer w;
	cim_car_reader r;
	cim_car_block b;
	uint64_t last = 0;
	bool rewrite;
	int rc;

	rc = cim_car_reader_open(&r, cim_car_mem_source, &m, keep_root, &rs);
	if (rc != 0) {
		CHECK(r.err[0] != '\0');
		cim_car_reader_close(&r);
		return;
	}
	CHECK(rs.n == r.nroots);
	rewrite = rs.n <= MAX_ROOTS &&
		  cim_car_writer_begin_roots(&w, cbuf_sink, &out, roots, rs.n) == 0;
	if (rewrite)
		CHECK(out.len == r.offset && memcmp(out.p, data, out.len) == 0);
	while ((rc = cim_car_reader_next(&r, &b)) == 1) {
		CHECK(b.offset >= last && b.offset < size);
		CHECK(b.data_offset + b.len <= size);
		CHECK(b.data_offset + b.len == r.offset);
		CHECK(b.len == 0 || memcmp(data + b.data_offset, b.data, b.len) == 0);
		CHECK(cim_cid_info(&b.cid, NULL, NULL) == 0);
		CHECK(memcmp(data + b.data_offset - b.cid.len, b.cid.b, b.cid.len) == 0);
		last = b.offset + 1;
		if (rewrite)
			CHECK(cim_car_write_block(&w, &b.cid, b.data, b.len) == 0);
	}
	if (rc == 0) {
		CHECK(r.offset == size);
		if (rewrite)
			CHECK(out.len == size && memcmp(out.p, data, size) == 0);
	} else {
		CHECK(r.err[0] != '\0');
	}
	cim_car_reader_close(&r);
	cbuf_free(&out);
}

static void
on_failure(void *ctx, const char *reason, const char *msg)
{
	CHECK(reason[0] != '\0' && msg[0] != '\0');
	(*(uint64_t *)ctx)++;
}

static int
verify(const uint8_t *data, size_t size, size_t nkeys, cim_car_summary *s)
{
	static const uint8_t keys[1][CIM_KEY_BYTES] = {{0x11}};
	uint64_t seen = 0;
	cim_car_verify_opts o = {.keys = keys, .nkeys = nkeys,
				 .on_failure = on_failure, .ctx = &seen};
	cim_car_mem m = {data, size, 0};
	int rc = cim_car_verify(cim_car_mem_source, &m, &o, s);

	CHECK(rc == 0 || rc == 1);
	CHECK(seen == s->failures);
	CHECK(s->bytes <= size);
	if (rc == 0) {
		CHECK(s->failures == 0 && s->first[0] == '\0');
		CHECK(s->blocks == s->events + s->seals + s->key_blocks);
		CHECK(s->aggregates == s->roots);
		CHECK(s->bytes == size);
		CHECK(nkeys == 0 || s->roots_sealed == s->roots);
	} else {
		CHECK(s->failures > 0 && s->first[0] != '\0' &&
		      s->first_reason[0] != '\0');
	}
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cim_car_summary plain, keyed;
	int a, b;

	read_and_rewrite(data, size);
	a = verify(data, size, 0, &plain);
	b = verify(data, size, 1, &keyed);
	CHECK(a == 0 || b == 1);
	CHECK(plain.blocks == keyed.blocks && plain.events == keyed.events);
	return 0;
}
