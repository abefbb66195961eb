/*
 * fz-staging.c - fuzz target: a backup fed as a peer would feed it.
 *
 * Once: a replica of the mem backend (1 MiB) and the handshake a backup
 * does before anything is created for it (a real HELLO through
 * hr_handshake_accept, the limits, the layout), as vm-accept does.
 * Per input: fresh staging and receiver over that replica, its memory
 * zeroed; the input is the byte stream after HELLO_ACK, read by the frame
 * reader with the receiver's placer (epoch pages go straight to staging) in
 * chunks of (first byte + 1) bytes, every frame handed to
 * hr_receiver_frame until it ends the stream.  The receiver's acks and
 * errors go to a socketpair that is drained after every frame.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/mem/mem.h"
#include "common/err.h"
#include "core/envelope.h"
#include "core/handshake.h"
#include "core/receiver.h"
#include "fuzz.h"

#define MEM_BYTES (1u << 20)

static const struct hr_backend_ops *ops = &hr_mem_ops;
static struct hr_vm *rvm;
static struct hr_guestmem rgm;
static int sv[2] = {-1, -1};

/* The handshake a backup does before it opens the replica.  0 or < 0. */
static int handshake(struct hr_hello_info *h)
{
	struct hr_mem_region reg = {0, MEM_BYTES, NULL};
	struct hr_peer p;
	char why[256];
	int ctl, rc;

	if ((rc = hr_stream_send_hello(sv[1], HR__ROLE__ROLE_PRIMARY, "fz", "mem", MEM_BYTES, 1,
				       &reg, 1, 25000)) < 0)
		return rc;
	hr_peer_init(&p, "fz", sv[0], -1);
	rc = hr_handshake_accept(&p, h, &ctl);
	rc = rc ?: hr_handshake_check_limits(h, NULL, why, sizeof(why));
	rc = rc ?: hr_handshake_check_layout(h, &reg, 1);
	hr_peer_fini(&p);
	return rc;
}

static int setup(void)
{
	struct hr_hello_info h;
	struct hr_vm_config rc_ = {.name = "fz-r", .mem_bytes = MEM_BYTES, .nr_vcpus = 1};
	int rc;

	if ((rc = fz_socketpair(sv, 1 << 20)) < 0 || (rc = handshake(&h)) < 0)
		return rc;
	rc_.mem_bytes = h.mem_bytes;
	rc_.nr_vcpus = h.nr_vcpus;
	if ((rc = ops->open(&rvm, &rc_)) < 0 || (rc = hr_guestmem_init(&rgm, ops, rvm)) < 0)
		return rc;
	return hr_handshake_check_layout(&h, rgm.regions, rgm.nr_regions);
}

static void drain(void)
{
	static uint8_t sink[65536];
	while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct hr_staging *st;
	struct hr_receiver rx;
	struct hr_frame_reader rd;
	struct hr_frame f;
	size_t off = 1, chunk;
	int rc = 0;

	if (!ready) {
		if (setup() < 0) {
			fprintf(stderr, "fz-staging: setup failed\n");
			__builtin_trap();
		}
		ready = 1;
	}
	if (size < 1)
		return 0;
	chunk = (size_t)data[0] * 61 + 1;
	memset(rgm.regions[0].hva, 0, MEM_BYTES);
	if (hr_staging_new(&st, "fz-r", rgm.regions, rgm.nr_regions, 0) < 0)
		return 0;
	hr_receiver_init(&rx, "fz-r", sv[0], &rgm, st);
	hr_frame_reader_init(&rd, "fz-r");
	hr_frame_reader_set_placer(&rd, hr_receiver_place, &rx);
	while (off < size && rc >= 0 && rc != HR_RX_END) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (hr_frame_reader_feed(&rd, data + off, n) < 0)
			break;
		off += n;
		while (rc >= 0 && rc != HR_RX_END && hr_frame_reader_next(&rd, &f) == 1) {
			rc = hr_receiver_frame(&rx, &f);
			hr_frame_release(&f);
			drain();
		}
	}
	if (rx.have_commit) {
		/* what a promotion would read: the committed envelope */
		struct hr_envelope env;
		const void *state;
		size_t len;
		hr_staging_committed_state(st, &state, &len);
		if (state)
			hr_envelope_parse(&env, state, len);
	}
	if (getenv("FZ_VERBOSE"))
		fprintf(stderr, "fz-staging: %llu epochs committed, %llu frames\n",
			(unsigned long long)rx.nr_epochs, (unsigned long long)rd.nr_frames);
	hr_receiver_abandon(&rx);
	hr_frame_reader_fini(&rd);
	hr_staging_free(st);
	drain();
	return 0;
}

int fz_make_seeds(const char *dir)
{
	uint8_t *s;
	size_t len;
	int rc;

	/* live round + epochs 0 and 1, fed 1 byte and 61*255+1 bytes at a time */
	if ((rc = fz_session(MEM_BYTES, 2, 3, &s, &len)) < 0)
		return rc;
	uint8_t *seed = malloc(len + 1);
	if (!seed) {
		free(s);
		return -ENOMEM;
	}
	memcpy(seed + 1, s, len);
	seed[0] = 0;
	rc = fz_seed(dir, "session-bytewise", seed, len + 1);
	seed[0] = 255;
	rc = rc ?: fz_seed(dir, "session", seed, len + 1);
	free(seed);
	free(s);
	/* a longer session: more epochs, a few writes each */
	if (!rc && !(rc = fz_session(MEM_BYTES, 5, 1, &s, &len))) {
		if ((seed = malloc(len + 1))) {
			seed[0] = 3;
			memcpy(seed + 1, s, len);
			rc = fz_seed(dir, "session-5-epochs", seed, len + 1);
			free(seed);
		} else {
			rc = -ENOMEM;
		}
		free(s);
	}
	return rc;
}
