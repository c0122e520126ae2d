/*
 * test_ids.c: token rules, UUIDv7 shape, and RFC 3339 formatting and
 * parsing.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "ids.h"

Test(tokens, type_rule)
{
	char s[CIM_TYPE_MAX + 2];

	cr_assert(cim_token_type_ok("order"));
	cr_assert(cim_token_type_ok("O"));
	cr_assert(cim_token_type_ok("Order_Line-2"));
	cr_assert_not(cim_token_type_ok(""));
	cr_assert_not(cim_token_type_ok(NULL));
	cr_assert_not(cim_token_type_ok("2order"));
	cr_assert_not(cim_token_type_ok("_order"));
	cr_assert_not(cim_token_type_ok("order.line"));
	cr_assert_not(cim_token_type_ok("order line"));
	cr_assert_not(cim_token_type_ok("order*"));
	cr_assert_not(cim_token_type_ok("order>"));
	cr_assert_not(cim_token_type_ok("ordér"));
	memset(s, 'a', CIM_TYPE_MAX);
	s[CIM_TYPE_MAX] = '\0';
	cr_assert(cim_token_type_ok(s));
	s[CIM_TYPE_MAX] = 'a';
	s[CIM_TYPE_MAX + 1] = '\0';
	cr_assert_not(cim_token_type_ok(s));
}

Test(tokens, id_rule)
{
	char s[CIM_ID_MAX + 2];

	cr_assert(cim_token_id_ok("order-17"));
	cr_assert(cim_token_id_ok("7"));
	cr_assert(cim_token_id_ok("_:@+=-"));
	cr_assert(cim_token_id_ok("user@example:x+y=z"));
	cr_assert_not(cim_token_id_ok(""));
	cr_assert_not(cim_token_id_ok(NULL));
	cr_assert_not(cim_token_id_ok("a.b"));
	cr_assert_not(cim_token_id_ok("a b"));
	cr_assert_not(cim_token_id_ok("a*"));
	cr_assert_not(cim_token_id_ok("a>"));
	cr_assert_not(cim_token_id_ok("a/b"));
	cr_assert_not(cim_token_id_ok("\xc3\xa9"));
	memset(s, 'x', CIM_ID_MAX);
	s[CIM_ID_MAX] = '\0';
	cr_assert(cim_token_id_ok(s));
	s[CIM_ID_MAX] = 'x';
	s[CIM_ID_MAX + 1] = '\0';
	cr_assert_not(cim_token_id_ok(s));
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The 48-bit millisecond prefix of a UUIDv7's text form. */
static uint64_t
uuid_ms(const char *u)
{
	uint64_t ms = 0;
	int i;

	for (i = 0; i < 13; i++)
		if (i != 8)
			ms = ms << 4 | (uint64_t)hexval(u[i]);
	return ms;
}

Test(uuid7, shape_version_variant)
{
	char u[37];
	int i, k;

	for (k = 0; k < 100; k++) {
		cim_uuid7(u);
		cr_assert_eq(strlen(u), 36);
		for (i = 0; i < 36; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23)
				cr_assert_eq(u[i], '-', "%s", u);
			else
				cr_assert_geq(hexval(u[i]), 0, "%s", u);
		}
		cr_assert_eq(u[14], '7', "%s", u);
		cr_assert(strchr("89ab", u[19]) != NULL, "%s", u);
	}
}

Test(uuid7, timestamp_is_now_and_monotone)
{
	struct timespec ts;
	uint64_t now, prev = 0, ms;
	char u[37], first[37];
	int k;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	cim_uuid7(first);
	for (k = 0; k < 1000; k++) {
		cim_uuid7(u);
		ms = uuid_ms(u);
		cr_assert_geq(ms, prev);
		prev = ms;
	}
	cr_assert_geq(uuid_ms(first), now);
	cr_assert_leq(uuid_ms(first), now + 5000);
	cr_assert_str_neq(first, u);
}

Test(time, format_known_values)
{
	char t[CIM_TIME_TEXT];

	cim_time_format(0, 0, t);
	cr_assert_str_eq(t, "1970-01-01T00:00:00.000000000Z");
	cim_time_format(1795341600, 123456789, t);
	cr_assert_str_eq(t, "2026-11-22T10:00:00.123456789Z");
	cim_time_format(951782400, 1, t);
	cr_assert_str_eq(t, "2000-02-29T00:00:00.000000001Z");
	cim_time_format(-1, 999999999, t);
	cr_assert_str_eq(t, "1969-12-31T23:59:59.999999999Z");
	cim_time_format(-62167219200LL, 0, t);
	cr_assert_str_eq(t, "0000-01-01T00:00:00.000000000Z");
	cim_time_format(253402300799LL, 999999999, t);
	cr_assert_str_eq(t, "9999-12-31T23:59:59.999999999Z");
	cr_assert_eq(strlen(t), CIM_TIME_TEXT - 1);
}

Test(time, format_normalises_nsec)
{
	char t[CIM_TIME_TEXT];

	cim_time_format(0, 1500000000L, t);
	cr_assert_str_eq(t, "1970-01-01T00:00:01.500000000Z");
	cim_time_format(0, -1, t);
	cr_assert_str_eq(t, "1969-12-31T23:59:59.999999999Z");
}

Test(time, now_parses_back_close_to_clock)
{
	struct timespec ts;
	char t[CIM_TIME_TEXT];
	int64_t ns, clock_ns;

	clock_gettime(CLOCK_REALTIME, &ts);
	clock_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	cim_time_now(t);
	cr_assert_eq(strlen(t), CIM_TIME_TEXT - 1);
	cr_assert_eq(t[CIM_TIME_TEXT - 2], 'Z');
	cr_assert_eq(cim_time_parse(t, &ns), 0, "%s", t);
	cr_assert_geq(ns, clock_ns);
	cr_assert_lt(ns - clock_ns, (int64_t)5000000000);
}

Test(time, round_trip)
{
	static const int64_t secs[] = {0, 1, -1, 86399, 951782400,
				       1795341600, 4102444800LL, -2208988800LL,
				       1000000000LL, 7258118399LL};
	char t[CIM_TIME_TEXT];
	int64_t ns;
	size_t i;

	for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		cim_time_format(secs[i], 987654321, t);
		cr_assert_eq(cim_time_parse(t, &ns), 0, "%s", t);
		cr_assert_eq(ns, secs[i] * 1000000000 + 987654321, "%s", t);
	}
}

Test(time, parse_forms)
{
	int64_t ns;

	cr_assert_eq(cim_time_parse("2026-11-22T10:00:00Z", &ns), 0);
	cr_assert_eq(ns, 1795341600LL * 1000000000);
	cr_assert_eq(cim_time_parse("2026-11-22t10:00:00z", &ns), 0);
	cr_assert_eq(ns, 1795341600LL * 1000000000);
	cr_assert_eq(cim_time_parse("2026-11-22T10:00:00.5Z", &ns), 0);
	cr_assert_eq(ns, 1795341600LL * 1000000000 + 500000000);
	cr_assert_eq(cim_time_parse("2026-11-22T10:00:00.000000001Z", &ns), 0);
	cr_assert_eq(ns, 1795341600LL * 1000000000 + 1);
	cr_assert_eq(cim_time_parse("2026-11-22T12:30:00+02:30", &ns), 0);
	cr_assert_eq(ns, 1795341600LL * 1000000000);
	cr_assert_eq(cim_time_parse("2026-11-22T05:00:00.25-05:00", &ns), 0);
	cr_assert_eq(ns, 1795341600LL * 1000000000 + 250000000);
	cr_assert_eq(cim_time_parse("2026-11-22T10:00:00+00:00", &ns), 0);
	cr_assert_eq(ns, 1795341600LL * 1000000000);
	cr_assert_eq(cim_time_parse("2024-02-29T00:00:00Z", &ns), 0);
	cr_assert_eq(cim_time_parse("2000-02-29T00:00:00Z", &ns), 0);
	cr_assert_eq(ns, 951782400LL * 1000000000);
	cr_assert_eq(cim_time_parse("1969-12-31T23:59:59.999999999Z", &ns), 0);
	cr_assert_eq(ns, -1);
	/* a leap second reads as the next second's start */
	cr_assert_eq(cim_time_parse("2016-12-31T23:59:60Z", &ns), 0);
	cr_assert_eq(ns, 1483228800LL * 1000000000);
}

Test(time, parse_rejections)
{
	static const char *bad[] = {
		"",
		"garbage",
		"2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",
		"2026-02-30T00:00:00Z",
		"2023-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z",
		"2026-01-00T00:00:00Z",
		"2026-01-32T00:00:00Z",
		"2026-11-22 10:00:00Z",
		"2026-11-2210:00:00Z",
		"2026-11-22T24:00:00Z",
		"2026-11-22T10:60:00Z",
		"2026-11-22T10:00:61Z",
		"2026-11-22T10:00:00",
		"2026-11-22T10:00:00.Z",
		"2026-11-22T10:00:00.1234567890Z",
		"2026-11-22T10:00:00Zjunk",
		"2026-11-22T10:00:00+0200",
		"2026-11-22T10:00:00+24:00",
		"2026-11-22T10:00:00+02:60",
		"2026-11-22T10:00Z",
		"26-11-22T10:00:00Z",
		"2026-1-22T10:00:00Z",
		"+2026-11-22T10:00:00Z",
		"2026-11-22T1a:00:00Z",
		"2026-11-22T10:00:00 Z",
		"9999-12-31T23:59:59Z", /* beyond int64 nanoseconds */
		"0000-01-01T00:00:00Z",
	};
	int64_t ns = 42;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(cim_time_parse(bad[i], &ns), -1, "%s", bad[i]);
	cr_assert_eq(cim_time_parse(NULL, &ns), -1);
	cr_assert_eq(ns, 42);
}
