/*
 * append.c: cim_append, the request it builds and the reply it decodes.
 *
 * Event data travels as JSON parsed here from the caller's text, so a
 * number keeps its kind (2 an integer, 2.0 a float) and text that is not
 * JSON is refused before anything is sent. The daemon judges the rest.
 * Every string is taken, \u0000 included (cim_json_read).
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "jsonread.h"

/* Parses caller text into *out; field names the member in the error. */
static cim_err
parse_json(const char *text, const char *field, int index, json_t **out,
	   cim_error *err)
{
	json_error_t jerr;

	if ((*out = cim_json_read(text, strlen(text), JSON_DECODE_ANY,
				  &jerr)) == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, field,
				 "event %d: %s is not valid JSON: %s", index,
				 field, jerr.text);
	return CIM_ERR_OK;
}

static cim_err
set_new(json_t *obj, const char *key, json_t *v, cim_error *err)
{
	if (v == NULL || json_object_set_new(obj, key, v) != 0)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	return CIM_ERR_OK;
}

/* json_stringn fails on text that is not UTF-8 (or out of memory); len
 * 0 is up to the first NUL. */
static cim_err
set_str(json_t *obj, const char *key, const char *s, size_t len, int index,
	cim_error *err)
{
	json_t *v = json_stringn(s, len ? len : strlen(s));

	if (v == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, key,
				 "event %d: %s is not valid UTF-8", index, key);
	return set_new(obj, key, v, err);
}

static cim_err
set_opt_str(json_t *obj, const char *key, const char *s, size_t len, int index,
	    cim_error *err)
{
	return s == NULL ? CIM_ERR_OK : set_str(obj, key, s, len, index, err);
}

static cim_err
event_members(json_t *o, const cim_new_event *ev, int i, cim_error *err)
{
	json_t *v = NULL;
	cim_err rc;

	if (ev->event_type == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "event_type",
				 "event %d: event_type must not be NULL", i);
	if (ev->data_json == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "data",
				 "event %d: data_json must not be NULL", i);
	if ((rc = set_str(o, "event_type", ev->event_type, 0, i, err)))
		return rc;
	if ((rc = parse_json(ev->data_json, "data", i, &v, err)) ||
	    (rc = set_new(o, "data", v, err)))
		return rc;
	if ((rc = set_opt_str(o, "event_id", ev->event_id, ev->event_id_len, i,
			      err)) ||
	    (rc = set_opt_str(o, "correlation_id", ev->correlation_id,
			      ev->correlation_id_len, i, err)) ||
	    (rc = set_opt_str(o, "causation_id", ev->causation_id,
			      ev->causation_id_len, i, err)))
		return rc;
	if (ev->metadata_json != NULL &&
	    ((rc = parse_json(ev->metadata_json, "metadata", i, &v, err)) ||
	     (rc = set_new(o, "metadata", v, err))))
		return rc;
	return CIM_ERR_OK;
}

/* One event of the request; index is 1-based, for messages. */
static cim_err
event_json(const cim_new_event *ev, int index, json_t **out, cim_error *err)
{
	json_t *o = json_object();
	cim_err rc;

	if (o == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	if ((rc = event_members(o, ev, index, err)) != CIM_ERR_OK) {
		json_decref(o);
		return rc;
	}
	*out = o;
	return CIM_ERR_OK;
}

static json_t *
expected_json(int64_t expected)
{
	switch (expected) {
	case CIM_EXPECT_ANY:
		return json_string("any");
	case CIM_EXPECT_NO_STREAM:
		return json_string("no_stream");
	case CIM_EXPECT_EXISTS:
		return json_string("exists");
	default:
		return json_integer(expected);
	}
}

static cim_err
append_request(int64_t expected, const cim_new_event *events, size_t n,
	       json_t **out, cim_error *err)
{
	json_t *req = json_object(), *arr = json_array();
	json_t *ev = NULL;
	cim_err rc = CIM_ERR_OK;

	if (req == NULL || arr == NULL) {
		json_decref(arr);
		rc = cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
		goto fail;
	}
	if ((rc = set_new(req, "expected_version", expected_json(expected),
			  err)) != CIM_ERR_OK ||
	    (rc = set_new(req, "events", arr, err)) != CIM_ERR_OK)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if ((rc = event_json(&events[i], (int)i + 1, &ev, err)) !=
		    CIM_ERR_OK)
			goto fail;
		if (json_array_append_new(arr, ev) != 0) {
			rc = cimc_fail(err, CIM_ERR_NOMEM, NULL,
				       "out of memory");
			goto fail;
		}
	}
	*out = req;
	return CIM_ERR_OK;
fail:
	json_decref(req);
	return rc;
}

static cim_err
decode_appended(const json_t *j, cim_appended_event *e, cim_error *err)
{
	cim_err rc;

	if (!json_is_object(j))
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "an appended event in the reply is not an "
				 "object");
	if ((rc = cimc_get_u64(j, "event", "version", &e->version, err)) ||
	    (rc = cimc_get_u64(j, "event", "seq", &e->seq, err)) ||
	    (rc = cimc_get_str(j, "event", "cid", false, &e->cid, err)) ||
	    (rc = cimc_get_strn(j, "event", "event_id", false, &e->event_id,
				&e->event_id_len, err)))
		return rc;
	return CIM_ERR_OK;
}

static cim_err
decode_append(const json_t *j, cim_append_result **out, cim_error *err)
{
	const json_t *evs;
	cim_append_result *r = calloc(1, sizeof(*r));
	cim_err rc;

	if (r == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	if ((rc = cimc_get_str(j, "reply", "aggregate_type", false,
			       &r->aggregate_type, err)) ||
	    (rc = cimc_get_str(j, "reply", "aggregate_id", false,
			       &r->aggregate_id, err)) ||
	    (rc = cimc_get_u64(j, "reply", "version", &r->version, err)) ||
	    (rc = cimc_get_str(j, "reply", "head", false, &r->head, err)) ||
	    (rc = cimc_get_items(j, "events", sizeof(*r->events), &evs,
				 (void **)&r->events, err)))
		goto fail;
	for (size_t i = 0; i < json_array_size(evs); i++) {
		r->n_events = i + 1; /* so destroy frees a half-filled one */
		if ((rc = decode_appended(json_array_get(evs, i), &r->events[i],
					  err)) != CIM_ERR_OK)
			goto fail;
	}
	*out = r;
	return CIM_ERR_OK;
fail:
	cim_append_result_destroy(r);
	return rc;
}

cim_err
cim_append(cim_client *c, const char *aggregate_type, const char *aggregate_id,
	   int64_t expected_version, const cim_new_event *events, size_t n,
	   cim_append_result **out, cim_error *err)
{
	json_t *req = NULL, *reply = NULL;
	cim_err rc;

	cimc_clear(err);
	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	*out = NULL;
	if (c == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "client",
				 "client must not be NULL");
	if ((rc = cimc_check_token(aggregate_type, "aggregate_type", err)) ||
	    (rc = cimc_check_token(aggregate_id, "aggregate_id", err)))
		return rc;
	if (expected_version < CIM_EXPECT_EXISTS)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
				 "expected_version",
				 "expected_version must be a version or one "
				 "of CIM_EXPECT_ANY, CIM_EXPECT_NO_STREAM, "
				 "CIM_EXPECT_EXISTS");
	if (events == NULL || n == 0)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "events",
				 "an append needs at least one event");
	if ((rc = append_request(expected_version, events, n, &req, err)) !=
	    CIM_ERR_OK)
		return rc;
	rc = cimc_call(c, "append", aggregate_type, aggregate_id, req, &reply,
		       err);
	json_decref(req);
	if (rc != CIM_ERR_OK)
		return rc;
	rc = decode_append(reply, out, err);
	json_decref(reply);
	return rc;
}

void
cim_append_result_destroy(cim_append_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_events; i++) {
		free(r->events[i].cid);
		free(r->events[i].event_id);
	}
	free(r->events);
	free(r->aggregate_type);
	free(r->aggregate_id);
	free(r->head);
	free(r);
}
