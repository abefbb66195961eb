# hareplicated: the per-host daemon (control socket, replication port, one
# worker process per VM).
sbin_PROGRAMS += hareplicated
hareplicated_SOURCES = \
	src/daemon/hareplicated.c src/daemon/daemon.h src/daemon/options.c \
	src/daemon/control.c \
	src/daemon/vm.c src/daemon/vm-internal.h \
	src/daemon/vm-start.c src/daemon/vm-migrate.c \
	src/daemon/vm-accept.c \
	src/daemon/vm-stop.c \
	src/daemon/vm-failover.c src/daemon/vm-cluster.c \
	src/daemon/vm-status.c \
	src/daemon/worker.c src/daemon/worker-status.c src/daemon/worker-migrate.c src/daemon/worker-internal.h \
	src/daemon/adopt.c \
	src/daemon/reconnect.c \
	src/daemon/transport.c \
	src/daemon/console.c src/daemon/console.h \
	src/daemon/witness-serve.c
hareplicated_LDADD = $(HR_LIBS)

dist_check_SCRIPTS += tests/t-daemon.sh
TESTS += tests/t-daemon.sh

dist_check_SCRIPTS += tests/t-witness-daemon.sh tests/t-daemon-witness.sh tests/t-witness-tls.sh \
	tests/t-daemon-witness-forgot.sh
TESTS += tests/t-witness-daemon.sh tests/t-daemon-witness.sh tests/t-witness-tls.sh \
	tests/t-daemon-witness-forgot.sh

# a worker's disk images (a backup's placement; paths and sizes for status)
hareplicated_SOURCES += src/daemon/worker-disks.c
