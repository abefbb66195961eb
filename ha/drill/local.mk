# ha/drill: `hareplicate drill`, failover drills in network namespaces (built into
# the hareplicate command; see ha/drill/drill.h for what each file holds)
hareplicate_SOURCES += \
	ha/drill/drill.h ha/drill/cmd-drill.c ha/drill/drill-run.c \
	ha/drill/drill-hosts.c ha/drill/drill-status.c ha/drill/drill-report.c \
	ha/drill/drill-net.c ha/drill/drill-world.c ha/drill/drill-console.c \
	ha/drill/drill-tap.h ha/drill/drill-relay.c ha/drill/drill-killpoint.c
