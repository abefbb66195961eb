/*
 * drill-report.c - what a drill prints: the epochs, where the kill landed,
 * the primary's and the wire's epoch figures, the console as the outside
 * saw it, the contract counts, failover_ms and the `drill: PASS|FAIL` line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/stats.h"
#include "ha/drill/drill.h"

void drill_first_problem(char *buf, size_t size, const char *fmt, va_list ap)
{
	if (buf[0])
		return;
	vsnprintf(buf, size, fmt, ap);
}

void drill_report(struct drill *d)
{
	struct drill_world *w = &d->w;
	const struct drill_opts *o = d->o;
	unsigned n = d->nr_samples, nw = 0;
	uint64_t *v = calloc((n > w->nr_wire ? n : w->nr_wire) + 1, sizeof(uint64_t));
	char *r = d->report;
	size_t size = sizeof(d->report), len = 0;
#define OUT(...) (len += (size_t)snprintf(r + len, len < size ? size - len : 0, __VA_ARGS__))

	OUT("drill %u: fault=%s kill-at=%s victim=%s%s%s%s%s seed=%llu epoch=%s memory=%s "
	    "append=\"%s%s\"\n",
	    d->run, drill_fault_name(o->fault), drill_kill_at_name(o->kill_at),
	    o->victim_backup || o->fault == DRILL_FAULT_RESTART_BACKUP ? "backup" : "primary",
	    o->witness ? " witness=yes" : "", o->net ? " net=yes" : "", o->mem ? " guest=mem" : "",
	    o->disk ? " disk=yes" : "", (unsigned long long)(o->seed + d->run - 1), o->epoch,
	    o->memory, o->append,
	    o->disk && !strstr(o->append, "disk_writes=") ? DRILL_DISK_APPEND : "");
	OUT("  epochs: the backup acked epochs 0..%llu before the kill (0 = the full sync; "
	    "target %llu)\n",
	    (unsigned long long)(w->acked ? w->acked - 1 : 0), (unsigned long long)o->epochs);
	OUT("  kill: %s\n", w->killed ? w->kill_what : "(not done)");
	if (o->disk)
		OUT("  disk: %s\n",
		    w->nr_diskchecks ? w->diskchecks : "no diskcheck (no guest was promoted)");
	if (v && n) {
		for (unsigned i = 0; i < n; i++)
			v[i] = d->samples[i].pause_us;
		uint64_t p50 = hr_percentile_u64(v, n, 50), p99 = hr_percentile_u64(v, n, 99);
		OUT("  primary (%s, %u epochs): pause_us p50=%llu p99=%llu",
		    d->samples_logged ? "per-epoch log" : "status samples", n,
		    (unsigned long long)p50, (unsigned long long)p99);
		for (unsigned i = 0; i < n; i++)
			v[i] = d->samples[i].interval_us;
		p50 = hr_percentile_u64(v, n, 50);
		p99 = hr_percentile_u64(v, n, 99);
		OUT(" interval_us p50=%llu p99=%llu", (unsigned long long)p50,
		    (unsigned long long)p99);
		for (unsigned i = 0; i < n; i++)
			v[i] = d->samples[i].bytes;
		OUT(" bytes p50=%llu", (unsigned long long)hr_percentile_u64(v, n, 50));
		for (unsigned i = 0; i < n; i++)
			v[i] = d->samples[i].ack_us;
		OUT(" ack_us p50=%llu\n", (unsigned long long)hr_percentile_u64(v, n, 50));
	} else {
		OUT("  primary (status): no epoch stats sampled\n");
	}
	if (v) {
		nw = 0;
		for (unsigned i = 1; i < w->nr_wire; i++)
			if (w->wire[i].begin_ns && w->wire[i - 1].begin_ns &&
			    w->wire[i].epoch == w->wire[i - 1].epoch + 1 &&
			    w->wire[i - 1].epoch > 0)
				v[nw++] = (w->wire[i].begin_ns - w->wire[i - 1].begin_ns) / 1000;
		uint64_t i50 = hr_percentile_u64(v, nw, 50), i99 = hr_percentile_u64(v, nw, 99);
		unsigned nb = 0;
		for (unsigned i = 0; i < w->nr_wire; i++)
			if (w->wire[i].epoch > 0 && w->wire[i].end_ns)
				v[nb++] = w->wire[i].bytes;
		uint64_t b50 = hr_percentile_u64(v, nb, 50), b99 = hr_percentile_u64(v, nb, 99);
		unsigned na = 0;
		for (unsigned i = 0; i < w->nr_wire; i++)
			if (w->wire[i].epoch > 0 && w->wire[i].ack_ns && w->wire[i].end_ns)
				v[na++] = (w->wire[i].ack_ns - w->wire[i].end_ns) / 1000;
		OUT("  wire (tap, %u epochs): interval_us p50=%llu p99=%llu bytes p50=%llu "
		    "p99=%llu "
		    "end->ack_us p50=%llu\n",
		    nb, (unsigned long long)i50, (unsigned long long)i99, (unsigned long long)b50,
		    (unsigned long long)b99, (unsigned long long)hr_percentile_u64(v, na, 50));
	}
	free(v);
	OUT("  console: %llu bytes, %u progress lines (seq %llu..%llu), %u connections, %llu "
	    "repeated bytes deduplicated\n",
	    (unsigned long long)w->len, w->nr_lines,
	    (unsigned long long)(w->nr_lines ? w->lines[0].seq : 0),
	    (unsigned long long)(w->nr_lines ? w->lines[w->nr_lines - 1].seq : 0), w->nr_conns,
	    (unsigned long long)w->nr_repeat_bytes);
	OUT("  contract: gaps=%u two_contents=%u seq_breaks=%u self_check_errors=%u bad_lines=%u\n",
	    w->gaps, w->conflicts, w->seq_breaks, w->guest_errors, w->bad_lines);
	if (w->killed)
		OUT("  at the kill: outside held %llu bytes, last seq=%llu\n",
		    (unsigned long long)w->kill_con_len, (unsigned long long)w->kill_last_seq);
	if (!o->victim_backup && d->failover_ms >= 0 && !d->winner)
		OUT("  failover_ms=%.1f (kill -> first new line from B, seq=%llu); promoted seen "
		    "in "
		    "B's status after %.0f ms\n",
		    d->failover_ms, (unsigned long long)d->first_new_seq, d->promoted_ms);
	if (d->tl.output_ms >= 0)
		OUT("  where the time went (ms after the fault, B's clock = ours): detected %.1f, "
		    "decided %.1f, state loaded %.1f, guest resumed %.1f, first new output "
		    "released "
		    "%.1f, seen outside %.1f\n",
		    d->tl.detect_ms, d->tl.decide_ms, d->tl.loaded_ms, d->tl.resumed_ms,
		    d->tl.output_ms, d->failover_ms);
	if (d->slow_checked)
		OUT("  slow backup (its frames %d ms late): A's ack latency %.1f ms; A stayed %s "
		    "and released %u lines in %d ms; no failover\n",
		    DRILL_SLOW_MS, d->slow_ack_us / 1000.0, d->survivor_state, d->slow_lines, 3000);
	if (d->restart_checked) {
		int b = o->fault == DRILL_FAULT_RESTART_BACKUP;
		OUT("  restart of %s's hareplicated: exited %.1f ms after SIGTERM; daemon "
		    "downtime_ms=%.1f (SIGTERM -> the new one answers); adopt_ms=%.1f (restart -> "
		    "status reports the VM, %s); VM unseen %.1f ms\n",
		    b ? "B" : "A", d->exit_ms, d->downtime_ms, d->adopt_ms,
		    d->restart_state[0] ? d->restart_state : "-", d->unseen_ms);
	}
	if (d->restart_checked && d->adopt_ms >= 0) {
		OUT("  after the restart: workers A %d -> %d, B %d -> %d; nr_epochs %llu -> %llu; "
		    "A released %u lines while the daemon was down and %u after; B released %u; "
		    "no failover\n",
		    (int)d->worker_before[0], (int)d->worker_after[0], (int)d->worker_before[1],
		    (int)d->worker_after[1], (unsigned long long)d->epochs_at_adopt,
		    (unsigned long long)d->epochs_later, d->lines_down, d->lines_after, d->b_lines);
	}
	if (d->speakers_checked)
		OUT("  one speaker: A released %u console lines after B took over (fault %s; "
		    "watched %d ms)\n",
		    d->a_after, drill_fault_name(o->fault), DRILL_HELD_WATCH_MS);
	if (o->victim_backup && d->survivor_state[0] && !o->witness)
		OUT("  primary's status after the backup's death: state=%s last_event=%s\n",
		    d->survivor_state, d->survivor_event);
	if (o->victim_backup && d->survivor_state[0] && !d->why[0] && !o->witness)
		OUT("  primary held its output: %d lines released in the %d ms after it said so\n",
		    d->held_lines, DRILL_HELD_WATCH_MS);
	if (o->victim_backup && o->witness && d->stall_ms >= 0)
		OUT("  primary after the backup's death (witness): state=%s standing=%s; released "
		    "%d lines in %d ms, the outside waited at most %.1f ms\n",
		    d->survivor_state, d->standing, d->held_lines, DRILL_HELD_WATCH_MS,
		    d->stall_ms);
	if (o->witness && d->reprotect_checked)
		OUT("  re-protection (witness): B's daemon started again; A protected after "
		    "reprotect_ms=%.1f; B released %u lines\n",
		    d->reprotect_ms, d->b_lines);
	if (o->fault == DRILL_FAULT_WITNESS_DOWN && d->survivor_state[0])
		OUT("  witness down, link torn: A %s (standing %s); %u console lines reached the "
		    "outside in %d ms\n",
		    d->survivor_state, d->standing, d->silent_lines, DRILL_HELD_WATCH_MS);
	if (d->winner)
		OUT("  race for the VM: %c won: %s; failover_ms=%.1f (%s -> first new line from "
		    "%c, seq=%llu); the loser released %u lines\n",
		    d->winner, d->winner_how, d->failover_ms,
		    o->fault == DRILL_FAULT_WITNESS_DOWN ? "SIGCONT of the witness" : "the tear",
		    d->winner, (unsigned long long)d->first_new_seq, d->wit_loser_lines);
	if (o->witness)
		OUT("  witness: %s\n", d->wit_checks[0] ? d->wit_checks : "(record not checked)");
	if (d->reprotect_checked && !o->witness)
		OUT("  re-protection: B's daemon started again; A protected after "
		    "reprotect_ms=%.1f "
		    "(+reprotect-start), its held output reached the outside after "
		    "release_ms=%.1f; "
		    "B released %u lines\n",
		    d->reprotect_ms, d->release_ms, d->b_lines);
	if (d->failback_checked)
		OUT("  failback: A's daemon started again; B (promoted) protected by A after "
		    "reprotect_ms=%.1f; `failover` on A: switchback_ms=%.1f (-> first new line "
		    "from "
		    "A), A protected by B after reprotect_ms=%.1f; A released %u lines while B "
		    "spoke, B %u after A spoke again\n",
		    d->reprotect_ms, d->switchback_ms, d->reprotect2_ms, d->a_while_b, d->b_after);
	if (o->net)
		for (int k = 0; k < 2; k++)
			OUT("  network client, %s\n",
			    d->net_summary[k][0] ? d->net_summary[k] : (k ? "UDP: -" : "TCP: -"));
	if (w->tap_broken)
		OUT("  note: the tap could not parse the replication stream; moments are "
		    "imprecise\n");
	if (d->why[0] || w->first_violation[0])
		OUT("  first problem: %s\n", d->why[0] ? d->why : w->first_violation);
	if (d->restart_checked)
		OUT("drill: %s downtime_ms=%.1f adopt_ms=%.1f epochs=%llu\n",
		    d->pass ? "PASS" : "FAIL", d->downtime_ms, d->adopt_ms,
		    (unsigned long long)(w->acked ? w->acked - 1 : 0));
	else
		OUT("drill: %s failover_ms=%.1f epochs=%llu\n", d->pass ? "PASS" : "FAIL",
		    d->failover_ms, (unsigned long long)(w->acked ? w->acked - 1 : 0));
	if (!d->pass)
		OUT("  logs: %s (a.log, b.log, cli.log, ip.log)\n", d->dir);
#undef OUT
}

void drill_load_timeline(struct drill *d)
{
	char line[1024], last[1024] = "";
	FILE *f = fopen(d->log_b, "r");

	if (!f || !d->w.kill_ns)
		goto out;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "failover timeline"))
			snprintf(last, sizeof(last), "%s", line);
	const char *p = strstr(last, "detected ");
	double det, dec, load, res, outp;
	unsigned long long rx, dns, ons;
	if (!p || sscanf(p,
			 "detected %lf (%*[^)]), decided %lf, state loaded %lf, guest resumed "
			 "%lf, first new output %lf; monotonic_ns last_rx=%llu detect=%llu "
			 "output=%llu",
			 &det, &dec, &load, &res, &outp, &rx, &dns, &ons) != 8)
		goto out;
	double base = ((double)rx - (double)d->w.kill_ns) / 1e6; /* last byte vs the fault */
	d->tl =
	    (struct drill_timeline){base + det, base + dec, base + load, base + res, base + outp};
out:
	if (f)
		fclose(f);
}
