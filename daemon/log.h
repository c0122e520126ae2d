/*
 * log.h: the daemon's log, four calls in the ntpd manner, written to stderr
 * one line per message, as key=value text: `ts=... level=warn msg="..."`,
 * or as JSON lines: `{"ts":"...","level":"warn","msg":"..."}` (the setting
 * log_format).
 */
#ifndef CIM_DAEMON_LOG_H
#define CIM_DAEMON_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Parses "error", "warn", "info", "debug"; -1 for anything else. */
int log_level_from_name(const char *name);
const char *log_level_name(int level);
void log_set_level(int level);
int log_get_level(void);

enum log_format { LOG_TEXT = 0, LOG_JSON };
/* Parses "text", "json"; -1 for anything else. */
int log_format_from_name(const char *name);
void log_set_format(int format);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at error level and exits with status 1. */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
