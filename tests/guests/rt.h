/*
 * rt.h - tiny freestanding runtime shared by the test guests.
 *
 * Ring 0 sets up (rt_init: serial, GDT/TSS, IDT, multiboot info, TSC),
 * then the guest may drop to ring 3 with rt_enter_ring3().  Everything
 * here except rt_init() is also safe at ring 3: the console and exit
 * functions notice CPL 3 and go through SYSCALL to ring 0, because PVM
 * runs guest ring 3 with IOPL 0 (ring 3 IN/OUT raise #GP there).
 */
#ifndef GUESTS_RT_H
#define GUESTS_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define MB_BOOT_MAGIC	0x2BADB002u
#define COM1		0x3f8
#define DEBUG_EXIT_PORT 0xf4 /* isa-debug-exit: status = (v << 1) | 1 */
#define RT_CMDLINE_MAX	1024
#define RT_MMAP_MAX	32

struct rt_mmap {
	uint64_t base, len;
	uint32_t type;
};

/* Copied out of the multiboot information by rt_init() (ring 0). */
struct rt_boot {
	uint32_t magic, info_paddr, cr0, eflags; /* as found at entry */
	uint32_t flags, mem_lower, mem_upper;	 /* KiB */
	char cmdline[RT_CMDLINE_MAX];
	char loader_name[64];
	unsigned int nr_mmap;
	struct rt_mmap mmap[RT_MMAP_MAX];
	uint64_t tsc_khz_pit;	/* PIT ch2 gated by port 0x61, 0 if it failed */
	uint64_t tsc_khz;	/* that, else ch2 count read-back, else CPUID */
	const char *tsc_source; /* "pit", "pit-count", "cpuid" or "none" */
};

extern struct rt_boot rt_boot;
extern const char *rt_name; /* prefix of the runtime's own lines */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
static inline void sti(void)
{
	__asm__ volatile("sti" ::: "memory");
}
static inline void cli(void)
{
	__asm__ volatile("cli" ::: "memory");
}
/* virtio-mmio registers (virtio 1.x, 4.2.2), for the guests' drivers */
enum {
	R_MAGIC = 0x000,
	R_VERSION = 0x004,
	R_DEVICE_ID = 0x008,
	R_VENDOR_ID = 0x00c,
	R_DEV_FEATURES = 0x010,
	R_DEV_FEATURES_SEL = 0x014,
	R_DRV_FEATURES = 0x020,
	R_DRV_FEATURES_SEL = 0x024,
	R_QUEUE_SEL = 0x030,
	R_QUEUE_NUM_MAX = 0x034,
	R_QUEUE_NUM = 0x038,
	R_QUEUE_READY = 0x044,
	R_QUEUE_NOTIFY = 0x050,
	R_INT_STATUS = 0x060,
	R_INT_ACK = 0x064,
	R_STATUS = 0x070,
	R_QUEUE_DESC = 0x080,
	R_QUEUE_DRIVER = 0x090,
	R_QUEUE_DEVICE = 0x0a0,
	R_CONFIG_GEN = 0x0fc,
	R_CONFIG = 0x100, /* the device's config space (virtio-blk: u64 capacity in sectors) */
};

/* Compiler barrier, and a full fence (device rings: publish before notify). */
static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}
static inline void mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}
/* 32-bit MMIO register access (virtio-mmio). */
static inline uint32_t mmio_rd32(uintptr_t base, unsigned int off)
{
	return *(volatile uint32_t *)(base + off);
}
static inline void mmio_wr32(uintptr_t base, unsigned int off, uint32_t v)
{
	*(volatile uint32_t *)(base + off) = v;
}
static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

void rt_init(const char *name); /* ring 0 only */

/*
 * Hardware interrupts through the 8259 pair, ring 0 only and opt-in (memwalk
 * never calls them).  rt_pic_init() remaps the PICs to vectors 0x20-0x2f
 * (ICW1-4, edge triggered, 8086 mode), masks every line but the cascade and
 * installs IDT gates for all 16 vectors.  A gate runs the handler set with
 * rt_irq_set() (if any), counts the interrupt and then sends the EOI(s);
 * spurious IRQ 7/15 (ISR bit clear) are counted in rt_irq_spurious[] and
 * get no EOI.  IF is the caller's business (sti/cli).
 */
#define RT_IRQ_BASE 0x20
typedef void (*rt_irq_fn)(unsigned int irq);
extern volatile unsigned int rt_irq_count[16];
extern volatile unsigned int rt_irq_spurious[16];
void rt_pic_init(void);
void rt_irq_set(unsigned int irq, rt_irq_fn fn);
void rt_irq_unmask(unsigned int irq);
void rt_irq_mask(unsigned int irq);
void rt_enter_ring3(void (*fn)(void), void *stack_top);
void rt_exit(unsigned int code) __attribute__((noreturn));

void rt_putc(char c);
void rt_puts(const char *s);
int rt_getc_nowait(void); /* -1 if no byte is waiting */
int rt_getc(void);	  /* polls LSR.DR */
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_vprintf(const char *fmt, va_list ap);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
size_t strlen(const char *s);

/* First token "key=..." in the command line: copies the value, returns 1. */
int rt_cmdline_get(const char *key, char *val, size_t size);
/* Decimal (or 0x hex) with optional K/M/G suffix (x1024); 0 on success. */
int rt_parse_u64(const char *s, uint64_t *v_r, int allow_suffix);

#endif
