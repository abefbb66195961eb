/*
 * engine.h - the epoch engine (Remus-style continuous checkpointing).
 *
 * Primary:  run -> pause -> collect dirty -> save state -> copy dirty pages to
 *           staging -> seal console output of epoch N -> resume -> send epoch N
 *           -> on ack N release the output of epoch N.
 * Backup:   receive a whole epoch into staging -> verify -> apply -> ack; on
 *           promotion load the last committed state and run the replica.
 *
 * Guest console output leaves through hr_console_sink as (offset, bytes):
 * every byte the guest ever wrote has one offset, so a sink that receives the
 * same offset twice (after a failover) drops the repeat - the stream the
 * outside sees is gap-free and never contradicts itself.  The backup holds
 * the output of every committed epoch and releases it on promotion.
 *
 * Both loops run in the calling thread with blocking sockets and return
 * 0 / -errno / -HR_E*; they never exit the process.
 */
#ifndef HR_CORE_ENGINE_H
#define HR_CORE_ENGINE_H

#include <stdint.h>

#include "backends/backend.h"

/* Where released console output goes: called with bytes in offset order. */
typedef void (*hr_console_sink_fn)(void *opaque, uint64_t offset, const void *buf, size_t len);

/* Progress reports (called from the engine thread). */
enum hr_engine_event {
	HR_EV_SYNCED = 1,      /* initial full sync committed: VM protected */
	HR_EV_EPOCH = 2,       /* one epoch acknowledged (stats updated) */
	HR_EV_UNPROTECTED = 3, /* primary lost its backup; guest keeps running */
	HR_EV_PROMOTED = 4,    /* backup took over: guest running here */
	HR_EV_GUEST_EXIT = 5,  /* the guest stopped on its own */
};

struct hr_epoch_stats {
	uint64_t epoch;
	uint64_t interval_us; /* achieved: start of this epoch's pause to previous one's */
	uint64_t pause_us;    /* guest stopped */
	uint64_t dirty_pages;
	uint64_t bytes;	 /* sent on the wire for this epoch */
	uint64_t ack_us; /* resume -> ack received */
};

/* One epoch's stats as a text line (the worker's STATE-DIR/VM.epochs log,
 * read back by the drill): printf and scanf both take it, six unsigned long
 * long: epoch, interval_us, pause_us, dirty_pages, bytes, ack_us. */
#define HR_EPOCH_STATS_FMT                                                                         \
	"epoch=%llu interval_us=%llu pause_us=%llu dirty_pages=%llu bytes=%llu ack_us=%llu"

struct hr_engine_config {
	const char *name;
	const struct hr_backend_ops *ops;
	struct hr_vm_config vm; /* console_out/on_exit are set by the engine */
	uint64_t epoch_us;	/* configured epoch length */
	uint64_t silence_ms;	/* backup: promote after this much silence (0 = on EOF only) */
	int auto_promote; /* backup: promote on silence/EOF (else wait for hr_engine_promote) */
	hr_console_sink_fn console_sink;
	void *console_opaque;
	void (*on_event)(void *opaque, enum hr_engine_event ev, const struct hr_epoch_stats *st);
	void *event_opaque;
	uint64_t max_epochs; /* primary: stop replicating after this many (0 = forever; tests) */
};

struct hr_engine;

/* Build an engine for one VM (nothing runs yet).  -errno on failure. */
int hr_engine_new(struct hr_engine **eng_r, const struct hr_engine_config *cfg);

/* Primary: build the VM from cfg->vm (kernel), hand-shake on peer_fd (a
 * connected stream socket), sync memory while the guest runs, then
 * checkpoint every epoch.  If the backup goes away the guest keeps running
 * unprotected (HR_EV_UNPROTECTED).  Returns when the guest exits (the
 * guest's exit code, >= 0), on hr_engine_stop / abort (0), or -errno. */
int hr_engine_run_primary(struct hr_engine *eng, int peer_fd);

/* Backup: take the handshake on peer_fd, build a replica of the same shape,
 * apply whole epochs and ack them.  Promotion (auto_promote on silence or
 * EOF, or hr_engine_promote): load the last committed state, release the
 * held console output, run the guest here until it exits or hr_engine_stop.
 * Returns -ECONNRESET if the stream ended before the first commit (nothing
 * to promote). */
int hr_engine_run_backup(struct hr_engine *eng, int peer_fd);

/* Thread- and signal-safe requests (a write to a pipe).  stop is orderly:
 * a primary tells its backup that the VM is stopping on purpose, so the
 * backup does not promote.  abort drops everything as a crash would (the
 * backup promotes): for drills and tests. */
void hr_engine_stop(struct hr_engine *eng);
void hr_engine_abort(struct hr_engine *eng);
void hr_engine_promote(struct hr_engine *eng);

/* Latest stats (copy). */
void hr_engine_stats(struct hr_engine *eng, struct hr_epoch_stats *last_r, uint64_t *nr_epochs_r);

void hr_engine_free(struct hr_engine *eng);

/*
 * The STATE blob of every epoch is this envelope (docs/stream-format.md):
 * header, the console bytes the primary still holds (starting at stream
 * offset console_offset), then the backend's state blob.
 */
#define HR_ENVELOPE_MAGIC   0x4e455248u /* "HREN" */
#define HR_ENVELOPE_VERSION 1u

struct hr_state_envelope {
	uint32_t magic, version;
	uint64_t console_offset, console_bytes;
};

/* Build an envelope (malloc'd into *buf_r, *len_r bytes).  0 or -ENOMEM. */
int hr_engine_envelope(uint64_t console_offset, const void *console, size_t console_bytes,
		       const void *blob, size_t blob_bytes, uint8_t **buf_r, size_t *len_r);

#endif
