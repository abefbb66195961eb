/*
 * unaligned.h - little- and big-endian loads and stores at any address.
 *
 * Dereferencing a uint16_t/uint32_t/uint64_t pointer that is not aligned to
 * its size is undefined behaviour in C (UBSan: "misaligned address") even
 * where the CPU tolerates it.  Guest memory (the BIOS data area has 16-bit
 * fields at odd addresses), guest images and state blobs handed in by a
 * caller at any offset are read and written through these helpers only:
 * memcpy of the bytes, then a conversion from/to little-endian.
 */
#ifndef HR_UNALIGNED_H
#define HR_UNALIGNED_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t hr_get_le16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t hr_get_le32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t hr_get_le64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void hr_put_le16(void *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void hr_put_le32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void hr_put_le64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

/* big-endian (the frame header is in network order) */
static inline uint16_t hr_get_be16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return be16toh(v);
}
static inline uint32_t hr_get_be32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return be32toh(v);
}
static inline void hr_put_be16(void *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, 2);
}
static inline void hr_put_be32(void *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

#endif
