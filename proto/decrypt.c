/*
 * decrypt.c: decoding a decrypt request (decrypt.h).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "decrypt.h"
#include "ids.h"
#include "request.h"

static int
bad_item(cim_perr *e, cim_err code, size_t i, const char *member,
	 const char *why)
{
	char field[64];

	snprintf(field, sizeof(field), "items[%zu].%s", i, member);
	return cim_perr_set(e, code, field, "items[%zu].%s %s", i, member, why);
}

static int
parse_item(const json_t *o, size_t i, size_t max_enc, cim_decrypt_item *it,
	   cim_perr *e)
{
	static const char *const allowed[] = {"aggregate_id", "event_id",
					      "data", NULL};
	const json_t *id = json_object_get(o, "aggregate_id");
	const json_t *eid = json_object_get(o, "event_id");
	const json_t *data = json_object_get(o, "data");
	char field[64];

	if (!json_is_object(o)) {
		snprintf(field, sizeof(field), "items[%zu]", i);
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "items[%zu] must be an object", i);
	}
	if (cim_json_only_keys(o, allowed, e) == -1)
		return -1;
	if (!json_is_string(id))
		return bad_item(e, CIM_ERR_INVALID_REQUEST, i, "aggregate_id",
				"must be a string");
	if (!cim_token_id_ok(json_string_value(id)))
		return bad_item(e, CIM_ERR_INVALID_ARGUMENT, i, "aggregate_id",
				"must match [A-Za-z0-9_:@+=-]{1,128}");
	if (!json_is_string(eid))
		return bad_item(e, CIM_ERR_INVALID_REQUEST, i, "event_id",
				"must be a string");
	if (json_string_length(eid) > CIM_EVENT_ID_MAX)
		return bad_item(e, CIM_ERR_INVALID_ARGUMENT, i, "event_id",
				"is longer than an event_id may be");
	if (!json_is_string(data))
		return bad_item(e, CIM_ERR_INVALID_REQUEST, i, "data",
				"must be a string (base64)");
	size_t tlen = json_string_length(data);
	size_t cap = tlen / 4 * 3 + 3;
	if (cap > max_enc + 3)
		return bad_item(e, CIM_ERR_PAYLOAD_TOO_LARGE, i, "data",
				"is longer than any stored event's data");
	it->enc = malloc(cap ? cap : 1);
	if (it->enc == NULL)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "out of memory");
	if (sodium_base642bin(it->enc, cap, json_string_value(data), tlen, NULL,
			      &it->enc_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    it->enc_len < CIM_ENC_OVERHEAD || it->enc_len > max_enc)
		return bad_item(e, CIM_ERR_INVALID_ARGUMENT, i, "data",
				"must be standard base64 (with padding) of an "
				"encrypted value: a nonce, ciphertext and tag");
	it->aggregate_id = json_string_value(id);
	it->event_id = json_string_value(eid);
	it->event_id_len = json_string_length(eid);
	return 0;
}

int
cim_decrypt_req_parse(const void *body, size_t len, size_t max_items,
		      size_t max_enc, cim_decrypt_req *out, cim_perr *e)
{
	static const char *const allowed[] = {"items", NULL};
	const json_t *items;

	memset(out, 0, sizeof(*out));
	if (cim_sodium_ready() == -1)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL,
				    "libsodium cannot start");
	if ((out->root = cim_json_parse_request(body, len, e)) == NULL)
		return -1;
	if (cim_json_only_keys(out->root, allowed, e) == -1)
		goto fail;
	items = json_object_get(out->root, "items");
	if (!json_is_array(items)) {
		cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "items",
			     "items must be an array");
		goto fail;
	}
	if (json_array_size(items) == 0) {
		cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "items",
			     "items must hold at least one item");
		goto fail;
	}
	if (json_array_size(items) > max_items) {
		cim_perr_set(e, CIM_ERR_PAYLOAD_TOO_LARGE, "items",
			     "items holds %zu items, over the limit of %zu",
			     json_array_size(items), max_items);
		goto fail;
	}
	out->n = json_array_size(items);
	out->items = calloc(out->n, sizeof(*out->items));
	if (out->items == NULL) {
		cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < out->n; i++)
		if (parse_item(json_array_get(items, i), i, max_enc,
			       &out->items[i], e) == -1)
			goto fail;
	return 0;
fail:
	cim_decrypt_req_free(out);
	return -1;
}

void
cim_decrypt_req_free(cim_decrypt_req *r)
{
	for (size_t i = 0; r->items != NULL && i < r->n; i++)
		free(r->items[i].enc);
	free(r->items);
	json_decref(r->root);
	memset(r, 0, sizeof(*r));
}
