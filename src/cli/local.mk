# the command line
bin_PROGRAMS += hareplicate
hareplicate_SOURCES = \
	src/cli/hareplicate.c src/cli/cmd.h \
	src/cli/cmd-run.c \
	src/cli/vmhost.c src/cli/vmhost.h
hareplicate_LDADD = $(HR_LIBS)
