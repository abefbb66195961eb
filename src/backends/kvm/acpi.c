/*
 * acpi.c - the ACPI tables of a KVM VM (ACPI 6.x; layout in acpi.h), so that
 * a stock kernel finds its devices by itself: Debian's kernel has no
 * virtio_mmio.device= parser and no legacy PCI, but its virtio_mmio driver
 * matches the ACPI _HID "LNRO0005".  ACPI rather than an emulated PCI bus:
 * a few hundred bytes of tables written once at open, no config space, no
 * BARs, nothing more to save, load or replicate.
 *
 *   RSDP (rev 2) -> XSDT -> FADT -> DSDT
 *                        -> MADT
 *
 *   - FADT: the HW_REDUCED_ACPI flag (no PM timer, no SCI, no GPEs: nothing
 *     to emulate), the reset register (port 0xCF9, value 6, which uart.c
 *     takes as a reset), IAPC_BOOT_ARCH = legacy devices (COM1, the CMOS),
 *     no 8042 (we only catch its reset command), no VGA, no MSI.
 *   - MADT: what mptable.c describes: one enabled local APIC per vCPU (APIC
 *     ID = vCPU index), the in-kernel I/O APIC (ID nr_vcpus, 0xFEC00000, GSI
 *     base 0), NMI on LINT1, and an interrupt source override for each ISA
 *     IRQ 0..15 but 2 onto the pin of the same number: identity, but a
 *     hardware-reduced Linux sets up no ISA IRQ it is not told about (it has
 *     no legacy PIC then), and the COM1 UART's IRQ 4 must work.  The
 *     virtio-mmio GSIs are level, active high, as the devices hold the line.
 *   - DSDT: \_SB.COM1 (PNP0501: I/O 0x3F8, IRQ 4), \_SB.RTC (PNP0B00: I/O
 *     0x70, IRQ 8) -- a hardware-reduced Linux gives the legacy drivers'
 *     fixed IRQ numbers no descriptor, these PNP devices get theirs mapped --
 *     and \_SB.VRnn for virtio
 *     device n: _HID "LNRO0005", _UID n, _CRS Memory32Fixed (the 0x200 bytes
 *     of registers at VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_STRIDE) and one
 *     level, active-high, exclusive Interrupt (GSI virtio_mmio_gsi(n): 5, 6,
 *     7, 9, 10).
 *
 * A hardware-reduced Linux reboots through the BIOS's reset vector, which
 * we therefore provide (acpi.h, kvm_reset_vector_code).
 *
 * The AML is written by a small encoder below (PkgLength, names, integers,
 * strings, buffers): only what the DSDT needs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "acpi.h"
#include "kvm-internal.h"
#include "common/log.h"
#include "virtio.h"
#include "common/unaligned.h"

#define HDR_BYTES	  36
#define RSDP_BYTES	  36
#define FADT_BYTES	  276 /* revision 6 (through the hypervisor vendor identity) */
#define LAPIC_GPA	  0xfee00000u
#define IOAPIC_GPA	  0xfec00000u
#define ISA_IRQS	  16
#define COM1_PORT	  0x3f8
#define COM1_IRQ	  4
#define CMOS_PORT	  0x70
#define CMOS_IRQ	  8
#define MAX_VCPUS	  254 /* 8-bit APIC IDs, 255 is broadcast; the I/O APIC takes nr_vcpus */
#define RESET_PORT	  0xcf9
#define RESET_VALUE	  0x06 /* CF9: full reset | system reset */
#define MADT_LEVEL_HIGH	  0x000d
#define FADT_F_WBINVD	  (1u << 0)
#define FADT_F_RESET_REG  (1u << 10)
#define FADT_F_HW_REDUCED (1u << 20)
#define BOOT_ARCH_LEGACY  (1u << 0) /* user-visible LPC/ISA devices (COM1, CMOS) */
#define BOOT_ARCH_NO_VGA  (1u << 2)
#define BOOT_ARCH_NO_MSI  (1u << 3)

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return (uint8_t)-s;
}

/* The 36-byte header of every table but the RSDP; length and checksum are
 * filled in by finish_table. */
static void table_header(uint8_t *t, const char sig[4], uint8_t revision)
{
	memset(t, 0, HDR_BYTES);
	memcpy(t, sig, 4);
	t[8] = revision;
	memcpy(t + 10, "HAREPL", 6);
	memcpy(t + 16, "HRKVM   ", 8);
	hr_put_le32(t + 24, 1);	   /* OEM revision */
	memcpy(t + 28, "HARE", 4); /* creator ID */
	hr_put_le32(t + 32, 1);	   /* creator revision */
}

static void finish_table(uint8_t *t, size_t bytes)
{
	hr_put_le32(t + 4, (uint32_t)bytes);
	t[9] = 0;
	t[9] = checksum(t, bytes);
}

/* A Generic Address Structure in system I/O space. */
static void gas_io(uint8_t *g, uint16_t port, uint8_t bits)
{
	g[0] = 1; /* system I/O */
	g[1] = bits;
	g[2] = 0;
	g[3] = 1; /* byte access */
	hr_put_le64(g + 4, port);
}

/* ---- AML encoder (ACPI 6.x, chapter 20) */

struct aml {
	uint8_t *b;
	size_t len, cap;
	int err; /* -E2BIG once something did not fit */
};

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->err || n > a->cap - a->len) {
		a->err = -E2BIG;
		return;
	}
	memcpy(a->b + a->len, p, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

/* A package (Scope, Device, Buffer): the opcode, then aml_open; after the
 * contents, aml_close inserts the PkgLength (1 to 4 bytes, counting
 * itself) in front of them. */
static size_t aml_open(struct aml *a)
{
	return a->len;
}

static void aml_close(struct aml *a, size_t at)
{
	size_t body = a->len - at, k;
	if (a->err)
		return;
	for (k = 1; k < 4 && body + k >= (k == 1 ? 0x40u : 1u << (4 + 8 * (k - 1))); k++)
		;
	size_t total = body + k;
	if (total >= 1u << 28 || k > a->cap - a->len) {
		a->err = -E2BIG;
		return;
	}
	memmove(a->b + at + k, a->b + at, body);
	if (k == 1) {
		a->b[at] = (uint8_t)total;
	} else {
		a->b[at] = (uint8_t)((k - 1) << 6 | (total & 0xf));
		for (size_t i = 1; i < k; i++)
			a->b[at + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	a->len += k;
}

/* A NameSeg: four characters, '_' padded. */
static void aml_nameseg(struct aml *a, const char *s)
{
	char seg[4] = {'_', '_', '_', '_'};
	memcpy(seg, s, strnlen(s, 4));
	aml_bytes(a, seg, 4);
}

/* An Integer in its shortest encoding (ZeroOp, OneOp, Byte/Word/DWord/QWord). */
static void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[9];
	unsigned n;
	if (v <= 1) {
		aml_byte(a, (uint8_t)v);
		return;
	}
	if (v <= 0xff) {
		b[0] = 0x0a, n = 1;
	} else if (v <= 0xffff) {
		b[0] = 0x0b, n = 2;
	} else if (v <= 0xffffffffu) {
		b[0] = 0x0c, n = 4;
	} else {
		b[0] = 0x0e, n = 8;
	}
	for (unsigned i = 0; i < n; i++)
		b[1 + i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, 1 + n);
}

static void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, 0x0d); /* StringPrefix */
	aml_bytes(a, s, strlen(s) + 1);
}

/* Name(seg, Buffer() {bytes}) */
static void aml_name_buffer(struct aml *a, const char *seg, const uint8_t *p, size_t n)
{
	aml_byte(a, 0x08); /* NameOp */
	aml_nameseg(a, seg);
	aml_byte(a, 0x11); /* BufferOp */
	size_t at = aml_open(a);
	aml_int(a, n);
	aml_bytes(a, p, n);
	aml_close(a, at);
}

static void aml_name_int(struct aml *a, const char *seg, uint64_t v)
{
	aml_byte(a, 0x08);
	aml_nameseg(a, seg);
	aml_int(a, v);
}

static void aml_name_string(struct aml *a, const char *seg, const char *s)
{
	aml_byte(a, 0x08);
	aml_nameseg(a, seg);
	aml_string(a, s);
}

/* Device(seg) { ... }: returns where to aml_close it. */
static size_t aml_device(struct aml *a, const char *seg)
{
	aml_byte(a, 0x5b); /* ExtOpPrefix */
	aml_byte(a, 0x82); /* DeviceOp */
	size_t at = aml_open(a);
	aml_nameseg(a, seg);
	return at;
}

/* EisaId("PNP0501") as the 32-bit compressed ID. */
static uint32_t eisa_id(const char *id)
{
	unsigned hex = 0;
	for (int i = 3; i < 7; i++)
		hex = hex << 4 | (unsigned)(id[i] <= '9' ? id[i] - '0' : id[i] - 'A' + 10);
	unsigned c1 = (unsigned)(id[0] - 0x40) & 0x1f, c2 = (unsigned)(id[1] - 0x40) & 0x1f,
		 c3 = (unsigned)(id[2] - 0x40) & 0x1f;
	uint8_t b[4] = {(uint8_t)(c1 << 2 | c2 >> 3), (uint8_t)((c2 & 7) << 5 | c3),
			(uint8_t)(hex >> 8), (uint8_t)hex};
	return hr_get_le32(b);
}

/* ---- resource descriptors (ACPI 6.x, 6.4) */

static size_t res_memory32_fixed(uint8_t *r, uint32_t base, uint32_t bytes)
{
	r[0] = 0x86; /* large item: 32-bit fixed memory range */
	hr_put_le16(r + 1, 9);
	r[3] = 1; /* read/write */
	hr_put_le32(r + 4, base);
	hr_put_le32(r + 8, bytes);
	return 12;
}

/* Extended interrupt: consumer, level, active high, exclusive, one GSI. */
static size_t res_interrupt_level_high(uint8_t *r, uint32_t gsi)
{
	r[0] = 0x89;
	hr_put_le16(r + 1, 6);
	r[3] = 0x01; /* consumer; bit 1 clear: level; bit 2 clear: active high; exclusive */
	r[4] = 1;
	hr_put_le32(r + 5, gsi);
	return 9;
}

static size_t res_io(uint8_t *r, uint16_t port, uint8_t bytes)
{
	r[0] = 0x47; /* small item: I/O port, 8 bytes */
	r[1] = 1;    /* 16-bit decode */
	hr_put_le16(r + 2, port);
	hr_put_le16(r + 4, port);
	r[6] = 1; /* alignment */
	r[7] = bytes;
	return 8;
}

static size_t res_irq_noflags(uint8_t *r, unsigned irq)
{
	r[0] = 0x22; /* small item: IRQ, 2 bytes (ISA: edge, active high) */
	hr_put_le16(r + 1, (uint16_t)(1u << irq));
	return 3;
}

static size_t res_end(uint8_t *r)
{
	r[0] = 0x79;
	r[1] = 0; /* checksum 0: "treat as valid" */
	return 2;
}

static int build_dsdt(uint8_t *t, size_t size, unsigned nr_vdevs, size_t *bytes_r)
{
	struct aml a = {.b = t, .len = HDR_BYTES, .cap = size};
	uint8_t crs[32];
	size_t n, dev, scope;

	if (size < HDR_BYTES)
		return -E2BIG;
	table_header(t, "DSDT", 2); /* revision 2: 64-bit integers */
	aml_byte(&a, 0x10);	    /* ScopeOp */
	scope = aml_open(&a);
	aml_bytes(&a, "\\_SB_", 5);

	dev = aml_device(&a, "COM1");
	aml_name_int(&a, "_HID", eisa_id("PNP0501"));
	aml_name_int(&a, "_UID", 1);
	n = res_io(crs, COM1_PORT, 8);
	n += res_irq_noflags(crs + n, COM1_IRQ);
	n += res_end(crs + n);
	aml_name_buffer(&a, "_CRS", crs, n);
	aml_close(&a, dev);

	dev = aml_device(&a, "RTC_");
	aml_name_int(&a, "_HID", eisa_id("PNP0B00"));
	n = res_io(crs, CMOS_PORT, 2);
	n += res_irq_noflags(crs + n, CMOS_IRQ);
	n += res_end(crs + n);
	aml_name_buffer(&a, "_CRS", crs, n);
	aml_close(&a, dev);

	for (unsigned i = 0; i < nr_vdevs; i++) {
		char seg[8];
		snprintf(seg, sizeof(seg), "VR%02X", i & 0xff);
		dev = aml_device(&a, seg);
		aml_name_string(&a, "_HID", "LNRO0005");
		aml_name_int(&a, "_UID", i);
		n = res_memory32_fixed(crs, (uint32_t)(VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_STRIDE),
				       VIRTIO_MMIO_BYTES);
		n += res_interrupt_level_high(crs + n, virtio_mmio_gsi(i));
		n += res_end(crs + n);
		aml_name_buffer(&a, "_CRS", crs, n);
		aml_close(&a, dev);
	}
	aml_close(&a, scope);
	if (a.err)
		return a.err;
	finish_table(t, a.len);
	*bytes_r = a.len;
	return 0;
}

static size_t build_fadt(uint8_t *t, uint64_t dsdt_gpa)
{
	table_header(t, "FACP", 6);
	memset(t + HDR_BYTES, 0, FADT_BYTES - HDR_BYTES);
	hr_put_le32(t + 40, (uint32_t)dsdt_gpa); /* DSDT */
	hr_put_le16(t + 109, BOOT_ARCH_LEGACY | BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_MSI);
	hr_put_le32(t + 112, FADT_F_WBINVD | FADT_F_RESET_REG | FADT_F_HW_REDUCED);
	gas_io(t + 116, RESET_PORT, 8); /* RESET_REG */
	t[128] = RESET_VALUE;
	t[131] = 0;			/* FADT minor version: 6.0 */
	hr_put_le64(t + 140, dsdt_gpa); /* X_DSDT */
	memcpy(t + 268, "HAREPLIC", 8); /* hypervisor vendor identity */
	finish_table(t, FADT_BYTES);
	return FADT_BYTES;
}

static size_t build_madt(uint8_t *t, unsigned nr_vcpus, unsigned nr_vdevs)
{
	uint8_t *p = t + HDR_BYTES + 8;

	table_header(t, "APIC", 5);
	hr_put_le32(t + 36, LAPIC_GPA);
	hr_put_le32(t + 40, 1); /* PCAT_COMPAT: the 8259s are there (in-kernel) */
	for (unsigned i = 0; i < nr_vcpus; i++, p += 8) {
		p[0] = 0; /* processor local APIC */
		p[1] = 8;
		p[2] = (uint8_t)i;     /* ACPI processor UID */
		p[3] = (uint8_t)i;     /* APIC ID */
		hr_put_le32(p + 4, 1); /* enabled */
	}
	p[0] = 1; /* I/O APIC */
	p[1] = 12;
	p[2] = (uint8_t)nr_vcpus;
	p[3] = 0;
	hr_put_le32(p + 4, IOAPIC_GPA);
	hr_put_le32(p + 8, 0); /* GSI base */
	p += 12;
	for (unsigned irq = 0; irq < ISA_IRQS; irq++) {
		if (irq == 2)
			continue;   /* the cascade */
		uint16_t flags = 0; /* conforming to the bus: ISA, edge, active high */
		for (unsigned d = 0; d < nr_vdevs; d++)
			if (irq == virtio_mmio_gsi(d))
				flags = MADT_LEVEL_HIGH;
		p[0] = 2; /* interrupt source override */
		p[1] = 10;
		p[2] = 0; /* ISA */
		p[3] = (uint8_t)irq;
		hr_put_le32(p + 4, irq);
		hr_put_le16(p + 8, flags);
		p += 10;
	}
	p[0] = 4; /* local APIC NMI: every processor, LINT1 */
	p[1] = 6;
	p[2] = 0xff;
	hr_put_le16(p + 3, 0);
	p[5] = 1;
	p += 6;
	finish_table(t, (size_t)(p - t));
	return (size_t)(p - t);
}

static size_t madt_bytes(unsigned nr_vcpus)
{
	return HDR_BYTES + 8 + 8u * nr_vcpus + 12 + 10u * (ISA_IRQS - 1) + 6;
}

static size_t align16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

int kvm_acpi_build(uint8_t *buf, size_t size, uint64_t gpa, unsigned nr_vcpus, unsigned nr_vdevs,
		   size_t *bytes_r)
{
	size_t rsdp = 0, xsdt = align16(RSDP_BYTES), xsdt_bytes = HDR_BYTES + 2 * 8;
	size_t fadt = align16(xsdt + xsdt_bytes), madt = align16(fadt + FADT_BYTES);
	size_t dsdt = align16(madt + madt_bytes(nr_vcpus)), dsdt_bytes = 0;
	int rc;

	*bytes_r = 0;
	if (!nr_vcpus || nr_vcpus > MAX_VCPUS || gpa % 16 || nr_vdevs > VIRTIO_MMIO_MAX_DEVS)
		return -EINVAL;
	if (dsdt >= size)
		return -E2BIG;
	memset(buf, 0, dsdt);
	if ((rc = build_dsdt(buf + dsdt, size - dsdt, nr_vdevs, &dsdt_bytes)) < 0)
		return rc;
	build_fadt(buf + fadt, gpa + dsdt);
	build_madt(buf + madt, nr_vcpus, nr_vdevs);

	table_header(buf + xsdt, "XSDT", 1);
	hr_put_le64(buf + xsdt + HDR_BYTES, gpa + fadt);
	hr_put_le64(buf + xsdt + HDR_BYTES + 8, gpa + madt);
	finish_table(buf + xsdt, xsdt_bytes);

	uint8_t *r = buf + rsdp;
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, "HAREPL", 6);
	r[15] = 2;		/* revision: ACPI 2.0+, XSDT */
	hr_put_le32(r + 16, 0); /* no RSDT */
	hr_put_le32(r + 20, RSDP_BYTES);
	hr_put_le64(r + 24, gpa + xsdt);
	r[8] = checksum(r, 20);
	r[32] = checksum(r, RSDP_BYTES);
	*bytes_r = dsdt + dsdt_bytes;
	return 0;
}

const uint8_t kvm_reset_vector_code[KVM_RESET_VECTOR_BYTES] = {
    0xb0, 0xfe, /* mov al, 0xfe */
    0xe6, 0x64, /* out 0x64, al: the keyboard controller's reset pulse */
    0xf4,	/* hlt */
    0xeb, 0xfd, /* jmp hlt */
};

int kvm_acpi_write(struct kvm_vm *vm)
{
	uint8_t *at = kvm_gpa_ptr(vm, KVM_ACPI_GPA, KVM_ACPI_MAX_BYTES);
	size_t bytes;
	int rc;

	if (!at) {
		kvm_set_error(vm, "ACPI tables: no guest RAM at 0x%llx",
			      (unsigned long long)KVM_ACPI_GPA);
		return -EINVAL;
	}
	uint8_t *rv = kvm_gpa_ptr(vm, KVM_RESET_VECTOR_GPA, KVM_RESET_VECTOR_BYTES);
	if (rv)
		memcpy(rv, kvm_reset_vector_code, KVM_RESET_VECTOR_BYTES);
	rc = kvm_acpi_build(at, KVM_ACPI_MAX_BYTES, KVM_ACPI_GPA, vm->nr_vcpus, vm->nr_vdevs,
			    &bytes);
	if (rc < 0) {
		kvm_set_error(vm, "ACPI tables for %u vCPUs and %u devices: %s", vm->nr_vcpus,
			      vm->nr_vdevs, strerror(-rc));
		return rc;
	}
	log_debug(vm->name, "acpi: %zu bytes of tables at 0x%llx (%u vCPUs, %u virtio-mmio)", bytes,
		  (unsigned long long)KVM_ACPI_GPA, vm->nr_vcpus, vm->nr_vdevs);
	return 0;
}
