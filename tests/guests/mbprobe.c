/*
 * mbprobe.c - multiboot v1 conformance probe.  Prints, from ring 0, what
 * the loader handed over, then exits through the isa-debug-exit port
 * (0 = ok, 1 = FAIL).  Run the same file under QEMU and under our VMM and
 * compare the output (see README.md for the line formats).
 */
#include "rt.h"

void kmain(void);
void kmain(void)
{
	const struct rt_boot *b = &rt_boot;
	const char *why = NULL;

	rt_init("mbprobe");
	rt_printf("mbprobe: magic=0x%x\n", b->magic);
	rt_printf("mbprobe: info=0x%x flags=0x%x\n", b->info_paddr, b->flags);
	rt_printf("mbprobe: mem_lower=%u mem_upper=%u\n", b->mem_lower, b->mem_upper);
	rt_printf("mbprobe: cmdline=\"%s\"\n", b->cmdline);
	for (unsigned int i = 0; i < b->nr_mmap; i++)
		rt_printf("mbprobe: mmap base=0x%lx len=0x%lx type=%u\n", b->mmap[i].base,
			  b->mmap[i].len, b->mmap[i].type);
	if (b->flags & (1u << 9))
		rt_printf("mbprobe: boot_loader_name=\"%s\"\n", b->loader_name);
	rt_printf("mbprobe: cr0=0x%x pe=%u pg=%u\n", b->cr0, b->cr0 & 1, b->cr0 >> 31);
	rt_printf("mbprobe: eflags=0x%x if=%u vm=%u\n", b->eflags, (b->eflags >> 9) & 1,
		  (b->eflags >> 17) & 1);
	/* source=pit means the classic port 0x61 gate/OUT2 method worked */
	rt_printf("mbprobe: tsc_mhz=%lu source=%s\n", (b->tsc_khz + 500) / 1000, b->tsc_source);

	if (b->magic != MB_BOOT_MAGIC)
		why = "magic";
	else if (!b->info_paddr)
		why = "no-info";
	else if (!(b->flags & 1u)) /* our header asks for memory information */
		why = "no-mem-info";
	else if (b->mem_lower > 640 || b->mem_upper < 1024)
		why = "mem-values";
	else if ((b->flags & (1u << 6)) && !b->nr_mmap)
		why = "empty-mmap";
	else if (!(b->cr0 & 1) || (b->cr0 >> 31))
		why = "cr0";
	else if (b->eflags & ((1u << 9) | (1u << 17)))
		why = "eflags";
	else if (!b->tsc_khz)
		why = "tsc-calibration"; /* neither PIT method worked */
	if (why) {
		rt_printf("mbprobe: FAIL %s\n", why);
		rt_exit(1);
	}
	rt_printf("mbprobe: ok\n");
	rt_exit(0);
}
