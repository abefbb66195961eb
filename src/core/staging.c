/* staging.c - the backup's receive side of one epoch. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "common/err.h"
#include "common/log.h"
#include "core/disk-staging.h"
#include "core/staging.h"

#define SLOT_NONE   UINT32_MAX
#define CHUNK_PAGES 512u /* 2 MiB of staged pages per chunk */
#define SLOT_MAX    (UINT32_MAX - 1)

enum phase {
	PH_IDLE,     /* waiting for EPOCH_BEGIN of next_epoch */
	PH_OPEN,     /* between EPOCH_BEGIN and EPOCH_END */
	PH_VERIFIED, /* EPOCH_END checked, waiting for hr_staging_commit */
};

struct hr_staging {
	char *vm;
	struct hr_mem_region *regions;
	unsigned nr_regions;
	uint64_t nr_gfns;

	/* gfn -> slot; SLOT_NONE when not staged.  Reset per staged slot only. */
	uint32_t *slot_of;
	uint64_t *slot_gfn;
	uint8_t **slot_hva;
	uint32_t nr_slots, slot_cap;
	uint8_t **chunks; /* CHUNK_PAGES pages each, kept across epochs */
	size_t nr_chunks;

	enum phase phase;
	uint64_t next_epoch;   /* last committed + 1 */
	uint64_t expect_pages; /* from EPOCH_BEGIN */
	uint64_t nr_pages;     /* pages received in the open epoch */
	uint64_t bytes;	       /* raw bytes received in the open epoch */
	struct hr_epoch_sum sum;

	uint8_t *state; /* staged blob */
	size_t state_len, state_cap;
	int have_state;
	uint8_t *committed; /* committed blob */
	size_t committed_len, committed_cap;
	int have_committed;

	struct hr_disk_target *dt; /* NULL: the VM has no disks */
	struct hr_disk_batch disk; /* the open epoch's disk writes */
	uint64_t disk_bytes;	   /* ... their data bytes */

	struct hr_staging_stats stats;
	struct iovec *place_iov; /* hr_staging_place's answer */
	uint32_t place_cap;
};

int hr_staging_new(struct hr_staging **st_r, const char *vm, const struct hr_mem_region *regions,
		   unsigned nr_regions, uint64_t next_epoch)
{
	struct hr_staging *st;
	int rc = -ENOMEM;

	*st_r = NULL;
	if (!nr_regions)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->vm = strdup(vm ? vm : "-");
	st->regions = malloc(sizeof(*regions) * nr_regions);
	if (!st->vm || !st->regions)
		goto fail;
	memcpy(st->regions, regions, sizeof(*regions) * nr_regions);
	st->nr_regions = nr_regions;
	st->nr_gfns = hr_layout_nr_gfns(regions, nr_regions);
	if (st->nr_gfns > SLOT_MAX) {
		rc = -HR_ESHAPE;
		goto fail;
	}
	st->slot_of = malloc(sizeof(*st->slot_of) * st->nr_gfns);
	if (!st->slot_of)
		goto fail;
	memset(st->slot_of, 0xff, sizeof(*st->slot_of) * st->nr_gfns);
	rc = hr_epoch_sum_init(&st->sum, next_epoch);
	if (rc)
		goto fail;
	st->next_epoch = next_epoch;
	st->phase = PH_IDLE;
	*st_r = st;
	return 0;
fail:
	hr_staging_free(st);
	return rc;
}

void hr_staging_free(struct hr_staging *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nr_chunks; i++)
		free(st->chunks[i]);
	free(st->chunks);
	free(st->slot_of);
	free(st->place_iov);
	free(st->slot_gfn);
	free(st->slot_hva);
	free(st->state);
	free(st->committed);
	hr_disk_batch_fini(&st->disk);
	free(st->regions);
	free(st->vm);
	hr_epoch_sum_fini(&st->sum);
	free(st);
}

static uint8_t *slot_page(struct hr_staging *st, uint32_t slot)
{
	return st->chunks[slot / CHUNK_PAGES] + (size_t)(slot % CHUNK_PAGES) * HR_PAGE_SIZE;
}

static void reset_slots(struct hr_staging *st)
{
	for (uint32_t i = 0; i < st->nr_slots; i++)
		st->slot_of[st->slot_gfn[i]] = SLOT_NONE;
	st->nr_slots = 0;
	st->have_state = 0;
	st->state_len = 0;
	st->nr_pages = 0;
	st->bytes = 0;
	hr_disk_batch_reset(&st->disk);
	st->disk_bytes = 0;
	st->phase = PH_IDLE;
}

void hr_staging_discard(struct hr_staging *st)
{
	if (st->phase == PH_IDLE)
		return;
	if (st->stats.nr_committed)
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 " discarded (%u pages staged); "
			  "replica keeps epoch %" PRIu64,
			  st->next_epoch, st->nr_slots, st->next_epoch - 1);
	else
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 " discarded (%u pages staged); "
			  "no epoch committed yet",
			  st->next_epoch, st->nr_slots);
	reset_slots(st);
	st->stats.nr_discarded++;
}

/* Discard the open epoch and pass rc through. */
static int fail(struct hr_staging *st, int rc)
{
	hr_staging_discard(st);
	return rc;
}

static int need_open(struct hr_staging *st, const char *what, uint64_t epoch)
{
	if (st->phase != PH_OPEN) {
		log_warnx(st->vm, "staging: %s for epoch %" PRIu64 " outside an open epoch", what,
			  epoch);
		return fail(st, -HR_EPROTO);
	}
	if (epoch != st->next_epoch) {
		log_warnx(st->vm, "staging: %s for epoch %" PRIu64 " inside epoch %" PRIu64, what,
			  epoch, st->next_epoch);
		return fail(st, -HR_EPROTO);
	}
	return 0;
}

void hr_staging_set_disks(struct hr_staging *st, struct hr_disk_target *dt)
{
	st->dt = dt;
}

int hr_staging_disk(struct hr_staging *st, const Hr__DiskWrites *m, const uint8_t *data,
		    size_t data_len)
{
	uint64_t want = 0;
	int rc = need_open(st, "DISK_WRITES", m->epoch);

	if (rc)
		return rc;
	for (size_t i = 0; i < m->n_writes; i++) {
		const Hr__DiskWrite *w = m->writes[i];
		unsigned flags = w->has_flags ? w->flags : 0;
		if (!st->dt || (flags & ~(HR_DW_ZEROES | HR_DW_FLUSH)) ||
		    ((flags & HR_DW_FLUSH) && (w->bytes || w->offset)) ||
		    !hr_disk_target_fits(st->dt, w->disk, w->offset, w->bytes)) {
			log_warnx(st->vm,
				  "staging: epoch %" PRIu64 ": disk write %zu (disk %u, %" PRIu64
				  " bytes at %" PRIu64 ", flags 0x%x) %s",
				  st->next_epoch, i, w->disk, w->bytes, w->offset, flags,
				  st->dt ? "is outside the VM's disks or malformed"
					 : "for a VM without disks here");
			return fail(st, -HR_EPROTO);
		}
		if (!flags)
			want += w->bytes;
	}
	if (want != data_len) {
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 ": DISK_WRITES lists %" PRIu64
			  " data bytes, carries %zu",
			  st->next_epoch, want, data_len);
		return fail(st, -HR_EPROTO);
	}
	const uint8_t *p = data;
	for (size_t i = 0; i < m->n_writes; i++) {
		const Hr__DiskWrite *w = m->writes[i];
		unsigned flags = w->has_flags ? w->flags : 0;
		const uint8_t *d = flags ? NULL : p;
		if ((rc = hr_disk_batch_add(&st->disk, w->disk, w->offset, d, w->bytes, flags)) < 0)
			return fail(st, rc);
		hr_epoch_sum_disk(&st->sum, w->disk, w->offset, w->bytes, flags, d);
		if (d)
			p += w->bytes;
	}
	st->disk_bytes += data_len;
	st->bytes += data_len;
	return 0;
}

int hr_staging_begin(struct hr_staging *st, const Hr__EpochBegin *m)
{
	if (st->phase != PH_IDLE) {
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 " torn: EPOCH_BEGIN %" PRIu64
			  " arrived before its EPOCH_END / commit",
			  st->next_epoch, m->epoch);
		return fail(st, -HR_EPROTO);
	}
	if (m->epoch != st->next_epoch) {
		log_warnx(st->vm,
			  "staging: out-of-order EPOCH_BEGIN %" PRIu64 ", expected %" PRIu64,
			  m->epoch, st->next_epoch);
		st->stats.nr_discarded++;
		return -HR_EPROTO;
	}
	st->phase = PH_OPEN;
	st->expect_pages = m->nr_pages;
	st->nr_pages = 0;
	st->bytes = 0;
	hr_disk_batch_reset(&st->disk);
	st->disk_bytes = 0;
	hr_epoch_sum_reset(&st->sum, m->epoch);
	return 0;
}

/* The staging slot of gfn in the open epoch (allocated on first use). */
static int slot_get(struct hr_staging *st, uint64_t gfn, uint8_t **dst_r)
{
	uint8_t *hva =
	    gfn < st->nr_gfns ? hr_layout_gfn_hva(st->regions, st->nr_regions, gfn) : NULL;
	uint32_t slot;

	if (!hva) {
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 ": gfn 0x%" PRIx64
			  " is outside the guest memory layout",
			  st->next_epoch, gfn);
		return -HR_EPROTO;
	}
	slot = st->slot_of[gfn];
	if (slot == SLOT_NONE) {
		slot = st->nr_slots;
		if (slot == st->slot_cap) {
			uint32_t ncap = st->slot_cap ? st->slot_cap * 2 : CHUNK_PAGES;
			uint64_t *ng = realloc(st->slot_gfn, sizeof(*ng) * ncap);
			if (!ng)
				return -ENOMEM;
			st->slot_gfn = ng;
			uint8_t **nh = realloc(st->slot_hva, sizeof(*nh) * ncap);
			if (!nh)
				return -ENOMEM;
			st->slot_hva = nh;
			st->slot_cap = ncap;
		}
		if (slot / CHUNK_PAGES >= st->nr_chunks) {
			uint8_t **nc = realloc(st->chunks, sizeof(*nc) * (st->nr_chunks + 1));
			if (!nc)
				return -ENOMEM;
			st->chunks = nc;
			nc[st->nr_chunks] = malloc((size_t)CHUNK_PAGES * HR_PAGE_SIZE);
			if (!nc[st->nr_chunks])
				return -ENOMEM;
			st->nr_chunks++;
		}
		st->slot_gfn[slot] = gfn;
		st->slot_hva[slot] = hva;
		st->slot_of[gfn] = slot;
		st->nr_slots++;
	}
	*dst_r = slot_page(st, slot);
	return 0;
}

/* Count one staged page (its bytes are in its slot) into the epoch. */
static void staged(struct hr_staging *st, uint64_t gfn, const uint8_t *page)
{
	hr_epoch_sum_page(&st->sum, gfn, page);
	st->nr_pages++;
	st->bytes += HR_PAGE_SIZE;
}

/* Stage one page. */
static int stage_page(struct hr_staging *st, uint64_t gfn, const uint8_t *src)
{
	uint8_t *dst;
	int rc = slot_get(st, gfn, &dst);

	if (rc)
		return rc;
	memcpy(dst, src, HR_PAGE_SIZE);
	staged(st, gfn, dst);
	return 0;
}

int hr_staging_place(struct hr_staging *st, const Hr__PageBatch *m, struct iovec **iov_r, int *nr_r)
{
	if (st->phase != PH_OPEN || m->epoch != st->next_epoch || m->n_runs || !m->count ||
	    m->n_gfns != m->count)
		return 0;
	for (size_t i = 0; i < m->n_gfns; i++)
		if (m->gfns[i] >= st->nr_gfns || (i && m->gfns[i] <= m->gfns[i - 1]) ||
		    !hr_layout_gfn_hva(st->regions, st->nr_regions, m->gfns[i]))
			return 0; /* the usual path will refuse it with the reason */
	if (m->count > st->place_cap) {
		struct iovec *n = realloc(st->place_iov, m->count * sizeof(*n));
		if (!n)
			return 0;
		st->place_iov = n;
		st->place_cap = m->count;
	}
	for (size_t i = 0; i < m->n_gfns; i++) {
		uint8_t *dst;
		if (slot_get(st, m->gfns[i], &dst) < 0)
			return 0;
		st->place_iov[i] = (struct iovec){dst, HR_PAGE_SIZE};
	}
	*iov_r = st->place_iov;
	*nr_r = (int)m->count;
	return 1;
}

/* A batch hr_staging_place accepted has landed in its slots. */
static int placed_pages(struct hr_staging *st, const Hr__PageBatch *m)
{
	int rc = need_open(st, "PAGE_BATCH", m->epoch);

	if (rc)
		return rc;
	for (size_t i = 0; i < m->n_gfns; i++)
		staged(st, m->gfns[i], slot_page(st, st->slot_of[m->gfns[i]]));
	return 0;
}

int hr_staging_pages(struct hr_staging *st, const Hr__PageBatch *m, const uint8_t *data,
		     size_t data_len)
{
	uint64_t total = m->n_gfns;
	const uint8_t *p = data;
	int rc;

	rc = need_open(st, "PAGE_BATCH", m->epoch);
	if (rc)
		return rc;
	for (size_t i = 0; i < m->n_runs; i++) {
		if (m->runs[i]->nr_pages > m->count) {
			total = UINT64_MAX;
			break;
		}
		total += m->runs[i]->nr_pages;
	}
	if (total != m->count || data_len != (uint64_t)m->count * HR_PAGE_SIZE) {
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 ": PAGE_BATCH says %u pages, lists %s%" PRIu64
			  ", carries %zu bytes",
			  st->next_epoch, m->count, total == UINT64_MAX ? "more than " : "",
			  total == UINT64_MAX ? (uint64_t)m->count : total, data_len);
		return fail(st, -HR_EPROTO);
	}
	for (size_t i = 0; i < m->n_gfns; i++, p += HR_PAGE_SIZE) {
		rc = stage_page(st, m->gfns[i], p);
		if (rc)
			return fail(st, rc);
	}
	for (size_t i = 0; i < m->n_runs; i++) {
		uint64_t start = m->runs[i]->start_gfn;
		for (uint64_t j = 0; j < m->runs[i]->nr_pages; j++, p += HR_PAGE_SIZE) {
			rc = start + j < start ? -HR_EPROTO : stage_page(st, start + j, p);
			if (rc)
				return fail(st, rc);
		}
	}
	return 0;
}

int hr_staging_state(struct hr_staging *st, const Hr__State *m, const uint8_t *data,
		     size_t data_len)
{
	int rc = need_open(st, "STATE", m->epoch);

	if (rc)
		return rc;
	if (st->have_state || m->blob_bytes != data_len) {
		log_warnx(st->vm, "staging: epoch %" PRIu64 ": %s (blob %" PRIu64 ", %zu bytes)",
			  st->next_epoch, st->have_state ? "second STATE" : "STATE length mismatch",
			  m->blob_bytes, data_len);
		return fail(st, -HR_EPROTO);
	}
	if (data_len > st->state_cap) {
		uint8_t *nb = realloc(st->state, data_len);
		if (!nb)
			return fail(st, -ENOMEM);
		st->state = nb;
		st->state_cap = data_len;
	}
	if (data_len)
		memcpy(st->state, data, data_len);
	st->state_len = data_len;
	st->have_state = 1;
	hr_epoch_sum_state(&st->sum, data, data_len);
	st->bytes += data_len;
	return 0;
}

int hr_staging_end(struct hr_staging *st, const Hr__EpochEnd *m)
{
	uint64_t sum;
	int rc = need_open(st, "EPOCH_END", m->epoch);

	if (rc)
		return rc;
	uint64_t nr_dw = m->has_nr_disk_writes ? m->nr_disk_writes : 0;
	uint64_t dw_bytes = m->has_disk_bytes ? m->disk_bytes : 0;
	if (nr_dw != st->disk.nr || dw_bytes != st->disk_bytes) {
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 " incomplete: %zu disk writes / %" PRIu64
			  " bytes received, EPOCH_END says %" PRIu64 " / %" PRIu64,
			  st->next_epoch, st->disk.nr, st->disk_bytes, nr_dw, dw_bytes);
		return fail(st, -HR_EPROTO);
	}
	if (m->nr_pages != st->nr_pages || st->nr_pages != st->expect_pages ||
	    m->bytes != st->bytes) {
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 " incomplete: %" PRIu64 " pages / %" PRIu64
			  " bytes received, EPOCH_BEGIN announced %" PRIu64
			  " pages, EPOCH_END %" PRIu64 " pages / %" PRIu64 " bytes",
			  st->next_epoch, st->nr_pages, st->bytes, st->expect_pages, m->nr_pages,
			  m->bytes);
		return fail(st, -HR_EPROTO);
	}
	sum = hr_epoch_sum_value(&st->sum);
	if (sum != m->xxh3) {
		log_warnx(st->vm,
			  "staging: epoch %" PRIu64 " checksum mismatch: received %016" PRIx64
			  ", computed %016" PRIx64,
			  st->next_epoch, m->xxh3, sum);
		return fail(st, -HR_ECHECKSUM);
	}
	st->phase = PH_VERIFIED;
	return 1;
}

int hr_staging_frame(struct hr_staging *st, const struct hr_frame *f)
{
	switch (f->type) {
	case HR_FT_EPOCH_BEGIN:
		return hr_staging_begin(st, (const Hr__EpochBegin *)f->msg);
	case HR_FT_PAGE_BATCH:
		if (f->placed)
			return placed_pages(st, (const Hr__PageBatch *)f->msg);
		return hr_staging_pages(st, (const Hr__PageBatch *)f->msg, f->data, f->data_len);
	case HR_FT_STATE:
		return hr_staging_state(st, (const Hr__State *)f->msg, f->data, f->data_len);
	case HR_FT_EPOCH_END:
		return hr_staging_end(st, (const Hr__EpochEnd *)f->msg);
	case HR_FT_DISK_WRITES:
		return hr_staging_disk(st, (const Hr__DiskWrites *)f->msg, f->data, f->data_len);
	default:
		return -EINVAL;
	}
}

int hr_staging_commit(struct hr_staging *st, uint64_t *epoch_r, const void **state_r,
		      size_t *state_len_r)
{
	uint64_t epoch = st->next_epoch;

	if (st->phase != PH_VERIFIED)
		return -EINVAL;
	/* disks first: a failure leaves the replica's memory at the last commit */
	if (st->disk.nr) {
		int rc = st->dt ? hr_disk_apply(st->dt, &st->disk) : -EINVAL;
		if (rc < 0) {
			log_err(st->vm,
				"staging: epoch %" PRIu64 " not committed: its %zu disk "
				"writes could not be applied",
				epoch, st->disk.nr);
			reset_slots(st);
			st->stats.nr_discarded++;
			return rc;
		}
	}
	for (uint32_t i = 0; i < st->nr_slots; i++)
		memcpy(st->slot_hva[i], slot_page(st, i), HR_PAGE_SIZE);
	if (st->have_state) {
		uint8_t *b = st->committed;
		size_t cap = st->committed_cap;

		st->committed = st->state;
		st->committed_cap = st->state_cap;
		st->committed_len = st->state_len;
		st->have_committed = 1;
		st->state = b;
		st->state_cap = cap;
	}
	if (state_r)
		*state_r = st->have_state ? st->committed : NULL;
	if (state_len_r)
		*state_len_r = st->have_state ? st->committed_len : 0;
	if (epoch_r)
		*epoch_r = epoch;
	st->stats.nr_committed++;
	st->stats.last_commit_pages = st->nr_pages;
	st->stats.last_commit_bytes = st->bytes;
	st->stats.last_commit_disk_writes = st->disk.nr;
	st->stats.last_commit_disk_bytes = st->disk_bytes;
	log_debug(st->vm, "staging: epoch %" PRIu64 " committed: %u pages, %" PRIu64 " bytes",
		  epoch, st->nr_slots, st->bytes);
	reset_slots(st);
	st->next_epoch = epoch + 1;
	return 0;
}

uint64_t hr_staging_next_epoch(const struct hr_staging *st)
{
	return st->next_epoch;
}

void hr_staging_committed_state(const struct hr_staging *st, const void **state_r,
				size_t *state_len_r)
{
	*state_r = st->have_committed ? st->committed : NULL;
	*state_len_r = st->have_committed ? st->committed_len : 0;
}

void hr_staging_get_stats(const struct hr_staging *st, struct hr_staging_stats *s)
{
	*s = st->stats;
}
