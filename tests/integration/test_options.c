/*
 * test_options.c: settings the contract names: sha2-256 as the store's
 * hash, and another API subject prefix.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(options, .init = h_setup_nats_only, .fini = h_teardown,
	  .timeout = 60);

Test(options, sha2_256_store_hashes_with_sha2_256)
{
	cim_append_result *r;
	cim_event_block ev;
	char cid_b2[CIM_CID_TEXT_MAX], cid[CIM_CID_TEXT_MAX];
	natsMsg *m;
	cim_cid c, want;
	uint64_t codec = 0, mh = 0;
	cim_validation v;
	cim_error err = {0};

	H.daemon = h_daemon_start(&H.nats, "--hash", "sha2-256", (char *)NULL);
	cr_assert_gt(H.daemon, 0);
	free(h_append_n("doc", "sha-1", 2));
	r = h_append1("doc", "sha-1", 2, "Edited", "{\"v\": 3}");

	cr_assert_eq(cim_cid_from_text(&c, r->head), 0);
	cr_assert_eq(cim_cid_info(&c, &codec, &mh), 0);
	cr_assert_eq(codec, CIM_CODEC_DAG_CBOR);
	cr_assert_eq(mh, CIM_MH_SHA2_256, "multihash 0x%llx",
		     (unsigned long long)mh);

	m = h_stored_event(r->events[0].seq, &ev, cid_b2);
	cr_assert_eq(cim_cid_compute(&want, CIM_CODEC_DAG_CBOR,
				     CIM_MH_SHA2_256,
				     (const uint8_t *)natsMsg_GetData(m),
				     (size_t)natsMsg_GetDataLength(m)), 0);
	cim_cid_to_text(&want, cid);
	cr_assert_str_eq(cid, r->head, "sha2-256 CID from the stored bytes");
	cr_assert(ev.has_prev);
	cr_assert_eq(cim_cid_info(&ev.prev, &codec, &mh), 0);
	cr_assert_eq(mh, CIM_MH_SHA2_256, "the prev link is sha2-256 too");

	cr_assert_eq(cim_validate(H.client, "doc", "sha-1", &v, &err),
		     CIM_ERR_OK);
	cr_assert(v.valid, "%s: %s", v.failure_reason, v.failure_detail);
	cr_assert_eq(v.version, 3);
	cim_event_block_free(&ev);
	natsMsg_Destroy(m);
	cim_append_result_destroy(r);
}

Test(options, another_prefix_is_served_and_the_default_is_not)
{
	cim_client_options o = {.prefix = "acme.events", .timeout_ms = 3000};
	cim_client *c = NULL;
	cim_append_result *r = NULL;
	cim_new_event e = {.event_type = "Made", .data_json = "{}"};
	cim_error err = {0};
	h_reply rep;

	H.daemon = h_daemon_start(&H.nats, "--prefix", "acme.events",
				  (char *)NULL);
	cr_assert_gt(H.daemon, 0);
	h_request(&rep, "acme.events.info", "{}", -1);
	cr_assert_eq(rep.s, NATS_OK);
	cr_assert_str_eq(json_string_value(json_object_get(rep.json, "name")),
			 "cim-eventsd");
	h_reply_free(&rep);

	cr_assert_eq(cim_client_connect(&c, H.nats.url, &o, &err), CIM_ERR_OK);
	cr_assert_eq(cim_append(c, "widget", "w-1", CIM_EXPECT_ANY, &e, 1, &r,
				&err), CIM_ERR_OK, "%s", err.message);
	cr_assert_eq(r->version, 1);
	cim_append_result_destroy(r);
	cim_client_destroy(c);

	h_request(&rep, "acme.events.append.widget.w-2",
		  "{\"events\": [{\"event_type\": \"Made\", \"data\": 1,"
		  " \"bogus\": 1}]}", -1);
	cr_assert_str_eq(h_error_code(&rep), "invalid_request", "%s", rep.body);
	h_reply_free(&rep);

	h_request(&rep, H_PREFIX ".info", "{}", -1);
	cr_assert_neq(rep.s, NATS_OK, "the default prefix is not served");
	h_reply_free(&rep);
}
