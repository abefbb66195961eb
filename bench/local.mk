# bench: benchmark programs.  Built by `make` (noinst), never run by
# `make check`; `make bench` runs them all (see bench/README.md).
# BENCH_FLAGS=--quick gives a ~30 s run.

noinst_PROGRAMS += bench/b-dirty
bench_b_dirty_SOURCES = bench/b-dirty.c bench/qmp.c bench/qmp.h
bench_b_dirty_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
bench_b_dirty_LDADD = $(HR_LIBS)
EXTRA_DIST += bench/README.md

noinst_PROGRAMS += bench/b-replicate
bench_b_replicate_SOURCES = bench/b-replicate.c
bench_b_replicate_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
bench_b_replicate_LDADD = $(HR_LIBS)

# the live phase: MPLM vs pre-copy (bench/b-live.c)
noinst_PROGRAMS += bench/b-live
bench_b_live_SOURCES = bench/b-live.c
bench_b_live_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
bench_b_live_LDADD = $(HR_LIBS)

# live migration, ours vs QEMU's (bench/b-migrate.c)
noinst_PROGRAMS += bench/b-migrate
bench_b_migrate_SOURCES = bench/b-migrate.c bench/b-migrate-qemu.c bench/b-migrate.h \
	bench/qmp.c bench/qmp.h
bench_b_migrate_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
bench_b_migrate_LDADD = $(HR_LIBS)

noinst_PROGRAMS += bench/b-tls
bench_b_tls_SOURCES = bench/b-tls.c
bench_b_tls_LDADD = $(HR_LIBS)

noinst_PROGRAMS += bench/b-netlat
bench_b_netlat_SOURCES = bench/b-netlat.c
bench_b_netlat_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
bench_b_netlat_LDADD = $(HR_LIBS)

# a line stamper for bench-xen's logs in the nested Xen host (tests/xen/local.mk)
noinst_PROGRAMS += bench/b-stamp
bench_b_stamp_SOURCES = bench/b-stamp.c

BENCH_PROGS = bench/b-dirty bench/b-replicate bench/b-tls bench/b-netlat bench/b-live bench/b-migrate
BENCH_FLAGS =

bench: $(BENCH_PROGS) $(guests_elfs)
	@for p in $(BENCH_PROGS); do \
		echo "== $$p $(BENCH_FLAGS)"; \
		top_builddir='$(abs_top_builddir)' QEMU='$(QEMU)' ./$$p $(BENCH_FLAGS); rc=$$?; \
		[ $$rc = 0 ] || [ $$rc = 77 ] || exit $$rc; \
	done
bench-quick:
	$(MAKE) $(AM_MAKEFLAGS) bench BENCH_FLAGS=--quick
.PHONY: bench bench-quick

# disk synchronisation vs a plain copy of the allocated bytes (bench/b-disk-sync.c)
noinst_PROGRAMS += bench/b-disk-sync
bench_b_disk_sync_SOURCES = bench/b-disk-sync.c
bench_b_disk_sync_LDADD = $(HR_LIBS)
