/*
 * vm-migrate.c - `migrate`: move a running VM to another host's daemon.
 *
 * The worker does the work (core/engine-migrate.c): told `req=migrate
 * to=HOST:PORT` on its status channel, it drops its backup (if any),
 * connects to the destination daemon (TLS, the preamble: the destination
 * builds the VM as a backup would, through vm-accept.c), runs the live
 * phase and one epoch, then hands over.  The request waits here: every
 * second a `progress` body line (the worker's liveness report), at the end
 * a `report` line and `ok` (the destination runs the VM; the worker here
 * ended, the VM is forgotten) or `error:` (the VM runs on here).  The
 * report is also written to STATE-DIR/VM.migration (JSON).  A control
 * connection that goes away (Ctrl-C of the CLI) cancels the migration, as
 * `cmd=migrate vm=NAME cancel=1` does.
 *
 * A protected VM: its backup follows.  The backup is told the VM stops
 * when the live phase starts (it discards its copy, never promotes); the
 * preamble names the backup's host, and after the hand-off the destination
 * asks it for a new backup (worker.c, migrated_backup) - or this host when
 * the destination is the backup's host.  If the migration fails the VM
 * runs on here and re-protects itself with its old backup host, as after
 * the loss of a backup (its output held until then).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "common/kv.h"
#include "daemon/vm-internal.h"
#include "ha/token.h"

static void tell_worker(struct hr_dvm *vm, struct hr_sbuf *sb)
{
	hr_sbuf_add(sb, "\n", 1);
	if (vm->bev && !sb->oom)
		bufferevent_write(vm->bev, sb->p, sb->len);
}

static void cancel(struct hr_dvm *vm, const char *why)
{
	struct hr_sbuf sb = {0};
	log_info(vm->name, "migration to %s: cancel (%s)", vm->mig_to, why);
	hr_kv_add(&sb, "req", "migrate-cancel");
	tell_worker(vm, &sb);
	hr_sbuf_free(&sb);
}

void hr_vms_cmd_migrate(struct hr_ctl_conn *cc, const struct hr_kvline *req)
{
	const char *name = hr_kv_get(req, "vm"), *to = hr_kv_get(req, "to");
	struct hr_dvm *vm = name && hr_vm_name_ok(name) ? hr_dvm_find(name) : NULL;
	char host[128], port[16], addr[150], msg[600];
	uint64_t max_bw = 0;

	if (!name || !hr_vm_name_ok(name)) {
		hr_ctl_reply(cc, NULL, "vm= missing or invalid");
		return;
	}
	if (!vm || !hr_dvm_alive(vm)) {
		snprintf(msg, sizeof(msg), "no VM named %s runs here", name);
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	if (hr_kv_get(req, "cancel")) {
		if (!vm->migrating) {
			snprintf(msg, sizeof(msg), "no migration of %s is in progress", name);
			hr_ctl_reply(cc, NULL, msg);
			return;
		}
		cancel(vm, "asked");
		snprintf(msg, sizeof(msg),
			 "cancel of the migration of %s to %s requested: it runs on here unless "
			 "the hand-off was under way\n",
			 name, vm->mig_to);
		hr_ctl_reply(cc, msg, NULL);
		return;
	}
	if (hr_kv_get(req, "end_live")) {
		if (!vm->migrating) {
			snprintf(msg, sizeof(msg), "no migration of %s is in progress", name);
			hr_ctl_reply(cc, NULL, msg);
			return;
		}
		struct hr_sbuf sb = {0};
		hr_kv_add(&sb, "req", "live-end");
		tell_worker(vm, &sb);
		hr_sbuf_free(&sb);
		snprintf(msg, sizeof(msg),
			 "end of the live phase of %s's migration to %s requested: the hand-off "
			 "follows within a round (1 s)\n",
			 name, vm->mig_to);
		hr_ctl_reply(cc, msg, NULL);
		return;
	}
	if (!to ||
	    hr_addr_norm(to, addr, sizeof(addr), host, sizeof(host), port, sizeof(port)) < 0) {
		hr_ctl_reply(cc, NULL, "to= missing or invalid (HOST[:PORT], [V6ADDR]:PORT)");
		return;
	}
	if (hr_kv_get(req, "max_bandwidth") && hr_kv_getu(req, "max_bandwidth", &max_bw) < 0) {
		hr_ctl_reply(cc, NULL, "bad max_bandwidth (bytes per second)");
		return;
	}
	/* ha/accept.c decides; the destination's name is looked up (DNS) only
	 * once all else allows the migration */
	struct hr_ha_migrate_ask ask = {.request_waiting = vm->waiter != NULL,
					.witness = hr_dopts.witness != NULL};
	hr_dvm_evidence(vm, &ask.vm);
	enum hr_ha_migrate_verdict mv = hr_ha_may_migrate(&ask, NULL);
	if (mv == HR_HA_MIGRATE && (ask.to_self = hr_addr_is_self(host, port)))
		mv = hr_ha_may_migrate(&ask, NULL);
	msg[0] = '\0';
	switch (mv) {
	case HR_HA_MIGRATE:
		break;
	case HR_HA_MIGRATE_ALREADY:
		snprintf(msg, sizeof(msg), "%s is already migrating (to %s)", name, vm->mig_to);
		break;
	case HR_HA_MIGRATE_BUSY:
		snprintf(msg, sizeof(msg), "another request for %s is in progress", name);
		break;
	case HR_HA_MIGRATE_NOT_PRIMARY:
		snprintf(msg, sizeof(msg),
			 "%s does not run here as a primary (%s, %s); migrate it from the host "
			 "that runs it",
			 name, hr_dvm_role_name(vm), hr_dvm_state_name(vm));
		break;
	case HR_HA_MIGRATE_HELD: /* its backup is silent or lost */
		snprintf(msg, sizeof(msg), "%s: %s", name, hr_strerror(-HR_EHELD));
		break;
	case HR_HA_MIGRATE_WITNESS:
		snprintf(msg, sizeof(msg),
			 "migration with a witness (--witness) is not supported yet");
		break;
	default: /* HR_HA_MIGRATE_SELF */
		snprintf(msg, sizeof(msg), "%s is this host: a VM cannot migrate to itself", addr);
		break;
	}
	if (msg[0]) {
		hr_ctl_reply(cc, NULL, msg);
		return;
	}
	struct hr_sbuf sb = {0};
	hr_kv_add(&sb, "req", "migrate");
	hr_kv_add(&sb, "to", addr);
	if (max_bw)
		hr_kv_addu(&sb, "max_bandwidth", max_bw);
	if (hr_kv_get(req, "extend_live"))
		hr_kv_add(&sb, "extend_live", "1");
	uint64_t hold_ms = 0; /* tests only: hr_engine_migrate's test_hold_ms */
	if (!hr_kv_getu(req, "test_hold_ms", &hold_ms) && hold_ms <= 60000)
		hr_kv_addu(&sb, "test_hold_ms", hold_ms);
	tell_worker(vm, &sb);
	hr_sbuf_free(&sb);
	vm->migrating = 1;
	vm->migrated = 0;
	vm->mig_started_ns = hr_now_ns();
	snprintf(vm->mig_to, sizeof(vm->mig_to), "%s", addr);
	log_info(vm->name, "migration to %s requested (%s, %s)", addr, hr_dvm_role_name(vm),
		 hr_dvm_state_name(vm));
	hr_dvm_wait(vm, cc, W_MIGRATE);
}

/* The control connection of a waiting migration went away (Ctrl-C). */
void hr_dvm_migrate_ctl_gone(struct hr_dvm *vm)
{
	if (vm->migrating)
		cancel(vm, "the migrate command went away");
}

void hr_dvm_migrate_progress(struct hr_dvm *vm, const struct hr_kvline *kv)
{
	struct hr_sbuf sb = {0};
	const char *phase = hr_kv_get(kv, "mig_phase");
	uint64_t bytes = 0, ms = 0;

	if (!phase || !vm->migrating || vm->wait != W_MIGRATE || !vm->waiter)
		return;
	hr_kv_getu(kv, "mig_bytes", &bytes);
	hr_kv_getu(kv, "mig_elapsed_ms", &ms);
	hr_kv_add(&sb, "progress", "1");
	/* round: a live round just ended; tick: the per-second report */
	hr_kv_add(&sb, "kind", strcmp(hr_kv_get(kv, "event"), "round") ? "tick" : "round");
	hr_kv_add(&sb, "phase", phase);
	hr_kv_addu(&sb, "bytes", bytes);
	hr_kv_addu(&sb, "elapsed_ms", ms);
	hr_kv_addu(&sb, "memory_bytes", vm->mem_bytes);
	/* the live phase's last round, when the worker has one */
	static const char *const round_keys[][2] = {
	    {"mig_round", "round"},
	    {"mig_ns_sent", "never_sent_sent"},
	    {"mig_dirty_sent", "dirty_sent"},
	    {"mig_zero", "zero_skipped"},
	    {"mig_ns_left", "never_sent_left"},
	    {"mig_dirty_rate", "dirty_rate"},
	};
	for (unsigned i = 0; i < sizeof(round_keys) / sizeof(round_keys[0]); i++) {
		uint64_t v;
		if (!hr_kv_getu(kv, round_keys[i][0], &v))
			hr_kv_addu(&sb, round_keys[i][1], v);
	}
	if (!sb.oom)
		hr_ctl_progress(vm->waiter, sb.p);
	hr_sbuf_free(&sb);
}

/* STATE-DIR/VM.migration: the last migration's report (JSON). */
static void write_report(struct hr_dvm *vm, const struct hr_kvline *kv, int ok)
{
	char path[4096], tmp[4200];
	const char *err = hr_kv_get(kv, "error");
	uint64_t v[7] = {0};
	static const char *const keys[7] = {"total_ms", "downtime_us", "live_bytes", "epoch_bytes",
					    "epochs",	"final_pages", "in_doubt"};

	for (int i = 0; i < 7; i++)
		hr_kv_getu(kv, keys[i], &v[i]);
	snprintf(path, sizeof(path), "%s/%s.migration", hr_dopts.state_dir, vm->name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = NULL;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0 && !(f = fdopen(fd, "w")))
		close(fd);
	if (!f) {
		log_warnx(vm->name, "cannot write %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f,
		"{\"vm\": \"%s\", \"to\": \"%s\", \"result\": \"%s\", \"total_ms\": %llu, "
		"\"downtime_ms\": %.3f, \"bytes\": %llu, \"live_bytes\": %llu, "
		"\"epoch_bytes\": %llu, \"epochs\": %llu, \"final_pages\": %llu, "
		"\"in_doubt\": %s, ",
		vm->name, vm->mig_to, ok ? "ok" : "failed",
		(unsigned long long)(ok ? v[0] : (hr_now_ns() - vm->mig_started_ns) / 1000000),
		v[1] / 1000.0, (unsigned long long)(v[2] + v[3]), (unsigned long long)v[2],
		(unsigned long long)v[3], (unsigned long long)v[4], (unsigned long long)v[5],
		v[6] ? "true" : "false");
	/* the live phase: rounds, pages of each from the never-sent and the
	 * dirty set (the first 24), the guest's dirty rate in the last one */
	uint64_t rounds = 0, rate = 0;
	hr_kv_getu(kv, "rounds", &rounds);
	hr_kv_getu(kv, "dirty_rate", &rate);
	fprintf(f, "\"rounds\": %llu, \"dirty_rate\": %llu, \"round_pages\": [",
		(unsigned long long)rounds, (unsigned long long)rate);
	const char *rp = hr_kv_get(kv, "round_pages");
	for (int first = 1; rp && *rp; first = 0) {
		unsigned long long ns = 0, dp = 0;
		if (sscanf(rp, "%llu+%llu", &ns, &dp) != 2)
			break;
		fprintf(f, "%s{\"never_sent\": %llu, \"dirty\": %llu}", first ? "" : ", ", ns, dp);
		rp = strchr(rp, ',');
		if (rp)
			rp++;
	}
	fputs("], \"error\": ", f);
	if (err) {
		fputc('"', f);
		for (const char *p = err; *p; p++)
			fprintf(f,
				*p == '"' || *p == '\\'	   ? "\\%c"
				: (unsigned char)*p < 0x20 ? "?"
							   : "%c",
				*p);
		fputs("\"}\n", f);
	} else {
		fputs("null}\n", f);
	}
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		log_warnx(vm->name, "cannot write %s: %s", path, strerror(errno));
}

/* The worker's `event=migration` line. */
void hr_dvm_migration_event(struct hr_dvm *vm, const struct hr_kvline *kv)
{
	const char *result = hr_kv_get(kv, "result"), *err = hr_kv_get(kv, "error");
	int ok = result && !strcmp(result, "ok");
	struct hr_sbuf sb = {0};
	char msg[800];

	write_report(vm, kv, ok);
	vm->migrating = 0;
	hr_kv_add(&sb, "report", "1");
	hr_kv_add(&sb, "to", vm->mig_to);
	for (unsigned i = 0; i < kv->nr; i++)
		if (strcmp(kv->kv[i].key, "event"))
			hr_kv_add(&sb, kv->kv[i].key, kv->kv[i].val);
	snprintf(vm->mig_report, sizeof(vm->mig_report), "%s", sb.oom ? "" : sb.p);
	hr_sbuf_free(&sb);
	const char *why;
	enum hr_ha_migrated_verdict v = hr_ha_migrated(
	    ok, hr_kv_get(kv, "in_doubt") && strcmp(hr_kv_get(kv, "in_doubt"), "0"), &why);
	if (v == HR_HA_MIGRATED) {
		vm->migrated = 1; /* the worker ends now; then the entry goes */
		hr_token_log(vm->name, HR_TOK_MIGRATED, "runs on %s now", vm->mig_to);
		return;
	}
	log_warnx(vm->name, "migration to %s failed: %s; the VM runs on here", vm->mig_to,
		  err ? err : "unknown");
	if (vm->wait != W_MIGRATE)
		return;
	snprintf(msg, sizeof(msg), "migration of %s to %s failed: %s; %s", vm->name, vm->mig_to,
		 err ? err : "unknown", why);
	hr_dvm_reply(vm, vm->mig_report, msg);
}

/* The worker ended after a successful migration: answer, forget the VM. */
void hr_dvm_migrated_ended(struct hr_dvm *vm)
{
	char body[sizeof(vm->mig_report) + 400];
	snprintf(body, sizeof(body), "%s\nmigrated %s: it runs on %s now\n", vm->mig_report,
		 vm->name, vm->mig_to);
	hr_vm_state_remove(vm->name);
	hr_dvm_reply(vm, body, NULL);
	hr_dvm_free(vm);
}
