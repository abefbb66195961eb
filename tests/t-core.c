/*
 * t-core.c - the core's modules one by one on the in-memory backend, with
 * the peer's side played by hand: handshake checks, the touched pages
 * sent live, an epoch taken (pause, fetch, save, capture, seal), sent by
 * the sender and committed by the receiver, the ack checked, promotion from
 * the committed envelope; and the inputs a hostile or broken primary can
 * send: live batches with a gfn beyond memory (2^52 + 5), without or with
 * a wrong checksum, too large; HELLOs with another layout; the guest's CPU
 * model carried to the backup's backend (tests/t-kvm-cpuid.sh: KVM's).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "backends/mem/mem.h"
#include "common/err.h"
#include "core/envelope.h"
#include "core/epoch.h"
#include "core/handshake.h"
#include "core/planner.h"
#include "core/promote.h"
#include "core/receiver.h"
#include "core/sender.h"

#define MEM_BYTES (8u << 20)

static struct hr_outbuf *g_ob;

static int emit_to_outbuf(void *o, unsigned chan, const void *buf, size_t len)
{
	return hr_outbuf_append(g_ob, chan, buf, len);
}

static char replay[4096];
static size_t replay_len;

static void replay_sink(void *o, unsigned chan, uint64_t off, const void *buf, size_t len)
{
	if (chan == 0 && off + len <= sizeof(replay)) {
		memcpy(replay + off, buf, len);
		if (off + len > replay_len)
			replay_len = off + len;
	}
}

/* Feed frames from fd to the receiver until it reports something other than OK. */
static int receive_until(struct hr_receiver *rx, int fd)
{
	for (;;) {
		struct hr_frame f;
		int rc = hr_stream_recv(fd, "t-core", &f);
		if (rc < 0)
			return rc;
		rc = hr_receiver_frame(rx, &f);
		hr_frame_release(&f);
		if (rc != HR_RX_OK)
			return rc;
	}
}

static int same_memory(const struct hr_guestmem *a, const struct hr_guestmem *b)
{
	return !memcmp(a->regions[0].hva, b->regions[0].hva, MEM_BYTES);
}

/* One live batch built by hand; flags as hr_stream_send_pages. */
static int send_live(int fd, uint64_t gfn, unsigned flags, int corrupt)
{
	static uint8_t page[HR_PAGE_SIZE];
	const uint8_t *pp = page;
	memset(page, 0xab, sizeof(page));
	if (!corrupt)
		return hr_stream_send_pages(fd, 0, &gfn, &pp, 1, flags);
	Hr__PageBatch pb = HR__PAGE_BATCH__INIT;
	struct iovec iov = {page, sizeof(page)};
	pb.count = 1;
	pb.n_gfns = 1;
	pb.gfns = &gfn;
	pb.has_xxh3 = 1;
	pb.xxh3 = hr_batch_sum(0, &gfn, &pp, 1) ^ 1;
	return hr_stream_send(fd, HR_FT_PAGE_BATCH, HR_FRAME_MANDATORY, &pb.base, &iov, 1);
}

/* a backend's cpu_check that refuses every CPU model, naming it */
static int refuse_cpu(struct hr_vm *vm, const void *model, size_t len, char *why, size_t n)
{
	(void)vm;
	snprintf(why, n, "no '%.*s' here", (int)len, (const char *)model);
	return -HR_ECPU;
}

static void test_handshake(void)
{
	int sv[2];
	struct hr_peer p;
	struct hr_hello_info h;
	int ctl;
	struct hr_mem_region regs[9];

	for (int i = 0; i < 9; i++)
		regs[i] = (struct hr_mem_region){(uint64_t)i << 30, 1 << 20, NULL};
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	hr_peer_init(&p, "t-core", sv[1], -1);
	hr_stream_send_hello(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 1, regs, 2, 0);
	ok(hr_handshake_accept(&p, &h, &ctl) == 0 && h.nr_regions == 2 && !strcmp(h.vm, "vm1"),
	   "handshake: a sane HELLO is accepted");
	hr_stream_send_hello_full(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 1, regs, 2,
				  25000, 2000, 0, NULL, "cpu-model", 9);
	ok(hr_handshake_accept(&p, &h, &ctl) == 0 && h.epoch_us == 25000 && h.min_epoch_us == 2000,
	   "handshake: the epoch policy (epoch_us, min_epoch_us) reaches the backup");
	struct hr_mem_region other[2] = {regs[0], {1u << 30, 2 << 20, NULL}};
	ok(hr_handshake_check_layout(&h, regs, 2) == 0 &&
	       hr_handshake_check_layout(&h, other, 2) == -HR_ESHAPE &&
	       hr_handshake_check_layout(&h, regs, 1) == -HR_ESHAPE,
	   "handshake: a layout that differs in any region is refused");
	char why[160] = "";
	struct hr_backend_ops refuser = {.name = "mem", .cpu_check = refuse_cpu};
	ok(h.cpu_model_bytes == 9 && !memcmp(h.cpu_model, "cpu-model", 9) &&
	       hr_handshake_check_cpu(&h, &hr_mem_ops, NULL, why, sizeof(why)) == 0 &&
	       hr_handshake_check_cpu(&h, &refuser, NULL, why, sizeof(why)) == -HR_ECPU &&
	       !strcmp(why, "no 'cpu-model' here"),
	   "handshake: the guest's CPU model reaches the backup, whose backend judges it (%s)",
	   why);
	hr_hello_info_fini(&h);
	static char huge[HR_CPU_MODEL_MAX + 1];
	hr_stream_send_hello_full(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 1, regs, 2,
				  25000, 0, 0, NULL, huge, sizeof(huge));
	ok(hr_handshake_accept(&p, &h, &ctl) == -HR_ESHAPE && !h.cpu_model,
	   "handshake: a CPU model over %d bytes is refused", HR_CPU_MODEL_MAX);
	/* the primary's devices travel; a hostile peer's do not get in */
	hr_stream_send_hello_at(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 1, regs, 2,
				25000, 0, "tap=hr0,mac=52:54:00:12:34:56");
	ok(hr_handshake_accept(&p, &h, &ctl) == 0 &&
	       !strcmp(h.vm_options, "tap=hr0,mac=52:54:00:12:34:56"),
	   "handshake: the primary's VM options (its devices) reach the backup");
	char big[HR_HELLO_OPTIONS_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	hr_stream_send_hello_at(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 1, regs, 2,
				25000, 0, big);
	ok(hr_handshake_accept(&p, &h, &ctl) == -HR_ESHAPE,
	   "handshake: VM options over %d bytes are refused", HR_HELLO_OPTIONS_MAX);
	hr_stream_send_hello_at(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 1, regs, 2,
				25000, 0, "tap=hr0\n,dirty=ring");
	ok(hr_handshake_accept(&p, &h, &ctl) == -HR_ESHAPE,
	   "handshake: VM options with a control character are refused");
	regs[1].bytes = 4097;
	hr_stream_send_hello(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 1, regs, 2, 0);
	ok(hr_handshake_accept(&p, &h, &ctl) == -HR_ESHAPE, "handshake: an unaligned region");
	hr_stream_send_hello(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "bhyve", 2 << 20, 1, regs, 1, 0);
	ok(hr_handshake_accept(&p, &h, &ctl) == -HR_EBACKEND,
	   "handshake: a backend not built here (bhyve)");
	hr_peer_fini(&p);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	static const struct hr_chan_desc console[] = {{.name = "console", .kind = HR_CHAN_CONSOLE}};
	const struct hr_backend_ops *ops = &hr_mem_ops;
	struct hr_vm *pvm = NULL, *rvm = NULL;
	struct hr_guestmem pgm, rgm;
	struct hr_vm_config pc = {.name = "t-core",
				  .mem_bytes = MEM_BYTES,
				  .nr_vcpus = 1,
				  .kernel_path = "none",
				  .emit = emit_to_outbuf};
	struct hr_vm_config rc_ = {.name = "t-core-r", .mem_bytes = MEM_BYTES, .nr_vcpus = 1};
	int sv[2], rc;

	plan(27);
	test_handshake();

	ok(ops->open(&pvm, &pc) == 0 && ops->open(&rvm, &rc_) == 0 &&
	       hr_guestmem_init(&pgm, ops, pvm) == 0 && hr_guestmem_init(&rgm, ops, rvm) == 0,
	   "a primary and a replica vm");
	hr_outbuf_new(&g_ob, "t-core", console, 1, 1 << 20, 0);
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	struct hr_staging *st;
	/* one thread plays both sides: the socket must hold a whole epoch */
	int big = 16 << 20;
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	}
	hr_staging_new(&st, "t-core-r", rgm.regions, rgm.nr_regions, 0);
	struct hr_receiver rx;
	hr_receiver_init(&rx, "t-core-r", sv[1], &rgm, st);
	struct hr_sender snd;
	hr_sender_init(&snd, "t-core", sv[0]);

	/* live phase: round 0 is every page the guest touched */
	ops->dirty_start(pvm);
	ops->resume(pvm);
	hr_mem_guest_step(pvm, 200);
	struct hr_epoch_src src = {
	    .vm = "t-core", .ops = ops, .hvm = pvm, .gm = &pgm, .outbuf = g_ob};
	hr_dirtyset_new(&src.dirty, pgm.nr_gfns);
	src.gfns = malloc(pgm.nr_gfns * sizeof(uint64_t));
	int64_t touched = hr_planner_touched(&pgm, src.gfns);
	uint64_t n = touched > 0 ? (uint64_t)touched : 0;
	ok(touched > 100 && touched <= 200, "planner: the touched pages (%lld)",
	   (long long)touched);
	ok(hr_sender_send_live(&snd, &pgm, src.gfns, n) == 0, "sender: live batches sent");
	unsigned nb = (unsigned)((n + HR_SENDER_BATCH_PAGES - 1) / HR_SENDER_BATCH_PAGES),
		 applied = 0;
	for (unsigned i = 0; i < nb; i++) {
		struct hr_frame lf;
		if (hr_stream_recv(sv[1], "t-core", &lf) == 0 &&
		    hr_receiver_frame(&rx, &lf) == HR_RX_OK)
			applied++;
		hr_frame_release(&lf);
	}
	int live_same = 1;
	for (uint64_t i = 0; i < n; i++)
		live_same &= !memcmp(pgm.regions[0].hva + src.gfns[i] * HR_PAGE_SIZE,
				     rgm.regions[0].hva + src.gfns[i] * HR_PAGE_SIZE, HR_PAGE_SIZE);
	ok(applied == nb && live_same, "receiver: %u live batches checked and applied", applied);
	hr_mem_guest_step(pvm, 50);

	/* epoch 0: the transaction, the sender, the receiver, the ack */
	struct hr_epoch ep;
	int took = hr_epoch_take(&src, 0, &ep);
	ok(took == 0 && ep.nr_pages > 0 && ep.st.pause_us < 1000000,
	   "epoch 0 taken: %llu pages, pause %llu us", (unsigned long long)ep.nr_pages,
	   (unsigned long long)ep.st.pause_us);
	ok(hr_sender_send_epoch(&snd, &ep) == 0 && snd.nr_inflight == 1,
	   "sender: epoch 0 in flight");
	struct hr_epoch_stats st0 = ep.st, back;
	hr_epoch_release(&ep);
	rc = receive_until(&rx, sv[1]);
	ok(rc == HR_RX_COMMITTED && rx.have_commit && rx.last.epoch == 0,
	   "receiver: epoch 0 committed (%d)", rc);
	ok(same_memory(&pgm, &rgm), "the replica's memory equals the primary's");
	struct hr_frame f;
	ok(hr_stream_recv(sv[0], "t-core", &f) == 0 && f.type == HR_FT_ACK &&
	       hr_sender_ack(&snd, ((Hr__Ack *)f.msg)->epoch, NULL) == 0 && snd.nr_inflight == 0,
	   "the ack matches the epoch in flight");
	hr_frame_release(&f);
	ok(hr_sender_ack(&snd, 0, NULL) == -HR_EPROTO && hr_sender_ack(&snd, 7, NULL) == -HR_EPROTO,
	   "an ack for no epoch in flight is a protocol error");
	char line[256];
	hr_epoch_stats_format(&st0, line, sizeof(line));
	ok(hr_epoch_stats_parse(line, &back) == 0 && !memcmp(&back, &st0, sizeof(back)) &&
	       hr_epoch_stats_parse("epoch=1 pause_us=2", &back) == -EINVAL,
	   "epoch stats: format and parse agree (%s); a partial line is refused", line);

	/* hostile live batches after the commit: they are epoch frames now */
	uint8_t before[64];
	memcpy(before, rgm.regions[0].hva, sizeof(before));
	send_live(sv[0], 0, HR_PAGES_SUMMED, 0);
	ok(hr_stream_recv(sv[1], "t", &f) == 0 && hr_receiver_frame(&rx, &f) == HR_RX_OK &&
	       !memcmp(before, rgm.regions[0].hva, sizeof(before)),
	   "after a commit a stray page batch never touches the replica");
	hr_frame_release(&f);

	/* a fresh receiver (nothing committed) for the live-phase checks */
	struct hr_receiver rx2;
	struct hr_staging *st2;
	hr_staging_new(&st2, "t-core-r", rgm.regions, rgm.nr_regions, 0);
	hr_receiver_init(&rx2, "t-core-r", sv[1], &rgm, st2);
	uint64_t cases[3][2] = {{(1ull << 52) + 5, HR_PAGES_SUMMED}, {1, 0}, {2, HR_PAGES_SUMMED}};
	const char *what[3] = {"gfn 2^52+5", "no checksum", "a wrong checksum"};
	for (int i = 0; i < 3; i++) {
		memcpy(before, rgm.regions[0].hva + 4096 * (i + 1), sizeof(before));
		send_live(sv[0], cases[i][0], (unsigned)cases[i][1], i == 2);
		int r = hr_stream_recv(sv[1], "t", &f);
		r = r ? r : hr_receiver_frame(&rx2, &f);
		hr_frame_release(&f);
		struct hr_frame er;
		int told = hr_stream_recv(sv[0], "t", &er) == 0 && er.type == HR_FT_ERROR;
		hr_frame_release(&er);
		ok(r < 0 && told && !memcmp(before, rgm.regions[0].hva + 4096 * (i + 1), 64),
		   "live batch with %s: refused (%s), the primary told, memory untouched", what[i],
		   hr_strerror(r));
	}

	/* promotion from the committed envelope: state loaded, held output replayed */
	const void *state;
	size_t len;
	uint64_t next[HR_MAX_CHANNELS];
	hr_staging_committed_state(st, &state, &len);
	ops->pause(pvm);
	int prc = hr_promote("t-core-r", ops, rvm, state, len, replay_sink, NULL, next, NULL);
	ok(prc == 0 && replay_len == next[0] && replay_len > 0 &&
	       !strncmp(replay, "mem: step=1\n", 12),
	   "promote: the state loads, the held console (%zu bytes) is replayed from offset 0",
	   replay_len);
	ok(hr_promote("t-core-r", ops, rvm, state, len / 2, replay_sink, NULL, next, NULL) ==
	       -HR_EBADSTATE,
	   "promote: a truncated envelope is refused");
	ops->pause(rvm);

	hr_sender_fini(&snd);
	hr_capture_fini(&src.capture);
	hr_dirtyset_free(src.dirty);
	free(src.gfns);
	hr_staging_free(st);
	hr_staging_free(st2);
	hr_outbuf_free(g_ob);
	ops->close(pvm);
	ops->close(rvm);
	return tap_done();
}
