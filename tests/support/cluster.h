/*
 * cluster.h: nats-server nodes a test configures itself: a JetStream
 * cluster of n nodes on loopback (each on free ports, its store and
 * config in a fresh temporary directory), or a single server started
 * from a config file (n = 1), for settings the command line does not
 * have, such as jetstream { max_file_store }.
 *
 * Each node's config file is <dir>/<name>.conf, its store <dir>/<name>/js,
 * its log <dir>/<name>.log (name n1, n2, ...). Nodes are started with
 * proc_spawn (they die with the thread that started them) and stopped by
 * pid. No test framework here: failures return -1 with a sentence on
 * stderr.
 */
#ifndef CIM_TESTS_CLUSTER_H
#define CIM_TESTS_CLUSTER_H

#include <stdbool.h>
#include <sys/types.h>

#include "harness.h"

#define HC_MAX_NODES 5

typedef struct hc_node {
	char name[16];   /* server_name: n1, n2, ... */
	pid_t pid;       /* -1 when not running */
	int port;        /* client port */
	int cport;       /* cluster (route) port; 0 for a single server */
	char url[64];    /* nats://127.0.0.1:<port> */
	char conf[300];
	char log[300];
} hc_node;

typedef struct hc_cluster {
	int n;
	hc_node node[HC_MAX_NODES];
	char dir[256];
	char name[32];   /* cluster name */
	char urls[HC_MAX_NODES * 64]; /* every node's URL, comma-separated */
} hc_cluster;

/* Writes the config files and starts n (1..HC_MAX_NODES) nodes, then
 * waits (up to 30 s) until each accepts connections and JetStream
 * answers $JS.API.INFO without error (for a cluster: a meta leader is
 * elected). extra_js is put inside each node's jetstream { } block (e.g.
 * "max_file_store: 1MB"), NULL for none. Returns 0, or -1 with everything
 * stopped and the directory left for the logs (hc_stop removes it). */
int hc_start(hc_cluster *c, int n, const char *extra_js);
/* Waits up to timeout_ms until JetStream answers $JS.API.INFO through
 * some running node without error. 0 or -1. */
int hc_wait_jetstream(hc_cluster *c, int timeout_ms);
/* SIGKILL node i and wait for it; its store stays. */
void hc_kill(hc_cluster *c, int i);
/* Starts node i again with its config and store; waits until it accepts
 * connections (not for JetStream). 0 or -1. */
int hc_restart(hc_cluster *c, int i);
/* SIGTERM node i and wait (SIGKILL after 5 s); its store stays. */
void hc_stop_node(hc_cluster *c, int i);
/* Writes node i's config again with extra_js in its jetstream { } block
 * (NULL for none); it takes effect at the node's next start. 0 or -1. */
int hc_set_extra_js(hc_cluster *c, int i, const char *extra_js);
/* Whether node i is running. */
bool hc_running(const hc_cluster *c, int i);
/* SIGTERM every node, then removes the directory. */
void hc_stop(hc_cluster *c);
/* The node whose server_name is name, -1 if none. */
int hc_node_index(const hc_cluster *c, const char *name);
/* An h_nats for h_daemon_start: node i's URL and the cluster's directory
 * (so daemon.log goes there); pid -1, so nothing stops it by mistake. */
void hc_as_nats(const hc_cluster *c, int i, h_nats *out);
/* Prints the last bytes of every node's log and of daemon.log to stderr. */
void hc_dump_logs(const hc_cluster *c, long max_bytes);

#endif
