/* t-conf.c - the `key = value` file reader (src/common/conf.c): what it
 * passes on, and every refusal naming the file and line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "tap.h"

static char path[64];
static char got[2048];

/* Collects "key=val;"; refuses the key "refuse". */
static int collect(void *arg, const char *key, const char *val, char *why, size_t n)
{
	if (!strcmp(key, "refuse")) {
		snprintf(why, n, "bad refuse '%s'", val);
		return -EINVAL;
	}
	size_t len = strlen(got);
	snprintf(got + len, sizeof(got) - len, "%s=%s;", key, val);
	return 0;
}

/* Write text (len bytes) to the file, read it: the rc; err and got filled. */
static int read_text(const char *text, size_t len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");
	if (!f || fwrite(text, 1, len, f) != len || fclose(f))
		return -9999;
	got[0] = err[0] = '\0';
	return hr_conf_read(path, collect, NULL, err, errlen);
}

/* text must be refused at line with a reason containing what. */
static void refused(const char *text, size_t len, unsigned line, const char *what, const char *msg)
{
	char err[1024], want[128];
	int rc = read_text(text, len, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:%u: ", path, line);
	ok(rc == -EINVAL && !strncmp(err, want, strlen(want)) && strstr(err, what),
	   "%s: rc %d '%s'", msg, rc, err);
}

#define S(lit) lit, sizeof(lit) - 1

int main(void)
{
	char err[1024];
	int rc;

	plan(17);
	snprintf(path, sizeof(path), "/tmp/t-conf.%d", (int)getpid());

	rc = read_text(S("# comment\n\n  \t# indented comment\nlisten = 127.0.0.1:7788\n"
			 "node=host1\n\tstate-dir   =   /var/lib/x y  \n"
			 "console-default = file:/srv/#%s.console\nlast_key = no-newline"),
		       err, sizeof(err));
	ok(rc == 0 && !strcmp(got, "listen=127.0.0.1:7788;node=host1;state-dir=/var/lib/x y;"
				   "console-default=file:/srv/#%s.console;last_key=no-newline;"),
	   "good file: every setting in order, blanks trimmed, '#' inside a value kept (rc %d, "
	   "'%s')",
	   rc, got);
	rc = read_text(S(""), err, sizeof(err));
	ok(rc == 0 && !got[0], "empty file: no settings (rc %d)", rc);
	rc = read_text(S("a = 1\r\n"), err, sizeof(err));
	ok(rc == -EINVAL && strstr(err, ":1: control character 0x0d"),
	   "CR line end refused, not taken into the value (%s)", err);

	refused(S("a = 1\nrefuse = x\n"), 2, "bad refuse 'x'",
		"the callback's refusal with file:line");
	refused(S("a = 1\njust words\n"), 2, "expected `key = value`", "a line without '='");
	refused(S("= 1\n"), 1, "bad key ''", "an empty key");
	refused(S("Listen = 1\n"), 1, "bad key 'Listen'", "upper case in a key");
	refused(S("tls cert = x\n"), 1, "bad key 'tls cert'", "a blank inside a key");
	refused(S("listen =   \n"), 1, "listen: empty value", "an empty value");
	refused(S("a = 1\nb = 2\na = 3\n"), 3, "a set again (first on line 1)", "a repeated key");
	refused(S("a = 1\nb = x\001y\n"), 2, "control character 0x01", "a control character");
	refused(S("a = 1\nb = x\0y\n"), 2, "NUL byte", "a NUL byte");
	refused(S("a = 1\nb = \x7f\n"), 2, "control character 0x7f", "DEL");
	{
		size_t n = HR_CONF_LINE_MAX + 10;
		char *big = malloc(n + 1);
		memset(big, 'x', n);
		memcpy(big, "k = ", 4);
		big[n] = '\n';
		refused(big, n + 1, 1, "line longer than", "an over-long line");
		free(big);
	}
	rc = read_text(S("a = 1\n# the next refused line stops the reading\nrefuse = 1\nb = 2\n"),
		       err, sizeof(err));
	ok(rc == -EINVAL && !strcmp(got, "a=1;"), "reading stops at the first error (got '%s')",
	   got);

	unlink(path);
	got[0] = '\0';
	rc = hr_conf_read(path, collect, NULL, err, sizeof(err));
	ok(rc == -ENOENT && strstr(err, path) && strstr(err, "No such file"),
	   "a missing file: -ENOENT, '%s'", err);
	rc = hr_conf_read("/", collect, NULL, err, sizeof(err));
	ok(rc < 0 && strstr(err, "/: "), "a directory: refused (rc %d, '%s')", rc, err);
	return tap_failed ? 1 : 0;
}
