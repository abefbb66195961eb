# TAP tests run by `make check`
EXTRA_DIST += tests/tap.h tests/guest-harness.h tests/engine-pair.h tests/nested-summary.sh

check_PROGRAMS += tests/t-kvm
TESTS += tests/t-kvm
tests_t_kvm_LDADD = $(HR_LIBS)

# the guest's CPU: KVM's model and the backup's check of a primary's
check_PROGRAMS += tests/t-kvm-cpuid
TESTS += tests/t-kvm-cpuid tests/t-kvm-cpuid.sh
tests_t_kvm_cpuid_SOURCES = tests/t-kvm-cpuid.c tests/cpu-model.h tests/tap.h
tests_t_kvm_cpuid_LDADD = $(HR_LIBS)
dist_check_SCRIPTS += tests/t-kvm-cpuid.sh

# the Linux boot protocol: what the loader places for Debian's bzImage
check_PROGRAMS += tests/t-linux-boot
TESTS += tests/t-linux-boot
tests_t_linux_boot_LDADD = $(HR_LIBS)

dist_check_SCRIPTS += tests/lib.sh tests/t-snapshot-kvm.sh tests/t-multiboot.sh tests/t-format.sh \
	tests/t-output-offsets.sh tests/t-inputs.sh tests/t-hardened.sh tests/t-auth.sh tests/t-migrate.sh \
	tests/t-migrate-protected.sh
TESTS += tests/t-snapshot-kvm.sh tests/t-multiboot.sh tests/t-format.sh tests/t-output-offsets.sh \
	tests/t-inputs.sh tests/t-hardened.sh tests/t-auth.sh tests/t-migrate.sh \
	tests/t-migrate-protected.sh

# the KVM backend's virtio-net on real TAPs (root; own network namespace)
check_PROGRAMS += tests/t-virtio-net
TESTS += tests/t-virtio-net
tests_t_virtio_net_SOURCES = tests/t-virtio-net.c tests/virtio-drv.h tests/guest-harness.h tests/tap.h
tests_t_virtio_net_LDADD = $(HR_LIBS)

check_PROGRAMS += tests/t-engine
TESTS += tests/t-engine
tests_t_engine_LDADD = $(HR_LIBS)

# migration: the hand-off between engines, a cancelled one
check_PROGRAMS += tests/t-migrate-engine
TESTS += tests/t-migrate-engine
tests_t_migrate_engine_LDADD = $(HR_LIBS)

# network frames: held until the ack, whole, in order, across a promotion
check_PROGRAMS += tests/t-netcommit
TESTS += tests/t-netcommit
tests_t_netcommit_LDADD = $(HR_LIBS)

# output-triggered epochs (min_epoch_us) on the mem backend
check_PROGRAMS += tests/t-epoch-trigger
TESTS += tests/t-epoch-trigger
tests_t_epoch_trigger_LDADD = $(HR_LIBS)

check_PROGRAMS += tests/t-backup-bad
TESTS += tests/t-backup-bad
tests_t_backup_bad_LDADD = $(HR_LIBS)

check_PROGRAMS += tests/t-primary-silent
TESTS += tests/t-primary-silent
tests_t_primary_silent_LDADD = $(HR_LIBS)

# a silent backup (a partition) on the mem backend: backup-silent, not protected, then healed
check_PROGRAMS += tests/t-backup-silent
TESTS += tests/t-backup-silent
tests_t_backup_silent_LDADD = $(HR_LIBS)

# core modules (run on the mem backend everywhere, on KVM where it exists)
check_PROGRAMS += tests/t-stream tests/t-staging tests/t-outbuf
TESTS += tests/t-stream tests/t-staging tests/t-outbuf
tests_t_stream_SOURCES = tests/t-stream.c tests/tap.h
tests_t_stream_LDADD = $(HR_LIBS)
tests_t_staging_SOURCES = tests/t-staging.c tests/tap.h
tests_t_staging_LDADD = $(HR_LIBS)
tests_t_outbuf_SOURCES = tests/t-outbuf.c tests/tap.h
tests_t_outbuf_LDADD = $(HR_LIBS)
$(tests_t_stream_OBJECTS) $(tests_t_staging_OBJECTS): proto/hareplicate.pb-c.h

# failover drills (hareplicate drill, ha/drill)
dist_check_SCRIPTS += tests/t-drill-kills.sh tests/t-drill-backup-death.sh tests/t-drill-faults.sh \
	tests/t-drill-failback.sh tests/t-drill-witness.sh tests/t-drill-net.sh
TESTS += tests/t-drill-kills.sh tests/t-drill-backup-death.sh tests/t-drill-faults.sh \
	tests/t-drill-failback.sh tests/t-drill-witness.sh tests/t-drill-net.sh

# the live-phase planner (MPLM, pre-copy) on the mem backend: alone (no network), and
# the engine's live phase end to end
check_PROGRAMS += tests/t-planner tests/t-live
TESTS += tests/t-planner tests/t-live
tests_t_planner_LDADD = $(HR_LIBS)
tests_t_live_LDADD = $(HR_LIBS)

# the daemon's accept / migrate / start decisions (ha/accept.c), what
# failover, promote and demote may do (ha/request.c), and a primary's
# drop / hang-up policy on the cluster's word (ha/standdown.c): tables
check_PROGRAMS += tests/t-accept tests/t-request tests/t-standdown
TESTS += tests/t-accept tests/t-request tests/t-standdown
tests_t_accept_LDADD = $(HR_LIBS)
tests_t_request_LDADD = $(HR_LIBS)
tests_t_standdown_LDADD = $(HR_LIBS)

check_PROGRAMS += tests/t-role tests/t-dirtyset tests/t-envelope tests/t-core tests/t-place tests/t-heartbeat tests/t-liveness tests/t-reprotect-bad \
	tests/t-onespeaker tests/t-reprotect tests/t-standby tests/t-cluster-word
TESTS += tests/t-role tests/t-dirtyset tests/t-envelope tests/t-core tests/t-place tests/t-heartbeat tests/t-liveness tests/t-reprotect-bad \
	tests/t-onespeaker tests/t-reprotect tests/t-standby tests/t-cluster-word
tests_t_role_LDADD = $(HR_LIBS)
tests_t_dirtyset_LDADD = $(HR_LIBS)
tests_t_envelope_LDADD = $(HR_LIBS)
tests_t_core_LDADD = $(HR_LIBS)
tests_t_place_LDADD = $(HR_LIBS)
tests_t_heartbeat_LDADD = $(HR_LIBS)
tests_t_liveness_LDADD = $(HR_LIBS)
tests_t_reprotect_bad_LDADD = $(HR_LIBS)
tests_t_onespeaker_LDADD = $(HR_LIBS)
tests_t_reprotect_LDADD = $(HR_LIBS)
tests_t_standby_LDADD = $(HR_LIBS)
tests_t_cluster_word_LDADD = $(HR_LIBS)

# the stable +tokens (ha/token.c): one table, role.c's names agree with it
check_PROGRAMS += tests/t-token
TESTS += tests/t-token
tests_t_token_LDADD = $(HR_LIBS)

# the witness: table with a fake clock, hostile lines (tests/t-witness-daemon.sh: the server)
check_PROGRAMS += tests/t-witness tests/t-witness-torn tests/t-witness-async
TESTS += tests/t-witness tests/t-witness-torn tests/t-witness-async
tests_t_witness_LDADD = $(HR_LIBS)
tests_t_witness_torn_LDADD = $(HR_LIBS)
tests_t_witness_async_LDADD = $(HR_LIBS)

# console sinks: output a full disk or a gone collector refuses is held, then lands
check_PROGRAMS += tests/t-console
TESTS += tests/t-console
tests_t_console_SOURCES = tests/t-console.c tests/tap.h src/daemon/console.c src/daemon/console.h
tests_t_console_LDADD = $(HR_LIBS)
dist_check_SCRIPTS += tests/t-console-full.sh
TESTS += tests/t-console-full.sh
# ... and the engine holds released output back from a sink at its bound, the guest waiting
check_PROGRAMS += tests/t-output-room
TESTS += tests/t-output-room
tests_t_output_room_LDADD = $(HR_LIBS)

# the strict number parsers every user and peer input goes through
check_PROGRAMS += tests/t-util
TESTS += tests/t-util
tests_t_util_LDADD = $(HR_LIBS)

# helpers for the shell tests (built by make check, not tests themselves)
check_PROGRAMS += tests/hello-send
tests_hello_send_SOURCES = tests/hello-send.c tests/cpu-model.h
tests_hello_send_LDADD = $(HR_LIBS)
$(tests_hello_send_OBJECTS): proto/hareplicate.pb-c.h

# netsvc (tests/guests/netsvc.elf) under QEMU on a TAP in a network
# namespace; netprobe is its host-side client (also for the failover drills,
# hence built by plain make and installed, in pkglibexecdir).
pkglibexec_PROGRAMS = tests/netprobe
tests_netprobe_LDADD = $(HR_LIBS)
dist_check_SCRIPTS += tests/t-netsvc-qemu.sh tests/netsvc-rawtcp.py
TESTS += tests/t-netsvc-qemu.sh

# the configuration file reader (src/common/conf.c) and hareplicated's
# settings from it, --check-config, --version, where the logs go
check_PROGRAMS += tests/t-conf
TESTS += tests/t-conf
tests_t_conf_LDADD = $(HR_LIBS)
dist_check_SCRIPTS += tests/t-daemon-config.sh
TESTS += tests/t-daemon-config.sh
dist_check_SCRIPTS += tests/t-log.sh tests/t-install.sh
# the layers' #include rules (src/common, src/core, ha, src/cli, ha/drill)
dist_check_SCRIPTS += tests/t-layering.sh
TESTS += tests/t-layering.sh
TESTS += tests/t-install.sh
TESTS += tests/t-log.sh

check_PROGRAMS += tests/t-stall
TESTS += tests/t-stall
tests_t_stall_LDADD = $(HR_LIBS)
# disk writes replicated with their epoch (core/disklog.h, core/disk-staging.h)
check_PROGRAMS += tests/t-disk-replicate
TESTS += tests/t-disk-replicate
tests_t_disk_replicate_LDADD = $(HR_LIBS)
# the KVM backend's virtio-blk on a bare vm (no /dev/kvm needed), both aio engines
check_PROGRAMS += tests/t-virtio-blk
TESTS += tests/t-virtio-blk
tests_t_virtio_blk_LDADD = $(HR_LIBS)

# diskwalk on KVM through the replication engine (skips without /dev/kvm;
# runs in make check-linux)
check_PROGRAMS += tests/t-diskwalk
TESTS += tests/t-diskwalk
tests_t_diskwalk_LDADD = $(HR_LIBS)

# disks through the daemon: a backup's images, status, failover, failback
dist_check_SCRIPTS += tests/t-daemon-disk.sh
TESTS += tests/t-daemon-disk.sh

# hareplicate drill --disk (kill, torn, partition)
dist_check_SCRIPTS += tests/t-drill-disk.sh
TESTS += tests/t-drill-disk.sh

# a backup's own images (src/core/disk-files.c)
check_PROGRAMS += tests/t-disk-files
TESTS += tests/t-disk-files
tests_t_disk_files_LDADD = $(HR_LIBS)

# disk images synchronised at a session's start (core/disk-sync.h)
check_PROGRAMS += tests/t-disk-sync
TESTS += tests/t-disk-sync
tests_t_disk_sync_LDADD = $(HR_LIBS)
