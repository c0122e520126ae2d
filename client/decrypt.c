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
#include "base64.h"
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

/* The request for sent[0..n), as compact JSON text (NUL-terminated):
 * written by hand, not through jansson, since it is mostly base64. */
static int
request_text(cbuf *b, cimc_enc **sent, size_t n)
{
	int rc = cbuf_puts(b, "{\"items\":[");

	for (size_t i = 0; i < n && rc == 0; i++) {
		const cimc_enc *it = sent[i];
		rc = cbuf_puts(b, i ? ",{\"aggregate_id\":" : "{\"aggregate_id\":") ||
		     cim_json_write_string(b, it->id, strlen(it->id)) ||
		     cbuf_puts(b, ",\"event_id\":") ||
		     cim_json_write_string(b, it->event_id, it->event_id_len) ||
		     cbuf_puts(b, ",\"data\":\"") || cim_base64_encode(b, it->enc, it->len) ||
		     cbuf_puts(b, "\"}");
	}
	return rc || cbuf_puts(b, "]}") || cbuf_terminate(b) ? -1 : 0;
}

/* ---- the reply -------------------------------------------------------------------- */

/* The end of the JSON value at p (before end), or NULL when it is not
 * one: strings, numbers and literals as their characters allow, arrays
 * and objects by their brackets (the daemon wrote it; this only finds
 * where it ends, and the fallback reads anything unusual). */
static const char *
value_end(const char *p, const char *end, int depth)
{
	if (p >= end || depth > 200)
		return NULL;
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++)
			if (*p == '\\' && ++p == end)
				return NULL;
		return p < end ? p + 1 : NULL;
	}
	if (*p == '[' || *p == '{') {
		char close = *p == '[' ? ']' : '}';
		p++;
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				if ((p = value_end(p, end, depth + 1)) == NULL || p >= end ||
				    *p++ != ':')
					return NULL;
			}
			if ((p = value_end(p, end, depth + 1)) == NULL || p >= end)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	const char *q = p;
	while (q < end && (strchr("-+.eE0123456789", *q) != NULL || (*q >= 'a' && *q <= 'z')))
		q++;
	return q > p ? q : NULL;
}

/* The reply as the daemon writes it, compact:
 * {"items":[{"data":V},{"forgotten":true},...]}: each value's text cut out
 * as it is (it is the text cim_json_text would give). The count of items
 * filled, or -1 when the reply is not in that form (then jansson reads
 * it). */
static long
slice_reply(const char *t, size_t len, cimc_enc **sent, size_t n)
{
	static const char head[] = "{\"items\":[", data[] = "{\"data\":",
			  gone[] = "{\"forgotten\":true}";
	const char *p = t, *end = t + len;
	size_t k = 0;

	if (len < sizeof head + 1 || memcmp(p, head, sizeof head - 1) != 0)
		return -1;
	p += sizeof head - 1;
	while (p < end && *p != ']') {
		if (k == n || (k > 0 && *p++ != ','))
			goto bad;
		if ((size_t)(end - p) >= sizeof gone - 1 &&
		    memcmp(p, gone, sizeof gone - 1) == 0) {
			sent[k]->data_json = cimc_strdup("null");
			sent[k]->forgotten = true;
			p += sizeof gone - 1;
		} else if ((size_t)(end - p) >= sizeof data - 1 &&
			   memcmp(p, data, sizeof data - 1) == 0) {
			const char *v = p + sizeof data - 1, *ve = value_end(v, end, 0);
			if (ve == NULL || ve >= end || *ve != '}' ||
			    (sent[k]->data_json = malloc((size_t)(ve - v) + 1)) == NULL)
				goto bad;
			memcpy(sent[k]->data_json, v, (size_t)(ve - v));
			sent[k]->data_json[ve - v] = '\0';
			p = ve + 1;
		} else {
			goto bad;
		}
		if (sent[k]->data_json == NULL)
			goto bad;
		k++;
	}
	if (k > 0 && end - p == 2 && memcmp(p, "]}", 2) == 0)
		return (long)k;
bad:
	for (size_t i = 0; i < k + 1 && i < n; i++) {
		free(sent[i]->data_json);
		sent[i]->data_json = NULL;
		sent[i]->forgotten = false;
	}
	return -1;
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
	cbuf req = CBUF_INIT;
	char *raw = NULL;
	json_t *reply = NULL;
	const json_t *got;
	cim_err rc;

	if (request_text(&req, sent, n) != 0) {
		cbuf_free(&req);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	rc = cim_request(c, "decrypt", type, NULL, (const char *)req.p, &raw, err);
	cbuf_free(&req);
	if (rc != CIM_ERR_OK) {
		long k = refused_item(err);
		cim_free(raw);
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
	long got_n = slice_reply(raw, strlen(raw), sent, n);
	if (got_n > 0) {
		for (long i = 0; i < got_n; i++)
			sent[i]->done = true;
		cim_free(raw);
		return CIM_ERR_OK;
	}
	/* not in the daemon's usual form: read as any JSON */
	reply = json_loads(raw, JSON_ALLOW_NUL, NULL);
	cim_free(raw);
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
