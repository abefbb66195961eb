/* registry.c - the one list of backends; the only #ifdef HAVE_XEN in the tree. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "backends/backend.h"

extern const struct hr_backend_ops hr_kvm_ops;
extern const struct hr_backend_ops hr_mem_ops;
#ifdef HAVE_XEN
extern const struct hr_backend_ops hr_xen_ops;
#endif

const struct hr_backend_ops *const hr_backends[] = {
    &hr_kvm_ops,
#ifdef HAVE_XEN
    &hr_xen_ops,
#endif
    &hr_mem_ops,
    NULL,
};

const struct hr_backend_ops *hr_backend_find(const char *name)
{
	for (unsigned i = 0; hr_backends[i]; i++)
		if (!strcmp(hr_backends[i]->name, name))
			return hr_backends[i];
	return NULL;
}

const char *hr_backend_why_missing(const char *name)
{
	const struct hr_backend_ops *ops = hr_backend_find(name);

	if (!strcmp(name, "xen") && !ops)
		return "this build has no Xen backend: configure --with-xen (needs libxen-dev)";
	if (ops && ops->host_unavailable)
		return ops->host_unavailable();
	return NULL;
}

uint64_t hr_layout_nr_gfns(const struct hr_mem_region *regions, unsigned nr)
{
	uint64_t top = 0;
	for (unsigned i = 0; i < nr; i++) {
		uint64_t end = (regions[i].gpa + regions[i].bytes) >> HR_PAGE_SHIFT;
		if (end > top)
			top = end;
	}
	return top;
}

uint8_t *hr_layout_gfn_hva(const struct hr_mem_region *regions, unsigned nr, uint64_t gfn)
{
	if (gfn >> (64 - HR_PAGE_SHIFT))
		return NULL; /* gfn << 12 would wrap to a low address */
	uint64_t gpa = gfn << HR_PAGE_SHIFT;
	for (unsigned i = 0; i < nr; i++)
		if (gpa >= regions[i].gpa && gpa - regions[i].gpa < regions[i].bytes)
			return regions[i].hva + (gpa - regions[i].gpa);
	return NULL;
}

int hr_options_next(const char **pos, char *key, size_t key_size, char *val, size_t val_size)
{
	const char *p = *pos;

	while (p && *p == ',')
		p++;
	if (!p || !*p)
		return 0;
	size_t n = strcspn(p, ",");
	const char *eq = memchr(p, '=', n);
	if (!eq || eq == p)
		return -EINVAL;
	snprintf(key, key_size, "%.*s", (int)(eq - p), p);
	snprintf(val, val_size, "%.*s", (int)(n - (size_t)(eq - p) - 1), eq + 1);
	*pos = p + n;
	return 1;
}
