/*
 * cpu-model.h - the KVM backend's CPU model (backend.h cpu_model: the
 * guest's CPUID table, src/backends/kvm/cpuid.c) for the tests of the
 * backup's CPU check: this host's, and the same with a feature bit this
 * host's KVM does not give a guest, or with another vendor.
 */
#ifndef HR_TESTS_CPU_MODEL_H
#define HR_TESTS_CPU_MODEL_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"

/* The CPU model a KVM replica of this host gives its guest (malloc'd):
 * 0 or -errno / -HR_E*. */
static inline int cpu_model_host(const struct hr_backend_ops *kvm, void **model_r, size_t *len_r)
{
	struct hr_vm_config cfg = {.name = "cpu-model", .mem_bytes = 2 << 20, .nr_vcpus = 1};
	struct hr_vm *vm = NULL;
	int rc = kvm->open(&vm, &cfg);
	if (!rc)
		rc = kvm->cpu_model(vm, model_r, len_r);
	kvm->close(vm);
	return rc;
}

/* The model's entry of CPUID function.index, NULL if none. */
static inline struct kvm_cpuid_entry2 *cpu_model_entry(void *model, size_t len, uint32_t function,
						       uint32_t index)
{
	struct kvm_cpuid_entry2 *e = (struct kvm_cpuid_entry2 *)((uint8_t *)model + 8);
	for (size_t i = 0; 8 + (i + 1) * sizeof(*e) <= len; i++)
		if (e[i].function == function && e[i].index == index)
			return &e[i];
	return NULL;
}

/* Give the model one feature bit it lacks, in the first of leaf 7.0 ebx,
 * ecx, edx and 0x80000001 ecx that has a clear bit; what says which, as the
 * backup names it ("CPUID 0x7.0 ebx bits 0x00000002").  0, or -1 if none. */
static inline int cpu_model_add_feature(void *model, size_t len, char *what, size_t n)
{
	static const struct {
		uint32_t function;
		unsigned reg; /* 1 ebx, 2 ecx, 3 edx */
	} regs[] = {{7, 1}, {7, 2}, {7, 3}, {0x80000001u, 2}};
	static const char *const names[] = {"eax", "ebx", "ecx", "edx"};
	for (unsigned i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		struct kvm_cpuid_entry2 *e = cpu_model_entry(model, len, regs[i].function, 0);
		if (!e)
			continue;
		uint32_t *r = regs[i].reg == 1 ? &e->ebx : regs[i].reg == 2 ? &e->ecx : &e->edx;
		for (unsigned b = 0; b < 32; b++)
			if (!(*r & (1u << b))) {
				*r |= 1u << b;
				snprintf(what, n, "CPUID 0x%x.0 %s bits 0x%08x", regs[i].function,
					 names[regs[i].reg], 1u << b);
				return 0;
			}
	}
	return -1;
}

/* Make the model's vendor (leaf 0) "HRtestCPUxyz". */
static inline int cpu_model_other_vendor(void *model, size_t len)
{
	struct kvm_cpuid_entry2 *e = cpu_model_entry(model, len, 0, 0);
	if (!e)
		return -1;
	memcpy(&e->ebx, "HRte", 4);
	memcpy(&e->edx, "stCP", 4);
	memcpy(&e->ecx, "Uxyz", 4);
	return 0;
}

#endif
