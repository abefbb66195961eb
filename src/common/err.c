#include <string.h>

#include "err.h"

static const char *const hr_err_text[] = {
    [HR_EBADSTATE - HR_EBASE] = "state blob of another version or VM shape",
    [HR_EBADSNAP - HR_EBASE] = "snapshot file is corrupt or truncated",
    [HR_EVERSION - HR_EBASE] = "unsupported format version",
    [HR_EGUEST - HR_EBASE] = "guest image cannot be loaded",
    [HR_EBACKEND - HR_EBASE] = "backend not built into this binary",
    [HR_EPROTO - HR_EBASE] = "malformed stream frame",
    [HR_ECHECKSUM - HR_EBASE] = "checksum mismatch",
    [HR_ESHAPE - HR_EBASE] = "VM shape does not match",
    [HR_EPROMOTED - HR_EBASE] = "the backup has taken over this VM",
    [HR_ESTALE - HR_EBASE] = "stale copy: the witness no longer names this host the backup",
    [HR_EAUTH - HR_EBASE] = "peer is not authenticated",
    [HR_ETLS - HR_EBASE] = "TLS handshake or configuration failed",
    [HR_EMIGRATED - HR_EBASE] = "the VM was migrated and runs on the destination",
    [HR_ENODROP - HR_EBASE] = "the backup did not confirm that it dropped its copy (it may "
			      "promote itself); nothing was migrated",
    [HR_EHELD - HR_EBASE] = "the VM's output is held: its lost backup may run it behind a torn "
			    "link; migrate it once it is protected again",
    [HR_EPEERGONE - HR_EBASE] = "the cluster confirmed that the silent backup's copy is gone "
				"(its instance stopped or its node fenced)",
    [HR_ECPU - HR_EBASE] = "this host's CPU lacks features of the guest's CPU",
};

const char *hr_strerror(int rc)
{
	if (rc < 0)
		rc = -rc;
	if (rc == 0)
		return "success";
	if (rc >= HR_EBASE && rc < HR_ELAST)
		return hr_err_text[rc - HR_EBASE] ? hr_err_text[rc - HR_EBASE]
						  : "unknown hareplicate error";
	return strerror(rc);
}
