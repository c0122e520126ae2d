/*
 * request.c: decoding the contract's JSON requests with jansson.
 *
 * jansson does the hard parts through cim_json_read (jsonread.c): invalid
 * UTF-8, lone surrogates and duplicate keys are refused; every other
 * string, \u0000 included, keys too, is taken as it is.
 * This file adds the request rules on top: object roots, no unknown
 * fields, field types and values, and a field path for an integer that
 * does not fit 64 bits, found by re-scanning the text up to the place
 * jansson stopped.
 *
 * Codes: a body that is not a JSON object, an unknown or missing field,
 * an array or object where another type belongs, and data nested too
 * deeply are invalid_request; a field whose value breaks its rule is
 * invalid_argument naming the field; too many events payload_too_large.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagcbor.h"
#include "ids.h"
#include "jsonread.h"
#include "jsontext.h"
#include "keys.h"
#include "request.h"

/* ---- where a number overflowed ------------------------------------------- */

#define PATH_MAX_DEPTH 32

typedef struct frame {
	bool obj;
	bool want_key;
	size_t index;
	const char *key;
	size_t keylen;
} frame;

static void
path_text(const frame *st, int depth, char *out, size_t outsz)
{
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < depth && n < outsz; i++) {
		int w;

		if (st[i].obj)
			w = snprintf(out + n, outsz - n, "%s%.*s",
				     i > 0 ? "." : "", (int)st[i].keylen,
				     st[i].key);
		else
			w = snprintf(out + n, outsz - n, "[%zu]", st[i].index);
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

/* The path ("events[0].data.total") of the number that ends at or after
 * byte errpos in text, which jansson parsed without error up to there.
 * Returns false when it cannot tell. */
static bool
number_path(const char *text, size_t len, size_t errpos, char *out,
	    size_t outsz)
{
	frame st[PATH_MAX_DEPTH];
	int depth = 0;
	size_t i = 0;

	while (i < len) {
		char c = text[i];
		frame *top = depth > 0 ? &st[depth - 1] : NULL;

		switch (c) {
		case '{':
		case '[':
			if (depth == PATH_MAX_DEPTH)
				return false;
			st[depth++] = (frame){c == '{', c == '{', 0, "", 0};
			i++;
			break;
		case '}':
		case ']':
			if (depth > 0)
				depth--;
			i++;
			break;
		case ',':
			if (top != NULL && top->obj)
				top->want_key = true;
			else if (top != NULL)
				top->index++;
			i++;
			break;
		case ':':
			if (top != NULL)
				top->want_key = false;
			i++;
			break;
		case '"': {
			size_t j = i + 1;

			while (j < len && text[j] != '"')
				j += text[j] == '\\' ? 2 : 1;
			if (top != NULL && top->obj && top->want_key) {
				top->key = text + i + 1;
				top->keylen = (j < len ? j : len) - i - 1;
			}
			i = j + 1;
			break;
		}
		default: {
			size_t j = i;

			if (c != '-' && (c < '0' || c > '9')) {
				i++;
				break;
			}
			while (j < len && strchr("+-.eE0123456789", text[j]) &&
			       text[j] != '\0')
				j++;
			if (j >= errpos) {
				if (depth == 0)
					return false;
				path_text(st, depth, out, outsz);
				return true;
			}
			i = j;
			break;
		}
		}
	}
	return false;
}

/* ---- parsing --------------------------------------------------------------- */

json_t *
cim_json_parse_request(const void *body, size_t len, cim_perr *e)
{
	json_error_t jerr;
	json_t *root;
	char field[64];

	if (len == 0) {
		root = json_object();
		if (root == NULL)
			cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "out of memory");
		return root;
	}
	root = cim_json_read(body, len, 0, &jerr);
	if (root == NULL) {
		if (json_error_code(&jerr) == json_error_numeric_overflow) {
			/* jansson says "too big integer" or "real number
			 * overflow"; say which rule applies */
			const char *rule = strstr(jerr.text, "real") ?
			    "decimals must fit a 64-bit float" :
			    "integers must fit 64-bit signed";
			if (number_path(body, len, (size_t)jerr.position,
					field, sizeof(field)))
				cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
					     "the number at %s is out of range; "
					     "%s", field, rule);
			else
				cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT,
					     "request", "a number is out of "
					     "range; %s", rule);
			return NULL;
		}
		if (json_error_code(&jerr) == json_error_out_of_memory)
			cim_perr_set(e, CIM_ERR_INTERNAL, NULL,
				     "out of memory");
		else if (json_error_code(&jerr) == json_error_stack_overflow)
			cim_perr_set(e, CIM_ERR_INVALID_REQUEST, NULL,
				     "the request is nested more than 2048 "
				     "levels deep (line %d, column %d)",
				     jerr.line, jerr.column);
		else
			cim_perr_set(e, CIM_ERR_INVALID_REQUEST, NULL,
				     "the request is not valid JSON: %s "
				     "(line %d, column %d)", jerr.text,
				     jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		cim_perr_set(e, CIM_ERR_INVALID_REQUEST, NULL,
			     "the request must be a JSON object");
		return NULL;
	}
	return root;
}

/* A key (which may hold U+0000 or quotes) as a message and a field path
 * show it: JSON-escaped, its first 40 bytes. */
static void
key_text(const char *key, size_t klen, char *out, size_t outsz)
{
	char q[64];
	size_t n = cim_json_quote(q, sizeof(q), key, klen);

	snprintf(out, outsz, "%.*s", n >= 2 ? (int)n - 2 : 0, q + 1);
}

static int
only_keys(const json_t *obj, const char *const *allowed, const char *prefix,
	  cim_perr *e)
{
	const char *key;
	size_t klen;
	json_t *v;
	char field[64], name[64];

	json_object_keylen_foreach((json_t *)obj, key, klen, v) {
		size_t i;

		for (i = 0; allowed[i] != NULL; i++)
			if (strlen(allowed[i]) == klen &&
			    memcmp(key, allowed[i], klen) == 0)
				break;
		if (allowed[i] != NULL)
			continue;
		key_text(key, klen, name, sizeof(name));
		snprintf(field, sizeof(field), "%s%s", prefix, name);
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "unknown field \"%s\"", field);
	}
	return 0;
}

int
cim_json_only_keys(const json_t *obj, const char *const *allowed,
		   cim_perr *e)
{
	return only_keys(obj, allowed, "", e);
}

int
cim_json_get_u64(const json_t *obj, const char *key, uint64_t *out,
		 cim_perr *e)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v))
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, key,
				    "%s must be an integer", key);
	if (json_integer_value(v) < 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, key,
				    "%s must not be negative", key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int
cim_empty_req_parse(const void *body, size_t len, cim_perr *e)
{
	static const char *const none[] = {NULL};
	json_t *root = cim_json_parse_request(body, len, e);
	int rc;

	if (root == NULL)
		return -1;
	rc = cim_json_only_keys(root, none, e);
	json_decref(root);
	return rc;
}

int
cim_validate_req_parse(const void *body, size_t len, uint8_t (*keys)[32],
		       size_t max, size_t *n, cim_perr *e)
{
	static const char *const allowed[] = {"keys", NULL};
	json_t *root = cim_json_parse_request(body, len, e), *arr, *v;
	size_t i;
	int rc = -1;

	*n = 0;
	if (root == NULL)
		return -1;
	if (cim_json_only_keys(root, allowed, e) != 0)
		goto out;
	arr = json_object_get(root, "keys");
	if (arr == NULL) {
		rc = 0;
		goto out;
	}
	if (!json_is_array(arr)) {
		cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "keys",
			     "keys must be an array of public-key texts");
		goto out;
	}
	if (json_array_size(arr) > max) {
		cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "keys",
			     "keys holds %zu keys; at most %zu are taken",
			     json_array_size(arr), max);
		goto out;
	}
	json_array_foreach(arr, i, v) {
		char field[32];

		snprintf(field, sizeof(field), "keys[%zu]", i);
		if (!json_is_string(v)) {
			cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				     "%s must be a string", field);
			goto out;
		}
		if (cim_pubkey_from_textn(keys[i], json_string_value(v),
					  json_string_length(v)) != 0) {
			cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				     "%s is not an Ed25519 public-key text "
				     "(z6Mk..., 48 characters)", field);
			goto out;
		}
	}
	*n = json_array_size(arr);
	rc = 0;
out:
	if (rc != 0)
		*n = 0;
	json_decref(root);
	return rc;
}

int
cim_get_req_parse(const void *body, size_t len, uint64_t default_limit,
		  uint64_t max_limit, uint64_t *from_version,
		  uint64_t *limit, cim_perr *e)
{
	static const char *const allowed[] = {"from_version", "limit", NULL};
	json_t *root = cim_json_parse_request(body, len, e);
	uint64_t from = 1, lim = default_limit;
	int rc = -1;

	if (root == NULL)
		return -1;
	if (cim_json_only_keys(root, allowed, e) == -1 ||
	    cim_json_get_u64(root, "from_version", &from, e) == -1 ||
	    cim_json_get_u64(root, "limit", &lim, e) == -1)
		goto done;
	if (lim < 1 || lim > max_limit) {
		cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "limit",
			     "limit must be 1 to %llu",
			     (unsigned long long)max_limit);
		goto done;
	}
	*from_version = from == 0 ? 1 : from;
	*limit = lim;
	rc = 0;
done:
	json_decref(root);
	return rc;
}

/* ---- append ---------------------------------------------------------------- */

static int
parse_expected(const json_t *v, cim_append_req *out, cim_perr *e)
{
	const char *s;

	if (v == NULL) {
		out->expect = CIM_EXPECT_KIND_ANY;
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		out->expected_version = (uint64_t)json_integer_value(v);
		out->expect = out->expected_version == 0 ?
		    CIM_EXPECT_KIND_NO_STREAM : CIM_EXPECT_KIND_EXACT;
		return 0;
	}
	s = json_string_value(v);
	if (s != NULL && strcmp(s, "any") == 0)
		out->expect = CIM_EXPECT_KIND_ANY;
	else if (s != NULL && strcmp(s, "no_stream") == 0)
		out->expect = CIM_EXPECT_KIND_NO_STREAM;
	else if (s != NULL && strcmp(s, "exists") == 0)
		out->expect = CIM_EXPECT_KIND_EXISTS;
	else
		return cim_perr_set(e, s != NULL || json_is_integer(v) ?
				    CIM_ERR_INVALID_ARGUMENT :
				    CIM_ERR_INVALID_REQUEST,
				    "expected_version", "expected_version must "
				    "be a version number, \"any\", "
				    "\"no_stream\" or \"exists\"");
	return 0;
}

/* An optional id: any string of at most CIM_EVENT_ID_MAX bytes (U+0000,
 * other control characters and "" included). */
static int
parse_id(const json_t *ev, const char *key, size_t i, const char **out,
	 size_t *outlen, cim_perr *e)
{
	json_t *v = json_object_get(ev, key);
	char field[64];

	*out = NULL;
	*outlen = 0;
	if (v == NULL)
		return 0;
	snprintf(field, sizeof(field), "events[%zu].%s", i, key);
	if (!json_is_string(v))
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "%s must be a string", field);
	if (json_string_length(v) > CIM_EVENT_ID_MAX)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s is %zu bytes long; at most %d bytes "
				    "of UTF-8 are allowed", field,
				    json_string_length(v), CIM_EVENT_ID_MAX);
	*out = json_string_value(v);
	*outlen = json_string_length(v);
	return 0;
}

static int
parse_event(const json_t *ev, size_t i, const cim_limits *lim,
	    cim_append_event_req *out, cim_perr *e)
{
	static const char *const allowed[] = {"event_type", "data", "event_id",
		"correlation_id", "causation_id", "metadata", NULL};
	char prefix[32], field[64], name[64];
	const char *key;
	size_t klen;
	json_t *v;

	snprintf(prefix, sizeof(prefix), "events[%zu].", i);
	if (!json_is_object(ev)) {
		snprintf(field, sizeof(field), "events[%zu]", i);
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "%s must be an object", field);
	}
	if (only_keys(ev, allowed, prefix, e) == -1)
		return -1;

	snprintf(field, sizeof(field), "%sevent_type", prefix);
	v = json_object_get(ev, "event_type");
	if (v == NULL)
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "%s is required", field);
	if (!json_is_string(v))
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "%s must be a string", field);
	out->event_type = json_string_value(v);
	if (!cim_token_type_ok(out->event_type))
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s must match [A-Za-z][A-Za-z0-9_-]{0,63}",
				    field);

	snprintf(field, sizeof(field), "%sdata", prefix);
	out->data = json_object_get(ev, "data");
	if (out->data == NULL)
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "%s is required", field);
	if (cim_json_depth(out->data, lim->max_depth) > lim->max_depth)
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "%s is nested deeper than %d levels",
				    field, lim->max_depth);

	if (parse_id(ev, "event_id", i, &out->event_id, &out->event_id_len,
		     e) == -1 ||
	    parse_id(ev, "correlation_id", i, &out->correlation_id,
		     &out->correlation_id_len, e) == -1 ||
	    parse_id(ev, "causation_id", i, &out->causation_id,
		     &out->causation_id_len, e) == -1)
		return -1;

	out->metadata = json_object_get(ev, "metadata");
	if (out->metadata == NULL)
		return 0;
	snprintf(field, sizeof(field), "%smetadata", prefix);
	if (!json_is_object(out->metadata))
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "%s must be an object of strings", field);
	json_object_keylen_foreach(out->metadata, key, klen, v)
		if (!json_is_string(v)) {
			key_text(key, klen, name, sizeof(name));
			return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
					    "%s value \"%s\" is not a "
					    "string", field, name);
		}
	return 0;
}

int
cim_append_req_parse(const void *body, size_t len, const cim_limits *lim,
		     cim_append_req *out, cim_perr *e)
{
	static const char *const allowed[] = {"expected_version", "events",
					      NULL};
	json_t *events;
	size_t n;

	memset(out, 0, sizeof(*out));
	out->root = cim_json_parse_request(body, len, e);
	if (out->root == NULL)
		return -1;
	if (cim_json_only_keys(out->root, allowed, e) == -1 ||
	    parse_expected(json_object_get(out->root, "expected_version"),
			   out, e) == -1)
		goto fail;

	events = json_object_get(out->root, "events");
	if (events == NULL) {
		cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "events",
			     "events is required");
		goto fail;
	}
	if (!json_is_array(events)) {
		cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "events",
			     "events must be an array");
		goto fail;
	}
	n = json_array_size(events);
	if (n == 0) {
		cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "events",
			     "events must hold at least one event");
		goto fail;
	}
	if (n > lim->max_events) {
		cim_perr_set(e, CIM_ERR_PAYLOAD_TOO_LARGE, "events",
			     "%zu events is over the limit of %zu per append",
			     n, lim->max_events);
		goto fail;
	}
	out->events = calloc(n, sizeof(*out->events));
	if (out->events == NULL) {
		cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "out of memory");
		goto fail;
	}
	out->n = n;
	for (size_t i = 0; i < n; i++)
		if (parse_event(json_array_get(events, i), i, lim,
				&out->events[i], e) == -1)
			goto fail;
	for (size_t i = 0; i < n; i++) {
		const cim_append_event_req *a = &out->events[i];
		for (size_t k = 0; a->event_id != NULL && k < i; k++)
			if (out->events[k].event_id != NULL &&
			    out->events[k].event_id_len == a->event_id_len &&
			    memcmp(out->events[k].event_id, a->event_id,
				   a->event_id_len) == 0) {
				char field[64];
				snprintf(field, sizeof(field),
					 "events[%zu].event_id", i);
				cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
					     "%s repeats events[%zu].event_id",
					     field, k);
				goto fail;
			}
	}
	return 0;
fail:
	cim_append_req_free(out);
	return -1;
}

void
cim_append_req_free(cim_append_req *r)
{
	json_decref(r->root);
	free(r->events);
	memset(r, 0, sizeof(*r));
}

int
cim_snapshot_req_parse(const void *body, size_t len, uint64_t *version,
		       json_t **state, cim_perr *e)
{
	static const char *const allowed[] = {"version", "state", NULL};
	json_t *root = cim_json_parse_request(body, len, e);
	uint64_t v = 0;

	*state = NULL;
	if (root == NULL)
		return -1;
	if (cim_json_only_keys(root, allowed, e) == -1)
		goto fail;
	if (json_object_get(root, "version") == NULL) {
		cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "version",
			     "version is required");
		goto fail;
	}
	if (cim_json_get_u64(root, "version", &v, e) == -1)
		goto fail;
	if (v == 0) {
		cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "version",
			     "version must be 1 or more: a snapshot is the "
			     "state after a stored event");
		goto fail;
	}
	*state = json_object_get(root, "state");
	if (*state == NULL) {
		cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "state",
			     "state is required");
		goto fail;
	}
	if (cim_json_depth(*state, CIM_MAX_DEPTH) > CIM_MAX_DEPTH) {
		cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "state",
			     "state is nested deeper than %d levels",
			     CIM_MAX_DEPTH);
		*state = NULL;
		goto fail;
	}
	json_incref(*state);
	*version = v;
	json_decref(root);
	return 0;
fail:
	json_decref(root);
	return -1;
}
