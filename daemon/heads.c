/*
 * heads.c: every aggregate's head in memory, and the idempotency window.
 *
 * The head table is a chained hash table keyed by "type NUL id", hashed
 * with SipHash (libsodium's crypto_shorthash) under a key chosen at start,
 * so request names cannot be picked to collide. Each entry is one
 * allocation of about 100 bytes; the table doubles when it is as full as
 * it has slots. Entries are never freed while the daemon runs, so a
 * pointer to one stays valid.
 *
 * The window remembers, for idempotency_window seconds, which event_ids
 * were stored where: a ring of entries, oldest first, with an open-address
 * index on the event_id's hash. Only the hash is kept; a hit is confirmed
 * by reading the stored event (append.c), so a collision costs one read,
 * never a wrong answer. Expiring an entry only moves the ring's head: index
 * slots that point at expired or reused ring positions are harmless (a
 * look-up checks hash and expiry) and go when the index is rebuilt, which
 * happens when it is three-quarters full, so adding costs O(1) on average.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "event.h"
#include "ids.h"

#define KEY_MAX (CIM_TYPE_MAX + 1 + CIM_ID_MAX + 1)

static unsigned char sip_key[crypto_shorthash_KEYBYTES];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void make_key(void)
{
	if (sodium_init() < 0)
		abort();
	randombytes_buf(sip_key, sizeof sip_key);
}

static uint64_t sip(const void *p, size_t n)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t v;

	pthread_once(&key_once, make_key);
	crypto_shorthash(out, p, n, sip_key);
	memcpy(&v, out, sizeof v);
	return v;
}

uint64_t event_id_hash(const char *event_id, size_t len)
{
	uint64_t h = sip(event_id, len);
	return h ? h : 1; /* 0 means "no event" in struct agg */
}

uint64_t event_id_digest(const char *event_id, size_t len)
{
	unsigned char out[8];
	uint64_t v;

	crypto_generichash(out, sizeof out, (const unsigned char *)event_id,
			   len, NULL, 0);
	memcpy(&v, out, sizeof v);
	return v ? v : 1; /* 0 means "no event" in struct agg */
}

static uint32_t key_hash(const char *type, size_t tl, const char *id, size_t il)
{
	char buf[KEY_MAX];
	memcpy(buf, type, tl);
	buf[tl] = '\0';
	memcpy(buf + tl + 1, id, il);
	return (uint32_t)sip(buf, tl + 1 + il);
}

int heads_init(struct heads *h, size_t hint)
{
	size_t n = 1024;
	while (n < hint)
		n <<= 1;
	h->slots = calloc(n, sizeof *h->slots);
	if (h->slots == NULL)
		return -1;
	h->mask = n - 1;
	h->count = 0;
	return 0;
}

void heads_free(struct heads *h)
{
	for (size_t i = 0; i < h->ntype_names; i++)
		free(h->type_names[i]);
	free(h->type_names);
	free(h->type_index);
	for (size_t i = 0; h->slots && i <= h->mask; i++) {
		struct agg *a = h->slots[i];
		while (a) {
			struct agg *next = a->next;
			if (a->ntypes > AGG_TYPES_INLINE && a->ntypes != AGG_TYPES_UNKNOWN)
				free(a->types.ext);
			free(a);
			a = next;
		}
	}
	free(h->slots);
	memset(h, 0, sizeof *h);
}

static bool key_eq(const struct agg *a, const char *type, size_t tl,
		   const char *id, size_t il)
{
	return a->tlen == tl && memcmp(a->key, type, tl) == 0 &&
	       strcmp(a->key + tl + 1, id) == 0 && strlen(id) == il;
}

static void resize(struct heads *h, size_t n);

void heads_reserve(struct heads *h, size_t n)
{
	size_t slots = h->mask + 1;
	while (slots < n && slots < ((size_t)1 << 30))
		slots <<= 1;
	if (slots > h->mask + 1)
		resize(h, slots);
}

struct agg *heads_find(struct heads *h, const char *type, const char *id)
{
	size_t tl = strlen(type), il = strlen(id);
	uint32_t hv = key_hash(type, tl, id, il);

	for (struct agg *a = h->slots[hv & h->mask]; a; a = a->next)
		if (a->hash == hv && key_eq(a, type, tl, id, il))
			return a;
	return NULL;
}

static void resize(struct heads *h, size_t n)
{
	struct agg **slots = calloc(n, sizeof *slots);

	if (slots == NULL)
		return; /* stay at this size; chains get longer, nothing breaks */
	for (size_t i = 0; i <= h->mask; i++) {
		struct agg *a = h->slots[i];
		while (a) {
			struct agg *next = a->next;
			a->next = slots[a->hash & (n - 1)];
			slots[a->hash & (n - 1)] = a;
			a = next;
		}
	}
	free(h->slots);
	h->slots = slots;
	h->mask = n - 1;
}

struct agg *heads_get_or_add(struct heads *h, const char *type, const char *id)
{
	size_t tl = strlen(type), il = strlen(id);
	uint32_t hv = key_hash(type, tl, id, il);
	struct agg *a;

	for (a = h->slots[hv & h->mask]; a; a = a->next)
		if (a->hash == hv && key_eq(a, type, tl, id, il))
			return a;
	a = calloc(1, sizeof *a + tl + il + 2);
	if (a == NULL)
		return NULL;
	a->hash = hv;
	a->tlen = (uint8_t)tl;
	memcpy(a->key, type, tl);
	memcpy(a->key + tl + 1, id, il);
	if (h->count >= h->mask + 1)
		resize(h, (h->mask + 1) * 2);
	a->next = h->slots[hv & h->mask];
	h->slots[hv & h->mask] = a;
	h->count++;
	return a;
}

void heads_remove(struct heads *h, struct agg *a)
{
	for (struct agg **pp = &h->slots[a->hash & h->mask]; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			h->count--;
			if (a->ntypes > AGG_TYPES_INLINE && a->ntypes != AGG_TYPES_UNKNOWN)
				free(a->types.ext);
			free(a);
			return;
		}
}

/* ---- event types ---------------------------------------------------------------- */

int heads_type_id(struct heads *h, const char *name, size_t len, bool add)
{
	uint64_t hv = sip(name, len);

	for (size_t s = h->type_index ? hv & h->type_mask : 0; h->type_index && h->type_index[s];
	     s = (s + 1) & h->type_mask) {
		const char *t = h->type_names[h->type_index[s] - 1];
		if (strlen(t) == len && memcmp(t, name, len) == 0)
			return (int)h->type_index[s] - 1;
	}
	if (!add || h->ntype_names >= UINT16_MAX)
		return -1;
	if ((h->ntype_names + 1) * 2 > h->type_mask + 1 || h->type_index == NULL) {
		size_t slots = h->type_index ? (h->type_mask + 1) * 2 : 64;
		uint32_t *ix = calloc(slots, sizeof *ix);
		if (ix == NULL)
			return -1;
		for (size_t i = 0; i < h->ntype_names; i++) {
			size_t s = sip(h->type_names[i], strlen(h->type_names[i])) & (slots - 1);
			while (ix[s])
				s = (s + 1) & (slots - 1);
			ix[s] = (uint32_t)i + 1;
		}
		free(h->type_index);
		h->type_index = ix;
		h->type_mask = slots - 1;
	}
	if (h->ntype_names == h->type_cap) {
		size_t cap = h->type_cap ? h->type_cap * 2 : 64;
		char **n = realloc(h->type_names, cap * sizeof *n);
		if (n == NULL)
			return -1;
		h->type_names = n;
		h->type_cap = cap;
	}
	char *copy = strndup(name, len);
	if (copy == NULL)
		return -1;
	h->type_names[h->ntype_names] = copy;
	size_t s = hv & h->type_mask;
	while (h->type_index[s])
		s = (s + 1) & h->type_mask;
	h->type_index[s] = (uint32_t)h->ntype_names + 1;
	return (int)h->ntype_names++;
}

static uint16_t *types_of(struct agg *a)
{
	return a->ntypes <= AGG_TYPES_INLINE ? a->types.inl : a->types.ext;
}

void agg_add_type(struct heads *h, struct agg *a, const char *event_type, size_t len)
{
	/* nothing is appended after a CimForgotten event: its aggregate is
	 * forgotten from the moment one is in its head */
	if (len == sizeof CIM_FORGOTTEN_TYPE - 1 && memcmp(event_type, CIM_FORGOTTEN_TYPE, len) == 0)
		a->forgotten = AGG_FORGOTTEN;
	if (a->ntypes == AGG_TYPES_UNKNOWN)
		return;
	uint16_t *t = types_of(a);
	/* most events repeat a type the aggregate has: no hashing for those */
	for (int i = 0; i < a->ntypes; i++) {
		const char *name = h->type_names[t[i]];
		if (strncmp(name, event_type, len) == 0 && name[len] == '\0')
			return;
	}
	int id = heads_type_id(h, event_type, len, true);
	if (id < 0 || a->ntypes + 1 >= AGG_TYPES_UNKNOWN)
		goto unknown;
	if (a->ntypes < AGG_TYPES_INLINE) {
		a->types.inl[a->ntypes++] = (uint16_t)id;
		return;
	}
	/* the out-of-line array grows in powers of two from 8 */
	size_t n = a->ntypes;
	if (n == AGG_TYPES_INLINE || (n >= 8 && (n & (n - 1)) == 0)) {
		uint16_t *ext = malloc((n < 8 ? 8 : n * 2) * sizeof *ext);
		if (ext == NULL)
			goto unknown;
		memcpy(ext, t, n * sizeof *ext);
		if (n > AGG_TYPES_INLINE)
			free(a->types.ext);
		a->types.ext = ext;
	}
	a->types.ext[a->ntypes++] = (uint16_t)id;
	return;
unknown:
	if (a->ntypes > AGG_TYPES_INLINE)
		free(a->types.ext);
	a->ntypes = AGG_TYPES_UNKNOWN;
}

int agg_types(const struct heads *h, const struct agg *a, const char **out, int max)
{
	if (a->ntypes == AGG_TYPES_UNKNOWN || a->ntypes > max)
		return -1;
	const uint16_t *t = a->ntypes <= AGG_TYPES_INLINE ? a->types.inl : a->types.ext;
	for (int i = 0; i < a->ntypes; i++)
		out[i] = h->type_names[t[i]];
	return a->ntypes;
}

void agg_set_head(struct agg *a, uint64_t version, const cim_cid *cid,
		  uint64_t seq, const char *event_id, size_t eid_len)
{
	a->version = version;
	a->seq = seq;
	a->eid_hash = event_id ? event_id_digest(event_id, eid_len) : 0;
	a->cid_len = 0;
	if (cid != NULL && cid->len <= AGG_CID_MAX) {
		memcpy(a->cid, cid->b, cid->len);
		a->cid_len = cid->len;
	}
}

void agg_head_cid(const struct agg *a, cim_cid *out)
{
	out->len = a->cid_len;
	memcpy(out->b, a->cid, a->cid_len);
}

/* ---- the idempotency window ---------------------------------------------- */

struct recent_ent {
	uint64_t eid_hash;
	struct agg *agg;
	uint64_t version;
	uint64_t seq;
	int64_t expires_ns;
};

int recent_init(struct recent *r)
{
	memset(r, 0, sizeof *r);
	r->cap = 1024;
	r->ents = calloc(r->cap, sizeof *r->ents);
	r->index_mask = 2 * r->cap - 1;
	r->index = calloc(r->index_mask + 1, sizeof *r->index);
	return r->ents && r->index ? 0 : -1;
}

void recent_free(struct recent *r)
{
	free(r->ents);
	free(r->index);
	memset(r, 0, sizeof *r);
}

static size_t ring_pos(const struct recent *r, size_t i) { return (r->head + i) % r->cap; }

/* Rebuilds the index from the ring (after growing or expiring). */
static int reindex(struct recent *r, size_t index_slots)
{
	uint32_t *ix = calloc(index_slots, sizeof *ix);
	if (ix == NULL)
		return -1;
	free(r->index);
	r->index = ix;
	r->index_mask = index_slots - 1;
	r->index_used = r->len;
	for (size_t i = 0; i < r->len; i++) {
		size_t pos = ring_pos(r, i);
		size_t s = r->ents[pos].eid_hash & r->index_mask;
		while (r->index[s])
			s = (s + 1) & r->index_mask;
		r->index[s] = (uint32_t)pos + 1;
	}
	return 0;
}

static int ring_grow(struct recent *r)
{
	size_t ncap = r->cap * 2;
	struct recent_ent *e = malloc(ncap * sizeof *e);

	if (e == NULL || ncap > UINT32_MAX - 1) {
		free(e);
		return -1;
	}
	for (size_t i = 0; i < r->len; i++)
		e[i] = r->ents[ring_pos(r, i)];
	free(r->ents);
	r->ents = e;
	r->cap = ncap;
	r->head = 0;
	return reindex(r, 2 * ncap);
}

void recent_add(struct recent *r, const char *event_id, size_t eid_len, struct agg *a,
		uint64_t version, uint64_t seq, int64_t now, int64_t window_ns)
{
	size_t expired = 0;

	while (expired < r->len && r->ents[ring_pos(r, expired)].expires_ns <= now)
		expired++;
	r->head = ring_pos(r, expired);
	r->len -= expired;
	if (r->len == r->cap && ring_grow(r) != 0) {
		/* no memory: forget the oldest instead */
		r->head = ring_pos(r, 1);
		r->len--;
	}
	size_t pos = ring_pos(r, r->len);
	r->ents[pos] = (struct recent_ent){event_id_hash(event_id, eid_len), a, version, seq,
					   now + window_ns};
	r->len++;
	if (r->index_used + 1 >= r->index_mask + 1)
		return; /* no memory to rebuild the index: this one is not indexed */
	size_t s = r->ents[pos].eid_hash & r->index_mask;
	while (r->index[s])
		s = (s + 1) & r->index_mask;
	r->index[s] = (uint32_t)pos + 1;
	if (++r->index_used * 4 > (r->index_mask + 1) * 3)
		reindex(r, r->index_mask + 1); /* on failure, the old index stays */
}

int recent_find(struct recent *r, const char *event_id, size_t eid_len, struct agg **a,
		uint64_t *version, uint64_t *seq)
{
	uint64_t h = event_id_hash(event_id, eid_len);
	int64_t now = now_ns();

	for (size_t s = h & r->index_mask; r->index[s]; s = (s + 1) & r->index_mask) {
		const struct recent_ent *e = &r->ents[r->index[s] - 1];
		if (e->eid_hash == h && e->expires_ns > now) {
			*a = e->agg;
			*version = e->version;
			*seq = e->seq;
			return 0;
		}
	}
	return -1;
}
