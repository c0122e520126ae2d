/*
 * event.c: the event block, encoded on every append and decoded by every
 * read and by validation.
 *
 * Encoding writes the eleven keys in their canonical order directly into
 * the output buffer (the order is fixed, so nothing is sorted at run time);
 * only data and metadata go through the general JSON writer. Reading
 * walks the same order with the strict reader and refuses any other key
 * set, any type out of place and any version/prev mismatch; that walk
 * (scan) is the one definition of a valid block behind all three readers:
 * cim_event_decode (builds strings and jansson values), cim_event_check
 * (builds nothing, points into the block) and cim_event_write_json
 * (writes the reply JSON straight from the block).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagcbor.h"
#include "errors.h"
#include "event.h"
#include "jsontext.h"
#include "keys.h"
#include "seal.h"

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
put_key(cbuf *out, int k)
{
	return cim_cbor_write_text(out, keys[k], strlen(keys[k]));
}

static int
put_str(cbuf *out, int k, const char *s, size_t len)
{
	if (put_key(out, k) == -1)
		return -1;
	return cim_cbor_write_text(out, s, len ? len : strlen(s));
}

int
cim_event_encode(const cim_event_block *ev, cbuf *out, char *err,
		 size_t errsz)
{
	const char *str[NKEYS] = {NULL};
	size_t len[NKEYS] = {0};
	size_t start = out->len, klen;
	char q[64];
	const char *key;
	json_t *v;

	str[K_EVENT_ID] = ev->event_id;
	str[K_TIMESTAMP] = ev->timestamp;
	str[K_EVENT_TYPE] = ev->event_type;
	str[K_AGGREGATE_ID] = ev->aggregate_id;
	str[K_CAUSATION_ID] = ev->causation_id;
	str[K_AGGREGATE_TYPE] = ev->aggregate_type;
	str[K_CORRELATION_ID] = ev->correlation_id;
	len[K_EVENT_ID] = ev->event_id_len;
	len[K_CAUSATION_ID] = ev->causation_id_len;
	len[K_CORRELATION_ID] = ev->correlation_id_len;
	for (int k = K_EVENT_ID; k < NKEYS; k++)
		if (k != K_METADATA && str[k] == NULL)
			return cim_errf(err, errsz, "the event has no %s", keys[k]);
	if (ev->metadata != NULL) {
		if (!json_is_object(ev->metadata))
			return cim_errf(err, errsz, "metadata is not an object");
		json_object_keylen_foreach(ev->metadata, key, klen, v)
			if (!json_is_string(v)) {
				cim_json_quote(q, sizeof q, key, klen);
				return cim_errf(err, errsz, "metadata value %s "
					    "is not a string", q);
			}
	}

	if (cim_cbor_write_map_head(out, NKEYS) == -1 ||
	    put_key(out, K_DATA) == -1)
		goto nomem;
	if (ev->enc_data != NULL) {
		if (cim_cbor_write_bytes(out, ev->enc_data,
					 ev->enc_data_len) == -1)
			goto nomem;
	} else if (ev->data == NULL) {
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
	    put_str(out, K_EVENT_ID, ev->event_id, len[K_EVENT_ID]) == -1 ||
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
		if (put_str(out, k, str[k], len[k]) == -1)
			goto nomem;
	return 0;
nomem:
	out->len = start;
	return cim_errf(err, errsz, "out of memory");
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

/* The view's text field for key k. */
static void
view_text(cim_event_view *v, int k, const char ***s, size_t **len)
{
	switch (k) {
	case K_EVENT_ID:
		*s = &v->event_id, *len = &v->event_id_len;
		break;
	case K_TIMESTAMP:
		*s = &v->timestamp, *len = &v->timestamp_len;
		break;
	case K_EVENT_TYPE:
		*s = &v->event_type, *len = &v->event_type_len;
		break;
	case K_AGGREGATE_ID:
		*s = &v->aggregate_id, *len = &v->aggregate_id_len;
		break;
	case K_CAUSATION_ID:
		*s = &v->causation_id, *len = &v->causation_id_len;
		break;
	case K_AGGREGATE_TYPE:
		*s = &v->aggregate_type, *len = &v->aggregate_type_len;
		break;
	case K_CORRELATION_ID:
	default:
		*s = &v->correlation_id, *len = &v->correlation_id_len;
		break;
	}
}

/* A text value seen in place: any text for the three ids, without NUL
 * for the rest (types, aggregate id and timestamp have rules of their
 * own that leave NUL out). */
static int
scan_str(cim_cbor_reader *r, int k, cim_event_view *v)
{
	cim_cbor_item it;
	const char **s;
	size_t *len;

	if (cim_cbor_next(r, &it) == -1)
		return -1;
	if (it.kind != CIM_CBOR_TEXT)
		return derr(r, "%s is not text", keys[k]);
	if (k != K_EVENT_ID && k != K_CORRELATION_ID && k != K_CAUSATION_ID &&
	    memchr(it.data, '\0', it.len) != NULL)
		return derr(r, "%s holds a NUL character", keys[k]);
	view_text(v, k, &s, &len);
	*s = (const char *)it.data;
	*len = it.len;
	return 0;
}

static int
scan_prev(cim_cbor_reader *r, cim_event_view *v)
{
	if (r->pos < r->len && r->p[r->pos] == 0xf6) {
		r->pos++;
		v->has_prev = false;
		return 0;
	}
	if (cim_cbor_read_link(r, &v->prev) == -1) {
		if (r->err[0] == '\0')
			derr(r, "prev is not a link");
		return -1;
	}
	v->has_prev = true;
	return 0;
}

/* A map of text to text. Read as cim_cbor_read_json(r, 1, ...) reads it
 * (each value with cim_cbor_skip(r, 0), the same checks read_json makes at
 * that depth), and only then is the first value that is not text refused,
 * so the same blocks fail with the same messages as reading it into a
 * jansson object and checking that. Built as a jansson object in *out
 * when out is not NULL (the caller frees it, even on failure). */
static int
scan_metadata(cim_cbor_reader *r, json_t **out)
{
	cim_cbor_keys ks = CIM_CBOR_KEYS_INIT;
	cim_cbor_item it, key, val;
	const uint8_t *bad = NULL;
	size_t badlen = 0;

	/* Peek at the major type: a link or byte string would read as an
	 * object too. */
	if (r->pos < r->len && (r->p[r->pos] & 0xe0) != 0xa0)
		return derr(r, "metadata is not a map");
	if (cim_cbor_next(r, &it) == -1)
		return -1;
	if (out != NULL && (*out = json_object()) == NULL)
		return derr(r, "out of memory");
	for (uint64_t i = 0; i < it.u; i++) {
		if (cim_cbor_next_key(r, &ks, &key) == -1)
			return -1;
		if (r->pos < r->len && (r->p[r->pos] & 0xe0) != 0x60) {
			if (cim_cbor_skip(r, 0) == -1)
				return -1;
			if (bad == NULL) {
				bad = key.data;
				badlen = key.len;
			}
			continue;
		}
		if (cim_cbor_next(r, &val) == -1)
			return -1;
		if (out != NULL && bad == NULL &&
		    json_object_setn_new_nocheck(*out, (const char *)key.data,
			key.len, json_stringn_nocheck((const char *)val.data,
						      val.len)) == -1)
			return derr(r, "out of memory");
	}
	if (bad != NULL) {
		char q[64];

		cim_json_quote(q, sizeof q, (const char *)bad, badlen);
		return derr(r, "metadata value %s is not text", q);
	}
	return 0;
}

/* What a scan makes of data and metadata besides checking them: nothing
 * (check), data as JSON text appended to data_text (write_json), or both
 * as jansson values (decode). */
typedef struct sink {
	cbuf *data_text;
	json_t **data;
	json_t **metadata;
} sink;

/*
 * The one definition of a valid block, shared by decode, check and
 * write_json: the map head, the eleven keys in order, each value of its
 * type, nothing after, and version/prev consistent. Fills *v.
 */
static int
scan(cim_cbor_reader *r, cim_event_view *v, const sink *sk)
{
	cim_cbor_item it;
	size_t at;
	int rc;

	memset(v, 0, sizeof(*v));
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
		at = r->pos;
		switch (k) {
		case K_DATA:
			if (sk->data != NULL)
				rc = cim_cbor_read_json(r, CIM_MAX_DEPTH,
							sk->data);
			else if (sk->data_text != NULL)
				rc = cim_cbor_read_json_text(r, CIM_MAX_DEPTH,
							     sk->data_text);
			else
				rc = cim_cbor_skip(r, CIM_MAX_DEPTH);
			if (rc == -1)
				return -1;
			v->data = r->p + at;
			v->data_len = r->pos - at;
			break;
		case K_PREV:
			if (scan_prev(r, v) == -1)
				return -1;
			break;
		case K_VERSION:
			if (cim_cbor_next(r, &it) == -1)
				return -1;
			if (it.kind != CIM_CBOR_UINT || it.u == 0)
				return derr(r, "version is not a positive "
					    "integer");
			v->version = it.u;
			break;
		case K_METADATA:
			if (scan_metadata(r, sk->metadata) == -1)
				return -1;
			v->metadata = r->p + at;
			v->metadata_len = r->pos - at;
			break;
		default:
			if (scan_str(r, k, v) == -1)
				return -1;
			break;
		}
	}
	if (r->pos != r->len)
		return derr(r, "%zu trailing bytes after the block",
			    r->len - r->pos);
	if (v->version == 1 && v->has_prev)
		return derr(r, "prev must be null at version 1");
	if (v->version > 1 && !v->has_prev)
		return derr(r, "prev is null at version %llu",
			    (unsigned long long)v->version);
	return 0;
}

static int
decode(cim_cbor_reader *r, cim_event_block *ev)
{
	sink sk = {NULL, &ev->data, &ev->metadata};
	cim_event_view v;
	char **dst[NKEYS] = {NULL};
	const char **s;
	size_t *len;

	if (scan(r, &v, &sk) == -1)
		return -1;
	dst[K_EVENT_ID] = &ev->event_id;
	dst[K_TIMESTAMP] = &ev->timestamp;
	dst[K_EVENT_TYPE] = &ev->event_type;
	dst[K_AGGREGATE_ID] = &ev->aggregate_id;
	dst[K_CAUSATION_ID] = &ev->causation_id;
	dst[K_AGGREGATE_TYPE] = &ev->aggregate_type;
	dst[K_CORRELATION_ID] = &ev->correlation_id;
	for (int k = K_EVENT_ID; k < NKEYS; k++) {
		if (k == K_METADATA)
			continue;
		view_text(&v, k, &s, &len);
		if ((*dst[k] = malloc(*len + 1)) == NULL)
			return derr(r, "out of memory");
		memcpy(*dst[k], *s, *len);
		(*dst[k])[*len] = '\0';
	}
	ev->event_id_len = v.event_id_len;
	ev->correlation_id_len = v.correlation_id_len;
	ev->causation_id_len = v.causation_id_len;
	ev->version = v.version;
	ev->has_prev = v.has_prev;
	ev->prev = v.prev;
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
	return cim_errf(err, errsz, "undecodable event block: %s", r.err);
}

int
cim_event_check(const uint8_t *p, size_t len, cim_event_view *v,
		char *err, size_t errsz)
{
	sink sk = {NULL, NULL, NULL};
	cim_cbor_reader r;

	cim_cbor_reader_init(&r, p, len);
	if (scan(&r, v, &sk) == 0)
		return 0;
	return cim_errf(err, errsz, "undecodable event block: %s", r.err);
}

/* ---- the reply form, straight from the block --------------------------------- */

/* ,"name": then s as a JSON string (key is plain ASCII, needs no escape). */
static int
json_field(cbuf *out, const char *key, const char *s, size_t len)
{
	if (cbuf_putc(out, ',') == -1 || cbuf_putc(out, '"') == -1 ||
	    cbuf_puts(out, key) == -1 || cbuf_put(out, "\":", 2) == -1)
		return -1;
	return s == NULL ? cbuf_put(out, "null", 4)
			 : cim_json_write_string(out, s, len);
}

/* out ends with A (a bytes from start) then B: make it B then A, using
 * B's length of spare room past the end. */
static int
swap_tail(cbuf *out, size_t start, size_t a)
{
	size_t b = out->len - start - a;

	if (cbuf_reserve(out, b) == -1)
		return -1;
	memcpy(out->p + out->len, out->p + start + a, b);
	memmove(out->p + start + b, out->p + start, a);
	memcpy(out->p + start, out->p + out->len, b);
	return 0;
}

/* The shown data after ,"data": when it is not the stored data. */
static int
shown_data(cbuf *out, cim_show show, const char *data, size_t data_len)
{
	if (show == CIM_SHOW_FORGOTTEN)
		return cbuf_puts(out, "null,\"forgotten\":true");
	if (data == NULL ? cbuf_puts(out, "null") == -1
			 : cbuf_put(out, data, data_len) == -1)
		return -1;
	return cbuf_puts(out, ",\"encrypted\":true");
}

/*
 * The reply object has cim_event_to_json's key order: aggregate_type ...
 * timestamp, metadata, data, prev, cid, seq. The block has data first, so
 * data is written as JSON text while it is checked (one pass), the fields
 * before it are written after it once the whole block has passed, and the
 * two runs are swapped in place. Metadata, small and already checked, is
 * read a second time to write it. Data shown otherwise is only checked
 * while scanning, and its replacement written in its place.
 */
int
cim_event_write_json_as(cbuf *out, const uint8_t *p, size_t len,
			const cim_cid *cid, uint64_t seq, cim_show show,
			const char *data, size_t data_len, char *err,
			size_t errsz)
{
	sink sk = {show == CIM_SHOW_STORED ? out : NULL, NULL, NULL};
	char text[CIM_CID_TEXT_MAX];
	size_t start = out->len, dlen, n;
	cim_cbor_reader r, mr;
	cim_event_view v;

	cim_cbor_reader_init(&r, p, len);
	if (scan(&r, &v, &sk) == -1) {
		out->len = start;
		return cim_errf(err, errsz, "undecodable event block: %s", r.err);
	}
	dlen = out->len - start;
	cim_cbor_reader_init(&mr, v.metadata, v.metadata_len);
	if (cbuf_puts(out, "{\"aggregate_type\":") == -1 ||
	    cim_json_write_string(out, v.aggregate_type,
				  v.aggregate_type_len) == -1 ||
	    json_field(out, "aggregate_id", v.aggregate_id,
		       v.aggregate_id_len) == -1 ||
	    cbuf_puts(out, ",\"version\":") == -1 ||
	    cim_json_write_int(out, (int64_t)v.version) == -1 ||
	    json_field(out, "event_type", v.event_type,
		       v.event_type_len) == -1 ||
	    json_field(out, "event_id", v.event_id, v.event_id_len) == -1 ||
	    json_field(out, "correlation_id", v.correlation_id,
		       v.correlation_id_len) == -1 ||
	    json_field(out, "causation_id", v.causation_id,
		       v.causation_id_len) == -1 ||
	    json_field(out, "timestamp", v.timestamp, v.timestamp_len) == -1 ||
	    cbuf_puts(out, ",\"metadata\":") == -1 ||
	    cim_cbor_read_json_text(&mr, 1, out) == -1 ||
	    cbuf_puts(out, ",\"data\":") == -1 ||
	    (show == CIM_SHOW_STORED ? swap_tail(out, start, dlen)
				     : shown_data(out, show, data, data_len)) == -1)
		goto nomem;
	n = v.has_prev ? cim_cid_to_text(&v.prev, text) : 0;
	if (json_field(out, "prev", v.has_prev ? text : NULL, n) == -1)
		goto nomem;
	n = cim_cid_to_text(cid, text);
	if (json_field(out, "cid", text, n) == -1 ||
	    cbuf_puts(out, ",\"seq\":") == -1 ||
	    cim_json_write_int(out, (int64_t)seq) == -1 ||
	    cbuf_putc(out, '}') == -1)
		goto nomem;
	return 0;
nomem:
	out->len = start;
	return cim_errf(err, errsz, "out of memory");
}

int
cim_event_json_add_seal(cbuf *out, const char *key, const char *sig)
{
	uint8_t pk[CIM_KEY_BYTES], raw[CIM_SEAL_SIG_BYTES];
	size_t start = out->len;

	if (key == NULL || sig == NULL || out->len == 0 ||
	    out->p[out->len - 1] != '}' || cim_pubkey_from_text(pk, key) != 0 ||
	    cim_seal_sig_from_text(raw, sig, strlen(sig)) != 0)
		return 0;
	/* base58 and base64 characters: nothing to escape */
	out->len--;
	if (cbuf_puts(out, ",\"seal\":{\"key\":\"") == -1 ||
	    cbuf_puts(out, key) == -1 || cbuf_puts(out, "\",\"sig\":\"") == -1 ||
	    cbuf_puts(out, sig) == -1 || cbuf_puts(out, "\"}}") == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

int
cim_event_write_json(cbuf *out, const uint8_t *p, size_t len,
		     const cim_cid *cid, uint64_t seq, char *err, size_t errsz)
{
	return cim_event_write_json_as(out, p, len, cid, seq, CIM_SHOW_STORED,
				       NULL, 0, err, errsz);
}

bool
cim_event_encrypted(const cim_event_view *v, const uint8_t **enc,
		    size_t *enc_len)
{
	cim_cbor_reader r;
	cim_cbor_item it;

	if (v->data == NULL)
		return false;
	cim_cbor_reader_init(&r, v->data, v->data_len);
	if (cim_cbor_next(&r, &it) == -1 ||
	    it.kind != CIM_CBOR_BYTES)
		return false;
	if (enc != NULL)
		*enc = it.data;
	if (enc_len != NULL)
		*enc_len = it.len;
	return true;
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

/* An id, which may hold U+0000 (len 0: strlen, as for encoding). */
static int
set_id(json_t *o, const char *key, const char *s, size_t len)
{
	if (s == NULL)
		return set_str(o, key, NULL);
	return json_object_set_new_nocheck(o, key,
					   json_stringn(s, len ? len : strlen(s)));
}

json_t *
cim_event_to_json(const cim_event_block *ev, const cim_cid *cid,
		  uint64_t seq)
{
	return cim_event_to_json_as(ev, cid, seq, CIM_SHOW_STORED, NULL);
}

json_t *
cim_event_to_json_as(const cim_event_block *ev, const cim_cid *cid,
		     uint64_t seq, cim_show show, json_t *data)
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
	rc |= set_id(o, "event_id", ev->event_id, ev->event_id_len);
	rc |= set_id(o, "correlation_id", ev->correlation_id,
		     ev->correlation_id_len);
	rc |= set_id(o, "causation_id", ev->causation_id,
		     ev->causation_id_len);
	rc |= set_str(o, "timestamp", ev->timestamp);
	rc |= json_object_set_new_nocheck(o, "metadata", ev->metadata != NULL ?
					  json_incref(ev->metadata) :
					  json_object());
	if (show == CIM_SHOW_STORED)
		rc |= json_object_set_new_nocheck(o, "data", ev->data != NULL ?
						  json_incref(ev->data) :
						  json_null());
	else if (show == CIM_SHOW_FORGOTTEN)
		rc |= json_object_set_new_nocheck(o, "data", json_null()) |
		      json_object_set_new_nocheck(o, "forgotten", json_true());
	else
		rc |= json_object_set_new_nocheck(o, "data", data != NULL ?
						  json_incref(data) :
						  json_null()) |
		      json_object_set_new_nocheck(o, "encrypted", json_true());
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
