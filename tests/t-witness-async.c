/*
 * t-witness-async.c - the witness never holds up the engine, and a witness
 * that lost its table never loses the VM.  A primary engine ("A") and its
 * backup ("B") in one process, with the mem backend:
 *
 *   - names: a host name is resolved within the request's bound.
 *   - hang: a "witness" that accepts TCP and never answers.  The protected
 *     primary's epochs keep their cadence while it registers there; after
 *     a torn link both sides ask it (no answer: nobody speaks), and a stop
 *     still ends either side at once.
 *   - forgot: a real witness (hareplicated --serve-witness) restarted with
 *     its table deleted.  A registers again by itself; then A dies and B
 *     promotes with the lease and releases output.
 *   - unknown: the witness comes back empty only after A died.  B hears
 *     "unknown VM": it keeps its copy (standing unregistered, not failed)
 *     and keeps asking; once the VM is registered by hand, B promotes.
 *   - operator: a failover asked by hand waits for the witness's answer:
 *     refused while it names another backup, done once it names B again.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine-pair.h"
#include "tap.h"
#include "common/err.h"
#include "common/util.h"
#include "ha/failover.h"
#include "ha/witness.h"

#define EPOCH_MS 25

static char wit_addr[64], wit_dir[256];
static pid_t wit_pid;

/* ---- a witness that accepts and never answers ---- */

struct hang {
	int lfd;
	volatile int stop;
	volatile unsigned accepted;
	int fds[64];
	uint64_t acc_ns[64]; /* when each was taken: a request hangs from then on */
	pthread_t t;
	char addr[64];
};

static void *hang_run(void *arg)
{
	struct hang *h = arg;
	while (!h->stop) {
		struct pollfd p = {h->lfd, POLLIN, 0};
		if (poll(&p, 1, 20) <= 0)
			continue;
		int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (h->accepted < 64) {
			h->fds[h->accepted] = fd; /* held open, never read, never answered */
			h->acc_ns[h->accepted] = hr_now_ns();
		} else
			close(fd);
		__atomic_add_fetch(&h->accepted, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static int hang_start(struct hang *h)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	memset(h, 0, sizeof(*h));
	h->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->lfd < 0 || bind(h->lfd, (void *)&a, sizeof(a)) || listen(h->lfd, 64) ||
	    getsockname(h->lfd, (void *)&a, &al))
		return -1;
	snprintf(h->addr, sizeof(h->addr), "127.0.0.1:%u", ntohs(a.sin_port));
	return pthread_create(&h->t, NULL, hang_run, h) ? -1 : 0;
}

static void hang_stop(struct hang *h)
{
	h->stop = 1;
	pthread_join(h->t, NULL);
	for (unsigned i = 0; i < h->accepted && i < 64; i++)
		close(h->fds[i]);
	close(h->lfd);
}

/* ---- a real witness ---- */

static int witness_answers(void)
{
	struct hr_wit_req q = {.op = HR_WIT_QUERY};
	struct hr_wit_reply r;
	snprintf(q.vm, sizeof(q.vm), "probe");
	return hr_witness_ask(NULL, wit_addr, &q, &r, 200) == 0;
}

static int start_witness(void)
{
	const char *b = getenv("top_builddir");
	char bin[1024], ctl[1024], state[1024];

	snprintf(bin, sizeof(bin), "%s/hareplicated", b ? b : ".");
	snprintf(ctl, sizeof(ctl), "%s/w.sock", wit_dir);
	snprintf(state, sizeof(state), "%s/w", wit_dir);
	wit_pid = fork();
	if (wit_pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 2);
		execl(bin, bin, "-f", "--serve-witness", "--insecure", "--control", ctl, "--listen",
		      wit_addr, "--state-dir", state, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (witness_answers())
			return 0;
		usleep(50000);
	}
	return -1;
}

/* The witness dies and its table with it (1: the table was there). */
static int kill_witness_and_table(void)
{
	char table[512];
	kill(wit_pid, SIGKILL);
	waitpid(wit_pid, NULL, 0);
	snprintf(table, sizeof(table), "%s/w/witness.table", wit_dir);
	return unlink(table) == 0;
}

/* The witness's record of vm: owner and backup as wanted? */
static int witness_knows(const char *vm, const char *owner, const char *backup)
{
	struct hr_wit_req q = {.op = HR_WIT_QUERY};
	struct hr_wit_reply r;
	snprintf(q.vm, sizeof(q.vm), "%s", vm);
	return hr_witness_ask(NULL, wit_addr, &q, &r, 500) == 0 && !strcmp(r.owner, owner) &&
	       !strcmp(r.backup, backup);
}

static int wait_witness_knows(const char *vm, const char *owner, const char *backup, double s)
{
	uint64_t end = hr_now_ns() + (uint64_t)(s * 1e9);
	while (hr_now_ns() < end) {
		if (witness_knows(vm, owner, backup))
			return 1;
		usleep(50000);
	}
	return 0;
}

static int wait_state(volatile enum hr_role_state *st, enum hr_role_state want, double s)
{
	uint64_t end = hr_now_ns() + (uint64_t)(s * 1e9);
	while (*st != want && hr_now_ns() < end)
		usleep(2000);
	return *st == want;
}

/* Wait (bounded) until e's witness standing is want; the last one seen. */
static int wait_standing(struct hr_engine *e, int want, double s, struct hr_engine_liveness *l)
{
	uint64_t end = hr_now_ns() + (uint64_t)(s * 1e9);
	for (;;) {
		hr_engine_liveness(e, l);
		if (l->witness_standing == want || hr_now_ns() >= end)
			return l->witness_standing;
		usleep(10000);
	}
}

static void configs(const char *vm, const char *witness, struct hr_engine_config *pc,
		    struct hr_engine_config *bc)
{
	*pc = (struct hr_engine_config){
	    .name = vm,
	    .ops = hr_backend_find("mem"),
	    .epoch_us = EPOCH_MS * 1000,
	    .silence_ms = 300,
	    .witness = witness,
	    .node = "A",
	    .peer_node = "B",
	    .lease_ms = 1000,
	    .vm = {.mem_bytes = 32 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = "mem:",
		   .cmdline = "steps_per_s=1000 writes=8"},
	};
	*bc = (struct hr_engine_config){.name = vm,
					.silence_ms = 300,
					.auto_promote = 1,
					.witness = witness,
					.node = "B",
					.peer_node = "A",
					.lease_ms = 1000};
}

/* ---- names: resolved within the request's bound ---- */

static void test_names(void)
{
	struct hr_wit_req q = {.op = HR_WIT_QUERY};
	struct hr_wit_reply r;
	char addr[80];

	snprintf(q.vm, sizeof(q.vm), "probe");
	snprintf(addr, sizeof(addr), "localhost%s", strchr(wit_addr, ':'));
	int rc1 = hr_witness_ask(NULL, addr, &q, &r, 2000);
	int rc2 = hr_witness_ask(NULL, addr, &q, &r, 2000); /* the kept answer */
	ok(rc1 == 0 && rc2 == 0, "names: the witness asked as %s (%d, %d)", addr, rc1, rc2);
	/* a name no resolver knows: an answer (or none) within the bound, never later */
	uint64_t t0 = hr_now_ns();
	int rc = hr_witness_ask(NULL, "no-such-witness.invalid:7788", &q, &r, 300);
	uint64_t ms = (hr_now_ns() - t0) / 1000000;
	ok(rc < 0 && ms < 500, "names: an unknown name fails within the 300 ms bound (%s, %llu ms)",
	   hr_strerror(rc), (unsigned long long)ms);
}

/* ---- hang ---- */

#define MAX_ACKS 4096
static uint64_t ack_ns[MAX_ACKS];
static volatile unsigned nr_acks;

static void on_ack(struct ep_pair *ep, const struct hr_epoch_stats *st)
{
	(void)st;
	unsigned i = nr_acks;
	if (i < MAX_ACKS) {
		ack_ns[i] = hr_now_ns();
		__atomic_store_n(&nr_acks, i + 1, __ATOMIC_SEQ_CST);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Stop e the moment it has a request out at h (a connection h just took):
 * how long until its state says stopped (ms; -1: never). */
static long stop_while_asking(struct hr_engine *e, volatile enum hr_role_state *st, struct hang *h)
{
	unsigned n = __atomic_load_n(&h->accepted, __ATOMIC_SEQ_CST);
	uint64_t end = hr_now_ns() + 3000000000ull;
	while (__atomic_load_n(&h->accepted, __ATOMIC_SEQ_CST) == n && hr_now_ns() < end)
		usleep(1000);
	uint64_t t0 = hr_now_ns();
	hr_engine_stop(e);
	if (!wait_state(st, HR_RS_STOPPED, 5))
		return -1;
	return (long)((hr_now_ns() - t0) / 1000000);
}

static void test_hang(void)
{
	struct hang ha, hb; /* A's witness, B's: who asked is who connected */
	struct ep_pair ep = {0};
	struct hr_engine_config pc, bc;

	if (hang_start(&ha) < 0 || hang_start(&hb) < 0) {
		ok(0, "hang: listening sockets for the silent witness");
		return;
	}
	configs("hang", ha.addr, &pc, &bc);
	bc.witness = hb.addr;
	ep.on_p_epoch = on_ack;
	ok(ep_start(&ep, pc, bc, EP_RELAY) == 0,
	   "hang: A and B started, their witness (%s, %s) never answers", ha.addr, hb.addr);
	ep_wait_u64(&ep.p_acked, 10, 30);
	/* epochs while A registers (and registers again) at the witness */
	unsigned a0 = __atomic_load_n(&ha.accepted, __ATOMIC_SEQ_CST);
	unsigned first = nr_acks;
	uint64_t t0 = hr_now_ns(), t1;
	for (;;) { /* until two requests hung (and ended) inside, 8 s at most */
		usleep(100000);
		t1 = hr_now_ns();
		unsigned done = 0;
		for (unsigned i = a0; i < ha.accepted && i < 64; i++)
			done += ha.acc_ns[i] >= t0 && ha.acc_ns[i] + 450000000ull <= t1;
		if (done >= 2 || t1 - t0 > 8000000000ull)
			break;
	}
	unsigned last = nr_acks, n = last > first + 1 ? last - first - 1 : 0;
	static uint64_t gaps[MAX_ACKS];
	for (unsigned i = 0; i < n; i++)
		gaps[i] = ack_ns[first + i + 1] - ack_ns[first + i];
	qsort(gaps, n, sizeof(gaps[0]), cmp_u64);
	uint64_t med = n ? gaps[n / 2] / 1000000 : 0, max = n ? gaps[n - 1] / 1000000 : 0;
	/*
	 * Each request A sent hangs for the client's bound (500 ms) from its
	 * accept on: epochs acknowledged inside [accept + 50, accept + 450 ms]
	 * show that nothing waits for it.  (A blocked engine thread gets none
	 * there; a loaded machine still gets several of the ~16.)
	 */
	unsigned windows = 0, fewest = UINT_MAX, asked = 0;
	for (unsigned i = a0; i < ha.accepted && i < 64; i++) {
		uint64_t w0 = ha.acc_ns[i] + 50000000ull, w1 = ha.acc_ns[i] + 450000000ull;
		asked++;
		if (ha.acc_ns[i] < t0 || w1 > t1)
			continue;
		unsigned in = 0;
		for (unsigned k = first; k < last; k++)
			in += ack_ns[k] >= w0 && ack_ns[k] <= w1;
		windows++;
		if (in < fewest)
			fewest = in;
	}
	ok(windows >= 2, "hang: A asked the witness %u times in %.1f s (%u hung inside)", asked,
	   (double)(t1 - t0) / 1e9, windows);
	ok(windows && fewest >= 4 && med <= 2 * EPOCH_MS,
	   "hang: epochs keep their cadence while a request hangs (at least %u acks in each "
	   "hung request's 400 ms; %u acks, interval median %llu ms, max %llu ms; epoch "
	   "%d ms)",
	   windows ? fewest : 0, n + 1, (unsigned long long)med, (unsigned long long)max, EPOCH_MS);
	ok(ep.p_state == HR_RS_PROTECTED, "hang: A protected (%s)", hr_role_state_name(ep.p_state));

	/* torn: A wants a lease to release output, B one to promote; no answer */
	ep.torn = 1;
	wait_state(&ep.p_state, HR_RS_UNPROTECTED, 5);
	usleep(1500000); /* both have asked (and wait) */
	uint64_t p0 = ep.p_bytes, b0 = ep.b_bytes;
	usleep(500000);
	ok(ep.p_state == HR_RS_UNPROTECTED && ep.b_state == HR_RS_BACKUP && ep.p_bytes == p0 &&
	       ep.b_bytes == b0,
	   "hang: torn link, no answer: A unprotected and B backup, neither speaks (A %s, B %s)",
	   hr_role_state_name(ep.p_state), hr_role_state_name(ep.b_state));
	long p_ms = stop_while_asking(ep.p, &ep.p_state, &ha);
	long b_ms = stop_while_asking(ep.b, &ep.b_state, &hb);
	ok(p_ms >= 0 && b_ms >= 0 && p_ms < 250 && b_ms < 250,
	   "hang: a stop ends either side at once while its request hangs (A %ld ms, B %ld ms)",
	   p_ms, b_ms);
	ep_finish(&ep);
	hang_stop(&ha);
	hang_stop(&hb);
}

/* ---- forgot ---- */

static void test_forgot(void)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc, bc;

	configs("forgot", wit_addr, &pc, &bc);
	ep_start(&ep, pc, bc, EP_SOCKETPAIR);
	ep_wait_u64(&ep.p_acked, 10, 30);
	ok(wait_witness_knows("forgot", "A", "B", 10),
	   "forgot: the witness knows owner A, backup B");
	int had_table = kill_witness_and_table();
	int up = start_witness() == 0;
	ok(had_table && up, "forgot: the witness restarted with its table deleted");
	ok(wait_witness_knows("forgot", "A", "B", 10),
	   "forgot: A registered again by itself (owner A, backup B)");
	struct hr_engine_liveness la;
	/* the witness holds it; A takes the answer at its next loop point */
	wait_standing(ep.p, HR_HA_W_REGISTERED, 2, &la);
	ok(la.witness_standing == HR_HA_W_REGISTERED && ep.p_state == HR_RS_PROTECTED,
	   "forgot: A protected, standing %s", hr_ha_standing_name(la.witness_standing));
	ep_kill_primary(&ep);
	int promoted = wait_state(&ep.b_state, HR_RS_PROMOTED, 10);
	uint64_t b0 = ep.b_bytes;
	usleep(1000000);
	ok(promoted && ep.b_bytes > b0,
	   "forgot: A killed: B promotes with the lease and releases output (%s, %llu bytes in "
	   "1 s)",
	   hr_role_state_name(ep.b_state), (unsigned long long)(ep.b_bytes - b0));
	ep_finish(&ep);
}

/* ---- unknown ---- */

static void test_unknown(void)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc, bc;
	struct hr_engine_liveness lb;

	configs("unknown", wit_addr, &pc, &bc);
	ep_start(&ep, pc, bc, EP_SOCKETPAIR);
	ep_wait_u64(&ep.p_acked, 10, 30);
	ok(wait_witness_knows("unknown", "A", "B", 10), "unknown: the witness knows A and B");
	int had_table = kill_witness_and_table();
	ep_kill_primary(&ep); /* dies before the witness is back: nobody registers */
	usleep(500000);	      /* B asks meanwhile: unreachable */
	int up = start_witness() == 0;
	wait_standing(ep.b, HR_HA_W_UNREGISTERED, 5, &lb);
	ok(had_table && up && lb.witness_standing == HR_HA_W_UNREGISTERED,
	   "unknown: the empty witness does not know the VM: B's standing %s",
	   hr_ha_standing_name(lb.witness_standing));
	uint64_t b0 = ep.b_bytes;
	usleep(1500000); /* B asks again and again meanwhile */
	hr_engine_liveness(ep.b, &lb);
	ok(ep.b_state == HR_RS_BACKUP && ep.b_bytes == b0 &&
	       lb.witness_standing == HR_HA_W_UNREGISTERED && lb.witness_contact_ms < 1000,
	   "unknown: B keeps its copy and keeps asking (state %s, standing %s, last answer %llu "
	   "ms ago), releases nothing",
	   hr_role_state_name(ep.b_state), hr_ha_standing_name(lb.witness_standing),
	   (unsigned long long)lb.witness_contact_ms);
	/* the operator (or a primary) registers the VM: B's next claim wins */
	struct hr_wit_req r = {.op = HR_WIT_REGISTER};
	struct hr_wit_reply rep;
	snprintf(r.vm, sizeof(r.vm), "unknown");
	snprintf(r.node, sizeof(r.node), "A");
	snprintf(r.peer, sizeof(r.peer), "B");
	int reg = hr_witness_ask(NULL, wit_addr, &r, &rep, 500) == 0 && rep.granted;
	int promoted = wait_state(&ep.b_state, HR_RS_PROMOTED, 5);
	b0 = ep.b_bytes;
	usleep(1000000);
	ok(reg && promoted && ep.b_bytes > b0,
	   "unknown: registered by hand: B promotes and releases output (%s, %llu bytes in 1 s)",
	   hr_role_state_name(ep.b_state), (unsigned long long)(ep.b_bytes - b0));
	ep_finish(&ep);
}

/* ---- operator: a failover asked by hand waits for the witness's word ---- */

static void test_operator(void)
{
	struct ep_pair ep = {0};
	struct hr_engine_config pc, bc;

	configs("operator", wit_addr, &pc, &bc);
	bc.auto_promote = 0; /* only the operator promotes */
	ep_start(&ep, pc, bc, EP_SOCKETPAIR);
	ep_wait_u64(&ep.p_acked, 10, 30);
	int known = wait_witness_knows("operator", "A", "B", 10);
	ep_kill_primary(&ep);
	usleep(300000);
	/* the witness names another backup: the claim is refused, B stays */
	struct hr_wit_req r = {.op = HR_WIT_REGISTER};
	struct hr_wit_reply rep;
	snprintf(r.vm, sizeof(r.vm), "operator");
	snprintf(r.node, sizeof(r.node), "A");
	snprintf(r.peer, sizeof(r.peer), "C");
	int moved = hr_witness_ask(NULL, wit_addr, &r, &rep, 500) == 0 && rep.granted;
	hr_engine_promote(ep.b);
	usleep(1000000);
	ok(known && moved && ep.b_state == HR_RS_BACKUP && !ep.b_bytes,
	   "operator: failover while the witness names backup C: refused, B stays a backup (%s)",
	   hr_role_state_name(ep.b_state));
	snprintf(r.peer, sizeof(r.peer), "B");
	moved = hr_witness_ask(NULL, wit_addr, &r, &rep, 500) == 0 && rep.granted;
	hr_engine_promote(ep.b);
	int promoted = wait_state(&ep.b_state, HR_RS_PROMOTED, 5);
	ok(moved && promoted,
	   "operator: failover with B registered again: promoted with the lease (%s)",
	   hr_role_state_name(ep.b_state));
	ep_finish(&ep);
}

int main(void)
{
	char dir[] = "/tmp/t-witness-async.XXXXXX";

	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir)) {
		printf("1..0 # SKIP no temporary directory\n");
		return 0;
	}
	snprintf(wit_dir, sizeof(wit_dir), "%s", dir);
	snprintf(wit_addr, sizeof(wit_addr), "127.0.0.1:%d", 20000 + (getpid() + 7) % 20000);
	if (start_witness() < 0) {
		printf("1..0 # SKIP cannot start hareplicated --serve-witness\n");
		return 0;
	}
	plan(19);
	test_names();
	test_hang();
	test_forgot();
	test_unknown();
	test_operator();
	kill(wit_pid, SIGTERM);
	waitpid(wit_pid, NULL, 0);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {
	}
	return tap_done();
}
