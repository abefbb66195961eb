/*
 * mem-guest.c - the mem backend's software guest: the guest command line,
 * one deterministic step (page writes, dirty bits, console line, records),
 * and the vCPU thread with its pause protocol (see mem-internal.h for the
 * locks and mem.h for the contract).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/backend.h"
#include "backends/mem/mem-internal.h"
#include "backends/mem/mem.h"
#include "common/log.h"
#include "common/util.h"

#define MEM_MAX_STEPS_PER_S 100000000ull
#define MEM_BEHIND_MAX_NS   100000000ull /* pacing: never catch up more than 100 ms */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- command line ---- */

static int parse_u64(const char *s, uint64_t max, uint64_t *v_r)
{
	return hr_parse_count(s, 0, max, v_r) < 0 ? -EINVAL : 0;
}

int mem_guest_parse_cmdline(struct mem_vm *m, const char *cmdline)
{
	static const struct {
		const char *key;
		size_t off;
		uint64_t max;
	} keys[] = {
	    {"steps_per_s", offsetof(struct mem_guest_params, steps_per_s), MEM_MAX_STEPS_PER_S},
	    {"writes", offsetof(struct mem_guest_params, writes), MEM_MAX_WRITES_STEP},
	    {"line_bytes", offsetof(struct mem_guest_params, line_bytes), MEM_MAX_LINE_BYTES},
	    {"stop_after", offsetof(struct mem_guest_params, stop_after), UINT64_MAX},
	    {"disk_writes", offsetof(struct mem_guest_params, disk_writes), 4096},
	    {"disk_flush", offsetof(struct mem_guest_params, disk_flush), 1},
	};
	const char *p = cmdline;

	m->params = (struct mem_guest_params){.steps_per_s = 1000, .writes = 16};
	while (p && *p) {
		char tok[128], *eq;
		size_t n;
		unsigned k;

		p += strspn(p, " \t\n");
		n = strcspn(p, " \t\n");
		if (!n)
			break;
		snprintf(tok, sizeof(tok), "%.*s", (int)n, p);
		p += n;
		eq = strchr(tok, '=');
		if (!eq) {
			mem_fail(m, "guest cmdline: '%s' is not key=value", tok);
			return -EINVAL;
		}
		*eq = '\0';
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!strcmp(tok, keys[k].key))
				break;
		if (k == sizeof(keys) / sizeof(keys[0])) {
			mem_fail(m,
				 "guest cmdline: unknown key '%s' (known: steps_per_s, writes, "
				 "line_bytes, stop_after, disk_writes, disk_flush)",
				 tok);
			return -EINVAL;
		}
		if (parse_u64(eq + 1, keys[k].max, (uint64_t *)((char *)&m->params + keys[k].off)) <
		    0) {
			mem_fail(m, "guest cmdline: %s=%s: want an integer 0..%" PRIu64, tok,
				 eq + 1, keys[k].max);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- one step ---- */

/* Record `chan` (>= 1) of step `step`, as documented in mem.h. */
static size_t make_record(uint8_t *buf, unsigned chan, uint64_t step)
{
	size_t len = hr_mem_record_bytes(chan, step);
	uint64_t s = htole64(step);
	uint32_t c = htole32(chan);

	memcpy(buf, &s, sizeof(s));
	memcpy(buf + 8, &c, sizeof(c));
	for (size_t i = 12; i < len; i++)
		buf[i] = (uint8_t)(step * 131 + chan * 31 + i);
	return len;
}

static void guest_exit(struct mem_vm *m, uint64_t step)
{
	pthread_mutex_lock(&m->ctl_lock);
	m->exited = 1;
	pthread_mutex_unlock(&m->ctl_lock);
	log_info(m->name, "mem: guest stopped on its own after step %" PRIu64 " (stop_after)",
		 step);
	/* as a write of 0 to the isa-debug-exit port */
	if (m->cfg.on_exit)
		m->cfg.on_exit(m->cfg.exit_opaque, HR_EXIT_DEBUG_PORT, (0 << 1) | 1);
}

/* Set the stamp of block b in the table (guest RAM), dirtying its page. */
static void stamp_set(struct mem_vm *m, uint64_t b, uint64_t stamp)
{
	uint64_t at = (m->stamp_gfn << HR_PAGE_SHIFT) + b * 8, v = htole64(stamp);

	pthread_mutex_lock(&m->dirty_lock);
	memcpy(m->ram + at, &v, sizeof(v));
	if (m->tracking)
		m->dirty[(at >> HR_PAGE_SHIFT) / 64] |= 1ull << ((at >> HR_PAGE_SHIFT) % 64);
	pthread_mutex_unlock(&m->dirty_lock);
}

static void fill_block(uint8_t *buf, uint64_t step, uint64_t b)
{
	uint64_t pair[2] = {htole64(step), htole64(b)};

	for (size_t i = 0; i < MEM_DISK_BLOCK_BYTES; i += sizeof(pair))
		memcpy(buf + i, pair, sizeof(pair));
}

/* The step's disk writes: image, report, then the table (the guest "sees"
 * the completion only after the report, as the contract asks). */
static void disk_step(struct mem_vm *m, uint64_t step)
{
	int wrote = 0;

	for (uint64_t i = 0; i < m->params.disk_writes; i++) {
		uint64_t b = splitmix64(&m->prng) % m->disk_blocks, off = b * MEM_DISK_BLOCK_BYTES;
		int rc;

		fill_block(m->blockbuf, step, b);
		rc = hr_image_pwrite(&m->img[0], m->blockbuf, MEM_DISK_BLOCK_BYTES, off);
		if (!rc && m->cfg.disk_write)
			rc = m->cfg.disk_write(m->cfg.disk_opaque, 0, off, m->blockbuf,
					       MEM_DISK_BLOCK_BYTES, 0);
		stamp_set(m, b, rc < 0 ? MEM_STAMP_UNKNOWN : step);
		wrote |= rc == 0;
	}
	if (wrote && m->params.disk_flush && !hr_image_flush(&m->img[0]) && m->cfg.disk_write)
		m->cfg.disk_write(m->cfg.disk_opaque, 0, 0, NULL, 0, HR_DW_FLUSH);
}

void mem_guest_do_step(struct mem_vm *m, uint64_t nr_writes)
{
	uint8_t rec[HR_MEM_RECORD_MAX_BYTES];
	uint64_t step, ram_gfns = m->stamp_gfn;
	int n;

	if (m->diskcheck[0] && m->cfg.emit) {
		m->cfg.emit(m->cfg.emit_opaque, 0, m->diskcheck, strlen(m->diskcheck));
		m->diskcheck[0] = '\0';
	}
	/* Data and dirty bit under one lock: a concurrent fetch sees the whole step or none. */
	pthread_mutex_lock(&m->dirty_lock);
	for (uint64_t i = 0; i < nr_writes; i++) {
		uint64_t r = splitmix64(&m->prng);
		uint64_t gfn = r % ram_gfns; /* never the stamp table */
		uint64_t slot = (r >> 40) % (HR_PAGE_SIZE / sizeof(uint64_t));
		uint64_t val = htole64(++m->nr_writes);

		memcpy(m->ram + (gfn << HR_PAGE_SHIFT) + slot * sizeof(val), &val, sizeof(val));
		if (m->tracking)
			m->dirty[gfn / 64] |= 1ull << (gfn % 64);
	}
	pthread_mutex_unlock(&m->dirty_lock);
	if (m->params.disk_writes && m->disk_blocks)
		disk_step(m, m->nr_steps + 1);
	step = ++m->nr_steps;

	n = snprintf(m->line, MEM_MAX_LINE_BYTES + 1, "mem: step=%" PRIu64, step);
	if ((uint64_t)n + 1 < m->params.line_bytes) {
		memset(m->line + n, '.', m->params.line_bytes - 1 - (uint64_t)n);
		n = (int)m->params.line_bytes - 1;
	}
	m->line[n++] = '\n';
	if (m->cfg.emit) {
		m->cfg.emit(m->cfg.emit_opaque, 0, m->line, (size_t)n);
		/* -ENOBUFS on a record channel: dropped, as a congested link would */
		for (unsigned c = 1; c < m->nr_chans; c++)
			m->cfg.emit(m->cfg.emit_opaque, c, rec, make_record(rec, c, step));
	}
	if (m->params.stop_after && step == m->params.stop_after)
		guest_exit(m, step);
}

int hr_mem_guest_step(struct hr_vm *vm, unsigned nr_writes)
{
	struct mem_vm *m = to_mem(vm);

	if (m->mode == MEM_GUEST_THREAD) {
		mem_fail(m, "hr_mem_guest_step: this guest runs on its own vCPU thread");
		return -EBUSY;
	}
	if (!m->running || m->exited)
		return -EBUSY;
	mem_guest_do_step(m, nr_writes);
	return 0;
}

/* ---- disks ---- */

int mem_disk_open(struct mem_vm *m)
{
	m->stamp_gfn = m->nr_gfns;
	for (unsigned i = 0; i < HR_MAX_DISKS; i++)
		m->img[i].fd = -1;
	if (m->cfg.nr_disks > HR_MAX_DISKS) {
		mem_fail(m, "%u disks, at most %u", m->cfg.nr_disks, HR_MAX_DISKS);
		return -EINVAL;
	}
	for (unsigned i = 0; i < m->cfg.nr_disks; i++) {
		char why[160] = "";
		int rc = hr_image_open(&m->img[i], m->cfg.disks[i].path, m->cfg.disks[i].readonly,
				       why, sizeof(why));
		if (rc < 0) {
			mem_fail(m, "disk %u (%s): %s", i, m->cfg.disks[i].path, why);
			return rc;
		}
		m->nr_disks = i + 1;
	}
	m->cfg.disks = NULL; /* not kept: the caller's array need not outlive open */
	if (!m->nr_disks)
		return 0;
	m->disk_blocks = m->img[0].bytes / MEM_DISK_BLOCK_BYTES;
	uint64_t table_pages = (m->disk_blocks * 8 + HR_PAGE_SIZE - 1) / HR_PAGE_SIZE;
	if (!m->disk_blocks || table_pages * 2 > m->nr_gfns) {
		mem_fail(m,
			 "disk 0 of %" PRIu64 " bytes: its stamp table would not fit in half "
			 "of guest RAM (or it is smaller than a block)",
			 m->img[0].bytes);
		return -EINVAL;
	}
	m->stamp_gfn = m->nr_gfns - table_pages;
	m->blockbuf = malloc(MEM_DISK_BLOCK_BYTES);
	return m->blockbuf ? 0 : -ENOMEM;
}

void mem_disk_close(struct mem_vm *m)
{
	for (unsigned i = 0; i < m->nr_disks; i++)
		hr_image_close(&m->img[i]);
	m->nr_disks = 0;
	free(m->blockbuf);
	m->blockbuf = NULL;
}

void mem_disk_check(struct mem_vm *m)
{
	uint64_t blocks = 0, errors = 0;
	uint8_t *want = malloc(MEM_DISK_BLOCK_BYTES);

	m->diskcheck[0] = '\0';
	if (!want || !m->disk_blocks) {
		free(want);
		return;
	}
	for (uint64_t b = 0; b < m->disk_blocks; b++) {
		uint64_t stamp;
		memcpy(&stamp, m->ram + (m->stamp_gfn << HR_PAGE_SHIFT) + b * 8, sizeof(stamp));
		stamp = le64toh(stamp);
		if (stamp == MEM_STAMP_UNKNOWN)
			continue;
		if (stamp)
			fill_block(want, stamp, b), blocks++;
		else
			memset(want, 0, MEM_DISK_BLOCK_BYTES);
		if (hr_image_pread(&m->img[0], m->blockbuf, MEM_DISK_BLOCK_BYTES,
				   b * MEM_DISK_BLOCK_BYTES) < 0 ||
		    memcmp(want, m->blockbuf, MEM_DISK_BLOCK_BYTES))
			errors++;
	}
	free(want);
	snprintf(m->diskcheck, sizeof(m->diskcheck),
		 "diskcheck blocks=%" PRIu64 " errors=%" PRIu64 "\n", blocks, errors);
	log_info(m->name, "mem: %.*s", (int)strlen(m->diskcheck) - 1, m->diskcheck);
}

/* ---- the vCPU thread ---- */

static void *guest_thread(void *arg)
{
	struct mem_vm *m = arg;

	pthread_mutex_lock(&m->ctl_lock);
	while (!m->stopping) {
		if (!m->run_req || m->exited) {
			m->parked = 1;
			pthread_cond_broadcast(&m->ctl_cond);
			pthread_cond_wait(&m->ctl_cond, &m->ctl_lock);
			continue;
		}
		m->parked = 0;
		if (m->params.steps_per_s) {
			uint64_t now = hr_now_ns();

			if (now < m->next_step_ns) {
				struct timespec ts = {
				    .tv_sec = (time_t)(m->next_step_ns / 1000000000ull),
				    .tv_nsec = (long)(m->next_step_ns % 1000000000ull)};
				pthread_cond_timedwait(&m->ctl_cond, &m->ctl_lock, &ts);
				continue;
			}
			m->next_step_ns += 1000000000ull / m->params.steps_per_s;
			if (m->next_step_ns + MEM_BEHIND_MAX_NS < now)
				m->next_step_ns = now;
		}
		pthread_mutex_unlock(&m->ctl_lock);
		mem_guest_do_step(m, m->params.writes);
		pthread_mutex_lock(&m->ctl_lock);
	}
	m->parked = 1;
	pthread_cond_broadcast(&m->ctl_cond);
	pthread_mutex_unlock(&m->ctl_lock);
	return NULL;
}

int mem_guest_resume(struct mem_vm *m)
{
	int r = 0;

	pthread_mutex_lock(&m->ctl_lock);
	m->run_req = 1;
	/* the guest keeps its own time across a pause (a checkpoint does not
	 * make it step at once; the catch-up after a long one is bounded) */
	if (!m->next_step_ns)
		m->next_step_ns = hr_now_ns();
	if (!m->thread_started) {
		sigset_t all, old;

		/* the vCPU thread takes no signals: they belong to the daemon's main thread */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		r = pthread_create(&m->thread, NULL, guest_thread, m);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r) {
			m->run_req = 0;
			pthread_mutex_unlock(&m->ctl_lock);
			mem_fail(m, "cannot start the vCPU thread: %s", strerror(r));
			return -r;
		}
		m->thread_started = 1;
	}
	pthread_cond_broadcast(&m->ctl_cond);
	pthread_mutex_unlock(&m->ctl_lock);
	return 0;
}

void mem_guest_pause(struct mem_vm *m)
{
	pthread_mutex_lock(&m->ctl_lock);
	m->run_req = 0;
	pthread_cond_broadcast(&m->ctl_cond);
	while (m->thread_started && !m->parked)
		pthread_cond_wait(&m->ctl_cond, &m->ctl_lock);
	pthread_mutex_unlock(&m->ctl_lock);
}

void mem_guest_stop(struct mem_vm *m)
{
	pthread_mutex_lock(&m->ctl_lock);
	m->stopping = 1;
	m->run_req = 0;
	pthread_cond_broadcast(&m->ctl_cond);
	pthread_mutex_unlock(&m->ctl_lock);
	if (m->thread_started)
		pthread_join(m->thread, NULL);
	m->thread_started = 0;
}
