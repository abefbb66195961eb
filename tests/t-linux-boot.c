/*
 * t-linux-boot.c - the Linux boot protocol of the KVM loader against a real
 * bzImage (Debian's /boot/vmlinuz-*, or $HR_LINUX_KERNEL): the VM is built
 * and loaded but never run (this host's KVM may not run a stock kernel), and
 * what the loader placed is read back from guest memory and the vCPU and
 * checked against the kernel file and the boot protocol: the setup header
 * copied, the loader's fields, the command line, the initrd bytes, the e820
 * table, the protected-mode kernel, long mode at the 64-bit entry, the page
 * tables and the MP table.  Bad inputs are refused with a reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "backends/kvm/kvm-internal.h"
#include "common/err.h"
#include "common/unaligned.h"

static const struct hr_backend_ops *ops;
static uint8_t *kimg;
static size_t kbytes;

static int slurp(const char *path, uint8_t **data_r, size_t *bytes_r)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	*bytes_r = (size_t)st.st_size;
	*data_r = malloc(*bytes_r);
	ssize_t r = *data_r ? read(fd, *data_r, *bytes_r) : -1;
	close(fd);
	return r == (ssize_t)*bytes_r ? 0 : -EIO;
}

static uint8_t *gpa(struct hr_vm *vm, uint64_t a, uint64_t len)
{
	const struct hr_mem_region *r;
	unsigned n;
	ops->mem_layout(vm, &r, &n);
	for (unsigned i = 0; i < n; i++)
		if (a >= r[i].gpa && a + len <= r[i].gpa + r[i].bytes)
			return (uint8_t *)r[i].hva + (a - r[i].gpa);
	return NULL;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

static int open_vm(struct hr_vm **vm, const char *name, uint64_t mem, unsigned vcpus,
		   const char *kernel, const char *initrd, const char *cmdline)
{
	struct hr_vm_config cfg = {.name = name,
				   .mem_bytes = mem,
				   .nr_vcpus = vcpus,
				   .kernel_path = kernel,
				   .initrd_path = initrd,
				   .cmdline = cmdline};
	*vm = NULL;
	return ops->open(vm, &cfg);
}

static void test_layout(const char *kernel, const char *initrd, const uint8_t *rd, size_t rd_bytes)
{
	const char *cl = "console=ttyS0 panic=-1 hr.test=layout";
	struct hr_vm *vm;
	int rc = open_vm(&vm, "t-linux", 512ull << 20, 2, kernel, initrd, cl);
	ok(rc == 0, "a 512 MiB, 2-vCPU VM loads %s with an initrd (%s%s%s)", kernel,
	   hr_strerror(rc), vm ? " " : "", vm ? ops->last_error(vm) : "");
	if (rc) {
		ops->close(vm);
		return;
	}
	uint8_t *bp = gpa(vm, KVM_LINUX_ZERO_PAGE_GPA, 4096);
	size_t hdr_end = 0x202 + kimg[0x201];

	/* the setup header is the file's, but for the fields a loader writes */
	static const struct {
		unsigned off, len;
	} loader_fields[] = {{0x210, 2}, {0x214, 4}, {0x218, 8}, {0x224, 2}, {0x228, 4}};
	uint8_t want[0x1000], got[0x1000];
	memcpy(want, kimg, hdr_end);
	memcpy(got, bp, hdr_end);
	for (unsigned i = 0; i < sizeof(loader_fields) / sizeof(loader_fields[0]); i++) {
		memset(want + loader_fields[i].off, 0, loader_fields[i].len);
		memset(got + loader_fields[i].off, 0, loader_fields[i].len);
	}
	ok(!memcmp(want + 0x1f1, got + 0x1f1, hdr_end - 0x1f1),
	   "boot_params 0x1f1..0x%zx: the kernel's setup header (boot protocol %u.%02u)", hdr_end,
	   kimg[0x207], kimg[0x206]);
	int zero_before = 1;
	for (unsigned i = 0; i < 0x1e8; i++)
		if (i != 0xc0 && i != 0xc4 && i != 0xc8 && (i < 0x70 || i >= 0x78) && bp[i])
			zero_before = 0;
	ok(zero_before, "boot_params below the e820 count are zero (no screen, APM, EDID)");
	uint8_t *rsdp = gpa(vm, 0xe0000, 8);
	ok(hr_get_le64(bp + 0x70) == ((kimg[0x207] << 8 | kimg[0x206]) >= 0x020e ? 0xe0000u : 0) &&
	       rsdp && !memcmp(rsdp, "RSD PTR ", 8),
	   "acpi_rsdp_addr 0x%llx: the ACPI tables' RSDP (boot protocol 2.14 on)",
	   (unsigned long long)hr_get_le64(bp + 0x70));
	ok(bp[0x210] == 0xff && (bp[0x211] & 0x81) == 0x81 &&
	       hr_get_le16(bp + 0x224) == 0xfe00 - 0x200,
	   "type_of_loader 0xff, loadflags LOADED_HIGH | CAN_USE_HEAP (0x%x), heap_end_ptr 0x%x",
	   bp[0x211], hr_get_le16(bp + 0x224));

	uint32_t clp = hr_get_le32(bp + 0x228);
	const char *gcl = (const char *)gpa(vm, clp, strlen(cl) + 1);
	ok(clp == KVM_LINUX_CMDLINE_GPA && gcl && !strcmp(gcl, cl) && !hr_get_le32(bp + 0xc8),
	   "cmd_line_ptr 0x%x holds the command line alone, NUL-terminated", clp);

	uint64_t rdi = hr_get_le32(bp + 0x218) | (uint64_t)hr_get_le32(bp + 0xc0) << 32;
	uint64_t rds = hr_get_le32(bp + 0x21c) | (uint64_t)hr_get_le32(bp + 0xc4) << 32;
	uint8_t *grd = gpa(vm, rdi, rds);
	ok(rds == rd_bytes && grd && !memcmp(grd, rd, rd_bytes) && rdi % 4096 == 0,
	   "ramdisk_image 0x%llx / ramdisk_size %llu: the initrd's bytes, page aligned",
	   (unsigned long long)rdi, (unsigned long long)rds);
	ok(rdi + rds <= hr_get_le32(kimg + 0x22c) + 1ull,
	   "the initrd ends below initrd_addr_max 0x%x", hr_get_le32(kimg + 0x22c));

	/* e820: the VM's layout, RAM totalling the VM's memory less the firmware areas */
	unsigned ne = bp[0x1e8];
	uint64_t ram = 0, end = 0;
	int sorted = 1, covers = 0;
	for (unsigned i = 0; i < ne; i++) {
		const uint8_t *e = bp + 0x2d0 + 20 * i;
		uint64_t a = hr_get_le64(e), l = hr_get_le64(e + 8);
		uint32_t t = hr_get_le32(e + 16);
		if (a < end)
			sorted = 0;
		end = a + l;
		if (t == 1)
			ram += l;
		if (t == 1 && a <= 0x1000000 && a + l >= rdi + rds)
			covers = 1;
		diag("e820 %u: 0x%010llx +0x%010llx type %u", i, (unsigned long long)a,
		     (unsigned long long)l, t);
	}
	ok(ne >= 7 && ne <= KVM_E820_MAX && sorted && covers &&
	       ram == (512ull << 20) - 0x400 - 0x20000 - 0x60000,
	   "e820: %u sorted entries, %llu KiB of RAM (512 MiB less EBDA, BIOS area and the top 128 "
	   "KiB), one RAM range holding kernel and initrd",
	   ne, (unsigned long long)(ram >> 10));

	/* the protected-mode kernel at the address the header prefers (relocatable) */
	uint32_t load = hr_get_le32(bp + 0x214);
	size_t koff = (size_t)((kimg[0x1f1] ? kimg[0x1f1] : 4) + 1) * 512;
	uint8_t *gk = gpa(vm, load, kbytes - koff);
	ok(load == hr_get_le64(kimg + 0x258) && gk && !memcmp(gk, kimg + koff, kbytes - koff),
	   "the protected-mode kernel (%zu bytes from file offset 0x%zx) at pref_address 0x%x",
	   kbytes - koff, koff, load);
	ok(rdi >= load + hr_get_le32(kimg + 0x260),
	   "the initrd lies above the kernel's init_size (%u MiB)",
	   hr_get_le32(kimg + 0x260) >> 20);

	/* vCPU 0 in long mode at the 64-bit entry, RSI = boot_params */
	struct kvm_vm *kvm = (struct kvm_vm *)vm;
	struct kvm_sregs s;
	struct kvm_regs r;
	int got_regs = !ioctl(kvm->vcpus[0].fd, KVM_GET_SREGS, &s) &&
		       !ioctl(kvm->vcpus[0].fd, KVM_GET_REGS, &r);
	ok(got_regs && r.rip == load + 0x200u && r.rsi == KVM_LINUX_ZERO_PAGE_GPA &&
	       !(r.rflags & 0x200),
	   "entry: RIP 0x%llx = kernel + 0x200, RSI 0x%llx = boot_params, IF off",
	   (unsigned long long)r.rip, (unsigned long long)r.rsi);
	ok(got_regs && (s.efer & 0x500) == 0x500 && (s.cr0 & 0x80000001u) == 0x80000001u &&
	       (s.cr4 & 0x20) && s.cs.l && !s.cs.db && s.cs.selector == 0x10 &&
	       s.ds.selector == 0x18 && s.cr3 == KVM_LINUX_PML4_GPA,
	   "long mode: EFER 0x%llx CR0 0x%llx CR4 0x%llx, CS 0x%x 64-bit, DS 0x%x, CR3 0x%llx",
	   (unsigned long long)s.efer, (unsigned long long)s.cr0, (unsigned long long)s.cr4,
	   s.cs.selector, s.ds.selector, (unsigned long long)s.cr3);

	/* the page tables map kernel, boot_params and initrd 1:1 */
	uint8_t *pml4 = gpa(vm, s.cr3, 4096);
	int ident = pml4 != NULL;
	uint64_t probes[] = {KVM_LINUX_ZERO_PAGE_GPA, load, rdi, rdi + rds - 1, 0xfee00000};
	for (unsigned i = 0; ident && i < 5; i++) {
		uint64_t a = probes[i], e = hr_get_le64(pml4 + 8 * ((a >> 39) & 511));
		uint8_t *pdpt = (e & 1) ? gpa(vm, e & ~0xfffull, 4096) : NULL;
		e = pdpt ? hr_get_le64(pdpt + 8 * ((a >> 30) & 511)) : 0;
		uint8_t *pd = (e & 1) ? gpa(vm, e & ~0xfffull, 4096) : NULL;
		e = pd ? hr_get_le64(pd + 8 * ((a >> 21) & 511)) : 0;
		ident = (e & 0x83) == 0x83 && (e & ~0x1fffffull) == (a & ~0x1fffffull);
	}
	ok(ident, "the page tables map boot_params, kernel, initrd and the local APIC 1:1");

	/* MP table: floating pointer in the EBDA, two processors, an I/O APIC */
	uint8_t *fp = gpa(vm, KVM_MPTABLE_GPA, 16);
	uint8_t *t = fp ? gpa(vm, hr_get_le32(fp + 4), 44) : NULL;
	unsigned cpus = 0, ioapics = 0, irqs = 0;
	if (t && !memcmp(t, "PCMP", 4)) {
		const uint8_t *p = t + 44, *tend = t + hr_get_le16(t + 4);
		for (unsigned i = 0; i < hr_get_le16(t + 34) && p < tend; i++) {
			cpus += p[0] == 0 && (p[3] & 1) && p[1] == cpus;
			ioapics += p[0] == 2 && hr_get_le32(p + 4) == 0xfec00000;
			irqs += p[0] == 3;
			p += p[0] == 0 ? 20 : 8;
		}
	}
	ok(fp && !memcmp(fp, "_MP_", 4) && !sum(fp, 16) && t && !sum(t, hr_get_le16(t + 4)) &&
	       cpus == 2 && ioapics == 1 && irqs == 15,
	   "MP table: checksums, %u processors (APIC IDs 0, 1), %u I/O APIC, %u ISA interrupts",
	   cpus, ioapics, irqs);
	ops->close(vm);
}

static void test_refusals(const char *kernel, const char *initrd, const char *dir)
{
	struct hr_vm *vm;
	char path[512];
	int rc;

	rc = open_vm(&vm, "t-linux-small", 32ull << 20, 1, kernel, initrd, "console=ttyS0");
	ok(rc == -HR_EGUEST && strstr(ops->last_error(vm), "more memory"),
	   "32 MiB is too little for kernel and initrd: refused (%s)",
	   vm ? ops->last_error(vm) : "");
	ops->close(vm);

	char *longcl = malloc(70000);
	memset(longcl, 'x', 69999);
	longcl[69999] = '\0';
	rc = open_vm(&vm, "t-linux-cl", 256ull << 20, 1, kernel, NULL, longcl);
	ok(rc == -E2BIG && strstr(ops->last_error(vm), "command line"),
	   "a command line longer than the kernel's cmdline_size: refused (%s)",
	   vm ? ops->last_error(vm) : "");
	ops->close(vm);
	free(longcl);

	snprintf(path, sizeof(path), "%s/truncated", dir);
	FILE *f = fopen(path, "w");
	fwrite(kimg, 1, 0x400, f);
	fclose(f);
	rc = open_vm(&vm, "t-linux-trunc", 256ull << 20, 1, path, NULL, NULL);
	ok(rc == -HR_EGUEST && strstr(ops->last_error(vm), "truncated"),
	   "a bzImage cut after its setup header: refused (%s)", vm ? ops->last_error(vm) : "");
	ops->close(vm);

	snprintf(path, sizeof(path), "%s/old", dir);
	f = fopen(path, "w");
	uint8_t *old = malloc(kbytes);
	memcpy(old, kimg, kbytes);
	hr_put_le16(old + 0x206, 0x0209); /* no xloadflags */
	fwrite(old, 1, kbytes, f);
	fclose(f);
	free(old);
	rc = open_vm(&vm, "t-linux-old", 256ull << 20, 1, path, NULL, NULL);
	ok(rc == -HR_EGUEST && strstr(ops->last_error(vm), "64-bit entry"),
	   "a bzImage of boot protocol 2.09 (no 64-bit entry declared): refused (%s)",
	   vm ? ops->last_error(vm) : "");
	ops->close(vm);

	rc = open_vm(&vm, "t-linux-noinitrd", 256ull << 20, 1, kernel, "/nonexistent/initrd", NULL);
	ok(rc == -ENOENT && strstr(ops->last_error(vm), "initrd"), "a missing initrd: refused (%s)",
	   vm ? ops->last_error(vm) : "");
	ops->close(vm);
}

int main(void)
{
	const char *kernel = getenv("HR_LINUX_KERNEL");
	glob_t g = {0};
	char dir[] = "/tmp/t-linux-boot.XXXXXX", rdpath[600];

	if (access("/dev/kvm", R_OK | W_OK))
		skip_all("/dev/kvm not usable");
	if (!kernel && glob("/boot/vmlinuz-*", 0, NULL, &g) == 0 && g.gl_pathc)
		kernel = g.gl_pathv[g.gl_pathc - 1];
	if (!kernel || slurp(kernel, &kimg, &kbytes) < 0)
		skip_all("no Linux kernel in /boot (install linux-image-amd64)");
	ops = hr_backend_find("kvm");
	if (!mkdtemp(dir))
		bail("mkdtemp: %s", strerror(errno));
	/* an initrd of 3 MiB + 123 bytes of a recognisable pattern */
	size_t rd_bytes = (3u << 20) + 123;
	uint8_t *rd = malloc(rd_bytes);
	for (size_t i = 0; i < rd_bytes; i++)
		rd[i] = (uint8_t)(i * 2654435761u >> 24);
	snprintf(rdpath, sizeof(rdpath), "%s/initrd", dir);
	FILE *f = fopen(rdpath, "w");
	if (!f || fwrite(rd, 1, rd_bytes, f) != rd_bytes || fclose(f))
		bail("cannot write %s", rdpath);

	plan(15 + 5);
	test_layout(kernel, rdpath, rd, rd_bytes);
	test_refusals(kernel, rdpath, dir);

	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd)) {
	}
	free(rd);
	free(kimg);
	globfree(&g);
	return tap_done();
}
