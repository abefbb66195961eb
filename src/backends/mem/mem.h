/*
 * mem.h - the in-memory backend ("mem"): a fake hypervisor with a
 * deterministic software guest, so the core (engine, snapshots, streams)
 * can be tested on any machine, without /dev/kvm.
 *
 * Guest RAM is one anonymous mapping at gpa 0.  The guest is a loop of
 * "steps"; each step
 *   - performs `writes` page writes: a PRNG kept in the guest state picks a
 *     page and an 8-byte slot in it, and stores the running write counter
 *     (1, 2, 3, ... never 0, so every write changes its page), marking the
 *     page dirty while tracking is on;
 *   - emits one console line "mem: step=<n>\n" on channel 0, padded with
 *     '.' before the '\n' to line_bytes bytes when line_bytes is larger;
 *   - emits one record on each record channel 1..chans-1 (below);
 *   - with disk_writes > 0 and a disk (cfg->disks[0], HR_BF_DISKS): writes
 *     disk_writes stamped 4 KiB blocks to it, each reported to
 *     cfg->disk_write before the guest counts it done, and remembers each
 *     block's stamp in a table at the end of guest RAM (page writes never
 *     touch it); after load_state (a restore, a promotion) it reads the
 *     whole disk back and says "diskcheck blocks=B errors=E" on its console
 *     before its next step (mem-internal.h has the layout);
 *   - after step stop_after (if non-zero) the guest stops on its own:
 *     cfg->on_exit(HR_EXIT_DEBUG_PORT, 1), as a write of 0 to the
 *     isa-debug-exit port, and runs no further step.
 *
 * Who runs the steps (fixed at open by cfg->kernel_path, carried in the
 * state blob):
 *   - kernel_path "none": a hand-stepped guest.  Nothing runs on its own; a
 *     test calls hr_mem_guest_step() while the vm is resumed.
 *   - any other kernel_path (by convention "mem:"; no file is opened): a
 *     booted guest with its own vCPU thread.  The first resume starts it,
 *     later ones un-park it; pause returns only when it is parked between
 *     two steps, so memory and state are quiescent, as with KVM.  Steps are
 *     paced at steps_per_s (0 = as fast as possible).
 *   - kernel_path NULL: a replica.  It takes the mode, the guest parameters
 *     and the guest state (step counter, PRNG, write counter) from
 *     load_state, so after load_state + resume it continues the very same
 *     deterministic sequence the primary would have (promotion).  A replica
 *     resumed without load_state is an idle hand-stepped guest.
 *
 * cfg->cmdline (the guest's, whitespace-separated key=value; carried in the
 * state blob, so a replica needs none): steps_per_s=N (default 1000),
 * writes=N (default 16, thread mode; hr_mem_guest_step takes its own),
 * line_bytes=N (default 0), stop_after=N (default 0 = never),
 * disk_writes=N (default 0, at most 4096: stamped blocks per step),
 * disk_flush=0|1 (default 0: 1 ends each step that wrote with a flush,
 * reported as HR_DW_FLUSH).  An unknown
 * key or a bad value fails open with -EINVAL and a last_error naming it.
 *
 * cfg->options (backend knobs "k=v,k=v"): map=direct (default: mem_layout
 * gives the mapping's hva) | map=batch (hva NULL: the core must use
 * map_pages / unmap_pages; a replica, which the core writes through its
 * mapping, ignores it: it arrives with the primary's options); fill=1 (a primary's RAM holds
 * data from open on, every byte of page g being g % 255 + 1, as a booted guest's RAM would: the
 * live phase then has all of it to send; a replica ignores it); chans=N, 1..HR_MAX_CHANNELS
 * (default 1): channel 0 is "console" (HR_CHAN_CONSOLE), channels 1.. are "net1", "net2", ...
 * (HR_CHAN_NET, records of at most HR_MEM_RECORD_MAX_BYTES); save_delay_ms=N (default 0):
 * save_state sleeps N ms first, a checkpoint pause stretched for the liveness tests;
 * save_delay_from=K: only from the K-th save on (counting from 0; default 0: every save).  A
 * replica must be opened with the same chans= as its primary (load_state refuses another count with
 * -HR_EBADSTATE).
 *
 * Record of channel c >= 1 at step s: hr_mem_record_bytes(c, s) bytes;
 * bytes 0..7 are s (le64), bytes 8..11 are c (le32), and byte i >= 12 is
 * (uint8_t)(s * 131 + c * 31 + i).
 *
 * Features: HR_BF_DIRTY_LIVE (dirty_fetch is safe while the vCPU thread
 * runs: a step stores its data and sets its dirty bits under the lock that
 * dirty_fetch takes, so a step is reported by the first fetch that starts
 * after it), HR_BF_MAP_BATCH (with map=batch), HR_BF_DISKS (raw images
 * opened with src/disk/image.h, a replica's too; only disk 0 is written;
 * writes are synchronous within a step, so pause drains them; the state
 * blob, version 3, carries disk_writes and disk 0's size in blocks, and a
 * replica with another disk refuses it).  save_state and load_state
 * need a paused vm (-EBUSY otherwise).
 */
#ifndef HR_MEM_H
#define HR_MEM_H

#include <stdint.h>

#include "backends/backend.h"

extern const struct hr_backend_ops hr_mem_ops;

#define HR_MEM_RECORD_MAX_BYTES 1514u

/* Length of the record of channel chan (>= 1) at step (>= 1): 60..1514. */
static inline size_t hr_mem_record_bytes(unsigned chan, uint64_t step)
{
	return 60 + (size_t)((step * 7 + chan * 131) % (HR_MEM_RECORD_MAX_BYTES - 60 + 1));
}

/*
 * A hand-stepped guest (kernel "none", or a replica loaded from one): one
 * step with nr_writes writes, from the calling thread.  -EBUSY when the vm
 * is paused, when the guest has stopped (stop_after), or when the guest
 * runs on its own vCPU thread (there would be two writers).  Not
 * thread-safe against pause/resume/save/load on the same vm (the caller is
 * the "vCPU"); dirty_fetch may run concurrently.
 */
int hr_mem_guest_step(struct hr_vm *vm, unsigned nr_writes);

/* Mappings handed out by map_pages and not yet unmapped (tests: 0 at the end). */
unsigned hr_mem_live_maps(struct hr_vm *vm);

#endif
