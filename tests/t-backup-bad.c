/*
 * t-backup-bad.c - the backup engine fed by a hand-driven primary (this
 * test) over a socketpair, with the in-memory backend: a corrupt epoch and a
 * torn epoch are discarded, the committed epoch is kept and later promoted,
 * and an oversized frame ends the stream without crashing anything.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "common/err.h"
#include "common/util.h"
#include "core/engine.h"
#include "core/envelope.h"
#include "core/stream.h"
#include "backends/mem/mem.h"

#define MEM_BYTES (8u << 20)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char sink_buf[4096];
static size_t sink_len;
static int promoted;

static void sink(void *o, unsigned chan, uint64_t off, const void *p, size_t n)
{
	pthread_mutex_lock(&lock);
	if (off + n <= sizeof(sink_buf)) {
		memcpy(sink_buf + off, p, n);
		if (off + n > sink_len)
			sink_len = off + n;
	}
	pthread_mutex_unlock(&lock);
}

static void on_state(void *o, enum hr_role_state from, enum hr_role_state to, enum hr_role_event ev)
{
	if (to == HR_RS_PROMOTED)
		promoted = 1;
}

struct backup {
	struct hr_engine *e;
	int fd, rc;
};

static void *run_backup(void *a)
{
	struct backup *b = a;
	b->rc = hr_engine_run_backup(b->e, b->fd);
	return NULL;
}

static void *blob;
static size_t blob_len;

/* One epoch: page gfn 100 filled with `fill`, console text, optional damage. */
enum damage { NONE, BAD_SUM, TORN };

static int send_epoch(int fd, uint64_t epoch, uint8_t fill, const char *console, uint64_t cons_off,
		      enum damage d)
{
	static uint8_t page[HR_PAGE_SIZE];
	uint64_t gfn = 100;
	const uint8_t *pp = page;
	memset(page, fill, sizeof(page));
	uint8_t *state;
	size_t slen;
	struct hr_out_record rec = {0, (uint32_t)strlen(console), cons_off};
	struct iovec civ = {(void *)console, strlen(console)};
	struct hr_out_held held = {.nr_chans = 1,
				   .next_offsets = {cons_off + strlen(console)},
				   .nr_records = 1,
				   .records = &rec,
				   .iov = &civ,
				   .bytes = strlen(console)};
	if (hr_envelope_pack(&held, blob, blob_len, &state, &slen))
		return -ENOMEM;

	struct hr_epoch_sum sum;
	hr_epoch_sum_init(&sum, epoch);
	hr_epoch_sum_page(&sum, gfn, page);
	hr_epoch_sum_state(&sum, state, slen);
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	eb.epoch = epoch;
	eb.nr_pages = 1;
	int rc = hr_stream_send(fd, HR_FT_EPOCH_BEGIN, HR_FRAME_MANDATORY, &eb.base, NULL, 0);
	rc = rc ?: hr_stream_send_pages(fd, epoch, &gfn, &pp, 1, 0);
	Hr__State sm = HR__STATE__INIT;
	sm.epoch = epoch;
	sm.blob_bytes = slen;
	struct iovec iov = {state, slen};
	rc = rc ?: hr_stream_send(fd, HR_FT_STATE, HR_FRAME_MANDATORY, &sm.base, &iov, 1);
	if (d != TORN) {
		Hr__EpochEnd ee = HR__EPOCH_END__INIT;
		ee.epoch = epoch;
		ee.nr_pages = 1;
		ee.bytes = HR_PAGE_SIZE + slen;
		ee.xxh3 = hr_epoch_sum_value(&sum) ^ (d == BAD_SUM ? 1 : 0);
		rc = rc
			 ?: hr_stream_send(fd, HR_FT_EPOCH_END, HR_FRAME_MANDATORY, &ee.base, NULL,
					   0);
	}
	hr_epoch_sum_fini(&sum);
	free(state);
	return rc;
}

/* Wait (bounded) for an ACK; returns its epoch or -1. */
static int64_t wait_ack(int fd, int timeout_ms)
{
	uint64_t deadline = hr_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) { /* the backup's heartbeats come in between */
		uint64_t now = hr_now_ns();
		struct pollfd p = {fd, POLLIN, 0};
		if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			return -1;
		struct hr_frame f;
		if (hr_stream_recv(fd, "t", &f) < 0)
			return -1;
		int hb = f.type == HR_FT_HEARTBEAT;
		int64_t ep = f.type == HR_FT_ACK ? (int64_t)((Hr__Ack *)f.msg)->epoch : -2;
		hr_frame_release(&f);
		if (!hb)
			return ep;
	}
}

int main(void)
{
	plan(9);
	/* a valid state blob of the mem backend for the replica's shape */
	struct hr_vm_config mc = {.name = "t-src", .mem_bytes = MEM_BYTES, .nr_vcpus = 1};
	struct hr_vm *src = NULL;
	if (hr_mem_ops.open(&src, &mc) || hr_mem_ops.save_state(src, &blob, &blob_len))
		bail("mem backend");
	hr_mem_ops.close(src);

	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	struct hr_engine_config bc = {.name = "t-backup",
				      .silence_ms = 0,
				      .auto_promote = 1,
				      .output_sink = sink,
				      .on_state = on_state};
	struct backup b = {.fd = sv[1]};
	hr_engine_new(&b.e, &bc);
	pthread_t t;
	pthread_create(&t, NULL, run_backup, &b);

	struct hr_mem_region layout = {0, MEM_BYTES, NULL};
	hr_stream_send_hello(sv[0], HR__ROLE__ROLE_PRIMARY, "t-backup", "mem", MEM_BYTES, 1,
			     &layout, 1, 0);
	struct hr_frame f;
	int rc = hr_stream_recv(sv[0], "t", &f);
	ok(rc == 0 && f.type == HR_FT_HELLO_ACK && ((Hr__HelloAck *)f.msg)->accepted,
	   "backup accepts the hello");
	if (!rc)
		hr_frame_release(&f);

	send_epoch(sv[0], 0, 'A', "epoch0\n", 0, NONE);
	ok(wait_ack(sv[0], 5000) == 0, "epoch 0 committed and acked");
	send_epoch(sv[0], 1, 'B', "epoch1\n", 0, BAD_SUM);
	ok(wait_ack(sv[0], 300) == -1, "epoch 1 with a bad checksum is not acked");
	send_epoch(sv[0], 1, 'B', "epoch1\n", 0, NONE);
	ok(wait_ack(sv[0], 5000) == 1, "the next correct epoch 1 is committed after the discard");
	send_epoch(sv[0], 2, 'C', "epoch2\n", 0, TORN);
	ok(wait_ack(sv[0], 300) == -1, "a torn epoch 2 is not acked");

	/* then garbage: a frame header claiming 4 GiB of data */
	uint8_t bad[16] = {'H', 'R', 'F', '1', 0, 4, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
	ok(write(sv[0], bad, sizeof(bad)) == sizeof(bad), "oversized frame sent");
	uint64_t t0 = hr_now_ns();
	while (!promoted && hr_now_ns() - t0 < 5e9)
		usleep(1000);
	ok(promoted, "the broken stream ends replication and the backup promotes from its commit");
	pthread_mutex_lock(&lock);
	sink_buf[sink_len < sizeof(sink_buf) ? sink_len : sizeof(sink_buf) - 1] = 0;
	int from1 = !strcmp(sink_buf, "epoch1\n");
	pthread_mutex_unlock(&lock);
	ok(from1,
	   "it released the output of committed epoch 1, not of the torn epoch 2 (%zu bytes)",
	   sink_len);
	hr_engine_stop(b.e);
	pthread_join(t, NULL);
	ok(b.rc == 0, "backup engine ends cleanly (%s)", hr_strerror(b.rc));
	hr_engine_free(b.e);
	close(sv[0]);
	free(blob);
	return tap_done();
}
