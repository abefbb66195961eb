# contrib: what `make install` puts beside the programs - the systemd unit,
# the init script, the configuration file, the bash completion (and the
# Pacemaker OCF agent, once contrib/ocf/hareplicate exists) - and the man
# pages (man/).  Files that name installation directories are made from
# their .in templates by make, not by configure: configure's sbindir is
# "${exec_prefix}/sbin", which only make expands (as the automake manual
# advises for installation directories).

hr_subst = sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|g'
hr_contrib_generated = contrib/hareplicated.service contrib/hareplicated.init \
	contrib/hareplicated.conf
$(hr_contrib_generated): Makefile
	@$(MKDIR_P) $(@D)
	$(AM_V_GEN)$(hr_subst) <$(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
contrib/hareplicated.service: $(srcdir)/contrib/hareplicated.service.in
contrib/hareplicated.init: $(srcdir)/contrib/hareplicated.init.in
contrib/hareplicated.conf: $(srcdir)/contrib/hareplicated.conf.in

# man pages: the same with troff break points in paths (man/subst.awk)
hr_man_generated = man/hareplicate.8 man/hareplicated.8 man/hareplicated.conf.5
$(hr_man_generated): Makefile $(srcdir)/man/subst.awk
	@$(MKDIR_P) $(@D)
	$(AM_V_GEN)$(AWK) -v sbindir='$(sbindir)' -v sysconfdir='$(sysconfdir)' \
		-v pkglibexecdir='$(pkglibexecdir)' -v pkgdatadir='$(pkgdatadir)' \
		-v initddir='$(initddir)' -v version='$(PACKAGE_VERSION)' \
		-f $(srcdir)/man/subst.awk <$(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
man/hareplicate.8: $(srcdir)/man/hareplicate.8.in
man/hareplicated.8: $(srcdir)/man/hareplicated.8.in
man/hareplicated.conf.5: $(srcdir)/man/hareplicated.conf.5.in
noinst_DATA += contrib/hareplicated.service contrib/hareplicated.init contrib/hareplicated.conf
CLEANFILES += $(hr_contrib_generated) $(hr_man_generated)
EXTRA_DIST += contrib/hareplicated.service.in contrib/hareplicated.init.in \
	contrib/hareplicated.conf.in contrib/hareplicate.bash-completion \
	man/hareplicate.8.in man/hareplicated.8.in man/hareplicated.conf.5.in man/subst.awk

man8_MANS = man/hareplicate.8 man/hareplicated.8
man5_MANS = man/hareplicated.conf.5

if INSTALL_UNIT
systemdsystemunit_DATA = contrib/hareplicated.service
endif

# what `hareplicate drill` runs when installed (ha/drill/cmd-drill.c looks
# next to itself first, a build tree, then here); netprobe is in
# tests/local.mk as a pkglibexec program
drillguestsdir = $(pkgdatadir)/guests
drillguests_DATA = tests/guests/netsvc.elf tests/guests/memwalk.elf

# Installed under other names, and the configuration file only where there
# is none yet (an existing one is the administrator's).
ocfdir = $(prefix)/lib/ocf/resource.d/hareplicate
hr_confdir = $(sysconfdir)/hareplicate
install-data-local:
if INSTALL_INITD
	$(MKDIR_P) $(DESTDIR)$(initddir)
	$(INSTALL_SCRIPT) contrib/hareplicated.init $(DESTDIR)$(initddir)/hareplicated
endif
if INSTALL_BASH_COMPLETION
	$(MKDIR_P) $(DESTDIR)$(bashcompletiondir)
	$(INSTALL_DATA) $(srcdir)/contrib/hareplicate.bash-completion \
		$(DESTDIR)$(bashcompletiondir)/hareplicate
	$(INSTALL_DATA) $(srcdir)/contrib/hareplicate.bash-completion \
		$(DESTDIR)$(bashcompletiondir)/hareplicated
endif
	$(MKDIR_P) $(DESTDIR)$(hr_confdir)
	@if test -f $(DESTDIR)$(hr_confdir)/hareplicated.conf; then \
		echo "$(DESTDIR)$(hr_confdir)/hareplicated.conf exists: left as it is"; \
	else \
		echo " $(INSTALL_DATA) -m 0644 contrib/hareplicated.conf $(DESTDIR)$(hr_confdir)/hareplicated.conf"; \
		$(INSTALL_DATA) -m 0644 contrib/hareplicated.conf $(DESTDIR)$(hr_confdir)/hareplicated.conf; \
	fi
	@if test -f $(srcdir)/contrib/ocf/hareplicate; then \
		echo " $(INSTALL_SCRIPT) $(srcdir)/contrib/ocf/hareplicate $(DESTDIR)$(ocfdir)/vm"; \
		$(MKDIR_P) $(DESTDIR)$(ocfdir) && \
		$(INSTALL_SCRIPT) $(srcdir)/contrib/ocf/hareplicate $(DESTDIR)$(ocfdir)/vm; \
	fi

uninstall-local:
if INSTALL_INITD
	rm -f $(DESTDIR)$(initddir)/hareplicated
endif
if INSTALL_BASH_COMPLETION
	rm -f $(DESTDIR)$(bashcompletiondir)/hareplicate $(DESTDIR)$(bashcompletiondir)/hareplicated
endif
	rm -f $(DESTDIR)$(ocfdir)/vm
	@if test -f $(DESTDIR)$(hr_confdir)/hareplicated.conf && \
	    cmp -s contrib/hareplicated.conf $(DESTDIR)$(hr_confdir)/hareplicated.conf; then \
		echo " rm -f $(DESTDIR)$(hr_confdir)/hareplicated.conf"; \
		rm -f $(DESTDIR)$(hr_confdir)/hareplicated.conf; \
	elif test -f $(DESTDIR)$(hr_confdir)/hareplicated.conf; then \
		echo "$(DESTDIR)$(hr_confdir)/hareplicated.conf was changed: left in place"; \
	fi
