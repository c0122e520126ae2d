/*
 * test_discovery.c: the daemon answers NATS service discovery ($SRV.PING,
 * $SRV.INFO, $SRV.STATS; plain, by the name cim-events, and by name and
 * id) with the micro protocol's JSON shapes, and its stats count the
 * requests it served.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(discovery, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* A request on subject through H.nc; asserts a JSON object came back. */
static json_t *srv_request(const char *subject)
{
	natsMsg *m = NULL;
	json_error_t jerr;
	json_t *j;
	natsStatus s = natsConnection_RequestString(&m, H.nc, subject, "", 5000);

	cr_assert_eq(s, NATS_OK, "%s: %s", subject, natsStatus_GetText(s));
	j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, &jerr);
	cr_assert_not_null(j, "%s: not JSON: %.*s", subject, natsMsg_GetDataLength(m),
			   natsMsg_GetData(m));
	cr_assert(json_is_object(j));
	natsMsg_Destroy(m);
	return j;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* What every response carries: type, name, id, version, metadata. */
static void check_identity(const json_t *j, const char *type)
{
	cr_assert_str_eq(str(j, "type"), type);
	cr_assert_str_eq(str(j, "name"), "cim-events");
	cr_assert_not_null(str(j, "id"));
	cr_assert_gt(strlen(str(j, "id")), 0);
	cr_assert_null(strchr(str(j, "id"), '.'), "the id is one subject token");
	cr_assert_str_eq(str(j, "version"), CIM_EVENTS_VERSION);
	cr_assert(json_is_object(json_object_get(j, "metadata")));
	cr_assert_str_eq(str(json_object_get(j, "metadata"), "role"), "active");
}

/* The endpoint of stats or info named name; asserts it is there. */
static json_t *endpoint(const json_t *j, const char *name)
{
	const json_t *eps = json_object_get(j, "endpoints");
	size_t i;
	json_t *e;

	cr_assert(json_is_array(eps));
	json_array_foreach(eps, i, e)
		if (strcmp(str(e, "name"), name) == 0)
			return e;
	cr_assert_fail("no endpoint %s", name);
	return NULL;
}

static json_int_t num(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	cr_assert(json_is_integer(v), "%s is an integer", k);
	return json_integer_value(v);
}

Test(discovery, ping_to_all_services_collects_the_daemon)
{
	natsSubscription *sub = NULL;
	char inbox[64];
	natsInbox *ib = NULL;
	int ours = 0;

	cr_assert_eq(natsInbox_Create(&ib), NATS_OK);
	snprintf(inbox, sizeof(inbox), "%s", (const char *)ib);
	natsInbox_Destroy(ib);
	cr_assert_eq(natsConnection_SubscribeSync(&sub, H.nc, inbox), NATS_OK);
	cr_assert_eq(natsConnection_PublishRequestString(H.nc, "$SRV.PING", inbox, ""),
		     NATS_OK);
	/* every service of the system answers; this server has only ours */
	for (;;) {
		natsMsg *m = NULL;
		json_t *j;

		if (natsSubscription_NextMsg(&m, sub, ours ? 500 : 5000) != NATS_OK)
			break;
		j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
		cr_assert_not_null(j, "a ping response is JSON");
		check_identity(j, "io.nats.micro.v1.ping_response");
		ours++;
		json_decref(j);
		natsMsg_Destroy(m);
	}
	natsSubscription_Destroy(sub);
	cr_assert_eq(ours, 1, "one daemon, one answer (got %d)", ours);
}

Test(discovery, ping_by_name_and_by_id)
{
	json_t *a = srv_request("$SRV.PING.cim-events"), *b;
	char *subject;

	check_identity(a, "io.nats.micro.v1.ping_response");
	subject = h_strf("$SRV.PING.cim-events.%s", str(a, "id"));
	b = srv_request(subject);
	check_identity(b, "io.nats.micro.v1.ping_response");
	cr_assert_str_eq(str(a, "id"), str(b, "id"));
	free(subject);

	/* the same id in info, where operators see it too */
	h_reply rep;
	h_request(&rep, H_PREFIX ".info", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_str_eq(str(json_object_get(rep.json, "writer"), "service_id"), str(a, "id"));
	h_reply_free(&rep);

	/* another service's name or another id: nobody answers */
	natsMsg *m = NULL;
	natsStatus s = natsConnection_RequestString(&m, H.nc, "$SRV.PING.cim-events.nosuchid",
						    "", 2000);
	cr_assert_neq(s, NATS_OK, "a wrong id is not answered");
	s = natsConnection_RequestString(&m, H.nc, "$SRV.PING.other-service", "", 2000);
	cr_assert_neq(s, NATS_OK, "another name is not answered");
	json_decref(a);
	json_decref(b);
}

Test(discovery, info_lists_the_operations_as_endpoints)
{
	json_t *j = srv_request("$SRV.INFO.cim-events"), *e;
	static const char *names[] = {"append", "get", "head", "validate", "load",
				      "snapshot_save", "snapshot_get", "by_type", "info",
				      "restore"};
	size_t i;

	check_identity(j, "io.nats.micro.v1.info_response");
	cr_assert(json_is_string(json_object_get(j, "description")));
	cr_assert_eq(json_array_size(json_object_get(j, "endpoints")),
		     sizeof(names) / sizeof(names[0]));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		e = endpoint(j, names[i]);
		cr_assert(json_is_string(json_object_get(e, "subject")));
		cr_assert(json_is_string(json_object_get(e, "queue_group")));
		cr_assert(json_is_object(json_object_get(e, "metadata")));
		cr_assert_eq(strncmp(str(e, "subject"), H_PREFIX ".", strlen(H_PREFIX) + 1), 0,
			     "%s", str(e, "subject"));
	}
	cr_assert_str_eq(str(endpoint(j, "append"), "subject"), H_PREFIX ".append.*.*");
	cr_assert_str_eq(str(endpoint(j, "snapshot_save"), "subject"),
			 H_PREFIX ".snapshot.save.*.*");
	cr_assert_str_eq(str(endpoint(j, "info"), "subject"), H_PREFIX ".info");
	/* plain $SRV.INFO says the same */
	json_t *k = srv_request("$SRV.INFO");
	cr_assert_str_eq(str(k, "id"), str(j, "id"));
	cr_assert(json_equal(json_object_get(k, "endpoints"), json_object_get(j, "endpoints")));
	json_decref(k);
	json_decref(j);
}

Test(discovery, stats_count_the_requests_served)
{
	json_t *j, *e;
	h_reply rep;

	for (int i = 0; i < 3; i++) {
		char id[32];
		snprintf(id, sizeof(id), "disc-%d", i);
		free(h_append_n("order", id, 2)); /* two appends each */
	}
	/* one refused append: wrong expected version */
	h_requestf(&rep, "{\"expected_version\": 7, \"events\": [{\"event_type\": \"X\", "
		   "\"data\": 1}]}", H_PREFIX ".append.order.disc-0");
	cr_assert_str_eq(h_error_code(&rep), "wrong_expected_version", "%s", rep.body);
	h_reply_free(&rep);
	h_requestf(&rep, "{}", H_PREFIX ".head.order.disc-1");
	cr_assert_eq(rep.status, 200);
	h_reply_free(&rep);

	j = srv_request("$SRV.STATS.cim-events");
	check_identity(j, "io.nats.micro.v1.stats_response");
	cr_assert(json_is_string(json_object_get(j, "started")));
	cr_assert_eq(strlen(str(j, "started")), strlen("2026-11-22T10:00:00.123456789Z"),
		     "RFC 3339: %s", str(j, "started"));
	cr_assert_eq(str(j, "started")[10], 'T');

	e = endpoint(j, "append");
	cr_assert_eq(num(e, "num_requests"), 7, "6 appends + 1 refused");
	cr_assert_eq(num(e, "num_errors"), 1);
	cr_assert_str_eq(str(e, "last_error"), "409:wrong_expected_version");
	cr_assert_gt(num(e, "processing_time"), 0);
	cr_assert_gt(num(e, "average_processing_time"), 0);
	cr_assert_leq(num(e, "average_processing_time"), num(e, "processing_time"));
	cr_assert_str_eq(str(e, "subject"), H_PREFIX ".append.*.*");
	cr_assert(json_is_string(json_object_get(e, "queue_group")));

	e = endpoint(j, "head");
	cr_assert_eq(num(e, "num_requests"), 1);
	cr_assert_eq(num(e, "num_errors"), 0);
	cr_assert_str_eq(str(e, "last_error"), "");
	e = endpoint(j, "validate");
	cr_assert_eq(num(e, "num_requests"), 0);
	cr_assert_eq(num(e, "processing_time"), 0);
	json_decref(j);

	/* by id, the same counts */
	json_t *ping = srv_request("$SRV.PING.cim-events");
	char *subject = h_strf("$SRV.STATS.cim-events.%s", str(ping, "id"));
	j = srv_request(subject);
	cr_assert_eq(num(endpoint(j, "append"), "num_requests"), 7);
	free(subject);
	json_decref(ping);
	json_decref(j);
}

/* Sends a ping to all cim-events daemons and counts the answers by role
 * (a standby is "starting" for its first second, then "standby"). */
static void ping_roles(int *active, int *other)
{
	natsSubscription *sub = NULL;
	natsInbox *ib = NULL;
	natsMsg *m = NULL;

	*active = *other = 0;
	cr_assert_eq(natsInbox_Create(&ib), NATS_OK);
	cr_assert_eq(natsConnection_SubscribeSync(&sub, H.nc, (const char *)ib), NATS_OK);
	cr_assert_eq(natsConnection_PublishRequestString(H.nc, "$SRV.PING.cim-events",
							 (const char *)ib, ""), NATS_OK);
	while (natsSubscription_NextMsg(&m, sub, 1000) == NATS_OK) {
		json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
				       0, NULL);
		cr_assert_not_null(j);
		const char *role = str(json_object_get(j, "metadata"), "role");
		cr_assert_not_null(role);
		if (strcmp(role, "active") == 0)
			(*active)++;
		else
			(*other)++;
		cr_assert(strcmp(role, "active") == 0 || strcmp(role, "standby") == 0 ||
			  strcmp(role, "starting") == 0, "role %s", role);
		json_decref(j);
		natsMsg_Destroy(m);
	}
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(ib);
}

/* A standby (the lease held by another daemon) serves no request but
 * answers discovery, saying it is not the active one. */
Test(discovery, standby_answers_with_its_role)
{
	/* h_daemon_start returns once info is answered, which the active
	 * daemon does: the standby may not be subscribed yet, so ask again
	 * until it answers (a bound, not a timed assertion) */
	pid_t standby = h_daemon_start(&H.nats, NULL);
	int active = 0, other = 0;

	cr_assert_gt(standby, 0);
	for (int tries = 0; tries < 20 && other == 0; tries++)
		ping_roles(&active, &other);
	cr_assert_eq(active, 1, "one active daemon");
	cr_assert_eq(other, 1, "and one standby");
	cr_assert_eq(h_daemon_stop(standby), 0);
}
