/* t-stream.c - framing: round trips, truncation, limits, unknown frames, incremental parsing. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "backends/backend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/stream.h"
#include "tap.h"

#define VM	   "t-stream"
#define NR_PAGES   64
#define BLOB_BYTES 100000

static uint8_t pages[NR_PAGES][HR_PAGE_SIZE];
static uint64_t gfns[NR_PAGES];
static uint8_t blob[BLOB_BYTES];

/* ---- the reference stream: one frame of every type ---- */

static int send_all_types(int fd)
{
	Hr__MemRegion r0 = HR__MEM_REGION__INIT, r1 = HR__MEM_REGION__INIT;
	Hr__MemRegion *regs[2] = {&r0, &r1};
	Hr__Hello hello = HR__HELLO__INIT;
	Hr__HelloAck hack = HR__HELLO_ACK__INIT;
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	Hr__PageRun run = HR__PAGE_RUN__INIT, *runs[1] = {&run};
	Hr__PageBatch pb = HR__PAGE_BATCH__INIT;
	Hr__State st = HR__STATE__INIT;
	Hr__EpochEnd ee = HR__EPOCH_END__INIT;
	Hr__Ack ack = HR__ACK__INIT;
	Hr__Heartbeat hb = HR__HEARTBEAT__INIT;
	Hr__Error er = HR__ERROR__INIT;
	const uint8_t *pp[NR_PAGES];
	struct iovec iov[NR_PAGES];
	uint8_t token[4] = {1, 2, 3, 4};
	int rc = 0;

	r0.gpa = 0;
	r0.bytes = 0xc0000000ull;
	r1.gpa = 0x100000000ull;
	r1.bytes = 0x40000000ull;
	hello.protocol_version = HR_PROTO_VERSION;
	hello.role = HR__ROLE__ROLE_PRIMARY;
	hello.vm_name = "vm1";
	hello.backend = "kvm";
	hello.mem_bytes = 4ull << 30;
	hello.nr_vcpus = 2;
	hello.page_bytes = HR_PAGE_SIZE;
	hello.n_regions = 2;
	hello.regions = regs;
	hello.has_epoch_us = 1;
	hello.epoch_us = 25000;
	hello.has_auth_token = 1;
	hello.auth_token.len = sizeof(token);
	hello.auth_token.data = token;
	rc |= hr_stream_send(fd, HR_FT_HELLO, HR_FRAME_MANDATORY, &hello.base, NULL, 0);

	hack.accepted = 1;
	hack.has_protocol_version = 1;
	hack.protocol_version = 1;
	hack.error_text = "fine";
	rc |= hr_stream_send(fd, HR_FT_HELLO_ACK, HR_FRAME_MANDATORY, &hack.base, NULL, 0);

	eb.epoch = 7;
	eb.nr_pages = NR_PAGES;
	rc |= hr_stream_send(fd, HR_FT_EPOCH_BEGIN, HR_FRAME_MANDATORY, &eb.base, NULL, 0);

	/* half as a gfn list, half as one run */
	for (int i = 0; i < NR_PAGES; i++) {
		iov[i].iov_base = pages[i];
		iov[i].iov_len = HR_PAGE_SIZE;
		pp[i] = pages[i];
	}
	pb.epoch = 7;
	pb.count = NR_PAGES;
	pb.n_gfns = NR_PAGES / 2;
	pb.gfns = gfns;
	run.start_gfn = 1000;
	run.nr_pages = NR_PAGES / 2;
	pb.n_runs = 1;
	pb.runs = runs;
	rc |= hr_stream_send(fd, HR_FT_PAGE_BATCH, HR_FRAME_MANDATORY, &pb.base, iov, NR_PAGES);
	rc |= hr_stream_send_pages(fd, 7, gfns, pp, NR_PAGES, 0);

	st.epoch = 7;
	st.blob_bytes = BLOB_BYTES;
	iov[0].iov_base = blob;
	iov[0].iov_len = 1000;
	iov[1].iov_base = blob + 1000;
	iov[1].iov_len = BLOB_BYTES - 1000;
	rc |= hr_stream_send(fd, HR_FT_STATE, HR_FRAME_MANDATORY, &st.base, iov, 2);

	ee.epoch = 7;
	ee.nr_pages = 2 * NR_PAGES;
	ee.bytes = 2 * NR_PAGES * HR_PAGE_SIZE + BLOB_BYTES;
	ee.xxh3 = 0xfedcba9876543210ull;
	rc |= hr_stream_send(fd, HR_FT_EPOCH_END, HR_FRAME_MANDATORY, &ee.base, NULL, 0);

	ack.epoch = 7;
	rc |= hr_stream_send(fd, HR_FT_ACK, HR_FRAME_MANDATORY, &ack.base, NULL, 0);
	hb.seq = 42;
	hb.sender_time_ns = 123456789;
	rc |= hr_stream_send(fd, HR_FT_HEARTBEAT, 0, &hb.base, NULL, 0);
	er.code = -HR_ECHECKSUM;
	er.text = "bad epoch";
	rc |= hr_stream_send(fd, HR_FT_ERROR, HR_FRAME_MANDATORY, &er.base, NULL, 0);
	return rc;
}

#define NR_REF_FRAMES 10

/* Check frame i of the reference stream. */
static int check_frame(int i, const struct hr_frame *f)
{
	static const unsigned types[NR_REF_FRAMES] = {
	    HR_FT_HELLO, HR_FT_HELLO_ACK, HR_FT_EPOCH_BEGIN, HR_FT_PAGE_BATCH, HR_FT_PAGE_BATCH,
	    HR_FT_STATE, HR_FT_EPOCH_END, HR_FT_ACK,	     HR_FT_HEARTBEAT,  HR_FT_ERROR,
	};

	if (f->type != types[i] || !f->msg)
		return 0;
	switch (i) {
	case 0: {
		Hr__Hello *h = (Hr__Hello *)f->msg;
		return h->protocol_version == HR_PROTO_VERSION &&
		       h->role == HR__ROLE__ROLE_PRIMARY && !strcmp(h->vm_name, "vm1") &&
		       !strcmp(h->backend, "kvm") && h->mem_bytes == 4ull << 30 &&
		       h->nr_vcpus == 2 && h->page_bytes == HR_PAGE_SIZE && h->n_regions == 2 &&
		       h->regions[1]->gpa == 0x100000000ull &&
		       h->regions[1]->bytes == 0x40000000ull && h->has_epoch_us &&
		       h->epoch_us == 25000 && h->auth_token.len == 4 &&
		       h->auth_token.data[3] == 4 && f->data_len == 0 && !f->data &&
		       hr_stream_check_hello(h, VM) == 0;
	}
	case 1: {
		Hr__HelloAck *a = (Hr__HelloAck *)f->msg;
		return a->accepted && a->protocol_version == 1 && !strcmp(a->error_text, "fine") &&
		       !a->has_error_code;
	}
	case 2: {
		Hr__EpochBegin *e = (Hr__EpochBegin *)f->msg;
		return e->epoch == 7 && e->nr_pages == NR_PAGES;
	}
	case 3:
	case 4: {
		Hr__PageBatch *p = (Hr__PageBatch *)f->msg;
		unsigned ng = i == 3 ? NR_PAGES / 2 : NR_PAGES;
		if (p->epoch != 7 || p->count != NR_PAGES || p->n_gfns != ng ||
		    f->data_len != NR_PAGES * HR_PAGE_SIZE || (f->flags & HR_FRAME_MANDATORY) == 0)
			return 0;
		if (i == 3 && (p->n_runs != 1 || p->runs[0]->start_gfn != 1000 ||
			       p->runs[0]->nr_pages != NR_PAGES / 2))
			return 0;
		for (unsigned k = 0; k < ng; k++)
			if (p->gfns[k] != gfns[k])
				return 0;
		for (unsigned k = 0; k < NR_PAGES; k++)
			if (memcmp(f->data + (size_t)k * HR_PAGE_SIZE, pages[k], HR_PAGE_SIZE))
				return 0;
		return 1;
	}
	case 5: {
		Hr__State *s = (Hr__State *)f->msg;
		return s->epoch == 7 && s->blob_bytes == BLOB_BYTES && f->data_len == BLOB_BYTES &&
		       !memcmp(f->data, blob, BLOB_BYTES);
	}
	case 6: {
		Hr__EpochEnd *e = (Hr__EpochEnd *)f->msg;
		return e->epoch == 7 && e->nr_pages == 2 * NR_PAGES &&
		       e->bytes == 2 * NR_PAGES * HR_PAGE_SIZE + BLOB_BYTES &&
		       e->xxh3 == 0xfedcba9876543210ull;
	}
	case 7:
		return ((Hr__Ack *)f->msg)->epoch == 7;
	case 8: {
		Hr__Heartbeat *h = (Hr__Heartbeat *)f->msg;
		return h->seq == 42 && h->sender_time_ns == 123456789 && f->flags == 0;
	}
	case 9: {
		Hr__Error *e = (Hr__Error *)f->msg;
		return e->code == -HR_ECHECKSUM && !strcmp(e->text, "bad epoch");
	}
	}
	return 0;
}

/* ---- helpers ---- */

struct writer {
	int fd;
	const uint8_t *buf;
	size_t len;
	int use_frames;
	int rc;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	if (w->use_frames)
		w->rc = send_all_types(w->fd);
	else
		w->rc = hr_write_all(w->fd, w->buf, w->len);
	close(w->fd);
	return NULL;
}

/* The whole reference stream as bytes (sent to a memfd: the writev path). */
static uint8_t *ref_stream(size_t *len_r)
{
	int fd = memfd_create("ref", 0);
	off_t len;
	uint8_t *buf;

	if (fd < 0 || send_all_types(fd))
		bail("cannot build the reference stream");
	len = lseek(fd, 0, SEEK_END);
	buf = malloc(len);
	if (!buf || pread(fd, buf, len, 0) != len)
		bail("cannot read the reference stream");
	close(fd);
	*len_r = len;
	return buf;
}

/* A memfd holding buf, positioned at 0: a blocking fd that hits EOF after buf. */
static int fd_with(const void *buf, size_t len)
{
	int fd = memfd_create("frag", 0);

	if (fd < 0 || (len && write(fd, buf, len) != (ssize_t)len))
		bail("memfd");
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void raw_hdr(uint8_t *p, uint32_t magic, uint16_t type, uint16_t flags, uint32_t hdr_len,
		    uint32_t data_len)
{
	uint32_t v[4] = {magic, (uint32_t)type << 16 | flags, hdr_len, data_len};
	for (int i = 0; i < 4; i++) {
		p[4 * i] = v[i] >> 24;
		p[4 * i + 1] = v[i] >> 16;
		p[4 * i + 2] = v[i] >> 8;
		p[4 * i + 3] = v[i];
	}
}

static int recv_rc(const void *buf, size_t len)
{
	struct hr_frame f;
	int fd = fd_with(buf, len), rc;

	rc = hr_stream_recv(fd, VM, &f);
	if (!rc)
		hr_frame_release(&f);
	close(fd);
	return rc;
}

/* Feed buf to a fresh reader; return the first non-zero next() or 0. */
static int reader_rc(const void *buf, size_t len, size_t *cap_r, size_t *pending_r)
{
	struct hr_frame_reader r;
	struct hr_frame f;
	int rc;

	hr_frame_reader_init(&r, VM);
	rc = hr_frame_reader_feed(&r, buf, len);
	if (!rc)
		rc = hr_frame_reader_next(&r, &f);
	if (rc == 1)
		hr_frame_release(&f);
	if (cap_r)
		*cap_r = r.cap;
	if (pending_r)
		*pending_r = hr_frame_reader_pending(&r);
	hr_frame_reader_fini(&r);
	return rc;
}

static int frames_equal(const struct hr_frame *a, const struct hr_frame *b)
{
	size_t la, lb;
	uint8_t *pa, *pb;
	int eq;

	if (a->type != b->type || a->flags != b->flags || a->hdr_len != b->hdr_len ||
	    a->data_len != b->data_len || (a->data_len && memcmp(a->data, b->data, a->data_len)))
		return 0;
	la = protobuf_c_message_get_packed_size(a->msg);
	lb = protobuf_c_message_get_packed_size(b->msg);
	if (la != lb)
		return 0;
	pa = malloc(la + 1);
	pb = malloc(lb + 1);
	protobuf_c_message_pack(a->msg, pa);
	protobuf_c_message_pack(b->msg, pb);
	eq = !memcmp(pa, pb, la);
	free(pa);
	free(pb);
	return eq;
}

int main(void)
{
	struct hr_frame f, frames[NR_REF_FRAMES];
	struct hr_frame_reader r;
	uint8_t *ref, bad[HR_FRAME_HDR_BYTES + 64];
	size_t ref_len, cap, pending;
	int sv[2], rc, good, n;
	pthread_t th;
	struct writer w;

	hr_log_init("t-stream", 1, 0);
	alarm(60);
	plan(33);

	for (int i = 0; i < NR_PAGES; i++) {
		gfns[i] = 3 * i + 1;
		for (unsigned j = 0; j < HR_PAGE_SIZE; j++)
			pages[i][j] = (uint8_t)(i * 31 + j * 7 + (j >> 8));
	}
	for (int i = 0; i < BLOB_BYTES; i++)
		blob[i] = (uint8_t)(i * 13 + 5);

	/* 1: every type through a socketpair, blocking receive */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		bail("socketpair");
	w = (struct writer){.fd = sv[0], .use_frames = 1};
	pthread_create(&th, NULL, writer_main, &w);
	good = 1;
	for (int i = 0; i < NR_REF_FRAMES; i++) {
		rc = hr_stream_recv(sv[1], VM, &f);
		if (rc || !check_frame(i, &f)) {
			diag("frame %d: rc %d (%s) type %u", i, rc, hr_strerror(rc), f.type);
			good = 0;
		}
		hr_frame_release(&f);
	}
	rc = hr_stream_recv(sv[1], VM, &f);
	pthread_join(th, NULL);
	ok(good && w.rc == 0, "socketpair: every message type round-trips, page data intact");
	ok(rc == -ECONNRESET, "socketpair: clean EOF at a frame boundary is -ECONNRESET (%d)", rc);
	close(sv[1]);

	/* 2: every type through a socketpair, non-blocking incremental reader */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		bail("socketpair");
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	w = (struct writer){.fd = sv[0], .use_frames = 1};
	pthread_create(&th, NULL, writer_main, &w);
	hr_frame_reader_init(&r, VM);
	good = 1;
	n = 0;
	for (;;) {
		rc = hr_frame_reader_next(&r, &f);
		if (rc == 1) {
			if (n >= NR_REF_FRAMES || !check_frame(n, &f))
				good = 0;
			n++;
			hr_frame_release(&f);
			continue;
		}
		if (rc < 0) {
			good = 0;
			break;
		}
		ssize_t got = hr_frame_reader_fill(&r, sv[1]);
		if (got == -EAGAIN) {
			struct pollfd pfd = {.fd = sv[1], .events = POLLIN};
			poll(&pfd, 1, -1);
			continue;
		}
		if (got <= 0)
			break;
	}
	pthread_join(th, NULL);
	ok(good && n == NR_REF_FRAMES && hr_frame_reader_pending(&r) == 0,
	   "non-blocking reader: %d frames, all intact, nothing pending", n);
	hr_frame_reader_fini(&r);
	close(sv[1]);

	/* 3: the reference stream as bytes; blocking recv on a plain file (writev path) */
	ref = ref_stream(&ref_len);
	{
		int fd = fd_with(ref, ref_len);
		good = 1;
		for (int i = 0; i < NR_REF_FRAMES; i++) {
			rc = hr_stream_recv(fd, VM, &frames[i]);
			if (rc || !check_frame(i, &frames[i]))
				good = 0;
		}
		ok(good, "file fd (writev): every frame intact");
		close(fd);
	}

	/* 4: incremental parser fed one byte at a time */
	hr_frame_reader_init(&r, VM);
	good = 1;
	n = 0;
	for (size_t i = 0; i < ref_len && good; i++) {
		if (hr_frame_reader_feed(&r, ref + i, 1)) {
			good = 0;
			break;
		}
		while ((rc = hr_frame_reader_next(&r, &f)) == 1) {
			if (n >= NR_REF_FRAMES || !frames_equal(&f, &frames[n]) ||
			    !check_frame(n, &f))
				good = 0;
			n++;
			hr_frame_release(&f);
		}
		if (rc < 0)
			good = 0;
	}
	ok(good && n == NR_REF_FRAMES, "byte-at-a-time feed yields %d identical frames", n);
	ok(hr_frame_reader_pending(&r) == 0, "nothing pending after the last frame");
	hr_frame_reader_fini(&r);

	/* 5: the whole stream in one feed */
	hr_frame_reader_init(&r, VM);
	hr_frame_reader_feed(&r, ref, ref_len);
	n = 0;
	good = 1;
	while ((rc = hr_frame_reader_next(&r, &f)) == 1) {
		if (n >= NR_REF_FRAMES || !frames_equal(&f, &frames[n]))
			good = 0;
		n++;
		hr_frame_release(&f);
	}
	ok(good && rc == 0 && n == NR_REF_FRAMES, "one big feed yields the same %d frames", n);
	hr_frame_reader_fini(&r);
	for (int i = 0; i < NR_REF_FRAMES; i++)
		hr_frame_release(&frames[i]);

	/* 6: truncation.  Frame 3 (PAGE_BATCH) starts at a known offset. */
	{
		size_t off = 0, fl = 0;
		int fd = fd_with(ref, ref_len);
		for (int i = 0; i < 4; i++) {
			off = lseek(fd, 0, SEEK_CUR);
			hr_stream_recv(fd, VM, &f);
			fl = HR_FRAME_HDR_BYTES + f.hdr_len + f.data_len;
			if (i < 3)
				hr_frame_release(&f);
		}
		close(fd);
		size_t cut_hdr = off + 7, cut_pb = off + HR_FRAME_HDR_BYTES + f.hdr_len / 2,
		       cut_data = off + HR_FRAME_HDR_BYTES + f.hdr_len + f.data_len / 2;
		hr_frame_release(&f);

		/* a file that ends mid-frame: the blocking path sees EOF */
		int results[3];
		size_t cuts[3] = {cut_hdr, cut_pb, cut_data};
		for (int k = 0; k < 3; k++) {
			fd = fd_with(ref + off, cuts[k] - off);
			results[k] = hr_stream_recv(fd, VM, &f);
			if (!results[k])
				hr_frame_release(&f);
			close(fd);
		}
		ok(results[0] == -HR_EPROTO, "EOF mid frame header: -HR_EPROTO (%d)", results[0]);
		ok(results[1] == -HR_EPROTO, "EOF mid protobuf header: -HR_EPROTO (%d)",
		   results[1]);
		ok(results[2] == -HR_EPROTO, "EOF mid data: -HR_EPROTO (%d)", results[2]);

		/* the same through a socketpair whose writer closes */
		good = 1;
		for (int k = 0; k < 3; k++) {
			if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
				bail("socketpair");
			w = (struct writer){.fd = sv[0], .buf = ref + off, .len = cuts[k] - off};
			pthread_create(&th, NULL, writer_main, &w);
			rc = hr_stream_recv(sv[1], VM, &f);
			pthread_join(th, NULL);
			if (rc != -HR_EPROTO)
				good = 0;
			if (!rc)
				hr_frame_release(&f);
			close(sv[1]);
		}
		ok(good, "socketpair closed mid header / protobuf / data: -HR_EPROTO each");

		/* the reader: truncated input is "need more", with bytes pending */
		rc = reader_rc(ref + off, cut_data - off, NULL, &pending);
		ok(rc == 0 && pending == cut_data - off,
		   "reader: truncated frame waits for more (%zu bytes pending)", pending);
		(void)fl;
	}

	/* 7: limits, checked before any allocation */
	raw_hdr(bad, HR_FRAME_MAGIC, HR_FT_PAGE_BATCH, 1, HR_FRAME_MAX_HDR_BYTES + 1, 0);
	ok(recv_rc(bad, HR_FRAME_HDR_BYTES) == -HR_EPROTO, "hdr_len > 64 KiB rejected by recv");
	rc = reader_rc(bad, HR_FRAME_HDR_BYTES, &cap, NULL);
	ok(rc == -HR_EPROTO && cap <= 4096, "hdr_len > 64 KiB rejected by the reader (cap %zu)",
	   cap);
	raw_hdr(bad, HR_FRAME_MAGIC, HR_FT_PAGE_BATCH, 1, 10, HR_FRAME_MAX_DATA_BYTES + 1);
	rc = reader_rc(bad, HR_FRAME_HDR_BYTES, &cap, NULL);
	ok(rc == -HR_EPROTO && cap <= 4096, "data_len > 64 MiB rejected by the reader (cap %zu)",
	   cap);
	raw_hdr(bad, HR_FRAME_MAGIC, HR_FT_PAGE_BATCH, 1, 10, 0xffffffffu);
	/* writer stays open: recv must fail on the header alone, not wait for the data */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		bail("socketpair");
	if (write(sv[0], bad, HR_FRAME_HDR_BYTES) != HR_FRAME_HDR_BYTES)
		bail("write");
	rc = hr_stream_recv(sv[1], VM, &f);
	ok(rc == -HR_EPROTO, "data_len 4 GiB rejected by recv from the header alone");
	{
		/* and by the non-blocking fill path: no 4 GiB buffer */
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		if (write(sv[0], bad, HR_FRAME_HDR_BYTES) != HR_FRAME_HDR_BYTES)
			bail("write");
		hr_frame_reader_init(&r, VM);
		ssize_t got = hr_frame_reader_fill(&r, sv[1]);
		rc = hr_frame_reader_next(&r, &f);
		ok(got == HR_FRAME_HDR_BYTES && rc == -HR_EPROTO && r.cap <= 128 << 10,
		   "fill + next: oversized data_len rejected, buffer %zu bytes", r.cap);
		ok(hr_frame_reader_next(&r, &f) == -HR_EPROTO &&
		       hr_frame_reader_feed(&r, bad, 1) == -HR_EPROTO,
		   "reader error is sticky");
		hr_frame_reader_fini(&r);
	}
	close(sv[0]);
	close(sv[1]);
	{
		Hr__Ack a = HR__ACK__INIT;
		struct iovec big = {.iov_base = ref, .iov_len = HR_FRAME_MAX_DATA_BYTES + 1ull};
		ok(hr_stream_send(-1, HR_FT_ACK, 0, &a.base, &big, 1) == -HR_EPROTO,
		   "send refuses data > 64 MiB before writing");
		Hr__Heartbeat hb = HR__HEARTBEAT__INIT;
		ok(hr_stream_send(-1, HR_FT_ACK, 0, &hb.base, NULL, 0) == -EINVAL,
		   "send refuses a message of the wrong type for the frame");
	}

	/* 8: bad magic, garbage protobuf, missing required field */
	raw_hdr(bad, 0x48524632u, HR_FT_ACK, 1, 0, 0);
	ok(recv_rc(bad, HR_FRAME_HDR_BYTES) == -HR_EPROTO, "bad magic: recv -HR_EPROTO");
	ok(reader_rc(bad, HR_FRAME_HDR_BYTES, NULL, NULL) == -HR_EPROTO,
	   "bad magic: reader -HR_EPROTO");
	raw_hdr(bad, HR_FRAME_MAGIC, HR_FT_HEARTBEAT, 0, 8, 0);
	memset(bad + HR_FRAME_HDR_BYTES, 0xff, 8);
	ok(recv_rc(bad, HR_FRAME_HDR_BYTES + 8) == -HR_EPROTO, "garbage protobuf: recv -HR_EPROTO");
	ok(reader_rc(bad, HR_FRAME_HDR_BYTES + 8, NULL, NULL) == -HR_EPROTO,
	   "garbage protobuf: reader -HR_EPROTO");
	raw_hdr(bad, HR_FRAME_MAGIC, HR_FT_HEARTBEAT, 0, 0, 0);
	ok(recv_rc(bad, HR_FRAME_HDR_BYTES) == -HR_EPROTO, "missing required fields: -HR_EPROTO");

	/* 9: unknown frame types */
	{
		uint8_t buf[256];
		size_t len = 0;
		Hr__Heartbeat hb = HR__HEARTBEAT__INIT;
		uint8_t *enc;
		size_t enc_len;

		raw_hdr(buf, HR_FRAME_MAGIC, 0x1234, 0, 5, 40); /* optional: skipped */
		memset(buf + HR_FRAME_HDR_BYTES, 0xee, 45);
		len = HR_FRAME_HDR_BYTES + 45;
		hb.seq = 9;
		hb.sender_time_ns = 1;
		hr_frame_encode(HR_FT_HEARTBEAT, 0, &hb.base, 0, &enc, &enc_len);
		memcpy(buf + len, enc, enc_len);
		len += enc_len;
		free(enc);

		int fd = fd_with(buf, len);
		rc = hr_stream_recv(fd, VM, &f);
		ok(rc == 0 && f.type == HR_FT_HEARTBEAT && ((Hr__Heartbeat *)f.msg)->seq == 9,
		   "recv: unknown optional frame skipped, next frame delivered");
		if (!rc)
			hr_frame_release(&f);
		close(fd);

		hr_frame_reader_init(&r, VM);
		good = 1;
		n = 0;
		for (size_t i = 0; i < len; i++) {
			hr_frame_reader_feed(&r, buf + i, 1);
			while ((rc = hr_frame_reader_next(&r, &f)) == 1) {
				n++;
				good &= f.type == HR_FT_HEARTBEAT;
				hr_frame_release(&f);
			}
			good &= rc == 0;
		}
		ok(good && n == 1 && r.nr_skipped == 1,
		   "reader: unknown optional frame skipped (byte at a time), heartbeat delivered");
		hr_frame_reader_fini(&r);

		raw_hdr(buf, HR_FRAME_MAGIC, 0x1234, HR_FRAME_MANDATORY, 5, 40);
		ok(recv_rc(buf, len) == -HR_EPROTO, "recv: unknown mandatory frame rejected");
		ok(reader_rc(buf, len, NULL, NULL) == -HR_EPROTO,
		   "reader: unknown mandatory frame rejected");
	}

	/* 10: handshake version check */
	{
		Hr__Hello h = HR__HELLO__INIT;
		h.protocol_version = HR_PROTO_VERSION + 1;
		h.vm_name = "vm1";
		h.backend = "kvm";
		h.page_bytes = HR_PAGE_SIZE;
		ok(hr_stream_check_hello(&h, VM) == -HR_EVERSION,
		   "hello of another protocol version: -HR_EVERSION");
		h.protocol_version = HR_PROTO_VERSION;
		h.page_bytes = 65536;
		ok(hr_stream_check_hello(&h, VM) == -HR_ESHAPE,
		   "hello with 64 KiB pages: -HR_ESHAPE");
	}

	/* 11: recv_type */
	{
		int fd = fd_with(ref, ref_len);
		rc = hr_stream_recv_type(fd, VM, HR_FT_ACK, &f);
		ok(rc == -HR_EPROTO && !f.msg,
		   "recv_type: a HELLO where ACK was expected is -HR_EPROTO");
		close(fd);
	}

	/* 12: checksum helper is deterministic and sensitive to gfn and data */
	{
		struct hr_epoch_sum s;
		uint64_t a, b, c;
		hr_epoch_sum_init(&s, 5);
		hr_epoch_sum_page(&s, 1, pages[0]);
		hr_epoch_sum_state(&s, blob, 100);
		a = hr_epoch_sum_value(&s);
		hr_epoch_sum_reset(&s, 5);
		hr_epoch_sum_page(&s, 2, pages[0]);
		hr_epoch_sum_state(&s, blob, 100);
		b = hr_epoch_sum_value(&s);
		hr_epoch_sum_reset(&s, 5);
		hr_epoch_sum_page(&s, 1, pages[0]);
		hr_epoch_sum_state(&s, blob, 100);
		c = hr_epoch_sum_value(&s);
		hr_epoch_sum_fini(&s);
		ok(a == c && a != b, "epoch checksum: same input same sum, gfn changes it");
	}

	free(ref);
	return tap_done();
}
