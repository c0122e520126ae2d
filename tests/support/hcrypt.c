/*
 * hcrypt.c: helpers of the encryption and forget tests (hcrypt.h).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypt.h"
#include "harness.h"
#include "hcrypt.h"
#include "keys.h"

char *hc_master_key(const char *name)
{
	char *path = h_strf("%s/%s", H.nats.dir, name);
	cim_key *k = cim_key_alloc(1);
	char err[300];

	cr_assert_not_null(k);
	cr_assert_eq(cim_key_generate(k), 0);
	cr_assert_eq(cim_keyfile_write(path, k->b, err, sizeof err), 0, "%s", err);
	cim_key_free(k, 1);
	return path;
}

pid_t hc_daemon(const char *key, const char *types, ...)
{
	const char *args[40];
	int n = 0;
	va_list ap;

	if (key != NULL) {
		args[n++] = "--master-key";
		args[n++] = key;
	}
	if (types != NULL) {
		args[n++] = "--encrypt-types";
		args[n++] = types;
	}
	va_start(ap, types);
	for (const char *a = va_arg(ap, const char *); a != NULL && n < 38;
	     a = va_arg(ap, const char *))
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	H.daemon = h_daemon_start_args(&H.nats, NULL, args);
	cr_assert_gt(H.daemon, 0, "the daemon did not start");
	return H.daemon;
}

uint64_t hc_subject_msgs(const char *stream, const char *subject)
{
	jsStreamInfo *si = NULL;
	jsOptions o;
	jsErrCode je = 0;
	uint64_t n = 0;

	jsOptions_Init(&o);
	o.Stream.Info.SubjectsFilter = subject;
	natsStatus s = js_GetStreamInfo(&si, H.js, stream, &o, &je);
	cr_assert_eq(s, NATS_OK, "stream info of %s: %s", stream, natsStatus_GetText(s));
	for (int i = 0; si->State.Subjects && i < si->State.Subjects->Count; i++)
		n += si->State.Subjects->List[i].Msgs;
	jsStreamInfo_Destroy(si);
	return n;
}

static bool holds(const void *p, size_t len, const void *needle, size_t n)
{
	return p != NULL && len >= n && memmem(p, len, needle, n) != NULL;
}

bool hc_stream_holds(const char *stream, const void *needle, size_t n)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	bool found = false;

	cr_assert_eq(js_GetStreamInfo(&si, H.js, stream, NULL, &je), NATS_OK, "%s", stream);
	uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	for (uint64_t seq = first; seq >= 1 && seq <= last && !found; seq++) {
		natsMsg *m = NULL;
		const char **keys = NULL;
		int nk = 0;

		if (js_GetMsg(&m, H.js, stream, seq, NULL, &je) != NATS_OK)
			continue;
		found = holds(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), needle, n);
		if (natsMsgHeader_Keys(m, &keys, &nk) == NATS_OK) {
			for (int i = 0; i < nk && !found; i++) {
				const char *v = NULL;
				found = holds(keys[i], strlen(keys[i]), needle, n) ||
					(natsMsgHeader_Get(m, keys[i], &v) == NATS_OK && v &&
					 holds(v, strlen(v), needle, n));
			}
			free((void *)keys);
		}
		natsMsg_Destroy(m);
	}
	return found;
}

bool hc_files_hold(const char *dir, const void *needle, size_t n, char *where, size_t wn)
{
	DIR *dd = opendir(dir);
	struct dirent *e;
	bool found = false;

	if (dd == NULL)
		return false;
	while (!found && (e = readdir(dd)) != NULL) {
		char path[1024];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			found = hc_files_hold(path, needle, n, where, wn);
		} else if (S_ISREG(st.st_mode)) {
			char *text = NULL;
			size_t len = 0;
			FILE *f = fopen(path, "rb");
			if (f == NULL)
				continue;
			text = malloc((size_t)st.st_size + 1);
			if (text != NULL)
				len = fread(text, 1, (size_t)st.st_size, f);
			fclose(f);
			found = holds(text, len, needle, n);
			free(text);
			if (found && where != NULL)
				snprintf(where, wn, "%s", path);
		}
	}
	closedir(dd);
	return found;
}

void hc_request(h_reply *r, const char *op, const char *type, const char *id,
		const char *body)
{
	char subj[512];

	if (id != NULL)
		snprintf(subj, sizeof subj, "%s.%s.%s.%s", H_PREFIX, op, type, id);
	else
		snprintf(subj, sizeof subj, "%s.%s.%s", H_PREFIX, op, type);
	h_request(r, subj, body, -1);
	cr_assert_eq(r->s, NATS_OK, "%s: %s", subj, natsStatus_GetText(r->s));
}
