/*
 * test_logs.c: the daemon's log on stderr: with log_format = json each line
 * is one JSON object with ts, level and msg; a format it does not know is
 * refused at start with a clear sentence.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/harness.h"

TestSuite(logs, .init = h_setup_nats_only, .fini = h_teardown, .timeout = 60);

static char *write_config(const char *text)
{
	char *path = h_strf("%s/daemon.ini", H.nats.dir);
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

Test(logs, json_lines_with_ts_level_msg)
{
	char *ini = write_config("[daemon]\nlog_format = json\nlog_level = debug\n");
	char *log_path = h_strf("%s/daemon.log", H.nats.dir);
	char *text, *save = NULL;
	int lines = 0, infos = 0;
	h_reply rep;

	H.daemon = h_daemon_start(&H.nats, "--config", ini, NULL);
	cr_assert_gt(H.daemon, 0);
	free(h_append_n("order", "log-1", 2));
	h_request(&rep, H_PREFIX ".nosuch", "{}", -1);
	cr_assert_str_eq(h_error_code(&rep), "invalid_request");
	h_reply_free(&rep);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = -1;

	text = h_slurp(log_path);
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_error_t jerr;
		json_t *j;
		const char *level;

		if (strncmp(line, "==== harness", 12) == 0)
			continue; /* the harness's own note of the command line */
		j = json_loads(line, 0, &jerr);
		cr_assert_not_null(j, "not a JSON line: %s (%s)", line, jerr.text);
		cr_assert(json_is_object(j), "%s", line);
		cr_assert(json_is_string(json_object_get(j, "ts")), "%s", line);
		cr_assert_eq(json_string_value(json_object_get(j, "ts"))[10], 'T', "%s", line);
		level = json_string_value(json_object_get(j, "level"));
		cr_assert_not_null(level, "%s", line);
		cr_assert(strcmp(level, "error") == 0 || strcmp(level, "warn") == 0 ||
			  strcmp(level, "info") == 0 || strcmp(level, "debug") == 0, "%s", line);
		cr_assert(json_is_string(json_object_get(j, "msg")), "%s", line);
		if (strcmp(level, "info") == 0)
			infos++;
		lines++;
		json_decref(j);
	}
	/* starting, ready, draining, stopped at least */
	cr_assert_geq(lines, 4, "%d lines", lines);
	cr_assert_geq(infos, 4);
	free(text);
	free(log_path);
	free(ini);
}

Test(logs, text_stays_key_value)
{
	char *log_path = h_strf("%s/daemon.log", H.nats.dir);
	char *text;

	H.daemon = h_daemon_start(&H.nats, NULL);
	cr_assert_gt(H.daemon, 0);
	cr_assert_eq(h_daemon_stop(H.daemon), 0);
	H.daemon = -1;
	text = h_slurp(log_path);
	cr_assert_not_null(strstr(text, "level=info msg=\""), "%s", text);
	cr_assert_null(strstr(text, "{\"ts\""), "%s", text);
	free(text);
	free(log_path);
}

Test(logs, unknown_format_is_refused)
{
	char *ini = write_config("[daemon]\nlog_format = yaml\n");
	const char *argv[] = {getenv("CIM_TEST_DAEMON"), "--nats-url", H.nats.url,
			      "--config", ini, NULL};
	h_run r;

	cr_assert_not_null(argv[0]);
	r = h_finish(h_spawn("badformat", argv), "badformat", 20000);
	cr_assert_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_assert_not_null(strstr(r.err, "log_format must be text or json, not 'yaml'"), "%s",
			   r.err);
	h_run_free(&r);
	free(ini);
}
