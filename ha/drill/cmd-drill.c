/*
 * cmd-drill.c - `hareplicate drill`: a failover drill on one machine.
 *
 * Three network namespaces (A = primary host, B = backup host, OUT = the
 * outside world with a bridge that joins them), a hareplicated in A and in
 * B, a guest protected from A to B, a console collector and a replication
 * tap in OUT.  After N epochs the primary (daemon and worker: the whole
 * host) or the backup's worker is killed with SIGKILL at a chosen point of
 * the epoch protocol, and the drill checks the contract as the outside world
 * sees it.  Everything it creates is removed at the end, on failure and on
 * SIGINT/SIGTERM too (unless --keep).
 *
 * This file is the command: its options, what the drill needs on this
 * machine, and --repeat; one drill is drill_run() (drill-run.c), and
 * drill.h lists the other pieces.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "ha/drill/drill.h"

static const char drill_help[] =
    "A failover drill on this machine (root, iproute2 and, unless --mem, /dev/kvm\n"
    "needed).  It creates three network namespaces hrd-PID-N-{a,b,out}: A and B\n"
    "are the primary and backup hosts, OUT is the outside world; a bridge in OUT\n"
    "joins them on " DRILL_NET_PREFIX "0/24 (nothing leaves these namespaces).  It starts a\n"
    "hareplicated in A and in B, protects a guest from A to B with\n"
    "`hareplicate start` (netsvc, a network service, with clients in OUT: see\n"
    "--net; or memwalk; or, with --mem, the mem backend's software guest), and\n"
    "runs two observers in OUT: a console collector (" DRILL_IP_OUT ":7000, the\n"
    "console SPEC of the primary and B's --console-default) and a replication\n"
    "tap (" DRILL_IP_OUT ":7100, A's --peer) that relays A<->B unchanged but reads\n"
    "the frame headers, so it knows when each epoch is sent and acked.\n"
    "The tap relays every later connection to B's daemon too (re-protection),\n"
    "and a back relay (" DRILL_IP_OUT ":7788) relays connections to A's daemon, so a\n"
    "promoted B can ask A for a backup; B's daemon listens on 7100 and A's on\n"
    "7788, the ports OUT relays to them.  A torn or partitioned link stays so, both\n"
    "ways, for new connections too (torn: closed at once; partition: accepted,\n"
    "nothing forwarded or answered).\n"
    "\n"
    "When the backup has acked --epochs epochs it kills the primary host (the\n"
    "daemon's process group and its workers, SIGKILL) at the --kill-at moment:\n"
    "  during-send  the backup has received half of the first data frame of the\n"
    "               epoch; the tap forwards no more (exact, to the byte)\n"
    "  after-send   the backup committed and acked the epoch; the tap holds the\n"
    "               ack, so the primary never released that epoch's output (exact)\n"
    "  after-ack    the ack was delivered; the kill comes as soon as the released\n"
    "               output reaches the collector (or after epoch/2: within ~0.1 ms)\n"
    "  mid-epoch    half an epoch after the epoch began, nothing in flight (the\n"
    "               tap's poll timer: within ~1 ms)\n"
    "  random       a --seed'ed delay in [0, 2 epochs) after the epoch began; the\n"
    "               report says which of the above it landed in (default)\n"
    "Then it waits for B to promote and the console to continue, and checks the\n"
    "contract as seen from OUT: the guest continues on B (new progress lines),\n"
    "the guest's self-check says errors=0 on every line (the mem guest has\n"
    "none: only its numbering is checked), the console stream is gap-free, seq\n"
    "goes +1 line by line over the whole stream, and no offset ever\n"
    "arrives with two contents.  Exit status 0 only if all of that held, 1 if\n"
    "the contract was broken or the drill could not run, 2 for bad usage.\n"
    "\n"
    "  --epochs N        kill after the backup acked N epochs (default 200,\n"
    "                    1..10000000)\n"
    "  --kill-at MOMENT  random|mid-epoch|during-send|after-send|after-ack\n"
    "  --fault WHAT      what happens to the primary at that moment: kill (default:\n"
    "                    SIGKILL of its daemon and workers), torn (the link is\n"
    "                    closed on both sides), partition (nothing more crosses,\n"
    "                    nothing closes), hang (SIGSTOP, SIGCONT after B took\n"
    "                    over), slow (B's acks and heartbeats reach A 300 ms late:\n"
    "                    nothing may fail over); for every fault A survives, the\n"
    "                    drill checks that A never speaks again once B has;\n"
    "                    restart-primary / restart-backup: SIGTERM of A's (B's)\n"
    "                    hareplicated only, started again with the same arguments\n"
    "                    once it exited; its workers go on, so nothing may fail\n"
    "                    over: the new daemon must report the VM (same worker\n"
    "                    pid, primary/protected or backup/backup) with epochs\n"
    "                    still advancing, and --after-lines more lines must come\n"
    "                    from A; the report gives the daemon's downtime_ms\n"
    "                    (SIGTERM -> the new one answers) and adopt_ms (restart\n"
    "                    -> status reports the VM) instead of failover_ms\n"
    "                    failback: kill A's host; once B took over, A's daemon is\n"
    "                    started again and B (promoted) must re-protect with A\n"
    "                    as its backup (B primary/protected, A backup); then\n"
    "                    `hareplicate failover` on A: A speaks again, B's\n"
    "                    worker ends (+demoted), and A must re-protect with B\n"
    "                    as its backup; one speaker at a time and --after-lines\n"
    "                    new lines after each step; reports failover_ms,\n"
    "                    reprotect_ms (B), switchback_ms (failover -> A's first\n"
    "                    new line) and reprotect2_ms (failover -> A protected)\n"
    "  --victim WHO      primary (default) or backup: kill the backup's host (its\n"
    "                    daemon and worker); the drill checks that the primary\n"
    "                    says unprotected / +output-held and releases nothing\n"
    "                    for 2 s (without --witness nothing proves the backup\n"
    "                    is gone, see hareplicated); then it starts B's daemon\n"
    "                    again and\n"
    "                    checks that A re-protects by itself (protected,\n"
    "                    +reprotect-start), that the held output reaches the\n"
    "                    outside and that B never speaks; reports reprotect_ms\n"
    "                    (B's daemon started -> A protected) and release_ms\n"
    "                    (-> the first held line outside)\n"
    "  --tls             the daemons' peer links are TLS 1.3 in CA mode (a CA and\n"
    "                    certificates for A and B are made in the run's\n"
    "                    directory).  Default: --insecure, because the tap reads\n"
    "                    the replication stream to time its kills and faults;\n"
    "                    with --tls it cannot, and the moments are imprecise\n"
    "  --witness         also run a witness (hareplicated --serve-witness) in OUT on\n"
    "                    " DRILL_IP_OUT ":7300, which A and B reach directly, not\n"
    "                    through the tap (faults on the A-B link leave it\n"
    "                    reachable); the daemons run with --witness and --node A\n"
    "                    / --node B.  B's promotion then needs the witness's grant:\n"
    "                    after a failover the witness must name B the owner (in\n"
    "                    failback the owner follows the VM back to A).  torn: both\n"
    "                    ask, exactly one wins - B promotes (A demoted) or A\n"
    "                    keeps the lease and speaks (B's copy stale, its worker\n"
    "                    failed); either passes if only the winner speaks and\n"
    "                    the stream goes on from it; the report says who won.\n"
    "                    --victim backup: A takes the lease and keeps speaking\n"
    "                    (standing lease, the outside waits at most 1 s:\n"
    "                    stall_ms), then re-protects when B returns (standing\n"
    "                    registered, the witness names B the backup)\n"
    "                    witness-down (a --fault, only with --witness): SIGSTOP\n"
    "                    of the witness, then the link torn: nobody may speak\n"
    "                    for 2 s; SIGCONT: exactly one wins as for torn\n"
    "                    (failover_ms counts from the SIGCONT)\n"
    "  --net             (the default) the guest is a network service\n"
    "                    (tests/guests/netsvc.elf, " DRILL_GNET_GUEST ") on a virtio-net\n"
    "                    device whose TAP is\n"
    "                    bridged to OUT in A and in B; from OUT, netprobe keeps\n"
    "                    one TCP connection to its running-sum service and a\n"
    "                    stream of UDP requests through the whole drill.  Also\n"
    "                    checked: no answer contradicts an earlier one (a sum\n"
    "                    that goes back, two answers for one sequence number),\n"
    "                    the connection is never reset, and after a failover\n"
    "                    no client waits more than 5 s for an answer.  The\n"
    "                    report gives each client's request latency p50/p99 and\n"
    "                    its longest silence (the outage at the failover)\n"
    "  --memwalk         the guest is memwalk instead (tests/guests/memwalk.elf,\n"
    "                    console only; it also checks its own memory)\n"
    "  --mem             the guest is the mem backend's software guest instead\n"
    "                    (--backend mem: no hypervisor, no /dev/kvm; console\n"
    "                    only): a vCPU thread in the worker writes pages and\n"
    "                    prints `mem: step=N`, and a promoted replica continues\n"
    "                    the same sequence; seq is N, there is no self-check.\n"
    "                    It exercises everything of the drill but the\n"
    "                    hypervisor: the KVM backend needs --memwalk or --net\n"
    "  --disk            the mem guest (--disk implies --mem) also writes a disk:\n"
    "                    A's image is a fresh sparse 64 MiB file in the drill's\n"
    "                    directory, B's daemon makes its copy in its --disk-dir\n"
    "                    there; each step writes 4 stamped 4 KiB blocks, then\n"
    "                    flushes (`disk_writes=4 disk_flush=1` is added to the\n"
    "                    command line).  A guest promoted by the fault reads back every\n"
    "                    block it knows it wrote and prints `diskcheck blocks=B\n"
    "                    errors=E`; the drill fails unless each such check says\n"
    "                    errors=0 with blocks > 0, and one came after a failover.\n"
    "                    The report's `disk:` line gives each check.  A failback\n"
    "                    puts the copy back on A's images, which needs their\n"
    "                    synchronisation first\n"
    "  --netprobe FILE   the client (default: tests/netprobe next to this program,\n"
    "                    i.e. a build tree, else " HR_PKGLIBEXECDIR "/netprobe)\n"
    "  --seed S          seed for random choices (default: from the clock; printed)\n"
    "  --memory SIZE     guest RAM (default 256M)\n"
    "  --append CMDLINE  the guest's command line (netsvc: \"ip=" DRILL_GNET_GUEST "/24\n"
    "                    progress_ms=20\"; memwalk: \"rate=4000 wss=64M\n"
    "                    interval_ms=20\"; --mem: \"" DRILL_MEM_APPEND "\",\n"
    "                    as many page writes a second as memwalk's rate)\n"
    "  --epoch DURATION  epoch length (default 25ms)\n"
    "  --after-lines N   progress lines to see after the failover or restart\n"
    "                    (default 25)\n"
    "  --timeout SECONDS bound on each wait: sync, promotion (default 60)\n"
    "  --failover-timeout MS  the daemons' failure timeout (default: the\n"
    "                    daemon's, 200)\n"
    "  --repeat N        run N drills (seed, seed+1, ...) and print failover p50/max\n"
    "                    (restarts: downtime)\n"
    "  --soak N          run N drills, each a scenario drawn from the seed: kill,\n"
    "                    torn, partition, hang or slow of the primary, death of\n"
    "                    the backup, a restart of A's or B's daemon, or a\n"
    "                    failback, at a random moment; print counts, passes and\n"
    "                    p50/p99 of each figure measured, per scenario\n"
    "  --faults LIST     with --soak: draw only from these scenarios, comma-\n"
    "                    separated: kill, torn, partition, hang, slow,\n"
    "                    backup-death, restart-primary, restart-backup, failback,\n"
    "                    witness-down (drawn by default with --witness); races\n"
    "                    (torn, witness-down) also print who won: A=.. B=..\n"
    "  --keep            leave namespaces, daemons and files for debugging (the\n"
    "                    drill prints how to remove them)\n"
    "  --kernel FILE     guest image (default: tests/guests/netsvc.elf, with\n"
    "                    --memwalk memwalk.elf, next to this program, i.e. a build\n"
    "                    tree, else in " HR_PKGDATADIR "/guests; not with --mem)\n"
    "  --daemon FILE     hareplicated to run (default: next to this program, else\n"
    "                    " HR_SBINDIR "/hareplicated, else PATH)\n"
    "  -v, --verbose     progress on stderr\n"
    "\n"
    "The report: epochs, pause and achieved interval p50/p99 and bytes per epoch\n"
    "(sampled from the primary's `status --json`, ~every 50 ms), the same on the\n"
    "wire (every epoch, measured by the tap), and failover_ms = from the kill to\n"
    "the first console line from B that the outside had not seen before the kill.\n"
    "The last line is `drill: PASS ...` or `drill: FAIL ...`.\n";

volatile sig_atomic_t drill_interrupted;

static void on_sig(int sig)
{
	drill_interrupted = sig;
}

static int find_next_to_self(const char *self, const char *rel, char *out, size_t size)
{
	const char *slash = strrchr(self, '/');
	if (!slash)
		return -1;
	snprintf(out, size, "%.*s/%s", (int)(slash - self), self, rel);
	return access(out, R_OK) == 0 ? 0 : -1;
}

/* rel next to this program (a build tree), else the installed copy. */
static int find_file(const char *self, const char *rel, const char *installed, char *out,
		     size_t size)
{
	if (find_next_to_self(self, rel, out, size) == 0)
		return 0;
	snprintf(out, size, "%s", installed);
	return access(out, R_OK) == 0 ? 0 : -1;
}

static int find_in_path(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");
	char copy[4096], *save = NULL;
	snprintf(copy, sizeof(copy), "%s:/usr/sbin:/usr/local/sbin:/sbin", path ? path : "");
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, size, "%s/%s", dir, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

/* --soak: scenarios drawn from the seed (from those --faults allows);
 * counts, and failover or restart figures, per scenario. */
static const struct scenario {
	const char *name;
	enum drill_fault fault;
	int victim_backup;
} scenarios[] = {
    {"kill", DRILL_FAULT_KILL, 0},
    {"torn", DRILL_FAULT_TORN, 0},
    {"partition", DRILL_FAULT_PARTITION, 0},
    {"hang", DRILL_FAULT_HANG, 0},
    {"slow", DRILL_FAULT_SLOW, 0},
    {"backup-death", DRILL_FAULT_KILL, 1},
    {"restart-primary", DRILL_FAULT_RESTART_PRIMARY, 0},
    {"restart-backup", DRILL_FAULT_RESTART_BACKUP, 0},
    {"failback", DRILL_FAULT_FAILBACK, 0},
    {"witness-down", DRILL_FAULT_WITNESS_DOWN, 0}, /* only with --witness */
};
#define NR_SCENARIOS ((int)(sizeof(scenarios) / sizeof(scenarios[0])))

/* --faults LIST: comma-separated scenario names -> a mask (0 if bad). */
static unsigned parse_scenarios(const char *list)
{
	char copy[512], *save = NULL;
	unsigned mask = 0;

	snprintf(copy, sizeof(copy), "%s", list);
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int s = 0; s < NR_SCENARIOS; s++)
			if (!strcmp(t, scenarios[s].name)) {
				mask |= 1u << s;
				found = 1;
			}
		if (!found)
			return 0;
	}
	return mask;
}

/* " name p50=.. p99=.." in ms of v[0..nr) (us; 0 = not measured, skipped). */
static void print_figure(const char *name, uint64_t *v, unsigned nr)
{
	unsigned n = 0;
	for (unsigned k = 0; k < nr; k++)
		if (v[k])
			v[n++] = v[k];
	if (n)
		printf(" %s p50=%.1f p99=%.1f", name, hr_percentile_u64(v, n, 50) / 1000.0,
		       hr_percentile_u64(v, n, 99) / 1000.0);
}

/* ms -> us for print_figure; a figure not measured (< 0) becomes 0. */
static uint64_t to_us(double ms)
{
	return ms >= 0 ? (uint64_t)(ms * 1000) + 1 : 0;
}

/* The figures --soak prints per scenario (each only where measured). */
#define NR_FIGURES 8
static const char *const figure_names[NR_FIGURES] = {
    "failover_ms", "downtime_ms",   "adopt_ms",	     "reprotect_ms",
    "release_ms",  "switchback_ms", "reprotect2_ms", "stall_ms"};

static int soak(const struct drill_opts *base)
{
	unsigned runs[NR_SCENARIOS] = {0}, passes[NR_SCENARIOS] = {0};
	uint64_t *fig[NR_SCENARIOS][NR_FIGURES];
	int allowed[NR_SCENARIOS], nr_allowed = 0;
	unsigned total = 0, ok_total = 0;

	unsigned won[NR_SCENARIOS][2] = {{0}}; /* --witness races: A, B */

	for (int s = 0; s < NR_SCENARIOS; s++) {
		int wd = scenarios[s].fault == DRILL_FAULT_WITNESS_DOWN;
		if ((!base->soak_mask && (!wd || base->witness)) || (base->soak_mask & (1u << s)))
			allowed[nr_allowed++] = s;
		for (int f = 0; f < NR_FIGURES; f++)
			if (!(fig[s][f] = calloc(base->repeat, sizeof(uint64_t)))) {
				fprintf(stderr, "hareplicate drill: out of memory\n");
				return 1;
			}
	}
	for (unsigned i = 1; i <= base->repeat && !drill_interrupted; i++) {
		struct drill_opts o = *base;
		uint64_t r = (base->seed + i) * 0x9e3779b97f4a7c15ull;
		int s = allowed[(r >> 33) % (unsigned)nr_allowed];
		o.victim_backup = scenarios[s].victim_backup;
		o.fault = scenarios[s].fault;
		o.kill_at = (enum drill_kill_at)((r >> 13) % (DRILL_KILL_AFTER_ACK + 1));
		o.repeat = 1;
		struct drill_result res;
		printf("soak %u/%u: %s at %s\n", i, base->repeat, scenarios[s].name,
		       drill_kill_at_name(o.kill_at));
		fflush(stdout);
		int pass = drill_run(&o, i, &res) == 0;
		double v[NR_FIGURES] = {res.failover_ms,   res.downtime_ms, res.adopt_ms,
					res.reprotect_ms,  res.release_ms,  res.switchback_ms,
					res.reprotect2_ms, res.stall_ms};
		if (res.winner)
			won[s][res.winner == 'B']++;
		for (int f = 0; f < NR_FIGURES; f++)
			fig[s][f][runs[s]] = to_us(v[f]);
		runs[s]++;
		total++;
		if (pass) {
			passes[s]++;
			ok_total++;
		}
	}
	printf("soak: %u of %u drills passed (seeds from %llu)\n", ok_total, total,
	       (unsigned long long)base->seed);
	for (int s = 0; s < NR_SCENARIOS; s++) {
		if (runs[s]) {
			printf("  %-15s runs=%u passed=%u", scenarios[s].name, runs[s], passes[s]);
			for (int f = 0; f < NR_FIGURES; f++)
				print_figure(figure_names[f], fig[s][f], runs[s]);
			if (won[s][0] || won[s][1])
				printf(" won: A=%u B=%u", won[s][0], won[s][1]);
			printf("\n");
		}
		for (int f = 0; f < NR_FIGURES; f++)
			free(fig[s][f]);
	}
	return ok_total == total && !drill_interrupted ? 0 : 1;
}

int cmd_drill(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"epochs", required_argument, NULL, 'n'},
	    {"seed", required_argument, NULL, 's'},
	    {"kill-at", required_argument, NULL, 'k'},
	    {"victim", required_argument, NULL, 'V'},
	    {"fault", required_argument, NULL, 'F'},
	    {"memory", required_argument, NULL, 'm'},
	    {"append", required_argument, NULL, 'a'},
	    {"epoch", required_argument, NULL, 'e'},
	    {"repeat", required_argument, NULL, 'r'},
	    {"soak", required_argument, NULL, 'S'},
	    {"faults", required_argument, NULL, 'L'},
	    {"keep", no_argument, NULL, 'K'},
	    {"kernel", required_argument, NULL, 'g'},
	    {"daemon", required_argument, NULL, 'd'},
	    {"after-lines", required_argument, NULL, 'l'},
	    {"timeout", required_argument, NULL, 't'},
	    {"failover-timeout", required_argument, NULL, 'O'},
	    {"witness", no_argument, NULL, 'W'},
	    {"net", no_argument, NULL, 'T'},
	    {"memwalk", no_argument, NULL, 'M'},
	    {"mem", no_argument, NULL, 'G'},
	    {"disk", no_argument, NULL, 'D'},
	    {"netprobe", required_argument, NULL, 'P'},
	    {"tls", no_argument, NULL, 'I'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static char kernel[4096], daemon[4096], netprobe[4096];
	int append_set = 0, other_guest = 0;
	struct drill_opts o = {.epochs = 200,
			       .net = 1,
			       .memory = "256M",
			       .append = "rate=4000 wss=64M interval_ms=20",
			       .epoch = "25ms",
			       .repeat = 1,
			       .after_lines = 25,
			       .timeout_s = 60,
			       .kill_at = DRILL_KILL_RANDOM};
	uint64_t bytes;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		uint64_t n;
		switch (c) {
		case 'n':
			if (hr_parse_count(optarg, 1, DRILL_MAX_EPOCHS, &n) < 0) {
				fprintf(stderr, "hareplicate drill: bad --epochs '%s' (1..%llu)\n",
					optarg, (unsigned long long)DRILL_MAX_EPOCHS);
				return 2;
			}
			o.epochs = n;
			break;
		case 's':
			if (hr_parse_count(optarg, 0, UINT64_MAX, &o.seed) < 0) {
				fprintf(stderr, "hareplicate drill: bad --seed '%s'\n", optarg);
				return 2;
			}
			o.seed_set = 1;
			break;
		case 'k': {
			int found = 0;
			for (int k = DRILL_KILL_RANDOM; k <= DRILL_KILL_AFTER_ACK; k++)
				if (!strcmp(optarg, drill_kill_at_name(k))) {
					o.kill_at = k;
					found = 1;
				}
			if (!found) {
				fprintf(stderr,
					"hareplicate drill: --kill-at is one of random, mid-epoch, "
					"during-send, after-send, after-ack\n");
				return 2;
			}
			break;
		}
		case 'F': {
			int f = -1;
			for (int i = 0; i < DRILL_NR_FAULTS; i++)
				if (!strcmp(optarg, drill_fault_name((enum drill_fault)i)))
					f = i;
			if (f < 0) {
				fprintf(stderr, "hareplicate drill: --fault is one of kill, torn, "
						"partition, hang, slow, restart-primary, "
						"restart-backup, failback, witness-down\n");
				return 2;
			}
			o.fault = (enum drill_fault)f;
			break;
		}
		case 'V':
			if (strcmp(optarg, "primary") && strcmp(optarg, "backup")) {
				fprintf(stderr,
					"hareplicate drill: --victim is primary or backup\n");
				return 2;
			}
			o.victim_backup = !strcmp(optarg, "backup");
			break;
		case 'm':
			if (hr_parse_size(optarg, &bytes) < 0) {
				fprintf(stderr,
					"hareplicate drill: bad --memory '%s' (e.g. 256M)\n",
					optarg);
				return 2;
			}
			o.memory = optarg;
			break;
		case 'a':
			o.append = optarg;
			append_set = 1;
			break;
		case 'T':
			o.net = 1;
			o.mem = 0;
			other_guest = 1;
			break;
		case 'M':
			o.net = 0;
			o.mem = 0;
			other_guest = 1;
			break;
		case 'D':
			o.disk = 1;
			break;
		case 'G':
			o.net = 0;
			o.mem = 1;
			break;
		case 'P':
			o.netprobe = optarg;
			break;
		case 'e':
			o.epoch = optarg;
			break;
		case 'S':
		case 'r':
			o.soak = c == 'S';
			if (hr_parse_count(optarg, 1, 1000, &n) < 0) {
				fprintf(stderr, "hareplicate drill: bad --repeat '%s' (1..1000)\n",
					optarg);
				return 2;
			}
			o.repeat = (unsigned)n;
			break;
		case 'L':
			o.soak_mask = parse_scenarios(optarg);
			if (!o.soak_mask) {
				fprintf(stderr,
					"hareplicate drill: --faults is a comma-separated list of "
					"kill, torn, partition, hang, slow, backup-death, "
					"restart-primary, restart-backup, failback, "
					"witness-down\n");
				return 2;
			}
			break;
		case 'K':
			o.keep = 1;
			break;
		case 'g':
			o.kernel = optarg;
			break;
		case 'd':
			o.daemon = optarg;
			break;
		case 'l':
			if (hr_parse_count(optarg, 1, 1000000, &n) < 0) {
				fprintf(stderr,
					"hareplicate drill: bad --after-lines '%s' (1..1000000)\n",
					optarg);
				return 2;
			}
			o.after_lines = (unsigned)n;
			break;
		case 'O':
			if (hr_parse_count(optarg, 50, 60000, &n) < 0) {
				fprintf(stderr,
					"hareplicate drill: bad --failover-timeout '%s' (ms, "
					"50..60000)\n",
					optarg);
				return 2;
			}
			o.failover_ms = (unsigned)n;
			break;
		case 't':
			if (hr_parse_count(optarg, 1, 86400, &n) < 0) {
				fprintf(
				    stderr,
				    "hareplicate drill: bad --timeout '%s' (seconds, 1..86400)\n",
				    optarg);
				return 2;
			}
			o.timeout_s = (unsigned)n;
			break;
		case 'W':
			o.witness = 1;
			break;
		case 'I':
			o.tls = 1;
			break;
		case 'v':
			o.verbose = 1;
			break;
		case 'h':
			return hr_cmd_help(&hr_cmd_drill);
		default:
			return hr_cmd_usage(&hr_cmd_drill);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "hareplicate drill: unexpected argument '%s'\n", argv[optind]);
		return hr_cmd_usage(&hr_cmd_drill);
	}
	if (hr_parse_duration_us(o.epoch, &o.epoch_us) < 0 || o.epoch_us < 1000) {
		fprintf(stderr, "hareplicate drill: bad --epoch '%s' (e.g. 25ms)\n", o.epoch);
		return 2;
	}
	if (!o.witness && (o.fault == DRILL_FAULT_WITNESS_DOWN ||
			   (o.soak_mask & (1u << (NR_SCENARIOS - 1))))) { /* the last scenario */
		fprintf(stderr, "hareplicate drill: witness-down needs --witness\n");
		return 2;
	}
	if (o.victim_backup &&
	    (DRILL_FAULT_IS_RESTART(o.fault) || o.fault == DRILL_FAULT_FAILBACK ||
	     o.fault == DRILL_FAULT_WITNESS_DOWN)) {
		fprintf(stderr, "hareplicate drill: --fault %s names its victim; no --victim\n",
			drill_fault_name(o.fault));
		return 2;
	}
	if (o.soak_mask && !o.soak) {
		fprintf(stderr, "hareplicate drill: --faults restricts --soak (give --soak N)\n");
		return 2;
	}
	if (o.disk && (other_guest || o.kernel)) {
		fprintf(stderr, "hareplicate drill: --disk runs the mem backend's disk guest (it "
				"implies --mem; no --net, --memwalk or --kernel)\n");
		return 2;
	}
	if (o.disk) {
		o.mem = 1;
		o.net = 0;
	}
	if (o.mem && o.kernel) {
		fprintf(stderr, "hareplicate drill: --mem runs the mem backend's own guest (no "
				"--kernel)\n");
		return 2;
	}
	if (o.keep && o.repeat > 1) {
		fprintf(stderr, "hareplicate drill: --keep runs one drill (not with --repeat)\n");
		return 2;
	}

	/* what the drill needs, each with a clear error */
	if (geteuid() != 0) {
		fprintf(stderr,
			"hareplicate drill: must run as root (network namespaces, /dev/kvm)\n");
		return 1;
	}
	if (!o.mem && access("/dev/kvm", R_OK | W_OK) < 0) {
		fprintf(stderr,
			"hareplicate drill: /dev/kvm: %s (the drill runs real KVM guests; "
			"--mem runs the mem backend's software guest instead)\n",
			strerror(errno));
		return 1;
	}
	static char ipbin[4096];
	if (find_in_path("ip", ipbin, sizeof(ipbin)) < 0) {
		fprintf(stderr,
			"hareplicate drill: the `ip` command (iproute2) is not installed\n");
		return 1;
	}
	drill_ip_bin = ipbin;
	ssize_t sl = readlink("/proc/self/exe", o.self, sizeof(o.self) - 1);
	if (sl <= 0) {
		fprintf(stderr, "hareplicate drill: cannot find this program: %s\n",
			strerror(errno));
		return 1;
	}
	o.self[sl] = '\0';
	if (o.net && !append_set)
		o.append = "ip=" DRILL_GNET_GUEST "/24 progress_ms=20";
	if (o.mem && !append_set)
		o.append = DRILL_MEM_APPEND;
	if (o.net) {
		if (!o.netprobe && find_file(o.self, "tests/netprobe", HR_PKGLIBEXECDIR "/netprobe",
					     netprobe, sizeof(netprobe)) < 0) {
			fprintf(stderr,
				"hareplicate drill: --net: no tests/netprobe next to %s nor "
				"%s; give --netprobe FILE\n",
				o.self, HR_PKGLIBEXECDIR "/netprobe");
			return 1;
		}
		if (!o.netprobe)
			o.netprobe = netprobe;
		if (access(o.netprobe, X_OK) < 0) {
			fprintf(stderr, "hareplicate drill: --netprobe %s: %s\n", o.netprobe,
				strerror(errno));
			return 1;
		}
	}
	if (o.mem) {
		o.kernel = "mem:"; /* the backend's built-in guest (HR_BF_BUILTIN_GUEST) */
	} else if (!o.kernel) {
		const char *guest = o.net ? "tests/guests/netsvc.elf" : "tests/guests/memwalk.elf";
		const char *installed = o.net ? HR_PKGDATADIR "/guests/netsvc.elf"
					      : HR_PKGDATADIR "/guests/memwalk.elf";
		if (find_file(o.self, guest, installed, kernel, sizeof(kernel)) < 0) {
			fprintf(stderr,
				"hareplicate drill: no %s next to %s nor %s; give --kernel FILE "
				"(build it with `make guests`)\n",
				guest, o.self, installed);
			return 1;
		}
		o.kernel = kernel;
	} else if (o.kernel[0] != '/') {
		if (!realpath(o.kernel, kernel)) {
			fprintf(stderr, "hareplicate drill: --kernel %s: %s\n", o.kernel,
				strerror(errno));
			return 1;
		}
		o.kernel = kernel;
	}
	if (!o.mem && access(o.kernel, R_OK) < 0) {
		fprintf(stderr, "hareplicate drill: --kernel %s: %s\n", o.kernel, strerror(errno));
		return 1;
	}
	if (!o.daemon) {
		if (find_file(o.self, "hareplicated", HR_SBINDIR "/hareplicated", daemon,
			      sizeof(daemon)) < 0 &&
		    find_in_path("hareplicated", daemon, sizeof(daemon)) < 0) {
			fprintf(stderr,
				"hareplicate drill: hareplicated not found next to %s, in %s "
				"nor in PATH; give --daemon FILE\n",
				o.self, HR_SBINDIR);
			return 1;
		}
		o.daemon = daemon;
	}
	if (access(o.daemon, X_OK) < 0) {
		fprintf(stderr, "hareplicate drill: --daemon %s: %s\n", o.daemon, strerror(errno));
		return 1;
	}
	drill_vlog(&o, "daemon %s, guest %s%s%s", o.daemon, o.kernel, o.net ? ", netprobe " : "",
		   o.net ? o.netprobe : "");
	if (!o.seed_set)
		o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);

	struct sigaction sa = {0};
	sa.sa_handler = on_sig;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	hr_log_init("hareplicate", 1, 0);

	if (o.soak)
		return soak(&o);
	/* per drill: the failover (or downtime) and B's timeline */
	enum { F_MAIN, F_DETECT, F_DECIDE, F_LOADED, F_RESUMED, F_OUTPUT, F_NR };
	static const char *const names[F_NR] = {
	    "", "detected", "decided", "state loaded", "guest resumed", "first output released"};
	uint64_t *v[F_NR];
	unsigned n[F_NR] = {0}, passed = 0;
	for (int f = 0; f < F_NR; f++)
		if (!(v[f] = calloc(o.repeat, sizeof(uint64_t))))
			return 1;
	for (unsigned i = 1; i <= o.repeat && !drill_interrupted; i++) {
		struct drill_result res;
		if (drill_run(&o, i, &res) == 0)
			passed++;
		double x[F_NR] = {DRILL_FAULT_IS_RESTART(o.fault) ? res.downtime_ms
								  : res.failover_ms,
				  res.tl.detect_ms,
				  res.tl.decide_ms,
				  res.tl.loaded_ms,
				  res.tl.resumed_ms,
				  res.tl.output_ms};
		for (int f = 0; f < F_NR; f++)
			if (x[f] >= 0)
				v[f][n[f]++] = (uint64_t)(x[f] * 1000);
	}
	if (o.repeat > 1) {
		printf(
		    "drills: %u of %u passed; %s p50=%.1f p99=%.1f max=%.1f (seeds %llu..%llu)\n",
		    passed, o.repeat,
		    DRILL_FAULT_IS_RESTART(o.fault) ? "downtime_ms" : "failover_ms",
		    hr_percentile_u64(v[F_MAIN], n[F_MAIN], 50) / 1000.0,
		    hr_percentile_u64(v[F_MAIN], n[F_MAIN], 99) / 1000.0,
		    hr_percentile_u64(v[F_MAIN], n[F_MAIN], 100) / 1000.0,
		    (unsigned long long)o.seed, (unsigned long long)(o.seed + o.repeat - 1));
		if (n[F_OUTPUT]) {
			printf("where the time went (ms after the fault, p50 / p99 over %u):",
			       n[F_OUTPUT]);
			for (int f = F_DETECT; f < F_NR; f++)
				printf("%s %s %.1f / %.1f", f == F_DETECT ? "" : ",", names[f],
				       hr_percentile_u64(v[f], n[f], 50) / 1000.0,
				       hr_percentile_u64(v[f], n[f], 99) / 1000.0);
			printf("\n");
		}
	}
	for (int f = 0; f < F_NR; f++)
		free(v[f]);
	return passed == o.repeat && !drill_interrupted ? 0 : 1;
}

const struct hr_cmd hr_cmd_drill = {
    "drill",
    "[--epochs N] [--kill-at MOMENT] "
    "[--fault kill|torn|partition|hang|slow|restart-primary|restart-backup|failback|"
    "witness-down] "
    "[--victim primary|backup] [--witness] [--seed S] [--repeat N] [--soak N [--faults LIST]] "
    "[--keep] [--net | --memwalk | --mem | --disk] [--netprobe FILE] "
    "[--memory SIZE] [--append CMDLINE] [--epoch DURATION]",
    drill_help, cmd_drill};
