/*
 * loader-linux.c - the Linux x86 boot protocol (Documentation/arch/x86/
 * boot.rst) for a bzImage, entered at its 64-bit entry point the way a
 * VMM that has no BIOS does:
 *
 *   - the protected-mode kernel (the file after its (setup_sects + 1) * 512
 *     bytes of real-mode setup) at pref_address when the kernel is
 *     relocatable and fits there, else at code32_start;
 *   - the "zero page" (struct boot_params) at KVM_LINUX_ZERO_PAGE_GPA: zeros,
 *     then the file's setup header, with the loader's fields filled in:
 *     type_of_loader 0xff (undefined loader), CAN_USE_HEAP and heap_end_ptr,
 *     cmd_line_ptr, ramdisk_image/ramdisk_size (and their ext_ high halves),
 *     and the e820 table from the VM's memory layout (kvm_e820_build);
 *   - the command line at KVM_LINUX_CMDLINE_GPA (at most cmdline_size bytes);
 *   - the initrd (cfg.initrd_path) page-aligned at the top of low RAM, below
 *     initrd_addr_max and above the kernel's init_size;
 *   - an identity map of the first 4 GiB (2 MiB pages) at KVM_LINUX_PML4_GPA
 *     and a GDT whose selector 0x10 is 64-bit code and 0x18 data;
 *   - vCPU 0 in long mode (CR0 PE|PG, CR4 PAE, EFER LME|LMA), interrupts
 *     off, RIP = kernel + 0x200 (the 64-bit entry), RSI = the zero page;
 *   - an MP table (mptable.c) so that Linux finds every vCPU and the I/O APIC
 *     (with acpi=off; otherwise it reads the same from the ACPI tables, acpi.c,
 *     whose RSDP address goes in acpi_rsdp_addr from boot protocol 2.14).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acpi.h"
#include "kvm-internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/unaligned.h"

/* setup header fields: offsets in the file and in boot_params alike */
#define HDR_SETUP_SECTS	     0x1f1
#define HDR_BOOT_FLAG	     0x1fe
#define HDR_JUMP	     0x200
#define HDR_MAGIC	     0x202
#define HDR_VERSION	     0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS	     0x211
#define HDR_CODE32_START     0x214
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21c
#define HDR_HEAP_END_PTR     0x224
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_ADDR_MAX  0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE	     0x234
#define HDR_XLOADFLAGS	     0x236
#define HDR_CMDLINE_SIZE     0x238
#define HDR_PREF_ADDRESS     0x258
#define HDR_INIT_SIZE	     0x260

/* boot_params fields outside the setup header */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_ACPI_RSDP_ADDR    0x070 /* boot protocol 2.14 */
#define BP_E820_ENTRIES	     0x1e8
#define BP_E820_TABLE	     0x2d0
#define BP_E820_TABLE_MAX    128

#define LOADED_HIGH   0x01
#define CAN_USE_HEAP  0x80
#define XLF_KERNEL_64 0x01

#define BOOT_MAGIC    0x53726448u /* "HdrS" */
#define MIN_VERSION   0x020c	  /* xloadflags: the 64-bit entry is declared */
#define GDT_GPA	      0x500
#define HEAP_END      0xfe00
#define RAM_LOW_TOP   0x9fc00 /* end of base memory (the EBDA follows) */
#define PAGE_BYTES    0x1000ull
#define TWO_MIB	      0x200000ull
#define IDENTITY_GIBS 4

int kvm_is_bzimage(const uint8_t *img, size_t bytes)
{
	return bytes > 0x270 && hr_get_le16(img + HDR_BOOT_FLAG) == 0xaa55 &&
	       hr_get_le32(img + HDR_MAGIC) == BOOT_MAGIC;
}

/* The file's setup header: from 0x1f1 to the end its jump at 0x200 names. */
static size_t setup_header_end(const uint8_t *img)
{
	return 0x202 + img[HDR_JUMP + 1];
}

static int read_file(struct kvm_vm *vm, const char *path, uint8_t **data_r, size_t *bytes_r)
{
	struct stat st;
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*data_r = NULL;
	if (fd < 0) {
		rc = -errno;
		kvm_set_error(vm, "cannot open initrd %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (1ll << 31)) {
		kvm_set_error(vm, "initrd %s: empty or larger than 2 GiB", path);
		close(fd);
		return -HR_EGUEST;
	}
	*bytes_r = (size_t)st.st_size;
	if (!(*data_r = malloc(*bytes_r))) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < *bytes_r) {
		ssize_t r = read(fd, *data_r + got, *bytes_r - got);
		if (r <= 0) {
			kvm_set_error(vm, "initrd %s: short read", path);
			free(*data_r);
			*data_r = NULL;
			close(fd);
			return -EIO;
		}
		got += (size_t)r;
	}
	close(fd);
	return 0;
}

/* 4 GiB identity-mapped with 2 MiB pages: PML4, one PDPT, four PDs. */
static void write_page_tables(struct kvm_vm *vm)
{
	uint8_t *pml4 = kvm_gpa_ptr(vm, KVM_LINUX_PML4_GPA, PAGE_BYTES * (2 + IDENTITY_GIBS));
	uint8_t *pdpt = pml4 + PAGE_BYTES, *pd = pml4 + 2 * PAGE_BYTES;
	memset(pml4, 0, PAGE_BYTES * (2 + IDENTITY_GIBS));
	hr_put_le64(pml4, (KVM_LINUX_PML4_GPA + PAGE_BYTES) | 0x3); /* present, writable */
	for (unsigned g = 0; g < IDENTITY_GIBS; g++) {
		hr_put_le64(pdpt + 8 * g, (KVM_LINUX_PML4_GPA + (2 + g) * PAGE_BYTES) | 0x3);
		for (unsigned i = 0; i < 512; i++)
			hr_put_le64(pd + g * PAGE_BYTES + 8 * i,
				    ((uint64_t)g << 30 | (uint64_t)i * TWO_MIB) | 0x83); /* PS */
	}
}

static int set_long_mode(struct kvm_vm *vm, uint64_t rip, uint64_t rsi)
{
	struct kvm_vcpu *v = &vm->vcpus[0];
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	uint8_t *gdt = kvm_gpa_ptr(vm, GDT_GPA, 32);
	hr_put_le64(gdt + 0, 0);
	hr_put_le64(gdt + 8, 0);
	hr_put_le64(gdt + 16, 0x00af9b000000ffffull); /* 0x10: 64-bit code */
	hr_put_le64(gdt + 24, 0x00cf93000000ffffull); /* 0x18: data */
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	struct kvm_segment code = {.limit = 0xffffffff,
				   .selector = 0x10,
				   .type = 0xb,
				   .present = 1,
				   .s = 1,
				   .l = 1,
				   .g = 1};
	struct kvm_segment data = {.limit = 0xffffffff,
				   .selector = 0x18,
				   .type = 0x3,
				   .present = 1,
				   .s = 1,
				   .db = 1,
				   .g = 1};
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.gdt.base = GDT_GPA;
	sregs.gdt.limit = 31;
	sregs.cr3 = KVM_LINUX_PML4_GPA;
	sregs.cr4 = 0x20;		       /* PAE */
	sregs.cr0 = 0x80000000u | 0x20 | 0x11; /* PG | NE | ET | PE */
	sregs.efer = 0x500;		       /* LME | LMA */
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = rip;
	regs.rsi = rsi;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* Where the protected-mode kernel goes; 0 if it does not fit in low RAM. */
static uint64_t kernel_address(const uint8_t *img, uint64_t low_ram_end, uint64_t *init_size_r)
{
	uint64_t pref = hr_get_le64(img + HDR_PREF_ADDRESS);
	uint64_t init = hr_get_le32(img + HDR_INIT_SIZE);
	uint32_t align = hr_get_le32(img + HDR_KERNEL_ALIGNMENT);
	uint64_t at = hr_get_le32(img + HDR_CODE32_START);

	*init_size_r = init;
	if (img[HDR_RELOCATABLE] && pref >= 0x100000 && pref + init <= low_ram_end &&
	    (!align || pref % align == 0))
		at = pref;
	return at + init <= low_ram_end ? at : 0;
}

int kvm_load_linux(struct kvm_vm *vm, const uint8_t *img, size_t bytes, const char *path)
{
	uint16_t version = hr_get_le16(img + HDR_VERSION);
	uint8_t *initrd = NULL;
	size_t initrd_bytes = 0;
	int rc;

	if (version < MIN_VERSION || !(hr_get_le16(img + HDR_XLOADFLAGS) & XLF_KERNEL_64) ||
	    !(img[HDR_LOADFLAGS] & LOADED_HIGH)) {
		kvm_set_error(vm,
			      "%s: a bzImage of boot protocol %u.%02u without a 64-bit entry "
			      "point (need 2.12 and XLF_KERNEL_64)",
			      path, version >> 8, version & 0xff);
		return -HR_EGUEST;
	}
	unsigned setup_sects = img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4;
	size_t kernel_off = (size_t)(setup_sects + 1) * 512, hdr_end = setup_header_end(img);
	if (kernel_off >= bytes || hdr_end > 0x1000 || hdr_end > bytes) {
		kvm_set_error(vm, "%s: truncated bzImage", path);
		return -HR_EGUEST;
	}

	struct kvm_e820 m[KVM_E820_MAX];
	int nm = kvm_e820_build(vm, m);
	uint64_t low_end = m[3].addr + m[3].len; /* end of the RAM above 1 MiB, below 4 GiB */
	uint64_t init_size, load = kernel_address(img, low_end, &init_size);
	size_t kernel_bytes = bytes - kernel_off;
	if (!load || kernel_bytes > init_size) {
		kvm_set_error(vm,
			      "%s: the kernel needs %llu MiB from 0x%llx; give the VM more memory",
			      path, (unsigned long long)(init_size >> 20),
			      (unsigned long long)hr_get_le64(img + HDR_PREF_ADDRESS));
		return -HR_EGUEST;
	}
	memcpy(kvm_gpa_ptr(vm, load, kernel_bytes), img + kernel_off, kernel_bytes);

	/* the zero page: the file's setup header, then what the loader fills in */
	uint8_t *bp = kvm_gpa_ptr(vm, KVM_LINUX_ZERO_PAGE_GPA, 0x1000);
	memset(bp, 0, 0x1000);
	memcpy(bp + HDR_SETUP_SECTS, img + HDR_SETUP_SECTS, hdr_end - HDR_SETUP_SECTS);
	bp[HDR_TYPE_OF_LOADER] = 0xff;
	bp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
	hr_put_le16(bp + HDR_HEAP_END_PTR, HEAP_END - 0x200);
	hr_put_le32(bp + HDR_CODE32_START, (uint32_t)load);

	const char *cl = vm->cfg.cmdline ? vm->cfg.cmdline : "";
	size_t cl_bytes = strlen(cl) + 1;
	uint32_t cl_max = hr_get_le32(img + HDR_CMDLINE_SIZE);
	if (cl_bytes > cl_max + 1ull || cl_bytes > KVM_LINUX_CMDLINE_MAX) {
		kvm_set_error(vm, "%s: the command line has %zu bytes, the kernel takes %u", path,
			      cl_bytes - 1, cl_max);
		return -E2BIG;
	}
	memcpy(kvm_gpa_ptr(vm, KVM_LINUX_CMDLINE_GPA, cl_bytes), cl, cl_bytes);
	hr_put_le32(bp + HDR_CMD_LINE_PTR, KVM_LINUX_CMDLINE_GPA);
	hr_put_le32(bp + BP_EXT_CMD_LINE_PTR, 0);

	if (vm->cfg.initrd_path) {
		if ((rc = read_file(vm, vm->cfg.initrd_path, &initrd, &initrd_bytes)) < 0)
			return rc;
		uint64_t top = low_end, max = hr_get_le32(img + HDR_INITRD_ADDR_MAX);
		if (max && top > max + 1)
			top = max + 1;
		uint64_t at = initrd_bytes <= top ? (top - initrd_bytes) & ~(PAGE_BYTES - 1) : 0;
		if (at < load + init_size) {
			kvm_set_error(vm,
				      "initrd %s (%zu MiB) does not fit between the kernel and "
				      "the top of low RAM; give the VM more memory",
				      vm->cfg.initrd_path, initrd_bytes >> 20);
			free(initrd);
			return -HR_EGUEST;
		}
		memcpy(kvm_gpa_ptr(vm, at, initrd_bytes), initrd, initrd_bytes);
		free(initrd);
		hr_put_le32(bp + HDR_RAMDISK_IMAGE, (uint32_t)at);
		hr_put_le32(bp + HDR_RAMDISK_SIZE, (uint32_t)initrd_bytes);
		hr_put_le32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(at >> 32));
		hr_put_le32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)initrd_bytes >> 32));
	}

	bp[BP_E820_ENTRIES] = (uint8_t)nm;
	for (int i = 0; i < nm && i < BP_E820_TABLE_MAX; i++) {
		uint8_t *e = bp + BP_E820_TABLE + 20 * i;
		hr_put_le64(e, m[i].addr);
		hr_put_le64(e + 8, m[i].len);
		hr_put_le32(e + 16, m[i].type);
	}

	if (version >= 0x020e) /* older kernels scan 0xE0000 for it */
		hr_put_le64(bp + BP_ACPI_RSDP_ADDR, KVM_ACPI_GPA);
	kvm_setup_bda(vm);
	if ((rc = kvm_mptable_write(vm)) < 0)
		return rc;
	write_page_tables(vm);
	log_debug(vm->name,
		  "linux: boot protocol %u.%02u, kernel at 0x%llx (%zu bytes, init_size %llu "
		  "MiB), initrd %zu bytes",
		  version >> 8, version & 0xff, (unsigned long long)load, kernel_bytes,
		  (unsigned long long)(init_size >> 20), initrd_bytes);
	return set_long_mode(vm, load + 0x200, KVM_LINUX_ZERO_PAGE_GPA);
}
