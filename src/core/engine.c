/*
 * engine.c - the epoch engine: continuous checkpointing of one VM from a
 * primary to a backup, with output commit, and promotion of the backup.
 * See engine.h for the contract and docs/stream-format.md for the wire.
 *
 * The state frame of every epoch carries an engine envelope around the
 * backend's blob:
 *
 *   u32 magic 'HREN' | u32 version (1) | u64 console offset | u64 console bytes
 *   console bytes (every output byte the primary still holds, epoch <= N)
 *   backend state blob
 *
 * so that a promoted backup can release the output the primary might not
 * have released; offsets make the repeat harmless (the sink dedups).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/dirtyset.h"
#include "core/engine.h"
#include "core/outbuf.h"
#include "core/staging.h"
#include "core/stream.h"
#include "ha/failover.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define BATCH_PAGES	  256u	     /* pages per PAGE_BATCH frame (1 MiB) */
#define CONSOLE_CAP_BYTES (4u << 20) /* output held per VM before the guest waits */
#define SYNC_MAX_ROUNDS	  8
#define SYNC_DONE_PAGES	  2048u /* stop live sync when a round is this small */

struct hr_engine {
	struct hr_engine_config cfg;
	char name[64];
	const struct hr_backend_ops *ops;
	struct hr_vm *vm;
	const struct hr_mem_region *regions;
	unsigned nr_regions;
	uint64_t nr_gfns;
	int ctl_pipe[2];
	int fd;

	/* primary */
	struct hr_outbuf *outbuf;
	struct hr_dirtyset *dirty;
	uint64_t *gfns; /* scratch list of dirty gfns */
	uint8_t *copy;	/* staging copy of the dirty pages of one epoch */
	size_t copy_pages;
	uint64_t console_dropped;

	/* backup */
	uint64_t console_next; /* promoted: offset of the next new output byte */

	/* both */
	volatile int guest_exited;
	int guest_exit_code;
	pthread_mutex_t stats_lock;
	struct hr_epoch_stats last;
	uint64_t nr_epochs;
};

enum {
	CTL_STOP = 's',
	CTL_ABORT = 'a',
	CTL_PROMOTE = 'p',
	CTL_GUEST_EXIT = 'x',
	CTL_CONSOLE_FULL = 'f'
};

static void ctl_send(struct hr_engine *e, char c)
{
	int saved = errno;
	if (write(e->ctl_pipe[1], &c, 1) < 0) {
	}
	errno = saved;
}

void hr_engine_stop(struct hr_engine *e)
{
	ctl_send(e, CTL_STOP);
}

void hr_engine_abort(struct hr_engine *e)
{
	ctl_send(e, CTL_ABORT);
}

void hr_engine_promote(struct hr_engine *e)
{
	ctl_send(e, CTL_PROMOTE);
}

int hr_engine_envelope(uint64_t console_offset, const void *console, size_t console_bytes,
		       const void *blob, size_t blob_bytes, uint8_t **buf_r, size_t *len_r)
{
	struct hr_state_envelope eh = {HR_ENVELOPE_MAGIC, HR_ENVELOPE_VERSION, console_offset,
				       console_bytes};
	size_t len = sizeof(eh) + console_bytes + blob_bytes;
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &eh, sizeof(eh));
	if (console_bytes)
		memcpy(buf + sizeof(eh), console, console_bytes);
	if (blob_bytes)
		memcpy(buf + sizeof(eh) + console_bytes, blob, blob_bytes);
	*buf_r = buf;
	*len_r = len;
	return 0;
}

void hr_engine_stats(struct hr_engine *e, struct hr_epoch_stats *last_r, uint64_t *nr_epochs_r)
{
	pthread_mutex_lock(&e->stats_lock);
	if (last_r)
		*last_r = e->last;
	if (nr_epochs_r)
		*nr_epochs_r = e->nr_epochs;
	pthread_mutex_unlock(&e->stats_lock);
}

static void emit(struct hr_engine *e, enum hr_engine_event ev, const struct hr_epoch_stats *st)
{
	if (e->cfg.on_event)
		e->cfg.on_event(e->cfg.event_opaque, ev, st);
}

int hr_engine_new(struct hr_engine **eng_r, const struct hr_engine_config *cfg)
{
	struct hr_engine *e = calloc(1, sizeof(*e));
	*eng_r = NULL;
	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	snprintf(e->name, sizeof(e->name), "%s", cfg->name ? cfg->name : "vm");
	e->cfg.name = e->name;
	e->ops = cfg->ops;
	e->fd = -1;
	pthread_mutex_init(&e->stats_lock, NULL);
	if (pipe2(e->ctl_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		int rc = -errno;
		free(e);
		return rc;
	}
	*eng_r = e;
	return 0;
}

void hr_engine_free(struct hr_engine *e)
{
	if (!e)
		return;
	if (e->vm || e->ops)
		e->ops->close(e->vm);
	hr_outbuf_free(e->outbuf);
	hr_dirtyset_free(e->dirty);
	free(e->gfns);
	if (e->copy)
		munmap(e->copy, e->copy_pages * HR_PAGE_SIZE);
	close(e->ctl_pipe[0]);
	close(e->ctl_pipe[1]);
	pthread_mutex_destroy(&e->stats_lock);
	free(e);
}

/* ---- guest callbacks (vCPU threads) ---- */

static int primary_console(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	if (chan != 0)
		return 0;
	int rc = hr_outbuf_append(e->outbuf, buf, len);
	if (rc == -ENOBUFS) {
		ctl_send(e, CTL_CONSOLE_FULL);
		rc = hr_outbuf_append_wait(e->outbuf, buf, len, 1000);
	}
	if (rc < 0)
		__atomic_add_fetch(&e->console_dropped, len, __ATOMIC_RELAXED);
	return 0;
}

static int promoted_console(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	if (chan != 0)
		return 0;
	uint64_t off = __atomic_fetch_add(&e->console_next, len, __ATOMIC_RELAXED);
	if (e->cfg.console_sink)
		e->cfg.console_sink(e->cfg.console_opaque, off, buf, len);
	return 0;
}

static void on_guest_exit(void *opaque, enum hr_exit_reason why, int code)
{
	struct hr_engine *e = opaque;
	if (why == HR_EXIT_ERROR)
		log_err(e->name, "guest stopped on a VM error: %s",
			e->ops->last_error ? e->ops->last_error(e->vm) : "unknown");
	else
		log_info(e->name, "guest exited (%s, code %d)",
			 why == HR_EXIT_DEBUG_PORT ? "debug-exit port"
			 : why == HR_EXIT_SHUTDOWN ? "shutdown"
						   : "halt",
			 code);
	e->guest_exit_code = code;
	e->guest_exited = (int)why;
	ctl_send(e, CTL_GUEST_EXIT);
}

static int release_sink(void *opaque, uint64_t epoch, const void *buf, size_t len)
{
	struct hr_engine *e = opaque;
	(void)epoch;
	if (e->cfg.console_sink) {
		/* offsets: the outbuf has released exactly the bytes before these */
		struct hr_outbuf_stats s;
		hr_outbuf_get_stats(e->outbuf, &s);
		e->cfg.console_sink(e->cfg.console_opaque, s.released_bytes, buf, len);
	}
	return 0;
}

/* ---- helpers ---- */

static int open_vm(struct hr_engine *e, struct hr_vm_config *vc)
{
	int rc = e->ops->open(&e->vm, vc);
	if (rc < 0) {
		log_err(e->name, "cannot build the VM: %s%s%s", hr_strerror(rc),
			e->vm && e->ops->last_error ? ": " : "",
			e->vm && e->ops->last_error ? e->ops->last_error(e->vm) : "");
		return rc;
	}
	e->ops->mem_layout(e->vm, &e->regions, &e->nr_regions);
	e->nr_gfns = hr_layout_nr_gfns(e->regions, e->nr_regions);
	return 0;
}

/* Wait for the fd to be readable or a control byte; returns the control byte,
 * 0 when fd is readable, -ETIMEDOUT. */
static int wait_fd(struct hr_engine *e, int timeout_ms)
{
	struct pollfd p[2] = {{e->ctl_pipe[0], POLLIN, 0}, {e->fd, POLLIN, 0}};
	int n = poll(p, e->fd >= 0 ? 2 : 1, timeout_ms);
	if (n < 0)
		return errno == EINTR ? -ETIMEDOUT : -errno;
	if (p[0].revents & POLLIN) {
		char c;
		if (read(e->ctl_pipe[0], &c, 1) == 1)
			return c;
	}
	if (e->fd >= 0 && p[1].revents)
		return 0;
	return -ETIMEDOUT;
}

/* Blocking receive of one frame with a time limit, handling control bytes. */
static int recv_frame(struct hr_engine *e, struct hr_frame_reader *rd, struct hr_frame *f,
		      int timeout_ms, int *ctl_r)
{
	uint64_t deadline = hr_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	*ctl_r = 0;
	for (;;) {
		int rc = hr_frame_reader_next(rd, f);
		if (rc == 1)
			return 0;
		if (rc < 0)
			return rc;
		uint64_t now = hr_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		int w = wait_fd(e, (int)((deadline - now) / 1000000ull) + 1);
		if (w > 0) {
			*ctl_r = w;
			return -EINTR;
		}
		if (w == -ETIMEDOUT)
			continue;
		if (w < 0)
			return w;
		ssize_t n = hr_frame_reader_fill(rd, e->fd);
		if (n == 0)
			return hr_frame_reader_pending(rd) ? -HR_EPROTO : -ECONNRESET;
		if (n < 0 && n != -EAGAIN)
			return (int)n;
	}
}

/* Small frames (acks, epoch ends) must not wait for Nagle + delayed ACK. */
static void peer_socket_setup(int fd)
{
	int one = 1;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		   sizeof(one)); /* fails harmlessly on AF_UNIX */
}

static void send_error(struct hr_engine *e, int code, const char *text);

/* ---- primary ---- */

static int page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (unsigned i = 0; i < HR_PAGE_SIZE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

/* Send pages straight from guest memory (live sync; the guest may be running). */
static int send_live_pages(struct hr_engine *e, const uint64_t *gfns, uint64_t nr,
			   uint64_t *bytes_r)
{
	const uint8_t *ptrs[BATCH_PAGES];
	uint64_t g[BATCH_PAGES];
	unsigned n = 0;
	int rc;

	for (uint64_t i = 0; i <= nr; i++) {
		if (i < nr) {
			uint8_t *p = hr_layout_gfn_hva(e->regions, e->nr_regions, gfns[i]);
			if (!p)
				continue;
			g[n] = gfns[i];
			ptrs[n++] = p;
		}
		if (n == BATCH_PAGES || (i == nr && n)) {
			if ((rc = hr_stream_send_pages(e->fd, 0, g, ptrs, n)) < 0)
				return rc;
			*bytes_r += (uint64_t)n * HR_PAGE_SIZE;
			n = 0;
		}
	}
	return 0;
}

/* Collect the dirty bitmap into e->gfns; returns the count. */
static uint64_t bitmap_to_list(struct hr_engine *e)
{
	return hr_dirtyset_take(e->dirty, e->gfns);
}

static int ensure_copy(struct hr_engine *e, uint64_t pages)
{
	if (pages <= e->copy_pages)
		return 0;
	if (e->copy)
		munmap(e->copy, e->copy_pages * HR_PAGE_SIZE);
	uint64_t want = pages < 4096 ? 4096 : pages;
	e->copy = mmap(NULL, want * HR_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (e->copy == MAP_FAILED) {
		e->copy = NULL;
		e->copy_pages = 0;
		return -ENOMEM;
	}
	e->copy_pages = want;
	return 0;
}

/*
 * One checkpoint: pause, collect, save, copy, seal, resume, then send and
 * wait for the ack.  Returns 0, or < 0 if the backup is gone.
 */
static int checkpoint(struct hr_engine *e, uint64_t epoch, uint64_t *last_pause_ns,
		      struct hr_frame_reader *rd, int *ctl_r)
{
	struct hr_epoch_stats st = {.epoch = epoch};
	void *blob = NULL;
	size_t blob_len = 0;
	uint8_t *cons = NULL;
	size_t cons_len = 0;
	uint64_t cons_off = 0;
	int rc;

	*ctl_r = 0;
	uint64_t t0 = hr_now_ns();
	if ((rc = e->ops->pause(e->vm)) < 0)
		return rc;
	rc = e->ops->dirty_fetch(e->vm, hr_dirtyset_bits(e->dirty));
	if (!rc)
		rc = e->ops->save_state(e->vm, &blob, &blob_len);
	uint64_t nr = rc ? 0 : bitmap_to_list(e);
	if (!rc)
		rc = ensure_copy(e, nr);
	if (!rc) {
		for (uint64_t i = 0; i < nr; i++) {
			uint8_t *p = hr_layout_gfn_hva(e->regions, e->nr_regions, e->gfns[i]);
			if (p)
				memcpy(e->copy + i * HR_PAGE_SIZE, p, HR_PAGE_SIZE);
			else
				memset(e->copy + i * HR_PAGE_SIZE, 0, HR_PAGE_SIZE);
		}
		rc = hr_outbuf_seal(e->outbuf, epoch);
	}
	e->ops->resume(e->vm);
	uint64_t t1 = hr_now_ns();
	if (rc) {
		free(blob);
		log_err(e->name, "checkpoint of epoch %" PRIu64 " failed: %s", epoch,
			hr_strerror(rc));
		return rc;
	}
	st.pause_us = (t1 - t0) / 1000;
	st.interval_us = *last_pause_ns ? (t0 - *last_pause_ns) / 1000 : 0;
	*last_pause_ns = t0;
	st.dirty_pages = nr;

	/* the envelope: held console output + backend state */
	if ((rc = hr_outbuf_copy_held(e->outbuf, epoch, &cons, &cons_len, &cons_off)) < 0) {
		free(blob);
		return rc;
	}
	struct hr_epoch_sum sum;
	hr_epoch_sum_init(&sum, epoch);
	Hr__EpochBegin eb = HR__EPOCH_BEGIN__INIT;
	eb.epoch = epoch;
	eb.nr_pages = nr;
	eb.has_full = epoch == 0;
	eb.full = epoch == 0;
	rc = hr_stream_send(e->fd, HR_FT_EPOCH_BEGIN, HR_FRAME_MANDATORY, &eb.base, NULL, 0);
	for (uint64_t i = 0; !rc && i < nr; i += BATCH_PAGES) {
		unsigned n = (unsigned)(nr - i < BATCH_PAGES ? nr - i : BATCH_PAGES);
		const uint8_t *ptrs[BATCH_PAGES];
		for (unsigned j = 0; j < n; j++) {
			ptrs[j] = e->copy + (i + j) * HR_PAGE_SIZE;
			hr_epoch_sum_page(&sum, e->gfns[i + j], ptrs[j]);
		}
		rc = hr_stream_send_pages(e->fd, epoch, e->gfns + i, ptrs, n);
	}
	uint64_t state_bytes = sizeof(struct hr_state_envelope) + cons_len + blob_len;
	if (!rc) {
		uint8_t *env;
		size_t env_len;
		rc = hr_engine_envelope(cons_off, cons, cons_len, blob, blob_len, &env, &env_len);
		if (!rc) {
			hr_epoch_sum_state(&sum, env, env_len);
			Hr__State sm = HR__STATE__INIT;
			sm.epoch = epoch;
			sm.blob_bytes = env_len;
			struct iovec iov = {env, env_len};
			rc = hr_stream_send(e->fd, HR_FT_STATE, HR_FRAME_MANDATORY, &sm.base, &iov,
					    1);
			free(env);
		}
	}
	if (!rc) {
		Hr__EpochEnd ee = HR__EPOCH_END__INIT;
		ee.epoch = epoch;
		ee.nr_pages = nr;
		ee.bytes = nr * HR_PAGE_SIZE + state_bytes;
		ee.xxh3 = hr_epoch_sum_value(&sum);
		rc = hr_stream_send(e->fd, HR_FT_EPOCH_END, HR_FRAME_MANDATORY, &ee.base, NULL, 0);
	}
	hr_epoch_sum_fini(&sum);
	free(blob);
	free(cons);
	st.bytes = nr * HR_PAGE_SIZE + state_bytes;
	if (rc) {
		log_warnx(e->name, "sending epoch %" PRIu64 " failed: %s", epoch, hr_strerror(rc));
		return rc;
	}

	/*
	 * Wait for the ack; the guest runs meanwhile.  A backup that is merely
	 * silent (no FIN, no reset: a partition, a hung host) may be promoting
	 * itself right now, so output stays held for as long as that lasts:
	 * releasing it could make two hosts speak for the VM (contract: one
	 * primary).  Only an ended connection counts as the backup's death.
	 */
	int ack_timeout_ms = (int)(e->cfg.silence_ms ? e->cfg.silence_ms * 4 : 10000);
	int silent = 0;
	for (;;) {
		struct hr_frame f;
		rc = recv_frame(e, rd, &f, ack_timeout_ms, ctl_r);
		if (rc == -EINTR) {
			if (*ctl_r == CTL_CONSOLE_FULL) {
				*ctl_r = 0;
				continue;
			}
			return rc;
		}
		if (rc == -ETIMEDOUT) {
			if (!silent++)
				log_warnx(e->name,
					  "+backup-silent: no ack for epoch %" PRIu64 " in %d ms; "
					  "holding output until it answers or the connection ends",
					  epoch, ack_timeout_ms);
			continue;
		}
		if (rc < 0) {
			log_warnx(e->name, "no ack for epoch %" PRIu64 ": %s", epoch,
				  hr_strerror(rc));
			return rc;
		}
		if (f.type == HR_FT_ACK) {
			uint64_t acked = ((Hr__Ack *)f.msg)->epoch;
			hr_frame_release(&f);
			if (silent)
				log_info(e->name, "backup answered again after %d ms of silence",
					 silent * ack_timeout_ms);
			if (acked != epoch) {
				log_err(e->name, "ack for epoch %" PRIu64 ", expected %" PRIu64,
					acked, epoch);
				return -HR_EPROTO;
			}
			break;
		}
		if (f.type == HR_FT_ERROR) {
			Hr__Error *er = (Hr__Error *)f.msg;
			log_err(e->name, "backup reports: %s", er->text ? er->text : "error");
			rc = er->code < 0 ? er->code : -HR_EPROTO;
			hr_frame_release(&f);
			return rc;
		}
		hr_frame_release(&f); /* heartbeats etc. */
	}
	uint64_t t2 = hr_now_ns();
	st.ack_us = (t2 - t1) / 1000;
	hr_outbuf_release(e->outbuf, epoch, release_sink, e);

	pthread_mutex_lock(&e->stats_lock);
	e->last = st;
	e->nr_epochs++;
	pthread_mutex_unlock(&e->stats_lock);
	emit(e, epoch == 0 ? HR_EV_SYNCED : HR_EV_EPOCH, &st);
	return 0;
}

/* Live sync: all non-zero pages while the guest runs, then dirty rounds. */
static int live_sync(struct hr_engine *e)
{
	uint64_t bytes = 0, total = 0;
	int rc;

	/* round 0: every page the guest has touched (a fresh replica is all zero) */
	uint64_t n = 0;
	for (unsigned r = 0; r < e->nr_regions; r++) {
		const struct hr_mem_region *reg = &e->regions[r];
		uint64_t pages = reg->bytes >> HR_PAGE_SHIFT;
		unsigned char vec[4096];
		for (uint64_t p = 0; p < pages; p += sizeof(vec)) {
			uint64_t cnt = pages - p < sizeof(vec) ? pages - p : sizeof(vec);
			if (mincore(reg->hva + p * HR_PAGE_SIZE, cnt * HR_PAGE_SIZE, vec) < 0)
				memset(vec, 1, cnt);
			for (uint64_t i = 0; i < cnt; i++) {
				if (!(vec[i] & 1))
					continue;
				if (page_is_zero(reg->hva + (p + i) * HR_PAGE_SIZE))
					continue;
				e->gfns[n++] = (reg->gpa >> HR_PAGE_SHIFT) + p + i;
			}
		}
	}
	if ((rc = send_live_pages(e, e->gfns, n, &bytes)) < 0)
		return rc;
	total += n;
	log_info(e->name, "sync: round 0 sent %" PRIu64 " pages", n);

	for (int round = 1; round <= SYNC_MAX_ROUNDS; round++) {
		e->ops->pause(e->vm);
		rc = e->ops->dirty_fetch(e->vm, hr_dirtyset_bits(e->dirty));
		e->ops->resume(e->vm);
		if (rc < 0)
			return rc;
		n = bitmap_to_list(e);
		if (n < SYNC_DONE_PAGES) {
			/* put them back: epoch 0 (stop-and-copy) sends them */
			for (uint64_t i = 0; i < n; i++)
				hr_dirtyset_add(e->dirty, e->gfns[i]);
			break;
		}
		if ((rc = send_live_pages(e, e->gfns, n, &bytes)) < 0)
			return rc;
		total += n;
		log_debug(e->name, "sync: round %d sent %" PRIu64 " pages", round, n);
	}
	log_info(e->name, "sync: %" PRIu64 " pages (%" PRIu64 " MiB) sent live", total,
		 bytes >> 20);
	return 0;
}

static int primary_handshake(struct hr_engine *e, struct hr_frame_reader *rd)
{
	int ctl, rc;

	rc = hr_stream_send_hello(e->fd, HR__ROLE__ROLE_PRIMARY, e->name, e->ops->name,
				  e->cfg.vm.mem_bytes, e->cfg.vm.nr_vcpus, e->regions,
				  e->nr_regions, e->cfg.epoch_us);
	if (rc < 0)
		return rc;
	struct hr_frame f;
	rc = recv_frame(e, rd, &f, 10000, &ctl);
	if (rc < 0)
		return rc;
	if (f.type != HR_FT_HELLO_ACK) {
		hr_frame_release(&f);
		return -HR_EPROTO;
	}
	Hr__HelloAck *a = (Hr__HelloAck *)f.msg;
	if (!a->accepted) {
		log_err(e->name, "backup refused: %s", a->error_text ? a->error_text : "no reason");
		rc = a->has_error_code && a->error_code < 0 ? a->error_code : -EPERM;
	}
	hr_frame_release(&f);
	return rc;
}

/*
 * After a send or receive error: was it because the backup took over?  Its
 * last words may still sit in our receive buffer even when a send already
 * failed with EPIPE.  Returns 1 if the backup announced a promotion.
 */
static int backup_took_over(struct hr_engine *e, struct hr_frame_reader *rd)
{
	uint64_t deadline = hr_now_ns() + 100 * 1000000ull;
	if (e->fd < 0)
		return 0;
	for (;;) {
		struct hr_frame f;
		int r = hr_frame_reader_next(rd, &f);
		if (r == 1) {
			int promoted =
			    f.type == HR_FT_ERROR && ((Hr__Error *)f.msg)->code == -HR_EPROMOTED;
			hr_frame_release(&f);
			if (promoted)
				return 1;
			continue;
		}
		if (r < 0 || hr_now_ns() >= deadline)
			return 0;
		struct pollfd p = {e->fd, POLLIN, 0};
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t n = hr_frame_reader_fill(rd, e->fd);
		if (n == 0 || (n < 0 && n != -EAGAIN))
			return 0;
	}
}

static int primary_unprotected(struct hr_engine *e)
{
	struct hr_outbuf_stats s;
	int ctl;

	log_warnx(e->name, "+backup-lost: the guest keeps running unprotected");
	if (e->fd >= 0) {
		close(e->fd);
		e->fd = -1;
	}
	/* No backup: output is no longer held.  Seal the open epoch now and then
	 * every few ms, releasing as it comes. */
	hr_outbuf_get_stats(e->outbuf, &s);
	uint64_t epoch = s.open_epoch;
	if (epoch)
		hr_outbuf_release(e->outbuf, epoch - 1, release_sink, e);
	emit(e, HR_EV_UNPROTECTED, NULL);
	for (;;) {
		ctl = wait_fd(e, 20);
		if (ctl == CTL_ABORT) {
			e->ops->pause(e->vm); /* as a crash: nothing more leaves */
			return 0;
		}
		hr_outbuf_seal(e->outbuf, epoch);
		hr_outbuf_release(e->outbuf, epoch, release_sink, e);
		epoch++;
		if (ctl == CTL_STOP || ctl == CTL_GUEST_EXIT)
			return ctl == CTL_GUEST_EXIT ? 1 : 0;
	}
}

int hr_engine_run_primary(struct hr_engine *e, int peer_fd)
{
	struct hr_vm_config vc = e->cfg.vm;
	struct hr_frame_reader rd;
	int rc, ctl = 0;

	e->fd = peer_fd;
	peer_socket_setup(peer_fd);
	hr_frame_reader_init(&rd, e->name);
	vc.name = e->name;
	vc.emit = primary_console;
	vc.emit_opaque = e;
	vc.on_exit = on_guest_exit;
	vc.exit_opaque = e;
	if ((rc = hr_outbuf_new(&e->outbuf, e->name, CONSOLE_CAP_BYTES, 0)) < 0)
		goto out;
	if ((rc = open_vm(e, &vc)) < 0)
		goto out;
	hr_dirtyset_new(&e->dirty, e->nr_gfns);
	e->gfns = malloc(e->nr_gfns * sizeof(uint64_t));
	if (!e->dirty || !e->gfns) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = primary_handshake(e, &rd)) < 0) {
		log_err(e->name, "handshake with the backup failed: %s", hr_strerror(rc));
		goto out;
	}
	if ((rc = e->ops->dirty_start(e->vm)) < 0 || (rc = e->ops->resume(e->vm)) < 0)
		goto out;
	log_info(e->name, "guest started; synchronising the backup");
	if ((rc = live_sync(e)) < 0)
		goto lost;

	uint64_t last_pause = 0;
	for (uint64_t epoch = 0;; epoch++) {
		rc = checkpoint(e, epoch, &last_pause, &rd, &ctl);
		if (epoch == 0 && !rc)
			log_info(e->name, "+protected: backup holds a complete copy (epoch 0)");
		if ((rc == -EINTR && (ctl == CTL_STOP || ctl == CTL_ABORT)) || ctl == CTL_ABORT)
			break;
		if (rc == -EINTR && ctl == CTL_GUEST_EXIT)
			rc = 0; /* ship the final epoch below, then stop */
		if (rc < 0)
			goto lost;
		if (e->guest_exited || (e->cfg.max_epochs && epoch + 1 >= e->cfg.max_epochs))
			break;
		/* sleep until the next epoch is due, waking for control bytes */
		uint64_t due = last_pause + e->cfg.epoch_us * 1000ull;
		for (;;) {
			uint64_t now = hr_now_ns();
			if (now >= due)
				break;
			struct pollfd p = {e->ctl_pipe[0], POLLIN, 0};
			int ms = (int)((due - now + 999999) / 1000000);
			if (poll(&p, 1, ms) > 0) {
				char c;
				if (read(e->ctl_pipe[0], &c, 1) == 1) {
					if (c == CTL_STOP || c == CTL_ABORT) {
						ctl = c;
						goto stopped;
					}
					if (c == CTL_CONSOLE_FULL || c == CTL_GUEST_EXIT)
						break; /* checkpoint now */
				}
			}
		}
	}
stopped:
	rc = 0;
	if (ctl == CTL_ABORT) {
		/* as if this process died: the guest stops, nothing more is said */
		e->ops->pause(e->vm);
		if (e->fd >= 0) {
			shutdown(e->fd, SHUT_RDWR);
		}
		log_warnx(e->name, "replication aborted%s",
			  e->guest_exited ? "" : "; guest stopped");
		goto out;
	}
	/* orderly end: the backup must not take over */
	send_error(e, 0, e->guest_exited ? "guest exited" : "primary stopped on purpose");
	if (e->guest_exited) {
		emit(e, HR_EV_GUEST_EXIT, NULL);
		rc = e->guest_exit_code;
	}
	goto out;
lost:
	if (rc == -EINTR && (ctl == CTL_STOP || ctl == CTL_ABORT))
		goto stopped;
	if (rc == -HR_EPROMOTED || backup_took_over(e, &rd)) {
		e->ops->pause(e->vm);
		log_warnx(e->name, "+demoted: the backup took over; guest stopped here");
		rc = -HR_EPROMOTED;
		goto out;
	}
	if (!e->vm)
		goto out;
	if (primary_unprotected(e) == 1) {
		emit(e, HR_EV_GUEST_EXIT, NULL);
		rc = e->guest_exit_code;
	} else {
		rc = 0;
	}
out:
	hr_frame_reader_fini(&rd);
	if (e->console_dropped)
		log_err(e->name, "%" PRIu64 " console bytes could not be held and were dropped",
			e->console_dropped);
	return rc;
}

/* ---- backup ---- */

static void send_error(struct hr_engine *e, int code, const char *text)
{
	Hr__Error er = HR__ERROR__INIT;
	er.code = code;
	er.text = (char *)text;
	hr_stream_send(e->fd, HR_FT_ERROR, HR_FRAME_MANDATORY, &er.base, NULL, 0);
}

static int backup_handshake(struct hr_engine *e, struct hr_frame_reader *rd)
{
	struct hr_frame f;
	int ctl, rc = recv_frame(e, rd, &f, 10000, &ctl);
	if (rc < 0)
		return rc;
	if (f.type != HR_FT_HELLO) {
		hr_frame_release(&f);
		log_err(NULL, "replication peer did not start with a hello");
		return -HR_EPROTO;
	}
	Hr__Hello *h = (Hr__Hello *)f.msg;
	Hr__HelloAck a = HR__HELLO_ACK__INIT;
	rc = hr_stream_check_hello(h, h->vm_name);
	const struct hr_backend_ops *ops = hr_backend_find(h->backend);
	if (!rc && !ops) {
		log_err(h->vm_name, "primary uses backend '%s', not built here", h->backend);
		rc = -HR_EBACKEND;
	}
	if (!rc && (h->role != HR__ROLE__ROLE_PRIMARY || h->page_bytes != HR_PAGE_SIZE))
		rc = -HR_ESHAPE;
	if (!rc) {
		snprintf(e->name, sizeof(e->name), "%s", h->vm_name);
		e->ops = ops;
		e->cfg.vm.mem_bytes = h->mem_bytes;
		e->cfg.vm.nr_vcpus = h->nr_vcpus;
		e->cfg.vm.kernel_path = NULL;
		if (h->has_epoch_us)
			e->cfg.epoch_us = h->epoch_us;
	}
	a.accepted = rc == 0;
	a.has_protocol_version = 1;
	a.protocol_version = HR_PROTO_VERSION;
	if (rc) {
		a.has_error_code = 1;
		a.error_code = rc;
		a.error_text = (char *)hr_strerror(rc);
	}
	a.has_next_epoch = 1;
	a.next_epoch = 0;
	unsigned nreg = (unsigned)h->n_regions;
	uint64_t gpa0 = nreg ? h->regions[0]->gpa : 0;
	hr_frame_release(&f);
	if (!rc) {
		struct hr_vm_config vc = e->cfg.vm;
		vc.name = e->name;
		vc.emit = promoted_console;
		vc.emit_opaque = e;
		vc.on_exit = on_guest_exit;
		vc.exit_opaque = e;
		rc = open_vm(e, &vc);
		if (!rc && (nreg != e->nr_regions || (nreg && gpa0 != e->regions[0].gpa))) {
			log_err(e->name, "primary's memory layout differs from the replica's");
			rc = -HR_ESHAPE;
		}
		if (rc) {
			a.accepted = 0;
			a.has_error_code = 1;
			a.error_code = rc;
			a.error_text = (char *)hr_strerror(rc);
		}
	}
	int src = hr_stream_send(e->fd, HR_FT_HELLO_ACK, HR_FRAME_MANDATORY, &a.base, NULL, 0);
	return rc ? rc : src;
}

/* Apply a live-sync page batch straight into the replica (nothing committed yet). */
static int apply_live_batch(struct hr_engine *e, const struct hr_frame *f)
{
	const Hr__PageBatch *pb = (const Hr__PageBatch *)f->msg;
	if (pb->n_runs || pb->n_gfns != pb->count ||
	    (uint64_t)f->data_len != (uint64_t)pb->count * HR_PAGE_SIZE)
		return -HR_EPROTO;
	size_t n = pb->n_gfns;
	/* A contiguous batch (the usual case in the first sync round) lands in
	 * fresh replica memory: populate it with one call instead of a page
	 * fault per page. */
	if (n > 1 && pb->gfns[n - 1] - pb->gfns[0] == n - 1) {
		uint8_t *first = hr_layout_gfn_hva(e->regions, e->nr_regions, pb->gfns[0]);
		uint8_t *last = hr_layout_gfn_hva(e->regions, e->nr_regions, pb->gfns[n - 1]);
		if (first && last == first + (n - 1) * HR_PAGE_SIZE)
			madvise(first, n * HR_PAGE_SIZE, MADV_POPULATE_WRITE);
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = hr_layout_gfn_hva(e->regions, e->nr_regions, pb->gfns[i]);
		if (!p)
			return -HR_EPROTO;
		memcpy(p, f->data + i * HR_PAGE_SIZE, HR_PAGE_SIZE);
	}
	return 0;
}

static int promote(struct hr_engine *e, struct hr_staging *st)
{
	const void *blob;
	size_t len;
	uint64_t t0 = hr_now_ns();

	hr_staging_committed_state(st, &blob, &len);
	const struct hr_state_envelope *eh = blob;
	if (!blob || len < sizeof(*eh) || eh->magic != HR_ENVELOPE_MAGIC ||
	    eh->version != HR_ENVELOPE_VERSION || eh->console_bytes > len - sizeof(*eh)) {
		log_err(e->name, "committed state is not a valid engine envelope");
		return -HR_EBADSTATE;
	}
	const uint8_t *cons = (const uint8_t *)blob + sizeof(*eh);
	int rc = e->ops->load_state(e->vm, cons + eh->console_bytes,
				    len - sizeof(*eh) - eh->console_bytes);
	if (rc < 0) {
		log_err(e->name, "promotion: loading the committed state failed: %s%s%s",
			hr_strerror(rc), e->ops->last_error ? ": " : "",
			e->ops->last_error ? e->ops->last_error(e->vm) : "");
		return rc;
	}
	/* Output the primary may not have released: the sink drops repeats. */
	if (eh->console_bytes && e->cfg.console_sink)
		e->cfg.console_sink(e->cfg.console_opaque, eh->console_offset, cons,
				    eh->console_bytes);
	e->console_next = eh->console_offset + eh->console_bytes;
	if ((rc = e->ops->resume(e->vm)) < 0)
		return rc;
	log_warnx(e->name, "+promoted: guest running here from epoch %" PRIu64 " (%.1f ms)",
		  hr_staging_next_epoch(st) - 1, (hr_now_ns() - t0) / 1e6);
	emit(e, HR_EV_PROMOTED, NULL);
	return 0;
}

int hr_engine_run_backup(struct hr_engine *e, int peer_fd)
{
	struct hr_frame_reader rd;
	struct hr_staging *st = NULL;
	struct hr_ha_monitor ha = {.silence_ms = e->cfg.silence_ms,
				   .auto_promote = e->cfg.auto_promote};
	int rc, ended = 0, in_epoch = 0;
	uint64_t epoch_t0 = 0, last_commit_ns = 0;

	e->fd = peer_fd;
	peer_socket_setup(peer_fd);
	hr_frame_reader_init(&rd, e->name);
	if ((rc = backup_handshake(e, &rd)) < 0) {
		log_err(e->name[0] ? e->name : NULL, "refusing replication stream: %s",
			hr_strerror(rc));
		goto out;
	}
	ha.vm = e->name;
	if ((rc = hr_staging_new(&st, e->name, e->regions, e->nr_regions, 0)) < 0)
		goto out;
	log_info(e->name, "backup: receiving (%" PRIu64 " MiB, %u vCPU)", e->cfg.vm.mem_bytes >> 20,
		 e->cfg.vm.nr_vcpus);
	hr_ha_heard(&ha, hr_now_ns());

	for (;;) {
		struct hr_frame f;
		int r = ended ? 0 : hr_frame_reader_next(&rd, &f);
		if (r == 1) {
			hr_ha_heard(&ha, hr_now_ns());
			if (f.type == HR_FT_PAGE_BATCH && !in_epoch && !ha.have_commit) {
				r = apply_live_batch(e, &f);
				hr_frame_release(&f);
				if (r < 0) {
					log_err(e->name, "bad live-sync batch: %s", hr_strerror(r));
					send_error(e, r, "bad live-sync page batch");
					ended = 1;
				}
				continue;
			}
			if (f.type == HR_FT_ERROR) {
				Hr__Error *er = (Hr__Error *)f.msg;
				int code = er->code;
				log_info(e->name, "primary ends replication: %s",
					 er->text ? er->text : "no reason");
				hr_frame_release(&f);
				if (code == 0) {
					rc = 0;
					goto out;
				}
				continue;
			}
			if (f.type == HR_FT_HEARTBEAT) {
				hr_frame_release(&f);
				continue;
			}
			if (f.type == HR_FT_EPOCH_BEGIN) {
				in_epoch = 1;
				epoch_t0 = hr_now_ns();
			}
			r = hr_staging_frame(st, &f);
			hr_frame_release(&f);
			if (r < 0) {
				/* torn or corrupt: staging discarded it, N-1 stays committed */
				in_epoch = 0;
				log_err(e->name, "epoch discarded: %s", hr_strerror(r));
				continue;
			}
			if (r == 1) {
				uint64_t ep;
				const void *sb;
				size_t sl;
				in_epoch = 0;
				r = hr_staging_commit(st, &ep, &sb, &sl);
				if (r < 0) {
					log_err(e->name, "commit failed: %s", hr_strerror(r));
					continue;
				}
				ha.have_commit = 1;
				Hr__Ack ack = HR__ACK__INIT;
				ack.epoch = ep;
				ack.has_commit_ns = 1;
				ack.commit_ns = hr_now_ns() - epoch_t0;
				if (hr_stream_send(e->fd, HR_FT_ACK, HR_FRAME_MANDATORY, &ack.base,
						   NULL, 0) < 0)
					ended = 1;
				struct hr_staging_stats ss;
				hr_staging_get_stats(st, &ss);
				struct hr_epoch_stats es = {.epoch = ep,
							    .dirty_pages = ss.last_commit_pages,
							    .bytes = ss.last_commit_bytes,
							    .ack_us = ack.commit_ns / 1000};
				uint64_t now_ns = hr_now_ns();
				if (last_commit_ns)
					es.interval_us = (now_ns - last_commit_ns) / 1000;
				last_commit_ns = now_ns;
				pthread_mutex_lock(&e->stats_lock);
				e->nr_epochs++;
				e->last = es;
				pthread_mutex_unlock(&e->stats_lock);
				if (ep == 0)
					log_info(e->name, "+protected: epoch 0 committed");
				emit(e, ep == 0 ? HR_EV_SYNCED : HR_EV_EPOCH, &es);
			}
			continue;
		}
		if (r < 0 && !ended) {
			log_err(e->name, "replication stream broken: %s", hr_strerror(r));
			ended = 1;
		}
		uint64_t now = hr_now_ns();
		enum hr_ha_verdict v = hr_ha_decide(&ha, now, ended);
		if (v == HR_HA_GIVE_UP) {
			rc = -ECONNRESET;
			goto out;
		}
		if (v == HR_HA_PROMOTE)
			goto promote;
		int w = wait_fd(e, ended ? -1 : hr_ha_poll_ms(&ha, now));
		if (w == CTL_STOP || w == CTL_ABORT) {
			rc = 0;
			goto out;
		}
		if (w == CTL_PROMOTE) {
			if (!ha.have_commit) {
				log_err(e->name, "failover refused: no complete epoch yet");
				continue;
			}
			log_warnx(e->name, "+failover-start (operator)");
			goto promote;
		}
		if (w == 0 && !ended) {
			ssize_t n = hr_frame_reader_fill(&rd, e->fd);
			if (n == 0) {
				if (in_epoch)
					log_warnx(e->name,
						  "stream ended inside an epoch: discarded");
				ended = 1;
			} else if (n < 0 && n != -EAGAIN) {
				ended = 1;
			}
		}
	}

promote:
	if (in_epoch)
		hr_staging_discard(st);
	if (e->fd >= 0 && !ended)
		send_error(e, -HR_EPROMOTED, "the backup has taken over");
	if (e->fd >= 0) {
		close(e->fd);
		e->fd = -1;
	}
	if ((rc = promote(e, st)) < 0)
		goto out;
	for (;;) {
		int w = wait_fd(e, -1);
		if (w == CTL_STOP || w == CTL_ABORT) {
			rc = 0;
			break;
		}
		if (w == CTL_GUEST_EXIT) {
			emit(e, HR_EV_GUEST_EXIT, NULL);
			rc = e->guest_exit_code;
			break;
		}
	}
out:
	hr_staging_free(st);
	hr_frame_reader_fini(&rd);
	return rc;
}
