/*
 * typeindex.c: the event type of every message of the stream, by stream
 * sequence, so that by_type (read.c) reads exactly the messages of its
 * type and finds its end without asking JetStream.
 *
 * Why the daemon keeps it. Reading one event type across aggregates from
 * JetStream takes a wildcard filter (events.*.*.<type>), and nats-server
 * 2.9.10 serves one by walking every message after the start, twice when
 * the consumer is made (to count what is pending): 0.8 s for a page at the
 * start of a stream of 1M events, and the count it comes to can be wrong
 * (issue 12), which is how a read waited out its expiry or ended early.
 * The daemon sees every message it stores (its acks), the start-up scan
 * every message there is; with the type of each sequence at hand, by_type
 * takes the sequences of its type in order and gets those messages by
 * sequence, which JetStream answers from its index at any length.
 *
 * What it holds. Per sequence, 2 bytes: TIX_UNSEEN (not noted: a message
 * not yet acknowledged, one the daemon has not seen, or past the end),
 * TIX_OTHER (no message there, or one not on an event subject), or the
 * event type's id in the heads' type table plus 1 (TIX_NOID: a type the
 * table has no room for). A note is a fact about the stream's subjects,
 * which never change; a message deleted later is noted TIX_OTHER when the
 * daemon deletes it, and found missing by the read otherwise. So the index
 * only says where to look: by_type reads every sequence of its type and
 * every unseen one up to the highest noted, and decides from the message.
 *
 * Pages of 32768 sequences (64 KiB) are allocated as sequences are noted,
 * each with a count of noted entries and a 64-bit mask of the values in it,
 * so a walk skips, without reading them, full pages that hold no message of
 * the type. Memory: 2 bytes per stream sequence from the stream's first.
 *
 * Persistence. A start-up from a heads checkpoint reads only the stream
 * after it, so the index is written beside the checkpoint: every page
 * changed since it was last written goes to the heads bucket as
 * typeindex.<page> (checkpoint_write), with the highest sequence up to
 * which every entry of the page was noted. Start-up reads the pages up to
 * the checkpoint back and replays the stream from the first sequence they
 * do not cover (tix_load); a page missing (the first start after an
 * upgrade) or of another stream means replaying from its start. What a
 * page notes past the stream's last sequence is dropped: the replay
 * notes every sequence up to the last afresh, but nothing would correct
 * an entry past it before a message is stored there (one the daemon does
 * not note at once: an append in flight, an abandoned one landing), and
 * such an entry, left from messages the stream lost (an OS crash after
 * their acks), could name another type and hide it from by_type.
 *
 * Every field is guarded by d->mu; tix_collect, tix_write and tix_load
 * take it themselves, in short holds.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "daemon.h"
#include "log.h"

#define TIX_BITS 15
#define TIX_PAGE ((uint64_t)1 << TIX_BITS)
#define TIX_UNSEEN 0
#define TIX_NOID 0xfffe
#define TIX_OTHER 0xffff
#define TIX_MAX_ID 0xfffc /* ids above are noted TIX_NOID */
#define TIX_MAGIC "CIMTIX01"
#define TIX_SLICE 8192    /* entries walked per hold of d->mu */

struct tix_page {
	uint16_t v[TIX_PAGE];
	uint32_t seen;  /* entries not TIX_UNSEEN */
	uint64_t mask;  /* bit (value % 64) of every value noted */
	bool dirty;     /* changed since it was written to the bucket */
};

static uint64_t bit_of(unsigned v)
{
	return (uint64_t)1 << (v % 64);
}

void tix_free(struct typeindex *x)
{
	for (size_t i = 0; i < x->npages; i++)
		free(x->pages[i]);
	free(x->pages);
	memset(x, 0, sizeof *x);
}

/* The page of seq, made when missing (entries below the stream's first
 * sequence, and sequence 0, noted TIX_OTHER). NULL for a sequence below
 * the stream's first page, and when memory runs out. The page table starts
 * at the first page, so a stream that starts high costs nothing below. */
static struct tix_page *page_of(struct typeindex *x, uint64_t seq, bool make)
{
	uint64_t first_page = x->first >> TIX_BITS;

	if ((seq >> TIX_BITS) < first_page)
		return NULL;
	size_t p = (size_t)((seq >> TIX_BITS) - first_page);
	if (p < x->npages && x->pages[p] != NULL)
		return x->pages[p];
	if (!make)
		return NULL;
	if (p >= x->npages) {
		size_t n = x->npages ? x->npages : 64;
		while (n <= p)
			n *= 2;
		struct tix_page **pp = realloc(x->pages, n * sizeof *pp);
		if (pp == NULL)
			return NULL;
		memset(pp + x->npages, 0, (n - x->npages) * sizeof *pp);
		x->pages = pp;
		x->npages = n;
	}
	struct tix_page *pg = calloc(1, sizeof *pg);
	if (pg == NULL)
		return NULL;
	uint64_t base = (seq >> TIX_BITS) << TIX_BITS;
	for (uint64_t s = base; s < base + TIX_PAGE && (s == 0 || s < x->first); s++) {
		pg->v[s - base] = TIX_OTHER;
		pg->seen++;
	}
	if (pg->seen)
		pg->mask |= bit_of(TIX_OTHER);
	x->pages[p] = pg;
	x->bytes += sizeof *pg;
	return pg;
}

static void note(struct typeindex *x, uint64_t seq, unsigned v)
{
	struct tix_page *pg = page_of(x, seq, true);
	if (pg == NULL)
		return; /* not noted: read as unseen, which is slower, not wrong */
	uint16_t *e = &pg->v[seq & (TIX_PAGE - 1)];
	if (*e == v)
		return;
	if (*e == TIX_UNSEEN)
		pg->seen++;
	*e = (uint16_t)v;
	pg->mask |= bit_of(v);
	pg->dirty = true;
	if (v != TIX_OTHER && seq > x->high)
		x->high = seq;
}

void tix_note_type(struct daemon *d, uint64_t seq, const char *event_type, size_t len)
{
	int id = event_type ? heads_type_id(&d->heads, event_type, len, true) : -1;

	note(&d->tix, seq, event_type == NULL ? TIX_OTHER
			   : id < 0 || id > TIX_MAX_ID ? TIX_NOID : (unsigned)id + 1);
}

void tix_note_subject(struct daemon *d, uint64_t seq, const char *subject)
{
	size_t plen = strlen(d->events_prefix);
	const char *et = subject ? strrchr(subject, '.') : NULL;

	/* <prefix><type>.<id>.<event_type>: three tokens after the prefix */
	if (subject == NULL || strncmp(subject, d->events_prefix, plen) != 0 || et == NULL ||
	    et - subject < (ptrdiff_t)plen + 3) {
		tix_note_type(d, seq, NULL, 0);
		return;
	}
	tix_note_type(d, seq, et + 1, strlen(et + 1));
}

void tix_note_gap(struct daemon *d, uint64_t from, uint64_t to)
{
	for (uint64_t s = from; s <= to && s != 0; s++)
		note(&d->tix, s, TIX_OTHER);
}

size_t tix_collect(struct daemon *d, int id, uint64_t *pos, uint64_t *out, size_t max)
{
	unsigned want = id < 0 || id > TIX_MAX_ID ? TIX_UNSEEN : (unsigned)id + 1;
	uint64_t skip_mask = bit_of(want) | bit_of(TIX_NOID);
	size_t n = 0;

	while (n < max) {
		pthread_mutex_lock(&d->mu);
		struct typeindex *x = &d->tix;
		uint64_t s = *pos < x->first ? x->first : *pos, high = x->high;
		size_t walked = 0;
		while (n < max && s <= high && walked < TIX_SLICE) {
			struct tix_page *pg = page_of(x, s, false);
			uint64_t end = ((s >> TIX_BITS) + 1) << TIX_BITS;
			if (pg == NULL || (pg->seen == TIX_PAGE && !(pg->mask & skip_mask))) {
				if (pg == NULL) /* nothing noted in it: every entry unseen */
					while (n < max && s < end && s <= high)
						out[n++] = s++;
				else
					s = end;
				walked += 64;
				continue;
			}
			for (; n < max && s < end && s <= high && walked < TIX_SLICE; s++, walked++) {
				unsigned v = pg->v[s & (TIX_PAGE - 1)];
				if (v == want || v == TIX_UNSEEN || v == TIX_NOID)
					out[n++] = s;
			}
		}
		pthread_mutex_unlock(&d->mu);
		*pos = s;
		if (s > high)
			break;
	}
	return n;
}

void tix_stats(struct daemon *d, uint64_t *bytes, uint64_t *high)
{
	pthread_mutex_lock(&d->mu);
	*bytes = d->tix.bytes;
	*high = d->tix.high;
	pthread_mutex_unlock(&d->mu);
}

/* ---- in the heads bucket ------------------------------------------------------- */

/*
 * One page, all integers little-endian:
 *   "CIMTIX01", u64 the stream's creation time, u64 page number,
 *   u64 covered: every entry of the page up to this sequence was noted,
 *   u16 n, n x (u16 len, event type name),
 *   TIX_PAGE x u16: 0 unseen, 0xffff other, 0xfffe no id, k + 1 the k-th name
 */

static void page_key(char *out, size_t n, size_t p)
{
	snprintf(out, n, "typeindex.%zu", p);
}

static int put_le(cbuf *b, uint64_t v, int n)
{
	uint8_t x[8];
	for (int i = 0; i < n; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return cbuf_put(b, x, (size_t)n);
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Page p as its value in *b; d->mu held. */
static int page_blob(struct daemon *d, size_t p, const struct tix_page *pg, cbuf *b)
{
	uint16_t *local = calloc(0x10000, sizeof *local); /* id + 1 -> local + 1 */
	const char **names = NULL;
	size_t nnames = 0;
	uint64_t base = (uint64_t)p << TIX_BITS, covered = base ? base - 1 : 0;
	int rc = -1;

	if (local == NULL || (names = calloc(0x10000, sizeof *names)) == NULL)
		goto out;
	for (uint64_t i = 0; i < TIX_PAGE && pg->v[i] != TIX_UNSEEN; i++)
		covered = base + i;
	for (uint64_t i = 0; i < TIX_PAGE; i++) {
		unsigned v = pg->v[i];
		if (v != TIX_UNSEEN && v < TIX_NOID && local[v] == 0) {
			names[nnames] = d->heads.type_names[v - 1];
			local[v] = (uint16_t)++nnames;
		}
	}
	cbuf_reset(b);
	rc = cbuf_reserve(b, 8 * 4 + 2 * TIX_PAGE + 2 + nnames * (2 + CIM_TYPE_MAX));
	rc |= cbuf_put(b, TIX_MAGIC, 8);
	rc |= put_le(b, (uint64_t)d->stream_created, 8);
	rc |= put_le(b, p, 8);
	rc |= put_le(b, covered, 8);
	rc |= put_le(b, nnames, 2);
	for (size_t i = 0; i < nnames && rc == 0; i++) {
		rc |= put_le(b, strlen(names[i]), 2);
		rc |= cbuf_put(b, names[i], strlen(names[i]));
	}
	for (uint64_t i = 0; i < TIX_PAGE && rc == 0; i++) {
		unsigned v = pg->v[i];
		rc |= put_le(b, v == TIX_UNSEEN || v >= TIX_NOID ? v : local[v], 2);
	}
	rc = rc ? -1 : 0;
out:
	free(local);
	free(names);
	return rc;
}

int tix_write(struct daemon *d)
{
	cbuf b = CBUF_INIT;
	size_t written = 0;
	int rc = 0;

	for (size_t i = 0;; i++) {
		pthread_mutex_lock(&d->mu);
		if (i >= d->tix.npages) {
			pthread_mutex_unlock(&d->mu);
			break;
		}
		size_t p = (size_t)(d->tix.first >> TIX_BITS) + i;
		struct tix_page *pg = d->tix.pages[i];
		bool due = pg != NULL && pg->dirty;
		if (due && page_blob(d, p, pg, &b) == 0)
			pg->dirty = false;
		else
			due = false;
		pthread_mutex_unlock(&d->mu);
		if (!due)
			continue;
		char key[64];
		page_key(key, sizeof key, p);
		natsStatus s = kvStore_Put(NULL, d->heads_kv, key, b.p, (int)b.len);
		if (s != NATS_OK) {
			log_warn("type index: cannot write %s: %s", key, natsStatus_GetText(s));
			pthread_mutex_lock(&d->mu);
			d->tix.pages[i]->dirty = true;
			pthread_mutex_unlock(&d->mu);
			rc = -1;
			break;
		}
		written++;
	}
	cbuf_free(&b);
	return rc < 0 ? -1 : (int)written;
}

/* Notes what the value of page p says, up to last (the entries past it
 * are dropped, and the page is written again without them); d->mu held.
 * The sequence up to which it covers the page (never past last), or 0
 * when it is not a page of this stream. */
static uint64_t page_load(struct daemon *d, size_t p, const uint8_t *v, size_t len,
			  uint64_t last)
{
	uint64_t base = (uint64_t)p << TIX_BITS;
	size_t at = 8 + 8 + 8 + 8 + 2;
	uint16_t *map = NULL;

	if (len < at || memcmp(v, TIX_MAGIC, 8) != 0 ||
	    (int64_t)get_le(v + 8, 8) != d->stream_created || get_le(v + 16, 8) != p)
		return 0;
	uint64_t covered = get_le(v + 24, 8);
	size_t nnames = (size_t)get_le(v + 32, 2);
	if ((map = calloc(nnames + 1, sizeof *map)) == NULL)
		return 0;
	for (size_t i = 0; i < nnames; i++) {
		size_t n = at + 2 <= len ? (size_t)get_le(v + at, 2) : len;
		if (n == 0 || n > CIM_TYPE_MAX || at + 2 + n > len) {
			free(map);
			return 0;
		}
		int id = heads_type_id(&d->heads, (const char *)v + at + 2, n, true);
		map[i + 1] = id < 0 || id > TIX_MAX_ID ? TIX_NOID : (uint16_t)(id + 1);
		at += 2 + n;
	}
	if (len != at + 2 * TIX_PAGE || covered >= base + TIX_PAGE) {
		free(map);
		return 0;
	}
	size_t dropped = 0;
	for (uint64_t i = 0; i < TIX_PAGE; i++) {
		unsigned e = (unsigned)get_le(v + at + 2 * i, 2);
		if (e == TIX_UNSEEN || (e > nnames && e < TIX_NOID))
			continue;
		if (base + i > last) {
			dropped++;
			continue;
		}
		note(&d->tix, base + i, e >= TIX_NOID ? e : map[e]);
	}
	free(map);
	if (dropped > 0) {
		struct tix_page *pg = page_of(&d->tix, base, true);
		if (pg != NULL)
			pg->dirty = true; /* the bucket's copy still has them */
		log_warn("type index: %zu entr%s of page %zu noted past the stream's last "
			 "sequence %llu dropped (the stream lost messages it had)", dropped,
			 dropped == 1 ? "y" : "ies", p, (unsigned long long)last);
	}
	return covered > last ? last : covered;
}

uint64_t tix_load(struct daemon *d, uint64_t first, uint64_t upto, uint64_t last)
{
	uint64_t need = upto + 1;
	size_t loaded = 0;
	int64_t t0 = now_ns();

	for (size_t p = (size_t)(first >> TIX_BITS); p <= (size_t)(upto >> TIX_BITS); p++) {
		uint64_t base = (uint64_t)p << TIX_BITS, end = base + TIX_PAGE - 1;
		uint64_t covered = 0;
		kvEntry *e = NULL;
		char key[64];

		page_key(key, sizeof key, p);
		if (kvStore_Get(&e, d->heads_kv, key) == NATS_OK) {
			pthread_mutex_lock(&d->mu);
			covered = page_load(d, p, (const uint8_t *)kvEntry_Value(e),
					    (size_t)kvEntry_ValueLen(e), last);
			pthread_mutex_unlock(&d->mu);
			kvEntry_Destroy(e);
		}
		if (covered != 0)
			loaded++;
		uint64_t want = end < upto ? end : upto;
		if (covered < want) {
			/* from here on the stream is read again */
			uint64_t from = covered >= base ? covered + 1 : base;
			if (from < first)
				from = first;
			need = from;
			break;
		}
	}
	log_info("type index: %zu page(s) read from %s in %lld ms; complete up to seq %llu",
		 loaded, d->cfg->heads_bucket, (long long)((now_ns() - t0) / 1000000),
		 (unsigned long long)(need - 1));
	return need;
}
