/*
 * repository.c: the repository helper: aggregates loaded through the
 * caller's functions, appended with the loaded version as the expected
 * version, and snapshotted every snapshot_threshold events.
 *
 * The state never leaves the caller: the repository hands it to reset,
 * restore, apply and snapshot, and keeps only the version, head and
 * snapshot version in cim_aggregate. Appended events are applied from what
 * the caller sent plus what the daemon answered (version, CID, event_id,
 * seq), so an append costs one round trip; their timestamp is not in the
 * append reply and is NULL there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define DEFAULT_THRESHOLD 100

struct cim_repository {
	cim_client *c;
	char *type;
	cim_aggregate_ops ops;
	unsigned threshold;
};

cim_err
cim_repository_open(cim_repository **out, cim_client *c,
		    const char *aggregate_type, const cim_aggregate_ops *ops,
		    const cim_repository_options *opts, cim_error *err)
{
	cim_repository *r;
	cim_err rc;

	cimc_clear(err);
	if (out == NULL || c == NULL || ops == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, NULL,
				 "out, client and ops must not be NULL");
	*out = NULL;
	if ((rc = cimc_check_token(aggregate_type, "aggregate_type", err)))
		return rc;
	if (ops->reset == NULL || ops->apply == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "ops",
				 "ops must have reset and apply");
	if (ops->snapshot != NULL && ops->restore == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "ops",
				 "ops that make snapshots must restore them too");
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->type = cimc_strdup(aggregate_type)) == NULL) {
		free(r);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	r->c = c;
	r->ops = *ops;
	r->threshold = opts != NULL && opts->snapshot_threshold > 0
			       ? opts->snapshot_threshold
			       : DEFAULT_THRESHOLD;
	*out = r;
	return CIM_ERR_OK;
}

void
cim_repository_close(cim_repository *r)
{
	if (r == NULL)
		return;
	free(r->type);
	free(r);
}

/* Saves a snapshot when threshold events have been stored since the last
 * one. Its outcome goes to agg->snapshot_error, never to the caller's
 * call: the events are stored either way. */
static void
maybe_snapshot(cim_repository *r, cim_aggregate *agg, void *state)
{
	cim_snapshot s;
	cim_error e;
	char *json;

	if (r->ops.snapshot == NULL || agg->version == 0 ||
	    agg->version - agg->snapshot_version < r->threshold)
		return;
	if ((json = r->ops.snapshot(state)) == NULL) {
		agg->snapshot_error = CIM_ERR_HANDLER;
		return;
	}
	agg->snapshot_error = cim_snapshot_save(r->c, r->type, agg->id,
						agg->version, json, &s, &e);
	free(json);
	/* a newer snapshot kept in place counts as the latest one too */
	if (agg->snapshot_error == CIM_ERR_OK)
		agg->snapshot_version = s.version;
}

static cim_err
apply(cim_repository *r, void *state, cim_aggregate *agg, const cim_event *ev,
      cim_error *err)
{
	if (r->ops.apply(state, ev) != 0)
		return cimc_fail(err, CIM_ERR_HANDLER, NULL,
				 "apply failed on %s/%s version %llu", r->type,
				 agg->id, (unsigned long long)ev->version);
	agg->version = ev->version;
	snprintf(agg->head, sizeof(agg->head), "%s", ev->cid ? ev->cid : "");
	agg->events_applied++;
	return CIM_ERR_OK;
}

/* The length of an id of a cim_new_event (len 0: up to its NUL), or dflt
 * when it is not given (the daemon used the event_id). */
static size_t
id_len(const char *s, size_t len, size_t dflt)
{
	return s == NULL ? dflt : len != 0 ? len : strlen(s);
}

/* Without snapshots: every event, page by page. */
static cim_err
load_all(cim_repository *r, void *state, cim_aggregate *agg, cim_error *err)
{
	cim_event_iter *it = NULL;
	const cim_event *ev;
	cim_err rc;

	if ((rc = cim_iter_open(r->c, r->type, agg->id, 1, &it, err)))
		return rc;
	while ((rc = cim_iter_next(it, &ev, err)) == CIM_ERR_OK && ev != NULL)
		if ((rc = apply(r, state, agg, ev, err)))
			break;
	cim_iter_close(it);
	return rc;
}

cim_err
cim_repository_load(cim_repository *r, const char *aggregate_id, void *state,
		    cim_aggregate *agg, cim_error *err)
{
	cim_loaded *l = NULL;
	cim_err rc;

	cimc_clear(err);
	if (r == NULL || agg == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, NULL,
				 "repository and agg must not be NULL");
	memset(agg, 0, sizeof(*agg));
	if ((rc = cimc_check_token(aggregate_id, "aggregate_id", err)))
		return rc;
	if (strlen(aggregate_id) > CIM_AGGREGATE_ID_MAX)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "aggregate_id",
				 "aggregate_id is longer than %d bytes",
				 CIM_AGGREGATE_ID_MAX);
	snprintf(agg->id, sizeof(agg->id), "%s", aggregate_id);
	if (r->ops.reset(state) != 0)
		return cimc_fail(err, CIM_ERR_HANDLER, NULL, "reset failed");
	if (r->ops.restore == NULL)
		return load_all(r, state, agg, err);

	if ((rc = cim_load(r->c, r->type, aggregate_id, &l, err)))
		return rc;
	if (l->snapshot != NULL) {
		if (r->ops.restore(state, l->snapshot->state_json) != 0) {
			rc = cimc_fail(err, CIM_ERR_HANDLER, NULL,
				       "restore failed on the snapshot of %s/%s "
				       "at version %llu", r->type, agg->id,
				       (unsigned long long)l->snapshot->version);
			goto out;
		}
		agg->version = agg->snapshot_version = l->snapshot->version;
		snprintf(agg->head, sizeof(agg->head), "%s",
			 l->snapshot->event_cid);
	}
	for (size_t i = 0; i < l->n_events; i++)
		if ((rc = apply(r, state, agg, &l->events[i], err)))
			goto out;
	maybe_snapshot(r, agg, state);
out:
	cim_loaded_destroy(l);
	return rc;
}

cim_err
cim_repository_append(cim_repository *r, cim_aggregate *agg, void *state,
		      const cim_new_event *events, size_t n,
		      cim_append_result **out, cim_error *err)
{
	cim_append_result *res = NULL;
	cim_err rc;

	cimc_clear(err);
	if (out != NULL)
		*out = NULL;
	if (r == NULL || agg == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, NULL,
				 "repository and agg must not be NULL");
	if (agg->version > INT64_MAX)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "version",
				 "the aggregate's version is out of range");
	/* version 0 is sent as 0, which the contract reads as no_stream */
	rc = cim_append(r->c, r->type, agg->id, (int64_t)agg->version, events,
			n, &res, err);
	if (rc != CIM_ERR_OK)
		return rc;
	agg->events_applied = 0;
	for (size_t i = 0; i < res->n_events && i < n; i++) {
		const cim_appended_event *a = &res->events[i];
		const cim_new_event *ne = &events[i];
		cim_event ev = {
			.aggregate_type = r->type,
			.aggregate_id = agg->id,
			.version = a->version,
			.event_type = (char *)ne->event_type,
			.event_id = a->event_id,
			.correlation_id = (char *)(ne->correlation_id
							   ? ne->correlation_id
							   : a->event_id),
			.causation_id = (char *)(ne->causation_id
							 ? ne->causation_id
							 : a->event_id),
			.timestamp = NULL,
			.metadata_json = (char *)(ne->metadata_json
							  ? ne->metadata_json
							  : "{}"),
			.data_json = (char *)ne->data_json,
			.cid = a->cid,
			.seq = a->seq,
			.event_id_len = a->event_id_len,
			.correlation_id_len = id_len(ne->correlation_id,
						     ne->correlation_id_len,
						     a->event_id_len),
			.causation_id_len = id_len(ne->causation_id,
						   ne->causation_id_len,
						   a->event_id_len),
		};
		char prev[sizeof(agg->head)];

		/* a copy: apply overwrites agg->head */
		snprintf(prev, sizeof(prev), "%s", agg->head);
		ev.prev = prev[0] ? prev : NULL;
		if ((rc = apply(r, state, agg, &ev, err))) {
			cimc_fail(err, CIM_ERR_HANDLER, NULL,
				  "the events are stored (version %llu) but apply "
				  "failed on version %llu: load the aggregate "
				  "again", (unsigned long long)res->version,
				  (unsigned long long)a->version);
			agg->version = res->version;
			snprintf(agg->head, sizeof(agg->head), "%s", res->head);
			break;
		}
	}
	if (rc == CIM_ERR_OK)
		maybe_snapshot(r, agg, state);
	if (out != NULL)
		*out = res;
	else
		cim_append_result_destroy(res);
	return rc;
}
