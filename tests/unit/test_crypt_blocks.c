/*
 * test_crypt_blocks.c: what event.c and snapshot.c do for encrypted
 * aggregates, beyond the vectors: data and state given as encrypted bytes
 * of any length, how they are recognised, and how replies show an event
 * decrypted or forgotten.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "crypt.h"
#include "event.h"
#include "jsontext.h"
#include "snapshot.h"

static void
sample(cim_event_block *ev, const uint8_t *enc, size_t len)
{
	memset(ev, 0, sizeof *ev);
	ev->aggregate_type = "customer";
	ev->aggregate_id = "c-1";
	ev->version = 1;
	ev->event_type = "Registered";
	ev->event_id = "e-1";
	ev->correlation_id = "e-1";
	ev->causation_id = "e-1";
	ev->timestamp = "2026-11-22T10:00:00.000000000Z";
	ev->enc_data = enc;
	ev->enc_data_len = len;
}

static char *
reply(const cbuf *blk, cim_show show, const char *data)
{
	cbuf out = CBUF_INIT;
	cim_cid cid;
	char err[200] = "";

	cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, blk->p, blk->len);
	cr_assert_eq(cim_event_write_json_as(&out, blk->p, blk->len, &cid, 3, show,
					     data, data ? strlen(data) : 0, err,
					     sizeof err), 0, "%s", err);
	cbuf_terminate(&out);
	return (char *)out.p;
}

Test(crypt_blocks, event_data_bytes_of_any_length)
{
	static const size_t lens[] = {0, 1, 23, 24, 255, 256, 65535, 65536, 70001};
	uint8_t *enc = malloc(70001);

	cr_assert_not_null(enc);
	for (size_t i = 0; i < 70001; i++)
		enc[i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		cim_event_block ev, dec;
		cim_event_view v;
		cbuf blk = CBUF_INIT, a = CBUF_INIT;
		const uint8_t *found;
		size_t flen;
		char err[200] = "";
		cim_cid cid;

		sample(&ev, enc, lens[i]);
		cr_assert_eq(cim_event_encode(&ev, &blk, err, sizeof err), 0, "%s", err);
		cr_assert_eq(cim_event_check(blk.p, blk.len, &v, err, sizeof err), 0,
			     "%zu: %s", lens[i], err);
		cr_assert(cim_event_encrypted(&v, &found, &flen));
		cr_assert_eq(flen, lens[i]);
		cr_assert(flen == 0 || memcmp(found, enc, flen) == 0);
		cr_assert_eq(cim_event_decode(blk.p, blk.len, &dec, err, sizeof err), 0);
		/* re-encoding from the DAG-JSON form gives a map, not bytes:
		 * only enc_data writes bytes */
		cr_assert(json_is_object(dec.data));
		/* the stored form, as before, through both entry points */
		cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, blk.p, blk.len);
		cr_assert_eq(cim_event_write_json(&a, blk.p, blk.len, &cid, 3, err,
						  sizeof err), 0);
		cbuf_terminate(&a);
		char *b = reply(&blk, CIM_SHOW_STORED, NULL);
		cr_assert_str_eq((char *)a.p, b);
		cr_assert_not_null(strstr(b, "{\"/\":{\"bytes\":"));
		free(b);
		cim_event_block_free(&dec);
		cbuf_free(&blk);
		cbuf_free(&a);
	}
	free(enc);
}

Test(crypt_blocks, replies_decrypted_and_forgotten)
{
	cim_event_block ev;
	cbuf blk = CBUF_INIT;
	uint8_t enc[48] = {1, 2, 3};
	char *r;

	sample(&ev, enc, sizeof enc);
	cr_assert_eq(cim_event_encode(&ev, &blk, NULL, 0), 0);
	r = reply(&blk, CIM_SHOW_DECRYPTED, "{\"email\":\"a@b.c\"}");
	cr_assert_not_null(strstr(r, ",\"metadata\":{},\"data\":{\"email\":\"a@b.c\"},"
				     "\"encrypted\":true,\"prev\":null,\"cid\":"), "%s", r);
	cr_assert_null(strstr(r, "forgotten"));
	free(r);
	r = reply(&blk, CIM_SHOW_DECRYPTED, NULL);
	cr_assert_not_null(strstr(r, "\"data\":null,\"encrypted\":true,"), "%s", r);
	free(r);
	r = reply(&blk, CIM_SHOW_FORGOTTEN, "{\"ignored\":1}");
	cr_assert_not_null(strstr(r, "\"data\":null,\"forgotten\":true,\"prev\":null"),
			   "%s", r);
	cr_assert_null(strstr(r, "encrypted"));
	cr_assert_null(strstr(r, "ignored"));
	free(r);
	/* a plain event of a forgotten aggregate is shown forgotten too */
	json_t *data = json_pack("{s:s}", "email", "a@b.c");
	ev.enc_data = NULL;
	ev.data = data;
	cbuf_reset(&blk);
	cr_assert_eq(cim_event_encode(&ev, &blk, NULL, 0), 0);
	r = reply(&blk, CIM_SHOW_FORGOTTEN, NULL);
	cr_assert_null(strstr(r, "a@b.c"), "%s", r);
	cr_assert_not_null(strstr(r, "\"forgotten\":true"));
	free(r);
	/* a refused block is refused whatever is shown */
	blk.p[0] = 0xa9;
	{
		cbuf out = CBUF_INIT;
		cim_cid cid = {0};
		char err[200] = "";

		cr_assert_eq(cim_event_write_json_as(&out, blk.p, blk.len, &cid, 1,
						     CIM_SHOW_FORGOTTEN, NULL, 0, err,
						     sizeof err), -1);
		cr_assert_eq(out.len, 0);
		cr_assert_not_null(strstr(err, "undecodable"));
	}
	json_decref(data);
	cbuf_free(&blk);
}

Test(crypt_blocks, snapshot_state_bytes)
{
	cim_snapshot_block s = {0}, d;
	cbuf blk = CBUF_INIT;
	uint8_t enc[300];
	const uint8_t *found;
	size_t flen;
	char err[200] = "";

	memset(enc, 0xab, sizeof enc);
	s.aggregate_type = "customer";
	s.aggregate_id = "c-1";
	s.version = 4;
	s.timestamp = "2026-11-22T10:00:00.000000000Z";
	cim_cid_compute(&s.event_cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256,
			(const uint8_t *)"e", 1);
	cr_assert_eq(cim_snapshot_encode(&s, &blk, err, sizeof err), -1, "no state");
	cr_assert_eq(blk.len, 0);
	s.enc_state = enc;
	s.enc_state_len = sizeof enc;
	cr_assert_eq(cim_snapshot_encode(&s, &blk, err, sizeof err), 0, "%s", err);
	cr_assert_eq(cim_snapshot_decode(blk.p, blk.len, &d, err, sizeof err), 0, "%s", err);
	cr_assert_eq(d.version, 4);
	cim_snapshot_block_free(&d);
	cr_assert(cim_snapshot_encrypted(blk.p, blk.len, &found, &flen));
	cr_assert_eq(flen, sizeof enc);
	cr_assert_eq(memcmp(found, enc, flen), 0);
	cr_assert(cim_snapshot_encrypted(blk.p, blk.len, NULL, NULL));
	for (size_t n = 0; n < 10; n++) /* truncated before the state's end */
		cr_assert_not(cim_snapshot_encrypted(blk.p, n, NULL, NULL));
	cbuf_free(&blk);
}
