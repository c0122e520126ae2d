/*
 * hcrypt.h: what the tests of encrypted aggregates and forget share
 * (tests/integration/test_crypt*.c, test_forget*.c): master key files, a
 * daemon started with encryption on, and looking for bytes everywhere the
 * store keeps anything (every message of every stream, and nats-server's
 * files on disk).
 */
#ifndef CIM_TEST_HCRYPT_H
#define CIM_TEST_HCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* A new master key file in H.nats.dir (mode 0600); returns its path
 * (free it). */
char *hc_master_key(const char *name);

/* Starts the daemon on H.nats with --master-key key and --encrypt-types
 * types (NULL: none), plus a NULL-ended list of more arguments; asserts it
 * came up. Returns its pid (also in H.daemon). */
pid_t hc_daemon(const char *key, const char *types, ...) __attribute__((sentinel));

/* How many messages stream holds on subject (a filter: wildcards work),
 * as the stream's own subject index says. */
uint64_t hc_subject_msgs(const char *stream, const char *subject);

/* Whether any message of stream (data or headers) holds the n bytes at
 * needle. */
bool hc_stream_holds(const char *stream, const void *needle, size_t n);

/* Whether any file under dir (recursively) holds the n bytes at needle;
 * the first such file's path goes to where (may be NULL). */
bool hc_files_hold(const char *dir, const void *needle, size_t n, char *where,
		   size_t wn);

/* The JSON reply of a raw request to <prefix>.<op>.<type>.<id> (op may hold
 * a dot: snapshot.get) with body; asserts a reply came. The caller frees it
 * (h_reply_free). */
void hc_request(h_reply *r, const char *op, const char *type, const char *id,
		const char *body);

#endif
