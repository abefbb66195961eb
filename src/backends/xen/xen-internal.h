/*
 * xen-internal.h - shared by the Xen backend's files.
 *
 * On Xen hareplicate is not the VMM: a domain runs under Xen and the
 * backend drives it from dom0.
 *
 *   xen.c      open (attach to a domain by id or name, or build a replica),
 *              close, pause/resume, layout, channels, the ops table
 *   mem.c      the layout (probed populated gfns), batched foreign mappings,
 *              the replica's permanent mapping, log-dirty
 *   state.c    the state blob: HVM context (xc_domain_hvm_getcontext),
 *              HVM params, console ring position
 *   replica.c  libxl: the replica domain, built paused with the same shape
 *   console.c  the domain's PV console ring read by the backend itself (as
 *              xenconsoled would), into the "console" output channel
 *   suspend.c  how a checkpoint stops the guest: a cooperative suspend (as
 *              Remus), so that a promoted copy rebinds its event channels
 *
 * Locking: the hooks run on one control thread.  The console thread reads
 * the ring and calls cfg.emit under con_lock; pause() takes con_lock after
 * the domain is paused and drains what is left, so a checkpoint's console
 * position (state.c) matches the bytes emitted before it.
 */
#ifndef HR_XEN_INTERNAL_H
#define HR_XEN_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#define __XEN_TOOLS__ 1 /* domctl / sysctl: the toolstack's interfaces */
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xentoollog.h>

#include "backends/backend.h"

#define XEN_MAX_REGIONS 16

struct libxl__ctx;
struct xs_handle;

struct xen_vm {
	char name[64];
	struct hr_vm_config cfg; /* strings not kept (see open) */
	char kernel[256];	 /* options kernel=: what libxl builds a replica with */
	char replica_name[256];
	int console_ring; /* options console=ring (default) | none */
	int cooperative;  /* options checkpoint=suspend (default) | pause */
	uint64_t suspend_timeout_ms;

	xc_interface *xch;
	xenforeignmemory_handle *fmem;
	xentoollog_logger *logger;
	struct libxl__ctx *ctx;
	uint32_t domid;
	int have_domid;
	int built;		 /* this vm built the domain: destroyed at close */
	int is_replica;		 /* built empty: filled by epochs */
	int promoted;		 /* a replica that was resumed once */
	pthread_t rename_thread; /* the promoted replica takes the VM's name (replica.c) */
	int rename_started;
	volatile int rename_stop;
	int running;
	int suspended;	      /* stopped in SHUTDOWN_suspend by a checkpoint */
	int loaded_suspended; /* replica: the loaded checkpoint was a suspended guest */
	struct xs_handle *xsh;

	/* layout (mem.c) */
	uint64_t p2m_pages; /* max gpfn + 1 */
	struct hr_mem_region regions[XEN_MAX_REGIONS];
	unsigned nr_regions;
	uint8_t *replica_map[XEN_MAX_REGIONS]; /* replica: permanent mappings */

	/* log-dirty (mem.c) */
	int tracking;
	xc_hypercall_buffer_t dirty_hbuf; /* bitmap: one bit per gfn of the p2m */
	int dirty_hbuf_pages;

	/* console (console.c) */
	pthread_mutex_t con_lock;
	pthread_t con_thread;
	int con_started;
	volatile int con_stop;
	xenevtchn_handle *xce;
	int con_local_port; /* -1: not bound, polling */
	uint64_t con_gfn;
	uint32_t con_remote_port;
	void *con_ring;	    /* struct xencons_interface * */
	uint64_t con_bytes; /* emitted since the VM started (carried in the blob) */

	struct hr_chan_desc chans[1];
	char last_error[256];
};

static inline struct xen_vm *to_xen(struct hr_vm *vm)
{
	return (struct xen_vm *)vm;
}

void xen_fail(struct xen_vm *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* mem.c */
int xen_layout_probe(struct xen_vm *x);
int xen_replica_map(struct xen_vm *x);
void xen_mem_fini(struct xen_vm *x);
int xen_map_pages(struct hr_vm *vm, const uint64_t *gfns, unsigned nr, int writable,
		  uint8_t **ptrs_r, void **cookie_r);
void xen_unmap_pages(struct hr_vm *vm, void *cookie);
int xen_dirty_start(struct hr_vm *vm);
int xen_dirty_stop(struct hr_vm *vm);
int xen_dirty_fetch(struct hr_vm *vm, struct hr_dirty_bits *d);

/* state.c */
int xen_save_state(struct hr_vm *vm, void **blob_r, size_t *len_r);
int xen_load_state(struct hr_vm *vm, const void *blob, size_t len);

/* replica.c */
int xen_libxl_open(struct xen_vm *x);
void xen_libxl_close(struct xen_vm *x);
int xen_lookup_domain(struct xen_vm *x, const char *spec);
int xen_replica_build(struct xen_vm *x, const char *kernel, const struct hr_vm_config *cfg);
void xen_replica_destroy(struct xen_vm *x);
int xen_replica_promote(struct xen_vm *x);
void xen_replica_rename_stop(struct xen_vm *x);

/* suspend.c */
int xen_suspend_open(struct xen_vm *x);
void xen_suspend_close(struct xen_vm *x);
int xen_checkpoint_stop(struct xen_vm *x);
int xen_checkpoint_go(struct xen_vm *x);
void xen_checkpoint_settle(struct xen_vm *x);
int xen_replica_prepare(struct xen_vm *x);

/* console.c */
int xen_console_open(struct xen_vm *x);
void xen_console_close(struct xen_vm *x);
int xen_console_start(struct xen_vm *x);
void xen_console_stop(struct xen_vm *x);
void xen_console_drain(struct xen_vm *x);
int xen_console_get_pos(struct xen_vm *x, uint32_t *out_cons_r);
int xen_console_set_pos(struct xen_vm *x, uint32_t out_cons);

#endif
