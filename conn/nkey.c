/*
 * nkey.c: user NKeys (see nkey.h), with libsodium's ed25519.
 */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nkey.h"

#define PREFIX_SEED (18 << 3) /* 'S' */
#define PREFIX_USER (20 << 3) /* 'U' */

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static uint16_t crc16(const unsigned char *p, size_t n)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int k = 0; k < 8; k++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

static void encode(const unsigned char *p, size_t n, char *out)
{
	unsigned buf = 0;
	int bits = 0;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		buf = (buf << 8) | p[i];
		bits += 8;
		while (bits >= 5) {
			out[k++] = b32[(buf >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[k++] = b32[(buf << (5 - bits)) & 31];
	out[k] = '\0';
}

/* Decodes len characters; the bytes count, or -1. */
static int decode(const char *s, size_t len, unsigned char *out, size_t max)
{
	unsigned buf = 0;
	int bits = 0;
	size_t k = 0;

	for (size_t i = 0; i < len; i++) {
		const char *c = strchr(b32, s[i]);
		if (s[i] == '\0' || c == NULL)
			return -1;
		buf = (buf << 5) | (unsigned)(c - b32);
		bits += 5;
		if (bits >= 8) {
			if (k == max)
				return -1;
			out[k++] = (unsigned char)(buf >> (bits - 8));
			bits -= 8;
		}
	}
	return (int)k;
}

/* Appends the CRC and encodes. */
static void encode_checked(unsigned char *raw, size_t n, char *out)
{
	uint16_t crc = crc16(raw, n);
	raw[n] = (unsigned char)(crc & 0xff);
	raw[n + 1] = (unsigned char)(crc >> 8);
	encode(raw, n + 2, out);
}

static void public_text(const unsigned char pk[32], char *pub)
{
	unsigned char raw[35];
	raw[0] = PREFIX_USER;
	memcpy(raw + 1, pk, 32);
	encode_checked(raw, 33, pub);
}

int nkey_user_from_raw(const unsigned char seed32[32], char *seed, char *pub)
{
	unsigned char raw[36], pk[32], sk[64];

	if (sodium_init() < 0)
		return -1;
	raw[0] = PREFIX_SEED | (PREFIX_USER >> 5);
	raw[1] = (PREFIX_USER & 31) << 3;
	memcpy(raw + 2, seed32, 32);
	encode_checked(raw, 34, seed);
	crypto_sign_seed_keypair(pk, sk, seed32);
	public_text(pk, pub);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(raw, sizeof raw);
	return 0;
}

int nkey_public_from_seed(const char *seed, char *pub)
{
	unsigned char raw[40], pk[32], sk[64];
	int n = decode(seed, NKEY_SEED_LEN, raw, sizeof raw);
	int ok = n == 36 && (raw[0] & 0xf8) == PREFIX_SEED &&
		 (((raw[0] & 7) << 5) | (raw[1] >> 3)) == PREFIX_USER &&
		 crc16(raw, 34) == (uint16_t)(raw[34] | raw[35] << 8);

	if (ok && sodium_init() >= 0) {
		crypto_sign_seed_keypair(pk, sk, raw + 2);
		public_text(pk, pub);
		sodium_memzero(sk, sizeof sk);
	}
	sodium_memzero(raw, sizeof raw);
	return ok ? 0 : -1;
}

int nkey_public_from_seed_file(const char *path, char *pub, char *err, size_t errlen)
{
	char line[512];
	FILE *f = fopen(path, "r");
	int rc = -1;

	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while (rc != 0 && fgets(line, sizeof line, f) != NULL) {
		char *p = line + strspn(line, " \t");
		if (strncmp(p, "SU", 2) == 0 && strlen(p) >= NKEY_SEED_LEN &&
		    strchr(" \t\r\n", p[NKEY_SEED_LEN]) != NULL)
			rc = nkey_public_from_seed(p, pub);
	}
	sodium_memzero(line, sizeof line);
	fclose(f);
	if (rc != 0)
		snprintf(err, errlen, "%s holds no valid user NKey seed (a line 'SU...', "
			 "58 characters)", path);
	return rc;
}
