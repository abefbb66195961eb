/*
 * t-virtio-blk.c - the KVM backend's virtio-blk, without /dev/kvm: a bare
 * vm (kvm_vm_bare: RAM and devices, no vCPU) whose registers the test
 * writes through the vCPUs' entry point (kvm_mmio), as the guest's driver,
 * with rings and buffers in that RAM.  Checks: features and config; reads,
 * writes, flush, write-zeroes, discard and GET_ID against the image; every
 * write reported to disk_write (offsets, data, flags) before its used entry
 * is visible; malformed requests get IOERR / UNSUPP; hostile rings set
 * DEVICE_NEEDS_RESET and a reset brings the device back; host I/O faults
 * (aio injection) and a refusing disk_write fail the request; pause waits
 * for a request in flight and nothing is taken while paused; the device's
 * state record loads into a vm with the same disk and not another size.
 * Runs once per aio engine (io_uring, then HR_DISK_AIO=threads).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "backends/kvm/kvm-internal.h"
#include "backends/kvm/virtio-blk.h"
#include "common/err.h"
#include "common/unaligned.h"

#define MEM_BYTES     (16u << 20)
#define QN	      64u
#define DESC	      0x100000ull
#define AVAIL	      0x101000ull
#define USED	      0x102000ull
#define HDR	      0x110000ull /* + slot * 64 */
#define STAT	      0x118000ull /* + slot */
#define DATA	      0x200000ull /* + slot * 64 KiB */
#define IMG_BYTES     (1u << 20)
#define NR_PER_ENGINE 52

#define R_STATUS 0x070
#define R_NOTIFY 0x050
#define R_ISR	 0x060
#define R_ACK	 0x064

#define T_IN	 0u
#define T_OUT	 1u
#define T_FLUSH	 4u
#define T_GET_ID 8u
#define T_DISC	 11u
#define T_WZ	 13u
#define S_OK	 0u
#define S_IOERR	 1u
#define S_UNSUPP 2u

/* ---- what disk_write saw ---- */
struct rep {
	unsigned disk, flags;
	uint64_t off, len;
	uint8_t data[8192];
	uint16_t used_idx; /* the used ring's index when reported */
};
static struct rep reps[64];
static unsigned nr_reps;
static int dw_refuse; /* return -ENOBUFS */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_closed, gate_waiting;

struct drv {
	struct kvm_vm *k;
	uint8_t *ram;
	unsigned dev;
	uint16_t avail_idx, next_desc;
};
static struct drv *cur;
static int pause_done;

extern const struct hr_backend_ops hr_kvm_ops;

static void *pause_main(void *arg)
{
	kvm_virtio_pause(arg);
	__atomic_store_n(&pause_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static uint16_t used_idx(struct drv *x)
{
	return __atomic_load_n((uint16_t *)(x->ram + USED + 2), __ATOMIC_ACQUIRE);
}

static int dw(void *opaque, unsigned disk, uint64_t off, const void *buf, size_t len,
	      unsigned flags)
{
	(void)opaque;
	pthread_mutex_lock(&gate_lock);
	gate_waiting = 1;
	pthread_cond_broadcast(&gate_cond);
	while (gate_closed)
		pthread_cond_wait(&gate_cond, &gate_lock);
	gate_waiting = 0;
	/* completions of several threads report at once: record under the lock */
	int refuse = dw_refuse;
	if (!refuse && nr_reps < 64) {
		struct rep *r = &reps[nr_reps++];
		r->disk = disk;
		r->flags = flags;
		r->off = off;
		r->len = len;
		if (buf)
			memcpy(r->data, buf, len < sizeof(r->data) ? len : sizeof(r->data));
		r->used_idx = used_idx(cur);
	}
	pthread_mutex_unlock(&gate_lock);
	if (refuse)
		return -ENOBUFS;
	return 0;
}

static uint32_t mr(struct drv *x, uint32_t off)
{
	uint8_t b[4];
	kvm_mmio(x->k, VIRTIO_MMIO_BASE + x->dev * VIRTIO_MMIO_STRIDE + off, 0, b, 4);
	return hr_get_le32(b);
}

static void mw(struct drv *x, uint32_t off, uint32_t v)
{
	uint8_t b[4];
	hr_put_le32(b, v);
	kvm_mmio(x->k, VIRTIO_MMIO_BASE + x->dev * VIRTIO_MMIO_STRIDE + off, 1, b, 4);
}

static void cfg_read(struct drv *x, uint32_t off, void *buf, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		kvm_mmio(x->k, VIRTIO_MMIO_BASE + x->dev * VIRTIO_MMIO_STRIDE + 0x100 + off + i, 0,
			 (uint8_t *)buf + i, 1);
}

static uint64_t features(struct drv *x)
{
	mw(x, 0x014, 0);
	uint64_t f = mr(x, 0x010);
	mw(x, 0x014, 1);
	return f | (uint64_t)mr(x, 0x010) << 32;
}

/* Reset and bring the device up with queue 0 at DESC/AVAIL/USED. */
static int drv_init(struct drv *x, uint64_t feat)
{
	mw(x, R_STATUS, 0);
	memset(x->ram + DESC, 0, 0x3000);
	x->avail_idx = x->next_desc = 0;
	mw(x, R_STATUS, 3);
	mw(x, 0x024, 0);
	mw(x, 0x020, (uint32_t)feat);
	mw(x, 0x024, 1);
	mw(x, 0x020, (uint32_t)(feat >> 32));
	mw(x, R_STATUS, 11);
	if (!(mr(x, R_STATUS) & 8))
		return -1;
	mw(x, 0x030, 0);
	mw(x, 0x038, QN);
	mw(x, 0x080, (uint32_t)DESC);
	mw(x, 0x084, 0);
	mw(x, 0x090, (uint32_t)AVAIL);
	mw(x, 0x094, 0);
	mw(x, 0x0a0, (uint32_t)USED);
	mw(x, 0x0a4, 0);
	mw(x, 0x044, 1);
	mw(x, R_STATUS, 15);
	return mr(x, R_STATUS) == 15 ? 0 : -1;
}

struct d {
	uint64_t gpa;
	uint32_t len;
	int write;
};

/* Put a chain in the ring (descriptors in order, linked) and kick. */
static uint16_t post(struct drv *x, const struct d *ds, unsigned n, int kick)
{
	uint16_t head = x->next_desc;
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % QN);
		uint8_t *e = x->ram + DESC + 16u * idx;
		hr_put_le64(e, ds[i].gpa);
		hr_put_le32(e + 8, ds[i].len);
		hr_put_le16(e + 12, (uint16_t)((i + 1 < n ? 1 : 0) | (ds[i].write ? 2 : 0)));
		hr_put_le16(e + 14, (uint16_t)((head + i + 1) % QN));
	}
	x->next_desc = (uint16_t)((head + n) % QN);
	hr_put_le16(x->ram + AVAIL + 4 + 2 * (x->avail_idx % QN), head);
	x->avail_idx++;
	__atomic_store_n((uint16_t *)(x->ram + AVAIL + 2), x->avail_idx, __ATOMIC_RELEASE);
	if (kick)
		mw(x, R_NOTIFY, 0);
	return head;
}

/* Wait (5 s at most) until the used index reaches want. */
static int wait_used(struct drv *x, uint16_t want)
{
	struct timespec t0, now, tick = {0, 200000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if ((uint16_t)(used_idx(x) - want) < 0x8000)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 5)
			return 0;
		nanosleep(&tick, NULL);
	}
}

/* The used entry for the last completed request: its length. */
static uint32_t last_used_len(struct drv *x)
{
	uint16_t i = (uint16_t)(used_idx(x) - 1) % QN;
	return hr_get_le32(x->ram + USED + 4 + 8 * i + 4);
}

static void put_hdr(struct drv *x, unsigned slot, uint32_t type, uint64_t sector)
{
	uint8_t *h = x->ram + HDR + 64 * slot;
	hr_put_le32(h, type);
	hr_put_le32(h + 4, 0);
	hr_put_le64(h + 8, sector);
	x->ram[STAT + slot] = 0xee;
}

/* One request with a header, data segments and a status byte; its status. */
static int req(struct drv *x, unsigned slot, uint32_t type, uint64_t sector, const struct d *data,
	       unsigned nd)
{
	struct d ds[8];
	unsigned n = 0;
	put_hdr(x, slot, type, sector);
	ds[n++] = (struct d){HDR + 64 * slot, 16, 0};
	for (unsigned i = 0; i < nd; i++)
		ds[n++] = data[i];
	ds[n++] = (struct d){STAT + slot, 1, 1};
	uint16_t want = (uint16_t)(used_idx(x) + 1);
	post(x, ds, n, 1);
	if (!wait_used(x, want))
		return -1;
	return x->ram[STAT + slot];
}

static int make_image(const char *path, uint64_t bytes, int fill)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		bail("image %s: %s", path, strerror(errno));
	static uint8_t buf[4096];
	memset(buf, fill, sizeof(buf));
	for (uint64_t o = 0; fill && o < bytes; o += sizeof(buf))
		if (pwrite(fd, buf, sizeof(buf), (off_t)o) != (ssize_t)sizeof(buf))
			bail("filling %s", path);
	return fd;
}

static struct hr_vm_config base_cfg(const struct hr_disk_spec *disks, unsigned n)
{
	return (struct hr_vm_config){.name = "t-blk",
				     .mem_bytes = MEM_BYTES,
				     .nr_vcpus = 1,
				     .disks = disks,
				     .nr_disks = n,
				     .disk_write = dw};
}

#define F_VERSION_1 (1ull << 32)
#define F_SEG_MAX   (1ull << 2)
#define F_RO	    (1ull << 5)
#define F_BLK_SIZE  (1ull << 6)
#define F_FLUSH	    (1ull << 9)
#define F_DISCARD   (1ull << 13)
#define F_WZ	    (1ull << 14)
#define F_EVENT_IDX (1ull << 29)

static void run(const char *engine, const char *dir)
{
	char p0[256], p1[256], p2[256];
	snprintf(p0, sizeof(p0), "%s/d0", dir);
	snprintf(p1, sizeof(p1), "%s/d1", dir);
	snprintf(p2, sizeof(p2), "%s/d2", dir);
	int fd0 = make_image(p0, IMG_BYTES, 0);
	int fd1 = make_image(p1, IMG_BYTES, 0x77);
	struct hr_disk_spec disks[2] = {{p0, "hr-serial-0", 0}, {p1, NULL, 1}};
	struct hr_vm_config cfg = base_cfg(disks, 2);
	struct kvm_vm *k = NULL;
	setenv("HR_DISK_AIO", engine, 1);
	nr_reps = 0;

	int rc = kvm_vm_bare(&k, &cfg);
	ok(rc == 0 && k->nr_vdevs == 2, "%s: a bare vm with two disks (%s)", engine,
	   rc ? k->errbuf : "");
	if (rc)
		bail("cannot continue");
	struct drv x = {.k = k, .ram = k->slots[0].hva, .dev = 0};
	struct drv y = {.k = k, .ram = k->slots[0].hva, .dev = 1};
	cur = &x;
	kvm_virtio_resume(k);

	ok(mr(&x, 0) == 0x74726976 && mr(&x, 4) == 2 && mr(&x, 8) == 2,
	   "%s: magic, version 2, device id 2 (block)", engine);
	uint64_t f = features(&x), fr = features(&y);
	ok(f == (F_VERSION_1 | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WZ | F_EVENT_IDX),
	   "%s: features of a writable disk (0x%llx)", engine, (unsigned long long)f);
	ok(fr == (F_VERSION_1 | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_RO | F_EVENT_IDX),
	   "%s: a readonly disk offers RO and neither DISCARD nor WRITE_ZEROES (0x%llx)", engine,
	   (unsigned long long)fr);
	uint8_t c[60];
	cfg_read(&x, 0, c, sizeof(c));
	ok(hr_get_le64(c) == IMG_BYTES / 512 && hr_get_le32(c + 12) == VBLK_SEG_MAX &&
	       hr_get_le32(c + 20) == 512 && hr_get_le32(c + 40) == 1 && hr_get_le32(c + 52) == 1,
	   "%s: config: capacity %llu sectors, seg_max, blk_size 512, one discard segment", engine,
	   (unsigned long long)hr_get_le64(c));
	uint64_t want_f = F_VERSION_1 | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WZ;
	ok(drv_init(&x, want_f) == 0, "%s: the device reaches DRIVER_OK", engine);
	/* y uses the same ring addresses: it is brought up only after x is reset */

	/* a write in three segments: 1000 + 3096 + 4096 bytes at sector 8 */
	uint8_t *dbuf = x.ram + DATA;
	for (unsigned i = 0; i < 8192; i++)
		dbuf[i] = (uint8_t)(i * 7 + 1);
	struct d w3[3] = {{DATA, 1000, 0}, {DATA + 1000, 3096, 0}, {DATA + 4096, 4096, 0}};
	uint16_t u0 = used_idx(&x);
	ok(req(&x, 0, T_OUT, 8, w3, 3) == S_OK && last_used_len(&x) == 1,
	   "%s: a 3-segment write completes OK, used length 1", engine);
	uint8_t file[8192];
	ok(pread(fd0, file, 8192, 4096) == 8192 && !memcmp(file, dbuf, 8192),
	   "%s: the image holds the written bytes at sector 8", engine);
	ok(nr_reps == 3 && reps[0].off == 4096 && reps[0].len == 1000 && reps[1].off == 5096 &&
	       reps[1].len == 3096 && reps[2].off == 8192 && reps[2].len == 4096 &&
	       !reps[0].flags && !memcmp(reps[0].data, dbuf, 1000) &&
	       !memcmp(reps[1].data, dbuf + 1000, 3096) &&
	       !memcmp(reps[2].data, dbuf + 4096, 4096) && reps[0].disk == 0,
	   "%s: disk_write saw each segment at its byte offset with its data (%u reports)", engine,
	   nr_reps);
	ok(nr_reps == 3 && reps[0].used_idx == u0 && reps[2].used_idx == u0,
	   "%s: reported before the used entry was visible", engine);
	ok(mr(&x, R_ISR) & 1, "%s: InterruptStatus has the used-ring bit", engine);
	mw(&x, R_ACK, 1);

	/* read it back into two segments */
	memset(x.ram + DATA + 0x10000, 0, 8192);
	struct d r2[2] = {{DATA + 0x10000, 512, 1}, {DATA + 0x10000 + 512, 7680, 1}};
	ok(req(&x, 1, T_IN, 8, r2, 2) == S_OK && last_used_len(&x) == 8193 &&
	       !memcmp(x.ram + DATA + 0x10000, dbuf, 8192),
	   "%s: a 2-segment read returns the data, used length 8193", engine);
	ok(nr_reps == 3, "%s: a read is not reported", engine);

	ok(req(&x, 2, T_FLUSH, 0, NULL, 0) == S_OK && nr_reps == 4 &&
	       reps[3].flags == HR_DW_FLUSH && reps[3].len == 0,
	   "%s: a flush completes OK and is reported as HR_DW_FLUSH", engine);

	uint8_t *seg = x.ram + HDR + 64 * 3 + 16;
	hr_put_le64(seg, 9);
	hr_put_le32(seg + 8, 2);
	hr_put_le32(seg + 12, 1); /* unmap */
	struct d z = {HDR + 64 * 3 + 16, 16, 0};
	ok(req(&x, 3, T_WZ, 0, &z, 1) == S_OK && nr_reps == 5 && reps[4].flags == HR_DW_ZEROES &&
	       reps[4].off == 9 * 512 && reps[4].len == 1024,
	   "%s: write-zeroes (unmap) of sectors 9-10 is reported as zeroes at byte 4608", engine);
	uint8_t zeros[1024] = {0};
	ok(pread(fd0, file, 2048, 8 * 512) == 2048 && !memcmp(file, dbuf, 512) &&
	       !memcmp(file + 512, zeros, 1024) && !memcmp(file + 1536, dbuf + 1536, 512),
	   "%s: exactly those sectors read zero", engine);
	hr_put_le64(seg, 12);
	hr_put_le32(seg + 8, 1);
	hr_put_le32(seg + 12, 0);
	ok(req(&x, 3, T_DISC, 0, &z, 1) == S_OK && nr_reps == 6 && reps[5].off == 12 * 512 &&
	       reps[5].flags == HR_DW_ZEROES,
	   "%s: discard of sector 12 completes OK and is reported as zeroes", engine);
	hr_put_le32(seg + 12, 1);
	ok(req(&x, 3, T_DISC, 0, &z, 1) == S_UNSUPP && nr_reps == 6,
	   "%s: discard with the unmap flag is UNSUPP", engine);

	memset(x.ram + DATA, 0xff, 32);
	struct d idd = {DATA, 20, 1};
	ok(req(&x, 4, T_GET_ID, 0, &idd, 1) == S_OK && last_used_len(&x) == 21 &&
	       !memcmp(x.ram + DATA, "hr-serial-0\0\0\0\0\0\0\0\0\0", 20) &&
	       x.ram[DATA + 20] == 0xff,
	   "%s: GET_ID answers the serial, NUL-padded to 20 bytes", engine);

	/* malformed requests: IOERR / UNSUPP, nothing written or reported */
	struct d rd = {DATA, 1024, 1}, wd = {DATA, 1024, 0};
	ok(req(&x, 5, T_IN, IMG_BYTES / 512 - 1, &rd, 1) == S_IOERR,
	   "%s: a read past the capacity is IOERR", engine);
	ok(req(&x, 5, T_OUT, IMG_BYTES / 512 - 1, &wd, 1) == S_IOERR,
	   "%s: a write past the capacity is IOERR", engine);
	ok(req(&x, 5, T_OUT, ~0ull / 256, &wd, 1) == S_IOERR,
	   "%s: a sector whose byte offset overflows is IOERR", engine);
	ok(req(&x, 5, T_IN, 0, &wd, 1) == S_IOERR,
	   "%s: a read into a device-readable buffer is IOERR", engine);
	ok(req(&x, 5, T_OUT, 0, &rd, 1) == S_IOERR,
	   "%s: a write from a device-writable buffer is IOERR", engine);
	struct d odd = {DATA, 1000, 0};
	ok(req(&x, 5, T_OUT, 0, &odd, 1) == S_IOERR,
	   "%s: a write that is not whole sectors is IOERR", engine);
	ok(req(&x, 5, 99, 0, NULL, 0) == S_UNSUPP, "%s: an unknown request type is UNSUPP", engine);
	ok(nr_reps == 6 && pread(fd0, file, 1024, IMG_BYTES - 1024) == 1024 &&
	       !memcmp(file, zeros, 1024),
	   "%s: none of them wrote or reported anything", engine);

	/* host I/O faults and a refusing core */
	struct hr_aio *aio = kvm_blk_aio(k, 0);
	hr_aio_inject(aio, 1u << HR_AIO_READ, -EIO, 1);
	ok(req(&x, 6, T_IN, 0, &rd, 1) == S_IOERR, "%s: a failed host read is IOERR", engine);
	hr_aio_inject(aio, 1u << HR_AIO_WRITE, -ENOSPC, 1);
	ok(req(&x, 6, T_OUT, 100, &wd, 1) == S_IOERR && nr_reps == 6,
	   "%s: a failed host write is IOERR and not reported", engine);
	dw_refuse = 1;
	ok(req(&x, 6, T_OUT, 100, &wd, 1) == S_IOERR, "%s: a write disk_write refuses is IOERR",
	   engine);
	ok(req(&x, 6, T_FLUSH, 0, NULL, 0) == S_IOERR, "%s: a flush disk_write refuses is IOERR",
	   engine);
	dw_refuse = 0;
	struct kvm_blk_stats st;
	memset(&st, 0, sizeof(st));
	rc = kvm_blk_get_stats(k, 0, &st);
	ok(rc == 0 && st.io_errors >= 10 && st.unsupported == 2,
	   "%s: the device counted %llu I/O errors, %llu unsupported", engine,
	   (unsigned long long)st.io_errors, (unsigned long long)st.unsupported);

	/* pause waits for a request in flight; nothing is taken while paused */
	pthread_mutex_lock(&gate_lock);
	gate_closed = 1;
	pthread_mutex_unlock(&gate_lock);
	uint16_t before = used_idx(&x);
	put_hdr(&x, 7, T_OUT, 200);
	struct d gd[3] = {{HDR + 64 * 7, 16, 0}, {DATA, 512, 0}, {STAT + 7, 1, 1}};
	post(&x, gd, 3, 1);
	pthread_mutex_lock(&gate_lock);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	while (!gate_waiting && pthread_cond_timedwait(&gate_cond, &gate_lock, &dl) == 0)
		;
	int in_flight = gate_waiting;
	pthread_mutex_unlock(&gate_lock);
	ok(in_flight && hr_aio_inflight(aio) == 1, "%s: a write is in flight (held in disk_write)",
	   engine);
	pthread_t pauser;
	pause_done = 0;
	pthread_create(&pauser, NULL, pause_main, k);
	nanosleep(&(struct timespec){0, 50000000}, NULL); /* a window for a wrong return */
	ok(!__atomic_load_n(&pause_done, __ATOMIC_ACQUIRE) && used_idx(&x) == before,
	   "%s: pause does not return while the write is in flight", engine);
	pthread_mutex_lock(&gate_lock);
	gate_closed = 0;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	pthread_join(pauser, NULL);
	ok(pause_done && used_idx(&x) == (uint16_t)(before + 1) && x.ram[STAT + 7] == S_OK &&
	       hr_aio_inflight(aio) == 0,
	   "%s: pause returned after the write completed and was pushed", engine);
	before = used_idx(&x);
	put_hdr(&x, 4, T_GET_ID, 0);
	struct d gid[3] = {{HDR + 64 * 4, 16, 0}, {DATA, 20, 1}, {STAT + 4, 1, 1}};
	post(&x, gid, 3, 1);
	ok(used_idx(&x) == before, "%s: a request kicked while paused is not taken", engine);
	kvm_virtio_resume(k);
	ok(used_idx(&x) == (uint16_t)(before + 1) && x.ram[STAT + 4] == S_OK, "%s: resume takes it",
	   engine);

	/* a driver that posts one chain again and again: at most num in flight */
	pthread_mutex_lock(&gate_lock);
	gate_closed = 1;
	pthread_mutex_unlock(&gate_lock);
	before = used_idx(&x);
	put_hdr(&x, 8, T_OUT, 300);
	struct d rep3[3] = {{HDR + 64 * 8, 16, 0}, {DATA, 512, 0}, {STAT + 8, 1, 1}};
	uint16_t h = post(&x, rep3, 3, 0);
	for (unsigned i = 1; i < QN; i++) {
		hr_put_le16(x.ram + AVAIL + 4 + 2 * (x.avail_idx % QN), h);
		x.avail_idx++;
	}
	hr_put_le16(x.ram + AVAIL + 2, x.avail_idx);
	mw(&x, R_NOTIFY, 0);
	for (unsigned i = 0; i < 6; i++) {
		hr_put_le16(x.ram + AVAIL + 4 + 2 * (x.avail_idx % QN), h);
		x.avail_idx++;
	}
	hr_put_le16(x.ram + AVAIL + 2, x.avail_idx);
	mw(&x, R_NOTIFY, 0);
	unsigned held = hr_aio_inflight(aio);
	pthread_mutex_lock(&gate_lock);
	gate_closed = 0;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	ok(held == QN, "%s: %u requests in flight with %u posted (at most the ring's %u)", engine,
	   held, QN + 6, QN);
	ok(wait_used(&x, (uint16_t)(before + QN + 6)) && x.ram[STAT + 8] == S_OK,
	   "%s: the rest are taken as the first complete (used %u)", engine,
	   (unsigned)(uint16_t)(used_idx(&x) - before));
	nr_reps = 0;

	/* hostile rings */
	uint8_t *e0 = x.ram + DESC, *e1 = x.ram + DESC + 16;
	hr_put_le64(e0, HDR);
	hr_put_le32(e0 + 8, 16);
	hr_put_le16(e0 + 12, 1);
	hr_put_le16(e0 + 14, 1);
	hr_put_le64(e1, STAT);
	hr_put_le32(e1 + 8, 1);
	hr_put_le16(e1 + 12, 1);
	hr_put_le16(e1 + 14, 0);
	hr_put_le16(x.ram + AVAIL + 4 + 2 * (x.avail_idx % QN), 0);
	x.avail_idx++;
	hr_put_le16(x.ram + AVAIL + 2, x.avail_idx);
	mw(&x, R_NOTIFY, 0);
	ok(mr(&x, R_STATUS) & 64, "%s: a descriptor loop sets DEVICE_NEEDS_RESET", engine);
	ok(drv_init(&x, want_f) == 0 && req(&x, 4, T_GET_ID, 0, &idd, 1) == S_OK,
	   "%s: after a reset the device works again", engine);
	struct d outside = {MEM_BYTES - 8, 16, 1};
	put_hdr(&x, 5, T_IN, 0);
	struct d od[3] = {{HDR + 64 * 5, 16, 0}, outside, {STAT + 5, 1, 1}};
	post(&x, od, 3, 1);
	ok((mr(&x, R_STATUS) & 64) && x.ram[STAT + 5] == 0xee,
	   "%s: a buffer beyond guest RAM sets DEVICE_NEEDS_RESET, nothing written", engine);
	drv_init(&x, want_f);
	struct d nostat[2] = {{HDR, 16, 0}, {DATA, 512, 0}};
	put_hdr(&x, 0, T_OUT, 0);
	post(&x, nostat, 2, 1);
	ok(mr(&x, R_STATUS) & 64, "%s: a request without a status byte sets DEVICE_NEEDS_RESET",
	   engine);
	drv_init(&x, want_f);
	hr_put_le16(x.ram + AVAIL + 2, (uint16_t)(x.avail_idx + QN + 1));
	mw(&x, R_NOTIFY, 0);
	ok(mr(&x, R_STATUS) & 64, "%s: an avail index more than a ring ahead sets NEEDS_RESET",
	   engine);
	ok(drv_init(&x, want_f) == 0 && req(&x, 4, T_GET_ID, 0, &idd, 1) == S_OK,
	   "%s: and a reset brings it back again", engine);

	/* state record: loads into a vm with the same disk, not another size */
	size_t sb = virtio_state_bytes(k->vdevs[0]);
	uint8_t *rec = malloc(sb);
	virtio_state_save(k->vdevs[0], rec);
	close(make_image(p2, 2 * IMG_BYTES, 0));
	struct hr_disk_spec same[1] = {{p0, "other", 0}}, other[1] = {{p2, NULL, 0}};
	struct hr_vm_config c2 = base_cfg(same, 1), c3 = base_cfg(other, 1);
	struct kvm_vm *k2 = NULL, *k3 = NULL;
	rc = kvm_vm_bare(&k2, &c2);
	ok(rc == 0 && virtio_state_load(k2->vdevs[0], rec, sb) == 0 && k2->vdevs[0]->vq[0].ready &&
	       k2->vdevs[0]->vq[0].used_idx == used_idx(&x),
	   "%s: the state record loads into a vm with the same disk (queue at used %u)", engine,
	   used_idx(&x));
	uint8_t sn[20];
	struct drv x2 = {.k = k2, .ram = k2->slots[0].hva, .dev = 0};
	ok(k2 && (cfg_read(&x2, 0, sn, 8), hr_get_le64(sn) == IMG_BYTES / 512),
	   "%s: its capacity is the image's", engine);
	rc = kvm_vm_bare(&k3, &c3);
	ok(rc == 0 && virtio_state_load(k3->vdevs[0], rec, sb) == -HR_EBADSTATE &&
	       strstr(k3->errbuf, "sectors"),
	   "%s: a disk of another size refuses the record (%s)", engine, k3 ? k3->errbuf : "");
	hr_kvm_ops.close((struct hr_vm *)k2);
	hr_kvm_ops.close((struct hr_vm *)k3);
	free(rec);

	/* the readonly disk: writes fail, reads and flushes work */
	mw(&x, R_STATUS, 0);
	cur = &y;
	ok(drv_init(&y, F_VERSION_1 | F_RO | F_FLUSH) == 0, "%s: the readonly disk comes up",
	   engine);
	unsigned reps_before = nr_reps;
	ok(req(&y, 0, T_OUT, 0, &wd, 1) == S_IOERR && pread(fd1, file, 1, 0) == 1 &&
	       file[0] == 0x77 && nr_reps == reps_before,
	   "%s: a write to the readonly disk is IOERR, image and reports untouched", engine);
	ok(req(&y, 1, T_IN, 0, &rd, 1) == S_OK && x.ram[DATA] == 0x77 && x.ram[DATA + 1023] == 0x77,
	   "%s: reading the readonly disk works", engine);
	hr_put_le64(seg, 0);
	hr_put_le32(seg + 8, 1);
	hr_put_le32(seg + 12, 0);
	ok(req(&y, 3, T_WZ, 0, &z, 1) == S_IOERR, "%s: write-zeroes on the readonly disk is IOERR",
	   engine);

	hr_kvm_ops.close((struct hr_vm *)k);
	close(fd0);
	close(fd1);
	unlink(p0);
	unlink(p1);
	unlink(p2);
}

static void test_refusals(const char *dir)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/r0", dir);
	close(make_image(p, IMG_BYTES, 0));
	struct hr_disk_spec d5[5] = {
	    {p, NULL, 0}, {p, NULL, 0}, {p, NULL, 0}, {p, NULL, 0}, {p, NULL, 0}};
	struct hr_vm_config c = base_cfg(d5, 5);
	struct kvm_vm *k = NULL;
	int rc;
	rc = kvm_vm_bare(&k, &c);
	ok(rc == -EINVAL, "five disks are refused (%s)", k ? k->errbuf : "");
	hr_kvm_ops.close((struct hr_vm *)k);
	struct hr_disk_spec longser = {p, "123456789012345678901", 0};
	c = base_cfg(&longser, 1);
	k = NULL;
	rc = kvm_vm_bare(&k, &c);
	ok(rc == -EINVAL && strstr(k->errbuf, "serial"), "a serial over 20 bytes is refused (%s)",
	   k ? k->errbuf : "");
	hr_kvm_ops.close((struct hr_vm *)k);
	struct hr_disk_spec missing = {"/nonexistent/disk.img", NULL, 0};
	c = base_cfg(&missing, 1);
	k = NULL;
	rc = kvm_vm_bare(&k, &c);
	ok(rc == -ENOENT && strstr(k->errbuf, "/nonexistent/disk.img"),
	   "a missing image is refused naming it (%s)", k ? k->errbuf : "");
	hr_kvm_ops.close((struct hr_vm *)k);
	struct hr_disk_spec four[4] = {{p, NULL, 0}, {p, NULL, 1}, {p, NULL, 1}, {p, NULL, 1}};
	c = base_cfg(four, 4);
	k = NULL;
	rc = kvm_vm_bare(&k, &c);
	ok(rc == 0 && k->nr_vdevs == 4 && k->vdevs[2]->gsi == 7 && k->vdevs[3]->gsi == 9,
	   "four disks: GSIs skip the RTC's 8 (%u)", k && k->nr_vdevs == 4 ? k->vdevs[3]->gsi : 0);
	hr_kvm_ops.close((struct hr_vm *)k);
	ok(hr_kvm_ops.features & HR_BF_DISKS, "the KVM backend has HR_BF_DISKS");
	unlink(p);
}

int main(void)
{
	char dir[] = "/tmp/t-virtio-blk.XXXXXX";
	if (!mkdtemp(dir))
		bail("mkdtemp: %s", strerror(errno));
	plan(2 * NR_PER_ENGINE + 5);
	run("io_uring", dir);
	run("threads", dir);
	test_refusals(dir);
	rmdir(dir);
	return tap_done();
}
