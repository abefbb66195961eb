/* rt.c - serial console, traps, multiboot info and TSC for the test guests. */
#include "rt.h"

struct rt_boot rt_boot;
const char *rt_name = "guest";

extern uint32_t boot_magic, boot_info, boot_cr0, boot_eflags;
extern uint64_t rt_gdt[];
extern const uint64_t rt_isr_table[32];
extern char stack0_top[];

struct tss64 {
	uint32_t rsv0;
	uint64_t rsp[3];
	uint64_t rsv1;
	uint64_t ist[7];
	uint64_t rsv2;
	uint16_t rsv3, iomap_base;
} __attribute__((packed));

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t ist, attr;
	uint16_t off_mid;
	uint32_t off_hi, zero;
} __attribute__((packed));

static struct tss64 tss __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static unsigned int nr_traps;

/* ---- string helpers (gcc may emit calls to these) ---- */

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* ---- COM1 16550 ---- */

static void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* divisor 1: 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8n1 */
	outb(COM1 + 2, 0xC7); /* FIFO on, cleared, 14-byte threshold */
	outb(COM1 + 4, 0x03); /* DTR | RTS */
}

static void serial_putc(uint8_t c)
{
	while (!(inb(COM1 + 5) & 0x20)) /* LSR.THRE */
		cpu_relax();
	outb(COM1, c);
}

static int serial_getc(void)
{
	if (!(inb(COM1 + 5) & 0x01)) /* LSR.DR */
		return -1;
	return inb(COM1);
}

/*
 * Ring 3 reaches the ports through a system call into ring 0.  PVM runs
 * guest ring 3 with IOPL 0 whatever RFLAGS says, so IN/OUT there raise #GP;
 * a ring 3 "int $0x80" comes back as #UD and SYSCALL lands at LSTAR still
 * in ring 3.  Exceptions, though, are delivered faithfully, so the system
 * call is UD2 with RT_SYS_MAGIC in R10 (RAX = service, RDI/RSI = arguments,
 * result in RAX): rt_trap() serves it and skips the UD2.  That works the
 * same on any x86 hypervisor.  Output from
 * ring 3 is line-buffered to keep the (emulated) ring 0 entries few.
 */
#define RT_SYS_MAGIC 0x6873797363616c6cull /* "hsyscall" */
enum { SYS_WRITE = 1, SYS_GETC, SYS_POLLC, SYS_EXIT };

static inline int in_ring3(void)
{
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs & 3;
}

static inline uint64_t syscall2(uint64_t nr, uint64_t a1, uint64_t a2)
{
	uint64_t r;
	register uint64_t magic __asm__("r10") = RT_SYS_MAGIC;
	__asm__ volatile("ud2" : "=a"(r) : "a"(nr), "D"(a1), "S"(a2), "r"(magic) : "memory");
	return r;
}

static uint64_t rt_syscall(uint64_t a1, uint64_t a2, uint64_t nr)
{
	int c;
	switch (nr) {
	case SYS_WRITE:
		for (const char *s = (const char *)a1; a2--; s++)
			serial_putc((uint8_t)*s);
		return 0;
	case SYS_GETC:
		while ((c = serial_getc()) < 0)
			cpu_relax();
		return (uint64_t)c;
	case SYS_POLLC:
		return (uint64_t)(int64_t)serial_getc();
	case SYS_EXIT:
		outb(DEBUG_EXIT_PORT, (uint8_t)a1);
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	return (uint64_t)-1;
}

static char out_buf[256];
static unsigned int out_len;

static void out_flush(void)
{
	if (out_len)
		syscall2(SYS_WRITE, (uint64_t)out_buf, out_len);
	out_len = 0;
}

void rt_putc(char c)
{
	if (!in_ring3()) {
		serial_putc((uint8_t)c);
		return;
	}
	out_buf[out_len++] = c;
	if (c == '\n' || out_len == sizeof(out_buf))
		out_flush();
}

void rt_puts(const char *s)
{
	while (*s)
		rt_putc(*s++);
}

int rt_getc_nowait(void)
{
	if (in_ring3())
		return (int)syscall2(SYS_POLLC, 0, 0);
	return serial_getc();
}

int rt_getc(void)
{
	int c;
	if (in_ring3())
		return (int)syscall2(SYS_GETC, 0, 0);
	while ((c = serial_getc()) < 0)
		cpu_relax();
	return c;
}

/* ---- printf: %s %c %d %u %x %p with l/ll/z, '0' and width ---- */

static void put_num(uint64_t v, unsigned int base, int neg, int width, char pad)
{
	char buf[24];
	int n = 0;
	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		buf[n++] = '-';
	while (width-- > n)
		rt_putc(pad);
	while (n)
		rt_putc(buf[--n]);
}

void rt_vprintf(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			rt_putc(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z')
			lng = 1, fmt++;
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			rt_puts(s ? s : "(null)");
			break;
		}
		case 'c':
			rt_putc((char)va_arg(ap, int));
			break;
		case 'd': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
			put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int), 10, 0, width,
				pad);
			break;
		case 'x':
			put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int), 16, 0, width,
				pad);
			break;
		case 'p':
			rt_puts("0x");
			put_num((uint64_t)va_arg(ap, void *), 16, 0, width, pad);
			break;
		case '%':
			rt_putc('%');
			break;
		default:
			rt_putc('%');
			if (!*fmt)
				return;
			rt_putc(*fmt);
		}
	}
}

void rt_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rt_vprintf(fmt, ap);
	va_end(ap);
	if (in_ring3())
		out_flush();
}

/* ---- exit ---- */

/* Without an exit device the vCPU is parked in hlt with IF=0. */
void rt_exit(unsigned int code)
{
	if (in_ring3()) {
		out_flush();
		syscall2(SYS_EXIT, code, 0);
	}
	rt_syscall(code, 0, SYS_EXIT);
	for (;;)
		;
}

/* ---- traps ---- */

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vec, err, rip, cs, rflags, rsp, ss;
};

void rt_trap(struct trap_frame *f);
void rt_trap(struct trap_frame *f)
{
	uint64_t cr2;
	const uint8_t *ip = (const uint8_t *)f->rip;

	if (f->vec == 6 && f->r10 == RT_SYS_MAGIC && ip[0] == 0x0f && ip[1] == 0x0b) {
		f->rax = rt_syscall(f->rdi, f->rsi, f->rax);
		f->rip += 2;
		return;
	}
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	nr_traps++;
	rt_printf("%s: exception vec=%lu err=0x%lx rip=0x%lx cs=0x%lx rflags=0x%lx rsp=0x%lx "
		  "cr2=0x%lx count=%u\n",
		  rt_name, f->vec, f->err, f->rip, f->cs, f->rflags, f->rsp, cr2, nr_traps);
	if (f->vec == 1 || f->vec == 3) /* traps: returning continues */
		return;
	rt_printf("%s: FAIL exception\n", rt_name);
	rt_exit(3);
}

static void set_gate(int vec, uint64_t fn, uint8_t attr)
{
	idt[vec] = (struct idt_gate){(uint16_t)fn,	   0x08, 0, attr, (uint16_t)(fn >> 16),
				     (uint32_t)(fn >> 32), 0};
}

static void cpu_tables_init(void)
{
	uint64_t base = (uint64_t)&tss, limit = sizeof(tss) - 1;

	tss.rsp[0] = (uint64_t)stack0_top;
	tss.iomap_base = sizeof(tss); /* no bitmap: ring 3 port I/O through IOPL */
	rt_gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
		    (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	rt_gdt[6] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(0x28));

	for (int i = 0; i < 32; i++)
		set_gate(i, rt_isr_table[i], 0x8E);
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)idt};
	__asm__ volatile("lidt %0" : : "m"(idtr));
}

/* ---- 8259 PIC and hardware interrupts (opt-in: rt_pic_init) ---- */

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xa0
#define PIC2_DATA 0xa1
#define PIC_EOI	  0x20

volatile unsigned int rt_irq_count[16];
volatile unsigned int rt_irq_spurious[16];
static rt_irq_fn irq_fn[16];
extern const uint64_t rt_irq_stubs[16];

/*
 * One stub per IRQ (boot.S only has the exception stubs): push the IRQ
 * number, save the registers the C ABI lets rt_irq() clobber, keep RSP
 * 16-byte aligned at the call (the CPU aligns it before pushing the 5-word
 * frame), iretq.  No IST and no stack switch: interrupts are only ever
 * enabled in ring 0 here, and the guests are built with -mno-red-zone.
 */
__asm__(".text\n"
	".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"rt_irq_stub\\n:\n"
	"	pushq $\\n\n"
	"	jmp rt_irq_common\n"
	".endr\n"
	"rt_irq_common:\n"
	"	pushq %rax\n"
	"	pushq %rcx\n"
	"	pushq %rdx\n"
	"	pushq %rsi\n"
	"	pushq %rdi\n"
	"	pushq %r8\n"
	"	pushq %r9\n"
	"	pushq %r10\n"
	"	pushq %r11\n"
	"	subq $8, %rsp\n"
	"	movq 80(%rsp), %rdi\n"
	"	cld\n"
	"	call rt_irq\n"
	"	addq $8, %rsp\n"
	"	popq %r11\n"
	"	popq %r10\n"
	"	popq %r9\n"
	"	popq %r8\n"
	"	popq %rdi\n"
	"	popq %rsi\n"
	"	popq %rdx\n"
	"	popq %rcx\n"
	"	popq %rax\n"
	"	addq $8, %rsp\n"
	"	iretq\n"
	".section .rodata\n"
	".balign 8\n"
	".globl rt_irq_stubs\n"
	"rt_irq_stubs:\n"
	".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	.quad rt_irq_stub\\n\n"
	".endr\n"
	".text\n");

static uint8_t pic_isr(uint16_t cmd)
{
	outb(cmd, 0x0b); /* OCW3: read ISR */
	uint8_t v = inb(cmd);
	outb(cmd, 0x0a); /* back to IRR */
	return v;
}

void rt_irq(uint64_t irq);
void rt_irq(uint64_t irq)
{
	/* IRQ 7/15 with its ISR bit clear is spurious: no EOI on that chip. */
	if ((irq == 7 && !(pic_isr(PIC1_CMD) & 0x80)) ||
	    (irq == 15 && !(pic_isr(PIC2_CMD) & 0x80))) {
		rt_irq_spurious[irq]++;
		if (irq == 15)
			outb(PIC1_CMD, PIC_EOI); /* the cascade on the master was real */
		return;
	}
	rt_irq_count[irq]++;
	if (irq_fn[irq])
		irq_fn[irq]((unsigned int)irq);
	if (irq >= 8)
		outb(PIC2_CMD, PIC_EOI);
	outb(PIC1_CMD, PIC_EOI);
}

void rt_pic_init(void)
{
	outb(PIC1_CMD, 0x11); /* ICW1: edge, cascade, ICW4 follows */
	outb(PIC2_CMD, 0x11);
	outb(PIC1_DATA, RT_IRQ_BASE); /* ICW2: vector base */
	outb(PIC2_DATA, RT_IRQ_BASE + 8);
	outb(PIC1_DATA, 0x04); /* ICW3: slave on IRQ 2 */
	outb(PIC2_DATA, 0x02); /*       slave identity 2 */
	outb(PIC1_DATA, 0x01); /* ICW4: 8086 mode, normal EOI */
	outb(PIC2_DATA, 0x01);
	outb(PIC1_DATA, 0xfb); /* OCW1: all masked but the cascade */
	outb(PIC2_DATA, 0xff);
	for (int i = 0; i < 16; i++)
		set_gate(RT_IRQ_BASE + i, rt_irq_stubs[i], 0x8E);
}

void rt_irq_set(unsigned int irq, rt_irq_fn fn)
{
	irq_fn[irq & 15] = fn;
}

static void pic_mask(unsigned int irq, int masked)
{
	uint16_t port = irq < 8 ? PIC1_DATA : PIC2_DATA;
	uint8_t bit = (uint8_t)(1u << (irq & 7));
	uint8_t m = inb(port);
	outb(port, masked ? (m | bit) : (m & ~bit));
}

void rt_irq_unmask(unsigned int irq)
{
	pic_mask(irq & 15, 0);
}

void rt_irq_mask(unsigned int irq)
{
	pic_mask(irq & 15, 1);
}

/* ---- multiboot information ---- */

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table;
	uint32_t boot_loader_name;
} __attribute__((packed));

static void copy_str(char *d, size_t size, uint32_t paddr)
{
	const char *s = (const char *)(uintptr_t)paddr;
	size_t i = 0;
	for (; s[i] && i + 1 < size; i++)
		d[i] = s[i];
	d[i] = 0;
}

static void mb_parse(void)
{
	struct rt_boot *b = &rt_boot;
	b->magic = boot_magic;
	b->info_paddr = boot_info;
	b->cr0 = boot_cr0;
	b->eflags = boot_eflags;
	if (b->magic != MB_BOOT_MAGIC || !b->info_paddr)
		return;
	const struct mb_info *mi = (const struct mb_info *)(uintptr_t)b->info_paddr;
	b->flags = mi->flags;
	if (b->flags & (1u << 0)) {
		b->mem_lower = mi->mem_lower;
		b->mem_upper = mi->mem_upper;
	}
	if ((b->flags & (1u << 2)) && mi->cmdline)
		copy_str(b->cmdline, sizeof(b->cmdline), mi->cmdline);
	if ((b->flags & (1u << 9)) && mi->boot_loader_name)
		copy_str(b->loader_name, sizeof(b->loader_name), mi->boot_loader_name);
	if (b->flags & (1u << 6)) {
		uint64_t p = mi->mmap_addr, end = p + mi->mmap_length;
		while (p + 24 <= end && b->nr_mmap < RT_MMAP_MAX) {
			const uint8_t *e = (const uint8_t *)(uintptr_t)p;
			uint32_t size = *(const uint32_t *)e;
			struct rt_mmap *m = &b->mmap[b->nr_mmap++];
			memcpy(&m->base, e + 4, 8);
			memcpy(&m->len, e + 12, 8);
			memcpy(&m->type, e + 20, 4);
			p += (uint64_t)size + 4;
		}
	}
}

/* ---- TSC calibration against PIT channel 2 (gate and OUT2 via port 0x61) ---- */

#define PIT_HZ	  1193182u
#define CAL_LATCH 11932u /* 10 ms */

static uint64_t tsc_calibrate_pit(void)
{
	outb(0x61, (inb(0x61) & ~0x02) | 0x01); /* gate on, speaker off */
	outb(0x43, 0xB0);			/* ch2, lobyte/hibyte, mode 0, binary */
	outb(0x42, CAL_LATCH & 0xff);
	outb(0x42, CAL_LATCH >> 8);
	uint64_t t0 = rdtsc(), t1;
	if (inb(0x61) & 0x20) /* mode 0: OUT2 is low until the count expires */
		return 0;
	for (;;) {
		t1 = rdtsc();
		if (inb(0x61) & 0x20)
			break;
		if (t1 - t0 > (1ull << 34)) /* seconds at any sane TSC rate */
			return 0;
	}
	/* khz = ticks / (latch / PIT_HZ) / 1000 */
	uint64_t khz = (t1 - t0) * PIT_HZ / CAL_LATCH / 1000;
	return khz >= 100000 ? khz : 0; /* below 100 MHz: the PIT is not real */
}

static unsigned int pit_ch2_count(void)
{
	outb(0x43, 0x80); /* latch channel 2 */
	unsigned int lo = inb(0x42);
	return lo | (unsigned int)inb(0x42) << 8;
}

/* Fallback without port 0x61: watch channel 2's counter run down. */
static uint64_t tsc_calibrate_pit_count(void)
{
	outb(0x43, 0xB0); /* ch2, lobyte/hibyte, mode 0 */
	outb(0x42, 0xff);
	outb(0x42, 0xff);
	unsigned int c0 = pit_ch2_count(), c;
	uint64_t t0 = rdtsc(), t1;
	for (;;) {
		t1 = rdtsc();
		c = pit_ch2_count();
		if (c < c0 && c0 - c >= CAL_LATCH)
			break;
		if (t1 - t0 > (1ull << 34))
			return 0;
	}
	uint64_t khz = (t1 - t0) * PIT_HZ / (c0 - c) / 1000;
	return khz >= 100000 ? khz : 0;
}

static void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(0));
}

/* Fallbacks when the PIT does not work: what the hypervisor or CPU says. */
static uint64_t tsc_khz_cpuid(void)
{
	uint32_t r[4];
	cpuid(0x40000000, r);
	if (r[0] >= 0x40000010 && r[0] < 0x40000100) {
		cpuid(0x40000010, r); /* VMware/KVM timing leaf: EAX = TSC kHz */
		if (r[0])
			return r[0];
	}
	cpuid(0, r);
	uint32_t max = r[0];
	if (max >= 0x15) {
		cpuid(0x15, r); /* TSC/crystal ratio EBX/EAX, crystal Hz in ECX */
		if (r[0] && r[1] && r[2])
			return (uint64_t)r[2] * r[1] / r[0] / 1000;
	}
	if (max >= 0x16) {
		cpuid(0x16, r); /* base MHz */
		if (r[0])
			return (uint64_t)r[0] * 1000;
	}
	return 0;
}

/* ---- command line ---- */

int rt_cmdline_get(const char *key, char *val, size_t size)
{
	size_t kl = strlen(key);
	const char *s = rt_boot.cmdline;
	while (*s) {
		while (*s == ' ')
			s++;
		const char *t = s;
		while (*s && *s != ' ')
			s++;
		if ((size_t)(s - t) > kl && t[kl] == '=') {
			size_t i;
			for (i = 0; i < kl && t[i] == key[i]; i++)
				;
			if (i == kl) {
				size_t n = 0;
				for (t += kl + 1; t < s && n + 1 < size; t++)
					val[n++] = *t;
				val[n] = 0;
				return 1;
			}
		}
	}
	return 0;
}

int rt_parse_u64(const char *s, uint64_t *v_r, int allow_suffix)
{
	uint64_t v = 0;
	unsigned int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16, s += 2;
	if (!*s)
		return -1;
	for (; *s; s++) {
		unsigned int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		v = v * base + d;
	}
	if (*s && allow_suffix && !s[1]) {
		switch (*s | 0x20) {
		case 'k':
			v <<= 10;
			break;
		case 'm':
			v <<= 20;
			break;
		case 'g':
			v <<= 30;
			break;
		default:
			return -1;
		}
		s++;
	}
	if (*s)
		return -1;
	*v_r = v;
	return 0;
}

void rt_init(const char *name)
{
	rt_name = name;
	serial_init();
	cpu_tables_init();
	mb_parse();
	rt_boot.tsc_khz_pit = tsc_calibrate_pit();
	rt_boot.tsc_khz = rt_boot.tsc_khz_pit;
	rt_boot.tsc_source = "pit";
	if (!rt_boot.tsc_khz) {
		rt_boot.tsc_khz = tsc_calibrate_pit_count();
		rt_boot.tsc_source = "pit-count";
	}
	if (!rt_boot.tsc_khz) {
		rt_boot.tsc_khz = tsc_khz_cpuid();
		rt_boot.tsc_source = rt_boot.tsc_khz ? "cpuid" : "none";
	}
}
