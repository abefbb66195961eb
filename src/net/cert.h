/*
 * cert.h - making the files the TLS transport reads (`hareplicate cert`),
 * with the OpenSSL library: EC P-256 keys, X.509 certificates, SHA-256
 * fingerprints, pre-shared keys.
 *
 * Files are created, never overwritten (-EEXIST): keys and PSKs mode 0600,
 * certificates 0644.  On failure err says why.
 */
#ifndef HR_NET_CERT_H
#define HR_NET_CERT_H

#include <stddef.h>

/* DIR/ca.key + DIR/ca.crt: a CA valid 10 years, subject CN=name. */
int hr_cert_make_ca(const char *dir, const char *name, char *err, size_t errlen);

/*
 * DIR/host.key + DIR/host.crt, subject CN=node and subjectAltName DNS:node,
 * for TLS client and server use, valid 5 years.  Signed by the CA in ca_dir
 * (ca.key, ca.crt; ca.crt is copied to DIR/ca.crt) or, when ca_dir is NULL,
 * self-signed (for pinned-fingerprint mode).
 */
int hr_cert_make_host(const char *dir, const char *ca_dir, const char *node, char *err,
		      size_t errlen);

/* SHA-256 of the first certificate in a PEM file, "AB:CD:..." (96 bytes incl. NUL). */
int hr_cert_fingerprint(const char *cert_file, char *hex, size_t n, char *err, size_t errlen);

/* A random 32-byte key as hex in a new file, mode 0600. */
int hr_cert_make_psk(const char *file, char *err, size_t errlen);

#endif
