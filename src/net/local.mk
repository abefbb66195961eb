# src/net: peer-link transport.  TLS 1.3 (certificates, pinned fingerprints
# or a pre-shared key) with a pump thread that hands the engine a plaintext
# fd (see src/net/tls.h and docs/tls.md).
libhr_a_SOURCES += \
	src/net/tls.c src/net/tls.h src/net/tls-internal.h \
	src/net/tls-pump.c src/net/tls-event.c src/net/tls-event.h \
	src/net/cert.c src/net/cert.h

# tests/t-tls: the working link; tests/t-tls-refuse: every refusal
check_PROGRAMS += tests/t-tls tests/t-tls-refuse
TESTS += tests/t-tls tests/t-tls-refuse
tests_t_tls_SOURCES = tests/t-tls.c tests/tls-harness.h tests/tap.h
tests_t_tls_LDADD = $(HR_LIBS)
tests_t_tls_refuse_SOURCES = tests/t-tls-refuse.c tests/tls-harness.h tests/tap.h
tests_t_tls_refuse_LDADD = $(HR_LIBS)
