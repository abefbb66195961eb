/*
 * t-virtio-net.c - the KVM backend's virtio-mmio virtio-net (options tap=)
 * with real TAP interfaces, driven from the test: the test is the guest's
 * driver.  It writes the registers through the same entry point as a
 * vCPU's KVM_EXIT_MMIO (kvm_mmio) and builds descriptor and avail rings in
 * guest memory at 40 MiB, while the memwalk guest runs its workload at 16
 * MiB.  Checks: feature negotiation; a transmitted frame reaches emit as one
 * record and the TAP only through output_deliver; -ENOBUFS drops; a frame
 * written to the TAP lands in a receive buffer with the interrupt raised
 * (InterruptStatus, the IOAPIC pin) and its pages in the next dirty fetch;
 * nothing is received while paused; malformed rings set DEVICE_NEEDS_RESET
 * and touch nothing outside RAM; save_state -> load_state into a replica
 * on another TAP continues both queues at the same indices and announces
 * the MAC with RARP.
 *
 * Needs root, /dev/net/tun and /dev/kvm; runs in a network namespace of
 * its own (unshare), so its TAPs vanish with it.
 */
#include "virtio-drv.h"

static void test_options(void)
{
	struct sink s;
	struct hr_vm *vm = NULL;
	int rc = open_vm(&s, &vm, "t-opt", NULL, "tap=vnt0,mac=01:00:5e:00:00:01");
	ok(rc == -EINVAL && strstr(ops->last_error(vm), "mac="), "a multicast mac= is refused (%s)",
	   vm ? ops->last_error(vm) : "");
	ops->close(vm);
	vm = NULL;
	rc = open_vm(&s, &vm, "t-opt", NULL, "mac=52:54:00:12:34:56");
	ok(rc == -EINVAL, "mac= without tap= is refused (%s)", vm ? ops->last_error(vm) : "");
	ops->close(vm);
	vm = NULL;
	rc = open_vm(&s, &vm, "t-opt", NULL, "tap=this-name-is-too-long");
	ok(rc == -EINVAL, "an interface name over 15 characters is refused");
	ops->close(vm);
	vm = NULL;
	rc = open_vm(&s, &vm, "t-opt", NULL, NULL);
	const struct hr_chan_desc *ch;
	unsigned nch = 0;
	ok(rc == 0 && ops->channels(vm, &ch, &nch) == 0 && nch == 1,
	   "without tap= the VM has the console channel only");
	ok(rc == 0 && ops->output_deliver(vm, 0, "x", 1) == -EINVAL,
	   "output_deliver refuses the console channel");
	ops->close(vm);
}

static void test_negotiation(struct drv *x)
{
	ok(mr(x, 0x000) == 0x74726976 && mr(x, 0x004) == 2 && mr(x, 0x008) == 1,
	   "magic 'virt', version 2, device id 1 (net)");
	mw(x, R_STATUS, 0);
	mw(x, R_STATUS, 3);
	mw(x, 0x014, 0);
	uint64_t f = mr(x, 0x010);
	mw(x, 0x014, 1);
	f |= (uint64_t)mr(x, 0x010) << 32;
	ok(f == (F_VERSION_1 | F_MAC | F_STATUS | F_EVENT_IDX),
	   "device features: VERSION_1 MAC STATUS EVENT_IDX only (0x%llx)", (unsigned long long)f);
	mw(x, 0x024, 0);
	mw(x, 0x020, (uint32_t)F_MAC);
	mw(x, 0x024, 1);
	mw(x, 0x020, 0);
	mw(x, R_STATUS, 3 | 8);
	ok(!(mr(x, R_STATUS) & 8), "a driver without VERSION_1 does not get FEATURES_OK");
	mw(x, R_STATUS, 0);
	mw(x, R_STATUS, 3);
	mw(x, 0x024, 0);
	mw(x, 0x020, 1); /* VIRTIO_NET_F_CSUM: not offered */
	mw(x, 0x024, 1);
	mw(x, 0x020, 1);
	mw(x, R_STATUS, 3 | 8);
	ok(!(mr(x, R_STATUS) & 8), "a feature the device does not offer is refused");
	uint32_t st = drv_init(x);
	ok(st == 0xf, "driver init: status ACK|DRIVER|FEATURES_OK|DRIVER_OK (0x%x)", st);
	mw(x, R_QUEUE_SEL, 1);
	ok(mr(x, 0x034) == 256 && mr(x, 0x044) == 1 && mr(x, 0x038) == QN,
	   "queue 1: max 256, ready, size %u", QN);
	mw(x, R_QUEUE_SEL, 2);
	ok(mr(x, 0x034) == 0, "queue 2 does not exist (QueueNumMax 0)");
	uint8_t cfg[8];
	for (unsigned i = 0; i < 8; i++)
		kvm_mmio(x->k, VIRTIO_MMIO_BASE + 0x100 + i, 0, cfg + i, 1);
	ok(!memcmp(cfg, MAC1, 6) && hr_get_le16(cfg + 6) == 1,
	   "config space: the mac= address, link up");
}

static void test_tx(struct drv *x, struct sink *s, int sock)
{
	uint8_t f[200], got[2048];
	struct kvm_net_stats st;
	const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	drain(sock);
	size_t len = test_frame(f, bcast, 1, 120);
	tx(x, f, len, 1);
	ok(used_idx(x, TX_USED) == 1, "tx: the device used the chain at once");
	pthread_mutex_lock(&s->lock);
	int one = s->nr_rec == 1 && s->rec_len[0] == len && !memcmp(s->rec[0], f, len);
	pthread_mutex_unlock(&s->lock);
	ok(one, "tx: the frame reached emit as one record on net0 (header stripped)");
	ok(mr(x, R_INT_STATUS) & 1, "tx: used-buffer interrupt (EVENT_IDX asked for it)");
	mw(x, R_INT_ACK, 1);
	ok(sock_recv(sock, ETH_TEST, got, sizeof(got), 300) == 0,
	   "tx: nothing reaches the TAP before output_deliver");
	ok(ops->output_deliver(x->vm, KVM_CHAN_NET0, s->rec[0], s->rec_len[0]) == 0,
	   "output_deliver of the released record");
	size_t n = sock_recv(sock, ETH_TEST, got, sizeof(got), 2000);
	ok(n == len && !memcmp(got, f, len), "tx: output_deliver put the frame on the TAP");

	test_frame(f, bcast, 2, 60);
	tx(x, f, 60, 0);
	pthread_mutex_lock(&s->lock);
	s->refuse = 1;
	pthread_mutex_unlock(&s->lock);
	test_frame(f, bcast, 3, 60);
	tx(x, f, 60, 0);
	pthread_mutex_lock(&s->lock);
	s->refuse = 0;
	unsigned nrec = s->nr_rec;
	pthread_mutex_unlock(&s->lock);
	kvm_net_get_stats(x->k, &st);
	ok(used_idx(x, TX_USED) == 3 && nrec == 2 && st.tx_dropped == 1,
	   "tx: a frame emit refuses (-ENOBUFS) is dropped, its chain completed");
	test_frame(f, bcast, 4, 200);
	set_desc(x, TX_DESC, x->tx_avail % QN, TX_BUF, 12 + 1600, 0, 0);
	publish(x, TX_AVAIL, &x->tx_avail, (uint16_t)(x->tx_avail % QN));
	mw(x, R_NOTIFY, 1);
	kvm_net_get_stats(x->k, &st);
	ok(used_idx(x, TX_USED) == 4 && st.tx_errors == 1 && !(mr(x, R_STATUS) & 64),
	   "tx: an oversized frame is dropped, the device stays usable");
	x->tx_seen = 4;
	mw(x, R_INT_ACK, 3);
}

static void test_rx(struct drv *x, int sock, struct hr_dirtyset *ds)
{
	uint8_t f[300];
	struct kvm_net_stats st0, st;

	rx_post(x, 4);
	ok(fetch(x, ds) == 0, "rx: dirty fetch before the frame");
	size_t len = test_frame(f, MAC1, 10, 300);
	ok(send(sock, f, len, 0) == (ssize_t)len, "rx: frame written to the TAP");
	int got = wait_used(x, RX_USED, 1, 3000);
	ok(got, "rx: the device used a receive buffer");
	uint8_t *e = g(x, RX_USED + 4);
	uint32_t id = hr_get_le32(e), ulen = hr_get_le32(e + 4);
	uint8_t *b = g(x, RX_BUF + 0x1000ull * id);
	ok(got && id == 0 && ulen == 12 + len && hr_get_le16(b + 10) == 1 &&
	       !memcmp(b + 12, f, len),
	   "rx: buffer 0 holds the 12-byte header (num_buffers 1) and the frame (len %u)", ulen);
	usleep(20000);
	ok(mr(x, R_INT_STATUS) & 1, "rx: InterruptStatus has the used-buffer bit");
	ok(ioapic_pin(x, VIRTIO_MMIO_GSI) == 1, "rx: GSI %u is asserted at the IOAPIC",
	   VIRTIO_MMIO_GSI);
	mw(x, R_INT_ACK, 1);
	ok(mr(x, R_INT_STATUS) == 0 && ioapic_pin(x, VIRTIO_MMIO_GSI) == 0,
	   "rx: InterruptACK lowers the line");
	x->rx_seen = 1;
	ok(fetch(x, ds) == 0 && dirty(ds, RX_BUF) && dirty(ds, RX_USED) &&
	       !dirty(ds, RX_BUF + 0x1000) && !dirty(ds, RX_DESC),
	   "rx: the written buffer and used ring are in the next dirty fetch, nothing else of "
	   "the rings");

	/* paused: the TAP is not read, guest memory untouched */
	kvm_net_get_stats(x->k, &st0);
	ops->pause(x->vm);
	hr_dirtyset_clear(ds);
	test_frame(f, MAC1, 11, 100);
	send(sock, f, 100, 0);
	usleep(300000);
	kvm_net_get_stats(x->k, &st);
	int untouched = used_idx(x, RX_USED) == 1 && st.rx_frames == st0.rx_frames;
	ops->dirty_fetch(x->vm, hr_dirtyset_bits(ds));
	ok(untouched && !dirty(ds, RX_BUF + 0x1000) && !dirty(ds, RX_USED),
	   "rx: while paused no frame is placed and no page written");
	ops->resume(x->vm);
	ok(wait_used(x, RX_USED, 2, 3000) && !memcmp(g(x, RX_BUF + 0x1000 + 12), f, 100),
	   "rx: after resume the frame that waited in the TAP arrives");
	x->rx_seen = 2;

	/* EVENT_IDX: used_event is 0, already signalled -> no interrupt for index 2 */
	ok(mr(x, R_INT_STATUS) == 0, "rx: no interrupt when used_event says so (EVENT_IDX)");
	/* no buffers: dropped and counted (2 left, send 3) */
	for (unsigned i = 0; i < 3; i++) {
		test_frame(f, MAC1, 20 + i, 80);
		send(sock, f, 80, 0);
	}
	wait_used(x, RX_USED, 4, 3000);
	usleep(100000);
	kvm_net_get_stats(x->k, &st);
	ok(used_idx(x, RX_USED) == 4 && st.rx_no_buffer >= 1,
	   "rx: a frame that finds no buffer is dropped and counted (%llu)",
	   (unsigned long long)st.rx_no_buffer);
	x->rx_seen = 4;
	mw(x, R_INT_ACK, 3);
}

/* Each malformed ring must end in DEVICE_NEEDS_RESET, nothing emitted. */
static void test_malformed(struct drv *x, struct sink *s)
{
	struct {
		const char *what;
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next, head, jump;
	} bad[] = {
	    {"a descriptor loop", TX_BUF, 100, 1, 0, 0, 1},
	    {"a buffer beyond guest RAM", 0xfffffffffffff000ull, 0x2000, 0, 0, 0, 1},
	    {"a buffer in the MMIO hole", VIRTIO_MMIO_BASE, 100, 0, 0, 0, 1},
	    {"a length running past RAM", TX_BUF, 0xffffffffu, 0, 0, 0, 1},
	    {"a next index out of range", TX_BUF, 20, 1, 999, 0, 1},
	    {"a head index out of range", TX_BUF, 100, 0, 0, 500, 1},
	    {"an indirect descriptor", TX_BUF, 16, 4, 0, 0, 1},
	    {"an avail index a ring ahead", TX_BUF, 100, 0, 0, 0, 100},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pthread_mutex_lock(&s->lock);
		unsigned before = s->nr_rec;
		pthread_mutex_unlock(&s->lock);
		drv_init(x);
		set_desc(x, TX_DESC, 0, bad[i].addr, bad[i].len, bad[i].flags, bad[i].next);
		hr_put_le16(g(x, TX_AVAIL + 4), bad[i].head);
		__atomic_store_n((uint16_t *)g(x, TX_AVAIL + 2), bad[i].jump, __ATOMIC_RELEASE);
		mw(x, R_NOTIFY, 1);
		pthread_mutex_lock(&s->lock);
		unsigned after = s->nr_rec;
		pthread_mutex_unlock(&s->lock);
		ok((mr(x, R_STATUS) & 64) && after == before && used_idx(x, TX_USED) == 0 &&
		       (mr(x, R_INT_STATUS) & 2),
		   "malformed: %s -> DEVICE_NEEDS_RESET, config interrupt, nothing emitted",
		   bad[i].what);
	}
	mw(x, R_NOTIFY, 1);
	ok(mr(x, R_STATUS) & 64, "a device that needs reset ignores notifies");

	drv_init(x);
	mw(x, R_STATUS, 0);
	mw(x, R_STATUS, 3);
	mw(x, 0x024, 1);
	mw(x, 0x020, 1);
	mw(x, R_STATUS, 3 | 8);
	setup_queue(x, 0, 0x40000000ull, RX_AVAIL, RX_USED); /* beyond 64 MiB */
	ok((mr(x, R_STATUS) & 64) && mr(x, 0x044) == 0, "a ring outside RAM is not made ready");
	mw(x, R_STATUS, 0);
	mw(x, R_STATUS, 3);
	mw(x, 0x024, 1);
	mw(x, 0x020, 1);
	mw(x, R_STATUS, 3 | 8);
	setup_queue(x, 0, RX_DESC + 8, RX_AVAIL, RX_USED);
	ok((mr(x, R_STATUS) & 64) && mr(x, 0x044) == 0, "a misaligned ring is not made ready");
	mw(x, R_QUEUE_SEL, 0);
	mw(x, 0x038, 100);
	mw(x, 0x044, 1);
	ok(mr(x, 0x044) == 0, "a queue size that is no power of two is refused");

	uint8_t b2[2] = {0xaa, 0xbb};
	kvm_mmio(x->k, VIRTIO_MMIO_BASE + R_STATUS, 0, b2, 2);
	ok(b2[0] == 0 && b2[1] == 0, "a 16-bit register access reads 0");
	ok(kvm_mmio(x->k, VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE, 0, b2, 2) == -ENOENT,
	   "no device at the next slot (one virtio device)");
	ok(drv_init(x) == 0xf && !(mr(x, R_STATUS) & 64), "a reset device comes up again");
}

/* Traffic so that both queues sit at non-zero indices, TX wrapping the ring. */
static void busy(struct drv *x, struct sink *s, int sock)
{
	uint8_t f[100];
	const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	for (unsigned i = 0; i < 20; i++) {
		test_frame(f, bcast, 100 + i, 64);
		tx(x, f, 64, i & 1);
	}
	x->tx_seen = x->tx_avail;
	rx_post(x, 8);
	for (unsigned i = 0; i < 3; i++) {
		test_frame(f, MAC1, 200 + i, 90);
		send(sock, f, 90, 0);
	}
	wait_used(x, RX_USED, 3, 3000);
	x->rx_seen = 3;
	mw(x, R_INT_ACK, 3);
	pthread_mutex_lock(&s->lock);
	s->nr_rec = 0;
	pthread_mutex_unlock(&s->lock);
}

static void test_replica(struct drv *x, struct sink *s1, int sock0, int sock1)
{
	struct sink s2;
	struct hr_vm *vm2 = NULL, *vm3 = NULL;
	struct drv y;
	void *blob = NULL;
	size_t len = 0;
	uint8_t f[100], got[2048];
	int rc;

	busy(x, s1, sock0);
	struct virtio_dev *d1 = x->k->vdevs[0];
	ok(used_idx(x, TX_USED) == 20 && used_idx(x, RX_USED) == 3,
	   "primary: tx used 20 (the ring wrapped), rx used 3");
	ops->pause(x->vm);
	rc = ops->save_state(x->vm, &blob, &len);
	ok(rc == 0, "save_state with the device (%zu bytes)", len);

	rc =
	    open_vm(&s2, &vm2, "t-vnet-replica", NULL, "tap=vnt1,mac=52:54:00:ab:cd:ef,dirty=ring");
	ok(rc == 0, "replica on tap vnt1 (%s)", rc ? ops->last_error(vm2) : "ok");
	if (rc) {
		ops->close(vm2);
		free(blob);
		return;
	}
	drv_attach(&y, vm2);
	memcpy(y.ram, x->ram, MEM_BYTES); /* what the epochs would have copied */
	rc = ops->load_state(vm2, blob, len);
	ok(rc == 0, "load_state into the replica (%s)", rc ? ops->last_error(vm2) : "ok");
	struct virtio_dev *d2 = y.k->vdevs[0];
	int same = 1;
	for (unsigned q = 0; q < 2; q++)
		same &= d1->vq[q].last_avail == d2->vq[q].last_avail &&
			d1->vq[q].used_idx == d2->vq[q].used_idx && d2->vq[q].ready &&
			d1->vq[q].desc_gpa == d2->vq[q].desc_gpa;
	ok(same && d2->status == 0xf && d2->driver_features == d1->driver_features,
	   "replica: status, features and both queues' indices as saved");
	uint8_t mac[6];
	for (unsigned i = 0; i < 6; i++)
		kvm_mmio(y.k, VIRTIO_MMIO_BASE + 0x100 + i, 0, mac + i, 1);
	ok(!memcmp(mac, MAC1, 6), "replica: the guest keeps its MAC (from the blob, not mac=)");

	y.rx_avail = x->rx_avail;
	y.tx_avail = x->tx_avail;
	y.rx_seen = x->rx_seen;
	y.tx_seen = x->tx_seen;
	const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	drain(sock1);
	ok(ops->resume(vm2) == 0, "replica promoted (resume)");
	unsigned rarp = 0;
	for (unsigned i = 0; i < 3; i++) {
		size_t n = sock_recv(sock1, 0x8035, got, sizeof(got), 1500);
		if (n >= 42 && !memcmp(got, bcast, 6) && !memcmp(got + 6, MAC1, 6) &&
		    hr_get_be16(got + 20) == 3 && !memcmp(got + 22, MAC1, 6))
			rarp++;
	}
	ok(rarp == 3, "replica: three RARP announcements of the guest's MAC on its TAP (%u)", rarp);

	test_frame(f, bcast, 300, 70);
	tx(&y, f, 70, 0);
	pthread_mutex_lock(&s2.lock);
	int one = s2.nr_rec == 1 && s2.rec_len[0] == 70 && !memcmp(s2.rec[0], f, 70);
	pthread_mutex_unlock(&s2.lock);
	ok(used_idx(&y, TX_USED) == 21 &&
	       hr_get_le32(g(&y, TX_USED + 4 + 8 * (20 % QN))) == (uint32_t)(20 % QN) && one,
	   "replica: tx continues at index 20 and emits on the replica");
	struct hr_dirtyset *ds = NULL;
	const struct hr_mem_region *reg;
	unsigned nreg;
	ops->mem_layout(vm2, &reg, &nreg);
	hr_dirtyset_new(&ds, hr_layout_nr_gfns(reg, nreg));
	ops->pause(vm2);
	rc = ops->dirty_start(vm2);
	ops->resume(vm2);
	test_frame(f, MAC2, 301, 90);
	send(sock1, f, 90, 0);
	ok(wait_used(&y, RX_USED, 4, 3000) && !memcmp(g(&y, RX_BUF + 0x1000 * 3 + 12), f, 90),
	   "replica: rx continues at index 3 (frame in buffer 3)");
	ok(!rc && fetch(&y, ds) == 0 && dirty(ds, RX_BUF + 0x3000) && dirty(ds, RX_USED) &&
	       !dirty(ds, RX_BUF + 0x4000),
	   "replica (dirty=ring): the received frame's pages are in the dirty fetch");
	hr_dirtyset_free(ds);
	ok(used_idx(x, RX_USED) == 3, "the paused primary received nothing meanwhile");

	struct sink s3;
	rc = open_vm(&s3, &vm3, "t-vnet-plain", NULL, NULL);
	ok(rc == 0 && ops->load_state(vm3, blob, len) == -HR_EBADSTATE,
	   "a blob with a virtio-net is refused by a VM without one (%s)",
	   vm3 ? ops->last_error(vm3) : "");
	ops->close(vm3);
	ops->close(vm2);
	free(s2.g.buf);
	ops->resume(x->vm);
	free(blob);
}

/* A vCPU's own accesses: flat 32-bit code that reads and writes the device. */
static void test_vcpu_path(void)
{
	static const uint8_t code[] = {
	    0xa1, 0x00, 0x00, 0x00, 0xd0,		       /* mov eax, [0xd0000000] */
	    0xa3, 0x00, 0x00, 0x02, 0x00,		       /* mov [0x20000], eax */
	    0xc7, 0x05, 0x70, 0x00, 0x00, 0xd0, 0x03, 0, 0, 0, /* mov dword [0xd0000070], 3 */
	    0xa1, 0x70, 0x00, 0x00, 0xd0,		       /* mov eax, [0xd0000070] */
	    0xa3, 0x04, 0x00, 0x02, 0x00,		       /* mov [0x20004], eax */
	    0xa0, 0x00, 0x01, 0x00, 0xd0,		       /* mov al, [0xd0000100] */
	    0xa2, 0x08, 0x00, 0x02, 0x00,		       /* mov [0x20008], al */
	    0xa1, 0x00, 0x10, 0x00, 0xd0,		       /* mov eax, [0xd0001000] */
	    0xa3, 0x0c, 0x00, 0x02, 0x00,		       /* mov [0x2000c], eax */
	    0xb0, 0x2a, 0xe6, 0xf4, 0xf4,		       /* out 0xf4, 42; hlt */
	};
	struct sink s;
	struct hr_vm *vm = NULL;
	struct drv x;
	int rc = open_vm(&s, &vm, "t-vnet-vcpu", NULL, "tap=vnt2,mac=52:54:00:12:34:56");
	if (rc) {
		ok(0, "open a VM on tap vnt2 (%s)", ops->last_error(vm));
		ops->close(vm);
		return;
	}
	drv_attach(&x, vm);
	memcpy(g(&x, 0x10000), code, sizeof(code));
	memset(g(&x, 0x20000), 0, 16);
	hr_put_le64(g(&x, 0x500 + 16), 0x00cf9b000000ffffull); /* GDT: code32 0x10 */
	hr_put_le64(g(&x, 0x500 + 24), 0x00cf93000000ffffull); /* data32 0x18 */
	struct kvm_sregs sr;
	struct kvm_regs r = {.rflags = 2, .rip = 0x10000};
	int fd = x.k->vcpus[0].fd;
	ioctl(fd, KVM_GET_SREGS, &sr);
	struct kvm_segment cs = {.limit = 0xffffffff,
				 .selector = 0x10,
				 .type = 0xb,
				 .present = 1,
				 .db = 1,
				 .s = 1,
				 .g = 1};
	struct kvm_segment ds = cs;
	ds.selector = 0x18;
	ds.type = 0x3;
	sr.cs = cs;
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss = ds;
	sr.gdt.base = 0x500;
	sr.gdt.limit = 31;
	sr.cr0 = 0x11;
	sr.cr4 = 0;
	sr.efer = 0;
	rc = ioctl(fd, KVM_SET_SREGS, &sr) < 0 || ioctl(fd, KVM_SET_REGS, &r) < 0;
	ops->resume(vm);
	for (int i = 0; i < 5000 && !s.g.exited; i++)
		usleep(1000);
	ok(!rc && s.g.exited == HR_EXIT_DEBUG_PORT && s.g.exit_code == 85,
	   "vCPU path: the probe ran to its exit port (exit %d, code %d)", s.g.exited,
	   s.g.exit_code);
	ok(hr_get_le32(g(&x, 0x20000)) == 0x74726976 && hr_get_le32(g(&x, 0x20004)) == 3 &&
	       *g(&x, 0x20008) == 0x52 && hr_get_le32(g(&x, 0x2000c)) == 0xffffffffu,
	   "vCPU path: KVM_EXIT_MMIO reads magic, writes and reads Status, reads a config "
	   "byte; the empty slot after it reads all ones");
	ops->close(vm);
	free(s.g.buf);
}

int main(void)
{
	if (geteuid() != 0)
		skip_all("needs root (TAP interfaces, network namespace)");
	if (access("/dev/kvm", R_OK | W_OK))
		skip_all("/dev/kvm not usable");
	if (access("/dev/net/tun", R_OK | W_OK))
		skip_all("/dev/net/tun not usable");
	if (access(gh_guest("memwalk.elf"), R_OK))
		bail("tests/guests/memwalk.elf not built");
	if (unshare(CLONE_NEWNET) < 0)
		skip_all("cannot make a network namespace (unshare)");
	int if0 = make_tap("vnt0"), if1 = make_tap("vnt1"), if2 = make_tap("vnt2");
	if (if0 < 0 || if1 < 0 || if2 < 0)
		skip_all("cannot make TAP interfaces");
	int sock0 = packet_socket(if0), sock1 = packet_socket(if1);
	if (sock0 < 0 || sock1 < 0)
		bail("packet sockets: %s", strerror(errno));
	ops = hr_backend_find("kvm");

	test_options();
	test_vcpu_path();

	struct sink s;
	struct hr_vm *vm = NULL;
	size_t at = 0;
	int rc =
	    open_vm(&s, &vm, "t-vnet", gh_guest("memwalk.elf"), "tap=vnt0,mac=52:54:00:12:34:56");
	ok(rc == 0, "open a VM with tap=vnt0 (%s)", rc ? ops->last_error(vm) : "ok");
	if (rc)
		bail("cannot open the VM");
	const struct hr_chan_desc *ch;
	unsigned nch = 0;
	ops->channels(vm, &ch, &nch);
	ok(nch == 2 && !strcmp(ch[1].name, "net0") && ch[1].kind == HR_CHAN_NET &&
	       ch[1].max_record_bytes == KVM_NET_MAX_FRAME,
	   "channels: console and net0 (records of at most %u bytes)", KVM_NET_MAX_FRAME);
	ops->resume(vm);
	ok(gh_wait(&s.g, "cmdline=\"", &at, 30) &&
	       gh_wait(&s.g, "virtio_mmio.device=4K@0xd0000000:5", &at, 5),
	   "the guest command line names the device (virtio_mmio.device=4K@0xd0000000:5)");

	struct drv x;
	drv_attach(&x, vm);
	const struct hr_mem_region *reg;
	unsigned nreg;
	ops->mem_layout(vm, &reg, &nreg);
	struct hr_dirtyset *ds = NULL;
	hr_dirtyset_new(&ds, hr_layout_nr_gfns(reg, nreg));
	ops->pause(vm);
	ok(ops->dirty_start(vm) == 0, "dirty tracking on");
	ops->resume(vm);

	test_negotiation(&x);
	test_tx(&x, &s, sock0);
	test_rx(&x, sock0, ds);
	test_malformed(&x, &s);
	test_replica(&x, &s, sock0, sock1);

	ok(gh_wait(&s.g, "seq=", &at, 10) && !strstr(s.g.buf, "errors=1"),
	   "the guest ran all along without finding corruption");
	ops->close(vm);
	hr_dirtyset_free(ds);
	free(s.g.buf);
	plan(tap_n);
	return tap_done();
}
