/*
 * dirty.c - write tracking, two ways:
 *
 *  bitmap: KVM_GET_DIRTY_LOG per slot, then KVM_CLEAR_DIRTY_LOG for exactly
 *          the bits collected (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2), so a page
 *          is re-protected only after we have recorded it.
 *  ring:   per-vCPU rings of dirty gfns (KVM_CAP_DIRTY_LOG_RING); harvested
 *          on fetch and whenever a ring fills (KVM_EXIT_DIRTY_RING_FULL),
 *          into an accumulated bitmap, then KVM_RESET_DIRTY_RINGS.
 *
 * Neither sees what the VMM itself writes into guest memory (a virtio
 * device filling a receive buffer or a used ring): devices report those
 * writes with kvm_dirty_note, after writing, and every fetch adds them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm-internal.h"
#include "common/log.h"

#define DEFAULT_RING_ENTRIES 16384u

int kvm_dirty_enable_ring(struct kvm_vm *vm)
{
	uint32_t entries = vm->ring_entries_opt ? vm->ring_entries_opt : DEFAULT_RING_ENTRIES;
	if (entries & (entries - 1)) {
		kvm_set_error(vm, "dirty ring entries must be a power of two");
		return -EINVAL;
	}
	int cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	int max_bytes = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, cap);
	if (max_bytes <= 0) {
		cap = KVM_CAP_DIRTY_LOG_RING;
		max_bytes = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, cap);
	}
	if (max_bytes <= 0) {
		kvm_set_error(vm, "this KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING)");
		return -ENOTSUP;
	}
	uint64_t bytes = (uint64_t)entries * sizeof(struct kvm_dirty_gfn);
	if (bytes > (uint64_t)max_bytes) {
		entries = (uint32_t)(max_bytes / sizeof(struct kvm_dirty_gfn));
		bytes = (uint64_t)entries * sizeof(struct kvm_dirty_gfn);
	}
	struct kvm_enable_cap ec = {.cap = cap, .args[0] = bytes};
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &ec) < 0) {
		int rc = -errno;
		kvm_set_error(vm, "enabling the dirty ring: %s", strerror(errno));
		return rc;
	}
	vm->ring_entries = entries;
	return 0;
}

int kvm_dirty_map_rings(struct kvm_vm *vm)
{
	size_t bytes = (size_t)vm->ring_entries * sizeof(struct kvm_dirty_gfn);
	long page = sysconf(_SC_PAGESIZE);

	vm->ring_acc = calloc((vm->nr_gfns + 63) / 64, 8);
	vm->ring_words = calloc((vm->nr_gfns + 63) / 64, 8);
	if (!vm->ring_acc || !vm->ring_words)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_vcpu *v = &vm->vcpus[i];
		void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
			       (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * page);
		if (p == MAP_FAILED) {
			kvm_set_error(vm, "mmap dirty ring of vCPU %u: %s", i, strerror(errno));
			return -ENOMEM;
		}
		v->ring = p;
	}
	return 0;
}

static int set_slot_logging(struct kvm_vm *vm, int on)
{
	for (unsigned i = 0; i < vm->nr_slots; i++) {
		struct kvm_slot *s = &vm->slots[i];
		struct kvm_userspace_memory_region r = {
		    .slot = s->slot,
		    .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		    .guest_phys_addr = s->gpa,
		    .memory_size = s->bytes,
		    .userspace_addr = (uintptr_t)s->hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			int rc = -errno;
			kvm_set_error(vm, "dirty logging %s on slot %u: %s", on ? "on" : "off",
				      s->slot, strerror(errno));
			return rc;
		}
	}
	return 0;
}

/* Harvest every vCPU ring into vm->ring_acc; callable from any thread. */
void kvm_dirty_ring_harvest(struct kvm_vm *vm)
{
	uint32_t mask = vm->ring_entries - 1;
	unsigned harvested = 0;

	pthread_mutex_lock(&vm->ring_lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_vcpu *v = &vm->vcpus[i];
		if (!v->ring)
			continue;
		for (;;) {
			struct kvm_dirty_gfn *e = &v->ring[v->ring_fetch & mask];
			uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
			if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
				break;
			uint32_t slot = e->slot & 0xffff;
			if (slot < vm->nr_slots) {
				uint64_t gfn = (vm->slots[slot].gpa >> HR_PAGE_SHIFT) + e->offset;
				if (gfn < vm->nr_gfns) {
					if (!vm->ring_acc[gfn / 64])
						vm->ring_words[vm->nr_ring_words++] = gfn / 64;
					vm->ring_acc[gfn / 64] |= 1ull << (gfn % 64);
				}
			}
			__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
			v->ring_fetch++;
			harvested++;
		}
	}
	if (harvested)
		ioctl(vm->vm_fd, KVM_RESET_DIRTY_RINGS, 0);
	pthread_mutex_unlock(&vm->ring_lock);
}

/* The VMM wrote [gpa, gpa + len) of guest RAM: report it in the next fetch. */
void kvm_dirty_note(struct kvm_vm *vm, uint64_t gpa, uint64_t len)
{
	if (!len)
		return;
	pthread_mutex_lock(&vm->vmm_dirty_lock);
	if (vm->vmm_dirty_on) {
		uint64_t last = (gpa + len - 1) >> HR_PAGE_SHIFT;
		for (uint64_t gfn = gpa >> HR_PAGE_SHIFT; gfn <= last && gfn < vm->nr_gfns; gfn++) {
			if (!vm->vmm_acc[gfn / 64])
				vm->vmm_words[vm->nr_vmm_words++] = gfn / 64;
			vm->vmm_acc[gfn / 64] |= 1ull << (gfn % 64);
		}
	}
	pthread_mutex_unlock(&vm->vmm_dirty_lock);
}

/* Move the VMM's writes into d. */
static int fetch_vmm(struct kvm_vm *vm, struct hr_dirty_bits *d)
{
	pthread_mutex_lock(&vm->vmm_dirty_lock);
	for (uint64_t i = 0; i < vm->nr_vmm_words; i++) {
		uint64_t w = vm->vmm_words[i];
		hr_dirty_mark_word(d, w, vm->vmm_acc[w]);
		vm->vmm_acc[w] = 0;
	}
	vm->nr_vmm_words = 0;
	pthread_mutex_unlock(&vm->vmm_dirty_lock);
	return 0;
}

static int set_vmm_tracking(struct kvm_vm *vm, int on)
{
	uint64_t nw = (vm->nr_gfns + 63) / 64;
	pthread_mutex_lock(&vm->vmm_dirty_lock);
	if (on && !vm->vmm_acc) {
		vm->vmm_acc = calloc(nw ? nw : 1, 8);
		vm->vmm_words = calloc(nw ? nw : 1, 8);
	}
	if (on && (!vm->vmm_acc || !vm->vmm_words)) {
		pthread_mutex_unlock(&vm->vmm_dirty_lock);
		return -ENOMEM;
	}
	if (vm->vmm_acc) {
		memset(vm->vmm_acc, 0, nw * 8);
		vm->nr_vmm_words = 0;
	}
	vm->vmm_dirty_on = on;
	pthread_mutex_unlock(&vm->vmm_dirty_lock);
	return 0;
}

int kvm_dirty_start(struct kvm_vm *vm)
{
	int rc;
	if (vm->dirty_on)
		return 0;
	if ((rc = set_vmm_tracking(vm, 1)) < 0)
		return rc;
	if ((rc = set_slot_logging(vm, 1)) < 0) {
		set_vmm_tracking(vm, 0);
		return rc;
	}
	vm->dirty_on = 1;
	if (vm->dirty_mode == KVM_DIRTY_RING) {
		kvm_dirty_ring_harvest(vm);
		pthread_mutex_lock(&vm->ring_lock);
		memset(vm->ring_acc, 0, (vm->nr_gfns + 63) / 64 * 8);
		vm->nr_ring_words = 0;
		pthread_mutex_unlock(&vm->ring_lock);
	}
	return 0;
}

int kvm_dirty_stop(struct kvm_vm *vm)
{
	if (!vm->dirty_on)
		return 0;
	vm->dirty_on = 0;
	set_vmm_tracking(vm, 0);
	return set_slot_logging(vm, 0);
}

static int fetch_bitmap(struct kvm_vm *vm, struct hr_dirty_bits *d)
{
	for (unsigned i = 0; i < vm->nr_slots; i++) {
		struct kvm_slot *s = &vm->slots[i];
		uint64_t npages = s->bytes >> HR_PAGE_SHIFT;
		uint64_t nwords = (npages + 63) / 64;
		struct kvm_dirty_log log = {.slot = s->slot, .dirty_bitmap = s->bitmap};

		memset(s->bitmap, 0, nwords * 8);
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			int rc = -errno;
			kvm_set_error(vm, "KVM_GET_DIRTY_LOG slot %u: %s", s->slot,
				      strerror(errno));
			return rc;
		}
		int any = 0;
		uint64_t base = s->gpa >> HR_PAGE_SHIFT; /* 64-aligned: slots are 1 GiB aligned */
		for (uint64_t w = 0; w < nwords; w++) {
			if (s->bitmap[w]) {
				hr_dirty_mark_word(d, base / 64 + w, s->bitmap[w]);
				any = 1;
			}
		}
		if (!any || !vm->has_manual_protect)
			continue;
		struct kvm_clear_dirty_log clr = {
		    .slot = s->slot,
		    .first_page = 0,
		    .num_pages = (uint32_t)npages,
		    .dirty_bitmap = s->bitmap,
		};
		if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0) {
			int rc = -errno;
			kvm_set_error(vm, "KVM_CLEAR_DIRTY_LOG slot %u: %s", s->slot,
				      strerror(errno));
			return rc;
		}
	}
	return 0;
}

int kvm_dirty_fetch(struct kvm_vm *vm, struct hr_dirty_bits *d)
{
	if (!vm->dirty_on)
		return -EINVAL;
	fetch_vmm(vm, d);
	if (vm->dirty_mode == KVM_DIRTY_BITMAP)
		return fetch_bitmap(vm, d);

	kvm_dirty_ring_harvest(vm);
	pthread_mutex_lock(&vm->ring_lock);
	/* only the words that were set: cost follows the dirty set, not guest size */
	for (uint64_t i = 0; i < vm->nr_ring_words; i++) {
		uint64_t w = vm->ring_words[i];
		hr_dirty_mark_word(d, w, vm->ring_acc[w]);
		vm->ring_acc[w] = 0;
	}
	vm->nr_ring_words = 0;
	pthread_mutex_unlock(&vm->ring_lock);
	return 0;
}
