/*
 * guest-harness.h - run a test guest on a real backend inside a test
 * program: capture its console, wait (bounded) for a line, send it input.
 */
#ifndef HR_GUEST_HARNESS_H
#define HR_GUEST_HARNESS_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/backend.h"

struct gh {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *buf;
	size_t len, cap;
	int exited, exit_code;
};

static inline int gh_console(void *opaque, unsigned chan, const void *p, size_t n)
{
	struct gh *g = opaque;
	if (chan != 0)
		return 0;
	pthread_mutex_lock(&g->lock);
	if (g->len + n + 1 > g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 65536;
		while (cap < g->len + n + 1)
			cap *= 2;
		g->buf = realloc(g->buf, cap);
		g->cap = cap;
	}
	memcpy(g->buf + g->len, p, n);
	g->len += n;
	g->buf[g->len] = 0;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static inline void gh_exit(void *opaque, enum hr_exit_reason why, int code)
{
	struct gh *g = opaque;
	pthread_mutex_lock(&g->lock);
	g->exited = (int)why;
	g->exit_code = code;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static inline void gh_init(struct gh *g, struct hr_vm_config *cfg)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	cfg->emit = gh_console;
	cfg->emit_opaque = g;
	cfg->on_exit = gh_exit;
	cfg->exit_opaque = g;
}

/* Wait until `needle` appears in the console after offset *from; on success
 * *from moves past it.  Returns 1 if found, 0 on timeout or guest exit. */
static inline int gh_wait(struct gh *g, const char *needle, size_t *from, double timeout_s)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)timeout_s;
	dl.tv_nsec += (long)((timeout_s - (double)(time_t)timeout_s) * 1e9);
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	int found = 0;
	pthread_mutex_lock(&g->lock);
	for (;;) {
		if (g->buf && *from <= g->len) {
			char *p = strstr(g->buf + *from, needle);
			if (p) {
				*from = (size_t)(p - g->buf) + strlen(needle);
				found = 1;
				break;
			}
		}
		if (g->exited || pthread_cond_timedwait(&g->cond, &g->lock, &dl))
			break;
	}
	pthread_mutex_unlock(&g->lock);
	return found;
}

static inline const char *gh_guest(const char *name)
{
	static char path[4096];
	const char *b = getenv("top_builddir");
	snprintf(path, sizeof(path), "%s/tests/guests/%s", b ? b : ".", name);
	return path;
}

#endif
