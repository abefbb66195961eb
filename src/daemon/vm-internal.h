/*
 * vm-internal.h - the daemon's VM table, shared by the vm*.c files only.
 *
 *   vm.c           the table (new, find, free), control replies, the worker's
 *                  status channel, forking and reaping workers
 *   vm-start.c     `start`: connect to the peer daemon, preamble, fork
 *   vm-accept.c    a replication connection: fork a backup worker, name it
 *   vm-stop.c      `stop`, and stopping every worker at shutdown
 *   vm-failover.c  `failover`: promote a backup by hand
 *   vm-cluster.c   `promote`, `demote`: a cluster manager's resource agent
 *   vm-status.c    `status`, as text or JSON
 *   vm-migrate.c   `migrate`: the VM moves to another host
 */
#ifndef HR_DAEMON_VM_INTERNAL_H
#define HR_DAEMON_VM_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "disk/spec.h"
#include "daemon/daemon.h"
#include "ha/accept.h"

/* What the control request waiting on a VM (if any) waits for. */
enum wait_kind { W_NONE, W_START, W_STOP, W_FAILOVER, W_MIGRATE, W_DEMOTE, W_RESUME, W_DROP };

struct hr_dvm {
	struct hr_dvm *next;
	char name[HR_VM_NAME_MAX + 1]; /* "" until a backup worker names it */
	enum hr_role_side side;
	enum hr_role_state state; /* as the worker last reported it */
	pid_t pid;
	struct bufferevent *bev; /* status channel */
	char peer[160];
	char peer_node[HR_VM_NAME_MAX + 1]; /* the peer's --node, from its preamble */
	uint64_t started_ns;
	struct hr_epoch_stats last;
	int have_stats;
	uint64_t nr_epochs;
	char last_token[24];
	int held; /* primary without a backup: output held (it may be replaced) */
	/* liveness, as the worker last reported it (every second) */
	uint64_t live_ns;	     /* when that report arrived; 0 = none yet */
	uint64_t state_age_ms;	     /* time in the current state then */
	uint64_t peer_silent_ms;     /* since the peer's last byte then; UINT64_MAX = no peer */
	char witness[16];	     /* standing with the witness then ("" = none) */
	uint64_t lease_left_ms;	     /* then */
	uint64_t witness_contact_ms; /* then; UINT64_MAX = never */
	char held_why[160];	     /* output held without a backup: why ("" = not) */
	uint64_t held_ms;	     /* ... for how long then */
	uint64_t next_reprotect_ms;  /* then: until the next re-protection attempt */
	char dropped_why[256];	     /* then: the last backup dropped its copy, why ("") */
	/* the images the worker uses, as it last reported them (path, size) */
	char live_disk[HR_MAX_DISKS][256];
	uint64_t live_disk_bytes[HR_MAX_DISKS];
	unsigned nr_live_disks;
	/* the console sink's trouble then ("" / 0: it writes; console.h) */
	char console[160];	 /* its spec, while it holds output */
	char console_error[128]; /* its last error, while failing */
	uint64_t console_held_bytes, console_retries;
	uint64_t console_failing_since_s; /* wall clock; 0 = not failing */
	char error[256];
	int failover_requested, stop_requested;
	int adopted;	/* the worker is not our child: its end shows as EOF */
	int exit_clean; /* from its last `exit` line: 1 clean, 0 not, -1 not said */
	/* a control request waiting on this VM */
	struct hr_ctl_conn *waiter;
	enum wait_kind wait;
	struct event *timer;
	/* primary: connection being set up */
	int peer_fd;
	struct event *conn_ev;
	/* primary: configuration */
	const struct hr_backend_ops *ops;
	char *backend, *kernel, *initrd, *cmdline, *console_spec;
	char *attach;	 /* the running VM a backend with HR_BF_ATTACH drives, or NULL */
	int build_grace; /* backup: HELLO through, the replica being built (vm-accept.c) */
	char *net;	 /* --net spec ("tap=IF,mac=MAC"), NULL: none */
	/* --disk: the VM's disks (specs point into disk_arg); 0..HR_MAX_DISKS */
	struct hr_disk_arg disk_arg[HR_MAX_DISKS];
	struct hr_disk_spec disk[HR_MAX_DISKS];
	unsigned nr_disks;
	uint64_t mem_bytes, epoch_us, min_epoch_us; /* min_epoch_us: 0 = off */
	unsigned nr_vcpus;
	/* primary: a migration (vm-migrate.c) */
	int migrating, migrated;
	char mig_to[160];
	uint64_t mig_started_ns;
	char mig_report[2048]; /* the `report` body line of the last one */
};

/* vm.c */
extern struct event_base *hr_dvm_base;
extern struct hr_dvm *hr_dvms; /* the table, newest first */

const char *hr_dvm_role_name(const struct hr_dvm *vm);
const char *hr_dvm_state_name(const struct hr_dvm *vm);
/* A worker runs, or the VM has not reached a final state. */
int hr_dvm_alive(const struct hr_dvm *vm);
/* The named VM (unnamed backups never match), or NULL. */
struct hr_dvm *hr_dvm_find(const char *name);
/* Added to the table; NULL when out of memory. */
struct hr_dvm *hr_dvm_new(const char *name, enum hr_role_side side, enum hr_role_state st);
/* Removes vm from the table; a waiting request gets an error. */
void hr_dvm_free(struct hr_dvm *vm);
/* The control request cc waits on vm (for wait) until hr_dvm_reply(). */
void hr_dvm_wait(struct hr_dvm *vm, struct hr_ctl_conn *cc, enum wait_kind wait);
/* Answer the waiting control request (if any) and end the wait. */
void hr_dvm_reply(struct hr_dvm *vm, const char *body, const char *err);
/* (Re)arm vm's one timer: cb(vm) after seconds. */
void hr_dvm_arm_timer(struct hr_dvm *vm, event_callback_fn cb, int seconds);
/* Fork a worker for vm with a status channel to it; 0 or -errno. */
int hr_dvm_spawn_worker(struct hr_dvm *vm, struct hr_worker_args *a);

/* vm-start.c: a start request waits for the new worker's first state
 * (syncing: the VM was built and the backup took the handshake) or its
 * end; these two tell it. */
void hr_dvm_start_state(struct hr_dvm *vm, enum hr_role_state st);
void hr_dvm_start_ended(struct hr_dvm *vm);

/* vm-status.c: the disks of a worker's `live` line (disk<i>, disk<i>_bytes). */
void hr_dvm_live_disks(struct hr_dvm *vm, const struct hr_kvline *kv);

/* vm-cluster.c: a waiting demote / promote learns the worker's new state */
void hr_dvm_cluster_state(struct hr_dvm *vm, enum hr_role_state st);

/* vm-accept.c: a backup worker asks whether name is free here; the answer
 * goes back on its status channel. */
void hr_dvm_name_backup(struct hr_dvm *vm, const char *name, int peer_speaking);
/* What the daemon knows of vm (NULL: no entry), as ha/accept.c's evidence. */
void hr_dvm_evidence(const struct hr_dvm *vm, struct hr_ha_local *here);

/* vm-migrate.c: the worker's `event=migration` line, its liveness line
 * (progress for a waiting migrate), its end after a migration (the VM is
 * forgotten), a waiting migrate's control connection gone (cancel). */
void hr_dvm_migration_event(struct hr_dvm *vm, const struct hr_kvline *kv);
void hr_dvm_migrate_progress(struct hr_dvm *vm, const struct hr_kvline *kv);
void hr_dvm_migrated_ended(struct hr_dvm *vm);
void hr_dvm_migrate_ctl_gone(struct hr_dvm *vm);

#endif
