/*
 * t-diskwalk.c - disk replication on KVM, end to end, checked by the guest
 * itself: diskwalk (tests/guests/diskwalk.c) writes stamped blocks to its
 * own virtio-blk and remembers the last stamp of every block in its memory;
 * protected at 25 ms epochs with a sparse image on each side (both all
 * zero, so nothing to sync first), the primary engine is killed mid-run,
 * the backup promotes, and the promoted guest reads its whole disk back:
 * every block must be what its memory says (none lost, none from a later
 * moment, i.e. the torn epoch applied none of its writes).  The mem
 * backend's disk cases are t-disk-replicate.  Needs a usable /dev/kvm
 * (HR_TEST_BACKENDS as in t-engine); runs in make check-linux.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "engine-pair.h"
#include "guest-harness.h"
#include "tap.h"

#define IMG_BYTES   (4u << 20)
#define BLOCK_BYTES 4096u

static char dir[] = "/tmp/t-diskwalk.XXXXXX";

static int make_image(const char *name, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, IMG_BYTES) < 0) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	close(fd);
	return 0;
}

/* The nth "diskcheck" line at or after from (n = 0 the first); 1 if found. */
static int nth_check(const char *out, size_t from, int n, uint64_t *blocks, uint64_t *errors)
{
	const char *p = out + from;
	unsigned long long b, e;
	for (int i = 0; (p = strstr(p, "diskcheck blocks=")); i++, p++) {
		if (i < n)
			continue;
		if (!strchr(p, '\n') || sscanf(p, "diskcheck blocks=%llu errors=%llu", &b, &e) != 2)
			return 0;
		*blocks = b;
		*errors = e;
		return 1;
	}
	return 0;
}

/* Every complete diskcheck line in out[from..]: how many, and the errors. */
static unsigned checks_in(const char *out, size_t from, uint64_t *errors)
{
	uint64_t b, e;
	unsigned n = 0;
	*errors = 0;
	while (nth_check(out, from, (int)n, &b, &e))
		*errors += e, n++;
	return n;
}

/* Wait (bounded) for n complete diskcheck lines in console bytes from on. */
static int wait_checks(struct ep_pair *ep, size_t from, unsigned n, double timeout_s)
{
	uint64_t t0 = hr_now_ns(), e;
	for (;;) {
		pthread_mutex_lock(&ep->lock);
		unsigned got = ep->out[0].buf && ep->out[0].len >= from
				   ? checks_in(ep->out[0].buf, from, &e)
				   : 0;
		pthread_mutex_unlock(&ep->lock);
		if (got >= n)
			return 1;
		if (hr_now_ns() - t0 > timeout_s * 1e9)
			return 0;
		usleep(10000);
	}
}

/* The largest "writes=N" in out[0..len). */
static uint64_t last_writes(const char *out, size_t len)
{
	uint64_t w = 0;
	for (const char *p = out; (p = strstr(p, " writes=")) && (size_t)(p - out) < len; p++) {
		uint64_t v = strtoull(p + 8, NULL, 10);
		w = v > w ? v : w;
	}
	return w;
}

/* Stamps on an image (diskwalk: word 0 of block b = write number << 32 | b):
 * how many blocks hold a write numbered above `above`. */
static int count_newer(const char *path, uint64_t above, uint64_t *n_r)
{
	static uint8_t buf[BLOCK_BYTES];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*n_r = 0;
	for (uint64_t b = 0; b < IMG_BYTES / BLOCK_BYTES; b++) {
		uint64_t w0;
		if (pread(fd, buf, sizeof(buf), (off_t)(b * BLOCK_BYTES)) != (ssize_t)sizeof(buf))
			break;
		memcpy(&w0, buf, sizeof(w0));
		*n_r += (w0 & 0xffffffffu) == b && (w0 >> 32) > above;
	}
	close(fd);
	return 0;
}

static void kvm_failover(void)
{
	char pp[256], bp[256];
	struct hr_disk_spec pd = {.path = pp}, bd = {.path = bp};
	struct ep_pair ep = {0};

	if (make_image("primary.img", pp, sizeof(pp)) || make_image("backup.img", bp, sizeof(bp)))
		bail("sparse images in %s: %s", dir, strerror(errno));
	struct hr_engine_config pc = {
	    .name = "t-diskwalk",
	    .ops = hr_backend_find("kvm"),
	    .epoch_us = 25000,
	    .silence_ms = 2000, /* the nested TCG host is slow */
	    .handshake_ms = 20000,
	    .vm = {.mem_bytes = 64 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = gh_guest("diskwalk.elf"),
		   .cmdline = "rate=400 flush_every=8 interval_ms=100 check_every=3",
		   .disks = &pd,
		   .nr_disks = 1},
	};
	struct hr_engine_config bc = {.name = "t-diskwalk-b",
				      .silence_ms = 2000,
				      .handshake_ms = 20000,
				      .auto_promote = 1,
				      .disk_durability = "flush"};
	bc.vm = (struct hr_vm_config){.disks = &bd, .nr_disks = 1};

	ep_at("start");
	ok(ep_start(&ep, pc, bc, EP_SOCKETPAIR) == 0, "kvm: diskwalk protected at 25 ms epochs");
	ep_at("epochs");
	uint64_t t0 = hr_now_ns();
	int acked = ep_wait_u64(&ep.p_acked, 40, 120);
	double took_s = (hr_now_ns() - t0) / 1e9;
	ok(acked, "kvm: 40 epochs acknowledged (%llu in %.1f s)", (unsigned long long)ep.p_acked,
	   took_s);
	ep_at("the primary's checks");
	/* the boot check and two periodic ones, released by the primary */
	int primary_checked = wait_checks(&ep, 0, 3, 120);
	pthread_mutex_lock(&ep.lock);
	uint64_t perr = 1, pblocks = 0, e;
	unsigned pn = ep.out[0].buf ? checks_in(ep.out[0].buf, 0, &perr) : 0;
	if (pn)
		nth_check(ep.out[0].buf, 0, (int)pn - 1, &pblocks, &e);
	pthread_mutex_unlock(&ep.lock);
	ok(primary_checked && perr == 0 && pblocks > 0,
	   "kvm: the primary's own checks pass (%u checks, last blocks=%llu, errors=%llu in all)",
	   pn, (unsigned long long)pblocks, (unsigned long long)perr);

	/* Kill the primary engine mid-epoch, once its image holds a write the
	 * console has not released yet (the guest writes all the time, but a
	 * slow nested guest may sit between writes): its last epoch is torn. */
	ep_at("kill");
	for (uint64_t w0 = hr_now_ns(); hr_now_ns() - w0 < 10000000000ull;) {
		uint64_t newer = 0;
		pthread_mutex_lock(&ep.lock);
		size_t rl = (size_t)__atomic_load_n(&ep.p_bytes, __ATOMIC_SEQ_CST);
		uint64_t rw = ep.out[0].buf ? last_writes(ep.out[0].buf,
							  rl < ep.out[0].len ? rl : ep.out[0].len)
					    : 0;
		pthread_mutex_unlock(&ep.lock);
		if (count_newer(pp, rw, &newer) == 0 && newer > 0)
			break;
		usleep(1000);
	}
	ep_kill_primary(&ep);
	uint64_t t_kill = hr_now_ns();
	hr_engine_free(ep.p); /* closes the VM: its image holds everything it wrote */
	ep.p = NULL;
	/* What the primary released ends at p_bytes (console only, without
	 * tap=; it never sends a byte twice).  The backup may already have
	 * promoted and released more: its guest resumes within ~100 ms, sooner
	 * than a VM is closed, so the buffer's length is no boundary. */
	pthread_mutex_lock(&ep.lock);
	size_t len_at_kill = (size_t)__atomic_load_n(&ep.p_bytes, __ATOMIC_SEQ_CST);
	if (len_at_kill > ep.out[0].len)
		len_at_kill = ep.out[0].len;
	uint64_t released_writes = last_writes(ep.out[0].buf, len_at_kill);
	pthread_mutex_unlock(&ep.lock);
	uint64_t unreleased = 0;
	int crc = count_newer(pp, released_writes, &unreleased);
	diag("kvm: the primary released %zu console bytes, the last saying writes=%llu; its image "
	     "holds %llu blocks written after that (epochs not acknowledged, the torn one among "
	     "them; %s)",
	     len_at_kill, (unsigned long long)released_writes, (unsigned long long)unreleased,
	     crc ? strerror(-crc) : "read");
	ok(crc == 0 && unreleased > 0, "kvm: the primary died with writes it never released");

	ep_at("promotion");
	ok(ep_wait_events(&ep.b_events, 1ull << HR_RE_PROMOTED, 30),
	   "kvm: the backup promoted (%.1f ms after the kill)", (hr_now_ns() - t_kill) / 1e6);
	ep_at("the promoted guest's checks");
	int checked = wait_checks(&ep, len_at_kill, 2, 60);
	uint64_t b1 = 0, e1 = 1, b2 = 0, e2 = 1;
	pthread_mutex_lock(&ep.lock);
	if (checked) {
		nth_check(ep.out[0].buf, len_at_kill, 0, &b1, &e1);
		nth_check(ep.out[0].buf, len_at_kill, 1, &b2, &e2);
	}
	unsigned gaps = ep.out[0].gaps, conflicts = ep.out[0].conflicts;
	pthread_mutex_unlock(&ep.lock);
	ok(checked, "kvm: the promoted guest read its whole disk back (twice)");
	ok(b1 > 0 && e1 == 0,
	   "kvm: its first check: the disk is its memory's moment exactly, none lost, none "
	   "later (the torn epoch applied nothing): blocks=%llu errors=%llu",
	   (unsigned long long)b1, (unsigned long long)e1);
	ok(b2 >= b1 && e2 == 0, "kvm: and it goes on writing: blocks=%llu errors=%llu",
	   (unsigned long long)b2, (unsigned long long)e2);
	ok(gaps == 0 && conflicts == 0,
	   "kvm: one console stream across the failover (gaps %u, "
	   "conflicts %u)",
	   gaps, conflicts);

	ep_at("stop");
	hr_engine_stop(ep.b);
	pthread_join(ep.tb, NULL);
	hr_engine_free(ep.b);
	if (tap_failed && ep.out[0].buf) {
		FILE *f = fopen("t-diskwalk.console", "w");
		if (f) {
			fputs(ep.out[0].buf, f);
			fclose(f);
		}
		diag("the console is in t-diskwalk.console");
	}
	for (unsigned c = 0; c < HR_MAX_CHANNELS; c++)
		free(ep.out[c].buf);
}

int main(void)
{
	int mem, kvm, xen;
	if (!ep_backends(&mem, &kvm, &xen))
		return 0; /* skipped */
	if (!kvm) {
		printf("1..0 # SKIP diskwalk runs on KVM only and /dev/kvm is %s (the mem "
		       "backend's disk replication: t-disk-replicate)\n",
		       ep_backend_wanted("kvm") ? "not usable here" : "not in HR_TEST_BACKENDS");
		return 0;
	}
	if (access(gh_guest("diskwalk.elf"), R_OK))
		bail("tests/guests/diskwalk.elf not built");
	if (!mkdtemp(dir))
		bail("mkdtemp: %s", strerror(errno));
	plan(9);
	kvm_failover();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
	return tap_done();
}
