# hareplicate drill: failover drills in network namespaces (src/cli/cmd-drill.c)
hareplicate_SOURCES += \
	src/cli/cmd-drill.c src/cli/drill.h \
	src/cli/drill-net.c src/cli/drill-wire.c

dist_check_SCRIPTS += tests/t-drill-kills.sh tests/t-drill-backup-death.sh
TESTS += tests/t-drill-kills.sh tests/t-drill-backup-death.sh
