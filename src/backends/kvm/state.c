/*
 * state.c - save and restore everything the guest can observe, except
 * memory, as one versioned blob.
 *
 * Blob layout (little-endian, version 1):
 *
 *   header  u32 magic 'HRKS' | u32 version | u32 nr_vcpus | u32 reserved
 *           u64 mem_bytes | u64 total bytes (header included)
 *   records u32 tag | u32 len | len bytes | pad to 8
 *           tag = type (bits 0-15) | vCPU index (bits 16-23) | OPTIONAL (bit 31)
 *
 * A reader skips OPTIONAL records it does not know and refuses others.
 *
 * Devices extend version 1 with records of their own rather than a new
 * version: a blob of a VM without them is byte for byte what it was, and a
 * build that does not know a device refuses a blob that has one (unknown
 * mandatory record) instead of losing its state.  R_VIRTIO (one per
 * virtio-mmio device, device index in bits 16-23, layout in
 * virtio-mmio.c) is the first: a blob and the VM it is loaded into must
 * have the same virtio devices, else -HR_EBADSTATE before anything loads.
 * virtio-blk (one R_VIRTIO per disk, after the net device's) is the second
 * such device: its record's own bytes carry a layout version of their own
 * (virtio-blk.c) and the disk's capacity, and a blob without disks is still
 * byte for byte a version-1 blob, so the blob version stays 1.  Disk
 * requests are never in flight in a blob: pause drains them.
 * R_CPUID (the guest's CPUID, cpuid.c) is applied first, whatever its
 * place: MSRs and XSAVE state are only valid against it; a host whose CPU
 * lacks a feature the guest was given refuses the blob.
 *
 * The blob may sit at any address (the engine's envelope puts it after the
 * console bytes): the loader reads headers with hr_get_le*() and copies each
 * record into an aligned buffer before handing it to KVM.  What
 * this host's KVM cannot get/set is found once at open (kvm_state_probe) and
 * left out, so save and load use the same set.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm-internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/unaligned.h"

#define STATE_MAGIC   0x534b5248u /* "HRKS" */
#define STATE_VERSION 1u
#define TAG_OPTIONAL  0x80000000u

enum {
	R_REGS = 1,
	R_SREGS,
	R_FPU,
	R_XSAVE,
	R_XCRS,
	R_MSRS,
	R_LAPIC,
	R_EVENTS,
	R_MPSTATE,
	R_DEBUGREGS,
	R_PIC_MASTER = 0x100,
	R_PIC_SLAVE,
	R_IOAPIC,
	R_PIT,
	R_CLOCK,
	R_UART,
	R_CMOS,
	R_EXITED,
	R_VIRTIO, /* 0x108: virtio-mmio device (transport + device), index in bits 16-23 */
	R_CPUID,  /* 0x109: the guest's CPUID table (cpuid.c), applied before any vCPU record */
};

enum {
	CAP_XSAVE = 1u << 0,
	CAP_XCRS = 1u << 1,
	CAP_EVENTS = 1u << 2,
	CAP_DEBUGREGS = 1u << 3,
	CAP_CLOCK = 1u << 4,
	CAP_MPSTATE = 1u << 5,
};

struct blob_hdr {
	uint32_t magic, version, nr_vcpus, reserved;
	uint64_t mem_bytes, total;
};

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void *wb_record(struct wbuf *b, uint32_t tag, size_t len)
{
	size_t need = b->len + 8 + ((len + 7) & ~7ul);
	if (b->err)
		return NULL;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	uint8_t *h = b->p + b->len;
	hr_put_le32(h, tag);
	hr_put_le32(h + 4, (uint32_t)len);
	memset(h + 8, 0, (len + 7) & ~7ul);
	b->len = need;
	return h + 8;
}

/* Save the result of a get-ioctl as one record. */
static int save_ioctl(struct wbuf *b, int fd, unsigned long req, uint32_t tag, size_t len,
		      const char *what, struct kvm_vm *vm)
{
	void *d = wb_record(b, tag, len);
	if (!d)
		return b->err;
	if (ioctl(fd, req, d) < 0) {
		int rc = -errno;
		kvm_set_error(vm, "saving %s: %s", what, strerror(errno));
		return rc;
	}
	return 0;
}

static int probe_msrs(struct kvm_vm *vm)
{
	struct kvm_msr_list probe = {.nmsrs = 0};
	ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);
	if (!probe.nmsrs)
		return 0;
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return -errno;
	}
	vm->msr_list = calloc(l->nmsrs, sizeof(uint32_t));
	if (!vm->msr_list) {
		free(l);
		return -ENOMEM;
	}
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} one;
	for (unsigned i = 0; i < l->nmsrs; i++) {
		memset(&one, 0, sizeof(one));
		one.h.nmsrs = 1;
		one.e.index = l->indices[i];
		/* keep only MSRs this KVM lets us both read and write back */
		if (ioctl(vm->vcpus[0].fd, KVM_GET_MSRS, &one) != 1)
			continue;
		if (ioctl(vm->vcpus[0].fd, KVM_SET_MSRS, &one) != 1)
			continue;
		vm->msr_list[vm->nr_msrs++] = l->indices[i];
	}
	free(l);
	return 0;
}

int kvm_state_probe(struct kvm_vm *vm)
{
	int fd = vm->vcpus[0].fd;
	int rc;

	int sz = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (sz > 0) {
		vm->has_xsave2 = 1;
		vm->xsave_bytes = sz;
	} else {
		vm->xsave_bytes = sizeof(struct kvm_xsave);
	}
	void *x = calloc(1, vm->xsave_bytes);
	if (!x)
		return -ENOMEM;
	if (ioctl(fd, vm->has_xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x) == 0 &&
	    ioctl(fd, KVM_SET_XSAVE, x) == 0)
		vm->state_caps |= CAP_XSAVE;
	free(x);
	struct kvm_xcrs xcrs;
	if (ioctl(fd, KVM_GET_XCRS, &xcrs) == 0 && ioctl(fd, KVM_SET_XCRS, &xcrs) == 0)
		vm->state_caps |= CAP_XCRS;
	struct kvm_vcpu_events ev;
	if (ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) == 0)
		vm->state_caps |= CAP_EVENTS;
	struct kvm_debugregs dr;
	if (ioctl(fd, KVM_GET_DEBUGREGS, &dr) == 0 && ioctl(fd, KVM_SET_DEBUGREGS, &dr) == 0)
		vm->state_caps |= CAP_DEBUGREGS;
	struct kvm_clock_data clk = {0};
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clk) == 0)
		vm->state_caps |= CAP_CLOCK;
	struct kvm_mp_state mp;
	if (ioctl(fd, KVM_GET_MP_STATE, &mp) == 0)
		vm->state_caps |= CAP_MPSTATE;
	if ((rc = probe_msrs(vm)) < 0)
		return rc;
	log_debug(vm->name, "kvm: state caps 0x%x, %u MSRs saved", vm->state_caps, vm->nr_msrs);
	return 0;
}

static int save_vcpu(struct kvm_vm *vm, struct wbuf *b, struct kvm_vcpu *v)
{
	uint32_t t = v->id << 16;
	int fd = v->fd;
	int rc;

	if ((rc = save_ioctl(b, fd, KVM_GET_REGS, t | R_REGS, sizeof(struct kvm_regs), "regs",
			     vm)) ||
	    (rc = save_ioctl(b, fd, KVM_GET_SREGS, t | R_SREGS, sizeof(struct kvm_sregs), "sregs",
			     vm)))
		return rc;
	if (vm->state_caps & CAP_XSAVE)
		rc = save_ioctl(b, fd, vm->has_xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, t | R_XSAVE,
				vm->xsave_bytes, "xsave", vm);
	else
		rc = save_ioctl(b, fd, KVM_GET_FPU, t | R_FPU, sizeof(struct kvm_fpu), "fpu", vm);
	if (rc)
		return rc;
	if ((vm->state_caps & CAP_XCRS) &&
	    (rc = save_ioctl(b, fd, KVM_GET_XCRS, t | R_XCRS, sizeof(struct kvm_xcrs), "xcrs", vm)))
		return rc;
	if (vm->nr_msrs) {
		size_t len = sizeof(struct kvm_msrs) + vm->nr_msrs * sizeof(struct kvm_msr_entry);
		struct kvm_msrs *m = wb_record(b, t | R_MSRS, len);
		if (!m)
			return b->err;
		m->nmsrs = vm->nr_msrs;
		for (unsigned i = 0; i < vm->nr_msrs; i++)
			m->entries[i].index = vm->msr_list[i];
		int n = ioctl(fd, KVM_GET_MSRS, m);
		if (n != (int)vm->nr_msrs) {
			kvm_set_error(vm, "saving MSRs: got %d of %u", n, vm->nr_msrs);
			return -EIO;
		}
	}
	if ((rc = save_ioctl(b, fd, KVM_GET_LAPIC, t | R_LAPIC, sizeof(struct kvm_lapic_state),
			     "lapic", vm)))
		return rc;
	if ((vm->state_caps & CAP_EVENTS) &&
	    (rc = save_ioctl(b, fd, KVM_GET_VCPU_EVENTS, t | R_EVENTS,
			     sizeof(struct kvm_vcpu_events), "vcpu events", vm)))
		return rc;
	if ((vm->state_caps & CAP_MPSTATE) &&
	    (rc = save_ioctl(b, fd, KVM_GET_MP_STATE, t | R_MPSTATE, sizeof(struct kvm_mp_state),
			     "mp state", vm)))
		return rc;
	if ((vm->state_caps & CAP_DEBUGREGS) &&
	    (rc = save_ioctl(b, fd, KVM_GET_DEBUGREGS, t | R_DEBUGREGS,
			     sizeof(struct kvm_debugregs), "debug registers", vm)))
		return rc;
	return 0;
}

int kvm_state_save(struct kvm_vm *vm, void **blob_r, size_t *len_r)
{
	struct wbuf b = {0};
	int rc = 0;

	if (!wb_record(&b, 0, sizeof(struct blob_hdr) - 8))
		return b.err;
	for (unsigned i = 0; i < vm->nr_vcpus && !rc; i++)
		rc = save_vcpu(vm, &b, &vm->vcpus[i]);
	for (unsigned chip = 0; chip < 3 && !rc; chip++) {
		struct kvm_irqchip *ic = wb_record(&b, R_PIC_MASTER + chip, sizeof(*ic));
		if (!ic) {
			rc = b.err;
			break;
		}
		ic->chip_id = chip;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, ic) < 0) {
			rc = -errno;
			kvm_set_error(vm, "saving irqchip %u: %s", chip, strerror(errno));
		}
	}
	if (!rc)
		rc = save_ioctl(&b, vm->vm_fd, KVM_GET_PIT2, R_PIT, sizeof(struct kvm_pit_state2),
				"PIT", vm);
	if (!rc && (vm->state_caps & CAP_CLOCK))
		rc = save_ioctl(&b, vm->vm_fd, KVM_GET_CLOCK, R_CLOCK | TAG_OPTIONAL,
				sizeof(struct kvm_clock_data), "clock", vm);
	if (!rc) {
		pthread_mutex_lock(&vm->dev_lock);
		void *u = wb_record(&b, R_UART, sizeof(vm->uart));
		void *c = wb_record(&b, R_CMOS, sizeof(vm->cmos));
		if (u && c) {
			memcpy(u, &vm->uart, sizeof(vm->uart));
			memcpy(c, &vm->cmos, sizeof(vm->cmos));
		}
		pthread_mutex_unlock(&vm->dev_lock);
		uint8_t *cp = wb_record(&b, R_CPUID, kvm_cpuid_state_bytes(vm));
		if (cp)
			kvm_cpuid_state_save(vm, cp);
		uint32_t *e = wb_record(&b, R_EXITED, 4);
		if (e)
			*e = (uint32_t)vm->exited;
		for (unsigned i = 0; i < vm->nr_vdevs; i++) {
			struct virtio_dev *d = vm->vdevs[i];
			uint8_t *r = wb_record(&b, R_VIRTIO | (i << 16), virtio_state_bytes(d));
			if (r)
				virtio_state_save(d, r);
		}
		rc = b.err;
	}
	if (rc) {
		free(b.p);
		return rc;
	}
	hr_put_le32(b.p + offsetof(struct blob_hdr, magic), STATE_MAGIC);
	hr_put_le32(b.p + offsetof(struct blob_hdr, version), STATE_VERSION);
	hr_put_le32(b.p + offsetof(struct blob_hdr, nr_vcpus), vm->nr_vcpus);
	hr_put_le32(b.p + offsetof(struct blob_hdr, reserved), 0);
	hr_put_le64(b.p + offsetof(struct blob_hdr, mem_bytes), vm->cfg.mem_bytes);
	hr_put_le64(b.p + offsetof(struct blob_hdr, total), b.len);
	*blob_r = b.p;
	*len_r = b.len;
	return 0;
}

static int load_ioctl(struct kvm_vm *vm, int fd, unsigned long req, const void *d, const char *what)
{
	if (ioctl(fd, req, d) < 0) {
		int rc = -errno;
		kvm_set_error(vm, "restoring %s: %s", what, strerror(errno));
		return rc;
	}
	return 0;
}

static int expect_len(struct kvm_vm *vm, uint32_t len, size_t want, const char *what)
{
	if (len != want) {
		kvm_set_error(vm, "state blob: %s record is %u bytes, expected %zu", what, len,
			      want);
		return -HR_EBADSTATE;
	}
	return 0;
}

static int load_record(struct kvm_vm *vm, uint32_t tag, const void *d, uint32_t len)
{
	unsigned type = tag & 0xffff, idx = (tag >> 16) & 0xff;
	int rc;

	if (type < 0x100 && idx >= vm->nr_vcpus) {
		kvm_set_error(vm, "state blob: record for vCPU %u of %u", idx, vm->nr_vcpus);
		return -HR_EBADSTATE;
	}
	int fd = type < 0x100 ? vm->vcpus[idx].fd : vm->vm_fd;
	switch (type) {
	case R_REGS:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_regs), "regs")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_REGS, d, "regs");
	case R_SREGS:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_sregs), "sregs")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_SREGS, d, "sregs");
	case R_FPU:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_fpu), "fpu")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_FPU, d, "fpu");
	case R_XSAVE:
		if (len < sizeof(struct kvm_xsave) || len > (uint32_t)vm->xsave_bytes) {
			kvm_set_error(
			    vm, "state blob: xsave area of %u bytes does not fit this host", len);
			return -HR_EBADSTATE;
		}
		{
			void *x = calloc(1, vm->xsave_bytes);
			if (!x)
				return -ENOMEM;
			memcpy(x, d, len);
			rc = load_ioctl(vm, fd, KVM_SET_XSAVE, x, "xsave");
			free(x);
			return rc;
		}
	case R_XCRS:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_xcrs), "xcrs")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_XCRS, d, "xcrs");
	case R_MSRS: {
		const struct kvm_msrs *m = d;
		if (len < sizeof(*m) ||
		    len != sizeof(*m) + (uint64_t)m->nmsrs * sizeof(struct kvm_msr_entry)) {
			kvm_set_error(vm, "state blob: bad MSR record");
			return -HR_EBADSTATE;
		}
		int n = ioctl(fd, KVM_SET_MSRS, d);
		if (n != (int)m->nmsrs) {
			kvm_set_error(vm, "restoring MSRs: KVM took %d of %u (first refused 0x%x)",
				      n, m->nmsrs,
				      n >= 0 && n < (int)m->nmsrs ? m->entries[n].index : 0);
			return -EIO;
		}
		return 0;
	}
	case R_LAPIC:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_lapic_state), "lapic")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_LAPIC, d, "lapic");
	case R_EVENTS:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_vcpu_events), "vcpu events")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_VCPU_EVENTS, d, "vcpu events");
	case R_MPSTATE:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_mp_state), "mp state")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_MP_STATE, d, "mp state");
	case R_DEBUGREGS:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_debugregs), "debugregs")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_DEBUGREGS, d, "debug registers");
	case R_PIC_MASTER:
	case R_PIC_SLAVE:
	case R_IOAPIC:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_irqchip), "irqchip")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_IRQCHIP, d, "irqchip");
	case R_PIT:
		if ((rc = expect_len(vm, len, sizeof(struct kvm_pit_state2), "PIT")))
			return rc;
		return load_ioctl(vm, fd, KVM_SET_PIT2, d, "PIT");
	case R_CLOCK: {
		if ((rc = expect_len(vm, len, sizeof(struct kvm_clock_data), "clock")))
			return rc;
		struct kvm_clock_data c = *(const struct kvm_clock_data *)d;
		c.flags = 0; /* set the guest clock to the saved value only */
		if (ioctl(fd, KVM_SET_CLOCK, &c) < 0)
			log_debug(vm->name, "restoring the kvm clock: %s (skipped)",
				  strerror(errno));
		return 0;
	}
	case R_UART:
		if ((rc = expect_len(vm, len, sizeof(vm->uart), "uart")))
			return rc;
		pthread_mutex_lock(&vm->dev_lock);
		memcpy(&vm->uart, d, len);
		vm->uart.irq_level = !vm->uart.irq_level; /* force the line to be re-driven */
		pthread_mutex_unlock(&vm->dev_lock);
		return kvm_console_in(vm, NULL, 0);
	case R_CMOS:
		if ((rc = expect_len(vm, len, sizeof(vm->cmos), "cmos")))
			return rc;
		pthread_mutex_lock(&vm->dev_lock);
		memcpy(&vm->cmos, d, len);
		pthread_mutex_unlock(&vm->dev_lock);
		return 0;
	case R_EXITED:
	case R_CPUID: /* applied before the other records */
		return 0;
	case R_VIRTIO:
		if (idx >= vm->nr_vdevs) /* checked by the first pass: defensive */
			return -HR_EBADSTATE;
		return virtio_state_load(vm->vdevs[idx], d, len);
	default:
		if (tag & TAG_OPTIONAL)
			return 0;
		kvm_set_error(vm, "state blob: unknown mandatory record 0x%x", tag);
		return -HR_EBADSTATE;
	}
}

#define MSR_IA32_TSC 0x10

/* One vCPU's TSC offset (KVM_VCPU_TSC_OFFSET): get or set. */
static int tsc_offset(struct kvm_vcpu *v, int set, uint64_t *off)
{
	struct kvm_device_attr a = {
	    .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uintptr_t)off};
	return ioctl(v->fd, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &a) < 0 ? -errno : 0;
}

/*
 * After a load, the guest's TSC goes on from vCPU 0's saved IA32_TSC (the
 * MSR record r of len bytes).  KVM takes a host-initiated IA32_TSC write
 * within a second of what it expects (the TSC of vCPUs created moments
 * ago) as an attempt to synchronise vCPUs and keeps its own offset instead:
 * a guest restored or promoted soon after its VM was created then saw its
 * TSC go back.  Where KVM has KVM_VCPU_TSC_OFFSET, every vCPU gets the one
 * offset that makes vCPU 0's TSC the saved value now (the source kept its
 * vCPUs on one offset too; any vCPU saw at most vCPU 0's saved value).
 */
static void tsc_restore(struct kvm_vm *vm, const uint8_t *r, uint32_t len)
{
	uint64_t saved = 0, off;
	int found = 0;

	for (uint32_t i = 8; i + 16 <= len && !found; i += 16)
		if (hr_get_le32(r + i) == MSR_IA32_TSC) {
			saved = hr_get_le64(r + i + 8);
			found = 1;
		}
	if (!found || tsc_offset(&vm->vcpus[0], 0, &off) < 0)
		return; /* no TSC in the blob, or an older KVM: its own TSC write stands */
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} now = {.h.nmsrs = 1, .e.index = MSR_IA32_TSC};
	if (ioctl(vm->vcpus[0].fd, KVM_GET_MSRS, &now) != 1)
		return;
	if (now.e.data != saved)
		log_debug(vm->name,
			  "kvm: the TSC loaded is %lld cycles off the saved one: corrected",
			  (long long)(now.e.data - saved));
	off += saved - now.e.data;
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (tsc_offset(&vm->vcpus[i], 1, &off) < 0)
			log_warnx(vm->name, "kvm: setting the TSC offset of vCPU %u: %s", i,
				  strerror(errno));
}

int kvm_state_load(struct kvm_vm *vm, const void *blob, size_t len)
{
	const uint8_t *p = blob;
	uint8_t *rec = NULL;
	uint32_t max_rec = 0, vdevs_in_blob = 0, cpuid_len = 0, msrs0_len = 0;
	size_t cpuid_off = 0, msrs0_off = 0;
	int rc = 0;

	if (len < sizeof(struct blob_hdr) ||
	    hr_get_le32(p + offsetof(struct blob_hdr, magic)) != STATE_MAGIC) {
		kvm_set_error(vm, "state blob: not a KVM state blob");
		return -HR_EBADSTATE;
	}
	uint32_t version = hr_get_le32(p + offsetof(struct blob_hdr, version));
	uint32_t nr_vcpus = hr_get_le32(p + offsetof(struct blob_hdr, nr_vcpus));
	uint64_t mem_bytes = hr_get_le64(p + offsetof(struct blob_hdr, mem_bytes));
	uint64_t total = hr_get_le64(p + offsetof(struct blob_hdr, total));
	if (version != STATE_VERSION) {
		kvm_set_error(vm, "state blob: version %u, this build reads version %u", version,
			      STATE_VERSION);
		return -HR_EBADSTATE;
	}
	if (nr_vcpus != vm->nr_vcpus || mem_bytes != vm->cfg.mem_bytes || total != len) {
		kvm_set_error(vm,
			      "state blob: shape %u vCPU / %llu MiB does not match this VM "
			      "(%u vCPU / %llu MiB)",
			      nr_vcpus, (unsigned long long)(mem_bytes >> 20), vm->nr_vcpus,
			      (unsigned long long)(vm->cfg.mem_bytes >> 20));
		return -HR_EBADSTATE;
	}
	/* Two passes: validate framing first so that nothing is loaded from a
	 * torn blob, then apply in record order (sregs before LAPIC, etc.).
	 * Records are applied from an aligned copy (rec), never in place. */
	for (int pass = 0; pass < 2; pass++) {
		size_t off = sizeof(struct blob_hdr);
		while (off < len) {
			if (len - off < 8) {
				kvm_set_error(vm, "state blob: truncated record header");
				rc = -HR_EBADSTATE;
				goto out;
			}
			uint32_t tag = hr_get_le32(p + off), rec_len = hr_get_le32(p + off + 4);
			uint64_t rl = 8 + (((uint64_t)rec_len + 7) & ~7ull);
			if (rl > len - off) {
				kvm_set_error(vm, "state blob: record 0x%x runs past the end", tag);
				rc = -HR_EBADSTATE;
				goto out;
			}
			if (!pass) {
				if (rec_len > max_rec)
					max_rec = rec_len;
				if (tag == R_CPUID) {
					cpuid_off = off + 8;
					cpuid_len = rec_len;
				}
				if (tag == R_MSRS) { /* vCPU 0's */
					msrs0_off = off + 8;
					msrs0_len = rec_len;
				}
				if ((tag & 0xffff) == R_VIRTIO) {
					unsigned i = (tag >> 16) & 0xff;
					vdevs_in_blob |=
					    i < VIRTIO_MMIO_MAX_DEVS ? 1u << i : 1u << 31;
				}
			} else {
				memcpy(rec, p + off + 8, rec_len);
				if ((rc = load_record(vm, tag, rec, rec_len)))
					goto out;
			}
			off += rl;
		}
		if (!pass && vdevs_in_blob != (1u << vm->nr_vdevs) - 1) {
			kvm_set_error(
			    vm,
			    "state blob: virtio devices 0x%x, this VM has %u (options tap=, disks)",
			    vdevs_in_blob, vm->nr_vdevs);
			rc = -HR_EBADSTATE;
			goto out;
		}
		if (!pass && !(rec = malloc(max_rec ? max_rec : 1)))
			return -ENOMEM;
		if (!pass && cpuid_len) {
			memcpy(rec, p + cpuid_off, cpuid_len);
			if ((rc = kvm_cpuid_state_load(vm, rec, cpuid_len)))
				goto out;
		}
	}
	if (msrs0_len)
		tsc_restore(vm, p + msrs0_off, msrs0_len);
out:
	free(rec);
	return rc;
}
