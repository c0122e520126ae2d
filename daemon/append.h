/*
 * append.h: the write path's own types, shared by append.c (requests,
 * the pipeline, building, publishing, acks, commits, retries) and
 * resolve.c (what happens when storage does not say "stored" at once).
 * Nothing else uses them: to the rest of the daemon an aggregate with
 * appends in flight is one whose `busy` is set (daemon.h).
 *
 * Every field below marked "mu" is read and written with daemon.mu held.
 */
#ifndef CIM_DAEMON_APPEND_H
#define CIM_DAEMON_APPEND_H

#include "daemon.h"
#include "restore.h"

enum jev_state {
	JEV_PENDING = 0,
	JEV_OK,
	JEV_DUPLICATE,  /* JetStream already had this Nats-Msg-Id */
	JEV_REFUSED,    /* JetStream said no (a limit, say): not stored */
	JEV_NOT_STORED, /* never sent, or taken back */
	JEV_UNKNOWN,    /* no answer: may or may not be stored */
	JEV_FOREIGN,    /* resolving: the duplicate's message is not ours */
	JEV_BURNED,     /* resolving: the duplicate's message was removed */
};

struct jev {
	char event_id[CIM_EVENT_ID_MAX + 1];
	size_t event_id_len; /* it may hold U+0000 */
	cim_cid cid;
	uint64_t seq;
	uint8_t state;
	natsMsg *msg; /* kept to publish again when not known to be stored */
};

/* What running or launching a job came to. */
enum run {
	RUN_LAUNCHED, /* its messages are out */
	RUN_ENDED,    /* answered and ended */
	RUN_AWAY,     /* on a worker, which now holds the pipe's token */
	RUN_WAIT,     /* not now: it waits to be the oldest, or for the chain */
};

/* Times a job is published again under a new id generation (burned ids,
 * stored out of order) before it is answered "retry". */
#define MSGID_GENS 8

/* One append request, or one restore request (restore.c): the same job,
 * whose messages are built from the blocks given instead of from events. */
struct job {
	struct job *next;  /* mu: the aggregate's next job, in arrival order */
	struct pipe *pipe; /* its aggregate's line of jobs */
	struct daemon *d;
	natsMsg *req;
	struct agg *agg;
	cim_append_req ar;
	uint64_t base; /* version of the first event, once built */
	size_t n;
	size_t resolved; /* mu: acks in (or messages never sent) */
	struct jev *ev;
	size_t req_len; /* counted in d->job_bytes */
	bool idem_checked;
	bool launched;   /* mu: its messages are out: it is in flight */
	bool completing; /* mu: its outcome has been taken in hand */
	bool no_chain;   /* it waits to be the oldest: it will not be chained */
	unsigned gen;    /* Nats-Msg-Id generation, 0 for the plain id */
	unsigned regens; /* times published again under a new generation */
	char fail_msg[256];
	bool settle_only; /* no request: settles its aggregate (append_sweep) */
	enum op op;       /* OP_APPEND, OP_RESTORE, or OP_FORGET (forget.c: its
			     one event is CimForgotten) */
	bool forget_ready; /* a forget's steps before its event are done */
	bool enc;         /* its aggregate's type is encrypted (datakeys.c) */
	bool plain;       /* ... but the aggregate has no data key: its events
			     were stored plain before its type was listed */
	const cim_key *dek; /* the data key, pinned while the job is built */
	cim_restore_req rs; /* a restore's blocks, once decoded (rs.n > 0) */
	char type[CIM_TYPE_MAX + 1];
	char id[CIM_ID_MAX + 1];
};

/* An aggregate's jobs while it has any (agg->busy points here). The
 * oldest jobs are launched (published, waiting for acks), the rest wait
 * in arrival order. Only the oldest job is ever answered or committed;
 * the jobs launched behind it are "chained": built on the head it will
 * make. Whoever holds `running` launches; the others only ask again. */
struct pipe {
	struct daemon *d;
	struct agg *agg;
	struct job *first, *last; /* mu */
	struct job *next_run;     /* mu: the first job not launched; NULL: none */
	int launched;             /* mu: jobs launched and not ended */
	int incomplete;           /* mu: of those, the ones with acks missing */
	int refs;                 /* mu: threads about to use it unlocked */
	bool running;             /* mu: a thread launches (the token) */
	bool again;               /* mu: asked to look again meanwhile */
	bool stalled;  /* mu: a launched job went out in part or got an answer
			  other than "stored": launch nothing more until
			  its outcome is known */
	bool resolving;       /* mu: the oldest job was not simply stored: the
				 chain waits for its acks, then is resolved */
	bool resolve_started; /* mu: a thread took the resolution in hand */
	uint64_t tip_version; /* mu: the head after the last launched job */
	cim_cid tip_cid;
};

/* ---- append.c, for resolve.c ----------------------------------------------- */

/* Ends the oldest job of its pipe (answered, or never to be); frees it.
 * The pipe goes on (pipe_advance) unless the caller holds `running`. */
void job_done(struct job *job);
/* Answers an error and ends the job. */
void job_fail(struct job *job, cim_err code, const char *field, const char *fmt,
	      const char *arg);
/* Answers gone (its aggregate was forgotten) and ends the job. */
void job_gone(struct job *job);
/* job_gone when the job's aggregate is forgotten or being forgotten (read
 * under daemon.mu): true then. */
bool job_gone_if_forgotten(struct job *job);
/* Answers an error; the job goes on (the caller ends it). */
void job_reply_fail(struct job *job, cim_err code, const char *msg);
/* The oldest job, wholly stored in order: the head moves, the request is
 * answered, the job ends. */
void job_commit(struct job *job);
/* Stored in version order, after the head? */
bool job_in_order(const struct job *job);
size_t job_count_state(const struct job *job, enum jev_state st);
/* Puts a launched job back among the waiting ones, as if never sent. */
void job_unlaunch(struct job *job);
/* Completes committed jobs at the front, then launches what may be. */
void pipe_advance(struct pipe *p);
void pipe_unref(struct pipe *p);
/* A new job for req (append or restore), or NULL after answering: the
 * daemon is draining, or holds too much in flight, or memory ran out. */
struct job *job_new(struct daemon *d, natsMsg *req, enum op op, const char *type,
		    const char *id);
/* Frees a job that never joined a pipe (answered or not). */
void job_free(struct job *job);
/* Puts a new job (its n and ev set, or a restore not yet decoded) in
 * its aggregate's pipe and runs the pipe. */
void job_enqueue(struct job *job);
/* Answers a job whose events are stored from version base (their CIDs,
 * event_ids and sequences in job->ev). */
void reply_success(const struct job *job, uint64_t base);
/* With the pipe's token: runs what can run, then gives the token back. */
void pipe_go(struct pipe *p);
/* The event type of the job's event i (NUL-terminated). */
const char *job_event_type(const struct job *job, size_t i);

/* On a worker holding the pipe's token with job: runs job, then the pipe. */
void job_run_on(struct job *job);

/* ---- forget.c ------------------------------------------------------------------- */

/* The oldest job is a forget whose steps are not done: they run on a
 * worker, which holds the pipe's token (RUN_AWAY), or the job is answered
 * (RUN_ENDED). */
enum run forget_run(struct job *job);
/* A forget whose key and snapshot are removed failed after (its event
 * not stored): e's text says that the forget was begun and will be
 * finished, not that nothing was done. Other jobs: e as it is. */
void forget_fail_note(const struct job *job, cim_perr *e);
/* A forget's CimForgotten event is committed (d->mu not held): the reply,
 * and the record of the forget removed on a worker. */
json_t *forget_reply(struct job *job);
void forget_committed(struct job *job);

/* ---- resolve.c ------------------------------------------------------------------ */

/* The oldest job has all its acks, and not all say "stored" in order:
 * p->resolving is set and every launched job has all its acks. Finds out
 * what became of the chain, answers and ends what must end, commits what
 * may be committed, and puts the rest back to run again. */
void resolve_start(struct pipe *p);

/* ---- restore.c, for append.c -------------------------------------------------- */

/* On a worker, with the pipe's token: decodes and checks the oldest job's
 * restore request (restore.h); 0 with job->rs, n and ev set, or -1 after
 * answering. */
int restore_decode(struct job *job);
/* Does the restore continue a head at version whose CID is head? */
bool restore_continues(const struct job *job, uint64_t version, const cim_cid *head);
/* Answers a restore that does not continue the head (version, head). */
void restore_refuse(struct job *job, uint64_t version, const cim_cid *head);
/* On a worker with the pipe's token: the aggregate is at or past the
 * restore's first version; answers the job as its first time when its
 * blocks are what is stored at their versions, else
 * wrong_expected_version. Gives the token back. */
void restore_check_retry(struct daemon *d, void *arg);

#endif
