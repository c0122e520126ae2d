/*
 * vectors.h: what the unit tests that read tests/vectors share: loading a
 * vector file and turning its hex into bytes. Both fail the test on bad
 * input.
 */
#ifndef CIM_TEST_VECTORS_H
#define CIM_TEST_VECTORS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonread.h"

/* tests/vectors/<name> (the directory from $CIM_TEST_VECTORS when set),
 * parsed (strings and keys may hold U+0000); it must hold the array
 * `array` with at least one entry. */
static inline json_t *t_load_vectors(const char *name, const char *array)
{
	char path[4096], *text = NULL;
	const char *dir = getenv("CIM_TEST_VECTORS");
	json_error_t jerr;
	json_t *root, *a;
	size_t len = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s",
		 dir != NULL && dir[0] != '\0' ? dir : "tests/vectors", name);
	f = fopen(path, "r");
	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(getdelim(&text, &len, '\0', f) > 0, 1, "cannot read %s",
		     path);
	fclose(f);
	root = cim_json_read(text, strlen(text), 0, &jerr);
	free(text);
	cr_assert_not_null(root, "cannot load %s: %s (line %d)", path, jerr.text,
			   jerr.line);
	a = json_object_get(root, array);
	cr_assert(json_is_array(a) && json_array_size(a) > 0,
		  "%s has no \"%s\" array", path, array);
	return root;
}

/* The bytes hex spells, in a new buffer of *len bytes. */
static inline uint8_t *t_unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *out = malloc(n / 2 + 1);

	cr_assert(n % 2 == 0, "odd hex length %zu", n);
	cr_assert_not_null(out);
	cr_assert_eq(sodium_hex2bin(out, n / 2 + 1, hex, n, NULL, len, NULL), 0,
		     "bad hex");
	cr_assert_eq(*len, n / 2, "bad hex");
	return out;
}

#endif
