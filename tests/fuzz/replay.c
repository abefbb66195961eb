/*
 * replay.c - main() of a fuzz target built without libFuzzer (fuzz.h):
 *
 *   fz-NAME FILE|DIR...        run every file (a directory: its files)
 *                              through LLVMFuzzerTestOneInput once
 *   fz-NAME --make-seeds DIR   write the seed corpus into DIR
 *
 * Prints how many inputs ran; exits 0, or 2 on a usage or I/O error.  A bug
 * the input triggers crashes the process (the caller sees the signal).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/util.h"
#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	do {
		if (cap - len < 65536) {
			uint8_t *nb = realloc(buf, cap + 65536);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	/* a private copy of exactly len bytes, as libFuzzer gives: ASan sees overreads */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact) {
		free(buf);
		return -ENOMEM;
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int run_path(const char *path, unsigned *nr)
{
	struct stat sb;
	struct dirent **names;
	int n, rc = 0;

	if (stat(path, &sb) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(sb.st_mode)) {
		rc = run_file(path);
		*nr += !rc;
		return rc;
	}
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		char sub[PATH_MAX];
		if (names[i]->d_name[0] != '.' && !rc) {
			snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
			rc = run_path(sub, nr);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned nr = 0;
	int rc;

	if (argc == 3 && !strcmp(argv[1], "--make-seeds")) {
		if ((rc = fz_make_seeds(argv[2])) < 0) {
			fprintf(stderr, "%s: seeds into %s: %s\n", argv[0], argv[2],
				hr_strerror(rc));
			return 2;
		}
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: %s FILE|DIR...\n       %s --make-seeds DIR\n", argv[0],
			argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i], &nr) < 0)
			return 2;
	printf("%s: %u inputs replayed\n", argv[0], nr);
	return 0;
}
