/*
 * replica.c - the domain life cycle through libxenlight: find a domain by
 * id or name, build a PVH domain (the primary from its kernel, or the
 * replica: the same shape, left paused, its memory and state overwritten by
 * epochs), destroy it, and name the replica after the VM when it takes
 * over.
 *
 * libxl leaves a domain it built paused (xl unpauses it afterwards); the
 * store and console event channels it allocates are the domain's first two
 * ports, so a replica built the same way as its primary has them at the
 * same numbers, and its HVM params point at the same special pages.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxl.h>
#include <libxl_utils.h>
#include <xenstore.h>

#include "backends/xen/xen-internal.h"
#include "common/log.h"

/*
 * libxl's create waits (10 s, then fails) until the console daemon has
 * written the domain's console/tty node.  This backend is the console
 * reader of the domains it drives and no xenconsoled serves them, so while
 * libxl builds one, a thread answers for the console: it writes
 * console/tty = /dev/null (there is no pty: the console goes to the
 * "console" channel) once libxl has created the node empty.
 */
struct tty_answer {
	const char *name;
	volatile int stop;
	pthread_t thread;
};

static void answer_domain(struct xs_handle *xs, const char *domid, const char *name)
{
	char path[96];
	unsigned len;

	snprintf(path, sizeof(path), "/local/domain/%s/name", domid);
	char *n = xs_read(xs, XBT_NULL, path, &len);
	int ours = n && !strcmp(n, name);
	free(n);
	if (!ours)
		return;
	snprintf(path, sizeof(path), "/local/domain/%s/console/tty", domid);
	char *tty = xs_read(xs, XBT_NULL, path, &len);
	if (tty && !tty[0])
		xs_write(xs, XBT_NULL, path, "/dev/null", 9);
	free(tty);
}

static void *tty_answer_main(void *arg)
{
	struct tty_answer *t = arg;
	struct xs_handle *xs = xs_open(0);

	while (xs && !__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		unsigned n = 0;
		char **doms = xs_directory(xs, XBT_NULL, "/local/domain", &n);
		for (unsigned i = 0; doms && i < n; i++)
			if (strcmp(doms[i], "0"))
				answer_domain(xs, doms[i], t->name);
		free(doms);
		usleep(50000);
	}
	if (xs)
		xs_close(xs);
	return NULL;
}

static libxl_ctx *ctx_of(struct xen_vm *x)
{
	return (libxl_ctx *)x->ctx;
}

int xen_libxl_open(struct xen_vm *x)
{
	libxl_ctx *ctx = NULL;

	if (libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, x->logger) || !ctx) {
		xen_fail(x, "libxl_ctx_alloc failed (xenstored running?)");
		return -ENODEV;
	}
	x->ctx = (struct libxl__ctx *)ctx;
	return 0;
}

void xen_libxl_close(struct xen_vm *x)
{
	if (x->ctx)
		libxl_ctx_free(ctx_of(x));
	x->ctx = NULL;
}

int xen_lookup_domain(struct xen_vm *x, const char *spec)
{
	char *end;
	unsigned long id = strtoul(spec, &end, 10);
	uint32_t domid;

	if (*spec && !*end) {
		if (id == 0 || id >= DOMID_FIRST_RESERVED) {
			xen_fail(x, "attach=%s: not a guest domain id", spec);
			return -EINVAL;
		}
		domid = (uint32_t)id;
	} else if (libxl_name_to_domid(ctx_of(x), spec, &domid)) {
		xen_fail(x, "attach=%s: no domain of that name", spec);
		return -ENOENT;
	}
	x->domid = domid;
	x->have_domid = 1;
	return 0;
}

int xen_replica_build(struct xen_vm *x, const char *kernel, const struct hr_vm_config *cfg)
{
	libxl_domain_config dc;
	libxl_ctx *ctx = ctx_of(x);
	uint32_t domid = (uint32_t)INVALID_DOMID;
	const char *name = x->is_replica ? x->replica_name : x->name;
	int rc = 0;
	uint32_t other;

	/* a second copy on this host (a migration's target beside the backup):
	 * VM-replica-2, -3, ... rather than a name libxl refuses */
	if (x->is_replica && !libxl_name_to_domid(ctx, name, &other)) {
		size_t len = strlen(x->replica_name);
		for (unsigned n = 2; n < 100 && !libxl_name_to_domid(ctx, x->replica_name, &other);
		     n++)
			snprintf(x->replica_name + len, sizeof(x->replica_name) - len, "-%u", n);
		log_info(x->name, "xen: a domain named %.*s exists: the replica is %s", (int)len,
			 x->replica_name, x->replica_name);
	}

	libxl_domain_config_init(&dc);
	dc.c_info.type = LIBXL_DOMAIN_TYPE_PVH;
	dc.c_info.name = strdup(name);
	libxl_domain_build_info_init_type(&dc.b_info, LIBXL_DOMAIN_TYPE_PVH);
	dc.b_info.max_vcpus = (int)cfg->nr_vcpus;
	if (libxl_cpu_bitmap_alloc(ctx, &dc.b_info.avail_vcpus, (int)cfg->nr_vcpus)) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < cfg->nr_vcpus; i++)
		libxl_bitmap_set(&dc.b_info.avail_vcpus, (int)i);
	dc.b_info.max_memkb = dc.b_info.target_memkb = cfg->mem_bytes >> 10;
	/* the TSC as the host's: a replica on another host continues it */
	dc.b_info.tsc_mode = LIBXL_TSC_MODE_NATIVE;
	dc.b_info.kernel = strdup(kernel);
	if (!x->is_replica) {
		if (cfg->initrd_path)
			dc.b_info.ramdisk = strdup(cfg->initrd_path);
		if (cfg->cmdline)
			dc.b_info.cmdline = strdup(cfg->cmdline);
	}
	dc.on_poweroff = dc.on_reboot = LIBXL_ACTION_ON_SHUTDOWN_DESTROY;
	dc.on_crash = LIBXL_ACTION_ON_SHUTDOWN_PRESERVE;
	if (!dc.c_info.name || !dc.b_info.kernel) {
		rc = -ENOMEM;
		goto out;
	}
	struct tty_answer ta = {.name = name};
	int started = !pthread_create(&ta.thread, NULL, tty_answer_main, &ta);
	int r = libxl_domain_create_new(ctx, &dc, &domid, NULL, NULL);
	if (started) {
		__atomic_store_n(&ta.stop, 1, __ATOMIC_RELEASE);
		pthread_join(ta.thread, NULL);
	}
	if (domid != (uint32_t)INVALID_DOMID) {
		x->domid = domid;
		x->have_domid = 1;
		x->built = 1;
	}
	if (r) {
		xen_fail(x, "libxl could not build domain %s from %s (libxl error %d)", name,
			 kernel, r);
		rc = -EIO;
		goto out;
	}
	log_info(x->name, "xen: built domain %" PRIu32 " (%s), paused", domid, name);
out:
	libxl_domain_config_dispose(&dc);
	return rc;
}

void xen_replica_destroy(struct xen_vm *x)
{
	if (libxl_domain_destroy(ctx_of(x), x->domid, NULL))
		log_warnx(x->name, "xen: destroying domain %" PRIu32 " failed", x->domid);
	else
		log_info(x->name, "xen: destroyed domain %" PRIu32, x->domid);
	x->have_domid = 0;
}

/*
 * The replica becomes the VM: it takes the VM's name once no domain holds
 * it any more.  The old primary's domain may still hold it for a while
 * (killed mid-epoch it is paused or suspended, and being destroyed), so
 * the rename waits for it on a thread of its own, up to 30 s, after the
 * replica runs: the guest does not wait for its name.  A name still held
 * then stays with its holder (the replica keeps its own name).
 */
static void *rename_main(void *arg)
{
	struct xen_vm *x = arg;
	uint32_t other;

	for (int i = 0; i < 600 && !__atomic_load_n(&x->rename_stop, __ATOMIC_ACQUIRE); i++) {
		if (libxl_name_to_domid(ctx_of(x), x->name, &other)) {
			if (libxl_domain_rename(ctx_of(x), x->domid, x->replica_name, x->name))
				log_warnx(x->name, "xen: could not rename domain %" PRIu32 " to %s",
					  x->domid, x->name);
			else
				log_info(x->name, "xen: domain %" PRIu32 " is %s now", x->domid,
					 x->name);
			return NULL;
		}
		usleep(50000);
	}
	if (!__atomic_load_n(&x->rename_stop, __ATOMIC_ACQUIRE))
		log_warnx(x->name,
			  "xen: a domain still holds the name %s: the promoted replica keeps the "
			  "name %s",
			  x->name, x->replica_name);
	return NULL;
}

int xen_replica_promote(struct xen_vm *x)
{
	x->promoted = 1;
	if (!pthread_create(&x->rename_thread, NULL, rename_main, x))
		x->rename_started = 1;
	return 0;
}

void xen_replica_rename_stop(struct xen_vm *x)
{
	if (!x->rename_started)
		return;
	__atomic_store_n(&x->rename_stop, 1, __ATOMIC_RELEASE);
	pthread_join(x->rename_thread, NULL);
	x->rename_started = 0;
}
