/*
 * errors.c: everything made from the one error table, CIM_ERR_MAP in
 * cim/events.h: code names, Cim-Status numbers, sentences, the reverse
 * lookup, proto's error object and the JSON form of an error reply. The
 * library's version string and cim_free live here too, as the other
 * small public functions shared by the daemon and the client.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

static const struct {
	const char *name;
	int status;
	const char *text;
} table[] = {
#define ENTRY(id, name, status, text) [CIM_ERR_##id] = {name, status, text},
	CIM_ERR_MAP(ENTRY)
#undef ENTRY
};

static int
known(cim_err code)
{
	return (int)code >= 0 && (int)code < (int)CIM_ERR__COUNT;
}

const char *
cim_version(void)
{
	return CIM_EVENTS_VERSION;
}

void
cim_free(void *p)
{
	free(p);
}

const char *
cim_err_name(cim_err code)
{
	return known(code) ? table[code].name : "unknown";
}

int
cim_err_status(cim_err code)
{
	return known(code) ? table[code].status : 0;
}

const char *
cim_strerror(cim_err code)
{
	return known(code) ? table[code].text : "unknown error";
}

cim_err
cim_err_from_name(const char *name)
{
	int i;

	if (name == NULL)
		return CIM_ERR_BAD_REPLY;
	for (i = 0; i < (int)CIM_ERR__COUNT; i++)
		if (strcmp(table[i].name, name) == 0)
			return (cim_err)i;
	return CIM_ERR_BAD_REPLY;
}

int
cim_perr_set(cim_perr *e, cim_err code, const char *field,
	     const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return -1;
	e->code = code;
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	if (fmt == NULL) {
		snprintf(e->msg, sizeof(e->msg), "%s", cim_strerror(code));
		return -1;
	}
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* A JSON string of s, or of fallback when s is not valid UTF-8 (a
 * message may quote client input). NULL only when memory runs out. */
static json_t *
text(const char *s, const char *fallback)
{
	json_t *j;

	j = json_string(s);
	if (j == NULL)
		j = json_string(fallback);
	return j;
}

json_t *
cim_error_json(cim_err code, const char *field, const char *message)
{
	json_t *inner, *outer;

	if (message == NULL || *message == '\0')
		message = cim_strerror(code);
	inner = json_object();
	if (inner == NULL)
		goto fail;
	if (json_object_set_new(inner, "code",
				json_string(cim_err_name(code))) == -1 ||
	    json_object_set_new(inner, "message",
				text(message, cim_strerror(code))) == -1)
		goto fail;
	if (field != NULL && *field != '\0' &&
	    json_object_set_new(inner, "field", text(field, "?")) == -1)
		goto fail;
	outer = json_object();
	if (outer == NULL)
		goto fail;
	if (json_object_set_new(outer, "error", inner) == -1) {
		json_decref(outer); /* set_new has released inner */
		return NULL;
	}
	return outer;
fail:
	json_decref(inner);
	return NULL;
}

int cim_errf(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}
