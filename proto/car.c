/*
 * car.c: the CARv1 writer and reader of car.h. Every DAG-CBOR item of the
 * header goes through proto/dagcbor.c (written with its canonical heads,
 * read with its strict reader over a small window of the stream), and
 * every varint and CID through proto/cid.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "car.h"
#include "dagcbor.h"

/* ---- ends for stdio and memory ------------------------------------------------- */

int
cim_car_stdio_sink(void *file, const uint8_t *p, size_t n)
{
	return n == 0 || fwrite(p, 1, n, file) == n ? 0 : -1;
}

ssize_t
cim_car_stdio_source(void *file, uint8_t *buf, size_t cap)
{
	size_t n = fread(buf, 1, cap, file);

	if (n == 0 && ferror(file))
		return -1;
	return (ssize_t)n;
}

ssize_t
cim_car_mem_source(void *mem, uint8_t *buf, size_t cap)
{
	cim_car_mem *m = mem;
	size_t n = m->len - m->pos;

	if (n > cap)
		n = cap;
	if (n > 0)
		memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

/* ---- writing ------------------------------------------------------------------- */

static int werr(cim_car_writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
werr(cim_car_writer *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	w->failed = true;
	return -1;
}

static int
put(cim_car_writer *w, const uint8_t *p, size_t n)
{
	if (w->failed)
		return -1;
	errno = 0;
	if (w->sink(w->ctx, p, n) != 0)
		return werr(w, "cannot write the CAR file at byte %llu%s%s",
			    (unsigned long long)w->offset, errno ? ": " : "",
			    errno ? strerror(errno) : "");
	w->offset += n;
	return 0;
}

static int
put_varint(cim_car_writer *w, uint64_t v)
{
	uint8_t b[CIM_VARINT_MAX];
	size_t n = cim_varint_put(b, v);

	return n == 0 ? werr(w, "a length past 2^63") : put(w, b, n);
}

/* Bytes of the link to a CID of len bytes: tag 42's head (2), the byte
 * string's head, the 0x00 prefix, the CID. */
static uint64_t
link_len(size_t len)
{
	return 2 + (len + 1 < 24 ? 1 : 2) + 1 + (uint64_t)len;
}

int
cim_car_writer_begin(cim_car_writer *w, cim_car_sink sink, void *ctx,
		     size_t nroots, cim_car_root_fn root, void *rctx)
{
	cbuf head = CBUF_INIT;
	uint64_t hlen = 0, rlen = 0;
	cim_cid cid;
	int rc = -1;

	memset(w, 0, sizeof(*w));
	w->sink = sink;
	w->ctx = ctx;
	for (size_t i = 0; i < nroots; i++) {
		if (root(rctx, i, &cid) != 0 || cid.len == 0)
			return werr(w, "root %zu cannot be had", i);
		rlen += link_len(cid.len);
	}
	/* {"roots": [...], "version": 1}: roots sorts first (shorter) */
	if (cim_cbor_write_map_head(&head, 2) == -1 ||
	    cim_cbor_write_text(&head, "roots", 5) == -1 ||
	    cim_cbor_write_array_head(&head, nroots) == -1)
		goto nomem;
	hlen = head.len + rlen + 1 + 7 + 1;
	if (hlen > CIM_CAR_HEADER_MAX) {
		werr(w, "%zu roots make a header of %llu bytes, over the "
		     "limit of %llu", nroots, (unsigned long long)hlen,
		     (unsigned long long)CIM_CAR_HEADER_MAX);
		goto done;
	}
	if (put_varint(w, hlen) == -1 || put(w, head.p, head.len) == -1)
		goto done;
	for (size_t i = 0; i < nroots; i++) {
		cbuf_reset(&head);
		if (root(rctx, i, &cid) != 0 || cid.len == 0) {
			werr(w, "root %zu cannot be had", i);
			goto done;
		}
		if (cim_cbor_write_link(&head, &cid) == -1)
			goto nomem;
		if ((rlen -= head.len) > hlen) {
			werr(w, "root %zu changed between the two calls", i);
			goto done;
		}
		if (put(w, head.p, head.len) == -1)
			goto done;
	}
	if (rlen != 0) {
		werr(w, "the roots changed between the two calls");
		goto done;
	}
	cbuf_reset(&head);
	if (cim_cbor_write_text(&head, "version", 7) == -1 ||
	    cim_cbor_write_uint(&head, 1) == -1)
		goto nomem;
	rc = put(w, head.p, head.len);
	goto done;
nomem:
	werr(w, "out of memory");
done:
	cbuf_free(&head);
	return rc;
}

struct root_array {
	const cim_cid *roots;
};

static int
array_root(void *ctx, size_t i, cim_cid *out)
{
	*out = ((struct root_array *)ctx)->roots[i];
	return 0;
}

int
cim_car_writer_begin_roots(cim_car_writer *w, cim_car_sink sink, void *ctx,
			   const cim_cid *roots, size_t nroots)
{
	struct root_array a = {roots};

	return cim_car_writer_begin(w, sink, ctx, nroots, array_root, &a);
}

int
cim_car_write_block(cim_car_writer *w, const cim_cid *cid,
		    const uint8_t *data, size_t len)
{
	if (w->failed)
		return -1;
	if (cid->len == 0 || cid->len > CIM_CID_MAX)
		return werr(w, "block %llu has no CID",
			    (unsigned long long)w->blocks + 1);
	if (len > CIM_CAR_BLOCK_MAX)
		return werr(w, "a block of %zu bytes is over the limit of %llu",
			    len, (unsigned long long)CIM_CAR_BLOCK_MAX);
	if (put_varint(w, (uint64_t)cid->len + len) == -1 ||
	    put(w, cid->b, cid->len) == -1 || put(w, data, len) == -1)
		return -1;
	w->blocks++;
	return 0;
}

/* ---- reading ------------------------------------------------------------------- */

static int rerr(cim_car_reader *r, uint64_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
rerr(cim_car_reader *r, uint64_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(r->err, sizeof(r->err), "at byte %llu: ",
		     (unsigned long long)at);
	if (n < 0 || (size_t)n >= sizeof(r->err))
		return -1;
	va_start(ap, fmt);
	vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Makes at least want (<= CIM_CAR_BUF) bytes available in buf[pos..end)
 * unless the file ends first. Returns the bytes available, or -1 with
 * r->err set on a read error. */
static ssize_t
fill(cim_car_reader *r, size_t want)
{
	while (r->end - r->pos < want && !r->eof) {
		ssize_t n;

		if (r->pos > 0) {
			memmove(r->buf, r->buf + r->pos, r->end - r->pos);
			r->end -= r->pos;
			r->pos = 0;
		}
		n = r->src(r->ctx, r->buf + r->end, CIM_CAR_BUF - r->end);
		if (n < 0) {
			r->io_error = true;
			return rerr(r, r->offset + (r->end - r->pos),
				    "cannot read the file: %s", strerror(errno));
		}
		if (n == 0)
			r->eof = true;
		r->end += (size_t)n;
	}
	return (ssize_t)(r->end - r->pos);
}

static void
consume(cim_car_reader *r, size_t n)
{
	r->pos += n;
	r->offset += n;
}

/* A varint at the reader's position: 1 read, 0 a clean end of file (only
 * when at_end_ok), -1 error. */
static int
read_varint(cim_car_reader *r, uint64_t *v, const char *what, bool at_end_ok)
{
	ssize_t avail = fill(r, CIM_VARINT_MAX);
	size_t off = 0;

	if (avail < 0)
		return -1;
	if (avail == 0 && at_end_ok)
		return 0;
	if (cim_varint_get(r->buf + r->pos, (size_t)avail, &off, v) == 0) {
		consume(r, off);
		return 1;
	}
	/* short of CIM_VARINT_MAX bytes with the continuation bit set on
	 * every one of them: the file ends inside the varint */
	if ((size_t)avail < CIM_VARINT_MAX) {
		size_t i = 0;

		while (i < (size_t)avail && (r->buf[r->pos + i] & 0x80))
			i++;
		if (i == (size_t)avail)
			return rerr(r, r->offset, "the file ends inside %s",
				    what);
	}
	return rerr(r, r->offset, "%s is not a minimal varint of at most 9 "
		    "bytes", what);
}

/* The reason in a dagcbor reader's message, without its own position. */
static const char *
cbor_reason(const cim_cbor_reader *cr)
{
	const char *p = strstr(cr->err, ": ");

	return p != NULL && strncmp(cr->err, "invalid DAG-CBOR at byte ", 25) == 0
		       ? p + 2
		       : cr->err;
}

/* A dagcbor reader over the next bytes of the header: at most 128, never
 * past the header's end (*left bytes remain). */
static int
hdr_window(cim_car_reader *r, uint64_t left, cim_cbor_reader *cr)
{
	size_t want = left < 128 ? (size_t)left : 128;
	ssize_t avail = fill(r, want);

	if (avail < 0)
		return -1;
	if ((size_t)avail < want)
		return rerr(r, r->offset + (size_t)avail,
			    "the file ends inside the CAR header");
	cim_cbor_reader_init(cr, r->buf + r->pos, want);
	return 0;
}

static int
hdr_fail(cim_car_reader *r, const cim_cbor_reader *cr, uint64_t left)
{
	if (left > 128 && strstr(cr->err, "ends early") != NULL)
		return rerr(r, r->offset, "the CAR header holds an item "
			    "longer than any of its shape");
	return rerr(r, r->offset, "bad CAR header: %s", cbor_reason(cr));
}

/* One item of the header through step, which reads with cr. */
#define HDR_STEP(call)                                                       \
	do {                                                                 \
		if (hdr_window(r, left, &cr) == -1)                          \
			return -1;                                           \
		if ((call) == -1)                                            \
			return hdr_fail(r, &cr, left);                       \
		consume(r, cr.pos);                                          \
		left -= cr.pos;                                              \
	} while (0)

static int
read_header(cim_car_reader *r, cim_car_root_cb on_root, void *rctx)
{
	cim_cbor_reader cr;
	cim_cbor_item it;
	uint64_t hlen, left, at;
	cim_cid cid;
	int rc;

	rc = read_varint(r, &hlen, "the header length", true);
	if (rc == 0)
		return rerr(r, 0, "the file is empty: no CAR header");
	if (rc < 0)
		return -1;
	if (hlen == 0 || hlen > CIM_CAR_HEADER_MAX)
		return rerr(r, 0, "a CAR header of %llu bytes (at most %llu)",
			    (unsigned long long)hlen,
			    (unsigned long long)CIM_CAR_HEADER_MAX);
	left = hlen;
	at = r->offset;
	HDR_STEP(cim_cbor_next(&cr, &it));
	if (it.kind != CIM_CBOR_MAP)
		return rerr(r, at, "the CAR header is not a map");
	if (it.u == 1) {
		/* a CARv2 pragma is {version: 2} */
		HDR_STEP(cim_cbor_expect_key(&cr, "version"));
		HDR_STEP(cim_cbor_next(&cr, &it));
		if (it.kind == CIM_CBOR_UINT && it.u != 1)
			return rerr(r, at, "CAR version %llu: only CARv1 is "
				    "read", (unsigned long long)it.u);
		return rerr(r, at, "the CAR header has no roots");
	}
	if (it.u != 2)
		return rerr(r, at, "the CAR header has %llu keys, not exactly "
			    "roots and version", (unsigned long long)it.u);
	HDR_STEP(cim_cbor_expect_key(&cr, "roots"));
	at = r->offset;
	HDR_STEP(cim_cbor_next(&cr, &it));
	if (it.kind != CIM_CBOR_ARRAY)
		return rerr(r, at, "the CAR header's roots is not a list");
	r->nroots = it.u;
	if (it.u > left / 6) /* a link takes at least 6 bytes */
		return rerr(r, at, "the CAR header's %llu roots cannot fit in "
			    "it", (unsigned long long)it.u);
	for (uint64_t i = 0; i < r->nroots; i++) {
		at = r->offset;
		HDR_STEP(cim_cbor_read_link(&cr, &cid));
		if (on_root != NULL && on_root(rctx, (size_t)i, &cid) != 0)
			return rerr(r, at, "root %llu refused",
				    (unsigned long long)i + 1);
	}
	HDR_STEP(cim_cbor_expect_key(&cr, "version"));
	at = r->offset;
	HDR_STEP(cim_cbor_next(&cr, &it));
	if (it.kind != CIM_CBOR_UINT || it.u != 1)
		return rerr(r, at, "the CAR header's version is not 1");
	if (left != 0)
		return rerr(r, r->offset, "%llu bytes after the CAR header's "
			    "version", (unsigned long long)left);
	return 0;
}
#undef HDR_STEP

int
cim_car_reader_open(cim_car_reader *r, cim_car_source src, void *ctx,
		    cim_car_root_cb on_root, void *rctx)
{
	memset(r, 0, sizeof(*r));
	r->src = src;
	r->ctx = ctx;
	r->buf = malloc(CIM_CAR_BUF);
	if (r->buf == NULL)
		return rerr(r, 0, "out of memory");
	return read_header(r, on_root, rctx);
}

int
cim_car_reader_next(cim_car_reader *r, cim_car_block *b)
{
	uint64_t len, start = r->offset, data_start;
	size_t used;
	int rc;

	memset(b, 0, sizeof(*b));
	rc = read_varint(r, &len, "a section length", true);
	if (rc <= 0)
		return rc;
	b->offset = start;
	data_start = r->offset;
	if (len == 0)
		return rerr(r, start, "an empty section");
	if (len > CIM_CAR_SECTION_MAX)
		return rerr(r, start, "a section of %llu bytes (at most %llu)",
			    (unsigned long long)len,
			    (unsigned long long)CIM_CAR_SECTION_MAX);
	cbuf_reset(&r->section);
	while (r->section.len < len) {
		ssize_t avail = fill(r, 1);
		size_t n;

		if (avail < 0)
			return -1;
		if (avail == 0)
			return rerr(r, r->offset, "the file ends inside the "
				    "section that starts at byte %llu (%llu of "
				    "its %llu bytes there)",
				    (unsigned long long)start,
				    (unsigned long long)r->section.len,
				    (unsigned long long)len);
		n = (size_t)avail;
		if (n > len - r->section.len)
			n = (size_t)(len - r->section.len);
		if (cbuf_put(&r->section, r->buf + r->pos, n) == -1)
			return rerr(r, r->offset, "out of memory");
		consume(r, n);
	}
	if (r->section.p[0] == 0x12 && len > 1 && r->section.p[1] == 0x20)
		return rerr(r, data_start, "a CIDv0 (only CIDv1 is read)");
	if (cim_cid_from_prefix(&b->cid, r->section.p, (size_t)len, &used) != 0)
		return rerr(r, data_start, "the section does not start with a "
			    "valid CIDv1");
	b->data = r->section.p + used;
	b->len = (size_t)len - used;
	b->data_offset = data_start + used;
	return 1;
}

void
cim_car_reader_close(cim_car_reader *r)
{
	free(r->buf);
	cbuf_free(&r->section);
	r->buf = NULL;
}
