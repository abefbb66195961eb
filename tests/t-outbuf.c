/* t-outbuf.c - output commit buffer: release only acked epochs, in order, within the cap. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "common/log.h"
#include "common/util.h"
#include "core/outbuf.h"
#include "tap.h"

#define VM "t-outbuf"

static const struct hr_chan_desc console[] = {{.name = "console", .kind = HR_CHAN_CONSOLE}};

struct collect {
	uint8_t *buf;
	size_t len, cap;
	uint64_t last_epoch;
	int bad_order;
	int fail_after; /* calls before returning -EIO; < 0 = never */
	unsigned calls;
};

/* The console channel's sink: every run must start exactly where the bytes
 * received so far end (each byte's offset has one owner). */
static int sink(void *opaque, unsigned chan, uint64_t offset, const void *buf, size_t len)
{
	struct collect *c = opaque;

	if (c->fail_after >= 0 && c->calls >= (unsigned)c->fail_after)
		return -EIO;
	c->calls++;
	if (chan != 0 || offset != c->len)
		c->bad_order = 1;
	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2;
		c->buf = realloc(c->buf, c->cap);
	}
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	return 0;
}

static void collect_init(struct collect *c)
{
	memset(c, 0, sizeof(*c));
	c->fail_after = -1;
}

static unsigned nr_full_cb;

static void on_full(void *opaque, size_t held)
{
	nr_full_cb++;
}

/* ---- concurrent producers ---- */

#define NR_PRODUCERS 4
#define NR_RECORDS   20000

struct prod {
	struct hr_outbuf *ob;
	uint32_t id;
	int rc;
};

static void *producer(void *arg)
{
	struct prod *p = arg;

	for (uint32_t seq = 0; seq < NR_RECORDS && !p->rc; seq++) {
		uint32_t rec[2] = {p->id, seq};
		p->rc = hr_outbuf_append_wait(p->ob, 0, rec, sizeof(rec), 5000);
	}
	return NULL;
}

/* Records per channel: own offsets, never split or merged; held() sees them in place. */
struct rec_log {
	unsigned n[2];
	uint64_t next[2];
	int bad;
	size_t lens[64];
	unsigned nlens;
};

static int rec_sink(void *opaque, unsigned chan, uint64_t offset, const void *buf, size_t len)
{
	struct rec_log *r = opaque;
	if (chan > 1) {
		r->bad = 1;
		return 0;
	}
	if (offset != r->next[chan])
		r->bad = 1;
	r->next[chan] = offset + len;
	r->n[chan]++;
	if (chan == 1 && r->nlens < 64)
		r->lens[r->nlens++] = len;
	return 0;
}

static void test_channels(void)
{
	static const struct hr_chan_desc chans[] = {
	    {.name = "console", .kind = HR_CHAN_CONSOLE},
	    {.name = "net0", .kind = HR_CHAN_NET, .max_record_bytes = 1514}};
	static uint8_t big[20000];
	struct hr_outbuf *ob;
	struct hr_out_held h;
	struct rec_log r = {0};

	hr_outbuf_new(&ob, VM, chans, 2, 1 << 20, 0);
	/* 13 KiB of console in one epoch: several runs, each with its own offset */
	for (int i = 0; i < 13; i++)
		hr_outbuf_append(ob, 0, big, 1000);
	for (int i = 0; i < 5; i++)
		hr_outbuf_append(ob, 1, big, 60 + i);
	ok(hr_outbuf_append(ob, 1, big, 1515) == -EMSGSIZE,
	   "a record over max_record_bytes is refused");
	hr_outbuf_seal(ob, 0);
	hr_outbuf_append(ob, 0, big, 10); /* epoch 1: not in held(0) */
	ok(hr_outbuf_held(ob, 0, &h) == 0 && h.nr_chans == 2 && h.next_offsets[0] == 13000 &&
	       h.next_offsets[1] == 60 + 61 + 62 + 63 + 64 && h.bytes == 13000 + 310,
	   "held: %zu records, offsets 13000 / 310 after epoch 0", h.nr_records);
	uint64_t o = 0;
	int cons_ok = 1;
	for (size_t i = 0; i < h.nr_records; i++)
		if (h.records[i].chan == 0) {
			cons_ok &= h.records[i].offset == o;
			o += h.records[i].len;
		}
	ok(cons_ok && o == 13000, "held console runs tile offsets 0..13000 exactly");
	hr_outbuf_held_free(&h);
	hr_outbuf_release(ob, 0, rec_sink, &r);
	ok(!r.bad && r.next[0] == 13000 && r.next[1] == 310,
	   "release: every record at its own offset, per channel");
	ok(r.n[1] == 5 && r.lens[0] == 60 && r.lens[4] == 64,
	   "5 network records, neither split nor merged");
	hr_outbuf_seal(ob, 1);
	hr_outbuf_release(ob, 1, rec_sink, &r);
	ok(!r.bad && r.next[0] == 13010, "the next epoch continues at offset 13000");

	/* replay: released console bytes ride along in held() for a while */
	hr_outbuf_append(ob, 0, big, 100);
	hr_outbuf_append(ob, 1, big, 70);
	hr_outbuf_seal(ob, 2);
	ok(hr_outbuf_held(ob, 2, &h) == 0, "held(2) with released output behind it");
	uint64_t lo = UINT64_MAX, cons = 0, net = 0;
	for (size_t i = 0; i < h.nr_records; i++) {
		if (h.records[i].chan == 0) {
			lo = h.records[i].offset < lo ? h.records[i].offset : lo;
			cons += h.records[i].len;
		} else {
			net += h.records[i].len;
		}
	}
	ok(lo < 13010 && lo + cons == 13110 && cons > 100 && cons <= 100 + (16 << 10),
	   "the console's last released bytes are replayed before the held ones (%llu..13110)",
	   (unsigned long long)lo);
	ok(net == 70, "network records are not replayed (%llu bytes held)",
	   (unsigned long long)net);
	hr_outbuf_held_free(&h);
	hr_outbuf_free(ob);
}

static unsigned nr_net_cb;

static void on_net(void *opaque)
{
	nr_net_cb++;
}

/* The open epoch's first network record is announced once and timed;
 * console bytes and disk records are not. */
static void test_net_trigger(void)
{
	static const struct hr_chan_desc chans[] = {
	    {.name = "console", .kind = HR_CHAN_CONSOLE},
	    {.name = "net0", .kind = HR_CHAN_NET, .max_record_bytes = 1514},
	    {.name = "disk0", .kind = HR_CHAN_DISK, .max_record_bytes = 64}};
	struct hr_outbuf *ob;

	hr_outbuf_new(&ob, VM, chans, 3, 1 << 20, 0);
	hr_outbuf_set_net_cb(ob, on_net, NULL);
	hr_outbuf_append(ob, 0, "console", 7);
	hr_outbuf_append(ob, 2, "done", 4);
	ok(nr_net_cb == 0 && hr_outbuf_net_since_ns(ob) == 0,
	   "console bytes and disk records do not count as network output");
	uint64_t t0 = hr_now_ns();
	for (int i = 0; i < 10; i++)
		hr_outbuf_append(ob, 1, "frame-frame-frame", 17);
	uint64_t since = hr_outbuf_net_since_ns(ob);
	ok(nr_net_cb == 1 && since >= t0 && since <= hr_now_ns(),
	   "10 frames in one epoch: one callback, timed at the first (%u)", nr_net_cb);
	ok(hr_outbuf_append(ob, 1, "x", 1515) == -EMSGSIZE && nr_net_cb == 1,
	   "a refused frame does not call it again");
	hr_outbuf_seal(ob, 0);
	ok(hr_outbuf_net_since_ns(ob) == 0, "seal: the new open epoch holds no network output");
	hr_outbuf_append(ob, 1, "frame", 5);
	ok(nr_net_cb == 2 && hr_outbuf_net_since_ns(ob) >= since,
	   "the next epoch's first frame calls it again");
	hr_outbuf_drop_from(ob, 1);
	ok(hr_outbuf_net_since_ns(ob) == 0, "drop_from(open epoch) forgets it");
	hr_outbuf_free(ob);
}

int main(void)
{
	struct hr_outbuf *ob;
	struct hr_outbuf_stats s;
	struct collect c;
	uint8_t big[3000], *expect;
	size_t expect_len = 0;
	int rc;

	hr_log_init("t-outbuf", 1, 0);
	alarm(60);
	plan(39);

	/* basic: release only up to the acked epoch */
	ok(hr_outbuf_new(&ob, VM, console, 1, 1 << 20, 0) == 0, "outbuf with a 1 MiB cap");
	hr_outbuf_append(ob, 0, "hello ", 6);
	hr_outbuf_append(ob, 0, "world", 5);
	ok(hr_outbuf_seal(ob, 0) == 0, "seal epoch 0");
	hr_outbuf_append(ob, 0, "-epoch1", 7);
	collect_init(&c);
	ok(hr_outbuf_release(ob, 1, sink, &c) == -EINVAL && c.len == 0,
	   "release of the open epoch 1: -EINVAL, nothing released");
	ok(hr_outbuf_release(ob, 0, sink, &c) == 0 && c.len == 11 &&
	       !memcmp(c.buf, "hello world", 11),
	   "release(0) hands over exactly epoch 0's bytes");
	hr_outbuf_get_stats(ob, &s);
	ok(s.held_bytes == 7 && s.open_epoch == 1 && s.released_bytes == 11,
	   "epoch 1's 7 bytes still held");
	ok(hr_outbuf_release(ob, 0, sink, &c) == 0 && c.len == 11,
	   "releasing epoch 0 again is a no-op");
	ok(hr_outbuf_seal(ob, 0) == -EINVAL && hr_outbuf_seal(ob, 2) == -EINVAL,
	   "seal of a non-open epoch: -EINVAL");
	ok(hr_outbuf_seal(ob, 1) == 0 && hr_outbuf_seal(ob, 2) == 0,
	   "seal epochs 1 and 2 (2 empty)");
	ok(hr_outbuf_release(ob, 2, sink, &c) == 0 && c.len == 18 &&
	       !memcmp(c.buf + 11, "-epoch1", 7),
	   "release(2) hands over epoch 1, empty epoch 2 is fine");
	hr_outbuf_free(ob);
	free(c.buf);

	/* ordering over many epochs and chunk boundaries, partial acks */
	hr_outbuf_new(&ob, VM, console, 1, 8 << 20, 100);
	expect = malloc(4 << 20);
	size_t mark[151];
	srand(7);
	for (uint64_t e = 100; e < 150; e++) {
		int nr = rand() % 20;
		for (int k = 0; k < nr; k++) {
			size_t len = 1 + rand() % 3000;
			for (size_t i = 0; i < len; i++)
				big[i] = (uint8_t)(expect_len + i);
			if (hr_outbuf_append(ob, 0, big, len))
				bail("append");
			memcpy(expect + expect_len, big, len);
			expect_len += len;
		}
		mark[e - 100] = expect_len;
		hr_outbuf_seal(ob, e);
	}
	collect_init(&c);
	rc = hr_outbuf_release(ob, 109, sink, &c);
	ok(rc == 0 && c.len == mark[9] && !memcmp(c.buf, expect, c.len) && c.last_epoch <= 109,
	   "ack 109: exactly epochs 100..109 released (%zu bytes)", c.len);
	rc = hr_outbuf_release(ob, 130, sink, &c);
	ok(rc == 0 && c.len == mark[30] && !memcmp(c.buf, expect, c.len) && c.last_epoch <= 130,
	   "ack 130: epochs up to 130 released, in order");
	rc = hr_outbuf_release(ob, 149, sink, &c);
	ok(rc == 0 && c.len == expect_len && !memcmp(c.buf, expect, c.len) && !c.bad_order,
	   "ack 149: all %zu bytes released in order, epochs non-decreasing", expect_len);
	hr_outbuf_get_stats(ob, &s);
	ok(s.held_bytes == 0, "nothing held after the last ack");
	free(c.buf);

	/* a failing sink keeps the bytes, in order */
	expect_len = 0;
	for (int k = 0; k < 10; k++) {
		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(k * 3 + i);
		hr_outbuf_append(ob, 0, big, sizeof(big));
		memcpy(expect + expect_len, big, sizeof(big));
		expect_len += sizeof(big);
		hr_outbuf_seal(ob, 150 + k);
	}
	collect_init(&c);
	c.fail_after = 3;
	rc = hr_outbuf_release(ob, 159, sink, &c);
	hr_outbuf_get_stats(ob, &s);
	ok(rc == -EIO && s.held_bytes == expect_len - c.len, "sink error: -EIO, %zu bytes kept",
	   s.held_bytes);
	c.fail_after = -1;
	rc = hr_outbuf_release(ob, 159, sink, &c);
	ok(rc == 0 && c.len == expect_len && !memcmp(c.buf, expect, expect_len),
	   "retry delivers the rest: no loss, no duplicate, same order");
	free(c.buf);
	hr_outbuf_free(ob);

	/* the cap */
	hr_outbuf_new(&ob, VM, console, 1, 1000, 0);
	hr_outbuf_set_full_cb(ob, on_full, NULL);
	memset(big, 'x', sizeof(big));
	ok(hr_outbuf_append(ob, 0, big, 600) == 0, "600 of 1000 bytes");
	rc = hr_outbuf_append(ob, 0, big, 500);
	hr_outbuf_get_stats(ob, &s);
	ok(rc == -ENOBUFS && s.held_bytes == 600 && s.nr_full == 1 && nr_full_cb == 1,
	   "500 more: -ENOBUFS, nothing stored, full callback called once");
	ok(hr_outbuf_append(ob, 0, big, 2000) == -EMSGSIZE,
	   "an append larger than the cap: -EMSGSIZE");
	ok(hr_outbuf_append(ob, 0, big, 400) == 0, "exactly up to the cap is fine");
	uint64_t t0 = hr_now_ns();
	rc = hr_outbuf_append_wait(ob, 0, big, 1, 50);
	ok(rc == -ENOBUFS && hr_now_ns() - t0 >= 40000000ull,
	   "append_wait on a full buffer times out with -ENOBUFS");
	hr_outbuf_seal(ob, 0);
	collect_init(&c);
	hr_outbuf_release(ob, 0, sink, &c);
	ok(c.len == 1000 && hr_outbuf_append(ob, 0, big, 998) == 0,
	   "after release the space is back");

	/* drop_from: unacknowledged output of a lost epoch */
	hr_outbuf_seal(ob, 1);
	rc = hr_outbuf_append(ob, 0, "zz", 2);
	hr_outbuf_drop_from(ob, 1);
	hr_outbuf_get_stats(ob, &s);
	ok(rc == 0 && s.held_bytes == 0, "drop_from(1) drops epochs 1 and 2 (1000 bytes)");
	free(c.buf);
	hr_outbuf_free(ob);

	/* concurrent producers against a small cap, consumer sealing and releasing */
	{
		struct prod p[NR_PRODUCERS];
		pthread_t th[NR_PRODUCERS];
		uint32_t next[NR_PRODUCERS] = {0};
		uint64_t epoch = 0;
		int good = 1, done = 0;

		hr_outbuf_new(&ob, VM, console, 1, 4096, 0);
		collect_init(&c);
		for (int i = 0; i < NR_PRODUCERS; i++) {
			p[i] = (struct prod){.ob = ob, .id = i};
			pthread_create(&th[i], NULL, producer, &p[i]);
		}
		while (!done) {
			hr_outbuf_seal(ob, epoch);
			if (hr_outbuf_release(ob, epoch, sink, &c))
				good = 0;
			epoch++;
			hr_outbuf_get_stats(ob, &s);
			done = c.len == (size_t)NR_PRODUCERS * NR_RECORDS * 8;
			if (!done)
				usleep(100);
		}
		for (int i = 0; i < NR_PRODUCERS; i++) {
			pthread_join(th[i], NULL);
			good &= p[i].rc == 0;
		}
		for (size_t off = 0; off + 8 <= c.len; off += 8) {
			uint32_t rec[2];
			memcpy(rec, c.buf + off, 8);
			if (rec[0] >= NR_PRODUCERS || rec[1] != next[rec[0]]++)
				good = 0;
		}
		ok(good && !c.bad_order,
		   "%d producers x %d records through a 4 KiB cap: all delivered, each in order "
		   "(%llu epochs)",
		   NR_PRODUCERS, NR_RECORDS, (unsigned long long)epoch);
		hr_outbuf_get_stats(ob, &s);
		ok(s.held_bytes == 0 && s.released_bytes == c.len, "nothing held, counters agree");
		free(c.buf);
		hr_outbuf_free(ob);
	}

	free(expect);
	test_channels();
	test_net_trigger();
	return tap_done();
}
