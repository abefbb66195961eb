/* conf.c - `key = value` configuration files (see conf.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

struct seen {
	char **key;
	unsigned *line;
	unsigned nr;
};

static int key_ok(const char *k)
{
	if (!*k)
		return 0;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' ||
		      *k == '-'))
			return 0;
	return 1;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The line where key was set before, or 0 (and remember it). */
static unsigned seen_before(struct seen *s, const char *key, unsigned lineno)
{
	for (unsigned i = 0; i < s->nr; i++)
		if (!strcmp(s->key[i], key))
			return s->line[i];
	char **k = realloc(s->key, (s->nr + 1) * sizeof(*k));
	if (k)
		s->key = k;
	unsigned *l = realloc(s->line, (s->nr + 1) * sizeof(*l));
	if (l)
		s->line = l;
	if (k && l && (s->key[s->nr] = strdup(key))) {
		s->line[s->nr] = lineno;
		s->nr++;
	}
	return 0;
}

/* One line (its newline removed, len bytes): 0, or -EINVAL / fn's error
 * with the reason in why. */
static int one_line(char *line, size_t len, unsigned lineno, struct seen *seen, hr_conf_fn fn,
		    void *arg, char *why, size_t n)
{
	char *p = line, *eq, *k_end, *v, *v_end;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			snprintf(why, n, "control character 0x%02x in the line", c);
			return -EINVAL;
		}
	}
	while (is_blank(*p))
		p++;
	if (!*p || *p == '#')
		return 0;
	eq = strchr(p, '=');
	if (!eq) {
		snprintf(why, n, "expected `key = value`");
		return -EINVAL;
	}
	for (k_end = eq; k_end > p && is_blank(k_end[-1]); k_end--)
		;
	*k_end = '\0';
	if (!key_ok(p)) {
		snprintf(why, n, "bad key '%.64s' (letters a-z, digits, '-' and '_')", p);
		return -EINVAL;
	}
	for (v = eq + 1; is_blank(*v); v++)
		;
	for (v_end = v + strlen(v); v_end > v && is_blank(v_end[-1]); v_end--)
		;
	*v_end = '\0';
	if (!*v) {
		snprintf(why, n, "%s: empty value", p);
		return -EINVAL;
	}
	unsigned before = seen_before(seen, p, lineno);
	if (before) {
		snprintf(why, n, "%s set again (first on line %u)", p, before);
		return -EINVAL;
	}
	return fn(arg, p, v, why, n);
}

int hr_conf_read(const char *path, hr_conf_fn fn, void *arg, char *err, size_t errlen)
{
	struct seen seen = {0};
	char *line = NULL, why[512];
	size_t cap = 0;
	ssize_t len;
	unsigned lineno = 0;
	int rc = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if ((size_t)len >= HR_CONF_LINE_MAX) {
			snprintf(why, sizeof(why), "line longer than %d bytes",
				 HR_CONF_LINE_MAX - 1);
			rc = -EINVAL;
		} else if (strlen(line) != (size_t)len) {
			snprintf(why, sizeof(why), "NUL byte in the line");
			rc = -EINVAL;
		} else {
			rc = one_line(line, (size_t)len, lineno, &seen, fn, arg, why, sizeof(why));
		}
		if (rc < 0) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
			break;
		}
	}
	if (!rc && ferror(f)) {
		rc = -EIO;
		snprintf(err, errlen, "%s: read error", path);
	}
	fclose(f);
	free(line);
	for (unsigned i = 0; i < seen.nr; i++)
		free(seen.key[i]);
	free(seen.key);
	free(seen.line);
	return rc;
}
