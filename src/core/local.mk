# src/core: the hypervisor-agnostic replication core (see src/core/engine.h
# for the module map).  Wire framing, staging and the output buffer are
# here too; proto/local.mk generates the protobuf code they use.
libhr_a_SOURCES += \
	src/core/engine.c src/core/engine.h src/core/engine-internal.h \
	src/core/engine-primary.c src/core/engine-live.c src/core/engine-backup.c src/core/engine-alone.c \
	src/core/engine-standby.c \
	src/core/engine-migrate.c \
	src/core/peer.c src/core/peer.h src/core/stall.c src/core/stall.h \
	src/core/handshake.c src/core/handshake.h \
	src/core/planner.c src/core/planner.h \
	src/core/epoch.c src/core/epoch.h \
	src/core/sender.c src/core/sender.h \
	src/core/receiver.c src/core/receiver.h \
	src/core/promote.c src/core/promote.h \
	src/core/envelope.c src/core/envelope.h \
	src/core/guestmem.c src/core/guestmem.h \
	src/core/dirtyset.c src/core/dirtyset.h \
	src/core/stream.c src/core/stream.h src/core/stream-internal.h \
	src/core/frame-reader.c \
	src/core/staging.c src/core/staging.h \
	src/core/disklog.c src/core/disklog.h \
	src/core/disk-staging.c src/core/disk-staging.h \
	src/core/disk-sync.c src/core/disk-sync.h \
	src/core/outbuf.c src/core/outbuf.h \
	src/core/snapshot.c src/core/snapshot.h

# a backup's own images of a primary's disks (engine cfg.backup_disk_dir)
libhr_a_SOURCES += src/core/disk-files.c src/core/disk-files.h
