/*
 * loader.c - load a multiboot v1 kernel (ELF32/ELF64, or any image with the
 * a.out kludge), a Linux bzImage (loader-linux.c: the 64-bit boot protocol)
 * or a PVH ELF (XEN_ELFNOTE_PHYS32_ENTRY) and give vCPU 0 the
 * 32-bit protected-mode entry state those specifications define (multiboot, PVH):
 *
 *   CS   32-bit read/execute, base 0, limit 4 GiB;  DS ES FS GS SS: 32-bit
 *        read/write, base 0, limit 4 GiB;  CR0: PE=1 PG=0;  EFLAGS: IF=0 VM=0;
 *   multiboot: EAX = 0x2BADB002, EBX = multiboot information;
 *   PVH:       EBX = struct hvm_start_info.
 *
 * Like GRUB and QEMU the multiboot command line starts with the kernel path
 * (PVH passes the command line alone).
 * The memory map says what the guest can use: 0..639 KiB, 1 MiB..(RAM below
 * 3 GiB), and RAM above 4 GiB.  On AMD hosts with >= 40 physical address
 * bits it also reserves the HyperTransport hole below 1 TiB, as QEMU does.
 */
#include <cpuid.h>
#include <elf.h>
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

#define MB_MAGIC	   0x1BADB002u
#define MB_BOOT_MAGIC	   0x2BADB002u
#define MB_FLAG_PAGE_ALIGN (1u << 0)
#define MB_FLAG_MEMINFO	   (1u << 1)
#define MB_FLAG_VIDEO	   (1u << 2)
#define MB_FLAG_AOUT	   (1u << 16)
#define MB_SEARCH_BYTES	   8192

#define PVH_MAGIC		 0x336ec578u
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* Where boot data goes: below 640 KiB, above the BDA. */
#define BOOT_GDT_GPA	   0x500
#define BOOT_INFO_GPA	   0x9000
#define BOOT_INFO_END	   0x9f000
#define LOW_RESERVED_BYTES 0x20000

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table;
	uint32_t boot_loader_name, apm_table;
	uint32_t vbe[6];
} __attribute__((packed));

struct mb_mmap {
	uint32_t size;
	uint64_t addr, len;
	uint32_t type;
} __attribute__((packed));

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

struct image {
	uint8_t *data;
	size_t bytes;
	const char *path;
};

/* The HyperTransport range just below 1 TiB, reserved on AMD systems. */
#define AMD_HT_BASE  0xfd00000000ull
#define AMD_HT_BYTES 0x300000000ull

/* QEMU (7.1 and later pc machines) adds the AMD HyperTransport hole as a
 * reserved e820 entry when the guest CPU is AMD and has >= 40 physical
 * address bits.  Our guest sees the host's CPUID vendor and address width
 * (KVM_GET_SUPPORTED_CPUID), so ask the host. */
static int has_amd_ht_hole(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(0, &a, &b, &c, &d) || b != signature_AMD_ebx || c != signature_AMD_ecx ||
	    d != signature_AMD_edx)
		return 0;
	if (__get_cpuid_max(0x80000000u, NULL) < 0x80000008u)
		return 0;
	__cpuid(0x80000008u, a, b, c, d);
	return (a & 0xff) >= 40;
}

int kvm_e820_build(struct kvm_vm *vm, struct kvm_e820 *m)
{
	uint64_t mem = vm->cfg.mem_bytes;
	uint64_t low = mem < HR_LOW_MEM_TOP ? mem : HR_LOW_MEM_TOP;
	int n = 0;
	/* The PC layout QEMU with SeaBIOS presents, so that a guest sees the same
	 * map under both: the top 128 KiB of low RAM is firmware-reserved. */
	m[n++] = (struct kvm_e820){0, 0x9fc00, 1};
	m[n++] = (struct kvm_e820){0x9fc00, 0x400, 2};
	m[n++] = (struct kvm_e820){0xf0000, 0x10000, 2};
	m[n++] = (struct kvm_e820){0x100000, low - 0x100000 - LOW_RESERVED_BYTES, 1};
	m[n++] = (struct kvm_e820){low - LOW_RESERVED_BYTES, LOW_RESERVED_BYTES, 2};
	m[n++] = (struct kvm_e820){0xfeffc000, 0x4000, 2};
	m[n++] = (struct kvm_e820){0xfffc0000, 0x40000, 2};
	if (mem > low)
		m[n++] = (struct kvm_e820){HR_HIGH_MEM_BASE, mem - low, 1};
	/* Last, in address order.  A guest whose RAM above 4 GiB would reach the
	 * hole (~1 TiB) QEMU gives RAM above 1 TiB instead; we do not relocate,
	 * so such a guest gets no entry rather than one overlapping its RAM. */
	if (has_amd_ht_hole() && HR_HIGH_MEM_BASE + (mem - low) <= AMD_HT_BASE)
		m[n++] = (struct kvm_e820){AMD_HT_BASE, AMD_HT_BYTES, 2};
	return n;
}

static int copy_in(struct kvm_vm *vm, uint64_t gpa, const void *src, uint64_t len, uint64_t memsz)
{
	uint8_t *dst = kvm_gpa_ptr(vm, gpa, memsz);
	if (!dst) {
		kvm_set_error(vm, "guest image segment 0x%llx+0x%llx is outside guest RAM",
			      (unsigned long long)gpa, (unsigned long long)memsz);
		return -HR_EGUEST;
	}
	memcpy(dst, src, len);
	memset(dst + len, 0, memsz - len);
	return 0;
}

/* One program header, whatever the ELF class. */
struct phdr {
	uint64_t type, offset, filesz, memsz, paddr;
};

/* The ELF header's entry and program headers; -HR_EGUEST if malformed. */
static int elf_info(const struct image *img, uint64_t *entry_r, unsigned *phnum_r)
{
	const unsigned char *id = img->data;
	if (img->bytes < sizeof(Elf64_Ehdr) || memcmp(id, ELFMAG, SELFMAG))
		return -HR_EGUEST;
	if (id[EI_CLASS] == ELFCLASS32) {
		const Elf32_Ehdr *eh = (const void *)img->data;
		if (eh->e_machine != EM_386 ||
		    eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf32_Phdr) > img->bytes)
			return -HR_EGUEST;
		*entry_r = eh->e_entry;
		*phnum_r = eh->e_phnum;
		return 0;
	}
	if (id[EI_CLASS] == ELFCLASS64) {
		const Elf64_Ehdr *eh = (const void *)img->data;
		if (eh->e_machine != EM_X86_64 ||
		    eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > img->bytes)
			return -HR_EGUEST;
		*entry_r = eh->e_entry;
		*phnum_r = eh->e_phnum;
		return 0;
	}
	return -HR_EGUEST;
}

/* Program header i of an image that passed elf_info.  e_phoff comes from the
 * file and need not be aligned: copy the header out rather than point at it. */
static struct phdr elf_phdr(const struct image *img, unsigned i)
{
	struct phdr p;
	if (img->data[EI_CLASS] == ELFCLASS32) {
		const Elf32_Ehdr *eh = (const void *)img->data;
		Elf32_Phdr ph;
		memcpy(&ph, img->data + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		p = (struct phdr){ph.p_type, ph.p_offset, ph.p_filesz, ph.p_memsz, ph.p_paddr};
	} else {
		const Elf64_Ehdr *eh = (const void *)img->data;
		Elf64_Phdr ph;
		memcpy(&ph, img->data + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		p = (struct phdr){ph.p_type, ph.p_offset, ph.p_filesz, ph.p_memsz, ph.p_paddr};
	}
	return p;
}

/* Load the PT_LOAD segments at their physical addresses; entry from e_entry. */
static int load_elf(struct kvm_vm *vm, const struct image *img, uint64_t *entry_r, uint64_t *end_r)
{
	uint64_t end = 0;
	unsigned phnum;
	int rc = elf_info(img, entry_r, &phnum);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < phnum; i++) {
		struct phdr ph = elf_phdr(img, i);
		if (ph.type != PT_LOAD || !ph.memsz)
			continue;
		if (ph.offset + ph.filesz > img->bytes || ph.filesz > ph.memsz)
			return -HR_EGUEST;
		if ((rc = copy_in(vm, ph.paddr, img->data + ph.offset, ph.filesz, ph.memsz)) < 0)
			return rc;
		if (ph.paddr + ph.memsz > end)
			end = ph.paddr + ph.memsz;
	}
	*end_r = end;
	return 0;
}

/* PVH: the 32-bit entry from a XEN_ELFNOTE_PHYS32_ENTRY note; 0 if none. */
static uint64_t find_pvh_entry(const struct image *img)
{
	uint64_t entry;
	unsigned phnum;
	if (elf_info(img, &entry, &phnum) < 0)
		return 0;
	for (unsigned i = 0; i < phnum; i++) {
		struct phdr ph = elf_phdr(img, i);
		if (ph.type != PT_NOTE || ph.offset + ph.filesz > img->bytes)
			continue;
		uint64_t pos = 0, off = ph.offset, sz = ph.filesz;
		while (pos + 12 <= sz) {
			/* p_offset comes from the file: the note may sit at any address */
			const uint8_t *n = img->data + off + pos;
			uint32_t namesz = hr_get_le32(n), descsz = hr_get_le32(n + 4),
				 ntype = hr_get_le32(n + 8);
			uint64_t desc = pos + 12 + ((namesz + 3) & ~3u);
			if (desc + descsz > sz)
				break;
			if (ntype == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
			    !memcmp(img->data + off + pos + 12, "Xen", 4) && descsz >= 4)
				return hr_get_le32(img->data + off + desc);
			pos = desc + ((descsz + 3) & ~3u);
		}
	}
	return 0;
}

/* What PC firmware leaves in the BIOS data area and that kernels read even when
 * booted by multiboot: COM1's port, the equipment word, base memory in KiB
 * and the EBDA segment.  BDA words sit at odd addresses (0x413). */
void kvm_setup_bda(struct kvm_vm *vm)
{
	uint8_t *bda = kvm_gpa_ptr(vm, 0x400, 0x100);
	hr_put_le16(bda + 0x00, 0x3f8);	  /* COM1 */
	hr_put_le16(bda + 0x0e, 0x9fc0);  /* EBDA segment */
	hr_put_le16(bda + 0x10, 1u << 9); /* equipment: one serial port */
	hr_put_le16(bda + 0x13, 639);	  /* base memory, KiB */
}

static int set_entry_state(struct kvm_vm *vm, uint32_t entry, uint32_t eax, uint32_t ebx)
{
	struct kvm_vcpu *v = &vm->vcpus[0];
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	/* A flat GDT in guest memory: null, null, code32 (0x10), data32 (0x18). */
	kvm_setup_bda(vm);
	uint8_t *gdt = kvm_gpa_ptr(vm, BOOT_GDT_GPA, 32);
	hr_put_le64(gdt + 0, 0);
	hr_put_le64(gdt + 8, 0);
	hr_put_le64(gdt + 16, 0x00cf9b000000ffffull);
	hr_put_le64(gdt + 24, 0x00cf93000000ffffull);

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	struct kvm_segment code = {.base = 0,
				   .limit = 0xffffffff,
				   .selector = 0x10,
				   .type = 0xb,
				   .present = 1,
				   .dpl = 0,
				   .db = 1,
				   .s = 1,
				   .l = 0,
				   .g = 1};
	struct kvm_segment data = code;
	data.selector = 0x18;
	data.type = 0x3;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.gdt.base = BOOT_GDT_GPA;
	sregs.gdt.limit = 31;
	sregs.idt.base = 0;
	sregs.idt.limit = 0x3ff;
	sregs.cr0 = 0x11; /* PE | ET */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = entry;
	regs.rax = eax;
	regs.rbx = ebx;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* A bump allocator for boot data in [BOOT_INFO_GPA, BOOT_INFO_END). */
struct boot_alloc {
	struct kvm_vm *vm;
	uint64_t next;
};

static uint64_t boot_put(struct boot_alloc *a, const void *src, size_t len)
{
	uint64_t gpa = (a->next + 15) & ~15ull;
	if (gpa + len > BOOT_INFO_END)
		return 0;
	memcpy(kvm_gpa_ptr(a->vm, gpa, len), src, len);
	a->next = gpa + len;
	return gpa;
}

static char *full_cmdline(const char *path, const char *cmdline)
{
	size_t n = strlen(path) + (cmdline ? strlen(cmdline) : 0) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s", path, cmdline && *cmdline ? " " : "",
			 cmdline ? cmdline : "");
	return s;
}

static int load_multiboot(struct kvm_vm *vm, const struct image *img, const uint32_t *hdr,
			  size_t hdr_off)
{
	uint32_t flags = hdr[1];
	uint64_t entry, end;
	int rc;

	if (flags & MB_FLAG_VIDEO)
		log_warnx(vm->name, "multiboot: the guest asks for a video mode; there is no "
				    "display, continuing without one");
	if (flags & 0x0000fff8u) {
		kvm_set_error(vm, "multiboot: header requires unsupported features 0x%x",
			      flags & 0xfff8);
		return -HR_EGUEST;
	}
	if (flags & MB_FLAG_AOUT) {
		if (hdr_off + 32 > img->bytes)
			return -HR_EGUEST;
		uint32_t header_addr = hdr[3], load_addr = hdr[4], load_end = hdr[5];
		uint32_t bss_end = hdr[6];
		if (load_addr > header_addr || header_addr - load_addr > hdr_off) {
			kvm_set_error(vm, "multiboot: inconsistent a.out kludge addresses");
			return -HR_EGUEST;
		}
		uint64_t file_off = hdr_off - (header_addr - load_addr);
		uint64_t filesz = load_end ? (uint64_t)load_end - load_addr : img->bytes - file_off;
		if (file_off + filesz > img->bytes) {
			kvm_set_error(vm, "multiboot: load_end_addr beyond the end of the file");
			return -HR_EGUEST;
		}
		uint64_t memsz = bss_end > load_addr + filesz ? bss_end - load_addr : filesz;
		if ((rc = copy_in(vm, load_addr, img->data + file_off, filesz, memsz)) < 0)
			return rc;
		entry = hdr[7];
		end = load_addr + memsz;
	} else if ((rc = load_elf(vm, img, &entry, &end)) < 0) {
		if (rc == -HR_EGUEST && !vm->errbuf[0])
			kvm_set_error(vm, "multiboot: not a loadable ELF and no a.out kludge");
		return rc;
	}

	struct boot_alloc a = {vm, BOOT_INFO_GPA + sizeof(struct mb_info)};
	struct mb_info mbi = {0};
	struct kvm_e820 m[KVM_E820_MAX];
	int nm = kvm_e820_build(vm, m);
	struct mb_mmap mm[KVM_E820_MAX];
	for (int i = 0; i < nm; i++)
		mm[i] = (struct mb_mmap){20, m[i].addr, m[i].len, m[i].type};

	char *cl = full_cmdline(img->path, vm->cfg.cmdline);
	if (!cl)
		return -ENOMEM;
	mbi.flags = (1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 9);
	mbi.mem_lower = 639;
	mbi.boot_device = 0x8000ffffu; /* first BIOS disk, no partition (as QEMU) */
	mbi.mem_upper = (uint32_t)((m[3].addr + m[3].len - 0x100000) >> 10);
	mbi.cmdline = (uint32_t)boot_put(&a, cl, strlen(cl) + 1);
	free(cl);
	mbi.mods_count = 0;
	mbi.mods_addr = 0;
	mbi.mmap_addr = (uint32_t)boot_put(&a, mm, nm * sizeof(mm[0]));
	mbi.mmap_length = nm * sizeof(mm[0]);
	static const char loader_name[] = "hareplicate";
	mbi.boot_loader_name = (uint32_t)boot_put(&a, loader_name, sizeof(loader_name));
	if (!mbi.cmdline || !mbi.mmap_addr || !mbi.boot_loader_name) {
		kvm_set_error(vm, "multiboot: command line too long");
		return -E2BIG;
	}
	memcpy(kvm_gpa_ptr(vm, BOOT_INFO_GPA, sizeof(mbi)), &mbi, sizeof(mbi));
	if (end > BOOT_INFO_GPA && end < 0x100000 && !(flags & MB_FLAG_AOUT))
		log_warnx(vm->name, "multiboot: kernel loads below 1 MiB");
	log_debug(vm->name, "multiboot: entry 0x%llx, mem_upper %u KiB", (unsigned long long)entry,
		  mbi.mem_upper);
	return set_entry_state(vm, (uint32_t)entry, MB_BOOT_MAGIC, BOOT_INFO_GPA);
}

static int load_pvh(struct kvm_vm *vm, const struct image *img, uint64_t pvh_entry)
{
	uint64_t entry, end;
	int rc = load_elf(vm, img, &entry, &end);
	if (rc < 0)
		return rc;
	struct boot_alloc a = {vm, BOOT_INFO_GPA + sizeof(struct hvm_start_info)};
	struct kvm_e820 m[KVM_E820_MAX];
	int nm = kvm_e820_build(vm, m);
	struct hvm_memmap_entry mm[KVM_E820_MAX];
	for (int i = 0; i < nm; i++)
		mm[i] = (struct hvm_memmap_entry){m[i].addr, m[i].len, m[i].type, 0};
	struct hvm_start_info si = {.magic = PVH_MAGIC, .version = 1, .rsdp_paddr = KVM_ACPI_GPA};
	/* PVH passes the command line alone (QEMU, Xen), not after the kernel path */
	const char *cl = vm->cfg.cmdline ? vm->cfg.cmdline : "";
	si.cmdline_paddr = boot_put(&a, cl, strlen(cl) + 1);
	si.memmap_paddr = boot_put(&a, mm, nm * sizeof(mm[0]));
	si.memmap_entries = nm;
	if (!si.cmdline_paddr || !si.memmap_paddr) {
		kvm_set_error(vm, "PVH: command line too long");
		return -E2BIG;
	}
	memcpy(kvm_gpa_ptr(vm, BOOT_INFO_GPA, sizeof(si)), &si, sizeof(si));
	return set_entry_state(vm, (uint32_t)pvh_entry, 0, BOOT_INFO_GPA);
}

int kvm_load_guest(struct kvm_vm *vm, const char *path, const char *cmdline)
{
	struct image img = {.path = path};
	struct stat st;
	int rc = -HR_EGUEST;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	(void)cmdline;
	if (fd < 0) {
		rc = -errno;
		kvm_set_error(vm, "cannot open guest kernel %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || st.st_size < 32 || st.st_size > (1ll << 30)) {
		close(fd);
		kvm_set_error(vm, "%s: not a guest kernel (size)", path);
		return -HR_EGUEST;
	}
	img.bytes = (size_t)st.st_size;
	img.data = malloc(img.bytes);
	if (!img.data) {
		close(fd);
		return -ENOMEM;
	}
	if (read(fd, img.data, img.bytes) != (ssize_t)img.bytes) {
		close(fd);
		free(img.data);
		kvm_set_error(vm, "%s: short read", path);
		return -EIO;
	}
	close(fd);

	/* Multiboot first (as QEMU does), then PVH. */
	size_t lim = img.bytes < MB_SEARCH_BYTES ? img.bytes : MB_SEARCH_BYTES;
	for (size_t off = 0; off + 12 <= lim; off += 4) {
		const uint32_t *h = (const uint32_t *)(img.data + off);
		if (h[0] == MB_MAGIC && h[0] + h[1] + h[2] == 0) {
			rc = load_multiboot(vm, &img, h, off);
			goto out;
		}
	}
	if (kvm_is_bzimage(img.data, img.bytes)) {
		rc = kvm_load_linux(vm, img.data, img.bytes, path);
		goto out;
	}
	if (vm->cfg.initrd_path) {
		kvm_set_error(vm, "%s: an initrd needs a Linux bzImage", path);
		rc = -HR_EGUEST;
		goto out;
	}
	uint64_t pvh = find_pvh_entry(&img);
	if (pvh) {
		rc = load_pvh(vm, &img, pvh);
		goto out;
	}
	kvm_set_error(vm, "%s: neither a multiboot v1 kernel, a Linux bzImage nor a PVH ELF", path);
	rc = -HR_EGUEST;
out:
	if (rc < 0 && rc != -HR_EGUEST && !vm->errbuf[0])
		kvm_set_error(vm, "%s: %s", path, strerror(-rc));
	else if (rc == -HR_EGUEST && !vm->errbuf[0])
		kvm_set_error(vm, "%s: malformed guest image", path);
	free(img.data);
	return rc;
}
