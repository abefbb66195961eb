# make check-linux (not part of make check): the KVM backend with a Linux
# guest on a real hardware-virtualisation KVM, nested under QEMU TCG
# (tests/linux/README.md)
check_PROGRAMS += tests/linux/console-sink
tests_linux_console_sink_SOURCES = tests/linux/console-sink.c
tests_linux_console_sink_CPPFLAGS = $(AM_CPPFLAGS)
EXTRA_DIST += tests/linux/mkinitramfs.sh tests/linux/nested.sh tests/linux/check-linux.sh \
	tests/linux/host-init.sh tests/linux/guest-init.sh tests/linux/lib-linux.sh \
	tests/linux/t-linux-run.sh tests/linux/t-linux-snapshot.sh tests/linux/t-linux-protect.sh \
	tests/linux/freeze.sh tests/linux/qmp-hmp.py tests/linux/t-linux-devices.sh
EXTRA_DIST += tests/linux/t-linux-db.sh tests/linux/mkdbimage.sh tests/linux/db-init.sh tests/linux/db-serve.sh

check-linux: all tests/linux/console-sink tests/t-kvm tests/t-kvm-cpuid tests/hello-send tests/t-linux-boot \
	tests/t-diskwalk
	top_builddir=$(abs_top_builddir) top_srcdir=$(abs_top_srcdir) \
		$(SHELL) $(srcdir)/tests/linux/check-linux.sh
.PHONY: check-linux
