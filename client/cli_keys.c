/*
 * cli_keys.c: cim-events keygen FILE: a new Ed25519 signing key (the
 * daemon's signing_key) written to FILE as its seed in hex, mode 0600,
 * never over an existing file; prints the public key text (z6Mk...) that
 * goes into trusted_keys and --key. keygen --master FILE writes a new
 * master key (the daemon's master_key) the same way, and prints nothing.
 * No NATS.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "crypt.h"
#include "keys.h"

static const char usage_keygen[] =
	"usage: " PROG " keygen [--master] FILE\n"
	"Writes a new Ed25519 signing key (the daemon's signing_key) to FILE:\n"
	"its 32-byte seed as 64 hexadecimal characters and a newline, mode\n"
	"0600, never over an existing file. Prints its public key text\n"
	"(z6Mk...), the value for trusted_keys and --key. With --master it\n"
	"writes a new master key (the daemon's master_key: 32 random bytes,\n"
	"the same file format) and prints nothing. Exits 1 when FILE cannot\n"
	"be written.\n";

/* 32 random bytes from guarded memory to a new key file. */
static int
master_keygen(const char *path)
{
	cim_key *k = cim_key_alloc(1);
	char err[512];
	int rc = -1;

	if (k == NULL || cim_key_generate(k) != 0)
		snprintf(err, sizeof(err), "cannot make a key (out of memory)");
	else
		rc = cim_keyfile_write(path, k->b, err, sizeof(err));
	cim_key_free(k, 1);
	if (rc != 0) {
		fprintf(stderr, PROG ": keygen: %s\n", err);
		return EXIT_BROKEN;
	}
	return 0;
}

int
cli_keygen(struct ctx *cx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"master", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct positionals pos = {.n = 0};
	uint8_t pk[CIM_KEY_BYTES];
	char text[CIM_PUBKEY_TEXT_MAX], err[512];
	bool master = false;
	int ch;

	(void)cx;
	while ((ch = getopt_long(argc, argv, "-:hm", longopts, NULL)) != -1) {
		switch (ch) {
		case 1:
			if (cli_add_positional(&pos, optarg) != 0)
				return EXIT_USAGE;
			break;
		case 'm':
			master = true;
			break;
		case 'h':
			fputs(usage_keygen, stdout);
			return 0;
		default:
			return cli_bad_option(ch, argv);
		}
	}
	if (cli_rest_positionals(&pos, argc, argv) != 0)
		return EXIT_USAGE;
	if (pos.n == 0)
		return cli_usage_error("keygen needs FILE");
	if (pos.n > 1)
		return cli_usage_error("unexpected argument '%s'", pos.v[1]);
	if (master)
		return master_keygen(pos.v[0]);
	if (cim_signing_key_generate(pos.v[0], pk, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": keygen: %s\n", err);
		return EXIT_BROKEN;
	}
	cim_pubkey_to_text(pk, text);
	if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
		fprintf(stderr, PROG ": keygen: cannot write to stdout (the key "
				"is in %s)\n", pos.v[0]);
		return EXIT_BROKEN;
	}
	return 0;
}
