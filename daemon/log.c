/*
 * log.c: one line per message on stderr, key=value text or a JSON object,
 * safe from any thread (one fprintf per line; stdio locks the stream).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ids.h"
#include "log.h"

static atomic_int cur_level = LOG_INFO;
static atomic_int cur_format = LOG_TEXT;
static const char *const names[] = {"error", "warn", "info", "debug"};

int log_level_from_name(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(int level)
{
	return level >= 0 && level < 4 ? names[level] : "info";
}

void log_set_level(int level) { atomic_store(&cur_level, level); }
int log_get_level(void) { return atomic_load(&cur_level); }

int log_format_from_name(const char *name)
{
	if (strcmp(name, "text") == 0)
		return LOG_TEXT;
	if (strcmp(name, "json") == 0)
		return LOG_JSON;
	return -1;
}

void log_set_format(int format) { atomic_store(&cur_format, format); }

/* The length of the valid UTF-8 sequence at p (1 to 4), 0 if none. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* msg as the body of a JSON string: quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 as U+FFFD. */
static void json_escape(const char *msg, char *out, size_t outsz)
{
	const unsigned char *p = (const unsigned char *)msg;
	size_t o = 0;

	while (*p && o + 7 < outsz) {
		size_t n = utf8_len(p);
		if (n == 0) {
			o += (size_t)snprintf(out + o, outsz - o, "\\ufffd");
			p++;
		} else if (*p == '"' || *p == '\\') {
			out[o++] = '\\';
			out[o++] = (char)*p++;
		} else if (*p < 0x20) {
			o += (size_t)snprintf(out + o, outsz - o, "\\u%04x", *p);
			p++;
		} else {
			memcpy(out + o, p, n);
			o += n;
			p += n;
		}
	}
	out[o] = '\0';
}

static void vlog(int level, const char *fmt, va_list ap)
{
	char msg[1024], ts[CIM_TIME_TEXT];
	struct timespec now;

	if (level > atomic_load(&cur_level))
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	clock_gettime(CLOCK_REALTIME, &now);
	cim_time_format(now.tv_sec, now.tv_nsec, ts);
	if (atomic_load(&cur_format) == LOG_JSON) {
		char esc[6 * sizeof msg + 1];
		json_escape(msg, esc, sizeof esc);
		fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
			names[level], esc);
		return;
	}
	for (char *p = msg; *p; p++)
		if (*p == '"' || *p == '\n')
			*p = *p == '"' ? '\'' : ' ';
	fprintf(stderr, "ts=%s level=%s msg=\"%s\"\n", ts, names[level], msg);
}

#define LOGFN(fn, lvl)                                                         \
	void fn(const char *fmt, ...)                                          \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		vlog(lvl, fmt, ap);                                            \
		va_end(ap);                                                    \
	}
LOGFN(log_error, LOG_ERROR)
LOGFN(log_warn, LOG_WARN)
LOGFN(log_info, LOG_INFO)
LOGFN(log_debug, LOG_DEBUG)

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
