/*
 * t-envelope.c - the engine envelope (core/envelope.c): built from held
 * output without copies, packed, parsed back record by record; and every
 * malformed envelope a hostile or broken primary could send is refused
 * (truncations at every length, each header field corrupted, records that
 * overrun their channel or the data, random bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "common/err.h"
#include "common/unaligned.h"
#include "core/envelope.h"

int main(void)
{
	static const char a[] = "console run one ", b[] = "and two\n";
	static uint8_t frame[1514];
	static const char blob[] = "backend-state-blob";
	struct hr_out_record recs[3] = {{0, sizeof(a) - 1, 100},
					{1, sizeof(frame), 7000},
					{0, sizeof(b) - 1, 100 + sizeof(a) - 1}};
	struct iovec iov[3] = {
	    {(void *)a, sizeof(a) - 1}, {frame, sizeof(frame)}, {(void *)b, sizeof(b) - 1}};
	struct hr_out_held held = {
	    .nr_chans = 2,
	    .next_offsets = {100 + sizeof(a) - 1 + sizeof(b) - 1, 7000 + sizeof(frame)},
	    .nr_records = 3,
	    .records = recs,
	    .iov = iov,
	    .bytes = sizeof(a) - 1 + sizeof(frame) + sizeof(b) - 1};
	struct hr_envelope_out out;
	struct hr_envelope env;
	uint8_t *buf;
	size_t len;

	plan(13);
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7 + 1);
	ok(hr_envelope_build(&out, &held, blob, sizeof(blob)) == 0 && out.nr_iov == 6 &&
	       out.iov[1].iov_base == a && out.iov[5].iov_base == blob,
	   "build: head, 3 records, pad, blob as iovecs pointing at the originals");
	hr_envelope_out_free(&out);
	ok(hr_envelope_pack(&held, blob, sizeof(blob), &buf, &len) == 0 && len % 8 == 0 + len % 8,
	   "pack: %zu bytes", len);
	ok(hr_envelope_parse(&env, buf, len) == 0 && env.nr_chans == 2 && env.nr_records == 3 &&
	       env.next_offsets[1] == 7000 + sizeof(frame) && env.blob_bytes == sizeof(blob) &&
	       !memcmp(env.blob, blob, sizeof(blob)),
	   "parse: channels, offsets and blob back");
	struct hr_envelope_pos pos = {0};
	struct hr_out_record r;
	const uint8_t *d;
	int recs_ok = 1, n = 0;
	while (hr_envelope_next(&env, &pos, &r, &d)) {
		recs_ok &= r.chan == recs[n].chan && r.len == recs[n].len &&
			   r.offset == recs[n].offset && !memcmp(d, iov[n].iov_base, r.len);
		n++;
	}
	ok(recs_ok && n == 3, "records walk back in order with their bytes (%d)", n);

	/* the blob may start anywhere in the receive buffer: parse at an odd address */
	uint8_t *odd = malloc(len + 1);
	memcpy(odd + 1, buf, len);
	ok(hr_envelope_parse(&env, odd + 1, len) == 0 && !memcmp(env.blob, blob, sizeof(blob)),
	   "an envelope at an odd address parses");
	free(odd);

	/* hostile input */
	int trunc_ok = 1;
	for (size_t l = 0; l < len; l++)
		trunc_ok &= hr_envelope_parse(&env, buf, l) == -HR_EBADSTATE;
	ok(trunc_ok, "every truncation (0..%zu bytes) is refused", len - 1);
	ok(hr_envelope_parse(&env, NULL, 0) == -HR_EBADSTATE, "no envelope at all is refused");
	uint8_t *bad = malloc(len);
	struct {
		size_t at;
		uint32_t v;
		const char *what;
	} cases[] = {{0, 0x4e455249, "magic"},
		     {4, 1, "version 1"},
		     {8, HR_MAX_CHANNELS + 1, "too many channels"},
		     {12, 4, "one record more than there are"},
		     {16, 5, "data_bytes too small"},
		     {24, 1u << 30, "blob_bytes beyond the buffer"}};
	int fields_ok = 1;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, buf, len);
		hr_put_le32(bad + cases[i].at, cases[i].v);
		if (hr_envelope_parse(&env, bad, len) != -HR_EBADSTATE) {
			diag("accepted: %s", cases[i].what);
			fields_ok = 0;
		}
	}
	ok(fields_ok, "each corrupted header field is refused");
	size_t table = HR_ENVELOPE_HDR_BYTES + 2 * 8;
	memcpy(bad, buf, len);
	hr_put_le32(bad + table, 5); /* record 0 on channel 5 of 2 */
	ok(hr_envelope_parse(&env, bad, len) == -HR_EBADSTATE,
	   "a record on a channel that does not exist");
	memcpy(bad, buf, len);
	hr_put_le64(bad + table + 8, UINT64_MAX - 3); /* offset + len wraps */
	ok(hr_envelope_parse(&env, bad, len) == -HR_EBADSTATE, "a record whose offset wraps");
	memcpy(bad, buf, len);
	hr_put_le64(bad + HR_ENVELOPE_HDR_BYTES, 100); /* channel 0 ends before its records */
	ok(hr_envelope_parse(&env, bad, len) == -HR_EBADSTATE,
	   "records beyond their channel's offset");
	memcpy(bad, buf, len);
	hr_put_le32(bad + table + 4, 1u << 31); /* record length beyond the data */
	ok(hr_envelope_parse(&env, bad, len) == -HR_EBADSTATE, "a record longer than the data");
	srand(1);
	int random_ok = 1;
	for (int i = 0; i < 20000; i++) {
		memcpy(bad, buf, len);
		for (int k = 0; k < 4; k++)
			bad[rand() % (HR_ENVELOPE_HDR_BYTES + 64)] = (uint8_t)rand();
		int rc = hr_envelope_parse(&env, bad, len);
		if (rc == 0) { /* what parses must stay inside the buffer */
			struct hr_envelope_pos p = {0};
			while (hr_envelope_next(&env, &p, &r, &d))
				random_ok &= d >= bad && d + r.len <= bad + len;
			random_ok &= env.blob + env.blob_bytes == bad + len;
		}
	}
	ok(random_ok,
	   "20000 randomly corrupted headers: refused, or every record inside the buffer");
	free(bad);
	free(buf);
	return tap_done();
}
