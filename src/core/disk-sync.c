/* disk-sync.c - the images' synchronisation at a session's start (disk-sync.h). */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/disk-sync.h"
#include "core/disklog.h"
#include "core/stream.h"

uint64_t hr_disk_block_hash(const void *buf, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(buf, len, seed);
}

static uint64_t nr_blocks_of(uint64_t bytes, uint32_t bb)
{
	return (bytes + bb - 1) / bb;
}

static size_t block_len(uint64_t bytes, uint32_t bb, uint64_t b)
{
	uint64_t off = b * bb;
	return bytes - off < bb ? (size_t)(bytes - off) : bb;
}

static int all_zero(const uint8_t *p, size_t len)
{
	return !len || (!p[0] && !memcmp(p, p + 1, len - 1));
}

static void set_bit(uint8_t *bits, uint64_t i)
{
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static int test_bit(const uint8_t *bits, uint64_t i)
{
	return bits[i / 8] >> (i % 8) & 1;
}

/*
 * Hash every block of img into h[] (nr_blocks_of entries); a block wholly
 * in a hole gets the zero-block hash without being read.  zero (optional,
 * a bitmap): the blocks that read as zero.  buf: block_bytes of room.
 */
struct tx;
static void tx_drain(struct tx *t);

static int hash_image(struct hr_image *img, uint32_t bb, uint64_t seed, uint64_t *h, uint8_t *zero,
		      uint8_t *buf, struct hr_peer *p, struct tx *t)
{
	uint64_t n = nr_blocks_of(img->bytes, bb), off = 0, s, e;
	int rc;

	if (!n)
		return 0;
	memset(buf, 0, bb);
	uint64_t zfull = hr_disk_block_hash(buf, bb, seed);
	uint64_t ztail = hr_disk_block_hash(buf, block_len(img->bytes, bb, n - 1), seed);
	for (uint64_t b = 0; b < n; b++)
		h[b] = b == n - 1 ? ztail : zfull;
	if (zero)
		memset(zero, 0xff, (n + 7) / 8);
	while (off < img->bytes) {
		if ((rc = hr_image_next_data(img, off, &s, &e)) < 0)
			return rc;
		if (!rc)
			break;
		uint64_t b = s / bb;
		for (; b < n && b * bb < e; b++) {
			size_t len = block_len(img->bytes, bb, b);
			if ((rc = hr_image_pread(img, buf, len, b * bb)) < 0)
				return rc;
			h[b] = hr_disk_block_hash(buf, len, seed);
			if (zero && !all_zero(buf, len))
				zero[b / 8] &= (uint8_t) ~(1u << (b % 8));
			if (p)
				hr_peer_progress(p);
			tx_drain(t);
		}
		off = b * bb;
	}
	return 0;
}

static uint64_t frame_bytes(const ProtobufCMessage *m, uint64_t data_len)
{
	return HR_FRAME_HDR_BYTES + protobuf_c_message_get_packed_size(m) + data_len;
}

/* ---- the backup ---- */

static int rx_send(struct hr_disk_sync_rx *s, uint16_t type, const ProtobufCMessage *m,
		   const struct iovec *iov, int nr_iov)
{
	if (s->peer)
		return hr_peer_send(s->peer, type, HR_FRAME_MANDATORY, m, iov, nr_iov);
	return hr_stream_send(s->fd, type, HR_FRAME_MANDATORY, m, iov, nr_iov);
}

static int refuse(struct hr_disk_sync_rx *s, const char *why)
{
	snprintf(s->why, sizeof(s->why), "disk synchronisation: %s", why);
	return -HR_EPROTO;
}

static int io_failed(struct hr_disk_sync_rx *s, int rc, const char *what, unsigned disk,
		     uint64_t off)
{
	s->dt->invalid = 1;
	snprintf(s->dt->why, sizeof(s->dt->why),
		 "disk synchronisation: %s of disk %u at %" PRIu64 " failed: %s; this copy is "
		 "invalid",
		 what, disk, off, hr_strerror(rc));
	snprintf(s->why, sizeof(s->why), "%s", s->dt->why);
	return rc;
}

/* DISK_SYNC BEGIN: every disk's hashes, in order. */
static int rx_begin(struct hr_disk_sync_rx *s, const Hr__DiskSync *m)
{
	uint32_t bb = m->has_block_bytes ? m->block_bytes : 0;
	uint64_t t0 = hr_now_ns(), sent = 0;
	int rc = 0;

	if (s->state != HR_DSYNC_NONE)
		return refuse(s, "a second BEGIN");
	if (bb < HR_DISK_SYNC_MIN_BLOCK || bb > HR_DISK_SYNC_MAX_BLOCK || (bb & (bb - 1)))
		return refuse(s, "block size not a power of two in 4 KiB..4 MiB");
	s->block_bytes = bb;
	s->seed = m->has_seed ? m->seed : 0;
	s->state = HR_DSYNC_RUNNING;
	uint8_t *buf = malloc(bb);
	if (!buf)
		return -ENOMEM;
	for (unsigned d = 0; d < s->dt->nr && !rc; d++) {
		struct hr_image *img = &s->dt->img[d];
		uint64_t n = nr_blocks_of(img->bytes, bb);
		uint64_t *h = malloc((n ? n : 1) * sizeof(*h));
		if (!h) {
			rc = -ENOMEM;
			break;
		}
		if ((rc = hash_image(img, bb, s->seed, h, NULL, buf, s->peer, NULL)) < 0) {
			free(h);
			rc = io_failed(s, rc, "hashing", d, 0);
			break;
		}
		for (uint64_t b = 0; b < n; b++)
			h[b] = htole64(h[b]);
		uint64_t b0 = 0;
		do {
			Hr__DiskHashes dh = HR__DISK_HASHES__INIT;
			uint64_t cnt =
			    n - b0 < HR_DISK_SYNC_FRAME_HASHES ? n - b0 : HR_DISK_SYNC_FRAME_HASHES;
			dh.disk = d;
			dh.first_block = b0;
			dh.count = (uint32_t)cnt;
			dh.has_last = 1;
			dh.last = b0 + cnt == n;
			struct iovec iov = {h + b0, cnt * 8};
			rc = rx_send(s, HR_FT_DISK_HASHES, &dh.base, &iov, cnt ? 1 : 0);
			b0 += cnt;
		} while (!rc && b0 < n);
		free(h);
		sent += n;
	}
	free(buf);
	if (!rc)
		log_info(s->vm,
			 "disk synchronisation: %" PRIu64 " block hashes (%u KiB blocks) sent in "
			 "%" PRIu64 " ms",
			 sent, bb >> 10, (hr_now_ns() - t0) / 1000000);
	return rc;
}

static int rx_blocks(struct hr_disk_sync_rx *s, const Hr__DiskBlocks *m, const uint8_t *data,
		     uint64_t data_len)
{
	uint64_t want = 0;
	uint64_t le[4];
	int rc;

	if (s->state != HR_DSYNC_RUNNING)
		return refuse(s, "DISK_BLOCKS outside BEGIN .. END");
	if (m->disk >= s->dt->nr)
		return refuse(s, "DISK_BLOCKS of a disk the backup does not have");
	struct hr_image *img = &s->dt->img[m->disk];
	XXH3_state_t *x = XXH3_createState();
	if (!x)
		return -ENOMEM;
	XXH3_64bits_reset(x);
	for (size_t i = 0; i < m->n_blocks; i++) {
		const Hr__DiskBlock *b = m->blocks[i];
		int zero = b->has_zero && b->zero;
		if (!hr_disk_target_fits(s->dt, m->disk, b->offset, b->bytes) || !b->bytes) {
			XXH3_freeState(x);
			return refuse(s, "a block outside the image");
		}
		le[0] = htole64(m->disk);
		le[1] = htole64(b->offset);
		le[2] = htole64(b->bytes);
		le[3] = htole64(zero);
		XXH3_64bits_update(x, le, sizeof(le));
		if (!zero) {
			if (b->bytes > data_len - want) {
				XXH3_freeState(x);
				return refuse(s, "DISK_BLOCKS data shorter than its blocks");
			}
			XXH3_64bits_update(x, data + want, b->bytes);
			want += b->bytes;
		}
	}
	uint64_t sum = XXH3_64bits_digest(x);
	XXH3_freeState(x);
	if (want != data_len)
		return refuse(s, "DISK_BLOCKS data length is not the sum of its blocks");
	if (sum != m->xxh3) {
		snprintf(s->why, sizeof(s->why), "disk synchronisation: DISK_BLOCKS checksum");
		return -HR_ECHECKSUM;
	}
	want = 0;
	for (size_t i = 0; i < m->n_blocks; i++) {
		const Hr__DiskBlock *b = m->blocks[i];
		if (b->has_zero && b->zero) {
			rc = hr_image_zero(img, b->offset, b->bytes);
		} else {
			rc = hr_image_pwrite(img, data + want, b->bytes, b->offset);
			want += b->bytes;
		}
		if (rc < 0)
			return io_failed(s, rc, "a block write", m->disk, b->offset);
		if (s->peer)
			hr_peer_progress(s->peer);
	}
	s->nr_blocks += m->n_blocks;
	s->data_bytes += data_len;
	return 0;
}

static int rx_end(struct hr_disk_sync_rx *s, const Hr__DiskSync *m)
{
	int rc;

	if (s->state != HR_DSYNC_RUNNING)
		return refuse(s, "END without BEGIN");
	if (!m->has_nr_blocks || !m->has_bytes || m->nr_blocks != s->nr_blocks ||
	    m->bytes != s->data_bytes)
		return refuse(s, "END's totals differ from the blocks received");
	if (s->dt->durability == HR_DISK_FLUSH)
		for (unsigned d = 0; d < s->dt->nr; d++)
			if ((rc = hr_image_flush(&s->dt->img[d])) < 0)
				return io_failed(s, rc, "flush", d, 0);
	s->state = HR_DSYNC_DONE;
	log_info(s->vm,
		 "disk synchronisation: %" PRIu64 " ranges (%" PRIu64
		 " data bytes) written; the images follow the primary's from the first epoch",
		 s->nr_blocks, s->data_bytes);
	return 0;
}

int hr_disk_sync_rx_frame(struct hr_disk_sync_rx *s, const struct hr_frame *f)
{
	if (!s->dt || !s->dt->nr)
		return refuse(s, "the backup has no disks");
	if (s->dt->invalid)
		return -EIO;
	if (f->type == HR_FT_DISK_BLOCKS)
		return rx_blocks(s, (const Hr__DiskBlocks *)f->msg, f->data, f->data_len);
	if (f->type != HR_FT_DISK_SYNC)
		return refuse(s, "not a sync frame");
	const Hr__DiskSync *m = (const Hr__DiskSync *)f->msg;
	if (f->data_len)
		return refuse(s, "DISK_SYNC with data");
	if (m->phase == HR__DISK_SYNC__PHASE__SYNC_BEGIN)
		return rx_begin(s, m);
	if (m->phase == HR__DISK_SYNC__PHASE__SYNC_END)
		return rx_end(s, m);
	return refuse(s, "unknown DISK_SYNC phase");
}

/* ---- the primary ---- */

struct tx {
	struct hr_peer *p;
	const char *vm;
	struct hr_disk_sync_stats *st;
	Hr__DiskBlock ent[HR_DISK_SYNC_FRAME_BLOCKS];
	Hr__DiskBlock *ents[HR_DISK_SYNC_FRAME_BLOCKS];
	size_t nr;
	uint8_t *data; /* HR_DISK_SYNC_FRAME_BYTES */
	size_t data_len;
	unsigned disk;
	uint64_t entries; /* sent, every frame */
	/* drained writes (hooks->drain): their blocks, for the next pass */
	const struct hr_disk_sync_hooks *hooks;
	unsigned nr_disks;
	uint32_t bb;
	uint64_t nblk[HR_MAX_DISKS];
	uint8_t *next[HR_MAX_DISKS];
	int may_drain; /* a pass over next follows */
	int marked;    /* next has a block */
	unsigned ticks;
};

/* Every few blocks: cut the write log if it holds much, and mark the
 * blocks of what was cut for the next pass. */
static void tx_drain(struct tx *t)
{
	const struct hr_disk_batch *b;

	if (!t || !t->may_drain || !t->hooks || !t->hooks->drain || ++t->ticks % 16)
		return;
	if (t->hooks->drain(t->hooks->opaque, &b) != 1)
		return;
	t->st->nr_drains++;
	for (size_t i = 0; i < b->nr; i++) {
		const struct hr_disk_rec *r = &b->recs[i];
		if ((r->flags & HR_DW_FLUSH) || !r->bytes || r->disk >= t->nr_disks)
			continue;
		for (uint64_t k = r->off / t->bb; k <= (r->off + r->bytes - 1) / t->bb; k++)
			if (k < t->nblk[r->disk]) {
				set_bit(t->next[r->disk], k);
				t->marked = 1;
			}
	}
}

static int tx_flush(struct tx *t)
{
	Hr__DiskBlocks m = HR__DISK_BLOCKS__INIT;
	uint64_t le[4], off = 0;

	if (!t->nr)
		return 0;
	XXH3_state_t *x = XXH3_createState();
	if (!x)
		return -ENOMEM;
	XXH3_64bits_reset(x);
	for (size_t i = 0; i < t->nr; i++) {
		const Hr__DiskBlock *b = &t->ent[i];
		int zero = b->has_zero && b->zero;
		le[0] = htole64(t->disk);
		le[1] = htole64(b->offset);
		le[2] = htole64(b->bytes);
		le[3] = htole64(zero);
		XXH3_64bits_update(x, le, sizeof(le));
		if (!zero) {
			XXH3_64bits_update(x, t->data + off, b->bytes);
			off += b->bytes;
		}
	}
	m.xxh3 = XXH3_64bits_digest(x);
	XXH3_freeState(x);
	m.disk = t->disk;
	m.n_blocks = t->nr;
	m.blocks = t->ents;
	struct iovec iov = {t->data, t->data_len};
	int rc = hr_peer_send(t->p, HR_FT_DISK_BLOCKS, HR_FRAME_MANDATORY, &m.base, &iov,
			      t->data_len ? 1 : 0);
	t->st->wire_bytes += frame_bytes(&m.base, t->data_len);
	t->entries += t->nr;
	t->nr = 0;
	t->data_len = 0;
	return rc;
}

/* Block [off, off + bytes) of img: a zero range when zero (known), else
 * read now - a zero range still if it reads as zero, else its data.
 * Counted as sent again when again. */
static int tx_add(struct tx *t, uint64_t off, uint64_t bytes, int zero, struct hr_image *img,
		  int again)
{
	int rc;

	if (!zero) {
		if (t->nr == HR_DISK_SYNC_FRAME_BLOCKS ||
		    t->data_len + bytes > HR_DISK_SYNC_FRAME_BYTES)
			if ((rc = tx_flush(t)) < 0)
				return rc;
		if ((rc = hr_image_pread(img, t->data + t->data_len, bytes, off)) < 0)
			return rc;
		zero = all_zero(t->data + t->data_len, bytes);
	}
	if (again)
		t->st->blocks_resent++;
	else if (zero)
		t->st->blocks_zeroed++;
	else
		t->st->blocks_data++;
	if (t->nr && zero) { /* a zero range continues the previous one */
		Hr__DiskBlock *l = &t->ent[t->nr - 1];
		if (l->has_zero && l->zero && l->offset + l->bytes == off) {
			l->bytes += bytes;
			return 0;
		}
	}
	if (t->nr == HR_DISK_SYNC_FRAME_BLOCKS && (rc = tx_flush(t)) < 0)
		return rc;
	Hr__DiskBlock *b = &t->ent[t->nr];
	hr__disk_block__init(b);
	b->offset = off;
	b->bytes = bytes;
	if (zero) {
		b->has_zero = b->zero = 1;
	} else {
		t->data_len += bytes;
		t->st->data_bytes += bytes;
	}
	t->ents[t->nr++] = b;
	return 0;
}

/* One pass: every block marked in set[d] (cleared as it goes), zero[d]
 * (NULL: unknown, read) the blocks known to read as zero. */
static int tx_pass(struct tx *t, struct hr_image *img, uint8_t *const *set, uint8_t *const *zero,
		   int again)
{
	int rc = 0;

	for (unsigned d = 0; d < t->nr_disks && !rc; d++) {
		t->disk = d;
		for (uint64_t b = 0; b < t->nblk[d] && !rc; b++) {
			if (!test_bit(set[d], b))
				continue;
			set[d][b / 8] &= (uint8_t) ~(1u << (b % 8));
			int z = zero && test_bit(zero[d], b);
			rc = tx_add(t, b * t->bb, block_len(img[d].bytes, t->bb, b), z, &img[d],
				    again);
			hr_peer_progress(t->p);
			tx_drain(t);
		}
		if (!rc)
			rc = tx_flush(t);
	}
	return rc;
}

/* The backup's DISK_HASHES, every disk's in order: blocks whose hash
 * differs from h[d] are marked in diff[d]. */
static int recv_hashes(struct hr_peer *p, unsigned nr, uint64_t *const *h, const uint64_t *nblk,
		       uint8_t *const *diff, int timeout_ms, struct tx *t, int *ctl_r,
		       struct hr_disk_sync_stats *st)
{
	unsigned d = 0;
	uint64_t next = 0;
	int rc;

	while (d < nr) {
		struct hr_frame f;
		tx_drain(t);
		if ((rc = hr_peer_recv(p, &f, timeout_ms, ctl_r)) == -EINTR) {
			if (t->hooks && t->hooks->ctl &&
			    t->hooks->ctl(t->hooks->opaque, *ctl_r) < 0)
				return -EINTR;
			*ctl_r = 0;
			continue;
		}
		if (rc < 0)
			return rc;
		if (f.type == HR_FT_HEARTBEAT) {
			hr_frame_release(&f);
			continue;
		}
		if (f.type == HR_FT_ERROR) {
			const Hr__Error *er = (const Hr__Error *)f.msg;
			log_err(p->vm, "disk synchronisation: the backup refused: %s",
				er->text ? er->text : "no reason");
			rc = er->code < 0 ? er->code : -HR_EPROTO;
			hr_frame_release(&f);
			return rc;
		}
		const Hr__DiskHashes *m = (const Hr__DiskHashes *)f.msg;
		rc = 0;
		if (f.type != HR_FT_DISK_HASHES || m->disk != d || m->first_block != next ||
		    m->count > nblk[d] - next || f.data_len != (uint64_t)m->count * 8 ||
		    (m->has_last && m->last) != (next + m->count == nblk[d]))
			rc = -HR_EPROTO;
		for (uint32_t i = 0; !rc && i < m->count; i++) {
			uint64_t v;
			memcpy(&v, f.data + i * 8, 8);
			if (le64toh(v) != h[d][next + i])
				set_bit(diff[d], next + i);
		}
		st->wire_bytes += HR_FRAME_HDR_BYTES + f.hdr_len + f.data_len;
		st->hash_bytes += HR_FRAME_HDR_BYTES + f.hdr_len + f.data_len;
		if (!rc) {
			next += m->count;
			if (next == nblk[d])
				d++, next = 0;
		} else {
			log_err(p->vm, "disk synchronisation: unexpected %s frame from the backup",
				hr_frame_type_name(f.type));
		}
		hr_frame_release(&f);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int hr_disk_sync_primary(struct hr_peer *p, const char *vm, const struct hr_disk_spec *disks,
			 unsigned nr, uint32_t bb, int timeout_ms,
			 const struct hr_disk_sync_hooks *hooks, int *ctl_r,
			 struct hr_disk_sync_stats *st)
{
	struct hr_image img[HR_MAX_DISKS];
	uint64_t *h[HR_MAX_DISKS] = {0}, nblk[HR_MAX_DISKS] = {0};
	uint8_t *zero[HR_MAX_DISKS] = {0}, *diff[HR_MAX_DISKS] = {0};
	uint64_t t0 = hr_now_ns(), seed;
	struct tx *t = NULL;
	uint8_t *buf = NULL;
	unsigned opened = 0;
	char why[160];
	int rc = 0;

	memset(st, 0, sizeof(*st));
	*ctl_r = 0;
	if (nr > HR_MAX_DISKS || bb < HR_DISK_SYNC_MIN_BLOCK || bb > HR_DISK_SYNC_MAX_BLOCK ||
	    (bb & (bb - 1)))
		return -EINVAL;
	/* a seed the guest cannot know in advance: it cannot make two blocks
	 * collide on purpose */
	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = t0 ^ (uint64_t)(uintptr_t)&seed;

	Hr__DiskSync begin = HR__DISK_SYNC__INIT;
	begin.phase = HR__DISK_SYNC__PHASE__SYNC_BEGIN;
	begin.has_block_bytes = begin.has_seed = 1;
	begin.block_bytes = bb;
	begin.seed = seed;
	if ((rc = hr_peer_send(p, HR_FT_DISK_SYNC, HR_FRAME_MANDATORY, &begin.base, NULL, 0)) < 0)
		return rc;
	st->wire_bytes += frame_bytes(&begin.base, 0);

	/* our hashes while the backup computes its own */
	buf = malloc(bb);
	t = calloc(1, sizeof(*t));
	if (!buf || !t || !(t->data = malloc(HR_DISK_SYNC_FRAME_BYTES))) {
		rc = -ENOMEM;
		goto out;
	}
	t->p = p;
	t->vm = vm;
	t->st = st;
	t->hooks = hooks;
	t->nr_disks = nr;
	t->bb = bb;
	t->may_drain = 1; /* the passes below follow */
	for (unsigned d = 0; d < nr; d++) {
		if ((rc = hr_image_open(&img[d], disks[d].path, 1, why, sizeof(why))) < 0) {
			log_err(vm, "disk synchronisation: disk %u (%s): %s", d, disks[d].path,
				why[0] ? why : hr_strerror(rc));
			goto out;
		}
		opened = d + 1;
		nblk[d] = nr_blocks_of(img[d].bytes, bb);
		size_t bits = (nblk[d] + 8) / 8;
		h[d] = malloc((nblk[d] + 1) * sizeof(uint64_t));
		zero[d] = malloc(bits);
		diff[d] = calloc(1, bits);
		t->next[d] = calloc(1, bits);
		t->nblk[d] = nblk[d];
		if (!h[d] || !zero[d] || !diff[d] || !t->next[d]) {
			rc = -ENOMEM;
			goto out;
		}
		if ((rc = hash_image(&img[d], bb, seed, h[d], zero[d], buf, p, t)) < 0) {
			log_err(vm, "disk synchronisation: reading disk %u: %s", d,
				hr_strerror(rc));
			goto out;
		}
		st->nr_blocks += nblk[d];
	}
	st->local_hash_ms = (hr_now_ns() - t0) / 1000000;
	if ((rc = recv_hashes(p, nr, h, nblk, diff, timeout_ms, t, ctl_r, st)) < 0)
		goto out;

	/* the blocks that differ, then those the guest wrote meanwhile (the
	 * drained part of the log; the last pass drains nothing) */
	rc = tx_pass(t, img, diff, zero, 0);
	for (unsigned pass = 1; !rc && t->marked; pass++) {
		t->marked = 0;
		t->may_drain = pass < HR_DISK_SYNC_PASSES;
		for (unsigned d = 0; d < nr; d++) { /* next becomes this pass's set */
			uint8_t *x = diff[d];
			diff[d] = t->next[d];
			t->next[d] = x;
		}
		rc = tx_pass(t, img, diff, NULL, 1);
	}
	if (rc < 0)
		goto out;
	Hr__DiskSync end = HR__DISK_SYNC__INIT;
	end.phase = HR__DISK_SYNC__PHASE__SYNC_END;
	end.has_nr_blocks = end.has_bytes = 1;
	end.nr_blocks = t->entries; /* zero ranges merged: the backup counts the same */
	end.bytes = st->data_bytes;
	if ((rc = hr_peer_send(p, HR_FT_DISK_SYNC, HR_FRAME_MANDATORY, &end.base, NULL, 0)) < 0)
		goto out;
	st->wire_bytes += frame_bytes(&end.base, 0);
	log_info(vm,
		 "disk synchronisation: %" PRIu64 " of %" PRIu64 " blocks differed (%" PRIu64
		 " sent with data, %" PRIu64 " zeroed), %" PRIu64
		 " written meanwhile sent again (%" PRIu64 " drains of the write log), %" PRIu64
		 " bytes on the wire in %" PRIu64 " ms",
		 st->blocks_data + st->blocks_zeroed, st->nr_blocks, st->blocks_data,
		 st->blocks_zeroed, st->blocks_resent, st->nr_drains, st->wire_bytes,
		 (hr_now_ns() - t0) / 1000000);
out:
	for (unsigned d = 0; d < opened; d++)
		hr_image_close(&img[d]);
	for (unsigned d = 0; d < HR_MAX_DISKS; d++) {
		free(h[d]);
		free(zero[d]);
		free(diff[d]);
	}
	if (t) {
		free(t->data);
		for (unsigned d = 0; d < HR_MAX_DISKS; d++)
			free(t->next[d]);
	}
	free(t);
	free(buf);
	st->ms = (hr_now_ns() - t0) / 1000000;
	return rc;
}
