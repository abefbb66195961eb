/*
 * daemon.h - hareplicated internals shared by its files.
 *
 * One process owns the control socket and the replication port and keeps a
 * table of VMs; every VM's engine runs in a forked worker (worker.c) so a
 * crashing VMM never takes the daemon down.  The worker reports on a
 * socketpair, one kv.h line per role change (ha/role.c names the states
 * and logs their tokens in the worker) and per epoch; the daemon keeps the
 * latest per VM.
 */
#ifndef HR_DAEMON_H
#define HR_DAEMON_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "backends/backend.h"
#include "common/paths.h"
#include "core/engine.h"
#include "ha/role.h"

#define HR_VM_NAME_MAX 64
/* --failover-timeout at most (an hour) */
#define HR_FAILOVER_TIMEOUT_MAX_MS 3600000

/* The daemon-to-daemon preamble on a replication connection, before the
 * engine's own handshake: the primary sends `hrd=1 vm=NAME` (with port=,
 * speaking=, node=; a migration's source also backup= and backup_node=,
 * where the destination re-protects the VM after the hand-off), the backup
 * answers `hrd=1 status=ok` or `hrd=1 status=error error=TEXT`; one kv.h
 * line each, at most HR_PREAMBLE_MAX bytes. */
#define HR_PREAMBLE_MAX 512

/* Valid VM name: [A-Za-z0-9_.-], 1..64, not starting with '.' or '-'. */
int hr_vm_name_ok(const char *name);

/* What a worker needs (filled by the daemon before fork). */
struct hr_worker_args {
	enum hr_role_side side;
	int peer_fd;   /* connected replication socket, blocking */
	int status_fd; /* socketpair end to the daemon */
	char name[HR_VM_NAME_MAX + 1];
	const char *peer_desc;
	/* primary */
	const struct hr_backend_ops *ops;
	struct hr_vm_config vm;
	uint64_t epoch_us;
	uint64_t min_epoch_us; /* output-triggered epochs (0: off) */
	const char *console_spec;
	/* where the peer daemon listens, for re-protection ("" = unknown) */
	char reconnect_addr[160];
	char peer_node[HR_VM_NAME_MAX + 1]; /* the peer's --node ("" = not sent) */
	/* backup */
	/* a migration's destination: where the VM is re-protected after the
	 * hand-off (the preamble's backup=, or the source's host when that is
	 * this host; "" = nowhere) and that host's node */
	char migrated_backup[160];
	char migrated_backup_node[HR_VM_NAME_MAX + 1];
	uint64_t silence_ms;
	const char *console_pattern; /* "%s" -> VM name */
};

/* reconnect.c: re-protection from a worker.  Connect to the peer daemon
 * at addr ("host:port"), send the preamble for vm and read the answer,
 * all within timeout_ms: 0 with *fd_r (the engine's handshake follows),
 * -HR_EPROMOTED when the peer runs vm and releases its output, other
 * -errno (try again later).  peer_node gets the peer's --node name. */
int hr_reconnect_peer(const char *addr, const char *vm, int speaking, int timeout_ms, int *fd_r,
		      char *peer_node, size_t peer_node_size);
/* On a connected TCP socket (always consumed): the TLS client handshake
 * (HR_TLS_DEADLINE_MS at most), the preamble for vm, the answer, all within
 * timeout_ms; then the authenticated peer name must match the node it
 * answers with (hr_transport_check_node).  0 with *fd_r (plaintext, the
 * engine's handshake follows), or -errno as hr_reconnect_peer, with err
 * saying why for a person.  desc is the peer's address, for logs. */
int hr_peer_open(int tcp_fd, const char *desc, const char *vm, int speaking, int timeout_ms,
		 int *fd_r, char *peer_node, size_t peer_node_size, char *err, size_t errlen);
/* Migration: connect to the destination daemon at addr, TLS and the
 * preamble for vm (as a primary that does not speak), within timeout_ms;
 * the preamble names the VM's backup host (backup "host:port", its node
 * backup_node; NULL or "" when unknown) where the destination re-protects
 * it after the hand-off.
 * 0 with *fd_r, -EAGAIN (busy: try again), -HR_EPROMOTED (vm runs
 * there), other -errno; err says why for a person. */
int hr_migrate_peer(const char *addr, const char *vm, const char *backup, const char *backup_node,
		    int timeout_ms, int *fd_r, char *peer_node, size_t peer_node_size, char *err,
		    size_t errlen);
/* HOST[:PORT] or [V6]:PORT -> out "host:port" (default port HR_DEFAULT_PORT),
 * host and port apart; -EINVAL if malformed. */
int hr_addr_norm(const char *to, char *out, size_t size, char *host, size_t hsz, char *port,
		 size_t psz);
/* Does host:port name this daemon's own replication port (--listen)? */
int hr_addr_is_self(const char *host, const char *port);
/* The port of --listen (what a peer connects back to). */
const char *hr_listen_port(void);
/* desc ("host:port" / "[v6]:port") with another port; 0 or -ENAMETOOLONG. */
int hr_addr_with_port(char *out, size_t size, const char *desc, const char *port);

/* Child side: runs the engine; returns the process exit status. */
int hr_worker_main(struct hr_worker_args *a);
/* vm-accept.c: the disks of this host's own definition of VM `name` (a VM
 * started here with --disk), as the daemon's table has them: their number
 * (0: none) and *disks_r.  A backup worker asks (its fork's copy of the
 * table) to take a copy back onto the images it started from. */
struct hr_disk_spec;
unsigned hr_dvm_own_disks(const char *name, const struct hr_disk_spec **disks_r);

/* Daemon options. */
struct hr_daemon_opts {
	const char *control_path;
	const char *listen;
	const char *state_dir;
	const char *disk_dir;	     /* --disk-dir: backups' images, DIR/VM/diskN.img */
	const char *disk_durability; /* --disk-durability ack|flush (NULL: ack) */
	const char *console_pattern;
	uint64_t failover_timeout_ms;
	uint64_t max_pause_ms;	 /* --max-pause: a wedged engine's heartbeats stop */
	int unprotected_release; /* --unprotected-output release */
	int cluster_mode;	 /* --cluster-mode: a cluster manager decides promotion */
	int foreground, verbose;
	/* witness (ha/witness.h, docs/witness.md) */
	const char *witness;	 /* --witness HOST[:PORT] this host's VMs use, NULL = none */
	const char *replica_tap; /* --replica-tap PATTERN ("%s" = VM name), NULL = the primary's */
	const char *node;	 /* --node: this host's name at the witness (gethostname) */
	uint64_t lease_ms;	 /* --lease-ms; 0 = 2 x failover timeout, >= 1000
				  * (hr_witness_lease_ms()) */
	int serve_witness;	 /* --serve-witness: a witness only, no VMs */
	/* what a primary may ask this host's backups for (--max-memory, --max-vcpus) */
	uint64_t max_mem_bytes;
	unsigned max_vcpus;
	uint64_t epochs_log_max; /* --epochs-log-max: STATE-DIR/VM.epochs rotates at this size */
	/* peer-link security (transport.c, src/net/tls.h): exactly one of
	 * tls_cert + tls_key + (tls_ca | tls_pin), tls_psk, insecure */
	const char *tls_cert, *tls_key, *tls_ca, *tls_pin, *tls_psk;
	int insecure;
	const char *pidfile; /* --pidfile, NULL = none */
};

/* options.c: the options, from the configuration file and the command line
 * (the command line wins).  What the command line asks beyond settings: */
struct hr_dopts_run {
	int help, version, check_config;
	const char *config; /* the configuration file read, NULL = none */
};
/* Fill hr_dopts and run: 0, -EINVAL (bad usage or a bad setting in the
 * file) or another -errno (the file cannot be read); the reason is
 * printed.  With run->help or run->version set nothing else was checked. */
int hr_dopts_parse(int argc, char **argv, struct hr_dopts_run *run);
void hr_dopts_usage(FILE *f);
/* The settings in force, in the configuration file's syntax. */
void hr_dopts_print(FILE *f, const struct hr_dopts_run *run);

/* transport.c: the process's TLS context (NULL only for a witness without
 * TLS options); workers inherit it. */
struct hr_tls_ctx;
extern struct hr_tls_ctx *hr_tls;
/* Check the --tls-* / --insecure options and build hr_tls: 0, -EINVAL
 * (bad combination: a usage error) or another -errno (a file could not be
 * used); err says why. */
int hr_transport_init(char *err, size_t errlen);
/* "tls-ca", "tls-pin", "tls-psk", "insecure" (or "none": a plain witness). */
const char *hr_transport_name(void);
/* After the preamble: does the node the peer claims equal the name it
 * authenticated as (certificate CN or PSK identity)?  0, or -HR_EAUTH
 * (logged with desc).  Pinned and insecure links carry no name, nor does
 * the server's side of a PSK link (only clients send an identity): 0. */
int hr_transport_check_node(const char *vm, const char *desc, const char *auth_name,
			    const char *claimed);
/* Handshake deadline of a peer link (connect and accept), ms. */
#define HR_TLS_DEADLINE_MS 4000

/* Remove what the daemon keeps for a VM that was stopped on purpose
 * (STATE-DIR/VM.epochs, VM.epochs.1, VM.worker); console files stay. */
void hr_vm_state_remove(const char *vm);

extern struct hr_daemon_opts hr_dopts;

/* vm*.c: the VM table, worker supervision, the commands on VMs (the
 * files are listed in vm-internal.h).  ctl is the waiting control
 * connection (control.c), if any. */
struct hr_ctl_conn;
struct hr_dvm;
struct event_base;
struct hr_sbuf;
struct hr_kvline;

void hr_vms_init(struct event_base *base);
void hr_vms_accept(int fd, const char *peer_desc);
void hr_vms_reap(void);
unsigned hr_vms_nr_workers(void);

/* Control requests; each either replies now (hr_ctl_reply) or later. */
void hr_vms_cmd_start(struct hr_ctl_conn *cc, const struct hr_kvline *req);
void hr_vms_cmd_stop(struct hr_ctl_conn *cc, const char *name);
void hr_vms_cmd_failover(struct hr_ctl_conn *cc, const char *name);
/* vm-cluster.c: what a cluster manager's resource agent asks */
void hr_vms_cmd_promote(struct hr_ctl_conn *cc, const char *name);
void hr_vms_cmd_demote(struct hr_ctl_conn *cc, const char *name, int drop);
/* Worker signals: the cluster's word to a primary without a backup
 * (hr_engine_cluster_release), demote (hr_engine_demote: paused, standby),
 * resume a standby (hr_engine_resume), drop this host's copy as a crash
 * would (hr_engine_abort: the peer's copy stays). */
/* Clear of the backends' own signals (kvm/vcpu.c kicks vCPU threads with
 * SIGRTMIN + 1; a handler installed there replaces the worker's). */
#define HR_SIG_CLUSTER_RELEASE (SIGRTMIN + 4)
#define HR_SIG_DEMOTE	       (SIGRTMIN + 5)
#define HR_SIG_RESUME	       (SIGRTMIN + 6)
#define HR_SIG_DROP	       (SIGRTMIN + 7)
void hr_vms_cmd_status(struct hr_ctl_conn *cc, const char *name, int json);
void hr_vms_cmd_migrate(struct hr_ctl_conn *cc, const struct hr_kvline *req);
void hr_vms_ctl_gone(struct hr_dvm *vm);

/* adopt.c: workers outlive the daemon (see there). */
int hr_adopt_listen(const char *vm); /* worker: listening fd or -errno */
void hr_adopt_unlink(const char *vm);
unsigned hr_vms_adopt_all(void); /* daemon start: adopt every live worker */
/* vm.c: take a worker's status connection (it sends event=adopt first). */
int hr_vms_adopt(const char *vm, int fd);

/* control.c */
int hr_ctl_listen(struct event_base *base, int fd);
/* Send body (may be NULL) then `ok` (err == NULL) or `error: err`, and close. */
void hr_ctl_reply(struct hr_ctl_conn *cc, const char *body, const char *err);
void hr_ctl_set_vm(struct hr_ctl_conn *cc, struct hr_dvm *vm);
/* One body line (a kv.h line) now, the reply still to come. */
void hr_ctl_progress(struct hr_ctl_conn *cc, const char *line);

/* witness-serve.c: load STATE-DIR/witness.table (absent = empty; 0, or
 * -errno for a table it cannot read or trust), then answer witness
 * requests on listen_fd. */
int hr_witness_load(const char *state_dir);
int hr_witness_serve(struct event_base *base, int listen_fd);
unsigned hr_witness_serve_nr_vms(void);

#endif
