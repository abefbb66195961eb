/* stream.c - framing of the replication stream (docs/stream-format.md). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xxhash.h>

#include "config.h"
#include "backends/backend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/unaligned.h"
#include "common/util.h"
#include "core/stream-internal.h"

#define STACK_IOVS 16

static const struct {
	const char *name;
	const ProtobufCMessageDescriptor *desc;
} frame_types[HR_FT_NR] = {
    [HR_FT_HELLO] = {"HELLO", &hr__hello__descriptor},
    [HR_FT_HELLO_ACK] = {"HELLO_ACK", &hr__hello_ack__descriptor},
    [HR_FT_EPOCH_BEGIN] = {"EPOCH_BEGIN", &hr__epoch_begin__descriptor},
    [HR_FT_PAGE_BATCH] = {"PAGE_BATCH", &hr__page_batch__descriptor},
    [HR_FT_STATE] = {"STATE", &hr__state__descriptor},
    [HR_FT_EPOCH_END] = {"EPOCH_END", &hr__epoch_end__descriptor},
    [HR_FT_ACK] = {"ACK", &hr__ack__descriptor},
    [HR_FT_HEARTBEAT] = {"HEARTBEAT", &hr__heartbeat__descriptor},
    [HR_FT_ERROR] = {"ERROR", &hr__error__descriptor},
    [HR_FT_DISK_WRITES] = {"DISK_WRITES", &hr__disk_writes__descriptor},
    [HR_FT_DISK_SYNC] = {"DISK_SYNC", &hr__disk_sync__descriptor},
    [HR_FT_DISK_HASHES] = {"DISK_HASHES", &hr__disk_hashes__descriptor},
    [HR_FT_DISK_BLOCKS] = {"DISK_BLOCKS", &hr__disk_blocks__descriptor},
};

const ProtobufCMessageDescriptor *hr_frame_descriptor(unsigned type)
{
	return type < HR_FT_NR ? frame_types[type].desc : NULL;
}

const char *hr_frame_type_name(unsigned type)
{
	return type < HR_FT_NR && frame_types[type].name ? frame_types[type].name : "unknown";
}

void hr_frame_fill(struct hr_frame *f, const struct frame_hdr *h, const uint8_t *data)
{
	f->type = h->type;
	f->flags = h->flags;
	f->hdr_len = h->hdr_len;
	f->data_len = h->data_len;
	f->data = h->data_len ? data : NULL;
}

void hr_frame_release(struct hr_frame *f)
{
	if (f->msg)
		protobuf_c_message_free_unpacked(f->msg, NULL);
	free(f->owned);
	memset(f, 0, sizeof(*f));
}

/* ---- header ---- */

static void hdr_put(uint8_t *p, uint16_t type, uint16_t flags, uint32_t hdr_len, uint32_t data_len)
{
	hr_put_be32(p, HR_FRAME_MAGIC);
	hr_put_be16(p + 4, type);
	hr_put_be16(p + 6, flags);
	hr_put_be32(p + 8, hdr_len);
	hr_put_be32(p + 12, data_len);
}

/* Decode and validate a frame header; nothing is allocated before this passes. */
int hr_frame_hdr_get(const uint8_t *p, struct frame_hdr *h, const char *vm)
{
	h->magic = hr_get_be32(p);
	h->type = hr_get_be16(p + 4);
	h->flags = hr_get_be16(p + 6);
	h->hdr_len = hr_get_be32(p + 8);
	h->data_len = hr_get_be32(p + 12);

	if (h->magic != HR_FRAME_MAGIC) {
		log_warnx(vm, "stream: bad frame magic 0x%08x (want 0x%08x \"HRF1\")", h->magic,
			  HR_FRAME_MAGIC);
		return -HR_EPROTO;
	}
	if (h->hdr_len > HR_FRAME_MAX_HDR_BYTES) {
		log_warnx(vm, "stream: %s frame header of %u bytes exceeds the %u byte limit",
			  hr_frame_type_name(h->type), h->hdr_len, HR_FRAME_MAX_HDR_BYTES);
		return -HR_EPROTO;
	}
	if (h->data_len > HR_FRAME_MAX_DATA_BYTES) {
		log_warnx(vm, "stream: %s frame data of %u bytes exceeds the %u byte limit",
			  hr_frame_type_name(h->type), h->data_len, HR_FRAME_MAX_DATA_BYTES);
		return -HR_EPROTO;
	}
	if (!hr_frame_descriptor(h->type) && (h->flags & HR_FRAME_MANDATORY)) {
		log_warnx(vm, "stream: unknown mandatory frame type %u (0x%04x), flags 0x%04x",
			  h->type, h->type, h->flags);
		return -HR_EPROTO;
	}
	return 0;
}

/* Unpack the protobuf header of a known frame type. */
int hr_frame_hdr_unpack(const struct frame_hdr *h, const uint8_t *pb, ProtobufCMessage **msg_r,
			const char *vm)
{
	const ProtobufCMessageDescriptor *desc = hr_frame_descriptor(h->type);
	ProtobufCMessage *msg;

	msg = protobuf_c_message_unpack(desc, NULL, h->hdr_len, pb);
	if (!msg) {
		log_warnx(vm, "stream: %s frame: undecodable protobuf header (%u bytes)",
			  hr_frame_type_name(h->type), h->hdr_len);
		return -HR_EPROTO;
	}
	*msg_r = msg;
	return 0;
}

/* ---- send ---- */

int hr_frame_encode(uint16_t type, uint16_t flags, const ProtobufCMessage *msg, uint64_t data_len,
		    uint8_t **buf_r, size_t *len_r)
{
	const ProtobufCMessageDescriptor *desc = hr_frame_descriptor(type);
	size_t pb_bytes = 0;
	uint8_t *buf;

	if (msg && desc && msg->descriptor != desc)
		return -EINVAL;
	if (msg)
		pb_bytes = protobuf_c_message_get_packed_size(msg);
	if (pb_bytes > HR_FRAME_MAX_HDR_BYTES || data_len > HR_FRAME_MAX_DATA_BYTES)
		return -HR_EPROTO;
	buf = malloc(HR_FRAME_HDR_BYTES + pb_bytes);
	if (!buf)
		return -ENOMEM;
	hdr_put(buf, type, flags, (uint32_t)pb_bytes, (uint32_t)data_len);
	if (msg)
		protobuf_c_message_pack(msg, buf + HR_FRAME_HDR_BYTES);
	*buf_r = buf;
	*len_r = HR_FRAME_HDR_BYTES + pb_bytes;
	return 0;
}

static int wait_fd(int fd, short events)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int r;

	do
		r = poll(&pfd, 1, -1);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

int hr_stream_send(int fd, uint16_t type, uint16_t flags, const ProtobufCMessage *msg,
		   const struct iovec *data, int nr_iov)
{
	struct iovec stack_iov[STACK_IOVS], *iov = stack_iov;
	uint64_t data_len = 0;
	uint8_t *head = NULL;
	size_t head_len;
	int rc;

	if (nr_iov < 0 || (nr_iov && !data))
		return -EINVAL;
	for (int i = 0; i < nr_iov; i++)
		data_len += data[i].iov_len;
	rc = hr_frame_encode(type, flags, msg, data_len, &head, &head_len);
	if (rc)
		return rc;
	if (nr_iov + 1 > STACK_IOVS) {
		iov = malloc(sizeof(*iov) * (nr_iov + 1));
		if (!iov) {
			rc = -ENOMEM;
			goto out;
		}
	}
	iov[0].iov_base = head;
	iov[0].iov_len = head_len;
	if (nr_iov)
		memcpy(iov + 1, data, sizeof(*iov) * nr_iov);
	rc = hr_writev_all(fd, iov, nr_iov + 1);
out:
	if (iov != stack_iov)
		free(iov);
	free(head);
	return rc;
}

int hr_stream_send_pages(int fd, uint64_t epoch, const uint64_t *gfns, const uint8_t *const *pages,
			 unsigned nr, unsigned flags)
{
	Hr__PageBatch pb = HR__PAGE_BATCH__INIT;
	struct iovec *iov;
	int rc;

	if (nr > HR_FRAME_MAX_DATA_BYTES / HR_PAGE_SIZE)
		return -HR_EPROTO;
	iov = malloc(sizeof(*iov) * (nr ? nr : 1));
	if (!iov)
		return -ENOMEM;
	for (unsigned i = 0; i < nr; i++) {
		iov[i].iov_base = (void *)pages[i];
		iov[i].iov_len = HR_PAGE_SIZE;
	}
	pb.epoch = epoch;
	pb.count = nr;
	pb.n_gfns = nr;
	pb.gfns = (uint64_t *)gfns;
	if (flags & HR_PAGES_SUMMED) {
		pb.has_xxh3 = 1;
		pb.xxh3 = hr_batch_sum(epoch, gfns, pages, nr);
	}
	rc = hr_stream_send(fd, HR_FT_PAGE_BATCH, HR_FRAME_MANDATORY, &pb.base, iov, (int)nr);
	free(iov);
	return rc;
}

/* ---- blocking receive ---- */

/* Read exactly len bytes.  *got_r = bytes read before EOF / error. */
static int read_exact(int fd, void *buf, size_t len, size_t *got_r)
{
	size_t got = 0;
	int rc = 0;

	while (got < len) {
		ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				rc = wait_fd(fd, POLLIN);
				if (rc)
					break;
				continue;
			}
			rc = -errno;
			break;
		}
		if (n == 0) {
			rc = -ECONNRESET;
			break;
		}
		got += n;
	}
	if (got_r)
		*got_r = got;
	return rc;
}

static int truncated(const char *vm, const char *what, size_t got, size_t want)
{
	log_warnx(vm, "stream: truncated frame: EOF in %s after %zu of %zu bytes", what, got, want);
	return -HR_EPROTO;
}

int hr_stream_recv(int fd, const char *vm, struct hr_frame *f)
{
	uint8_t raw[HR_FRAME_HDR_BYTES];
	struct frame_hdr h;
	uint8_t *buf;
	size_t got;
	int rc;

	memset(f, 0, sizeof(*f));
	for (;;) {
		rc = read_exact(fd, raw, sizeof(raw), &got);
		if (rc == -ECONNRESET && got)
			return truncated(vm, "frame header", got, sizeof(raw));
		if (rc)
			return rc;
		rc = hr_frame_hdr_get(raw, &h, vm);
		if (rc)
			return rc;
		if (hr_frame_descriptor(h.type))
			break;
		/* Unknown optional frame: drop it without buffering it whole. */
		log_debug(vm, "stream: skipping unknown optional frame type %u (%u+%u bytes)",
			  h.type, h.hdr_len, h.data_len);
		uint64_t left = (uint64_t)h.hdr_len + h.data_len;
		uint8_t sink[4096];
		while (left) {
			size_t n = left < sizeof(sink) ? left : sizeof(sink);
			rc = read_exact(fd, sink, n, &got);
			if (rc == -ECONNRESET)
				return truncated(vm, "skipped frame", got, n);
			if (rc)
				return rc;
			left -= n;
		}
	}

	buf = malloc((size_t)h.hdr_len + h.data_len + 1);
	if (!buf)
		return -ENOMEM;
	rc = read_exact(fd, buf, h.hdr_len, &got);
	if (rc == -ECONNRESET)
		rc = truncated(vm, "protobuf header", got, h.hdr_len);
	if (rc)
		goto fail;
	rc = read_exact(fd, buf + h.hdr_len, h.data_len, &got);
	if (rc == -ECONNRESET)
		rc = truncated(vm, "frame data", got, h.data_len);
	if (rc)
		goto fail;
	rc = hr_frame_hdr_unpack(&h, buf, &f->msg, vm);
	if (rc)
		goto fail;
	hr_frame_fill(f, &h, buf + h.hdr_len);
	f->owned = buf;
	return 0;
fail:
	free(buf);
	return rc;
}

int hr_stream_recv_data(int fd, const char *vm, struct hr_frame *f)
{
	for (;;) {
		int rc = hr_stream_recv(fd, vm, f);
		if (rc < 0 || f->type != HR_FT_HEARTBEAT)
			return rc;
		hr_frame_release(f);
	}
}

int hr_stream_recv_type(int fd, const char *vm, unsigned type, struct hr_frame *f)
{
	int rc = hr_stream_recv(fd, vm, f);

	if (rc)
		return rc;
	if (f->type != type) {
		log_warnx(vm, "stream: expected a %s frame, got %s (type %u)",
			  hr_frame_type_name(type), hr_frame_type_name(f->type), f->type);
		hr_frame_release(f);
		return -HR_EPROTO;
	}
	return 0;
}

int hr_stream_check_hello(const Hr__Hello *hello, const char *vm)
{
	if (hello->protocol_version != HR_PROTO_VERSION &&
	    (hello->protocol_version != HR_PROTO_VERSION_NODISK || hello->n_disk_bytes)) {
		log_warnx(
		    vm,
		    "stream: peer %s speaks protocol version %u, this build speaks %u (and %u "
		    "without disks)",
		    hello->vm_name, hello->protocol_version, HR_PROTO_VERSION,
		    HR_PROTO_VERSION_NODISK);
		return -HR_EVERSION;
	}
	if (hello->n_disk_bytes > HR_MAX_DISKS) {
		log_warnx(vm, "stream: peer's VM has %zu disks, at most %u", hello->n_disk_bytes,
			  HR_MAX_DISKS);
		return -HR_ESHAPE;
	}
	if (hello->page_bytes != HR_PAGE_SIZE) {
		log_warnx(vm, "stream: peer page size %u, this build uses %u", hello->page_bytes,
			  HR_PAGE_SIZE);
		return -HR_ESHAPE;
	}
	if (hello->vm_options) {
		size_t n = strlen(hello->vm_options), bad = 0;
		for (size_t i = 0; i < n && !bad; i++)
			bad = hello->vm_options[i] < 0x21 || hello->vm_options[i] > 0x7e;
		if (bad || n > HR_HELLO_OPTIONS_MAX) {
			log_warnx(vm,
				  "stream: peer's VM options are over %d bytes or not printable",
				  HR_HELLO_OPTIONS_MAX);
			return -HR_ESHAPE;
		}
	}
	if (hello->has_cpu_model && hello->cpu_model.len > HR_CPU_MODEL_MAX) {
		log_warnx(vm, "stream: peer's CPU model is over %d bytes", HR_CPU_MODEL_MAX);
		return -HR_ESHAPE;
	}
	return 0;
}

/* ---- epoch checksum ---- */

static void sum_le64(XXH3_state_t *st, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	XXH3_64bits_update(st, b, sizeof(b));
}

int hr_epoch_sum_init(struct hr_epoch_sum *s, uint64_t epoch)
{
	s->state = XXH3_createState();
	if (!s->state)
		return -ENOMEM;
	hr_epoch_sum_reset(s, epoch);
	return 0;
}

void hr_epoch_sum_reset(struct hr_epoch_sum *s, uint64_t epoch)
{
	XXH3_64bits_reset(s->state);
	sum_le64(s->state, epoch);
}

void hr_epoch_sum_page(struct hr_epoch_sum *s, uint64_t gfn, const void *page)
{
	sum_le64(s->state, gfn);
	XXH3_64bits_update(s->state, page, HR_PAGE_SIZE);
}

void hr_epoch_sum_state(struct hr_epoch_sum *s, const void *blob, uint64_t bytes)
{
	sum_le64(s->state, bytes);
	if (bytes)
		XXH3_64bits_update(s->state, blob, bytes);
}

void hr_epoch_sum_disk(struct hr_epoch_sum *s, unsigned disk, uint64_t off, uint64_t bytes,
		       unsigned flags, const void *data)
{
	sum_le64(s->state, disk);
	sum_le64(s->state, off);
	sum_le64(s->state, bytes);
	sum_le64(s->state, flags);
	if (data && bytes)
		XXH3_64bits_update(s->state, data, bytes);
}

void hr_epoch_sum_state_iov(struct hr_epoch_sum *s, const struct iovec *iov, int nr_iov,
			    uint64_t bytes)
{
	sum_le64(s->state, bytes);
	for (int i = 0; i < nr_iov; i++)
		if (iov[i].iov_len)
			XXH3_64bits_update(s->state, iov[i].iov_base, iov[i].iov_len);
}

uint64_t hr_batch_sum(uint64_t epoch, const uint64_t *gfns, const uint8_t *const *pages,
		      unsigned nr)
{
	struct hr_epoch_sum s;
	uint64_t v = 0;

	if (hr_epoch_sum_init(&s, epoch) < 0)
		return 0;
	for (unsigned i = 0; i < nr; i++)
		hr_epoch_sum_page(&s, gfns[i], pages[i]);
	v = hr_epoch_sum_value(&s);
	hr_epoch_sum_fini(&s);
	return v;
}

uint64_t hr_epoch_sum_value(const struct hr_epoch_sum *s)
{
	return XXH3_64bits_digest(s->state);
}

void hr_epoch_sum_fini(struct hr_epoch_sum *s)
{
	if (s->state)
		XXH3_freeState(s->state);
	s->state = NULL;
}

int hr_stream_send_hello(int fd, Hr__Role role, const char *vm, const char *backend,
			 uint64_t mem_bytes, unsigned nr_vcpus, const struct hr_mem_region *regions,
			 unsigned nr_regions, uint64_t epoch_us)
{
	return hr_stream_send_hello_at(fd, role, vm, backend, mem_bytes, nr_vcpus, regions,
				       nr_regions, epoch_us, 0, NULL);
}

int hr_stream_send_hello_at(int fd, Hr__Role role, const char *vm, const char *backend,
			    uint64_t mem_bytes, unsigned nr_vcpus,
			    const struct hr_mem_region *regions, unsigned nr_regions,
			    uint64_t epoch_us, uint64_t first_epoch, const char *vm_options)
{
	return hr_stream_send_hello_full(fd, role, vm, backend, mem_bytes, nr_vcpus, regions,
					 nr_regions, epoch_us, 0, first_epoch, vm_options, NULL, 0);
}

int hr_stream_send_hello_full(int fd, Hr__Role role, const char *vm, const char *backend,
			      uint64_t mem_bytes, unsigned nr_vcpus,
			      const struct hr_mem_region *regions, unsigned nr_regions,
			      uint64_t epoch_us, uint64_t min_epoch_us, uint64_t first_epoch,
			      const char *vm_options, const void *cpu_model, size_t cpu_model_bytes)
{
	return hr_stream_send_hello_disks(fd, role, vm, backend, mem_bytes, nr_vcpus, regions,
					  nr_regions, epoch_us, min_epoch_us, first_epoch,
					  vm_options, cpu_model, cpu_model_bytes, NULL, 0);
}

int hr_stream_send_hello_disks(int fd, Hr__Role role, const char *vm, const char *backend,
			       uint64_t mem_bytes, unsigned nr_vcpus,
			       const struct hr_mem_region *regions, unsigned nr_regions,
			       uint64_t epoch_us, uint64_t min_epoch_us, uint64_t first_epoch,
			       const char *vm_options, const void *cpu_model,
			       size_t cpu_model_bytes, const uint64_t *disk_bytes,
			       unsigned nr_disks)
{
	Hr__Hello h = HR__HELLO__INIT;
	Hr__MemRegion mr[8];
	Hr__MemRegion *mrp[8];

	if (nr_regions > 8)
		return -EINVAL;
	if (nr_disks > HR_MAX_DISKS)
		return -EINVAL;
	h.protocol_version = HR_PROTO_VERSION;
	h.n_disk_bytes = nr_disks;
	h.disk_bytes = (uint64_t *)disk_bytes;
	h.role = role;
	h.vm_name = (char *)vm;
	h.backend = (char *)backend;
	h.mem_bytes = mem_bytes;
	h.nr_vcpus = nr_vcpus;
	h.page_bytes = HR_PAGE_SIZE;
	for (unsigned i = 0; i < nr_regions; i++) {
		hr__mem_region__init(&mr[i]);
		mr[i].gpa = regions[i].gpa;
		mr[i].bytes = regions[i].bytes;
		mrp[i] = &mr[i];
	}
	h.n_regions = nr_regions;
	h.regions = mrp;
	h.has_epoch_us = epoch_us != 0;
	h.epoch_us = epoch_us;
	h.has_min_epoch_us = min_epoch_us != 0;
	h.min_epoch_us = min_epoch_us;
	h.has_first_epoch = first_epoch != 0;
	h.first_epoch = first_epoch;
	h.vm_options = vm_options && *vm_options ? (char *)vm_options : NULL;
	h.has_cpu_model = cpu_model_bytes != 0;
	h.cpu_model.data = (uint8_t *)cpu_model;
	h.cpu_model.len = cpu_model_bytes;
	return hr_stream_send(fd, HR_FT_HELLO, HR_FRAME_MANDATORY, &h.base, NULL, 0);
}
