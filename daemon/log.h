/*
 * log.h: the daemon's log, four calls in the ntpd manner, written to stderr
 * as key=value text: `ts=... level=warn msg="..."`.
 */
#ifndef CIM_DAEMON_LOG_H
#define CIM_DAEMON_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Parses "error", "warn", "info", "debug"; -1 for anything else. */
int log_level_from_name(const char *name);
const char *log_level_name(int level);
void log_set_level(int level);
int log_get_level(void);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at error level and exits with status 1. */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
