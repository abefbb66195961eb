/*
 * virtqueue.c - split virtqueues (virtio 1.x, 2.7) as a device sees them,
 * with VIRTIO_RING_F_EVENT_IDX and without indirect descriptors.
 *
 * The guest owns the rings and may rewrite them at any moment, from any
 * vCPU, on purpose or by mistake.  So:
 *
 *  - ring addresses are checked once, when the queue becomes ready (vq_map):
 *    every ring lies wholly inside one RAM slot, aligned as the spec says;
 *  - every descriptor is copied out of guest memory once and only the copy
 *    is used; its buffer must lie wholly inside RAM (kvm_gpa_ptr), a chain
 *    is at most `num` descriptors long (a loop ends there), indices are
 *    checked against `num`, and the avail index may run at most `num`
 *    entries ahead of the device.  Any violation is reported to the caller
 *    (the device then sets DEVICE_NEEDS_RESET), never followed;
 *  - the device writes guest memory only into device-writable segments of
 *    a checked chain and into the used ring, and marks every byte it writes
 *    for the dirty log (kvm_dirty_note), which cannot see VMM writes.
 */
#include <errno.h>
#include <string.h>

#include "kvm-internal.h"
#include "virtio.h"
#include "common/unaligned.h"

static uint16_t ld16(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
}

void vq_reset(struct vq *q)
{
	memset(q, 0, sizeof(*q));
	q->num = VQ_NUM_MAX;
}

int vq_map(struct kvm_vm *vm, struct vq *q)
{
	uint64_t n = q->num;

	q->desc = q->avail = q->used = NULL;
	if (!n || n > VQ_NUM_MAX || (n & (n - 1)))
		return -EINVAL;
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return -EINVAL;
	uint8_t *d = kvm_gpa_ptr(vm, q->desc_gpa, 16 * n);
	uint8_t *a = kvm_gpa_ptr(vm, q->avail_gpa, 6 + 2 * n);
	uint8_t *u = kvm_gpa_ptr(vm, q->used_gpa, 6 + 8 * n);
	if (!d || !a || !u)
		return -EFAULT;
	q->desc = d;
	q->avail = a;
	q->used = u;
	return 0;
}

/*
 * Take the next chain from the avail ring.  Returns 1 with *c filled, 0 if
 * the ring is empty, or a negative errno for a ring the device must refuse:
 * -ERANGE avail index too far ahead, -EINVAL index out of range, -ELOOP
 * chain longer than the ring, -EFAULT buffer outside RAM, -ENOTSUP indirect
 * descriptor, -EPROTO readable descriptor after a writable one.
 */
int vq_pop(struct kvm_vm *vm, struct vq *q, struct vq_chain *c)
{
	uint16_t avail_idx = __atomic_load_n((const uint16_t *)(q->avail + 2), __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);

	if (!pending)
		return 0;
	if (pending > q->num)
		return -ERANGE;
	uint16_t i = ld16(q->avail + 4 + 2 * (q->last_avail & (q->num - 1)));
	if (i >= q->num)
		return -EINVAL;
	c->head = i;
	c->nr = 0;
	c->read_bytes = c->write_bytes = 0;
	for (;;) {
		uint8_t raw[16];
		if (c->nr >= q->num)
			return -ELOOP;
		memcpy(raw, q->desc + 16u * i, sizeof(raw));
		uint64_t addr = hr_get_le64(raw);
		uint32_t len = hr_get_le32(raw + 8);
		uint16_t flags = hr_get_le16(raw + 12), next = hr_get_le16(raw + 14);
		if (flags & VRING_DESC_F_INDIRECT)
			return -ENOTSUP;
		uint8_t *hva = kvm_gpa_ptr(vm, addr, len);
		if (!hva)
			return -EFAULT;
		struct vq_seg *s = &c->seg[c->nr++];
		s->hva = hva;
		s->gpa = addr;
		s->len = len;
		s->write = (flags & VRING_DESC_F_WRITE) != 0;
		if (s->write)
			c->write_bytes += len;
		else if (c->write_bytes)
			return -EPROTO;
		else
			c->read_bytes += len;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		if (next >= q->num)
			return -EINVAL;
		i = next;
	}
	q->last_avail++;
	return 1;
}

/* Gather up to len bytes of the chain's readable part; returns bytes copied. */
size_t vq_chain_read(struct kvm_vm *vm, const struct vq_chain *c, void *buf, size_t len)
{
	size_t done = 0;
	(void)vm;
	for (unsigned i = 0; i < c->nr && done < len; i++) {
		const struct vq_seg *s = &c->seg[i];
		if (s->write)
			break;
		size_t n = s->len < len - done ? s->len : len - done;
		memcpy((uint8_t *)buf + done, s->hva, n);
		done += n;
	}
	return done;
}

/* Scatter len bytes into the chain's writable part; returns bytes written. */
size_t vq_chain_write(struct kvm_vm *vm, const struct vq_chain *c, const void *buf, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < c->nr && done < len; i++) {
		const struct vq_seg *s = &c->seg[i];
		if (!s->write)
			continue;
		size_t n = s->len < len - done ? s->len : len - done;
		memcpy(s->hva, (const uint8_t *)buf + done, n);
		kvm_dirty_note(vm, s->gpa, n);
		done += n;
	}
	return done;
}

/* Return a chain to the driver with len bytes written into it. */
void vq_push(struct kvm_vm *vm, struct vq *q, uint16_t head, uint32_t len)
{
	uint32_t slot = q->used_idx & (q->num - 1);
	uint8_t *e = q->used + 4 + 8 * slot;

	hr_put_le32(e, head);
	hr_put_le32(e + 4, len);
	q->used_idx++;
	/* the element is visible before the index that publishes it */
	__atomic_store_n((uint16_t *)(q->used + 2), q->used_idx, __ATOMIC_RELEASE);
	kvm_dirty_note(vm, q->used_gpa + 4 + 8 * slot, 8);
	kvm_dirty_note(vm, q->used_gpa + 2, 2);
}

/*
 * After pushing: must the driver be interrupted?  With EVENT_IDX only if
 * used_event lies in [index at the last decision, used_idx); else unless
 * the driver set VRING_AVAIL_F_NO_INTERRUPT.
 */
int vq_should_signal(struct vq *q, uint64_t features)
{
	/* our used->idx store is ordered before the reads of the driver's wishes */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!(features & VIRTIO_RING_F_EVENT_IDX))
		return !(ld16(q->avail) & VRING_AVAIL_F_NO_INTERRUPT);
	uint16_t event = ld16(q->avail + 4 + 2 * q->num);
	uint16_t old = q->signalled_used, now = q->used_idx;
	int valid = q->signalled_valid;
	q->signalled_used = now;
	q->signalled_valid = 1;
	return !valid || (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

/*
 * Ask for a notification when the driver adds a chain past last_avail
 * (EVENT_IDX: avail_event; otherwise the device never sets
 * VRING_USED_F_NO_NOTIFY).  Returns 1 if chains are already there: the
 * caller processes them instead of waiting.
 */
int vq_want_notify(struct kvm_vm *vm, struct vq *q, uint64_t features)
{
	if (features & VIRTIO_RING_F_EVENT_IDX) {
		uint8_t *p = q->used + 4 + 8 * q->num;
		if (ld16(p) != q->last_avail) {
			__atomic_store_n((uint16_t *)p, q->last_avail, __ATOMIC_RELAXED);
			kvm_dirty_note(vm, q->used_gpa + 4 + 8 * q->num, 2);
		}
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t avail_idx = __atomic_load_n((const uint16_t *)(q->avail + 2), __ATOMIC_ACQUIRE);
	return avail_idx != q->last_avail;
}

const char *vq_strerror(int rc)
{
	switch (rc) {
	case -ERANGE:
		return "avail index runs more than a ring ahead";
	case -EINVAL:
		return "descriptor index out of range";
	case -ELOOP:
		return "descriptor chain longer than the ring (a loop)";
	case -EFAULT:
		return "buffer outside guest RAM";
	case -ENOTSUP:
		return "indirect descriptor (not negotiated)";
	case -EPROTO:
		return "device-readable descriptor after a writable one";
	default:
		return strerror(-rc);
	}
}
