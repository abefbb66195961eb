/*
 * mem.c - guest memory of a Xen domain seen from dom0: the layout (the
 * populated gfns, probed once), batched foreign mappings (the primary's page
 * access), one permanent mapping per region (the replica, written by the
 * core's staging), and log-dirty through the domain's HAP p2m.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backends/xen/xen-internal.h"
#include "common/log.h"

#define PROBE_BATCH 1024u

/* What map_pages hands out. */
struct xen_map {
	void *addr;
	unsigned nr_pages;
};

static int add_run(struct xen_vm *x, uint64_t first, uint64_t end)
{
	if (x->nr_regions == XEN_MAX_REGIONS) {
		xen_fail(x, "domain %" PRIu32 " has more than %u RAM ranges", x->domid,
			 XEN_MAX_REGIONS);
		return -E2BIG;
	}
	x->regions[x->nr_regions++] = (struct hr_mem_region){
	    .gpa = first << HR_PAGE_SHIFT, .bytes = (end - first) << HR_PAGE_SHIFT, .hva = NULL};
	return 0;
}

/*
 * Which gfns of [g, g + n) are populated (1) or not (0): one
 * XEN_DOMCTL_getpageframeinfo3 per batch (what xg_sr's save side asks),
 * which is not in libxenctrl's public header but is exported by it.
 */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

static int probe_batch(struct xen_vm *x, uint64_t g, unsigned n, uint8_t *ram)
{
	xen_pfn_t arr[PROBE_BATCH];
	int err[PROBE_BATCH];

	for (unsigned i = 0; i < n; i++)
		arr[i] = g + i;
	if (!xc_get_pfn_type_batch(x->xch, x->domid, n, arr)) {
		for (unsigned i = 0; i < n; i++) {
			uint32_t t = (uint32_t)arr[i] & XEN_DOMCTL_PFINFO_LTAB_MASK;
			ram[i] = t != XEN_DOMCTL_PFINFO_XTAB && t != XEN_DOMCTL_PFINFO_BROKEN;
		}
		return 0;
	}
	/* the slow way: a foreign mapping of each page */
	for (unsigned i = 0; i < n; i++)
		arr[i] = g + i;
	void *a = xenforeignmemory_map(x->fmem, x->domid, PROT_READ, n, arr, err);
	if (!a) {
		int rc = -errno;
		xen_fail(x, "probing gfns %#" PRIx64 "+%u of domain %" PRIu32 ": %s", g, n,
			 x->domid, strerror(errno));
		return rc;
	}
	xenforeignmemory_unmap(x->fmem, a, n);
	for (unsigned i = 0; i < n; i++)
		ram[i] = !err[i];
	return 0;
}

/*
 * The layout: the runs of populated gfns (RAM and the special pages:
 * console and store rings, ACPI tables), with holes of less than
 * BRIDGE_PAGES bridged.  A booted guest has such small holes where it
 * placed Xen's own frames over RAM (shared_info, grant table frames); a
 * replica of the same shape, built but never run, has RAM there.  Bridged
 * gfns that are not RAM map to NULL; the big holes (MMIO) stay out.
 */
#define BRIDGE_PAGES 1024u

int xen_layout_probe(struct xen_vm *x)
{
	uint8_t ram[PROBE_BATCH];
	uint64_t run = UINT64_MAX, last_ram = 0;
	xen_pfn_t max_gpfn;
	int rc;

	if (xc_domain_maximum_gpfn(x->xch, x->domid, &max_gpfn) < 0) {
		rc = -errno;
		xen_fail(x, "maximum gpfn of domain %" PRIu32 ": %s", x->domid, strerror(errno));
		return rc;
	}
	x->p2m_pages = (uint64_t)max_gpfn + 1;
	x->nr_regions = 0;
	for (uint64_t g = 0; g < x->p2m_pages; g += PROBE_BATCH) {
		unsigned n =
		    x->p2m_pages - g < PROBE_BATCH ? (unsigned)(x->p2m_pages - g) : PROBE_BATCH;
		if ((rc = probe_batch(x, g, n, ram)) < 0)
			return rc;
		for (unsigned i = 0; i < n; i++) {
			if (!ram[i])
				continue;
			if (run != UINT64_MAX && g + i - last_ram > BRIDGE_PAGES) {
				if ((rc = add_run(x, run, last_ram + 1)) < 0)
					return rc;
				run = UINT64_MAX;
			}
			if (run == UINT64_MAX)
				run = g + i;
			last_ram = g + i;
		}
	}
	if (run != UINT64_MAX && (rc = add_run(x, run, last_ram + 1)) < 0)
		return rc;
	if (!x->nr_regions) {
		xen_fail(x, "domain %" PRIu32 " has no populated memory", x->domid);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < x->nr_regions; i++)
		log_debug(x->name, "xen: region %u: gpa %#" PRIx64 " + %" PRIu64 " KiB", i,
			  x->regions[i].gpa, x->regions[i].bytes >> 10);
	return 0;
}

/* The replica: each region mapped once, writable, for the core's staging. */
int xen_replica_map(struct xen_vm *x)
{
	for (unsigned r = 0; r < x->nr_regions; r++) {
		uint64_t n = x->regions[r].bytes >> HR_PAGE_SHIFT;
		xen_pfn_t *arr = malloc(n * sizeof(*arr));
		int *err = malloc(n * sizeof(*err));
		int rc = 0;

		if (!arr || !err) {
			free(arr);
			free(err);
			return -ENOMEM;
		}
		for (uint64_t i = 0; i < n; i++)
			arr[i] = (x->regions[r].gpa >> HR_PAGE_SHIFT) + i;
		void *a =
		    xenforeignmemory_map(x->fmem, x->domid, PROT_READ | PROT_WRITE, n, arr, err);
		if (!a)
			rc = -errno;
		/* bridged holes get RAM: staging may write any page the primary sent */
		uint64_t holes = 0;
		for (uint64_t i = 0; a && i < n; i++)
			if (err[i])
				arr[holes++] = (x->regions[r].gpa >> HR_PAGE_SHIFT) + i;
		if (holes) {
			xenforeignmemory_unmap(x->fmem, a, n);
			a = NULL;
			if (xc_domain_populate_physmap_exact(x->xch, x->domid, holes, 0, 0, arr) <
			    0) {
				rc = -errno;
			} else {
				for (uint64_t i = 0; i < n; i++)
					arr[i] = (x->regions[r].gpa >> HR_PAGE_SHIFT) + i;
				a = xenforeignmemory_map(x->fmem, x->domid, PROT_READ | PROT_WRITE,
							 n, arr, err);
				if (!a)
					rc = -errno;
				for (uint64_t i = 0; a && i < n && !rc; i++)
					if (err[i])
						rc = err[i] < 0 ? err[i] : -EIO;
			}
			log_info(x->name, "xen: replica region %u: %" PRIu64 " holes populated", r,
				 holes);
		}
		free(arr);
		free(err);
		if (a)
			x->replica_map[r] = a;
		if (rc) {
			xen_fail(x, "mapping region %u of replica domain %" PRIu32 ": %s", r,
				 x->domid, strerror(-rc));
			return rc;
		}
		x->regions[r].hva = a;
		/* The core sends no zero page (planner.c) and so relies on a
		 * replica whose RAM reads zero; libxl left the replica shell,
		 * its start info and ACPI tables in this one. */
		uint64_t cleared = 0;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t *w = (uint64_t *)((uint8_t *)a + (i << HR_PAGE_SHIFT));
			unsigned k = 0;
			while (k < HR_PAGE_SIZE / 8 && !w[k])
				k++;
			if (k < HR_PAGE_SIZE / 8) {
				memset(w, 0, HR_PAGE_SIZE);
				cleared++;
			}
		}
		log_debug(x->name, "xen: replica region %u: %" PRIu64 " pages cleared", r, cleared);
	}
	return 0;
}

void xen_mem_fini(struct xen_vm *x)
{
	for (unsigned r = 0; r < x->nr_regions; r++) {
		if (x->replica_map[r])
			xenforeignmemory_unmap(x->fmem, x->replica_map[r],
					       x->regions[r].bytes >> HR_PAGE_SHIFT);
		x->replica_map[r] = NULL;
		x->regions[r].hva = NULL;
	}
	if (x->dirty_hbuf.hbuf)
		xc__hypercall_buffer_free_pages(x->xch, &x->dirty_hbuf, x->dirty_hbuf_pages);
	x->dirty_hbuf.hbuf = NULL;
}

int xen_map_pages(struct hr_vm *vm, const uint64_t *gfns, unsigned nr, int writable,
		  uint8_t **ptrs_r, void **cookie_r)
{
	struct xen_vm *x = to_xen(vm);
	xen_pfn_t arr[HR_MAP_BATCH_PAGES];
	int err[HR_MAP_BATCH_PAGES];
	struct xen_map *m;

	*cookie_r = NULL;
	if (nr > HR_MAP_BATCH_PAGES) {
		xen_fail(x, "map_pages of %u pages, at most %u at once", nr, HR_MAP_BATCH_PAGES);
		return -EINVAL;
	}
	if (!nr)
		return 0;
	m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (unsigned i = 0; i < nr; i++)
		arr[i] = gfns[i] < x->p2m_pages ? gfns[i] : 0;
	m->addr = xenforeignmemory_map(x->fmem, x->domid,
				       writable ? PROT_READ | PROT_WRITE : PROT_READ, nr, arr, err);
	if (!m->addr) {
		int r = -errno;
		xen_fail(x, "foreign mapping of %u pages of domain %" PRIu32 ": %s", nr, x->domid,
			 strerror(errno));
		free(m);
		return r;
	}
	m->nr_pages = nr;
	for (unsigned i = 0; i < nr; i++)
		ptrs_r[i] = !err[i] && gfns[i] < x->p2m_pages
				? (uint8_t *)m->addr + ((size_t)i << HR_PAGE_SHIFT)
				: NULL;
	*cookie_r = m;
	return 0;
}

void xen_unmap_pages(struct hr_vm *vm, void *cookie)
{
	struct xen_map *m = cookie;

	if (!m)
		return;
	xenforeignmemory_unmap(to_xen(vm)->fmem, m->addr, m->nr_pages);
	free(m);
}

int xen_dirty_start(struct hr_vm *vm)
{
	struct xen_vm *x = to_xen(vm);
	uint64_t bytes = (x->p2m_pages + 63) / 64 * 8;
	int pages = (int)((bytes + HR_PAGE_SIZE - 1) / HR_PAGE_SIZE);

	if (!x->dirty_hbuf.hbuf) {
		x->dirty_hbuf = (xc_hypercall_buffer_t){.ubuf = (void *)-1};
		if (!xc__hypercall_buffer_alloc_pages(x->xch, &x->dirty_hbuf, pages)) {
			xen_fail(x, "no hypercall buffer for a %d-page dirty bitmap", pages);
			return -ENOMEM;
		}
		x->dirty_hbuf_pages = pages;
	}
	/* a domain left in log-dirty mode (a killed worker) is switched off first */
	xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
	if (xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) <
	    0) {
		int r = -errno;
		xen_fail(x, "log-dirty on domain %" PRIu32 ": %s", x->domid, strerror(errno));
		return r;
	}
	/* pages written before start are not reported: clear what enable left */
	if (xc_logdirty_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_CLEAN, &x->dirty_hbuf,
				x->p2m_pages, 0, NULL) < 0) {
		int r = -errno;
		xen_fail(x, "log-dirty clean of domain %" PRIu32 ": %s", x->domid, strerror(errno));
		xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
		return r;
	}
	x->tracking = 1;
	return 0;
}

int xen_dirty_stop(struct hr_vm *vm)
{
	struct xen_vm *x = to_xen(vm);

	x->tracking = 0;
	/* with HAP, Xen switches log-dirty off and then answers EINVAL (no
	 * shadow op to do): xg_sr ignores the answer, an EINVAL is not a failure */
	if (xc_shadow_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0 &&
	    errno != EINVAL) {
		int r = -errno;
		xen_fail(x, "log-dirty off on domain %" PRIu32 ": %s", x->domid, strerror(errno));
		return r;
	}
	return 0;
}

/* Collect-and-clear (paused: Xen's CLEAN re-protects the pages it reports). */
int xen_dirty_fetch(struct hr_vm *vm, struct hr_dirty_bits *d)
{
	struct xen_vm *x = to_xen(vm);
	uint64_t top = hr_layout_nr_gfns(x->regions, x->nr_regions);

	if (!x->tracking) {
		xen_fail(x, "dirty_fetch without dirty_start");
		return -EINVAL;
	}
	if (xc_logdirty_control(x->xch, x->domid, XEN_DOMCTL_SHADOW_OP_CLEAN, &x->dirty_hbuf,
				x->p2m_pages, 0, NULL) < 0) {
		int r = -errno;
		xen_fail(x, "log-dirty clean of domain %" PRIu32 ": %s", x->domid, strerror(errno));
		return r;
	}
	const uint64_t *bm = x->dirty_hbuf.hbuf;
	uint64_t nr_words = (top + 63) / 64;
	for (uint64_t w = 0; w < nr_words && w * 64 < x->p2m_pages; w++) {
		uint64_t bits = bm[w];
		if (w == nr_words - 1 && top % 64)
			bits &= (1ull << (top % 64)) - 1;
		hr_dirty_mark_word(d, w, bits);
	}
	return 0;
}
