/*
 * settings.h: settings from one table, for cim-eventsd and cim-events.
 *
 * Each setting has a default and can be set, in rising order of weight, in
 * an INI file (libinih), in the environment ($CIM_EVENTS_<KEY>, the key in
 * upper case) and by a flag (--key-name for key_name). A program keeps its
 * settings in a struct of its own; the table says where each one lives in
 * it (an offset) and of what kind it is. This file does the reading and
 * the showing (secrets masked); what the settings must say together is
 * the program's to check.
 */
#ifndef CIM_CONN_SETTINGS_H
#define CIM_CONN_SETTINGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* STR: a value that may not be empty; OPT: may be empty (the default "");
 * SECRET: an OPT never shown; PATH: an OPT naming a file that must be
 * readable; BOOL: true/false, yes/no, on/off, 1/0; INT: a range. Strings
 * are char * (malloc'd), BOOL bool, INT int64_t. */
enum setting_kind { SETTING_STR, SETTING_OPT, SETTING_SECRET, SETTING_PATH,
		    SETTING_BOOL, SETTING_INT };

struct setting {
	const char *section;
	const char *key;
	enum setting_kind kind;
	size_t off;
	const char *def;
	int64_t min, max;
};

/* Another name for a key, in a file section: [nats] url for nats_url. */
struct setting_alias {
	const char *section, *name, *key;
};

struct settings {
	const char *prog;       /* for messages: "cim-eventsd: ..." */
	const struct setting *table;
	size_t n;
	const struct setting_alias *aliases;
	size_t naliases;
	bool other_keys_ok;     /* a file's keys not in the table are passed
				   over (a tool reading the daemon's file) */
	void *base;             /* the struct the offsets point into */
	char **origin;          /* n slots: "default", FILE:LINE, $VAR, ... */
};

/* Each returns 0, or -1 after printing a sentence on stderr. */
int settings_defaults(const struct settings *s);
int settings_read_file(const struct settings *s, const char *path);
int settings_read_environment(const struct settings *s);
/* Sets the setting at index i from text (where: for messages). */
int settings_set(const struct settings *s, size_t i, const char *val,
		 const char *where);

/* The file named by --config FILE (or --config=FILE) among argv[1..argc),
 * else $CIM_EVENTS_CONFIG, else NULL. */
const char *settings_config_path(int argc, char **argv);

/* One getopt_long option per setting into opts[0..n): --key-name, with a
 * value (optional for BOOL: alone it means true), val = first + index.
 * names must hold n entries (the option names live there). */
void settings_options(const struct settings *s, struct option *opts,
		      char (*names)[64], int first);

/* The index of key (or of a section's alias of it), or -1. */
int settings_find(const struct settings *s, const char *section, const char *key);
/* Where setting key got its value. */
const char *settings_origin(const struct settings *s, const char *key);
/* Setting i as text as it may be shown: a secret as *** (or "" when
 * unset), the credentials of a URL as ***. */
void settings_show(const struct settings *s, size_t i, char *out, size_t n);
/* A URL or comma-separated list of them without user, password or token:
 * what comes before the last @ of each shows as ***. */
void settings_mask_url(const char *url, char *out, size_t n);
/* "key = value    # origin" lines, by section, secrets masked. */
void settings_print_origins(const struct settings *s, FILE *out);
/* Frees the strings and origins. */
void settings_free(const struct settings *s);

#endif
