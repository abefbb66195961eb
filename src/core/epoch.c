/* epoch.c - the epoch value and the primary's checkpoint transaction. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/epoch.h"

int hr_epoch_stats_format(const struct hr_epoch_stats *st, char *buf, size_t size)
{
	size_t n = 0;
	int r = 0;

#define HR_X_FMT(f)                                                                                \
	if (n < size) {                                                                            \
		r = snprintf(buf + n, size - n, "%s" #f "=%llu", n ? " " : "",                     \
			     (unsigned long long)st->f);                                           \
		n += r > 0 ? (size_t)r : 0;                                                        \
	}
	HR_EPOCH_STATS_FIELDS(HR_X_FMT)
#undef HR_X_FMT
	return (int)n;
}

static int field_u64(const char *line, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);
	for (const char *p = line; (p = strstr(p, key)); p += kl) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			char *end;
			*v = strtoull(p + kl + 1, &end, 10);
			return end == p + kl + 1 ? -EINVAL : 0;
		}
	}
	return -EINVAL;
}

int hr_epoch_stats_parse(const char *line, struct hr_epoch_stats *st)
{
	int rc = 0;
#define HR_X_PARSE(f)                                                                              \
	if (!rc)                                                                                   \
		rc = field_u64(line, #f, &st->f);
	HR_EPOCH_STATS_FIELDS(HR_X_PARSE)
#undef HR_X_PARSE
	return rc;
}

static int capture_grow(struct hr_capture *c, uint64_t pages)
{
	if (pages <= c->cap_pages)
		return 0;
	if (c->buf)
		munmap(c->buf, c->cap_pages * HR_PAGE_SIZE);
	uint64_t want = pages < 4096 ? 4096 : pages;
	c->buf = mmap(NULL, want * HR_PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->buf == MAP_FAILED) {
		c->buf = NULL;
		c->cap_pages = 0;
		return -ENOMEM;
	}
	c->cap_pages = want;
	return 0;
}

int hr_capture_pages(struct hr_capture *c, struct hr_guestmem *gm, const uint64_t *gfns,
		     uint64_t nr)
{
	uint8_t *ptrs[HR_MAP_BATCH_PAGES];
	int rc;

	if ((rc = capture_grow(c, nr)) < 0)
		return rc;
	for (uint64_t i = 0; i < nr; i += HR_MAP_BATCH_PAGES) {
		unsigned n = nr - i < HR_MAP_BATCH_PAGES ? (unsigned)(nr - i) : HR_MAP_BATCH_PAGES;
		if ((rc = hr_guestmem_map(gm, gfns + i, n, 0, ptrs)) < 0)
			return rc;
		for (unsigned j = 0; j < n; j++) {
			uint8_t *dst = c->buf + (i + j) * HR_PAGE_SIZE;
			if (ptrs[j])
				memcpy(dst, ptrs[j], HR_PAGE_SIZE);
			else
				memset(dst, 0, HR_PAGE_SIZE);
		}
		hr_guestmem_unmap(gm);
	}
	return 0;
}

void hr_capture_fini(struct hr_capture *c)
{
	if (c->buf)
		munmap(c->buf, c->cap_pages * HR_PAGE_SIZE);
	c->buf = NULL;
	c->cap_pages = 0;
}

int hr_epoch_take(struct hr_epoch_src *src, uint64_t epoch, struct hr_epoch *ep)
{
	int rc;

	memset(ep, 0, sizeof(*ep));
	ep->epoch = epoch;
	ep->st.epoch = epoch;
	if ((rc = hr_epoch_sum_init(&ep->sum, epoch)) < 0)
		return rc;

	uint64_t t0 = hr_now_ns();
	if ((rc = src->ops->pause(src->hvm)) < 0)
		goto fail;
	rc = src->ops->dirty_fetch(src->hvm, hr_dirtyset_bits(src->dirty));
	if (!rc)
		rc = src->ops->save_state(src->hvm, &ep->blob, &ep->blob_bytes);
	if (!rc) {
		ep->nr_pages = hr_dirtyset_take(src->dirty, src->gfns);
		ep->gfns = src->gfns;
		rc = hr_capture_pages(&src->capture, src->gm, src->gfns, ep->nr_pages);
		ep->pages = &src->capture;
	}
	if (!rc && src->disklog) {
		/* paused: every write the guest can have seen done is reported */
		hr_disklog_cut(src->disklog, &src->disk);
		ep->disk = &src->disk;
	}
	if (!rc)
		rc = hr_outbuf_seal(src->outbuf, epoch);
	int rrc = src->keep_paused && !rc ? 0 : src->ops->resume(src->hvm);
	uint64_t t1 = hr_now_ns();
	if (!rc)
		rc = rrc;
	if (rc)
		goto fail;
	ep->st.pause_us = (t1 - t0) / 1000;
	ep->st.interval_us = src->last_pause_ns ? (t0 - src->last_pause_ns) / 1000 : 0;
	ep->st.dirty_pages = ep->nr_pages;
	src->last_pause_ns = t0;
	if ((rc = hr_outbuf_held(src->outbuf, epoch, &ep->out)) < 0)
		goto fail;
	return 0;
fail:
	log_err(src->vm, "checkpoint of epoch %" PRIu64 " failed: %s%s%s", epoch, hr_strerror(rc),
		src->ops->last_error ? ": " : "",
		src->ops->last_error ? src->ops->last_error(src->hvm) : "");
	hr_epoch_release(ep);
	return rc;
}

void hr_epoch_release(struct hr_epoch *ep)
{
	free(ep->blob);
	ep->blob = NULL;
	hr_outbuf_held_free(&ep->out);
	hr_epoch_sum_fini(&ep->sum);
}
