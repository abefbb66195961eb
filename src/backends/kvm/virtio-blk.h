/*
 * virtio-blk.h - the KVM backend's virtio-blk device (virtio-blk.c), one
 * per hr_vm_config.disks[i], and a vm without /dev/kvm for its tests.
 */
#ifndef HR_KVM_VIRTIO_BLK_H
#define HR_KVM_VIRTIO_BLK_H

#include <stdint.h>

#include "backends/backend.h"
#include "disk/aio.h"

struct kvm_vm;

/* Most data segments in one request (config seg_max): a chain is header,
 * data, status, in a ring of VQ_NUM_MAX descriptors. */
#define VBLK_SEG_MAX (VQ_NUM_MAX - 2)
/* Largest write-zeroes / discard (sectors) and segments per request. */
#define VBLK_MAX_ZERO_SECTORS (1u << 21)
#define VBLK_CONFIG_BYTES     60u

/* Counters of one virtio-blk device. */
struct kvm_blk_stats {
	uint64_t reqs;	      /* requests taken from the ring */
	uint64_t io_errors;   /* completed with VIRTIO_BLK_S_IOERR */
	uint64_t unsupported; /* completed with VIRTIO_BLK_S_UNSUPP */
	uint64_t reported;    /* disk_write calls that returned 0 */
};

/* Give the guest disk cfg.disks[disk] as the next virtio-mmio device. */
int kvm_blk_create(struct kvm_vm *vm, unsigned disk);

/* The device of disk `disk`'s aio (tests inject faults through it), stats. */
struct hr_aio *kvm_blk_aio(struct kvm_vm *vm, unsigned disk);
int kvm_blk_get_stats(struct kvm_vm *vm, unsigned disk, struct kvm_blk_stats *s);

/*
 * A vm that is only memory and devices, for device tests without /dev/kvm:
 * mem_bytes of RAM at guest-physical 0 (one slot, anonymous mmap), no vCPU,
 * no irqchip (interrupt lines are not driven; InterruptStatus still is).
 * cfg is copied as kvm_open does; cfg->disks are opened.  Free it with
 * hr_kvm_ops.close.
 */
int kvm_vm_bare(struct kvm_vm **vm_r, const struct hr_vm_config *cfg);

#endif
