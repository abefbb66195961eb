/*
 * fuzz.h - what every fuzz target under tests/fuzz/ provides (README.md).
 *
 * A target is one fz-<name>.c with LLVMFuzzerTestOneInput and
 * fz_make_seeds.  It is linked twice:
 *  - by `make fuzz`, with clang -fsanitize=fuzzer,address,undefined
 *    (libFuzzer supplies main);
 *  - by `make check`, with the normal compiler and replay.c's main, which
 *    runs every file of the committed corpus and regression inputs through
 *    the target (tests/t-fuzz-replay.sh) or, with --make-seeds DIR, writes
 *    the seed corpus made by the project's own encoders.
 * Targets never exit or abort on a bad input: only a bug may crash them.
 */
#ifndef HR_FUZZ_H
#define HR_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write valid inputs into dir (which exists).  0 or -errno. */
int fz_make_seeds(const char *dir);

/* Write one seed file dir/name.  0 or -errno. */
int fz_seed(const char *dir, const char *name, const void *buf, size_t len);

/* Everything written to fd until now (a socketpair end or pipe read
 * non-blockingly), as one malloc'd buffer for a seed.  0 or -errno. */
int fz_drain(int fd, uint8_t **buf_r, size_t *len_r);

/* A socketpair whose buffers hold at least `bytes` (one thread plays both
 * ends).  0 or -errno. */
int fz_socketpair(int sv[2], int bytes);

/* session.c: what a backup reads after HELLO_ACK from a real primary (a
 * mem guest of mem_bytes, `writes` page writes per step): the live round
 * and nr_epochs epochs (0, 1, ...), as the sender writes them.  *buf_r is
 * malloc'd.  0 or -errno. */
int fz_session(uint64_t mem_bytes, unsigned nr_epochs, unsigned writes, uint8_t **buf_r,
	       size_t *len_r);

#endif
