/*
 * handshake.h - opening a replication session: the primary's HELLO (protocol
 * version, VM name, backend, shape, layout, epoch) and the backup's
 * HELLO_ACK, with every check on the way (docs/stream-format.md).
 */
#ifndef HR_CORE_HANDSHAKE_H
#define HR_CORE_HANDSHAKE_H

#include <stdint.h>

#include "backends/backend.h"
#include "core/peer.h"
#include "core/stream.h"

#define HR_HELLO_MAX_REGIONS 8
#define HR_HANDSHAKE_MS	     10000

/* Primary: send HELLO (the session's epochs start at first_epoch; its
 * epoch policy epoch_us / min_epoch_us, engine.h; the guest's CPU model
 * cpu_model (cpu_model_bytes, 0: none; backend.h); migration: the role
 * MIGRATION_SOURCE, whose session ends with a hand-off), wait
 * for HELLO_ACK.  0; -EINTR with *ctl_r (control
 * byte); -errno / -HR_E* (a refusal is logged with the backup's reason,
 * which is also copied to why, if not NULL). */
int hr_handshake_primary(struct hr_peer *p, const char *backend, const struct hr_vm_config *vc,
			 const struct hr_mem_region *regions, unsigned nr_regions,
			 uint64_t epoch_us, uint64_t min_epoch_us, uint64_t first_epoch,
			 const void *cpu_model, size_t cpu_model_bytes, int migration,
			 const uint64_t *disk_bytes, unsigned nr_disks, int *ctl_r, char *why,
			 size_t why_size);

/* What the backup learned from a HELLO. */
struct hr_hello_info {
	char vm[64];
	char backend[16];
	uint64_t mem_bytes;
	unsigned nr_vcpus;
	uint64_t epoch_us;     /* 0 = not given */
	uint64_t min_epoch_us; /* 0 = not given (off) */
	uint64_t first_epoch;  /* the session's first epoch (0 = not given) */
	int migration;	       /* the sender is a migration source (ends with a hand-off) */
	char vm_options[HR_HELLO_OPTIONS_MAX + 1]; /* the primary's devices ("": none) */
	uint8_t *cpu_model; /* the guest's CPU (backend.h; malloc'd, NULL: none) */
	size_t cpu_model_bytes;
	unsigned nr_regions;
	struct hr_mem_region regions[HR_HELLO_MAX_REGIONS]; /* gpa, bytes; hva NULL */
	unsigned protocol_version;
	unsigned nr_disks;		   /* the VM's disks (protocol 3) */
	uint64_t disk_bytes[HR_MAX_DISKS]; /* ... their sizes */
};

/* Backup: receive and check a HELLO (version, role, page size, backend
 * built here, layout sane).  0, -EINTR with *ctl_r, or -errno / -HR_E*;
 * on a refusal h->vm may still name the VM for the log.  Whatever it
 * returns, release h with hr_hello_info_fini. */
int hr_handshake_accept(struct hr_peer *p, struct hr_hello_info *h, int *ctl_r);
void hr_hello_info_fini(struct hr_hello_info *h);

/* Backup: can this host's replica vm give the guest the primary's CPU
 * (the HELLO's cpu_model, the backend's cpu_check)?  0 (also when either
 * side has no CPU model), or -HR_ECPU / -errno with the reason in why. */
int hr_handshake_check_cpu(const struct hr_hello_info *h, const struct hr_backend_ops *ops,
			   struct hr_vm *vm, char *why, size_t why_size);

/* The backup's images (sizes) must be the primary's disks: their number
 * (-HR_ESHAPE; a version-2 primary while this side has disks: -HR_EVERSION)
 * and sizes (-HR_ESHAPE), the reason in why. */
int hr_handshake_check_disks(const struct hr_hello_info *h, const uint64_t *sizes, unsigned nr,
			     char *why, size_t why_size);
/* The replica's layout must equal the primary's, region by region (-HR_ESHAPE). */
int hr_handshake_check_layout(const struct hr_hello_info *h, const struct hr_mem_region *regions,
			      unsigned nr_regions);

/* What a backup lets a primary ask for (checked before anything is
 * allocated for the replica); 0 in a field = the built-in maximum. */
struct hr_handshake_limits {
	uint64_t max_mem_bytes; /* 0 = HR_DEFAULT_MAX_MEM_BYTES */
	unsigned max_vcpus;	/* 0 = HR_MAX_VCPUS */
};
#define HR_DEFAULT_MAX_MEM_BYTES (64ull << 30)

/* Backup: is the HELLO within the limits?  0, or -E2BIG with the reason
 * in why (for the log and the refusal sent to the primary). */
int hr_handshake_check_limits(const struct hr_hello_info *h, const struct hr_handshake_limits *l,
			      char *why, size_t why_size);

/* Backup: answer the HELLO: accepted when rc == 0 (the first epoch
 * expected is next_epoch), else refused with rc and why (NULL: the text
 * of rc). */
int hr_handshake_answer(struct hr_peer *p, int rc, const char *why, uint64_t next_epoch);

#endif
