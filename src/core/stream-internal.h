/* stream-internal.h - the frame header, shared by stream.c and frame-reader.c only. */
#ifndef HR_CORE_STREAM_INTERNAL_H
#define HR_CORE_STREAM_INTERNAL_H

#include "core/stream.h"

struct frame_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint32_t hdr_len;
	uint32_t data_len;
};

/* Copy the header's fields into f; data: where its data_len bytes are. */
void hr_frame_fill(struct hr_frame *f, const struct frame_hdr *h, const uint8_t *data);
/* Parse and check the 16-byte header at p.  0 or -HR_EPROTO. */
int hr_frame_hdr_get(const uint8_t *p, struct frame_hdr *h, const char *vm);
/* Unpack the protobuf message that follows it.  0 or -HR_EPROTO. */
int hr_frame_hdr_unpack(const struct frame_hdr *h, const uint8_t *pb, ProtobufCMessage **msg_r,
			const char *vm);

#endif
