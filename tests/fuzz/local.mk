# tests/fuzz: libFuzzer targets (tests/fuzz/README.md).  `make check` builds
# each with the normal compiler and replay.c's main and replays the
# committed corpus and regression inputs (tests/t-fuzz-replay.sh); `make
# fuzz` builds them with clang's libFuzzer and sanitizers and runs them
# (tests/fuzz/run.sh).  Add a target here and in FUZZ_TARGETS.
FUZZ_TARGETS = frames staging snapshot control handshake witness envelope
FUZZ_COMMON = tests/fuzz/fuzz.h tests/fuzz/common.c tests/fuzz/session.c
FUZZ_REPLAY = $(FUZZ_COMMON) tests/fuzz/replay.c

check_PROGRAMS += tests/fuzz/fz-frames
tests_fuzz_fz_frames_SOURCES = tests/fuzz/fz-frames.c $(FUZZ_REPLAY)
tests_fuzz_fz_frames_LDADD = $(HR_LIBS)
$(tests_fuzz_fz_frames_OBJECTS): proto/hareplicate.pb-c.h

check_PROGRAMS += tests/fuzz/fz-staging
tests_fuzz_fz_staging_SOURCES = tests/fuzz/fz-staging.c $(FUZZ_REPLAY)
tests_fuzz_fz_staging_LDADD = $(HR_LIBS)
$(tests_fuzz_fz_staging_OBJECTS): proto/hareplicate.pb-c.h

check_PROGRAMS += tests/fuzz/fz-snapshot
tests_fuzz_fz_snapshot_SOURCES = tests/fuzz/fz-snapshot.c $(FUZZ_REPLAY)
tests_fuzz_fz_snapshot_LDADD = $(HR_LIBS)
$(tests_fuzz_fz_snapshot_OBJECTS): proto/hareplicate.pb-c.h

check_PROGRAMS += tests/fuzz/fz-control
tests_fuzz_fz_control_SOURCES = tests/fuzz/fz-control.c $(FUZZ_REPLAY)
tests_fuzz_fz_control_LDADD = $(HR_LIBS)
$(tests_fuzz_fz_control_OBJECTS): proto/hareplicate.pb-c.h

check_PROGRAMS += tests/fuzz/fz-handshake
tests_fuzz_fz_handshake_SOURCES = tests/fuzz/fz-handshake.c $(FUZZ_REPLAY)
tests_fuzz_fz_handshake_LDADD = $(HR_LIBS)
$(tests_fuzz_fz_handshake_OBJECTS): proto/hareplicate.pb-c.h

check_PROGRAMS += tests/fuzz/fz-witness
tests_fuzz_fz_witness_SOURCES = tests/fuzz/fz-witness.c $(FUZZ_REPLAY)
tests_fuzz_fz_witness_LDADD = $(HR_LIBS)
$(tests_fuzz_fz_witness_OBJECTS): proto/hareplicate.pb-c.h

check_PROGRAMS += tests/fuzz/fz-envelope
tests_fuzz_fz_envelope_SOURCES = tests/fuzz/fz-envelope.c $(FUZZ_REPLAY)
tests_fuzz_fz_envelope_LDADD = $(HR_LIBS)
$(tests_fuzz_fz_envelope_OBJECTS): proto/hareplicate.pb-c.h

dist_check_SCRIPTS += tests/t-fuzz-replay.sh
TESTS += tests/t-fuzz-replay.sh
EXTRA_DIST += tests/fuzz/README.md tests/fuzz/run.sh tests/fuzz/corpus tests/fuzz/regress

# Regenerate the committed seeds from the encoders (then review and commit).
fuzz-seeds: $(FUZZ_TARGETS:%=tests/fuzz/fz-%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  d='$(srcdir)'/tests/fuzz/corpus/$$t; rm -rf "$$d"; $(MKDIR_P) "$$d"; \
	  tests/fuzz/fz-$$t --make-seeds "$$d"; echo "fuzz-seeds: $$t: `ls "$$d" | wc -l` files"; \
	done

FUZZ_SECONDS = 60
FUZZ_CC = clang
fuzz:
	@FUZZ_CC='$(FUZZ_CC)' FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_TARGETS='$(FUZZ_TARGETS)' \
	 FUZZ_SOURCES='$(libhr_a_SOURCES) $(nodist_libhr_a_SOURCES)' \
	 FUZZ_LIBS='$(XXHASH_LIBS) $(LIBEVENT_LIBS) $(PROTOBUF_C_LIBS) $(OPENSSL_LIBS) -lpthread' \
	 FUZZ_CFLAGS='$(DEFS) -I$(abs_top_srcdir)/src -I$(abs_top_builddir)/src -I$(abs_top_builddir) -D_GNU_SOURCE $(XXHASH_CFLAGS) $(LIBEVENT_CFLAGS) $(PROTOBUF_C_CFLAGS) $(OPENSSL_CFLAGS)' \
	 $(SHELL) $(srcdir)/tests/fuzz/run.sh '$(abs_top_srcdir)' '$(abs_top_builddir)'
.PHONY: fuzz fuzz-seeds

clean-local: clean-fuzz
clean-fuzz:
	-rm -rf fuzz-build
.PHONY: clean-fuzz
