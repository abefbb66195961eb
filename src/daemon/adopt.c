/*
 * adopt.c - workers outlive their daemon.  Each worker listens on
 * STATE-DIR/VM.worker (a Unix socket in the root-only state directory); a
 * daemon that starts later connects to every such socket it finds and the
 * worker moves its status channel there, beginning with one `event=adopt`
 * line that says who it is and where it stands (worker.c).  So restarting
 * or stopping hareplicated never stops a guest: `hareplicate stop VM` does.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/daemon.h"

#define SUFFIX ".worker"

static int adopt_addr(struct sockaddr_un *sa, const char *vm)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n =
	    snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s" SUFFIX, hr_dopts.state_dir, vm);
	return n > 0 && (size_t)n < sizeof(sa->sun_path) ? 0 : -ENAMETOOLONG;
}

int hr_adopt_listen(const char *vm)
{
	struct sockaddr_un sa;
	int rc = adopt_addr(&sa, vm);
	if (rc < 0)
		return rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path); /* a dead worker's; the daemon allows one VM per name */
	mode_t old = umask(077);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 2) ? -errno : 0;
	umask(old);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

void hr_adopt_unlink(const char *vm)
{
	struct sockaddr_un sa;
	if (!adopt_addr(&sa, vm))
		unlink(sa.sun_path);
}

void hr_vm_state_remove(const char *vm)
{
	static const char *const suffixes[] = {".epochs", ".epochs.1"};
	char path[4096];

	for (unsigned i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s%s", hr_dopts.state_dir, vm, suffixes[i]);
		if (unlink(path) < 0 && errno != ENOENT)
			log_warnx(vm, "cannot remove %s: %s", path, strerror(errno));
	}
	hr_adopt_unlink(vm);
}

unsigned hr_vms_adopt_all(void)
{
	DIR *d = opendir(hr_dopts.state_dir);
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char vm[HR_VM_NAME_MAX + 1];
		struct sockaddr_un sa;

		if (len <= strlen(SUFFIX) || strcmp(de->d_name + len - strlen(SUFFIX), SUFFIX))
			continue;
		snprintf(vm, sizeof(vm), "%.*s", (int)(len - strlen(SUFFIX)), de->d_name);
		if (!hr_vm_name_ok(vm) || adopt_addr(&sa, vm) < 0)
			continue;
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			log_info(vm, "no worker answers at %s (%s): removed", sa.sun_path,
				 strerror(errno));
			close(fd);
			unlink(sa.sun_path);
			continue;
		}
		if (hr_vms_adopt(vm, fd) == 0)
			n++;
	}
	closedir(d);
	return n;
}
