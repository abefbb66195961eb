/*
 * state.c - the Xen backend's state blob.  What `xl migrate` carries for an
 * HVM container besides memory (tools/libs/guest xg_sr_save_x86_hvm.c): the
 * HVM context (vCPUs, LAPICs, IOAPIC, PIT, RTC, MTRRs, XSAVE: one
 * xc_domain_hvm_getcontext blob), the TSC parameters, and the non-zero HVM
 * params that name the special pages.  (The CPUID / MSR policies are not
 * carried: primary and replica are built by the same libxl code with the
 * same config.)  We add the console ring position this backend consumed
 * up to (the ring itself is guest memory and travels as pages).
 *
 * Blob, little-endian:
 *   u32 magic "XNST", u32 version (1), u32 nr_vcpus, u32 header bytes (64),
 *   u64 mem_bytes, u32 console out_cons, u32 console valid (0/1),
 *   u32 nr_params, u32 hvm context bytes,
 *   u32 tsc_mode, u32 gtsc_khz, u64 elapsed_nsec, u32 incarnation
 *   (xc_domain_get_tsc_info: xg_sr's TSC_INFO record), u32 suspended (1: the
 *   guest was stopped in its suspend hypercall, suspend.c),
 *   nr_params x { u32 index, u32 zero, u64 value },
 *   the HVM context as Xen gave it.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backends/xen/xen-internal.h" /* first: xenctrl.h sets up Xen's headers */
#include <xen/hvm/params.h>
#include "common/err.h"
#include "common/log.h"
#include "common/unaligned.h"

#define XEN_STATE_MAGIC	  0x54534e58u /* "XNST" */
#define XEN_STATE_VERSION 1u
#define XEN_STATE_HDR	  64u
#define XEN_MAX_CTX_BYTES (16u << 20)

/*
 * The params a receiver must see again (xg_sr's list), and the event
 * callback the guest registered (Xen's restore leaves that to a guest that
 * knows it was suspended; ours was only paused).
 */
static const uint32_t params[] = {
    HVM_PARAM_STORE_PFN,
    HVM_PARAM_IOREQ_PFN,
    HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN,
    HVM_PARAM_MONITOR_RING_PFN,
    HVM_PARAM_SHARING_RING_PFN,
    HVM_PARAM_VM86_TSS_SIZED,
    HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_ACPI_IOPORTS_LOCATION,
    HVM_PARAM_VIRIDIAN,
    HVM_PARAM_IDENT_PT,
    HVM_PARAM_VM_GENERATION_ID_ADDR,
    HVM_PARAM_IOREQ_SERVER_PFN,
    HVM_PARAM_NR_IOREQ_SERVER_PAGES,
    HVM_PARAM_X87_FIP_WIDTH,
    HVM_PARAM_MCA_CAP,
    HVM_PARAM_CALLBACK_IRQ,
};
#define NR_PARAMS (sizeof(params) / sizeof(params[0]))

int xen_save_state(struct hr_vm *vm, void **blob_r, size_t *len_r)
{
	struct xen_vm *x = to_xen(vm);
	uint64_t vals[NR_PARAMS];
	uint32_t idx[NR_PARAMS], nr = 0, out_cons = 0;
	int ctx_bytes, valid;
	uint8_t *b, *p;

	*blob_r = NULL;
	if (x->running) {
		xen_fail(x, "save_state on a running vm");
		return -EBUSY;
	}
	for (unsigned i = 0; i < NR_PARAMS; i++) {
		uint64_t v = 0;
		if (!xc_hvm_param_get(x->xch, x->domid, params[i], &v) && v) {
			idx[nr] = params[i];
			vals[nr++] = v;
		}
	}
	ctx_bytes = xc_domain_hvm_getcontext(x->xch, x->domid, NULL, 0);
	if (ctx_bytes <= 0 || (unsigned)ctx_bytes > XEN_MAX_CTX_BYTES) {
		int r = ctx_bytes < 0 ? -errno : -EIO;
		xen_fail(x, "HVM context size of domain %" PRIu32 ": %d", x->domid, ctx_bytes);
		return r;
	}
	size_t len = XEN_STATE_HDR + (size_t)nr * 16 + (size_t)ctx_bytes;
	b = calloc(1, len);
	if (!b)
		return -ENOMEM;
	p = b + XEN_STATE_HDR + (size_t)nr * 16;
	int got = xc_domain_hvm_getcontext(x->xch, x->domid, p, (uint32_t)ctx_bytes);
	if (got <= 0) {
		int r = -errno;
		xen_fail(x, "HVM context of domain %" PRIu32 ": %s", x->domid, strerror(errno));
		free(b);
		return r ? r : -EIO;
	}
	uint32_t tsc_mode = 0, khz = 0, inc = 0;
	uint64_t nsec = 0;
	if (xc_domain_get_tsc_info(x->xch, x->domid, &tsc_mode, &nsec, &khz, &inc) < 0) {
		int r = -errno;
		xen_fail(x, "TSC info of domain %" PRIu32 ": %s", x->domid, strerror(errno));
		free(b);
		return r;
	}
	hr_put_le32(b + 40, tsc_mode);
	hr_put_le32(b + 44, khz);
	hr_put_le64(b + 48, nsec);
	hr_put_le32(b + 56, inc);
	hr_put_le32(b + 60, (uint32_t)x->suspended);
	valid = !xen_console_get_pos(x, &out_cons);
	hr_put_le32(b + 0, XEN_STATE_MAGIC);
	hr_put_le32(b + 4, XEN_STATE_VERSION);
	hr_put_le32(b + 8, x->cfg.nr_vcpus);
	hr_put_le32(b + 12, XEN_STATE_HDR);
	hr_put_le64(b + 16, x->cfg.mem_bytes);
	hr_put_le32(b + 24, out_cons);
	hr_put_le32(b + 28, (uint32_t)valid);
	hr_put_le32(b + 32, nr);
	hr_put_le32(b + 36, (uint32_t)got);
	for (uint32_t i = 0; i < nr; i++) {
		hr_put_le32(b + XEN_STATE_HDR + i * 16, idx[i]);
		hr_put_le64(b + XEN_STATE_HDR + i * 16 + 8, vals[i]);
	}
	*blob_r = b;
	*len_r = XEN_STATE_HDR + (size_t)nr * 16 + (size_t)got;
	return 0;
}

int xen_load_state(struct hr_vm *vm, const void *blob, size_t len)
{
	struct xen_vm *x = to_xen(vm);
	const uint8_t *b = blob;

	if (x->running) {
		xen_fail(x, "load_state on a running vm");
		return -EBUSY;
	}
	if (len < XEN_STATE_HDR || hr_get_le32(b) != XEN_STATE_MAGIC) {
		xen_fail(x, "state blob: not a Xen state blob (%zu bytes)", len);
		return -HR_EBADSTATE;
	}
	if (hr_get_le32(b + 4) != XEN_STATE_VERSION || hr_get_le32(b + 12) != XEN_STATE_HDR) {
		xen_fail(x, "state blob version %u, this backend reads %u", hr_get_le32(b + 4),
			 XEN_STATE_VERSION);
		return -HR_EBADSTATE;
	}
	uint32_t nr = hr_get_le32(b + 32), ctx_bytes = hr_get_le32(b + 36);
	if (nr > NR_PARAMS || !ctx_bytes || ctx_bytes > XEN_MAX_CTX_BYTES ||
	    len != XEN_STATE_HDR + (size_t)nr * 16 + ctx_bytes) {
		xen_fail(x, "state blob: %u params / %u context bytes do not add up to %zu", nr,
			 ctx_bytes, len);
		return -HR_EBADSTATE;
	}
	if (hr_get_le32(b + 8) != x->cfg.nr_vcpus || hr_get_le64(b + 16) != x->cfg.mem_bytes) {
		xen_fail(x, "state blob shape %u vCPUs / %" PRIu64 " bytes, vm has %u / %" PRIu64,
			 hr_get_le32(b + 8), hr_get_le64(b + 16), x->cfg.nr_vcpus,
			 x->cfg.mem_bytes);
		return -HR_EBADSTATE;
	}
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t index = hr_get_le32(b + XEN_STATE_HDR + i * 16);
		uint64_t v = hr_get_le64(b + XEN_STATE_HDR + i * 16 + 8), cur = 0;
		if (!xc_hvm_param_get(x->xch, x->domid, index, &cur) && cur == v)
			continue;
		if (xc_hvm_param_set(x->xch, x->domid, index, v) < 0)
			log_warnx(x->name,
				  "xen: HVM param %u = %#" PRIx64 " on domain %" PRIu32 ": %s",
				  index, v, x->domid, strerror(errno));
	}
	if (xc_domain_set_tsc_info(x->xch, x->domid, hr_get_le32(b + 40), hr_get_le64(b + 48),
				   hr_get_le32(b + 44), hr_get_le32(b + 56)) < 0) {
		int r = -errno;
		xen_fail(x, "TSC info into domain %" PRIu32 ": %s", x->domid, strerror(errno));
		return r;
	}
	/* a copy: the blob is the caller's and const */
	uint8_t *ctx = malloc(ctx_bytes);
	if (!ctx)
		return -ENOMEM;
	memcpy(ctx, b + XEN_STATE_HDR + (size_t)nr * 16, ctx_bytes);
	int r = xc_domain_hvm_setcontext(x->xch, x->domid, ctx, ctx_bytes);
	int saved = errno;
	free(ctx);
	if (r < 0) {
		xen_fail(x, "HVM context into domain %" PRIu32 ": %s", x->domid, strerror(saved));
		return -HR_EBADSTATE;
	}
	x->loaded_suspended = hr_get_le32(b + 60) == 1;
	if (hr_get_le32(b + 28))
		return xen_console_set_pos(x, hr_get_le32(b + 24));
	return 0;
}
