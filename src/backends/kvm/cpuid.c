/*
 * cpuid.c - the CPUID a guest sees, and its part of the state blob.
 *
 * The table is KVM_GET_SUPPORTED_CPUID's, filtered to what a guest can use
 * and this VMM can checkpoint and restore:
 *
 *   - leaf 1 ECX bit 31 (hypervisor) set: Linux looks for the KVM leaves
 *     (0x40000000: "KVMKVMKVM") only then, and uses kvmclock from there;
 *   - KVM paravirtual features (leaf 0x40000001 EAX) kept only when the MSR
 *     that carries their state is one this host lets us save and restore
 *     (kvmclock, steal time, PV EOI, poll control), and never async page
 *     faults: their "page ready" events refer to host-side work that does
 *     not travel with a checkpoint;
 *   - without KVM_CAP_XSAVE2 (KVM_GET_XSAVE: 4 KiB), the XSAVE components
 *     that lie beyond 4 KiB (AMX tile data) and the AMX feature bits dropped;
 *   - per vCPU: initial APIC ID and logical count in leaf 1, x2APIC ID in
 *     leaves 0xb and 0x1f (KVM reports those of the host CPU the ioctl ran
 *     on: cleared in the VM's table, which is then the same whichever CPU
 *     of whichever host of a pair built it).
 *
 * The VM's table (vCPU 0's APIC fields) is saved as one R_CPUID record.
 * Loading it checks, feature leaf by feature leaf, that this host's KVM
 * supports every feature bit the guest was given (else the blob is refused
 * with the leaf and bits missing: a guest must never lose a CPU feature it
 * already uses) and gives every vCPU the saved table.
 *
 * The same record is the backend's cpu_model: a primary sends it in its
 * HELLO, and a backup refuses (cpu_check, -HR_ECPU) a guest whose CPU
 * vendor differs from its own or that has a feature bit its own filtered
 * table lacks, before the first epoch; its replica then takes the table
 * from the first state blob, so both hosts give the guest the same CPUID.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm-internal.h"
#include "common/err.h"
#include "common/log.h"

#define KVM_LEAF_FEATURES 0x40000001u
/* KVM_FEATURE_* bits of leaf 0x40000001 EAX and the MSR each needs */
static const struct {
	unsigned bit;
	uint32_t msr; /* 0: never offered */
} pv_features[] = {
    {0, 0x12},	      /* CLOCKSOURCE: MSR_KVM_SYSTEM_TIME */
    {3, 0x4b564d01},  /* CLOCKSOURCE2: MSR_KVM_SYSTEM_TIME_NEW */
    {4, 0},	      /* ASYNC_PF */
    {5, 0x4b564d03},  /* STEAL_TIME */
    {6, 0x4b564d04},  /* PV_EOI */
    {10, 0},	      /* ASYNC_PF_VMEXIT */
    {12, 0x4b564d05}, /* POLL_CONTROL */
    {14, 0},	      /* ASYNC_PF_INT */
};

/* feature leaves whose bits a restore host must support: (function, index, register) */
static const struct {
	uint32_t function, index;
	unsigned reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
} feature_regs[] = {
    {1, 0, 2},	 {1, 0, 3},   {7, 0, 1},	   {7, 0, 2},		{7, 0, 3},
    {0xd, 0, 0}, {0xd, 1, 0}, {0x80000001u, 0, 2}, {0x80000001u, 0, 3}, {KVM_LEAF_FEATURES, 0, 0},
};

static uint32_t *reg_of(struct kvm_cpuid_entry2 *e, unsigned r)
{
	return r == 0 ? &e->eax : r == 1 ? &e->ebx : r == 2 ? &e->ecx : &e->edx;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == function &&
		    (!(c->entries[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ||
		     c->entries[i].index == index))
			return &c->entries[i];
	return NULL;
}

static int supported(struct kvm_vm *vm, struct kvm_cpuid2 **c_r)
{
	int n = 128;
	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*c_r = c;
			return 0;
		}
		int e = errno;
		free(c);
		if (e != E2BIG || n > 4096)
			return -e;
		n *= 2;
	}
}

static int msr_listed(const struct kvm_msr_list *l, uint32_t msr)
{
	for (unsigned i = 0; l && i < l->nmsrs; i++)
		if (l->indices[i] == msr)
			return 1;
	return 0;
}

static struct kvm_msr_list *msr_index_list(struct kvm_vm *vm)
{
	struct kvm_msr_list probe = {.nmsrs = 0};
	ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (l) {
		l->nmsrs = probe.nmsrs;
		if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0)
			l->nmsrs = 0;
	}
	return l;
}

static void filter(struct kvm_vm *vm, struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *e;
	struct kvm_msr_list *msrs = msr_index_list(vm);

	if ((e = find(c, 1, 0))) {
		e->ecx |= 1u << 31;
		e->ebx &= 0x0000ffff; /* the host CPU's APIC ID and count: set per vCPU */
	}
	for (unsigned i = 0; i < c->nent; i++) /* the host CPU's x2APIC ID: set per vCPU */
		if (c->entries[i].function == 0xb || c->entries[i].function == 0x1f)
			c->entries[i].edx = 0;
	if ((e = find(c, KVM_LEAF_FEATURES, 0)))
		for (unsigned i = 0; i < sizeof(pv_features) / sizeof(pv_features[0]); i++)
			if (!pv_features[i].msr || !msr_listed(msrs, pv_features[i].msr))
				e->eax &= ~(1u << pv_features[i].bit);
	free(msrs);
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2) > 0)
		return;
	/* KVM_GET_XSAVE holds 4 KiB: no component that ends beyond it */
	uint64_t drop = 0;
	for (unsigned i = 2; i < 64; i++) {
		struct kvm_cpuid_entry2 *s = NULL;
		for (unsigned k = 0; k < c->nent; k++)
			if (c->entries[k].function == 0xd && c->entries[k].index == i)
				s = &c->entries[k];
		if (s && s->eax && (uint64_t)s->ebx + s->eax > 4096) {
			drop |= 1ull << i;
			s->eax = s->ebx = s->ecx = s->edx = 0;
		}
	}
	if (drop && (e = find(c, 0xd, 0))) {
		e->eax &= ~(uint32_t)drop;
		e->edx &= ~(uint32_t)(drop >> 32);
	}
	if (drop && (e = find(c, 7, 0)))
		e->edx &=
		    ~((1u << 22) | (1u << 24) | (1u << 25)); /* AMX-BF16, AMX-TILE, AMX-INT8 */
}

int kvm_cpuid_init(struct kvm_vm *vm)
{
	int rc = supported(vm, &vm->cpuid);
	if (rc < 0) {
		kvm_set_error(vm, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-rc));
		return rc;
	}
	filter(vm, vm->cpuid);
	return 0;
}

/* The VM's table with vCPU id's APIC fields, into the vCPU. */
int kvm_cpuid_set(struct kvm_vm *vm, struct kvm_vcpu *v)
{
	struct kvm_cpuid2 *c = vm->cpuid;
	size_t bytes = sizeof(*c) + c->nent * sizeof(c->entries[0]);
	struct kvm_cpuid2 *mine = malloc(bytes);
	if (!mine)
		return -ENOMEM;
	memcpy(mine, c, bytes);
	for (unsigned i = 0; i < mine->nent; i++) {
		struct kvm_cpuid_entry2 *e = &mine->entries[i];
		if (e->function == 1) {
			e->ebx = (e->ebx & 0x00ffffff) | (v->id << 24);
			e->ebx = (e->ebx & 0xff00ffff) | (vm->nr_vcpus << 16);
			if (vm->nr_vcpus > 1)
				e->edx |= 1u << 28; /* HTT: the logical count is valid */
		}
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = v->id;
	}
	int rc = ioctl(v->fd, KVM_SET_CPUID2, mine) < 0 ? -errno : 0;
	free(mine);
	return rc;
}

size_t kvm_cpuid_state_bytes(struct kvm_vm *vm)
{
	return 8 + vm->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
}

void kvm_cpuid_state_save(struct kvm_vm *vm, uint8_t *r)
{
	uint32_t n = vm->cpuid->nent, zero = 0;
	memcpy(r, &n, 4);
	memcpy(r + 4, &zero, 4);
	memcpy(r + 8, vm->cpuid->entries, n * sizeof(struct kvm_cpuid_entry2));
}

/* A CPUID record (the state blob's and the HELLO's): u32 count, u32 0, entries. */
static int parse_record(const uint8_t *r, size_t len, struct kvm_cpuid2 **c_r)
{
	uint32_t n;

	if (len < 8)
		return -EINVAL;
	memcpy(&n, r, 4);
	if (n > 4096 || len != 8 + n * sizeof(struct kvm_cpuid_entry2))
		return -EINVAL;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = n;
	memcpy(c->entries, r + 8, n * sizeof(c->entries[0]));
	*c_r = c;
	return 0;
}

/* The vendor string of leaf 0 ("AuthenticAMD"), NUL-terminated. */
static void vendor(const struct kvm_cpuid_entry2 *e, char out[13])
{
	memcpy(out, &e->ebx, 4);
	memcpy(out + 4, &e->edx, 4);
	memcpy(out + 8, &e->ecx, 4);
	out[12] = '\0';
}

/* Can host give a guest the CPU of table guest: the same vendor and every
 * feature bit?  0, or -HR_ECPU with the first difference in why. */
static int lacking(struct kvm_cpuid2 *host, struct kvm_cpuid2 *guest, char *why, size_t n)
{
	static const char *const names[] = {"eax", "ebx", "ecx", "edx"};
	struct kvm_cpuid_entry2 *ge = find(guest, 0, 0), *he = find(host, 0, 0);
	if (ge && (!he || ge->ebx != he->ebx || ge->ecx != he->ecx || ge->edx != he->edx)) {
		char gv[13], hv[13] = "?";
		vendor(ge, gv);
		if (he)
			vendor(he, hv);
		snprintf(why, n, "CPU vendor '%s', this host's is '%s' (CPUID 0x0)", gv, hv);
		return -HR_ECPU;
	}
	for (unsigned i = 0; i < sizeof(feature_regs) / sizeof(feature_regs[0]); i++) {
		ge = find(guest, feature_regs[i].function, feature_regs[i].index);
		he = find(host, feature_regs[i].function, feature_regs[i].index);
		uint32_t want = ge ? *reg_of(ge, feature_regs[i].reg) : 0;
		uint32_t have = he ? *reg_of(he, feature_regs[i].reg) : 0;
		if (want & ~have) {
			snprintf(why, n,
				 "this host's CPU lacks features of the guest's: CPUID 0x%x.%u %s "
				 "bits 0x%08x",
				 feature_regs[i].function, feature_regs[i].index,
				 names[feature_regs[i].reg], want & ~have);
			return -HR_ECPU;
		}
	}
	return 0;
}

int kvm_cpuid_model(struct kvm_vm *vm, void **model_r, size_t *len_r)
{
	size_t len = kvm_cpuid_state_bytes(vm);
	uint8_t *r = len <= HR_CPU_MODEL_MAX ? malloc(len) : NULL;
	if (!r)
		return len <= HR_CPU_MODEL_MAX ? -ENOMEM : -E2BIG;
	kvm_cpuid_state_save(vm, r);
	*model_r = r;
	*len_r = len;
	return 0;
}

int kvm_cpuid_check(struct kvm_vm *vm, const void *model, size_t len, char *why, size_t n)
{
	struct kvm_cpuid2 *c = NULL;
	int rc = parse_record(model, len, &c);
	if (rc < 0) {
		snprintf(why, n, "the guest's CPU model is not a KVM CPUID table (%zu bytes)", len);
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	/* this host's table is what it gives a guest: KVM's, filtered (filter()) */
	rc = lacking(vm->cpuid, c, why, n);
	free(c);
	return rc;
}

int kvm_cpuid_state_load(struct kvm_vm *vm, const uint8_t *r, uint32_t len)
{
	struct kvm_cpuid2 *c = NULL, *host = NULL;
	char why[160];
	int rc;

	if (parse_record(r, len, &c) < 0) {
		kvm_set_error(vm, "state blob: bad CPUID record");
		return -HR_EBADSTATE;
	}
	if ((rc = supported(vm, &host)) < 0)
		goto out;
	struct kvm_cpuid_entry2 *he;
	if ((he = find(host, 1, 0)))
		he->ecx |= 1u << 31; /* ours to set, not the CPU's */
	if (lacking(host, c, why, sizeof(why)) < 0) {
		kvm_set_error(vm, "%s", why);
		rc = -HR_EBADSTATE;
		goto out;
	}
	if (c->nent == vm->cpuid->nent &&
	    !memcmp(c->entries, vm->cpuid->entries, c->nent * sizeof(c->entries[0])))
		goto out; /* the vCPUs have it (KVM refuses any change once they ran) */
	free(vm->cpuid);
	vm->cpuid = c;
	c = NULL;
	for (unsigned i = 0; i < vm->nr_vcpus && !rc; i++)
		if ((rc = kvm_cpuid_set(vm, &vm->vcpus[i])) < 0)
			kvm_set_error(vm, "restoring the CPUID of vCPU %u: %s", i, strerror(-rc));
out:
	free(c);
	free(host);
	return rc;
}
