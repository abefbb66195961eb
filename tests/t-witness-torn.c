/*
 * t-witness-torn.c - one speaker under a torn link, decided by a real
 * witness (`hareplicated --serve-witness` on loopback).  A relay between a
 * primary engine ("A") and its backup ("B") closes both sides at once: both
 * see their peer's connection end while it lives, and both ask the
 * witness.  Exactly one is granted the lease and speaks; the other stands
 * down (A: demoted) or gives up its copy (B: stale).  Repeated, so that
 * both outcomes of the race get a chance.  With the witness frozen
 * (SIGSTOP) nobody may speak at all, and once it answers again one does.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/util.h"
#include "ha/witness.h"

#define ROUNDS 4

static char wit_addr[64];
static pid_t wit_pid;

static int start_witness(const char *dir)
{
	const char *b = getenv("top_builddir");
	char bin[1024], ctl[1024], state[1024];
	int port = 20000 + getpid() % 20000;

	snprintf(bin, sizeof(bin), "%s/hareplicated", b ? b : ".");
	snprintf(ctl, sizeof(ctl), "%s/w.sock", dir);
	snprintf(state, sizeof(state), "%s/w", dir);
	snprintf(wit_addr, sizeof(wit_addr), "127.0.0.1:%d", port);
	wit_pid = fork();
	if (wit_pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 2);
		execl(bin, bin, "-f", "--serve-witness", "--insecure", "--control", ctl, "--listen",
		      wit_addr, "--state-dir", state, (char *)NULL);
		_exit(127);
	}
	struct hr_wit_req q = {.op = HR_WIT_QUERY};
	struct hr_wit_reply r;
	snprintf(q.vm, sizeof(q.vm), "probe");
	for (int i = 0; i < 100; i++) {
		if (hr_witness_ask(NULL, wit_addr, &q, &r, 200) == 0)
			return 0;
		usleep(100000);
	}
	return -1;
}

static int witness_backup_is(const char *vm, const char *backup)
{
	struct hr_wit_req q = {.op = HR_WIT_QUERY};
	struct hr_wit_reply r;
	snprintf(q.vm, sizeof(q.vm), "%s", vm);
	return hr_witness_ask(NULL, wit_addr, &q, &r, 500) == 0 && !strcmp(r.backup, backup);
}

struct outcome {
	enum hr_role_state p, b;
	uint64_t p_after, b_after;   /* bytes released in the second after it settled */
	uint64_t frozen_p, frozen_b; /* ... while the witness was frozen */
	unsigned gaps, conflicts;
	int registered, settled;
};

static void round_trip(const char *vm, int freeze_witness, struct outcome *o)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc = {
	    .name = vm,
	    .ops = hr_backend_find("mem"),
	    .epoch_us = 25000,
	    .silence_ms = 300,
	    .witness = wit_addr,
	    .node = "A",
	    .peer_node = "B",
	    .lease_ms = 1000,
	    .vm = {.mem_bytes = 32 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=1000 writes=8"},
	};
	struct hr_engine_config bc = {.name = vm,
				      .silence_ms = 300,
				      .auto_promote = 1,
				      .witness = wit_addr,
				      .node = "B",
				      .peer_node = "A",
				      .lease_ms = 1000};

	memset(o, 0, sizeof(*o));
	ep_start(&ep, pc, bc, EP_RELAY);
	ep_wait_u64(&ep.p_acked, 20, 30);
	uint64_t end = hr_now_ns() + 10000000000ull;
	while (!(o->registered = witness_backup_is(vm, "B")) && hr_now_ns() < end)
		usleep(20000);
	if (freeze_witness)
		kill(wit_pid, SIGSTOP);
	ep.torn = 1;
	end = hr_now_ns() + 10000000000ull;
	for (;;) {
		int p_done = ep.p_state == HR_RS_DEMOTED || ep.p_state == HR_RS_UNPROTECTED;
		int b_done = ep.b_state == HR_RS_PROMOTED || ep.b_state == HR_RS_FAILED;
		if ((p_done && b_done && !freeze_witness) || hr_now_ns() > end)
			break;
		if (freeze_witness && ep.p_state == HR_RS_UNPROTECTED && hr_now_ns() > end - 8e9)
			break; /* 2 s after the cut: both have asked and got no answer */
		usleep(5000);
	}
	o->settled = hr_now_ns() <= end;
	usleep(100000);
	uint64_t p0 = ep.p_bytes, b0 = ep.b_bytes;
	usleep(1000000);
	o->p_after = ep.p_bytes - p0;
	o->b_after = ep.b_bytes - b0;
	o->p = ep.p_state;
	o->b = ep.b_state;
	if (freeze_witness) {
		o->frozen_p = o->p_after;
		o->frozen_b = o->b_after;
		kill(wit_pid, SIGCONT); /* answers again: one of them gets the lease */
		end = hr_now_ns() + 10000000000ull;
		while (!((ep.p_state == HR_RS_DEMOTED && ep.b_state == HR_RS_PROMOTED) ||
			 ep.b_state == HR_RS_FAILED) &&
		       hr_now_ns() < end)
			usleep(5000);
		usleep(300000);
		p0 = ep.p_bytes;
		b0 = ep.b_bytes;
		usleep(1000000);
		o->p_after = ep.p_bytes - p0;
		o->b_after = ep.b_bytes - b0;
		o->p = ep.p_state;
		o->b = ep.b_state;
	}
	pthread_mutex_lock(&ep.lock);
	o->gaps = ep.out[0].gaps;
	o->conflicts = ep.out[0].conflicts;
	pthread_mutex_unlock(&ep.lock);
	ep_finish(&ep);
}

int main(void)
{
	char dir[] = "/tmp/t-witness-torn.XXXXXX";
	struct outcome o;
	unsigned a_won = 0, b_won = 0;

	if (!mkdtemp(dir) || start_witness(dir) < 0) {
		printf("1..0 # SKIP cannot start hareplicated --serve-witness\n");
		return 0;
	}
	plan(ROUNDS * 2 + 4);
	for (int i = 0; i < ROUNDS; i++) {
		char vm[32];
		snprintf(vm, sizeof(vm), "torn%d", i);
		round_trip(vm, 0, &o);
		int a_speaks =
		    o.p == HR_RS_UNPROTECTED && o.b == HR_RS_FAILED && o.p_after > 0 && !o.b_after;
		int b_speaks =
		    o.b == HR_RS_PROMOTED && o.p == HR_RS_DEMOTED && o.b_after > 0 && !o.p_after;
		a_won += a_speaks;
		b_won += b_speaks;
		ok(o.registered && o.settled && (a_speaks ^ b_speaks),
		   "%s: torn link, one speaker: %s (A %s %llu bytes, B %s %llu bytes in 1 s)", vm,
		   a_speaks   ? "A kept the lease, B's copy is stale"
		   : b_speaks ? "B promoted with the lease, A stood down"
			      : "NOT SETTLED",
		   hr_role_state_name(o.p), (unsigned long long)o.p_after, hr_role_state_name(o.b),
		   (unsigned long long)o.b_after);
		ok(!o.gaps && !o.conflicts, "%s: the outside stream: %u gaps, %u conflicts", vm,
		   o.gaps, o.conflicts);
	}
	diag("race outcomes: A kept it %u times, B took over %u times", a_won, b_won);

	round_trip("frozen", 1, &o);
	ok(o.registered, "frozen: the witness knew B as the backup before the cut");
	/* o.p_after/b_after now: who spoke after the witness came back */
	ok(!o.frozen_p && !o.frozen_b,
	   "frozen witness: nobody can prove anything, nobody speaks (A %llu, B %llu bytes)",
	   (unsigned long long)o.frozen_p, (unsigned long long)o.frozen_b);
	ok((o.p_after > 0) != (o.b_after > 0),
	   "witness back: exactly one speaks (A %llu, B %llu bytes)", (unsigned long long)o.p_after,
	   (unsigned long long)o.b_after);
	ok(!o.gaps && !o.conflicts, "frozen: the outside stream: %u gaps, %u conflicts", o.gaps,
	   o.conflicts);

	kill(wit_pid, SIGTERM);
	waitpid(wit_pid, NULL, 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {
	}
	return tap_done();
}
