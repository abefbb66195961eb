/*
 * t-primary-silent.c - a primary (real KVM, memwalk) whose backup goes
 * silent without closing the connection (a partition, a hung host) must keep
 * holding the guest's output: the backup may be promoting itself, and two
 * hosts must never both release output.  Its state says so: backup-silent,
 * not protected.  When the backup then announces its
 * takeover and closes, the primary demotes (stops its guest).  The backup
 * here is played by the test.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest-harness.h"
#include "tap.h"
#include "common/err.h"
#include "common/util.h"
#include "core/engine.h"
#include "core/stream.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t released; /* bytes the outside received */

static void sink(void *o, unsigned chan, uint64_t off, const void *p, size_t n)
{
	pthread_mutex_lock(&lock);
	if (off + n > released)
		released = off + n;
	pthread_mutex_unlock(&lock);
}

static uint64_t released_now(void)
{
	pthread_mutex_lock(&lock);
	uint64_t r = released;
	pthread_mutex_unlock(&lock);
	return r;
}

static int backup_silent; /* the primary reported +backup-silent */

static void on_state(void *o, enum hr_role_state from, enum hr_role_state to, enum hr_role_event ev)
{
	if (ev == HR_RE_BACKUP_SILENT)
		__atomic_store_n(&backup_silent, 1, __ATOMIC_SEQ_CST);
}

struct primary {
	struct hr_engine *e;
	int fd, rc, done;
};

static void *run_primary(void *a)
{
	struct primary *p = a;
	p->rc = hr_engine_run_primary(p->e, p->fd);
	__atomic_store_n(&p->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

int main(void)
{
	if (access("/dev/kvm", R_OK | W_OK))
		skip_all("/dev/kvm not usable");
	plan(6);
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	struct hr_engine_config pc = {
	    .name = "t-silent",
	    .ops = hr_backend_find("kvm"),
	    .epoch_us = 25000,
	    .silence_ms = 100, /* the primary calls the backup silent after 100 ms */
	    .output_sink = sink,
	    .on_state = on_state,
	    .vm = {.mem_bytes = 64 << 20,
		   .nr_vcpus = 1,
		   .kernel_path = gh_guest("memwalk.elf"),
		   .cmdline = "rate=2000 wss=4M interval_ms=10"},
	};
	struct primary p = {.fd = sv[0]};
	hr_engine_new(&p.e, &pc);
	pthread_t t;
	pthread_create(&t, NULL, run_primary, &p);

	/* the backup: accept the hello, ack epochs 0..39 */
	struct hr_frame f;
	int rc = hr_stream_recv(sv[1], "t", &f);
	ok(rc == 0 && f.type == HR_FT_HELLO, "primary says hello");
	if (!rc)
		hr_frame_release(&f);
	Hr__HelloAck ha = HR__HELLO_ACK__INIT;
	ha.accepted = 1;
	hr_stream_send(sv[1], HR_FT_HELLO_ACK, HR_FRAME_MANDATORY, &ha.base, NULL, 0);
	uint64_t acked = 0;
	uint64_t t0 = hr_now_ns();
	while (acked < 40 && hr_now_ns() - t0 < 30e9) {
		if (hr_stream_recv(sv[1], "t", &f) < 0)
			break;
		if (f.type == HR_FT_EPOCH_END) {
			Hr__Ack ack = HR__ACK__INIT;
			ack.epoch = ((Hr__EpochEnd *)f.msg)->epoch;
			hr_stream_send(sv[1], HR_FT_ACK, HR_FRAME_MANDATORY, &ack.base, NULL, 0);
			acked++;
		}
		hr_frame_release(&f);
	}
	ok(acked == 40, "40 epochs acked");
	/* the primary counts an epoch as acknowledged after it released its
	 * output: once it counts all 40, nothing acked is still to leave */
	uint64_t nr_epochs = 0;
	t0 = hr_now_ns();
	while (hr_engine_stats(p.e, NULL, &nr_epochs), nr_epochs < acked && hr_now_ns() - t0 < 10e9)
		usleep(1000);
	uint64_t before = released_now();
	ok(nr_epochs >= acked && before > 0,
	   "output of acked epochs was released (%llu bytes, %llu epochs counted)",
	   (unsigned long long)before, (unsigned long long)nr_epochs);

	/* now silent: keep draining (so the primary is not blocked on send) but
	 * never ack.  A window in which nothing must be released (a negative
	 * check, so bounded: 1.5 s); it counts because the primary called the
	 * backup silent in it (+backup-silent, after silence_ms) and heard
	 * nothing from it in all of it */
	t0 = hr_now_ns();
	while (hr_now_ns() - t0 < 1500 * 1000000ull) {
		struct pollfd pf = {sv[1], POLLIN, 0};
		if (poll(&pf, 1, 50) > 0 && hr_stream_recv(sv[1], "t", &f) == 0)
			hr_frame_release(&f);
	}
	uint64_t after = released_now();
	struct hr_engine_liveness l;
	hr_engine_liveness(p.e, &l);
	int silent = __atomic_load_n(&backup_silent, __ATOMIC_SEQ_CST);
	ok(after == before && !__atomic_load_n(&p.done, __ATOMIC_SEQ_CST) && silent &&
	       l.peer_silent_ms >= 1500 && l.state == HR_RS_BACKUP_SILENT,
	   "1.5 s of backup silence (+backup-silent %s, %llu ms unheard): the guest runs on, not "
	   "protected (%s), and nothing more is released (%llu -> %llu bytes)",
	   silent ? "seen" : "NOT seen", (unsigned long long)l.peer_silent_ms,
	   hr_role_state_name(l.state), (unsigned long long)before, (unsigned long long)after);

	/* the backup took over: it says so and hangs up */
	Hr__Error er = HR__ERROR__INIT;
	er.code = -HR_EPROMOTED;
	er.text = "the backup has taken over";
	hr_stream_send(sv[1], HR_FT_ERROR, HR_FRAME_MANDATORY, &er.base, NULL, 0);
	close(sv[1]);
	t0 = hr_now_ns();
	while (!__atomic_load_n(&p.done, __ATOMIC_SEQ_CST) && hr_now_ns() - t0 < 10e9)
		usleep(1000);
	ok(p.done && p.rc == -HR_EPROMOTED, "the primary demotes when told (%s)",
	   hr_strerror(p.rc));
	ok(released_now() == before, "and never released the held output");
	pthread_join(t, NULL);
	hr_engine_free(p.e);
	close(sv[0]);
	return tap_done();
}
