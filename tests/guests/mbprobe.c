/*
 * mbprobe.c - multiboot v1 conformance probe.  Prints, from ring 0, what
 * the loader handed over, then exercises the PC devices a foreign kernel
 * relies on (8259 PIC, PIT channel 0 -> IRQ 0 with hlt, the UART's THRE
 * interrupt on IRQ 4, the CMOS RTC) and exits through the isa-debug-exit
 * port (0 = ok, 1 = FAIL).  Run the same file under QEMU and under our VMM
 * and compare the output (see README.md for the line formats).
 */
#include "rt.h"

#define PIT_HZ	   1193182u
#define IRQ0_HZ	   1000u
#define IRQ0_TICKS 50u
#define COM_IER	   (COM1 + 1)
#define COM_IIR	   (COM1 + 2)
#define COM_MCR	   (COM1 + 4)
#define COM_LSR	   (COM1 + 5)

static uint64_t tsc_khz_or_guess(void)
{
	/* Only for timeouts when calibration failed (already a FAIL). */
	return rt_boot.tsc_khz ? rt_boot.tsc_khz : 4000000;
}

/* ---- PIT channel 0 -> IRQ 0, waited for with sti; hlt ---- */

static volatile unsigned int ticks;
static volatile uint64_t tick_tsc;

static void irq0_handler(unsigned int irq)
{
	tick_tsc = rdtsc();
	ticks++;
	/* rt_irq() sends the EOI to port 0x20 after this returns */
}

/*
 * Channel 0 as a 1000 Hz rate generator (mode 2).  The first tick only
 * starts the clock (an edge latched before the PIT was reprogrammed, e.g.
 * the BIOS's 18.2 Hz one under QEMU, could make it early); then hlt until
 * IRQ0_TICKS more have been counted and report the TSC time between the
 * first and the last.  Waiting for the first tick spins, bounded by 2 s of
 * TSC time, so a VMM that never raises IRQ 0 gets a FAIL line, not a hang.
 */
static int test_irq0(void)
{
	uint64_t khz = tsc_khz_or_guess(), t0, first, ms;
	unsigned int latch = (PIT_HZ + IRQ0_HZ / 2) / IRQ0_HZ, n;

	rt_irq_set(0, irq0_handler);
	outb(0x43, 0x34); /* ch0, lobyte/hibyte, mode 2, binary */
	outb(0x40, latch & 0xff);
	outb(0x40, latch >> 8);
	t0 = rdtsc();
	rt_irq_unmask(0);
	sti();
	while (!ticks && rdtsc() - t0 < 2000 * khz)
		cpu_relax();
	cli();
	if (!ticks) {
		rt_irq_mask(0);
		rt_printf("mbprobe: irq0 FAIL no ticks\n");
		return -1;
	}
	first = tick_tsc;
	n = ticks;
	/* The check runs with IF=0 and sti's one-instruction shadow makes
	 * "sti; hlt" atomic, so a tick cannot slip in between and be missed. */
	while (ticks - n < IRQ0_TICKS)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
	ms = ((tick_tsc - first) + khz / 2) / khz;
	rt_irq_mask(0);
	rt_printf("mbprobe: irq0 ticks=%u ms=%lu\n", IRQ0_TICKS, ms);
	return 0;
}

/* ---- COM1 THRE interrupt on IRQ 4 ---- */

static volatile unsigned int thre_irqs;
static volatile uint8_t thre_iir;

static void irq4_handler(unsigned int irq)
{
	uint8_t iir = inb(COM_IIR); /* identifies and, for THRE, acknowledges */
	if (!thre_irqs++)
		thre_iir = iir;
	outb(COM_IER, 0x00); /* nothing more to send: mask the UART */
}

/*
 * With IF=0: OUT2 on (it gates the UART's IRQ line on a PC), IER.ETBEI on.
 * THR is empty, so a 16550 flags THRE at once; IIR must say so (0x?2) and
 * the read acknowledges it.  Then one byte (the blank before "thre=") is
 * written: when it has gone, THRE must interrupt on IRQ 4 (vector 0x24).
 */
static int test_irq4(void)
{
	uint64_t khz = tsc_khz_or_guess(), t0;
	uint8_t iir0;

	rt_printf("mbprobe: irq4");
	t0 = rdtsc();
	while (!(inb(COM_LSR) & 0x40) && rdtsc() - t0 < 100 * khz) /* TEMT */
		cpu_relax();
	rt_irq_set(4, irq4_handler);
	outb(COM_MCR, 0x0b); /* DTR | RTS | OUT2 */
	outb(COM_IER, 0x02); /* ETBEI */
	iir0 = inb(COM_IIR);
	outb(COM1, ' ');
	rt_irq_unmask(4);
	t0 = rdtsc();
	sti();
	while (!thre_irqs && rdtsc() - t0 < 200 * khz)
		cpu_relax();
	cli();
	rt_irq_mask(4);
	outb(COM_IER, 0x00);
	outb(COM_MCR, 0x03);
	if ((iir0 & 0x0f) == 0x02 && thre_irqs == 1 && (thre_iir & 0x0f) == 0x02) {
		rt_printf("thre=ok\n");
		return 0;
	}
	rt_printf("thre=FAIL iir_enable=0x%x irqs=%u iir_irq=0x%x\n", iir0, thre_irqs, thre_iir);
	return -1;
}

/* ---- CMOS RTC ---- */

static uint8_t cmos_read(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static int bcd_ok(uint8_t v)
{
	return (v & 0x0f) <= 9 && (v >> 4) <= 9;
}

/*
 * Register A: not stuck in an update (UIP) and the 32.768 kHz time base
 * (DV = 010) selected; register D: VRT (battery good); then seconds,
 * minutes and hours valid for register B's format (BCD or binary, 12 or
 * 24 hour).  The time itself is not printed: it differs between runs.
 */
static int test_rtc(void)
{
	uint64_t khz = tsc_khz_or_guess(), t0 = rdtsc();
	uint8_t a, b, d, sec, min, hour;
	const char *why = NULL;

	while (((a = cmos_read(0x0a)) & 0x80) && rdtsc() - t0 < 10 * khz)
		cpu_relax(); /* UIP lasts at most ~2 ms */
	sec = cmos_read(0x00);
	min = cmos_read(0x02);
	hour = cmos_read(0x04);
	b = cmos_read(0x0b);
	d = cmos_read(0x0d);

	if (!(b & 0x02))
		hour &= 0x7f; /* 12 hour mode: bit 7 is PM */
	/* B.DM clear: BCD */
	if (!(b & 0x04)) {
		if (!(bcd_ok(sec) && bcd_ok(min) && bcd_ok(hour)))
			why = "bcd";
		sec = (uint8_t)((sec >> 4) * 10 + (sec & 0x0f));
		min = (uint8_t)((min >> 4) * 10 + (min & 0x0f));
		hour = (uint8_t)((hour >> 4) * 10 + (hour & 0x0f));
	}
	if (why)
		;
	else if (a & 0x80)
		why = "uip";
	else if ((a & 0x70) != 0x20)
		why = "divider";
	else if (!(d & 0x80))
		why = "vrt";
	else if (sec > 59 || min > 59 || ((b & 0x02) ? hour > 23 : (hour < 1 || hour > 12)))
		why = "range";
	if (!why) {
		rt_printf("mbprobe: rtc ok\n");
		return 0;
	}
	rt_printf("mbprobe: rtc FAIL %s a=0x%x b=0x%x d=0x%x\n", why, a, b, d);
	return -1;
}

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

	rt_pic_init();
	int irq0 = test_irq0();
	int irq4 = test_irq4();
	int rtc = test_rtc();
	for (unsigned int i = 0; i < 16; i++)
		if (rt_irq_spurious[i])
			rt_printf("mbprobe: spurious irq=%u count=%u\n", i, rt_irq_spurious[i]);

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
	else if (irq0)
		why = "irq0";
	else if (irq4)
		why = "irq4";
	else if (rtc)
		why = "rtc";
	if (why) {
		rt_printf("mbprobe: FAIL %s\n", why);
		rt_exit(1);
	}
	rt_printf("mbprobe: ok\n");
	rt_exit(0);
}
