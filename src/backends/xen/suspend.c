/*
 * suspend.c - how a checkpoint stops the domain.
 *
 * A PV-aware guest (every PVH guest) keeps state in Xen that no save call
 * returns: its event channel bindings (VIRQ timer, IPIs), where it placed
 * shared_info, its vcpu_info areas and grant table frames.  A copy made
 * while the guest was merely paused cannot go on in another domain: it
 * would wait for interrupts that are bound nowhere.  So, as libxl's Remus
 * does, every checkpoint suspends the guest cooperatively: "suspend" in
 * its xenstore control/shutdown node, the guest freezes and calls
 * SCHEDOP_shutdown(SHUTDOWN_suspend), the backend saves it in that state,
 * and xc_domain_resume(fast) lets it return from the hypercall with 1
 * ("cancelled": nothing to redo).  The replica's copy returns 0 instead,
 * so on promotion the guest runs its resume path and rebinds everything
 * in the new domain, as after `xl migrate`.
 *
 * Until the guest announces control/feature-suspend (early boot) and with
 * options checkpoint=pause, a checkpoint is a plain pause.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/xen/xen-internal.h" /* first: xenctrl.h sets up Xen's headers */
#include <xen/features.h>
#include <xen/hvm/params.h>
#include <xen/sched.h>
#include <xenguest.h>
#include <xenstore.h>

#include "common/log.h"
#include "common/util.h"

int xen_suspend_open(struct xen_vm *x)
{
	x->xsh = xs_open(0);
	if (!x->xsh) {
		int r = -errno;
		xen_fail(x, "cannot reach xenstored: %s", strerror(errno));
		return r ? r : -ENODEV;
	}
	return 0;
}

void xen_suspend_close(struct xen_vm *x)
{
	if (x->xsh)
		xs_close(x->xsh);
	x->xsh = NULL;
}

static int in_suspend(struct xen_vm *x, int *dead_r)
{
	xc_dominfo_t info;

	*dead_r = 0;
	if (xc_domain_getinfo(x->xch, x->domid, 1, &info) != 1 || info.domid != x->domid) {
		*dead_r = 1;
		return 0;
	}
	if (info.dying || info.crashed ||
	    (info.shutdown && info.shutdown_reason != SHUTDOWN_suspend))
		*dead_r = 1;
	return info.shutdown && info.shutdown_reason == SHUTDOWN_suspend;
}

static int guest_can_suspend(struct xen_vm *x)
{
	char path[96];
	unsigned len = 0;

	snprintf(path, sizeof(path), "/local/domain/%" PRIu32 "/control/feature-suspend", x->domid);
	char *v = xs_read(x->xsh, XBT_NULL, path, &len);
	int yes = v && len == 1 && v[0] == '1';
	free(v);
	return yes;
}

/* Ask the guest to suspend and wait until it has; 0, or < 0 (not suspended). */
static int cooperative_suspend(struct xen_vm *x)
{
	char path[96];
	int dead;
	uint64_t until = hr_now_ns() + x->suspend_timeout_ms * 1000000ull;

	snprintf(path, sizeof(path), "/local/domain/%" PRIu32 "/control/shutdown", x->domid);
	if (!xs_write(x->xsh, XBT_NULL, path, "suspend", 7)) {
		int r = -errno;
		xen_fail(x, "writing %s: %s", path, strerror(errno));
		return r ? r : -EIO;
	}
	while (!in_suspend(x, &dead)) {
		if (dead) {
			xen_fail(x, "domain %" PRIu32 " died or crashed instead of suspending",
				 x->domid);
			return -ESRCH;
		}
		if (hr_now_ns() > until) {
			xs_write(x->xsh, XBT_NULL, path, "", 0);
			xen_fail(x, "domain %" PRIu32 " did not suspend within %" PRIu64 " ms",
				 x->domid, x->suspend_timeout_ms);
			return -ETIMEDOUT;
		}
		usleep(500);
	}
	return 0;
}

int xen_checkpoint_stop(struct xen_vm *x)
{
	int dead, rc;

	uint64_t t0 = hr_now_ns();
	x->suspended = 0;
	if (x->cooperative && x->xsh && !in_suspend(x, &dead) && guest_can_suspend(x)) {
		if ((rc = cooperative_suspend(x)) < 0 && rc != -ETIMEDOUT)
			return rc;
		/* a guest too slow to answer is paused as it is (logged above) */
		x->suspended = !rc;
	} else if (in_suspend(x, &dead)) {
		x->suspended = 1; /* a late answer to a timed-out request */
	}
	/* synchronous: returns once no vCPU runs (the suspend pause is not) */
	if (xc_domain_pause(x->xch, x->domid) < 0) {
		rc = -errno;
		xen_fail(x, "pause of domain %" PRIu32 ": %s", x->domid, strerror(errno));
		return rc;
	}
	log_debug(x->name, "xen: checkpoint stop %s in %" PRIu64 " us",
		  x->suspended ? "suspended" : "paused", (hr_now_ns() - t0) / 1000);
	return 0;
}

int xen_checkpoint_go(struct xen_vm *x)
{
	int dead;
	uint64_t t0 = hr_now_ns();

	if (in_suspend(x, &dead)) {
		/* the hypercall returns 1 to the guest: cancelled, nothing to redo */
		if (xc_domain_resume(x->xch, x->domid, 1) < 0) {
			int r = -errno;
			xen_fail(x, "resuming domain %" PRIu32 " from its suspend: %s", x->domid,
				 strerror(errno));
			return r;
		}
	}
	x->suspended = 0;
	if (xc_domain_unpause(x->xch, x->domid) < 0) {
		int r = -errno;
		xen_fail(x, "unpause of domain %" PRIu32 ": %s", x->domid, strerror(errno));
		return r;
	}
	log_debug(x->name, "xen: checkpoint go in %" PRIu64 " us", (hr_now_ns() - t0) / 1000);
	return 0;
}

/*
 * An attached domain left behind at close: out of its suspend (the
 * hypercall returns "cancelled"), still paused by us, so that `xl unpause`
 * is all it takes to run it again.
 */
void xen_checkpoint_settle(struct xen_vm *x)
{
	int dead;

	if (x->xch && in_suspend(x, &dead) && xc_domain_resume(x->xch, x->domid, 1) < 0)
		log_warnx(x->name, "xen: domain %" PRIu32 " stays suspended: %s", x->domid,
			  strerror(errno));
}

/*
 * Before a replica whose last checkpoint was a suspended guest runs: as
 * xg_sr's restore, its xenstore ring starts empty (xenstored's connection
 * to the new domain is fresh); the guest's resume path reconnects.
 */
int xen_replica_prepare(struct xen_vm *x)
{
	uint64_t store = 0;

	if (!x->loaded_suspended)
		return 0;
	if (!xc_hvm_param_get(x->xch, x->domid, HVM_PARAM_STORE_PFN, &store) && store &&
	    xc_clear_domain_page(x->xch, x->domid, store) < 0)
		log_warnx(x->name, "xen: clearing the xenstore ring of domain %" PRIu32 ": %s",
			  x->domid, strerror(errno));
	return 0;
}
