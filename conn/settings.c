/*
 * settings.c: defaults, INI file (libinih), environment and flags, from
 * one table (settings.h).
 */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "settings.h"

static void *field_of(const struct settings *s, size_t i)
{
	return (char *)s->base + s->table[i].off;
}

/* Every string setting is wiped before it is freed: the secrets, and
 * nats_url, which may carry a user and password or a token. */
static void wipe(char *v)
{
	if (v != NULL)
		explicit_bzero(v, strlen(v));
}

static int set_origin(const struct settings *s, size_t i, const char *where)
{
	char *o = strdup(where);

	if (o == NULL) {
		fprintf(stderr, "%s: out of memory\n", s->prog);
		return -1;
	}
	free(s->origin[i]);
	s->origin[i] = o;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, 0;
	}
	return -1;
}

int settings_set(const struct settings *s, size_t i, const char *val, const char *where)
{
	const struct setting *t = &s->table[i];
	void *field = field_of(s, i);
	char *end;

	if (t->kind == SETTING_BOOL) {
		if (parse_bool(val, field) != 0) {
			fprintf(stderr, "%s: %s: %s must be true or false, not '%s'\n",
				s->prog, where, t->key, val);
			return -1;
		}
		return set_origin(s, i, where);
	}
	if (t->kind != SETTING_INT) {
		char **dst = field, *v;

		if (*val == '\0' && t->kind == SETTING_STR) {
			fprintf(stderr, "%s: %s: %s must not be empty\n", s->prog, where,
				t->key);
			return -1;
		}
		if ((v = strdup(val)) == NULL) {
			fprintf(stderr, "%s: out of memory\n", s->prog);
			return -1;
		}
		wipe(*dst);
		free(*dst);
		*dst = v;
		return set_origin(s, i, where);
	}
	errno = 0;
	long long v = strtoll(val, &end, 10);
	if (errno || end == val || *end != '\0' || v < t->min || v > t->max) {
		fprintf(stderr, "%s: %s: %s must be an integer from %lld to %lld, not '%s'\n",
			s->prog, where, t->key, (long long)t->min, (long long)t->max, val);
		return -1;
	}
	*(int64_t *)field = v;
	return set_origin(s, i, where);
}

int settings_defaults(const struct settings *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (settings_set(s, i, s->table[i].def, "default") != 0)
			return -1;
	return 0;
}

int settings_find(const struct settings *s, const char *section, const char *key)
{
	if (section != NULL) {
		for (size_t i = 0; i < s->naliases; i++)
			if (strcmp(s->aliases[i].section, section) == 0 &&
			    strcmp(s->aliases[i].name, key) == 0)
				return settings_find(s, NULL, s->aliases[i].key);
		if (strcmp(section, "event_store") == 0)
			section = "store";
	}
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->table[i].key, key) == 0 &&
		    (section == NULL || strcmp(s->table[i].section, section) == 0))
			return (int)i;
	return -1;
}

struct ini_ctx {
	const struct settings *s;
	const char *path;
	FILE *f;
	int line; /* the line being parsed, counted by read_line */
	int failed;
};

/* libinih as Debian builds it does not pass line numbers to the handler,
 * so the reader counts them. */
static char *read_line(char *str, int num, void *stream)
{
	struct ini_ctx *ctx = stream;
	char *r = fgets(str, num, ctx->f);

	if (r != NULL)
		ctx->line++;
	return r;
}

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
	struct ini_ctx *ctx = user;
	char where[512], unq[1024];
	int i = settings_find(ctx->s, section, key);
	size_t vlen = strlen(value);

	snprintf(where, sizeof where, "%s:%d", ctx->path, ctx->line);
	/* one pair of double quotes around a value goes (the seed's TOML) */
	if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"' && vlen < sizeof unq) {
		snprintf(unq, sizeof unq, "%.*s", (int)(vlen - 2), value + 1);
		value = unq;
	}
	if (i < 0 && !ctx->s->other_keys_ok) {
		fprintf(stderr, "%s: %s: unknown setting [%s] %s\n", ctx->s->prog, where,
			section, key);
		ctx->failed = 1;
	}
	if (i >= 0 && settings_set(ctx->s, (size_t)i, value, where) != 0)
		ctx->failed = 1;
	explicit_bzero(unq, sizeof unq); /* it may hold a quoted password */
	return 1;
}

int settings_read_file(const struct settings *s, const char *path)
{
	struct ini_ctx ctx = {s, path, fopen(path, "r"), 0, 0};

	if (ctx.f == NULL) {
		fprintf(stderr, "%s: %s: cannot read: %s\n", s->prog, path, strerror(errno));
		return -1;
	}
	int rc = ini_parse_stream(read_line, &ctx, on_ini, &ctx);
	fclose(ctx.f);
	if (rc > 0) {
		fprintf(stderr, "%s: %s:%d: syntax error\n", s->prog, path, rc);
		return -1;
	}
	return ctx.failed ? -1 : 0;
}

int settings_read_environment(const struct settings *s)
{
	for (size_t i = 0; i < s->n; i++) {
		char name[96], where[128];
		size_t k = (size_t)snprintf(name, sizeof name, "CIM_EVENTS_");

		for (const char *p = s->table[i].key; *p && k + 1 < sizeof name; p++)
			name[k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		name[k] = '\0';
		const char *v = getenv(name);
		snprintf(where, sizeof where, "$%s", name);
		if (v != NULL && settings_set(s, i, v, where) != 0)
			return -1;
	}
	return 0;
}

const char *settings_config_path(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
	}
	return getenv("CIM_EVENTS_CONFIG");
}

void settings_options(const struct settings *s, struct option *opts, char (*names)[64],
		      int first)
{
	for (size_t i = 0; i < s->n; i++) {
		snprintf(names[i], sizeof names[i], "%s", s->table[i].key);
		for (char *p = names[i]; *p; p++)
			if (*p == '_')
				*p = '-';
		opts[i] = (struct option){names[i],
			s->table[i].kind == SETTING_BOOL ? optional_argument
							 : required_argument,
			NULL, first + (int)i};
	}
}

const char *settings_origin(const struct settings *s, const char *key)
{
	int i = settings_find(s, NULL, key);
	const char *o = i >= 0 ? s->origin[i] : NULL;

	return o ? o : "default";
}

void settings_mask_url(const char *url, char *out, size_t n)
{
	size_t k = 0;

	out[0] = '\0';
	while (*url && k + 1 < n) {
		size_t len = strcspn(url, ",");
		/* the last @: a password may hold a raw one */
		const char *at = memrchr(url, '@', len), *scheme = strstr(url, "://");
		if (scheme != NULL && scheme >= url + len)
			scheme = NULL;
		if (at == NULL)
			k += (size_t)snprintf(out + k, n - k, "%.*s", (int)len, url);
		else
			k += (size_t)snprintf(out + k, n - k, "%.*s***%.*s",
					      scheme && scheme < at ? (int)(scheme - url) + 3 : 0,
					      url, (int)(url + len - at), at);
		if (k >= n)
			break;
		url += len;
		if (*url == ',') {
			k += (size_t)snprintf(out + k, n - k, ",");
			url++;
		}
	}
}

void settings_show(const struct settings *s, size_t i, char *out, size_t n)
{
	const struct setting *t = &s->table[i];
	const void *f = field_of(s, i);

	switch (t->kind) {
	case SETTING_INT:
		snprintf(out, n, "%lld", (long long)*(const int64_t *)f);
		break;
	case SETTING_BOOL:
		snprintf(out, n, "%s", *(const bool *)f ? "true" : "false");
		break;
	case SETTING_SECRET:
		snprintf(out, n, "%s", (*(char *const *)f)[0] ? "***" : "");
		break;
	default:
		if (strcmp(t->key, "nats_url") == 0)
			settings_mask_url(*(char *const *)f, out, n);
		else
			snprintf(out, n, "%s", *(char *const *)f);
	}
}

void settings_print_origins(const struct settings *s, FILE *out)
{
	char buf[1024];
	const char *section = "";

	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(section, s->table[i].section) != 0) {
			section = s->table[i].section;
			fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
		}
		settings_show(s, i, buf, sizeof buf);
		fprintf(out, "%s = %s    # %s\n", s->table[i].key, buf,
			s->origin[i] ? s->origin[i] : "default");
	}
}

void settings_free(const struct settings *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->table[i].kind != SETTING_INT && s->table[i].kind != SETTING_BOOL) {
			char **f = field_of(s, i);
			/* a password or token leaves no copy behind */
			wipe(*f);
			free(*f);
			*f = NULL;
		}
		free(s->origin[i]);
		s->origin[i] = NULL;
	}
}
