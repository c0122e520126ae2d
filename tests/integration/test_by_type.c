/*
 * test_by_type.c: reading one event type across aggregates, in stream
 * order, page by page.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(by_type, .init = h_setup, .fini = h_teardown, .timeout = 60);

Test(by_type, one_type_across_aggregates_in_stream_order)
{
	/* Interleaved: placed, shipped, placed, ... over three orders. */
	uint64_t placed[6];
	int np = 0;
	h_reply rep;
	json_t *evs, *next;
	uint64_t after = 0, got = 0;

	for (int round = 0; round < 3; round++) {
		for (int o = 0; o < 3; o++) {
			char id[16];
			cim_append_result *r;

			snprintf(id, sizeof(id), "bt-%d", o);
			if ((round + o) % 2 == 0) {
				r = h_append1("order", id, CIM_EXPECT_ANY,
					      "OrderPlaced", "{}");
				if (np < 6)
					placed[np++] = r->events[0].seq;
			} else {
				r = h_append1("order", id, CIM_EXPECT_ANY,
					      "OrderShipped", "{}");
			}
			cim_append_result_destroy(r);
		}
	}
	cr_assert_eq(np, 5);

	h_request(&rep, H_PREFIX ".by_type.OrderPlaced",
		  "{\"after_seq\": 0, \"limit\": 1000}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	evs = json_object_get(rep.json, "events");
	cr_assert_eq(json_array_size(evs), 5, "%s", rep.body);
	for (size_t i = 0; i < 5; i++) {
		json_t *e = json_array_get(evs, i);

		cr_assert_str_eq(json_string_value(json_object_get(e,
				 "event_type")), "OrderPlaced");
		cr_assert_eq((uint64_t)json_integer_value(json_object_get(e,
			     "seq")), placed[i], "stream order");
		cr_assert_not_null(json_object_get(e, "cid"));
	}
	cr_assert(json_is_null(json_object_get(rep.json, "next_after_seq")),
		  "nothing more: %s", rep.body);
	h_reply_free(&rep);

	/* Pages of two, following next_after_seq. */
	for (int guard = 0; guard < 10; guard++) {
		char body[96];

		snprintf(body, sizeof(body),
			 "{\"after_seq\": %llu, \"limit\": 2}",
			 (unsigned long long)after);
		h_request(&rep, H_PREFIX ".by_type.OrderPlaced", body, -1);
		cr_assert_eq(rep.status, 200, "%s", rep.body);
		evs = json_object_get(rep.json, "events");
		for (size_t i = 0; i < json_array_size(evs); i++) {
			uint64_t seq = (uint64_t)json_integer_value(
				json_object_get(json_array_get(evs, i), "seq"));

			cr_assert_lt(got, 5);
			cr_assert_eq(seq, placed[got], "page order");
			got++;
		}
		next = json_object_get(rep.json, "next_after_seq");
		if (json_is_null(next)) {
			h_reply_free(&rep);
			break;
		}
		cr_assert(json_is_integer(next), "%s", rep.body);
		cr_assert_gt((uint64_t)json_integer_value(next), after,
			     "next_after_seq moves on");
		after = (uint64_t)json_integer_value(next);
		h_reply_free(&rep);
	}
	cr_assert_eq(got, 5);

	/* A type nobody used. */
	h_request(&rep, H_PREFIX ".by_type.Nobody", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_eq(json_array_size(json_object_get(rep.json, "events")), 0);
	cr_assert(json_is_null(json_object_get(rep.json, "next_after_seq")));
	h_reply_free(&rep);
}

Test(by_type, the_client_pages_through_one_type)
{
	uint64_t want[12];
	int n = 0;
	uint64_t after = 0;
	cim_error err = {0};

	for (int i = 0; i < 12; i++) {
		char id[16];
		cim_append_result *r;

		snprintf(id, sizeof(id), "c-%d", i % 4);
		r = h_append1("acct", id, CIM_EXPECT_ANY, i % 3 ? "Deposited" : "Opened",
			      "{}");
		if (i % 3)
			want[n++] = r->events[0].seq;
		cim_append_result_destroy(r);
	}
	int seen = 0, pages = 0;
	do {
		cim_event_list *l = NULL;

		cr_assert_eq(cim_by_type(H.client, "Deposited", after, 3, &l, &err),
			     CIM_ERR_OK, "%s", err.message);
		cr_assert_leq(l->n_events, 3);
		for (size_t i = 0; i < l->n_events; i++) {
			cr_assert_str_eq(l->events[i].event_type, "Deposited");
			cr_assert_eq(l->events[i].seq, want[seen], "stream order");
			seen++;
		}
		after = l->next_after_seq;
		pages++;
		cim_event_list_destroy(l);
	} while (after != 0 && pages < 20);
	cr_assert_eq(seen, n, "every Deposited event, once");
	cr_assert_geq(pages, 3);
	cim_event_list *none = NULL;
	cr_assert_eq(cim_by_type(H.client, "bad.type", 0, 0, &none, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(err.field, "event_type");
	cr_assert_null(none);
}
