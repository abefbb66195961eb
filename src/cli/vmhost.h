/*
 * vmhost.h - run one VM in the foreground of this process: console on
 * stdout, stdin to the guest, snapshots on signals.  Shared by `run` and
 * `restore`.
 */
#ifndef HR_VMHOST_H
#define HR_VMHOST_H

#include "backends/backend.h"

struct hr_vmhost_opts {
	const char *snapshot_path; /* SIGUSR1: snapshot and go on; SIGUSR2: snapshot and exit */
	double timeout_s;	   /* 0 = none; else stop after this long (exit status 124) */
};

/* Open a VM from cfg (kernel) or, with restore_path, from a snapshot file.
 * Returns the process exit status. */
int hr_vmhost_main(struct hr_vm_config *cfg, const char *restore_path,
		   const struct hr_vmhost_opts *opts);

#endif
