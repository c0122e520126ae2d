/*
 * latency.c: how long each request took, from the moment the request
 * subscription's callback took it to the moment its reply was handed to
 * NATS, in one fixed histogram per operation.
 *
 * The hot path costs one clock read at receive, one at reply, and a few
 * relaxed atomic adds: no lock, no allocation. A request crosses threads
 * (the callback, the publish-ack handler, the read workers) as a natsMsg
 * pointer and nothing else, so its start time waits for it in a fixed
 * open-addressing table keyed by that pointer: the callback (one at a
 * time) puts it there, whichever thread replies takes it out. When the
 * table has no free slot near the key (more than LAT_SLOTS requests in
 * flight, far past what the daemon admits), the request is not timed and
 * counted as such (lat_untimed).
 *
 * Buckets: everything under 1024 ns in bucket 0, then four buckets per
 * power of two (each 1/4 of it wide, so a quantile read from a bucket's
 * middle is within 12.5% of the truth), up to 2^40 ns (18 minutes).
 */
#include <stdint.h>
#include <string.h>

#include "daemon.h"

#define LAT_SLOTS (1u << 17) /* 2 MiB, in .bss: untouched pages cost nothing */
#define LAT_PROBE 64

struct lat_slot {
	_Atomic uintptr_t key; /* the natsMsg, 0: free */
	atomic_uint_fast64_t val; /* start (monotonic ns) << 4 | op */
};

static struct lat_slot slots[LAT_SLOTS];
static atomic_uint_fast64_t untimed;

static size_t slot_of(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> (64 - 17));
}

void lat_begin(natsMsg *req, enum op op, int64_t t0)
{
	uintptr_t k = (uintptr_t)req;
	uint64_t v = ((uint64_t)t0 << 4) | (uint64_t)op;
	size_t i = slot_of(req);

	for (int n = 0; n < LAT_PROBE; n++, i = (i + 1) & (LAT_SLOTS - 1)) {
		uintptr_t cur = atomic_load_explicit(&slots[i].key, memory_order_acquire);
		/* the same pointer again: a message never answered whose
		 * memory came back as this one */
		if (cur == k) {
			atomic_store_explicit(&slots[i].val, v, memory_order_release);
			return;
		}
		if (cur == 0 && atomic_compare_exchange_strong(&slots[i].key, &cur, k)) {
			atomic_store_explicit(&slots[i].val, v, memory_order_release);
			return;
		}
	}
	atomic_fetch_add_explicit(&untimed, 1, memory_order_relaxed);
}

static int bucket_of(uint64_t ns)
{
	if (ns < 1024)
		return 0;
	int e = 63 - __builtin_clzll(ns); /* >= 10 */
	if (e >= 40)
		return LAT_BUCKETS - 1;
	return (e - 10) * 4 + (int)((ns >> (e - 2)) & 3) + 1;
}

/* The middle of bucket b, in ns. */
static uint64_t bucket_mid(int b)
{
	if (b == 0)
		return 512;
	int e = (b - 1) / 4 + 10, sub = (b - 1) % 4;
	uint64_t lo = (uint64_t)(4 + sub) << (e - 2), hi = (uint64_t)(5 + sub) << (e - 2);
	return (lo + hi) / 2;
}

void lat_end(struct daemon *d, natsMsg *req)
{
	uintptr_t k = (uintptr_t)req;
	size_t i = slot_of(req);

	for (int n = 0; n < LAT_PROBE; n++, i = (i + 1) & (LAT_SLOTS - 1)) {
		if (atomic_load_explicit(&slots[i].key, memory_order_acquire) != k)
			continue;
		uint64_t v = atomic_load_explicit(&slots[i].val, memory_order_acquire);
		atomic_store_explicit(&slots[i].key, 0, memory_order_release);
		int64_t dt = now_mono_ns() - (int64_t)(v >> 4);
		struct lat_hist *h = &d->lat[v & 15];
		uint64_t ns = dt > 0 ? (uint64_t)dt : 0;
		atomic_fetch_add_explicit(&h->b[bucket_of(ns)], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
		return;
	}
}

void lat_error(struct daemon *d, enum op op, int code)
{
	atomic_store_explicit(&d->lat[op].last_err, code, memory_order_relaxed);
}

uint64_t lat_quantile_ns(struct daemon *d, enum op op, double q)
{
	struct lat_hist *h = &d->lat[op];
	uint64_t counts[LAT_BUCKETS], total = 0, rank, seen = 0;

	for (int b = 0; b < LAT_BUCKETS; b++) {
		counts[b] = atomic_load_explicit(&h->b[b], memory_order_relaxed);
		total += counts[b];
	}
	if (total == 0)
		return 0;
	rank = (uint64_t)(q * (double)total);
	if ((double)rank < q * (double)total)
		rank++; /* the smallest rank covering q of them */
	if (rank == 0)
		rank = 1;
	for (int b = 0; b < LAT_BUCKETS; b++) {
		seen += counts[b];
		if (seen >= rank)
			return bucket_mid(b);
	}
	return bucket_mid(LAT_BUCKETS - 1);
}

uint64_t lat_untimed(void)
{
	return atomic_load_explicit(&untimed, memory_order_relaxed);
}
