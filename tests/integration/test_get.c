/*
 * test_get.c: reading an aggregate back: pages, the iterator over them,
 * the head, and aggregates with no events.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(get, .init = h_setup, .fini = h_teardown, .timeout = 120);

/* Appends `total` events to type/id in batches of 25, each with data
 * {"n": version}; returns the CIDs by version (cids[1..total]). */
static char **append_many(const char *type, const char *id, int total)
{
	char **cids = calloc((size_t)total + 1, sizeof(char *));
	int v = 0;

	cr_assert_not_null(cids);
	while (v < total) {
		cim_new_event evs[25];
		char data[25][32];
		int n = total - v < 25 ? total - v : 25;
		cim_append_result *r = NULL;
		cim_error err = {0};

		for (int i = 0; i < n; i++) {
			snprintf(data[i], sizeof(data[i]), "{\"n\": %d}",
				 v + 1 + i);
			evs[i] = (cim_new_event){.event_type = "Ticked",
						 .data_json = data[i]};
		}
		cr_assert_eq(cim_append(H.client, type, id, v, evs, (size_t)n,
					&r, &err), CIM_ERR_OK, "%s: %s",
			     cim_err_name(err.code), err.message);
		cr_assert_eq(r->version, (uint64_t)(v + n));
		for (int i = 0; i < n; i++)
			cids[v + 1 + i] = strdup(r->events[i].cid);
		v += n;
		cim_append_result_destroy(r);
	}
	return cids;
}

static void free_cids(char **cids, int total)
{
	for (int i = 0; i <= total; i++)
		free(cids[i]);
	free(cids);
}

static void check_page(const cim_event_page *p, char **cids, uint64_t from,
		       size_t n, uint64_t next, uint64_t head)
{
	cr_assert_eq(p->version, head);
	cr_assert_eq(p->n_events, n, "page from %llu: %zu events, want %zu",
		     (unsigned long long)from, p->n_events, n);
	cr_assert_eq(p->next_from_version, next,
		     "page from %llu: next_from_version %llu, want %llu",
		     (unsigned long long)from,
		     (unsigned long long)p->next_from_version,
		     (unsigned long long)next);
	for (size_t i = 0; i < n; i++) {
		const cim_event *e = &p->events[i];
		uint64_t v = from + i;
		char want[32];

		cr_assert_eq(e->version, v);
		cr_assert_str_eq(e->cid, cids[v]);
		snprintf(want, sizeof(want), "{\"n\": %llu}",
			 (unsigned long long)v);
		{
			json_t *a = json_loads(e->data_json, JSON_DECODE_ANY,
					       NULL);
			json_t *b = json_loads(want, 0, NULL);

			cr_assert(json_equal(a, b), "version %llu data %s",
				  (unsigned long long)v, e->data_json);
			json_decref(a);
			json_decref(b);
		}
		if (v == 1)
			cr_assert_null(e->prev);
		else
			cr_assert_str_eq(e->prev, cids[v - 1]);
	}
}

Test(get, pages_of_100_over_250_events_and_the_iterator)
{
	enum { TOTAL = 250 };
	char **cids = append_many("meter", "m-1", TOTAL);
	cim_event_page *p = NULL;
	cim_event_iter *it = NULL;
	cim_error err = {0};
	const cim_event *e;
	uint64_t n = 0;

	cr_assert_eq(cim_get(H.client, "meter", "m-1", 1, 100, &p, &err),
		     CIM_ERR_OK, "%s", err.message);
	check_page(p, cids, 1, 100, 101, TOTAL);
	cim_event_page_destroy(p);

	cr_assert_eq(cim_get(H.client, "meter", "m-1", 101, 100, &p, &err),
		     CIM_ERR_OK);
	check_page(p, cids, 101, 100, 201, TOTAL);
	cim_event_page_destroy(p);

	cr_assert_eq(cim_get(H.client, "meter", "m-1", 201, 100, &p, &err),
		     CIM_ERR_OK);
	check_page(p, cids, 201, 50, 0, TOTAL);
	cim_event_page_destroy(p);

	cr_assert_eq(cim_get(H.client, "meter", "m-1", 240, 5, &p, &err),
		     CIM_ERR_OK);
	check_page(p, cids, 240, 5, 245, TOTAL);
	cim_event_page_destroy(p);

	/* Past the head: nothing, not an error. */
	cr_assert_eq(cim_get(H.client, "meter", "m-1", 251, 100, &p, &err),
		     CIM_ERR_OK, "%s", err.message);
	check_page(p, cids, 251, 0, 0, TOTAL);
	cim_event_page_destroy(p);

	cr_assert_eq(cim_iter_open(H.client, "meter", "m-1", 1, &it, &err),
		     CIM_ERR_OK);
	for (int guard = 0; guard <= TOTAL; guard++) {
		cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK, "%s",
			     err.message);
		if (e == NULL)
			break;
		n++;
		cr_assert_eq(e->version, n, "iterator out of order");
		cr_assert_str_eq(e->cid, cids[n]);
	}
	cr_assert_eq(n, TOTAL);
	cim_iter_close(it);

	/* From the middle. */
	n = 0;
	cr_assert_eq(cim_iter_open(H.client, "meter", "m-1", 150, &it, &err),
		     CIM_ERR_OK);
	for (int guard = 0; guard <= TOTAL; guard++) {
		cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK);
		if (e == NULL)
			break;
		cr_assert_eq(e->version, 150 + n);
		n++;
	}
	cr_assert_eq(n, TOTAL - 149);
	cim_iter_close(it);
	free_cids(cids, TOTAL);
}

Test(get, raw_page_reply_shape)
{
	char **cids = append_many("meter", "m-2", 30);
	h_reply rep;
	json_t *evs;

	h_request(&rep, H_PREFIX ".get.meter.m-2",
		  "{\"from_version\": 11, \"limit\": 10}", -1);
	cr_assert_eq(rep.s, NATS_OK);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "version")),
		     30);
	cr_assert_eq(json_integer_value(json_object_get(rep.json,
			"next_from_version")), 21, "%s", rep.body);
	evs = json_object_get(rep.json, "events");
	cr_assert_eq(json_array_size(evs), 10);
	cr_assert_str_eq(json_string_value(json_object_get(
			json_array_get(evs, 0), "cid")), cids[11]);
	cr_assert_str_eq(json_string_value(json_object_get(
			json_array_get(evs, 0), "prev")), cids[10]);
	h_reply_free(&rep);

	/* The last page says null, and the defaults give everything. */
	h_request(&rep, H_PREFIX ".get.meter.m-2", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 30);
	cr_assert(json_is_null(json_object_get(rep.json, "next_from_version")),
		  "next_from_version is null at the head: %s", rep.body);
	h_reply_free(&rep);

	/* An empty body counts as {}. */
	h_request(&rep, H_PREFIX ".get.meter.m-2", "", 0);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 30);
	h_reply_free(&rep);
	free_cids(cids, 30);
}

Test(get, aggregate_without_events)
{
	cim_event_page *p = NULL;
	cim_error err = {0};
	cim_head h;
	cim_validation v;
	h_reply rep;

	cr_assert_eq(cim_get(H.client, "meter", "nobody", 1, 0, &p, &err),
		     CIM_ERR_OK, "an empty aggregate is not an error: %s",
		     err.message);
	cr_assert_eq(p->version, 0);
	cr_assert_eq(p->n_events, 0);
	cr_assert_eq(p->next_from_version, 0);
	cim_event_page_destroy(p);

	cr_assert_eq(cim_get_head(H.client, "meter", "nobody", &h, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(h.version, 0);
	cr_assert_str_eq(h.head, "");
	cr_assert_eq(h.seq, 0);

	cr_assert_eq(cim_validate(H.client, "meter", "nobody", &v, &err),
		     CIM_ERR_OK);
	cr_assert(v.valid);
	cr_assert_eq(v.version, 0);

	h_request(&rep, H_PREFIX ".get.meter.nobody", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "version")),
		     0);
	cr_assert(json_is_array(json_object_get(rep.json, "events")));
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 0);
	cr_assert(json_is_null(json_object_get(rep.json, "next_from_version")),
		  "%s", rep.body);
	h_reply_free(&rep);

	h_request(&rep, H_PREFIX ".head.meter.nobody", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "version")),
		     0);
	cr_assert(json_is_null(json_object_get(rep.json, "head")), "%s",
		  rep.body);
	cr_assert(json_is_null(json_object_get(rep.json, "seq")), "%s",
		  rep.body);
	h_reply_free(&rep);

	h_request(&rep, H_PREFIX ".validate.meter.nobody", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert(json_is_true(json_object_get(rep.json, "valid")));
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "version")),
		     0);
	h_reply_free(&rep);
}

Test(get, raw_head_reply)
{
	cim_append_result *r = h_append1("meter", "m-3", CIM_EXPECT_ANY,
					 "Ticked", "{}");
	h_reply rep;

	h_request(&rep, H_PREFIX ".head.meter.m-3", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "version")),
		     1);
	cr_assert_str_eq(json_string_value(json_object_get(rep.json, "head")),
			 r->head);
	cr_assert_eq((uint64_t)json_integer_value(json_object_get(rep.json,
			"seq")), r->events[0].seq);
	h_reply_free(&rep);
	cim_append_result_destroy(r);
}

/* Eight events of about 200 KB each cannot fit one reply under the NATS
 * payload limit: the page is cut short, says where to go on, and the
 * iterator still brings all of them. */
Test(get, a_page_past_the_payload_limit_is_cut_short)
{
	enum { N = 8, SIZE = 200 * 1024 };
	char *data = malloc(SIZE + 16);
	cim_event_page *p = NULL;
	cim_event_iter *it = NULL;
	cim_error err = {0};
	const cim_event *e;
	uint64_t n = 0;
	h_reply rep;

	cr_assert_not_null(data);
	data[0] = '"';
	memset(data + 1, 'x', SIZE);
	strcpy(data + 1 + SIZE, "\"");
	for (int v = 1; v <= N; v++)
		cim_append_result_destroy(h_append1("blob", "big", v - 1,
						    "Stored", data));

	h_request(&rep, H_PREFIX ".get.blob.big", "{}", -1);
	cr_assert_eq(rep.s, NATS_OK, "%s", natsStatus_GetText(rep.s));
	cr_assert_eq(rep.status, 200, "%.300s", rep.body);
	cr_assert_lt(json_array_size(json_object_get(rep.json, "events")),
		     (size_t)N, "a whole page of %d would pass 1 MB", N);
	cr_assert_gt(json_array_size(json_object_get(rep.json, "events")), 0);
	cr_assert_eq(json_integer_value(json_object_get(rep.json,
		     "next_from_version")),
		     (json_int_t)json_array_size(json_object_get(rep.json,
		     "events")) + 1, "next_from_version follows the page");
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "version")),
		     N);
	h_reply_free(&rep);

	cr_assert_eq(cim_get(H.client, "blob", "big", 1, 1000, &p, &err),
		     CIM_ERR_OK, "%s", err.message);
	cr_assert_lt(p->n_events, (size_t)N);
	cr_assert_eq(p->next_from_version, p->n_events + 1);
	cim_event_page_destroy(p);

	cr_assert_eq(cim_iter_open(H.client, "blob", "big", 1, &it, &err),
		     CIM_ERR_OK);
	for (int guard = 0; guard <= N; guard++) {
		cr_assert_eq(cim_iter_next(it, &e, &err), CIM_ERR_OK, "%s",
			     err.message);
		if (e == NULL)
			break;
		n++;
		cr_assert_eq(e->version, n);
		cr_assert_eq(strlen(e->data_json), (size_t)SIZE + 2);
	}
	cr_assert_eq(n, N);
	cim_iter_close(it);
	free(data);
}
