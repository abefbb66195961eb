/* t-disk-spec.c - the --disk argument (src/disk/spec.c): what parses, what is refused and why. */
#include <errno.h>
#include <string.h>

#include "disk/spec.h"
#include "tap.h"

static void good(const char *arg, const char *path, int ro, const char *serial)
{
	struct hr_disk_arg d;
	char why[200] = "", back[4200];
	int rc = hr_disk_arg_parse(arg, &d, why, sizeof(why));
	ok(rc == 0 && !strcmp(d.spec.path, path) && d.spec.readonly == ro &&
	       (serial ? d.spec.serial && !strcmp(d.spec.serial, serial) : !d.spec.serial),
	   "'%s' parses (%s)", arg, why);
	struct hr_disk_arg again;
	ok(rc == 0 && hr_disk_arg_format(&d.spec, back, sizeof(back)) == 0 &&
	       hr_disk_arg_parse(back, &again, why, sizeof(why)) == 0 &&
	       !strcmp(again.spec.path, path) && again.spec.readonly == ro,
	   "'%s' formats back as '%s'", arg, back);
}

static void bad(const char *arg, const char *want)
{
	struct hr_disk_arg d;
	char why[200] = "";
	ok(hr_disk_arg_parse(arg, &d, why, sizeof(why)) == -EINVAL && strstr(why, want),
	   "'%s' refused: %s", arg ? arg : "(null)", why);
}

int main(void)
{
	plan(15);
	good("/var/lib/vm1.img", "/var/lib/vm1.img", 0, NULL);
	good("/dev/vg0/vm1,readonly", "/dev/vg0/vm1", 1, NULL);
	good("/img,serial=DB-01,ro", "/img", 1, "DB-01");
	bad("", "needs a path");
	bad(",readonly", "needs a path");
	bad("/img,readwrite", "unknown disk option 'readwrite'");
	bad("/img,serial=", "serial ''");
	bad("/img,serial=a b", "no spaces");
	bad("/img,serial=123456789012345678901", "1..20");
	bad("/img,readonly,ro", "twice");
	bad("/img,serial=a,serial=b", "twice");
	bad(NULL, "needs a path");
	return tap_done();
}
