/*
 * log.c: one line per message on stderr, key=value, safe from any thread
 * (one fprintf per line; stdio locks the stream).
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

static void vlog(int level, const char *fmt, va_list ap)
{
	char msg[1024], ts[CIM_TIME_TEXT];
	struct timespec now;

	if (level > atomic_load(&cur_level))
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	for (char *p = msg; *p; p++)
		if (*p == '"' || *p == '\n')
			*p = *p == '"' ? '\'' : ' ';
	clock_gettime(CLOCK_REALTIME, &now);
	cim_time_format(now.tv_sec, now.tv_nsec, ts);
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
