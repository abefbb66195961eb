/*
 * net-ip.c - Ethernet, ARP, IPv4, ICMP echo and UDP for netsvc.
 *
 * Answers go back to the Ethernet source of what they answer (the host,
 * or the router that handed the packet over), so the guest never has to
 * resolve an address itself.  A source outside our subnet is only answered
 * when gw= is set, like a host with no route back.  Fragments are dropped,
 * IP options are skipped, every checksum is verified and computed.
 */
#include "netsvc.h"

#define ETHERTYPE_IP	  0x0800
#define ETHERTYPE_ARP	  0x0806
#define ICMP_ECHO_REPLY	  0
#define ICMP_UNREACH	  3
#define ICMP_UNREACH_PORT 3
#define ICMP_ECHO	  8
#define UDP_HLEN	  8

struct netcfg netcfg;
struct net_stats net_stats;
static uint16_t ip_id;
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

uint32_t csum_add(uint32_t sum, const uint8_t *p, unsigned int len)
{
	uint64_t s = sum;
	while (len >= 2) {
		s += (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
		len -= 2;
	}
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 32)
		s = (s & 0xffffffff) + (s >> 32);
	return (uint32_t)s;
}

uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint16_t l4_csum(uint32_t src, uint32_t dst, uint8_t proto, const uint8_t *l4, unsigned int len)
{
	uint32_t s = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
	return csum_fold(csum_add(s, l4, len));
}

static void eth_fill(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, netcfg.mac, 6);
	put16(f + 12, type);
}

uint8_t *ip_tx_begin(void)
{
	uint8_t *f = vnet_tx_alloc();
	return f ? f + ETH_HLEN + IP_HLEN : NULL;
}

void ip_tx_send(uint8_t *l4, const uint8_t *dst_mac, uint32_t dst_ip, uint8_t proto,
		unsigned int l4_len)
{
	uint8_t *ip = l4 - IP_HLEN, *f = ip - ETH_HLEN;
	eth_fill(f, dst_mac, ETHERTYPE_IP);
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(IP_HLEN + l4_len));
	put16(ip + 4, ip_id++);
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	put16(ip + 10, 0);
	put32(ip + 12, netcfg.ip);
	put32(ip + 16, dst_ip);
	put16(ip + 10, csum_fold(csum_add(0, ip, IP_HLEN)));
	vnet_tx_send(f, ETH_HLEN + IP_HLEN + l4_len);
}

/* ---- ARP ---- */

static void arp_send(uint16_t op, const uint8_t *dst_mac, const uint8_t *tha, uint32_t tpa)
{
	uint8_t *f = vnet_tx_alloc();
	if (!f)
		return;
	uint8_t *a = f + ETH_HLEN;
	eth_fill(f, dst_mac, ETHERTYPE_ARP);
	put16(a, 1); /* Ethernet */
	put16(a + 2, ETHERTYPE_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, netcfg.mac, 6);
	put32(a + 14, netcfg.ip);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	vnet_tx_send(f, ETH_HLEN + 28);
}

/* An announcement (RFC 5227): a broadcast request for our own address. */
void net_send_garp(void)
{
	static const uint8_t zero[6];
	arp_send(1, bcast, zero, netcfg.ip);
}

static void arp_input(const uint8_t *a, unsigned int len)
{
	if (len < 28 || get16(a) != 1 || get16(a + 2) != ETHERTYPE_IP || a[4] != 6 || a[5] != 4) {
		net_stats.drop_bad++;
		return;
	}
	if (get16(a + 6) != 1 || get32(a + 24) != netcfg.ip) {
		net_stats.drop_other++; /* replies, others' requests, announcements */
		return;
	}
	uint8_t sha[6];
	uint32_t spa = get32(a + 14);
	memcpy(sha, a + 8, 6);
	arp_send(2, sha, sha, spa); /* spa 0 (an RFC 5227 probe): defend the address */
	net_stats.arp_replies++;
}

/* ---- ICMP ---- */

static void icmp_input(const uint8_t *src_mac, uint32_t src, const uint8_t *m, unsigned int len)
{
	if (len < 8 || len > ETH_MTU - IP_HLEN) {
		net_stats.drop_bad++;
		return;
	}
	if (csum_fold(csum_add(0, m, len))) {
		net_stats.drop_csum++;
		return;
	}
	if (m[0] != ICMP_ECHO || m[1] != 0) {
		net_stats.drop_other++;
		return;
	}
	uint8_t *r = ip_tx_begin();
	if (!r)
		return;
	memcpy(r, m, len);
	r[0] = ICMP_ECHO_REPLY;
	put16(r + 2, 0);
	put16(r + 2, csum_fold(csum_add(0, r, len)));
	ip_tx_send(r, src_mac, src, IPPROTO_ICMP, len);
	net_stats.icmp_echo++;
}

/* Port unreachable for ip (its header and 8 bytes of payload, RFC 792). */
static void icmp_port_unreach(const uint8_t *src_mac, uint32_t src, const uint8_t *ip,
			      unsigned int ip_len)
{
	unsigned int n = (ip[0] & 15) * 4u + 8;
	if (n > ip_len)
		n = ip_len;
	uint8_t *r = ip_tx_begin();
	if (!r)
		return;
	r[0] = ICMP_UNREACH;
	r[1] = ICMP_UNREACH_PORT;
	put16(r + 2, 0);
	put32(r + 4, 0);
	memcpy(r + 8, ip, n);
	put16(r + 2, csum_fold(csum_add(0, r, 8 + n)));
	ip_tx_send(r, src_mac, src, IPPROTO_ICMP, 8 + n);
	net_stats.udp_unreach++;
}

/* ---- UDP ---- */

static void udp_input(const uint8_t *src_mac, uint32_t src, const uint8_t *ip, unsigned int ip_len,
		      const uint8_t *u, unsigned int len)
{
	if (len < UDP_HLEN || get16(u + 4) < UDP_HLEN || get16(u + 4) > len) {
		net_stats.drop_bad++;
		return;
	}
	len = get16(u + 4);
	if (get16(u + 6) && l4_csum(src, netcfg.ip, IPPROTO_UDP, u, len)) {
		net_stats.drop_csum++;
		return;
	}
	uint16_t sport = get16(u), dport = get16(u + 2);
	if (dport != netcfg.udp_port) {
		icmp_port_unreach(src_mac, src, ip, ip_len);
		return;
	}
	uint8_t *r = ip_tx_begin();
	if (!r)
		return;
	int n =
	    udp_service(u + UDP_HLEN, len - UDP_HLEN, r + UDP_HLEN, ETH_MTU - IP_HLEN - UDP_HLEN);
	if (n < 0) {
		net_stats.drop_other++;
		return; /* the buffer was never handed out: nothing to undo */
	}
	put16(r, dport);
	put16(r + 2, sport);
	put16(r + 4, (uint16_t)(UDP_HLEN + n));
	put16(r + 6, 0);
	uint16_t c = l4_csum(netcfg.ip, src, IPPROTO_UDP, r, UDP_HLEN + (unsigned int)n);
	put16(r + 6, c ? c : 0xffff);
	ip_tx_send(r, src_mac, src, IPPROTO_UDP, UDP_HLEN + (unsigned int)n);
	net_stats.udp_req++;
}

/* ---- IPv4 ---- */

static int bad_source(uint32_t src)
{
	if (!src || src == 0xffffffff || (src >> 28) == 0xe || (src >> 24) == 127)
		return 1;			/* unspecified, broadcast, multicast, loopback */
	if (!((src ^ netcfg.ip) & netcfg.mask)) /* on-link */
		return src == (netcfg.ip | ~netcfg.mask) || src == netcfg.ip;
	return !netcfg.gw; /* no route back */
}

static void ip_input(const uint8_t *src_mac, const uint8_t *ip, unsigned int len)
{
	if (len < IP_HLEN || (ip[0] >> 4) != 4) {
		net_stats.drop_bad++;
		return;
	}
	unsigned int hl = (ip[0] & 15) * 4u, tot = get16(ip + 2);
	if (hl < IP_HLEN || tot < hl || tot > len) {
		net_stats.drop_bad++;
		return;
	}
	if (csum_fold(csum_add(0, ip, hl))) {
		net_stats.drop_csum++;
		return;
	}
	if (get16(ip + 6) & 0x3fff) { /* MF or an offset: a fragment */
		net_stats.drop_frag++;
		return;
	}
	uint32_t src = get32(ip + 12), dst = get32(ip + 16);
	if (dst != netcfg.ip || bad_source(src)) {
		net_stats.drop_other++;
		return;
	}
	switch (ip[9]) {
	case IPPROTO_ICMP:
		icmp_input(src_mac, src, ip + hl, tot - hl);
		break;
	case IPPROTO_UDP:
		udp_input(src_mac, src, ip, tot, ip + hl, tot - hl);
		break;
	case IPPROTO_TCP:
		tcp_input(src_mac, src, ip + hl, tot - hl);
		break;
	default:
		net_stats.drop_other++;
	}
}

void net_input(uint8_t *f, unsigned int len)
{
	if (len < ETH_HLEN) {
		net_stats.drop_bad++;
		return;
	}
	/* Ours or broadcast; other multicast (IPv6 ND, mDNS, ...) is not. */
	if (memcmp6(f, netcfg.mac) && memcmp6(f, bcast)) {
		net_stats.drop_other++;
		return;
	}
	if (f[6] & 1) { /* a group address as the source is never valid */
		net_stats.drop_bad++;
		return;
	}
	switch (get16(f + 12)) {
	case ETHERTYPE_ARP:
		arp_input(f + ETH_HLEN, len - ETH_HLEN);
		break;
	case ETHERTYPE_IP:
		if (f[0] & 1) { /* IPv4 to the broadcast MAC: not for our unicast address */
			net_stats.drop_other++;
			break;
		}
		ip_input(f + 6, f + ETH_HLEN, len - ETH_HLEN);
		break;
	default:
		net_stats.drop_other++;
	}
}
