/*
 * xen.c - the Xen backend's hooks (see xen-internal.h for the files).
 *
 * A vm is one Xen domain (HVM container: PVH, or HVM without a device
 * model).  `open` either attaches to a running domain (cfg->attach: a domid
 * or a name), builds one with libxl from cfg->kernel_path (kept paused until
 * resume), or, without a kernel, builds the replica: a paused domain of the
 * same shape whose memory and state are overwritten by epochs and which is
 * unpaused on promotion.  `close` destroys a domain this vm built (it dies
 * with its worker, as a KVM guest dies with its VMM) and leaves an attached
 * one as it is: paused, when the backend had paused it (after a failover
 * it may no longer be the primary; unpausing is the operator's call).
 *
 * Options (cfg->options):
 *   kernel=PATH         the PVH image libxl builds a replica with (its memory
 *                       is overwritten before it ever runs; any PVH image
 *                       does; default the installed replica shell, shell.S,
 *                       or the build tree's, else /boot/vmlinuz-RELEASE,
 *                       dom0's own kernel; a
 *                       Linux kernel costs its decompression, ~1 min under
 *                       TCG, longer than a primary waits for the handshake)
 *   replica_name=NAME   the replica domain's name (default VM-replica)
 *   console=ring|none   read the domain's PV console ring (default) or not
 *   checkpoint=suspend|pause
 *                       stop the guest for a checkpoint by a cooperative
 *                       suspend (default, see suspend.c) or a plain pause
 *   suspend_timeout_ms=N how long a guest may take to suspend (10000); a
 *                       slower one is paused as it is for that checkpoint
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "backends/xen/xen-internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

void xen_fail(struct xen_vm *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->last_error, sizeof(x->last_error), fmt, ap);
	va_end(ap);
	log_warnx(x->name, "xen: %s", x->last_error);
}

static int parse_options(struct xen_vm *x, const char *options)
{
	char key[32], val[256];
	const char *pos = options;
	int r;

	x->console_ring = 1;
	x->cooperative = 1;
	x->suspend_timeout_ms = 10000;
	snprintf(x->replica_name, sizeof(x->replica_name), "%s-replica", x->name);
	while ((r = hr_options_next(&pos, key, sizeof(key), val, sizeof(val))) > 0) {
		if (!strcmp(key, "kernel") && val[0] == '/') {
			snprintf(x->kernel, sizeof(x->kernel), "%s", val);
		} else if (!strcmp(key, "replica_name") && val[0]) {
			snprintf(x->replica_name, sizeof(x->replica_name), "%s", val);
		} else if (!strcmp(key, "checkpoint") &&
			   (!strcmp(val, "suspend") || !strcmp(val, "pause"))) {
			x->cooperative = !strcmp(val, "suspend");
		} else if (!strcmp(key, "suspend_timeout_ms")) {
			if (hr_parse_count(val, 1, 600000, &x->suspend_timeout_ms) < 0) {
				xen_fail(x, "suspend_timeout_ms=%s: want 1..600000", val);
				return -EINVAL;
			}
		} else if (!strcmp(key, "console") &&
			   (!strcmp(val, "ring") || !strcmp(val, "none"))) {
			x->console_ring = !strcmp(val, "ring");
		} else {
			xen_fail(x,
				 "unknown xen option %s=%s (known: kernel=/ABS/PATH, "
				 "replica_name=NAME, console=ring|none, checkpoint=suspend|pause, "
				 "suspend_timeout_ms=N)",
				 key, val);
			return -EINVAL;
		}
	}
	if (r < 0) {
		xen_fail(x, "malformed xen options '%s' (want key=value,...)", options);
		return -EINVAL;
	}
	return 0;
}

/* The attached domain must be an HVM container of the configured shape. */
static int check_domain(struct xen_vm *x)
{
	xc_dominfo_t info;

	if (xc_domain_getinfo(x->xch, x->domid, 1, &info) != 1 || info.domid != x->domid) {
		xen_fail(x, "domain %" PRIu32 " does not exist", x->domid);
		return -ENOENT;
	}
	if (!info.hvm || !info.hap) {
		xen_fail(x,
			 "domain %" PRIu32 " is %s: only PVH / HVM domains with hardware "
			 "paging can log dirty pages (no shadow paging in this Xen)",
			 x->domid, info.hvm ? "HVM without HAP" : "PV");
		return -EOPNOTSUPP;
	}
	if (info.dying || info.shutdown) {
		xen_fail(x, "domain %" PRIu32 " is shutting down", x->domid);
		return -ESRCH;
	}
	if (info.max_vcpu_id + 1 != x->cfg.nr_vcpus) {
		xen_fail(x, "domain %" PRIu32 " has %u vCPUs, the VM is configured with %u",
			 x->domid, info.max_vcpu_id + 1, x->cfg.nr_vcpus);
		return -HR_ESHAPE;
	}
	/* libxl's maxmem is the target plus a little slack (LIBXL_MAXMEM_CONSTANT) */
	uint64_t want_kb = x->cfg.mem_bytes >> 10;
	if (info.max_memkb < want_kb || info.max_memkb > want_kb + 4096) {
		xen_fail(x,
			 "domain %" PRIu32 " may have %lu KiB, the VM is configured with %" PRIu64
			 " KiB",
			 x->domid, info.max_memkb, want_kb);
		return -HR_ESHAPE;
	}
	x->running = !info.paused;
	return 0;
}

static int xen_open(struct hr_vm **vm_r, const struct hr_vm_config *cfg)
{
	struct xen_vm *x;
	int rc;

	*vm_r = NULL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	*vm_r = (struct hr_vm *)x;
	x->cfg = *cfg;
	snprintf(x->name, sizeof(x->name), "%s", cfg->name ? cfg->name : "?");
	x->cfg.name = x->name;
	x->cfg.cmdline = x->cfg.options = x->cfg.attach = NULL;
	x->con_local_port = -1;
	pthread_mutex_init(&x->con_lock, NULL);
	x->chans[0] = (struct hr_chan_desc){.name = "console", .kind = HR_CHAN_CONSOLE};

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > HR_MAX_VCPUS || !cfg->mem_bytes ||
	    cfg->mem_bytes % (1u << 20)) {
		xen_fail(x, "shape %u vCPUs / %" PRIu64 " bytes: want 1..%u vCPUs, whole MiB",
			 cfg->nr_vcpus, cfg->mem_bytes, HR_MAX_VCPUS);
		return -EINVAL;
	}
	if ((rc = parse_options(x, cfg->options)) < 0)
		return rc;
	if (cfg->nr_disks) {
		xen_fail(x, "disks are not supported by the Xen backend (no HR_BF_DISKS)");
		return -EOPNOTSUPP;
	}
	x->logger = (xentoollog_logger *)xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
	x->xch = xc_interface_open(x->logger, NULL, 0);
	x->fmem = xenforeignmemory_open(x->logger, 0);
	if (!x->logger || !x->xch || !x->fmem) {
		xen_fail(x, "cannot open the Xen control interfaces (dom0 with privcmd?)");
		return -ENODEV;
	}
	if ((rc = xen_libxl_open(x)) < 0 || (rc = xen_suspend_open(x)) < 0)
		return rc;
	if (cfg->attach) {
		if ((rc = xen_lookup_domain(x, cfg->attach)) < 0 || (rc = check_domain(x)) < 0)
			return rc;
		/* the core expects a stopped vm until resume */
		if (x->running && xc_domain_pause(x->xch, x->domid) < 0) {
			rc = -errno;
			xen_fail(x, "pause of domain %" PRIu32 ": %s", x->domid, strerror(-rc));
			return rc;
		}
		x->running = 0;
	} else {
		const char *kernel = cfg->kernel_path ? cfg->kernel_path : x->kernel;
		if (!kernel[0]) {
			struct utsname u;
			snprintf(x->kernel, sizeof(x->kernel), "%s", HR_XEN_SHELL);
			if (access(x->kernel, R_OK)) /* not installed: run from the build tree */
				snprintf(x->kernel, sizeof(x->kernel), "%s", HR_XEN_SHELL_BUILD);
			if (access(x->kernel, R_OK) && !uname(&u))
				snprintf(x->kernel, sizeof(x->kernel), "/boot/vmlinuz-%s",
					 u.release);
			if (access(x->kernel, R_OK)) {
				xen_fail(x,
					 "a replica needs a PVH image for libxl to build the "
					 "empty domain with: options kernel=/ABS/PATH (default "
					 "%s, else the dom0 kernel %s: neither readable)",
					 HR_XEN_SHELL, x->kernel);
				return -EINVAL;
			}
		}
		x->is_replica = !cfg->kernel_path;
		if ((rc = xen_replica_build(x, kernel, cfg)) < 0)
			return rc;
	}
	x->cfg.kernel_path = x->cfg.initrd_path = NULL;
	if ((rc = xen_layout_probe(x)) < 0)
		return rc;
	if (x->is_replica && (rc = xen_replica_map(x)) < 0)
		return rc;
	if (x->console_ring && (rc = xen_console_open(x)) < 0)
		return rc;
	log_info(x->name, "xen: %s domain %" PRIu32 ": %u vCPUs, %" PRIu64 " MiB, %u regions",
		 cfg->attach	 ? "attached to"
		 : x->is_replica ? "built the replica"
				 : "built",
		 x->domid, cfg->nr_vcpus, cfg->mem_bytes >> 20, x->nr_regions);
	return 0;
}

static void xen_close(struct hr_vm *vm)
{
	struct xen_vm *x = to_xen(vm);

	if (!x)
		return;
	xen_replica_rename_stop(x);
	xen_console_stop(x);
	xen_console_close(x);
	if (x->tracking)
		xen_dirty_stop(vm);
	xen_mem_fini(x);
	/* a domain this vm built dies with it, as a KVM guest dies with its
	 * VMM; an attached one is left as it is (paused if we paused it: it
	 * may no longer be the primary) */
	if (x->have_domid && x->built)
		xen_replica_destroy(x);
	else if (x->have_domid && !x->running) {
		xen_checkpoint_settle(x);
		log_warnx(x->name, "xen: domain %" PRIu32 " left paused", x->domid);
	}
	xen_suspend_close(x);
	xen_libxl_close(x);
	if (x->fmem)
		xenforeignmemory_close(x->fmem);
	if (x->xch)
		xc_interface_close(x->xch);
	if (x->logger)
		xtl_logger_destroy(x->logger);
	pthread_mutex_destroy(&x->con_lock);
	free(x);
}

static int xen_pause(struct hr_vm *vm)
{
	struct xen_vm *x = to_xen(vm);
	int rc;

	if (!x->running)
		return 0;
	if ((rc = xen_checkpoint_stop(x)) < 0)
		return rc;
	x->running = 0;
	xen_console_drain(x);
	return 0;
}

static int xen_resume(struct hr_vm *vm)
{
	struct xen_vm *x = to_xen(vm);
	int rc;

	if (x->running)
		return 0;
	if (x->is_replica && !x->promoted &&
	    ((rc = xen_replica_prepare(x)) < 0 || (rc = xen_replica_promote(x)) < 0))
		return rc;
	if (x->console_ring && !x->con_started && (rc = xen_console_start(x)) < 0)
		return rc;
	if ((rc = xen_checkpoint_go(x)) < 0)
		return rc;
	x->running = 1;
	return 0;
}

static int xen_mem_layout(struct hr_vm *vm, const struct hr_mem_region **regions_r, unsigned *nr_r)
{
	*regions_r = to_xen(vm)->regions;
	*nr_r = to_xen(vm)->nr_regions;
	return 0;
}

static int xen_channels(struct hr_vm *vm, const struct hr_chan_desc **chans_r, unsigned *nr_r)
{
	*chans_r = to_xen(vm)->chans;
	*nr_r = 1;
	return 0;
}

static const char *xen_last_error(struct hr_vm *vm)
{
	return to_xen(vm)->last_error;
}

static const char *xen_host_unavailable(void)
{
	if (access("/dev/xen/privcmd", R_OK | W_OK) && access("/proc/xen/privcmd", R_OK | W_OK))
		return "this host is not a Xen dom0 (no /dev/xen/privcmd): the xen backend "
		       "runs in dom0 of a Xen host";
	return NULL;
}

const struct hr_backend_ops hr_xen_ops = {
    .name = "xen",
    .features = HR_BF_MAP_BATCH | HR_BF_ATTACH,
    .open = xen_open,
    .close = xen_close,
    .pause = xen_pause,
    .resume = xen_resume,
    .mem_layout = xen_mem_layout,
    .dirty_start = xen_dirty_start,
    .dirty_stop = xen_dirty_stop,
    .dirty_fetch = xen_dirty_fetch,
    .map_pages = xen_map_pages,
    .unmap_pages = xen_unmap_pages,
    .channels = xen_channels,
    .save_state = xen_save_state,
    .load_state = xen_load_state,
    .last_error = xen_last_error,
    .host_unavailable = xen_host_unavailable,
};
