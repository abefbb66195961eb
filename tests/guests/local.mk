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
