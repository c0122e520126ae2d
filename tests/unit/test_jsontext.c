/*
 * test_jsontext.c: compact JSON text with shortest exact floats.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsontext.h"

/* "1e<e>" */
static const char *h_exp10(int e)
{
	static char buf[16];
	snprintf(buf, sizeof buf, "1e%d", e);
	return buf;
}

static void same(const char *in, const char *want)
{
	json_error_t je;
	json_t *j = json_loads(in, JSON_DECODE_ANY, &je);
	cr_assert_not_null(j, "%s: %s", in, je.text);
	char *out = cim_json_text(j);
	cr_assert_not_null(out);
	cr_assert_str_eq(out, want, "%s", in);
	/* and it reads back to the same value */
	json_t *back = json_loads(out, JSON_DECODE_ANY, &je);
	cr_assert(json_equal(j, back), "%s does not read back as %s", out, in);
	json_decref(back);
	free(out);
	json_decref(j);
}

Test(jsontext, floats_take_the_fewest_digits_and_stay_floats)
{
	same("0.1", "0.1");
	same("2.0", "2.0");
	same("-0.25", "-0.25");
	same("100.0", "100.0");
	same("1e300", "1e+300");
	same("1.5e-7", "1.5e-07");
	same("0.30000000000000004", "0.30000000000000004");
	same("123456789012345678.0", "1.2345678901234568e+17");
}

/* The shortest precision as the writer first found it: every precision
 * from 1 up until one reads back. */
static int slow_prec(double d)
{
	char buf[40];
	int prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return prec;
}

/* What the writer must print for d, with the precision found slowly. */
static void slow_text(double d, char *out, size_t n)
{
	char *e;
	int prec = slow_prec(d);

	snprintf(out, n, "%.*g", prec, d);
	if ((e = strchr(out, 'e')) != NULL) {
		long x = strtol(e + 1, NULL, 10);
		if (x >= prec && x < 17)
			snprintf(out, n, "%.*g", (int)x + 1, d);
	}
	if (strpbrk(out, ".e") == NULL)
		strcat(out, ".0");
}

static void same_as_slow(double d)
{
	char want[48];
	cbuf b = CBUF_INIT;

	slow_text(d, want, sizeof want);
	cr_assert_eq(cim_json_write_real(&b, d), 0);
	cr_assert_eq(b.len, strlen(want), "%.17g: %.*s, not %s", d, (int)b.len, b.p, want);
	cr_assert_eq(memcmp(b.p, want, b.len), 0, "%.17g: %.*s, not %s", d, (int)b.len, b.p,
		     want);
	cbuf_free(&b);
}

/* The writer finds the shortest precision in one try where it can: the
 * text is the same as trying every precision from 1 up, for short
 * decimals, random bit patterns, powers of ten and two, subnormals and
 * the extremes. */
Test(jsontext, shortest_floats_match_trying_every_precision)
{
	static const double fixed[] = {
		0.0, -0.0, 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 129.95, 19.99, 89.97, 100.0, 1e15,
		1e16, 1e17, 1e22, 1e23, 123456789012345678.0, 9007199254740993.0, 5e-324,
		2.2250738585072014e-308, 2.2250738585072009e-308, 1.7976931348623157e308,
		-1.7976931348623157e308, 4.9406564584124654e-324, 0.30000000000000004,
		1.5e10, 1e-5, 123.456e-20, 0.000123, 10.5, 9.999999999999999e22,
	};
	uint64_t x = 0x9E3779B97F4A7C15ULL;

	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		same_as_slow(fixed[i]);
	for (int e = -330; e <= 308; e++) {
		same_as_slow(strtod(h_exp10(e), NULL)); /* 0 below the subnormals */
		same_as_slow(ldexp(1.0, e * 3 > 1023 ? 1023 : e * 3 < -1074 ? -1074 : e * 3));
	}
	for (int i = 0; i < 50000; i++) {
		double d;
		x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
		uint64_t bits = x * 0x2545F4914F6CDD1DULL;
		memcpy(&d, &bits, sizeof d);
		if (d != d || d - d != 0)
			continue; /* NaN and infinities are never written */
		same_as_slow(d);
		/* and decimals of a few digits, the common case */
		same_as_slow((double)(int64_t)(bits % 2000000) / 100.0);
		same_as_slow((double)(int64_t)(bits % 100000) * 1e-7);
	}
}

Test(jsontext, integers_strings_and_containers)
{
	same("9223372036854775807", "9223372036854775807");
	same("-9223372036854775808", "-9223372036854775808");
	same("{\"b\": [1, true, null, false], \"a\": {}}", "{\"b\":[1,true,null,false],\"a\":{}}");
	same("\"q\\\"b\\\\n\\n\\t\\u0001\"", "\"q\\\"b\\\\n\\n\\t\\u0001\"");
	same("\"\\u00e9\\u65e5\"", "\"\xc3\xa9\xe6\x97\xa5\"");
}

Test(jsontext, appends_to_what_the_buffer_holds)
{
	cbuf b = CBUF_INIT;
	json_t *j = json_pack("[i f]", 1, 0.5);

	cr_assert_eq(cbuf_puts(&b, "x="), 0);
	cr_assert_eq(cim_json_write(&b, j), 0);
	cr_assert_eq(b.len, strlen("x=[1,0.5]"));
	cr_assert_eq(memcmp(b.p, "x=[1,0.5]", b.len), 0);
	cr_assert_null(cim_json_text(NULL));
	json_decref(j);
	cbuf_free(&b);
}

/* Strings long enough for the 8-byte fast paths, with a character that
 * needs escaping (or a multi-byte one) at every offset, come out exactly as
 * jansson's own encoder writes them. */
Test(jsontext, escapes_at_every_offset_match_jansson)
{
	static const char *const specials[] = {"\"", "\\", "\n", "\x01", "\x1f", "\t",
					       "\xc3\xa9", "\xe6\x97\xa5", " ", "/"};
	char buf[64];

	for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++)
		for (size_t at = 0; at < 40; at++) {
			memset(buf, 'a', sizeof buf);
			size_t sl = strlen(specials[k]);
			memcpy(buf + at, specials[k], sl);
			buf[48] = '\0';
			json_t *j = json_string(buf);
			cr_assert_not_null(j);
			char *ours = cim_json_text(j);
			char *theirs = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
			/* jansson writes \u001F where we write \u001f: the
			 * same JSON; anything else must be identical */
			cr_assert_eq(strcasecmp(ours, theirs), 0, "special %zu at %zu: %s vs %s",
				     k, at, ours, theirs);
			json_t *back = json_loads(ours, JSON_DECODE_ANY, NULL);
			cr_assert(json_equal(back, j), "special %zu at %zu reads back", k, at);
			json_decref(back);
			free(ours);
			free(theirs);
			json_decref(j);
		}
}
