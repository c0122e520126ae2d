/*
 * carverify.c: the offline check of carverify.h: one streaming pass that
 * indexes every block, then the walks over the index.
 *
 * The index: entries (struct ent, 32 bytes) in one growing array, each
 * block's CID in an arena of [length, bytes], and an open-addressing hash
 * table of entry numbers keyed by SipHash of the CID under a key made
 * fresh for each run (so a hostile file cannot aim its CIDs at one
 * bucket). A CID that is named before its block comes (a prev, a seal's
 * cid, a root) gets an entry of kind NAMED, which its block fills in.
 * Aggregates are interned the same way (type NUL id NUL in their own
 * arena), so an event entry holds a 4-byte aggregate number.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carverify.h"
#include "dagcbor.h"
#include "event.h"
#include "ids.h"
#include "keyblock.h"
#include "seal.h"

#define NONE UINT32_MAX
#define NO_OFFSET UINT64_MAX

enum kind { K_NAMED, K_EVENT, K_SEAL, K_KEY, K_BAD };

enum {
	F_ROOT = 1,      /* listed in the header */
	F_REACHED = 2,   /* events: on a root's chain */
	F_SEALED = 4,    /* events: sealed by a trusted key */
	F_FORGOTTEN = 8, /* events: of type CimForgotten */
	F_TRUSTED = 16,  /* seals: by a trusted key, and verified */
};

struct ent {
	uint64_t offset;  /* the section's, or NO_OFFSET while NAMED */
	uint64_t version; /* events */
	uint32_t cid;     /* its CID in the arena */
	uint32_t link;    /* events: prev's entry; seals: the sealed one */
	uint32_t agg;     /* events, key blocks */
	uint8_t kind, flags;
	uint16_t pad;
};

struct agg {
	uint32_t name;      /* type NUL id NUL in the names arena */
	uint32_t root;      /* its root's entry */
	uint32_t key_block; /* its key block's entry */
	uint32_t unreached; /* event blocks on no root's chain */
	uint32_t first_unreached;
	uint32_t broken; /* its root's walk stopped at a reported failure */
};

struct table {
	uint32_t *slots; /* entry + 1; 0 is empty */
	size_t cap, n;
};

struct vstate {
	const cim_car_verify_opts *o;
	cim_car_summary *s;
	struct ent *e;
	size_t ne, cape;
	cbuf cids;
	struct table t;
	struct agg *a;
	size_t na, capa;
	cbuf names;
	struct table at;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
	bool nomem;
};

/* ---- failures ------------------------------------------------------------------ */

static void fail(struct vstate *v, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
fail(struct vstate *v, const char *reason, const char *fmt, ...)
{
	char msg[sizeof(v->s->first)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (v->s->failures++ == 0) {
		snprintf(v->s->first_reason, sizeof(v->s->first_reason), "%s",
			 reason);
		snprintf(v->s->first, sizeof(v->s->first), "%s", msg);
	}
	if (v->o->on_failure != NULL)
		v->o->on_failure(v->o->ctx, reason, msg);
}

static const uint8_t *
ent_cid(const struct vstate *v, uint32_t i, size_t *len)
{
	const uint8_t *p = v->cids.p + v->e[i].cid;

	*len = p[0];
	return p + 1;
}

/* The text form of entry i's CID, for messages. */
static const char *
cid_text(const struct vstate *v, uint32_t i, char *buf)
{
	cim_cid c;
	size_t n;
	const uint8_t *p = ent_cid(v, i, &n);

	c.len = (uint8_t)n;
	memcpy(c.b, p, n);
	cim_cid_to_text(&c, buf);
	return buf;
}

/* "type/id" of aggregate a (tokens: plain ASCII). */
static const char *
agg_text(const struct vstate *v, uint32_t a, char *buf, size_t n)
{
	const char *type = (const char *)v->names.p + v->a[a].name;

	snprintf(buf, n, "%s/%s", type, type + strlen(type) + 1);
	return buf;
}

/* ---- the hash tables -------------------------------------------------------------- */

static size_t
hash(const struct vstate *v, const uint8_t *p, size_t n)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t x;

	crypto_shorthash(h, p, n, v->hkey);
	memcpy(&x, h, sizeof(x));
	return (size_t)x;
}

static const uint8_t *
agg_key(const struct vstate *v, uint32_t a, size_t *len)
{
	const char *p = (const char *)v->names.p + v->a[a].name;
	size_t tl = strlen(p);

	*len = tl + 1 + strlen(p + tl + 1) + 1;
	return (const uint8_t *)p;
}

/* The key of entry i of table t (the CID table or the aggregate one). */
static const uint8_t *
slot_key(const struct vstate *v, const struct table *t, uint32_t i,
	 size_t *len)
{
	return t == &v->t ? ent_cid(v, i, len) : agg_key(v, i, len);
}

/* The slot for key: holding it, or the empty one where it would go. */
static size_t
probe(const struct vstate *v, const struct table *t, const uint8_t *key,
      size_t len)
{
	size_t i = hash(v, key, len) & (t->cap - 1);

	for (;; i = (i + 1) & (t->cap - 1)) {
		const uint8_t *k;
		size_t kl;

		if (t->slots[i] == 0)
			return i;
		k = slot_key(v, t, t->slots[i] - 1, &kl);
		if (kl == len && memcmp(k, key, len) == 0)
			return i;
	}
}

/* Room for one more key (load at most one half). */
static int
table_room(struct vstate *v, struct table *t)
{
	struct table old = *t;

	if ((t->n + 1) * 2 <= t->cap)
		return 0;
	t->cap = old.cap ? old.cap * 2 : 1024;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	if (t->slots == NULL) {
		*t = old;
		v->nomem = true;
		return -1;
	}
	for (size_t i = 0; i < old.cap; i++) {
		const uint8_t *k;
		size_t kl;

		if (old.slots[i] == 0)
			continue;
		k = slot_key(v, t, old.slots[i] - 1, &kl);
		t->slots[probe(v, t, k, kl)] = old.slots[i];
	}
	free(old.slots);
	return 0;
}

static int
grow(struct vstate *v, void **arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 1024;
	if (n >= NONE - 1 || (p = realloc(*arr, ncap * size)) == NULL) {
		v->nomem = true;
		return -1;
	}
	*arr = p;
	*cap = ncap;
	return 0;
}

/* The entry for cid, made (kind NAMED) when it has none. NONE when
 * memory runs out. */
static uint32_t
entry_for(struct vstate *v, const cim_cid *cid)
{
	size_t slot;
	uint32_t i;

	if (v->nomem || table_room(v, &v->t) == -1)
		return NONE;
	slot = probe(v, &v->t, cid->b, cid->len);
	if (v->t.slots[slot] != 0)
		return v->t.slots[slot] - 1;
	if (grow(v, (void **)&v->e, &v->cape, v->ne, sizeof(*v->e)) == -1 ||
	    v->cids.len + 1 + cid->len > UINT32_MAX ||
	    cbuf_putc(&v->cids, cid->len) == -1 ||
	    cbuf_put(&v->cids, cid->b, cid->len) == -1) {
		v->nomem = true;
		return NONE;
	}
	i = (uint32_t)v->ne++;
	v->e[i] = (struct ent){.offset = NO_OFFSET,
			       .cid = (uint32_t)(v->cids.len - 1 - cid->len),
			       .link = NONE,
			       .agg = NONE,
			       .kind = K_NAMED};
	v->t.slots[slot] = i + 1;
	v->t.n++;
	return i;
}

/* The aggregate (type, id), made when new. NONE when memory runs out. */
static uint32_t
agg_for(struct vstate *v, const char *type, size_t tl, const char *id,
	size_t il)
{
	char key[CIM_TYPE_MAX + CIM_ID_MAX + 2];
	size_t slot, len = tl + 1 + il + 1;
	uint32_t i;

	memcpy(key, type, tl);
	key[tl] = '\0';
	memcpy(key + tl + 1, id, il);
	key[tl + 1 + il] = '\0';
	if (v->nomem || table_room(v, &v->at) == -1)
		return NONE;
	slot = probe(v, &v->at, (const uint8_t *)key, len);
	if (v->at.slots[slot] != 0)
		return v->at.slots[slot] - 1;
	if (grow(v, (void **)&v->a, &v->capa, v->na, sizeof(*v->a)) == -1 ||
	    v->names.len + len > UINT32_MAX ||
	    cbuf_put(&v->names, key, len) == -1) {
		v->nomem = true;
		return NONE;
	}
	i = (uint32_t)v->na++;
	v->a[i] = (struct agg){.name = (uint32_t)(v->names.len - len),
			       .root = NONE,
			       .key_block = NONE,
			       .first_unreached = NONE};
	v->at.slots[slot] = i + 1;
	v->at.n++;
	return i;
}

/* ---- recognising blocks ---------------------------------------------------------- */

/* A token of at most max bytes that ok() accepts. */
static bool
token_ok(const char *s, size_t len, size_t max, bool (*ok)(const char *))
{
	char buf[CIM_ID_MAX + 1];

	if (len == 0 || len > max)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return ok(buf);
}

static bool
trusted(const struct vstate *v, const uint8_t pk[CIM_KEY_BYTES])
{
	for (size_t i = 0; i < v->o->nkeys; i++)
		if (sodium_memcmp(v->o->keys[i], pk, CIM_KEY_BYTES) == 0)
			return true;
	return false;
}

/* An event block at entry i. */
static void
take_event(struct vstate *v, uint32_t i, const cim_event_view *ev,
	   const char *ct, uint64_t off)
{
	uint32_t a, p = NONE;

	if (!token_ok(ev->aggregate_type, ev->aggregate_type_len, CIM_TYPE_MAX,
		      cim_token_type_ok) ||
	    !token_ok(ev->aggregate_id, ev->aggregate_id_len, CIM_ID_MAX,
		      cim_token_id_ok) ||
	    !token_ok(ev->event_type, ev->event_type_len, CIM_TYPE_MAX,
		      cim_token_type_ok)) {
		v->e[i].kind = K_BAD;
		fail(v, "undecodable", "event block %s at byte %llu: its "
		     "aggregate_type, aggregate_id or event_type is not a valid "
		     "token", ct, (unsigned long long)off);
		return;
	}
	a = agg_for(v, ev->aggregate_type, ev->aggregate_type_len,
		    ev->aggregate_id, ev->aggregate_id_len);
	if (ev->has_prev)
		p = entry_for(v, &ev->prev);
	if (v->nomem)
		return;
	v->e[i].kind = K_EVENT;
	v->e[i].agg = a;
	v->e[i].link = p;
	v->e[i].version = ev->version;
	if (ev->event_type_len == strlen(CIM_FORGOTTEN_TYPE) &&
	    memcmp(ev->event_type, CIM_FORGOTTEN_TYPE, ev->event_type_len) == 0)
		v->e[i].flags |= F_FORGOTTEN;
	v->s->events++;
}

static void
take_seal(struct vstate *v, uint32_t i, const cim_seal_block *sb,
	  const char *ct, uint64_t off)
{
	char target[CIM_CID_TEXT_MAX], key[CIM_PUBKEY_TEXT_MAX];
	uint32_t t = entry_for(v, &sb->cid);

	if (t == NONE)
		return;
	v->e[i].kind = K_SEAL;
	v->e[i].link = t;
	v->s->seals++;
	if (!cim_seal_verify(sb->pk, &sb->cid, sb->sig)) {
		cim_cid_to_text(&sb->cid, target);
		cim_pubkey_to_text(sb->pk, key);
		fail(v, "bad_seal", "seal block %s at byte %llu: its signature "
		     "of %s does not verify under key %s", ct,
		     (unsigned long long)off, target, key);
		return;
	}
	if (trusted(v, sb->pk))
		v->e[i].flags |= F_TRUSTED;
}

static void
take_key_block(struct vstate *v, uint32_t i, const char *type, size_t tl,
	       const char *id, size_t il, const char *ct, uint64_t off)
{
	char other[CIM_CID_TEXT_MAX], name[CIM_TYPE_MAX + CIM_ID_MAX + 2];
	uint32_t a = agg_for(v, type, tl, id, il);

	if (a == NONE)
		return;
	v->e[i].kind = K_KEY;
	v->e[i].agg = a;
	v->s->key_blocks++;
	if (v->a[a].key_block != NONE) {
		fail(v, "duplicate", "key block %s at byte %llu: aggregate %s "
		     "already has key block %s at byte %llu", ct,
		     (unsigned long long)off, agg_text(v, a, name, sizeof(name)),
		     cid_text(v, v->a[a].key_block, other),
		     (unsigned long long)v->e[v->a[a].key_block].offset);
		return;
	}
	v->a[a].key_block = i;
}

/* One section of the file. */
static void
take_block(struct vstate *v, const cim_car_block *b)
{
	char ct[CIM_CID_TEXT_MAX], err[300];
	unsigned long long off = (unsigned long long)b->offset;
	uint64_t codec = 0, mh = 0;
	cim_event_view ev;
	cim_seal_block sb;
	cim_cbor_reader r;
	cim_cbor_item it;
	cim_wrapped_key w;
	uint32_t i;

	v->s->blocks++;
	cim_cid_to_text(&b->cid, ct);
	if ((i = entry_for(v, &b->cid)) == NONE)
		return;
	if (v->e[i].kind != K_NAMED) {
		fail(v, "duplicate", "block %s at byte %llu is in the file "
		     "twice (first at byte %llu)", ct, off,
		     (unsigned long long)v->e[i].offset);
		return;
	}
	v->e[i].offset = b->offset;
	v->e[i].kind = K_BAD;
	cim_cid_info(&b->cid, &codec, &mh);
	if (codec != CIM_CODEC_DAG_CBOR) {
		fail(v, "undecodable", "block %s at byte %llu has codec 0x%llx, "
		     "not dag-cbor (0x71): not an event, seal or key block", ct,
		     off, (unsigned long long)codec);
		return;
	}
	if (cim_hash_name(mh) == NULL) {
		fail(v, "undecodable", "block %s at byte %llu has multihash "
		     "0x%llx, neither blake2b-256 nor sha2-256", ct, off,
		     (unsigned long long)mh);
		return;
	}
	if (!cim_cid_matches(&b->cid, b->data, b->len)) {
		fail(v, "hash_mismatch", "block %s at byte %llu: its bytes do "
		     "not hash to its CID", ct, off);
		return;
	}
	if (cim_event_check(b->data, b->len, &ev, err, sizeof(err)) == 0) {
		take_event(v, i, &ev, ct, b->offset);
		return;
	}
	/* not an event: the error shown is that of the shape it has the
	 * key count of */
	cim_cbor_reader_init(&r, b->data, b->len);
	if (cim_cbor_next(&r, &it) == -1 || it.kind != CIM_CBOR_MAP)
		it.u = 0;
	if (it.u == 3 &&
	    cim_seal_block_decode(b->data, b->len, &sb, err, sizeof(err)) == 0) {
		take_seal(v, i, &sb, ct, b->offset);
		return;
	}
	if (it.u == 4) {
		/* the key block as the store keeps it (keyblock.h) */
		if (cim_keyblock_decode(&w, b->data, b->len, err,
					sizeof(err)) == 0) {
			take_key_block(v, i, w.aggregate_type,
				       strlen(w.aggregate_type), w.aggregate_id,
				       strlen(w.aggregate_id), ct, b->offset);
			return;
		}
	}
	fail(v, "undecodable", "block %s at byte %llu is not an event, seal or "
	     "key block: %s", ct, off, err);
}

static int
take_root(void *ctx, size_t n, const cim_cid *cid)
{
	struct vstate *v = ctx;
	char ct[CIM_CID_TEXT_MAX];
	uint32_t i = entry_for(v, cid);

	(void)n;
	if (i == NONE)
		return -1;
	v->s->roots++;
	if (v->e[i].flags & F_ROOT) {
		cim_cid_to_text(cid, ct);
		fail(v, "duplicate", "root %s is listed twice in the header", ct);
	}
	v->e[i].flags |= F_ROOT;
	return 0;
}

/* ---- the checks over the index -------------------------------------------------- */

static const char *
kind_name(uint8_t k)
{
	return k == K_SEAL ? "a seal block" : k == K_KEY ? "a key block"
							 : "an event block";
}

static void
check_seals(struct vstate *v)
{
	char ct[CIM_CID_TEXT_MAX], tt[CIM_CID_TEXT_MAX];

	for (uint32_t i = 0; i < v->ne; i++) {
		struct ent *s = &v->e[i];
		struct ent *t;

		if (s->kind != K_SEAL)
			continue;
		t = &v->e[s->link];
		if (t->kind == K_EVENT && (s->flags & F_TRUSTED))
			t->flags |= F_SEALED;
		else if (t->kind == K_NAMED)
			fail(v, "missing", "seal block %s at byte %llu seals %s, "
			     "which is not in the file", cid_text(v, i, ct),
			     (unsigned long long)s->offset,
			     cid_text(v, s->link, tt));
		else if (t->kind == K_SEAL || t->kind == K_KEY)
			fail(v, "broken_link", "seal block %s at byte %llu seals "
			     "%s, %s, not an event", cid_text(v, i, ct),
			     (unsigned long long)s->offset,
			     cid_text(v, s->link, tt), kind_name(t->kind));
	}
}

/* Walks root r's chain down to version 1. */
static void
walk(struct vstate *v, uint32_t r)
{
	char ct[CIM_CID_TEXT_MAX], pt[CIM_CID_TEXT_MAX],
		name[CIM_TYPE_MAX + CIM_ID_MAX + 2],
		other[CIM_TYPE_MAX + CIM_ID_MAX + 2];
	uint32_t cur = r, a = v->e[r].agg;

	agg_text(v, a, name, sizeof(name));
	v->e[r].flags |= F_REACHED;
	while (v->e[cur].version > 1) {
		uint32_t p = v->e[cur].link;
		const struct ent *c, *pe;

		if (p == NONE)
			return; /* cim_event_check: prev is there past 1 */
		c = &v->e[cur];
		pe = &v->e[p];
		v->a[a].broken = 1; /* until the walk goes on below */
		if (pe->kind == K_BAD)
			return; /* reported when read */
		cid_text(v, cur, ct);
		cid_text(v, p, pt);
		if (pe->kind == K_NAMED) {
			fail(v, "missing", "aggregate %s: version %llu (block %s "
			     "at byte %llu) links to %s, which is not in the "
			     "file", name, (unsigned long long)c->version, ct,
			     (unsigned long long)c->offset, pt);
			return;
		}
		if (pe->kind != K_EVENT) {
			fail(v, "broken_link", "aggregate %s: version %llu (block "
			     "%s at byte %llu) links to %s, %s at byte %llu",
			     name, (unsigned long long)c->version, ct,
			     (unsigned long long)c->offset, pt,
			     kind_name(pe->kind), (unsigned long long)pe->offset);
			return;
		}
		if (pe->agg != a) {
			fail(v, "broken_link", "aggregate %s: version %llu (block "
			     "%s at byte %llu) links to %s at byte %llu, an "
			     "event of aggregate %s", name,
			     (unsigned long long)c->version, ct,
			     (unsigned long long)c->offset, pt,
			     (unsigned long long)pe->offset,
			     agg_text(v, pe->agg, other, sizeof(other)));
			return;
		}
		if (pe->version != c->version - 1) {
			fail(v, "version_gap", "aggregate %s: version %llu (block "
			     "%s at byte %llu) links to %s at byte %llu, which "
			     "is version %llu", name,
			     (unsigned long long)c->version, ct,
			     (unsigned long long)c->offset, pt,
			     (unsigned long long)pe->offset,
			     (unsigned long long)pe->version);
			return;
		}
		v->a[a].broken = 0;
		if (pe->flags & F_REACHED)
			return;
		v->e[p].flags |= F_REACHED;
		cur = p;
	}
}

/* With trusted keys: root r (an event) must carry a trusted seal. */
static void
check_sealed(struct vstate *v, uint32_t r)
{
	char ct[CIM_CID_TEXT_MAX], name[CIM_TYPE_MAX + CIM_ID_MAX + 2];
	uint32_t cur = r;
	uint64_t through = 0;

	if (v->e[r].flags & F_SEALED) {
		v->s->roots_sealed++;
		return;
	}
	/* the last version a trusted seal covers, for the message */
	while (v->e[cur].kind == K_EVENT && v->e[cur].agg == v->e[r].agg) {
		if (v->e[cur].flags & F_SEALED) {
			through = v->e[cur].version;
			break;
		}
		if (v->e[cur].version <= 1 || v->e[cur].link == NONE)
			break;
		cur = v->e[cur].link;
	}
	agg_text(v, v->e[r].agg, name, sizeof(name));
	cid_text(v, r, ct);
	if (through > 0)
		fail(v, "unsealed", "aggregate %s: root %s (version %llu, at byte "
		     "%llu) is not sealed by a trusted key: trusted seals cover "
		     "it through version %llu, so versions %llu to %llu are "
		     "unsealed", name, ct, (unsigned long long)v->e[r].version,
		     (unsigned long long)v->e[r].offset,
		     (unsigned long long)through, (unsigned long long)through + 1,
		     (unsigned long long)v->e[r].version);
	else
		fail(v, "unsealed", "aggregate %s: root %s (version %llu, at byte "
		     "%llu) is not sealed by a trusted key: no trusted seal "
		     "covers any of it, so versions 1 to %llu are unsealed", name,
		     ct, (unsigned long long)v->e[r].version,
		     (unsigned long long)v->e[r].offset,
		     (unsigned long long)v->e[r].version);
}

static void
check_roots(struct vstate *v)
{
	char ct[CIM_CID_TEXT_MAX], ot[CIM_CID_TEXT_MAX],
		name[CIM_TYPE_MAX + CIM_ID_MAX + 2];

	for (uint32_t i = 0; i < v->ne; i++) {
		const struct ent *r = &v->e[i];
		uint32_t a;

		if (!(r->flags & F_ROOT) || r->kind == K_BAD)
			continue;
		if (r->kind == K_NAMED) {
			fail(v, "missing", "root %s is not in the file",
			     cid_text(v, i, ct));
			continue;
		}
		if (r->kind != K_EVENT) {
			fail(v, "broken_link", "root %s at byte %llu is %s, not "
			     "an event block", cid_text(v, i, ct),
			     (unsigned long long)r->offset, kind_name(r->kind));
			continue;
		}
		a = r->agg;
		if (v->a[a].root != NONE) {
			uint32_t o = v->a[a].root;

			fail(v, "duplicate", "aggregate %s has two roots: %s "
			     "(version %llu, at byte %llu) and %s (version %llu, "
			     "at byte %llu)", agg_text(v, a, name, sizeof(name)),
			     cid_text(v, o, ot),
			     (unsigned long long)v->e[o].version,
			     (unsigned long long)v->e[o].offset,
			     cid_text(v, i, ct), (unsigned long long)r->version,
			     (unsigned long long)r->offset);
			continue;
		}
		v->a[a].root = i;
		v->s->aggregates++;
		walk(v, i);
		if (v->o->nkeys > 0)
			check_sealed(v, i);
	}
}

static void
check_unreached(struct vstate *v)
{
	char ct[CIM_CID_TEXT_MAX], name[CIM_TYPE_MAX + CIM_ID_MAX + 2];

	for (uint32_t i = 0; i < v->ne; i++) {
		struct agg *a;

		if (v->e[i].kind != K_EVENT || (v->e[i].flags & F_REACHED))
			continue;
		a = &v->a[v->e[i].agg];
		if (a->unreached++ == 0 ||
		    v->e[i].version < v->e[a->first_unreached].version)
			a->first_unreached = i;
	}
	for (uint32_t k = 0; k < v->na; k++) {
		const struct agg *a = &v->a[k];
		const struct ent *e;

		/* below a broken chain nothing is reached: said already */
		if (a->unreached == 0 || a->broken)
			continue;
		e = &v->e[a->first_unreached];
		fail(v, "unreached", "aggregate %s: %u event block%s on no "
		     "root's chain (the lowest: version %llu, block %s at byte "
		     "%llu)", agg_text(v, k, name, sizeof(name)), a->unreached,
		     a->unreached == 1 ? " is" : "s are",
		     (unsigned long long)e->version,
		     cid_text(v, a->first_unreached, ct),
		     (unsigned long long)e->offset);
	}
}

static void
check_key_blocks(struct vstate *v)
{
	char ct[CIM_CID_TEXT_MAX], name[CIM_TYPE_MAX + CIM_ID_MAX + 2];

	for (uint32_t k = 0; k < v->na; k++) {
		const struct agg *a = &v->a[k];

		if (a->key_block == NONE)
			continue;
		if (a->root == NONE)
			fail(v, "missing", "key block %s at byte %llu is for "
			     "aggregate %s, which has no root in the file",
			     cid_text(v, a->key_block, ct),
			     (unsigned long long)v->e[a->key_block].offset,
			     agg_text(v, k, name, sizeof(name)));
		else if (v->e[a->root].flags & F_FORGOTTEN)
			fail(v, "forgotten", "key block %s at byte %llu is for "
			     "aggregate %s, which was forgotten (its head is a "
			     CIM_FORGOTTEN_TYPE " event): a forgotten aggregate "
			     "has no key", cid_text(v, a->key_block, ct),
			     (unsigned long long)v->e[a->key_block].offset,
			     agg_text(v, k, name, sizeof(name)));
	}
}

/* ---- the run ------------------------------------------------------------------------ */

static void
vstate_free(struct vstate *v)
{
	v->s->index_bytes = v->cape * sizeof(*v->e) + v->cids.cap +
			    v->t.cap * sizeof(*v->t.slots) +
			    v->capa * sizeof(*v->a) + v->names.cap +
			    v->at.cap * sizeof(*v->at.slots);
	free(v->e);
	free(v->a);
	free(v->t.slots);
	free(v->at.slots);
	cbuf_free(&v->cids);
	cbuf_free(&v->names);
}

static int
cannot_check(struct vstate *v, const char *why)
{
	snprintf(v->s->first_reason, sizeof(v->s->first_reason), "%s",
		 "cannot_check");
	snprintf(v->s->first, sizeof(v->s->first), "%s", why);
	vstate_free(v);
	return -1;
}

int
cim_car_verify(cim_car_source src, void *sctx, const cim_car_verify_opts *opts,
	       cim_car_summary *summary)
{
	static const cim_car_verify_opts none = {0};
	struct vstate v = {.o = opts != NULL ? opts : &none, .s = summary};
	cim_car_reader r;
	cim_car_block b;
	bool broken = false;
	int rc;

	memset(summary, 0, sizeof(*summary));
	if (cim_sodium_ready() == -1)
		return cannot_check(&v, "libsodium cannot start");
	crypto_shorthash_keygen(v.hkey);
	rc = cim_car_reader_open(&r, src, sctx, take_root, &v);
	while (rc == 0 && !v.nomem) {
		rc = cim_car_reader_next(&r, &b);
		if (rc <= 0)
			break;
		take_block(&v, &b);
		if (v.o->on_progress != NULL)
			v.o->on_progress(v.o->ctx, r.offset);
		rc = 0;
	}
	summary->bytes = r.offset;
	if (v.nomem || r.io_error) {
		char why[sizeof(summary->first)];

		snprintf(why, sizeof(why), "%s",
			 v.nomem ? "out of memory for the index" : r.err);
		cim_car_reader_close(&r);
		return cannot_check(&v, why);
	}
	if (rc < 0) {
		/* the rest of the file cannot be read: checking the chains
		 * would only list what is cut off */
		fail(&v, "bad_car", "CAR file %s; nothing after it was read",
		     r.err);
		broken = true;
	}
	cim_car_reader_close(&r);
	if (!broken) {
		check_seals(&v);
		check_roots(&v);
		check_unreached(&v);
		check_key_blocks(&v);
	}
	vstate_free(&v);
	return summary->failures > 0 ? 1 : 0;
}
