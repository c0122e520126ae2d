/*
 * floor_append.c: the floors that bound the daemon's append throughput,
 * measured in the same run (issue 13).
 *
 *   relay    tests/bench/relay/relay.c as a process of its own: a request
 *            in, one JetStream message with the daemon's headers out, the
 *            answer from its ack handler; driven by the same engine, at the
 *            same in-flight levels, with the same bodies and subject shape
 *            as the daemon's runs (its own prefix and stream, so the two
 *            never answer each other's requests)
 *   shaped   js_PublishMsgAsync of messages shaped like the daemon's: a
 *            real event block of the bench's data as payload, the daemon's
 *            headers (Cim-Batch too in the batch shape) and a unique
 *            Nats-Msg-Id, each message built as it is published, on a
 *            SendAsap connection to a stream with the daemon's settings
 */
#include "bench.h"
#include "proc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cid.h"
#include "event.h"
#include "ids.h"

#define SHAPED_STREAM "BENCH-SHAPED"

/* ---- one event block of the bench's data ----------------------------------------- */

int bench_block(uint8_t **out, size_t *len, char *cid_text, char *prev_text)
{
	cbuf b = CBUF_INIT;
	char ts[CIM_TIME_TEXT], eid[37], err[160];
	json_t *data = json_loads(event_data(), 0, NULL), *md = json_object();
	cim_cid prev, cid;
	int rc = -1;

	cim_cid_compute(&prev, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, (const uint8_t *)"x", 1);
	cim_uuid7(eid);
	cim_time_now(ts);
	cim_event_block ev = {
		.aggregate_type = "bench",
		.aggregate_id = "b-123",
		.version = 2,
		.event_type = "BenchEvent",
		.event_id = eid,
		.correlation_id = eid,
		.causation_id = eid,
		.timestamp = ts,
		.metadata = md,
		.data = data,
		.has_prev = true,
		.prev = prev,
	};
	if (data != NULL && cim_event_encode(&ev, &b, err, sizeof err) == 0) {
		cim_cid_compute(&cid, CIM_CODEC_DAG_CBOR, CIM_MH_BLAKE2B_256, b.p, b.len);
		cim_cid_to_text(&cid, cid_text);
		cim_cid_to_text(&prev, prev_text);
		*out = b.p;
		*len = b.len;
		rc = 0;
	} else {
		cbuf_free(&b);
	}
	json_decref(data);
	json_decref(md);
	return rc;
}

/* ---- the relay as a process -------------------------------------------------------- */

int relay_start(relay_proc *r, const char *bin, const char *url, int payload_bytes)
{
	char bytes[16], log[320];
	char *argv[] = {(char *)bin, "--url", (char *)url, "--prefix", RELAY_PREFIX,
			"--payload-bytes", bytes, "--seconds", "3600", NULL};
	int64_t end = now_ns() + 15 * (int64_t)1000000000;

	memset(r, 0, sizeof *r);
	r->pid = -1;
	if (bin == NULL || access(bin, X_OK) != 0) {
		fprintf(stderr, "bench: no relay program at %s\n", bin ? bin : "(none)");
		return -1;
	}
	snprintf(bytes, sizeof bytes, "%d", payload_bytes);
	snprintf(log, sizeof log, "%s/relay.log", C.P ? C.P->dir : "/tmp");
	snprintf(r->log, sizeof r->log, "%s", log);
	r->pid = proc_spawn(argv, r->log);
	if (r->pid <= 0)
		return -1;
	/* it says "ready" once it serves */
	while (now_ns() < end && !g_stop) {
		char line[256];
		FILE *f = fopen(r->log, "r");
		bool ready = false;

		while (f && fgets(line, sizeof line, f))
			ready |= strncmp(line, "ready", 5) == 0;
		if (f)
			fclose(f);
		if (ready)
			return 0;
		if (proc_wait_exit(r->pid, 0) != -2) {
			fprintf(stderr, "bench: the relay exited at start (log: %s)\n", r->log);
			r->pid = -1;
			return -1;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "bench: the relay did not start (log: %s)\n", r->log);
	relay_stop(r);
	return -1;
}

void relay_stop(relay_proc *r)
{
	if (r->pid > 0)
		proc_stop(r->pid, 10000, "bench-relay");
	r->pid = -1;
}

/* ---- the shaped async publish --------------------------------------------------- */

static bool make_shaped_stream(jsCtx *js)
{
	jsStreamConfig cfg;
	const char *subjects[] = {"shaped.>"};
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;

	jsStreamConfig_Init(&cfg);
	cfg.Name = SHAPED_STREAM;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Retention = js_LimitsPolicy;
	cfg.Discard = js_DiscardNew;
	cfg.Duplicates = 120 * 1000000000LL;
	cfg.AllowDirect = true;
	natsStatus s = js_AddStream(&si, js, &cfg, NULL, &je);
	jsStreamInfo_Destroy(si);
	return s == NATS_OK;
}

/* n messages shaped like the daemon's: one event each (batch 0), or in
 * batches of `batch` (Cim-Batch i/batch). */
void floor_shaped(rate *r, int batch, long n)
{
	natsConnection *nc = connect_nats(C.url, true);
	jsOptions o;
	jsPubOptions po;
	jsCtx *js = NULL;
	long errors = 0, sent = 0;
	uint8_t *block = NULL;
	size_t blen = 0;
	char cid[CIM_CID_TEXT_MAX], prev[CIM_CID_TEXT_MAX], eid[37], writer[64];
	char subj[128], mid[160], num[32], bnum[32];
	natsStatus s = NATS_OK;
	jsErrCode je = 0;

	memset(r, 0, sizeof *r);
	r->ran = true;
	jsOptions_Init(&o);
	o.PublishAsync.MaxPending = 65536; /* the daemon's */
	o.PublishAsync.ErrHandler = floor_count_err;
	o.PublishAsync.ErrHandlerClosure = &errors;
	o.PublishAsync.StallWait = 10000;
	if (nc == NULL || natsConnection_JetStream(&js, nc, &o) != NATS_OK ||
	    !make_shaped_stream(js) || bench_block(&block, &blen, cid, prev) != 0) {
		snprintf(r->note, sizeof r->note, "INVALID: cannot set up");
		goto out;
	}
	cim_uuid7(eid);
	snprintf(writer, sizeof writer, "bench:%d:%08lx", (int)getpid(), (unsigned long)time(NULL));
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	{
		pid_t np = C.P ? C.P->nats_pid : -1;
		double n0 = np > 0 ? cpu_s(np) : NAN, b0 = cpu_s(getpid());
		int64_t t0 = now_ns(), end = t0 + 120 * (int64_t)1000000000;

		for (; sent < n && !g_stop && now_ns() < end; sent++) {
			long agg = batch ? sent / batch : sent % 1000;
			natsMsg *m = NULL;

			snprintf(subj, sizeof subj, "shaped.bench.b-%ld.BenchEvent", agg);
			snprintf(num, sizeof num, "%ld", sent + 1);
			snprintf(mid, sizeof mid, "bench.b-%ld.%ld", agg, sent + 1);
			snprintf(bnum, sizeof bnum, "%ld/%d", batch ? sent % batch + 1 : 1, batch);
			s = natsMsg_Create(&m, subj, NULL, (const char *)block, (int)blen);
			if (s == NATS_OK &&
			    (natsMsgHeader_Set(m, "Cim-Cid", cid) != NATS_OK ||
			     natsMsgHeader_Set(m, "Cim-Version", num) != NATS_OK ||
			     natsMsgHeader_Set(m, "Cim-Event-Id", eid) != NATS_OK ||
			     natsMsgHeader_Set(m, "Cim-Correlation-Id", eid) != NATS_OK ||
			     natsMsgHeader_Set(m, "Cim-Causation-Id", eid) != NATS_OK ||
			     natsMsgHeader_Set(m, "Cim-Writer", writer) != NATS_OK ||
			     natsMsgHeader_Set(m, "Cim-Prev", prev) != NATS_OK ||
			     (batch && natsMsgHeader_Set(m, "Cim-Batch", bnum) != NATS_OK) ||
			     natsMsgHeader_Set(m, "Nats-Msg-Id", mid) != NATS_OK ||
			     natsMsgHeader_Set(m, "Nats-Expected-Stream", SHAPED_STREAM) != NATS_OK))
				s = NATS_ERR;
			if (s == NATS_OK)
				s = js_PublishMsgAsync(js, &m, &po);
			natsMsg_Destroy(m);
			if (s != NATS_OK && ++errors > 100)
				break;
		}
		s = floor_async_finish(js, r, t0, n0, b0);
	}
	r->requests = r->events = sent - errors;
	r->errors = errors;
	r->per_s = r->req_per_s = (double)r->events / r->seconds;
	r->p50 = r->p99 = NAN;
	r->valid = errors == 0 && s == NATS_OK && sent == n;
	if (!r->valid)
		snprintf(r->note, sizeof r->note, "INVALID: %ld errors, %ld of %ld sent (%s)",
			 errors, sent, n, natsStatus_GetText(s));
	js_DeleteStream(js, SHAPED_STREAM, NULL, &je);
out:
	free(block);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}
