/*
 * engine-backup.c - the backup's side of the engine: accept the handshake,
 * receive and commit whole epochs, decide on promotion (ha/failover.c) and
 * run the promoted guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine-internal.h"
#include "net/tls.h"
#include "core/handshake.h"
#include "core/peer.h"
#include "core/promote.h"
#include "core/receiver.h"
#include "core/staging.h"
#include "ha/failover.h"

/*
 * The replica's backend options: the primary's (its devices), with the TAP
 * named by cfg.replica_tap ("%s" = the VM name) when that is set.
 */
static int replica_options(struct hr_engine *e, const char *primary, char *out, size_t n)
{
	const char *p = primary;
	size_t len = 0;

	out[0] = '\0';
	if (!e->cfg.replica_tap || !*primary) {
		snprintf(out, n, "%s", primary);
		return 0;
	}
	while (*p) {
		size_t item = strcspn(p, ",");
		if (item > 4 && !strncmp(p, "tap=", 4)) {
			char tap[160];
			const char *pct = strstr(e->cfg.replica_tap, "%s");
			if (pct)
				snprintf(tap, sizeof(tap), "%.*s%s%s",
					 (int)(pct - e->cfg.replica_tap), e->cfg.replica_tap,
					 e->name, pct + 2);
			else
				snprintf(tap, sizeof(tap), "%s", e->cfg.replica_tap);
			len +=
			    (size_t)snprintf(out + len, n - len, "%stap=%s", len ? "," : "", tap);
		} else {
			len += (size_t)snprintf(out + len, n - len, "%s%.*s", len ? "," : "",
						(int)item, p);
		}
		if (len >= n)
			return -E2BIG;
		p += item;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* The backup's images of the VM's disks: the primary's number and sizes;
 * committed epochs' writes are applied to them (core/disk-staging.h). */
static int backup_disks(struct hr_engine *e, const struct hr_hello_info *h, char *why,
			size_t why_size)
{
	enum hr_disk_durability dur;
	uint64_t sizes[HR_MAX_DISKS];
	int rc;

	if (hr_disk_durability_parse(e->cfg.disk_durability, &dur) < 0) {
		snprintf(why, why_size, "disk_durability '%s': want ack or flush",
			 e->cfg.disk_durability);
		log_err(e->name, "refusing the primary: %s", why);
		return -EINVAL;
	}
	if (e->cfg.vm.nr_disks && (rc = hr_disk_target_open(&e->dt, e->name, e->cfg.vm.disks,
							    e->cfg.vm.nr_disks, dur)) < 0) {
		snprintf(why, why_size, "%s", e->dt.why);
		log_err(e->name, "refusing the primary: %s", why);
		return rc;
	}
	e->dt.fail_after = e->cfg.disk_fail_after;
	/* once promoted, its guest's writes are counted from the first */
	if ((rc = hr_engine_disklog_setup(e)) < 0) {
		snprintf(why, why_size, "the disk write log: %s", hr_strerror(rc));
		return rc;
	}
	for (unsigned i = 0; i < e->dt.nr; i++) /* promoted, its HELLOs announce them */
		e->disk_sizes[i] = sizes[i] = e->dt.img[i].bytes;
	if ((rc = hr_handshake_check_disks(h, sizes, e->cfg.vm.nr_disks, why, why_size)) < 0)
		log_err(e->name, "refusing the primary: %s", why);
	else if (e->cfg.vm.nr_disks)
		log_info(e->name, "backup: %u disk%s, writes applied at commit (durability %s)",
			 e->dt.nr, e->dt.nr > 1 ? "s" : "", dur == HR_DISK_FLUSH ? "flush" : "ack");
	return rc;
}

static int backup_setup(struct hr_engine *e, struct hr_staging **st_r)
{
	struct hr_hello_info h;
	char why[256] = "";
	int ctl, rc;

	rc = hr_handshake_accept(&e->peer, &h, &ctl);
	if (h.vm[0]) {
		snprintf(e->name, sizeof(e->name), "%s", h.vm);
		hr_role_set_vm(&e->role, e->name);
	}
	/* before anything is allocated for the replica */
	if (!rc && (rc = hr_handshake_check_limits(&h, &e->cfg.limits, why, sizeof(why))) < 0)
		log_err(e->name, "refusing the primary: %s", why);
	/* this host's images of the primary's disks (never a path the peer names) */
	if (!rc && e->cfg.backup_disk_dir && !e->cfg.vm.nr_disks && h.nr_disks) {
		rc = hr_disk_files_prepare(&e->bdf, e->name, e->cfg.backup_disk_dir, h.disk_bytes,
					   h.nr_disks, why, sizeof(why));
		if (rc < 0)
			log_err(e->name, "refusing the primary: %s", why);
		e->cfg.vm.disks = e->bdf.spec;
		e->cfg.vm.nr_disks = e->bdf.nr;
	}
	char options[HR_HELLO_OPTIONS_MAX + 64];
	if (!rc && (rc = replica_options(e, h.vm_options, options, sizeof(options))) < 0)
		log_err(e->name, "refusing the primary: its VM options '%s' are too long",
			h.vm_options);
	if (!rc) {
		struct hr_vm_config vc = e->cfg.vm;
		vc.options = options[0] ? options : NULL;
		e->ops = hr_backend_find(h.backend);
		vc.name = e->name;
		vc.mem_bytes = h.mem_bytes;
		vc.nr_vcpus = h.nr_vcpus;
		vc.kernel_path = NULL;
		vc.emit = hr_engine_promoted_emit;
		vc.emit_opaque = e;
		vc.on_exit = hr_engine_on_guest_exit;
		vc.exit_opaque = e;
		if (vc.nr_disks) {
			/* promoted, its guest's writes go to the log once it is a primary */
			vc.disk_write = hr_engine_disk_write;
			vc.disk_opaque = e;
		}
		if (h.epoch_us)
			e->cfg.epoch_us = h.epoch_us;
		e->mig_target = h.migration;
		if (h.min_epoch_us) /* once promoted, its epochs follow the same policy */
			e->cfg.min_epoch_us = h.min_epoch_us;
		e->cfg.vm.mem_bytes = h.mem_bytes;
		e->cfg.vm.nr_vcpus = h.nr_vcpus;
		/* promoted and re-protected, this copy's HELLO names its devices */
		snprintf(e->vm_options, sizeof(e->vm_options), "%s", options);
		e->cfg.vm.options = e->vm_options[0] ? e->vm_options : NULL;
		rc = hr_engine_open_vm(e, &vc);
		if (!rc && e->gm.batched) {
			/* staging commits through host mappings of the replica */
			log_err(e->name, "a replica needs host-mapped memory; this backend's "
					 "batched mapping is supported on the primary side only");
			rc = -ENOTSUP;
		}
		if (!rc && (rc = hr_handshake_check_layout(&h, e->gm.regions, e->gm.nr_regions)))
			log_err(e->name, "primary's memory layout differs from the replica's");
		if (!rc && (rc = hr_handshake_check_cpu(&h, e->ops, e->vm, why, sizeof(why))) < 0)
			log_err(e->name, "refusing the primary: %s", why);
		if (!rc)
			rc = backup_disks(e, &h, why, sizeof(why));
		if (!rc)
			rc = hr_staging_new(st_r, e->name, e->gm.regions, e->gm.nr_regions,
					    h.first_epoch);
	}
	if (rc != -EINTR) {
		int arc = hr_handshake_answer(&e->peer, rc, why, h.first_epoch);
		rc = rc ? rc : arc;
	}
	hr_hello_info_fini(&h);
	return rc;
}

/* Load the committed state, release its held output and run the guest
 * here; why says from which epoch and how long it took. */
static int take_over(struct hr_engine *e, struct hr_staging *st, char *why, size_t n)
{
	const void *state;
	size_t len;
	uint64_t t0 = hr_now_ns();
	int rc;

	hr_staging_committed_state(st, &state, &len);
	rc = hr_promote(e->name, e->ops, e->vm, state, len, hr_engine_deliver, e, e->next_offset,
			&e->fo.loaded_ns);
	e->fo.resumed_ns = hr_now_ns();
	if (!rc && e->fo.detect_ns) {
		memcpy(e->fo.new_from, e->next_offset, sizeof(e->fo.new_from));
		__atomic_store_n(&e->fo.armed, 1, __ATOMIC_RELEASE);
	}
	if (!rc)
		snprintf(why, n, "guest running here from epoch %" PRIu64 " (%.1f ms)",
			 hr_staging_next_epoch(st) - 1, (hr_now_ns() - t0) / 1e6);
	return rc;
}

/*
 * A migration's final epoch is committed (and acked): run the guest now,
 * releasing the output the source held (from the committed envelope),
 * confirm to the source, and go on as a primary without a backup that
 * speaks for the VM; with cfg.migrated_reprotect its reconnect asks the
 * VM's backup host for a new backup (a full synchronisation), as any
 * primary that lost its backup does.  Runs until stop or guest exit.
 */
static int run_migrated(struct hr_engine *e, struct hr_staging *st)
{
	char why[96];
	int rc = take_over(e, st, why, sizeof(why));

	if (rc < 0) {
		hr_peer_send_error(&e->peer, rc, "the destination could not run the VM");
		return rc;
	}
	hr_engine_role_event(e, HR_RE_MIGRATED, why);
	hr_peer_send_error(&e->peer, -HR_EMIGRATED, "the destination runs the VM");
	hr_peer_close(&e->peer);
	hr_peer_fini(&e->peer);
	if (!e->cfg.migrated_reprotect)
		e->cfg.reconnect = NULL;
	if ((rc = hr_engine_become_primary(e, hr_staging_next_epoch(st))) < 0)
		return rc;
	return hr_engine_primary_loop(e, -1);
}

/* Promote and run the guest here until stop or guest exit. */
static int run_promoted(struct hr_engine *e, struct hr_staging *st)
{
	char why[96];
	int rc = take_over(e, st, why, sizeof(why));

	if (rc < 0)
		return rc;
	hr_engine_role_event(e, HR_RE_PROMOTED, why);
	if (e->cfg.reconnect) {
		/* a primary without a backup now: it asks its old primary's host for one */
		hr_peer_fini(&e->peer);
		if ((rc = hr_engine_become_primary(e, hr_staging_next_epoch(st))) < 0)
			return rc;
		return hr_engine_primary_loop(e, -1);
	}
	for (;;) {
		int w = hr_peer_wait(&e->peer, -1);
		if (w == CTL_STOP || w == CTL_ABORT || w == CTL_GUEST_EXIT)
			e->ops->pause(e->vm); /* nothing more is emitted once we return */
		if (w == CTL_STOP || w == CTL_ABORT) {
			hr_engine_role_event(e, HR_RE_STOP, NULL);
			return 0;
		}
		if (w == CTL_GUEST_EXIT) {
			hr_engine_role_event(e, HR_RE_GUEST_EXIT, NULL);
			return e->guest_exit_code;
		}
	}
}

/*
 * Silent for the failure timeout, yet bytes from the primary wait in this
 * host's TLS pump, which has not run (this host is starved of CPU): that
 * is not the primary's silence.  They count as heard for at most max
 * pause since first seen (*behind_ns), so that a pump stuck for good
 * cannot hold a promotion back.
 */
static void starved_link(struct hr_engine *e, struct hr_ha_monitor *ha, uint64_t now,
			 uint64_t *behind_ns)
{
	uint64_t silence_ns = e->cfg.silence_ms * 1000000ull;
	if (!silence_ns || now - ha->last_rx_ns < silence_ns) {
		*behind_ns = 0;
		return;
	}
	long q = hr_tls_rx_queued(e->peer.fd);
	if (q <= 0)
		return;
	if (!*behind_ns) {
		*behind_ns = now;
		log_info(e->name,
			 "no byte read for %" PRIu64 " ms, but %ld bytes wait in the TLS link: "
			 "this host is slow, the primary is not silent",
			 (now - ha->last_rx_ns) / 1000000, q);
	}
	if (now - *behind_ns < e->peer.max_pause_ms * 1000000ull)
		hr_ha_heard(ha, now);
}

int hr_engine_run_backup(struct hr_engine *e, int peer_fd)
{
	struct hr_staging *st = NULL;
	struct hr_receiver rx;
	struct hr_ha_monitor ha = {.silence_ms = e->cfg.silence_ms,
				   .auto_promote = e->cfg.auto_promote,
				   .lease = &e->lease};
	int rc, ended = 0, op_asked = 0; /* the operator's failover waits for the witness */
	uint64_t op_answers = 0;	 /* ... for an answer after this many */
	uint64_t behind_ns = 0;		 /* starved_link */

	hr_role_init(&e->role, e->name, HR_SIDE_BACKUP, e->cfg.on_state, e->cfg.state_opaque);
	hr_peer_init(&e->peer, e->name, peer_fd, e->ctl_pipe[0]);
	e->peer.handshake_ms = e->cfg.handshake_ms;
	e->peer.heartbeat_ms = hr_engine_heartbeat_ms(e);
	e->peer.max_pause_ms = hr_engine_max_pause_ms(e);
	hr_set_interrupt_fd(e->end_pipe[0]);
	if ((rc = backup_setup(e, &st)) < 0) {
		log_err(e->name, "refusing replication stream: %s", hr_strerror(rc));
		hr_engine_role_event(e, HR_RE_ERROR, hr_strerror(rc));
		goto out;
	}
	hr_engine_role_event(e, HR_RE_CONNECTED, NULL);
	hr_receiver_init(&rx, e->name, peer_fd, &e->gm, st);
	hr_receiver_use_peer(&rx, &e->peer);
	if (e->dt.nr)
		hr_receiver_use_disks(&rx, &e->dt);
	if ((rc = hr_peer_liveness_start(&e->peer)) < 0) {
		log_err(e->name, "the heartbeat thread: %s", hr_strerror(rc));
		hr_engine_role_event(e, HR_RE_ERROR, hr_strerror(rc));
		goto out;
	}
	hr_frame_reader_set_placer(&e->peer.rd, hr_receiver_place, &rx);
	ha.vm = e->name;
	if (e->mig_target) {
		ha.auto_promote = 0; /* only the hand-off makes it run */
		log_info(e->name, "migration target: the copy runs only on the source's hand-off");
	}
	log_info(e->name, "backup: receiving (%" PRIu64 " MiB, %u vCPU)", e->cfg.vm.mem_bytes >> 20,
		 e->cfg.vm.nr_vcpus);
	hr_ha_heard(&ha, hr_now_ns());

	for (;;) {
		struct hr_frame f;
		int r = ended ? 0 : hr_frame_reader_next(&e->peer.rd, &f);
		if (r == 1) {
			hr_ha_heard(&ha, hr_now_ns());
			r = hr_receiver_frame(&rx, &f);
			hr_frame_release(&f);
			if (r == HR_RX_END) {
				/* told, and it says so: a migrating primary waits for
				 * this before its destination may run the guest */
				hr_peer_send_error(&e->peer, 0, "backup: copy dropped");
				hr_engine_role_event(e, HR_RE_STOP,
						     "the primary stopped on purpose");
				rc = 0;
				goto out;
			}
			if (r == HR_RX_HANDOFF && e->mig_target) {
				hr_engine_epoch_done(e, &rx.last);
				if (e->cfg.mig_ram_digest) {
					uint64_t d = hr_engine_ram_digest(e);
					__atomic_store_n(&e->mig_digest, d, __ATOMIC_SEQ_CST);
					log_info(e->name,
						 "migration target: guest RAM at the hand-off "
						 "xxh3=%016" PRIx64,
						 d);
				}
				rc = run_migrated(e, st);
				if (rc < 0)
					hr_engine_role_event(e, HR_RE_ERROR, hr_strerror(rc));
				goto out;
			}
			if (r == HR_RX_COMMITTED || r == HR_RX_HANDOFF) {
				ha.have_commit = 1;
				if (rx.nr_epochs == 1)
					hr_engine_role_event(e, HR_RE_SYNCED, "epoch 0 committed");
				hr_engine_epoch_done(e, &rx.last);
			} else if (r < 0 && rx.disk_failed) {
				/* half-applied disks: this copy must never run */
				hr_engine_role_event(e, HR_RE_ERROR, e->dt.why);
				rc = rx.disk_failed;
				goto out;
			} else if (r < 0) {
				ended = 1;
			}
			continue;
		}
		if (r < 0 && !ended) {
			log_err(e->name, "replication stream broken: %s", hr_strerror(r));
			ended = 1;
			e->fo.detect_ns = hr_now_ns();
		}
		if (!ended) {
			/* Look at the socket before judging silence: time spent on our
			 * own commit is not the primary's silence.  Any byte counts. */
			ssize_t n = hr_peer_fill(&e->peer);
			if (n > 0) {
				hr_ha_heard(&ha, e->peer.last_rx_ns);
				continue;
			}
			if (n == 0 && rx.in_epoch)
				log_warnx(e->name, "stream ended inside an epoch: discarded");
			if (n != -EAGAIN) {
				ended = 1; /* EOF or an error */
				e->fo.detect_ns = hr_now_ns();
			}
		}
		uint64_t now = hr_now_ns();
		if (e->mig_target &&
		    (ended || (e->cfg.silence_ms &&
			       now - ha.last_rx_ns >= e->cfg.silence_ms * 1000000ull))) {
			/* never on silence: the source may run on, or it is gone */
			hr_engine_role_event(e, HR_RE_ERROR,
					     "the migration source went away before the hand-off; "
					     "the copy is discarded");
			rc = -ECONNRESET;
			goto out;
		}
		if (!ended)
			starved_link(e, &ha, now, &behind_ns);
		enum hr_ha_verdict v = hr_ha_decide(&ha, now, ended);
		if (v == HR_HA_GIVE_UP) {
			hr_engine_role_event(e, HR_RE_ERROR, ha.why);
			rc = -ECONNRESET;
			goto out;
		}
		if (v == HR_HA_PROMOTE) {
			e->fo.last_rx_ns = ha.last_rx_ns;
			if (!ended) /* silent: detected when the silence reached the timeout */
				e->fo.detect_ns = ha.last_rx_ns + e->cfg.silence_ms * 1000000ull;
			e->fo.how = ha.why;
			hr_engine_role_event(e, HR_RE_PRIMARY_LOST, ha.why);
			e->fo.decide_ns = hr_now_ns();
			goto promote;
		}
		if (v == HR_HA_STALE) {
			char why[320];
			snprintf(why, sizeof(why),
				 "this copy is stale (%s): it must never run; a new backup "
				 "replaces it when the primary re-protects itself",
				 e->lease.why);
			hr_engine_role_event(e, HR_RE_ERROR, why);
			rc = -HR_ESTALE;
			goto out;
		}
		if (op_asked) {
			v = hr_ha_may_promote(&ha, now);
			if (v == HR_HA_PROMOTE) {
				hr_engine_role_event(e, HR_RE_OPERATOR_FAILOVER, "operator");
				goto promote;
			}
			if (v == HR_HA_STALE || hr_ha_lease_answers(&e->lease) > op_answers) {
				op_asked = 0;
				log_err(e->name,
					"failover refused: the witness did not grant the "
					"lease (%s)",
					e->lease.why);
			}
			v = HR_HA_WAIT; /* a stale copy is the loss's verdict to give */
		}
		int wait_ms = hr_ha_poll_ms(&ha, now);
		if (ended && v == HR_HA_WAIT && !op_asked &&
		    (!e->lease.addr ||
		     (e->lease.next_ask_ns <= now && !hr_ha_lease_busy(&e->lease))))
			wait_ms = -1; /* nothing more can arrive; only an operator decides */
		int w = hr_peer_wait(&e->peer, wait_ms);
		if (w == CTL_STOP || w == CTL_ABORT) {
			hr_engine_role_event(e, HR_RE_STOP, NULL);
			rc = 0;
			goto out;
		}
		if (w == CTL_PROMOTE && e->mig_target) {
			log_err(e->name, "failover refused: a migration target runs the VM only on "
					 "the source's hand-off");
			continue;
		}
		if (w == CTL_PROMOTE) {
			if (!ha.have_commit) {
				log_err(e->name, "failover refused: no complete epoch yet");
				continue;
			}
			e->lease.next_ask_ns = 0; /* the operator asks now */
			v = hr_ha_may_promote(&ha, hr_now_ns());
			if (v != HR_HA_PROMOTE) {
				/* the next answer decides (taken above) */
				op_asked = 1;
				op_answers = hr_ha_lease_answers(&e->lease);
				continue;
			}
			hr_engine_role_event(e, HR_RE_OPERATOR_FAILOVER, "operator");
			goto promote;
		}
	}

promote:
	hr_receiver_abandon(&rx);
	if (!ended)
		hr_peer_send_error(&e->peer, -HR_EPROMOTED, "the backup has taken over");
	hr_peer_close(&e->peer);
	if ((rc = run_promoted(e, st)) < 0)
		hr_engine_role_event(e, HR_RE_ERROR, hr_strerror(rc));
out:
	hr_set_interrupt_fd(-1);
	hr_staging_free(st);
	hr_peer_fini(&e->peer);
	return rc;
}
