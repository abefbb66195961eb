/*
 * virtio-mmio.c - the virtio-mmio transport, version 2 (virtio 1.x, 4.2.2),
 * for the devices of the KVM backend.  Guest accesses arrive as
 * KVM_EXIT_MMIO on a vCPU thread (kvm_mmio); the register file is below.
 * Registers 0x000-0x0ff are 32-bit and must be accessed as aligned 32-bit
 * words (anything else reads 0 and is ignored); 0x100 on is the device's
 * config space, any width.  Placement and interrupts: see virtio.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm-internal.h"
#include "virtio.h"
#include "common/err.h"
#include "common/log.h"
#include "common/unaligned.h"

#define MMIO_MAGIC	   0x000
#define MMIO_VERSION	   0x004
#define MMIO_DEVICE_ID	   0x008
#define MMIO_VENDOR_ID	   0x00c
#define MMIO_DEV_FEATURES  0x010
#define MMIO_DEV_FEAT_SEL  0x014
#define MMIO_DRV_FEATURES  0x020
#define MMIO_DRV_FEAT_SEL  0x024
#define MMIO_QUEUE_SEL	   0x030
#define MMIO_QUEUE_NUM_MAX 0x034
#define MMIO_QUEUE_NUM	   0x038
#define MMIO_QUEUE_READY   0x044
#define MMIO_QUEUE_NOTIFY  0x050
#define MMIO_INT_STATUS	   0x060
#define MMIO_INT_ACK	   0x064
#define MMIO_STATUS	   0x070
#define MMIO_DESC_LOW	   0x080
#define MMIO_DESC_HIGH	   0x084
#define MMIO_DRIVER_LOW	   0x090
#define MMIO_DRIVER_HIGH   0x094
#define MMIO_DEVICE_LOW	   0x0a0
#define MMIO_DEVICE_HIGH   0x0a4
#define MMIO_SHM_LEN_LOW   0x0b0
#define MMIO_SHM_BASE_HIGH 0x0bc
#define MMIO_CONFIG_GEN	   0x0fc
#define MMIO_CONFIG	   0x100

#define MMIO_MAGIC_VALUE  0x74726976u /* "virt" */
#define MMIO_VENDOR_VALUE 0x4d565248u /* "HRVM" */

/* The device state record (state.c, R_VIRTIO): layout version 1. */
#define VSTATE_LAYOUT	   1u
#define VSTATE_HDR_BYTES   56u
#define VSTATE_QUEUE_BYTES 40u

static void set_line(struct virtio_dev *d, int pulse)
{
	uint32_t level = d->isr != 0;
	if (level && pulse && d->irq_level) {
		/* bits remain after an ACK: a new edge for an edge-triggered pin */
		kvm_irq_line(d->vm, d->gsi, 0);
		kvm_irq_line(d->vm, d->gsi, 1);
		return;
	}
	if (level != d->irq_level) {
		d->irq_level = level;
		kvm_irq_line(d->vm, d->gsi, (int)level);
	}
}

void virtio_raise(struct virtio_dev *d, uint32_t bits)
{
	d->isr |= bits;
	set_line(d, 0);
}

int virtio_live(const struct virtio_dev *d)
{
	return (d->status & VIRTIO_S_DRIVER_OK) && !(d->status & VIRTIO_S_NEEDS_RESET) &&
	       !d->paused;
}

void virtio_needs_reset(struct virtio_dev *d, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (d->status & VIRTIO_S_NEEDS_RESET)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	d->status |= VIRTIO_S_NEEDS_RESET;
	if (d->nr_errors < 16) {
		d->nr_errors++;
		log_warnx(d->vm->name, "%s %u: %s: device needs reset", d->ops->name, d->index,
			  why);
	}
	if (d->status & VIRTIO_S_DRIVER_OK)
		virtio_raise(d, VIRTIO_INT_CONFIG);
}

static void dev_reset(struct virtio_dev *d)
{
	d->status = 0;
	d->driver_features = 0;
	d->dev_feat_sel = d->drv_feat_sel = d->queue_sel = 0;
	d->isr = 0;
	for (unsigned i = 0; i < VQ_MAX; i++)
		vq_reset(&d->vq[i]);
	set_line(d, 0);
}

static struct vq *sel_vq(struct virtio_dev *d)
{
	return d->queue_sel < d->ops->nr_queues ? &d->vq[d->queue_sel] : NULL;
}

static void write_status(struct virtio_dev *d, uint32_t v)
{
	if (!v) {
		if (d->ops->reset)
			d->ops->reset(d);
		dev_reset(d);
		return;
	}
	v &= 0xff & ~VIRTIO_S_NEEDS_RESET;
	if ((v & VIRTIO_S_FEATURES_OK) && !(d->status & VIRTIO_S_FEATURES_OK)) {
		uint64_t f = d->driver_features;
		if (!(f & VIRTIO_F_VERSION_1) || (f & ~d->host_features)) {
			/* not accepted: FEATURES_OK stays clear, as the spec asks */
			log_debug(d->vm->name, "%s %u: driver features 0x%llx refused",
				  d->ops->name, d->index, (unsigned long long)f);
			v &= ~VIRTIO_S_FEATURES_OK;
		}
	}
	if ((v & VIRTIO_S_DRIVER_OK) && !(v & VIRTIO_S_FEATURES_OK))
		v &= ~VIRTIO_S_DRIVER_OK; /* a legacy driver: this device is modern only */
	d->status = v | (d->status & VIRTIO_S_NEEDS_RESET);
}

static void set_half(uint64_t *x, int high, uint32_t v)
{
	if (high)
		*x = (*x & 0xffffffffull) | ((uint64_t)v << 32);
	else
		*x = (*x & ~0xffffffffull) | v;
}

static void write_queue_ready(struct virtio_dev *d, struct vq *q, uint32_t v)
{
	if (!v) {
		q->ready = 0;
		q->desc = q->avail = q->used = NULL;
		return;
	}
	if (q->ready)
		return;
	int rc = vq_map(d->vm, q);
	if (rc < 0) {
		virtio_needs_reset(d,
				   "queue %u refused (num %u, desc 0x%llx, driver 0x%llx, device "
				   "0x%llx): %s",
				   d->queue_sel, q->num, (unsigned long long)q->desc_gpa,
				   (unsigned long long)q->avail_gpa,
				   (unsigned long long)q->used_gpa,
				   rc == -EFAULT ? "not in guest RAM" : "bad size or alignment");
		return;
	}
	/* a queue made ready has fresh rings: both indices start at 0 */
	q->ready = 1;
	q->last_avail = q->used_idx = 0;
	q->signalled_valid = 0;
}

static void reg_write(struct virtio_dev *d, uint32_t off, uint32_t v)
{
	struct vq *q = sel_vq(d);

	switch (off) {
	case MMIO_DEV_FEAT_SEL:
		d->dev_feat_sel = v;
		break;
	case MMIO_DRV_FEAT_SEL:
		d->drv_feat_sel = v;
		break;
	case MMIO_DRV_FEATURES:
		if (d->status & VIRTIO_S_FEATURES_OK)
			break;
		if (d->drv_feat_sel < 2)
			set_half(&d->driver_features, d->drv_feat_sel == 1, v);
		break;
	case MMIO_QUEUE_SEL:
		d->queue_sel = v;
		break;
	case MMIO_QUEUE_NUM:
		if (q && !q->ready)
			q->num = v;
		break;
	case MMIO_QUEUE_READY:
		if (q)
			write_queue_ready(d, q, v);
		break;
	case MMIO_DESC_LOW:
	case MMIO_DESC_HIGH:
		if (q && !q->ready)
			set_half(&q->desc_gpa, off == MMIO_DESC_HIGH, v);
		break;
	case MMIO_DRIVER_LOW:
	case MMIO_DRIVER_HIGH:
		if (q && !q->ready)
			set_half(&q->avail_gpa, off == MMIO_DRIVER_HIGH, v);
		break;
	case MMIO_DEVICE_LOW:
	case MMIO_DEVICE_HIGH:
		if (q && !q->ready)
			set_half(&q->used_gpa, off == MMIO_DEVICE_HIGH, v);
		break;
	case MMIO_QUEUE_NOTIFY:
		v &= 0xffff;
		if (v < d->ops->nr_queues && d->vq[v].ready && virtio_live(d))
			d->ops->notify(d, v);
		break;
	case MMIO_INT_ACK:
		d->isr &= ~v;
		set_line(d, 1);
		break;
	case MMIO_STATUS:
		write_status(d, v);
		break;
	default:
		break; /* read-only or unknown: ignored */
	}
}

static uint32_t reg_read(struct virtio_dev *d, uint32_t off)
{
	struct vq *q = sel_vq(d);

	switch (off) {
	case MMIO_MAGIC:
		return MMIO_MAGIC_VALUE;
	case MMIO_VERSION:
		return 2;
	case MMIO_DEVICE_ID:
		return d->ops->device_id;
	case MMIO_VENDOR_ID:
		return MMIO_VENDOR_VALUE;
	case MMIO_DEV_FEATURES:
		return d->dev_feat_sel < 2 ? (uint32_t)(d->host_features >> (32 * d->dev_feat_sel))
					   : 0;
	case MMIO_QUEUE_NUM_MAX:
		return q ? VQ_NUM_MAX : 0;
	case MMIO_QUEUE_NUM:
		return q ? q->num : 0;
	case MMIO_QUEUE_READY:
		return q ? q->ready : 0;
	case MMIO_INT_STATUS:
		return d->isr;
	case MMIO_STATUS:
		return d->status;
	case MMIO_DESC_LOW:
	case MMIO_DESC_HIGH:
		return q ? (uint32_t)(q->desc_gpa >> (off == MMIO_DESC_HIGH ? 32 : 0)) : 0;
	case MMIO_DRIVER_LOW:
	case MMIO_DRIVER_HIGH:
		return q ? (uint32_t)(q->avail_gpa >> (off == MMIO_DRIVER_HIGH ? 32 : 0)) : 0;
	case MMIO_DEVICE_LOW:
	case MMIO_DEVICE_HIGH:
		return q ? (uint32_t)(q->used_gpa >> (off == MMIO_DEVICE_HIGH ? 32 : 0)) : 0;
	case MMIO_CONFIG_GEN:
		return d->config_gen;
	default:
		/* no shared memory regions: their length and base read as -1 */
		if (off >= MMIO_SHM_LEN_LOW && off <= MMIO_SHM_BASE_HIGH)
			return 0xffffffffu;
		return 0;
	}
}

/*
 * A guest access to guest-physical gpa.  Returns 0 if a virtio device
 * handled it, -ENOENT if no device is there (the caller answers as for an
 * empty bus).
 */
int kvm_mmio(struct kvm_vm *vm, uint64_t gpa, int is_write, uint8_t *data, unsigned len)
{
	if (gpa < VIRTIO_MMIO_BASE || len == 0 || len > 8)
		return -ENOENT;
	uint64_t i = (gpa - VIRTIO_MMIO_BASE) / VIRTIO_MMIO_STRIDE;
	if (i >= vm->nr_vdevs)
		return -ENOENT;
	struct virtio_dev *d = vm->vdevs[i];
	uint32_t off = (uint32_t)(gpa - d->base);

	if (!is_write)
		memset(data, 0, len);
	pthread_mutex_lock(&d->lock);
	if (off >= MMIO_CONFIG && off < VIRTIO_MMIO_BYTES) {
		uint32_t c = off - MMIO_CONFIG;
		if (!is_write && c < d->ops->config_bytes) {
			unsigned n =
			    c + len <= d->ops->config_bytes ? len : d->ops->config_bytes - c;
			d->ops->config_read(d, c, data, n);
		}
		/* config writes: no device here has a writable field */
	} else if (off < MMIO_CONFIG && len == 4 && !(off & 3)) {
		if (is_write)
			reg_write(d, off, hr_get_le32(data));
		else
			hr_put_le32(data, reg_read(d, off));
	} else if (d->nr_errors < 16) {
		d->nr_errors++;
		log_debug(vm->name, "%s %u: %u-byte %s at offset 0x%x ignored", d->ops->name,
			  d->index, len, is_write ? "write" : "read", off);
	}
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int virtio_mmio_add(struct kvm_vm *vm, const struct virtio_dev_ops *ops, void *priv,
		    uint64_t features, struct virtio_dev **d_r)
{
	if (vm->nr_vdevs >= VIRTIO_MMIO_MAX_DEVS) {
		kvm_set_error(vm, "at most %d virtio devices", VIRTIO_MMIO_MAX_DEVS);
		return -ENOSPC;
	}
	struct virtio_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vm = vm;
	d->index = vm->nr_vdevs;
	d->base = VIRTIO_MMIO_BASE + (uint64_t)d->index * VIRTIO_MMIO_STRIDE;
	d->gsi = virtio_mmio_gsi(d->index);
	d->ops = ops;
	d->priv = priv;
	d->host_features = features | VIRTIO_F_VERSION_1;
	d->paused = 1; /* until the first resume, as the vCPUs */
	pthread_mutex_init(&d->lock, NULL);
	for (unsigned i = 0; i < VQ_MAX; i++)
		vq_reset(&d->vq[i]);
	vm->vdevs[vm->nr_vdevs++] = d;
	*d_r = d;
	return 0;
}

/* The guest command line with one virtio_mmio.device= per device appended. */
int kvm_virtio_cmdline(struct kvm_vm *vm, const char *cmdline, char **cmdline_r)
{
	size_t n = (cmdline ? strlen(cmdline) : 0) + 64 * vm->nr_vdevs + 1;
	char *s = malloc(n);
	if (!s)
		return -ENOMEM;
	size_t at = (size_t)snprintf(s, n, "%s", cmdline ? cmdline : "");
	for (unsigned i = 0; i < vm->nr_vdevs; i++) {
		struct virtio_dev *d = vm->vdevs[i];
		at += (size_t)snprintf(s + at, n - at, "%svirtio_mmio.device=4K@0x%llx:%u",
				       at ? " " : "", (unsigned long long)d->base, d->gsi);
	}
	*cmdline_r = s;
	return 0;
}

void kvm_virtio_pause(struct kvm_vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vdevs; i++) {
		struct virtio_dev *d = vm->vdevs[i];
		pthread_mutex_lock(&d->lock);
		d->paused = 1;
		pthread_mutex_unlock(&d->lock);
		if (d->ops->pause)
			d->ops->pause(d);
	}
}

void kvm_virtio_resume(struct kvm_vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vdevs; i++) {
		struct virtio_dev *d = vm->vdevs[i];
		pthread_mutex_lock(&d->lock);
		d->paused = 0;
		pthread_mutex_unlock(&d->lock);
		if (d->ops->resume)
			d->ops->resume(d);
	}
}

void kvm_virtio_destroy(struct kvm_vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vdevs; i++) {
		struct virtio_dev *d = vm->vdevs[i];
		if (d->ops->destroy)
			d->ops->destroy(d);
		pthread_mutex_destroy(&d->lock);
		free(d);
		vm->vdevs[i] = NULL;
	}
	vm->nr_vdevs = 0;
}

/*
 * State record (little-endian):
 *   u32 layout=1 | u32 device_id | u32 nr_queues | u32 status | u32 dev_feat_sel
 *   u32 drv_feat_sel | u32 queue_sel | u32 isr | u32 config_gen | u32 irq_level
 *   u64 host_features | u64 driver_features
 *   per queue: u32 num | u32 ready | u64 desc | u64 driver | u64 device
 *              u16 last_avail | u16 used_idx | u16 signalled_used
 *              u8 signalled_valid | u8 0
 *   the device's own bytes (ops->state_bytes)
 */
size_t virtio_state_bytes(const struct virtio_dev *d)
{
	return VSTATE_HDR_BYTES + VSTATE_QUEUE_BYTES * d->ops->nr_queues + d->ops->state_bytes;
}

void virtio_state_save(struct virtio_dev *d, uint8_t *p)
{
	pthread_mutex_lock(&d->lock);
	uint32_t hdr[10] = {VSTATE_LAYOUT,   d->ops->device_id, d->ops->nr_queues, d->status,
			    d->dev_feat_sel, d->drv_feat_sel,	d->queue_sel,	   d->isr,
			    d->config_gen,   d->irq_level};
	for (unsigned i = 0; i < 10; i++)
		hr_put_le32(p + 4 * i, hdr[i]);
	hr_put_le64(p + 40, d->host_features);
	hr_put_le64(p + 48, d->driver_features);
	uint8_t *e = p + VSTATE_HDR_BYTES;
	for (unsigned i = 0; i < d->ops->nr_queues; i++, e += VSTATE_QUEUE_BYTES) {
		const struct vq *q = &d->vq[i];
		hr_put_le32(e, q->num);
		hr_put_le32(e + 4, q->ready);
		hr_put_le64(e + 8, q->desc_gpa);
		hr_put_le64(e + 16, q->avail_gpa);
		hr_put_le64(e + 24, q->used_gpa);
		hr_put_le16(e + 32, q->last_avail);
		hr_put_le16(e + 34, q->used_idx);
		hr_put_le16(e + 36, q->signalled_used);
		e[38] = q->signalled_valid;
		e[39] = 0;
	}
	if (d->ops->state_bytes)
		d->ops->state_save(d, e);
	pthread_mutex_unlock(&d->lock);
}

/* Validate the whole record first; apply only a record that is good. */
int virtio_state_load(struct virtio_dev *d, const uint8_t *p, size_t len)
{
	struct kvm_vm *vm = d->vm;
	struct vq vq[VQ_MAX];

	if (len != virtio_state_bytes(d) || hr_get_le32(p) != VSTATE_LAYOUT ||
	    hr_get_le32(p + 4) != d->ops->device_id || hr_get_le32(p + 8) != d->ops->nr_queues) {
		kvm_set_error(vm, "state blob: %s %u record does not match this VM's device",
			      d->ops->name, d->index);
		return -HR_EBADSTATE;
	}
	uint64_t drv = hr_get_le64(p + 48);
	if (drv & ~d->host_features) {
		kvm_set_error(vm, "state blob: %s %u negotiated features 0x%llx this device lacks",
			      d->ops->name, d->index,
			      (unsigned long long)(drv & ~d->host_features));
		return -HR_EBADSTATE;
	}
	const uint8_t *e = p + VSTATE_HDR_BYTES;
	for (unsigned i = 0; i < d->ops->nr_queues; i++, e += VSTATE_QUEUE_BYTES) {
		struct vq *q = &vq[i];
		vq_reset(q);
		q->num = hr_get_le32(e);
		q->ready = hr_get_le32(e + 4) != 0;
		q->desc_gpa = hr_get_le64(e + 8);
		q->avail_gpa = hr_get_le64(e + 16);
		q->used_gpa = hr_get_le64(e + 24);
		q->last_avail = hr_get_le16(e + 32);
		q->used_idx = hr_get_le16(e + 34);
		q->signalled_used = hr_get_le16(e + 36);
		q->signalled_valid = e[38] != 0;
		if (q->ready && vq_map(vm, q) < 0) {
			kvm_set_error(vm, "state blob: %s %u queue %u is not in this VM's RAM",
				      d->ops->name, d->index, i);
			return -HR_EBADSTATE;
		}
	}
	pthread_mutex_lock(&d->lock);
	int rc = d->ops->state_bytes ? d->ops->state_load(d, e) : 0;
	if (!rc) {
		d->status = hr_get_le32(p + 12);
		d->dev_feat_sel = hr_get_le32(p + 16);
		d->drv_feat_sel = hr_get_le32(p + 20);
		d->queue_sel = hr_get_le32(p + 24);
		d->isr = hr_get_le32(p + 28);
		d->config_gen = hr_get_le32(p + 32);
		d->driver_features = drv;
		for (unsigned i = 0; i < d->ops->nr_queues; i++)
			d->vq[i] = vq[i];
		/* the irqchip was restored before this record: drive the line again */
		d->irq_level = d->isr != 0;
		kvm_irq_line(vm, d->gsi, (int)d->irq_level);
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}
