/*
 * test_languages.c: docs/protocol.md section 13 ("Calling it from other
 * languages") against a daemon, so it stays true.
 *
 * The `nats` command-line tool is not packaged in Debian, so it cannot run
 * here; what it sends is only the body on the command line, to the
 * subject on it. Each `$ nats req SUBJECT 'BODY'` line of the section is
 * sent exactly so, in order, to a fresh daemon, and the reply is held to
 * what the section shows after it: the Cim-Status header and the body,
 * member by member (the CIDs and timestamps, which follow the time of the
 * append, only by their kind). Then the Go program of the section is built
 * as it stands there, with nats.go from Debian's packages
 * (golang-github-nats-io-go-nats-dev, GOPATH mode, offline), run against
 * the same daemon, and what it prints compared with the section's text.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/harness.h"
#include "jsonread.h"

TestSuite(languages, .init = h_setup, .fini = h_teardown, .timeout = 300);

/* The section, as a new string. */
static char *section(void)
{
	const char *docs = getenv("CIM_TEST_DOCS");
	char *path = h_strf("%s/protocol.md", docs != NULL && *docs ? docs : "docs");
	char *text = h_slurp(path), *start, *end;

	start = strstr(text, "\n## 13. Calling it from other languages");
	cr_assert_not_null(start, "%s has no section 13", path);
	end = strstr(start + 1, "\n## ");
	char *s = strndup(start, end != NULL ? (size_t)(end - start) : strlen(start));
	cr_assert_not_null(s);
	free(text);
	free(path);
	return s;
}

/* The members that follow the time of the append: compared by kind. */
static bool varies(const char *key)
{
	return strcmp(key, "cid") == 0 || strcmp(key, "head") == 0 ||
	       strcmp(key, "prev") == 0 || strcmp(key, "timestamp") == 0;
}

/* got is what the section shows (want) but for the members that vary;
 * where says where in the reply, for the message. */
static bool like(const json_t *got, const json_t *want, const char *where)
{
	const char *key;
	json_t *w;
	size_t i;

	if (json_typeof(got) != json_typeof(want)) {
		cr_log_error("%s: of another kind", where);
		return false;
	}
	if (json_is_object(want)) {
		if (json_object_size(got) != json_object_size(want)) {
			cr_log_error("%s: %zu members, the docs show %zu", where,
				     json_object_size(got), json_object_size(want));
			return false;
		}
		json_object_foreach((json_t *)want, key, w) {
			json_t *g = json_object_get(got, key);
			char *sub = h_strf("%s.%s", where, key);
			bool ok = g != NULL && (varies(key) ? json_typeof(g) == json_typeof(w)
							    : like(g, w, sub));
			if (g == NULL)
				cr_log_error("%s: missing", sub);
			free(sub);
			if (!ok)
				return false;
		}
		return true;
	}
	if (json_is_array(want)) {
		if (json_array_size(got) != json_array_size(want)) {
			cr_log_error("%s: %zu items, the docs show %zu", where,
				     json_array_size(got), json_array_size(want));
			return false;
		}
		json_array_foreach(want, i, w) {
			char *sub = h_strf("%s[%zu]", where, i);
			bool ok = like(json_array_get(got, i), w, sub);
			free(sub);
			if (!ok)
				return false;
		}
		return true;
	}
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_ENCODE_ANY), *x = json_dumps(want, JSON_ENCODE_ANY);
		cr_log_error("%s: %s, the docs show %s", where, g, x);
		free(g);
		free(x);
		return false;
	}
	return true;
}

/* Sends each `$ nats req` of the section and holds the reply to what the
 * section shows. Returns how many were sent. */
static int nats_req_examples(const char *sec)
{
	int sent = 0;

	for (const char *line = strstr(sec, "\n$ nats req "); line != NULL;
	     line = strstr(line + 1, "\n$ nats req ")) {
		const char *p = line + strlen("\n$ nats req ");
		const char *sp = strchr(p, ' '), *q1 = strchr(p, '\''), *eol = strchr(p, '\n');
		cr_assert(sp && q1 && eol && q1 < eol, "a nats req line without a body");
		const char *q2 = memrchr(q1 + 1, '\'', (size_t)(eol - q1 - 1));
		cr_assert_not_null(q2, "a body without its closing quote");
		char *subject = strndup(p, (size_t)(sp - p));
		char *body = strndup(q1 + 1, (size_t)(q2 - q1 - 1));

		/* what the section shows: the Cim-Status line, then the body */
		const char *next = strstr(eol, "\n$ "), *fence = strstr(eol, "\n```");
		const char *stop = next != NULL && next < fence ? next : fence;
		const char *st = strstr(eol, " Cim-Status: ");
		cr_assert(st != NULL && st < stop, "%s: the docs show no Cim-Status", subject);
		int want_status = atoi(st + strlen(" Cim-Status: "));
		const char *b = strstr(eol, "\n{");
		cr_assert(b != NULL && b < stop, "%s: the docs show no reply body", subject);
		const char *be = strchr(b + 1, '\n');
		json_error_t e;
		json_t *want = cim_json_read(b + 1, (size_t)(be - b - 1), 0, &e);
		cr_assert_not_null(want, "%s: the reply in the docs is not JSON: %s", subject, e.text);

		h_reply r;
		h_request(&r, subject, body, -1);
		cr_assert_eq(r.s, NATS_OK, "%s: no reply", subject);
		cr_expect_eq(r.status, want_status, "%s %s: Cim-Status %d, the docs show %d",
			     subject, body, r.status, want_status);
		cr_expect(r.json != NULL && like(r.json, want, "reply"),
			  "%s %s: the reply differs from the docs: %s", subject, body, r.body);
		h_reply_free(&r);
		json_decref(want);
		free(subject);
		free(body);
		sent++;
	}
	return sent;
}

/* The text of the first ```<lang> block at or after from, as a new
 * string; *after is where the block ends. */
static char *block(const char *from, const char *lang, const char **after)
{
	char *fence = h_strf("\n```%s\n", lang);
	const char *s = strstr(from, fence);

	cr_assert_not_null(s, "no %s block", lang);
	s += strlen(fence);
	const char *e = strstr(s, "\n```");
	cr_assert_not_null(e);
	free(fence);
	*after = e;
	return strndup(s, (size_t)(e - s) + 1);
}

Test(languages, the_nats_req_examples_and_the_go_program_are_true)
{
	char *sec = section();

	/* 1. nats req, on a fresh store (the sequences shown start at 1) */
	int sent = nats_req_examples(sec);
	cr_assert_geq(sent, 7, "the section shows %d nats req examples", sent);

	/* 2. the Go program, built as it is written there */
	const char *after;
	char *program = block(sec, "go", &after);
	char *want = block(after, "text", &after);
	char dir[] = "/tmp/cim-itest-go-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char *src = h_strf("%s/main.go", dir), *bin = h_strf("%s/example", dir);
	FILE *f = fopen(src, "w");
	cr_assert_not_null(f);
	fputs(program, f);
	fclose(f);
	const char *gocache = getenv("CIM_TEST_GOCACHE");
	char *cache = gocache != NULL && *gocache ? strdup(gocache) : h_strf("%s/gocache", dir);
	cr_assert_eq(access("/usr/bin/go", X_OK), 0,
		     "no /usr/bin/go: install golang-go and golang-github-nats-io-go-nats-dev "
		     "(make deps)");
	setenv("GO111MODULE", "off", 1);
	setenv("GOPATH", "/usr/share/gocode", 1);
	setenv("GOCACHE", cache, 1);
	setenv("GOFLAGS", "", 1);
	const char *build[] = {"/usr/bin/go", "build", "-o", bin, src, NULL};
	h_run r = h_finish(h_spawn("go-build", build), "go-build", 240000);
	cr_assert_eq(r.status, 0, "go build: %s%s", r.out, r.err);
	h_run_free(&r);

	setenv("NATS_URL", H.nats.url, 1);
	const char *run[] = {bin, NULL};
	r = h_finish(h_spawn("go-example", run), "go-example", 30000);
	cr_assert_eq(r.status, 0, "the Go program: %s", r.err);
	cr_assert_str_eq(r.out, want, "the Go program prints what the docs say");
	h_run_free(&r);

	char *rm = h_strf("rm -rf '%s'", dir);
	cr_assert_eq(system(rm), 0);
	free(rm);
	free(cache);
	free(src);
	free(bin);
	free(program);
	free(want);
	free(sec);
}
