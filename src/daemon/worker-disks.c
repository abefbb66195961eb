/*
 * worker-disks.c - a worker's disk images: which images a backup gives its
 * engine, and each image's path and size for `status`.
 *
 * A backup uses this host's own definition of the VM when the daemon has
 * one (a VM started here with --disk: the old primary taking a copy back,
 * a failback); otherwise DISK-DIR/VM/disk<i>.img, which the engine creates
 * sparse with the sizes the primary's HELLO announces
 * (cfg.backup_disk_dir, core/disk-files.h).  No path the peer names is
 * ever written: the VM name is checked (hr_vm_name_ok) before it gets here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/worker-internal.h"

void hr_w_disks_setup(struct worker *w)
{
	struct hr_worker_args *a = w->a;
	const struct hr_disk_spec *own = NULL;
	unsigned nr = hr_dvm_own_disks(a->name, &own);

	w->disk_dir[0] = '\0';
	if (nr) {
		a->vm.disks = own;
		a->vm.nr_disks = nr;
		for (unsigned i = 0; i < nr; i++)
			log_info(a->name,
				 "backup: disk %u: %s (this host's own definition of the VM)", i,
				 own[i].path);
		return;
	}
	snprintf(w->disk_dir, sizeof(w->disk_dir), "%s/%s", hr_dopts.disk_dir, a->name);
	log_debug(a->name, "backup: the primary's disks, if any, go to %s/disk<N>.img",
		  w->disk_dir);
}

/* path's size in bytes (a block device's too); 0 if it cannot be read */
static uint64_t image_bytes(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return 0;
	if (!S_ISBLK(st.st_mode))
		return (uint64_t)st.st_size;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	off_t end = lseek(fd, 0, SEEK_END);
	close(fd);
	return end > 0 ? (uint64_t)end : 0;
}

void hr_w_disks_status(struct worker *w, struct hr_sbuf *sb)
{
	const struct hr_worker_args *a = w->a;
	char key[32], path[sizeof(w->disk_dir) + 32];
	unsigned n = 0;

	for (unsigned i = 0; i < HR_MAX_DISKS; i++) {
		if (a->vm.nr_disks) {
			if (i >= a->vm.nr_disks)
				break;
			snprintf(path, sizeof(path), "%s", a->vm.disks[i].path);
		} else if (w->disk_dir[0] && w->state != HR_RS_CONNECTING) {
			/* the engine's images, once the handshake made them */
			snprintf(path, sizeof(path), "%s/disk%u.img", w->disk_dir, i);
			if (access(path, F_OK) < 0)
				break;
		} else {
			break;
		}
		snprintf(key, sizeof(key), "disk%u", i);
		hr_kv_add(sb, key, path);
		snprintf(key, sizeof(key), "disk%u_bytes", i);
		hr_kv_addu(sb, key, image_bytes(path));
		n++;
	}
	if (n)
		hr_kv_addu(sb, "nr_disks", n);
}
