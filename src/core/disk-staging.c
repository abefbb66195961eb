/* disk-staging.c - the backup's images and the apply of an epoch's writes. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "core/disk-staging.h"

int hr_disk_durability_parse(const char *s, enum hr_disk_durability *d_r)
{
	if (!s || !*s || !strcmp(s, "ack"))
		*d_r = HR_DISK_ACK;
	else if (!strcmp(s, "flush"))
		*d_r = HR_DISK_FLUSH;
	else
		return -EINVAL;
	return 0;
}

int hr_disk_target_open(struct hr_disk_target *t, const char *vm, const struct hr_disk_spec *disks,
			unsigned nr, enum hr_disk_durability durability)
{
	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->durability = durability;
	for (unsigned i = 0; i < HR_MAX_DISKS; i++)
		t->img[i].fd = -1;
	if (nr > HR_MAX_DISKS)
		return -EINVAL;
	for (unsigned i = 0; i < nr; i++) {
		char why[160] = "";
		int rc = hr_image_open(&t->img[i], disks[i].path, 0, why, sizeof(why));
		if (rc < 0) {
			snprintf(t->why, sizeof(t->why), "disk %u (%s): %s", i, disks[i].path,
				 why[0] ? why : hr_strerror(rc));
			hr_disk_target_close(t);
			return rc;
		}
		t->nr = i + 1;
	}
	return 0;
}

void hr_disk_target_close(struct hr_disk_target *t)
{
	for (unsigned i = 0; i < t->nr; i++)
		hr_image_close(&t->img[i]);
	t->nr = 0;
}

int hr_disk_target_fits(const struct hr_disk_target *t, unsigned disk, uint64_t off, uint64_t bytes)
{
	return disk < t->nr && off <= t->img[disk].bytes && bytes <= t->img[disk].bytes - off;
}

static int failed(struct hr_disk_target *t, int rc, const char *what, unsigned disk, uint64_t off,
		  uint64_t bytes)
{
	t->invalid = 1;
	snprintf(t->why, sizeof(t->why),
		 "applying a committed epoch's disk write failed (%s of disk %u (%s), %" PRIu64
		 " bytes at %" PRIu64 "): %s; this copy is invalid",
		 what, disk, t->img[disk].path, bytes, off, hr_strerror(rc));
	log_err(t->vm, "%s", t->why);
	return rc;
}

int hr_disk_apply(struct hr_disk_target *t, const struct hr_disk_batch *b)
{
	int flush = 0, rc;

	if (t->invalid)
		return -EIO;
	for (size_t i = 0; i < b->nr; i++) {
		const struct hr_disk_rec *r = &b->recs[i];
		const char *what = "write";
		if (r->flags & HR_DW_FLUSH) {
			flush = 1;
			continue;
		}
		if (t->fail_after && t->nr_applied + 1 == t->fail_after) {
			rc = -EIO; /* tests: a failing disk */
		} else if (r->flags & HR_DW_ZEROES) {
			what = "zeroing";
			rc = hr_image_zero(&t->img[r->disk], r->off, r->bytes);
		} else {
			rc = hr_image_pwrite(&t->img[r->disk], hr_disk_rec_data(b, r), r->bytes,
					     r->off);
		}
		if (rc < 0)
			return failed(t, rc, what, r->disk, r->off, r->bytes);
		t->nr_applied++;
	}
	if (flush && t->durability == HR_DISK_FLUSH) {
		/* every image: earlier epochs' writes may still be only cached */
		for (unsigned d = 0; d < t->nr; d++) {
			if ((rc = hr_image_flush(&t->img[d])) < 0)
				return failed(t, rc, "flush", d, 0, 0);
			t->nr_flushes++;
		}
	}
	return 0;
}
