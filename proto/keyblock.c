/*
 * keyblock.c: wrapping a data key under the master key, and the four-key
 * block that stores it.
 *
 * The block's keys have a fixed canonical order (length first: nonce,
 * wrapped, aggregate_id, aggregate_type), so they are written in that order
 * and read back with the strict reader, which refuses any other order; each
 * value must then be of its exact type and length.
 */
#include <string.h>

#include <sodium.h>

#include "dagcbor.h"
#include "errors.h"
#include "keyblock.h"

enum { K_NONCE, K_WRAPPED, K_AGGREGATE_ID, K_AGGREGATE_TYPE, NKEYS };

static const char *const keys[NKEYS] = {
	"nonce", "wrapped", "aggregate_id", "aggregate_type"
};

static bool
tokens_ok(const char *type, const char *id)
{
	return cim_token_type_ok(type) && cim_token_id_ok(id);
}

int
cim_key_wrap(cim_wrapped_key *w, const cim_key *master, const cim_key *dek,
	     const char *type, const char *id, const uint8_t *nonce,
	     char *err, size_t errsz)
{
	cim_ad ad;

	memset(w, 0, sizeof *w);
	if (!tokens_ok(type, id))
		return cim_errf(err, errsz, "cannot wrap a data key: the aggregate "
				"type or id is not a valid token");
	strcpy(w->aggregate_type, type);
	strcpy(w->aggregate_id, id);
	if (nonce != NULL) {
		memcpy(w->nonce, nonce, CIM_NONCE_BYTES);
	} else {
		if (cim_sodium_ready() == -1) {
			memset(w, 0, sizeof *w);
			return cim_errf(err, errsz, "libsodium cannot start");
		}
		randombytes_buf(w->nonce, CIM_NONCE_BYTES);
	}
	ad = cim_ad_dek(type, strlen(type), id, strlen(id));
	if (cim_aead_seal(w->wrapped, master, &ad, w->nonce, dek->b,
			  CIM_KEY_BYTES, err, errsz) == -1) {
		memset(w, 0, sizeof *w);
		return -1;
	}
	return 0;
}

int
cim_key_unwrap(cim_key *dek, const cim_key *master, const cim_wrapped_key *w,
	       char *err, size_t errsz)
{
	size_t tlen = strnlen(w->aggregate_type, sizeof w->aggregate_type);
	size_t ilen = strnlen(w->aggregate_id, sizeof w->aggregate_id);
	cim_ad ad;

	/* a struct filled by hand must still hold two tokens */
	if (tlen == sizeof w->aggregate_type || ilen == sizeof w->aggregate_id ||
	    !tokens_ok(w->aggregate_type, w->aggregate_id)) {
		cim_key_wipe(dek);
		return cim_errf(err, errsz, "cannot unwrap a data key: the aggregate "
				"type or id is not a valid token");
	}
	ad = cim_ad_dek(w->aggregate_type, tlen, w->aggregate_id, ilen);
	if (cim_aead_open(dek->b, master, &ad, w->nonce, w->wrapped,
			  CIM_WRAPPED_BYTES, err, errsz) == -1) {
		cim_key_wipe(dek);
		return -1;
	}
	return 0;
}

static int
put_key(cbuf *out, int k)
{
	return cim_cbor_write_text(out, keys[k], strlen(keys[k]));
}

int
cim_keyblock_encode(cbuf *out, const cim_wrapped_key *w, char *err,
		    size_t errsz)
{
	size_t start = out->len;

	if (memchr(w->aggregate_type, '\0', sizeof w->aggregate_type) == NULL ||
	    memchr(w->aggregate_id, '\0', sizeof w->aggregate_id) == NULL ||
	    !tokens_ok(w->aggregate_type, w->aggregate_id))
		return cim_errf(err, errsz, "the key block's aggregate type or id "
				"is not a valid token");
	if (cim_cbor_write_map_head(out, NKEYS) == -1 ||
	    put_key(out, K_NONCE) == -1 ||
	    cim_cbor_write_bytes(out, w->nonce, CIM_NONCE_BYTES) == -1 ||
	    put_key(out, K_WRAPPED) == -1 ||
	    cim_cbor_write_bytes(out, w->wrapped, CIM_WRAPPED_BYTES) == -1 ||
	    put_key(out, K_AGGREGATE_ID) == -1 ||
	    cim_cbor_write_text(out, w->aggregate_id,
				strlen(w->aggregate_id)) == -1 ||
	    put_key(out, K_AGGREGATE_TYPE) == -1 ||
	    cim_cbor_write_text(out, w->aggregate_type,
				strlen(w->aggregate_type)) == -1) {
		out->len = start;
		return cim_errf(err, errsz, "out of memory");
	}
	return 0;
}

/* Reads key k and its value into w. 0, or -1 with a sentence in why. */
static int
read_field(cim_cbor_reader *r, cim_cbor_keys *ks, int k, cim_wrapped_key *w,
	   const char **why)
{
	cim_cbor_item key, v;
	size_t max;
	char *dst;

	if (cim_cbor_next_key(r, ks, &key) == -1) {
		*why = r->err;
		return -1;
	}
	if (key.len != strlen(keys[k]) || memcmp(key.data, keys[k], key.len) != 0) {
		*why = k == K_NONCE ? "its first key is not \"nonce\""
		     : k == K_WRAPPED ? "its second key is not \"wrapped\""
		     : k == K_AGGREGATE_ID ? "its third key is not \"aggregate_id\""
		     : "its fourth key is not \"aggregate_type\"";
		return -1;
	}
	if (cim_cbor_next(r, &v) == -1) {
		*why = r->err;
		return -1;
	}
	switch (k) {
	case K_NONCE:
	case K_WRAPPED:
		max = k == K_NONCE ? CIM_NONCE_BYTES : CIM_WRAPPED_BYTES;
		if (v.kind != CIM_CBOR_BYTES || v.len != max) {
			*why = k == K_NONCE ? "nonce is not 24 bytes"
					    : "wrapped is not 48 bytes";
			return -1;
		}
		memcpy(k == K_NONCE ? w->nonce : w->wrapped, v.data, v.len);
		return 0;
	default:
		dst = k == K_AGGREGATE_ID ? w->aggregate_id : w->aggregate_type;
		max = k == K_AGGREGATE_ID ? CIM_ID_MAX : CIM_TYPE_MAX;
		if (v.kind != CIM_CBOR_TEXT || v.len == 0 || v.len > max ||
		    memchr(v.data, '\0', v.len) != NULL) {
			*why = k == K_AGGREGATE_ID ? "aggregate_id is not a valid id"
						   : "aggregate_type is not a valid type";
			return -1;
		}
		memcpy(dst, v.data, v.len);
		dst[v.len] = '\0';
		if (k == K_AGGREGATE_ID ? !cim_token_id_ok(dst)
					: !cim_token_type_ok(dst)) {
			*why = k == K_AGGREGATE_ID ? "aggregate_id is not a valid id"
						   : "aggregate_type is not a valid type";
			return -1;
		}
		return 0;
	}
}

int
cim_keyblock_decode(cim_wrapped_key *w, const uint8_t *p, size_t len,
		    char *err, size_t errsz)
{
	cim_cbor_keys ks = CIM_CBOR_KEYS_INIT;
	cim_cbor_reader r;
	cim_cbor_item it;
	const char *why = NULL;

	memset(w, 0, sizeof *w);
	cim_cbor_reader_init(&r, p, len);
	if (cim_cbor_next(&r, &it) == -1)
		why = r.err;
	else if (it.kind != CIM_CBOR_MAP || it.u != NKEYS)
		why = "it is not a map of four keys";
	for (int k = 0; why == NULL && k < NKEYS; k++)
		read_field(&r, &ks, k, w, &why);
	if (why == NULL && r.pos != len)
		why = "bytes follow the map";
	if (why == NULL)
		return 0;
	memset(w, 0, sizeof *w);
	return cim_errf(err, errsz, "not a valid key block: %s", why);
}
