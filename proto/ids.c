/*
 * ids.c: the token rules for aggregate types, ids and event types, UUIDv7
 * event ids, and RFC 3339 timestamps.
 *
 * Times are written in one form only, UTC with exactly nine fraction
 * digits, so stored timestamps sort as text. Parsing is wider (any offset,
 * 0-9 fraction digits) and does its own calendar arithmetic, so it
 * depends on neither the locale nor the time zone.
 */
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ids.h"

#define NS_PER_SEC 1000000000L
#define SEC_MIN (-62167219200LL) /* 0000-01-01T00:00:00Z */
#define SEC_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

static bool
is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool
cim_token_type_ok(const char *s)
{
	size_t i;

	if (s == NULL || !is_alpha(s[0]))
		return false;
	for (i = 1; s[i] != '\0'; i++) {
		if (i >= CIM_TYPE_MAX)
			return false;
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_' &&
		    s[i] != '-')
			return false;
	}
	return true;
}

bool
cim_token_id_ok(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= CIM_ID_MAX)
			return false;
		if (!is_alpha(s[i]) && !is_digit(s[i]) &&
		    strchr("_:@+=-", s[i]) == NULL)
			return false;
	}
	return true;
}

void
cim_uuid7(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	static atomic_bool ready;
	struct timespec ts;
	uint8_t u[16];
	uint64_t ms;
	size_t i, n = 0;

	if (!atomic_load(&ready) && sodium_init() >= 0)
		atomic_store(&ready, true);
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	randombytes_buf(u + 6, sizeof(u) - 6);
	for (i = 0; i < 6; i++)
		u[i] = (uint8_t)(ms >> (40 - 8 * i));
	u[6] = 0x70 | (u[6] & 0x0f); /* version 7 */
	u[8] = 0x80 | (u[8] & 0x3f); /* variant 10 */
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[n++] = '-';
		out[n++] = hex[u[i] >> 4];
		out[n++] = hex[u[i] & 0x0f];
	}
	out[n] = '\0';
}

/* Writes v as exactly n decimal digits. */
static char *
put_digits(char *p, unsigned long v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

void
cim_time_format(int64_t sec, long nsec, char out[CIM_TIME_TEXT])
{
	struct tm tm;
	time_t t;
	char *p = out;

	sec += nsec / NS_PER_SEC;
	nsec %= NS_PER_SEC;
	if (nsec < 0) {
		nsec += NS_PER_SEC;
		sec--;
	}
	if (sec < SEC_MIN) {
		sec = SEC_MIN;
		nsec = 0;
	} else if (sec > SEC_MAX) {
		sec = SEC_MAX;
		nsec = NS_PER_SEC - 1;
	}
	t = (time_t)sec;
	gmtime_r(&t, &tm);
	p = put_digits(p, (unsigned long)(tm.tm_year + 1900), 4);
	*p++ = '-';
	p = put_digits(p, (unsigned long)(tm.tm_mon + 1), 2);
	*p++ = '-';
	p = put_digits(p, (unsigned long)tm.tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, (unsigned long)tm.tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, (unsigned long)tm.tm_min, 2);
	*p++ = ':';
	p = put_digits(p, (unsigned long)tm.tm_sec, 2);
	*p++ = '.';
	p = put_digits(p, (unsigned long)nsec, 9);
	*p++ = 'Z';
	*p = '\0';
}

void
cim_time_now(char out[CIM_TIME_TEXT])
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	cim_time_format((int64_t)ts.tv_sec, ts.tv_nsec, out);
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31};

	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return days[m - 1];
}

/* Reads exactly n digits at *s into *v and moves *s past them. */
static int
digits(const char **s, int n, int *v)
{
	int i, r = 0;

	for (i = 0; i < n; i++) {
		if (!is_digit((*s)[i]))
			return -1;
		r = r * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*v = r;
	return 0;
}

static int
expect(const char **s, char c)
{
	if (**s != c)
		return -1;
	(*s)++;
	return 0;
}

int
cim_time_parse(const char *s, int64_t *unix_ns)
{
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0, i;
	long frac = 0;
	int64_t sec, ns;

	if (s == NULL)
		return -1;
	if (digits(&s, 4, &y) || expect(&s, '-') || digits(&s, 2, &mo) ||
	    expect(&s, '-') || digits(&s, 2, &d))
		return -1;
	if (*s != 'T' && *s != 't')
		return -1;
	s++;
	if (digits(&s, 2, &h) || expect(&s, ':') || digits(&s, 2, &mi) ||
	    expect(&s, ':') || digits(&s, 2, &se))
		return -1;
	if (*s == '.') {
		s++;
		for (i = 0; is_digit(*s); i++, s++) {
			if (i == 9)
				return -1;
			frac = frac * 10 + (*s - '0');
		}
		if (i == 0)
			return -1;
		for (; i < 9; i++)
			frac *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '-' ? -1 : 1;
		s++;
		if (digits(&s, 2, &oh) || expect(&s, ':') ||
		    digits(&s, 2, &om) || oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*s != '\0')
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
	    h > 23 || mi > 59 || se > 60)
		return -1;
	sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	sec -= sign * (oh * 3600 + om * 60);
	if (__builtin_mul_overflow(sec, (int64_t)NS_PER_SEC, &ns) ||
	    __builtin_add_overflow(ns, (int64_t)frac, &ns))
		return -1;
	*unix_ns = ns;
	return 0;
}

void
cim_js_api_prefix(const char *domain, const char *api_prefix, char *out, size_t n)
{
	size_t len;

	if (domain != NULL && domain[0] != '\0')
		snprintf(out, n, "$JS.%s.API", domain);
	else if (api_prefix != NULL && api_prefix[0] != '\0')
		snprintf(out, n, "%s", api_prefix);
	else
		snprintf(out, n, "%s", "$JS.API");
	len = strlen(out);
	if (len > 0 && out[len - 1] == '.')
		out[len - 1] = '\0';
}
