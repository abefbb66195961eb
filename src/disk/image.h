/*
 * image.h - a raw disk image: a regular file (sparse-aware) or a block
 * device, read and written synchronously at byte offsets.
 *
 * This is the one place that touches a disk image's bytes outside a
 * running device: the backup applies committed epochs' writes through it
 * (src/core), synchronisation reads and compares blocks through it, and a
 * device (KVM's virtio-blk) opens its image with it before handing the fd
 * to its asynchronous I/O (src/disk/aio.h).  See docs/design.md, "Disks".
 *
 * Every function returns 0 or a negative errno; short reads and writes are
 * retried inside, so 0 means every byte moved.  A read past the end of the
 * image is -EINVAL (a device checks sector ranges first).
 */
#ifndef HR_DISK_IMAGE_H
#define HR_DISK_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define HR_DISK_SECTOR_BYTES 512u

struct hr_image {
	int fd;
	uint64_t bytes; /* size; a multiple of HR_DISK_SECTOR_BYTES */
	int readonly;
	int is_blockdev; /* a block device (no holes; discard with BLKDISCARD) */
	char path[256];
};

/* Open path (O_RDWR, or O_RDONLY when readonly; O_CLOEXEC).  Refuses,
 * with why filled, a path that is neither a regular file nor a block
 * device, and a size that is not a multiple of 512 bytes. */
int hr_image_open(struct hr_image *img, const char *path, int readonly, char *why, size_t why_size);
void hr_image_close(struct hr_image *img);

int hr_image_pread(struct hr_image *img, void *buf, size_t len, uint64_t off);
int hr_image_pwrite(struct hr_image *img, const void *buf, size_t len, uint64_t off);

/* len bytes at off read as zero afterwards (a hole where the file system
 * can punch one, written zeros otherwise). */
int hr_image_zero(struct hr_image *img, uint64_t off, uint64_t len);

/* fdatasync: what was written is on stable storage. */
int hr_image_flush(struct hr_image *img);

/*
 * The next range at or after off that may hold data (SEEK_DATA/SEEK_HOLE
 * on a regular file; the whole rest of a block device).  Returns 1 with
 * [*start_r, *end_r) set, 0 when only holes remain, or -errno.
 */
int hr_image_next_data(struct hr_image *img, uint64_t off, uint64_t *start_r, uint64_t *end_r);

#endif
