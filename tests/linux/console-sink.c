/*
 * console-sink.c - a console collector for the check-linux scenarios:
 * listens on 127.0.0.1:PORT for the workers' tcp console connections
 * (frames: u64 offset LE | u32 length LE | bytes), places every byte at its
 * offset in OUT (pwrite) and keeps the whole stream in memory, so that a
 * byte that comes a second time must come identical.  It prints one line
 * per event on stdout:
 *   "conn N"                        a connection was accepted
 *   "contradiction at offset X"     a byte came again with another value
 *   "gap at offset X"               a frame started beyond the stream's end
 * usage: console-sink PORT OUT   (runs until killed)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/unaligned.h"

#define MAX_CONNS  8
#define MAX_STREAM (64u << 20)

struct conn {
	int fd;
	uint8_t hdr[12];
	size_t got, len;
	uint64_t offset;
	uint8_t *body;
};

static uint8_t *stream;
static uint64_t stream_end;

static void place(int out, uint64_t off, const uint8_t *p, size_t n)
{
	if (off > stream_end)
		printf("gap at offset %llu\n", (unsigned long long)stream_end);
	for (size_t i = 0; i < n && off + i < MAX_STREAM; i++) {
		uint64_t o = off + i;
		if (o < stream_end && stream[o] != p[i]) {
			printf("contradiction at offset %llu\n", (unsigned long long)o);
			break;
		}
	}
	if (off + n <= MAX_STREAM) {
		memcpy(stream + off, p, n);
		if (pwrite(out, p, n, (off_t)off) != (ssize_t)n)
			printf("write error\n");
		if (off + n > stream_end)
			stream_end = off + n;
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct conn c[MAX_CONNS];
	struct pollfd pfd[MAX_CONNS + 1];
	unsigned nc = 0, ids = 0;
	int one = 1;

	if (argc != 3)
		return 2;
	int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	stream = calloc(1, MAX_STREAM);
	if (out < 0 || ls < 0 || !stream || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(ls, 8) < 0) {
		perror("console-sink");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		pfd[0] = (struct pollfd){.fd = ls, .events = POLLIN};
		for (unsigned i = 0; i < nc; i++)
			pfd[i + 1] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
		if (poll(pfd, nc + 1, -1) < 0)
			continue;
		if ((pfd[0].revents & POLLIN) && nc < MAX_CONNS) {
			int fd = accept(ls, NULL, NULL);
			if (fd >= 0) {
				c[nc++] = (struct conn){.fd = fd};
				printf("conn %u\n", ++ids);
				fflush(stdout);
			}
		}
		for (unsigned i = 0; i < nc; i++) {
			struct conn *k = &c[i];
			if (!(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r;
			if (!k->body) {
				r = read(k->fd, k->hdr + k->got, 12 - k->got);
				if (r > 0 && (k->got += (size_t)r) == 12) {
					k->offset = hr_get_le64(k->hdr);
					k->len = hr_get_le32(k->hdr + 8);
					k->body = malloc(k->len ? k->len : 1);
					k->got = 0;
				}
			} else {
				r = read(k->fd, k->body + k->got, k->len - k->got);
				if (r > 0)
					k->got += (size_t)r;
			}
			if (k->body && k->got == k->len) {
				place(out, k->offset, k->body, k->len);
				free(k->body);
				k->body = NULL;
				k->got = 0;
			}
			if (r <= 0) {
				close(k->fd);
				free(k->body);
				k->body = NULL;
				k->fd = -1;
			}
		}
		unsigned kept = 0;
		for (unsigned i = 0; i < nc; i++)
			if (c[i].fd >= 0)
				c[kept++] = c[i];
		nc = kept;
	}
}
