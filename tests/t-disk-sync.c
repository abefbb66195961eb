/*
 * t-disk-sync.c - the images' synchronisation at a session's start
 * (core/disk-sync.h), with engine pairs on the mem backend:
 *  (a) an empty sparse backup image and a primary image with data: equal
 *      after the first ack, and the holes were not sent;
 *  (b) the guest writes its disk during the sync: a promoted backup's disk
 *      is still its memory's moment (the mem guest's diskcheck);
 *  (c) re-protection after a failover, the old primary's image as the new
 *      backup's: only the blocks that differ are sent;
 *  (d) a backup image that differs in a few blocks (1%): only those are
 *      sent, the bytes on the wire at most 1.1 x theirs plus the hashes;
 *  (e) as (b) with a small write log: the sync drains it into blocks it
 *      sends again, and the disk is still right;
 *  (f) the backup's checks of the sync frames, one by one;
 *  (g) a primary that does not synchronise: its first epoch is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/util.h"
#include "core/disk-sync.h"
#include "engine-pair.h"
#include "tap.h"

#define BLK	 (64u << 10)
#define D0_BYTES (4u << 20)  /* disk 0: the mem guest's (diskcheck) */
#define D1_BYTES (32u << 20) /* disk 1: data the guest never writes */

static char dir[] = "/tmp/t-disk-sync.XXXXXX";
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void path_of(char *p, size_t n, const char *name)
{
	snprintf(p, n, "%s/%s", dir, name);
}

static int make_image(const char *path, uint64_t bytes)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		return -1;
	close(fd);
	return 0;
}

/* Random data into block b of path (len bytes at its start: 0 = all). */
static int write_block(const char *path, uint64_t b, size_t len)
{
	static uint8_t buf[BLK];
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (!len)
		len = BLK;
	for (size_t i = 0; i < len / 8; i++) {
		uint64_t v = next_rand() | 1;
		memcpy(buf + i * 8, &v, 8);
	}
	int rc = fd >= 0 && pwrite(fd, buf, len, (off_t)(b * BLK)) == (ssize_t)len ? 0 : -1;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* A quarter of disk 1's blocks get random data: its allocated bytes. */
static uint64_t fill_quarter(const char *path)
{
	uint64_t n = 0;
	for (uint64_t b = 0; b < D1_BYTES / BLK; b += 4)
		if (!write_block(path, b + (next_rand() & 3), 0))
			n++;
	return n * BLK;
}

static int copy_file(const char *from, const char *to)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", from, to);
	return system(cmd) == 0 ? 0 : -1;
}

/* Blocks of BLK that differ between two files of the same size (-1 on error). */
static int64_t blocks_differ(const char *a, const char *b, uint64_t bytes)
{
	static uint8_t x[BLK], y[BLK];
	int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
	int64_t n = 0;
	for (uint64_t off = 0; fa >= 0 && fb >= 0 && off < bytes; off += BLK)
		if (pread(fa, x, BLK, (off_t)off) != BLK || pread(fb, y, BLK, (off_t)off) != BLK) {
			n = -1;
			break;
		} else if (memcmp(x, y, BLK)) {
			n++;
		}
	if (fa < 0 || fb < 0)
		n = -1;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return n;
}

static int parse_check(const char *out, uint64_t *blocks, uint64_t *errors)
{
	const char *p = out ? strstr(out, "diskcheck blocks=") : NULL;
	unsigned long long b, e;
	if (!p || sscanf(p, "diskcheck blocks=%llu errors=%llu", &b, &e) != 2)
		return 0;
	*blocks = b;
	*errors = e;
	return 1;
}

/* The promoted guest's diskcheck on the console of out (bounded wait). */
static int wait_check(pthread_mutex_t *lock, struct ep_chan *out, double s, uint64_t *blocks,
		      uint64_t *errors)
{
	for (int i = 0; i < s * 100; i++) {
		pthread_mutex_lock(lock);
		int got = parse_check(out->buf, blocks, errors);
		pthread_mutex_unlock(lock);
		if (got)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* the primary's sync block: BLK, or 0 for the engine's default (4 KiB) */
static uint32_t g_block_bytes = BLK;

static void configs(struct hr_engine_config *pc, struct hr_engine_config *bc,
		    struct hr_disk_spec *pd, struct hr_disk_spec *bd, const char *cmdline)
{
	*pc = (struct hr_engine_config){.name = "t-dsync",
					.ops = hr_backend_find("mem"),
					.epoch_us = 20000,
					.silence_ms = 500,
					/* most figures count BLK blocks; (d4) the default */
					.disk_sync_block_bytes = g_block_bytes};
	pc->vm = (struct hr_vm_config){.mem_bytes = 16 << 20,
				       .nr_vcpus = 1,
				       .kernel_path = "mem:",
				       .cmdline = cmdline,
				       .disks = pd,
				       .nr_disks = 2};
	*bc = (struct hr_engine_config){.name = "t-dsync", .silence_ms = 500, .auto_promote = 1};
	bc->vm = (struct hr_vm_config){.disks = bd, .nr_disks = 2};
}

/*
 * A pair whose guest never writes its disks (the images are still after
 * the sync): started, first ack, the sync's stats, both images compared,
 * stopped.  Returns 1 if the images were equal.
 */
static int quiet_pair(const char *what, char p[2][256], char b[2][256],
		      struct hr_disk_sync_stats *st)
{
	struct hr_disk_spec pd[2] = {{.path = p[0]}, {.path = p[1]}};
	struct hr_disk_spec bd[2] = {{.path = b[0]}, {.path = b[1]}};
	struct hr_engine_config pc, bc;
	struct ep_pair ep = {0};

	configs(&pc, &bc, pd, bd, "steps_per_s=200 writes=4");
	ok(ep_start(&ep, pc, bc, EP_SOCKETPAIR) == 0, "%s: pair started", what);
	ok(ep_wait_u64(&ep.p_acked, 1, 30), "%s: the first epoch acknowledged", what);
	hr_engine_disk_sync_stats(ep.p, st);
	int same =
	    blocks_differ(p[0], b[0], D0_BYTES) == 0 && blocks_differ(p[1], b[1], D1_BYTES) == 0;
	ep_finish(&ep);
	diag("%s: %llu blocks compared, %llu sent with data, %llu zeroed, %llu data bytes, "
	     "%llu bytes on the wire (%llu of hashes), %llu ms (%llu hashing here)",
	     what, (unsigned long long)st->nr_blocks, (unsigned long long)st->blocks_data,
	     (unsigned long long)st->blocks_zeroed, (unsigned long long)st->data_bytes,
	     (unsigned long long)st->wire_bytes, (unsigned long long)st->hash_bytes,
	     (unsigned long long)st->ms, (unsigned long long)st->local_hash_ms);
	return same;
}

/* (a) a first synchronisation: sparse and empty on the backup */
static void test_first(void)
{
	char p[2][256], b[2][256];
	struct hr_disk_sync_stats st;

	path_of(p[0], 256, "a-p0.img"), path_of(p[1], 256, "a-p1.img");
	path_of(b[0], 256, "a-b0.img"), path_of(b[1], 256, "a-b1.img");
	for (int i = 0; i < 2; i++)
		if (make_image(p[i], i ? D1_BYTES : D0_BYTES) ||
		    make_image(b[i], i ? D1_BYTES : D0_BYTES))
			bail("images in %s", dir);
	uint64_t alloc = fill_quarter(p[1]);
	/* three blocks of garbage on the backup's disk 0, a hole on the primary */
	write_block(b[0], 1, 0), write_block(b[0], 2, 512), write_block(b[0], 40, 0);
	ok(quiet_pair("(a)", p, b, &st), "(a) after the first ack both disks are byte-identical");
	ok(st.blocks_data == alloc / BLK && st.data_bytes == alloc,
	   "(a) the allocated blocks were sent (%llu of %llu KiB)",
	   (unsigned long long)st.data_bytes >> 10, (unsigned long long)alloc >> 10);
	ok(st.blocks_zeroed == 3, "(a) the backup's 3 garbage blocks were zeroed (%llu)",
	   (unsigned long long)st.blocks_zeroed);
	ok(st.wire_bytes <= alloc + st.hash_bytes + alloc / 100,
	   "(a) holes were not sent: %llu bytes on the wire for %llu allocated (+%llu of hashes)",
	   (unsigned long long)st.wire_bytes, (unsigned long long)alloc,
	   (unsigned long long)st.hash_bytes);
}

/* (d) the backup's images differ in 1% of their blocks */
static void test_few(void)
{
	char p[2][256], b[2][256];
	struct hr_disk_sync_stats st;

	path_of(p[0], 256, "d-p0.img"), path_of(p[1], 256, "d-p1.img");
	path_of(b[0], 256, "d-b0.img"), path_of(b[1], 256, "d-b1.img");
	if (make_image(p[0], D0_BYTES) || make_image(p[1], D1_BYTES))
		bail("images in %s", dir);
	fill_quarter(p[1]);
	/* disk 1 has data everywhere (no hole) to make the 1% count */
	for (uint64_t blk = 0; blk < D1_BYTES / BLK; blk++)
		if (blk % 4 != 1)
			write_block(p[1], blk, 0);
	if (copy_file(p[0], b[0]) || copy_file(p[1], b[1]))
		bail("copies");
	uint64_t nblk = D1_BYTES / BLK, changed = nblk / 100;
	for (uint64_t i = 0; i < changed; i++)
		write_block(b[1], i * 97 % nblk, 4096); /* the block's first 4 KiB differ */
	int64_t before = blocks_differ(p[1], b[1], D1_BYTES);
	ok(quiet_pair("(d)", p, b, &st), "(d) after the first ack both disks are byte-identical");
	ok(before == (int64_t)changed && st.blocks_data + st.blocks_zeroed == changed,
	   "(d) exactly the %lld differing blocks were sent (%llu)", (long long)before,
	   (unsigned long long)(st.blocks_data + st.blocks_zeroed));
	uint64_t changed_bytes = changed * BLK;
	ok(st.wire_bytes - st.hash_bytes <= changed_bytes * 11 / 10,
	   "(d) bytes on the wire %llu <= 1.1 x %llu changed + %llu of hashes",
	   (unsigned long long)st.wire_bytes, (unsigned long long)changed_bytes,
	   (unsigned long long)st.hash_bytes);
}

/* (d4) the engine's default block (the guest's 4 KiB): 1% of a disk's
 * 4 KiB blocks changed, scattered; what is sent is about what changed */
static void test_few_default(void)
{
	char p[2][256], b[2][256];
	struct hr_disk_sync_stats st;

	path_of(p[0], 256, "d4-p0.img"), path_of(p[1], 256, "d4-p1.img");
	path_of(b[0], 256, "d4-b0.img"), path_of(b[1], 256, "d4-b1.img");
	if (make_image(p[0], D0_BYTES) || make_image(p[1], D1_BYTES))
		bail("images in %s", dir);
	for (uint64_t blk = 0; blk < D1_BYTES / BLK; blk++)
		write_block(p[1], blk, 0); /* data everywhere */
	if (copy_file(p[0], b[0]) || copy_file(p[1], b[1]))
		bail("copies");
	uint64_t n4k = D1_BYTES / 4096, changed = n4k / 100;
	int fd = open(b[1], O_RDWR | O_CLOEXEC);
	for (uint64_t i = 0; fd >= 0 && i < changed; i++) {
		uint8_t x[4096];
		memset(x, (int)(i | 1), sizeof(x));
		if (pwrite(fd, x, sizeof(x), (off_t)((i * 97 % n4k) * 4096)) != (ssize_t)sizeof(x))
			bail("pwrite");
	}
	if (fd >= 0)
		close(fd);
	g_block_bytes = 0;
	ok(quiet_pair("(d4)", p, b, &st), "(d4) after the first ack both disks are byte-identical");
	g_block_bytes = BLK;
	uint64_t changed_bytes = changed * 4096;
	ok(st.blocks_data == changed && st.wire_bytes - st.hash_bytes <= changed_bytes * 11 / 10,
	   "(d4) default 4 KiB blocks: %llu of %llu scattered 4 KiB blocks changed, %llu sent, "
	   "%llu bytes on the wire <= 1.1 x %llu changed + %llu of hashes",
	   (unsigned long long)changed, (unsigned long long)n4k, (unsigned long long)st.blocks_data,
	   (unsigned long long)st.wire_bytes, (unsigned long long)changed_bytes,
	   (unsigned long long)st.hash_bytes);
}

/* (b) the guest writes disk 0 while the disks are synchronised; the
 * backup promotes: its disk 0 is its memory's moment, disk 1 the
 * primary's.  soft_bytes: a small write-log limit, so that the sync
 * drains the log into blocks sent again (e). */
static void test_racing(const char *tag, uint64_t soft_bytes)
{
	char p[2][256], b[2][256];
	struct hr_disk_spec pd[2] = {{.path = p[0]}, {.path = p[1]}};
	struct hr_disk_spec bd[2] = {{.path = b[0]}, {.path = b[1]}};
	struct hr_engine_config pc, bc;
	struct ep_pair ep = {0};
	struct hr_disk_sync_stats st;
	uint64_t blocks = 0, errors = 1;

	path_of(p[0], 256, tag[1] == 'b' ? "b-p0.img" : "e-p0.img"),
	    path_of(p[1], 256, tag[1] == 'b' ? "b-p1.img" : "e-p1.img");
	path_of(b[0], 256, tag[1] == 'b' ? "b-b0.img" : "e-b0.img"),
	    path_of(b[1], 256, tag[1] == 'b' ? "b-b1.img" : "e-b1.img");
	for (int i = 0; i < 2; i++)
		if (make_image(p[i], i ? D1_BYTES : D0_BYTES) ||
		    make_image(b[i], i ? D1_BYTES : D0_BYTES))
			bail("images in %s", dir);
	fill_quarter(p[1]);
	for (uint64_t blk = 0; blk < D0_BYTES / BLK; blk += 3)
		write_block(b[0], blk, 0); /* garbage the sync must clear */
	configs(&pc, &bc, pd, bd, "steps_per_s=500 writes=4 disk_writes=4");
	pc.disk_log_soft_bytes = soft_bytes;
	ok(ep_start(&ep, pc, bc, EP_SOCKETPAIR) == 0, "%s pair with a writing guest started", tag);
	ok(ep_wait_u64(&ep.p_acked, 20, 30), "%s 20 epochs acknowledged", tag);
	hr_engine_disk_sync_stats(ep.p, &st);
	diag("%s sync: %llu blocks sent, %llu zeroed, %llu sent again after %llu drains of the "
	     "write log, %llu ms (the guest wrote 8 MiB/s)",
	     tag, (unsigned long long)st.blocks_data, (unsigned long long)st.blocks_zeroed,
	     (unsigned long long)st.blocks_resent, (unsigned long long)st.nr_drains,
	     (unsigned long long)st.ms);
	if (soft_bytes)
		ok(st.nr_drains > 0 && st.blocks_resent > 0,
		   "%s the log was drained during the sync, its blocks sent again", tag);
	ep_kill_primary(&ep);
	ok(ep_wait_events(&ep.b_events, 1ull << HR_RE_PROMOTED, 10), "%s the backup promoted", tag);
	int seen = wait_check(&ep.lock, &ep.out[0], 10, &blocks, &errors);
	ok(seen && blocks > 0 && errors == 0,
	   "%s its disk 0 is its memory's moment: diskcheck blocks=%llu errors=%llu", tag,
	   (unsigned long long)blocks, (unsigned long long)errors);
	ok(blocks_differ(p[1], b[1], D1_BYTES) == 0, "%s its disk 1 is the primary's", tag);
	ep_finish(&ep);
}

/* ---- (c) failover, then re-protection with the old primary's images ---- */

struct node {
	struct hr_engine *e;
	pthread_t t;
	int fd, primary, rc;
	pthread_mutex_t lock;
	struct ep_chan out;
	volatile uint64_t events, acked;
};

static struct node nodes[3];
static char c_img[2][2][256]; /* [host][disk] */
static volatile int c_allow;

static void c_sink(void *o, unsigned chan, uint64_t off, const void *buf, size_t n)
{
	struct node *nd = o;
	(void)off;
	if (chan)
		return;
	pthread_mutex_lock(&nd->lock);
	if (nd->out.len + n + 1 > nd->out.cap) {
		nd->out.cap = (nd->out.len + n + 1) * 2;
		nd->out.buf = realloc(nd->out.buf, nd->out.cap);
	}
	memcpy(nd->out.buf + nd->out.len, buf, n);
	nd->out.len += n;
	nd->out.buf[nd->out.len] = '\0';
	pthread_mutex_unlock(&nd->lock);
}

static void c_state(void *o, enum hr_role_state from, enum hr_role_state to, enum hr_role_event ev)
{
	struct node *nd = o;
	(void)from, (void)to;
	__atomic_or_fetch(&nd->events, 1ull << ev, __ATOMIC_SEQ_CST);
}

static void c_epoch(void *o, const struct hr_epoch_stats *st)
{
	struct node *nd = o;
	(void)st;
	__atomic_add_fetch(&nd->acked, 1, __ATOMIC_SEQ_CST);
}

static void *c_run(void *a)
{
	struct node *nd = a;
	nd->rc = nd->primary ? hr_engine_run_primary(nd->e, nd->fd)
			     : hr_engine_run_backup(nd->e, nd->fd);
	return NULL;
}

static int c_reconnect(void *opaque, int speaking, int *fd_r);

/* Node i on fd; host h's images (0: the first primary's, 1: the backup's). */
static int c_start(unsigned i, int primary, int fd, unsigned h, struct hr_disk_spec *d)
{
	struct node *nd = &nodes[i];
	struct hr_engine_config c = {.name = "t-dsync-c",
				     .disk_sync_block_bytes = BLK,
				     .silence_ms = 500,
				     .auto_promote = 1,
				     .reconnect = c_reconnect,
				     .reconnect_ms = 100,
				     .output_sink = c_sink,
				     .output_opaque = nd,
				     .on_state = c_state,
				     .state_opaque = nd,
				     .on_epoch = c_epoch,
				     .epoch_opaque = nd};
	d[0] = (struct hr_disk_spec){.path = c_img[h][0]};
	d[1] = (struct hr_disk_spec){.path = c_img[h][1]};
	c.vm = (struct hr_vm_config){.disks = d, .nr_disks = 2};
	if (primary) {
		c.ops = hr_backend_find("mem");
		c.epoch_us = 20000;
		c.vm.mem_bytes = 16 << 20;
		c.vm.nr_vcpus = 1;
		c.vm.kernel_path = "mem:";
		c.vm.cmdline = "steps_per_s=50 writes=4 disk_writes=1";
	}
	pthread_mutex_init(&nd->lock, NULL);
	nd->fd = fd;
	nd->primary = primary;
	if (hr_engine_new(&nd->e, &c) < 0 || pthread_create(&nd->t, NULL, c_run, nd))
		return -1;
	return 0;
}

static struct hr_disk_spec c_disks[3][2];

/* The promoted backup asks for a new backup: node 2, on the old primary's
 * host (its images), once allowed. */
static int c_reconnect(void *opaque, int speaking, int *fd_r)
{
	int sv[2];
	(void)opaque, (void)speaking;
	if (!__atomic_exchange_n(&c_allow, 0, __ATOMIC_SEQ_CST))
		return -ECONNREFUSED;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	if (c_start(2, 0, sv[1], 0, c_disks[2]) < 0)
		return -ENOMEM;
	nodes[1].fd = sv[0]; /* node 1 speaks on this one now */
	*fd_r = sv[0];
	return 0;
}

static void c_kill(struct node *nd)
{
	hr_engine_abort(nd->e);
	pthread_join(nd->t, NULL);
	shutdown(nd->fd, SHUT_RDWR);
}

static void test_reprotect(void)
{
	int sv[2];
	struct hr_disk_sync_stats st;
	uint64_t blocks = 0, errors = 1;

	for (int h = 0; h < 2; h++)
		for (int d = 0; d < 2; d++) {
			char name[32];
			snprintf(name, sizeof(name), "c-h%d-d%d.img", h, d);
			path_of(c_img[h][d], 256, name);
			if (make_image(c_img[h][d], d ? D1_BYTES : D0_BYTES))
				bail("images");
		}
	fill_quarter(c_img[0][1]);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	if (c_start(1, 0, sv[1], 1, c_disks[1]) || c_start(0, 1, sv[0], 0, c_disks[0]))
		bail("engines");
	ok(ep_wait_u64(&nodes[0].acked, 20, 30), "(c) P protected by B, 20 epochs");
	c_kill(&nodes[0]);
	ok(ep_wait_events(&nodes[1].events, 1ull << HR_RE_PROMOTED, 10), "(c) P died: B promoted");
	usleep(200000); /* B's guest writes a while without a backup (not a synchronisation) */
	/* what P's images miss (B's writes alone, P's uncommitted last epoch) */
	int64_t differ0 = blocks_differ(c_img[0][0], c_img[1][0], D0_BYTES);
	__atomic_store_n(&c_allow, 1, __ATOMIC_SEQ_CST);
	uint64_t acked = nodes[1].acked;
	ok(ep_wait_u64(&nodes[1].acked, acked + 10, 30),
	   "(c) B re-protected by a backup on P's host (its old images), 10 epochs");
	hr_engine_disk_sync_stats(nodes[1].e, &st);
	uint64_t sent = st.blocks_data + st.blocks_zeroed;
	diag("(c) %lld blocks of disk 0 differed just before; the sync sent %llu of %llu blocks "
	     "(%llu bytes on the wire, %llu of hashes)",
	     (long long)differ0, (unsigned long long)sent, (unsigned long long)st.nr_blocks,
	     (unsigned long long)st.wire_bytes, (unsigned long long)st.hash_bytes);
	ok(differ0 > 0 && sent >= (uint64_t)differ0 && sent <= (uint64_t)differ0 + 16,
	   "(c) only the differing blocks were sent: %llu for %lld differing (+ the guest's "
	   "writes meanwhile)",
	   (unsigned long long)sent, (long long)differ0);
	ok(st.data_bytes <= sent * BLK && st.nr_blocks == (D0_BYTES + D1_BYTES) / BLK,
	   "(c) disk 1 (equal on both hosts) sent nothing");
	c_kill(&nodes[1]);
	ok(ep_wait_events(&nodes[2].events, 1ull << HR_RE_PROMOTED, 10),
	   "(c) B died: the backup on P's host promoted");
	int seen = wait_check(&nodes[2].lock, &nodes[2].out, 10, &blocks, &errors);
	ok(seen && blocks > 0 && errors == 0,
	   "(c) its disk is its memory's moment: diskcheck blocks=%llu errors=%llu",
	   (unsigned long long)blocks, (unsigned long long)errors);
	ok(blocks_differ(c_img[0][1], c_img[1][1], D1_BYTES) == 0, "(c) disk 1 equal everywhere");
	hr_engine_stop(nodes[2].e);
	pthread_join(nodes[2].t, NULL);
	for (int i = 0; i < 3; i++) {
		hr_engine_free(nodes[i].e);
		free(nodes[i].out.buf);
	}
	close(sv[0]);
	close(sv[1]);
}

/* ---- (f) the backup's checks, frame by frame ---- */

static struct hr_frame frame(uint16_t type, ProtobufCMessage *m, const void *data, uint32_t len)
{
	return (struct hr_frame){.type = type, .msg = m, .data = data, .data_len = len};
}

/* DISK_BLOCKS of one data block at off (its sum per the spec, wrong when bad). */
static int blocks_frame(struct hr_disk_sync_rx *rx, uint64_t off, const uint8_t *data, int bad)
{
	Hr__DiskBlock b = HR__DISK_BLOCK__INIT, *bp = &b;
	Hr__DiskBlocks m = HR__DISK_BLOCKS__INIT;
	uint64_t le[4] = {htole64(0), htole64(off), htole64(4096), 0};
	XXH3_state_t *x = XXH3_createState();

	b.offset = off;
	b.bytes = 4096;
	m.n_blocks = 1;
	m.blocks = &bp;
	XXH3_64bits_reset(x);
	XXH3_64bits_update(x, le, sizeof(le));
	XXH3_64bits_update(x, data, 4096);
	m.xxh3 = XXH3_64bits_digest(x) ^ (bad ? 1 : 0);
	XXH3_freeState(x);
	struct hr_frame f = frame(HR_FT_DISK_BLOCKS, &m.base, data, 4096);
	return hr_disk_sync_rx_frame(rx, &f);
}

static void test_rx_checks(void)
{
	char path[256];
	struct hr_disk_spec spec = {.path = path};
	struct hr_disk_target dt;
	int sv[2];
	static uint8_t data[4096];

	path_of(path, sizeof(path), "f-b0.img");
	if (make_image(path, D0_BYTES) || hr_disk_target_open(&dt, "t", &spec, 1, HR_DISK_ACK) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		bail("backup image");
	struct hr_disk_sync_rx rx = {.vm = "t", .dt = &dt, .fd = sv[0]};
	memset(data, 0xab, sizeof(data));

	ok(blocks_frame(&rx, 0, data, 0) == -HR_EPROTO, "(f) DISK_BLOCKS before BEGIN: refused");
	Hr__DiskSync ds = HR__DISK_SYNC__INIT;
	ds.phase = HR__DISK_SYNC__PHASE__SYNC_BEGIN;
	ds.has_block_bytes = 1;
	ds.block_bytes = 1000;
	struct hr_frame f = frame(HR_FT_DISK_SYNC, &ds.base, NULL, 0);
	ok(hr_disk_sync_rx_frame(&rx, &f) == -HR_EPROTO, "(f) a block of 1000 bytes: refused");
	ds.block_bytes = BLK;
	ok(hr_disk_sync_rx_frame(&rx, &f) == 0, "(f) BEGIN with 64 KiB blocks");
	struct hr_frame h;
	int rc = hr_stream_recv(sv[1], "t", &h);
	const Hr__DiskHashes *dh = rc ? NULL : (const Hr__DiskHashes *)h.msg;
	ok(dh && h.type == HR_FT_DISK_HASHES && dh->count == D0_BYTES / BLK && dh->last &&
	       h.data_len == dh->count * 8,
	   "(f) the backup answered with every block's hash in one frame");
	if (!rc)
		hr_frame_release(&h);
	ok(hr_disk_sync_rx_frame(&rx, &f) == -HR_EPROTO, "(f) a second BEGIN: refused");
	ok(blocks_frame(&rx, 8192, data, 1) == -HR_ECHECKSUM,
	   "(f) a wrong DISK_BLOCKS sum: refused");
	ok(blocks_frame(&rx, D0_BYTES - 2048, data, 0) == -HR_EPROTO,
	   "(f) a block past the image's end: refused");
	uint8_t back[4096];
	ok(hr_image_pread(&dt.img[0], back, 4096, 8192) == 0 && back[0] == 0,
	   "(f) ... and nothing of them written");
	ok(blocks_frame(&rx, 8192, data, 0) == 0 &&
	       hr_image_pread(&dt.img[0], back, 4096, 8192) == 0 && !memcmp(back, data, 4096),
	   "(f) a right one is written at once");
	ds = (Hr__DiskSync)HR__DISK_SYNC__INIT;
	ds.phase = HR__DISK_SYNC__PHASE__SYNC_END;
	ds.has_nr_blocks = ds.has_bytes = 1;
	ds.nr_blocks = 2;
	ds.bytes = 4096;
	f = frame(HR_FT_DISK_SYNC, &ds.base, NULL, 0);
	ok(hr_disk_sync_rx_frame(&rx, &f) == -HR_EPROTO && rx.state != HR_DSYNC_DONE,
	   "(f) END with other totals: refused");
	ds.nr_blocks = 1;
	ok(hr_disk_sync_rx_frame(&rx, &f) == 0 && rx.state == HR_DSYNC_DONE,
	   "(f) END with the totals: done");
	hr_disk_target_close(&dt);
	close(sv[0]);
	close(sv[1]);
}

/* (g) a primary that does not synchronise (an earlier version-3 build):
 * the backup refuses its first epoch and never runs anything. */
static void test_unsynced_primary(void)
{
	char bp[256];
	struct hr_disk_spec bd = {.path = bp};
	struct ep_pair ep = {0};
	struct hr_frame f;

	path_of(bp, sizeof(bp), "g-b0.img");
	if (make_image(bp, D0_BYTES))
		bail("image");
	int accepted = ep_hand_backup(&ep, "t-g", &bd, D0_BYTES);
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	hr_stream_send(ep.fds[0], HR_FT_EPOCH_BEGIN, HR_FRAME_MANDATORY, &eb.base, NULL, 0);
	int code = 0, rc = 0;
	/* bounded: a backup that never answers fails the test, not hangs it */
	uint64_t deadline = hr_now_ns() + 5000000000ull;
	struct pollfd pf = {ep.fds[0], POLLIN, 0};
	while (hr_now_ns() < deadline && poll(&pf, 1, 100) >= 0 &&
	       (!(pf.revents & POLLIN) || !(rc = hr_stream_recv(ep.fds[0], "t", &f)))) {
		if (!(pf.revents & POLLIN))
			continue;
		int t = f.type;
		if (t == HR_FT_ERROR)
			code = ((Hr__Error *)f.msg)->code;
		hr_frame_release(&f);
		if (t == HR_FT_ERROR)
			break;
	}
	ok(accepted && code == -HR_EPROTO,
	   "(g) an epoch before the disks were synchronised: ERROR %d (%s)", code,
	   hr_strerror(code));
	shutdown(ep.fds[0], SHUT_RDWR);
	hr_engine_stop(ep.b);
	pthread_join(ep.tb, NULL);
	ok(!(ep.b_events & (1ull << HR_RE_PROMOTED)), "(g) the backup never ran its copy");
	hr_engine_free(ep.b);
	close(ep.fds[0]);
	close(ep.fds[1]);
	free(ep.out[0].buf);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("1..0 # SKIP no temporary directory\n");
		return 0;
	}
	plan(47);
	test_first();
	test_few();
	test_few_default();
	test_racing("(b)", 0);
	test_racing("(e)", 128 << 10);
	test_reprotect();
	test_rx_checks();
	test_unsynced_primary();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
	return tap_done();
}
