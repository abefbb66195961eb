/*
 * image.c - raw disk images (image.h).
 */
#include "disk/image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int hr_image_open(struct hr_image *img, const char *path, int readonly, char *why, size_t why_size)
{
	struct stat st;
	memset(img, 0, sizeof(*img));
	img->fd = -1;
	snprintf(img->path, sizeof(img->path), "%s", path);
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(why, why_size, "disk %s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(why, why_size, "disk %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	uint64_t bytes = 0;
	if (S_ISREG(st.st_mode)) {
		bytes = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
			int e = errno;
			snprintf(why, why_size, "disk %s: BLKGETSIZE64: %s", path, strerror(e));
			close(fd);
			return -e;
		}
		img->is_blockdev = 1;
	} else {
		snprintf(why, why_size, "disk %s: neither a regular file nor a block device", path);
		close(fd);
		return -EINVAL;
	}
	if (bytes == 0 || bytes % HR_DISK_SECTOR_BYTES) {
		snprintf(why, why_size,
			 "disk %s: %llu bytes is not a positive multiple of 512 (a raw image)",
			 path, (unsigned long long)bytes);
		close(fd);
		return -EINVAL;
	}
	img->fd = fd;
	img->bytes = bytes;
	img->readonly = readonly;
	return 0;
}

void hr_image_close(struct hr_image *img)
{
	if (img->fd >= 0)
		close(img->fd);
	img->fd = -1;
}

static int in_range(const struct hr_image *img, uint64_t off, uint64_t len)
{
	return off <= img->bytes && len <= img->bytes - off;
}

int hr_image_pread(struct hr_image *img, void *buf, size_t len, uint64_t off)
{
	if (!in_range(img, off, len))
		return -EINVAL;
	uint8_t *p = buf;
	while (len) {
		ssize_t r = pread(img->fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* shrunk under us */
		p += r, len -= (size_t)r, off += (uint64_t)r;
	}
	return 0;
}

int hr_image_pwrite(struct hr_image *img, const void *buf, size_t len, uint64_t off)
{
	if (img->readonly)
		return -EROFS;
	if (!in_range(img, off, len))
		return -EINVAL;
	const uint8_t *p = buf;
	while (len) {
		ssize_t r = pwrite(img->fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r, len -= (size_t)r, off += (uint64_t)r;
	}
	return 0;
}

int hr_image_zero(struct hr_image *img, uint64_t off, uint64_t len)
{
	if (img->readonly)
		return -EROFS;
	if (!in_range(img, off, len))
		return -EINVAL;
	if (!len)
		return 0;
	if (img->is_blockdev) {
		uint64_t range[2] = {off, len};
		if (ioctl(img->fd, BLKZEROOUT, range) == 0)
			return 0;
	} else if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			     (off_t)len) == 0) {
		return 0;
	}
	static const uint8_t zeros[65536];
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int rc = hr_image_pwrite(img, zeros, n, off);
		if (rc)
			return rc;
		off += n, len -= n;
	}
	return 0;
}

int hr_image_flush(struct hr_image *img)
{
	while (fdatasync(img->fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int hr_image_next_data(struct hr_image *img, uint64_t off, uint64_t *start_r, uint64_t *end_r)
{
	if (off >= img->bytes)
		return 0;
	if (img->is_blockdev) {
		*start_r = off;
		*end_r = img->bytes;
		return 1;
	}
	off_t s = lseek(img->fd, (off_t)off, SEEK_DATA);
	if (s < 0)
		return errno == ENXIO ? 0 : -errno;
	off_t e = lseek(img->fd, s, SEEK_HOLE);
	if (e < 0)
		return -errno;
	*start_r = (uint64_t)s;
	*end_r = (uint64_t)e > img->bytes ? img->bytes : (uint64_t)e;
	return *start_r < *end_r;
}
