/*
 * nkey.h: NATS NKeys for users, as much of the format as the daemon needs
 * to log in with a seed file: a seed ("SU...", 58 characters) is base32
 * (RFC 4648, no padding) of two prefix bytes, the 32-byte ed25519 seed and
 * a CRC-16 (XMODEM, little-endian); the public key ("U...", 56
 * characters) is the same over one prefix byte and the 32-byte public key.
 */
#ifndef CIM_DAEMON_NKEY_H
#define CIM_DAEMON_NKEY_H

#include <stddef.h>

#define NKEY_SEED_LEN 58
#define NKEY_PUBLIC_LEN 56

/* The user public key of a seed's text into pub[NKEY_PUBLIC_LEN + 1].
 * 0, or -1 when the text is not a user seed (bad characters, prefix or
 * checksum). */
int nkey_public_from_seed(const char *seed, char *pub);
/* Reads the first user seed in the file at path (a seed alone, or among
 * other lines as nsc writes them) and gives its public key. 0, or -1 with
 * a sentence in err. */
int nkey_public_from_seed_file(const char *path, char *pub, char *err, size_t errlen);
/* The texts of a user seed made from 32 bytes of seed (for tests and key
 * generation): seed[NKEY_SEED_LEN + 1], pub[NKEY_PUBLIC_LEN + 1]. 0 or -1. */
int nkey_user_from_raw(const unsigned char raw[32], char *seed, char *pub);

#endif
