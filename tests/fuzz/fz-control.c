/*
 * fz-control.c - fuzz target: the control-line parser, without a daemon.
 *
 * Input: one request line as hareplicated's control socket reads it (no
 * newline; longer than HR_KV_MAX_LINE is refused before parsing, as
 * control.c's read_cb does).  It goes through hr_kv_parse and then what
 * control.c's dispatch and the start command read from it: v=, cmd=, vm=,
 * json=, the strict number parsers on memory_bytes= vcpus= epoch_us=.  A
 * line that parses is encoded again with hr_kv_add and must parse to the
 * same pairs.  The same bytes also go through the parser of the worker's
 * epoch lines (hr_epoch_stats_parse), which the drill reads back.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/epoch.h"
#include "common/kv.h"
#include "fuzz.h"

static void use_request(const struct hr_kvline *l)
{
	static const char *const keys[] = {"v",	   "cmd",    "vm",	"json",	  "backend",
					   "peer", "kernel", "console", "append", "node"};
	uint64_t v;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *s = hr_kv_get(l, keys[i]);
		if (s)
			(void)strlen(s);
	}
	hr_kv_getu(l, "memory_bytes", &v);
	if (hr_kv_get(l, "memory_bytes"))
		hr_parse_size(hr_kv_get(l, "memory_bytes"), &v);
	if (hr_kv_get(l, "vcpus"))
		hr_parse_count(hr_kv_get(l, "vcpus"), 1, 64, &v);
	if (hr_kv_get(l, "epoch_us"))
		hr_parse_duration_us(hr_kv_get(l, "epoch_us"), &v);
}

/* Encode the pairs again; they must parse to the same pairs. */
static void round_trip(const struct hr_kvline *l)
{
	struct hr_sbuf sb = {0};
	struct hr_kvline back;

	for (unsigned i = 0; i < l->nr; i++)
		hr_kv_add(&sb, l->kv[i].key, l->kv[i].val);
	if (sb.oom || !sb.p) {
		hr_sbuf_free(&sb);
		return;
	}
	if (hr_kv_parse(&back, sb.p, sb.len) == 0) {
		if (back.nr != l->nr)
			__builtin_trap();
		for (unsigned i = 0; i < l->nr; i++)
			if (strcmp(back.kv[i].key, l->kv[i].key) ||
			    strcmp(back.kv[i].val, l->kv[i].val))
				__builtin_trap();
		hr_kv_free(&back);
	} else if (sb.len <= HR_KV_MAX_LINE) {
		/* an empty key or value may not survive; anything else must */
		for (unsigned i = 0; i < l->nr; i++)
			if (!*l->kv[i].key)
				goto out;
		__builtin_trap();
	}
out:
	hr_sbuf_free(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hr_kvline l;
	struct hr_epoch_stats st;
	char *s;

	if (size > HR_KV_MAX_LINE)
		return 0;
	if (hr_kv_parse(&l, (const char *)data, size) == 0) {
		use_request(&l);
		round_trip(&l);
		hr_kv_free(&l);
	}
	if ((s = malloc(size + 1))) {
		memcpy(s, data, size);
		s[size] = 0;
		hr_epoch_stats_parse(s, &st);
		free(s);
	}
	return 0;
}

/* One request line as the CLI builds it (src/cli/ctl.c, cmd-*.c). */
static int seed_line(const char *dir, const char *name, const char *cmd, const char *const *kv)
{
	struct hr_sbuf sb = {0};
	int rc;

	hr_kv_add(&sb, "v", "1");
	hr_kv_add(&sb, "cmd", cmd);
	for (; kv && kv[0]; kv += 2)
		hr_kv_add(&sb, kv[0], kv[1]);
	rc = sb.oom ? -12 : fz_seed(dir, name, sb.p, sb.len);
	hr_sbuf_free(&sb);
	return rc;
}

int fz_make_seeds(const char *dir)
{
	static const char *const start[] = {"vm",
					    "web-1",
					    "backend",
					    "kvm",
					    "peer",
					    "[fd00::2]:7788",
					    "kernel",
					    "/var/lib/vm/bzImage with space%",
					    "memory_bytes",
					    "268435456",
					    "vcpus",
					    "2",
					    "epoch_us",
					    "25000",
					    "console",
					    "file:/var/log/web-1.console",
					    NULL};
	static const char *const status[] = {"vm", "web-1", "json", "1", NULL};
	static const char *const vm[] = {"vm", "web-1", NULL};
	struct hr_epoch_stats st = {.epoch = 12, .pause_us = 840, .ack_us = 2100};
	char line[512];
	int rc;

	rc = seed_line(dir, "ping", "ping", NULL);
	rc = rc ?: seed_line(dir, "start", "start", start);
	rc = rc ?: seed_line(dir, "status", "status", status);
	rc = rc ?: seed_line(dir, "stop", "stop", vm);
	rc = rc ?: seed_line(dir, "failover", "failover", vm);
	int n = hr_epoch_stats_format(&st, line, sizeof(line));
	rc = rc ?: fz_seed(dir, "epoch-stats", line, (size_t)n);
	return rc;
}
