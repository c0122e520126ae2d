/*
 * test_seal.c: Ed25519 against RFC 8032 (tests/vectors/car/ed25519.json),
 * seals made by node's Ed25519 (OpenSSL) that ours must verify and
 * reproduce byte for byte, the Cim-Seal text, and the seal block against
 * @ipld/dag-cbor's encoding.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "dagcbor.h"
#include "seal.h"
#include "vectors.h"

static const char *
str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	cr_assert_not_null(s, "no \"%s\"", k);
	return s;
}

Test(seal, rfc8032_vectors_with_libsodium)
{
	json_t *root = t_load_vectors("car/ed25519.json", "rfc8032"), *c;
	size_t i, n, mlen;

	cr_assert_eq(cim_sodium_ready(), 0);
	json_array_foreach(json_object_get(root, "rfc8032"), i, c) {
		uint8_t *seed = t_unhex(str(c, "seed"), &n);
		uint8_t *pk = t_unhex(str(c, "public_key"), &n);
		uint8_t *msg = t_unhex(str(c, "message"), &mlen);
		uint8_t *sig = t_unhex(str(c, "signature"), &n);
		uint8_t mine[64];
		cim_signing_key k;

		cr_assert_eq(cim_signing_key_from_seed(&k, seed), 0);
		cr_assert_eq(memcmp(k.pk, pk, 32), 0, "%s: public key", str(c, "name"));
		cr_assert_eq(crypto_sign_detached(mine, NULL, msg, mlen, k.sk), 0);
		cr_assert_eq(memcmp(mine, sig, 64), 0, "%s: signature", str(c, "name"));
		cr_assert_eq(crypto_sign_verify_detached(sig, msg, mlen, pk), 0);
		sig[63] ^= 0x10;
		cr_assert_neq(crypto_sign_verify_detached(sig, msg, mlen, pk), 0);
		sodium_memzero(&k, sizeof(k));
		free(seed), free(pk), free(msg), free(sig);
	}
	cr_assert_eq(i, 4);
	json_decref(root);
}

Test(seal, node_seals_verify_and_reproduce)
{
	json_t *root = t_load_vectors("car/ed25519.json", "seals"), *c;
	size_t i, n;

	json_array_foreach(json_object_get(root, "seals"), i, c) {
		uint8_t *seed = t_unhex(str(c, "seed"), &n);
		uint8_t *msg = t_unhex(str(c, "message"), &n);
		uint8_t *sig = t_unhex(str(c, "signature"), &n);
		uint8_t *blk = t_unhex(str(c, "seal_block"), &n);
		uint8_t mine[64], m[CIM_SEAL_MSG_MAX], pk[32];
		char text[CIM_SEAL_TEXT_MAX], ct[CIM_CID_TEXT_MAX], err[256];
		cim_seal_block sb, back;
		cim_cid cid, bcid;
		cim_signing_key k;
		cbuf b = CBUF_INIT;
		size_t blen = n, mlen;

		cr_assert_eq(cim_cid_from_text(&cid, str(c, "event_cid")), 0);
		cr_assert_eq(cim_signing_key_from_seed(&k, seed), 0);
		cr_assert_str_eq(k.text, str(c, "key"));
		/* the signed bytes */
		mlen = cim_seal_message(&cid, m);
		cr_assert_eq(memcmp(m, msg, mlen), 0);
		cr_assert_eq(mlen, 19 + cid.len);
		/* ours equal node's, both ways verified */
		cr_assert_eq(cim_seal_sign(&k, &cid, mine), 0);
		cr_assert_eq(memcmp(mine, sig, 64), 0, "case %zu", i);
		cr_assert(cim_seal_verify(k.pk, &cid, sig));
		/* the header text */
		cr_assert_eq(cim_seal_sig_to_text(sig, text), 88);
		cr_assert_str_eq(text, str(c, "seal_text"));
		memset(mine, 0, sizeof(mine));
		cr_assert_eq(cim_seal_sig_from_text(mine, text, 88), 0);
		cr_assert_eq(memcmp(mine, sig, 64), 0);
		cr_assert_eq(cim_seal_check_headers(k.text, strlen(k.text), text, 88,
						    &cid, pk, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(memcmp(pk, k.pk, 32), 0);
		/* the seal block, byte for byte, and its CID */
		sb.cid = cid;
		memcpy(sb.pk, k.pk, 32);
		memcpy(sb.sig, sig, 64);
		cr_assert_eq(cim_seal_block_encode(&sb, &b), 0);
		cr_assert_eq(b.len, blen);
		cr_assert_eq(memcmp(b.p, blk, blen), 0, "seal block %zu", i);
		cr_assert_eq(cim_cid_compute(&bcid, CIM_CODEC_DAG_CBOR,
					     CIM_MH_BLAKE2B_256, b.p, b.len), 0);
		cim_cid_to_text(&bcid, ct);
		cr_assert_str_eq(ct, str(c, "seal_block_cid"));
		cr_assert_eq(cim_seal_block_decode(blk, blen, &back, err, sizeof(err)),
			     0, "%s", err);
		cr_assert(cim_cid_equal(&back.cid, &cid));
		cr_assert_eq(memcmp(back.pk, k.pk, 32), 0);
		cr_assert_eq(memcmp(back.sig, sig, 64), 0);
		/* another CID, another key: no */
		cid.b[cid.len - 1] ^= 1;
		cr_assert_not(cim_seal_verify(k.pk, &cid, sig));
		cr_assert_eq(cim_seal_check_headers(k.text, strlen(k.text), text, 88,
						    &cid, NULL, err, sizeof(err)), -1);
		cr_assert_not_null(strstr(err, "does not verify"), "%s", err);
		cbuf_free(&b);
		sodium_memzero(&k, sizeof(k));
		free(seed), free(msg), free(sig), free(blk);
	}
	cr_assert_eq(i, 12);
	json_decref(root);
}

Test(seal, header_text_is_strict)
{
	uint8_t sig[64], back[64];
	char text[CIM_SEAL_TEXT_MAX], bad[CIM_SEAL_TEXT_MAX + 4];

	randombytes_buf(sig, sizeof(sig));
	cim_seal_sig_to_text(sig, text);
	cr_assert_eq(text[86], '=');
	cr_assert_eq(text[87], '=');
	cr_assert_eq(cim_seal_sig_from_text(back, text, 88), 0);
	/* without its padding, shorter, longer */
	cr_assert_eq(cim_seal_sig_from_text(back, text, 86), -1);
	cr_assert_eq(cim_seal_sig_from_text(back, text, 87), -1);
	snprintf(bad, sizeof(bad), "%s=", text);
	cr_assert_eq(cim_seal_sig_from_text(back, bad, 89), -1);
	/* stray bits in the last character before the padding */
	memcpy(bad, text, 89);
	bad[85] = 'B'; /* 000001: a bit past the 64th byte */
	cr_assert_eq(cim_seal_sig_from_text(back, bad, 88), -1);
	/* URL-safe alphabet, whitespace */
	memcpy(bad, text, 89);
	bad[10] = '-';
	cr_assert_eq(cim_seal_sig_from_text(back, bad, 88), -1);
	memcpy(bad, text, 89);
	bad[10] = ' ';
	cr_assert_eq(cim_seal_sig_from_text(back, bad, 88), -1);
	memcpy(bad, text, 89);
	bad[86] = 'A';
	cr_assert_eq(cim_seal_sig_from_text(back, bad, 88), -1);
	cr_assert_eq(cim_seal_sig_from_text(back, NULL, 88), -1);
}

Test(seal, check_headers_names_what_failed)
{
	uint8_t seed[32] = {1}, sig[64];
	char text[CIM_SEAL_TEXT_MAX], err[256];
	cim_signing_key k, other;
	cim_cid cid;

	cr_assert_eq(cim_signing_key_from_seed(&k, seed), 0);
	seed[0] = 2;
	cr_assert_eq(cim_signing_key_from_seed(&other, seed), 0);
	cr_assert_eq(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_SHA2_256,
				     (const uint8_t *)"x", 1), 0);
	cr_assert_eq(cim_seal_sign(&k, &cid, sig), 0);
	cim_seal_sig_to_text(sig, text);
	cr_assert_eq(cim_seal_check_headers(k.text, 48, text, 88, &cid, NULL, err,
					    sizeof(err)), 0);
	cr_assert_eq(cim_seal_check_headers(other.text, 48, text, 88, &cid, NULL,
					    err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "does not verify"), "%s", err);
	cr_assert_eq(cim_seal_check_headers("z6Mk", 4, text, 88, &cid, NULL, err,
					    sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "Cim-Seal-Key"), "%s", err);
	cr_assert_eq(cim_seal_check_headers(k.text, 48, text, 80, &cid, NULL, err,
					    sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "Cim-Seal is not"), "%s", err);
	cr_assert_eq(cim_seal_check_headers(NULL, 0, NULL, 0, &cid, NULL, err,
					    sizeof(err)), -1);
}

/* A seal block's bytes with one change, decoded: refused with want. */
static void
block_refused(const uint8_t *p, size_t len, const char *want)
{
	cim_seal_block sb;
	char err[256] = "";

	cr_assert_eq(cim_seal_block_decode(p, len, &sb, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, want), "want '%s' in: %s", want, err);
	cr_assert(sodium_is_zero((const unsigned char *)&sb, sizeof(sb)));
}

Test(seal, block_decoder_is_strict)
{
	uint8_t seed[32] = {7};
	cim_signing_key k;
	cim_seal_block sb;
	cbuf b = CBUF_INIT, x = CBUF_INIT;
	uint8_t *p;

	cr_assert_eq(cim_signing_key_from_seed(&k, seed), 0);
	cr_assert_eq(cim_cid_compute(&sb.cid, CIM_CODEC_DAG_CBOR,
				     CIM_MH_BLAKE2B_256, (const uint8_t *)"e", 1), 0);
	memcpy(sb.pk, k.pk, 32);
	cr_assert_eq(cim_seal_sign(&k, &sb.cid, sb.sig), 0);
	cr_assert_eq(cim_seal_block_encode(&sb, &b), 0);
	p = malloc(b.len + 1);
	cr_assert_not_null(p);

	block_refused(b.p, b.len - 1, "ends early");
	memcpy(p, b.p, b.len);
	p[b.len] = 0;
	block_refused(p, b.len + 1, "trailing bytes");
	memcpy(p, b.p, b.len);
	p[0] = 0xa4;
	block_refused(p, b.len, "4 keys, not 3");
	p[0] = 0x83;
	block_refused(p, b.len, "not a map");
	memcpy(p, b.p, b.len);
	p[2] = 'x'; /* "cid" -> "xid" */
	block_refused(p, b.len, "unexpected key");
	/* the key text changed to another multicodec: 'z6Mk' -> 'z6LS' */
	memcpy(p, b.p, b.len);
	{
		uint8_t *kt = memmem(p, b.len, "z6Mk", 4);

		cr_assert_not_null(kt);
		kt[2] = 'L';
		kt[3] = 'S';
	}
	block_refused(p, b.len, "key is not an Ed25519 public key");
	/* sig of 63 bytes */
	cim_cbor_write_map_head(&x, 3);
	cim_cbor_write_text(&x, "cid", 3);
	cim_cbor_write_link(&x, &sb.cid);
	cim_cbor_write_text(&x, "key", 3);
	cim_cbor_write_text(&x, k.text, strlen(k.text));
	cim_cbor_write_text(&x, "sig", 3);
	cim_cbor_write_bytes(&x, sb.sig, 63);
	block_refused(x.p, x.len, "sig is not 64 bytes");
	/* keys out of order */
	cbuf_reset(&x);
	cim_cbor_write_map_head(&x, 3);
	cim_cbor_write_text(&x, "key", 3);
	cim_cbor_write_text(&x, k.text, strlen(k.text));
	cim_cbor_write_text(&x, "cid", 3);
	cim_cbor_write_link(&x, &sb.cid);
	cim_cbor_write_text(&x, "sig", 3);
	cim_cbor_write_bytes(&x, sb.sig, 64);
	block_refused(x.p, x.len, "unexpected key \"key\" where \"cid\"");
	/* cid as text, not a link */
	cbuf_reset(&x);
	cim_cbor_write_map_head(&x, 3);
	cim_cbor_write_text(&x, "cid", 3);
	cim_cbor_write_text(&x, "bafy", 4);
	block_refused(x.p, x.len, "expected a link");
	cbuf_free(&x);
	cbuf_free(&b);
	free(p);
}
