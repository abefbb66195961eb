/* t-disk-files.c - a backup's own images (src/core/disk-files.c): made
 * sparse with the announced sizes, 0600 in a 0700 directory; reused when
 * the size matches; refused, naming the path and both sizes, when not. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "core/disk-files.h"
#include "tap.h"

int main(void)
{
	char tmp[] = "/tmp/t-disk-files.XXXXXX", dir[128], why[512] = "";
	struct hr_disk_files df;
	struct stat st;

	plan(10);
	if (!mkdtemp(tmp))
		return 1;
	snprintf(dir, sizeof(dir), "%s/disks/vm1", tmp);
	uint64_t sizes[2] = {16ull << 20, 1ull << 30};
	int rc = hr_disk_files_prepare(&df, "vm1", dir, sizes, 2, why, sizeof(why));
	ok(rc == 0 && df.nr == 2, "two images made in a new directory (%s)", why);
	rc = stat(dir, &st);
	ok(rc == 0 && (st.st_mode & 07777) == 0700, "the directory is 0700 (%o)",
	   st.st_mode & 07777);
	ok(!strcmp(df.spec[0].path, df.path[0]) && strstr(df.path[1], "/disks/vm1/disk1.img"),
	   "specs name DIR/disk<i>.img: %s", df.path[1]);
	rc = stat(df.path[1], &st);
	ok(rc == 0 && (uint64_t)st.st_size == sizes[1] && (st.st_mode & 07777) == 0600,
	   "disk1.img: %lld bytes, mode %o", (long long)st.st_size, st.st_mode & 07777);
	ok(st.st_blocks * 512 < (1 << 20), "... sparse (%lld bytes allocated)",
	   (long long)st.st_blocks * 512);

	rc = hr_disk_files_prepare(&df, "vm1", dir, sizes, 2, why, sizeof(why));
	ok(rc == 0 && df.nr == 2, "existing images of the right size are used again");

	uint64_t other[2] = {8ull << 20, 1ull << 30};
	why[0] = '\0';
	rc = hr_disk_files_prepare(&df, "vm1", dir, other, 2, why, sizeof(why));
	ok(rc == -HR_ESHAPE && strstr(why, "/disks/vm1/disk0.img is 16777216 bytes") &&
	       strstr(why, "the primary's disk 8388608 bytes"),
	   "an existing image of another size: -HR_ESHAPE, %s", why);
	char img0[160];
	snprintf(img0, sizeof(img0), "%s/disk0.img", dir);
	rc = stat(img0, &st);
	ok(rc == 0 && st.st_size == (16 << 20),
	   "the mismatched image is left as it was (%lld bytes)", (long long)st.st_size);

	uint64_t odd[1] = {1000};
	why[0] = '\0';
	rc = hr_disk_files_prepare(&df, "vm1", dir, odd, 1, why, sizeof(why));
	ok(rc == -HR_ESHAPE && strstr(why, "not a positive multiple of 512"),
	   "an unaligned announced size is refused before any file is made: %s", why);
	uint64_t five[5] = {1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20};
	rc = hr_disk_files_prepare(&df, "vm1", dir, five, 5, why, sizeof(why));
	ok(rc == -HR_ESHAPE, "more than HR_MAX_DISKS disks refused: %s", why);

	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		diag("could not remove %s", tmp);
	return tap_done();
}
