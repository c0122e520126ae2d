/*
 * decrypt.c: the data of encrypted events a subscription read from the
 * stream, turned into values by the daemon (the decrypt operation,
 * docs/protocol.md section 15): data keys never leave it. One request
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
	/* (an entry of sent may be NULL: its item went away; its value is
	 * cut and dropped) */
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
		cimc_enc *it = sent[k];
		if ((size_t)(end - p) >= sizeof gone - 1 &&
		    memcmp(p, gone, sizeof gone - 1) == 0) {
			if (it != NULL) {
				it->data_json = cimc_strdup("null");
				it->forgotten = true;
			}
			p += sizeof gone - 1;
		} else if ((size_t)(end - p) >= sizeof data - 1 &&
			   memcmp(p, data, sizeof data - 1) == 0) {
			const char *v = p + sizeof data - 1, *ve = value_end(v, end, 0);
			if (ve == NULL || ve >= end || *ve != '}')
				goto bad;
			if (it != NULL) {
				if ((it->data_json = malloc((size_t)(ve - v) + 1)) == NULL)
					goto bad;
				memcpy(it->data_json, v, (size_t)(ve - v));
				it->data_json[ve - v] = '\0';
			}
			p = ve + 1;
		} else {
			goto bad;
		}
		if (it != NULL && it->data_json == NULL)
			goto bad;
		k++;
	}
	if (k > 0 && end - p == 2 && memcmp(p, "]}", 2) == 0)
		return (long)k;
bad:
	for (size_t i = 0; i < k + 1 && i < n; i++) {
		if (sent[i] == NULL)
			continue;
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

/* The reply of Cim-Status 200 to sent[0..n): the items it answers are
 * done. */
static cim_err
take_reply(cimc_enc **sent, size_t n, const char *t, size_t len, cim_error *err)
{
	long got = slice_reply(t, len, sent, n);
	json_t *reply = NULL;
	const json_t *items;

	if (got <= 0) {
		/* not in the daemon's usual form: read as any JSON */
		reply = json_loadb(t, len, JSON_ALLOW_NUL, NULL);
		items = json_object_get(reply, "items");
		if (!json_is_array(items) || json_array_size(items) == 0 ||
		    json_array_size(items) > n) {
			json_decref(reply);
			return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
					 "the daemon's decrypt reply has no items, "
					 "or more than were sent");
		}
		for (size_t i = 0; i < json_array_size(items); i++) {
			const json_t *o = json_array_get(items, i);
			const json_t *data = json_object_get(o, "data");
			bool gone = json_is_true(json_object_get(o, "forgotten"));
			cimc_enc *it = sent[i];

			if (!gone && data == NULL) {
				json_decref(reply);
				return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
						 "item %zu of the daemon's decrypt "
						 "reply has neither data nor "
						 "forgotten", i);
			}
			if (it == NULL)
				continue;
			it->forgotten = gone;
			it->data_json = gone ? cimc_strdup("null") : cim_json_text(data);
			if (it->data_json == NULL) {
				json_decref(reply);
				return cimc_fail(err, CIM_ERR_NOMEM, NULL,
						 "out of memory");
			}
		}
		got = (long)json_array_size(items);
		json_decref(reply);
	}
	for (long i = 0; i < got; i++)
		if (sent[i] != NULL)
			sent[i]->done = true;
	return CIM_ERR_OK;
}

void
cimc_decrypt_drop(cimc_ask *a)
{
	cimc_pending_drop(&a->p);
	for (size_t i = 0; i < a->n; i++)
		if (a->sent[i] != NULL) {
			a->sent[i]->asked = false;
			a->sent[i]->slot = NULL;
		}
	free(a->sent);
	memset(a, 0, sizeof(*a));
}

cim_err
cimc_decrypt_send(cim_client *c, cimc_enc **items, size_t n, cimc_ask *a,
		  cim_error *err)
{
	size_t max = (size_t)natsConnection_GetMaxPayload(c->nc);
	size_t budget = max > 4096 ? max - 1024 : max, bytes = 32, first = n;
	cbuf req = CBUF_INIT;
	cim_err rc;

	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i < n && first == n; i++)
		if (!items[i]->done && !items[i]->asked)
			first = i;
	if (first == n)
		return CIM_ERR_OK; /* nothing to ask */
	if ((a->sent = calloc(MAX_ITEMS, sizeof(*a->sent))) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	const char *type = items[first]->type;
	for (size_t i = first; i < n && a->n < MAX_ITEMS; i++) {
		cimc_enc *it = items[i];
		if (it->done || it->asked || strcmp(it->type, type) != 0)
			continue;
		size_t need = CIM_BASE64_LEN(it->len) + ITEM_SLACK;
		if (a->n > 0 && bytes + need > budget)
			break;
		bytes += need;
		a->sent[a->n++] = it;
	}
	if (request_text(&req, a->sent, a->n) != 0) {
		cbuf_free(&req);
		free(a->sent);
		memset(a, 0, sizeof(*a));
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	rc = cimc_send(c, "decrypt", type, (const char *)req.p, req.len, &a->p, err);
	cbuf_free(&req);
	if (rc != CIM_ERR_OK) {
		free(a->sent);
		memset(a, 0, sizeof(*a));
		return rc;
	}
	for (size_t i = 0; i < a->n; i++) {
		a->sent[i]->asked = true;
		a->sent[i]->slot = &a->sent[i];
	}
	return CIM_ERR_OK;
}

cim_err
cimc_decrypt_wait(cim_client *c, cimc_ask *a, cim_error *err)
{
	natsMsg *msg = NULL;
	cim_err rc = cimc_receive(c, &a->p, &msg, err);

	if (rc == CIM_ERR_OK) {
		rc = take_reply(a->sent, a->n, natsMsg_GetData(msg),
				(size_t)natsMsg_GetDataLength(msg), err);
	} else {
		long k = refused_item(err);
		if (k >= 0 && (size_t)k < a->n) {
			/* data the daemon cannot decrypt under its key: that
			 * event fails, the others are asked again */
			cimc_enc *it = a->sent[k];
			rc = CIM_ERR_OK;
			if (it != NULL) {
				it->done = true;
				if ((it->refused = cimc_strdup(err->message)) == NULL)
					rc = cimc_fail(err, CIM_ERR_NOMEM, NULL,
						       "out of memory");
			}
			if (rc == CIM_ERR_OK)
				cimc_clear(err);
		}
	}
	natsMsg_Destroy(msg);
	cimc_decrypt_drop(a);
	return rc;
}

cim_err
cimc_decrypt(cim_client *c, cimc_enc **items, size_t n, cim_error *err)
{
	for (;;) {
		cimc_ask a;
		cim_err rc = cimc_decrypt_send(c, items, n, &a, err);
		if (rc != CIM_ERR_OK)
			return rc;
		if (a.n == 0)
			return CIM_ERR_OK; /* everything is done */
		if ((rc = cimc_decrypt_wait(c, &a, err)) != CIM_ERR_OK)
			return rc;
	}
}
