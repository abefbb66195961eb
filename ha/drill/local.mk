# ha/drill: `hareplicate drill`, failover drills in network namespaces (built into
# the hareplicate command; see ha/drill/cmd-drill.c)
hareplicate_SOURCES += \
	ha/drill/cmd-drill.c ha/drill/drill.h \
	ha/drill/drill-net.c ha/drill/drill-wire.c
