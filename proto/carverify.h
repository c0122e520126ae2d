/*
 * carverify.h: checking a CAR file of cim-events offline, with no NATS
 * (docs/protocol.md, "Offline verification"): what `cim-events
 * verify-car` runs and the tests use.
 *
 * One pass over the file reads every section (car.h) and:
 *   - recomputes its CID from its bytes (codec dag-cbor, multihash
 *     blake2b-256 or sha2-256);
 *   - recognises the block as an event block (cim_event_check, with
 *     aggregate_type, aggregate_id and event_type valid tokens), a seal
 *     block (cim_seal_block_decode, its signature verified then and
 *     there), or a key block (an encrypted aggregate's wrapped data key:
 *     a map of exactly aggregate_type, aggregate_id, nonce of 24 bytes and
 *     wrapped of 48 bytes), and refuses anything else, naming its CID;
 *   - keeps an index entry per block.
 * Then, over the index: every root is an event block whose chain is walked
 * down to version 1 through prev, every block present, versions gapless,
 * aggregate type and id constant, one root per aggregate; every event
 * block is on some root's chain; every seal's cid is an event in the file;
 * every key block's aggregate has a root, and not a forgotten one (whose
 * head is a CimForgotten event); and with trusted keys, every root carries
 * a seal from one of them (the seal on the root itself: the root is the
 * last event of the aggregate's last append).
 *
 * Each failure has a reason (the words of validate where they fit) and a
 * sentence naming what and where: the CID, the aggregate, the version, the
 * byte offset of the section in the file.
 *
 * Memory: the index, not the file. Each block costs a 32-byte entry, its
 * CID in an arena (1 + 38 bytes for a blake2b-256 CID, 1 + 36 for
 * sha2-256) and 8 to 16 bytes of hash table, about 80 bytes in use; the
 * arrays grow by doubling, so at most 160 bytes a block are allocated
 * (measured: 95 bytes a block at 50,000 events, 109 MB for 1,000,000;
 * seals and key blocks count as blocks). Each aggregate adds a 24-byte
 * record, its type and id plus 2 bytes, and 8 to 16 bytes of hash table.
 * A CID named but not in the file (a missing prev, a root) costs an entry
 * too. Add the reader's 64 KiB buffer and the largest block. The index is
 * freed before cim_car_verify returns; summary.index_bytes tells its
 * peak.
 */
#ifndef CIM_PROTO_CARVERIFY_H
#define CIM_PROTO_CARVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "car.h"
#include "event.h" /* CIM_FORGOTTEN_TYPE */
#include "keys.h"


typedef struct cim_car_verify_opts {
	const uint8_t (*keys)[CIM_KEY_BYTES]; /* trusted public keys */
	size_t nkeys;
	/* each failure as found: reason (e.g. "hash_mismatch") and the
	 * sentence; may be NULL */
	void (*on_failure)(void *ctx, const char *reason, const char *msg);
	/* the bytes read so far, after each block; may be NULL */
	void (*on_progress)(void *ctx, uint64_t bytes);
	void *ctx;
} cim_car_verify_opts;

typedef struct cim_car_summary {
	uint64_t bytes;        /* read */
	uint64_t blocks;       /* sections */
	uint64_t roots;        /* in the header */
	uint64_t aggregates;   /* roots that are event blocks */
	uint64_t events;
	uint64_t seals;
	uint64_t key_blocks;
	uint64_t roots_sealed; /* roots sealed by a trusted key */
	uint64_t failures;
	size_t index_bytes;    /* the index's peak size */
	char first_reason[24]; /* the first failure */
	char first[512];
} cim_car_summary;

/* Checks the CAR stream src as above. Returns 0 when everything holds, 1
 * when something does not (summary->failures >= 1, each reported through
 * opts->on_failure), or -1 when the check could not be made (no memory,
 * a read error), with the reason in summary->first. opts may be NULL. */
int cim_car_verify(cim_car_source src, void *sctx,
		   const cim_car_verify_opts *opts, cim_car_summary *summary);

#endif
