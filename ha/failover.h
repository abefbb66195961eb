/*
 * failover.h - when may a backup take over?  The one place that decides,
 * so that heartbeats on their own schedule, quorum / witness leases and
 * fencing can be added here without touching the epoch engine.
 *
 * It decides; ha/role.c logs.  Today's rule: promote when the primary's stream has ended (EOF /
 * reset: its process or host is gone) or has been silent for silence_ms, and only if at least one
 * whole epoch was committed (there is something to run).
 */
#ifndef HR_HA_FAILOVER_H
#define HR_HA_FAILOVER_H

#include <stdint.h>

struct hr_tls_ctx; /* net/tls.h */

enum hr_ha_verdict {
	HR_HA_WAIT = 0,	   /* keep receiving */
	HR_HA_PROMOTE = 1, /* take over now */
	HR_HA_GIVE_UP = 2, /* stream gone before any commit: nothing to run */
	HR_HA_STALE = 3,   /* the witness says this copy is stale: it must never run */
};

/*
 * This host's standing with the witness for one VM (ha/lease.c; protocol
 * and rules in ha/witness.h and docs/witness.md).  A backup promotes only
 * with a lease; a primary without a backup releases output only while it
 * holds one; a protected primary registers its backup so that the backup
 * may claim.  No witness (addr NULL): every call says so and changes nothing.
 */
enum hr_ha_standing {
	HR_HA_W_NONE = 0,     /* no witness configured */
	HR_HA_W_UNKNOWN,      /* not asked yet */
	HR_HA_W_REGISTERED,   /* it knows our backup (protected) */
	HR_HA_W_LEASE,	      /* we hold the lease */
	HR_HA_W_DENIED,	      /* it refused (another host holds or owns the VM) */
	HR_HA_W_UNREACHABLE,  /* no answer */
	HR_HA_W_UNREGISTERED, /* it has no record of the VM (lost its table?) */
};
struct hr_ha_asker; /* lease.c: the thread that asks the witness */
struct hr_ha_lease {
	const char *addr;	/* witness "host[:port]"; NULL = none */
	struct hr_tls_ctx *tls; /* that link's security (NULL: plain TCP) */
	const char *vm, *node, *peer_node;
	uint64_t lease_ms;
	uint64_t until_ns;	   /* our lease is valid until then (0: none) */
	uint64_t next_ask_ns;	   /* do not ask again before */
	uint64_t contact_ns;	   /* the witness's last answer */
	int standing;		   /* enum hr_ha_standing (status reads it, relaxed) */
	char owner[65];		   /* the owner the witness last named */
	char why[160];		   /* the witness's last reason */
	struct hr_ha_asker *asker; /* NULL until the first request (lease.c) */
};
const char *hr_ha_standing_name(int standing);
/*
 * None of these waits for the witness: requests go out on the lease's own
 * thread, and every call first takes the answer that came back, if any.
 * "No answer yet" reads as "not granted yet" (ask again after
 * hr_ha_lease_poll_ms).  Call them from one thread (the engine's).
 *
 * Backup: claim the VM from primary peer_node.  1 granted (promote), 0
 * denied, no answer yet, or the witness does not know the VM (it lost its
 * table: the primary registers again if it lives; wait), -1 stale (the
 * witness names another owner, or another backup: this copy must never
 * run; said once per such answer).  A grant stays: 1 from then on. */
int hr_ha_lease_claim_promotion(struct hr_ha_lease *l, uint64_t now_ns);
/* Backup: a claim sent earlier has been granted (the witness made this
 * host the owner: it must promote even if its primary speaks again). */
int hr_ha_lease_promotion_granted(struct hr_ha_lease *l);
/* Primary without a backup: claim or renew as the owner.  1 held, 0 not
 * (held by none), -1 the VM is owned elsewhere (stand down). */
int hr_ha_lease_claim_owner(struct hr_ha_lease *l, uint64_t now_ns);
/* Protected primary, at every loop point: tell the witness who the backup
 * is (anew: a session started; ends our lease there, relied on no more
 * from now), then ask every few seconds whether it still knows, and tell
 * it again when it does not (a witness that lost its table).  1 while the
 * witness holds our registration, else 0. */
int hr_ha_lease_register(struct hr_ha_lease *l, int anew, uint64_t now_ns);
/* The VM was stopped on purpose: the witness forgets it (best effort;
 * waits, bounded, for the answer: the VM no longer runs here). */
void hr_ha_lease_forget(struct hr_ha_lease *l);
/* Forget the lease on this side (a session starts: acks release output). */
void hr_ha_lease_drop(struct hr_ha_lease *l);
int hr_ha_lease_valid(const struct hr_ha_lease *l, uint64_t now_ns);
/* A request is out, its answer not back yet (one that came is taken). */
int hr_ha_lease_busy(struct hr_ha_lease *l);
/* When to call again (ms): soon while an answer is on its way, else when
 * the next request is due (0: now); -1 without a witness. */
int hr_ha_lease_poll_ms(struct hr_ha_lease *l, uint64_t now_ns);
/* Readable while an answer waits to be taken (-1 before the first request). */
int hr_ha_lease_fd(const struct hr_ha_lease *l);
/* Answers taken so far (failures to get one included). */
uint64_t hr_ha_lease_answers(const struct hr_ha_lease *l);
/* Stop the asker (waits for an exchange in flight, bounded). */
void hr_ha_lease_fini(struct hr_ha_lease *l);

struct hr_ha_monitor {
	const char *vm;
	uint64_t silence_ms;	   /* 0: only an ended stream counts */
	uint64_t last_rx_ns;	   /* last time anything arrived from the primary */
	int have_commit;	   /* an epoch has been committed */
	int auto_promote;	   /* else only an operator's failover promotes */
	struct hr_ha_lease *lease; /* NULL or no witness: promote on loss alone */
	const char *why;	   /* set by hr_ha_decide: why the primary counts as lost */
};

/*
 * A primary without a backup (its backup was lost, or it is a promoted
 * backup): may its guest's output leave?  A lost backup may have died - or
 * sit behind a torn link, about to promote; nothing on this side tells the
 * two apart.  So output is released only with proof that no other host
 * speaks for the VM:
 *   - it was already speaking (a promoted backup: its old primary holds
 *     output once its backup is gone, and stands down when it meets it);
 *   - a witness lease (granted to one host at a time; with a witness
 *     configured this is the only proof taken, "speaking" included);
 *   - the operator's explicit choice of availability over that guarantee
 *     (hareplicated --unprotected-output release);
 *   - in cluster mode, the cluster manager's word that the peer's copy is
 *     gone (its instance stopped or its node fenced: `hareplicate promote`
 *     on this host, which the OCF agent runs; contrib/ocf/README.md).
 * Otherwise output stays held (+output-held) until a backup is back and
 * acknowledges an epoch; held output is released then.
 */
enum hr_ha_output {
	HR_HA_OUTPUT_HOLD = 0,
	HR_HA_OUTPUT_RELEASE = 1,
	HR_HA_OUTPUT_STAND_DOWN = 2, /* the VM runs elsewhere: stop here */
};

struct hr_ha_alone {
	const char *vm;
	int release_allowed;	   /* --unprotected-output release */
	int cluster_release;	   /* the cluster confirmed the peer holds no copy */
	int speaking;		   /* it was releasing when it became alone */
	struct hr_ha_lease *lease; /* with a witness: release only with its lease */
	const char *why;	   /* set by hr_ha_alone_output */
};
enum hr_ha_output hr_ha_alone_output(struct hr_ha_alone *a, uint64_t now_ns);
/* When to decide again (ms, -1: only on events). */
int hr_ha_alone_poll_ms(const struct hr_ha_alone *a, uint64_t now_ns);

/*
 * A primary lost its backup: does it go on speaking?  Only if it spoke
 * before (a promoted backup re-protecting itself) and the lost backup was
 * never sent a whole epoch: without a complete copy a backup never
 * promotes (hr_ha_decide: nothing to promote), so nobody else can speak.
 * Once a whole epoch left, the backup may hold it committed and promote
 * behind a torn link: output is held (hr_ha_alone_output decides again).
 */
int hr_ha_speaks_after_loss(int was_speaking, uint64_t whole_epochs_sent);

/* Re-protection after `failures` sessions in a row that ended before the
 * new backup held a copy (a bad link): base_ms doubled per failure, at most
 * HR_HA_REPROTECT_MAX_MS.  No failure: base_ms. */
#define HR_HA_REPROTECT_MAX_MS 30000
uint64_t hr_ha_reprotect_delay_ms(uint64_t base_ms, unsigned failures);

void hr_ha_heard(struct hr_ha_monitor *m, uint64_t now_ns);
/* stream_ended: EOF, reset or a fatal stream error. */
enum hr_ha_verdict hr_ha_decide(struct hr_ha_monitor *m, uint64_t now_ns, int stream_ended);
/* The primary is lost (or the operator asked): promote now, wait (the
 * witness refused or did not answer: ask again), or never (stale). */
enum hr_ha_verdict hr_ha_may_promote(struct hr_ha_monitor *m, uint64_t now_ns);
/* How long the receive loop may block before deciding again (ms, -1 = forever). */
int hr_ha_poll_ms(const struct hr_ha_monitor *m, uint64_t now_ns);

#endif
