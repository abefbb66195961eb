/* util.h - small parsing and time helpers shared by the CLI, daemon and tests. */
#ifndef HR_UTIL_H
#define HR_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * The one set of number parsers for whatever a user or a peer sends (CLI
 * options, daemon options, control and wire protocols).  All are strict:
 * ASCII decimal digits first (no sign, no blanks, no hex), nothing after
 * what the syntax allows, no overflow.  -EINVAL for malformed or empty
 * text, -ERANGE for a value that overflows or is out of bounds; *_r is
 * only written on success.
 */
/* "4096" -> 4096, within [min, max]. */
int hr_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *v_r);
/* "512M", "1G", "4096", "16GiB" -> bytes. */
int hr_parse_size(const char *s, uint64_t *bytes_r);
/* "25ms", "1s", "500us", "1.5s", "40" (ms) -> microseconds. */
int hr_parse_duration_us(const char *s, uint64_t *us_r);
/* The same, a bare number counting unit_us ("5" with 1000000 = 5 s). */
int hr_parse_duration_unit_us(const char *s, uint64_t unit_us, uint64_t *us_r);
/* A network device spec (`--net`): "tap=IFNAME[,mac=XX:XX:XX:XX:XX:XX]",
 * IFNAME 1..15 of [A-Za-z0-9_.-], a unicast MAC.  0, or -EINVAL with the
 * reason in why. */
int hr_net_spec_check(const char *spec, char *why, size_t n);
/* Monotonic clock in nanoseconds. */
uint64_t hr_now_ns(void);
/* Write all of buf; 0 or -errno. */
int hr_write_all(int fd, const void *buf, uint64_t len);
/* Write every byte of iov[0..cnt) (iov is modified): sendmsg without SIGPIPE
 * on sockets (EAGAIN waited out), writev on other fds.  0 or -errno. */
struct iovec;
int hr_writev_all(int fd, struct iovec *iov, int cnt);

/*
 * A replication link's TCP socket tuned for failure detection: no Nagle,
 * linear retransmission timeouts while thin, and a minimum RTO of
 * HR_TCP_RTO_MIN_US (TCP_RTO_MIN_US, Linux 6.15+) instead of 200 ms, so a
 * lost segment costs tens of milliseconds of silence, not a failover
 * timeout.  0; -ENOPROTOOPT when the kernel has no TCP_RTO_MIN_US (the rest
 * applied); -EAFNOSUPPORT for a socket that is not TCP; -errno.
 */
#define HR_TCP_RTO_MIN_US 20000
int hr_tcp_tune_liveness(int fd);
/*
 * The calling thread's nice value and, where the kernel takes one (Linux
 * 6.12+, EEVDF: sched_attr.sched_runtime of a fair thread), a short slice
 * of slice_us: a thread that wakes is then picked soon, even among busy
 * threads of higher weight, without being given a larger share.  0, or
 * -errno when neither could be set (an older kernel: the nice value alone
 * is tried).
 */
int hr_thread_sched_latency(int nice, unsigned slice_us);
/* A writer waiting for room on a full socket gives up with -EINTR when fd
 * is readable and the socket takes nothing for 2 s more (the engine's end
 * pipe: stop and abort must not wait for a partitioned peer).  Per thread;
 * -1 = never. */
void hr_set_interrupt_fd(int fd);
/* Read exactly len bytes; 0, -errno, or -HR_EBADSNAP on early EOF. */
int hr_read_all(int fd, void *buf, uint64_t len);

#endif
