# `make check-sanitize`: the C unit tests (the compiled tests/t-* programs, not
# the shell scripts) once more, in a second tree configured with
# --enable-sanitizers (AddressSanitizer + UndefinedBehaviorSanitizer) in
# $(SANITIZE_DIR)/build under this build directory.  Any UB report aborts the
# test (halt_on_error, -fno-sanitize-recover); leaks fail it (detect_leaks).
#
# The second tree is a VPATH build of $(abs_top_srcdir) when that is a clean
# source tree.  When it is itself configured (the usual in-tree
# `./configure && make`), automake's configure refuses a VPATH build of it,
# and make would find that tree's unsanitized objects through VPATH anyway; the
# sources then come from a pristine copy made by `make distdir` in
# $(SANITIZE_DIR)/src (refreshed on every run; timestamps are kept, so the
# sanitized tree rebuilds only what changed).

SANITIZE_DIR = sanitize
SANITIZE_ENV = UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1

check-sanitize:
	@set -e; \
	tests=; for t in $(TESTS); do \
	  case $$t in *.sh) ;; tests/t-*) tests="$$tests $$t" ;; esac; \
	done; \
	san='$(abs_top_builddir)/$(SANITIZE_DIR)'; \
	$(MKDIR_P) "$$san/build"; \
	if test -f '$(abs_top_srcdir)/config.status'; then \
	  src="$$san/src"; \
	  $(MAKE) $(AM_MAKEFLAGS) distdir distdir="$$src" >/dev/null; \
	else \
	  src='$(abs_top_srcdir)'; \
	fi; \
	cd "$$san/build"; \
	if test ! -f config.status || test "`cat sanitize-srcdir 2>/dev/null`" != "$$src"; then \
	  echo "check-sanitize: configuring $$san/build from $$src with --enable-sanitizers"; \
	  "$$src/configure" -q --enable-sanitizers; \
	  echo "$$src" >sanitize-srcdir; \
	fi; \
	env $(SANITIZE_ENV) $(MAKE) $(AM_MAKEFLAGS) check TESTS="$$tests"

clean-local: clean-sanitize
clean-sanitize:
	-rm -rf '$(SANITIZE_DIR)'

.PHONY: check-sanitize clean-sanitize
