/*
 * jsonread.c: JSON text into jansson values, U+0000 in keys included.
 *
 * The text goes to jansson as it is; only when jansson stops at a key
 * holding \u0000 is it read a second time, from a copy in which every
 * object key is written in an escaped form jansson takes, and the keys
 * are turned back afterwards. The escape uses two private-use characters,
 * E0 = U+E000 and E1 = U+E001, in keys only:
 *
 *     U+0000  ->  E1          E0  ->  E0 E0          E1  ->  E0 E1
 *
 * which is one to one, so two keys are equal after it exactly when they
 * were equal before (jansson's duplicate check still holds), and read
 * back by: E0 x -> x, E1 -> U+0000. \u0000 (written \ue001) and a
 * \u-escaped E0 or E1 (written as two raw characters) keep their length
 * in the copy, six bytes each way; an E0 or E1 written
 * as raw UTF-8 grows by three bytes, so where the copy grew is kept, and
 * a position jansson gives in the copy is mapped back into the text.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonread.h"

#define E0 "\xee\x80\x80"
#define E1 "\xee\x80\x81"

/* Where the copy grew: from copy offset `at` on, it is `shift` bytes
 * ahead of the text. */
struct growth {
	size_t at, shift;
};

struct copy {
	char *p;
	size_t len, cap;
	struct growth *g;
	size_t ng, gcap;
	bool oom;
};

static void put(struct copy *c, const void *s, size_t n)
{
	if (c->oom)
		return;
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 64;
		char *p;

		while (cap < c->len + n)
			cap *= 2;
		if ((p = realloc(c->p, cap)) == NULL) {
			c->oom = true;
			return;
		}
		c->p = p;
		c->cap = cap;
	}
	memcpy(c->p + c->len, s, n);
	c->len += n;
}

/* The copy grew by 3 bytes just now. */
static void grew(struct copy *c)
{
	size_t shift = (c->ng ? c->g[c->ng - 1].shift : 0) + 3;

	if (c->oom)
		return;
	if (c->ng == c->gcap) {
		size_t cap = c->gcap ? c->gcap * 2 : 8;
		struct growth *g = realloc(c->g, cap * sizeof(*g));

		if (g == NULL) {
			c->oom = true;
			return;
		}
		c->g = g;
		c->gcap = cap;
	}
	c->g[c->ng++] = (struct growth){c->len, shift};
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The code unit of a \uXXXX escape at s[0..6), or -1. */
static long escape_at(const char *s, size_t left)
{
	long v = 0;

	if (left < 6 || s[0] != '\\' || s[1] != 'u')
		return -1;
	for (int i = 2; i < 6; i++) {
		int h = hexval(s[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Copies the string token at t[i] (its opening quote) into c, escaping it
 * as above when key; returns the index just past its closing quote (or
 * len when it has none: jansson then says what is wrong). */
static size_t copy_string(struct copy *c, const char *t, size_t len, size_t i,
			  bool key)
{
	size_t run = i;

	for (i++; i < len && t[i] != '"';) {
		long u = escape_at(t + i, len - i);

		if (t[i] == '\\' && u < 0) {
			i += 2; /* a short escape (or a bad one) */
			continue;
		}
		if (!key) {
			i += u >= 0 ? 6 : 1;
			continue;
		}
		if (u == 0 || u == 0xe000 || u == 0xe001) {
			put(c, t + run, i - run);
			if (u == 0) {
				put(c, "\\ue001", 6);
			} else {
				put(c, E0, 3);
				put(c, u == 0xe000 ? E0 : E1, 3);
			}
			i += 6;
			run = i;
		} else if (u >= 0) {
			i += 6;
		} else if (len - i >= 3 && (memcmp(t + i, E0, 3) == 0 ||
					    memcmp(t + i, E1, 3) == 0)) {
			put(c, t + run, i - run);
			put(c, E0, 3);
			put(c, t + i, 3);
			grew(c);
			i += 3;
			run = i;
		} else {
			i++;
		}
	}
	if (i < len)
		i++;
	put(c, t + run, i - run);
	return i;
}

/* Whether the string token ending just before t[i] is an object key: the
 * next thing after white space is a colon. */
static bool is_key(const char *t, size_t len, size_t i)
{
	while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' ||
			   t[i] == '\r'))
		i++;
	return i < len && t[i] == ':';
}

/* The key of the string token at t[i]: its end, found by skipping it. */
static size_t string_end(const char *t, size_t len, size_t i)
{
	for (i++; i < len && t[i] != '"'; i += t[i] == '\\' ? 2 : 1)
		;
	return i < len ? i + 1 : len;
}

static void escape_keys(struct copy *c, const char *t, size_t len)
{
	size_t i = 0, run = 0;

	while (i < len) {
		if (t[i] != '"') {
			i++;
			continue;
		}
		put(c, t + run, i - run);
		i = copy_string(c, t, len, i,
				is_key(t, len, string_end(t, len, i)));
		run = i;
	}
	put(c, t + run, len - run);
}

/* A key as it was before escape_keys, into out (at most klen bytes). */
static size_t unescape_key(const char *k, size_t klen, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < klen;) {
		if (klen - i >= 6 && memcmp(k + i, E0, 3) == 0) {
			memcpy(out + n, k + i + 3, 3);
			n += 3;
			i += 6;
		} else if (klen - i >= 3 && memcmp(k + i, E1, 3) == 0) {
			out[n++] = '\0';
			i += 3;
		} else {
			out[n++] = k[i++];
		}
	}
	return n;
}

/* v with every key turned back, as a new reference; NULL when memory runs
 * out. Objects are made again (keeping their order); arrays are changed
 * in place. */
static json_t *unescape_value(json_t *v)
{
	const char *key;
	size_t klen, i;
	json_t *child, *c, *o;

	if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			if ((c = unescape_value(child)) == NULL)
				return NULL;
			if (c != child && json_array_set_new(v, i, c) != 0)
				return NULL;
			if (c == child)
				json_decref(c);
		}
		return json_incref(v);
	}
	if (!json_is_object(v))
		return json_incref(v);
	if ((o = json_object()) == NULL)
		return NULL;
	json_object_keylen_foreach(v, key, klen, child) {
		char *k = malloc(klen + 1);
		size_t n;
		int rc;

		if (k == NULL || (c = unescape_value(child)) == NULL) {
			free(k);
			json_decref(o);
			return NULL;
		}
		n = unescape_key(key, klen, k);
		rc = json_object_setn_new_nocheck(o, k, n, c);
		free(k);
		if (rc != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* The position in the text of position pos of the copy. */
static size_t text_position(const struct copy *c, size_t pos)
{
	size_t shift = 0;

	for (size_t i = 0; i < c->ng && c->g[i].at <= pos; i++)
		shift = c->g[i].shift;
	return pos >= shift ? pos - shift : 0;
}

/* err->text, keeping the code jansson keeps in its last byte. */
static void say(json_error_t *err, const char *fmt, const char *arg)
{
	char text[JSON_ERROR_TEXT_LENGTH];

	snprintf(text, sizeof(text), fmt, arg);
	text[JSON_ERROR_TEXT_LENGTH - 2] = '\0';
	memcpy(err->text, text, strlen(text) + 1);
}

/* jansson's sentence in words about the text (jansson's own are kept
 * where they already are: "'}' expected near ','", "invalid token near
 * 'tru'"). A "near" quoting the escaped copy is left out. */
static void user_words(json_error_t *err, bool copy)
{
	char near[JSON_ERROR_TEXT_LENGTH] = "";
	char *n = strstr(err->text, " near ");

	if (n != NULL && !copy)
		snprintf(near, sizeof(near), "%s", n);
	else if (n != NULL)
		*n = '\0';
	switch (json_error_code(err)) {
	case json_error_invalid_utf8:
		say(err, "%s", "the text is not valid UTF-8");
		break;
	case json_error_premature_end_of_input:
		say(err, "%s", "the text ends before the JSON value does");
		break;
	case json_error_end_of_input_expected:
		say(err, "there is more text after the JSON value%s", near);
		break;
	case json_error_stack_overflow:
		say(err, "%s", "the JSON is nested more than 2048 levels deep");
		break;
	case json_error_duplicate_key:
		say(err, "an object has the same key twice%s", near);
		break;
	case json_error_out_of_memory:
		say(err, "%s", "out of memory");
		break;
	case json_error_invalid_syntax:
		if (strncmp(err->text, "invalid Unicode '", 17) == 0) {
			/* invalid Unicode '\uD800' or '\uD800\uE000' */
			char esc[16];

			snprintf(esc, sizeof(esc), "%.*s",
				 (int)strcspn(err->text + 17, "'"),
				 err->text + 17);
			say(err, "a string holds %s, a lone surrogate, which is "
			    "not a character", esc);
		} else if (strncmp(err->text, "unexpected newline", 18) == 0) {
			say(err, "a string holds a line break%s (write it as "
			    "\\n)", near);
		} else if (strncmp(err->text, "control character", 17) == 0) {
			say(err, "a string holds a control character%s (write "
			    "it as \\u00XX)", near);
		} else if (strncmp(err->text, "invalid escape", 14) == 0) {
			say(err, "a string holds an invalid escape%s", near);
		}
		break;
	default:
		break;
	}
}

/* line and column (in characters, from 1) of text position pos. */
static void line_column(const char *t, size_t pos, json_error_t *err)
{
	int line = 1, col = 0;

	for (size_t i = 0; i < pos; i++) {
		if (t[i] == '\n') {
			line++;
			col = 0;
		} else if (((unsigned char)t[i] & 0xc0) != 0x80) {
			col++;
		}
	}
	err->line = line;
	err->column = col;
	err->position = (int)pos;
}

json_t *cim_json_read(const void *text, size_t len, size_t flags,
		      json_error_t *err)
{
	const size_t f = flags | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES;
	struct copy c = {0};
	json_error_t e2;
	json_t *v, *back;

	v = json_loadb(text, len, f, err);
	if (v != NULL || json_error_code(err) != json_error_null_byte_in_key) {
		if (v == NULL)
			user_words(err, false);
		return v;
	}
	escape_keys(&c, text, len);
	if (c.oom) {
		v = NULL;
		goto nomem;
	}
	v = json_loadb(c.p, c.len, f, &e2);
	if (v == NULL) {
		*err = e2;
		user_words(err, true);
		line_column(text, text_position(&c, (size_t)e2.position), err);
		goto out;
	}
	back = unescape_value(v);
	json_decref(v);
	v = back;
	if (v != NULL)
		goto out;
nomem:
	say(err, "%s", "out of memory");
	err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_out_of_memory;
out:
	free(c.p);
	free(c.g);
	return v;
}
