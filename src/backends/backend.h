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
 *    the same vm.  The emit and on_exit callbacks in struct hr_vm_config are
 *    called from backend threads (vCPU threads) and must not call back into
 *    the backend.
 *  - Guest memory: by default every region of mem_layout has a host mapping
 *    (hva) valid from `open` to `close`, and the core copies pages with
 *    memcpy, so page data never goes through a hook call.  A backend with
 *    HR_BF_MAP_BATCH (Xen: foreign pages are mapped in batches) leaves hva
 *    NULL and implements map_pages / unmap_pages instead; the core's
 *    guestmem module hides the difference.  A replica's RAM (opened
 *    without a kernel) reads zero after `open`: the core never sends a page
 *    that is zero on the primary.
 *  - Page numbers ("gfn") are guest-physical address >> 12.  A dirty set is
 *    a bitmap indexed by gfn (hr_layout_nr_gfns bits) plus the list of its
 *    non-zero words (struct hr_dirty_bits), so that finding 30 dirty pages
 *    of a 16 GiB guest does not scan 64 K words.
 *  - Output: a backend declares its output channels (console bytes, network
 *    frames, disk-write completions; hook `channels`) and hands everything
 *    the guest emits to cfg->emit, channel by channel, in the order the
 *    guest produced it.  The core holds it until the epoch that produced it
 *    is acknowledged (output commit) and then releases it in order.  A
 *    backend never writes guest output anywhere else: a record channel
 *    that has a wire of its own (KVM's net channels: a TAP) gets its
 *    released records back through `output_deliver`.
 *  - Backend-specific knobs come in cfg->options ("key=value,key=value");
 *    a backend refuses an unknown key or value in `open` with -EINVAL and a
 *    last_error naming it.  KVM:
 *      dirty=bitmap|ring, ring_entries=N   write tracking (dirty.c)
 *      tap=IFNAME                          a virtio-net device (virtio-mmio,
 *                                          modern) on TAP IFNAME, output
 *                                          channel "net0" (HR_CHAN_NET, frames
 *                                          of at most 1518 bytes)
 *      mac=52:54:00:12:34:56               its MAC (default: 52:54:00 and 24
 *                                          bits of a hash of the VM name)
 *    KVM places virtio-mmio device i (the virtio-net first, then a
 *    virtio-blk per cfg->disks[i]) at guest-physical 0xd0000000 + i *
 *    0x1000 (0x200 bytes of registers) with its interrupt on GSI 5 + i
 *    (level; i < 3, then 9, 10: GSI 8 is the RTC's), and names each in
 *    its ACPI tables (kvm/acpi.h: a DSDT device _HID "LNRO0005", which a
 *    stock Linux's virtio_mmio module binds).  It also appends
 *    "virtio_mmio.device=4K@0xd0000000:5" (one per device) to the guest
 *    command line for guests without ACPI; a kernel that honours both
 *    registers each device once (the second claim of the same registers
 *    fails with EBUSY).  A replica is opened with its own
 *    tap= (the TAP is not state; the MAC is, and comes from the blob).
 */
#ifndef HR_BACKEND_H
#define HR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define HR_PAGE_SHIFT 12
#define HR_PAGE_SIZE  4096u

struct hr_vm; /* opaque, owned by the backend */

/* Why the guest stopped on its own (hr_vm_config.on_exit). */
enum hr_exit_reason {
	HR_EXIT_DEBUG_PORT = 1, /* wrote isa-debug-exit port; code = (value << 1) | 1 */
	HR_EXIT_SHUTDOWN = 2,	/* triple fault / reset */
	HR_EXIT_HALT = 3,	/* every vCPU halted with interrupts off */
	HR_EXIT_ERROR = 4,	/* internal error: emulation failure, failed ioctl */
};

/* Feature bits (hr_backend_ops.features). */
#define HR_BF_DIRTY_RING (1u << 0) /* KVM: options dirty=ring is available */
#define HR_BF_DIRTY_LIVE (1u << 1) /* dirty_fetch may be called while the guest runs */
#define HR_BF_MAP_BATCH	 (1u << 2) /* no permanent hva: use map_pages / unmap_pages */
#define HR_BF_ATTACH	 (1u << 3) /* open can attach to an existing VM (cfg->attach) */
/* The guest is built into the backend: cfg->kernel_path names it and is no
 * file (mem: "mem:" is its software guest); the CLI and the daemon pass it
 * as given instead of requiring a readable absolute path. */
#define HR_BF_BUILTIN_GUEST (1u << 4)
/* The backend gives the guest cfg->disks and keeps the disk contract below;
 * a backend without it refuses nr_disks > 0 in open with -EOPNOTSUPP. */
#define HR_BF_DISKS (1u << 5)

/*
 * Output channels.  A channel is either a byte stream (records may be
 * merged or split at any byte: the console) or a record channel (one emit
 * call = one record, never split or merged: a network frame, a disk-write
 * completion).  Every channel has its own offsets: the byte offset of each
 * emitted byte since the VM was first started, carried across failover.
 */
enum hr_chan_kind {
	HR_CHAN_CONSOLE = 1, /* byte stream */
	HR_CHAN_NET = 2,     /* records: Ethernet frames */
	HR_CHAN_DISK = 3,    /* records: write completions the guest can observe */
};

#define HR_MAX_CHANNELS 8

struct hr_chan_desc {
	const char *name;	   /* "console", "net0", ...: unique per vm */
	enum hr_chan_kind kind;	   /* HR_CHAN_CONSOLE is a byte stream, others records */
	uint32_t max_record_bytes; /* record channels: largest record (> 0) */
};

/* Is this channel a record channel (boundaries kept)? */
static inline int hr_chan_is_records(const struct hr_chan_desc *c)
{
	return c->kind != HR_CHAN_CONSOLE;
}

/*
 * Guest output of channel `chan` (index into the channels array).  Returns
 * 0 when the core holds it, or -ENOBUFS when it could not be held within
 * the core's limits (a record channel's device may then drop the record as
 * a congested link would; byte streams are never refused: the core makes
 * the emitting vCPU wait for an early checkpoint instead).
 */
typedef int (*hr_emit_fn)(void *opaque, unsigned chan, const void *buf, size_t len);
typedef void (*hr_exit_fn)(void *opaque, enum hr_exit_reason why, int code);

/*
 * Disks.  A backend with HR_BF_DISKS gives the guest one block device per
 * cfg->disks[i] (KVM: virtio-blk) on the raw image at its path, and keeps
 * this contract (the core builds disk replication on it; docs/design.md,
 * "Disks"):
 *
 *  - The guest's writes go to the local image as the guest asks.  Every
 *    write that succeeded is reported to cfg->disk_write (data, zeroes,
 *    discard; a completed flush as HR_DW_FLUSH) after the image holds it
 *    and BEFORE the guest can observe its completion (used ring entry,
 *    interrupt), from whichever backend thread completes it.
 *  - `pause` returns only when no disk request is in flight: each one has
 *    completed and been reported, or has not been taken from its ring.  A
 *    write is therefore reported during the epoch in which the guest can
 *    first see it done, and the state blob holds no half-done request.
 *  - A failed host I/O completes the guest's request with an I/O error
 *    (virtio-blk: VIRTIO_BLK_S_IOERR), is logged naming the VM, the disk
 *    and the errno, and is not reported.  A disk_write that returns < 0
 *    (the core cannot hold the write) fails the request the same way.
 *  - A replica (no kernel) opens its images but never writes them: the
 *    core applies committed writes itself (src/disk/image.h).
 */
#define HR_MAX_DISKS 4

struct hr_disk_spec {
	const char *path;   /* raw image: a regular file or a block device */
	const char *serial; /* the device's serial (virtio-blk GET_ID, <= 20 bytes); NULL */
	int readonly;	    /* the guest cannot write (virtio-blk VIRTIO_BLK_F_RO) */
};

#define HR_DW_ZEROES (1u << 0) /* buf is NULL: len bytes at off now read as zero */
#define HR_DW_FLUSH  (1u << 1) /* a guest flush completed; off, len 0, buf NULL */

/* One completed guest write of disk `disk` (index into cfg->disks): 0, or
 * < 0 when the core cannot hold it (the request then fails). */
typedef int (*hr_disk_write_fn)(void *opaque, unsigned disk, uint64_t off, const void *buf,
				size_t len, unsigned flags);

struct hr_vm_config {
	const char *name;	 /* VM name: carried in every log line */
	uint64_t mem_bytes;	 /* guest RAM; backed lazily */
	unsigned nr_vcpus;	 /* 1..HR_MAX_VCPUS */
	const char *kernel_path; /* multiboot/PVH ELF or Linux bzImage; NULL = replica: shape
				    only, no code loaded */
	const char *initrd_path; /* Linux bzImage: initial ramdisk loaded with it; may be NULL */
	const char *cmdline;	 /* guest command line, may be NULL */
	const char *attach;	 /* HR_BF_ATTACH: the existing VM (e.g. a Xen domid); NULL */
	const char *options;	 /* backend knobs "k=v,k=v" (see the contract above); NULL */
	hr_emit_fn emit;	 /* guest output, per channel; NULL = discard */
	void *emit_opaque;
	hr_exit_fn on_exit; /* OPTIONAL: guest stopped on its own */
	void *exit_opaque;
	const struct hr_disk_spec *disks; /* HR_BF_DISKS: the guest's disks; NULL */
	unsigned nr_disks;		  /* 0..HR_MAX_DISKS */
	hr_disk_write_fn disk_write;	  /* completed guest writes; NULL = not replicated */
	void *disk_opaque;
};

#define HR_MAX_VCPUS	   64
#define HR_MAP_BATCH_PAGES 1024

/*
 * A dirty set being filled: bitmap (one bit per gfn) and the indices of its
 * non-zero words.  The owner (the core's dirtyset module) sizes both for
 * every word of the layout; backends add bits only with hr_dirty_mark_word.
 */
struct hr_dirty_bits {
	uint64_t *bitmap;
	uint64_t *words;
	uint64_t nr_words;
};

/* OR bits into word w of the set, listing w the first time it becomes non-zero. */
static inline void hr_dirty_mark_word(struct hr_dirty_bits *d, uint64_t w, uint64_t bits)
{
	if (!bits)
		return;
	if (!d->bitmap[w])
		d->words[d->nr_words++] = w;
	d->bitmap[w] |= bits;
}

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

	/*
	 * The guest-physical layout; valid until close.  hva is NULL in every
	 * region when the backend has HR_BF_MAP_BATCH.
	 */
	int (*mem_layout)(struct hr_vm *vm, const struct hr_mem_region **regions_r, unsigned *nr_r);

	/*
	 * Start write tracking: from now on every guest write to a page is
	 * reported by a later dirty_fetch.  Pages written before start are
	 * not reported.
	 */
	int (*dirty_start)(struct hr_vm *vm);
	int (*dirty_stop)(struct hr_vm *vm);

	/*
	 * Collect-and-clear: add to `d` (hr_dirty_mark_word) every gfn
	 * written since the previous fetch (or dirty_start), and re-arm
	 * tracking for them.  Without HR_BF_DIRTY_LIVE it must be called
	 * with the vm paused.  With it, it may also be called while the guest
	 * runs: a write racing the fetch is then reported by this fetch or by
	 * the next one, never lost (read the page contents after the fetch).
	 */
	int (*dirty_fetch)(struct hr_vm *vm, struct hr_dirty_bits *d);

	/*
	 * OPTIONAL (HR_BF_MAP_BATCH only): map nr guest pages (ptrs_r[i] for
	 * gfns[i]; NULL for a gfn that is not RAM), writable or not, until
	 * unmap_pages(cookie).  At most HR_MAP_BATCH_PAGES pages at once.
	 */
	int (*map_pages)(struct hr_vm *vm, const uint64_t *gfns, unsigned nr, int writable,
			 uint8_t **ptrs_r, void **cookie_r);
	void (*unmap_pages)(struct hr_vm *vm, void *cookie);

	/*
	 * The output channels of this vm (stable from open to close; the
	 * index is the `chan` of emit).  At most HR_MAX_CHANNELS.
	 */
	int (*channels)(struct hr_vm *vm, const struct hr_chan_desc **chans_r, unsigned *nr_r);

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

	/*
	 * OPTIONAL: put one released record of record channel `chan` on its
	 * wire (KVM: a net channel's frame is written to the VM's TAP).  The
	 * core's output sink calls it, in release order, for records the
	 * backup has acknowledged; it is never called for byte streams.
	 * Unlike the other hooks it may be called from any one thread (the
	 * sink) concurrently with the control thread's hooks, paused or
	 * running, between open and close, and from inside emit (a promoted
	 * VM without a backup releases at once).  Returns 0, -EINVAL (no such
	 * channel, or a record of a size the channel never emits), -EAGAIN
	 * (the wire's queue is full: the record is lost, as on a congested
	 * link) or another -errno (lost as well; the caller logs it).
	 */
	int (*output_deliver)(struct hr_vm *vm, unsigned chan, const void *buf, size_t len);

	/* OPTIONAL: human-readable one-line description of the last error. */
	const char *(*last_error)(struct hr_vm *vm);

	/*
	 * OPTIONAL (with cpu_check): the CPU the guest sees, as an opaque
	 * record of this backend (KVM: its CPUID table, cpuid.c) of at most
	 * HR_CPU_MODEL_MAX bytes (malloc'd, caller frees).  A primary sends
	 * it in its HELLO; a vm restored from another host's state reports
	 * the CPU it was given there.
	 */
	int (*cpu_model)(struct hr_vm *vm, void **model_r, size_t *len_r);

	/*
	 * OPTIONAL (with cpu_model): can this host give vm's guest the CPU of
	 * model (another host's cpu_model)?  0, -HR_ECPU with why naming what
	 * is missing (KVM: the CPUID leaf, register and bits), or -EINVAL for
	 * a record this backend does not understand.  A backup calls it on
	 * its empty replica before the first epoch.
	 */
	int (*cpu_check)(struct hr_vm *vm, const void *model, size_t len, char *why,
			 size_t why_size);

	/*
	 * OPTIONAL: why this host cannot run VMs of this backend at all (Xen:
	 * not a dom0), or NULL when it can.  Asked before anything is started,
	 * so that such a start is refused with the reason instead of failing
	 * half-way (hr_backend_why_missing reports it).
	 */
	const char *(*host_unavailable)(void);
};
#define HR_CPU_MODEL_MAX 16384

/* The registry: every backend built into this binary, NULL-terminated. */
extern const struct hr_backend_ops *const hr_backends[];

/* Look a backend up by name; NULL if unknown or not built (see hr_backend_why_missing). */
const struct hr_backend_ops *hr_backend_find(const char *name);

/* For a known-but-not-built backend, or one this host cannot run
 * (host_unavailable), why it is missing; else NULL. */
const char *hr_backend_why_missing(const char *name);

/* Highest gfn + 1 of a layout. */
uint64_t hr_layout_nr_gfns(const struct hr_mem_region *regions, unsigned nr);

/* Find the mapping of one guest page; NULL if gfn is not RAM (or not mapped). */
uint8_t *hr_layout_gfn_hva(const struct hr_mem_region *regions, unsigned nr, uint64_t gfn);

/*
 * Parse the next "key=value" of a backend options string: *pos walks it.
 * Returns 1 with key/value copied (NUL-terminated, truncated to the sizes),
 * 0 at the end, -EINVAL on an item without '='.
 */
int hr_options_next(const char **pos, char *key, size_t key_size, char *val, size_t val_size);

#endif
