/* cert.c - keys, certificates, fingerprints and PSKs for the TLS transport. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/cert.h"
#include "net/tls-internal.h"

#define CA_DAYS	  3650
#define HOST_DAYS 1825

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* A new file (never an existing one) opened for writing with mode. */
static FILE *create_file(const char *path, mode_t mode, int *rc_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		*rc_r = -errno;
		return NULL;
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		*rc_r = -errno;
		close(fd);
	}
	return f;
}

static int close_file(FILE *f, int ok)
{
	int rc = ok ? 0 : -EIO;
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		rc = -errno;
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	return rc;
}

static int write_key(const char *path, EVP_PKEY *key, char *err, size_t errlen)
{
	int rc = 0;
	FILE *f = create_file(path, 0600, &rc);
	if (!f)
		return fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
	rc = close_file(f, PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
	if (rc)
		return fail(err, errlen, rc, "%s: cannot write the key", path);
	return 0;
}

static int write_cert(const char *path, X509 *crt, char *err, size_t errlen)
{
	int rc = 0;
	FILE *f = create_file(path, 0644, &rc);
	if (!f)
		return fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
	rc = close_file(f, PEM_write_X509(f, crt) == 1);
	if (rc)
		return fail(err, errlen, rc, "%s: cannot write the certificate", path);
	return 0;
}

static int add_ext(X509 *crt, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, crt, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -1;
	int r = X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	return r == 1 ? 0 : -1;
}

/* A certificate for key, CN=cn, signed by issuer_key (issuer NULL: self). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int days,
		       int is_ca)
{
	X509 *crt = X509_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int ok = 0;

	if (!crt || RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f; /* positive */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt)))
		goto out;
	X509_NAME *name = X509_get_subject_name(crt);
	if (X509_set_version(crt, X509_VERSION_3) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(crt, issuer ? X509_get_subject_name(issuer) : name) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(crt), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(crt), days, 0, NULL) ||
	    X509_set_pubkey(crt, key) != 1)
		goto out;
	X509 *iss = issuer ? issuer : crt;
	if (add_ext(crt, iss, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(crt, iss, NID_authority_key_identifier, "keyid:always") < 0)
		goto out;
	if (is_ca) {
		if (add_ext(crt, iss, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
		    add_ext(crt, iss, NID_key_usage, "critical,keyCertSign,cRLSign") < 0)
			goto out;
	} else {
		char san[300];
		snprintf(san, sizeof(san), "DNS:%s", cn);
		if (add_ext(crt, iss, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
		    add_ext(crt, iss, NID_key_usage, "critical,digitalSignature") < 0 ||
		    add_ext(crt, iss, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
		    add_ext(crt, iss, NID_subject_alt_name, san) < 0)
			goto out;
	}
	ok = X509_sign(crt, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
out:
	BN_free(bn);
	if (!ok) {
		X509_free(crt);
		crt = NULL;
	}
	return crt;
}

static void path_in(char *buf, size_t n, const char *dir, const char *file)
{
	snprintf(buf, n, "%s/%s", dir, file);
}

static int ensure_dir(const char *dir, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail(err, errlen, -errno, "%s: %s", dir, strerror(errno));
	return 0;
}

int hr_cert_make_ca(const char *dir, const char *name, char *err, size_t errlen)
{
	char kpath[4096], cpath[4096];
	X509 *crt = NULL;
	int rc;

	rc = ensure_dir(dir, err, errlen);
	if (rc)
		return rc;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!key)
		return fail(err, errlen, -HR_ETLS, "cannot generate an EC P-256 key");
	crt = make_cert(key, name, NULL, NULL, CA_DAYS, 1);
	if (!crt) {
		rc = fail(err, errlen, -HR_ETLS, "cannot build the CA certificate");
		goto out;
	}
	path_in(kpath, sizeof(kpath), dir, "ca.key");
	path_in(cpath, sizeof(cpath), dir, "ca.crt");
	rc = write_key(kpath, key, err, errlen);
	if (!rc)
		rc = write_cert(cpath, crt, err, errlen);
out:
	X509_free(crt);
	EVP_PKEY_free(key);
	return rc;
}

static int read_pem(const char *path, X509 **crt_r, EVP_PKEY **key_r, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (crt_r)
		*crt_r = PEM_read_X509(f, NULL, NULL, NULL);
	if (key_r)
		*key_r = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if ((crt_r && !*crt_r) || (key_r && !*key_r))
		return fail(err, errlen, -HR_ETLS, "%s: no PEM %s in it", path,
			    crt_r ? "certificate" : "private key");
	return 0;
}

int hr_cert_make_host(const char *dir, const char *ca_dir, const char *node, char *err,
		      size_t errlen)
{
	char path[4096];
	X509 *ca = NULL, *crt = NULL;
	EVP_PKEY *ca_key = NULL, *key = NULL;
	int rc;

	if (!node || !*node || strlen(node) > 64)
		return fail(err, errlen, -EINVAL, "node name must be 1 to 64 characters");
	if (ca_dir) {
		path_in(path, sizeof(path), ca_dir, "ca.crt");
		rc = read_pem(path, &ca, NULL, err, errlen);
		if (rc)
			goto out;
		path_in(path, sizeof(path), ca_dir, "ca.key");
		rc = read_pem(path, NULL, &ca_key, err, errlen);
		if (rc)
			goto out;
		if (X509_check_private_key(ca, ca_key) != 1) {
			rc =
			    fail(err, errlen, -HR_ETLS, "%s: ca.key does not match ca.crt", ca_dir);
			goto out;
		}
	}
	rc = ensure_dir(dir, err, errlen);
	if (rc)
		goto out;
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	crt = key ? make_cert(key, node, ca, ca_key, HOST_DAYS, 0) : NULL;
	if (!crt) {
		rc = fail(err, errlen, -HR_ETLS, "cannot build the host key and certificate");
		goto out;
	}
	path_in(path, sizeof(path), dir, "host.key");
	rc = write_key(path, key, err, errlen);
	if (rc)
		goto out;
	path_in(path, sizeof(path), dir, "host.crt");
	rc = write_cert(path, crt, err, errlen);
	if (rc || !ca)
		goto out;
	path_in(path, sizeof(path), dir, "ca.crt");
	rc = write_cert(path, ca, err, errlen);
out:
	X509_free(ca);
	X509_free(crt);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	return rc;
}

int hr_tls_x509_fingerprint(X509 *crt, char *hex, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	if (n < 3 * 32 || X509_digest(crt, EVP_sha256(), md, &len) != 1 || len != 32)
		return -HR_ETLS;
	for (unsigned i = 0; i < len; i++)
		snprintf(hex + 3 * i, n - 3 * i, "%02X%s", md[i], i + 1 < len ? ":" : "");
	return 0;
}

int hr_cert_fingerprint(const char *cert_file, char *hex, size_t n, char *err, size_t errlen)
{
	X509 *crt = NULL;
	int rc = read_pem(cert_file, &crt, NULL, err, errlen);
	if (rc)
		return rc;
	rc = hr_tls_x509_fingerprint(crt, hex, n);
	X509_free(crt);
	if (rc)
		return fail(err, errlen, rc, "%s: cannot compute the fingerprint", cert_file);
	return 0;
}

int hr_cert_make_psk(const char *file, char *err, size_t errlen)
{
	unsigned char key[HR_TLS_PSK_LEN];
	char hex[2 * sizeof(key) + 2];
	int rc = 0;

	if (RAND_priv_bytes(key, sizeof(key)) != 1)
		return fail(err, errlen, -HR_ETLS, "no random bytes");
	for (size_t i = 0; i < sizeof(key); i++)
		snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02x", key[i]);
	OPENSSL_cleanse(key, sizeof(key));
	strcat(hex, "\n");
	FILE *f = create_file(file, 0600, &rc);
	if (!f)
		return fail(err, errlen, rc, "%s: %s", file, strerror(-rc));
	rc = close_file(f, fputs(hex, f) >= 0);
	OPENSSL_cleanse(hex, sizeof(hex));
	if (rc)
		return fail(err, errlen, rc, "%s: cannot write the key", file);
	return 0;
}
