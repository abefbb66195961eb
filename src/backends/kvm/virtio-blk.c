/*
 * virtio-blk.c - a virtio-blk device (virtio 1.x, 5.2) on a raw image, one
 * per hr_vm_config.disks[i], keeping the disk contract of backend.h.
 *
 * Features: VERSION_1, SEG_MAX, BLK_SIZE (512), FLUSH, RING_EVENT_IDX; RO
 * for a readonly disk, else DISCARD and WRITE_ZEROES (both zero the range
 * through hr_image_zero, so a discarded range reads zero on every replica).
 * GET_ID answers the disk's serial.  One request queue.
 *
 * A request is taken from the ring on the vCPU thread that kicked it (or on
 * resume, or when an earlier one completes), checked, and handed to the
 * disk's aio (src/disk/aio.h) with iovecs straight into guest memory; the
 * aio's thread completes it: it reports a write to cfg->disk_write segment
 * by segment (data from guest memory at their byte offsets; zeroing as
 * HR_DW_ZEROES; a flush as HR_DW_FLUSH) without the device lock, then,
 * under it, writes the status byte and pushes the used entry, so the report always precedes
 * what the guest can observe.  A guest that changes a buffer while its
 * write is in flight may see the image and the report differ in it, as it
 * may on hardware; it rewrites such a page anyway.
 *
 * A hostile ring: vq_pop refuses loops, out-of-range indices and buffers
 * outside RAM (the device then needs a reset, as virtio-net); a chain
 * without a readable 16-byte header or a writable status byte at its end
 * does too.  Everything else that is wrong with a request (direction,
 * lengths, sectors past the capacity, too many segments, writes to a
 * readonly disk) completes it with VIRTIO_BLK_S_IOERR; an unknown type with
 * VIRTIO_BLK_S_UNSUPP.  At most `num` requests are in flight.
 *
 * pause (kvm_virtio_pause) and a driver's reset wait for every request in
 * flight; a replica is never resumed, so it never writes its images.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm-internal.h"
#include "virtio-blk.h"
#include "virtio.h"
#include "common/err.h"
#include "common/log.h"
#include "common/unaligned.h"

#define VIRTIO_BLK_F_SEG_MAX	  (1ull << 2)
#define VIRTIO_BLK_F_RO		  (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE	  (1ull << 6)
#define VIRTIO_BLK_F_FLUSH	  (1ull << 9)
#define VIRTIO_BLK_F_DISCARD	  (1ull << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ull << 14)

#define VIRTIO_BLK_T_IN		  0u
#define VIRTIO_BLK_T_OUT	  1u
#define VIRTIO_BLK_T_FLUSH	  4u
#define VIRTIO_BLK_T_GET_ID	  8u
#define VIRTIO_BLK_T_DISCARD	  11u
#define VIRTIO_BLK_T_WRITE_ZEROES 13u

#define VIRTIO_BLK_S_OK	    0u
#define VIRTIO_BLK_S_IOERR  1u
#define VIRTIO_BLK_S_UNSUPP 2u

#define VIRTIO_BLK_WZ_F_UNMAP 1u
#define VIRTIO_BLK_ID_BYTES   20u

#define BLK_HDR_BYTES  16u
#define BLK_SEG_BYTES  16u /* discard / write-zeroes segment */
#define BLK_Q	       0
#define BLK_LOG_ERRORS 16

/* The device's own state record (after the transport's, virtio-mmio.c):
 *   u32 layout=1 | u32 flags (bit 0 readonly) | u64 capacity (sectors)
 *   u8 serial[20] | u32 0
 * Wire type: any change requires a layout version bump. */
#define BLK_STATE_LAYOUT 1u
#define BLK_STATE_BYTES	 40u

struct vblk {
	struct kvm_vm *vm;
	struct virtio_dev *dev;
	unsigned disk;
	struct hr_image img;
	struct hr_aio *aio;
	uint64_t capacity; /* sectors */
	int readonly;
	char serial[VIRTIO_BLK_ID_BYTES];
	/* guarded by dev->lock */
	unsigned nr_inflight;
	int throttled; /* stopped popping at nr_inflight == num */
	int quiesce;   /* a reset waits for the requests in flight */
	struct kvm_blk_stats stats;
	struct vq_chain chain;
};

struct vblk_req {
	struct hr_aio_req aio; /* first: the callback's argument */
	struct vblk *b;
	uint32_t type;
	uint16_t head;
	uint8_t *status;
	uint64_t status_gpa;
	uint64_t off, bytes;
	unsigned nr;
	struct iovec iov[VBLK_SEG_MAX];	 /* handed to the aio (it advances them) */
	struct iovec data[VBLK_SEG_MAX]; /* the same, kept for reports and dirty notes */
	uint64_t gpa[VBLK_SEG_MAX];
};

static const char *type_name(uint32_t t)
{
	switch (t) {
	case VIRTIO_BLK_T_IN:
		return "read";
	case VIRTIO_BLK_T_OUT:
		return "write";
	case VIRTIO_BLK_T_FLUSH:
		return "flush";
	case VIRTIO_BLK_T_DISCARD:
		return "discard";
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return "write-zeroes";
	default:
		return "request";
	}
}

/* A failed host I/O or report: one log line naming VM, disk and errno. */
static void log_io_error(struct vblk *b, const char *what, uint64_t off, int err)
{
	b->stats.io_errors++;
	if (b->stats.io_errors <= BLK_LOG_ERRORS || b->stats.io_errors % 1000 == 0)
		log_warnx(b->vm->name, "virtio-blk disk%u (%s): %s at byte %llu failed: %s%s",
			  b->disk, b->img.path, what, (unsigned long long)off, hr_strerror(err),
			  b->stats.io_errors == BLK_LOG_ERRORS ? " (further errors: 1 in 1000)"
							       : "");
}

/* Status byte, used entry.  Lock held.  Returns 1 if pushed. */
static int finish(struct vblk *b, struct vblk_req *r, uint8_t status, uint32_t used_len)
{
	struct vq *q = &b->dev->vq[BLK_Q];

	if (status == VIRTIO_BLK_S_UNSUPP)
		b->stats.unsupported++;
	if (!q->ready || !q->used)
		return 0; /* the driver took the queue away meanwhile */
	*r->status = status;
	kvm_dirty_note(b->vm, r->status_gpa, 1);
	vq_push(b->vm, q, r->head, used_len);
	return 1;
}

/*
 * The part of chain c in one direction (writable or not), skipping `skip`
 * bytes and taking `len`, as iovecs into r.  0, or -E2BIG beyond
 * VBLK_SEG_MAX segments.
 */
static int slice(struct vblk_req *r, const struct vq_chain *c, int writable, uint64_t skip,
		 uint64_t len)
{
	r->nr = 0;
	r->bytes = len;
	for (unsigned i = 0; i < c->nr && len; i++) {
		const struct vq_seg *s = &c->seg[i];
		if ((int)s->write != writable)
			continue;
		if (skip >= s->len) {
			skip -= s->len;
			continue;
		}
		uint64_t n = s->len - skip;
		if (n > len)
			n = len;
		if (r->nr >= VBLK_SEG_MAX)
			return -E2BIG;
		r->data[r->nr] = (struct iovec){s->hva + skip, (size_t)n};
		r->gpa[r->nr] = s->gpa + skip;
		r->nr++;
		len -= n;
		skip = 0;
	}
	memcpy(r->iov, r->data, r->nr * sizeof(r->iov[0]));
	return 0;
}

static int in_capacity(const struct vblk *b, uint64_t sector, uint64_t nr_sectors)
{
	return sector <= b->capacity && nr_sectors <= b->capacity - sector;
}

static void blk_done(struct hr_aio_req *a, int result);

/*
 * Check one chain and start it.  Lock held.  Returns 1 if it completed at
 * once (pushed), 0 if it is in flight or lost to a reset-worthy error.
 */
static int start_req(struct vblk *b, const struct vq_chain *c)
{
	struct virtio_dev *d = b->dev;
	const struct vq_seg *last = &c->seg[c->nr - 1];
	uint8_t hdr[BLK_HDR_BYTES + BLK_SEG_BYTES];

	b->stats.reqs++;
	if (c->read_bytes < BLK_HDR_BYTES || !last->write || last->len < 1) {
		virtio_needs_reset(d, "request without a 16-byte header and a status byte");
		return 0;
	}
	struct vblk_req *r = calloc(1, sizeof(*r));
	if (!r) {
		virtio_needs_reset(d, "out of memory for a request");
		return 0;
	}
	r->b = b;
	r->head = c->head;
	r->status = last->hva + last->len - 1;
	r->status_gpa = last->gpa + last->len - 1;
	size_t got = vq_chain_read(b->vm, c, hdr, sizeof(hdr));
	r->type = hr_get_le32(hdr);
	uint64_t sector = hr_get_le64(hdr + 8);
	uint64_t data_in = c->read_bytes - BLK_HDR_BYTES, data_out = c->write_bytes - 1;
	uint8_t st = VIRTIO_BLK_S_IOERR;
	uint32_t used = 1;

	r->aio.done = blk_done;
	r->aio.opaque = r;
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		int in = r->type == VIRTIO_BLK_T_IN;
		uint64_t len = in ? data_out : data_in;
		if ((in ? data_in : data_out) || len % HR_DISK_SECTOR_BYTES ||
		    !in_capacity(b, sector, len / HR_DISK_SECTOR_BYTES) || (!in && b->readonly) ||
		    slice(r, c, in, in ? 0 : BLK_HDR_BYTES, len) < 0)
			goto now;
		r->off = sector * HR_DISK_SECTOR_BYTES;
		if (!len) {
			st = VIRTIO_BLK_S_OK;
			goto now;
		}
		r->aio.op = in ? HR_AIO_READ : HR_AIO_WRITE;
		r->aio.off = r->off;
		r->aio.iov = r->iov;
		r->aio.nr_iov = r->nr;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (data_in || data_out)
			goto now;
		r->aio.op = HR_AIO_FLUSH;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		if (data_in)
			goto now;
		uint8_t id[VIRTIO_BLK_ID_BYTES];
		memcpy(id, b->serial, sizeof(id));
		size_t n = data_out < sizeof(id) ? (size_t)data_out : sizeof(id);
		used = (uint32_t)vq_chain_write(b->vm, c, id, n) + 1;
		st = VIRTIO_BLK_S_OK;
		goto now;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		if (b->readonly || data_out || data_in != BLK_SEG_BYTES || got != sizeof(hdr))
			goto now;
		uint64_t s0 = hr_get_le64(hdr + BLK_HDR_BYTES);
		uint32_t nr = hr_get_le32(hdr + BLK_HDR_BYTES + 8);
		uint32_t flags = hr_get_le32(hdr + BLK_HDR_BYTES + 12);
		uint32_t allowed = r->type == VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WZ_F_UNMAP : 0;
		if (flags & ~allowed) {
			st = VIRTIO_BLK_S_UNSUPP;
			goto now;
		}
		if (nr > VBLK_MAX_ZERO_SECTORS || !in_capacity(b, s0, nr))
			goto now;
		if (!nr) {
			st = VIRTIO_BLK_S_OK; /* nothing to zero, nothing to report */
			goto now;
		}
		r->off = s0 * HR_DISK_SECTOR_BYTES;
		r->bytes = (uint64_t)nr * HR_DISK_SECTOR_BYTES;
		r->aio.op = HR_AIO_ZERO;
		r->aio.off = r->off;
		r->aio.len = r->bytes;
		break;
	}
	default:
		st = VIRTIO_BLK_S_UNSUPP;
		goto now;
	}
	int rc = hr_aio_submit(b->aio, &r->aio);
	if (rc == 0) {
		b->nr_inflight++;
		return 0;
	}
	log_io_error(b, type_name(r->type), r->off, rc);
	goto push;
now:
	if (st == VIRTIO_BLK_S_IOERR && b->stats.io_errors++ < BLK_LOG_ERRORS)
		log_debug(b->vm->name, "virtio-blk disk%u: malformed %s (type %u) refused", b->disk,
			  type_name(r->type), r->type);
push:;
	int pushed = finish(b, r, st, used);
	free(r);
	return pushed;
}

/* Take and start requests while the device is live.  Lock held. */
static void process(struct vblk *b)
{
	struct virtio_dev *d = b->dev;
	struct vq *q = &d->vq[BLK_Q];
	int pushed = 0;

	if (!virtio_live(d) || !q->ready || b->quiesce)
		return;
	b->throttled = 0;
	do {
		int rc = 0;
		while (b->nr_inflight < q->num && (rc = vq_pop(b->vm, q, &b->chain)) > 0)
			pushed |= start_req(b, &b->chain);
		if (rc < 0) {
			virtio_needs_reset(d, "request queue: %s", vq_strerror(rc));
			break;
		}
		if (b->nr_inflight >= q->num) {
			b->throttled = 1; /* taken again as requests complete */
			break;
		}
	} while (vq_want_notify(b->vm, q, d->driver_features));
	if (pushed && vq_should_signal(q, d->driver_features))
		virtio_raise(d, VIRTIO_INT_VRING);
}

/* Report a completed write to the core (lock not held: the core's locks
 * never nest inside a device's).  0 or < 0. */
static int report(struct vblk *b, struct vblk_req *r)
{
	hr_disk_write_fn dw = b->vm->cfg.disk_write;
	void *op = b->vm->cfg.disk_opaque;
	int rc = 0;

	if (!dw)
		return 0;
	switch (r->type) {
	case VIRTIO_BLK_T_OUT: {
		uint64_t off = r->off;
		for (unsigned i = 0; i < r->nr && rc >= 0; i++) {
			if (r->data[i].iov_len)
				rc = dw(op, b->disk, off, r->data[i].iov_base, r->data[i].iov_len,
					0);
			off += r->data[i].iov_len;
		}
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		rc = dw(op, b->disk, 0, NULL, 0, HR_DW_FLUSH);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		rc = dw(op, b->disk, r->off, NULL, r->bytes, HR_DW_ZEROES);
		break;
	default:
		return 0;
	}
	return rc < 0 ? rc : 0;
}

/* The aio's thread: report, then (locked) status, used entry, interrupt. */
static void blk_done(struct hr_aio_req *a, int result)
{
	struct vblk_req *r = a->opaque;
	struct vblk *b = r->b;
	struct virtio_dev *d = b->dev;
	uint8_t st = VIRTIO_BLK_S_OK;
	uint32_t used = 1;
	int rep = 0;

	if (result >= 0 && r->type != VIRTIO_BLK_T_IN)
		rep = report(b, r);
	pthread_mutex_lock(&d->lock);
	if (result < 0) {
		log_io_error(b, type_name(r->type), r->off, result);
		st = VIRTIO_BLK_S_IOERR;
	} else if (r->type == VIRTIO_BLK_T_IN) {
		for (unsigned i = 0; i < r->nr; i++)
			kvm_dirty_note(b->vm, r->gpa[i], r->data[i].iov_len);
		used = (uint32_t)r->bytes + 1;
	} else if (rep < 0) {
		log_io_error(b, "reporting a completed write to the core", r->off, rep);
		st = VIRTIO_BLK_S_IOERR;
	} else if (b->vm->cfg.disk_write) {
		b->stats.reported++;
	}
	b->nr_inflight--;
	if (finish(b, r, st, used) && vq_should_signal(&d->vq[BLK_Q], d->driver_features))
		virtio_raise(d, VIRTIO_INT_VRING);
	if (b->throttled)
		process(b);
	pthread_mutex_unlock(&d->lock);
	free(r);
}

static void blk_notify(struct virtio_dev *d, unsigned q)
{
	if (q == BLK_Q)
		process(d->priv);
}

static void blk_config_read(struct virtio_dev *d, uint32_t off, uint8_t *buf, unsigned len)
{
	struct vblk *b = d->priv;
	uint8_t cfg[VBLK_CONFIG_BYTES];

	memset(cfg, 0, sizeof(cfg));
	hr_put_le64(cfg + 0, b->capacity);
	hr_put_le32(cfg + 12, VBLK_SEG_MAX);
	hr_put_le32(cfg + 20, HR_DISK_SECTOR_BYTES); /* blk_size */
	hr_put_le16(cfg + 34, 1);		     /* num_queues */
	if (!b->readonly) {
		hr_put_le32(cfg + 36, VBLK_MAX_ZERO_SECTORS); /* max_discard_sectors */
		hr_put_le32(cfg + 40, 1);		      /* max_discard_seg */
		hr_put_le32(cfg + 44, 1);		      /* discard_sector_alignment */
		hr_put_le32(cfg + 48, VBLK_MAX_ZERO_SECTORS); /* max_write_zeroes_sectors */
		hr_put_le32(cfg + 52, 1);		      /* max_write_zeroes_seg */
		cfg[56] = 1;				      /* write_zeroes_may_unmap */
	}
	memcpy(buf, cfg + off, len);
}

static void blk_state_save(struct virtio_dev *d, uint8_t *p)
{
	struct vblk *b = d->priv;
	memset(p, 0, BLK_STATE_BYTES);
	hr_put_le32(p, BLK_STATE_LAYOUT);
	hr_put_le32(p + 4, b->readonly ? 1u : 0u);
	hr_put_le64(p + 8, b->capacity);
	memcpy(p + 16, b->serial, VIRTIO_BLK_ID_BYTES);
}

static int blk_state_load(struct virtio_dev *d, const uint8_t *p)
{
	struct vblk *b = d->priv;
	uint64_t cap = hr_get_le64(p + 8);
	int ro = (hr_get_le32(p + 4) & 1) != 0;

	if (hr_get_le32(p) != BLK_STATE_LAYOUT) {
		kvm_set_error(b->vm, "state blob: virtio-blk disk%u record layout %u, want %u",
			      b->disk, hr_get_le32(p), BLK_STATE_LAYOUT);
		return -HR_EBADSTATE;
	}
	if (cap != b->capacity || ro != b->readonly) {
		kvm_set_error(b->vm, "state blob: disk%u had %llu sectors%s, %s has %llu%s here",
			      b->disk, (unsigned long long)cap, ro ? " (readonly)" : "",
			      b->img.path, (unsigned long long)b->capacity,
			      b->readonly ? " (readonly)" : "");
		return -HR_EBADSTATE;
	}
	memcpy(b->serial, p + 16, VIRTIO_BLK_ID_BYTES); /* guest-visible: the blob's */
	return 0;
}

static void blk_pause(struct virtio_dev *d)
{
	struct vblk *b = d->priv;
	hr_aio_drain(b->aio);
}

static void blk_resume(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	process(d->priv); /* kicks that came while paused */
	pthread_mutex_unlock(&d->lock);
}

static void blk_reset(struct virtio_dev *d)
{
	struct vblk *b = d->priv;
	b->quiesce = 1;
	pthread_mutex_unlock(&d->lock);
	hr_aio_drain(b->aio);
	pthread_mutex_lock(&d->lock);
	b->quiesce = 0;
	b->throttled = 0;
}

static void blk_destroy(struct virtio_dev *d)
{
	struct vblk *b = d->priv;
	if (!b)
		return;
	hr_aio_destroy(b->aio);
	hr_image_close(&b->img);
	free(b);
	d->priv = NULL;
}

static const struct virtio_dev_ops blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .nr_queues = 1,
    .notify = blk_notify,
    .config_read = blk_config_read,
    .config_bytes = VBLK_CONFIG_BYTES,
    .state_bytes = BLK_STATE_BYTES,
    .state_save = blk_state_save,
    .state_load = blk_state_load,
    .pause = blk_pause,
    .resume = blk_resume,
    .destroy = blk_destroy,
    .reset = blk_reset,
};

int kvm_blk_create(struct kvm_vm *vm, unsigned disk)
{
	const struct hr_disk_spec *spec = &vm->cfg.disks[disk];
	char why[300];
	int rc;

	if (!spec->path) {
		kvm_set_error(vm, "disk%u: no path", disk);
		return -EINVAL;
	}
	if (spec->serial && strlen(spec->serial) > VIRTIO_BLK_ID_BYTES) {
		kvm_set_error(vm, "disk%u: serial '%s' is longer than %u bytes", disk, spec->serial,
			      VIRTIO_BLK_ID_BYTES);
		return -EINVAL;
	}
	struct vblk *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->vm = vm;
	b->disk = disk;
	b->readonly = spec->readonly != 0;
	if (spec->serial)
		memcpy(b->serial, spec->serial, strlen(spec->serial));
	if ((rc = hr_image_open(&b->img, spec->path, b->readonly, why, sizeof(why))) < 0) {
		kvm_set_error(vm, "%s", why);
		free(b);
		return rc;
	}
	b->capacity = b->img.bytes / HR_DISK_SECTOR_BYTES;
	if ((rc = hr_aio_create(&b->aio, &b->img, VQ_NUM_MAX, why, sizeof(why))) < 0) {
		kvm_set_error(vm, "%s", why);
		hr_image_close(&b->img);
		free(b);
		return rc;
	}
	uint64_t f = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH |
		     VIRTIO_RING_F_EVENT_IDX;
	f |= b->readonly ? VIRTIO_BLK_F_RO : VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
	if ((rc = virtio_mmio_add(vm, &blk_ops, b, f, &b->dev)) < 0) {
		hr_aio_destroy(b->aio);
		hr_image_close(&b->img);
		free(b);
		return rc;
	}
	log_debug(
	    vm->name, "virtio-blk disk%u: %s, %llu sectors%s, aio %s, registers at 0x%llx, GSI %u",
	    disk, spec->path, (unsigned long long)b->capacity, b->readonly ? ", readonly" : "",
	    hr_aio_engine(b->aio), (unsigned long long)b->dev->base, b->dev->gsi);
	return 0;
}

static struct vblk *find(struct kvm_vm *vm, unsigned disk)
{
	for (unsigned i = 0; i < vm->nr_vdevs; i++) {
		struct virtio_dev *d = vm->vdevs[i];
		if (d->ops == &blk_ops && d->priv && ((struct vblk *)d->priv)->disk == disk)
			return d->priv;
	}
	return NULL;
}

struct hr_aio *kvm_blk_aio(struct kvm_vm *vm, unsigned disk)
{
	struct vblk *b = find(vm, disk);
	return b ? b->aio : NULL;
}

int kvm_blk_get_stats(struct kvm_vm *vm, unsigned disk, struct kvm_blk_stats *s)
{
	struct vblk *b = find(vm, disk);
	if (!b)
		return -ENODEV;
	pthread_mutex_lock(&b->dev->lock);
	*s = b->stats;
	pthread_mutex_unlock(&b->dev->lock);
	return 0;
}
