/*
 * decrypt.c: decoding a decrypt request (decrypt.h).
 *
 * Two readers. The full one parses the body with jansson and refuses what
 * is wrong with the same codes and messages as every other request. A
 * request carries up to thousands of base64 texts, which jansson reads a
 * character at a time, so a fast one goes first: it takes only the plain
 * form readers send (members in any order, strings of printable ASCII
 * without escapes, no duplicate members, white space between tokens) and
 * gives exactly what the full one would; anything else, valid or not, is
 * left to the full one, which also words every refusal.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
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
	if (strlen(json_string_value(id)) != json_string_length(id) ||
	    !cim_token_id_ok(json_string_value(id)))
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
	if (cim_base64_decode(it->enc, json_string_value(data), tlen,
			      &it->enc_len) != 0 ||
	    it->enc_len < CIM_ENC_OVERHEAD || it->enc_len > max_enc)
		return bad_item(e, CIM_ERR_INVALID_ARGUMENT, i, "data",
				"must be standard base64 (with padding) of an "
				"encrypted value: a nonce, ciphertext and tag");
	it->aggregate_id = json_string_value(id);
	it->event_id = json_string_value(eid);
	it->event_id_len = json_string_length(eid);
	return 0;
}

/* ---- the fast reader ------------------------------------------------------------- */

struct scan {
	const char *p, *end;
};

static void
ws(struct scan *sc)
{
	while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' ||
				   *sc->p == '\n' || *sc->p == '\r'))
		sc->p++;
}

static bool
lit(struct scan *sc, char c)
{
	ws(sc);
	if (sc->p < sc->end && *sc->p == c) {
		sc->p++;
		return true;
	}
	return false;
}

/* A string of printable ASCII without escapes: its contents. */
static bool
str(struct scan *sc, const char **s, size_t *n)
{
	if (!lit(sc, '"'))
		return false;
	const char *q = sc->p;
	while (q < sc->end && *q != '"') {
		if (*q < 0x20 || *q > 0x7e || *q == '\\')
			return false;
		q++;
	}
	if (q == sc->end)
		return false;
	*s = sc->p;
	*n = (size_t)(q - sc->p);
	sc->p = q + 1;
	return true;
}

static bool
is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* 0 with *out filled, or -1 when the body is not in the plain form or
 * the full reader would refuse it (nothing is set in e). */
static int
parse_fast(const void *body, size_t len, size_t max_items, size_t max_enc,
	   cim_decrypt_req *out)
{
	struct scan sc = {body, (const char *)body + len};
	const char *k, *v;
	size_t kn, vn, cap = 16, used = 0, names = 0;
	struct raw {
		const char *id, *eid, *data;
		size_t idn, eidn, datan;
	} *raw = malloc(cap * sizeof(*raw));

	if (raw == NULL || !lit(&sc, '{') || !str(&sc, &k, &kn) ||
	    !is(k, kn, "items") || !lit(&sc, ':') || !lit(&sc, '['))
		goto no;
	do {
		struct raw r = {0};
		if (used == max_items || !lit(&sc, '{'))
			goto no;
		for (int m = 0; m < 3; m++) {
			if ((m > 0 && !lit(&sc, ',')) || !str(&sc, &k, &kn) ||
			    !lit(&sc, ':') || !str(&sc, &v, &vn))
				goto no;
			if (is(k, kn, "aggregate_id") && r.id == NULL)
				r.id = v, r.idn = vn;
			else if (is(k, kn, "event_id") && r.eid == NULL)
				r.eid = v, r.eidn = vn;
			else if (is(k, kn, "data") && r.data == NULL)
				r.data = v, r.datan = vn;
			else
				goto no;
		}
		if (!lit(&sc, '}') || r.idn > CIM_ID_MAX || r.eidn > CIM_EVENT_ID_MAX ||
		    r.datan / 4 * 3 > max_enc + 2)
			goto no;
		if (used == cap) {
			struct raw *n = realloc(raw, 2 * cap * sizeof(*raw));
			if (n == NULL)
				goto no;
			raw = n;
			cap *= 2;
		}
		raw[used++] = r;
		names += r.idn + r.eidn + 2;
	} while (lit(&sc, ','));
	if (!lit(&sc, ']') || !lit(&sc, '}'))
		goto no;
	ws(&sc);
	if (sc.p != sc.end)
		goto no;

	/* the ids, NUL-terminated, in one allocation */
	out->n = used;
	out->items = calloc(used, sizeof(*out->items));
	out->arena = malloc(names);
	if (out->items == NULL || out->arena == NULL)
		goto fail;
	char *a = out->arena;
	for (size_t i = 0; i < used; i++) {
		cim_decrypt_item *it = &out->items[i];
		memcpy(a, raw[i].id, raw[i].idn);
		a[raw[i].idn] = '\0';
		it->aggregate_id = a;
		a += raw[i].idn + 1;
		memcpy(a, raw[i].eid, raw[i].eidn);
		a[raw[i].eidn] = '\0';
		it->event_id = a;
		it->event_id_len = raw[i].eidn;
		a += raw[i].eidn + 1;
		if (!cim_token_id_ok(it->aggregate_id) ||
		    (it->enc = malloc(raw[i].datan / 4 * 3 + 1)) == NULL ||
		    cim_base64_decode(it->enc, raw[i].data, raw[i].datan, &it->enc_len) != 0 ||
		    it->enc_len < CIM_ENC_OVERHEAD || it->enc_len > max_enc)
			goto fail;
	}
	free(raw);
	return 0;
fail:
	cim_decrypt_req_free(out);
no:
	free(raw);
	return -1;
}

/* ---- the full reader --------------------------------------------------------------- */

int
cim_decrypt_req_parse(const void *body, size_t len, size_t max_items,
		      size_t max_enc, cim_decrypt_req *out, cim_perr *e)
{
	memset(out, 0, sizeof(*out));
	if (parse_fast(body, len, max_items, max_enc, out) == 0)
		return 0;
	return cim_decrypt_req_parse_full(body, len, max_items, max_enc, out, e);
}

int
cim_decrypt_req_parse_full(const void *body, size_t len, size_t max_items,
			   size_t max_enc, cim_decrypt_req *out, cim_perr *e)
{
	static const char *const allowed[] = {"items", NULL};
	const json_t *items;

	memset(out, 0, sizeof(*out));
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
	free(r->arena);
	json_decref(r->root);
	memset(r, 0, sizeof(*r));
}
