/*
 * bank_account.c: a teaching example of libcimevents.
 *
 * Bank accounts as event-sourced aggregates of type "account". Nothing is
 * stored but events; an account's balance is whatever its events add up to.
 *
 *   bank_account [--url URL] open ACC OWNER
 *   bank_account [--url URL] deposit ACC AMOUNT
 *   bank_account [--url URL] withdraw ACC AMOUNT
 *   bank_account [--url URL] balance ACC
 *   bank_account [--url URL] project [--name NAME] [--idle-ms N]
 *                                    [--state FILE] [--rebuild]
 *
 * The events, each with a JSON payload:
 *
 *   AccountOpened  {"owner": "alice"}
 *   MoneyDeposited {"amount": 50}
 *   MoneyWithdrawn {"amount": 20}
 *
 * Amounts are whole numbers (think cents): money is never a float.
 *
 * It shows the two halves of an event-sourced service:
 *
 * 1. The write side (open, deposit, withdraw, balance) goes through the
 *    repository helper: load the account (latest snapshot plus the events
 *    after it), decide on the loaded state, append with the loaded version
 *    as the expected version. If someone else appended in between the
 *    store says wrong_expected_version and nothing was stored: load again
 *    and decide again. Every SNAPSHOT_EVERY events the repository saves a
 *    snapshot, so loading never replays more than that many events.
 *
 * 2. The read side (project) is a durable projection over every account
 *    event, keeping the number of accounts and the total of all balances.
 *    Its position is kept by the library in the CIM-CHECKPOINTS bucket;
 *    delivery is at least once, so it remembers each account's last
 *    version and drops what it has already seen.
 *
 * Exit status: 0 done, 1 refused (no such account, not enough money, ...),
 * 2 bad command line, 3 the store failed.
 *
 * Build: make (it becomes build/examples/bank_account). It uses only the
 * public header and jansson, so outside this tree:
 *   cc bank_account.c $(pkg-config --cflags --libs cimevents jansson)
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cim/events.h>
#include <jansson.h>

#define AGGREGATE_TYPE "account"
#define PATTERN "events.account.>"
/* Small on purpose, so a few deposits show a snapshot being taken. A real
 * service would pick something like 100 or 1000. */
#define SNAPSHOT_EVERY 10
/* How often a command decides again after wrong_expected_version. */
#define MAX_ATTEMPTS 10
/* Large enough for any real amount, small enough that sums never overflow. */
#define MAX_AMOUNT INT64_C(1000000000000)

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_STORE = 3 };

static void
usage(FILE *f)
{
	fputs("usage: bank_account [--url URL] COMMAND ...\n"
	      "\n"
	      "  open ACC OWNER       open account ACC for OWNER\n"
	      "  deposit ACC AMOUNT   put AMOUNT (a whole number) in\n"
	      "  withdraw ACC AMOUNT  take AMOUNT out, if the balance allows\n"
	      "  balance ACC          the balance and version of ACC\n"
	      "  project [--name NAME] [--idle-ms N] [--state FILE] "
	      "[--rebuild]\n"
	      "                       follow every account event, keeping the\n"
	      "                       number of accounts and the total of all\n"
	      "                       balances; stops after N ms without an\n"
	      "                       event (default: on Ctrl-C). --state keeps\n"
	      "                       the totals in FILE between runs (else each\n"
	      "                       run starts from the first event);\n"
	      "                       --rebuild starts from the first event\n"
	      "\n"
	      "--url defaults to $CIM_EVENTS_URL, else "
	      "nats://127.0.0.1:4222.\n"
	      "Exit status: 0 done, 1 refused, 2 usage, 3 store error.\n",
	      f);
}

static int
store_error(const char *what, cim_err rc, const cim_error *err)
{
	fprintf(stderr, "bank_account: %s: %s: %s\n", what, cim_err_name(rc),
		err->message[0] ? err->message : cim_strerror(rc));
	return EXIT_STORE;
}

/* ==== the aggregate ======================================================
 *
 * The state of one account, and the four functions the repository calls
 * with it. The repository never looks inside: it hands the state back to
 * reset, restore, apply and snapshot, and nothing else.
 */
struct account {
	bool opened;
	char owner[128];
	int64_t balance;
};

/* An account with no events: not opened, nothing in it. */
static int
account_reset(void *state)
{
	memset(state, 0, sizeof(struct account));
	return 0;
}

/* A snapshot's state back into memory; the inverse of account_snapshot. */
static int
account_restore(void *state, const char *state_json)
{
	struct account *a = state;
	json_t *j = json_loads(state_json, JSON_DECODE_ANY, NULL);
	const char *owner = NULL;
	json_int_t balance = 0;
	int opened = 0;
	int rc = -1;

	if (j != NULL && json_unpack(j, "{s:b,s:s,s:I}", "opened", &opened,
				     "owner", &owner, "balance",
				     &balance) == 0) {
		a->opened = opened;
		snprintf(a->owner, sizeof(a->owner), "%s", owner);
		a->balance = balance;
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/* The amount of a MoneyDeposited or MoneyWithdrawn event; -1 if its data
 * has none. */
static int64_t
event_amount(const cim_event *ev)
{
	json_t *data = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);
	json_int_t amount = -1;

	if (data == NULL || json_unpack(data, "{s:I}", "amount", &amount) != 0 ||
	    amount < 0 || amount > MAX_AMOUNT)
		amount = -1;
	json_decref(data);
	return amount;
}

/* One event onto the state. This is the only place that knows what an
 * event means, and it never refuses a stored event for a business reason:
 * what is stored has happened. It fails only on data it cannot read. */
static int
account_apply(void *state, const cim_event *ev)
{
	struct account *a = state;
	int64_t amount;

	if (strcmp(ev->event_type, "AccountOpened") == 0) {
		json_t *data = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);
		const char *owner = NULL;
		int rc = -1;

		if (data != NULL &&
		    json_unpack(data, "{s:s}", "owner", &owner) == 0) {
			a->opened = true;
			snprintf(a->owner, sizeof(a->owner), "%s", owner);
			rc = 0;
		}
		json_decref(data);
		return rc;
	}
	if (strcmp(ev->event_type, "MoneyDeposited") == 0) {
		if ((amount = event_amount(ev)) < 0)
			return -1;
		a->balance += amount;
		return 0;
	}
	if (strcmp(ev->event_type, "MoneyWithdrawn") == 0) {
		if ((amount = event_amount(ev)) < 0)
			return -1;
		a->balance -= amount;
		return 0;
	}
	/* An event type this version does not know (a newer program wrote
	 * it): skipping it keeps old readers working. */
	return 0;
}

/* The state as JSON text, for the repository's automatic snapshots. */
static char *
account_snapshot(const void *state)
{
	const struct account *a = state;
	json_t *j = json_pack("{s:b,s:s,s:I}", "opened", a->opened, "owner",
			      a->owner, "balance", (json_int_t)a->balance);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return text;
}

static const cim_aggregate_ops account_ops = {
	.reset = account_reset,
	.restore = account_restore,
	.apply = account_apply,
	.snapshot = account_snapshot,
};

/* ==== the write side =====================================================
 *
 * Every command is the same loop: load, decide, append; on
 * wrong_expected_version start over. A decision is a function of the
 * loaded state and the command's arguments that either refuses (with a
 * reason) or gives the one event to store.
 */
struct command {
	const char *account;
	const char *owner; /* open */
	int64_t amount;    /* deposit, withdraw */
};

/* What a decision gives: either why not, or the event to append. The
 * event's data is built here and freed by the caller. */
struct decision {
	char refused[200]; /* empty: go ahead */
	const char *event_type;
	char *data_json;
};

typedef void (*decide_fn)(const struct account *a, const struct command *c,
			  struct decision *d);

static char *
json_text(json_t *j) /* takes j */
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

static void
decide_open(const struct account *a, const struct command *c,
	    struct decision *d)
{
	if (a->opened) {
		snprintf(d->refused, sizeof(d->refused),
			 "account %s is already open (owner %s)", c->account,
			 a->owner);
		return;
	}
	d->event_type = "AccountOpened";
	d->data_json = json_text(json_pack("{s:s}", "owner", c->owner));
}

static void
decide_deposit(const struct account *a, const struct command *c,
	       struct decision *d)
{
	if (!a->opened) {
		snprintf(d->refused, sizeof(d->refused), "no account %s",
			 c->account);
		return;
	}
	d->event_type = "MoneyDeposited";
	d->data_json = json_text(
		json_pack("{s:I}", "amount", (json_int_t)c->amount));
}

static void
decide_withdraw(const struct account *a, const struct command *c,
		struct decision *d)
{
	if (!a->opened) {
		snprintf(d->refused, sizeof(d->refused), "no account %s",
			 c->account);
		return;
	}
	/* The business rule, checked against the state as loaded. It holds
	 * at the moment of the append too, because the append only succeeds
	 * if nothing was stored since the load. */
	if (a->balance - c->amount < 0) {
		snprintf(d->refused, sizeof(d->refused),
			 "refused: withdrawing %" PRId64 " from %s would leave "
			 "%" PRId64 " (the balance is %" PRId64 ")",
			 c->amount, c->account, a->balance - c->amount,
			 a->balance);
		return;
	}
	d->event_type = "MoneyWithdrawn";
	d->data_json = json_text(
		json_pack("{s:I}", "amount", (json_int_t)c->amount));
}

/* Load, decide, append, with a retry on wrong_expected_version. */
static int
execute(cim_repository *repo, const struct command *c, decide_fn decide)
{
	for (int attempt = 1;; attempt++) {
		struct account a;
		cim_aggregate agg;
		struct decision d = {.refused = ""};
		cim_new_event ev = {0};
		cim_error err;
		cim_err rc;

		rc = cim_repository_load(repo, c->account, &a, &agg, &err);
		if (rc != CIM_ERR_OK)
			return store_error("load", rc, &err);

		decide(&a, c, &d);
		if (d.refused[0] != '\0') {
			fprintf(stderr, "bank_account: %s\n", d.refused);
			return EXIT_REFUSED;
		}
		if (d.data_json == NULL) {
			fprintf(stderr, "bank_account: out of memory\n");
			return EXIT_STORE;
		}

		/* agg.version, the version the decision was made on, is the
		 * expected version: the append is stored only if the account
		 * is still there. */
		ev.event_type = d.event_type;
		ev.data_json = d.data_json;
		rc = cim_repository_append(repo, &agg, &a, &ev, 1, NULL, &err);
		free(d.data_json);

		if (rc == CIM_ERR_WRONG_EXPECTED_VERSION &&
		    attempt < MAX_ATTEMPTS) {
			/* Someone else changed the account since our load;
			 * nothing was stored. Decide again on fresh state:
			 * the money may no longer be there. */
			fprintf(stderr,
				"bank_account: %s changed meanwhile (now at "
				"version %" PRIu64 "); deciding again\n",
				c->account, err.current);
			continue;
		}
		if (rc != CIM_ERR_OK)
			return store_error("append", rc, &err);

		/* On success the repository has applied the event to a and
		 * moved agg on, and may have saved a snapshot. */
		printf("%s %s: balance %" PRId64 ", version %" PRIu64 "\n",
		       d.event_type, c->account, a.balance, agg.version);
		if (agg.snapshot_version == agg.version)
			printf("snapshot saved at version %" PRIu64 "\n",
			       agg.version);
		if (agg.snapshot_error != CIM_ERR_OK)
			/* Not a failure: the events are stored; the snapshot
			 * is tried again after the next append. */
			fprintf(stderr,
				"bank_account: note: the snapshot was not "
				"saved (%s)\n",
				cim_err_name(agg.snapshot_error));
		return 0;
	}
}

static int
show_balance(cim_repository *repo, const char *account)
{
	struct account a;
	cim_aggregate agg;
	cim_error err;
	cim_err rc;

	/* The repository reads the latest snapshot and only the events after
	 * it: agg says how much of each it took. */
	rc = cim_repository_load(repo, account, &a, &agg, &err);
	if (rc != CIM_ERR_OK)
		return store_error("load", rc, &err);
	if (!a.opened) {
		fprintf(stderr, "bank_account: no account %s\n", account);
		return EXIT_REFUSED;
	}
	printf("%s (owner %s): balance %" PRId64 ", version %" PRIu64 "\n",
	       account, a.owner, a.balance, agg.version);
	printf("loaded from the snapshot at version %" PRIu64
	       " and %zu event(s) after it\n",
	       agg.snapshot_version, agg.events_applied);
	return 0;
}

/* A positive whole number up to MAX_AMOUNT, or -1. */
static int64_t
parse_amount(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > MAX_AMOUNT)
		return -1;
	return v;
}

static int connect_store(const char *url, cim_client **client);

static int
write_side(const char *url, int argc, char **argv)
{
	const char *cmd = argv[0];
	cim_repository_options opts = {.snapshot_threshold = SNAPSHOT_EVERY};
	struct command c = {.account = argc > 1 ? argv[1] : NULL};
	cim_client *client;
	cim_repository *repo;
	cim_error err;
	cim_err rc;
	int status;

	if (strcmp(cmd, "balance") == 0 ? argc != 2 : argc != 3) {
		fprintf(stderr, "bank_account: %s needs %s\n", cmd,
			strcmp(cmd, "balance") == 0 ? "ACC"
			: strcmp(cmd, "open") == 0  ? "ACC OWNER"
						    : "ACC AMOUNT");
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "open") == 0)
		c.owner = argv[2];
	else if (strcmp(cmd, "balance") != 0 &&
		 (c.amount = parse_amount(argv[2])) < 0) {
		fprintf(stderr, "bank_account: AMOUNT must be a whole number "
				"from 1 to %" PRId64 ", not '%s'\n",
			MAX_AMOUNT, argv[2]);
		return EXIT_USAGE;
	}

	if ((status = connect_store(url, &client)) != 0)
		return status;
	rc = cim_repository_open(&repo, client, AGGREGATE_TYPE, &account_ops,
				 &opts, &err);
	if (rc != CIM_ERR_OK) {
		cim_client_destroy(client);
		return store_error("repository", rc, &err);
	}
	if (strcmp(cmd, "open") == 0)
		status = execute(repo, &c, decide_open);
	else if (strcmp(cmd, "deposit") == 0)
		status = execute(repo, &c, decide_deposit);
	else if (strcmp(cmd, "withdraw") == 0)
		status = execute(repo, &c, decide_withdraw);
	else
		status = show_balance(repo, c.account);
	cim_repository_close(repo);
	cim_client_destroy(client);
	return status;
}

/* ==== the read side: a durable projection ================================
 *
 * The projection's state is, per account, the last version applied and
 * the balance; the number of accounts and the total follow from it. It
 * lives in memory, and with --state it is also written to a file after
 * every event, before the event counts as handled.
 *
 * That order is what makes it correct. The library writes the checkpoint
 * (the stream position) now and then, only ever covering events the
 * handler has returned from, so the state on disk is never behind the
 * checkpoint. After a crash the projection resumes at the checkpoint and
 * some events come again; their versions are at or below what the state
 * remembers, so they are recognised and dropped. At least once delivery
 * plus dropping repeats by version gives the effect of exactly once.
 *
 * Without a state file (or with --rebuild), the state starts empty, and a
 * checkpoint from an earlier run would skip the events that state needs:
 * the projection is reset (cim_projection_reset) and rebuilt from the
 * first event.
 */
struct projection {
	json_t *accounts; /* {"acc-1": {"version": 3, "balance": 150}, ...} */
	const char *state_file;
	uint64_t handled, repeats;
};

static cim_projection *running; /* for the signal handler */

static void
on_signal(int sig)
{
	(void)sig;
	if (running != NULL)
		cim_projection_stop(running); /* safe in a signal handler */
}

static void
totals(const struct projection *p, size_t *count, int64_t *total)
{
	const char *id;
	json_t *acc;

	*count = 0;
	*total = 0;
	json_object_foreach(p->accounts, id, acc) {
		(*count)++;
		*total += json_integer_value(json_object_get(acc, "balance"));
	}
}

/* Writes the state to a new file and renames it over the old one, so a
 * crash leaves either the old state or the new, never half of one. */
static int
save_state(const struct projection *p)
{
	char tmp[4096];
	json_t *j;
	int rc;

	if (p->state_file == NULL)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", p->state_file);
	j = json_pack("{s:O}", "accounts", p->accounts);
	rc = j != NULL && json_dump_file(j, tmp, JSON_COMPACT) == 0 &&
			     rename(tmp, p->state_file) == 0
		     ? 0
		     : -1;
	json_decref(j);
	if (rc != 0)
		fprintf(stderr, "bank_account: cannot write %s\n",
			p->state_file);
	return rc;
}

/* 1: state loaded; 0: no file (start empty); -1: a file that cannot be
 * read (refuse to guess). */
static int
load_state(struct projection *p)
{
	json_error_t jerr;
	json_t *j, *accounts;

	if (p->state_file == NULL)
		return 0;
	if ((j = json_load_file(p->state_file, 0, &jerr)) == NULL) {
		FILE *f = fopen(p->state_file, "r");

		if (f == NULL && errno == ENOENT)
			return 0;
		if (f != NULL)
			fclose(f);
		fprintf(stderr, "bank_account: %s: %s\n", p->state_file,
			jerr.text);
		return -1;
	}
	accounts = json_object_get(j, "accounts");
	if (!json_is_object(accounts)) {
		fprintf(stderr, "bank_account: %s holds no \"accounts\"\n",
			p->state_file);
		json_decref(j);
		return -1;
	}
	json_decref(p->accounts);
	p->accounts = json_incref(accounts);
	json_decref(j);
	return 1;
}

/* The handler: called once per event, in stream order. */
static int
project_event(void *ctx, const cim_event *ev)
{
	struct projection *p = ctx;
	json_t *acc = json_object_get(p->accounts, ev->aggregate_id);
	uint64_t seen = acc ? (uint64_t)json_integer_value(
				      json_object_get(acc, "version"))
			    : 0;
	int64_t balance =
		acc ? json_integer_value(json_object_get(acc, "balance")) : 0;
	int64_t amount = 0;
	size_t count;
	int64_t total;

	/* A repeat: delivered before, and already in the state. */
	if (ev->version <= seen) {
		p->repeats++;
		printf("seq %" PRIu64 ": %s v%" PRIu64 " %s: seen already, "
		       "ignored\n",
		       ev->seq, ev->aggregate_id, ev->version, ev->event_type);
		return 0;
	}
	/* A gap cannot come from the library (it never skips an event); it
	 * means the state file is older than the checkpoint (restored from a
	 * backup, say). Stop rather than count wrong. */
	if (ev->version != seen + 1) {
		fprintf(stderr,
			"bank_account: %s jumps from version %" PRIu64
			" to %" PRIu64 ": the state is behind the "
			"checkpoint; run again with --rebuild\n",
			ev->aggregate_id, seen, ev->version);
		return -1;
	}

	if (strcmp(ev->event_type, "MoneyDeposited") == 0 ||
	    strcmp(ev->event_type, "MoneyWithdrawn") == 0) {
		if ((amount = event_amount(ev)) < 0) {
			fprintf(stderr, "bank_account: seq %" PRIu64
					": no amount in %s\n",
				ev->seq, ev->data_json);
			return -1;
		}
		if (strcmp(ev->event_type, "MoneyWithdrawn") == 0)
			amount = -amount;
	}
	balance += amount;
	if (json_object_set_new(p->accounts, ev->aggregate_id,
				json_pack("{s:I,s:I}", "version",
					  (json_int_t)ev->version, "balance",
					  (json_int_t)balance)) != 0 ||
	    save_state(p) != 0)
		return -1; /* not handled: it comes again next run */

	p->handled++;
	totals(p, &count, &total);
	printf("seq %" PRIu64 ": %s v%" PRIu64 " %s %+" PRId64
	       " -> balance %" PRId64 "; %zu account(s), total %" PRId64 "\n",
	       ev->seq, ev->aggregate_id, ev->version, ev->event_type, amount,
	       balance, count, total);
	fflush(stdout);
	return 0;
}

/* An event whose CID or prev link does not check out. Returning 0 would
 * skip it and go on; a bank would rather stop and have someone look. */
static int
on_check_failure(void *ctx, const cim_event *ev, const cim_error *why)
{
	(void)ctx;
	fprintf(stderr, "bank_account: seq %" PRIu64 " (%s v%" PRIu64
			") fails its integrity check: %s\n",
		ev ? ev->seq : 0, ev ? ev->aggregate_id : "?",
		ev ? ev->version : 0, why->message);
	return 1;
}

/* --name NAME --state FILE --idle-ms N --rebuild */
static int
project_args(int argc, char **argv, cim_projection_options *o,
	     struct projection *p, int64_t *idle_ms, bool *rebuild)
{
	for (int i = 1; i < argc; i++) {
		char *end;

		if (strcmp(argv[i], "--rebuild") == 0) {
			*rebuild = true;
		} else if (i + 1 < argc && strcmp(argv[i], "--name") == 0) {
			o->name = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--state") == 0) {
			p->state_file = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--idle-ms") == 0) {
			*idle_ms = strtoll(argv[++i], &end, 10);
			if (*end != '\0' || end == argv[i] || *idle_ms < 0) {
				fprintf(stderr, "bank_account: --idle-ms needs "
						"milliseconds, not '%s'\n",
					argv[i]);
				return EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "bank_account: project: unexpected "
					"'%s'\n",
				argv[i]);
			return EXIT_USAGE;
		}
	}
	return 0;
}

static int
run_projection(cim_client *client, const cim_projection_options *o,
	       struct projection *p, bool resume, int64_t idle_ms)
{
	cim_projection *proj;
	cim_error err;
	cim_err rc;
	size_t count;
	int64_t total;
	int status = 0;

	/* State and position go together: no state, no position. The
	 * checkpoint goes first, then the old state file is replaced by the
	 * empty state: a crash in between leaves an old state with no
	 * position, which replays everything and drops it all as repeats. */
	if (!resume) {
		rc = cim_projection_reset(client, o->name, NULL, &err);
		if (rc != CIM_ERR_OK)
			return store_error("reset", rc, &err);
		if (save_state(p) != 0)
			return EXIT_STORE;
		printf("projection %s: starting from the first event\n",
		       o->name);
	}

	rc = cim_projection_open(client, o, &proj, &err);
	if (rc != CIM_ERR_OK)
		return store_error("projection", rc, &err);
	if (resume)
		printf("projection %s: resuming after stream sequence %" PRIu64
		       "\n",
		       o->name, cim_projection_position(proj));

	/* Ctrl-C asks the run to return; it then closes cleanly. */
	running = proj;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	rc = cim_projection_run(proj, project_event, p, idle_ms, &err);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	running = NULL;
	if (rc != CIM_ERR_OK)
		status = store_error("projection", rc, &err);

	totals(p, &count, &total);
	printf("%zu account(s), total balance %" PRId64 " (%" PRIu64
	       " event(s) handled, %" PRIu64
	       " repeat(s) ignored, position %" PRIu64 ")\n",
	       count, total, p->handled, p->repeats,
	       cim_projection_position(proj));
	/* Close writes the final checkpoint: the next run starts after the
	 * last event handled here. */
	cim_projection_close(proj);
	return status;
}

static int
project(const char *url, int argc, char **argv)
{
	struct projection p = {.accounts = NULL};
	cim_projection_options o = {
		.name = "bank-totals",
		.pattern = PATTERN,
		.on_check_failure = on_check_failure,
	};
	int64_t idle_ms = -1; /* follow until Ctrl-C */
	bool rebuild = false;
	cim_client *client;
	int status, have;

	if ((status = project_args(argc, argv, &o, &p, &idle_ms, &rebuild)) !=
	    0)
		return status;
	if ((p.accounts = json_object()) == NULL)
		return EXIT_STORE;
	if ((have = rebuild ? 0 : load_state(&p)) < 0)
		status = EXIT_STORE;
	else if ((status = connect_store(url, &client)) == 0) {
		status = run_projection(client, &o, &p, have > 0, idle_ms);
		cim_client_destroy(client);
	}
	json_decref(p.accounts);
	return status;
}

/* ==== main =============================================================== */

/* One client for the whole program: it is thread-safe and holds the NATS
 * connection. NULL url: nats://127.0.0.1:4222. */
static int
connect_store(const char *url, cim_client **client)
{
	cim_error err;
	cim_err rc = cim_client_connect(client, url && *url ? url : NULL, NULL,
					&err);

	return rc == CIM_ERR_OK ? 0 : store_error("connect", rc, &err);
}

int
main(int argc, char **argv)
{
	const char *url = getenv("CIM_EVENTS_URL");
	int i = 1;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 ||
			 strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "--url") == 0) {
		url = argv[2];
		i = 3;
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[i], "project") == 0)
		return project(url, argc - i, argv + i);
	if (strcmp(argv[i], "open") == 0 || strcmp(argv[i], "deposit") == 0 ||
	    strcmp(argv[i], "withdraw") == 0 || strcmp(argv[i], "balance") == 0)
		return write_side(url, argc - i, argv + i);
	fprintf(stderr, "bank_account: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return EXIT_USAGE;
}
