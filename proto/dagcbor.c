/*
 * dagcbor.c: strict DAG-CBOR between jansson values and bytes, with libcbor.
 *
 * Writing uses libcbor's streaming encoders, which emit the shortest head
 * for a value or length, straight into the output cbuf; no item trees are
 * built. Map keys are collected and sorted length-first then bytewise.
 *
 * Reading pulls one head at a time through cbor_stream_decode, whose
 * callbacks only record what they saw. After each call the byte count it
 * consumed is compared with the shortest head for the value, which is how
 * non-minimal encodings are caught; everything else DAG-CBOR forbids
 * (indefinite lengths, short floats, odd simple values and tags, bad
 * UTF-8, unordered keys) is refused on the way. Whole values are read by
 * three walkers (into jansson, skipped, or straight to JSON text) that
 * share every check through value_head and cim_cbor_next_key.
 */
#include <cbor.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagcbor.h"
#include "jsontext.h"

#define TAG_CID 42

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool
utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i], lo = 0x80, hi = 0xbf;
		size_t more;

		/* eight ASCII bytes at a time: most text is ASCII */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ULL)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c < 0xc2)
			return false;
		if (c < 0xe0) {
			more = 1;
		} else if (c < 0xf0) {
			more = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c < 0xf5) {
			more = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if (n - i - 1 < more)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= more; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += more + 1;
	}
	return true;
}

/* ---- writing ---------------------------------------------------------------- */

int
cim_cbor_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c;

	if (alen != blen)
		return alen < blen ? -1 : 1;
	c = memcmp(a, b, alen);
	return c < 0 ? -1 : c > 0;
}

typedef size_t (*head_fn)(uint64_t, unsigned char *, size_t);

/* One head through a libcbor encoder, written in place. */
static int
put_head(cbuf *out, head_fn fn, uint64_t v)
{
	if (cbuf_reserve(out, 9) == -1)
		return -1;
	out->len += fn(v, out->p + out->len, out->cap - out->len);
	return 0;
}

static size_t
enc_text_head(uint64_t n, unsigned char *p, size_t cap)
{
	return cbor_encode_string_start((size_t)n, p, cap);
}

static size_t
enc_bytes_head(uint64_t n, unsigned char *p, size_t cap)
{
	return cbor_encode_bytestring_start((size_t)n, p, cap);
}

static size_t
enc_array_head(uint64_t n, unsigned char *p, size_t cap)
{
	return cbor_encode_array_start((size_t)n, p, cap);
}

static size_t
enc_map_head(uint64_t n, unsigned char *p, size_t cap)
{
	return cbor_encode_map_start((size_t)n, p, cap);
}

int
cim_cbor_write_uint(cbuf *out, uint64_t v)
{
	return put_head(out, cbor_encode_uint, v);
}

int
cim_cbor_write_text(cbuf *out, const char *s, size_t len)
{
	if (cbuf_reserve(out, 9 + len) == -1)
		return -1;
	put_head(out, enc_text_head, len);
	memcpy(out->p + out->len, s, len);
	out->len += len;
	return 0;
}

int
cim_cbor_write_bytes(cbuf *out, const uint8_t *b, size_t len)
{
	if (cbuf_reserve(out, 9 + len) == -1)
		return -1;
	put_head(out, enc_bytes_head, len);
	if (len > 0)
		memcpy(out->p + out->len, b, len);
	out->len += len;
	return 0;
}

int
cim_cbor_write_map_head(cbuf *out, size_t n)
{
	return put_head(out, enc_map_head, n);
}

int
cim_cbor_write_array_head(cbuf *out, size_t n)
{
	return put_head(out, enc_array_head, n);
}

int
cim_cbor_write_null(cbuf *out)
{
	if (cbuf_reserve(out, 1) == -1)
		return -1;
	out->len += cbor_encode_null(out->p + out->len, out->cap - out->len);
	return 0;
}

int
cim_cbor_write_link(cbuf *out, const cim_cid *cid)
{
	if (cbuf_reserve(out, 2 + 9 + 1 + (size_t)cid->len) == -1)
		return -1;
	put_head(out, cbor_encode_tag, TAG_CID);
	put_head(out, enc_bytes_head, (uint64_t)cid->len + 1);
	out->p[out->len++] = 0x00;
	memcpy(out->p + out->len, cid->b, cid->len);
	out->len += cid->len;
	return 0;
}

static int
depth_rec(const json_t *v, int cap)
{
	const json_t *child;
	const char *key;
	size_t i;
	int best = 0, d;

	if (!json_is_array(v) && !json_is_object(v))
		return 0;
	if (cap <= 1)
		return 1;
	if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			d = depth_rec(child, cap - 1);
			if (d > best)
				best = d;
			if (best >= cap - 1)
				break;
		}
	} else {
		json_object_foreach((json_t *)v, key, child) {
			d = depth_rec(child, cap - 1);
			if (d > best)
				best = d;
			if (best >= cap - 1)
				break;
		}
	}
	return 1 + best;
}

int
cim_json_depth(const json_t *v, int limit)
{
	if (limit < 0)
		limit = 0;
	return depth_rec(v, limit == INT_MAX ? limit : limit + 1);
}

typedef struct wkey {
	const char *k;
	size_t len;
	json_t *v;
} wkey;

static int
wkey_cmp(const void *a, const void *b)
{
	const wkey *x = a, *y = b;

	return cim_cbor_key_cmp(x->k, x->len, y->k, y->len);
}

typedef struct wctx {
	cbuf *out;
	char *err;
	size_t errsz;
} wctx;

static int
werr(wctx *w, const char *fmt, ...)
{
	va_list ap;

	if (w->err != NULL && w->errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(w->err, w->errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int write_value(wctx *w, const json_t *v, int depth_left);

static int
write_object(wctx *w, const json_t *v, int depth_left)
{
	wkey stack[16], *keys = stack;
	size_t n = json_object_size(v), i = 0;
	const char *key;
	json_t *child;
	int rc = -1;

	if (n > sizeof(stack) / sizeof(stack[0])) {
		keys = malloc(n * sizeof(*keys));
		if (keys == NULL)
			return werr(w, "out of memory");
	}
	json_object_foreach((json_t *)v, key, child) {
		keys[i].k = key;
		keys[i].len = json_object_iter_key_len(
		    json_object_key_to_iter(key));
		keys[i].v = child;
		i++;
	}
	qsort(keys, n, sizeof(*keys), wkey_cmp);
	if (put_head(w->out, enc_map_head, n) == -1) {
		werr(w, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		if (!utf8_ok((const uint8_t *)keys[i].k, keys[i].len)) {
			werr(w, "an object key is not valid UTF-8");
			goto done;
		}
		if (cim_cbor_write_text(w->out, keys[i].k, keys[i].len) == -1) {
			werr(w, "out of memory");
			goto done;
		}
		if (write_value(w, keys[i].v, depth_left - 1) == -1)
			goto done;
	}
	rc = 0;
done:
	if (keys != stack)
		free(keys);
	return rc;
}

static int
write_value(wctx *w, const json_t *v, int depth_left)
{
	const json_t *child;
	size_t i;
	int rc = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		if (depth_left <= 0)
			return werr(w, "value nested deeper than the limit");
		if (json_is_object(v))
			return write_object(w, v, depth_left);
		if (put_head(w->out, enc_array_head, json_array_size(v)) == -1)
			return werr(w, "out of memory");
		json_array_foreach(v, i, child)
			if (write_value(w, child, depth_left - 1) == -1)
				return -1;
		return 0;
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);

		if (!utf8_ok((const uint8_t *)s, len))
			return werr(w, "a string is not valid UTF-8");
		rc = cim_cbor_write_text(w->out, s, len);
		break;
	}
	case JSON_INTEGER: {
		json_int_t n = json_integer_value(v);

		if (n >= 0)
			rc = put_head(w->out, cbor_encode_uint, (uint64_t)n);
		else
			rc = put_head(w->out, cbor_encode_negint,
				      (uint64_t)(-(n + 1)));
		break;
	}
	case JSON_REAL: {
		double d = json_real_value(v);

		if (!isfinite(d))
			return werr(w, "a number is NaN or infinite");
		if (cbuf_reserve(w->out, 9) == -1)
			return werr(w, "out of memory");
		w->out->len += cbor_encode_double(d, w->out->p + w->out->len, 9);
		break;
	}
	case JSON_TRUE:
	case JSON_FALSE:
		if (cbuf_reserve(w->out, 1) == -1)
			return werr(w, "out of memory");
		w->out->len += cbor_encode_bool(json_is_true(v),
						w->out->p + w->out->len, 1);
		break;
	case JSON_NULL:
		rc = cim_cbor_write_null(w->out);
		break;
	}
	if (rc == -1)
		return werr(w, "out of memory");
	return 0;
}

int
cim_cbor_write_json(cbuf *out, const json_t *v, int max_depth, char *err,
		    size_t errsz)
{
	wctx w = {out, err, errsz};
	size_t start = out->len;

	if (write_value(&w, v, max_depth) == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

bool
cim_json_same(const json_t *a, const json_t *b)
{
	cbuf x = CBUF_INIT, y = CBUF_INIT;
	bool same = a != NULL && b != NULL &&
		    cim_cbor_write_json(&x, a, CIM_MAX_DEPTH, NULL, 0) == 0 &&
		    cim_cbor_write_json(&y, b, CIM_MAX_DEPTH, NULL, 0) == 0 &&
		    x.len == y.len && memcmp(x.p, y.p, x.len) == 0;

	cbuf_free(&x);
	cbuf_free(&y);
	return same;
}

/* ---- reading: one head ------------------------------------------------------ */

/* What the callbacks saw during one cbor_stream_decode call. */
typedef struct seen {
	cim_cbor_item *it;
	bool got;        /* a callback recorded an item */
	const char *bad; /* set for anything DAG-CBOR refuses */
} seen;

static cim_cbor_item *
take(void *ctx)
{
	seen *s = ctx;

	s->got = true;
	return s->it;
}

#define IT(ctx) (take(ctx))

static void
on_uint(void *ctx, uint64_t v)
{
	IT(ctx)->kind = CIM_CBOR_UINT;
	IT(ctx)->u = v;
}

static void on_uint8(void *ctx, uint8_t v) { on_uint(ctx, v); }
static void on_uint16(void *ctx, uint16_t v) { on_uint(ctx, v); }
static void on_uint32(void *ctx, uint32_t v) { on_uint(ctx, v); }

static void
on_negint(void *ctx, uint64_t v)
{
	IT(ctx)->kind = CIM_CBOR_NEGINT;
	IT(ctx)->u = v;
}

static void on_negint8(void *ctx, uint8_t v) { on_negint(ctx, v); }
static void on_negint16(void *ctx, uint16_t v) { on_negint(ctx, v); }
static void on_negint32(void *ctx, uint32_t v) { on_negint(ctx, v); }

static void
on_bytes(void *ctx, cbor_data p, size_t len)
{
	IT(ctx)->kind = CIM_CBOR_BYTES;
	IT(ctx)->data = p;
	IT(ctx)->len = len;
}

static void
on_text(void *ctx, cbor_data p, size_t len)
{
	IT(ctx)->kind = CIM_CBOR_TEXT;
	IT(ctx)->data = p;
	IT(ctx)->len = len;
}

static void
on_array(void *ctx, size_t n)
{
	IT(ctx)->kind = CIM_CBOR_ARRAY;
	IT(ctx)->u = n;
}

static void
on_map(void *ctx, size_t n)
{
	IT(ctx)->kind = CIM_CBOR_MAP;
	IT(ctx)->u = n;
}

static void
on_tag(void *ctx, uint64_t v)
{
	IT(ctx)->kind = CIM_CBOR_TAG;
	IT(ctx)->u = v;
}

static void
on_double(void *ctx, double d)
{
	IT(ctx)->kind = CIM_CBOR_FLOAT;
	IT(ctx)->f = d;
}

static void
on_null(void *ctx)
{
	IT(ctx)->kind = CIM_CBOR_NULL;
}

static void
on_bool(void *ctx, bool b)
{
	IT(ctx)->kind = b ? CIM_CBOR_TRUE : CIM_CBOR_FALSE;
}

/* The forms DAG-CBOR refuses: each only records why. */
#define REFUSE(name, what)                                                    \
	static void name(void *ctx) { ((seen *)ctx)->bad = (what); }
REFUSE(on_indef_bytes, "an indefinite-length byte string")
REFUSE(on_indef_text, "an indefinite-length text string")
REFUSE(on_indef_array, "an indefinite-length array")
REFUSE(on_indef_map, "an indefinite-length map")
REFUSE(on_break, "a break code (0xff) outside an indefinite item")
REFUSE(on_undefined, "the simple value undefined")
#undef REFUSE

static void
on_half(void *ctx, float f)
{
	(void)f;
	((seen *)ctx)->bad = "a 16-bit float";
}

static void
on_single(void *ctx, float f)
{
	(void)f;
	((seen *)ctx)->bad = "a 32-bit float";
}

/* Note libcbor 0.8 names: byte_string/string are the definite forms,
 * byte_string_start/string_start the indefinite ones. */
static const struct cbor_callbacks callbacks = {
	.uint8 = on_uint8,
	.uint16 = on_uint16,
	.uint32 = on_uint32,
	.uint64 = on_uint,
	.negint8 = on_negint8,
	.negint16 = on_negint16,
	.negint32 = on_negint32,
	.negint64 = on_negint,
	.byte_string = on_bytes,
	.byte_string_start = on_indef_bytes,
	.string = on_text,
	.string_start = on_indef_text,
	.array_start = on_array,
	.indef_array_start = on_indef_array,
	.map_start = on_map,
	.indef_map_start = on_indef_map,
	.tag = on_tag,
	.float2 = on_half,
	.float4 = on_single,
	.float8 = on_double,
	.undefined = on_undefined,
	.null = on_null,
	.boolean = on_bool,
	.indef_break = on_break,
};

/* Bytes of the shortest head for argument v. */
static size_t
head_len(uint64_t v)
{
	if (v < 24)
		return 1;
	if (v <= UINT8_MAX)
		return 2;
	if (v <= UINT16_MAX)
		return 3;
	if (v <= UINT32_MAX)
		return 5;
	return 9;
}

static int
rerr(cim_cbor_reader *r, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(r->err, sizeof(r->err), "invalid DAG-CBOR at byte %zu: ",
		     at);
	if (n < 0 || (size_t)n >= sizeof(r->err))
		return -1;
	va_start(ap, fmt);
	vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

void
cim_cbor_reader_init(cim_cbor_reader *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
	r->err[0] = '\0';
}

int
cim_cbor_next(cim_cbor_reader *r, cim_cbor_item *it)
{
	struct cbor_decoder_result res;
	seen s = {it, false, NULL};
	size_t at = r->pos, head;

	memset(it, 0, sizeof(*it));
	if (at >= r->len)
		return rerr(r, at, "the input ends early");
	res = cbor_stream_decode(r->p + at, r->len - at, &callbacks, &s);
	if (res.status == CBOR_DECODER_NEDATA)
		return rerr(r, at, "the input ends early");
	if (res.status != CBOR_DECODER_FINISHED && r->p[at] >= 0xe0 &&
	    r->p[at] <= 0xf8)
		return rerr(r, at, "simple value 0x%02x is not allowed (only "
			    "false, true and null)", r->p[at]);
	if (res.status != CBOR_DECODER_FINISHED)
		return rerr(r, at, "malformed or reserved head 0x%02x",
			    r->p[at]);
	if (s.bad != NULL)
		return rerr(r, at, "%s is not allowed", s.bad);
	if (!s.got)
		return rerr(r, at, "unsupported head 0x%02x", r->p[at]);

	switch (it->kind) {
	case CIM_CBOR_BYTES:
	case CIM_CBOR_TEXT:
		head = res.read - it->len;
		if (head != head_len(it->len))
			return rerr(r, at, "length %zu is not in its shortest form",
				    it->len);
		if (it->kind == CIM_CBOR_TEXT && !utf8_ok(it->data, it->len))
			return rerr(r, at, "text is not valid UTF-8");
		break;
	case CIM_CBOR_UINT:
	case CIM_CBOR_NEGINT:
	case CIM_CBOR_ARRAY:
	case CIM_CBOR_MAP:
	case CIM_CBOR_TAG:
		if (res.read != head_len(it->u))
			return rerr(r, at, "the head for %llu is not in its "
				    "shortest form", (unsigned long long)it->u);
		if (it->kind == CIM_CBOR_TAG && it->u != TAG_CID)
			return rerr(r, at, "tag %llu is not allowed (only 42)",
				    (unsigned long long)it->u);
		break;
	case CIM_CBOR_FLOAT:
		if (!isfinite(it->f))
			return rerr(r, at, "NaN and infinities are not allowed");
		break;
	default:
		break;
	}
	r->pos = at + res.read;
	return 0;
}

/* ---- reading: whole values ------------------------------------------------- */

/* The byte string after a tag 42: 0x00 then a binary CID. */
static int
link_body(cim_cbor_reader *r, cim_cid *out)
{
	cim_cbor_item it;
	size_t at = r->pos;

	if (cim_cbor_next(r, &it) == -1)
		return -1;
	if (it.kind != CIM_CBOR_BYTES)
		return rerr(r, at, "tag 42 must wrap a byte string");
	if (it.len < 2 || it.data[0] != 0x00)
		return rerr(r, at, "a link must start with the 0x00 prefix");
	if (cim_cid_from_bytes(out, it.data + 1, it.len - 1) == -1)
		return rerr(r, at, "a link does not hold a valid CID");
	return 0;
}

int
cim_cbor_read_link(cim_cbor_reader *r, cim_cid *out)
{
	cim_cbor_item it;
	size_t at = r->pos;

	if (cim_cbor_next(r, &it) == -1)
		return -1;
	if (it.kind != CIM_CBOR_TAG)
		return rerr(r, at, "expected a link (tag 42)");
	return link_body(r, out);
}

static json_t *
slash_object(json_t *inner)
{
	json_t *o;

	if (inner == NULL)
		return NULL;
	o = json_object();
	if (o == NULL || json_object_set_new_nocheck(o, "/", inner) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
bytes_json(const uint8_t *p, size_t len)
{
	const int variant = sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
	size_t cap = sodium_base64_ENCODED_LEN(len, variant);
	char *b64 = malloc(cap);
	json_t *inner, *s;

	if (b64 == NULL)
		return NULL;
	sodium_bin2base64(b64, cap, p, len, variant);
	s = json_string_nocheck(b64);
	free(b64);
	if (s == NULL)
		return NULL;
	inner = json_object();
	if (inner == NULL || json_object_set_new_nocheck(inner, "bytes", s)) {
		json_decref(inner);
		return NULL;
	}
	return slash_object(inner);
}

static json_t *
link_json(const cim_cid *cid)
{
	char text[CIM_CID_TEXT_MAX];

	cim_cid_to_text(cid, text);
	return slash_object(json_string_nocheck(text));
}

/*
 * The checks a whole value needs beyond cim_cbor_next live in two places,
 * shared by every walker below (the jansson reader, the skipper and the
 * JSON-text writer), so the three accept exactly the same values:
 *
 *   value_head      one value's head: integers inside the 64-bit signed
 *                   range, arrays and maps within depth_left, and a tag's
 *                   link body (read and checked into *cid);
 *   cim_cbor_next_key   one map key: text, strictly after the previous key
 *                   in canonical order.
 *
 * The walkers themselves only recurse and build or write.
 */
static int
value_head(cim_cbor_reader *r, int depth_left, cim_cbor_item *it,
	   cim_cid *cid)
{
	size_t at = r->pos;

	if (cim_cbor_next(r, it) == -1)
		return -1;
	switch (it->kind) {
	case CIM_CBOR_UINT:
		if (it->u > (uint64_t)INT64_MAX)
			return rerr(r, at, "integer %llu is outside the 64-bit "
				    "signed range", (unsigned long long)it->u);
		break;
	case CIM_CBOR_NEGINT:
		if (it->u > (uint64_t)INT64_MAX)
			return rerr(r, at, "a negative integer below "
				    "-9223372036854775808 is outside the "
				    "64-bit signed range");
		break;
	case CIM_CBOR_ARRAY:
	case CIM_CBOR_MAP:
		if (depth_left <= 0)
			return rerr(r, at, "nesting deeper than the limit");
		break;
	case CIM_CBOR_TAG:
		return link_body(r, cid);
	default:
		break;
	}
	return 0;
}

int
cim_cbor_next_key(cim_cbor_reader *r, cim_cbor_keys *ks, cim_cbor_item *key)
{
	size_t at = r->pos;

	if (cim_cbor_next(r, key) == -1)
		return -1;
	if (key->kind != CIM_CBOR_TEXT)
		return rerr(r, at, "map keys must be text");
	if (ks->count > 0) {
		int c = cim_cbor_key_cmp((const char *)ks->prev, ks->prevlen,
					 (const char *)key->data, key->len);

		if (c == 0)
			return rerr(r, at, "repeated map key");
		if (c > 0)
			return rerr(r, at, "map keys out of canonical order");
	}
	ks->prev = key->data;
	ks->prevlen = key->len;
	ks->count++;
	return 0;
}

int
cim_cbor_expect_key(cim_cbor_reader *r, const char *name)
{
	cim_cbor_item key;
	size_t at = r->pos, n = strlen(name);

	if (cim_cbor_next(r, &key) == -1)
		return -1;
	if (key.kind != CIM_CBOR_TEXT)
		return rerr(r, at, "map keys must be text");
	if (key.len != n || memcmp(key.data, name, n) != 0)
		return rerr(r, at, "unexpected key \"%.*s\" where \"%s\" "
			    "belongs", (int)(key.len > 40 ? 40 : key.len),
			    (const char *)key.data, name);
	return 0;
}

/* ---- reading: as jansson values ------------------------------------------ */

static int read_value(cim_cbor_reader *r, int depth_left, json_t **out);

static int
read_map(cim_cbor_reader *r, uint64_t n, int depth_left, json_t *obj)
{
	cim_cbor_keys ks = CIM_CBOR_KEYS_INIT;
	cim_cbor_item key;
	json_t *v;

	for (uint64_t i = 0; i < n; i++) {
		size_t at = r->pos;

		if (cim_cbor_next_key(r, &ks, &key) == -1)
			return -1;
		if (read_value(r, depth_left - 1, &v) == -1)
			return -1;
		if (json_object_setn_new_nocheck(obj, (const char *)key.data,
						 key.len, v) == -1)
			return rerr(r, at, "out of memory");
	}
	return 0;
}

static int
read_value(cim_cbor_reader *r, int depth_left, json_t **out)
{
	cim_cbor_item it;
	size_t at = r->pos;
	json_t *v = NULL, *child;
	cim_cid cid;

	*out = NULL;
	if (value_head(r, depth_left, &it, &cid) == -1)
		return -1;
	switch (it.kind) {
	case CIM_CBOR_UINT:
		v = json_integer((json_int_t)it.u);
		break;
	case CIM_CBOR_NEGINT:
		v = json_integer(-1 - (json_int_t)it.u);
		break;
	case CIM_CBOR_BYTES:
		v = bytes_json(it.data, it.len);
		break;
	case CIM_CBOR_TEXT:
		v = json_stringn_nocheck((const char *)it.data, it.len);
		break;
	case CIM_CBOR_ARRAY:
	case CIM_CBOR_MAP:
		v = it.kind == CIM_CBOR_ARRAY ? json_array() : json_object();
		if (v == NULL)
			break;
		if (it.kind == CIM_CBOR_MAP) {
			if (read_map(r, it.u, depth_left, v) == -1) {
				json_decref(v);
				return -1;
			}
			break;
		}
		for (uint64_t i = 0; i < it.u; i++) {
			if (read_value(r, depth_left - 1, &child) == -1) {
				json_decref(v);
				return -1;
			}
			if (json_array_append_new(v, child) == -1) {
				json_decref(v);
				return rerr(r, at, "out of memory");
			}
		}
		break;
	case CIM_CBOR_TAG:
		v = link_json(&cid);
		break;
	case CIM_CBOR_FLOAT:
		v = json_real(it.f);
		break;
	case CIM_CBOR_FALSE:
		v = json_false();
		break;
	case CIM_CBOR_TRUE:
		v = json_true();
		break;
	case CIM_CBOR_NULL:
		v = json_null();
		break;
	}
	if (v == NULL)
		return rerr(r, at, "out of memory");
	*out = v;
	return 0;
}

/* ---- reading: skipping ------------------------------------------------------ */

static int
skip_value(cim_cbor_reader *r, int depth_left)
{
	cim_cbor_keys ks = CIM_CBOR_KEYS_INIT;
	cim_cbor_item it, key;
	cim_cid cid;

	if (value_head(r, depth_left, &it, &cid) == -1)
		return -1;
	if (it.kind == CIM_CBOR_ARRAY) {
		for (uint64_t i = 0; i < it.u; i++)
			if (skip_value(r, depth_left - 1) == -1)
				return -1;
	} else if (it.kind == CIM_CBOR_MAP) {
		for (uint64_t i = 0; i < it.u; i++)
			if (cim_cbor_next_key(r, &ks, &key) == -1 ||
			    skip_value(r, depth_left - 1) == -1)
				return -1;
	}
	return 0;
}

int
cim_cbor_skip(cim_cbor_reader *r, int max_depth)
{
	return skip_value(r, max_depth);
}

/* ---- reading: as JSON text -------------------------------------------------- */

/* {"/":{"bytes":"<base64>"}}, as bytes_json then cim_json_write give it. */
static int
text_bytes(cbuf *out, const uint8_t *p, size_t len)
{
	const int variant = sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
	size_t cap = sodium_base64_ENCODED_LEN(len, variant);
	char *b64;

	if (cbuf_puts(out, "{\"/\":{\"bytes\":\"") == -1 ||
	    cbuf_reserve(out, cap) == -1)
		return -1;
	b64 = (char *)out->p + out->len;
	sodium_bin2base64(b64, cap, p, len, variant);
	out->len += strlen(b64);
	return cbuf_puts(out, "\"}}");
}

/* {"/":"<cid text>"}, as link_json then cim_json_write give it. */
static int
text_link(cbuf *out, const cim_cid *cid)
{
	char text[CIM_CID_TEXT_MAX];
	size_t n = cim_cid_to_text(cid, text);

	if (cbuf_puts(out, "{\"/\":") == -1 ||
	    cim_json_write_string(out, text, n) == -1)
		return -1;
	return cbuf_putc(out, '}');
}

static int
text_value(cim_cbor_reader *r, int depth_left, cbuf *out)
{
	cim_cbor_keys ks = CIM_CBOR_KEYS_INIT;
	cim_cbor_item it, key;
	size_t at = r->pos;
	cim_cid cid;
	int rc = 0;

	if (value_head(r, depth_left, &it, &cid) == -1)
		return -1;
	switch (it.kind) {
	case CIM_CBOR_UINT:
		rc = cim_json_write_int(out, (int64_t)it.u);
		break;
	case CIM_CBOR_NEGINT:
		rc = cim_json_write_int(out, -1 - (int64_t)it.u);
		break;
	case CIM_CBOR_BYTES:
		rc = text_bytes(out, it.data, it.len);
		break;
	case CIM_CBOR_TEXT:
		rc = cim_json_write_string(out, (const char *)it.data, it.len);
		break;
	case CIM_CBOR_ARRAY:
		if (cbuf_putc(out, '[') == -1)
			goto nomem;
		for (uint64_t i = 0; i < it.u; i++) {
			if (i > 0 && cbuf_putc(out, ',') == -1)
				goto nomem;
			if (text_value(r, depth_left - 1, out) == -1)
				return -1;
		}
		rc = cbuf_putc(out, ']');
		break;
	case CIM_CBOR_MAP:
		if (cbuf_putc(out, '{') == -1)
			goto nomem;
		for (uint64_t i = 0; i < it.u; i++) {
			if (cim_cbor_next_key(r, &ks, &key) == -1)
				return -1;
			if ((i > 0 && cbuf_putc(out, ',') == -1) ||
			    cim_json_write_string(out, (const char *)key.data,
						  key.len) == -1 ||
			    cbuf_putc(out, ':') == -1)
				goto nomem;
			if (text_value(r, depth_left - 1, out) == -1)
				return -1;
		}
		rc = cbuf_putc(out, '}');
		break;
	case CIM_CBOR_TAG:
		rc = text_link(out, &cid);
		break;
	case CIM_CBOR_FLOAT:
		rc = cim_json_write_real(out, it.f);
		break;
	case CIM_CBOR_FALSE:
		rc = cbuf_put(out, "false", 5);
		break;
	case CIM_CBOR_TRUE:
		rc = cbuf_put(out, "true", 4);
		break;
	case CIM_CBOR_NULL:
		rc = cbuf_put(out, "null", 4);
		break;
	}
	if (rc == 0)
		return 0;
nomem:
	return rerr(r, at, "out of memory");
}

int
cim_cbor_read_json_text(cim_cbor_reader *r, int max_depth, cbuf *out)
{
	size_t mark = out->len;

	if (text_value(r, max_depth, out) == -1) {
		out->len = mark;
		return -1;
	}
	return 0;
}

int
cim_cbor_read_json(cim_cbor_reader *r, int max_depth, json_t **out)
{
	return read_value(r, max_depth, out);
}

int
cim_cbor_decode_json(const uint8_t *p, size_t len, int max_depth,
		     json_t **out, char *err, size_t errsz)
{
	cim_cbor_reader r;
	json_t *v;

	*out = NULL;
	cim_cbor_reader_init(&r, p, len);
	if (read_value(&r, max_depth, &v) == -1)
		goto fail;
	if (r.pos != len) {
		json_decref(v);
		rerr(&r, r.pos, "trailing bytes after the value (%zu)",
		     len - r.pos);
		goto fail;
	}
	*out = v;
	return 0;
fail:
	if (err != NULL && errsz > 0)
		snprintf(err, errsz, "%s", r.err);
	return -1;
}
