/*
 * proc.h: the processes a test or the benchmark starts itself (nats-server,
 * cim-eventsd), and the loopback ports they listen on. Shared by the test
 * harness and tests/bench; no test framework here. Messages go to stderr,
 * prefixed with the program's name.
 */
#ifndef CIM_TESTS_PROC_H
#define CIM_TESTS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* fork/exec argv with stdin from /dev/null and stdout+stderr appended to
 * logpath. The child dies with the thread that forked it. -1 on failure. */
pid_t proc_spawn(char *const argv[], const char *logpath);
/* The exit status (128 + signal when killed), -2 if it still runs after
 * timeout_ms, -1 when it is not our child. */
int proc_wait_exit(pid_t pid, int timeout_ms);
/* SIGTERM, then up to timeout_ms, then SIGKILL (returning -1). */
int proc_stop(pid_t pid, int timeout_ms, const char *what);
/* A TCP port free on 127.0.0.1 just now, or -1. */
int proc_free_port(void);
/* Whether something accepts connections on 127.0.0.1:port. */
bool proc_tcp_accepts(int port);
/* rm -rf dir (nothing when dir is empty). */
void proc_rm_rf(const char *dir);

#endif
