/*
 * virtio-drv.h - the test as the guest's virtio-net driver, for
 * t-virtio-net.c: registers written through the same entry point as a
 * vCPU's KVM_EXIT_MMIO (kvm_mmio), descriptor and avail rings built in
 * guest memory at 40 MiB, real TAPs and packet sockets on the host side,
 * and what the VM emits kept for the checks.
 */
#ifndef HR_TESTS_VIRTIO_DRV_H
#define HR_TESTS_VIRTIO_DRV_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "guest-harness.h"
#include "tap.h"
#include "backends/kvm/kvm-internal.h"
#include "common/err.h"
#include "common/unaligned.h"
#include "core/dirtyset.h"

#define MEM_BYTES (64u << 20)
#define QN	  16u /* queue size the test driver uses */
#define AREA	  0x2800000ull
#define RX_DESC	  (AREA + 0x0000)
#define RX_AVAIL  (AREA + 0x1000)
#define RX_USED	  (AREA + 0x2000)
#define TX_DESC	  (AREA + 0x4000)
#define TX_AVAIL  (AREA + 0x5000)
#define TX_USED	  (AREA + 0x6000)
#define TX_BUF	  (AREA + 0x10000)  /* + slot * 4 KiB */
#define RX_BUF	  (AREA + 0x100000) /* + slot * 4 KiB, 2 KiB used */
#define ETH_TEST  0x88b5	    /* IEEE local experimental EtherType */

#define R_STATUS     0x070
#define R_QUEUE_SEL  0x030
#define R_NOTIFY     0x050
#define R_INT_STATUS 0x060
#define R_INT_ACK    0x064

static const struct hr_backend_ops *ops;

/* What the VM emits: console into gh, net0 records kept here. */
struct sink {
	struct gh g;
	pthread_mutex_t lock;
	uint8_t rec[32][1600];
	size_t rec_len[32];
	unsigned nr_rec;
	int refuse; /* answer -ENOBUFS */
};

static int sink_emit(void *opaque, unsigned chan, const void *p, size_t n)
{
	struct sink *s = opaque;
	if (chan == KVM_CHAN_CONSOLE)
		return gh_console(&s->g, chan, p, n);
	pthread_mutex_lock(&s->lock);
	int rc = 0;
	if (s->refuse) {
		rc = -ENOBUFS;
	} else if (s->nr_rec < 32 && n <= sizeof(s->rec[0])) {
		memcpy(s->rec[s->nr_rec], p, n);
		s->rec_len[s->nr_rec++] = n;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* The test's virtio driver for one VM. */
struct drv {
	struct hr_vm *vm;
	struct kvm_vm *k;
	uint8_t *ram; /* region 0, gpa 0 */
	uint16_t rx_avail, tx_avail, rx_seen, tx_seen;
};

static uint32_t mr(struct drv *x, uint32_t off)
{
	uint8_t b[4];
	kvm_mmio(x->k, VIRTIO_MMIO_BASE + off, 0, b, 4);
	return hr_get_le32(b);
}

static void mw(struct drv *x, uint32_t off, uint32_t v)
{
	uint8_t b[4];
	hr_put_le32(b, v);
	kvm_mmio(x->k, VIRTIO_MMIO_BASE + off, 1, b, 4);
}

static uint8_t *g(struct drv *x, uint64_t gpa)
{
	return x->ram + gpa;
}

static uint16_t used_idx(struct drv *x, uint64_t used)
{
	return __atomic_load_n((uint16_t *)g(x, used + 2), __ATOMIC_ACQUIRE);
}

static void set_desc(struct drv *x, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = g(x, table + 16 * i);
	hr_put_le64(d, addr);
	hr_put_le32(d + 8, len);
	hr_put_le16(d + 12, flags);
	hr_put_le16(d + 14, next);
}

static void publish(struct drv *x, uint64_t avail, uint16_t *idx, uint16_t head)
{
	hr_put_le16(g(x, avail + 4 + 2 * (*idx % QN)), head);
	(*idx)++;
	__atomic_store_n((uint16_t *)g(x, avail + 2), *idx, __ATOMIC_RELEASE);
}

#define F_MAC	    (1ull << 5)
#define F_STATUS    (1ull << 16)
#define F_EVENT_IDX (1ull << 29)
#define F_VERSION_1 (1ull << 32)

static void setup_queue(struct drv *x, unsigned q, uint64_t desc, uint64_t avail, uint64_t used)
{
	mw(x, R_QUEUE_SEL, q);
	mw(x, 0x038, QN);
	mw(x, 0x080, (uint32_t)desc);
	mw(x, 0x084, (uint32_t)(desc >> 32));
	mw(x, 0x090, (uint32_t)avail);
	mw(x, 0x094, (uint32_t)(avail >> 32));
	mw(x, 0x0a0, (uint32_t)used);
	mw(x, 0x0a4, (uint32_t)(used >> 32));
	mw(x, 0x044, 1);
}

/* Reset and bring the device up as a driver does; returns the final status. */
static uint32_t drv_init(struct drv *x)
{
	memset(g(x, AREA), 0, 0x8000);
	x->rx_avail = x->tx_avail = x->rx_seen = x->tx_seen = 0;
	mw(x, R_STATUS, 0);
	mw(x, R_STATUS, 1);
	mw(x, R_STATUS, 3);
	uint64_t f = F_VERSION_1 | F_MAC | F_STATUS | F_EVENT_IDX;
	mw(x, 0x024, 0);
	mw(x, 0x020, (uint32_t)f);
	mw(x, 0x024, 1);
	mw(x, 0x020, (uint32_t)(f >> 32));
	mw(x, R_STATUS, 3 | 8);
	setup_queue(x, 0, RX_DESC, RX_AVAIL, RX_USED);
	setup_queue(x, 1, TX_DESC, TX_AVAIL, TX_USED);
	mw(x, R_STATUS, 3 | 8 | 4);
	return mr(x, R_STATUS);
}

static size_t test_frame(uint8_t *f, const uint8_t dst[6], unsigned n, size_t len)
{
	static const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x01};
	memset(f, 0, len);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	hr_put_be16(f + 12, ETH_TEST);
	snprintf((char *)f + 14, len - 14, "hr-vnet frame %u", n);
	for (size_t i = 40; i < len; i++)
		f[i] = (uint8_t)(i * 7 + n);
	return len;
}

/* Transmit one frame (header and frame in one or two descriptors) and notify. */
static void tx(struct drv *x, const uint8_t *frame, size_t len, int split)
{
	unsigned slot = x->tx_avail % QN;
	uint64_t buf = TX_BUF + 0x1000ull * slot;
	memset(g(x, buf), 0, 12);
	memcpy(g(x, buf + 16), frame, len);
	if (split) {
		set_desc(x, TX_DESC, slot, buf, 12, 1, (uint16_t)((slot + 1) % QN));
		set_desc(x, TX_DESC, (slot + 1) % QN, buf + 16, (uint32_t)len, 0, 0);
	} else {
		memmove(g(x, buf + 12), g(x, buf + 16), len);
		set_desc(x, TX_DESC, slot, buf, (uint32_t)(12 + len), 0, 0);
	}
	/* with EVENT_IDX: interrupt me when the device has used this one */
	hr_put_le16(g(x, TX_AVAIL + 4 + 2 * QN), x->tx_avail);
	publish(x, TX_AVAIL, &x->tx_avail, (uint16_t)slot);
	mw(x, R_NOTIFY, 1);
}

/* Post n receive buffers of 2 KiB (one page each). */
static void rx_post(struct drv *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned slot = x->rx_avail % QN;
		set_desc(x, RX_DESC, slot, RX_BUF + 0x1000ull * slot, 2048, 2, 0);
		publish(x, RX_AVAIL, &x->rx_avail, (uint16_t)slot);
	}
	hr_put_le16(g(x, RX_AVAIL + 4 + 2 * QN), x->rx_seen); /* used_event */
}

static int wait_used(struct drv *x, uint64_t used, uint16_t want, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (used_idx(x, used) == want)
			return 1;
		usleep(1000);
	}
	return used_idx(x, used) == want;
}

static int make_tap(const char *name)
{
	struct ifreq ifr = {0};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);
	char path[128];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
	int p = open(path, O_WRONLY | O_CLOEXEC);
	if (p >= 0) {
		if (write(p, "1", 1) < 0)
			diag("disable_ipv6 on %s: %s", name, strerror(errno));
		close(p);
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int rc = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		rc = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!rc && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		rc = -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (!rc && ioctl(s, SIOCGIFINDEX, &ifr) < 0)
		rc = -errno;
	close(s);
	return rc ? rc : ifr.ifr_ifindex;
}

/* A packet socket on the host side of a TAP: what we send there the VM
 * receives; what the VM (or output_deliver) writes arrives here. */
static int packet_socket(int ifindex)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(0x0003));
	struct sockaddr_ll a = {
	    .sll_family = AF_PACKET, .sll_protocol = htons(0x0003), .sll_ifindex = ifindex};
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	return s;
}

/* Next incoming frame of EtherType type within ms; its length or 0. */
static size_t sock_recv(int s, uint16_t type, uint8_t *buf, size_t cap, int ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left =
		    ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s, buf, cap, 0, (struct sockaddr *)&from, &fl);
		if (n < 14 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		if (hr_get_be16(buf + 12) == type)
			return (size_t)n;
	}
}

static void drain(int s)
{
	uint8_t b[2048];
	while (recv(s, b, sizeof(b), 0) > 0)
		;
}

static int ioapic_pin(struct drv *x, unsigned pin)
{
	struct kvm_irqchip ic = {.chip_id = KVM_IRQCHIP_IOAPIC};
	if (ioctl(x->k->vm_fd, KVM_GET_IRQCHIP, &ic) < 0)
		return -1;
	return (int)((ic.chip.ioapic.irr >> pin) & 1);
}

static int dirty(struct hr_dirtyset *ds, uint64_t gpa)
{
	return hr_dirtyset_test(ds, gpa >> 12);
}

static int fetch(struct drv *x, struct hr_dirtyset *ds)
{
	hr_dirtyset_clear(ds);
	ops->pause(x->vm);
	int rc = ops->dirty_fetch(x->vm, hr_dirtyset_bits(ds));
	ops->resume(x->vm);
	return rc;
}

static const uint8_t MAC1[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t MAC2[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

static int open_vm(struct sink *s, struct hr_vm **vm_r, const char *name, const char *kernel,
		   const char *opts)
{
	struct hr_vm_config cfg = {.name = name,
				   .mem_bytes = MEM_BYTES,
				   .nr_vcpus = 1,
				   .kernel_path = kernel,
				   .cmdline = kernel ? "rate=50 wss=1M interval_ms=1000" : NULL,
				   .options = opts};
	memset(s, 0, sizeof(*s));
	gh_init(&s->g, &cfg);
	pthread_mutex_init(&s->lock, NULL);
	cfg.emit = sink_emit;
	cfg.emit_opaque = s;
	return ops->open(vm_r, &cfg);
}

static void drv_attach(struct drv *x, struct hr_vm *vm)
{
	const struct hr_mem_region *reg;
	unsigned nreg;
	memset(x, 0, sizeof(*x));
	x->vm = vm;
	x->k = (struct kvm_vm *)vm;
	ops->mem_layout(vm, &reg, &nreg);
	x->ram = reg[0].hva;
}

#endif
