/*
 * events.c: the client handle and the transport of libcimevents.
 *
 * A cim_client is a NATS connection plus the API prefix and the request
 * timeout; it holds nothing mutable after it is made, so any number of
 * threads may share it (nats.c serialises what the connection needs).
 * Every call is one NATS request: the body is compact JSON, the reply is a
 * JSON object, and an object with an "error" member is the daemon's
 * refusal, mapped into cim_error here and only here.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "ids.h"
#include "jsonread.h"

#define DEFAULT_URL "nats://127.0.0.1:4222"
#define DEFAULT_PREFIX "cim.events.v1"
#define DEFAULT_TIMEOUT_MS 5000
#define RECONNECT_WAIT_MS 250

/* ---- errors and small helpers -------------------------------------------- */

void
cimc_clear(cim_error *err)
{
	if (err != NULL)
		memset(err, 0, sizeof(*err));
}

cim_err
cimc_fail(cim_error *err, cim_err code, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	memset(err, 0, sizeof(*err));
	err->code = code;
	if (field != NULL)
		snprintf(err->field, sizeof(err->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return code;
}

static bool
token_char_ok(unsigned char ch)
{
	return ch != '.' && ch != '*' && ch != '>' && !isspace(ch);
}

cim_err
cimc_check_token(const char *s, const char *field, cim_error *err)
{
	if (s == NULL || *s == '\0')
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, field,
				 "%s must not be empty", field);
	for (const char *p = s; *p != '\0'; p++)
		if (!token_char_ok((unsigned char)*p))
			return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, field,
					 "%s must not contain '.', '*', '>' "
					 "or white space",
					 field);
	return CIM_ERR_OK;
}

/* The prefix may have several tokens, each one like a token above. */
static cim_err
check_prefix(const char *prefix, cim_error *err)
{
	const char *p = prefix;

	for (;;) {
		size_t n = strcspn(p, ".");

		if (n == 0)
			return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
					 "prefix",
					 "prefix has an empty subject token");
		for (size_t i = 0; i < n; i++)
			if (!token_char_ok((unsigned char)p[i]))
				return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
						 "prefix",
						 "prefix must not contain '*', "
						 "'>' or white space");
		if (p[n] == '\0')
			return CIM_ERR_OK;
		p += n + 1;
	}
}

char *
cimc_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

/* ---- the client handle --------------------------------------------------- */

static cim_err
client_new(const cim_client_options *opts, cim_client **out, cim_error *err)
{
	const char *prefix = DEFAULT_PREFIX;
	int64_t timeout = DEFAULT_TIMEOUT_MS;
	cim_client *c;
	cim_err rc;

	if (opts != NULL && opts->prefix != NULL)
		prefix = opts->prefix;
	if (opts != NULL && opts->timeout_ms != 0)
		timeout = opts->timeout_ms;
	if ((rc = check_prefix(prefix, err)) != CIM_ERR_OK)
		return rc;
	if (timeout < 0)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "timeout_ms",
				 "timeout_ms must not be negative");
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->prefix = cimc_strdup(prefix)) == NULL) {
		free(c);
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	}
	cim_js_api_prefix(NULL, NULL, c->js_api, sizeof(c->js_api));
	c->timeout_ms = timeout;
	*out = c;
	return CIM_ERR_OK;
}

/* A URL, or a comma-separated list of them (natsOptions_SetURL takes one;
 * a list goes to natsOptions_SetServers). */
static natsStatus set_urls(natsOptions *o, const char *urls)
{
	char *copy, *save = NULL, *list[32];
	int n = 0;
	natsStatus s;

	if (strchr(urls, ',') == NULL)
		return natsOptions_SetURL(o, urls);
	if ((copy = strdup(urls)) == NULL)
		return NATS_NO_MEMORY;
	for (char *t = strtok_r(copy, ", ", &save); t && n < 32; t = strtok_r(NULL, ", ", &save))
		list[n++] = t;
	s = n > 0 ? natsOptions_SetServers(o, (const char **)list, n) : NATS_INVALID_ARG;
	free(copy);
	return s;
}

static natsStatus
make_options(natsOptions **no, const char *url, int64_t timeout_ms)
{
	natsStatus s = natsOptions_Create(no);

	if (s == NATS_OK)
		s = set_urls(*no, url);
	if (s == NATS_OK)
		s = natsOptions_SetName(*no, "libcimevents");
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(*no, true);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(*no, timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(*no, true);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(*no, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(*no, RECONNECT_WAIT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetFailRequestsOnDisconnect(*no, true);
	return s;
}

/* url without passwords or tokens: "user:pass@" becomes "***@", in each
 * URL of a comma-separated list. */
static void
redact_url(const char *url, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	while (*url != '\0' && n + 1 < size) {
		const char *scheme = strstr(url, "://");
		size_t len = strcspn(url, ",");
		size_t host = scheme != NULL && (size_t)(scheme - url) < len
				      ? (size_t)(scheme - url) + 3
				      : 0;
		const char *at = memchr(url + host, '@', len - host);

		if (at != NULL)
			n += (size_t)snprintf(buf + n, size - n, "%.*s***%.*s",
					      (int)host, url,
					      (int)(len - (size_t)(at - url)),
					      at);
		else
			n += (size_t)snprintf(buf + n, size - n, "%.*s",
					      (int)len, url);
		if (n >= size - 1)
			break; /* cut short */
		url += len;
		if (*url == ',') {
			buf[n++] = *url++;
			buf[n] = '\0';
		}
	}
}

static cim_err
connect_failure(natsStatus s, const char *url, cim_error *err)
{
	const char *why = nats_GetLastError(NULL);
	char shown[256];

	if (s == NATS_NO_MEMORY)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	if (why == NULL || *why == '\0')
		why = natsStatus_GetText(s);
	else if (why[0] == '(' && strstr(why, "): ") != NULL)
		why = strstr(why, "): ") + 3; /* nats.c's "(file:line): " */
	redact_url(url, shown, sizeof(shown));
	return cimc_fail(err, CIM_ERR_CONNECTION, NULL,
			 "cannot connect to NATS at %s: %s", shown, why);
}

cim_err
cim_client_connect(cim_client **out, const char *url,
		   const cim_client_options *opts, cim_error *err)
{
	natsOptions *no = NULL;
	cim_client *c = NULL;
	natsStatus s;
	cim_err rc;

	cimc_clear(err);
	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	*out = NULL;
	if (url == NULL)
		url = DEFAULT_URL;
	if ((rc = client_new(opts, &c, err)) != CIM_ERR_OK)
		return rc;
	s = make_options(&no, url, c->timeout_ms);
	if (s == NATS_OK)
		s = natsConnection_Connect(&c->nc, no);
	natsOptions_Destroy(no);
	if (s != NATS_OK) {
		rc = connect_failure(s, url, err);
		c->nc = NULL;
		cim_client_destroy(c);
		return rc;
	}
	c->owned = true;
	*out = c;
	return CIM_ERR_OK;
}

cim_err
cim_client_wrap(cim_client **out, void *nats_connection,
		const cim_client_options *opts, cim_error *err)
{
	cim_client *c = NULL;
	cim_err rc;

	cimc_clear(err);
	if (out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "out",
				 "out must not be NULL");
	*out = NULL;
	if (nats_connection == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
				 "nats_connection",
				 "nats_connection must not be NULL");
	if ((rc = client_new(opts, &c, err)) != CIM_ERR_OK)
		return rc;
	c->nc = nats_connection;
	*out = c;
	return CIM_ERR_OK;
}

void
cim_client_destroy(cim_client *c)
{
	if (c == NULL)
		return;
	if (c->owned && c->nc != NULL)
		natsConnection_Destroy(c->nc);
	free(c->prefix);
	free(c->js_domain);
	free(c);
}

cim_err
cim_client_set_jetstream(cim_client *c, const char *js_domain,
			 const char *js_api_prefix, cim_error *err)
{
	bool domain = js_domain != NULL && js_domain[0] != '\0';
	char *d = NULL;

	cimc_clear(err);
	if (c == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "client",
				 "client must not be NULL");
	if (domain && js_api_prefix != NULL && js_api_prefix[0] != '\0')
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "js_domain",
				 "give js_domain or js_api_prefix, not both");
	if ((js_api_prefix != NULL && strlen(js_api_prefix) >= sizeof(c->js_api)) ||
	    (domain && strlen(js_domain) + 9 > sizeof(c->js_api)))
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
				 domain ? "js_domain" : "js_api_prefix",
				 "the JetStream API prefix is too long");
	if (domain && (d = cimc_strdup(js_domain)) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	free(c->js_domain);
	c->js_domain = d;
	cim_js_api_prefix(js_domain, js_api_prefix, c->js_api, sizeof(c->js_api));
	return CIM_ERR_OK;
}

natsStatus
cimc_jetstream(const cim_client *c, jsCtx **js)
{
	jsOptions jo;

	jsOptions_Init(&jo);
	if (c->js_domain != NULL)
		jo.Domain = c->js_domain;
	else if (strcmp(c->js_api, "$JS.API") != 0)
		jo.Prefix = c->js_api;
	return natsConnection_JetStream(js, c->nc, &jo);
}

/* ---- one request --------------------------------------------------------- */

static char *
make_subject(const cim_client *c, const char *op, const char *type,
	     const char *id)
{
	size_t n = strlen(c->prefix) + strlen(op) + 2;
	char *s;

	if (type != NULL)
		n += strlen(type) + 1;
	if (id != NULL)
		n += strlen(id) + 1;
	if ((s = malloc(n)) == NULL)
		return NULL;
	snprintf(s, n, "%s.%s%s%s%s%s", c->prefix, op, type ? "." : "",
		 type ? type : "", id ? "." : "", id ? id : "");
	return s;
}

static cim_err
nats_failure(const cim_client *c, natsStatus s, size_t len, cim_error *err)
{
	switch (s) {
	case NATS_TIMEOUT:
		return cimc_fail(err, CIM_ERR_TIMEOUT, NULL,
				 "no reply from the daemon within %lld ms",
				 (long long)c->timeout_ms);
	case NATS_NO_RESPONDERS:
		return cimc_fail(err, CIM_ERR_NO_DAEMON, NULL,
				 "no daemon is listening under \"%s\"",
				 c->prefix);
	case NATS_MAX_PAYLOAD:
		return cimc_fail(
			err, CIM_ERR_PAYLOAD_TOO_LARGE, NULL,
			"the request is %zu bytes, over the NATS "
			"server's limit of %lld bytes",
			len, (long long)natsConnection_GetMaxPayload(c->nc));
	case NATS_NO_MEMORY:
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	default:
		return cimc_fail(err, CIM_ERR_CONNECTION, NULL,
				 "the request to NATS failed: %s",
				 natsStatus_GetText(s));
	}
}

/* The daemon's {"error": {...}} object into err. */
static cim_err
daemon_error(const json_t *e, cim_error *err)
{
	const char *name = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	const json_t *v;
	cim_err code;

	if (name == NULL)
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the daemon's error reply has no code");
	if (msg == NULL)
		msg = "(no message)";
	code = cim_err_from_name(name);
	if (code == CIM_ERR_OK || code == CIM_ERR_BAD_REPLY)
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the daemon replied with the unknown error "
				 "code \"%s\": %s",
				 name, msg);
	cimc_fail(err, code, json_string_value(json_object_get(e, "field")),
		  "%s", msg);
	if (err == NULL)
		return code;
	if ((v = json_object_get(e, "event_id")) != NULL && json_is_string(v) &&
	    json_string_length(v) < sizeof(err->event_id)) {
		/* all of it: an event_id may hold U+0000 */
		memcpy(err->event_id, json_string_value(v),
		       json_string_length(v) + 1);
		err->event_id_len = json_string_length(v);
	}
	v = json_object_get(e, "expected");
	if (json_is_string(v))
		snprintf(err->expected, sizeof(err->expected), "%s",
			 json_string_value(v));
	else if (json_is_integer(v))
		snprintf(err->expected, sizeof(err->expected), "%lld",
			 (long long)json_integer_value(v));
	v = json_object_get(e, "current");
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		err->current = (uint64_t)json_integer_value(v);
	return code;
}

/* The reply message into a JSON object; a daemon error fills err and
 * still hands back the object (cim_request returns it). */
static cim_err
decode_reply(natsMsg *msg, json_t **out, cim_error *err)
{
	const char *data = natsMsg_GetData(msg);
	int len = natsMsg_GetDataLength(msg);
	const char *status = NULL;
	json_error_t jerr;
	const json_t *e;
	json_t *j;

	j = cim_json_read(data ? data : "", len > 0 ? (size_t)len : 0, 0,
			  &jerr);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the daemon's reply is not a JSON object%s%s",
				 j == NULL ? ": " : "",
				 j == NULL ? jerr.text : "");
	}
	*out = j;
	if ((e = json_object_get(j, "error")) != NULL)
		return json_is_object(e)
			       ? daemon_error(e, err)
			       : cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
					   "the daemon's error reply is not an "
					   "object");
	if (natsMsgHeader_Get(msg, "Cim-Status", &status) == NATS_OK &&
	    status != NULL && strcmp(status, "200") != 0)
		return cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
				 "the daemon replied with status %s and no "
				 "error object",
				 status);
	return CIM_ERR_OK;
}

/* Sends body to the subject; on CIM_ERR_OK or a daemon error *reply is the
 * reply object, and *raw (when raw is not NULL) its text. */
static cim_err
exchange(cim_client *c, const char *op, const char *type, const char *id,
	 const char *body, size_t len, json_t **reply, char **raw,
	 cim_error *err)
{
	natsMsg *msg = NULL;
	char *subject;
	natsStatus s;
	cim_err rc;

	if (len > INT_MAX)
		return cimc_fail(err, CIM_ERR_PAYLOAD_TOO_LARGE, NULL,
				 "the request is %zu bytes, too large to send",
				 len);
	if ((subject = make_subject(c, op, type, id)) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	s = natsConnection_Request(&msg, c->nc, subject, body, (int)len,
				   c->timeout_ms);
	free(subject);
	if (s != NATS_OK)
		return nats_failure(c, s, len, err);
	rc = decode_reply(msg, reply, err);
	if (*reply != NULL && raw != NULL) {
		int n = natsMsg_GetDataLength(msg);

		if ((*raw = malloc((size_t)n + 1)) == NULL) {
			json_decref(*reply);
			*reply = NULL;
			rc = cimc_fail(err, CIM_ERR_NOMEM, NULL,
				       "out of memory");
		} else {
			memcpy(*raw, natsMsg_GetData(msg), (size_t)n);
			(*raw)[n] = '\0';
		}
	}
	natsMsg_Destroy(msg);
	return rc;
}

cim_err
cimc_send(cim_client *c, const char *op, const char *type, const char *body,
	  size_t len, cimc_pending *p, cim_error *err)
{
	natsInbox *inbox = NULL;
	char *subject;
	natsStatus s;

	memset(p, 0, sizeof(*p));
	p->len = len;
	if (len > INT_MAX)
		return cimc_fail(err, CIM_ERR_PAYLOAD_TOO_LARGE, NULL,
				 "the request is %zu bytes, too large to send",
				 len);
	if ((subject = make_subject(c, op, type, NULL)) == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	s = natsInbox_Create(&inbox);
	if (s == NATS_OK)
		s = natsConnection_SubscribeSync(&p->sub, c->nc, inbox);
	if (s == NATS_OK)
		s = natsSubscription_AutoUnsubscribe(p->sub, 1);
	if (s == NATS_OK)
		s = natsConnection_PublishRequest(c->nc, subject, inbox, body,
						  (int)len);
	natsInbox_Destroy(inbox);
	free(subject);
	if (s != NATS_OK) {
		cimc_pending_drop(p);
		return nats_failure(c, s, len, err);
	}
	return CIM_ERR_OK;
}

cim_err
cimc_receive(cim_client *c, cimc_pending *p, natsMsg **msg, cim_error *err)
{
	const char *status = NULL;
	size_t len = p->len;
	natsStatus s;

	*msg = NULL;
	s = natsSubscription_NextMsg(msg, p->sub, c->timeout_ms);
	cimc_pending_drop(p);
	if (s == NATS_OK && natsMsg_IsNoResponders(*msg))
		s = NATS_NO_RESPONDERS;
	if (s != NATS_OK) {
		natsMsg_Destroy(*msg);
		*msg = NULL;
		return nats_failure(c, s, len, err);
	}
	if (natsMsgHeader_Get(*msg, "Cim-Status", &status) == NATS_OK &&
	    status != NULL && strcmp(status, "200") == 0)
		return CIM_ERR_OK;
	/* an error reply: the error object, as for any request */
	json_t *j = NULL;
	cim_err rc = decode_reply(*msg, &j, err);
	json_decref(j);
	natsMsg_Destroy(*msg);
	*msg = NULL;
	return rc != CIM_ERR_OK ? rc
				: cimc_fail(err, CIM_ERR_BAD_REPLY, NULL,
					    "the daemon's reply has no status 200");
}

void
cimc_pending_drop(cimc_pending *p)
{
	if (p->sub != NULL) {
		natsSubscription_Unsubscribe(p->sub);
		natsSubscription_Destroy(p->sub);
	}
	p->sub = NULL;
}

cim_err
cimc_call(cim_client *c, const char *op, const char *type, const char *id,
	  const json_t *req, json_t **reply, cim_error *err)
{
	json_t *r = NULL;
	char *body;
	cim_err rc;

	*reply = NULL;
	body = req != NULL ? cim_json_text(req) : cimc_strdup("{}");
	if (body == NULL)
		return cimc_fail(err, CIM_ERR_NOMEM, NULL, "out of memory");
	rc = exchange(c, op, type, id, body, strlen(body), &r, NULL, err);
	free(body);
	if (rc != CIM_ERR_OK) {
		json_decref(r);
		return rc;
	}
	*reply = r;
	return CIM_ERR_OK;
}

/* ---- raw calls ----------------------------------------------------------- */

static cim_err
check_operation(const char *op, cim_error *err)
{
	if (op == NULL || *op == '\0')
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "operation",
				 "operation must not be empty");
	for (const char *p = op; *p != '\0'; p++)
		if (*p == '*' || *p == '>' || isspace((unsigned char)*p) ||
		    (*p == '.' && (p == op || p[1] == '\0' || p[1] == '.')))
			return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT,
					 "operation",
					 "operation is not a valid subject "
					 "part");
	return CIM_ERR_OK;
}

cim_err
cim_request(cim_client *c, const char *operation, const char *aggregate_type,
	    const char *aggregate_id, const char *request_json,
	    char **reply_json, cim_error *err)
{
	json_t *reply = NULL;
	char *raw = NULL;
	cim_err rc;

	cimc_clear(err);
	if (reply_json == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "reply_json",
				 "reply_json must not be NULL");
	*reply_json = NULL;
	if (c == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "client",
				 "client must not be NULL");
	if ((rc = check_operation(operation, err)) != CIM_ERR_OK)
		return rc;
	if (aggregate_type != NULL &&
	    (rc = cimc_check_token(aggregate_type, "aggregate_type", err)) !=
		    CIM_ERR_OK)
		return rc;
	if (aggregate_id != NULL &&
	    (rc = cimc_check_token(aggregate_id, "aggregate_id", err)) !=
		    CIM_ERR_OK)
		return rc;
	if (request_json == NULL)
		request_json = "{}";
	rc = exchange(c, operation, aggregate_type, aggregate_id, request_json,
		      strlen(request_json), &reply, &raw, err);
	json_decref(reply);
	*reply_json = raw; /* the body, on success and on a daemon error */
	return rc;
}

cim_err
cim_info(cim_client *c, char **json_out, cim_error *err)
{
	char *raw = NULL;
	cim_err rc;

	cimc_clear(err);
	if (json_out == NULL)
		return cimc_fail(err, CIM_ERR_INVALID_ARGUMENT, "json_out",
				 "json_out must not be NULL");
	*json_out = NULL;
	rc = cim_request(c, "info", NULL, NULL, "{}", &raw, err);
	if (rc != CIM_ERR_OK) {
		free(raw);
		return rc;
	}
	*json_out = raw;
	return CIM_ERR_OK;
}
