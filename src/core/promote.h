/*
 * promote.h - turning a replica into the running VM: load the committed
 * epoch's backend state, release the output the primary still held (the
 * sink drops what it already had, by offset), continue every output
 * channel at the offsets the primary reached, and resume.
 */
#ifndef HR_CORE_PROMOTE_H
#define HR_CORE_PROMOTE_H

#include "backends/backend.h"
#include "core/engine.h"
#include "core/outbuf.h"

/* state/len: the committed STATE blob (an envelope).  next_offsets_r gets
 * each channel's next offset (HR_MAX_CHANNELS entries).  loaded_ns_r
 * (OPTIONAL): when the backend state was loaded (hr_now_ns()).  0 or
 * -errno / -HR_EBADSTATE; the VM is running on success. */
int hr_promote(const char *vm, const struct hr_backend_ops *ops, struct hr_vm *hvm,
	       const void *state, size_t len, hr_output_sink_fn sink, void *sink_opaque,
	       uint64_t *next_offsets_r, uint64_t *loaded_ns_r);

#endif
