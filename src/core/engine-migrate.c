/*
 * engine-migrate.c - live migration: a primary's session that ends on
 * purpose (engine.h, hr_engine_migrate).
 *
 * The destination's daemon builds the VM as a backup would; this side runs
 * the live phase and an epoch as a primary would (its acks release output
 * here, as any backup's do: the destination never runs the guest on its
 * own - it discards its copy when this side goes silent or away, see
 * engine-backup.c); then, instead of a next epoch, the hand-off:
 *
 *   source:  pause (the guest stays paused) -> final epoch, EpochBegin.handoff
 *   target:  verify, commit, ACK -> load the state, release the envelope's
 *            held output, run the guest -> ERROR -HR_EMIGRATED ("runs here")
 *   source:  on that confirmation: stop, held output dropped unreleased
 *            (the destination released it from the committed envelope)
 *
 * At every moment one host runs the guest with its output released.  What
 * a failure leaves:
 *  - before the final epoch left whole (connect, handshake, live phase,
 *    the first epoch, a refused or cancelled migration): the destination
 *    cannot have run the guest - it runs only on a committed hand-off
 *    epoch - so the guest resumes here and its output policy is what it
 *    was before the migration (e->speaking): a VM that spoke alone (a
 *    promoted copy, a lease, --unprotected-output release) speaks on; one
 *    that was protected holds its output as any primary whose backup is
 *    gone (ha/failover.c) - the dropped backup was told to stop, but a torn
 *    link may have kept that from it - until re-protection with its old
 *    backup host releases it (the destination never ran, so nothing
 *    released there can contradict it).
 *  - after the final epoch left whole but before the confirmation (the
 *    link broke, the destination died, 10 s passed): in doubt - the
 *    destination may run the guest now.  The guest resumes here with its
 *    output held (speaking 0, never released without proof); the worker
 *    points re-protection at the destination, whose daemon answers `runs`
 *    (this side stands down, +demoted) or takes a backup (output released
 *    on its ack: it did not run the guest).
 *  - the destination answered with another error (it could not load the
 *    state): it does not run the guest; as the first case.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine-internal.h"
#include "core/sender.h"

#define HANDOFF_CONFIRM_MS 10000 /* the final epoch sent: the confirmation within this */

void hr_engine_migrate(struct hr_engine *e, uint64_t test_hold_ms)
{
	__atomic_store_n(&e->mig_hold_ms, test_hold_ms, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->mig_cancel, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->mig_req, 1, __ATOMIC_SEQ_CST);
	hr_engine_ctl_send(e, CTL_MIGRATE);
}

void hr_engine_migrate_cancel(struct hr_engine *e)
{
	__atomic_store_n(&e->mig_cancel, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->mig_req, 0, __ATOMIC_SEQ_CST);
	hr_engine_ctl_send(e, CTL_MIGRATE);
}

int hr_engine_mig_requested(struct hr_engine *e)
{
	return __atomic_load_n(&e->mig_req, __ATOMIC_SEQ_CST) &&
	       !__atomic_load_n(&e->mig_cancel, __ATOMIC_SEQ_CST);
}

void hr_engine_migration_sender(struct hr_engine *e, struct hr_sender *snd)
{
	pthread_mutex_lock(&e->stats_lock);
	e->mig_snd = snd;
	pthread_mutex_unlock(&e->stats_lock);
}

void hr_engine_migration_progress(struct hr_engine *e, struct hr_migration_progress *p)
{
	memset(p, 0, sizeof(*p));
	p->phase = __atomic_load_n(&e->mig_phase, __ATOMIC_RELAXED);
	if (p->phase == HR_MIG_NONE)
		return;
	pthread_mutex_lock(&e->stats_lock);
	p->elapsed_ms = (hr_now_ns() - e->mig_t0_ns) / 1000000;
	p->bytes = e->mig_epoch_bytes;
	if (e->mig_snd)
		p->bytes += __atomic_load_n(&e->mig_snd->live_bytes, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&e->stats_lock);
}

/* One XXH3-64 per guest page, in guest-physical order (little-endian, 8
 * bytes each), for cfg.mig_ram_pages. */
static void page_digest_out(FILE *f, const uint8_t *page)
{
	uint64_t h = XXH3_64bits(page, HR_PAGE_SIZE);
	uint8_t le[8];
	for (int b = 0; b < 8; b++)
		le[b] = (uint8_t)(h >> (8 * b));
	fwrite(le, 1, sizeof(le), f);
}

#define DIGEST_BATCH 256u

/* The digest of all guest RAM, page by page (gfn and contents), through
 * the host mapping or, for batched memory (Xen), mapped a batch at a
 * time; a gfn that is not RAM counts as a zero page, as the sender sends
 * it.  The guest is paused.  0 if it cannot be taken. */
uint64_t hr_engine_ram_digest(struct hr_engine *e)
{
	static const uint8_t zero[HR_PAGE_SIZE];
	struct hr_epoch_sum s;
	uint64_t gfns[DIGEST_BATCH];
	uint8_t *ptrs[DIGEST_BATCH];
	FILE *f = NULL;
	int rc = 0;

	if (hr_epoch_sum_init(&s, 0) < 0)
		return 0;
	if (e->cfg.mig_ram_pages && !(f = fopen(e->cfg.mig_ram_pages, "we")))
		log_warnx(e->name, "cannot write %s: %s", e->cfg.mig_ram_pages, strerror(errno));
	for (unsigned i = 0; !rc && i < e->gm.nr_regions; i++) {
		const struct hr_mem_region *r = &e->gm.regions[i];
		uint64_t first = r->gpa >> HR_PAGE_SHIFT, n = r->bytes >> HR_PAGE_SHIFT;
		for (uint64_t k = 0; !rc && k < n; k += DIGEST_BATCH) {
			unsigned m = n - k < DIGEST_BATCH ? (unsigned)(n - k) : DIGEST_BATCH;
			for (unsigned j = 0; j < m; j++) {
				gfns[j] = first + k + j;
				ptrs[j] = e->gm.batched
					      ? NULL
					      : (uint8_t *)r->hva + ((k + j) << HR_PAGE_SHIFT);
			}
			if (e->gm.batched && (rc = hr_guestmem_map(&e->gm, gfns, m, 0, ptrs)) < 0)
				break;
			for (unsigned j = 0; j < m; j++) {
				const uint8_t *p = ptrs[j] ? ptrs[j] : zero;
				hr_epoch_sum_page(&s, gfns[j], p);
				if (f)
					page_digest_out(f, p);
			}
			if (e->gm.batched)
				hr_guestmem_unmap(&e->gm);
		}
	}
	uint64_t d = rc ? 0 : hr_epoch_sum_value(&s);
	hr_epoch_sum_fini(&s);
	if (f && fclose(f) != 0)
		log_warnx(e->name, "cannot write %s: %s", e->cfg.mig_ram_pages, strerror(errno));
	return d;
}

uint64_t hr_engine_migration_digest(struct hr_engine *e)
{
	return __atomic_load_n(&e->mig_digest, __ATOMIC_SEQ_CST);
}

static void report(struct hr_engine *e, int rc, int in_doubt, const struct hr_migration_report *r)
{
	if (e->cfg.on_migration)
		e->cfg.on_migration(e->cfg.migrate_opaque, rc, in_doubt, r);
}

int hr_engine_migration_open(struct hr_engine *e)
{
	int fd = -1, rc;

	__atomic_store_n(&e->mig_req, 0, __ATOMIC_SEQ_CST);
	e->mig_was_speaking = e->speaking;
	e->mig_in_doubt = 0;
	e->mig_t0_ns = hr_now_ns();
	e->mig_epoch_bytes = 0;
	e->mig_epochs = 0;
	__atomic_store_n(&e->mig_phase, HR_MIG_CONNECTING, __ATOMIC_RELAXED);
	hr_engine_role_event(e, HR_RE_MIGRATE_START, "asking the destination's daemon");
	if (!e->cfg.migrate_connect)
		rc = -ENOTSUP;
	else if (__atomic_load_n(&e->mig_cancel, __ATOMIC_SEQ_CST))
		rc = -ECANCELED;
	else
		rc = e->cfg.migrate_connect(e->cfg.migrate_opaque, &fd);
	if (rc == 0 && __atomic_load_n(&e->mig_cancel, __ATOMIC_SEQ_CST)) {
		close(fd);
		rc = -ECANCELED;
	}
	if (rc < 0) {
		hr_engine_migration_failed(e, rc);
		return rc;
	}
	e->migrating = 1;
	__atomic_store_n(&e->mig_phase, HR_MIG_LIVE, __ATOMIC_RELAXED);
	return fd;
}

void hr_engine_migration_failed(struct hr_engine *e, int rc)
{
	int in_doubt = e->mig_in_doubt;
	char why[160];

	if (!in_doubt && __atomic_load_n(&e->mig_cancel, __ATOMIC_SEQ_CST))
		rc = -ECANCELED;

	if (e->peer.fd >= 0 && !in_doubt)
		/* code 0: the target discards its copy (it never ran it) */
		hr_peer_send_error(&e->peer, 0, "migration ended before the hand-off; discard");
	if (e->peer.fd >= 0)
		hr_peer_close(&e->peer);
	hr_peer_fini(&e->peer);
	e->migrating = 0;
	e->mig_in_doubt = 0;
	__atomic_store_n(&e->mig_phase, HR_MIG_NONE, __ATOMIC_RELAXED);
	e->speaking = in_doubt ? 0 : e->mig_was_speaking;
	if (in_doubt)
		snprintf(why, sizeof(why),
			 "%s after the final epoch left: the destination may run the guest; "
			 "output held here",
			 hr_strerror(rc));
	else
		snprintf(why, sizeof(why), "%s; the guest runs on here",
			 rc == -ECANCELED ? "cancelled" : hr_strerror(rc));
	hr_engine_role_event(e, HR_RE_MIGRATE_FAILED, why);
	report(e, rc, in_doubt, NULL);
}

void hr_engine_migration_refused(struct hr_engine *e, int rc)
{
	__atomic_store_n(&e->mig_req, 0, __ATOMIC_SEQ_CST);
	e->mig_was_speaking = 0; /* the old backup may promote: nothing released alone */
	e->mig_in_doubt = 0;
	e->mig_t0_ns = hr_now_ns();
	hr_engine_migration_failed(e, rc);
}

/* After the final epoch: its ACK, then the confirmation (the destination
 * runs the guest).  0 confirmed; -errno: none came (in doubt) or the
 * destination failed (*refused_r: it said so - it does not run the guest). */
static int wait_confirmation(struct hr_engine *e, struct hr_sender *snd, int *refused_r)
{
	uint64_t deadline = hr_now_ns() + HANDOFF_CONFIRM_MS * 1000000ull;
	int ctl = 0, rc;

	*refused_r = 0;
	for (;;) {
		struct hr_frame f;
		uint64_t now = hr_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		rc = hr_peer_recv(&e->peer, &f, (int)((deadline - now) / 1000000) + 1, &ctl);
		if (rc == -EINTR || rc == -ETIMEDOUT)
			continue; /* too late to cancel: the final epoch left */
		if (rc < 0)
			return rc;
		if (f.type == HR_FT_ACK) {
			rc = hr_sender_ack(snd, ((Hr__Ack *)f.msg)->epoch, NULL);
			hr_frame_release(&f);
			if (rc < 0)
				return rc;
			continue;
		}
		if (f.type == HR_FT_ERROR) {
			Hr__Error *er = (Hr__Error *)f.msg;
			rc = er->code;
			if (rc != -HR_EMIGRATED) {
				log_err(e->name, "the destination did not take over: %s",
					er->text ? er->text : hr_strerror(rc));
				*refused_r = 1;
				rc = rc < 0 ? rc : -HR_EPROTO;
			} else {
				rc = 0;
			}
			hr_frame_release(&f);
			return rc;
		}
		hr_frame_release(&f); /* heartbeats */
	}
}

/* Tests only (hr_engine_migrate's test_hold_ms): the destination holds a
 * committed copy; wait, heartbeats and acks going on, until the time is
 * up, a cancel, or the link ends (-errno). */
static int test_hold(struct hr_engine *e)
{
	uint64_t ms = __atomic_load_n(&e->mig_hold_ms, __ATOMIC_SEQ_CST);
	uint64_t until = hr_now_ns() + ms * 1000000ull;
	int ctl, rc;

	if (ms)
		log_warnx(e->name, "migration: holding %" PRIu64 " ms before the hand-off (test)",
			  ms);
	while (ms && hr_now_ns() < until && !__atomic_load_n(&e->mig_cancel, __ATOMIC_SEQ_CST)) {
		struct hr_frame f;
		rc = hr_peer_recv(&e->peer, &f, 50, &ctl);
		if (rc == -EINTR || rc == -ETIMEDOUT)
			continue;
		if (rc < 0)
			return rc;
		hr_frame_release(&f);
	}
	return 0;
}

int hr_engine_handoff(struct hr_engine *e, struct hr_sender *snd, uint64_t epoch, int *ctl_r)
{
	struct hr_epoch ep;
	int refused, rc;

	*ctl_r = 0;
	if ((rc = test_hold(e)) < 0)
		return rc;
	if (__atomic_load_n(&e->mig_cancel, __ATOMIC_SEQ_CST))
		return -ECANCELED;
	pthread_mutex_lock(&e->stats_lock);
	e->mig_epoch_bytes += e->last.bytes; /* the first epoch's */
	e->mig_epochs++;
	pthread_mutex_unlock(&e->stats_lock);
	__atomic_store_n(&e->mig_phase, HR_MIG_HANDOFF, __ATOMIC_RELAXED);
	e->src.keep_paused = 1;
	rc = hr_epoch_take(&e->src, epoch, &ep); /* on failure the guest was resumed */
	e->src.keep_paused = 0;
	if (rc < 0)
		return rc;
	uint64_t pause_ns = e->src.last_pause_ns;
	/* (a test's check, at the stop point itself: a hypervisor may write
	 * its own state into guest pages of a paused domain - Xen's vcpu_info
	 * and event words - which no dirty log shows and the guest's resume
	 * path sets up anew; the check counts in the downtime) */
	uint64_t ram_xxh3 = e->cfg.mig_ram_digest ? hr_engine_ram_digest(e) : 0;
	if (e->cfg.mig_ram_digest)
		log_info(e->name, "migration: guest RAM at the stop point xxh3=%016" PRIx64,
			 ram_xxh3);
	ep.handoff = 1;
	log_info(e->name, "hand-off: guest paused, final epoch %" PRIu64 " (%" PRIu64 " pages)",
		 epoch, ep.nr_pages);
	rc = hr_sender_send_epoch(snd, &ep);
	uint64_t final_pages = ep.nr_pages, final_bytes = ep.st.bytes;
	hr_epoch_release(&ep);
	if (rc < 0) {
		/* not all of it left: the destination cannot commit it */
		e->ops->resume(e->vm);
		return rc;
	}
	rc = wait_confirmation(e, snd, &refused);
	if (rc < 0) {
		e->mig_in_doubt = !refused;
		e->ops->resume(e->vm);
		return rc;
	}
	/* the destination runs the guest: it stays stopped here, and what it
	 * held stays unreleased (the destination released it) */
	uint64_t now = hr_now_ns();
	struct hr_migration_report r = {
	    .total_ms = (now - e->mig_t0_ns) / 1000000,
	    .downtime_us = (now - pause_ns) / 1000,
	    .live_bytes = snd->live_bytes,
	    .nr_epochs = e->mig_epochs + 1,
	    .final_pages = final_pages,
	    .final_epoch = epoch,
	};
	pthread_mutex_lock(&e->stats_lock);
	e->mig_epoch_bytes += final_bytes;
	r.epoch_bytes = e->mig_epoch_bytes;
	pthread_mutex_unlock(&e->stats_lock);
	r.ram_xxh3 = ram_xxh3;
	char why[160];
	snprintf(why, sizeof(why),
		 "the destination runs the guest (downtime %.1f ms, %" PRIu64 " ms in all); "
		 "stopped here",
		 r.downtime_us / 1000.0, r.total_ms);
	hr_engine_role_event(e, HR_RE_MIGRATED, why);
	hr_ha_lease_forget(&e->lease);
	e->migrating = 0;
	__atomic_store_n(&e->mig_phase, HR_MIG_NONE, __ATOMIC_RELAXED);
	report(e, 0, 0, &r);
	*ctl_r = CTL_MIGRATED;
	return 0;
}
