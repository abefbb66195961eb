/*
 * console.c - the domain's PV console read by the backend itself, as
 * xenconsoled would (tools/console/daemon/io.c): the ring page named by
 * HVM_PARAM_CONSOLE_PFN, mapped from dom0, and the interdomain event
 * channel behind HVM_PARAM_CONSOLE_EVTCHN, bound here.  Bytes between
 * out_cons and out_prod go to the "console" channel (cfg.emit, which holds
 * them until their epoch is acknowledged); out_cons only moves past the
 * bytes emit took.  xenconsoled must not serve the same domain: the bind
 * fails then and open says so.
 *
 * The thread runs from the first resume; pause() drains the ring once the
 * domain is paused, so the position saved with a checkpoint (state.c)
 * is exactly the bytes emitted up to it, and a promoted replica goes on
 * from there (load_state puts that position back into its ring).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/xen/xen-internal.h" /* first: xenctrl.h sets up Xen's headers */
#include <xen/hvm/params.h>
#include <xen/io/console.h>
#include "common/log.h"

#define CONSOLE_POLL_MS 10

static struct xencons_interface *ring(struct xen_vm *x)
{
	return x->con_ring;
}

int xen_console_open(struct xen_vm *x)
{
	uint64_t pfn = 0, port = 0;
	xen_pfn_t arr[1];
	int err[1];

	if (xc_hvm_param_get(x->xch, x->domid, HVM_PARAM_CONSOLE_PFN, &pfn) < 0 || !pfn ||
	    xc_hvm_param_get(x->xch, x->domid, HVM_PARAM_CONSOLE_EVTCHN, &port) < 0 || !port) {
		xen_fail(x, "domain %" PRIu32 " has no PV console (options console=none?)",
			 x->domid);
		return -ENODEV;
	}
	arr[0] = pfn;
	x->con_ring = xenforeignmemory_map(x->fmem, x->domid, PROT_READ | PROT_WRITE, 1, arr, err);
	if (!x->con_ring || err[0]) {
		int r = x->con_ring ? err[0] : -errno;
		if (x->con_ring)
			xenforeignmemory_unmap(x->fmem, x->con_ring, 1);
		x->con_ring = NULL;
		xen_fail(x, "mapping the console ring (gfn %#" PRIx64 ") of domain %" PRIu32 ": %s",
			 pfn, x->domid, strerror(-r));
		return r < 0 ? r : -EIO;
	}
	x->con_gfn = pfn;
	x->con_remote_port = (uint32_t)port;
	x->xce = xenevtchn_open(x->logger, 0);
	if (!x->xce) {
		int r = -errno;
		xen_fail(x, "xenevtchn_open: %s", strerror(errno));
		return r;
	}
	xenevtchn_port_or_error_t lp =
	    xenevtchn_bind_interdomain(x->xce, x->domid, (evtchn_port_t)port);
	if (lp < 0) {
		int r = -errno;
		xen_fail(x,
			 "binding console event channel %" PRIu64 " of domain %" PRIu32
			 ": %s (is xenconsoled serving it? run the domain without "
			 "xenconsoled, or options console=none)",
			 port, x->domid, strerror(errno));
		return r;
	}
	x->con_local_port = lp;
	return 0;
}

void xen_console_close(struct xen_vm *x)
{
	if (x->xce) {
		if (x->con_local_port >= 0)
			xenevtchn_unbind(x->xce, (evtchn_port_t)x->con_local_port);
		xenevtchn_close(x->xce);
	}
	x->xce = NULL;
	x->con_local_port = -1;
	if (x->con_ring)
		xenforeignmemory_unmap(x->fmem, x->con_ring, 1);
	x->con_ring = NULL;
}

/* Emit what the guest has written; con_lock held. */
static void consume(struct xen_vm *x)
{
	struct xencons_interface *r = ring(x);
	char buf[sizeof(r->out)];
	XENCONS_RING_IDX cons, prod;
	uint32_t moved = 0;

	cons = __atomic_load_n(&r->out_cons, __ATOMIC_RELAXED);
	prod = __atomic_load_n(&r->out_prod, __ATOMIC_ACQUIRE);
	if (prod - cons > sizeof(r->out)) {
		/* as xenconsoled: a guest that corrupts its ring loses what is in it */
		log_warnx(x->name, "xen: console ring indices %u..%u out of range, skipped", cons,
			  prod);
		__atomic_store_n(&r->out_cons, prod, __ATOMIC_RELEASE);
		return;
	}
	while (cons != prod) {
		uint32_t idx = MASK_XENCONS_IDX(cons, r->out);
		uint32_t n = prod - cons;
		if (n > sizeof(r->out) - idx)
			n = sizeof(r->out) - idx;
		memcpy(buf, r->out + idx, n);
		if (x->cfg.emit && x->cfg.emit(x->cfg.emit_opaque, 0, buf, n) < 0)
			break; /* left in the ring: read again later, never lost */
		cons += n;
		moved += n;
		x->con_bytes += n;
	}
	if (!moved)
		return;
	__atomic_store_n(&r->out_cons, cons, __ATOMIC_RELEASE);
	if (x->con_local_port >= 0)
		xenevtchn_notify(x->xce, (evtchn_port_t)x->con_local_port);
}

void xen_console_drain(struct xen_vm *x)
{
	if (!x->con_ring)
		return;
	pthread_mutex_lock(&x->con_lock);
	consume(x);
	pthread_mutex_unlock(&x->con_lock);
}

static void *console_main(void *arg)
{
	struct xen_vm *x = arg;
	struct pollfd pfd = {.fd = xenevtchn_fd(x->xce), .events = POLLIN};

	while (!__atomic_load_n(&x->con_stop, __ATOMIC_ACQUIRE)) {
		xen_console_drain(x);
		if (poll(&pfd, 1, CONSOLE_POLL_MS) > 0 && (pfd.revents & POLLIN)) {
			xenevtchn_port_or_error_t p = xenevtchn_pending(x->xce);
			if (p >= 0)
				xenevtchn_unmask(x->xce, (evtchn_port_t)p);
		}
	}
	return NULL;
}

int xen_console_start(struct xen_vm *x)
{
	int r;

	if (!x->con_ring || x->con_started)
		return 0;
	x->con_stop = 0;
	if ((r = pthread_create(&x->con_thread, NULL, console_main, x))) {
		xen_fail(x, "console thread: %s", strerror(r));
		return -r;
	}
	x->con_started = 1;
	return 0;
}

void xen_console_stop(struct xen_vm *x)
{
	if (!x->con_started)
		return;
	__atomic_store_n(&x->con_stop, 1, __ATOMIC_RELEASE);
	pthread_join(x->con_thread, NULL);
	x->con_started = 0;
}

int xen_console_get_pos(struct xen_vm *x, uint32_t *out_cons_r)
{
	if (!x->con_ring)
		return -ENODEV;
	pthread_mutex_lock(&x->con_lock);
	*out_cons_r = __atomic_load_n(&ring(x)->out_cons, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&x->con_lock);
	return 0;
}

/* The replica: the ring page came with the epoch; its consumer position too. */
int xen_console_set_pos(struct xen_vm *x, uint32_t out_cons)
{
	if (!x->con_ring)
		return 0;
	pthread_mutex_lock(&x->con_lock);
	__atomic_store_n(&ring(x)->out_cons, out_cons, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&x->con_lock);
	return 0;
}
