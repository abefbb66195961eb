/* t-acpi.c - the KVM backend's ACPI tables (src/backends/kvm/acpi.c), built
 * into a buffer for a few VM shapes, no /dev/kvm: signatures, lengths,
 * checksums, the XSDT's pointers, the FADT's flags, the MADT's entries and
 * the DSDT's devices; then, with iasl (acpica-tools), the DSDT disassembled:
 * LNRO0005 devices with the right _CRS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/acpi.h"
#include "backends/kvm/virtio.h"
#include "common/unaligned.h"
#include "tap.h"

#define GPA 0xe0000ull

static uint8_t buf[KVM_ACPI_MAX_BYTES], again[KVM_ACPI_MAX_BYTES];

static int sum_zero(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s == 0;
}

/* The table at guest-physical gpa, if it is inside buf and well-formed. */
static const uint8_t *table_at(uint64_t gpa, size_t used, const char *sig)
{
	if (gpa < GPA || gpa - GPA + 36 > used)
		return NULL;
	const uint8_t *t = buf + (gpa - GPA);
	uint32_t len = hr_get_le32(t + 4);
	if (memcmp(t, sig, 4) || len < 36 || gpa - GPA + len > used || !sum_zero(t, len))
		return NULL;
	return t;
}

static size_t count(const uint8_t *p, size_t n, const void *pat, size_t m)
{
	size_t c = 0;
	for (size_t i = 0; i + m <= n; i++)
		c += !memcmp(p + i, pat, m);
	return c;
}

/* The DSDT disassembled by iasl, comments and blanks removed; NULL without iasl. */
static char *disassemble(const uint8_t *t, const char *dir)
{
	char path[256], cmd[600];
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(t, hr_get_le32(t + 4), 1, f) != 1 || fclose(f))
		return NULL;
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >iasl.log 2>&1", dir);
	if (system(cmd) != 0)
		return NULL;
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	if (!(f = fopen(path, "r")))
		return NULL;
	char *out = calloc(1, 1 << 16), line[512];
	size_t n = 0;
	while (out && fgets(line, sizeof(line), f)) {
		char *c = strstr(line, "//");
		if (c)
			*c = 0;
		for (char *p = line; *p && n + 1 < (1 << 16); p++)
			if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
				out[n++] = *p;
	}
	fclose(f);
	return out;
}

static void check_shape(unsigned nr_vcpus, unsigned nr_vdevs, const char *tmpdir)
{
	size_t used = 0, used2 = 0;
	int rc = kvm_acpi_build(buf, sizeof(buf), GPA, nr_vcpus, nr_vdevs, &used);
	diag("%u vCPU(s), %u virtio-mmio device(s): %zu bytes", nr_vcpus, nr_vdevs, used);
	ok(rc == 0 && used > 0 && used <= sizeof(buf), "built (rc %d)", rc);

	const uint8_t *r = buf;
	ok(!memcmp(r, "RSD PTR ", 8) && sum_zero(r, 20) && sum_zero(r, 36) && r[15] == 2 &&
	       hr_get_le32(r + 20) == 36,
	   "RSDP: signature, revision 2, length 36, both checksums");
	const uint8_t *x = table_at(hr_get_le64(r + 24), used, "XSDT");
	ok(x && hr_get_le32(x + 4) == 36 + 16, "XSDT: checksum, two entries");
	if (!x)
		return;
	const uint8_t *fadt = table_at(hr_get_le64(x + 36), used, "FACP");
	const uint8_t *madt = table_at(hr_get_le64(x + 44), used, "APIC");
	ok(fadt && hr_get_le32(fadt + 4) == 276 && fadt[8] == 6, "XSDT -> FADT rev 6, 276 bytes");
	ok(madt != NULL, "XSDT -> MADT, checksum");
	if (!fadt || !madt)
		return;
	uint32_t flags = hr_get_le32(fadt + 112);
	ok((flags & (1u << 20)) && (flags & (1u << 10)) && fadt[116] == 1 &&
	       hr_get_le64(fadt + 120) == 0xcf9 && fadt[128] == 6,
	   "FADT: HW_REDUCED_ACPI, reset register port 0xCF9 value 6");
	uint16_t arch = hr_get_le16(fadt + 109);
	ok((arch & 1) && !(arch & 2) && !(arch & (1u << 5)),
	   "FADT: legacy devices, no 8042, CMOS RTC present (IAPC_BOOT_ARCH 0x%x)", arch);
	const uint8_t *dsdt = table_at(hr_get_le64(fadt + 140), used, "DSDT");
	ok(dsdt && hr_get_le32(fadt + 40) == hr_get_le64(fadt + 140),
	   "FADT -> DSDT (DSDT and X_DSDT agree), checksum");

	/* MADT entries */
	unsigned lapics = 0, ids_ok = 1, ioapics = 0, isos = 0, level = 0, nmis = 0, bad = 0;
	uint32_t mlen = hr_get_le32(madt + 4);
	ok(hr_get_le32(madt + 36) == 0xfee00000u, "MADT: local APIC at 0xFEE00000");
	for (uint32_t o = 44; o < mlen; o += madt[o + 1]) {
		const uint8_t *e = madt + o;
		if (e[1] < 2 || o + e[1] > mlen) {
			bad = 1;
			break;
		}
		switch (e[0]) {
		case 0:
			ids_ok &= e[2] == lapics && e[3] == lapics && hr_get_le32(e + 4) == 1;
			lapics++;
			break;
		case 1:
			ioapics++;
			ids_ok &= e[2] == nr_vcpus && hr_get_le32(e + 4) == 0xfec00000u &&
				  hr_get_le32(e + 8) == 0;
			break;
		case 2:
			isos++;
			bad |= e[3] == 2 || hr_get_le32(e + 4) != e[3];
			if (hr_get_le16(e + 8) == 0x000d) {
				level++;
				int dev = 0;
				for (unsigned d = 0; d < nr_vdevs; d++)
					dev |= e[3] == virtio_mmio_gsi(d);
				bad |= !dev;
			}
			break;
		case 4:
			nmis += e[2] == 0xff && e[5] == 1;
			break;
		default:
			bad = 1;
		}
	}
	ok(!bad && lapics == nr_vcpus && ids_ok,
	   "MADT: %u local APICs (= vCPUs), IDs 0..n-1, enabled; the I/O APIC is ID %u", lapics,
	   nr_vcpus);
	ok(ioapics == 1 && isos == 15 && level == nr_vdevs && nmis == 1,
	   "MADT: one I/O APIC, 15 ISA overrides (%u level: the virtio GSIs), NMI on LINT1", level);
	if (!dsdt)
		return;

	/* DSDT: one LNRO0005 per device, with its registers and GSI in _CRS */
	uint32_t dlen = hr_get_le32(dsdt + 4);
	unsigned crs_ok = 0;
	for (unsigned i = 0; i < nr_vdevs; i++) {
		uint8_t mem[12] = {0x86, 9, 0, 1}, irq[9] = {0x89, 6, 0, 1, 1};
		hr_put_le32(mem + 4, (uint32_t)(VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_STRIDE));
		hr_put_le32(mem + 8, VIRTIO_MMIO_BYTES);
		hr_put_le32(irq + 5, virtio_mmio_gsi(i));
		crs_ok += count(dsdt, dlen, mem, 12) == 1 && count(dsdt, dlen, irq, 9) == 1;
	}
	ok(count(dsdt, dlen, "LNRO0005", 9) == nr_vdevs && crs_ok == nr_vdevs,
	   "DSDT: %u LNRO0005 device(s), each _CRS with its registers and level GSI", nr_vdevs);

	memset(again, 0x5a, sizeof(again));
	rc = kvm_acpi_build(again, sizeof(again), GPA, nr_vcpus, nr_vdevs, &used2);
	ok(rc == 0 && used2 == used && !memcmp(buf, again, used),
	   "the same shape builds the same bytes (a replica's open)");

	if (!tmpdir)
		return;
	char *dsl = disassemble(dsdt, tmpdir);
	unsigned found = 0;
	for (unsigned i = 0; dsl && i < nr_vdevs; i++) {
		char want[400], uid[16];
		/* iasl writes the integers 0 and 1 as Zero and One */
		snprintf(uid, sizeof(uid), i == 0 ? "Zero" : i == 1 ? "One" : "0x%02X", i);
		snprintf(want, sizeof(want),
			 "Device(VR%02X){Name(_HID,\"LNRO0005\")Name(_UID,%s)"
			 "Name(_CRS,ResourceTemplate(){Memory32Fixed(ReadWrite,0x%08llX,0x%08X,)"
			 "Interrupt(ResourceConsumer,Level,ActiveHigh,Exclusive,,,){0x%08X,}})}",
			 i, uid, (unsigned long long)(VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_STRIDE),
			 VIRTIO_MMIO_BYTES, virtio_mmio_gsi(i));
		if (strstr(dsl, want))
			found++;
		else
			diag("not in iasl's disassembly: %s", want);
	}
	ok(dsl && found == nr_vdevs && strstr(dsl, "Device(COM1){Name(_HID,EisaId(\"PNP0501\")") &&
	       strstr(dsl, "IO(Decode16,0x0070,0x0070,0x01,0x02,)IRQNoFlags(){8}"),
	   "iasl -d: %u LNRO0005 device(s) with Memory32Fixed + Interrupt, COM1 and the RTC",
	   found);
	if (!dsl)
		diag("iasl failed; see %s/iasl.log", tmpdir);
	free(dsl);
}

int main(void)
{
	static const unsigned shapes[][2] = {{1, 0}, {2, 1}, {4, 2}, {64, 2}, {2, 5}};
	size_t used;
	char tmpdir[] = "/tmp/t-acpi.XXXXXX";
	int have_iasl = system("iasl -v >/dev/null 2>&1") == 0;
	unsigned n = sizeof(shapes) / sizeof(shapes[0]);

	plan((int)n * (have_iasl ? 14 : 13) + 3);
	if (!have_iasl)
		diag("iasl not found (Debian: acpica-tools): the DSDT is not disassembled");
	if (have_iasl && !mkdtemp(tmpdir))
		have_iasl = 0;
	for (unsigned i = 0; i < n; i++)
		check_shape(shapes[i][0], shapes[i][1], have_iasl ? tmpdir : NULL);
	ok(kvm_acpi_build(buf, sizeof(buf), GPA, 0, 1, &used) == -EINVAL, "no vCPU: refused");
	ok(kvm_acpi_build(buf, sizeof(buf), GPA + 4, 1, 1, &used) == -EINVAL,
	   "an unaligned address: refused");
	ok(kvm_acpi_build(buf, 400, GPA, 1, 1, &used) == -E2BIG, "a buffer too small: -E2BIG");
	if (have_iasl) {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			diag("could not remove %s", tmpdir);
	}
	return tap_failed ? 1 : 0;
}
