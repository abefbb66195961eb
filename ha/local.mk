# HA decisions: failure detection and promotion (fencing / quorum grow here)
libhr_a_SOURCES += ha/failover.c ha/failover.h ha/lease.c ha/role.c ha/role.h
# the witness: lease table, line format, client (the server is in src/daemon)
libhr_a_SOURCES += ha/witness.h ha/witness-table.c ha/witness-wire.c ha/witness-client.c
# kv.c is the line codec of the control protocol and of the witness: the
# witness client in libhr needs it, so it is built there (path unchanged)
libhr_a_SOURCES += src/daemon/kv.c src/daemon/kv.h
EXTRA_DIST += docs/witness.md
