/*
 * projector.c: a durable projection as a process of its own, for the
 * crash test of tests/integration/test_projection.c.
 *
 *     projector <nats-url> <name> <pattern> <output-file> [delay-us]
 *
 * Runs the projection until it has been idle for 2 s, writing one line per
 * handled event, "<type> <id> <version> <seq>", to the output file with
 * one O_APPEND write each (so a SIGKILL leaves only whole lines, each one
 * for an event that was handled). delay-us slows each event down, so the
 * test can kill it in the middle. Exit status: 0, or 1 with a sentence on
 * stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cim/events.h"

#define IDLE_MS 2000

struct out {
	int fd;
	long delay_us;
};

static int handle(void *ctx, const cim_event *e)
{
	struct out *o = ctx;
	char line[512];
	int n = snprintf(line, sizeof(line), "%s %s %llu %llu\n",
			 e->aggregate_type, e->aggregate_id,
			 (unsigned long long)e->version,
			 (unsigned long long)e->seq);

	ssize_t w;

	if (n <= 0 || (size_t)n >= sizeof(line)) {
		/* errno says nothing about snprintf cutting a line short */
		fprintf(stderr, "projector: a line for %s/%s does not fit in "
				"%zu bytes\n",
			e->aggregate_type, e->aggregate_id, sizeof(line));
		return 1;
	}
	if ((w = write(o->fd, line, (size_t)n)) != n) {
		if (w < 0)
			fprintf(stderr, "projector: write: %s\n",
				strerror(errno));
		else
			fprintf(stderr, "projector: short write (%zd of %d "
					"bytes)\n",
				w, n);
		return 1;
	}
	if (o->delay_us > 0) {
		struct timespec ts = {o->delay_us / 1000000,
				      (o->delay_us % 1000000) * 1000};

		nanosleep(&ts, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	cim_projection_options po = {0};
	cim_projection *p = NULL;
	cim_client *c = NULL;
	cim_error err;
	struct out o = {-1, 0};
	cim_err rc;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: projector <nats-url> <name> <pattern> "
				"<output-file> [delay-us]\n");
		return 2;
	}
	if (argc == 6)
		o.delay_us = strtol(argv[5], NULL, 10);
	o.fd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (o.fd < 0) {
		fprintf(stderr, "projector: %s: %s\n", argv[4], strerror(errno));
		return 1;
	}
	if ((rc = cim_client_connect(&c, argv[1], NULL, &err)) != CIM_ERR_OK) {
		fprintf(stderr, "projector: %s\n", err.message);
		return 1;
	}
	po.name = argv[2];
	po.pattern = argv[3];
	if ((rc = cim_projection_open(c, &po, &p, &err)) != CIM_ERR_OK) {
		fprintf(stderr, "projector: open: %s\n", err.message);
		cim_client_destroy(c);
		return 1;
	}
	fprintf(stderr, "projector: starting after seq %llu\n",
		(unsigned long long)cim_projection_position(p));
	rc = cim_projection_run(p, handle, &o, IDLE_MS, &err);
	if (rc != CIM_ERR_OK)
		fprintf(stderr, "projector: run: %s: %s\n", cim_err_name(rc),
			err.message);
	else
		fprintf(stderr, "projector: idle at seq %llu\n",
			(unsigned long long)cim_projection_position(p));
	cim_projection_close(p);
	cim_client_destroy(c);
	close(o.fd);
	return rc == CIM_ERR_OK ? 0 : 1;
}
