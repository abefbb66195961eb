/*
 * stream.h - framing of the replication stream (docs/stream-format.md).
 *
 * A frame is a 16-byte frame header, hdr_len bytes of a protobuf message
 * (proto/hareplicate.proto) and data_len raw bytes (guest pages, state blob):
 *
 *   0      4       6       8         12         16
 *   | magic | type | flags | hdr_len | data_len | protobuf ... | data ... |
 *
 * All header fields are big-endian (network order); magic is the bytes
 * "HRF1".  Raw data is never copied on the send side (writev/sendmsg) and
 * never protobuf-encoded.
 *
 * Two receive paths share one parser:
 *  - struct hr_frame_reader: incremental, for non-blocking fds (libevent).
 *    Feed it bytes (hr_frame_reader_feed) or let it read what an fd has
 *    (hr_frame_reader_fill), then take complete frames with
 *    hr_frame_reader_next.
 *  - hr_stream_recv: blocking, reads exactly one frame, for tools and tests.
 *
 * Errors: -HR_EPROTO for any malformed frame (bad magic, oversized
 * lengths, undecodable protobuf, unknown MANDATORY type, truncation),
 * -HR_EVERSION from hr_stream_check_hello, -errno from the socket.  A
 * reader that returned an error stays in error: the stream is out of sync
 * and the connection must be dropped.
 */
#ifndef HR_CORE_STREAM_H
#define HR_CORE_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <protobuf-c/protobuf-c.h>

#include "proto/hareplicate.pb-c.h"

/*
 * WIRE FORMAT: the frame header below, the frame type numbers and the
 * protobuf messages (proto/hareplicate.proto) are wire types.  Any change
 * to them requires a bump of HR_PROTO_VERSION - the one definition of the
 * protocol version - except the compatible extensions of
 * docs/stream-format.md section 6 (a new optional protobuf field, a new
 * frame type sent without MANDATORY).  A HELLO of another version is
 * refused (-HR_EVERSION).
 */
#define HR_PROTO_VERSION 3 /* 3: disk writes (DISK_WRITES, Hello.disk_bytes) */
/* The older version a receiver still accepts from a primary without disks
 * (such a session is version 2 on the wire; docs/stream-format.md 6). */
#define HR_PROTO_VERSION_NODISK 2

#define HR_FRAME_MAGIC		0x48524631u /* "HRF1" */
#define HR_FRAME_HDR_BYTES	16u
#define HR_FRAME_MAX_HDR_BYTES	(64u << 10) /* protobuf header */
#define HR_FRAME_MAX_DATA_BYTES (64u << 20) /* raw data */
#define HR_FRAME_MANDATORY	(1u << 0)   /* receiver must understand the type */

/* Frame types (u16).  Values are wire format: never renumber. */
enum hr_frame_type {
	HR_FT_HELLO = 1,	/* Hr__Hello */
	HR_FT_HELLO_ACK = 2,	/* Hr__HelloAck */
	HR_FT_EPOCH_BEGIN = 3,	/* Hr__EpochBegin */
	HR_FT_PAGE_BATCH = 4,	/* Hr__PageBatch + count * page_bytes raw */
	HR_FT_STATE = 5,	/* Hr__State + blob_bytes raw */
	HR_FT_EPOCH_END = 6,	/* Hr__EpochEnd */
	HR_FT_ACK = 7,		/* Hr__Ack */
	HR_FT_HEARTBEAT = 8,	/* Hr__Heartbeat */
	HR_FT_ERROR = 9,	/* Hr__Error */
	HR_FT_DISK_WRITES = 10, /* Hr__DiskWrites + the data of its writes (protocol 3) */
	HR_FT_DISK_SYNC = 11,	/* Hr__DiskSync (protocol 3, disks: image synchronisation) */
	HR_FT_DISK_HASHES = 12, /* Hr__DiskHashes + count x le64 block hashes */
	HR_FT_DISK_BLOCKS = 13, /* Hr__DiskBlocks + the data of its data blocks */
	HR_FT_NR,		/* first unassigned; control types will start at 0x100 */
};

/* One received frame. */
struct hr_frame {
	uint16_t type;
	uint16_t flags;
	uint32_t hdr_len;
	uint32_t data_len;
	ProtobufCMessage *msg; /* unpacked header, cast to Hr__<Type> by type; owned */
	const uint8_t *data;   /* data_len raw bytes (NULL when 0 or placed); see lifetime below */
	int placed;	       /* the data went where the reader's placer said, not to data */
	void *owned;	       /* private: buffer freed by hr_frame_release */
};

/* Free f->msg (and, for hr_stream_recv, the data).  Safe on a zeroed frame. */
void hr_frame_release(struct hr_frame *f);

/* Descriptor of a known frame type, NULL if unknown. */
const ProtobufCMessageDescriptor *hr_frame_descriptor(unsigned type);
/* "PAGE_BATCH", ... or "unknown". */
const char *hr_frame_type_name(unsigned type);

/* ---- send side ---- */

/*
 * Send one frame on a blocking (or non-blocking: EAGAIN is waited out with
 * poll) fd: header + packed msg + the data iovecs, with sendmsg/writev and
 * no copy of the data.  msg may be NULL (hdr_len 0).  SIGPIPE is not
 * raised on sockets.  Returns 0, -HR_EPROTO (message or data too large,
 * msg of the wrong type) or -errno.
 */
int hr_stream_send(int fd, uint16_t type, uint16_t flags, const ProtobufCMessage *msg,
		   const struct iovec *data, int nr_iov);

/*
 * Encode frame header + packed msg into a malloc'd buffer, for callers
 * that queue frames themselves (evbuffer_add + evbuffer_add_reference for
 * the data_len raw bytes).  *buf_r is freed by the caller.
 */
int hr_frame_encode(uint16_t type, uint16_t flags, const ProtobufCMessage *msg, uint64_t data_len,
		    uint8_t **buf_r, size_t *len_r);

/*
 * One PAGE_BATCH of nr pages (HR_PAGE_SIZE each) listed by gfn, page data
 * taken in place from pages[i].  nr <= HR_FRAME_MAX_DATA_BYTES /
 * HR_PAGE_SIZE.  HR_PAGES_SUMMED adds the batch's own checksum (live-phase
 * batches must carry it; an epoch's batches are covered by EPOCH_END).
 */
#define HR_PAGES_SUMMED (1u << 0)
int hr_stream_send_pages(int fd, uint64_t epoch, const uint64_t *gfns, const uint8_t *const *pages,
			 unsigned nr, unsigned flags);

/* XXH3-64 of a page batch: le64 epoch, then per page le64 gfn + its bytes. */
uint64_t hr_batch_sum(uint64_t epoch, const uint64_t *gfns, const uint8_t *const *pages,
		      unsigned nr);

/* ---- receive side: incremental reader ---- */

/*
 * OPTIONAL placer: once a frame's header and message are buffered but its
 * data is not all there yet, the reader may ask where the data should go
 * (f has type, lengths and msg; data NULL).  Return 1 with *iov_r / *nr_r
 * describing exactly f->data_len bytes (valid until the frame is
 * returned) to have the rest of the data read straight there; the frame
 * then comes back from hr_frame_reader_next with data NULL and placed = 1.
 * Return 0 to have it buffered as usual.  This saves the copy of page data
 * from the reader's buffer into the backup's staging.
 */
typedef int (*hr_frame_place_fn)(void *opaque, const struct hr_frame *f, struct iovec **iov_r,
				 int *nr_r);

struct hr_frame_reader {
	const char *vm; /* for log lines; may be NULL */
	hr_frame_place_fn place;
	void *place_opaque;
	struct hr_frame placing; /* the frame whose data is being placed (msg owned) */
	struct iovec *piov;	 /* where its remaining data goes */
	int pnr;
	uint64_t premain;    /* bytes still to place; 0 = not placing */
	size_t declined_off; /* the placer said no to the frame at this offset */
	int declined;
	uint8_t *buf; /* buffered bytes are buf[off, len) */
	size_t cap, len, off;
	uint64_t skip_bytes; /* rest of an unknown optional frame still to drop */
	int err;	     /* sticky error */
	uint64_t nr_frames;  /* frames returned */
	uint64_t nr_skipped; /* unknown optional frames dropped */
};

void hr_frame_reader_init(struct hr_frame_reader *r, const char *vm);
void hr_frame_reader_set_placer(struct hr_frame_reader *r, hr_frame_place_fn fn, void *opaque);
void hr_frame_reader_fini(struct hr_frame_reader *r);

/* Append bytes to the reader.  0 or -ENOMEM / the sticky error. */
int hr_frame_reader_feed(struct hr_frame_reader *r, const void *buf, size_t len);

/*
 * One read() from fd into the reader.  Returns bytes read (> 0), 0 at EOF,
 * -EAGAIN when a non-blocking fd has nothing, or -errno.
 */
ssize_t hr_frame_reader_fill(struct hr_frame_reader *r, int fd);

/*
 * Take the next complete frame.  Returns 1 with *f filled, 0 if more bytes
 * are needed, < 0 on a malformed stream (sticky).  Unknown types without
 * HR_FRAME_MANDATORY are skipped without being buffered.  f->data points
 * into the reader's buffer and is valid until the next call on the reader;
 * f->msg belongs to the caller (hr_frame_release).
 */
int hr_frame_reader_next(struct hr_frame_reader *r, struct hr_frame *f);

/* Bytes of a partial frame buffered (non-zero at EOF means truncation). */
size_t hr_frame_reader_pending(const struct hr_frame_reader *r);

/* ---- receive side: blocking ---- */

/*
 * Read exactly one frame from a blocking fd (no read-ahead, so it can be
 * mixed with other users of the fd).  Unknown optional frames are skipped.
 * Returns 0 with *f filled (release it), -ECONNRESET on EOF at a frame
 * boundary, -HR_EPROTO on a malformed or truncated frame, or -errno.
 * vm names the VM in log lines (may be NULL).
 */
int hr_stream_recv(int fd, const char *vm, struct hr_frame *f);

/* The next frame that is not a HEARTBEAT (those may come at any time after
 * HELLO_ACK, in both directions).  As hr_stream_recv otherwise. */
int hr_stream_recv_data(int fd, const char *vm, struct hr_frame *f);

/* Receive one frame and require its type: -HR_EPROTO if it is another one. */
int hr_stream_recv_type(int fd, const char *vm, unsigned type, struct hr_frame *f);

/*
 * Handshake check of a received Hello: protocol version (-HR_EVERSION),
 * page size, VM options and CPU model sizes (-HR_ESHAPE).  Shape against the
 * local VM is the caller's job.
 */
int hr_stream_check_hello(const Hr__Hello *hello, const char *vm);

/* ---- epoch checksum (XXH3-64, see docs/stream-format.md) ---- */

struct hr_epoch_sum {
	void *state; /* XXH3_state_t */
};

/* Start the checksum of `epoch`.  0 or -ENOMEM. */
int hr_epoch_sum_init(struct hr_epoch_sum *s, uint64_t epoch);
/* Restart for another epoch without reallocating. */
void hr_epoch_sum_reset(struct hr_epoch_sum *s, uint64_t epoch);
void hr_epoch_sum_page(struct hr_epoch_sum *s, uint64_t gfn, const void *page);
void hr_epoch_sum_state(struct hr_epoch_sum *s, const void *blob, uint64_t bytes);
/* One disk write: le64 disk, le64 offset, le64 bytes, le64 flags, then
 * its data (NULL for a write without data: zeroes, flush). */
void hr_epoch_sum_disk(struct hr_epoch_sum *s, unsigned disk, uint64_t off, uint64_t bytes,
		       unsigned flags, const void *data);
/* The same for a blob given in pieces (bytes = their total). */
void hr_epoch_sum_state_iov(struct hr_epoch_sum *s, const struct iovec *iov, int nr_iov,
			    uint64_t bytes);
uint64_t hr_epoch_sum_value(const struct hr_epoch_sum *s);
void hr_epoch_sum_fini(struct hr_epoch_sum *s);

struct hr_mem_region;

/* Send the HELLO that opens a session (protocol version, page size and the
 * guest-physical layout filled in).  epoch_us 0 = not given.  0 or -errno. */
int hr_stream_send_hello(int fd, Hr__Role role, const char *vm, const char *backend,
			 uint64_t mem_bytes, unsigned nr_vcpus, const struct hr_mem_region *regions,
			 unsigned nr_regions, uint64_t epoch_us);
/* The same for a session whose first epoch is first_epoch (a primary that
 * re-protects itself continues its numbering), for a VM built with the
 * backend options vm_options (its devices; NULL or "": none). */
int hr_stream_send_hello_at(int fd, Hr__Role role, const char *vm, const char *backend,
			    uint64_t mem_bytes, unsigned nr_vcpus,
			    const struct hr_mem_region *regions, unsigned nr_regions,
			    uint64_t epoch_us, uint64_t first_epoch, const char *vm_options);
/* The same with the primary's min_epoch_us (0 = off: not sent). */
int hr_stream_send_hello_full(int fd, Hr__Role role, const char *vm, const char *backend,
			      uint64_t mem_bytes, unsigned nr_vcpus,
			      const struct hr_mem_region *regions, unsigned nr_regions,
			      uint64_t epoch_us, uint64_t min_epoch_us, uint64_t first_epoch,
			      const char *vm_options, const void *cpu_model,
			      size_t cpu_model_bytes);
/* The same with the VM's disks (their sizes in bytes; nr_disks 0: none). */
int hr_stream_send_hello_disks(int fd, Hr__Role role, const char *vm, const char *backend,
			       uint64_t mem_bytes, unsigned nr_vcpus,
			       const struct hr_mem_region *regions, unsigned nr_regions,
			       uint64_t epoch_us, uint64_t min_epoch_us, uint64_t first_epoch,
			       const char *vm_options, const void *cpu_model,
			       size_t cpu_model_bytes, const uint64_t *disk_bytes,
			       unsigned nr_disks);
#define HR_HELLO_OPTIONS_MAX 256 /* bytes of vm_options, printable ASCII */

#endif
