/*
 * fz-handshake.c - fuzz target: the backup's side of the handshake.
 *
 * Input: the bytes a would-be primary sends first.  They are written to a
 * socketpair whose write side is then shut, and the other end goes through
 * hr_handshake_accept as the daemon's accept path does; a HELLO that passes
 * is checked against the default limits and small ones
 * (hr_handshake_check_limits), against a layout (check_layout), and
 * answered (hr_handshake_answer), as vm-accept does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "core/handshake.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct hr_mem_region layout[2] = {{0, 1 << 20, NULL},
						       {1ull << 32, 1 << 20, NULL}};
	static const struct hr_handshake_limits small = {.max_mem_bytes = 1 << 20, .max_vcpus = 2};
	static uint8_t sink[65536];
	struct hr_hello_info h;
	struct hr_peer p;
	char why[256];
	int sv[2], ctl, rc;
	ssize_t n;

	if (fz_socketpair(sv, 1 << 20) < 0)
		return 0;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	n = size ? send(sv[0], data, size, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
	shutdown(sv[0], SHUT_WR);
	if (n == (ssize_t)size) {
		hr_peer_init(&p, NULL, sv[1], -1);
		rc = hr_handshake_accept(&p, &h, &ctl);
		if (h.nr_regions > HR_HELLO_MAX_REGIONS || memchr(h.vm, 0, sizeof(h.vm)) == NULL ||
		    memchr(h.backend, 0, sizeof(h.backend)) == NULL)
			__builtin_trap(); /* the info handed on must be bounded and terminated */
		if (!rc) {
			why[0] = 0;
			rc = hr_handshake_check_limits(&h, NULL, why, sizeof(why));
			if (!rc)
				rc = hr_handshake_check_limits(&h, &small, why, sizeof(why));
			if (!rc)
				rc = hr_handshake_check_layout(&h, layout, 2);
		}
		if (h.cpu_model_bytes > HR_CPU_MODEL_MAX)
			__builtin_trap(); /* so is the guest's CPU model */
		hr_hello_info_fini(&h);
		hr_handshake_answer(&p, rc, why, 0);
		hr_peer_fini(&p);
		while (recv(sv[0], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}

struct hello {
	const char *name, *vm, *backend;
	uint64_t mem_bytes;
	unsigned nr_vcpus, nr_regions;
	uint64_t first_epoch;
};

int fz_make_seeds(const char *dir)
{
	static const struct hr_mem_region regs[9] = {
	    {0, 1 << 20, NULL},	      {1ull << 32, 1 << 20, NULL}, {2ull << 32, 4096, NULL},
	    {3ull << 32, 4096, NULL}, {4ull << 32, 4096, NULL},	   {5ull << 32, 4096, NULL},
	    {6ull << 32, 4096, NULL}, {7ull << 32, 4096, NULL},	   {8ull << 32, 4096, NULL}};
	static const struct hello hellos[] = {
	    {"hello", "vm1", "mem", 2 << 20, 1, 2, 0},
	    {"hello-resume", "web-1", "mem", 2 << 20, 2, 2, 4711},
	    {"hello-kvm", "web-2", "kvm", 1 << 20, 1, 1, 0},
	    {"hello-huge", "vm1", "mem", 1ull << 40, 1000, 2, 0},
	};
	uint8_t *buf;
	size_t len;
	int sv[2], rc = 0;

	if ((rc = fz_socketpair(sv, 1 << 20)) < 0)
		return rc;
	for (size_t i = 0; !rc && i < sizeof(hellos) / sizeof(hellos[0]); i++) {
		const struct hello *m = &hellos[i];
		rc = hr_stream_send_hello_at(sv[0], HR__ROLE__ROLE_PRIMARY, m->vm, m->backend,
					     m->mem_bytes, m->nr_vcpus, regs, m->nr_regions, 25000,
					     m->first_epoch, NULL);
		if (!rc && !(rc = fz_drain(sv[1], &buf, &len))) {
			rc = fz_seed(dir, m->name, buf, len);
			free(buf);
		}
	}
	close(sv[0]);
	close(sv[1]);
	return rc;
}
