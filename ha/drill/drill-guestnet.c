/*
 * drill-guestnet.c - `hareplicate drill --net`: the guest is a network
 * service (tests/guests/netsvc) on a virtio-net device, and clients in OUT
 * talk to it through the failover with the host's own TCP/IP stack.
 *
 * The guest's network: in A and in B a bridge "gbr" joins the TAP the VM
 * uses (DRILL_GTAP, the same name on both hosts) and a veth whose other
 * end is in OUT's bridge "gbr" (OUT has DRILL_GNET_OUT).  The guest is
 * DRILL_GNET_GUEST wherever it runs: the promoted copy announces itself
 * (RARP) and OUT's bridge learns its new port.
 *
 * The clients are netprobe (tests/netprobe.c): one TCP connection to the
 * running-sum service and a stream of UDP requests, from the start of the
 * VM until the drill is over (SIGTERM), every answer checked against every
 * earlier one.  Judged: no contradiction, no reset, and no longer silence
 * than DRILL_NET_MAX_GAP_MS where a failover happened.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "ha/drill/drill.h"

int drill_guestnet_up(struct drill *d)
{
	const char *L = d->log_ip;
	const char *ns[2] = {d->ns_a, d->ns_b}, *out_end[2] = {"ga", "gb"};

	if (!d->o->net)
		return 0;
	if (drill_ip(L, "-n %s link add gbr type bridge", d->ns_out) ||
	    drill_ip(L, "-n %s addr add %s/24 dev gbr", d->ns_out, DRILL_GNET_OUT) ||
	    drill_ip(L, "-n %s link set gbr up", d->ns_out))
		return -1;
	for (int i = 0; i < 2; i++)
		if (drill_ip(L, "-n %s link add gbr type bridge", ns[i]) ||
		    drill_ip(L, "-n %s tuntap add dev %s mode tap", ns[i], DRILL_GTAP) ||
		    drill_ip(L, "-n %s link set %s master gbr", ns[i], DRILL_GTAP) ||
		    drill_ip(L, "-n %s link add gveth type veth peer name %s netns %s", ns[i],
			     out_end[i], d->ns_out) ||
		    drill_ip(L, "-n %s link set gveth master gbr", ns[i]) ||
		    drill_ip(L, "-n %s link set %s master gbr", d->ns_out, out_end[i]) ||
		    drill_ip(L, "-n %s link set %s up", d->ns_out, out_end[i]) ||
		    drill_ip(L, "-n %s link set gveth up", ns[i]) ||
		    drill_ip(L, "-n %s link set %s up", ns[i], DRILL_GTAP) ||
		    drill_ip(L, "-n %s link set gbr up", ns[i]))
			return -1;
	return 0;
}

/* netprobe tcp: an answer may take the whole failover (its own stall bound
 * is 30 s; the drill judges the outage); udp: a datagram lost in the
 * failover is lost, go on after 1 s, any number of them. */
static pid_t spawn_probe(struct drill *d, int udp, const char *out)
{
	char *argv[16];
	unsigned n = 0;

	argv[n++] = (char *)d->o->netprobe;
	argv[n++] = udp ? "udp" : "tcp";
	argv[n++] = DRILL_GNET_GUEST;
	argv[n++] = udp ? "7001" : "7000";
	argv[n++] = "--count";
	argv[n++] = "10000000";
	argv[n++] = "--interval-ms";
	argv[n++] = "10";
	argv[n++] = "--timeout-ms";
	argv[n++] = udp ? "1000" : "30000";
	if (udp) {
		argv[n++] = "--max-loss";
		argv[n++] = "10000000";
	}
	argv[n] = NULL;
	return drill_spawn(d->ns_out, argv, out);
}

int drill_probes_start(struct drill *d)
{
	if (!d->o->net)
		return 0;
	snprintf(d->probe_out[0], sizeof(d->probe_out[0]), "%s/netprobe-tcp.out", d->dir);
	snprintf(d->probe_out[1], sizeof(d->probe_out[1]), "%s/netprobe-udp.out", d->dir);
	d->probe_pid[0] = spawn_probe(d, 0, d->probe_out[0]);
	d->probe_pid[1] = spawn_probe(d, 1, d->probe_out[1]);
	if (d->probe_pid[0] <= 0 || d->probe_pid[1] <= 0) {
		drill_fail(d, "cannot start netprobe (%s)", d->o->netprobe);
		return -1;
	}
	drill_vlog(d->o, "netprobe tcp (pid %d) and udp (pid %d) talk to the guest",
		   (int)d->probe_pid[0], (int)d->probe_pid[1]);
	return 0;
}

/* KEY's value in a netprobe output file (the last such line) into out. */
static void probe_field(const char *text, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	const char *p = text;
	out[0] = '\0';
	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			size_t vl = strcspn(p + kl + 1, "\n");
			snprintf(out, n, "%.*s", (int)vl, p + kl + 1);
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

/* Judge one probe's output: "" if it held, else why not (into why).
 * max_gap_ms: the longest wait allowed (0: no bound). */
static void judge(struct drill *d, int k, unsigned max_gap_ms, char *why, size_t n)
{
	static const char *const name[2] = {"TCP", "UDP"};
	char text[16384] = "", result[16], reason[64], detail[200], gap[32], answered[32], sent[32],
	     contra[32], lost[32], dups[32], p50[32], p99[32];
	FILE *f = fopen(d->probe_out[k], "r");
	size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;

	if (f)
		fclose(f);
	text[len] = '\0';
	probe_field(text, "result", result, sizeof(result));
	probe_field(text, "reason", reason, sizeof(reason));
	probe_field(text, "detail", detail, sizeof(detail));
	probe_field(text, "max_gap_ms", gap, sizeof(gap));
	probe_field(text, "answered", answered, sizeof(answered));
	probe_field(text, "sent", sent, sizeof(sent));
	probe_field(text, "contradictions", contra, sizeof(contra));
	probe_field(text, "lost", lost, sizeof(lost));
	probe_field(text, "duplicates", dups, sizeof(dups));
	probe_field(text, "rtt_p50_us", p50, sizeof(p50));
	probe_field(text, "rtt_p99_us", p99, sizeof(p99));
	double gap_ms = gap[0] ? strtod(gap, NULL) : -1;
	d->net_gap_ms[k] = gap_ms;
	snprintf(d->net_summary[k], sizeof(d->net_summary[k]),
		 "%s: %s answers to %s requests, %s contradictions%s%s%s%s, latency p50 %.1f ms "
		 "p99 %.1f ms, outage (longest wait for an answer) %s ms%s%s",
		 name[k], answered[0] ? answered : "?", sent[0] ? sent : "?",
		 contra[0] ? contra : "?", k ? ", lost " : "", k ? (lost[0] ? lost : "?") : "",
		 k ? ", duplicates " : "", k ? (dups[0] ? dups : "?") : "", atof(p50) / 1e3,
		 atof(p99) / 1e3, gap[0] ? gap : "?", reason[0] ? ", " : "", reason);
	why[0] = '\0';
	if (strcmp(result, "ok"))
		snprintf(why, n, "the %s client failed: %s%s%s (see %s)", name[k],
			 reason[0] ? reason : "no result", detail[0] ? ": " : "", detail,
			 d->probe_out[k]);
	else if (strtoull(answered, NULL, 10) == 0)
		snprintf(why, n, "the %s client never got an answer (see %s)", name[k],
			 d->probe_out[k]);
	else if (max_gap_ms && gap_ms > max_gap_ms)
		snprintf(why, n, "the %s client waited %.0f ms for an answer (at most %u)", name[k],
			 gap_ms, max_gap_ms);
}

void drill_probes_stop(struct drill *d)
{
	char why[400];

	if (!d->o->net || d->probes_judged)
		return;
	d->probes_judged = 1;
	for (int k = 0; k < 2; k++)
		if (d->probe_pid[k] > 0)
			kill(d->probe_pid[k], SIGTERM);
	for (int k = 0; k < 2; k++)
		drill_reap(&d->probe_pid[k], 40000);
	for (int k = 0; k < 2; k++)
		if (d->probe_pid[k] > 0) {
			kill(d->probe_pid[k], SIGKILL);
			drill_reap(&d->probe_pid[k], 2000);
		}
	/* a silence bound only where the VM moved or its output was held */
	int failover = !DRILL_FAULT_IS_RESTART(d->o->fault) && d->o->fault != DRILL_FAULT_SLOW &&
		       !d->o->victim_backup;
	/* witness-down: nobody may speak for DRILL_HELD_WATCH_MS before the race */
	unsigned bound = !failover ? 0
			 : d->o->fault == DRILL_FAULT_WITNESS_DOWN
			     ? DRILL_NET_MAX_GAP_MS + DRILL_HELD_WATCH_MS
			     : DRILL_NET_MAX_GAP_MS;
	for (int k = 0; k < 2; k++) {
		judge(d, k, bound, why, sizeof(why));
		if (why[0])
			drill_fail(d, "%s", why);
	}
}

void drill_stop_vm(struct drill *d, const char *ctl)
{
	char *stop[] = {"stop", DRILL_VM_NAME, NULL};

	drill_probes_stop(d);
	if (!d->o->keep)
		drill_cli(d, ctl, stop, 20000);
}
