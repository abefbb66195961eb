/*
 * t-migrate-engine.c - the engine's migration hand-off in one process: a
 * primary protected by a backup (engine-pair.h) migrates to a third engine
 * (the target) over a socketpair made by its migrate_connect.  The old
 * backup must end without promoting, the primary return -HR_EMIGRATED, the
 * target run the guest as an unprotected primary, and the console seen
 * outside go on without a gap or a conflict.  Then a cancelled migration:
 * the target discards its committed copy, the primary runs on.  Then one
 * in doubt: the link breaks after the final epoch, before the
 * confirmation: the target runs the VM and the primary, which cannot tell,
 * resumes with its output held (one speaker).  And one whose backup never
 * hears that it is dropped (a silent partition): refused before any target
 * exists (the backup may promote), output held.  On the
 * in-memory backend, and on KVM with memwalk where /dev/kvm exists;
 * HR_TEST_BACKENDS (mem, kvm, xen) picks the runs, as in t-engine: "xen"
 * in the nested Xen host's dom0 (make check-xen), a Linux PVH domain.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "guest-harness.h"
#include "tap.h"
#include "common/err.h"
#include "common/util.h"

/* per backend: a slow one (Xen under QEMU TCG) gets longer waits */
static uint64_t g_silence_ms = 300;
static uint64_t g_slow = 1;
static int g_handshake_ms; /* a Linux domain takes a while to build */
static const char *g_initrd;

struct target {
	struct ep_pair *ep;
	struct hr_engine *t;
	pthread_t thread;
	int fd, rc, started;
	volatile enum hr_role_state state;
	volatile uint64_t bytes;
	volatile int result, in_doubt, reported;
	int cut_confirmation; /* the target's link breaks as it starts running the VM */
	struct hr_migration_report rep;
};

static void t_sink(void *o, unsigned chan, uint64_t off, const void *p, size_t n)
{
	struct target *tg = o;
	__atomic_add_fetch(&tg->bytes, n, __ATOMIC_SEQ_CST);
	ep_sink(tg->ep, chan, off, p, n);
}

static void t_state(void *o, enum hr_role_state from, enum hr_role_state to, enum hr_role_event ev)
{
	struct target *tg = o;
	/* +migrated is announced just before the confirmation is sent */
	if (ev == HR_RE_MIGRATED && tg->cut_confirmation)
		shutdown(tg->fd, SHUT_RDWR);
	tg->state = to;
}

static void *t_run(void *a)
{
	struct target *tg = a;
	tg->rc = hr_engine_run_backup(tg->t, tg->fd);
	return NULL;
}

/* The primary's migrate_connect: a new target engine on a socketpair. */
static int connect_target(void *opaque, int *fd_r)
{
	struct target *tg = opaque;
	struct hr_engine_config tc = {.name = "t-mig-target",
				      .mig_ram_digest = 1,
				      .mig_ram_pages = "t-mig-target.pages",
				      .silence_ms = g_silence_ms,
				      .handshake_ms = g_handshake_ms,
				      .auto_promote = 1,
				      .output_sink = t_sink,
				      .output_opaque = tg,
				      .on_state = t_state,
				      .state_opaque = tg};
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (hr_engine_new(&tg->t, &tc) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -ENOMEM;
	}
	tg->fd = sv[1];
	tg->started = pthread_create(&tg->thread, NULL, t_run, tg) == 0;
	*fd_r = sv[0];
	return 0;
}

static void on_migration(void *opaque, int rc, int in_doubt, const struct hr_migration_report *r)
{
	struct target *tg = opaque;
	tg->result = rc;
	tg->in_doubt = in_doubt;
	if (r)
		tg->rep = *r;
	tg->reported = 1;
}

static uint64_t last_num(const char *s, const char *key)
{
	uint64_t n = 0;
	for (const char *p = s; (p = strstr(p, key));) {
		p += strlen(key);
		if (!strchr(p, '\n'))
			break;
		n = strtoull(p, NULL, 10);
	}
	return n;
}

static int wait_state(volatile enum hr_role_state *s, enum hr_role_state want, double timeout_s)
{
	uint64_t t0 = hr_now_ns();
	while (*s != want && hr_now_ns() - t0 < timeout_s * 1e9)
		usleep(2000);
	return *s == want;
}

enum { MIGRATE, CANCEL, DOUBT, NODROP };

/* How many pages differ (diag: which, by index in guest-physical order). */
static uint64_t diff_pages(const char *a, const char *b)
{
	FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
	uint64_t da, db, n = 0, bad = 0;
	while (fa && fb && fread(&da, 8, 1, fa) == 1 && fread(&db, 8, 1, fb) == 1) {
		if (da != db && bad++ < 16)
			diag("page %llu differs", (unsigned long long)n);
		n++;
	}
	diag("%llu of %llu pages differ", (unsigned long long)bad, (unsigned long long)n);
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return bad;
}

static void run(const char *be, const char *kernel, const char *cmdline, const char *key,
		uint64_t mem_bytes, int mode)
{
	struct ep_pair ep = {0};
	struct target tg = {.ep = &ep, .result = 1, .cut_confirmation = mode == DOUBT};
	int cancel = mode == CANCEL;
	struct hr_engine_config pc = {
	    .name = "t-mig",
	    .ops = hr_backend_find(be),
	    .epoch_us = 25000,
	    .silence_ms = g_silence_ms,
	    .handshake_ms = g_handshake_ms,
	    .vm = {.mem_bytes = mem_bytes,
		   .nr_vcpus = 1,
		   .kernel_path = kernel,
		   .initrd_path = g_initrd,
		   .cmdline = cmdline},
	    .migrate_connect = connect_target,
	    .on_migration = on_migration,
	    .migrate_opaque = &tg,
	    .mig_ram_digest = 1,
	    .mig_ram_pages = "t-mig-source.pages",
	};
	struct hr_engine_config bc = {.name = "t-mig-b",
				      .silence_ms = g_silence_ms,
				      .handshake_ms = g_handshake_ms,
				      .auto_promote = 1};
	const char *what = mode == CANCEL   ? "cancel"
			   : mode == DOUBT  ? "in doubt"
			   : mode == NODROP ? "no drop"
					    : "migrate";
	ep_at(what);

	if (mode == NODROP)
		pc.epoch_us = 1500000; /* room between an ack and the next epoch, even
					* on a loaded machine */
	ok(ep_start(&ep, pc, bc, mode == NODROP ? EP_RELAY : EP_SOCKETPAIR) == 0 &&
	       ep_wait_u64(&ep.p_acked, mode == NODROP ? 3 : 20, 30 * g_slow) &&
	       ep.p_state == HR_RS_PROTECTED,
	   "%s %s: protected by a backup", be, what);
	if (mode == NODROP) {
		/* just after an ack, before the next epoch: a silent partition,
		 * so the backup never hears that it is dropped */
		uint64_t acked = ep.p_acked;
		ep_wait_u64(&ep.p_acked, acked + 1, 5);
		ep.partitioned = 1;
	}
	hr_engine_migrate(ep.p, cancel ? 3000 : 0);
	if (mode == NODROP) {
		uint64_t t0 = hr_now_ns();
		while (!tg.reported && hr_now_ns() - t0 < 20e9)
			usleep(2000);
		ok(tg.reported && tg.result == -HR_ENODROP && !tg.started,
		   "%s no drop: the backup did not confirm the drop: refused (%s), no target built",
		   be, hr_strerror(tg.result));
		uint64_t pb = ep.p_bytes;
		usleep(1000000);
		ok(ep.p_state == HR_RS_UNPROTECTED && ep.p_bytes == pb && ep.p_acked >= 3,
		   "%s no drop: the primary runs on (%s), its output held (%llu -> %llu bytes)", be,
		   hr_role_state_name(ep.p_state), (unsigned long long)pb,
		   (unsigned long long)ep.p_bytes);
		ep_finish(&ep);
		return;
	}
	if (mode == DOUBT) {
		uint64_t t0 = hr_now_ns();
		while (!tg.reported && hr_now_ns() - t0 < 30e9 * g_slow)
			usleep(2000);
		ok(tg.reported && tg.result < 0 && tg.in_doubt && ep.p_state == HR_RS_UNPROTECTED,
		   "%s in doubt: reported (%s), the primary runs on (%s)", be,
		   hr_strerror(tg.result), hr_role_state_name(ep.p_state));
		uint64_t pb = ep.p_bytes, tb = tg.bytes;
		usleep(1500000);
		ok(ep.p_bytes == pb && tg.bytes > tb && tg.state == HR_RS_UNPROTECTED,
		   "%s in doubt: the target speaks, the primary holds its output (%llu -> %llu)",
		   be, (unsigned long long)pb, (unsigned long long)ep.p_bytes);
		ok(ep.out[0].gaps == 0 && ep.out[0].conflicts == 0,
		   "%s in doubt: the console outside: no gap, no conflict", be);
		ep_at("in doubt: stopping the primary");
		hr_engine_stop(ep.p);
		pthread_join(ep.tp, NULL);
		ep.fds[0] = -1;
		ep_at("in doubt: stopping the target");
		hr_engine_stop(tg.t);
		pthread_join(tg.thread, NULL);
	} else if (cancel) {
		ok(wait_state(&tg.state, HR_RS_BACKUP, 20 * g_slow),
		   "%s cancel: the target holds a commit", be);
		hr_engine_migrate_cancel(ep.p);
		uint64_t t0 = hr_now_ns();
		while (!tg.reported && hr_now_ns() - t0 < 20e9 * g_slow)
			usleep(2000);
		ok(tg.reported && tg.result == -ECANCELED && !tg.in_doubt &&
		       ep.p_state == HR_RS_UNPROTECTED,
		   "%s cancel: reported cancelled, the primary runs on (%s)", be,
		   hr_role_state_name(ep.p_state));
		if (tg.started)
			pthread_join(tg.thread, NULL);
		ok(tg.state == HR_RS_STOPPED && tg.bytes == 0,
		   "%s cancel: the target discarded its copy (%s), never spoke", be,
		   hr_role_state_name(tg.state));
		hr_engine_stop(ep.p);
		pthread_join(ep.tp, NULL);
		ep.fds[0] = -1;
		ok(ep.rc_p == 0, "%s cancel: the primary stops on request afterwards", be);
	} else {
		pthread_join(ep.tp, NULL);
		ep.fds[0] = -1;
		ok(ep.rc_p == -HR_EMIGRATED && tg.reported && tg.result == 0 &&
		       ep.p_state == HR_RS_STOPPED,
		   "%s: the primary hands off and returns -HR_EMIGRATED (%s)", be,
		   hr_strerror(ep.rc_p));
		diag("%s: total %llu ms, downtime %llu us, %llu live + %llu epoch bytes, final "
		     "epoch %llu pages",
		     be, (unsigned long long)tg.rep.total_ms,
		     (unsigned long long)tg.rep.downtime_us, (unsigned long long)tg.rep.live_bytes,
		     (unsigned long long)tg.rep.epoch_bytes,
		     (unsigned long long)tg.rep.final_pages);
		ok(wait_state(&ep.b_state, HR_RS_STOPPED, 10 * g_slow),
		   "%s: the old backup stopped (%s)", be, hr_role_state_name(ep.b_state));
		ok(wait_state(&tg.state, HR_RS_UNPROTECTED, 10 * g_slow),
		   "%s: the target runs the VM (%s)", be, hr_role_state_name(tg.state));
		uint64_t td = hr_engine_migration_digest(tg.t);
		uint64_t nd = td && td == tg.rep.ram_xxh3
				  ? 0
				  : diff_pages("t-mig-source.pages", "t-mig-target.pages");
		/* Xen writes a PV guest's event state (the FIFO control block,
		 * vcpu_info) into guest pages without the dirty log, also while
		 * the domain is paused; like `xl migrate`, the copy leaves them
		 * stale and the guest's resume path sets them up anew: one such
		 * page per vCPU may differ there, nothing else */
		ok(td && (!nd || (!strcmp(be, "xen") && nd <= 1)),
		   "%s: guest RAM on the target at the hand-off equals the source's at its stop "
		   "(xxh3 %016llx, %016llx; %llu pages differ)",
		   be, (unsigned long long)td, (unsigned long long)tg.rep.ram_xxh3,
		   (unsigned long long)nd);
		unlink("t-mig-source.pages");
		unlink("t-mig-target.pages");
		pthread_mutex_lock(&ep.lock);
		uint64_t at = last_num(ep.out[0].buf ? ep.out[0].buf : "", key);
		pthread_mutex_unlock(&ep.lock);
		uint64_t p_bytes = ep.p_bytes, t0 = hr_now_ns(), n = 0;
		while (hr_now_ns() - t0 < 20e9 * g_slow) {
			pthread_mutex_lock(&ep.lock);
			n = last_num(ep.out[0].buf, key);
			pthread_mutex_unlock(&ep.lock);
			if (n >= at + 20)
				break;
			usleep(10000);
		}
		ok(n >= at + 20 && ep.p_bytes == p_bytes,
		   "%s: the guest goes on on the target (%s%llu -> %llu), the source is silent", be,
		   key, (unsigned long long)at, (unsigned long long)n);
		ok(ep.out[0].gaps == 0 && ep.out[0].conflicts == 0,
		   "%s: the console outside: no gap, no conflict (gaps %u, conflicts %u)", be,
		   ep.out[0].gaps, ep.out[0].conflicts);
		ep_at("migrated: stopping the target");
		hr_engine_stop(tg.t);
		pthread_join(tg.thread, NULL);
		ok(tg.rc == 0, "%s: the target stops on request", be);
	}
	ep_finish(&ep);
	ep_at("freeing the target");
	hr_engine_free(tg.t);
	ep_at(be);
}

int main(void)
{
	int mem, kvm, xen;
	if (!ep_backends(&mem, &kvm, &xen))
		return 0; /* skipped */
	const char *xk = getenv("HR_XEN_KERNEL");
	plan(20 * mem + 17 * kvm + 17 * xen);
	if (mem) {
		run("mem", "mem:", "steps_per_s=2000 writes=16", "step=", 64 << 20, MIGRATE);
		run("mem", "mem:", "steps_per_s=2000 writes=16", "step=", 64 << 20, NODROP);
		run("mem", "mem:", "steps_per_s=2000 writes=16", "step=", 64 << 20, CANCEL);
		run("mem", "mem:", "steps_per_s=2000 writes=16", "step=", 64 << 20, DOUBT);
	}
	if (kvm) {
		const char *k = gh_guest("memwalk.elf");
		run("kvm", k, "rate=20000 wss=32M interval_ms=1", "seq=", 128 << 20, MIGRATE);
		run("kvm", k, "rate=20000 wss=32M interval_ms=1", "seq=", 128 << 20, CANCEL);
		run("kvm", k, "rate=20000 wss=32M interval_ms=1", "seq=", 128 << 20, DOUBT);
	} else if (ep_backend_wanted("kvm")) {
		diag("/dev/kvm not usable: the KVM runs are skipped");
	}
	if (xen) {
		/* a Linux PVH domain built by the backend (tests/xen/domu-init.sh);
		 * slow under QEMU TCG: ~0.1-0.5 s an epoch */
		const char *cl = "console=hvc0 quiet loglevel=0 HRCOUNT_MS=100";
		g_initrd = getenv("HR_XEN_INITRD");
		g_silence_ms = 5000;
		g_slow = 6;
		g_handshake_ms = 120000;
		run("xen", xk, cl, "HRCOUNT ", 128 << 20, MIGRATE);
		run("xen", xk, cl, "HRCOUNT ", 128 << 20, CANCEL);
		run("xen", xk, cl, "HRCOUNT ", 128 << 20, DOUBT);
	}
	ep_at("exiting");
	unlink("t-mig-source.pages"); /* (the cancelled and in-doubt runs write them too) */
	unlink("t-mig-target.pages");
	return tap_done();
}
