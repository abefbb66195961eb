/*
 * netsvc.c - the network-service test guest: command line, services and
 * the ring-3 polling loop (see netsvc.h for the parts, README.md for the
 * command line, the protocols and the console lines).
 *
 * Booted through PVH only (pvh.S, pvh.ld: no multiboot header), because
 * that is the path on which QEMU's microvm machine appends the
 * virtio_mmio.device= entries to the command line.
 */
#include "netsvc.h"

#define PVH_MAGIC	 0x336ec578u
#define DEFAULT_TCP_PORT 7000
#define DEFAULT_UDP_PORT 7001
#define LINK_CHECK_MS	 1000
#define POLL_BUDGET	 64

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
extern uint32_t pvh_ebx; /* pvh.S */

uint64_t net_now_ms;
static uint64_t tsc_khz, stats_s, progress_ms, udp_counter;
static unsigned int prefix_len;
static char stack3[65536] NOINIT __attribute__((aligned(16)));

/* ---- formatting into buffers ---- */

static unsigned int fmt_u64(char *p, uint64_t v)
{
	char tmp[20];
	unsigned int n = 0, i;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

static unsigned int fmt_i64(char *p, uint64_t v)
{
	if ((int64_t)v >= 0)
		return fmt_u64(p, v);
	p[0] = '-';
	return 1 + fmt_u64(p + 1, -v);
}

static unsigned int fmt_str(char *p, const char *s)
{
	unsigned int n = 0;
	while (s[n])
		p[n] = s[n], n++;
	return n;
}

/* ---- the running-sum service (TCP) ---- */

/* [+-]?[0-9]{1,19} that fits int64_t, optionally followed by '\r'. */
static int parse_number(const char *s, unsigned int len, uint64_t *v_r)
{
	unsigned int i = 0;
	int neg = 0;
	uint64_t v = 0;
	if (len && s[len - 1] == '\r')
		len--;
	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i == len || len - i > 19)
		return -1;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits: no uint64 overflow */
	}
	if (v > (neg ? 1ull << 63 : (1ull << 63) - 1))
		return -1;
	*v_r = neg ? -v : v;
	return 0;
}

unsigned int sum_consume(struct sum_state *st, const uint8_t *data, unsigned int len, char *out,
			 unsigned int out_room, unsigned int *out_len)
{
	unsigned int i;
	for (i = 0; i < len; i++) {
		if (data[i] != '\n') {
			if (st->len < sizeof(st->line))
				st->line[st->len++] = (char)data[i];
			else
				st->overflow = 1;
			continue;
		}
		if (*out_len + SUM_REPLY_MAX > out_room)
			break; /* this answer might not fit: leave the newline */
		char *p = out + *out_len;
		uint64_t v;
		st->lines++;
		p += fmt_str(p, "seq=");
		p += fmt_u64(p, st->lines);
		if (!st->overflow && !parse_number(st->line, st->len, &v)) {
			st->sum += v;
			p += fmt_str(p, " sum=");
			p += fmt_i64(p, st->sum);
		} else {
			p += fmt_str(p, " error=bad-number");
		}
		*p++ = '\n';
		*out_len = (unsigned int)(p - out);
		st->len = 0;
		st->overflow = 0;
	}
	return i;
}

/* ---- the counter service (UDP): "<counter> <request payload>" ---- */

int udp_service(const uint8_t *req, unsigned int len, uint8_t *out, unsigned int room)
{
	char num[24];
	unsigned int n = fmt_u64(num, udp_counter + 1);
	if (n + 1 + len > room)
		return -1;
	memcpy(out, num, n);
	out[n] = ' ';
	memcpy(out + n + 1, req, len);
	udp_counter++;
	return (int)(n + 1 + len);
}

/* ---- ring 3 ---- */

/* net_now_ms from the TSC, ignoring jumps (backwards, or more than 2 s
 * forwards: a restore onto another host), like memwalk's clock. */
static uint64_t clock_ticks, clock_last;

static void clock_update(void)
{
	uint64_t now = rdtsc(), d = now - clock_last;
	clock_last = now;
	if ((int64_t)d > 0 && d < 2000 * tsc_khz)
		clock_ticks += d;
	net_now_ms = clock_ticks / tsc_khz;
}

static void print_stats(void)
{
	const struct net_stats *s = &net_stats;
	rt_printf("netsvc: stats rx=%lu tx=%lu tx_full=%lu kicks=%lu arp=%lu icmp=%lu udp=%lu "
		  "unreach=%lu rst=%lu conns=%u drop_bad=%lu drop_csum=%lu drop_frag=%lu "
		  "drop_other=%lu\n",
		  s->rx_frames, s->tx_frames, s->tx_full, s->kicks, s->arp_replies, s->icmp_echo,
		  s->udp_req, s->udp_unreach, s->tcp_rst, tcp_nr_conns(), s->drop_bad, s->drop_csum,
		  s->drop_frag, s->drop_other);
}

static void ring3_main(void)
{
	const uint8_t *m = netcfg.mac;
	uint32_t ip = netcfg.ip, gw = netcfg.gw;
	char gws[16] = "none";

	vnet_start();
	clock_last = rdtsc();
	int link = vnet_link_up();
	if (link)
		net_send_garp();
	if (gw) {
		char *p = gws;
		for (int i = 3; i >= 0; i--) {
			p += fmt_u64(p, (gw >> (8 * i)) & 0xff);
			*p++ = i ? '.' : 0;
		}
	}
	rt_printf("netsvc: ready mac=%02x:%02x:%02x:%02x:%02x:%02x ip=%u.%u.%u.%u/%u gw=%s "
		  "tcp=%u udp=%u link=%s\n",
		  m[0], m[1], m[2], m[3], m[4], m[5], ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
		  ip & 0xff, prefix_len, gws, netcfg.tcp_port, netcfg.udp_port,
		  link ? "up" : "down");

	uint64_t last_ms = 0, next_link = LINK_CHECK_MS, next_stats = stats_s * 1000;
	uint64_t next_progress = progress_ms, progress_seq = 0;
	for (;;) {
		clock_update();
		int n = vnet_poll(net_input, POLL_BUDGET);
		if (net_now_ms != last_ms) {
			last_ms = net_now_ms;
			tcp_timers();
		}
		if (net_now_ms >= next_link) {
			next_link = net_now_ms + LINK_CHECK_MS;
			int up = vnet_link_up();
			if (up != link) {
				link = up;
				rt_printf("netsvc: link %s\n", up ? "up" : "down");
				if (up)
					net_send_garp();
			}
		}
		if (progress_ms && net_now_ms >= next_progress) {
			/* the failover drill's progress line (memwalk's format): a
			 * line the outside sees twice or never is a broken contract */
			next_progress = net_now_ms + progress_ms;
			rt_printf("netsvc: seq=%lu tsc=%lu dirtied=%lu errors=0\n", ++progress_seq,
				  rdtsc(), net_stats.rx_frames + net_stats.tx_frames);
		}
		if (stats_s && net_now_ms >= next_stats) {
			next_stats = net_now_ms + stats_s * 1000;
			print_stats();
		}
		if (!n)
			cpu_relax();
	}
}

/* ---- ring 0: command line and setup ---- */

/* "a.b.c.d" then, if prefix_r, "/n"; 0 or -1. */
static int parse_ipv4(const char *s, uint32_t *ip_r, unsigned int *prefix_r)
{
	uint32_t ip = 0;
	for (int i = 0; i < 4; i++) {
		unsigned int v = 0, digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4)
			v = v * 10 + (unsigned int)(*s++ - '0'), digits++;
		if (!digits || v > 255 || (i < 3 && *s++ != '.'))
			return -1;
		ip = ip << 8 | v;
	}
	if (prefix_r) {
		uint64_t p;
		if (*s++ != '/' || rt_parse_u64(s, &p, 0) || p < 1 || p > 32)
			return -1;
		*prefix_r = (unsigned int)p;
	} else if (*s) {
		return -1;
	}
	*ip_r = ip;
	return 0;
}

static void opt_u64(const char *key, uint64_t *v, uint64_t max)
{
	char buf[64];
	uint64_t x;
	if (!rt_cmdline_get(key, buf, sizeof(buf)))
		return;
	if (rt_parse_u64(buf, &x, 0) || x > max)
		rt_printf("netsvc: bad %s=%s, using the default\n", key, buf);
	else
		*v = x;
}

static int parse_cmdline(void)
{
	char buf[64];
	uint64_t tcp = DEFAULT_TCP_PORT, udp = DEFAULT_UDP_PORT;

	if (!rt_cmdline_get("ip", buf, sizeof(buf)) || parse_ipv4(buf, &netcfg.ip, &prefix_len)) {
		rt_printf("netsvc: FAIL need ip=<a.b.c.d>/<prefix>\n");
		return -1;
	}
	netcfg.mask = prefix_len == 32 ? 0xffffffff : ~(0xffffffffu >> prefix_len);
	if (rt_cmdline_get("gw", buf, sizeof(buf)) &&
	    (parse_ipv4(buf, &netcfg.gw, NULL) || ((netcfg.gw ^ netcfg.ip) & netcfg.mask) ||
	     netcfg.gw == netcfg.ip)) {
		rt_printf("netsvc: FAIL bad gw=%s (an address in the ip= subnet)\n", buf);
		return -1;
	}
	opt_u64("tcp_port", &tcp, 65535);
	opt_u64("udp_port", &udp, 65535);
	opt_u64("stats", &stats_s, 3600);
	opt_u64("progress_ms", &progress_ms, 3600000);
	netcfg.tcp_port = (uint16_t)(tcp ? tcp : DEFAULT_TCP_PORT);
	netcfg.udp_port = (uint16_t)(udp ? udp : DEFAULT_UDP_PORT);
	return 0;
}

void kmain(void);
void kmain(void)
{
	const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)pvh_ebx;

	rt_init("netsvc");
	if (!si || si->magic != PVH_MAGIC) {
		rt_printf("netsvc: FAIL not booted through PVH (start_info=0x%x)\n", pvh_ebx);
		rt_exit(1);
	}
	if (si->cmdline_paddr) {
		const char *s = (const char *)(uintptr_t)si->cmdline_paddr;
		size_t i = 0;
		for (; s[i] && i + 1 < sizeof(rt_boot.cmdline); i++)
			rt_boot.cmdline[i] = s[i];
		rt_boot.cmdline[i] = 0;
	}
	rt_printf("netsvc: boot cmdline=\"%s\"\n", rt_boot.cmdline);
	tsc_khz = rt_boot.tsc_khz;
	if (!rt_boot.tsc_khz_pit)
		rt_printf("netsvc: WARNING port 0x61 PIT calibration failed, tsc from %s\n",
			  rt_boot.tsc_source);
	if (!tsc_khz) {
		tsc_khz = 2000000;
		rt_printf("netsvc: WARNING no TSC frequency, assuming 2 GHz\n");
	}
	rt_printf("netsvc: tsc_khz=%lu\n", tsc_khz);
	if (parse_cmdline() || vnet_init())
		rt_exit(1);
	if (vnet_info.mac_from_device) {
		memcpy(netcfg.mac, vnet_info.mac, 6);
	} else { /* locally administered, from the address */
		netcfg.mac[0] = 0x02;
		netcfg.mac[1] = 0;
		put32(netcfg.mac + 2, netcfg.ip);
	}
	rt_printf("netsvc: ring3\n");
	rt_enter_ring3(ring3_main, stack3 + sizeof(stack3));
}
