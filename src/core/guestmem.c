/* guestmem.c - guest page access through permanent or batched mappings. */
#include <errno.h>

#include "core/guestmem.h"

int hr_guestmem_init(struct hr_guestmem *gm, const struct hr_backend_ops *ops, struct hr_vm *vm)
{
	int rc;

	*gm = (struct hr_guestmem){.ops = ops, .vm = vm};
	if ((rc = ops->mem_layout(vm, &gm->regions, &gm->nr_regions)) < 0)
		return rc;
	gm->nr_gfns = hr_layout_nr_gfns(gm->regions, gm->nr_regions);
	gm->batched = gm->nr_regions && !gm->regions[0].hva;
	if (gm->batched && (!ops->map_pages || !ops->unmap_pages))
		return -ENOTSUP;
	return 0;
}

int hr_guestmem_map(struct hr_guestmem *gm, const uint64_t *gfns, unsigned nr, int writable,
		    uint8_t **ptrs_r)
{
	if (nr > HR_MAP_BATCH_PAGES)
		return -EINVAL;
	if (gm->batched)
		return gm->ops->map_pages(gm->vm, gfns, nr, writable, ptrs_r, &gm->cookie);
	for (unsigned i = 0; i < nr; i++)
		ptrs_r[i] = gfns[i] < gm->nr_gfns
				? hr_layout_gfn_hva(gm->regions, gm->nr_regions, gfns[i])
				: NULL;
	return 0;
}

void hr_guestmem_unmap(struct hr_guestmem *gm)
{
	if (gm->batched && gm->cookie)
		gm->ops->unmap_pages(gm->vm, gm->cookie);
	gm->cookie = NULL;
}
