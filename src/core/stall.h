/*
 * stall.h - is a thread that makes no progress wedged, or only starved of
 * CPU?  (docs/design.md, "Liveness apart from the data path".)
 *
 * The heartbeat thread stops its heartbeats when the engine made no
 * progress for max_pause (a wedged host must look dead to its peer).  But
 * an engine that is runnable and never gets a CPU (busy loops of higher
 * weight in its scheduling group, a CPU quota) is not wedged: its host is
 * overloaded, and its peer taking over would only move the VM away from a
 * live primary.  So the time without progress counts only in the share the
 * process was NOT waiting on a run queue: the kernel's per-thread run delay
 * (/proc/self/task/TID/schedstat, second field), summed over the threads of
 * the process, tells how much of a tick they spent runnable but not running
 * (a throttled cgroup's threads count as waiting).
 */
#ifndef HR_CORE_STALL_H
#define HR_CORE_STALL_H

#include <stdint.h>

struct hr_stall {
	uint64_t progress_ns; /* the progress stamp being judged (0: none) */
	uint64_t tick_ns;     /* the last tick */
	uint64_t delay_ns;    /* the process's run delay at that tick */
	uint64_t stall_ns;    /* time without progress that counts */
};

/*
 * One tick at now_ns: progress_ns is the engine's last progress stamp
 * (UINT64_MAX: it waits, which is not being stuck), delay_ns the process's
 * total run delay now (hr_stall_run_delay_ns).  Returns the time without
 * progress that counts, in ns: wall time, less the part of each tick the
 * process spent waiting for a CPU (at most all of it).
 */
uint64_t hr_stall_tick(struct hr_stall *s, uint64_t now_ns, uint64_t progress_ns,
		       uint64_t delay_ns);

/* The calling process's run delay summed over its threads, in ns (0 where
 * the kernel keeps no schedstat). */
uint64_t hr_stall_run_delay_ns(void);

#endif
