/*
 * drill-status.c - the primary's epoch figures for the drill's report:
 * sampled from `status --json` while the drill runs (~every 50 ms), then
 * replaced by every epoch the primary's worker logged (STATE-DIR/VM.epochs).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/ctl.h"
#include "common/kv.h"
#include "ha/drill/drill.h"

int drill_json_u64(const char *s, const char *key, uint64_t *v)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(s, pat);
	if (!p || !(p[strlen(pat)] >= '0' && p[strlen(pat)] <= '9'))
		return -1;
	*v = strtoull(p + strlen(pat), NULL, 10);
	return 0;
}

void drill_json_str(const char *s, const char *key, char *out, size_t size)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	const char *p = strstr(s, pat);
	out[0] = '\0';
	if (!p)
		return;
	p += strlen(pat);
	size_t n = strcspn(p, "\"");
	snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
}

int drill_ctl_query(const char *control, const char *cmd, char *buf, size_t size)
{
	struct hr_sbuf req = {0};
	char *mem = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&mem, &len);
	int rc;

	if (!f)
		return -1;
	if (!strcmp(cmd, "status")) {
		hr_kv_add(&req, "vm", DRILL_VM_NAME);
		hr_kv_add(&req, "json", "1");
	}
	/* errors go to stderr: keep them out of the report */
	int saved = dup(2), nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (nul >= 0)
		dup2(nul, 2);
	rc = hr_ctl_request(control, cmd, &req, f);
	if (saved >= 0) {
		dup2(saved, 2);
		close(saved);
	}
	if (nul >= 0)
		close(nul);
	fclose(f);
	hr_sbuf_free(&req);
	snprintf(buf, size, "%s", mem ? mem : "");
	free(mem);
	return rc == 0 ? 0 : -1;
}

/* Append s to d->samples.  0 or -ENOMEM. */
static int push_sample(struct drill *d, const struct hr_epoch_stats *s)
{
	if (d->nr_samples == d->cap_samples) {
		unsigned cap = d->cap_samples ? d->cap_samples * 2 : 256;
		struct hr_epoch_stats *ns = realloc(d->samples, cap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		d->samples = ns;
		d->cap_samples = cap;
	}
	d->samples[d->nr_samples++] = *s;
	return 0;
}

void drill_add_sample(struct drill *d, const char *js)
{
	struct hr_epoch_stats s;
	int bad = 0;
	const char *le = strstr(js, "\"last_epoch\": {");
	if (!le)
		return;
#define HR_X_JSON(f) bad |= drill_json_u64(le, #f, &s.f);
	HR_EPOCH_STATS_FIELDS(HR_X_JSON)
#undef HR_X_JSON
	if (bad)
		return;
	if (s.epoch == 0)
		return; /* the full sync is not an epoch like the others */
	if (d->nr_samples && d->samples[d->nr_samples - 1].epoch == s.epoch)
		return;
	(void)push_sample(d, &s); /* a sample short: the report has the others */
}

static int load_epoch_file(struct drill *d, FILE *f, uint64_t acked);

/* Every epoch the primary's worker logged (STATE-DIR/VM.epochs) replaces the
 * sampled status figures: the report covers all epochs. */
void drill_load_epoch_log(struct drill *d)
{
	char path[512];
	pthread_mutex_lock(&d->w.lock);
	uint64_t acked = d->w.acked; /* on the sessions the tap parsed */
	pthread_mutex_unlock(&d->w.lock);
	int loaded = 0;
	/* the log is bounded: a rotated part (VM.epochs.1) comes first */
	for (int part = 1; part >= 0; part--) {
		snprintf(path, sizeof(path), "%s/state-a/%s.epochs%s", d->dir, DRILL_VM_NAME,
			 part ? ".1" : "");
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (!loaded++)
			d->nr_samples = 0;
		if (load_epoch_file(d, f, acked) < 0) {
			fclose(f);
			break;
		}
		fclose(f);
	}
	if (loaded)
		d->samples_logged = 1;
}

static int load_epoch_file(struct drill *d, FILE *f, uint64_t acked)
{
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		struct hr_epoch_stats s;
		/* protection by the first backup only: after a re-protection
		 * (backup death, failback) the same log goes on with the new
		 * backup's full sync and the epochs that follow */
		if (hr_epoch_stats_parse(line, &s) < 0 || s.epoch == 0 || s.epoch >= acked)
			continue;
		if (push_sample(d, &s) < 0)
			return -1;
	}
	return 0;
}
