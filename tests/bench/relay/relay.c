/*
 * relay.c: the floor of the append path (issue 13), a program of its own.
 *
 * The thinnest program of the daemon's shape: it takes a request on
 * <prefix>.append.<type>.<id>, publishes one JetStream message on
 * <events>.<type>.<id>.BenchEvent carrying the daemon's headers (Cim-Cid,
 * Cim-Version, Cim-Event-Id, Cim-Correlation-Id, Cim-Causation-Id,
 * Cim-Writer, Cim-Prev, Nats-Msg-Id, Nats-Expected-Stream) and a payload
 * of the daemon's block size, and answers `Cim-Status: 200` from the ack
 * handler. Nothing else: no parsing, no state per aggregate, no checks.
 * Connections, stream settings and threads are the daemon's: one SendAsap
 * connection, a file-storage stream with the daemon's duplicate window,
 * js_PublishMsgAsync with an ack handler, the request callback one message
 * at a time.
 *
 *   bench-relay --url URL [--prefix P] [--stream S] [--events E]
 *               [--payload-bytes N] [--seconds MAX]
 *
 * It prints "ready" on stdout once it serves, and stops on SIGTERM or
 * SIGINT, or after --seconds (600 by default). The benchmark starts it
 * (tests/bench/relay_run.c) and stops it by its pid.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING (1 << 17) /* requests in flight at most, by far */

static struct {
	natsConnection *nc;
	jsCtx *js;
	const char *prefix, *stream, *events;
	char *payload;
	int payload_len;
	size_t prefix_len;
	char writer[64];
	atomic_ullong counter;
	_Atomic(char *) reply[RING]; /* by counter % RING: where to answer */
} R;

static const char CID[] = "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
static const char EID[] = "01890a5d-ac96-774b-bcce-b302099a8057";

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	const char *mid = NULL, *dot;
	natsMsg *out = NULL;
	char body[64];
	int len;

	(void)js;
	(void)closure;
	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &mid) == NATS_OK && mid != NULL &&
	    (dot = strrchr(mid, '.')) != NULL) {
		unsigned long long k = strtoull(dot + 1, NULL, 10);
		char *to = atomic_exchange(&R.reply[k % RING], NULL);
		len = snprintf(body, sizeof body, "{\"seq\":%llu}",
			       pa ? (unsigned long long)pa->Sequence : 0ULL);
		if (to != NULL && natsMsg_Create(&out, to, NULL, body, len) == NATS_OK) {
			natsMsgHeader_Set(out, "Cim-Status", pa && pae == NULL ? "200" : "503");
			natsConnection_PublishMsg(R.nc, out);
		}
		natsMsg_Destroy(out);
		free(to);
	}
	natsMsg_Destroy(msg);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *req, void *closure)
{
	const char *subj = natsMsg_GetSubject(req), *reply = natsMsg_GetReply(req);
	char out[512], mid[256], num[32];
	natsMsg *m = NULL;
	jsPubOptions po;

	(void)nc;
	(void)sub;
	(void)closure;
	/* <prefix>.append.<type>.<id> -> <events>.<type>.<id>.BenchEvent */
	const char *ti = subj + R.prefix_len + sizeof ".append." - 1;
	if (reply == NULL || strlen(subj) <= R.prefix_len + sizeof ".append." - 1) {
		natsMsg_Destroy(req);
		return;
	}
	unsigned long long k = atomic_fetch_add(&R.counter, 1) + 1;
	snprintf(out, sizeof out, "%s.%s.BenchEvent", R.events, ti);
	snprintf(mid, sizeof mid, "%s.%llu", ti, k);
	snprintf(num, sizeof num, "%llu", k);
	free(atomic_exchange(&R.reply[k % RING], strdup(reply)));
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	if (natsMsg_Create(&m, out, NULL, R.payload, R.payload_len) == NATS_OK &&
	    natsMsgHeader_Set(m, "Cim-Cid", CID) == NATS_OK &&
	    natsMsgHeader_Set(m, "Cim-Version", num) == NATS_OK &&
	    natsMsgHeader_Set(m, "Cim-Event-Id", EID) == NATS_OK &&
	    natsMsgHeader_Set(m, "Cim-Correlation-Id", EID) == NATS_OK &&
	    natsMsgHeader_Set(m, "Cim-Causation-Id", EID) == NATS_OK &&
	    natsMsgHeader_Set(m, "Cim-Writer", R.writer) == NATS_OK &&
	    natsMsgHeader_Set(m, "Cim-Prev", CID) == NATS_OK &&
	    natsMsgHeader_Set(m, "Nats-Msg-Id", mid) == NATS_OK &&
	    natsMsgHeader_Set(m, "Nats-Expected-Stream", R.stream) == NATS_OK)
		js_PublishMsgAsync(R.js, &m, &po);
	natsMsg_Destroy(m);
	natsMsg_Destroy(req);
}

static int make_stream(void)
{
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	char subj[128];
	const char *subjects[] = {subj};

	snprintf(subj, sizeof subj, "%s.>", R.events);
	jsStreamConfig_Init(&sc);
	sc.Name = R.stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Retention = js_LimitsPolicy;
	sc.Discard = js_DiscardNew;
	sc.Duplicates = 120 * 1000000000LL; /* the daemon's default window */
	sc.AllowDirect = true;
	natsStatus s = js_AddStream(&si, R.js, &sc, NULL, &je);
	jsStreamInfo_Destroy(si);
	if (s != NATS_OK) {
		fprintf(stderr, "bench-relay: stream %s: %s (%d)\n", R.stream,
			natsStatus_GetText(s), (int)je);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	int bytes = 400, seconds = 600;
	natsOptions *o = NULL;
	natsSubscription *sub = NULL;
	jsOptions jo;
	char subj[160];
	sigset_t set;
	struct timespec ts;

	R.prefix = "relay.v1";
	R.stream = "BENCH-RELAY";
	R.events = "relayev";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--url") == 0)
			url = argv[i + 1];
		else if (strcmp(argv[i], "--prefix") == 0)
			R.prefix = argv[i + 1];
		else if (strcmp(argv[i], "--stream") == 0)
			R.stream = argv[i + 1];
		else if (strcmp(argv[i], "--events") == 0)
			R.events = argv[i + 1];
		else if (strcmp(argv[i], "--payload-bytes") == 0)
			bytes = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atoi(argv[i + 1]);
	}
	if (url == NULL || bytes <= 0 || bytes > (1 << 20) || seconds <= 0) {
		fprintf(stderr, "usage: bench-relay --url URL [--prefix P] [--stream S] "
				"[--events E] [--payload-bytes N] [--seconds MAX]\n");
		return 2;
	}
	R.prefix_len = strlen(R.prefix);
	R.payload_len = bytes;
	R.payload = malloc((size_t)bytes);
	if (R.payload == NULL)
		return 1;
	for (int i = 0; i < bytes; i++)
		R.payload[i] = (char)('a' + (i * 7) % 26);
	snprintf(R.writer, sizeof R.writer, "relay:%d:%08lx", (int)getpid(),
		 (unsigned long)time(NULL));

	/* signals are taken by sigwait below, never by a handler */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (nats_Open(-1) != NATS_OK || natsOptions_Create(&o) != NATS_OK ||
	    natsOptions_SetURL(o, url) != NATS_OK || natsOptions_SetSendAsap(o, true) != NATS_OK ||
	    natsConnection_Connect(&R.nc, o) != NATS_OK) {
		fprintf(stderr, "bench-relay: cannot connect to %s\n", url);
		return 1;
	}
	natsOptions_Destroy(o);
	jsOptions_Init(&jo);
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.MaxPending = 65536;
	jo.PublishAsync.StallWait = 1000;
	if (natsConnection_JetStream(&R.js, R.nc, &jo) != NATS_OK || make_stream() != 0)
		return 1;
	snprintf(subj, sizeof subj, "%s.append.>", R.prefix);
	if (natsConnection_Subscribe(&sub, R.nc, subj, on_request, NULL) != NATS_OK ||
	    natsSubscription_SetPendingLimits(sub, -1, -1) != NATS_OK ||
	    natsConnection_Flush(R.nc) != NATS_OK) {
		fprintf(stderr, "bench-relay: cannot subscribe to %s\n", subj);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	ts.tv_sec = seconds;
	ts.tv_nsec = 0;
	sigtimedwait(&set, NULL, &ts);
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(R.js);
	natsConnection_Destroy(R.nc);
	for (int i = 0; i < RING; i++)
		free(atomic_load(&R.reply[i]));
	free(R.payload);
	nats_Close();
	return 0;
}
