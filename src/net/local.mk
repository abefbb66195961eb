# src/net: peer-link transport.  TLS 1.3 (certificates, pinned fingerprints
# or a pre-shared key) with a pump thread that hands the engine a plaintext
# fd (see src/net/tls.h and docs/tls.md).
libhr_a_SOURCES += \
	src/net/tls.c src/net/tls.h src/net/tls-internal.h \
	src/net/tls-pump.c \
	src/net/cert.c src/net/cert.h

check_PROGRAMS += tests/t-tls
TESTS += tests/t-tls
tests_t_tls_SOURCES = tests/t-tls.c tests/tap.h
tests_t_tls_LDADD = $(HR_LIBS)
