/*
 * fuzz_cid.c: libFuzzer target for the CID parsers of proto/cid.h.
 *
 * Each input is tried as:
 *   - the text form (cim_cid_from_text on the input up to its first NUL):
 *     on success the text form is unique, so cim_cid_to_text must give the
 *     input back exactly, and parsing that again the same CID;
 *   - the binary form (cim_cid_from_bytes on all of it): on success the CID
 *     is the input byte for byte, its text parses back to it, and
 *     cim_cid_info accepts it;
 *   - bare base32 (cim_base32_decode): on success encoding gives the input
 *     back (no padding, no upper case, no stray bits are accepted); and
 *     the other way, any bytes encode and decode back to themselves;
 *   - a raw cim_cid struct (length byte then bytes) for cim_cid_info and
 *     cim_cid_matches, which must only refuse what is not a CID;
 *   - a hash name (cim_hash_from_name / cim_hash_name agree).
 * A broken rule aborts, so libFuzzer reports it as a crash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,\
				__LINE__, #c);                                \
			abort();                                              \
		}                                                             \
	} while (0)

static void
check_text(const char *s)
{
	cim_cid c, again;
	char text[CIM_CID_TEXT_MAX];
	size_t n;

	if (cim_cid_from_text(&c, s) != 0)
		return;
	CHECK(c.len >= 1 && c.len <= CIM_CID_MAX);
	CHECK(cim_cid_info(&c, NULL, NULL) == 0);
	n = cim_cid_to_text(&c, text);
	CHECK(n < CIM_CID_TEXT_MAX && text[n] == '\0' && strlen(text) == n);
	CHECK(strcmp(text, s) == 0); /* one text form per CID */
	CHECK(cim_cid_from_text(&again, text) == 0);
	CHECK(cim_cid_equal(&c, &again));
}

static void
check_bytes(const uint8_t *data, size_t size)
{
	cim_cid c, again;
	char text[CIM_CID_TEXT_MAX];
	uint64_t codec, mh;
	size_t n;

	if (cim_cid_from_bytes(&c, data, size) != 0)
		return;
	CHECK(c.len == size && memcmp(c.b, data, size) == 0);
	CHECK(cim_cid_info(&c, &codec, &mh) == 0);
	n = cim_cid_to_text(&c, text);
	CHECK(n < CIM_CID_TEXT_MAX && text[0] == 'b' && strlen(text) == n);
	CHECK(cim_cid_from_text(&again, text) == 0);
	CHECK(cim_cid_equal(&c, &again));
	/* a CID of a supported hash matches the data only if the digest is
	 * that data's; recomputing over the CID's own bytes must agree with
	 * cim_cid_compute */
	if (cim_hash_name(mh) != NULL) {
		cim_cid d;

		CHECK(cim_cid_compute(&d, codec, mh, data, size) == 0);
		CHECK(cim_cid_matches(&d, data, size));
		CHECK(cim_cid_matches(&c, data, size) == cim_cid_equal(&c, &d));
	}
}

static void
check_base32(const uint8_t *data, size_t size)
{
	uint8_t bin[512];
	char text[(512 * 8 + 4) / 5 + 1];
	size_t n, m;

	if (cim_base32_decode((const char *)data, size, bin, sizeof(bin),
			      &n) == 0) {
		CHECK(n <= sizeof(bin) && n * 8 / 5 <= size);
		m = cim_base32_encode(bin, n, text);
		CHECK(m == size && memcmp(text, data, size) == 0);
	}
	/* any bytes: encode, then decode back */
	if (size <= sizeof(bin)) {
		m = cim_base32_encode(data, size, text);
		CHECK(m == (size * 8 + 4) / 5 && text[m] == '\0');
		CHECK(cim_base32_decode(text, m, bin, sizeof(bin), &n) == 0);
		CHECK(n == size && memcmp(bin, data, size) == 0);
		/* one byte short of room must be refused, not overrun */
		if (size > 0)
			CHECK(cim_base32_decode(text, m, bin, size - 1, &n) == -1);
	}
}

static void
check_struct(const uint8_t *data, size_t size)
{
	cim_cid c;
	uint64_t codec, mh;
	int rc;

	if (size == 0)
		return;
	memset(&c, 0, sizeof(c));
	c.len = data[0];
	memcpy(c.b, data + 1, size - 1 < CIM_CID_MAX ? size - 1 : CIM_CID_MAX);
	rc = cim_cid_info(&c, &codec, &mh);
	if (rc == 0) {
		cim_cid p;

		CHECK(c.len <= CIM_CID_MAX);
		CHECK(cim_cid_from_bytes(&p, c.b, c.len) == 0);
	}
	/* a refused CID never matches anything */
	if (cim_cid_matches(&c, data, size))
		CHECK(rc == 0);
}

static void
check_hash_name(const char *s)
{
	uint64_t mh = 0;
	const char *name;

	if (cim_hash_from_name(s, &mh) != 0)
		return;
	name = cim_hash_name(mh);
	CHECK(name != NULL && strcmp(name, s) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_text(s);
	check_hash_name(s);
	free(s);
	check_bytes(data, size);
	check_base32(data, size);
	check_struct(data, size);
	return 0;
}
