# man/subst.awk - fill a man page template (man/local.mk): @sbindir@ and the
# other directories become the configured ones, with a troff break point
# (\:) after each "/" so that a long path never makes a line troff cannot
# break; @PACKAGE_VERSION@ the version.  The values come as -v NAME=VALUE.
function brk(p,   r, i)
{
	r = ""
	while ((i = index(p, "/")) > 0) {
		r = r substr(p, 1, i) "\\:"
		p = substr(p, i + 1)
	}
	return r p
}
function put(s, key, val,   i)
{
	while ((i = index(s, key)) > 0)
		s = substr(s, 1, i - 1) val substr(s, i + length(key))
	return s
}
{
	$0 = put($0, "@sbindir@", brk(sbindir))
	$0 = put($0, "@sysconfdir@", brk(sysconfdir))
	$0 = put($0, "@pkglibexecdir@", brk(pkglibexecdir))
	$0 = put($0, "@pkgdatadir@", brk(pkgdatadir))
	$0 = put($0, "@initddir@", brk(initddir))
	$0 = put($0, "@PACKAGE_VERSION@", version)
	print
}
