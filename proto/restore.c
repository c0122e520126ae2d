/*
 * restore.c: decoding and checking a restore request (restore.h).
 *
 * The JSON is read by the request rules of request.c (an object, no
 * duplicate or unknown keys); each base64 text is decoded strictly
 * (libsodium, the original alphabet with its padding, nothing ignored)
 * into one allocation. Every check that needs only the request is made
 * here, before the daemon takes the job: what is refused here never
 * reaches the write path.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "request.h"
#include "restore.h"

void
cim_restore_text(char *out, size_t size, const char *s, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(out, s, len);
	out[len] = '\0';
}

void
cim_restore_req_free(cim_restore_req *r)
{
	free(r->blocks);
	free(r->types);
	free(r->ids);
	free(r->seals);
	free(r->mem);
	memset(r, 0, sizeof(*r));
}

/* Decodes the base64 text v (standard alphabet, padded) at *at in mem;
 * 0 with *p, *len set, -1 when it is not such base64. */
static int
unbase64(const json_t *v, uint8_t *mem, size_t *at, const uint8_t **p,
	 size_t *len)
{
	const char *t = json_string_value(v), *end = NULL;
	size_t tl = json_string_length(v), n = 0;

	if (tl == 0 || tl % 4 != 0 ||
	    sodium_base642bin(mem + *at, tl / 4 * 3, t, tl, NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != t + tl)
		return -1;
	*p = mem + *at;
	*len = n;
	*at += n;
	return 0;
}

static bool
same(const char *s, size_t len, const char *t)
{
	return strlen(t) == len && memcmp(s, t, len) == 0;
}

/* Checks block i (already decoded) against the aggregate and the block
 * before it. 0, or -1 with e set. */
static int
check_block(cim_restore_req *r, size_t i, const char *type, const char *id,
	    const cim_restore_limits *lim, cim_perr *e)
{
	cim_restore_block *b = &r->blocks[i];
	char field[32], why[200];
	uint64_t codec, mh;

	snprintf(field, sizeof(field), "blocks[%zu]", i);
	if (b->len > lim->max_block_bytes)
		return cim_perr_set(e, CIM_ERR_PAYLOAD_TOO_LARGE, field,
				    "%s is %zu bytes, over max_event_bytes (%zu)",
				    field, b->len, lim->max_block_bytes);
	if (cim_event_check(b->p, b->len, &b->v, why, sizeof(why)) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s is not a valid event block: %s", field,
				    why);
	if (!same(b->v.aggregate_type, b->v.aggregate_type_len, type) ||
	    !same(b->v.aggregate_id, b->v.aggregate_id_len, id))
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s is an event of another aggregate, not "
				    "of %s/%s", field, type, id);
	cim_restore_text(r->types[i], sizeof(r->types[i]), b->v.event_type,
			 b->v.event_type_len);
	if (b->v.event_type_len > CIM_TYPE_MAX || !cim_token_type_ok(r->types[i]))
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s has an event_type that is not a valid "
				    "token", field);
	if (b->v.event_id_len > CIM_EVENT_ID_MAX ||
	    b->v.correlation_id_len > CIM_EVENT_ID_MAX ||
	    b->v.causation_id_len > CIM_EVENT_ID_MAX)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s has an event_id, correlation_id or "
				    "causation_id longer than %d bytes", field,
				    CIM_EVENT_ID_MAX);
	cim_restore_text(r->ids[i][0], sizeof(r->ids[i][0]), b->v.event_id,
			 b->v.event_id_len);
	cim_restore_text(r->ids[i][1], sizeof(r->ids[i][1]),
			 b->v.correlation_id, b->v.correlation_id_len);
	cim_restore_text(r->ids[i][2], sizeof(r->ids[i][2]), b->v.causation_id,
			 b->v.causation_id_len);
	if (cim_cid_compute(&b->cid, CIM_CODEC_DAG_CBOR, lim->hash_code, b->p,
			    b->len) != 0)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL,
				    "the store's hash is not supported");
	if (b->v.has_prev &&
	    (cim_cid_info(&b->v.prev, &codec, &mh) != 0 ||
	     codec != CIM_CODEC_DAG_CBOR || mh != lim->hash_code))
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s links to its previous event by a CID "
				    "that is not dag-cbor %s, which this store "
				    "hashes with", field,
				    cim_hash_name(lim->hash_code));
	if (i == 0)
		return 0;
	const cim_restore_block *a = &r->blocks[i - 1];
	if (b->v.version != a->v.version + 1)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s is version %llu, which does not follow "
				    "version %llu of blocks[%zu]", field,
				    (unsigned long long)b->v.version,
				    (unsigned long long)a->v.version, i - 1);
	if (!b->v.has_prev || !cim_cid_equal(&b->v.prev, &a->cid))
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s does not link to blocks[%zu] (its prev "
				    "is not that block's CID)", field, i - 1);
	return 0;
}

/* Decodes seal i and ties it to its block. 0, or -1 with e set. */
static int
check_seal(cim_restore_req *r, size_t i, const json_t *v, size_t *at,
	   cim_perr *e)
{
	cim_seal_block *s = &r->seals[i];
	const uint8_t *p;
	size_t len, k;
	char field[32], why[200];

	snprintf(field, sizeof(field), "seals[%zu]", i);
	if (!json_is_string(v))
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, field,
				    "%s must be a string", field);
	if (unbase64(v, r->mem, at, &p, &len) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s is not standard base64 with padding",
				    field);
	if (cim_seal_block_decode(p, len, s, why, sizeof(why)) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s is not a seal block: %s", field, why);
	for (k = 0; k < r->n; k++)
		if (cim_cid_equal(&s->cid, &r->blocks[k].cid))
			break;
	if (k == r->n)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s seals an event that is not among the "
				    "blocks", field);
	if (r->blocks[k].seal >= 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s seals blocks[%zu], which seals[%d] "
				    "seals already", field, k,
				    r->blocks[k].seal);
	if (!cim_seal_verify(s->pk, &s->cid, s->sig))
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				    "%s does not verify under its key", field);
	r->blocks[k].seal = (int)i;
	return 0;
}

/* The shape: blocks an array of 1..max strings, seals an array of
 * strings, key a string. Sums the text lengths into *text. */
static int
check_shape(const json_t *root, const cim_restore_limits *lim,
	    size_t *text, cim_perr *e)
{
	static const char *const allowed[] = {"blocks", "seals", "key", NULL};
	const json_t *blocks = json_object_get(root, "blocks");
	const json_t *seals = json_object_get(root, "seals");
	const json_t *key = json_object_get(root, "key");
	const json_t *v;
	size_t i;

	if (cim_json_only_keys(root, allowed, e) != 0)
		return -1;
	if (blocks == NULL)
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "blocks",
				    "blocks is required: an array of base64 "
				    "event blocks");
	if (!json_is_array(blocks))
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "blocks",
				    "blocks must be an array");
	if (json_array_size(blocks) == 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "blocks",
				    "blocks must hold at least one block");
	if (json_array_size(blocks) > lim->max_blocks)
		return cim_perr_set(e, CIM_ERR_PAYLOAD_TOO_LARGE, "blocks",
				    "blocks holds %zu blocks, over "
				    "max_events_per_append (%zu)",
				    json_array_size(blocks), lim->max_blocks);
	if (seals != NULL && !json_is_array(seals))
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "seals",
				    "seals must be an array");
	if (seals != NULL && json_array_size(seals) > json_array_size(blocks))
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "seals",
				    "seals holds more seals than there are "
				    "blocks");
	if (key != NULL && !json_is_string(key))
		return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "key",
				    "key must be a string (base64 of a key "
				    "block)");
	*text = key ? json_string_length(key) : 0;
	json_array_foreach(blocks, i, v) {
		if (!json_is_string(v))
			return cim_perr_set(e, CIM_ERR_INVALID_REQUEST, "blocks",
					    "blocks[%zu] must be a string", i);
		*text += json_string_length(v);
	}
	json_array_foreach(seals, i, v)
		*text += json_is_string(v) ? json_string_length(v) : 0;
	return 0;
}

int
cim_restore_req_parse(const void *body, size_t len, const char *type,
		      const char *id, const cim_restore_limits *lim,
		      cim_restore_req *out, cim_perr *e)
{
	json_t *root = cim_json_parse_request(body, len, e), *blocks, *seals,
	       *key, *v;
	size_t i, text = 0, at = 0;

	memset(out, 0, sizeof(*out));
	if (root == NULL)
		return -1;
	if (check_shape(root, lim, &text, e) != 0)
		goto fail;
	blocks = json_object_get(root, "blocks");
	seals = json_object_get(root, "seals");
	key = json_object_get(root, "key");
	out->n = json_array_size(blocks);
	out->nseals = json_array_size(seals);
	out->blocks = calloc(out->n, sizeof(*out->blocks));
	out->types = calloc(out->n, sizeof(*out->types));
	out->ids = calloc(out->n, sizeof(*out->ids));
	out->seals = calloc(out->nseals ? out->nseals : 1, sizeof(*out->seals));
	out->mem = malloc(text / 4 * 3 + 1);
	if (out->blocks == NULL || out->types == NULL || out->ids == NULL ||
	    out->seals == NULL || out->mem == NULL) {
		cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "out of memory");
		goto fail;
	}
	json_array_foreach(blocks, i, v) {
		cim_restore_block *b = &out->blocks[i];

		b->seal = -1;
		if (unbase64(v, out->mem, &at, &b->p, &b->len) != 0) {
			char field[32];

			snprintf(field, sizeof(field), "blocks[%zu]", i);
			cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				     "%s is not standard base64 with padding",
				     field);
			goto fail;
		}
		if (check_block(out, i, type, id, lim, e) != 0)
			goto fail;
	}
	json_array_foreach(seals, i, v)
		if (check_seal(out, i, v, &at, e) != 0)
			goto fail;
	if (key != NULL) {
		const uint8_t *p;
		size_t klen;
		char why[200];

		if (unbase64(key, out->mem, &at, &p, &klen) != 0) {
			cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "key",
				     "key is not standard base64 with "
				     "padding");
			goto fail;
		}
		if (cim_keyblock_decode(&out->key, p, klen, why, sizeof(why)) != 0) {
			cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "key",
				     "key is not a key block: %s", why);
			goto fail;
		}
		if (strcmp(out->key.aggregate_type, type) != 0 ||
		    strcmp(out->key.aggregate_id, id) != 0) {
			cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "key",
				     "key is the key block of another aggregate, "
				     "not of %s/%s", type, id);
			goto fail;
		}
		out->has_key = true;
	}
	/* CimForgotten ends an aggregate: nothing after it, and no key */
	for (size_t b = 0; b < out->n; b++) {
		if (strcmp(out->types[b], CIM_FORGOTTEN_TYPE) != 0)
			continue;
		char field[32];
		snprintf(field, sizeof(field), "blocks[%zu]", b);
		if (b + 1 < out->n) {
			cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, field,
				     "%s is a %s event, which ends an aggregate, "
				     "yet blocks follow it", field,
				     CIM_FORGOTTEN_TYPE);
			goto fail;
		}
		if (out->has_key) {
			cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "key",
				     "key is given with a %s event: a forgotten "
				     "aggregate has no data key", CIM_FORGOTTEN_TYPE);
			goto fail;
		}
	}
	json_decref(root);
	return 0;
fail:
	json_decref(root);
	cim_restore_req_free(out);
	return -1;
}
