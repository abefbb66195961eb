/*
 * virtio.h - the virtio-mmio transport (virtio-mmio.c) and split virtqueues
 * (virtqueue.c) of the KVM backend; devices (virtio-net.c) plug in with a
 * struct virtio_dev_ops.  Modern virtio only (virtio-mmio version 2,
 * VIRTIO_F_VERSION_1), no legacy interface.
 *
 * Placement (fixed, documented in backend.h): device i has its registers at
 * VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_STRIDE (0x200 bytes used of the 4 KiB)
 * and its interrupt on GSI VIRTIO_MMIO_GSI + i, driven with KVM_IRQ_LINE as
 * a level: high while InterruptStatus is non-zero.  The backend appends
 * "virtio_mmio.device=4K@<base>:<gsi>" per device to the guest command line,
 * the syntax of Linux's virtio_mmio driver.
 *
 * Locking: every virtio_dev has one mutex (lock) that guards its registers,
 * its queues and everything it writes to guest memory.  MMIO accesses from
 * vCPU threads, a device's own threads and save/load all take it.  While a
 * device is paused (d->paused, set by kvm_virtio_pause under the lock) no
 * thread of it touches guest memory.
 */
#ifndef HR_KVM_VIRTIO_H
#define HR_KVM_VIRTIO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_vm;

#define VIRTIO_MMIO_BASE     0xd0000000ull
#define VIRTIO_MMIO_STRIDE   0x1000u
#define VIRTIO_MMIO_BYTES    0x200u
#define VIRTIO_MMIO_GSI	     5u /* 0 PIT, 2 cascade, 4 UART, 8 RTC: 5 and 6 are free */
#define VIRTIO_MMIO_MAX_DEVS 5	/* a virtio-net and HR_MAX_DISKS virtio-blk */

/* Device i's GSI: 5 + i for the first three, then 9, 10 (8 is the RTC's). */
static inline unsigned virtio_mmio_gsi(unsigned i)
{
	return i < 3 ? VIRTIO_MMIO_GSI + i : 9 + (i - 3);
}

#define VIRTIO_ID_NET	1
#define VIRTIO_ID_BLOCK 2

/* device status (virtio 1.x, 2.1) */
#define VIRTIO_S_ACKNOWLEDGE 1u
#define VIRTIO_S_DRIVER	     2u
#define VIRTIO_S_DRIVER_OK   4u
#define VIRTIO_S_FEATURES_OK 8u
#define VIRTIO_S_NEEDS_RESET 64u
#define VIRTIO_S_FAILED	     128u

/* transport-independent feature bits */
#define VIRTIO_RING_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_RING_F_EVENT_IDX	    (1ull << 29)
#define VIRTIO_F_VERSION_1	    (1ull << 32)

/* InterruptStatus bits */
#define VIRTIO_INT_VRING  1u
#define VIRTIO_INT_CONFIG 2u

/* split ring flags */
#define VRING_DESC_F_NEXT	   1u
#define VRING_DESC_F_WRITE	   2u
#define VRING_DESC_F_INDIRECT	   4u
#define VRING_AVAIL_F_NO_INTERRUPT 1u

#define VQ_MAX	   2   /* queues per device */
#define VQ_NUM_MAX 256 /* QueueNumMax */

/* One split virtqueue.  The first group is guest-visible state (saved). */
struct vq {
	uint32_t num, ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail;	 /* next avail ring slot the device reads */
	uint16_t used_idx;	 /* the device's copy of used->idx */
	uint16_t signalled_used; /* used_idx when the device last decided to interrupt */
	uint8_t signalled_valid; /* signalled_used is meaningful (EVENT_IDX) */
	/* host mappings of the three rings; set by vq_map, never saved */
	uint8_t *desc, *avail, *used;
};

/* A descriptor chain taken from the avail ring, every segment inside RAM. */
struct vq_seg {
	uint8_t *hva; /* checked: [hva, hva + len) is guest RAM */
	uint64_t gpa;
	uint32_t len;
	uint32_t write; /* device-writable */
};

struct vq_chain {
	uint16_t head;
	unsigned nr;
	uint64_t read_bytes, write_bytes;
	struct vq_seg seg[VQ_NUM_MAX];
};

struct virtio_dev;

/* What a device provides to the transport.  Hooks run with d->lock held. */
struct virtio_dev_ops {
	const char *name; /* "virtio-net" */
	uint32_t device_id;
	unsigned nr_queues; /* <= VQ_MAX */
	/* The driver wrote QueueNotify for queue q (ready, device live). */
	void (*notify)(struct virtio_dev *d, unsigned q);
	/* Config space bytes [off, off + len); off + len <= config_bytes. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, uint8_t *buf, unsigned len);
	uint32_t config_bytes;
	/* Device-specific state after the transport's (fixed size). */
	size_t state_bytes;
	void (*state_save)(struct virtio_dev *d, uint8_t *p);
	int (*state_load)(struct virtio_dev *d, const uint8_t *p); /* 0 or -HR_EBADSTATE */
	/* OPTIONAL: paused/resumed (after the flag changed), destroy (lock not held). */
	void (*pause)(struct virtio_dev *d); /* returns when nothing is in flight */
	void (*resume)(struct virtio_dev *d);
	void (*destroy)(struct virtio_dev *d);
	/* OPTIONAL: the driver wrote 0 to Status (lock held; may drop it while it
	 * waits for requests in flight, and retakes it before returning). */
	void (*reset)(struct virtio_dev *d);
};

struct virtio_dev {
	struct kvm_vm *vm;
	unsigned index, gsi;
	uint64_t base;
	const struct virtio_dev_ops *ops;
	void *priv;
	uint64_t host_features;
	pthread_mutex_t lock;
	/* guest-visible transport state (saved) */
	uint32_t status, dev_feat_sel, drv_feat_sel, queue_sel, isr, config_gen;
	uint64_t driver_features;
	uint32_t irq_level;
	struct vq vq[VQ_MAX];
	/* host side */
	int paused;
	unsigned nr_errors; /* rate-limits the warnings about a broken driver */
};

/* virtqueue.c: all guest memory access goes through kvm_gpa_ptr bounds checks. */
int vq_map(struct kvm_vm *vm, struct vq *q);
void vq_reset(struct vq *q);
int vq_pop(struct kvm_vm *vm, struct vq *q, struct vq_chain *c);
/* What a vq_pop error says about the driver's ring, for the log. */
const char *vq_strerror(int rc);
size_t vq_chain_read(struct kvm_vm *vm, const struct vq_chain *c, void *buf, size_t len);
size_t vq_chain_write(struct kvm_vm *vm, const struct vq_chain *c, const void *buf, size_t len);
void vq_push(struct kvm_vm *vm, struct vq *q, uint16_t head, uint32_t len);
int vq_should_signal(struct vq *q, uint64_t features);
int vq_want_notify(struct kvm_vm *vm, struct vq *q, uint64_t features);

/* virtio-mmio.c */
int virtio_mmio_add(struct kvm_vm *vm, const struct virtio_dev_ops *ops, void *priv,
		    uint64_t features, struct virtio_dev **d_r);
void virtio_raise(struct virtio_dev *d, uint32_t bits);
void virtio_needs_reset(struct virtio_dev *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int virtio_live(const struct virtio_dev *d);
size_t virtio_state_bytes(const struct virtio_dev *d);
void virtio_state_save(struct virtio_dev *d, uint8_t *p);
int virtio_state_load(struct virtio_dev *d, const uint8_t *p, size_t len);

#endif
