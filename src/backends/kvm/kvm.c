/*
 * kvm.c - the KVM backend: hareplicate is the VMM.  This file builds and
 * tears down the VM (memory slots, in-kernel irqchip and PIT) and exports
 * hr_kvm_ops; vCPU threads, dirty logging, the loader, devices and state
 * live in their own files (one device per file: uart.c, virtio-mmio.c with
 * virtqueue.c, virtio-net.c with tap.c, virtio-blk.c on src/disk).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "acpi.h"
#include "kvm-internal.h"
#include "virtio-blk.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

void kvm_set_error(struct kvm_vm *vm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(vm->errbuf, sizeof(vm->errbuf), fmt, ap);
	va_end(ap);
	log_debug(vm->name, "kvm: %s", vm->errbuf); /* callers report it via last_error */
}

int kvm_irq_line(struct kvm_vm *vm, unsigned irq, int level)
{
	struct kvm_irq_level l = {.irq = irq, .level = level};
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

static int kvm_setup_memory(struct kvm_vm *vm)
{
	uint64_t mem = vm->cfg.mem_bytes;
	uint64_t low = mem < HR_LOW_MEM_TOP ? mem : HR_LOW_MEM_TOP;

	vm->nr_slots = 0;
	for (int i = 0; i < 2; i++) {
		uint64_t gpa = i ? HR_HIGH_MEM_BASE : 0;
		uint64_t bytes = i ? mem - low : low;
		if (!bytes)
			continue;
		void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			kvm_set_error(vm, "cannot reserve %llu MiB of guest memory: %s",
				      (unsigned long long)(bytes >> 20), strerror(errno));
			return -ENOMEM;
		}
		madvise(p, bytes, MADV_DONTDUMP);
		struct kvm_slot *s = &vm->slots[vm->nr_slots];
		s->slot = vm->nr_slots;
		s->gpa = gpa;
		s->bytes = bytes;
		s->hva = p;
		s->bitmap = calloc(1, ((bytes >> HR_PAGE_SHIFT) + 63) / 64 * 8);
		if (!s->bitmap)
			return -ENOMEM;
		vm->regions[vm->nr_slots] = (struct hr_mem_region){gpa, bytes, p};
		struct kvm_userspace_memory_region r = {
		    .slot = s->slot,
		    .guest_phys_addr = gpa,
		    .memory_size = bytes,
		    .userspace_addr = (uintptr_t)p,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			int rc = -errno;
			kvm_set_error(vm, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
			return rc;
		}
		vm->nr_slots++;
	}
	vm->nr_gfns = hr_layout_nr_gfns(vm->regions, vm->nr_slots);
	return 0;
}

uint8_t *kvm_gpa_ptr(struct kvm_vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < vm->nr_slots; i++) {
		struct kvm_slot *s = &vm->slots[i];
		if (gpa >= s->gpa && gpa - s->gpa <= s->bytes && len <= s->bytes - (gpa - s->gpa))
			return s->hva + (gpa - s->gpa);
	}
	return NULL;
}

static void kvm_close(struct hr_vm *hvm)
{
	struct kvm_vm *vm = (struct kvm_vm *)hvm;
	if (!vm)
		return;
	kvm_vcpus_destroy(vm);
	kvm_virtio_destroy(vm); /* after the vCPUs (MMIO exits), before the memory */
	for (unsigned i = 0; i < vm->nr_slots; i++) {
		munmap(vm->slots[i].hva, vm->slots[i].bytes);
		free(vm->slots[i].bitmap);
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	free(vm->ring_acc);
	free(vm->ring_words);
	free(vm->msr_list);
	free(vm->cpuid);
	free(vm->cmdline);
	free(vm->vmm_acc);
	free(vm->vmm_words);
	pthread_mutex_destroy(&vm->vmm_dirty_lock);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->dev_lock);
	pthread_mutex_destroy(&vm->ring_lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

/* options: dirty=bitmap|ring, ring_entries=N (power of two), tap=IFNAME,
 * mac=52:54:00:12:34:56 (with tap=; default from the VM name). */
static int parse_options(struct kvm_vm *vm, const char *options)
{
	char key[32], val[64];
	const char *pos = options;
	int r;

	while ((r = hr_options_next(&pos, key, sizeof(key), val, sizeof(val))) > 0) {
		if (!strcmp(key, "dirty") && !strcmp(val, "bitmap")) {
			vm->dirty_mode = KVM_DIRTY_BITMAP;
		} else if (!strcmp(key, "dirty") && !strcmp(val, "ring")) {
			vm->dirty_mode = KVM_DIRTY_RING;
		} else if (!strcmp(key, "ring_entries")) {
			uint64_t n;
			if (hr_parse_count(val, 1, 1u << 20, &n) < 0 || (n & (n - 1))) {
				kvm_set_error(
				    vm, "ring_entries=%s: want a power of two up to 1048576", val);
				return -EINVAL;
			}
			vm->ring_entries_opt = (uint32_t)n;
		} else if (!strcmp(key, "tap")) {
			if (!*val || strlen(val) > 15 || strchr(val, '/')) {
				kvm_set_error(
				    vm, "tap=%s: want an interface name of 1..15 characters", val);
				return -EINVAL;
			}
			snprintf(vm->tap_name, sizeof(vm->tap_name), "%s", val);
		} else if (!strcmp(key, "mac")) {
			if (kvm_net_parse_mac(val, vm->mac) < 0) {
				kvm_set_error(vm,
					      "mac=%s: want a unicast MAC address such as "
					      "52:54:00:12:34:56",
					      val);
				return -EINVAL;
			}
			vm->has_mac = 1;
		} else {
			kvm_set_error(vm,
				      "unknown KVM option %s=%s (known: dirty=bitmap|ring, "
				      "ring_entries=N, tap=IFNAME, mac=MAC)",
				      key, val);
			return -EINVAL;
		}
	}
	if (r < 0) {
		kvm_set_error(vm, "malformed KVM options '%s' (want key=value,...)", options);
		return -EINVAL;
	}
	if (vm->has_mac && !vm->tap_name[0]) {
		kvm_set_error(vm, "mac= needs tap= (the MAC of the VM's virtio-net)");
		return -EINVAL;
	}
	return 0;
}

/* A virtio-blk per cfg.disks[i], after the net device; the caller's array
 * is not kept. */
static int setup_disks(struct kvm_vm *vm)
{
	int rc = 0;

	if (vm->cfg.nr_disks > HR_MAX_DISKS || (vm->cfg.nr_disks && !vm->cfg.disks)) {
		kvm_set_error(vm, "%u disks: at most %d", vm->cfg.nr_disks, HR_MAX_DISKS);
		rc = -EINVAL;
	}
	for (unsigned i = 0; rc == 0 && i < vm->cfg.nr_disks; i++)
		rc = kvm_blk_create(vm, i);
	vm->cfg.disks = NULL;
	return rc;
}

/* The console, a virtio-net on a TAP if options tap= asked for one, the disks. */
static int setup_devices(struct kvm_vm *vm)
{
	int rc;

	vm->chans[KVM_CHAN_CONSOLE] =
	    (struct hr_chan_desc){.name = "console", .kind = HR_CHAN_CONSOLE};
	vm->nr_chans = 1;
	if (!vm->tap_name[0])
		return setup_disks(vm);
	if (!vm->has_mac)
		kvm_net_default_mac(vm->name, vm->mac);
	if ((rc = kvm_net_create(vm, vm->tap_name, vm->mac, KVM_CHAN_NET0)) < 0)
		return rc;
	vm->chans[KVM_CHAN_NET0] = (struct hr_chan_desc){
	    .name = "net0", .kind = HR_CHAN_NET, .max_record_bytes = KVM_NET_MAX_FRAME};
	vm->nr_chans = 2;
	return setup_disks(vm);
}

static struct kvm_vm *vm_alloc(const struct hr_vm_config *cfg)
{
	struct kvm_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->cfg = *cfg;
	snprintf(vm->name, sizeof(vm->name), "%s", cfg->name ? cfg->name : "vm");
	vm->cfg.name = vm->name;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->dev_lock, NULL);
	pthread_mutex_init(&vm->ring_lock, NULL);
	pthread_mutex_init(&vm->vmm_dirty_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->pause_req = 1; /* vCPUs start parked */
	return vm;
}

int kvm_vm_bare(struct kvm_vm **vm_r, const struct hr_vm_config *cfg)
{
	struct kvm_vm *vm = vm_alloc(cfg);

	*vm_r = vm;
	if (!vm)
		return -ENOMEM;
	vm->cfg.options = NULL;
	uint8_t *p = mmap(NULL, cfg->mem_bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	vm->slots[0] = (struct kvm_slot){.gpa = 0, .bytes = cfg->mem_bytes, .hva = p};
	vm->regions[0] = (struct hr_mem_region){0, cfg->mem_bytes, p};
	vm->nr_slots = 1;
	vm->nr_gfns = hr_layout_nr_gfns(vm->regions, 1);
	return setup_disks(vm);
}

static int kvm_open(struct hr_vm **vm_r, const struct hr_vm_config *cfg)
{
	struct kvm_vm *vm = vm_alloc(cfg);
	int rc;

	*vm_r = (struct hr_vm *)vm;
	if (!vm)
		return -ENOMEM;
	vm->cfg.options = NULL; /* parsed here; the caller's string is not kept */
	if ((rc = parse_options(vm, cfg->options)) < 0)
		return rc;

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > HR_MAX_VCPUS) {
		kvm_set_error(vm, "vcpus must be 1..%d, not %u", HR_MAX_VCPUS, cfg->nr_vcpus);
		return -EINVAL;
	}
	/* only now: close (kvm_vcpus_destroy) walks vcpus[0..nr_vcpus) */
	vm->nr_vcpus = cfg->nr_vcpus;
	if (cfg->mem_bytes < (2u << 20) || cfg->mem_bytes % HR_PAGE_SIZE) {
		kvm_set_error(vm, "memory must be a multiple of 4 KiB and at least 2 MiB");
		return -EINVAL;
	}

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		rc = -errno;
		kvm_set_error(vm, "cannot open /dev/kvm: %s", strerror(errno));
		return rc;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		kvm_set_error(vm, "unexpected KVM API version");
		return -ENOTSUP;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		rc = -errno;
		kvm_set_error(vm, "KVM_CREATE_VM: %s", strerror(errno));
		return rc;
	}
	vm->run_mmap_bytes = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_mmap_bytes <= 0) {
		kvm_set_error(vm, "KVM_GET_VCPU_MMAP_SIZE failed");
		return -ENOTSUP;
	}

	/* Manual dirty-log protection: GET_DIRTY_LOG no longer re-protects,
	 * KVM_CLEAR_DIRTY_LOG does, for exactly the pages we collected. */
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
					     .args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE};
		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0)
			vm->has_manual_protect = 1;
	}
	if (vm->dirty_mode == KVM_DIRTY_RING && (rc = kvm_dirty_enable_ring(vm)) < 0)
		return rc;

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
		log_debug(vm->name, "KVM_SET_TSS_ADDR: %s (ignored)", strerror(errno));
	uint64_t idmap = 0xfffbc000ull;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		log_debug(vm->name, "KVM_SET_IDENTITY_MAP_ADDR: %s (ignored)", strerror(errno));

	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		rc = -errno;
		kvm_set_error(vm, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return rc;
	}
	/* In-kernel PIT including the port 0x61 speaker/gate logic that guests
	 * use to calibrate their TSC against PIT channel 2. */
	struct kvm_pit_config pit = {.flags = 0};
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		rc = -errno;
		kvm_set_error(vm, "KVM_CREATE_PIT2: %s", strerror(errno));
		return rc;
	}

	if ((rc = kvm_setup_memory(vm)) < 0)
		return rc;
	kvm_devices_init(vm);
	if ((rc = setup_devices(vm)) < 0)
		return rc;
	if (vm->nr_vdevs) {
		if ((rc = kvm_virtio_cmdline(vm, cfg->cmdline, &vm->cmdline)) < 0)
			return rc;
		vm->cfg.cmdline = vm->cmdline;
	}
	if ((rc = kvm_acpi_write(vm)) < 0) /* what a stock kernel finds by itself */
		return rc;
	if ((rc = kvm_cpuid_init(vm)) < 0 || (rc = kvm_vcpus_create(vm)) < 0)
		return rc;
	if (vm->dirty_mode == KVM_DIRTY_RING && (rc = kvm_dirty_map_rings(vm)) < 0)
		return rc;
	if ((rc = kvm_state_probe(vm)) < 0)
		return rc;
	if (cfg->kernel_path && (rc = kvm_load_guest(vm, cfg->kernel_path, vm->cfg.cmdline)) < 0)
		return rc;
	if ((rc = kvm_vcpus_start_threads(vm)) < 0)
		return rc;
	log_debug(vm->name, "kvm: %u vCPU(s), %llu MiB, dirty tracking by %s%s%s", vm->nr_vcpus,
		  (unsigned long long)(cfg->mem_bytes >> 20),
		  vm->dirty_mode == KVM_DIRTY_RING ? "ring" : "bitmap",
		  vm->tap_name[0] ? ", virtio-net on tap " : "", vm->tap_name);
	if (cfg->nr_disks)
		log_debug(vm->name, "kvm: %u virtio-blk disk(s)", cfg->nr_disks);
	return 0;
}

static int kvm_pause(struct hr_vm *vm)
{
	return kvm_vm_pause((struct kvm_vm *)vm);
}

static int kvm_resume(struct hr_vm *vm)
{
	return kvm_vm_resume((struct kvm_vm *)vm);
}

static int kvm_mem_layout(struct hr_vm *hvm, const struct hr_mem_region **regions_r, unsigned *nr_r)
{
	struct kvm_vm *vm = (struct kvm_vm *)hvm;
	*regions_r = vm->regions;
	*nr_r = vm->nr_slots;
	return 0;
}

static int kvm_op_dirty_start(struct hr_vm *vm)
{
	return kvm_dirty_start((struct kvm_vm *)vm);
}

static int kvm_op_dirty_stop(struct hr_vm *vm)
{
	return kvm_dirty_stop((struct kvm_vm *)vm);
}

static int kvm_op_dirty_fetch(struct hr_vm *vm, struct hr_dirty_bits *d)
{
	return kvm_dirty_fetch((struct kvm_vm *)vm, d);
}

static int kvm_save(struct hr_vm *vm, void **blob_r, size_t *len_r)
{
	return kvm_state_save((struct kvm_vm *)vm, blob_r, len_r);
}

static int kvm_load(struct hr_vm *vm, const void *blob, size_t len)
{
	return kvm_state_load((struct kvm_vm *)vm, blob, len);
}

static int kvm_op_console_in(struct hr_vm *vm, const void *buf, size_t len)
{
	return kvm_console_in((struct kvm_vm *)vm, buf, len);
}

static int kvm_channels(struct hr_vm *hvm, const struct hr_chan_desc **chans_r, unsigned *nr_r)
{
	struct kvm_vm *vm = (struct kvm_vm *)hvm;
	*chans_r = vm->chans;
	*nr_r = vm->nr_chans;
	return 0;
}

static int kvm_output_deliver(struct hr_vm *vm, unsigned chan, const void *buf, size_t len)
{
	return kvm_net_deliver((struct kvm_vm *)vm, chan, buf, len);
}

static const char *kvm_last_error(struct hr_vm *vm)
{
	return ((struct kvm_vm *)vm)->errbuf;
}

static int kvm_cpu_model(struct hr_vm *vm, void **model_r, size_t *len_r)
{
	return kvm_cpuid_model((struct kvm_vm *)vm, model_r, len_r);
}

static int kvm_cpu_check(struct hr_vm *vm, const void *model, size_t len, char *why,
			 size_t why_size)
{
	return kvm_cpuid_check((struct kvm_vm *)vm, model, len, why, why_size);
}

const struct hr_backend_ops hr_kvm_ops = {
    .name = "kvm",
    .features = HR_BF_DIRTY_RING | HR_BF_DISKS,
    .open = kvm_open,
    .close = kvm_close,
    .pause = kvm_pause,
    .resume = kvm_resume,
    .mem_layout = kvm_mem_layout,
    .dirty_start = kvm_op_dirty_start,
    .dirty_stop = kvm_op_dirty_stop,
    .dirty_fetch = kvm_op_dirty_fetch,
    .save_state = kvm_save,
    .load_state = kvm_load,
    .channels = kvm_channels,
    .console_in = kvm_op_console_in,
    .output_deliver = kvm_output_deliver,
    .last_error = kvm_last_error,
    .cpu_model = kvm_cpu_model,
    .cpu_check = kvm_cpu_check,
};
