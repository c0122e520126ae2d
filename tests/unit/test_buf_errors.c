/*
 * test_buf_errors.c: the growable buffer and everything made from the
 * error table.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "buf.h"
#include "errors.h"

Test(buf, appends_and_terminates)
{
	cbuf b = CBUF_INIT;

	cr_assert_eq(cbuf_puts(&b, "abc"), 0);
	cr_assert_eq(cbuf_putc(&b, '-'), 0);
	cr_assert_eq(cbuf_put(&b, "xyz", 2), 0);
	cr_assert_eq(cbuf_put(&b, NULL, 0), 0);
	cr_assert_eq(b.len, 6);
	cr_assert_eq(cbuf_terminate(&b), 0);
	cr_assert_eq(b.len, 6);
	cr_assert_str_eq((char *)b.p, "abc-xy");
	cbuf_reset(&b);
	cr_assert_eq(b.len, 0);
	cr_assert_geq(b.cap, 7);
	cr_assert_eq(cbuf_puts(&b, "q"), 0);
	cr_assert_eq(cbuf_terminate(&b), 0);
	cr_assert_str_eq((char *)b.p, "q");
	cbuf_free(&b);
	cr_assert_null(b.p);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.cap, 0);
}

Test(buf, grows_and_keeps_content)
{
	cbuf b = CBUF_INIT;
	size_t i;

	for (i = 0; i < 100000; i++)
		cr_assert_eq(cbuf_putc(&b, (uint8_t)(i * 31)), 0);
	cr_assert_eq(b.len, 100000);
	cr_assert_geq(b.cap, b.len);
	for (i = 0; i < 100000; i++)
		cr_assert_eq(b.p[i], (uint8_t)(i * 31));
	cbuf_free(&b);
}

/* A secret buffer grows by moving to new memory (the old is wiped and
 * freed: realloc would leave it behind unwiped), keeping its content,
 * and fails as the others do. */
Test(buf, a_secret_buffer_moves_as_it_grows)
{
	cbuf b = CBUF_SECRET;
	size_t i;
	int moved = 0;

	for (i = 0; i < 100000; i++) {
		uint8_t *before = b.p;
		cr_assert_eq(cbuf_putc(&b, (uint8_t)(i * 31)), 0);
		moved += before != NULL && b.p != before;
	}
	cr_assert_geq(moved, 10, "it grew %d times", moved);
	for (i = 0; i < 100000; i++)
		cr_assert_eq(b.p[i], (uint8_t)(i * 31));
	uint8_t *p = b.p;
	cr_assert_eq(cbuf_reserve(&b, SIZE_MAX - 3), -1);
	cr_assert_eq(b.p, p);
	cr_assert_eq(b.len, 100000);
	cbuf_free(&b);
	cr_assert_null(b.p);
	cr_assert(b.secret, "still marked after free: reused, it stays secret");
}

Test(buf, reserve_failure_leaves_buffer)
{
	cbuf b = CBUF_INIT;
	uint8_t *p;
	size_t cap;

	cr_assert_eq(cbuf_puts(&b, "keep"), 0);
	p = b.p;
	cap = b.cap;
	cr_assert_eq(cbuf_reserve(&b, SIZE_MAX), -1);
	cr_assert_eq(cbuf_reserve(&b, SIZE_MAX - 3), -1);
	cr_assert_eq(cbuf_put(&b, "x", SIZE_MAX - 2), -1);
	cr_assert_eq(b.p, p);
	cr_assert_eq(b.len, 4);
	cr_assert_eq(b.cap, cap);
	cr_assert_eq(memcmp(b.p, "keep", 4), 0);
	cbuf_free(&b);
}

Test(errors, table_names_and_status)
{
	cr_assert_str_eq(cim_err_name(CIM_ERR_OK), "ok");
	cr_assert_str_eq(cim_err_name(CIM_ERR_WRONG_EXPECTED_VERSION),
			 "wrong_expected_version");
	cr_assert_str_eq(cim_err_name(CIM_ERR_NOMEM), "nomem");
	cr_assert_str_eq(cim_err_name((cim_err)CIM_ERR__COUNT), "unknown");
	cr_assert_str_eq(cim_err_name((cim_err)-1), "unknown");
	cr_assert_eq(cim_err_status(CIM_ERR_OK), 200);
	cr_assert_eq(cim_err_status(CIM_ERR_INVALID_REQUEST), 400);
	cr_assert_eq(cim_err_status(CIM_ERR_INVALID_ARGUMENT), 400);
	cr_assert_eq(cim_err_status(CIM_ERR_PAYLOAD_TOO_LARGE), 413);
	cr_assert_eq(cim_err_status(CIM_ERR_WRONG_EXPECTED_VERSION), 409);
	cr_assert_eq(cim_err_status(CIM_ERR_DUPLICATE_EVENT), 409);
	cr_assert_eq(cim_err_status(CIM_ERR_NOT_FOUND), 404);
	cr_assert_eq(cim_err_status(CIM_ERR_UNAVAILABLE), 503);
	cr_assert_eq(cim_err_status(CIM_ERR_INTERNAL), 500);
	cr_assert_eq(cim_err_status(CIM_ERR_TIMEOUT), 0);
	cr_assert_eq(cim_err_status((cim_err)99), 0);
	cr_assert_str_eq(cim_strerror(CIM_ERR_NOT_FOUND), "not found");
	cr_assert_str_eq(cim_strerror((cim_err)99), "unknown error");
}

Test(errors, from_name_round_trips_every_code)
{
	int i;

	for (i = 0; i < (int)CIM_ERR__COUNT; i++) {
		cr_assert_eq(cim_err_from_name(cim_err_name((cim_err)i)),
			     (cim_err)i, "%d", i);
		cr_assert_gt(strlen(cim_strerror((cim_err)i)), 0);
	}
	cr_assert_eq(cim_err_from_name("no_such_code"), CIM_ERR_BAD_REPLY);
	cr_assert_eq(cim_err_from_name(""), CIM_ERR_BAD_REPLY);
	cr_assert_eq(cim_err_from_name(NULL), CIM_ERR_BAD_REPLY);
	cr_assert_eq(cim_err_from_name("NOT_FOUND"), CIM_ERR_BAD_REPLY);
}

Test(errors, version_and_free)
{
	cr_assert_str_eq(cim_version(), CIM_EVENTS_VERSION);
	cr_assert_str_eq(cim_version(), "0.2.0");
	cim_free(NULL);
	cim_free(strdup("x"));
}

Test(errors, perr_set)
{
	cim_perr e;
	char longfield[200];

	memset(&e, 0, sizeof(e));
	cr_assert_eq(cim_perr_set(&e, CIM_ERR_INVALID_ARGUMENT,
				  "aggregate_id", "bad %s at %d", "id", 3), -1);
	cr_assert_eq(e.code, CIM_ERR_INVALID_ARGUMENT);
	cr_assert_str_eq(e.field, "aggregate_id");
	cr_assert_str_eq(e.msg, "bad id at 3");
	cr_assert_eq(cim_perr_set(&e, CIM_ERR_INVALID_REQUEST, NULL, "x"), -1);
	cr_assert_str_eq(e.field, "");
	cr_assert_eq(e.code, CIM_ERR_INVALID_REQUEST);
	cr_assert_eq(cim_perr_set(NULL, CIM_ERR_INTERNAL, NULL, "y"), -1);
	memset(longfield, 'f', sizeof(longfield) - 1);
	longfield[sizeof(longfield) - 1] = '\0';
	cim_perr_set(&e, CIM_ERR_INVALID_ARGUMENT, longfield, "%s", longfield);
	cr_assert_eq(strlen(e.field), sizeof(e.field) - 1);
	cr_assert_eq(strlen(e.msg), sizeof(longfield) - 1);
}

Test(errors, error_json)
{
	json_t *j, *inner;
	char *s;

	j = cim_error_json(CIM_ERR_INVALID_ARGUMENT, "aggregate_type",
			   "aggregate_type is not a valid token.");
	cr_assert_not_null(j);
	inner = json_object_get(j, "error");
	cr_assert(json_is_object(inner));
	cr_assert_str_eq(json_string_value(json_object_get(inner, "code")),
			 "invalid_argument");
	cr_assert_str_eq(json_string_value(json_object_get(inner, "field")),
			 "aggregate_type");
	cr_assert_str_eq(json_string_value(json_object_get(inner, "message")),
			 "aggregate_type is not a valid token.");
	cr_assert_eq(json_object_size(j), 1);
	json_decref(j);

	j = cim_error_json(CIM_ERR_NOT_FOUND, "", NULL);
	cr_assert_not_null(j);
	inner = json_object_get(j, "error");
	cr_assert_null(json_object_get(inner, "field"));
	cr_assert_str_eq(json_string_value(json_object_get(inner, "message")),
			 "not found");
	s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	cr_assert_str_eq(s,
		"{\"error\":{\"code\":\"not_found\",\"message\":\"not found\"}}");
	free(s);
	json_decref(j);

	/* a message that is not UTF-8 falls back to the table's sentence */
	j = cim_error_json(CIM_ERR_INTERNAL, NULL, "bad \xff byte");
	cr_assert_not_null(j);
	inner = json_object_get(j, "error");
	cr_assert_str_eq(json_string_value(json_object_get(inner, "message")),
			 "internal error");
	json_decref(j);
}
