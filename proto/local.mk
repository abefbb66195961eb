# proto: the replication wire protocol (schema, framing, staging, output buffer).
#
# protoc-c generates proto/hareplicate.pb-c.{c,h} into the build directory;
# core code includes "proto/hareplicate.pb-c.h" (found through -I. = top_builddir).

HR_PROTO_GEN = proto/hareplicate.pb-c.c proto/hareplicate.pb-c.h

proto/hareplicate.pb-c.c: $(srcdir)/proto/hareplicate.proto
	$(AM_V_GEN)$(MKDIR_P) proto && \
	$(PROTOC_C) --proto_path=$(srcdir)/proto --c_out=proto $(srcdir)/proto/hareplicate.proto
proto/hareplicate.pb-c.h: proto/hareplicate.pb-c.c
	@:

BUILT_SOURCES += $(HR_PROTO_GEN)
CLEANFILES += $(HR_PROTO_GEN)
EXTRA_DIST += proto/hareplicate.proto docs/stream-format.md

nodist_libhr_a_SOURCES = $(HR_PROTO_GEN)
libhr_a_SOURCES += \
	src/core/stream.c src/core/stream.h \
	src/core/staging.c src/core/staging.h \
	src/core/outbuf.c src/core/outbuf.h

# BUILT_SOURCES only covers all/check/install; make single targets work too.
$(libhr_a_OBJECTS): proto/hareplicate.pb-c.h

check_PROGRAMS += tests/t-stream tests/t-staging tests/t-outbuf
TESTS += tests/t-stream tests/t-staging tests/t-outbuf
tests_t_stream_SOURCES = tests/t-stream.c tests/tap.h
tests_t_stream_LDADD = $(HR_LIBS)
tests_t_staging_SOURCES = tests/t-staging.c tests/tap.h
tests_t_staging_LDADD = $(HR_LIBS)
tests_t_outbuf_SOURCES = tests/t-outbuf.c tests/tap.h
tests_t_outbuf_LDADD = $(HR_LIBS)
$(tests_t_stream_OBJECTS) $(tests_t_staging_OBJECTS): proto/hareplicate.pb-c.h
