/*
 * crypt.c: keys in guarded memory, the associated data of each encrypted
 * thing, and XChaCha20-Poly1305 (IETF) over it, with libsodium.
 *
 * Every encryption goes through cim_aead_seal and every decryption through
 * cim_aead_open, which build the AD from its parts (cim_ad_write) so that
 * no caller can get its bytes wrong. Values (event data, snapshot state)
 * are their DAG-CBOR encoding, checked again after decryption with the
 * strict reader, so a value that decrypts is one any reader accepts.
 * Plaintext buffers made here are wiped before they are freed.
 */
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "dagcbor.h"
#include "errors.h"

/* ---- keys ------------------------------------------------------------------ */

cim_key *
cim_key_alloc(size_t n)
{
	cim_key *k;

	/* sodium_malloc needs sodium_init (it learns the page size there) */
	if (n == 0 || cim_sodium_ready() == -1)
		return NULL;
	k = sodium_allocarray(n, sizeof *k);
	if (k != NULL)
		sodium_memzero(k, n * sizeof *k);
	return k;
}

void
cim_key_free(cim_key *k, size_t n)
{
	if (k == NULL)
		return;
	sodium_memzero(k, n * sizeof *k);
	sodium_free(k); /* wipes the whole region again as it unlocks it */
}

void
cim_key_wipe(cim_key *k)
{
	sodium_memzero(k, sizeof *k);
}

int
cim_key_generate(cim_key *k)
{
	if (cim_sodium_ready() == -1) {
		cim_key_wipe(k);
		return -1;
	}
	randombytes_buf(k->b, sizeof k->b);
	return 0;
}

/* ---- associated data ------------------------------------------------------- */

static const char *const ad_prefix[] = {
	[CIM_AD_DEK] = "cim-events-dek-v1",
	[CIM_AD_DATA] = "cim-events-data-v1",
	[CIM_AD_STATE] = "cim-events-state-v1",
};

cim_ad
cim_ad_dek(const char *type, size_t type_len, const char *id, size_t id_len)
{
	return (cim_ad){CIM_AD_DEK, type, type_len, id, id_len};
}

cim_ad
cim_ad_data(const char *event_id, size_t event_id_len)
{
	return (cim_ad){CIM_AD_DATA, event_id, event_id_len, NULL, 0};
}

cim_ad
cim_ad_state(const char *type, size_t type_len, const char *id, size_t id_len)
{
	return (cim_ad){CIM_AD_STATE, type, type_len, id, id_len};
}

/* Why ad cannot be used, or NULL when it can. */
static const char *
ad_refusal(const cim_ad *ad)
{
	if ((unsigned)ad->kind > CIM_AD_STATE)
		return "unknown kind of associated data";
	if (ad->a == NULL || ad->alen == 0)
		return ad->kind == CIM_AD_DATA ? "the event_id is empty"
					       : "the aggregate type is empty";
	if (ad->kind == CIM_AD_DATA)
		return NULL;
	if (memchr(ad->a, '\0', ad->alen) != NULL)
		return "the aggregate type holds a NUL";
	if (ad->b == NULL || ad->blen == 0)
		return "the aggregate id is empty";
	return NULL;
}

int
cim_ad_write(cbuf *out, const cim_ad *ad)
{
	size_t start = out->len;
	const char *pre;

	if (ad_refusal(ad) != NULL)
		return -1;
	pre = ad_prefix[ad->kind];
	if (cbuf_put(out, pre, strlen(pre) + 1) == -1 || /* with its NUL */
	    cbuf_put(out, ad->a, ad->alen) == -1)
		goto nomem;
	if (ad->kind != CIM_AD_DATA &&
	    (cbuf_putc(out, 0) == -1 || cbuf_put(out, ad->b, ad->blen) == -1))
		goto nomem;
	return 0;
nomem:
	out->len = start;
	return -1;
}

/* The AD's bytes in a new buffer a. 0, or -1 with err set. */
static int
ad_bytes(cbuf *a, const cim_ad *ad, char *err, size_t errsz)
{
	const char *why = ad_refusal(ad);

	if (why != NULL)
		return cim_errf(err, errsz, "cannot encrypt or decrypt: %s", why);
	if (cim_ad_write(a, ad) == -1)
		return cim_errf(err, errsz, "out of memory");
	return 0;
}

/* ---- the AEAD ---------------------------------------------------------------- */

void
cim_xchacha_seal(uint8_t *ct, const cim_key *k, const uint8_t *ad,
		 size_t adlen, const uint8_t nonce[CIM_NONCE_BYTES],
		 const uint8_t *plain, size_t plen)
{
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, plain, plen, ad,
						   adlen, NULL, nonce, k->b);
}

int
cim_xchacha_open(uint8_t *plain, const cim_key *k, const uint8_t *ad,
		 size_t adlen, const uint8_t nonce[CIM_NONCE_BYTES],
		 const uint8_t *ct, size_t ctlen)
{
	if (ctlen < CIM_TAG_BYTES)
		return -1;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, ct,
						       ctlen, ad, adlen, nonce,
						       k->b) == 0)
		return 0;
	if (plain != NULL)
		sodium_memzero(plain, ctlen - CIM_TAG_BYTES);
	return -1;
}

int
cim_aead_seal(uint8_t *ct, const cim_key *k, const cim_ad *ad,
	      const uint8_t nonce[CIM_NONCE_BYTES], const uint8_t *plain,
	      size_t plen, char *err, size_t errsz)
{
	cbuf a = CBUF_INIT;

	if (ad_bytes(&a, ad, err, errsz) == -1)
		return -1;
	cim_xchacha_seal(ct, k, a.p, a.len, nonce, plain, plen);
	cbuf_free(&a);
	return 0;
}

int
cim_aead_open(uint8_t *plain, const cim_key *k, const cim_ad *ad,
	      const uint8_t nonce[CIM_NONCE_BYTES], const uint8_t *ct,
	      size_t ctlen, char *err, size_t errsz)
{
	cbuf a = CBUF_INIT;
	int rc;

	if (ctlen < CIM_TAG_BYTES)
		return cim_errf(err, errsz, "the ciphertext is %zu bytes, shorter "
				"than its %d-byte tag", ctlen, CIM_TAG_BYTES);
	if (ad_bytes(&a, ad, err, errsz) == -1)
		return -1;
	rc = cim_xchacha_open(plain, k, a.p, a.len, nonce, ct, ctlen);
	cbuf_free(&a);
	if (rc != 0)
		return cim_errf(err, errsz, "the ciphertext does not authenticate "
				"(a wrong key, another place, or altered bytes)");
	return 0;
}

/* ---- values -------------------------------------------------------------------- */

/* Wipes everything b ever held in its current allocation, then frees it. */
static void
wipe_free(cbuf *b)
{
	if (b->p != NULL)
		sodium_memzero(b->p, b->cap);
	cbuf_free(b);
}

int
cim_value_encrypt_cbor(cbuf *out, const cim_key *k, const cim_ad *ad,
		       const uint8_t *plain, size_t plen, const uint8_t *nonce,
		       char *err, size_t errsz)
{
	uint8_t *n;

	if (cbuf_reserve(out, CIM_ENC_OVERHEAD + plen) == -1)
		return cim_errf(err, errsz, "out of memory");
	n = out->p + out->len;
	if (nonce != NULL) {
		memcpy(n, nonce, CIM_NONCE_BYTES);
	} else {
		if (cim_sodium_ready() == -1)
			return cim_errf(err, errsz, "libsodium cannot start");
		randombytes_buf(n, CIM_NONCE_BYTES);
	}
	if (cim_aead_seal(n + CIM_NONCE_BYTES, k, ad, n, plain, plen, err,
			  errsz) == -1)
		return -1;
	out->len += CIM_ENC_OVERHEAD + plen;
	return 0;
}

int
cim_value_encrypt(cbuf *out, const cim_key *k, const cim_ad *ad,
		  const json_t *v, const uint8_t *nonce, char *err,
		  size_t errsz)
{
	cbuf plain = CBUF_SECRET; /* wiped as it grows */
	int rc;

	rc = cim_cbor_write_json(&plain, v, CIM_MAX_DEPTH, err, errsz);
	if (rc == 0)
		rc = cim_value_encrypt_cbor(out, k, ad, plain.p, plain.len,
					    nonce, err, errsz);
	wipe_free(&plain);
	return rc;
}

int
cim_value_decrypt(cbuf *plain, const cim_key *k, const cim_ad *ad,
		  const uint8_t *enc, size_t len, char *err, size_t errsz)
{
	cim_cbor_reader r;
	uint8_t *p;
	size_t n;

	if (len < CIM_ENC_OVERHEAD)
		return cim_errf(err, errsz, "the encrypted value is %zu bytes, "
				"shorter than a nonce and a tag (%d)", len,
				CIM_ENC_OVERHEAD);
	n = len - CIM_ENC_OVERHEAD;
	if (cbuf_reserve(plain, n + 1) == -1)
		return cim_errf(err, errsz, "out of memory");
	p = plain->p + plain->len;
	if (cim_aead_open(p, k, ad, enc, enc + CIM_NONCE_BYTES,
			  len - CIM_NONCE_BYTES, err, errsz) == -1)
		return -1;
	/* The strict reader's own message could quote the value; say less. */
	cim_cbor_reader_init(&r, p, n);
	if (n == 0 || cim_cbor_skip(&r, CIM_MAX_DEPTH) == -1 || r.pos != n) {
		sodium_memzero(p, n);
		return cim_errf(err, errsz, "the decrypted value is not one valid "
				"DAG-CBOR value");
	}
	plain->len += n;
	return 0;
}

int
cim_value_decrypt_json(json_t **out, const cim_key *k, const cim_ad *ad,
		       const uint8_t *enc, size_t len, char *err, size_t errsz)
{
	cbuf plain = CBUF_SECRET;
	int rc;

	*out = NULL;
	rc = cim_value_decrypt(&plain, k, ad, enc, len, err, errsz);
	if (rc == 0 && cim_cbor_decode_json(plain.p, plain.len, CIM_MAX_DEPTH,
					    out, NULL, 0) == -1)
		rc = cim_errf(err, errsz, "out of memory");
	wipe_free(&plain);
	return rc;
}

int
cim_value_decrypt_text(cbuf *text, const cim_key *k, const cim_ad *ad,
		       const uint8_t *enc, size_t len, char *err, size_t errsz)
{
	cbuf plain = CBUF_SECRET;
	cim_cbor_reader r;
	int rc;

	rc = cim_value_decrypt(&plain, k, ad, enc, len, err, errsz);
	if (rc == 0) {
		cim_cbor_reader_init(&r, plain.p, plain.len);
		if (cim_cbor_read_json_text(&r, CIM_MAX_DEPTH, text) == -1)
			rc = cim_errf(err, errsz, "out of memory");
	}
	wipe_free(&plain);
	return rc;
}
