/*
 * pvhprobe.c - PVH boot conformance probe.  Booted through its
 * XEN_ELFNOTE_PHYS32_ENTRY note (pvh.S; no multiboot header), it prints,
 * from ring 0, the struct hvm_start_info the loader handed over in EBX and
 * the CPU state found at the entry, then exits through the isa-debug-exit
 * port (0 = ok, 1 = FAIL).  Run the same file under QEMU and under our VMM
 * and compare the output (see README.md for the line formats).
 */
#include "rt.h"

#define PVH_MAGIC 0x336ec578u

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

extern uint32_t pvh_ebx, pvh_cr0, pvh_cr4, pvh_eflags; /* pvh.S, at entry */

static char cmdline[RT_CMDLINE_MAX];

/* "ok" unless the string does not end within the buffer. */
static int copy_str(char *d, size_t size, uint64_t paddr)
{
	const char *s = (const char *)(uintptr_t)paddr;
	size_t i = 0;
	for (; s[i] && i + 1 < size; i++)
		d[i] = s[i];
	d[i] = 0;
	return !s[i];
}

void kmain(void);
void kmain(void)
{
	const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)pvh_ebx;
	const char *why = NULL;
	uint64_t ram = 0;

	rt_init("pvhprobe");
	if (!si) {
		rt_printf("pvhprobe: start_info=0x%x\n", pvh_ebx);
		rt_printf("pvhprobe: FAIL no-start-info\n");
		rt_exit(1);
	}
	rt_printf("pvhprobe: magic=0x%x version=%u\n", si->magic, si->version);
	if (si->magic != PVH_MAGIC) {
		rt_printf("pvhprobe: FAIL magic\n");
		rt_exit(1);
	}
	rt_printf("pvhprobe: start_info=0x%x flags=0x%x nr_modules=%u modlist=0x%lx rsdp=0x%lx\n",
		  pvh_ebx, si->flags, si->nr_modules, si->modlist_paddr, si->rsdp_paddr);
	int cl_ok = 1;
	if (si->cmdline_paddr)
		cl_ok = copy_str(cmdline, sizeof(cmdline), si->cmdline_paddr);
	rt_printf("pvhprobe: cmdline=\"%s\"\n", cmdline);
	/* memmap_paddr/memmap_entries exist from version 1 on */
	const struct hvm_memmap_entry *mm =
	    (const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
	unsigned int n = si->version >= 1 && mm ? si->memmap_entries : 0;
	for (unsigned int i = 0; i < n && i < 64; i++) {
		rt_printf("pvhprobe: memmap addr=0x%lx size=0x%lx type=%u\n", mm[i].addr,
			  mm[i].size, mm[i].type);
		if (mm[i].type == 1)
			ram += mm[i].size;
	}
	rt_printf("pvhprobe: memmap entries=%u ram=%luK\n", n, ram >> 10);
	rt_printf("pvhprobe: cr0=0x%x pe=%u pg=%u cr4=0x%x\n", pvh_cr0, pvh_cr0 & 1, pvh_cr0 >> 31,
		  pvh_cr4);
	rt_printf("pvhprobe: eflags=0x%x if=%u vm=%u\n", pvh_eflags, (pvh_eflags >> 9) & 1,
		  (pvh_eflags >> 17) & 1);

	if (si->version < 1)
		why = "version";
	else if (!si->cmdline_paddr || !cl_ok)
		why = "cmdline";
	else if (!n || n > 64)
		why = "memmap";
	else if (ram < (1u << 20))
		why = "memmap-ram";
	else if (!(pvh_cr0 & 1) || (pvh_cr0 >> 31))
		why = "cr0";
	else if (pvh_cr4) /* the ABI: all bits clear */
		why = "cr4";
	else if (pvh_eflags & ((1u << 9) | (1u << 17)))
		why = "eflags";
	if (why) {
		rt_printf("pvhprobe: FAIL %s\n", why);
		rt_exit(1);
	}
	rt_printf("pvhprobe: ok\n");
	rt_exit(0);
}
