/*
 * blocks.c: see blocks.h.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "event.h"
#include "harness.h"
#include "seal.h"

void tb_make(tb_block *b, const char *type, const char *id, uint64_t version,
	     const char *event_type, const char *data_json, const char *event_id,
	     const cim_cid *prev, uint64_t mh)
{
	char eid[200], err[256] = "";
	json_error_t je;
	json_t *data = json_loads(data_json, JSON_DECODE_ANY, &je);
	json_t *md = json_object();

	cr_assert_not_null(data, "bad test data %s: %s", data_json, je.text);
	snprintf(eid, sizeof(eid), "%s", event_id ? event_id : "");
	if (event_id == NULL)
		snprintf(eid, sizeof(eid), "%s-v%llu", id, (unsigned long long)version);
	cim_event_block ev = {
		.aggregate_type = (char *)type,
		.aggregate_id = (char *)id,
		.version = version,
		.event_type = (char *)event_type,
		.event_id = eid,
		.correlation_id = eid,
		.causation_id = eid,
		.timestamp = (char *)"2026-11-22T10:00:00.123456789Z",
		.metadata = md,
		.data = data,
		.has_prev = prev != NULL,
	};
	if (prev != NULL)
		ev.prev = *prev;
	memset(b, 0, sizeof(*b));
	cr_assert_eq(cim_event_encode(&ev, &b->bytes, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cim_cid_compute(&b->cid, CIM_CODEC_DAG_CBOR, mh ? mh : CIM_MH_BLAKE2B_256,
				     b->bytes.p, b->bytes.len), 0);
	cim_cid_to_text(&b->cid, b->cid_text);
	json_decref(data);
	json_decref(md);
}

void tb_chain(tb_block *b, size_t n, const char *type, const char *id,
	      uint64_t first_version, const cim_cid *prev)
{
	for (size_t i = 0; i < n; i++) {
		char data[64];

		snprintf(data, sizeof(data), "{\"n\": %zu}", i);
		tb_make(&b[i], type, id, first_version + i, i % 2 ? "Moved" : "Placed", data,
			NULL, i ? &b[i - 1].cid : prev, 0);
	}
}

void tb_free(tb_block *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cbuf_free(&b[i].bytes);
}

char *tb_base64(const uint8_t *p, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(cap);

	cr_assert_not_null(out);
	sodium_bin2base64(out, cap, p, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

static void put_list(cbuf *o, const char *name, const tb_block *b, size_t n)
{
	cbuf_puts(o, "\"");
	cbuf_puts(o, name);
	cbuf_puts(o, "\": [");
	for (size_t i = 0; i < n; i++) {
		char *t = tb_base64(b[i].bytes.p, b[i].bytes.len);
		cbuf_puts(o, i ? ", \"" : "\"");
		cbuf_puts(o, t);
		cbuf_puts(o, "\"");
		free(t);
	}
	cbuf_puts(o, "]");
}

char *tb_restore_body(const tb_block *b, size_t n, const tb_block *seals,
		      size_t nseals, const char *extra)
{
	cbuf o = CBUF_INIT;

	cbuf_puts(&o, "{");
	put_list(&o, "blocks", b, n);
	if (seals != NULL) {
		cbuf_puts(&o, ", ");
		put_list(&o, "seals", seals, nseals);
	}
	if (extra != NULL) {
		cbuf_puts(&o, ", ");
		cbuf_puts(&o, extra);
	}
	cbuf_puts(&o, "}");
	cbuf_putc(&o, '\0');
	return (char *)o.p;
}

void tb_key(cim_signing_key *k, uint8_t seed_byte)
{
	uint8_t seed[CIM_KEY_BYTES];

	memset(seed, seed_byte, sizeof(seed));
	cr_assert_eq(cim_signing_key_from_seed(k, seed), 0);
}

char *tb_key_file(const char *dir, const char *name, uint8_t seed_byte)
{
	uint8_t seed[CIM_KEY_BYTES];
	char err[300];
	char *path = h_strf("%s/%s", dir, name);

	memset(seed, seed_byte, sizeof(seed));
	cr_assert_eq(cim_keyfile_write(path, seed, err, sizeof(err)), 0, "%s", err);
	return path;
}

void tb_seal_block(tb_block *out, const cim_signing_key *k, const cim_cid *cid)
{
	cim_seal_block s;

	memset(out, 0, sizeof(*out));
	s.cid = *cid;
	memcpy(s.pk, k->pk, sizeof(s.pk));
	cr_assert_eq(cim_seal_sign(k, cid, s.sig), 0);
	cr_assert_eq(cim_seal_block_encode(&s, &out->bytes), 0);
	cim_cid_compute(&out->cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, out->bytes.p,
			out->bytes.len);
	cim_cid_to_text(&out->cid, out->cid_text);
}

static uint64_t publish(const tb_block *b, const char *type, const char *id,
		       const char *event_type, uint64_t version, const char *seal_key,
		       const char *seal, const char *batch, const char *msgid)
{
	char *subject = h_strf("events.%s.%s.%s", type, id, event_type);
	char num[32];
	natsMsg *m = NULL;
	jsPubAck *ack = NULL;
	jsErrCode jerr = 0;
	uint64_t seq;

	snprintf(num, sizeof(num), "%llu", (unsigned long long)version);
	cr_assert_eq(natsMsg_Create(&m, subject, NULL, (const char *)b->bytes.p,
				    (int)b->bytes.len), NATS_OK);
	natsMsgHeader_Set(m, "Cim-Cid", b->cid_text);
	natsMsgHeader_Set(m, "Cim-Version", num);
	if (seal_key != NULL)
		natsMsgHeader_Set(m, "Cim-Seal-Key", seal_key);
	if (seal != NULL)
		natsMsgHeader_Set(m, "Cim-Seal", seal);
	if (batch != NULL)
		natsMsgHeader_Set(m, "Cim-Batch", batch);
	if (msgid != NULL)
		natsMsgHeader_Set(m, "Nats-Msg-Id", msgid);
	natsStatus s = js_PublishMsg(&ack, H.js, m, NULL, &jerr);
	cr_assert_eq(s, NATS_OK, "js_PublishMsg(%s): %s (%d)", subject,
		     natsStatus_GetText(s), (int)jerr);
	seq = ack->Sequence;
	jsPubAck_Destroy(ack);
	natsMsg_Destroy(m);
	free(subject);
	return seq;
}

uint64_t tb_publish(const tb_block *b, const char *type, const char *id,
		    const char *event_type, uint64_t version,
		    const char *seal_key, const char *seal)
{
	return publish(b, type, id, event_type, version, seal_key, seal, NULL, NULL);
}

uint64_t tb_publish_part(const tb_block *b, const char *type, const char *id,
			 const char *event_type, uint64_t version, const char *batch,
			 const char *msgid)
{
	return publish(b, type, id, event_type, version, NULL, NULL, batch, msgid);
}
