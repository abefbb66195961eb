/*
 * mem.c - the in-memory backend's hooks: guest RAM is one anonymous mapping
 * at gpa 0, dirty tracking is a bitmap set by the software guest itself
 * (mem-guest.c), state is a small versioned blob.  See mem.h.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "backends/backend.h"
#include "backends/mem/mem-internal.h"
#include "backends/mem/mem.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define MEM_STATE_MAGIC	  0x5453454du /* "MEST" read as little-endian u32 */
#define MEM_STATE_VERSION 3u
#define MEM_MAP_MAGIC	  0x50414d4du /* "MMAP" */

/* The state blob; every field little-endian.  Version 1 ends after nr_writes. */
struct mem_state {
	uint32_t magic;
	uint32_t version;
	uint32_t nr_vcpus;
	uint32_t blob_bytes; /* of this version */
	uint64_t mem_bytes;
	uint64_t prng;
	uint64_t nr_steps;
	uint64_t nr_writes;
	/* version 2 */
	uint32_t mode; /* enum mem_guest_mode */
	uint32_t nr_chans;
	uint64_t steps_per_s;
	uint64_t writes;
	uint64_t line_bytes;
	uint64_t stop_after;
	/* version 3 */
	uint64_t disk_writes;
	uint64_t disk_flush;
	uint64_t disk_blocks; /* of disk 0 (0: none) */
};

#define MEM_STATE_V1_BYTES offsetof(struct mem_state, mode)
#define MEM_STATE_V2_BYTES offsetof(struct mem_state, disk_writes)

/* What map_pages hands out (and unmap_pages takes back). */
struct mem_map_cookie {
	uint32_t magic;
	unsigned nr_pages;
};

void mem_fail(struct mem_vm *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->last_error, sizeof(m->last_error), fmt, ap);
	va_end(ap);
	log_warnx(m->name, "mem: %s", m->last_error);
}

/* options: map=direct|batch, fill=0|1, chans=N, save_delay_ms=N, save_delay_from=K. */
static int parse_options(struct mem_vm *m, const char *options)
{
	char key[32], val[32];
	const char *pos = options;
	int r;

	m->nr_chans = 1;
	while ((r = hr_options_next(&pos, key, sizeof(key), val, sizeof(val))) > 0) {
		if (!strcmp(key, "map") && !strcmp(val, "direct")) {
			m->map_batch = 0;
		} else if (!strcmp(key, "map") && !strcmp(val, "batch")) {
			m->map_batch = 1;
		} else if (!strcmp(key, "fill") && (!strcmp(val, "0") || !strcmp(val, "1"))) {
			m->fill = val[0] == '1';
		} else if (!strcmp(key, "save_delay_ms")) {
			uint64_t n;

			if (hr_parse_count(val, 0, 600000, &n) < 0) {
				mem_fail(m, "save_delay_ms=%s: want 0..600000", val);
				return -EINVAL;
			}
			m->save_delay_ms = n;
		} else if (!strcmp(key, "save_delay_from")) {
			if (hr_parse_count(val, 0, UINT32_MAX, &m->save_delay_from) < 0) {
				mem_fail(m, "save_delay_from=%s: want a count", val);
				return -EINVAL;
			}
		} else if (!strcmp(key, "chans")) {
			uint64_t n;

			if (hr_parse_count(val, 1, HR_MAX_CHANNELS, &n) < 0) {
				mem_fail(m, "chans=%s: want 1..%u", val, HR_MAX_CHANNELS);
				return -EINVAL;
			}
			m->nr_chans = (unsigned)n;
		} else {
			mem_fail(m,
				 "unknown mem option %s=%s (known: map=direct|batch, fill=0|1, "
				 "chans=1..%u, save_delay_ms=N, save_delay_from=K)",
				 key, val, HR_MAX_CHANNELS);
			return -EINVAL;
		}
	}
	if (r < 0) {
		mem_fail(m, "malformed mem options '%s' (want key=value,...)", options);
		return -EINVAL;
	}
	return 0;
}

static void init_channels(struct mem_vm *m)
{
	m->chans[0] = (struct hr_chan_desc){.name = "console", .kind = HR_CHAN_CONSOLE};
	for (unsigned c = 1; c < m->nr_chans; c++) {
		snprintf(m->chan_names[c], sizeof(m->chan_names[c]), "net%u", c);
		m->chans[c] = (struct hr_chan_desc){.name = m->chan_names[c],
						    .kind = HR_CHAN_NET,
						    .max_record_bytes = HR_MEM_RECORD_MAX_BYTES};
	}
}

static int mem_open(struct hr_vm **vm_r, const struct hr_vm_config *cfg)
{
	pthread_condattr_t ca;
	struct mem_vm *m;
	int rc;

	*vm_r = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	*vm_r = (struct hr_vm *)m;
	m->cfg = *cfg;
	snprintf(m->name, sizeof(m->name), "%s", cfg->name ? cfg->name : "?");
	m->cfg.name = m->name;
	/* not kept: the caller's strings need not outlive open */
	m->cfg.kernel_path = m->cfg.cmdline = m->cfg.options = m->cfg.attach = NULL;
	m->region.hva = MAP_FAILED;
	m->ram = MAP_FAILED;
	pthread_mutex_init(&m->dirty_lock, NULL);
	pthread_mutex_init(&m->ctl_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->ctl_cond, &ca);
	pthread_condattr_destroy(&ca);

	if (!cfg->mem_bytes || cfg->mem_bytes % HR_PAGE_SIZE) {
		mem_fail(m, "mem_bytes %" PRIu64 " is not a non-zero multiple of %u",
			 cfg->mem_bytes, HR_PAGE_SIZE);
		return -EINVAL;
	}
	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > HR_MAX_VCPUS) {
		mem_fail(m, "nr_vcpus %u out of range 1..%u", cfg->nr_vcpus, HR_MAX_VCPUS);
		return -EINVAL;
	}
	if (cfg->attach) {
		mem_fail(m, "cannot attach to an existing VM (attach=%s)", cfg->attach);
		return -EOPNOTSUPP;
	}
	if ((rc = parse_options(m, cfg->options)) < 0 ||
	    (rc = mem_guest_parse_cmdline(m, cfg->cmdline)) < 0)
		return rc;
	m->nr_gfns = cfg->mem_bytes >> HR_PAGE_SHIFT;
	if ((rc = mem_disk_open(m)) < 0)
		return rc;
	init_channels(m);
	/* kernel "none": stepped by hand; any other kernel: the built-in guest on its thread */
	m->mode = cfg->kernel_path && strcmp(cfg->kernel_path, "none") ? MEM_GUEST_THREAD
								       : MEM_GUEST_HAND;
	m->nr_gfns = cfg->mem_bytes >> HR_PAGE_SHIFT;
	m->ram = mmap(NULL, cfg->mem_bytes, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->ram == MAP_FAILED) {
		int r = -errno;
		mem_fail(m, "mmap of %" PRIu64 " bytes: %s", cfg->mem_bytes, hr_strerror(r));
		return r;
	}
	/* fill=1: a primary's RAM holds data from the start, as a booted
	 * guest's does (a replica's never: it must start all zero) */
	for (uint64_t g = 0; m->fill && cfg->kernel_path && g < m->nr_gfns; g++)
		memset(m->ram + (g << HR_PAGE_SHIFT), (int)(g % 255) + 1, HR_PAGE_SIZE);
	m->region.gpa = 0;
	m->region.bytes = cfg->mem_bytes;
	/* map= is how a primary's core reads pages; a replica (no kernel) is
	 * written through its mapping whatever the primary's options say */
	m->region.hva = m->map_batch && cfg->kernel_path ? NULL : m->ram;
	m->dirty = calloc((m->nr_gfns + 63) / 64, sizeof(uint64_t));
	m->line = malloc(MEM_MAX_LINE_BYTES + 1);
	if (!m->dirty || !m->line)
		return -ENOMEM;
	/* A replica (no kernel) starts from the same seed; load_state overwrites it. */
	m->prng = MEM_PRNG_SEED;
	log_debug(m->name, "mem: opened %" PRIu64 " bytes, %u vcpus, %u channels, %s%s",
		  cfg->mem_bytes, cfg->nr_vcpus, m->nr_chans,
		  m->mode == MEM_GUEST_THREAD ? "guest on its own thread" : "guest stepped by hand",
		  cfg->kernel_path ? "" : " (replica)");
	return 0;
}

static void mem_close(struct hr_vm *vm)
{
	struct mem_vm *m = to_mem(vm);

	if (!m)
		return;
	mem_guest_stop(m);
	mem_disk_close(m);
	if (m->nr_live_maps)
		log_warnx(m->name, "mem: closed with %u page mappings never unmapped",
			  m->nr_live_maps);
	if (m->ram != MAP_FAILED)
		munmap(m->ram, m->cfg.mem_bytes);
	pthread_cond_destroy(&m->ctl_cond);
	pthread_mutex_destroy(&m->ctl_lock);
	pthread_mutex_destroy(&m->dirty_lock);
	free(m->line);
	free(m->dirty);
	free(m);
}

static int mem_pause(struct hr_vm *vm)
{
	struct mem_vm *m = to_mem(vm);

	if (m->mode == MEM_GUEST_THREAD)
		mem_guest_pause(m);
	m->running = 0;
	return 0;
}

static int mem_resume(struct hr_vm *vm)
{
	struct mem_vm *m = to_mem(vm);
	int rc;

	if (m->mode == MEM_GUEST_THREAD && (rc = mem_guest_resume(m)) < 0)
		return rc;
	m->running = 1;
	return 0;
}

static int mem_layout(struct hr_vm *vm, const struct hr_mem_region **regions_r, unsigned *nr_r)
{
	*regions_r = &to_mem(vm)->region;
	*nr_r = 1;
	return 0;
}

static int mem_dirty_start(struct hr_vm *vm)
{
	struct mem_vm *m = to_mem(vm);

	pthread_mutex_lock(&m->dirty_lock);
	memset(m->dirty, 0, (m->nr_gfns + 63) / 64 * sizeof(uint64_t));
	m->tracking = 1;
	pthread_mutex_unlock(&m->dirty_lock);
	return 0;
}

static int mem_dirty_stop(struct hr_vm *vm)
{
	struct mem_vm *m = to_mem(vm);

	pthread_mutex_lock(&m->dirty_lock);
	m->tracking = 0;
	pthread_mutex_unlock(&m->dirty_lock);
	return 0;
}

/* Live (HR_BF_DIRTY_LIVE): the guest writes and marks under dirty_lock too. */
static int mem_dirty_fetch(struct hr_vm *vm, struct hr_dirty_bits *d)
{
	struct mem_vm *m = to_mem(vm);

	pthread_mutex_lock(&m->dirty_lock);
	if (!m->tracking) {
		pthread_mutex_unlock(&m->dirty_lock);
		mem_fail(m, "dirty_fetch without dirty_start");
		return -EINVAL;
	}
	for (uint64_t i = 0; i < (m->nr_gfns + 63) / 64; i++) {
		hr_dirty_mark_word(d, i, m->dirty[i]);
		m->dirty[i] = 0;
	}
	pthread_mutex_unlock(&m->dirty_lock);
	return 0;
}

static int mem_map_pages(struct hr_vm *vm, const uint64_t *gfns, unsigned nr, int writable,
			 uint8_t **ptrs_r, void **cookie_r)
{
	struct mem_vm *m = to_mem(vm);
	struct mem_map_cookie *c;

	(void)writable; /* one read-write mapping backs everything */
	*cookie_r = NULL;
	if (nr > HR_MAP_BATCH_PAGES) {
		mem_fail(m, "map_pages of %u pages, at most %u at once", nr, HR_MAP_BATCH_PAGES);
		return -EINVAL;
	}
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->magic = MEM_MAP_MAGIC;
	c->nr_pages = nr;
	for (unsigned i = 0; i < nr; i++)
		ptrs_r[i] = gfns[i] < m->nr_gfns ? m->ram + (gfns[i] << HR_PAGE_SHIFT) : NULL;
	m->nr_live_maps++;
	*cookie_r = c;
	return 0;
}

static void mem_unmap_pages(struct hr_vm *vm, void *cookie)
{
	struct mem_vm *m = to_mem(vm);
	struct mem_map_cookie *c = cookie;

	if (!c)
		return;
	if (c->magic != MEM_MAP_MAGIC || !m->nr_live_maps) {
		log_warnx(m->name, "mem: unmap_pages of a cookie map_pages did not hand out");
		return;
	}
	c->magic = 0;
	m->nr_live_maps--;
	free(c);
}

unsigned hr_mem_live_maps(struct hr_vm *vm)
{
	return to_mem(vm)->nr_live_maps;
}

static int mem_channels(struct hr_vm *vm, const struct hr_chan_desc **chans_r, unsigned *nr_r)
{
	*chans_r = to_mem(vm)->chans;
	*nr_r = to_mem(vm)->nr_chans;
	return 0;
}

static int mem_save_state(struct hr_vm *vm, void **blob_r, size_t *len_r)
{
	struct mem_vm *m = to_mem(vm);
	struct mem_state *s;

	if (m->running) {
		mem_fail(m, "save_state on a running vm");
		return -EBUSY;
	}
	if (m->save_delay_ms && m->nr_saves++ >= m->save_delay_from) {
		/* tests: a slow checkpoint pause (the guest stays paused) */
		struct timespec ts = {(time_t)(m->save_delay_ms / 1000),
				      (long)(m->save_delay_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->magic = htole32(MEM_STATE_MAGIC);
	s->version = htole32(MEM_STATE_VERSION);
	s->nr_vcpus = htole32(m->cfg.nr_vcpus);
	s->blob_bytes = htole32(sizeof(*s));
	s->mem_bytes = htole64(m->cfg.mem_bytes);
	s->prng = htole64(m->prng);
	s->nr_steps = htole64(m->nr_steps);
	s->nr_writes = htole64(m->nr_writes);
	s->mode = htole32(m->mode);
	s->nr_chans = htole32(m->nr_chans);
	s->steps_per_s = htole64(m->params.steps_per_s);
	s->writes = htole64(m->params.writes);
	s->line_bytes = htole64(m->params.line_bytes);
	s->stop_after = htole64(m->params.stop_after);
	s->disk_writes = htole64(m->params.disk_writes);
	s->disk_flush = htole64(m->params.disk_flush);
	s->disk_blocks = htole64(m->disk_blocks);
	*blob_r = s;
	*len_r = sizeof(*s);
	return 0;
}

static int mem_load_state(struct hr_vm *vm, const void *blob, size_t len)
{
	struct mem_vm *m = to_mem(vm);
	struct mem_state s = {0};
	struct mem_guest_params p = m->params;
	enum mem_guest_mode mode = MEM_GUEST_HAND;
	uint32_t version;
	size_t want;

	if (m->running) {
		mem_fail(m, "load_state on a running vm");
		return -EBUSY;
	}
	if (len < MEM_STATE_V1_BYTES) {
		mem_fail(m, "state blob is %zu bytes, shorter than any version", len);
		return -HR_EBADSTATE;
	}
	memcpy(&s, blob, len < sizeof(s) ? len : sizeof(s));
	version = le32toh(s.version);
	if (le32toh(s.magic) != MEM_STATE_MAGIC) {
		mem_fail(m, "state blob: bad magic");
		return -HR_EBADSTATE;
	}
	if (version < 1 || version > MEM_STATE_VERSION) {
		mem_fail(m, "state blob version %u, this backend reads 1..%u", version,
			 MEM_STATE_VERSION);
		return -HR_EBADSTATE;
	}
	want = version == 1 ? MEM_STATE_V1_BYTES : version == 2 ? MEM_STATE_V2_BYTES : sizeof(s);
	if (len != want || le32toh(s.blob_bytes) != want) {
		mem_fail(m, "state blob version %u is %zu bytes (says %u), expected %zu", version,
			 len, le32toh(s.blob_bytes), want);
		return -HR_EBADSTATE;
	}
	if (le32toh(s.nr_vcpus) != m->cfg.nr_vcpus || le64toh(s.mem_bytes) != m->cfg.mem_bytes) {
		mem_fail(m, "state blob shape %u vcpus / %" PRIu64 " bytes, vm has %u / %" PRIu64,
			 le32toh(s.nr_vcpus), le64toh(s.mem_bytes), m->cfg.nr_vcpus,
			 m->cfg.mem_bytes);
		return -HR_EBADSTATE;
	}
	if (version >= 2) {
		p.steps_per_s = le64toh(s.steps_per_s);
		p.writes = le64toh(s.writes);
		p.line_bytes = le64toh(s.line_bytes);
		p.stop_after = le64toh(s.stop_after);
		mode = (enum mem_guest_mode)le32toh(s.mode);
		if (le32toh(s.nr_chans) != m->nr_chans) {
			mem_fail(m, "state blob has %u output channels, vm has %u (options chans=)",
				 le32toh(s.nr_chans), m->nr_chans);
			return -HR_EBADSTATE;
		}
		if ((mode != MEM_GUEST_HAND && mode != MEM_GUEST_THREAD) ||
		    p.writes > MEM_MAX_WRITES_STEP || p.line_bytes > MEM_MAX_LINE_BYTES) {
			mem_fail(m, "state blob: guest mode or parameters out of range");
			return -HR_EBADSTATE;
		}
	}
	if (version >= 3) {
		p.disk_writes = le64toh(s.disk_writes);
		p.disk_flush = le64toh(s.disk_flush);
		if (le64toh(s.disk_blocks) != m->disk_blocks || p.disk_writes > 4096) {
			mem_fail(m, "state blob: disk 0 of %" PRIu64 " blocks, vm has %" PRIu64,
				 le64toh(s.disk_blocks), m->disk_blocks);
			return -HR_EBADSTATE;
		}
	}
	m->prng = le64toh(s.prng);
	m->nr_steps = le64toh(s.nr_steps);
	m->nr_writes = le64toh(s.nr_writes);
	m->params = p;
	m->mode = mode;
	pthread_mutex_lock(&m->ctl_lock);
	m->exited = p.stop_after && m->nr_steps >= p.stop_after;
	pthread_mutex_unlock(&m->ctl_lock);
	if (m->disk_blocks)
		mem_disk_check(m); /* said on the console before the next step */
	return 0;
}

static const char *mem_last_error(struct hr_vm *vm)
{
	return to_mem(vm)->last_error;
}

const struct hr_backend_ops hr_mem_ops = {
    .name = "mem",
    .features = HR_BF_DIRTY_LIVE | HR_BF_MAP_BATCH | HR_BF_BUILTIN_GUEST | HR_BF_DISKS,
    .open = mem_open,
    .close = mem_close,
    .pause = mem_pause,
    .resume = mem_resume,
    .mem_layout = mem_layout,
    .dirty_start = mem_dirty_start,
    .dirty_stop = mem_dirty_stop,
    .dirty_fetch = mem_dirty_fetch,
    .map_pages = mem_map_pages,
    .unmap_pages = mem_unmap_pages,
    .channels = mem_channels,
    .save_state = mem_save_state,
    .load_state = mem_load_state,
    .console_in = NULL,
    .last_error = mem_last_error,
};
