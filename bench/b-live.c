/*
 * b-live.c - the live phase (initial sync of `start`, a migration's
 * pre-copy) measured: MPLM vs classic pre-copy, on KVM with memwalk (else
 * the mem guest), over loopback TCP paced to a link speed, at several
 * dirty rates.  Per run: live rounds, live bytes / RAM, live time, and
 * epoch 0 (the stop-and-copy): its pages, pause and ack.
 *
 *   b-live [--guest memwalk.elf] [--mem MiB] [--wss MiB] [--link MiB/s] [--warm s] [--quick]
 *
 * The measured live phase is a re-protection: the first backup syncs a
 * cold guest, dies --warm seconds later, and a new one connects (the
 * engine's reconnect hook), so the live phase meets a guest that has run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/mem/mem.h"
#include "common/log.h"
#include "common/util.h"
#include "core/engine.h"
#include "engine-pair.h"
#include "guest-harness.h"

struct meas {
	uint64_t rounds, live_bytes, live_us, never_sent, dirty, zero;
	struct hr_epoch_stats e0;
	volatile uint64_t have_e0;
	uint64_t t0_ns, e0_ns;
};

static void on_round(void *o, const struct hr_live_round *r)
{
	struct meas *m = o;
	m->rounds = r->round + 1;
	m->live_bytes = r->total_bytes;
	m->live_us = r->elapsed_us;
	m->never_sent += r->never_sent_pages;
	m->dirty += r->dirty_pages;
	m->zero += r->zero_pages;
}

static void on_p_epoch(struct ep_pair *ep, const struct hr_epoch_stats *st)
{
	struct meas *m = ep->user;
	if (!m->have_e0) {
		m->e0 = *st;
		m->e0_ns = hr_now_ns();
		__atomic_store_n(&m->have_e0, 1, __ATOMIC_SEQ_CST);
	}
}

/* A new backup warm_s after the first sync (the engine's re-protection,
 * as a migration's target would be): the guest has been running since. */
struct late {
	struct ep_pair *ep;
	volatile int armed, started;
};

static int late_reconnect(void *o, int speaking, int *fd_r)
{
	struct late *l = o;
	(void)speaking;
	if (!l->armed || l->started)
		return -EAGAIN;
	if (ep_connect(l->ep->fds, 1) < 0)
		return -EIO;
	l->started = 1;
	pthread_create(&l->ep->tb, NULL, ep_run_b, l->ep);
	*fd_r = l->ep->fds[0];
	return 0;
}

static void run(const char *backend, const char *kernel, const char *cmdline, uint64_t mem,
		unsigned mode, uint64_t link, double warm_s)
{
	struct ep_pair ep = {0};
	struct meas m = {0};
	struct late late = {&ep, 0, 0};
	struct hr_engine_config pc = {
	    .name = "b-live",
	    .ops = hr_backend_find(backend),
	    .epoch_us = 25000,
	    .silence_ms = 5000,
	    .vm = {.mem_bytes = mem,
		   .nr_vcpus = 1,
		   .kernel_path = kernel,
		   .cmdline = cmdline,
		   .options = strcmp(backend, "mem") ? NULL : "fill=1"},
	    .live = {.mode = mode, .max_bytes_per_s = link},
	    .on_round = on_round,
	    .round_opaque = &m,
	    .reconnect = late_reconnect,
	    .reconnect_opaque = &late,
	    .reconnect_ms = 100,
	};
	struct hr_engine_config bc = {.name = "b-live-b", .silence_ms = 5000};

	ep.user = &m;
	ep.on_p_epoch = on_p_epoch;
	if (ep_start(&ep, pc, bc, EP_TCP) < 0 || !ep_wait_u64(&m.have_e0, 1, 60)) {
		printf("%s: no first sync\n", cmdline);
		return;
	}
	usleep((useconds_t)(warm_s * 1e6));
	hr_engine_abort(ep.b); /* the backup dies; the primary runs on alone */
	pthread_join(ep.tb, NULL);
	shutdown(ep.fds[1], SHUT_RDWR); /* as its host's kernel would */
	close(ep.fds[1]);
	hr_engine_free(ep.b);
	bc.output_sink = ep_sink_b;
	bc.output_opaque = bc.epoch_opaque = bc.state_opaque = &ep;
	bc.on_epoch = ep_b_epoch;
	bc.on_state = ep_b_state;
	hr_engine_new(&ep.b, &bc);
	memset(&m, 0, sizeof(m));
	m.t0_ns = hr_now_ns();
	late.armed = 1;
	int got = ep_wait_u64(&m.have_e0, 1, 60);
	printf("%-8s %-30s %s rounds %3llu  live %5.2f x RAM (%llu ns + %llu d + %llu z pages) "
	       "%6.2f s  epoch0 %6llu pages pause %6.1f ms ack %6.1f ms  synced after %.2f s\n",
	       mode == HR_LIVE_MPLM ? "mplm" : "pre-copy", cmdline, got ? "" : "(no sync!)",
	       (unsigned long long)m.rounds, (double)m.live_bytes / mem,
	       (unsigned long long)m.never_sent, (unsigned long long)m.dirty,
	       (unsigned long long)m.zero, m.live_us / 1e6, (unsigned long long)m.e0.dirty_pages,
	       m.e0.pause_us / 1e3, m.e0.ack_us / 1e3, got ? (m.e0_ns - m.t0_ns) / 1e9 : 0.0);
	fflush(stdout);
	ep_finish(&ep);
}

int main(int argc, char **argv)
{
	const char *guest = NULL;
	uint64_t mem_mib = 512, wss_mib = 256, link_mib = 256;
	int quick = 0;
	double warm_s = 3;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--guest") && i + 1 < argc)
			guest = argv[++i];
		else if (!strcmp(argv[i], "--mem") && i + 1 < argc)
			mem_mib = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--wss") && i + 1 < argc)
			wss_mib = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--link") && i + 1 < argc)
			link_mib = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--warm") && i + 1 < argc)
			warm_s = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--quick"))
			quick = 1;
	}
	hr_log_init("b-live", 1, 0);
	if (!guest)
		guest = gh_guest("memwalk.elf");
	int kvm = access("/dev/kvm", R_OK | W_OK) == 0 && guest && access(guest, R_OK) == 0;
	printf("# live phase: %s guest, %llu MiB RAM, link paced to %llu MiB/s (live phase only)\n",
	       kvm ? "KVM memwalk" : "mem", (unsigned long long)mem_mib,
	       (unsigned long long)link_mib);
	static const char *rates[] = {"0", "100000", "20000", "1000"};
	unsigned nr = quick ? 2 : 4;
	for (unsigned i = 0; i < nr; i++) {
		char cmd[128];
		if (kvm)
			snprintf(cmd, sizeof(cmd), "rate=%s wss=%lluM interval_ms=100", rates[i],
				 (unsigned long long)wss_mib);
		else
			snprintf(cmd, sizeof(cmd), "steps_per_s=%s writes=10",
				 i ? rates[i] : "20000");
		for (unsigned mode = 0; mode < 2; mode++)
			run(kvm ? "kvm" : "mem", kvm ? guest : "mem:", cmd, mem_mib << 20, mode,
			    link_mib << 20, warm_s);
	}
	return 0;
}
