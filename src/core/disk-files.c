/* disk-files.c - a backup's own images of a primary's disks (disk-files.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "core/disk-files.h"
#include "disk/image.h"

/* dir and its missing parents, each new one mode 0700 */
static int make_dir(const char *dir)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1;; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		*s = c;
		if (!c)
			return 0;
	}
}

/* A new sparse image of bytes at path: 0, -EEXIST, or -errno. */
static int create_image(const char *path, uint64_t bytes)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = ftruncate(fd, (off_t)bytes) < 0 ? -errno : 0;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc)
		unlink(path);
	return rc;
}

int hr_disk_files_prepare(struct hr_disk_files *df, const char *vm, const char *dir,
			  const uint64_t *bytes, unsigned nr, char *why, size_t why_size)
{
	int rc;

	memset(df, 0, sizeof(*df));
	if (nr > HR_MAX_DISKS) {
		snprintf(why, why_size, "%u disks announced, at most %d", nr, HR_MAX_DISKS);
		return -HR_ESHAPE;
	}
	if (nr && (rc = make_dir(dir)) < 0) {
		snprintf(why, why_size, "disk directory %s: %s", dir, hr_strerror(rc));
		return rc;
	}
	for (unsigned i = 0; i < nr; i++) {
		char *path = df->path[i];
		if (snprintf(path, sizeof(df->path[i]), "%s/disk%u.img", dir, i) >=
		    (int)sizeof(df->path[i])) {
			snprintf(why, why_size, "disk directory %s: name too long", dir);
			return -ENAMETOOLONG;
		}
		if (!bytes[i] || bytes[i] % HR_DISK_SECTOR_BYTES) {
			snprintf(why, why_size,
				 "the primary's disk %u is %" PRIu64
				 " bytes: not a positive multiple of %u",
				 i, bytes[i], HR_DISK_SECTOR_BYTES);
			return -HR_ESHAPE;
		}
		rc = create_image(path, bytes[i]);
		if (!rc) {
			log_info(vm, "backup: disk %u: created %s (%" PRIu64 " bytes, sparse)", i,
				 path, bytes[i]);
		} else if (rc == -EEXIST) {
			struct hr_image img;
			char iwhy[256] = "";
			if ((rc = hr_image_open(&img, path, 1, iwhy, sizeof(iwhy))) < 0) {
				snprintf(why, why_size, "disk %u image %s: %s", i, path,
					 iwhy[0] ? iwhy : hr_strerror(rc));
				return rc;
			}
			uint64_t have = img.bytes;
			hr_image_close(&img);
			if (have != bytes[i]) {
				snprintf(why, why_size,
					 "disk %u image %s is %" PRIu64
					 " bytes, the primary's disk %" PRIu64 " bytes",
					 i, path, have, bytes[i]);
				return -HR_ESHAPE;
			}
			log_info(vm, "backup: disk %u: using %s (%" PRIu64 " bytes)", i, path,
				 have);
		} else {
			snprintf(why, why_size, "disk %u image %s: cannot create it: %s", i, path,
				 hr_strerror(rc));
			return rc;
		}
		df->spec[i].path = path;
	}
	df->nr = nr;
	return 0;
}
