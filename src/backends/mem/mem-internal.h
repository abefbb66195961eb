/*
 * mem-internal.h - shared between mem.c (the backend hooks) and mem-guest.c
 * (the software guest: one step, the vCPU thread, pause/resume).
 *
 * Locking:
 *  - ctl_lock + ctl_cond: the vCPU thread's run/park handshake (run_req,
 *    parked, stopping, exited, next_step_ns).
 *  - dirty_lock: the dirty bitmap and `tracking`; the guest stores page data
 *    and sets the dirty bits of a step under it, so dirty_fetch sees a step
 *    either whole or not at all.
 *  - The guest state (prng, nr_steps, nr_writes) and the parameters are
 *    touched by the vCPU thread while it runs and by the control thread only
 *    while it is parked (save_state / load_state require a paused vm).
 *  - nr_live_maps is only touched by the control thread.
 */
#ifndef HR_MEM_INTERNAL_H
#define HR_MEM_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "backends/backend.h"
#include "disk/image.h"

#define MEM_PRNG_SEED	    0x6a09e667f3bcc908ull
#define MEM_MAX_LINE_BYTES  65536u
#define MEM_MAX_WRITES_STEP (1u << 20)

/* Who drives the guest. */
enum mem_guest_mode {
	MEM_GUEST_HAND = 0,   /* hr_mem_guest_step() from the test (kernel "none", replicas) */
	MEM_GUEST_THREAD = 1, /* the vm's own vCPU thread, started by resume */
};

/* The guest's "command line"; carried in the state blob. */
struct mem_guest_params {
	uint64_t steps_per_s; /* 0 = as fast as possible */
	uint64_t writes;      /* page writes per step (thread mode) */
	uint64_t line_bytes;  /* console line padded to this length (0 = no padding) */
	uint64_t stop_after;  /* exit (HR_EXIT_DEBUG_PORT, 0) after this step; 0 = never */
	uint64_t disk_writes; /* stamped 4 KiB blocks written to disk 0 per step */
	uint64_t disk_flush;  /* 1: each step with disk writes ends with a flush */
};

/*
 * The disk guest (disk_writes > 0, disk 0 given): each write fills one
 * 4 KiB block with its stamp, (le64 step, le64 block) repeated, writes it
 * to the image, reports it (cfg.disk_write) and only then records the
 * step in the stamp table, a le64 per block in the last pages of guest RAM
 * (MEM_STAMP_UNKNOWN: a write that failed, content undefined).  A guest
 * restored from a state blob (load_state) reads the whole disk back and
 * says on its console, before its next step:
 *   diskcheck blocks=B errors=E
 * B: blocks with a stamp, E: blocks whose content is not what the table
 * says (a block never written must read zero: the image starts zeroed).
 * Writes are synchronous within a step, so pause (which waits for the
 * step) drains them, as the disk contract asks.
 */
#define MEM_DISK_BLOCK_BYTES 4096u
#define MEM_STAMP_UNKNOWN    UINT64_MAX

struct mem_vm {
	char name[64];
	struct hr_vm_config
	    cfg; /* cfg.name points at name; cfg.kernel_path/cmdline/options unset */
	struct hr_mem_region region; /* what mem_layout returns (hva NULL with map=batch) */
	uint8_t *ram;		     /* the backing mapping, always */
	uint64_t nr_gfns;
	int map_batch;
	int fill;		  /* options fill=1: a primary's RAM starts with data */
	uint64_t save_delay_ms;	  /* options save_delay_ms=N: save_state takes this long (tests) */
	uint64_t save_delay_from; /* ... from the save_delay_from'th save on (0: every one) */
	uint64_t nr_saves;
	unsigned nr_live_maps;

	struct hr_chan_desc chans[HR_MAX_CHANNELS];
	char chan_names[HR_MAX_CHANNELS][16];
	unsigned nr_chans;

	pthread_mutex_t dirty_lock;
	uint64_t *dirty; /* nr_gfns bits */
	int tracking;

	int running; /* between resume and pause (control thread only) */
	enum mem_guest_mode mode;
	struct mem_guest_params params;
	char *line; /* console line buffer, MEM_MAX_LINE_BYTES + 1 */

	/* vCPU thread */
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond; /* CLOCK_MONOTONIC */
	pthread_t thread;
	int thread_started;
	int run_req;  /* resume asked the thread to run */
	int parked;   /* the thread is between steps, waiting */
	int stopping; /* close: the thread must end */
	int exited;   /* the guest stopped on its own (stop_after) */
	uint64_t next_step_ns;

	/* guest state, carried by the blob */
	uint64_t prng;
	uint64_t nr_steps;
	uint64_t nr_writes;

	/* disks (hr_image; the replica opens them too, writes only once promoted) */
	struct hr_image img[HR_MAX_DISKS];
	unsigned nr_disks;
	uint64_t disk_blocks; /* of disk 0 */
	uint64_t stamp_gfn;   /* first page of the stamp table (nr_gfns: none) */
	uint8_t *blockbuf;
	char diskcheck[96]; /* the line to emit before the next step ("" none) */

	char last_error[256];
};

static inline struct mem_vm *to_mem(struct hr_vm *vm)
{
	return (struct mem_vm *)vm;
}

void mem_fail(struct mem_vm *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse cfg->cmdline ("k=v k=v") into m->params; -EINVAL naming the key. */
int mem_guest_parse_cmdline(struct mem_vm *m, const char *cmdline);

/* One guest step of nr_writes writes: pages, dirty bits, console line, records. */
void mem_guest_do_step(struct mem_vm *m, uint64_t nr_writes);

/* Disks: open cfg->disks (and size the stamp table); the check after a restore. */
int mem_disk_open(struct mem_vm *m);
void mem_disk_close(struct mem_vm *m);
void mem_disk_check(struct mem_vm *m);

/* Thread mode: start or un-park / park (returns when no step is in progress) / end. */
int mem_guest_resume(struct mem_vm *m);
void mem_guest_pause(struct mem_vm *m);
void mem_guest_stop(struct mem_vm *m);

#endif
