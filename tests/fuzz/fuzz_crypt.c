/*
 * fuzz_crypt.c: libFuzzer target for the decoders of encrypted aggregates
 * (proto/keyblock.h, proto/crypt.h, and the encrypted forms of
 * proto/event.h and proto/snapshot.h), under fixed keys: the master key and
 * customer/cust-1's data key of tests/vectors/crypt/crypt.json, so that the
 * seeds made from those vectors decrypt and the fuzzer starts from success.
 *
 * The first byte of an input picks what the rest is:
 *
 *   0  a key block: cim_keyblock_decode, then cim_key_unwrap under the
 *      master key. A decoded block holds two valid tokens and encodes back
 *      to the input exactly (one encoding per block); a failed unwrap
 *      leaves the key wiped; a key that unwraps wraps again, with the same
 *      nonce, to the same bytes.
 *   1  n, n bytes of event_id, then an encrypted value of event data;
 *   2  n, n bytes of type, m, m bytes of id, then an encrypted state:
 *      cim_value_decrypt with that associated data. A refusal leaves the
 *      output as it was; an accepted value is one valid DAG-CBOR value,
 *      reads the same through cim_value_decrypt_json and _text, and
 *      encrypts again, with its nonce, to the input exactly.
 *   3  an event block or a snapshot block: checked; when its data or state
 *      is a byte string it is seen as encrypted and decrypted with the
 *      block's own event_id (type and id); a decrypted event shows the same
 *      through both reply writers, and so does a forgotten one.
 *   4  a plaintext: encrypted (fixed nonce) and decrypted again, which
 *      succeeds exactly when the input is one valid DAG-CBOR value, and
 *      then gives the input back.
 *
 * A broken rule aborts, so libFuzzer reports it as a crash.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "dagcbor.h"
#include "event.h"
#include "jsontext.h"
#include "keyblock.h"
#include "snapshot.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,\
				__LINE__, #c);                                \
			abort();                                              \
		}                                                             \
	} while (0)

static cim_key master, dek;
static const uint8_t nonce0[CIM_NONCE_BYTES] = {7, 7, 7};

static void
key_hex(cim_key *k, const char *hex)
{
	size_t n = 0;

	if (sodium_hex2bin(k->b, sizeof k->b, hex, strlen(hex), NULL, &n, NULL) != 0 ||
	    n != sizeof k->b)
		abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	json_object_seed(1); /* deterministic hash tables */
	if (cim_sodium_ready() != 0)
		abort();
	key_hex(&master, "fc9ab638e6a3511f9e216a0902a3b7c9d42101e8cc1a89c710bfde6c60692b98");
	key_hex(&dek, "988c332ce6a9524bcae45dba0eed70b20082eede90100276e59ec26d46d0fa60");
	return 0;
}

static bool
is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static void
key_block(const uint8_t *p, size_t len)
{
	cim_wrapped_key w, again;
	cim_key k;
	cbuf out = CBUF_INIT;
	char err[200];

	if (cim_keyblock_decode(&w, p, len, err, sizeof err) != 0) {
		CHECK(is_zero(&w, sizeof w));
		return;
	}
	CHECK(cim_token_type_ok(w.aggregate_type) && cim_token_id_ok(w.aggregate_id));
	CHECK(cim_keyblock_encode(&out, &w, err, sizeof err) == 0);
	CHECK(out.len == len && memcmp(out.p, p, len) == 0);
	cbuf_free(&out);
	memset(&k, 0x55, sizeof k);
	if (cim_key_unwrap(&k, &master, &w, err, sizeof err) != 0) {
		CHECK(is_zero(&k, sizeof k));
		return;
	}
	CHECK(cim_key_wrap(&again, &master, &k, w.aggregate_type, w.aggregate_id,
			   w.nonce, err, sizeof err) == 0);
	CHECK(memcmp(&again, &w, sizeof w) == 0);
	cim_key_wipe(&k);
}

/* enc decrypts under dek for ad exactly when the rules say. */
static void
value(const cim_ad *ad, const uint8_t *enc, size_t len)
{
	cbuf plain = CBUF_INIT, text = CBUF_INIT, again = CBUF_INIT, jt = CBUF_INIT;
	json_t *v = NULL, *w = NULL;
	char err[200];
	int rc;

	cbuf_putc(&plain, 'x');
	cbuf_putc(&text, 'y');
	rc = cim_value_decrypt(&plain, &dek, ad, enc, len, err, sizeof err);
	CHECK((cim_value_decrypt_json(&v, &dek, ad, enc, len, NULL, 0) == 0) == (rc == 0));
	CHECK((cim_value_decrypt_text(&text, &dek, ad, enc, len, NULL, 0) == 0) == (rc == 0));
	if (rc != 0) {
		CHECK(plain.len == 1 && text.len == 1 && v == NULL);
		CHECK(err[0] != '\0');
		goto done;
	}
	CHECK(len >= CIM_ENC_OVERHEAD && plain.len == 1 + len - CIM_ENC_OVERHEAD);
	CHECK(cim_cbor_decode_json(plain.p + 1, plain.len - 1, CIM_MAX_DEPTH, &w,
				   NULL, 0) == 0);
	CHECK(json_equal(v, w));
	CHECK(cim_json_write(&jt, v) == 0);
	CHECK(text.len - 1 == jt.len && memcmp(text.p + 1, jt.p, jt.len) == 0);
	CHECK(cim_value_encrypt_cbor(&again, &dek, ad, plain.p + 1, plain.len - 1,
				     enc, err, sizeof err) == 0);
	CHECK(again.len == len && memcmp(again.p, enc, len) == 0);
done:
	json_decref(v);
	json_decref(w);
	cbuf_free(&plain);
	cbuf_free(&text);
	cbuf_free(&again);
	cbuf_free(&jt);
}

/* The two reply writers agree on an event shown as show. */
static void
replies(const uint8_t *p, size_t len, cim_show show, json_t *shown)
{
	cim_event_block ev;
	cbuf a = CBUF_INIT, b = CBUF_INIT, st = CBUF_INIT;
	cim_cid cid;
	json_t *o;
	char err[200];

	CHECK(cim_event_decode(p, len, &ev, err, sizeof err) == 0);
	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, p, len);
	if (shown != NULL)
		CHECK(cim_json_write(&st, shown) == 0);
	CHECK(cim_event_write_json_as(&a, p, len, &cid, 9, show, (const char *)st.p,
				      st.len, err, sizeof err) == 0);
	o = cim_event_to_json_as(&ev, &cid, 9, show, shown);
	CHECK(o != NULL && cim_json_write(&b, o) == 0);
	CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
	json_decref(o);
	cim_event_block_free(&ev);
	cbuf_free(&a);
	cbuf_free(&b);
	cbuf_free(&st);
}

static void
blocks(const uint8_t *p, size_t len)
{
	cim_event_view v;
	cim_snapshot_block s;
	const uint8_t *enc;
	size_t elen;
	json_t *shown = NULL;
	cim_ad ad;

	if (cim_event_check(p, len, &v, NULL, 0) == 0) {
		replies(p, len, CIM_SHOW_FORGOTTEN, NULL);
		if (!cim_event_encrypted(&v, &enc, &elen))
			return;
		CHECK(enc >= p && enc + elen <= p + len);
		ad = cim_ad_data(v.event_id, v.event_id_len);
		value(&ad, enc, elen);
		if (cim_value_decrypt_json(&shown, &dek, &ad, enc, elen, NULL, 0) == 0) {
			replies(p, len, CIM_SHOW_DECRYPTED, shown);
			json_decref(shown);
		}
		return;
	}
	if (cim_snapshot_decode(p, len, &s, NULL, 0) != 0)
		return;
	if (cim_snapshot_encrypted(p, len, &enc, &elen)) {
		CHECK(enc >= p && enc + elen <= p + len);
		CHECK(json_is_object(s.state)); /* the DAG-JSON form of bytes */
		ad = cim_ad_state(s.aggregate_type, strlen(s.aggregate_type),
				  s.aggregate_id, strlen(s.aggregate_id));
		value(&ad, enc, elen);
	}
	cim_snapshot_block_free(&s);
}

static void
plaintext(const uint8_t *p, size_t len)
{
	cim_ad ad = cim_ad_data("evt-1", 5);
	cim_cbor_reader r;
	cbuf enc = CBUF_INIT, back = CBUF_INIT;
	bool valid;

	cim_cbor_reader_init(&r, p, len);
	valid = len > 0 && cim_cbor_skip(&r, CIM_MAX_DEPTH) == 0 && r.pos == len;
	CHECK(cim_value_encrypt_cbor(&enc, &dek, &ad, p, len, nonce0, NULL, 0) == 0);
	CHECK(enc.len == len + CIM_ENC_OVERHEAD);
	CHECK((cim_value_decrypt(&back, &dek, &ad, enc.p, enc.len, NULL, 0) == 0) == valid);
	if (valid)
		CHECK(back.len == len && memcmp(back.p, p, len) == 0);
	else
		CHECK(back.len == 0);
	cbuf_free(&enc);
	cbuf_free(&back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 1;
	size_t n = size > 0 ? size - 1 : 0, a, b;
	cim_ad ad;

	if (size == 0)
		return 0;
	switch (data[0] % 5) {
	case 0:
		key_block(p, n);
		break;
	case 1:
		if (n < 1 || n - 1 < (a = p[0]))
			break;
		ad = cim_ad_data((const char *)p + 1, a);
		value(&ad, p + 1 + a, n - 1 - a);
		break;
	case 2:
		if (n < 1 || n - 1 < (a = p[0]) || n - 1 - a < 1 ||
		    n - 2 - a < (b = p[1 + a]))
			break;
		ad = cim_ad_state((const char *)p + 1, a, (const char *)p + 2 + a, b);
		value(&ad, p + 2 + a + b, n - 2 - a - b);
		break;
	case 3:
		blocks(p, n);
		break;
	default:
		plaintext(p, n);
		break;
	}
	return 0;
}
