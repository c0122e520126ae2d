/*
 * test_info.c: the daemon describes itself, and what it creates at start.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(info, .init = h_setup, .fini = h_teardown, .timeout = 60);

static bool is_semver(const char *s)
{
	int dots = 0;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return false;
	for (; *s && *s != '-' && *s != '+'; s++) {
		if (*s == '.') {
			if (!isdigit((unsigned char)s[1]))
				return false;
			dots++;
		} else if (!isdigit((unsigned char)*s)) {
			return false;
		}
	}
	return dots == 2;
}

Test(info, raw_info_names_the_daemon_and_its_version)
{
	h_reply rep;

	h_request(&rep, H_PREFIX ".info", "{}", -1);
	cr_assert_eq(rep.s, NATS_OK, "%s", natsStatus_GetText(rep.s));
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert(json_is_object(rep.json), "%s", rep.body);
	cr_assert_str_eq(json_string_value(json_object_get(rep.json, "name")),
			 "cim-eventsd");
	cr_assert(is_semver(json_string_value(json_object_get(rep.json,
		  "version"))), "version x.y.z: %s", rep.body);
	cr_assert_null(strstr(rep.body, "password"), "no secrets: %s",
		       rep.body);
	h_reply_free(&rep);

	/* An empty body counts as {}. */
	h_request(&rep, H_PREFIX ".info", "", 0);
	cr_assert_eq(rep.status, 200, "%s", rep.body);
	cr_assert_str_eq(json_string_value(json_object_get(rep.json, "name")),
			 "cim-eventsd");
	h_reply_free(&rep);
}

Test(info, client_info_is_the_same_object)
{
	char *text = NULL;
	cim_error err = {0};
	json_t *j;

	cr_assert_eq(cim_info(H.client, &text, &err), CIM_ERR_OK, "%s",
		     err.message);
	j = json_loads(text, 0, NULL);
	cr_assert_not_null(j, "%s", text);
	cr_assert_str_eq(json_string_value(json_object_get(j, "name")),
			 "cim-eventsd");
	cr_assert(is_semver(json_string_value(json_object_get(j, "version"))));
	json_decref(j);
	cim_free(text);
}

/* At start the daemon made the stream (file storage, events.>) and the
 * three buckets. */
Test(info, stream_and_buckets_exist_after_start)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	static const char *buckets[] = {"CIM-HEADS", "CIM-SNAPSHOTS",
					"CIM-CHECKPOINTS"};
	bool has_subject = false;

	cr_assert_eq(js_GetStreamInfo(&si, H.js, H_STREAM, NULL, &jerr),
		     NATS_OK, "stream %s missing (js error %d)", H_STREAM,
		     (int)jerr);
	cr_assert_eq(si->Config->Storage, js_FileStorage);
	for (int i = 0; i < si->Config->SubjectsLen; i++)
		if (strcmp(si->Config->Subjects[i], "events.>") == 0)
			has_subject = true;
	cr_assert(has_subject, "stream subjects include events.>");
	jsStreamInfo_Destroy(si);

	for (size_t i = 0; i < 3; i++) {
		kvStore *kv = NULL;
		natsStatus s = js_KeyValue(&kv, H.js, buckets[i]);

		cr_assert_eq(s, NATS_OK, "bucket %s: %s", buckets[i],
			     natsStatus_GetText(s));
		kvStore_Destroy(kv);
	}
}
