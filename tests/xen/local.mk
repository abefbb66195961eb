# make check-xen (not part of make check): the Xen backend against real
# domains in a nested Xen 4.17 host under QEMU TCG (tests/xen/README.md).
EXTRA_DIST += tests/xen/mkinitramfs.sh tests/xen/nested.sh tests/xen/check-xen.sh \
	tests/xen/dom0-init.sh tests/xen/domu-init.sh tests/xen/t-xen-protect.sh tests/xen/lib-xen.sh \
	tests/xen/README.md bench/b-xen-remus.sh bench/b-xen-hr.sh bench/b-xen-hr-plain.sh bench/b-xen-summary.sh
if HAVE_XEN
check_PROGRAMS += tests/xen/t-xen-refusals
TESTS += tests/xen/t-xen-refusals
tests_xen_t_xen_refusals_SOURCES = tests/xen/t-xen-refusals.c tests/tap.h
tests_xen_t_xen_refusals_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
tests_xen_t_xen_refusals_LDADD = $(HR_LIBS)
check_PROGRAMS += tests/xen/t-xen-backend
tests_xen_t_xen_backend_SOURCES = tests/xen/t-xen-backend.c tests/tap.h
tests_xen_t_xen_backend_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
tests_xen_t_xen_backend_LDADD = $(HR_LIBS)

check-xen: all tests/xen/t-xen-backend tests/xen/t-xen-refusals tests/t-engine tests/t-migrate-engine tests/linux/console-sink src/backends/xen/xen-replica-shell.elf
	top_builddir=$(abs_top_builddir) top_srcdir=$(abs_top_srcdir) \
		HR_XEN_SHELL_PATH=$(pkglibexecdir)/xen-replica-shell.elf \
		$(SHELL) $(srcdir)/tests/xen/check-xen.sh

# make bench-xen: hareplicate vs `xl remus` on the same domU, in ONE boot of
# the nested host (bench/b-xen-hr.sh first: it needs no xenconsoled; then
# bench/b-xen-remus.sh, which starts one), then the side-by-side table.
BENCH_XEN_TESTS = bench/b-xen-hr.sh bench/b-xen-hr-plain.sh bench/b-xen-remus.sh
bench-xen: all tests/xen/t-xen-backend tests/xen/t-xen-refusals tests/t-engine tests/t-migrate-engine \
		tests/linux/console-sink src/backends/xen/xen-replica-shell.elf bench/b-stamp
	-top_builddir=$(abs_top_builddir) top_srcdir=$(abs_top_srcdir) \
		HR_XEN_SHELL_PATH=$(pkglibexecdir)/xen-replica-shell.elf HR_XEN_BINS="bench/b-stamp $(HR_XEN_BINS)" \
		CHECK_XEN_TESTS="$(BENCH_XEN_TESTS)" $(SHELL) $(srcdir)/tests/xen/check-xen.sh
	@$(SHELL) $(srcdir)/bench/b-xen-summary.sh $(abs_top_builddir)/tests/xen/out
else
check-xen bench-xen:
	@echo "$@: this tree was configured without the Xen backend: ./configure --with-xen" >&2; exit 1
endif
.PHONY: check-xen bench-xen
