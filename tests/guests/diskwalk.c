/*
 * diskwalk.c - disk-writing test guest with self-verification: the disk
 * twin of memwalk (README.md), booted the same way (multiboot, ring-3
 * workload).
 *
 * Command line (key=value, all optional, unknown tokens ignored):
 *   rate=N          writes per second, TSC-paced (0: as fast as possible); 200
 *   flush_every=N   a FLUSH after every N-th write (0: never); 8
 *   interval_ms=N   a progress line every N ms; 100
 *   check_every=N   a whole-disk check every N progress lines (0: never); 10
 *   seconds=N       run N s, check, print done, exit 0/1 (0: forever); 0
 *   blocks=N        use only the first N 4 KiB blocks (0: the whole disk); 0
 * Console lines (all "diskwalk: " prefixed):
 *   boot / tsc_khz / virtio-mmio ... / virtio-blk ... / disk_blocks=... / ring3
 *   dseq=S writes=W flushes=F checks=C errors=E io_errors=I   (S = 1, 2, ... exactly)
 *   diskcheck blocks=B errors=E lost=L later=A bad=X disk_blocks=N writes=W
 *       why=<boot|periodic|clock-jump|end>     (one line; B = blocks
 *       written at least once, E = L + A + X of this check)
 *   ERROR block=b want=s got=s' (lost|later|bad)     (first 20 only)
 *   done dseq=... / FAIL <why> (exit 1) / exception ... (exit 3)
 * Exit values on port 0xf4 are memwalk's (0 ok, 1 errors or FAIL, 3 exception).
 *
 * It drives its own virtio-blk device (virtio-mmio version 2, one split
 * virtqueue, polled, one request at a time), found like netsvc finds its
 * NIC: the first virtio_mmio.device=<size>@<base>:<irq> token of the
 * command line whose DeviceID is 2 (block).  The KVM backend appends those
 * tokens on the multiboot path too (backend.h), so diskwalk is a multiboot
 * guest like memwalk.
 *
 * Ring 3 writes 4 KiB blocks at a set rate, each to a pseudo-random block
 * of the disk, with a FLUSH every flush_every writes.  Write number s (1,
 * 2, ...) to block b fills word w of the block with
 *     stamp(s, b) ^ (w * WORD_MUL),   stamp(s, b) = (s << 32) | b
 * and, once the device completed it, records s in a table in guest memory
 * (TABLE_BASE: one uint64_t per block, 0 = never written: reads zero).
 * All workload state lives in guest memory, so a snapshot of the VM and
 * of its disk from the same moment agree, and the guest simply goes on.
 *
 * The guest cannot tell that it was restored (the KVM backend carries its
 * TSC on), so, as memwalk re-verifies its working set every 16 progress
 * lines, diskwalk reads its whole disk back every check_every progress
 * lines (and at boot, on a clock jump, and at the end) and checks every
 * block against the table: "diskcheck blocks=B errors=E", E split into
 * lost (an older write, or zero), later (a newer write than memory
 * remembers: a write from after the moment the memory is from) and bad
 * (anything else).
 */
#include "rt.h"

#define TABLE_BASE	0x400000ull /* 4 MiB: last write number of every block */
#define TABLE_END	0x1000000ull
#define MAX_BLOCKS	((TABLE_END - TABLE_BASE) / sizeof(uint64_t))
#define BLOCK_BYTES	4096u
#define BLOCK_WORDS	(BLOCK_BYTES / 8)
#define SECTORS_PER	(BLOCK_BYTES / 512)
#define CHUNK_BLOCKS	16u /* blocks per read request of a check */
#define WORD_MUL	0x9E3779B97F4A7C15ull
#define MAX_ERROR_LINES 20
#define REQ_TIMEOUT_S	10
#define NOINIT		__attribute__((section(".stack")))

#define VIRTIO_MMIO_MAGIC    0x74726976
#define S_ACKNOWLEDGE	     1
#define S_DRIVER	     2
#define S_DRIVER_OK	     4
#define S_FEATURES_OK	     8
#define S_FAILED	     128
#define F_BLK_RO	     (1ull << 5)
#define F_BLK_FLUSH	     (1ull << 9)
#define F_VERSION_1	     (1ull << 32)
#define T_IN		     0u
#define T_OUT		     1u
#define T_FLUSH		     4u
#define DESC_F_NEXT	     1
#define DESC_F_WRITE	     2
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY     1
#define QNUM		     16

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* The queue and the request buffers, outside the loaded image. */
static struct {
	struct vring_desc desc[QNUM];
	union {
		struct {
			uint16_t flags, idx, ring[QNUM];
		} avail;
		uint8_t avail_page[4096 - QNUM * sizeof(struct vring_desc)];
	};
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QNUM];
	} used __attribute__((aligned(4096)));
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr __attribute__((aligned(64)));
	volatile uint8_t status;
	uint64_t wbuf[BLOCK_WORDS] __attribute__((aligned(4096)));
	uint64_t rbuf[CHUNK_BLOCKS * BLOCK_WORDS] __attribute__((aligned(4096)));
} q NOINIT __attribute__((aligned(4096)));

static char stack3[65536] NOINIT __attribute__((aligned(16)));
extern char __image_end[];

/* Configuration (ring 0 fills it, ring 3 reads it). */
static uint64_t rate = 200, flush_every = 8, interval_ms = 100, check_every = 10, seconds;
static uint64_t nblocks, tsc_khz, mmio_base, features;

/* Workload state: all of it in guest memory (see the top comment). */
static uint64_t dseq = 1, writes, flushes, checks, errors, io_errors, rng = 0x9E3779B97F4A7C15ull;
static uint16_t avail_idx;
static unsigned int error_lines;

static inline uint32_t rd32(unsigned int off)
{
	return mmio_rd32((uintptr_t)mmio_base, off);
}
static inline void wr32(unsigned int off, uint32_t v)
{
	mmio_wr32((uintptr_t)mmio_base, off, v);
}
static inline uint64_t *table(void)
{
	return (uint64_t *)(uintptr_t)TABLE_BASE;
}
static inline uint64_t stamp(uint64_t s, uint64_t b)
{
	return (s << 32) | (b & 0xffffffffu);
}

/* ---- requests (ring 3, one at a time) ---- */

/* One request: type, first sector, data buffer (NULL for a flush).
 * Returns the status byte (0 = VIRTIO_BLK_S_OK). */
static unsigned int request(uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	unsigned int n = 0;
	q.hdr.type = type;
	q.hdr.reserved = 0;
	q.hdr.sector = sector;
	q.status = 0xff;
	q.desc[n++] =
	    (struct vring_desc){(uint64_t)(uintptr_t)&q.hdr, sizeof(q.hdr), DESC_F_NEXT, 1};
	if (buf)
		q.desc[n++] =
		    (struct vring_desc){(uint64_t)(uintptr_t)buf, len,
					DESC_F_NEXT | (type == T_IN ? DESC_F_WRITE : 0), 2};
	q.desc[n - 1].next = (uint16_t)n;
	q.desc[n++] = (struct vring_desc){(uint64_t)(uintptr_t)&q.status, 1, DESC_F_WRITE, 0};
	q.avail.ring[avail_idx % QNUM] = 0;
	barrier();
	*(volatile uint16_t *)&q.avail.idx = ++avail_idx;
	mb();
	if (!(*(volatile uint16_t *)&q.used.flags & USED_F_NO_NOTIFY))
		wr32(R_QUEUE_NOTIFY, 0);
	uint64_t t0 = rdtsc(), limit = REQ_TIMEOUT_S * tsc_khz * 1000;
	while (*(volatile uint16_t *)&q.used.idx != avail_idx) {
		if (rdtsc() - t0 > limit) {
			rt_printf(
			    "diskwalk: FAIL request type=%u sector=%lu: no completion in %u s\n",
			    type, sector, REQ_TIMEOUT_S);
			rt_exit(1);
		}
		cpu_relax();
	}
	barrier();
	return q.status;
}

/* xorshift64 with the TSC's low bits mixed in: a guest restored to an
 * earlier moment does not redo the very writes it did after it (on the
 * disk, a write of a torn epoch that was applied then shows as "later"
 * instead of being rewritten with the same stamp before the next check). */
static uint64_t next_block(void)
{
	rng ^= rdtsc() & 0xffff;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % nblocks;
}

static void write_one(void)
{
	uint64_t b = next_block(), s = writes + 1, st = stamp(s, b), k = 0;
	for (unsigned int i = 0; i < BLOCK_WORDS; i++, k += WORD_MUL)
		q.wbuf[i] = st ^ k;
	unsigned int status = request(T_OUT, b * SECTORS_PER, q.wbuf, BLOCK_BYTES);
	writes = s;
	if (status) {
		io_errors++;
		rt_printf("diskwalk: ERROR write block=%lu status=%u\n", b, status);
		return;
	}
	table()[b] = s;
	if (flush_every && (features & F_BLK_FLUSH) && s % flush_every == 0) {
		status = request(T_FLUSH, 0, NULL, 0);
		flushes++;
		if (status) {
			io_errors++;
			rt_printf("diskwalk: ERROR flush status=%u\n", status);
		}
	}
}

/* What block b holds, against want (its write number): 0 ok, else 1 lost,
 * 2 later, 3 bad; *got_r the write number found (or ~0 if none). */
static int judge(const uint64_t *w, uint64_t b, uint64_t want, uint64_t *got_r)
{
	uint64_t x = 0, k = 0, s = w[0] >> 32;
	*got_r = ~0ull;
	for (unsigned int i = 0; i < BLOCK_WORDS; i++)
		x |= w[i];
	if (!x) {
		*got_r = 0;
		return want ? 1 : 0;
	}
	x = 0;
	for (unsigned int i = 0; i < BLOCK_WORDS; i++, k += WORD_MUL)
		x |= w[i] ^ stamp(s, b) ^ k;
	if (x || !s)
		return 3;
	*got_r = s;
	return s == want ? 0 : s < want ? 1 : 2;
}

static void check(const char *why)
{
	uint64_t written = 0, lost = 0, later = 0, bad = 0;
	for (uint64_t c = 0; c < nblocks; c += CHUNK_BLOCKS) {
		uint64_t n = nblocks - c < CHUNK_BLOCKS ? nblocks - c : CHUNK_BLOCKS;
		unsigned int status =
		    request(T_IN, c * SECTORS_PER, q.rbuf, (uint32_t)(n * BLOCK_BYTES));
		for (uint64_t i = 0; i < n; i++) {
			uint64_t b = c + i, want = table()[b], got;
			int r = status ? 3 : judge(q.rbuf + i * BLOCK_WORDS, b, want, &got);
			written += want != 0;
			if (!r)
				continue;
			lost += r == 1;
			later += r == 2;
			bad += r == 3;
			if (error_lines < MAX_ERROR_LINES) {
				error_lines++;
				rt_printf("diskwalk: ERROR block=%lu want=%lu got=%ld (%s)%s\n", b,
					  want, (long)got,
					  r == 1   ? "lost"
					  : r == 2 ? "later"
						   : "bad",
					  status ? " read failed" : "");
			}
		}
	}
	uint64_t e = lost + later + bad;
	errors += e;
	checks++;
	rt_printf("diskwalk: diskcheck blocks=%lu errors=%lu lost=%lu later=%lu bad=%lu "
		  "disk_blocks=%lu writes=%lu why=%s\n",
		  written, e, lost, later, bad, nblocks, writes, why);
}

static void walk(void)
{
	uint64_t hz = tsc_khz * 1000, interval = interval_ms * tsc_khz;
	uint64_t per_write_fp = rate ? (hz << 16) / rate : 0, acc_fp = 0;
	uint64_t vt = 0, target = 0, next_print = interval, end = seconds * hz;
	uint64_t last, lines = 0;

	memset(table(), 0, nblocks * sizeof(uint64_t)); /* here: ring 0 is slow under PVM */
	check("boot");
	last = rdtsc();
	for (;;) {
		uint64_t now = rdtsc(), d = now - last;
		last = now;
		/* vt ignores jumps as memwalk's clock does; a jump (a restore
		 * onto a TSC that was not carried on) asks for a check now */
		if ((int64_t)d > 0 && d < 2 * hz)
			vt += d;
		else if (d)
			check("clock-jump");

		if (vt >= next_print) {
			rt_printf("diskwalk: dseq=%lu writes=%lu flushes=%lu checks=%lu errors=%lu "
				  "io_errors=%lu\n",
				  dseq, writes, flushes, checks, errors, io_errors);
			dseq++;
			next_print += interval;
			if (next_print <= vt)
				next_print = vt + interval;
			if (check_every && ++lines % check_every == 0)
				check("periodic");
			continue;
		}
		if (end && vt >= end)
			break;
		if (!rate) {
			write_one();
			continue;
		}
		if (vt >= target) {
			write_one();
			acc_fp += per_write_fp;
			target += acc_fp >> 16;
			acc_fp &= 0xffff;
			if (vt > target + hz / 10) /* never burst more than 100 ms */
				target = vt;
		} else {
			cpu_relax();
		}
	}
	check("end");
	rt_printf("diskwalk: done dseq=%lu writes=%lu flushes=%lu checks=%lu errors=%lu "
		  "io_errors=%lu\n",
		  dseq - 1, writes, flushes, checks, errors, io_errors);
	rt_exit(errors || io_errors ? 1 : 0);
}

static void ring3_main(void)
{
	walk();
	rt_exit(2);
}

/* ---- ring 0: find the device, handshake ---- */

/* "<size>[KMG]@<base>:<irq>" -> base (hex, 0x optional); 0 or -1. */
static int parse_device(const char *s, uint64_t *base_r)
{
	char buf[40] = "0x";
	unsigned int i = 0, n = 2;
	while (s[i] && s[i] != '@')
		i++;
	if (s[i++] != '@')
		return -1;
	if (s[i] == '0' && (s[i + 1] | 0x20) == 'x')
		i += 2;
	while (s[i] && s[i] != ':' && n < sizeof(buf) - 1)
		buf[n++] = s[i++];
	buf[n] = 0;
	if (s[i] != ':' || rt_parse_u64(buf, base_r, 0) || *base_r >= (4ull << 30) - 0x1000)
		return -1;
	return 0;
}

static int find_device(void)
{
	static const char key[] = "virtio_mmio.device=";
	const char *s = rt_boot.cmdline;
	while (*s) {
		while (*s == ' ')
			s++;
		const char *t = s;
		while (*s && *s != ' ')
			s++;
		unsigned int k = 0, n = (unsigned int)(s - t);
		char tok[80];
		while (k < sizeof(key) - 1 && k < n && t[k] == key[k])
			k++;
		if (k != sizeof(key) - 1 || n - k >= sizeof(tok))
			continue;
		memcpy(tok, t + k, n - k);
		tok[n - k] = 0;
		uint64_t base;
		if (parse_device(tok, &base)) {
			rt_printf("diskwalk: bad virtio_mmio.device=%s, ignored\n", tok);
			continue;
		}
		mmio_base = base;
		uint32_t magic = rd32(R_MAGIC), id = rd32(R_DEVICE_ID), ver = rd32(R_VERSION);
		rt_printf("diskwalk: virtio-mmio base=0x%lx magic=0x%x version=%u device=%u\n",
			  base, magic, ver, id);
		if (magic == VIRTIO_MMIO_MAGIC && id == 2) {
			if (ver != 2) {
				rt_printf("diskwalk: FAIL virtio-mmio version %u, want 2\n", ver);
				return -1;
			}
			return 0;
		}
	}
	rt_printf("diskwalk: FAIL no virtio-blk device\n");
	return -1;
}

static int blk_init(void)
{
	if (find_device())
		return -1;
	wr32(R_STATUS, 0);
	while (rd32(R_STATUS))
		cpu_relax();
	wr32(R_STATUS, S_ACKNOWLEDGE);
	wr32(R_STATUS, S_ACKNOWLEDGE | S_DRIVER);
	wr32(R_DEV_FEATURES_SEL, 0);
	uint64_t offered = rd32(R_DEV_FEATURES);
	wr32(R_DEV_FEATURES_SEL, 1);
	offered |= (uint64_t)rd32(R_DEV_FEATURES) << 32;
	if (!(offered & F_VERSION_1) || (offered & F_BLK_RO)) {
		rt_printf("diskwalk: FAIL device features 0x%lx (want VERSION_1, not RO)\n",
			  offered);
		wr32(R_STATUS, S_FAILED);
		return -1;
	}
	features = offered & (F_VERSION_1 | F_BLK_FLUSH);
	wr32(R_DRV_FEATURES_SEL, 0);
	wr32(R_DRV_FEATURES, (uint32_t)features);
	wr32(R_DRV_FEATURES_SEL, 1);
	wr32(R_DRV_FEATURES, (uint32_t)(features >> 32));
	wr32(R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(R_STATUS) & S_FEATURES_OK)) {
		rt_printf("diskwalk: FAIL device refused features 0x%lx\n", features);
		wr32(R_STATUS, S_FAILED);
		return -1;
	}
	uint32_t gen;
	uint64_t sectors;
	do {
		gen = rd32(R_CONFIG_GEN);
		sectors = rd32(R_CONFIG) | (uint64_t)rd32(R_CONFIG + 4) << 32;
	} while (rd32(R_CONFIG_GEN) != gen);
	wr32(R_QUEUE_SEL, 0);
	if (rd32(R_QUEUE_NUM_MAX) < QNUM || rd32(R_QUEUE_READY)) {
		rt_printf("diskwalk: FAIL queue 0: QueueNumMax=%u ready=%u\n",
			  rd32(R_QUEUE_NUM_MAX), rd32(R_QUEUE_READY));
		return -1;
	}
	memset(&q, 0, sizeof(q));
	q.avail.flags = AVAIL_F_NO_INTERRUPT;
	wr32(R_QUEUE_NUM, QNUM);
	uint64_t d = (uint64_t)(uintptr_t)q.desc, a = (uint64_t)(uintptr_t)&q.avail,
		 u = (uint64_t)(uintptr_t)&q.used;
	wr32(R_QUEUE_DESC, (uint32_t)d);
	wr32(R_QUEUE_DESC + 4, (uint32_t)(d >> 32));
	wr32(R_QUEUE_DRIVER, (uint32_t)a);
	wr32(R_QUEUE_DRIVER + 4, (uint32_t)(a >> 32));
	wr32(R_QUEUE_DEVICE, (uint32_t)u);
	wr32(R_QUEUE_DEVICE + 4, (uint32_t)(u >> 32));
	wr32(R_QUEUE_READY, 1);
	wr32(R_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	nblocks = sectors / SECTORS_PER;
	rt_printf("diskwalk: virtio-blk offered=0x%lx negotiated=0x%lx sectors=%lu\n", offered,
		  features, sectors);
	return 0;
}

static void opt_u64(const char *key, uint64_t *v)
{
	char buf[64];
	if (rt_cmdline_get(key, buf, sizeof(buf)) && rt_parse_u64(buf, v, 0))
		rt_printf("diskwalk: bad %s=%s, using the default\n", key, buf);
}

void kmain(void);
void kmain(void)
{
	uint64_t max_blocks = 0;

	rt_init("diskwalk");
	rt_printf("diskwalk: boot cmdline=\"%s\"\n", rt_boot.cmdline);
	if ((uint64_t)(uintptr_t)__image_end > TABLE_BASE) {
		rt_printf("diskwalk: FAIL image overlaps the block table\n");
		rt_exit(1);
	}
	tsc_khz = rt_boot.tsc_khz;
	if (!tsc_khz) {
		tsc_khz = 2000000;
		rt_printf("diskwalk: WARNING no TSC frequency, assuming 2 GHz\n");
	}
	rt_printf("diskwalk: tsc_khz=%lu\n", tsc_khz);
	opt_u64("rate", &rate);
	opt_u64("flush_every", &flush_every);
	opt_u64("interval_ms", &interval_ms);
	opt_u64("check_every", &check_every);
	opt_u64("seconds", &seconds);
	opt_u64("blocks", &max_blocks);
	if (!interval_ms)
		interval_ms = 1;
	if (blk_init())
		rt_exit(1);
	if (max_blocks && nblocks > max_blocks)
		nblocks = max_blocks;
	if (nblocks > MAX_BLOCKS)
		nblocks = MAX_BLOCKS;
	if (!nblocks) {
		rt_printf("diskwalk: FAIL the disk is smaller than one block\n");
		rt_exit(1);
	}
	rt_printf("diskwalk: disk_blocks=%lu rate=%lu flush_every=%lu interval_ms=%lu "
		  "check_every=%lu seconds=%lu\n",
		  nblocks, rate, flush_every, interval_ms, check_every, seconds);
	rt_printf("diskwalk: ring3\n");
	rt_enter_ring3(ring3_main, stack3 + sizeof(stack3));
}
