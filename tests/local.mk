# TAP tests run by `make check`
EXTRA_DIST += tests/tap.h tests/guest-harness.h

check_PROGRAMS += tests/t-kvm
TESTS += tests/t-kvm
tests_t_kvm_LDADD = $(HR_LIBS)

dist_check_SCRIPTS += tests/lib.sh tests/t-snapshot-kvm.sh tests/t-multiboot.sh tests/t-format.sh
TESTS += tests/t-snapshot-kvm.sh tests/t-multiboot.sh tests/t-format.sh

check_PROGRAMS += tests/t-engine
TESTS += tests/t-engine
tests_t_engine_LDADD = $(HR_LIBS)

check_PROGRAMS += tests/t-backup-bad
TESTS += tests/t-backup-bad
tests_t_backup_bad_LDADD = $(HR_LIBS)

check_PROGRAMS += tests/t-primary-silent
TESTS += tests/t-primary-silent
tests_t_primary_silent_LDADD = $(HR_LIBS)
