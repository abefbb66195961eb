# HA decisions: failure detection and promotion (fencing / quorum grow here)
libhr_a_SOURCES += ha/failover.c ha/failover.h ha/role.c ha/role.h
