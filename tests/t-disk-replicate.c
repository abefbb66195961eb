/*
 * t-disk-replicate.c - disk writes travel with their epoch (core/disklog.h,
 * core/disk-staging.h): the backup applies an epoch's writes only when it
 * commits it, a torn or mismatching epoch applies none, a promoted guest
 * finds its disk exactly as its memory remembers it (the mem guest's
 * diskcheck), and a backup that cannot apply stops replicating without
 * ever running its copy while the primary goes on unprotected.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "core/disk-staging.h"
#include "core/disklog.h"
#include "core/envelope.h"
#include "core/handshake.h"
#include "core/staging.h"
#include "engine-pair.h"
#include "tap.h"

#define IMG_BYTES (4u << 20)

static char dir[] = "/tmp/t-disk-replicate.XXXXXX";

static int make_image(const char *name, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, IMG_BYTES) < 0)
		return -1;
	close(fd);
	return 0;
}

static int block_is(struct hr_image *img, uint64_t off, int byte)
{
	uint8_t buf[4096];
	if (hr_image_pread(img, buf, sizeof(buf), off) < 0)
		return 0;
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != (uint8_t)byte)
			return 0;
	return 1;
}

/* One staged epoch of disk writes: begin, DISK_WRITES, end (its sum
 * right unless bad_count).  Returns hr_staging_end's answer. */
static int stage(struct hr_staging *st, uint64_t epoch, const uint64_t *offs, unsigned nr, int byte,
		 int bad_count, int torn)
{
	static uint8_t data[4][4096];
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	Hr__DiskWrite w[4], *wp[4];
	Hr__DiskWrites dw = HR__DISK_WRITES__INIT;
	Hr__EpochEnd ee = HR__EPOCH_END__INIT;
	struct hr_epoch_sum sum;
	int rc;

	eb.epoch = epoch;
	if ((rc = hr_staging_begin(st, &eb)) < 0)
		return rc;
	hr_epoch_sum_init(&sum, epoch);
	for (unsigned i = 0; i < nr; i++) {
		memset(data[i], byte, sizeof(data[i]));
		hr__disk_write__init(&w[i]);
		w[i].offset = offs[i];
		w[i].bytes = 4096;
		wp[i] = &w[i];
		hr_epoch_sum_disk(&sum, 0, offs[i], 4096, 0, data[i]);
	}
	dw.epoch = epoch;
	dw.n_writes = nr;
	dw.writes = wp;
	uint8_t *flat = malloc(nr * 4096 + 1);
	for (unsigned i = 0; i < nr; i++)
		memcpy(flat + i * 4096, data[i], 4096);
	rc = hr_staging_disk(st, &dw, flat, nr * 4096);
	free(flat);
	if (rc < 0 || torn) {
		hr_epoch_sum_fini(&sum);
		if (torn)
			hr_staging_discard(st);
		return rc;
	}
	ee.epoch = epoch;
	ee.bytes = nr * 4096;
	ee.has_nr_disk_writes = ee.has_disk_bytes = 1;
	ee.nr_disk_writes = nr + (bad_count ? 1 : 0);
	ee.disk_bytes = nr * 4096;
	ee.xxh3 = hr_epoch_sum_value(&sum);
	hr_epoch_sum_fini(&sum);
	return hr_staging_end(st, &ee);
}

static void test_staging(void)
{
	char path[256];
	struct hr_disk_target dt;
	struct hr_disk_spec spec = {.path = path};
	static uint8_t ram[16 * 4096];
	struct hr_mem_region reg = {0, sizeof(ram), ram};
	struct hr_staging *st;

	make_image("staged.img", path, sizeof(path));
	ok(hr_disk_target_open(&dt, "t", &spec, 1, HR_DISK_FLUSH) == 0, "backup image opened");
	ok(hr_staging_new(&st, "t", &reg, 1, 0) == 0, "staging");
	hr_staging_set_disks(st, &dt);

	uint64_t o0[] = {3 * 4096, 7 * 4096};
	ok(stage(st, 0, o0, 2, 'A', 0, 0) == 1, "epoch 0 with 2 disk writes verified");
	ok(block_is(&dt.img[0], 3 * 4096, 0) && block_is(&dt.img[0], 7 * 4096, 0),
	   "(a) verified but not committed: the image is untouched");
	ok(hr_staging_commit(st, NULL, NULL, NULL) == 0, "epoch 0 committed");
	ok(block_is(&dt.img[0], 3 * 4096, 'A') && block_is(&dt.img[0], 7 * 4096, 'A'),
	   "(a) committed: both writes applied");

	uint64_t o1[] = {5 * 4096};
	stage(st, 1, o1, 1, 'B', 0, 1);
	ok(block_is(&dt.img[0], 5 * 4096, 0), "(b) torn epoch 1: none of its writes applied");
	uint64_t o1b[] = {6 * 4096, 3 * 4096};
	ok(stage(st, 1, o1b, 2, 'C', 1, 0) == -HR_EPROTO,
	   "(b) EPOCH_END with another write count: -HR_EPROTO");
	ok(block_is(&dt.img[0], 6 * 4096, 0) && block_is(&dt.img[0], 3 * 4096, 'A'),
	   "(b) ... and nothing of it applied");
	uint64_t bad[] = {IMG_BYTES};
	ok(stage(st, 1, bad, 1, 'D', 0, 0) == -HR_EPROTO, "a write past the image: -HR_EPROTO");
	ok(stage(st, 1, o1b, 2, 'C', 0, 0) == 1 && hr_staging_commit(st, NULL, NULL, NULL) == 0,
	   "epoch 1 again, whole: committed");
	ok(block_is(&dt.img[0], 6 * 4096, 'C') && block_is(&dt.img[0], 3 * 4096, 'C'),
	   "in order: the later write of a block wins");

	dt.fail_after = dt.nr_applied + 2; /* the second write of the next epoch fails */
	uint64_t o2[] = {9 * 4096, 10 * 4096};
	ok(stage(st, 2, o2, 2, 'E', 0, 0) == 1, "epoch 2 verified");
	ok(hr_staging_commit(st, NULL, NULL, NULL) == -EIO && dt.invalid,
	   "(d) a failing apply: commit fails, the disk copy is marked invalid");
	ok(hr_staging_next_epoch(st) == 2, "(d) epoch 2 is not committed");
	ok(strstr(dt.why, "disk 0") && strstr(dt.why, "invalid"), "why names it: %s", dt.why);
	hr_staging_free(st);
	hr_disk_target_close(&dt);
}

static int soft_calls;
static void soft_cb(void *o)
{
	(void)o;
	soft_calls++;
}

/* The primary's log: soft limit asks for a checkpoint, hard limit refuses,
 * a cut empties it; without a backup nothing is kept. */
static void test_disklog(void)
{
	struct hr_disklog l;
	struct hr_disk_batch b = {0};
	static uint8_t blk[4096];
	int rc = 0;

	ok(hr_disklog_init(&l, "t", 1, 20000, 40000, soft_cb, NULL) == 0, "disklog 20 KB / 40 KB");
	for (int i = 0; i < 4; i++)
		rc |= hr_disklog_write(&l, 0, i * 4096, blk, 4096, 0);
	ok(!rc && soft_calls == 0, "4 writes under the soft limit: no early checkpoint");
	rc = hr_disklog_write(&l, 0, 0, NULL, 0, HR_DW_FLUSH);
	rc |= hr_disklog_write(&l, 0, 8192, blk, 4096, 0);
	ok(!rc && soft_calls == 1, "past the soft limit: a checkpoint is asked for");
	for (int i = 0; i < 6; i++)
		rc = rc ? rc : hr_disklog_write(&l, 0, i * 4096, blk, 4096, 0);
	ok(rc == -ENOBUFS && l.nr_refused > 0, "past the hard limit: -ENOBUFS");
	ok(hr_disklog_write(&l, 1, 0, blk, 4096, 0) == -EINVAL &&
	       hr_disklog_write(&l, 0, 0, NULL, 512, HR_DW_FLUSH) == -EINVAL,
	   "no such disk, a flush with a length: -EINVAL");
	hr_disklog_cut(&l, &b);
	ok(b.nr >= 6 && b.recs[4].flags == HR_DW_FLUSH && b.recs[5].off == 8192 &&
	       hr_disklog_bytes(&l) == 0,
	   "the cut takes the epoch's writes in order (%zu) and empties the log", b.nr);
	ok(hr_disklog_write(&l, 0, 0, blk, 4096, 0) == 0, "after the cut writes are held again");
	hr_disklog_set_discard(&l, 1);
	ok(hr_disklog_write(&l, 0, 0, blk, 4096, 0) == 0 && hr_disklog_bytes(&l) == 0,
	   "without a backup: counted, not kept");
	ok(hr_disklog_set_discard(&l, 0) == 1, "a new session learns 1 write is not on its disks");
	hr_disk_batch_fini(&b);
	hr_disklog_fini(&l);
}

/* Protocol 3 carries the disks; a version-2 peer is taken without disks only. */
static void test_versions(void)
{
	Hr__Hello h = HR__HELLO__INIT;
	uint64_t sizes[1] = {IMG_BYTES};
	struct hr_hello_info hi = {.protocol_version = 2};
	char why[160];

	h.vm_name = "t";
	h.backend = "mem";
	h.page_bytes = 4096;
	h.protocol_version = 2;
	ok(hr_stream_check_hello(&h, "t") == 0, "a version-2 HELLO without disks is accepted");
	h.n_disk_bytes = 1;
	h.disk_bytes = sizes;
	ok(hr_stream_check_hello(&h, "t") == -HR_EVERSION, "a version-2 HELLO with disks is not");
	h.protocol_version = 3;
	ok(hr_stream_check_hello(&h, "t") == 0, "version 3 with a disk is");
	ok(hr_handshake_check_disks(&hi, sizes, 1, why, sizeof(why)) == -HR_EVERSION,
	   "a backup with disks refuses a version-2 primary: %s", why);
	hi.protocol_version = 3;
	hi.nr_disks = 1;
	hi.disk_bytes[0] = IMG_BYTES / 2;
	ok(hr_handshake_check_disks(&hi, sizes, 1, why, sizeof(why)) == -HR_ESHAPE,
	   "a disk of another size: %s", why);
	ok(hr_handshake_check_disks(&hi, sizes, 0, why, sizeof(why)) == -HR_ESHAPE,
	   "disks on the primary only: %s", why);
	hi.disk_bytes[0] = IMG_BYTES;
	ok(hr_handshake_check_disks(&hi, sizes, 1, why, sizeof(why)) == 0, "the same disks: taken");
}

/* ---- a backup engine fed by hand (as t-backup-bad) ---- */

/* Epoch `epoch`: one DISK_WRITES frame of nr 4 KiB writes of `byte` at
 * offs, the state; torn: no EPOCH_END. */
static int hand_epoch(int fd, uint64_t epoch, const void *state, size_t slen, const uint64_t *offs,
		      unsigned nr, int byte, int torn)
{
	static uint8_t data[4][4096];
	Hr__DiskWrite w[4], *wp[4];
	struct iovec iov[4];
	struct hr_epoch_sum sum;

	hr_epoch_sum_init(&sum, epoch);
	for (unsigned i = 0; i < nr; i++) {
		memset(data[i], byte, 4096);
		hr__disk_write__init(&w[i]);
		w[i].offset = offs[i];
		w[i].bytes = 4096;
		wp[i] = &w[i];
		iov[i] = (struct iovec){data[i], 4096};
		hr_epoch_sum_disk(&sum, 0, offs[i], 4096, 0, data[i]);
	}
	hr_epoch_sum_state(&sum, state, slen);
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	eb.epoch = epoch;
	Hr__DiskWrites dw = HR__DISK_WRITES__INIT;
	dw.epoch = epoch;
	dw.n_writes = nr;
	dw.writes = wp;
	Hr__State sm = HR__STATE__INIT;
	sm.epoch = epoch;
	sm.blob_bytes = slen;
	struct iovec siov = {(void *)state, slen};
	int rc = hr_stream_send(fd, HR_FT_EPOCH_BEGIN, HR_FRAME_MANDATORY, &eb.base, NULL, 0);
	rc = rc ?: hr_stream_send(fd, HR_FT_DISK_WRITES, HR_FRAME_MANDATORY, &dw.base, iov, nr);
	rc = rc ?: hr_stream_send(fd, HR_FT_STATE, HR_FRAME_MANDATORY, &sm.base, &siov, 1);
	if (!torn) {
		Hr__EpochEnd ee = HR__EPOCH_END__INIT;
		ee.epoch = epoch;
		ee.bytes = nr * 4096 + slen;
		ee.has_nr_disk_writes = ee.has_disk_bytes = 1;
		ee.nr_disk_writes = nr;
		ee.disk_bytes = nr * 4096;
		ee.xxh3 = hr_epoch_sum_value(&sum);
		rc = rc
			 ?: hr_stream_send(fd, HR_FT_EPOCH_END, HR_FRAME_MANDATORY, &ee.base, NULL,
					   0);
	}
	hr_epoch_sum_fini(&sum);
	return rc;
}

static int64_t hand_ack(int fd, int timeout_ms)
{
	uint64_t deadline = hr_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		uint64_t now = hr_now_ns();
		struct pollfd p = {fd, POLLIN, 0};
		struct hr_frame f;
		if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0 ||
		    hr_stream_recv(fd, "t", &f) < 0)
			return -1;
		int hb = f.type == HR_FT_HEARTBEAT;
		int64_t ep = f.type == HR_FT_ACK ? (int64_t)((Hr__Ack *)f.msg)->epoch : -2;
		hr_frame_release(&f);
		if (!hb)
			return ep;
	}
}

/* The disk synchronisation a backup wants before an epoch (core/disk-sync.h),
 * by hand: both images are empty, so no block is sent. */
static int hand_sync(int fd)
{
	Hr__DiskSync ds = HR__DISK_SYNC__INIT;
	struct hr_frame f;
	int last = 0, rc;

	ds.phase = HR__DISK_SYNC__PHASE__SYNC_BEGIN;
	ds.has_block_bytes = 1;
	ds.block_bytes = 64 << 10;
	if ((rc = hr_stream_send(fd, HR_FT_DISK_SYNC, HR_FRAME_MANDATORY, &ds.base, NULL, 0)))
		return rc;
	while (!last && !(rc = hr_stream_recv(fd, "t", &f))) {
		last = f.type == HR_FT_DISK_HASHES && ((Hr__DiskHashes *)f.msg)->last;
		hr_frame_release(&f);
	}
	ds.phase = HR__DISK_SYNC__PHASE__SYNC_END;
	ds.has_nr_blocks = ds.has_bytes = 1;
	return rc ?: hr_stream_send(fd, HR_FT_DISK_SYNC, HR_FRAME_MANDATORY, &ds.base, NULL, 0);
}

/* (a) and (b) through a real backup engine: an epoch's writes reach the
 * backup's image at its commit, a torn epoch's never, also not when the
 * backup promotes after the tear. */
static void test_hand_torn(void)
{
	char bp[256], sp[256];
	struct hr_disk_spec bd = {.path = bp}, sd = {.path = sp};
	struct ep_pair ep = {0};
	struct hr_image img;
	char why[160];
	void *blob = NULL, *state = NULL;
	size_t blob_len = 0, slen = 0;

	make_image("b-hand.img", bp, sizeof(bp));
	make_image("src-hand.img", sp, sizeof(sp));
	/* a state blob of a mem guest with a disk of this size */
	struct hr_vm_config mc = {
	    .name = "t-src", .mem_bytes = 8 << 20, .nr_vcpus = 1, .disks = &sd, .nr_disks = 1};
	struct hr_vm *src = NULL;
	const struct hr_backend_ops *mem = hr_backend_find("mem");
	if (mem->open(&src, &mc) || mem->save_state(src, &blob, &blob_len))
		bail("mem backend with a disk: %s", src ? mem->last_error(src) : "?");
	mem->close(src);
	struct hr_out_held held = {.nr_chans = 1};
	if (hr_envelope_pack(&held, blob, blob_len, (uint8_t **)&state, &slen))
		bail("envelope");

	ok(ep_hand_backup(&ep, "t-hand", &bd, IMG_BYTES),
	   "a backup with a disk accepts a HELLO with a disk of its size");

	hr_image_open(&img, bp, 1, why, sizeof(why));
	ok(hand_sync(ep.fds[0]) == 0, "the disks synchronised (nothing differs)");
	uint64_t o0[] = {4096};
	hand_epoch(ep.fds[0], 0, state, slen, o0, 1, 'A', 0);
	ok(hand_ack(ep.fds[0], 5000) == 0 && block_is(&img, 4096, 'A'),
	   "epoch 0 acked: its write is on the backup's image");
	uint64_t o1[] = {2 * 4096, 4096};
	hand_epoch(ep.fds[0], 1, state, slen, o1, 2, 'B', 1);
	ok(hand_ack(ep.fds[0], 300) == -1, "epoch 1 sent without its EPOCH_END: no ack");
	ok(block_is(&img, 2 * 4096, 0) && block_is(&img, 4096, 'A'),
	   "(a) epoch 1's writes are not applied before a commit");
	shutdown(ep.fds[0], SHUT_RDWR); /* the link is cut mid-epoch */
	ok(ep_wait_events(&ep.b_events, 1ull << HR_RE_PROMOTED, 10),
	   "the backup promoted from epoch 0");
	ok(block_is(&img, 2 * 4096, 0) && block_is(&img, 4096, 'A'),
	   "(b) the torn epoch applied none of its writes");
	hr_engine_stop(ep.b);
	pthread_join(ep.tb, NULL);
	hr_engine_free(ep.b);
	hr_image_close(&img);
	close(ep.fds[0]);
	close(ep.fds[1]);
	free(ep.out[0].buf);
	free(blob);
	free(state);
}

/* ---- engine pairs (mem backend) ---- */

static uint64_t ep_bytes, ep_pages, ep_n, ep_interval_us;
static void p_epoch(struct ep_pair *ep, const struct hr_epoch_stats *st)
{
	(void)ep;
	if (st->epoch < 2)
		return; /* the sync */
	__atomic_add_fetch(&ep_bytes, st->bytes, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&ep_pages, st->dirty_pages, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&ep_interval_us, st->interval_us, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&ep_n, 1, __ATOMIC_SEQ_CST);
}

static void configs(struct hr_engine_config *pc, struct hr_engine_config *bc,
		    struct hr_disk_spec *pd, struct hr_disk_spec *bd)
{
	*pc = (struct hr_engine_config){
	    .name = "t-disk", .ops = hr_backend_find("mem"), .epoch_us = 20000, .silence_ms = 300};
	pc->vm =
	    (struct hr_vm_config){.mem_bytes = 16 << 20,
				  .nr_vcpus = 1,
				  .kernel_path = "mem:",
				  .cmdline = "steps_per_s=500 writes=4 disk_writes=4 disk_flush=1",
				  .disks = pd,
				  .nr_disks = 1};
	*bc = (struct hr_engine_config){.name = "t-disk", .silence_ms = 300, .auto_promote = 1};
	bc->vm = (struct hr_vm_config){.disks = bd, .nr_disks = 1};
	bc->disk_durability = "flush";
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

static int wait_check(struct ep_pair *ep, double s)
{
	for (int i = 0; i < s * 100; i++) {
		pthread_mutex_lock(&ep->lock);
		int seen = ep->out[0].buf && strstr(ep->out[0].buf, "diskcheck blocks=");
		pthread_mutex_unlock(&ep->lock);
		if (seen)
			return 1;
		usleep(10000);
	}
	return 0;
}

static void test_failover(void)
{
	char pp[256], bp[256];
	struct hr_disk_spec pd = {.path = pp}, bd = {.path = bp};
	struct hr_engine_config pc, bc;
	struct ep_pair ep = {0};

	make_image("p-fo.img", pp, sizeof(pp));
	make_image("b-fo.img", bp, sizeof(bp));
	configs(&pc, &bc, &pd, &bd);
	ep.on_p_epoch = p_epoch;
	ok(ep_start(&ep, pc, bc, EP_SOCKETPAIR) == 0, "pair with one disk each started");
	ok(ep_wait_u64(&ep.p_acked, 30, 20), "30 epochs acknowledged");
	uint64_t n = ep_n ? ep_n : 1;
	diag("per epoch (after the sync, %llu epochs of %llu us): %llu bytes on the wire, %llu of "
	     "them pages, the rest disk data and the state; the guest writes 4 x 4 KiB blocks "
	     "per step at 500 steps/s (8 MiB/s: %llu bytes of disk data per such epoch)",
	     (unsigned long long)n, (unsigned long long)(ep_interval_us / n),
	     (unsigned long long)(ep_bytes / n), (unsigned long long)(ep_pages * 4096 / n),
	     (unsigned long long)(ep_interval_us / n * 8192 / 1000));
	ok(ep_bytes / n > ep_pages * 4096 / n + 64 * 1024,
	   "the epochs carry the disk data beside their pages");
	ep_kill_primary(&ep);
	ok(ep_wait_events(&ep.b_events, 1ull << HR_RE_PROMOTED, 10), "(c) the backup promoted");
	ok(wait_check(&ep, 10), "(c) the promoted guest checked its disk");
	uint64_t blocks = 0, errors = 1;
	pthread_mutex_lock(&ep.lock);
	int parsed = parse_check(ep.out[0].buf, &blocks, &errors);
	pthread_mutex_unlock(&ep.lock);
	ok(parsed && blocks > 0 && errors == 0,
	   "(a)(c) the backup's disk is its memory's moment exactly: blocks=%llu errors=%llu",
	   (unsigned long long)blocks, (unsigned long long)errors);
	ep_finish(&ep);
}

static uint64_t forced_n, soft_epochs;
static void soft_epoch(struct ep_pair *ep, const struct hr_epoch_stats *st)
{
	(void)ep;
	__atomic_add_fetch(&soft_epochs, 1, __ATOMIC_SEQ_CST);
	if (st->epoch >= 1 && st->trigger == HR_EPOCH_END_FORCED)
		__atomic_add_fetch(&forced_n, 1, __ATOMIC_SEQ_CST);
}

/* A log past its soft limit ends the epoch early (as a full output
 * buffer does): 500 ms epochs, 64 KiB of writes every 8 ms. */
static void test_soft_limit(void)
{
	char pp[256], bp[256];
	struct hr_disk_spec pd = {.path = pp}, bd = {.path = bp};
	struct hr_engine_config pc, bc;
	struct ep_pair ep = {0};

	make_image("p-s.img", pp, sizeof(pp));
	make_image("b-s.img", bp, sizeof(bp));
	configs(&pc, &bc, &pd, &bd);
	pc.epoch_us = 500000;
	pc.disk_log_soft_bytes = 64 << 10;
	pc.disk_log_hard_bytes = 4 << 20;
	ep.on_p_epoch = soft_epoch;
	ok(ep_start(&ep, pc, bc, EP_SOCKETPAIR) == 0, "pair with a 64 KiB soft limit started");
	uint64_t t0 = hr_now_ns();
	int got = ep_wait_u64(&soft_epochs, 12, 4);
	double took_s = (hr_now_ns() - t0) / 1e9;
	ok(got && took_s < 3, "12 epochs in %.2f s although they last 500 ms", took_s);
	ok(forced_n >= 8, "the log ended them early (%llu forced)", (unsigned long long)forced_n);
	ep_kill_primary(&ep);
	ok(wait_check(&ep, 10), "promoted after the early epochs");
	uint64_t blocks = 0, errors = 1;
	pthread_mutex_lock(&ep.lock);
	int parsed = parse_check(ep.out[0].buf, &blocks, &errors);
	pthread_mutex_unlock(&ep.lock);
	ok(parsed && blocks > 0 && errors == 0, "its disk check: blocks=%llu errors=%llu",
	   (unsigned long long)blocks, (unsigned long long)errors);
	ep_finish(&ep);
}

/* The backup cannot apply (fail_after: an injected EIO; else its image
 * lives in bdir, a tmpfs too small for it: ENOSPC). */
static void test_backup_fails(const char *bdir, uint64_t fail_after, int want_rc)
{
	char pp[256], bp[256];
	struct hr_disk_spec pd = {.path = pp}, bd = {.path = bp};
	struct hr_engine_config pc, bc;
	struct ep_pair ep = {0};

	make_image("p-f.img", pp, sizeof(pp));
	if (bdir) {
		snprintf(bp, sizeof(bp), "%s/b-f.img", bdir);
		int fd = open(bp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, IMG_BYTES) < 0)
			bail("sparse image on the small tmpfs: %s", strerror(errno));
		close(fd);
	} else {
		make_image("b-f.img", bp, sizeof(bp));
	}
	configs(&pc, &bc, &pd, &bd);
	bc.disk_fail_after = fail_after;
	ok(ep_start(&ep, pc, bc, EP_SOCKETPAIR) == 0, "pair started (backup's disk: %s)",
	   hr_strerror(want_rc));
	ok(ep_wait_events(&ep.p_events, 1ull << HR_RE_BACKUP_LOST, 20),
	   "(d) the primary lost its backup");
	ok(ep_wait_events(&ep.b_events, 1ull << HR_RE_ERROR, 10),
	   "(d) the backup stopped with an error");
	struct hr_engine_liveness l;
	hr_engine_liveness(ep.p, &l);
	ok(ep.p_state == HR_RS_UNPROTECTED, "(d) the primary is unprotected (state %d)",
	   ep.p_state);
	ok(l.held_why[0] == '\0', "(d) and its output is not held ('%s')", l.held_why);
	uint64_t before = __atomic_load_n(&ep.p_bytes, __ATOMIC_SEQ_CST);
	int grew = ep_wait_u64(&ep.p_bytes, before + 4096, 10);
	ok(grew, "(d) its output continues (%llu -> %llu bytes released)",
	   (unsigned long long)before,
	   (unsigned long long)__atomic_load_n(&ep.p_bytes, __ATOMIC_SEQ_CST));
	pthread_join(ep.tb, NULL);
	ep.tb = 0;
	ok(ep.rc_b == want_rc && !(ep.b_events & (1ull << HR_RE_PROMOTED)) && ep.b_bytes == 0,
	   "(d) the backup ended (%s) and never ran its copy", hr_strerror(ep.rc_b));
	/* the backup engine already returned; ep_finish joins it again */
	hr_engine_stop(ep.p);
	pthread_join(ep.tp, NULL);
	hr_engine_free(ep.p);
	hr_engine_free(ep.b);
	for (unsigned c = 0; c < HR_MAX_CHANNELS; c++)
		free(ep.out[c].buf);
}

/* A private mount namespace (before any thread: unshare refuses a threaded
 * process) with a 256 KiB tmpfs at dir/small.  0, or -errno (no root). */
static int small_tmpfs(char *path, size_t n)
{
	snprintf(path, n, "%s/small", dir);
	if (mkdir(path, 0700) < 0 || unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k") < 0)
		return -errno;
	return 0;
}

int main(void)
{
	char small[256];
	if (!mkdtemp(dir)) {
		printf("1..0 # SKIP no temporary directory\n");
		return 0;
	}
	int tmpfs_rc = small_tmpfs(small, sizeof(small));
	plan(tmpfs_rc ? 57 : 64);
	test_staging();
	test_disklog();
	test_versions();
	test_hand_torn();
	test_failover();
	test_soft_limit();
	test_backup_fails(NULL, 200, -EIO); /* an EIO after some epochs */
	if (!tmpfs_rc)
		test_backup_fails(small, 0, -ENOSPC);
	else
		diag("no ENOSPC case: a private 256 KiB tmpfs needs root (%s)",
		     hr_strerror(tmpfs_rc));
	umount2(small, MNT_DETACH);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
	return tap_done();
}
