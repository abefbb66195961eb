/* t-stall.c - wedged or starved (src/core/stall.c): the time without
 * progress counts only while the process was not waiting for a CPU; and
 * the kernel's run delay really grows for a thread kept from running. */
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/util.h"
#include "core/stall.h"
#include "tap.h"

#define MS 1000000ull

static volatile int spin_stop;

static void *spin(void *a)
{
	(void)a;
	while (!spin_stop)
		;
	return NULL;
}

int main(void)
{
	struct hr_stall s = {0};
	plan(8);

	ok(hr_stall_tick(&s, 100 * MS, UINT64_MAX, 0) == 0, "an engine that waits is not stuck");
	ok(hr_stall_tick(&s, 300 * MS, 100 * MS, 5 * MS) == 200 * MS,
	   "a new stamp: the time since it counts whole");
	ok(hr_stall_tick(&s, 400 * MS, 100 * MS, 5 * MS) == 300 * MS,
	   "no run delay: wall time counts (a wedged engine on an idle host)");
	ok(hr_stall_tick(&s, 500 * MS, 100 * MS, 105 * MS) == 300 * MS,
	   "waiting on a run queue the whole tick: nothing counts (starved)");
	ok(hr_stall_tick(&s, 600 * MS, 100 * MS, 405 * MS) == 300 * MS,
	   "several threads waiting: at most the whole tick is forgiven");
	ok(hr_stall_tick(&s, 700 * MS, 100 * MS, 455 * MS) == 350 * MS,
	   "half the tick waited: half counts");
	ok(hr_stall_tick(&s, 800 * MS, 750 * MS, 455 * MS) == 50 * MS, "progress: counted anew");

	/* the kernel's figure: threads that want more CPU than there is wait */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nt = (int)(ncpu > 0 && ncpu < 16 ? ncpu : 2) * 2;
	pthread_t t[32];
	uint64_t d0 = hr_stall_run_delay_ns(), t0 = hr_now_ns();
	for (int i = 0; i < nt; i++)
		pthread_create(&t[i], NULL, spin, NULL);
	while (hr_now_ns() - t0 < 300 * MS)
		;
	spin_stop = 1;
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
	uint64_t d = hr_stall_run_delay_ns() - d0;
	if (d0 == 0 && d == 0)
		ok(1, "# SKIP this kernel keeps no schedstat");
	else
		ok(d >= 50 * MS,
		   "%d busy threads on %ld CPUs for 300 ms waited %llu ms on run queues", nt + 1,
		   ncpu, (unsigned long long)(d / MS));
	return tap_done();
}
