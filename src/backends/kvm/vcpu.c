/*
 * vcpu.c - one thread per vCPU and the pause protocol.
 *
 * Pause: under vm->lock set pause_req and every vCPU's run->immediate_exit,
 * then kick each thread with HR_KICK_SIGNAL.  A thread inside KVM_RUN gets
 * -EINTR; a thread about to enter it returns at once because of
 * immediate_exit.  Either way KVM_RUN first completes any pending I/O, so
 * the state that is saved afterwards is consistent.  The thread then parks
 * (nr_parked++) and pause returns when nr_parked == nr_vcpus.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm-internal.h"
#include "common/log.h"

/* the worker's own signals (daemon/daemon.h HR_SIG_*) start at SIGRTMIN + 4 */
#define HR_KICK_SIGNAL (SIGRTMIN + 1)

static void kick_handler(int sig)
{
	(void)sig;
}

int kvm_vcpus_create(struct kvm_vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->id = i;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (v->fd < 0) {
			int rc = -errno;
			kvm_set_error(vm, "KVM_CREATE_VCPU %u: %s", i, strerror(errno));
			return rc;
		}
		v->run_bytes = vm->run_mmap_bytes;
		v->run = mmap(NULL, v->run_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			kvm_set_error(vm, "mmap kvm_run: %s", strerror(errno));
			return -ENOMEM;
		}
		int rc = kvm_cpuid_set(vm, v);
		if (rc < 0) {
			kvm_set_error(vm, "KVM_SET_CPUID2: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static void guest_exited(struct kvm_vm *vm, enum hr_exit_reason why, int code)
{
	pthread_mutex_lock(&vm->lock);
	int first = !vm->exited;
	vm->exited = 1;
	pthread_mutex_unlock(&vm->lock);
	if (first && vm->cfg.on_exit)
		vm->cfg.on_exit(vm->cfg.exit_opaque, why, code);
}

/* Park until resumed; returns 1 if the thread must end. */
static int park(struct kvm_vcpu *v)
{
	struct kvm_vm *vm = v->vm;
	pthread_mutex_lock(&vm->lock);
	v->parked = 1;
	vm->nr_parked++;
	pthread_cond_broadcast(&vm->cond);
	while ((vm->pause_req || vm->exited) && !vm->stopping)
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->nr_parked--;
	v->parked = 0;
	v->run->immediate_exit = 0;
	int stop = vm->stopping;
	pthread_mutex_unlock(&vm->lock);
	return stop;
}

static int handle_exit(struct kvm_vcpu *v)
{
	struct kvm_vm *vm = v->vm;
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		for (unsigned i = 0; i < run->io.count; i++) {
			if (run->io.port == 0xf4 && run->io.direction == KVM_EXIT_IO_OUT) {
				/* isa-debug-exit, as QEMU's: status (value << 1) | 1 */
				guest_exited(vm, HR_EXIT_DEBUG_PORT, (data[0] << 1) | 1);
				return 1;
			}
			kvm_pio(vm, run->io.port, run->io.direction == KVM_EXIT_IO_OUT, data,
				run->io.size);
			data += run->io.size;
		}
		if (vm->reset_requested) {
			log_info(vm->name, "guest requested a reset (vCPU %u): stopping", v->id);
			guest_exited(vm, HR_EXIT_SHUTDOWN, 0);
			return 1;
		}
		return 0;
	}
	case KVM_EXIT_MMIO:
		/* virtio-mmio devices; elsewhere an empty bus: reads all ones */
		if (kvm_mmio(vm, run->mmio.phys_addr, run->mmio.is_write, run->mmio.data,
			     run->mmio.len) < 0 &&
		    !run->mmio.is_write)
			memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
		return 0;
	case KVM_EXIT_DIRTY_RING_FULL:
		kvm_dirty_ring_harvest(vm);
		return 0;
	case KVM_EXIT_HLT:
		guest_exited(vm, HR_EXIT_HALT, 0);
		return 1;
	case KVM_EXIT_SHUTDOWN:
	case KVM_EXIT_SYSTEM_EVENT:
		log_info(vm->name, "guest shut down (vCPU %u)", v->id);
		guest_exited(vm, HR_EXIT_SHUTDOWN, 0);
		return 1;
	case KVM_EXIT_INTERNAL_ERROR: {
		struct kvm_regs regs;
		ioctl(v->fd, KVM_GET_REGS, &regs);
		kvm_set_error(vm, "vCPU %u: KVM internal error, suberror %u at rip 0x%llx", v->id,
			      run->internal.suberror, (unsigned long long)regs.rip);
		guest_exited(vm, HR_EXIT_ERROR, -1);
		return 1;
	}
	case KVM_EXIT_FAIL_ENTRY:
		kvm_set_error(vm, "vCPU %u: entry failed, reason 0x%llx", v->id,
			      (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		guest_exited(vm, HR_EXIT_ERROR, -1);
		return 1;
	default:
		kvm_set_error(vm, "vCPU %u: unhandled exit reason %u", v->id, run->exit_reason);
		guest_exited(vm, HR_EXIT_ERROR, -1);
		return 1;
	}
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *v = arg;
	struct kvm_vm *vm = v->vm;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, HR_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	for (;;) {
		if (vm->exited) {
			if (park(v))
				break;
			continue;
		}
		if (v->run->immediate_exit) {
			/* A pause is pending: complete pending I/O first, then park. */
			ioctl(v->fd, KVM_RUN, 0);
			if (park(v))
				break;
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			kvm_set_error(vm, "vCPU %u: KVM_RUN: %s", v->id, strerror(errno));
			guest_exited(vm, HR_EXIT_ERROR, -errno);
			continue;
		}
		if (handle_exit(v)) {
			/* guest stopped on its own: stay parked until close */
			continue;
		}
	}
	return NULL;
}

int kvm_vcpus_start_threads(struct kvm_vm *vm)
{
	struct sigaction sa = {.sa_handler = kick_handler, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(HR_KICK_SIGNAL, &sa, NULL);

	/* vCPU threads start with every signal but the kick blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_vcpu *v = &vm->vcpus[i];
		v->run->immediate_exit = 1; /* park on first loop */
		if (pthread_create(&v->thread, NULL, vcpu_thread, v) != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			kvm_set_error(vm, "cannot start vCPU thread");
			return -EAGAIN;
		}
		v->thread_started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Wait until all are parked so that pause/resume start from a known state. */
	pthread_mutex_lock(&vm->lock);
	while (vm->nr_parked < vm->nr_vcpus)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int kvm_vm_pause(struct kvm_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = 1;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_vcpu *v = &vm->vcpus[i];
		if (!v->parked) {
			__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
			pthread_kill(v->thread, HR_KICK_SIGNAL);
		}
	}
	while (vm->nr_parked < vm->nr_vcpus)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	/* device threads too: from here nothing writes guest memory */
	kvm_virtio_pause(vm);
	return 0;
}

int kvm_vm_resume(struct kvm_vm *vm)
{
	kvm_virtio_resume(vm);
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = 0;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

void kvm_vcpus_destroy(struct kvm_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->stopping = 1;
	vm->pause_req = 1;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_vcpu *v = &vm->vcpus[i];
		if (v->thread_started && v->run) {
			v->run->immediate_exit = 1;
			pthread_kill(v->thread, HR_KICK_SIGNAL);
		}
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_vcpu *v = &vm->vcpus[i];
		if (v->thread_started)
			pthread_join(v->thread, NULL);
		if (v->ring)
			munmap(v->ring, (size_t)vm->ring_entries * sizeof(struct kvm_dirty_gfn));
		if (v->run)
			munmap(v->run, v->run_bytes);
		if (v->fd > 0)
			close(v->fd);
	}
}
