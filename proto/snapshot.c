/*
 * snapshot.c: the snapshot block and the aggregate's KV key.
 *
 * The six keys are written in their fixed canonical order (length first,
 * then bytewise: event_cid sorts before timestamp), so nothing is sorted at
 * run time; reading goes through the strict DAG-CBOR reader, which refuses
 * any other order, and then checks the key set and each value's type.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagcbor.h"
#include "errors.h"
#include "ids.h"
#include "snapshot.h"

static int
put_text(cbuf *out, const char *s)
{
	return cim_cbor_write_text(out, s, strlen(s));
}

int
cim_snapshot_encode(const cim_snapshot_block *s, cbuf *out, char *err,
		    size_t errsz)
{
	size_t start = out->len;

	if (s->aggregate_type == NULL || s->aggregate_id == NULL ||
	    s->timestamp == NULL || (s->state == NULL && s->enc_state == NULL))
		return cim_errf(err, errsz, "the snapshot lacks a field");
	if (cim_cbor_write_map_head(out, 6) == -1 || put_text(out, "state") == -1)
		goto nomem;
	if (s->enc_state != NULL) {
		if (cim_cbor_write_bytes(out, s->enc_state, s->enc_state_len) == -1)
			goto nomem;
	} else if (cim_cbor_write_json(out, s->state, CIM_MAX_DEPTH, err,
				       errsz) == -1) {
		out->len = start;
		return -1;
	}
	if (put_text(out, "version") == -1 ||
	    cim_cbor_write_uint(out, s->version) == -1 ||
	    put_text(out, "event_cid") == -1 ||
	    cim_cbor_write_link(out, &s->event_cid) == -1 ||
	    put_text(out, "timestamp") == -1 || put_text(out, s->timestamp) == -1 ||
	    put_text(out, "aggregate_id") == -1 ||
	    put_text(out, s->aggregate_id) == -1 ||
	    put_text(out, "aggregate_type") == -1 ||
	    put_text(out, s->aggregate_type) == -1)
		goto nomem;
	return 0;
nomem:
	out->len = start;
	return cim_errf(err, errsz, "out of memory");
}

/* A text value as a C string; NULL for another type, or for text holding a
 * NUL, which a C string would cut short (event blocks refuse it too). */
static char *
take_text(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	const char *s = json_string_value(v);

	if (s == NULL || strlen(s) != json_string_length(v))
		return NULL;
	return strdup(s);
}

/* The event_cid of a snapshot block that read as a canonical map of the six
 * keys: the third value, after state and version. It must be a tag-42 link
 * (its JSON form, {"/": "<cid>"}, is also what a plain map reads as). */
static int
read_event_cid(const uint8_t *p, size_t len, cim_cid *out)
{
	cim_cbor_keys ks = CIM_CBOR_KEYS_INIT;
	cim_cbor_reader r;
	cim_cbor_item it;

	cim_cbor_reader_init(&r, p, len);
	if (cim_cbor_next(&r, &it) != 0 ||
	    cim_cbor_next_key(&r, &ks, &it) != 0 ||
	    cim_cbor_skip(&r, CIM_MAX_DEPTH) != 0 ||
	    cim_cbor_next_key(&r, &ks, &it) != 0 || cim_cbor_skip(&r, 0) != 0 ||
	    cim_cbor_next_key(&r, &ks, &it) != 0 || it.len != 9 ||
	    memcmp(it.data, "event_cid", 9) != 0)
		return -1;
	return cim_cbor_read_link(&r, out);
}

int
cim_snapshot_decode(const uint8_t *p, size_t len, cim_snapshot_block *s,
		    char *err, size_t errsz)
{
	json_t *o = NULL, *v;
	static const char *const keys[] = {"state", "version", "event_cid",
					   "timestamp", "aggregate_id",
					   "aggregate_type"};
	char why[160];
	uint64_t version;
	cim_cid event_cid;

	memset(s, 0, sizeof *s);
	/* the state may be CIM_MAX_DEPTH deep inside the map */
	if (cim_cbor_decode_json(p, len, CIM_MAX_DEPTH + 1, &o, why,
				 sizeof why) != 0)
		return cim_errf(err, errsz, "the snapshot is not valid DAG-CBOR: %s", why);
	if (!json_is_object(o) || json_object_size(o) != 6) {
		json_decref(o);
		return cim_errf(err, errsz, "the snapshot is not a map of the six "
			    "snapshot keys");
	}
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (json_object_get(o, keys[i]) == NULL) {
			json_decref(o);
			return cim_errf(err, errsz, "the snapshot has no \"%s\"", keys[i]);
		}
	v = json_object_get(o, "version");
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		json_decref(o);
		return cim_errf(err, errsz, "the snapshot's version is not a positive integer");
	}
	version = (uint64_t)json_integer_value(v);
	if (read_event_cid(p, len, &event_cid) != 0) {
		json_decref(o);
		return cim_errf(err, errsz, "the snapshot's event_cid is not a link");
	}
	s->aggregate_type = take_text(o, "aggregate_type");
	s->aggregate_id = take_text(o, "aggregate_id");
	s->timestamp = take_text(o, "timestamp");
	if (s->aggregate_type == NULL || s->aggregate_id == NULL ||
	    s->timestamp == NULL) {
		json_decref(o);
		cim_snapshot_block_free(s);
		return cim_errf(err, errsz, "the snapshot's aggregate_type, aggregate_id "
			    "and timestamp must be text without NUL");
	}
	s->version = version;
	s->event_cid = event_cid;
	s->state = json_incref(json_object_get(o, "state"));
	json_decref(o);
	return 0;
}

void
cim_snapshot_block_free(cim_snapshot_block *s)
{
	free(s->aggregate_type);
	free(s->aggregate_id);
	free(s->timestamp);
	json_decref(s->state);
	memset(s, 0, sizeof *s);
}

bool
cim_snapshot_encrypted(const uint8_t *p, size_t len, const uint8_t **enc,
		       size_t *enc_len)
{
	cim_cbor_keys ks = CIM_CBOR_KEYS_INIT;
	cim_cbor_reader r;
	cim_cbor_item it;

	/* state is the first key of the map */
	cim_cbor_reader_init(&r, p, len);
	if (cim_cbor_next(&r, &it) != 0 || it.kind != CIM_CBOR_MAP ||
	    cim_cbor_next_key(&r, &ks, &it) != 0 || it.len != 5 ||
	    memcmp(it.data, "state", 5) != 0 || cim_cbor_next(&r, &it) != 0 ||
	    it.kind != CIM_CBOR_BYTES)
		return false;
	if (enc != NULL)
		*enc = it.data;
	if (enc_len != NULL)
		*enc_len = it.len;
	return true;
}

/* ---- KV keys ------------------------------------------------------------- */

static bool
escaped(char c)
{
	return c == ':' || c == '@' || c == '+' || c == '=';
}

int
cim_kv_key(char out[CIM_KV_KEY_MAX], const char *aggregate_type,
	   const char *aggregate_id)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n;

	if (!cim_token_type_ok(aggregate_type) || !cim_token_id_ok(aggregate_id))
		return -1;
	n = (size_t)snprintf(out, CIM_KV_KEY_MAX, "%s.", aggregate_type);
	for (const char *c = aggregate_id; *c; c++) {
		if (escaped(*c)) {
			out[n++] = '=';
			out[n++] = hex[(unsigned char)*c >> 4];
			out[n++] = hex[(unsigned char)*c & 15];
		} else {
			out[n++] = *c;
		}
	}
	out[n] = '\0';
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
cim_kv_key_parse(const char *key, char type[65], char id[129])
{
	const char *dot = strchr(key, '.');
	size_t tlen, n = 0;
	char back[CIM_KV_KEY_MAX];

	if (dot == NULL || (tlen = (size_t)(dot - key)) == 0 || tlen > 64)
		return -1;
	memcpy(type, key, tlen);
	type[tlen] = '\0';
	for (const char *c = dot + 1; *c; c++) {
		char ch = *c;
		if (n == 128)
			return -1;
		if (ch == '=') {
			int hi = hexval(c[1]), lo = hi < 0 ? -1 : hexval(c[2]);
			if (lo < 0)
				return -1;
			ch = (char)(hi << 4 | lo);
			c += 2;
		}
		id[n++] = ch;
	}
	id[n] = '\0';
	/* only what cim_kv_key writes: writing it again gives the same key */
	if (cim_kv_key(back, type, id) != 0 || strcmp(back, key) != 0)
		return -1;
	return 0;
}
