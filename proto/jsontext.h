/*
 * jsontext.h: JSON values as compact text with floats in their shortest
 * exact form (0.1, not 0.10000000000000001; 2.0 stays 2.0).
 */
#ifndef CIM_PROTO_JSONTEXT_H
#define CIM_PROTO_JSONTEXT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Appends j as compact JSON to out. 0, or -1 when memory runs out (out is
 * left as it was). */
int cim_json_write(cbuf *out, const json_t *j);

/* j as a new NUL-terminated string (free it), or NULL when memory runs out
 * or j is NULL. */
char *cim_json_text(const json_t *j);

/* The pieces cim_json_write is made of, for writers that produce JSON text
 * without a jansson tree and must match cim_json_write byte for byte. Each
 * appends to out and returns 0, or -1 when memory runs out (out is then
 * left as it was). */

/* s[0..len) (valid UTF-8, NULs allowed) as a JSON string: quotes, and only
 * the escapes JSON requires, exactly as cim_json_write writes strings. */
int cim_json_write_string(cbuf *out, const char *s, size_t len);
/* d (finite) in its shortest exact form, exactly as cim_json_write writes
 * a JSON real. */
int cim_json_write_real(cbuf *out, double d);
/* v in decimal, exactly as cim_json_write writes a JSON integer. */
int cim_json_write_int(cbuf *out, int64_t v);

/* s[0..len) (valid UTF-8, NULs allowed) as a quoted JSON string for a
 * message ("a\u0000b"), its first 40 bytes then ... when longer, into
 * out[outsz]. Returns the length written. */
size_t cim_json_quote(char *out, size_t outsz, const char *s, size_t len);

#endif
