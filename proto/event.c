/*
 * event.c: the event block, encoded on every append and decoded by every
 * read and by validation.
 *
 * Encoding writes the eleven keys in their canonical order directly into
 * the output buffer (the order is fixed, so nothing is sorted at run time);
 * only data and metadata go through the general JSON writer. Decoding
 * walks the same order with the strict reader and refuses any other key
 * set, any type out of place and any version/prev mismatch.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagcbor.h"
#include "event.h"

#define NKEYS 11

/* The keys, in canonical order (length first, then bytewise). */
enum {
	K_DATA, K_PREV, K_VERSION, K_EVENT_ID, K_METADATA, K_TIMESTAMP,
	K_EVENT_TYPE, K_AGGREGATE_ID, K_CAUSATION_ID, K_AGGREGATE_TYPE,
	K_CORRELATION_ID
};

static const char *const keys[NKEYS] = {
	"data", "prev", "version", "event_id", "metadata", "timestamp",
	"event_type", "aggregate_id", "causation_id", "aggregate_type",
	"correlation_id"
};

static int
fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
put_key(cbuf *out, int k)
{
	return cim_cbor_write_text(out, keys[k], strlen(keys[k]));
}

static int
put_str(cbuf *out, int k, const char *s)
{
	if (put_key(out, k) == -1)
		return -1;
	return cim_cbor_write_text(out, s, strlen(s));
}

int
cim_event_encode(const cim_event_block *ev, cbuf *out, char *err,
		 size_t errsz)
{
	const char *str[NKEYS] = {NULL};
	size_t start = out->len;
	const char *key;
	json_t *v;

	str[K_EVENT_ID] = ev->event_id;
	str[K_TIMESTAMP] = ev->timestamp;
	str[K_EVENT_TYPE] = ev->event_type;
	str[K_AGGREGATE_ID] = ev->aggregate_id;
	str[K_CAUSATION_ID] = ev->causation_id;
	str[K_AGGREGATE_TYPE] = ev->aggregate_type;
	str[K_CORRELATION_ID] = ev->correlation_id;
	for (int k = K_EVENT_ID; k < NKEYS; k++)
		if (k != K_METADATA && str[k] == NULL)
			return fail(err, errsz, "the event has no %s", keys[k]);
	if (ev->metadata != NULL) {
		if (!json_is_object(ev->metadata))
			return fail(err, errsz, "metadata is not an object");
		json_object_foreach(ev->metadata, key, v)
			if (!json_is_string(v))
				return fail(err, errsz, "metadata value \"%s\" "
					    "is not a string", key);
	}

	if (cim_cbor_write_map_head(out, NKEYS) == -1 ||
	    put_key(out, K_DATA) == -1)
		goto nomem;
	if (ev->data == NULL) {
		if (cim_cbor_write_null(out) == -1)
			goto nomem;
	} else if (cim_cbor_write_json(out, ev->data, CIM_MAX_DEPTH, err,
				       errsz) == -1) {
		out->len = start;
		return -1;
	}
	if (put_key(out, K_PREV) == -1 ||
	    (ev->has_prev ? cim_cbor_write_link(out, &ev->prev)
			  : cim_cbor_write_null(out)) == -1 ||
	    put_key(out, K_VERSION) == -1 ||
	    cim_cbor_write_uint(out, ev->version) == -1 ||
	    put_str(out, K_EVENT_ID, ev->event_id) == -1 ||
	    put_key(out, K_METADATA) == -1)
		goto nomem;
	if (ev->metadata == NULL) {
		if (cim_cbor_write_map_head(out, 0) == -1)
			goto nomem;
	} else if (cim_cbor_write_json(out, ev->metadata, 1, err,
				       errsz) == -1) {
		out->len = start;
		return -1;
	}
	for (int k = K_TIMESTAMP; k < NKEYS; k++)
		if (put_str(out, k, str[k]) == -1)
			goto nomem;
	return 0;
nomem:
	out->len = start;
	return fail(err, errsz, "out of memory");
}

/* ---- decoding ---------------------------------------------------------------- */

static int derr(cim_cbor_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
derr(cim_cbor_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	return -1;
}

static int
expect_key(cim_cbor_reader *r, int k)
{
	cim_cbor_item it;
	size_t klen = strlen(keys[k]);

	if (cim_cbor_next(r, &it) == -1)
		return -1;
	if (it.kind != CIM_CBOR_TEXT)
		return derr(r, "a block key is not text");
	if (it.len != klen || memcmp(it.data, keys[k], klen) != 0)
		return derr(r, "unexpected key \"%.*s\" where \"%s\" belongs",
			    (int)(it.len > 40 ? 40 : it.len),
			    (const char *)it.data, keys[k]);
	return 0;
}

/* A text value as a new C string (no NUL inside). */
static int
read_str(cim_cbor_reader *r, int k, char **out)
{
	cim_cbor_item it;

	if (cim_cbor_next(r, &it) == -1)
		return -1;
	if (it.kind != CIM_CBOR_TEXT)
		return derr(r, "%s is not text", keys[k]);
	if (memchr(it.data, '\0', it.len) != NULL)
		return derr(r, "%s holds a NUL character", keys[k]);
	*out = strndup((const char *)it.data, it.len);
	if (*out == NULL)
		return derr(r, "out of memory");
	return 0;
}

static int
read_prev(cim_cbor_reader *r, cim_event_block *ev)
{
	if (r->pos < r->len && r->p[r->pos] == 0xf6) {
		r->pos++;
		ev->has_prev = false;
		return 0;
	}
	if (cim_cbor_read_link(r, &ev->prev) == -1) {
		if (r->err[0] == '\0')
			derr(r, "prev is not a link");
		return -1;
	}
	ev->has_prev = true;
	return 0;
}

static int
read_metadata(cim_cbor_reader *r, cim_event_block *ev)
{
	const char *key;
	json_t *v;

	/* Peek at the major type: a link or byte string would read as an
	 * object too. */
	if (r->pos < r->len && (r->p[r->pos] & 0xe0) != 0xa0)
		return derr(r, "metadata is not a map");
	if (cim_cbor_read_json(r, 1, &ev->metadata) == -1)
		return -1;
	json_object_foreach(ev->metadata, key, v)
		if (!json_is_string(v))
			return derr(r, "metadata value \"%.40s\" is not "
				    "text", key);
	return 0;
}

static int
decode(cim_cbor_reader *r, cim_event_block *ev)
{
	cim_cbor_item it;
	char **str[NKEYS] = {NULL};

	str[K_EVENT_ID] = &ev->event_id;
	str[K_TIMESTAMP] = &ev->timestamp;
	str[K_EVENT_TYPE] = &ev->event_type;
	str[K_AGGREGATE_ID] = &ev->aggregate_id;
	str[K_CAUSATION_ID] = &ev->causation_id;
	str[K_AGGREGATE_TYPE] = &ev->aggregate_type;
	str[K_CORRELATION_ID] = &ev->correlation_id;

	if (cim_cbor_next(r, &it) == -1)
		return -1;
	if (it.kind != CIM_CBOR_MAP)
		return derr(r, "the block is not a map");
	if (it.u != NKEYS)
		return derr(r, "the block has %llu keys, not %d",
			    (unsigned long long)it.u, NKEYS);
	for (int k = 0; k < NKEYS; k++) {
		if (expect_key(r, k) == -1)
			return -1;
		switch (k) {
		case K_DATA:
			if (cim_cbor_read_json(r, CIM_MAX_DEPTH,
					       &ev->data) == -1)
				return -1;
			break;
		case K_PREV:
			if (read_prev(r, ev) == -1)
				return -1;
			break;
		case K_VERSION:
			if (cim_cbor_next(r, &it) == -1)
				return -1;
			if (it.kind != CIM_CBOR_UINT || it.u == 0)
				return derr(r, "version is not a positive "
					    "integer");
			ev->version = it.u;
			break;
		case K_METADATA:
			if (read_metadata(r, ev) == -1)
				return -1;
			break;
		default:
			if (read_str(r, k, str[k]) == -1)
				return -1;
			break;
		}
	}
	if (r->pos != r->len)
		return derr(r, "%zu trailing bytes after the block",
			    r->len - r->pos);
	if (ev->version == 1 && ev->has_prev)
		return derr(r, "prev must be null at version 1");
	if (ev->version > 1 && !ev->has_prev)
		return derr(r, "prev is null at version %llu",
			    (unsigned long long)ev->version);
	return 0;
}

int
cim_event_decode(const uint8_t *p, size_t len, cim_event_block *ev,
		 char *err, size_t errsz)
{
	cim_cbor_reader r;

	memset(ev, 0, sizeof(*ev));
	cim_cbor_reader_init(&r, p, len);
	if (decode(&r, ev) == 0)
		return 0;
	cim_event_block_free(ev);
	return fail(err, errsz, "undecodable event block: %s", r.err);
}

void
cim_event_block_free(cim_event_block *ev)
{
	free(ev->aggregate_type);
	free(ev->aggregate_id);
	free(ev->event_type);
	free(ev->event_id);
	free(ev->correlation_id);
	free(ev->causation_id);
	free(ev->timestamp);
	json_decref(ev->metadata);
	json_decref(ev->data);
	memset(ev, 0, sizeof(*ev));
}

static int
set_str(json_t *o, const char *key, const char *s)
{
	return json_object_set_new_nocheck(o, key, s != NULL ?
					   json_string(s) : json_null());
}

json_t *
cim_event_to_json(const cim_event_block *ev, const cim_cid *cid,
		  uint64_t seq)
{
	char text[CIM_CID_TEXT_MAX];
	json_t *o = json_object();
	int rc = 0;

	if (o == NULL)
		return NULL;
	rc |= set_str(o, "aggregate_type", ev->aggregate_type);
	rc |= set_str(o, "aggregate_id", ev->aggregate_id);
	rc |= json_object_set_new_nocheck(o, "version",
					  json_integer((json_int_t)ev->version));
	rc |= set_str(o, "event_type", ev->event_type);
	rc |= set_str(o, "event_id", ev->event_id);
	rc |= set_str(o, "correlation_id", ev->correlation_id);
	rc |= set_str(o, "causation_id", ev->causation_id);
	rc |= set_str(o, "timestamp", ev->timestamp);
	rc |= json_object_set_new_nocheck(o, "metadata", ev->metadata != NULL ?
					  json_incref(ev->metadata) :
					  json_object());
	rc |= json_object_set_new_nocheck(o, "data", ev->data != NULL ?
					  json_incref(ev->data) : json_null());
	if (ev->has_prev) {
		cim_cid_to_text(&ev->prev, text);
		rc |= set_str(o, "prev", text);
	} else {
		rc |= set_str(o, "prev", NULL);
	}
	cim_cid_to_text(cid, text);
	rc |= set_str(o, "cid", text);
	rc |= json_object_set_new_nocheck(o, "seq",
					  json_integer((json_int_t)seq));
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}
