/* kvm-internal.h - shared by the files of the KVM backend; never included by the core. */
#ifndef HR_KVM_INTERNAL_H
#define HR_KVM_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "backends/backend.h"
#include "virtio.h"

#define KVM_MAX_SLOTS	 4
#define HR_LOW_MEM_TOP	 0xC0000000ull /* RAM below the 32-bit PCI/MMIO hole */
#define HR_HIGH_MEM_BASE 0x100000000ull

struct kvm_vm;

/* How this VM tracks writes (options dirty=bitmap|ring). */
enum kvm_dirty_mode {
	KVM_DIRTY_BITMAP = 0, /* KVM_GET_DIRTY_LOG + manual KVM_CLEAR_DIRTY_LOG */
	KVM_DIRTY_RING = 1,   /* per-vCPU dirty rings */
};

/* Output channels of a KVM vm (index = chan of hr_vm_config.emit): the
 * console always, "net0" when options tap= gives the VM a virtio-net. */
enum { KVM_CHAN_CONSOLE = 0, KVM_CHAN_NET0 = 1, KVM_MAX_CHANS };

/* Largest Ethernet frame a virtio-net transmits or delivers (1500 bytes of
 * payload, header, one 802.1Q tag; no FCS). */
#define KVM_NET_MAX_FRAME 1518

/* Counters of a virtio-net device (virtio-net.c). */
struct kvm_net_stats {
	uint64_t tx_frames;	 /* emitted */
	uint64_t tx_dropped;	 /* emit refused (-ENOBUFS): dropped */
	uint64_t tx_errors;	 /* runt, oversized or writable-descriptor frames: dropped */
	uint64_t rx_frames;	 /* placed in a guest buffer */
	uint64_t rx_no_buffer;	 /* dropped: no receive buffer */
	uint64_t rx_dropped;	 /* dropped: driver not ready or queue broken */
	uint64_t rx_too_big;	 /* dropped: larger than the next buffer */
	uint64_t rx_errors;	 /* reading the TAP failed */
	uint64_t announces;	 /* RARP frames sent after a load_state */
	uint64_t deliver_errors; /* output_deliver could not write the TAP */
};
struct vnet;

/* 8250/16550 UART at 0x3f8 (uart.c). */
struct uart_state {
	uint8_t ier, iir_pending, lcr, mcr, lsr_extra, msr, scr, dll, dlm, fcr;
	uint8_t rx[256];
	uint16_t rx_head, rx_len;
	uint8_t irq_level;
};

/* CMOS / RTC at 0x70 (cmos.c, in uart.c for size). */
struct cmos_state {
	uint8_t index;
	uint8_t ram[128];
	uint8_t port61;	     /* speaker data bits of port 0x61 (saved with the CMOS) */
	uint64_t last_c_sec; /* RTC: second of the last register C read */
};

struct kvm_vcpu {
	struct kvm_vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	size_t run_bytes;
	pthread_t thread;
	int thread_started;
	int parked;
	/* dirty ring */
	struct kvm_dirty_gfn *ring;
	uint32_t ring_fetch;
};

struct kvm_slot {
	uint32_t slot;
	uint64_t gpa, bytes;
	uint8_t *hva;
	uint64_t *bitmap; /* KVM_GET_DIRTY_LOG scratch */
};

struct kvm_vm {
	char name[64];
	struct hr_vm_config cfg;
	int kvm_fd, vm_fd;
	int run_mmap_bytes;

	struct hr_mem_region regions[KVM_MAX_SLOTS];
	struct kvm_slot slots[KVM_MAX_SLOTS];
	unsigned nr_slots;
	uint64_t nr_gfns;
	int dirty_on;
	int has_manual_protect;

	enum kvm_dirty_mode dirty_mode;
	uint32_t ring_entries;	   /* ring mode: entries per vCPU ring */
	uint32_t ring_entries_opt; /* options ring_entries=N, 0 = default */
	uint64_t *ring_acc;	   /* ring mode: gfns harvested between fetches */
	uint64_t *ring_words;	   /* indices of the non-zero words of ring_acc */
	uint64_t nr_ring_words;
	pthread_mutex_t ring_lock;

	struct kvm_vcpu vcpus[HR_MAX_VCPUS];
	unsigned nr_vcpus;

	/* pause protocol: guarded by lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pause_req;
	unsigned nr_parked;
	int stopping; /* close: threads exit */
	int exited;   /* guest stopped on its own */

	/* devices: guarded by dev_lock (vCPU threads and console_in) */
	pthread_mutex_t dev_lock;
	struct uart_state uart;
	struct cmos_state cmos;
	unsigned nr_unknown_pio; /* for rate-limited debug logs */
	int reset_requested;	 /* guest asked for a reboot (port 0x64 / 0xcf9) */

	struct kvm_cpuid2 *cpuid; /* the guest's CPUID (cpuid.c), vCPU 0's APIC fields */

	/* MSRs that this host lets us save and restore */
	uint32_t *msr_list;
	unsigned nr_msrs;
	int has_xsave2;
	int xsave_bytes;
	int has_clock;
	unsigned state_caps; /* STATE_CAP_* found by kvm_state_probe */

	/* output channels (kvm_channels) */
	struct hr_chan_desc chans[KVM_MAX_CHANS];
	unsigned nr_chans;

	/* virtio-mmio devices (virtio-mmio.c); options tap=, mac= */
	struct virtio_dev *vdevs[VIRTIO_MMIO_MAX_DEVS];
	unsigned nr_vdevs;
	struct vnet *net;
	char tap_name[64];
	uint8_t mac[6];
	int has_mac;
	char *cmdline; /* cfg.cmdline with the virtio_mmio.device= items */

	/* guest pages the VMM wrote (devices), for dirty_fetch: vmm_dirty_lock */
	pthread_mutex_t vmm_dirty_lock;
	int vmm_dirty_on;
	uint64_t *vmm_acc, *vmm_words, nr_vmm_words;

	char errbuf[256];
};

/* kvm.c */
void kvm_set_error(struct kvm_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int kvm_irq_line(struct kvm_vm *vm, unsigned irq, int level);

/* vcpu.c */
int kvm_vcpus_create(struct kvm_vm *vm);
int kvm_vcpus_start_threads(struct kvm_vm *vm);
void kvm_vcpus_destroy(struct kvm_vm *vm);
int kvm_vm_pause(struct kvm_vm *vm);
int kvm_vm_resume(struct kvm_vm *vm);

/* dirty.c */
int kvm_dirty_enable_ring(struct kvm_vm *vm);
int kvm_dirty_map_rings(struct kvm_vm *vm);
int kvm_dirty_start(struct kvm_vm *vm);
int kvm_dirty_stop(struct kvm_vm *vm);
int kvm_dirty_fetch(struct kvm_vm *vm, struct hr_dirty_bits *d);
void kvm_dirty_ring_harvest(struct kvm_vm *vm);
void kvm_dirty_note(struct kvm_vm *vm, uint64_t gpa, uint64_t len);

/* loader.c: load a multiboot v1 kernel, a Linux bzImage (loader-linux.c)
 * or a PVH ELF and set vCPU 0's entry state. */
int kvm_load_guest(struct kvm_vm *vm, const char *path, const char *cmdline);
uint8_t *kvm_gpa_ptr(struct kvm_vm *vm, uint64_t gpa, uint64_t len);

/* One entry of the memory map every boot protocol hands over (e820 types:
 * 1 RAM, 2 reserved). */
struct kvm_e820 {
	uint64_t addr, len;
	uint32_t type;
};
#define KVM_E820_MAX 10 /* kvm_e820_build writes at most 9 */
int kvm_e820_build(struct kvm_vm *vm, struct kvm_e820 *m);
void kvm_setup_bda(struct kvm_vm *vm);

/* loader-linux.c: the Linux x86 boot protocol (bzImage, 64-bit entry).
 * Where it puts the boot data (below 640 KiB, above the BDA and the GDT): */
#define KVM_LINUX_ZERO_PAGE_GPA 0x7000ull  /* struct boot_params, 4 KiB */
#define KVM_LINUX_PML4_GPA	0x9000ull  /* PML4, PDPT, 4 PDs: 4 GiB identity map */
#define KVM_LINUX_CMDLINE_GPA	0x20000ull /* the command line */
#define KVM_LINUX_CMDLINE_MAX	0x10000u
#define KVM_MPTABLE_GPA		0x9fc00ull /* MP floating pointer + table, in the EBDA */
int kvm_is_bzimage(const uint8_t *img, size_t bytes);
int kvm_load_linux(struct kvm_vm *vm, const uint8_t *img, size_t bytes, const char *path);

/* mptable.c: an MP configuration table (CPUs, I/O APIC, ISA interrupts) in the EBDA */
int kvm_mptable_write(struct kvm_vm *vm);

/* uart.c: port I/O devices.  Return 0 if handled. */
void kvm_devices_init(struct kvm_vm *vm);
void kvm_pio(struct kvm_vm *vm, uint16_t port, int is_write, uint8_t *data, unsigned size);
int kvm_console_in(struct kvm_vm *vm, const void *buf, size_t len);

/* virtio-mmio.c: devices at VIRTIO_MMIO_BASE (virtio.h) */
int kvm_mmio(struct kvm_vm *vm, uint64_t gpa, int is_write, uint8_t *data, unsigned len);
int kvm_virtio_cmdline(struct kvm_vm *vm, const char *cmdline, char **cmdline_r);
void kvm_virtio_pause(struct kvm_vm *vm);
void kvm_virtio_resume(struct kvm_vm *vm);
void kvm_virtio_destroy(struct kvm_vm *vm);

/* virtio-net.c */
int kvm_net_create(struct kvm_vm *vm, const char *tap, const uint8_t mac[6], unsigned chan);
int kvm_net_deliver(struct kvm_vm *vm, unsigned chan, const void *buf, size_t len);
int kvm_net_get_stats(struct kvm_vm *vm, struct kvm_net_stats *s);
int kvm_net_parse_mac(const char *s, uint8_t mac[6]);
void kvm_net_default_mac(const char *name, uint8_t mac[6]);

/* tap.c */
int kvm_tap_open(struct kvm_vm *vm, const char *name, int *fd_r);
int kvm_tap_write(int fd, const void *frame, size_t len);
ssize_t kvm_tap_read(int fd, void *buf, size_t size);

/* cpuid.c */
int kvm_cpuid_init(struct kvm_vm *vm);
int kvm_cpuid_set(struct kvm_vm *vm, struct kvm_vcpu *v);
size_t kvm_cpuid_state_bytes(struct kvm_vm *vm);
void kvm_cpuid_state_save(struct kvm_vm *vm, uint8_t *r);
int kvm_cpuid_state_load(struct kvm_vm *vm, const uint8_t *r, uint32_t len);
int kvm_cpuid_model(struct kvm_vm *vm, void **model_r, size_t *len_r);
int kvm_cpuid_check(struct kvm_vm *vm, const void *model, size_t len, char *why, size_t n);

/* state.c */
int kvm_state_probe(struct kvm_vm *vm);
int kvm_state_save(struct kvm_vm *vm, void **blob_r, size_t *len_r);
int kvm_state_load(struct kvm_vm *vm, const void *blob, size_t len);

#endif
