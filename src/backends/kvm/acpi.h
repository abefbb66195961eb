/*
 * acpi.h - the ACPI tables of a KVM VM (acpi.c): how a stock kernel finds
 * its vCPUs, its I/O APIC and its virtio-mmio devices without a BIOS.
 *
 * The tables live in guest RAM from KVM_ACPI_GPA (the 0xE0000 segment, where
 * Linux and other kernels scan for "RSD PTR " on 16-byte boundaries; it is
 * below 1 MiB in the hole the e820 map leaves between 640 KiB and
 * 0xF0000, so no guest allocates it).  They depend only on the VM's shape
 * (number of vCPUs, number of virtio-mmio devices) and the fixed placement
 * of virtio.h: a replica's open builds the same bytes, and they are guest
 * RAM, replicated with the rest of it anyway.
 */
#ifndef HR_KVM_ACPI_H
#define HR_KVM_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define KVM_ACPI_GPA	   0xe0000ull /* the RSDP, then the tables */
#define KVM_ACPI_MAX_BYTES 0x10000u   /* up to 0xF0000 (the e820 reserved BIOS area) */

/* Writes RSDP (rev 2) -> XSDT -> FADT (hardware-reduced, -> DSDT) and MADT
 * into buf, which the guest sees at guest-physical gpa (16-byte aligned):
 * nr_vcpus local APICs, the I/O APIC, and a DSDT with one LNRO0005 device per
 * virtio-mmio device (nr_vdevs) and the COM1 UART.  0 and *bytes_r = bytes
 * used, or -E2BIG if they do not fit in size, -EINVAL for a bad shape. */
int kvm_acpi_build(uint8_t *buf, size_t size, uint64_t gpa, unsigned nr_vcpus, unsigned nr_vdevs,
		   size_t *bytes_r);

/* The firmware's reset vector (real-mode F000:FFF0).  With a
 * hardware-reduced FADT, Linux reboots by EFI (reboot.c: efi_reboot_required)
 * and, without EFI, by jumping to the BIOS's reset vector (BOOT_BIOS) before
 * it tries the keyboard controller or the FADT's reset register.  There is
 * no BIOS here, so this stub stands in for its reset: the keyboard
 * controller's reset pulse (port 0x64, 0xFE), which stops the VM (uart.c),
 * then hlt. */
#define KVM_RESET_VECTOR_GPA   0xffff0ull
#define KVM_RESET_VECTOR_BYTES 7
extern const uint8_t kvm_reset_vector_code[KVM_RESET_VECTOR_BYTES];

struct kvm_vm;
/* kvm_acpi_build into the VM's RAM at KVM_ACPI_GPA, and the reset vector's
 * stub at KVM_RESET_VECTOR_GPA (in the e820 map's reserved BIOS area). */
int kvm_acpi_write(struct kvm_vm *vm);

#endif
