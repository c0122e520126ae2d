/*
 * jsontext.c: JSON values as compact text, floats in their shortest exact
 * form, for the daemon's replies and the client alike.
 *
 * jansson prints every float with 17 significant digits, so 0.1 comes out
 * as 0.10000000000000001. That is exact but not what anyone wrote. Here
 * each float gets the fewest digits that read back to the same double, and
 * keeps a decimal point or an exponent so it stays a float (2.0, 1e+100).
 * Everything else prints as jansson would print it compact: object members
 * in their order, text as UTF-8 with only the escapes JSON requires (keys
 * and strings in full: U+0000 is written \u0000).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"

/* The writer keeps going after running out of memory and reports it once
 * at the end, so the code below needs no error paths. */
struct out {
	cbuf *b;
	bool oom;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (!o->oom && cbuf_put(o->b, s, n) != 0)
		o->oom = true;
}

static void
put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Whether any of the 8 bytes at p is below 0x20, '"' or '\\' (the bytes
 * JSON makes us escape), tested all at once. */
static bool
needs_escape8(const char *p)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t w, q, b;

	memcpy(&w, p, 8);
	q = w ^ (ones * '"');
	b = w ^ (ones * '\\');
	return (((w - ones * 0x20) & ~w) |
		((q - ones) & ~q) |
		((b - ones) & ~b)) & highs;
}

/* A JSON string; s is valid UTF-8 (jansson checked it) and may hold NULs. */
static void
put_text(struct out *o, const char *s, size_t n)
{
	size_t run = 0;

	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch;
		char esc[8];

		while (i + 8 <= n && !needs_escape8(s + i))
			i += 8;
		if (i >= n)
			break;
		ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		put(o, s + run, i - run);
		run = i + 1;
		switch (ch) {
		case '"':
			put(o, "\\\"", 2);
			break;
		case '\\':
			put(o, "\\\\", 2);
			break;
		case '\b':
			put(o, "\\b", 2);
			break;
		case '\f':
			put(o, "\\f", 2);
			break;
		case '\n':
			put(o, "\\n", 2);
			break;
		case '\r':
			put(o, "\\r", 2);
			break;
		case '\t':
			put(o, "\\t", 2);
			break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			put(o, esc, 6);
		}
	}
	put(o, s + run, n - run);
	put(o, "\"", 1);
}

/* The fewest significant digits that read back to d; plain notation up
 * to 17 integer digits (100.0, not 1e+02), as jansson would write it. */
/* Significant digits of a %g rendering: from its first nonzero digit to
 * its last, before any exponent (at least 1). */
static int
significant(const char *s)
{
	int n = 0, zeros = 0;
	bool started = false;

	for (; *s != '\0' && *s != 'e' && *s != 'E'; s++) {
		if (*s < '0' || *s > '9')
			continue; /* sign, decimal point */
		if (*s == '0' && !started)
			continue;
		started = true;
		if (*s == '0') {
			zeros++;
		} else {
			n += zeros + 1;
			zeros = 0;
		}
	}
	return n > 0 ? n : 1;
}

/* d as %.{prec}g, prec being the fewest significant digits (1 to 17) whose
 * correctly rounded form reads back as d: the smallest prec for which
 * strtod("%.{prec}g") == d. For a normal double (or zero) it is found with
 * one try at 15 digits: every decimal of at most 15 digits survives a trip
 * through a double (DBL_DIG), so if the 15-digit form reads back, no
 * shorter precision reads back unless it gives the same digits, and prec
 * is the number of digits that form has; and the form itself is what
 * %.{prec}g prints (the same digits, trailing zeros dropped), except that
 * %g writes an exponent from 10^prec on where %.15g does from 10^15 (the
 * caller writes those in full below 10^17 anyway). If it does not read
 * back, no precision up to 15 does. Subnormals try every precision from
 * 1 up. */
static int
shortest_form(double d, char *buf, size_t n)
{
	int prec;

	if (d == 0 || (d == d && (d > 2.2250738585072014e-308 || d < -2.2250738585072014e-308))) {
		snprintf(buf, n, "%.15g", d);
		if (strtod(buf, NULL) == d)
			return significant(buf);
		snprintf(buf, n, "%.16g", d);
		if (strtod(buf, NULL) == d)
			return 16;
		snprintf(buf, n, "%.17g", d);
		return 17;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	snprintf(buf, n, "%.*g", prec, d);
	return prec;
}

static void
put_real(struct out *o, double d)
{
	char buf[40], *e;
	int prec = shortest_form(d, buf, sizeof(buf));

	if ((e = strchr(buf, 'e')) != NULL) {
		long x = strtol(e + 1, NULL, 10);

		if (x >= prec && x < 17)
			snprintf(buf, sizeof(buf), "%.*g", (int)x + 1, d);
	}
	/* Whatever the locale's decimal point, JSON's is '.'. */
	for (char *p = buf; *p != '\0'; p++)
		if (strchr("0123456789+-eE", *p) == NULL)
			*p = '.';
	if (strpbrk(buf, ".e") == NULL)
		strcat(buf, ".0");
	put_str(o, buf);
}

static void
put_value(struct out *o, const json_t *j)
{
	char buf[32];
	const char *key;
	size_t klen;
	json_t *v;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		put(o, "{", 1);
		i = 0;
		json_object_keylen_foreach((json_t *)j, key, klen, v)
		{
			if (i++ > 0)
				put(o, ",", 1);
			put_text(o, key, klen);
			put(o, ":", 1);
			put_value(o, v);
		}
		put(o, "}", 1);
		break;
	case JSON_ARRAY:
		put(o, "[", 1);
		json_array_foreach(j, i, v)
		{
			if (i > 0)
				put(o, ",", 1);
			put_value(o, v);
		}
		put(o, "]", 1);
		break;
	case JSON_STRING:
		put_text(o, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(j));
		put_str(o, buf);
		break;
	case JSON_REAL:
		put_real(o, json_real_value(j));
		break;
	case JSON_TRUE:
		put_str(o, "true");
		break;
	case JSON_FALSE:
		put_str(o, "false");
		break;
	case JSON_NULL:
		put_str(o, "null");
		break;
	}
}

int
cim_json_write(cbuf *out, const json_t *j)
{
	struct out o = {out, false};
	size_t len = out->len;

	put_value(&o, j);
	if (o.oom) {
		out->len = len;
		return -1;
	}
	return 0;
}

int
cim_json_write_string(cbuf *out, const char *s, size_t len)
{
	struct out o = {out, false};
	size_t mark = out->len;

	put_text(&o, s, len);
	if (o.oom) {
		out->len = mark;
		return -1;
	}
	return 0;
}

int
cim_json_write_real(cbuf *out, double d)
{
	struct out o = {out, false};
	size_t mark = out->len;

	put_real(&o, d);
	if (o.oom) {
		out->len = mark;
		return -1;
	}
	return 0;
}

int
cim_json_write_int(cbuf *out, int64_t v)
{
	char buf[24], *e = buf + sizeof(buf), *d = e;
	/* The magnitude as unsigned, so INT64_MIN needs no special case. */
	uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--d = (char)('0' + m % 10);
		m /= 10;
	} while (m != 0);
	if (v < 0)
		*--d = '-';
	return cbuf_put(out, d, (size_t)(e - d));
}

char *
cim_json_text(const json_t *j)
{
	cbuf b = CBUF_INIT;

	if (j == NULL || cim_json_write(&b, j) != 0 || cbuf_terminate(&b) != 0) {
		cbuf_free(&b);
		return NULL;
	}
	return (char *)b.p;
}


size_t
cim_json_quote(char *out, size_t outsz, const char *s, size_t len)
{
	cbuf b = CBUF_INIT;
	struct out o = {&b, false};
	size_t n = len, w;

	if (outsz == 0)
		return 0;
	/* at most 40 bytes of s, cut where a UTF-8 sequence starts */
	if (n > 40) {
		n = 40;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	put_text(&o, s, n);
	if (o.oom) {
		snprintf(out, outsz, "\"?\"");
		cbuf_free(&b);
		return strlen(out);
	}
	if (n < len && b.len > 0)
		b.len--; /* the closing quote, after the ... below */
	w = snprintf(out, outsz, "%.*s%s", (int)b.len, (const char *)b.p,
		     n < len ? "...\"" : "");
	cbuf_free(&b);
	return w < outsz ? w : outsz - 1;
}
