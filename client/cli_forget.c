/*
 * cli_forget.c: cim-events forget TYPE ID [--yes]: crypto-shreds an
 * encrypted aggregate through the daemon's forget operation. On a terminal
 * it asks first (the aggregate id typed again); --yes skips the question,
 * and without a terminal --yes is required, so a script never forgets by
 * accident.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage_forget[] =
	"usage: " PROG " forget TYPE ID [--yes]\n"
	"Erases the data of an encrypted aggregate for good: the daemon\n"
	"deletes its data key and its snapshot and appends a CimForgotten\n"
	"event; from then on its events show \"data\": null, \"forgotten\":\n"
	"true, and appends to it answer gone. Ids, types, metadata and\n"
	"timestamps stay readable, and so do copies readers made. On a\n"
	"terminal it asks you to type ID again; --yes forgets without asking\n"
	"(and is required when stdin is not a terminal). Prints the reply,\n"
	"{\"forgotten\": true, \"version\": N}; forgetting again answers the\n"
	"same.\n";

/* Asks on the terminal; 0 when the id was typed back. */
static int
confirm(const char *type, const char *id)
{
	char line[256];

	fprintf(stderr,
		"Forget %s/%s for good? Its event data and snapshot can never "
		"be read again.\nType the aggregate id (%s) to confirm: ",
		type, id, id);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return -1;
	line[strcspn(line, "\r\n")] = '\0';
	return strcmp(line, id) == 0 ? 0 : -1;
}

int
cli_forget(struct ctx *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"yes", no_argument, NULL, 'y'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct positionals pos = {.n = 0};
	json_t *reply = NULL;
	bool yes = false;
	int ch, status;

	while ((ch = getopt_long(argc, argv, "-:hy", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'y':
			yes = true;
			break;
		case 'h':
			fputs(usage_forget, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0 ||
	    cli_want_positionals(&pos, 2, "forget") != 0)
		return EXIT_USAGE;
	if (!yes && !isatty(STDIN_FILENO))
		return cli_usage_error("forget asks for confirmation on a "
				       "terminal; give --yes to forget %s/%s "
				       "without asking",
				       pos.v[0], pos.v[1]);
	if (!yes && confirm(pos.v[0], pos.v[1]) != 0) {
		fprintf(stderr, PROG ": not confirmed; nothing was done\n");
		return EXIT_USAGE;
	}
	if ((status = cli_request(cx, "forget", pos.v[0], pos.v[1], NULL,
				  &reply)) != 0)
		return status;
	status = cli_print_json(reply);
	json_decref(reply);
	return status;
}
