/*
 * t-engine.c - the epoch engine end to end in one process: a primary and a
 * backup engine (threads) over a socketpair, run once on the in-memory
 * backend (every machine) and once on KVM with memwalk (where /dev/kvm
 * exists), as libevent re-runs its suite per backend.  HR_TEST_BACKENDS
 * (a comma list of mem, kvm, xen) picks the runs: in the dom0 of the nested
 * Xen host (make check-xen) "xen" runs the same checks on real domains, a
 * Linux PVH guest (HR_XEN_KERNEL, HR_XEN_INITRD) counting on its console.
 *
 * Checks output commit and offsets from outside (every byte released once
 * at its own offset, also with tens of KiB of console output per epoch),
 * that epochs flow, the role states on both sides, and promotion: after
 * the primary dies, the backup runs the guest from its last commit and the
 * console seen outside is gap-free and consistent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "guest-harness.h"
#include "tap.h"
#include "common/err.h"
#include "common/util.h"

struct scenario {
	const char *backend, *kernel, *cmdline, *key; /* key: "seq=" or "step=" */
	const char *options;			      /* backend options, both sides */
	uint64_t mem_bytes, epoch_us;
	const char *initrd;  /* xen: the guest's initramfs */
	uint64_t silence_ms; /* 0: 1000 */
	unsigned slow;	     /* waits are this many times longer (0: 1) */
	unsigned epochs;     /* acked epochs before the kill (0: 40) */
};

static uint64_t last_num(const char *s, const char *key)
{
	uint64_t n = 0;
	for (const char *p = s; (p = strstr(p, key));) {
		p += strlen(key);
		if (!strchr(p, '\n'))
			break; /* a line still being written */
		n = strtoull(p, NULL, 10);
	}
	return n;
}

/* Every numbered line in order, N = previous + 1 from 1 on, no errors. */
static int check_lines(const char *s, const char *key, uint64_t *lines_r)
{
	uint64_t prev = 0, n = 0;
	for (const char *p = s; (p = strstr(p, key));) {
		const char *eol = strchr(p, '\n');
		if (!eol)
			break;
		uint64_t v = strtoull(p + strlen(key), NULL, 10);
		if (v != prev + 1)
			return 0;
		const char *err = strstr(p, "errors=");
		if (err && err < eol && strncmp(err, "errors=0", 8))
			return 0;
		prev = v;
		n++;
		p = eol;
	}
	*lines_r = n;
	return n > 0;
}

static void run(const struct scenario *sc)
{
	const struct hr_backend_ops *ops = hr_backend_find(sc->backend);
	struct ep_pair ep = {0};
	/* a loaded 2-core CI machine starves an engine for 300 ms */
	uint64_t silence_ms = sc->silence_ms ? sc->silence_ms : 1000;
	uint64_t slow = sc->slow ? sc->slow : 1, epochs = sc->epochs ? sc->epochs : 40;
	struct hr_engine_config pc = {
	    .name = "t-engine",
	    .ops = ops,
	    .epoch_us = sc->epoch_us,
	    .silence_ms = silence_ms,
	    .handshake_ms = (int)(10000 * slow), /* a Linux domain takes a while to build */
	    .vm = {.mem_bytes = sc->mem_bytes,
		   .nr_vcpus = 1,
		   .kernel_path = sc->kernel,
		   .initrd_path = sc->initrd,
		   .cmdline = sc->cmdline,
		   .options = sc->options},
	};
	/* a replica is always host-mapped (staging writes through the mapping) */
	struct hr_engine_config bc = {.name = "t-engine-b",
				      .silence_ms = silence_ms,
				      .handshake_ms = (int)(10000 * slow),
				      .auto_promote = 1};
	char be[64];
	snprintf(be, sizeof(be), "%s%s%s", sc->backend, sc->options ? " " : "",
		 sc->options ? sc->options : "");

	ok(ep_start(&ep, pc, bc, EP_SOCKETPAIR) == 0, "%s: engines built and started", be);
	uint64_t t0 = hr_now_ns();
	int got = ep_wait_u64(&ep.p_acked, epochs, 30 * slow);
	ok(got, "%s: %llu epochs acknowledged (%llu in %.1f s)", be, (unsigned long long)epochs,
	   (unsigned long long)ep.p_acked, (hr_now_ns() - t0) / 1e9);
	ok(ep.p_state == HR_RS_PROTECTED && ep.b_state == HR_RS_BACKUP,
	   "%s: role states primary=%s backup=%s", be, hr_role_state_name(ep.p_state),
	   hr_role_state_name(ep.b_state));
	struct hr_epoch_stats st;
	hr_engine_stats(ep.p, &st, NULL);
	char line[256];
	hr_epoch_stats_format(&st, line, sizeof(line));
	diag("%s last epoch: %s", be, line);
	ok(st.dirty_pages > 0 && st.interval_us > 0, "%s: epochs carry dirty pages", be);

	/* (a guest that boots slowly, as Linux under TCG, starts counting late) */
	size_t len_live;
	uint64_t num_live;
	for (uint64_t t_live = hr_now_ns();; usleep(10000)) {
		pthread_mutex_lock(&ep.lock);
		len_live = ep.out[0].len;
		num_live = last_num(ep.out[0].buf ? ep.out[0].buf : "", sc->key);
		pthread_mutex_unlock(&ep.lock);
		if (num_live > 25 || hr_now_ns() - t_live > 30e9 * slow)
			break;
	}
	ok(num_live > 25, "%s: released console output reaches the outside (%s%llu, %zu bytes)", be,
	   sc->key, (unsigned long long)num_live, len_live);

	/* The primary dies; only the backup's copy can produce output now.  (A
	 * Xen domain outlives the engine thread: closing the backend destroys
	 * the domain it built, as `xl destroy` would.) */
	ep_kill_primary(&ep);
	uint64_t t_kill = hr_now_ns();
	hr_engine_free(ep.p);
	ep.p = NULL;
	pthread_mutex_lock(&ep.lock);
	size_t len_at_kill = ep.out[0].len;
	uint64_t num_at_kill = last_num(ep.out[0].buf, sc->key);
	pthread_mutex_unlock(&ep.lock);
	while (ep.b_state != HR_RS_PROMOTED && hr_now_ns() - t_kill < 10e9 * slow)
		usleep(1000);
	ok(ep.b_state == HR_RS_PROMOTED, "%s: backup promoted after the primary died (%.1f ms)", be,
	   (hr_now_ns() - t_kill) / 1e6);
	uint64_t want = num_at_kill + 20;
	while (hr_now_ns() - t_kill < 20e9 * slow) {
		pthread_mutex_lock(&ep.lock);
		uint64_t n = last_num(ep.out[0].buf, sc->key);
		pthread_mutex_unlock(&ep.lock);
		if (n >= want)
			break;
		usleep(10000);
	}
	hr_engine_stop(ep.b);
	pthread_join(ep.tb, NULL);
	ep.fds[0] = -1;

	uint64_t lines = 0;
	struct ep_chan *c = &ep.out[0];
	ok(c->len > len_at_kill, "%s: the promoted guest continues the console stream", be);
	ok(c->gaps == 0 && c->conflicts == 0,
	   "%s: no gap and no offset with two contents (gaps %u, conflicts %u)", be, c->gaps,
	   c->conflicts);
	int lines_ok = check_lines(c->buf, sc->key, &lines);
	ok(lines_ok && lines > 40, "%s: numbering from 1 never skips or goes back (%llu lines)", be,
	   (unsigned long long)lines);
	ok(last_num(c->buf, sc->key) >= want, "%s: the guest ran 20 lines past the failover", be);
	if (tap_failed) {
		char path[96];
		snprintf(path, sizeof(path), "t-engine-%s.console", be);
		FILE *f = fopen(path, "w");
		if (f) {
			fputs(c->buf ? c->buf : "", f);
			fclose(f);
		}
	}
	hr_engine_free(ep.b);
	for (unsigned i = 0; i < HR_MAX_CHANNELS; i++)
		free(ep.out[i].buf);
}

int main(void)
{
	int mem, kvm, xen;
	if (!ep_backends(&mem, &kvm, &xen))
		return 0; /* skipped */
	const char *xk = getenv("HR_XEN_KERNEL"), *xi = getenv("HR_XEN_INITRD");
	plan(10 * (3 * mem + kvm + xen));
	/* the mem guest: small lines, then ~50 KiB of output per 200 ms epoch */
	struct scenario mem1 = {"mem",	  "mem:", "steps_per_s=2000 writes=16", "step=", NULL,
				64 << 20, 25000};
	struct scenario mem_big = {
	    "mem",    "mem:", "steps_per_s=2500 writes=8 line_bytes=100", "step=", "map=direct",
	    64 << 20, 200000};
	struct scenario mem_batch = {
	    "mem", "mem:", "steps_per_s=2000 writes=16", "step=", "map=batch", 64 << 20, 25000};
	if (mem) {
		run(&mem1);
		run(&mem_big);
		run(&mem_batch);
	}
	if (kvm) {
		struct scenario k = {"kvm",
				     gh_guest("memwalk.elf"),
				     "rate=20000 wss=32M interval_ms=1",
				     "seq=",
				     NULL,
				     128 << 20,
				     25000};
		run(&k);
	} else if (ep_backend_wanted("kvm")) {
		diag("/dev/kvm not usable: the KVM run is skipped");
	}
	if (xen) {
		/* a Linux PVH domain built by the backend (tests/xen/domu-init.sh);
		 * under QEMU TCG an epoch takes ~0.5 s and a boot ~1 min */
		struct scenario x = {
		    "xen",	xk,   "console=hvc0 quiet loglevel=0 HRCOUNT_MS=100",
		    "HRCOUNT ", NULL, 128 << 20,
		    50000,	xi,   5000,
		    10,		20};
		run(&x);
	}
	return tap_done();
}
