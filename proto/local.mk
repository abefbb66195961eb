# proto: the protobuf-c schema of the replication protocol.
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

# BUILT_SOURCES only covers all/check/install; make single targets work too.
$(libhr_a_OBJECTS): proto/hareplicate.pb-c.h
