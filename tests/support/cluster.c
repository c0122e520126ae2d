/*
 * cluster.c: nats-server nodes from config files (see cluster.h).
 */
#include "cluster.h"
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NODE_START_MS 10000
#define JS_READY_MS 30000

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int write_conf(const hc_cluster *c, int i, const char *extra_js)
{
	const hc_node *nd = &c->node[i];
	FILE *f = fopen(nd->conf, "w");

	if (f == NULL) {
		fprintf(stderr, "cluster: %s: %s\n", nd->conf, strerror(errno));
		return -1;
	}
	fprintf(f, "server_name: %s\n", nd->name);
	fprintf(f, "listen: 127.0.0.1:%d\n", nd->port);
	fprintf(f, "jetstream {\n  store_dir: \"%s/%s/js\"\n", c->dir, nd->name);
	if (extra_js != NULL)
		fprintf(f, "  %s\n", extra_js);
	fprintf(f, "}\n");
	if (c->n > 1) {
		fprintf(f, "cluster {\n  name: %s\n  listen: 127.0.0.1:%d\n  routes: [\n",
			c->name, nd->cport);
		for (int k = 0; k < c->n; k++)
			if (k != i)
				fprintf(f, "    nats-route://127.0.0.1:%d\n", c->node[k].cport);
		fprintf(f, "  ]\n}\n");
	}
	fclose(f);
	return 0;
}

static int spawn(hc_cluster *c, int i)
{
	hc_node *nd = &c->node[i];
	char *argv[] = {"nats-server", "-c", nd->conf, NULL};
	int64_t end;

	nd->pid = proc_spawn(argv, nd->log);
	if (nd->pid <= 0) {
		nd->pid = -1;
		return -1;
	}
	end = mono_ms() + NODE_START_MS;
	while (!proc_tcp_accepts(nd->port)) {
		if (proc_wait_exit(nd->pid, 0) != -2) {
			fprintf(stderr, "cluster: %s exited at start (log: %s)\n",
				nd->name, nd->log);
			nd->pid = -1;
			return -1;
		}
		if (mono_ms() >= end) {
			fprintf(stderr, "cluster: %s not listening on port %d after %d ms\n",
				nd->name, nd->port, NODE_START_MS);
			proc_stop(nd->pid, 5000, nd->name);
			nd->pid = -1;
			return -1;
		}
		nap(20);
	}
	return 0;
}

/* Whether $JS.API.INFO answers without an error through url. */
static bool js_ready(const char *url)
{
	natsOptions *o = NULL;
	natsConnection *nc = NULL;
	natsMsg *m = NULL;
	bool ok = false;

	if (natsOptions_Create(&o) != NATS_OK)
		return false;
	natsOptions_SetURL(o, url);
	natsOptions_SetTimeout(o, 1000);
	natsOptions_SetAllowReconnect(o, false);
	if (natsConnection_Connect(&nc, o) == NATS_OK &&
	    natsConnection_RequestString(&m, nc, "$JS.API.INFO", "", 1000) == NATS_OK) {
		json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
				       0, NULL);
		ok = j != NULL && json_object_get(j, "error") == NULL &&
		     json_object_get(j, "type") != NULL;
		json_decref(j);
	}
	natsMsg_Destroy(m);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	return ok;
}

int hc_wait_jetstream(hc_cluster *c, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;

	for (;;) {
		for (int i = 0; i < c->n; i++)
			if (c->node[i].pid > 0 && js_ready(c->node[i].url))
				return 0;
		if (mono_ms() >= end)
			break;
		nap(200);
	}
	fprintf(stderr, "cluster: JetStream not ready after %d ms\n", timeout_ms);
	return -1;
}

int hc_start(hc_cluster *c, int n, const char *extra_js)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < HC_MAX_NODES; i++)
		c->node[i].pid = -1;
	if (n < 1 || n > HC_MAX_NODES) {
		fprintf(stderr, "cluster: %d nodes\n", n);
		return -1;
	}
	c->n = n;
	snprintf(c->dir, sizeof(c->dir), "/tmp/cim-cluster-XXXXXX");
	if (mkdtemp(c->dir) == NULL) {
		fprintf(stderr, "cluster: mkdtemp: %s\n", strerror(errno));
		c->dir[0] = '\0';
		return -1;
	}
	snprintf(c->name, sizeof(c->name), "cim-%d", (int)getpid());
	for (int i = 0; i < n; i++) {
		hc_node *nd = &c->node[i];
		snprintf(nd->name, sizeof(nd->name), "n%d", i + 1);
		nd->port = proc_free_port();
		nd->cport = n > 1 ? proc_free_port() : 0;
		if (nd->port <= 0 || (n > 1 && nd->cport <= 0)) {
			fprintf(stderr, "cluster: no free loopback port\n");
			return -1;
		}
		snprintf(nd->url, sizeof(nd->url), "nats://127.0.0.1:%d", nd->port);
		/* through a buffer of its own: gcc -O1 cannot tell nd->name
		 * from the field written (-Wrestrict) */
		char path[sizeof(nd->conf) > sizeof(nd->log) ? sizeof(nd->conf) : sizeof(nd->log)];
		snprintf(path, sizeof(path), "%s/%s.conf", c->dir, nd->name);
		snprintf(nd->conf, sizeof(nd->conf), "%s", path);
		snprintf(path, sizeof(path), "%s/%s.log", c->dir, nd->name);
		snprintf(nd->log, sizeof(nd->log), "%s", path);
		size_t k = strlen(c->urls);
		snprintf(c->urls + k, sizeof(c->urls) - k, "%s%s", i ? "," : "", nd->url);
	}
	for (int i = 0; i < n; i++)
		if (write_conf(c, i, extra_js) != 0)
			return -1;
	for (int i = 0; i < n; i++)
		if (spawn(c, i) != 0)
			goto fail;
	if (hc_wait_jetstream(c, JS_READY_MS) != 0)
		goto fail;
	return 0;
fail:
	for (int i = 0; i < n; i++)
		if (c->node[i].pid > 0) {
			proc_stop(c->node[i].pid, 5000, c->node[i].name);
			c->node[i].pid = -1;
		}
	return -1;
}

void hc_kill(hc_cluster *c, int i)
{
	hc_node *nd = &c->node[i];

	if (nd->pid > 0) {
		kill(nd->pid, SIGKILL);
		proc_wait_exit(nd->pid, 5000);
	}
	nd->pid = -1;
}

int hc_restart(hc_cluster *c, int i)
{
	if (c->node[i].pid > 0)
		return 0;
	return spawn(c, i);
}

void hc_stop_node(hc_cluster *c, int i)
{
	if (c->node[i].pid > 0)
		proc_stop(c->node[i].pid, 5000, c->node[i].name);
	c->node[i].pid = -1;
}

int hc_set_extra_js(hc_cluster *c, int i, const char *extra_js)
{
	return write_conf(c, i, extra_js);
}

bool hc_running(const hc_cluster *c, int i)
{
	return c->node[i].pid > 0 && proc_wait_exit(c->node[i].pid, 0) == -2;
}

void hc_stop(hc_cluster *c)
{
	for (int i = 0; i < c->n; i++) {
		if (c->node[i].pid > 0)
			proc_stop(c->node[i].pid, 5000, c->node[i].name);
		c->node[i].pid = -1;
	}
	if (c->dir[0] != '\0')
		proc_rm_rf(c->dir);
	c->dir[0] = '\0';
}

int hc_node_index(const hc_cluster *c, const char *name)
{
	for (int i = 0; name != NULL && i < c->n; i++)
		if (strcmp(c->node[i].name, name) == 0)
			return i;
	return -1;
}

void hc_as_nats(const hc_cluster *c, int i, h_nats *out)
{
	memset(out, 0, sizeof(*out));
	out->pid = -1;
	out->port = c->node[i].port;
	snprintf(out->url, sizeof(out->url), "%s", c->node[i].url);
	snprintf(out->dir, sizeof(out->dir), "%s", c->dir);
}

static void tail(const char *title, const char *path, long max)
{
	FILE *f = fopen(path, "r");
	char buf[4096];
	size_t k;
	long size;

	if (f == NULL)
		return;
	fprintf(stderr, "---- %s (%s) ----\n", title, path);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > max ? size - max : 0, SEEK_SET);
	while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, k, stderr);
	fclose(f);
}

void hc_dump_logs(const hc_cluster *c, long max_bytes)
{
	char p[400];

	if (c->dir[0] == '\0')
		return;
	snprintf(p, sizeof(p), "%s/daemon.log", c->dir);
	tail("cim-eventsd log", p, max_bytes);
	for (int i = 0; i < c->n; i++)
		tail(c->node[i].name, c->node[i].log, max_bytes);
}
