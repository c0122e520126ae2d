/*
 * keys.h: key files and public-key texts (docs/protocol.md, "Keys").
 *
 * A key file holds 32 bytes as 64 hexadecimal characters, optionally
 * followed by one newline, and is readable by its owner only: the
 * signing_key (an Ed25519 seed, libsodium crypto_sign_seed_keypair) and
 * the master_key (32 random bytes) are both read with cim_keyfile_read.
 *
 * A public key is shown as text in the did:key form without "did:key:":
 * 'z' (multibase base58btc) followed by the base58btc of 0xed 0x01 and the
 * 32-byte Ed25519 public key, so it starts "z6Mk" and is 48 characters.
 *
 * Nothing secret ever reaches an error text here: messages name the file
 * and the reason, never a byte of the key. Every buffer that held a seed
 * or a secret key is wiped (sodium_memzero) before it is dropped.
 */
#ifndef CIM_PROTO_KEYS_H
#define CIM_PROTO_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIM_KEY_BYTES 32      /* a seed, a master key, a public key */
#define CIM_PUBKEY_TEXT_MAX 64 /* room for the text form and its NUL */

/* A signing key: libsodium's 64-byte secret key (seed, then public key),
 * the public key and its text. Keep it where it cannot be swapped or
 * dumped: cim_signing_key_load hands out one from sodium_malloc. */
typedef struct cim_signing_key {
	uint8_t sk[64];
	uint8_t pk[CIM_KEY_BYTES];
	char text[CIM_PUBKEY_TEXT_MAX];
} cim_signing_key;

/* Reads the key file at path into key. Refused, with a sentence in err
 * naming path and the reason: a file that is missing or unreadable, not a
 * regular file, readable or writable by its group or others (any of mode
 * 077), or whose content is not exactly 64 hexadecimal characters
 * optionally followed by one "\n". Returns 0, or -1 with key zeroed. */
int cim_keyfile_read(const char *path, uint8_t key[CIM_KEY_BYTES],
		     char *err, size_t errsz);

/* Writes key to a new file at path as 64 lower-case hex characters and a
 * newline, mode 0600, created with O_EXCL (never over an existing file,
 * nor through a symbolic link), synced before it is closed. On any
 * failure nothing is left at path. Returns 0, or -1 with err set. */
int cim_keyfile_write(const char *path, const uint8_t key[CIM_KEY_BYTES],
		      char *err, size_t errsz);

/* Fills k from a 32-byte seed (crypto_sign_seed_keypair). 0 or -1. */
int cim_signing_key_from_seed(cim_signing_key *k,
			      const uint8_t seed[CIM_KEY_BYTES]);

/* The signing key in the seed file at path (cim_keyfile_read's rules), in
 * memory from sodium_malloc (guarded, locked, left out of core dumps).
 * NULL with err set when the file is refused or memory runs out. Free it
 * with cim_signing_key_free. */
cim_signing_key *cim_signing_key_load(const char *path, char *err,
				      size_t errsz);
/* Wipes and frees what cim_signing_key_load gave; NULL is fine. */
void cim_signing_key_free(cim_signing_key *k);

/* Makes a new seed with randombytes_buf and writes it to a new file at
 * path (cim_keyfile_write's rules); fills pk with its public key. The
 * seed never leaves this function. Returns 0, or -1 with err set. */
int cim_signing_key_generate(const char *path, uint8_t pk[CIM_KEY_BYTES],
			     char *err, size_t errsz);

/* The text form of an Ed25519 public key, with its NUL, into out (at least
 * CIM_PUBKEY_TEXT_MAX bytes). Returns the text length (48). */
size_t cim_pubkey_to_text(const uint8_t pk[CIM_KEY_BYTES], char *out);

/* Parses the text form strictly: 'z', then only base58btc characters
 * decoding to exactly 34 bytes that start 0xed 0x01 (no leading '1's, no
 * "did:key:" prefix, no other multibase or key type). Returns 0 with the
 * 32 key bytes in pk, or -1. */
int cim_pubkey_from_text(uint8_t pk[CIM_KEY_BYTES], const char *s);
/* The same for text that is not NUL-terminated (len bytes). */
int cim_pubkey_from_textn(uint8_t pk[CIM_KEY_BYTES], const char *s,
			  size_t len);

#endif
