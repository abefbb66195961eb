# HA decisions: failure detection and promotion (fencing / quorum grow here)
libhr_a_SOURCES += ha/failover.c ha/failover.h ha/lease.c ha/role.c ha/role.h
# the stable +tokens: every one, its level, and the one function that logs them
libhr_a_SOURCES += ha/token.c ha/token.h
# what the daemon does with a VM name: accept a backup, refuse, stand down,
# migrate, start; failover, promote, demote (request.c)
libhr_a_SOURCES += ha/accept.c ha/accept.h ha/request.c ha/request.h
# a primary, its silent backup and the cluster's word: drop it? hang up?
libhr_a_SOURCES += ha/standdown.c ha/standdown.h
# the witness: lease table, line format, client (the server is in src/daemon)
libhr_a_SOURCES += ha/witness.h ha/witness-table.c ha/witness-wire.c ha/witness-client.c
EXTRA_DIST += docs/witness.md
