/*
 * worker-migrate.c - the worker's part in a migration (vm-migrate.c is the
 * daemon's): the daemon's requests, the progress fields of its status
 * lines, the connection to the destination and the final report line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/worker-internal.h"

void hr_w_migrate_request(struct worker *w, struct hr_engine *eng, const struct hr_kvline *kv)
{
	const char *req = hr_kv_get(kv, "req"), *to = hr_kv_get(kv, "to");
	if (req && !strcmp(req, "migrate") && to) {
		pthread_mutex_lock(&w->send_lock);
		snprintf(w->mig_to, sizeof(w->mig_to), "%s", to);
		w->have_round = 0; /* rounds of earlier live phases are not this one's */
		w->mig_rounds = 0;
		w->mig_round_pages[0] = '\0';
		pthread_mutex_unlock(&w->send_lock);
		uint64_t hold_ms = 0, bw = 0;
		hr_kv_getu(kv, "test_hold_ms", &hold_ms);
		hr_kv_getu(kv, "max_bandwidth", &bw);
		int extend = hr_kv_get(kv, "extend_live") != NULL;
		log_info(w->a->name, "migration to %s requested%s%s", to,
			 extend ? ", live phase extended until --end-live" : "",
			 bw ? ", bandwidth capped" : "");
		hr_engine_live_bandwidth(eng, bw);
		hr_engine_live_request(eng, extend ? HR_LIVE_EXTEND : HR_LIVE_NO_EXTEND);
		hr_engine_migrate(eng, hold_ms);
	} else if (req && !strcmp(req, "live-end")) {
		log_info(w->a->name, "end of the live phase requested");
		hr_engine_live_request(eng, HR_LIVE_END);
	} else if (req && !strcmp(req, "migrate-cancel")) {
		log_info(w->a->name, "migration cancel requested");
		hr_engine_migrate_cancel(eng);
	}
}

int hr_w_migrate_progress(struct worker *w, struct hr_engine *eng, struct hr_sbuf *sb)
{
	struct hr_migration_progress mp;
	hr_engine_migration_progress(eng, &mp);
	if (mp.phase != HR_MIG_NONE) {
		static const char *const phases[] = {"none", "connecting", "live", "handoff"};
		hr_kv_add(sb, "mig_phase", phases[mp.phase & 3]);
		hr_kv_addu(sb, "mig_bytes", mp.bytes);
		hr_kv_addu(sb, "mig_elapsed_ms", mp.elapsed_ms);
		pthread_mutex_lock(&w->send_lock);
		struct hr_live_round r = w->round;
		int have = w->have_round;
		pthread_mutex_unlock(&w->send_lock);
		if (have) { /* the live phase's last round */
			hr_kv_addu(sb, "mig_round", r.round);
			hr_kv_addu(sb, "mig_ns_sent", r.never_sent_pages);
			hr_kv_addu(sb, "mig_dirty_sent", r.dirty_pages);
			hr_kv_addu(sb, "mig_zero", r.zero_pages);
			hr_kv_addu(sb, "mig_ns_left", r.never_sent_left);
			hr_kv_addu(sb, "mig_dirty_rate", r.dirty_rate);
		}
	}
	return mp.phase != HR_MIG_NONE;
}

/* Migration: the destination's daemon, asked until it is free (it may
 * still hold the replica this VM's backup just dropped), 15 s at most. */
int hr_w_migrate_connect(void *opaque, int *fd_r)
{
	struct worker *w = opaque;
	char to[sizeof(w->mig_to)], node[HR_VM_NAME_MAX + 1] = "";
	char backup[sizeof(w->a->reconnect_addr)], backup_node[sizeof(w->a->peer_node)];
	uint64_t deadline = hr_now_ns() + 15000 * 1000000ull;
	int rc;

	pthread_mutex_lock(&w->send_lock);
	memcpy(to, w->mig_to, sizeof(to));
	/* the VM's backup host (its peer): the destination re-protects there */
	memcpy(backup, w->a->reconnect_addr, sizeof(backup));
	memcpy(backup_node, w->a->peer_node, sizeof(backup_node));
	pthread_mutex_unlock(&w->send_lock);
	for (;;) {
		rc = hr_migrate_peer(to, w->a->name, backup, backup_node, 4000, fd_r, node,
				     sizeof(node), w->mig_err, sizeof(w->mig_err));
		if (rc != -EAGAIN || hr_now_ns() >= deadline || hr_w_stop)
			break;
		usleep(200000);
	}
	if (rc == -HR_EPROMOTED)
		snprintf(w->mig_err, sizeof(w->mig_err), "%s runs a VM named %s already", to,
			 w->a->name);
	if (!rc && node[0] && hr_dopts.node && !strcmp(node, hr_dopts.node)) {
		close(*fd_r);
		snprintf(w->mig_err, sizeof(w->mig_err),
			 "%s is this host (node %s): a VM cannot migrate to itself", to, node);
		rc = -ELOOP;
	}
	if (rc < 0)
		log_warnx(w->a->name, "migration: %s", w->mig_err);
	else
		w->mig_err[0] = '\0';
	return rc;
}

/* A live round ended (engine thread): kept for the next progress line. */
void hr_w_on_round(void *opaque, const struct hr_live_round *r)
{
	struct worker *w = opaque;
	pthread_mutex_lock(&w->send_lock);
	w->round = *r;
	w->have_round = 1;
	size_t len = strlen(w->mig_round_pages);
	if (w->mig_rounds++ < 24 && len + 48 < sizeof(w->mig_round_pages))
		snprintf(w->mig_round_pages + len, sizeof(w->mig_round_pages) - len, "%s%llu+%llu",
			 len ? "," : "", (unsigned long long)r->never_sent_pages,
			 (unsigned long long)r->dirty_pages);
	pthread_mutex_unlock(&w->send_lock);
	/* a migration's round: a line of its own (`migrate --json` prints one
	 * object per round; the liveness lines come every second) */
	struct hr_engine *eng = hr_w_eng;
	struct hr_sbuf sb = {0};
	hr_kv_add(&sb, "event", "round");
	if (eng && hr_w_migrate_progress(w, eng, &sb))
		hr_w_send_line(w, &sb, 0);
	hr_sbuf_free(&sb);
}

void hr_w_on_migration(void *opaque, int rc, int in_doubt, const struct hr_migration_report *r)
{
	struct worker *w = opaque;
	struct hr_sbuf sb = {0};

	/* what this migration asked of the live phase ends with it (later
	 * re-protections sync as usual) */
	if (hr_w_eng) {
		hr_engine_live_bandwidth(hr_w_eng, 0);
		hr_engine_live_request(hr_w_eng, HR_LIVE_NO_EXTEND);
	}
	hr_kv_add(&sb, "event", "migration");
	hr_kv_add(&sb, "result", rc == 0 ? "ok" : "failed");
	if (rc < 0)
		hr_kv_add(&sb, "error",
			  rc == -ECANCELED	? "cancelled"
			  : w->mig_err[0]	? w->mig_err
			  : rc == -ECONNRESET	? "the destination closed the connection"
			  : rc == -ESRCH	? "the guest exited"
			  : rc == -HR_EPROMOTED ? "the destination runs a VM of that name"
						: hr_strerror(rc));
	w->mig_err[0] = '\0';
	hr_kv_addu(&sb, "in_doubt", (uint64_t)in_doubt);
	if (r) {
		hr_kv_addu(&sb, "total_ms", r->total_ms);
		hr_kv_addu(&sb, "downtime_us", r->downtime_us);
		hr_kv_addu(&sb, "live_bytes", r->live_bytes);
		hr_kv_addu(&sb, "epoch_bytes", r->epoch_bytes);
		hr_kv_addu(&sb, "epochs", r->nr_epochs);
		hr_kv_addu(&sb, "final_pages", r->final_pages);
		hr_kv_addu(&sb, "final_epoch", r->final_epoch);
	}
	pthread_mutex_lock(&w->send_lock);
	hr_kv_addu(&sb, "rounds", w->mig_rounds);
	if (w->mig_round_pages[0])
		hr_kv_add(&sb, "round_pages", w->mig_round_pages);
	if (w->have_round)
		hr_kv_addu(&sb, "dirty_rate", w->round.dirty_rate);
	pthread_mutex_unlock(&w->send_lock);
	if (in_doubt) {
		/* re-protection asks the destination: `runs` -> stand down */
		pthread_mutex_lock(&w->send_lock);
		memcpy(w->a->reconnect_addr, w->mig_to, sizeof(w->a->reconnect_addr));
		pthread_mutex_unlock(&w->send_lock);
	}
	hr_w_send_line(w, &sb, 0);
	hr_sbuf_free(&sb);
}
