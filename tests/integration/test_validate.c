/*
 * test_validate.c: validate on whole chains, and on chains tampered with
 * by writing straight to JetStream past the head the daemon knows: a wrong
 * prev link, a version that skips, bytes that are no event block at all.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"
#include "buf.h"

TestSuite(validate, .init = h_setup, .fini = h_teardown, .timeout = 60);

static cim_validation validate(const char *type, const char *id)
{
	cim_validation v;
	cim_error err = {0};
	cim_err rc = cim_validate(H.client, type, id, &v, &err);

	cr_assert_eq(rc, CIM_ERR_OK, "validate %s/%s: %s: %s", type, id,
		     cim_err_name(rc), err.message);
	return v;
}

/* Appends n events and returns the append results' CIDs and seqs. */
static void append_chain(const char *id, int n, char cids[][CIM_CID_TEXT_MAX],
			 uint64_t *seqs)
{
	for (int v = 1; v <= n; v++) {
		char data[32];
		cim_append_result *r;

		snprintf(data, sizeof(data), "{\"v\": %d}", v);
		r = h_append1("acct", id, v - 1, "Booked", data);
		strcpy(cids[v], r->head);
		seqs[v] = r->events[0].seq;
		cim_append_result_destroy(r);
	}
}

/* Publishes a well-formed block built from stored event `from_seq` with
 * the version and prev given, straight to JetStream. */
static void publish_forged(const char *id, uint64_t from_seq,
			   uint64_t version, const char *prev_text)
{
	cim_event_block ev, forged;
	char cid[CIM_CID_TEXT_MAX], err[256] = "";
	cbuf out = CBUF_INIT;
	natsMsg *m = h_stored_event(from_seq, &ev, cid);
	char *subject = h_strf("events.acct.%s.Booked", id);

	forged = ev;
	forged.version = version;
	forged.event_id = "forged-event";
	forged.event_id_len = strlen(forged.event_id);
	forged.has_prev = prev_text != NULL;
	if (prev_text != NULL)
		cr_assert_eq(cim_cid_from_text(&forged.prev, prev_text), 0);
	cr_assert_eq(cim_event_encode(&forged, &out, err, sizeof(err)), 0,
		     "%s", err);
	h_stream_publish(subject, out.p, (int)out.len);
	cbuf_free(&out);
	free(subject);
	natsMsg_Destroy(m);
	cim_event_block_free(&ev);
}

Test(validate, whole_chain_is_valid)
{
	char cids[6][CIM_CID_TEXT_MAX];
	uint64_t seqs[6];
	cim_validation v;
	h_reply rep;

	append_chain("ok-1", 5, cids, seqs);
	v = validate("acct", "ok-1");
	cr_assert(v.valid, "%s at %llu: %s", v.failure_reason,
		  (unsigned long long)v.failure_version, v.failure_detail);
	cr_assert_eq(v.version, 5);
	cr_assert_eq(v.checked, 5);
	cr_assert_str_eq(v.head, cids[5]);

	h_request(&rep, H_PREFIX ".validate.acct.ok-1", "{}", -1);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert(json_is_true(json_object_get(rep.json, "valid")));
	cr_assert_eq(json_integer_value(json_object_get(rep.json, "checked")),
		     5);
	cr_assert_str_eq(json_string_value(json_object_get(rep.json, "head")),
			 cids[5]);
	cr_assert_null(json_object_get(rep.json, "failure"), "%s", rep.body);
	h_reply_free(&rep);
}

/* What validate says after tampering, checked both ways. */
static void expect_failure(const char *id, uint64_t version,
			   const char *reason)
{
	cim_validation v = validate("acct", id);
	h_reply rep;
	json_t *f;

	cr_assert_not(v.valid, "%s: tampering not detected", id);
	cr_assert_str_eq(v.failure_reason, reason, "%s: reason %s (%s)", id,
			 v.failure_reason, v.failure_detail);
	cr_assert_eq(v.failure_version, version,
		     "%s: failure.version %llu, want %llu (%s)", id,
		     (unsigned long long)v.failure_version,
		     (unsigned long long)version, v.failure_detail);

	h_requestf(&rep, "{}", H_PREFIX ".validate.acct.%s", id);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert(json_is_false(json_object_get(rep.json, "valid")), "%s",
		  rep.body);
	f = json_object_get(rep.json, "failure");
	cr_assert(json_is_object(f), "%s", rep.body);
	cr_assert_str_eq(json_string_value(json_object_get(f, "reason")),
			 reason);
	cr_assert_eq(json_integer_value(json_object_get(f, "version")),
		     (json_int_t)version);
	cr_assert(json_is_string(json_object_get(f, "detail")), "%s",
		  rep.body);
	h_reply_free(&rep);
}

Test(validate, forged_event_with_wrong_prev_is_broken_link)
{
	char cids[4][CIM_CID_TEXT_MAX];
	uint64_t seqs[4];

	append_chain("bl-1", 3, cids, seqs);
	/* Version 4, linking to event 2 instead of event 3. */
	publish_forged("bl-1", seqs[3], 4, cids[2]);
	expect_failure("bl-1", 4, "broken_link");
}

Test(validate, forged_event_with_null_prev_fails_at_its_version)
{
	char cids[3][CIM_CID_TEXT_MAX];
	uint64_t seqs[3];

	append_chain("bl-2", 2, cids, seqs);
	/* Version 3 without a prev at all: the block encodes, but it does not
	 * link. (The decoder refuses null prev past version 1, so this is
	 * undecodable or broken_link; both say version 3.) */
	{
		cim_validation v;

		publish_forged("bl-2", seqs[2], 3, NULL);
		v = validate("acct", "bl-2");
		cr_assert_not(v.valid);
		cr_assert_eq(v.failure_version, 3, "%s",
			     v.failure_detail);
		cr_assert(strcmp(v.failure_reason, "broken_link") == 0 ||
			  strcmp(v.failure_reason, "undecodable") == 0,
			  "reason %s", v.failure_reason);
	}
}

Test(validate, forged_event_skipping_a_version_is_version_gap)
{
	char cids[4][CIM_CID_TEXT_MAX];
	uint64_t seqs[4];

	append_chain("vg-1", 3, cids, seqs);
	/* Linked to the real head, but claiming version 5: version 4, the
	 * first that cannot be verified, is missing from the chain. */
	publish_forged("vg-1", seqs[3], 5, cids[3]);
	expect_failure("vg-1", 4, "version_gap");
}

Test(validate, forged_event_repeating_a_version_is_version_gap)
{
	char cids[4][CIM_CID_TEXT_MAX];
	uint64_t seqs[4];

	append_chain("vg-2", 3, cids, seqs);
	/* A second "version 3" after the real one, linked to the head. */
	publish_forged("vg-2", seqs[3], 3, cids[3]);
	expect_failure("vg-2", 4, "version_gap");
}

Test(validate, garbage_after_the_head_is_undecodable)
{
	char cids[3][CIM_CID_TEXT_MAX];
	uint64_t seqs[3];
	static const char junk[] = "this is not a DAG-CBOR event block";

	append_chain("ud-1", 2, cids, seqs);
	h_stream_publish("events.acct.ud-1.Booked", junk, (int)strlen(junk));
	expect_failure("ud-1", 3, "undecodable");
}

Test(validate, tampering_stays_with_its_own_aggregate)
{
	char a[3][CIM_CID_TEXT_MAX], b[3][CIM_CID_TEXT_MAX];
	uint64_t sa[3], sb[3];
	cim_validation v;

	append_chain("iso-a", 2, a, sa);
	append_chain("iso-b", 2, b, sb);
	h_stream_publish("events.acct.iso-a.Booked", "\xff\x00", 2);
	v = validate("acct", "iso-a");
	cr_assert_not(v.valid);
	v = validate("acct", "iso-b");
	cr_assert(v.valid, "%s: %s", v.failure_reason, v.failure_detail);
	cr_assert_eq(v.version, 2);
	cr_assert_str_eq(v.head, b[2]);
}
