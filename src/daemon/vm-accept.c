/*
 * vm-accept.c - a replication connection from a primary (the backup side),
 * or from a migration source (vm-migrate.c): the same path; the engine
 * learns from the HELLO that its copy is a migration target.
 *
 * The daemon forks a backup worker for every connection straight away; the
 * worker reads the primary's preamble and asks on its status channel
 * whether the VM's name is free here, and only then does the entry get its
 * name.  Connections still in their preamble or handshake (not yet
 * syncing: nobody has shown they are a primary) are bounded per source
 * address and overall, and each gets a deadline, so that idle connections
 * from one place can neither fork without end nor keep a real primary out.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "daemon/vm-internal.h"

#define MAX_HANDSHAKES		  16
#define MAX_HANDSHAKES_PER_SOURCE 4
/* TLS, the preamble and the HELLO must be through by then (a real primary
 * sends them at once, but its daemon connects before its worker has built
 * or attached the VM: seconds for a Xen domain under emulation; check-xen
 * once went past 5 s on a loaded host); the worker's own read timeouts
 * are 10 s each */
#define HANDSHAKE_DEADLINE_S 10
/* then the worker builds the replica before it answers: a Xen replica is a
 * domain libxl builds (seconds, more under emulation) */
#define REPLICA_BUILD_DEADLINE_S 60

/* "host:port" / "[v6]:port": the length of the host part */
static size_t source_len(const char *desc)
{
	const char *colon = strrchr(desc, ':');
	return colon ? (size_t)(colon - desc) : strlen(desc);
}

static int in_handshake(const struct hr_dvm *vm)
{
	return vm->side == HR_SIDE_BACKUP && vm->pid > 0 &&
	       (!vm->name[0] || vm->state == HR_RS_CONNECTING);
}

static void handshake_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hr_dvm *vm = arg;
	(void)fd;
	(void)what;
	if (!in_handshake(vm) || vm->wait != W_NONE)
		return;
	if (vm->name[0] && !vm->build_grace) {
		/* the HELLO came (it names the VM): the replica is being built */
		vm->build_grace = 1;
		hr_dvm_arm_timer(vm, handshake_deadline_cb,
				 REPLICA_BUILD_DEADLINE_S - HANDSHAKE_DEADLINE_S);
		return;
	}
	log_warnx(vm->name[0] ? vm->name : NULL,
		  "replication connection from %s: no complete handshake within %d s; closed",
		  vm->peer, vm->build_grace ? REPLICA_BUILD_DEADLINE_S : HANDSHAKE_DEADLINE_S);
	kill(vm->pid, SIGKILL);
}

void hr_vms_accept(int fd, const char *peer_desc)
{
	struct hr_worker_args a = {0};
	unsigned nr = 0, nr_source = 0;
	size_t sl = source_len(peer_desc);
	struct hr_dvm *vm;
	int rc;

	for (vm = hr_dvms; vm; vm = vm->next)
		if (in_handshake(vm)) {
			nr++;
			nr_source +=
			    source_len(vm->peer) == sl && !strncmp(vm->peer, peer_desc, sl);
		}
	if (nr >= MAX_HANDSHAKES || nr_source >= MAX_HANDSHAKES_PER_SOURCE) {
		log_warnx(NULL,
			  "replication connection from %s refused: %u handshakes in progress "
			  "(%u from that address; at most %d, %d from one address)",
			  peer_desc, nr, nr_source, MAX_HANDSHAKES, MAX_HANDSHAKES_PER_SOURCE);
		close(fd);
		return;
	}
	vm = hr_dvm_new("", HR_SIDE_BACKUP, HR_RS_CONNECTING);
	if (!vm) {
		close(fd);
		return;
	}
	snprintf(vm->peer, sizeof(vm->peer), "%s", peer_desc);
	a.side = HR_SIDE_BACKUP;
	a.peer_fd = fd;
	a.peer_desc = vm->peer;
	a.silence_ms = hr_dopts.failover_timeout_ms;
	a.console_pattern = hr_dopts.console_pattern;
	a.vm.mem_bytes = 0; /* the engine learns the shape from the Hello */
	a.vm.nr_vcpus = 1;
	rc = hr_dvm_spawn_worker(vm, &a);
	close(fd);
	if (rc < 0) {
		log_err(NULL, "replication connection from %s: cannot fork a worker: %s", peer_desc,
			hr_strerror(rc));
		hr_dvm_free(vm);
		return;
	}
	hr_dvm_arm_timer(vm, handshake_deadline_cb, HANDSHAKE_DEADLINE_S);
	log_debug(NULL, "replication connection from %s: worker %d", peer_desc, (int)vm->pid);
}

/* What the daemon knows of the entry `vm` (NULL: none), for ha/accept.c. */
void hr_dvm_evidence(const struct hr_dvm *vm, struct hr_ha_local *here)
{
	*here = (struct hr_ha_local){0};
	if (!vm)
		return;
	*here = (struct hr_ha_local){.exists = 1,
				     .worker = vm->pid > 0,
				     .side = vm->side,
				     .state = vm->state,
				     .held = vm->held,
				     .migrating = vm->migrating,
				     .migrated = vm->migrated,
				     .stopping = vm->stop_requested};
}

/* The disks of this host's own definition of the VM (`start --disk`) go
 * from the exited entry `from` to the backup entry `to` that replaces it,
 * so that the next backup worker (a later re-protection) finds them too. */
static void keep_disks(struct hr_dvm *to, const struct hr_dvm *from)
{
	memcpy(to->disk_arg, from->disk_arg, sizeof(to->disk_arg));
	for (unsigned i = 0; i < from->nr_disks; i++) {
		const struct hr_disk_arg *d = &from->disk_arg[i];
		to->disk[i] = from->disk[i];
		to->disk[i].path = to->disk_arg[i].buf + (from->disk[i].path - d->buf);
		if (from->disk[i].serial)
			to->disk[i].serial = to->disk_arg[i].buf + (from->disk[i].serial - d->buf);
		to->disk_arg[i].spec = to->disk[i];
	}
	to->nr_disks = from->nr_disks;
}

/*
 * May a primary's connection for `name` become a backup here?  ha/accept.c
 * decides from what runs here under that name (hr_ha_accept); this acts:
 * the answer is a word the worker maps to the preamble's code, then the
 * reason.
 */
void hr_dvm_name_backup(struct hr_dvm *vm, const char *name, int peer_speaking)
{
	struct hr_dvm *other = name ? hr_dvm_find(name) : NULL;
	struct hr_ha_caller caller = {.name_ok = name && hr_vm_name_ok(name),
				      .named = vm->name[0] != '\0',
				      .speaking = peer_speaking};
	struct hr_ha_local here;
	const char *why;
	char ans[256];

	hr_dvm_evidence(other, &here);
	enum hr_ha_accept_verdict v = hr_ha_accept(&here, &caller, &why);
	const char *code = hr_ha_accept_code(v);
	switch (v) {
	case HR_HA_REFUSE_NAME:
		snprintf(ans, sizeof(ans), "%s invalid VM name\n", code);
		break;
	case HR_HA_ACCEPT:
		if (other) {
			keep_disks(vm, other); /* this host's definition outlives it */
			hr_dvm_free(other);    /* an exited entry: replaced */
		}
		snprintf(vm->name, sizeof(vm->name), "%s", name);
		vm->started_ns = hr_now_ns();
		snprintf(ans, sizeof(ans), "%s\n", code);
		log_info(vm->name, "backup replica for the primary at %s (worker %d)", vm->peer,
			 (int)vm->pid);
		break;
	default:
		if (v == HR_HA_BUSY_STAND_DOWN) {
			hr_token_log(name, HR_TOK_STAND_DOWN,
				     "%s runs this VM and releases its output; "
				     "stopping the copy here, which held its output (worker %d)",
				     vm->peer, (int)other->pid);
			other->stop_requested = 1;
			kill(other->pid, SIGTERM);
		}
		snprintf(ans, sizeof(ans),
			 "%s a VM named %s already exists on the backup host (%s, %s)\n", code,
			 name, hr_dvm_role_name(other), hr_dvm_state_name(other));
		log_warnx(name, "refused a replica from %s: the name is taken (%s, %s): %s",
			  vm->peer, hr_dvm_role_name(other), hr_dvm_state_name(other), why);
		break;
	}
	bufferevent_write(vm->bev, ans, strlen(ans));
}

unsigned hr_dvm_own_disks(const char *name, const struct hr_disk_spec **disks_r)
{
	const struct hr_dvm *vm = hr_dvm_find(name);
	if (!vm || !vm->nr_disks)
		return 0;
	*disks_r = vm->disk;
	return vm->nr_disks;
}
