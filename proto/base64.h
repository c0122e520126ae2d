/*
 * base64.h: standard base64 (RFC 4648 section 4, with padding), strict,
 * for bulk data that is not secret (the ciphertexts of the decrypt
 * operation): table driven, several times faster than libsodium's
 * constant-time codec, which keys and signatures keep using.
 */
#ifndef CIM_PROTO_BASE64_H
#define CIM_PROTO_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The text length of n bytes. */
#define CIM_BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* Appends the base64 text of p[0..len) to out. 0, or -1 when memory runs
 * out (out as it was). */
int cim_base64_encode(cbuf *out, const uint8_t *p, size_t len);

/* Decodes text[0..len) into dst (room for len / 4 * 3 bytes) and sets
 * *n. Strict: a length that is a multiple of 4, the standard alphabet,
 * '=' only as the last one or two characters, and unused bits zero, so
 * that every byte string has exactly one text. 0, or -1. */
int cim_base64_decode(uint8_t *dst, const char *text, size_t len, size_t *n);

#endif
