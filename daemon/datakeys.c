/*
 * datakeys.c: the master key and the data keys of encrypted aggregates
 * (docs/protocol.md sections 12 and 15, docs/design.md section 12).
 *
 * Each encrypted aggregate has a data key: 32 random bytes, stored in the
 * bucket keys_bucket (CIM-KEYS, history 1) under the aggregate's KV key as
 * a key block (proto/keyblock.h): the key wrapped by the master key. The
 * first append to an aggregate of a type named by encrypt_types makes it,
 * with kvStore_Create, so two daemons (or a restore racing an append) can
 * never store two. Forgetting an aggregate removes its key block from the
 * bucket's stream: erased (overwritten) where the stream allows it, then
 * purged, so no revision of it is left.
 *
 * The cache. Keys read or made are kept in memory, at most key_cache of
 * them, in one cim_key_alloc region (guarded pages, locked where the
 * memlock limit allows, out of core dumps). A slot is found by a SipHash of
 * "type NUL id" under a key of this process, and evicted by a clock, which
 * wipes it. A slot may also say "no key is stored" (a plain aggregate of an
 * encrypted type made before its type was listed, or a forgotten one), so
 * that such appends do not ask the bucket each time; it is kept only for
 * an aggregate the daemon holds events of, and dropped (read again) once a
 * key was erased since, or a key was made or restored. The cache is wiped
 * when the writer lease is lost and taken again (keys_drop_cache): another
 * daemon may have made or erased keys meanwhile. Whoever uses a key
 * pins its slot (keys_pin, keys_get) and unpins it when done: a pinned
 * slot is never evicted or wiped; one erased while pinned is unlinked at
 * once and wiped when the last pin goes.
 *
 * Threads. keys_pin and keys_unpin only look at memory (the request
 * callback and the ack handler may call them); keys_get, keys_erase and
 * keys_setup ask JetStream and run on read workers or in main. ring.mu
 * guards the cache and is never held across a network call, nor taken
 * with daemon.mu held by anything here.
 *
 * No key byte ever reaches a log line, a reply or an error text.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "daemon.h"
#include "keyblock.h"
#include "keys.h"
#include "log.h"
#include "snapshot.h" /* cim_kv_key */

enum slot_state {
	SLOT_FREE = 0,
	SLOT_RESERVED, /* being filled by keys_get */
	SLOT_KEY,      /* keys[i] holds the aggregate's data key */
	SLOT_NONE,     /* the bucket holds no key for it */
	SLOT_DEAD,     /* erased while pinned: wiped when the last pin goes */
};

struct dk_slot {
	char *name;     /* "type NUL id NUL", malloc'd; NULL when free */
	size_t tlen;
	uint64_t h;
	int32_t next;   /* hash chain; -1 ends it */
	int32_t pins;
	uint8_t state;
	bool ref;       /* used since the clock last passed */
};

static uint64_t name_hash(const struct keyring *kr, const char *type, const char *id)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h = 0;

	/* one call: the input is short; "type NUL id" is unambiguous */
	char buf[CIM_TYPE_MAX + CIM_ID_MAX + 2];
	size_t tl = strlen(type), il = strlen(id);
	memcpy(buf, type, tl);
	buf[tl] = '\0';
	memcpy(buf + tl + 1, id, il);
	crypto_shorthash(out, (const unsigned char *)buf, tl + 1 + il, kr->hkey);
	memcpy(&h, out, sizeof h);
	return h;
}

static bool slot_is(const struct dk_slot *s, uint64_t h, const char *type, const char *id)
{
	return s->h == h && strcmp(s->name, type) == 0 && strcmp(s->name + s->tlen + 1, id) == 0;
}

/* ring.mu held. The slot of type/id, or -1. */
static int32_t find_locked(struct keyring *kr, uint64_t h, const char *type, const char *id)
{
	for (int32_t i = kr->buckets[h % kr->nbuckets]; i >= 0; i = kr->slots[i].next)
		if (slot_is(&kr->slots[i], h, type, id))
			return i;
	return -1;
}

static void unlink_locked(struct keyring *kr, int32_t i)
{
	int32_t *p = &kr->buckets[kr->slots[i].h % kr->nbuckets];
	while (*p >= 0 && *p != i)
		p = &kr->slots[*p].next;
	if (*p == i)
		*p = kr->slots[i].next;
	kr->slots[i].next = -1;
}

/* Wipes and frees slot i (unlinked already, or never linked). */
static void clear_locked(struct keyring *kr, int32_t i)
{
	struct dk_slot *s = &kr->slots[i];
	cim_key_wipe(&kr->keys[i]);
	free(s->name);
	*s = (struct dk_slot){.next = -1};
}

/* Unlinks slot i and wipes it, or, while it is pinned, marks it dead:
 * wiped when the last pin goes. */
static void drop_locked(struct keyring *kr, int32_t i)
{
	unlink_locked(kr, i);
	if (kr->slots[i].pins > 0)
		kr->slots[i].state = SLOT_DEAD;
	else
		clear_locked(kr, i);
}

/* A free slot, evicting the clock's next unpinned one when there is none:
 * reserved and pinned once for the caller. -1 when every slot is pinned. */
static int32_t reserve_locked(struct keyring *kr)
{
	for (size_t step = 0; step < 2 * kr->n + 1; step++) {
		size_t i = kr->hand;
		struct dk_slot *s = &kr->slots[i];
		kr->hand = (kr->hand + 1) % kr->n;
		if (s->state == SLOT_FREE) {
			/* fall through to take it */
		} else if (s->pins > 0 || s->state == SLOT_RESERVED || s->state == SLOT_DEAD) {
			continue;
		} else if (s->ref) {
			s->ref = false;
			continue;
		} else {
			unlink_locked(kr, (int32_t)i);
			clear_locked(kr, (int32_t)i);
			atomic_fetch_add(&kr->evicted, 1);
		}
		s->state = SLOT_RESERVED;
		s->pins = 1;
		s->next = -1;
		return (int32_t)i;
	}
	return -1;
}

int keys_pin(struct daemon *d, const char *type, const char *id, const cim_key **k)
{
	struct keyring *kr = &d->keys;
	int rc = KEY_MISS;

	*k = NULL;
	if (kr->master == NULL)
		return KEY_NONE;
	uint64_t h = name_hash(kr, type, id);
	pthread_mutex_lock(&kr->mu);
	int32_t i = find_locked(kr, h, type, id);
	if (i >= 0) {
		struct dk_slot *s = &kr->slots[i];
		s->ref = true;
		if (s->state == SLOT_KEY) {
			s->pins++;
			*k = &kr->keys[i];
			rc = KEY_HELD;
		} else {
			rc = KEY_NONE;
		}
	}
	pthread_mutex_unlock(&kr->mu);
	return rc;
}

void keys_unpin(struct daemon *d, const cim_key *k)
{
	struct keyring *kr = &d->keys;

	if (k == NULL)
		return;
	int32_t i = (int32_t)(k - kr->keys);
	pthread_mutex_lock(&kr->mu);
	struct dk_slot *s = &kr->slots[i];
	if (--s->pins == 0 && s->state == SLOT_DEAD)
		clear_locked(kr, i);
	pthread_mutex_unlock(&kr->mu);
}

/* Fills reserved slot i as type/id in state st (SLOT_KEY: keys[i] is
 * filled) and links it; when another thread linked one for type/id
 * meanwhile, or a key was erased since `epoch`, slot i is wiped and freed
 * and that one (or nothing) is used. Returns KEY_HELD with *k pinned,
 * KEY_NONE, or KEY_MISS (erased meanwhile: ask again). */
static int publish(struct keyring *kr, int32_t i, const char *type, const char *id,
		   enum slot_state st, uint64_t epoch, const cim_key **k)
{
	size_t tl = strlen(type), il = strlen(id);
	char *name = malloc(tl + il + 2);
	uint64_t h = name_hash(kr, type, id);
	int rc;

	*k = NULL;
	if (name != NULL) {
		memcpy(name, type, tl + 1);
		memcpy(name + tl + 1, id, il + 1);
	}
	pthread_mutex_lock(&kr->mu);
	int32_t old = find_locked(kr, h, type, id);
	if (old >= 0 && kr->slots[old].state == SLOT_NONE &&
	    (st == SLOT_KEY || atomic_load(&kr->epoch) != epoch)) {
		/* "no key" was true when it was read: a key was made or
		 * restored since; or it may be stale (a key was erased
		 * meanwhile): read again. Slots saying none are never pinned */
		unlink_locked(kr, old);
		clear_locked(kr, old);
		old = -1;
	}
	if (name == NULL || old >= 0 || atomic_load(&kr->epoch) != epoch) {
		clear_locked(kr, i);
		free(name);
		if (old >= 0 && kr->slots[old].state == SLOT_KEY) {
			kr->slots[old].pins++;
			*k = &kr->keys[old];
			rc = KEY_HELD;
		} else {
			rc = old >= 0 ? KEY_NONE : KEY_MISS;
		}
		pthread_mutex_unlock(&kr->mu);
		return rc;
	}
	struct dk_slot *s = &kr->slots[i];
	s->name = name;
	s->tlen = tl;
	s->h = h;
	s->state = (uint8_t)st;
	s->ref = true;
	s->next = kr->buckets[h % kr->nbuckets];
	kr->buckets[h % kr->nbuckets] = i;
	if (st == SLOT_KEY) {
		*k = &kr->keys[i]; /* the reservation's pin is the caller's */
		rc = KEY_HELD;
	} else {
		s->pins = 0;
		rc = KEY_NONE;
	}
	pthread_mutex_unlock(&kr->mu);
	return rc;
}

static void release(struct keyring *kr, int32_t i)
{
	pthread_mutex_lock(&kr->mu);
	clear_locked(kr, i);
	pthread_mutex_unlock(&kr->mu);
}

/* Unwraps a stored key block of type/id into key. 0, or -1 with e set. */
static int unwrap_stored(struct keyring *kr, const void *p, int len, const char *type,
			 const char *id, cim_key *key, cim_perr *e)
{
	cim_wrapped_key w;
	char why[200];

	if (cim_keyblock_decode(&w, p, len > 0 ? (size_t)len : 0, why, sizeof why) != 0)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL,
				    "the data key of %s/%s in the keys bucket is not a key "
				    "block: %s", type, id, why);
	if (strcmp(w.aggregate_type, type) != 0 || strcmp(w.aggregate_id, id) != 0)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL,
				    "the key block stored for %s/%s is the key of %s/%s", type,
				    id, w.aggregate_type, w.aggregate_id);
	if (cim_key_unwrap(key, kr->master, &w, why, sizeof why) != 0)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL,
				    "the data key of %s/%s does not unwrap under master_key: %s",
				    type, id, why);
	return 0;
}

/* A new data key for type/id in reserved slot i, stored with kvStore_Create.
 * 0 stored; 1 the bucket holds one already (slot i wiped); -1 error. */
static int make_key(struct daemon *d, int32_t i, const char *type, const char *id,
		    const char *kvkey, cim_perr *e)
{
	struct keyring *kr = &d->keys;
	cim_wrapped_key w;
	cbuf block = CBUF_INIT;
	char why[200];
	uint64_t rev = 0;

	if (!lease_valid(d))
		return cim_perr_set(e, CIM_ERR_UNAVAILABLE, NULL,
				    "this daemon's writer lease could not be renewed in time; "
				    "nothing was stored");
	if (cim_key_generate(&kr->keys[i]) != 0 ||
	    cim_key_wrap(&w, kr->master, &kr->keys[i], type, id, NULL, why, sizeof why) != 0 ||
	    cim_keyblock_encode(&block, &w, why, sizeof why) != 0) {
		cim_key_wipe(&kr->keys[i]);
		cbuf_free(&block);
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "cannot make a data key: %s", why);
	}
	natsStatus s = kvStore_Create(&rev, kr->kv, kvkey, block.p, (int)block.len);
	cbuf_free(&block);
	if (s == NATS_OK) {
		atomic_fetch_add(&kr->made, 1);
		return 0;
	}
	cim_key_wipe(&kr->keys[i]);
	/* "exists" comes back as a plain error: whether a key is there now
	 * is what the caller reads again */
	if (s == NATS_ERR)
		return 1;
	return store_js_fail(e, s, 0, "the data keys bucket: store a new data key");
}

/* Whether the daemon holds a head with events for type/id (daemon.mu is
 * taken: never call with ring.mu held). */
static bool has_events(struct daemon *d, const char *type, const char *id)
{
	pthread_mutex_lock(&d->mu);
	struct agg *a = heads_find(&d->heads, type, id);
	bool has = a != NULL && a->version > 0;
	pthread_mutex_unlock(&d->mu);
	return has;
}

int keys_get(struct daemon *d, const char *type, const char *id, bool make,
	     const cim_key **k, cim_perr *e)
{
	struct keyring *kr = &d->keys;
	char kvkey[CIM_KV_KEY_MAX];

	*k = NULL;
	if (kr->master == NULL)
		return KEY_NONE;
	int rc = keys_pin(d, type, id, k);
	if (rc == KEY_HELD || (rc == KEY_NONE && !make))
		return rc;
	if (cim_kv_key(kvkey, type, id) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, NULL, "bad aggregate");
	for (int tries = 0; tries < 4; tries++) {
		uint64_t epoch = atomic_load(&kr->epoch);
		kvEntry *ent = NULL;
		pthread_mutex_lock(&kr->mu);
		int32_t i = reserve_locked(kr);
		pthread_mutex_unlock(&kr->mu);
		if (i < 0)
			return cim_perr_set(e, CIM_ERR_UNAVAILABLE, NULL,
					    "every data key slot is in use (key_cache %lld); "
					    "retry", (long long)d->cfg->key_cache);
		natsStatus s = kvStore_Get(&ent, kr->kv, kvkey);
		if (s == NATS_OK) {
			int u = unwrap_stored(kr, kvEntry_Value(ent), kvEntry_ValueLen(ent), type, id,
					      &kr->keys[i], e);
			kvEntry_Destroy(ent);
			if (u != 0) {
				release(kr, i);
				return -1;
			}
			atomic_fetch_add(&kr->loaded, 1);
			log_debug("%s/%s: data key read from %s", type, id, d->cfg->keys_bucket);
			rc = publish(kr, i, type, id, SLOT_KEY, epoch, k);
		} else if (s == NATS_NOT_FOUND && !make && !has_events(d, type, id)) {
			/* not kept: a reader naming ids that do not exist (decrypt)
			 * would fill the cache, and the first append makes a key */
			release(kr, i);
			return KEY_NONE;
		} else if (s == NATS_NOT_FOUND && !make) {
			rc = publish(kr, i, type, id, SLOT_NONE, epoch, k);
		} else if (s == NATS_NOT_FOUND) {
			int m = make_key(d, i, type, id, kvkey, e);
			if (m < 0) {
				release(kr, i);
				return -1;
			}
			if (m > 0) {
				release(kr, i);
				continue; /* made by someone else meanwhile: read it */
			}
			log_debug("%s/%s: data key made and stored in %s", type, id,
				  d->cfg->keys_bucket);
			rc = publish(kr, i, type, id, SLOT_KEY, epoch, k);
		} else {
			release(kr, i);
			return store_js_fail(e, s, 0, "the data keys bucket: read a data key");
		}
		if (rc != KEY_MISS)
			return rc;
	}
	return cim_perr_set(e, CIM_ERR_UNAVAILABLE, NULL,
			    "the data key of %s/%s changed while it was read; retry", type, id);
}

/* Removes every message on subj from stream: erased first (overwritten on
 * disk) where the stream allows deleting, then purged. */
static int purge_subject(struct daemon *d, const char *stream, const char *subj, bool erase,
			 cim_perr *e)
{
	jsErrCode je = 0;
	natsStatus s;

	/* (what failed is named by the stream's name in the caller's error:
	 * store_js_fail says "storage: purge: ...") */
	if (erase) {
		natsMsg *m = NULL;
		s = js_GetLastMsg(&m, d->js, stream, subj, NULL, &je);
		if (s == NATS_OK) {
			uint64_t seq = natsMsg_GetSequence(m);
			natsMsg_Destroy(m);
			s = js_EraseMsg(d->js, stream, seq, NULL, &je);
			if (s != NATS_OK && je != JSSequenceNotFoundErr)
				log_warn("%s: cannot erase message %llu (%s); purging it",
					 stream, (unsigned long long)seq, natsStatus_GetText(s));
		} else if (s != NATS_NOT_FOUND && je != JSNoMessageFoundErr) {
			return store_js_fail(e, s, je, "find a message to erase");
		}
	}
	jsOptions o;
	jsOptions_Init(&o);
	o.Stream.Purge.Subject = subj;
	je = 0;
	s = js_PurgeStream(d->js, stream, &o, &je);
	if (s != NATS_OK)
		return store_js_fail(e, s, je, "purge");
	return 0;
}

int keys_restore(struct daemon *d, const cim_wrapped_key *w, cim_perr *e)
{
	struct keyring *kr = &d->keys;
	char kvkey[CIM_KV_KEY_MAX], why[200];
	const char *type = w->aggregate_type, *id = w->aggregate_id;
	cbuf block = CBUF_INIT;
	uint64_t rev = 0;

	if (kr->master == NULL || cim_kv_key(kvkey, type, id) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "key", "bad key block");
	uint64_t epoch = atomic_load(&kr->epoch);
	pthread_mutex_lock(&kr->mu);
	int32_t i = reserve_locked(kr);
	pthread_mutex_unlock(&kr->mu);
	if (i < 0)
		return cim_perr_set(e, CIM_ERR_UNAVAILABLE, NULL,
				    "every data key slot is in use (key_cache %lld); retry",
				    (long long)d->cfg->key_cache);
	/* it must be a key this store's master key wrapped, for this aggregate */
	if (cim_key_unwrap(&kr->keys[i], kr->master, w, why, sizeof why) != 0) {
		release(kr, i);
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "key",
				    "key: the key block of %s/%s does not unwrap under this "
				    "store's master_key (%s); an encrypted aggregate is restored "
				    "into a store with the master key it was exported from; "
				    "nothing was stored", type, id, why);
	}
	if (cim_keyblock_encode(&block, w, why, sizeof why) != 0) {
		release(kr, i);
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "%s", why);
	}
	if (!lease_valid(d)) {
		release(kr, i);
		cbuf_free(&block);
		return cim_perr_set(e, CIM_ERR_UNAVAILABLE, NULL,
				    "this daemon's writer lease could not be renewed in time; "
				    "nothing was stored");
	}
	natsStatus s = kvStore_Create(&rev, kr->kv, kvkey, block.p, (int)block.len);
	cbuf_free(&block);
	if (s != NATS_OK) {
		/* one is stored already (a restore done before, or resumed): it
		 * must be the same data key */
		kvEntry *ent = NULL;
		cim_key *had = cim_key_alloc(1);
		bool same = false;
		natsStatus g = kvStore_Get(&ent, kr->kv, kvkey);
		if (g == NATS_OK && had != NULL &&
		    unwrap_stored(kr, kvEntry_Value(ent), kvEntry_ValueLen(ent), type, id, had,
				  e) == 0)
			same = sodium_memcmp(had->b, kr->keys[i].b, CIM_KEY_BYTES) == 0;
		kvEntry_Destroy(ent);
		cim_key_free(had, 1);
		release(kr, i);
		if (g != NATS_OK && g != NATS_NOT_FOUND)
			return store_js_fail(e, g, 0, "the data keys bucket: read a data key");
		if (g == NATS_NOT_FOUND)
			return store_js_fail(e, s, 0, "the data keys bucket: store a restored data key");
		if (!same)
			return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, "key",
					    "key: this store holds another data key for %s/%s; "
					    "nothing was stored", type, id);
		return 0;
	}
	log_info("%s/%s: data key restored into %s", type, id, d->cfg->keys_bucket);
	const cim_key *k;
	if (publish(kr, i, type, id, SLOT_KEY, epoch, &k) == KEY_HELD)
		keys_unpin(d, k);
	return 0;
}

/* type/id out of the cache (wiped), and the epoch moved so that no read
 * of the bucket under way puts it back. */
static void forget_cached(struct keyring *kr, const char *type, const char *id)
{
	atomic_fetch_add(&kr->epoch, 1);
	uint64_t h = name_hash(kr, type, id);
	pthread_mutex_lock(&kr->mu);
	int32_t i = find_locked(kr, h, type, id);
	if (i >= 0)
		drop_locked(kr, i);
	pthread_mutex_unlock(&kr->mu);
}

int keys_erase(struct daemon *d, const char *type, const char *id, cim_perr *e)
{
	struct keyring *kr = &d->keys;
	char kvkey[CIM_KV_KEY_MAX], stream[256], subj[600];

	if (cim_kv_key(kvkey, type, id) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, NULL, "bad aggregate");
	/* out of memory first: a read of the bucket that began before this
	 * may not put it back (publish sees the epoch move) */
	forget_cached(kr, type, id);
	snprintf(stream, sizeof stream, "KV_%s", d->cfg->keys_bucket);
	snprintf(subj, sizeof subj, "$KV.%s.%s", d->cfg->keys_bucket, kvkey);
	if (purge_subject(d, stream, subj, kr->erase_ok, e) != 0)
		return -1;
	/* and again: a read that began after the first and found the block
	 * not yet purged may have put it back */
	forget_cached(kr, type, id);
	return 0;
}

void keys_drop_cache(struct daemon *d)
{
	struct keyring *kr = &d->keys;
	size_t dropped = 0;

	if (kr->master == NULL)
		return;
	atomic_fetch_add(&kr->epoch, 1); /* reads under way put nothing back */
	pthread_mutex_lock(&kr->mu);
	for (size_t i = 0; i < kr->n; i++)
		if (kr->slots[i].state == SLOT_KEY || kr->slots[i].state == SLOT_NONE) {
			drop_locked(kr, (int32_t)i);
			dropped++;
		}
	pthread_mutex_unlock(&kr->mu);
	if (dropped > 0)
		log_info("%zu cached data key slot(s) wiped", dropped);
}

int keys_purge_snapshot(struct daemon *d, const char *type, const char *id, cim_perr *e)
{
	char kvkey[CIM_KV_KEY_MAX], stream[256], subj[600];

	if (cim_kv_key(kvkey, type, id) != 0)
		return cim_perr_set(e, CIM_ERR_INVALID_ARGUMENT, NULL, "bad aggregate");
	snprintf(stream, sizeof stream, "KV_%s", d->cfg->snapshots_bucket);
	snprintf(subj, sizeof subj, "$KV.%s.%s", d->cfg->snapshots_bucket, kvkey);
	return purge_subject(d, stream, subj, false, e);
}

bool keys_encrypted_type(const struct daemon *d, const char *type)
{
	return d->keys.master != NULL && d->cfg->encrypt_types[0] != '\0' &&
	       config_type_listed(d->cfg->encrypt_types, type);
}

int keys_open(struct daemon *d)
{
	struct keyring *kr = &d->keys;
	char why[400];

	memset(kr, 0, sizeof *kr);
	pthread_mutex_init(&kr->mu, NULL);
	if (d->cfg->master_key[0] == '\0')
		return 0;
	kr->master = cim_key_alloc(1);
	kr->n = (size_t)d->cfg->key_cache;
	kr->nbuckets = kr->n;
	kr->keys = cim_key_alloc(kr->n);
	kr->slots = calloc(kr->n, sizeof *kr->slots);
	kr->buckets = malloc(kr->nbuckets * sizeof *kr->buckets);
	if (kr->master == NULL || kr->keys == NULL || kr->slots == NULL || kr->buckets == NULL) {
		fprintf(stderr, "cim-eventsd: out of memory for %zu data keys (key_cache)\n", kr->n);
		return -1;
	}
	for (size_t i = 0; i < kr->n; i++)
		kr->slots[i].next = -1;
	for (size_t i = 0; i < kr->nbuckets; i++)
		kr->buckets[i] = -1;
	randombytes_buf(kr->hkey, sizeof kr->hkey);
	if (cim_keyfile_read(d->cfg->master_key, kr->master->b, why, sizeof why) != 0) {
		fprintf(stderr, "cim-eventsd: master_key: %s\n", why);
		log_error("master_key: %s", why);
		return -1;
	}
	return 0;
}

void keys_close(struct daemon *d)
{
	struct keyring *kr = &d->keys;

	for (size_t i = 0; kr->slots != NULL && i < kr->n; i++)
		free(kr->slots[i].name);
	free(kr->slots);
	free(kr->buckets);
	cim_key_free(kr->keys, kr->n);
	cim_key_free(kr->master, 1);
	if (kr->kv != NULL)
		kvStore_Destroy(kr->kv);
	pthread_mutex_destroy(&kr->mu);
	memset(kr, 0, sizeof *kr);
}

/* The bucket, made when missing: a KV bucket of history 1 whose stream
 * allows deleting messages, so that a forgotten key can be erased on disk
 * and not only dropped from the index (nats.c makes KV streams that deny
 * it). */
static int open_bucket(struct daemon *d)
{
	struct keyring *kr = &d->keys;
	char stream[256], subj[300];
	const char *subjects[1] = {subj};
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;

	snprintf(stream, sizeof stream, "KV_%s", d->cfg->keys_bucket);
	natsStatus s = js_GetStreamInfo(&si, d->js, stream, NULL, &je);
	if (s == NATS_NOT_FOUND) {
		jsStreamConfig sc;
		jsStreamConfig_Init(&sc);
		snprintf(subj, sizeof subj, "$KV.%s.>", d->cfg->keys_bucket);
		sc.Name = stream;
		sc.Description = "cim-events: data keys of encrypted aggregates, wrapped";
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Replicas = d->cfg->replicas;
		sc.MaxMsgsPerSubject = 1; /* history 1 */
		sc.Discard = js_DiscardNew;
		sc.AllowRollup = true;
		sc.DenyDelete = false;
		sc.DenyPurge = false;
		sc.AllowDirect = true;
		sc.Duplicates = 120 * 1000000000LL;
		s = js_AddStream(&si, d->js, &sc, NULL, &je);
		if (s == NATS_OK)
			log_info("bucket %s created", d->cfg->keys_bucket);
	}
	if (s != NATS_OK) {
		log_error("bucket %s: %s (%d)", d->cfg->keys_bucket, natsStatus_GetText(s), (int)je);
		return -1;
	}
	kr->erase_ok = !si->Config->DenyDelete;
	kr->stored_at_start = si->State.Msgs;
	kr->first_seq = si->State.FirstSeq;
	kr->last_seq = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	s = js_KeyValue(&kr->kv, d->js, d->cfg->keys_bucket);
	if (s != NATS_OK) {
		log_error("bucket %s: %s", d->cfg->keys_bucket, natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

/* The first key block stored at or after seq (skipping delete markers):
 * 1 with *m, 0 when there is none, -1 on failure. */
static int next_block(struct daemon *d, uint64_t seq, natsMsg **m)
{
	char stream[256], subj[300];
	jsDirectGetMsgOptions o;

	snprintf(stream, sizeof stream, "KV_%s", d->cfg->keys_bucket);
	snprintf(subj, sizeof subj, "$KV.%s.>", d->cfg->keys_bucket);
	for (int tries = 0; tries < 64; tries++) {
		const char *op = NULL;
		jsDirectGetMsgOptions_Init(&o);
		o.Sequence = seq;
		o.NextBySubject = subj;
		*m = NULL;
		natsStatus s = js_DirectGetMsg(m, d->js, stream, NULL, &o);
		if (s == NATS_NOT_FOUND)
			return 0;
		if (s != NATS_OK)
			return -1;
		if (natsMsgHeader_Get(*m, "KV-Operation", &op) != NATS_OK || op == NULL)
			return 1;
		seq = natsMsg_GetSequence(*m) + 1;
		natsMsg_Destroy(*m);
	}
	*m = NULL;
	return 0;
}

int keys_setup(struct daemon *d)
{
	struct keyring *kr = &d->keys;
	char type[CIM_TYPE_MAX + 1], id[CIM_ID_MAX + 1];
	natsMsg *m = NULL;
	cim_perr e;

	if (open_bucket(d) != 0)
		return -1;
	if (kr->master == NULL) {
		if (kr->stored_at_start > 0) {
			log_error("bucket %s holds %llu data key(s) of encrypted aggregates but "
				  "master_key is not set: without it their data can be neither "
				  "read nor written; set master_key (see cim-eventsd.conf(5)); "
				  "nothing was changed", d->cfg->keys_bucket,
				  (unsigned long long)kr->stored_at_start);
			return -2;
		}
		return 0;
	}
	/* the master key must be the one the stored keys are wrapped by:
	 * one of them is unwrapped now, before anything is written */
	int r = kr->stored_at_start > 0 ? next_block(d, kr->first_seq, &m) : 0;
	if (r < 0) {
		log_error("bucket %s: cannot read a stored data key to check master_key",
			  d->cfg->keys_bucket);
		return -1;
	}
	if (r == 0) {
		log_info("master_key set; bucket %s holds no data key yet", d->cfg->keys_bucket);
		return 0;
	}
	const char *subj = natsMsg_GetSubject(m);
	const char *key = subj + strlen("$KV.") + strlen(d->cfg->keys_bucket) + 1;
	cim_key *k = cim_key_alloc(1);
	int rc = -2;
	if (k == NULL) {
		log_error("out of memory");
		rc = -1;
	} else if (cim_kv_key_parse(key, type, id) != 0) {
		log_error("bucket %s holds a value under '%s', which is not an aggregate's "
			  "key; refusing to start", d->cfg->keys_bucket, key);
	} else if (unwrap_stored(kr, natsMsg_GetData(m), natsMsg_GetDataLength(m), type, id,
				 k, &e) != 0) {
		log_error("%s: master_key is not the key this store's data keys are wrapped "
			  "by (or the key block was altered); refusing to start; nothing "
			  "was changed", e.msg);
	} else {
		log_info("master_key checked: it unwraps the stored data key of %s/%s", type, id);
		rc = 0;
	}
	cim_key_free(k, 1);
	natsMsg_Destroy(m);
	return rc;
}

json_t *keys_info(struct daemon *d)
{
	struct keyring *kr = &d->keys;
	size_t used = 0, pinned = 0;

	if (kr->master == NULL)
		return json_null();
	pthread_mutex_lock(&kr->mu);
	for (size_t i = 0; i < kr->n; i++) {
		used += kr->slots[i].state != SLOT_FREE;
		pinned += kr->slots[i].pins > 0;
	}
	pthread_mutex_unlock(&kr->mu);
	return json_pack("{sI sI sI sI sI sI sb}", "cache_slots", (json_int_t)kr->n,
			 "cached", (json_int_t)used, "pinned", (json_int_t)pinned, "made",
			 (json_int_t)atomic_load(&kr->made), "loaded",
			 (json_int_t)atomic_load(&kr->loaded), "evicted",
			 (json_int_t)atomic_load(&kr->evicted), "erase", kr->erase_ok);
}
