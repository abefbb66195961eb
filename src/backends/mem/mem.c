/*
 * mem.c - the in-memory backend: guest RAM is one anonymous mapping at gpa 0,
 * the "vCPU" is hr_mem_guest_step(), dirty tracking is a bitmap set by the
 * software guest itself.  See mem.h.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backends/backend.h"
#include "backends/mem/mem.h"
#include "common/err.h"
#include "common/log.h"

#define MEM_STATE_MAGIC	  0x5453454du /* "MEST" read as little-endian u32 */
#define MEM_STATE_VERSION 1u
#define MEM_PRNG_SEED	  0x6a09e667f3bcc908ull

/* The state blob, version 1; every field little-endian. */
struct mem_state_v1 {
	uint32_t magic;
	uint32_t version;
	uint32_t nr_vcpus;
	uint32_t blob_bytes; /* sizeof(struct mem_state_v1) */
	uint64_t mem_bytes;
	uint64_t prng;
	uint64_t nr_steps;
	uint64_t nr_writes;
};

struct mem_vm {
	char name[64];
	struct hr_vm_config cfg; /* cfg.name points at name */
	struct hr_mem_region region;
	uint64_t nr_gfns;
	uint64_t *dirty; /* nr_gfns bits */
	int tracking;
	int running;
	/* guest state, carried by the blob */
	uint64_t prng;
	uint64_t nr_steps;
	uint64_t nr_writes;
	char last_error[256];
};

static inline struct mem_vm *to_mem(struct hr_vm *vm)
{
	return (struct mem_vm *)vm;
}

static __attribute__((format(printf, 2, 3))) void mem_fail(struct mem_vm *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->last_error, sizeof(m->last_error), fmt, ap);
	va_end(ap);
	log_warnx(m->name, "mem: %s", m->last_error);
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int mem_open(struct hr_vm **vm_r, const struct hr_vm_config *cfg)
{
	struct mem_vm *m;

	*vm_r = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	*vm_r = (struct hr_vm *)m;
	m->cfg = *cfg;
	snprintf(m->name, sizeof(m->name), "%s", cfg->name ? cfg->name : "?");
	m->cfg.name = m->name;
	m->region.hva = MAP_FAILED;

	if (!cfg->mem_bytes || cfg->mem_bytes % HR_PAGE_SIZE) {
		mem_fail(m, "mem_bytes %" PRIu64 " is not a non-zero multiple of %u",
			 cfg->mem_bytes, HR_PAGE_SIZE);
		return -EINVAL;
	}
	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > HR_MAX_VCPUS) {
		mem_fail(m, "nr_vcpus %u out of range 1..%u", cfg->nr_vcpus, HR_MAX_VCPUS);
		return -EINVAL;
	}
	m->nr_gfns = cfg->mem_bytes >> HR_PAGE_SHIFT;
	m->region.gpa = 0;
	m->region.bytes = cfg->mem_bytes;
	m->region.hva = mmap(NULL, cfg->mem_bytes, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->region.hva == MAP_FAILED) {
		int r = -errno;
		mem_fail(m, "mmap of %" PRIu64 " bytes: %s", cfg->mem_bytes, hr_strerror(r));
		return r;
	}
	m->dirty = calloc((m->nr_gfns + 63) / 64, sizeof(uint64_t));
	if (!m->dirty)
		return -ENOMEM;
	/* A replica (no kernel) starts from the same seed; load_state overwrites it. */
	m->prng = MEM_PRNG_SEED;
	log_debug(m->name, "mem: opened %" PRIu64 " bytes, %u vcpus%s", cfg->mem_bytes,
		  cfg->nr_vcpus, cfg->kernel_path ? "" : " (replica)");
	return 0;
}

static void mem_close(struct hr_vm *vm)
{
	struct mem_vm *m = to_mem(vm);

	if (!m)
		return;
	if (m->region.hva != MAP_FAILED)
		munmap(m->region.hva, m->region.bytes);
	free(m->dirty);
	free(m);
}

static int mem_pause(struct hr_vm *vm)
{
	to_mem(vm)->running = 0;
	return 0;
}

static int mem_resume(struct hr_vm *vm)
{
	to_mem(vm)->running = 1;
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

	memset(m->dirty, 0, (m->nr_gfns + 63) / 64 * sizeof(uint64_t));
	m->tracking = 1;
	return 0;
}

static int mem_dirty_stop(struct hr_vm *vm)
{
	to_mem(vm)->tracking = 0;
	return 0;
}

static int mem_dirty_fetch(struct hr_vm *vm, struct hr_dirty_bits *d)
{
	struct mem_vm *m = to_mem(vm);

	if (m->running) {
		mem_fail(m, "dirty_fetch on a running vm");
		return -EBUSY;
	}
	if (!m->tracking) {
		mem_fail(m, "dirty_fetch without dirty_start");
		return -EINVAL;
	}
	for (uint64_t i = 0; i < (m->nr_gfns + 63) / 64; i++) {
		hr_dirty_mark_word(d, i, m->dirty[i]);
		m->dirty[i] = 0;
	}
	return 0;
}

static int mem_save_state(struct hr_vm *vm, void **blob_r, size_t *len_r)
{
	struct mem_vm *m = to_mem(vm);
	struct mem_state_v1 *s;

	if (m->running) {
		mem_fail(m, "save_state on a running vm");
		return -EBUSY;
	}
	s = malloc(sizeof(*s));
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
	*blob_r = s;
	*len_r = sizeof(*s);
	return 0;
}

static int mem_load_state(struct hr_vm *vm, const void *blob, size_t len)
{
	struct mem_vm *m = to_mem(vm);
	struct mem_state_v1 s;

	if (m->running) {
		mem_fail(m, "load_state on a running vm");
		return -EBUSY;
	}
	if (len != sizeof(s)) {
		mem_fail(m, "state blob is %zu bytes, expected %zu", len, sizeof(s));
		return -HR_EBADSTATE;
	}
	memcpy(&s, blob, sizeof(s));
	if (le32toh(s.magic) != MEM_STATE_MAGIC || le32toh(s.blob_bytes) != sizeof(s)) {
		mem_fail(m, "state blob: bad magic or length");
		return -HR_EBADSTATE;
	}
	if (le32toh(s.version) != MEM_STATE_VERSION) {
		mem_fail(m, "state blob version %u, this backend reads %u", le32toh(s.version),
			 MEM_STATE_VERSION);
		return -HR_EBADSTATE;
	}
	if (le32toh(s.nr_vcpus) != m->cfg.nr_vcpus || le64toh(s.mem_bytes) != m->cfg.mem_bytes) {
		mem_fail(m, "state blob shape %u vcpus / %" PRIu64 " bytes, vm has %u / %" PRIu64,
			 le32toh(s.nr_vcpus), le64toh(s.mem_bytes), m->cfg.nr_vcpus,
			 m->cfg.mem_bytes);
		return -HR_EBADSTATE;
	}
	m->prng = le64toh(s.prng);
	m->nr_steps = le64toh(s.nr_steps);
	m->nr_writes = le64toh(s.nr_writes);
	return 0;
}

static const char *mem_last_error(struct hr_vm *vm)
{
	return to_mem(vm)->last_error;
}

int hr_mem_guest_step(struct hr_vm *vm, unsigned nr_writes)
{
	struct mem_vm *m = to_mem(vm);
	char line[48];
	int n;

	if (!m->running)
		return -EBUSY;
	for (unsigned i = 0; i < nr_writes; i++) {
		uint64_t r = splitmix64(&m->prng);
		uint64_t gfn = r % m->nr_gfns;
		uint64_t slot = (r >> 40) % (HR_PAGE_SIZE / sizeof(uint64_t));
		uint64_t val = htole64(++m->nr_writes);

		memcpy(m->region.hva + (gfn << HR_PAGE_SHIFT) + slot * sizeof(val), &val,
		       sizeof(val));
		if (m->tracking)
			m->dirty[gfn / 64] |= 1ull << (gfn % 64);
	}
	m->nr_steps++;
	n = snprintf(line, sizeof(line), "mem: step=%" PRIu64 "\n", m->nr_steps);
	if (m->cfg.emit)
		m->cfg.emit(m->cfg.emit_opaque, 0, line, (size_t)n);
	return 0;
}

static const struct hr_chan_desc mem_chans[] = {{.name = "console", .kind = HR_CHAN_CONSOLE}};

static int mem_channels(struct hr_vm *vm, const struct hr_chan_desc **chans_r, unsigned *nr_r)
{
	*chans_r = mem_chans;
	*nr_r = 1;
	return 0;
}

const struct hr_backend_ops hr_mem_ops = {
    .name = "mem",
    .features = 0,
    .open = mem_open,
    .close = mem_close,
    .pause = mem_pause,
    .resume = mem_resume,
    .mem_layout = mem_layout,
    .dirty_start = mem_dirty_start,
    .dirty_stop = mem_dirty_stop,
    .dirty_fetch = mem_dirty_fetch,
    .save_state = mem_save_state,
    .load_state = mem_load_state,
    .channels = mem_channels,
    .console_in = NULL,
    .last_error = mem_last_error,
};
