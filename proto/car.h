/*
 * car.h: CARv1 files (https://ipld.io/specs/transport/car/carv1/), written
 * and read as streams.
 *
 * Layout: a varint (unsigned LEB128, minimal) giving the header's length,
 * the header, a DAG-CBOR map of exactly {roots: [links...], version: 1}
 * (canonical: roots first); then sections to the end of the file, each a
 * varint giving len(CID bytes) + len(block), the binary CIDv1 (no 0x00
 * prefix, unlike a tag-42 link) and the block's bytes.
 *
 * The writer holds nothing but the current root or block: a caller
 * streams blocks in (aggregate by aggregate, as they come from NATS) and
 * the bytes go straight to its sink. The header needs the roots first:
 * the writer asks for them through a callback, twice each (once to size
 * the header, once to write it), so the caller keeps them as it likes.
 *
 * The reader is strict and safe on hostile input: varints minimal and at
 * most 9 bytes, the header exactly the shape above (read item by item,
 * never held whole, so any number of roots reads in bounded memory), each
 * section at most CIM_CAR_SECTION_MAX bytes, read into memory only as its
 * bytes arrive, and holding a valid CIDv1 with at least the CID. Errors
 * name the byte offset in the file.
 */
#ifndef CIM_PROTO_CAR_H
#define CIM_PROTO_CAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "buf.h"
#include "cid.h"

/* The longest header read (1 GiB: some 25 million roots) and the longest
 * section (a 64 MiB block, NATS's own payload ceiling, plus its CID). */
#define CIM_CAR_HEADER_MAX ((uint64_t)1 << 30)
#define CIM_CAR_BLOCK_MAX ((uint64_t)64 << 20)
#define CIM_CAR_SECTION_MAX (CIM_CAR_BLOCK_MAX + CIM_CID_MAX)

/* Where written bytes go: 0, or -1 when they cannot be written. */
typedef int (*cim_car_sink)(void *ctx, const uint8_t *p, size_t n);
/* Where read bytes come from: the count read into buf (at most cap), 0 at
 * the end, -1 on a read error (errno set). */
typedef ssize_t (*cim_car_source)(void *ctx, uint8_t *buf, size_t cap);
/* Root i (0-based) of n, into *out: 0, or -1 to stop. */
typedef int (*cim_car_root_fn)(void *ctx, size_t i, cim_cid *out);

/* Ready-made ends for a FILE *: fwrite and fread on ctx. */
int cim_car_stdio_sink(void *file, const uint8_t *p, size_t n);
ssize_t cim_car_stdio_source(void *file, uint8_t *buf, size_t cap);

/* A buffer read as a file (tests, the fuzz target). */
typedef struct cim_car_mem {
	const uint8_t *p;
	size_t len, pos;
} cim_car_mem;
ssize_t cim_car_mem_source(void *mem, uint8_t *buf, size_t cap);

/* ---- writing ------------------------------------------------------------- */

typedef struct cim_car_writer {
	cim_car_sink sink;
	void *ctx;
	uint64_t offset; /* bytes written so far */
	uint64_t blocks; /* sections written */
	bool failed;     /* a write failed: everything after is refused */
	char err[160];
} cim_car_writer;

/* Starts a CAR file: writes the header with the nroots roots that
 * root(rctx, i, &cid) gives (called twice for each i, in order, with the
 * same answer expected both times). Returns 0, or -1 with w->err set
 * (the sink failed, a root callback failed or changed its answer, the
 * header would pass CIM_CAR_HEADER_MAX). */
int cim_car_writer_begin(cim_car_writer *w, cim_car_sink sink, void *ctx,
			 size_t nroots, cim_car_root_fn root, void *rctx);
/* The same with the roots in an array. */
int cim_car_writer_begin_roots(cim_car_writer *w, cim_car_sink sink,
			       void *ctx, const cim_cid *roots, size_t nroots);
/* Writes one section: cid's bytes then data (the caller vouches that cid
 * is data's CID; cim_cid_compute makes it). Returns 0, or -1 with w->err
 * set (sink failure, an empty CID, a block over CIM_CAR_BLOCK_MAX, or
 * the writer already failed). */
int cim_car_write_block(cim_car_writer *w, const cim_cid *cid,
			const uint8_t *data, size_t len);

/* ---- reading ------------------------------------------------------------- */

#define CIM_CAR_BUF 65536

typedef struct cim_car_reader {
	cim_car_source src;
	void *ctx;
	uint8_t *buf;    /* CIM_CAR_BUF bytes of read-ahead */
	size_t pos, end; /* the unread bytes are buf[pos..end) */
	bool eof;
	bool io_error;   /* the source failed (not the file's fault) */
	uint64_t offset; /* the file offset of buf[pos] */
	uint64_t nroots;
	cbuf section;    /* the current section's bytes */
	char err[256];
} cim_car_reader;

/* One section as read: its CID, its block (pointing into the reader, valid
 * until the next call), and where it is in the file. */
typedef struct cim_car_block {
	cim_cid cid;
	const uint8_t *data;
	size_t len;
	uint64_t offset;      /* of the section's length varint */
	uint64_t data_offset; /* of the block's first byte */
} cim_car_block;

/* Opens a CAR stream and reads its header, calling on_root(rctx, i, &cid)
 * (may be NULL) for each root in order. Returns 0, or -1 with r->err set
 * (always close the reader). */
typedef int (*cim_car_root_cb)(void *ctx, size_t i, const cim_cid *cid);
int cim_car_reader_open(cim_car_reader *r, cim_car_source src, void *ctx,
			cim_car_root_cb on_root, void *rctx);
/* The next section: 1 with *b filled, 0 at the clean end of the file, -1
 * with r->err set (truncation, a bad varint or CID, a section too long or
 * shorter than its CID, a read error). */
int cim_car_reader_next(cim_car_reader *r, cim_car_block *b);
void cim_car_reader_close(cim_car_reader *r);

#endif
