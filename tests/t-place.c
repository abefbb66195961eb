/*
 * t-place.c - page data read straight into staging: the frame reader's
 * placer (stream.c) with staging's slots (hr_staging_place), fed in odd
 * chunks and read from a real socket; a placed epoch commits the same
 * memory as a buffered one; what staging must not place (unordered or
 * foreign gfns, another epoch) is buffered and refused as before; and a
 * placed epoch whose bytes were damaged on the way is discarded whole.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "common/err.h"
#include "core/staging.h"
#include "core/stream.h"

#define NR_GFNS	 4096u
#define PER_PAGE 64u

static uint8_t *mem;
static struct hr_mem_region region;

/* Encode one frame into a growing buffer. */
struct wire {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct wire *w, const void *b, size_t n)
{
	if (w->len + n > w->cap) {
		w->cap = (w->len + n) * 2;
		w->p = realloc(w->p, w->cap);
	}
	memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void frame(struct wire *w, uint16_t type, const ProtobufCMessage *m, const void *data,
		  size_t data_len)
{
	uint8_t *h;
	size_t hl;
	hr_frame_encode(type, HR_FRAME_MANDATORY, m, data_len, &h, &hl);
	put(w, h, hl);
	if (data_len)
		put(w, data, data_len);
	free(h);
}

/* Epoch `epoch`: nr_batches batches of PER_PAGE ascending gfns starting at
 * first, pages filled with (epoch, gfn); corrupt flips one byte of data. */
static void epoch_wire(struct wire *w, uint64_t epoch, uint64_t first, unsigned nr_batches,
		       int corrupt, int descending)
{
	static uint8_t data[PER_PAGE * HR_PAGE_SIZE];
	uint64_t gfns[PER_PAGE];
	struct hr_epoch_sum sum;
	hr_epoch_sum_init(&sum, epoch);
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	eb.epoch = epoch;
	eb.nr_pages = (uint64_t)nr_batches * PER_PAGE;
	frame(w, HR_FT_EPOCH_BEGIN, &eb.base, NULL, 0);
	for (unsigned b = 0; b < nr_batches; b++) {
		for (unsigned i = 0; i < PER_PAGE; i++) {
			unsigned k = descending ? PER_PAGE - 1 - i : i;
			gfns[i] = first + (uint64_t)b * PER_PAGE + k;
			memset(data + (size_t)i * HR_PAGE_SIZE, (int)(epoch * 31 + gfns[i]),
			       HR_PAGE_SIZE);
			hr_epoch_sum_page(&sum, gfns[i], data + (size_t)i * HR_PAGE_SIZE);
		}
		if (corrupt && b == nr_batches - 1)
			data[12345] ^= 0x40;
		Hr__PageBatch pb = HR__PAGE_BATCH__INIT;
		pb.epoch = epoch;
		pb.count = PER_PAGE;
		pb.n_gfns = PER_PAGE;
		pb.gfns = gfns;
		frame(w, HR_FT_PAGE_BATCH, &pb.base, data, sizeof(data));
	}
	static const char blob[] = "state";
	hr_epoch_sum_state(&sum, blob, sizeof(blob));
	Hr__State sm = HR__STATE__INIT;
	sm.epoch = epoch;
	sm.blob_bytes = sizeof(blob);
	frame(w, HR_FT_STATE, &sm.base, blob, sizeof(blob));
	Hr__EpochEnd ee = HR__EPOCH_END__INIT;
	ee.epoch = epoch;
	ee.nr_pages = (uint64_t)nr_batches * PER_PAGE;
	ee.bytes = ee.nr_pages * HR_PAGE_SIZE + sizeof(blob);
	ee.xxh3 = hr_epoch_sum_value(&sum);
	frame(w, HR_FT_EPOCH_END, &ee.base, NULL, 0);
	hr_epoch_sum_fini(&sum);
}

struct rx {
	struct hr_staging *st;
	struct hr_frame_reader rd;
	unsigned placed, buffered, committed, discarded;
};

static int placer(void *o, const struct hr_frame *f, struct iovec **iov, int *nr)
{
	struct rx *x = o;
	return f->type == HR_FT_PAGE_BATCH &&
	       hr_staging_place(x->st, (const Hr__PageBatch *)f->msg, iov, nr);
}

/* Take every complete frame out of the reader into staging. */
static void drain(struct rx *x)
{
	struct hr_frame f;
	while (hr_frame_reader_next(&x->rd, &f) == 1) {
		if (f.type == HR_FT_PAGE_BATCH)
			f.placed ? x->placed++ : x->buffered++;
		int rc = hr_staging_frame(x->st, &f);
		if (rc == 1 && hr_staging_commit(x->st, NULL, NULL, NULL) == 0)
			x->committed++;
		if (rc < 0)
			x->discarded++;
		hr_frame_release(&f);
	}
}

static void rx_init(struct rx *x, uint64_t next_epoch)
{
	memset(x, 0, sizeof(*x));
	hr_staging_new(&x->st, "t-place", &region, 1, next_epoch);
	hr_frame_reader_init(&x->rd, "t-place");
	hr_frame_reader_set_placer(&x->rd, placer, x);
}

static void rx_fini(struct rx *x)
{
	hr_frame_reader_fini(&x->rd);
	hr_staging_free(x->st);
}

/* Feed a wire image in chunks of `chunk` bytes. */
static void feed(struct rx *x, const struct wire *w, size_t chunk)
{
	for (size_t off = 0; off < w->len; off += chunk) {
		size_t n = w->len - off < chunk ? w->len - off : chunk;
		hr_frame_reader_feed(&x->rd, w->p + off, n);
		drain(x);
	}
}

static int pages_are(uint64_t epoch, uint64_t first, uint64_t nr)
{
	for (uint64_t g = first; g < first + nr; g++)
		for (unsigned i = 0; i < HR_PAGE_SIZE; i += 1024)
			if (mem[g * HR_PAGE_SIZE + i] != (uint8_t)(epoch * 31 + g))
				return 0;
	return 1;
}

struct writer {
	int fd;
	const struct wire *w;
};

static void *write_all(void *a)
{
	struct writer *wr = a;
	for (size_t off = 0; off < wr->w->len;) {
		ssize_t n = write(wr->fd, wr->w->p + off, wr->w->len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(wr->fd);
	return NULL;
}

int main(void)
{
	struct wire w = {0};
	struct rx x;

	plan(8);
	mem = calloc(NR_GFNS, HR_PAGE_SIZE);
	region = (struct hr_mem_region){0, (uint64_t)NR_GFNS * HR_PAGE_SIZE, mem};

	/* fed in odd chunks: frames straddle every boundary */
	epoch_wire(&w, 0, 100, 4, 0, 0);
	rx_init(&x, 0);
	feed(&x, &w, 3000);
	ok(x.committed == 1 && x.placed >= 3 && pages_are(0, 100, 4 * PER_PAGE),
	   "fed in 3000-byte pieces: epoch committed, %u of 4 batches placed, memory right",
	   x.placed);
	rx_fini(&x);

	/* from a real socket, read with fill() */
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	w.len = 0;
	epoch_wire(&w, 1, 1000, 8, 0, 0);
	rx_init(&x, 1);
	struct writer wr = {sv[0], &w};
	pthread_t t;
	pthread_create(&t, NULL, write_all, &wr);
	while (hr_frame_reader_fill(&x.rd, sv[1]) > 0)
		drain(&x);
	pthread_join(t, NULL);
	close(sv[1]);
	ok(x.committed == 1 && x.placed >= 7 && pages_are(1, 1000, 8 * PER_PAGE) &&
	       hr_frame_reader_pending(&x.rd) == 0,
	   "from a socket: %u of 8 batches read straight into staging, committed", x.placed);
	rx_fini(&x);

	/* damaged on the way: the placed epoch is discarded, memory keeps epoch 1 */
	w.len = 0;
	epoch_wire(&w, 2, 1000, 2, 1, 0);
	rx_init(&x, 2);
	feed(&x, &w, 4096);
	ok(x.committed == 0 && x.discarded == 1 && x.placed >= 1 &&
	       pages_are(1, 1000, 2 * PER_PAGE),
	   "a placed epoch with a flipped bit fails its checksum; the replica is untouched");
	/* and the next good epoch 2 is still accepted */
	w.len = 0;
	epoch_wire(&w, 2, 1000, 2, 0, 0);
	feed(&x, &w, 5000);
	ok(x.committed == 1 && pages_are(2, 1000, 2 * PER_PAGE), "the next good epoch commits");
	rx_fini(&x);

	/* what staging will not place is buffered and judged as before */
	w.len = 0;
	epoch_wire(&w, 0, 200, 2, 0, 1);
	rx_init(&x, 0);
	feed(&x, &w, 3000);
	ok(x.placed == 0 && x.buffered == 2 && x.committed == 1 && pages_are(0, 200, 2 * PER_PAGE),
	   "descending gfns: not placed, buffered, still committed");
	rx_fini(&x);
	w.len = 0;
	epoch_wire(&w, 0, NR_GFNS - 10, 1, 0, 0);
	rx_init(&x, 0);
	feed(&x, &w, 3000);
	ok(x.placed == 0 && x.committed == 0 && x.discarded >= 1,
	   "gfns beyond memory: not placed, and the epoch is refused");
	rx_fini(&x);
	w.len = 0;
	epoch_wire(&w, 5, 100, 2, 0, 0);
	rx_init(&x, 0);
	feed(&x, &w, 3000);
	ok(x.placed == 0 && x.committed == 0, "an epoch out of sequence: nothing placed");
	rx_fini(&x);

	/* EOF in the middle of a placed frame is a truncation */
	w.len = 0;
	epoch_wire(&w, 0, 100, 2, 0, 0);
	rx_init(&x, 0);
	hr_frame_reader_feed(&x.rd, w.p, 100000);
	drain(&x);
	ok(hr_frame_reader_pending(&x.rd) != 0 && x.committed == 0,
	   "a stream that ends inside a placed batch reports pending bytes (truncation)");
	rx_fini(&x);

	free(w.p);
	free(mem);
	return tap_done();
}
