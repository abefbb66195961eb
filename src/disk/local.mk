# src/disk: disk images and their I/O, shared by the devices (KVM's
# virtio-blk) and the core's disk replication (docs/design.md, "Disks").
libhr_a_SOURCES += src/disk/image.c src/disk/image.h src/disk/spec.c src/disk/spec.h

check_PROGRAMS += tests/t-image
TESTS += tests/t-image
tests_t_image_LDADD = $(HR_LIBS)
check_PROGRAMS += tests/t-disk-spec
TESTS += tests/t-disk-spec
tests_t_disk_spec_LDADD = $(HR_LIBS)

# asynchronous image I/O for devices (io_uring, or a thread pool)
libhr_a_SOURCES += src/disk/aio.c src/disk/aio.h
check_PROGRAMS += tests/t-aio
TESTS += tests/t-aio
tests_t_aio_LDADD = $(HR_LIBS)
