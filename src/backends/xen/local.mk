# Xen backend (configure --with-xen): libxenctrl + libxenforeignmemory +
# libxenevtchn + libxenlight.  registry.c is the only #ifdef HAVE_XEN.
if HAVE_XEN
libhr_a_SOURCES += \
	src/backends/xen/xen-internal.h \
	src/backends/xen/xen.c \
	src/backends/xen/mem.c \
	src/backends/xen/state.c \
	src/backends/xen/replica.c \
	src/backends/xen/console.c \
	src/backends/xen/suspend.c
AM_CFLAGS += $(XEN_CFLAGS)
HR_LIBS += $(XEN_LIBS)
endif
