/*
 * tap.c - the host end of a virtio-net device: a TAP interface opened with
 * /dev/net/tun, IFF_TAP | IFF_NO_PI (plain Ethernet frames, no vnet
 * header: the device offers no offloads, so it has nothing to pass).  The
 * interface is the administrator's (e.g. `ip tuntap add dev tap0 mode tap`,
 * then in a bridge); opening a name that does not exist creates a
 * non-persistent one, which needs CAP_NET_ADMIN as well.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm-internal.h"

int kvm_tap_open(struct kvm_vm *vm, const char *name, int *fd_r)
{
	struct ifreq ifr;

	*fd_r = -1;
	if (!*name || strlen(name) >= IFNAMSIZ) {
		kvm_set_error(vm, "tap=%s: want an interface name of 1..%d characters", name,
			      IFNAMSIZ - 1);
		return -EINVAL;
	}
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int rc = -errno;
		kvm_set_error(vm, "tap=%s: cannot open /dev/net/tun: %s", name, strerror(errno));
		return rc;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int rc = -errno;
		kvm_set_error(vm, "tap=%s: TUNSETIFF: %s", name, strerror(errno));
		close(fd);
		return rc;
	}
	*fd_r = fd;
	return 0;
}

/* Write one frame; -EAGAIN when the interface's queue is full (dropped). */
int kvm_tap_write(int fd, const void *frame, size_t len)
{
	ssize_t n;
	do
		n = write(fd, frame, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Read one frame: its length, 0 if none is waiting, or -errno. */
ssize_t kvm_tap_read(int fd, void *buf, size_t size)
{
	ssize_t n;
	do
		n = read(fd, buf, size);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	return n;
}
