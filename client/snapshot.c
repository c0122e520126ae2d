/*
 * snapshot.c: snapshot.save, snapshot.get, load and by_type.
 *
 * load hands back the whole tail after the snapshot: when the daemon cuts
 * its reply at the NATS payload limit (next_from_version), the rest comes
 * through get, page by page, up to the version the load reported.
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "jsonread.h"

static cim_err
check_aggregate(const cim_client *c, const char *type, const char *id,
		const void *out, cim_error *err)
{
	cim_err rc;

	if (c == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "client",
				 "client must not be NULL");
	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	if ((rc = cimc_check_token(type, "aggregate_type", err)) ||
	    (rc = cimc_check_token(id, "aggregate_id", err)))
		return rc;
	return CIM_ERR_OK;
}

void
cim_snapshot_clear(cim_snapshot *s)
{
	if (s == NULL)
		return;
	free(s->state_json);
	memset(s, 0, sizeof(*s));
}

/* A snapshot object of a reply; with_state: it must hold "state". */
static cim_err
decode_snapshot(const json_t *j, bool with_state, cim_snapshot *s,
		cim_error *err)
{
	static const char what[] = "snapshot";
	const json_t *state = json_object_get(j, "state");
	cim_err rc;

	memset(s, 0, sizeof(*s));
	if (!json_is_object(j))
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the snapshot in the reply is not an object");
	if ((rc = cimc_get_u64(j, what, "version", &s->version, err)) ||
	    (rc = cimc_get_strbuf(j, what, "snapshot_cid", false,
				  s->snapshot_cid, sizeof(s->snapshot_cid),
				  err)) ||
	    (rc = cimc_get_strbuf(j, what, "event_cid", false, s->event_cid,
				  sizeof(s->event_cid), err)))
		return rc;
	if (!with_state)
		return CIM_ERR_OK;
	if ((rc = cimc_get_strbuf(j, what, "timestamp", false, s->timestamp,
				  sizeof(s->timestamp), err)))
		return rc;
	if (state == NULL)
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the snapshot in the reply has no state");
	if ((s->state_json = cim_json_text(state)) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	return CIM_ERR_OK;
}

cim_err
cim_snapshot_save(cim_client *c, const char *aggregate_type,
		  const char *aggregate_id, uint64_t version,
		  const char *state_json, cim_snapshot *out, cim_error *err)
{
	cim_snapshot ignored;
	json_t *req, *state, *reply = NULL;
	json_error_t je;
	cim_err rc;

	cimc_clear(err);
	if (out == NULL)
		out = &ignored;
	memset(out, 0, sizeof(*out));
	if ((rc = check_aggregate(c, aggregate_type, aggregate_id, out, err)))
		return rc;
	if (state_json == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "state",
				 "state_json must not be NULL");
	if (version == 0 || version > INT64_MAX)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "version",
				 "version must be 1 or more");
	state = cim_json_read(state_json, strlen(state_json), JSON_DECODE_ANY,
			      &je);
	if (state == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "state",
				 "state_json is not JSON: %s", je.text);
	req = json_pack("{sI so}", "version", (json_int_t)version, "state",
			state);
	if (req == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	rc = cimc_call(c, "snapshot.save", aggregate_type, aggregate_id, req,
		       &reply, err);
	json_decref(req);
	if (rc != CIM_ERR_OK)
		return rc;
	rc = decode_snapshot(reply, false, out, err);
	json_decref(reply);
	return rc;
}

cim_err
cim_snapshot_get(cim_client *c, const char *aggregate_type,
		 const char *aggregate_id, cim_snapshot *out, cim_error *err)
{
	json_t *reply = NULL;
	cim_err rc;

	cimc_clear(err);
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if ((rc = check_aggregate(c, aggregate_type, aggregate_id, out, err)))
		return rc;
	rc = cimc_call(c, "snapshot.get", aggregate_type, aggregate_id, NULL,
		       &reply, err);
	if (rc != CIM_ERR_OK)
		return rc;
	rc = decode_snapshot(reply, true, out, err);
	json_decref(reply);
	if (rc != CIM_ERR_OK)
		cim_snapshot_clear(out);
	return rc;
}

/* ---- load ---------------------------------------------------------------- */

void
cim_loaded_destroy(cim_loaded *l)
{
	if (l == NULL)
		return;
	if (l->snapshot != NULL) {
		cim_snapshot_clear(l->snapshot);
		free(l->snapshot);
	}
	for (size_t i = 0; i < l->n_events; i++)
		cimc_event_clear(&l->events[i]);
	free(l->events);
	free(l);
}

/* Appends the events of a reply's array to l. */
static cim_err
add_events(cim_loaded *l, const json_t *arr, cim_error *err)
{
	size_t n = json_array_size(arr);
	cim_event *grown;
	cim_err rc;

	if (!json_is_array(arr))
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the reply's \"events\" is not an array");
	if (n == 0)
		return CIM_ERR_OK;
	grown = realloc(l->events, (l->n_events + n) * sizeof(*grown));
	if (grown == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	l->events = grown;
	memset(l->events + l->n_events, 0, n * sizeof(*grown));
	for (size_t i = 0; i < n; i++) {
		rc = cimc_decode_event(json_array_get(arr, i),
				       &l->events[l->n_events], err);
		l->n_events++; /* so destroy frees a half-filled one */
		if (rc != CIM_ERR_OK)
			return rc;
	}
	return CIM_ERR_OK;
}

/* The next_from_version of a reply: 0 when null or absent. */
static cim_err
next_from(const json_t *reply, uint64_t *next, cim_error *err)
{
	const json_t *v = json_object_get(reply, "next_from_version");

	*next = 0;
	if (v == NULL || json_is_null(v))
		return CIM_ERR_OK;
	return cimc_get_u64(reply, "reply", "next_from_version", next, err);
}

cim_err
cim_load(cim_client *c, const char *aggregate_type, const char *aggregate_id,
	 cim_loaded **out, cim_error *err)
{
	json_t *reply = NULL, *req;
	const json_t *snap;
	cim_loaded *l;
	uint64_t next = 0;
	cim_err rc;

	cimc_clear(err);
	if (out != NULL)
		*out = NULL;
	if ((rc = check_aggregate(c, aggregate_type, aggregate_id, out, err)))
		return rc;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	rc = cimc_call(c, "load", aggregate_type, aggregate_id, NULL, &reply,
		       err);
	if (rc != CIM_ERR_OK)
		goto fail;
	snap = json_object_get(reply, "snapshot");
	if (snap == NULL) {
		rc = cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
			       "the load reply has no \"snapshot\"");
		goto fail;
	}
	if (!json_is_null(snap)) {
		if ((l->snapshot = calloc(1, sizeof(*l->snapshot))) == NULL) {
			rc = cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
			goto fail;
		}
		if ((rc = decode_snapshot(snap, true, l->snapshot, err)))
			goto fail;
	}
	if ((rc = cimc_get_u64(reply, "reply", "version", &l->version, err)) ||
	    (rc = add_events(l, json_object_get(reply, "events"), err)) ||
	    (rc = next_from(reply, &next, err)))
		goto fail;
	/* the rest of a tail the daemon cut short, up to the loaded version */
	while (next != 0 && next <= l->version) {
		json_decref(reply);
		reply = NULL;
		req = json_pack("{sI}", "from_version", (json_int_t)next);
		if (req == NULL) {
			rc = cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
			goto fail;
		}
		rc = cimc_call(c, "get", aggregate_type, aggregate_id, req,
			       &reply, err);
		json_decref(req);
		if (rc != CIM_ERR_OK ||
		    (rc = add_events(l, json_object_get(reply, "events"), err)) ||
		    (rc = next_from(reply, &next, err)))
			goto fail;
	}
	/* events appended since the load are not part of it */
	while (l->n_events > 0 && l->events[l->n_events - 1].version > l->version)
		cimc_event_clear(&l->events[--l->n_events]);
	json_decref(reply);
	*out = l;
	return CIM_ERR_OK;
fail:
	json_decref(reply);
	cim_loaded_destroy(l);
	return rc;
}

/* ---- by_type ------------------------------------------------------------- */

void
cim_event_list_destroy(cim_event_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n_events; i++)
		cimc_event_clear(&l->events[i]);
	free(l->events);
	free(l);
}

cim_err
cim_by_type(cim_client *c, const char *event_type, uint64_t after_seq,
	    unsigned limit, cim_event_list **out, cim_error *err)
{
	json_t *req, *reply = NULL;
	const json_t *evs, *next;
	cim_event_list *l;
	cim_err rc;

	cimc_clear(err);
	if (out != NULL)
		*out = NULL;
	if (c == NULL || out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
				 c == NULL ? "client" : "out", "%s must not be NULL",
				 c == NULL ? "client" : "out");
	if ((rc = cimc_check_token(event_type, "event_type", err)))
		return rc;
	if (after_seq > INT64_MAX)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "after_seq",
				 "after_seq is out of range");
	req = json_pack("{sI}", "after_seq", (json_int_t)after_seq);
	if (req == NULL || (limit > 0 && json_object_set_new(
				req, "limit", json_integer(limit)) != 0)) {
		json_decref(req);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	rc = cimc_call(c, "by_type", event_type, NULL, req, &reply, err);
	json_decref(req);
	if (rc != CIM_ERR_OK)
		return rc;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		json_decref(reply);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	next = json_object_get(reply, "next_after_seq");
	if ((rc = cimc_get_items(reply, "events", sizeof(*l->events), &evs,
				 (void **)&l->events, err)))
		goto fail;
	for (size_t i = 0; i < json_array_size(evs); i++) {
		l->n_events = i + 1;
		if ((rc = cimc_decode_event(json_array_get(evs, i),
					    &l->events[i], err)))
			goto fail;
	}
	if (next != NULL && !json_is_null(next) &&
	    (rc = cimc_get_u64(reply, "reply", "next_after_seq",
			       &l->next_after_seq, err)))
		goto fail;
	json_decref(reply);
	*out = l;
	return CIM_ERR_OK;
fail:
	json_decref(reply);
	cim_event_list_destroy(l);
	return rc;
}
