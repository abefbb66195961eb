/*
 * t-epoch-trigger.c - output-triggered epochs (engine.h: min_epoch_us) end
 * to end on the mem backend: a primary and a backup engine over a
 * socketpair, the primary's per-epoch stats observed.
 *
 * With min_epoch_us set, an epoch that holds a network record ends early,
 * but never less than min_epoch_us after the previous one; without network
 * records (console only), or with min_epoch_us = 0, every epoch lasts
 * epoch_us as before.  Released records still reach the outside whole.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"

#define MAX_EP 4096

struct seen {
	pthread_mutex_t lock;
	uint64_t interval_us[MAX_EP];
	size_t n; /* epochs after the first (which follows the live phase at once) */
	unsigned by[3];
	uint64_t min_us;
};

static void on_epoch(struct ep_pair *ep, const struct hr_epoch_stats *st)
{
	struct seen *s = ep->user;
	pthread_mutex_lock(&s->lock);
	if (st->trigger < 3)
		s->by[st->trigger]++;
	if (st->trigger != HR_EPOCH_END_FORCED && s->n < MAX_EP) {
		s->interval_us[s->n++] = st->interval_us;
		if (!s->min_us || st->interval_us < s->min_us)
			s->min_us = st->interval_us;
	}
	pthread_mutex_unlock(&s->lock);
}

struct run {
	const char *what, *cmdline, *options;
	uint64_t epoch_us, min_epoch_us;
	double secs;
};

/* Run the pair for r->secs; fill s; 0 if the output seen outside is whole. */
static int run(const struct run *r, struct seen *s)
{
	const struct hr_backend_ops *ops = hr_backend_find("mem");
	struct ep_pair ep = {0};
	struct hr_engine_config pc = {
	    .name = "t-trig",
	    .ops = ops,
	    .epoch_us = r->epoch_us,
	    .min_epoch_us = r->min_epoch_us,
	    .silence_ms = 2000,
	    .vm = {.mem_bytes = 16 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = r->cmdline,
		   .options = r->options},
	};
	struct hr_engine_config bc = {.name = "t-trig-b", .silence_ms = 2000};

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	ep.user = s;
	ep.on_p_epoch = on_epoch;
	if (ep_start(&ep, pc, bc, EP_SOCKETPAIR) < 0)
		return -1;
	usleep((useconds_t)(r->secs * 1e6));
	ep_finish(&ep);
	int whole = 1;
	for (unsigned c = 0; c < HR_MAX_CHANNELS; c++)
		whole &= ep.out[c].gaps == 0 && ep.out[c].conflicts == 0;
	int released = ep.out[0].len > 0 && (!r->options || ep.out[1].len > 0);
	pthread_mutex_lock(&s->lock);
	diag("%s: %zu epochs, interval p50 %.1f ms, min %.1f ms, max %.1f ms; by time %u, "
	     "output %u, forced %u",
	     r->what, s->n, hr_percentile_u64(s->interval_us, s->n, 50) / 1e3, s->min_us / 1e3,
	     hr_percentile_u64(s->interval_us, s->n, 100) / 1e3, s->by[0], s->by[1], s->by[2]);
	pthread_mutex_unlock(&s->lock);
	return whole && released ? 0 : -1;
}

int main(void)
{
	struct seen *s = calloc(1, sizeof(*s));
	hr_log_init("t-epoch-trigger", 1, 0);
	alarm(120);
	plan(15);

	/* a record every 20 ms, 200 ms epochs, 5 ms minimum: epochs follow the records */
	struct run sparse = {"records every 20 ms, epoch 200 ms, min 5 ms",
			     "steps_per_s=50 writes=4",
			     "chans=2",
			     200000,
			     5000,
			     2.0};
	ok(run(&sparse, s) == 0, "%s: output released whole", sparse.what);
	uint64_t p50 = hr_percentile_u64(s->interval_us, s->n, 50);
	ok(s->n >= 40, "epochs end with the records: %zu in 2 s (200 ms epochs: 10)", s->n);
	ok(p50 >= 15000 && p50 <= 30000, "interval p50 %.1f ms follows the 20 ms records",
	   p50 / 1e3);
	ok(s->min_us >= 5000, "never shorter than min_epoch (min %.1f ms)", s->min_us / 1e3);
	ok(s->by[HR_EPOCH_END_OUTPUT] >= s->n * 9 / 10,
	   "the stats say why: %u of %zu ended by output", s->by[HR_EPOCH_END_OUTPUT], s->n);

	/* a chatty guest (a record every 0.5 ms): bounded by min_epoch, not continuous */
	struct run chatty = {"records every 0.5 ms, epoch 200 ms, min 5 ms",
			     "steps_per_s=2000 writes=4",
			     "chans=2",
			     200000,
			     5000,
			     1.5};
	ok(run(&chatty, s) == 0, "%s: output released whole", chatty.what);
	p50 = hr_percentile_u64(s->interval_us, s->n, 50);
	ok(s->min_us >= 5000, "a chatty guest: never more often than every 5 ms (min %.2f ms)",
	   s->min_us / 1e3);
	ok(p50 < 20000 && s->n >= 40, "and still well under epoch_us (p50 %.1f ms, %zu epochs)",
	   p50 / 1e3, s->n);

	/* console only: nothing triggers */
	struct run quiet = {"console only, epoch 100 ms, min 5 ms",
			    "steps_per_s=2000 writes=4",
			    NULL,
			    100000,
			    5000,
			    1.5};
	ok(run(&quiet, s) == 0, "%s: output released whole", quiet.what);
	ok(s->n >= 5 && s->min_us >= 100000,
	   "console bytes do not end an epoch early (%zu epochs, min %.1f ms)", s->n,
	   s->min_us / 1e3);
	ok(s->by[HR_EPOCH_END_OUTPUT] == 0 && s->by[HR_EPOCH_END_TIME] == s->n,
	   "every epoch ended by time (%u)", s->by[HR_EPOCH_END_TIME]);

	/* min_epoch_us = 0: today's behaviour, records or not */
	struct run off = {"records every 20 ms, epoch 100 ms, min_epoch off",
			  "steps_per_s=50 writes=4",
			  "chans=2",
			  100000,
			  0,
			  1.5};
	ok(run(&off, s) == 0, "%s: output released whole", off.what);
	ok(s->n >= 5 && s->min_us >= 100000, "off: every epoch lasts epoch_us (min %.1f ms)",
	   s->min_us / 1e3);
	ok(s->by[HR_EPOCH_END_OUTPUT] == 0, "off: none ended by output");

	/* min_epoch_us >= epoch_us: nothing to shorten */
	struct run same = {"records every 20 ms, epoch 50 ms, min 50 ms",
			   "steps_per_s=50 writes=4",
			   "chans=2",
			   50000,
			   50000,
			   1.0};
	run(&same, s);
	ok(s->min_us >= 50000 && s->by[HR_EPOCH_END_OUTPUT] == 0,
	   "min_epoch = epoch: every epoch lasts epoch_us (min %.1f ms)", s->min_us / 1e3);
	free(s);
	return tap_done();
}
