/*
 * mptable.c - an Intel MultiProcessor Specification 1.4 configuration table
 * in the EBDA (KVM_MPTABLE_GPA, inside the 1 KiB the e820 map reserves
 * there), the first place a kernel without ACPI tables looks.  It names:
 *
 *   - one processor per vCPU, local APIC ID = vCPU index, vCPU 0 the BSP;
 *   - the ISA bus (bus 0);
 *   - the in-kernel I/O APIC (ID nr_vcpus, 0xfec00000, 24 pins);
 *   - ISA IRQ n -> I/O APIC pin n for n = 0..15 except 2, as KVM's default
 *     GSI routing delivers them (the in-kernel PIT raises GSI 0, the COM1
 *     UART GSI 4), conforming to the bus (edge, active high); the
 *     virtio-mmio devices' GSIs (virtio_mmio_gsi) level-triggered, active high, as the
 *     devices hold their line while the interrupt status is non-zero;
 *   - LINT0 ExtINT (the 8259s in virtual-wire mode), LINT1 NMI.
 */
#include <errno.h>
#include <string.h>

#include "kvm-internal.h"
#include "common/unaligned.h"

#define MP_BYTES    0x400
#define LAPIC_GPA   0xfee00000u
#define IOAPIC_GPA  0xfec00000u
#define ISA_IRQS    16
#define LEVEL_HIGH  0x0d /* trigger level (11b << 2) | polarity active high (01b) */
#define MP_SPEC_REV 4

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return (uint8_t)-s;
}

static uint8_t *entry8(uint8_t *p, uint8_t type, uint8_t a, uint16_t b, uint8_t c, uint8_t d,
		       uint8_t e, uint8_t f)
{
	p[0] = type;
	p[1] = a;
	hr_put_le16(p + 2, b);
	p[4] = c;
	p[5] = d;
	p[6] = e;
	p[7] = f;
	return p + 8;
}

int kvm_mptable_write(struct kvm_vm *vm)
{
	uint8_t *base = kvm_gpa_ptr(vm, KVM_MPTABLE_GPA, MP_BYTES);
	uint8_t *fp = base, *t = base + 16, *p = t + 44;
	unsigned n = 0, ioapic_id = vm->nr_vcpus;

	if (!base)
		return -EINVAL;
	if (16 + 44 + vm->nr_vcpus * 20u + (3 + ISA_IRQS + 2) * 8u > MP_BYTES) {
		kvm_set_error(vm, "MP table: %u vCPUs do not fit in the EBDA", vm->nr_vcpus);
		return -E2BIG;
	}
	memset(base, 0, MP_BYTES);
	for (unsigned i = 0; i < vm->nr_vcpus; i++, n++) {
		p[0] = 0; /* processor */
		p[1] = (uint8_t)i;
		p[2] = 0x14;		     /* local APIC version */
		p[3] = 1 | (i == 0 ? 2 : 0); /* enabled, BSP */
		hr_put_le32(p + 4, 0x600);   /* family 6 */
		hr_put_le32(p + 8, 0x201);   /* FPU, APIC */
		p += 20;
	}
	p[0] = 1; /* bus 0: ISA */
	p[1] = 0;
	memcpy(p + 2, "ISA   ", 6);
	p += 8;
	n++;
	p = entry8(p, 2, (uint8_t)ioapic_id, 0x0111, 0, 0, 0, 0); /* version 0x11, enabled */
	hr_put_le32(p - 4, IOAPIC_GPA);
	n++;
	for (unsigned irq = 0; irq < ISA_IRQS; irq++) {
		if (irq == 2)
			continue; /* the cascade */
		uint16_t flags = 0;
		for (unsigned d = 0; d < vm->nr_vdevs; d++)
			if (irq == virtio_mmio_gsi(d))
				flags = LEVEL_HIGH;
		p = entry8(p, 3, 0, flags, 0, (uint8_t)irq, (uint8_t)ioapic_id, (uint8_t)irq);
		n++;
	}
	p = entry8(p, 4, 3, 0, 0, 0, 0xff, 0); /* ExtINT -> LINT0 of every CPU */
	p = entry8(p, 4, 1, 0, 0, 0, 0xff, 1); /* NMI -> LINT1 */
	n += 2;

	memcpy(t, "PCMP", 4);
	hr_put_le16(t + 4, (uint16_t)(p - t));
	t[6] = MP_SPEC_REV;
	memcpy(t + 8, "HAREPLIC", 8);
	memcpy(t + 16, "KVM VM      ", 12);
	hr_put_le16(t + 34, (uint16_t)n);
	hr_put_le32(t + 36, LAPIC_GPA);
	t[7] = checksum(t, (size_t)(p - t));

	memcpy(fp, "_MP_", 4);
	hr_put_le32(fp + 4, (uint32_t)(KVM_MPTABLE_GPA + 16));
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = MP_SPEC_REV;
	fp[10] = checksum(fp, 16);
	return 0;
}
