/*
 * epoch.h - one checkpoint as a value, and the primary's transaction that
 * takes it: pause -> fetch the dirty set -> save vCPU/device state ->
 * capture the dirty pages -> seal every output channel -> resume.
 *
 * A struct hr_epoch holds everything epoch N is: its dirty page list,
 * where the page contents come from (a stable copy today: struct
 * hr_capture; copy-on-write or in-place later), the backend's state blob,
 * the output every channel still holds (with its offsets, not copied), the
 * running checksum of what was captured, and its stats.  The sender ships
 * it; nothing in it changes once taken.
 */
#ifndef HR_CORE_EPOCH_H
#define HR_CORE_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/dirtyset.h"
#include "core/disklog.h"
#include "core/guestmem.h"
#include "core/outbuf.h"
#include "core/stream.h"

/* The stats of one epoch, each field once: X(name) for every u64 field. */
#define HR_EPOCH_STATS_FIELDS(X)                                                                   \
	X(epoch)       /* epoch number */                                                          \
	X(interval_us) /* achieved: this epoch's pause start to the previous one's */              \
	X(pause_us)    /* guest stopped */                                                         \
	X(dirty_pages) /* pages in the epoch */                                                    \
	X(bytes)       /* sent on the wire for this epoch */                                       \
	X(ack_us)      /* resume -> ack received (backup: commit time) */                          \
	X(trigger)     /* primary: why it ended, enum hr_epoch_end (backup: 0) */

/* Why the primary ended an epoch (hr_epoch_stats.trigger). */
enum hr_epoch_end {
	HR_EPOCH_END_TIME = 0,	 /* epoch_us was up */
	HR_EPOCH_END_OUTPUT = 1, /* it held a network frame (min_epoch_us) */
	HR_EPOCH_END_FORCED = 2, /* at once: the session's first (after the live phase),
				  * output buffer full, guest exit */
};

struct hr_epoch_stats {
#define HR_X_FIELD(f) uint64_t f;
	HR_EPOCH_STATS_FIELDS(HR_X_FIELD)
#undef HR_X_FIELD
};

/* "epoch=1 interval_us=... ack_us=..." (the worker's STATE-DIR/VM.epochs
 * lines, read back by the drill).  Returns snprintf's count. */
int hr_epoch_stats_format(const struct hr_epoch_stats *st, char *buf, size_t size);
/* Parse such a line (fields in any order, unknown keys ignored).  0 or
 * -EINVAL when a field is missing. */
int hr_epoch_stats_parse(const char *line, struct hr_epoch_stats *st);

/* A stable copy of an epoch's pages (anonymous memory, grown, reused). */
struct hr_capture {
	uint8_t *buf;
	uint64_t cap_pages;
};

/* Copy the pages of gfns (a gfn that is not RAM becomes a zero page).
 * Runs while the guest is paused, so it does nothing else: the checksum is
 * taken by the sender after resume.  0 or -errno. */
int hr_capture_pages(struct hr_capture *c, struct hr_guestmem *gm, const uint64_t *gfns,
		     uint64_t nr);
static inline const uint8_t *hr_capture_page(const struct hr_capture *c, uint64_t i)
{
	return c->buf + i * HR_PAGE_SIZE;
}
void hr_capture_fini(struct hr_capture *c);

/* What the primary's transaction works on (owned by the engine). */
struct hr_epoch_src {
	const char *vm;
	const struct hr_backend_ops *ops;
	struct hr_vm *hvm;
	struct hr_guestmem *gm;
	struct hr_dirtyset *dirty; /* carries pages over from the live phase */
	struct hr_outbuf *outbuf;
	uint64_t *gfns; /* scratch: room for every gfn */
	struct hr_capture capture;
	uint64_t last_pause_ns;
	int keep_paused; /* the next take leaves the guest paused (a migration's hand-off) */
	struct hr_disklog *disklog; /* the VM's disk writes (NULL: no disks) */
	struct hr_disk_batch disk;  /* the taken epoch's, cut from disklog */
};

struct hr_epoch {
	uint64_t epoch;
	uint64_t nr_pages;
	const uint64_t *gfns;		/* nr_pages, ascending */
	const struct hr_capture *pages; /* page i is hr_capture_page(pages, i) */
	void *blob;			/* backend state (owned) */
	size_t blob_bytes;
	struct hr_out_held out;	 /* held output of every epoch <= this one */
	struct hr_epoch_sum sum; /* the sender adds pages and state */
	struct hr_epoch_stats st;
	int handoff; /* the sender marks it the migration's final epoch (EpochBegin.handoff) */
	const struct hr_disk_batch *disk; /* its disk writes (NULL: none) */
};

/*
 * The primary transaction for epoch `epoch`.  The guest is paused only for
 * fetch, save, capture and seal; on any failure it is resumed and the
 * epoch is not taken (-errno).  Fills ep (release with hr_epoch_release).
 */
int hr_epoch_take(struct hr_epoch_src *src, uint64_t epoch, struct hr_epoch *ep);
void hr_epoch_release(struct hr_epoch *ep);

#endif
