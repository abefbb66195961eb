/*
 * t-xen-refusals - the Xen backend's refusals, on any host (make check of a
 * --with-xen build; also run in dom0 by make check-xen): unknown or bad
 * options and a bad shape are refused in open with -EINVAL and a reason
 * naming them, before any Xen interface is touched; a host that is not a
 * dom0 is reported by host_unavailable (and hr_backend_why_missing) and
 * open fails there with -ENODEV and a reason; a dom0 is not reported, and
 * there open gets past the control interfaces and libxl to refuse attach=
 * of a domain that does not exist with -ENOENT, naming it (a successful
 * open is t-xen-backend's).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "common/log.h"
#include "tap.h"

extern const struct hr_backend_ops hr_xen_ops;

static int open_fails(const struct hr_vm_config *cfg, int want_rc, const char *want_text)
{
	struct hr_vm *vm = NULL;
	int rc = hr_xen_ops.open(&vm, cfg);
	int good = rc == want_rc && vm && strstr(hr_xen_ops.last_error(vm), want_text);
	if (!good)
		diag("rc %d, last error: %s", rc, vm ? hr_xen_ops.last_error(vm) : "(no vm)");
	hr_xen_ops.close(vm);
	return good;
}

int main(void)
{
	int dom0 =
	    !access("/dev/xen/privcmd", R_OK | W_OK) || !access("/proc/xen/privcmd", R_OK | W_OK);
	struct hr_vm_config cfg = {.name = "refused", .mem_bytes = 64u << 20, .nr_vcpus = 1};

	hr_log_init("t-xen-refusals", 1, 0);
	plan(8);
	ok(hr_backend_find("xen") == &hr_xen_ops, "the registry lists the xen backend");
	ok((hr_xen_ops.features & (HR_BF_MAP_BATCH | HR_BF_ATTACH)) ==
		   (HR_BF_MAP_BATCH | HR_BF_ATTACH) &&
	       !(hr_xen_ops.features & HR_BF_DIRTY_LIVE),
	   "features: batched maps and attach; dirty fetch only while paused");
	cfg.options = "colour=blue";
	ok(open_fails(&cfg, -EINVAL, "colour=blue"), "an unknown option is refused, named");
	cfg.options = "checkpoint=sometimes";
	ok(open_fails(&cfg, -EINVAL, "checkpoint=sometimes"), "a bad checkpoint= is refused");
	cfg.options = "suspend_timeout_ms=0";
	ok(open_fails(&cfg, -EINVAL, "suspend_timeout_ms"), "suspend_timeout_ms=0 is refused");
	cfg.options = NULL;
	cfg.mem_bytes = (64u << 20) + 4096;
	ok(open_fails(&cfg, -EINVAL, "whole MiB"), "memory not in whole MiB is refused");
	cfg.mem_bytes = 64u << 20;
	const char *why = hr_backend_why_missing("xen");
	if (dom0) {
		ok(!why, "in dom0: host_unavailable has nothing to say");
		cfg.attach = "hr-t-xen-refusals-no-such-domain";
		ok(open_fails(&cfg, -ENOENT, "attach=hr-t-xen-refusals-no-such-domain"),
		   "in dom0: attach= of a domain that does not exist fails with -ENOENT, named");
	} else {
		ok(why && strstr(why, "not a Xen dom0"), "not a dom0: %s", why ? why : "(nothing)");
		cfg.attach = "1";
		ok(open_fails(&cfg, -ENODEV, "control interfaces"),
		   "not a dom0: open fails with -ENODEV and a reason");
	}
	return tap_failed ? 1 : 0;
}
