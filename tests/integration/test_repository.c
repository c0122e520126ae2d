/*
 * test_repository.c: the repository helper: loading through the caller's
 * functions (snapshot, then the events after it), appending with the
 * loaded version as the expected one, and snapshots every
 * snapshot_threshold events.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(repository, .init = h_setup, .fini = h_teardown, .timeout = 90);

/* A counter: the sum of the "n" of its Added events. */
struct counter {
	long long sum;
	uint64_t last_version;
	int resets, restores, applies;
	bool fail_apply_at_3;
};

static int c_reset(void *st)
{
	struct counter *c = st;
	int resets = c->resets + 1;
	bool fail = c->fail_apply_at_3;

	memset(c, 0, sizeof *c);
	c->resets = resets;
	c->fail_apply_at_3 = fail;
	return 0;
}

static int c_restore(void *st, const char *json)
{
	struct counter *c = st;
	json_t *j = json_loads(json, JSON_DECODE_ANY, NULL);

	if (!json_is_object(j)) {
		json_decref(j);
		return -1;
	}
	c->sum = json_integer_value(json_object_get(j, "sum"));
	c->restores++;
	json_decref(j);
	return 0;
}

static int c_apply(void *st, const cim_event *ev)
{
	struct counter *c = st;
	json_t *j = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);

	cr_assert_not_null(j, "data: %s", ev->data_json);
	cr_assert(c->last_version == 0 || ev->version == c->last_version + 1,
		  "applied in version order: %llu after %llu",
		  (unsigned long long)ev->version, (unsigned long long)c->last_version);
	cr_assert_not_null(ev->cid);
	cr_assert_str_eq(ev->aggregate_type, "counter");
	c->sum += json_integer_value(json_object_get(j, "n"));
	c->last_version = ev->version;
	c->applies++;
	json_decref(j);
	return c->fail_apply_at_3 && ev->version == 3 ? -1 : 0;
}

static char *c_snapshot(const void *st)
{
	const struct counter *c = st;
	char *s = NULL;

	if (asprintf(&s, "{\"sum\": %lld}", c->sum) < 0)
		return NULL;
	return s;
}

static const cim_aggregate_ops ops = {c_reset, c_restore, c_apply, c_snapshot};

static cim_repository *open_repo(unsigned threshold)
{
	cim_repository *r = NULL;
	cim_error err = {0};
	cim_repository_options o = {.snapshot_threshold = threshold};

	cr_assert_eq(cim_repository_open(&r, H.client, "counter", &ops, &o, &err),
		     CIM_ERR_OK, "%s", err.message);
	return r;
}

static void add(cim_repository *r, cim_aggregate *a, struct counter *c, int n)
{
	char data[32];
	cim_error err = {0};
	cim_new_event ev = {.event_type = "Added", .data_json = data};

	snprintf(data, sizeof data, "{\"n\": %d}", n);
	cr_assert_eq(cim_repository_append(r, a, c, &ev, 1, NULL, &err), CIM_ERR_OK,
		     "%s: %s", cim_err_name(err.code), err.message);
}

Test(repository, snapshots_at_the_threshold_and_loads_from_them)
{
	cim_repository *r = open_repo(10);
	struct counter c = {0};
	cim_aggregate a;
	cim_error err = {0};
	cim_snapshot s;
	cim_head h;

	cr_assert_eq(cim_repository_load(r, "c-1", &c, &a, &err), CIM_ERR_OK, "%s",
		     err.message);
	cr_assert_eq(a.version, 0);
	cr_assert_eq(a.head[0], '\0');
	for (int i = 1; i <= 9; i++)
		add(r, &a, &c, i);
	cr_assert_eq(a.version, 9);
	cr_assert_eq(c.sum, 45);
	cr_assert_eq(a.snapshot_version, 0, "below the threshold: no snapshot");
	cr_assert_eq(cim_snapshot_get(H.client, "counter", "c-1", &s, &err),
		     CIM_ERR_NOT_FOUND);

	add(r, &a, &c, 10);
	cr_assert_eq(a.snapshot_error, CIM_ERR_OK);
	cr_assert_eq(a.snapshot_version, 10, "a snapshot at the 10th event");
	cr_assert_eq(cim_snapshot_get(H.client, "counter", "c-1", &s, &err), CIM_ERR_OK);
	cr_assert_eq(s.version, 10);
	cr_assert_str_eq(s.state_json, "{\"sum\":55}");
	cim_snapshot_clear(&s);
	cr_assert_eq(cim_get_head(H.client, "counter", "c-1", &h, &err), CIM_ERR_OK);
	cr_assert_str_eq(a.head, h.head, "the repository follows the head CID");

	for (int i = 11; i <= 25; i++)
		add(r, &a, &c, i);
	cr_assert_eq(a.snapshot_version, 20);
	cr_assert_eq(c.sum, 25 * 26 / 2);

	/* a fresh load: the snapshot at 20, then exactly events 21..25 */
	struct counter c2 = {0};
	cim_aggregate a2;
	cr_assert_eq(cim_repository_load(r, "c-1", &c2, &a2, &err), CIM_ERR_OK, "%s",
		     err.message);
	cr_assert_eq(c2.restores, 1);
	cr_assert_eq(c2.applies, 5, "only the events after the snapshot");
	cr_assert_eq(a2.events_applied, 5);
	cr_assert_eq(a2.version, 25);
	cr_assert_eq(a2.snapshot_version, 20);
	cr_assert_eq(c2.sum, 25 * 26 / 2);
	cr_assert_str_eq(a2.head, a.head);
	cim_repository_close(r);
}

Test(repository, the_loaded_version_is_the_expected_version)
{
	cim_repository *r = open_repo(100);
	struct counter c1 = {0}, c2 = {0};
	cim_aggregate a1, a2;
	cim_error err = {0};
	cim_new_event ev = {.event_type = "Added", .data_json = "{\"n\": 1}"};

	cr_assert_eq(cim_repository_load(r, "c-2", &c1, &a1, &err), CIM_ERR_OK);
	cr_assert_eq(cim_repository_load(r, "c-2", &c2, &a2, &err), CIM_ERR_OK);
	add(r, &a1, &c1, 5);
	/* the second holder decided on version 0: refused, nothing stored */
	cr_assert_eq(cim_repository_append(r, &a2, &c2, &ev, 1, NULL, &err),
		     CIM_ERR_WRONG_EXPECTED_VERSION);
	cr_assert_eq(err.current, 1);
	cr_assert_eq(a2.version, 0);
	cr_assert_eq(c2.sum, 0);
	/* load again, decide again */
	cr_assert_eq(cim_repository_load(r, "c-2", &c2, &a2, &err), CIM_ERR_OK);
	cr_assert_eq(a2.version, 1);
	cr_assert_eq(c2.sum, 5);
	add(r, &a2, &c2, 1);
	cr_assert_eq(a2.version, 2);
	cr_assert_eq(c2.sum, 6);
	cim_repository_close(r);
}

Test(repository, without_snapshots_and_with_a_failing_apply)
{
	static const cim_aggregate_ops plain = {c_reset, NULL, c_apply, NULL};
	cim_repository *r = NULL, *snap = open_repo(2);
	struct counter c = {0};
	cim_aggregate a;
	cim_error err = {0};

	cr_assert_eq(cim_repository_open(&r, H.client, "counter", &plain, NULL, &err),
		     CIM_ERR_OK);
	cr_assert_eq(cim_repository_load(r, "c-3", &c, &a, &err), CIM_ERR_OK);
	for (int i = 1; i <= 4; i++)
		add(r, &a, &c, i);
	cr_assert_eq(a.snapshot_version, 0, "no snapshot function: none made");

	/* loading reads every event when the ops cannot restore */
	struct counter c2 = {0};
	cr_assert_eq(cim_repository_load(r, "c-3", &c2, &a, &err), CIM_ERR_OK);
	cr_assert_eq(c2.applies, 4);
	cr_assert_eq(c2.sum, 10);

	/* an apply that fails fails the load with CIM_ERR_HANDLER */
	struct counter c3 = {.fail_apply_at_3 = true};
	cr_assert_eq(cim_repository_load(snap, "c-3", &c3, &a, &err), CIM_ERR_HANDLER);
	cr_assert_not_null(strstr(err.message, "version 3"), "%s", err.message);

	/* ops without reset or apply are refused */
	static const cim_aggregate_ops bad = {NULL, NULL, c_apply, NULL};
	cim_repository *none = NULL;
	cr_assert_eq(cim_repository_open(&none, H.client, "counter", &bad, NULL, &err),
		     CIM_ERR_INVALID_ARGUMENT);
	cr_assert_null(none);
	cim_repository_close(r);
	cim_repository_close(snap);
}
