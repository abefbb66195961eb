# tests/guests: freestanding multiboot v1 test guests (see tests/guests/README.md).
#
# Compiled as 64-bit freestanding code with the 32-bit entry in boot.S,
# linked at 1 MiB, then converted to ELF32 because QEMU's multiboot loader
# only accepts ELF32 (our VMM accepts both).

GUEST_CC = gcc
GUEST_LD = ld
GUEST_OBJCOPY = objcopy
GUEST_COPTS = -m64 -O2 -std=gnu11 -Wall -Wextra -Wno-unused-parameter \
	-ffreestanding -fno-builtin -fno-pic -fno-pie -mcmodel=small -mno-red-zone \
	-mgeneral-regs-only -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fno-tree-loop-distribute-patterns -fcf-protection=none -nostdlib
GUEST_LDOPTS = -m elf_x86_64 -nostdlib -z max-page-size=0x1000 -z noexecstack \
	--build-id=none --no-warn-rwx-segments

guests_srcdir = $(srcdir)/tests/guests
guests_rt_objs = tests/guests/boot.guest.o tests/guests/rt.guest.o
guests_elfs = tests/guests/memwalk.elf tests/guests/mbprobe.elf

noinst_DATA += $(guests_elfs)
EXTRA_DIST += tests/guests/README.md tests/guests/link.ld tests/guests/boot.S \
	tests/guests/rt.c tests/guests/rt.h tests/guests/memwalk.c tests/guests/mbprobe.c
CLEANFILES += $(guests_elfs) tests/guests/memwalk.elf64 tests/guests/mbprobe.elf64 \
	$(guests_rt_objs) tests/guests/memwalk.guest.o tests/guests/mbprobe.guest.o

tests/guests/boot.guest.o: $(guests_srcdir)/boot.S
	@$(MKDIR_P) tests/guests
	$(AM_V_GEN)$(GUEST_CC) $(GUEST_COPTS) -c -o $@ $(guests_srcdir)/boot.S
tests/guests/rt.guest.o: $(guests_srcdir)/rt.c $(guests_srcdir)/rt.h
	@$(MKDIR_P) tests/guests
	$(AM_V_GEN)$(GUEST_CC) $(GUEST_COPTS) -c -o $@ $(guests_srcdir)/rt.c
tests/guests/memwalk.guest.o: $(guests_srcdir)/memwalk.c $(guests_srcdir)/rt.h
	@$(MKDIR_P) tests/guests
	$(AM_V_GEN)$(GUEST_CC) $(GUEST_COPTS) -c -o $@ $(guests_srcdir)/memwalk.c
tests/guests/mbprobe.guest.o: $(guests_srcdir)/mbprobe.c $(guests_srcdir)/rt.h
	@$(MKDIR_P) tests/guests
	$(AM_V_GEN)$(GUEST_CC) $(GUEST_COPTS) -c -o $@ $(guests_srcdir)/mbprobe.c

tests/guests/memwalk.elf64: tests/guests/memwalk.guest.o $(guests_rt_objs) $(guests_srcdir)/link.ld
	$(AM_V_GEN)$(GUEST_LD) $(GUEST_LDOPTS) -T $(guests_srcdir)/link.ld -o $@ \
		$(guests_rt_objs) tests/guests/memwalk.guest.o
tests/guests/mbprobe.elf64: tests/guests/mbprobe.guest.o $(guests_rt_objs) $(guests_srcdir)/link.ld
	$(AM_V_GEN)$(GUEST_LD) $(GUEST_LDOPTS) -T $(guests_srcdir)/link.ld -o $@ \
		$(guests_rt_objs) tests/guests/mbprobe.guest.o

tests/guests/memwalk.elf: tests/guests/memwalk.elf64
	$(AM_V_GEN)$(GUEST_OBJCOPY) -O elf32-i386 tests/guests/memwalk.elf64 $@
tests/guests/mbprobe.elf: tests/guests/mbprobe.elf64
	$(AM_V_GEN)$(GUEST_OBJCOPY) -O elf32-i386 tests/guests/mbprobe.elf64 $@

guests: $(guests_elfs)
.PHONY: guests

# pvhprobe: the PVH boot probe (see README.md).  boot.S and rt.c as above,
# but entered through pvh.S's XEN_ELFNOTE_PHYS32_ENTRY note and linked with
# pvh.ld, which adds the PT_NOTE segment and drops boot.S's multiboot
# header.  Converted to ELF32 like the others (QEMU 7.2 boots either; the
# note's 4-byte descriptor is the 32-bit form).
noinst_DATA += tests/guests/pvhprobe.elf
EXTRA_DIST += tests/guests/pvh.S tests/guests/pvh.ld tests/guests/pvhprobe.c
CLEANFILES += tests/guests/pvhprobe.elf tests/guests/pvhprobe.elf64 \
	tests/guests/pvh.guest.o tests/guests/pvhprobe.guest.o

tests/guests/pvh.guest.o: $(guests_srcdir)/pvh.S
	@$(MKDIR_P) tests/guests
	$(AM_V_GEN)$(GUEST_CC) $(GUEST_COPTS) -c -o $@ $(guests_srcdir)/pvh.S
tests/guests/pvhprobe.guest.o: $(guests_srcdir)/pvhprobe.c $(guests_srcdir)/rt.h
	@$(MKDIR_P) tests/guests
	$(AM_V_GEN)$(GUEST_CC) $(GUEST_COPTS) -c -o $@ $(guests_srcdir)/pvhprobe.c
tests/guests/pvhprobe.elf64: tests/guests/pvh.guest.o tests/guests/pvhprobe.guest.o \
		$(guests_rt_objs) $(guests_srcdir)/pvh.ld
	$(AM_V_GEN)$(GUEST_LD) $(GUEST_LDOPTS) -T $(guests_srcdir)/pvh.ld -o $@ \
		tests/guests/pvh.guest.o $(guests_rt_objs) tests/guests/pvhprobe.guest.o
tests/guests/pvhprobe.elf: tests/guests/pvhprobe.elf64
	$(AM_V_GEN)$(GUEST_OBJCOPY) -O elf32-i386 tests/guests/pvhprobe.elf64 $@

guests: tests/guests/pvhprobe.elf

dist_check_SCRIPTS += tests/t-pvh.sh
TESTS += tests/t-pvh.sh

# netsvc: the network-service guest (see README.md).  PVH only, like
# pvhprobe, because QEMU's microvm machine appends its virtio_mmio.device=
# entries to the command line on the PVH path and not on the multiboot one.
netsvc_objs = tests/guests/netsvc.guest.o tests/guests/net-virtio.guest.o \
	tests/guests/net-ip.guest.o tests/guests/net-tcp.guest.o
noinst_DATA += tests/guests/netsvc.elf
EXTRA_DIST += tests/guests/netsvc.h tests/guests/netsvc.c tests/guests/net-virtio.c \
	tests/guests/net-ip.c tests/guests/net-tcp.c
CLEANFILES += tests/guests/netsvc.elf tests/guests/netsvc.elf64 $(netsvc_objs)

$(netsvc_objs): tests/guests/%.guest.o: $(guests_srcdir)/%.c $(guests_srcdir)/netsvc.h \
		$(guests_srcdir)/rt.h
	@$(MKDIR_P) tests/guests
	$(AM_V_GEN)$(GUEST_CC) $(GUEST_COPTS) -c -o $@ $<
tests/guests/netsvc.elf64: tests/guests/pvh.guest.o $(netsvc_objs) $(guests_rt_objs) \
		$(guests_srcdir)/pvh.ld
	$(AM_V_GEN)$(GUEST_LD) $(GUEST_LDOPTS) -T $(guests_srcdir)/pvh.ld -o $@ \
		tests/guests/pvh.guest.o $(guests_rt_objs) $(netsvc_objs)
tests/guests/netsvc.elf: tests/guests/netsvc.elf64
	$(AM_V_GEN)$(GUEST_OBJCOPY) -O elf32-i386 tests/guests/netsvc.elf64 $@

guests: tests/guests/netsvc.elf

# diskwalk: the disk-writing guest on its own virtio-blk (see README.md).
# Multiboot like memwalk: the KVM backend appends its virtio_mmio.device=
# entries on that path too.
noinst_DATA += tests/guests/diskwalk.elf
EXTRA_DIST += tests/guests/diskwalk.c
CLEANFILES += tests/guests/diskwalk.elf tests/guests/diskwalk.elf64 tests/guests/diskwalk.guest.o

tests/guests/diskwalk.guest.o: $(guests_srcdir)/diskwalk.c $(guests_srcdir)/rt.h
	@$(MKDIR_P) tests/guests
	$(AM_V_GEN)$(GUEST_CC) $(GUEST_COPTS) -c -o $@ $(guests_srcdir)/diskwalk.c
tests/guests/diskwalk.elf64: tests/guests/diskwalk.guest.o $(guests_rt_objs) $(guests_srcdir)/link.ld
	$(AM_V_GEN)$(GUEST_LD) $(GUEST_LDOPTS) -T $(guests_srcdir)/link.ld -o $@ \
		$(guests_rt_objs) tests/guests/diskwalk.guest.o
tests/guests/diskwalk.elf: tests/guests/diskwalk.elf64
	$(AM_V_GEN)$(GUEST_OBJCOPY) -O elf32-i386 tests/guests/diskwalk.elf64 $@

guests: tests/guests/diskwalk.elf
