/*
 * virtio-net.c - a virtio-net device (virtio 1.x, 5.1) on a TAP interface.
 *
 * Features: VERSION_1, MAC, STATUS (link always up), RING_EVENT_IDX.  No
 * offloads, no mergeable buffers, one queue pair: queue 0 receives, queue 1
 * transmits; every buffer starts with the 12-byte struct virtio_net_hdr.
 *
 * Transmit is guest output: each frame goes to cfg->emit on this device's
 * record channel ("net0") and nowhere else; the core releases it after the
 * backup acknowledged the epoch and hands it back through output_deliver
 * (kvm_net_deliver), which writes it to the TAP.  A frame the core cannot
 * hold (-ENOBUFS) is dropped as a congested link would; its descriptor is
 * completed all the same.  Frames shorter than an Ethernet header or longer
 * than KVM_NET_MAX_FRAME are dropped too.
 *
 * Receive is input, delivered at once: a thread per device reads the TAP
 * and places each frame in the next receive buffer, raising the interrupt
 * as EVENT_IDX allows.  A frame that finds no buffer (or a driver that is
 * not ready) is dropped and counted; a buffer too small for the frame is
 * left for the next one.  While the VM is paused the thread does not read
 * the TAP, so frames wait in the TAP's queue and guest memory is untouched.
 *
 * After load_state the next resume announces the guest's MAC (that of the
 * state blob) on this host's TAP: three RARP frames, 0, 50 and 150 ms after
 * the resume, as QEMU does after a migration.  They are not guest output.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "kvm-internal.h"
#include "virtio.h"
#include "common/err.h"
#include "common/log.h"
#include "common/unaligned.h"

#define NET_Q_RX 0
#define NET_Q_TX 1

#define VIRTIO_NET_F_MAC     (1ull << 5)
#define VIRTIO_NET_F_STATUS  (1ull << 16)
#define VIRTIO_NET_S_LINK_UP 1u

#define NET_HDR_BYTES	   12
#define NET_MIN_FRAME	   14
#define NET_RX_BURST	   64
#define NET_ANNOUNCE_COUNT 3

struct vnet {
	struct kvm_vm *vm;
	struct virtio_dev *dev;
	unsigned chan;
	char tap_name[16];
	int tap_fd, wake_fd;
	pthread_t rx_thread;
	int rx_started;
	/* guarded by dev->lock */
	int stop;
	uint8_t mac[6];		   /* guest-visible: saved */
	uint16_t link_status;	   /* guest-visible: saved */
	int announce_armed;	   /* load_state happened: announce at the next resume */
	unsigned announce_left;	   /* RARP frames still to send */
	uint64_t announce_next_ns; /* CLOCK_MONOTONIC */
	uint64_t announce_gap_ms;
	struct kvm_net_stats stats;
	struct vq_chain chain;
	uint8_t txbuf[NET_HDR_BYTES + KVM_NET_MAX_FRAME];
	uint8_t rxbuf[NET_HDR_BYTES + 65536];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wake(struct vnet *n)
{
	uint64_t one = 1;
	if (write(n->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug(n->vm->name, "virtio-net: waking the rx thread: %s", strerror(errno));
}

/* One transmitted chain: emit its frame (or drop it), complete it.  Lock held. */
static void tx_one(struct vnet *n, struct vq *q)
{
	struct vq_chain *c = &n->chain;
	struct kvm_vm *vm = n->vm;

	if (c->write_bytes || c->read_bytes < NET_HDR_BYTES + NET_MIN_FRAME ||
	    c->read_bytes > NET_HDR_BYTES + KVM_NET_MAX_FRAME) {
		n->stats.tx_errors++;
	} else {
		size_t len = vq_chain_read(vm, c, n->txbuf, (size_t)c->read_bytes);
		int rc = 0;
		if (vm->cfg.emit)
			rc = vm->cfg.emit(vm->cfg.emit_opaque, n->chan, n->txbuf + NET_HDR_BYTES,
					  len - NET_HDR_BYTES);
		if (rc == 0) {
			n->stats.tx_frames++;
		} else {
			n->stats.tx_dropped++; /* -ENOBUFS: the core's buffer is full */
			if (rc != -ENOBUFS && n->stats.tx_dropped < 16)
				log_warnx(vm->name, "virtio-net: emit: %s", hr_strerror(rc));
		}
	}
	vq_push(vm, q, c->head, 0);
}

static void net_notify(struct virtio_dev *d, unsigned qi)
{
	struct vnet *n = d->priv;
	struct vq *q = &d->vq[NET_Q_TX];
	int pushed = 0, rc = 0;

	if (qi != NET_Q_TX)
		return; /* receive buffers are taken as frames arrive */
	do {
		while ((rc = vq_pop(d->vm, q, &n->chain)) > 0) {
			tx_one(n, q);
			pushed = 1;
		}
		if (rc < 0) {
			virtio_needs_reset(d, "transmit queue: %s", vq_strerror(rc));
			break;
		}
	} while (vq_want_notify(d->vm, q, d->driver_features));
	if (pushed && vq_should_signal(q, d->driver_features))
		virtio_raise(d, VIRTIO_INT_VRING);
}

/* Place one frame (in rxbuf after the header room).  Lock held, not paused.
 * Returns 1 if a buffer was returned to the driver. */
static int rx_one(struct vnet *n, size_t len)
{
	struct virtio_dev *d = n->dev;
	struct vq *q = &d->vq[NET_Q_RX];
	struct vq_chain *c = &n->chain;

	if (!virtio_live(d) || !q->ready) {
		n->stats.rx_dropped++;
		return 0;
	}
	int rc = vq_pop(n->vm, q, c);
	if (rc < 0) {
		virtio_needs_reset(d, "receive queue: %s", vq_strerror(rc));
		n->stats.rx_dropped++;
		return 0;
	}
	if (!rc) {
		n->stats.rx_no_buffer++;
		return 0;
	}
	if (c->read_bytes) {
		virtio_needs_reset(d, "receive buffer with device-readable descriptors");
		n->stats.rx_dropped++;
		return 0;
	}
	if (c->write_bytes < NET_HDR_BYTES + len) {
		q->last_avail--; /* leave the buffer for a frame that fits */
		n->stats.rx_too_big++;
		return 0;
	}
	memset(n->rxbuf, 0, NET_HDR_BYTES);
	hr_put_le16(n->rxbuf + 10, 1); /* num_buffers */
	size_t done = vq_chain_write(n->vm, c, n->rxbuf, NET_HDR_BYTES + len);
	vq_push(n->vm, q, c->head, (uint32_t)done);
	n->stats.rx_frames++;
	return 1;
}

static void rx_burst(struct vnet *n)
{
	struct virtio_dev *d = n->dev;
	int pushed = 0;

	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < NET_RX_BURST && !d->paused; i++) {
		ssize_t len = kvm_tap_read(n->tap_fd, n->rxbuf + NET_HDR_BYTES,
					   sizeof(n->rxbuf) - NET_HDR_BYTES);
		if (len <= 0) {
			if (len < 0 && n->stats.rx_errors++ < 16)
				log_warnx(n->vm->name, "virtio-net: reading tap %s: %s",
					  n->tap_name, strerror((int)-len));
			break;
		}
		pushed |= rx_one(n, (size_t)len);
	}
	if (pushed && vq_should_signal(&d->vq[NET_Q_RX], d->driver_features))
		virtio_raise(d, VIRTIO_INT_VRING);
	pthread_mutex_unlock(&d->lock);
}

/* A RARP request for our own MAC (EtherType 0x8035), as qemu_announce_self. */
static void send_announce(struct vnet *n)
{
	uint8_t f[60];

	memset(f, 0, sizeof(f));
	memset(f, 0xff, 6);
	memcpy(f + 6, n->mac, 6);
	hr_put_be16(f + 12, 0x8035);
	hr_put_be16(f + 14, 1);	     /* hardware: Ethernet */
	hr_put_be16(f + 16, 0x0800); /* protocol: IPv4 */
	f[18] = 6;
	f[19] = 4;
	hr_put_be16(f + 20, 3); /* reverse request */
	memcpy(f + 22, n->mac, 6);
	memcpy(f + 32, n->mac, 6);
	int rc = kvm_tap_write(n->tap_fd, f, sizeof(f));
	if (rc < 0)
		log_warnx(n->vm->name, "virtio-net: announcing on tap %s: %s", n->tap_name,
			  strerror(-rc));
	else
		n->stats.announces++;
}

/* Send the announcements that are due; returns the poll timeout in ms. Lock held. */
static int announce_due(struct vnet *n)
{
	if (!n->announce_left || n->dev->paused)
		return -1;
	uint64_t now = now_ns();
	if (now >= n->announce_next_ns) {
		send_announce(n);
		n->announce_left--;
		n->announce_next_ns = now + n->announce_gap_ms * 1000000ull;
		n->announce_gap_ms += 100;
		if (!n->announce_left)
			return -1;
	}
	return (int)((n->announce_next_ns - now) / 1000000ull) + 1;
}

static void *rx_main(void *arg)
{
	struct vnet *n = arg;
	struct virtio_dev *d = n->dev;

	for (;;) {
		pthread_mutex_lock(&d->lock);
		int stop = n->stop, paused = d->paused;
		int timeout = announce_due(n);
		pthread_mutex_unlock(&d->lock);
		if (stop)
			break;
		struct pollfd pf[2] = {{.fd = n->wake_fd, .events = POLLIN},
				       {.fd = n->tap_fd, .events = POLLIN}};
		int r = poll(pf, paused ? 1 : 2, timeout);
		if (r < 0) {
			if (errno != EINTR) {
				log_warnx(n->vm->name, "virtio-net: poll: %s", strerror(errno));
				usleep(10000);
			}
			continue;
		}
		if (pf[0].revents & POLLIN) {
			uint64_t v;
			if (read(n->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_debug(n->vm->name, "virtio-net: eventfd: %s", strerror(errno));
		}
		if (paused)
			continue;
		if (pf[1].revents & POLLIN)
			rx_burst(n);
		else if (pf[1].revents & (POLLERR | POLLHUP | POLLNVAL))
			usleep(100000); /* the interface went away: do not spin */
	}
	return NULL;
}

static void net_config_read(struct virtio_dev *d, uint32_t off, uint8_t *buf, unsigned len)
{
	struct vnet *n = d->priv;
	uint8_t cfg[10];

	memcpy(cfg, n->mac, 6);
	hr_put_le16(cfg + 6, n->link_status);
	hr_put_le16(cfg + 8, 1); /* max_virtqueue_pairs (MQ not offered) */
	memcpy(buf, cfg + off, len);
}

static void net_state_save(struct virtio_dev *d, uint8_t *p)
{
	struct vnet *n = d->priv;
	memcpy(p, n->mac, 6);
	hr_put_le16(p + 6, n->link_status);
}

static int net_state_load(struct virtio_dev *d, const uint8_t *p)
{
	struct vnet *n = d->priv;
	if (memcmp(n->mac, p, 6))
		log_info(n->vm->name,
			 "virtio-net: the guest keeps its MAC "
			 "%02x:%02x:%02x:%02x:%02x:%02x from the state blob",
			 p[0], p[1], p[2], p[3], p[4], p[5]);
	memcpy(n->mac, p, 6);
	n->link_status = hr_get_le16(p + 6);
	n->announce_armed = 1;
	return 0;
}

static void net_resume(struct virtio_dev *d)
{
	struct vnet *n = d->priv;
	pthread_mutex_lock(&d->lock);
	if (n->announce_armed) {
		n->announce_armed = 0;
		n->announce_left = NET_ANNOUNCE_COUNT;
		n->announce_next_ns = now_ns();
		n->announce_gap_ms = 50;
	}
	pthread_mutex_unlock(&d->lock);
	wake(n);
}

static void net_destroy(struct virtio_dev *d)
{
	struct vnet *n = d->priv;
	if (!n)
		return;
	if (n->rx_started) {
		pthread_mutex_lock(&d->lock);
		n->stop = 1;
		pthread_mutex_unlock(&d->lock);
		wake(n);
		pthread_join(n->rx_thread, NULL);
	}
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	if (n->wake_fd >= 0)
		close(n->wake_fd);
	n->vm->net = NULL;
	free(n);
	d->priv = NULL;
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .nr_queues = 2,
    .notify = net_notify,
    .config_read = net_config_read,
    .config_bytes = 10,
    .state_bytes = 8,
    .state_save = net_state_save,
    .state_load = net_state_load,
    .resume = net_resume,
    .destroy = net_destroy,
};

int kvm_net_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	int end = 0;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &end) != 6 ||
	    s[end] || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	if (mac[0] & 1)
		return -EINVAL; /* multicast */
	return 0;
}

/* 52:54:00 (QEMU's locally administered prefix) and 24 bits of the VM name's FNV-1a. */
void kvm_net_default_mac(const char *name, uint8_t mac[6])
{
	uint32_t h = 2166136261u;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

int kvm_net_create(struct kvm_vm *vm, const char *tap, const uint8_t mac[6], unsigned chan)
{
	struct vnet *n = calloc(1, sizeof(*n));
	int rc;

	if (!n)
		return -ENOMEM;
	n->vm = vm;
	n->chan = chan;
	n->tap_fd = n->wake_fd = -1;
	snprintf(n->tap_name, sizeof(n->tap_name), "%s", tap);
	memcpy(n->mac, mac, 6);
	n->link_status = VIRTIO_NET_S_LINK_UP;
	if ((rc = kvm_tap_open(vm, tap, &n->tap_fd)) < 0) {
		free(n);
		return rc;
	}
	n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->wake_fd < 0) {
		rc = -errno;
		close(n->tap_fd);
		free(n);
		return rc;
	}
	rc = virtio_mmio_add(vm, &net_ops, n,
			     VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_RING_F_EVENT_IDX,
			     &n->dev);
	if (rc < 0) {
		close(n->tap_fd);
		close(n->wake_fd);
		free(n);
		return rc;
	}
	vm->net = n; /* from here on kvm_virtio_destroy frees it */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&n->rx_thread, NULL, rx_main, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		kvm_set_error(vm, "virtio-net: cannot start the receive thread");
		return -rc;
	}
	n->rx_started = 1;
	log_debug(vm->name,
		  "virtio-net: tap %s, MAC %02x:%02x:%02x:%02x:%02x:%02x, registers at 0x%llx, "
		  "GSI %u",
		  tap, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
		  (unsigned long long)n->dev->base, n->dev->gsi);
	return 0;
}

/* output_deliver: one released frame of the net channel out of the TAP. */
int kvm_net_deliver(struct kvm_vm *vm, unsigned chan, const void *buf, size_t len)
{
	struct vnet *n = vm->net;

	if (!n || chan != n->chan || len < NET_MIN_FRAME || len > KVM_NET_MAX_FRAME)
		return -EINVAL;
	/* no device lock: a promoted VM's sink may call this from inside emit */
	int rc = kvm_tap_write(n->tap_fd, buf, len);
	if (rc < 0)
		__atomic_add_fetch(&n->stats.deliver_errors, 1, __ATOMIC_RELAXED);
	return rc;
}

int kvm_net_get_stats(struct kvm_vm *vm, struct kvm_net_stats *s)
{
	struct vnet *n = vm->net;
	if (!n)
		return -ENODEV;
	pthread_mutex_lock(&n->dev->lock);
	*s = n->stats;
	pthread_mutex_unlock(&n->dev->lock);
	return 0;
}
