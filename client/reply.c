/*
 * reply.c: the helpers that read members of a daemon's reply, each failing
 * with CIM_ERR_BAD_REPLY and a sentence that names the member.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

/* ---- reading members of a reply ------------------------------------------ */

cim_err
cimc_get_items(const json_t *obj, const char *key, size_t elem_size,
	       const json_t **arr, void **items, cim_error *err)
{
	const json_t *a = json_object_get(obj, key);

	*arr = NULL;
	*items = NULL;
	if (!json_is_array(a))
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the reply's \"%s\" is missing or not an array",
				 key);
	if (json_array_size(a) > 0 &&
	    (*items = calloc(json_array_size(a), elem_size)) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	*arr = a;
	return CIM_ERR_OK;
}

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
	   bool *is_null, size_t *len, cim_error *err)
{
	const json_t *v = json_object_get(obj, key);

	*is_null = false;
	*len = 0;
	if (json_is_string(v)) {
		*len = json_string_length(v);
		return json_string_value(v);
	}
	if (null_ok && (v == NULL || json_is_null(v))) {
		*is_null = true;
		return NULL;
	}
	cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
		  "the %s's \"%s\" is missing or not text", what, key);
	return NULL;
}

cim_err
cimc_get_strn(const json_t *obj, const char *what, const char *key,
	      bool null_ok, char **out, size_t *len, cim_error *err)
{
	bool is_null;
	size_t n;
	const char *s = str_member(obj, what, key, null_ok, &is_null, &n, err);
	char *d;

	if (is_null) {
		*out = NULL;
		if (len != NULL)
			*len = 0;
		return CIM_ERR_OK;
	}
	if (s == NULL)
		return CIM_ERR_BAD_REPLY;
	if ((d = malloc(n + 1)) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	memcpy(d, s, n + 1);
	*out = d;
	if (len != NULL)
		*len = n;
	return CIM_ERR_OK;
}

cim_err
cimc_get_str(const json_t *obj, const char *what, const char *key, bool null_ok,
	     char **out, cim_error *err)
{
	return cimc_get_strn(obj, what, key, null_ok, out, NULL, err);
}

cim_err
cimc_get_strbuf(const json_t *obj, const char *what, const char *key,
		bool null_ok, char *buf, size_t size, cim_error *err)
{
	bool is_null;
	size_t n;
	const char *s = str_member(obj, what, key, null_ok, &is_null, &n, err);

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
