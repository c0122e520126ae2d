/*
 * decrypt.c: encrypted data on its way out: events shown in replies
 * (show_event, for get, load and by_type) and the decrypt operation,
 * <prefix>.decrypt.<aggregate_type>, which turns ciphertexts a reader
 * took from the stream itself (the client library's subscriptions and
 * projections) into their values, so that data keys never leave the
 * daemon. Both run on read workers: a data key not in memory is read from
 * the keys bucket.
 *
 * An event is shown decrypted ("encrypted": true) when its data is a byte
 * string (the form of an encrypted aggregate's data) and its aggregate's
 * data key is at hand; as forgotten ("data": null, "forgotten": true) when
 * the aggregate is forgotten or being forgotten, its key is no longer
 * stored, or the daemon has no master key. Data that does not
 * authenticate under its key is an error (internal), as an undecodable
 * block is.
 *
 * decrypt answers each item, in order, with {"data": <the value>}, or with
 * {"forgotten": true} (no data member) in the same cases as an event shown
 * forgotten; an item whose data does not authenticate under its
 * aggregate's key with its event_id refuses the request (invalid_argument,
 * field items[i].data), since it came from the caller. Items past the NATS
 * payload limit are left out of the reply, to be asked again.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "daemon.h"
#include "decrypt.h"
#include "log.h"

#define REPLY_SLACK 512

void shown_release(struct daemon *d, struct shown *sh)
{
	keys_unpin(d, sh->key);
	sh->key = NULL;
	sh->state = KEY_MISS;
}

/* The data key of type/id into sh (the one held is kept when it is the
 * same aggregate's). 0, or -1 with e set. */
static int shown_key(struct daemon *d, struct shown *sh, const char *type, size_t tlen,
		     const char *id, size_t ilen, cim_perr *e)
{
	if (sh->state != KEY_MISS && strlen(sh->type) == tlen &&
	    memcmp(sh->type, type, tlen) == 0 && strlen(sh->id) == ilen &&
	    memcmp(sh->id, id, ilen) == 0)
		return 0;
	shown_release(d, sh);
	if (tlen > CIM_TYPE_MAX || ilen > CIM_ID_MAX)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "an aggregate name is too long");
	memcpy(sh->type, type, tlen);
	sh->type[tlen] = '\0';
	memcpy(sh->id, id, ilen);
	sh->id[ilen] = '\0';
	int k = keys_get(d, sh->type, sh->id, false, &sh->key, e);
	if (k < 0)
		return -1;
	sh->state = k;
	return 0;
}

int show_event(struct daemon *d, struct shown *sh, cbuf *out, const uint8_t *p,
	       size_t len, const cim_event_view *v, const cim_cid *cid, uint64_t seq,
	       bool forgotten, cim_perr *e)
{
	const uint8_t *enc;
	size_t elen;
	char why[200];
	int rc;

	if (!cim_event_encrypted(v, &enc, &elen)) {
		rc = cim_event_write_json(out, p, len, cid, seq, why, sizeof why);
	} else if (forgotten || d->keys.master == NULL) {
		rc = cim_event_write_json_as(out, p, len, cid, seq, CIM_SHOW_FORGOTTEN, NULL, 0,
					     why, sizeof why);
	} else {
		if (shown_key(d, sh, v->aggregate_type, v->aggregate_type_len, v->aggregate_id,
			      v->aggregate_id_len, e) != 0)
			return -1;
		if (sh->state != KEY_HELD)
			/* no key is stored for it any more: forgotten */
			return cim_event_write_json_as(out, p, len, cid, seq, CIM_SHOW_FORGOTTEN,
						       NULL, 0, why, sizeof why) == 0
				       ? 0
				       : cim_perr_set(e, CIM_ERR_INTERNAL, NULL, "%s", why);
		cbuf plain = CBUF_SECRET;
		cim_ad ad = cim_ad_data(v->event_id, v->event_id_len);
		if (cim_value_decrypt_text(&plain, sh->key, &ad, enc, elen, why, sizeof why) != 0) {
			cbuf_free(&plain);
			return cim_perr_set(e, CIM_ERR_INTERNAL, NULL,
					    "the data of %s/%s version %llu (stream sequence "
					    "%llu) cannot be decrypted: %s; run validate",
					    sh->type, sh->id, (unsigned long long)v->version,
					    (unsigned long long)seq, why);
		}
		rc = cim_event_write_json_as(out, p, len, cid, seq, CIM_SHOW_DECRYPTED,
					     (const char *)plain.p, plain.len, why, sizeof why);
		sodium_memzero(plain.p, plain.cap);
		cbuf_free(&plain);
	}
	if (rc != 0)
		return cim_perr_set(e, CIM_ERR_INTERNAL, NULL,
				    "the event at stream sequence %llu cannot be shown: %s",
				    (unsigned long long)seq, why);
	return 0;
}

/* ---- <prefix>.decrypt.<aggregate_type> ------------------------------------------ */

struct dreq {
	natsMsg *req;
	char type[CIM_TYPE_MAX + 1];
};

static void decrypt_work(struct daemon *d, void *arg)
{
	struct dreq *r = arg;
	cim_decrypt_req dr;
	struct shown sh = {.state = KEY_MISS};
	cbuf out = CBUF_SECRET, plain = CBUF_SECRET;
	size_t budget = d->max_payload > REPLY_SLACK ? d->max_payload - REPLY_SLACK : 0;
	size_t done = 0;
	char why[200];
	cim_perr e = {0};

	if (cim_decrypt_req_parse(natsMsg_GetData(r->req), (size_t)natsMsg_GetDataLength(r->req),
				  (size_t)d->cfg->get_max_limit, (size_t)d->cfg->max_event_bytes,
				  &dr, &e) != 0)
		goto fail;
	if (cbuf_puts(&out, "{\"items\":[") != 0)
		goto oom;
	for (; done < dr.n; done++) {
		const cim_decrypt_item *it = &dr.items[done];
		size_t mark = out.len;
		bool forgotten = d->keys.master == NULL || forget_shown(d, r->type, it->aggregate_id);
		if (!forgotten) {
			if (shown_key(d, &sh, r->type, strlen(r->type), it->aggregate_id,
				      strlen(it->aggregate_id), &e) != 0)
				goto fail;
			forgotten = sh.state != KEY_HELD;
		}
		if (done > 0 && cbuf_putc(&out, ',') != 0)
			goto oom;
		if (forgotten) {
			if (cbuf_puts(&out, "{\"forgotten\":true}") != 0)
				goto oom;
		} else {
			cim_ad ad = cim_ad_data(it->event_id, it->event_id_len);
			cbuf_reset(&plain);
			if (cim_value_decrypt_text(&plain, sh.key, &ad, it->enc, it->enc_len, why,
						   sizeof why) != 0) {
				char field[64];
				snprintf(field, sizeof field, "items[%zu].data", done);
				cim_perr_set(&e, CIM_ERR_INVALID_ARGUMENT, field,
					     "items[%zu].data is not data of %s/%s with that "
					     "event_id: %s", done, r->type, it->aggregate_id, why);
				goto fail;
			}
			if (cbuf_puts(&out, "{\"data\":") != 0 ||
			    cbuf_put(&out, plain.p, plain.len) != 0 || cbuf_putc(&out, '}') != 0)
				goto oom;
		}
		if (out.len + 2 > budget) {
			/* the rest is asked again */
			out.len = mark;
			if (done == 0) {
				cim_perr_set(&e, CIM_ERR_PAYLOAD_TOO_LARGE, "items[0]",
					     "the value of items[0] alone is larger than the "
					     "NATS payload limit (%zu bytes)", d->max_payload);
				goto fail;
			}
			break;
		}
	}
	if (cbuf_puts(&out, "]}") != 0)
		goto oom;
	atomic_fetch_add(&d->decrypted_count, done);
	{
		const char *to = natsMsg_GetReply(r->req);
		natsMsg *m = NULL;
		if (to && natsMsg_Create(&m, to, NULL, (const char *)out.p, (int)out.len) == NATS_OK) {
			natsMsgHeader_Set(m, "Cim-Status", "200");
			natsConnection_PublishMsg(d->nc, m);
			lat_end(d, r->req);
			natsMsg_Destroy(m);
		}
	}
	goto out;
oom:
	cim_perr_set(&e, CIM_ERR_INTERNAL, NULL, "out of memory");
fail:
	reply_error(d, r->req, OP_DECRYPT, &e);
out:
	shown_release(d, &sh);
	if (plain.p != NULL)
		sodium_memzero(plain.p, plain.cap);
	cbuf_free(&plain);
	if (out.p != NULL)
		sodium_memzero(out.p, out.cap);
	cbuf_free(&out);
	cim_decrypt_req_free(&dr);
	natsMsg_Destroy(r->req);
	free(r);
}

void decrypt_request(struct daemon *d, natsMsg *req, const char *type)
{
	struct dreq *r = calloc(1, sizeof *r);
	cim_perr e;

	if (r == NULL) {
		refuse_oom(d, req, OP_DECRYPT);
		return;
	}
	r->req = req;
	snprintf(r->type, sizeof r->type, "%s", type);
	if (work_submit(d, decrypt_work, r) != 0) {
		free(r);
		cim_perr_set(&e, CIM_ERR_UNAVAILABLE, NULL, "the daemon is overloaded; retry later");
		refuse(d, req, OP_DECRYPT, &e);
	}
}
