/*
 * t-kvm-cpuid.c - the KVM backend's CPU model and the backup's check of a
 * primary's (backend.h cpu_model / cpu_check) against real /dev/kvm: this
 * host's own model passes; one with a feature bit this host's KVM does not
 * give a guest, or with another vendor, is refused with -HR_ECPU naming the
 * leaf, register and bits (or the vendors); a record that is no CPUID table
 * is refused with -EINVAL; two replicas give the same model (the guest's
 * CPUID is identical on both hosts of a pair).  The daemon's refusal of such
 * a HELLO: tests/t-kvm-cpuid.sh.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu-model.h"
#include "tap.h"
#include "common/err.h"

int main(void)
{
	const struct hr_backend_ops *kvm = hr_backend_find("kvm");
	struct hr_vm_config cfg = {.name = "t-kvm-cpuid", .mem_bytes = 2 << 20, .nr_vcpus = 1};
	struct hr_vm *vm = NULL;
	void *model = NULL, *again = NULL;
	size_t len = 0, len2 = 0;
	char why[200] = "", what[80] = "";
	int rc;

	if (!kvm)
		skip_all("the KVM backend is not built");
	if (access("/dev/kvm", R_OK | W_OK))
		skip_all("/dev/kvm not usable");
	plan(7);
	ok(kvm->cpu_model && kvm->cpu_check, "the KVM backend has cpu_model and cpu_check");
	rc = kvm->open(&vm, &cfg);
	if (!rc)
		rc = kvm->cpu_model(vm, &model, &len);
	ok(rc == 0 && len > 8 && len <= HR_CPU_MODEL_MAX,
	   "a replica's CPU model: its CPUID table, %zu bytes (%s)", len, hr_strerror(rc));
	if (rc || !model)
		bail("no CPU model");
	rc = cpu_model_host(kvm, &again, &len2);
	ok(rc == 0 && len2 == len && !memcmp(model, again, len),
	   "another replica on this host gives the same model (%zu bytes)", len2);
	for (size_t i = 8; !rc && len2 == len && i < len; i += sizeof(struct kvm_cpuid_entry2)) {
		const uint32_t *a = (const uint32_t *)((uint8_t *)model + i);
		const uint32_t *b = (const uint32_t *)((uint8_t *)again + i);
		if (memcmp(a, b, sizeof(struct kvm_cpuid_entry2)))
			diag("differs: 0x%x.%u %08x %08x %08x %08x / %08x %08x %08x %08x", a[0],
			     a[1], a[3], a[4], a[5], a[6], b[3], b[4], b[5], b[6]);
	}
	rc = kvm->cpu_check(vm, model, len, why, sizeof(why));
	ok(rc == 0, "this host's own model passes (%s)", rc ? why : "0");

	memcpy(again, model, len);
	if (cpu_model_add_feature(again, len, what, sizeof(what)) < 0)
		bail("no clear feature bit to add in leaf 7.0 or 0x80000001");
	why[0] = '\0';
	rc = kvm->cpu_check(vm, again, len, why, sizeof(why));
	ok(rc == -HR_ECPU && strstr(why, what), "a feature bit this host lacks (%s) is refused: %s",
	   what, why);

	memcpy(again, model, len);
	cpu_model_other_vendor(again, len);
	why[0] = '\0';
	rc = kvm->cpu_check(vm, again, len, why, sizeof(why));
	ok(rc == -HR_ECPU && strstr(why, "vendor 'HRtestCPUxyz'"), "another vendor is refused: %s",
	   why);

	why[0] = '\0';
	rc = kvm->cpu_check(vm, model, len - 3, why, sizeof(why));
	ok(rc == -EINVAL && why[0], "a record that is no CPUID table is refused: %s", why);
	free(model);
	free(again);
	kvm->close(vm);
	return tap_done();
}
