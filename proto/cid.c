/*
 * cid.c: CIDv1 in binary and text form, and the two multihashes the store
 * uses (blake2b-256 and sha2-256, both from libsodium).
 *
 * Binary layout (multiformats): varint version (1), varint codec, varint
 * multihash code, varint digest length, digest. Varints are unsigned
 * LEB128, at most 9 bytes (63 bits), and must be minimal, so every CID has
 * exactly one binary form and equality is byte equality. The text form is
 * 'b' followed by RFC 4648 base32, lower case, unpadded; the decoder
 * accepts nothing else (no upper case, no padding, no stray bits), so the
 * text form is unique too.
 */
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

#include "cid.h"

#define DIGEST_MAX 64

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

/* sodium_init() is idempotent and thread-safe; the flag only saves the
 * call (and its lock) once it has succeeded. */
int
cim_sodium_ready(void)
{
	static atomic_bool ready;

	if (atomic_load(&ready))
		return 0;
	if (sodium_init() < 0)
		return -1;
	atomic_store(&ready, true);
	return 0;
}

size_t
cim_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	if (v >> 63)
		return 0;
	do {
		p[n] = v & 0x7f;
		v >>= 7;
		if (v)
			p[n] |= 0x80;
		n++;
	} while (v);
	return n;
}

int
cim_varint_get(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t r = 0;
	size_t i;

	for (i = 0; i < CIM_VARINT_MAX; i++) {
		uint8_t c;

		if (*off + i >= len)
			return -1;
		c = p[*off + i];
		r |= (uint64_t)(c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			if (c == 0 && i > 0)
				return -1; /* a trailing zero group */
			*off += i + 1;
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Hashes data with mh into digest; returns the digest length or 0 for an
 * unsupported multihash. */
static size_t
digest(uint64_t mh, const uint8_t *data, size_t len, uint8_t *out)
{
	if (cim_sodium_ready() == -1)
		return 0;
	switch (mh) {
	case CIM_MH_BLAKE2B_256:
		crypto_generichash(out, 32, data, len, NULL, 0);
		return 32;
	case CIM_MH_SHA2_256:
		crypto_hash_sha256(out, data, len);
		return 32;
	default:
		return 0;
	}
}

/* Parses the CIDv1 at the start of b[0..len): its digest starts at *doff
 * and has *dlen bytes, which must all be there. */
static int
parse_prefix(const uint8_t *b, size_t len, uint64_t *codec, uint64_t *mh,
	     size_t *doff, uint64_t *dlen)
{
	uint64_t version;
	size_t off = 0;

	if (cim_varint_get(b, len, &off, &version) == -1 || version != 1)
		return -1;
	if (cim_varint_get(b, len, &off, codec) == -1 ||
	    cim_varint_get(b, len, &off, mh) == -1 ||
	    cim_varint_get(b, len, &off, dlen) == -1)
		return -1;
	if (*dlen > len - off)
		return -1;
	*doff = off;
	return 0;
}

/* Parses b[0..len) as exactly one CIDv1. */
static int
parse(const uint8_t *b, size_t len, uint64_t *codec, uint64_t *mh,
      size_t *doff, uint64_t *dlen)
{
	if (parse_prefix(b, len, codec, mh, doff, dlen) == -1 ||
	    *dlen != len - *doff)
		return -1;
	return 0;
}

int
cim_hash_from_name(const char *name, uint64_t *mh)
{
	uint64_t code;

	if (name == NULL)
		return -1;
	if (strcmp(name, "blake2b-256") == 0)
		code = CIM_MH_BLAKE2B_256;
	else if (strcmp(name, "sha2-256") == 0)
		code = CIM_MH_SHA2_256;
	else
		return -1;
	if (mh != NULL)
		*mh = code;
	return 0;
}

const char *
cim_hash_name(uint64_t mh)
{
	switch (mh) {
	case CIM_MH_BLAKE2B_256:
		return "blake2b-256";
	case CIM_MH_SHA2_256:
		return "sha2-256";
	default:
		return NULL;
	}
}

int
cim_cid_compute(cim_cid *out, uint64_t codec, uint64_t mh,
		const uint8_t *data, size_t len)
{
	uint8_t d[DIGEST_MAX];
	size_t n = 0, dn, k;

	dn = digest(mh, data, len, d);
	if (dn == 0)
		return -1;
	if ((k = cim_varint_put(out->b, 1)) == 0)
		return -1;
	n += k;
	if ((k = cim_varint_put(out->b + n, codec)) == 0)
		return -1;
	n += k;
	if ((k = cim_varint_put(out->b + n, mh)) == 0)
		return -1;
	n += k;
	n += cim_varint_put(out->b + n, dn);
	memcpy(out->b + n, d, dn);
	out->len = (uint8_t)(n + dn);
	return 0;
}

int
cim_cid_from_bytes(cim_cid *out, const uint8_t *b, size_t len)
{
	uint64_t codec, mh, dlen;
	size_t doff;

	if (b == NULL || len == 0 || len > CIM_CID_MAX)
		return -1;
	if (parse(b, len, &codec, &mh, &doff, &dlen) == -1)
		return -1;
	memcpy(out->b, b, len);
	out->len = (uint8_t)len;
	return 0;
}

int
cim_cid_from_prefix(cim_cid *out, const uint8_t *b, size_t len, size_t *used)
{
	uint64_t codec, mh, dlen;
	size_t doff;

	if (b == NULL || len == 0 ||
	    parse_prefix(b, len, &codec, &mh, &doff, &dlen) == -1 ||
	    doff + dlen > CIM_CID_MAX)
		return -1;
	memcpy(out->b, b, doff + dlen);
	out->len = (uint8_t)(doff + dlen);
	*used = doff + dlen;
	return 0;
}

int
cim_cid_from_text(cim_cid *out, const char *s)
{
	uint8_t b[CIM_CID_MAX];
	size_t n;

	if (s == NULL || s[0] != 'b')
		return -1;
	if (cim_base32_decode(s + 1, strlen(s + 1), b, sizeof(b), &n) == -1)
		return -1;
	return cim_cid_from_bytes(out, b, n);
}

size_t
cim_cid_to_text(const cim_cid *c, char *out)
{
	out[0] = 'b';
	return 1 + cim_base32_encode(c->b, c->len, out + 1);
}

bool
cim_cid_equal(const cim_cid *a, const cim_cid *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

int
cim_cid_info(const cim_cid *c, uint64_t *codec, uint64_t *mh)
{
	uint64_t cd, h, dlen;
	size_t doff;

	if (c->len == 0 || c->len > CIM_CID_MAX ||
	    parse(c->b, c->len, &cd, &h, &doff, &dlen) == -1)
		return -1;
	if (codec != NULL)
		*codec = cd;
	if (mh != NULL)
		*mh = h;
	return 0;
}

bool
cim_cid_matches(const cim_cid *c, const uint8_t *data, size_t len)
{
	uint8_t d[DIGEST_MAX];
	uint64_t codec, mh, dlen;
	size_t doff, dn;

	if (c->len == 0 || c->len > CIM_CID_MAX ||
	    parse(c->b, c->len, &codec, &mh, &doff, &dlen) == -1)
		return false;
	dn = digest(mh, data, len, d);
	return dn != 0 && dn == dlen && memcmp(c->b + doff, d, dn) == 0;
}

size_t
cim_base32_encode(const uint8_t *in, size_t len, char *out)
{
	uint32_t acc = 0;
	size_t i, n = 0;
	int bits = 0;

	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[n++] = b32_alphabet[(acc >> bits) & 0x1f];
		}
	}
	if (bits > 0)
		out[n++] = b32_alphabet[(acc << (5 - bits)) & 0x1f];
	out[n] = '\0';
	return n;
}

static int
b32_value(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

int
cim_base32_decode(const char *in, size_t len, uint8_t *out, size_t cap,
		  size_t *outlen)
{
	uint32_t acc = 0;
	size_t i, n = 0;
	int bits = 0;

	/* 1, 3 or 6 characters past a full group cannot end a byte string. */
	switch (len % 8) {
	case 1:
	case 3:
	case 6:
		return -1;
	}
	for (i = 0; i < len; i++) {
		int v = b32_value(in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 5) | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap)
				return -1;
			out[n++] = (acc >> bits) & 0xff;
		}
	}
	if (acc & ((1u << bits) - 1))
		return -1; /* stray bits after the last byte */
	*outlen = n;
	return 0;
}
