/*
 * fz-envelope.c - fuzz target: the engine envelope a promoted backup reads
 * from the last committed epoch's STATE (src/core/envelope.c).
 *
 * Input: an envelope.  hr_envelope_parse must bound every length; when it
 * accepts, every record is walked and its bytes and the blob are read, so
 * that ASan sees any reach past the input.
 */
#include <string.h>
#include <stdlib.h>

#include "core/envelope.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hr_envelope env;
	struct hr_envelope_pos pos = {0};
	struct hr_out_record rec;
	const uint8_t *p;
	volatile uint8_t x = 0;

	if (hr_envelope_parse(&env, data, size) < 0)
		return 0;
	if (env.nr_chans > HR_MAX_CHANNELS)
		__builtin_trap();
	while (hr_envelope_next(&env, &pos, &rec, &p) == 1) {
		if (rec.chan >= env.nr_chans)
			__builtin_trap(); /* a record of a channel the envelope has not */
		for (size_t i = 0; i < rec.len; i++)
			x ^= p[i];
	}
	for (size_t i = 0; i < env.blob_bytes; i++)
		x ^= env.blob[i];
	(void)x;
	return 0;
}

int fz_make_seeds(const char *dir)
{
	static const char text[] = "mem: step=1\nmem: step=2\n";
	static const uint8_t blob[24] = "backend state blob 0123";
	struct hr_out_record recs[3] = {{0, 12, 100}, {1, 60, 7}, {0, 12, 112}};
	uint8_t net[60];
	struct iovec iov[3] = {{(void *)text, 12}, {net, 60}, {(void *)(text + 12), 12}};
	struct hr_out_held held = {.nr_chans = 2,
				   .next_offsets = {124, 67},
				   .nr_records = 3,
				   .records = recs,
				   .iov = iov,
				   .bytes = 84};
	struct hr_out_held none = {.nr_chans = 1, .next_offsets = {0}};
	uint8_t *buf;
	size_t len;
	int rc;

	memset(net, 0x5a, sizeof(net));
	if ((rc = hr_envelope_pack(&held, blob, sizeof(blob), &buf, &len)) < 0)
		return rc;
	rc = fz_seed(dir, "console-and-net", buf, len);
	free(buf);
	if (!rc && !(rc = hr_envelope_pack(&none, blob, sizeof(blob), &buf, &len))) {
		rc = fz_seed(dir, "blob-only", buf, len);
		free(buf);
	}
	return rc;
}
