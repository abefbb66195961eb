/* err.h - project error codes.  Functions return 0, -errno, or -HR_E*. */
#ifndef HR_ERR_H
#define HR_ERR_H

enum {
	HR_EBASE = 1000,
	HR_EBADSTATE = 1000, /* state blob of another version or shape */
	HR_EBADSNAP = 1001,  /* snapshot file corrupt or truncated */
	HR_EVERSION = 1002,  /* unsupported format / protocol version */
	HR_EGUEST = 1003,    /* guest image not loadable */
	HR_EBACKEND = 1004,  /* backend not built into this binary */
	HR_EPROTO = 1005,    /* malformed stream frame */
	HR_ECHECKSUM = 1006, /* checksum mismatch */
	HR_ESHAPE = 1007,    /* peer / file VM shape does not match */
	HR_EPROMOTED = 1008, /* the backup has taken over this VM */
	HR_ESTALE = 1009,    /* this copy is stale: the witness names no backup here */
	HR_EAUTH = 1010,     /* peer refused: not authenticated (TLS) */
	HR_ETLS = 1011,	     /* TLS handshake or configuration failed */
	HR_EMIGRATED = 1012, /* the VM was migrated: it runs on the destination now */
	HR_ENODROP = 1013,   /* the backup did not confirm that it dropped its copy */
	HR_EHELD = 1014,     /* output held: a lost backup may run the VM (no migration) */
	HR_EPEERGONE = 1015, /* the cluster confirmed that the silent backup's copy is gone */
	HR_ECPU = 1016,	     /* this host's CPU lacks features of the guest's CPU */
	HR_ELAST
};

/* Text for 0, -errno or -HR_E* (any sign accepted). */
const char *hr_strerror(int rc);

#endif
