/*
 * main.c: the same-run benchmark of cim-eventsd (issue 3).
 *
 *   bench --daemon PATH [--relay PATH] [--json FILE] [--quick] [--no-growth]
 *   bench --url nats://127.0.0.1:PORT [--json FILE] [--quick] [--no-growth]
 *
 * Without --url it starts its own nats-server (free loopback port, store in
 * a temporary directory) and its own daemon, and stops both at the end.
 * See bench.h for what is where.
 */
#include "bench.h"

#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cid.h"

config C;
volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench [--daemon PATH | --url URL] [--relay PATH] [--json FILE] "
		"[--quick] [--no-growth]\n"
		"  --daemon PATH  cim-eventsd to start (with its own nats-server)\n"
		"  --relay PATH   the relay floor program (default: bench-relay\n"
		"                 beside this program)\n"
		"  --compare NAME=PATH  another cim-eventsd measured in the same\n"
		"                 append runs (its own prefix and stream on the\n"
		"                 same server); up to 4\n"
		"  --url URL      use a running nats-server and daemon instead\n"
		"                 (no memory or restart figures)\n"
		"  --json FILE    also write the results as JSON\n"
		"  --quick        small counts: a smoke test of a few seconds\n"
		"  --no-growth    skip the growth, memory and restart part\n"
		"  --growth-only  only that part (a development aid: no floor,\n"
		"                 so no ratios)\n"
		"  --appends-only only the append runs and the relay's (to profile\n"
		"                 the daemon under load: no other floor)\n"
		"  --reads-only   only the reads and their floors\n"
		"  --crypt-only   only the encrypted-against-plain part (its own\n"
		"                 floors: the plain figures of the same run)\n");
}

/* ---- the summary table ------------------------------------------------------------- */

static json_t *summary;

static void row(const char *figure, double ours, const char *unit,
		double floor, const char *floor_what, bool valid)
{
	char o[32], f[32], r[32];
	double ratio = NAN;
	json_t *j = json_object();

	if (isfinite(ours) && isfinite(floor) && floor > 0)
		ratio = ours / floor;
	if (!valid)
		snprintf(o, sizeof o, "INVALID");
	else if (isfinite(ours))
		snprintf(o, sizeof o, "%.1f", ours);
	else
		snprintf(o, sizeof o, "-");
	if (isfinite(floor))
		snprintf(f, sizeof f, "%.1f", floor);
	else
		snprintf(f, sizeof f, "-");
	if (valid && isfinite(ratio))
		snprintf(r, sizeof r, "%.2f", ratio);
	else
		snprintf(r, sizeof r, "-");
	printf("%-46s %12s %-6s %12s %8s  %s\n", figure, o, unit, f, r,
	       floor_what ? floor_what : "");
	json_object_set_new(j, "figure", json_string(figure));
	json_object_set_new(j, "ours", valid && isfinite(ours) ? json_real(ours)
							       : json_null());
	json_object_set_new(j, "unit", json_string(unit));
	json_object_set_new(j, "floor", isfinite(floor) ? json_real(floor) : json_null());
	json_object_set_new(j, "floor_is", json_string(floor_what ? floor_what : ""));
	json_object_set_new(j, "ratio", valid && isfinite(ratio) ? json_real(ratio)
								 : json_null());
	json_object_set_new(j, "valid", json_boolean(valid));
	json_array_append_new(summary, j);
}

static bool lat_ok(const lat *l) { return l->ran && l->errors == 0 && l->n > 0; }

/* CPU microseconds the daemon (or the relay) spent per event of a run. */
static double cpu_per(const rate *r)
{
	return r->per_s > 0 && isfinite(r->cpu_daemon) ? r->cpu_daemon * 1e4 / r->per_s : NAN;
}

/* A row for the parts in files of their own (crypt.c). */
void bench_row(const char *figure, double ours, const char *unit, double floor,
	       const char *floor_what, bool valid)
{
	row(figure, ours, unit, floor, floor_what, valid);
}

static void final_table(const floor_res *f, const store_res *s,
			const growth_res *g, const crypt_res *kr, json_t *machine)
{
	double rr_js50 = f->rr.p50 + f->js_sync.p50;
	double rr_js99 = f->rr.p99 + f->js_sync.p99;
	char name[96], best[96];

	snprintf(best, sizeof best, "js async (%s)",
		 f->js_async_best_conn ? f->js_async_best_conn : "-");
	printf("\n==== cim-eventsd same-run benchmark%s ====\n",
	       C.quick ? " (--quick: small counts)" : "");
	printf("machine: %s, %lld cores, %s; %s; libnats %s; %s\n",
	       json_string_value(json_object_get(machine, "cpu")),
	       (long long)json_integer_value(json_object_get(machine, "cores")),
	       json_string_value(json_object_get(machine, "kernel")),
	       json_string_value(json_object_get(machine, "nats_server")),
	       json_string_value(json_object_get(machine, "libnats")),
	       json_string_value(json_object_get(machine, "date")));
	printf("%-46s %12s %-6s %12s %8s  %s\n", "figure", "ours", "unit",
	       "floor", "ratio", "floor is");

	row("floor: echo round trip p50", f->rr.p50, "us", NAN, NULL, lat_ok(&f->rr));
	row("floor: echo round trip p99", f->rr.p99, "us", NAN, NULL, lat_ok(&f->rr));
	row("floor: js_Publish p50", f->js_sync.p50, "us", NAN, NULL, lat_ok(&f->js_sync));
	row("floor: js_Publish p99", f->js_sync.p99, "us", NAN, NULL, lat_ok(&f->js_sync));
	row("floor: js_PublishAsync, SendAsap", f->js_async_asap.per_s, "msg/s",
	    NAN, NULL, f->js_async_asap.valid);
	row("floor: js_PublishAsync, default conn", f->js_async_default.per_s,
	    "msg/s", NAN, NULL, f->js_async_default.valid);

	row("floor: shaped async, one event each", f->shaped1.per_s, "msg/s",
	    f->js_async_best, best, f->shaped1.valid);
	row("floor: shaped async, batches of 100", f->shaped100.per_s, "msg/s",
	    f->js_async_best, best, f->shaped100.valid);

	row("append p50, 1 in flight", s->append1.p50, "us", rr_js50,
	    "rr p50 + js_Publish p50", lat_ok(&s->append1));
	row("append p99, 1 in flight", s->append1.p99, "us", rr_js99,
	    "rr p99 + js_Publish p99", lat_ok(&s->append1));
	for (int k = 0; k < C.ncmp; k++) {
		if (!s->cmp_append1[k].ran)
			continue;
		snprintf(name, sizeof name, "  [%s] append p50, 1 in flight", C.cmp[k].name);
		row(name, s->cmp_append1[k].p50, "us", rr_js50, "rr p50 + js_Publish p50",
		    lat_ok(&s->cmp_append1[k]));
		snprintf(name, sizeof name, "  [%s] append p99, 1 in flight", C.cmp[k].name);
		row(name, s->cmp_append1[k].p99, "us", rr_js99, "rr p99 + js_Publish p99",
		    lat_ok(&s->cmp_append1[k]));
	}
	for (int i = 0; i < s->n_tp; i++) {
		const rate *rl = &s->relay[i];
		double rl_cpu = rl->ran && rl->valid ? cpu_per(rl) : NAN;

		if (s->tp_batch[i] == 1) {
			if (rl->ran)
				row(s->relay_name[i], rl->per_s, "req/s", f->shaped1.per_s,
				    "shaped async, one event", rl->valid);
			row(s->tp_name[i], s->tp[i].per_s, "ev/s",
			    rl->ran && rl->valid ? rl->per_s : NAN,
			    "relay, same in flight", s->tp[i].valid);
		} else {
			row(s->tp_name[i], s->tp[i].per_s, "ev/s",
			    f->shaped100.valid ? f->shaped100.per_s : NAN,
			    "shaped async, batches", s->tp[i].valid);
		}
		row("  its CPU per event", cpu_per(&s->tp[i]), "us",
		    s->tp_batch[i] == 1 ? rl_cpu : NAN,
		    s->tp_batch[i] == 1 ? "relay's per request" : NULL, s->tp[i].valid);
		for (int k = 0; k < C.ncmp; k++) {
			const rate *c = &s->cmp_tp[k][i];
			double fl = s->tp_batch[i] == 1 ? (rl->ran && rl->valid ? rl->per_s : NAN)
							: (f->shaped100.valid ? f->shaped100.per_s : NAN);
			if (!c->ran)
				continue;
			snprintf(name, sizeof name, "  [%s] %s", C.cmp[k].name, s->tp_name[i]);
			row(name, c->per_s, "ev/s", fl,
			    s->tp_batch[i] == 1 ? "relay, same in flight" : "shaped async, batches",
			    c->valid);
			row("    its CPU per event", cpu_per(c), "us",
			    s->tp_batch[i] == 1 ? rl_cpu : NAN,
			    s->tp_batch[i] == 1 ? "relay's per request" : NULL, c->valid);
		}
	}
	if (!s->get1k.ran)
		goto growth;
	row("floor: bare pull of those 1,000 p50", s->bare1k.p50, "us", NAN, NULL,
	    lat_ok(&s->bare1k));
	row("floor: bare pull of those 10,000 p50", s->bare10k.p50, "us", NAN, NULL,
	    lat_ok(&s->bare10k));
	row("get 1,000 events, all pages, p50", s->get1k.p50, "us", s->bare1k.p50,
	    "bare pull of 1,000", lat_ok(&s->get1k));
	row("floor: a reply of get's size p50", s->rr_get1k.p50, "us", NAN, NULL,
	    lat_ok(&s->rr_get1k));
	row("floor: get's work on the 1,000 alone p50", s->work1k.p50, "us", NAN, NULL,
	    lat_ok(&s->work1k));
	row("  get 1,000 p50, vs pull + work + reply", s->get1k.p50, "us",
	    lat_ok(&s->rr_get1k) && lat_ok(&s->work1k)
		    ? s->bare1k.p50 + s->work1k.p50 + s->rr_get1k.p50
		    : NAN,
	    "the three measured alone", lat_ok(&s->get1k));
	row("get 1,000 events, all pages, p99", s->get1k.p99, "us", NAN, NULL,
	    lat_ok(&s->get1k));
	row("head p50", s->head.p50, "us", f->rr.p50, "rr p50", lat_ok(&s->head));
	row("head p99", s->head.p99, "us", f->rr.p99, "rr p99", lat_ok(&s->head));
	row("validate 1,000 events p50", s->val1k.p50, "us", s->bare1k.p50,
	    "bare pull of 1,000", lat_ok(&s->val1k));
	row("validate 1,000 events p99", s->val1k.p99, "us", NAN, NULL, lat_ok(&s->val1k));
	row("floor: CIDs of those 10,000 alone p50", s->hash10k.p50, "us", NAN, NULL,
	    lat_ok(&s->hash10k));
	row("validate 10,000 events p50", s->val10k.p50, "us",
	    lat_ok(&s->hash10k) ? s->bare10k.p50 + s->hash10k.p50 : NAN,
	    "bare pull + CIDs of 10,000", lat_ok(&s->val10k));
	row("validate 10,000 events p99", s->val10k.p99, "us", NAN, NULL, lat_ok(&s->val10k));
	row("load, snapshot at 9,990 + 10 events, p50", s->load_long.p50, "us",
	    s->load_short.p50, "same after a snapshot at 90",
	    lat_ok(&s->load_long) && lat_ok(&s->load_short));

growth:
	crypt_rows(kr);
	if (g->ran) {
		for (int i = 0; i < g->n_pt; i++) {
			const growth_point *p = &g->pt[i];

			snprintf(name, sizeof name, "append p50 @ %ld stored%s",
				 p->stored, p->reached ? "" : " (short)");
			row(name, p->append1.p50, "us", rr_js50,
			    "rr p50 + js_Publish p50", lat_ok(&p->append1));
			snprintf(name, sizeof name, "get 100 (new agg) p50 @ %ld",
				 p->stored);
			row(name, p->get_new.p50, "us", NAN, NULL, lat_ok(&p->get_new));
			snprintf(name, sizeof name, "get 100 (first agg) p50 @ %ld",
				 p->stored);
			row(name, p->get_old.p50, "us", NAN, NULL, lat_ok(&p->get_old));
		}
		if (g->fill.ran)
			row("fill: 1-event appends, 256 in flight", g->fill.per_s,
			    "ev/s", f->js_async_best, best, g->fill.valid);
		if (g->mem_ran) {
			snprintf(name, sizeof name, "RSS per aggregate (%ld aggs)",
				 g->aggregates);
			row(name, g->bytes_per_agg, "B", NAN, NULL,
			    isfinite(g->bytes_per_agg));
			bool all = g->restart_ok && g->restart_heads == g->aggregates &&
				   g->restart_head_ok == g->restart_head_checks;

			row("floor: bare pull of the whole stream", g->scan_bare_ms, "ms",
			    NAN, NULL, g->scan_msgs > 0);
			row("floor: the same, headers parsed", g->scan_headers_ms, "ms",
			    NAN, NULL, g->scan_msgs > 0);
			row("restart to first answered info", g->restart_ms, "ms",
			    g->scan_headers_ms, "pull with headers", all);
			row("restarted daemon: aggregates it knows",
			    (double)g->restart_heads, "aggs", (double)g->aggregates,
			    "aggregates before restart", g->restart_ok);
			row("restarted daemon: RSS per aggregate",
			    g->bytes_per_agg_restart, "B", NAN, NULL, all);
		}
	}
	printf("ratio = ours / floor. INVALID: that measurement had error "
	       "replies or timeouts (see its line above and the JSON).\n");
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	procs P;
	bool have_procs = false;
	floor_res F;
	store_res S;
	growth_res G;
	crypt_res K;
	json_t *root = json_object(), *machine, *info = NULL, *logs = json_object();
	natsConnection *nc = NULL;
	struct sigaction sa;
	int rc = 0;
	double t_start = now_s();

	memset(&C, 0, sizeof C);
	memset(&F, 0, sizeof F);
	memset(&S, 0, sizeof S);
	memset(&G, 0, sizeof G);
	memset(&K, 0, sizeof K);
	C.growth = true;
	C.prefix = "cim.events.v1";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--url") == 0 && i + 1 < argc)
			C.url = argv[++i];
		else if (strcmp(a, "--daemon") == 0 && i + 1 < argc)
			C.daemon_bin = argv[++i];
		else if (strcmp(a, "--relay") == 0 && i + 1 < argc)
			C.relay_bin = argv[++i];
		else if (strcmp(a, "--compare") == 0 && i + 1 < argc &&
			 strchr(argv[i + 1], '=') != NULL && C.ncmp < MAX_COMPARE) {
			char *nv = argv[++i], *eq = strchr(nv, '=');
			*eq = '\0';
			C.cmp[C.ncmp].name = nv;
			C.cmp[C.ncmp++].bin = eq + 1;
		}
		else if (strcmp(a, "--json") == 0 && i + 1 < argc)
			C.json_path = argv[++i];
		else if (strcmp(a, "--quick") == 0)
			C.quick = true;
		else if (strcmp(a, "--no-growth") == 0)
			C.growth = false;
		else if (strcmp(a, "--growth-only") == 0)
			C.growth_only = true;
		else if (strcmp(a, "--crypt-only") == 0)
			C.crypt_only = C.growth_only = true;
		else if (strcmp(a, "--appends-only") == 0)
			C.appends_only = true;
		else if (strcmp(a, "--reads-only") == 0)
			C.reads_only = true;
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (C.url == NULL && C.daemon_bin == NULL) {
		fprintf(stderr, "bench: give --daemon PATH or --url URL\n");
		usage(stderr);
		return 2;
	}
	C.own = C.url == NULL;
	if (C.relay_bin == NULL) {
		static char relay[4096];
		char self[4096];

		snprintf(self, sizeof self, "%s", argv[0]);
		snprintf(relay, sizeof relay, "%s/bench-relay", dirname(self));
		C.relay_bin = relay;
	}
	snprintf(C.tag, sizeof C.tag, "%lx%x", (unsigned long)time(NULL),
		 (unsigned)getpid() & 0xffff);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (nats_Open(-1) != NATS_OK) {
		fprintf(stderr, "bench: nats_Open failed\n");
		return 1;
	}
	machine = machine_info();
	json_object_set_new(root, "machine", machine);
	summary = json_array();

	if (C.own) {
		if (procs_init(&P, C.daemon_bin) != 0)
			return 1;
		have_procs = true;
		C.P = &P;
		{
			struct stat st;
			char when[64] = "?";

			if (stat(C.daemon_bin, &st) == 0)
				strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ",
					 gmtime(&st.st_mtime));
			printf("daemon %s (built %s), run from a copy in %s\n",
			       C.daemon_bin, when, P.dir);
			json_object_set_new(machine, "daemon_binary_mtime",
					    json_string(when));
		}
		printf("starting nats-server and the daemon...\n");
		fflush(stdout);
		if (crypt_setup(P.dir) != 0 || nats_start(&P, "js") != 0 ||
		    daemon_start(&P, 30000, NULL) != 0) {
			rc = 1;
			goto end;
		}
		C.url = P.url;
		printf("  nats-server pid %d on %s, cim-eventsd pid %d, RSS %ld KiB\n",
		       (int)P.nats_pid, P.url, (int)P.daemon_pid,
		       rss_kib(P.daemon_pid));
		for (int k = 0; k < C.ncmp; k++)
			if (compare_start(&P, &C.cmp[k]) == 0)
				printf("  compared: %s (%s) pid %d, prefix %s\n", C.cmp[k].name,
				       C.cmp[k].bin, (int)C.cmp[k].pid, C.cmp[k].prefix);
	}
	nc = connect_nats(C.url, true);
	if (nc == NULL || (info = daemon_info(nc, C.prefix, 5000)) == NULL) {
		fprintf(stderr, "bench: no daemon answers %s.info at %s\n",
			C.prefix, C.url);
		rc = 1;
		goto end;
	}
	{
		json_t *st = json_object_get(json_object_get(info, "settings"),
					     "stream");

		json_t *h = json_object_get(json_object_get(info, "settings"), "hash");

		snprintf(C.stream, sizeof C.stream, "%s",
			 json_is_string(st) ? json_string_value(st) : "CIM-EVENTS");
		C.hash_code = json_is_string(h) && strcmp(json_string_value(h), "sha2-256") == 0
				      ? CIM_MH_SHA2_256
				      : CIM_MH_BLAKE2B_256;
		json_object_set(root, "daemon_info_at_start", info);
	}
	natsConnection_Destroy(nc);
	nc = NULL;
	{
		json_t *c = json_object();

		json_object_set_new(c, "url", json_string(C.own ? "own" : C.url));
		json_object_set_new(c, "quick", json_boolean(C.quick));
		json_object_set_new(c, "growth", json_boolean(C.growth));
		json_object_set_new(c, "tag", json_string(C.tag));
		json_object_set_new(c, "event_data", json_string(event_data()));
		json_object_set_new(root, "config", c);
	}

	if (C.appends_only || C.reads_only) {
		F.rr.p50 = F.rr.p99 = F.js_sync.p50 = F.js_sync.p99 = NAN;
		F.js_async_best = NAN;
		if (C.appends_only)
			run_appends(&S, root);
		else
			run_reads(&S, root);
		C.growth = false;
	} else if (!C.growth_only) {
		run_floor(&F, root);
		if (!g_stop)
			run_appends(&S, root);
		if (!g_stop)
			run_reads(&S, root);
		if (!g_stop)
			run_crypt(&K, root);
		if (!g_stop)
			run_bytype(root);
		if (!g_stop)
			run_seal_cost(root);
	} else {
		F.rr.p50 = F.rr.p99 = F.js_sync.p50 = F.js_sync.p99 = NAN;
		F.js_async_best = NAN;
		if (C.crypt_only)
			run_crypt(&K, root);
	}
	if (C.growth && !C.crypt_only && !g_stop)
		run_growth(&G, have_procs ? &P : NULL, root);
	else
		json_object_set_new(root, "growth", json_pack("{s:b}", "skipped", 1));

end:
	natsConnection_Destroy(nc);
	if (have_procs) {
		long nw, dw;
		json_t *na = json_array(), *da = json_array();

		for (int k = 0; k < C.ncmp; k++)
			compare_stop(&C.cmp[k]);
		daemon_stop(&P);
		nats_stop(&P);
		printf("\nwarnings and errors in the logs:\n");
		dw = log_scan(P.daemon_log, "cim-eventsd", da);
		nw = log_scan(P.nats_log, "nats-server", na);
		{
			json_t *hl = json_array();

			printf("daemon start-up lines:\n");
			log_grep(P.daemon_log, "heads loaded", "cim-eventsd", hl);
			json_object_set_new(logs, "daemon_startup_lines", hl);
		}
		printf("  cim-eventsd: %ld, nats-server: %ld\n", dw, nw);
		json_object_set_new(logs, "daemon_warn_error_lines", json_integer(dw));
		json_object_set_new(logs, "daemon_first", da);
		json_object_set_new(logs, "nats_warn_error_lines", json_integer(nw));
		json_object_set_new(logs, "nats_first", na);
		procs_cleanup(&P);
	}
	json_object_set_new(root, "logs", logs);
	if (rc == 0) {
		final_table(&F, &S, &G, &K, machine);
		json_object_set_new(root, "summary", summary);
	} else {
		json_decref(summary);
	}
	json_object_set_new(root, "interrupted", json_boolean(g_stop != 0));
	json_object_set_new(root, "wall_seconds", json_real(round(now_s() - t_start)));
	printf("wall time %.0f s%s\n", now_s() - t_start,
	       g_stop ? " (interrupted)" : "");
	if (C.json_path) {
		if (json_dump_file(root, C.json_path, JSON_INDENT(1)) != 0) {
			fprintf(stderr, "bench: cannot write %s\n", C.json_path);
			rc = 1;
		} else {
			printf("results written to %s\n", C.json_path);
		}
	}
	json_decref(info);
	json_decref(root);
	nats_Close();
	return rc ? rc : g_stop ? 130 : 0;
}
