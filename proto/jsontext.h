/*
 * jsontext.h: JSON values as compact text with floats in their shortest
 * exact form (0.1, not 0.10000000000000001; 2.0 stays 2.0).
 */
#ifndef CIM_PROTO_JSONTEXT_H
#define CIM_PROTO_JSONTEXT_H

#include <jansson.h>

#include "buf.h"

/* Appends j as compact JSON to out. 0, or -1 when memory runs out (out is
 * left as it was). */
int cim_json_write(cbuf *out, const json_t *j);

/* j as a new NUL-terminated string (free it), or NULL when memory runs out
 * or j is NULL. */
char *cim_json_text(const json_t *j);

#endif
