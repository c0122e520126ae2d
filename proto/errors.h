/*
 * errors.h: the contract's error codes for the daemon and the client.
 *
 * The table itself is CIM_ERR_MAP in the public header cim/events.h; this
 * file adds the error object that proto's decoders fill and the JSON form
 * of a contract error reply.
 */
#ifndef CIM_PROTO_ERRORS_H
#define CIM_PROTO_ERRORS_H

#include <jansson.h>

#include "cim/events.h"

/* What a proto decoder reports: a contract code, the field at fault
 * (invalid_argument) and one clear sentence. */
typedef struct cim_perr {
	cim_err code;
	char field[64];
	char msg[256];
} cim_perr;

/* Fills e (which may be NULL) and returns -1, so callers can write
 * `return cim_perr_set(e, ...)`. */
int cim_perr_set(cim_perr *e, cim_err code, const char *field,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Writes the formatted sentence into err[errsz] (err may be NULL) and
 * returns -1: the error style of the block codecs (`return cim_errf(...)`). */
int cim_errf(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* {"error": {"code": ..., "message": ..., "field": ...}}: field is added
 * when non-empty. The caller adds other details to the inner object
 * (json_object_get(obj, "error")). Returns NULL when memory runs out. */
json_t *cim_error_json(cim_err code, const char *field, const char *message);

#endif
