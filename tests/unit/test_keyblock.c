/*
 * test_keyblock.c: proto/keyblock.c: a data key wrapped under the master
 * key and unwrapped again; the wrong master key, another aggregate's type
 * or id, every flipped bit; and the key block's strict decoder (extra,
 * missing, renamed or reordered keys, wrong lengths and types, bad tokens,
 * non-canonical heads, trailing bytes).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "dagcbor.h"
#include "keyblock.h"

static cim_key *master, *dek, *back;

static void
setup(void)
{
	master = cim_key_alloc(1);
	dek = cim_key_alloc(2);
	cr_assert(master != NULL && dek != NULL);
	back = dek + 1;
	cr_assert_eq(cim_key_generate(master), 0);
	cr_assert_eq(cim_key_generate(dek), 0);
}

static void
teardown(void)
{
	cim_key_free(master, 1);
	cim_key_free(dek, 2);
}

static bool
is_zero(const cim_key *k)
{
	static const cim_key zero;

	return memcmp(k, &zero, sizeof zero) == 0;
}

/* Unwrap must fail, leaving back wiped. */
static void
unwrap_fails(const cim_key *m, const cim_wrapped_key *w)
{
	char err[200] = "";

	memset(back, 0x55, sizeof *back);
	cr_assert_eq(cim_key_unwrap(back, m, w, err, sizeof err), -1);
	cr_assert(is_zero(back), "the key was not wiped");
	cr_assert_neq(err[0], '\0');
}

TestSuite(keyblock, .init = setup, .fini = teardown);

Test(keyblock, wrap_unwrap)
{
	cim_wrapped_key w, w2;
	char err[200] = "";

	cr_assert_eq(cim_key_wrap(&w, master, dek, "order", "o:1@x", NULL, err,
				  sizeof err), 0, "%s", err);
	cr_assert_str_eq(w.aggregate_type, "order");
	cr_assert_str_eq(w.aggregate_id, "o:1@x");
	cr_assert_eq(cim_key_unwrap(back, master, &w, err, sizeof err), 0, "%s", err);
	cr_assert_eq(memcmp(back, dek, sizeof *dek), 0);
	/* the wrapped bytes are not the key */
	cr_assert_eq(memmem(w.wrapped, sizeof w.wrapped, dek->b, 8), NULL);
	/* a second wrap takes a fresh nonce */
	cr_assert_eq(cim_key_wrap(&w2, master, dek, "order", "o:1@x", NULL, err,
				  sizeof err), 0);
	cr_assert_neq(memcmp(w.nonce, w2.nonce, sizeof w.nonce), 0);
}

Test(keyblock, wrong_master_key_and_wrong_aggregate)
{
	cim_wrapped_key w, moved;
	cim_key *other = cim_key_alloc(1);

	cr_assert_eq(cim_key_generate(other), 0);
	cr_assert_eq(cim_key_wrap(&w, master, dek, "order", "o-1", NULL, NULL, 0), 0);
	unwrap_fails(other, &w);
	cim_key_free(other, 1);
	moved = w;
	strcpy(moved.aggregate_id, "o-2");
	unwrap_fails(master, &moved);
	moved = w;
	strcpy(moved.aggregate_type, "invoice");
	unwrap_fails(master, &moved);
	moved = w; /* the boundary between type and id counts */
	strcpy(moved.aggregate_type, "orde");
	strcpy(moved.aggregate_id, "ro-1");
	unwrap_fails(master, &moved);
}

Test(keyblock, every_flipped_bit_refused)
{
	cim_wrapped_key w, t;

	cr_assert_eq(cim_key_wrap(&w, master, dek, "t", "i", NULL, NULL, 0), 0);
	for (size_t i = 0; i < CIM_NONCE_BYTES + CIM_WRAPPED_BYTES; i++)
		for (int bit = 0; bit < 8; bit++) {
			t = w;
			if (i < CIM_NONCE_BYTES)
				t.nonce[i] ^= (uint8_t)(1u << bit);
			else
				t.wrapped[i - CIM_NONCE_BYTES] ^= (uint8_t)(1u << bit);
			unwrap_fails(master, &t);
		}
}

Test(keyblock, bad_tokens_refused)
{
	cim_wrapped_key w;
	char err[200] = "";

	cr_assert_eq(cim_key_wrap(&w, master, dek, "1order", "o", NULL, err,
				  sizeof err), -1);
	cr_assert_not_null(strstr(err, "token"));
	cr_assert_eq(cim_key_wrap(&w, master, dek, "order", "o/1", NULL, NULL, 0), -1);
	cr_assert_eq(cim_key_wrap(&w, master, dek, "order", "", NULL, NULL, 0), -1);
	cr_assert_eq(cim_key_wrap(&w, master, dek, "order", "o", NULL, NULL, 0), 0);
	strcpy(w.aggregate_id, "o 1");
	unwrap_fails(master, &w);
	memset(w.aggregate_type, 'a', sizeof w.aggregate_type); /* no NUL */
	unwrap_fails(master, &w);
}

/* ---- the block ------------------------------------------------------------------ */

static void
sample(cim_wrapped_key *w)
{
	uint8_t nonce[CIM_NONCE_BYTES];

	for (int i = 0; i < CIM_NONCE_BYTES; i++)
		nonce[i] = (uint8_t)i;
	cr_assert_eq(cim_key_wrap(w, master, dek, "order", "order-17", nonce,
				  NULL, 0), 0);
}

/* A hand-made block: the keys and values given, in the order given. */
static void
block(cbuf *out, int n, const char *const *k, const char *const *kind)
{
	cim_wrapped_key w;

	sample(&w);
	cbuf_reset(out);
	cr_assert_eq(cim_cbor_write_map_head(out, (size_t)n), 0);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(cim_cbor_write_text(out, k[i], strlen(k[i])), 0);
		if (strcmp(kind[i], "nonce") == 0)
			cim_cbor_write_bytes(out, w.nonce, sizeof w.nonce);
		else if (strcmp(kind[i], "wrapped") == 0)
			cim_cbor_write_bytes(out, w.wrapped, sizeof w.wrapped);
		else if (strncmp(kind[i], "bytes", 5) == 0)
			cim_cbor_write_bytes(out, w.wrapped, (size_t)atoi(kind[i] + 5));
		else
			cim_cbor_write_text(out, kind[i], strlen(kind[i]));
	}
}

static void
decode_fails(const cbuf *b, const char *why_part)
{
	cim_wrapped_key w;
	char err[200] = "";

	memset(&w, 0x55, sizeof w);
	cr_assert_eq(cim_keyblock_decode(&w, b->p, b->len, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, why_part), "message: %s", err);
	for (size_t i = 0; i < sizeof w; i++)
		cr_assert_eq(((uint8_t *)&w)[i], 0, "not left zeroed");
}

Test(keyblock, encode_decode_and_unwrap)
{
	cim_wrapped_key w, d;
	cbuf b = CBUF_INIT, again = CBUF_INIT;
	char err[200] = "";
	static const char *const k[] = {"nonce", "wrapped", "aggregate_id",
					"aggregate_type"};
	static const char *const v[] = {"nonce", "wrapped", "order-17", "order"};

	sample(&w);
	cr_assert_eq(cim_keyblock_encode(&b, &w, err, sizeof err), 0, "%s", err);
	/* the same bytes as writing it by hand in canonical order */
	block(&again, 4, k, v);
	cr_assert_eq(b.len, again.len);
	cr_assert_eq(memcmp(b.p, again.p, b.len), 0);
	cr_assert_eq(b.p[0], 0xa4);
	cr_assert_eq(cim_keyblock_decode(&d, b.p, b.len, err, sizeof err), 0, "%s", err);
	cr_assert_eq(memcmp(&d, &w, sizeof d), 0);
	cr_assert_eq(cim_key_unwrap(back, master, &d, err, sizeof err), 0, "%s", err);
	cr_assert_eq(memcmp(back, dek, sizeof *dek), 0);
	cbuf_free(&b);
	cbuf_free(&again);
}

Test(keyblock, decoder_is_strict)
{
	cbuf b = CBUF_INIT;
	cim_wrapped_key w;
	static const char *const k4[] = {"nonce", "wrapped", "aggregate_id",
					 "aggregate_type"};
	static const char *const v4[] = {"nonce", "wrapped", "order-17", "order"};

	/* extra key (sorted into place), missing keys */
	block(&b, 5, (const char *const[]){"nonce", "extra", "wrapped", "aggregate_id",
					  "aggregate_type"},
	      (const char *const[]){"nonce", "x", "wrapped", "order-17", "order"});
	decode_fails(&b, "four keys");
	block(&b, 3, k4, v4);
	decode_fails(&b, "four keys");
	block(&b, 3, k4 + 1, v4 + 1);
	decode_fails(&b, "four keys");
	/* a renamed key, in its place */
	block(&b, 4, (const char *const[]){"nonce", "wrapper", "aggregate_id",
					  "aggregate_type"}, v4);
	decode_fails(&b, "\"wrapped\"");
	block(&b, 4, (const char *const[]){"nonce", "wrapped", "aggregate_ix",
					  "aggregate_type"}, v4);
	decode_fails(&b, "\"aggregate_id\"");
	/* not in canonical order (bytewise or length-first) */
	block(&b, 4, (const char *const[]){"wrapped", "nonce", "aggregate_id",
					  "aggregate_type"},
	      (const char *const[]){"wrapped", "nonce", "order-17", "order"});
	decode_fails(&b, "first key");
	block(&b, 4, (const char *const[]){"nonce", "wrapped", "aggregate_type",
					  "aggregate_id"},
	      (const char *const[]){"nonce", "wrapped", "order", "order-17"});
	decode_fails(&b, "third key");
	/* a repeated key */
	block(&b, 4, (const char *const[]){"nonce", "nonce", "aggregate_id",
					  "aggregate_type"}, v4);
	decode_fails(&b, "repeated");
	/* wrong lengths and types */
	block(&b, 4, k4, (const char *const[]){"bytes23", "wrapped", "order-17", "order"});
	decode_fails(&b, "nonce is not 24 bytes");
	block(&b, 4, k4, (const char *const[]){"bytes25", "wrapped", "order-17", "order"});
	decode_fails(&b, "nonce is not 24 bytes");
	block(&b, 4, k4, (const char *const[]){"nonce", "bytes47", "order-17", "order"});
	decode_fails(&b, "wrapped is not 48 bytes");
	block(&b, 4, k4, (const char *const[]){"nonce", "bytes32", "order-17", "order"});
	decode_fails(&b, "wrapped is not 48 bytes");
	block(&b, 4, k4, (const char *const[]){"a nonce as text is no nonce", "wrapped",
					      "order-17", "order"});
	decode_fails(&b, "nonce is not 24 bytes");
	block(&b, 4, k4, (const char *const[]){"nonce", "wrapped", "bytes8", "order"});
	decode_fails(&b, "aggregate_id is not");
	/* bad tokens */
	block(&b, 4, k4, (const char *const[]){"nonce", "wrapped", "o 17", "order"});
	decode_fails(&b, "aggregate_id is not");
	block(&b, 4, k4, (const char *const[]){"nonce", "wrapped", "", "order"});
	decode_fails(&b, "aggregate_id is not");
	block(&b, 4, k4, (const char *const[]){"nonce", "wrapped", "order-17", "9order"});
	decode_fails(&b, "aggregate_type is not");
	/* trailing bytes, truncation, not a map, a non-minimal head */
	block(&b, 4, k4, v4);
	cbuf_putc(&b, 0xf6);
	decode_fails(&b, "bytes follow");
	block(&b, 4, k4, v4);
	for (size_t n = 0; n < b.len; n++) {
		cbuf cut = {b.p, n, n, 0};
		cr_assert_eq(cim_keyblock_decode(&w, cut.p, cut.len, NULL, 0), -1,
			     "accepted %zu of %zu bytes", n, b.len);
	}
	b.p[0] = 0x84; /* an array of four */
	decode_fails(&b, "four keys");
	cbuf_reset(&b);
	cbuf_put(&b, "\xb8\x04", 2); /* map of 4 in a non-minimal head */
	decode_fails(&b, "shortest");
	cbuf_free(&b);
}

Test(keyblock, encode_refuses_bad_tokens)
{
	cim_wrapped_key w;
	cbuf b = CBUF_INIT;
	char err[200] = "";

	sample(&w);
	strcpy(w.aggregate_id, "a b");
	cr_assert_eq(cim_keyblock_encode(&b, &w, err, sizeof err), -1);
	cr_assert_eq(b.len, 0);
	sample(&w);
	memset(w.aggregate_id, 'a', sizeof w.aggregate_id);
	cr_assert_eq(cim_keyblock_encode(&b, &w, err, sizeof err), -1);
	cbuf_free(&b);
}
