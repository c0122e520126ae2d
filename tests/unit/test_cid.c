/*
 * test_cid.c: CIDs, multihashes and base32: known answers, round trips and
 * the forms the parsers must refuse.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cid.h"

/* Lower-case hex of n bytes. */
static void
hex(const uint8_t *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

/* The digest of a parsed CID, as hex; it is the last 32 bytes. */
static void
digest_hex(const cim_cid *c, char *out)
{
	cr_assert_geq(c->len, 32);
	hex(c->b + c->len - 32, 32, out);
}

Test(cid, sha256_known_answers)
{
	cim_cid c;
	char h[65];

	cr_assert_eq(cim_cid_compute(&c, 0x55, CIM_MH_SHA2_256,
				     (const uint8_t *)"", 0), 0);
	digest_hex(&c, h);
	cr_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb924"
			    "27ae41e4649b934ca495991b7852b855");
	cr_assert_eq(cim_cid_compute(&c, 0x55, CIM_MH_SHA2_256,
				     (const uint8_t *)"abc", 3), 0);
	digest_hex(&c, h);
	cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223"
			    "b00361a396177a9cb410ff61f20015ad");
	/* version 1, raw (0x55), sha2-256 (0x12), length 32 */
	cr_assert_eq(c.len, 36);
	cr_assert_eq(memcmp(c.b, "\x01\x55\x12\x20", 4), 0);
}

Test(cid, blake2b256_known_answer)
{
	cim_cid c;
	char h[65];

	cr_assert_eq(cim_cid_compute(&c, CIM_CODEC_DAG_CBOR,
				     CIM_MH_BLAKE2B_256,
				     (const uint8_t *)"abc", 3), 0);
	digest_hex(&c, h);
	cr_assert_str_eq(h, "bddd813c634239723171ef3fee98579b"
			    "94964e3bb1cb3e427262c8c068d52319");
	/* 0xb220 is the two-byte varint a0 e4 02 */
	cr_assert_eq(c.len, 38);
	cr_assert_eq(memcmp(c.b, "\x01\x71\xa0\xe4\x02\x20", 6), 0);
}

Test(cid, empty_map_well_known)
{
	const uint8_t block[] = {0xa0};
	char text[CIM_CID_TEXT_MAX];
	cim_cid c, back;
	size_t n;

	cr_assert_eq(cim_cid_compute(&c, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
				     block, 1), 0);
	n = cim_cid_to_text(&c, text);
	cr_assert_str_eq(text,
		"bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua");
	cr_assert_eq(n, strlen(text));
	cr_assert_eq(cim_cid_from_text(&back, text), 0);
	cr_assert(cim_cid_equal(&c, &back));
	cr_assert(cim_cid_matches(&back, block, 1));
	cr_assert_not(cim_cid_matches(&back, (const uint8_t *)"\xa1", 1));
}

Test(cid, unsupported_hash_refused)
{
	cim_cid c;

	cr_assert_eq(cim_cid_compute(&c, CIM_CODEC_DAG_CBOR, 0x13,
				     (const uint8_t *)"x", 1), -1);
	cr_assert_eq(cim_cid_compute(&c, CIM_CODEC_DAG_CBOR, 0,
				     (const uint8_t *)"x", 1), -1);
}

Test(cid, hash_names)
{
	uint64_t mh = 0;

	cr_assert_eq(cim_hash_from_name("blake2b-256", &mh), 0);
	cr_assert_eq(mh, CIM_MH_BLAKE2B_256);
	cr_assert_eq(cim_hash_from_name("sha2-256", &mh), 0);
	cr_assert_eq(mh, CIM_MH_SHA2_256);
	cr_assert_eq(cim_hash_from_name("sha256", &mh), -1);
	cr_assert_eq(cim_hash_from_name("", &mh), -1);
	cr_assert_eq(cim_hash_from_name(NULL, &mh), -1);
	cr_assert_str_eq(cim_hash_name(CIM_MH_BLAKE2B_256), "blake2b-256");
	cr_assert_str_eq(cim_hash_name(CIM_MH_SHA2_256), "sha2-256");
	cr_assert_null(cim_hash_name(0x13));
}

Test(cid, info_and_matches_both_hashes)
{
	const uint64_t hashes[] = {CIM_MH_BLAKE2B_256, CIM_MH_SHA2_256};
	const uint8_t data[] = "some block bytes";
	uint64_t codec, mh;
	cim_cid c;
	size_t i;

	for (i = 0; i < 2; i++) {
		cr_assert_eq(cim_cid_compute(&c, CIM_CODEC_DAG_CBOR, hashes[i],
					     data, sizeof(data)), 0);
		cr_assert_eq(cim_cid_info(&c, &codec, &mh), 0);
		cr_assert_eq(codec, CIM_CODEC_DAG_CBOR);
		cr_assert_eq(mh, hashes[i]);
		cr_assert(cim_cid_matches(&c, data, sizeof(data)));
		cr_assert_not(cim_cid_matches(&c, data, sizeof(data) - 1));
	}
}

Test(cid, hashes_differ_and_equal_compares_bytes)
{
	cim_cid a, b, c;

	cim_cid_compute(&a, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256,
			(const uint8_t *)"x", 1);
	cim_cid_compute(&b, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
			(const uint8_t *)"x", 1);
	cim_cid_compute(&c, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256,
			(const uint8_t *)"x", 1);
	cr_assert_not(cim_cid_equal(&a, &b));
	cr_assert(cim_cid_equal(&a, &c));
	c.b[c.len - 1] ^= 1;
	cr_assert_not(cim_cid_equal(&a, &c));
	cr_assert_not(cim_cid_matches(&c, (const uint8_t *)"x", 1));
}

Test(cid, text_round_trip)
{
	char text[CIM_CID_TEXT_MAX], text2[CIM_CID_TEXT_MAX];
	cim_cid c, back;
	uint8_t data[100];
	size_t i;

	for (i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)(i * 7);
		cim_cid_compute(&c, CIM_CODEC_DAG_CBOR,
				i % 2 ? CIM_MH_SHA2_256 : CIM_MH_BLAKE2B_256,
				data, i);
		cim_cid_to_text(&c, text);
		cr_assert_eq(text[0], 'b');
		cr_assert_eq(cim_cid_from_text(&back, text), 0, "%s", text);
		cr_assert(cim_cid_equal(&c, &back));
		cim_cid_to_text(&back, text2);
		cr_assert_str_eq(text, text2);
	}
}

Test(cid, any_codec_and_multihash_parse)
{
	/* version 1, codec 0x55 (raw), mh 0x1e (blake3), 4-byte digest */
	const uint8_t b[] = {0x01, 0x55, 0x1e, 0x04, 1, 2, 3, 4};
	uint64_t codec, mh;
	cim_cid c;

	cr_assert_eq(cim_cid_from_bytes(&c, b, sizeof(b)), 0);
	cr_assert_eq(c.len, sizeof(b));
	cr_assert_eq(cim_cid_info(&c, &codec, &mh), 0);
	cr_assert_eq(codec, 0x55);
	cr_assert_eq(mh, 0x1e);
	cr_assert_not(cim_cid_matches(&c, (const uint8_t *)"x", 1));
}

Test(cid, binary_rejections)
{
	cim_cid good, c;
	uint8_t b[CIM_CID_MAX + 8];

	cim_cid_compute(&good, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
			(const uint8_t *)"x", 1);
	cr_assert_eq(cim_cid_from_bytes(&c, good.b, good.len), 0);
	/* empty */
	cr_assert_eq(cim_cid_from_bytes(&c, good.b, 0), -1);
	/* truncated digest */
	cr_assert_eq(cim_cid_from_bytes(&c, good.b, good.len - 1), -1);
	/* trailing byte */
	memcpy(b, good.b, good.len);
	b[good.len] = 0;
	cr_assert_eq(cim_cid_from_bytes(&c, b, good.len + 1u), -1);
	/* version 0 and version 2 */
	b[0] = 0x00;
	cr_assert_eq(cim_cid_from_bytes(&c, b, good.len), -1);
	b[0] = 0x02;
	cr_assert_eq(cim_cid_from_bytes(&c, b, good.len), -1);
	/* CIDv0 (a bare sha2-256 multihash) */
	cr_assert_eq(cim_cid_from_bytes(&c, good.b + 2, good.len - 2u), -1);
}

Test(cid, bad_varints)
{
	cim_cid c;
	/* version 1 written non-minimally as 81 00 */
	const uint8_t nonmin[] = {0x81, 0x00, 0x71, 0x12, 0x01, 0xaa};
	/* codec varint never ends */
	const uint8_t unterminated[] = {0x01, 0xff, 0xff};
	/* ten-byte varint */
	const uint8_t toolong[] = {0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				   0xff, 0xff, 0xff, 0x01, 0x12, 0x01, 0xaa};
	/* the same shape, minimal, is fine */
	const uint8_t ok[] = {0x01, 0x71, 0x12, 0x01, 0xaa};

	cr_assert_eq(cim_cid_from_bytes(&c, ok, sizeof(ok)), 0);
	cr_assert_eq(cim_cid_from_bytes(&c, nonmin, sizeof(nonmin)), -1);
	cr_assert_eq(cim_cid_from_bytes(&c, unterminated,
					sizeof(unterminated)), -1);
	cr_assert_eq(cim_cid_from_bytes(&c, toolong, sizeof(toolong)), -1);
}

Test(cid, over_max_refused)
{
	uint8_t b[CIM_CID_MAX + 1];
	cim_cid c;

	memset(b, 0xab, sizeof(b));
	b[0] = 0x01;
	b[1] = 0x55;
	b[2] = 0x12;
	b[3] = CIM_CID_MAX + 1 - 4;
	cr_assert_eq(cim_cid_from_bytes(&c, b, sizeof(b)), -1);
	b[3] = CIM_CID_MAX - 4;
	cr_assert_eq(cim_cid_from_bytes(&c, b, CIM_CID_MAX), 0);
}

Test(cid, text_rejections)
{
	const char *good =
		"bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua";
	char s[CIM_CID_TEXT_MAX + 8];
	cim_cid c;

	cr_assert_eq(cim_cid_from_text(&c, good), 0);
	cr_assert_eq(cim_cid_from_text(&c, ""), -1);
	cr_assert_eq(cim_cid_from_text(&c, "b"), -1);
	cr_assert_eq(cim_cid_from_text(&c, NULL), -1);
	/* missing multibase prefix */
	cr_assert_eq(cim_cid_from_text(&c, good + 1), -1);
	/* upper-case prefix and upper-case body */
	snprintf(s, sizeof(s), "B%s", good + 1);
	cr_assert_eq(cim_cid_from_text(&c, s), -1);
	snprintf(s, sizeof(s), "%s", good);
	s[5] = 'E';
	cr_assert_eq(cim_cid_from_text(&c, s), -1);
	/* padding */
	snprintf(s, sizeof(s), "%s=", good);
	cr_assert_eq(cim_cid_from_text(&c, s), -1);
	/* a character outside the alphabet */
	snprintf(s, sizeof(s), "%s", good);
	s[10] = '1';
	cr_assert_eq(cim_cid_from_text(&c, s), -1);
	/* trailing garbage and truncation */
	snprintf(s, sizeof(s), "%s ", good);
	cr_assert_eq(cim_cid_from_text(&c, s), -1);
	snprintf(s, sizeof(s), "%s", good);
	s[strlen(s) - 2] = '\0';
	cr_assert_eq(cim_cid_from_text(&c, s), -1);
	/* a CIDv0 */
	cr_assert_eq(cim_cid_from_text(&c,
		"QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"), -1);
}

Test(cid, stray_trailing_bits_in_text)
{
	const char *good =
		"bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua";
	char s[CIM_CID_TEXT_MAX];
	cim_cid c;

	/* 58 base32 chars = 36 bytes + 2 spare bits; the last char 'a' has
	 * them zero. 'b' sets one of them. */
	snprintf(s, sizeof(s), "%s", good);
	s[strlen(s) - 1] = 'b';
	cr_assert_eq(cim_cid_from_text(&c, s), -1);
}

struct b32_vector {
	const char *in, *out;
};

Test(base32, rfc4648_vectors)
{
	static const struct b32_vector v[] = {
		{"", ""},
		{"f", "my"},
		{"fo", "mzxq"},
		{"foo", "mzxw6"},
		{"foob", "mzxw6yq"},
		{"fooba", "mzxw6ytb"},
		{"foobar", "mzxw6ytboi"},
	};
	char out[32];
	uint8_t back[16];
	size_t i, n, len;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		len = strlen(v[i].in);
		n = cim_base32_encode((const uint8_t *)v[i].in, len, out);
		cr_assert_str_eq(out, v[i].out);
		cr_assert_eq(n, strlen(v[i].out));
		cr_assert_eq(cim_base32_decode(v[i].out, n, back, sizeof(back),
					       &len), 0);
		cr_assert_eq(len, strlen(v[i].in));
		cr_assert_eq(memcmp(back, v[i].in, len), 0);
	}
}

Test(base32, decode_rejections)
{
	uint8_t out[16];
	size_t n;

	cr_assert_eq(cim_base32_decode("MZXQ", 4, out, sizeof(out), &n), -1);
	cr_assert_eq(cim_base32_decode("my======", 8, out, sizeof(out), &n),
		     -1);
	cr_assert_eq(cim_base32_decode("mz", 2, out, sizeof(out), &n), -1);
	cr_assert_eq(cim_base32_decode("m", 1, out, sizeof(out), &n), -1);
	cr_assert_eq(cim_base32_decode("mzx", 3, out, sizeof(out), &n), -1);
	cr_assert_eq(cim_base32_decode("mzxw6y", 6, out, sizeof(out), &n),
		     -1);
	cr_assert_eq(cim_base32_decode("my0", 3, out, sizeof(out), &n), -1);
	/* does not pass cap */
	cr_assert_eq(cim_base32_decode("mzxw6ytboi", 10, out, 5, &n), -1);
	cr_assert_eq(cim_base32_decode("mzxw6ytboi", 10, out, 6, &n), 0);
	cr_assert_eq(n, 6);
}

Test(base32, random_round_trips)
{
	uint8_t in[64], back[64];
	char text[(64 * 8 + 4) / 5 + 1];
	size_t len, n, m;

	for (len = 0; len <= sizeof(in); len++) {
		randombytes_buf(in, len);
		n = cim_base32_encode(in, len, text);
		cr_assert_eq(n, (len * 8 + 4) / 5);
		cr_assert_eq(cim_base32_decode(text, n, back, sizeof(back),
					       &m), 0);
		cr_assert_eq(m, len);
		cr_assert_eq(memcmp(in, back, len), 0);
	}
}
