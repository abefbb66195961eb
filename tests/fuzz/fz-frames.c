/*
 * fz-frames.c - fuzz target: the frame decoder, fed bytes as they come off
 * a socket.
 *
 * Input: one mode byte, then the stream.  The stream goes through
 *  (a) the incremental reader (hr_frame_reader_feed/next) in chunks of
 *      (mode >> 1) + 1 bytes,
 *  (b) the same reader with a placer that takes every frame's data into a
 *      buffer of its own, in two iovecs (mode bit 0: whole input at once),
 *  (c) the blocking reader (hr_stream_recv) over a socketpair.
 * (a) and (b) must return the same frames with the same data up to where
 * either stops; (c) must return at least as many as (a) when (a) ended
 * clean.  HELLO frames also go through hr_stream_check_hello.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/util.h"
#include "backends/backend.h"
#include "core/stream.h"
#include "fuzz.h"

#define MAX_FRAMES	  256
#define PLACE_BUF_BYTES	  (1u << 20)
#define SOCK_BUFFER_BYTES (1 << 20)

struct seen {
	unsigned nr;
	int err;
	struct {
		uint16_t type;
		uint32_t hdr_len, data_len;
		uint64_t sum;
	} f[MAX_FRAMES];
};

static uint8_t place_buf[PLACE_BUF_BYTES];
static struct iovec place_iov[2];

static int place(void *opaque, const struct hr_frame *f, struct iovec **iov_r, int *nr_r)
{
	size_t half = f->data_len / 2;

	if (f->data_len > PLACE_BUF_BYTES || f->data_len < 2)
		return 0;
	place_iov[0] = (struct iovec){place_buf, half};
	place_iov[1] = (struct iovec){place_buf + half, f->data_len - half};
	*iov_r = place_iov;
	*nr_r = 2;
	return 1;
}

static void note(struct seen *s, const struct hr_frame *f)
{
	const void *data = f->placed ? place_buf : f->data;

	if (f->type == HR_FT_HELLO)
		hr_stream_check_hello((const Hr__Hello *)f->msg, NULL);
	if (!f->msg || (f->data_len && !data && !f->placed))
		__builtin_trap(); /* a known frame always has its message and data */
	if (s->nr < MAX_FRAMES) {
		s->f[s->nr].type = f->type;
		s->f[s->nr].hdr_len = f->hdr_len;
		s->f[s->nr].data_len = f->data_len;
		s->f[s->nr].sum = data ? XXH3_64bits(data, f->data_len) : 0;
	}
	s->nr++;
}

static void run_reader(const uint8_t *p, size_t len, size_t chunk, int placer, struct seen *s)
{
	struct hr_frame_reader r;
	struct hr_frame f;
	size_t off = 0;
	int rc = 0;

	hr_frame_reader_init(&r, NULL);
	if (placer)
		hr_frame_reader_set_placer(&r, place, NULL);
	while (off < len && rc >= 0) {
		size_t n = len - off < chunk ? len - off : chunk;
		if ((rc = hr_frame_reader_feed(&r, p + off, n)) < 0)
			break;
		off += n;
		while ((rc = hr_frame_reader_next(&r, &f)) == 1) {
			note(s, &f);
			hr_frame_release(&f);
		}
	}
	s->err = rc < 0;
	hr_frame_reader_pending(&r);
	hr_frame_reader_fini(&r);
}

static void run_blocking(const uint8_t *p, size_t len, struct seen *s)
{
	struct hr_frame f;
	int sv[2];
	ssize_t n;

	if (fz_socketpair(sv, SOCK_BUFFER_BYTES) < 0)
		return;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	n = send(sv[0], p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(sv[0], SHUT_WR);
	if (n == (ssize_t)len) {
		int rc;
		while ((rc = hr_stream_recv(sv[1], NULL, &f)) == 0) {
			note(s, &f);
			hr_frame_release(&f);
		}
		s->err = rc != -ECONNRESET;
	} else {
		s->err = -1; /* did not fit: not compared */
	}
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct seen a, b, c;
	unsigned n;

	if (size < 1)
		return 0;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	run_reader(data + 1, size - 1, (data[0] >> 1) + 1, 0, &a);
	run_reader(data + 1, size - 1, data[0] & 1 ? size : 7, 1, &b);
	run_blocking(data + 1, size - 1, &c);
	n = a.nr < b.nr ? a.nr : b.nr;
	n = n < MAX_FRAMES ? n : MAX_FRAMES;
	if (memcmp(a.f, b.f, n * sizeof(a.f[0])))
		__builtin_trap(); /* placing changed what was read */
	if (!a.err && !b.err && a.nr != b.nr)
		__builtin_trap();
	if (!a.err && c.err >= 0 && c.nr < a.nr)
		__builtin_trap(); /* the blocking reader lost frames */
	return 0;
}

/* A HELLO with two disks and an epoch's DISK_WRITES frame (protocol 3):
 * a data write, a zeroing and a flush. */
static int disk_seed(const char *dir, const struct hr_mem_region *regs)
{
	static const uint64_t disk_bytes[2] = {1 << 20, 1 << 16};
	static uint8_t data[4096];
	Hr__DiskWrite w[3], *wp[3] = {&w[0], &w[1], &w[2]};
	Hr__DiskWrites dw = HR__DISK_WRITES__INIT;
	struct iovec iov = {data, sizeof(data)};
	uint8_t *buf = NULL, *seed;
	size_t len;
	int sv[2], rc;

	if ((rc = fz_socketpair(sv, 1 << 20)) < 0)
		return rc;
	memset(data, 'x', sizeof(data));
	for (int i = 0; i < 3; i++)
		hr__disk_write__init(&w[i]);
	w[0].offset = 8192;
	w[0].bytes = sizeof(data);
	w[1].disk = 1;
	w[1].bytes = 512;
	w[1].has_flags = 1;
	w[1].flags = HR_DW_ZEROES;
	w[2].has_flags = 1;
	w[2].flags = HR_DW_FLUSH;
	dw.n_writes = 3;
	dw.writes = wp;
	rc = hr_stream_send_hello_disks(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 2,
					regs, 2, 25000, 0, 0, NULL, NULL, 0, disk_bytes, 2);
	rc = rc ?: hr_stream_send(sv[0], HR_FT_DISK_WRITES, HR_FRAME_MANDATORY, &dw.base, &iov, 1);
	rc = rc ?: fz_drain(sv[1], &buf, &len);
	close(sv[0]);
	close(sv[1]);
	if (!rc && !(seed = malloc(1 + len)))
		rc = -ENOMEM;
	if (!rc) {
		seed[0] = 3;
		memcpy(seed + 1, buf, len);
		rc = fz_seed(dir, "disk-writes", seed, 1 + len);
		free(seed);
	}
	free(buf);
	return rc;
}

int fz_make_seeds(const char *dir)
{
	static const struct hr_mem_region regs[2] = {{0, 1 << 20, NULL},
						     {1ull << 32, 1 << 20, NULL}};
	uint8_t *sess = NULL, *hello = NULL, *buf = NULL, *seed;
	size_t sess_len, hello_len, len;
	int sv[2], rc;

	if ((rc = fz_socketpair(sv, 1 << 20)) < 0)
		return rc;
	/* a HELLO as a primary sends it, then a heartbeat, an error and an
	 * optional frame of a type this version does not know */
	Hr__Heartbeat hb = HR__HEARTBEAT__INIT;
	Hr__Error er = HR__ERROR__INIT;
	er.code = 0;
	er.text = "stopped";
	rc = hr_stream_send_hello_at(sv[0], HR__ROLE__ROLE_PRIMARY, "vm1", "mem", 2 << 20, 2, regs,
				     2, 25000, 7, NULL);
	rc = rc ?: fz_drain(sv[1], &hello, &hello_len);
	rc = rc ?: hr_stream_send(sv[0], HR_FT_HEARTBEAT, 0, &hb.base, NULL, 0);
	if (!rc && !(rc = hr_frame_encode(0x123, 0, NULL, 3, &buf, &len)))
		rc = hr_write_all(sv[0], buf, len) ?: hr_write_all(sv[0], "abc", 3);
	rc = rc ?: hr_stream_send(sv[0], HR_FT_ERROR, HR_FRAME_MANDATORY, &er.base, NULL, 0);
	free(buf);
	buf = NULL;
	rc = rc ?: fz_drain(sv[1], &buf, &len);
	rc = rc ?: fz_session(1 << 20, 2, 3, &sess, &sess_len);
	close(sv[0]);
	close(sv[1]);
	if (rc < 0)
		goto out;
	if (!(seed = malloc(1 + hello_len + sess_len + len))) {
		rc = -ENOMEM;
		goto out;
	}
	/* mode bytes: chunk 1 / placer fed at once; chunk 128 / 7-byte placer */
	seed[0] = 1;
	memcpy(seed + 1, hello, hello_len);
	rc = fz_seed(dir, "hello", seed, 1 + hello_len);
	memcpy(seed + 1 + hello_len, buf, len);
	rc = rc ?: fz_seed(dir, "hello-control", seed, 1 + hello_len + len);
	seed[0] = 255;
	memcpy(seed + 1 + hello_len, sess, sess_len);
	memcpy(seed + 1 + hello_len + sess_len, buf, len);
	rc = rc ?: fz_seed(dir, "session", seed, 1 + hello_len + sess_len + len);
	free(seed);
	rc = rc ?: disk_seed(dir, regs);
out:
	free(sess);
	free(hello);
	free(buf);
	return rc;
}
