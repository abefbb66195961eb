/*
 * mem.h - the in-memory backend ("mem"): a fake hypervisor with a
 * deterministic software guest, so the core can be tested without /dev/kvm.
 *
 * The guest does nothing on its own.  A test drives it with
 * hr_mem_guest_step(), which performs page writes chosen by a PRNG kept in
 * the guest state (so a replica restored from that state writes the same
 * pages with the same values), marks them dirty while tracking is on, and
 * prints one console line per call.
 */
#ifndef HR_MEM_H
#define HR_MEM_H

#include "backends/backend.h"

extern const struct hr_backend_ops hr_mem_ops;

/*
 * Perform nr_writes deterministic guest writes: each picks a page and an
 * 8-byte slot in it with the PRNG and stores the running write counter
 * (1, 2, 3, ... never 0, so every write changes its page).  Then emits
 * "mem: step=<n>\n" through cfg->emit (channel 0, "console").  Only allowed while the vm
 * is running (resumed): -EBUSY when paused.  Not thread-safe against other
 * hooks on the same vm (the test is the "vCPU").
 */
int hr_mem_guest_step(struct hr_vm *vm, unsigned nr_writes);

#endif
