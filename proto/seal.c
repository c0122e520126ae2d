/*
 * seal.c: signing and verifying seals (libsodium's Ed25519), their header
 * text (libsodium's base64, ORIGINAL variant) and the seal block
 * (proto/dagcbor.c's writer and reader).
 */
#include <sodium.h>
#include <string.h>

#include "dagcbor.h"
#include "errors.h"
#include "seal.h"

size_t
cim_seal_message(const cim_cid *cid, uint8_t *out)
{
	/* sizeof counts the NUL: it is the 0x00 separator */
	memcpy(out, CIM_SEAL_DOMAIN, sizeof(CIM_SEAL_DOMAIN));
	memcpy(out + sizeof(CIM_SEAL_DOMAIN), cid->b, cid->len);
	return sizeof(CIM_SEAL_DOMAIN) + cid->len;
}

int
cim_seal_sign(const cim_signing_key *k, const cim_cid *cid,
	      uint8_t sig[CIM_SEAL_SIG_BYTES])
{
	uint8_t msg[CIM_SEAL_MSG_MAX];
	size_t n;

	if (cid->len == 0 || cim_sodium_ready() == -1)
		return -1;
	n = cim_seal_message(cid, msg);
	return crypto_sign_detached(sig, NULL, msg, n, k->sk) == 0 ? 0 : -1;
}

bool
cim_seal_verify(const uint8_t pk[CIM_KEY_BYTES], const cim_cid *cid,
		const uint8_t sig[CIM_SEAL_SIG_BYTES])
{
	uint8_t msg[CIM_SEAL_MSG_MAX];
	size_t n;

	if (cid->len == 0 || cid->len > CIM_CID_MAX ||
	    cim_sodium_ready() == -1)
		return false;
	n = cim_seal_message(cid, msg);
	return crypto_sign_verify_detached(sig, msg, n, pk) == 0;
}

size_t
cim_seal_sig_to_text(const uint8_t sig[CIM_SEAL_SIG_BYTES], char *out)
{
	sodium_bin2base64(out, CIM_SEAL_TEXT_MAX, sig, CIM_SEAL_SIG_BYTES,
			  sodium_base64_VARIANT_ORIGINAL);
	return CIM_SEAL_TEXT_LEN;
}

int
cim_seal_sig_from_text(uint8_t sig[CIM_SEAL_SIG_BYTES], const char *s,
		       size_t len)
{
	const char *end = NULL;
	size_t n = 0;

	if (s == NULL || len != CIM_SEAL_TEXT_LEN)
		return -1;
	/* no characters ignored; padding and trailing bits checked */
	if (sodium_base642bin(sig, CIM_SEAL_SIG_BYTES, s, len, NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n != CIM_SEAL_SIG_BYTES || end != s + len)
		return -1;
	return 0;
}

int
cim_seal_check_headers(const char *key_text, size_t key_len,
		       const char *sig_text, size_t sig_len,
		       const cim_cid *cid, uint8_t pk[CIM_KEY_BYTES],
		       char *err, size_t errsz)
{
	uint8_t k[CIM_KEY_BYTES], sig[CIM_SEAL_SIG_BYTES];

	if (key_text == NULL || cim_pubkey_from_textn(k, key_text, key_len))
		return cim_errf(err, errsz, "Cim-Seal-Key is not an Ed25519 "
				"public key text (z6Mk...)");
	if (sig_text == NULL || cim_seal_sig_from_text(sig, sig_text, sig_len))
		return cim_errf(err, errsz, "Cim-Seal is not the base64 of a "
				"64-byte signature");
	if (!cim_seal_verify(k, cid, sig))
		return cim_errf(err, errsz, "the seal does not verify under "
				"its key");
	if (pk != NULL)
		memcpy(pk, k, CIM_KEY_BYTES);
	return 0;
}

/* ---- the seal block ------------------------------------------------------------ */

int
cim_seal_block_encode(const cim_seal_block *s, cbuf *out)
{
	char text[CIM_PUBKEY_TEXT_MAX];
	size_t start = out->len, n = cim_pubkey_to_text(s->pk, text);

	/* the three keys have one length: bytewise order */
	if (cim_cbor_write_map_head(out, 3) == -1 ||
	    cim_cbor_write_text(out, "cid", 3) == -1 ||
	    cim_cbor_write_link(out, &s->cid) == -1 ||
	    cim_cbor_write_text(out, "key", 3) == -1 ||
	    cim_cbor_write_text(out, text, n) == -1 ||
	    cim_cbor_write_text(out, "sig", 3) == -1 ||
	    cim_cbor_write_bytes(out, s->sig, CIM_SEAL_SIG_BYTES) == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

static int
seal_fail(char *err, size_t errsz, const char *why)
{
	return cim_errf(err, errsz, "undecodable seal block: %s", why);
}

int
cim_seal_block_decode(const uint8_t *p, size_t len, cim_seal_block *s,
		      char *err, size_t errsz)
{
	cim_cbor_reader r;
	cim_cbor_item it;

	memset(s, 0, sizeof(*s));
	cim_cbor_reader_init(&r, p, len);
	if (cim_cbor_next(&r, &it) == -1)
		goto bad;
	if (it.kind != CIM_CBOR_MAP)
		return seal_fail(err, errsz, "the block is not a map");
	if (it.u != 3)
		return cim_errf(err, errsz, "undecodable seal block: the block "
				"has %llu keys, not 3", (unsigned long long)it.u);
	if (cim_cbor_expect_key(&r, "cid") == -1 ||
	    cim_cbor_read_link(&r, &s->cid) == -1 ||
	    cim_cbor_expect_key(&r, "key") == -1 || cim_cbor_next(&r, &it) == -1)
		goto bad;
	if (it.kind != CIM_CBOR_TEXT ||
	    cim_pubkey_from_textn(s->pk, (const char *)it.data, it.len) == -1) {
		memset(s, 0, sizeof(*s));
		return seal_fail(err, errsz, "key is not an Ed25519 public key "
				 "text (z6Mk...)");
	}
	if (cim_cbor_expect_key(&r, "sig") == -1 || cim_cbor_next(&r, &it) == -1)
		goto bad;
	if (it.kind != CIM_CBOR_BYTES || it.len != CIM_SEAL_SIG_BYTES) {
		memset(s, 0, sizeof(*s));
		return seal_fail(err, errsz, "sig is not 64 bytes");
	}
	memcpy(s->sig, it.data, CIM_SEAL_SIG_BYTES);
	if (r.pos != len) {
		memset(s, 0, sizeof(*s));
		return cim_errf(err, errsz, "undecodable seal block: %zu "
				"trailing bytes after the block", len - r.pos);
	}
	return 0;
bad:
	memset(s, 0, sizeof(*s));
	return seal_fail(err, errsz, r.err);
}
