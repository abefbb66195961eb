/* t-staging.c - backup receive side: good epochs commit, bad ones leave the replica untouched. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "backends/backend.h"
#include "common/err.h"
#include "common/log.h"
#include "core/staging.h"
#include "core/stream.h"
#include "tap.h"

#define VM "t-staging"

/* Replica layout: gfn 0..63 and gfn 256..319; 64..255 is a hole. */
#define R0_PAGES  64
#define R1_GFN	  256
#define R1_PAGES  64
#define MEM_BYTES ((R0_PAGES + R1_PAGES) * HR_PAGE_SIZE)

static uint8_t *mem;	  /* backing of both regions */
static uint8_t *snapshot; /* copy taken before a bad epoch */
static struct hr_mem_region regions[2];

enum fault {
	F_NONE,
	F_SUM,	     /* wrong checksum in EPOCH_END */
	F_NO_END,    /* torn: EPOCH_END never sent */
	F_BAD_GFN,   /* a gfn in the hole */
	F_HUGE_GFN,  /* a gfn far beyond the layout */
	F_COUNT,     /* EPOCH_END announces one page less */
	F_DATA_LEN,  /* PAGE_BATCH carries one page less than its count */
	F_FLIP_PAGE, /* one byte of page data flipped in transit */
};

static uint8_t page_byte(uint64_t epoch, uint64_t gfn, unsigned i)
{
	return (uint8_t)(epoch * 7 + gfn * 13 + i + (i >> 7));
}

static uint8_t *page_of(uint64_t gfn)
{
	return gfn < R0_PAGES ? mem + gfn * HR_PAGE_SIZE
			      : mem + (R0_PAGES + gfn - R1_GFN) * HR_PAGE_SIZE;
}

/* Encode a frame and hand it to staging through a real reader. */
static int feed(struct hr_staging *st, unsigned type, const ProtobufCMessage *msg, const void *data,
		size_t len)
{
	struct hr_frame_reader r;
	struct hr_frame f;
	uint8_t *hdr;
	size_t hdr_len;
	int rc;

	if (hr_frame_encode(type, HR_FRAME_MANDATORY, msg, len, &hdr, &hdr_len))
		bail("encode");
	hr_frame_reader_init(&r, VM);
	hr_frame_reader_feed(&r, hdr, hdr_len);
	if (len)
		hr_frame_reader_feed(&r, data, len);
	free(hdr);
	if (hr_frame_reader_next(&r, &f) != 1)
		bail("reader");
	rc = hr_staging_frame(st, &f);
	hr_frame_release(&f);
	hr_frame_reader_fini(&r);
	return rc;
}

struct result {
	int begin, pages, state, end, commit;
};

/*
 * Send epoch `epoch` of nr pages (gfns as a list, plus an optional run) and
 * a state blob, with one fault.  Returns the first error, 1 if verified.
 */
static int send_epoch(struct hr_staging *st, uint64_t epoch, const uint64_t *gfns, unsigned nr,
		      uint64_t run_start, unsigned run_pages, enum fault fault)
{
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	Hr__PageBatch pb = HR__PAGE_BATCH__INIT;
	Hr__PageRun run = HR__PAGE_RUN__INIT, *runs[1] = {&run};
	Hr__State sm = HR__STATE__INIT;
	Hr__EpochEnd ee = HR__EPOCH_END__INIT;
	unsigned total = nr + run_pages;
	uint64_t *list = malloc(sizeof(*list) * (total + 1));
	uint8_t *data = malloc((size_t)(total + 1) * HR_PAGE_SIZE);
	char blob[64];
	struct hr_epoch_sum sum;
	int rc;

	memcpy(list, gfns, sizeof(*list) * nr);
	for (unsigned i = 0; i < run_pages; i++)
		list[nr + i] = run_start + i;
	if (fault == F_BAD_GFN)
		list[0] = 100;
	if (fault == F_HUGE_GFN)
		list[0] = 1ull << 60;
	for (unsigned p = 0; p < total; p++)
		for (unsigned i = 0; i < HR_PAGE_SIZE; i++)
			data[(size_t)p * HR_PAGE_SIZE + i] = page_byte(epoch, list[p], i);
	snprintf(blob, sizeof(blob), "state of epoch %llu", (unsigned long long)epoch);

	hr_epoch_sum_init(&sum, epoch);
	for (unsigned p = 0; p < total; p++)
		hr_epoch_sum_page(&sum, list[p], data + (size_t)p * HR_PAGE_SIZE);
	hr_epoch_sum_state(&sum, blob, strlen(blob));

	eb.epoch = epoch;
	eb.nr_pages = total;
	rc = feed(st, HR_FT_EPOCH_BEGIN, &eb.base, NULL, 0);
	if (rc)
		goto out;

	if (fault == F_FLIP_PAGE)
		data[HR_PAGE_SIZE / 2] ^= 0x40;
	pb.epoch = epoch;
	pb.count = total;
	pb.n_gfns = nr;
	pb.gfns = list;
	if (run_pages) {
		run.start_gfn = run_start;
		run.nr_pages = run_pages;
		pb.n_runs = 1;
		pb.runs = runs;
	}
	rc = feed(st, HR_FT_PAGE_BATCH, &pb.base, data,
		  (size_t)(total - (fault == F_DATA_LEN)) * HR_PAGE_SIZE);
	if (rc)
		goto out;

	sm.epoch = epoch;
	sm.blob_bytes = strlen(blob);
	rc = feed(st, HR_FT_STATE, &sm.base, blob, strlen(blob));
	if (rc || fault == F_NO_END)
		goto out;

	ee.epoch = epoch;
	ee.nr_pages = total - (fault == F_COUNT);
	ee.bytes = (uint64_t)total * HR_PAGE_SIZE + strlen(blob);
	ee.xxh3 = hr_epoch_sum_value(&sum) ^ (fault == F_SUM);
	rc = feed(st, HR_FT_EPOCH_END, &ee.base, NULL, 0);
out:
	hr_epoch_sum_fini(&sum);
	free(list);
	free(data);
	return rc;
}

/* Every listed page of epoch `epoch` is in the replica. */
static int pages_are(uint64_t epoch, const uint64_t *gfns, unsigned nr)
{
	for (unsigned p = 0; p < nr; p++)
		for (unsigned i = 0; i < HR_PAGE_SIZE; i++)
			if (page_of(gfns[p])[i] != page_byte(epoch, gfns[p], i))
				return 0;
	return 1;
}

static int commit_ok(struct hr_staging *st, uint64_t epoch)
{
	const void *state;
	size_t len;
	uint64_t e;
	char want[64];

	snprintf(want, sizeof(want), "state of epoch %llu", (unsigned long long)epoch);
	if (hr_staging_commit(st, &e, &state, &len))
		return 0;
	return e == epoch && len == strlen(want) && !memcmp(state, want, len);
}

static void take_snapshot(void)
{
	memcpy(snapshot, mem, MEM_BYTES);
}

static int unchanged(struct hr_staging *st, uint64_t committed)
{
	const void *state;
	size_t len;
	char want[64];

	snprintf(want, sizeof(want), "state of epoch %llu", (unsigned long long)committed);
	hr_staging_committed_state(st, &state, &len);
	return !memcmp(mem, snapshot, MEM_BYTES) && hr_staging_next_epoch(st) == committed + 1 &&
	       len == strlen(want) && !memcmp(state, want, len);
}

int main(void)
{
	struct hr_staging *st;
	uint64_t all[R0_PAGES + R1_PAGES], few[5] = {3, 0, 63, 300, 257};
	struct hr_staging_stats stats;
	int rc;

	hr_log_init("t-staging", 1, 0);
	plan(33);

	mem = calloc(1, MEM_BYTES);
	snapshot = malloc(MEM_BYTES);
	regions[0] = (struct hr_mem_region){.gpa = 0, .bytes = R0_PAGES * HR_PAGE_SIZE, .hva = mem};
	regions[1] = (struct hr_mem_region){.gpa = (uint64_t)R1_GFN << HR_PAGE_SHIFT,
					    .bytes = R1_PAGES * HR_PAGE_SIZE,
					    .hva = mem + R0_PAGES * HR_PAGE_SIZE};
	for (unsigned i = 0; i < R0_PAGES; i++)
		all[i] = i;
	for (unsigned i = 0; i < R1_PAGES; i++)
		all[R0_PAGES + i] = R1_GFN + i;

	rc = hr_staging_new(&st, VM, regions, 2, 0);
	ok(rc == 0, "staging for a 2-region layout");
	ok(hr_staging_commit(st, NULL, NULL, NULL) == -EINVAL,
	   "commit without a verified epoch: -EINVAL");

	/* epoch 0: full sync of all memory, half listed, half as a run */
	rc = send_epoch(st, 0, all, R0_PAGES, R1_GFN, R1_PAGES, F_NONE);
	ok(rc == 1, "epoch 0 (full sync) verified");
	ok(commit_ok(st, 0), "epoch 0 commits with its state");
	ok(pages_are(0, all, R0_PAGES + R1_PAGES), "replica holds every page of epoch 0");

	/* epoch 1: a few pages */
	ok(send_epoch(st, 1, few, 5, 0, 0, F_NONE) == 1 && commit_ok(st, 1), "epoch 1 commits");
	ok(pages_are(1, few, 5) && pages_are(0, all + 1, 2), "epoch 1 pages applied, others kept");

	/* corrupt checksum */
	take_snapshot();
	rc = send_epoch(st, 2, all + 10, 20, 0, 0, F_SUM);
	ok(rc == -HR_ECHECKSUM, "epoch 2 with a wrong checksum: -HR_ECHECKSUM (%d)", rc);
	ok(unchanged(st, 1), "replica memory and state still epoch 1");
	ok(hr_staging_commit(st, NULL, NULL, NULL) == -EINVAL, "nothing to commit");
	rc = send_epoch(st, 2, all + 10, 20, 0, 0, F_FLIP_PAGE);
	ok(rc == -HR_ECHECKSUM && unchanged(st, 1), "epoch 2 with a flipped data bit: discarded");
	ok(send_epoch(st, 2, all + 10, 20, 0, 0, F_NONE) == 1 && commit_ok(st, 2) &&
	       pages_are(2, all + 10, 20),
	   "then a good epoch 2 commits");

	/* torn: no EPOCH_END, the next EPOCH_BEGIN shows it */
	take_snapshot();
	ok(send_epoch(st, 3, all, 30, 0, 0, F_NO_END) == 0, "epoch 3 staged without EPOCH_END");
	ok(unchanged(st, 2), "torn epoch 3 did not touch the replica");
	ok(hr_staging_commit(st, NULL, NULL, NULL) == -EINVAL, "torn epoch cannot be committed");
	rc = send_epoch(st, 3, all, 30, 0, 0, F_NONE);
	ok(rc == -HR_EPROTO && unchanged(st, 2),
	   "EPOCH_BEGIN inside torn epoch 3: -HR_EPROTO, discarded");
	ok(send_epoch(st, 3, all + 40, 30, 0, 0, F_NONE) == 1 && commit_ok(st, 3) &&
	       pages_are(3, all + 40, 30),
	   "then a good epoch 3 commits");

	/* torn: the peer vanishes (engine calls discard) */
	take_snapshot();
	send_epoch(st, 4, all, 8, 0, 0, F_NO_END);
	hr_staging_discard(st);
	ok(unchanged(st, 3), "epoch 4 discarded on connection loss, replica unchanged");
	ok(send_epoch(st, 4, all, 8, 0, 0, F_NONE) == 1 && commit_ok(st, 4) && pages_are(4, all, 8),
	   "then a good epoch 4 commits");

	/* wrong epoch numbers */
	take_snapshot();
	rc = send_epoch(st, 6, all, 8, 0, 0, F_NONE);
	ok(rc == -HR_EPROTO && unchanged(st, 4), "epoch 6 after 4: -HR_EPROTO, replica unchanged");
	rc = send_epoch(st, 3, all, 8, 0, 0, F_NONE);
	ok(rc == -HR_EPROTO && unchanged(st, 4), "replayed epoch 3: -HR_EPROTO, replica unchanged");
	{
		Hr__PageBatch pb = HR__PAGE_BATCH__INIT;
		uint8_t page[HR_PAGE_SIZE] = {0};
		uint64_t g = 1;
		pb.epoch = 5;
		pb.count = 1;
		pb.n_gfns = 1;
		pb.gfns = &g;
		rc = feed(st, HR_FT_PAGE_BATCH, &pb.base, page, sizeof(page));
		ok(rc == -HR_EPROTO && unchanged(st, 4), "PAGE_BATCH outside an epoch: -HR_EPROTO");
	}
	ok(send_epoch(st, 5, all + 5, 50, 0, 0, F_NONE) == 1 && commit_ok(st, 5) &&
	       pages_are(5, all + 5, 50),
	   "then a good epoch 5 commits");

	/* gfns outside the layout */
	take_snapshot();
	rc = send_epoch(st, 6, all, 10, 0, 0, F_BAD_GFN);
	ok(rc == -HR_EPROTO && unchanged(st, 5),
	   "gfn in a hole of the layout: -HR_EPROTO, unchanged");
	rc = send_epoch(st, 6, all, 10, 0, 0, F_HUGE_GFN);
	ok(rc == -HR_EPROTO && unchanged(st, 5), "gfn 2^60: -HR_EPROTO, unchanged");
	rc = send_epoch(st, 6, few, 2, R1_GFN + R1_PAGES - 2, 4, F_NONE);
	ok(rc == -HR_EPROTO && unchanged(st, 5),
	   "run past the end of a region: -HR_EPROTO, unchanged");
	ok(send_epoch(st, 6, all + 60, 10, 0, 0, F_NONE) == 1 && commit_ok(st, 6) &&
	       pages_are(6, all + 60, 10),
	   "then a good epoch 6 commits");

	/* counts and lengths */
	take_snapshot();
	rc = send_epoch(st, 7, all, 10, 0, 0, F_COUNT);
	ok(rc == -HR_EPROTO && unchanged(st, 6),
	   "EPOCH_END page count mismatch: -HR_EPROTO, unchanged");
	rc = send_epoch(st, 7, all, 10, 0, 0, F_DATA_LEN);
	ok(rc == -HR_EPROTO && unchanged(st, 6), "PAGE_BATCH data shorter than count: -HR_EPROTO");

	/* a page sent twice in one epoch: the later copy wins */
	{
		uint64_t dup[3] = {9, 9, 10};
		ok(send_epoch(st, 7, dup, 3, 0, 0, F_NONE) == 1 && commit_ok(st, 7) &&
		       pages_are(7, dup, 3),
		   "duplicate gfn in one epoch: verified, later copy applied");
	}

	/* non-epoch frames are refused without side effects */
	{
		Hr__Heartbeat hb = HR__HEARTBEAT__INIT;
		hb.seq = 1;
		hb.sender_time_ns = 1;
		ok(feed(st, HR_FT_HEARTBEAT, &hb.base, NULL, 0) == -EINVAL &&
		       hr_staging_next_epoch(st) == 8,
		   "HEARTBEAT is not a staging frame: -EINVAL");
	}

	/* many epochs keep working (buffers reused) */
	rc = 0;
	for (uint64_t e = 8; e < 200 && !rc; e++) {
		unsigned start = (unsigned)(e * 17) % (R0_PAGES + R1_PAGES - 40);
		rc = send_epoch(st, e, all + start, 40, 0, 0, F_NONE) == 1 && commit_ok(st, e) &&
			     pages_are(e, all + start, 40)
			 ? 0
			 : -1;
	}
	ok(rc == 0, "192 further epochs commit");
	hr_staging_get_stats(st, &stats);
	ok(stats.nr_committed == 200 && stats.nr_discarded >= 10,
	   "stats: %llu committed, %llu discarded", (unsigned long long)stats.nr_committed,
	   (unsigned long long)stats.nr_discarded);

	hr_staging_free(st);
	free(mem);
	free(snapshot);
	return tap_done();
}
