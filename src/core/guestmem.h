/*
 * guestmem.h - access to guest pages whatever the backend's mapping model:
 * a permanent host mapping per region (KVM, mem) or pages mapped in
 * batches on demand (HR_BF_MAP_BATCH: Xen's foreign mappings).  Callers map
 * at most HR_MAP_BATCH_PAGES pages, use them, then unmap.
 */
#ifndef HR_CORE_GUESTMEM_H
#define HR_CORE_GUESTMEM_H

#include <stdint.h>

#include "backends/backend.h"

struct hr_guestmem {
	const struct hr_backend_ops *ops;
	struct hr_vm *vm;
	const struct hr_mem_region *regions;
	unsigned nr_regions;
	uint64_t nr_gfns;
	int batched; /* regions have no hva: map_pages / unmap_pages */
	void *cookie;
};

/* From the backend's layout.  0, -errno, or -ENOTSUP (no hva and no map_pages). */
int hr_guestmem_init(struct hr_guestmem *gm, const struct hr_backend_ops *ops, struct hr_vm *vm);

/* ptrs_r[i] for gfns[i] (NULL: not RAM).  nr <= HR_MAP_BATCH_PAGES.  0 or -errno. */
int hr_guestmem_map(struct hr_guestmem *gm, const uint64_t *gfns, unsigned nr, int writable,
		    uint8_t **ptrs_r);
void hr_guestmem_unmap(struct hr_guestmem *gm);

#endif
