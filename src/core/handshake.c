/* handshake.c - HELLO / HELLO_ACK (handshake.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "core/handshake.h"

int hr_handshake_primary(struct hr_peer *p, const char *backend, const struct hr_vm_config *vc,
			 const struct hr_mem_region *regions, unsigned nr_regions,
			 uint64_t epoch_us, uint64_t min_epoch_us, uint64_t first_epoch,
			 const void *cpu_model, size_t cpu_model_bytes, int migration,
			 const uint64_t *disk_bytes, unsigned nr_disks, int *ctl_r, char *why,
			 size_t why_size)
{
	struct hr_frame f;
	int rc;

	*ctl_r = 0;
	rc = hr_stream_send_hello_disks(
	    p->fd, migration ? HR__ROLE__ROLE_MIGRATION_SOURCE : HR__ROLE__ROLE_PRIMARY, p->vm,
	    backend, vc->mem_bytes, vc->nr_vcpus, regions, nr_regions, epoch_us, min_epoch_us,
	    first_epoch, vc->options, cpu_model, cpu_model_bytes, disk_bytes, nr_disks);
	if (rc < 0)
		return rc;
	if ((rc = hr_peer_recv(p, &f, p->handshake_ms > 0 ? p->handshake_ms : HR_HANDSHAKE_MS,
			       ctl_r)) < 0)
		return rc;
	if (f.type != HR_FT_HELLO_ACK) {
		hr_frame_release(&f);
		return -HR_EPROTO;
	}
	Hr__HelloAck *a = (Hr__HelloAck *)f.msg;
	if (!a->accepted) {
		log_err(p->vm, "backup refused: %s", a->error_text ? a->error_text : "no reason");
		if (why)
			snprintf(why, why_size, "the backup refused: %s",
				 a->error_text ? a->error_text : "no reason");
		rc = a->has_error_code && a->error_code < 0 ? a->error_code : -EPERM;
	} else if (a->has_next_epoch && a->next_epoch != first_epoch) {
		log_err(p->vm, "backup expects epoch %llu first, not %llu",
			(unsigned long long)a->next_epoch, (unsigned long long)first_epoch);
		rc = -HR_EPROTO;
	}
	hr_frame_release(&f);
	return rc;
}

int hr_handshake_accept(struct hr_peer *p, struct hr_hello_info *h, int *ctl_r)
{
	struct hr_frame f;
	int rc;

	memset(h, 0, sizeof(*h));
	if ((rc = hr_peer_recv(p, &f, p->handshake_ms > 0 ? p->handshake_ms : HR_HANDSHAKE_MS,
			       ctl_r)) < 0)
		return rc;
	if (f.type != HR_FT_HELLO) {
		hr_frame_release(&f);
		log_err(NULL, "replication peer did not start with a hello");
		return -HR_EPROTO;
	}
	Hr__Hello *m = (Hr__Hello *)f.msg;
	snprintf(h->vm, sizeof(h->vm), "%s", m->vm_name);
	snprintf(h->backend, sizeof(h->backend), "%s", m->backend);
	h->mem_bytes = m->mem_bytes;
	h->nr_vcpus = m->nr_vcpus;
	h->epoch_us = m->has_epoch_us ? m->epoch_us : 0;
	h->min_epoch_us = m->has_min_epoch_us ? m->min_epoch_us : 0;
	h->first_epoch = m->has_first_epoch ? m->first_epoch : 0;
	snprintf(h->vm_options, sizeof(h->vm_options), "%s", m->vm_options ? m->vm_options : "");
	rc = hr_stream_check_hello(m, m->vm_name);
	h->protocol_version = m->protocol_version;
	h->nr_disks = rc ? 0 : (unsigned)m->n_disk_bytes;
	for (unsigned i = 0; i < h->nr_disks; i++)
		h->disk_bytes[i] = m->disk_bytes[i];
	if (!rc && m->has_cpu_model && m->cpu_model.len) {
		if ((h->cpu_model = malloc(m->cpu_model.len))) {
			memcpy(h->cpu_model, m->cpu_model.data, m->cpu_model.len);
			h->cpu_model_bytes = m->cpu_model.len;
		} else {
			rc = -ENOMEM;
		}
	}
	if (!rc && !hr_backend_find(m->backend)) {
		log_err(h->vm, "primary uses backend '%s', not built here", m->backend);
		rc = -HR_EBACKEND;
	}
	h->migration = m->role == HR__ROLE__ROLE_MIGRATION_SOURCE;
	if (!rc &&
	    ((m->role != HR__ROLE__ROLE_PRIMARY && !h->migration) ||
	     m->page_bytes != HR_PAGE_SIZE || m->n_regions > HR_HELLO_MAX_REGIONS || !m->n_regions))
		rc = -HR_ESHAPE;
	for (size_t i = 0; !rc && i < m->n_regions; i++) {
		uint64_t gpa = m->regions[i]->gpa, bytes = m->regions[i]->bytes;
		if ((gpa | bytes) % HR_PAGE_SIZE || gpa + bytes < gpa)
			rc = -HR_ESHAPE;
		h->regions[i] = (struct hr_mem_region){gpa, bytes, NULL};
	}
	h->nr_regions = rc ? 0 : (unsigned)m->n_regions;
	hr_frame_release(&f);
	return rc;
}

void hr_hello_info_fini(struct hr_hello_info *h)
{
	free(h->cpu_model);
	h->cpu_model = NULL;
	h->cpu_model_bytes = 0;
}

int hr_handshake_check_disks(const struct hr_hello_info *h, const uint64_t *sizes, unsigned nr,
			     char *why, size_t why_size)
{
	if (nr && h->protocol_version < HR_PROTO_VERSION) {
		snprintf(why, why_size,
			 "the primary speaks protocol %u, without disks; this backup has %u disk%s",
			 h->protocol_version, nr, nr > 1 ? "s" : "");
		return -HR_EVERSION;
	}
	if (h->nr_disks != nr) {
		snprintf(why, why_size, "the primary's VM has %u disk%s, this backup was given %u",
			 h->nr_disks, h->nr_disks == 1 ? "" : "s", nr);
		return -HR_ESHAPE;
	}
	for (unsigned i = 0; i < nr; i++)
		if (h->disk_bytes[i] != sizes[i]) {
			snprintf(
			    why, why_size, "disk %u is %llu bytes on the primary, %llu bytes here",
			    i, (unsigned long long)h->disk_bytes[i], (unsigned long long)sizes[i]);
			return -HR_ESHAPE;
		}
	return 0;
}

int hr_handshake_check_cpu(const struct hr_hello_info *h, const struct hr_backend_ops *ops,
			   struct hr_vm *vm, char *why, size_t why_size)
{
	if (!h->cpu_model_bytes || !ops->cpu_check)
		return 0;
	why[0] = '\0';
	int rc = ops->cpu_check(vm, h->cpu_model, h->cpu_model_bytes, why, why_size);
	if (rc < 0 && !why[0])
		snprintf(why, why_size, "the guest's CPU: %s", hr_strerror(rc));
	return rc;
}

int hr_handshake_check_layout(const struct hr_hello_info *h, const struct hr_mem_region *regions,
			      unsigned nr_regions)
{
	if (nr_regions != h->nr_regions)
		return -HR_ESHAPE;
	for (unsigned i = 0; i < nr_regions; i++)
		if (regions[i].gpa != h->regions[i].gpa || regions[i].bytes != h->regions[i].bytes)
			return -HR_ESHAPE;
	return 0;
}

int hr_handshake_check_limits(const struct hr_hello_info *h, const struct hr_handshake_limits *l,
			      char *why, size_t why_size)
{
	uint64_t max_mem = l && l->max_mem_bytes ? l->max_mem_bytes : HR_DEFAULT_MAX_MEM_BYTES;
	unsigned max_vcpus = l && l->max_vcpus ? l->max_vcpus : HR_MAX_VCPUS;

	if (max_vcpus > HR_MAX_VCPUS)
		max_vcpus = HR_MAX_VCPUS;
	if (h->nr_vcpus < 1 || h->nr_vcpus > max_vcpus) {
		snprintf(why, why_size, "%u vCPUs asked for, this backup takes 1..%u (--max-vcpus)",
			 h->nr_vcpus, max_vcpus);
		return -E2BIG;
	}
	if (h->mem_bytes > max_mem) {
		snprintf(why, why_size,
			 "%llu MiB of guest memory asked for, this backup takes at most %llu MiB "
			 "(--max-memory)",
			 (unsigned long long)(h->mem_bytes >> 20),
			 (unsigned long long)(max_mem >> 20));
		return -E2BIG;
	}
	/* the regions are what the replica maps: none may reach past the limit */
	for (unsigned i = 0; i < h->nr_regions; i++)
		if (h->regions[i].bytes > max_mem) {
			snprintf(why, why_size,
				 "a memory region of %llu MiB asked for, this backup takes at most "
				 "%llu MiB (--max-memory)",
				 (unsigned long long)(h->regions[i].bytes >> 20),
				 (unsigned long long)(max_mem >> 20));
			return -E2BIG;
		}
	return 0;
}

int hr_handshake_answer(struct hr_peer *p, int rc, const char *why, uint64_t next_epoch)
{
	Hr__HelloAck a = HR__HELLO_ACK__INIT;

	a.accepted = rc == 0;
	a.has_protocol_version = 1;
	a.protocol_version = HR_PROTO_VERSION;
	if (rc) {
		a.has_error_code = 1;
		a.error_code = rc;
		a.error_text = (char *)(why && *why ? why : hr_strerror(rc));
	}
	a.has_next_epoch = 1;
	a.next_epoch = next_epoch;
	return hr_stream_send(p->fd, HR_FT_HELLO_ACK, HR_FRAME_MANDATORY, &a.base, NULL, 0);
}
