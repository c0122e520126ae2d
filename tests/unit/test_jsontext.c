/*
 * test_jsontext.c: compact JSON text with shortest exact floats.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsontext.h"

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
