/*
 * leader.c: reading the stream through its leader.
 *
 * On a replicated stream nats-server 2.9.10 may place an ephemeral
 * consumer on any replica, and a replica that is still catching up (a node
 * just restarted, a leader just elected) hands out a past state of the
 * stream without saying so. Reads that answer clients use a consumer that
 * store.c makes again until it sits on the leader; reads the daemon acts
 * on must not depend on that: settling an aggregate removes a batch it
 * sees torn, and a batch seen through a stale replica may be whole on the
 * leader.
 *
 * So what the daemon acts on is read here, one message at a time, with the
 * JetStream API's "get message" request ($JS.API.STREAM.MSG.GET), which
 * only the stream's leader answers: by sequence, or the first message at
 * or after a sequence on a subject (next_by_subj, one exact subject, found
 * from the per-subject index). It is slower than a consumer's batches, and
 * used only where that is worth it: settling, and checking that a start-up
 * scan reached the end of the stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "daemon.h"
#include "log.h"

#define LEADER_WAIT_MS 2000

/* Decodes base64 text into a malloc'd buffer (NUL-terminated, not counted). */
static unsigned char *unbase64(const char *text, size_t *len)
{
	size_t tl = strlen(text), cap = tl / 4 * 3 + 4;
	unsigned char *out = malloc(cap);
	if (out == NULL)
		return NULL;
	if (sodium_base642bin(out, cap, text, tl, NULL, len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(out);
		return NULL;
	}
	out[*len] = '\0';
	return out;
}

/* Sets the headers of a "NATS/1.0\r\nKey: Value\r\n..." block on m. */
static int set_header_block(natsMsg *m, char *h)
{
	char *line = strstr(h, "\r\n");
	if (strncmp(h, "NATS/1.0", 8) != 0 || line == NULL)
		return -1;
	for (line += 2; *line != '\0';) {
		char *end = strstr(line, "\r\n");
		if (end == NULL)
			end = line + strlen(line);
		if (end == line)
			break; /* the empty line that ends the block */
		char *colon = memchr(line, ':', (size_t)(end - line));
		char *next = *end ? end + 2 : end;
		*end = '\0';
		if (colon != NULL) {
			*colon = '\0';
			const char *v = colon + 1;
			while (*v == ' ')
				v++;
			if (natsMsgHeader_Add(m, line, v) != NATS_OK)
				return -1;
		}
		line = next;
	}
	return 0;
}

/* Parses an RFC 3339 UTC time with nanoseconds into ns since the epoch. */
static int64_t parse_time(const char *s)
{
	struct tm tm = {0};
	char frac[16] = "";
	int64_t ns = 0;

	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
				&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	const char *dot = strchr(s, '.');
	if (dot != NULL && sscanf(dot + 1, "%9[0-9]", frac) == 1) {
		size_t n = strlen(frac);
		ns = strtoll(frac, NULL, 10);
		for (; n < 9; n++)
			ns *= 10;
	}
	return (int64_t)timegm(&tm) * 1000000000LL + ns;
}

int leader_reply(natsMsg *reply, struct leader_msg *out, cim_perr *err)
{
	json_error_t je;
	int rc = -1;

	memset(out, 0, sizeof *out);
	json_t *root = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &je);
	json_t *e = json_object_get(root, "error"), *m = json_object_get(root, "message");
	if (e != NULL) {
		json_int_t code = json_integer_value(json_object_get(e, "code"));
		const char *what = json_string_value(json_object_get(e, "description"));
		if (code == 404)
			rc = 0;
		else
			cim_perr_set(err, code == 503 ? CIM_ERR_UNAVAILABLE : CIM_ERR_INTERNAL,
				     NULL, "storage: reading through the stream's leader: %s",
				     what ? what : "error");
		goto out;
	}
	const char *msubj = json_string_value(json_object_get(m, "subject"));
	const char *data = json_string_value(json_object_get(m, "data"));
	const char *hdrs = json_string_value(json_object_get(m, "hdrs"));
	unsigned char *raw = NULL, *hraw = NULL;
	size_t len = 0, hlen = 0;
	if (msubj == NULL || (data != NULL && (raw = unbase64(data, &len)) == NULL) ||
	    (hdrs != NULL && (hraw = unbase64(hdrs, &hlen)) == NULL) ||
	    natsMsg_Create(&out->msg, msubj, NULL, (const char *)raw, (int)len) != NATS_OK ||
	    (hraw != NULL && set_header_block(out->msg, (char *)hraw) != 0)) {
		free(raw);
		free(hraw);
		natsMsg_Destroy(out->msg);
		out->msg = NULL;
		cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "%s",
			     "storage: the stream's leader sent a message that cannot be read");
		goto out;
	}
	free(raw);
	free(hraw);
	out->seq = (uint64_t)json_integer_value(json_object_get(m, "seq"));
	out->ts = parse_time(json_string_value(json_object_get(m, "time")));
	rc = 1;
out:
	json_decref(root);
	return rc;
}

int leader_get(struct daemon *d, uint64_t seq, const char *subject, struct leader_msg *out,
	       cim_perr *err)
{
	char subj[300], *body = NULL;
	natsMsg *reply = NULL;
	json_t *req;

	memset(out, 0, sizeof *out);
	req = json_pack("{sI ss}", "seq", (json_int_t)seq, "next_by_subj", subject);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (body == NULL)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	snprintf(subj, sizeof subj, "%s.STREAM.MSG.GET.%s", d->js_api, d->cfg->stream);
	natsStatus s = natsConnection_RequestString(&reply, d->nc, subj, body, LEADER_WAIT_MS);
	free(body);
	if (s != NATS_OK)
		return cim_perr_set(err, CIM_ERR_UNAVAILABLE, NULL,
				    "storage: reading through the stream's leader: %s",
				    natsStatus_GetText(s));
	int rc = leader_reply(reply, out, err);
	natsMsg_Destroy(reply);
	return rc;
}

int store_read_agg_leader(struct daemon *d, const char *type, const char *id,
			  char *const *event_types, int ntypes, uint64_t from_seq,
			  store_visit_fn visit, void *ctx, cim_perr *err)
{
	struct leader_msg *cur = calloc((size_t)(ntypes > 0 ? ntypes : 1), sizeof *cur);
	char subj[512];
	int rc = 0;

	if (cur == NULL)
		return cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "out of memory");
	/* one cursor per exact subject, merged by sequence */
	for (int i = 0; i < ntypes && rc == 0; i++) {
		snprintf(subj, sizeof subj, "%s%s.%s.%s", d->events_prefix, type, id,
			 event_types[i]);
		if (leader_get(d, from_seq, subj, &cur[i], err) < 0)
			rc = -1;
	}
	while (rc == 0) {
		int best = -1;
		for (int i = 0; i < ntypes; i++)
			if (cur[i].msg != NULL && (best < 0 || cur[i].seq < cur[best].seq))
				best = i;
		if (best < 0)
			break;
		struct leader_msg *b = &cur[best];
		int v = visit(b->msg, b->seq, b->ts, ctx);
		if (v != 0) {
			rc = v < 0 ? cim_perr_set(err, CIM_ERR_INTERNAL, NULL, "%s",
						  "out of memory") : 0;
			break;
		}
		uint64_t next = b->seq + 1;
		const char *s = natsMsg_GetSubject(b->msg);
		snprintf(subj, sizeof subj, "%s", s);
		natsMsg_Destroy(b->msg);
		if (leader_get(d, next, subj, b, err) < 0)
			rc = -1;
	}
	for (int i = 0; i < ntypes; i++)
		natsMsg_Destroy(cur[i].msg);
	free(cur);
	return rc;
}
