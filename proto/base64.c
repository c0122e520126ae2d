/*
 * base64.c: strict standard base64 (base64.h).
 */
#include <stdbool.h>

#include "base64.h"

static const char ALPHABET[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63, or 255 for a character outside the alphabet ('=' included). */
static const uint8_t value[256] = {
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
	 52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
	255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
	 15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
	255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
	 41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

int
cim_base64_encode(cbuf *out, const uint8_t *p, size_t len)
{
	size_t full = len / 3 * 3;
	char *o;

	if (cbuf_reserve(out, CIM_BASE64_LEN(len)) == -1)
		return -1;
	o = (char *)out->p + out->len;
	for (size_t i = 0; i < full; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = ALPHABET[v >> 18];
		*o++ = ALPHABET[v >> 12 & 63];
		*o++ = ALPHABET[v >> 6 & 63];
		*o++ = ALPHABET[v & 63];
	}
	if (len - full == 1) {
		uint32_t v = (uint32_t)p[full] << 16;
		*o++ = ALPHABET[v >> 18];
		*o++ = ALPHABET[v >> 12 & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (len - full == 2) {
		uint32_t v = (uint32_t)p[full] << 16 | (uint32_t)p[full + 1] << 8;
		*o++ = ALPHABET[v >> 18];
		*o++ = ALPHABET[v >> 12 & 63];
		*o++ = ALPHABET[v >> 6 & 63];
		*o++ = '=';
	}
	out->len += CIM_BASE64_LEN(len);
	return 0;
}

int
cim_base64_decode(uint8_t *dst, const char *text, size_t len, size_t *n)
{
	const unsigned char *t = (const unsigned char *)text;
	size_t pad = 0, o = 0;

	*n = 0;
	if (len % 4 != 0)
		return -1;
	if (len > 0 && t[len - 1] == '=')
		pad = len > 1 && t[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		uint8_t a = value[t[i]], b = value[t[i + 1]];
		uint8_t c = last && pad == 2 ? 0 : value[t[i + 2]];
		uint8_t d = last && pad >= 1 ? 0 : value[t[i + 3]];
		if ((a | b | c | d) & 0xc0)
			return -1;
		uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
		dst[o++] = (uint8_t)(v >> 16);
		if (last && pad == 2) {
			if (v & 0xffff)
				return -1; /* unused bits must be zero */
			break;
		}
		dst[o++] = (uint8_t)(v >> 8);
		if (last && pad == 1) {
			if (v & 0xff)
				return -1;
			break;
		}
		dst[o++] = (uint8_t)v;
	}
	*n = o;
	return 0;
}
