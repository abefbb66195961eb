/* t-image.c - raw disk images (src/disk/image.c): ranges, holes, zeroing, refusals. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/image.h"
#include "tap.h"

int main(void)
{
	char path[] = "/tmp/t-image.XXXXXX", why[256] = "";
	struct hr_image img;
	uint8_t buf[8192], back[8192];
	uint64_t s, e;
	plan(14);

	int fd = mkstemp(path);
	ok(fd >= 0 && ftruncate(fd, 1000) == 0, "a 1000-byte file");
	ok(hr_image_open(&img, path, 0, why, sizeof(why)) == -EINVAL && strstr(why, "512"),
	   "refused: not a multiple of 512 (%s)", why);
	ok(ftruncate(fd, 4 << 20) == 0 && hr_image_open(&img, path, 0, why, sizeof(why)) == 0 &&
	       img.bytes == 4 << 20 && !img.is_blockdev,
	   "a sparse 4 MiB image opens");
	ok(hr_image_next_data(&img, 0, &s, &e) == 0, "all of it is a hole");
	memset(buf, 0xa5, sizeof(buf));
	ok(hr_image_pwrite(&img, buf, sizeof(buf), 1 << 20) == 0 &&
	       hr_image_pread(&img, back, sizeof(back), 1 << 20) == 0 &&
	       !memcmp(buf, back, sizeof(buf)),
	   "a write reads back");
	int r = hr_image_next_data(&img, 0, &s, &e);
	ok(r == 1 && s <= 1 << 20 && e >= (1 << 20) + 8192 && e <= 2 << 20,
	   "the data range covers it (%llu..%llu)", (unsigned long long)s, (unsigned long long)e);
	ok(hr_image_pwrite(&img, buf, 512, (4 << 20) - 256) == -EINVAL &&
	       hr_image_pread(&img, back, 1, 4 << 20) == -EINVAL,
	   "past the end: -EINVAL");
	ok(hr_image_zero(&img, 1 << 20, 8192) == 0 &&
	       hr_image_pread(&img, back, sizeof(back), 1 << 20) == 0 && back[0] == 0 &&
	       !memcmp(back, back + 1, sizeof(back) - 1),
	   "zeroed range reads as zero");
	ok(hr_image_next_data(&img, 0, &s, &e) == 0, "and is a hole again");
	ok(hr_image_flush(&img) == 0, "flush");
	hr_image_close(&img);
	ok(hr_image_open(&img, path, 1, why, sizeof(why)) == 0 &&
	       hr_image_pwrite(&img, buf, 512, 0) == -EROFS &&
	       hr_image_zero(&img, 0, 512) == -EROFS,
	   "read-only: writes refused with -EROFS");
	hr_image_close(&img);
	ok(hr_image_open(&img, "/tmp", 0, why, sizeof(why)) < 0 && strstr(why, "/tmp"),
	   "a directory is refused (%s)", why);
	ok(hr_image_open(&img, "/nonexistent/disk.img", 0, why, sizeof(why)) == -ENOENT,
	   "a missing file: -ENOENT (%s)", why);
	ok(hr_image_open(&img, "/dev/null", 0, why, sizeof(why)) == -EINVAL,
	   "a character device is refused (%s)", why);
	close(fd);
	unlink(path);
	return tap_done();
}
