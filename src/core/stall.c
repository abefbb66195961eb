/*
 * stall.c - wedged or starved (stall.h).
 */
#include "core/stall.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

uint64_t hr_stall_tick(struct hr_stall *s, uint64_t now_ns, uint64_t progress_ns, uint64_t delay_ns)
{
	if (progress_ns == UINT64_MAX || now_ns <= progress_ns) {
		/* waiting, or progress just now */
		*s = (struct hr_stall){.progress_ns = progress_ns};
		return 0;
	}
	if (progress_ns != s->progress_ns) {
		/* a new stamp: what passed since it counts whole (no sample yet) */
		*s = (struct hr_stall){.progress_ns = progress_ns,
				       .tick_ns = now_ns,
				       .delay_ns = delay_ns,
				       .stall_ns = now_ns - progress_ns};
		return s->stall_ns;
	}
	if (now_ns > s->tick_ns) {
		uint64_t wall = now_ns - s->tick_ns;
		uint64_t waited = delay_ns > s->delay_ns ? delay_ns - s->delay_ns : 0;
		if (waited > wall)
			waited = wall; /* several threads waited at once: all of it */
		s->stall_ns += wall - waited;
	}
	s->tick_ns = now_ns;
	s->delay_ns = delay_ns;
	return s->stall_ns;
}

uint64_t hr_stall_run_delay_ns(void)
{
	DIR *d = opendir("/proc/self/task");
	uint64_t sum = 0;
	struct dirent *de;
	char path[64], buf[128];

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.16s/schedstat", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		uint64_t run, delay;
		if (n > 0) {
			buf[n] = 0;
			if (sscanf(buf, "%" SCNu64 " %" SCNu64, &run, &delay) == 2)
				sum += delay;
		}
	}
	closedir(d);
	return sum;
}
