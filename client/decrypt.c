/*
 * decrypt.c: the data of encrypted events a subscription read from the
 * stream, turned into values by the daemon (the decrypt operation,
 * docs/protocol.md section 12): data keys never leave it. One request
 * carries many events, of one aggregate type (its subject names the type,
 * so permissions can grant it per type as get is granted), bounded by the
 * NATS payload limit; the daemon answers item for item, possibly fewer
 * than asked (the rest is asked again).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "crypt.h"

#define MAX_ITEMS 1000   /* per request */
#define ITEM_SLACK 400   /* JSON around one item's base64, ids included */

/* Items [from, end) of type, up to what one request may carry. */
static size_t
batch_end(const cimc_enc *items, size_t n, size_t from, const char *type,
	  size_t budget, size_t *bytes)
{
	size_t k = 0, i;

	*bytes = 32;
	for (i = from; i < n && k < MAX_ITEMS; i++) {
		if (items[i].done || strcmp(items[i].type, type) != 0)
			continue;
		size_t need = sodium_base64_ENCODED_LEN(items[i].len,
							sodium_base64_VARIANT_ORIGINAL) +
			      ITEM_SLACK;
		if (k > 0 && *bytes + need > budget)
			break;
		*bytes += need;
		k++;
	}
	return i;
}

static json_t *
item_json(const cimc_enc *it)
{
	size_t blen = sodium_base64_ENCODED_LEN(it->len,
						sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(blen);
	json_t *o;

	if (b64 == NULL)
		return NULL;
	sodium_bin2base64(b64, blen, it->enc, it->len,
			  sodium_base64_VARIANT_ORIGINAL);
	o = json_pack("{ss ss% ss}", "aggregate_id", it->id, "event_id",
		      it->event_id, it->event_id_len, "data", b64);
	free(b64);
	return o;
}

/* The daemon refused items[k] (field "items[k].data"): k, or -1. */
static long
refused_item(const cim_error *e)
{
	unsigned long k;
	char tail[16];

	if (e->code != CIM_ERR_INVALID_ARGUMENT ||
	    sscanf(e->field, "items[%lu]%15s", &k, tail) != 2 ||
	    strcmp(tail, ".data") != 0)
		return -1;
	return (long)k;
}

/* One request for the items in sent[0..n); fills what it answers. */
static cim_err
ask(cim_client *c, const char *type, cimc_enc **sent, size_t n,
    cim_error *err)
{
	json_t *req = json_object(), *arr = json_array(), *reply = NULL;
	const json_t *got;
	cim_err rc;

	if (req == NULL || arr == NULL || json_object_set(req, "items", arr)) {
		json_decref(arr);
		json_decref(req);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		json_t *o = item_json(sent[i]);
		if (o == NULL || json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			json_decref(req);
			return cimc_fail(err, CIM_ERR_NOMEM, NULL,
					 "out of memory");
		}
	}
	json_decref(arr);
	rc = cimc_call(c, "decrypt", type, NULL, req, &reply, err);
	json_decref(req);
	if (rc != CIM_ERR_OK) {
		long k = refused_item(err);
		if (k < 0 || (size_t)k >= n)
			return rc;
		/* data the daemon cannot decrypt under its key: that event
		 * fails, the others are asked again */
		sent[k]->done = true;
		sent[k]->refused = cimc_strdup(err->message);
		if (sent[k]->refused == NULL)
			return cimc_fail(err, CIM_ERR_NOMEM, NULL,
					 "out of memory");
		cimc_clear(err);
		return CIM_ERR_OK;
	}
	got = json_object_get(reply, "items");
	if (!json_is_array(got) || json_array_size(got) == 0 ||
	    json_array_size(got) > n) {
		json_decref(reply);
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the daemon's decrypt reply has no items, or "
				 "more than were sent");
	}
	for (size_t i = 0; i < json_array_size(got); i++) {
		const json_t *o = json_array_get(got, i);
		const json_t *data = json_object_get(o, "data");
		cimc_enc *it = sent[i];

		if (json_is_true(json_object_get(o, "forgotten"))) {
			it->forgotten = true;
			it->data_json = cimc_strdup("null");
		} else if (data != NULL) {
			it->data_json = cim_json_text(data);
		} else {
			json_decref(reply);
			return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
					 "item %zu of the daemon's decrypt reply "
					 "has neither data nor forgotten",
					 i);
		}
		if (it->data_json == NULL) {
			json_decref(reply);
			return cimc_fail(err, CIM_ERR_NOMEM, NULL,
					 "out of memory");
		}
		it->done = true;
	}
	json_decref(reply);
	return CIM_ERR_OK;
}

cim_err
cimc_decrypt(cim_client *c, cimc_enc *items, size_t n, cim_error *err)
{
	size_t max = (size_t)natsConnection_GetMaxPayload(c->nc);
	size_t budget = max > 4096 ? max - 1024 : max;
	cimc_enc **sent = calloc(MAX_ITEMS, sizeof(*sent));
	cim_err rc = CIM_ERR_OK;

	if (sent == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	for (size_t first = 0; first < n && rc == CIM_ERR_OK;) {
		size_t bytes, k = 0;
		if (items[first].done) {
			first++;
			continue;
		}
		const char *type = items[first].type;
		size_t end = batch_end(items, n, first, type, budget, &bytes);
		for (size_t i = first; i < end; i++)
			if (!items[i].done && strcmp(items[i].type, type) == 0)
				sent[k++] = &items[i];
		rc = ask(c, type, sent, k, err);
		/* what was not answered is asked again from first */
	}
	free(sent);
	return rc;
}
