# src/disk: disk images and their I/O, shared by the devices (KVM's
# virtio-blk) and the core's disk replication (docs/design.md, "Disks").
libhr_a_SOURCES += src/disk/image.c src/disk/image.h

check_PROGRAMS += tests/t-image
TESTS += tests/t-image
tests_t_image_LDADD = $(HR_LIBS)
