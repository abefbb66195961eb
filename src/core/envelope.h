/*
 * envelope.h - the STATE blob of every epoch (docs/stream-format.md,
 * section 3, "What the epoch engine sends": the engine envelope, version
 * 2): the output the primary still holds, with each record's channel and
 * offset, and the backend's state blob.
 *
 * WIRE FORMAT: any change to this layout requires a bump of
 * HR_ENVELOPE_VERSION and of the protocol version (HR_PROTO_VERSION,
 * core/stream.h); a receiver refuses another envelope version.
 *
 *   header   u32 magic "HREN" | u32 version (2) | u32 nr_chans | u32 nr_records
 *            | u64 data_bytes | u64 blob_bytes                       (32 bytes)
 *   offsets  nr_chans x u64: each channel's offset after the held output
 *   records  nr_records x (u32 chan | u32 len | u64 offset)
 *   data     the records' bytes, in record order (data_bytes)
 *   pad      zero bytes up to a multiple of 8
 *   blob     the backend's state blob (blob_bytes)
 *
 * All fields little-endian.  A promoted backup releases the records (the
 * sink drops what it already has by offset) and continues every channel at
 * its offset.  Encoding copies neither the output nor the blob: it gives
 * iovecs that point at them.
 */
#ifndef HR_CORE_ENVELOPE_H
#define HR_CORE_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/outbuf.h"

#define HR_ENVELOPE_MAGIC     0x4e455248u /* "HREN" read as little-endian u32 */
#define HR_ENVELOPE_VERSION   2u
#define HR_ENVELOPE_HDR_BYTES 32u

/* An envelope ready to send: iov[0..nr_iov) (head, record data, pad, blob). */
struct hr_envelope_out {
	uint8_t *head; /* header + offsets + record table (owned) */
	struct iovec *iov;
	int nr_iov;
	uint64_t bytes; /* total */
};

/* Build the iovecs for held output + blob (neither is copied; both must
 * outlive the send).  0 or -ENOMEM. */
int hr_envelope_build(struct hr_envelope_out *env, const struct hr_out_held *held, const void *blob,
		      size_t blob_bytes);
void hr_envelope_out_free(struct hr_envelope_out *env);

/* The same as one malloc'd buffer (tools and tests that write frames by
 * hand).  0 or -ENOMEM. */
int hr_envelope_pack(const struct hr_out_held *held, const void *blob, size_t blob_bytes,
		     uint8_t **buf_r, size_t *len_r);

/* A received envelope, parsed in place (pointers into the buffer). */
struct hr_envelope {
	unsigned nr_chans;
	uint64_t next_offsets[HR_MAX_CHANNELS];
	size_t nr_records;
	const uint8_t *table; /* nr_records x 16 bytes, see hr_envelope_record */
	const uint8_t *data;
	const uint8_t *blob;
	size_t blob_bytes;
};

/* Parse and check every length.  0 or -HR_EBADSTATE. */
int hr_envelope_parse(struct hr_envelope *env, const void *buf, size_t len);

/* Walk the records in order: start from a zeroed pos; 1 with the record
 * and its bytes, 0 after the last. */
struct hr_envelope_pos {
	size_t i;
	uint64_t data_off;
};
int hr_envelope_next(const struct hr_envelope *env, struct hr_envelope_pos *pos,
		     struct hr_out_record *rec_r, const uint8_t **data_r);

#endif
