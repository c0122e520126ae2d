/*
 * keys.c: key files (read and written by the rules of keys.h), Ed25519
 * signing keys from their seeds, and the did:key text of public keys
 * (base58btc, written here: 34 bytes are too few to want a library).
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cid.h"
#include "errors.h"
#include "keys.h"

#define HEX_LEN (2 * CIM_KEY_BYTES)
#define DIDKEY_LEN 34 /* 0xed 0x01 and the key */

static const char b58_alphabet[] =
	"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* ---- key files ------------------------------------------------------------ */

/* Reads up to cap bytes; the count read, or -1 with errno set. */
static ssize_t
read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

/* The content's checks; the buffer is the caller's to wipe. */
static int
parse_key_text(const char *path, const char *buf, size_t n,
	       uint8_t key[CIM_KEY_BYTES], char *err, size_t errsz)
{
	size_t bin_len = 0;

	if (n == HEX_LEN + 1 && buf[HEX_LEN] == '\n')
		n = HEX_LEN;
	if (n != HEX_LEN)
		return cim_errf(err, errsz,
				"key file %s: holds %s%zu bytes; a key file holds "
				"64 hexadecimal characters, optionally followed by "
				"a newline", path, n > HEX_LEN + 1 ? "more than " : "",
				n > HEX_LEN + 1 ? (size_t)HEX_LEN + 1 : n);
	for (size_t i = 0; i < HEX_LEN; i++) {
		char c = buf[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      (c >= 'A' && c <= 'F')))
			return cim_errf(err, errsz,
					"key file %s: character %zu is not a "
					"hexadecimal digit", path, i + 1);
	}
	if (sodium_hex2bin(key, CIM_KEY_BYTES, buf, HEX_LEN, NULL, &bin_len,
			   NULL) != 0 || bin_len != CIM_KEY_BYTES)
		return cim_errf(err, errsz, "key file %s: not 32 bytes of hex",
				path);
	return 0;
}

int
cim_keyfile_read(const char *path, uint8_t key[CIM_KEY_BYTES], char *err,
		 size_t errsz)
{
	char buf[HEX_LEN + 2];
	struct stat st;
	ssize_t n;
	int fd, rc = -1;

	sodium_memzero(key, CIM_KEY_BYTES);
	if (path == NULL || path[0] == '\0')
		return cim_errf(err, errsz, "key file: no path given");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cim_errf(err, errsz, "key file %s: %s", path,
				errno == ENOENT ? "does not exist"
						: strerror(errno));
	if (fstat(fd, &st) != 0) {
		cim_errf(err, errsz, "key file %s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		cim_errf(err, errsz, "key file %s: is not a regular file", path);
		goto done;
	}
	if (st.st_mode & 077) {
		cim_errf(err, errsz,
			 "key file %s: is open to others than its owner (mode "
			 "%04o); make it 0600 or 0400 (chmod 600 %s)",
			 path, (unsigned)(st.st_mode & 07777), path);
		goto done;
	}
	n = read_all(fd, buf, sizeof(buf));
	if (n < 0) {
		cim_errf(err, errsz, "key file %s: %s", path, strerror(errno));
		goto done;
	}
	rc = parse_key_text(path, buf, (size_t)n, key, err, errsz);
done:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	if (rc != 0)
		sodium_memzero(key, CIM_KEY_BYTES);
	return rc;
}

int
cim_keyfile_write(const char *path, const uint8_t key[CIM_KEY_BYTES],
		  char *err, size_t errsz)
{
	char text[HEX_LEN + 2];
	size_t off = 0;
	int fd, rc = -1;

	if (path == NULL || path[0] == '\0')
		return cim_errf(err, errsz, "key file: no path given");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
				O_NOCTTY, 0600);
	if (fd < 0)
		return cim_errf(err, errsz, "key file %s: %s", path,
				errno == EEXIST
					? "already exists; a key file is never "
					  "written over"
					: strerror(errno));
	sodium_bin2hex(text, sizeof(text), key, CIM_KEY_BYTES);
	text[HEX_LEN] = '\n';
	if (fchmod(fd, 0600) != 0) {
		cim_errf(err, errsz, "key file %s: %s", path, strerror(errno));
		goto done;
	}
	while (off < HEX_LEN + 1) {
		ssize_t w = write(fd, text + off, HEX_LEN + 1 - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			cim_errf(err, errsz, "key file %s: %s", path,
				 w < 0 ? strerror(errno) : "short write");
			goto done;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		cim_errf(err, errsz, "key file %s: %s", path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	sodium_memzero(text, sizeof(text));
	if (close(fd) != 0 && rc == 0)
		rc = cim_errf(err, errsz, "key file %s: %s", path,
			      strerror(errno));
	if (rc != 0)
		unlink(path);
	return rc;
}

/* ---- signing keys ---------------------------------------------------------- */

int
cim_signing_key_from_seed(cim_signing_key *k, const uint8_t seed[CIM_KEY_BYTES])
{
	if (cim_sodium_ready() == -1 ||
	    crypto_sign_seed_keypair(k->pk, k->sk, seed) != 0) {
		sodium_memzero(k, sizeof(*k));
		return -1;
	}
	cim_pubkey_to_text(k->pk, k->text);
	return 0;
}

cim_signing_key *
cim_signing_key_load(const char *path, char *err, size_t errsz)
{
	uint8_t seed[CIM_KEY_BYTES];
	cim_signing_key *k;

	if (cim_sodium_ready() == -1) {
		cim_errf(err, errsz, "libsodium cannot start");
		return NULL;
	}
	if (cim_keyfile_read(path, seed, err, errsz) != 0)
		return NULL;
	k = sodium_malloc(sizeof(*k));
	if (k == NULL) {
		sodium_memzero(seed, sizeof(seed));
		cim_errf(err, errsz, "key file %s: out of memory", path);
		return NULL;
	}
	if (cim_signing_key_from_seed(k, seed) != 0) {
		sodium_memzero(seed, sizeof(seed));
		sodium_free(k);
		cim_errf(err, errsz, "key file %s: not a usable Ed25519 seed",
			 path);
		return NULL;
	}
	sodium_memzero(seed, sizeof(seed));
	return k;
}

void
cim_signing_key_free(cim_signing_key *k)
{
	if (k != NULL)
		sodium_free(k); /* zeroes before freeing */
}

int
cim_signing_key_generate(const char *path, uint8_t pk[CIM_KEY_BYTES],
			 char *err, size_t errsz)
{
	uint8_t seed[CIM_KEY_BYTES], sk[64];
	int rc;

	if (cim_sodium_ready() == -1)
		return cim_errf(err, errsz, "libsodium cannot start");
	randombytes_buf(seed, sizeof(seed));
	rc = cim_keyfile_write(path, seed, err, errsz);
	if (rc == 0 && crypto_sign_seed_keypair(pk, sk, seed) != 0) {
		unlink(path);
		rc = cim_errf(err, errsz, "key file %s: cannot derive the "
				"public key", path);
	}
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

/* ---- public-key text --------------------------------------------------------- */

size_t
cim_pubkey_to_text(const uint8_t pk[CIM_KEY_BYTES], char *out)
{
	uint8_t in[DIDKEY_LEN], digits[64];
	size_t nd = 0, zeros = 0, n = 0;

	in[0] = 0xed;
	in[1] = 0x01;
	memcpy(in + 2, pk, CIM_KEY_BYTES);
	/* base 256 to base 58, most significant digit last in digits[] */
	for (size_t i = 0; i < DIDKEY_LEN; i++) {
		unsigned carry = in[i];

		for (size_t j = 0; j < nd; j++) {
			carry += (unsigned)digits[j] << 8;
			digits[j] = (uint8_t)(carry % 58);
			carry /= 58;
		}
		while (carry > 0) {
			digits[nd++] = (uint8_t)(carry % 58);
			carry /= 58;
		}
	}
	while (zeros < DIDKEY_LEN && in[zeros] == 0)
		zeros++; /* none here: in[0] is 0xed */
	out[n++] = 'z';
	for (size_t i = 0; i < zeros; i++)
		out[n++] = '1';
	while (nd > 0)
		out[n++] = b58_alphabet[digits[--nd]];
	out[n] = '\0';
	return n;
}

static int
b58_value(char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	p = strchr(b58_alphabet, c);
	return p == NULL ? -1 : (int)(p - b58_alphabet);
}

int
cim_pubkey_from_textn(uint8_t pk[CIM_KEY_BYTES], const char *s, size_t len)
{
	uint8_t out[DIDKEY_LEN]; /* big-endian, filled from the end */
	size_t used = 0;

	/* 'z' and at most 47 digits; a leading '1' would be a zero byte */
	if (s == NULL || len < 2 || len > 48 || s[0] != 'z' || s[1] == '1')
		return -1;
	memset(out, 0, sizeof(out));
	for (size_t i = 1; i < len; i++) {
		int v = b58_value(s[i]);
		unsigned carry;

		if (v < 0)
			return -1;
		carry = (unsigned)v;
		for (size_t j = 0; j < used || carry > 0; j++) {
			if (j == DIDKEY_LEN)
				return -1; /* more than 34 bytes */
			carry += (unsigned)out[DIDKEY_LEN - 1 - j] * 58;
			out[DIDKEY_LEN - 1 - j] = (uint8_t)(carry & 0xff);
			carry >>= 8;
			if (j + 1 > used)
				used = j + 1;
		}
	}
	if (used != DIDKEY_LEN || out[0] != 0xed || out[1] != 0x01)
		return -1;
	memcpy(pk, out + 2, CIM_KEY_BYTES);
	return 0;
}

int
cim_pubkey_from_text(uint8_t pk[CIM_KEY_BYTES], const char *s)
{
	return s == NULL ? -1 : cim_pubkey_from_textn(pk, s, strlen(s));
}
