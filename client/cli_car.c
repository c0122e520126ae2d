/*
 * cli_car.c: cim-events verify-car FILE [--key K]... [--json]: a CAR file
 * checked offline by proto/carverify.c, with no NATS at all.
 *
 * Each failure is printed on stdout as "<reason>: <sentence>" (the first
 * MAX_SHOWN; the summary counts them all), then a summary line; --json
 * prints one JSON object instead. A progress bar goes to stderr when it is
 * a terminal and the file is large. Exit 0 when everything holds, 1 when
 * something does not or the file cannot be read, 2 for usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "carverify.h"
#include "cli.h"
#include "jsontext.h"

#define MAX_SHOWN 100
#define PROGRESS_MIN (8u << 20) /* files smaller than this get no bar */

static const char usage_verify_car[] =
	"usage: " PROG " verify-car FILE [--key K]... [--json]\n"
	"Checks a CAR file (as export --car writes it) offline, without NATS:\n"
	"every block's CID against its bytes, every chain from its root down\n"
	"to version 1 (gapless, one aggregate each), every seal block's\n"
	"signature, and key blocks. With --key (a public key text, z6Mk...;\n"
	"repeat it for more keys) also that every root is sealed by one of\n"
	"the keys. Prints each failure (reason: what and where) and a\n"
	"summary; --json prints them as one JSON object. FILE - reads stdin.\n"
	"Exits 0 when everything holds, 1 when something does not.\n";

struct run {
	bool json;
	uint64_t size;   /* the file's, 0 when unknown */
	bool bar;
	int shown_pct;
	json_t *failures; /* --json */
};

static void
on_failure(void *ctx, const char *reason, const char *msg)
{
	struct run *run = ctx;
	size_t n;

	if (run->bar)
		fprintf(stderr, "\r%*s\r", 60, "");
	if (run->json) {
		n = json_array_size(run->failures);
		if (n < MAX_SHOWN)
			json_array_append_new(run->failures,
					      json_pack("{ss ss}", "reason",
							reason, "message", msg));
		return;
	}
	printf("%s: %s\n", reason, msg);
}

static void
on_progress(void *ctx, uint64_t bytes)
{
	enum { WIDTH = 30 };
	struct run *run = ctx;
	char bar[WIDTH + 1];
	int pct;

	if (!run->bar)
		return;
	pct = (int)(bytes * 100 / run->size);
	if (pct == run->shown_pct)
		return;
	run->shown_pct = pct;
	for (int i = 0; i < WIDTH; i++)
		bar[i] = i < pct * WIDTH / 100 ? '#' : '.';
	bar[WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %3d%% %" PRIu64 " MB", bar, pct, bytes >> 20);
	fflush(stderr);
}

static int
print_summary(const struct run *run, const char *file, const cim_car_summary *s,
	      size_t nkeys, int rc)
{
	if (run->json) {
		json_t *j = json_pack(
			"{sb ss sI sI sI sI sI sI sI sI sO}", "valid", rc == 0,
			"file", file, "aggregates", (json_int_t)s->aggregates,
			"events", (json_int_t)s->events, "seals",
			(json_int_t)s->seals, "key_blocks",
			(json_int_t)s->key_blocks, "blocks", (json_int_t)s->blocks,
			"roots", (json_int_t)s->roots, "bytes", (json_int_t)s->bytes,
			"failure_count", (json_int_t)s->failures, "failures",
			run->failures);
		int st;

		if (j == NULL)
			return cli_fail_nomem();
		if (nkeys > 0)
			json_object_set_new(j, "roots_sealed",
					    json_integer((json_int_t)s->roots_sealed));
		st = cli_print_json(j);
		json_decref(j);
		return st;
	}
	if (s->failures > MAX_SHOWN)
		printf("... and %" PRIu64 " more failures\n",
		       s->failures - MAX_SHOWN);
	printf("%s: %s: %" PRIu64 " aggregate%s, %" PRIu64 " event%s, %" PRIu64
	       " seal%s, %" PRIu64 " key block%s (%" PRIu64 " blocks, %" PRIu64
	       " bytes)",
	       file, rc == 0 ? "valid" : "NOT valid", s->aggregates,
	       s->aggregates == 1 ? "" : "s", s->events, s->events == 1 ? "" : "s",
	       s->seals, s->seals == 1 ? "" : "s", s->key_blocks,
	       s->key_blocks == 1 ? "" : "s", s->blocks, s->bytes);
	if (nkeys > 0)
		printf("; %" PRIu64 " of %" PRIu64 " roots sealed by a trusted key",
		       s->roots_sealed, s->aggregates);
	if (s->failures > 0)
		printf("; %" PRIu64 " failure%s", s->failures,
		       s->failures == 1 ? "" : "s");
	printf("\n");
	return fflush(stdout) == 0 ? 0 : EXIT_BROKEN;
}

int
cli_verify_car(struct ctx *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"key", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct cli_keys keys;
	struct positionals pos = {.n = 0};
	struct run run = {.shown_pct = -1};
	cim_car_verify_opts o = {.keys = (const uint8_t(*)[CIM_KEY_BYTES])keys.pk,
				 .on_failure = on_failure,
				 .on_progress = on_progress,
				 .ctx = &run};
	cim_car_summary s;
	struct stat st;
	FILE *f;
	int ch, rc, status;

	(void)cx;
	while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'k':
			if (cli_add_key(&keys, optarg) != 0)
				return EXIT_USAGE;
			o.nkeys = keys.n;
			break;
		case 'j':
			run.json = true;
			break;
		case 'h':
			fputs(usage_verify_car, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0)
		return EXIT_USAGE;
	if (pos.n == 0)
		return cli_usage_error("verify-car needs FILE");
	if (pos.n > 1)
		return cli_usage_error("unexpected argument '%s'", pos.v[1]);
	if (strcmp(pos.v[0], "-") == 0) {
		f = stdin;
	} else if ((f = fopen(pos.v[0], "rb")) == NULL) {
		fprintf(stderr, PROG ": verify-car: cannot open %s: %s\n",
			pos.v[0], strerror(errno));
		return EXIT_BROKEN;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
		run.size = (uint64_t)st.st_size;
	run.bar = !run.json && isatty(STDERR_FILENO) && run.size >= PROGRESS_MIN;
	if (run.json && (run.failures = json_array()) == NULL)
		return cli_fail_nomem();
	rc = cim_car_verify(cim_car_stdio_source, f, &o, &s);
	if (f != stdin)
		fclose(f);
	if (run.bar)
		fprintf(stderr, "\r%*s\r", 60, "");
	if (rc < 0) {
		fprintf(stderr, PROG ": verify-car: %s: cannot be checked: %s\n",
			pos.v[0], s.first);
		json_decref(run.failures);
		return EXIT_BROKEN;
	}
	status = print_summary(&run, pos.v[0], &s, o.nkeys, rc);
	json_decref(run.failures);
	return status != 0 ? status : rc == 0 ? 0 : EXIT_BROKEN;
}
