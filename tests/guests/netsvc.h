/*
 * netsvc.h - the network-service test guest: polled virtio-net over
 * virtio-mmio (net-virtio.c), Ethernet/ARP/IPv4/ICMP/UDP (net-ip.c), a
 * small TCP server (net-tcp.c) and the services plus main loop (netsvc.c).
 * See README.md for the command line, the ports and the line formats.
 *
 * Ring 0 (emulated under PVM) parses the command line and does the virtio
 * handshake; everything after that runs in ring 3 with IF=0 and polls the
 * virtqueues in memory.  All protocol state (connections, counters) is in
 * guest memory, so a copy of the VM's memory carries it across a failover.
 */
#ifndef NETSVC_H
#define NETSVC_H

#include "rt.h"

/* Allocated with the image but neither loaded nor zeroed (boot.S zeroes
 * .bss in emulated ring 0, so the big buffers stay out of it). */
#define NOINIT __attribute__((section(".stack")))

#define ETH_HLEN      14
#define ETH_MTU	      1500
#define ETH_FRAME_MAX (ETH_HLEN + ETH_MTU)
#define IP_HLEN	      20
#define IPPROTO_ICMP  1
#define IPPROTO_TCP   6
#define IPPROTO_UDP   17

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline int memcmp6(const uint8_t *a, const uint8_t *b)
{
	int d = 0;
	for (int i = 0; i < 6; i++)
		d |= a[i] ^ b[i];
	return d;
}

/* ---- net-virtio.c ---- */

/* Ring 0: find the first virtio-mmio net device among the command line's
 * virtio_mmio.device=<size>@<base>:<irq> entries, reset it, negotiate the
 * features, set up rx (0) and tx (1) and set DRIVER_OK.  0 or -1 (after
 * printing a FAIL line). */
int vnet_init(void);
/* Ring 3: post every rx buffer and notify the device. */
void vnet_start(void);
/* A tx frame buffer (room for ETH_FRAME_MAX bytes), or NULL if every tx
 * descriptor is in flight.  It stays free until vnet_tx_send(), so a
 * buffer that is not sent needs no undoing, and there is at most one
 * outstanding: send it before the next vnet_tx_alloc(). */
uint8_t *vnet_tx_alloc(void);
void vnet_tx_send(uint8_t *frame, unsigned int len);
/* Hand up to budget received frames to fn, give their buffers back to the
 * device and reclaim completed tx descriptors; returns the frames seen. */
int vnet_poll(void (*fn)(uint8_t *frame, unsigned int len), int budget);
/* Link state from the config space (1 without VIRTIO_NET_F_STATUS).  An
 * MMIO read, i.e. a VM exit: not for the hot path. */
int vnet_link_up(void);

struct vnet_info {
	uint64_t base;
	unsigned int irq, version, rx_num, tx_num;
	uint64_t features; /* negotiated */
	uint8_t mac[6];
	int mac_from_device;
};
extern struct vnet_info vnet_info;

/* ---- net-ip.c ---- */

struct netcfg {
	uint32_t ip, mask, gw; /* host byte order; gw 0 = none */
	uint8_t mac[6];
	uint16_t tcp_port, udp_port;
};
extern struct netcfg netcfg;

struct net_stats {
	uint64_t rx_frames, tx_frames, tx_full, kicks; /* kicks: QueueNotify writes */
	uint64_t arp_replies, icmp_echo, udp_req, udp_unreach, tcp_rst;
	uint64_t drop_bad, drop_csum, drop_frag, drop_other;
};
extern struct net_stats net_stats;

/* Milliseconds of the jump-free TSC clock (netsvc.c keeps it current). */
extern uint64_t net_now_ms;

void net_input(uint8_t *frame, unsigned int len);
void net_send_garp(void);
uint32_t csum_add(uint32_t sum, const uint8_t *p, unsigned int len);
uint16_t csum_fold(uint32_t sum);
/* The L4 checksum with the IPv4 pseudo header (0 in the field = valid). */
uint16_t l4_csum(uint32_t src, uint32_t dst, uint8_t proto, const uint8_t *l4, unsigned int len);
/* A tx buffer's L4 area (frame + 34), or NULL when tx is full. */
uint8_t *ip_tx_begin(void);
/* Finish and send: IPv4 header to dst_ip, Ethernet to dst_mac. */
void ip_tx_send(uint8_t *l4, const uint8_t *dst_mac, uint32_t dst_ip, uint8_t proto,
		unsigned int l4_len);

/* ---- net-tcp.c ---- */

#define TCP_MAX_CONNS 16
void tcp_input(const uint8_t *src_mac, uint32_t src_ip, const uint8_t *seg, unsigned int len);
void tcp_timers(void);
unsigned int tcp_nr_conns(void);

/* ---- netsvc.c: the services ---- */

/* The running-sum service's per-connection state (README.md). */
struct sum_state {
	uint64_t lines;
	uint64_t sum; /* two's complement int64, wrapping */
	uint8_t len, overflow;
	char line[30];
};
#define SUM_REPLY_MAX 50 /* "seq=" 20 digits " sum=" '-' 19 digits "\n" */
/* Consume bytes of the stream; each complete line appends its answer to
 * out (room: out_room bytes, *out_len in/out).  Stops before a newline
 * whose answer would not fit; returns the bytes consumed. */
unsigned int sum_consume(struct sum_state *st, const uint8_t *data, unsigned int len, char *out,
			 unsigned int out_room, unsigned int *out_len);
/* The UDP service: the reply payload for req, or -1 if it does not fit. */
int udp_service(const uint8_t *req, unsigned int len, uint8_t *out, unsigned int room);

#endif
