# the command line
bin_PROGRAMS += hareplicate
hareplicate_SOURCES = \
	src/cli/hareplicate.c src/cli/cmd.h \
	src/cli/cmd-run.c \
	src/cli/vmhost.c src/cli/vmhost.h \
	src/cli/cmd-start.c src/cli/cmd-status.c src/cli/cmd-failover.c src/cli/cmd-cluster.c src/cli/cmd-migrate.c src/cli/cmd-stop.c \
	src/cli/cmd-witness.c src/cli/cmd-cert.c \
	src/cli/ctl.c src/cli/ctl.h
hareplicate_LDADD = $(HR_LIBS)
