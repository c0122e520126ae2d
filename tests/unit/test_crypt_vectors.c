/*
 * test_crypt_vectors.c: encrypted aggregates against independent vectors.
 *
 * tests/vectors/crypt/crypt.json is made by make-crypt-vectors.mjs beside
 * it with @noble/ciphers (XChaCha20-Poly1305) and @ipld/dag-cbor, without
 * any of our code. For each case our C must decrypt what they made, and,
 * given the same keys and nonce, make the same bytes:
 *   keys       the key block decodes to its fields, unwraps under the
 *              master key to the data key, wraps again to the same bytes,
 *              encodes back byte for byte, and hashes to its CID;
 *   values     the AD is byte for byte theirs; the encrypted value decrypts
 *              to their plaintext; encrypting the JSON gives their bytes;
 *   events     the whole block is rebuilt from its fields with our
 *              encryption of data_json as data, byte for byte, with its
 *              CID; checked blocks are recognised as encrypted, decrypt,
 *              and show as replies (decrypted, forgotten) the same way
 *              through both JSON writers;
 *   snapshots  likewise for the snapshot block and its state.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "crypt.h"
#include "dagcbor.h"
#include "event.h"
#include "jsontext.h"
#include "keyblock.h"
#include "snapshot.h"
#include "vectors.h"

#define FILE_NAME "crypt/crypt.json"

static const char *
str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	cr_assert_not_null(s, "vector field %s", k);
	return s;
}

/* A hex field of exactly n bytes (any length when n is 0), in a new buffer. */
static uint8_t *
bytes(const json_t *o, const char *k, size_t n, size_t *len)
{
	size_t got;
	uint8_t *p = t_unhex(str(o, k), &got);

	if (n != 0)
		cr_assert_eq(got, n, "%s: %zu bytes, want %zu", k, got, n);
	if (len != NULL)
		*len = got;
	return p;
}

static void
key_from(cim_key *k, const json_t *o, const char *field)
{
	uint8_t *p = bytes(o, field, CIM_KEY_BYTES, NULL);

	memcpy(k->b, p, CIM_KEY_BYTES);
	sodium_memzero(p, CIM_KEY_BYTES);
	free(p);
}

static void
same(const uint8_t *got, size_t glen, const uint8_t *want, size_t wlen,
     const char *what, const char *name)
{
	cr_assert_eq(glen, wlen, "%s: %s is %zu bytes, want %zu", name, what,
		     glen, wlen);
	cr_assert_eq(memcmp(got, want, wlen), 0, "%s: %s differs", name, what);
}

static void
cid_is(const uint8_t *p, size_t len, uint64_t mh, const char *want,
       const char *name)
{
	cim_cid cid;
	char text[CIM_CID_TEXT_MAX];

	cr_assert_eq(cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, mh, p, len), 0);
	cim_cid_to_text(&cid, text);
	cr_assert_str_eq(text, want, "%s: CID", name);
}

static json_t *
parse(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

	cr_assert_not_null(v, "bad JSON %s: %s", text, jerr.text);
	return v;
}

Test(crypt_vectors, file_covers_the_cases)
{
	json_t *root = t_load_vectors(FILE_NAME, "keys");

	cr_expect_geq(json_array_size(json_object_get(root, "keys")), 3);
	cr_expect_geq(json_array_size(json_object_get(root, "values")), 7);
	cr_expect_geq(json_array_size(json_object_get(root, "events")), 3);
	cr_expect_geq(json_array_size(json_object_get(root, "snapshots")), 2);
	json_decref(root);
}

Test(crypt_vectors, wrapped_keys_and_key_blocks)
{
	json_t *root = t_load_vectors(FILE_NAME, "keys"), *c;
	cim_key *k = cim_key_alloc(3), *master = k, *want = k + 1, *got = k + 2;
	size_t i;

	cr_assert_not_null(k);
	key_from(master, root, "master_key");
	json_array_foreach(json_object_get(root, "keys"), i, c) {
		const char *name = str(c, "name");
		size_t blen;
		uint8_t *blk = bytes(c, "block_hex", 0, &blen);
		uint8_t *nonce = bytes(c, "nonce", CIM_NONCE_BYTES, NULL);
		uint8_t *wrapped = bytes(c, "wrapped", CIM_WRAPPED_BYTES, NULL);
		size_t adlen;
		uint8_t *ad = bytes(c, "ad", 0, &adlen);
		cim_wrapped_key w, mine;
		cbuf out = CBUF_INIT, adb = CBUF_INIT;
		char err[200] = "";
		cim_ad dek_ad;

		key_from(want, c, "data_key");
		cr_assert_eq(cim_keyblock_decode(&w, blk, blen, err, sizeof err), 0,
			     "%s: %s", name, err);
		cr_assert_str_eq(w.aggregate_type, str(c, "aggregate_type"));
		cr_assert_str_eq(w.aggregate_id, str(c, "aggregate_id"));
		same(w.nonce, sizeof w.nonce, nonce, CIM_NONCE_BYTES, "nonce", name);
		same(w.wrapped, sizeof w.wrapped, wrapped, CIM_WRAPPED_BYTES, "wrapped", name);
		dek_ad = cim_ad_dek(w.aggregate_type, strlen(w.aggregate_type),
				    w.aggregate_id, strlen(w.aggregate_id));
		cr_assert_eq(cim_ad_write(&adb, &dek_ad), 0);
		same(adb.p, adb.len, ad, adlen, "associated data", name);

		cr_assert_eq(cim_key_unwrap(got, master, &w, err, sizeof err), 0,
			     "%s: %s", name, err);
		cr_assert_eq(memcmp(got, want, sizeof *got), 0, "%s: data key", name);
		cr_assert_eq(cim_key_wrap(&mine, master, want, w.aggregate_type,
					  w.aggregate_id, nonce, err, sizeof err), 0);
		cr_assert_eq(memcmp(&mine, &w, sizeof w), 0, "%s: wrap differs", name);
		cr_assert_eq(cim_keyblock_encode(&out, &mine, err, sizeof err), 0);
		same(out.p, out.len, blk, blen, "key block", name);
		cid_is(blk, blen, CIM_MH_BLAKE2B_256, str(c, "cid"), name);

		cbuf_free(&out);
		cbuf_free(&adb);
		free(blk);
		free(nonce);
		free(wrapped);
		free(ad);
	}
	cim_key_free(k, 3);
	json_decref(root);
}

/* The AD of a value case. */
static cim_ad
value_ad(const json_t *c, uint8_t **id_bytes)
{
	size_t n;

	*id_bytes = NULL;
	if (strcmp(str(c, "kind"), "data") == 0) {
		*id_bytes = bytes(c, "event_id_hex", 0, &n);
		return cim_ad_data((const char *)*id_bytes, n);
	}
	return cim_ad_state(str(c, "aggregate_type"), strlen(str(c, "aggregate_type")),
			    str(c, "aggregate_id"), strlen(str(c, "aggregate_id")));
}

Test(crypt_vectors, encrypted_values)
{
	json_t *root = t_load_vectors(FILE_NAME, "values"), *c;
	cim_key k;
	size_t i;

	json_array_foreach(json_object_get(root, "values"), i, c) {
		const char *name = str(c, "name");
		size_t elen, plen, adlen;
		uint8_t *enc = bytes(c, "enc", 0, &elen);
		uint8_t *plain = bytes(c, "plaintext", 0, &plen);
		uint8_t *ad = bytes(c, "ad", 0, &adlen);
		uint8_t *id = NULL;
		cim_ad a = value_ad(c, &id);
		cbuf got = CBUF_INIT, mine = CBUF_INIT, adb = CBUF_INIT;
		json_t *want = parse(str(c, "value_json")), *back = NULL;
		char err[200] = "";

		key_from(&k, c, "data_key");
		cr_assert_eq(cim_ad_write(&adb, &a), 0);
		same(adb.p, adb.len, ad, adlen, "associated data", name);
		/* theirs decrypts to their plaintext and to the JSON */
		cr_assert_eq(cim_value_decrypt(&got, &k, &a, enc, elen, err, sizeof err),
			     0, "%s: %s", name, err);
		same(got.p, got.len, plain, plen, "plaintext", name);
		cr_assert_eq(cim_value_decrypt_json(&back, &k, &a, enc, elen, err,
						    sizeof err), 0);
		cr_assert(json_equal(back, want), "%s: value", name);
		/* ours, with their nonce, is theirs */
		cr_assert_eq(cim_value_encrypt(&mine, &k, &a, want, enc, err, sizeof err),
			     0, "%s: %s", name, err);
		same(mine.p, mine.len, enc, elen, "encrypted value", name);
		cbuf_reset(&mine);
		cr_assert_eq(cim_value_encrypt_cbor(&mine, &k, &a, plain, plen, enc, err,
						    sizeof err), 0);
		same(mine.p, mine.len, enc, elen, "encrypted value (from CBOR)", name);
		/* the ciphertext is not the plaintext */
		if (plen >= 8)
			cr_assert_null(memmem(enc, elen, plain, 8), "%s", name);

		json_decref(want);
		json_decref(back);
		cbuf_free(&got);
		cbuf_free(&mine);
		cbuf_free(&adb);
		free(enc);
		free(plain);
		free(ad);
		free(id);
	}
	json_decref(root);
}

/* ---- whole blocks --------------------------------------------------------------- */

/* The event of case c, with data as our encryption of data_json under the
 * case's key and nonce (in *encb). The strings are borrowed from c. */
static void
event_of(const json_t *c, const cim_key *k, cim_event_block *ev, cbuf *encb)
{
	const json_t *f = json_object_get(c, "block"), *prev;
	json_t *data = parse(str(c, "data_json"));
	uint8_t *nonce = bytes(c, "nonce", CIM_NONCE_BYTES, NULL);
	char err[200] = "";
	cim_ad a;

	memset(ev, 0, sizeof *ev);
	ev->aggregate_type = (char *)str(f, "aggregate_type");
	ev->aggregate_id = (char *)str(f, "aggregate_id");
	ev->version = (uint64_t)json_integer_value(json_object_get(f, "version"));
	ev->event_type = (char *)str(f, "event_type");
	ev->event_id = (char *)str(f, "event_id");
	ev->correlation_id = (char *)str(f, "correlation_id");
	ev->causation_id = (char *)str(f, "causation_id");
	ev->timestamp = (char *)str(f, "timestamp");
	ev->metadata = json_object_get(f, "metadata");
	prev = json_object_get(f, "prev");
	if (json_is_string(prev)) {
		ev->has_prev = true;
		cr_assert_eq(cim_cid_from_text(&ev->prev, json_string_value(prev)), 0);
	}
	a = cim_ad_data(ev->event_id, strlen(ev->event_id));
	cr_assert_eq(cim_value_encrypt(encb, k, &a, data, nonce, err, sizeof err), 0,
		     "%s", err);
	ev->enc_data = encb->p;
	ev->enc_data_len = encb->len;
	ev->data = json_string("this must not be written"); /* enc_data wins */
	json_decref(data);
	free(nonce);
}

/* Both reply writers, shown as show, give the same text, holding part. */
static void
replies_agree(const uint8_t *blk, size_t blen, const cim_event_block *ev,
	      cim_show show, const json_t *value, const char *part,
	      const char *name)
{
	cbuf a = CBUF_INIT, b = CBUF_INIT, vtext = CBUF_INIT;
	json_t *o;
	cim_cid cid;
	char err[200] = "";

	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, blk, blen);
	if (value != NULL)
		cr_assert_eq(cim_json_write(&vtext, value), 0);
	cr_assert_eq(cim_event_write_json_as(&a, blk, blen, &cid, 7, show,
					     (const char *)vtext.p, vtext.len,
					     err, sizeof err), 0, "%s", err);
	o = cim_event_to_json_as(ev, &cid, 7, show, (json_t *)value);
	cr_assert_not_null(o);
	cr_assert_eq(cim_json_write(&b, o), 0);
	cbuf_terminate(&a);
	cbuf_terminate(&b);
	cr_assert_str_eq((char *)a.p, (char *)b.p, "%s: the two writers differ", name);
	cr_assert_not_null(strstr((char *)a.p, part), "%s: %s", name, (char *)a.p);
	json_decref(o);
	cbuf_free(&a);
	cbuf_free(&b);
	cbuf_free(&vtext);
}

Test(crypt_vectors, encrypted_event_blocks)
{
	json_t *root = t_load_vectors(FILE_NAME, "events"), *c;
	cim_key k;
	size_t i;

	json_array_foreach(json_object_get(root, "events"), i, c) {
		const char *name = str(c, "name");
		size_t blen, elen;
		uint8_t *blk = bytes(c, "block_hex", 0, &blen);
		uint8_t *enc = bytes(c, "enc", 0, &elen);
		cim_event_block ev, dec;
		cim_event_view v;
		cbuf encb = CBUF_INIT, out = CBUF_INIT, text = CBUF_INIT;
		const uint8_t *found;
		size_t flen;
		uint64_t mh = 0;
		char err[200] = "";
		json_t *data = parse(str(c, "data_json")), *back = NULL;
		cim_ad a;

		key_from(&k, c, "data_key");
		cr_assert_eq(cim_hash_from_name(str(c, "hash"), &mh), 0);
		/* ours, byte for byte */
		event_of(c, &k, &ev, &encb);
		same(encb.p, encb.len, enc, elen, "encrypted data", name);
		cr_assert_eq(cim_event_encode(&ev, &out, err, sizeof err), 0, "%s", err);
		same(out.p, out.len, blk, blen, "block", name);
		cid_is(blk, blen, mh, str(c, "cid"), name);

		/* theirs passes the checks, is seen as encrypted, decrypts */
		cr_assert_eq(cim_event_check(blk, blen, &v, err, sizeof err), 0,
			     "%s: %s", name, err);
		cr_assert(cim_event_encrypted(&v, &found, &flen), "%s", name);
		same(found, flen, enc, elen, "data seen in the block", name);
		a = cim_ad_data(v.event_id, v.event_id_len);
		cr_assert_eq(cim_value_decrypt_json(&back, &k, &a, found, flen, err,
						    sizeof err), 0, "%s: %s", name, err);
		cr_assert(json_equal(back, data), "%s: decrypted data", name);
		cr_assert_eq(cim_value_decrypt_text(&text, &k, &a, found, flen, err,
						    sizeof err), 0);
		cr_assert_eq(cim_event_decode(blk, blen, &dec, err, sizeof err), 0,
			     "%s: %s", name, err);
		cr_assert_null(dec.enc_data);
		/* decode shows the bytes in their DAG-JSON form */
		cr_assert(json_is_string(json_object_get(json_object_get(dec.data, "/"),
							 "bytes")), "%s", name);

		/* as replies: decrypted (from the text made above), forgotten */
		replies_agree(blk, blen, &dec, CIM_SHOW_DECRYPTED, back,
			      ",\"encrypted\":true,\"prev\":", name);
		replies_agree(blk, blen, &dec, CIM_SHOW_FORGOTTEN, NULL,
			      "\"data\":null,\"forgotten\":true,\"prev\":", name);
		{
			cbuf r = CBUF_INIT;
			cim_cid cid;

			cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, mh, blk, blen);
			cr_assert_eq(cim_event_write_json_as(&r, blk, blen, &cid, 1,
				     CIM_SHOW_DECRYPTED, (const char *)text.p,
				     text.len, err, sizeof err), 0);
			cbuf_terminate(&r);
			cbuf_terminate(&text);
			cr_assert_not_null(strstr((char *)r.p, (char *)text.p));
			/* nothing of the ciphertext's DAG-JSON form is shown */
			cr_assert_null(strstr((char *)r.p, "\"bytes\""));
			cbuf_free(&r);
		}

		cim_event_block_free(&dec);
		json_decref(ev.data);
		json_decref(data);
		json_decref(back);
		cbuf_free(&encb);
		cbuf_free(&out);
		cbuf_free(&text);
		free(blk);
		free(enc);
	}
	json_decref(root);
}

Test(crypt_vectors, encrypted_snapshot_blocks)
{
	json_t *root = t_load_vectors(FILE_NAME, "snapshots"), *c;
	cim_key k;
	size_t i;

	json_array_foreach(json_object_get(root, "snapshots"), i, c) {
		const char *name = str(c, "name");
		size_t blen, elen, flen;
		uint8_t *blk = bytes(c, "block_hex", 0, &blen);
		uint8_t *enc = bytes(c, "enc", 0, &elen);
		json_t *state = parse(str(c, "state_json")), *back = NULL;
		cbuf encb = CBUF_INIT, out = CBUF_INIT;
		cim_snapshot_block s = {0}, dec;
		const uint8_t *found;
		char err[200] = "";
		cim_ad a;

		key_from(&k, c, "data_key");
		s.aggregate_type = (char *)str(c, "aggregate_type");
		s.aggregate_id = (char *)str(c, "aggregate_id");
		s.version = (uint64_t)json_integer_value(json_object_get(c, "version"));
		s.timestamp = (char *)str(c, "timestamp");
		cr_assert_eq(cim_cid_from_text(&s.event_cid, str(c, "event_cid")), 0);
		a = cim_ad_state(s.aggregate_type, strlen(s.aggregate_type),
				 s.aggregate_id, strlen(s.aggregate_id));
		cr_assert_eq(cim_value_encrypt(&encb, &k, &a, state, enc, err,
					       sizeof err), 0, "%s", err);
		same(encb.p, encb.len, enc, elen, "encrypted state", name);
		s.enc_state = encb.p;
		s.enc_state_len = encb.len;
		cr_assert_eq(cim_snapshot_encode(&s, &out, err, sizeof err), 0, "%s", err);
		same(out.p, out.len, blk, blen, "block", name);
		cid_is(blk, blen, CIM_MH_BLAKE2B_256, str(c, "cid"), name);

		cr_assert_eq(cim_snapshot_decode(blk, blen, &dec, err, sizeof err), 0,
			     "%s: %s", name, err);
		cr_assert_str_eq(dec.aggregate_id, s.aggregate_id);
		cr_assert(cim_snapshot_encrypted(blk, blen, &found, &flen), "%s", name);
		same(found, flen, enc, elen, "state seen in the block", name);
		cr_assert_eq(cim_value_decrypt_json(&back, &k, &a, found, flen, err,
						    sizeof err), 0, "%s: %s", name, err);
		cr_assert(json_equal(back, state), "%s: decrypted state", name);
		json_decref(back);
		/* the same bytes as an event's data, or another aggregate's
		 * state, do not decrypt */
		a = cim_ad_state(s.aggregate_type, strlen(s.aggregate_type), "other", 5);
		cr_assert_eq(cim_value_decrypt_json(&back, &k, &a, found, flen, NULL, 0), -1);
		a = cim_ad_data(s.aggregate_id, strlen(s.aggregate_id));
		cr_assert_eq(cim_value_decrypt_json(&back, &k, &a, found, flen, NULL, 0), -1);

		cim_snapshot_block_free(&dec);
		json_decref(state);
		cbuf_free(&encb);
		cbuf_free(&out);
		free(blk);
		free(enc);
	}
	json_decref(root);
}

Test(crypt_vectors, plain_blocks_are_not_seen_as_encrypted)
{
	json_t *root = t_load_vectors("events.json", "events"), *c;
	size_t i;

	json_array_foreach(json_object_get(root, "events"), i, c) {
		size_t blen;
		uint8_t *blk = bytes(c, "block_hex", 0, &blen);
		cim_event_view v;

		cr_assert_eq(cim_event_check(blk, blen, &v, NULL, 0), 0);
		cr_assert_not(cim_event_encrypted(&v, NULL, NULL), "%s", str(c, "name"));
		free(blk);
	}
	json_decref(root);
	root = t_load_vectors("snapshots.json", "cases");
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		size_t blen;
		uint8_t *blk = bytes(c, "block_hex", 0, &blen);

		cr_assert_not(cim_snapshot_encrypted(blk, blen, NULL, NULL));
		free(blk);
	}
	json_decref(root);
}
