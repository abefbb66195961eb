# mem backend: the in-memory fake hypervisor that makes the core testable
libhr_a_SOURCES += \
	src/backends/mem/mem.c src/backends/mem/mem.h \
	src/backends/mem/mem-guest.c src/backends/mem/mem-internal.h

check_PROGRAMS += tests/t-mem-backend tests/t-snapshot
TESTS += tests/t-mem-backend tests/t-snapshot
tests_t_mem_backend_LDADD = $(HR_LIBS)
tests_t_snapshot_LDADD = $(HR_LIBS)

EXTRA_DIST += docs/snapshot-format.md
