/*
 * blocks.h: event blocks, seals and restore bodies made by the tests
 * themselves (proto/'s encoders), to restore, or to write straight to
 * JetStream past the daemon (a forged tail).
 */
#ifndef CIM_TEST_BLOCKS_H
#define CIM_TEST_BLOCKS_H

#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cid.h"
#include "keys.h"

/* One block made here: its bytes and CID (blake2b-256 unless mh says). */
typedef struct tb_block {
	cbuf bytes;
	cim_cid cid;
	char cid_text[CIM_CID_TEXT_MAX];
} tb_block;

/* Makes the event block type/id at version, of event_type, with data
 * (JSON text), event_id "<id>-v<version>" unless event_id is given, and
 * prev (NULL at version 1), hashed with mh (0: blake2b-256). Asserts. */
void tb_make(tb_block *b, const char *type, const char *id, uint64_t version,
	     const char *event_type, const char *data_json, const char *event_id,
	     const cim_cid *prev, uint64_t mh);
/* n blocks chained from prev (NULL: from version 1) at first_version. */
void tb_chain(tb_block *b, size_t n, const char *type, const char *id,
	      uint64_t first_version, const cim_cid *prev);
void tb_free(tb_block *b, size_t n);

/* Standard base64 with padding (malloc'd). */
char *tb_base64(const uint8_t *p, size_t len);
/* {"blocks": [...]} of b[0..n), with the seal blocks given (seals may be
 * NULL) and extra JSON members (may be NULL, e.g. "\"key\": \"AAAA\"").
 * malloc'd. */
char *tb_restore_body(const tb_block *b, size_t n, const tb_block *seals,
		      size_t nseals, const char *extra);

/* A signing key from a fixed seed byte (every byte the same), and its
 * seed file written under dir (mode 0600) at *path (malloc'd). */
void tb_key(cim_signing_key *k, uint8_t seed_byte);
char *tb_key_file(const char *dir, const char *name, uint8_t seed_byte);
/* The seal block of cid under k. */
void tb_seal_block(tb_block *out, const cim_signing_key *k, const cim_cid *cid);

/* Publishes b straight to JetStream on events.<type>.<id>.<event_type>
 * with the headers the daemon sets (no Nats-Msg-Id), plus Cim-Seal-Key
 * and Cim-Seal when seal_key/seal are given. Returns the sequence. */
uint64_t tb_publish(const tb_block *b, const char *type, const char *id,
		    const char *event_type, uint64_t version,
		    const char *seal_key, const char *seal);
/* The same, unsealed, as part batch ("i/n", the header Cim-Batch; NULL:
 * none) of an append of n events, under the Nats-Msg-Id msgid (NULL:
 * none): what a daemon's publish of a batch leaves. */
uint64_t tb_publish_part(const tb_block *b, const char *type, const char *id,
			 const char *event_type, uint64_t version, const char *batch,
			 const char *msgid);

#endif
