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
				 "line_bytes, stop_after)",
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

void mem_guest_do_step(struct mem_vm *m, uint64_t nr_writes)
{
	uint8_t rec[HR_MEM_RECORD_MAX_BYTES];
	uint64_t step;
	int n;

	/* Data and dirty bit under one lock: a concurrent fetch sees the whole step or none. */
	pthread_mutex_lock(&m->dirty_lock);
	for (uint64_t i = 0; i < nr_writes; i++) {
		uint64_t r = splitmix64(&m->prng);
		uint64_t gfn = r % m->nr_gfns;
		uint64_t slot = (r >> 40) % (HR_PAGE_SIZE / sizeof(uint64_t));
		uint64_t val = htole64(++m->nr_writes);

		memcpy(m->ram + (gfn << HR_PAGE_SHIFT) + slot * sizeof(val), &val, sizeof(val));
		if (m->tracking)
			m->dirty[gfn / 64] |= 1ull << (gfn % 64);
	}
	pthread_mutex_unlock(&m->dirty_lock);
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
