/*
 * uart.c - the port I/O devices that live in userspace: an 8250/16550
 * compatible UART at 0x3f8 (IRQ 4), CMOS/RTC at 0x70, and the "nothing
 * there" answer (reads all ones, writes ignored) for every other port, as on
 * a PC without that device.  The PIC, IOAPIC, LAPIC and PIT (ports 0x40-0x43
 * and the port 0x61 gate/speaker) are KVM's in-kernel ones.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "kvm-internal.h"
#include "common/log.h"

#define COM1	 0x3f8
#define COM1_IRQ 4

#define LCR_DLAB 0x80
#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI	 0x04
#define MCR_LOOP 0x10

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

void kvm_devices_init(struct kvm_vm *vm)
{
	struct uart_state *u = &vm->uart;
	memset(u, 0, sizeof(*u));
	u->dll = 12; /* 9600 baud, as after a BIOS */
	u->lcr = 0x03;
	u->msr = 0xb0; /* DCD DSR CTS */

	struct cmos_state *c = &vm->cmos;
	memset(c, 0, sizeof(*c));
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	c->ram[0x00] = bcd(tm.tm_sec);
	c->ram[0x02] = bcd(tm.tm_min);
	c->ram[0x04] = bcd(tm.tm_hour);
	c->ram[0x06] = (uint8_t)(tm.tm_wday + 1);
	c->ram[0x07] = bcd(tm.tm_mday);
	c->ram[0x08] = bcd(tm.tm_mon + 1);
	c->ram[0x09] = bcd(tm.tm_year % 100);
	c->ram[0x32] = bcd((tm.tm_year + 1900) / 100);
	c->ram[0x0a] = 0x26;
	c->ram[0x0b] = 0x02; /* 24 hour, BCD */
	c->ram[0x0d] = 0x80; /* battery good */
	/* memory sizes, as PC firmware leaves them */
	uint64_t mem = vm->cfg.mem_bytes;
	c->ram[0x15] = 0x80; /* 640 KiB base memory */
	c->ram[0x16] = 0x02;
	uint64_t ext_kib = mem > (1 << 20) ? (mem - (1 << 20)) >> 10 : 0;
	if (ext_kib > 0xfc00)
		ext_kib = 0xfc00;
	c->ram[0x17] = c->ram[0x30] = (uint8_t)ext_kib;
	c->ram[0x18] = c->ram[0x31] = (uint8_t)(ext_kib >> 8);
	uint64_t low = mem < HR_LOW_MEM_TOP ? mem : HR_LOW_MEM_TOP;
	uint64_t above16m = low > (16 << 20) ? (low - (16 << 20)) >> 16 : 0;
	if (above16m > 0xffff)
		above16m = 0xffff;
	c->ram[0x34] = (uint8_t)above16m;
	c->ram[0x35] = (uint8_t)(above16m >> 8);
}

/* Recompute the interrupt identification and the IRQ 4 line.  dev_lock held. */
static void uart_update_irq(struct kvm_vm *vm)
{
	struct uart_state *u = &vm->uart;
	uint8_t iir = IIR_NONE;
	if ((u->ier & IER_RDI) && u->rx_len)
		iir = IIR_RDI;
	else if ((u->ier & IER_THRI) && u->iir_pending)
		iir = IIR_THRI;
	uint8_t level = iir != IIR_NONE && (u->mcr & 0x08); /* OUT2 gates the IRQ */
	if (level != u->irq_level) {
		u->irq_level = level;
		kvm_irq_line(vm, COM1_IRQ, level);
	}
}

static void uart_rx_push(struct uart_state *u, uint8_t b)
{
	if (u->rx_len == sizeof(u->rx))
		return; /* overrun: real hardware drops too */
	u->rx[(u->rx_head + u->rx_len) % sizeof(u->rx)] = b;
	u->rx_len++;
}

static void uart_io(struct kvm_vm *vm, unsigned reg, int is_write, uint8_t *val)
{
	struct uart_state *u = &vm->uart;
	int dlab = u->lcr & LCR_DLAB;

	if (is_write) {
		uint8_t b = *val;
		switch (reg) {
		case 0:
			if (dlab) {
				u->dll = b;
			} else if (u->mcr & MCR_LOOP) {
				uart_rx_push(u, b);
			} else {
				/* Output leaves through the hook; the core may hold it
				 * back until the epoch that produced it is committed. */
				pthread_mutex_unlock(&vm->dev_lock);
				if (vm->cfg.emit)
					vm->cfg.emit(vm->cfg.emit_opaque, KVM_CHAN_CONSOLE, &b, 1);
				pthread_mutex_lock(&vm->dev_lock);
				u->iir_pending = 1;
			}
			break;
		case 1:
			if (dlab) {
				u->dlm = b;
			} else {
				if ((b & IER_THRI) && !(u->ier & IER_THRI))
					u->iir_pending = 1;
				u->ier = b & 0x0f;
			}
			break;
		case 2:
			u->fcr = b;
			if (b & 0x02)
				u->rx_len = 0;
			break;
		case 3:
			u->lcr = b;
			break;
		case 4:
			u->mcr = b & 0x1f;
			break;
		case 7:
			u->scr = b;
			break;
		default:
			break;
		}
	} else {
		switch (reg) {
		case 0:
			if (dlab) {
				*val = u->dll;
			} else if (u->rx_len) {
				*val = u->rx[u->rx_head];
				u->rx_head = (uint16_t)((u->rx_head + 1) % sizeof(u->rx));
				u->rx_len--;
			} else {
				*val = 0;
			}
			break;
		case 1:
			*val = dlab ? u->dlm : u->ier;
			break;
		case 2: {
			uint8_t iir = IIR_NONE;
			if ((u->ier & IER_RDI) && u->rx_len)
				iir = IIR_RDI;
			else if ((u->ier & IER_THRI) && u->iir_pending) {
				iir = IIR_THRI;
				u->iir_pending = 0; /* reading IIR clears THRE */
			}
			*val = iir | ((u->fcr & 1) ? 0xc0 : 0);
			break;
		}
		case 3:
			*val = u->lcr;
			break;
		case 4:
			*val = u->mcr;
			break;
		case 5:
			*val = LSR_THRE | LSR_TEMT | (u->rx_len ? LSR_DR : 0);
			break;
		case 6:
			if (u->mcr & MCR_LOOP)
				*val = (uint8_t)(((u->mcr & 0x0c) << 4) | ((u->mcr & 0x03) << 4));
			else
				*val = u->msr;
			break;
		case 7:
			*val = u->scr;
			break;
		}
	}
	uart_update_irq(vm);
}

/* The RTC runs on the host's UTC clock (as QEMU's default rtc base=utc):
 * time registers are computed at each read, the update-in-progress bit is
 * set in the 244 us before each second, register C reports update-ended
 * once per second boundary.  The periodic and alarm interrupts (IRQ 8) are
 * not generated. */
static uint8_t rtc_fmt(const struct cmos_state *c, int v)
{
	return (c->ram[0x0b] & 0x04) ? (uint8_t)v : bcd(v);
}

static void rtc_read(struct cmos_state *c, uint8_t idx, uint8_t *val)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	switch (idx) {
	case 0x00:
		*val = rtc_fmt(c, tm.tm_sec);
		return;
	case 0x02:
		*val = rtc_fmt(c, tm.tm_min);
		return;
	case 0x04: {
		int h = tm.tm_hour;
		if (!(c->ram[0x0b] & 0x02)) { /* 12-hour mode: PM in bit 7 */
			int pm = h >= 12;
			h = h % 12 ? h % 12 : 12;
			*val = (uint8_t)(rtc_fmt(c, h) | (pm ? 0x80 : 0));
			return;
		}
		*val = rtc_fmt(c, h);
		return;
	}
	case 0x06:
		*val = (uint8_t)(tm.tm_wday + 1);
		return;
	case 0x07:
		*val = rtc_fmt(c, tm.tm_mday);
		return;
	case 0x08:
		*val = rtc_fmt(c, tm.tm_mon + 1);
		return;
	case 0x09:
		*val = rtc_fmt(c, tm.tm_year % 100);
		return;
	case 0x32:
		*val = rtc_fmt(c, (tm.tm_year + 1900) / 100);
		return;
	case 0x0a:
		*val = (uint8_t)((c->ram[0x0a] & 0x7f) |
				 (ts.tv_nsec > 1000000000L - 244000 ? 0x80 : 0));
		return;
	case 0x0c: {
		uint64_t sec = (uint64_t)ts.tv_sec;
		uint8_t v = c->ram[0x0c];
		if (sec != c->last_c_sec) {
			v |= 0x10; /* update ended since the last read */
			c->last_c_sec = sec;
		}
		*val = v;
		c->ram[0x0c] = 0;
		return;
	}
	default:
		*val = c->ram[idx];
	}
}

static void cmos_io(struct kvm_vm *vm, uint16_t port, int is_write, uint8_t *val)
{
	struct cmos_state *c = &vm->cmos;
	if (port == 0x70) {
		if (is_write)
			c->index = *val & 0x7f;
		else
			*val = 0xff;
		return;
	}
	if (is_write) {
		if (c->index != 0x0a || (*val & 0x7f) != 0) /* UIP is read-only */
			c->ram[c->index] = c->index == 0x0a ? (uint8_t)(*val & 0x7f) : *val;
		return;
	}
	rtc_read(c, c->index, val);
}

/* OUT of a PIT channel at host time now_ns, from the in-kernel PIT's state
 * (count_load_time is the host's monotonic clock). */
static int pit_out(const struct kvm_pit_channel_state *c, int64_t now_ns)
{
	uint64_t count = c->count ? c->count : 0x10000;
	int64_t dt = now_ns - c->count_load_time;
	uint64_t d = dt > 0 ? (uint64_t)((__int128)dt * 1193182 / 1000000000) : 0;
	switch (c->mode & 7) {
	case 0:
	case 1:
		return d >= count;
	case 2:
	case 6:
		return d % count != 0 || d == 0;
	case 3:
	case 7:
		return d % count < ((count + 1) >> 1);
	default:
		return d != count;
	}
}

static void port61_io(struct kvm_vm *vm, int is_write, uint8_t *val)
{
	struct kvm_pit_state2 ps;
	struct timespec ts;

	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &ps) < 0) {
		if (!is_write)
			*val = 0;
		return;
	}
	if (is_write) {
		vm->cmos.port61 = *val & 0x03;
		uint32_t gate = *val & 1;
		if (ps.channels[2].gate != gate) {
			ps.channels[2].gate = gate;
			ioctl(vm->vm_fd, KVM_SET_PIT2, &ps);
		}
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	int out = ps.channels[2].gate ? pit_out(&ps.channels[2], now) : 0;
	int refresh = (int)((now / 15085) & 1);
	*val = (uint8_t)((ps.channels[2].gate & 1) | (vm->cmos.port61 & 0x02) | (refresh << 4) |
			 (out << 5));
}

void kvm_pio(struct kvm_vm *vm, uint16_t port, int is_write, uint8_t *data, unsigned size)
{
	pthread_mutex_lock(&vm->dev_lock);
	if (port >= COM1 && port < COM1 + 8 && size == 1) {
		uart_io(vm, port - COM1, is_write, data);
	} else if (port == 0x61 && size == 1) {
		port61_io(vm, is_write, data);
	} else if (is_write && ((port == 0x64 && data[0] == 0xfe) ||
				(port == 0xcf9 && size == 1 && (data[0] & 0x04)))) {
		/* keyboard-controller pulse of the reset line, or the PCI reset
		 * register: a reboot request.  Like QEMU -no-reboot: the VM stops. */
		vm->reset_requested = 1;
	} else if ((port == 0x70 || port == 0x71) && size == 1) {
		cmos_io(vm, port, is_write, data);
	} else {
		if (!is_write)
			memset(data, 0xff, size);
		if (vm->nr_unknown_pio < 32) {
			vm->nr_unknown_pio++;
			log_debug(vm->name, "kvm: %s of %u bytes at port 0x%x: no device there",
				  is_write ? "write" : "read", size, port);
		}
	}
	pthread_mutex_unlock(&vm->dev_lock);
}

int kvm_console_in(struct kvm_vm *vm, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	pthread_mutex_lock(&vm->dev_lock);
	for (size_t i = 0; i < len; i++)
		uart_rx_push(&vm->uart, p[i]);
	uart_update_irq(vm);
	pthread_mutex_unlock(&vm->dev_lock);
	return 0;
}
