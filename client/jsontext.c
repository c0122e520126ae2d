/*
 * jsontext.c: JSON values as compact text, floats in their shortest exact
 * form.
 *
 * jansson prints every float with 17 significant digits, so 0.1 comes out
 * as 0.10000000000000001. That is exact but not what anyone wrote. Here
 * each float gets the fewest digits that read back to the same double, and
 * keeps a decimal point or an exponent so it stays a float (2.0, 1e+100).
 * Everything else prints as jansson would print it compact: object members
 * in their order, text as UTF-8 with only the escapes JSON requires.
 *
 * Also here: the helpers that read members of a reply, each failing with
 * CIM_ERR_BAD_REPLY and a sentence that names the member.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

struct out {
	char *p;
	size_t len;
	size_t cap;
	bool oom;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 64;
		char *p;

		while (cap < o->len + n + 1)
			cap *= 2;
		if ((p = realloc(o->p, cap)) == NULL) {
			o->oom = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A JSON string; s is valid UTF-8 (jansson checked it) and may hold NULs. */
static void
put_text(struct out *o, const char *s, size_t n)
{
	size_t run = 0;

	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[8];

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
static void
put_real(struct out *o, double d)
{
	char buf[40], *e;
	int prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	snprintf(buf, sizeof(buf), "%.*g", prec, d);
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
	json_t *v;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		put(o, "{", 1);
		i = 0;
		json_object_foreach((json_t *)j, key, v)
		{
			if (i++ > 0)
				put(o, ",", 1);
			put_text(o, key, strlen(key));
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

char *
cimc_dump(const json_t *j)
{
	struct out o = {NULL, 0, 0, false};

	if (j == NULL)
		return NULL;
	put_value(&o, j);
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	return o.p;
}

/* ---- reading members of a reply ------------------------------------------ */

cim_err
cimc_get_u64(const json_t *obj, const char *what, const char *key,
	     uint64_t *out, cim_error *err)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the %s's \"%s\" is missing or not an "
				 "unsigned integer",
				 what, key);
	*out = (uint64_t)json_integer_value(v);
	return CIM_ERR_OK;
}

static const char *
str_member(const json_t *obj, const char *what, const char *key, bool null_ok,
	   bool *is_null, cim_error *err)
{
	const json_t *v = json_object_get(obj, key);

	*is_null = false;
	if (json_is_string(v))
		return json_string_value(v);
	if (null_ok && (v == NULL || json_is_null(v))) {
		*is_null = true;
		return NULL;
	}
	cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
		  "the %s's \"%s\" is missing or not text", what, key);
	return NULL;
}

cim_err
cimc_get_str(const json_t *obj, const char *what, const char *key, bool null_ok,
	     char **out, cim_error *err)
{
	bool is_null;
	const char *s = str_member(obj, what, key, null_ok, &is_null, err);
	char *d;

	if (is_null) {
		*out = NULL;
		return CIM_ERR_OK;
	}
	if (s == NULL)
		return CIM_ERR_BAD_REPLY;
	if ((d = cimc_strdup(s)) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	*out = d;
	return CIM_ERR_OK;
}

cim_err
cimc_get_strbuf(const json_t *obj, const char *what, const char *key,
		bool null_ok, char *buf, size_t size, cim_error *err)
{
	bool is_null;
	const char *s = str_member(obj, what, key, null_ok, &is_null, err);

	if (is_null) {
		buf[0] = '\0';
		return CIM_ERR_OK;
	}
	if (s == NULL)
		return CIM_ERR_BAD_REPLY;
	if (strlen(s) >= size)
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the %s's \"%s\" is longer than %zu bytes",
				 what, key, size - 1);
	memcpy(buf, s, strlen(s) + 1);
	return CIM_ERR_OK;
}
