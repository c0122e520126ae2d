/*
 * read.c: the reading calls of libcimevents: get (one page), the iterator
 * that pages through get, head and validate.
 *
 * An event's data comes back as any JSON value; it is handed to the caller
 * as compact JSON text (jsontext.c), so 2.0 stays a float and 2 an
 * integer. Metadata is handed back the same way, as an object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "keys.h"

struct cim_event_iter {
	cim_client *c;
	char *type;
	char *id;
	cim_event_page *page; /* the page being walked; NULL before the first */
	size_t next;          /* index of the next event in page */
};

static cim_err
check_aggregate(const cim_client *c, const char *type, const char *id,
		cim_error *err)
{
	cim_err rc;

	if (c == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "client",
				 "client must not be NULL");
	if ((rc = cimc_check_token(type, "aggregate_type", err)) ||
	    (rc = cimc_check_token(id, "aggregate_id", err)))
		return rc;
	return CIM_ERR_OK;
}

/* ---- events -------------------------------------------------------------- */

void
cimc_event_clear(cim_event *e)
{
	free(e->aggregate_type);
	free(e->aggregate_id);
	free(e->event_type);
	free(e->event_id);
	free(e->correlation_id);
	free(e->causation_id);
	free(e->timestamp);
	free(e->metadata_json);
	free(e->data_json);
	free(e->prev);
	free(e->cid);
	free(e->seal_key);
	free(e->seal_sig);
	memset(e, 0, sizeof(*e));
}

/* A JSON member as compact text; when absent, dflt (if not NULL). */
static cim_err
get_value_text(const json_t *obj, const char *key, const char *dflt, char **out,
	       cim_error *err)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL && dflt == NULL)
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the event's \"%s\" is missing", key);
	if (v != NULL && strcmp(key, "metadata") == 0 && !json_is_object(v))
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the event's \"metadata\" is not an object");
	*out = v != NULL ? cim_json_text(v) : cimc_strdup(dflt);
	if (*out == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	return CIM_ERR_OK;
}

cim_err
cimc_decode_event(const json_t *j, cim_event *e, cim_error *err)
{
	static const char ev[] = "event";
	cim_err rc;

	if (!json_is_object(j))
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "an event in the reply is not an object");
	if ((rc = cimc_get_str(j, ev, "aggregate_type", false,
			       &e->aggregate_type, err)) ||
	    (rc = cimc_get_str(j, ev, "aggregate_id", false, &e->aggregate_id,
			       err)) ||
	    (rc = cimc_get_u64(j, ev, "version", &e->version, err)) ||
	    (rc = cimc_get_str(j, ev, "event_type", false, &e->event_type,
			       err)) ||
	    (rc = cimc_get_strn(j, ev, "event_id", false, &e->event_id,
				&e->event_id_len, err)) ||
	    (rc = cimc_get_strn(j, ev, "correlation_id", false,
				&e->correlation_id, &e->correlation_id_len,
				err)) ||
	    (rc = cimc_get_strn(j, ev, "causation_id", false,
				&e->causation_id, &e->causation_id_len,
				err)) ||
	    (rc = cimc_get_str(j, ev, "timestamp", false, &e->timestamp,
			       err)) ||
	    (rc = get_value_text(j, "metadata", "{}", &e->metadata_json,
				 err)) ||
	    (rc = get_value_text(j, "data", NULL, &e->data_json, err)) ||
	    (rc = cimc_get_str(j, ev, "prev", true, &e->prev, err)) ||
	    (rc = cimc_get_str(j, ev, "cid", false, &e->cid, err)) ||
	    (rc = cimc_get_u64(j, ev, "seq", &e->seq, err)))
		return rc;
	/* v1.1: shown decrypted, or forgotten (absent: false) */
	e->encrypted = json_is_true(json_object_get(j, "encrypted"));
	e->forgotten = json_is_true(json_object_get(j, "forgotten"));
	const json_t *seal = json_object_get(j, "seal");
	if (seal != NULL &&
	    ((rc = cimc_get_str(seal, "seal", "key", false, &e->seal_key, err)) ||
	     (rc = cimc_get_str(seal, "seal", "sig", false, &e->seal_sig, err))))
		return rc;
	return CIM_ERR_OK;
}

/* ---- get ----------------------------------------------------------------- */

static cim_err
decode_page(const json_t *j, cim_event_page **out, cim_error *err)
{
	const json_t *evs;
	const json_t *next = json_object_get(j, "next_from_version");
	cim_event_page *p = calloc(1, sizeof(*p));
	cim_err rc;

	if (p == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	if ((rc = cimc_get_u64(j, "reply", "version", &p->version, err)))
		goto fail;
	if (next != NULL && !json_is_null(next) &&
	    (rc = cimc_get_u64(j, "reply", "next_from_version",
			       &p->next_from_version, err)))
		goto fail;
	if ((rc = cimc_get_items(j, "events", sizeof(*p->events), &evs,
				 (void **)&p->events, err)))
		goto fail;
	for (size_t i = 0; i < json_array_size(evs); i++) {
		p->n_events = i + 1; /* so destroy frees a half-filled one */
		if ((rc = cimc_decode_event(json_array_get(evs, i), &p->events[i],
				       err)))
			goto fail;
	}
	*out = p;
	return CIM_ERR_OK;
fail:
	cim_event_page_destroy(p);
	return rc;
}

static cim_err
get_page(cim_client *c, const char *type, const char *id, uint64_t from,
	 unsigned limit, cim_event_page **out, cim_error *err)
{
	json_t *req = json_object(), *reply = NULL;
	cim_err rc;

	if (req == NULL ||
	    (from > 0 &&
	     json_object_set_new(req, "from_version",
				 json_integer((json_int_t)from)) != 0) ||
	    (limit > 0 &&
	     json_object_set_new(req, "limit", json_integer(limit)) != 0)) {
		json_decref(req);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	rc = cimc_call(c, "get", type, id, req, &reply, err);
	json_decref(req);
	if (rc != CIM_ERR_OK)
		return rc;
	rc = decode_page(reply, out, err);
	json_decref(reply);
	return rc;
}

/* What get and the iterator check before asking: an out pointer, the
 * aggregate's tokens, a from_version the wire can carry. */
static cim_err
check_read(const cim_client *c, const char *type, const char *id,
	   uint64_t from_version, const void *out, cim_error *err)
{
	cim_err rc;

	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	if ((rc = check_aggregate(c, type, id, err)))
		return rc;
	if (from_version > INT64_MAX)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "from_version",
				 "from_version is out of range");
	return CIM_ERR_OK;
}

cim_err
cim_get(cim_client *c, const char *aggregate_type, const char *aggregate_id,
	uint64_t from_version, unsigned limit, cim_event_page **out,
	cim_error *err)
{
	cim_err rc;

	cimc_clear(err);
	if (out != NULL)
		*out = NULL;
	if ((rc = check_read(c, aggregate_type, aggregate_id, from_version, out, err)))
		return rc;
	return get_page(c, aggregate_type, aggregate_id, from_version, limit,
			out, err);
}

void
cim_event_page_destroy(cim_event_page *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_events; i++)
		cimc_event_clear(&p->events[i]);
	free(p->events);
	free(p);
}

/* ---- the iterator -------------------------------------------------------- */

cim_err
cim_iter_open(cim_client *c, const char *aggregate_type,
	      const char *aggregate_id, uint64_t from_version,
	      cim_event_iter **out, cim_error *err)
{
	cim_event_iter *it;
	cim_err rc;

	cimc_clear(err);
	if (out != NULL)
		*out = NULL;
	if ((rc = check_read(c, aggregate_type, aggregate_id, from_version, out, err)))
		return rc;
	if ((it = calloc(1, sizeof(*it))) == NULL ||
	    (it->type = cimc_strdup(aggregate_type)) == NULL ||
	    (it->id = cimc_strdup(aggregate_id)) == NULL) {
		cim_iter_close(it);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	it->c = c;
	/* The first page now, so a missing daemon shows at open. */
	if ((rc = get_page(c, it->type, it->id, from_version, 0, &it->page,
			   err)) != CIM_ERR_OK) {
		cim_iter_close(it);
		return rc;
	}
	*out = it;
	return CIM_ERR_OK;
}

/* Replaces the walked page by the one after it. On failure the iterator
 * is unchanged, so the caller may call cim_iter_next again. */
static cim_err
next_page(cim_event_iter *it, cim_error *err)
{
	uint64_t from = it->page->next_from_version;
	cim_event_page *p = NULL;
	cim_err rc;

	if (from <= it->page->events[it->page->n_events - 1].version ||
	    from > INT64_MAX)
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the daemon's next_from_version %llu does "
				 "not move past the page",
				 (unsigned long long)from);
	if ((rc = get_page(it->c, it->type, it->id, from, 0, &p, err)))
		return rc;
	cim_event_page_destroy(it->page);
	it->page = p;
	it->next = 0;
	return CIM_ERR_OK;
}

cim_err
cim_iter_next(cim_event_iter *it, const cim_event **ev, cim_error *err)
{
	cim_err rc;

	cimc_clear(err);
	if (ev == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "ev",
				 "ev must not be NULL");
	*ev = NULL;
	if (it == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "iter",
				 "iter must not be NULL");
	while (it->next >= it->page->n_events) {
		if (it->page->next_from_version == 0)
			return CIM_ERR_OK; /* the end */
		if (it->page->n_events == 0)
			return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
					 "the daemon sent an empty page that "
					 "is not the last");
		if ((rc = next_page(it, err)) != CIM_ERR_OK)
			return rc;
	}
	*ev = &it->page->events[it->next++];
	return CIM_ERR_OK;
}

void
cim_iter_close(cim_event_iter *it)
{
	if (it == NULL)
		return;
	cim_event_page_destroy(it->page);
	free(it->type);
	free(it->id);
	free(it);
}

/* ---- head and validate --------------------------------------------------- */

static cim_err
decode_head(const json_t *j, cim_head *h, cim_error *err)
{
	const json_t *seq = json_object_get(j, "seq");
	cim_err rc;

	if ((rc = cimc_get_u64(j, "reply", "version", &h->version, err)) ||
	    (rc = cimc_get_strbuf(j, "reply", "head", h->version == 0, h->head,
				  sizeof(h->head), err)))
		return rc;
	if (h->version == 0 && (seq == NULL || json_is_null(seq)))
		return CIM_ERR_OK;
	return cimc_get_u64(j, "reply", "seq", &h->seq, err);
}

/* Asks op about one aggregate and decodes the reply into out (size bytes,
 * zeroed unless the call succeeds). */
typedef cim_err (*decode_fn)(const json_t *reply, void *out, cim_error *err);

static cim_err
ask(cim_client *c, const char *op, const char *aggregate_type,
    const char *aggregate_id, decode_fn decode, void *out, size_t size,
    cim_error *err)
{
	json_t *reply = NULL;
	cim_err rc;

	cimc_clear(err);
	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	memset(out, 0, size);
	if ((rc = check_aggregate(c, aggregate_type, aggregate_id, err)))
		return rc;
	if ((rc = cimc_call(c, op, aggregate_type, aggregate_id, NULL,
			    &reply, err)))
		return rc;
	rc = decode(reply, out, err);
	json_decref(reply);
	if (rc != CIM_ERR_OK)
		memset(out, 0, size);
	return rc;
}

static cim_err
decode_head_any(const json_t *j, void *out, cim_error *err)
{
	return decode_head(j, out, err);
}

cim_err
cim_get_head(cim_client *c, const char *aggregate_type,
	     const char *aggregate_id, cim_head *out, cim_error *err)
{
	return ask(c, "head", aggregate_type, aggregate_id, decode_head_any,
		   out, sizeof(*out), err);
}

static cim_err
decode_failure(const json_t *f, cim_validation *v, cim_error *err)
{
	const char *detail;
	cim_err rc;

	if (!json_is_object(f))
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the reply says not valid but has no "
				 "\"failure\" object");
	if ((rc = cimc_get_u64(f, "failure", "version", &v->failure_version,
			       err)) ||
	    (rc = cimc_get_strbuf(f, "failure", "reason", false,
				  v->failure_reason, sizeof(v->failure_reason),
				  err)))
		return rc;
	/* The detail is for people: a long one is cut, not refused. */
	if ((detail = json_string_value(json_object_get(f, "detail"))) != NULL)
		snprintf(v->failure_detail, sizeof(v->failure_detail), "%s",
			 detail);
	return CIM_ERR_OK;
}

static cim_err
decode_validation(const json_t *j, cim_validation *v, cim_error *err)
{
	const json_t *valid = json_object_get(j, "valid");
	cim_err rc;

	if (!json_is_boolean(valid))
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the reply's \"valid\" is missing or not a "
				 "boolean");
	v->valid = json_is_true(valid);
	if ((rc = cimc_get_u64(j, "reply", "version", &v->version, err)))
		return rc;
	if (json_object_get(j, "checked") != NULL &&
	    (rc = cimc_get_u64(j, "reply", "checked", &v->checked, err)))
		return rc;
	if ((rc = cimc_get_strbuf(j, "reply", "head", true, v->head,
				  sizeof(v->head), err)))
		return rc;
	if (json_object_get(j, "sealed_through") != NULL) {
		v->sealed = true;
		if ((rc = cimc_get_u64(j, "reply", "sealed_through",
				       &v->sealed_through, err)))
			return rc;
	}
	if (!v->valid)
		return decode_failure(json_object_get(j, "failure"), v, err);
	return CIM_ERR_OK;
}

static cim_err
decode_validation_any(const json_t *j, void *out, cim_error *err)
{
	return decode_validation(j, out, err);
}

cim_err
cim_validate(cim_client *c, const char *aggregate_type,
	     const char *aggregate_id, cim_validation *out, cim_error *err)
{
	return ask(c, "validate", aggregate_type, aggregate_id,
		   decode_validation_any, out, sizeof(*out), err);
}

cim_err
cim_validate_keys(cim_client *c, const char *aggregate_type,
		  const char *aggregate_id, const char *const *keys, size_t n,
		  cim_validation *out, cim_error *err)
{
	json_t *req, *arr, *reply = NULL;
	uint8_t pk[CIM_KEY_BYTES];
	cim_err rc;

	if (n == 0)
		return cim_validate(c, aggregate_type, aggregate_id, out, err);
	cimc_clear(err);
	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	memset(out, 0, sizeof(*out));
	if (keys == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "keys",
				 "keys must not be NULL when n > 0");
	for (size_t i = 0; i < n; i++)
		if (keys[i] == NULL || cim_pubkey_from_text(pk, keys[i]) != 0)
			return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "keys",
					 "keys[%zu] is not a public-key text "
					 "(z6Mk..., 48 characters)", i);
	if ((rc = check_aggregate(c, aggregate_type, aggregate_id, err)))
		return rc;
	if ((req = json_object()) == NULL || (arr = json_array()) == NULL ||
	    json_object_set_new(req, "keys", arr) != 0) {
		json_decref(req);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(arr, json_string(keys[i])) != 0) {
			json_decref(req);
			return cimc_fail(err, CIM_ERR_NOMEM, NULL,
					 "out of memory");
		}
	rc = cimc_call(c, "validate", aggregate_type, aggregate_id, req, &reply,
		       err);
	json_decref(req);
	if (rc == CIM_ERR_OK)
		rc = decode_validation(reply, out, err);
	json_decref(reply);
	if (rc != CIM_ERR_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}
