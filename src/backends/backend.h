/*
 * backend.h - the one interface between the hypervisor-agnostic core and a
 * hypervisor backend (KVM, Xen, the in-memory test backend).
 *
 * Contract (read before implementing a backend):
 *
 *  - Every hook is mandatory unless marked OPTIONAL.  An OPTIONAL hook may be
 *    NULL; the core checks before calling it.
 *  - Every hook returns 0 on success or a negative errno / HR_E* code.  No
 *    hook calls exit() or abort(); a failure must reach the caller (a failed
 *    checkpoint is an input to failover logic, not a reason to die).
 *  - `close` is called exactly once for every successful or failed `open`
 *    that returned a non-NULL vm, and must cope with a half-built vm.
 *  - Hooks are called from one control thread per vm, never concurrently for
 *    the same vm.  The output callbacks in struct hr_vm_config are called
 *    from backend threads (vCPU threads) and must not call back into the
 *    backend.
 *  - Guest memory is exposed as host-virtual mappings (struct hr_mem_region):
 *    the core copies pages with memcpy, so page data never goes through a
 *    hook call.  A mapping stays valid from `open` to `close`.
 *  - Page numbers ("gfn") are guest-physical address >> 12.  Dirty sets are
 *    bitmaps indexed by gfn, sized hr_vm_nr_gfns() bits.
 */
#ifndef HR_BACKEND_H
#define HR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define HR_PAGE_SHIFT 12
#define HR_PAGE_SIZE  4096u

struct hr_vm; /* opaque, owned by the backend */

/* How a backend tracks writes.  A backend may support several. */
enum hr_dirty_mode {
	HR_DIRTY_BITMAP = 0, /* KVM: KVM_GET_DIRTY_LOG + manual KVM_CLEAR_DIRTY_LOG */
	HR_DIRTY_RING = 1,   /* KVM: per-vCPU dirty rings */
};

/* Why the guest stopped on its own (hr_vm_config.on_exit). */
enum hr_exit_reason {
	HR_EXIT_DEBUG_PORT = 1, /* wrote isa-debug-exit port; code = (value << 1) | 1 */
	HR_EXIT_SHUTDOWN = 2,	/* triple fault / reset */
	HR_EXIT_HALT = 3,	/* every vCPU halted with interrupts off */
	HR_EXIT_ERROR = 4,	/* internal error: emulation failure, failed ioctl */
};

/* Feature bits (hr_backend_ops.features). */
#define HR_BF_DIRTY_RING (1u << 0) /* HR_DIRTY_RING is available */

typedef void (*hr_output_fn)(void *opaque, const void *buf, size_t len);
typedef void (*hr_exit_fn)(void *opaque, enum hr_exit_reason why, int code);

struct hr_vm_config {
	const char *name;	 /* VM name: carried in every log line */
	uint64_t mem_bytes;	 /* guest RAM; backed lazily */
	unsigned nr_vcpus;	 /* 1..HR_MAX_VCPUS */
	const char *kernel_path; /* multiboot/PVH ELF; NULL = replica: shape only, no code loaded */
	const char *cmdline;	 /* guest command line, may be NULL */
	enum hr_dirty_mode dirty_mode;
	unsigned
	    dirty_ring_entries; /* HR_DIRTY_RING: entries per vCPU ring (power of 2), 0 = default */
	hr_output_fn console_out; /* guest console bytes (UART THR writes) */
	void *console_opaque;
	hr_exit_fn on_exit; /* OPTIONAL: guest stopped on its own */
	void *exit_opaque;
};

#define HR_MAX_VCPUS 64

/* One contiguous range of guest-physical memory and where it is mapped. */
struct hr_mem_region {
	uint64_t gpa;
	uint64_t bytes;
	uint8_t *hva;
};

struct hr_backend_ops {
	const char *name; /* "kvm", "xen", "mem" */
	unsigned features;

	/*
	 * Build a vm of the configured shape.  With cfg->kernel_path the guest
	 * is loaded and ready to run but not running (call resume); without
	 * it, the vm is an empty replica waiting for memory and state.  On
	 * failure *vm_r may still be set and must be passed to close.
	 */
	int (*open)(struct hr_vm **vm_r, const struct hr_vm_config *cfg);

	/* Tear down; runs even after a failed open (vm may be NULL). */
	void (*close)(struct hr_vm *vm);

	/*
	 * Stop every vCPU.  Returns only when no vCPU is inside the
	 * hypervisor's run loop, so memory and state are quiescent.  Pausing a
	 * paused vm is a no-op.
	 */
	int (*pause)(struct hr_vm *vm);

	/* Let the vCPUs run (first call starts them). */
	int (*resume)(struct hr_vm *vm);

	/* The guest-physical layout; valid until close. */
	int (*mem_layout)(struct hr_vm *vm, const struct hr_mem_region **regions_r, unsigned *nr_r);

	/*
	 * Start write tracking: from now on every guest write to a page is
	 * reported by a later dirty_fetch.  Pages written before start are
	 * not reported.
	 */
	int (*dirty_start)(struct hr_vm *vm);
	int (*dirty_stop)(struct hr_vm *vm);

	/*
	 * Collect-and-clear: OR into `bitmap` (hr_vm_nr_gfns bits) every gfn
	 * written since the previous fetch (or dirty_start), and re-arm
	 * tracking for them.  Must be called with the vm paused so that no
	 * write is lost between collecting and re-arming.
	 */
	int (*dirty_fetch)(struct hr_vm *vm, uint64_t *bitmap);

	/*
	 * Save vCPU + device + platform state as one opaque, versioned,
	 * self-describing blob (malloc'd, caller frees).  Paused vm only.
	 */
	int (*save_state)(struct hr_vm *vm, void **blob_r, size_t *len_r);

	/*
	 * Load a blob from save_state into a paused vm of the same shape.
	 * Rejects a blob of another version or shape with -HR_EBADSTATE.
	 */
	int (*load_state)(struct hr_vm *vm, const void *blob, size_t len);

	/* OPTIONAL: deliver console input to the guest at once. */
	int (*console_in)(struct hr_vm *vm, const void *buf, size_t len);

	/* OPTIONAL: human-readable one-line description of the last error. */
	const char *(*last_error)(struct hr_vm *vm);
};

/* The registry: every backend built into this binary, NULL-terminated. */
extern const struct hr_backend_ops *const hr_backends[];

/* Look a backend up by name; NULL if unknown or not built (see hr_backend_why_missing). */
const struct hr_backend_ops *hr_backend_find(const char *name);

/* For a known-but-not-built backend, the configure flag that enables it; else NULL. */
const char *hr_backend_why_missing(const char *name);

/* Highest gfn + 1 of a layout. */
uint64_t hr_layout_nr_gfns(const struct hr_mem_region *regions, unsigned nr);

/* Find the mapping of one guest page; NULL if gfn is not RAM. */
uint8_t *hr_layout_gfn_hva(const struct hr_mem_region *regions, unsigned nr, uint64_t gfn);

#endif
