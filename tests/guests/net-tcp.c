/*
 * net-tcp.c - a minimal TCP server for netsvc (a subset of RFC 9293).
 *
 * Passive open only, on netcfg.tcp_port, for up to TCP_MAX_CONNS
 * connections; a SYN that finds the table full is refused with a RST, and
 * so is every segment for a connection or port we do not have.  No window
 * scaling, SACK or timestamps: the SYN-ACK carries only MSS.
 *
 * - Receiving: in-order data only.  A segment that starts beyond rcv_nxt
 *   is dropped and answered with an ACK for rcv_nxt (the sender
 *   retransmits); overlap with what we already have is trimmed.  Every
 *   segment that carries data or FIN is acknowledged at once, piggybacked
 *   on the answer when there is one (no delayed ACK).
 * - Flow control: in-order data goes into a RBUF_SIZE receive ring, and
 *   the advertised window is its free space.  The service drains the ring
 *   as far as its answers fit into the SBUF_SIZE send ring, where they
 *   wait until acknowledged; the window reopens as answers are
 *   acknowledged (with an ACK of its own once it has grown to an MSS: a
 *   Linux sender with bulk data does not send into a window below MSS
 *   before its persist timer fires).
 * - Sending: our data goes out as soon as it is queued, within the peer's
 *   window and MSS.  One retransmission timer per connection: RTO_MIN_MS,
 *   doubled per expiry up to RTO_MAX_MS; on expiry everything from snd_una
 *   is sent again (go-back-N); when the peer's window is shut and nothing
 *   is in flight, the probe is a bare ACK for snd_una - 1, which the peer
 *   answers with its window (as Linux probes).  The expiry after MAX_RETRIES retransmissions in a
 * row resets the connection.  The clock is net_now_ms, which ignores TSC jumps (a restore).
 * - Closing: the server never closes first.  The peer's FIN (in order)
 *   makes us queue ours behind the answers to everything received
 *   (LAST_ACK; an unterminated last line gets no answer); the ACK of our
 *   FIN frees the slot.
 */
#include "netsvc.h"

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

#define TCP_HLEN	20
#define OUR_MSS		(ETH_MTU - IP_HLEN - TCP_HLEN)
#define DEFAULT_MSS	536
#define RBUF_SIZE	8192  /* a power of two */
#define SBUF_SIZE	16384 /* a power of two */
#define WND_UPDATE	OUR_MSS
#define RTO_MIN_MS	200
#define RTO_MAX_MS	6400
#define MAX_RETRIES	12 /* then a reset, about 57 s in */
#define MAX_SYN_RETRIES 5

#define SEQ_LT(a, b)  ((int32_t)((a) - (b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((a) - (b)) <= 0)

enum { T_FREE, T_SYN_RCVD, T_ESTABLISHED, T_LAST_ACK };

struct tcb {
	uint8_t state, fin_queued, ack_now, retries;
	uint8_t peer_mac[6];
	uint16_t peer_port, local_port, peer_mss, rcv_wnd_adv;
	uint32_t peer_ip;
	uint32_t iss, irs;
	uint32_t snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2;
	uint32_t rcv_nxt;
	uint32_t buf_seq, buf_len; /* unacknowledged answers: [buf_seq, buf_seq + buf_len) */
	uint32_t r_head, r_len;	   /* received, not yet consumed: rbuf[r_head...] */
	uint32_t rto_ms;
	uint64_t rto_at; /* net_now_ms of the next expiry, 0 = off */
	struct sum_state app;
};

static struct tcb conns[TCP_MAX_CONNS];
static uint8_t sbufs[TCP_MAX_CONNS][SBUF_SIZE] NOINIT;
static uint8_t rbufs[TCP_MAX_CONNS][RBUF_SIZE] NOINIT;
static uint64_t isn_ctr;

static inline uint8_t *sbuf(const struct tcb *c)
{
	return sbufs[c - conns];
}

/* Ring offset of the answer byte with sequence number seq. */
static inline uint32_t sbuf_off(const struct tcb *c, uint32_t seq)
{
	return (seq - c->iss - 1) & (SBUF_SIZE - 1);
}

static uint32_t new_isn(uint32_t ip, uint16_t port)
{
	uint64_t x = rdtsc() ^ (++isn_ctr << 40) ^ ((uint64_t)ip << 16) ^ port;
	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBull;
	return (uint32_t)(x ^ (x >> 31));
}

static inline uint8_t *rbuf(const struct tcb *c)
{
	return rbufs[c - conns];
}

static uint16_t rcv_window(const struct tcb *c)
{
	return (uint16_t)(RBUF_SIZE - c->r_len);
}

static void hdr(uint8_t *t, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		uint8_t flags, uint16_t wnd, unsigned int hl)
{
	put16(t, sport);
	put16(t + 2, dport);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = (uint8_t)(hl / 4 << 4);
	t[13] = flags;
	put16(t + 14, wnd);
	put16(t + 16, 0);
	put16(t + 18, 0);
}

static void finish(uint8_t *t, const uint8_t *mac, uint32_t ip, unsigned int len)
{
	put16(t + 16, l4_csum(netcfg.ip, ip, IPPROTO_TCP, t, len));
	ip_tx_send(t, mac, ip, IPPROTO_TCP, len);
}

/* One segment of c: flags, seq, and dlen bytes of the ring from seq. */
static int send_seg(struct tcb *c, uint32_t seq, uint8_t flags, unsigned int dlen)
{
	uint8_t *t = ip_tx_begin();
	if (!t)
		return -1;
	unsigned int hl = TCP_HLEN + (flags & TH_SYN ? 4 : 0);
	uint16_t wnd = rcv_window(c);
	hdr(t, c->local_port, c->peer_port, seq, c->rcv_nxt, flags, wnd, hl);
	if (flags & TH_SYN) {
		t[20] = 2; /* MSS */
		t[21] = 4;
		put16(t + 22, OUR_MSS);
	}
	uint32_t off = sbuf_off(c, seq), first = SBUF_SIZE - off;
	if (first > dlen)
		first = dlen;
	memcpy(t + hl, sbuf(c) + off, first);
	memcpy(t + hl + first, sbuf(c), dlen - first);
	c->rcv_wnd_adv = wnd;
	finish(t, c->peer_mac, c->peer_ip, hl + dlen);
	return 0;
}

/* A RST for a segment that has no connection (RFC 9293 3.10.7.1). */
static void send_rst(const uint8_t *mac, uint32_t ip, const uint8_t *seg, unsigned int dlen)
{
	uint8_t flags = seg[13];
	uint8_t *t = ip_tx_begin();
	if (!t)
		return;
	if (flags & TH_ACK)
		hdr(t, get16(seg + 2), get16(seg), get32(seg + 8), 0, TH_RST, 0, TCP_HLEN);
	else
		hdr(t, get16(seg + 2), get16(seg), 0,
		    get32(seg + 4) + dlen + !!(flags & TH_SYN) + !!(flags & TH_FIN),
		    TH_RST | TH_ACK, 0, TCP_HLEN);
	finish(t, mac, ip, TCP_HLEN);
	net_stats.tcp_rst++;
}

static void conn_free(struct tcb *c)
{
	c->state = T_FREE;
	c->rto_at = 0;
}

static void conn_abort(struct tcb *c)
{
	uint8_t *t = ip_tx_begin();
	if (t) {
		hdr(t, c->local_port, c->peer_port, c->snd_nxt, 0, TH_RST, 0, TCP_HLEN);
		finish(t, c->peer_mac, c->peer_ip, TCP_HLEN);
		net_stats.tcp_rst++;
	}
	conn_free(c);
}

static inline uint32_t fin_seq(const struct tcb *c)
{
	return c->buf_seq + c->buf_len;
}

/* Send what the window allows, then a bare ACK if one is owed and nothing
 * carried it. */
static void output(struct tcb *c)
{
	int sent = 0;
	if (c->state == T_SYN_RCVD) {
		if (c->snd_nxt == c->iss && !send_seg(c, c->iss, TH_SYN | TH_ACK, 0)) {
			c->snd_nxt = c->iss + 1;
			c->snd_max = c->snd_nxt;
			sent = 1;
		}
		goto out;
	}
	for (;;) {
		uint32_t off = c->snd_nxt - c->buf_seq;
		if (off < c->buf_len) {
			uint32_t wnd_end = c->snd_una + c->snd_wnd, n = c->buf_len - off;
			uint32_t usable = SEQ_LT(c->snd_nxt, wnd_end) ? wnd_end - c->snd_nxt : 0;
			if (n > usable)
				n = usable;
			if (n > c->peer_mss)
				n = c->peer_mss;
			if (!n || send_seg(c, c->snd_nxt, TH_ACK | TH_PSH, n))
				break;
			c->snd_nxt += n;
		} else if (c->fin_queued && !c->r_len && off == c->buf_len) {
			if (send_seg(c, c->snd_nxt, TH_FIN | TH_ACK, 0))
				break;
			c->snd_nxt++;
		} else {
			break;
		}
		if (SEQ_LT(c->snd_max, c->snd_nxt))
			c->snd_max = c->snd_nxt;
		sent = 1;
	}
out:
	if (!sent && c->ack_now)
		send_seg(c, c->snd_nxt, TH_ACK, 0);
	c->ack_now = 0;
	/* Run the timer while anything is unacknowledged or waiting to go. */
	int pending = c->snd_una != c->snd_max || c->buf_len ||
		      (c->fin_queued && SEQ_LT(c->snd_max, fin_seq(c) + 1));
	if (!pending)
		c->rto_at = 0;
	else if (!c->rto_at)
		c->rto_at = net_now_ms + c->rto_ms;
}

static void new_conn(const uint8_t *mac, uint32_t ip, const uint8_t *seg, unsigned int hl)
{
	struct tcb *c = NULL;
	for (int i = 0; i < TCP_MAX_CONNS && !c; i++)
		if (conns[i].state == T_FREE)
			c = &conns[i];
	if (!c) {
		send_rst(mac, ip, seg, 0);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->state = T_SYN_RCVD;
	memcpy(c->peer_mac, mac, 6);
	c->peer_ip = ip;
	c->peer_port = get16(seg);
	c->local_port = get16(seg + 2);
	c->irs = get32(seg + 4);
	c->rcv_nxt = c->irs + 1;
	c->iss = new_isn(ip, c->peer_port);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->buf_seq = c->iss + 1;
	c->snd_wnd = get16(seg + 14);
	c->snd_wl1 = c->irs;
	c->snd_wl2 = c->iss;
	c->rto_ms = RTO_MIN_MS;
	c->peer_mss = DEFAULT_MSS;
	for (unsigned int o = TCP_HLEN; o < hl && seg[o];) { /* options: MSS only */
		if (seg[o] == 1) {
			o++;
			continue;
		}
		if (o + 1 >= hl || seg[o + 1] < 2 || o + seg[o + 1] > hl)
			break;
		if (seg[o] == 2 && seg[o + 1] == 4)
			c->peer_mss = get16(seg + o + 2);
		o += seg[o + 1];
	}
	if (c->peer_mss > OUR_MSS)
		c->peer_mss = OUR_MSS;
	if (c->peer_mss < 64)
		c->peer_mss = 64;
	output(c); /* the SYN-ACK */
}

/* Let the service consume the receive ring as far as its answers fit. */
static void drain(struct tcb *c)
{
	char tmp[1024];
	while (c->r_len) {
		uint32_t room = SBUF_SIZE - c->buf_len, chunk = RBUF_SIZE - c->r_head;
		unsigned int out_len = 0;
		if (chunk > c->r_len)
			chunk = c->r_len;
		unsigned int k = sum_consume(&c->app, rbuf(c) + c->r_head, chunk, tmp,
					     room < sizeof(tmp) ? room : sizeof(tmp), &out_len);
		uint32_t off = sbuf_off(c, fin_seq(c)), first = SBUF_SIZE - off;
		if (first > out_len)
			first = out_len;
		memcpy(sbuf(c) + off, tmp, first);
		memcpy(sbuf(c), tmp + first, out_len - first);
		c->buf_len += out_len;
		c->r_head = (c->r_head + k) & (RBUF_SIZE - 1);
		c->r_len -= k;
		if (!k)
			break;
	}
}

/* Take in-order bytes into the receive ring; returns how many fit. */
static uint32_t receive(struct tcb *c, const uint8_t *data, uint32_t n)
{
	uint32_t room = RBUF_SIZE - c->r_len, tail = (c->r_head + c->r_len) & (RBUF_SIZE - 1);
	if (n > room)
		n = room;
	uint32_t first = RBUF_SIZE - tail < n ? RBUF_SIZE - tail : n;
	memcpy(rbuf(c) + tail, data, first);
	memcpy(rbuf(c), data + first, n - first);
	c->r_len += n;
	return n;
}

/* Our FIN is acknowledged: the connection is over. */
static int ack_input(struct tcb *c, uint32_t seq, uint32_t ack, uint16_t wnd)
{
	if (SEQ_LT(c->snd_una, ack)) {
		if (SEQ_LT(c->buf_seq, ack)) {
			uint32_t n = ack - c->buf_seq;
			if (n > c->buf_len)
				n = c->buf_len;
			c->buf_seq += n;
			c->buf_len -= n;
		}
		c->snd_una = ack;
		if (SEQ_LT(c->snd_nxt, ack))
			c->snd_nxt = ack;
		c->retries = 0;
		c->rto_ms = RTO_MIN_MS;
		c->rto_at = 0; /* output() restarts it if anything is still out */
		if (c->state == T_LAST_ACK && ack == fin_seq(c) + 1)
			return 1;
	}
	if (SEQ_LT(c->snd_wl1, seq) || (c->snd_wl1 == seq && SEQ_LEQ(c->snd_wl2, ack))) {
		c->snd_wnd = wnd;
		c->snd_wl1 = seq;
		c->snd_wl2 = ack;
	}
	return 0;
}

static void conn_input(struct tcb *c, const uint8_t *seg, unsigned int hl, unsigned int dlen)
{
	uint8_t flags = seg[13];
	uint32_t seq = get32(seg + 4), ack = get32(seg + 8);
	uint16_t old_wnd = c->rcv_wnd_adv;
	const uint8_t *data = seg + hl;

	if (c->state == T_SYN_RCVD) {
		if (flags & TH_RST) {
			if (seq == c->rcv_nxt)
				conn_free(c);
			return;
		}
		if (flags & TH_SYN) { /* the SYN again: our SYN-ACK was lost */
			if (seq == c->irs) {
				c->snd_nxt = c->iss;
				output(c);
			}
			return;
		}
		if (!(flags & TH_ACK))
			return;
		if (ack != c->iss + 1) {
			send_rst(c->peer_mac, c->peer_ip, seg, dlen);
			return;
		}
		c->state = T_ESTABLISHED;
		c->snd_una = ack;
		c->snd_wnd = get16(seg + 14);
		c->snd_wl1 = seq;
		c->snd_wl2 = ack;
		c->retries = 0;
		c->rto_ms = RTO_MIN_MS;
		c->rto_at = 0;
	}

	/* Acceptability: the segment overlaps the window (or is the probe at
	 * rcv_nxt).  Old duplicates and segments beyond the window get an ACK. */
	uint32_t slen = dlen + !!(flags & TH_FIN), rwnd = c->rcv_wnd_adv ? c->rcv_wnd_adv : 1;
	int acceptable =
	    seq == c->rcv_nxt || (SEQ_LT(seq, c->rcv_nxt + rwnd) && SEQ_LT(c->rcv_nxt, seq + slen));
	if (!acceptable) {
		if (!(flags & TH_RST)) {
			c->ack_now = 1;
			output(c);
		}
		return;
	}
	if (flags & TH_RST) {
		conn_free(c);
		return;
	}
	if (flags & TH_SYN) { /* in a synchronized state: the challenge ACK */
		c->ack_now = 1;
		output(c);
		return;
	}
	if (!(flags & TH_ACK))
		return;
	if (SEQ_LT(c->snd_max, ack)) { /* acknowledges what we never sent */
		c->ack_now = 1;
		output(c);
		return;
	}
	if (ack_input(c, seq, ack, get16(seg + 14))) {
		conn_free(c);
		return;
	}
	if (!c->snd_wnd)
		c->retries = 0; /* a live peer with a shut window: probe on, never give up */

	if (slen)
		c->ack_now = 1;
	if (c->state == T_ESTABLISHED && SEQ_LEQ(seq, c->rcv_nxt)) {
		uint32_t skip = c->rcv_nxt - seq, took = 0;
		if (skip < dlen)
			took = receive(c, data + skip, dlen - skip);
		c->rcv_nxt += took;
		if ((flags & TH_FIN) && c->rcv_nxt == seq + dlen) {
			c->rcv_nxt++;
			c->fin_queued = 1; /* we close too, after the answers */
			c->state = T_LAST_ACK;
		}
	}
	drain(c); /* what came in, and what acknowledged answers made room for */
	if (old_wnd < WND_UPDATE && rcv_window(c) >= WND_UPDATE)
		c->ack_now = 1; /* the window has reopened */
	output(c);
}

void tcp_input(const uint8_t *src_mac, uint32_t src_ip, const uint8_t *seg, unsigned int len)
{
	if (len < TCP_HLEN) {
		net_stats.drop_bad++;
		return;
	}
	unsigned int hl = (seg[12] >> 4) * 4u;
	if (hl < TCP_HLEN || hl > len) {
		net_stats.drop_bad++;
		return;
	}
	if (l4_csum(src_ip, netcfg.ip, IPPROTO_TCP, seg, len)) {
		net_stats.drop_csum++;
		return;
	}
	uint16_t sport = get16(seg), dport = get16(seg + 2);
	uint8_t flags = seg[13];
	for (int i = 0; i < TCP_MAX_CONNS; i++) {
		struct tcb *c = &conns[i];
		if (c->state != T_FREE && c->peer_ip == src_ip && c->peer_port == sport &&
		    c->local_port == dport) {
			memcpy(c->peer_mac, src_mac, 6);
			conn_input(c, seg, hl, len - hl);
			return;
		}
	}
	if (flags & TH_RST)
		return;
	if (dport == netcfg.tcp_port && (flags & (TH_SYN | TH_ACK | TH_FIN)) == TH_SYN)
		new_conn(src_mac, src_ip, seg, hl);
	else
		send_rst(src_mac, src_ip, seg, len - hl);
}

void tcp_timers(void)
{
	for (int i = 0; i < TCP_MAX_CONNS; i++) {
		struct tcb *c = &conns[i];
		if (c->state == T_FREE || !c->rto_at || net_now_ms < c->rto_at)
			continue;
		if (++c->retries > (c->state == T_SYN_RCVD ? MAX_SYN_RETRIES : MAX_RETRIES)) {
			conn_abort(c);
			continue;
		}
		c->rto_ms = c->rto_ms * 2 > RTO_MAX_MS ? RTO_MAX_MS : c->rto_ms * 2;
		c->rto_at = 0;
		if (c->state != T_SYN_RCVD && c->snd_una == c->snd_max && !c->snd_wnd) {
			send_seg(c, c->snd_una - 1, TH_ACK, 0); /* the window probe */
			c->rto_at = net_now_ms + c->rto_ms;
			continue;
		}
		c->snd_nxt = c->state == T_SYN_RCVD ? c->iss : c->snd_una;
		output(c);
		if (!c->rto_at && c->state != T_FREE)
			c->rto_at = net_now_ms + c->rto_ms;
	}
}

unsigned int tcp_nr_conns(void)
{
	unsigned int n = 0;
	for (int i = 0; i < TCP_MAX_CONNS; i++)
		n += conns[i].state != T_FREE;
	return n;
}
