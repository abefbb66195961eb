# KVM backend
libhr_a_SOURCES += \
	src/backends/kvm/kvm-internal.h \
	src/backends/kvm/kvm.c \
	src/backends/kvm/vcpu.c \
	src/backends/kvm/cpuid.c \
	src/backends/kvm/dirty.c \
	src/backends/kvm/loader.c \
	src/backends/kvm/loader-linux.c \
	src/backends/kvm/mptable.c \
	src/backends/kvm/acpi.h \
	src/backends/kvm/acpi.c \
	src/backends/kvm/uart.c \
	src/backends/kvm/state.c \
	src/backends/kvm/virtio.h \
	src/backends/kvm/virtio-mmio.c \
	src/backends/kvm/virtqueue.c \
	src/backends/kvm/virtio-net.c \
	src/backends/kvm/virtio-blk.c \
	src/backends/kvm/virtio-blk.h \
	src/backends/kvm/tap.c

# the ACPI tables, built into a buffer (no /dev/kvm); iasl checks the DSDT
check_PROGRAMS += tests/t-acpi
TESTS += tests/t-acpi
tests_t_acpi_LDADD = $(HR_LIBS)
