/*
 * b-disk-sync.c - the images' synchronisation (core/disk-sync.h) against a
 * plain copy of the same allocated bytes, over loopback TCP, one run:
 *
 *   1. first sync: a sparse image (default 1 GiB) with random data in 25%
 *      of its 64 KiB blocks, to an empty sparse image;
 *   2. plain copy: the primary's allocated ranges (SEEK_DATA) written to a
 *      socket as offset + length + data, pwritten on the other side;
 *   3. re-sync after 1% of the blocks changed on the primary.
 *
 * Usage: b-disk-sync [--mib N] [--dir D]   (page cache warm: both sides
 * read what was just written; no O_DIRECT)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "core/disk-staging.h"
#include "core/disk-sync.h"
#include "core/peer.h"
#include "core/stream.h"
#include "disk/image.h"

#define BLK (64u << 10)

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int tcp_pair(int fds[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(l, (struct sockaddr *)&a, &al) || listen(l, 1))
		return -errno;
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&a, sizeof(a)))
		return -errno;
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fds[1] < 0 ? -errno : 0;
}

static int make_image(const char *path, uint64_t bytes)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd >= 0 && !ftruncate(fd, (off_t)bytes) ? 0 : -errno;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Random data, len bytes at off. */
static int write_at(int fd, uint64_t off, size_t len)
{
	static uint64_t buf[BLK / 8];
	for (size_t i = 0; i < len / 8; i++)
		buf[i] = next_rand();
	return pwrite(fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -errno;
}

/* the sync's block (--sync-kib; the engine's default is 4 KiB) */
static uint32_t g_sync_bytes = 4096;

/* ---- the backup's side of a sync ---- */

struct rx_arg {
	int fd;
	const char *path;
	int rc;
	uint64_t blocks, bytes;
};

static void *rx_run(void *a)
{
	struct rx_arg *ra = a;
	struct hr_disk_target dt;
	struct hr_disk_spec spec = {.path = ra->path};
	struct hr_disk_sync_rx s = {.vm = "bench", .dt = &dt, .fd = ra->fd};

	if ((ra->rc = hr_disk_target_open(&dt, "bench", &spec, 1, HR_DISK_ACK)) < 0)
		return NULL;
	while (s.state != HR_DSYNC_DONE) {
		struct hr_frame f;
		if ((ra->rc = hr_stream_recv(ra->fd, "bench", &f)) < 0)
			break;
		ra->rc = hr_disk_sync_rx_frame(&s, &f);
		hr_frame_release(&f);
		if (ra->rc < 0) {
			fprintf(stderr, "backup: %s (%s)\n", s.why, hr_strerror(ra->rc));
			break;
		}
	}
	ra->blocks = s.nr_blocks;
	ra->bytes = s.data_bytes;
	hr_disk_target_close(&dt);
	return NULL;
}

static int run_sync(const char *src, const char *dst, struct hr_disk_sync_stats *st, double *s_r)
{
	int fds[2], ctl[2], ctl_r, rc;
	struct hr_peer p;
	struct hr_disk_spec spec = {.path = src};
	pthread_t t;

	if ((rc = tcp_pair(fds)) < 0 || pipe2(ctl, O_CLOEXEC))
		return rc < 0 ? rc : -errno;
	struct rx_arg ra = {.fd = fds[1], .path = dst};
	uint64_t t0 = hr_now_ns();
	pthread_create(&t, NULL, rx_run, &ra);
	hr_peer_init(&p, "bench", fds[0], ctl[0]);
	rc = hr_disk_sync_primary(&p, "bench", &spec, 1, g_sync_bytes, 60000, NULL, &ctl_r, st);
	pthread_join(t, NULL);
	*s_r = (hr_now_ns() - t0) / 1e9;
	hr_peer_fini(&p);
	close(fds[0]);
	close(fds[1]);
	close(ctl[0]);
	close(ctl[1]);
	return rc < 0 ? rc : ra.rc;
}

/* ---- a plain copy of the allocated ranges ---- */

struct copy_hdr {
	uint64_t off, len;
};

struct copy_rx {
	int fd;
	const char *path;
	int rc;
	uint64_t bytes;
};

static int read_all(int fd, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

static void *copy_rx_run(void *a)
{
	struct copy_rx *c = a;
	static uint8_t buf[4u << 20];
	int out = open(c->path, O_WRONLY | O_CLOEXEC);
	struct copy_hdr h;

	c->rc = out < 0 ? -errno : 0;
	while (!c->rc && !(c->rc = read_all(c->fd, &h, sizeof(h))) && h.len) {
		if (h.len > sizeof(buf) || (c->rc = read_all(c->fd, buf, h.len)) < 0)
			break;
		if (pwrite(out, buf, h.len, (off_t)h.off) != (ssize_t)h.len)
			c->rc = -errno;
		c->bytes += h.len + sizeof(h);
	}
	if (out >= 0)
		close(out);
	return NULL;
}

static int run_copy(const char *src, const char *dst, uint64_t *bytes_r, double *s_r)
{
	static uint8_t buf[4u << 20];
	struct hr_image img;
	char why[160];
	int fds[2], rc;
	uint64_t off = 0, s, e;
	pthread_t t;

	if ((rc = tcp_pair(fds)) < 0 || (rc = hr_image_open(&img, src, 1, why, sizeof(why))) < 0)
		return rc;
	struct copy_rx c = {.fd = fds[1], .path = dst};
	uint64_t t0 = hr_now_ns();
	pthread_create(&t, NULL, copy_rx_run, &c);
	while (!rc && (rc = hr_image_next_data(&img, off, &s, &e)) == 1) {
		rc = 0;
		for (off = s; !rc && off < e;) {
			struct copy_hdr h = {off, e - off < sizeof(buf) ? e - off : sizeof(buf)};
			if ((rc = hr_image_pread(&img, buf, h.len, off)) < 0)
				break;
			if (write(fds[0], &h, sizeof(h)) != sizeof(h) ||
			    write(fds[0], buf, h.len) != (ssize_t)h.len)
				rc = -errno;
			off += h.len;
		}
	}
	struct copy_hdr end = {0, 0};
	if (write(fds[0], &end, sizeof(end)) != sizeof(end) && rc >= 0)
		rc = -errno;
	pthread_join(t, NULL);
	*s_r = (hr_now_ns() - t0) / 1e9;
	*bytes_r = c.bytes + sizeof(end);
	hr_image_close(&img);
	close(fds[0]);
	close(fds[1]);
	return rc < 0 ? rc : c.rc;
}

int main(int argc, char **argv)
{
	uint64_t mib = 1024;
	const char *dir = "/tmp";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mib"))
			mib = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--sync-kib"))
			g_sync_bytes = (uint32_t)strtoul(argv[i + 1], NULL, 0) << 10;
	}
	char tmpl[300], src[400], dst[400], cpy[400];
	snprintf(tmpl, sizeof(tmpl), "%s/b-disk-sync.XXXXXX", dir);
	if (!mkdtemp(tmpl)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(src, sizeof(src), "%s/primary.img", tmpl);
	snprintf(dst, sizeof(dst), "%s/backup.img", tmpl);
	snprintf(cpy, sizeof(cpy), "%s/copy.img", tmpl);
	uint64_t bytes = mib << 20, nblk = bytes / BLK, alloc = 0;
	int rc = make_image(src, bytes);
	rc = rc ?: make_image(dst, bytes);
	rc = rc ?: make_image(cpy, bytes);
	int fd = open(src, O_RDWR | O_CLOEXEC);
	for (uint64_t b = 0; !rc && fd >= 0 && b < nblk; b += 4, alloc += BLK)
		rc = write_at(fd, (b + (next_rand() & 3)) * BLK, BLK);
	if (rc || fd < 0) {
		fprintf(stderr, "images in %s: %s\n", tmpl, strerror(rc ? -rc : errno));
		return 1;
	}
	fdatasync(fd);

	struct hr_disk_sync_stats st, st2;
	double sync_s, copy_s, resync_s;
	uint64_t copy_bytes;
	if ((rc = run_sync(src, dst, &st, &sync_s)) < 0 ||
	    (rc = run_copy(src, cpy, &copy_bytes, &copy_s)) < 0) {
		fprintf(stderr, "run: %s\n", hr_strerror(rc));
		return 1;
	}
	/* 1% of the sync's blocks get one random 4 KiB write each (distinct) */
	uint64_t nsync = bytes / g_sync_bytes, changed = 0, step = 100;
	for (uint64_t i = next_rand() % step; i < nsync; i += step, changed++)
		rc |= write_at(fd, i * g_sync_bytes, 4096);
	close(fd);
	if (rc || (rc = run_sync(src, dst, &st2, &resync_s)) < 0) {
		fprintf(stderr, "re-sync: %s\n", hr_strerror(rc));
		return 1;
	}
	printf("image %llu MiB, %llu MiB allocated (25%% of its 64 KiB extents, random); sync "
	       "blocks of %u KiB\n",
	       (unsigned long long)mib, (unsigned long long)(alloc >> 20), g_sync_bytes >> 10);
	printf("%-34s %10s %14s %10s\n", "", "seconds", "wire bytes", "MiB/s");
	printf("%-34s %10.3f %14llu %10.1f\n", "first sync (hash compare)", sync_s,
	       (unsigned long long)st.wire_bytes, alloc / 1048576.0 / sync_s);
	printf("%-34s %10.3f %14llu %10.1f\n", "plain TCP copy of allocated bytes", copy_s,
	       (unsigned long long)copy_bytes, alloc / 1048576.0 / copy_s);
	printf("%-34s %10.3f %14llu %10s\n", "re-sync, 1% of blocks changed", resync_s,
	       (unsigned long long)st2.wire_bytes, "-");
	printf("first sync: %llu blocks with data, %llu zeroed, %llu bytes of hashes; primary "
	       "hashing %llu ms\n",
	       (unsigned long long)st.blocks_data, (unsigned long long)st.blocks_zeroed,
	       (unsigned long long)st.hash_bytes, (unsigned long long)st.local_hash_ms);
	printf("re-sync: %llu 4 KiB writes (1%% of the sync blocks): %llu blocks sent (%llu "
	       "data bytes, %llu bytes of hashes); primary hashing %llu ms\n",
	       (unsigned long long)changed,
	       (unsigned long long)(st2.blocks_data + st2.blocks_zeroed),
	       (unsigned long long)st2.data_bytes, (unsigned long long)st2.hash_bytes,
	       (unsigned long long)st2.local_hash_ms);
	printf("ratios: first sync / plain TCP throughput %.2f; re-sync bytes without hashes / "
	       "changed bytes %.3f\n",
	       copy_s / sync_s,
	       (double)(st2.wire_bytes - st2.hash_bytes) / (double)(changed * 4096));
	char cmd[900];
	snprintf(cmd, sizeof(cmd), "cmp -s %s %s", src, dst);
	int same = system(cmd) == 0;
	printf("backup image %s the primary's\n", same ? "equals" : "DIFFERS FROM");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
	(void)!system(cmd);
	return same ? 0 : 1;
}
