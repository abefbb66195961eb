/*
 * vm-status.c - `status`: every named VM (or one), as text for people or
 * as one JSON document for scripts.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/daemon.h"
#include "common/kv.h"
#include "daemon/vm-internal.h"

static void json_str(struct hr_sbuf *sb, const char *s)
{
	hr_sbuf_add(sb, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			hr_sbuf_addf(sb, "\\%c", *c);
		else if (*c < 0x20 || *c >= 0x7f)
			hr_sbuf_addf(sb, "\\u%04x", *c);
		else
			hr_sbuf_add(sb, (const char *)c, 1);
	}
	hr_sbuf_add(sb, "\"", 1);
}

/* {"epoch": N, "interval_us": N, ...}: the fields of core/epoch.h in order. */
static void stats_json(struct hr_sbuf *sb, const struct hr_epoch_stats *st)
{
	const char *sep = "{";

#define HR_X_JSON(f)                                                                               \
	hr_sbuf_addf(sb, "%s\"" #f "\": %llu", sep, (unsigned long long)st->f);                    \
	sep = ", ";
	HR_EPOCH_STATS_FIELDS(HR_X_JSON)
#undef HR_X_JSON
	hr_sbuf_add(sb, "}", 1);
}

/* Liveness now: the worker's last report aged by the time since it came.
 * *in_state_ms_r / *hb_age_ms_r = UINT64_MAX when not known. */
static void liveness(const struct hr_dvm *vm, uint64_t now_ns, uint64_t *in_state_ms_r,
		     uint64_t *hb_age_ms_r)
{
	uint64_t since_ms =
	    vm->live_ns && now_ns > vm->live_ns ? (now_ns - vm->live_ns) / 1000000 : 0;
	int live = vm->live_ns && vm->pid > 0;
	*in_state_ms_r = live ? vm->state_age_ms + since_ms : UINT64_MAX;
	*hb_age_ms_r =
	    live && vm->peer_silent_ms != UINT64_MAX ? vm->peer_silent_ms + since_ms : UINT64_MAX;
}

static void json_ms(struct hr_sbuf *sb, const char *key, uint64_t ms)
{
	if (ms == UINT64_MAX)
		hr_sbuf_addf(sb, ", \"%s\": null", key);
	else
		hr_sbuf_addf(sb, ", \"%s\": %llu", key, (unsigned long long)ms);
}

/* "witness": null without one, else where it is, our standing (lease,
 * registered, denied, unreachable, unregistered), the lease left and the last answer's
 * age, as the worker last reported them (aged since). */
static void witness_json(struct hr_sbuf *sb, const struct hr_dvm *vm, uint64_t now_ns)
{
	if (!hr_dopts.witness) {
		hr_sbuf_add(sb, ", \"witness\": null", 17);
		return;
	}
	uint64_t since_ms =
	    vm->live_ns && now_ns > vm->live_ns ? (now_ns - vm->live_ns) / 1000000 : 0;
	int live = vm->live_ns && vm->pid > 0 && vm->witness[0];
	hr_sbuf_add(sb, ", \"witness\": {\"address\": ", 25);
	json_str(sb, hr_dopts.witness);
	hr_sbuf_add(sb, ", \"node\": ", 10);
	json_str(sb, hr_dopts.node ? hr_dopts.node : "");
	hr_sbuf_add(sb, ", \"peer_node\": ", 15);
	json_str(sb, vm->peer_node);
	hr_sbuf_add(sb, ", \"standing\": ", 14);
	json_str(sb, live ? vm->witness : "unknown");
	uint64_t left = live && vm->lease_left_ms > since_ms ? vm->lease_left_ms - since_ms : 0;
	hr_sbuf_addf(sb, ", \"lease_remaining_ms\": %llu", (unsigned long long)left);
	json_ms(sb, "last_contact_age_ms",
		live && vm->witness_contact_ms != UINT64_MAX ? vm->witness_contact_ms + since_ms
							     : UINT64_MAX);
	hr_sbuf_add(sb, "}", 1);
}

/* The console sink's trouble, as the worker last reported it: output it
 * could not write yet (held, never dropped) and why. */
static int console_trouble(const struct hr_dvm *vm)
{
	return vm->live_ns && vm->pid > 0 && (vm->console_error[0] || vm->console_held_bytes);
}

/* "console": {"sink", "error" (null: writing), "held_bytes", "retries",
 * "failing_since_s" (Unix seconds, null: not failing)}. */
static void console_json(struct hr_sbuf *sb, const struct hr_dvm *vm)
{
	int trouble = console_trouble(vm);
	const char *sink = trouble && vm->console[0] ? vm->console : vm->console_spec;

	hr_sbuf_addf(sb, ", \"console\": {\"sink\": ");
	if (sink)
		json_str(sb, sink);
	else
		hr_sbuf_add(sb, "null", 4);
	hr_sbuf_add(sb, ", \"error\": ", 11);
	if (trouble && vm->console_error[0])
		json_str(sb, vm->console_error);
	else
		hr_sbuf_add(sb, "null", 4);
	hr_sbuf_addf(sb, ", \"held_bytes\": %llu, \"retries\": %llu",
		     (unsigned long long)(trouble ? vm->console_held_bytes : 0),
		     (unsigned long long)(trouble ? vm->console_retries : 0));
	if (trouble && vm->console_failing_since_s)
		hr_sbuf_addf(sb, ", \"failing_since_s\": %llu}",
			     (unsigned long long)vm->console_failing_since_s);
	else
		hr_sbuf_add(sb, ", \"failing_since_s\": null}", 26);
}

static void console_text(struct hr_sbuf *sb, const struct hr_dvm *vm)
{
	/* a healthy tcp sink holds what is in flight: not worth a line */
	if (!console_trouble(vm) || (!vm->console_error[0] && vm->console_held_bytes < (1u << 20)))
		return;
	hr_sbuf_addf(sb, "  console %s:", vm->console[0] ? vm->console : "-");
	if (vm->console_error[0]) {
		time_t since = (time_t)vm->console_failing_since_s;
		time_t now = time(NULL);
		struct tm tm;
		char when[32] = "?";
		if (since && gmtime_r(&since, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		hr_sbuf_addf(sb, " error=\"%s\" failing_since=%s (%llds)", vm->console_error, when,
			     since && now > since ? (long long)(now - since) : 0LL);
	}
	hr_sbuf_addf(sb, " held_bytes=%llu retries=%llu (held output is written once it can be)\n",
		     (unsigned long long)vm->console_held_bytes,
		     (unsigned long long)vm->console_retries);
}

void hr_dvm_live_disks(struct hr_dvm *vm, const struct hr_kvline *kv)
{
	char key[32];
	unsigned n = 0;

	for (; n < HR_MAX_DISKS; n++) {
		snprintf(key, sizeof(key), "disk%u", n);
		const char *path = hr_kv_get(kv, key);
		if (!path)
			break;
		snprintf(vm->live_disk[n], sizeof(vm->live_disk[n]), "%s", path);
		snprintf(key, sizeof(key), "disk%u_bytes", n);
		if (hr_kv_getu(kv, key, &vm->live_disk_bytes[n]))
			vm->live_disk_bytes[n] = 0;
	}
	vm->nr_live_disks = n;
}

/* The VM's disks: as its worker last reported them, else (no report: the
 * worker ended) its definition here; sizes as reported, else now. */
static unsigned disks(const struct hr_dvm *vm, const char **path, uint64_t *bytes)
{
	if (vm->nr_live_disks) {
		for (unsigned i = 0; i < vm->nr_live_disks; i++) {
			path[i] = vm->live_disk[i];
			bytes[i] = vm->live_disk_bytes[i];
		}
		return vm->nr_live_disks;
	}
	for (unsigned i = 0; i < vm->nr_disks; i++) {
		struct stat st;
		path[i] = vm->disk[i].path;
		bytes[i] = stat(path[i], &st) == 0 ? (uint64_t)st.st_size : 0;
	}
	return vm->nr_disks;
}

/* "disks": [{"path", "bytes"}...], "backup_dropped_why": the last backup
 * dropped its copy because of its disk (null: not since one synced). */
static void disks_json(struct hr_sbuf *sb, const struct hr_dvm *vm)
{
	const char *path[HR_MAX_DISKS];
	uint64_t bytes[HR_MAX_DISKS];
	unsigned nr = disks(vm, path, bytes);

	hr_sbuf_add(sb, ", \"disks\": [", 12);
	for (unsigned i = 0; i < nr; i++) {
		hr_sbuf_add(sb, i ? ", {\"path\": " : "{\"path\": ", i ? 11 : 9);
		json_str(sb, path[i]);
		hr_sbuf_addf(sb, ", \"bytes\": %llu}", (unsigned long long)bytes[i]);
	}
	hr_sbuf_add(sb, "], \"backup_dropped_why\": ", 25);
	if (vm->dropped_why[0] && vm->pid > 0)
		json_str(sb, vm->dropped_why);
	else
		hr_sbuf_add(sb, "null", 4);
}

static void disks_text(struct hr_sbuf *sb, const struct hr_dvm *vm)
{
	const char *path[HR_MAX_DISKS];
	uint64_t bytes[HR_MAX_DISKS];
	unsigned nr = disks(vm, path, bytes);

	for (unsigned i = 0; i < nr; i++)
		hr_sbuf_addf(sb, "  disk%u %s bytes=%llu\n", i, path[i],
			     (unsigned long long)bytes[i]);
	if (vm->dropped_why[0] && vm->pid > 0)
		hr_sbuf_addf(sb, "  %s\n", vm->dropped_why);
}

static void status_json(struct hr_sbuf *sb, const struct hr_dvm *vm, uint64_t now_ns)
{
	uint64_t in_state_ms, hb_age_ms;
	hr_sbuf_add(sb, "{\"name\": ", 9);
	json_str(sb, vm->name);
	hr_sbuf_addf(sb, ", \"role\": \"%s\", \"state\": \"%s\", \"last_event\": ",
		     hr_dvm_role_name(vm), hr_dvm_state_name(vm));
	json_str(sb, vm->last_token);
	hr_sbuf_add(sb, ", \"peer\": ", 10);
	json_str(sb, vm->peer);
	liveness(vm, now_ns, &in_state_ms, &hb_age_ms);
	json_ms(sb, "in_state_ms", in_state_ms);
	json_ms(sb, "protected_since_ms",
		vm->state == HR_RS_PROTECTED || vm->state == HR_RS_BACKUP ? in_state_ms
									  : UINT64_MAX);
	json_ms(sb, "last_heartbeat_age_ms", hb_age_ms);
	hr_sbuf_addf(sb, ", \"output_held\": %s", vm->held ? "true" : "false");
	hr_sbuf_add(sb, ", \"output_held_why\": ", 21);
	if (vm->held && vm->held_why[0] && vm->pid > 0)
		json_str(sb, vm->held_why);
	else
		hr_sbuf_add(sb, "null", 4);
	json_ms(sb, "output_held_ms", vm->held && vm->held_why[0] ? vm->held_ms : UINT64_MAX);
	json_ms(sb, "next_reprotect_ms",
		vm->next_reprotect_ms ? vm->next_reprotect_ms : UINT64_MAX);
	hr_sbuf_add(sb, ", \"migrating_to\": ", 17);
	if (vm->migrating)
		json_str(sb, vm->mig_to);
	else
		hr_sbuf_add(sb, "null", 4);
	witness_json(sb, vm, now_ns);
	console_json(sb, vm);
	disks_json(sb, vm);
	hr_sbuf_addf(sb, ", \"pid\": %d, \"uptime_s\": %llu, \"nr_epochs\": %llu", (int)vm->pid,
		     (unsigned long long)((now_ns - vm->started_ns) / 1000000000),
		     (unsigned long long)vm->nr_epochs);
	if (vm->side == HR_SIDE_PRIMARY && (vm->kernel || vm->attach))
		hr_sbuf_addf(
		    sb,
		    ", \"epoch_us\": %llu, \"min_epoch_us\": %llu, \"memory_bytes\": %llu, "
		    "\"vcpus\": %u",
		    (unsigned long long)vm->epoch_us, (unsigned long long)vm->min_epoch_us,
		    (unsigned long long)vm->mem_bytes, vm->nr_vcpus);
	hr_sbuf_add(sb, ", \"last_epoch\": ", 16);
	if (vm->have_stats)
		stats_json(sb, &vm->last);
	else
		hr_sbuf_add(sb, "null", 4);
	hr_sbuf_add(sb, ", \"error\": ", 11);
	if (vm->error[0])
		json_str(sb, vm->error);
	else
		hr_sbuf_add(sb, "null", 4);
	hr_sbuf_add(sb, "}", 1);
}

static void status_text(struct hr_sbuf *sb, const struct hr_dvm *vm, uint64_t now_ns)
{
	hr_sbuf_addf(
	    sb, "%s role=%s state=%s last_event=%s peer=%s pid=%d uptime_s=%llu nr_epochs=%llu\n",
	    vm->name, hr_dvm_role_name(vm), hr_dvm_state_name(vm),
	    vm->last_token[0] ? vm->last_token : "-", vm->peer[0] ? vm->peer : "-", (int)vm->pid,
	    (unsigned long long)((now_ns - vm->started_ns) / 1000000000),
	    (unsigned long long)vm->nr_epochs);
	uint64_t in_state_ms, hb_age_ms;
	liveness(vm, now_ns, &in_state_ms, &hb_age_ms);
	if (in_state_ms != UINT64_MAX)
		hr_sbuf_addf(sb, "  in_state_ms=%llu", (unsigned long long)in_state_ms);
	if (hb_age_ms != UINT64_MAX)
		hr_sbuf_addf(sb, " last_heartbeat_age_ms=%llu", (unsigned long long)hb_age_ms);
	if (vm->held)
		hr_sbuf_add(sb, " output=held", 12);
	if (vm->migrating)
		hr_sbuf_addf(sb, " migrating_to=%s", vm->mig_to);
	if (vm->witness[0] && vm->pid > 0)
		hr_sbuf_addf(sb, " witness=%s lease_left_ms=%llu", vm->witness,
			     (unsigned long long)vm->lease_left_ms);
	if (in_state_ms != UINT64_MAX || vm->held || vm->migrating)
		hr_sbuf_add(sb, "\n", 1);
	if (vm->have_stats) {
		char line[256];
		hr_epoch_stats_format(&vm->last, line, sizeof(line));
		hr_sbuf_addf(sb, "  last %s\n", line);
	}
	if (vm->held && vm->held_why[0] && vm->pid > 0)
		hr_sbuf_addf(sb, "  output held for %llu ms: %s\n", (unsigned long long)vm->held_ms,
			     vm->held_why);
	if (vm->next_reprotect_ms && vm->pid > 0)
		hr_sbuf_addf(sb, "  next re-protection attempt in %llu ms\n",
			     (unsigned long long)vm->next_reprotect_ms);
	console_text(sb, vm);
	disks_text(sb, vm);
	if (vm->error[0])
		hr_sbuf_addf(sb, "  error: %s\n", vm->error);
}

void hr_vms_cmd_status(struct hr_ctl_conn *cc, const char *name, int json)
{
	struct hr_sbuf sb = {0};
	uint64_t now_ns = hr_now_ns();
	unsigned n = 0;

	if (name && !hr_dvm_find(name)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "no VM named %s here", name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	if (json)
		hr_sbuf_addf(&sb, "{\"daemon\": {\"pid\": %d, \"listen\": ", (int)getpid());
	if (json) {
		json_str(&sb, hr_dopts.listen);
		hr_sbuf_add(&sb, ", \"transport\": ", 15);
		json_str(&sb, hr_transport_name());
		hr_sbuf_addf(&sb, ", \"workers\": %u}, \"vms\": [", hr_vms_nr_workers());
	} else if (hr_dopts.insecure) {
		hr_sbuf_addf(&sb, "INSECURE: peer links are plain TCP (--insecure), neither "
				  "authenticated nor encrypted\n");
	}
	for (struct hr_dvm *vm = hr_dvms; vm; vm = vm->next) {
		if (!vm->name[0] || (name && strcmp(name, vm->name)))
			continue;
		if (json) {
			if (n)
				hr_sbuf_add(&sb, ", ", 2);
			status_json(&sb, vm, now_ns);
		} else {
			status_text(&sb, vm, now_ns);
		}
		n++;
	}
	if (json)
		hr_sbuf_add(&sb, "]}\n", 3);
	else if (!n)
		hr_sbuf_add(&sb, "no VMs\n", 7);
	if (sb.oom)
		hr_ctl_reply(cc, NULL, "out of memory");
	else
		hr_ctl_reply(cc, sb.p, NULL);
	hr_sbuf_free(&sb);
}
