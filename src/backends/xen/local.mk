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
AM_CPPFLAGS += -DHR_XEN_SHELL='"$(pkglibexecdir)/xen-replica-shell.elf"' \
	-DHR_XEN_SHELL_BUILD='"$(abs_top_builddir)/src/backends/xen/xen-replica-shell.elf"'
HR_LIBS += $(XEN_LIBS)

# the replica shell: what libxl builds a replica from (shell.S)
xenshelldir = $(pkglibexecdir)
xenshell_DATA = src/backends/xen/xen-replica-shell.elf
noinst_DATA += src/backends/xen/xen-replica-shell.elf
CLEANFILES += src/backends/xen/xen-replica-shell.elf src/backends/xen/shell.o
src/backends/xen/xen-replica-shell.elf: $(srcdir)/src/backends/xen/shell.S $(srcdir)/src/backends/xen/shell.ld
	@$(MKDIR_P) src/backends/xen
	$(AM_V_GEN)$(CC) -m64 -c -o src/backends/xen/shell.o $(srcdir)/src/backends/xen/shell.S && \
		ld -m elf_x86_64 -nostdlib -z max-page-size=0x1000 -z noexecstack --build-id=none \
		-T $(srcdir)/src/backends/xen/shell.ld -o $@ src/backends/xen/shell.o
endif
EXTRA_DIST += src/backends/xen/shell.S src/backends/xen/shell.ld
