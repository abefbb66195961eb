/* envelope.c - the engine envelope around each epoch's state (envelope.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/unaligned.h"
#include "common/err.h"
#include "core/envelope.h"

static const uint8_t zeros[8];

int hr_envelope_build(struct hr_envelope_out *env, const struct hr_out_held *held, const void *blob,
		      size_t blob_bytes)
{
	size_t head_bytes = HR_ENVELOPE_HDR_BYTES + held->nr_chans * 8 + held->nr_records * 16;
	size_t pad = (8 - held->bytes % 8) % 8;

	memset(env, 0, sizeof(*env));
	env->head = malloc(head_bytes);
	env->iov = malloc((held->nr_records + 3) * sizeof(*env->iov));
	if (!env->head || !env->iov) {
		hr_envelope_out_free(env);
		return -ENOMEM;
	}
	uint8_t *p = env->head;
	hr_put_le32(p, HR_ENVELOPE_MAGIC);
	hr_put_le32(p + 4, HR_ENVELOPE_VERSION);
	hr_put_le32(p + 8, held->nr_chans);
	hr_put_le32(p + 12, (uint32_t)held->nr_records);
	hr_put_le64(p + 16, held->bytes);
	hr_put_le64(p + 24, blob_bytes);
	p += HR_ENVELOPE_HDR_BYTES;
	for (unsigned c = 0; c < held->nr_chans; c++, p += 8)
		hr_put_le64(p, held->next_offsets[c]);
	for (size_t i = 0; i < held->nr_records; i++, p += 16) {
		hr_put_le32(p, held->records[i].chan);
		hr_put_le32(p + 4, held->records[i].len);
		hr_put_le64(p + 8, held->records[i].offset);
	}
	int n = 0;
	env->iov[n++] = (struct iovec){env->head, head_bytes};
	for (size_t i = 0; i < held->nr_records; i++)
		if (held->iov[i].iov_len)
			env->iov[n++] = held->iov[i];
	if (pad)
		env->iov[n++] = (struct iovec){(void *)zeros, pad};
	if (blob_bytes)
		env->iov[n++] = (struct iovec){(void *)blob, blob_bytes};
	env->nr_iov = n;
	env->bytes = head_bytes + held->bytes + pad + blob_bytes;
	return 0;
}

void hr_envelope_out_free(struct hr_envelope_out *env)
{
	free(env->head);
	free(env->iov);
	memset(env, 0, sizeof(*env));
}

int hr_envelope_pack(const struct hr_out_held *held, const void *blob, size_t blob_bytes,
		     uint8_t **buf_r, size_t *len_r)
{
	struct hr_envelope_out env;
	int rc = hr_envelope_build(&env, held, blob, blob_bytes);
	if (rc < 0)
		return rc;
	uint8_t *buf = malloc(env.bytes ? env.bytes : 1), *p = buf;
	if (buf)
		for (int i = 0; i < env.nr_iov; i++) {
			memcpy(p, env.iov[i].iov_base, env.iov[i].iov_len);
			p += env.iov[i].iov_len;
		}
	*buf_r = buf;
	*len_r = env.bytes;
	hr_envelope_out_free(&env);
	return buf ? 0 : -ENOMEM;
}

int hr_envelope_parse(struct hr_envelope *env, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	memset(env, 0, sizeof(*env));
	if (!buf || len < HR_ENVELOPE_HDR_BYTES || hr_get_le32(p) != HR_ENVELOPE_MAGIC ||
	    hr_get_le32(p + 4) != HR_ENVELOPE_VERSION)
		return -HR_EBADSTATE;
	uint32_t nr_chans = hr_get_le32(p + 8), nr_records = hr_get_le32(p + 12);
	uint64_t data_bytes = hr_get_le64(p + 16), blob_bytes = hr_get_le64(p + 24);
	if (nr_chans > HR_MAX_CHANNELS)
		return -HR_EBADSTATE;
	uint64_t need = HR_ENVELOPE_HDR_BYTES + (uint64_t)nr_chans * 8 + (uint64_t)nr_records * 16;
	if (need > len || data_bytes > len - need)
		return -HR_EBADSTATE;
	uint64_t pad = (8 - data_bytes % 8) % 8;
	if (need + data_bytes + pad > len || blob_bytes != len - need - data_bytes - pad)
		return -HR_EBADSTATE;
	p += HR_ENVELOPE_HDR_BYTES;
	env->nr_chans = nr_chans;
	for (unsigned c = 0; c < nr_chans; c++, p += 8)
		env->next_offsets[c] = hr_get_le64(p);
	env->table = p;
	env->nr_records = nr_records;
	/* every record names a channel, and together they fill data exactly */
	uint64_t sum = 0;
	for (size_t i = 0; i < nr_records; i++) {
		const uint8_t *r = p + i * 16;
		uint32_t chan = hr_get_le32(r), rlen = hr_get_le32(r + 4);
		uint64_t off = hr_get_le64(r + 8);
		if (chan >= nr_chans || off + rlen < off || off + rlen > env->next_offsets[chan])
			return -HR_EBADSTATE;
		sum += rlen;
	}
	if (sum != data_bytes)
		return -HR_EBADSTATE;
	env->data = p + (size_t)nr_records * 16;
	env->blob = env->data + data_bytes + pad;
	env->blob_bytes = blob_bytes;
	return 0;
}

int hr_envelope_next(const struct hr_envelope *env, struct hr_envelope_pos *pos,
		     struct hr_out_record *rec_r, const uint8_t **data_r)
{
	if (pos->i >= env->nr_records)
		return 0;
	const uint8_t *r = env->table + pos->i * 16;
	rec_r->chan = hr_get_le32(r);
	rec_r->len = hr_get_le32(r + 4);
	rec_r->offset = hr_get_le64(r + 8);
	*data_r = env->data + pos->data_off;
	pos->i++;
	pos->data_off += rec_r->len;
	return 1;
}
