/*
 * net-virtio.c - virtio-net over virtio-mmio, modern (version 2, virtio
 * 1.x), split virtqueues, polled.
 *
 * The device is found the way Linux finds it: virtio_mmio.device=
 * <size>@<base>:<irq> tokens on the command line (QEMU's microvm machine
 * appends them; see README.md).  The first whose DeviceID is 1 (net) is
 * used.  Negotiated: VIRTIO_F_VERSION_1 (required), VIRTIO_NET_F_MAC,
 * VIRTIO_NET_F_STATUS and VIRTIO_RING_F_EVENT_IDX when offered; nothing
 * else, so every frame is one buffer behind a 12-byte virtio_net_hdr.
 *
 * No interrupts: ring 3 polls the used rings in memory.  MMIO is a VM
 * exit, so ring 3 only touches a register to notify a queue, and only when
 * the device asked for it (EVENT_IDX avail_event, else used->flags).  The
 * interrupts the device would raise are pushed away with used_event
 * (EVENT_IDX) or VRING_AVAIL_F_NO_INTERRUPT; nothing unmasks them anyway.
 */
#include "netsvc.h"

#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */

enum {
	S_ACKNOWLEDGE = 1,
	S_DRIVER = 2,
	S_DRIVER_OK = 4,
	S_FEATURES_OK = 8,
	S_FAILED = 128,
};

#define F_NET_MAC      (1ull << 5)
#define F_NET_STATUS   (1ull << 16)
#define F_EVENT_IDX    (1ull << 29)
#define F_VERSION_1    (1ull << 32)
#define F_WANTED       (F_NET_MAC | F_NET_STATUS | F_EVENT_IDX | F_VERSION_1)
#define NET_S_LINK_UP  1
#define NET_CFG_MAC    0
#define NET_CFG_STATUS 6

#define VRING_DESC_F_WRITE	   2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	   1

#define QNUM_MAX 256
#define BUF_SIZE 2048
#define HDR_LEN	 12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
struct vring_used_elem {
	uint32_t id, len;
};

/* One page each for the descriptor table, the avail and the used ring. */
struct vq_mem {
	struct vring_desc desc[QNUM_MAX];
	union {
		struct {
			uint16_t flags, idx, ring[QNUM_MAX]; /* + used_event */
		} avail;
		uint8_t avail_page[4096];
	};
	union {
		struct {
			uint16_t flags, idx;
			struct vring_used_elem ring[QNUM_MAX]; /* + avail_event */
		} used;
		uint8_t used_page[4096];
	};
};

struct vq {
	struct vq_mem *m;
	unsigned int index, num;
	uint16_t avail_idx; /* next avail slot (free-running) */
	uint16_t last_used; /* next used entry to look at */
};

static struct vq_mem rx_mem NOINIT __attribute__((aligned(4096)));
static struct vq_mem tx_mem NOINIT __attribute__((aligned(4096)));
static uint8_t rx_buf[QNUM_MAX][BUF_SIZE] NOINIT __attribute__((aligned(4096)));
static uint8_t tx_buf[QNUM_MAX][BUF_SIZE] NOINIT __attribute__((aligned(4096)));

struct vnet_info vnet_info;
static struct vq rxq, txq;
static volatile uint8_t *mmio;
static int event_idx;
static uint16_t tx_free[QNUM_MAX];
static unsigned int tx_nfree;

static inline uint32_t rd32(unsigned int off)
{
	return mmio_rd32((uintptr_t)mmio, off);
}
static inline void wr32(unsigned int off, uint32_t v)
{
	mmio_wr32((uintptr_t)mmio, off, v);
}

/* The EVENT_IDX fields behind the rings: used_event after avail.ring[num],
 * avail_event after used.ring[num]. */
static inline volatile uint16_t *avail_event_ptr(struct vq_mem *m, unsigned int num)
{
	return (volatile uint16_t *)(m->used_page + 4 + 8 * num);
}
static inline volatile uint16_t *used_event_ptr(struct vq_mem *m, unsigned int num)
{
	return (volatile uint16_t *)(m->avail_page + 4 + 2 * num);
}

/* ---- ring 0: probe and handshake ---- */

/* "<size>[KMG]@<base>:<irq>" (Linux's virtio_mmio.device= syntax). */
static int parse_device(const char *s, uint64_t *base_r, unsigned int *irq_r)
{
	char buf[64];
	uint64_t size, base, irq;
	unsigned int i = 0, at, colon;
	while (s[i] && s[i] != '@' && i < sizeof(buf) - 1)
		buf[i] = s[i], i++;
	if (s[i] != '@')
		return -1;
	buf[i] = 0;
	if (rt_parse_u64(buf, &size, 1) || size < 0x100)
		return -1;
	at = ++i;
	while (s[i] && s[i] != ':')
		i++;
	if (s[i] != ':' || i - at >= sizeof(buf))
		return -1;
	colon = i;
	memcpy(buf, s + at, colon - at);
	buf[colon - at] = 0;
	/* Linux takes the base as hex with or without 0x. */
	if (buf[0] != '0' || (buf[1] | 0x20) != 'x') {
		char hex[sizeof(buf) + 2] = "0x";
		memcpy(hex + 2, buf, colon - at + 1);
		memcpy(buf, hex, sizeof(buf) - 1);
		buf[sizeof(buf) - 1] = 0;
	}
	if (rt_parse_u64(buf, &base, 0) || rt_parse_u64(s + colon + 1, &irq, 0))
		return -1;
	if (base >= (4ull << 30) - 0x1000) /* boot.S maps 0..4 GiB (with US) */
		return -1;
	*base_r = base;
	*irq_r = (unsigned int)irq;
	return 0;
}

/* The first virtio_mmio.device= entry whose DeviceID is 1; 0 or -1. */
static int find_device(void)
{
	static const char key[] = "virtio_mmio.device=";
	const char *s = rt_boot.cmdline;
	int seen = 0;
	while (*s) {
		while (*s == ' ')
			s++;
		const char *t = s;
		while (*s && *s != ' ')
			s++;
		unsigned int k = 0;
		while (k < sizeof(key) - 1 && t + k < s && t[k] == key[k])
			k++;
		if (k != sizeof(key) - 1)
			continue;
		char tok[80];
		unsigned int n = (unsigned int)(s - t) - k;
		if (n >= sizeof(tok))
			continue;
		memcpy(tok, t + k, n);
		tok[n] = 0;
		uint64_t base;
		unsigned int irq;
		if (parse_device(tok, &base, &irq)) {
			rt_printf("netsvc: bad virtio_mmio.device=%s, ignored\n", tok);
			continue;
		}
		seen++;
		mmio = (volatile uint8_t *)(uintptr_t)base;
		uint32_t magic = rd32(R_MAGIC), id = rd32(R_DEVICE_ID);
		rt_printf("netsvc: virtio-mmio base=0x%lx irq=%u magic=0x%x version=%u device=%u "
			  "vendor=0x%x\n",
			  base, irq, magic, rd32(R_VERSION), id, rd32(R_VENDOR_ID));
		if (magic == VIRTIO_MMIO_MAGIC && id == 1) {
			vnet_info.base = base;
			vnet_info.irq = irq;
			vnet_info.version = rd32(R_VERSION);
			return 0;
		}
	}
	rt_printf("netsvc: FAIL no virtio-net device (%d virtio_mmio.device= entries; QEMU: "
		  "-M microvm,acpi=off)\n",
		  seen);
	return -1;
}

static int setup_queue(struct vq *q, struct vq_mem *m, unsigned int index)
{
	wr32(R_QUEUE_SEL, index);
	if (rd32(R_QUEUE_READY)) {
		rt_printf("netsvc: FAIL queue %u already ready after reset\n", index);
		return -1;
	}
	unsigned int max = rd32(R_QUEUE_NUM_MAX), num = QNUM_MAX;
	while (num > max)
		num >>= 1;
	if (!num) {
		rt_printf("netsvc: FAIL queue %u missing (QueueNumMax=%u)\n", index, max);
		return -1;
	}
	q->m = m;
	q->index = index;
	q->num = num;
	q->avail_idx = 0;
	q->last_used = 0;
	m->avail.flags = event_idx ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
	m->avail.idx = 0;
	*used_event_ptr(m, num) = 0x8000; /* far away, see vq_quiet() */
	m->used.flags = 0;
	m->used.idx = 0;
	*avail_event_ptr(m, num) = 0;
	wr32(R_QUEUE_NUM, num);
	uint64_t d = (uint64_t)(uintptr_t)m->desc, a = (uint64_t)(uintptr_t)&m->avail,
		 u = (uint64_t)(uintptr_t)&m->used;
	wr32(R_QUEUE_DESC, (uint32_t)d);
	wr32(R_QUEUE_DESC + 4, (uint32_t)(d >> 32));
	wr32(R_QUEUE_DRIVER, (uint32_t)a);
	wr32(R_QUEUE_DRIVER + 4, (uint32_t)(a >> 32));
	wr32(R_QUEUE_DEVICE, (uint32_t)u);
	wr32(R_QUEUE_DEVICE + 4, (uint32_t)(u >> 32));
	wr32(R_QUEUE_READY, 1);
	return 0;
}

static void read_config(void)
{
	uint32_t gen;
	do {
		gen = rd32(R_CONFIG_GEN);
		for (int i = 0; i < 6; i++)
			vnet_info.mac[i] = mmio[R_CONFIG + NET_CFG_MAC + i];
	} while (rd32(R_CONFIG_GEN) != gen);
}

int vnet_init(void)
{
	if (find_device())
		return -1;
	if (vnet_info.version != 2) {
		rt_printf("netsvc: FAIL virtio-mmio version %u, want 2 (modern; QEMU: "
			  "-global virtio-mmio.force-legacy=false)\n",
			  vnet_info.version);
		return -1;
	}
	wr32(R_STATUS, 0); /* reset */
	while (rd32(R_STATUS))
		cpu_relax();
	wr32(R_STATUS, S_ACKNOWLEDGE);
	wr32(R_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	wr32(R_DEV_FEATURES_SEL, 0);
	uint64_t offered = rd32(R_DEV_FEATURES);
	wr32(R_DEV_FEATURES_SEL, 1);
	offered |= (uint64_t)rd32(R_DEV_FEATURES) << 32;
	uint64_t f = offered & F_WANTED;
	if (!(f & F_VERSION_1)) {
		rt_printf("netsvc: FAIL device does not offer VIRTIO_F_VERSION_1 (features "
			  "0x%lx)\n",
			  offered);
		wr32(R_STATUS, S_FAILED);
		return -1;
	}
	wr32(R_DRV_FEATURES_SEL, 0);
	wr32(R_DRV_FEATURES, (uint32_t)f);
	wr32(R_DRV_FEATURES_SEL, 1);
	wr32(R_DRV_FEATURES, (uint32_t)(f >> 32));
	wr32(R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(R_STATUS) & S_FEATURES_OK)) {
		rt_printf("netsvc: FAIL device refused features 0x%lx\n", f);
		wr32(R_STATUS, S_FAILED);
		return -1;
	}
	vnet_info.features = f;
	event_idx = !!(f & F_EVENT_IDX);
	if (setup_queue(&rxq, &rx_mem, 0) || setup_queue(&txq, &tx_mem, 1)) {
		wr32(R_STATUS, S_FAILED);
		return -1;
	}
	vnet_info.rx_num = rxq.num;
	vnet_info.tx_num = txq.num;
	vnet_info.mac_from_device = !!(f & F_NET_MAC);
	if (vnet_info.mac_from_device)
		read_config();
	wr32(R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	rt_printf("netsvc: virtio-net offered=0x%lx negotiated=0x%lx rx_num=%u tx_num=%u\n",
		  offered, f, rxq.num, txq.num);
	return 0;
}

int vnet_link_up(void)
{
	if (!(vnet_info.features & F_NET_STATUS))
		return 1;
	uint32_t gen, st;
	do {
		gen = rd32(R_CONFIG_GEN);
		st = *(volatile uint16_t *)(mmio + R_CONFIG + NET_CFG_STATUS);
	} while (rd32(R_CONFIG_GEN) != gen);
	return st & NET_S_LINK_UP;
}

/* ---- ring 3: the rings ---- */

static inline uint16_t vq_avail_event(const struct vq *q)
{
	return *avail_event_ptr(q->m, q->num);
}

/* Publish avail entries [old, avail_idx) and notify if the device wants it. */
static void vq_publish(struct vq *q, uint16_t old)
{
	barrier(); /* descriptors and ring entries before idx (x86: stores in order) */
	*(volatile uint16_t *)&q->m->avail.idx = q->avail_idx;
	mb(); /* idx visible before we read the device's event/flags */
	int kick;
	if (event_idx)
		kick = (uint16_t)(q->avail_idx - vq_avail_event(q) - 1) <
		       (uint16_t)(q->avail_idx - old);
	else
		kick = !(*(volatile uint16_t *)&q->m->used.flags & VRING_USED_F_NO_NOTIFY);
	if (kick) {
		wr32(R_QUEUE_NOTIFY, q->index);
		net_stats.kicks++;
	}
}

/* Keep the device from wanting to interrupt us: used_event half a ring
 * space ahead of what we have seen. */
static inline void vq_quiet(struct vq *q)
{
	if (event_idx)
		*used_event_ptr(q->m, q->num) = (uint16_t)(q->last_used + 0x8000);
}

void vnet_start(void)
{
	for (unsigned int i = 0; i < rxq.num; i++) {
		rx_mem.desc[i] = (struct vring_desc){(uint64_t)(uintptr_t)rx_buf[i], BUF_SIZE,
						     VRING_DESC_F_WRITE, 0};
		rx_mem.avail.ring[i] = (uint16_t)i;
	}
	rxq.avail_idx = (uint16_t)rxq.num;
	vq_publish(&rxq, 0);
	for (unsigned int i = 0; i < txq.num; i++) {
		memset(tx_buf[i], 0, HDR_LEN); /* flags, gso_type NONE, ... */
		tx_free[i] = (uint16_t)(txq.num - 1 - i);
	}
	tx_nfree = txq.num;
}

static void tx_reclaim(void)
{
	uint16_t used = *(volatile uint16_t *)&txq.m->used.idx;
	if (used == txq.last_used)
		return;
	barrier();
	while (txq.last_used != used) {
		const volatile struct vring_used_elem *e =
		    &txq.m->used.ring[txq.last_used % txq.num];
		uint32_t id = e->id;
		if (id < txq.num && tx_nfree < txq.num)
			tx_free[tx_nfree++] = (uint16_t)id;
		txq.last_used++;
	}
	vq_quiet(&txq);
}

uint8_t *vnet_tx_alloc(void)
{
	if (!tx_nfree)
		tx_reclaim();
	if (!tx_nfree) {
		net_stats.tx_full++;
		return NULL;
	}
	return tx_buf[tx_free[tx_nfree - 1]] + HDR_LEN;
}

void vnet_tx_send(uint8_t *frame, unsigned int len)
{
	unsigned int id = tx_free[--tx_nfree];
	if (len < 60) { /* Ethernet minimum (without FCS) */
		memset(frame + len, 0, 60 - len);
		len = 60;
	}
	tx_mem.desc[id] = (struct vring_desc){(uint64_t)(uintptr_t)tx_buf[id], HDR_LEN + len, 0, 0};
	tx_mem.avail.ring[txq.avail_idx % txq.num] = (uint16_t)id;
	uint16_t old = txq.avail_idx++;
	net_stats.tx_frames++;
	vq_publish(&txq, old);
}

int vnet_poll(void (*fn)(uint8_t *frame, unsigned int len), int budget)
{
	uint16_t used = *(volatile uint16_t *)&rxq.m->used.idx, old = rxq.avail_idx;
	int n = 0;
	barrier();
	while (rxq.last_used != used && n < budget) {
		const volatile struct vring_used_elem *e =
		    &rxq.m->used.ring[rxq.last_used % rxq.num];
		uint32_t id = e->id, len = e->len;
		rxq.last_used++;
		n++;
		if (id >= rxq.num)
			continue; /* a broken device; nothing sane to give back */
		net_stats.rx_frames++;
		if (len > HDR_LEN && len <= BUF_SIZE)
			fn(rx_buf[id] + HDR_LEN, len - HDR_LEN);
		else
			net_stats.drop_bad++;
		rxq.m->avail.ring[rxq.avail_idx++ % rxq.num] = (uint16_t)id;
	}
	if (n) {
		vq_quiet(&rxq);
		vq_publish(&rxq, old);
	}
	tx_reclaim();
	return n;
}
