/*
 * test_crypt.c: proto/crypt.c: XChaCha20-Poly1305 against libsodium's own
 * test vectors (test/default/aead_xchacha20poly1305.c and .exp in
 * libsodium's sources) and the AEAD_XChaCha20_Poly1305 vector of
 * draft-irtf-cfrg-xchacha-03, appendix A.3.1; the associated data byte for
 * byte; keys in guarded memory; and encrypted values: round trips, the
 * wrong key, the wrong place, every tamper, too-short input, plaintext that
 * is not DAG-CBOR, and event ids holding U+0000.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "crypt.h"
#include "dagcbor.h"
#include "jsontext.h"
#include "vectors.h"

static json_t *
parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

	cr_assert_not_null(v, "bad test JSON %s: %s", text, jerr.text);
	return v;
}

static void
key_fill(cim_key *k, uint8_t first)
{
	for (int i = 0; i < CIM_KEY_BYTES; i++)
		k->b[i] = (uint8_t)(first + i);
}

/* ---- standard vectors -------------------------------------------------------- */

static const char sunscreen[] =
	"Ladies and Gentlemen of the class of '99: If I could offer you only one "
	"tip for the future, sunscreen would be it.";

/* libsodium 1.0.18+ test/default/aead_xchacha20poly1305.{c,exp}: key
 * 0x80..0x9f, nonce 07 00 00 00 40..53, AD 50 51 52 53 c0..c7 (the first
 * output) and no AD (the second and third outputs, which are equal). */
static const char sodium_ct_ad[] =
	"f8ebea4875044066fc162a0604e171feecfb3d204252485"
	"63bcfd5a155dcc47bbda70b86e5ab9b55002bd1274c02db"
	"35321acd7af8b2e2d25015e136b7679458e9f43243bf719"
	"d639badb5feac03f80a19a96ef10cb1d15333a837b90946"
	"ba3854ee74da3f2585efc7e1e170e17e15e563e77601f4f"
	"85cafa8e5877614e143e68420";
static const char sodium_ct_noad[] =
	"f8ebea4875044066fc162a0604e171feecfb3d204252485"
	"63bcfd5a155dcc47bbda70b86e5ab9b55002bd1274c02db"
	"35321acd7af8b2e2d25015e136b7679458e9f43243bf719"
	"d639badb5feac03f80a19a96ef10cb1d15333a837b90946"
	"ba3854ee74da3f2585efc7e1e170e17e15e563e7e096e03"
	"3d91b63f7ac92e9972e0d43e5";

static void
check_vector(const cim_key *k, const uint8_t *nonce, const uint8_t *ad,
	     size_t adlen, const char *want_hex)
{
	size_t mlen = strlen(sunscreen), wlen;
	uint8_t *want = t_unhex(want_hex, &wlen);
	uint8_t *ct = malloc(mlen + CIM_TAG_BYTES), *back = malloc(mlen);

	cr_assert_eq(wlen, mlen + CIM_TAG_BYTES);
	cim_xchacha_seal(ct, k, ad, adlen, nonce, (const uint8_t *)sunscreen, mlen);
	cr_assert_eq(memcmp(ct, want, wlen), 0, "ciphertext differs from the vector");
	cr_assert_eq(cim_xchacha_open(back, k, ad, adlen, nonce, want, wlen), 0);
	cr_assert_eq(memcmp(back, sunscreen, mlen), 0);
	/* every byte of ciphertext and tag matters (libsodium's own loop) */
	for (size_t i = 0; i < wlen; i++) {
		want[i] ^= (uint8_t)(i + 1);
		cr_assert_eq(cim_xchacha_open(back, k, ad, adlen, nonce, want, wlen),
			     -1, "forged at byte %zu", i);
		for (size_t j = 0; j < mlen; j++)
			cr_assert_eq(back[j], 0, "plaintext not wiped after a failure");
		want[i] ^= (uint8_t)(i + 1);
	}
	free(want);
	free(ct);
	free(back);
}

Test(crypt, libsodium_test_vectors)
{
	cim_key k;
	uint8_t nonce[24] = {0x07, 0x00, 0x00, 0x00};
	const uint8_t ad[] = {0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3,
			      0xc4, 0xc5, 0xc6, 0xc7};

	key_fill(&k, 0x80);
	for (int i = 4; i < 24; i++)
		nonce[i] = (uint8_t)(0x40 + i - 4);
	check_vector(&k, nonce, ad, sizeof ad, sodium_ct_ad);
	check_vector(&k, nonce, NULL, 0, sodium_ct_noad);
}

Test(crypt, draft_irtf_cfrg_xchacha_a31)
{
	size_t len;
	cim_key k;
	uint8_t nonce[24];
	const uint8_t ad[] = {0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3,
			      0xc4, 0xc5, 0xc6, 0xc7};
	/* the plaintext is the same sentence (hex in the draft) */
	uint8_t *pt = t_unhex(
		"4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
		"73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
		"6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
		"637265656e20776f756c642062652069742e", &len);

	cr_assert_eq(len, strlen(sunscreen));
	cr_assert_eq(memcmp(pt, sunscreen, len), 0);
	key_fill(&k, 0x80);
	for (int i = 0; i < 24; i++)
		nonce[i] = (uint8_t)(0x40 + i);
	/* ciphertext, then the tag */
	check_vector(&k, nonce, ad, sizeof ad,
		"bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
		"731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
		"2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
		"21f9664c97637da9768812f615c68b13b52e"
		"c0875924c1c7987947deafd8780acf49");
	free(pt);
}

Test(crypt, open_refuses_shorter_than_a_tag)
{
	cim_key k;
	uint8_t nonce[24] = {0}, ct[16] = {0}, plain[1];

	key_fill(&k, 1);
	for (size_t n = 0; n < CIM_TAG_BYTES; n++)
		cr_assert_eq(cim_xchacha_open(plain, &k, NULL, 0, nonce, ct, n), -1);
	/* a tag alone is an empty plaintext: it must authenticate */
	cim_xchacha_seal(ct, &k, NULL, 0, nonce, NULL, 0);
	cr_assert_eq(cim_xchacha_open(NULL, &k, NULL, 0, nonce, ct, 16), 0);
}

/* ---- associated data ------------------------------------------------------------ */

static void
ad_is(const cim_ad *ad, const char *want, size_t wlen)
{
	cbuf b = CBUF_INIT;

	cr_assert_eq(cim_ad_write(&b, ad), 0);
	cr_assert_eq(b.len, wlen, "AD length %zu, want %zu", b.len, wlen);
	cr_assert_eq(memcmp(b.p, want, wlen), 0);
	cbuf_free(&b);
}

Test(crypt, associated_data_exactly_as_the_contract_says)
{
	cim_ad ad;
	cbuf b = CBUF_INIT;

	ad = cim_ad_dek("order", 5, "o:1", 3);
	ad_is(&ad, "cim-events-dek-v1\0order\0o:1", 27);
	ad = cim_ad_data("e1", 2);
	ad_is(&ad, "cim-events-data-v1\0e1", 21);
	ad = cim_ad_data("a\0b", 3); /* the event_id's own NUL is kept */
	ad_is(&ad, "cim-events-data-v1\0a\0b", 22);
	ad = cim_ad_state("order", 5, "o:1", 3);
	ad_is(&ad, "cim-events-state-v1\0order\0o:1", 29);

	/* refused: empty parts, a type holding NUL (ambiguous) */
	ad = cim_ad_data("", 0);
	cr_assert_eq(cim_ad_write(&b, &ad), -1);
	ad = cim_ad_dek("", 0, "x", 1);
	cr_assert_eq(cim_ad_write(&b, &ad), -1);
	ad = cim_ad_state("t", 1, "", 0);
	cr_assert_eq(cim_ad_write(&b, &ad), -1);
	ad = cim_ad_state("t\0u", 3, "x", 1);
	cr_assert_eq(cim_ad_write(&b, &ad), -1);
	cr_assert_eq(b.len, 0);
	cbuf_free(&b);
}

/* ---- keys --------------------------------------------------------------------------- */

Test(crypt, keys_in_guarded_memory)
{
	cim_key *k = cim_key_alloc(3), zero;

	cr_assert_not_null(k);
	memset(&zero, 0, sizeof zero);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(memcmp(&k[i], &zero, sizeof zero), 0, "not zeroed");
	cr_assert_eq(cim_key_generate(&k[0]), 0);
	cr_assert_eq(cim_key_generate(&k[1]), 0);
	cr_assert_neq(memcmp(&k[0], &zero, sizeof zero), 0);
	cr_assert_neq(memcmp(&k[0], &k[1], sizeof zero), 0, "two keys alike");
	cim_key_wipe(&k[0]);
	cr_assert_eq(memcmp(&k[0], &zero, sizeof zero), 0);
	cim_key_free(k, 3);
	cim_key_free(NULL, 1);
	cr_assert_null(cim_key_alloc(0));
}

/* ---- encrypted values ------------------------------------------------------------- */

static const uint8_t fixed_nonce[24] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
	21, 22, 23, 24
};

/* The encrypted value of text's JSON under k for ad. */
static void
encrypt(cbuf *out, const cim_key *k, const cim_ad *ad, const char *text,
	const uint8_t *nonce)
{
	json_t *v = parse(text);
	char err[200] = "";

	cr_assert_eq(cim_value_encrypt(out, k, ad, v, nonce, err, sizeof err), 0,
		     "%s", err);
	json_decref(v);
}

Test(crypt, value_round_trips)
{
	static const char *const texts[] = {
		"{\"name\":\"Alice\",\"n\":[1,-2,2.5,null,true,\"\\u0000\"],\"e\":{}}",
		"\"x\"", "null", "[]", "-9223372036854775808", "0.1",
	};
	cim_key *k = cim_key_alloc(1);
	cim_ad ad = cim_ad_data("evt-1", 5);
	char err[200] = "";

	cr_assert_eq(cim_key_generate(k), 0);
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		cbuf enc = CBUF_INIT, plain = CBUF_INIT, want = CBUF_INIT;
		cbuf text = CBUF_INIT, jtext = CBUF_INIT;
		json_t *v = parse(texts[i]), *back;

		encrypt(&enc, k, &ad, texts[i], NULL);
		cr_assert_eq(cim_cbor_write_json(&want, v, CIM_MAX_DEPTH, NULL, 0), 0);
		cr_assert_eq(enc.len, want.len + CIM_ENC_OVERHEAD);
		cr_assert_eq(cim_value_decrypt(&plain, k, &ad, enc.p, enc.len, err,
					       sizeof err), 0, "%s", err);
		cr_assert_eq(plain.len, want.len);
		cr_assert_eq(memcmp(plain.p, want.p, want.len), 0);
		cr_assert_eq(cim_value_decrypt_json(&back, k, &ad, enc.p, enc.len,
						    err, sizeof err), 0, "%s", err);
		cr_assert(json_equal(back, v), "%s", texts[i]);
		cr_assert_eq(cim_value_decrypt_text(&text, k, &ad, enc.p, enc.len,
						    err, sizeof err), 0, "%s", err);
		/* the text of the value as read back (keys in DAG-CBOR order) */
		cr_assert_eq(cim_json_write(&jtext, back), 0);
		cr_assert_eq(text.len, jtext.len);
		cr_assert_eq(memcmp(text.p, jtext.p, text.len), 0, "%s", texts[i]);
		json_decref(v);
		json_decref(back);
		cbuf_free(&enc);
		cbuf_free(&plain);
		cbuf_free(&want);
		cbuf_free(&text);
		cbuf_free(&jtext);
	}
	cim_key_free(k, 1);
}

Test(crypt, random_nonces_differ_fixed_ones_repeat)
{
	cim_key k;
	cim_ad ad = cim_ad_data("e", 1);
	cbuf a = CBUF_INIT, b = CBUF_INIT, c = CBUF_INIT;

	key_fill(&k, 9);
	encrypt(&a, &k, &ad, "{\"a\":1}", NULL);
	encrypt(&b, &k, &ad, "{\"a\":1}", NULL);
	cr_assert_eq(a.len, b.len);
	cr_assert_neq(memcmp(a.p, b.p, CIM_NONCE_BYTES), 0, "nonce repeated");
	encrypt(&c, &k, &ad, "{\"a\":1}", fixed_nonce);
	cr_assert_eq(memcmp(c.p, fixed_nonce, CIM_NONCE_BYTES), 0);
	cbuf_reset(&a);
	encrypt(&a, &k, &ad, "{\"a\":1}", fixed_nonce);
	cr_assert_eq(memcmp(a.p, c.p, c.len), 0, "not deterministic for a fixed nonce");
	cbuf_free(&a);
	cbuf_free(&b);
	cbuf_free(&c);
}

static void
refused(const cim_key *k, const cim_ad *ad, const uint8_t *enc, size_t len,
	const char *why_part)
{
	cbuf plain = CBUF_INIT;
	char err[200] = "";
	json_t *v = json_true();

	cbuf_puts(&plain, "kept");
	cr_assert_eq(cim_value_decrypt(&plain, k, ad, enc, len, err, sizeof err), -1);
	cr_assert_eq(plain.len, 4, "plain not left as it was");
	cr_assert_not_null(strstr(err, why_part), "message: %s", err);
	cr_assert_eq(cim_value_decrypt_json(&v, k, ad, enc, len, NULL, 0), -1);
	cr_assert_null(v);
	cr_assert_eq(cim_value_decrypt_text(&plain, k, ad, enc, len, NULL, 0), -1);
	cr_assert_eq(plain.len, 4);
	cbuf_free(&plain);
}

Test(crypt, every_tamper_wrong_key_and_wrong_place_refused)
{
	cim_key k, other;
	cim_ad ad = cim_ad_data("evt-1", 5);
	cbuf enc = CBUF_INIT;

	key_fill(&k, 1);
	key_fill(&other, 2);
	encrypt(&enc, &k, &ad, "{\"email\":\"alice@example.org\"}", fixed_nonce);
	/* one flipped bit anywhere: nonce, ciphertext, tag */
	for (size_t i = 0; i < enc.len; i++)
		for (int bit = 0; bit < 8; bit += 7) {
			enc.p[i] ^= (uint8_t)(1u << bit);
			refused(&k, &ad, enc.p, enc.len, "does not authenticate");
			enc.p[i] ^= (uint8_t)(1u << bit);
		}
	refused(&other, &ad, enc.p, enc.len, "does not authenticate");
	/* the same bytes anywhere else: another event id, or as state */
	cim_ad wrong = cim_ad_data("evt-2", 5);
	refused(&k, &wrong, enc.p, enc.len, "does not authenticate");
	wrong = cim_ad_data("evt-1\0", 6);
	refused(&k, &wrong, enc.p, enc.len, "does not authenticate");
	wrong = cim_ad_state("evt-1", 5, "x", 1);
	refused(&k, &wrong, enc.p, enc.len, "does not authenticate");
	/* cut short or lengthened */
	for (size_t n = 0; n < enc.len; n++)
		refused(&k, &ad, enc.p, n, n < CIM_ENC_OVERHEAD ? "shorter than"
								: "does not authenticate");
	cbuf_putc(&enc, 0);
	refused(&k, &ad, enc.p, enc.len, "does not authenticate");
	cbuf_free(&enc);
}

Test(crypt, plaintext_not_dag_cbor_refused)
{
	static const char *const bad[] = {
		"",                 /* nothing */
		"\x01\x02",         /* two values */
		"\x18\x01",         /* non-minimal integer */
		"\xa2\x61" "b\x01\x61" "a\x02", /* keys out of order */
		"\xf7",             /* undefined */
		"\x7f\x61" "a\xff", /* indefinite text */
	};
	static const size_t lens[] = {0, 2, 2, 7, 1, 4};
	cim_key k;
	cim_ad ad = cim_ad_state("t", 1, "i", 1);
	cbuf enc = CBUF_INIT;
	char err[200];

	key_fill(&k, 3);
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		cbuf_reset(&enc);
		cr_assert_eq(cim_value_encrypt_cbor(&enc, &k, &ad, (const uint8_t *)bad[i],
						    lens[i], NULL, err, sizeof err), 0);
		refused(&k, &ad, enc.p, enc.len, "not one valid DAG-CBOR value");
	}
	cbuf_free(&enc);
}

Test(crypt, event_ids_holding_nul)
{
	cim_key k;
	cim_ad a = cim_ad_data("a\0b", 3), b = cim_ad_data("a", 1);
	cim_ad c = cim_ad_data("a\0c", 3), d = cim_ad_data("\0", 1);
	cbuf enc = CBUF_INIT, plain = CBUF_INIT;
	char err[200];

	key_fill(&k, 4);
	encrypt(&enc, &k, &a, "{\"x\":1}", NULL);
	cr_assert_eq(cim_value_decrypt(&plain, &k, &a, enc.p, enc.len, err,
				       sizeof err), 0, "%s", err);
	/* nothing after the NUL is ignored */
	refused(&k, &b, enc.p, enc.len, "does not authenticate");
	refused(&k, &c, enc.p, enc.len, "does not authenticate");
	cbuf_reset(&enc);
	encrypt(&enc, &k, &d, "1", NULL);
	cbuf_reset(&plain);
	cr_assert_eq(cim_value_decrypt(&plain, &k, &d, enc.p, enc.len, err,
				       sizeof err), 0, "%s", err);
	cr_assert_eq(plain.len, 1);
	cbuf_free(&enc);
	cbuf_free(&plain);
}

Test(crypt, encrypt_refusals_leave_out_as_it_was)
{
	cim_key k;
	cim_ad bad = cim_ad_dek("a\0b", 3, "x", 1), ad = cim_ad_data("e", 1);
	cbuf out = CBUF_INIT;
	char err[200] = "";
	json_t *deep = json_array(), *v = json_integer(1);

	key_fill(&k, 5);
	cbuf_puts(&out, "kept");
	cr_assert_eq(cim_value_encrypt(&out, &k, &bad, v, NULL, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, "NUL"), "%s", err);
	cr_assert_eq(out.len, 4);
	for (int i = 0; i < CIM_MAX_DEPTH; i++) {
		json_t *outer = json_array();
		json_array_append_new(outer, deep);
		deep = outer;
	}
	cr_assert_eq(cim_value_encrypt(&out, &k, &ad, deep, NULL, err, sizeof err), -1);
	cr_assert_eq(out.len, 4);
	json_decref(deep);
	json_decref(v);
	cbuf_free(&out);
}
